/* request.c -- client message parsing and validation. */
#include "request.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pace.h"

static int fail(struct cg_request_error *err, enum cg_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct cg_request_error *err, enum cg_errcode code, const char *fmt, ...)
{
    va_list ap;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    /* jansson quotes the offending token: keep the message plain ASCII so a
     * truncated multibyte sequence can never make the error frame invalid UTF-8. */
    for (char *c = err->message; *c; c++)
        if ((unsigned char)*c >= 0x80 || (unsigned char)*c < 0x20)
            *c = '?';
    return -1;
}

/* Characters (code points) of valid UTF-8, as JSON Schema's maxLength counts them. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/* Copies a valid id's JSON text into req; returns -1 for an id of the wrong shape. */
int cg_request_id_json(json_t *id, char out[CG_REQUEST_ID_JSON_MAX + 1])
{
    out[0] = 0;
    if (!id)
        return 0;
    if (!(json_is_integer(id) ||
          (json_is_string(id) &&
           utf8_chars(json_string_value(id), json_string_length(id)) <= CG_REQUEST_ID_MAX)))
        return -1;
    size_t n = json_dumpb(id, out, CG_REQUEST_ID_JSON_MAX, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!n || n > CG_REQUEST_ID_JSON_MAX) {
        out[0] = 0;
        return -1;
    }
    out[n] = 0;
    return 0;
}

static int take_id(json_t *id, struct cg_request *req)
{
    return cg_request_id_json(id, req->id_json);
}

/* The shape of "instruments": a non-empty array of strings (check 1 of PROTOCOL.md 3). */
static int check_names_shape(json_t *arr, struct cg_request_error *err)
{
    if (!json_is_array(arr) || !json_array_size(arr))
        return fail(err, CG_ERR_BAD_REQUEST, "\"instruments\" must be a non-empty array of names");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            return fail(err, CG_ERR_BAD_REQUEST, "\"instruments\"[%zu] is not a string", i);
    }
    return 0;
}

/* The names themselves, then how many there are (checks 2 and 3), only once the whole
 * request is known to be well-formed: a request wrong in several ways is answered with
 * the first failing check in PROTOCOL.md's order, shape before names before counts. */
static int take_names(json_t *arr, struct cg_request *req, struct cg_request_error *err)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (!cg_instrument_valid(s, len) || strlen(s) != len)
            return fail(err, CG_ERR_INVALID_INSTRUMENT,
                        "\"instruments\"[%zu] is not a valid instrument name "
                        "([A-Za-z0-9._-], 1 to 32 characters)",
                        i);
    }
    if (json_array_size(arr) > CG_REQUEST_NAMES_MAX)
        return fail(err, CG_ERR_TOO_MANY_SUBSCRIPTIONS, "more than %d instruments in one request",
                    CG_REQUEST_NAMES_MAX);
    req->names = calloc(json_array_size(arr), sizeof(*req->names));
    if (!req->names)
        return fail(err, CG_ERR_BAD_REQUEST, "out of memory");
    json_array_foreach(arr, i, v)
    {
        req->names[req->nnames++] = json_string_value(v);
    }
    return 0;
}

static int take_interval(json_t *v, const struct cg_config *cfg, uint32_t *index,
                         struct cg_request_error *err)
{
    int i = json_is_string(v) ? cg_config_interval(cfg, json_string_value(v)) : -1;
    if (i < 0) {
        char shown[16];
        snprintf(shown, sizeof(shown), "%.8s", json_is_string(v) ? json_string_value(v) : "?");
        return fail(err, CG_ERR_BAD_REQUEST, "unknown interval \"%s\" (this gateway has %s)", shown,
                    cfg->intervals_text);
    }
    *index = (uint32_t)i;
    return 0;
}

/* An optional epoch member (16 hex digits) into out, lower-cased: the gateway sends lowercase, a
 * client that upper-cased it means the same epoch. out stays "" when the member is absent. */
static int take_epoch(json_t *root, const char *key, char out[17], struct cg_request_error *err)
{
    json_t *epoch = json_object_get(root, key);
    if (!epoch)
        return 0;
    const char *e = json_is_string(epoch) ? json_string_value(epoch) : "";
    if (!json_is_string(epoch) || json_string_length(epoch) != 16 ||
        strspn(e, "0123456789abcdefABCDEF") != 16) {
        return fail(err, CG_ERR_BAD_REQUEST, "\"%s\" must be 16 hex digits", key);
    }
    for (int i = 0; i < 16; i++)
        out[i] = (char)tolower((unsigned char)e[i]);
    out[16] = 0;
    return 0;
}

/* subscribe's optional "intervals", "since", "epoch" and "shared_epoch". */
static int take_chart_options(struct cg_request *req, const struct cg_config *cfg,
                              struct cg_request_error *err)
{
    json_t *iv = json_object_get(req->root, "intervals");
    if (iv) {
        if (!json_is_array(iv))
            return fail(err, CG_ERR_BAD_REQUEST, "\"intervals\" must be an array of intervals");
        size_t i;
        json_t *v;
        json_array_foreach(iv, i, v)
        {
            uint32_t k = 0; /* gcc -O3 cannot see take_interval sets it on 0 */
            if (take_interval(v, cfg, &k, err))
                return -1;
            req->intervals |= 1u << k;
        }
        req->has_intervals = 1;
    }
    json_t *ov = json_object_get(req->root, "overlays");
    if (ov && !json_is_boolean(ov))
        return fail(err, CG_ERR_BAD_REQUEST, "\"overlays\" must be true or false");
    req->overlays = json_is_true(ov);
    json_t *mr = json_object_get(req->root, "max_rate");
    if (mr) {
        double rate = json_is_number(mr) ? json_number_value(mr) : 0;
        if (!(rate >= CG_PACE_RATE_MIN && rate <= CG_PACE_RATE_MAX))
            return fail(err, CG_ERR_BAD_REQUEST,
                        "\"max_rate\" must be a number from 0.1 to 1000 (frames per second)");
        req->max_rate = rate;
    }
    json_t *since = json_object_get(req->root, "since");
    if (since) {
        const char *k;
        json_t *v;
        if (!json_is_object(since))
            return fail(err, CG_ERR_BAD_REQUEST, "\"since\" must be an object of seq numbers");
        json_object_foreach(since, k, v)
        {
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                return fail(err, CG_ERR_BAD_REQUEST,
                            "\"since\" values must be integers >= 0 (the last seq seen)");
        }
        req->since = since;
    }
    if (take_epoch(req->root, "epoch", req->epoch, err) ||
        take_epoch(req->root, "shared_epoch", req->shared_epoch, err))
        return -1;
    return 0;
}

static int take_history(struct cg_request *req, const struct cg_config *cfg,
                        struct cg_request_error *err)
{
    /* The shape of the whole request first, then the name, as for subscribe. */
    json_t *ins = json_object_get(req->root, "instrument");
    if (!json_is_string(ins))
        return fail(err, CG_ERR_BAD_REQUEST, "\"instrument\" (a string) is required");
    if (take_interval(json_object_get(req->root, "interval"), cfg, &req->interval, err))
        return -1;
    json_t *before = json_object_get(req->root, "before");
    if (before && !json_is_integer(before))
        return fail(err, CG_ERR_BAD_REQUEST, "\"before\" must be an integer (epoch ms)");
    req->before = before ? (int64_t)json_integer_value(before) : INT64_MAX;
    json_t *limit = json_object_get(req->root, "limit");
    if (limit && (!json_is_integer(limit) || json_integer_value(limit) < 1))
        return fail(err, CG_ERR_BAD_REQUEST, "\"limit\" must be an integer >= 1");
    json_int_t l = limit ? json_integer_value(limit) : 500;
    req->limit = l > (json_int_t)cfg->history_max ? cfg->history_max : (uint32_t)l;
    if (!cg_instrument_valid(json_string_value(ins), json_string_length(ins)) ||
        strlen(json_string_value(ins)) != json_string_length(ins))
        return fail(err, CG_ERR_INVALID_INSTRUMENT,
                    "\"instrument\" is not a valid instrument name");
    memcpy(req->instrument, json_string_value(ins), json_string_length(ins) + 1);
    return 0;
}

/* list's and search's optional "after": where the previous page ended. Any string of at
 * most CG_INSTRUMENT_MAX bytes: it is compared with names, not looked up. */
static int take_after(struct cg_request *req, struct cg_request_error *err)
{
    json_t *after = json_object_get(req->root, "after");
    if (!after)
        return 0;
    if (!json_is_string(after) || json_string_length(after) > CG_INSTRUMENT_MAX ||
        strlen(json_string_value(after)) != json_string_length(after))
        return fail(err, CG_ERR_BAD_REQUEST,
                    "\"after\" must be a string of at most 32 bytes (the last name received)");
    memcpy(req->after, json_string_value(after), json_string_length(after) + 1);
    return 0;
}

/* search's "pattern": at most CG_REQUEST_PATTERN_MAX characters. jansson hands over valid
 * UTF-8, so that is at most CG_REQUEST_PATTERN_BYTES bytes; the byte bound is checked all
 * the same, as it is what keeps the copy inside req->pattern. */
static int take_pattern(struct cg_request *req, struct cg_request_error *err)
{
    json_t *p = json_object_get(req->root, "pattern");
    const char *s = json_is_string(p) ? json_string_value(p) : NULL;
    size_t len = s ? json_string_length(p) : 0;
    if (!s || len > CG_REQUEST_PATTERN_BYTES || utf8_chars(s, len) > CG_REQUEST_PATTERN_MAX ||
        strlen(s) != len)
        return fail(err, CG_ERR_BAD_REQUEST,
                    "\"pattern\" must be a string of at most 32 characters");
    memcpy(req->pattern, s, len + 1);
    return 0;
}

int cg_request_since(const struct cg_request *req, const char *name, uint64_t *seq)
{
    json_t *v = req->since ? json_object_get(req->since, name) : NULL;
    if (!v)
        return 0;
    *seq = (uint64_t)json_integer_value(v);
    return 1;
}

/* send: "service" a string and "data" present (bad_request), then the service configured
 * (unknown_service). The session's allowlist is the caller's. */
static int take_send(struct cg_request *req, const struct cg_config *cfg,
                     struct cg_request_error *err)
{
    json_t *svc = json_object_get(req->root, "service");
    req->data = json_object_get(req->root, "data");
    if (!json_is_string(svc))
        return fail(err, CG_ERR_BAD_REQUEST, "\"service\" (a string) is required");
    if (!req->data)
        return fail(err, CG_ERR_BAD_REQUEST, "\"data\" (any JSON value) is required");
    const char *name = json_string_value(svc);
    size_t n = json_string_length(svc);
    int i = cg_config_service(cfg, name, n);
    if (i < 0 || strlen(name) != n) {
        char shown[40];
        cg_log_quote(shown, sizeof(shown), name, n > 32 ? 32 : n);
        return fail(err, CG_ERR_UNKNOWN_SERVICE, "no service %s is configured", shown);
    }
    req->service = (uint32_t)i;
    return 0;
}

int cg_request_parse(const char *text, size_t len, const struct cg_config *cfg,
                     struct cg_request *req, struct cg_request_error *err)
{
    json_error_t jerr;
    memset(req, 0, sizeof(*req));
    err->code = CG_ERR_NONE;
    err->message[0] = 0;
    req->root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!req->root)
        return fail(err, CG_ERR_BAD_JSON, "not valid JSON: %s (at byte %d)", jerr.text,
                    jerr.position);
    if (!json_is_object(req->root))
        return fail(err, CG_ERR_BAD_REQUEST, "a request must be a JSON object");
    if (take_id(json_object_get(req->root, "id"), req))
        return fail(err, CG_ERR_BAD_REQUEST,
                    "\"id\" must be an integer or a string of at most "
                    "64 characters");
    json_t *action = json_object_get(req->root, "action");
    if (!json_is_string(action))
        return fail(err, CG_ERR_BAD_REQUEST, "\"action\" (a string) is required");
    const char *a = json_string_value(action);
    if (!strcmp(a, "subscribe") || !strcmp(a, "unsubscribe")) {
        req->action = a[0] == 's' ? CG_ACTION_SUBSCRIBE : CG_ACTION_UNSUBSCRIBE;
        json_t *names = json_object_get(req->root, "instruments");
        if (check_names_shape(names, err))
            return -1;
        if (req->action == CG_ACTION_SUBSCRIBE && take_chart_options(req, cfg, err))
            return -1;
        return take_names(names, req, err);
    }
    if (!strcmp(a, "history")) {
        req->action = CG_ACTION_HISTORY;
        return take_history(req, cfg, err);
    }
    if (!strcmp(a, "list")) {
        req->action = CG_ACTION_LIST;
        return take_after(req, err);
    }
    if (!strcmp(a, "search")) {
        req->action = CG_ACTION_SEARCH;
        return take_pattern(req, err) ? -1 : take_after(req, err);
    }
    if (!strcmp(a, "ping")) {
        req->action = CG_ACTION_PING;
        return 0;
    }
    if (!strcmp(a, "send")) {
        req->action = CG_ACTION_SEND;
        return take_send(req, cfg, err);
    }
    char shown[40];
    size_t n = strlen(a);
    snprintf(shown, sizeof(shown), "%.*s%s", (int)(n > 32 ? 32 : n), a, n > 32 ? "..." : "");
    return fail(err, CG_ERR_UNKNOWN_ACTION, "unknown action \"%s\"", shown);
}

void cg_request_finish(struct cg_request *req)
{
    free(req->names);
    req->names = NULL;
    json_decref(req->root);
    req->root = NULL;
}
