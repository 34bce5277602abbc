/* test_relay.c -- unit tests of payload routing (gateway/relay.h): one shared frame
 * per published item, seq per instrument, drops counted by reason, envelopes. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "relay.h"

struct delivery {
    struct cg_member *m;
    struct cg_frame *f; /* a reference taken by the hook */
    uint64_t *slot;
    char bytes[1024];
};

static struct delivery dl[64];
static int ndl;
static int hook_cookie;
static void *hook_data_seen;

static void deliver(void *data, struct cg_member *m, struct cg_frame *f, uint64_t *slot)
{
    hook_data_seen = data;
    if (ndl >= 64)
        return;
    struct delivery *d = &dl[ndl++];
    d->m = m;
    d->f = cg_frame_ref(f);
    d->slot = slot;
    size_t n = f->len < sizeof(d->bytes) - 1 ? f->len : sizeof(d->bytes) - 1;
    memcpy(d->bytes, cg_frame_data(f), n);
    d->bytes[n] = 0;
}

static void forget(void)
{
    for (int i = 0; i < ndl; i++)
        cg_frame_unref(dl[i].f);
    ndl = 0;
}

static struct cg_registry reg;
static struct cg_relay relay;
static struct cg_member m1, m2, m3;
static struct cg_sub *paced_sub;
static uint32_t paced_kind, npaced;

static void paced(void *data, struct cg_sub *s, uint32_t kind, struct cg_frame *f)
{
    hook_data_seen = data;
    paced_sub = s;
    paced_kind = kind;
    npaced += f != NULL;
}

static const struct cg_relay_hooks hooks = {deliver, &hook_cookie, NULL, NULL, 0,
                                            NULL,    NULL,         NULL, NULL, paced};

#define MAXP 256

static void setup(void)
{
    cg_registry_init(&reg, NULL, 100);
    cg_relay_init(&relay, &reg, &hooks, MAXP);
    cg_registry_join(&reg, &m1, NULL, "u1");
    cg_registry_join(&reg, &m2, NULL, "u1");
    cg_registry_join(&reg, &m3, NULL, "u2");
    const char *rb[] = {"rb2501"}, *au[] = {"au2412"};
    cg_registry_subscribe(&reg, &m1, rb, 1, 200);
    cg_registry_subscribe(&reg, &m2, rb, 1, 200);
    cg_registry_subscribe(&reg, &m3, au, 1, 200);
}

static void teardown(void)
{
    forget();
    cg_registry_leave(&reg, &m1);
    cg_registry_leave(&reg, &m2);
    cg_registry_leave(&reg, &m3);
    cg_registry_finish(&reg);
}

static struct cg_metrics before;

static void snap(void)
{
    before = cg_metrics;
}

static uint64_t dropped(enum cg_drop_reason why)
{
    return cg_metrics.dropped[why] - before.dropped[why];
}

static uint64_t dropped_total(void)
{
    uint64_t n = 0;
    for (int i = 0; i < CG_DROP__COUNT; i++)
        n += dropped((enum cg_drop_reason)i);
    return n;
}

static struct cg_instrument *inst(const char *name)
{
    return cg_registry_instrument(&reg, name, strlen(name), 0);
}

static int tick(const char *name, const char *payload)
{
    return cg_relay_tick(&relay, name, strlen(name), payload, strlen(payload), CG_SOURCE_PUBSUB);
}

static void test_tick_fanout(void)
{
    setup();
    snap();
    struct cg_instrument *rb = inst("rb2501");
    CHECK_INT(tick("rb2501", "{\"last\":3571.0}"), 0);
    CHECK_INT(ndl, 2);
    CHECK_PTR(hook_data_seen, &hook_cookie);
    /* One frame object, shared. */
    CHECK_PTR(dl[0].f, dl[1].f);
    CHECK_PTR(dl[0].m, &m1);
    CHECK_PTR(dl[1].m, &m2);
    CHECK_STR(dl[0].bytes,
              "{\"type\":\"tick\",\"instrument\":\"rb2501\",\"seq\":1,\"data\":{\"last\":3571.0}}");
    CHECK_STR(dl[1].bytes, dl[0].bytes);
    CHECK_UINT(dl[0].f->refs, 2); /* the relay dropped its own reference */
    CHECK_INT(dl[0].f->kind, CG_FRAME_TICK);
    CHECK_PTR(dl[0].f->ckey, rb);
    /* The slot handed over is that member's subscription slot. */
    CHECK_PTR(dl[0].slot, &rb->fan[cg_registry_find_sub(&m1, rb)->index].slot);
    CHECK_PTR(dl[1].slot, &rb->fan[cg_registry_find_sub(&m2, rb)->index].slot);
    CHECK_UINT(rb->seq, 1);
    CHECK_INT(rb->known, 1);
    forget();

    /* seq increments per tick; the name need not be NUL-terminated. */
    CHECK_INT(cg_relay_tick(&relay, "rb2501xyz", 6, "{\"last\":3572.0}", 15, CG_SOURCE_INBOX), 0);
    CHECK_INT(ndl, 2);
    CHECK_STR(dl[0].bytes,
              "{\"type\":\"tick\",\"instrument\":\"rb2501\",\"seq\":2,\"data\":{\"last\":3572.0}}");
    CHECK_PTR(dl[0].f, dl[1].f);
    forget();
    CHECK_INT(tick("au2412", "{}"), 0);
    CHECK_INT(ndl, 1);
    CHECK_PTR(dl[0].m, &m3);
    CHECK_STR(dl[0].bytes, "{\"type\":\"tick\",\"instrument\":\"au2412\",\"seq\":1,\"data\":{}}");
    forget();
    CHECK_UINT(cg_metrics.published[CG_SOURCE_PUBSUB] - before.published[CG_SOURCE_PUBSUB], 2);
    CHECK_UINT(cg_metrics.published[CG_SOURCE_INBOX] - before.published[CG_SOURCE_INBOX], 1);
    CHECK_UINT(dropped_total(), 0);

    /* Published content survives as a JSON value (whitespace may be normalised). */
    CHECK_INT(tick("rb2501", "{ \"a\" : [1, 2.5, \"x\\ty\", {\"b\": null}] , \"c\":true}"), 0);
    if (CHECK_INT(ndl, 2)) {
        json_t *v = json_loads(dl[0].bytes, 0, NULL);
        json_t *want = json_loads("{\"a\":[1,2.5,\"x\\ty\",{\"b\":null}],\"c\":true}", 0, NULL);
        CHECK(json_equal(json_object_get(v, "data"), want));
        CHECK_INT(json_integer_value(json_object_get(v, "seq")), 3);
        json_decref(v);
        json_decref(want);
    }
    forget();
    teardown();
}

/* A paced subscription's ticks go to the paced hook (with the subscription), the others' to
 * deliver as before; a held one to neither. */
static void test_tick_paced(void)
{
    setup();
    struct cg_instrument *rb = inst("rb2501");
    struct cg_sub *s1 = cg_registry_find_sub(&m1, rb), *s2 = cg_registry_find_sub(&m2, rb);
    cg_registry_set_paced(s1, 1);
    npaced = 0;
    CHECK_INT(tick("rb2501", "{\"last\":1}"), 0);
    CHECK_INT(ndl, 1);
    CHECK_PTR(dl[0].m, &m2);
    CHECK_UINT(npaced, 1);
    CHECK_PTR(paced_sub, s1);
    CHECK_UINT(paced_kind, 0);
    forget();
    /* The flag moves with the subscription when the fan array is compacted. */
    const char *rbn[] = {"rb2501"};
    cg_registry_unsubscribe(&reg, &m2, rbn, 1);
    CHECK_UINT(rb->fan[s1->index].paced, 1);
    cg_registry_hold(s1, 1);
    CHECK_INT(tick("rb2501", "{\"last\":2}"), 0);
    CHECK_INT(ndl, 0);
    CHECK_UINT(npaced, 1);
    cg_registry_hold(s1, 0);
    cg_registry_set_paced(s1, 0);
    CHECK_INT(tick("rb2501", "{\"last\":3}"), 0);
    CHECK_INT(ndl, 1);
    CHECK_UINT(npaced, 1);
    (void)s2;
    teardown();
}

static void test_tick_newline(void)
{
    setup();
    snap();
    CHECK_INT(tick("rb2501", "{\n  \"last\": 1,\r\n  \"s\": \"a\\nb\"\n}\n"), 0);
    CHECK_INT(ndl, 2);
    CHECK_STR(dl[0].bytes,
              "{\"type\":\"tick\",\"instrument\":\"rb2501\",\"seq\":1,\"data\":{\"last\":1,"
              "\"s\":\"a\\nb\"}}");
    CHECK(!strchr(dl[0].bytes, '\n') && !strchr(dl[0].bytes, '\r'));
    CHECK_PTR(dl[0].f, dl[1].f);
    CHECK_UINT(dl[0].f->len, strlen(dl[0].bytes));
    forget();
    /* A lone CR is a line break too. */
    CHECK_INT(tick("rb2501", "{\"a\":\r1}"), 0);
    CHECK_STR(dl[0].bytes,
              "{\"type\":\"tick\",\"instrument\":\"rb2501\",\"seq\":2,\"data\":{\"a\":1}}");
    forget();
    /* Messages likewise. */
    CHECK_INT(cg_relay_user(&relay, "u2", 2, "[1,\n2]", 6, CG_SOURCE_PUBSUB), 0);
    CHECK_INT(ndl, 1);
    CHECK_STR(dl[0].bytes, "{\"type\":\"message\",\"channel\":\"user\",\"data\":[1,2]}");
    forget();
    CHECK_INT(cg_relay_broadcast(&relay, "\n\"hi\"\n", 6, CG_SOURCE_PUBSUB), 0);
    CHECK_INT(ndl, 3);
    CHECK_STR(dl[0].bytes, "{\"type\":\"message\",\"channel\":\"broadcast\",\"data\":\"hi\"}");
    forget();
    CHECK_UINT(dropped_total(), 0);
    teardown();
}

static void test_tick_drops(void)
{
    setup();
    struct cg_instrument *rb = inst("rb2501");
    static const char *const not_objects[] = {"[1]", "5", "\"x\"", "null", "true", "[]"};
    for (size_t i = 0; i < sizeof(not_objects) / sizeof(not_objects[0]); i++) {
        snap();
        CHECK_INT(tick("rb2501", not_objects[i]), -1);
        CHECK_UINT(dropped(CG_DROP_NOT_OBJECT), 1);
        CHECK_UINT(dropped_total(), 1);
    }
    static const char *const bad_json[] = {"{",           "",           "hello",
                                           "{\"a\":1}{}", "{\"a\":1,}", "{\"a\":\"\xff\"}"};
    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
        snap();
        CHECK_INT(tick("rb2501", bad_json[i]), -1);
        CHECK_UINT(dropped(CG_DROP_BAD_JSON), 1);
        CHECK_UINT(dropped_total(), 1);
    }
    /* Invalid instrument names. */
    snap();
    CHECK_INT(tick("bad name", "{}"), -1);
    CHECK_INT(tick("", "{}"), -1);
    CHECK_INT(tick("0123456789abcdef0123456789abcdefX", "{}"), -1);
    CHECK_UINT(dropped(CG_DROP_NO_TARGET), 3);
    CHECK(inst("bad name") == NULL);
    CHECK_INT(ndl, 0);
    CHECK_UINT(rb->seq, 0); /* nothing dropped took a seq */

    /* Payload size: max_payload bytes pass, one more is too large. */
    char p[MAXP + 2];
    memset(p, ' ', sizeof(p));
    memcpy(p, "{\"a\":1}", 7);
    p[MAXP] = 0;
    snap();
    CHECK_INT(tick("rb2501", p), 0);
    CHECK_INT(ndl, 2);
    forget();
    p[MAXP] = ' ';
    p[MAXP + 1] = 0;
    CHECK_INT(tick("rb2501", p), -1);
    CHECK_UINT(dropped(CG_DROP_TOO_LARGE), 1);
    CHECK_UINT(dropped_total(), 1);
    CHECK_INT(ndl, 0);
    CHECK_UINT(rb->seq, 1);
    snap();
    CHECK_INT(cg_relay_user(&relay, "u1", 2, p, strlen(p), CG_SOURCE_PUBSUB), -1);
    CHECK_INT(cg_relay_broadcast(&relay, p, strlen(p), CG_SOURCE_PUBSUB), -1);
    CHECK_UINT(dropped(CG_DROP_TOO_LARGE), 2);
    CHECK_INT(ndl, 0);
    teardown();
}

static void test_tick_unsubscribed(void)
{
    setup();
    /* Nobody subscribed: nothing delivered, but the instrument is known and counts. */
    CHECK_INT(tick("cu2501", "{\"p\":1}"), 0);
    CHECK_INT(tick("cu2501", "{\"p\":2}"), 0);
    CHECK_INT(ndl, 0);
    struct cg_instrument *cu = inst("cu2501");
    if (!CHECK(cu != NULL)) {
        teardown();
        return;
    }
    CHECK_INT(cu->known, 1);
    CHECK_UINT(cu->seq, 2);
    /* A subscriber arriving later continues the sequence. */
    const char *names[] = {"cu2501"};
    CHECK_INT(cg_registry_subscribe(&reg, &m3, names, 1, 200), CG_REG_OK);
    CHECK_INT(tick("cu2501", "{\"p\":3}"), 0);
    CHECK_INT(ndl, 1);
    CHECK_STR(dl[0].bytes,
              "{\"type\":\"tick\",\"instrument\":\"cu2501\",\"seq\":3,\"data\":{\"p\":3}}");
    forget();
    /* ...and across the last subscriber leaving and a new one arriving. */
    cg_registry_unsubscribe(&reg, &m3, names, 1);
    CHECK_INT(tick("cu2501", "{\"p\":4}"), 0);
    CHECK_INT(ndl, 0);
    CHECK_INT(cg_registry_subscribe(&reg, &m1, names, 1, 200), CG_REG_OK);
    CHECK_INT(tick("cu2501", "{\"p\":5}"), 0);
    CHECK_INT(ndl, 1);
    CHECK_PTR(dl[0].m, &m1);
    CHECK_STR(dl[0].bytes,
              "{\"type\":\"tick\",\"instrument\":\"cu2501\",\"seq\":5,\"data\":{\"p\":5}}");
    forget();
    teardown();

    /* A full instrument table: the tick is accepted but goes nowhere. */
    struct cg_registry small;
    struct cg_relay rl;
    cg_registry_init(&small, NULL, 1);
    cg_relay_init(&rl, &small, &hooks, MAXP);
    CHECK_INT(cg_relay_tick(&rl, "a", 1, "{}", 2, CG_SOURCE_PUBSUB), 0);
    CHECK_INT(cg_relay_tick(&rl, "b", 1, "{}", 2, CG_SOURCE_PUBSUB), 0);
    CHECK(cg_registry_instrument(&small, "b", 1, 0) == NULL);
    CHECK_UINT(small.instruments.count, 1);
    CHECK_INT(ndl, 0);
    cg_registry_finish(&small);
}

static void test_user_and_broadcast(void)
{
    setup();
    snap();
    CHECK_INT(cg_relay_user(&relay, "u1", 2, "{\"kind\":\"notice\"}", 17, CG_SOURCE_PUBSUB), 0);
    CHECK_INT(ndl, 2);
    CHECK_PTR(dl[0].m, &m1);
    CHECK_PTR(dl[1].m, &m2);
    CHECK_PTR(dl[0].f, dl[1].f);
    CHECK(dl[0].slot == NULL && dl[1].slot == NULL);
    CHECK_INT(dl[0].f->kind, CG_FRAME_MESSAGE);
    CHECK_UINT(dl[0].f->refs, 2);
    CHECK_STR(dl[0].bytes,
              "{\"type\":\"message\",\"channel\":\"user\",\"data\":{\"kind\":\"notice\"}}");
    forget();
    /* Only that user's sockets; the id is (pointer, length). */
    CHECK_INT(cg_relay_user(&relay, "u2-and-more", 2, "\"hello\"", 7, CG_SOURCE_INBOX), 0);
    CHECK_INT(ndl, 1);
    CHECK_PTR(dl[0].m, &m3);
    CHECK_STR(dl[0].bytes, "{\"type\":\"message\",\"channel\":\"user\",\"data\":\"hello\"}");
    forget();
    /* Any JSON value. */
    static const struct {
        const char *payload, *frame;
    } values[] = {
        {"null", "{\"type\":\"message\",\"channel\":\"user\",\"data\":null}"},
        {"3.5", "{\"type\":\"message\",\"channel\":\"user\",\"data\":3.5}"},
        {"[1,2]", "{\"type\":\"message\",\"channel\":\"user\",\"data\":[1,2]}"},
        {"false", "{\"type\":\"message\",\"channel\":\"user\",\"data\":false}"},
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        CHECK_INT(cg_relay_user(&relay, "u2", 2, values[i].payload, strlen(values[i].payload),
                                CG_SOURCE_PUBSUB),
                  0);
        if (CHECK_INT(ndl, 1))
            CHECK_STR(dl[0].bytes, values[i].frame);
        forget();
    }
    /* A user with no socket here: nothing, and nothing dropped. */
    CHECK_INT(cg_relay_user(&relay, "u3", 2, "{}", 2, CG_SOURCE_PUBSUB), 0);
    CHECK_INT(cg_relay_user(&relay, "u", 1, "{}", 2, CG_SOURCE_PUBSUB), 0);
    CHECK_INT(ndl, 0);
    CHECK_UINT(dropped_total(), 0);
    /* Bad JSON is dropped (a bare word is not a JSON string). */
    CHECK_INT(cg_relay_user(&relay, "u1", 2, "hello", 5, CG_SOURCE_PUBSUB), -1);
    CHECK_UINT(dropped(CG_DROP_BAD_JSON), 1);
    CHECK_INT(ndl, 0);

    /* Broadcast: every member, in join order, one frame. */
    snap();
    CHECK_INT(cg_relay_broadcast(&relay, "\"maintenance at 22:00\"", 22, CG_SOURCE_PUBSUB), 0);
    CHECK_INT(ndl, 3);
    CHECK_PTR(dl[0].m, &m1);
    CHECK_PTR(dl[1].m, &m2);
    CHECK_PTR(dl[2].m, &m3);
    CHECK(dl[0].f == dl[1].f && dl[1].f == dl[2].f);
    CHECK(dl[0].slot == NULL && dl[2].slot == NULL);
    CHECK_UINT(dl[0].f->refs, 3);
    CHECK_STR(dl[2].bytes,
              "{\"type\":\"message\",\"channel\":\"broadcast\",\"data\":\"maintenance at 22:00\"}");
    forget();
    cg_registry_leave(&reg, &m2);
    CHECK_INT(cg_relay_broadcast(&relay, "{}", 2, CG_SOURCE_PUBSUB), 0);
    CHECK_INT(ndl, 2);
    CHECK_PTR(dl[0].m, &m1);
    CHECK_PTR(dl[1].m, &m3);
    forget();
    CHECK_INT(cg_relay_broadcast(&relay, "{", 1, CG_SOURCE_PUBSUB), -1);
    CHECK_UINT(dropped(CG_DROP_BAD_JSON), 1);
    CHECK_UINT(cg_metrics.published[CG_SOURCE_PUBSUB] - before.published[CG_SOURCE_PUBSUB], 3);
    CHECK_INT(ndl, 0);
    teardown();

    /* Nobody at all. */
    struct cg_registry empty;
    struct cg_relay rl;
    cg_registry_init(&empty, NULL, 10);
    cg_relay_init(&rl, &empty, &hooks, MAXP);
    CHECK_INT(cg_relay_broadcast(&rl, "1", 1, CG_SOURCE_PUBSUB), 0);
    CHECK_INT(ndl, 0);
    cg_registry_finish(&empty);
}

/* Parses an envelope; returns the result and leaves env for inspection. */
static struct cg_envelope env;

static int envelope(const char *payload)
{
    memset(&env, 0x5a, sizeof(env));
    return cg_relay_envelope(&relay, payload, strlen(payload), &env);
}

static void env_done(void)
{
    free(env.data);
    env.data = NULL;
}

static void expect_env_drop(const char *payload, enum cg_drop_reason why, int line)
{
    snap();
    check_int_(envelope(payload), -1, __FILE__, line, payload, "-1");
    check_uint_(dropped(why), 1, __FILE__, line, "dropped(reason)", "1");
    check_uint_(dropped_total(), 1, __FILE__, line, "dropped_total()", "1");
    check_(env.data == NULL, __FILE__, line, "env.data == NULL");
    check_uint_(cg_metrics.published[CG_SOURCE_INBOX] - before.published[CG_SOURCE_INBOX], 1,
                __FILE__, line, "published inbox", "1");
    env_done();
}

#define ENV_DROP(payload, why) expect_env_drop((payload), (why), __LINE__)

static void test_envelopes(void)
{
    setup();
    snap();
    CHECK_INT(envelope("{\"instrument\":\"cu2501\",\"data\":{ \"last\" : 3571.0 }}"), 0);
    CHECK_INT(env.kind, CG_ENV_INSTRUMENT);
    CHECK_STR(env.target, "cu2501");
    CHECK_MEM(env.data, env.len, "{\"last\":3571.0}");
    CHECK_UINT(strlen(env.data), env.len);
    env_done();
    /* The instrument becomes known (list/search), without a seq yet. */
    struct cg_instrument *cu = inst("cu2501");
    if (CHECK(cu != NULL)) {
        CHECK_INT(cu->known, 1);
        CHECK_UINT(cu->seq, 0);
    }
    CHECK_INT(ndl, 0); /* envelopes are not delivered here */

    CHECK_INT(envelope("{\"user\":\"u9\",\"data\":[1, 2,\n 3]}"), 0);
    CHECK_INT(env.kind, CG_ENV_USER);
    CHECK_STR(env.target, "u9");
    CHECK_MEM(env.data, env.len, "[1,2,3]");
    env_done();

    CHECK_INT(envelope("{\"broadcast\":true,\"data\":\"maintenance at 22:00\"}"), 0);
    CHECK_INT(env.kind, CG_ENV_BROADCAST);
    CHECK_MEM(env.data, env.len, "\"maintenance at 22:00\"");
    env_done();

    /* data is re-encoded compactly: no whitespace, no raw line break, escapes kept. */
    CHECK_INT(envelope("{\n\"data\" : { \"a\" : [ 1 , 2 ] ,\n \"b\" : \"c\\nd\" } ,\n"
                       " \"user\" : \"u1\" , \"other\": 1 }"),
              0);
    CHECK_INT(env.kind, CG_ENV_USER);
    CHECK_STR(env.target, "u1");
    CHECK_MEM(env.data, env.len, "{\"a\":[1,2],\"b\":\"c\\nd\"}");
    env_done();
    CHECK_INT(envelope("{\"user\":\"u1\",\"data\":null}"), 0); /* null is a value */
    CHECK_MEM(env.data, env.len, "null");
    env_done();
    /* A 128-byte user id is the longest. */
    char buf[512], uid[200];
    memset(uid, 'u', 128);
    uid[128] = 0;
    snprintf(buf, sizeof(buf), "{\"user\":\"%s\",\"data\":1}", uid);
    CHECK_INT(envelope(buf), 0);
    CHECK_STR(env.target, uid);
    env_done();
    CHECK_UINT(dropped_total(), 0);
    CHECK_UINT(cg_metrics.published[CG_SOURCE_INBOX] - before.published[CG_SOURCE_INBOX], 6);

    /* Dropped envelopes. */
    ENV_DROP("{\"data\":{}}", CG_DROP_NO_TARGET);
    ENV_DROP("{\"broadcast\":false,\"data\":1}", CG_DROP_NO_TARGET);
    ENV_DROP("{\"broadcast\":1,\"data\":1}", CG_DROP_NO_TARGET);
    ENV_DROP("{\"instrument\":\"rb2501\"}", CG_DROP_NO_TARGET); /* no data */
    ENV_DROP("{\"user\":\"u1\"}", CG_DROP_NO_TARGET);
    ENV_DROP("{\"broadcast\":true}", CG_DROP_NO_TARGET);
    ENV_DROP("{\"instrument\":\"bad name\",\"data\":{}}", CG_DROP_NO_TARGET);
    ENV_DROP("{\"instrument\":\"\",\"data\":{}}", CG_DROP_NO_TARGET);
    ENV_DROP("{\"instrument\":\"0123456789abcdef0123456789abcdefX\",\"data\":{}}",
             CG_DROP_NO_TARGET);
    ENV_DROP("{\"instrument\":5,\"data\":{}}", CG_DROP_NO_TARGET);
    ENV_DROP("{\"user\":\"\",\"data\":1}", CG_DROP_NO_TARGET);
    ENV_DROP("{\"user\":7,\"data\":1}", CG_DROP_NO_TARGET);
    uid[128] = 'u';
    uid[129] = 0;
    snprintf(buf, sizeof(buf), "{\"user\":\"%s\",\"data\":1}", uid);
    ENV_DROP(buf, CG_DROP_NO_TARGET);
    ENV_DROP("{\"instrument\":\"rb2501\",\"data\":[1]}", CG_DROP_NOT_OBJECT);
    ENV_DROP("{\"instrument\":\"rb2501\",\"data\":\"x\"}", CG_DROP_NOT_OBJECT);
    ENV_DROP("[{\"broadcast\":true,\"data\":1}]", CG_DROP_NOT_OBJECT);
    ENV_DROP("\"broadcast\"", CG_DROP_NOT_OBJECT);
    ENV_DROP("{\"broadcast\":true,\"data\":1", CG_DROP_BAD_JSON);
    ENV_DROP("", CG_DROP_BAD_JSON);
    char big[MAXP + 40];
    memset(big, ' ', sizeof(big));
    memcpy(big, "{\"broadcast\":true,\"data\":1}", 27);
    big[MAXP + 1] = 0;
    ENV_DROP(big, CG_DROP_TOO_LARGE);
    big[MAXP] = 0;
    CHECK_INT(envelope(big), 0);
    env_done();
    CHECK(inst("bad name") == NULL);
    CHECK_INT(ndl, 0);
    teardown();
}

/* ---- service replies (PROTOCOL.md §16.2) ---------------------------------------------------- */

#define EPOCH "0123456789abcdef"

static uint64_t replies(enum cg_reply_result res)
{
    return cg_metrics.replies[res] - before.replies[res];
}

static int reply(const char *payload)
{
    return cg_relay_reply(&relay, EPOCH, payload, strlen(payload));
}

/* payload reaches member m alone, as exactly want; counted delivered. */
static void expect_reply(const char *payload, struct cg_member *m, const char *want, int line)
{
    forget();
    snap();
    check_int_(reply(payload), 0, __FILE__, line, payload, "0");
    if (!check_int_(ndl, 1, __FILE__, line, "deliveries", "1")) {
        forget();
        return;
    }
    check_(dl[0].m == m, __FILE__, line, "delivered to the member named by conn");
    check_(dl[0].slot == NULL, __FILE__, line, "no conflation slot");
    check_int_(dl[0].f->kind, CG_FRAME_MESSAGE, __FILE__, line, "f->kind", "CG_FRAME_MESSAGE");
    check_int_(dl[0].f->refs, 1, __FILE__, line, "f->refs", "1 (the relay dropped its own)");
    check_mem_(dl[0].bytes, strlen(dl[0].bytes), want, __FILE__, line, "reply frame");
    check_uint_(replies(CG_REPLY_DELIVERED), 1, __FILE__, line, "replies delivered", "1");
    check_uint_(replies(CG_REPLY_NO_SOCKET) + replies(CG_REPLY_MALFORMED), 0, __FILE__, line,
                "replies dropped", "0");
    forget();
}

/* payload reaches nobody; counted once, under res. */
static void expect_reply_drop(const char *payload, size_t len, enum cg_reply_result res, int line)
{
    forget();
    snap();
    int rc = cg_relay_reply(&relay, EPOCH, payload, len);
    if (!check_int_(rc, -1, __FILE__, line, "dropped", "-1"))
        fprintf(stderr, "    payload: %.*s\n", (int)len, payload);
    check_int_(ndl, 0, __FILE__, line, "deliveries", "0");
    for (int r = 0; r < CG_REPLY__COUNT; r++)
        if (!check_uint_(replies((enum cg_reply_result)r), r == (int)res, __FILE__, line,
                         cg_reply_names[r], r == (int)res ? "1" : "0"))
            fprintf(stderr, "    payload: %.*s\n", (int)len, payload);
    forget();
}

#define REPLY(payload, m, want) expect_reply((payload), (m), (want), __LINE__)
#define REPLY_DROP(payload, res) expect_reply_drop((payload), strlen(payload), (res), __LINE__)

static void test_replies(void)
{
    setup(); /* m1 (conn 1) and m2 (conn 2) of u1, m3 (conn 3) of u2 */
    CHECK_STR(cg_reply_names[CG_REPLY_DELIVERED], "delivered");
    CHECK_STR(cg_reply_names[CG_REPLY_NO_SOCKET], "no_socket");
    CHECK_STR(cg_reply_names[CG_REPLY_MALFORMED], "malformed");
    CHECK_UINT(m1.conn, 1);
    CHECK_UINT(m2.conn, 2);
    CHECK_UINT(m3.conn, 3);

    /* To exactly the socket named: not its user's other socket, not everyone. */
    REPLY("{\"service\":\"alerts\",\"conn\":\"" EPOCH ".2\",\"id\":7,\"data\":{\"ok\":true,"
          "\"alert\":\"a-12\"}}",
          &m2,
          "{\"type\":\"reply\",\"service\":\"alerts\",\"id\":7,\"data\":{\"ok\":true,\"alert\":"
          "\"a-12\"}}");
    REPLY("{\"service\":\"alerts\",\"conn\":\"" EPOCH ".1\",\"data\":1}", &m1,
          "{\"type\":\"reply\",\"service\":\"alerts\",\"data\":1}");
    REPLY("{\"data\":null,\"conn\":\"" EPOCH ".3\",\"service\":\"orders.v2\",\"id\":\"r-1\"}", &m3,
          "{\"type\":\"reply\",\"service\":\"orders.v2\",\"id\":\"r-1\",\"data\":null}");
    /* data re-encoded compactly (no raw line break may reach a batch); other members
     * ignored; integer ids of any size, string ids up to 64 characters. */
    REPLY("{ \"service\" : \"a\" ,\n\"conn\":\"" EPOCH ".1\", \"user\":\"u1\", \"ts\":5,\n"
          "\"data\" : { \"x\" : [ 1 , 2 ],\n \"s\":\"l1\\nl2\" } }",
          &m1, "{\"type\":\"reply\",\"service\":\"a\",\"data\":{\"x\":[1,2],\"s\":\"l1\\nl2\"}}");
    REPLY("{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"id\":-9223372036854775808,\"data\":[]}",
          &m1, "{\"type\":\"reply\",\"service\":\"a\",\"id\":-9223372036854775808,\"data\":[]}");
    char buf[1024], want[1024], id64[70];
    memset(id64, 'i', 64);
    id64[64] = 0;
    snprintf(buf, sizeof(buf),
             "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"id\":\"%s\","
             "\"data\":\"x\"}",
             id64);
    snprintf(want, sizeof(want),
             "{\"type\":\"reply\",\"service\":\"a\",\"id\":\"%s\","
             "\"data\":\"x\"}",
             id64);
    REPLY(buf, &m1, want);
    REPLY("{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"id\":\"q\\\"\\u0007\",\"data\":0}", &m1,
          "{\"type\":\"reply\",\"service\":\"a\",\"id\":\"q\\\"\\u0007\",\"data\":0}");
    /* The service need not be one this gateway sends to; it must be a valid name (it goes
     * into the frame unescaped). */
    char svc[80];
    memset(svc, 's', 64);
    svc[64] = 0;
    snprintf(buf, sizeof(buf), "{\"service\":\"%s\",\"conn\":\"" EPOCH ".3\",\"data\":1}", svc);
    snprintf(want, sizeof(want), "{\"type\":\"reply\",\"service\":\"%s\",\"data\":1}", svc);
    REPLY(buf, &m3, want);

    /* Not this process's socket: dropped as no_socket. */
    REPLY_DROP("{\"service\":\"a\",\"conn\":\"fedcba9876543210.1\",\"data\":1}",
               CG_REPLY_NO_SOCKET);
    REPLY_DROP("{\"service\":\"a\",\"conn\":\"0123456789ABCDEF.1\",\"data\":1}",
               CG_REPLY_NO_SOCKET);
    REPLY_DROP("{\"service\":\"a\",\"conn\":\"" EPOCH ".4\",\"data\":1}", CG_REPLY_NO_SOCKET);
    REPLY_DROP("{\"service\":\"a\",\"conn\":\"" EPOCH ".0\",\"data\":1}", CG_REPLY_NO_SOCKET);
    REPLY_DROP("{\"service\":\"a\",\"conn\":\"" EPOCH ".99\",\"data\":1}", CG_REPLY_NO_SOCKET);
    /* A conn that is not <epoch>.<digits> names no socket here, whatever follows or precedes. */
    static const char *const odd[] = {
        " " EPOCH ".1",
        "x" EPOCH ".1",
        EPOCH "x.1",
        EPOCH ".+1",
        EPOCH ". 1",
        EPOCH ".1 ",
        EPOCH ".1x",
        EPOCH ".-1",
        EPOCH "..1",
        EPOCH ".",
        EPOCH,
        "",
        EPOCH "x1",
        EPOCH "01",
        EPOCH "_2",
        EPOCH ":3",
        EPOCH "/1",
        "0123456789abcde.1",
        "0123456789abcdef0.1",
        EPOCH ".0x1",
        EPOCH ".1.2",
        EPOCH ".1e0",
        /* overflowing digits must not wrap around onto a live socket (1, 2 or 3) */
        EPOCH ".18446744073709551617", /* 2^64 + 1 */
        EPOCH ".18446744073709551618", /* 2^64 + 2 */
        EPOCH ".36893488147419103233", /* 2^65 + 1 */
        EPOCH ".99999999999999999999",
        EPOCH ".4294967297",            /* 2^32 + 1: no 32-bit truncation either */
        EPOCH ".000000000000000000001", /* 21 digits */
        EPOCH ".1000000000000000000000000000001",
    };
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        snprintf(buf, sizeof(buf), "{\"service\":\"a\",\"conn\":\"%s\",\"data\":1}", odd[i]);
        expect_reply_drop(buf, strlen(buf), CG_REPLY_NO_SOCKET, __LINE__);
    }

    /* A departed socket: its number names nobody any more (and is not reused). */
    cg_registry_leave(&reg, &m2);
    REPLY_DROP("{\"service\":\"a\",\"conn\":\"" EPOCH ".2\",\"data\":1}", CG_REPLY_NO_SOCKET);
    REPLY("{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"data\":1}", &m1,
          "{\"type\":\"reply\",\"service\":\"a\",\"data\":1}");
    CHECK_INT(cg_registry_join(&reg, &m2, NULL, "u1"), CG_REG_OK); /* back, as conn 4 */
    CHECK_UINT(m2.conn, 4);
    REPLY_DROP("{\"service\":\"a\",\"conn\":\"" EPOCH ".2\",\"data\":1}", CG_REPLY_NO_SOCKET);
    REPLY("{\"service\":\"a\",\"conn\":\"" EPOCH ".4\",\"data\":1}", &m2,
          "{\"type\":\"reply\",\"service\":\"a\",\"data\":1}");

    /* Malformed: not an object with a string service (a valid name), a string conn and data;
     * an id, when present, must be one a request may carry. */
    static const char *const malformed[] = {
        "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\"}",
        "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"dat\":1}",
        "{\"conn\":\"" EPOCH ".1\",\"data\":1}",
        "{\"service\":5,\"conn\":\"" EPOCH ".1\",\"data\":1}",
        "{\"service\":null,\"conn\":\"" EPOCH ".1\",\"data\":1}",
        "{\"service\":[\"a\"],\"conn\":\"" EPOCH ".1\",\"data\":1}",
        "{\"service\":\"\",\"conn\":\"" EPOCH ".1\",\"data\":1}",
        "{\"service\":\"a b\",\"conn\":\"" EPOCH ".1\",\"data\":1}",
        "{\"service\":\"a\\\"b\",\"conn\":\"" EPOCH ".1\",\"data\":1}",
        "{\"service\":\"a\\\\b\",\"conn\":\"" EPOCH ".1\",\"data\":1}",
        "{\"service\":\"a\\nb\",\"conn\":\"" EPOCH ".1\",\"data\":1}",
        "{\"service\":\"\xc3\xa9\",\"conn\":\"" EPOCH ".1\",\"data\":1}",
        "{\"service\":\"a\\u0000b\",\"conn\":\"" EPOCH ".1\",\"data\":1}",
        "{\"service\":\"a\",\"data\":1}",
        "{\"service\":\"a\",\"conn\":1,\"data\":1}",
        "{\"service\":\"a\",\"conn\":null,\"data\":1}",
        "{\"service\":\"a\",\"conn\":[\"" EPOCH ".1\"],\"data\":1}",
        "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"id\":7.5,\"data\":1}",
        "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"id\":1.0,\"data\":1}",
        "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"id\":1e3,\"data\":1}",
        "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"id\":null,\"data\":1}",
        "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"id\":true,\"data\":1}",
        "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"id\":{},\"data\":1}",
        "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"id\":[7],\"data\":1}",
        /* malformed wins over a conn of another process */
        "{\"service\":\"a b\",\"conn\":\"fedcba9876543210.1\",\"data\":1}",
        "{\"service\":\"a\",\"conn\":\"fedcba9876543210.1\"}",
        /* a NUL in the conn (jansson refuses \u0000 as bad JSON; the digits check would too) */
        "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\\u0000\",\"data\":1}",
        "{\"service\":\"a\",\"conn\":\"" EPOCH ".\\u00001\",\"data\":1}",
        /* not an object, not JSON */
        "[{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"data\":1}]",
        "\"" EPOCH ".1\"",
        "5",
        "null",
        "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"data\":1",
        "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"data\":1}{}",
        "",
    };
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
        expect_reply_drop(malformed[i], strlen(malformed[i]), CG_REPLY_MALFORMED, __LINE__);
    /* Too long a service name or string id. */
    svc[64] = 's';
    svc[65] = 0;
    snprintf(buf, sizeof(buf), "{\"service\":\"%s\",\"conn\":\"" EPOCH ".1\",\"data\":1}", svc);
    REPLY_DROP(buf, CG_REPLY_MALFORMED);
    id64[64] = 'i';
    id64[65] = 0;
    snprintf(buf, sizeof(buf),
             "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"id\":\"%s\","
             "\"data\":1}",
             id64);
    REPLY_DROP(buf, CG_REPLY_MALFORMED);
    /* An id is "a string of at most 64
     * CHARACTERS" (PROTOCOL.md §5, common.schema.json maxLength) and a client may send 64
     * two-byte characters; the service echoes that id, and its reply must not be dropped. */
    char ide[200];
    int k = 0;
    for (int i = 0; i < 64; i++)
        k += snprintf(ide + k, sizeof(ide) - (size_t)k, "\xc3\xa9");
    snprintf(buf, sizeof(buf),
             "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"id\":\"%s\","
             "\"data\":1}",
             ide);
    snprintf(want, sizeof(want),
             "{\"type\":\"reply\",\"service\":\"a\",\"id\":\"%s\","
             "\"data\":1}",
             ide);
    REPLY(buf, &m1, want);
    /* Only plen bytes are read: the same reply cut short is bad JSON. */
    const char *ok = "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"data\":1}";
    expect_reply_drop(ok, strlen(ok) - 1, CG_REPLY_MALFORMED, __LINE__);
    /* Over --max-payload-bytes: dropped unparsed (and counted as a too-large payload too). */
    char big[MAXP + 40];
    int n = snprintf(big, sizeof(big), "{\"service\":\"a\",\"conn\":\"" EPOCH ".1\",\"data\":\"");
    memset(big + n, 'z', sizeof(big) - (size_t)n);
    memcpy(big + MAXP - 2, "\"}", 3); /* exactly MAXP bytes */
    snprintf(want, sizeof(want), "{\"type\":\"reply\",\"service\":\"a\",\"data\":%s}", big + n - 1);
    want[strlen(want) - 2] = '}'; /* the string ends where the payload's object does */
    want[strlen(want) - 1] = 0;
    REPLY(big, &m1, want);
    memcpy(big + MAXP - 2, "z\"}", 4); /* MAXP + 1 */
    REPLY_DROP(big, CG_REPLY_MALFORMED);
    CHECK_UINT(dropped(CG_DROP_TOO_LARGE), 1);
    /* Bad JSON is also counted with the other dropped payloads. */
    snap();
    REPLY_DROP("{", CG_REPLY_MALFORMED);
    CHECK_UINT(dropped(CG_DROP_BAD_JSON), 1);
    teardown();
}

/* ---- shared seqs (PROTOCOL.md §19) ----------------------------------------------------- */

static int gap_answer; /* what the gap hook returns */
static uint64_t gap_seq, held_seq[8];
static char held_text[8][64];
static int ngaps, nheld;

static void on_hold(void *data, struct cg_instrument *in, uint64_t seq, const char *payload,
                    size_t plen)
{
    (void)data;
    (void)in;
    if (nheld < 8) {
        held_seq[nheld] = seq;
        snprintf(held_text[nheld++], sizeof(held_text[0]), "%.*s", (int)plen, payload);
    }
}

static int on_gap(void *data, struct cg_instrument *in, uint64_t seq)
{
    (void)data;
    ngaps++;
    gap_seq = seq;
    if (gap_answer == 0)
        in->catchup = &gap_answer; /* what stream.c does: ticks are held from now on */
    return gap_answer;
}

static void test_shared_ticks(void)
{
    static const struct cg_relay_hooks sh = {deliver, &hook_cookie, NULL, NULL, 0,
                                             on_hold, on_gap,       NULL, NULL, NULL};
    setup();
    cg_relay_init(&relay, &reg, &sh, MAXP);
    snap();
    /* Redis's seq is kept: the first tick may be any number. */
    CHECK_INT(tick("rb2501", "#41 {\"last\":1}"), 0);
    CHECK_INT(ndl, 2);
    CHECK_STR(dl[0].bytes, "{\"type\":\"tick\",\"instrument\":\"rb2501\",\"seq\":41,"
                           "\"data\":{\"last\":1}}");
    struct cg_instrument *rb = inst("rb2501");
    CHECK(rb->shared && rb->seq == 41);
    forget();
    /* A repeat or an older seq is skipped and counted, not delivered. */
    CHECK_INT(tick("rb2501", "#41 {\"last\":1}"), 0);
    CHECK_INT(tick("rb2501", "#7 {\"last\":0}"), 0);
    CHECK_INT(ndl, 0);
    CHECK_UINT(cg_metrics.ticks_repeated - before.ticks_repeated, 2);
    /* The next one goes on. */
    CHECK_INT(tick("rb2501", "#42 {\"last\":2}"), 0);
    CHECK_INT(ndl, 2);
    forget();
    /* A jump: the gap hook is asked; when it fetches, the tick is held, not delivered. */
    gap_answer = 0;
    CHECK_INT(tick("rb2501", "#45 {\"last\":5}"), 0);
    CHECK_INT(ngaps, 1);
    CHECK_UINT(gap_seq, 45);
    CHECK_INT(ndl, 0);
    CHECK_INT(nheld, 1);
    CHECK_UINT(held_seq[0], 45);
    CHECK_STR(held_text[0], "{\"last\":5}");
    /* While caught up, later ticks are held too, without asking again. */
    CHECK_INT(tick("rb2501", "#46 {\"last\":6}"), 0);
    CHECK_INT(ngaps, 1);
    CHECK_INT(nheld, 2);
    /* What the catch-up then applies: the missing ones, then the held ones, repeats skipped. */
    rb->catchup = NULL;
    CHECK_INT(cg_relay_apply(&relay, rb, 43, "{\"last\":3}", 10, 1000), 0);
    CHECK_INT(cg_relay_apply(&relay, rb, 44, "{\"last\":4}", 10, 1000), 0);
    CHECK_INT(cg_relay_apply(&relay, rb, 45, "{\"last\":5}", 10, 0), 0);
    CHECK_INT(cg_relay_apply(&relay, rb, 45, "{\"last\":5}", 10, 0), 0);
    CHECK_INT(cg_relay_apply(&relay, rb, 46, "{\"last\":6}", 10, 0), 0);
    CHECK_INT(ndl, 8);
    for (int i = 0; i < 4; i++) {
        char want[96];
        snprintf(want, sizeof(want),
                 "{\"type\":\"tick\",\"instrument\":\"rb2501\",\"seq\":%d,\"data\":{\"last\":%d}}",
                 43 + i, 3 + i);
        CHECK_STR(dl[2 * i].bytes, want);
    }
    forget();
    /* A jump the hook cannot fetch: delivered with the gap, the missing seqs counted. */
    gap_answer = -1;
    uint64_t missed = cg_metrics.ticks_missed;
    CHECK_INT(tick("rb2501", "#50 {\"last\":10}"), 0);
    CHECK_INT(ndl, 2);
    CHECK_UINT(cg_metrics.ticks_missed - missed, 3);
    forget();
    /* Bad headers: dropped as bad_seq; the body's own checks as for plain ticks. */
    const char *bad[] = {"#",
                         "#5",
                         "#5{}",
                         "# 5 {}",
                         "#x {}",
                         "#0 {}",
                         "#-1 {}",
                         "#123456789012345678901 {}",
                         "#18446744073709551616 {}"};
    uint64_t bs = dropped(CG_DROP_BAD_SEQ);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_INT(tick("rb2501", bad[i]), -1);
    CHECK_UINT(dropped(CG_DROP_BAD_SEQ) - bs, sizeof(bad) / sizeof(bad[0]));
    CHECK_INT(tick("rb2501", "#51 [1]"), -1);
    CHECK_INT(tick("rb2501", "#51 {nope"), -1);
    CHECK_INT(tick("bad name", "#51 {}"), -1);
    CHECK_INT(ndl, 0);
    CHECK_UINT(rb->seq, 50);
    /* A frame for a socket's stream replay: the same bytes as a live delivery. */
    struct cg_frame *f = cg_relay_tick_frame(rb, 12, "{\"a\":\n1}", 8);
    if (CHECK(f != NULL)) {
        CHECK_INT((int)f->len, (int)strlen("{\"type\":\"tick\",\"instrument\":\"rb2501\","
                                           "\"seq\":12,\"data\":{\"a\":1}}"));
        cg_frame_unref(f);
    }
    CHECK(cg_relay_tick_frame(rb, 12, "[1]", 3) == NULL);
    teardown();
}

int main(void)
{
    cg_log_set_level(CG_LOG_ERROR); /* drops log at warn: keep the test output readable */
    test_tick_fanout();
    test_tick_paced();
    test_tick_newline();
    test_tick_drops();
    test_tick_unsubscribed();
    test_user_and_broadcast();
    test_envelopes();
    test_replies();
    test_shared_ticks();
    return check_summary("relay");
}
