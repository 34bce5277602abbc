/* sentinel.h -- where the Redis master is, and what every new Redis connection sends first.
 *
 * Every Redis link (the bridge's three, auth's session link) asks cg_sentinel_addr() for the
 * address to connect to. Without --redis-sentinel that is --redis's host and port, always.
 * With sentinels (--redis-sentinel, --redis-master):
 *  - cg_sentinel_resolve() asks them for the master (SENTINEL get-master-addr-by-name), one
 *    after the other until one answers, asynchronously; requests made while a query is in
 *    flight, or right after one ended, share its answer. It is asked at start (links wait for
 *    the first answer: cg_sentinel_busy), whenever a link fails, and every 15 s;
 *  - a dedicated link subscribes to +switch-master on one sentinel (the next one after each
 *    loss, with back-off; TCP keepalive notices a vanished host); a message for our master
 *    moves the address at once;
 *  - hooks.resolved(data, changed) is called after every query and switch message; changed
 *    means a new address (counted in chartgate_redis_master_switches_total): every link must
 *    move to it and restore its state as after a reconnection.
 * A demoted master keeps answering for a while, as a master until Sentinel reconfigures it and
 * as a replica after: links check ROLE after connecting (cg_sentinel_role) and drop a link to
 * anything but a master. AUTH is the first command on every connection, sentinels included
 * (cg_sentinel_auth_argv); credentials are read from cfg at each connect, so a SIGHUP that
 * re-read the password files takes effect at the next one. Nothing here logs a password. */
#ifndef CG_SENTINEL_H
#define CG_SENTINEL_H

#include <hiredis/async.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "log.h"

struct cg_sentinel_hooks {
    /* A query or a +switch-master message was handled; changed: the master moved. Called from
     * the loop, never from within a cg_sentinel_* call. May be NULL. */
    void (*resolved)(void *data, int changed);
    void *data;
};

struct cg_sentinel {
    uv_loop_t *loop;             /* borrowed */
    const struct cg_config *cfg; /* borrowed */
    struct cg_sentinel_hooks hooks;
    char host[128]; /* the master's address; empty until a sentinel answered */
    uint32_t port;
    /* the query in flight: one sentinel at a time */
    redisAsyncContext *query;
    uint32_t query_at;    /* index of the sentinel asked (or to ask first next time) */
    uint32_t query_tried; /* sentinels tried in this round */
    int resolving;
    uint64_t query_since_ms;
    uint64_t resolved_ms; /* when the last round ended */
    /* the +switch-master watch */
    redisAsyncContext *watch;
    uint32_t watch_at;
    int watch_up;
    uint32_t watch_backoff_ms;
    uint64_t watch_since_ms;
    uv_timer_t watch_retry;
    uv_timer_t tick;   /* timeouts and the periodic check */
    uv_timer_t notify; /* calls hooks.resolved on the next loop turn */
    int notify_changed;
    int stopping;
    struct cg_log_limit query_log, watch_log, auth_log;
};

/* Initialises s (pointers borrowed, hooks copied). With sentinels configured, starts the first
 * query and the watch; they run once the loop runs. Cannot fail: everything retries. */
void cg_sentinel_init(struct cg_sentinel *s, uv_loop_t *loop, const struct cg_config *cfg,
                      const struct cg_sentinel_hooks *hooks);
/* Closes the sentinel links and the timers; the loop must run on to close the handles. */
void cg_sentinel_stop(struct cg_sentinel *s);

/* 1 when the master's address comes from sentinels. */
int cg_sentinel_enabled(const struct cg_sentinel *s);
/* The master's address now: *host is borrowed until the next change (copy it). Returns 0, or
 * -1 while no sentinel has answered yet. */
int cg_sentinel_addr(const struct cg_sentinel *s, const char **host, uint32_t *port);
/* Asks the sentinels again (no-op without sentinels, while a query is in flight, or within
 * 250 ms of the last answer, which is then current enough). */
void cg_sentinel_resolve(struct cg_sentinel *s);
/* 1 while a query is in flight: a link about to connect waits for its answer. */
int cg_sentinel_busy(const struct cg_sentinel *s);

/* The sentinel connections that are down retry now, and the master is asked for again
 * (SIGHUP: the password files were re-read). */
void cg_sentinel_retry_now(struct cg_sentinel *s);

/* AUTH's arguments for c: "AUTH PASSWORD" or "AUTH USER PASSWORD" into argv/lens (pointers
 * borrowed from c). Returns the argument count, or 0 when c holds no password (send nothing). */
int cg_sentinel_auth_argv(const struct cg_config_credentials *c, const char *argv[3],
                          size_t lens[3]);
/* What a ROLE reply says: 1 a master, 0 anything else (a replica, a sentinel, "loading"), -1
 * cannot tell (an error such as NOPERM: the ACL user lacks +role). */
int cg_sentinel_role(const redisReply *r);

#endif
