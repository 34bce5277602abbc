/* http.c -- /healthz, /metrics, /session, /dev/login, and the mount table with web/. */
#include "http.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "bridge.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "handshake.h"
#include "shared.h"

#define DEV_SESSION_TTL_S 43200
#define SMALL_BODY 1024 /* /healthz, /session: a user id of 128 escaped characters fits */

/* The callback mounts, answered by cg_http_request; everything else is a static file. */
static const char *const callback_paths[CG_HTTP_CALLBACK_MOUNTS] = {
    "/healthz", "/metrics", "/session", "/dev/login", /* answers 404 unless --dev-login */
};

const struct lws_http_mount *cg_http_mounts(struct cg_http *h, const char *web_root)
{
    memset(h->mounts, 0, sizeof(h->mounts));
    for (int i = 0; i <= CG_HTTP_CALLBACK_MOUNTS; i++) {
        struct lws_http_mount *m = &h->mounts[i];
        if (i < CG_HTTP_CALLBACK_MOUNTS) {
            m->mountpoint = callback_paths[i];
            m->origin = "chartgate"; /* the protocol, ws.c */
            m->origin_protocol = LWSMPRO_CALLBACK;
            m->mount_next = &h->mounts[i + 1];
        } else {
            m->mountpoint = "/";
            m->origin = web_root;
            m->def = "index.html";
            m->origin_protocol = LWSMPRO_FILE;
        }
        m->mountpoint_len = (unsigned char)strlen(m->mountpoint);
    }
    return &h->mounts[0];
}

/* Sends the headers of a response whose body (LWS_PRE headroom + len bytes, stolen) is written
 * when the socket is writeable. */
static int respond(struct lws *wsi, struct cg_client *c, unsigned int status, const char *ctype,
                   char *body, size_t len)
{
    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start,
                                      *end = hdr + sizeof(hdr) - 1;
    cg_http_done(c);
    c->http.body = body;
    c->http.len = len;
    if (lws_add_http_common_headers(wsi, status, ctype, len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (unsigned char *)"no-store",
                                     8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    lws_callback_on_writable(wsi);
    return 0;
}

/* A small JSON body: printf-style into a new LWS_PRE + SMALL_BODY buffer. */
static int respond_json(struct lws *wsi, struct cg_client *c, unsigned int status, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

static int respond_json(struct lws *wsi, struct cg_client *c, unsigned int status, const char *fmt,
                        ...)
{
    char *body = malloc(LWS_PRE + SMALL_BODY);
    if (!body)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body + LWS_PRE, SMALL_BODY, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= SMALL_BODY) {
        free(body);
        return -1;
    }
    return respond(wsi, c, status, "application/json", body, (size_t)n);
}

/* With --workers: the instance's gauges from every worker's slot (ours published first). A
 * link counts as up when it is up in every live worker. */
static void instance_gauges(struct cg_ws *w, struct cg_metrics_gauges *g)
{
    struct cg_shared *sh = w->worker.shared;
    uint64_t now = cg_shared_now_ms();
    cg_worker_publish(w);
    memset(g, 0, sizeof(*g));
    for (int l = 0; l < CG_LINK__COUNT; l++)
        g->redis_up[l] = 1;
    for (uint32_t i = 0; i < sh->nworkers; i++) {
        const struct cg_shared_slot *s = &sh->slots[i];
        if (s->pid <= 0)
            continue;
        g->connections += s->connections;
        g->users += s->users;
        g->subscriptions += s->subscriptions;
        g->instruments += s->instruments;
        for (int l = 0; l < CG_LINK__COUNT; l++)
            if (!cg_shared_alive(sh, i, now) || !s->redis_up[l])
                g->redis_up[l] = 0;
    }
    g->uptime_s = (now - sh->started_ms) / 1000;
    g->cfg = w->cfg;
}

static void gauges(struct cg_ws *w, struct cg_metrics_gauges *g)
{
    if (w->worker.shared) {
        instance_gauges(w, g);
        return;
    }
    memset(g, 0, sizeof(*g));
    g->connections = w->reg->nmembers;
    g->users = w->reg->users.count;
    g->subscriptions = w->reg->nsubs;
    g->instruments = w->reg->nactive;
    for (int i = 0; i < CG_LINK_BRIDGE_COUNT; i++)
        g->redis_up[i] = cg_bridge_up(w->bridge, (enum cg_link)i);
    g->redis_up[CG_LINK_SESSION] = cg_auth_up(w->auth);
    g->uptime_s = (cg_client_now_ms(w) - w->started_ms) / 1000;
    g->cfg = w->cfg;
}

static int metrics(struct cg_ws *w, struct lws *wsi, struct cg_client *c)
{
    struct cg_metrics_gauges g;
    struct cg_metrics sum;
    struct cg_shared *sh = w->worker.shared;
    gauges(w, &g);
    uint64_t now = cg_shared_now_ms();
    if (sh) {
        cg_shared_sum(sh, &sum);
        g.m = &sum;
    }
    size_t need = cg_metrics_render(&g, NULL, 0);
    if (sh)
        need = cg_shared_render(sh, now, NULL, 0, need);
    char *body = malloc(LWS_PRE + need + 1);
    if (!body)
        return -1;
    size_t len = cg_metrics_render(&g, body + LWS_PRE, need + 1);
    if (sh)
        len = cg_shared_render(sh, now, body + LWS_PRE, need + 1, len);
    if (len > need) /* a worker came or went between the two passes */
        len = need;
    return respond(wsi, c, HTTP_STATUS_OK, "text/plain; version=0.0.4", body, len);
}

/* /healthz with --workers: the instance's status plus each worker's liveness and links. */
static int healthz_workers(struct cg_ws *w, struct lws *wsi, struct cg_client *c,
                           const struct cg_metrics_gauges *g)
{
    struct cg_shared *sh = w->worker.shared;
    uint64_t now = cg_shared_now_ms();
    int ok = 1;
    uint32_t alive = 0;
    json_t *list = json_array();
    for (uint32_t i = 0; i < sh->nworkers; i++) {
        const struct cg_shared_slot *s = &sh->slots[i];
        int up = cg_shared_alive(sh, i, now);
        alive += up != 0;
        json_t *links = json_object();
        for (int l = 0; l < CG_LINK__COUNT; l++) {
            json_object_set_new(links, cg_link_names[l], json_boolean(up && s->redis_up[l]));
            if (up && l < CG_LINK_BRIDGE_COUNT && !s->redis_up[l])
                ok = 0;
        }
        json_array_append_new(list, json_pack("{s:i,s:i,s:b,s:I,s:i,s:o}", "index", (int)i, "pid",
                                              (int)s->pid, "alive", up, "connections",
                                              (json_int_t)s->connections, "restarts",
                                              (int)s->restarts, "redis", links));
    }
    ok &= alive > 0;
    json_t *redis = json_object();
    for (int l = 0; l < CG_LINK_BRIDGE_COUNT; l++)
        json_object_set_new(redis, cg_link_names[l], json_boolean(g->redis_up[l]));
    json_t *o =
        json_pack("{s:s,s:o,s:I,s:I,s:i,s:i,s:o}", "status", ok ? "ok" : "degraded", "redis", redis,
                  "connections", (json_int_t)g->connections, "uptime_s", (json_int_t)g->uptime_s,
                  "worker", (int)w->worker.index, "workers_alive", (int)alive, "workers", list);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return -1;
    size_t len = strlen(text);
    char *body = malloc(LWS_PRE + len);
    if (!body) {
        free(text);
        return -1;
    }
    memcpy(body + LWS_PRE, text, len);
    free(text);
    return respond(wsi, c, ok ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE,
                   "application/json", body, len);
}

/* Healthy while every bridge link is up (the session link is checked per handshake, and a
 * handshake that cannot reach Redis fails closed with 503 on its own). */
static int healthz(struct cg_ws *w, struct lws *wsi, struct cg_client *c)
{
    struct cg_metrics_gauges g;
    gauges(w, &g);
    if (w->worker.shared)
        return healthz_workers(w, wsi, c, &g);
    int ok = 1;
    for (int i = 0; i < CG_LINK_BRIDGE_COUNT; i++)
        ok &= g.redis_up[i] != 0;
    return respond_json(wsi, c, ok ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE,
                        "{\"status\":\"%s\",\"redis\":{\"%s\":%s,\"%s\":%s,\"%s\":%s},"
                        "\"connections\":%llu,\"uptime_s\":%llu}",
                        ok ? "ok" : "degraded", cg_link_names[CG_LINK_PUBSUB],
                        g.redis_up[CG_LINK_PUBSUB] ? "true" : "false",
                        cg_link_names[CG_LINK_COMMAND],
                        g.redis_up[CG_LINK_COMMAND] ? "true" : "false",
                        cg_link_names[CG_LINK_INBOX], g.redis_up[CG_LINK_INBOX] ? "true" : "false",
                        (unsigned long long)g.connections, (unsigned long long)g.uptime_s);
}

/* GET /session: who the cookie says this browser is (the web page uses it to tell
 * "logged out" from "gateway away", which a failed WebSocket cannot tell). */
static int session(struct cg_ws *w, struct lws *wsi, struct cg_client *c)
{
    struct cg_auth_entry *e;
    enum cg_auth_result r = cg_handshake_session(w, wsi, &e);
    if (r == CG_AUTH_DOWN)
        return respond_json(wsi, c, HTTP_STATUS_SERVICE_UNAVAILABLE,
                            "{\"error\":\"redis unavailable\"}");
    if (r != CG_AUTH_OK)
        return respond_json(wsi, c, HTTP_STATUS_UNAUTHORIZED, "{\"error\":\"not logged in\"}");
    json_t *o = json_pack("{s:s}", "user_id", e->session->user_id);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    cg_auth_release(w->auth, e);
    if (!text)
        return -1;
    int rc = respond_json(wsi, c, HTTP_STATUS_OK, "%s", text);
    free(text);
    return rc;
}

static int user_ok(const char *u)
{
    size_t n = strlen(u);
    if (!n || n > 64)
        return 0;
    for (; *u; u++)
        if (!isalnum((unsigned char)*u) && *u != '.' && *u != '_' && *u != '-')
            return 0;
    return 1;
}

/* GET /dev/login?user=NAME (only with --dev-login): a session for NAME, its cookie,
 * and a redirect to the page. For development and demos: anyone who can reach the
 * port can be anyone. */
static int dev_login(struct cg_ws *w, struct lws *wsi)
{
    char buf[128], sid[33], cookie[160];
    const char *user = lws_get_urlarg_by_name(wsi, "user=", buf, sizeof(buf));
    if (!user || !user_ok(user))
        return lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST,
                                      "user=NAME ([A-Za-z0-9._-], 1 to 64 characters)")
                   ? -1
                   : 0;
    if (cg_auth_create(w->auth, user, DEV_SESSION_TTL_S, sid))
        return lws_return_http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL) ? -1 : 0;
    cg_log(CG_LOG_WARN, "dev login", "user=%s", user);
    int cl =
        snprintf(cookie, sizeof(cookie), "sessionid=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax",
                 sid, DEV_SESSION_TTL_S);
    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start,
                                      *end = hdr + sizeof(hdr) - 1;
    if (lws_add_http_header_status(wsi, HTTP_STATUS_FOUND, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_LOCATION, (unsigned char *)"/", 1, &p,
                                     end) ||
        lws_add_http_header_by_name(wsi, (unsigned char *)"set-cookie:", (unsigned char *)cookie,
                                    cl, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (unsigned char *)"no-store",
                                     8, &p, end) ||
        lws_add_http_header_content_length(wsi, 0, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int cg_http_request(struct cg_ws *w, struct lws *wsi, struct cg_client *c)
{
    char uri[64];
    c->http.body = NULL; /* a body lives for one transaction: cg_http_done freed the last one */
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
        return lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST, NULL) ? -1 : 0;
    if (!strcmp(uri, "/session"))
        return session(w, wsi, c);
    if (!strcmp(uri, "/dev/login") && w->cfg->dev_login)
        return dev_login(w, wsi);
    if (!strcmp(uri, "/metrics"))
        return metrics(w, wsi, c);
    if (!strcmp(uri, "/healthz"))
        return healthz(w, wsi, c);
    return lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL) ? -1 : 0;
}

int cg_http_writeable(struct lws *wsi, struct cg_client *c)
{
    if (!c->http.body)
        return 0;
    int n =
        lws_write(wsi, (unsigned char *)c->http.body + LWS_PRE, c->http.len, LWS_WRITE_HTTP_FINAL);
    cg_http_done(c);
    if (n < (int)c->http.len)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void cg_http_done(struct cg_client *c)
{
    free(c->http.body);
    c->http.body = NULL;
}
