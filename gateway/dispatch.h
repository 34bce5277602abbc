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

struct cg_ws;
struct cg_client;
struct cg_dispatch;

void cg_dispatch_init(struct cg_dispatch *d);
/* A connection is established: its bucket starts full. */
void cg_dispatch_open(struct cg_ws *w, struct cg_client *c);
/* LWS_CALLBACK_RECEIVE: len bytes of a message of c. Returns 0, or -1 to drop the connection
 * (out of memory); a binary frame (1003) or a message too big (1009) starts a polite close. */
int cg_dispatch_receive(struct cg_client *c, const unsigned char *in, size_t len);
/* c is closing: answers still waiting for Redis are dropped instead of sent, and its
 * reassembly buffer is freed. */
void cg_dispatch_close(struct cg_ws *w, struct cg_client *c);

#endif
