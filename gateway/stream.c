/* stream.c -- shared seqs: the publish function, the shared epoch, catch-ups from streams. */
#include "stream.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chart.h"
#include "md_function.h"
#include "metrics.h"
#include "random.h"

#define WARM_PAGE 1000  /* entries per XREVRANGE while warming an instrument up */
#define RETRY_MS 100    /* a gap read that could not be made is tried again this often */
#define GIVE_UP_MS 3000 /* and given up after this long: the held ticks go out, gap and all */

/* Where a catch-up reads from: after a gap (entries after `after`), or a warm-up (the newest
 * entries back to `since_ms`: the oldest forming bar's start). */
struct held {
    uint64_t seq;
    char *payload; /* owned */
    size_t len;
};

struct waiter {
    cg_stream_ready_fn *fn;
    void *arg;
};

struct copied {
    uint64_t seq;
    int64_t t;
    char *data; /* owned */
    size_t len;
};

struct cg_stream_catchup {
    struct cg_list link;
    struct cg_stream *s;
    struct cg_instrument *in;
    int warm;
    int checked;         /* the stream's newest entry was looked at (on_last) */
    int waiting;         /* no read in flight: the command link is down, or Redis refused it */
    uint64_t wait_since; /* loop ms when it started waiting */
    uint64_t after;
    int64_t since_ms;
    struct copied *got; /* warm: newest first; gap: oldest first */
    size_t ngot, capgot;
    struct held *held;
    size_t nheld, capheld;
    struct waiter *waiters;
    size_t nwaiters, capwaiters;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * size);
    if (!p)
        return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

static int stream_key(const struct cg_stream *s, const struct cg_instrument *in, char *out,
                      size_t outsz)
{
    return snprintf(out, outsz, "{%s%s}:stream", s->cfg->md_prefix, in->name);
}

/* The library with --stream-len in place of the number on the STREAM_LEN line, and SPUBLISH in
 * place of PUBLISH in cluster mode. */
static char *build_library(uint32_t stream_len, int cluster, size_t *len)
{
    const char *src = cg_md_function_source;
    static const char mark[] = "local STREAM_LEN = ";
    const char *at = strstr(src, mark);
    if (!at)
        return NULL;
    at += sizeof(mark) - 1;
    size_t digits = strspn(at, "0123456789");
    size_t head = (size_t)(at - src), cap = sizeof(cg_md_function_source) + 16;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    int n = snprintf(out, cap, "%.*s%" PRIu32 "%s", (int)head, src, stream_len, at + digits);
    static const char plain[] = "\nlocal PUBLISH = 'PUBLISH'\n";
    char *pub = cluster ? strstr(out, plain) : NULL;
    if (cluster && !pub) {
        free(out);
        return NULL;
    }
    if (pub) {                                    /* one byte longer: cap has room */
        char *verb = pub + sizeof(plain) - 1 - 9; /* at PUBLISH' */
        memmove(verb + 1, verb, strlen(verb) + 1);
        *verb = 'S';
        n++;
    }
    *len = (size_t)n;
    return out;
}

int cg_stream_init(struct cg_stream *s, uv_loop_t *loop, const struct cg_config *cfg,
                   struct cg_registry *reg, struct cg_relay *relay, struct cg_bridge *bridge,
                   const char *proposed)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->cfg = cfg;
    s->reg = reg;
    s->relay = relay;
    s->bridge = bridge;
    snprintf(s->proposed, sizeof(s->proposed), "%s", proposed);
    cg_list_init(&s->catchups);
    uv_timer_init(loop, &s->retry);
    s->retry.data = s;
    s->library = build_library(cfg->stream_len, cfg->ncluster > 0, &s->library_len);
    return s->library ? 0 : -1;
}

static void complete(struct cg_stream_catchup *cu);

void cg_stream_stop(struct cg_stream *s)
{
    if (!uv_is_closing((uv_handle_t *)&s->retry))
        uv_close((uv_handle_t *)&s->retry, NULL);
}

void cg_stream_finish(struct cg_stream *s)
{
    /* The links are gone: what still waits completes with what it has (waiters run). */
    struct cg_list *it, *tmp;
    CG_LIST_FOREACH_SAFE(it, tmp, &s->catchups)
    complete(CG_CONTAINER_OF(it, struct cg_stream_catchup, link));
    free(s->library);
    s->library = NULL;
}

const char *cg_stream_epoch(const struct cg_stream *s)
{
    return s->epoch;
}

/* ---- the function and the epoch ------------------------------------------------------ */

static void on_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct cg_stream *s = priv;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        cg_log_limited(&s->log, 60000, CG_LOG_ERROR, "publish function not loaded",
                       "reason=\"%.200s\" effect=\"FCALL chartgate_publish fails until a "
                       "publisher loads it (scripts/load-functions)\"",
                       reply->str);
}

static int hex16(const char *p, size_t len)
{
    return len == 16 && strspn(p, "0123456789abcdef") == 16;
}

static void start(struct cg_stream *s, struct cg_instrument *in, int warm);
static void pubsub_one(struct cg_map_node *n, void *arg);
static void owed_one(struct cg_map_node *n, void *arg);
static void on_retry(uv_timer_t *t);

static void restart_one(struct cg_map_node *n, void *arg)
{
    (void)arg;
    struct cg_instrument *in = CG_CONTAINER_OF(n, struct cg_instrument, node);
    if (in->shared) {
        /* The counters started again: what this process holds is of the old numbering. */
        in->seq = 0;
        in->shared = 0;
        if (in->chart)
            cg_chart_reset(in->chart, 0);
    }
}

static void on_epoch(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct cg_stream *s = priv;
    redisReply *reply = r;
    const char *now;
    if (!reply)
        return; /* the link dropped: asked again when it is back */
    if (reply->type == REDIS_REPLY_NIL) {
        now = s->proposed; /* ours was set */
    } else if (reply->type == REDIS_REPLY_STRING && hex16(reply->str, reply->len)) {
        now = reply->str;
    } else {
        cg_log_limited(&s->log, 60000, CG_LOG_ERROR, "shared epoch unusable",
                       "key=%s reason=\"%.100s\" effect=\"no resume across processes\"",
                       s->cfg->epoch_key,
                       reply->type == REDIS_REPLY_ERROR ? reply->str : "not 16 hex digits");
        return;
    }
    if (s->epoch[0] && strcmp(s->epoch, now)) {
        cg_log(CG_LOG_WARN, "shared epoch changed",
               "old=%s new=%s effect=\"Redis lost its data: shared seqs start again\"", s->epoch,
               now);
        cg_map_each(&s->reg->instruments, restart_one, s);
    }
    memcpy(s->epoch, now, 17);
}

void cg_stream_command_up(struct cg_stream *s)
{
    /* A fresh proposal each time: a Redis that came back empty must get a new epoch, even from
     * the process that set the old one (its counters start again). */
    char fresh[17];
    if (cg_random_hex(fresh, 8) == 0)
        memcpy(s->proposed, fresh, sizeof(fresh));
    const char *load[4] = {"FUNCTION", "LOAD", "REPLACE", s->library};
    size_t load_len[4] = {8, 4, 7, s->library_len};
    cg_bridge_command(s->bridge, on_loaded, s, 4, load, load_len);
    /* SET NX GET: one step, so two gateways starting together agree on one epoch. */
    const char *set[5] = {"SET", s->cfg->epoch_key, s->proposed, "NX", "GET"};
    size_t set_len[5] = {3, strlen(s->cfg->epoch_key), 16, 2, 3};
    cg_bridge_command(s->bridge, on_epoch, s, 5, set, set_len);
    /* A catch-up needs this link: those waiting for it go now, then any the pub/sub link
     * wanted before it was back. */
    if (uv_is_active((uv_handle_t *)&s->retry))
        on_retry(&s->retry);
    /* One Redis: its pub/sub link may have come back first, with nothing to read from then.
     * A cluster says which channels moved (cg_stream_instrument_gap): when one master's link
     * comes up, only the reads given up for want of it are owed, not every instrument's. */
    cg_map_each(&s->reg->instruments, s->cfg->ncluster ? owed_one : pubsub_one, s);
}

/* ---- catch-ups ------------------------------------------------------------------------- */

static void complete(struct cg_stream_catchup *cu)
{
    struct cg_instrument *in = cu->in;
    struct cg_stream *s = cu->s;
    size_t applied = 0;
    if (cu->warm && cu->ngot && cu->got[0].t < cu->since_ms && in->chart) {
        /* Nothing since the oldest forming bar started: the newest tick is the last value, and
         * it makes no bar (it belongs to a bar long closed). */
        struct copied *e = &cu->got[0];
        if (cg_chart_set_last(in->chart, e->seq, e->data, e->len) == 0) {
            in->seq = e->seq;
            in->shared = 1;
            in->known = 1;
            applied++;
        }
    } else if (cu->warm) {
        in->warming = 1; /* bars rebuilt from the stream were recorded when they closed */
        for (size_t i = cu->ngot; i-- > 0;)
            if (cu->got[i].t >= cu->since_ms) /* older ones would make partial closed bars */
                applied += cg_relay_apply(s->relay, in, cu->got[i].seq, cu->got[i].data,
                                          cu->got[i].len, cu->got[i].t) == 0;
        in->warming = 0;
    } else {
        for (size_t i = 0; i < cu->ngot; i++)
            applied += cg_relay_apply(s->relay, in, cu->got[i].seq, cu->got[i].data, cu->got[i].len,
                                      cu->got[i].t) == 0;
    }
    cg_metrics.stream_caught_up += applied;
    in->catchup = NULL;
    for (size_t i = 0; i < cu->nheld; i++)
        cg_relay_apply(s->relay, in, cu->held[i].seq, cu->held[i].payload, cu->held[i].len, 0);
    cg_list_remove(&cu->link);
    for (size_t i = 0; i < cu->ngot; i++)
        free(cu->got[i].data);
    for (size_t i = 0; i < cu->nheld; i++)
        free(cu->held[i].payload);
    free(cu->got);
    free(cu->held);
    for (size_t i = 0; i < cu->nwaiters; i++)
        cu->waiters[i].fn(cu->waiters[i].arg);
    free(cu->waiters);
    free(cu);
    cg_registry_reap(s->reg, in);
}

/* An entry [id, [field, value, ...]] of an XRANGE reply; 0 when well formed. */
static int parse_entry(const redisReply *e, struct cg_stream_entry *out)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
        return -1;
    const char *id = e->element[0]->str;
    char *end;
    unsigned long long seq = strtoull(id, &end, 10);
    if (!seq || strcmp(end, "-0"))
        return -1;
    memset(out, 0, sizeof(*out));
    out->seq = seq;
    const redisReply *f = e->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            return -1;
        if (k->len == 1 && k->str[0] == 't')
            out->t = strtoll(v->str, NULL, 10);
        else if (k->len == 1 && k->str[0] == 'd') {
            out->data = v->str;
            out->len = v->len;
        }
    }
    return out->data ? 0 : -1;
}

/* Copies the reply's entries onto cu->got. Returns how many entries the reply held, or -1. */
static long take_entries(struct cg_stream_catchup *cu, const redisReply *reply)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i < reply->elements; i++) {
        struct cg_stream_entry e;
        if (parse_entry(reply->element[i], &e))
            continue;
        if (grow((void **)&cu->got, &cu->capgot, cu->ngot, sizeof(*cu->got)))
            return -1;
        char *d = malloc(e.len + 1);
        if (!d)
            return -1;
        memcpy(d, e.data, e.len);
        d[e.len] = 0;
        cu->got[cu->ngot++] = (struct copied){e.seq, e.t, d, e.len};
    }
    return (long)reply->elements;
}

static int warm_page(struct cg_stream_catchup *cu);
static int last_read(struct cg_stream_catchup *cu);
static void wait_retry(struct cg_stream_catchup *cu);

static void on_catchup(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct cg_stream_catchup *cu = priv;
    redisReply *reply = r;
    if (!cu->warm && (!reply || reply->type == REDIS_REPLY_ERROR)) {
        /* The link dropped, or Redis is not ready (LOADING after a restart): the missing ticks
         * are still in the stream, read them once it answers. */
        if (reply)
            cg_log_limited(&cu->s->log, 10000, CG_LOG_WARN, "stream not read",
                           "instrument=%s reason=\"%.200s\" effect=\"tried again\"", cu->in->name,
                           reply->str);
        wait_retry(cu);
        return;
    }
    long n = take_entries(cu, r);
    if (n < 0 && r)
        cg_log_limited(&cu->s->log, 10000, CG_LOG_WARN, "stream not read",
                       "instrument=%s reason=\"%.200s\"", cu->in->name,
                       reply->type == REDIS_REPLY_ERROR ? reply->str : "out of memory");
    if (cu->warm && n == WARM_PAGE && cu->ngot < cu->s->cfg->stream_catchup_max &&
        cu->got[cu->ngot - 1].t >= cu->since_ms && warm_page(cu) == 0)
        return; /* more of the forming bars to read */
    if (!cu->warm && n == 0 && !cu->checked && last_read(cu) == 0)
        return; /* nothing after ours: is Redis's counter behind it? */
    complete(cu);
}

/* The stream's newest entry, when a gap read found nothing after cu->after: a Redis that came
 * back with older data (a snapshot from before its last writes, a failover to a lagging
 * replica) numbers from there again, and those seqs must not be skipped as repeats. */
static void on_last(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct cg_stream_catchup *cu = priv;
    redisReply *reply = r;
    struct cg_stream_entry e = {0};
    /* No stream at all: Redis lost it, and numbers from 1 again. */
    if (reply && reply->type == REDIS_REPLY_ARRAY &&
        (reply->elements == 0 ||
         (reply->elements == 1 && parse_entry(reply->element[0], &e) == 0)) &&
        e.seq < cu->after) {
        cg_log(CG_LOG_WARN, "shared seq went back",
               "instrument=%s ours=%" PRIu64 " redis=%" PRIu64
               " effect=\"Redis lost writes: numbering goes on from Redis's\"",
               cu->in->name, cu->after, e.seq);
        cu->in->seq = e.seq;
        if (cu->in->chart) /* its ring and bars hold seqs Redis now gives again */
            cg_chart_reset(cu->in->chart, e.seq);
    }
    complete(cu);
}

static int last_read(struct cg_stream_catchup *cu)
{
    char key[200];
    size_t klen = (size_t)stream_key(cu->s, cu->in, key, sizeof(key));
    const char *argv[6] = {"XREVRANGE", key, "+", "-", "COUNT", "1"};
    size_t lens[6] = {9, klen, 1, 1, 5, 1};
    cu->checked = 1;
    return cg_bridge_command(cu->s->bridge, on_last, cu, 6, argv, lens);
}

static int warm_page(struct cg_stream_catchup *cu)
{
    char key[200], end[32], cnt[16];
    size_t klen = (size_t)stream_key(cu->s, cu->in, key, sizeof(key));
    size_t elen =
        cu->ngot ? (size_t)snprintf(end, sizeof(end), "(%" PRIu64 "-0", cu->got[cu->ngot - 1].seq)
                 : (size_t)snprintf(end, sizeof(end), "+");
    size_t left = cu->s->cfg->stream_catchup_max - cu->ngot;
    size_t clen = (size_t)snprintf(cnt, sizeof(cnt), "%zu", left < WARM_PAGE ? left : WARM_PAGE);
    const char *argv[6] = {"XREVRANGE", key, end, "-", "COUNT", cnt};
    size_t lens[6] = {9, klen, elen, 1, 5, clen};
    return cg_bridge_command(cu->s->bridge, on_catchup, cu, 6, argv, lens);
}

static int gap_read(struct cg_stream_catchup *cu)
{
    char key[200], from[32], cnt[16];
    size_t klen = (size_t)stream_key(cu->s, cu->in, key, sizeof(key));
    size_t flen = (size_t)snprintf(from, sizeof(from), "%" PRIu64 "-0", cu->after + 1);
    size_t clen = (size_t)snprintf(cnt, sizeof(cnt), "%" PRIu32, cu->s->cfg->stream_catchup_max);
    const char *argv[6] = {"XRANGE", key, from, "+", "COUNT", cnt};
    size_t lens[6] = {6, klen, flen, 1, 5, clen};
    return cg_bridge_command(cu->s->bridge, on_catchup, cu, 6, argv, lens);
}

static int issue(struct cg_stream_catchup *cu)
{
    cu->waiting = 0;
    return cu->warm ? warm_page(cu) : gap_read(cu);
}

static void on_retry(uv_timer_t *t)
{
    struct cg_stream *s = t->data;
    uint64_t now = uv_now(s->loop);
    int waiting = 0;
    struct cg_list *it, *tmp;
    CG_LIST_FOREACH_SAFE(it, tmp, &s->catchups)
    {
        struct cg_stream_catchup *cu = CG_CONTAINER_OF(it, struct cg_stream_catchup, link);
        if (!cu->waiting)
            continue;
        if (now - cu->wait_since >= GIVE_UP_MS) {
            cu->in->owed = !cu->warm; /* read when a command link comes up */
            complete(cu);             /* the held ticks go out; the gap stays (counted as missed) */
        } else if (!cg_bridge_up(s->bridge, CG_LINK_COMMAND) || issue(cu) != 0) {
            cu->waiting = 1;
            waiting = 1;
        }
    }
    if (!waiting)
        uv_timer_stop(t);
}

static void wait_retry(struct cg_stream_catchup *cu)
{
    struct cg_stream *s = cu->s;
    if (!cu->wait_since)
        cu->wait_since = uv_now(s->loop);
    cu->waiting = 1;
    if (!uv_is_active((uv_handle_t *)&s->retry) && !uv_is_closing((uv_handle_t *)&s->retry))
        uv_timer_start(&s->retry, on_retry, RETRY_MS, RETRY_MS);
}

static void start(struct cg_stream *s, struct cg_instrument *in, int warm)
{
    int up = cg_bridge_up(s->bridge, CG_LINK_COMMAND);
    /* A warm-up only when Redis answers now (a snapshot does not wait for a Redis that is
     * down); a gap waits for it a little: the ticks are in the stream. */
    if (in->catchup || !s->epoch[0] || (warm && !up))
        return;
    struct cg_stream_catchup *cu = calloc(1, sizeof(*cu));
    if (!cu)
        return;
    cu->s = s;
    cu->in = in;
    cu->warm = warm;
    cu->after = in->seq;
    cu->since_ms = in->chart ? cg_chart_oldest_forming(in->chart, wall_ms()) : wall_ms();
    in->catchup = cu;
    in->owed = 0;
    cg_list_append(&s->catchups, &cu->link);
    cg_metrics.stream_catchups++;
    if (!up || issue(cu) != 0) {
        if (warm)
            complete(cu);
        else
            wait_retry(cu);
    }
}

void cg_stream_instrument_active(struct cg_stream *s, struct cg_instrument *in, int active)
{
    if (!active)
        return;
    if (!in->seq)
        start(s, in, 1); /* first subscriber here: last tick and forming bars from the stream */
    else if (in->shared)
        start(s, in, 0); /* ticks were not coming while nobody here watched */
}

static void pubsub_one(struct cg_map_node *n, void *arg)
{
    struct cg_instrument *in = CG_CONTAINER_OF(n, struct cg_instrument, node);
    if (in->shared && in->seq && (in->nsubs || in->chart))
        start(arg, in, 0);
}

static void owed_one(struct cg_map_node *n, void *arg)
{
    if (CG_CONTAINER_OF(n, struct cg_instrument, node)->owed)
        pubsub_one(n, arg);
}

void cg_stream_pubsub_up(struct cg_stream *s)
{
    /* Ticks published while the pub/sub link was down are in the streams. */
    cg_map_each(&s->reg->instruments, pubsub_one, s);
}

void cg_stream_instrument_gap(struct cg_stream *s, struct cg_instrument *in)
{
    pubsub_one(&in->node, s);
}

void cg_stream_hold(void *data, struct cg_instrument *in, uint64_t seq, const char *payload,
                    size_t plen)
{
    struct cg_stream *s = data;
    struct cg_stream_catchup *cu = in->catchup;
    char *p = NULL;
    if (cu->nheld >= s->cfg->stream_catchup_max ||
        grow((void **)&cu->held, &cu->capheld, cu->nheld, sizeof(*cu->held)) ||
        !(p = malloc(plen ? plen : 1))) {
        /* Dropped: the next live tick after the catch-up shows the gap and fetches it. */
        cg_metrics.stream_hold_overflows++;
        return;
    }
    memcpy(p, payload, plen);
    cu->held[cu->nheld++] = (struct held){seq, p, plen};
}

int cg_stream_gap(void *data, struct cg_instrument *in, uint64_t seq)
{
    (void)seq;
    struct cg_stream *s = data;
    start(s, in, 0);
    return in->catchup ? 0 : -1;
}

int cg_stream_when_ready(struct cg_stream *s, struct cg_instrument *in, cg_stream_ready_fn *fn,
                         void *arg)
{
    (void)s;
    struct cg_stream_catchup *cu = in->catchup;
    if (!cu)
        return 1;
    if (grow((void **)&cu->waiters, &cu->capwaiters, cu->nwaiters, sizeof(*cu->waiters)))
        return -1;
    cu->waiters[cu->nwaiters++] = (struct waiter){fn, arg};
    return 0;
}

/* ---- one socket's resume --------------------------------------------------------------- */

struct read_ctx {
    cg_stream_read_fn *fn;
    void *arg;
};

static void on_read(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct read_ctx *rc = priv;
    redisReply *reply = r;
    struct cg_stream_entry *e = NULL;
    size_t n = 0;
    int ok = reply && reply->type == REDIS_REPLY_ARRAY;
    if (ok && reply->elements && !(e = malloc(reply->elements * sizeof(*e))))
        ok = 0;
    for (size_t i = 0; ok && i < reply->elements; i++)
        if (parse_entry(reply->element[i], &e[n]) == 0)
            n++;
    rc->fn(rc->arg, ok ? e : NULL, ok ? n : 0, ok);
    free(e);
    free(rc);
}

int cg_stream_read(struct cg_stream *s, const struct cg_instrument *in, uint64_t from,
                   uint64_t count, cg_stream_read_fn *fn, void *arg)
{
    struct read_ctx *rc = malloc(sizeof(*rc));
    if (!rc)
        return -1;
    rc->fn = fn;
    rc->arg = arg;
    char key[200], start_id[32], cnt[24];
    size_t klen = (size_t)stream_key(s, in, key, sizeof(key));
    size_t slen = (size_t)snprintf(start_id, sizeof(start_id), "%" PRIu64 "-0", from);
    size_t clen = (size_t)snprintf(cnt, sizeof(cnt), "%" PRIu64, count);
    const char *argv[6] = {"XRANGE", key, start_id, "+", "COUNT", cnt};
    size_t lens[6] = {6, klen, slen, 1, 5, clen};
    if (cg_bridge_command(s->bridge, on_read, rc, 6, argv, lens)) {
        free(rc);
        return -1;
    }
    return 0;
}
