/* fuzz_relay.c -- the relay's payload and envelope parsers (gateway/relay.h).
 *
 * Input: records separated by 0x1e; each is an operation byte, a target, 0x1f, then
 * the payload bytes as Redis delivered them:
 *   T<instrument>\x1f<tick>    cg_relay_tick     (a md:<instrument> message)
 *   U<user id>\x1f<payload>    cg_relay_user     (a user:<id> message)
 *   B\x1f<payload>             cg_relay_broadcast
 *   E\x1f<envelope>            cg_relay_envelope (an inbox item)
 *   R\x1f<reply>               cg_relay_reply    (a service's reply on this process's channel)
 *   O<instrument>\x1f<op>      cg_relay_overlay  (a chart:<instrument> message, PROTOCOL.md §17)
 * (any other operation byte selects one by its value). On rb2501 the subscriptions of conns 2
 * (u1) and 3 (u2) have overlays on: an operation reaches at most those two, never a user's
 * operation another user's socket, and versions only go forwards. A fresh registry per input has
 * members of users u1 and u2 subscribed to rb2501 and au2412, so fan-out runs; the
 * deliver hook takes and drops a reference and checks the frame: one JSON object on one
 * line. Envelopes must yield a valid target and compact JSON data. Replies go to this
 * process's epoch EPOCH: its members are conns 1..3, conn 4 joined and left (a departed
 * socket); a delivered reply reaches exactly the member its conn names, as a reply frame
 * holding the reply's service, id and data, and every reply is counted once. */
#include "fuzz_common.h"
#include "instrument.h"
#include "overlay.h"
#include "relay.h"

#define MAX_PAYLOAD 2048
#define EPOCH "00112233445566ff"

static uint64_t delivered;
static struct cg_frame *last_checked;
static struct cg_member *last_member; /* the last member a frame was offered to */

static void deliver(void *data, struct cg_member *m, struct cg_frame *f, uint64_t *slot)
{
    FUZZ_CHECK(data == &delivered);
    FUZZ_CHECK(m && m->user);
    FUZZ_CHECK(!slot || f->kind == CG_FRAME_TICK);
    struct cg_frame *own = cg_frame_ref(f);
    if (own != last_checked) { /* one shared frame per item: check it once */
        fuzz_check_frame(own);
        last_checked = own;
    }
    delivered++;
    last_member = m;
    cg_frame_unref(own);
}

/* The chart agent's turn: text must be the tick's data as spliced into the frame (the same
 * bytes; since fe0a478 they are the publisher's own or the relay's re-encoding, no longer a
 * pointer into the frame). */
static void tick_hook(void *data, struct cg_instrument *in, json_t *obj, const char *text,
                      size_t len, struct cg_frame *f, int64_t at_ms)
{
    FUZZ_CHECK(at_ms == 0);
    FUZZ_CHECK(data == &delivered);
    FUZZ_CHECK(in && json_is_object(obj) && f);
    const char *fd = (const char *)cg_frame_data(f);
    FUZZ_CHECK(text && len + 1 < f->len && !memcmp(fd + f->len - 1 - len, text, len));
    json_error_t e;
    json_t *v = json_loadb(text, len, 0, &e);
    FUZZ_CHECK(v && json_equal(v, obj));
    json_decref(v);
}

static struct cg_log_limit drop_log; /* kept across inputs: one log line per 5 s */

static void check_envelope(struct cg_relay *r, const char *p, size_t n)
{
    struct cg_envelope env;
    memset(&env, 0xa5, sizeof(env));
    int rc = cg_relay_envelope(r, p, n, &env);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc) {
        FUZZ_CHECK(env.data == NULL);
        return;
    }
    FUZZ_CHECK(env.data && strlen(env.data) == env.len);
    FUZZ_CHECK(FUZZ_TERMINATED(env.target));
    size_t tl = strlen(env.target);
    switch (env.kind) {
    case CG_ENV_INSTRUMENT:
        FUZZ_CHECK(cg_instrument_valid(env.target, tl));
        FUZZ_CHECK(cg_registry_instrument(r->reg, env.target, tl, 0) ||
                   r->reg->instruments.count >= r->reg->max_instruments);
        FUZZ_CHECK(env.data[0] == '{');
        break;
    case CG_ENV_USER:
        FUZZ_CHECK(tl >= 1 && tl <= CG_SESSION_USER_MAX);
        break;
    case CG_ENV_BROADCAST:
        FUZZ_CHECK(tl == 0);
        break;
    case CG_ENV_CHART:
        FUZZ_CHECK(cg_instrument_valid(env.target, tl));
        FUZZ_CHECK(env.data[0] == '{');
        break;
    default:
        FUZZ_CHECK(!"bad envelope kind");
    }
    for (size_t i = 0; i < env.len; i++)
        FUZZ_CHECK(env.data[i] != '\n' && env.data[i] != '\r');
    /* what the bridge republishes is what the relay then accepts */
    uint64_t before = delivered;
    if (env.kind == CG_ENV_INSTRUMENT)
        FUZZ_CHECK(cg_relay_tick(r, env.target, tl, env.data, env.len, CG_SOURCE_INBOX) == 0 ||
                   env.len > r->max_payload);
    else if (env.kind == CG_ENV_USER)
        FUZZ_CHECK(cg_relay_user(r, env.target, tl, env.data, env.len, CG_SOURCE_INBOX) == 0 ||
                   env.len > r->max_payload);
    else
        FUZZ_CHECK(cg_relay_broadcast(r, env.data, env.len, CG_SOURCE_INBOX) == 0 ||
                   env.len > r->max_payload);
    if (env.kind == CG_ENV_BROADCAST && env.len <= r->max_payload)
        FUZZ_CHECK(delivered - before == r->reg->nmembers);
    free(env.data);
}

static uint64_t replies_total(void)
{
    uint64_t n = 0;
    for (int i = 0; i < CG_REPLY__COUNT; i++)
        n += cg_metrics.replies[i];
    return n;
}

/* A reply frame offered to m: {"type":"reply","service":S,["id":I,]"data":D}, with S, I and
 * D those of the reply payload p. */
static struct cg_frame *reply_frame;

static void reply_deliver(void *data, struct cg_member *m, struct cg_frame *f, uint64_t *slot)
{
    deliver(data, m, f, slot);
    FUZZ_CHECK(!slot && f->kind == CG_FRAME_MESSAGE && !reply_frame);
    reply_frame = cg_frame_ref(f);
}

static void check_reply(struct cg_relay *r, const char *p, size_t n, struct cg_member *m, int nm)
{
    uint64_t before = delivered, counted = replies_total();
    uint64_t ok0 = cg_metrics.replies[CG_REPLY_DELIVERED];
    reply_frame = NULL;
    last_member = NULL;
    r->hooks.deliver = reply_deliver;
    int rc = cg_relay_reply(r, EPOCH, p, n);
    r->hooks.deliver = deliver;
    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK(replies_total() == counted + 1);
    FUZZ_CHECK(cg_metrics.replies[CG_REPLY_DELIVERED] - ok0 == (rc == 0));
    FUZZ_CHECK(delivered - before == (rc == 0));
    if (rc) {
        FUZZ_CHECK(!reply_frame);
        return;
    }
    FUZZ_CHECK(reply_frame && last_member);
    /* the member its conn names, and a live one */
    int which = -1;
    for (int i = 0; i < nm; i++)
        if (&m[i] == last_member)
            which = i;
    FUZZ_CHECK(which >= 0 && m[which].user);
    json_t *in = json_loadb(p, n, JSON_DECODE_ANY, NULL);
    json_t *out = json_loadb((const char *)cg_frame_data(reply_frame), reply_frame->len, 0, NULL);
    FUZZ_CHECK(json_is_object(in) && json_is_object(out));
    const char *conn = json_string_value(json_object_get(in, "conn"));
    char want[40];
    snprintf(want, sizeof(want), EPOCH ".%llu", (unsigned long long)m[which].conn);
    FUZZ_CHECK(conn && !strncmp(conn, EPOCH ".", 17));
    /* the same number, leading zeros aside */
    const char *digits = conn + 17;
    while (*digits == '0' && digits[1])
        digits++;
    FUZZ_CHECK(!strcmp(digits, want + 17));
    FUZZ_CHECK(json_object_size(out) == 3 + (json_object_get(in, "id") != NULL));
    FUZZ_CHECK(!strcmp(json_string_value(json_object_get(out, "type")), "reply"));
    json_t *svc = json_object_get(in, "service");
    FUZZ_CHECK(json_is_string(svc) &&
               cg_config_service_name_valid(json_string_value(svc), json_string_length(svc)));
    FUZZ_CHECK(json_equal(svc, json_object_get(out, "service")));
    FUZZ_CHECK(json_equal(json_object_get(in, "data"), json_object_get(out, "data")));
    json_t *id = json_object_get(in, "id");
    FUZZ_CHECK(!id || json_is_integer(id) || json_is_string(id));
    FUZZ_CHECK(!id || json_equal(id, json_object_get(out, "id")));
    json_decref(in);
    json_decref(out);
    cg_frame_unref(reply_frame);
    reply_frame = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cg_registry reg;
    struct cg_relay relay;
    struct cg_member m[4];
    /* The first byte's top bit asks for every tick (tick_all, as with --record-bars). */
    const struct cg_relay_hooks hooks = {
        deliver, &delivered, tick_hook, &delivered, size && (data[0] & 0x80),
        NULL,    NULL,       NULL,      NULL,       NULL};
    cg_registry_init(&reg, NULL, 64);
    cg_relay_init(&relay, &reg, &hooks, MAX_PAYLOAD);
    relay.drop_log = drop_log;
    FUZZ_CHECK(cg_registry_join(&reg, &m[0], NULL, "u1") == CG_REG_OK);
    FUZZ_CHECK(cg_registry_join(&reg, &m[1], NULL, "u1") == CG_REG_OK);
    FUZZ_CHECK(cg_registry_join(&reg, &m[2], NULL, "u2") == CG_REG_OK);
    FUZZ_CHECK(cg_registry_join(&reg, &m[3], NULL, "u3") == CG_REG_OK);
    cg_registry_leave(&reg, &m[3]); /* conn 4: a socket that has gone */
    FUZZ_CHECK(m[0].conn == 1 && m[1].conn == 2 && m[2].conn == 3 && m[3].conn == 4);
    const char *rb[] = {"rb2501"}, *both[] = {"rb2501", "au2412"};
    FUZZ_CHECK(cg_registry_subscribe(&reg, &m[0], rb, 1, 200) == CG_REG_OK);
    FUZZ_CHECK(cg_registry_subscribe(&reg, &m[1], both, 2, 200) == CG_REG_OK);
    FUZZ_CHECK(cg_registry_subscribe(&reg, &m[2], both, 2, 200) == CG_REG_OK);
    struct cg_instrument *rbi = cg_registry_instrument(&reg, "rb2501", 6, 0);
    FUZZ_CHECK(rbi && (rbi->overlays = cg_overlay_inst_create()) != NULL);
    for (int i = 1; i <= 2; i++) {
        struct cg_sub *sub = cg_registry_find_sub(&m[i], rbi);
        sub->view.overlays = 1;
        cg_registry_want_overlays(sub, 1);
        rbi->overlays->viewers++;
    }

    /* one copy of the input, cut into records in place (each part exactly sized for ASan) */
    size_t pos = 0;
    while (pos < size) {
        const uint8_t *rec = data + pos;
        const uint8_t *end = memchr(rec, 0x1e, size - pos);
        size_t rlen = end ? (size_t)(end - rec) : size - pos;
        pos += rlen + 1;
        if (!rlen)
            continue;
        char op = (char)rec[0];
        const uint8_t *sep = memchr(rec + 1, 0x1f, rlen - 1);
        size_t tlen = sep ? (size_t)(sep - rec - 1) : rlen - 1;
        size_t plen = sep ? rlen - 1 - tlen - 1 : 0;
        char *target = fuzz_dup(rec + 1, tlen);
        char *payload = fuzz_dup(sep ? sep + 1 : rec + rlen, plen);
        uint64_t before = delivered;
        int rc;
        switch (op == 'T' || op == 'U' || op == 'B' || op == 'E' || op == 'R' || op == 'O'
                    ? op
                    : "TUBERO"[(unsigned char)op % 6]) {
        case 'O': {
            uint64_t v0 = rbi->overlays->last_v;
            last_member = NULL;
            rc = cg_relay_overlay(&relay, target, tlen, payload, plen);
            FUZZ_CHECK(rc == 0 || rc == -1);
            FUZZ_CHECK(delivered - before <= 2);
            FUZZ_CHECK(rbi->overlays->last_v >= v0);
            if (delivered - before == 1) /* a user's operation: one of u1's or u2's sockets */
                FUZZ_CHECK(last_member == &m[1] || last_member == &m[2]);
            FUZZ_CHECK(rbi->overlays->count <= CG_OVERLAY_RING);
            break;
        }
        case 'T': {
            struct cg_instrument *in = cg_registry_instrument(&reg, target, tlen, 0);
            uint64_t seq = in ? in->seq : 0;
            uint32_t nsubs = in ? in->nsubs : 0;
            rc = cg_relay_tick(&relay, target, tlen, payload, plen, CG_SOURCE_PUBSUB);
            FUZZ_CHECK(rc == 0 || rc == -1);
            if (plen && payload[0] == '#') {
                /* A shared tick (PROTOCOL.md §19): applied with its own seq, or a repeat
                 * skipped; either way delivered to every subscriber or to none. */
                uint64_t d = delivered - before;
                FUZZ_CHECK(d == 0 || (rc == 0 && d == nsubs));
                if (rc == 0 && in && d)
                    FUZZ_CHECK(in->seq == strtoull((const char *)payload + 1, NULL, 10) &&
                               in->shared && in->known);
            } else {
                FUZZ_CHECK(delivered - before == (rc == 0 ? nsubs : 0));
                if (rc == 0 && in)
                    FUZZ_CHECK(in->seq == seq + 1 && in->known);
            }
            break;
        }
        case 'U':
            rc = cg_relay_user(&relay, target, tlen, payload, plen, CG_SOURCE_PUBSUB);
            FUZZ_CHECK(rc == 0 || rc == -1);
            FUZZ_CHECK(delivered - before <= 2);
            break;
        case 'B':
            rc = cg_relay_broadcast(&relay, payload, plen, CG_SOURCE_PUBSUB);
            FUZZ_CHECK(rc == 0 || rc == -1);
            FUZZ_CHECK(delivered - before == (rc == 0 ? 3 : 0));
            break;
        case 'R':
            check_reply(&relay, payload, plen, m, 4);
            break;
        default:
            check_envelope(&relay, payload, plen);
            break;
        }
        free(target);
        free(payload);
        last_checked = NULL; /* a later frame may get the same address */
    }
    drop_log = relay.drop_log;
    cg_overlay_inst_destroy(rbi->overlays);
    rbi->overlays = NULL;
    for (int i = 0; i < 3; i++)
        cg_registry_leave(&reg, &m[i]);
    cg_registry_finish(&reg);
    return 0;
}
