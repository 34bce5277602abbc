/* map.h -- string-keyed hash map with intrusive nodes (chaining, power-of-two buckets).
 *
 * The map never owns keys or elements: a struct cg_map_node is embedded in the
 * element and its key pointer must stay valid while the node is in the map
 * (elements usually hold their key inline). Lookups are by (key, length), so keys
 * need not be NUL-terminated. Used for instruments, users and session caches. */
#ifndef CG_MAP_H
#define CG_MAP_H

#include <stddef.h>
#include <stdint.h>

struct cg_map_node {
    struct cg_map_node *next;
    const char *key;
    size_t klen;
    uint64_t hash;
};

struct cg_map {
    struct cg_map_node **buckets;
    size_t nbuckets; /* power of two, 0 before the first insert */
    size_t count;
};

/* Initialises an empty map; cannot fail (buckets are allocated on first insert). */
void cg_map_init(struct cg_map *m);
/* Frees the bucket array; elements are the caller's. Accepts a zeroed map. */
void cg_map_finish(struct cg_map *m);
/* Returns the node for key, or NULL. */
struct cg_map_node *cg_map_get(const struct cg_map *m, const char *key, size_t klen);
/* Inserts node with the given key (borrowed, must outlive the entry). The key must
 * not already be present. Returns 0, or -1 on allocation failure (map unchanged). */
int cg_map_put(struct cg_map *m, struct cg_map_node *node, const char *key, size_t klen);
/* Removes node (which must be in m). */
void cg_map_del(struct cg_map *m, struct cg_map_node *node);
/* Calls fn on every node; fn may delete the node it is given. */
void cg_map_each(struct cg_map *m, void (*fn)(struct cg_map_node *, void *), void *arg);
uint64_t cg_map_hash(const char *key, size_t klen);

#endif
