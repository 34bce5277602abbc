/* test_chart.c -- unit tests of per-instrument chart state (gateway/chart.h): tick
 * field extraction, per-tick and cumulative volume, the series per interval, the
 * last tick, and the resume ring with its floor. */
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "chart.h"
#include "check.h"

/* Loads a configuration from "chartgate" + the given flags (NULL-terminated). */
static int load_cfg(struct cg_config *cfg, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "chartgate";
    va_list ap;
    va_start(ap, cfg);
    for (char *a; argc < 31 && (a = va_arg(ap, char *));)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    char err[256];
    int rc = cg_config_load(cfg, argc, argv, "web", err, sizeof(err), NULL);
    if (rc != CG_CONFIG_OK)
        fprintf(stderr, "config: %s\n", err);
    return rc;
}

static struct cg_frame *last_frame; /* the tick frame of the last feed() */

/* Applies the tick whose data is json as seq; ev receives the events. The frame made
 * for it is left in last_frame with the ring's references only (or freed). */
static int feed(struct cg_chart *c, const struct cg_config *cfg, uint64_t seq, const char *json,
                int64_t now_ms, struct cg_chart_event *ev)
{
    json_error_t jerr;
    json_t *data = json_loads(json, 0, &jerr);
    if (!data) {
        fprintf(stderr, "bad test JSON %s: %s\n", json, jerr.text);
        return -100;
    }
    char *text = json_dumps(data, JSON_COMPACT);
    size_t len = strlen(text);
    struct cg_frame *f = cg_frame_tick(c, "rb2501", seq, text, len);
    int n = cg_chart_tick(c, cfg, seq, data, text, len, f, now_ms, ev);
    last_frame = f->refs > 1 ? f : NULL;
    cg_frame_unref(f);
    free(text);
    json_decref(data);
    return n;
}

/* Applies a tick and returns the new forming bar's volume in series i. */
static double vol_after(struct cg_chart *c, const struct cg_config *cfg, uint64_t seq,
                        const char *json)
{
    struct cg_chart_event ev[CG_CHART_EVENTS_MAX];
    feed(c, cfg, seq, json, 0, ev);
    const struct cg_series *s = &c->series[0];
    return cg_series_size(s) ? cg_series_at(s, cg_series_size(s) - 1)->v : -1;
}

static void test_create(void)
{
    struct cg_config cfg;
    if (!CHECK_INT(load_cfg(&cfg, NULL), CG_CONFIG_OK))
        return;
    struct cg_chart *c = cg_chart_create(&cfg, "rb2501", 7);
    if (!CHECK(c != NULL))
        return;
    CHECK_UINT(c->nseries, 6);
    static const int64_t ms[] = {1000, 60000, 300000, 900000, 3600000, 86400000};
    for (int i = 0; i < 6; i++) {
        CHECK_INT(c->series[i].ms, ms[i]);
        CHECK_UINT(c->series[i].depth, 300);
        CHECK_UINT(cg_series_size(&c->series[i]), 0);
        CHECK(c->series[i].ring == NULL);
        CHECK_UINT(c->interval_refs[i], 0);
    }
    CHECK(c->last == NULL);
    CHECK_UINT(c->last_len, 0);
    CHECK_UINT(c->last_seq, 0);
    CHECK_INT(c->cumulative, 0);
    CHECK_INT(c->has_total, 0);
    CHECK(c->ring == NULL); /* allocated at the first tick */
    CHECK(c->ring_seq == NULL);
    CHECK_UINT(c->ring_cap, 256);
    CHECK_UINT(c->ring_count, 0);
    CHECK_UINT(c->floor, 8);
    CHECK_INT(c->stale, 0);
    CHECK_UINT(c->late_ignored, 0);
    /* Nothing to resume from yet: the client's seq 7 predates the chart. */
    CHECK_INT(cg_chart_can_resume(c, 7, 7), 0);
    cg_chart_destroy(c);
    cg_chart_destroy(NULL);

    if (!CHECK_INT(load_cfg(&cfg, "--intervals=1m,5m", "--bars-depth=5", "--resume-ring=3",
                            "--cumulative-volume=rb,au", NULL),
                   CG_CONFIG_OK))
        return;
    static const struct {
        const char *name;
        int cumulative;
    } names[] = {{"rb2501", 1}, {"au2412", 1}, {"rb", 1},  {"cu2501", 0},
                 {"r", 0},      {"RB2501", 0}, {"xrb1", 0}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        c = cg_chart_create(&cfg, names[i].name, 0);
        if (!CHECK(c != NULL))
            continue;
        if (!CHECK_INT(c->cumulative, names[i].cumulative))
            fprintf(stderr, "    for %s\n", names[i].name);
        CHECK_UINT(c->nseries, 2);
        CHECK_INT(c->series[0].ms, 60000);
        CHECK_INT(c->series[1].ms, 300000);
        CHECK_UINT(c->series[1].depth, 5);
        CHECK_UINT(c->ring_cap, 3);
        CHECK_UINT(c->floor, 1);
        cg_chart_destroy(c);
    }
    if (!CHECK_INT(load_cfg(&cfg, "--cumulative-volume=*", NULL), CG_CONFIG_OK))
        return;
    c = cg_chart_create(&cfg, "anything", 0);
    if (CHECK(c != NULL)) {
        CHECK_INT(c->cumulative, 1);
        cg_chart_destroy(c);
    }
}

/* Price, volume and timestamp come from the configured fields; ts falls back to the
 * arrival time when absent, not a number or out of range; no numeric price: no bar. */
static void test_fields(void)
{
    struct cg_config cfg;
    if (!CHECK_INT(load_cfg(&cfg, "--intervals=1m,5m", "--price-field=px", "--volume-field=qty",
                            "--ts-field=time", NULL),
                   CG_CONFIG_OK))
        return;
    struct cg_chart *c = cg_chart_create(&cfg, "rb2501", 0);
    if (!CHECK(c != NULL))
        return;
    struct cg_chart_event ev[CG_CHART_EVENTS_MAX];
    memset(ev, 0, sizeof(ev));
    CHECK_INT(feed(c, &cfg, 1, "{\"px\":3850.5,\"qty\":2,\"time\":1732249985123}", 5, ev), 2);
    CHECK_UINT(ev[0].interval, 0);
    CHECK_INT(ev[0].ev.kind, CG_BAR_UPDATED);
    CHECK_INT(ev[0].ev.bar.t, 1732249980000);
    CHECK(ev[0].ev.bar.o == 3850.5 && ev[0].ev.bar.c == 3850.5);
    CHECK(ev[0].ev.bar.v == 2);
    CHECK_UINT(ev[0].ev.bar.seq, 1);
    CHECK_UINT(ev[1].interval, 1);
    CHECK_INT(ev[1].ev.kind, CG_BAR_UPDATED);
    CHECK_INT(ev[1].ev.bar.t, 1732249800000);
    CHECK(ev[1].ev.bar.v == 2);
    CHECK_STR(c->last, "{\"px\":3850.5,\"qty\":2,\"time\":1732249985123}");
    CHECK_UINT(c->last_len, strlen(c->last));
    CHECK_UINT(c->last_seq, 1);

    /* The default field names mean nothing here: no price, no bar; the last tick
     * and the ring still take it. */
    CHECK_INT(feed(c, &cfg, 2, "{\"last_price\":1,\"volume\":5,\"ts\":1732249990000}", 5, ev), 0);
    CHECK_STR(c->last, "{\"last_price\":1,\"volume\":5,\"ts\":1732249990000}");
    CHECK_UINT(c->last_seq, 2);
    CHECK_UINT(c->ring_count, 2);
    CHECK(cg_series_at(&c->series[0], 0)->c == 3850.5);
    CHECK_UINT(cg_series_at(&c->series[0], 0)->seq, 1);
    /* A price that is not a number: no bar either. */
    CHECK_INT(feed(c, &cfg, 3, "{\"px\":\"3851\",\"time\":1732249990000}", 5, ev), 0);
    CHECK_INT(feed(c, &cfg, 4, "{\"px\":null,\"time\":1732249990000}", 5, ev), 0);
    CHECK_INT(feed(c, &cfg, 5, "{\"px\":true,\"time\":1732249990000}", 5, ev), 0);
    CHECK_UINT(cg_series_at(&c->series[0], 0)->seq, 1);

    /* Integer price, volume missing (0), real ts. */
    CHECK_INT(feed(c, &cfg, 6, "{\"px\":3852,\"time\":1732249991000.0}", 5, ev), 2);
    CHECK_INT(ev[0].ev.kind, CG_BAR_UPDATED);
    CHECK(ev[0].ev.bar.h == 3852 && ev[0].ev.bar.c == 3852);
    CHECK(ev[0].ev.bar.v == 2);
    CHECK_UINT(ev[0].ev.bar.seq, 6);
    /* Volume not a number: 0. */
    CHECK_INT(feed(c, &cfg, 7, "{\"px\":3851,\"qty\":\"9\",\"time\":1732249992000}", 5, ev), 2);
    CHECK(ev[0].ev.bar.v == 2);
    CHECK(ev[0].ev.bar.c == 3851);
    cg_chart_destroy(c);

    /* Timestamp fallbacks: absent, a string, 0, negative, >= 1e15 use now_ms;
     * 1e15 - 1 is taken. Each tick lands in a bucket that tells which was used. */
    static const struct {
        const char *json;
        int64_t now, t;
    } cases[] = {
        {"{\"px\":1}", 125000, 120000},
        {"{\"px\":1,\"time\":\"1732249985123\"}", 185000, 180000},
        {"{\"px\":1,\"time\":0}", 245000, 240000},
        {"{\"px\":1,\"time\":-600000}", 305000, 300000},
        {"{\"px\":1,\"time\":1000000000000000}", 365000, 360000},
        {"{\"px\":1,\"time\":1e15}", 425000, 420000},
        {"{\"px\":1,\"time\":999999999999999}", 485000, 999999999960000},
        {"{\"px\":1,\"time\":60000.9}", 1, 60000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        c = cg_chart_create(&cfg, "rb2501", 0);
        if (!CHECK(c != NULL))
            return;
        CHECK_INT(feed(c, &cfg, 1, cases[i].json, cases[i].now, ev), 2);
        if (!CHECK_INT(ev[0].ev.bar.t, cases[i].t))
            fprintf(stderr, "    for %s\n", cases[i].json);
        cg_chart_destroy(c);
    }
}

/* One tick closing bars in several intervals: events in interval order, each
 * interval's CLOSED before its UPDATED; all carry the tick's seq. */
static void test_events(void)
{
    struct cg_config cfg;
    if (!CHECK_INT(load_cfg(&cfg, "--intervals=1m,5m,1h", NULL), CG_CONFIG_OK))
        return;
    struct cg_chart *c = cg_chart_create(&cfg, "rb2501", 0);
    if (!CHECK(c != NULL))
        return;
    struct cg_chart_event ev[CG_CHART_EVENTS_MAX];
    CHECK_INT(feed(c, &cfg, 1, "{\"last_price\":10,\"volume\":1,\"ts\":3599000}", 0, ev), 3);
    CHECK_INT(feed(c, &cfg, 2, "{\"last_price\":11,\"volume\":2,\"ts\":3599500}", 0, ev), 3);
    /* 3600000: a new 1m, 5m and 1h bucket. */
    CHECK_INT(feed(c, &cfg, 3, "{\"last_price\":12,\"volume\":4,\"ts\":3600000}", 0, ev), 6);
    static const int64_t closed_t[] = {3540000, 3300000, 0};
    for (int i = 0; i < 6; i++) {
        CHECK_UINT(ev[i].interval, (uint32_t)i / 2);
        CHECK_INT(ev[i].ev.kind, i % 2 ? CG_BAR_UPDATED : CG_BAR_CLOSED);
        CHECK_UINT(ev[i].ev.bar.seq, 3);
        CHECK(ev[i].ev.bar.v == (i % 2 ? 4 : 3));
        CHECK(ev[i].ev.bar.c == (i % 2 ? 12 : 11));
        CHECK_INT(ev[i].ev.bar.t, i % 2 ? 3600000 : closed_t[i / 2]);
    }
    /* Only the 1m bar closes. */
    CHECK_INT(feed(c, &cfg, 4, "{\"last_price\":13,\"volume\":1,\"ts\":3660000}", 0, ev), 4);
    CHECK_UINT(ev[0].interval, 0);
    CHECK_INT(ev[0].ev.kind, CG_BAR_CLOSED);
    CHECK_UINT(ev[1].interval, 0);
    CHECK_INT(ev[1].ev.kind, CG_BAR_UPDATED);
    CHECK_UINT(ev[2].interval, 1);
    CHECK_INT(ev[2].ev.kind, CG_BAR_UPDATED);
    CHECK(ev[2].ev.bar.v == 5);
    CHECK_UINT(ev[3].interval, 2);
    CHECK_INT(ev[3].ev.kind, CG_BAR_UPDATED);

    /* A late tick: corrects the 1m bar at 3540000 and the 5m bar at 3300000; the 1h
     * bar at 0 is held too. Per-tick volume counts. */
    CHECK_INT(feed(c, &cfg, 5, "{\"last_price\":9,\"volume\":2,\"ts\":3599999}", 0, ev), 3);
    for (int i = 0; i < 3; i++) {
        CHECK_UINT(ev[i].interval, (uint32_t)i);
        CHECK_INT(ev[i].ev.kind, CG_BAR_CORRECTED);
        CHECK(ev[i].ev.bar.l == 9 && ev[i].ev.bar.c == 11 && ev[i].ev.bar.v == 5);
        CHECK_UINT(ev[i].ev.bar.seq, 5);
    }
    CHECK_UINT(c->late_ignored, 0);
    /* Older than every 1m and 5m bar held; the 1h series still holds the bar at 0. */
    CHECK_INT(feed(c, &cfg, 6, "{\"last_price\":8,\"volume\":1,\"ts\":60000}", 0, ev), 1);
    CHECK_UINT(ev[0].interval, 2);
    CHECK_INT(ev[0].ev.kind, CG_BAR_CORRECTED);
    CHECK_INT(ev[0].ev.bar.t, 0);
    CHECK(ev[0].ev.bar.l == 8 && ev[0].ev.bar.v == 6);
    CHECK_UINT(c->late_ignored, 2); /* one per interval that ignored it */
    /* No ts: the arrival time is used (here the forming buckets). */
    CHECK_INT(feed(c, &cfg, 7, "{\"last_price\":8,\"volume\":1}", 3660001, ev), 3);
    for (int i = 0; i < 3; i++)
        CHECK_INT(ev[i].ev.kind, CG_BAR_UPDATED);
    CHECK_UINT(c->late_ignored, 2);
    /* Older than every bar held in every interval: no event, counted thrice. */
    CHECK_INT(feed(c, &cfg, 8, "{\"last_price\":8,\"volume\":1}", -3600001, ev), 0);
    CHECK_UINT(c->late_ignored, 5);
    cg_chart_destroy(c);
}

/* Per-tick volume: v sums the field. */
static void test_volume_per_tick(void)
{
    struct cg_config cfg;
    if (!CHECK_INT(load_cfg(&cfg, "--intervals=1m", "--cumulative-volume=au", NULL), CG_CONFIG_OK))
        return;
    struct cg_chart *c = cg_chart_create(&cfg, "rb2501", 0);
    if (!CHECK(c != NULL))
        return;
    CHECK_INT(c->cumulative, 0);
    CHECK(vol_after(c, &cfg, 1, "{\"last_price\":1,\"volume\":1000,\"ts\":1000}") == 1000);
    CHECK(vol_after(c, &cfg, 2, "{\"last_price\":1,\"volume\":4,\"ts\":2000}") == 1004);
    CHECK(vol_after(c, &cfg, 3, "{\"last_price\":1,\"volume\":0.5,\"ts\":1500}") == 1004.5);
    CHECK(vol_after(c, &cfg, 4, "{\"last_price\":1,\"volume\":3,\"ts\":3000}") == 1007.5);
    CHECK_INT(c->has_total, 0);
    cg_chart_destroy(c);
}

/* Cumulative volume (PROTOCOL.md §14): the first total adds 0; then positive
 * differences; a lower total with a later (or equal) time is a new session and
 * counts itself; a late tick adds 0 and does not move the running total. */
static void test_volume_cumulative(void)
{
    struct cg_config cfg;
    if (!CHECK_INT(load_cfg(&cfg, "--intervals=1m", "--cumulative-volume=rb", NULL), CG_CONFIG_OK))
        return;
    struct cg_chart *c = cg_chart_create(&cfg, "rb2501", 0);
    if (!CHECK(c != NULL))
        return;
    CHECK_INT(c->cumulative, 1);
    /* §14's example: 1000, 1004, 1004, 1010 -> 0 + 4 + 0 + 6 = 10; then 3 adds 3. */
    CHECK(vol_after(c, &cfg, 1, "{\"last_price\":1,\"volume\":1000,\"ts\":1000}") == 0);
    CHECK_INT(c->has_total, 1);
    CHECK(c->total == 1000);
    CHECK(vol_after(c, &cfg, 2, "{\"last_price\":1,\"volume\":1004,\"ts\":2000}") == 4);
    CHECK(vol_after(c, &cfg, 3, "{\"last_price\":1,\"volume\":1004,\"ts\":3000}") == 4);
    CHECK(vol_after(c, &cfg, 4, "{\"last_price\":1,\"volume\":1010,\"ts\":4000}") == 10);
    CHECK(vol_after(c, &cfg, 5, "{\"last_price\":1,\"volume\":3,\"ts\":5000}") == 13);
    CHECK(c->total == 3);
    CHECK_INT(c->total_ts, 5000);
    /* Late (ts before the newest total): adds 0 whatever its total, which is not
     * taken as the running total either (no session reset by a late low total). */
    CHECK(vol_after(c, &cfg, 6, "{\"last_price\":1,\"volume\":1,\"ts\":4500}") == 13);
    CHECK(vol_after(c, &cfg, 7, "{\"last_price\":1,\"volume\":1012,\"ts\":4600}") == 13);
    CHECK(c->total == 3);
    CHECK_INT(c->total_ts, 5000);
    CHECK(vol_after(c, &cfg, 8, "{\"last_price\":1,\"volume\":8,\"ts\":6000}") == 18);
    /* A late tick into a completed bar adds 0 to it as well. */
    struct cg_chart_event ev[CG_CHART_EVENTS_MAX];
    CHECK(vol_after(c, &cfg, 9, "{\"last_price\":1,\"volume\":20,\"ts\":61000}") == 12);
    CHECK_INT(feed(c, &cfg, 10, "{\"last_price\":0.5,\"volume\":30,\"ts\":59000}", 0, ev), 1);
    CHECK_INT(ev[0].ev.kind, CG_BAR_CORRECTED);
    CHECK(ev[0].ev.bar.v == 18);
    CHECK(ev[0].ev.bar.l == 0.5);
    CHECK(c->total == 20);
    CHECK(vol_after(c, &cfg, 11, "{\"last_price\":1,\"volume\":25,\"ts\":62000}") == 17);
    /* Lower total, later time: a new session. */
    CHECK(vol_after(c, &cfg, 12, "{\"last_price\":1,\"volume\":2,\"ts\":63000}") == 19);
    /* A tick without a price updates no bar and takes no total. */
    CHECK_INT(feed(c, &cfg, 13, "{\"volume\":100,\"ts\":63500}", 0, ev), 0);
    CHECK(c->total == 2);
    CHECK(vol_after(c, &cfg, 14, "{\"last_price\":1,\"volume\":5,\"ts\":64000}") == 22);
    /* Integer and real totals mix. */
    CHECK(vol_after(c, &cfg, 15, "{\"last_price\":1,\"volume\":5.5,\"ts\":65000}") == 22.5);

    /* After a reset, the first total has no predecessor again. */
    cg_chart_reset(c, 15);
    CHECK_INT(c->has_total, 0);
    CHECK(vol_after(c, &cfg, 16, "{\"last_price\":1,\"volume\":500,\"ts\":70000}") == 0);
    CHECK(vol_after(c, &cfg, 17, "{\"last_price\":1,\"volume\":501,\"ts\":71000}") == 1);
    /* A gap keeps the running total (bars stay, best effort). */
    cg_chart_gap(c, 17);
    CHECK(vol_after(c, &cfg, 18, "{\"last_price\":1,\"volume\":511,\"ts\":72000}") == 11);
    cg_chart_destroy(c);
}

/* A cumulative tick whose volume field is missing carries no total: it must neither
 * count as a session reset nor make the next tick count the whole session total. */
static void test_volume_cumulative_missing(void)
{
    struct cg_config cfg;
    if (!CHECK_INT(load_cfg(&cfg, "--intervals=1m", "--cumulative-volume=*", NULL), CG_CONFIG_OK))
        return;
    struct cg_chart *c = cg_chart_create(&cfg, "rb2501", 0);
    if (!CHECK(c != NULL))
        return;
    CHECK(vol_after(c, &cfg, 1, "{\"last_price\":1,\"volume\":1000,\"ts\":1000}") == 0);
    CHECK(vol_after(c, &cfg, 2, "{\"last_price\":2,\"ts\":2000}") == 0);
    CHECK(vol_after(c, &cfg, 3, "{\"last_price\":1,\"volume\":1010,\"ts\":3000}") == 10);
    cg_chart_destroy(c);
}

/* ---- resume ------------------------------------------------------------------ */

static uint64_t replayed[64];
static size_t nreplayed;

/* The frames' seq, read back from their bytes. */
static void collect(void *arg, struct cg_frame *f)
{
    CHECK_PTR(arg, &nreplayed);
    char text[256]; /* frame data is not NUL-terminated */
    size_t n = f->len < sizeof(text) - 1 ? f->len : sizeof(text) - 1;
    memcpy(text, cg_frame_data(f), n);
    text[n] = 0;
    const char *p = strstr(text, "\"seq\":");
    if (nreplayed < 64)
        replayed[nreplayed] = p ? strtoull(p + 6, NULL, 10) : 0;
    nreplayed++;
}

/* The seqs replayed after since, as text: "12 13". */
static const char *replay_text(const struct cg_chart *c, uint64_t since)
{
    static char out[512];
    nreplayed = 0;
    cg_chart_replay(c, since, collect, &nreplayed);
    out[0] = 0;
    for (size_t i = 0, n = 0; i < nreplayed && i < 64; i++)
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%llu", i ? " " : "",
                              (unsigned long long)replayed[i]);
    return out;
}

static struct cg_frame *ptrs[8];
static size_t nptrs;

static void collect_ptr(void *arg, struct cg_frame *f)
{
    (void)arg;
    if (nptrs < 8)
        ptrs[nptrs] = f;
    nptrs++;
}

static void tick_n(struct cg_chart *c, const struct cg_config *cfg, uint64_t seq,
                   struct cg_frame **keep)
{
    struct cg_chart_event ev[CG_CHART_EVENTS_MAX];
    char json[128];
    snprintf(json, sizeof(json), "{\"last_price\":%llu,\"volume\":1,\"ts\":%llu}",
             (unsigned long long)seq, (unsigned long long)(seq * 1000));
    feed(c, cfg, seq, json, 0, ev);
    if (keep)
        *keep = last_frame ? cg_frame_ref(last_frame) : NULL;
}

static void test_resume(void)
{
    struct cg_config cfg;
    if (!CHECK_INT(load_cfg(&cfg, "--intervals=1s", "--resume-ring=4", NULL), CG_CONFIG_OK))
        return;
    struct cg_chart *c = cg_chart_create(&cfg, "rb2501", 10);
    if (!CHECK(c != NULL))
        return;
    CHECK_UINT(c->floor, 11);
    CHECK_INT(cg_chart_can_resume(c, 10, 10), 0);
    CHECK_STR(replay_text(c, 0), "");

    struct cg_frame *fr[40] = {0};
    for (uint64_t s = 11; s <= 13; s++)
        tick_n(c, &cfg, s, &fr[s]);
    CHECK(c->ring != NULL && c->ring_seq != NULL);
    CHECK_UINT(c->ring_count, 3);
    for (uint64_t s = 11; s <= 13; s++)
        if (CHECK(fr[s] != NULL))
            CHECK_UINT(fr[s]->refs, 2); /* ours and the ring's */
    CHECK_INT(cg_chart_can_resume(c, 11, 13), 1);
    CHECK_STR(replay_text(c, 11), "12 13");
    CHECK_INT(cg_chart_can_resume(c, 12, 13), 1);
    CHECK_STR(replay_text(c, 12), "13");
    CHECK_INT(cg_chart_can_resume(c, 13, 13), 1); /* nothing missed */
    CHECK_STR(replay_text(c, 13), "");
    CHECK_INT(cg_chart_can_resume(c, 14, 13), 0); /* not from this counter */
    CHECK_INT(cg_chart_can_resume(c, 10, 13), 0); /* below the floor */
    CHECK_INT(cg_chart_can_resume(c, 0, 13), 0);
    CHECK_STR(replay_text(c, 10), "11 12 13");

    /* The ring keeps the newest 4: 13..16; the frames dropped lose its reference. */
    for (uint64_t s = 14; s <= 16; s++)
        tick_n(c, &cfg, s, &fr[s]);
    CHECK_UINT(c->ring_count, 4);
    CHECK_UINT(fr[11]->refs, 1);
    CHECK_UINT(fr[12]->refs, 1);
    CHECK_UINT(fr[13]->refs, 2);
    CHECK_UINT(fr[16]->refs, 2);
    CHECK_INT(cg_chart_can_resume(c, 12, 16), 1); /* 13..16 held */
    CHECK_STR(replay_text(c, 12), "13 14 15 16");
    CHECK_INT(cg_chart_can_resume(c, 11, 16), 0); /* 12 is gone */
    CHECK_INT(cg_chart_can_resume(c, 15, 16), 1);
    CHECK_STR(replay_text(c, 15), "16");
    CHECK_STR(replay_text(c, 0), "13 14 15 16");
    /* Replayed frames are the very frames given (borrowed, not copies). */
    nptrs = 0;
    cg_chart_replay(c, 14, collect_ptr, NULL);
    CHECK_UINT(nptrs, 2);
    CHECK_PTR(ptrs[0], fr[15]);
    CHECK_PTR(ptrs[1], fr[16]);
    CHECK_UINT(fr[15]->refs, 2);

    /* A tick without a price still enters the ring. */
    {
        struct cg_chart_event ev[CG_CHART_EVENTS_MAX];
        CHECK_INT(feed(c, &cfg, 17, "{\"bid\":1}", 0, ev), 0);
        fr[17] = last_frame ? cg_frame_ref(last_frame) : NULL;
    }
    CHECK_STR(replay_text(c, 15), "16 17");
    CHECK_UINT(fr[13]->refs, 1);
    CHECK_INT(cg_chart_can_resume(c, 16, 17), 1);

    /* A gap at 17: bars and ring stay, only clients that saw a tick after 17 can
     * resume. */
    size_t bars = cg_series_size(&c->series[0]);
    cg_chart_gap(c, 17);
    CHECK_UINT(c->floor, 18);
    CHECK_UINT(c->ring_count, 4);
    CHECK_UINT(cg_series_size(&c->series[0]), bars);
    CHECK_INT(cg_chart_can_resume(c, 17, 17), 0);
    CHECK_INT(cg_chart_can_resume(c, 16, 17), 0);
    tick_n(c, &cfg, 18, &fr[18]);
    tick_n(c, &cfg, 19, &fr[19]);
    CHECK_INT(cg_chart_can_resume(c, 17, 19), 0);
    CHECK_INT(cg_chart_can_resume(c, 18, 19), 1);
    CHECK_STR(replay_text(c, 18), "19");
    CHECK_INT(cg_chart_can_resume(c, 19, 19), 1);

    /* A reset at 19: bars and ring forgotten (references dropped), the last tick
     * kept. */
    char *last = c->last;
    size_t last_len = c->last_len;
    CHECK_STR(c->last, "{\"last_price\":19,\"volume\":1,\"ts\":19000}");
    cg_chart_reset(c, 19);
    CHECK_UINT(c->floor, 20);
    CHECK_UINT(c->ring_count, 0);
    for (uint64_t s = 11; s <= 19; s++)
        if (fr[s])
            CHECK_UINT(fr[s]->refs, 1);
    CHECK_UINT(cg_series_size(&c->series[0]), 0);
    CHECK_PTR(c->last, last);
    CHECK_UINT(c->last_len, last_len);
    CHECK_UINT(c->last_seq, 19);
    CHECK_STR(c->last, "{\"last_price\":19,\"volume\":1,\"ts\":19000}");
    CHECK_INT(cg_chart_can_resume(c, 19, 19), 0);
    CHECK_INT(cg_chart_can_resume(c, 18, 19), 0);
    CHECK_STR(replay_text(c, 0), "");
    tick_n(c, &cfg, 20, &fr[20]);
    CHECK_INT(cg_chart_can_resume(c, 19, 20), 0);
    CHECK_INT(cg_chart_can_resume(c, 20, 20), 1);
    tick_n(c, &cfg, 21, &fr[21]);
    CHECK_INT(cg_chart_can_resume(c, 20, 21), 1);
    CHECK_STR(replay_text(c, 20), "21");
    CHECK_STR(replay_text(c, 19), "20 21");
    CHECK_UINT(cg_series_size(&c->series[0]), 2);
    CHECK_INT(cg_series_at(&c->series[0], 0)->t, 20000);

    /* Wrap the ring several times. */
    for (uint64_t s = 22; s <= 33; s++)
        tick_n(c, &cfg, s, &fr[s]);
    CHECK_STR(replay_text(c, 0), "30 31 32 33");
    CHECK_INT(cg_chart_can_resume(c, 29, 33), 1);
    CHECK_INT(cg_chart_can_resume(c, 28, 33), 0);
    cg_chart_destroy(c);
    for (uint64_t s = 0; s < 40; s++) {
        if (fr[s]) {
            CHECK_UINT(fr[s]->refs, 1);
            cg_frame_unref(fr[s]);
        }
    }
}

/* --resume-ring=0: no ring at all; only a client that missed nothing "resumes". */
static void test_resume_no_ring(void)
{
    struct cg_config cfg;
    if (!CHECK_INT(load_cfg(&cfg, "--intervals=1s", "--resume-ring=0", NULL), CG_CONFIG_OK))
        return;
    struct cg_chart *c = cg_chart_create(&cfg, "rb2501", 0);
    if (!CHECK(c != NULL))
        return;
    CHECK_UINT(c->ring_cap, 0);
    struct cg_frame *f = NULL;
    tick_n(c, &cfg, 1, &f);
    CHECK(f == NULL); /* the ring took no reference */
    tick_n(c, &cfg, 2, NULL);
    CHECK(c->ring == NULL);
    CHECK_UINT(c->ring_count, 0);
    CHECK_INT(cg_chart_can_resume(c, 2, 2), 1);
    CHECK_INT(cg_chart_can_resume(c, 1, 2), 0);
    CHECK_STR(replay_text(c, 0), "");
    CHECK_UINT(c->last_seq, 2);
    cg_chart_destroy(c);
}

/* A reset before any tick, and of a chart whose ring was never allocated. */
static void test_reset_empty(void)
{
    struct cg_config cfg;
    if (!CHECK_INT(load_cfg(&cfg, NULL), CG_CONFIG_OK))
        return;
    struct cg_chart *c = cg_chart_create(&cfg, "rb2501", 5);
    if (!CHECK(c != NULL))
        return;
    cg_chart_reset(c, 9);
    CHECK_UINT(c->floor, 10);
    CHECK(c->last == NULL);
    CHECK(c->ring == NULL);
    cg_chart_gap(c, 12);
    CHECK_UINT(c->floor, 13);
    CHECK_INT(cg_chart_can_resume(c, 12, 12), 0);
    CHECK_INT(cg_chart_can_resume(c, 13, 13), 1);
    cg_chart_destroy(c);
}

int main(void)
{
    test_create();
    test_fields();
    test_events();
    test_volume_per_tick();
    test_volume_cumulative();
    test_volume_cumulative_missing();
    test_resume();
    test_resume_no_ring();
    test_reset_empty();
    return check_summary("chart");
}
