/* peers.h -- per-client-address accounting: open connections and handshake rate.
 *
 * One entry per address with a connection count and a token bucket of handshakes;
 * an entry goes when it holds no connection and its bucket is full again, so the
 * table is bounded by the connections plus the addresses that shook hands within
 * the last burst/rate seconds (and by max_entries, past which new addresses are
 * refused rather than remembered). Pure: no lws, no hiredis. */
#ifndef CG_PEERS_H
#define CG_PEERS_H

#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "map.h"

#define CG_PEERS_ADDR_MAX 63

struct cg_peers {
    struct cg_map map;  /* address -> struct cg_peer (peers.c) */
    uint32_t max_conns; /* per address; 0 = no limit */
    double rate, burst; /* handshakes per second per address; rate 0 = no limit */
    size_t max_entries;
};

enum cg_peers_result {
    CG_PEERS_OK = 0,
    CG_PEERS_TOO_MANY = -1, /* the address holds max_conns connections */
    CG_PEERS_RATE = -2,     /* the address is over its handshake rate */
    CG_PEERS_FULL = -3,     /* the table is full (or out of memory) */
};

void cg_peers_init(struct cg_peers *p, uint32_t max_conns, double rate, double burst,
                   size_t max_entries);
void cg_peers_finish(struct cg_peers *p);

/* A handshake from addr at now_ms: takes one token. Does not count a connection. */
enum cg_peers_result cg_peers_handshake(struct cg_peers *p, const char *addr, uint64_t now_ms);
/* A connection from addr was established / closed (pairs exactly). */
void cg_peers_opened(struct cg_peers *p, const char *addr, uint64_t now_ms);
void cg_peers_closed(struct cg_peers *p, const char *addr, uint64_t now_ms);
/* Forgets idle entries (no connection, full bucket). */
void cg_peers_sweep(struct cg_peers *p, uint64_t now_ms);
/* Connections currently counted for addr. */
uint32_t cg_peers_conns(const struct cg_peers *p, const char *addr);

#endif
