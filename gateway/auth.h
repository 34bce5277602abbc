/* auth.h -- session authentication at the handshake, caching, and revocation.
 *
 * libwebsockets 4.1 cannot defer an upgrade, so a handshake's session lookup is a
 * synchronous GET on a dedicated hiredis connection with a short timeout (a link
 * that just failed answers "down" at once for a second, so a reconnect storm while
 * Redis is away costs nothing). Looked-up sessions are kept in one table: entries
 * with sockets are "live" and re-checked every --session-check-s over the bridge's
 * command link (deleted, malformed or expired: every socket on it is revoked);
 * entries without sockets serve as the positive cache for --session-cache-ms.
 * Session ids appear in no log: cg_auth_entry.tag is a short SHA-256 prefix.
 *
 * The session link connects to the master the sentinel module names and sends AUTH first
 * (then ROLE with sentinels, then SELECT), on every new connection. After a failure it is
 * held off with exponential back-off; an AUTH refusal is logged once a minute at most and is
 * not retried early because the bridge is up (SIGHUP does: cg_auth_retry_now).
 *
 * With --redis-cluster the session key's master comes from the bridge's slot map, and a MOVED
 * or ASK answer is followed once; one link per master is kept (CG_AUTH_POOL). */
#ifndef CG_AUTH_H
#define CG_AUTH_H

#include <hiredis/hiredis.h>
#include <uv.h>

#include "bridge.h"
#include "config.h"
#include "list.h"
#include "log.h"
#include "map.h"
#include "sentinel.h"
#include "session.h"

#define CG_AUTH_POOL 8 /* idle session links to other cluster masters */

struct cg_auth_entry {
    struct cg_map_node node;
    uint32_t refs; /* sockets, handshakes in flight, checks in flight */
    uint32_t nsockets;
    struct cg_list sockets;     /* links owned by the WebSocket layer */
    struct cg_session *session; /* owned */
    uint64_t cached_until_ms;
    int revoked;
    int checking;
    char tag[9];
    char sid[CG_SESSION_ID_MAX + 1];
};

enum cg_auth_result {
    CG_AUTH_OK = 0,
    CG_AUTH_UNKNOWN = -1, /* no such session */
    CG_AUTH_BAD = -2,     /* malformed session JSON */
    CG_AUTH_EXPIRED = -3,
    CG_AUTH_DOWN = -4, /* Redis unreachable or too slow: fail closed */
};

struct cg_auth_hooks {
    /* Called for each socket link of a revoked entry; the callee must unlink it
     * (cg_auth_detach) now or later. */
    void (*revoked)(void *data, struct cg_list *socket_link);
    void *data;
};

struct cg_auth {
    const struct cg_config *cfg;  /* borrowed */
    uv_loop_t *loop;              /* borrowed */
    struct cg_bridge *bridge;     /* borrowed */
    struct cg_sentinel *sentinel; /* borrowed: where the master is */
    struct cg_auth_hooks hooks;
    redisContext *rc;
    char host[128]; /* the address rc is connected to */
    uint32_t port;
    uint64_t down_until_ms;
    uint32_t hold_ms; /* the next hold after a failure (exponential back-off) */
    int auth_refused; /* the last attempt failed AUTH: no early retry */
    int ever_up;
    struct cg_log_limit fail_log, auth_log;
    /* Cluster mode: sessions live on every master, so the link in use (rc) is the one to the
     * master of the key looked up; links to other masters wait here (at most CG_AUTH_POOL, the
     * oldest closed first) and want_host/port is where the next connect goes. */
    struct {
        redisContext *rc;
        char host[128];
        uint32_t port;
    } pool[CG_AUTH_POOL];
    char want_host[128];
    uint32_t want_port;
    struct cg_map entries;
    uv_timer_t check;
};

/* Initialises a (pointers borrowed, hooks copied). Cannot fail: the session link connects
 * on first use and reconnects by itself. */
void cg_auth_init(struct cg_auth *a, uv_loop_t *loop, const struct cg_config *cfg,
                  struct cg_bridge *bridge, struct cg_sentinel *sentinel,
                  const struct cg_auth_hooks *hooks);
/* Sentinel hook (through main): a session link to another address than the master's is
 * closed and the next lookup connects to the master. */
void cg_auth_master_resolved(struct cg_auth *a, int changed);
/* The session link may connect again at once (SIGHUP: the password file was re-read). */
void cg_auth_retry_now(struct cg_auth *a);
/* Frees every entry; sockets must have been detached. Closes the timer handle. */
void cg_auth_finish(struct cg_auth *a);

/* Authenticates session id sid (already validated by cg_session_id_valid). On
 * CG_AUTH_OK *out is an entry with one reference held for the caller. */
enum cg_auth_result cg_auth_lookup(struct cg_auth *a, const char *sid, struct cg_auth_entry **out);
/* Drops a reference taken by cg_auth_lookup (NULL is a no-op). */
void cg_auth_release(struct cg_auth *a, struct cg_auth_entry *e);
/* Links a socket to the entry (the socket's reference is the lookup's). */
void cg_auth_attach(struct cg_auth_entry *e, struct cg_list *socket_link);
/* Unlinks the socket and drops its reference. */
void cg_auth_detach(struct cg_auth *a, struct cg_auth_entry *e, struct cg_list *socket_link);

int cg_auth_up(const struct cg_auth *a);

/* DEVELOPMENT ONLY (--dev-login): creates a session for user_id expiring in ttl_s,
 * with a 128-bit random id (OpenSSL RAND_bytes) written as 32 hex characters to
 * sid (>= 33 bytes). Synchronous, like the lookup. Returns 0 or -1. */
int cg_auth_create(struct cg_auth *a, const char *user_id, uint32_t ttl_s, char *sid);
/* Writes a short non-reversible tag of sid (8 hex chars) for logs. */
void cg_auth_tag(const char *sid, char out[9]);

#endif
