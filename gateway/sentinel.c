/* sentinel.c -- the master's address: fixed, or asked of Sentinel and followed on failover. */
#include "sentinel.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "codes.h"
#include "metrics.h"
#include "uvredis.h"

#define QUERY_TIMEOUT_MS 1000  /* one sentinel's connect + AUTH + answer */
#define RESOLVE_FRESH_MS 250   /* an answer this recent is reused */
#define RECHECK_EVERY_MS 15000 /* periodic query: a switch the watch missed */
#define WATCH_TIMEOUT_MS 3000  /* the watch's connect + AUTH + SUBSCRIBE */
#define LOG_EVERY_MS 60000     /* repeated sentinel failures: one line a minute */
#define SWITCH_CHANNEL "+switch-master"

static uint64_t now_ms(const struct cg_sentinel *s)
{
    return uv_now(s->loop);
}

int cg_sentinel_enabled(const struct cg_sentinel *s)
{
    return s->cfg->nsentinels > 0;
}

int cg_sentinel_addr(const struct cg_sentinel *s, const char **host, uint32_t *port)
{
    if (!cg_sentinel_enabled(s)) {
        *host = s->cfg->redis_host;
        *port = s->cfg->redis_port;
        return 0;
    }
    if (!s->host[0])
        return -1;
    *host = s->host;
    *port = s->port;
    return 0;
}

int cg_sentinel_busy(const struct cg_sentinel *s)
{
    return s->resolving;
}

int cg_sentinel_auth_argv(const struct cg_config_credentials *c, const char *argv[3],
                          size_t lens[3])
{
    if (!c->password[0])
        return 0;
    int n = 0;
    argv[n] = "AUTH";
    lens[n++] = 4;
    if (c->user[0]) {
        argv[n] = c->user;
        lens[n++] = strlen(c->user);
    }
    argv[n] = c->password;
    lens[n++] = strlen(c->password);
    return n;
}

int cg_sentinel_role(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || !r->elements)
        return r && r->type == REDIS_REPLY_ERROR ? -1 : 0;
    const redisReply *e = r->element[0];
    return e->type == REDIS_REPLY_STRING && !strcmp(e->str, "master");
}

/* Takes host:port as the master's address. Returns 1 when it is new (and counts a switch when
 * there was an address before), 0 when it is the one already known. */
static int set_addr(struct cg_sentinel *s, const char *host, size_t hostlen, uint32_t port,
                    const char *via)
{
    if (!hostlen || hostlen >= sizeof(s->host) || !port || port > 65535)
        return 0;
    if (s->port == port && strlen(s->host) == hostlen && !memcmp(s->host, host, hostlen))
        return 0;
    char old[160];
    snprintf(old, sizeof(old), "%s:%u", s->host[0] ? s->host : "none", s->port);
    int had = s->host[0] != 0;
    memcpy(s->host, host, hostlen);
    s->host[hostlen] = 0;
    s->port = port;
    if (had)
        cg_metrics.redis_master_switches++;
    cg_log(had ? CG_LOG_WARN : CG_LOG_INFO, had ? "redis master moved" : "redis master found",
           "master=%s from=%s to=%s:%u via=%s", s->cfg->redis_master, old, s->host, s->port, via);
    return 1;
}

/* Frees ac from wherever we are (hiredis defers a free inside its own callback). Its pending
 * callbacks then run with a NULL reply and find ac->data NULL: they return at once. */
static void release(redisAsyncContext *ac)
{
    ac->data = NULL;
    redisAsyncFree(ac);
}

static void auth_failed(struct cg_sentinel *s, uint32_t at, const char *error)
{
    cg_metrics.redis_auth_failures[CG_AUTH_PEER_SENTINEL]++;
    cg_log_limited(&s->auth_log, LOG_EVERY_MS, CG_LOG_ERROR, "redis authentication failed",
                   "link=sentinel addr=%s:%u error=\"%.200s\"", s->cfg->sentinel_hosts[at],
                   s->cfg->sentinel_ports[at], error);
}

/* Connects to sentinel at, attached to the loop, with AUTH queued first when configured.
 * Returns the context, or NULL (logged at debug level: the caller retries). */
static redisAsyncContext *open_sentinel(struct cg_sentinel *s, uint32_t at,
                                        redisCallbackFn *on_auth)
{
    const struct cg_config *c = s->cfg;
    redisAsyncContext *ac = redisAsyncConnect(c->sentinel_hosts[at], (int)c->sentinel_ports[at]);
    if (!ac || ac->err || cg_uvredis_attach(ac, s->loop) != REDIS_OK) {
        cg_log(CG_LOG_DEBUG, "sentinel connect failed", "addr=%s:%u error=\"%s\"",
               c->sentinel_hosts[at], c->sentinel_ports[at], ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        return NULL;
    }
    ac->data = s;
    const char *argv[3];
    size_t lens[3];
    int argc = cg_sentinel_auth_argv(&c->sentinel_auth, argv, lens);
    if (argc && redisAsyncCommandArgv(ac, on_auth, NULL, argc, argv, lens) != REDIS_OK) {
        release(ac);
        return NULL;
    }
    return ac;
}

/* ---- the query ---------------------------------------------------------------------------- */

static void ask_next(struct cg_sentinel *s);

static void notify_cb(uv_timer_t *t)
{
    struct cg_sentinel *s = t->data;
    int changed = s->notify_changed;
    s->notify_changed = 0;
    if (s->hooks.resolved && !s->stopping)
        s->hooks.resolved(s->hooks.data, changed);
}

/* Calls the hook from the loop, never from inside whatever called us (a link's connect may
 * have asked for the query that failed at once). */
static void notify(struct cg_sentinel *s, int changed)
{
    s->notify_changed |= changed;
    if (!uv_is_active((uv_handle_t *)&s->notify))
        uv_timer_start(&s->notify, notify_cb, 0, 0);
}

/* The round is over (answered, or every sentinel tried): tell the hook. */
static void finish_round(struct cg_sentinel *s, int changed)
{
    s->resolving = 0;
    s->resolved_ms = now_ms(s);
    notify(s, changed);
}

/* The sentinel asked could not answer: the next one, or the end of the round. */
static void query_failed(struct cg_sentinel *s, const char *why)
{
    uint32_t at = s->query_at;
    if (s->query) {
        release(s->query);
        s->query = NULL;
    }
    cg_log(CG_LOG_DEBUG, "sentinel query failed", "addr=%s:%u reason=\"%s\"",
           s->cfg->sentinel_hosts[at], s->cfg->sentinel_ports[at], why);
    s->query_at = (at + 1) % s->cfg->nsentinels;
    if (++s->query_tried < s->cfg->nsentinels) {
        ask_next(s);
        return;
    }
    cg_log_limited(&s->query_log, LOG_EVERY_MS, CG_LOG_ERROR, "no sentinel gave the master",
                   "master=%s sentinels=%u last_reason=\"%s\"", s->cfg->redis_master,
                   s->cfg->nsentinels, why);
    finish_round(s, 0);
}

static void on_query_auth(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    struct cg_sentinel *s = ac->data;
    redisReply *reply = r;
    if (!s || s->query != ac || !reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        auth_failed(s, s->query_at, reply->str);
        query_failed(s, "authentication failed");
    }
}

static void on_query_addr(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    struct cg_sentinel *s = ac->data;
    redisReply *reply = r;
    if (!s || s->query != ac)
        return;
    if (!reply) {
        query_failed(s, "connection lost");
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof(why), "%.150s", reply->str);
        query_failed(s, why);
        return;
    }
    char *end = NULL;
    unsigned long port = 0;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING)
        port = strtoul(reply->element[1]->str, &end, 10);
    if (!end || *end || !port || port > 65535 || !reply->element[0]->len) {
        query_failed(s, reply->type == REDIS_REPLY_NIL ? "unknown master name" : "bad answer");
        return;
    }
    int changed =
        set_addr(s, reply->element[0]->str, reply->element[0]->len, (uint32_t)port, "sentinel");
    s->query = NULL;
    release(ac);
    s->query_log.last_ms = 0; /* the next failure is news again */
    finish_round(s, changed);
}

static void on_query_connect(const redisAsyncContext *ac, int status)
{
    struct cg_sentinel *s = ac->data;
    if (!s || s->query != ac || status == REDIS_OK)
        return;
    s->query = NULL; /* hiredis frees it after this callback */
    query_failed(s, ac->errstr);
}

static void on_query_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    struct cg_sentinel *s = ac->data;
    if (!s || s->query != ac)
        return;
    s->query = NULL;
    query_failed(s, "connection lost");
}

static void ask_next(struct cg_sentinel *s)
{
    const struct cg_config *c = s->cfg;
    s->query_since_ms = now_ms(s);
    redisAsyncContext *ac = open_sentinel(s, s->query_at, on_query_auth);
    if (!ac) {
        query_failed(s, "cannot connect");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_query_connect);
    redisAsyncSetDisconnectCallback(ac, on_query_disconnect);
    s->query = ac;
    if (redisAsyncCommand(ac, on_query_addr, NULL, "SENTINEL get-master-addr-by-name %s",
                          c->redis_master) != REDIS_OK)
        query_failed(s, "cannot send the query");
}

void cg_sentinel_resolve(struct cg_sentinel *s)
{
    if (!cg_sentinel_enabled(s) || s->stopping || s->resolving ||
        (s->resolved_ms && now_ms(s) - s->resolved_ms < RESOLVE_FRESH_MS))
        return;
    s->resolving = 1;
    s->query_tried = 0;
    ask_next(s);
}

/* ---- the +switch-master watch ----------------------------------------------------------- */

static void watch_connect(struct cg_sentinel *s);

static void watch_retry_cb(uv_timer_t *t)
{
    watch_connect(t->data);
}

/* The watch is lost: the next sentinel, after a back-off. */
static void watch_lost(struct cg_sentinel *s, const char *why)
{
    uint32_t at = s->watch_at;
    if (s->watch) {
        release(s->watch);
        s->watch = NULL;
    }
    cg_log_limited(&s->watch_log, LOG_EVERY_MS, s->watch_up ? CG_LOG_WARN : CG_LOG_INFO,
                   "sentinel watch lost", "addr=%s:%u reason=\"%s\"", s->cfg->sentinel_hosts[at],
                   s->cfg->sentinel_ports[at], why);
    s->watch_up = 0;
    s->watch_at = (at + 1) % s->cfg->nsentinels;
    if (s->stopping)
        return;
    uint32_t base = s->watch_backoff_ms ? s->watch_backoff_ms : 100;
    uint32_t cap = s->cfg->redis_backoff_max_ms;
    s->watch_backoff_ms = base * 2 > cap ? cap : base * 2;
    uv_timer_start(&s->watch_retry, watch_retry_cb, base / 2 + (uint32_t)(rand() % (base / 2 + 1)),
                   0);
    cg_sentinel_resolve(s); /* meanwhile, a switch would go unnoticed */
}

static void on_watch_auth(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    struct cg_sentinel *s = ac->data;
    redisReply *reply = r;
    if (!s || s->watch != ac || !reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        auth_failed(s, s->watch_at, reply->str);
        watch_lost(s, "authentication failed");
    }
}

/* "<name> <old ip> <old port> <new ip> <new port>" */
static void on_switch(struct cg_sentinel *s, const char *msg, size_t len)
{
    char buf[512], name[128], oldip[128], newip[128];
    unsigned oldport, newport;
    if (len >= sizeof(buf))
        return;
    memcpy(buf, msg, len);
    buf[len] = 0;
    if (sscanf(buf, "%127s %127s %u %127s %u", name, oldip, &oldport, newip, &newport) != 5 ||
        strcmp(name, s->cfg->redis_master))
        return;
    notify(s, set_addr(s, newip, strlen(newip), newport, "switch-master"));
}

static void on_watch_msg(redisAsyncContext *ac, void *r, void *priv)
{
    (void)priv;
    struct cg_sentinel *s = ac->data;
    redisReply *reply = r;
    if (!s || s->watch != ac || !reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof(why), "%.150s", reply->str);
        watch_lost(s, why);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    if (!strcmp(kind, "subscribe")) {
        s->watch_up = 1;
        s->watch_backoff_ms = 0;
        s->watch_log.last_ms = 0;
        cg_log(CG_LOG_INFO, "sentinel watch up", "addr=%s:%u master=%s",
               s->cfg->sentinel_hosts[s->watch_at], s->cfg->sentinel_ports[s->watch_at],
               s->cfg->redis_master);
        cg_sentinel_resolve(s); /* a switch while the watch was down */
    } else if (!strcmp(kind, "message") && reply->element[2]->type == REDIS_REPLY_STRING) {
        on_switch(s, reply->element[2]->str, reply->element[2]->len);
    }
}

static void on_watch_connect(const redisAsyncContext *ac, int status)
{
    struct cg_sentinel *s = ac->data;
    if (!s || s->watch != ac)
        return;
    if (status != REDIS_OK) {
        s->watch = NULL; /* hiredis frees it after this callback */
        watch_lost(s, ac->errstr);
        return;
    }
    /* Sentinel's pub/sub is silent between failovers: keepalive notices a host that vanished
     * (about 11 s), where the dropped link would otherwise wait forever. */
    int fd = ac->c.fd, on = 1, idle = 5, intvl = 2, cnt = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static void on_watch_disconnect(const redisAsyncContext *ac, int status)
{
    struct cg_sentinel *s = ac->data;
    if (!s || s->watch != ac)
        return;
    s->watch = NULL;
    watch_lost(s, status == REDIS_OK ? "closed" : ac->errstr);
}

static void watch_connect(struct cg_sentinel *s)
{
    if (s->stopping || s->watch)
        return;
    s->watch_since_ms = now_ms(s);
    redisAsyncContext *ac = open_sentinel(s, s->watch_at, on_watch_auth);
    if (!ac) {
        watch_lost(s, "cannot connect");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_watch_connect);
    redisAsyncSetDisconnectCallback(ac, on_watch_disconnect);
    s->watch = ac;
    if (redisAsyncCommand(ac, on_watch_msg, NULL, "SUBSCRIBE %s", SWITCH_CHANNEL) != REDIS_OK)
        watch_lost(s, "cannot subscribe");
}

void cg_sentinel_retry_now(struct cg_sentinel *s)
{
    if (!cg_sentinel_enabled(s) || s->stopping)
        return;
    if (!s->watch) {
        uv_timer_stop(&s->watch_retry);
        watch_connect(s);
    }
    s->resolved_ms = 0;
    cg_sentinel_resolve(s);
}

/* ---- life cycle -------------------------------------------------------------------------- */

static void tick_cb(uv_timer_t *t)
{
    struct cg_sentinel *s = t->data;
    uint64_t now = now_ms(s);
    if (s->query && now - s->query_since_ms > QUERY_TIMEOUT_MS)
        query_failed(s, "timeout");
    if (s->watch && !s->watch_up && now - s->watch_since_ms > WATCH_TIMEOUT_MS)
        watch_lost(s, "timeout");
    if (now - s->resolved_ms > RECHECK_EVERY_MS)
        cg_sentinel_resolve(s);
}

void cg_sentinel_init(struct cg_sentinel *s, uv_loop_t *loop, const struct cg_config *cfg,
                      const struct cg_sentinel_hooks *hooks)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->cfg = cfg;
    if (hooks)
        s->hooks = *hooks;
    uv_timer_init(loop, &s->watch_retry);
    s->watch_retry.data = s;
    uv_timer_init(loop, &s->tick);
    s->tick.data = s;
    uv_timer_init(loop, &s->notify);
    s->notify.data = s;
    if (!cg_sentinel_enabled(s))
        return;
    cg_sentinel_resolve(s);
    watch_connect(s);
    uv_timer_start(&s->tick, tick_cb, 500, 500);
}

void cg_sentinel_stop(struct cg_sentinel *s)
{
    s->stopping = 1;
    s->resolving = 0;
    if (s->query)
        release(s->query);
    if (s->watch)
        release(s->watch);
    s->query = s->watch = NULL;
    uv_timer_stop(&s->tick);
    uv_timer_stop(&s->watch_retry);
    uv_timer_stop(&s->notify);
    uv_close((uv_handle_t *)&s->notify, NULL);
    uv_close((uv_handle_t *)&s->tick, NULL);
    uv_close((uv_handle_t *)&s->watch_retry, NULL);
}
