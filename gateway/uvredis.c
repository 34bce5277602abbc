/* uvredis.c -- hiredis async adapter for libuv that also handles poll errors. */
#include "uvredis.h"

#include <stdlib.h>
#include <sys/ioctl.h>

struct uvr {
    redisAsyncContext *ac; /* NULL once hiredis has cleaned up */
    uv_poll_t handle;
    int events; /* what hiredis wants */
    int armed;  /* what the poll handle watches now */
};

/* hiredis reads at most 16 KiB per call. What already arrived is read in the same loop turn
 * (up to UVR_READS_PER_TURN calls): a market burst on the pub/sub link, ~80 KiB for 500
 * instruments, is then relayed as one batch per socket instead of one per 16 KiB (measured:
 * four writes per socket per burst before). The other links are not starved: the cap bounds
 * the turn, and only bytes already in the socket buffer are read. */
#define UVR_READS_PER_TURN 64

static void read_all(struct uvr *p)
{
    redisAsyncHandleRead(p->ac);
    for (int i = 1; i < UVR_READS_PER_TURN && p->ac; i++) { /* NULL: hiredis disconnected */
        int avail = 0;
        if (ioctl(p->ac->c.fd, FIONREAD, &avail) < 0 || avail <= 0)
            break;
        redisAsyncHandleRead(p->ac);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct uvr *p = h->data;
    if (status < 0) {
        /* libuv stopped the handle; let hiredis' read find the error and disconnect. */
        p->armed = 0;
        if (p->ac)
            redisAsyncHandleRead(p->ac);
        if (p->ac && p->events) {
            uv_poll_start(&p->handle, p->events, on_poll);
            p->armed = p->events;
        }
        return;
    }
    if (p->ac && (events & UV_READABLE))
        read_all(p);
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

/* hiredis asks to watch for writing on every command it buffers. Re-arming an unchanged poll
 * handle is not free: libuv 1.44 takes the fd out of epoll and puts it back, and drops events
 * of that fd still pending in the loop turn. At 25k commands/s that was 76k epoll_ctl calls in
 * 3 s and a Redis link read so late that its heartbeat timed out. So only a change is applied. */
static void update(struct uvr *p)
{
    if (p->events == p->armed)
        return;
    if (p->events)
        uv_poll_start(&p->handle, p->events, on_poll);
    else
        uv_poll_stop(&p->handle);
    p->armed = p->events;
}

static void add_read(void *data)
{
    struct uvr *p = data;
    p->events |= UV_READABLE;
    update(p);
}

static void del_read(void *data)
{
    struct uvr *p = data;
    p->events &= ~UV_READABLE;
    update(p);
}

static void add_write(void *data)
{
    struct uvr *p = data;
    p->events |= UV_WRITABLE;
    update(p);
}

static void del_write(void *data)
{
    struct uvr *p = data;
    p->events &= ~UV_WRITABLE;
    update(p);
}

static void on_close(uv_handle_t *h)
{
    free(h->data);
}

static void cleanup(void *data)
{
    struct uvr *p = data;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->handle, on_close);
}

int cg_uvredis_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data)
        return REDIS_ERR;
    struct uvr *p = calloc(1, sizeof(*p));
    if (!p)
        return REDIS_ERR;
    if (uv_poll_init(loop, &p->handle, ac->c.fd)) {
        free(p);
        return REDIS_ERR;
    }
    p->ac = ac;
    p->handle.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = p;
    return REDIS_OK;
}
