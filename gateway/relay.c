/* relay.c -- published payload -> one shared frame -> every target member. */
#include "relay.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "instrument.h"
#include "overlay.h"
#include "request.h"

void cg_relay_init(struct cg_relay *r, struct cg_registry *reg, const struct cg_relay_hooks *hooks,
                   size_t max_payload)
{
    memset(r, 0, sizeof(*r));
    r->reg = reg;
    r->hooks = *hooks;
    r->max_payload = max_payload;
}

static int drop(struct cg_relay *r, enum cg_drop_reason why, const char *what, const char *detail)
{
    cg_metrics.dropped[why]++;
    cg_log_limited(&r->drop_log, 5000, CG_LOG_WARN, "payload dropped", "reason=%s source=%s %s",
                   cg_drop_names[why], what, detail ? detail : "");
    return -1;
}

/* Compact JSON text of v for splicing into a frame. The publisher's own bytes are
 * used when they hold no raw line break (batching splits on "\n") and no NUL (jansson
 * accepts one right after a number or literal, a browser's JSON.parse does not);
 * otherwise v is re-encoded compactly. *out is raw, or a new buffer stored in *owned. */
static int text_of(json_t *v, const char *raw, size_t rawlen, const char **out, size_t *outlen,
                   char **owned)
{
    *owned = NULL;
    if (raw && !memchr(raw, '\n', rawlen) && !memchr(raw, '\r', rawlen) &&
        !memchr(raw, 0, rawlen)) {
        *out = raw;
        *outlen = rawlen;
        return 0;
    }
    *owned = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!*owned)
        return -1;
    *out = *owned;
    *outlen = strlen(*owned);
    return 0;
}

static void fan_instrument(struct cg_relay *r, struct cg_instrument *in, struct cg_frame *f)
{
    /* Delivery never drops a subscription (closes are deferred), so the array holds still.
     * Prefetching a few subscribers ahead overlaps their cache misses. */
    struct cg_fan *fan = in->fan;
    for (uint32_t i = 0, n = in->nsubs; i < n; i++) {
        if (i + 8 < n)
            __builtin_prefetch(fan[i + 8].member);
        if (fan[i].held) /* its snapshot, when ready, will include this tick */
            continue;
        if (!fan[i].paced)
            r->hooks.deliver(r->hooks.data, fan[i].member, f, &fan[i].slot);
        else
            r->hooks.paced(r->hooks.data, fan[i].sub, 0, f);
    }
}

static json_t *parse(struct cg_relay *r, const char *payload, size_t plen, const char *what)
{
    if (plen > r->max_payload) {
        drop(r, CG_DROP_TOO_LARGE, what, NULL);
        return NULL;
    }
    json_error_t err;
    json_t *v = json_loadb(payload, plen, JSON_DECODE_ANY, &err);
    if (!v)
        drop(r, CG_DROP_BAD_JSON, what, "detail=\"not valid JSON\"");
    return v;
}

/* Encodes tick seq of in once, fans it out, then gives it to the chart agent. */
static int deliver_tick(struct cg_relay *r, struct cg_instrument *in, json_t *data, const char *raw,
                        size_t rawlen, int64_t at_ms)
{
    if (!in->nsubs && !in->chart && !r->hooks.tick_all)
        return 0; /* nobody to encode it for */
    const char *text;
    size_t tlen;
    char *owned;
    if (text_of(data, raw, rawlen, &text, &tlen, &owned))
        return -1;
    struct cg_frame *f = cg_frame_tick(in, in->name, in->seq, text, tlen);
    if (!f) {
        free(owned);
        return -1;
    }
    fan_instrument(r, in, f);
    if (r->hooks.tick)
        r->hooks.tick(r->hooks.tick_data, in, data, text, tlen, f, at_ms);
    free(owned);
    cg_frame_unref(f);
    return 0;
}

static int tick(struct cg_relay *r, const char *name, size_t nlen, json_t *data, const char *raw,
                size_t rawlen)
{
    if (!cg_instrument_valid(name, nlen))
        return drop(r, CG_DROP_NO_TARGET, "tick", "detail=\"invalid instrument name\"");
    if (!json_is_object(data))
        return drop(r, CG_DROP_NOT_OBJECT, "tick", NULL);
    struct cg_instrument *in = cg_registry_instrument(r->reg, name, nlen, 1);
    if (!in)
        return 0; /* table full and nobody here can be subscribed to it */
    in->known = 1;
    in->seq++;
    return deliver_tick(r, in, data, raw, rawlen, 0);
}

/* "#<seq> " at the start of a shared tick: the seq (>= 1) and where the JSON starts, or 0. */
static uint64_t seq_header(const char *p, size_t len, size_t *body)
{
    uint64_t seq = 0;
    size_t i = 1;
    for (; i < len && i <= 20 && p[i] >= '0' && p[i] <= '9'; i++) {
        if (seq > (UINT64_MAX - 9) / 10)
            return 0;
        seq = seq * 10 + (uint64_t)(p[i] - '0');
    }
    if (i == 1 || i >= len || p[i] != ' ')
        return 0;
    *body = i + 1;
    return seq;
}

/* A shared tick: parsed only once it is known to be wanted now (not held, not a repeat). */
static int shared_tick(struct cg_relay *r, struct cg_instrument *in, uint64_t seq,
                       const char *payload, size_t plen, int64_t at_ms, int live)
{
    if (live && in->catchup && r->hooks.hold) {
        r->hooks.hold(r->hooks.stream_data, in, seq, payload, plen);
        return 0;
    }
    if (in->shared && seq <= in->seq) {
        cg_metrics.ticks_repeated++;
        return 0;
    }
    if (live && in->shared && in->seq && seq > in->seq + 1 && (in->nsubs || in->chart) &&
        r->hooks.gap && r->hooks.gap(r->hooks.stream_data, in, seq) == 0) {
        if (r->hooks.hold)
            r->hooks.hold(r->hooks.stream_data, in, seq, payload, plen);
        return 0;
    }
    json_t *v = parse(r, payload, plen, "tick");
    if (!v)
        return -1;
    int rc = 0;
    if (!json_is_object(v)) {
        rc = drop(r, CG_DROP_NOT_OBJECT, "tick", NULL);
    } else {
        if (in->shared && in->seq && seq > in->seq + 1)
            cg_metrics.ticks_missed += seq - in->seq - 1;
        in->shared = 1;
        in->known = 1;
        in->seq = seq;
        rc = deliver_tick(r, in, v, payload, plen, at_ms);
    }
    json_decref(v);
    return rc;
}

struct cg_frame *cg_relay_tick_frame(struct cg_instrument *in, uint64_t seq, const char *payload,
                                     size_t plen)
{
    json_t *v = json_loadb(payload, plen, JSON_DECODE_ANY, NULL);
    struct cg_frame *f = NULL;
    const char *text;
    size_t tlen;
    char *owned = NULL;
    if (json_is_object(v) && text_of(v, payload, plen, &text, &tlen, &owned) == 0)
        f = cg_frame_tick(in, in->name, seq, text, tlen);
    free(owned);
    json_decref(v);
    return f;
}

int cg_relay_apply(struct cg_relay *r, struct cg_instrument *in, uint64_t seq, const char *payload,
                   size_t plen, int64_t at_ms)
{
    return shared_tick(r, in, seq, payload, plen, at_ms, 0);
}

static int message_to(struct cg_relay *r, struct cg_user *u, const char *channel, json_t *data,
                      const char *raw, size_t rawlen)
{
    const char *text;
    size_t tlen;
    char *owned;
    if (text_of(data, raw, rawlen, &text, &tlen, &owned))
        return -1;
    struct cg_frame *f = cg_frame_message(channel, text, tlen);
    free(owned);
    if (!f)
        return -1;
    struct cg_list *head = u ? &u->members : &r->reg->members, *it, *tmp;
    CG_LIST_FOREACH_SAFE(it, tmp, head)
    {
        struct cg_member *m = u ? CG_CONTAINER_OF(it, struct cg_member, user_link)
                                : CG_CONTAINER_OF(it, struct cg_member, all_link);
        r->hooks.deliver(r->hooks.data, m, f, NULL);
    }
    cg_frame_unref(f);
    return 0;
}

int cg_relay_tick(struct cg_relay *r, const char *name, size_t nlen, const char *payload,
                  size_t plen, enum cg_source src)
{
    cg_metrics.published[src]++;
    if (plen && payload[0] == '#') {
        size_t body;
        uint64_t seq = seq_header(payload, plen, &body);
        if (!seq)
            return drop(r, CG_DROP_BAD_SEQ, "tick", "detail=\"expected #<seq> <JSON>\"");
        if (plen - body > r->max_payload)
            return drop(r, CG_DROP_TOO_LARGE, "tick", NULL);
        if (!cg_instrument_valid(name, nlen))
            return drop(r, CG_DROP_NO_TARGET, "tick", "detail=\"invalid instrument name\"");
        struct cg_instrument *in = cg_registry_instrument(r->reg, name, nlen, 1);
        if (!in)
            return 0; /* table full and nobody here can be subscribed to it */
        return shared_tick(r, in, seq, payload + body, plen - body, 0, 1);
    }
    json_t *v = parse(r, payload, plen, "tick");
    if (!v)
        return -1;
    int rc = tick(r, name, nlen, v, payload, plen);
    json_decref(v);
    return rc;
}

int cg_relay_user(struct cg_relay *r, const char *user_id, size_t ulen, const char *payload,
                  size_t plen, enum cg_source src)
{
    cg_metrics.published[src]++;
    json_t *v = parse(r, payload, plen, "user");
    if (!v)
        return -1;
    int rc = 0;
    char id[CG_SESSION_USER_MAX + 1];
    if (ulen && ulen <= CG_SESSION_USER_MAX) {
        memcpy(id, user_id, ulen);
        id[ulen] = 0;
        struct cg_user *u = cg_registry_user(r->reg, id);
        if (u)
            rc = message_to(r, u, "user", v, payload, plen);
    }
    json_decref(v);
    return rc;
}

int cg_relay_broadcast(struct cg_relay *r, const char *payload, size_t plen, enum cg_source src)
{
    cg_metrics.published[src]++;
    json_t *v = parse(r, payload, plen, "broadcast");
    if (!v)
        return -1;
    int rc = message_to(r, NULL, "broadcast", v, payload, plen);
    json_decref(v);
    return rc;
}

struct overlay_fan {
    struct cg_relay *r;
    struct cg_instrument *in;
};

int cg_relay_overlay(struct cg_relay *r, const char *name, size_t nlen, const char *payload,
                     size_t plen)
{
    cg_metrics.published[CG_SOURCE_PUBSUB]++;
    if (!cg_instrument_valid(name, nlen))
        return drop(r, CG_DROP_NO_TARGET, "overlay", "detail=\"invalid instrument name\"");
    struct cg_instrument *in = cg_registry_instrument(r->reg, name, nlen, 0);
    struct cg_overlay_inst *s = in ? in->overlays : NULL;
    json_t *v = parse(r, payload, plen, "overlay");
    if (!v)
        return -1;
    struct cg_overlay_op op;
    const char *why;
    char detail[120];
    if (cg_overlay_check(v, &op, &why)) {
        snprintf(detail, sizeof(detail), "detail=\"%s\"", why);
        json_decref(v);
        return drop(r, CG_DROP_BAD_OVERLAY, "overlay", detail);
    }
    int rc = 0;
    if (!s || op.v <= s->last_v)
        goto done; /* nobody here views it, or already seen (a read included it) */
    const char *text;
    size_t tlen;
    char *owned = NULL;
    struct cg_frame *f = NULL;
    int missed = s->last_v && op.v > s->last_v + 1; /* the pub/sub link was down */
    if (!missed && !text_of(v, payload, plen, &text, &tlen, &owned))
        f = cg_frame_overlay(in->name, text, tlen);
    free(owned);
    if (!f) {
        /* Missed, or out of memory: the viewers no longer hold what Redis holds, and the ring
         * has a hole. They read the whole state again (a sync). */
        for (uint32_t i = 0; i < s->count; i++)
            cg_frame_unref(s->ring[(s->head + i) % CG_OVERLAY_RING].f);
        s->count = s->head = 0;
        s->last_v = op.v;
        if (r->hooks.overlay_gap)
            r->hooks.overlay_gap(r->hooks.tick_data, in);
        rc = missed ? 0 : -1;
        goto done;
    }
    s->last_v = op.v;
    cg_overlay_remember(s, op.v, f, op.user);
    /* As for ticks, the fan array alone says who gets it: no subscription record is touched. */
    struct cg_fan *fan = in->fan;
    for (uint32_t i = 0, n = in->nsubs; i < n; i++) {
        if (i + 8 < n)
            __builtin_prefetch(fan[i + 8].member);
        if (!fan[i].overlays || fan[i].held)
            continue;
        const struct cg_user *u = op.user ? fan[i].member->user : NULL;
        if (!op.user || (u && !strcmp(u->id, op.user)))
            r->hooks.deliver(r->hooks.data, fan[i].member, f, NULL);
    }
    cg_frame_unref(f);
done:
    json_decref(v);
    return rc;
}

int cg_relay_envelope(struct cg_relay *r, const char *payload, size_t plen, struct cg_envelope *env)
{
    cg_metrics.published[CG_SOURCE_INBOX]++;
    memset(env, 0, sizeof(*env));
    json_t *root = parse(r, payload, plen, "inbox");
    if (!root)
        return -1;
    int rc = -1;
    json_t *data = json_object_get(root, "data");
    json_t *ins = json_object_get(root, "instrument");
    json_t *user = json_object_get(root, "user");
    json_t *bc = json_object_get(root, "broadcast");
    if (!json_is_object(root)) {
        drop(r, CG_DROP_NOT_OBJECT, "inbox", NULL);
    } else if (!data) {
        drop(r, CG_DROP_NO_TARGET, "inbox", "detail=\"no data\"");
    } else if (json_is_string(ins)) {
        if (!cg_instrument_valid(json_string_value(ins), json_string_length(ins)))
            drop(r, CG_DROP_NO_TARGET, "inbox", "detail=\"invalid instrument name\"");
        else if (!json_is_object(data))
            drop(r, CG_DROP_NOT_OBJECT, "inbox", NULL);
        else {
            env->kind = CG_ENV_INSTRUMENT;
            memcpy(env->target, json_string_value(ins), json_string_length(ins) + 1);
            struct cg_instrument *in =
                cg_registry_instrument(r->reg, env->target, json_string_length(ins), 1);
            if (in)
                in->known = 1;
            rc = 0;
        }
    } else if (json_is_string(user)) {
        size_t ul = json_string_length(user);
        if (!ul || ul > CG_SESSION_USER_MAX || strlen(json_string_value(user)) != ul) {
            drop(r, CG_DROP_NO_TARGET, "inbox", "detail=\"invalid user\"");
        } else {
            env->kind = CG_ENV_USER;
            memcpy(env->target, json_string_value(user), ul + 1);
            rc = 0;
        }
    } else if (json_is_true(bc)) {
        env->kind = CG_ENV_BROADCAST;
        rc = 0;
    } else if (json_is_string(json_object_get(root, "chart"))) {
        json_t *ch = json_object_get(root, "chart");
        if (!cg_instrument_valid(json_string_value(ch), json_string_length(ch)))
            drop(r, CG_DROP_NO_TARGET, "inbox", "detail=\"invalid instrument name\"");
        else if (!json_is_object(data))
            drop(r, CG_DROP_BAD_OVERLAY, "inbox", "detail=\"not an object\"");
        else {
            env->kind = CG_ENV_CHART;
            memcpy(env->target, json_string_value(ch), json_string_length(ch) + 1);
            rc = 0;
        }
    } else {
        drop(r, CG_DROP_NO_TARGET, "inbox", NULL);
    }
    if (rc == 0) {
        env->data = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!env->data)
            rc = -1;
        else
            env->len = strlen(env->data);
    }
    json_decref(root);
    return rc;
}

/* "<epoch>.<n>" naming a socket of this process: n, or 0. */
static uint64_t conn_of(const char *epoch, json_t *v)
{
    const char *s = json_string_value(v);
    size_t el = strlen(epoch), len = json_string_length(v);
    if (!s || len <= el + 1 || len > el + 21 || memcmp(s, epoch, el) || s[el] != '.')
        return 0;
    uint64_t n = 0;
    for (size_t i = el + 1; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || n > (UINT64_MAX - 9) / 10)
            return 0;
        n = n * 10 + (uint64_t)(s[i] - '0');
    }
    return n;
}

int cg_relay_reply(struct cg_relay *r, const char *epoch, const char *payload, size_t plen)
{
    enum cg_reply_result res = CG_REPLY_MALFORMED;
    json_t *root = parse(r, payload, plen, "reply");
    json_t *svc = json_object_get(root, "service"), *data = json_object_get(root, "data");
    char id[CG_REQUEST_ID_JSON_MAX + 1], *text = NULL;
    struct cg_member *m = NULL;
    if (!json_is_object(root) || !json_is_string(svc) || !data ||
        !cg_config_service_name_valid(json_string_value(svc), json_string_length(svc)) ||
        cg_request_id_json(json_object_get(root, "id"), id))
        goto done;
    uint64_t conn = conn_of(epoch, json_object_get(root, "conn"));
    if (!conn) {
        res =
            json_is_string(json_object_get(root, "conn")) ? CG_REPLY_NO_SOCKET : CG_REPLY_MALFORMED;
        goto done;
    }
    if (!(m = cg_registry_member(r->reg, conn))) {
        res = CG_REPLY_NO_SOCKET;
        goto done;
    }
    text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    struct cg_frame *f =
        text ? cg_frame_reply(json_string_value(svc), id[0] ? id : NULL, text, strlen(text)) : NULL;
    if (!f)
        goto done; /* out of memory: counted as malformed, the nearest honest bucket */
    r->hooks.deliver(r->hooks.data, m, f, NULL);
    cg_frame_unref(f);
    res = CG_REPLY_DELIVERED;
done:
    cg_metrics.replies[res]++;
    if (res != CG_REPLY_DELIVERED)
        cg_log_limited(&r->drop_log, 5000, CG_LOG_INFO, "reply dropped", "reason=%s",
                       cg_reply_names[res]);
    free(text);
    json_decref(root);
    return res == CG_REPLY_DELIVERED ? 0 : -1;
}
