/* session.c -- session JSON parsing, id and instrument name rules, allowlist globs. */
#include "session.h"

#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cg_session_destroy(struct cg_session *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->npatterns; i++)
        free(s->patterns[i]);
    free(s->patterns);
    for (size_t i = 0; i < s->nservice_patterns; i++)
        free(s->service_patterns[i]);
    free(s->service_patterns);
    free(s);
}

static enum cg_session_status bad(char *why, size_t whysz, const char *text)
{
    if (why && whysz)
        snprintf(why, whysz, "%s", text);
    return CG_SESSION_BAD;
}

static int pattern_valid(const char *p, size_t len)
{
    if (!len || len > 64)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '*' || c == '?' || c == '[' || c == ']'))
            return 0;
    }
    return 1;
}

/* An allowlist member (instruments, services): absent, or an array of at most
 * CG_SESSION_PATTERNS_MAX glob patterns. A wrong type (null included) never means "all". */
static enum cg_session_status globs_ok(json_t *v, const char *name, char *why, size_t whysz)
{
    char text[96];
    size_t i;
    json_t *e;
    if (!v)
        return CG_SESSION_OK;
    if (!json_is_array(v)) {
        snprintf(text, sizeof(text), "%s is not an array", name);
        return bad(why, whysz, text);
    }
    if (json_array_size(v) > CG_SESSION_PATTERNS_MAX) {
        snprintf(text, sizeof(text), "%s has more than %d patterns", name, CG_SESSION_PATTERNS_MAX);
        return bad(why, whysz, text);
    }
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || !pattern_valid(json_string_value(e), json_string_length(e))) {
            snprintf(text, sizeof(text), "%s holds something other than a glob pattern", name);
            return bad(why, whysz, text);
        }
    }
    return CG_SESSION_OK;
}

/* Copies the patterns of v (checked by globs_ok; NULL = none) into a new array. */
static enum cg_session_status globs_copy(json_t *v, char ***out, size_t *n)
{
    if (!json_array_size(v))
        return CG_SESSION_OK;
    if (!(*out = calloc(json_array_size(v), sizeof(char *))))
        return CG_SESSION_NOMEM;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!((*out)[i] = strdup(json_string_value(e))))
            return CG_SESSION_NOMEM;
        *n = i + 1;
    }
    return CG_SESSION_OK;
}

static int globs_match(char *const *patterns, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!fnmatch(patterns[i], name, 0))
            return 1;
    return 0;
}

enum cg_session_status cg_session_parse(const char *json, size_t len, int64_t now,
                                        struct cg_session **out, char *why, size_t whysz)
{
    enum cg_session_status st = CG_SESSION_BAD;
    json_error_t err;
    struct cg_session *s = NULL;
    *out = NULL;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return bad(why, whysz, "not valid JSON");
    if (!json_is_object(root)) {
        st = bad(why, whysz, "not a JSON object");
        goto done;
    }
    json_t *uid = json_object_get(root, "user_id");
    if (!json_is_string(uid) || !json_string_length(uid) ||
        json_string_length(uid) > CG_SESSION_USER_MAX ||
        strlen(json_string_value(uid)) != json_string_length(uid)) {
        st = bad(why, whysz, "user_id missing, not a string, or longer than 128 bytes");
        goto done;
    }
    json_t *exp = json_object_get(root, "exp");
    if (exp && !json_is_integer(exp)) {
        st = bad(why, whysz, "exp is not an integer");
        goto done;
    }
    json_t *ins = json_object_get(root, "instruments"), *svc = json_object_get(root, "services");
    if ((st = globs_ok(ins, "instruments", why, whysz)) != CG_SESSION_OK ||
        (st = globs_ok(svc, "services", why, whysz)) != CG_SESSION_OK)
        goto done;
    s = calloc(1, sizeof(*s));
    if (!s) {
        st = CG_SESSION_NOMEM;
        goto done;
    }
    memcpy(s->user_id, json_string_value(uid), json_string_length(uid) + 1);
    s->has_exp = exp != NULL;
    s->exp = exp ? (int64_t)json_integer_value(exp) : 0;
    s->all_instruments = !ins;
    s->all_services = !svc;
    if ((st = globs_copy(ins, &s->patterns, &s->npatterns)) != CG_SESSION_OK ||
        (st = globs_copy(svc, &s->service_patterns, &s->nservice_patterns)) != CG_SESSION_OK)
        goto done;
    if (s->has_exp && s->exp <= now) {
        st = CG_SESSION_EXPIRED;
        goto done;
    }
    *out = s;
    s = NULL;
    st = CG_SESSION_OK;
done:
    cg_session_destroy(s);
    json_decref(root);
    return st;
}

int cg_session_allows(const struct cg_session *s, const char *name)
{
    return s->all_instruments || globs_match(s->patterns, s->npatterns, name);
}

int cg_session_allows_service(const struct cg_session *s, const char *name)
{
    return s->all_services || globs_match(s->service_patterns, s->nservice_patterns, name);
}

static int id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

int cg_session_id_valid(const char *id, size_t len)
{
    if (!len || len > CG_SESSION_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!id_char(id[i]))
            return 0;
    return 1;
}
