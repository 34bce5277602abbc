/* uvredis.h -- the hiredis async adapter for the libuv loop.
 *
 * Written here instead of using hiredis 0.14's adapters/libuv.h, which ignores a
 * non-zero poll status: libuv reports a reset socket (POLLERR) exactly that way
 * and stops the handle, so a link to a Redis that was killed could stay "up"
 * forever. Here an error status is handed to hiredis as readable, so its read
 * fails and the normal disconnect path runs. Same shape as hiredis' adapters:
 * a table of hooks and one attach call. */
#ifndef CG_UVREDIS_H
#define CG_UVREDIS_H

#include <hiredis/async.h>
#include <uv.h>

/* Attaches ac to loop. Returns REDIS_OK, or REDIS_ERR (nothing allocated) when ac
 * is already attached or on failure. The adapter's memory is released by hiredis'
 * cleanup hook when ac is freed; the uv handle closes on the next loop turn. */
int cg_uvredis_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
