/* request.h -- parsing and validation of client->gateway messages (proto/PROTOCOL.md).
 *
 * One text message holds one JSON object with an "action". Parsing checks, in this
 * order, the shape and types of the whole request (bad_request), then its instrument
 * names (invalid_instrument), then how many it names (too_many_subscriptions), and
 * yields either a request or an error code + human message + the request id to echo.
 * What needs the session or the socket (allowlist, subscription limit) is the
 * caller's, after a successful parse. Pure (jansson only). */
#ifndef CG_REQUEST_H
#define CG_REQUEST_H

#include <jansson.h>
#include <stddef.h>

#include "codes.h"
#include "config.h"
#include "instrument.h"

#define CG_REQUEST_ID_MAX 64       /* longest string id */
#define CG_REQUEST_ID_JSON_MAX 400 /* its JSON encoding, escapes included */
#define CG_REQUEST_NAMES_MAX 1024  /* names in one request, before the per-socket limit */
#define CG_REQUEST_PATTERN_MAX 32  /* search pattern, in characters (code points) */
/* ...and in bytes: at most 4 per character in UTF-8. Copy req->pattern by its sizeof. */
#define CG_REQUEST_PATTERN_BYTES (CG_REQUEST_PATTERN_MAX * 4)
#define CG_REQUEST_LIST_PAGE 10000 /* names in one instruments frame; "more" when others follow */

enum cg_action {
    CG_ACTION_SUBSCRIBE,
    CG_ACTION_UNSUBSCRIBE,
    CG_ACTION_LIST,
    CG_ACTION_SEARCH,
    CG_ACTION_PING,
    CG_ACTION_HISTORY,
    CG_ACTION_SEND,
};

struct cg_request {
    enum cg_action action;
    char id_json[CG_REQUEST_ID_JSON_MAX + 1]; /* "" when the request had no id */
    const char **names;                       /* subscribe/unsubscribe: borrowed from root */
    size_t nnames;
    char pattern[CG_REQUEST_PATTERN_BYTES + 1]; /* search: as sent (valid UTF-8) */
    char after[CG_INSTRUMENT_MAX + 1]; /* list/search: only names > after (strcmp); "" = all */
    uint32_t intervals;                /* subscribe: bit i = configured interval i */
    int has_intervals;
    int overlays;          /* subscribe: "overlays":true (PROTOCOL.md §17) */
    double max_rate;       /* subscribe: "max_rate", frames per second; 0 when absent */
    json_t *since;         /* subscribe: {name: seq}, borrowed from root, or NULL */
    char epoch[17];        /* subscribe: the epoch since refers to, lower-cased; "" if none */
    char shared_epoch[17]; /* subscribe: the shared epoch (PROTOCOL.md §19), likewise */
    char instrument[CG_INSTRUMENT_MAX + 1]; /* history */
    uint32_t interval;                      /* history: configured interval index */
    int64_t before;                         /* history: bars with t < before; INT64_MAX = all */
    uint32_t limit;                         /* history: already capped to history_max */
    uint32_t service;                       /* send: index in cfg->services */
    json_t *data;                           /* send: borrowed from root */
    json_t *root;                           /* owned; released by cg_request_finish */
};

struct cg_request_error {
    enum cg_errcode code;
    char message[160];
};

/* Parses len bytes of text (cfg: the interval set and history cap). Returns 0 with *req filled
 * (release it with cg_request_finish), or -1 with *err filled; req->id_json is set in both cases
 * whenever a well-formed id was present, so the error can echo it. */
int cg_request_parse(const char *text, size_t len, const struct cg_config *cfg,
                     struct cg_request *req, struct cg_request_error *err);
/* An id as the protocol allows it (PROTOCOL.md §5: an integer, or a string of at most 64
 * characters) into out as compact JSON text; "" when id is NULL. Returns 0, or -1 (out "")
 * when id is of another kind. Used for the ids of requests and of services' replies. */
int cg_request_id_json(json_t *id, char out[CG_REQUEST_ID_JSON_MAX + 1]);
/* The seq a subscribe's "since" names for instrument name: 1 and *seq, or 0. */
int cg_request_since(const struct cg_request *req, const char *name, uint64_t *seq);
void cg_request_finish(struct cg_request *req);

/* The id as JSON text for frame encoders, or NULL when the request had none. */
static inline const char *cg_request_id(const struct cg_request *req)
{
    return req->id_json[0] ? req->id_json : NULL;
}

#endif
