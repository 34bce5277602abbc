/* test_cookie.c -- unit tests of exact-name Cookie header parsing (gateway/cookie.h). */
#include <string.h>

#include "check.h"
#include "cookie.h"

static char out[256];

/* cg_cookie_get on a NUL-terminated header with a large output buffer. */
static int get(const char *header, const char *name)
{
    memset(out, 'X', sizeof(out));
    return cg_cookie_get(header, strlen(header), name, out, sizeof(out));
}

static void test_found(void)
{
    CHECK_INT(get("sessionid=abc", "sessionid"), 3);
    CHECK_STR(out, "abc");
    CHECK_INT(get("csrftoken=abc; sessionid=k2f9d0s8a7; theme=dark", "sessionid"), 10);
    CHECK_STR(out, "k2f9d0s8a7");
    CHECK_INT(get("csrftoken=abc; theme=dark; sessionid=last", "sessionid"), 4);
    CHECK_STR(out, "last");
    CHECK_INT(get("theme=dark", "theme"), 4);
    CHECK_STR(out, "dark");
    /* The first cookie of that name wins. */
    CHECK_INT(get("sessionid=one; sessionid=two", "sessionid"), 3);
    CHECK_STR(out, "one");
}

static void test_exact_name(void)
{
    CHECK_INT(get("xsessionid=bad; sessionid2=bad2; sessionid=good", "sessionid"), 4);
    CHECK_STR(out, "good");
    CHECK_INT(get("xsessionid=bad", "sessionid"), -1);
    CHECK_INT(get("sessionid2=bad", "sessionid"), -1);
    CHECK_INT(get("mysessionid=1; sessionidx=2", "sessionid"), -1);
    CHECK_INT(get("SessionId=x", "sessionid"), -1); /* names are case-sensitive */
    CHECK_INT(get("session=x", "sessionid"), -1);
    /* A name that appears as another cookie's value does not count. */
    CHECK_INT(get("a=sessionid; b=sessionid=x", "sessionid"), -1);
}

static void test_absent(void)
{
    CHECK_INT(get("", "sessionid"), -1);
    CHECK_INT(cg_cookie_get("sessionid=abc", 0, "sessionid", out, sizeof(out)), -1);
    CHECK_INT(get(";;; ,, ", "sessionid"), -1);
    CHECK_INT(get("sessionid", "sessionid"), -1); /* a bare token is not a pair */
    CHECK_INT(get("sessionid;", "sessionid"), -1);
}

static void test_syntax(void)
{
    /* Whitespace around names and values, tabs included. */
    CHECK_INT(get("  a=1 ;  sessionid =  abc  ; x=y", "sessionid"), 3);
    CHECK_STR(out, "abc");
    CHECK_INT(get("a=1;\tsessionid=\tv1\t", "sessionid"), 2);
    CHECK_STR(out, "v1");
    /* No space after ';'. */
    CHECK_INT(get("a=1;sessionid=v2;b=2", "sessionid"), 2);
    CHECK_STR(out, "v2");
    /* Comma-folded headers. */
    CHECK_INT(get("a=1, sessionid=z", "sessionid"), 1);
    CHECK_STR(out, "z");
    /* Quoted values lose their quotes. */
    CHECK_INT(get("sessionid=\"q1\"; a=b", "sessionid"), 2);
    CHECK_STR(out, "q1");
    CHECK_INT(get("sessionid=\"\"", "sessionid"), 0);
    CHECK_STR(out, "");
    CHECK_INT(get("sessionid=\"", "sessionid"), 1); /* a lone quote is the value */
    CHECK_STR(out, "\"");
    /* Empty value. */
    CHECK_INT(get("sessionid=; a=b", "sessionid"), 0);
    CHECK_STR(out, "");
    /* '=' inside the value is part of it. */
    CHECK_INT(get("sessionid=a=b", "sessionid"), 3);
    CHECK_STR(out, "a=b");
    /* Bare tokens and stray '=' before the cookie are skipped. */
    CHECK_INT(get("sessionid; flag; sessionid=v", "sessionid"), 1);
    CHECK_STR(out, "v");
    CHECK_INT(get("=junk; sessionid=w", "sessionid"), 1);
    CHECK_STR(out, "w");
}

static void test_length_bound(void)
{
    /* The header need not be NUL-terminated: only len bytes are read. */
    const char *h = "a=1; sessionid=abcdef";
    CHECK_INT(cg_cookie_get(h, strlen(h) - 3, "sessionid", out, sizeof(out)), 3);
    CHECK_STR(out, "abc");
    char raw[] = {'s', 'e', 's', 's', 'i', 'o', 'n', 'i', 'd', '=', 'x', 'y'}; /* no NUL */
    CHECK_INT(cg_cookie_get(raw, sizeof(raw), "sessionid", out, sizeof(out)), 2);
    CHECK_STR(out, "xy");
    /* Cut in the middle of the name: absent. */
    CHECK_INT(cg_cookie_get(h, 12, "sessionid", out, sizeof(out)), -1);
}

static void test_output_size(void)
{
    char small[4];
    CHECK_INT(cg_cookie_get("sessionid=abc", 13, "sessionid", small, sizeof(small)), 3);
    CHECK_STR(small, "abc");
    CHECK_INT(cg_cookie_get("sessionid=abcd", 14, "sessionid", small, sizeof(small)), -2);
    CHECK_INT(cg_cookie_get("sessionid=", 10, "sessionid", small, 1), 0);
    CHECK_STR(small, "");
    CHECK_INT(cg_cookie_get("sessionid=a", 11, "sessionid", small, 1), -2);
    CHECK_INT(cg_cookie_get("sessionid=a", 11, "sessionid", small, 0), -2);
    /* A 128-character session id fits a 129-byte buffer exactly. */
    char hdr[160], val[129], want[129];
    memset(want, 'k', 128);
    want[128] = 0;
    int n = (int)(strlen("sessionid=") + 128);
    memcpy(hdr, "sessionid=", 10);
    memcpy(hdr + 10, want, 128);
    CHECK_INT(cg_cookie_get(hdr, (size_t)n, "sessionid", val, sizeof(val)), 128);
    CHECK_STR(val, want);
    CHECK_INT(cg_cookie_get(hdr, (size_t)n, "sessionid", val, sizeof(val) - 1), -2);
}

int main(void)
{
    test_found();
    test_exact_name();
    test_absent();
    test_syntax();
    test_length_bound();
    test_output_size();
    return check_summary("cookie");
}
