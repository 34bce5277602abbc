/* pace.c -- per-subscription maximum rate: slots holding the latest frame, in a min-heap. */
#include "pace.h"

#include <math.h>
#include <stdlib.h>

void cg_pace_init(struct cg_pace *p)
{
    p->heap = NULL;
    p->n = p->cap = 0;
}

void cg_pace_finish(struct cg_pace *p)
{
    for (uint32_t i = 0; i < p->n; i++) {
        cg_frame_unref(p->heap[i]->held);
        p->heap[i]->held = NULL;
        p->heap[i]->heap_i = 0;
    }
    free(p->heap);
    cg_pace_init(p);
}

uint32_t cg_pace_interval_ms(double rate)
{
    return (uint32_t)ceil(1000.0 / rate - 1e-9);
}

struct cg_pace_sub *cg_pace_sub_create(uint32_t interval_ms, uint32_t nslots, void *owner)
{
    struct cg_pace_sub *ps = calloc(1, sizeof(*ps) + nslots * sizeof(ps->slot[0]));
    if (!ps)
        return NULL;
    ps->nslots = nslots;
    for (uint32_t k = 0; k < nslots; k++) {
        ps->slot[k].kind = k;
        ps->slot[k].interval_ms = interval_ms;
        ps->slot[k].owner = owner;
    }
    return ps;
}

void cg_pace_sub_destroy(struct cg_pace *p, struct cg_pace_sub *ps)
{
    if (!ps)
        return;
    for (uint32_t k = 0; k < ps->nslots; k++)
        cg_pace_drop(p, &ps->slot[k]);
    free(ps);
}

/* ---- the heap (heap_i is position + 1) ------------------------------------------- */

static void put(struct cg_pace *p, uint32_t i, struct cg_pace_slot *s)
{
    p->heap[i] = s;
    s->heap_i = i + 1;
}

static void sift_up(struct cg_pace *p, uint32_t i)
{
    struct cg_pace_slot *s = p->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (p->heap[parent]->next_ms <= s->next_ms)
            break;
        put(p, i, p->heap[parent]);
        i = parent;
    }
    put(p, i, s);
}

static void sift_down(struct cg_pace *p, uint32_t i)
{
    struct cg_pace_slot *s = p->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= p->n)
            break;
        if (c + 1 < p->n && p->heap[c + 1]->next_ms < p->heap[c]->next_ms)
            c++;
        if (p->heap[c]->next_ms >= s->next_ms)
            break;
        put(p, i, p->heap[c]);
        i = c;
    }
    put(p, i, s);
}

static void remove_at(struct cg_pace *p, uint32_t i)
{
    p->heap[i]->heap_i = 0;
    struct cg_pace_slot *last = p->heap[--p->n];
    if (i == p->n)
        return;
    p->heap[i] = last;
    if (i > 0 && p->heap[(i - 1) / 2]->next_ms > last->next_ms)
        sift_up(p, i);
    else
        sift_down(p, i);
}

static int insert(struct cg_pace *p, struct cg_pace_slot *s)
{
    if (p->n == p->cap) {
        uint32_t ncap = p->cap ? p->cap * 2 : 64;
        struct cg_pace_slot **h = realloc(p->heap, ncap * sizeof(*h));
        if (!h)
            return -1;
        p->heap = h;
        p->cap = ncap;
    }
    p->heap[p->n] = s;
    sift_up(p, p->n++);
    return 0;
}

/* ---- slots ------------------------------------------------------------------------ */

enum cg_pace_result cg_pace_offer(struct cg_pace *p, struct cg_pace_slot *s, uint64_t now,
                                  struct cg_frame *f)
{
    if (s->held) { /* waiting already: the newer frame takes the place of the held one */
        cg_frame_unref(s->held);
        s->held = cg_frame_ref(f);
        return CG_PACE_REPLACED;
    }
    if (now >= s->next_ms) {
        s->next_ms = now + s->interval_ms;
        return CG_PACE_SEND;
    }
    if (insert(p, s))
        return CG_PACE_NOMEM;
    s->held = cg_frame_ref(f);
    return CG_PACE_HELD;
}

struct cg_pace_slot *cg_pace_due(struct cg_pace *p, uint64_t now, struct cg_frame **f)
{
    if (!p->n || p->heap[0]->next_ms > now)
        return NULL;
    struct cg_pace_slot *s = p->heap[0];
    remove_at(p, 0);
    *f = s->held;
    s->held = NULL;
    s->next_ms = now + s->interval_ms;
    return s;
}

void cg_pace_drop(struct cg_pace *p, struct cg_pace_slot *s)
{
    if (s->heap_i)
        remove_at(p, s->heap_i - 1);
    cg_frame_unref(s->held);
    s->held = NULL;
}

uint64_t cg_pace_next(const struct cg_pace *p)
{
    return p->n ? p->heap[0]->next_ms : UINT64_MAX;
}
