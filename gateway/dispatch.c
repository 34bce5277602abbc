/* dispatch.c -- client messages: reassembly, rate limiting, and each action's answer. */
#include "dispatch.h"

#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "auth.h"
#include "bridge.h"
#include "client.h"
#include "config.h"
#include "frame.h"
#include "instrument.h"
#include "metrics.h"
#include "request.h"
#include "service.h"

#define STRIKE_WINDOW_MS 10000

static void send_error(struct cg_client *c, enum cg_errcode code, const char *msg,
                       const char *id_json)
{
    cg_metrics.client_errors[code]++;
    cg_client_send(c, cg_frame_error(cg_errcode_name(code), msg, id_json));
}

/* ---- list and search ------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct list_ctx {
    const struct cg_session *s;
    const char *pattern; /* search: what names must contain; NULL for list */
    const char *after;   /* only names after this one (byte order); "" for all */
    const char **names;
    size_t n;
};

static void collect(struct cg_map_node *node, void *arg)
{
    struct list_ctx *lc = arg;
    struct cg_instrument *in = CG_CONTAINER_OF(node, struct cg_instrument, node);
    if (!in->known || !cg_session_allows(lc->s, in->name))
        return;
    if (lc->after[0] && strcmp(in->name, lc->after) <= 0)
        return;
    if (lc->pattern && !cg_instrument_contains(in->name, lc->pattern))
        return;
    lc->names[lc->n++] = in->name;
}

/* A list/search request waiting for the instrument set to be re-read. */
struct list_wait {
    struct cg_list link;
    struct cg_client *c; /* NULL once the client closed */
    int search;
    char pattern[sizeof(((struct cg_request *)0)->pattern)];
    char after[sizeof(((struct cg_request *)0)->after)];
    char id_json[CG_REQUEST_ID_JSON_MAX + 1];
};

/* Answers with the names this session may see, in byte order, one page of at most
 * CG_REQUEST_LIST_PAGE after lw->after; "more" tells the client to ask for the next page. */
static void answer_list(struct cg_client *c, const struct list_wait *lw)
{
    const char *id = lw->id_json[0] ? lw->id_json : NULL;
    struct cg_map *all = &c->w->reg->instruments;
    struct list_ctx lc = {c->auth->session, NULL, lw->after, NULL, 0};
    if (lw->search)
        lc.pattern = lw->pattern;
    lc.names = malloc((all->count ? all->count : 1) * sizeof(*lc.names));
    if (!lc.names) {
        send_error(c, CG_ERR_BAD_REQUEST, "out of memory", id);
        return;
    }
    cg_map_each(all, collect, &lc);
    qsort(lc.names, lc.n, sizeof(*lc.names), by_name);
    int more = lc.n > CG_REQUEST_LIST_PAGE;
    cg_client_send(c, cg_frame_instruments(id, lc.names, more ? CG_REQUEST_LIST_PAGE : lc.n, more));
    free(lc.names);
}

static void lists_ready(void *data)
{
    struct cg_ws *w = data;
    w->dispatch.list_inflight = 0;
    struct cg_list *it, *tmp;
    CG_LIST_FOREACH_SAFE(it, tmp, &w->dispatch.list_waits)
    {
        struct list_wait *lw = CG_CONTAINER_OF(it, struct list_wait, link);
        cg_list_remove(&lw->link);
        if (lw->c)
            answer_list(lw->c, lw);
        free(lw);
    }
}

/* The instrument set in Redis changes behind our back: a list or search first
 * re-reads it (one read shared by all requests waiting), unless Redis is away, in
 * which case what this process knows is the answer. */
static void handle_list(struct cg_client *c, const struct cg_request *req)
{
    struct cg_dispatch *d = &c->w->dispatch;
    struct list_wait *lw = calloc(1, sizeof(*lw));
    if (!lw) {
        send_error(c, CG_ERR_BAD_REQUEST, "out of memory", cg_request_id(req));
        return;
    }
    lw->c = c;
    lw->search = req->action == CG_ACTION_SEARCH;
    memcpy(lw->pattern, req->pattern, sizeof(lw->pattern));
    memcpy(lw->after, req->after, sizeof(lw->after));
    memcpy(lw->id_json, req->id_json, sizeof(lw->id_json));
    if (d->list_inflight || cg_bridge_refresh_instruments(c->w->bridge, lists_ready, c->w) == 0) {
        d->list_inflight = 1;
        cg_list_append(&d->list_waits, &lw->link);
        return;
    }
    answer_list(c, lw);
    free(lw);
}

/* ---- history ------------------------------------------------------------------ */

/* A history request waiting for Redis. */
struct hist_wait {
    struct cg_list link;
    struct cg_client *c; /* NULL once the client closed */
};

static void history_done(void *arg, struct cg_frame *f)
{
    struct hist_wait *hw = arg;
    cg_list_remove(&hw->link);
    if (hw->c)
        cg_client_send(hw->c, f);
    else
        cg_frame_unref(f);
    free(hw);
}

static int allowed(struct cg_client *c, const char *name, const char *id)
{
    if (cg_session_allows(c->auth->session, name))
        return 1;
    char msg[120];
    snprintf(msg, sizeof(msg), "instrument %s is not allowed for this session", name);
    send_error(c, CG_ERR_FORBIDDEN, msg, id);
    return 0;
}

static void handle_history(struct cg_client *c, const struct cg_request *req)
{
    if (!allowed(c, req->instrument, cg_request_id(req)))
        return;
    struct hist_wait *hw = calloc(1, sizeof(*hw));
    if (!hw) {
        send_error(c, CG_ERR_BAD_REQUEST, "out of memory", cg_request_id(req));
        return;
    }
    hw->c = c;
    cg_list_append(&c->w->dispatch.hist_waits, &hw->link);
    cg_agent_history(c->w->agent, req->instrument, req->interval, req->before, req->limit,
                     cg_request_id(req), history_done, hw);
}

/* ---- subscribe ---------------------------------------------------------------- */

static void handle_subscribe(struct cg_client *c, const struct cg_request *req)
{
    struct cg_ws *w = c->w;
    const char *id = cg_request_id(req);
    char msg[120];
    for (size_t i = 0; i < req->nnames; i++)
        if (!allowed(c, req->names[i], id))
            return;
    int rc = cg_registry_subscribe(w->reg, &c->member, req->names, req->nnames,
                                   w->cfg->max_subscriptions);
    if (rc == CG_REG_TOO_MANY) {
        snprintf(msg, sizeof(msg), "at most %u subscriptions per connection",
                 w->cfg->max_subscriptions);
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
    const struct cg_config *cfg = w->cfg;
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
            cg_registry_instrument(w->reg, req->names[k], strlen(req->names[k]), 0);
        subs[k] = in ? cg_registry_find_sub(&c->member, in) : NULL;
        if (!subs[k])
            continue;
        cg_agent_set_intervals(w->agent, subs[k], req->intervals);
        if (cg_agent_set_overlays(w->agent, subs[k], req->overlays))
            cg_log(CG_LOG_WARN, "overlays not turned on", "reason=\"out of memory\"");
        if (recovered) {
            /* seq numbers of another process (or of this port before a restart) say
             * nothing about this one's: no epoch, no resume. */
            int same = !strcmp(req->epoch, w->epoch);
            recovered[k] = cg_request_since(req, req->names[k], &since[k])
                               ? same && cg_agent_can_resume(w->agent, in, since[k])
                               : -1;
        }
    }
    cg_client_send(
        c, cg_frame_subscribed(id, req->names, req->nnames, inames, ni, w->epoch, recovered));
    for (size_t k = 0; k < req->nnames; k++) {
        int dup = 0;
        for (size_t j = 0; j < k && !dup; j++)
            dup = subs[j] == subs[k];
        if (subs[k] && !dup)
            cg_agent_start(w->agent, subs[k], recovered && recovered[k] == 1, since ? since[k] : 0);
    }
    free(recovered);
    free(since);
    free(subs);
}

/* ---- send ----------------------------------------------------------------------------- */

/* A send waiting for Redis to take (or refuse) its push. */
struct send_wait {
    struct cg_list link;
    struct cg_client *c; /* NULL once the client closed */
    char id_json[CG_REQUEST_ID_JSON_MAX + 1];
};

static void send_done(void *arg, int ok)
{
    struct send_wait *sw = arg;
    const char *id = sw->id_json[0] ? sw->id_json : NULL;
    cg_list_remove(&sw->link);
    if (sw->c && ok)
        cg_client_send(sw->c, cg_frame_sent(id));
    else if (sw->c)
        send_error(sw->c, CG_ERR_UNAVAILABLE,
                   "the service cannot take messages now (Redis down, or its list is full)", id);
    free(sw);
}

/* Only after Redis has the message does the client hear "sent"; whatever stops it gives
 * "unavailable": every send gets exactly one answer, and nothing waits in this process
 * longer than the command link's watchdog allows. */
static void handle_send(struct cg_client *c, const struct cg_request *req)
{
    struct cg_ws *w = c->w;
    const char *id = cg_request_id(req), *name = w->cfg->services[req->service];
    if (!cg_session_allows_service(c->auth->session, name)) {
        char msg[120];
        snprintf(msg, sizeof(msg), "service %s is not allowed for this session", name);
        send_error(c, CG_ERR_FORBIDDEN, msg, id);
        return;
    }
    struct send_wait *sw = calloc(1, sizeof(*sw));
    if (!sw) {
        send_error(c, CG_ERR_UNAVAILABLE, "out of memory", id);
        return;
    }
    sw->c = c;
    memcpy(sw->id_json, req->id_json, sizeof(sw->id_json));
    cg_list_append(&w->dispatch.send_waits, &sw->link);
    json_t *idv = id ? json_object_get(req->root, "id") : NULL;
    if (cg_service_send(w->service, req->service, c->member.user->id, c->member.conn, idv,
                        req->data, send_done, sw)) {
        cg_list_remove(&sw->link);
        free(sw);
        send_error(c, CG_ERR_UNAVAILABLE, "the service cannot take messages now (Redis down)", id);
    }
}

/* ---- one message ------------------------------------------------------------------ */

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
        cg_client_send(c,
                       cg_frame_names("unsubscribed", cg_request_id(&req), req.names, req.nnames));
        break;
    case CG_ACTION_LIST:
    case CG_ACTION_SEARCH:
        handle_list(c, &req);
        break;
    case CG_ACTION_PING:
        cg_client_send(c, cg_frame_pong(cg_request_id(&req)));
        break;
    case CG_ACTION_HISTORY:
        handle_history(c, &req);
        break;
    case CG_ACTION_SEND:
        handle_send(c, &req);
        break;
    }
    cg_request_finish(&req);
}

/* Token bucket per socket. Returns 1 to process the message, 0 to drop it; closes
 * the socket (returning 0) on sustained abuse. */
static int rate_ok(struct cg_client *c)
{
    const struct cg_config *cfg = c->w->cfg;
    struct cg_dispatch_client *in = &c->in;
    uint64_t now = cg_client_now_ms(c->w);
    in->tokens += (double)(now - in->refill_ms) * cfg->rate_limit / 1000.0;
    if (in->tokens > cfg->rate_burst)
        in->tokens = cfg->rate_burst;
    in->refill_ms = now;
    if (in->tokens >= 1.0) {
        in->tokens -= 1.0;
        return 1;
    }
    if (now - in->strike_start_ms > STRIKE_WINDOW_MS) {
        in->strike_start_ms = now;
        in->strikes = 0;
    }
    if (in->strikes++ == 0) /* one error frame per window: never amplify a flood */
        send_error(c, CG_ERR_RATE_LIMITED, "too many messages: slow down", NULL);
    if (in->strikes > cfg->rate_burst) {
        cg_metrics.rate_limit_disconnects++;
        cg_log_limited(&c->w->dispatch.rate_log, 1000, CG_LOG_WARN, "rate limit exceeded",
                       "peer=%s user=%s", c->peer, c->member.user ? c->member.user->id : "-");
        cg_client_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "rate limit");
    }
    return 0;
}

int cg_dispatch_receive(struct cg_client *c, const unsigned char *data, size_t len)
{
    const struct cg_config *cfg = c->w->cfg;
    struct cg_dispatch_client *in = &c->in;
    if (c->closing)
        return 0;
    /* Any message proves the peer alive (PROTOCOL.md §9): lws only counts pongs. Once a second
     * is plenty for a ping interval of seconds, and each report re-sorts lws's timer list of
     * every socket (a third of the gateway's CPU at 25k messages/s over 1000 sockets). */
    uint64_t now = cg_client_now_ms(c->w);
    if (now - in->alive_ms >= 1000) {
        in->alive_ms = now;
        lws_validity_confirmed(c->wsi);
    }
    if (lws_frame_is_binary(c->wsi)) {
        cg_client_close(c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "text frames only");
        return 0;
    }
    int complete = lws_is_final_fragment(c->wsi) && !lws_remaining_packet_payload(c->wsi);
    if (in->rxlen + len > cfg->max_message_bytes) {
        cg_client_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big");
        return 0;
    }
    if (!complete || in->rx) {
        if (!in->rx && !(in->rx = malloc(cfg->max_message_bytes)))
            return -1;
        memcpy(in->rx + in->rxlen, data, len);
        in->rxlen += len;
        if (!complete)
            return 0;
        data = in->rx;
        len = in->rxlen;
    }
    if (rate_ok(c))
        handle_request(c, (const char *)data, len);
    free(in->rx);
    in->rx = NULL;
    in->rxlen = 0;
    return 0;
}

void cg_dispatch_init(struct cg_dispatch *d)
{
    memset(d, 0, sizeof(*d));
    cg_list_init(&d->list_waits);
    cg_list_init(&d->hist_waits);
    cg_list_init(&d->send_waits);
}

void cg_dispatch_open(struct cg_ws *w, struct cg_client *c)
{
    c->in.tokens = w->cfg->rate_burst;
    c->in.refill_ms = cg_client_now_ms(w);
}

void cg_dispatch_close(struct cg_ws *w, struct cg_client *c)
{
    for (struct cg_list *it = w->dispatch.hist_waits.next; it != &w->dispatch.hist_waits;
         it = it->next) {
        struct hist_wait *hw = CG_CONTAINER_OF(it, struct hist_wait, link);
        if (hw->c == c)
            hw->c = NULL;
    }
    for (struct cg_list *it = w->dispatch.list_waits.next; it != &w->dispatch.list_waits;
         it = it->next) {
        struct list_wait *lw = CG_CONTAINER_OF(it, struct list_wait, link);
        if (lw->c == c)
            lw->c = NULL;
    }
    for (struct cg_list *it = w->dispatch.send_waits.next; it != &w->dispatch.send_waits;
         it = it->next) {
        struct send_wait *sw = CG_CONTAINER_OF(it, struct send_wait, link);
        if (sw->c == c)
            sw->c = NULL;
    }
    free(c->in.rx);
    c->in.rx = NULL;
    c->in.rxlen = 0;
}
