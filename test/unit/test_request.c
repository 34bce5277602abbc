/* test_request.c -- unit tests of client message parsing (gateway/request.h,
 * proto/PROTOCOL.md sections 3, 5 and 6). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "request.h"

/* The default configuration (intervals 1s,1m,5m,15m,1h,1d; history cap 1000). */
static const struct cg_config *test_cfg(void)
{
    static struct cg_config cfg;
    static int done;
    if (!done) {
        char *argv[] = {"test", NULL};
        char err[256];
        cg_config_load(&cfg, 1, argv, "web", err, sizeof(err), NULL);
        done = 1;
    }
    return &cfg;
}

static struct cg_request req;
static struct cg_request_error err;

/* Parses text (len bytes); on error, checks that the message is non-empty printable
 * ASCII (it goes into an error frame). The caller releases req with done(). */
static int parse_n(const char *text, size_t len, int line)
{
    memset(&err, 0x7f, sizeof(err));
    int rc = cg_request_parse(text, len, test_cfg(), &req, &err);
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

static void test_name_count(void)
{
    /* 1024 names are accepted; 1025 are too_many_subscriptions (id echoed). */
    size_t cap = 16 + 1025 * 10 + 64;
    char *t = malloc(cap);
    if (!CHECK(t != NULL))
        return;
    for (int total = 1024; total <= 1025; total++) {
        size_t n = (size_t)snprintf(t, cap, "{\"action\":\"subscribe\",\"id\":5,\"instruments\":[");
        for (int i = 0; i < total; i++)
            n += (size_t)snprintf(t + n, cap - n, "%s\"i%d\"", i ? "," : "", i);
        snprintf(t + n, cap - n, "]}");
        if (total == 1024) {
            CHECK_INT(PARSE(t), 0);
            CHECK_UINT(req.nnames, 1024);
            CHECK_STR(req.names[1023], "i1023");
            done();
        } else {
            ERR(t, CG_ERR_TOO_MANY_SUBSCRIPTIONS, "5");
        }
    }
    free(t);
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
    test_pattern();
    return check_summary("request");
}
