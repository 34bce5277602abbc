/* ws.c -- the lws protocol callback on top of the connection's concerns, and the context. */
#include "ws.h"

#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "dispatch.h"
#include "handshake.h"
#include "http.h"
#include "metrics.h"
#include "service.h"
#include "tls.h"
#include "wsdeflate.h"

#define RX_CHUNK 1024 /* lws per-connection rx buffer; larger messages are reassembled */
/* Largest chunk lws hands to one send(): without it lws 4.1 caps every send at RX_CHUNK +
 * LWS_PRE + 4 bytes and parks the rest of a message in its buflist, drained ~1 KiB per POLLOUT
 * loop turn -- a 15 KiB batch then took 15 turns (measured: p50 250 ms at 200k frames/s).
 * 64 MiB + 1 KiB covers the largest message, a --max-payload-bytes frame sent alone. */
#define TX_CHUNK ((64U << 20) + 1024)

void cg_ws_close_all(struct cg_ws *w)
{
    w->shutting_down = 1;
    cg_worker_stop_accepting(w);
    struct cg_list *it, *tmp;
    CG_LIST_FOREACH_SAFE(it, tmp, &w->reg->members)
    {
        struct cg_member *m = CG_CONTAINER_OF(it, struct cg_member, all_link);
        cg_client_close(m->owner, LWS_CLOSE_STATUS_GOINGAWAY, "going away");
    }
}

/* LWS_CALLBACK_CLOSED: everything the connection held goes. */
static void closed(struct cg_ws *w, struct cg_client *c)
{
    if (!c->established)
        return;
    cg_log(CG_LOG_DEBUG, "client closed", "peer=%s user=%s code=%u", c->peer,
           c->member.user ? c->member.user->id : "-", c->close_code);
    cg_dispatch_close(w, c);
    cg_service_event(w->service, "close", c->member.user->id, c->member.conn);
    cg_registry_leave(w->reg, &c->member);
    cg_client_finish(c);
    cg_handshake_closed(w, c);
    if (c->deflate)
        cg_metrics.deflate_sockets--;
    c->deflate = 0;
    c->established = 0;
}

/* ---- the protocol callback ------------------------------------------------- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct cg_ws *w = lws_context_user(lws_get_context(wsi));
    struct cg_client *c = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return cg_handshake_confirm(w, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        if (cg_handshake_established(w, c, wsi))
            return -1;
        if (w->cfg->deflate && cg_wsdeflate_active(wsi)) {
            c->deflate = 1;
            c->deflate_wbits = (uint8_t)cg_wsdeflate_window(wsi);
            cg_metrics.deflate_sockets++;
        }
        cg_dispatch_open(w, c);
        cg_service_event(w->service, "open", c->member.user->id, c->member.conn);
        return 0;
    case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
        return cg_wsdeflate_offer_ok(wsi);
    case LWS_CALLBACK_RECEIVE:
        return cg_dispatch_receive(c, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return cg_client_writeable(c);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* lws echoes the close: nothing may be written after it (flush_cb writes directly). */
        if (c)
            cg_client_peer_closed(c);
        return 0;
    case LWS_CALLBACK_CLOSED:
        closed(w, c);
        return 0;
    case LWS_CALLBACK_HTTP:
        return c ? cg_http_request(w, wsi, c) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return c ? cg_http_writeable(wsi, c) : 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (c)
            cg_http_done(c);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"chartgate", callback, sizeof(struct cg_client), RX_CHUNK, 0, NULL, TX_CHUNK},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    char q[300];
    cg_log_quote(q, sizeof(q), line, n);
    cg_log(level == LLL_ERR ? CG_LOG_ERROR : CG_LOG_WARN, "libwebsockets", "detail=%s", q);
}

int cg_ws_start(struct cg_ws *w, uv_loop_t *loop, const struct cg_ws_deps *deps)
{
    const struct cg_config *cfg = deps->cfg;
    memset(w, 0, sizeof(*w));
    w->agent = deps->agent;
    w->loop = loop;
    w->cfg = cfg;
    w->reg = deps->reg;
    w->auth = deps->auth;
    w->bridge = deps->bridge;
    w->service = deps->service;
    w->stream = deps->stream;
    w->started_ms = uv_now(loop);
    snprintf(w->epoch, sizeof(w->epoch), "%s", deps->epoch);
    w->worker.shared = deps->shared;
    w->worker.index = deps->worker;
    w->worker.fd = -1;
    cg_dispatch_init(&w->dispatch);

    static lws_retry_bo_t retry;
    retry.secs_since_valid_ping = (uint16_t)cfg->ping_s;
    retry.secs_since_valid_hangup = (uint16_t)cfg->idle_timeout_s;
    retry.jitter_percent = 20;

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    void *loops[1] = {loop};
    info.foreign_loops = loops;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
                   LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
    /* A worker listens itself, on a port its siblings share (worker.h says why). */
    info.port = deps->shared ? CONTEXT_PORT_NO_LISTEN_SERVER : (int)cfg->listen_port;
    info.iface = cfg->listen_host;
    info.protocols = protocols;
    info.extensions = cfg->deflate ? cg_wsdeflate_extensions : NULL;
    info.mounts = cg_http_mounts(&w->http, cfg->web_root);
    info.user = w;
    info.retry_and_idle_policy = &retry;
    info.max_http_header_data = 8192;
    info.timeout_secs = 10;
    info.count_threads = 1;
    cg_tls_configure(&info, cfg);
    if (cg_client_vhost_init(w))
        return -1;
    if (cg_handshake_init(w)) {
        cg_client_vhost_finish(w);
        return -1;
    }
    w->ctx = lws_create_context(&info);
    if (!w->ctx) {
        cg_log(CG_LOG_ERROR, "cannot listen", "addr=%s:%u", cfg->listen_host, cfg->listen_port);
        cg_handshake_finish(w);
        cg_client_vhost_finish(w);
        return -1;
    }
    if (deps->shared && cg_worker_start(w)) {
        cg_ws_stop(w);
        return -1;
    }
    cg_log(CG_LOG_INFO, "listening", "addr=%s port=%u tls=%s", cfg->listen_host, cfg->listen_port,
           cfg->tls_cert[0] ? "on" : "off");
    return 0;
}

void cg_ws_stop(struct cg_ws *w)
{
    cg_worker_stop(w);
    if (w->ctx)
        lws_context_destroy(w->ctx);
    w->ctx = NULL;
    cg_client_vhost_finish(w);
    cg_handshake_finish(w);
}
