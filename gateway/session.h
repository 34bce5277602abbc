/* session.h -- the Redis session object, its parsing, and instrument allowlists.
 *
 * A session is stored by the web application as JSON under <prefix><id>:
 *   {"user_id":"u1","instruments":["rb*","au2412"],"services":["alerts"],"exp":1767225600}
 * user_id is required; instruments and services (glob patterns) and exp (unix seconds) are
 * optional. Instrument names themselves are instrument.h's. Pure: no libwebsockets, no
 * hiredis. */
#ifndef CG_SESSION_H
#define CG_SESSION_H

#include <stddef.h>
#include <stdint.h>

#define CG_SESSION_ID_MAX 128
#define CG_SESSION_USER_MAX 128
#define CG_SESSION_PATTERNS_MAX 64

/* A parsed session. Created by cg_session_parse, freed by cg_session_destroy. */
struct cg_session {
    char user_id[CG_SESSION_USER_MAX + 1];
    int64_t exp;      /* unix seconds, when has_exp */
    int has_exp;      /* 0: the session never expires */
    size_t npatterns; /* 0 with all_instruments set = everything allowed */
    int all_instruments;
    char **patterns;
    /* services (PROTOCOL.md §16): the same, for the configured services it may send to */
    size_t nservice_patterns;
    int all_services;
    char **service_patterns;
};

enum cg_session_status {
    CG_SESSION_OK = 0,
    CG_SESSION_BAD = -1,     /* not JSON, not an object, or a field of the wrong shape */
    CG_SESSION_EXPIRED = -2, /* exp <= now */
    CG_SESSION_NOMEM = -3,
};

/* Parses the session JSON (len bytes). On CG_SESSION_OK *out is a new session owned
 * by the caller. On failure *out is NULL and, for CG_SESSION_BAD, why (if non-NULL,
 * whysz bytes) says what is wrong without quoting the input. */
enum cg_session_status cg_session_parse(const char *json, size_t len, int64_t now,
                                        struct cg_session **out, char *why, size_t whysz);
void cg_session_destroy(struct cg_session *s);

/* 1 if the session may see instrument name, else 0. */
int cg_session_allows(const struct cg_session *s, const char *name);
/* 1 if the session may send to service name, else 0. */
int cg_session_allows_service(const struct cg_session *s, const char *name);

/* 1 if id is a well-formed session id: [A-Za-z0-9_-]{1,128} (what a cookie may carry
 * before we use it to build a Redis key). */
int cg_session_id_valid(const char *id, size_t len);

#endif
