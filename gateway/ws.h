/* ws.h -- the libwebsockets side: handshake auth, client messages, writes, HTTP.
 *
 * One lws protocol serves both HTTP (static web/, /healthz, /metrics) and the
 * WebSocket endpoint /ws, so that clients need no subprotocol. Per-vhost state is
 * struct cg_ws; per-connection state is struct cg_client (lws allocates it). A
 * client's frames are queued in its cg_outq and written once per loop turn, right
 * after the poll phase (a uv_check handle), several frames joined by "\n" per
 * message; a socket that cannot take more waits for LWS_CALLBACK_SERVER_WRITEABLE. */
#ifndef CG_WS_H
#define CG_WS_H

#include <libwebsockets.h>

#include "agent.h"
#include "auth.h"
#include "bridge.h"
#include "config.h"
#include "outq.h"
#include "peers.h"
#include "registry.h"
#include "relay.h"

_Static_assert(CG_FRAME_PRE >= LWS_PRE, "frame headroom must fit the lws header");

struct cg_ws {
    struct lws_context *ctx;
    const struct cg_config *cfg; /* borrowed */
    struct cg_registry *reg;     /* borrowed */
    struct cg_auth *auth;        /* borrowed */
    struct cg_bridge *bridge;    /* borrowed */
    struct cg_agent *agent;      /* borrowed */
    uv_loop_t *loop;             /* borrowed */
    struct cg_outq_limits limits;
    unsigned char *scratch;    /* LWS_PRE + batch_max_bytes: one batched message */
    struct cg_map stash;       /* wsi -> authenticated entry, from CONFIRM_UPGRADE to ESTABLISHED */
    struct cg_list list_waits; /* list/search requests waiting for the instrument set */
    int list_inflight;         /* one SMEMBERS serves every waiting request */
    struct cg_list hist_waits; /* history requests waiting for Redis */
    uv_timer_t sweep;
    struct cg_list to_close; /* clients whose close is to start (struct cg_client) */
    uv_timer_t closer;
    struct cg_list to_flush; /* clients with queued frames to write (struct cg_client) */
    uv_check_t flusher;      /* writes them after each poll phase */
    uv_idle_t flush_soon;    /* active while to_flush is not empty: the poll does not block */
    uint64_t started_ms;
    char epoch[17];        /* this process's identity for resume (seq is per process) */
    struct cg_peers peers; /* per client address: connections, handshake rate */
    int shutting_down;
    struct cg_log_limit slow_log, rate_log;
};

/* Creates the lws context on loop and starts listening. Returns 0, or -1 with an
 * error line logged. All pointers are borrowed and must outlive the ws module. */
int cg_ws_start(struct cg_ws *w, uv_loop_t *loop, const struct cg_config *cfg,
                struct cg_registry *reg, struct cg_auth *auth, struct cg_bridge *bridge,
                struct cg_agent *agent);
/* Closes every client with 1001 "going away"; new handshakes get 503. */
void cg_ws_close_all(struct cg_ws *w);
/* Reloads --tls-cert/--tls-key (SIGHUP): new handshakes use the new certificate,
 * open connections keep theirs. Returns 0, or -1 with the reason logged (the old
 * certificate stays in use). */
int cg_ws_reload_tls(struct cg_ws *w);
/* Destroys the lws context; the loop must run on for its handles to close. */
void cg_ws_stop(struct cg_ws *w);

/* Relay hook: offers a frame to a member's socket (see relay.h). data = cg_ws. */
void cg_ws_deliver(void *data, struct cg_member *m, struct cg_frame *f, uint64_t *slot);
/* Auth hook: closes a socket whose session ended with 4001. data = cg_ws. */
void cg_ws_revoked(void *data, struct cg_list *socket_link);

#endif
