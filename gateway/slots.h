/* slots.h -- Redis Cluster's key space: hash slots, the slot map, redirections, routing keys.
 *
 * A key (or a sharded channel) belongs to one of 16384 slots: CRC16 (XMODEM) of the key, or of
 * the part between the first '{' and the next '}' when that part is not empty (a hash tag), mod
 * 16384. Keys that must live on one node (a list and its processing list, a function's keys and
 * its channel) share a tag. The slot map says which node serves each slot; nodes are numbered in
 * the order they were first seen, and a node keeps its number for the life of the map, so the
 * caller can index its own per-node state (links) by it. Pure: neither lws nor hiredis. */
#ifndef CG_SLOTS_H
#define CG_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#define CG_SLOTS_COUNT 16384
#define CG_SLOTS_NODES_MAX 64 /* masters one gateway can address */
#define CG_SLOTS_NONE 0xffff  /* a slot no node serves (yet) */
#define CG_SLOTS_HOST_MAX 127

struct cg_slots_node {
    char host[CG_SLOTS_HOST_MAX + 1];
    uint32_t port;
};

struct cg_slots {
    uint16_t owner[CG_SLOTS_COUNT]; /* node index, or CG_SLOTS_NONE */
    struct cg_slots_node nodes[CG_SLOTS_NODES_MAX];
    size_t nnodes; /* nodes ever seen; a node no slot points to any more stays numbered */
};

/* The slot of the len bytes at key. Cannot fail. */
uint16_t cg_slots_of(const char *key, size_t len);

/* Empties the map (no slot served, no node known). */
void cg_slots_init(struct cg_slots *m);
/* Every slot unserved, nodes kept (a new CLUSTER SLOTS answer is about to be applied). */
void cg_slots_clear(struct cg_slots *m);
/* The index of host:port, added when new. Returns -1 when host is too long or the table is full. */
int cg_slots_node(struct cg_slots *m, const char *host, uint32_t port);
/* Slots from..to (inclusive) are served by host:port. Returns the node's index, or -1 (bad range,
 * or cg_slots_node failed: the map is unchanged). */
int cg_slots_assign(struct cg_slots *m, uint32_t from, uint32_t to, const char *host,
                    uint32_t port);
/* Slots served by no node. */
size_t cg_slots_unserved(const struct cg_slots *m);

/* A redirection error: "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" (the host may
 * be an IPv6 address, or empty: "the node that answered", which the caller fills in). Returns 1
 * for MOVED, 2 for ASK, 0 for anything else (other errors, malformed text). */
#define CG_SLOTS_MOVED 1
#define CG_SLOTS_ASK 2
int cg_slots_redirect(const char *err, size_t len, uint16_t *slot, char host[CG_SLOTS_HOST_MAX + 1],
                      uint32_t *port);

/* The index in argv of the key a command is routed by: FCALL, FCALL_RO, EVAL, EVALSHA: the first
 * declared key (none declared: -1); FUNCTION, SCRIPT, PING, CLUSTER and the like: -1 (no key:
 * any node, or every node); every other command: argv[1] (-1 when argc < 2). Names are matched
 * without regard to case. */
int cg_slots_key_index(int argc, const char *const *argv, const size_t *lens);

#endif
