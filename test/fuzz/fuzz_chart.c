/* fuzz_chart.c -- the chart agent's tick path (gateway/chart.h, bars.h) over hostile ticks.
 *
 * Input: the first byte picks a configuration (intervals, cumulative volume, resume ring,
 * bars depth, through cg_config_load as flags would); then one line per tick, the JSON a
 * publisher sent on md:rb2501. Lines "!r" and "!g" stand for a gap (cg_chart_reset,
 * cg_chart_gap), "!s" for a snapshot and resume check now (also done at the end). Ticks
 * take the gateway's path: cg_relay_tick, whose tick hook does what the chart agent does
 * (cg_chart_tick with the tick's frame and text); each bar event is encoded and must be
 * valid JSON with o, c within [l, h] and t on its interval's boundary. A resumable `since` must
 * replay exactly the ticks after it, in order; a snapshot of every series must be valid JSON. */
#include "chart.h"
#include "fuzz_common.h"
#include "relay.h"

#define NAME "rb2501"

static struct cg_config cfgs[256];

static void usage_sink(const char *text)
{
    (void)text;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const intervals[] = {"1s,1m,5m,15m,1h,1d", "1s", "1s,2s,3s,5s,7s,11s,13s,1m",
                                            "1d,1h,1m"};
    static const char *const cumulative[] = {"", "*", "rb", "au,rb2"};
    static const char *const ring[] = {"0", "1", "3", "256"};
    static const char *const depth[] = {"1", "2", "5", "300"};
    (void)argc;
    (void)argv;
    for (int b = 0; b < 256; b++) {
        char err[256], a0[] = "chartgate";
        const char *args[] = {a0,
                              "--intervals",
                              intervals[b & 3],
                              "--cumulative-volume",
                              cumulative[(b >> 2) & 3],
                              "--resume-ring",
                              ring[(b >> 4) & 3],
                              "--bars-depth",
                              depth[(b >> 6) & 3],
                              NULL};
        FUZZ_CHECK(cg_config_load(&cfgs[b], 9, (char **)args, "web", err, sizeof(err),
                                  usage_sink) == CG_CONFIG_OK);
    }
    return 0;
}

struct replay {
    uint64_t next; /* seq expected next */
    uint64_t count;
};

static void replay_one(void *arg, struct cg_frame *f)
{
    struct replay *r = arg;
    /* checked as JSON when it was ticked: only its seq is read here */
    static const char key[] = ",\"seq\":";
    const char *d = (const char *)cg_frame_data(f);
    const char *k = memmem(d, f->len, key, sizeof(key) - 1);
    FUZZ_CHECK(k);
    FUZZ_CHECK(strtoull(k + sizeof(key) - 1, NULL, 10) == r->next);
    r->next++;
    r->count++;
}

static void check_state(const struct cg_chart *c, const struct cg_config *cfg, uint64_t seq)
{
    /* resume */
    const uint64_t probes[] = {
        0, c->floor ? c->floor - 1 : 0, c->floor, seq ? seq - 1 : 0, seq, seq + 1};
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        uint64_t since = probes[i];
        int ok = cg_chart_can_resume(c, since, seq);
        FUZZ_CHECK(ok == 0 || ok == 1);
        if (!ok)
            continue;
        FUZZ_CHECK(since <= seq && since >= c->floor);
        struct replay r = {since + 1, 0};
        cg_chart_replay(c, since, replay_one, &r);
        FUZZ_CHECK(r.count == seq - since);
    }
    /* snapshot of every series, as the agent builds it */
    struct cg_frame_bars fb[CG_CONFIG_INTERVALS_MAX];
    const struct cg_bar **mem[CG_CONFIG_INTERVALS_MAX] = {0};
    for (uint32_t i = 0; i < c->nseries; i++) {
        const struct cg_series *s = &c->series[i];
        size_t have = cg_series_size(s);
        FUZZ_CHECK(have <= (size_t)cfg->bars_depth + 1);
        mem[i] = malloc(sizeof(*mem[i]) * (have ? have : 1));
        FUZZ_CHECK(mem[i]);
        for (size_t k = 0; k < have; k++) {
            mem[i][k] = cg_series_at(s, k);
            if (k)
                FUZZ_CHECK(mem[i][k]->t > mem[i][k - 1]->t);
        }
        fb[i] = (struct cg_frame_bars){cfg->interval_names[i], NULL, 0, mem[i], have};
    }
    fuzz_check_new_frame(cg_frame_snapshot(NAME, seq, c->last, c->last_len, fb, c->nseries));
    for (uint32_t i = 0; i < c->nseries; i++)
        free(mem[i]);
}

static void check_event(const struct cg_chart *c, const struct cg_config *cfg,
                        const struct cg_chart_event *e, uint64_t seq)
{
    FUZZ_CHECK(e->interval < c->nseries);
    const struct cg_bar *b = &e->ev.bar;
    FUZZ_CHECK(e->ev.kind == CG_BAR_UPDATED || e->ev.kind == CG_BAR_CLOSED ||
               e->ev.kind == CG_BAR_CORRECTED);
    FUZZ_CHECK(b->seq == seq);
    FUZZ_CHECK(cg_bars_bucket(b->t, cfg->interval_ms[e->interval]) == b->t);
    FUZZ_CHECK(b->l <= b->h && b->l <= b->o && b->o <= b->h && b->l <= b->c && b->c <= b->h);
    fuzz_check_new_frame(cg_frame_bar(&c->series[e->interval], NAME,
                                      cfg->interval_names[e->interval], seq, b,
                                      e->ev.kind != CG_BAR_UPDATED));
    char arr[160];
    size_t n = cg_frame_bar_array(b, arr, sizeof(arr));
    json_t *v = json_loadb(arr, n, 0, NULL);
    FUZZ_CHECK(json_is_array(v) && json_array_size(v) == 6);
    json_decref(v);
}

struct run {
    const struct cg_config *cfg;
    int64_t now_ms;
    uint64_t ticks;
};

/* The agent's tick hook (agent.c cg_agent_tick), minus Redis: every tick the relay
 * accepted reaches the chart with its frame and the text spliced into it. */
static void on_tick(void *data, struct cg_instrument *in, json_t *obj, const char *text, size_t len,
                    struct cg_frame *f, int64_t at_ms)
{
    (void)at_ms;
    struct run *run = data;
    const struct cg_config *cfg = run->cfg;
    struct cg_chart *c = in->chart;
    if (!c) {
        c = in->chart = cg_chart_create(cfg, in->name, in->seq - 1);
        FUZZ_CHECK(c);
    }
    run->ticks++;
    fuzz_check_frame(f);
    struct cg_chart_event ev[CG_CHART_EVENTS_MAX];
    int n = cg_chart_tick(c, cfg, in->seq, obj, text, len, f, run->now_ms, ev);
    FUZZ_CHECK(n >= 0 && n <= (int)(2 * c->nseries));
    FUZZ_CHECK(c->last && c->last_len == len && !memcmp(c->last, text, len));
    FUZZ_CHECK(c->ring_count <= c->ring_cap);
    for (int k = 0; k < n; k++)
        check_event(c, cfg, &ev[k], in->seq);
}

static void no_deliver(void *data, struct cg_member *m, struct cg_frame *f, uint64_t *slot)
{
    (void)data;
    (void)m;
    (void)slot;
    cg_frame_unref(cg_frame_ref(f));
}

static struct cg_log_limit drop_log; /* kept across inputs: one log line per 5 s */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    struct run run = {&cfgs[data[0]], 1767225600000, 0};
    struct cg_registry reg;
    struct cg_relay relay;
    struct cg_member m;
    /* tick_all, as --record-bars: a chart whether or not anyone watches */
    const struct cg_relay_hooks hooks = {no_deliver, NULL, on_tick, &run, 1,
                                         NULL,       NULL, NULL,    NULL, NULL};
    cg_registry_init(&reg, NULL, 16);
    cg_relay_init(&relay, &reg, &hooks, 1U << 20);
    relay.drop_log = drop_log;
    const char *names[] = {NAME};
    FUZZ_CHECK(cg_registry_join(&reg, &m, NULL, "u1") == CG_REG_OK);
    FUZZ_CHECK(cg_registry_subscribe(&reg, &m, names, 1, 10) == CG_REG_OK);
    struct cg_instrument *in = cg_registry_instrument(&reg, NAME, strlen(NAME), 0);
    FUZZ_CHECK(in);
    size_t pos = 1;
    while (pos < size) {
        const uint8_t *line = data + pos;
        const uint8_t *nl = memchr(line, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - line) : size - pos;
        pos += len + 1;
        run.now_ms += 250;
        if (len >= 2 && line[0] == '!') {
            if (!in->chart)
                continue;
            if (line[1] == 'r')
                cg_chart_reset(in->chart, in->seq);
            else if (line[1] == 'g')
                cg_chart_gap(in->chart, in->seq);
            else if (line[1] == 's')
                check_state(in->chart, run.cfg, in->seq);
            continue;
        }
        char *text = fuzz_dup(line, len);
        uint64_t seq = in->seq, ticks = run.ticks;
        int rc = cg_relay_tick(&relay, NAME, strlen(NAME), text, len, CG_SOURCE_PUBSUB);
        FUZZ_CHECK(rc == 0 || rc == -1);
        if (len && line[0] == '#') {
            /* A shared tick (PROTOCOL.md §19) carries its seq: applied, it becomes the
             * instrument's; a repeat is skipped (rc 0, nothing applied); dropped, nothing moves. */
            uint64_t want = strtoull(text + 1, NULL, 10);
            FUZZ_CHECK((in->seq == seq && run.ticks == ticks) ||
                       (rc == 0 && in->seq == want && run.ticks == ticks + 1));
        } else {
            FUZZ_CHECK(in->seq == seq + (rc == 0) && run.ticks == ticks + (rc == 0));
        }
        free(text);
    }
    if (in->chart) {
        check_state(in->chart, run.cfg, in->seq);
        cg_chart_destroy(in->chart);
        in->chart = NULL;
    }
    drop_log = relay.drop_log;
    cg_registry_leave(&reg, &m);
    cg_registry_finish(&reg);
    return 0;
}
