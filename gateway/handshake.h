/* handshake.h -- the WebSocket upgrade: who may connect, checked before the 101.
 *
 * At LWS_CALLBACK_HTTP_CONFIRM_UPGRADE a request is checked in the order a refusal is
 * cheapest: shutting down, path, Origin, the client address's connection count and handshake
 * rate, the sessionid cookie, the session in Redis (auth.c), the user's socket count. A refusal
 * is an HTTP status (401/403/404/429/503), never a 101. An accepted upgrade's session and
 * address wait in a stash keyed by the wsi until ESTABLISHED, where the connection is set up;
 * an upgrade that never gets there (bad key, peer gone) is swept after a few seconds. */
#ifndef CG_HANDSHAKE_H
#define CG_HANDSHAKE_H

#include "auth.h"

struct lws;
struct cg_ws;
struct cg_client;

/* Starts the module's state and its sweep timer on w's loop (w->cfg set). Returns 0 or -1. */
int cg_handshake_init(struct cg_ws *w);
/* Releases every stashed session and closes the timer; the loop must run on to close it. */
void cg_handshake_finish(struct cg_ws *w);

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 to accept, 1 when refused (the status is sent), -1 to
 * drop the connection. */
int cg_handshake_confirm(struct cg_ws *w, struct lws *wsi);
/* LWS_CALLBACK_ESTABLISHED: sets up c (lws's zeroed per-session data) from the stash, joins
 * the registry. Returns 0, or -1 to drop the connection. */
int cg_handshake_established(struct cg_ws *w, struct cg_client *c, struct lws *wsi);
/* A connection set up by cg_handshake_established is gone: its address and session go. */
void cg_handshake_closed(struct cg_ws *w, struct cg_client *c);

/* The session named by the request's sessionid cookie, looked up like a handshake's (for
 * plain HTTP requests). On CG_AUTH_OK *e holds a reference (cg_auth_release it); otherwise *e
 * is NULL. A missing or malformed cookie is CG_AUTH_UNKNOWN. */
enum cg_auth_result cg_handshake_session(struct cg_ws *w, struct lws *wsi,
                                         struct cg_auth_entry **e);

#endif
