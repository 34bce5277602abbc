/* worker.c -- a worker's listening socket on the shared port, and its slot's heartbeat. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "bridge.h"
#include "client.h"
#include "config.h"
#include "metrics.h"
#include "shared.h"

#define ACCEPTS_PER_WAKE 64 /* then let the loop serve the others */
#define BEAT_MS 100
#define SWEEP_SLOTS_PER_BEAT 2048 /* the whole shared table in ~6 s per worker */
#define PAUSE_MS 100              /* after running out of descriptors */

void cg_worker_publish(struct cg_ws *w)
{
    struct cg_worker *k = &w->worker;
    if (!k->shared)
        return;
    struct cg_shared_slot *s = &k->shared->slots[k->index];
    s->connections = w->reg->nmembers;
    s->users = w->reg->users.count;
    s->subscriptions = w->reg->nsubs;
    s->instruments = w->reg->nactive;
    for (int i = 0; i < CG_LINK_BRIDGE_COUNT; i++)
        s->redis_up[i] = cg_bridge_up(w->bridge, (enum cg_link)i);
    s->redis_up[CG_LINK_SESSION] = cg_auth_up(w->auth);
    /* Our counters, for a scrape on another worker (the slot is written by us alone). */
    memcpy(&s->metrics, &cg_metrics, sizeof(s->metrics));
    s->heartbeat_ms = cg_shared_now_ms();
}

static void beat_cb(uv_timer_t *t)
{
    struct cg_ws *w = t->data;
    cg_worker_publish(w);
    cg_shared_sweep(w->worker.shared, cg_shared_now_ms(), SWEEP_SLOTS_PER_BEAT);
}

static void start_polling(struct cg_ws *w);

static void resume_cb(uv_timer_t *t)
{
    start_polling(t->data);
}

static void accept_cb(uv_poll_t *p, int status, int events)
{
    struct cg_ws *w = p->data;
    struct cg_worker *k = &w->worker;
    (void)events;
    if (status < 0 || k->fd < 0)
        return;
    struct lws_vhost *vh = lws_get_vhost_by_name(w->ctx, "default");
    for (int n = 0; n < ACCEPTS_PER_WAKE && k->fd >= 0; n++) {
        int fd = accept4(k->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return;
            cg_log_limited(&k->accept_log, 10000, CG_LOG_ERROR, "accept failed", "error=\"%s\"",
                           strerror(errno));
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The listening socket stays readable: wait instead of spinning. */
                uv_poll_stop(&k->poll);
                uv_timer_start(&k->pause, resume_cb, PAUSE_MS, 0);
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        /* lws owns fd from here; on failure it has closed it. */
        if (!vh || !lws_adopt_socket_vhost(vh, fd))
            cg_log_limited(&k->accept_log, 10000, CG_LOG_ERROR, "lws refused a connection", "fd=%d",
                           fd);
    }
}

static void start_polling(struct cg_ws *w)
{
    if (w->worker.fd >= 0)
        uv_poll_start(&w->worker.poll, UV_READABLE, accept_cb);
}

/* The listening socket: SO_REUSEPORT before bind, so every worker binds the same port. */
static int open_listener(const struct cg_config *cfg)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET; /* as lws with LWS_SERVER_OPTION_DISABLE_IPV6 */
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof(port), "%u", cfg->listen_port);
    int rc = getaddrinfo(cfg->listen_host, port, &hints, &res);
    if (rc) {
        cg_log(CG_LOG_ERROR, "cannot listen", "addr=%s:%u error=\"%s\"", cfg->listen_host,
               cfg->listen_port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
        bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, SOMAXCONN)) {
        cg_log(CG_LOG_ERROR, "cannot listen", "addr=%s:%u error=\"%s\"", cfg->listen_host,
               cfg->listen_port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

int cg_worker_start(struct cg_ws *w)
{
    struct cg_worker *k = &w->worker;
    k->fd = open_listener(w->cfg);
    if (k->fd < 0)
        return -1;
    uv_poll_init_socket(w->loop, &k->poll, k->fd);
    uv_timer_init(w->loop, &k->beat);
    uv_timer_init(w->loop, &k->pause);
    k->poll.data = k->beat.data = k->pause.data = w;
    k->handles = 1;
    start_polling(w);
    cg_worker_publish(w);
    uv_timer_start(&k->beat, beat_cb, BEAT_MS, BEAT_MS);
    return 0;
}

void cg_worker_stop_accepting(struct cg_ws *w)
{
    struct cg_worker *k = &w->worker;
    if (!k->handles || k->fd < 0)
        return;
    uv_poll_stop(&k->poll);
    uv_timer_stop(&k->pause);
    if (!uv_is_closing((uv_handle_t *)&k->poll))
        uv_close((uv_handle_t *)&k->poll, NULL);
    close(k->fd);
    k->fd = -1;
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void cg_worker_stop(struct cg_ws *w)
{
    struct cg_worker *k = &w->worker;
    if (!k->handles)
        return;
    cg_worker_stop_accepting(w);
    cg_worker_publish(w);
    close_handle((uv_handle_t *)&k->beat);
    close_handle((uv_handle_t *)&k->pause);
    k->handles = 0;
}
