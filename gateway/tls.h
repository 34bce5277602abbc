/* tls.h -- TLS for the listening port: the context options, and certificate reload (SIGHUP).
 *
 * TLS 1.2 minimum, AEAD suites with forward secrecy, ALPN http/1.1 (the upgrade needs it). A
 * reload checks the new certificate and key with OpenSSL before handing them to lws, which
 * would install a broken pair without a word. */
#ifndef CG_TLS_H
#define CG_TLS_H

#include <libwebsockets.h>

struct cg_config;

/* Sets info's TLS members from --tls-cert/--tls-key (cfg borrowed, must outlive the context);
 * leaves info untouched when TLS is off. */
void cg_tls_configure(struct lws_context_creation_info *info, const struct cg_config *cfg);
/* Reloads --tls-cert/--tls-key: new handshakes use the new certificate, open connections keep
 * theirs. Returns 0 (also when TLS is off), or -1 with the reason logged, the old certificate
 * staying in use. */
int cg_tls_reload(struct lws_context *ctx, const struct cg_config *cfg);

#endif
