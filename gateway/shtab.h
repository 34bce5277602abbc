/* shtab.h -- a fixed-size, open-addressing table of counted keys in caller-provided memory.
 *
 * Built to live in memory shared by the worker processes of one instance (shared.c), so it
 * holds no pointer: entries are found by index, keys are stored inline, and the table never
 * allocates. Each entry carries one connection count per worker (so that the counts of a worker
 * that died can be taken away exactly) and a token bucket (tokens, refill time) for rate limits.
 * Linear probing with backward-shift deletion: no tombstones, so probe chains stay as short as
 * the live load allows. At most 7/8 of the slots are used; past that cg_shtab_add() refuses new
 * keys. Not locked: the caller serialises every call. Pure: no lws, no hiredis. */
#ifndef CG_SHTAB_H
#define CG_SHTAB_H

#include <stddef.h>
#include <stdint.h>

#define CG_SHTAB_KEY_MAX 136 /* bytes of a key: a kind byte and a 128-byte user id fit */

struct cg_shtab_entry {
    uint32_t hash; /* 0: the slot is empty (stored hashes are never 0) */
    uint32_t klen;
    double tokens;      /* token bucket, owned by the caller's policy */
    uint64_t refill_ms; /* when tokens were last refilled */
    char key[CG_SHTAB_KEY_MAX];
    uint32_t conns[]; /* one count per worker */
};

struct cg_shtab {
    uint32_t cap;       /* slots, a power of two */
    uint32_t nworkers;  /* counts per entry */
    uint32_t count;     /* used slots */
    uint32_t max_count; /* 7/8 of cap */
    uint32_t sweep_at;  /* next slot cg_shtab_sweep() looks at */
    uint32_t esize;     /* bytes per slot */
    /* the slots follow, 8-byte aligned */
};

/* Bytes needed for a table of cap slots (rounded up to a power of two, at least 8) with
 * nworkers counts per entry, header included. */
size_t cg_shtab_bytes(uint32_t cap, uint32_t nworkers);
/* Initialises an empty table in mem (cg_shtab_bytes(cap, nworkers) bytes, zeroed). */
struct cg_shtab *cg_shtab_init(void *mem, uint32_t cap, uint32_t nworkers);

/* The entry holding key (klen bytes), or NULL. Valid until the next add/del/sweep. */
struct cg_shtab_entry *cg_shtab_find(struct cg_shtab *t, const char *key, size_t klen);
/* The entry holding key, added (zeroed counts and bucket) when missing. NULL when the key is
 * longer than CG_SHTAB_KEY_MAX or the table is full. Valid until the next add/del/sweep. */
struct cg_shtab_entry *cg_shtab_add(struct cg_shtab *t, const char *key, size_t klen);
/* Removes e (from find/add); other entries may move. */
void cg_shtab_del(struct cg_shtab *t, struct cg_shtab_entry *e);
/* Sum of e's per-worker counts. */
uint64_t cg_shtab_total(const struct cg_shtab *t, const struct cg_shtab_entry *e);

/* Looks at up to budget slots from where the previous sweep stopped (wrapping) and removes
 * every entry for which idle(e, arg) is true. Returns the number removed. */
uint32_t cg_shtab_sweep(struct cg_shtab *t, uint32_t budget,
                        int (*idle)(const struct cg_shtab_entry *e, void *arg), void *arg);
/* Zeroes worker's count in every entry (a worker that died held nothing any more). */
void cg_shtab_clear_worker(struct cg_shtab *t, uint32_t worker);

#endif
