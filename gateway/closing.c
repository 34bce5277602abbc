/* closing.c -- the close schedule: an indexed binary min-heap of forming bars by due time. */
#include "closing.h"

#include <stdlib.h>

void cg_closing_init(struct cg_closing *q)
{
    q->heap = NULL;
    q->n = q->cap = 0;
}

void cg_closing_finish(struct cg_closing *q)
{
    for (size_t i = 0; i < q->n; i++)
        q->heap[i].series->heap_idx = 0;
    free(q->heap);
    cg_closing_init(q);
}

static void place(struct cg_closing *q, size_t i, const struct cg_closing_entry *e)
{
    q->heap[i] = *e;
    e->series->heap_idx = (uint32_t)i + 1;
}

static void sift_up(struct cg_closing *q, size_t i)
{
    struct cg_closing_entry e = q->heap[i];
    while (i) {
        size_t p = (i - 1) / 2;
        if (q->heap[p].due <= e.due)
            break;
        place(q, i, &q->heap[p]);
        i = p;
    }
    place(q, i, &e);
}

static void sift_down(struct cg_closing *q, size_t i)
{
    struct cg_closing_entry e = q->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n)
            break;
        if (c + 1 < q->n && q->heap[c + 1].due < q->heap[c].due)
            c++;
        if (e.due <= q->heap[c].due)
            break;
        place(q, i, &q->heap[c]);
        i = c;
    }
    place(q, i, &e);
}

int cg_closing_set(struct cg_closing *q, struct cg_series *s, void *owner, uint32_t interval,
                   int64_t due)
{
    if (s->heap_idx) {
        size_t i = s->heap_idx - 1;
        int64_t old = q->heap[i].due;
        q->heap[i].due = due;
        q->heap[i].owner = owner;
        q->heap[i].interval = interval;
        if (due < old)
            sift_up(q, i);
        else if (due > old)
            sift_down(q, i);
        return 0;
    }
    if (q->n == q->cap) {
        size_t nc = q->cap ? q->cap * 2 : 64;
        struct cg_closing_entry *h = realloc(q->heap, nc * sizeof(*h));
        if (!h)
            return -1;
        q->heap = h;
        q->cap = nc;
    }
    struct cg_closing_entry e = {due, s, owner, interval};
    q->heap[q->n++] = e;
    sift_up(q, q->n - 1);
    return 0;
}

void cg_closing_remove(struct cg_closing *q, struct cg_series *s)
{
    if (!s->heap_idx)
        return;
    size_t i = s->heap_idx - 1;
    s->heap_idx = 0;
    q->n--;
    if (i == q->n)
        return;
    int64_t old = q->heap[i].due;
    place(q, i, &q->heap[q->n]);
    if (q->heap[i].due < old)
        sift_up(q, i);
    else
        sift_down(q, i);
}

int64_t cg_closing_next(const struct cg_closing *q)
{
    return q->n ? q->heap[0].due : INT64_MAX;
}

int cg_closing_pop(struct cg_closing *q, int64_t now, struct cg_closing_entry *out)
{
    if (!q->n || q->heap[0].due > now)
        return 0;
    *out = q->heap[0];
    cg_closing_remove(q, out->series);
    return 1;
}
