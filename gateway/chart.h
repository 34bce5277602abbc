/* chart.h -- one instrument's chart state: bars per interval, last tick, resume ring.
 *
 * The chart agent turns each tick into what a chart renders directly, once per
 * tick for all viewers: it reads price/volume/timestamp from the tick (field names
 * configurable), derives per-tick volume from running totals where the feed is
 * CTP-style cumulative, updates every interval's series, and keeps the last tick
 * and the newest tick frames so a reconnecting client can be replayed what it
 * missed. A gap in the tick stream (no upstream subscription, a lost Redis link)
 * moves the resume floor: only clients that saw a tick after the gap can resume.
 * Pure: no I/O; frames are encoded by frame.c. */
#ifndef CG_CHART_H
#define CG_CHART_H

#include <jansson.h>
#include <stdint.h>

#include "bars.h"
#include "calendar.h"
#include "config.h"
#include "frame.h"

struct cg_agent_snap; /* a snapshot being filled from Redis (agent.c) */

/* What one subscription sees of its instrument's chart. Owned and used by the chart agent only;
 * embedded in struct cg_sub (registry.h) so that the bar fan-out finds it where it finds the
 * subscription, without another pointer to follow per viewer. */
struct cg_agent_ovsync;

struct cg_chart_view {
    struct cg_agent_snap *pending; /* a snapshot being prepared: no live frames meanwhile */
    uint32_t intervals;            /* bit i: bars of configured interval i wanted */
    uint8_t overlays;              /* overlay operations wanted (PROTOCOL.md §17) */
    uint8_t ovstale; /* its overlay state could not be read: resync when Redis is back */
    struct cg_agent_ovsync *ovsync;             /* an overlay state read on its way, or NULL */
    uint64_t bar_slot[CG_CONFIG_INTERVALS_MAX]; /* pending forming-bar positions (outq.h) */
};

struct cg_chart {
    struct cg_series series[CG_CONFIG_INTERVALS_MAX];
    uint32_t nseries;
    uint32_t interval_refs[CG_CONFIG_INTERVALS_MAX]; /* subscriptions wanting each interval */
    char *last;                                      /* compact JSON of the last tick's data */
    size_t last_len;
    uint64_t last_seq;
    int cumulative; /* volume field is a running total */
    int has_total;
    double total;
    int64_t total_ts;
    /* resume ring: the newest tick frames, with their seq */
    struct cg_frame **ring;
    uint64_t *ring_seq;
    uint32_t ring_cap, ring_count, ring_head;
    uint64_t floor;         /* smallest `since` that can be resumed */
    int stale;              /* ticks stopped coming (no upstream subscription) */
    uint64_t idle_since_ms; /* when the last subscriber left; 0 while subscribed */
    uint64_t late_ignored;  /* ticks older than every bar held */
    /* trading calendar (NULL: epoch-aligned buckets, closed by later ticks only) */
    struct cg_calendar *cal;    /* borrowed */
    struct cg_cal_sched *sched; /* borrowed from cal: this instrument's sessions */
    uint64_t off_session;       /* ticks outside every session (and its slack): no bars */
};

/* One bar change produced by a tick, for the agent to encode and record. */
struct cg_chart_event {
    uint32_t interval; /* index into the configured intervals */
    struct cg_bar_event ev;
};

#define CG_CHART_EVENTS_MAX (2 * CG_CONFIG_INTERVALS_MAX)

/* Creates the chart of instrument name for cfg's intervals, depth and ring; seq is
 * the instrument's current seq (resume starts above it). NULL on OOM. */
struct cg_chart *cg_chart_create(const struct cg_config *cfg, const char *name, uint64_t seq);
void cg_chart_destroy(struct cg_chart *c); /* accepts NULL */
/* Makes the chart's bars follow cal's sessions for instrument name (cal borrowed, outliving the
 * chart; NULL or an inactive calendar: epoch buckets). Call before the first tick. */
void cg_chart_set_calendar(struct cg_chart *c, struct cg_calendar *cal, const char *name);
/* Closes every forming bar due at now (wall ms). Fills ev, returns how many. */
int cg_chart_expire(struct cg_chart *c, int64_t now, struct cg_chart_event ev[CG_CHART_EVENTS_MAX]);

/* Forgets bars and ring after a gap (the last tick stays): resume needs a tick
 * after seq. */
void cg_chart_reset(struct cg_chart *c, uint64_t seq);
/* Marks a gap without forgetting bars (a lost link: bars stay best effort). */
void cg_chart_gap(struct cg_chart *c, uint64_t seq);

/* Applies tick seq (data: the tick object; text: its compact JSON; frame: its tick
 * frame, borrowed, the ring takes a reference). now_ms is the arrival time (wall
 * clock), used when the tick has no timestamp and for the calendar's due times. With a
 * calendar, forming bars already due are closed first, and a tick outside every session makes
 * no bar (counted in off_session). Fills ev, returns how many events (0 when the
 * tick has no numeric price), or -1 on OOM (the tick is then only partly applied). */
int cg_chart_tick(struct cg_chart *c, const struct cg_config *cfg, uint64_t seq, json_t *data,
                  const char *text, size_t len, struct cg_frame *frame, int64_t now_ms,
                  struct cg_chart_event ev[CG_CHART_EVENTS_MAX]);

/* When the oldest bar that may still be forming at now (wall ms) began: the earliest bucket start
 * over the intervals (with a calendar: the trading day's first open for 1d, the session-aligned
 * bucket otherwise; outside every session, a day before now). A warm-up reads ticks back to it. */
int64_t cg_chart_oldest_forming(const struct cg_chart *c, int64_t now);

/* Takes tick seq (text: its compact JSON, len bytes) as the last value without touching bars or
 * ring: a tick older than every bar being formed (stream.c's warm-up). 0, or -1 on OOM. */
int cg_chart_set_last(struct cg_chart *c, uint64_t seq, const char *text, size_t len);

/* 1 when a client that last saw `since` can be brought up to date from the ring
 * (inst_seq: the instrument's current seq). */
int cg_chart_can_resume(const struct cg_chart *c, uint64_t since, uint64_t inst_seq);
/* The ring's tick frames after since, oldest first: calls fn for each. */
void cg_chart_replay(const struct cg_chart *c, uint64_t since,
                     void (*fn)(void *arg, struct cg_frame *f), void *arg);

#endif
