/* test_map.c -- unit tests of the intrusive string hash map (gateway/map.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "map.h"

struct item {
    struct cg_map_node node;
    int value;
    int seen;
    char key[16];
};

#define NITEMS 1000

static struct item *item_of(struct cg_map_node *n)
{
    return n ? (struct item *)((char *)n - offsetof(struct item, node)) : NULL;
}

static void test_empty(void)
{
    struct cg_map m;
    cg_map_init(&m);
    CHECK(m.buckets == NULL);
    CHECK_UINT(m.nbuckets, 0);
    CHECK_UINT(m.count, 0);
    CHECK(cg_map_get(&m, "a", 1) == NULL);
    CHECK(cg_map_get(&m, "", 0) == NULL);
    cg_map_finish(&m);
    CHECK(m.buckets == NULL);

    struct cg_map z;
    memset(&z, 0, sizeof(z)); /* finish accepts a zeroed map */
    cg_map_finish(&z);
    CHECK_UINT(z.count, 0);
}

static void test_hash(void)
{
    /* FNV-1a 64 reference values. */
    CHECK_UINT(cg_map_hash("", 0), 0xcbf29ce484222325ULL);
    CHECK_UINT(cg_map_hash("a", 1), 0xaf63dc4c8601ec8cULL);
    CHECK_UINT(cg_map_hash("foobar", 6), 0x85944171f73967e8ULL);
    char a[] = "rb2501", b[] = "rb2501xyz";
    CHECK_UINT(cg_map_hash(a, 6), cg_map_hash(b, 6)); /* by bytes, not by pointer or NUL */
    CHECK(cg_map_hash("ab", 2) != cg_map_hash("ba", 2));
}

static void count_cb(struct cg_map_node *n, void *arg)
{
    item_of(n)->seen++;
    (*(size_t *)arg)++;
}

static void del_cb(struct cg_map_node *n, void *arg)
{
    cg_map_del(arg, n);
}

static void test_put_get_del(void)
{
    static struct item items[NITEMS];
    struct cg_map m;
    cg_map_init(&m);
    for (int i = 0; i < NITEMS; i++) {
        items[i].value = i;
        snprintf(items[i].key, sizeof(items[i].key), "k%d", i);
        if (!CHECK_INT(cg_map_put(&m, &items[i].node, items[i].key, strlen(items[i].key)), 0))
            return;
        CHECK_UINT(m.count, (size_t)i + 1);
    }
    CHECK(m.nbuckets >= m.count);
    CHECK((m.nbuckets & (m.nbuckets - 1)) == 0); /* power of two */
    int found = 0;
    for (int i = 0; i < NITEMS; i++) {
        struct item *it = item_of(cg_map_get(&m, items[i].key, strlen(items[i].key)));
        found += it == &items[i];
    }
    CHECK_INT(found, NITEMS);
    CHECK(cg_map_get(&m, "k1000", 5) == NULL);
    CHECK(cg_map_get(&m, "k", 1) == NULL);
    CHECK(cg_map_get(&m, "", 0) == NULL);

    /* Keys need not be NUL-terminated: "k12" with length 2 is "k1". */
    CHECK(item_of(cg_map_get(&m, "k12", 2)) == &items[1]);
    CHECK(item_of(cg_map_get(&m, "k12", 3)) == &items[12]);

    /* The node keeps the caller's key pointer. */
    CHECK_PTR(items[7].node.key, items[7].key);
    CHECK_UINT(items[7].node.klen, 2);

    size_t visited = 0;
    cg_map_each(&m, count_cb, &visited);
    CHECK_UINT(visited, NITEMS);
    int once = 0;
    for (int i = 0; i < NITEMS; i++)
        once += items[i].seen == 1;
    CHECK_INT(once, NITEMS);

    /* Delete every even key; odd keys stay reachable. */
    for (int i = 0; i < NITEMS; i += 2)
        cg_map_del(&m, &items[i].node);
    CHECK_UINT(m.count, NITEMS / 2);
    int ok = 0;
    for (int i = 0; i < NITEMS; i++) {
        struct cg_map_node *n = cg_map_get(&m, items[i].key, strlen(items[i].key));
        ok += (i % 2) ? item_of(n) == &items[i] : n == NULL;
    }
    CHECK_INT(ok, NITEMS);

    /* A deleted node can go back in. */
    CHECK_INT(cg_map_put(&m, &items[4].node, items[4].key, strlen(items[4].key)), 0);
    CHECK(item_of(cg_map_get(&m, "k4", 2)) == &items[4]);
    CHECK_UINT(m.count, NITEMS / 2 + 1);

    /* each() may delete the node it is given. */
    cg_map_each(&m, del_cb, &m);
    CHECK_UINT(m.count, 0);
    CHECK(cg_map_get(&m, "k1", 2) == NULL);
    CHECK(cg_map_get(&m, "k4", 2) == NULL);
    cg_map_finish(&m);
    CHECK(m.buckets == NULL);
    CHECK_UINT(m.nbuckets, 0);
}

static void test_binary_keys(void)
{
    static struct item a, b, c;
    struct cg_map m;
    cg_map_init(&m);
    memcpy(a.key, "a\0b", 3);
    memcpy(b.key, "a\0c", 3);
    memcpy(c.key, "a", 1);
    CHECK_INT(cg_map_put(&m, &a.node, a.key, 3), 0);
    CHECK_INT(cg_map_put(&m, &b.node, b.key, 3), 0);
    CHECK_INT(cg_map_put(&m, &c.node, c.key, 1), 0);
    CHECK(item_of(cg_map_get(&m, "a\0b", 3)) == &a);
    CHECK(item_of(cg_map_get(&m, "a\0c", 3)) == &b);
    CHECK(item_of(cg_map_get(&m, "a", 1)) == &c);
    CHECK(cg_map_get(&m, "a\0d", 3) == NULL);
    cg_map_del(&m, &b.node);
    CHECK(item_of(cg_map_get(&m, "a\0b", 3)) == &a);
    CHECK(cg_map_get(&m, "a\0c", 3) == NULL);
    CHECK_UINT(m.count, 2);
    cg_map_finish(&m);
}

int main(void)
{
    test_empty();
    test_hash();
    test_put_get_del();
    test_binary_keys();
    return check_summary("map");
}
