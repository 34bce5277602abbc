/* outq.h -- one client's bounded queue of pending frames, with per-instrument conflation.
 *
 * The queue holds references to shared frames (it takes its own reference on push
 * and drops it on pop). Positions are absolute (uint64, never reused), so a caller
 * can remember where an instrument's pending tick sits in a "slot" and, once the
 * client is behind, replace that tick in place in O(1): a slow chart skips ticks
 * but always ends with the latest price. Message and control frames are never
 * conflated. Past the hard bound a push fails and the caller closes the client. */
#ifndef CG_OUTQ_H
#define CG_OUTQ_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

struct cg_outq_limits {
    uint32_t max_frames;      /* hard bound: a push beyond it fails */
    size_t max_bytes;         /* hard bound on pending payload bytes */
    uint32_t conflate_frames; /* pending frames from which ticks conflate */
    size_t conflate_bytes;    /* pending bytes from which ticks conflate */
};

struct cg_outq {
    struct cg_frame **ring; /* cap entries, cap a power of two; NULL while idle */
    uint32_t cap;
    uint32_t count;
    uint64_t head; /* absolute position of the oldest pending frame */
    size_t bytes;  /* pending payload bytes */
};

enum cg_outq_result {
    CG_OUTQ_QUEUED = 0,
    CG_OUTQ_CONFLATED = 1, /* replaced an older pending tick of the same instrument */
    CG_OUTQ_FULL = -1,     /* hard bound reached: nothing queued */
    CG_OUTQ_NOMEM = -2,
};

void cg_outq_init(struct cg_outq *q);
/* Drops every pending frame and frees the ring. */
void cg_outq_finish(struct cg_outq *q);

/* Queues f (borrowed; the queue takes a reference). slot, for a TICK frame, is the
 * subscriber's memory of where its pending tick sits (0 = none); it is read and
 * updated. Pass NULL for frames that must not conflate. */
enum cg_outq_result cg_outq_push(struct cg_outq *q, const struct cg_outq_limits *lim,
                                 struct cg_frame *f, uint64_t *slot);

/* The i-th pending frame (0 = oldest), borrowed; i < count. */
struct cg_frame *cg_outq_peek(const struct cg_outq *q, uint32_t i);
/* Drops the oldest n pending frames. */
void cg_outq_pop(struct cg_outq *q, uint32_t n);

#endif
