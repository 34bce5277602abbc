/* cookie.h -- exact-name lookup of one cookie in a Cookie request header.
 *
 * Written here rather than using lws_http_cookie_get, which logs the header and
 * matches names by substring ("xsessionid" would match "sessionid"). */
#ifndef CG_COOKIE_H
#define CG_COOKIE_H

#include <stddef.h>

/* Finds the first cookie called exactly name in the header (len bytes, need not be
 * NUL-terminated) and copies its value, without surrounding quotes, into out
 * (NUL-terminated). Returns the value length, -1 if absent, -2 if the value does
 * not fit in outsz - 1 bytes. Never logs. */
int cg_cookie_get(const char *header, size_t len, const char *name, char *out, size_t outsz);

#endif
