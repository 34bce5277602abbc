/* auth.c -- synchronous session lookup, the session table, and periodic re-checks. */
#include "auth.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "random.h"

/* The first hold after a failure; it doubles up to --redis-backoff-max-ms. */
#define DOWN_HOLD_MS 1000
#define MAX_IDLE_ENTRIES 100000
#define LOG_EVERY_MS 60000

void cg_auth_tag(const char *sid, char out[9])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(sid, strlen(sid), md, &mdlen, EVP_sha256(), NULL) || mdlen < 4) {
        snprintf(out, 9, "????????");
        return;
    }
    snprintf(out, 9, "%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
}

static int64_t wall_s(void)
{
    return (int64_t)time(NULL);
}

static void entry_free(struct cg_auth *a, struct cg_auth_entry *e)
{
    cg_map_del(&a->entries, &e->node);
    cg_session_destroy(e->session);
    free(e);
}

/* Frees e when nothing holds it and it is no longer a useful cache entry. */
static void maybe_free(struct cg_auth *a, struct cg_auth_entry *e)
{
    if (!e->refs && (e->revoked || uv_now(a->loop) >= e->cached_until_ms))
        entry_free(a, e);
}

void cg_auth_release(struct cg_auth *a, struct cg_auth_entry *e)
{
    if (!e)
        return;
    e->refs--;
    maybe_free(a, e);
}

void cg_auth_attach(struct cg_auth_entry *e, struct cg_list *socket_link)
{
    cg_list_append(&e->sockets, socket_link);
    e->nsockets++;
}

void cg_auth_detach(struct cg_auth *a, struct cg_auth_entry *e, struct cg_list *socket_link)
{
    cg_list_remove(socket_link);
    e->nsockets--;
    cg_auth_release(a, e);
}

static void revoke_entry(struct cg_auth *a, struct cg_auth_entry *e, const char *why)
{
    if (e->revoked)
        return;
    e->revoked = 1;
    cg_metrics.sessions_revoked++;
    cg_log(CG_LOG_INFO, "session ended", "session=%s user=%s reason=%s sockets=%u", e->tag,
           e->session->user_id, why, e->nsockets);
    e->refs++; /* the hook may detach every socket */
    struct cg_list *it, *tmp;
    CG_LIST_FOREACH_SAFE(it, tmp, &e->sockets)
    a->hooks.revoked(a->hooks.data, it);
    cg_auth_release(a, e);
}

/* Holds the session link off after a failure, for longer each time in a row. */
static void hold(struct cg_auth *a)
{
    uint32_t cap =
        a->cfg->redis_backoff_max_ms > DOWN_HOLD_MS ? a->cfg->redis_backoff_max_ms : DOWN_HOLD_MS;
    if (!a->hold_ms)
        a->hold_ms = DOWN_HOLD_MS;
    a->down_until_ms = uv_now(a->loop) + a->hold_ms;
    a->hold_ms = a->hold_ms * 2 > cap ? cap : a->hold_ms * 2;
}

static void drop_rc(struct cg_auth *a, const char *why)
{
    if (a->rc) {
        cg_log(CG_LOG_WARN, "redis link lost", "link=session addr=%s:%u reason=\"%s\"", a->host,
               a->port, a->rc->errstr[0] ? a->rc->errstr : why);
        redisFree(a->rc);
        a->rc = NULL;
    }
    hold(a);
}

/* The handshake of a new session link: AUTH, ROLE with sentinels, SELECT. Returns 0, or -1
 * (logged, rate-limited) when rc is not to be used. */
static int handshake(struct cg_auth *a, redisContext *rc, const char *host, uint32_t port)
{
    const char *argv[3];
    size_t lens[3];
    int argc = cg_sentinel_auth_argv(&a->cfg->redis_auth, argv, lens);
    redisReply *r = argc ? redisCommandArgv(rc, argc, argv, lens) : NULL;
    if (argc && (!r || r->type == REDIS_REPLY_ERROR)) {
        if (r) {
            cg_metrics.redis_auth_failures[CG_LINK_SESSION]++;
            a->auth_refused = 1;
            cg_log_limited(&a->auth_log, LOG_EVERY_MS, CG_LOG_ERROR, "redis authentication failed",
                           "link=session addr=%s:%u error=\"%.200s\"", host, port, r->str);
            freeReplyObject(r);
        }
        return -1;
    }
    if (r)
        freeReplyObject(r);
    if (cg_sentinel_enabled(a->sentinel)) {
        r = redisCommand(rc, "ROLE");
        int role = cg_sentinel_role(r);
        if (role == 0 && r)
            cg_log_limited(&a->fail_log, LOG_EVERY_MS, CG_LOG_WARN, "redis is not the master",
                           "link=session addr=%s:%u", host, port);
        else if (role < 0)
            cg_log_limited(&a->fail_log, LOG_EVERY_MS, CG_LOG_WARN, "redis role unchecked",
                           "link=session error=\"%.200s\" hint=\"grant +role to the ACL user\"",
                           r->str);
        if (r)
            freeReplyObject(r);
        if (!role || !r) {
            cg_sentinel_resolve(a->sentinel);
            return -1;
        }
    }
    if (a->cfg->redis_db) {
        r = redisCommand(rc, "SELECT %u", a->cfg->redis_db);
        int ok = r && r->type != REDIS_REPLY_ERROR;
        if (r)
            freeReplyObject(r);
        if (!ok)
            return -1;
    }
    return 0;
}

static int ensure_rc(struct cg_auth *a)
{
    if (a->rc)
        return 0;
    uv_update_time(a->loop);
    /* Held off for a moment after a failure, unless the bridge already sees Redis
     * back: a storm of handshakes while Redis is away costs no connect attempts. A
     * refused AUTH is not retried early: the bridge has its own credentials' luck. */
    if (uv_now(a->loop) < a->down_until_ms &&
        (a->auth_refused || !cg_bridge_up(a->bridge, CG_LINK_COMMAND)))
        return -1;
    const char *host;
    uint32_t port;
    if (a->bridge->clustered) {
        if (!a->want_port)
            return -1; /* no key routed yet: nothing to connect to */
        host = a->want_host;
        port = a->want_port;
    } else if (cg_sentinel_addr(a->sentinel, &host, &port)) {
        cg_sentinel_resolve(a->sentinel);
        hold(a);
        return -1;
    }
    struct timeval tv = {a->cfg->session_timeout_ms / 1000,
                         (long)(a->cfg->session_timeout_ms % 1000) * 1000};
    redisContext *rc = redisConnectWithTimeout(host, (int)port, tv);
    if (!rc || rc->err) {
        cg_log_limited(&a->fail_log, LOG_EVERY_MS, CG_LOG_INFO, "redis link failed",
                       "link=session addr=%s:%u reason=\"%s\"", host, port,
                       rc ? rc->errstr : "out of memory");
        if (rc)
            redisFree(rc);
        cg_sentinel_resolve(a->sentinel);
        hold(a);
        return -1;
    }
    redisSetTimeout(rc, tv);
    a->auth_refused = 0;
    if (handshake(a, rc, host, port)) {
        redisFree(rc);
        hold(a);
        return -1;
    }
    if (a->ever_up)
        cg_metrics.redis_reconnects[CG_LINK_SESSION]++;
    a->ever_up = 1;
    a->hold_ms = 0;
    a->down_until_ms = 0;
    a->fail_log.last_ms = a->auth_log.last_ms = 0;
    a->fail_log.suppressed = a->auth_log.suppressed = 0;
    snprintf(a->host, sizeof(a->host), "%s", host);
    a->port = port;
    a->rc = rc;
    return 0;
}

/* Cluster mode: makes rc the link to host:port, from the pool or (at ensure_rc) a new one; the
 * link in use until now goes to the pool. */
static void route(struct cg_auth *a, const char *host, uint32_t port)
{
    snprintf(a->want_host, sizeof(a->want_host), "%s", host);
    a->want_port = port;
    if (a->rc && a->port == port && !strcmp(a->host, host))
        return;
    size_t found = CG_AUTH_POOL, slot = 0;
    for (size_t i = 0; i < CG_AUTH_POOL; i++) {
        if (a->pool[i].rc && a->pool[i].port == port && !strcmp(a->pool[i].host, host))
            found = i;
        else if (!a->pool[i].rc)
            slot = i;
    }
    if (found == CG_AUTH_POOL && a->pool[slot].rc) {
        /* full: the oldest goes (slot 0 is refilled last) */
        redisFree(a->pool[0].rc);
        memmove(&a->pool[0], &a->pool[1], sizeof(a->pool[0]) * (CG_AUTH_POOL - 1));
        slot = CG_AUTH_POOL - 1;
        a->pool[slot].rc = NULL;
    }
    size_t to = found < CG_AUTH_POOL ? found : slot;
    redisContext *rc = a->pool[to].rc;
    char h[128];
    uint32_t p = a->pool[to].port;
    snprintf(h, sizeof(h), "%s", a->pool[to].host);
    a->pool[to].rc = a->rc;
    snprintf(a->pool[to].host, sizeof(a->pool[to].host), "%s", a->host);
    a->pool[to].port = a->port;
    a->rc = rc;
    snprintf(a->host, sizeof(a->host), "%s", h);
    a->port = p;
}

/* The session link for key: in cluster mode, the one to its slot's master. Returns 0, or -1 when
 * there is none (as ensure_rc). */
static int rc_for(struct cg_auth *a, const char *key, size_t klen)
{
    if (a->bridge->clustered) {
        const char *host;
        uint32_t port;
        if (cg_cluster_key_addr(&a->bridge->cluster, key, klen, &host, &port))
            return -1;
        route(a, host, port);
    }
    return ensure_rc(a);
}

/* A MOVED or ASK answer to a session command (cluster mode, a map not yet refreshed): r is
 * replaced by the answer of the node named, asked once. */
static redisReply *follow(struct cg_auth *a, redisReply *r, const char *key, size_t klen)
{
    uint16_t slot;
    char host[CG_SLOTS_HOST_MAX + 1];
    uint32_t port;
    int kind;
    if (!a->bridge->clustered || !r || r->type != REDIS_REPLY_ERROR ||
        !(kind = cg_slots_redirect(r->str, r->len, &slot, host, &port)))
        return r;
    if (!host[0])
        snprintf(host, sizeof(host), "%s", a->host);
    freeReplyObject(r);
    route(a, host, port);
    if (ensure_rc(a))
        return NULL;
    if (kind == CG_SLOTS_ASK) {
        redisReply *ok = redisCommand(a->rc, "ASKING");
        if (!ok)
            return NULL;
        freeReplyObject(ok);
    }
    return redisCommand(a->rc, "GET %b", key, klen);
}

void cg_auth_master_resolved(struct cg_auth *a, int changed)
{
    const char *host;
    uint32_t port;
    if (cg_sentinel_addr(a->sentinel, &host, &port))
        return;
    int moved = a->rc && (a->port != port || strcmp(a->host, host));
    if (moved) {
        cg_log(CG_LOG_INFO, "redis link moving", "link=session from=%s:%u to=%s:%u", a->host,
               a->port, host, port);
        redisFree(a->rc);
        a->rc = NULL;
    }
    if (!a->rc && (moved || changed) && !a->auth_refused) {
        /* Now, rather than in the next handshake (and /metrics shows the link up). */
        a->hold_ms = 0;
        a->down_until_ms = 0;
        ensure_rc(a);
    }
}

void cg_auth_retry_now(struct cg_auth *a)
{
    a->down_until_ms = 0;
    a->auth_refused = 0;
}

/* 1 when a failed command means the peer had closed the connection (not a timeout). */
static int stale(const redisContext *rc)
{
    return rc->err == REDIS_ERR_EOF ||
           (rc->err == REDIS_ERR_IO && (errno == ECONNRESET || errno == EPIPE));
}

static struct cg_auth_entry *find(struct cg_auth *a, const char *sid)
{
    struct cg_map_node *n = cg_map_get(&a->entries, sid, strlen(sid));
    return n ? CG_CONTAINER_OF(n, struct cg_auth_entry, node) : NULL;
}

static void sweep_one(struct cg_map_node *n, void *arg)
{
    struct cg_auth *a = arg;
    maybe_free(a, CG_CONTAINER_OF(n, struct cg_auth_entry, node));
}

enum cg_auth_result cg_auth_lookup(struct cg_auth *a, const char *sid, struct cg_auth_entry **out)
{
    *out = NULL;
    struct cg_auth_entry *e = find(a, sid);
    uint64_t now = uv_now(a->loop);
    if (e && !e->revoked && (e->nsockets || now < e->cached_until_ms)) {
        if (e->session->has_exp && e->session->exp <= wall_s())
            return CG_AUTH_EXPIRED;
        cg_metrics.session_cache_hits++;
        e->refs++;
        *out = e;
        return CG_AUTH_OK;
    }
    char key[256];
    int klen = snprintf(key, sizeof(key), "%s%s", a->cfg->session_prefix, sid);
    if (rc_for(a, key, (size_t)klen))
        return CG_AUTH_DOWN;
    cg_metrics.session_lookups++;
    redisReply *r = redisCommand(a->rc, "GET %b", key, (size_t)klen);
    if (!r && stale(a->rc)) {
        /* The connection died while idle (Redis restarted): one fresh try, since the
         * first handshake after a restart should not be refused for our stale socket. */
        drop_rc(a, "stale connection");
        a->down_until_ms = 0;
        a->hold_ms = 0;
        if (ensure_rc(a))
            return CG_AUTH_DOWN;
        r = redisCommand(a->rc, "GET %b", key, (size_t)klen);
    }
    if (r)
        r = follow(a, r, key, (size_t)klen);
    if (!r && !a->rc)
        return CG_AUTH_DOWN;
    if (!r) {
        drop_rc(a, "lookup failed");
        return CG_AUTH_DOWN;
    }
    enum cg_auth_result res = CG_AUTH_UNKNOWN;
    struct cg_session *s = NULL;
    if (r->type == REDIS_REPLY_STRING) {
        char why[120];
        enum cg_session_status st =
            cg_session_parse(r->str, r->len, wall_s(), &s, why, sizeof(why));
        if (st == CG_SESSION_OK)
            res = CG_AUTH_OK;
        else if (st == CG_SESSION_EXPIRED)
            res = CG_AUTH_EXPIRED;
        else if (st == CG_SESSION_NOMEM)
            res = CG_AUTH_DOWN;
        else {
            char tag[9];
            cg_auth_tag(sid, tag);
            cg_log(CG_LOG_WARN, "malformed session", "session=%s detail=\"%s\"", tag, why);
            res = CG_AUTH_BAD;
        }
    } else if (r->type == REDIS_REPLY_ERROR) {
        cg_log(CG_LOG_ERROR, "session lookup failed", "error=\"%.200s\"", r->str);
        res = CG_AUTH_DOWN;
    }
    freeReplyObject(r);
    if (res != CG_AUTH_OK)
        return res;

    if (e && !e->refs) {
        entry_free(a, e); /* a stale or revoked entry nobody holds */
        e = NULL;
    }
    if (e) {
        /* Revoked but still referenced: detach the name so the new entry can take it. */
        cg_map_del(&a->entries, &e->node);
        e->node.next = NULL;
    }
    if (a->entries.count > MAX_IDLE_ENTRIES)
        cg_map_each(&a->entries, sweep_one, a);
    e = calloc(1, sizeof(*e));
    if (!e) {
        cg_session_destroy(s);
        return CG_AUTH_DOWN;
    }
    snprintf(e->sid, sizeof(e->sid), "%s", sid);
    cg_auth_tag(sid, e->tag);
    cg_list_init(&e->sockets);
    e->session = s;
    e->cached_until_ms = now + a->cfg->session_cache_ms;
    if (cg_map_put(&a->entries, &e->node, e->sid, strlen(e->sid))) {
        cg_session_destroy(s);
        free(e);
        return CG_AUTH_DOWN;
    }
    e->refs = 1;
    *out = e;
    return CG_AUTH_OK;
}

/* ---- periodic re-check ----------------------------------------------------- */

struct check_ctx {
    struct cg_auth *a;
    struct cg_auth_entry *e;
};

static void on_recheck(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct check_ctx *ctx = priv;
    struct cg_auth *a = ctx->a;
    struct cg_auth_entry *e = ctx->e;
    redisReply *reply = r;
    free(ctx);
    e->checking = 0;
    if (reply && !e->revoked) {
        if (reply->type == REDIS_REPLY_NIL) {
            revoke_entry(a, e, "deleted");
        } else if (reply->type == REDIS_REPLY_STRING) {
            struct cg_session *s = NULL;
            enum cg_session_status st =
                cg_session_parse(reply->str, reply->len, wall_s(), &s, NULL, 0);
            if (st == CG_SESSION_EXPIRED)
                revoke_entry(a, e, "expired");
            else if (st == CG_SESSION_BAD)
                revoke_entry(a, e, "malformed");
            else if (st == CG_SESSION_OK && s) {
                e->session->exp = s->exp; /* allowlist and user stay as authenticated */
                e->session->has_exp = s->has_exp;
            }
            cg_session_destroy(s);
        }
    }
    cg_auth_release(a, e);
}

static void check_one(struct cg_map_node *n, void *arg)
{
    struct cg_auth *a = arg;
    struct cg_auth_entry *e = CG_CONTAINER_OF(n, struct cg_auth_entry, node);
    if (e->revoked || !e->nsockets) {
        maybe_free(a, e);
        return;
    }
    if (e->session->has_exp && e->session->exp <= wall_s()) {
        revoke_entry(a, e, "expired");
        return;
    }
    if (e->checking)
        return;
    struct check_ctx *ctx = malloc(sizeof(*ctx));
    if (!ctx)
        return;
    ctx->a = a;
    ctx->e = e;
    char key[256];
    int klen = snprintf(key, sizeof(key), "%s%s", a->cfg->session_prefix, e->sid);
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, (size_t)klen};
    e->refs++;
    e->checking = 1;
    if (cg_bridge_command(a->bridge, on_recheck, ctx, 2, argv, lens)) {
        /* Redis is away: sessions stay as they were until it is back. */
        e->checking = 0;
        e->refs--;
        free(ctx);
    }
}

static void check_cb(uv_timer_t *t)
{
    struct cg_auth *a = t->data;
    if (!a->rc)
        ensure_rc(a); /* keeps the session link's state in /metrics current */
    cg_map_each(&a->entries, check_one, a);
}

void cg_auth_init(struct cg_auth *a, uv_loop_t *loop, const struct cg_config *cfg,
                  struct cg_bridge *bridge, struct cg_sentinel *sentinel,
                  const struct cg_auth_hooks *hooks)
{
    memset(a, 0, sizeof(*a));
    a->loop = loop;
    a->cfg = cfg;
    a->bridge = bridge;
    a->sentinel = sentinel;
    a->hooks = *hooks;
    cg_map_init(&a->entries);
    uv_timer_init(loop, &a->check);
    a->check.data = a;
    uint64_t every = (uint64_t)cfg->session_check_s * 1000;
    uv_timer_start(&a->check, check_cb, every, every);
    ensure_rc(a); /* an early connection; failing now is retried at the first lookup */
}

static void free_any(struct cg_map_node *n, void *arg)
{
    entry_free(arg, CG_CONTAINER_OF(n, struct cg_auth_entry, node));
}

void cg_auth_finish(struct cg_auth *a)
{
    uv_timer_stop(&a->check);
    uv_close((uv_handle_t *)&a->check, NULL);
    cg_map_each(&a->entries, free_any, a);
    cg_map_finish(&a->entries);
    if (a->rc)
        redisFree(a->rc);
    a->rc = NULL;
    for (size_t i = 0; i < CG_AUTH_POOL; i++)
        if (a->pool[i].rc)
            redisFree(a->pool[i].rc);
}

int cg_auth_up(const struct cg_auth *a)
{
    return a->rc != NULL;
}

int cg_auth_create(struct cg_auth *a, const char *user_id, uint32_t ttl_s, char *sid)
{
    char key[256];
    if (cg_random_hex(sid, 16))
        return -1;
    int klen = snprintf(key, sizeof(key), "%s%s", a->cfg->session_prefix, sid);
    if (rc_for(a, key, (size_t)klen))
        return -1;
    json_t *obj =
        json_pack("{s:s, s:I}", "user_id", user_id, "exp", (json_int_t)(wall_s() + (int64_t)ttl_s));
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text)
        return -1;
    redisReply *r = redisCommand(a->rc, "SET %b %s EX %u", key, (size_t)klen, text, ttl_s);
    free(text);
    if (!r) {
        drop_rc(a, "session create failed");
        return -1;
    }
    int ok = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok ? 0 : -1;
}
