/* fuzz_relay.c -- the relay's payload and envelope parsers (gateway/relay.h).
 *
 * Input: records separated by 0x1e; each is an operation byte, a target, 0x1f, then
 * the payload bytes as Redis delivered them:
 *   T<instrument>\x1f<tick>    cg_relay_tick     (a md:<instrument> message)
 *   U<user id>\x1f<payload>    cg_relay_user     (a user:<id> message)
 *   B\x1f<payload>             cg_relay_broadcast
 *   E\x1f<envelope>            cg_relay_envelope (an inbox item)
 * (any other operation byte selects one by its value). A fresh registry per input has
 * members of users u1 and u2 subscribed to rb2501 and au2412, so fan-out runs; the
 * deliver hook takes and drops a reference and checks the frame: one JSON object on one
 * line. Envelopes must yield a valid target and compact JSON data. */
#include "fuzz_common.h"
#include "instrument.h"
#include "relay.h"

#define MAX_PAYLOAD 2048

static uint64_t delivered;
static struct cg_frame *last_checked;

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
    cg_frame_unref(own);
}

/* The chart agent's turn: text must be the tick's data as spliced into the frame. */
static void tick_hook(void *data, struct cg_instrument *in, json_t *obj, const char *text,
                      size_t len, struct cg_frame *f)
{
    FUZZ_CHECK(data == &delivered);
    FUZZ_CHECK(in && json_is_object(obj) && f);
    const char *fd = (const char *)cg_frame_data(f);
    FUZZ_CHECK(text >= fd && text + len + 1 == fd + f->len);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cg_registry reg;
    struct cg_relay relay;
    struct cg_member m[3];
    /* The first byte's top bit asks for every tick (tick_all, as with --record-bars). */
    const struct cg_relay_hooks hooks = {deliver, &delivered, tick_hook, &delivered,
                                         size && (data[0] & 0x80)};
    cg_registry_init(&reg, NULL, 64);
    cg_relay_init(&relay, &reg, &hooks, MAX_PAYLOAD);
    relay.drop_log = drop_log;
    FUZZ_CHECK(cg_registry_join(&reg, &m[0], NULL, "u1") == CG_REG_OK);
    FUZZ_CHECK(cg_registry_join(&reg, &m[1], NULL, "u1") == CG_REG_OK);
    FUZZ_CHECK(cg_registry_join(&reg, &m[2], NULL, "u2") == CG_REG_OK);
    const char *rb[] = {"rb2501"}, *both[] = {"rb2501", "au2412"};
    FUZZ_CHECK(cg_registry_subscribe(&reg, &m[0], rb, 1, 200) == CG_REG_OK);
    FUZZ_CHECK(cg_registry_subscribe(&reg, &m[1], both, 2, 200) == CG_REG_OK);
    FUZZ_CHECK(cg_registry_subscribe(&reg, &m[2], both, 2, 200) == CG_REG_OK);

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
        switch (op == 'T' || op == 'U' || op == 'B' || op == 'E' ? op : "TUBE"[op & 3]) {
        case 'T': {
            struct cg_instrument *in = cg_registry_instrument(&reg, target, tlen, 0);
            uint64_t seq = in ? in->seq : 0;
            uint32_t nsubs = in ? in->nsubs : 0;
            rc = cg_relay_tick(&relay, target, tlen, payload, plen, CG_SOURCE_PUBSUB);
            FUZZ_CHECK(rc == 0 || rc == -1);
            FUZZ_CHECK(delivered - before == (rc == 0 ? nsubs : 0));
            if (rc == 0 && in)
                FUZZ_CHECK(in->seq == seq + 1 && in->known);
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
        default:
            check_envelope(&relay, payload, plen);
            break;
        }
        free(target);
        free(payload);
        last_checked = NULL; /* a later frame may get the same address */
    }
    drop_log = relay.drop_log;
    for (int i = 0; i < 3; i++)
        cg_registry_leave(&reg, &m[i]);
    cg_registry_finish(&reg);
    return 0;
}
