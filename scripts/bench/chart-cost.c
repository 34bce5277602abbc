/* chart-cost.c -- what the chart agent costs per tick: bar aggregation over the
 * default six intervals (1s,1m,5m,15m,1h,1d), with and without encoding the bar
 * frames a subscriber would get.
 *
 * Feeds a random-walk tick stream (one tick every 50 ms of feed time, so bars of
 * every interval open and close) through cg_chart_tick, the same code the gateway
 * runs, and prints the median ns per tick over repeats. Further arguments are gateway flags:
 * `--timezone Asia/Shanghai` and/or `--sessions FILE` measure with the trading calendar on
 * (session lookup, session-aligned buckets, due times; ticks start in a session at 09:00:00
 * Shanghai time, so with cn-futures.json part of them fall in breaks and make no bar). Under
 * `valgrind --tool=callgrind` the instruction count per tick is the repeatable
 * figure (the machines are shared and noisy). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chart.h"
#include "config.h"
#include "frame.h"

#define REPEATS 7

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One run over n ticks; returns ns per tick. encode: also encode every bar frame. */
static double run(const struct cg_config *cfg, struct cg_calendar *cal, json_t **ticks,
                  char **texts, size_t n, int encode)
{
    struct cg_chart *c = cg_chart_create(cfg, "rb2501", 0);
    cg_chart_set_calendar(c, cal, "rb2501");
    struct cg_frame *f = cg_frame_alloc(16);
    struct cg_chart_event ev[CG_CHART_EVENTS_MAX];
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        int k = cg_chart_tick(c, cfg, i + 1, ticks[i], texts[i], strlen(texts[i]), f, 0, ev);
        for (int j = 0; encode && j < k; j++) {
            struct cg_frame *bf = cg_frame_bar(&c->series[ev[j].interval], "rb2501",
                                               cfg->interval_names[ev[j].interval], i + 1,
                                               &ev[j].ev.bar, ev[j].ev.kind != CG_BAR_UPDATED);
            cg_frame_unref(bf);
        }
    }
    double per = (now_ns() - t0) / (double)n;
    cg_frame_unref(f);
    cg_chart_destroy(c);
    return per;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    struct cg_config cfg;
    char err[512];
    argv[argc > 1 ? 1 : 0] = "chart-cost"; /* the rest are gateway flags */
    if (cg_config_load(&cfg, argc > 1 ? argc - 1 : 1, argv + (argc > 1 ? 1 : 0), "web", err,
                       sizeof(err), NULL)) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    struct cg_calendar *cal =
        cg_calendar_load(cfg.sessions_file, cfg.timezone, cfg.session_slack_ms, err, sizeof(err));
    if (!cal) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    json_t **ticks = malloc(n * sizeof(*ticks));
    char **texts = malloc(n * sizeof(*texts));
    double price = 3500;
    int64_t ts = 1732237200000; /* 2024-11-22 09:00:00 Shanghai, a Friday */
    srand(1);
    for (size_t i = 0; i < n; i++) {
        price += (rand() % 3 - 1) * 1.0;
        ts += 50;
        ticks[i] = json_pack("{s:f, s:I, s:f, s:f, s:I}", "last_price", price, "volume",
                             (json_int_t)(rand() % 20), "bid", price - 1, "ask", price + 1, "ts",
                             (json_int_t)ts);
        texts[i] = json_dumps(ticks[i], JSON_COMPACT);
    }
    for (int encode = 0; encode < 2; encode++) {
        double r[REPEATS];
        for (int k = 0; k < REPEATS; k++)
            r[k] = run(&cfg, cal, ticks, texts, n, encode);
        qsort(r, REPEATS, sizeof(r[0]), cmp);
        printf("chart agent, %u intervals, %zu ticks: %.0f ns/tick median (min %.0f, max %.0f)%s"
               "%s%s%s\n",
               cfg.nintervals, n, r[REPEATS / 2], r[0], r[REPEATS - 1],
               encode ? ", bar frames encoded" : ", aggregation only",
               cal->active ? ", calendar " : "", cal->active ? cfg.timezone : "",
               cal->active && cfg.sessions_file[0] ? " with sessions" : "");
    }
    for (size_t i = 0; i < n; i++) {
        json_decref(ticks[i]);
        free(texts[i]);
    }
    free(ticks);
    free(texts);
    cg_calendar_destroy(cal);
    return 0;
}
