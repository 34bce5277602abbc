/* test_pace.c -- unit tests of per-subscription pacing (gateway/pace.h): let through, hold the
 * latest, release when the slot opens, in next_ms order. */
#include <stdlib.h>

#include "check.h"
#include "pace.h"

static struct cg_frame *mk(void)
{
    struct cg_frame *f = cg_frame_alloc(4);
    f->kind = CG_FRAME_TICK;
    return f;
}

static void test_interval(void)
{
    CHECK_UINT(cg_pace_interval_ms(1), 1000);
    CHECK_UINT(cg_pace_interval_ms(2), 500);
    CHECK_UINT(cg_pace_interval_ms(3), 334); /* never more than 3 a second */
    CHECK_UINT(cg_pace_interval_ms(0.1), 10000);
    CHECK_UINT(cg_pace_interval_ms(1000), 1);
    CHECK_UINT(cg_pace_interval_ms(7.5), 134);
}

static void test_hold_latest_then_release(void)
{
    struct cg_pace p;
    cg_pace_init(&p);
    int owner;
    struct cg_pace_sub *ps = cg_pace_sub_create(500, 2, &owner);
    CHECK(ps != NULL);
    struct cg_pace_slot *s = &ps->slot[0];
    CHECK(s->owner == &owner && ps->slot[1].kind == 1 && s->interval_ms == 500);
    struct cg_frame *a = mk(), *b = mk(), *c = mk(), *out = NULL;
    CHECK_INT(cg_pace_offer(&p, s, 1000, a), CG_PACE_SEND); /* first frame goes at once */
    CHECK_UINT(a->refs, 1);
    CHECK_INT(cg_pace_offer(&p, s, 1100, b), CG_PACE_HELD);
    CHECK_UINT(b->refs, 2);
    CHECK_INT(cg_pace_offer(&p, s, 1200, c), CG_PACE_REPLACED); /* the latest wins */
    CHECK_UINT(b->refs, 1);
    CHECK_UINT(c->refs, 2);
    CHECK_UINT(cg_pace_next(&p), 1500);
    CHECK(cg_pace_due(&p, 1499, &out) == NULL);
    CHECK(cg_pace_due(&p, 1503, &out) == s);
    CHECK(out == c);
    CHECK_UINT(s->next_ms, 2003); /* counted from when it went out */
    CHECK(s->held == NULL && s->heap_i == 0);
    CHECK_UINT(cg_pace_next(&p), UINT64_MAX);
    cg_frame_unref(out);
    /* Quiet for longer than the interval: the next frame goes at once again. */
    CHECK_INT(cg_pace_offer(&p, s, 2600, a), CG_PACE_SEND);
    CHECK_UINT(s->next_ms, 3100);
    /* A held frame dropped (a final bar, a re-subscribe) leaves the heap. */
    CHECK_INT(cg_pace_offer(&p, s, 2700, b), CG_PACE_HELD);
    cg_pace_drop(&p, s);
    CHECK_UINT(b->refs, 1);
    CHECK_UINT(p.n, 0);
    CHECK_UINT(s->next_ms, 3100);
    /* Destroy drops what is held. */
    CHECK_INT(cg_pace_offer(&p, &ps->slot[1], 2700, b), CG_PACE_SEND);
    CHECK_INT(cg_pace_offer(&p, &ps->slot[1], 2701, c), CG_PACE_HELD);
    cg_pace_sub_destroy(&p, ps);
    CHECK_UINT(c->refs, 1);
    CHECK_UINT(p.n, 0);
    cg_pace_sub_destroy(&p, NULL);
    cg_frame_unref(a);
    cg_frame_unref(b);
    cg_frame_unref(c);
    cg_pace_finish(&p);
}

/* Many slots with different intervals come out in next_ms order, removals anywhere included. */
static void test_heap_order(void)
{
    enum { N = 500 };
    struct cg_pace p;
    cg_pace_init(&p);
    struct cg_pace_sub *subs[N];
    struct cg_frame *f = mk();
    srand(7);
    for (int i = 0; i < N; i++) {
        subs[i] = cg_pace_sub_create(1 + (uint32_t)(rand() % 5000), 1, NULL);
        CHECK_INT(cg_pace_offer(&p, &subs[i]->slot[0], 0, f), CG_PACE_SEND);
        CHECK_INT(cg_pace_offer(&p, &subs[i]->slot[0], 0, f), CG_PACE_HELD);
    }
    CHECK_UINT(p.n, N);
    for (int i = 0; i < N; i += 3) /* removals from the middle keep the heap a heap */
        cg_pace_drop(&p, &subs[i]->slot[0]);
    uint64_t last = 0;
    uint32_t got = 0;
    struct cg_frame *out;
    struct cg_pace_slot *s;
    while ((s = cg_pace_due(&p, 5000, &out))) {
        CHECK(out == f);
        cg_frame_unref(out);
        CHECK(s->interval_ms >= last);
        last = s->interval_ms;
        got++;
    }
    CHECK_UINT(got, N - (N + 2) / 3);
    CHECK_UINT(f->refs, 1);
    for (int i = 0; i < N; i++)
        cg_pace_sub_destroy(&p, subs[i]);
    cg_pace_finish(&p);
    cg_frame_unref(f);
}

/* finish drops what every waiting slot holds and leaves the slots idle. */
static void test_finish(void)
{
    struct cg_pace p;
    cg_pace_init(&p);
    struct cg_pace_sub *ps = cg_pace_sub_create(100, 3, NULL);
    struct cg_frame *f = mk();
    for (uint32_t k = 0; k < 3; k++) {
        cg_pace_offer(&p, &ps->slot[k], 10, f);
        cg_pace_offer(&p, &ps->slot[k], 20, f);
    }
    CHECK_UINT(f->refs, 4);
    cg_pace_finish(&p);
    CHECK_UINT(f->refs, 1);
    CHECK(ps->slot[2].held == NULL && ps->slot[2].heap_i == 0);
    cg_pace_sub_destroy(&p, ps);
    cg_frame_unref(f);
}

int main(void)
{
    test_interval();
    test_hold_latest_then_release();
    test_heap_order();
    test_finish();
    return check_summary("pace");
}
