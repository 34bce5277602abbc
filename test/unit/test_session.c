/* test_session.c -- unit tests of session parsing, allowlists and name rules
 * (gateway/session.h). */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "instrument.h"
#include "session.h"

#define NOW 1767225000LL

static char why[256];

static enum cg_session_status parse(const char *json, int64_t now, struct cg_session **out)
{
    memset(why, 0, sizeof(why));
    *out = (struct cg_session *)0x1; /* must be overwritten */
    return cg_session_parse(json, strlen(json), now, out, why, sizeof(why));
}

static void test_full_session(void)
{
    struct cg_session *s;
    CHECK_INT(parse("{\"user_id\":\"u1\",\"instruments\":[\"rb*\",\"au2412\"],\"exp\":1767225600}",
                    NOW, &s),
              CG_SESSION_OK);
    if (!CHECK(s != NULL && s != (struct cg_session *)0x1))
        return;
    CHECK_STR(s->user_id, "u1");
    CHECK_INT(s->exp, 1767225600LL);
    CHECK_INT(s->all_instruments, 0);
    CHECK_UINT(s->npatterns, 2);
    CHECK_STR(s->patterns[0], "rb*");
    CHECK_STR(s->patterns[1], "au2412");

    CHECK_INT(cg_session_allows(s, "rb2501"), 1);
    CHECK_INT(cg_session_allows(s, "rb"), 1); /* '*' matches the empty run */
    CHECK_INT(cg_session_allows(s, "rb.x-y_z"), 1);
    CHECK_INT(cg_session_allows(s, "au2412"), 1);
    CHECK_INT(cg_session_allows(s, "au2501"), 0);
    CHECK_INT(cg_session_allows(s, "au24121"), 0); /* whole-name match */
    CHECK_INT(cg_session_allows(s, "xrb2501"), 0);
    CHECK_INT(cg_session_allows(s, "RB2501"), 0); /* case-sensitive */
    CHECK_INT(cg_session_allows(s, "r"), 0);
    cg_session_destroy(s);

    /* Other members are ignored. */
    CHECK_INT(parse("{\"user_id\":\"u2\",\"django\":{\"x\":[1,2]},\"name\":\"n\"}", NOW, &s),
              CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_STR(s->user_id, "u2");
        CHECK_INT(s->exp, 0);
        cg_session_destroy(s);
    }
    cg_session_destroy(NULL);
}

static void test_allowlist_shapes(void)
{
    struct cg_session *s;
    /* Absent instruments: everything. */
    CHECK_INT(parse("{\"user_id\":\"u\"}", NOW, &s), CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_INT(s->all_instruments, 1);
        CHECK_UINT(s->npatterns, 0);
        CHECK_INT(cg_session_allows(s, "anything"), 1);
        CHECK_INT(cg_session_allows(s, "rb2501"), 1);
        cg_session_destroy(s);
    }
    /* []: nothing. */
    CHECK_INT(parse("{\"user_id\":\"u\",\"instruments\":[]}", NOW, &s), CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_INT(s->all_instruments, 0);
        CHECK_UINT(s->npatterns, 0);
        CHECK_INT(cg_session_allows(s, "rb2501"), 0);
        CHECK_INT(cg_session_allows(s, "a"), 0);
        cg_session_destroy(s);
    }
    /* '?' matches exactly one character. */
    CHECK_INT(parse("{\"user_id\":\"u\",\"instruments\":[\"au24?2\",\"*.SH\"]}", NOW, &s),
              CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_INT(cg_session_allows(s, "au2412"), 1);
        CHECK_INT(cg_session_allows(s, "au24x2"), 1);
        CHECK_INT(cg_session_allows(s, "au242"), 0);
        CHECK_INT(cg_session_allows(s, "au24112"), 0);
        CHECK_INT(cg_session_allows(s, "600000.SH"), 1);
        CHECK_INT(cg_session_allows(s, "600000.SZ"), 0);
        cg_session_destroy(s);
    }
    /* "*" alone allows everything, including names starting with '.'. */
    CHECK_INT(parse("{\"user_id\":\"u\",\"instruments\":[\"*\"]}", NOW, &s), CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_INT(cg_session_allows(s, "rb2501"), 1);
        CHECK_INT(cg_session_allows(s, ".hidden"), 1);
        cg_session_destroy(s);
    }
    /* fnmatch sets: "[...]" matches one of a set. */
    CHECK_INT(parse("{\"user_id\":\"u\",\"instruments\":[\"au24[01]2\",\"ni[a-c]?\"]}", NOW, &s),
              CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_INT(cg_session_allows(s, "au2402"), 1);
        CHECK_INT(cg_session_allows(s, "au2412"), 1);
        CHECK_INT(cg_session_allows(s, "au2422"), 0);
        CHECK_INT(cg_session_allows(s, "nib1"), 1);
        CHECK_INT(cg_session_allows(s, "nid1"), 0);
        cg_session_destroy(s);
    }
    /* A pattern of 64 characters is the longest. */
    char p64[80], json[200];
    memset(p64, 'p', 63);
    p64[63] = '*';
    p64[64] = 0;
    snprintf(json, sizeof(json), "{\"user_id\":\"u\",\"instruments\":[\"%s\"]}", p64);
    CHECK_INT(parse(json, NOW, &s), CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_STR(s->patterns[0], p64);
        cg_session_destroy(s);
    }
    /* 64 patterns are accepted. */
    char buf[2048];
    int n = snprintf(buf, sizeof(buf), "{\"user_id\":\"u\",\"instruments\":[");
    for (int i = 0; i < 64; i++)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s\"p%d\"", i ? "," : "", i);
    snprintf(buf + n, sizeof(buf) - (size_t)n, "]}");
    CHECK_INT(parse(buf, NOW, &s), CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_UINT(s->npatterns, 64);
        CHECK_INT(cg_session_allows(s, "p63"), 1);
        CHECK_INT(cg_session_allows(s, "p64"), 0);
        cg_session_destroy(s);
    }
}

static void test_expiry(void)
{
    struct cg_session *s;
    char buf[128];
    snprintf(buf, sizeof(buf), "{\"user_id\":\"u\",\"exp\":%lld}", NOW + 1);
    CHECK_INT(parse(buf, NOW, &s), CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_INT(s->exp, NOW + 1);
        cg_session_destroy(s);
    }
    /* Invalid once now >= exp. */
    snprintf(buf, sizeof(buf), "{\"user_id\":\"u\",\"exp\":%lld}", NOW);
    CHECK_INT(parse(buf, NOW, &s), CG_SESSION_EXPIRED);
    CHECK(s == NULL);
    snprintf(buf, sizeof(buf), "{\"user_id\":\"u\",\"exp\":%lld}", NOW - 3600);
    CHECK_INT(parse(buf, NOW, &s), CG_SESSION_EXPIRED);
    CHECK(s == NULL);
    CHECK_INT(parse("{\"user_id\":\"u\",\"exp\":-1}", NOW, &s), CG_SESSION_EXPIRED);
    CHECK(s == NULL);
    /* PROTOCOL.md 11.1 and session.schema.json: exp is an integer and the session is
     * invalid once the current time >= exp; only an ABSENT exp means no expiry. An
     * explicit "exp":0 is in the past. */
    enum cg_session_status st = parse("{\"user_id\":\"u\",\"exp\":0}", NOW, &s);
    CHECK_INT(st, CG_SESSION_EXPIRED);
    if (st == CG_SESSION_OK)
        cg_session_destroy(s);
    else
        CHECK(s == NULL);
}

/* A malformed session: CG_SESSION_BAD, *out NULL, a non-empty why that does not
 * quote the input (which holds the marker SECRET). */
static void bad_case(const char *json, int line)
{
    struct cg_session *s;
    enum cg_session_status st = parse(json, NOW, &s);
    if (!check_int_(st, CG_SESSION_BAD, __FILE__, line, json, "CG_SESSION_BAD"))
        cg_session_destroy(st == CG_SESSION_OK ? s : NULL);
    check_(s == NULL, __FILE__, line, "out == NULL");
    check_(why[0] != 0, __FILE__, line, "why non-empty");
    check_(strstr(why, "SECRET") == NULL, __FILE__, line, "why does not quote the input");
    check_(strchr(why, '\n') == NULL, __FILE__, line, "why is one line");
}

#define BAD(json) bad_case((json), __LINE__)

static void test_bad(void)
{
    BAD("");
    BAD("SECRET");
    BAD("{\"user_id\":\"SECRET\"");
    BAD("[\"SECRET\"]");
    BAD("\"SECRET\"");
    BAD("{}");
    BAD("{\"SECRET\":1}");
    BAD("{\"user_id\":\"\"}");
    BAD("{\"user_id\":5}");
    BAD("{\"user_id\":null}");
    BAD("{\"user_id\":[\"SECRET\"]}");
    BAD("{\"user_id\":\"SECRET\",\"exp\":\"1767225600\"}");
    BAD("{\"user_id\":\"SECRET\",\"exp\":1767225600.5}");
    BAD("{\"user_id\":\"SECRET\",\"exp\":true}");
    BAD("{\"user_id\":\"SECRET\",\"instruments\":\"rb*\"}");
    BAD("{\"user_id\":\"SECRET\",\"instruments\":{\"rb*\":1}}");
    BAD("{\"user_id\":\"SECRET\",\"instruments\":[1]}");
    BAD("{\"user_id\":\"SECRET\",\"instruments\":[\"rb*\",null]}");
    BAD("{\"user_id\":\"SECRET\",\"instruments\":[\"\"]}");
    BAD("{\"user_id\":\"SECRET\",\"user_id\":\"SECRET2\"}"); /* duplicate key */
    /* PROTOCOL.md 1 (401 row) and session.schema.json: "instruments" is an array and
     * "exp" an integer; null is the wrong type, hence a malformed session. Accepting
     * "instruments":null as "absent" fails open: it allows EVERY instrument. */
    BAD("{\"user_id\":\"SECRET\",\"instruments\":null}");
    BAD("{\"user_id\":\"SECRET\",\"exp\":null}");

    /* Patterns: only [A-Za-z0-9._-*?[]], at most 64 characters (PROTOCOL.md 11.1). */
    BAD("{\"user_id\":\"u\",\"instruments\":[\"rb 2501 SECRET\"]}");
    BAD("{\"user_id\":\"u\",\"instruments\":[\"rb/SECRET\"]}");
    BAD("{\"user_id\":\"u\",\"instruments\":[\"[!a]SECRET\"]}");
    BAD("{\"user_id\":\"u\",\"instruments\":[\"SECRET\\\\*\"]}");
    BAD("{\"user_id\":\"u\",\"instruments\":[\"rb*\",\"\xc3\xa9SECRET\"]}");
    BAD("{\"user_id\":\"u\",\"instruments\":[\"SECRET"
        "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp\"]}"); /* 66 */

    /* user_id up to 128 bytes. */
    char buf[8192], uid[200];
    memset(uid, 'u', 129);
    uid[129] = 0;
    snprintf(buf, sizeof(buf), "{\"user_id\":\"%s\"}", uid);
    BAD(buf);
    uid[128] = 0;
    snprintf(buf, sizeof(buf), "{\"user_id\":\"%s\"}", uid);
    struct cg_session *s;
    CHECK_INT(parse(buf, NOW, &s), CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_STR(s->user_id, uid);
        cg_session_destroy(s);
    }

    /* More than 64 patterns. */
    int n = snprintf(buf, sizeof(buf), "{\"user_id\":\"u\",\"instruments\":[");
    for (int i = 0; i < 65; i++)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s\"SECRET%d\"", i ? "," : "", i);
    snprintf(buf + n, sizeof(buf) - (size_t)n, "]}");
    BAD(buf);

    /* why may be NULL, and is truncated to whysz. */
    s = (struct cg_session *)0x1;
    CHECK_INT(cg_session_parse("[]", 2, NOW, &s, NULL, 0), CG_SESSION_BAD);
    CHECK(s == NULL);
    char small[8];
    memset(small, 'X', sizeof(small));
    CHECK_INT(cg_session_parse("{}", 2, NOW, &s, small, sizeof(small)), CG_SESSION_BAD);
    CHECK_UINT(strlen(small), sizeof(small) - 1);
}

/* "services" (PROTOCOL.md §16): the same glob allowlist as "instruments", for the configured
 * services a session may send to; the two lists are independent. */
static void test_services(void)
{
    struct cg_session *s;
    /* Absent: every service; the instruments list does not narrow it. */
    CHECK_INT(parse("{\"user_id\":\"u\",\"instruments\":[]}", NOW, &s), CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_INT(s->all_services, 1);
        CHECK_UINT(s->nservice_patterns, 0);
        CHECK_INT(cg_session_allows_service(s, "alerts"), 1);
        CHECK_INT(cg_session_allows_service(s, "x"), 1);
        CHECK_INT(cg_session_allows(s, "rb2501"), 0);
        cg_session_destroy(s);
    }
    /* []: none; the instruments (absent) are still all. */
    CHECK_INT(parse("{\"user_id\":\"u\",\"services\":[]}", NOW, &s), CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_INT(s->all_services, 0);
        CHECK_UINT(s->nservice_patterns, 0);
        CHECK_INT(cg_session_allows_service(s, "alerts"), 0);
        CHECK_INT(cg_session_allows_service(s, "a"), 0);
        CHECK_INT(s->all_instruments, 1);
        CHECK_INT(cg_session_allows(s, "rb2501"), 1);
        cg_session_destroy(s);
    }
    /* Patterns: whole-name, case-sensitive globs. */
    CHECK_INT(parse("{\"user_id\":\"u\",\"instruments\":[\"rb*\"],\"services\":[\"alerts\","
                    "\"ord*\",\"v?.api\",\"[ab]x\"],\"exp\":1767225600}",
                    NOW, &s),
              CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_INT(s->all_services, 0);
        CHECK_UINT(s->nservice_patterns, 4);
        CHECK_STR(s->service_patterns[0], "alerts");
        CHECK_STR(s->service_patterns[3], "[ab]x");
        CHECK_INT(cg_session_allows_service(s, "alerts"), 1);
        CHECK_INT(cg_session_allows_service(s, "alert"), 0);
        CHECK_INT(cg_session_allows_service(s, "alerts2"), 0);
        CHECK_INT(cg_session_allows_service(s, "ALERTS"), 0);
        CHECK_INT(cg_session_allows_service(s, "orders"), 1);
        CHECK_INT(cg_session_allows_service(s, "ord"), 1);
        CHECK_INT(cg_session_allows_service(s, "orders.v2"), 1);
        CHECK_INT(cg_session_allows_service(s, "xorders"), 0);
        CHECK_INT(cg_session_allows_service(s, "v2.api"), 1);
        CHECK_INT(cg_session_allows_service(s, "v22.api"), 0);
        CHECK_INT(cg_session_allows_service(s, "bx"), 1);
        CHECK_INT(cg_session_allows_service(s, "cx"), 0);
        /* each list answers for its own kind of name only */
        CHECK_INT(cg_session_allows_service(s, "rb2501"), 0);
        CHECK_INT(cg_session_allows(s, "alerts"), 0);
        CHECK_INT(cg_session_allows(s, "rb2501"), 1);
        CHECK_UINT(s->npatterns, 1);
        cg_session_destroy(s);
    }
    /* "*" allows every service; 64 patterns are the most. */
    CHECK_INT(parse("{\"user_id\":\"u\",\"services\":[\"*\"]}", NOW, &s), CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_INT(s->all_services, 0);
        CHECK_INT(cg_session_allows_service(s, "anything.at-all_9"), 1);
        cg_session_destroy(s);
    }
    char buf[4096];
    int n = snprintf(buf, sizeof(buf), "{\"user_id\":\"u\",\"services\":[");
    for (int i = 0; i < 64; i++)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s\"s%d\"", i ? "," : "", i);
    snprintf(buf + n, sizeof(buf) - (size_t)n, "]}");
    CHECK_INT(parse(buf, NOW, &s), CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_UINT(s->nservice_patterns, 64);
        CHECK_STR(s->service_patterns[63], "s63");
        CHECK_INT(cg_session_allows_service(s, "s63"), 1);
        CHECK_INT(cg_session_allows_service(s, "s64"), 0);
        cg_session_destroy(s);
    }
    /* An expired session with services is refused (and frees what it had copied). */
    CHECK_INT(parse("{\"user_id\":\"u\",\"services\":[\"a\",\"b\"],\"exp\":5}", NOW, &s),
              CG_SESSION_EXPIRED);
    CHECK(s == NULL);
}

/* A malformed "services": CG_SESSION_BAD with a reason that names services (what the
 * handshake's log line says), not instruments. */
static void bad_services_case(const char *json, int line)
{
    bad_case(json, line);
    if (!check_(strstr(why, "services") != NULL, __FILE__, line, "why names services"))
        fprintf(stderr, "    why: %s\n", why);
    check_(strstr(why, "instruments") == NULL, __FILE__, line, "why does not blame instruments");
}

#define BAD_SERVICES(json) bad_services_case((json), __LINE__)

static void test_services_bad(void)
{
    /* A wrong type never means "all" (null included), nor does a wrong element. */
    BAD_SERVICES("{\"user_id\":\"u\",\"services\":null}");
    BAD_SERVICES("{\"user_id\":\"u\",\"services\":\"alerts\"}");
    BAD_SERVICES("{\"user_id\":\"u\",\"services\":{\"alerts\":true}}");
    BAD_SERVICES("{\"user_id\":\"u\",\"services\":true}");
    BAD_SERVICES("{\"user_id\":\"u\",\"services\":1}");
    BAD_SERVICES("{\"user_id\":\"u\",\"services\":[1]}");
    BAD_SERVICES("{\"user_id\":\"u\",\"services\":[\"alerts\",null]}");
    BAD_SERVICES("{\"user_id\":\"u\",\"services\":[[\"alerts\"]]}");
    BAD_SERVICES("{\"user_id\":\"u\",\"services\":[\"\"]}");
    BAD_SERVICES("{\"user_id\":\"u\",\"services\":[\"al erts\"]}");
    BAD_SERVICES("{\"user_id\":\"u\",\"services\":[\"a/b\"]}");
    BAD_SERVICES("{\"user_id\":\"u\",\"services\":[\"!a\"]}");
    BAD_SERVICES("{\"user_id\":\"u\",\"services\":[\"\xc3\xa9\"]}");
    BAD_SERVICES("{\"user_id\":\"u\",\"services\":[\"alerts\\n\"]}");
    BAD_SERVICES("{\"user_id\":\"u\",\"services\":[\"pppppppppppppppppppppppppppppppp"
                 "ppppppppppppppppppppppppppppppppp\"]}"); /* 65 */
    /* ...also next to a valid instruments list */
    BAD_SERVICES("{\"user_id\":\"u\",\"instruments\":[\"rb*\"],\"services\":\"*\"}");
    /* More than 64 patterns. */
    char buf[4096];
    int n = snprintf(buf, sizeof(buf), "{\"user_id\":\"u\",\"services\":[");
    for (int i = 0; i < 65; i++)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s\"s%d\"", i ? "," : "", i);
    snprintf(buf + n, sizeof(buf) - (size_t)n, "]}");
    BAD_SERVICES(buf);
    CHECK(strstr(why, "64") != NULL);
    /* A bad instruments list is reported as such, even with a bad services list too. */
    bad_case("{\"user_id\":\"u\",\"instruments\":null,\"services\":null}", __LINE__);
    CHECK(strstr(why, "instruments") != NULL);
    bad_case("{\"user_id\":\"u\",\"instruments\":[\"a b\"],\"services\":[]}", __LINE__);
    CHECK(strstr(why, "instruments") != NULL);
}

static void test_length_param(void)
{
    /* Only len bytes are parsed. */
    const char *json = "{\"user_id\":\"u7\"}trailing garbage";
    struct cg_session *s = NULL;
    CHECK_INT(cg_session_parse(json, 16, NOW, &s, why, sizeof(why)), CG_SESSION_OK);
    if (CHECK(s != NULL)) {
        CHECK_STR(s->user_id, "u7");
        cg_session_destroy(s);
    }
    CHECK_INT(cg_session_parse(json, strlen(json), NOW, &s, why, sizeof(why)), CG_SESSION_BAD);
    CHECK(s == NULL);
}

static void test_session_id(void)
{
    CHECK_INT(cg_session_id_valid("abc", 3), 1);
    CHECK_INT(cg_session_id_valid("aZ09_-", 6), 1);
    CHECK_INT(cg_session_id_valid("k2f9d0s8a7", 10), 1);
    CHECK_INT(cg_session_id_valid("", 0), 0);
    CHECK_INT(cg_session_id_valid("a.b", 3), 0);
    CHECK_INT(cg_session_id_valid("a b", 3), 0);
    CHECK_INT(cg_session_id_valid("a=b", 3), 0);
    CHECK_INT(cg_session_id_valid("a:b", 3), 0);
    CHECK_INT(cg_session_id_valid("a*", 2), 0);
    CHECK_INT(cg_session_id_valid("a\0b", 3), 0);
    CHECK_INT(cg_session_id_valid("\xc3\xa9", 2), 0);
    CHECK_INT(cg_session_id_valid("abc;", 3), 1); /* only len bytes count */
    char id[200];
    memset(id, 'a', sizeof(id));
    CHECK_INT(cg_session_id_valid(id, 128), 1);
    CHECK_INT(cg_session_id_valid(id, 129), 0);
}

static void test_instrument_name(void)
{
    CHECK_INT(cg_instrument_valid("rb2501", 6), 1);
    CHECK_INT(cg_instrument_valid("a.b_c-D9", 8), 1);
    CHECK_INT(cg_instrument_valid("600000.SH", 9), 1);
    CHECK_INT(cg_instrument_valid("", 0), 0);
    CHECK_INT(cg_instrument_valid("a b", 3), 0);
    CHECK_INT(cg_instrument_valid("a/b", 3), 0);
    CHECK_INT(cg_instrument_valid("a*", 2), 0);
    CHECK_INT(cg_instrument_valid("a?", 2), 0);
    CHECK_INT(cg_instrument_valid("a:b", 3), 0);
    CHECK_INT(cg_instrument_valid("a\"", 2), 0);
    CHECK_INT(cg_instrument_valid("a\n", 2), 0);
    CHECK_INT(cg_instrument_valid("a\0b", 3), 0);
    CHECK_INT(cg_instrument_valid("\xc3\xa9", 2), 0);
    CHECK_INT(cg_instrument_valid("rb2501 junk", 6), 1); /* only len bytes count */
    char name[40];
    memset(name, 'x', sizeof(name));
    CHECK_INT(cg_instrument_valid(name, 32), 1);
    CHECK_INT(cg_instrument_valid(name, 33), 0);
}

int main(void)
{
    test_full_session();
    test_allowlist_shapes();
    test_expiry();
    test_bad();
    test_services();
    test_services_bad();
    test_length_param();
    test_session_id();
    test_instrument_name();
    return check_summary("session");
}
