/* dispatch.h -- what a client asks: its messages read, limited and answered.
 *
 * A WebSocket text message is reassembled when fragmented (up to --max-message-bytes), passed
 * through the socket's token bucket (--rate-limit, --rate-burst), parsed (request.c), and
 * dispatched: subscribe, unsubscribe, list, search, history, ping. Answers that wait on Redis
 * (list and search re-read the instrument set, history reads recorded bars) are kept on
 * per-vhost wait lists, so that a client closing meanwhile is forgotten, not written to.
 * New client actions belong here. */
#ifndef CG_DISPATCH_H
#define CG_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "log.h"

struct cg_ws;
struct cg_client;

/* Per vhost. */
struct cg_dispatch {
    struct cg_list list_waits; /* list/search requests waiting for the instrument set */
    int list_inflight;         /* one SMEMBERS serves every waiting request */
    struct cg_list hist_waits; /* history requests waiting for Redis */
    struct cg_log_limit rate_log;
};

/* Per connection (embedded in struct cg_client, zeroed at ESTABLISHED). */
struct cg_dispatch_client {
    unsigned char *rx; /* reassembly of a fragmented message, NULL otherwise */
    size_t rxlen;
    double tokens; /* the token bucket */
    uint64_t refill_ms;
    uint32_t strikes; /* messages refused in this strike window */
    uint64_t strike_start_ms;
};

void cg_dispatch_init(struct cg_dispatch *d);
/* A connection is established: its bucket starts full. */
void cg_dispatch_open(struct cg_ws *w, struct cg_client *c);
/* LWS_CALLBACK_RECEIVE: len bytes of a message of c. Returns 0, or -1 to close the connection
 * (the close reason is set: binary frame 1003, message too big 1009). */
int cg_dispatch_receive(struct cg_client *c, const unsigned char *in, size_t len);
/* c is closing: answers still waiting for Redis are dropped instead of sent, and its
 * reassembly buffer is freed. */
void cg_dispatch_close(struct cg_ws *w, struct cg_client *c);

#endif
