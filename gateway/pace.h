/* pace.h -- a subscription's maximum rate ("max_rate", PROTOCOL.md §7): hold the latest, send it
 * when its slot opens.
 *
 * A paced stream (one subscription's ticks, or its forming bars of one interval) is a slot: it
 * lets a frame through when at least interval_ms passed since the last one it let through, and
 * otherwise holds it (a newer frame replaces the held one, so what goes out is always the latest).
 * Slots holding a frame wait in one min-heap per process keyed by when they open; the caller's
 * timer takes them out with cg_pace_due and sends what they held, so the last frame of a burst
 * always goes out, at most interval_ms after the one before it. Sockets without max_rate never
 * reach this code. Pure: no lws, no uv (the caller passes the time). */
#ifndef CG_PACE_H
#define CG_PACE_H

#include <stdint.h>

#include "frame.h"

#define CG_PACE_RATE_MIN 0.1    /* frames per second: one every 10 s */
#define CG_PACE_RATE_MAX 1000.0 /* one per millisecond, the timer's resolution */

struct cg_pace_slot {
    uint64_t next_ms;      /* the earliest time the next frame may go out */
    struct cg_frame *held; /* the latest frame not sent yet, owned (one reference); or NULL */
    uint32_t heap_i;       /* position in the heap + 1; 0 while not waiting */
    uint32_t kind;         /* the caller's: 0 = ticks, 1 + i = forming bars of interval i */
    uint32_t interval_ms;  /* the least time between two frames let through */
    void *owner;           /* the caller's (the subscription), borrowed */
};

/* One subscription's pacing: the tick slot and one slot per bar interval. */
struct cg_pace_sub {
    uint32_t nslots;
    struct cg_pace_slot slot[];
};

/* The slots holding a frame, earliest next_ms first. */
struct cg_pace {
    struct cg_pace_slot **heap;
    uint32_t n, cap;
};

enum cg_pace_result {
    CG_PACE_SEND = 0,     /* the caller sends f now */
    CG_PACE_HELD = 1,     /* f is held (its slot waits in the heap) */
    CG_PACE_REPLACED = 2, /* f is held in place of an older held frame, which was dropped */
    CG_PACE_NOMEM = -1,   /* nothing held: the caller sends f now (better early than lost) */
};

void cg_pace_init(struct cg_pace *p);
/* Drops every held frame and frees the heap (the slots stay the callers'). */
void cg_pace_finish(struct cg_pace *p);

/* The interval for rate frames per second: ceil(1000 / rate) ms, so never more than rate per
 * second. rate must be within [CG_PACE_RATE_MIN, CG_PACE_RATE_MAX]. */
uint32_t cg_pace_interval_ms(double rate);
/* A new pacing of nslots slots, each owned by owner, kinds 0 .. nslots - 1. NULL when out of
 * memory. Free it with cg_pace_sub_destroy. */
struct cg_pace_sub *cg_pace_sub_create(uint32_t interval_ms, uint32_t nslots, void *owner);
/* Takes every slot of ps out of p (dropping what they hold) and frees ps. Accepts NULL. */
void cg_pace_sub_destroy(struct cg_pace *p, struct cg_pace_sub *ps);

/* Offers f (borrowed) to slot s at now. See enum cg_pace_result. */
enum cg_pace_result cg_pace_offer(struct cg_pace *p, struct cg_pace_slot *s, uint64_t now,
                                  struct cg_frame *f);
/* A slot whose time came (next_ms <= now), taken out of the heap, or NULL. Its held frame is
 * moved to *f (the caller's reference now, to send), and its next_ms becomes now + interval. */
struct cg_pace_slot *cg_pace_due(struct cg_pace *p, uint64_t now, struct cg_frame **f);
/* Drops what s holds and takes it out of the heap (its next_ms stays). */
void cg_pace_drop(struct cg_pace *p, struct cg_pace_slot *s);
/* The earliest next_ms of a waiting slot, or UINT64_MAX when none waits. */
uint64_t cg_pace_next(const struct cg_pace *p);

#endif
