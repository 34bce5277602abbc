/* shared.h -- what the worker processes of one instance share (--workers N): one memory region.
 *
 * The supervisor maps it (MAP_SHARED | MAP_ANONYMOUS) before it forks, so every worker sees
 * the same bytes at the same address. It holds:
 *   - one slot per worker: its pid, a heartbeat, its gauges and a copy of its counters (the
 *     worker copies its struct cg_metrics there every 100 ms and whenever it answers a
 *     scrape), so whichever worker a scrape reaches can answer for the instance, summed, and
 *     per worker;
 *   - the counters of workers that exited, folded in by the supervisor so that instance
 *     totals never go backwards when a worker is replaced;
 *   - the instance-wide limits: one fixed-size table (shtab.h) of client addresses
 *     (connections and a handshake token bucket per address) and users (sockets per user),
 *     counted per worker so that a dead worker's share is dropped exactly. The table is
 *     bounded (CG_SHARED_TABLE_SLOTS); when it is full, a new address or user is refused (429)
 *     and counted, as the per-process table does past its bound.
 * The table is guarded by one process-shared robust mutex: a worker killed while holding it
 * does not block the others (the next locker takes it over). Critical sections are a hash
 * lookup. Slots are written only by their worker (counters: plain aligned 64-bit stores, which
 * readers see whole) and by the supervisor while that worker is not running.
 * Pure: no lws, no hiredis. */
#ifndef CG_SHARED_H
#define CG_SHARED_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "codes.h"
#include "metrics.h"
#include "peers.h"
#include "shtab.h"

#define CG_SHARED_WORKERS_MAX 256
#define CG_SHARED_TABLE_SLOTS (1U << 17) /* addresses + users; 7/8 usable */
#define CG_SHARED_ALIVE_MS 3000          /* a worker whose heartbeat is older is not alive */

struct cg_shared_slot {
    int32_t pid; /* 0: no process in this slot */
    uint32_t restarts;
    uint64_t heartbeat_ms; /* CLOCK_MONOTONIC, set by the worker every 100 ms or so */
    uint64_t started_ms;
    uint64_t connections, users, subscriptions, instruments;
    int32_t redis_up[CG_LINK__COUNT];
    struct cg_metrics metrics; /* a copy of the worker's counters, at most 100 ms old */
} __attribute__((aligned(64)));

struct cg_shared {
    pthread_mutex_t lock; /* guards the table, retired and table_full */
    uint32_t nworkers;
    uint64_t started_ms;
    uint64_t table_full;       /* addresses or users refused because the table was full */
    struct cg_metrics retired; /* counters of workers that exited */
    /* the limits (copied from the configuration; 0 = none) */
    uint32_t max_conns_per_ip, max_sockets_per_user;
    double rate, burst;
    size_t bytes;
    struct cg_shared_slot *slots; /* nworkers, inside the region */
    struct cg_shtab *table;       /* inside the region */
};

/* Maps a region for nworkers workers with these limits. Returns it, or NULL with errno set. */
struct cg_shared *cg_shared_create(uint32_t nworkers, uint32_t max_conns_per_ip,
                                   uint32_t handshake_rate, uint32_t handshake_burst,
                                   uint32_t max_sockets_per_user);
/* Unmaps it (in this process). Accepts NULL. */
void cg_shared_destroy(struct cg_shared *sh);
uint64_t cg_shared_now_ms(void);

/* 1 when slot i has a process that beat within CG_SHARED_ALIVE_MS of now. */
int cg_shared_alive(const struct cg_shared *sh, uint32_t i, uint64_t now_ms);
/* The instance's counters: the retired ones plus every slot's. */
void cg_shared_sum(struct cg_shared *sh, struct cg_metrics *out);
/* Supervisor: worker i exited (not running now): its counters join the retired ones, its
 * slot and its table counts are zeroed (restarts kept). */
void cg_shared_worker_exited(struct cg_shared *sh, uint32_t i);

/* A handshake from addr on worker w: checks the address's connections (instance-wide) and
 * takes a handshake token; on CG_PEERS_OK one connection is counted for w at once (reserved
 * until cg_shared_addr_release). CG_PEERS_FULL: the table is full or addr is too long. */
enum cg_peers_result cg_shared_addr_acquire(struct cg_shared *sh, uint32_t w, const char *addr,
                                            uint64_t now_ms);
void cg_shared_addr_release(struct cg_shared *sh, uint32_t w, const char *addr, uint64_t now_ms);
/* One more socket of user on worker w unless the user holds max_sockets_per_user over the
 * instance (CG_PEERS_TOO_MANY) or the table is full (CG_PEERS_FULL). */
enum cg_peers_result cg_shared_user_acquire(struct cg_shared *sh, uint32_t w, const char *user);
void cg_shared_user_release(struct cg_shared *sh, uint32_t w, const char *user);
/* Instance-wide counts, for tests and /metrics. */
uint64_t cg_shared_addr_conns(struct cg_shared *sh, const char *addr);
uint64_t cg_shared_user_sockets(struct cg_shared *sh, const char *user);
/* Removes up to budget slots' worth of idle entries (no connection, bucket full again). */
void cg_shared_sweep(struct cg_shared *sh, uint64_t now_ms, uint32_t budget);

/* Appends the per-worker metric families (up, pid, connections, restarts) and the table's to
 * buf like snprintf at offset len: returns the new length (>= bufsz: too small). */
size_t cg_shared_render(struct cg_shared *sh, uint64_t now_ms, char *buf, size_t bufsz, size_t len);

#endif
