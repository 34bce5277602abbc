/* bars.h -- OHLCV aggregation of ticks into one interval's bars (one "series").
 *
 * Bars are bucketed by the tick's own timestamp, aligned to the Unix epoch
 * (t = ts - ts mod interval), so every process computes the same bars from the
 * same ticks. A series holds the forming bar and a ring of the newest completed
 * bars. A tick in a later bucket closes the forming bar; a late tick updates the
 * completed bar of its bucket if the ring still holds it, and is otherwise
 * reported as too old. Every bar remembers the seq of the tick that last changed
 * it, which is what resuming clients ask about.
 *
 * With a trading calendar (calendar.h) the caller names each tick's bucket [t, end) and
 * when it settles: the bar is due to close at its end plus a grace, or a grace after its last
 * tick arrived if that is later (a replayed feed), on the wall clock (cg_series_expire, driven by
 * the agent's close timer), and a late tick corrects a completed bar only until that bar's due
 * time; later it is ignored, as a tick older than every bar held is. Pure: no I/O, no JSON. */
#ifndef CG_BARS_H
#define CG_BARS_H

#include <stddef.h>
#include <stdint.h>

struct cg_bar {
    int64_t t; /* bucket start, epoch ms */
    double o, h, l, c, v;
    uint64_t seq; /* seq of the tick that last changed this bar */
};

struct cg_series {
    int64_t ms;          /* interval length */
    struct cg_bar *ring; /* completed bars, oldest at head; grows up to depth */
    uint32_t depth, cap, count, head;
    struct cg_bar forming;
    int64_t forming_ts; /* newest tick time in the forming bar: older ones are late */
    int has_forming;
    int64_t *ring_due;   /* per completed bar: wall ms after which it is final for good (0:
                          * corrections while held); NULL until a due time is first set */
    int64_t forming_end; /* bucket end of the forming bar */
    int64_t forming_due; /* wall ms at which the forming bar is due to close; 0: never */
    int timed;           /* bars have due times (a calendar): ring_due is kept */
    uint32_t heap_idx;   /* position + 1 in the agent's close schedule (closing.h); 0: none */
};

/* What one tick did to a series: at most a close and an update. */
enum cg_bar_event_kind {
    CG_BAR_UPDATED,   /* the forming bar changed (final = 0) */
    CG_BAR_CLOSED,    /* the forming bar completed (final = 1) */
    CG_BAR_CORRECTED, /* a late tick changed a completed bar (final = 1) */
};

struct cg_bar_event {
    enum cg_bar_event_kind kind;
    struct cg_bar bar; /* a copy */
};

/* Initialises an empty series keeping up to depth completed bars (allocated as
 * they complete). Returns 0. */
int cg_series_init(struct cg_series *s, int64_t interval_ms, uint32_t depth);
void cg_series_finish(struct cg_series *s);
/* Forgets every bar (after a gap in the tick stream). */
void cg_series_clear(struct cg_series *s);

/* Bucket start of ts for interval ms (floors negative timestamps too). */
int64_t cg_bars_bucket(int64_t ts, int64_t ms);

/* Applies one tick. Fills ev (room for 2) and returns how many events, or -1 when
 * the tick is older than every bar held (ignored). */
int cg_series_tick(struct cg_series *s, int64_t ts, double price, double volume, uint64_t seq,
                   struct cg_bar_event ev[2]);

/* A tick's bucket as the caller's calendar sees it. The bar is due to close at
 * max(end + settle, arrival of its last tick + grace) on the wall clock; settle < 0: never
 * (bars close on later ticks only, corrections while held, as cg_series_tick). */
struct cg_bar_bucket {
    int64_t t, end;
    int64_t settle; /* after end: the grace, plus the slack when end is a session's close */
    int64_t grace;  /* after the last tick's arrival (a replayed or delayed feed) */
};

/* Applies one tick to bucket b (b->t >= the newest bar's t for the tick to be live). now: wall
 * ms of arrival. Same events and return as cg_series_tick; a late tick for a completed bar past
 * its due time returns -1. */
int cg_series_add(struct cg_series *s, const struct cg_bar_bucket *b, int64_t ts, double price,
                  double volume, uint64_t seq, int64_t now, struct cg_bar_event ev[2]);
/* Wall ms at which the forming bar is due to close, or 0 (none, or no close timer). */
int64_t cg_series_due(const struct cg_series *s);
/* Closes the forming bar if it is due at now: returns 1 with ev (CG_BAR_CLOSED), else 0. */
int cg_series_expire(struct cg_series *s, int64_t now, struct cg_bar_event *ev);

/* Number of bars held, forming bar included. */
size_t cg_series_size(const struct cg_series *s);
/* The i-th bar held, oldest first, forming bar last (i < cg_series_size). */
const struct cg_bar *cg_series_at(const struct cg_series *s, size_t i);

#endif
