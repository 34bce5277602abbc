/* ws.h -- the libwebsockets side as main.c sees it: the context, listening, shutting down.
 *
 * One lws protocol serves both HTTP (http.c) and the WebSocket endpoint /ws, so that clients
 * need no subprotocol. Its one callback (ws.c) routes each reason to the concern that owns it:
 * the upgrade and its checks (handshake.c), what a client asks (dispatch.c), the HTTP
 * endpoints (http.c), a connection's queue, writes and close (client.c); certificates are
 * tls.c's. */
#ifndef CG_WS_H
#define CG_WS_H

#include <uv.h>

#include "client.h"

struct cg_agent;
struct cg_auth;
struct cg_bridge;
struct cg_config;
struct cg_registry;
struct cg_service;
struct cg_shared;

/* What the ws side works with; all borrowed, and must outlive it. */
struct cg_ws_deps {
    const struct cg_config *cfg;
    struct cg_registry *reg;
    struct cg_auth *auth;
    struct cg_bridge *bridge;
    struct cg_agent *agent;
    struct cg_service *service;
    struct cg_stream *stream;
    const char *epoch;        /* this process's identity (16 hex digits), copied */
    struct cg_shared *shared; /* --workers: the instance's shared region; NULL: none */
    uint32_t worker;          /* this worker's index in shared */
};

/* Creates the lws context on loop and starts listening. Returns 0, or -1 with an
 * error line logged. */
int cg_ws_start(struct cg_ws *w, uv_loop_t *loop, const struct cg_ws_deps *deps);
/* Closes every client with 1001 "going away"; new handshakes get 503. */
void cg_ws_close_all(struct cg_ws *w);
/* Destroys the lws context; the loop must run on for its handles to close. */
void cg_ws_stop(struct cg_ws *w);

#endif
