/* agent.c -- chart agent glue: bar frames, snapshots, resume, history, recording. */
#include "agent.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "instrument.h"
#include "log.h"
#include "metrics.h"
#include "overlay.h"
#include "request.h"

#define SWEEP_MS 10000

/* Writes one completed bar, replacing any bar with the same start: several
 * recording gateways computing the same bar leave one copy. Trims to the depth. */
static const char record_script[] =
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1]) "
    "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) "
    "local n = redis.call('ZCARD', KEYS[1]) "
    "local keep = tonumber(ARGV[3]) "
    "if n > keep then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - keep - 1) end "
    "return n";

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int bars_key(const struct cg_agent *a, const char *inst, uint32_t interval, char *out,
                    size_t outsz)
{
    return snprintf(out, outsz, "%s%s:%s", a->cfg->bars_prefix, inst,
                    a->cfg->interval_names[interval]);
}

static void deliver(struct cg_agent *a, struct cg_sub *s, struct cg_frame *f, uint64_t *slot)
{
    if (f)
        a->out.deliver(a->out.data, s->member, f, slot);
}

/* ---- recording ----------------------------------------------------------------- */

static void on_recorded(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct cg_agent *a = priv;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        cg_log_limited(&a->rec_log, 10000, CG_LOG_ERROR, "bar not recorded", "error=\"%.200s\"",
                       reply->str);
    else if (reply)
        cg_metrics.bars_recorded++;
}

static void record(struct cg_agent *a, const struct cg_instrument *in, uint32_t i,
                   const struct cg_bar *bar)
{
    char key[200], t[24], member[200], depth[16];
    size_t klen = (size_t)bars_key(a, in->name, i, key, sizeof(key));
    size_t tlen = (size_t)snprintf(t, sizeof(t), "%" PRId64, bar->t);
    size_t mlen = cg_frame_bar_array(bar, member, sizeof(member));
    size_t dlen = (size_t)snprintf(depth, sizeof(depth), "%u", a->cfg->history_depth);
    const char *argv[7] = {"EVAL", record_script, "1", key, t, member, depth};
    size_t lens[7] = {4, sizeof(record_script) - 1, 1, klen, tlen, mlen, dlen};
    if (cg_bridge_command(a->bridge, on_recorded, a, 7, argv, lens))
        cg_log_limited(&a->rec_log, 10000, CG_LOG_WARN, "bar not recorded",
                       "reason=\"redis down\" instrument=%s", in->name);
}

/* ---- live ticks -------------------------------------------------------------- */

/* Sends bar events to the subscriptions that want them and records the final ones. seq: the
 * frames' seq (the tick's, or the closed bar's own for a timer close). */
static void emit(struct cg_agent *a, struct cg_instrument *in, uint64_t seq,
                 const struct cg_chart_event *ev, int n)
{
    const struct cg_config *cfg = a->cfg;
    struct cg_chart *c = in->chart;
    for (int k = 0; k < n; k++) {
        uint32_t i = ev[k].interval;
        int final = ev[k].ev.kind != CG_BAR_UPDATED;
        if (c->interval_refs[i]) {
            struct cg_frame *bf = cg_frame_bar(&c->series[i], in->name, cfg->interval_names[i], seq,
                                               &ev[k].ev.bar, final);
            for (uint32_t j = 0; j < in->nsubs; j++) { /* delivery drops no subscription */
                struct cg_sub *s = cg_registry_sub_at(in, j);
                struct cg_chart_view *v = &s->view;
                if (!(v->intervals & (1u << i)) || v->pending)
                    continue;
                if (final) {
                    /* Never conflated nor paced, and later forming bars queue after it. A
                     * forming bar held back by max_rate is older news now. */
                    if (s->pace)
                        a->out.paced(a->out.data, s, 1 + i, NULL);
                    deliver(a, s, bf, NULL);
                    v->bar_slot[i] = 0;
                } else if (s->pace && bf) {
                    a->out.paced(a->out.data, s, 1 + i, bf);
                } else {
                    deliver(a, s, bf, &v->bar_slot[i]);
                }
            }
            cg_frame_unref(bf);
        }
        if (final && cfg->record_bars && !in->warming)
            record(a, in, i, &ev[k].ev.bar);
    }
}

/* ---- the close timer ------------------------------------------------------------ */

static void close_cb(uv_timer_t *t);

/* Arms the one timer for the earliest due bar, when that changed. */
static void arm_close(struct cg_agent *a)
{
    int64_t next = cg_closing_next(&a->closing);
    if (next == a->close_armed)
        return;
    a->close_armed = next;
    if (next == INT64_MAX) {
        uv_timer_stop(&a->close_timer);
        return;
    }
    int64_t wait = next - wall_ms();
    uv_timer_start(&a->close_timer, close_cb, wait > 0 ? (uint64_t)wait : 0, 0);
}

/* After a chart changed: its forming bars sit in the schedule at their due times. */
static void schedule(struct cg_agent *a, struct cg_instrument *in)
{
    struct cg_chart *c = in->chart;
    for (uint32_t i = 0; i < c->nseries; i++) {
        struct cg_series *s = &c->series[i];
        int64_t due = cg_series_due(s);
        if (!due)
            cg_closing_remove(&a->closing, s);
        else if (!s->heap_idx || a->closing.heap[s->heap_idx - 1].due != due)
            cg_closing_set(&a->closing, s, in, i, due); /* OOM: closed by a later tick */
    }
    arm_close(a);
}

/* A chart going away leaves the schedule first. */
static void unschedule(struct cg_agent *a, struct cg_chart *c)
{
    for (uint32_t i = 0; c && i < c->nseries; i++)
        cg_closing_remove(&a->closing, &c->series[i]);
}

static void close_cb(uv_timer_t *t)
{
    struct cg_agent *a = t->data;
    a->close_armed = INT64_MAX;
    int64_t now = wall_ms();
    struct cg_closing_entry e;
    while (cg_closing_pop(&a->closing, now, &e)) {
        struct cg_instrument *in = e.owner;
        struct cg_chart_event ev;
        ev.interval = e.interval;
        if (cg_series_expire(e.series, now, &ev.ev)) {
            cg_metrics.bars_timer_closed++;
            emit(a, in, ev.ev.bar.seq, &ev, 1);
        } else if (cg_series_due(e.series)) { /* a late tick moved it on */
            cg_closing_set(&a->closing, e.series, in, e.interval, cg_series_due(e.series));
        }
    }
    arm_close(a);
}

/* ---- live ticks -------------------------------------------------------------- */

static struct cg_chart *new_chart(struct cg_agent *a, struct cg_instrument *in, uint64_t seq)
{
    struct cg_chart *c = cg_chart_create(a->cfg, in->name, seq);
    if (c)
        cg_chart_set_calendar(c, a->cal, in->name);
    return c;
}

void cg_agent_tick(void *data, struct cg_instrument *in, json_t *obj, const char *text, size_t len,
                   struct cg_frame *f, int64_t at_ms)
{
    struct cg_agent *a = data;
    const struct cg_config *cfg = a->cfg;
    struct cg_chart *c = in->chart;
    if (!c) {
        if (!cfg->record_bars)
            return;
        c = in->chart = new_chart(a, in, in->seq - 1);
        if (!c)
            return;
    }
    struct cg_chart_event ev[CG_CHART_EVENTS_MAX];
    uint64_t late = c->late_ignored, off = c->off_session;
    int n = cg_chart_tick(c, cfg, in->seq, obj, text, len, f, at_ms ? at_ms : wall_ms(), ev);
    cg_metrics.bars_late_ignored += c->late_ignored - late;
    cg_metrics.bars_off_session += c->off_session - off;
    emit(a, in, in->seq, ev, n);
    if (c->cal)
        schedule(a, in);
}

/* ---- subscriptions ----------------------------------------------------------- */

void cg_agent_instrument_active(void *data, struct cg_instrument *in, int active)
{
    struct cg_agent *a = data;
    struct cg_chart *c = in->chart;
    if (active) {
        if (!c) {
            in->chart = new_chart(a, in, in->seq);
        } else {
            /* Ticks were not coming: what we hold is out of date, unless the stream can fill
             * the gap (stream.c catches a shared instrument up, and resets it if it cannot). */
            if (c->stale && !in->shared)
                cg_chart_reset(c, in->seq);
            c->stale = 0;
            c->idle_since_ms = 0;
        }
    } else if (c) {
        c->stale = !a->cfg->record_bars;
        c->idle_since_ms = uv_now(a->loop) ? uv_now(a->loop) : 1;
    }
}

struct snap_part {
    struct cg_agent_snap *snap;
    uint32_t interval;
};

struct cg_agent_snap {
    struct cg_sub *sub; /* NULL once the subscription went (cg_agent_sub_dropped) */
    struct cg_agent *a;
    int waiting;
    struct snap_part parts[CG_CONFIG_INTERVALS_MAX];
    char *overlays; /* the overlay state read for this snapshot (JSON array), owned; or NULL */
    size_t overlays_len;
    uint64_t overlays_v;
    struct cg_bar *fill[CG_CONFIG_INTERVALS_MAX]; /* older bars from Redis, oldest first */
    size_t nfill[CG_CONFIG_INTERVALS_MAX];
};

/* A subscription's snapshot is being filled (sn) or not any more (NULL): live ticks wait. */
static void set_pending(struct cg_sub *sub, struct cg_agent_snap *sn)
{
    sub->view.pending = sn;
    cg_registry_hold(sub, sn != NULL);
}

static void overlays_off(struct cg_sub *sub);

void cg_agent_sub_dropped(void *data, struct cg_sub *sub)
{
    (void)data;
    overlays_off(sub);
    struct cg_chart *c = sub->inst->chart;
    for (uint32_t i = 0; c && i < c->nseries; i++)
        if (sub->view.intervals & (1u << i))
            c->interval_refs[i]--;
    sub->view.intervals = 0;
    if (sub->view.pending) { /* its snapshot is still being filled: it is for nobody now */
        sub->view.pending->sub = NULL;
        set_pending(sub, NULL);
    }
}

void cg_agent_set_intervals(struct cg_agent *a, struct cg_sub *sub, uint32_t mask)
{
    (void)a;
    struct cg_chart *c = sub->inst->chart;
    if (!c)
        return;
    for (uint32_t i = 0; i < c->nseries; i++) {
        uint32_t bit = 1u << i;
        if ((sub->view.intervals & bit) && !(mask & bit))
            c->interval_refs[i]--;
        if (!(sub->view.intervals & bit) && (mask & bit)) {
            c->interval_refs[i]++;
            sub->view.bar_slot[i] = 0;
        }
    }
    sub->view.intervals = mask & ((1u << c->nseries) - 1);
}

int cg_agent_can_resume(const struct cg_agent *a, const struct cg_instrument *in, uint64_t since)
{
    (void)a;
    const struct cg_chart *c = in->chart;
    return c && cg_chart_can_resume(c, since, in->seq);
}

struct replay_ctx {
    struct cg_agent *a;
    struct cg_sub *sub;
};

static void replay_one(void *arg, struct cg_frame *f)
{
    struct replay_ctx *rc = arg;
    deliver(rc->a, rc->sub, f, NULL);
}

static void resume(struct cg_agent *a, struct cg_sub *sub, uint64_t since,
                   struct cg_frame *const *pre, const uint64_t *pre_seq, size_t npre)
{
    struct cg_instrument *in = sub->inst;
    struct cg_chart *c = in->chart;
    struct replay_ctx rc = {a, sub};
    for (size_t i = 0; i < npre; i++)
        deliver(a, sub, pre[i], NULL);
    cg_chart_replay(c, npre ? pre_seq[npre - 1] : since, replay_one, &rc);
    for (uint32_t i = 0; i < c->nseries; i++) {
        if (!(sub->view.intervals & (1u << i)))
            continue;
        const struct cg_series *s = &c->series[i];
        for (size_t k = 0; k < cg_series_size(s); k++) {
            const struct cg_bar *b = cg_series_at(s, k);
            if (b->seq <= since)
                continue;
            struct cg_frame *f =
                cg_frame_bar(s, in->name, a->cfg->interval_names[i], b->seq, b, k < s->count);
            deliver(a, sub, f, NULL);
            cg_frame_unref(f);
        }
    }
    cg_metrics.resumes++;
}

/* ---- snapshots --------------------------------------------------------------- */

static int parse_bar(const char *s, size_t len, struct cg_bar *b)
{
    json_t *v = json_loadb(s, len, 0, NULL);
    int ok = json_is_array(v) && json_array_size(v) == 6 && json_is_integer(json_array_get(v, 0));
    for (size_t i = 1; ok && i < 6; i++)
        ok = json_is_number(json_array_get(v, i));
    if (ok) {
        memset(b, 0, sizeof(*b));
        b->t = (int64_t)json_integer_value(json_array_get(v, 0));
        b->o = json_number_value(json_array_get(v, 1));
        b->h = json_number_value(json_array_get(v, 2));
        b->l = json_number_value(json_array_get(v, 3));
        b->c = json_number_value(json_array_get(v, 4));
        b->v = json_number_value(json_array_get(v, 5));
    }
    json_decref(v);
    return ok ? 0 : -1;
}

/* Asks Redis for the newest `count` recorded bars of inst/interval with t < before (INT64_MAX:
 * all), newest first; fn gets the reply. Returns cg_bridge_command's result. */
static int read_bars(struct cg_agent *a, const char *inst, uint32_t interval, int64_t before,
                     uint64_t count, redisCallbackFn *fn, void *priv)
{
    char key[200], max[32], cnt[24];
    size_t klen = (size_t)bars_key(a, inst, interval, key, sizeof(key));
    size_t mlen = before == INT64_MAX ? (size_t)snprintf(max, sizeof(max), "+inf")
                                      : (size_t)snprintf(max, sizeof(max), "(%" PRId64, before);
    size_t clen = (size_t)snprintf(cnt, sizeof(cnt), "%" PRIu64, count);
    const char *argv[7] = {"ZREVRANGEBYSCORE", key, max, "-inf", "LIMIT", "0", cnt};
    size_t lens[7] = {16, klen, mlen, 4, 5, 1, clen};
    return cg_bridge_command(a->bridge, fn, priv, 7, argv, lens);
}

/* Bars of a newest-first ZREVRANGEBYSCORE reply, oldest first, only those older
 * than `older` (memory's oldest bar). Returns a new array (or NULL) and its size. */
static struct cg_bar *reply_bars(redisReply *r, int64_t older, size_t *n)
{
    *n = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY || !r->elements)
        return NULL;
    struct cg_bar *out = malloc(sizeof(*out) * r->elements);
    if (!out)
        return NULL;
    for (size_t i = r->elements; i-- > 0;) {
        redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING && parse_bar(e->str, e->len, &out[*n]) == 0 &&
            out[*n].t < older && (!*n || out[*n].t > out[*n - 1].t))
            (*n)++;
    }
    return out;
}

static void overlays_caught_up(struct cg_agent *a, struct cg_sub *sub, uint64_t v);
static void start_sync(struct cg_agent *a, struct cg_sub *sub);

static void send_snapshot(struct cg_agent *a, struct cg_sub *sub, struct cg_agent_snap *sn)
{
    struct cg_instrument *in = sub->inst;
    struct cg_chart *c = in->chart;
    const struct cg_config *cfg = a->cfg;
    struct cg_frame_bars fb[CG_CONFIG_INTERVALS_MAX];
    const struct cg_bar **mem[CG_CONFIG_INTERVALS_MAX] = {0};
    size_t n = 0;
    for (uint32_t i = 0; c && i < c->nseries; i++) {
        if (!(sub->view.intervals & (1u << i)))
            continue;
        const struct cg_series *s = &c->series[i];
        size_t have = cg_series_size(s), take = have < cfg->bars_depth ? have : cfg->bars_depth;
        mem[i] = take ? malloc(sizeof(*mem[i]) * take) : NULL;
        if (take && !mem[i])
            take = 0;
        for (size_t k = 0; k < take; k++)
            mem[i][k] = cg_series_at(s, have - take + k);
        size_t room = cfg->bars_depth - take, nf = sn ? sn->nfill[i] : 0;
        size_t skip = nf > room ? nf - room : 0;
        fb[n].interval = cfg->interval_names[i];
        fb[n].first = sn && sn->fill[i] ? sn->fill[i] + skip : NULL;
        fb[n].nfirst = nf - skip;
        fb[n].second = mem[i];
        fb[n].nsecond = take;
        n++;
    }
    const char *ov = sn && sn->overlays ? sn->overlays : NULL;
    struct cg_frame *f =
        cg_frame_snapshot_full(in->name, in->seq, c ? c->last : NULL, c ? c->last_len : 0, fb, n,
                               c && c->sched ? c->sched->tz : NULL, ov, ov ? sn->overlays_len : 0);
    deliver(a, sub, f, NULL);
    cg_frame_unref(f);
    for (uint32_t i = 0; i < CG_CONFIG_INTERVALS_MAX; i++)
        free(mem[i]);
    cg_metrics.snapshots++;
    if (ov)
        overlays_caught_up(a, sub, sn->overlays_v);
    else if (sub->view.overlays)
        start_sync(a, sub); /* not read (Redis away): a sync follows as soon as it can */
}

static void snap_free(struct cg_agent_snap *sn)
{
    for (uint32_t i = 0; i < CG_CONFIG_INTERVALS_MAX; i++)
        free(sn->fill[i]);
    free(sn->overlays);
    free(sn);
}

static void snap_part_done(struct cg_agent_snap *sn);

static void on_fill(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct snap_part *p = priv;
    struct cg_agent_snap *sn = p->snap;
    if (sn->sub) {
        struct cg_chart *c = sn->sub->inst->chart;
        const struct cg_series *s = c ? &c->series[p->interval] : NULL;
        int64_t older = s && cg_series_size(s) ? cg_series_at(s, 0)->t : INT64_MAX;
        sn->fill[p->interval] = reply_bars(r, older, &sn->nfill[p->interval]);
    }
    snap_part_done(sn);
}

static void snap_part_done(struct cg_agent_snap *sn)
{
    if (--sn->waiting)
        return;
    if (sn->sub) {
        struct cg_sub *sub = sn->sub;
        set_pending(sub, NULL);
        send_snapshot(sn->a, sub, sn);
    }
    snap_free(sn);
}

void cg_agent_resume_from(struct cg_agent *a, struct cg_sub *sub, uint64_t since,
                          struct cg_frame *const *pre, const uint64_t *pre_seq, size_t n)
{
    if (sub->inst->chart)
        resume(a, sub, since, pre, pre_seq, n);
    cg_metrics.stream_resumes++;
    if (sub->view.overlays)
        start_sync(a, sub);
}

/* ---- overlays (PROTOCOL.md §17) --------------------------------------------------- */

struct cg_agent_ovsync {
    struct cg_agent *a;
    struct cg_sub *sub; /* NULL once the subscription went */
    int again;          /* a gap came while the read was on its way: read once more */
};

static const char *user_of(const struct cg_sub *sub)
{
    return sub->member && sub->member->user ? sub->member->user->id : "";
}

/* Reads the overlays sub may see (the shared ones and its user's) from Redis, with their
 * version. Returns cg_bridge_command's result. */
static int read_overlays(struct cg_agent *a, struct cg_sub *sub, redisCallbackFn *fn, void *priv)
{
    char key[CG_OVERLAY_KEY_MAX];
    size_t klen = cg_overlay_key(sub->inst->name, key);
    const char *user = user_of(sub);
    const char *argv[6] = {"FCALL_RO", CG_OVERLAY_READ_FUNCTION, "1", key, sub->inst->name, user};
    size_t lens[6] = {
        8, sizeof(CG_OVERLAY_READ_FUNCTION) - 1, 1, klen, strlen(sub->inst->name), strlen(user)};
    return cg_bridge_command(a->bridge, fn, priv, 6, argv, lens);
}

/* The read's reply, [version, JSON array]: 0 with *json (new, *len bytes) and *v, or -1. */
static int read_reply(struct cg_agent *a, redisReply *r, char **json, size_t *len, uint64_t *v)
{
    if (!r)
        return -1; /* the link dropped */
    if (r->type == REDIS_REPLY_ERROR) {
        cg_log_limited(&a->ov_log, 10000, CG_LOG_WARN, "overlays not read", "error=\"%.200s\"",
                       r->str);
        return -1;
    }
    redisReply *t = r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? r->element[1] : NULL;
    if (!t || r->element[0]->type != REDIS_REPLY_INTEGER || r->element[0]->integer < 0 ||
        t->type != REDIS_REPLY_STRING || t->len < 2 || t->str[0] != '[' ||
        t->str[t->len - 1] != ']' || memchr(t->str, '\n', t->len) || memchr(t->str, '\r', t->len))
        return -1;
    if (t->len > a->cfg->queue_max_bytes / 2) {
        /* Queued whole it would close the socket as a slow consumer: better without. */
        cg_metrics.overlay_oversize++;
        cg_log_limited(&a->ov_log, 10000, CG_LOG_WARN, "overlays left out",
                       "reason=\"larger than half of --queue-max-bytes\" bytes=%zu", t->len);
        return -1;
    }
    if (!(*json = malloc(t->len)))
        return -1;
    memcpy(*json, t->str, t->len);
    *len = t->len;
    *v = (uint64_t)r->element[0]->integer;
    return 0;
}

static void overlays_off(struct cg_sub *sub)
{
    struct cg_instrument *in = sub->inst;
    if (!sub->view.overlays)
        return;
    sub->view.overlays = 0;
    cg_registry_want_overlays(sub, 0);
    if (sub->view.ovsync) {
        sub->view.ovsync->sub = NULL;
        sub->view.ovsync = NULL;
    }
    if (in->overlays && !--in->overlays->viewers) {
        cg_overlay_inst_destroy(in->overlays);
        in->overlays = NULL;
    }
}

int cg_agent_set_overlays(struct cg_agent *a, struct cg_sub *sub, int on)
{
    (void)a;
    struct cg_instrument *in = sub->inst;
    if (!on) {
        overlays_off(sub);
        return 0;
    }
    if (sub->view.overlays)
        return 0;
    if (!in->overlays && !(in->overlays = cg_overlay_inst_create()))
        return -1;
    in->overlays->viewers++;
    sub->view.overlays = 1;
    cg_registry_want_overlays(sub, 1);
    return 0;
}

static void start_sync(struct cg_agent *a, struct cg_sub *sub);

/* sub holds the overlay state as of version v: what came after it, from the ring; when the
 * ring no longer reaches back to v, the state is read again. */
static void overlays_caught_up(struct cg_agent *a, struct cg_sub *sub, uint64_t v)
{
    struct cg_overlay_inst *s = sub->inst->overlays;
    if (!s)
        return;
    if (!s->last_v) {
        s->last_v = v; /* the first state read: a later version gap is now visible */
        return;
    }
    if (!cg_overlay_covers(s, v)) {
        start_sync(a, sub);
        return;
    }
    struct replay_ctx rc = {a, sub};
    const char *user = user_of(sub);
    cg_overlay_each_after(s, v, user[0] ? user : NULL, replay_one, &rc);
}

static void on_sync(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct cg_agent_ovsync *o = priv;
    struct cg_sub *sub = o->sub;
    if (sub) {
        sub->view.ovsync = NULL;
        char *json;
        size_t len;
        uint64_t v;
        if (read_reply(o->a, r, &json, &len, &v) == 0) {
            struct cg_frame *f = cg_frame_overlay_sync(sub->inst->name, v, json, len);
            free(json);
            deliver(o->a, sub, f, NULL);
            cg_frame_unref(f);
            cg_metrics.overlay_syncs++;
            sub->view.ovstale = 0;
            overlays_caught_up(o->a, sub, v);
        } else {
            sub->view.ovstale = 1; /* the command link coming back retries (cg_agent_command_up) */
        }
        if (o->again)
            start_sync(o->a, sub);
    }
    free(o);
}

/* Sends sub the whole overlay state (a sync operation), read from Redis now. */
static void start_sync(struct cg_agent *a, struct cg_sub *sub)
{
    if (sub->view.ovsync) {
        sub->view.ovsync->again = 1;
        return;
    }
    struct cg_agent_ovsync *o = calloc(1, sizeof(*o));
    if (!o)
        return;
    o->a = a;
    o->sub = sub;
    if (read_overlays(a, sub, on_sync, o)) {
        free(o);
        sub->view.ovstale = 1; /* Redis is away: cg_agent_command_up resyncs */
        return;
    }
    sub->view.ovsync = o;
}

void cg_agent_overlay_gap(void *data, struct cg_instrument *in)
{
    struct cg_agent *a = data;
    for (uint32_t j = 0; j < in->nsubs; j++) {
        struct cg_sub *s = cg_registry_sub_at(in, j);
        /* One whose snapshot is on its way catches up (or resyncs) when it is sent. */
        if (s->view.overlays && !s->view.pending)
            start_sync(a, s);
    }
}

static void on_overlays_read(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct cg_agent_snap *sn = priv;
    if (sn->sub && read_reply(sn->a, r, &sn->overlays, &sn->overlays_len, &sn->overlays_v))
        sn->overlays = NULL;
    snap_part_done(sn);
}

void cg_agent_start(struct cg_agent *a, struct cg_sub *sub, int recovered, uint64_t since)
{
    struct cg_chart *c = sub->inst->chart;
    if (recovered && c) {
        resume(a, sub, since, NULL, NULL, 0);
        if (sub->view.overlays)
            start_sync(a, sub);
        return;
    }
    if (sub->view.pending) /* a snapshot is already on its way */
        return;
    /* Intervals where memory holds fewer bars than a snapshot shows are filled
     * from recorded history first. */
    struct cg_agent_snap *sn = NULL;
    for (uint32_t i = 0; c && i < c->nseries; i++) {
        const struct cg_series *s = &c->series[i];
        size_t have = cg_series_size(s);
        if (!(sub->view.intervals & (1u << i)) || have >= a->cfg->bars_depth ||
            !cg_bridge_up(a->bridge, CG_LINK_COMMAND))
            continue;
        if (!sn && !(sn = calloc(1, sizeof(*sn))))
            break;
        sn->a = a;
        sn->parts[i].snap = sn;
        sn->parts[i].interval = i;
        int64_t before = have ? cg_series_at(s, 0)->t : INT64_MAX;
        if (read_bars(a, sub->inst->name, i, before, a->cfg->bars_depth - have, on_fill,
                      &sn->parts[i]) == 0)
            sn->waiting++;
    }
    if (sub->view.overlays && cg_bridge_up(a->bridge, CG_LINK_COMMAND) &&
        (sn || (sn = calloc(1, sizeof(*sn))))) {
        sn->a = a;
        if (read_overlays(a, sub, on_overlays_read, sn) == 0)
            sn->waiting++;
    }
    if (sn && sn->waiting) {
        sn->sub = sub;
        set_pending(sub, sn);
        return;
    }
    free(sn);
    send_snapshot(a, sub, NULL);
}

/* ---- history ------------------------------------------------------------------ */

struct hist {
    struct cg_agent *a;
    void (*done)(void *arg, struct cg_frame *f);
    void *arg;
    char instrument[CG_INSTRUMENT_MAX + 1];
    uint32_t interval;
    int64_t before;
    uint32_t limit;
    char id_json[CG_REQUEST_ID_JSON_MAX + 1];
};

static void answer_history(struct hist *h, redisReply *r)
{
    struct cg_agent *a = h->a;
    size_t nr = 0;
    struct cg_bar *rb = reply_bars(r, INT64_MAX, &nr);
    struct cg_instrument *in =
        cg_registry_instrument(a->reg, h->instrument, strlen(h->instrument), 0);
    const struct cg_series *s = in && in->chart ? &(in->chart)->series[h->interval] : NULL;
    size_t nm = s ? s->count : 0; /* completed bars only: the forming one is live data */
    struct cg_bar *out = malloc(sizeof(*out) * (nr + nm + 1));
    size_t n = 0, i = 0, k = 0;
    while (out && (i < nr || k < nm)) { /* merge by t; memory wins a tie */
        const struct cg_bar *m = k < nm ? cg_series_at(s, k) : NULL;
        if (m && m->t >= h->before) {
            k = nm;
            continue;
        }
        if (i < nr && (!m || rb[i].t < m->t)) {
            out[n++] = rb[i++];
        } else {
            if (i < nr && rb[i].t == m->t)
                i++;
            out[n++] = *m;
            k++;
        }
    }
    size_t skip = n > h->limit ? n - h->limit : 0;
    struct cg_frame_bars fb = {a->cfg->interval_names[h->interval], out ? out + skip : NULL,
                               n - skip, NULL, 0};
    struct cg_frame *f =
        out ? cg_frame_history(h->id_json[0] ? h->id_json : NULL, h->instrument, &fb) : NULL;
    free(out);
    free(rb);
    h->done(h->arg, f);
    free(h);
}

static void on_history(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    answer_history(priv, r);
}

void cg_agent_history(struct cg_agent *a, const char *instrument, uint32_t interval, int64_t before,
                      uint32_t limit, const char *id_json,
                      void (*done)(void *arg, struct cg_frame *f), void *arg)
{
    cg_metrics.history_requests++;
    struct hist *h = calloc(1, sizeof(*h));
    if (!h) {
        done(arg, NULL);
        return;
    }
    h->a = a;
    h->done = done;
    h->arg = arg;
    snprintf(h->instrument, sizeof(h->instrument), "%s", instrument);
    h->interval = interval;
    h->before = before;
    h->limit = limit;
    if (id_json)
        snprintf(h->id_json, sizeof(h->id_json), "%s", id_json);
    if (read_bars(a, instrument, interval, before, limit, on_history, h))
        answer_history(h, NULL); /* Redis away: what memory holds */
}

/* ---- gaps and idle charts ------------------------------------------------------ */

static void gap_one(struct cg_map_node *n, void *arg)
{
    (void)arg;
    struct cg_instrument *in = CG_CONTAINER_OF(n, struct cg_instrument, node);
    if (in->chart && !in->shared) /* a shared one is caught up from its stream (stream.c) */
        cg_chart_gap(in->chart, in->seq);
}

/* Operations published while the pub/sub link was down are lost to this process: every
 * instrument's overlay viewers read the state again, and the ring starts over. */
static void overlay_gap_one(struct cg_map_node *n, void *arg)
{
    struct cg_instrument *in = CG_CONTAINER_OF(n, struct cg_instrument, node);
    struct cg_overlay_inst *s = in->overlays;
    if (!s)
        return;
    for (uint32_t i = 0; i < s->count; i++)
        cg_frame_unref(s->ring[(s->head + i) % CG_OVERLAY_RING].f);
    s->count = s->head = 0;
    s->last_v = 0;
    cg_agent_overlay_gap(arg, in);
}

static void command_up_one(struct cg_map_node *n, void *arg)
{
    struct cg_instrument *in = CG_CONTAINER_OF(n, struct cg_instrument, node);
    for (uint32_t j = 0; in->overlays && j < in->nsubs; j++) {
        struct cg_sub *s = cg_registry_sub_at(in, j);
        if (s->view.overlays && s->view.ovstale && !s->view.pending)
            start_sync(arg, s);
    }
}

void cg_agent_command_up(void *data)
{
    struct cg_agent *a = data;
    cg_map_each(&a->reg->instruments, command_up_one, a);
}

void cg_agent_gap(void *data)
{
    struct cg_agent *a = data;
    cg_map_each(&a->reg->instruments, gap_one, NULL);
    cg_map_each(&a->reg->instruments, overlay_gap_one, a);
}

void cg_agent_instrument_gap(struct cg_agent *a, struct cg_instrument *in, int overlays)
{
    if (overlays)
        overlay_gap_one(&in->node, a);
    else
        gap_one(&in->node, NULL);
}

static void sweep_one(struct cg_map_node *n, void *arg)
{
    struct cg_agent *a = arg;
    struct cg_instrument *in = CG_CONTAINER_OF(n, struct cg_instrument, node);
    struct cg_chart *c = in->chart;
    if (!c || in->nsubs || a->cfg->record_bars || !c->idle_since_ms ||
        uv_now(a->loop) - c->idle_since_ms < (uint64_t)a->cfg->chart_idle_s * 1000)
        return;
    unschedule(a, c);
    cg_chart_destroy(c);
    in->chart = NULL;
    cg_registry_reap(a->reg, in);
}

static void sweep_cb(uv_timer_t *t)
{
    struct cg_agent *a = t->data;
    cg_map_each(&a->reg->instruments, sweep_one, a);
}

void cg_agent_init(struct cg_agent *a, uv_loop_t *loop, const struct cg_config *cfg,
                   struct cg_registry *reg, struct cg_bridge *bridge,
                   const struct cg_relay_hooks *out)
{
    memset(a, 0, sizeof(*a));
    a->loop = loop;
    a->cfg = cfg;
    a->reg = reg;
    a->bridge = bridge;
    a->out = *out;
    uv_timer_init(loop, &a->sweep);
    a->sweep.data = a;
    uv_timer_start(&a->sweep, sweep_cb, SWEEP_MS, SWEEP_MS);
    cg_closing_init(&a->closing);
    uv_timer_init(loop, &a->close_timer);
    a->close_timer.data = a;
    a->close_armed = INT64_MAX;
    char err[512];
    a->cal = cg_calendar_load(cfg->sessions_file, cfg->timezone, cfg->session_slack_ms, err,
                              sizeof(err));
    if (!a->cal) /* the file changed since it was checked at start-up */
        cg_log(CG_LOG_ERROR, "calendar not loaded: bars are epoch-aligned", "reason=\"%s\"", err);
}

static void free_chart(struct cg_map_node *n, void *arg)
{
    struct cg_agent *a = arg;
    struct cg_instrument *in = CG_CONTAINER_OF(n, struct cg_instrument, node);
    unschedule(a, in->chart);
    cg_chart_destroy(in->chart);
    in->chart = NULL;
    cg_overlay_inst_destroy(in->overlays);
    in->overlays = NULL;
}

void cg_agent_finish(struct cg_agent *a)
{
    uv_timer_stop(&a->sweep);
    uv_close((uv_handle_t *)&a->sweep, NULL);
    uv_timer_stop(&a->close_timer);
    uv_close((uv_handle_t *)&a->close_timer, NULL);
    cg_map_each(&a->reg->instruments, free_chart, a);
    cg_closing_finish(&a->closing);
    cg_calendar_destroy(a->cal);
    a->cal = NULL;
}
