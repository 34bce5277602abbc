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
    json_t *ins = json_object_get(root, "instruments");
    if (ins && !json_is_array(ins)) { /* null included: a wrong type never means "all" */
        st = bad(why, whysz, "instruments is not an array");
        goto done;
    }
    if (json_is_array(ins) && json_array_size(ins) > CG_SESSION_PATTERNS_MAX) {
        st = bad(why, whysz, "instruments has more than 64 patterns");
        goto done;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        st = CG_SESSION_NOMEM;
        goto done;
    }
    memcpy(s->user_id, json_string_value(uid), json_string_length(uid) + 1);
    s->has_exp = exp != NULL;
    s->exp = exp ? (int64_t)json_integer_value(exp) : 0;
    s->all_instruments = !json_is_array(ins);
    if (json_is_array(ins) && json_array_size(ins)) {
        s->patterns = calloc(json_array_size(ins), sizeof(char *));
        if (!s->patterns) {
            st = CG_SESSION_NOMEM;
            goto done;
        }
        size_t i;
        json_t *v;
        json_array_foreach(ins, i, v)
        {
            if (!json_is_string(v) || !pattern_valid(json_string_value(v), json_string_length(v))) {
                st = bad(why, whysz, "instruments holds something other than a glob pattern");
                goto done;
            }
            s->patterns[i] = strdup(json_string_value(v));
            if (!s->patterns[i]) {
                st = CG_SESSION_NOMEM;
                goto done;
            }
            s->npatterns = i + 1;
        }
    }
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
    if (s->all_instruments)
        return 1;
    for (size_t i = 0; i < s->npatterns; i++)
        if (!fnmatch(s->patterns[i], name, 0))
            return 1;
    return 0;
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
