/* chart.c -- per-instrument chart state: tick fields, volume, series, resume ring. */
#include "chart.h"

#include <stdlib.h>
#include <string.h>

struct cg_chart *cg_chart_create(const struct cg_config *cfg, const char *name, uint64_t seq)
{
    struct cg_chart *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->nseries = cfg->nintervals;
    for (uint32_t i = 0; i < c->nseries; i++) {
        if (cg_series_init(&c->series[i], cfg->interval_ms[i], cfg->bars_depth)) {
            c->nseries = i;
            goto fail;
        }
    }
    c->ring_cap = cfg->resume_ring; /* allocated at the first tick */
    for (uint32_t i = 0; i < cfg->ncumulative; i++) {
        const char *p = cfg->cumulative[i];
        if (!strcmp(p, "*") || !strncmp(name, p, strlen(p)))
            c->cumulative = 1;
    }
    c->floor = seq + 1;
    return c;
fail:
    cg_chart_destroy(c);
    return NULL;
}

static void ring_clear(struct cg_chart *c)
{
    for (uint32_t i = 0; i < c->ring_count; i++)
        cg_frame_unref(c->ring[(c->ring_head + i) % c->ring_cap]);
    c->ring_count = 0;
    c->ring_head = 0;
}

void cg_chart_destroy(struct cg_chart *c)
{
    if (!c)
        return;
    if (c->ring)
        ring_clear(c);
    for (uint32_t i = 0; i < c->nseries; i++)
        cg_series_finish(&c->series[i]);
    free(c->ring);
    free(c->ring_seq);
    free(c->last);
    free(c);
}

void cg_chart_set_calendar(struct cg_chart *c, struct cg_calendar *cal, const char *name)
{
    c->cal = cal && cal->active ? cal : NULL;
    c->sched = c->cal ? cg_calendar_match(c->cal, name) : NULL;
}

int cg_chart_expire(struct cg_chart *c, int64_t now, struct cg_chart_event ev[CG_CHART_EVENTS_MAX])
{
    int n = 0;
    for (uint32_t i = 0; i < c->nseries; i++) {
        if (cg_series_expire(&c->series[i], now, &ev[n].ev))
            ev[n++].interval = i;
    }
    return n;
}

void cg_chart_gap(struct cg_chart *c, uint64_t seq)
{
    c->floor = seq + 1;
}

void cg_chart_reset(struct cg_chart *c, uint64_t seq)
{
    for (uint32_t i = 0; i < c->nseries; i++)
        cg_series_clear(&c->series[i]);
    if (c->ring)
        ring_clear(c);
    /* The last tick stays: it is still the newest this process received (tick seq). */
    c->has_total = 0;
    c->floor = seq + 1;
}

static int number(json_t *v, double *out)
{
    if (!json_is_number(v))
        return 0;
    *out = json_number_value(v);
    return 1;
}

/* Volume of this tick: the field itself, or for running totals the increase
 * since the previous total (a drop while time moves forward is a new session,
 * whose total is this tick's volume; a late tick adds nothing, its volume is
 * already inside the newer total). */
static double tick_volume(struct cg_chart *c, double v, int64_t ts)
{
    if (!c->cumulative)
        return v;
    double d;
    if (!c->has_total)
        d = 0; /* the first total covers volume from before we were listening */
    else if (ts < c->total_ts)
        return 0;
    else
        d = v >= c->total ? v - c->total : v;
    c->has_total = 1;
    c->total = v;
    c->total_ts = ts;
    return d;
}

/* A copy of tick seq's compact JSON as the last value. 0, or -1 on OOM (the old one stays). */
static int keep_last(struct cg_chart *c, uint64_t seq, const char *text, size_t len)
{
    char *last = malloc(len + 1);
    if (!last)
        return -1;
    memcpy(last, text, len);
    last[len] = 0;
    free(c->last);
    c->last = last;
    c->last_len = len;
    c->last_seq = seq;
    return 0;
}

int cg_chart_tick(struct cg_chart *c, const struct cg_config *cfg, uint64_t seq, json_t *data,
                  const char *text, size_t len, struct cg_frame *frame, int64_t now_ms,
                  struct cg_chart_event ev[CG_CHART_EVENTS_MAX])
{
    int rc = 0;
    /* Shared seqs (PROTOCOL.md §19) can skip what this process never received: only a client
     * that saw the tick before the gap can be resumed from the ring. */
    if (c->last_seq && seq > c->last_seq + 1 && c->floor < seq - 1)
        c->floor = seq - 1;
    if (keep_last(c, seq, text, len))
        rc = -1;
    if (c->ring_cap && !c->ring) {
        c->ring = calloc(c->ring_cap, sizeof(*c->ring));
        c->ring_seq = calloc(c->ring_cap, sizeof(*c->ring_seq));
        if (!c->ring || !c->ring_seq) {
            free(c->ring);
            free(c->ring_seq);
            c->ring = NULL;
            c->ring_seq = NULL;
            rc = -1;
        }
    }
    if (c->ring) {
        if (c->ring_count == c->ring_cap) {
            cg_frame_unref(c->ring[c->ring_head]);
            c->ring_head = (c->ring_head + 1) % c->ring_cap;
            c->ring_count--;
        }
        uint32_t at = (c->ring_head + c->ring_count) % c->ring_cap;
        c->ring[at] = cg_frame_ref(frame);
        c->ring_seq[at] = seq;
        c->ring_count++;
    }
    double price, vol = 0, tsd;
    if (!number(json_object_get(data, cfg->price_field), &price))
        return rc;
    int has_vol = number(json_object_get(data, cfg->volume_field), &vol);
    int64_t ts = number(json_object_get(data, cfg->ts_field), &tsd) && tsd > 0 && tsd < 1e15
                     ? (int64_t)tsd
                     : now_ms;
    /* A tick without a volume adds none; for running totals it is not a reset. */
    vol = has_vol ? tick_volume(c, vol, ts) : 0;
    int n = 0;
    struct cg_cal_where w;
    if (c->sched) {
        int r = cg_cal_locate(c->sched, c->cal->slack, ts, &w);
        if (r < 0)
            return -1;
        if (r == 0) {
            c->off_session++;
            return rc < 0 ? rc : 0;
        }
    }
    for (uint32_t i = 0; i < c->nseries; i++) {
        struct cg_bar_event be[2];
        int k;
        if (c->sched) {
            struct cg_bar_bucket b;
            cg_cal_bucket(&w, c->series[i].ms, &b.t, &b.end);
            /* A bar ending at a session's close waits for ticks within the slack too. */
            b.grace = cfg->bar_close_grace_ms;
            b.settle = b.grace + (b.end == w.close || b.end == w.day_close ? c->cal->slack : 0);
            if (cg_series_expire(&c->series[i], now_ms, &ev[n].ev))
                ev[n++].interval = i;
            k = cg_series_add(&c->series[i], &b, w.ts, price, vol, seq, now_ms, be);
        } else {
            k = cg_series_tick(&c->series[i], ts, price, vol, seq, be);
        }
        if (k < 0) {
            c->late_ignored++;
            continue;
        }
        for (int j = 0; j < k; j++) {
            ev[n].interval = i;
            ev[n++].ev = be[j];
        }
    }
    return rc < 0 ? rc : n;
}

int64_t cg_chart_oldest_forming(const struct cg_chart *c, int64_t now)
{
    int64_t oldest = now;
    struct cg_cal_where w;
    if (c->cal && cg_cal_locate(c->sched, c->cal->slack, now, &w) != 1)
        return now - 86400000; /* between sessions: the last trading day's bars */
    for (uint32_t i = 0; i < c->nseries; i++) {
        int64_t ms = c->series[i].ms, t = now - now % ms, end;
        if (c->cal) {
            cg_cal_bucket(&w, ms, &t, &end);
            if (ms % 86400000 == 0)
                t = w.day_open; /* a day's label is its midnight; its ticks start at the open */
        }
        if (t < oldest)
            oldest = t;
    }
    return oldest;
}

int cg_chart_set_last(struct cg_chart *c, uint64_t seq, const char *text, size_t len)
{
    if (keep_last(c, seq, text, len))
        return -1;
    c->floor = seq; /* nothing before it is held */
    return 0;
}

int cg_chart_can_resume(const struct cg_chart *c, uint64_t since, uint64_t inst_seq)
{
    if (since < c->floor || since > inst_seq)
        return 0;
    if (since == inst_seq)
        return 1; /* nothing missed */
    return c->ring_count && c->ring_seq[c->ring_head] <= since + 1;
}

void cg_chart_replay(const struct cg_chart *c, uint64_t since,
                     void (*fn)(void *arg, struct cg_frame *f), void *arg)
{
    for (uint32_t i = 0; i < c->ring_count; i++) {
        uint32_t at = (c->ring_head + i) % c->ring_cap;
        if (c->ring_seq[at] > since)
            fn(arg, c->ring[at]);
    }
}
