/* bars.c -- OHLCV series: bucketing, closing, late-tick corrections. */
#include "bars.h"

#include <stdlib.h>
#include <string.h>

int cg_series_init(struct cg_series *s, int64_t interval_ms, uint32_t depth)
{
    memset(s, 0, sizeof(*s));
    s->ms = interval_ms;
    s->depth = depth ? depth : 1;
    return 0;
}

void cg_series_finish(struct cg_series *s)
{
    free(s->ring);
    s->ring = NULL;
}

void cg_series_clear(struct cg_series *s)
{
    s->count = 0;
    s->head = 0;
    s->has_forming = 0;
}

int64_t cg_bars_bucket(int64_t ts, int64_t ms)
{
    int64_t r = ts % ms;
    return ts - (r < 0 ? r + ms : r);
}

static struct cg_bar *completed(const struct cg_series *s, uint32_t i)
{
    return &s->ring[(s->head + i) % s->cap];
}

/* The ring grows as bars complete, up to depth: a series that never ticked, or
 * ticked little, costs little (clients can name many instruments). */
static int grow(struct cg_series *s)
{
    uint32_t ncap = s->cap ? s->cap * 2 : 16;
    if (ncap > s->depth)
        ncap = s->depth;
    struct cg_bar *r = malloc(sizeof(*r) * ncap);
    if (!r)
        return -1;
    for (uint32_t i = 0; i < s->count; i++)
        r[i] = *completed(s, i);
    free(s->ring);
    s->ring = r;
    s->cap = ncap;
    s->head = 0;
    return 0;
}

static void push_completed(struct cg_series *s, const struct cg_bar *b)
{
    if (s->count == s->cap && s->cap < s->depth)
        grow(s); /* on failure the oldest bar makes room instead */
    if (!s->cap)
        return;               /* out of memory before the first bar: it is not kept */
    if (s->count == s->cap) { /* drop the oldest */
        s->head = (s->head + 1) % s->cap;
        s->count--;
    }
    *completed(s, s->count) = *b;
    s->count++;
}

static void start(struct cg_bar *b, int64_t t, double price, double volume, uint64_t seq)
{
    b->t = t;
    b->o = b->h = b->l = b->c = price;
    b->v = volume;
    b->seq = seq;
}

static void apply(struct cg_bar *b, double price, double volume, uint64_t seq, int late)
{
    if (price > b->h)
        b->h = price;
    if (price < b->l)
        b->l = price;
    if (!late) /* a late tick never becomes the close: later ticks already happened */
        b->c = price;
    b->v += volume;
    b->seq = seq;
}

int cg_series_tick(struct cg_series *s, int64_t ts, double price, double volume, uint64_t seq,
                   struct cg_bar_event ev[2])
{
    int64_t t = cg_bars_bucket(ts, s->ms);
    int n = 0;
    if (s->has_forming && t == s->forming.t) {
        int late = ts < s->forming_ts;
        apply(&s->forming, price, volume, seq, late);
        if (!late)
            s->forming_ts = ts;
    } else if (!s->has_forming || t > s->forming.t) {
        if (s->has_forming) {
            /* Closing is a change: a client resuming after this tick must be sent
             * the bar's final state. */
            s->forming.seq = seq;
            push_completed(s, &s->forming);
            ev[n].kind = CG_BAR_CLOSED;
            ev[n++].bar = s->forming;
        }
        start(&s->forming, t, price, volume, seq);
        s->forming_ts = ts;
        s->has_forming = 1;
    } else {
        /* Late: binary search the completed ring (sorted by t). */
        uint32_t lo = 0, hi = s->count;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (completed(s, mid)->t < t)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == s->count || completed(s, lo)->t != t)
            return -1;
        struct cg_bar *b = completed(s, lo);
        apply(b, price, volume, seq, 1);
        ev[0].kind = CG_BAR_CORRECTED;
        ev[0].bar = *b;
        return 1;
    }
    ev[n].kind = CG_BAR_UPDATED;
    ev[n++].bar = s->forming;
    return n;
}

size_t cg_series_size(const struct cg_series *s)
{
    return s->count + (s->has_forming ? 1 : 0);
}

const struct cg_bar *cg_series_at(const struct cg_series *s, size_t i)
{
    return i < s->count ? completed(s, (uint32_t)i) : &s->forming;
}
