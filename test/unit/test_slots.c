/* test_slots.c -- hash slots, the slot map, redirections and routing keys. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "slots.h"

static uint16_t slot(const char *k)
{
    return cg_slots_of(k, strlen(k));
}

static void test_slot_of(void)
{
    /* Values from the Redis Cluster specification and redis-cli CLUSTER KEYSLOT. */
    CHECK(slot("123456789") == (0x31C3 & 16383));
    CHECK(slot("foo") == 12182);
    CHECK(slot("bar") == 5061);
    CHECK(slot("{user1000}.following") == slot("{user1000}.followers"));
    CHECK(slot("{user1000}.following") == slot("user1000"));
    CHECK(slot("foo{}{bar}") == cg_slots_of("foo{}{bar}", 10)); /* empty tag: whole key */
    CHECK(slot("foo{}{bar}") != slot("bar"));
    CHECK(slot("foo{{bar}}zap") == slot("{bar"));
    CHECK(slot("foo{bar}{zap}") == slot("bar"));
    CHECK(slot("{md:rb2501}:seq") == slot("md:rb2501"));
    CHECK(slot("{md:rb2501}:stream") == slot("md:rb2501"));
    CHECK(slot("no-close{tag") == cg_slots_of("no-close{tag", 12));
    CHECK(cg_slots_of("", 0) == 0);
    /* binary keys */
    CHECK(cg_slots_of("a\0b", 3) != cg_slots_of("a", 1));
}

static void test_map(void)
{
    static struct cg_slots m;
    cg_slots_init(&m);
    CHECK(cg_slots_unserved(&m) == CG_SLOTS_COUNT);
    CHECK(cg_slots_assign(&m, 0, 5460, "127.0.0.1", 7000) == 0);
    CHECK(cg_slots_assign(&m, 5461, 10922, "127.0.0.1", 7001) == 1);
    CHECK(cg_slots_assign(&m, 10923, 16383, "127.0.0.1", 7002) == 2);
    CHECK(cg_slots_unserved(&m) == 0);
    CHECK(m.owner[slot("foo")] == 2 && m.owner[slot("bar")] == 0);
    CHECK(cg_slots_assign(&m, 10, 9, "127.0.0.1", 7000) == -1);
    CHECK(cg_slots_assign(&m, 0, 16384, "127.0.0.1", 7000) == -1);
    CHECK(cg_slots_assign(&m, 0, 1, "127.0.0.1", 0) == -1);
    /* a failover: the replica's address is a new node; indexes of old ones stay */
    cg_slots_clear(&m);
    CHECK(cg_slots_unserved(&m) == CG_SLOTS_COUNT);
    CHECK(cg_slots_assign(&m, 0, 5460, "127.0.0.1", 7003) == 3);
    CHECK(cg_slots_assign(&m, 5461, 10922, "127.0.0.1", 7001) == 1);
    CHECK(cg_slots_unserved(&m) == 16384 - 10923);
    CHECK(cg_slots_node(&m, "127.0.0.1", 7002) == 2);
    char longhost[200];
    memset(longhost, 'h', sizeof(longhost) - 1);
    longhost[sizeof(longhost) - 1] = 0;
    CHECK(cg_slots_node(&m, longhost, 1) == -1);
    for (int p = 1; m.nnodes < CG_SLOTS_NODES_MAX; p++)
        CHECK(cg_slots_node(&m, "10.0.0.1", (uint32_t)p) >= 0);
    CHECK(cg_slots_node(&m, "10.0.0.2", 1) == -1);
    CHECK(cg_slots_node(&m, "127.0.0.1", 7000) == 0); /* known: still found */
}

static int redirect(const char *e, uint16_t *s, char *h, uint32_t *p)
{
    return cg_slots_redirect(e, strlen(e), s, h, p);
}

static void test_redirect(void)
{
    uint16_t s = 0;
    char h[CG_SLOTS_HOST_MAX + 1];
    uint32_t p = 0;
    CHECK(redirect("MOVED 3999 127.0.0.1:6381", &s, h, &p) == CG_SLOTS_MOVED);
    CHECK(s == 3999 && !strcmp(h, "127.0.0.1") && p == 6381);
    CHECK(redirect("ASK 16383 ::1:7000", &s, h, &p) == CG_SLOTS_ASK);
    CHECK(s == 16383 && !strcmp(h, "::1") && p == 7000);
    CHECK(redirect("MOVED 12 :7001", &s, h, &p) == CG_SLOTS_MOVED && !h[0] && p == 7001);
    CHECK(redirect("MOVED 16384 127.0.0.1:6381", &s, h, &p) == 0);
    CHECK(redirect("MOVED 1 127.0.0.1:0", &s, h, &p) == 0);
    CHECK(redirect("MOVED 1 127.0.0.1:65536", &s, h, &p) == 0);
    CHECK(redirect("MOVED 1 127.0.0.1:", &s, h, &p) == 0);
    CHECK(redirect("MOVED 1 127.0.0.1", &s, h, &p) == 0);
    CHECK(redirect("MOVED x 127.0.0.1:1", &s, h, &p) == 0);
    CHECK(redirect("MOVED  1 127.0.0.1:1", &s, h, &p) == 0);
    CHECK(redirect("TRYAGAIN Multiple keys request during rehashing", &s, h, &p) == 0);
    CHECK(redirect("ERR unknown", &s, h, &p) == 0);
    CHECK(redirect("", &s, h, &p) == 0);
}

static int key_index(int argc, const char *const *argv)
{
    size_t lens[8];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return cg_slots_key_index(argc, argv, lens);
}

static void test_key_index(void)
{
    const char *get[] = {"GET", "session:x"};
    CHECK(key_index(2, get) == 1);
    const char *fcall[] = {"fcall", "chartgate_publish", "1", "md:x", "tick"};
    CHECK(key_index(5, fcall) == 3);
    const char *fcall0[] = {"FCALL", "f", "0", "a"};
    CHECK(key_index(4, fcall0) == -1);
    const char *fl[] = {"FUNCTION", "LOAD", "REPLACE", "#!lua name=x"};
    CHECK(key_index(4, fl) == -1);
    const char *ping[] = {"PING"};
    CHECK(key_index(1, ping) == -1);
    const char *sp[] = {"SPUBLISH", "md:x", "1"};
    CHECK(key_index(3, sp) == 1);
    CHECK(cg_slots_key_index(0, NULL, NULL) == -1);
}

int main(void)
{
    test_slot_of();
    test_map();
    test_redirect();
    test_key_index();
    return check_summary("slots");
}
