/* bridge.c -- Redis links (pub/sub, command, inbox): handshake, reconnection, watchdogs. */
#include "bridge.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "instrument.h"
#include "log.h"
#include "overlay.h"
#include "uvredis.h"

#define CONNECT_TIMEOUT_MS 3000
#define HEARTBEAT_EVERY_MS 2000
#define HEARTBEAT_STALE_MS 8000 /* pub/sub silent this long while command is up: drop */
#define REPLY_TIMEOUT_MS 5000
#define BLOCK_S 5 /* BLMOVE timeout; the pop must answer within BLOCK_S + REPLY_TIMEOUT */
#define INSTRUMENTS_EVERY_MS 30000
#define SUB_BATCH 512
#define LOG_EVERY_MS 60000 /* a link failing over and over: one line a minute */

static uint64_t now_ms(const struct cg_bridge *b)
{
    return uv_now(b->loop);
}

static void schedule_retry(struct cg_bridge_link *l);
static void connect_link(struct cg_bridge_link *l);

/* The link is gone (ac already released or being freed by hiredis): state reset. */
static void link_down(struct cg_bridge_link *l)
{
    l->ac = NULL;
    l->up = 0;
    l->pending_ms = 0;
    if (l->id == CG_LINK_PUBSUB)
        l->bridge->pubsub_ready = 0;
}

/* A link that was up is lost: one line each time. One that never came up (Redis away, a
 * connect timeout): rate-limited, so that a long outage is not a log storm. */
static void log_lost(struct cg_bridge_link *l, const char *why)
{
    if (l->up)
        cg_log(CG_LOG_WARN, "redis link lost", "link=%s addr=%s:%u reason=\"%s\"",
               cg_link_names[l->id], l->host, l->port, why);
    else
        cg_log_limited(&l->fail_log, LOG_EVERY_MS, CG_LOG_INFO, "redis link failed",
                       "link=%s addr=%s:%u reason=\"%s\"", cg_link_names[l->id], l->host, l->port,
                       why);
}

/* Drops the link now, without a line (the caller logged why), and schedules a reconnect.
 * Pending callbacks run with a NULL reply, which every callback here ignores. */
static void drop_quietly(struct cg_bridge_link *l)
{
    redisAsyncContext *ac = l->ac;
    if (!ac)
        return;
    link_down(l);
    ac->data = NULL;
    redisAsyncFree(ac);
    schedule_retry(l);
}

/* Drops the link now (it may be mid-connect or up), asks where the master is, and schedules
 * a reconnect. */
static void drop_link(struct cg_bridge_link *l, const char *why)
{
    if (!l->ac)
        return;
    log_lost(l, why);
    drop_quietly(l);
    cg_sentinel_resolve(l->bridge->sentinel);
}

/* Queues a command on l (printf-style, as redisAsyncCommand). When hiredis cannot take it (out
 * of memory, or the context is being torn down) the link is dropped and reconnects: whatever
 * the command was for is redone from Redis's own state then (subscriptions, the inbox's
 * processing list). Returns 0, or -1 after dropping the link. (No printf format attribute:
 * hiredis adds %b, a pointer and a length.) */
static int command(struct cg_bridge_link *l, redisCallbackFn *fn, const char *what, const char *fmt,
                   ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = l->ac ? redisvAsyncCommand(l->ac, fn, NULL, fmt, ap) : REDIS_ERR;
    va_end(ap);
    if (rc == REDIS_OK)
        return 0;
    char why[64];
    snprintf(why, sizeof(why), "%s could not be sent", what);
    drop_link(l, why);
    return -1;
}

static void retry_cb(uv_timer_t *t)
{
    connect_link(t->data);
}

static void schedule_retry(struct cg_bridge_link *l)
{
    struct cg_bridge *b = l->bridge;
    if (b->stopping)
        return;
    uint32_t base = l->backoff_ms ? l->backoff_ms : 100;
    /* Full jitter on the upper half: several gateways restarting together spread out. */
    uint32_t delay = base / 2 + (uint32_t)(rand() % (base / 2 + 1));
    l->backoff_ms =
        base * 2 > b->cfg->redis_backoff_max_ms ? b->cfg->redis_backoff_max_ms : base * 2;
    uv_timer_start(&l->retry, retry_cb, delay, 0);
}

static void on_pubsub(redisAsyncContext *ac, void *r, void *priv);
static void link_ready(struct cg_bridge_link *l);
static void start_pop(struct cg_bridge_link *l);
static void heartbeat(struct cg_bridge *b);

/* ---- the handshake: AUTH, then ROLE with sentinels, then link_ready -------------------- */

static void on_role(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    struct cg_bridge_link *l = ac->data;
    redisReply *reply = r;
    if (!l || l->ac != ac || !reply)
        return;
    int role = cg_sentinel_role(reply);
    if (role == 0) {
        /* A demoted master, or a replica the sentinels have not caught up with. */
        const char *what = reply->type == REDIS_REPLY_ARRAY && reply->elements &&
                                   reply->element[0]->type == REDIS_REPLY_STRING
                               ? reply->element[0]->str
                               : "?";
        cg_log_limited(&l->fail_log, LOG_EVERY_MS, CG_LOG_WARN, "redis is not the master",
                       "link=%s addr=%s:%u role=%.20s", cg_link_names[l->id], l->host, l->port,
                       what);
        drop_quietly(l);
        cg_sentinel_resolve(l->bridge->sentinel);
        return;
    }
    if (role < 0) /* NOPERM: the sentinels' word is all there is */
        cg_log_limited(&l->fail_log, LOG_EVERY_MS, CG_LOG_WARN, "redis role unchecked",
                       "link=%s error=\"%.200s\" hint=\"grant +role to the ACL user\"",
                       cg_link_names[l->id], reply->str);
    link_ready(l);
}

static void on_auth(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    struct cg_bridge_link *l = ac->data;
    redisReply *reply = r;
    if (!l || l->ac != ac || !reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* WRONGPASS / NOPERM / "ERR AUTH <password> called without any password configured":
         * nothing a reconnect changes until the password does, so once a minute is enough. */
        cg_metrics.redis_auth_failures[l->id]++;
        cg_log_limited(&l->auth_log, LOG_EVERY_MS, CG_LOG_ERROR, "redis authentication failed",
                       "link=%s addr=%s:%u error=\"%.200s\"", cg_link_names[l->id], l->host,
                       l->port, reply->str);
        drop_quietly(l);
        return;
    }
    if (!cg_sentinel_enabled(l->bridge->sentinel))
        link_ready(l); /* else ROLE's reply, queued behind AUTH, decides */
}

/* Queues the handshake on a new context: hiredis sends it once connected, and its replies
 * carry the link on (never the connect callback: hiredis does not defer a free made there).
 * Returns 1 when something was queued, 0 when there is nothing to send, -1 when hiredis
 * refused (out of memory). */
static int queue_handshake(struct cg_bridge_link *l, redisAsyncContext *ac)
{
    const char *argv[3];
    size_t lens[3];
    int argc = cg_sentinel_auth_argv(&l->bridge->cfg->redis_auth, argv, lens);
    if (argc && redisAsyncCommandArgv(ac, on_auth, NULL, argc, argv, lens) != REDIS_OK)
        return -1;
    if (!cg_sentinel_enabled(l->bridge->sentinel))
        return argc ? 1 : 0;
    return redisAsyncCommand(ac, on_role, NULL, "ROLE") == REDIS_OK ? 1 : -1;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct cg_bridge_link *l = ac->data;
    if (!l || l->ac != ac)
        return;
    if (status != REDIS_OK) {
        cg_log(CG_LOG_DEBUG, "redis connect failed", "link=%s addr=%s:%u error=\"%s\"",
               cg_link_names[l->id], l->host, l->port, ac->errstr);
        link_down(l); /* hiredis frees the context after this callback */
        schedule_retry(l);
        cg_sentinel_resolve(l->bridge->sentinel);
        return;
    }
    if (!l->handshake)
        link_ready(l); /* no AUTH, no ROLE: up as soon as connected */
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct cg_bridge_link *l = ac->data;
    if (!l || l->ac != ac)
        return; /* dropped on purpose: already handled */
    log_lost(l, status == REDIS_OK ? "closed" : ac->errstr);
    link_down(l);
    schedule_retry(l);
    cg_sentinel_resolve(l->bridge->sentinel);
}

static void connect_link(struct cg_bridge_link *l)
{
    struct cg_bridge *b = l->bridge;
    if (b->stopping || l->ac)
        return;
    const char *host;
    uint32_t port;
    if (b->clustered) {
        /* Only the inbox link is ours: it goes to the master of the inbox key's slot, once the
         * slot map says which (cluster_map_changed connects it). */
        if (l->id != CG_LINK_INBOX)
            return;
        l->awaiting = cg_cluster_key_addr(&b->cluster, b->cfg->inbox_key, strlen(b->cfg->inbox_key),
                                          &host, &port) != 0;
        if (l->awaiting)
            return;
    } else if (cg_sentinel_busy(b->sentinel)) {
        l->awaiting = 1; /* cg_bridge_master_resolved connects it */
        return;
    } else if (cg_sentinel_addr(b->sentinel, &host, &port)) {
        cg_sentinel_resolve(b->sentinel); /* no sentinel has answered yet */
        schedule_retry(l);
        return;
    }
    l->awaiting = 0;
    snprintf(l->host, sizeof(l->host), "%s", host);
    l->port = port;
    redisAsyncContext *ac = redisAsyncConnect(l->host, (int)l->port);
    if (!ac || ac->err) {
        cg_log(CG_LOG_DEBUG, "redis connect failed", "link=%s addr=%s:%u error=\"%s\"",
               cg_link_names[l->id], l->host, l->port, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(l);
        return;
    }
    if (cg_uvredis_attach(ac, b->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_retry(l);
        return;
    }
    ac->data = l;
    int hs = queue_handshake(l, ac);
    if (hs < 0) {
        ac->data = NULL;
        redisAsyncFree(ac);
        schedule_retry(l);
        return;
    }
    l->handshake = hs;
    l->ac = ac;
    l->up = 0;
    l->since_ms = now_ms(b);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

/* 1 when links a and b are connected to the same server. */
static int same_server(const struct cg_bridge_link *a, const struct cg_bridge_link *b)
{
    return a->ac && b->ac && a->port == b->port && !strcmp(a->host, b->host);
}

/* ---- pub/sub link ------------------------------------------------------- */

static int subscribe_argv(struct cg_bridge *b, const char *verb, int argc, const char **argv,
                          const size_t *lens)
{
    struct cg_bridge_link *l = &b->links[CG_LINK_PUBSUB];
    if (!l->ac || argc < 2)
        return -1;
    argv[0] = verb;
    ((size_t *)lens)[0] = strlen(verb);
    if (redisAsyncCommandArgv(l->ac, on_pubsub, NULL, argc, argv, lens) != REDIS_OK) {
        drop_link(l, "subscribe failed");
        return -1;
    }
    return 0;
}

/* Batches SUBSCRIBE commands over every active instrument or user. */
struct sub_batch {
    struct cg_bridge *b;
    const char *argv[SUB_BATCH + 1];
    size_t lens[SUB_BATCH + 1];
    char names[SUB_BATCH][200];
    int argc;
};

static void batch_flush(struct sub_batch *sb)
{
    if (sb->argc > 1)
        subscribe_argv(sb->b, "SUBSCRIBE", sb->argc, sb->argv, sb->lens);
    sb->argc = 1;
}

static void batch_add(struct sub_batch *sb, const char *prefix, const char *name)
{
    int i = sb->argc - 1;
    int n = snprintf(sb->names[i], sizeof(sb->names[i]), "%s%s", prefix, name);
    sb->argv[sb->argc] = sb->names[i];
    sb->lens[sb->argc] = (size_t)n;
    if (++sb->argc == SUB_BATCH + 1)
        batch_flush(sb);
}

static void add_instrument(struct cg_map_node *n, void *arg)
{
    struct sub_batch *sb = arg;
    struct cg_instrument *in = CG_CONTAINER_OF(n, struct cg_instrument, node);
    if (in->nsubs && !sb->b->cfg->record_bars)
        batch_add(sb, sb->b->cfg->md_prefix, in->name);
    if (in->nsubs)
        batch_add(sb, sb->b->cfg->chart_prefix, in->name);
}

static void add_user(struct cg_map_node *n, void *arg)
{
    struct sub_batch *sb = arg;
    batch_add(sb, sb->b->cfg->user_prefix, CG_CONTAINER_OF(n, struct cg_user, node)->id);
}

static void pubsub_connected(struct cg_bridge *b)
{
    struct sub_batch *sb = malloc(sizeof(*sb));
    if (!sb) {
        drop_link(&b->links[CG_LINK_PUBSUB], "out of memory");
        return;
    }
    sb->b = b;
    sb->argc = 1;
    batch_add(sb, "", b->cfg->broadcast_channel);
    batch_add(sb, "", b->heartbeat_channel);
    batch_add(sb, "", b->reply_channel);
    cg_map_each(&b->reg->instruments, add_instrument, sb);
    cg_map_each(&b->reg->users, add_user, sb);
    batch_flush(sb);
    free(sb);
    if (b->cfg->record_bars) {
        /* A recording gateway aggregates every instrument, subscribed here or not. */
        char pat[80];
        const char *argv[2] = {"PSUBSCRIBE", pat};
        size_t lens[2] = {10, (size_t)snprintf(pat, sizeof(pat), "%s*", b->cfg->md_prefix)};
        subscribe_argv(b, "PSUBSCRIBE", 2, argv, lens);
    }
    b->last_heartbeat_ms = now_ms(b);
    b->pubsub_ready = 0;
    heartbeat(b); /* its return through pub/sub marks the subscriptions in place */
    if (b->hooks.pubsub_up)
        b->hooks.pubsub_up(b->hooks.data);
}

static int starts(const char *s, size_t len, const char *prefix, size_t *plen)
{
    *plen = strlen(prefix);
    return len >= *plen && !memcmp(s, prefix, *plen);
}

static void heartbeat_back(struct cg_bridge *b);

/* A message on channel ch (both borrowed for the call). */
static void deliver(struct cg_bridge *b, const char *ch, size_t chlen, const char *msg,
                    size_t msglen)
{
    const struct cg_config *c = b->cfg;
    size_t pl;
    if (b->clustered && starts(ch, chlen, c->chart_prefix, &pl)) {
        /* chart:{<instrument>} */
        if (chlen >= pl + 3 && ch[pl] == '{' && ch[chlen - 1] == '}')
            cg_relay_overlay(b->relay, ch + pl + 1, chlen - pl - 2, msg, msglen);
        return;
    }
    if (chlen == strlen(b->heartbeat_channel) && !memcmp(ch, b->heartbeat_channel, chlen))
        heartbeat_back(b);
    else if (chlen == strlen(b->reply_channel) && !memcmp(ch, b->reply_channel, chlen))
        cg_relay_reply(b->relay, b->epoch, msg, msglen);
    else if (chlen == strlen(c->broadcast_channel) && !memcmp(ch, c->broadcast_channel, chlen))
        cg_relay_broadcast(b->relay, msg, msglen, CG_SOURCE_PUBSUB);
    else if (starts(ch, chlen, c->chart_prefix, &pl))
        cg_relay_overlay(b->relay, ch + pl, chlen - pl, msg, msglen);
    else if (starts(ch, chlen, c->md_prefix, &pl))
        cg_relay_tick(b->relay, ch + pl, chlen - pl, msg, msglen, CG_SOURCE_PUBSUB);
    else if (starts(ch, chlen, c->user_prefix, &pl))
        cg_relay_user(b->relay, ch + pl, chlen - pl, msg, msglen, CG_SOURCE_PUBSUB);
}

static void heartbeat_back(struct cg_bridge *b)
{
    b->last_heartbeat_ms = now_ms(b);
    if (!b->pubsub_ready) {
        b->pubsub_ready = 1;
        struct cg_bridge_link *ib = &b->links[CG_LINK_INBOX];
        if (b->pop_waiting && ib->up) {
            b->pop_waiting = 0;
            start_pop(ib);
        }
    }
}

static void on_pubsub(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    struct cg_bridge_link *l = ac->data;
    redisReply *reply = r;
    if (!l || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    redisReply *kind = reply->element[0], *ch = reply->element[1], *msg = reply->element[2];
    if (kind->type == REDIS_REPLY_STRING && !strcmp(kind->str, "pmessage") &&
        reply->elements == 4) { /* [pmessage, pattern, channel, payload] */
        ch = reply->element[2];
        msg = reply->element[3];
    } else if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") ||
               reply->elements != 3) {
        return;
    }
    if (ch->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING)
        return;
    deliver(l->bridge, ch->str, ch->len, msg->str, msg->len);
}

/* Cluster mode: a sharded message. */
static void cluster_message(void *data, const char *ch, size_t chlen, const char *msg,
                            size_t msglen)
{
    deliver(data, ch, chlen, msg, msglen);
}

static void upstream(struct cg_bridge *b, const char *verb, const char *prefix, const char *name)
{
    if (b->clustered) {
        char ch[200];
        int tag = prefix == b->cfg->chart_prefix; /* chart:{<instrument>} */
        int n = snprintf(ch, sizeof(ch), tag ? "%s{%s}" : "%s%s", prefix, name);
        if (verb[0] == 'S')
            cg_cluster_subscribe(&b->cluster, ch, (size_t)n);
        else
            cg_cluster_unsubscribe(&b->cluster, ch, (size_t)n);
        return;
    }
    if (!b->links[CG_LINK_PUBSUB].up)
        return; /* the next connect subscribes whatever is active then */
    char ch[200];
    const char *argv[2] = {verb, ch};
    size_t lens[2] = {strlen(verb), (size_t)snprintf(ch, sizeof(ch), "%s%s", prefix, name)};
    subscribe_argv(b, verb, 2, argv, lens);
}

void cg_bridge_instrument_active(void *data, struct cg_instrument *inst, int active)
{
    struct cg_bridge *b = data;
    /* Overlay operations follow the instrument's viewers (a socket that did not ask for them
     * costs one skipped message per operation, nothing per tick). */
    upstream(b, active ? "SUBSCRIBE" : "UNSUBSCRIBE", b->cfg->chart_prefix, inst->name);
    if (b->cfg->record_bars && (!b->clustered || !active))
        return; /* md:* is pattern-subscribed; in a cluster, every known instrument is */
    upstream(b, active ? "SUBSCRIBE" : "UNSUBSCRIBE", b->cfg->md_prefix, inst->name);
}

void cg_bridge_user_active(void *data, struct cg_user *user, int active)
{
    struct cg_bridge *b = data;
    upstream(b, active ? "SUBSCRIBE" : "UNSUBSCRIBE", b->cfg->user_prefix, user->id);
}

/* ---- command link -------------------------------------------------------- */

static int check_reply(struct cg_bridge_link *l, redisReply *reply, const char *what)
{
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        cg_log(CG_LOG_ERROR, "redis command failed", "link=%s command=%s error=\"%.200s\"",
               cg_link_names[l->id], what, reply->str);
        return -1;
    }
    return 0;
}

static void on_heartbeat(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    struct cg_bridge_link *l = ac->data;
    if (l && r)
        l->pending_ms = 0;
}

struct members_ctx {
    struct cg_bridge *b;
    void (*done)(void *data);
    void *data;
};

static void on_members(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct members_ctx *ctx = priv;
    redisReply *reply = r;
    if (reply && !check_reply(&ctx->b->links[CG_LINK_COMMAND], reply, "SMEMBERS") &&
        reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            redisReply *e = reply->element[i];
            if (e->type != REDIS_REPLY_STRING || !cg_instrument_valid(e->str, e->len))
                continue;
            struct cg_instrument *in = cg_registry_instrument(ctx->b->reg, e->str, e->len, 1);
            if (in)
                in->known = 1;
            if (in && ctx->b->clustered && ctx->b->cfg->record_bars)
                upstream(ctx->b, "SUBSCRIBE", ctx->b->cfg->md_prefix, in->name);
        }
    }
    if (ctx->done)
        ctx->done(ctx->data);
    free(ctx);
}

int cg_bridge_refresh_instruments(struct cg_bridge *b, void (*done)(void *data), void *data)
{
    struct cg_bridge_link *l = &b->links[CG_LINK_COMMAND];
    struct members_ctx *ctx = malloc(sizeof(*ctx));
    if (!ctx)
        return -1;
    ctx->b = b;
    ctx->done = done;
    ctx->data = data;
    const char *argv[2] = {"SMEMBERS", b->cfg->instruments_key};
    size_t lens[2] = {8, strlen(b->cfg->instruments_key)};
    if (b->clustered
            ? cg_cluster_command(&b->cluster, on_members, ctx, 2, argv, lens)
            : !l->up || redisAsyncCommandArgv(l->ac, on_members, ctx, 2, argv, lens) != REDIS_OK) {
        free(ctx);
        return -1;
    }
    b->last_instruments_ms = now_ms(b);
    return 0;
}

static void refresh_instruments(struct cg_bridge *b)
{
    cg_bridge_refresh_instruments(b, NULL, NULL);
}

int cg_bridge_command(struct cg_bridge *b, redisCallbackFn *fn, void *privdata, int argc,
                      const char **argv, const size_t *argvlen)
{
    if (b->clustered)
        return cg_cluster_command(&b->cluster, fn, privdata, argc, argv, argvlen);
    struct cg_bridge_link *l = &b->links[CG_LINK_COMMAND];
    if (!l->up)
        return -1;
    if (redisAsyncCommandArgv(l->ac, fn, privdata, argc, argv, argvlen) != REDIS_OK) {
        drop_link(l, "command failed");
        return -1;
    }
    return 0;
}

/* ---- inbox link -------------------------------------------------------------- */

/* The inbox link of a reply to cmd, or NULL when there is nothing to do: the link
 * went away (NULL reply) or Redis refused cmd (then the link is dropped: the list
 * moves need Redis 6.2 or later, and retrying is all that can be done). */
static struct cg_bridge_link *inbox_reply(redisAsyncContext *ac, redisReply *reply, const char *cmd)
{
    struct cg_bridge_link *l = ac->data;
    if (!l || !reply)
        return NULL;
    l->pending_ms = 0;
    struct cg_bridge *b = l->bridge;
    if (b->clustered && reply->type == REDIS_REPLY_ERROR &&
        (!strncmp(reply->str, "CLUSTERDOWN", 11) || !strncmp(reply->str, "TRYAGAIN", 8) ||
         !strncmp(reply->str, "MOVED ", 6) || !strncmp(reply->str, "ASK ", 4))) {
        /* The cluster is failing over or the inbox's slot is moving: once the map is read
         * again the link follows it; until then it retries about once a second. */
        cg_log_limited(&l->fail_log, LOG_EVERY_MS, CG_LOG_WARN, "inbox waits for the cluster",
                       "command=%s error=\"%.200s\"", cmd, reply->str);
        cg_cluster_refresh_soon(&b->cluster);
        l->backoff_ms = 1000;
        drop_quietly(l);
        return NULL;
    }
    if (check_reply(l, reply, cmd)) {
        drop_link(l, "inbox list move failed (Redis 6.2 or later is required)");
        return NULL;
    }
    return l;
}

/* The reply to an inbox overlay operation's FCALL: Redis refusing it is a bad operation. */
static void on_applied(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    struct cg_bridge_link *l = ac->data;
    redisReply *reply = r;
    if (!l || !reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        cg_metrics.dropped[CG_DROP_BAD_OVERLAY]++;
        cg_log_limited(&l->bridge->overlay_log, 5000, CG_LOG_WARN, "payload dropped",
                       "reason=%s source=inbox detail=\"%.200s\"",
                       cg_drop_names[CG_DROP_BAD_OVERLAY], reply->str);
    } else {
        cg_metrics.overlay_applied++;
    }
}

/* Cluster mode: the republish (SPUBLISH, or the overlay FCALL) went to another master, so the
 * ack waits for its reply instead of following it on the same connection. No reply (a link
 * lost): the inbox link is dropped, and its recovery puts the item back (at least once). */
static void on_republished(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct cg_bridge *b = priv;
    redisReply *reply = r;
    struct cg_bridge_link *l = &b->links[CG_LINK_INBOX];
    b->republishing = 0;
    if (b->stopping)
        return;
    if (!reply) {
        drop_link(l, "inbox republish lost");
        return;
    }
    if (b->republish_overlay) {
        if (reply->type == REDIS_REPLY_ERROR) {
            cg_metrics.dropped[CG_DROP_BAD_OVERLAY]++;
            cg_log_limited(&b->overlay_log, 5000, CG_LOG_WARN, "payload dropped",
                           "reason=%s source=inbox detail=\"%.200s\"",
                           cg_drop_names[CG_DROP_BAD_OVERLAY], reply->str);
        } else {
            cg_metrics.overlay_applied++;
        }
    } else if (reply->type == REDIS_REPLY_ERROR) {
        cg_log(CG_LOG_ERROR, "redis command failed", "link=inbox command=SPUBLISH error=\"%.200s\"",
               reply->str);
        drop_link(l, "inbox republish refused");
        return;
    }
    if (!l->up || command(l, NULL, "inbox ack", "LPOP %s", b->processing_key))
        return;
    start_pop(l);
}

static void cluster_republish(struct cg_bridge_link *l, const char *item, size_t len)
{
    struct cg_bridge *b = l->bridge;
    const struct cg_config *c = b->cfg;
    struct cg_envelope env;
    if (cg_relay_envelope(b->relay, item, len, &env) != 0) {
        /* counted and logged by the relay: acknowledged, never retried */
        if (!command(l, NULL, "inbox ack", "LPOP %s", b->processing_key))
            start_pop(l);
        return;
    }
    char ch[300], key[CG_OVERLAY_KEY_MAX];
    const char *argv[6];
    size_t lens[6];
    int argc;
    b->republish_overlay = env.kind == CG_ENV_CHART;
    if (env.kind == CG_ENV_CHART) { /* FCALL <fn> 1 overlays:{<i>} <i> <op> */
        argv[0] = "FCALL", lens[0] = 5;
        argv[1] = CG_OVERLAY_FUNCTION, lens[1] = strlen(CG_OVERLAY_FUNCTION);
        argv[2] = "1", lens[2] = 1;
        argv[3] = key, lens[3] = cg_overlay_key(env.target, key);
        argv[4] = env.target, lens[4] = strlen(env.target);
        argv[5] = env.data, lens[5] = env.len;
        argc = 6;
    } else {
        int n;
        if (env.kind == CG_ENV_INSTRUMENT)
            n = snprintf(ch, sizeof(ch), "%s%s", c->md_prefix, env.target);
        else if (env.kind == CG_ENV_USER)
            n = snprintf(ch, sizeof(ch), "%s%s", c->user_prefix, env.target);
        else
            n = snprintf(ch, sizeof(ch), "%s", c->broadcast_channel);
        argv[0] = "SPUBLISH", lens[0] = 8;
        argv[1] = ch, lens[1] = (size_t)n;
        argv[2] = env.data, lens[2] = env.len;
        argc = 3;
    }
    b->republishing = 1;
    int rc = cg_cluster_command(&b->cluster, on_republished, b, argc, argv, lens);
    free(env.data);
    if (rc) {
        b->republishing = 0;
        drop_link(l, "inbox republish: the target's master is down");
    }
}

static void on_pop(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    redisReply *reply = r;
    struct cg_bridge_link *l = inbox_reply(ac, reply, "BLMOVE");
    if (!l)
        return;
    struct cg_bridge *b = l->bridge;
    if (b->clustered && reply->type == REDIS_REPLY_STRING) {
        cluster_republish(l, reply->str, reply->len);
        return;
    }
    if (reply->type == REDIS_REPLY_STRING) {
        struct cg_envelope env;
        if (cg_relay_envelope(b->relay, reply->str, reply->len, &env) == 0) {
            char ch[300];
            const struct cg_config *c = b->cfg;
            int rc;
            if (env.kind == CG_ENV_CHART) {
                /* Applied, and published with its version, by Redis itself: once, whichever
                 * gateway popped it. */
                char key[CG_OVERLAY_KEY_MAX];
                cg_overlay_key(env.target, key);
                rc = command(l, on_applied, "inbox overlay", "FCALL %s 1 %s %s %b",
                             CG_OVERLAY_FUNCTION, key, env.target, env.data, env.len);
            } else {
                if (env.kind == CG_ENV_INSTRUMENT)
                    snprintf(ch, sizeof(ch), "%s%s", c->md_prefix, env.target);
                else if (env.kind == CG_ENV_USER)
                    snprintf(ch, sizeof(ch), "%s%s", c->user_prefix, env.target);
                else
                    snprintf(ch, sizeof(ch), "%s", c->broadcast_channel);
                /* Same connection, in order: the ack below cannot overtake the publish. Should
                 * either not be sent, the item stays in the processing list and goes back to
                 * the inbox when the link is back (recover_next): at least once. */
                rc = command(l, NULL, "inbox republish", "PUBLISH %s %b", ch, env.data, env.len);
            }
            free(env.data);
            if (rc)
                return;
        }
        if (command(l, NULL, "inbox ack", "LPOP %s", b->processing_key))
            return;
    }
    if (l->ac)
        start_pop(l);
}

/* Pops the next inbox item -- only while the pub/sub link is ready, on the same server: an
 * item is republished on pub/sub, and right after a Redis restart or a move to a new master
 * the inbox link can be back before this gateway's own subscriptions are, which would lose
 * the item for its sockets. Popping resumes when a heartbeat comes back through pub/sub. */
static void start_pop(struct cg_bridge_link *l)
{
    struct cg_bridge *b = l->bridge;
    if (b->clustered ? b->republishing || !cg_cluster_pubsub_ready(&b->cluster)
                     : !b->pubsub_ready || !same_server(l, &b->links[CG_LINK_PUBSUB])) {
        b->pop_waiting = 1; /* the watchdog (cluster) or the heartbeat's return pops again */
        return;
    }
    l->pending_ms = now_ms(b);
    command(l, on_pop, "inbox pop", "BLMOVE %s %s LEFT RIGHT %d", b->cfg->inbox_key,
            b->processing_key, BLOCK_S);
}

static void on_recover(redisAsyncContext *ac, void *r, void *priv);

/* Items a previous run of this gateway popped but may not have delivered go back
 * to the head of the inbox, oldest first, before popping resumes. */
static void recover_next(struct cg_bridge_link *l)
{
    struct cg_bridge *b = l->bridge;
    l->pending_ms = now_ms(b);
    command(l, on_recover, "inbox recovery", "LMOVE %s %s RIGHT LEFT", b->processing_key,
            b->cfg->inbox_key);
}

static void on_recover(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    redisReply *reply = r;
    struct cg_bridge_link *l = inbox_reply(ac, reply, "LMOVE");
    if (!l)
        return;
    if (reply->type == REDIS_REPLY_STRING)
        recover_next(l);
    else
        start_pop(l);
}

/* ---- link set-up ----------------------------------------------------------- */

static void link_ready(struct cg_bridge_link *l)
{
    struct cg_bridge *b = l->bridge;
    if (l->ever_up)
        cg_metrics.redis_reconnects[l->id]++;
    l->ever_up = 1;
    l->backoff_ms = 0;
    l->up = 1;
    l->pending_ms = 0;
    l->fail_log.last_ms = l->auth_log.last_ms = 0; /* the next failure is news again */
    l->fail_log.suppressed = l->auth_log.suppressed = 0;
    cg_log(CG_LOG_INFO, "redis link up", "link=%s addr=%s:%u", cg_link_names[l->id], l->host,
           l->port);
    if (l->id != CG_LINK_PUBSUB && b->cfg->redis_db &&
        command(l, NULL, "SELECT", "SELECT %u", b->cfg->redis_db))
        return;
    switch (l->id) {
    case CG_LINK_PUBSUB:
        pubsub_connected(b);
        break;
    case CG_LINK_COMMAND:
        if (b->hooks.command_up)
            b->hooks.command_up(b->hooks.data);
        refresh_instruments(b);
        break;
    case CG_LINK_INBOX:
        recover_next(l);
        break;
    default:
        break;
    }
}

/* PUBLISHes our heartbeat on the command link; it comes back through pub/sub. */
static void heartbeat(struct cg_bridge *b)
{
    struct cg_bridge_link *cmd = &b->links[CG_LINK_COMMAND];
    if (!cmd->up)
        return;
    if (!cmd->pending_ms)
        cmd->pending_ms = now_ms(b);
    command(cmd, on_heartbeat, "heartbeat", "PUBLISH %s 1", b->heartbeat_channel);
}

static void watchdog_cb(uv_timer_t *t)
{
    struct cg_bridge *b = t->data;
    uint64_t now = now_ms(b);
    for (int i = 0; i < CG_LINK_BRIDGE_COUNT; i++) {
        struct cg_bridge_link *l = &b->links[i];
        if (l->ac && !l->up && now - l->since_ms > CONNECT_TIMEOUT_MS)
            drop_link(l, "connect timeout");
    }
    struct cg_bridge_link *cmd = &b->links[CG_LINK_COMMAND];
    struct cg_bridge_link *ps = &b->links[CG_LINK_PUBSUB];
    struct cg_bridge_link *ib = &b->links[CG_LINK_INBOX];
    if (cmd->up && cmd->pending_ms && now - cmd->pending_ms > REPLY_TIMEOUT_MS)
        drop_link(cmd, "heartbeat unanswered");
    if (cmd->up && !cmd->pending_ms)
        heartbeat(b);
    /* The pub/sub link cannot PING in subscribed mode with hiredis 0.14, so its
     * liveness is our own heartbeat coming back through it. */
    if (ps->up && cmd->up && now - b->last_heartbeat_ms > HEARTBEAT_STALE_MS)
        drop_link(ps, "heartbeat not received");
    if (ib->up && ib->pending_ms && now - ib->pending_ms > BLOCK_S * 1000 + REPLY_TIMEOUT_MS)
        drop_link(ib, "blocking pop unanswered");
    if (b->clustered && ib->up && b->pop_waiting && !b->republishing &&
        cg_cluster_pubsub_ready(&b->cluster)) {
        b->pop_waiting = 0;
        start_pop(ib);
    }
    if ((b->clustered ? cg_cluster_commands_up(&b->cluster) : cmd->up) &&
        now - b->last_instruments_ms > INSTRUMENTS_EVERY_MS)
        refresh_instruments(b);
}

/* ---- cluster mode's hooks ---------------------------------------------------------------- */

static void cluster_command_up(void *data)
{
    struct cg_bridge *b = data;
    if (b->hooks.command_up)
        b->hooks.command_up(b->hooks.data);
    refresh_instruments(b);
}

/* The inbox key's master may have changed: the inbox link follows it. */
static void cluster_map_changed(void *data)
{
    struct cg_bridge *b = data;
    struct cg_bridge_link *l = &b->links[CG_LINK_INBOX];
    const char *host;
    uint32_t port;
    if (b->stopping || cg_cluster_key_addr(&b->cluster, b->cfg->inbox_key,
                                           strlen(b->cfg->inbox_key), &host, &port))
        return;
    int elsewhere = l->port != port || strcmp(l->host, host);
    if (l->ac && elsewhere) {
        cg_log(CG_LOG_INFO, "redis link moving", "link=inbox from=%s:%u to=%s:%u", l->host, l->port,
               host, port);
        drop_quietly(l);
    }
    if (!l->ac && (l->awaiting || elsewhere)) {
        uv_timer_stop(&l->retry);
        connect_link(l);
    }
}

/* A channel is back after a gap: ticks and overlay operations have somewhere to be read back
 * from (or a state to read again); user, broadcast and reply messages do not. */
static void cluster_resubscribed(void *data, const char *ch, size_t len)
{
    struct cg_bridge *b = data;
    const struct cg_config *c = b->cfg;
    size_t pl;
    if (!b->hooks.instrument_gap)
        return;
    if (starts(ch, len, c->chart_prefix, &pl)) {
        if (len >= pl + 3 && ch[pl] == '{' && ch[len - 1] == '}') /* chart:{<instrument>} */
            b->hooks.instrument_gap(b->hooks.data, ch + pl + 1, len - pl - 2, 1);
    } else if (starts(ch, len, c->md_prefix, &pl)) {
        b->hooks.instrument_gap(b->hooks.data, ch + pl, len - pl, 0);
    }
}

static void cluster_start(struct cg_bridge *b)
{
    const struct cg_config *cfg = b->cfg;
    /* The processing list shares the inbox's slot: its hash tag, or the whole name as one. */
    const char *open = strchr(cfg->inbox_key, '{');
    const char *close = open ? strchr(open + 1, '}') : NULL;
    if (open && close && close > open + 1)
        snprintf(b->processing_key, sizeof(b->processing_key), "%s:processing:%s", cfg->inbox_key,
                 cfg->inbox_id);
    else
        snprintf(b->processing_key, sizeof(b->processing_key), "{%s}:processing:%s", cfg->inbox_key,
                 cfg->inbox_id);
    struct cg_cluster_hooks ch = {cluster_message, cluster_command_up, cluster_map_changed,
                                  cluster_resubscribed, b};
    cg_cluster_start(&b->cluster, b->loop, cfg, &ch);
    cg_cluster_subscribe(&b->cluster, cfg->broadcast_channel, strlen(cfg->broadcast_channel));
    cg_cluster_subscribe(&b->cluster, b->reply_channel, strlen(b->reply_channel));
}

void cg_bridge_start(struct cg_bridge *b, uv_loop_t *loop, const struct cg_config *cfg,
                     struct cg_registry *reg, struct cg_relay *relay, const char *epoch,
                     struct cg_sentinel *sentinel, const struct cg_bridge_hooks *hooks)
{
    memset(b, 0, sizeof(*b));
    b->hooks = *hooks;
    snprintf(b->epoch, sizeof(b->epoch), "%s", epoch);
    snprintf(b->reply_channel, sizeof(b->reply_channel), "%.180s%s", cfg->reply_prefix, epoch);
    b->sentinel = sentinel;
    b->loop = loop;
    b->cfg = cfg;
    b->reg = reg;
    b->relay = relay;
    snprintf(b->heartbeat_channel, sizeof(b->heartbeat_channel), "chartgate:hb:%.120s:%d",
             cfg->inbox_id, (int)getpid());
    snprintf(b->processing_key, sizeof(b->processing_key), "%s:processing:%s", cfg->inbox_key,
             cfg->inbox_id);
    b->clustered = cfg->ncluster > 0;
    if (b->clustered)
        cluster_start(b);
    uv_timer_init(loop, &b->watchdog);
    b->watchdog.data = b;
    for (int i = 0; i < CG_LINK_BRIDGE_COUNT; i++) {
        struct cg_bridge_link *l = &b->links[i];
        l->bridge = b;
        l->id = (enum cg_link)i;
        uv_timer_init(loop, &l->retry);
        l->retry.data = l;
        connect_link(l);
    }
    uv_timer_start(&b->watchdog, watchdog_cb, 1000, 1000);
}

void cg_bridge_stop(struct cg_bridge *b)
{
    b->stopping = 1;
    for (int i = 0; i < CG_LINK_BRIDGE_COUNT; i++) {
        struct cg_bridge_link *l = &b->links[i];
        redisAsyncContext *ac = l->ac;
        l->ac = NULL;
        l->up = 0;
        if (ac) {
            ac->data = NULL;
            redisAsyncFree(ac);
        }
        uv_timer_stop(&l->retry);
        uv_close((uv_handle_t *)&l->retry, NULL);
    }
    uv_timer_stop(&b->watchdog);
    uv_close((uv_handle_t *)&b->watchdog, NULL);
    if (b->clustered)
        cg_cluster_stop(&b->cluster);
}

void cg_bridge_master_resolved(struct cg_bridge *b, int changed)
{
    (void)changed; /* the addresses are compared: a move and back is no move */
    const char *host;
    uint32_t port;
    if (b->stopping || cg_sentinel_addr(b->sentinel, &host, &port))
        return;
    for (int i = 0; i < CG_LINK_BRIDGE_COUNT; i++) {
        struct cg_bridge_link *l = &b->links[i];
        int elsewhere = l->port != port || strcmp(l->host, host);
        if (l->ac && elsewhere) {
            cg_log(CG_LOG_INFO, "redis link moving", "link=%s from=%s:%u to=%s:%u",
                   cg_link_names[l->id], l->host, l->port, host, port);
            drop_quietly(l); /* schedules a retry: replaced by the connect below */
        }
        if (!l->ac && (l->awaiting || elsewhere)) {
            uv_timer_stop(&l->retry);
            connect_link(l);
        }
    }
}

void cg_bridge_retry_now(struct cg_bridge *b)
{
    if (b->clustered)
        cg_cluster_retry_now(&b->cluster);
    for (int i = 0; i < CG_LINK_BRIDGE_COUNT; i++) {
        struct cg_bridge_link *l = &b->links[i];
        if (!l->ac && !b->stopping) {
            uv_timer_stop(&l->retry);
            connect_link(l);
        }
    }
}

int cg_bridge_up(const struct cg_bridge *b, enum cg_link link)
{
    if (b->clustered && link == CG_LINK_COMMAND)
        return cg_cluster_commands_up(&b->cluster);
    if (b->clustered && link == CG_LINK_PUBSUB)
        return cg_cluster_pubsub_up(&b->cluster);
    return (unsigned)link < CG_LINK_BRIDGE_COUNT && b->links[link].up;
}
