/* map.c -- string-keyed hash map with intrusive nodes (see map.h). */
#include "map.h"

#include <stdlib.h>
#include <string.h>

void cg_map_init(struct cg_map *m)
{
    m->buckets = NULL;
    m->nbuckets = 0;
    m->count = 0;
}

void cg_map_finish(struct cg_map *m)
{
    free(m->buckets);
    cg_map_init(m);
}

/* FNV-1a: keys are short identifiers (instrument names, user ids), not attacker-chosen
 * in bulk beyond what the per-socket limits allow, so a keyed hash buys little here. */
uint64_t cg_map_hash(const char *key, size_t klen)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < klen; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ULL;
    }
    return h;
}

struct cg_map_node *cg_map_get(const struct cg_map *m, const char *key, size_t klen)
{
    if (!m->nbuckets)
        return NULL;
    uint64_t h = cg_map_hash(key, klen);
    for (struct cg_map_node *n = m->buckets[h & (m->nbuckets - 1)]; n; n = n->next)
        if (n->hash == h && n->klen == klen && !memcmp(n->key, key, klen))
            return n;
    return NULL;
}

static int grow(struct cg_map *m)
{
    size_t nb = m->nbuckets ? m->nbuckets * 2 : 16;
    struct cg_map_node **b = calloc(nb, sizeof(*b));
    if (!b)
        return -1;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct cg_map_node *n = m->buckets[i], *next;
        for (; n; n = next) {
            next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
    return 0;
}

int cg_map_put(struct cg_map *m, struct cg_map_node *node, const char *key, size_t klen)
{
    if (m->count >= m->nbuckets && grow(m) && !m->nbuckets)
        return -1; /* a failed grow of a non-empty map only lengthens chains */
    node->key = key;
    node->klen = klen;
    node->hash = cg_map_hash(key, klen);
    struct cg_map_node **b = &m->buckets[node->hash & (m->nbuckets - 1)];
    node->next = *b;
    *b = node;
    m->count++;
    return 0;
}

void cg_map_del(struct cg_map *m, struct cg_map_node *node)
{
    struct cg_map_node **p = &m->buckets[node->hash & (m->nbuckets - 1)];
    for (; *p; p = &(*p)->next) {
        if (*p == node) {
            *p = node->next;
            node->next = NULL;
            m->count--;
            return;
        }
    }
}

void cg_map_each(struct cg_map *m, void (*fn)(struct cg_map_node *, void *), void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct cg_map_node *n = m->buckets[i], *next;
        for (; n; n = next) {
            next = n->next;
            fn(n, arg);
        }
    }
}
