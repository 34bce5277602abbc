/* test_frame.c -- unit tests of refcounted frames and their encoders (gateway/frame.h).
 * Every encoder is checked byte for byte; frames are also parsed back with jansson. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "frame.h"

static int marker_a, marker_b;

/* Checks that f holds exactly want (and nothing past it: len is exact), that its
 * headroom is CG_FRAME_PRE bytes, that it has one reference, the given kind, and
 * that it is one JSON object with no raw line break. Drops f. */
static void expect_frame(struct cg_frame *f, const char *want, int kind, const void *ckey, int line)
{
    if (!check_(f != NULL, __FILE__, line, "frame allocated"))
        return;
    check_mem_(cg_frame_data(f), f->len, want, __FILE__, line, "frame bytes");
    check_(cg_frame_data(f) == f->buf + CG_FRAME_PRE, __FILE__, line, "headroom");
    check_int_(f->refs, 1, __FILE__, line, "f->refs", "1");
    check_int_(f->kind, kind, __FILE__, line, "f->kind", "kind");
    check_(f->ckey == ckey, __FILE__, line, "f->ckey");
    check_(!memchr(cg_frame_data(f), '\n', f->len) && !memchr(cg_frame_data(f), '\r', f->len),
           __FILE__, line, "no raw line break");
    /* The headroom is the WebSocket layer's: scribbling on it must not touch the data. */
    memset(f->buf, 0xAA, CG_FRAME_PRE);
    check_mem_(cg_frame_data(f), f->len, want, __FILE__, line, "frame bytes after headroom use");
    json_error_t err;
    json_t *v = json_loadb((const char *)cg_frame_data(f), f->len, JSON_REJECT_DUPLICATES, &err);
    check_(json_is_object(v), __FILE__, line, "frame parses as a JSON object");
    json_decref(v);
    cg_frame_unref(f);
}

#define EXPECT(f, want, kind, ckey) expect_frame((f), (want), (kind), (ckey), __LINE__)

static void test_alloc_ref(void)
{
    CHECK(CG_FRAME_PRE >= 16);
    struct cg_frame *f = cg_frame_alloc(10);
    if (!CHECK(f != NULL))
        return;
    CHECK_UINT(f->refs, 1);
    CHECK_INT(f->kind, CG_FRAME_CONTROL);
    CHECK(f->ckey == NULL);
    CHECK_UINT(f->len, 10);
    CHECK(cg_frame_data(f) == f->buf + CG_FRAME_PRE);
    memset(f->buf, 0, CG_FRAME_PRE + 10); /* the whole buffer is writable (ASan checks) */
    CHECK(cg_frame_ref(f) == f);
    CHECK_UINT(f->refs, 2);
    cg_frame_ref(f);
    CHECK_UINT(f->refs, 3);
    cg_frame_unref(f);
    cg_frame_unref(f);
    CHECK_UINT(f->refs, 1);
    cg_frame_unref(f); /* freed: LeakSanitizer would report otherwise */
    cg_frame_unref(NULL);

    struct cg_frame *z = cg_frame_alloc(0);
    if (CHECK(z != NULL)) {
        CHECK_UINT(z->len, 0);
        cg_frame_unref(z);
    }
}

static void test_tick(void)
{
    const char *data = "{\"last\":3571.0,\"bid\":3570.0}";
    EXPECT(cg_frame_tick(&marker_a, "rb2501", 12, data, strlen(data)),
           "{\"type\":\"tick\",\"instrument\":\"rb2501\",\"seq\":12,\"data\":{\"last\":3571.0,"
           "\"bid\":3570.0}}",
           CG_FRAME_TICK, &marker_a);
    EXPECT(cg_frame_tick(&marker_b, "a.b_c-D", 1, "{}", 2),
           "{\"type\":\"tick\",\"instrument\":\"a.b_c-D\",\"seq\":1,\"data\":{}}", CG_FRAME_TICK,
           &marker_b);
    EXPECT(cg_frame_tick(&marker_a, "x", 0, "{}", 2),
           "{\"type\":\"tick\",\"instrument\":\"x\",\"seq\":0,\"data\":{}}", CG_FRAME_TICK,
           &marker_a);
    EXPECT(cg_frame_tick(&marker_a, "x", INT64_MAX, "{}", 2),
           "{\"type\":\"tick\",\"instrument\":\"x\",\"seq\":9223372036854775807,\"data\":{}}",
           CG_FRAME_TICK, &marker_a);
    /* (jansson cannot read integers past INT64_MAX back: compare the bytes only.) */
    struct cg_frame *f = cg_frame_tick(&marker_a, "x", UINT64_MAX, "{}", 2);
    if (CHECK(f != NULL)) {
        CHECK_MEM(cg_frame_data(f), f->len,
                  "{\"type\":\"tick\",\"instrument\":\"x\",\"seq\":18446744073709551615,"
                  "\"data\":{}}");
        cg_frame_unref(f);
    }
    /* Only data_len bytes of data_json are copied. */
    EXPECT(cg_frame_tick(&marker_a, "rb2501", 7, "{\"a\":1}GARBAGE", 7),
           "{\"type\":\"tick\",\"instrument\":\"rb2501\",\"seq\":7,\"data\":{\"a\":1}}",
           CG_FRAME_TICK, &marker_a);

    /* A large payload: exact length, copied intact. */
    size_t big = 200000;
    char *d = malloc(big + 1), *want = malloc(big + 100);
    if (!CHECK(d && want)) {
        free(d);
        free(want);
        return;
    }
    d[0] = '{';
    d[1] = '"';
    d[2] = 's';
    d[3] = '"';
    d[4] = ':';
    d[5] = '"';
    memset(d + 6, 'z', big - 8);
    d[big - 2] = '"';
    d[big - 1] = '}';
    d[big] = 0;
    snprintf(want, big + 100, "{\"type\":\"tick\",\"instrument\":\"big\",\"seq\":3,\"data\":%s}",
             d);
    EXPECT(cg_frame_tick(&marker_a, "big", 3, d, big), want, CG_FRAME_TICK, &marker_a);
    free(d);
    free(want);
}

static void test_message(void)
{
    const char *d = "{\"kind\":\"order_filled\",\"qty\":2}";
    EXPECT(cg_frame_message("user", d, strlen(d)),
           "{\"type\":\"message\",\"channel\":\"user\",\"data\":{\"kind\":\"order_filled\","
           "\"qty\":2}}",
           CG_FRAME_MESSAGE, NULL);
    EXPECT(cg_frame_message("broadcast", "\"Market closes early\"", 21),
           "{\"type\":\"message\",\"channel\":\"broadcast\",\"data\":\"Market closes early\"}",
           CG_FRAME_MESSAGE, NULL);
    EXPECT(cg_frame_message("broadcast", "null", 4),
           "{\"type\":\"message\",\"channel\":\"broadcast\",\"data\":null}", CG_FRAME_MESSAGE,
           NULL);
    EXPECT(cg_frame_message("user", "[1,2,3]xyz", 7),
           "{\"type\":\"message\",\"channel\":\"user\",\"data\":[1,2,3]}", CG_FRAME_MESSAGE, NULL);
}

static void test_error(void)
{
    EXPECT(cg_frame_error("bad_json", "not valid JSON", NULL),
           "{\"type\":\"error\",\"code\":\"bad_json\",\"message\":\"not valid JSON\"}",
           CG_FRAME_CONTROL, NULL);
    EXPECT(cg_frame_error("forbidden", "instrument not allowed for this session: cu2501", "7"),
           "{\"type\":\"error\",\"code\":\"forbidden\",\"message\":\"instrument not allowed for "
           "this session: cu2501\",\"id\":7}",
           CG_FRAME_CONTROL, NULL);
    EXPECT(cg_frame_error("rate_limited", "", "\"req-1\""),
           "{\"type\":\"error\",\"code\":\"rate_limited\",\"message\":\"\",\"id\":\"req-1\"}",
           CG_FRAME_CONTROL, NULL);
    /* The message is JSON-escaped: quotes, backslashes and control characters. */
    EXPECT(cg_frame_error("bad_request", "say \"hi\" \\ now\n\t\x01\x1f end", "-3"),
           "{\"type\":\"error\",\"code\":\"bad_request\",\"message\":\"say \\\"hi\\\" \\\\ "
           "now\\u000a\\u0009\\u0001\\u001f end\",\"id\":-3}",
           CG_FRAME_CONTROL, NULL);

    /* Round trip: the escaped message parses back to the original text. */
    const char *msg = "q\"b\\c\nd\re\x02";
    struct cg_frame *f = cg_frame_error("bad_json", msg, "\"x\"");
    if (CHECK(f != NULL)) {
        json_t *v = json_loadb((const char *)cg_frame_data(f), f->len, 0, NULL);
        CHECK_STR(json_string_value(json_object_get(v, "message")), msg);
        CHECK_STR(json_string_value(json_object_get(v, "id")), "x");
        CHECK_STR(json_string_value(json_object_get(v, "code")), "bad_json");
        json_decref(v);
        cg_frame_unref(f);
    }
}

static void test_pong(void)
{
    EXPECT(cg_frame_pong(NULL), "{\"type\":\"pong\"}", CG_FRAME_CONTROL, NULL);
    EXPECT(cg_frame_pong("3"), "{\"type\":\"pong\",\"id\":3}", CG_FRAME_CONTROL, NULL);
    EXPECT(cg_frame_pong("\"abc\""), "{\"type\":\"pong\",\"id\":\"abc\"}", CG_FRAME_CONTROL, NULL);
}

static void test_names(void)
{
    const char *two[] = {"rb2501", "au2412"};
    EXPECT(cg_frame_names("subscribed", "7", two, 2),
           "{\"type\":\"subscribed\",\"id\":7,\"instruments\":[\"rb2501\",\"au2412\"]}",
           CG_FRAME_CONTROL, NULL);
    EXPECT(cg_frame_names("unsubscribed", NULL, two, 1),
           "{\"type\":\"unsubscribed\",\"instruments\":[\"rb2501\"]}", CG_FRAME_CONTROL, NULL);
    EXPECT(cg_frame_names("instruments", "\"l\"", NULL, 0),
           "{\"type\":\"instruments\",\"id\":\"l\",\"instruments\":[]}", CG_FRAME_CONTROL, NULL);
    EXPECT(cg_frame_names("instruments", NULL, NULL, 0),
           "{\"type\":\"instruments\",\"instruments\":[]}", CG_FRAME_CONTROL, NULL);
    const char *three[] = {"a", "b.c", "D_e-9"};
    EXPECT(cg_frame_names("instruments", "0", three, 3),
           "{\"type\":\"instruments\",\"id\":0,\"instruments\":[\"a\",\"b.c\",\"D_e-9\"]}",
           CG_FRAME_CONTROL, NULL);

    /* 1024 names of 32 characters: exact length. */
    enum { N = 1024 };
    static char namebuf[N][33];
    static const char *names[N];
    for (int i = 0; i < N; i++) {
        snprintf(namebuf[i], sizeof(namebuf[i]), "%032d", i);
        names[i] = namebuf[i];
    }
    struct cg_frame *f = cg_frame_names("subscribed", "1", names, N);
    if (CHECK(f != NULL)) {
        size_t want = strlen("{\"type\":\"subscribed\",\"id\":1,\"instruments\":[]}") +
                      N * (32 + 2) + (N - 1);
        CHECK_UINT(f->len, want);
        json_t *v = json_loadb((const char *)cg_frame_data(f), f->len, 0, NULL);
        json_t *arr = json_object_get(v, "instruments");
        CHECK_UINT(json_array_size(arr), N);
        CHECK_STR(json_string_value(json_array_get(arr, N - 1)), namebuf[N - 1]);
        json_decref(v);
        cg_frame_unref(f);
    }
}

static void test_shared(void)
{
    /* One frame, several holders: freed only when the last reference goes. */
    struct cg_frame *f = cg_frame_tick(&marker_a, "rb2501", 1, "{}", 2);
    if (!CHECK(f != NULL))
        return;
    struct cg_frame *holders[5];
    for (int i = 0; i < 5; i++)
        holders[i] = cg_frame_ref(f);
    CHECK_UINT(f->refs, 6);
    cg_frame_unref(f);
    for (int i = 0; i < 4; i++)
        cg_frame_unref(holders[i]);
    CHECK_UINT(holders[4]->refs, 1);
    CHECK_MEM(cg_frame_data(holders[4]), holders[4]->len,
              "{\"type\":\"tick\",\"instrument\":\"rb2501\",\"seq\":1,\"data\":{}}");
    cg_frame_unref(holders[4]);
}

int main(void)
{
    test_alloc_ref();
    test_tick();
    test_message();
    test_error();
    test_pong();
    test_names();
    test_shared();
    return check_summary("frame");
}
