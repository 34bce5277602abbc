/* bridge.h -- the Redis bridge: pub/sub, command and inbox links on the libuv loop.
 *
 * Three hiredis async connections, attached with hiredis' libuv adapter:
 *  - pub/sub: SUBSCRIBE to the broadcast channel, a private heartbeat channel, and
 *    md:<instrument> + chart:<instrument> / user:<id> for each instrument and user with local
 *    sockets
 *    (reference-counted by the registry; see the hooks in registry.h);
 *  - command: heartbeat PUBLISH, SMEMBERS of the instrument set, session re-checks;
 *  - inbox: BLMOVE from the inbox list into this gateway's processing list, then
 *    republish + ack on the same connection, so an item is never lost (at least once).
 * hiredis 0.14 has no timeouts: a 1 s watchdog drops a link whose connect, heartbeat
 * or blocking pop is overdue, and every lost link reconnects with jittered
 * exponential back-off, re-subscribing everything active. Client sockets are not
 * touched by any of this.
 *
 * Each link connects to the address the sentinel module gives (sentinel.h), and is up only
 * once its handshake passed: AUTH when credentials are configured (a refusal is logged once,
 * counted, and retried with the same back-off), then ROLE with sentinels (a link to anything
 * but a master is dropped and the master asked for again). A failed link also asks the
 * sentinels again before its retry; when the master moves, every link moves to it at once.
 *
 * With --redis-cluster (cluster.h) the pub/sub and command links are the cluster module's, one
 * of each per master: channels are sharded (SSUBSCRIBE), chart:{<instrument>} carries the
 * instrument as hash tag (the slot of the overlay function's key), commands go to their key's
 * master, and a recording gateway subscribes every known instrument (no sharded patterns). */
#ifndef CG_BRIDGE_H
#define CG_BRIDGE_H

#include <hiredis/async.h>
#include <uv.h>

#include "cluster.h"
#include "config.h"
#include "metrics.h"
#include "registry.h"
#include "relay.h"
#include "sentinel.h"

struct cg_bridge;

struct cg_bridge_hooks {
    /* The pub/sub link is (back) up: ticks may have been missed while it was down. May be NULL. */
    void (*pubsub_up)(void *data);
    /* Cluster mode: the instrument name's (borrowed, len bytes, as its channel spells it: not
     * yet validated) tick channel (overlays 0) or overlay channel (overlays 1) is subscribed
     * again after a gap (its slot moved, its master failed over): messages on it may have been
     * missed. Only the channels that moved come here; pubsub_up is not called. May be NULL. */
    void (*instrument_gap)(void *data, const char *name, size_t len, int overlays);
    /* The command link is (back) up: what it must hold first (functions) is loaded here, before
     * any command queued later. May be NULL. */
    void (*command_up)(void *data);
    void *data;
};

struct cg_bridge_link {
    struct cg_bridge *bridge;
    enum cg_link id;
    redisAsyncContext *ac; /* NULL while down */
    int up;                /* connected, handshake passed, initialised */
    int ever_up;           /* a later up is a reconnection */
    int awaiting;          /* waits for the sentinels' answer to connect */
    int handshake;         /* AUTH and/or ROLE queued: their replies bring the link up */
    char host[128];        /* the address ac is connected to */
    uint32_t port;
    uint32_t backoff_ms;
    uint64_t since_ms;   /* when the current connect attempt / wait started */
    uint64_t pending_ms; /* when the oldest outstanding liveness probe was sent; 0 = none */
    uv_timer_t retry;
    struct cg_log_limit fail_log; /* connect failures while down */
    struct cg_log_limit auth_log; /* AUTH refusals: once, then once a minute */
};

struct cg_bridge {
    uv_loop_t *loop;                                   /* borrowed */
    const struct cg_config *cfg;                       /* borrowed */
    struct cg_registry *reg;                           /* borrowed */
    struct cg_relay *relay;                            /* borrowed */
    struct cg_sentinel *sentinel;                      /* borrowed: where the master is */
    struct cg_bridge_link links[CG_LINK_BRIDGE_COUNT]; /* indexed by enum cg_link */
    uv_timer_t watchdog;
    uint64_t last_heartbeat_ms; /* last heartbeat seen on the pub/sub link */
    int pubsub_ready; /* a heartbeat came back since pub/sub (re)connected: its subscriptions
                       * are in place, so a republished inbox item reaches them */
    int pop_waiting;  /* the inbox pop waits for pubsub_ready */
    uint64_t last_instruments_ms; /* last SMEMBERS of the instrument set */
    char heartbeat_channel[200];
    char reply_channel[200]; /* <reply-prefix><epoch>: services' replies to our sockets */
    char epoch[17];          /* this process's identity, borrowed from main */
    char processing_key[300];
    int stopping;
    struct cg_bridge_hooks hooks;
    struct cg_log_limit overlay_log; /* inbox overlay operations Redis refused */
    /* Cluster mode (--redis-cluster): commands and channels go through the cluster's per-master
     * links instead of the command and pub/sub links here; the inbox link connects to the
     * master of the inbox key's slot, and an item is acknowledged once its SPUBLISH was. */
    int clustered;
    struct cg_cluster cluster;
    int republishing;      /* an inbox item's republish is in flight (cluster mode) */
    int republish_overlay; /* ... and it is an overlay operation's FCALL */
};

/* Initialises b and starts connecting (the links connect once the loop runs, and reconnect
 * by themselves: nothing here can fail). All pointers are borrowed and must outlive the
 * bridge; hooks and epoch (this process's 16 hex digits, naming its reply channel) are
 * copied. */
void cg_bridge_start(struct cg_bridge *b, uv_loop_t *loop, const struct cg_config *cfg,
                     struct cg_registry *reg, struct cg_relay *relay, const char *epoch,
                     struct cg_sentinel *sentinel, const struct cg_bridge_hooks *hooks);
/* Sentinel hook (through main): the sentinels answered. Links waiting for that connect; links
 * connected elsewhere than the master's address move to it now (changed or not: the address
 * is compared), re-subscribing and resuming the inbox as after any reconnection. */
void cg_bridge_master_resolved(struct cg_bridge *b, int changed);
/* Links that are down retry now instead of at the end of their back-off (SIGHUP: the password
 * file was re-read). */
void cg_bridge_retry_now(struct cg_bridge *b);
/* Closes the links and the timers; the loop must run on to let handles close. */
void cg_bridge_stop(struct cg_bridge *b);

/* Registry hooks: upstream (un)subscribe for instruments and users. data = bridge. */
void cg_bridge_instrument_active(void *data, struct cg_instrument *inst, int active);
void cg_bridge_user_active(void *data, struct cg_user *user, int active);

int cg_bridge_up(const struct cg_bridge *b, enum cg_link link);

/* Re-reads the Redis set of known instruments into the registry, then calls done
 * (also if the link drops first; done may be NULL). Returns -1, without calling
 * done, when the command link is down. */
int cg_bridge_refresh_instruments(struct cg_bridge *b, void (*done)(void *data), void *data);

/* Sends a command on the command link; fn gets the reply (borrowed, valid during the
 * call; NULL if the link dropped first). Returns 0, or -1 when the link is down
 * (fn is then never called). */
int cg_bridge_command(struct cg_bridge *b, redisCallbackFn *fn, void *privdata, int argc,
                      const char **argv, const size_t *argvlen);

#endif
