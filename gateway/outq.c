/* outq.c -- bounded per-client frame queue with per-instrument tick conflation. */
#include "outq.h"

#include <stdlib.h>

#define MIN_CAP 8

void cg_outq_init(struct cg_outq *q)
{
    q->ring = NULL;
    q->cap = 0;
    q->count = 0;
    q->head = 0;
    q->bytes = 0;
}

void cg_outq_finish(struct cg_outq *q)
{
    cg_outq_pop(q, q->count);
    free(q->ring);
    q->ring = NULL;
    q->cap = 0;
}

static struct cg_frame **at(const struct cg_outq *q, uint64_t pos)
{
    return &q->ring[pos & (q->cap - 1)];
}

/* Grows the ring keeping every pending frame at pos & (cap - 1). */
static int grow(struct cg_outq *q)
{
    uint32_t ncap = q->cap ? q->cap * 2 : MIN_CAP;
    struct cg_frame **r = malloc(sizeof(*r) * ncap);
    if (!r)
        return -1;
    for (uint64_t p = q->head; p < q->head + q->count; p++)
        r[p & (ncap - 1)] = *at(q, p);
    free(q->ring);
    q->ring = r;
    q->cap = ncap;
    return 0;
}

enum cg_outq_result cg_outq_push(struct cg_outq *q, const struct cg_outq_limits *lim,
                                 struct cg_frame *f, uint64_t *slot)
{
    int behind = q->count >= lim->conflate_frames || q->bytes >= lim->conflate_bytes;
    if (slot && behind && *slot > q->head) { /* slot holds position + 1 */
        struct cg_frame **old = at(q, *slot - 1);
        if ((*old)->ckey == f->ckey) {
            if (q->bytes - (*old)->len + f->len > lim->max_bytes)
                return CG_OUTQ_FULL;
            q->bytes = q->bytes - (*old)->len + f->len;
            cg_frame_unref(*old);
            *old = cg_frame_ref(f);
            return CG_OUTQ_CONFLATED;
        }
    }
    if (q->count + 1 > lim->max_frames || q->bytes + f->len > lim->max_bytes)
        return CG_OUTQ_FULL;
    if (q->count == q->cap && grow(q))
        return CG_OUTQ_NOMEM;
    uint64_t pos = q->head + q->count;
    *at(q, pos) = cg_frame_ref(f);
    q->count++;
    q->bytes += f->len;
    if (slot)
        *slot = pos + 1;
    return CG_OUTQ_QUEUED;
}

struct cg_frame *cg_outq_peek(const struct cg_outq *q, uint32_t i)
{
    return *at(q, q->head + i);
}

void cg_outq_pop(struct cg_outq *q, uint32_t n)
{
    for (uint32_t i = 0; i < n && q->count; i++) {
        struct cg_frame **f = at(q, q->head);
        q->bytes -= (*f)->len;
        cg_frame_unref(*f);
        q->head++;
        q->count--;
    }
    /* An idle socket should cost no ring: most of 10k connections are quiet. */
    if (!q->count && q->cap > 4 * MIN_CAP) {
        free(q->ring);
        q->ring = NULL;
        q->cap = 0;
    }
}
