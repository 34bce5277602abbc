/* shardsub.c -- a Redis 7 sharded pub/sub connection: uv_tcp_t, hiredis' reader, a FIFO.
 *
 * Map of the file: the link (per-connection heap object) and its freeing; the FIFO of
 * unanswered commands; output (one uv_write per command, bounded); failing (now from a uv
 * callback, or deferred through the timer when inside a cg_shardsub_* call); connecting
 * (resolve, connect, the next address on failure, handshake AUTH + PING, connect timeout); liveness
 * (the PING timer); reading and dispatching replies; the public functions.
 *
 * The link is detached from its struct (link->s = NULL) when it goes down or is closed: from
 * then on every callback of it only releases resources, and it frees itself when both handles
 * have closed and no name resolution is in flight. */
#include "shardsub.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum state { ST_RESOLVING, ST_CONNECTING, ST_HANDSHAKE, ST_UP };
enum cmd { CMD_AUTH, CMD_PING, CMD_SUB, CMD_UNSUB };

struct pending {
    enum cmd cmd;
    char *ch; /* SUB, UNSUB: owned copy */
    size_t len;
};

struct cg_shardsub_link {
    struct cg_shardsub *s; /* NULL once detached: down was called or close */
    enum state state;
    int failing;   /* a deferred down is scheduled on the timer */
    int closes;    /* handles closed so far (tcp, timer): freed at 2 */
    int resolving; /* uv_getaddrinfo in flight */
    int ping_out;  /* a liveness PING is unanswered */
    uv_tcp_t tcp;
    uv_timer_t timer; /* connect timeout, then ping interval/timeout, or the deferred down */
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    redisReader *reader;
    char *auth; /* formatted AUTH command, or NULL */
    size_t authlen;
    struct addrinfo *ai;      /* resolved addresses, owned; handed on to the next address's link */
    struct addrinfo *ai_next; /* the next to try when this connect fails */
    uint64_t deadline;        /* uv_now() when the connect timeout fires */
    struct pending *q;        /* ring of unanswered commands */
    size_t qcap, qhead, qlen;
    size_t out_bytes; /* written, not yet taken by the kernel, with the requests' own size */
    char why[256];    /* the deferred down's reason */
    char rbuf[64 * 1024];
};

struct wreq {
    uv_write_t req;
    struct cg_shardsub_link *l;
    size_t len;
    char *cmd; /* redisFormatCommandArgv's */
};

/* ------------------------------------------------------------------------------------------ */
/* the link */

static void link_free(struct cg_shardsub_link *l)
{
    for (size_t i = 0; i < l->qlen; i++)
        free(l->q[(l->qhead + i) % l->qcap].ch);
    free(l->q);
    if (l->reader)
        redisReaderFree(l->reader);
    free(l->auth);
    if (l->ai)
        uv_freeaddrinfo(l->ai);
    free(l);
}

static void maybe_free(struct cg_shardsub_link *l)
{
    if (l->closes == 2 && !l->resolving)
        link_free(l);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct cg_shardsub_link *l = h->data;
    l->closes++;
    maybe_free(l);
}

/* Detaches l from its struct and starts closing it; no hook is called for it from now on. */
static void link_close(struct cg_shardsub_link *l)
{
    if (l->s) {
        l->s->link = NULL;
        l->s = NULL;
    }
    if (l->resolving)
        uv_cancel((uv_req_t *)&l->gai); /* its callback still comes, with UV_EAI_CANCELED */
    uv_close((uv_handle_t *)&l->timer, on_handle_closed);
    uv_close((uv_handle_t *)&l->tcp, on_handle_closed); /* cancels the connect and writes */
}

/* Takes the link down from a loop callback: closes it, then calls the down hook. */
static void link_down(struct cg_shardsub_link *l, const char *why)
{
    struct cg_shardsub *s = l->s;
    char reason[sizeof l->why];
    snprintf(reason, sizeof reason, "%s", why);
    link_close(l);
    if (s)
        s->h.down(s->h.data, reason);
}

static void on_deferred_down(uv_timer_t *t)
{
    struct cg_shardsub_link *l = t->data;
    link_down(l, l->why);
}

/* Inside a cg_shardsub_* call: the down hook must wait for the loop. */
static void link_fail_later(struct cg_shardsub_link *l, const char *why)
{
    if (l->failing)
        return;
    l->failing = 1;
    snprintf(l->why, sizeof l->why, "%s", why);
    uv_read_stop((uv_stream_t *)&l->tcp);
    uv_timer_stop(&l->timer);
    uv_timer_start(&l->timer, on_deferred_down, 0, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* the FIFO of unanswered commands */

static int q_push(struct cg_shardsub_link *l, enum cmd cmd, const char *ch, size_t len)
{
    if (l->qlen == l->qcap) {
        size_t ncap = l->qcap ? l->qcap * 2 : 16;
        struct pending *nq = malloc(ncap * sizeof *nq);
        if (!nq)
            return -1;
        for (size_t i = 0; i < l->qlen; i++)
            nq[i] = l->q[(l->qhead + i) % l->qcap];
        free(l->q);
        l->q = nq;
        l->qcap = ncap;
        l->qhead = 0;
    }
    struct pending p = {cmd, NULL, len};
    if (ch) {
        p.ch = malloc(len ? len : 1);
        if (!p.ch)
            return -1;
        memcpy(p.ch, ch, len);
    }
    l->q[(l->qhead + l->qlen) % l->qcap] = p;
    l->qlen++;
    return 0;
}

static struct pending *q_head(struct cg_shardsub_link *l)
{
    return l->qlen ? &l->q[l->qhead] : NULL;
}

static void q_pop(struct cg_shardsub_link *l)
{
    free(l->q[l->qhead].ch);
    l->qhead = (l->qhead + 1) % l->qcap;
    l->qlen--;
}

/* ------------------------------------------------------------------------------------------ */
/* output */

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct cg_shardsub_link *l = w->l;
    l->out_bytes -= w->len + sizeof *w;
    redisFreeCommand(w->cmd);
    free(w);
    if (status < 0 && status != UV_ECANCELED && l->s && !l->failing) {
        char why[128];
        snprintf(why, sizeof why, "write: %s", uv_strerror(status));
        link_down(l, why);
    }
}

/* Writes cmd (stolen, redisFormatCommandArgv's) and records it in the FIFO. Returns 0, or -1
 * with why set (the caller fails the link). */
static int send_cmd(struct cg_shardsub_link *l, char *cmd, size_t len, enum cmd kind,
                    const char *ch, size_t chlen, const char **why)
{
    if (l->out_bytes + len + sizeof(struct wreq) > CG_SHARDSUB_MAX_PENDING_OUT) {
        *why = "output bound passed: over 64 MiB not taken by Redis";
        redisFreeCommand(cmd);
        return -1;
    }
    if (l->qlen >= CG_SHARDSUB_MAX_UNANSWERED) {
        *why = "command bound passed: 1048576 commands unanswered";
        redisFreeCommand(cmd);
        return -1;
    }
    struct wreq *w = malloc(sizeof *w);
    if (!w || q_push(l, kind, ch, chlen) < 0) {
        free(w);
        redisFreeCommand(cmd);
        *why = "out of memory";
        return -1;
    }
    w->l = l;
    w->len = len;
    w->cmd = cmd;
    uv_buf_t b = uv_buf_init(cmd, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&l->tcp, &b, 1, on_written);
    if (rc < 0) {
        /* The FIFO entry stays: the link is failing and the entry goes with it. */
        redisFreeCommand(cmd);
        free(w);
        *why = "write failed";
        return -1;
    }
    l->out_bytes += len + sizeof *w;
    return 0;
}

static int send_argv(struct cg_shardsub_link *l, int argc, const char **argv, const size_t *lens,
                     enum cmd kind, const char *ch, size_t chlen, const char **why)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0 || !cmd) {
        *why = "out of memory";
        return -1;
    }
    return send_cmd(l, cmd, (size_t)n, kind, ch, chlen, why);
}

static int send_ping(struct cg_shardsub_link *l, const char **why)
{
    const char *argv[] = {"PING"};
    const size_t lens[] = {4};
    return send_argv(l, 1, argv, lens, CMD_PING, NULL, 0, why);
}

/* ------------------------------------------------------------------------------------------ */
/* liveness */

static void on_ping_timer(uv_timer_t *t)
{
    struct cg_shardsub_link *l = t->data;
    if (!l->s)
        return;
    if (l->ping_out) {
        link_down(l, "ping unanswered");
        return;
    }
    const char *why = NULL;
    if (send_ping(l, &why) < 0) {
        link_down(l, why);
        return;
    }
    l->ping_out = 1;
    uv_timer_start(&l->timer, on_ping_timer, CG_SHARDSUB_PING_TIMEOUT_MS, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* reading and dispatching */

static int str_is(const redisReply *r, const char *s)
{
    size_t n = strlen(s);
    return (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->len == n &&
           strncasecmp(r->str, s, n) == 0;
}

static int is_bulk(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING;
}

/* Handles one reply. Returns 0, or -1 with why set (protocol violation: the link goes down). */
static int dispatch(struct cg_shardsub_link *l, redisReply *r, char *why, size_t whysz)
{
    struct cg_shardsub *s = l->s;
    struct pending *p = q_head(l);

    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && is_bulk(r->element[0])) {
        redisReply **e = r->element;
        if ((str_is(e[0], "smessage") || str_is(e[0], "message")) && r->elements == 3 &&
            is_bulk(e[1]) && is_bulk(e[2])) {
            if (l->state == ST_UP)
                s->h.message(s->h.data, e[1]->str, e[1]->len, e[2]->str, e[2]->len);
            return 0;
        }
        if (str_is(e[0], "ssubscribe") && r->elements == 3 && is_bulk(e[1])) {
            if (!p || p->cmd != CMD_SUB || p->len != e[1]->len ||
                memcmp(p->ch, e[1]->str, p->len) != 0) {
                snprintf(why, whysz, "protocol error: ssubscribe confirmation out of order");
                return -1;
            }
            q_pop(l);
            s->h.subscribed(s->h.data, e[1]->str, e[1]->len);
            return 0;
        }
        if (str_is(e[0], "sunsubscribe") && r->elements == 3 && is_bulk(e[1])) {
            if (p && p->cmd == CMD_UNSUB && p->len == e[1]->len &&
                memcmp(p->ch, e[1]->str, p->len) == 0) {
                q_pop(l);
                return 0;
            }
            s->h.lost(s->h.data, e[1]->str, e[1]->len);
            return 0;
        }
        if (str_is(e[0], "pong") && p && p->cmd == CMD_PING)
            goto pong;
    } else if (r->type == REDIS_REPLY_STATUS && str_is(r, "PONG") && p && p->cmd == CMD_PING) {
        goto pong;
    } else if (r->type == REDIS_REPLY_STATUS && str_is(r, "OK") && p && p->cmd == CMD_AUTH) {
        q_pop(l);
        return 0;
    } else if (r->type == REDIS_REPLY_ERROR && p) {
        enum cmd cmd = p->cmd;
        if (cmd == CMD_SUB) {
            /* The hook may unsubscribe or close: pop first, keep the channel for the call. */
            char *ch = p->ch;
            size_t len = p->len;
            p->ch = NULL;
            q_pop(l);
            s->h.refused(s->h.data, ch, len, r->str);
            free(ch);
            return 0;
        }
        q_pop(l);
        if (cmd == CMD_UNSUB)
            return 0; /* nothing to undo */
        snprintf(why, whysz, "%s%.*s", cmd == CMD_AUTH ? "AUTH refused: " : "PING refused: ",
                 (int)(r->len > 200 ? 200 : r->len), r->str);
        return -1;
    }
    snprintf(why, whysz, "protocol error: unexpected reply (type %d) with %s at the head", r->type,
             !p                   ? "no command"
             : p->cmd == CMD_AUTH ? "AUTH"
             : p->cmd == CMD_PING ? "PING"
             : p->cmd == CMD_SUB  ? "SSUBSCRIBE"
                                  : "SUNSUBSCRIBE");
    return -1;

pong:
    q_pop(l);
    if (l->state == ST_HANDSHAKE && l->qlen == 0) {
        l->state = ST_UP;
        uv_timer_stop(&l->timer);
        uv_timer_start(&l->timer, on_ping_timer, CG_SHARDSUB_PING_INTERVAL_MS, 0);
        s->h.up(s->h.data);
    } else if (l->state == ST_UP && l->ping_out) {
        l->ping_out = 0;
        uv_timer_stop(&l->timer);
        uv_timer_start(&l->timer, on_ping_timer, CG_SHARDSUB_PING_INTERVAL_MS, 0);
    }
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct cg_shardsub_link *l = h->data;
    (void)suggested;
    *buf = uv_buf_init(l->rbuf, sizeof l->rbuf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct cg_shardsub_link *l = stream->data;
    (void)buf;
    if (!l->s || l->failing)
        return;
    if (nread < 0) {
        char why[128];
        if (nread == UV_EOF)
            snprintf(why, sizeof why, "connection closed by Redis");
        else
            snprintf(why, sizeof why, "read: %s", uv_strerror((int)nread));
        link_down(l, why);
        return;
    }
    if (nread == 0)
        return;
    if (redisReaderFeed(l->reader, l->rbuf, (size_t)nread) != REDIS_OK) {
        link_down(l, "out of memory");
        return;
    }
    /* A hook may close the struct (l->s NULL) or fail the link: stop dispatching then. */
    while (l->s && !l->failing) {
        void *reply = NULL;
        if (redisReaderGetReply(l->reader, &reply) != REDIS_OK) {
            char why[200];
            snprintf(why, sizeof why, "protocol error: %s", l->reader->errstr);
            link_down(l, why);
            return;
        }
        if (!reply)
            break;
        char why[sizeof l->why]; /* link_down keeps at most this much */
        int rc = dispatch(l, reply, why, sizeof why);
        freeReplyObject(reply);
        if (rc < 0 && l->s) {
            link_down(l, why);
            return;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* connecting */

static void on_connect_timeout(uv_timer_t *t)
{
    struct cg_shardsub_link *l = t->data;
    if (l->s)
        link_down(l, "connect timeout");
}

static int start_connect(struct cg_shardsub_link *l, const struct sockaddr *sa);
static struct cg_shardsub_link *link_new(struct cg_shardsub *s);
static void on_connect_timeout(uv_timer_t *t);

/* The connect to one resolved address failed: a new link (a failed uv_tcp_t cannot connect
 * again) tries the next one within the same deadline. Returns 0, or -1: no address left. */
static int try_next(struct cg_shardsub_link *l)
{
    struct cg_shardsub *s = l->s;
    while (l->ai_next) {
        struct addrinfo *a = l->ai_next;
        l->ai_next = a->ai_next;
        struct cg_shardsub_link *n = link_new(s); /* attached to s now */
        if (!n)
            return -1;
        l->s = NULL; /* detached: link_close leaves s->link alone */
        link_close(l);
        n->auth = l->auth;
        n->authlen = l->authlen;
        l->auth = NULL;
        n->ai = l->ai;
        n->ai_next = l->ai_next;
        l->ai = l->ai_next = NULL;
        n->deadline = l->deadline;
        uint64_t now = uv_now(s->loop);
        uv_timer_start(&n->timer, on_connect_timeout, n->deadline > now ? n->deadline - now : 0, 0);
        if (start_connect(n, a->ai_addr) == 0)
            return 0;
        l = n;
    }
    return -1;
}

static void on_connected(uv_connect_t *req, int status)
{
    struct cg_shardsub_link *l = req->data;
    if (!l->s || status == UV_ECANCELED)
        return;
    char why[128];
    if (status < 0) {
        struct cg_shardsub *s = l->s;
        if (l->ai_next && try_next(l) == 0)
            return;
        snprintf(why, sizeof why, "connect: %s", uv_strerror(status));
        if (s->link)
            link_down(s->link, why);
        return;
    }
    uv_tcp_nodelay(&l->tcp, 1);
    uv_tcp_keepalive(&l->tcp, 1, 15);
    int rc = uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
    if (rc < 0) {
        snprintf(why, sizeof why, "read: %s", uv_strerror(rc));
        link_down(l, why);
        return;
    }
    l->state = ST_HANDSHAKE;
    const char *err = NULL;
    if (l->auth) {
        char *cmd = l->auth;
        l->auth = NULL; /* stolen by send_cmd */
        if (send_cmd(l, cmd, l->authlen, CMD_AUTH, NULL, 0, &err) < 0) {
            link_down(l, err);
            return;
        }
    }
    if (send_ping(l, &err) < 0)
        link_down(l, err);
}

static int start_connect(struct cg_shardsub_link *l, const struct sockaddr *sa)
{
    l->state = ST_CONNECTING;
    return uv_tcp_connect(&l->creq, &l->tcp, sa, on_connected);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct cg_shardsub_link *l = req->data;
    l->resolving = 0;
    if (!l->s) {
        if (res)
            uv_freeaddrinfo(res);
        maybe_free(l);
        return;
    }
    char why[160];
    if (status < 0 || !res) {
        snprintf(why, sizeof why, "resolve: %s", status < 0 ? uv_strerror(status) : "no address");
        if (res)
            uv_freeaddrinfo(res);
        link_down(l, why);
        return;
    }
    struct cg_shardsub *s = l->s;
    l->ai = res;
    l->ai_next = res->ai_next;
    int rc = start_connect(l, res->ai_addr);
    if (rc < 0 && l->ai_next && try_next(l) == 0)
        return;
    l = s->link; /* try_next may have replaced it */
    if (rc < 0) {
        snprintf(why, sizeof why, "connect: %s", uv_strerror(rc));
        link_down(l, why);
    }
}

/* A new link attached to s (s->link), handles initialised; NULL on failure (nothing left). */
static struct cg_shardsub_link *link_new(struct cg_shardsub *s)
{
    struct cg_shardsub_link *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->reader = redisReaderCreate();
    if (!l->reader || uv_tcp_init(s->loop, &l->tcp) < 0) {
        link_free(l);
        return NULL;
    }
    l->tcp.data = l->timer.data = l->creq.data = l->gai.data = l;
    if (uv_timer_init(s->loop, &l->timer) < 0) {
        l->closes = 1; /* only the tcp handle to close */
        uv_close((uv_handle_t *)&l->tcp, on_handle_closed);
        return NULL;
    }
    l->s = s;
    s->link = l;
    return l;
}

/* ------------------------------------------------------------------------------------------ */
/* public */

void cg_shardsub_init(struct cg_shardsub *s, uv_loop_t *loop, const struct cg_shardsub_hooks *h)
{
    s->loop = loop;
    s->h = *h;
    s->link = NULL;
}

int cg_shardsub_connect(struct cg_shardsub *s, const char *host, uint32_t port, int auth_argc,
                        const char **auth_argv, const size_t *auth_lens)
{
    size_t hostlen = host ? strlen(host) : 0;
    if (s->link || hostlen == 0 || hostlen > 255 || port == 0 || port > 65535 || auth_argc < 0 ||
        auth_argc > 2)
        return -1;
    struct cg_shardsub_link *l = link_new(s);
    if (!l)
        return -1;
    if (auth_argc > 0) {
        const char *argv[3] = {"AUTH"};
        size_t lens[3] = {4};
        for (int i = 0; i < auth_argc; i++) {
            argv[i + 1] = auth_argv[i];
            lens[i + 1] = auth_lens[i];
        }
        int n = redisFormatCommandArgv(&l->auth, auth_argc + 1, argv, lens);
        if (n < 0 || !l->auth) {
            link_close(l);
            return -1;
        }
        l->authlen = (size_t)n;
    }
    l->deadline = uv_now(s->loop) + CG_SHARDSUB_CONNECT_TIMEOUT_MS;

    struct sockaddr_storage ss;
    int rc;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss) == 0) {
        rc = start_connect(l, (struct sockaddr *)&ss);
    } else {
        char service[8];
        snprintf(service, sizeof service, "%u", (unsigned)port);
        struct addrinfo hints;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_protocol = IPPROTO_TCP;
        l->state = ST_RESOLVING;
        rc = uv_getaddrinfo(s->loop, &l->gai, on_resolved, host, service, &hints);
        if (rc == 0)
            l->resolving = 1;
    }
    if (rc < 0) {
        link_close(l);
        return -1;
    }
    uv_timer_start(&l->timer, on_connect_timeout, CG_SHARDSUB_CONNECT_TIMEOUT_MS, 0);
    return 0;
}

static int sub_cmd(struct cg_shardsub *s, const char *name, enum cmd kind, const char *ch,
                   size_t len)
{
    struct cg_shardsub_link *l = s->link;
    if (!cg_shardsub_up(s))
        return -1;
    const char *argv[2] = {name, ch};
    const size_t lens[2] = {strlen(name), len};
    const char *why = NULL;
    if (send_argv(l, 2, argv, lens, kind, ch, len, &why) < 0) {
        link_fail_later(l, why);
        return -1;
    }
    return 0;
}

int cg_shardsub_subscribe(struct cg_shardsub *s, const char *ch, size_t len)
{
    return sub_cmd(s, "SSUBSCRIBE", CMD_SUB, ch, len);
}

int cg_shardsub_unsubscribe(struct cg_shardsub *s, const char *ch, size_t len)
{
    return sub_cmd(s, "SUNSUBSCRIBE", CMD_UNSUB, ch, len);
}

int cg_shardsub_up(const struct cg_shardsub *s)
{
    return s->link && s->link->state == ST_UP && !s->link->failing;
}

int cg_shardsub_idle(const struct cg_shardsub *s)
{
    return s->link == NULL;
}

void cg_shardsub_close(struct cg_shardsub *s)
{
    if (s->link)
        link_close(s->link);
}
