/* client.c -- a connection's queue, the batched write path, and closing. */
#include "client.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "frame.h"
#include "metrics.h"

_Static_assert(CG_FRAME_PRE >= LWS_PRE, "frame headroom must fit the lws header");

static void closer_cb(uv_timer_t *t);
static void flush_soon_cb(uv_idle_t *h);

uint64_t cg_client_now_ms(const struct cg_ws *w)
{
    return uv_now(w->loop);
}

/* ---- closing --------------------------------------------------------------- */

#define CLOSE_GRACE_S 5 /* a closing client whose socket never drains is cut */

static void queue_close(struct cg_client *c)
{
    struct cg_ws *w = c->w;
    cg_list_remove(&c->close_link);
    cg_list_append(&w->to_close, &c->close_link);
    if (!uv_is_active((uv_handle_t *)&w->closer))
        uv_timer_start(&w->closer, closer_cb, 0, 0);
}

/* The close itself starts from a 0 ms timer, outside whatever fan-out or callback we are in (a
 * close can end in LWS_CALLBACK_CLOSED, which unlinks the client from lists being walked). Not
 * by returning -1 from WRITEABLE: Debian's lws 4.1.6 is built with _DEBUG, whose "uv repeat
 * test" then closes a second time and turns the polite close (close frame first) into a hard
 * kill. A socket that never drains enough to take the close frame is cut after CLOSE_GRACE_S. */
void cg_client_close(struct cg_client *c, uint16_t code, const char *reason)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->close_code = code;
    snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
    cg_outq_finish(&c->q);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, CLOSE_GRACE_S);
    queue_close(c);
}

/* Starts c's close, in which lws sends the close frame, waits for the peer's and hangs up;
 * -1 (nothing done) while lws holds part of an earlier write or the socket is full.
 *
 * lws 4.1 builds the frame late: lws_close_reason() only stores the payload, in the buffer lws
 * also keeps ping payloads in (wsi->ws->ping_payload_buf), and the frame is made from it at the
 * socket's next POLLOUT -- for a slow consumer seconds later, after a client's ping or lws's
 * own keepalive ping (--ping-s) has overwritten its first bytes (close codes such as 15409 and
 * reasons "...onsumer" in a long soak). And a close started while lws holds part of a write
 * (buflist_out) gets no frame at all: lws flushes, then hangs up. So the close starts only when
 * neither is the case, and that POLLOUT is served here and now, as lws's libuv watcher would
 * serve it: the frame is sent, or copied into lws's buflist, before anything else can write to
 * that buffer. c may be closed (freed) on return. */
static int start_close(struct cg_client *c)
{
    struct lws *wsi = c->wsi;
    if (lws_get_close_length(wsi)) /* lws closes it itself, on a protocol error it found */
        return 0;
    if (lws_send_pipe_choked(wsi))
        return -1;
    struct lws_pollfd pfd = {
        .fd = lws_get_socket_fd(wsi), .events = LWS_POLLOUT, .revents = LWS_POLLOUT};
    c->close_started = 1;
    lws_close_reason(wsi, (enum lws_close_status)c->close_code, (unsigned char *)c->close_reason,
                     strlen(c->close_reason));
    lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
    lws_service_fd(lws_get_context(wsi), &pfd);
    return 0;
}

static void closer_cb(uv_timer_t *t)
{
    struct cg_ws *w = t->data;
    while (!cg_list_empty(&w->to_close)) {
        struct cg_client *c = CG_CONTAINER_OF(w->to_close.next, struct cg_client, close_link);
        cg_list_remove(&c->close_link);
        if (start_close(c)) /* back here from WRITEABLE; cut after CLOSE_GRACE_S */
            lws_callback_on_writable(c->wsi);
    }
}

void cg_client_peer_closed(struct cg_client *c)
{
    if (!c->established)
        return;
    c->closing = 1;
    c->close_started = 1; /* a close of ours not started yet: this one wins */
    cg_list_remove(&c->close_link);
    cg_outq_finish(&c->q);
}

void cg_client_revoked(void *data, struct cg_list *socket_link)
{
    (void)data;
    struct cg_client *c = CG_CONTAINER_OF(socket_link, struct cg_client, auth_link);
    cg_client_close(c, 4001, "session ended");
}

void cg_client_finish(struct cg_client *c)
{
    cg_list_remove(&c->close_link);
    cg_list_remove(&c->flush_link);
    cg_outq_finish(&c->q);
}

/* ---- queueing ---------------------------------------------------------------- */

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
    cg_client_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "slow consumer");
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

void cg_client_send(struct cg_client *c, struct cg_frame *f)
{
    enqueue(c, f, NULL);
    cg_frame_unref(f);
}

void cg_client_deliver(void *data, struct cg_member *m, struct cg_frame *f, uint64_t *slot)
{
    (void)data;
    enqueue(m->owner, f, slot);
}

/* ---- max_rate ------------------------------------------------------------------ */

static void pace_cb(uv_timer_t *t);

/* Arms the pacer for the earliest held frame, when that changed. */
static void arm_pace(struct cg_ws *w)
{
    uint64_t next = cg_pace_next(&w->pace);
    if (next == w->pace_armed)
        return;
    w->pace_armed = next;
    if (next == UINT64_MAX) {
        uv_timer_stop(&w->pacer);
        return;
    }
    uint64_t now = uv_now(w->loop);
    uv_timer_start(&w->pacer, pace_cb, next > now ? next - now : 0, 0);
}

/* Where a paced frame of kind for s queues: the slot that conflates it when c is behind. */
static uint64_t *queue_slot(struct cg_sub *s, uint32_t kind)
{
    return kind ? &s->view.bar_slot[kind - 1] : &s->inst->fan[s->index].slot;
}

static void pace_cb(uv_timer_t *t)
{
    struct cg_ws *w = t->data;
    uint64_t now = uv_now(w->loop);
    struct cg_pace_slot *ps;
    struct cg_frame *f;
    w->pace_armed = UINT64_MAX;
    while ((ps = cg_pace_due(&w->pace, now, &f))) {
        struct cg_sub *s = ps->owner;
        if (!s->inst->fan[s->index].held) /* a snapshot being made will hold it */
            enqueue(s->member->owner, f, queue_slot(s, ps->kind));
        cg_frame_unref(f);
    }
    arm_pace(w);
}

void cg_client_paced(void *data, struct cg_sub *s, uint32_t kind, struct cg_frame *f)
{
    struct cg_ws *w = data;
    struct cg_pace_slot *ps = &s->pace->slot[kind];
    if (!f) {
        if (ps->held)
            cg_metrics.frames_paced++;
        cg_pace_drop(&w->pace, ps);
        arm_pace(w);
        return;
    }
    switch (cg_pace_offer(&w->pace, ps, uv_now(w->loop), f)) {
    case CG_PACE_SEND:
    case CG_PACE_NOMEM:
        enqueue(s->member->owner, f, queue_slot(s, kind));
        break;
    case CG_PACE_HELD:
        if (ps->next_ms < w->pace_armed)
            arm_pace(w);
        break;
    case CG_PACE_REPLACED:
        cg_metrics.frames_paced++;
        break;
    }
}

int cg_client_pace(struct cg_client *c, struct cg_sub *s, double rate)
{
    struct cg_ws *w = c->w;
    cg_client_unpace(w, s);
    if (rate <= 0)
        return 0;
    s->pace = cg_pace_sub_create(cg_pace_interval_ms(rate), 1 + w->cfg->nintervals, s);
    if (!s->pace)
        return -1;
    cg_registry_set_paced(s, 1);
    return 0;
}

void cg_client_unpace(struct cg_ws *w, struct cg_sub *s)
{
    if (!s->pace)
        return;
    cg_registry_set_paced(s, 0);
    cg_pace_sub_destroy(&w->pace, s->pace);
    s->pace = NULL;
    arm_pace(w);
}

/* ---- writing ----------------------------------------------------------------- */

/* The message of c's oldest n frames, joined by "\n": a lone frame is written from the shared
 * buffer itself (lws puts the header in its headroom, and nothing is kept), several are copied
 * into w->scratch. */
static unsigned char *join(struct cg_ws *w, struct cg_client *c, uint32_t n)
{
    struct cg_frame *first = cg_outq_peek(&c->q, 0);
    if (n == 1)
        return cg_frame_data(first);
    unsigned char *buf = w->scratch + LWS_PRE;
    size_t len = first->len;
    memcpy(buf, cg_frame_data(first), len);
    for (uint32_t i = 1; i < n; i++) {
        struct cg_frame *f = cg_outq_peek(&c->q, i);
        buf[len++] = '\n';
        memcpy(buf + len, cg_frame_data(f), f->len);
        len += f->len;
    }
    return buf;
}

/* c's oldest n frames into w->batch_frames, the key of the shared compressed batch. Returns 0,
 * or -1 out of memory (then the batch goes out plain). */
static int batch_frames(struct cg_ws *w, struct cg_client *c, uint32_t n)
{
    if (n > w->batch_frames_cap) {
        struct cg_frame **fr = realloc(w->batch_frames, n * sizeof(*fr));
        if (!fr)
            return -1;
        w->batch_frames = fr;
        w->batch_frames_cap = n;
    }
    for (uint32_t i = 0; i < n; i++)
        w->batch_frames[i] = cg_outq_peek(&c->q, i);
    return 0;
}

int cg_client_writeable(struct cg_client *c)
{
    struct cg_ws *w = c->w;
    if (c->closing && !c->close_started)
        queue_close(c);             /* start_close() waits for this */
    cg_list_remove(&c->flush_link); /* WRITEABLE may come while c waits on to_flush */
    c->want_write = 0;
    if (c->closing || !c->q.count)
        return 0;
    struct cg_frame *first = cg_outq_peek(&c->q, 0);
    size_t len = first->len;
    uint32_t n = 1;
    if (first->len < w->cfg->batch_max_bytes)
        for (; n < c->q.count; n++) {
            size_t flen = cg_outq_peek(&c->q, n)->len;
            if (len + 1 + flen > w->cfg->batch_max_bytes)
                break;
            len += 1 + flen;
        }
    unsigned char *buf = NULL;
    const struct cg_deflate_entry *e = NULL;
    if (c->deflate && len >= w->cfg->deflate_min_bytes && !batch_frames(w, c, n)) {
        e = cg_deflate_find(&w->deflate, w->batch_frames, n, c->deflate_wbits);
        if (!e) {
            buf = join(w, c, n);
            e = cg_deflate_add(&w->deflate, w->batch_frames, n, c->deflate_wbits, buf, len);
            cg_metrics.deflate_compressions++;
        }
    }
    size_t raw = len;
    if (e && e->compressed) {
        buf = e->buf + CG_FRAME_PRE; /* the headroom takes lws's header, as a frame's does */
        len = e->len;
        c->deflate_rsv1 = 1; /* wsdeflate.c's extension sets RSV1 in the header lws makes */
    } else if (!buf)
        buf = join(w, c, n);
    int wr = lws_write(c->wsi, buf, len, LWS_WRITE_TEXT);
    c->deflate_rsv1 = 0;
    cg_outq_pop(&c->q, n);
    if (wr < (int)len)
        return -1;
    if (e && e->compressed) {
        cg_metrics.deflate_messages_out++;
        cg_metrics.deflate_bytes_in += raw;
    }
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
        if (cg_client_writeable(c))
            cg_client_close(c, LWS_CLOSE_STATUS_ABNORMAL_CLOSE, "write failed");
    }
}

static void flush_soon_cb(uv_idle_t *h)
{
    (void)h; /* only keeps the poll phase from blocking while clients wait to be written */
}

int cg_client_vhost_init(struct cg_ws *w)
{
    const struct cg_config *cfg = w->cfg;
    w->limits.max_frames = cfg->queue_max_frames;
    w->limits.max_bytes = cfg->queue_max_bytes;
    w->limits.conflate_frames = cfg->queue_conflate_frames;
    w->limits.conflate_bytes = cfg->queue_max_bytes / 4;
    cg_list_init(&w->to_close);
    cg_list_init(&w->to_flush);
    w->scratch = malloc(LWS_PRE + cfg->batch_max_bytes);
    if (!w->scratch) {
        cg_log(CG_LOG_ERROR, "out of memory", "what=batch_buffer bytes=%u", cfg->batch_max_bytes);
        return -1;
    }
    if (cfg->deflate) {
        w->inflate_cap = (size_t)cfg->max_message_bytes + 1;
        w->inflate_buf = malloc(w->inflate_cap + 1); /* lws writes a NUL after the output */
        if (!w->inflate_buf || cg_deflate_init(&w->deflate, cfg->deflate_min_bytes)) {
            cg_log(CG_LOG_ERROR, "out of memory", "what=deflate bytes=%zu", w->inflate_cap);
            cg_deflate_finish(&w->deflate);
            free(w->inflate_buf);
            free(w->scratch);
            w->inflate_buf = w->scratch = NULL;
            return -1;
        }
    }
    uv_timer_init(w->loop, &w->closer);
    w->closer.data = w;
    uv_check_init(w->loop, &w->flusher);
    w->flusher.data = w;
    uv_check_start(&w->flusher, flush_cb);
    uv_idle_init(w->loop, &w->flush_soon);
    cg_pace_init(&w->pace);
    uv_timer_init(w->loop, &w->pacer);
    w->pacer.data = w;
    w->pace_armed = UINT64_MAX;
    return 0;
}

void cg_client_vhost_finish(struct cg_ws *w)
{
    uv_timer_stop(&w->closer);
    uv_close((uv_handle_t *)&w->closer, NULL);
    uv_check_stop(&w->flusher);
    uv_close((uv_handle_t *)&w->flusher, NULL);
    uv_idle_stop(&w->flush_soon);
    uv_close((uv_handle_t *)&w->flush_soon, NULL);
    uv_timer_stop(&w->pacer);
    uv_close((uv_handle_t *)&w->pacer, NULL);
    cg_pace_finish(&w->pace);
    w->pace_armed = UINT64_MAX; /* subscriptions dropped from now on find nothing to arm */
    free(w->scratch);
    w->scratch = NULL;
    cg_deflate_finish(&w->deflate);
    free(w->inflate_buf);
    w->inflate_buf = NULL;
    free(w->batch_frames);
    w->batch_frames = NULL;
    w->batch_frames_cap = 0;
}
