/* http.h -- the plain HTTP side of the listening port: /healthz, /metrics, /session,
 * /dev/login, and the static web/ files.
 *
 * The static files are lws's own file mount; the rest are callback mounts answered here with a
 * small body built at once and written when lws says the socket is writeable. */
#ifndef CG_HTTP_H
#define CG_HTTP_H

#include <libwebsockets.h>

struct cg_ws;
struct cg_client;
struct cg_http;

/* Fills h's mount table, the static files served from web_root (borrowed: it must outlive the
 * lws context). Returns the first mount, for lws_context_creation_info.mounts. */
const struct lws_http_mount *cg_http_mounts(struct cg_http *h, const char *web_root);

/* LWS_CALLBACK_HTTP on a callback mount. Returns what the lws callback returns. */
int cg_http_request(struct cg_ws *w, struct lws *wsi, struct cg_client *c);
/* LWS_CALLBACK_HTTP_WRITEABLE: writes the pending body, ends the transaction. */
int cg_http_writeable(struct lws *wsi, struct cg_client *c);
/* The HTTP transaction is over (or the connection upgraded or closed): frees the body. */
void cg_http_done(struct cg_client *c);

#endif
