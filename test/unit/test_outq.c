/* test_outq.c -- unit tests of the per-client bounded queue with tick conflation
 * (gateway/outq.h). */
#include <string.h>

#include "check.h"
#include "outq.h"

static int inst_a, inst_b, inst_c;

static struct cg_frame *mk(int kind, const void *ckey, size_t len)
{
    struct cg_frame *f = cg_frame_alloc(len);
    if (!f)
        return NULL;
    memset(cg_frame_data(f), 'x', len);
    f->kind = (uint8_t)kind;
    f->ckey = ckey;
    return f;
}

static struct cg_frame *tick(const void *inst, size_t len)
{
    return mk(CG_FRAME_TICK, inst, len);
}

static struct cg_frame *msg(size_t len)
{
    return mk(CG_FRAME_MESSAGE, NULL, len);
}

static struct cg_frame *ctl(size_t len)
{
    return mk(CG_FRAME_CONTROL, NULL, len);
}

static size_t pending_bytes(const struct cg_outq *q)
{
    size_t n = 0;
    for (uint32_t i = 0; i < q->count; i++)
        n += cg_outq_peek(q, i)->len;
    return n;
}

static void unref_all(struct cg_frame **f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cg_frame_unref(f[i]);
}

static void test_init_finish(void)
{
    struct cg_outq q;
    memset(&q, 0x5a, sizeof(q));
    cg_outq_init(&q);
    CHECK(q.ring == NULL);
    CHECK_UINT(q.cap, 0);
    CHECK_UINT(q.count, 0);
    CHECK_UINT(q.head, 0);
    CHECK_UINT(q.bytes, 0);
    cg_outq_pop(&q, 3); /* nothing to pop */
    CHECK_UINT(q.count, 0);
    cg_outq_finish(&q);
    CHECK(q.ring == NULL);
    CHECK_UINT(q.cap, 0);
}

/* Ticks queue while fewer than conflate_frames are pending, and replace the pending
 * tick of their instrument in place from then on. */
static void test_frame_threshold(void)
{
    struct cg_outq_limits lim = {100, 1 << 20, 4, 1 << 20};
    struct cg_outq q;
    cg_outq_init(&q);
    uint64_t sa = 0;
    struct cg_frame *a[8];
    for (int i = 0; i < 8; i++)
        a[i] = tick(&inst_a, 10 + (size_t)i);
    for (int i = 0; i < 4; i++) {
        CHECK_INT(cg_outq_push(&q, &lim, a[i], &sa), CG_OUTQ_QUEUED);
        CHECK_UINT(sa, (uint64_t)i + 1); /* the slot holds position + 1 */
        CHECK_UINT(a[i]->refs, 2);
    }
    CHECK_UINT(q.count, 4);
    CHECK_UINT(q.bytes, 10 + 11 + 12 + 13);

    /* 4 pending == conflate_frames: behind. a[4] replaces a[3] at position 3. */
    CHECK_INT(cg_outq_push(&q, &lim, a[4], &sa), CG_OUTQ_CONFLATED);
    CHECK_UINT(q.count, 4);
    CHECK_UINT(sa, 4);
    CHECK_PTR(cg_outq_peek(&q, 3), a[4]);
    CHECK_UINT(a[3]->refs, 1);
    CHECK_UINT(a[4]->refs, 2);
    CHECK_UINT(q.bytes, 10 + 11 + 12 + 14);
    CHECK_INT(cg_outq_push(&q, &lim, a[5], &sa), CG_OUTQ_CONFLATED);
    CHECK_PTR(cg_outq_peek(&q, 3), a[5]);
    CHECK_UINT(a[4]->refs, 1);
    CHECK_UINT(q.bytes, 10 + 11 + 12 + 15);

    /* One frame written: 3 pending < 4, no longer behind: the next tick queues. */
    cg_outq_pop(&q, 1);
    CHECK_UINT(a[0]->refs, 1);
    CHECK_INT(cg_outq_push(&q, &lim, a[6], &sa), CG_OUTQ_QUEUED);
    CHECK_UINT(sa, 5);
    CHECK_UINT(q.count, 4);
    CHECK_PTR(cg_outq_peek(&q, 0), a[1]);
    CHECK_PTR(cg_outq_peek(&q, 1), a[2]);
    CHECK_PTR(cg_outq_peek(&q, 2), a[5]);
    CHECK_PTR(cg_outq_peek(&q, 3), a[6]);
    /* Behind again: a[7] replaces the newest pending tick (a[6]), not an older one. */
    CHECK_INT(cg_outq_push(&q, &lim, a[7], &sa), CG_OUTQ_CONFLATED);
    CHECK_PTR(cg_outq_peek(&q, 2), a[5]);
    CHECK_PTR(cg_outq_peek(&q, 3), a[7]);
    CHECK_UINT(q.bytes, pending_bytes(&q));

    cg_outq_pop(&q, q.count);
    for (int i = 0; i < 8; i++)
        CHECK_UINT(a[i]->refs, 1);
    cg_outq_finish(&q);
    unref_all(a, 8);
}

/* Likewise with the byte threshold. */
static void test_byte_threshold(void)
{
    for (int variant = 0; variant < 2; variant++) {
        /* variant 0: conflate_bytes 100, reached exactly; variant 1: 101, not reached. */
        struct cg_outq_limits lim = {100, 1 << 20, 100, 100 + (size_t)variant};
        struct cg_outq q;
        cg_outq_init(&q);
        uint64_t sa = 0;
        struct cg_frame *a1 = tick(&inst_a, 50), *a2 = tick(&inst_a, 50), *a3 = tick(&inst_a, 50);
        CHECK_INT(cg_outq_push(&q, &lim, a1, &sa), CG_OUTQ_QUEUED);
        CHECK_INT(cg_outq_push(&q, &lim, a2, &sa), CG_OUTQ_QUEUED);
        CHECK_UINT(q.bytes, 100);
        if (variant == 0) {
            CHECK_INT(cg_outq_push(&q, &lim, a3, &sa), CG_OUTQ_CONFLATED);
            CHECK_UINT(q.count, 2);
            CHECK_PTR(cg_outq_peek(&q, 1), a3);
            CHECK_UINT(a2->refs, 1);
        } else {
            CHECK_INT(cg_outq_push(&q, &lim, a3, &sa), CG_OUTQ_QUEUED);
            CHECK_UINT(q.count, 3);
            CHECK_UINT(q.bytes, 150);
        }
        cg_outq_finish(&q);
        CHECK_UINT(a1->refs, 1);
        CHECK_UINT(a2->refs, 1);
        CHECK_UINT(a3->refs, 1);
        cg_frame_unref(a1);
        cg_frame_unref(a2);
        cg_frame_unref(a3);
    }
}

/* Several instruments, messages and replies interleaved: each tick replaces its own
 * instrument's pending tick in place; messages and replies always queue. */
static void test_in_place_and_messages(void)
{
    struct cg_outq_limits lim = {100, 1 << 20, 4, 1 << 20};
    struct cg_outq q;
    cg_outq_init(&q);
    uint64_t sa = 0, sb = 0, sc = 0;
    struct cg_frame *a1 = tick(&inst_a, 5), *a2 = tick(&inst_a, 6);
    struct cg_frame *b1 = tick(&inst_b, 7), *b2 = tick(&inst_b, 8);
    struct cg_frame *c1 = tick(&inst_c, 9), *c2 = tick(&inst_c, 10);
    struct cg_frame *m1 = msg(11), *m2 = msg(12), *m3 = msg(13), *r1 = ctl(14);
    CHECK_INT(cg_outq_push(&q, &lim, a1, &sa), CG_OUTQ_QUEUED);
    CHECK_INT(cg_outq_push(&q, &lim, b1, &sb), CG_OUTQ_QUEUED);
    CHECK_INT(cg_outq_push(&q, &lim, m1, NULL), CG_OUTQ_QUEUED);
    CHECK_INT(cg_outq_push(&q, &lim, r1, NULL), CG_OUTQ_QUEUED);
    CHECK_UINT(sa, 1);
    CHECK_UINT(sb, 2);
    /* Behind (4 pending). */
    CHECK_INT(cg_outq_push(&q, &lim, a2, &sa), CG_OUTQ_CONFLATED);
    CHECK_INT(cg_outq_push(&q, &lim, b2, &sb), CG_OUTQ_CONFLATED);
    CHECK_UINT(sa, 1);
    CHECK_UINT(sb, 2);
    /* Messages are never conflated, however far behind. */
    CHECK_INT(cg_outq_push(&q, &lim, m2, NULL), CG_OUTQ_QUEUED);
    CHECK_INT(cg_outq_push(&q, &lim, m2, NULL), CG_OUTQ_QUEUED); /* the same frame twice */
    CHECK_INT(cg_outq_push(&q, &lim, m3, NULL), CG_OUTQ_QUEUED);
    CHECK_UINT(m2->refs, 3);
    /* A tick of an instrument with nothing pending queues, then conflates. */
    CHECK_INT(cg_outq_push(&q, &lim, c1, &sc), CG_OUTQ_QUEUED);
    CHECK_UINT(sc, 8);
    CHECK_INT(cg_outq_push(&q, &lim, c2, &sc), CG_OUTQ_CONFLATED);
    CHECK_UINT(q.count, 8);
    struct cg_frame *want[] = {a2, b2, m1, r1, m2, m2, m3, c2};
    for (uint32_t i = 0; i < 8; i++)
        CHECK_PTR(cg_outq_peek(&q, i), want[i]);
    CHECK_UINT(q.bytes, 6 + 8 + 11 + 14 + 12 + 12 + 13 + 10);
    CHECK_UINT(a1->refs, 1);
    CHECK_UINT(b1->refs, 1);
    CHECK_UINT(c1->refs, 1);
    cg_outq_pop(&q, 8);
    CHECK_UINT(q.count, 0);
    CHECK_UINT(q.bytes, 0);
    struct cg_frame *all[] = {a1, a2, b1, b2, c1, c2, m1, m2, m3, r1};
    int ones = 0;
    for (int i = 0; i < 10; i++)
        ones += all[i]->refs == 1;
    CHECK_INT(ones, 10);
    cg_outq_finish(&q);
    unref_all(all, 10);
}

/* A slot whose tick was already written no longer conflates. */
static void test_stale_slot(void)
{
    struct cg_outq_limits lim = {100, 1 << 20, 1, 1 << 20};
    struct cg_outq q;
    cg_outq_init(&q);
    uint64_t sa = 0;
    struct cg_frame *a1 = tick(&inst_a, 3), *a2 = tick(&inst_a, 4), *a3 = tick(&inst_a, 5);
    struct cg_frame *x = ctl(1);
    CHECK_INT(cg_outq_push(&q, &lim, a1, &sa), CG_OUTQ_QUEUED);
    CHECK_INT(cg_outq_push(&q, &lim, x, NULL), CG_OUTQ_QUEUED);
    cg_outq_pop(&q, 1); /* a1 written */
    CHECK_UINT(a1->refs, 1);
    CHECK_UINT(q.head, 1);
    CHECK_INT(cg_outq_push(&q, &lim, a2, &sa), CG_OUTQ_QUEUED);
    CHECK_UINT(sa, 3);
    CHECK_PTR(cg_outq_peek(&q, 0), x);
    CHECK_PTR(cg_outq_peek(&q, 1), a2);
    CHECK_INT(cg_outq_push(&q, &lim, a3, &sa), CG_OUTQ_CONFLATED);
    CHECK_PTR(cg_outq_peek(&q, 1), a3);

    /* Only a tick of the SAME instrument is replaced: a slot that (through a caller's
     * mix-up) points at another instrument's pending tick does not conflate. */
    uint64_t wrong = sa;
    struct cg_frame *b1 = tick(&inst_b, 6);
    CHECK_INT(cg_outq_push(&q, &lim, b1, &wrong), CG_OUTQ_QUEUED);
    CHECK_PTR(cg_outq_peek(&q, 1), a3);
    CHECK_PTR(cg_outq_peek(&q, 2), b1);
    CHECK_UINT(q.count, 3);
    cg_outq_pop(&q, 3);
    CHECK_UINT(b1->refs, 1);
    cg_frame_unref(b1);

    /* Positions are never reused: after finish and new traffic an old slot is stale. */
    cg_outq_finish(&q);
    CHECK_UINT(q.count, 0);
    CHECK_UINT(q.head, 4);
    uint64_t old = sa;
    CHECK_INT(cg_outq_push(&q, &lim, x, NULL), CG_OUTQ_QUEUED);
    CHECK_INT(cg_outq_push(&q, &lim, a1, &sa), CG_OUTQ_QUEUED);
    CHECK(sa > old);
    CHECK_UINT(q.count, 2);
    cg_outq_finish(&q);
    CHECK_UINT(a1->refs, 1);
    CHECK_UINT(a2->refs, 1);
    CHECK_UINT(a3->refs, 1);
    CHECK_UINT(x->refs, 1);
    cg_frame_unref(a1);
    cg_frame_unref(a2);
    cg_frame_unref(a3);
    cg_frame_unref(x);
}

static void test_full_frames(void)
{
    struct cg_outq_limits lim = {8, 1 << 20, 4, 1 << 20};
    struct cg_outq q;
    cg_outq_init(&q);
    uint64_t sa = 0, sb = 0;
    struct cg_frame *a1 = tick(&inst_a, 2), *a2 = tick(&inst_a, 2), *b1 = tick(&inst_b, 2);
    struct cg_frame *r = ctl(3), *m = msg(3);
    CHECK_INT(cg_outq_push(&q, &lim, a1, &sa), CG_OUTQ_QUEUED);
    for (int i = 0; i < 7; i++)
        CHECK_INT(cg_outq_push(&q, &lim, r, NULL), CG_OUTQ_QUEUED);
    CHECK_UINT(q.count, 8);
    size_t bytes = q.bytes;
    uint32_t refs = r->refs;
    /* At max_frames nothing more queues: the caller closes the client. */
    CHECK_INT(cg_outq_push(&q, &lim, r, NULL), CG_OUTQ_FULL);
    CHECK_INT(cg_outq_push(&q, &lim, m, NULL), CG_OUTQ_FULL);
    CHECK_INT(cg_outq_push(&q, &lim, b1, &sb), CG_OUTQ_FULL);
    CHECK_UINT(sb, 0);
    CHECK_UINT(q.count, 8);
    CHECK_UINT(q.bytes, bytes);
    CHECK_UINT(r->refs, refs);
    CHECK_UINT(m->refs, 1);
    CHECK_UINT(b1->refs, 1);
    /* ...but a tick replacing its pending one takes no room. */
    CHECK_INT(cg_outq_push(&q, &lim, a2, &sa), CG_OUTQ_CONFLATED);
    CHECK_PTR(cg_outq_peek(&q, 0), a2);
    CHECK_UINT(q.count, 8);
    cg_outq_pop(&q, 1);
    CHECK_INT(cg_outq_push(&q, &lim, m, NULL), CG_OUTQ_QUEUED);
    CHECK_INT(cg_outq_push(&q, &lim, m, NULL), CG_OUTQ_FULL);
    cg_outq_finish(&q);

    /* max_frames below conflate_frames: full without ever being "behind". */
    struct cg_outq_limits lim2 = {2, 1 << 20, 10, 1 << 20};
    cg_outq_init(&q);
    sa = 0;
    CHECK_INT(cg_outq_push(&q, &lim2, a1, &sa), CG_OUTQ_QUEUED);
    CHECK_INT(cg_outq_push(&q, &lim2, r, NULL), CG_OUTQ_QUEUED);
    CHECK_INT(cg_outq_push(&q, &lim2, a2, &sa), CG_OUTQ_FULL);
    CHECK_UINT(sa, 1);
    cg_outq_finish(&q);

    CHECK_UINT(a1->refs, 1);
    CHECK_UINT(a2->refs, 1);
    CHECK_UINT(r->refs, 1);
    CHECK_UINT(m->refs, 1);
    cg_frame_unref(a1);
    cg_frame_unref(a2);
    cg_frame_unref(b1);
    cg_frame_unref(r);
    cg_frame_unref(m);
}

static void test_full_bytes(void)
{
    struct cg_outq_limits lim = {100, 300, 100, 200};
    struct cg_outq q;
    cg_outq_init(&q);
    uint64_t sa = 0;
    struct cg_frame *c1 = ctl(100), *c2 = ctl(100), *c3 = ctl(1), *c4 = ctl(50);
    struct cg_frame *a1 = tick(&inst_a, 100), *a2 = tick(&inst_a, 101);
    struct cg_frame *a3 = tick(&inst_a, 100), *a4 = tick(&inst_a, 50);
    CHECK_INT(cg_outq_push(&q, &lim, c1, NULL), CG_OUTQ_QUEUED);
    CHECK_INT(cg_outq_push(&q, &lim, a1, &sa), CG_OUTQ_QUEUED);
    CHECK_INT(cg_outq_push(&q, &lim, c2, NULL), CG_OUTQ_QUEUED); /* exactly max_bytes */
    CHECK_UINT(q.bytes, 300);
    CHECK_INT(cg_outq_push(&q, &lim, c3, NULL), CG_OUTQ_FULL);
    CHECK_UINT(q.count, 3);
    CHECK_UINT(c3->refs, 1);
    /* Behind by bytes (300 >= 200); a replacement that would pass max_bytes fails
     * and leaves the old tick in place. */
    CHECK_INT(cg_outq_push(&q, &lim, a2, &sa), CG_OUTQ_FULL);
    CHECK_PTR(cg_outq_peek(&q, 1), a1);
    CHECK_UINT(a1->refs, 2);
    CHECK_UINT(a2->refs, 1);
    CHECK_UINT(q.bytes, 300);
    CHECK_INT(cg_outq_push(&q, &lim, a3, &sa), CG_OUTQ_CONFLATED);
    CHECK_UINT(q.bytes, 300);
    CHECK_INT(cg_outq_push(&q, &lim, a4, &sa), CG_OUTQ_CONFLATED);
    CHECK_UINT(q.bytes, 250);
    CHECK_PTR(cg_outq_peek(&q, 1), a4);
    CHECK_INT(cg_outq_push(&q, &lim, c4, NULL), CG_OUTQ_QUEUED);
    CHECK_UINT(q.bytes, 300);
    CHECK_INT(cg_outq_push(&q, &lim, c3, NULL), CG_OUTQ_FULL);
    CHECK_UINT(q.bytes, pending_bytes(&q));
    cg_outq_finish(&q);
    CHECK_UINT(q.bytes, 0);
    struct cg_frame *all[] = {c1, c2, c3, c4, a1, a2, a3, a4};
    int ones = 0;
    for (int i = 0; i < 8; i++)
        ones += all[i]->refs == 1;
    CHECK_INT(ones, 8);
    unref_all(all, 8);
}

/* One frame queued on two clients: each queue holds its own reference. */
static void test_shared_refs(void)
{
    struct cg_outq_limits lim = {100, 1 << 20, 100, 1 << 20};
    struct cg_outq q1, q2;
    cg_outq_init(&q1);
    cg_outq_init(&q2);
    uint64_t s1 = 0, s2 = 0;
    struct cg_frame *t = tick(&inst_a, 20);
    CHECK_INT(cg_outq_push(&q1, &lim, t, &s1), CG_OUTQ_QUEUED);
    CHECK_INT(cg_outq_push(&q2, &lim, t, &s2), CG_OUTQ_QUEUED);
    CHECK_UINT(t->refs, 3);
    cg_outq_pop(&q1, 1);
    CHECK_UINT(t->refs, 2);
    cg_outq_finish(&q2);
    CHECK_UINT(t->refs, 1);
    cg_outq_finish(&q1);
    cg_frame_unref(t);
}

/* The ring grows (8, 16, 32, ...) keeping order while its contents wrap around. */
static void test_growth_wrap(void)
{
    enum { N = 300 };
    struct cg_outq_limits lim = {100000, 1 << 30, 100000, 1 << 30};
    struct cg_outq q;
    cg_outq_init(&q);
    static struct cg_frame *f[N];
    for (int i = 0; i < N; i++)
        f[i] = ctl((size_t)i + 1);
    int next = 0, oldest = 0;
    /* 6 in, 5 out: head at 5 in a ring of 8. */
    for (; next < 6; next++)
        CHECK_INT(cg_outq_push(&q, &lim, f[next], NULL), CG_OUTQ_QUEUED);
    CHECK_UINT(q.cap, 8);
    cg_outq_pop(&q, 5);
    oldest = 5;
    /* 10 more: the ring is full while wrapped (positions 5..12) and grows to 16. */
    for (; next < 16; next++)
        CHECK_INT(cg_outq_push(&q, &lim, f[next], NULL), CG_OUTQ_QUEUED);
    CHECK_UINT(q.count, 11);
    CHECK_UINT(q.cap, 16);
    int inorder = 0;
    for (uint32_t i = 0; i < q.count; i++)
        inorder += cg_outq_peek(&q, i) == f[oldest + (int)i];
    CHECK_INT(inorder, 11);
    /* Keep pushing and popping at different rates through several growths. */
    int steps = 0, bad = 0;
    while (next < N) {
        int in = 7 + steps % 5, out = 3 + steps % 4;
        for (int k = 0; k < in && next < N; k++, next++)
            if (cg_outq_push(&q, &lim, f[next], NULL) != CG_OUTQ_QUEUED)
                bad++;
        if ((uint32_t)out > q.count)
            out = (int)q.count;
        cg_outq_pop(&q, (uint32_t)out);
        oldest += out;
        for (uint32_t i = 0; i < q.count; i++)
            bad += cg_outq_peek(&q, i) != f[oldest + (int)i];
        bad += q.count != (uint32_t)(next - oldest);
        bad += q.head != (uint64_t)oldest;
        bad += q.count > q.cap || (q.cap & (q.cap - 1)) != 0;
        bad += q.bytes != pending_bytes(&q);
        steps++;
    }
    CHECK_INT(bad, 0);
    CHECK(q.cap >= 128);
    cg_outq_finish(&q);
    int ones = 0;
    for (int i = 0; i < N; i++)
        ones += f[i]->refs == 1;
    CHECK_INT(ones, N);
    unref_all(f, N);
}

/* Conflation keeps working on a wrapped, grown ring (slots are absolute positions). */
static void test_slot_after_growth(void)
{
    struct cg_outq_limits lim = {1000, 1 << 30, 20, 1 << 30};
    struct cg_outq q;
    cg_outq_init(&q);
    uint64_t sa = 0;
    struct cg_frame *r = ctl(1), *a1 = tick(&inst_a, 1), *a2 = tick(&inst_a, 1);
    for (int i = 0; i < 6; i++)
        cg_outq_push(&q, &lim, r, NULL);
    cg_outq_pop(&q, 6); /* head 6 */
    for (int i = 0; i < 5; i++)
        cg_outq_push(&q, &lim, r, NULL);
    CHECK_INT(cg_outq_push(&q, &lim, a1, &sa), CG_OUTQ_QUEUED); /* position 11: wrapped in 8 */
    CHECK_UINT(sa, 12);
    for (int i = 0; i < 20; i++)
        cg_outq_push(&q, &lim, r, NULL); /* grows to 32 */
    CHECK_UINT(q.cap, 32);
    CHECK_INT(cg_outq_push(&q, &lim, a2, &sa), CG_OUTQ_CONFLATED);
    CHECK_PTR(cg_outq_peek(&q, 5), a2);
    CHECK_UINT(a1->refs, 1);
    cg_outq_finish(&q);
    CHECK_UINT(r->refs, 1);
    CHECK_UINT(a2->refs, 1);
    cg_frame_unref(r);
    cg_frame_unref(a1);
    cg_frame_unref(a2);
}

/* An emptied queue frees a large ring (idle sockets cost nothing); small rings stay. */
static void test_pop_shrink(void)
{
    struct cg_outq_limits lim = {100000, 1 << 30, 100000, 1 << 30};
    struct cg_outq q;
    cg_outq_init(&q);
    struct cg_frame *r = ctl(4);
    for (int i = 0; i < 33; i++)
        CHECK_INT(cg_outq_push(&q, &lim, r, NULL), CG_OUTQ_QUEUED);
    CHECK_UINT(q.cap, 64);
    CHECK_UINT(r->refs, 34);
    cg_outq_pop(&q, 32); /* not empty: the ring stays */
    CHECK(q.ring != NULL);
    CHECK_UINT(q.cap, 64);
    CHECK_UINT(q.count, 1);
    CHECK_UINT(q.bytes, 4);
    cg_outq_pop(&q, 5); /* more than pending: pops what there is */
    CHECK_UINT(q.count, 0);
    CHECK_UINT(q.bytes, 0);
    CHECK(q.ring == NULL);
    CHECK_UINT(q.cap, 0);
    CHECK_UINT(q.head, 33);
    CHECK_UINT(r->refs, 1);
    /* Usable again after the shrink. */
    CHECK_INT(cg_outq_push(&q, &lim, r, NULL), CG_OUTQ_QUEUED);
    CHECK_UINT(q.cap, 8);
    CHECK_PTR(cg_outq_peek(&q, 0), r);
    cg_outq_pop(&q, 1);
    CHECK(q.ring != NULL); /* a ring of 8 is kept */
    CHECK_UINT(q.cap, 8);
    /* 32 entries is still "small". */
    for (int i = 0; i < 32; i++)
        cg_outq_push(&q, &lim, r, NULL);
    CHECK_UINT(q.cap, 32);
    cg_outq_pop(&q, 32);
    CHECK(q.ring != NULL);
    CHECK_UINT(q.cap, 32);
    cg_outq_pop(&q, 0);
    CHECK_UINT(q.count, 0);
    cg_outq_finish(&q);
    CHECK(q.ring == NULL);
    CHECK_UINT(r->refs, 1);
    cg_frame_unref(r);
}

int main(void)
{
    test_init_finish();
    test_frame_threshold();
    test_byte_threshold();
    test_in_place_and_messages();
    test_stale_slot();
    test_full_frames();
    test_full_bytes();
    test_shared_refs();
    test_growth_wrap();
    test_slot_after_growth();
    test_pop_shrink();
    return check_summary("outq");
}
