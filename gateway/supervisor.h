/* supervisor.h -- --workers N: the parent that forks the workers and keeps them running.
 *
 * The supervisor maps the shared region (shared.h), forks N workers before any loop, Redis
 * link or lws context exists, and then only waits for signals: it holds no socket and no Redis
 * link. A worker that dies is restarted in its slot (same index, so same inbox processing
 * list) after a back-off that doubles with each quick death of that slot; a worker that ran
 * for CG_SUPERVISOR_STABLE_MS starts again from the base delay. More than deaths_max deaths
 * (all slots together) within window_ms: the supervisor logs why, stops the others and exits
 * 1. SIGTERM/SIGINT are passed to every worker (each closes its sockets with 1001 and exits
 * 0); the supervisor exits 0 once all have exited 0 (1 if one had to be killed after
 * CG_SUPERVISOR_STOP_MS). SIGHUP is passed on (TLS and password reload). Workers get SIGTERM
 * if the supervisor itself dies (PR_SET_PDEATHSIG). */
#ifndef CG_SUPERVISOR_H
#define CG_SUPERVISOR_H

#include <stdint.h>

#include "config.h"
#include "shared.h"

#define CG_SUPERVISOR_BACKOFF_BASE_MS 100
#define CG_SUPERVISOR_BACKOFF_MAX_MS 10000
#define CG_SUPERVISOR_STABLE_MS 30000
#define CG_SUPERVISOR_STOP_MS 10000 /* workers exit within 5 s of SIGTERM; then SIGKILL */
#define CG_SUPERVISOR_DEATHS_MAX 1000

/* The restart policy, pure. */
struct cg_supervisor_policy {
    uint32_t deaths_max; /* more than this many deaths within window_ms: give up */
    uint64_t window_ms;
    uint64_t death_at[CG_SUPERVISOR_DEATHS_MAX + 1]; /* ring of recent death times */
    uint32_t ndeaths, head;
};

void cg_supervisor_policy_init(struct cg_supervisor_policy *p, uint32_t deaths_max,
                               uint64_t window_ms);
/* Records a death at now_ms; returns 1 when the deaths within the window exceed the limit. */
int cg_supervisor_policy_death(struct cg_supervisor_policy *p, uint64_t now_ms);
/* Delay before restarting a slot after its streak-th consecutive quick death (streak >= 1):
 * base * 2^(streak-1), capped. */
uint64_t cg_supervisor_backoff_ms(uint32_t streak);

/* In a worker, once its signal handlers are installed: lets SIGTERM, SIGINT and SIGHUP in (they
 * wait, blocked, from the fork until then). */
void cg_supervisor_worker_ready(void);

/* The number of workers --workers asks for: cfg->workers, or the online CPUs for "auto". */
uint32_t cg_supervisor_workers(const struct cg_config *cfg);

/* Runs the supervisor for nworkers (>= 2... or 1 when asked for explicitly through auto on one
 * CPU) workers. Returns in each worker its index (>= 0), with *shared set and cfg->inbox_id
 * made the worker's own ("<inbox-id>:w<index>"). Returns -1 in the supervisor when it is done,
 * with *exit_code set. */
int cg_supervisor_run(struct cg_config *cfg, uint32_t nworkers, struct cg_shared **shared,
                      int *exit_code);

#endif
