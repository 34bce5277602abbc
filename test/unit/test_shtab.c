/* test_shtab.c -- the fixed-size shared table (gateway/shtab.h): probing, backward-shift
 * deletion against a model, bounds, per-worker counts and sweeping. */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>

#include "shtab.h"

static struct cg_shtab *make(uint32_t cap, uint32_t nworkers)
{
    void *mem = calloc(1, cg_shtab_bytes(cap, nworkers));
    return cg_shtab_init(mem, cap, nworkers);
}

static struct cg_shtab_entry *find_s(struct cg_shtab *t, const char *k)
{
    return cg_shtab_find(t, k, strlen(k));
}

static struct cg_shtab_entry *add_s(struct cg_shtab *t, const char *k)
{
    return cg_shtab_add(t, k, strlen(k));
}

static void test_basic(void)
{
    struct cg_shtab *t = make(16, 3);
    CHECK_UINT(t->cap, 16);
    CHECK_UINT(t->max_count, 14);
    CHECK(!find_s(t, "a1.2.3.4"));
    struct cg_shtab_entry *e = add_s(t, "a1.2.3.4");
    CHECK(e != NULL);
    e->conns[2] = 5;
    e->conns[0] = 1;
    CHECK_UINT(cg_shtab_total(t, e), 6);
    CHECK(add_s(t, "a1.2.3.4") == e); /* adding an existing key finds it */
    CHECK(find_s(t, "a1.2.3.4") == e);
    CHECK_UINT(t->count, 1);
    /* Keys are exact: a prefix or a longer key is another key. */
    CHECK(!find_s(t, "a1.2.3."));
    CHECK(!find_s(t, "a1.2.3.45"));
    cg_shtab_clear_worker(t, 2);
    CHECK_UINT(cg_shtab_total(t, find_s(t, "a1.2.3.4")), 1);
    cg_shtab_del(t, find_s(t, "a1.2.3.4"));
    CHECK(!find_s(t, "a1.2.3.4"));
    CHECK_UINT(t->count, 0);
    /* Too long a key is refused, the longest one fits. */
    char k[CG_SHTAB_KEY_MAX + 2];
    memset(k, 'x', sizeof(k));
    CHECK(!cg_shtab_add(t, k, CG_SHTAB_KEY_MAX + 1));
    CHECK(cg_shtab_add(t, k, CG_SHTAB_KEY_MAX) != NULL);
    free(t);
}

static void test_full(void)
{
    struct cg_shtab *t = make(8, 1);
    char k[16];
    for (int i = 0; i < 7; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        CHECK(add_s(t, k) != NULL);
    }
    CHECK(!add_s(t, "another")); /* 7/8 used: full, and lookups of absent keys still end */
    CHECK(!find_s(t, "another"));
    CHECK(add_s(t, "k3") != NULL); /* known keys still found */
    cg_shtab_del(t, find_s(t, "k3"));
    CHECK(add_s(t, "another") != NULL);
    free(t);
}

/* Random adds and deletes on a small table (long probe chains, wrap-around) against a model:
 * every key present is found, every key absent is not. */
static void test_model(void)
{
    enum { KEYS = 200, CAP = 256 };
    struct cg_shtab *t = make(CAP, 2);
    int present[KEYS] = {0};
    uint32_t n = 0;
    srand(7);
    char k[16];
    for (int step = 0; step < 200000; step++) {
        int i = rand() % KEYS;
        snprintf(k, sizeof(k), "u%d", i);
        if (present[i]) {
            struct cg_shtab_entry *e = find_s(t, k);
            if (!CHECK(e != NULL) || !CHECK_UINT(e->conns[1], (uint32_t)i))
                break;
            cg_shtab_del(t, e);
            present[i] = 0;
            n--;
        } else {
            struct cg_shtab_entry *e = add_s(t, k);
            if (n >= t->max_count) {
                CHECK(e == NULL);
                continue;
            }
            if (!CHECK(e != NULL))
                break;
            e->conns[1] = (uint32_t)i;
            present[i] = 1;
            n++;
        }
        if (step % 1000 == 0) {
            for (int j = 0; j < KEYS; j++) {
                snprintf(k, sizeof(k), "u%d", j);
                if (!CHECK((find_s(t, k) != NULL) == present[j]))
                    break;
            }
            CHECK_UINT(t->count, n);
        }
    }
    free(t);
}

static int idle_if_zero(const struct cg_shtab_entry *e, void *arg)
{
    (void)arg;
    return e->conns[0] == 0;
}

static void test_sweep(void)
{
    struct cg_shtab *t = make(64, 1);
    char k[16];
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        add_s(t, k)->conns[0] = (uint32_t)(i % 2);
    }
    /* A budget smaller than the table takes several sweeps; together they remove every idle
     * entry and nothing else. */
    uint32_t removed = 0;
    for (int i = 0; i < 8; i++)
        removed += cg_shtab_sweep(t, 16, idle_if_zero, NULL);
    CHECK_UINT(removed, 20);
    CHECK_UINT(t->count, 20);
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        CHECK((find_s(t, k) != NULL) == (i % 2));
    }
    free(t);
}

int main(void)
{
    test_basic();
    test_full();
    test_model();
    test_sweep();
    return check_summary("shtab");
}
