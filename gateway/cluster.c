/* cluster.c -- Redis Cluster mode: slot map, per-master command and sharded pub/sub links. */
#include "cluster.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "sentinel.h"
#include "uvredis.h"

#define TICK_MS 100
#define CONNECT_TIMEOUT_MS 3000
#define PROBE_EVERY_MS 2000
#define REPLY_TIMEOUT_MS 5000
#define REFRESH_EVERY_MS 10000
#define REFRESH_DEGRADED_MS 500 /* while a slot has no reachable master */
#define REFRESH_MIN_GAP_MS 100  /* asked again at most this often */
#define RETRY_FOR_MS 3000       /* TRYAGAIN / CLUSTERDOWN / a redirect to a link not up yet */
#define REDIRECTS_MAX 16
#define PARKED_MAX 100000 /* requests waiting to be resent; past it they fail at once */
#define LOG_EVERY_MS 60000

struct channel {
    struct cg_map_node node;
    int at;    /* node index it is subscribed on (or being), -1 = none */
    int state; /* 0 not subscribed, 1 SSUBSCRIBE sent, 2 confirmed */
    uint16_t slot;
    uint8_t gap; /* a confirmed subscription was lost: hooks.resubscribed when confirmed again */
    size_t len;
    char name[]; /* NUL-terminated */
};

struct fanin {
    redisCallbackFn *fn;
    void *priv;
    int left;
    int done; /* fn has run (with an error) */
};

struct request {
    struct cg_list link; /* in parked while waiting */
    struct cg_cluster *c;
    redisCallbackFn *fn;
    void *priv;
    struct fanin *fan;
    int node;   /* the node it goes to next (a fan-in request stays on its node) */
    int asking; /* send ASKING first (an ASK redirect) */
    int key;    /* argv index of the key, -1 = none */
    int hops;   /* redirects followed */
    uint64_t first_ms, due_ms;
    int argc;
    const char **argv;
    size_t *lens;
};

static uint64_t now_ms(const struct cg_cluster *c)
{
    return uv_now(c->loop);
}

static uint32_t jitter(uint32_t *backoff, uint32_t max)
{
    uint32_t base = *backoff ? *backoff : 100;
    uint32_t delay = base / 2 + (uint32_t)(rand() % (base / 2 + 1));
    *backoff = base * 2 > max ? max : base * 2;
    return delay;
}

static void want_refresh(struct cg_cluster *c)
{
    c->refresh_wanted = 1;
}

/* ---- requests ------------------------------------------------------------------------ */

static struct request *request_new(struct cg_cluster *c, redisCallbackFn *fn, void *priv, int argc,
                                   const char **argv, const size_t *lens)
{
    size_t bytes = sizeof(struct request) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    for (int i = 0; i < argc; i++)
        bytes += lens[i] + 1;
    struct request *r = calloc(1, bytes);
    if (!r)
        return NULL;
    cg_list_init(&r->link);
    r->c = c;
    r->fn = fn;
    r->priv = priv;
    r->argc = argc;
    r->argv = (const char **)(r + 1);
    r->lens = (size_t *)(r->argv + argc);
    char *p = (char *)(r->lens + argc);
    for (int i = 0; i < argc; i++) {
        memcpy(p, argv[i], lens[i]);
        p[lens[i]] = 0;
        r->argv[i] = p;
        r->lens[i] = lens[i];
        p += lens[i] + 1;
    }
    r->key = cg_slots_key_index(argc, argv, lens);
    r->node = -1;
    r->first_ms = now_ms(c);
    return r;
}

/* Runs the caller's callback once (a fan-in: once for all its nodes) and frees r. */
static void finish(struct request *r, redisAsyncContext *ac, redisReply *reply)
{
    struct fanin *f = r->fan;
    if (!f) {
        if (r->fn)
            r->fn(ac, reply, r->priv);
    } else {
        int error = !reply || reply->type == REDIS_REPLY_ERROR;
        if (!f->done && (error || f->left == 1)) {
            f->done = 1;
            if (f->fn)
                f->fn(ac, reply, f->priv);
        }
        if (--f->left == 0)
            free(f);
    }
    cg_list_remove(&r->link);
    free(r);
}

static int node_of(const struct cg_cluster *c, const struct request *r)
{
    if (r->node >= 0)
        return r->node;
    if (r->key < 0)
        return -1;
    uint16_t owner = c->map.owner[cg_slots_of(r->argv[r->key], r->lens[r->key])];
    return owner == CG_SLOTS_NONE ? -1 : owner;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

/* Sends r to its node. Returns 0, or -1 when that node's link is not up (r untouched). */
static int send_request(struct request *r)
{
    struct cg_cluster *c = r->c;
    int n = node_of(c, r);
    if (n < 0 || !c->nodes[n].up)
        return -1;
    redisAsyncContext *ac = c->nodes[n].ac;
    if (r->asking && redisAsyncCommand(ac, NULL, NULL, "ASKING") != REDIS_OK)
        return -1;
    if (redisAsyncCommandArgv(ac, on_reply, r, r->argc, r->argv, r->lens) != REDIS_OK)
        return -1;
    return 0;
}

/* Waits 100 ms before trying r again, or gives up (fn gets reply, NULL = none) after
 * RETRY_FOR_MS. */
static void park(struct request *r, redisAsyncContext *ac, redisReply *reply)
{
    struct cg_cluster *c = r->c;
    if (c->stopping || now_ms(c) - r->first_ms > RETRY_FOR_MS || c->nparked >= PARKED_MAX) {
        finish(r, ac, reply);
        return;
    }
    r->due_ms = now_ms(c) + TICK_MS;
    cg_list_append(&c->parked, &r->link);
    c->nparked++;
}

static int starts(const redisReply *e, const char *prefix)
{
    size_t n = strlen(prefix);
    return e->len >= n && !memcmp(e->str, prefix, n);
}

static void on_reply(redisAsyncContext *ac, void *r_, void *priv)
{
    struct request *r = priv;
    redisReply *reply = r_;
    struct cg_cluster *c = r->c;
    if (!reply || reply->type != REDIS_REPLY_ERROR || c->stopping) {
        finish(r, ac, reply);
        return;
    }
    uint16_t slot;
    char host[CG_SLOTS_HOST_MAX + 1];
    uint32_t port;
    int kind = cg_slots_redirect(reply->str, reply->len, &slot, host, &port);
    if (kind && r->hops < REDIRECTS_MAX && !r->fan) {
        struct cg_cluster_node *from = ac->data;
        if (!host[0] && from)
            snprintf(host, sizeof(host), "%s", c->map.nodes[from->idx].host);
        int n;
        r->hops++;
        if (kind == CG_SLOTS_MOVED) {
            cg_metrics.cluster_moved++;
            n = cg_slots_assign(&c->map, slot, slot, host, port);
            want_refresh(c);
            r->node = -1;
            r->asking = 0;
        } else {
            cg_metrics.cluster_asked++;
            n = cg_slots_node(&c->map, host, port);
            r->node = n;
            r->asking = 1;
        }
        if (n >= 0 && !c->nodes[n].master) {
            c->nodes[n].master = 1; /* connect to it: the next tick does */
            c->nodes[n].retry_at_ms = 0;
        }
        /* The first redirect is followed at once; after that, nodes disagree (a migration
         * half done): wait a tick each time. */
        if (n >= 0 && r->hops == 1 && send_request(r) == 0)
            return;
        if (n >= 0) {
            park(r, ac, reply);
            return;
        }
    } else if (!r->fan && (starts(reply, "TRYAGAIN") || starts(reply, "CLUSTERDOWN"))) {
        want_refresh(c);
        park(r, ac, reply);
        return;
    }
    finish(r, ac, reply);
}

static void resend_parked(struct cg_cluster *c)
{
    uint64_t now = now_ms(c);
    struct cg_list *it, *tmp;
    CG_LIST_FOREACH_SAFE(it, tmp, &c->parked)
    {
        struct request *r = CG_CONTAINER_OF(it, struct request, link);
        if (r->due_ms > now)
            continue;
        cg_list_remove(&r->link);
        c->nparked--;
        if (send_request(r))
            park(r, NULL, NULL);
    }
}

int cg_cluster_command(struct cg_cluster *c, redisCallbackFn *fn, void *privdata, int argc,
                       const char **argv, const size_t *argvlen)
{
    if (c->stopping || argc < 1)
        return -1;
    if (cg_slots_key_index(argc, argv, argvlen) >= 0) {
        struct request *r = request_new(c, fn, privdata, argc, argv, argvlen);
        if (!r)
            return -1;
        if (send_request(r)) {
            free(r);
            return -1;
        }
        return 0;
    }
    /* No key: every master that is up. */
    struct fanin *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    f->fn = fn;
    f->priv = privdata;
    f->left = 1; /* held until every request is sent */
    for (size_t i = 0; i < c->map.nnodes; i++) {
        if (!c->nodes[i].master || !c->nodes[i].up)
            continue;
        struct request *r = request_new(c, fn, privdata, argc, argv, argvlen);
        if (!r)
            break;
        r->fan = f;
        r->node = (int)i;
        f->left++;
        if (send_request(r)) {
            f->left--;
            free(r);
        }
    }
    if (--f->left == 0) { /* nothing was sent */
        free(f);
        return -1;
    }
    return 0;
}

int cg_cluster_key_addr(const struct cg_cluster *c, const char *key, size_t len, const char **host,
                        uint32_t *port)
{
    uint16_t owner = c->map.owner[cg_slots_of(key, len)];
    if (owner == CG_SLOTS_NONE)
        return -1;
    *host = c->map.nodes[owner].host;
    *port = c->map.nodes[owner].port;
    return 0;
}

/* ---- channels -------------------------------------------------------------------------- */

static struct channel *channel_get(const struct cg_cluster *c, const char *ch, size_t len)
{
    struct cg_map_node *n = cg_map_get(&c->channels, ch, len);
    return n ? CG_CONTAINER_OF(n, struct channel, node) : NULL;
}

/* ch's subscription is gone (or going): it is made again where the map says. A confirmed one
 * may have missed messages until then: hooks.resubscribed is due when it is confirmed again. */
static void channel_unplace(struct cg_cluster *c, struct channel *ch)
{
    if (ch->state == 2)
        ch->gap = 1;
    ch->state = 0;
    ch->at = -1;
    c->channels_dirty = 1;
}

/* Subscribes ch where its slot is served, if that link is up. */
static void channel_place(struct cg_cluster *c, struct channel *ch)
{
    uint16_t owner = c->map.owner[ch->slot];
    if (ch->state && ch->at != (int)owner) {
        /* The slot moved: leave the old node (if its link still holds the subscription). */
        struct cg_cluster_node *old = &c->nodes[ch->at];
        if (old->sub_state == 2)
            cg_shardsub_unsubscribe(&old->sub, ch->name, ch->len);
        channel_unplace(c, ch);
    }
    if (ch->state)
        return;
    if (owner == CG_SLOTS_NONE || c->nodes[owner].sub_state != 2) {
        c->channels_dirty = 1;
        return;
    }
    if (cg_shardsub_subscribe(&c->nodes[owner].sub, ch->name, ch->len)) {
        c->channels_dirty = 1;
        return;
    }
    ch->at = owner;
    ch->state = 1;
}

static void place_one(struct cg_map_node *n, void *arg)
{
    channel_place(arg, CG_CONTAINER_OF(n, struct channel, node));
}

static void place_all(struct cg_cluster *c)
{
    c->channels_dirty = 0;
    cg_map_each(&c->channels, place_one, c);
}

int cg_cluster_subscribe(struct cg_cluster *c, const char *name, size_t len)
{
    if (channel_get(c, name, len))
        return 0;
    struct channel *ch = malloc(sizeof(*ch) + len + 1);
    if (!ch)
        return -1;
    memcpy(ch->name, name, len);
    ch->name[len] = 0;
    ch->len = len;
    ch->at = -1;
    ch->state = 0;
    ch->gap = 0;
    ch->slot = cg_slots_of(name, len);
    if (cg_map_put(&c->channels, &ch->node, ch->name, len)) {
        free(ch);
        return -1;
    }
    channel_place(c, ch);
    return 0;
}

void cg_cluster_unsubscribe(struct cg_cluster *c, const char *name, size_t len)
{
    struct channel *ch = channel_get(c, name, len);
    if (!ch)
        return;
    if (ch->state && c->nodes[ch->at].sub_state == 2)
        cg_shardsub_unsubscribe(&c->nodes[ch->at].sub, ch->name, ch->len);
    cg_map_del(&c->channels, &ch->node);
    free(ch);
}

/* ---- the sharded pub/sub link of a node ------------------------------------------------ */

static void sub_up(void *data)
{
    struct cg_cluster_node *n = data;
    struct cg_cluster *c = n->cluster;
    n->sub_state = 2;
    n->sub_backoff_ms = 0;
    cg_log(CG_LOG_INFO, "redis link up", "link=shardsub addr=%s:%u", c->map.nodes[n->idx].host,
           c->map.nodes[n->idx].port);
    if (n->sub_ever_up)
        cg_metrics.redis_reconnects[CG_LINK_PUBSUB]++;
    n->sub_ever_up = 1;
    place_all(c);
}

static void unplace_node(struct cg_map_node *mn, void *arg)
{
    struct cg_cluster_node *n = arg;
    struct channel *ch = CG_CONTAINER_OF(mn, struct channel, node);
    if (ch->at == n->idx)
        channel_unplace(n->cluster, ch);
}

static void sub_down(void *data, const char *why)
{
    struct cg_cluster_node *n = data;
    struct cg_cluster *c = n->cluster;
    if (n->sub_state == 2)
        cg_log(CG_LOG_WARN, "redis link lost", "link=shardsub addr=%s:%u reason=\"%s\"",
               c->map.nodes[n->idx].host, c->map.nodes[n->idx].port, why);
    n->sub_state = 0;
    n->sub_retry_at_ms = now_ms(c) + jitter(&n->sub_backoff_ms, c->cfg->redis_backoff_max_ms);
    cg_map_each(&c->channels, unplace_node, n);
    want_refresh(c); /* a dead master: its replica may take over */
}

static void sub_message(void *data, const char *ch, size_t chlen, const char *msg, size_t msglen)
{
    struct cg_cluster_node *n = data;
    struct cg_cluster *c = n->cluster;
    c->hooks.message(c->hooks.data, ch, chlen, msg, msglen);
}

static void sub_subscribed(void *data, const char *name, size_t len)
{
    struct cg_cluster_node *n = data;
    struct cg_cluster *c = n->cluster;
    struct channel *ch = channel_get(c, name, len);
    if (!ch || ch->at != n->idx)
        return;
    ch->state = 2;
    if (ch->gap) {
        /* From now on its messages arrive: what came before is read back from where it is kept
         * (a tick stream), for this channel only. */
        ch->gap = 0;
        if (c->hooks.resubscribed)
            c->hooks.resubscribed(c->hooks.data, ch->name, ch->len);
    }
}

/* Redis took the subscription back (the slot moved) or refused it (MOVED: the map is stale):
 * it is made again where the refreshed map says. */
static void sub_lost(void *data, const char *name, size_t len)
{
    struct cg_cluster_node *n = data;
    struct cg_cluster *c = n->cluster;
    struct channel *ch = channel_get(c, name, len);
    if (ch && ch->at == n->idx) {
        channel_unplace(c, ch);
        cg_metrics.cluster_resubscribes++;
    }
    want_refresh(c);
}

static void sub_refused(void *data, const char *name, size_t len, const char *err)
{
    struct cg_cluster_node *n = data;
    cg_log_limited(&n->fail_log, 5000, CG_LOG_INFO, "sharded subscription refused",
                   "addr=%s:%u channel=%.*s error=\"%.200s\"", n->cluster->map.nodes[n->idx].host,
                   n->cluster->map.nodes[n->idx].port, (int)(len > 100 ? 100 : len), name, err);
    sub_lost(n, name, len);
}

static void sub_connect(struct cg_cluster_node *n)
{
    struct cg_cluster *c = n->cluster;
    const char *argv[3];
    size_t lens[3];
    int argc = cg_sentinel_auth_argv(&c->cfg->redis_auth, argv, lens);
    n->sub_state = 1;
    /* shardsub takes AUTH's arguments without the command name */
    if (cg_shardsub_connect(&n->sub, c->map.nodes[n->idx].host, c->map.nodes[n->idx].port,
                            argc ? argc - 1 : 0, argv + 1, lens + 1)) {
        n->sub_state = 0;
        n->sub_retry_at_ms = now_ms(c) + jitter(&n->sub_backoff_ms, c->cfg->redis_backoff_max_ms);
    }
}

/* ---- the command link of a node ----------------------------------------------------------- */

static void cmd_drop(struct cg_cluster_node *n, const char *why)
{
    struct cg_cluster *c = n->cluster;
    redisAsyncContext *ac = n->ac;
    if (!ac)
        return;
    if (n->up)
        cg_log(CG_LOG_WARN, "redis link lost", "link=command addr=%s:%u reason=\"%s\"",
               c->map.nodes[n->idx].host, c->map.nodes[n->idx].port, why);
    else
        cg_log_limited(&n->fail_log, LOG_EVERY_MS, CG_LOG_INFO, "redis link failed",
                       "link=command addr=%s:%u reason=\"%s\"", c->map.nodes[n->idx].host,
                       c->map.nodes[n->idx].port, why);
    n->ac = NULL;
    n->up = 0;
    n->pending_ms = 0;
    ac->data = NULL;
    redisAsyncFree(ac); /* pending callbacks run with NULL */
    n->retry_at_ms = now_ms(c) + jitter(&n->backoff_ms, c->cfg->redis_backoff_max_ms);
    want_refresh(c);
}

static void cmd_ready(struct cg_cluster_node *n)
{
    struct cg_cluster *c = n->cluster;
    if (n->ever_up)
        cg_metrics.redis_reconnects[CG_LINK_COMMAND]++;
    n->ever_up = 1;
    n->up = 1;
    n->backoff_ms = 0;
    n->pending_ms = 0;
    n->probe_ms = now_ms(c);
    n->fail_log.last_ms = 0;
    cg_log(CG_LOG_INFO, "redis link up", "link=command addr=%s:%u", c->map.nodes[n->idx].host,
           c->map.nodes[n->idx].port);
    if (c->hooks.command_up)
        c->hooks.command_up(c->hooks.data);
}

static void on_auth(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    struct cg_cluster_node *n = ac->data;
    redisReply *reply = r;
    if (!n || n->ac != ac || !reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        cg_metrics.redis_auth_failures[CG_LINK_COMMAND]++;
        cg_log_limited(&n->fail_log, LOG_EVERY_MS, CG_LOG_ERROR, "redis authentication failed",
                       "link=command addr=%s:%u error=\"%.200s\"",
                       n->cluster->map.nodes[n->idx].host, n->cluster->map.nodes[n->idx].port,
                       reply->str);
        cmd_drop(n, "AUTH refused");
        return;
    }
    cmd_ready(n);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct cg_cluster_node *n = ac->data;
    if (!n || n->ac != ac)
        return;
    if (status != REDIS_OK) {
        struct cg_cluster *c = n->cluster;
        cg_log_limited(&n->fail_log, LOG_EVERY_MS, CG_LOG_INFO, "redis link failed",
                       "link=command addr=%s:%u reason=\"%s\"", c->map.nodes[n->idx].host,
                       c->map.nodes[n->idx].port, ac->errstr);
        n->ac = NULL; /* hiredis frees it after this callback */
        n->up = 0;
        n->retry_at_ms = now_ms(c) + jitter(&n->backoff_ms, c->cfg->redis_backoff_max_ms);
        want_refresh(c);
        return;
    }
    if (!n->handshake)
        cmd_ready(n);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct cg_cluster_node *n = ac->data;
    if (!n || n->ac != ac)
        return;
    struct cg_cluster *c = n->cluster;
    if (n->up)
        cg_log(CG_LOG_WARN, "redis link lost", "link=command addr=%s:%u reason=\"%s\"",
               c->map.nodes[n->idx].host, c->map.nodes[n->idx].port,
               status == REDIS_OK ? "closed" : ac->errstr);
    n->ac = NULL;
    n->up = 0;
    n->pending_ms = 0;
    n->retry_at_ms = now_ms(c) + jitter(&n->backoff_ms, c->cfg->redis_backoff_max_ms);
    want_refresh(c);
}

static void on_pong(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    struct cg_cluster_node *n = ac->data;
    if (n && n->ac == ac && r)
        n->pending_ms = 0;
}

/* A new hiredis context to host:port, AUTH queued (argc > 0) with cb for its reply. NULL on
 * failure. */
static redisAsyncContext *open_ctx(struct cg_cluster *c, const char *host, uint32_t port,
                                   redisCallbackFn *auth_cb, void *data, int *authed)
{
    redisAsyncContext *ac = redisAsyncConnect(host, (int)port);
    if (!ac || ac->err || cg_uvredis_attach(ac, c->loop) != REDIS_OK) {
        if (ac)
            redisAsyncFree(ac);
        return NULL;
    }
    ac->data = data;
    const char *argv[3];
    size_t lens[3];
    int argc = cg_sentinel_auth_argv(&c->cfg->redis_auth, argv, lens);
    if (argc && redisAsyncCommandArgv(ac, auth_cb, NULL, argc, argv, lens) != REDIS_OK) {
        ac->data = NULL;
        redisAsyncFree(ac);
        return NULL;
    }
    *authed = argc > 0;
    return ac;
}

static void cmd_connect(struct cg_cluster_node *n)
{
    struct cg_cluster *c = n->cluster;
    int authed = 0;
    redisAsyncContext *ac =
        open_ctx(c, c->map.nodes[n->idx].host, c->map.nodes[n->idx].port, on_auth, n, &authed);
    if (!ac) {
        n->retry_at_ms = now_ms(c) + jitter(&n->backoff_ms, c->cfg->redis_backoff_max_ms);
        return;
    }
    n->ac = ac;
    n->up = 0;
    n->handshake = authed;
    n->since_ms = now_ms(c);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

/* ---- the slot map ---------------------------------------------------------------------- */

/* Applies a CLUSTER SLOTS reply; from = the node asked (its host stands in for an empty one).
 * Returns 0, or -1 when the reply is not a map (nothing changed). */
static int apply_map(struct cg_cluster *c, const redisReply *r, const char *from_host)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || !r->elements)
        return -1;
    uint16_t *before = c->before;
    memcpy(before, c->map.owner, sizeof(c->before));
    cg_slots_clear(&c->map);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2)
            continue;
        const redisReply *m = e->element[2];
        if (m->element[0]->type != REDIS_REPLY_STRING || m->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        const char *host =
            m->element[0]->len && strcmp(m->element[0]->str, "?") ? m->element[0]->str : from_host;
        long long from = e->element[0]->integer, to = e->element[1]->integer;
        if (from < 0 || to < 0 ||
            cg_slots_assign(&c->map, (uint32_t)from, (uint32_t)to, host,
                            (uint32_t)m->element[1]->integer) < 0)
            cg_log_limited(&c->map_log, LOG_EVERY_MS, CG_LOG_WARN, "cluster map entry ignored",
                           "from=%lld to=%lld host=%.100s", from, to, host);
    }
    cg_metrics.cluster_map_refreshes++;
    c->map_ok = 1;
    for (size_t i = 0; i < c->map.nnodes; i++)
        c->nodes[i].master = 0;
    for (size_t s = 0; s < CG_SLOTS_COUNT; s++)
        if (c->map.owner[s] != CG_SLOTS_NONE)
            c->nodes[c->map.owner[s]].master = 1;
    for (size_t i = 0; i < c->map.nnodes; i++) {
        struct cg_cluster_node *n = &c->nodes[i];
        if (n->master)
            continue;
        /* Not a master any more (a demoted one, a removed node): its links go. */
        if (n->ac)
            cmd_drop(n, "no longer a master");
        if (n->sub_state) {
            cg_shardsub_close(&n->sub);
            n->sub_state = 0;
            cg_map_each(&c->channels, unplace_node, n);
        }
    }
    int changed = memcmp(before, c->map.owner, sizeof(c->before)) != 0;
    if (changed) {
        size_t unserved = cg_slots_unserved(&c->map);
        cg_log(unserved ? CG_LOG_WARN : CG_LOG_INFO, "cluster map changed",
               "nodes=%zu unserved_slots=%zu", c->map.nnodes, unserved);
        place_all(c);
        if (c->hooks.map_changed)
            c->hooks.map_changed(c->hooks.data);
    }
    return 0;
}

/* A CLUSTER SLOTS answer. priv: the node whose command link was asked, or NULL for a seed
 * connection (whose ac->data is the cluster until it is dropped). */
static void on_slots(redisAsyncContext *ac, void *r, void *priv)
{
    struct cg_cluster_node *n = priv;
    struct cg_cluster *c = n ? n->cluster : ac->data;
    redisReply *reply = r;
    char host[CG_SLOTS_HOST_MAX + 1];
    if (!c)
        return; /* a seed connection dropped by the tick or at stop */
    if (!n) {
        if (ac != c->refresh_ac)
            return; /* an older seed connection, lost after it was replaced */
        c->refresh_ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac); /* deferred by hiredis: we are in its callback */
        snprintf(host, sizeof(host), "%s", c->refresh_host);
    } else {
        snprintf(host, sizeof(host), "%s", c->map.nodes[n->idx].host);
    }
    c->refresh_inflight = 0;
    if (c->stopping)
        return;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        cg_log_limited(&c->map_log, LOG_EVERY_MS, CG_LOG_ERROR, "cluster map unreadable",
                       "error=\"%.200s\" hint=\"is this node in cluster mode?\"", reply->str);
    else if (reply)
        apply_map(c, reply, host);
}

static void on_seed_auth(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    struct cg_cluster *c = ac->data; /* NULL once dropped */
    redisReply *reply = r;
    if (c && reply && reply->type == REDIS_REPLY_ERROR && ac == c->refresh_ac) {
        cg_metrics.redis_auth_failures[CG_LINK_COMMAND]++;
        cg_log_limited(&c->map_log, LOG_EVERY_MS, CG_LOG_ERROR, "redis authentication failed",
                       "link=cluster-seed error=\"%.200s\"", reply->str);
    }
}

static void on_seed_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    struct cg_cluster *c = ac->data;
    if (c && c->refresh_ac == ac) {
        c->refresh_ac = NULL;
        c->refresh_inflight = 0;
    }
}

static void on_seed_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        on_seed_disconnect(ac, status);
}

/* Asks for the slot map: on an up master's command link, else on a new connection to the next
 * seed or known node. */
static void refresh(struct cg_cluster *c)
{
    if (c->refresh_inflight || c->stopping)
        return;
    c->refresh_wanted = 0;
    c->refresh_ms = now_ms(c);
    for (size_t i = 0; i < c->map.nnodes; i++) {
        struct cg_cluster_node *n = &c->nodes[i];
        if (n->up && n->master &&
            redisAsyncCommand(n->ac, on_slots, n, "CLUSTER SLOTS") == REDIS_OK) {
            c->refresh_inflight = 1;
            return;
        }
    }
    /* Seeds first, then every node seen so far, in turn. */
    uint32_t total = c->cfg->ncluster + (uint32_t)c->map.nnodes;
    uint32_t at = c->seed_at++ % total;
    const char *host;
    uint32_t port;
    if (at < c->cfg->ncluster) {
        host = c->cfg->cluster_hosts[at];
        port = c->cfg->cluster_ports[at];
    } else {
        host = c->map.nodes[at - c->cfg->ncluster].host;
        port = c->map.nodes[at - c->cfg->ncluster].port;
    }
    int authed = 0;
    redisAsyncContext *ac = open_ctx(c, host, port, on_seed_auth, c, &authed);
    if (!ac)
        return;
    redisAsyncSetConnectCallback(ac, on_seed_connect);
    redisAsyncSetDisconnectCallback(ac, on_seed_disconnect);
    snprintf(c->refresh_host, sizeof(c->refresh_host), "%s", host);
    if (redisAsyncCommand(ac, on_slots, NULL, "CLUSTER SLOTS") != REDIS_OK) {
        ac->data = NULL;
        redisAsyncFree(ac);
        return;
    }
    c->refresh_ac = ac;
    c->refresh_inflight = 1;
}

/* ---- the tick: connects, watchdogs, refreshes, retries ---------------------------------- */

static void tick_cb(uv_timer_t *t)
{
    struct cg_cluster *c = t->data;
    uint64_t now = now_ms(c);
    int degraded = !c->map_ok || cg_slots_unserved(&c->map) > 0;
    for (size_t i = 0; i < c->map.nnodes; i++) {
        struct cg_cluster_node *n = &c->nodes[i];
        if (!n->master)
            continue;
        if (!n->ac && now >= n->retry_at_ms)
            cmd_connect(n);
        else if (n->ac && !n->up && now - n->since_ms > CONNECT_TIMEOUT_MS)
            cmd_drop(n, "connect timeout");
        else if (n->up && n->pending_ms && now - n->pending_ms > REPLY_TIMEOUT_MS)
            cmd_drop(n, "ping unanswered");
        else if (n->up && !n->pending_ms && now - n->probe_ms >= PROBE_EVERY_MS) {
            n->probe_ms = n->pending_ms = now;
            if (redisAsyncCommand(n->ac, on_pong, NULL, "PING") != REDIS_OK)
                cmd_drop(n, "ping could not be sent");
        }
        if (!n->sub_state && now >= n->sub_retry_at_ms)
            sub_connect(n);
        if (!n->up || n->sub_state != 2)
            degraded = 1;
    }
    if (c->refresh_inflight && c->refresh_ac && now - c->refresh_ms > CONNECT_TIMEOUT_MS) {
        redisAsyncContext *ac = c->refresh_ac;
        c->refresh_ac = NULL;
        c->refresh_inflight = 0;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    uint64_t every = degraded ? REFRESH_DEGRADED_MS : REFRESH_EVERY_MS;
    if (now - c->refresh_ms >= (c->refresh_wanted ? REFRESH_MIN_GAP_MS : every))
        refresh(c);
    if (c->channels_dirty)
        place_all(c);
    if (!cg_list_empty(&c->parked))
        resend_parked(c);
}

void cg_cluster_start(struct cg_cluster *c, uv_loop_t *loop, const struct cg_config *cfg,
                      const struct cg_cluster_hooks *hooks)
{
    memset(c, 0, sizeof(*c));
    c->loop = loop;
    c->cfg = cfg;
    c->hooks = *hooks;
    cg_slots_init(&c->map);
    cg_map_init(&c->channels);
    cg_list_init(&c->parked);
    struct cg_shardsub_hooks sh = {sub_up,      sub_down, sub_message, sub_subscribed,
                                   sub_refused, sub_lost, NULL};
    for (size_t i = 0; i < CG_SLOTS_NODES_MAX; i++) {
        struct cg_cluster_node *n = &c->nodes[i];
        n->cluster = c;
        n->idx = (int)i;
        sh.data = n;
        cg_shardsub_init(&n->sub, loop, &sh);
    }
    uv_timer_init(loop, &c->tick);
    c->tick.data = c;
    refresh(c);
    uv_timer_start(&c->tick, tick_cb, TICK_MS, TICK_MS);
}

static void free_channel(struct cg_map_node *n, void *arg)
{
    struct cg_cluster *c = arg;
    cg_map_del(&c->channels, n);
    free(CG_CONTAINER_OF(n, struct channel, node));
}

void cg_cluster_stop(struct cg_cluster *c)
{
    c->stopping = 1;
    uv_timer_stop(&c->tick);
    uv_close((uv_handle_t *)&c->tick, NULL);
    if (c->refresh_ac) {
        redisAsyncContext *ac = c->refresh_ac;
        c->refresh_ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    for (size_t i = 0; i < CG_SLOTS_NODES_MAX; i++) {
        struct cg_cluster_node *n = &c->nodes[i];
        if (n->ac) {
            redisAsyncContext *ac = n->ac;
            n->ac = NULL;
            n->up = 0;
            ac->data = NULL;
            redisAsyncFree(ac);
        }
        cg_shardsub_close(&n->sub);
        n->sub_state = 0;
    }
    struct cg_list *it, *tmp;
    CG_LIST_FOREACH_SAFE(it, tmp, &c->parked)
    finish(CG_CONTAINER_OF(it, struct request, link), NULL, NULL);
    c->nparked = 0;
    cg_map_each(&c->channels, free_channel, c);
    cg_map_finish(&c->channels);
}

void cg_cluster_refresh_soon(struct cg_cluster *c)
{
    want_refresh(c);
}

void cg_cluster_retry_now(struct cg_cluster *c)
{
    for (size_t i = 0; i < c->map.nnodes; i++) {
        c->nodes[i].retry_at_ms = 0;
        c->nodes[i].sub_retry_at_ms = 0;
    }
    want_refresh(c);
}

int cg_cluster_commands_up(const struct cg_cluster *c)
{
    if (!c->map_ok || cg_slots_unserved(&c->map))
        return 0;
    for (size_t i = 0; i < c->map.nnodes; i++)
        if (c->nodes[i].master && !c->nodes[i].up)
            return 0;
    return 1;
}

int cg_cluster_pubsub_up(const struct cg_cluster *c)
{
    if (!c->map_ok || cg_slots_unserved(&c->map))
        return 0;
    for (size_t i = 0; i < c->map.nnodes; i++)
        if (c->nodes[i].master && c->nodes[i].sub_state != 2)
            return 0;
    return 1;
}

struct ready_ctx {
    const struct cg_cluster *c;
    int ok;
};

static void check_ready(struct cg_map_node *n, void *arg)
{
    struct ready_ctx *r = arg;
    struct channel *ch = CG_CONTAINER_OF(n, struct channel, node);
    if (ch->state != 2 || ch->at != r->c->map.owner[ch->slot])
        r->ok = 0;
}

int cg_cluster_pubsub_ready(const struct cg_cluster *c)
{
    if (!cg_cluster_pubsub_up(c))
        return 0;
    struct ready_ctx r = {c, 1};
    cg_map_each((struct cg_map *)&c->channels, check_ready, &r);
    return r.ok;
}
