/* ws.c -- the lws protocol: authenticated upgrade, client requests, batched writes,
 * slow-consumer and abuse handling, and the small HTTP endpoints. */
#include "ws.h"

#include <ctype.h>
#include <openssl/rand.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "cookie.h"
#include "log.h"
#include "metrics.h"
#include "request.h"

#define STASH_MAX_AGE_MS 10000
#define CLOSE_GRACE_S 3 /* a closing client that cannot take its close frame is cut */
#define STRIKE_WINDOW_MS 10000
#define LIST_MAX 10000
#define RX_CHUNK 1024 /* lws per-connection rx buffer; larger messages are reassembled */
/* Largest chunk lws hands to one send(): without it lws 4.1 caps every send at RX_CHUNK +
 * LWS_PRE + 4 bytes and parks the rest of a message in its buflist, drained ~1 KiB per POLLOUT
 * loop turn -- a 15 KiB batch then took 15 turns (measured: p50 250 ms at 200k frames/s).
 * 64 MiB + 1 KiB covers the largest message, a --max-payload-bytes frame sent alone. */
#define TX_CHUNK ((64U << 20) + 1024)

struct cg_client {
    struct lws *wsi;
    struct cg_ws *w;
    struct cg_member member;
    struct cg_outq q;
    struct cg_auth_entry *auth;
    struct cg_list auth_link;
    unsigned char *rx; /* reassembly of a fragmented message, NULL otherwise */
    size_t rxlen;
    double tokens;
    uint64_t refill_ms;
    uint32_t strikes;
    uint64_t strike_start_ms;
    uint16_t close_code;
    uint8_t established;
    uint8_t closing;
    uint8_t want_write;        /* on to_flush, or waiting for lws's WRITEABLE */
    struct cg_list flush_link; /* on cg_ws.to_flush */
    struct cg_list close_link; /* on cg_ws.to_close until the close starts */
    char close_reason[32];
    char peer[48];
    char
        addr[CG_PEERS_ADDR_MAX + 1]; /* the client's address (behind a trusted proxy: its header) */
    char *http_body;                 /* HTTP responses of this connection */
    size_t http_len;
};

struct stash_entry {
    struct cg_map_node node;
    struct lws *wsi; /* the key: the pointer's bytes */
    struct cg_auth_entry *auth;
    uint64_t at_ms;
    char addr[CG_PEERS_ADDR_MAX + 1];
};

static void closer_cb(uv_timer_t *t);
static void flush_soon_cb(uv_idle_t *h);

static uint64_t now_ms(const struct cg_ws *w)
{
    return uv_now(w->loop);
}

/* ---- closing --------------------------------------------------------------- */

/* Marks c for closing with code/reason: it gets no more frames and its queue is
 * freed now; the close itself starts from a 0 ms timer, outside whatever fan-out
 * or callback we are in (a close can end in LWS_CALLBACK_CLOSED, which unlinks the
 * client from lists being walked). Not by returning -1 from WRITEABLE: Debian's
 * lws 4.1.6 is built with _DEBUG, whose "uv repeat test" then closes a second time
 * and turns the polite close (close frame first) into a hard kill. */
static void close_with(struct cg_client *c, uint16_t code, const char *reason)
{
    if (c->closing)
        return;
    struct cg_ws *w = c->w;
    c->closing = 1;
    c->close_code = code;
    snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
    cg_outq_finish(&c->q);
    cg_list_append(&w->to_close, &c->close_link);
    if (!uv_is_active((uv_handle_t *)&w->closer))
        uv_timer_start(&w->closer, closer_cb, 0, 0);
}

static void closer_cb(uv_timer_t *t)
{
    struct cg_ws *w = t->data;
    while (!cg_list_empty(&w->to_close)) {
        struct cg_client *c = CG_CONTAINER_OF(w->to_close.next, struct cg_client, close_link);
        cg_list_remove(&c->close_link);
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)c->close_reason, strlen(c->close_reason));
        /* Sends the close frame when the socket can take it; lws cuts a client that
         * cannot within its close-send timeout (5 s). */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
    }
}

/* Frames were queued for c: it is written after this loop turn's I/O callbacks, so that
 * everything one read of Redis brought (a market burst) goes out in one batch per client. */
static void want_write(struct cg_client *c)
{
    if (!c->want_write) {
        struct cg_ws *w = c->w;
        c->want_write = 1;
        cg_list_append(&w->to_flush, &c->flush_link);
        if (!uv_is_active((uv_handle_t *)&w->flush_soon))
            uv_idle_start(&w->flush_soon, flush_soon_cb);
    }
}

static void slow_consumer(struct cg_client *c)
{
    cg_metrics.slow_disconnects++;
    cg_log_limited(&c->w->slow_log, 1000, CG_LOG_WARN, "slow consumer closed",
                   "peer=%s user=%s pending_frames=%u pending_bytes=%zu", c->peer,
                   c->member.user ? c->member.user->id : "-", c->q.count, c->q.bytes);
    close_with(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "slow consumer");
}

/* Queues frame f (borrowed) for c; slot as in cg_outq_push. */
static void enqueue(struct cg_client *c, struct cg_frame *f, uint64_t *slot)
{
    if (c->closing || !f)
        return;
    enum cg_outq_result r = cg_outq_push(&c->q, &c->w->limits, f, slot);
    if (r == CG_OUTQ_CONFLATED)
        cg_metrics.frames_conflated++;
    else if (r < 0) {
        slow_consumer(c);
        return;
    }
    want_write(c);
}

/* Sends a freshly encoded control frame (consumed) to c. */
static void reply(struct cg_client *c, struct cg_frame *f)
{
    enqueue(c, f, NULL);
    cg_frame_unref(f);
}

static void send_error(struct cg_client *c, enum cg_errcode code, const char *msg,
                       const char *id_json)
{
    cg_metrics.client_errors[code]++;
    reply(c, cg_frame_error(cg_errcode_name(code), msg, id_json));
}

void cg_ws_deliver(void *data, struct cg_member *m, struct cg_frame *f, uint64_t *slot)
{
    (void)data;
    enqueue(m->owner, f, slot);
}

void cg_ws_revoked(void *data, struct cg_list *socket_link)
{
    (void)data;
    struct cg_client *c = CG_CONTAINER_OF(socket_link, struct cg_client, auth_link);
    close_with(c, 4001, "session ended");
}

void cg_ws_close_all(struct cg_ws *w)
{
    w->shutting_down = 1;
    struct cg_list *it, *tmp;
    CG_LIST_FOREACH_SAFE(it, tmp, &w->reg->members)
    {
        struct cg_member *m = CG_CONTAINER_OF(it, struct cg_member, all_link);
        close_with(m->owner, LWS_CLOSE_STATUS_GOINGAWAY, "going away");
    }
}

/* ---- writing ----------------------------------------------------------------- */

/* Writes one batch of c's queue (from flush_cb or lws's WRITEABLE). */
static int write_pending(struct cg_client *c)
{
    struct cg_ws *w = c->w;
    cg_list_remove(&c->flush_link); /* WRITEABLE may come while c waits on to_flush */
    c->want_write = 0;
    if (c->closing || !c->q.count)
        return 0;
    struct cg_frame *first = cg_outq_peek(&c->q, 0);
    unsigned char *buf;
    size_t len;
    uint32_t n = 1;
    if (c->q.count == 1 || first->len >= w->cfg->batch_max_bytes) {
        /* One frame: written from the shared buffer itself. lws puts the frame
         * header in the headroom just before sending; no extension is negotiated,
         * so it is the same bytes for every client and nothing is kept. */
        buf = cg_frame_data(first);
        len = first->len;
    } else {
        buf = w->scratch + LWS_PRE;
        memcpy(buf, cg_frame_data(first), first->len);
        len = first->len;
        for (; n < c->q.count; n++) {
            struct cg_frame *f = cg_outq_peek(&c->q, n);
            if (len + 1 + f->len > w->cfg->batch_max_bytes)
                break;
            buf[len++] = '\n';
            memcpy(buf + len, cg_frame_data(f), f->len);
            len += f->len;
        }
    }
    int wr = lws_write(c->wsi, buf, len, LWS_WRITE_TEXT);
    cg_outq_pop(&c->q, n);
    if (wr < (int)len)
        return -1;
    cg_metrics.frames_out += n;
    cg_metrics.bytes_out += len;
    cg_metrics.ws_messages_out++;
    if (c->q.count)
        want_write(c);
    return 0;
}

/* The write path. Instead of asking lws for POLLOUT per message (two epoll_ctl calls and a
 * loop turn each: a third of the gateway's CPU at 2000 sockets), each client with queued
 * frames is written directly once per loop turn, right after the poll phase, when its socket
 * can take more (lws_send_pipe_choked: nothing of lws's own pending, and POLLOUT now). A
 * choked socket falls back to lws's WRITEABLE callback, which writes the same way. */
static void flush_cb(uv_check_t *h)
{
    struct cg_ws *w = h->data;
    struct cg_list batch;
    cg_list_init(&batch);
    if (!cg_list_empty(&w->to_flush)) { /* take them all: clients re-queued now wait a turn */
        batch = w->to_flush;
        batch.next->prev = &batch;
        batch.prev->next = &batch;
        cg_list_init(&w->to_flush);
    }
    uv_idle_stop(&w->flush_soon);
    while (!cg_list_empty(&batch)) {
        struct cg_client *c = CG_CONTAINER_OF(batch.next, struct cg_client, flush_link);
        cg_list_remove(&c->flush_link);
        if (c->closing || !c->q.count) {
            c->want_write = 0;
            continue;
        }
        if (lws_send_pipe_choked(c->wsi)) {
            lws_callback_on_writable(c->wsi); /* want_write stays set until WRITEABLE */
            continue;
        }
        if (write_pending(c))
            close_with(c, LWS_CLOSE_STATUS_ABNORMAL_CLOSE, "write failed");
    }
}

static void flush_soon_cb(uv_idle_t *h)
{
    (void)h; /* only keeps the poll phase from blocking while clients wait to be written */
}

/* ---- client requests ------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct list_ctx {
    const struct cg_session *s;
    const char *pattern; /* lower-cased, NULL for list */
    const char **names;
    size_t n;
};

static int contains_ci(const char *hay, const char *needle)
{
    size_t nl = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < nl && hay[i] && tolower((unsigned char)hay[i]) == needle[i])
            i++;
        if (i == nl)
            return 1;
    }
    return nl == 0;
}

static void collect(struct cg_map_node *node, void *arg)
{
    struct list_ctx *lc = arg;
    struct cg_instrument *in = CG_CONTAINER_OF(node, struct cg_instrument, node);
    if (lc->n >= LIST_MAX || !in->known || !cg_session_allows(lc->s, in->name))
        return;
    if (lc->pattern && !contains_ci(in->name, lc->pattern))
        return;
    lc->names[lc->n++] = in->name;
}

/* A list/search request waiting for the instrument set to be re-read. */
struct list_wait {
    struct cg_list link;
    struct cg_client *c; /* NULL once the client closed */
    int search;
    char pattern[CG_INSTRUMENT_MAX + 1];
    char id_json[CG_REQUEST_ID_JSON_MAX + 1];
};

static void answer_list(struct cg_client *c, int search, const char *pattern, const char *id)
{
    struct list_ctx lc = {c->auth->session, NULL, NULL, 0};
    char pat[CG_INSTRUMENT_MAX + 1];
    if (search) {
        size_t i = 0;
        for (; pattern[i]; i++)
            pat[i] = (char)tolower((unsigned char)pattern[i]);
        pat[i] = 0;
        lc.pattern = pat;
    }
    size_t cap = c->w->reg->instruments.count < LIST_MAX ? c->w->reg->instruments.count : LIST_MAX;
    lc.names = malloc((cap ? cap : 1) * sizeof(*lc.names));
    if (!lc.names) {
        send_error(c, CG_ERR_BAD_REQUEST, "out of memory", id);
        return;
    }
    cg_map_each(&c->w->reg->instruments, collect, &lc);
    qsort(lc.names, lc.n, sizeof(*lc.names), by_name);
    reply(c, cg_frame_names("instruments", id, lc.names, lc.n));
    free(lc.names);
}

static void lists_ready(void *data)
{
    struct cg_ws *w = data;
    w->list_inflight = 0;
    struct cg_list *it, *tmp;
    CG_LIST_FOREACH_SAFE(it, tmp, &w->list_waits)
    {
        struct list_wait *lw = CG_CONTAINER_OF(it, struct list_wait, link);
        cg_list_remove(&lw->link);
        if (lw->c)
            answer_list(lw->c, lw->search, lw->pattern, lw->id_json[0] ? lw->id_json : NULL);
        free(lw);
    }
}

/* The instrument set in Redis changes behind our back: a list or search first
 * re-reads it (one read shared by all requests waiting), unless Redis is away, in
 * which case what this process knows is the answer. */
static void handle_list(struct cg_client *c, const struct cg_request *req)
{
    struct cg_ws *w = c->w;
    int search = req->action == CG_ACTION_SEARCH;
    struct list_wait *lw = calloc(1, sizeof(*lw));
    if (lw && (w->list_inflight || cg_bridge_refresh_instruments(w->bridge, lists_ready, w) == 0)) {
        w->list_inflight = 1;
        lw->c = c;
        lw->search = search;
        memcpy(lw->pattern, req->pattern, sizeof(lw->pattern));
        memcpy(lw->id_json, req->id_json, sizeof(lw->id_json));
        cg_list_append(&w->list_waits, &lw->link);
        return;
    }
    free(lw);
    answer_list(c, search, req->pattern, cg_request_id(req));
}

/* A history request waiting for Redis. */
struct hist_wait {
    struct cg_list link;
    struct cg_client *c; /* NULL once the client closed */
};

static void history_done(void *arg, struct cg_frame *f)
{
    struct hist_wait *hw = arg;
    cg_list_remove(&hw->link);
    if (hw->c && f)
        reply(hw->c, f);
    else
        cg_frame_unref(f);
    free(hw);
}

static void handle_history(struct cg_client *c, const struct cg_request *req)
{
    if (!cg_session_allows(c->auth->session, req->instrument)) {
        char msg[120];
        snprintf(msg, sizeof(msg), "instrument %s is not allowed for this session",
                 req->instrument);
        send_error(c, CG_ERR_FORBIDDEN, msg, cg_request_id(req));
        return;
    }
    struct hist_wait *hw = calloc(1, sizeof(*hw));
    if (!hw) {
        send_error(c, CG_ERR_BAD_REQUEST, "out of memory", cg_request_id(req));
        return;
    }
    hw->c = c;
    cg_list_append(&c->w->hist_waits, &hw->link);
    cg_agent_history(c->w->agent, req->instrument, req->interval, req->before, req->limit,
                     cg_request_id(req), history_done, hw);
}

static void forget_waits(struct cg_ws *w, struct cg_client *c)
{
    for (struct cg_list *it = w->hist_waits.next; it != &w->hist_waits; it = it->next) {
        struct hist_wait *hw = CG_CONTAINER_OF(it, struct hist_wait, link);
        if (hw->c == c)
            hw->c = NULL;
    }
    for (struct cg_list *it = w->list_waits.next; it != &w->list_waits; it = it->next) {
        struct list_wait *lw = CG_CONTAINER_OF(it, struct list_wait, link);
        if (lw->c == c)
            lw->c = NULL;
    }
}

static void handle_subscribe(struct cg_client *c, const struct cg_request *req)
{
    const char *id = cg_request_id(req);
    char msg[120];
    for (size_t i = 0; i < req->nnames; i++) {
        if (!cg_session_allows(c->auth->session, req->names[i])) {
            snprintf(msg, sizeof(msg), "instrument %s is not allowed for this session",
                     req->names[i]);
            send_error(c, CG_ERR_FORBIDDEN, msg, id);
            return;
        }
    }
    int rc = cg_registry_subscribe(c->w->reg, &c->member, req->names, req->nnames,
                                   c->w->cfg->max_subscriptions);
    if (rc == CG_REG_TOO_MANY) {
        snprintf(msg, sizeof(msg), "at most %u subscriptions per connection",
                 c->w->cfg->max_subscriptions);
        send_error(c, CG_ERR_TOO_MANY_SUBSCRIPTIONS, msg, id);
        return;
    }
    if (rc != CG_REG_OK) {
        send_error(c, CG_ERR_BAD_REQUEST,
                   rc == CG_REG_FULL ? "the gateway's instrument table is full" : "out of memory",
                   id);
        return;
    }
    /* Intervals first (a snapshot shows the bars asked for), then the reply, then
     * per instrument, in request order, the replay or the snapshot. */
    const struct cg_config *cfg = c->w->cfg;
    const char *inames[CG_CONFIG_INTERVALS_MAX];
    size_t ni = 0;
    for (uint32_t i = 0; i < cfg->nintervals; i++)
        if (req->intervals & (1u << i))
            inames[ni++] = cfg->interval_names[i];
    int *recovered = req->since ? calloc(req->nnames, sizeof(int)) : NULL;
    uint64_t *since = req->since ? calloc(req->nnames, sizeof(uint64_t)) : NULL;
    struct cg_sub **subs = calloc(req->nnames, sizeof(*subs));
    if ((req->since && (!recovered || !since)) || !subs) {
        free(recovered);
        free(since);
        free(subs);
        send_error(c, CG_ERR_BAD_REQUEST, "out of memory", id);
        return;
    }
    for (size_t k = 0; k < req->nnames; k++) {
        struct cg_instrument *in =
            cg_registry_instrument(c->w->reg, req->names[k], strlen(req->names[k]), 0);
        subs[k] = in ? cg_registry_find_sub(&c->member, in) : NULL;
        if (!subs[k])
            continue;
        cg_agent_set_intervals(c->w->agent, subs[k], req->intervals);
        if (recovered) {
            /* seq numbers of another process (or of this port before a restart) say
             * nothing about this one's: no epoch, no resume. */
            int same = !strcmp(req->epoch, c->w->epoch);
            recovered[k] = cg_request_since(req, req->names[k], &since[k])
                               ? same && cg_agent_can_resume(c->w->agent, in, since[k])
                               : -1;
        }
    }
    reply(c, cg_frame_subscribed(id, req->names, req->nnames, inames, ni, c->w->epoch, recovered));
    for (size_t k = 0; k < req->nnames; k++) {
        int dup = 0;
        for (size_t j = 0; j < k && !dup; j++)
            dup = subs[j] == subs[k];
        if (subs[k] && !dup)
            cg_agent_start(c->w->agent, subs[k], recovered && recovered[k] == 1,
                           since ? since[k] : 0);
    }
    free(recovered);
    free(since);
    free(subs);
}

static void handle_request(struct cg_client *c, const char *text, size_t len)
{
    struct cg_request req;
    struct cg_request_error err;
    if (cg_request_parse(text, len, c->w->cfg, &req, &err)) {
        send_error(c, err.code, err.message, cg_request_id(&req));
        cg_request_finish(&req);
        return;
    }
    switch (req.action) {
    case CG_ACTION_SUBSCRIBE:
        handle_subscribe(c, &req);
        break;
    case CG_ACTION_UNSUBSCRIBE:
        cg_registry_unsubscribe(c->w->reg, &c->member, req.names, req.nnames);
        reply(c, cg_frame_names("unsubscribed", cg_request_id(&req), req.names, req.nnames));
        break;
    case CG_ACTION_LIST:
    case CG_ACTION_SEARCH:
        handle_list(c, &req);
        break;
    case CG_ACTION_PING:
        reply(c, cg_frame_pong(cg_request_id(&req)));
        break;
    case CG_ACTION_HISTORY:
        handle_history(c, &req);
        break;
    }
    cg_request_finish(&req);
}

/* Token bucket per socket. Returns 1 to process the message, 0 to drop it; closes
 * the socket (returning 0) on sustained abuse. */
static int rate_ok(struct cg_client *c)
{
    const struct cg_config *cfg = c->w->cfg;
    uint64_t now = now_ms(c->w);
    c->tokens += (double)(now - c->refill_ms) * cfg->rate_limit / 1000.0;
    if (c->tokens > cfg->rate_burst)
        c->tokens = cfg->rate_burst;
    c->refill_ms = now;
    if (c->tokens >= 1.0) {
        c->tokens -= 1.0;
        return 1;
    }
    if (now - c->strike_start_ms > STRIKE_WINDOW_MS) {
        c->strike_start_ms = now;
        c->strikes = 0;
    }
    if (c->strikes++ == 0) /* one error frame per window: never amplify a flood */
        send_error(c, CG_ERR_RATE_LIMITED, "too many messages: slow down", NULL);
    if (c->strikes > cfg->rate_burst) {
        cg_metrics.rate_limit_disconnects++;
        cg_log_limited(&c->w->rate_log, 1000, CG_LOG_WARN, "rate limit exceeded", "peer=%s user=%s",
                       c->peer, c->member.user ? c->member.user->id : "-");
        close_with(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "rate limit");
    }
    return 0;
}

static int receive(struct cg_client *c, const unsigned char *in, size_t len)
{
    const struct cg_config *cfg = c->w->cfg;
    if (c->closing)
        return 0;
    /* Any message proves the peer alive (PROTOCOL.md §9): lws only counts pongs. */
    lws_validity_confirmed(c->wsi);
    if (lws_frame_is_binary(c->wsi)) {
        lws_close_reason(c->wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                         (unsigned char *)"text frames only", 16);
        return -1;
    }
    int complete = lws_is_final_fragment(c->wsi) && !lws_remaining_packet_payload(c->wsi);
    if (c->rxlen + len > cfg->max_message_bytes) {
        lws_close_reason(c->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                         (unsigned char *)"message too big", 15);
        return -1;
    }
    if (!complete || c->rx) {
        if (!c->rx && !(c->rx = malloc(cfg->max_message_bytes)))
            return -1;
        memcpy(c->rx + c->rxlen, in, len);
        c->rxlen += len;
        if (!complete)
            return 0;
        in = c->rx;
        len = c->rxlen;
    }
    if (rate_ok(c))
        handle_request(c, (const char *)in, len);
    free(c->rx);
    c->rx = NULL;
    c->rxlen = 0;
    return 0;
}

/* ---- handshake ------------------------------------------------------------- */

static int reject(struct lws *wsi, enum cg_reject_reason why, unsigned int status)
{
    char peer[48];
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    cg_metrics.rejections[why]++;
    cg_log(CG_LOG_INFO, "handshake rejected", "peer=%s reason=%s status=%u", peer,
           cg_reject_names[why], status);
    if (lws_return_http_status(wsi, status, NULL))
        return -1;
    return 1;
}

static int origin_ok(struct cg_ws *w, struct lws *wsi)
{
    if (!w->cfg->norigins)
        return 1;
    char origin[256];
    if (lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0)
        return 0;
    for (uint32_t i = 0; i < w->cfg->norigins; i++)
        if (!strcmp(origin, w->cfg->origins[i]))
            return 1;
    return 0;
}

static void stash_put(struct cg_ws *w, struct lws *wsi, struct cg_auth_entry *e, const char *addr)
{
    struct cg_map_node *n = cg_map_get(&w->stash, (const char *)&wsi, sizeof(wsi));
    struct stash_entry *s;
    if (n) { /* a previous connection at this address never got established */
        s = CG_CONTAINER_OF(n, struct stash_entry, node);
        cg_auth_release(w->auth, s->auth);
    } else {
        s = malloc(sizeof(*s));
        if (!s) {
            cg_auth_release(w->auth, e);
            return;
        }
        s->wsi = wsi;
        if (cg_map_put(&w->stash, &s->node, (const char *)&s->wsi, sizeof(s->wsi))) {
            free(s);
            cg_auth_release(w->auth, e);
            return;
        }
    }
    s->auth = e;
    s->at_ms = now_ms(w);
    snprintf(s->addr, sizeof(s->addr), "%s", addr);
}

static struct cg_auth_entry *stash_take(struct cg_ws *w, struct lws *wsi, char *addr, size_t addrsz)
{
    struct cg_map_node *n = cg_map_get(&w->stash, (const char *)&wsi, sizeof(wsi));
    if (!n)
        return NULL;
    struct stash_entry *s = CG_CONTAINER_OF(n, struct stash_entry, node);
    struct cg_auth_entry *e = s->auth;
    snprintf(addr, addrsz, "%s", s->addr);
    cg_map_del(&w->stash, n);
    free(s);
    return e;
}

static int trusted(const struct cg_ws *w, const char *peer)
{
    for (uint32_t i = 0; i < w->cfg->ntrusted_proxies; i++)
        if (!strcmp(peer, w->cfg->trusted_proxies[i]))
            return 1;
    return 0;
}

/* The client's address: the TCP peer, or, when the peer is a configured trusted
 * proxy (the local nginx), the address it reports: X-Real-IP, else the last entry
 * of X-Forwarded-For (the one that proxy appended; earlier ones are the client's
 * word). Headers from anyone else are ignored. */
static void client_addr(const struct cg_ws *w, struct lws *wsi, char *out, size_t outsz)
{
    char peer[64], hdr[512];
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    snprintf(out, outsz, "%s", peer);
    if (!trusted(w, peer))
        return;
    const char *a = NULL;
    if (lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_X_REAL_IP) > 0) {
        a = hdr;
    } else if (lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_X_FORWARDED_FOR) > 0) {
        char *comma = strrchr(hdr, ',');
        a = comma ? comma + 1 : hdr;
    }
    while (a && (*a == ' ' || *a == '\t'))
        a++;
    size_t n = a ? strspn(a, "0123456789abcdefABCDEF.:") : 0;
    if (n && n < outsz && n <= CG_PEERS_ADDR_MAX) {
        memcpy(out, a, n);
        out[n] = 0;
    }
}

static int confirm_upgrade(struct cg_ws *w, struct lws *wsi)
{
    char uri[64], cookie[8192], sid[CG_SESSION_ID_MAX + 1];
    if (w->shutting_down)
        return reject(wsi, CG_REJECT_SHUTDOWN, HTTP_STATUS_SERVICE_UNAVAILABLE);
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, "/ws"))
        return reject(wsi, CG_REJECT_BAD_PATH, HTTP_STATUS_NOT_FOUND);
    if (!origin_ok(w, wsi))
        return reject(wsi, CG_REJECT_ORIGIN, HTTP_STATUS_FORBIDDEN);
    char addr[CG_PEERS_ADDR_MAX + 1];
    client_addr(w, wsi, addr, sizeof(addr));
    switch (cg_peers_handshake(&w->peers, addr, now_ms(w))) {
    case CG_PEERS_OK:
        break;
    case CG_PEERS_RATE:
        return reject(wsi, CG_REJECT_IP_RATE, 429);
    default:
        return reject(wsi, CG_REJECT_IP_LIMIT, 429);
    }
    int clen = lws_hdr_copy(wsi, cookie, sizeof(cookie), WSI_TOKEN_HTTP_COOKIE);
    int sl = clen > 0 ? cg_cookie_get(cookie, (size_t)clen, "sessionid", sid, sizeof(sid)) : -1;
    if (sl == -1)
        return reject(wsi, CG_REJECT_NO_COOKIE, HTTP_STATUS_UNAUTHORIZED);
    if (sl < 0 || !cg_session_id_valid(sid, (size_t)sl))
        return reject(wsi, CG_REJECT_UNKNOWN_SESSION, HTTP_STATUS_UNAUTHORIZED);
    struct cg_auth_entry *e;
    uint64_t t0 = uv_hrtime();
    enum cg_auth_result r = cg_auth_lookup(w->auth, sid, &e);
    cg_metrics.handshake_us_total += (uv_hrtime() - t0) / 1000;
    switch (r) {
    case CG_AUTH_OK: {
        struct cg_user *u = cg_registry_user(w->reg, e->session->user_id);
        if (w->cfg->max_sockets_per_user && u && u->nmembers >= w->cfg->max_sockets_per_user) {
            cg_auth_release(w->auth, e);
            return reject(wsi, CG_REJECT_USER_LIMIT, 429);
        }
        stash_put(w, wsi, e, addr);
        return 0;
    }
    case CG_AUTH_UNKNOWN:
        return reject(wsi, CG_REJECT_UNKNOWN_SESSION, HTTP_STATUS_UNAUTHORIZED);
    case CG_AUTH_BAD:
        return reject(wsi, CG_REJECT_BAD_SESSION, HTTP_STATUS_UNAUTHORIZED);
    case CG_AUTH_EXPIRED:
        return reject(wsi, CG_REJECT_EXPIRED, HTTP_STATUS_UNAUTHORIZED);
    case CG_AUTH_DOWN:
        return reject(wsi, CG_REJECT_REDIS_DOWN, HTTP_STATUS_SERVICE_UNAVAILABLE);
    }
    return -1;
}

static int established(struct cg_ws *w, struct cg_client *c, struct lws *wsi)
{
    memset(c, 0, sizeof(*c));
    c->wsi = wsi;
    c->w = w;
    cg_outq_init(&c->q);
    cg_list_init(&c->auth_link);
    cg_list_init(&c->close_link);
    cg_list_init(&c->flush_link);
    lws_get_peer_simple(wsi, c->peer, sizeof(c->peer));
    c->auth = stash_take(w, wsi, c->addr, sizeof(c->addr));
    if (!c->auth)
        return -1; /* cannot happen: every upgrade passes confirm_upgrade */
    cg_peers_opened(&w->peers, c->addr, now_ms(w));
    cg_auth_attach(c->auth, &c->auth_link);
    if (cg_registry_join(w->reg, &c->member, c, c->auth->session->user_id)) {
        cg_auth_detach(w->auth, c->auth, &c->auth_link);
        c->auth = NULL;
        return -1;
    }
    c->established = 1;
    c->tokens = w->cfg->rate_burst;
    c->refill_ms = now_ms(w);
    cg_metrics.handshakes++;
    cg_log(CG_LOG_DEBUG, "client connected", "peer=%s user=%s session=%s", c->peer,
           c->auth->session->user_id, c->auth->tag);
    return 0;
}

static void closed(struct cg_ws *w, struct cg_client *c)
{
    if (!c->established)
        return;
    cg_log(CG_LOG_DEBUG, "client closed", "peer=%s user=%s code=%u", c->peer,
           c->member.user ? c->member.user->id : "-", c->close_code);
    forget_waits(w, c);
    cg_list_remove(&c->close_link);
    cg_list_remove(&c->flush_link);
    cg_registry_leave(w->reg, &c->member);
    cg_outq_finish(&c->q);
    cg_peers_closed(&w->peers, c->addr, now_ms(w));
    cg_auth_detach(w->auth, c->auth, &c->auth_link);
    c->auth = NULL;
    free(c->rx);
    c->rx = NULL;
    c->established = 0;
}

/* ---- HTTP ------------------------------------------------------------------ */

static int http_respond(struct lws *wsi, struct cg_client *c, unsigned int status,
                        const char *ctype, char *body, size_t len)
{
    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start,
                                      *end = hdr + sizeof(hdr) - 1;
    free(c->http_body);
    c->http_body = body; /* LWS_PRE headroom + len bytes */
    c->http_len = len;
    if (lws_add_http_common_headers(wsi, status, ctype, len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (unsigned char *)"no-store",
                                     8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    lws_callback_on_writable(wsi);
    return 0;
}

static void gauges(struct cg_ws *w, struct cg_metrics_gauges *g)
{
    memset(g, 0, sizeof(*g));
    g->connections = w->reg->nmembers;
    g->users = w->reg->users.count;
    g->subscriptions = w->reg->nsubs;
    g->instruments = w->reg->nactive;
    for (int i = 0; i < CG_LINK_SESSION; i++)
        g->redis_up[i] = cg_bridge_up(w->bridge, (enum cg_link)i);
    g->redis_up[CG_LINK_SESSION] = cg_auth_up(w->auth);
    g->uptime_s = (now_ms(w) - w->started_ms) / 1000;
}

#define DEV_SESSION_TTL_S 43200

/* Authenticates the Cookie of a plain HTTP request like a handshake. */
static enum cg_auth_result http_session(struct cg_ws *w, struct lws *wsi, struct cg_auth_entry **e)
{
    char cookie[8192], sid[CG_SESSION_ID_MAX + 1];
    *e = NULL;
    int clen = lws_hdr_copy(wsi, cookie, sizeof(cookie), WSI_TOKEN_HTTP_COOKIE);
    int sl = clen > 0 ? cg_cookie_get(cookie, (size_t)clen, "sessionid", sid, sizeof(sid)) : -1;
    if (sl < 0 || !cg_session_id_valid(sid, (size_t)sl))
        return CG_AUTH_UNKNOWN;
    return cg_auth_lookup(w->auth, sid, e);
}

/* GET /session: who the cookie says this browser is (the web page uses it to tell
 * "logged out" from "gateway away", which a failed WebSocket cannot tell). */
static int session_request(struct cg_ws *w, struct lws *wsi, struct cg_client *c)
{
    struct cg_auth_entry *e;
    enum cg_auth_result r = http_session(w, wsi, &e);
    char *body = malloc(LWS_PRE + 256);
    if (!body) {
        cg_auth_release(w->auth, e);
        return -1;
    }
    int n;
    unsigned int status;
    if (r == CG_AUTH_OK) {
        json_t *o = json_pack("{s:s}", "user_id", e->session->user_id);
        n = o ? (int)json_dumpb(o, body + LWS_PRE, 255, JSON_COMPACT) : 0;
        json_decref(o);
        status = HTTP_STATUS_OK;
    } else if (r == CG_AUTH_DOWN) {
        n = snprintf(body + LWS_PRE, 256, "{\"error\":\"redis unavailable\"}");
        status = HTTP_STATUS_SERVICE_UNAVAILABLE;
    } else {
        n = snprintf(body + LWS_PRE, 256, "{\"error\":\"not logged in\"}");
        status = HTTP_STATUS_UNAUTHORIZED;
    }
    cg_auth_release(w->auth, e);
    return http_respond(wsi, c, status, "application/json", body, (size_t)n);
}

static int user_ok(const char *u)
{
    size_t n = strlen(u);
    if (!n || n > 64)
        return 0;
    for (; *u; u++)
        if (!isalnum((unsigned char)*u) && *u != '.' && *u != '_' && *u != '-')
            return 0;
    return 1;
}

/* GET /dev/login?user=NAME (only with --dev-login): a session for NAME, its cookie,
 * and a redirect to the page. For development and demos: anyone who can reach the
 * port can be anyone. */
static int dev_login(struct cg_ws *w, struct lws *wsi)
{
    char buf[128], sid[33], cookie[160];
    const char *user = lws_get_urlarg_by_name(wsi, "user=", buf, sizeof(buf));
    if (!user || !user_ok(user))
        return lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST,
                                      "user=NAME ([A-Za-z0-9._-], 1 to 64 characters)")
                   ? -1
                   : 0;
    if (cg_auth_create(w->auth, user, DEV_SESSION_TTL_S, sid))
        return lws_return_http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL) ? -1 : 0;
    cg_log(CG_LOG_WARN, "dev login", "user=%s", user);
    int cl =
        snprintf(cookie, sizeof(cookie), "sessionid=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax",
                 sid, DEV_SESSION_TTL_S);
    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start,
                                      *end = hdr + sizeof(hdr) - 1;
    if (lws_add_http_header_status(wsi, HTTP_STATUS_FOUND, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_LOCATION, (unsigned char *)"/", 1, &p,
                                     end) ||
        lws_add_http_header_by_name(wsi, (unsigned char *)"set-cookie:", (unsigned char *)cookie,
                                    cl, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (unsigned char *)"no-store",
                                     8, &p, end) ||
        lws_add_http_header_content_length(wsi, 0, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int http_request(struct cg_ws *w, struct lws *wsi, struct cg_client *c)
{
    char uri[64];
    struct cg_metrics_gauges g;
    gauges(w, &g);
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
        return lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST, NULL) ? -1 : 0;
    if (!strcmp(uri, "/session"))
        return session_request(w, wsi, c);
    if (!strcmp(uri, "/dev/login") && w->cfg->dev_login)
        return dev_login(w, wsi);
    if (!strcmp(uri, "/metrics")) {
        size_t need = cg_metrics_render(&g, NULL, 0) + 1;
        char *body = malloc(LWS_PRE + need);
        if (!body)
            return -1;
        size_t len = cg_metrics_render(&g, body + LWS_PRE, need);
        return http_respond(wsi, c, HTTP_STATUS_OK, "text/plain; version=0.0.4", body, len);
    }
    if (!strcmp(uri, "/healthz")) {
        int ok =
            g.redis_up[CG_LINK_PUBSUB] && g.redis_up[CG_LINK_COMMAND] && g.redis_up[CG_LINK_INBOX];
        char *body = malloc(LWS_PRE + 256);
        if (!body)
            return -1;
        int n = snprintf(body + LWS_PRE, 256,
                         "{\"status\":\"%s\",\"redis\":{\"pubsub\":%s,\"command\":%s,"
                         "\"inbox\":%s},\"connections\":%llu,\"uptime_s\":%llu}",
                         ok ? "ok" : "degraded", g.redis_up[0] ? "true" : "false",
                         g.redis_up[1] ? "true" : "false", g.redis_up[2] ? "true" : "false",
                         (unsigned long long)g.connections, (unsigned long long)g.uptime_s);
        return http_respond(wsi, c, ok ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE,
                            "application/json", body, (size_t)n);
    }
    return lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL) ? -1 : 0;
}

static int http_writeable(struct lws *wsi, struct cg_client *c)
{
    if (!c->http_body)
        return 0;
    int n =
        lws_write(wsi, (unsigned char *)c->http_body + LWS_PRE, c->http_len, LWS_WRITE_HTTP_FINAL);
    free(c->http_body);
    c->http_body = NULL;
    if (n < (int)c->http_len)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- the protocol callback ------------------------------------------------- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct cg_ws *w = lws_context_user(lws_get_context(wsi));
    struct cg_client *c = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(w, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        return established(w, c, wsi);
    case LWS_CALLBACK_RECEIVE:
        return receive(c, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return write_pending(c);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* lws echoes the close: nothing may be written after it (flush_cb writes directly). */
        if (c && c->established) {
            c->closing = 1;
            cg_outq_finish(&c->q);
        }
        return 0;
    case LWS_CALLBACK_CLOSED:
        closed(w, c);
        return 0;
    case LWS_CALLBACK_HTTP:
        if (c)
            c->http_body = NULL;
        return c ? http_request(w, wsi, c) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return c ? http_writeable(wsi, c) : 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (c) {
            free(c->http_body);
            c->http_body = NULL;
        }
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"chartgate", callback, sizeof(struct cg_client), RX_CHUNK, 0, NULL, TX_CHUNK},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void stash_drop(struct cg_map_node *n, void *arg)
{
    struct cg_ws *w = arg;
    struct stash_entry *s = CG_CONTAINER_OF(n, struct stash_entry, node);
    cg_map_del(&w->stash, n);
    cg_auth_release(w->auth, s->auth);
    free(s);
}

/* An upgrade that passed auth but failed later (bad key, peer gone) leaves a stash
 * entry nobody takes: it goes after STASH_MAX_AGE_MS. */
static void sweep_one(struct cg_map_node *n, void *arg)
{
    struct cg_ws *w = arg;
    if (now_ms(w) - CG_CONTAINER_OF(n, struct stash_entry, node)->at_ms > STASH_MAX_AGE_MS)
        stash_drop(n, w);
}

static void sweep_cb(uv_timer_t *t)
{
    struct cg_ws *w = t->data;
    cg_map_each(&w->stash, sweep_one, w);
    cg_peers_sweep(&w->peers, now_ms(w));
}

static void lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    char q[300];
    cg_log_quote(q, sizeof(q), line, n);
    cg_log(level == LLL_ERR ? CG_LOG_ERROR : CG_LOG_WARN, "libwebsockets", "detail=%s", q);
}

int cg_ws_start(struct cg_ws *w, uv_loop_t *loop, const struct cg_config *cfg,
                struct cg_registry *reg, struct cg_auth *auth, struct cg_bridge *bridge,
                struct cg_agent *agent)
{
    memset(w, 0, sizeof(*w));
    w->agent = agent;
    w->loop = loop;
    w->cfg = cfg;
    w->reg = reg;
    w->auth = auth;
    w->bridge = bridge;
    w->started_ms = uv_now(loop);
    unsigned char raw[8];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(w->epoch + 2 * i, 3, "%02x", raw[i]);
    w->limits.max_frames = cfg->queue_max_frames;
    w->limits.max_bytes = cfg->queue_max_bytes;
    w->limits.conflate_frames = cfg->queue_conflate_frames;
    w->limits.conflate_bytes = cfg->queue_max_bytes / 4;
    cg_map_init(&w->stash);
    cg_peers_init(&w->peers, cfg->max_conns_per_ip, cfg->handshake_rate_per_ip,
                  cfg->handshake_burst_per_ip, 1000000);
    cg_list_init(&w->list_waits);
    cg_list_init(&w->hist_waits);
    cg_list_init(&w->to_close);
    w->scratch = malloc(LWS_PRE + cfg->batch_max_bytes);
    if (!w->scratch)
        return -1;

    static struct lws_http_mount mounts[5];
    static lws_retry_bo_t retry;
    memset(mounts, 0, sizeof(mounts));
    mounts[0].mountpoint = "/healthz";
    mounts[0].mountpoint_len = 8;
    mounts[0].origin = "chartgate";
    mounts[0].origin_protocol = LWSMPRO_CALLBACK;
    mounts[0].mount_next = &mounts[1];
    mounts[1].mountpoint = "/metrics";
    mounts[1].mountpoint_len = 8;
    mounts[1].origin = "chartgate";
    mounts[1].origin_protocol = LWSMPRO_CALLBACK;
    mounts[1].mount_next = &mounts[2];
    mounts[2].mountpoint = "/session";
    mounts[2].mountpoint_len = 8;
    mounts[2].origin = "chartgate";
    mounts[2].origin_protocol = LWSMPRO_CALLBACK;
    mounts[2].mount_next = &mounts[3];
    mounts[3].mountpoint = "/dev/login"; /* answers 404 unless --dev-login */
    mounts[3].mountpoint_len = 10;
    mounts[3].origin = "chartgate";
    mounts[3].origin_protocol = LWSMPRO_CALLBACK;
    mounts[3].mount_next = &mounts[4];
    mounts[4].mountpoint = "/";
    mounts[4].mountpoint_len = 1;
    mounts[4].origin = cfg->web_root;
    mounts[4].def = "index.html";
    mounts[4].origin_protocol = LWSMPRO_FILE;
    retry.secs_since_valid_ping = (uint16_t)cfg->ping_s;
    retry.secs_since_valid_hangup = (uint16_t)cfg->idle_timeout_s;
    retry.jitter_percent = 20;

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    void *loops[1] = {loop};
    info.foreign_loops = loops;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
                   LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
    info.port = (int)cfg->listen_port;
    info.iface = cfg->listen_host;
    info.protocols = protocols;
    info.mounts = mounts;
    info.user = w;
    info.retry_and_idle_policy = &retry;
    info.max_http_header_data = 8192;
    if (cfg->tls_cert[0]) {
        /* TLS 1.2 minimum, AEAD suites with forward secrecy, HTTP/1.1 only (the upgrade
         * needs it); TLS 1.3 suites are OpenSSL's defaults. */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert;
        info.ssl_private_key_filepath = cfg->tls_key;
        info.ssl_options_set = SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION;
        info.ssl_cipher_list = "ECDHE+AESGCM:ECDHE+CHACHA20";
        info.alpn = "http/1.1";
    }
    info.timeout_secs = 10;
    info.count_threads = 1;
    w->ctx = lws_create_context(&info);
    if (!w->ctx) {
        cg_log(CG_LOG_ERROR, "cannot listen", "addr=%s:%u", cfg->listen_host, cfg->listen_port);
        free(w->scratch);
        w->scratch = NULL;
        return -1;
    }
    uv_timer_init(loop, &w->closer);
    w->closer.data = w;
    cg_list_init(&w->to_flush);
    uv_check_init(loop, &w->flusher);
    w->flusher.data = w;
    uv_check_start(&w->flusher, flush_cb);
    uv_idle_init(loop, &w->flush_soon);
    uv_timer_init(loop, &w->sweep);
    w->sweep.data = w;
    uv_timer_start(&w->sweep, sweep_cb, 1000, 1000);
    cg_log(CG_LOG_INFO, "listening", "addr=%s port=%u tls=%s", cfg->listen_host, cfg->listen_port,
           cfg->tls_cert[0] ? "on" : "off");
    return 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < (1 << 20) &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
        *len = fread(buf, 1, (size_t)n, f);
        buf[*len] = 0;
    }
    if (f)
        fclose(f);
    return buf;
}

/* 1 when cert (PEM) parses, key (PEM) parses, and the key belongs to the cert. */
static int pem_pair_ok(const char *cert, size_t clen, const char *key, size_t klen)
{
    BIO *cb = BIO_new_mem_buf(cert, (int)clen), *kb = BIO_new_mem_buf(key, (int)klen);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    int ok = x && k && X509_check_private_key(x, k) == 1;
    EVP_PKEY_free(k);
    X509_free(x);
    BIO_free(kb);
    BIO_free(cb);
    ERR_clear_error();
    return ok;
}

int cg_ws_reload_tls(struct cg_ws *w)
{
    const struct cg_config *cfg = w->cfg;
    if (!cfg->tls_cert[0] || !w->ctx)
        return 0;
    size_t clen = 0, klen = 0;
    char *cert = slurp(cfg->tls_cert, &clen), *key = slurp(cfg->tls_key, &klen);
    int rc = -1;
    if (!cert || !key)
        cg_log(CG_LOG_ERROR, "tls reload failed", "reason=\"cannot read %s\"",
               cert ? "--tls-key" : "--tls-cert");
    else if (!pem_pair_ok(cert, clen, key, klen))
        /* lws would install a broken pair without a word: check it first, keep the old. */
        cg_log(CG_LOG_ERROR, "tls reload failed",
               "reason=\"certificate and key do not parse or do not match\"");
    else if (lws_tls_cert_updated(w->ctx, cfg->tls_cert, cfg->tls_key, cert, clen, key, klen))
        cg_log(CG_LOG_ERROR, "tls reload failed", "reason=\"certificate or key rejected\"");
    else
        rc = 0;
    if (!rc)
        cg_log(CG_LOG_INFO, "tls certificate reloaded", "cert=%s", cfg->tls_cert);
    if (key)
        OPENSSL_cleanse(key, klen);
    free(cert);
    free(key);
    return rc;
}

void cg_ws_stop(struct cg_ws *w)
{
    uv_timer_stop(&w->sweep);
    uv_close((uv_handle_t *)&w->sweep, NULL);
    uv_timer_stop(&w->closer);
    uv_close((uv_handle_t *)&w->closer, NULL);
    uv_check_stop(&w->flusher);
    uv_close((uv_handle_t *)&w->flusher, NULL);
    uv_idle_stop(&w->flush_soon);
    uv_close((uv_handle_t *)&w->flush_soon, NULL);
    if (w->ctx)
        lws_context_destroy(w->ctx);
    w->ctx = NULL;
    cg_map_each(&w->stash, stash_drop, w);
    cg_map_finish(&w->stash);
    cg_peers_finish(&w->peers);
    free(w->scratch);
    w->scratch = NULL;
}
