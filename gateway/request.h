/* request.h -- parsing and validation of client->gateway messages (proto/PROTOCOL.md).
 *
 * One text message holds one JSON object with an "action". Parsing checks the
 * shape, the id, and the instrument names, and yields either a request or an
 * error code + human message + the request id to echo. Pure (jansson only). */
#ifndef CG_REQUEST_H
#define CG_REQUEST_H

#include <jansson.h>
#include <stddef.h>

#include "session.h"

#define CG_REQUEST_ID_MAX 64       /* longest string id */
#define CG_REQUEST_ID_JSON_MAX 400 /* its JSON encoding, escapes included */
#define CG_REQUEST_NAMES_MAX 1024  /* names in one request, before the per-socket limit */

enum cg_action {
    CG_ACTION_SUBSCRIBE,
    CG_ACTION_UNSUBSCRIBE,
    CG_ACTION_LIST,
    CG_ACTION_SEARCH,
    CG_ACTION_PING,
};

/* Error codes, as sent in error frames. */
enum cg_errcode {
    CG_ERR_NONE = 0,
    CG_ERR_BAD_JSON,
    CG_ERR_BAD_REQUEST,
    CG_ERR_UNKNOWN_ACTION,
    CG_ERR_FORBIDDEN,
    CG_ERR_INVALID_INSTRUMENT,
    CG_ERR_TOO_MANY_SUBSCRIPTIONS,
    CG_ERR_RATE_LIMITED,
    CG_ERR__COUNT
};

const char *cg_errcode_name(enum cg_errcode code);

struct cg_request {
    enum cg_action action;
    char id_json[CG_REQUEST_ID_JSON_MAX + 1]; /* "" when the request had no id */
    const char **names;                       /* subscribe/unsubscribe: borrowed from root */
    size_t nnames;
    char pattern[CG_INSTRUMENT_MAX + 1]; /* search */
    json_t *root;                        /* owned; released by cg_request_finish */
};

struct cg_request_error {
    enum cg_errcode code;
    char message[160];
};

/* Parses len bytes of text. Returns 0 with *req filled (release it with
 * cg_request_finish), or -1 with *err filled; req->id_json is set in both cases
 * whenever a well-formed id was present, so the error can echo it. */
int cg_request_parse(const char *text, size_t len, struct cg_request *req,
                     struct cg_request_error *err);
void cg_request_finish(struct cg_request *req);

/* The id as JSON text for frame encoders, or NULL when the request had none. */
static inline const char *cg_request_id(const struct cg_request *req)
{
    return req->id_json[0] ? req->id_json : NULL;
}

#endif
