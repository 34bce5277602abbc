/* test_registry.c -- unit tests of members, users, instruments and subscriptions
 * (gateway/registry.h): hooks, atomicity, limits, persistence of instruments. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "registry.h"

/* Every hook call, as "+i:name" / "-i:name" / "+u:id" / "-u:id", space-separated. */
static char events[8192];
static void *hook_data_seen;

static void on_instrument(void *data, struct cg_instrument *inst, int active)
{
    hook_data_seen = data;
    size_t n = strlen(events);
    snprintf(events + n, sizeof(events) - n, "%s%ci:%s", n ? " " : "", active ? '+' : '-',
             inst->name);
}

static void on_user(void *data, struct cg_user *user, int active)
{
    hook_data_seen = data;
    size_t n = strlen(events);
    snprintf(events + n, sizeof(events) - n, "%s%cu:%s", n ? " " : "", active ? '+' : '-',
             user->id);
}

static int hook_cookie;
static const struct cg_registry_hooks hooks = {on_instrument, on_user, NULL, &hook_cookie};

/* Checks the events since the last call, then forgets them. */
static void expect_events(const char *want, int line)
{
    check_mem_(events, strlen(events), want, __FILE__, line, "hook events");
    events[0] = 0;
}

#define EVENTS(want) expect_events((want), __LINE__)

static struct cg_instrument *inst(struct cg_registry *r, const char *name)
{
    return cg_registry_instrument(r, name, strlen(name), 0);
}

static int subscribed(struct cg_registry *r, const struct cg_member *m, const char *name)
{
    struct cg_instrument *in = inst(r, name);
    return in && cg_registry_find_sub(m, in) != NULL;
}

/* The member's subscriptions as "a b c" in subscription order. */
static const char *subs_of(const struct cg_member *m)
{
    static char buf[4096];
    buf[0] = 0;
    for (const struct cg_list *it = m->subs.next; it != &m->subs; it = it->next) {
        const struct cg_sub *s = CG_CONTAINER_OF(it, struct cg_sub, member_link);
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? " " : "", s->inst->name);
    }
    return buf;
}

static void test_join_leave_users(void)
{
    struct cg_registry r;
    struct cg_member m1, m2, m3;
    int o1, o2, o3;
    events[0] = 0;
    cg_registry_init(&r, &hooks, 100);
    CHECK(cg_registry_user(&r, "u1") == NULL);

    CHECK_INT(cg_registry_join(&r, &m1, &o1, "u1"), CG_REG_OK);
    EVENTS("+u:u1");
    CHECK_PTR(hook_data_seen, &hook_cookie);
    CHECK_PTR(m1.owner, &o1);
    struct cg_user *u1 = cg_registry_user(&r, "u1");
    if (!CHECK(u1 != NULL))
        return;
    CHECK_PTR(m1.user, u1);
    CHECK_STR(u1->id, "u1");
    CHECK_UINT(u1->nmembers, 1);
    CHECK_INT(cg_registry_join(&r, &m2, &o2, "u1"), CG_REG_OK); /* second tab: no hook */
    EVENTS("");
    CHECK_UINT(u1->nmembers, 2);
    CHECK_INT(cg_registry_join(&r, &m3, &o3, "u2"), CG_REG_OK);
    EVENTS("+u:u2");
    CHECK_UINT(r.nmembers, 3);
    CHECK_UINT(r.users.count, 2);

    /* r.members lists every joined member, in join order. */
    struct cg_member *want[] = {&m1, &m2, &m3};
    int i = 0, ok = 0;
    for (struct cg_list *it = r.members.next; it != &r.members; it = it->next, i++)
        ok += i < 3 && CG_CONTAINER_OF(it, struct cg_member, all_link) == want[i];
    CHECK_INT(i, 3);
    CHECK_INT(ok, 3);

    cg_registry_leave(&r, &m1); /* u1 still has m2 */
    EVENTS("");
    CHECK(m1.user == NULL);
    CHECK_UINT(u1->nmembers, 1);
    CHECK_PTR(cg_registry_user(&r, "u1"), u1);
    cg_registry_leave(&r, &m1); /* leaving twice is harmless */
    EVENTS("");
    CHECK_UINT(r.nmembers, 2);
    cg_registry_leave(&r, &m2); /* last socket of u1 */
    EVENTS("-u:u1");
    CHECK(cg_registry_user(&r, "u1") == NULL);
    CHECK_UINT(r.users.count, 1);
    /* The user comes back: the hook fires again. */
    CHECK_INT(cg_registry_join(&r, &m1, &o1, "u1"), CG_REG_OK);
    EVENTS("+u:u1");
    cg_registry_leave(&r, &m1);
    cg_registry_leave(&r, &m3);
    EVENTS("-u:u1 -u:u2");
    CHECK_UINT(r.nmembers, 0);
    CHECK_UINT(r.users.count, 0);
    CHECK(r.members.next == &r.members);

    /* A member that never joined, zeroed: leave is a no-op. */
    struct cg_member z;
    memset(&z, 0, sizeof(z));
    cg_registry_leave(&r, &z);
    EVENTS("");
    /* A failed join (user id longer than 128 bytes) leaves a member safe to leave. */
    char longid[200];
    memset(longid, 'u', 129);
    longid[129] = 0;
    CHECK_INT(cg_registry_join(&r, &z, &o1, longid), CG_REG_NOMEM);
    CHECK(z.user == NULL);
    cg_registry_leave(&r, &z);
    EVENTS("");
    CHECK_UINT(r.nmembers, 0);
    cg_registry_finish(&r);
}

static void test_subscribe_hooks(void)
{
    struct cg_registry r;
    struct cg_member m1, m2;
    events[0] = 0;
    cg_registry_init(&r, &hooks, 100);
    cg_registry_join(&r, &m1, NULL, "u1");
    cg_registry_join(&r, &m2, NULL, "u2");
    EVENTS("+u:u1 +u:u2");

    const char *n1[] = {"rb2501", "au2412"};
    CHECK_INT(cg_registry_subscribe(&r, &m1, n1, 2, 200), CG_REG_OK);
    EVENTS("+i:rb2501 +i:au2412");
    CHECK_UINT(m1.nsubs, 2);
    CHECK_UINT(r.nsubs, 2);
    CHECK_UINT(r.nactive, 2);
    CHECK_STR(subs_of(&m1), "rb2501 au2412");
    struct cg_instrument *rb = inst(&r, "rb2501");
    if (!CHECK(rb != NULL))
        return;
    CHECK_STR(rb->name, "rb2501");
    CHECK_UINT(rb->nsubs, 1);
    CHECK_UINT(rb->seq, 0);
    CHECK_INT(rb->known, 0);
    struct cg_sub *s = cg_registry_find_sub(&m1, rb);
    if (CHECK(s != NULL)) {
        CHECK_PTR(s->inst, rb);
        CHECK_PTR(s->member, &m1);
        CHECK_UINT(rb->fan[s->index].slot, 0);
        CHECK_PTR(rb->fan[s->index].sub, s);
    }
    CHECK(cg_registry_find_sub(&m2, rb) == NULL);
    CHECK(subscribed(&r, &m1, "au2412"));
    CHECK(!subscribed(&r, &m2, "au2412"));
    CHECK(!subscribed(&r, &m1, "never-seen"));

    /* A second subscriber: no hook. */
    const char *n2[] = {"rb2501"};
    CHECK_INT(cg_registry_subscribe(&r, &m2, n2, 1, 200), CG_REG_OK);
    EVENTS("");
    CHECK_UINT(rb->nsubs, 2);
    CHECK_UINT(r.nactive, 2);
    CHECK_UINT(r.nsubs, 3);
    /* The instrument's subscriber list holds both. */
    CHECK(rb->fan[0].member == &m1 && rb->fan[1].member == &m2);
    CHECK_UINT(rb->fan[0].sub->index, 0);
    CHECK_UINT(rb->fan[1].sub->index, 1);
    /* A pending snapshot holds live ticks back, through the fan-out's own copy of the flag. */
    cg_registry_hold(rb->fan[1].sub, 1);
    CHECK_UINT(rb->fan[1].held, 1);
    CHECK_UINT(rb->fan[0].held, 0);
    cg_registry_hold(rb->fan[1].sub, 0);
    CHECK_UINT(rb->fan[1].held, 0);
    /* So does the overlay flag; a subscription's fan entry is new: no overlays. */
    cg_registry_want_overlays(rb->fan[0].sub, 1);
    CHECK_UINT(rb->fan[0].overlays, 1);
    CHECK_UINT(rb->fan[1].overlays, 0);
    cg_registry_want_overlays(rb->fan[0].sub, 0);
    CHECK_UINT(rb->fan[0].overlays, 0);

    /* Re-subscribing is a no-op that succeeds. */
    CHECK_INT(cg_registry_subscribe(&r, &m1, n1, 2, 2), CG_REG_OK);
    EVENTS("");
    CHECK_UINT(m1.nsubs, 2);
    CHECK_UINT(r.nsubs, 3);

    /* The last subscriber leaving fires the hook; the instrument and its seq stay. */
    rb->seq = 41;
    cg_registry_unsubscribe(&r, &m1, n2, 1);
    EVENTS("");
    CHECK_UINT(rb->nsubs, 1);
    cg_registry_unsubscribe(&r, &m2, n2, 1);
    EVENTS("-i:rb2501");
    CHECK_UINT(r.nactive, 1);
    CHECK_UINT(r.nsubs, 1);
    CHECK_PTR(inst(&r, "rb2501"), rb);
    CHECK_UINT(rb->nsubs, 0);
    CHECK_INT(cg_registry_subscribe(&r, &m2, n2, 1, 200), CG_REG_OK);
    EVENTS("+i:rb2501");
    CHECK_PTR(inst(&r, "rb2501"), rb);
    CHECK_UINT(rb->seq, 41);

    /* Unsubscribing what the member does not have: nothing happens. */
    const char *unknown[] = {"never-seen", "rb2501", "au2412"};
    cg_registry_unsubscribe(&r, &m2, unknown, 1);     /* unknown instrument */
    cg_registry_unsubscribe(&r, &m2, unknown + 2, 1); /* known, subscribed by m1 only */
    EVENTS("");
    CHECK(inst(&r, "never-seen") == NULL); /* not created */
    CHECK_STR(subs_of(&m1), "au2412");
    CHECK_STR(subs_of(&m2), "rb2501");
    CHECK_UINT(r.nsubs, 2);
    /* Unsubscribe takes a mix: drops only what it holds. */
    cg_registry_unsubscribe(&r, &m2, unknown, 3);
    EVENTS("-i:rb2501");
    CHECK_STR(subs_of(&m2), "");
    CHECK_STR(subs_of(&m1), "au2412");
    /* An empty request changes nothing. */
    CHECK_INT(cg_registry_subscribe(&r, &m2, NULL, 0, 200), CG_REG_OK);
    cg_registry_unsubscribe(&r, &m2, NULL, 0);
    EVENTS("");

    cg_registry_leave(&r, &m1);
    cg_registry_leave(&r, &m2);
    EVENTS("-i:au2412 -u:u1 -u:u2");
    CHECK_UINT(r.nsubs, 0);
    CHECK_UINT(r.nactive, 0);
    cg_registry_finish(&r);
}

static void test_duplicates_and_limit(void)
{
    struct cg_registry r;
    struct cg_member m;
    events[0] = 0;
    cg_registry_init(&r, &hooks, 100);
    cg_registry_join(&r, &m, NULL, "u");
    EVENTS("+u:u");

    /* Duplicates within one request count once, against the limit too. */
    const char *dup[] = {"a", "a", "b", "a", "b"};
    CHECK_INT(cg_registry_subscribe(&r, &m, dup, 5, 2), CG_REG_OK);
    EVENTS("+i:a +i:b");
    CHECK_UINT(m.nsubs, 2);
    CHECK_STR(subs_of(&m), "a b");
    CHECK_UINT(inst(&r, "a")->nsubs, 1);

    /* Already subscribed + new: only the new ones count. */
    const char *more[] = {"a", "b", "c"};
    CHECK_INT(cg_registry_subscribe(&r, &m, more, 3, 3), CG_REG_OK);
    EVENTS("+i:c");
    CHECK_UINT(m.nsubs, 3);

    /* Over the limit: TOO_MANY and nothing changes, not even the instrument table. */
    size_t ninst = r.instruments.count;
    const char *over[] = {"d", "a", "e", "d"};
    CHECK_INT(cg_registry_subscribe(&r, &m, over, 4, 4), CG_REG_TOO_MANY);
    EVENTS("");
    CHECK_UINT(m.nsubs, 3);
    CHECK_UINT(r.nsubs, 3);
    CHECK_UINT(r.nactive, 3);
    CHECK_STR(subs_of(&m), "a b c");
    CHECK(inst(&r, "d") == NULL);
    CHECK(inst(&r, "e") == NULL);
    CHECK_UINT(r.instruments.count, ninst);
    /* Exactly at the limit is fine. */
    CHECK_INT(cg_registry_subscribe(&r, &m, over, 4, 5), CG_REG_OK);
    EVENTS("+i:d +i:e");
    CHECK_STR(subs_of(&m), "a b c d e");
    CHECK_UINT(m.nsubs, 5);

    /* Leave drops everything: every instrument loses its last subscriber, then the user. */
    cg_registry_leave(&r, &m);
    EVENTS("-i:a -i:b -i:c -i:d -i:e -u:u");
    CHECK_UINT(m.nsubs, 0);
    CHECK_UINT(r.nsubs, 0);
    CHECK_UINT(r.nactive, 0);
    CHECK(m.subs.next == &m.subs);
    /* Names only this client ever used are forgotten: clients cannot fill the table. */
    CHECK_UINT(r.instruments.count, 0);
    cg_registry_finish(&r);
}

static void test_many_members(void)
{
    /* 50 members of 5 users, each subscribed to 40 of 100 instruments. */
    enum { M = 50, I = 100 };
    static struct cg_member m[M];
    static char names[I][16];
    static const char *np[I];
    struct cg_registry r;
    events[0] = 0;
    cg_registry_init(&r, NULL, 1000); /* no hooks at all */
    for (int i = 0; i < I; i++) {
        snprintf(names[i], sizeof(names[i]), "inst%d", i);
        np[i] = names[i];
    }
    int bad = 0;
    for (int j = 0; j < M; j++) {
        char uid[16];
        snprintf(uid, sizeof(uid), "user%d", j % 5);
        bad += cg_registry_join(&r, &m[j], NULL, uid) != CG_REG_OK;
        bad += cg_registry_subscribe(&r, &m[j], np + (j * 3) % 61, 40, 200) != CG_REG_OK;
    }
    CHECK_INT(bad, 0);
    CHECK_UINT(r.nmembers, M);
    CHECK_UINT(r.users.count, 5);
    CHECK_UINT(r.nsubs, M * 40);
    CHECK_UINT(r.instruments.count, I);
    CHECK_UINT(r.nactive, I);
    CHECK_UINT(cg_registry_user(&r, "user3")->nmembers, 10);
    size_t total = 0;
    for (int i = 0; i < I; i++)
        total += inst(&r, names[i])->nsubs;
    CHECK_UINT(total, M * 40);
    for (int j = 0; j < M; j += 2)
        cg_registry_leave(&r, &m[j]);
    CHECK_UINT(r.nsubs, (M / 2) * 40);
    /* After removals (each swaps the last subscription into the hole) every instrument's
     * array holds exactly its remaining subscriptions, each knowing its own position. */
    int inconsistent = 0;
    for (int i = 0; i < I; i++) {
        const struct cg_instrument *in = inst(&r, names[i]); /* NULL: reaped, none left */
        for (uint32_t k = 0; in && k < in->nsubs; k++) {
            const struct cg_sub *s = in->fan[k].sub;
            int idx = (int)(s->member - m);
            inconsistent += in->fan[k].member != s->member || s->index != k || s->inst != in ||
                            idx % 2 != 1 || !subscribed(&r, s->member, names[i]);
        }
    }
    CHECK_INT(inconsistent, 0);
    for (int j = 1; j < M; j += 2)
        cg_registry_leave(&r, &m[j]);
    CHECK_UINT(r.nsubs, 0);
    CHECK_UINT(r.nactive, 0);
    CHECK_UINT(r.users.count, 0);
    CHECK_STR(events, ""); /* hooks were NULL */
    cg_registry_finish(&r);
}

static void test_max_instruments(void)
{
    struct cg_registry r;
    struct cg_member m1, m2;
    events[0] = 0;
    cg_registry_init(&r, &hooks, 3);
    cg_registry_join(&r, &m1, NULL, "u1");
    cg_registry_join(&r, &m2, NULL, "u2");
    EVENTS("+u:u1 +u:u2");
    const char *abc[] = {"a", "b", "c"};
    CHECK_INT(cg_registry_subscribe(&r, &m1, abc, 3, 200), CG_REG_OK);
    EVENTS("+i:a +i:b +i:c");
    CHECK_UINT(r.instruments.count, 3);
    const char *d[] = {"d"};
    CHECK_INT(cg_registry_subscribe(&r, &m2, d, 1, 200), CG_REG_FULL);
    EVENTS("");
    CHECK_UINT(m2.nsubs, 0);
    CHECK(inst(&r, "d") == NULL);
    /* FULL is atomic for the member even when some names already exist. */
    const char *ad[] = {"a", "d"};
    CHECK_INT(cg_registry_subscribe(&r, &m2, ad, 2, 200), CG_REG_FULL);
    EVENTS("");
    CHECK_UINT(m2.nsubs, 0);
    CHECK_UINT(inst(&r, "a")->nsubs, 1);
    CHECK_UINT(r.nsubs, 3);
    /* Existing instruments can still be subscribed. */
    CHECK_INT(cg_registry_subscribe(&r, &m2, abc, 2, 200), CG_REG_OK);
    EVENTS("");
    CHECK_UINT(m2.nsubs, 2);
    /* create=1 at the limit: existing names are returned, new ones are not created. */
    CHECK(cg_registry_instrument(&r, "d", 1, 1) == NULL);
    CHECK_PTR(cg_registry_instrument(&r, "a", 1, 1), inst(&r, "a"));
    /* Known instruments (published, or in the catalog) persist after their last
     * subscriber left, and still count; the others go. */
    inst(&r, "a")->known = 1;
    inst(&r, "b")->seq = 7; /* a tick was relayed: also kept, with its seq */
    cg_registry_leave(&r, &m1);
    cg_registry_leave(&r, &m2);
    /* m1 was the last subscriber of c only; m2 then of a and b. */
    EVENTS("-i:c -u:u1 -i:a -i:b -u:u2");
    CHECK_UINT(r.instruments.count, 2);
    CHECK(cg_registry_instrument(&r, "c", 1, 0) == NULL);
    CHECK_UINT(inst(&r, "b")->seq, 7);
    CHECK(cg_registry_instrument(&r, "d", 1, 1) != NULL); /* room again */
    CHECK(cg_registry_instrument(&r, "e", 1, 1) == NULL); /* and full again */
    cg_registry_finish(&r);

    /* An instrument table of 0: nothing can be created. */
    cg_registry_init(&r, &hooks, 0);
    cg_registry_join(&r, &m1, NULL, "u1");
    CHECK_INT(cg_registry_subscribe(&r, &m1, d, 1, 200), CG_REG_FULL);
    cg_registry_leave(&r, &m1);
    cg_registry_finish(&r);
    events[0] = 0;
}

static void test_instrument_lookup(void)
{
    struct cg_registry r;
    cg_registry_init(&r, NULL, 10);
    CHECK(cg_registry_instrument(&r, "rb2501", 6, 0) == NULL);
    struct cg_instrument *a = cg_registry_instrument(&r, "rb2501xyz", 6, 1); /* by length */
    if (!CHECK(a != NULL))
        return;
    CHECK_STR(a->name, "rb2501");
    CHECK_UINT(a->nsubs, 0);
    CHECK_UINT(a->seq, 0);
    CHECK(a->fan == NULL);
    CHECK_PTR(cg_registry_instrument(&r, "rb2501", 6, 0), a);
    CHECK_PTR(cg_registry_instrument(&r, "rb2501", 6, 1), a);
    CHECK(cg_registry_instrument(&r, "rb250", 5, 0) == NULL);
    char n32[33];
    memset(n32, 'n', 32);
    n32[32] = 0;
    struct cg_instrument *b = cg_registry_instrument(&r, n32, 32, 1);
    if (CHECK(b != NULL))
        CHECK_STR(b->name, n32);
    CHECK_UINT(r.instruments.count, 2);
    CHECK_UINT(r.nactive, 0);
    cg_registry_finish(&r);
}

/* Socket numbers (PROTOCOL.md §16: "<epoch>.<n>" names a socket): from 1, increasing, never
 * handed out twice by one registry, and cg_registry_member finds a joined member only. */
static void test_conns(void)
{
    enum { M = 200 };
    static struct cg_member m[M];
    struct cg_registry r;
    int o;
    cg_registry_init(&r, NULL, 100);
    CHECK(cg_registry_member(&r, 0) == NULL);
    CHECK(cg_registry_member(&r, 1) == NULL);
    CHECK_INT(cg_registry_join(&r, &m[0], &o, "u1"), CG_REG_OK);
    CHECK_INT(cg_registry_join(&r, &m[1], &o, "u1"), CG_REG_OK);
    CHECK_INT(cg_registry_join(&r, &m[2], &o, "u2"), CG_REG_OK);
    CHECK_UINT(m[0].conn, 1);
    CHECK_UINT(m[1].conn, 2);
    CHECK_UINT(m[2].conn, 3);
    CHECK_PTR(cg_registry_member(&r, 1), &m[0]);
    CHECK_PTR(cg_registry_member(&r, 2), &m[1]);
    CHECK_PTR(cg_registry_member(&r, 3), &m[2]);
    CHECK(cg_registry_member(&r, 0) == NULL);
    CHECK(cg_registry_member(&r, 4) == NULL);
    CHECK(cg_registry_member(&r, UINT64_MAX) == NULL);
    CHECK(cg_registry_member(&r, (1ULL << 32) + 1) == NULL); /* all 64 bits count */

    /* A departed member is not found, and its number is not reused: not by the next join,
     * and not by the same member struct joining again. */
    cg_registry_leave(&r, &m[1]);
    CHECK(cg_registry_member(&r, 2) == NULL);
    CHECK_PTR(cg_registry_member(&r, 1), &m[0]);
    CHECK_PTR(cg_registry_member(&r, 3), &m[2]);
    CHECK_INT(cg_registry_join(&r, &m[3], &o, "u1"), CG_REG_OK);
    CHECK_UINT(m[3].conn, 4);
    CHECK_INT(cg_registry_join(&r, &m[1], &o, "u3"), CG_REG_OK);
    CHECK_UINT(m[1].conn, 5);
    CHECK(cg_registry_member(&r, 2) == NULL);
    CHECK_PTR(cg_registry_member(&r, 5), &m[1]);
    /* The last one leaving does not give its number back either (nor do all of them). */
    cg_registry_leave(&r, &m[1]);
    cg_registry_leave(&r, &m[3]);
    cg_registry_leave(&r, &m[0]);
    cg_registry_leave(&r, &m[2]);
    CHECK_UINT(r.nmembers, 0);
    for (uint64_t k = 0; k <= 6; k++)
        CHECK(cg_registry_member(&r, k) == NULL);
    CHECK_INT(cg_registry_join(&r, &m[0], &o, "u1"), CG_REG_OK);
    CHECK_UINT(m[0].conn, 6);
    CHECK_PTR(cg_registry_member(&r, 6), &m[0]);

    /* A failed join (user id over 128 bytes) numbers nothing that could be found. */
    char longid[200];
    memset(longid, 'u', 129);
    longid[129] = 0;
    CHECK_INT(cg_registry_join(&r, &m[1], &o, longid), CG_REG_NOMEM);
    CHECK(cg_registry_member(&r, 7) == NULL);
    CHECK(cg_registry_member(&r, m[1].conn) == NULL || m[1].conn == 0);
    cg_registry_leave(&r, &m[1]);
    CHECK_INT(cg_registry_join(&r, &m[2], &o, "u2"), CG_REG_OK);
    CHECK(m[2].conn > 6);
    CHECK_PTR(cg_registry_member(&r, m[2].conn), &m[2]);
    cg_registry_leave(&r, &m[0]);
    cg_registry_leave(&r, &m[2]);

    /* Churn: members come and go in a mixed order; every number is new, every lookup right. */
    uint64_t last = m[2].conn, bad = 0;
    int joined[M] = {0};
    for (int round = 0; round < 5; round++) {
        for (int i = round % 2; i < M; i += 1 + round % 3) {
            if (joined[i]) {
                uint64_t n = m[i].conn;
                cg_registry_leave(&r, &m[i]);
                bad += cg_registry_member(&r, n) != NULL;
                joined[i] = 0;
            } else {
                char uid[16];
                snprintf(uid, sizeof(uid), "user%d", i % 7);
                bad += cg_registry_join(&r, &m[i], &o, uid) != CG_REG_OK;
                bad += m[i].conn != last + 1;
                last = m[i].conn;
                joined[i] = 1;
            }
        }
        for (int i = 0; i < M; i++)
            if (joined[i])
                bad += cg_registry_member(&r, m[i].conn) != &m[i];
    }
    CHECK_UINT(bad, 0);
    CHECK_UINT(r.conns.count, r.nmembers);
    for (int i = 0; i < M; i++)
        if (joined[i])
            cg_registry_leave(&r, &m[i]);
    CHECK_UINT(r.conns.count, 0);
    CHECK(cg_registry_member(&r, last) == NULL);
    cg_registry_finish(&r);

    /* Each registry counts on its own (one per process: the epoch tells processes apart). */
    struct cg_registry r2;
    cg_registry_init(&r2, NULL, 100);
    CHECK_INT(cg_registry_join(&r2, &m[0], &o, "u1"), CG_REG_OK);
    CHECK_UINT(m[0].conn, 1);
    cg_registry_leave(&r2, &m[0]);
    cg_registry_finish(&r2);
}

int main(void)
{
    test_join_leave_users();
    test_conns();
    test_subscribe_hooks();
    test_duplicates_and_limit();
    test_many_members();
    test_max_instruments();
    test_instrument_lookup();
    return check_summary("registry");
}
