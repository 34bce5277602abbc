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

/* send's answer and a service's reply (PROTOCOL.md §4, §16.2). */
static void test_sent_reply(void)
{
    EXPECT(cg_frame_sent(NULL), "{\"type\":\"sent\"}", CG_FRAME_CONTROL, NULL);
    EXPECT(cg_frame_sent("7"), "{\"type\":\"sent\",\"id\":7}", CG_FRAME_CONTROL, NULL);
    EXPECT(cg_frame_sent("-9223372036854775808"), "{\"type\":\"sent\",\"id\":-9223372036854775808}",
           CG_FRAME_CONTROL, NULL);
    EXPECT(cg_frame_sent("\"a\\\"b\\\\c\\u0001\""),
           "{\"type\":\"sent\",\"id\":\"a\\\"b\\\\c\\u0001\"}", CG_FRAME_CONTROL, NULL);

    /* A reply is a message frame: never conflated, never dropped while the socket is open. */
    const char *d = "{\"ok\":true,\"alert\":\"a-12\"}";
    EXPECT(cg_frame_reply("alerts", "7", d, strlen(d)),
           "{\"type\":\"reply\",\"service\":\"alerts\",\"id\":7,\"data\":{\"ok\":true,\"alert\":"
           "\"a-12\"}}",
           CG_FRAME_MESSAGE, NULL);
    EXPECT(cg_frame_reply("alerts", NULL, d, strlen(d)),
           "{\"type\":\"reply\",\"service\":\"alerts\",\"data\":{\"ok\":true,\"alert\":\"a-12\"}}",
           CG_FRAME_MESSAGE, NULL);
    EXPECT(cg_frame_reply("orders.v2-x_Y", "\"r-1\"", "null", 4),
           "{\"type\":\"reply\",\"service\":\"orders.v2-x_Y\",\"id\":\"r-1\",\"data\":null}",
           CG_FRAME_MESSAGE, NULL);
    EXPECT(cg_frame_reply("a", "0", "[1,\"x\"]", 7),
           "{\"type\":\"reply\",\"service\":\"a\",\"id\":0,\"data\":[1,\"x\"]}", CG_FRAME_MESSAGE,
           NULL);
    /* Only data_len bytes of data_json are copied. */
    EXPECT(cg_frame_reply("a", NULL, "\"hi\"GARBAGE", 4),
           "{\"type\":\"reply\",\"service\":\"a\",\"data\":\"hi\"}", CG_FRAME_MESSAGE, NULL);
    /* The longest service name and id, and a large data: exact length, copied intact. */
    char svc[65], id[80], want[300];
    memset(svc, 's', 64);
    svc[64] = 0;
    snprintf(id, sizeof(id), "\"%064d\"", 5);
    snprintf(want, sizeof(want), "{\"type\":\"reply\",\"service\":\"%s\",\"id\":%s,\"data\":1.5}",
             svc, id);
    EXPECT(cg_frame_reply(svc, id, "1.5", 3), want, CG_FRAME_MESSAGE, NULL);
    size_t big = 100000;
    char *data = malloc(big + 1), *w = malloc(big + 100);
    if (!CHECK(data && w)) {
        free(data);
        free(w);
        return;
    }
    data[0] = '"';
    memset(data + 1, 'z', big - 2);
    data[big - 1] = '"';
    data[big] = 0;
    snprintf(w, big + 100, "{\"type\":\"reply\",\"service\":\"big\",\"id\":1,\"data\":%s}", data);
    EXPECT(cg_frame_reply("big", "1", data, big), w, CG_FRAME_MESSAGE, NULL);
    free(data);
    free(w);
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

/* ---- bars ------------------------------------------------------------------ */

/* The compact [t,o,h,l,c,v] form and its number formatting: a few decimals are
 * written exactly (up to 6), anything else with %.15g. */
static void test_bar_array(void)
{
    char out[200];
    static const struct {
        double v;
        const char *text;
    } nums[] = {
        {3850.5, "3850.5"},
        {0.05, "0.05"},
        {-12.25, "-12.25"},
        {100, "100"},
        {0, "0"},
        {-0.04, "-0.04"},
        {123456.789012, "123456.789012"}, /* 6 decimals */
        {0.1 + 0.2, "0.3"},
        {1e15, "1e+15"},
        {1234.5678901, "1234.5678901"}, /* 7 decimals: %.15g */
        {1e-9, "1e-09"},                /* too small for 6 decimals: %.15g */
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        struct cg_bar b = {1732249980000, nums[i].v, 1, 2, 3, 4, 99};
        char want[200];
        snprintf(want, sizeof(want), "[1732249980000,%s,1,2,3,4]", nums[i].text);
        size_t n = cg_frame_bar_array(&b, out, sizeof(out));
        if (!CHECK_MEM(out, n, want))
            fprintf(stderr, "    for %.17g\n", nums[i].v);
        CHECK_UINT(strlen(out), n); /* NUL-terminated */
    }
    struct cg_bar b = {1732249980000, 3850, 3852.5, 3849, 3851, 120, 42};
    size_t n = cg_frame_bar_array(&b, out, sizeof(out));
    CHECK_MEM(out, n, "[1732249980000,3850,3852.5,3849,3851,120]");
    struct cg_bar neg = {-60000, -1, -0.5, -1000000.125, 0.000001, 1e300, 1};
    n = cg_frame_bar_array(&neg, out, sizeof(out));
    CHECK_MEM(out, n, "[-60000,-1,-0.5,-1000000.125,0.000001,1e+300]");
    struct cg_bar big = {INT64_MIN, 0, 0, 0, 0, 0, 1};
    n = cg_frame_bar_array(&big, out, sizeof(out));
    CHECK_MEM(out, n, "[-9223372036854775808,0,0,0,0,0]");
    /* Non-finite values (never from JSON) become 0. */
    struct cg_bar inf = {0, 1.0 / 0.0, -1.0 / 0.0, 0.0 / 0.0, 2, 3, 1};
    n = cg_frame_bar_array(&inf, out, sizeof(out));
    CHECK_MEM(out, n, "[0,0,0,0,2,3]");
    /* The longest form (%.15g with a 3-digit exponent everywhere) fits 160 bytes. */
    struct cg_bar wide = {INT64_MIN,
                          -1.23456789012345e+299,
                          -1.23456789012345e+299,
                          -1.23456789012345e+299,
                          -1.23456789012345e+299,
                          -1.23456789012345e+299,
                          1};
    n = cg_frame_bar_array(&wide, out, sizeof(out));
    CHECK(n < 160);
    CHECK_MEM(out, n,
              "[-9223372036854775808,-1.23456789012345e+299,-1.23456789012345e+299,"
              "-1.23456789012345e+299,-1.23456789012345e+299,-1.23456789012345e+299]");
    /* A short buffer truncates, NUL-terminated. */
    n = cg_frame_bar_array(&b, out, 8);
    CHECK_MEM(out, n, "[173224");
    CHECK_UINT(strlen(out), 7);
}

/* f's bytes (not NUL-terminated) contain needle. */
static int frame_has(struct cg_frame *f, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= f->len; i++)
        if (!memcmp(cg_frame_data(f) + i, needle, nl))
            return 1;
    return 0;
}

static void test_bar(void)
{
    struct cg_bar b = {1732249980000, 3850, 3852.5, 3849, 3851, 120, 42};
    /* Forming: a TICK frame conflated per series (ckey). */
    EXPECT(cg_frame_bar(&marker_a, "rb2501", "1m", 42, &b, 0),
           "{\"type\":\"bar\",\"instrument\":\"rb2501\",\"interval\":\"1m\",\"seq\":42,\"bar\":{"
           "\"t\":1732249980000,\"o\":3850,\"h\":3852.5,\"l\":3849,\"c\":3851,\"v\":120},"
           "\"final\":false}",
           CG_FRAME_TICK, &marker_a);
    /* Final: CONTROL, never conflated, no ckey. */
    EXPECT(cg_frame_bar(&marker_a, "rb2501", "1m", 43, &b, 1),
           "{\"type\":\"bar\",\"instrument\":\"rb2501\",\"interval\":\"1m\",\"seq\":43,\"bar\":{"
           "\"t\":1732249980000,\"o\":3850,\"h\":3852.5,\"l\":3849,\"c\":3851,\"v\":120},"
           "\"final\":true}",
           CG_FRAME_CONTROL, NULL);
    /* The bar's own seq is not what is sent: the seq argument is. */
    struct cg_bar n = {-60000, 3850.5, 0.05, -12.25, 100, 123456.789012, 7};
    EXPECT(cg_frame_bar(&marker_b, "a.b_c-D", "15m", 1, &n, 0),
           "{\"type\":\"bar\",\"instrument\":\"a.b_c-D\",\"interval\":\"15m\",\"seq\":1,\"bar\":{"
           "\"t\":-60000,\"o\":3850.5,\"h\":0.05,\"l\":-12.25,\"c\":100,\"v\":123456.789012},"
           "\"final\":false}",
           CG_FRAME_TICK, &marker_b);
    struct cg_bar tiny = {0, 1e-9, 1, 1, 1, 0, 1};
    EXPECT(cg_frame_bar(&marker_b, "x", "1s", 0, &tiny, 1),
           "{\"type\":\"bar\",\"instrument\":\"x\",\"interval\":\"1s\",\"seq\":0,\"bar\":{"
           "\"t\":0,\"o\":1e-09,\"h\":1,\"l\":1,\"c\":1,\"v\":0},\"final\":true}",
           CG_FRAME_CONTROL, NULL);
    /* seq is unsigned, as in tick frames (jansson cannot read it back: bytes only). */
    struct cg_frame *f = cg_frame_bar(&marker_a, "x", "1s", UINT64_MAX, &tiny, 0);
    if (CHECK(f != NULL)) {
        CHECK(frame_has(f, "\"seq\":18446744073709551615,"));
        cg_frame_unref(f);
    }
    f = cg_frame_bar(&marker_a, "x", "1s", INT64_MAX, &tiny, 0);
    if (CHECK(f != NULL)) {
        CHECK(frame_has(f, "\"seq\":9223372036854775807,"));
        cg_frame_unref(f);
    }
}

static void test_snapshot(void)
{
    /* PROTOCOL.md §4's example: 1m from Redis (first) then memory (second). */
    const struct cg_bar redis1m[] = {{1732249920000, 3848, 3850.5, 3847, 3850, 310, 0}};
    const struct cg_bar mem1m = {1732249980000, 3850, 3852.5, 3849, 3851, 120, 42};
    const struct cg_bar mem5m = {1732249800000, 3845, 3852.5, 3844, 3851, 2210, 42};
    const struct cg_bar *const second1m[] = {&mem1m};
    const struct cg_bar *const second5m[] = {&mem5m};
    const struct cg_frame_bars series[] = {
        {"1m", redis1m, 1, second1m, 1},
        {"5m", NULL, 0, second5m, 1},
    };
    const char *last = "{\"ts\":1732250012345,\"last_price\":3851,\"volume\":120}";
    EXPECT(cg_frame_snapshot("rb2501", 42, last, strlen(last), series, 2),
           "{\"type\":\"snapshot\",\"instrument\":\"rb2501\",\"seq\":42,\"last\":{\"ts\":"
           "1732250012345,\"last_price\":3851,\"volume\":120},\"bars\":{\"1m\":[[1732249920000,"
           "3848,3850.5,3847,3850,310],[1732249980000,3850,3852.5,3849,3851,120]],\"5m\":[["
           "1732249800000,3845,3852.5,3844,3851,2210]]}}",
           CG_FRAME_CONTROL, NULL);
    /* Never ticked: last null, empty arrays. */
    const struct cg_frame_bars empty[] = {{"1m", NULL, 0, NULL, 0}, {"5m", NULL, 0, NULL, 0}};
    EXPECT(cg_frame_snapshot("au2412", 0, NULL, 0, empty, 2),
           "{\"type\":\"snapshot\",\"instrument\":\"au2412\",\"seq\":0,\"last\":null,\"bars\":{"
           "\"1m\":[],\"5m\":[]}}",
           CG_FRAME_CONTROL, NULL);
    /* No interval requested: "bars":{}; only last_len bytes of last are taken. */
    EXPECT(cg_frame_snapshot("x", 7, "{\"a\":1}GARBAGE", 7, NULL, 0),
           "{\"type\":\"snapshot\",\"instrument\":\"x\",\"seq\":7,\"last\":{\"a\":1},\"bars\":{}}",
           CG_FRAME_CONTROL, NULL);
    /* Only Redis bars, several of them, with number formatting. */
    const struct cg_bar two[] = {{0, 0.05, -12.25, 100, 0.000001, 123456.789012, 0},
                                 {60000, 1, 2, 3, 4, 5, 0}};
    const struct cg_frame_bars only_first[] = {{"1d", two, 2, NULL, 0}};
    EXPECT(cg_frame_snapshot("x", 9, "{}", 2, only_first, 1),
           "{\"type\":\"snapshot\",\"instrument\":\"x\",\"seq\":9,\"last\":{},"
           "\"bars\":{\"1d\":[[0,0.05,-12.25,100,0.000001,123456.789012],[60000,1,2,3,4,5]]}}",
           CG_FRAME_CONTROL, NULL);

    /* seq is unsigned (jansson cannot read it back: bytes only). */
    struct cg_frame *u = cg_frame_snapshot("x", UINT64_MAX, NULL, 0, NULL, 0);
    if (CHECK(u != NULL)) {
        CHECK_MEM(cg_frame_data(u), u->len,
                  "{\"type\":\"snapshot\",\"instrument\":\"x\",\"seq\":18446744073709551615,"
                  "\"last\":null,\"bars\":{}}");
        cg_frame_unref(u);
    }

    /* 300 bars of the widest form in each of 8 intervals: the exact length, valid. */
    enum { NB = 300, NI = 8 };
    static struct cg_bar wide[NB];
    static const struct cg_bar *wp[NB];
    for (int i = 0; i < NB; i++) {
        wide[i] = (struct cg_bar){INT64_MIN,
                                  -1.23456789012345e+299,
                                  -1.23456789012345e+299,
                                  -1.23456789012345e+299,
                                  -1.23456789012345e+299,
                                  -1.23456789012345e+299,
                                  1};
        wp[i] = &wide[i];
    }
    static const char *const inames[NI] = {"1s", "1m", "5m", "15m", "1h", "1d", "2h", "30s"};
    struct cg_frame_bars many[NI];
    for (int i = 0; i < NI; i++)
        many[i] = (struct cg_frame_bars){inames[i], wide, NB / 2, wp, NB / 2};
    struct cg_frame *f = cg_frame_snapshot("rb2501", 1, "{}", 2, many, NI);
    if (CHECK(f != NULL)) {
        char one[200];
        size_t bl = cg_frame_bar_array(&wide[0], one, sizeof(one));
        size_t want = strlen("{\"type\":\"snapshot\",\"instrument\":\"rb2501\",\"seq\":1,\"last\":"
                             "{},\"bars\":{}}") +
                      (NI - 1);
        for (int i = 0; i < NI; i++)
            want += strlen(inames[i]) + 3 + 2 + NB * bl + (NB - 1);
        CHECK_UINT(f->len, want);
        json_t *v = json_loadb((const char *)cg_frame_data(f), f->len, 0, NULL);
        CHECK_UINT(json_array_size(json_object_get(json_object_get(v, "bars"), "30s")), NB);
        json_decref(v);
        cg_frame_unref(f);
    }
}

static void test_history(void)
{
    const struct cg_bar b[] = {{1732249860000, 3846, 3848, 3845.5, 3847, 95, 0},
                               {1732249920000, 3848, 3850.5, 3847, 3850, 310, 0}};
    const struct cg_frame_bars both = {"1m", b, 2, NULL, 0};
    EXPECT(cg_frame_history("9", "rb2501", &both),
           "{\"type\":\"history\",\"id\":9,\"instrument\":\"rb2501\",\"interval\":\"1m\",\"bars\":"
           "[[1732249860000,3846,3848,3845.5,3847,95],[1732249920000,3848,3850.5,3847,3850,310]]"
           "}",
           CG_FRAME_CONTROL, NULL);
    const struct cg_bar *const sec[] = {&b[1]};
    const struct cg_frame_bars split = {"1m", b, 1, sec, 1};
    EXPECT(cg_frame_history(NULL, "rb2501", &split),
           "{\"type\":\"history\",\"instrument\":\"rb2501\",\"interval\":\"1m\",\"bars\":[["
           "1732249860000,3846,3848,3845.5,3847,95],[1732249920000,3848,3850.5,3847,3850,310]]}",
           CG_FRAME_CONTROL, NULL);
    const struct cg_frame_bars none = {"1d", NULL, 0, NULL, 0};
    EXPECT(cg_frame_history("\"h\"", "x", &none),
           "{\"type\":\"history\",\"id\":\"h\",\"instrument\":\"x\",\"interval\":\"1d\",\"bars\":"
           "[]}",
           CG_FRAME_CONTROL, NULL);
}

static void test_subscribed(void)
{
    const char *names[] = {"rb2501", "au2412"};
    const char *iv[] = {"1m"};
    const int rec[] = {1, 0};
    EXPECT(cg_frame_subscribed("7", names, 2, iv, 1, "3f9a0c1d2e4b5a69", NULL, rec),
           "{\"type\":\"subscribed\",\"id\":7,\"instruments\":[\"rb2501\",\"au2412\"],"
           "\"intervals\":[\"1m\"],\"epoch\":\"3f9a0c1d2e4b5a69\",\"recovered\":{\"rb2501\":true,"
           "\"au2412\":false}}",
           CG_FRAME_CONTROL, NULL);
    /* No since at all: no recovered member; no intervals: []. */
    EXPECT(cg_frame_subscribed(NULL, names, 2, NULL, 0, "e", "", NULL),
           "{\"type\":\"subscribed\",\"instruments\":[\"rb2501\",\"au2412\"],\"intervals\":[],"
           "\"epoch\":\"e\"}",
           CG_FRAME_CONTROL, NULL);
    /* Names without since (-1) are left out; a repeated name appears once there. */
    const char *three[] = {"a", "b", "c", "a"};
    const int rec3[] = {0, -1, 1, 1};
    const char *ivs[] = {"1s", "1m", "5m", "15m", "1h", "1d"};
    EXPECT(cg_frame_subscribed("\"s\"", three, 4, ivs, 6, "00ff", NULL, rec3),
           "{\"type\":\"subscribed\",\"id\":\"s\",\"instruments\":[\"a\",\"b\",\"c\",\"a\"],"
           "\"intervals\":[\"1s\",\"1m\",\"5m\",\"15m\",\"1h\",\"1d\"],\"epoch\":\"00ff\","
           "\"recovered\":{\"a\":false,\"c\":true}}",
           CG_FRAME_CONTROL, NULL);
    /* The shared epoch (PROTOCOL.md §19) follows the process's. */
    EXPECT(cg_frame_subscribed("2", names, 1, NULL, 0, "e", "9e1b7c3d5f0a2b44", NULL),
           "{\"type\":\"subscribed\",\"id\":2,\"instruments\":[\"rb2501\"],\"intervals\":[],"
           "\"epoch\":\"e\",\"shared_epoch\":\"9e1b7c3d5f0a2b44\"}",
           CG_FRAME_CONTROL, NULL);
    const int none[] = {-1, -1};
    EXPECT(cg_frame_subscribed("1", names, 2, iv, 1, "e", NULL, none),
           "{\"type\":\"subscribed\",\"id\":1,\"instruments\":[\"rb2501\",\"au2412\"],"
           "\"intervals\":[\"1m\"],\"epoch\":\"e\",\"recovered\":{}}",
           CG_FRAME_CONTROL, NULL);
    EXPECT(cg_frame_subscribed("1", NULL, 0, NULL, 0, "e", NULL, none),
           "{\"type\":\"subscribed\",\"id\":1,\"instruments\":[],\"intervals\":[],\"epoch\":\"e\","
           "\"recovered\":{}}",
           CG_FRAME_CONTROL, NULL);

    /* 1024 names of 32 characters, 8 intervals, all recovered: exact length. */
    enum { N = 1024 };
    static char namebuf[N][33];
    static const char *nm[N];
    static int all[N];
    for (int i = 0; i < N; i++) {
        snprintf(namebuf[i], sizeof(namebuf[i]), "%032d", i);
        nm[i] = namebuf[i];
        all[i] = i % 2;
    }
    const char *iv8[] = {"1s", "1m", "5m", "15m", "1h", "1d", "2h", "30s"};
    struct cg_frame *f =
        cg_frame_subscribed("123456789", nm, N, iv8, 8, "3f9a0c1d2e4b5a69", "", all);
    if (CHECK(f != NULL)) {
        size_t want = strlen("{\"type\":\"subscribed\",\"id\":123456789,\"instruments\":[],"
                             "\"intervals\":[],\"epoch\":\"3f9a0c1d2e4b5a69\",\"recovered\":{}}");
        want += N * 34 + (N - 1);                                   /* instruments */
        want += 2 + 2 + 2 + 3 + 2 + 2 + 2 + 3 + 8 * 2 + 7;          /* intervals */
        want += N * (34 + 1) + (N / 2) * 4 + (N / 2) * 5 + (N - 1); /* recovered */
        CHECK_UINT(f->len, want);
        json_t *v =
            json_loadb((const char *)cg_frame_data(f), f->len, JSON_REJECT_DUPLICATES, NULL);
        CHECK_UINT(json_object_size(json_object_get(v, "recovered")), N);
        CHECK(json_is_true(json_object_get(json_object_get(v, "recovered"), namebuf[N - 1])));
        json_decref(v);
        cg_frame_unref(f);
    }
}

int main(void)
{
    test_alloc_ref();
    test_tick();
    test_message();
    test_error();
    test_pong();
    test_sent_reply();
    test_names();
    test_shared();
    test_bar_array();
    test_bar();
    test_snapshot();
    test_history();
    test_subscribed();
    return check_summary("frame");
}
