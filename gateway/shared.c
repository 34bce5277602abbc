/* shared.c -- the memory the workers of one instance share: slots, summed counters, limits. */
#include "shared.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

_Static_assert(sizeof(struct cg_metrics) % sizeof(uint64_t) == 0,
               "struct cg_metrics must be made of uint64_t counters only (summed as an array)");

#define KIND_ADDR 'a'
#define KIND_USER 'u'

uint64_t cg_shared_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

struct cg_shared *cg_shared_create(uint32_t nworkers, uint32_t max_conns_per_ip,
                                   uint32_t handshake_rate, uint32_t handshake_burst,
                                   uint32_t max_sockets_per_user)
{
    if (!nworkers || nworkers > CG_SHARED_WORKERS_MAX) {
        errno = EINVAL;
        return NULL;
    }
    size_t head = align64(sizeof(struct cg_shared));
    size_t slots = align64(sizeof(struct cg_shared_slot) * nworkers);
    size_t bytes = head + slots + cg_shtab_bytes(CG_SHARED_TABLE_SLOTS, nworkers);
    /* Anonymous shared pages are zero and only take memory once touched. */
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return NULL;
    struct cg_shared *sh = mem;
    pthread_mutexattr_t ma;
    int rc = pthread_mutexattr_init(&ma);
    if (!rc)
        rc = pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    if (!rc)
        rc = pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    if (!rc)
        rc = pthread_mutex_init(&sh->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    if (rc) {
        munmap(mem, bytes);
        errno = rc;
        return NULL;
    }
    sh->nworkers = nworkers;
    sh->started_ms = cg_shared_now_ms();
    sh->max_conns_per_ip = max_conns_per_ip;
    sh->max_sockets_per_user = max_sockets_per_user;
    sh->rate = handshake_rate;
    sh->burst = handshake_burst < 1 ? 1 : handshake_burst;
    sh->bytes = bytes;
    sh->slots = (struct cg_shared_slot *)((unsigned char *)mem + head);
    sh->table = cg_shtab_init((unsigned char *)mem + head + slots, CG_SHARED_TABLE_SLOTS, nworkers);
    return sh;
}

void cg_shared_destroy(struct cg_shared *sh)
{
    if (sh)
        munmap(sh, sh->bytes);
}

/* Takes the lock; when its last holder died holding it, takes it over (the table may hold
 * that worker's half-done update of one entry's counts, corrected when the supervisor clears
 * the dead worker's counts). */
static void lock(struct cg_shared *sh)
{
    if (pthread_mutex_lock(&sh->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&sh->lock);
}

static void unlock(struct cg_shared *sh)
{
    pthread_mutex_unlock(&sh->lock);
}

int cg_shared_alive(const struct cg_shared *sh, uint32_t i, uint64_t now_ms)
{
    const struct cg_shared_slot *s = &sh->slots[i];
    uint64_t hb = s->heartbeat_ms;
    return s->pid > 0 && hb && (now_ms < hb || now_ms - hb < CG_SHARED_ALIVE_MS);
}

static void add(struct cg_metrics *into, const struct cg_metrics *from)
{
    uint64_t *d = (uint64_t *)into;
    const volatile uint64_t *s = (const volatile uint64_t *)from;
    for (size_t i = 0; i < sizeof(*into) / sizeof(uint64_t); i++)
        d[i] += s[i];
}

void cg_shared_sum(struct cg_shared *sh, struct cg_metrics *out)
{
    lock(sh); /* against a fold of an exited worker's counters: none counted twice or lost */
    *out = sh->retired;
    for (uint32_t i = 0; i < sh->nworkers; i++)
        add(out, &sh->slots[i].metrics);
    unlock(sh);
}

void cg_shared_worker_exited(struct cg_shared *sh, uint32_t i)
{
    struct cg_shared_slot *s = &sh->slots[i];
    lock(sh);
    add(&sh->retired, &s->metrics);
    uint32_t restarts = s->restarts;
    memset(s, 0, sizeof(*s));
    s->restarts = restarts;
    cg_shtab_clear_worker(sh->table, i);
    unlock(sh);
}

static size_t make_key(char *key, char kind, const char *s)
{
    size_t n = strlen(s);
    if (n >= CG_SHTAB_KEY_MAX)
        return 0;
    key[0] = kind;
    memcpy(key + 1, s, n);
    return n + 1;
}

static void refill(const struct cg_shared *sh, struct cg_shtab_entry *e, uint64_t now)
{
    if (now > e->refill_ms)
        e->tokens += (double)(now - e->refill_ms) * sh->rate / 1000.0;
    if (e->tokens > sh->burst)
        e->tokens = sh->burst;
    e->refill_ms = now;
}

static int idle(const struct cg_shtab_entry *e, void *arg)
{
    const struct cg_shared *sh = ((void **)arg)[0];
    uint64_t now = *(const uint64_t *)((void **)arg)[1];
    struct cg_shtab_entry tmp = *e; /* the bucket as of now, without writing */
    refill(sh, &tmp, now);
    return !cg_shtab_total(sh->table, e) &&
           (e->key[0] != KIND_ADDR || !sh->rate || tmp.tokens >= sh->burst);
}

enum cg_peers_result cg_shared_addr_acquire(struct cg_shared *sh, uint32_t w, const char *addr,
                                            uint64_t now_ms)
{
    if (!sh->max_conns_per_ip && !sh->rate)
        return CG_PEERS_OK;
    char key[CG_SHTAB_KEY_MAX];
    size_t klen = make_key(key, KIND_ADDR, addr);
    enum cg_peers_result r = CG_PEERS_OK;
    lock(sh);
    struct cg_shtab_entry *e = klen ? cg_shtab_find(sh->table, key, klen) : NULL;
    if (!e && klen && (e = cg_shtab_add(sh->table, key, klen))) {
        e->tokens = sh->burst;
        e->refill_ms = now_ms;
    }
    if (!e) {
        sh->table_full++;
        r = CG_PEERS_FULL;
    } else {
        refill(sh, e, now_ms);
        if (sh->max_conns_per_ip && cg_shtab_total(sh->table, e) >= sh->max_conns_per_ip)
            r = CG_PEERS_TOO_MANY;
        else if (sh->rate && e->tokens < 1.0)
            r = CG_PEERS_RATE;
        if (r == CG_PEERS_OK) {
            if (sh->rate)
                e->tokens -= 1.0;
            e->conns[w]++;
        }
    }
    unlock(sh);
    return r;
}

void cg_shared_addr_release(struct cg_shared *sh, uint32_t w, const char *addr, uint64_t now_ms)
{
    if (!sh->max_conns_per_ip && !sh->rate)
        return;
    char key[CG_SHTAB_KEY_MAX];
    size_t klen = make_key(key, KIND_ADDR, addr);
    if (!klen)
        return;
    lock(sh);
    struct cg_shtab_entry *e = cg_shtab_find(sh->table, key, klen);
    if (e && e->conns[w]) {
        e->conns[w]--;
        refill(sh, e, now_ms);
        void *arg[2] = {sh, &now_ms};
        if (idle(e, arg))
            cg_shtab_del(sh->table, e);
    }
    unlock(sh);
}

enum cg_peers_result cg_shared_user_acquire(struct cg_shared *sh, uint32_t w, const char *user)
{
    if (!sh->max_sockets_per_user)
        return CG_PEERS_OK;
    char key[CG_SHTAB_KEY_MAX];
    size_t klen = make_key(key, KIND_USER, user);
    enum cg_peers_result r = CG_PEERS_OK;
    lock(sh);
    struct cg_shtab_entry *e = klen ? cg_shtab_add(sh->table, key, klen) : NULL;
    if (!e) {
        sh->table_full++;
        r = CG_PEERS_FULL;
    } else if (cg_shtab_total(sh->table, e) >= sh->max_sockets_per_user) {
        r = CG_PEERS_TOO_MANY;
    } else {
        e->conns[w]++;
    }
    unlock(sh);
    return r;
}

void cg_shared_user_release(struct cg_shared *sh, uint32_t w, const char *user)
{
    if (!sh->max_sockets_per_user)
        return;
    char key[CG_SHTAB_KEY_MAX];
    size_t klen = make_key(key, KIND_USER, user);
    if (!klen)
        return;
    lock(sh);
    struct cg_shtab_entry *e = cg_shtab_find(sh->table, key, klen);
    if (e && e->conns[w] && !--e->conns[w] && !cg_shtab_total(sh->table, e))
        cg_shtab_del(sh->table, e);
    unlock(sh);
}

static uint64_t count(struct cg_shared *sh, char kind, const char *s)
{
    char key[CG_SHTAB_KEY_MAX];
    size_t klen = make_key(key, kind, s);
    if (!klen)
        return 0;
    lock(sh);
    struct cg_shtab_entry *e = cg_shtab_find(sh->table, key, klen);
    uint64_t n = e ? cg_shtab_total(sh->table, e) : 0;
    unlock(sh);
    return n;
}

uint64_t cg_shared_addr_conns(struct cg_shared *sh, const char *addr)
{
    return count(sh, KIND_ADDR, addr);
}

uint64_t cg_shared_user_sockets(struct cg_shared *sh, const char *user)
{
    return count(sh, KIND_USER, user);
}

void cg_shared_sweep(struct cg_shared *sh, uint64_t now_ms, uint32_t budget)
{
    void *arg[2] = {sh, &now_ms};
    lock(sh);
    cg_shtab_sweep(sh->table, budget, idle, arg);
    unlock(sh);
}

size_t cg_shared_render(struct cg_shared *sh, uint64_t now_ms, char *buf, size_t bufsz, size_t len)
{
    struct cg_metrics_text o = {buf, bufsz, len};
    cg_metrics_printf(&o,
                      "# HELP chartgate_workers Worker processes configured (--workers).\n"
                      "# TYPE chartgate_workers gauge\nchartgate_workers %u\n",
                      sh->nworkers);
    cg_metrics_printf(
        &o, "# HELP chartgate_worker_up 1 while the worker runs and beats; pid labels it.\n"
            "# TYPE chartgate_worker_up gauge\n");
    for (uint32_t i = 0; i < sh->nworkers; i++)
        cg_metrics_printf(&o, "chartgate_worker_up{worker=\"%u\",pid=\"%d\"} %d\n", i,
                          (int)sh->slots[i].pid, cg_shared_alive(sh, i, now_ms));
    cg_metrics_printf(&o,
                      "# HELP chartgate_worker_connections Open WebSocket connections, by worker.\n"
                      "# TYPE chartgate_worker_connections gauge\n");
    for (uint32_t i = 0; i < sh->nworkers; i++)
        cg_metrics_printf(&o, "chartgate_worker_connections{worker=\"%u\"} %llu\n", i,
                          (unsigned long long)sh->slots[i].connections);
    cg_metrics_printf(
        &o, "# HELP chartgate_worker_restarts_total Times the supervisor restarted the worker.\n"
            "# TYPE chartgate_worker_restarts_total counter\n");
    for (uint32_t i = 0; i < sh->nworkers; i++)
        cg_metrics_printf(&o, "chartgate_worker_restarts_total{worker=\"%u\"} %u\n", i,
                          sh->slots[i].restarts);
    lock(sh);
    uint32_t used = sh->table->count, cap = sh->table->max_count;
    uint64_t full = sh->table_full;
    unlock(sh);
    cg_metrics_printf(
        &o,
        "# HELP chartgate_limits_table_entries Addresses and users in the shared limits "
        "table.\n# TYPE chartgate_limits_table_entries gauge\n"
        "chartgate_limits_table_entries %u\n"
        "# HELP chartgate_limits_table_capacity Entries the shared limits table can hold.\n"
        "# TYPE chartgate_limits_table_capacity gauge\nchartgate_limits_table_capacity %u\n"
        "# HELP chartgate_limits_table_full_total Handshakes refused because the shared "
        "limits table was full.\n# TYPE chartgate_limits_table_full_total counter\n"
        "chartgate_limits_table_full_total %llu\n",
        used, cap, (unsigned long long)full);
    return o.len;
}
