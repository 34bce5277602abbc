/* client.h -- one WebSocket connection and the vhost it belongs to: their state, the batched
 * write path, and closing.
 *
 * Per-vhost state is struct cg_ws; per-connection state is struct cg_client (lws allocates it
 * as the protocol's per-session data). Both are defined here, with the parts each concern owns
 * marked, so that the concerns (handshake.c, dispatch.c, http.c) depend on this file and on
 * nothing above them; ws.c, the lws protocol callback, sits on top and calls them all.
 *
 * A client's frames are queued in its cg_outq and written once per loop turn, right after the
 * poll phase (a uv_check handle), several frames joined by "\n" per message; a socket that
 * cannot take more waits for LWS_CALLBACK_SERVER_WRITEABLE. */
#ifndef CG_CLIENT_H
#define CG_CLIENT_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "deflate.h"
#include "list.h"
#include "log.h"
#include "map.h"
#include "outq.h"
#include "pace.h"
#include "peers.h"
#include "registry.h"
#include "worker.h"

struct cg_agent;
struct cg_auth;
struct cg_auth_entry;
struct cg_bridge;
struct cg_config;
struct cg_frame;
struct cg_service;
struct cg_stream;

/* handshake.c's, per vhost. */
struct cg_handshake {
    struct cg_map stash;   /* wsi -> stashed session, CONFIRM_UPGRADE to ESTABLISHED */
    struct cg_peers peers; /* per client address: connections, handshake rate */
    uv_timer_t sweep;
};

/* dispatch.c's, per vhost. */
struct cg_dispatch {
    struct cg_list list_waits; /* list/search requests waiting for the instrument set */
    int list_inflight;         /* one SMEMBERS serves every waiting request */
    struct cg_list hist_waits; /* history requests waiting for Redis */
    struct cg_list send_waits; /* sends waiting for their push to be answered */
    struct cg_list sub_waits;  /* subscribes waiting for catch-ups or stream reads (subscribe.c) */
    struct cg_log_limit rate_log;
};

/* dispatch.c's, per connection (zeroed at ESTABLISHED). */
struct cg_dispatch_client {
    unsigned char *rx; /* reassembly of a fragmented message, NULL otherwise */
    size_t rxlen;
    double tokens; /* the token bucket */
    uint64_t refill_ms;
    uint32_t strikes; /* messages refused in this strike window */
    uint64_t strike_start_ms;
    uint64_t alive_ms; /* last time a message was reported to lws as proof of life */
};

#define CG_HTTP_CALLBACK_MOUNTS 4

/* http.c's, per vhost: lws's mount table (lws keeps pointers into it for the context's life). */
struct cg_http {
    struct lws_http_mount mounts[CG_HTTP_CALLBACK_MOUNTS + 1];
};

/* http.c's, per connection. */
struct cg_http_client {
    char *body; /* LWS_PRE headroom + len bytes, owned; NULL when nothing is to be written */
    size_t len;
};

struct cg_ws {
    struct lws_context *ctx;
    const struct cg_config *cfg; /* borrowed */
    struct cg_registry *reg;     /* borrowed */
    struct cg_auth *auth;        /* borrowed */
    struct cg_bridge *bridge;    /* borrowed */
    struct cg_agent *agent;      /* borrowed */
    struct cg_service *service;  /* borrowed */
    struct cg_stream *stream;    /* borrowed */
    uv_loop_t *loop;             /* borrowed */
    struct cg_outq_limits limits;
    unsigned char *scratch;  /* LWS_PRE + batch_max_bytes: one batched message */
    struct cg_list to_close; /* clients whose close is to start (struct cg_client) */
    uv_timer_t closer;
    struct cg_list to_flush; /* clients with queued frames to write (struct cg_client) */
    uv_check_t flusher;      /* writes them after each poll phase */
    uv_idle_t flush_soon;    /* active while to_flush is not empty: the poll does not block */
    uint64_t started_ms;
    char epoch[17]; /* this process's identity: resume (seq is per process), conn ids */
    int shutting_down;
    struct cg_handshake hs;      /* handshake.c */
    struct cg_dispatch dispatch; /* dispatch.c */
    struct cg_http http;         /* http.c */
    struct cg_worker worker;     /* worker.c: with --workers, the shared port and slot */
    struct cg_log_limit slow_log;
    struct cg_pace pace; /* max_rate: subscriptions' slots holding a frame back */
    uv_timer_t pacer;    /* fires when the earliest of them opens */
    uint64_t pace_armed; /* the time pacer is armed for; UINT64_MAX: idle */
    /* client.c's permessage-deflate: compressed batches shared by sockets (--deflate on) */
    struct cg_deflate deflate;
    struct cg_frame **batch_frames; /* the batch being written (borrowed frames): its key */
    uint32_t batch_frames_cap;
    unsigned char *inflate_buf; /* wsdeflate.c's: a compressed client message's chunk, inflated */
    size_t inflate_cap;         /* --max-message-bytes + 1 */
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
    uint8_t close_started;     /* lws has the close in hand (ours, or the peer's) */
    uint8_t want_write;        /* on to_flush, or waiting for lws's WRITEABLE */
    uint8_t shared_held;       /* handshake.c, --workers: what the shared limits count for c */
    uint8_t deflate;           /* permessage-deflate negotiated (ws.c, at ESTABLISHED) */
    uint8_t deflate_rsv1;      /* the write under way is compressed: wsdeflate.c marks it */
    uint8_t deflate_wbits;     /* the window it agreed (server_max_window_bits), 9..15 */
    struct cg_list flush_link; /* on cg_ws.to_flush */
    struct cg_list close_link; /* on cg_ws.to_close until the close starts */
    char close_reason[32];
    char peer[48];
    char
        addr[CG_PEERS_ADDR_MAX + 1]; /* the client's address (behind a trusted proxy: its header) */
    struct cg_http_client http;      /* http.c: the response of an HTTP connection */
};

/* Queues frame f for c; f is consumed (the reference is the caller's, now c's queue's). A NULL
 * f (an encoder out of memory) is ignored. A queue over its bound closes c as a slow consumer. */
void cg_client_send(struct cg_client *c, struct cg_frame *f);
/* Marks c for closing with code and reason: it gets no more frames, and the close starts from
 * a timer, outside whatever fan-out or callback the caller is in. Repeated calls are no-ops. */
void cg_client_close(struct cg_client *c, uint16_t code, const char *reason);
/* lws's WRITEABLE for c: writes one batch (or, for a closing c, starts its close). Returns 0, or
 * -1 when the write failed. */
int cg_client_writeable(struct cg_client *c);
/* The peer started the close (LWS_CALLBACK_WS_PEER_INITIATED_CLOSE): lws echoes it; nothing of
 * ours may be written after, and a close of ours not started yet is dropped. */
void cg_client_peer_closed(struct cg_client *c);
/* c is gone (LWS_CALLBACK_CLOSED): off the write and close lists, its queue freed. */
void cg_client_finish(struct cg_client *c);

/* Sets up w's write path and closer on w->loop (w->cfg set). Returns 0, or -1 out of memory. */
int cg_client_vhost_init(struct cg_ws *w);
/* Closes those handles; the loop must run on to close them. */
void cg_client_vhost_finish(struct cg_ws *w);
/* Milliseconds on the loop's clock. */
uint64_t cg_client_now_ms(const struct cg_ws *w);

/* Relay hook: offers a frame to a member's socket (see relay.h). data = cg_ws. */
void cg_client_deliver(void *data, struct cg_member *m, struct cg_frame *f, uint64_t *slot);
/* Relay hook: offers a frame to a subscription with a max_rate (see relay.h). data = cg_ws. */
void cg_client_paced(void *data, struct cg_sub *s, uint32_t kind, struct cg_frame *f);
/* Sets the max_rate of c's subscription s (PROTOCOL.md §3 subscribe): rate frames per second
 * (within CG_PACE_RATE_MIN..MAX), or 0 for none. Replaces an earlier setting and drops what it
 * held back (a snapshot or replay follows a subscribe). Returns 0, or -1 out of memory (then s
 * is not paced). */
int cg_client_pace(struct cg_client *c, struct cg_sub *s, double rate);
/* Registry hook's part: s is going, so is its pacing. data = cg_ws. */
void cg_client_unpace(struct cg_ws *w, struct cg_sub *s);
/* Auth hook: closes a socket whose session ended with 4001. data = cg_ws. */
void cg_client_revoked(void *data, struct cg_list *socket_link);

#endif
