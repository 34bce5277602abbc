/* subscribe.c -- subscribe: registration, resume from ring or stream, reply, replay or snapshot. */
#include "subscribe.h"

#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "client.h"
#include "config.h"
#include "frame.h"
#include "instrument.h"
#include "log.h"
#include "metrics.h"
#include "relay.h"
#include "request.h"
#include "stream.h"

struct sub_wait;

/* One instrument of the request. */
struct item {
    struct sub_wait *sw;
    char name[CG_INSTRUMENT_MAX + 1];
    int has_since;
    uint64_t since;
    int recovered;         /* -1: not in since; 0 or 1 */
    int held;              /* this subscribe holds the subscription's live frames */
    struct cg_frame **pre; /* stream replay: tick frames after since, owned references */
    uint64_t *pre_seq;
    size_t npre;
};

struct sub_wait {
    struct cg_list link; /* on the vhost's sub_waits */
    struct cg_client *c; /* NULL once the client closed */
    int outstanding;     /* catch-ups and stream reads not answered yet (+1 while starting) */
    int deciding;        /* 0: waiting for catch-ups, 1: for stream reads */
    int paused;          /* the socket's input is paused (lws rx flow control) */
    uint32_t intervals;
    char id_json[CG_REQUEST_ID_JSON_MAX + 1];
    char epoch[17];
    char shared_epoch[17];
    size_t n;
    struct item items[];
};

static struct cg_list *waits_of(struct cg_ws *w)
{
    return &w->dispatch.sub_waits;
}

static void send_error(struct cg_client *c, enum cg_errcode code, const char *msg,
                       const char *id_json)
{
    cg_metrics.client_errors[code]++;
    cg_client_send(c, cg_frame_error(cg_errcode_name(code), msg, id_json));
}

static struct cg_sub *sub_of(struct cg_client *c, const char *name, struct cg_instrument **inp)
{
    struct cg_instrument *in = cg_registry_instrument(c->w->reg, name, strlen(name), 0);
    if (inp)
        *inp = in;
    return in ? cg_registry_find_sub(&c->member, in) : NULL;
}

static void free_pre(struct item *it)
{
    for (size_t i = 0; i < it->npre; i++)
        cg_frame_unref(it->pre[i]);
    free(it->pre);
    free(it->pre_seq);
    it->pre = NULL;
    it->pre_seq = NULL;
    it->npre = 0;
}

static void finish(struct sub_wait *sw)
{
    for (size_t k = 0; k < sw->n; k++)
        free_pre(&sw->items[k]);
    cg_list_remove(&sw->link);
    free(sw);
}

/* The reply, then per instrument (request order, once each) the replay or the snapshot. */
static void answer(struct sub_wait *sw)
{
    struct cg_client *c = sw->c;
    if (!c) {
        finish(sw);
        return;
    }
    struct cg_ws *w = c->w;
    const struct cg_config *cfg = w->cfg;
    const char *names[CG_REQUEST_NAMES_MAX], *inames[CG_CONFIG_INTERVALS_MAX];
    int recovered[CG_REQUEST_NAMES_MAX], any_since = 0;
    size_t ni = 0;
    for (uint32_t i = 0; i < cfg->nintervals; i++)
        if (sw->intervals & (1u << i))
            inames[ni++] = cfg->interval_names[i];
    struct cg_sub *subs[CG_REQUEST_NAMES_MAX];
    for (size_t k = 0; k < sw->n; k++) {
        struct item *it = &sw->items[k];
        struct cg_instrument *in;
        struct cg_sub *sub = sub_of(c, it->name, &in);
        /* Decided before the last answer came: the ring may have moved on meanwhile (its
         * ticks did not reach this held subscription). */
        uint64_t from = it->npre ? it->pre_seq[it->npre - 1] : it->since;
        if (it->recovered == 1 && sub && from < in->seq &&
            !cg_agent_can_resume(w->agent, in, from)) {
            it->recovered = 0;
            free_pre(it);
        }
        names[k] = it->name;
        recovered[k] = it->recovered;
        any_since |= it->has_since;
        subs[k] = sub;
        if (subs[k] && it->held && !subs[k]->view.pending)
            cg_registry_hold(subs[k], 0);
    }
    if (sw->paused && !c->closing)
        lws_rx_flow_control(c->wsi, 1);
    cg_client_send(c, cg_frame_subscribed(sw->id_json[0] ? sw->id_json : NULL, names, sw->n, inames,
                                          ni, w->epoch, cg_stream_epoch(w->stream),
                                          any_since ? recovered : NULL));
    for (size_t k = 0; k < sw->n; k++) {
        int dup = 0;
        for (size_t j = 0; j < k && !dup; j++)
            dup = subs[j] == subs[k];
        struct item *it = &sw->items[k];
        if (!subs[k] || dup)
            continue;
        if (it->recovered == 1 && it->pre)
            cg_agent_resume_from(w->agent, subs[k], it->since, it->pre, it->pre_seq, it->npre);
        else
            cg_agent_start(w->agent, subs[k], it->recovered == 1, it->since);
    }
    finish(sw);
}

static void decide(struct sub_wait *sw);

/* One more answer came (or the start is done): the next phase once nothing is outstanding. */
static void step(struct sub_wait *sw)
{
    if (--sw->outstanding)
        return;
    if (!sw->deciding && sw->c)
        decide(sw);
    else
        answer(sw);
}

static void on_ready(void *arg)
{
    step(arg);
}

/* The stream's entries from since on: a replay when they start at since (or at 1 for since 0),
 * run without a hole, and meet what the ring holds. */
static void on_read(void *arg, const struct cg_stream_entry *e, size_t n, int ok)
{
    struct item *it = arg;
    struct sub_wait *sw = it->sw;
    struct cg_instrument *in = NULL;
    struct cg_sub *sub = sw->c ? sub_of(sw->c, it->name, &in) : NULL;
    it->recovered = 0;
    if (sub && ok && n && e[0].seq == (it->since ? it->since : 1)) {
        struct cg_ws *w = sw->c->w;
        size_t want = n;
        it->pre = calloc(want, sizeof(*it->pre));
        it->pre_seq = calloc(want, sizeof(*it->pre_seq));
        uint64_t last = it->since;
        int whole = it->pre && it->pre_seq;
        for (size_t i = 0; whole && i < n && e[i].seq <= in->seq; i++) {
            if (e[i].seq <= it->since)
                continue;
            struct cg_frame *f = e[i].seq == last + 1
                                     ? cg_relay_tick_frame(in, e[i].seq, e[i].data, e[i].len)
                                     : NULL;
            if (!f) {
                whole = 0; /* a hole, or a tick no client could be given */
                break;
            }
            it->pre[it->npre] = f;
            it->pre_seq[it->npre++] = e[i].seq;
            last = e[i].seq;
        }
        if (whole && (last >= in->seq || cg_agent_can_resume(w->agent, in, last)))
            it->recovered = 1;
    }
    if (!it->recovered)
        free_pre(it);
    step(sw);
}

/* Every instrument is caught up: recovered or not, and stream reads where the ring is short. */
static void decide(struct sub_wait *sw)
{
    struct cg_client *c = sw->c;
    struct cg_ws *w = c->w;
    const char *shared = cg_stream_epoch(w->stream);
    int same = !strcmp(sw->epoch, w->epoch);
    int same_shared = shared[0] && !strcmp(sw->shared_epoch, shared);
    /* A replay is never conflated: like the ring's, it must fit in the socket's queue. */
    uint64_t max = w->cfg->queue_max_frames / 2;
    if (max > w->cfg->stream_catchup_max)
        max = w->cfg->stream_catchup_max;
    sw->deciding = 1;
    sw->outstanding = 1;
    for (size_t k = 0; k < sw->n; k++) {
        struct item *it = &sw->items[k];
        struct cg_instrument *in;
        struct cg_sub *sub = sub_of(c, it->name, &in);
        if (!it->has_since || !sub)
            continue;
        /* seq numbers of another process (or of this port before a restart) say nothing about
         * this one's, unless Redis numbered them (a shared instrument, the shared epoch). */
        int shared_ok = same_shared && in->shared;
        it->recovered = (same || shared_ok) && cg_agent_can_resume(w->agent, in, it->since);
        if (!it->recovered && shared_ok && it->since < in->seq && in->seq - it->since < max &&
            cg_stream_read(w->stream, in, it->since ? it->since : 1, in->seq - it->since + 1,
                           on_read, it) == 0)
            sw->outstanding++;
    }
    if (sw->outstanding > 1 && !sw->paused && !c->closing) {
        lws_rx_flow_control(c->wsi, 0);
        sw->paused = 1;
    }
    step(sw);
}

void cg_subscribe_handle(struct cg_client *c, const struct cg_request *req)
{
    struct cg_ws *w = c->w;
    const char *id = cg_request_id(req);
    char msg[120];
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
    struct sub_wait *sw = calloc(1, sizeof(*sw) + req->nnames * sizeof(sw->items[0]));
    if (!sw) {
        send_error(c, CG_ERR_BAD_REQUEST, "out of memory", id);
        return;
    }
    sw->c = c;
    sw->n = req->nnames;
    sw->intervals = req->intervals;
    snprintf(sw->id_json, sizeof(sw->id_json), "%s", req->id_json);
    memcpy(sw->epoch, req->epoch, sizeof(sw->epoch));
    memcpy(sw->shared_epoch, req->shared_epoch, sizeof(sw->shared_epoch));
    cg_list_append(waits_of(w), &sw->link);
    /* Intervals first (a snapshot shows the bars asked for), then, once every instrument is
     * caught up, the reply and per instrument the replay or the snapshot. */
    sw->outstanding = 1;
    for (size_t k = 0; k < req->nnames; k++) {
        struct item *it = &sw->items[k];
        it->sw = sw;
        snprintf(it->name, sizeof(it->name), "%s", req->names[k]);
        it->recovered = -1;
        if (req->since && cg_request_since(req, it->name, &it->since))
            it->has_since = 1;
        struct cg_instrument *in;
        struct cg_sub *sub = sub_of(c, it->name, &in);
        if (!sub)
            continue;
        cg_agent_set_intervals(w->agent, sub, req->intervals);
        if (cg_agent_set_overlays(w->agent, sub, req->overlays))
            cg_log(CG_LOG_WARN, "overlays not turned on", "reason=\"out of memory\"");
        if (cg_client_pace(c, sub, req->max_rate))
            cg_log(CG_LOG_WARN, "max_rate not applied", "reason=\"out of memory\"");
        if (!sub->view.pending) {
            cg_registry_hold(sub, 1); /* nothing live before the reply */
            it->held = 1;
        }
        if (cg_stream_when_ready(w->stream, in, on_ready, sw) == 0)
            sw->outstanding++;
    }
    if (sw->outstanding > 1) {
        lws_rx_flow_control(c->wsi, 0);
        sw->paused = 1;
    }
    step(sw);
}

void cg_subscribe_close(struct cg_ws *w, struct cg_client *c)
{
    for (struct cg_list *it = waits_of(w)->next; it != waits_of(w); it = it->next) {
        struct sub_wait *sw = CG_CONTAINER_OF(it, struct sub_wait, link);
        if (sw->c == c)
            sw->c = NULL;
    }
}
