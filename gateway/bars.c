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
    free(s->ring_due);
    s->ring = NULL;
    s->ring_due = NULL;
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

static int64_t completed_due(const struct cg_series *s, uint32_t i)
{
    return s->ring_due ? s->ring_due[(s->head + i) % s->cap] : 0;
}

/* The ring grows as bars complete, up to depth: a series that never ticked, or
 * ticked little, costs little (clients can name many instruments). */
static int grow(struct cg_series *s)
{
    uint32_t ncap = s->cap ? s->cap * 2 : 16;
    if (ncap > s->depth)
        ncap = s->depth;
    struct cg_bar *r = malloc(sizeof(*r) * ncap);
    int64_t *d = s->timed ? malloc(sizeof(*d) * ncap) : NULL;
    if (!r || (s->timed && !d)) {
        free(r);
        free(d);
        return -1;
    }
    for (uint32_t i = 0; i < s->count; i++) {
        r[i] = *completed(s, i);
        if (d)
            d[i] = completed_due(s, i);
    }
    free(s->ring);
    free(s->ring_due);
    s->ring = r;
    s->ring_due = d;
    s->cap = ncap;
    s->head = 0;
    return 0;
}

static void push_completed(struct cg_series *s, const struct cg_bar *b, int64_t due)
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
    if (s->ring_due)
        s->ring_due[(s->head + s->count) % s->cap] = due;
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

static int64_t due_at(const struct cg_bar_bucket *b, int64_t now)
{
    if (b->settle < 0)
        return 0;
    int64_t a = b->end + b->settle, c = now + b->grace;
    return a > c ? a : c;
}

int cg_series_add(struct cg_series *s, const struct cg_bar_bucket *b, int64_t ts, double price,
                  double volume, uint64_t seq, int64_t now, struct cg_bar_event ev[2])
{
    int n = 0;
    int64_t t = b->t;
    s->timed = b->settle >= 0;
    /* The newest bar: the forming one, or the last completed once the timer closed it. */
    int64_t newest = s->has_forming ? s->forming.t
                     : s->count     ? completed(s, s->count - 1)->t
                                    : INT64_MIN;
    if (s->has_forming && t == s->forming.t) {
        int late = ts < s->forming_ts;
        apply(&s->forming, price, volume, seq, late);
        if (!late)
            s->forming_ts = ts;
        s->forming_due = due_at(b, now);
    } else if (t > newest) {
        if (s->has_forming) {
            /* Closing is a change: a client resuming after this tick must be sent the
             * bar's final state. A correction stays possible until the bar was due. */
            s->forming.seq = seq;
            push_completed(s, &s->forming, s->forming_due);
            ev[n].kind = CG_BAR_CLOSED;
            ev[n++].bar = s->forming;
        }
        start(&s->forming, t, price, volume, seq);
        s->forming_ts = ts;
        s->forming_end = b->end;
        s->forming_due = due_at(b, now);
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
        struct cg_bar *bar = completed(s, lo);
        int64_t due = completed_due(s, lo);
        if (due && now >= due)
            return -1; /* final for good: past its grace */
        apply(bar, price, volume, seq, 1);
        ev[0].kind = CG_BAR_CORRECTED;
        ev[0].bar = *bar;
        return 1;
    }
    ev[n].kind = CG_BAR_UPDATED;
    ev[n++].bar = s->forming;
    return n;
}

int cg_series_tick(struct cg_series *s, int64_t ts, double price, double volume, uint64_t seq,
                   struct cg_bar_event ev[2])
{
    int64_t t = cg_bars_bucket(ts, s->ms);
    struct cg_bar_bucket b = {t, t + s->ms, -1, 0};
    return cg_series_add(s, &b, ts, price, volume, seq, 0, ev);
}

int64_t cg_series_due(const struct cg_series *s)
{
    return s->has_forming ? s->forming_due : 0;
}

int cg_series_expire(struct cg_series *s, int64_t now, struct cg_bar_event *ev)
{
    if (!s->has_forming || !s->forming_due || now < s->forming_due)
        return 0;
    push_completed(s, &s->forming, s->forming_due);
    s->has_forming = 0;
    ev->kind = CG_BAR_CLOSED;
    ev->bar = s->forming;
    return 1;
}

size_t cg_series_size(const struct cg_series *s)
{
    return s->count + (s->has_forming ? 1 : 0);
}

const struct cg_bar *cg_series_at(const struct cg_series *s, size_t i)
{
    return i < s->count ? completed(s, (uint32_t)i) : &s->forming;
}
