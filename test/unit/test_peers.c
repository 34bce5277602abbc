/* test_peers.c -- per-address connection counts and handshake buckets (gateway/peers.h). */
#include "check.h"

#include "peers.h"

static void test_connections(void)
{
    struct cg_peers p;
    cg_peers_init(&p, 2, 0, 1, 100);
    CHECK_INT(cg_peers_handshake(&p, "10.0.0.1", 0), CG_PEERS_OK);
    cg_peers_opened(&p, "10.0.0.1", 0);
    CHECK_INT(cg_peers_handshake(&p, "10.0.0.1", 0), CG_PEERS_OK);
    cg_peers_opened(&p, "10.0.0.1", 0);
    CHECK_UINT(cg_peers_conns(&p, "10.0.0.1"), 2);
    /* A third is refused; another address is not affected. */
    CHECK_INT(cg_peers_handshake(&p, "10.0.0.1", 0), CG_PEERS_TOO_MANY);
    CHECK_INT(cg_peers_handshake(&p, "10.0.0.2", 0), CG_PEERS_OK);
    cg_peers_closed(&p, "10.0.0.1", 10);
    CHECK_UINT(cg_peers_conns(&p, "10.0.0.1"), 1);
    CHECK_INT(cg_peers_handshake(&p, "10.0.0.1", 10), CG_PEERS_OK);
    /* Closing what is not counted does nothing (never below zero). */
    cg_peers_closed(&p, "10.0.0.9", 10);
    cg_peers_closed(&p, "10.0.0.1", 10);
    cg_peers_closed(&p, "10.0.0.1", 10);
    CHECK_UINT(cg_peers_conns(&p, "10.0.0.1"), 0);
    /* Idle entries go at the sweep; 10.0.0.2 never opened, so it goes too. */
    cg_peers_sweep(&p, 20);
    CHECK_UINT(p.map.count, 0);
    cg_peers_finish(&p);
}

static void test_rate(void)
{
    struct cg_peers p;
    cg_peers_init(&p, 0, 2, 3, 100); /* 2/s, burst 3 */
    for (int i = 0; i < 3; i++)
        CHECK_INT(cg_peers_handshake(&p, "a", 1000), CG_PEERS_OK);
    CHECK_INT(cg_peers_handshake(&p, "a", 1000), CG_PEERS_RATE);
    CHECK_INT(cg_peers_handshake(&p, "a", 1499), CG_PEERS_RATE); /* 0.998 token */
    CHECK_INT(cg_peers_handshake(&p, "a", 1500), CG_PEERS_OK);   /* one token back */
    CHECK_INT(cg_peers_handshake(&p, "a", 1500), CG_PEERS_RATE);
    /* The bucket refills to the burst, not beyond. */
    for (int i = 0; i < 3; i++)
        CHECK_INT(cg_peers_handshake(&p, "a", 100000), CG_PEERS_OK);
    CHECK_INT(cg_peers_handshake(&p, "a", 100000), CG_PEERS_RATE);
    /* An entry stays until its bucket is full again, then the sweep forgets it. */
    cg_peers_sweep(&p, 100100);
    CHECK_UINT(p.map.count, 1);
    cg_peers_sweep(&p, 102000);
    CHECK_UINT(p.map.count, 0);
    cg_peers_finish(&p);
}

static void test_bounds(void)
{
    struct cg_peers p;
    /* No limits: nothing is even remembered. */
    cg_peers_init(&p, 0, 0, 1, 100);
    CHECK_INT(cg_peers_handshake(&p, "a", 0), CG_PEERS_OK);
    CHECK_UINT(p.map.count, 0);
    cg_peers_finish(&p);
    /* A full table refuses new addresses rather than growing. */
    cg_peers_init(&p, 10, 0, 1, 2);
    CHECK_INT(cg_peers_handshake(&p, "a", 0), CG_PEERS_OK);
    cg_peers_opened(&p, "a", 0);
    CHECK_INT(cg_peers_handshake(&p, "b", 0), CG_PEERS_OK);
    cg_peers_opened(&p, "b", 0);
    CHECK_INT(cg_peers_handshake(&p, "c", 0), CG_PEERS_FULL);
    CHECK_INT(cg_peers_handshake(&p, "a", 0), CG_PEERS_OK); /* known ones still work */
    /* An address longer than any IP is refused. */
    char longaddr[100];
    memset(longaddr, '1', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = 0;
    cg_peers_closed(&p, "a", 0);
    cg_peers_sweep(&p, 0);
    CHECK_INT(cg_peers_handshake(&p, longaddr, 0), CG_PEERS_FULL);
    cg_peers_finish(&p);
}

int main(void)
{
    test_connections();
    test_rate();
    test_bounds();
    return check_summary("peers");
}
