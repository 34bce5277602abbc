/* supervisor.c -- the parent of --workers N: fork, restart with back-off, pass signals on. */
#include "supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

void cg_supervisor_policy_init(struct cg_supervisor_policy *p, uint32_t deaths_max,
                               uint64_t window_ms)
{
    memset(p, 0, sizeof(*p));
    p->deaths_max = deaths_max > CG_SUPERVISOR_DEATHS_MAX ? CG_SUPERVISOR_DEATHS_MAX : deaths_max;
    p->window_ms = window_ms;
}

int cg_supervisor_policy_death(struct cg_supervisor_policy *p, uint64_t now_ms)
{
    uint32_t size = p->deaths_max + 1;
    p->death_at[(p->head + p->ndeaths) % size] = now_ms;
    if (p->ndeaths < size)
        p->ndeaths++;
    else
        p->head = (p->head + 1) % size;
    /* Drop deaths that left the window. */
    while (p->ndeaths && now_ms - p->death_at[p->head] >= p->window_ms) {
        p->head = (p->head + 1) % size;
        p->ndeaths--;
    }
    return p->ndeaths > p->deaths_max;
}

uint64_t cg_supervisor_backoff_ms(uint32_t streak)
{
    uint64_t d = CG_SUPERVISOR_BACKOFF_BASE_MS;
    for (uint32_t i = 1; i < streak && d < CG_SUPERVISOR_BACKOFF_MAX_MS; i++)
        d *= 2;
    return d > CG_SUPERVISOR_BACKOFF_MAX_MS ? CG_SUPERVISOR_BACKOFF_MAX_MS : d;
}

uint32_t cg_supervisor_workers(const struct cg_config *cfg)
{
    if (cfg->workers)
        return cfg->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > CG_SHARED_WORKERS_MAX ? CG_SHARED_WORKERS_MAX : (uint32_t)n;
}

struct worker {
    pid_t pid;           /* 0: not running */
    uint64_t started_ms; /* of the running process */
    uint64_t restart_ms; /* when not running: when to start it */
    uint32_t streak;     /* consecutive quick deaths */
};

static struct {
    struct cg_config *cfg;
    struct cg_shared *sh;
    struct worker *w;
    uint32_t n;
    sigset_t old_mask;
    pid_t self;
} S;

void cg_supervisor_worker_ready(void)
{
    sigprocmask(SIG_SETMASK, &S.old_mask, NULL);
}

/* In the child: back to a plain process that libuv can give its own signal handlers. SIGTERM,
 * SIGINT and SIGHUP stay blocked until cg_supervisor_worker_ready(): one passed on before the
 * worker has its handlers waits instead of killing it (SIGHUP's default action is to exit). */
static void become_worker(uint32_t i)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != S.self) /* the supervisor died before prctl took effect */
        _exit(1);
    signal(SIGCHLD, SIG_DFL);
    sigset_t mask = S.old_mask;
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    char ctx[64];
    snprintf(ctx, sizeof(ctx), "worker=%u pid=%d", i, (int)getpid());
    cg_log_set_context(ctx);
    char id[sizeof(S.cfg->inbox_id)];
    snprintf(id, sizeof(id), "%.*s:w%u", (int)sizeof(id) - 16, S.cfg->inbox_id, i);
    memcpy(S.cfg->inbox_id, id, sizeof(id));
}

/* Forks worker i. Returns 1 in the child, 0 in the supervisor (also when fork failed: the
 * slot is then retried like a death). */
static int spawn(uint32_t i, uint64_t now)
{
    struct worker *w = &S.w[i];
    struct cg_shared_slot *slot = &S.sh->slots[i];
    slot->heartbeat_ms = 0;
    slot->started_ms = now;
    pid_t pid = fork();
    if (pid == 0) {
        slot->pid = (int32_t)getpid();
        become_worker(i);
        return 1;
    }
    if (pid < 0) {
        cg_log(CG_LOG_ERROR, "cannot fork a worker", "worker=%u error=\"%s\"", i, strerror(errno));
        w->pid = 0;
        w->streak++;
        w->restart_ms = now + cg_supervisor_backoff_ms(w->streak);
        return 0;
    }
    slot->pid = (int32_t)pid;
    w->pid = pid;
    w->started_ms = now;
    cg_log(CG_LOG_INFO, "worker started", "worker=%u pid=%d", i, (int)pid);
    return 0;
}

static uint32_t running(void)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < S.n; i++)
        n += S.w[i].pid != 0;
    return n;
}

static void signal_all(int sig)
{
    for (uint32_t i = 0; i < S.n; i++)
        if (S.w[i].pid)
            kill(S.w[i].pid, sig);
}

static void describe(int status, char *out, size_t outsz)
{
    if (WIFEXITED(status))
        snprintf(out, outsz, "status=%d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, outsz, "signal=%d", WTERMSIG(status));
    else
        snprintf(out, outsz, "wait_status=%d", status);
}

int cg_supervisor_run(struct cg_config *cfg, uint32_t nworkers, struct cg_shared **shared,
                      int *exit_code)
{
    static struct worker workers[CG_SHARED_WORKERS_MAX];
    static struct cg_supervisor_policy policy;
    *exit_code = 1;
    S.cfg = cfg;
    S.n = nworkers;
    S.w = workers;
    S.self = getpid();
    S.sh = cg_shared_create(nworkers, cfg->max_conns_per_ip, cfg->handshake_rate_per_ip,
                            cfg->handshake_burst_per_ip, cfg->max_sockets_per_user);
    if (!S.sh) {
        fprintf(stderr, "chartgate: --workers: cannot map the shared region: %s\n",
                strerror(errno));
        return -1;
    }
    *shared = S.sh;
    cg_supervisor_policy_init(&policy, cfg->worker_deaths_max,
                              (uint64_t)cfg->worker_deaths_window_s * 1000);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &S.old_mask);
    cg_log(CG_LOG_INFO, "supervisor started", "pid=%d workers=%u listen=%s:%u", (int)S.self,
           nworkers, cfg->listen_host, cfg->listen_port);
    uint64_t now = cg_shared_now_ms();
    for (uint32_t i = 0; i < nworkers; i++)
        if (spawn(i, now))
            return (int)i;

    int stopping = 0, giving_up = 0, killed = 0, unclean = 0;
    uint64_t stop_deadline = 0;
    for (;;) {
        /* Reap every worker that exited. */
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            now = cg_shared_now_ms();
            for (uint32_t i = 0; i < S.n; i++) {
                struct worker *w = &S.w[i];
                if (w->pid != pid)
                    continue;
                char how[48];
                describe(status, how, sizeof(how));
                w->pid = 0;
                cg_shared_worker_exited(S.sh, i);
                if (stopping) {
                    unclean |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
                    cg_log(CG_LOG_INFO, "worker stopped", "worker=%u pid=%d %s", i, (int)pid, how);
                    break;
                }
                w->streak = now - w->started_ms >= CG_SUPERVISOR_STABLE_MS ? 1 : w->streak + 1;
                uint64_t delay = cg_supervisor_backoff_ms(w->streak);
                w->restart_ms = now + delay;
                cg_log(CG_LOG_WARN, "worker died",
                       "worker=%u pid=%d %s uptime_ms=%llu "
                       "restart_in_ms=%llu",
                       i, (int)pid, how, (unsigned long long)(now - w->started_ms),
                       (unsigned long long)delay);
                if (cg_supervisor_policy_death(&policy, now) && !giving_up) {
                    cg_log(CG_LOG_ERROR, "workers keep dying: giving up",
                           "deaths=%u window_s=%u pid=%d", policy.ndeaths,
                           cfg->worker_deaths_window_s, (int)S.self);
                    giving_up = stopping = 1;
                    stop_deadline = now + CG_SUPERVISOR_STOP_MS;
                    signal_all(SIGTERM);
                }
                break;
            }
        }
        now = cg_shared_now_ms();
        if (stopping && !running())
            break;
        if (stopping && now >= stop_deadline && !killed) {
            cg_log(CG_LOG_ERROR, "workers did not stop in time: killing them", "pid=%d",
                   (int)S.self);
            signal_all(SIGKILL);
            killed = 1;
        }
        /* Start the workers whose back-off is over. */
        uint64_t next = stopping ? stop_deadline : now + 1000;
        for (uint32_t i = 0; i < S.n && !stopping; i++) {
            struct worker *w = &S.w[i];
            if (w->pid)
                continue;
            if (w->restart_ms <= now) {
                S.sh->slots[i].restarts++;
                if (spawn(i, now))
                    return (int)i;
                cg_log(CG_LOG_INFO, "worker restarted", "worker=%u pid=%d restarts=%u", i,
                       (int)w->pid, S.sh->slots[i].restarts);
            } else if (w->restart_ms < next) {
                next = w->restart_ms;
            }
        }
        uint64_t wait_ms = next > now ? next - now : 1;
        if (wait_ms > 1000)
            wait_ms = 1000;
        struct timespec ts = {(time_t)(wait_ms / 1000), (long)(wait_ms % 1000) * 1000000L};
        siginfo_t info;
        int sig = sigtimedwait(&set, &info, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            if (!stopping) {
                cg_log(CG_LOG_INFO, "supervisor shutting down", "signal=%d pid=%d workers=%u", sig,
                       (int)S.self, running());
                stopping = 1;
                stop_deadline = cg_shared_now_ms() + CG_SUPERVISOR_STOP_MS;
                signal_all(SIGTERM);
            }
        } else if (sig == SIGHUP) {
            cg_log(CG_LOG_INFO, "reload: passing SIGHUP on", "pid=%d workers=%u", (int)S.self,
                   running());
            signal_all(SIGHUP);
        }
    }
    *exit_code = giving_up || killed || unclean ? 1 : 0;
    cg_log(CG_LOG_INFO, "supervisor stopped", "pid=%d status=%d", (int)S.self, *exit_code);
    cg_shared_destroy(S.sh);
    *shared = NULL;
    return -1;
}
