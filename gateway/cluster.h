/* cluster.h -- Redis Cluster mode (--redis-cluster): the slot map, and for each master one command
 * link and one sharded pub/sub link, with commands routed by slot.
 *
 * The slot map comes from CLUSTER SLOTS, asked of a master's command link or, when none is up, of
 * the seeds and every node seen so far in turn. It is asked again at start, every 10 s, soon
 * after a redirection or a lost subscription, and every 500 ms while a slot has no reachable
 * master (a failover in progress).
 *
 * Commands (cg_cluster_command) go to the master of their key's slot (slots.h says which argument
 * is the key). A MOVED reply updates that slot and resends the command to the new owner; an ASK
 * reply resends it once, after ASKING, to the node named; TRYAGAIN and CLUSTERDOWN are retried
 * every 100 ms for up to 3 s. Only then does the caller's callback run, with the final reply.
 * Commands without a key (FUNCTION LOAD) go to every master.
 *
 * Channels (cg_cluster_subscribe) are sharded: each is SSUBSCRIBEd on the master of its slot,
 * and moves with it: after a map change, after Redis's own sunsubscribe (the slot moved away),
 * after a refusal (MOVED) and after the pub/sub link came back. A channel whose confirmed
 * subscription was lost may have missed messages: hooks.resubscribed names it once it is
 * confirmed again (its instrument's shared seqs are then caught up from its stream).
 *
 * Every link sends AUTH first (cfg's credentials, read at each connect) and is watched: a connect
 * that takes over 3 s, or a PING unanswered for 5 s, drops it, and a lost link reconnects with
 * jittered exponential back-off. Client sockets are not touched by any of this. */
#ifndef CG_CLUSTER_H
#define CG_CLUSTER_H

#include <hiredis/async.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "list.h"
#include "log.h"
#include "map.h"
#include "shardsub.h"
#include "slots.h"

struct cg_cluster;

struct cg_cluster_hooks {
    /* A message on a subscribed channel (borrowed, valid during the call). */
    void (*message)(void *data, const char *ch, size_t chlen, const char *msg, size_t msglen);
    /* A master's command link came up (first time, again, or a new master): load what every
     * master must hold (function libraries) now. */
    void (*command_up)(void *data);
    /* The slot map changed: anything bound to a key's node (the inbox link) checks its node. */
    void (*map_changed)(void *data);
    /* The channel ch (borrowed, len bytes) is subscribed again after its subscription was lost
     * (its slot moved, its master's link dropped or failed over): messages on it may have been
     * missed until now. Called once the new subscription is confirmed, for that channel only
     * (a slot move touches the instruments of that slot, not every one). */
    void (*resubscribed)(void *data, const char *ch, size_t len);
    void *data;
};

struct cg_cluster_node {
    struct cg_cluster *cluster;
    int idx;
    int master; /* serves slots in the current map */
    /* command link */
    redisAsyncContext *ac; /* NULL while down */
    int up;
    int ever_up;
    int handshake;       /* AUTH queued: its reply brings the link up */
    uint64_t since_ms;   /* connect started */
    uint64_t pending_ms; /* oldest unanswered PING; 0 = none */
    uint64_t probe_ms;   /* last PING sent */
    uint64_t retry_at_ms;
    uint32_t backoff_ms;
    /* sharded pub/sub link */
    struct cg_shardsub sub;
    int sub_state; /* 0 idle, 1 connecting, 2 up */
    int sub_ever_up;
    uint64_t sub_retry_at_ms;
    uint32_t sub_backoff_ms;
    struct cg_log_limit fail_log;
};

struct cg_cluster {
    uv_loop_t *loop;             /* borrowed */
    const struct cg_config *cfg; /* borrowed */
    struct cg_cluster_hooks hooks;
    struct cg_slots map;
    uint16_t before[CG_SLOTS_COUNT]; /* the owners before a new map, to tell a change */
    int map_ok;                      /* a map was read at least once */
    struct cg_cluster_node nodes[CG_SLOTS_NODES_MAX];
    struct cg_map channels; /* name -> struct channel (cluster.c) */
    int channels_dirty;     /* some channel is not subscribed where it should be */
    struct cg_list parked;  /* requests waiting to be resent */
    size_t nparked;
    uv_timer_t tick;
    redisAsyncContext *refresh_ac;            /* a seed connection asked for the map; NULL = none */
    char refresh_host[CG_SLOTS_HOST_MAX + 1]; /* its host (stands in for an empty one) */
    int refresh_inflight;
    int refresh_wanted;
    uint64_t refresh_ms; /* last refresh started */
    uint32_t seed_at;    /* next seed / node to ask when no master link is up */
    int stopping;
    struct cg_log_limit map_log;
};

/* Initialises c and starts reading the slot map (links connect once the loop runs; nothing
 * here can fail). cfg is borrowed and must outlive c; hooks are copied. */
void cg_cluster_start(struct cg_cluster *c, uv_loop_t *loop, const struct cg_config *cfg,
                      const struct cg_cluster_hooks *hooks);
/* Closes every link and timer; pending callbacks run with a NULL reply. The loop must run on
 * to let handles close. */
void cg_cluster_stop(struct cg_cluster *c);
/* The slot map is read again soon (a redirection or CLUSTERDOWN seen elsewhere). */
void cg_cluster_refresh_soon(struct cg_cluster *c);
/* Down links retry now (SIGHUP re-read the password). */
void cg_cluster_retry_now(struct cg_cluster *c);

/* Sends a command to its key's master (every master when it has no key); fn gets the final
 * reply after redirections (borrowed, valid during the call; NULL when the link dropped first).
 * For a keyless command fn runs once: with the first error, or with the last reply. argv is
 * copied. Returns 0, or -1 when the key's master (or every master) is unreachable now: fn is
 * then never called. */
int cg_cluster_command(struct cg_cluster *c, redisCallbackFn *fn, void *privdata, int argc,
                       const char **argv, const size_t *argvlen);
/* The address of the master serving key's slot (host borrowed until the next map change).
 * Returns 0, or -1 when no master serves it (yet). */
int cg_cluster_key_addr(const struct cg_cluster *c, const char *key, size_t len, const char **host,
                        uint32_t *port);

/* SSUBSCRIBE ch (copied) on its slot's master, now and after every move, until
 * cg_cluster_unsubscribe. A channel already subscribed is left as it is. Returns 0, or -1 when
 * out of memory. */
int cg_cluster_subscribe(struct cg_cluster *c, const char *ch, size_t len);
void cg_cluster_unsubscribe(struct cg_cluster *c, const char *ch, size_t len);

/* 1 when the map covers every slot and every master's command link is up. */
int cg_cluster_commands_up(const struct cg_cluster *c);
/* 1 when the map covers every slot and every master's pub/sub link is up (/healthz). */
int cg_cluster_pubsub_up(const struct cg_cluster *c);
/* ... and every channel is confirmed subscribed where its slot is served (a moment after each
 * move: the inbox pops only then). */
int cg_cluster_pubsub_ready(const struct cg_cluster *c);

#endif
