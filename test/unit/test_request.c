/* test_request.c -- unit tests of client message parsing (gateway/request.h,
 * proto/PROTOCOL.md sections 3, 5 and 6). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "request.h"
#include "testcfg.h"

static struct cg_request req;
static struct cg_request_error err;
static const struct cg_config *parse_cfg; /* NULL: test_cfg(), the defaults (no services) */

/* Parses text (len bytes); on error, checks that the message is non-empty printable
 * ASCII (it goes into an error frame). The caller releases req with done(). */
static int parse_n(const char *text, size_t len, int line)
{
    memset(&err, 0x7f, sizeof(err));
    int rc = cg_request_parse(text, len, parse_cfg ? parse_cfg : test_cfg(), &req, &err);
    if (rc) {
        check_(err.message[0] != 0, __FILE__, line, "error message non-empty");
        int ascii = 1;
        for (const char *c = err.message; *c; c++)
            ascii &= (unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f;
        if (!check_(ascii, __FILE__, line, "error message is printable ASCII"))
            fprintf(stderr, "    message: %s\n", err.message);
        check_(memchr(err.message, 0, sizeof(err.message)) != NULL, __FILE__, line,
               "error message NUL-terminated");
    } else {
        check_int_(err.code, CG_ERR_NONE, __FILE__, line, "err.code", "CG_ERR_NONE");
    }
    return rc;
}

static int parse_at(const char *text, int line)
{
    return parse_n(text, strlen(text), line);
}

#define PARSE(text) parse_at((text), __LINE__)

static void done(void)
{
    cg_request_finish(&req);
    CHECK(req.root == NULL);
    CHECK(req.names == NULL);
}

/* text fails with code; the error echoes id_json ("" = no id). */
static void expect_error(const char *text, enum cg_errcode code, const char *id_json, int line)
{
    int rc = parse_at(text, line);
    check_int_(rc, -1, __FILE__, line, text, "-1");
    if (!check_int_(err.code, code, __FILE__, line, "err.code", cg_errcode_name(code)))
        fprintf(stderr, "    for %s (message: %s)\n", text, err.message);
    check_mem_(req.id_json, strlen(req.id_json), id_json, __FILE__, line, "req.id_json");
    if (!id_json[0])
        check_(cg_request_id(&req) == NULL, __FILE__, line, "cg_request_id == NULL");
    cg_request_finish(&req);
}

#define ERR(text, code, id) expect_error((text), (code), (id), __LINE__)

static void test_errcode_names(void)
{
    CHECK_STR(cg_errcode_name(CG_ERR_BAD_JSON), "bad_json");
    CHECK_STR(cg_errcode_name(CG_ERR_BAD_REQUEST), "bad_request");
    CHECK_STR(cg_errcode_name(CG_ERR_UNKNOWN_ACTION), "unknown_action");
    CHECK_STR(cg_errcode_name(CG_ERR_FORBIDDEN), "forbidden");
    CHECK_STR(cg_errcode_name(CG_ERR_INVALID_INSTRUMENT), "invalid_instrument");
    CHECK_STR(cg_errcode_name(CG_ERR_TOO_MANY_SUBSCRIPTIONS), "too_many_subscriptions");
    CHECK_STR(cg_errcode_name(CG_ERR_RATE_LIMITED), "rate_limited");
    CHECK_STR(cg_errcode_name(CG_ERR_UNKNOWN_SERVICE), "unknown_service");
    CHECK_STR(cg_errcode_name(CG_ERR_UNAVAILABLE), "unavailable");
    CHECK_STR(cg_errcode_name(CG_ERR__COUNT), "bad_request");
    CHECK_STR(cg_errcode_name((enum cg_errcode) - 1), "bad_request");
}

static void test_actions(void)
{
    CHECK_INT(PARSE("{\"action\":\"subscribe\",\"instruments\":[\"rb2501\",\"au2412\"],\"id\":7}"),
              0);
    CHECK_INT(req.action, CG_ACTION_SUBSCRIBE);
    CHECK_UINT(req.nnames, 2);
    if (CHECK(req.names != NULL)) {
        CHECK_STR(req.names[0], "rb2501");
        CHECK_STR(req.names[1], "au2412");
    }
    CHECK_STR(req.id_json, "7");
    CHECK_PTR(cg_request_id(&req), req.id_json);
    CHECK(req.root != NULL);
    done();

    CHECK_INT(PARSE("{\"id\":\"u-8\",\"instruments\":[\"rb2501\"],\"action\":\"unsubscribe\"}"), 0);
    CHECK_INT(req.action, CG_ACTION_UNSUBSCRIBE);
    CHECK_UINT(req.nnames, 1);
    CHECK_STR(req.names[0], "rb2501");
    CHECK_STR(req.id_json, "\"u-8\"");
    done();

    CHECK_INT(PARSE("{\"action\":\"list\"}"), 0);
    CHECK_INT(req.action, CG_ACTION_LIST);
    CHECK_STR(req.id_json, "");
    CHECK(cg_request_id(&req) == NULL);
    CHECK_UINT(req.nnames, 0);
    done();

    CHECK_INT(PARSE("{\"action\":\"search\",\"pattern\":\"rb\",\"id\":2}"), 0);
    CHECK_INT(req.action, CG_ACTION_SEARCH);
    CHECK_STR(req.pattern, "rb");
    CHECK_STR(req.id_json, "2");
    done();

    CHECK_INT(PARSE("{\"action\":\"search\",\"pattern\":\"\"}"), 0); /* "" matches all */
    CHECK_STR(req.pattern, "");
    done();

    CHECK_INT(PARSE("{\"action\":\"search\",\"pattern\":\"0123456789abcdef0123456789abcdef\"}"), 0);
    CHECK_STR(req.pattern, "0123456789abcdef0123456789abcdef");
    done();

    CHECK_INT(PARSE("{\"action\":\"ping\",\"id\":3}"), 0);
    CHECK_INT(req.action, CG_ACTION_PING);
    CHECK_STR(req.id_json, "3");
    done();

    /* Whitespace around and inside is fine; only len bytes are read. */
    CHECK_INT(PARSE(" \n{ \"action\" : \"ping\" }\n "), 0);
    CHECK_INT(req.action, CG_ACTION_PING);
    done();
    const char *t = "{\"action\":\"ping\"}{\"action\":\"list\"}";
    CHECK_INT(parse_n(t, 17, __LINE__), 0);
    CHECK_INT(req.action, CG_ACTION_PING);
    done();

    /* Other members are ignored. */
    CHECK_INT(PARSE("{\"action\":\"ping\",\"extra\":[1,{}]}"), 0);
    done();
}

static void test_ids(void)
{
    static const struct {
        const char *text, *id_json;
    } ok[] = {
        {"{\"action\":\"ping\",\"id\":0}", "0"},
        {"{\"action\":\"ping\",\"id\":-5}", "-5"},
        {"{\"action\":\"ping\",\"id\":9007199254740993}", "9007199254740993"},
        {"{\"action\":\"ping\",\"id\":-9223372036854775808}", "-9223372036854775808"},
        {"{\"action\":\"ping\",\"id\":\"\"}", "\"\""},
        {"{\"action\":\"ping\",\"id\":\"a\\\"b\\\\c\"}", "\"a\\\"b\\\\c\""},
        {"{\"action\":\"ping\",\"id\":\"tab\\there\"}", "\"tab\\there\""},
        {"{\"action\":\"ping\",\"id\":\"\xc3\xa9\"}", "\"\xc3\xa9\""},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int line = __LINE__;
        if (check_int_(parse_at(ok[i].text, line), 0, __FILE__, line, ok[i].text, "0"))
            check_mem_(req.id_json, strlen(req.id_json), ok[i].id_json, __FILE__, line,
                       "req.id_json");
        done();
    }

    /* String ids of up to 64 characters. */
    char text[1024], id[300], want[400];
    memset(id, 'i', 64);
    id[64] = 0;
    snprintf(text, sizeof(text), "{\"action\":\"ping\",\"id\":\"%s\"}", id);
    snprintf(want, sizeof(want), "\"%s\"", id);
    CHECK_INT(PARSE(text), 0);
    CHECK_STR(req.id_json, want);
    done();
    id[64] = 'i';
    id[65] = 0;
    snprintf(text, sizeof(text), "{\"action\":\"ping\",\"id\":\"%s\"}", id);
    ERR(text, CG_ERR_BAD_REQUEST, "");
    /* 64 escaped control characters still fit in the echo buffer. */
    int n = snprintf(text, sizeof(text), "{\"action\":\"ping\",\"id\":\"");
    for (int i = 0; i < 64; i++)
        n += snprintf(text + n, sizeof(text) - (size_t)n, "\\u0001");
    snprintf(text + n, sizeof(text) - (size_t)n, "\"}");
    CHECK_INT(PARSE(text), 0);
    CHECK_UINT(strlen(req.id_json), 2 + 64 * 6);
    done();

    /* The limit is 64 CHARACTERS (PROTOCOL.md 5, common.schema.json maxLength 64, which
     * counts code points): 64 two-byte characters (128 bytes of UTF-8) are a valid id and
     * must be echoed, not rejected. */
    n = snprintf(text, sizeof(text), "{\"action\":\"ping\",\"id\":\"");
    int w = snprintf(want, sizeof(want), "\"");
    for (int i = 0; i < 64; i++) {
        n += snprintf(text + n, sizeof(text) - (size_t)n, "\xc3\xa9");
        w += snprintf(want + w, sizeof(want) - (size_t)w, "\xc3\xa9");
    }
    snprintf(text + n, sizeof(text) - (size_t)n, "\"}");
    snprintf(want + w, sizeof(want) - (size_t)w, "\"");
    CHECK_INT(PARSE(text), 0);
    CHECK_STR(req.id_json, want);
    done();
    /* ...and 65 of them are not. */
    snprintf(text + n, sizeof(text) - (size_t)n, "\xc3\xa9\"}");
    ERR(text, CG_ERR_BAD_REQUEST, "");

    /* Invalid ids: bad_request without an id, even when the action is fine. */
    ERR("{\"action\":\"ping\",\"id\":3.5}", CG_ERR_BAD_REQUEST, "");
    ERR("{\"action\":\"ping\",\"id\":1.0}", CG_ERR_BAD_REQUEST, "");
    ERR("{\"action\":\"ping\",\"id\":1e3}", CG_ERR_BAD_REQUEST, "");
    ERR("{\"action\":\"ping\",\"id\":null}", CG_ERR_BAD_REQUEST, "");
    ERR("{\"action\":\"ping\",\"id\":true}", CG_ERR_BAD_REQUEST, "");
    ERR("{\"action\":\"ping\",\"id\":{}}", CG_ERR_BAD_REQUEST, "");
    ERR("{\"action\":\"ping\",\"id\":[1]}", CG_ERR_BAD_REQUEST, "");
    ERR("{\"action\":\"subscribe\",\"instruments\":[\"rb2501\"],\"id\":2.5}", CG_ERR_BAD_REQUEST,
        "");
}

static void test_bad_json(void)
{
    ERR("", CG_ERR_BAD_JSON, "");
    ERR("{", CG_ERR_BAD_JSON, "");
    ERR("{\"action\":\"ping\",\"id\":7", CG_ERR_BAD_JSON, "");
    ERR("{\"action\":\"ping\"}{\"action\":\"ping\"}", CG_ERR_BAD_JSON, ""); /* two values */
    ERR("{\"action\":\"ping\"}\n{\"action\":\"ping\"}", CG_ERR_BAD_JSON, "");
    ERR("action=ping", CG_ERR_BAD_JSON, "");
    ERR("{'action':'ping'}", CG_ERR_BAD_JSON, "");
    /* Invalid UTF-8 and control bytes: the message (quoting jansson) stays ASCII. */
    ERR("{\"action\":\"\xff\xfe\"}", CG_ERR_BAD_JSON, "");
    ERR("{\"action\":\"\xc3\"}", CG_ERR_BAD_JSON, "");
    ERR("\xe4\xbd\xa0\xe5\xa5\xbd", CG_ERR_BAD_JSON, "");
    ERR("{\"action\":\"pi\x01ng\"}", CG_ERR_BAD_JSON, "");
    ERR("{\"a\xc3\xa9\xe4\xbd\xa0\":", CG_ERR_BAD_JSON, "");
    CHECK_INT(parse_n("{\"action\":\"ping\"}", 0, __LINE__), -1);
    CHECK_INT(err.code, CG_ERR_BAD_JSON);
    cg_request_finish(&req);
    /* An embedded NUL byte. */
    CHECK_INT(parse_n("{\"action\":\"ping\"\0}", 18, __LINE__), -1);
    CHECK_INT(err.code, CG_ERR_BAD_JSON);
    cg_request_finish(&req);
}

static void test_not_object(void)
{
    ERR("[]", CG_ERR_BAD_REQUEST, "");
    ERR("[{\"action\":\"ping\",\"id\":1}]", CG_ERR_BAD_REQUEST, "");
    /* PROTOCOL.md 6: bad_request is "Valid JSON, but: not an object". A bare scalar is
     * valid JSON (RFC 8259) and must get bad_request, not bad_json. */
    ERR("5", CG_ERR_BAD_REQUEST, "");
    ERR("\"ping\"", CG_ERR_BAD_REQUEST, "");
    ERR("null", CG_ERR_BAD_REQUEST, "");
}

static void test_action_member(void)
{
    ERR("{}", CG_ERR_BAD_REQUEST, "");
    ERR("{\"id\":4}", CG_ERR_BAD_REQUEST, "4");
    ERR("{\"action\":5,\"id\":\"x\"}", CG_ERR_BAD_REQUEST, "\"x\"");
    ERR("{\"action\":null,\"id\":4}", CG_ERR_BAD_REQUEST, "4");
    ERR("{\"action\":[\"ping\"],\"id\":4}", CG_ERR_BAD_REQUEST, "4");
    ERR("{\"action\":\"fly\",\"id\":9}", CG_ERR_UNKNOWN_ACTION, "9");
    CHECK(strstr(err.message, "fly") != NULL);
    ERR("{\"action\":\"\"}", CG_ERR_UNKNOWN_ACTION, "");
    ERR("{\"action\":\"PING\",\"id\":\"c\"}", CG_ERR_UNKNOWN_ACTION, "\"c\"");
    ERR("{\"action\":\"subscribe \"}", CG_ERR_UNKNOWN_ACTION, "");
    /* A long or non-ASCII action is shortened and kept ASCII in the message. */
    char text[600], act[500];
    memset(act, 'z', 400);
    act[400] = 0;
    snprintf(text, sizeof(text), "{\"action\":\"%s\",\"id\":1}", act);
    ERR(text, CG_ERR_UNKNOWN_ACTION, "1");
    CHECK(strlen(err.message) < sizeof(err.message));
    CHECK(strstr(err.message, "...") != NULL);
    ERR("{\"action\":\"\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xbd\xa0\xe5\xa5\xbd"
        "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xbd\xa0\xe5\xa5\xbd\"}",
        CG_ERR_UNKNOWN_ACTION, "");
    ERR("{\"action\":\"a\\nb\\u0007\"}", CG_ERR_UNKNOWN_ACTION, "");
}

static void test_instruments_member(void)
{
    const char *acts[] = {"subscribe", "unsubscribe"};
    for (int a = 0; a < 2; a++) {
        char t[512];
#define T(fmt) (snprintf(t, sizeof(t), fmt, acts[a]), t)
        ERR(T("{\"action\":\"%s\",\"id\":1}"), CG_ERR_BAD_REQUEST, "1");
        ERR(T("{\"action\":\"%s\",\"instruments\":[],\"id\":1}"), CG_ERR_BAD_REQUEST, "1");
        ERR(T("{\"action\":\"%s\",\"instruments\":\"rb2501\",\"id\":1}"), CG_ERR_BAD_REQUEST, "1");
        ERR(T("{\"action\":\"%s\",\"instruments\":null,\"id\":1}"), CG_ERR_BAD_REQUEST, "1");
        ERR(T("{\"action\":\"%s\",\"instruments\":{\"rb2501\":1},\"id\":1}"), CG_ERR_BAD_REQUEST,
            "1");
        ERR(T("{\"action\":\"%s\",\"instruments\":[5],\"id\":1}"), CG_ERR_BAD_REQUEST, "1");
        ERR(T("{\"action\":\"%s\",\"instruments\":[\"rb2501\",null],\"id\":\"q\"}"),
            CG_ERR_BAD_REQUEST, "\"q\"");
        /* Invalid names: invalid_instrument, id echoed. */
        ERR(T("{\"action\":\"%s\",\"instruments\":[\"\"],\"id\":1}"), CG_ERR_INVALID_INSTRUMENT,
            "1");
        ERR(T("{\"action\":\"%s\",\"instruments\":[\"rb2501\",\"a b\"],\"id\":1}"),
            CG_ERR_INVALID_INSTRUMENT, "1");
        ERR(T("{\"action\":\"%s\",\"instruments\":[\"rb/2501\"],\"id\":1}"),
            CG_ERR_INVALID_INSTRUMENT, "1");
        ERR(T("{\"action\":\"%s\",\"instruments\":[\"rb*\"],\"id\":1}"), CG_ERR_INVALID_INSTRUMENT,
            "1");
        ERR(T("{\"action\":\"%s\",\"instruments\":[\"rb\\n\"],\"id\":1}"),
            CG_ERR_INVALID_INSTRUMENT, "1");
        ERR(T("{\"action\":\"%s\",\"instruments\":[\"\xc3\xa9\"],\"id\":1}"),
            CG_ERR_INVALID_INSTRUMENT, "1");
        ERR(T("{\"action\":\"%s\",\"instruments\":[\"0123456789abcdef0123456789abcdefX\"]"
              ",\"id\":1}"),
            CG_ERR_INVALID_INSTRUMENT, "1");
        CHECK_INT(PARSE(T("{\"action\":\"%s\",\"instruments\":[\"0123456789abcdef0123456789abcd."
                          "_\",\"A-Z\"]}")),
                  0);
        CHECK_UINT(req.nnames, 2);
        CHECK_STR(req.names[0], "0123456789abcdef0123456789abcd._");
        done();
        /* Duplicates are passed through (the registry treats them as one). */
        CHECK_INT(PARSE(T("{\"action\":\"%s\",\"instruments\":[\"x\",\"x\"]}")), 0);
        CHECK_UINT(req.nnames, 2);
        done();
        /* PROTOCOL.md 3: checks run in order and the FIRST failing one is reported;
         * check 1 (an array of strings, else bad_request) comes before check 2 (valid
         * names). A list holding both an invalid name and a non-string is bad_request. */
        ERR(T("{\"action\":\"%s\",\"instruments\":[\"a b\",5],\"id\":1}"), CG_ERR_BAD_REQUEST, "1");
#undef T
    }
}

/* A subscribe/unsubscribe naming total instruments "i0".."i<total-1>", with bad (if not
 * NULL) as name number 7 and extra members (e.g. ",\"intervals\":[\"7x\"]") before the
 * list. Returns a malloc'd string. */
static char *many_names(const char *action, int total, const char *bad, const char *extra)
{
    size_t cap = 128 + (size_t)total * 10 + strlen(extra) + (bad ? strlen(bad) : 0);
    char *t = malloc(cap);
    if (!t)
        return NULL;
    size_t n =
        (size_t)snprintf(t, cap, "{\"action\":\"%s\",\"id\":5%s,\"instruments\":[", action, extra);
    for (int i = 0; i < total; i++) {
        if (bad && i == 7)
            n += (size_t)snprintf(t + n, cap - n, "%s%s", i ? "," : "", bad);
        else
            n += (size_t)snprintf(t + n, cap - n, "%s\"i%d\"", i ? "," : "", i);
    }
    snprintf(t + n, cap - n, "]}");
    return t;
}

static void test_name_count(void)
{
    /* 1024 names are accepted; 1025 are too_many_subscriptions (id echoed), for both
     * subscribe and unsubscribe (PROTOCOL.md 8: at most 1,024 names per request). */
    CHECK_INT(CG_REQUEST_NAMES_MAX, 1024);
    const char *acts[] = {"subscribe", "unsubscribe"};
    for (int a = 0; a < 2; a++) {
        char *t = many_names(acts[a], 1024, NULL, "");
        if (!CHECK(t != NULL))
            return;
        CHECK_INT(PARSE(t), 0);
        CHECK_UINT(req.nnames, 1024);
        CHECK_STR(req.names[1023], "i1023");
        done();
        free(t);
        t = many_names(acts[a], 1025, NULL, "");
        if (!CHECK(t != NULL))
            return;
        ERR(t, CG_ERR_TOO_MANY_SUBSCRIPTIONS, "5");
        free(t);
    }
}

/* PROTOCOL.md 3: the checks run in order -- the whole request's shape and types
 * (bad_request), then the names (invalid_instrument), then the per-request count
 * (too_many_subscriptions) -- and the first failing one is reported, whatever order the
 * members came in. */
static void test_check_order(void)
{
    /* An unknown interval, a bad since or a bad epoch beats an invalid name. */
    ERR("{\"action\":\"subscribe\",\"instruments\":[\"a b\"],\"intervals\":[\"7x\"],\"id\":1}",
        CG_ERR_BAD_REQUEST, "1");
    CHECK(strstr(err.message, "interval") != NULL);
    ERR("{\"intervals\":[\"7x\"],\"action\":\"subscribe\",\"instruments\":[\"a b\"],\"id\":1}",
        CG_ERR_BAD_REQUEST, "1");
    ERR("{\"action\":\"subscribe\",\"instruments\":[\"a b\"],\"intervals\":\"1m\",\"id\":1}",
        CG_ERR_BAD_REQUEST, "1");
    ERR("{\"action\":\"subscribe\",\"instruments\":[\"a b\"],\"since\":{\"x\":-1},\"id\":1}",
        CG_ERR_BAD_REQUEST, "1");
    ERR("{\"action\":\"subscribe\",\"instruments\":[\"a b\"],\"since\":[],\"id\":1}",
        CG_ERR_BAD_REQUEST, "1");
    ERR("{\"action\":\"subscribe\",\"instruments\":[\"a b\"],\"epoch\":\"xyz\",\"id\":1}",
        CG_ERR_BAD_REQUEST, "1");
    /* With a well-formed rest, the invalid name is what is reported. */
    ERR("{\"action\":\"subscribe\",\"instruments\":[\"a b\"],\"intervals\":[\"1m\"],"
        "\"since\":{\"a b\":3},\"epoch\":\"0123456789abcdef\",\"id\":1}",
        CG_ERR_INVALID_INSTRUMENT, "1");
    /* unsubscribe ignores intervals/since/epoch: the name is checked. */
    ERR("{\"action\":\"unsubscribe\",\"instruments\":[\"a b\"],\"intervals\":[\"7x\"],\"id\":1}",
        CG_ERR_INVALID_INSTRUMENT, "1");

    /* Over 1,024 names: the count comes last. */
    static const struct {
        const char *action, *bad, *extra;
        enum cg_errcode code;
    } big[] = {
        {"subscribe", NULL, ",\"intervals\":[\"7x\"]", CG_ERR_BAD_REQUEST},
        {"subscribe", NULL, ",\"intervals\":{}", CG_ERR_BAD_REQUEST},
        {"subscribe", NULL, ",\"since\":{\"i1\":1.5}", CG_ERR_BAD_REQUEST},
        {"subscribe", NULL, ",\"epoch\":\"0123\"", CG_ERR_BAD_REQUEST},
        {"subscribe", "5", "", CG_ERR_BAD_REQUEST},
        {"subscribe", "null", ",\"intervals\":[\"1m\"]", CG_ERR_BAD_REQUEST},
        {"subscribe", "\"a b\"", "", CG_ERR_INVALID_INSTRUMENT},
        {"subscribe", "\"\"", ",\"intervals\":[\"1m\"],\"since\":{\"i1\":1}",
         CG_ERR_INVALID_INSTRUMENT},
        {"subscribe", NULL, ",\"intervals\":[\"1m\"],\"epoch\":\"0123456789ABCDEF\"",
         CG_ERR_TOO_MANY_SUBSCRIPTIONS},
        {"unsubscribe", "[]", "", CG_ERR_BAD_REQUEST},
        {"unsubscribe", "\"rb*\"", "", CG_ERR_INVALID_INSTRUMENT},
        {"unsubscribe", NULL, ",\"intervals\":[\"7x\"]", CG_ERR_TOO_MANY_SUBSCRIPTIONS},
    };
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
        char *t = many_names(big[i].action, 1025, big[i].bad, big[i].extra);
        if (!CHECK(t != NULL))
            return;
        int line = __LINE__;
        if (!check_int_(parse_at(t, line), -1, __FILE__, line, "parse", "-1") ||
            !check_int_(err.code, big[i].code, __FILE__, line, "err.code",
                        cg_errcode_name(big[i].code)))
            fprintf(stderr, "    case %zu: %s %s (got %s: %s)\n", i, big[i].action, big[i].extra,
                    cg_errcode_name(err.code), err.message);
        CHECK_STR(req.id_json, "5");
        CHECK(req.names == NULL); /* nothing allocated for a refused request */
        cg_request_finish(&req);
        free(t);
    }

    /* history: the same rule, the name after everything else. */
    ERR("{\"action\":\"history\",\"instrument\":\"a b\",\"interval\":\"7x\",\"id\":3}",
        CG_ERR_BAD_REQUEST, "3");
    ERR("{\"action\":\"history\",\"instrument\":\"a b\",\"id\":3}", CG_ERR_BAD_REQUEST, "3");
    ERR("{\"action\":\"history\",\"instrument\":\"a b\",\"interval\":\"1m\",\"limit\":0,\"id\":3}",
        CG_ERR_BAD_REQUEST, "3");
    ERR("{\"action\":\"history\",\"instrument\":\"a b\",\"interval\":\"1m\",\"before\":\"x\","
        "\"id\":3}",
        CG_ERR_BAD_REQUEST, "3");
    ERR("{\"action\":\"history\",\"instrument\":\"a b\",\"interval\":\"1m\",\"id\":3}",
        CG_ERR_INVALID_INSTRUMENT, "3");
    ERR("{\"action\":\"history\",\"instrument\":5,\"interval\":\"1m\",\"id\":3}",
        CG_ERR_BAD_REQUEST, "3");
    CHECK_INT(PARSE("{\"action\":\"history\",\"instrument\":\"rb2501\",\"interval\":\"1m\","
                    "\"before\":7,\"limit\":5000}"),
              0);
    CHECK_STR(req.instrument, "rb2501");
    CHECK_INT(req.before, 7);
    CHECK_UINT(req.limit, 1000);
    done();
}

static void test_epoch(void)
{
    CHECK_INT(PARSE("{\"action\":\"subscribe\",\"instruments\":[\"x\"]}"), 0);
    CHECK_STR(req.epoch, "");
    done();
    CHECK_INT(PARSE("{\"action\":\"subscribe\",\"instruments\":[\"x\"],\"since\":{\"x\":4},"
                    "\"epoch\":\"3f9a0c1d2e4b5a69\"}"),
              0);
    CHECK_STR(req.epoch, "3f9a0c1d2e4b5a69");
    done();
    /* 16 hex digits in either case (PROTOCOL.md 3), kept lower-cased as the gateway sends
     * its own, so that the comparison with it is a plain strcmp. */
    CHECK_INT(PARSE("{\"action\":\"subscribe\",\"instruments\":[\"x\"],\"since\":{\"x\":4},"
                    "\"epoch\":\"3F9A0C1D2E4B5A69\"}"),
              0);
    CHECK_STR(req.epoch, "3f9a0c1d2e4b5a69");
    done();
    CHECK_INT(PARSE("{\"action\":\"subscribe\",\"instruments\":[\"x\"],"
                    "\"epoch\":\"aBcDeF0123456789\"}"),
              0);
    CHECK_STR(req.epoch, "abcdef0123456789");
    done();
    static const char *const bad[] = {
        "\"3f9a0c1d2e4b5a6\"",   /* 15 */
        "\"3f9a0c1d2e4b5a690\"", /* 17 */
        "\"3f9a0c1d2e4b5a6g\"",
        "\"3f9a0c1d2e4b5a6 \"",
        "\" 3f9a0c1d2e4b5a6\"",
        "\"3f9a0c1d2e4b5a69\\n\"",
        "\"\"",
        "3",
        "null",
        "[\"3f9a0c1d2e4b5a69\"]",
        "\"0x9a0c1d2e4b5a69\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char t[200];
        snprintf(t, sizeof(t),
                 "{\"action\":\"subscribe\",\"instruments\":[\"x\"],\"epoch\":%s,"
                 "\"id\":\"e\"}",
                 bad[i]);
        ERR(t, CG_ERR_BAD_REQUEST, "\"e\"");
    }
}

/* max_rate: a number of frames per second within 0.1 .. 1000, else bad_request (PROTOCOL.md 3). */
static void test_max_rate(void)
{
    CHECK_INT(PARSE("{\"action\":\"subscribe\",\"instruments\":[\"x\"]}"), 0);
    CHECK(req.max_rate == 0);
    done();
    static const struct {
        const char *v;
        double want;
    } good[] = {{"2", 2}, {"0.1", 0.1}, {"1000", 1000}, {"2.5", 2.5}, {"1e2", 100}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char t[200];
        snprintf(t, sizeof(t), "{\"action\":\"subscribe\",\"instruments\":[\"x\"],\"max_rate\":%s}",
                 good[i].v);
        CHECK_INT(PARSE(t), 0);
        CHECK(req.max_rate == good[i].want);
        done();
    }
    static const char *const bad[] = {"0",    "-1",    "0.09", "1000.5", "1e9",
                                      "null", "\"2\"", "true", "[2]",    "{}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char t[200];
        snprintf(t, sizeof(t),
                 "{\"action\":\"subscribe\",\"instruments\":[\"x\"],\"max_rate\":%s,\"id\":3}",
                 bad[i]);
        ERR(t, CG_ERR_BAD_REQUEST, "3");
    }
    /* The shape comes before the names (check 1 before check 2). */
    ERR("{\"action\":\"subscribe\",\"instruments\":[\"a b\"],\"max_rate\":0}", CG_ERR_BAD_REQUEST,
        "");
}

/* A search for n copies of the UTF-8 character ch: returns 0 or -1 as PARSE does. */
static int search_repeat(const char *ch, int n, int line)
{
    char t[1024];
    size_t k = (size_t)snprintf(t, sizeof(t), "{\"action\":\"search\",\"id\":1,\"pattern\":\"");
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(t + k, sizeof(t) - k, "%s", ch);
    snprintf(t + k, sizeof(t) - k, "\"}");
    return parse_at(t, line);
}

static void test_pattern(void)
{
    ERR("{\"action\":\"search\",\"id\":1}", CG_ERR_BAD_REQUEST, "1");
    ERR("{\"action\":\"search\",\"pattern\":5,\"id\":1}", CG_ERR_BAD_REQUEST, "1");
    ERR("{\"action\":\"search\",\"pattern\":null,\"id\":1}", CG_ERR_BAD_REQUEST, "1");
    ERR("{\"action\":\"search\",\"pattern\":[\"rb\"],\"id\":1}", CG_ERR_BAD_REQUEST, "1");
    /* Longer than any instrument name: bad_request. */
    ERR("{\"action\":\"search\",\"pattern\":\"0123456789abcdef0123456789abcdefX\",\"id\":\"s\"}",
        CG_ERR_BAD_REQUEST, "\"s\"");

    /* The limit is 32 CHARACTERS (code points, as the schema's maxLength counts), not
     * bytes: 11 CJK characters are 33 bytes and fine; so are 32 of them (96 bytes) and 32
     * four-byte characters (128 bytes), stored whole and NUL-terminated. */
    CHECK_UINT(sizeof(req.pattern), CG_REQUEST_PATTERN_BYTES + 1);
    CHECK_UINT(CG_REQUEST_PATTERN_BYTES, 4 * 32);
    static const struct {
        const char *ch;
        size_t bytes;
    } chars[] = {{"a", 1}, {"\xc3\xa9", 2}, {"\xe8\x9e\xba", 3}, {"\xf0\x9f\x93\x88", 4}};
    for (size_t c = 0; c < sizeof(chars) / sizeof(chars[0]); c++) {
        static const int counts[] = {11, 32, 33};
        for (size_t k = 0; k < 3; k++) {
            int n = counts[k];
            int line = __LINE__;
            int rc = search_repeat(chars[c].ch, n, line);
            if (n <= 32) {
                if (check_int_(rc, 0, __FILE__, line, "search of n characters", "0")) {
                    check_uint_(strlen(req.pattern), chars[c].bytes * (size_t)n, __FILE__, line,
                                "strlen(req.pattern)", "bytes");
                    check_(!memcmp(req.pattern, chars[c].ch, chars[c].bytes), __FILE__, line,
                           "pattern kept as sent");
                }
            } else {
                check_int_(rc, -1, __FILE__, line, "search of 33 characters", "-1");
                check_int_(err.code, CG_ERR_BAD_REQUEST, __FILE__, line, "err.code",
                           "CG_ERR_BAD_REQUEST");
            }
            cg_request_finish(&req);
        }
    }
    /* Escapes count as the character they stand for. */
    CHECK_INT(PARSE("{\"action\":\"search\",\"pattern\":\"\\u87ba\\u7eb9\\u94a2\"}"), 0);
    CHECK_STR(req.pattern, "\xe8\x9e\xba\xe7\xba\xb9\xe9\x92\xa2");
    done();
}

static void test_after(void)
{
    CHECK_INT(CG_REQUEST_LIST_PAGE, 10000);
    /* Absent or "": from the first name. */
    CHECK_INT(PARSE("{\"action\":\"list\",\"id\":1}"), 0);
    CHECK_STR(req.after, "");
    done();
    CHECK_INT(PARSE("{\"action\":\"list\",\"after\":\"\"}"), 0);
    CHECK_STR(req.after, "");
    done();
    CHECK_INT(PARSE("{\"action\":\"list\",\"after\":\"rb2501\",\"id\":1}"), 0);
    CHECK_INT(req.action, CG_ACTION_LIST);
    CHECK_STR(req.after, "rb2501");
    CHECK_STR(req.id_json, "1");
    done();
    CHECK_INT(PARSE("{\"action\":\"search\",\"pattern\":\"rb\",\"after\":\"rb2501\"}"), 0);
    CHECK_INT(req.action, CG_ACTION_SEARCH);
    CHECK_STR(req.pattern, "rb");
    CHECK_STR(req.after, "rb2501");
    done();
    /* Any string of at most 32 bytes: it is compared, not looked up. */
    CHECK_INT(PARSE("{\"action\":\"list\",\"after\":\"0123456789abcdef0123456789abcdef\"}"), 0);
    CHECK_STR(req.after, "0123456789abcdef0123456789abcdef");
    done();
    CHECK_INT(PARSE("{\"action\":\"list\",\"after\":\"a b*\"}"), 0);
    CHECK_STR(req.after, "a b*");
    done();
    CHECK_INT(PARSE("{\"action\":\"list\",\"after\":\"\xe8\x9e\xba\xe8\x9e\xba\xe8\x9e\xba\xe8\x9e"
                    "\xba\xe8\x9e\xba\xe8\x9e\xba\xe8\x9e\xba\xe8\x9e\xba\xe8\x9e\xba\xe8\x9e\xba"
                    "\"}"),
              0); /* 10 characters, 30 bytes */
    CHECK_UINT(strlen(req.after), 30);
    done();
    /* Else bad_request, id echoed. */
    static const char *const bad[] = {
        "\"0123456789abcdef0123456789abcdefX\"", /* 33 bytes */
        "\"\xe8\x9e\xba\xe8\x9e\xba\xe8\x9e\xba\xe8\x9e\xba\xe8\x9e\xba\xe8\x9e\xba\xe8\x9e\xba"
        "\xe8\x9e\xba\xe8\x9e\xba\xe8\x9e\xba\xe8\x9e\xba\"", /* 11 characters, 33 bytes */
        "5",
        "null",
        "true",
        "[\"rb2501\"]",
        "{}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char t[300];
        snprintf(t, sizeof(t), "{\"action\":\"list\",\"after\":%s,\"id\":\"p\"}", bad[i]);
        ERR(t, CG_ERR_BAD_REQUEST, "\"p\"");
        CHECK(strstr(err.message, "after") != NULL);
        snprintf(t, sizeof(t), "{\"action\":\"search\",\"pattern\":\"\",\"after\":%s,\"id\":7}",
                 bad[i]);
        ERR(t, CG_ERR_BAD_REQUEST, "7");
    }
    /* Other actions ignore it, like any other member. */
    CHECK_INT(PARSE("{\"action\":\"ping\",\"after\":5}"), 0);
    CHECK_STR(req.after, "");
    done();
}

/* A gateway started with --service alerts --service orders.v2 --service a-b_c (PROTOCOL.md
 * §16); borrowed, valid for the whole process. */
static const struct cg_config *services_cfg(void)
{
    static struct cg_config cfg;
    static int done;
    if (!done) {
        char *argv[] = {"test",      "--service", "alerts", "--service",
                        "orders.v2", "--service", "a-b_c",  NULL};
        char msg[256];
        CHECK_INT(cg_config_load(&cfg, 7, argv, "web", msg, sizeof(msg), NULL), CG_CONFIG_OK);
        CHECK_UINT(cfg.nservices, 3);
        done = 1;
    }
    return &cfg;
}

/* A send that parses: the service's index, and data equal to want_data (JSON text). */
static void expect_send(const char *text, uint32_t service, const char *want_data,
                        const char *id_json, int line)
{
    if (!check_int_(parse_at(text, line), 0, __FILE__, line, text, "0")) {
        fprintf(stderr, "    %s: %s\n", cg_errcode_name(err.code), err.message);
        cg_request_finish(&req);
        return;
    }
    check_int_(req.action, CG_ACTION_SEND, __FILE__, line, "req.action", "CG_ACTION_SEND");
    check_uint_(req.service, service, __FILE__, line, "req.service", "service");
    check_mem_(req.id_json, strlen(req.id_json), id_json, __FILE__, line, "req.id_json");
    /* data is borrowed from the parsed request, as is: the very member, not a copy */
    check_(req.data != NULL && req.data == json_object_get(req.root, "data"), __FILE__, line,
           "req.data is the request's data member");
    json_t *want = json_loads(want_data, JSON_DECODE_ANY, NULL);
    check_(want && req.data && json_equal(req.data, want), __FILE__, line, "data as sent");
    json_decref(want);
    cg_request_finish(&req);
    check_(req.root == NULL, __FILE__, line, "root released");
}

#define SEND_OK(text, service, data, id) expect_send((text), (service), (data), (id), __LINE__)

static void test_send(void)
{
    parse_cfg = services_cfg();
    /* PROTOCOL.md §3 send: service a configured name, data any JSON value, id echoed. */
    SEND_OK("{\"action\":\"send\",\"service\":\"alerts\",\"data\":{\"op\":\"set\",\"instrument\":"
            "\"rb2501\",\"above\":3600},\"id\":7}",
            0, "{\"op\":\"set\",\"instrument\":\"rb2501\",\"above\":3600}", "7");
    SEND_OK("{\"action\":\"send\",\"service\":\"orders.v2\",\"data\":{}}", 1, "{}", "");
    SEND_OK("{\"id\":\"s-1\",\"data\":[1,\"x\",null],\"service\":\"a-b_c\",\"action\":\"send\"}", 2,
            "[1,\"x\",null]", "\"s-1\"");
    SEND_OK("{\"action\":\"send\",\"service\":\"alerts\",\"data\":null,\"id\":-1}", 0, "null",
            "-1");
    SEND_OK("{\"action\":\"send\",\"service\":\"alerts\",\"data\":3.25}", 0, "3.25", "");
    SEND_OK("{\"action\":\"send\",\"service\":\"alerts\",\"data\":0}", 0, "0", "");
    SEND_OK("{\"action\":\"send\",\"service\":\"alerts\",\"data\":false}", 0, "false", "");
    SEND_OK("{\"action\":\"send\",\"service\":\"alerts\",\"data\":\"\"}", 0, "\"\"", "");
    SEND_OK("{\"action\":\"send\",\"service\":\"alerts\",\"data\":[]}", 0, "[]", "");
    /* other members are ignored, like in every action */
    SEND_OK("{\"action\":\"send\",\"service\":\"alerts\",\"data\":1,\"instruments\":5}", 0, "1",
            "");

    /* The shape first: service a string and data present, else bad_request (id echoed). */
    ERR("{\"action\":\"send\",\"id\":1}", CG_ERR_BAD_REQUEST, "1");
    ERR("{\"action\":\"send\",\"data\":{},\"id\":1}", CG_ERR_BAD_REQUEST, "1");
    CHECK(strstr(err.message, "service") != NULL);
    ERR("{\"action\":\"send\",\"service\":\"alerts\",\"id\":\"q\"}", CG_ERR_BAD_REQUEST, "\"q\"");
    CHECK(strstr(err.message, "data") != NULL);
    static const char *const not_string[] = {"5", "null", "true", "[\"alerts\"]",
                                             "{\"name\":\"alerts\"}"};
    for (size_t i = 0; i < sizeof(not_string) / sizeof(not_string[0]); i++) {
        char t[200];
        snprintf(t, sizeof(t), "{\"action\":\"send\",\"service\":%s,\"data\":1,\"id\":3}",
                 not_string[i]);
        ERR(t, CG_ERR_BAD_REQUEST, "3");
    }

    /* Then the name: a service this gateway is not configured with is unknown_service. */
    static const char *const unknown[] = {
        "\"nope\"",       "\"\"", "\"ALERTS\"", /* case-sensitive */
        "\"alert\"",                            /* a prefix of a configured name */
        "\"alertsx\"",                          /* a configured name is a prefix */
        "\"alerts \"",                          /* trailing space */
        "\"orders\"",                           /* orders.v2 without its suffix */
        "\"orders.v\"",                         /* ... or part of it */
        "\"a/b\"",                              /* not a valid name at all */
        "\"al\\\"erts\"",                       /* a quote */
        "\"\xc3\xa9\"",                         /* non-ASCII */
    };
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        char t[200];
        snprintf(t, sizeof(t), "{\"action\":\"send\",\"service\":%s,\"data\":{},\"id\":9}",
                 unknown[i]);
        ERR(t, CG_ERR_UNKNOWN_SERVICE, "9");
    }
    /* A NUL inside the name: the bytes before it name a service, the name does not. jansson
     * (without JSON_ALLOW_NUL) refuses the whole message as bad_json before the action is
     * read; were NULs let through, take_send's own length check must answer unknown_service.
     * Either way the message never reaches "alerts". */
    static const char *const with_nul[] = {"\"alerts\\u0000\"", "\"alerts\\u0000orders\"",
                                           "\"\\u0000\""};
    for (size_t i = 0; i < sizeof(with_nul) / sizeof(with_nul[0]); i++) {
        char t[200];
        snprintf(t, sizeof(t), "{\"action\":\"send\",\"service\":%s,\"data\":{},\"id\":9}",
                 with_nul[i]);
        int line = __LINE__;
        check_int_(parse_at(t, line), -1, __FILE__, line, t, "-1");
        if (!check_(err.code == CG_ERR_BAD_JSON || err.code == CG_ERR_UNKNOWN_SERVICE, __FILE__,
                    line, "NUL in a service name: bad_json or unknown_service"))
            fprintf(stderr, "    for %s: %s\n", t, cg_errcode_name(err.code));
        cg_request_finish(&req);
    }
    ERR("{\"action\":\"send\",\"service\":\"nope\",\"data\":{}}", CG_ERR_UNKNOWN_SERVICE, "");
    CHECK(strstr(err.message, "nope") != NULL); /* the message names it */
    /* A long name (here 5000 bytes) is shortened in the message, which stays one short line. */
    char *big = malloc(6000);
    if (CHECK(big != NULL)) {
        int n = snprintf(big, 6000, "{\"action\":\"send\",\"data\":1,\"id\":2,\"service\":\"");
        memset(big + n, 's', 5000);
        snprintf(big + n + 5000, 6000 - (size_t)n - 5000, "\"}");
        ERR(big, CG_ERR_UNKNOWN_SERVICE, "2");
        CHECK(strlen(err.message) < 100);
        free(big);
    }
    /* 65 characters cannot be a service name: unknown, even when 64 of them would be one. */
    char t[300], name[80];
    memset(name, 'n', 65);
    name[65] = 0;
    snprintf(t, sizeof(t), "{\"action\":\"send\",\"service\":\"%s\",\"data\":1}", name);
    ERR(t, CG_ERR_UNKNOWN_SERVICE, "");

    /* Check order (PROTOCOL.md §3, §6): bad_request before unknown_service, whatever the
     * members' order, and the id's own check before both. */
    ERR("{\"action\":\"send\",\"service\":\"nope\",\"id\":4}", CG_ERR_BAD_REQUEST, "4");
    ERR("{\"service\":\"nope\",\"id\":4,\"action\":\"send\"}", CG_ERR_BAD_REQUEST, "4");
    ERR("{\"action\":\"send\",\"service\":\"\",\"id\":4}", CG_ERR_BAD_REQUEST, "4");
    ERR("{\"action\":\"send\",\"service\":\"nope\",\"data\":1,\"id\":4.5}", CG_ERR_BAD_REQUEST, "");
    ERR("{\"action\":\"send\",\"service\":\"alerts\",\"data\":1,\"id\":null}", CG_ERR_BAD_REQUEST,
        "");

    /* The action's name is exact; with no service configured every send is unknown. */
    ERR("{\"action\":\"SEND\",\"service\":\"alerts\",\"data\":1,\"id\":5}", CG_ERR_UNKNOWN_ACTION,
        "5");
    ERR("{\"action\":\"sent\",\"service\":\"alerts\",\"data\":1,\"id\":5}", CG_ERR_UNKNOWN_ACTION,
        "5");
    parse_cfg = NULL;
    CHECK_UINT(test_cfg()->nservices, 0);
    ERR("{\"action\":\"send\",\"service\":\"alerts\",\"data\":1,\"id\":5}", CG_ERR_UNKNOWN_SERVICE,
        "5");
    ERR("{\"action\":\"send\",\"service\":\"alerts\",\"id\":5}", CG_ERR_BAD_REQUEST, "5");
}

int main(void)
{
    test_errcode_names();
    test_actions();
    test_ids();
    test_bad_json();
    test_not_object();
    test_action_member();
    test_instruments_member();
    test_name_count();
    test_check_order();
    test_epoch();
    test_max_rate();
    test_pattern();
    test_after();
    test_send();
    return check_summary("request");
}
