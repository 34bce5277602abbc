/* uvredis.c -- hiredis async adapter for libuv that also handles poll errors. */
#include "uvredis.h"

#include <stdlib.h>

struct uvr {
    redisAsyncContext *ac; /* NULL once hiredis has cleaned up */
    uv_poll_t handle;
    int events;
};

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct uvr *p = h->data;
    if (status < 0) {
        /* libuv stopped the handle; let hiredis' read find the error and disconnect. */
        if (p->ac)
            redisAsyncHandleRead(p->ac);
        if (p->ac && p->events)
            uv_poll_start(&p->handle, p->events, on_poll);
        return;
    }
    if (p->ac && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void update(struct uvr *p)
{
    if (p->events)
        uv_poll_start(&p->handle, p->events, on_poll);
    else
        uv_poll_stop(&p->handle);
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
