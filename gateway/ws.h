/* ws.h -- the libwebsockets side: the protocol callback, a connection's state, the write path
 * and closing.
 *
 * One lws protocol serves both HTTP (http.c) and the WebSocket endpoint /ws, so that clients
 * need no subprotocol. Per-vhost state is struct cg_ws; per-connection state is struct
 * cg_client (lws allocates it). The other concerns of a connection live in their own files and
 * are called from the one callback here: the upgrade and its checks (handshake.c), what a
 * client asks (dispatch.c), the HTTP endpoints (http.c), certificates (tls.c).
 *
 * A client's frames are queued in its cg_outq and written once per loop turn, right after the
 * poll phase (a uv_check handle), several frames joined by "\n" per message; a socket that
 * cannot take more waits for LWS_CALLBACK_SERVER_WRITEABLE. */
#ifndef CG_WS_H
#define CG_WS_H

#include <stdint.h>
#include <uv.h>

#include "dispatch.h"
#include "handshake.h"
#include "http.h"
#include "list.h"
#include "log.h"
#include "outq.h"
#include "peers.h"
#include "registry.h"

struct lws;
struct lws_context;
struct cg_agent;
struct cg_auth;
struct cg_auth_entry;
struct cg_bridge;
struct cg_config;
struct cg_frame;

struct cg_ws {
    struct lws_context *ctx;
    const struct cg_config *cfg; /* borrowed */
    struct cg_registry *reg;     /* borrowed */
    struct cg_auth *auth;        /* borrowed */
    struct cg_bridge *bridge;    /* borrowed */
    struct cg_agent *agent;      /* borrowed */
    uv_loop_t *loop;             /* borrowed */
    struct cg_outq_limits limits;
    unsigned char *scratch;  /* LWS_PRE + batch_max_bytes: one batched message */
    struct cg_list to_close; /* clients whose close is to start (struct cg_client) */
    uv_timer_t closer;
    struct cg_list to_flush; /* clients with queued frames to write (struct cg_client) */
    uv_check_t flusher;      /* writes them after each poll phase */
    uv_idle_t flush_soon;    /* active while to_flush is not empty: the poll does not block */
    uint64_t started_ms;
    char epoch[17]; /* this process's identity for resume (seq is per process) */
    int shutting_down;
    struct cg_handshake hs;      /* handshake.c */
    struct cg_dispatch dispatch; /* dispatch.c */
    struct cg_http http;         /* http.c */
    struct cg_log_limit slow_log;
};

/* One connection (lws allocates it, zeroed, as the protocol's per-session data). The WebSocket
 * fields are filled at ESTABLISHED (handshake.c); an HTTP connection uses only the http ones. */
struct cg_client {
    struct lws *wsi;
    struct cg_ws *w;
    struct cg_member member;
    struct cg_outq q;
    struct cg_auth_entry *auth;   /* the session, held while the socket lives */
    struct cg_list auth_link;     /* on auth->sockets: revocation finds the socket */
    struct cg_dispatch_client in; /* what dispatch.c keeps: reassembly and rate limiting */
    uint16_t close_code;
    uint8_t established;
    uint8_t closing;
    uint8_t want_write;        /* on to_flush, or waiting for lws's WRITEABLE */
    struct cg_list flush_link; /* on cg_ws.to_flush */
    struct cg_list close_link; /* on cg_ws.to_close until the close starts */
    char close_reason[32];
    char peer[48];
    char
        addr[CG_PEERS_ADDR_MAX + 1]; /* the client's address (behind a trusted proxy: its header) */
    struct cg_http_client http;      /* http.c: the response of an HTTP connection */
};

/* Creates the lws context on loop and starts listening. Returns 0, or -1 with an
 * error line logged. All pointers are borrowed and must outlive the ws module. */
int cg_ws_start(struct cg_ws *w, uv_loop_t *loop, const struct cg_config *cfg,
                struct cg_registry *reg, struct cg_auth *auth, struct cg_bridge *bridge,
                struct cg_agent *agent);
/* Closes every client with 1001 "going away"; new handshakes get 503. */
void cg_ws_close_all(struct cg_ws *w);
/* Destroys the lws context; the loop must run on for its handles to close. */
void cg_ws_stop(struct cg_ws *w);

/* Queues frame f for c; f is consumed (the reference is the caller's, now c's queue's). A NULL
 * f (an encoder out of memory) is ignored. A queue over its bound closes c as a slow consumer. */
void cg_ws_send(struct cg_client *c, struct cg_frame *f);
/* Marks c for closing with code and reason: it gets no more frames, and the close starts from
 * a timer, outside whatever fan-out or callback the caller is in. Repeated calls are no-ops. */
void cg_ws_close(struct cg_client *c, uint16_t code, const char *reason);
/* Milliseconds on the loop's clock. */
uint64_t cg_ws_now_ms(const struct cg_ws *w);

/* Relay hook: offers a frame to a member's socket (see relay.h). data = cg_ws. */
void cg_ws_deliver(void *data, struct cg_member *m, struct cg_frame *f, uint64_t *slot);
/* Auth hook: closes a socket whose session ended with 4001. data = cg_ws. */
void cg_ws_revoked(void *data, struct cg_list *socket_link);

#endif
