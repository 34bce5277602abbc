/* subscribe.h -- a subscribe's answer: resume decisions, the reply, then replays and snapshots.
 *
 * After the registry took the subscriptions, each instrument named in `since` is recovered from
 * this process's ring (its own epoch, or the shared epoch for a shared instrument), from the
 * instrument's Redis stream (shared epoch, the ring no longer holding the range), or not at all
 * (a snapshot). The reply waits while an instrument is being caught up from its stream or a
 * stream is being read for this socket: meanwhile the subscriptions are held (no live frames)
 * and the socket's further messages wait unread (lws rx flow control), so that every answer
 * keeps its request's order. PROTOCOL.md §15 and §19. */
#ifndef CG_SUBSCRIBE_H
#define CG_SUBSCRIBE_H

struct cg_ws;
struct cg_client;
struct cg_request;

/* req's names are allowed for c's session (checked by dispatch.c); req is borrowed. */
void cg_subscribe_handle(struct cg_client *c, const struct cg_request *req);
/* c is closing: its waiting subscribe (if any) is answered to nobody. */
void cg_subscribe_close(struct cg_ws *w, struct cg_client *c);

#endif
