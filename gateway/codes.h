/* codes.h -- the enumerations several modules share, and their names on the wire and in
 * /metrics: client error codes, handshake rejections, dropped input, Redis links, sources.
 *
 * One home for each table, so that a module which only counts (metrics, relay, bridge) does not
 * depend on the one that produces the code (the client-request parser, the handshake). Pure. */
#ifndef CG_CODES_H
#define CG_CODES_H

/* Error codes, as sent in error frames (proto/PROTOCOL.md §6). */
enum cg_errcode {
    CG_ERR_NONE = 0,
    CG_ERR_BAD_JSON,
    CG_ERR_BAD_REQUEST,
    CG_ERR_UNKNOWN_ACTION,
    CG_ERR_FORBIDDEN,
    CG_ERR_INVALID_INSTRUMENT,
    CG_ERR_TOO_MANY_SUBSCRIPTIONS,
    CG_ERR_RATE_LIMITED,
    CG_ERR_UNKNOWN_SERVICE, /* send: no such --service */
    CG_ERR_UNAVAILABLE,     /* send: Redis down, or the service's list is full */
    CG_ERR__COUNT
};

/* Why a WebSocket upgrade was refused. */
enum cg_reject_reason {
    CG_REJECT_NO_COOKIE,
    CG_REJECT_UNKNOWN_SESSION,
    CG_REJECT_BAD_SESSION,
    CG_REJECT_EXPIRED,
    CG_REJECT_ORIGIN,
    CG_REJECT_REDIS_DOWN,
    CG_REJECT_BAD_PATH,
    CG_REJECT_IP_LIMIT,   /* the address holds --max-conns-per-ip connections */
    CG_REJECT_IP_RATE,    /* the address is over --handshake-rate-per-ip */
    CG_REJECT_USER_LIMIT, /* the user holds --max-sockets-per-user sockets */
    CG_REJECT_SHUTDOWN,
    CG_REJECT__COUNT
};

/* Why a published payload was dropped (PROTOCOL.md §11.6). */
enum cg_drop_reason {
    CG_DROP_BAD_JSON,
    CG_DROP_NOT_OBJECT,
    CG_DROP_NO_TARGET,
    CG_DROP_TOO_LARGE,
    CG_DROP_BAD_SEQ,     /* a "#<seq> " header that is not one (PROTOCOL.md §19) */
    CG_DROP_BAD_OVERLAY, /* an overlay operation that is malformed or was refused (§17) */
    CG_DROP__COUNT
};

/* The Redis connections: the bridge's asynchronous links first, then auth's synchronous one. */
enum cg_link { CG_LINK_PUBSUB, CG_LINK_COMMAND, CG_LINK_INBOX, CG_LINK_SESSION, CG_LINK__COUNT };
#define CG_LINK_BRIDGE_COUNT (CG_LINK_INBOX + 1) /* links the bridge owns */

/* What became of a service's reply (PROTOCOL.md §16.2). */
enum cg_reply_result {
    CG_REPLY_DELIVERED,
    CG_REPLY_NO_SOCKET, /* the socket has gone, or the conn is another process's */
    CG_REPLY_MALFORMED, /* not an object with a service, a conn and data */
    CG_REPLY__COUNT
};

/* The connections AUTH is sent on, as counted in chartgate_redis_auth_failures_total: every
 * link, then the sentinels (address queries and the +switch-master watch). */
#define CG_AUTH_PEER_SENTINEL CG_LINK__COUNT
#define CG_AUTH_PEER__COUNT (CG_LINK__COUNT + 1)

/* Where a published payload came from. */
enum cg_source { CG_SOURCE_PUBSUB, CG_SOURCE_INBOX, CG_SOURCE__COUNT };

/* The name of code as sent in error frames; "bad_request" for a value out of range. */
const char *cg_errcode_name(enum cg_errcode code);

extern const char *const cg_reject_names[CG_REJECT__COUNT];
extern const char *const cg_drop_names[CG_DROP__COUNT];
extern const char *const cg_link_names[CG_LINK__COUNT];
extern const char *const cg_auth_peer_names[CG_AUTH_PEER__COUNT];
extern const char *const cg_source_names[CG_SOURCE__COUNT];
extern const char *const cg_reply_names[CG_REPLY__COUNT];

#endif
