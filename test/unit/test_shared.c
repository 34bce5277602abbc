/* test_shared.c -- the region the workers of --workers N share (gateway/shared.h): instance-wide
 * limits counted per worker, a dead worker's share dropped, counters summed and folded, the
 * table's bound, and the lock surviving a process that died holding it. Real processes
 * (fork) where crossing processes is the point. */
#include "check.h"

#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared.h"

static void test_addr_limits(void)
{
    struct cg_shared *sh = cg_shared_create(2, 3, 0, 1, 0);
    if (!CHECK(sh != NULL))
        return;
    /* Three connections from one address over two workers: the fourth is refused on both. */
    CHECK_INT(cg_shared_addr_acquire(sh, 0, "10.0.0.1", 0), CG_PEERS_OK);
    CHECK_INT(cg_shared_addr_acquire(sh, 1, "10.0.0.1", 0), CG_PEERS_OK);
    CHECK_INT(cg_shared_addr_acquire(sh, 1, "10.0.0.1", 0), CG_PEERS_OK);
    CHECK_UINT(cg_shared_addr_conns(sh, "10.0.0.1"), 3);
    CHECK_INT(cg_shared_addr_acquire(sh, 0, "10.0.0.1", 0), CG_PEERS_TOO_MANY);
    CHECK_INT(cg_shared_addr_acquire(sh, 1, "10.0.0.1", 0), CG_PEERS_TOO_MANY);
    CHECK_INT(cg_shared_addr_acquire(sh, 0, "10.0.0.2", 0), CG_PEERS_OK);
    /* A release frees a place; releasing what a worker does not hold changes nothing. */
    cg_shared_addr_release(sh, 0, "10.0.0.1", 0);
    cg_shared_addr_release(sh, 0, "10.0.0.1", 0);
    CHECK_UINT(cg_shared_addr_conns(sh, "10.0.0.1"), 2);
    CHECK_INT(cg_shared_addr_acquire(sh, 0, "10.0.0.1", 0), CG_PEERS_OK);
    /* Worker 1 dies: its two are gone from the count. */
    cg_shared_worker_exited(sh, 1);
    CHECK_UINT(cg_shared_addr_conns(sh, "10.0.0.1"), 1);
    /* An entry with no connection left goes at once (no rate limit to remember). */
    cg_shared_addr_release(sh, 0, "10.0.0.1", 0);
    cg_shared_addr_release(sh, 0, "10.0.0.2", 0);
    CHECK_UINT(sh->table->count, 0);
    cg_shared_destroy(sh);
}

static void test_rate(void)
{
    struct cg_shared *sh = cg_shared_create(2, 0, 10, 2, 0); /* 10/s, burst 2 */
    if (!CHECK(sh != NULL))
        return;
    CHECK_INT(cg_shared_addr_acquire(sh, 0, "a", 1000), CG_PEERS_OK);
    CHECK_INT(cg_shared_addr_acquire(sh, 1, "a", 1000), CG_PEERS_OK);
    CHECK_INT(cg_shared_addr_acquire(sh, 0, "a", 1000), CG_PEERS_RATE); /* the bucket is shared */
    CHECK_INT(cg_shared_addr_acquire(sh, 1, "a", 1100), CG_PEERS_OK);   /* 100 ms: one token */
    CHECK_INT(cg_shared_addr_acquire(sh, 1, "a", 1100), CG_PEERS_RATE);
    cg_shared_addr_release(sh, 0, "a", 1100);
    cg_shared_addr_release(sh, 1, "a", 1100);
    cg_shared_addr_release(sh, 1, "a", 1100);
    /* No connection, but the bucket is not full yet: kept until the sweep finds it full. */
    CHECK_UINT(sh->table->count, 1);
    cg_shared_sweep(sh, 1150, 1U << 20);
    CHECK_UINT(sh->table->count, 1);
    cg_shared_sweep(sh, 1400, 1U << 20);
    CHECK_UINT(sh->table->count, 0);
    cg_shared_destroy(sh);
}

static void test_users(void)
{
    struct cg_shared *sh = cg_shared_create(3, 0, 0, 1, 2);
    if (!CHECK(sh != NULL))
        return;
    CHECK_INT(cg_shared_user_acquire(sh, 0, "alice"), CG_PEERS_OK);
    CHECK_INT(cg_shared_user_acquire(sh, 2, "alice"), CG_PEERS_OK);
    CHECK_INT(cg_shared_user_acquire(sh, 1, "alice"), CG_PEERS_TOO_MANY);
    CHECK_INT(cg_shared_user_acquire(sh, 1, "bob"), CG_PEERS_OK);
    CHECK_UINT(cg_shared_user_sockets(sh, "alice"), 2);
    /* Users and addresses are separate keys even when they are spelled alike. */
    CHECK_UINT(cg_shared_addr_conns(sh, "alice"), 0);
    cg_shared_user_release(sh, 2, "alice");
    CHECK_INT(cg_shared_user_acquire(sh, 1, "alice"), CG_PEERS_OK);
    cg_shared_user_release(sh, 0, "alice");
    cg_shared_user_release(sh, 1, "alice");
    cg_shared_user_release(sh, 1, "bob");
    CHECK_UINT(sh->table->count, 0);
    /* With no per-user limit nothing is counted at all. */
    struct cg_shared *none = cg_shared_create(2, 0, 0, 1, 0);
    CHECK_INT(cg_shared_user_acquire(none, 0, "alice"), CG_PEERS_OK);
    CHECK_UINT(none->table->count, 0);
    cg_shared_destroy(none);
    cg_shared_destroy(sh);
}

static void test_full(void)
{
    struct cg_shared *sh = cg_shared_create(2, 0, 0, 1, 5);
    if (!CHECK(sh != NULL))
        return;
    char u[32];
    uint32_t i = 0, refused = 0;
    for (; i < CG_SHARED_TABLE_SLOTS && !refused; i++) {
        snprintf(u, sizeof(u), "user%u", i);
        refused = cg_shared_user_acquire(sh, i % 2, u) == CG_PEERS_FULL;
    }
    /* Full at 7/8 of the slots: a new user is refused and counted, a known one still counts. */
    CHECK(refused);
    CHECK_UINT(i - 1, sh->table->max_count);
    CHECK_UINT(sh->table_full, 1);
    CHECK_INT(cg_shared_user_acquire(sh, 0, "user7"), CG_PEERS_OK);
    CHECK_UINT(cg_shared_user_sockets(sh, "user7"), 2);
    /* A worker gone frees nothing by itself (the other's users stay), but its counts are 0. */
    cg_shared_worker_exited(sh, 1);
    CHECK_UINT(cg_shared_user_sockets(sh, "user7"), 1);
    cg_shared_destroy(sh);
}

static void test_counters(void)
{
    struct cg_shared *sh = cg_shared_create(2, 0, 0, 1, 0);
    if (!CHECK(sh != NULL))
        return;
    sh->slots[0].metrics.handshakes = 5;
    sh->slots[1].metrics.handshakes = 7;
    sh->slots[1].metrics.rejections[1] = 2;
    sh->slots[1].pid = 4242;
    sh->slots[1].restarts = 3;
    struct cg_metrics sum;
    cg_shared_sum(sh, &sum);
    CHECK_UINT(sum.handshakes, 12);
    CHECK_UINT(sum.rejections[1], 2);
    /* Worker 1 exits: the instance's totals stay (folded), its slot is empty again. */
    cg_shared_worker_exited(sh, 1);
    CHECK_UINT(sh->slots[1].pid, 0);
    CHECK_UINT(sh->slots[1].metrics.handshakes, 0);
    CHECK_UINT(sh->slots[1].restarts, 3);
    sh->slots[1].metrics.handshakes = 1; /* its successor */
    cg_shared_sum(sh, &sum);
    CHECK_UINT(sum.handshakes, 13);
    CHECK_UINT(sum.rejections[1], 2);
    /* Liveness: a pid and a recent heartbeat. */
    sh->slots[0].pid = 1;
    sh->slots[0].heartbeat_ms = 10000;
    CHECK(cg_shared_alive(sh, 0, 10000 + CG_SHARED_ALIVE_MS - 1));
    CHECK(!cg_shared_alive(sh, 0, 10000 + CG_SHARED_ALIVE_MS));
    CHECK(!cg_shared_alive(sh, 1, 10000));
    char buf[4096];
    size_t n = cg_shared_render(sh, 10000, buf, sizeof(buf), 0);
    CHECK(n < sizeof(buf));
    CHECK(strstr(buf, "chartgate_worker_up{worker=\"0\",pid=\"1\"} 1\n") != NULL);
    CHECK(strstr(buf, "chartgate_worker_restarts_total{worker=\"1\"} 3\n") != NULL);
    CHECK(strstr(buf, "chartgate_workers 2\n") != NULL);
    /* Asked with no room it reports the length it needs, like snprintf. */
    CHECK_UINT(cg_shared_render(sh, 10000, NULL, 0, 0), n);
    cg_shared_destroy(sh);
}

/* Two processes: what a child counts is seen by the parent, and a child that dies holding the
 * lock does not block the parent. */
static void test_processes(void)
{
    struct cg_shared *sh = cg_shared_create(2, 10, 0, 1, 0);
    if (!CHECK(sh != NULL))
        return;
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 4; i++)
            cg_shared_addr_acquire(sh, 1, "10.1.1.1", 0);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK_UINT(cg_shared_addr_conns(sh, "10.1.1.1"), 4);
    pid = fork();
    if (pid == 0) {
        pthread_mutex_lock(&sh->lock);
        kill(getpid(), SIGKILL);
        _exit(1);
    }
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    CHECK_INT(cg_shared_addr_acquire(sh, 0, "10.1.1.1", 0), CG_PEERS_OK); /* not blocked */
    CHECK_UINT(cg_shared_addr_conns(sh, "10.1.1.1"), 5);
    cg_shared_worker_exited(sh, 1);
    CHECK_UINT(cg_shared_addr_conns(sh, "10.1.1.1"), 1);
    cg_shared_destroy(sh);
}

int main(void)
{
    test_addr_limits();
    test_rate();
    test_users();
    test_full();
    test_counters();
    test_processes();
    return check_summary("shared");
}
