/* codes.c -- the names of the shared enumerations (see codes.h). */
#include "codes.h"

static const char *const errcode_names[CG_ERR__COUNT] = {
    [CG_ERR_NONE] = "none",
    [CG_ERR_BAD_JSON] = "bad_json",
    [CG_ERR_BAD_REQUEST] = "bad_request",
    [CG_ERR_UNKNOWN_ACTION] = "unknown_action",
    [CG_ERR_FORBIDDEN] = "forbidden",
    [CG_ERR_INVALID_INSTRUMENT] = "invalid_instrument",
    [CG_ERR_TOO_MANY_SUBSCRIPTIONS] = "too_many_subscriptions",
    [CG_ERR_RATE_LIMITED] = "rate_limited",
    [CG_ERR_UNKNOWN_SERVICE] = "unknown_service",
    [CG_ERR_UNAVAILABLE] = "unavailable",
};

const char *cg_errcode_name(enum cg_errcode code)
{
    return (unsigned)code < CG_ERR__COUNT ? errcode_names[code] : "bad_request";
}

const char *const cg_reject_names[CG_REJECT__COUNT] = {
    [CG_REJECT_NO_COOKIE] = "no_cookie",     [CG_REJECT_UNKNOWN_SESSION] = "unknown_session",
    [CG_REJECT_BAD_SESSION] = "bad_session", [CG_REJECT_EXPIRED] = "expired",
    [CG_REJECT_ORIGIN] = "origin",           [CG_REJECT_REDIS_DOWN] = "redis_down",
    [CG_REJECT_BAD_PATH] = "bad_path",       [CG_REJECT_IP_LIMIT] = "ip_limit",
    [CG_REJECT_IP_RATE] = "ip_rate",         [CG_REJECT_USER_LIMIT] = "user_limit",
    [CG_REJECT_SHUTDOWN] = "shutdown",
};

const char *const cg_drop_names[CG_DROP__COUNT] = {
    [CG_DROP_BAD_JSON] = "bad_json",   [CG_DROP_NOT_OBJECT] = "not_object",
    [CG_DROP_NO_TARGET] = "no_target", [CG_DROP_TOO_LARGE] = "too_large",
    [CG_DROP_BAD_SEQ] = "bad_seq",     [CG_DROP_BAD_OVERLAY] = "bad_overlay",
};

const char *const cg_link_names[CG_LINK__COUNT] = {
    [CG_LINK_PUBSUB] = "pubsub",
    [CG_LINK_COMMAND] = "command",
    [CG_LINK_INBOX] = "inbox",
    [CG_LINK_SESSION] = "session",
};

const char *const cg_reply_names[CG_REPLY__COUNT] = {
    [CG_REPLY_DELIVERED] = "delivered",
    [CG_REPLY_NO_SOCKET] = "no_socket",
    [CG_REPLY_MALFORMED] = "malformed",
};

const char *const cg_auth_peer_names[CG_AUTH_PEER__COUNT] = {
    [CG_LINK_PUBSUB] = "pubsub",   [CG_LINK_COMMAND] = "command",        [CG_LINK_INBOX] = "inbox",
    [CG_LINK_SESSION] = "session", [CG_AUTH_PEER_SENTINEL] = "sentinel",
};

const char *const cg_source_names[CG_SOURCE__COUNT] = {
    [CG_SOURCE_PUBSUB] = "pubsub",
    [CG_SOURCE_INBOX] = "inbox",
};
