/* shtab.c -- fixed-size linear-probing table with per-worker counts (see shtab.h). */
#include "shtab.h"

#include <string.h>

static size_t slot_size(uint32_t nworkers)
{
    size_t s = sizeof(struct cg_shtab_entry) + (size_t)nworkers * sizeof(uint32_t);
    return (s + 7) & ~(size_t)7;
}

static uint32_t round_cap(uint32_t cap)
{
    uint32_t c = 8;
    while (c < cap && c < (1U << 30))
        c <<= 1;
    return c;
}

static size_t header_size(void)
{
    return (sizeof(struct cg_shtab) + 7) & ~(size_t)7;
}

size_t cg_shtab_bytes(uint32_t cap, uint32_t nworkers)
{
    return header_size() + (size_t)round_cap(cap) * slot_size(nworkers);
}

struct cg_shtab *cg_shtab_init(void *mem, uint32_t cap, uint32_t nworkers)
{
    struct cg_shtab *t = mem;
    t->cap = round_cap(cap);
    t->nworkers = nworkers;
    t->count = 0;
    t->max_count = t->cap - t->cap / 8;
    t->sweep_at = 0;
    t->esize = (uint32_t)slot_size(nworkers);
    return t;
}

static struct cg_shtab_entry *at(const struct cg_shtab *t, uint32_t i)
{
    return (struct cg_shtab_entry *)((unsigned char *)t + header_size() + (size_t)i * t->esize);
}

static uint32_t index_of(const struct cg_shtab *t, const struct cg_shtab_entry *e)
{
    return (uint32_t)(((const unsigned char *)e - ((const unsigned char *)t + header_size())) /
                      t->esize);
}

/* FNV-1a, never 0 (0 marks an empty slot). */
static uint32_t hash(const char *key, size_t klen)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < klen; i++) {
        h ^= (unsigned char)key[i];
        h *= 16777619u;
    }
    return h ? h : 1;
}

/* The slot holding key, or the empty slot ending its probe chain (*found = 0). */
static uint32_t probe(const struct cg_shtab *t, const char *key, size_t klen, uint32_t h,
                      int *found)
{
    uint32_t mask = t->cap - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        struct cg_shtab_entry *e = at(t, i);
        if (!e->hash) {
            *found = 0;
            return i;
        }
        if (e->hash == h && e->klen == klen && !memcmp(e->key, key, klen)) {
            *found = 1;
            return i;
        }
    }
}

struct cg_shtab_entry *cg_shtab_find(struct cg_shtab *t, const char *key, size_t klen)
{
    if (klen > CG_SHTAB_KEY_MAX)
        return NULL;
    int found;
    uint32_t i = probe(t, key, klen, hash(key, klen), &found);
    return found ? at(t, i) : NULL;
}

struct cg_shtab_entry *cg_shtab_add(struct cg_shtab *t, const char *key, size_t klen)
{
    if (klen > CG_SHTAB_KEY_MAX)
        return NULL;
    int found;
    uint32_t h = hash(key, klen);
    uint32_t i = probe(t, key, klen, h, &found);
    struct cg_shtab_entry *e = at(t, i);
    if (found)
        return e;
    if (t->count >= t->max_count)
        return NULL; /* the probe loop relies on at least one empty slot */
    memset(e, 0, t->esize);
    e->hash = h;
    e->klen = (uint32_t)klen;
    memcpy(e->key, key, klen);
    t->count++;
    return e;
}

void cg_shtab_del(struct cg_shtab *t, struct cg_shtab_entry *e)
{
    uint32_t mask = t->cap - 1;
    uint32_t hole = index_of(t, e);
    e->hash = 0;
    t->count--;
    /* Backward shift: an entry after the hole moves into it unless its home slot lies
     * cyclically in (hole, j], where it can still be found without crossing the hole. */
    for (uint32_t j = (hole + 1) & mask;; j = (j + 1) & mask) {
        struct cg_shtab_entry *n = at(t, j);
        if (!n->hash)
            return;
        uint32_t home = n->hash & mask;
        int stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (stays)
            continue;
        memcpy(at(t, hole), n, t->esize);
        n->hash = 0;
        hole = j;
    }
}

uint64_t cg_shtab_total(const struct cg_shtab *t, const struct cg_shtab_entry *e)
{
    uint64_t s = 0;
    for (uint32_t w = 0; w < t->nworkers; w++)
        s += e->conns[w];
    return s;
}

uint32_t cg_shtab_sweep(struct cg_shtab *t, uint32_t budget,
                        int (*idle)(const struct cg_shtab_entry *e, void *arg), void *arg)
{
    uint32_t removed = 0, i = t->sweep_at & (t->cap - 1);
    for (uint32_t n = 0; n < budget && t->count; n++) {
        struct cg_shtab_entry *e = at(t, i);
        if (e->hash && idle(e, arg)) {
            cg_shtab_del(t, e);
            removed++;
            continue; /* another entry may have moved into slot i */
        }
        i = (i + 1) & (t->cap - 1);
    }
    t->sweep_at = i;
    return removed;
}

void cg_shtab_clear_worker(struct cg_shtab *t, uint32_t worker)
{
    if (worker >= t->nworkers)
        return;
    for (uint32_t i = 0; i < t->cap; i++) {
        struct cg_shtab_entry *e = at(t, i);
        if (e->hash)
            e->conns[worker] = 0;
    }
}
