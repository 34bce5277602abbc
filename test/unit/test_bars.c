/* test_bars.c -- unit tests of OHLCV series (gateway/bars.h): epoch-aligned buckets,
 * closing on a later bucket, late ticks correcting held completed bars, the ring of
 * completed bars growing lazily up to depth, and the seq each bar remembers. */
#include <stdlib.h>
#include <string.h>

#include "bars.h"
#include "check.h"

/* Checks every field of a bar. */
static void expect_bar(const struct cg_bar *b, int64_t t, double o, double h, double l, double c,
                       double v, uint64_t seq, int line)
{
    if (!check_(b != NULL, __FILE__, line, "bar present"))
        return;
    check_int_(b->t, t, __FILE__, line, "bar.t", "t");
    check_(b->o == o, __FILE__, line, "bar.o");
    check_(b->h == h, __FILE__, line, "bar.h");
    check_(b->l == l, __FILE__, line, "bar.l");
    check_(b->c == c, __FILE__, line, "bar.c");
    check_(b->v == v, __FILE__, line, "bar.v");
    check_uint_(b->seq, seq, __FILE__, line, "bar.seq", "seq");
    if (b->o != o || b->h != h || b->l != l || b->c != c || b->v != v)
        fprintf(stderr, "    got o=%g h=%g l=%g c=%g v=%g, expected o=%g h=%g l=%g c=%g v=%g\n",
                b->o, b->h, b->l, b->c, b->v, o, h, l, c, v);
}

#define EXPECT_BAR(b, t, o, h, l, c, v, seq)                                                       \
    expect_bar((b), (t), (o), (h), (l), (c), (v), (seq), __LINE__)

static void test_bucket(void)
{
    CHECK_INT(cg_bars_bucket(1732249985123, 60000), 1732249980000);
    CHECK_INT(cg_bars_bucket(1732249980000, 60000), 1732249980000); /* a boundary starts a bar */
    CHECK_INT(cg_bars_bucket(1732249979999, 60000), 1732249920000);
    CHECK_INT(cg_bars_bucket(0, 60000), 0);
    CHECK_INT(cg_bars_bucket(59999, 60000), 0);
    CHECK_INT(cg_bars_bucket(60000, 60000), 60000);
    CHECK_INT(cg_bars_bucket(1732249985123, 1000), 1732249985000);
    CHECK_INT(cg_bars_bucket(1732249985123, 300000), 1732249800000);
    /* 1d buckets are UTC days: 2024-11-22T04:33:05.123Z -> 2024-11-22T00:00Z. */
    CHECK_INT(cg_bars_bucket(1732249985123, 86400000), 1732233600000);
    CHECK_INT(cg_bars_bucket(1732249985123, 3600000), 1732248000000);
    /* Negative timestamps floor too (towards minus infinity, not towards zero). */
    CHECK_INT(cg_bars_bucket(-1, 60000), -60000);
    CHECK_INT(cg_bars_bucket(-59999, 60000), -60000);
    CHECK_INT(cg_bars_bucket(-60000, 60000), -60000);
    CHECK_INT(cg_bars_bucket(-60001, 60000), -120000);
    CHECK_INT(cg_bars_bucket(7, 1), 7);
}

static void test_init(void)
{
    struct cg_series s;
    memset(&s, 0x5a, sizeof(s));
    CHECK_INT(cg_series_init(&s, 60000, 300), 0);
    CHECK_INT(s.ms, 60000);
    CHECK_UINT(s.depth, 300);
    CHECK(s.ring == NULL);
    CHECK_UINT(s.cap, 0);
    CHECK_UINT(s.count, 0);
    CHECK_UINT(s.head, 0);
    CHECK_INT(s.has_forming, 0);
    CHECK_UINT(cg_series_size(&s), 0);
    cg_series_clear(&s); /* nothing to clear */
    CHECK_UINT(cg_series_size(&s), 0);
    cg_series_finish(&s);
    CHECK(s.ring == NULL);

    /* depth 0 keeps one completed bar. */
    CHECK_INT(cg_series_init(&s, 1000, 0), 0);
    CHECK_UINT(s.depth, 1);
    cg_series_finish(&s);
}

/* Ticks in one bucket update the forming bar: o first price, h/l extremes, c latest,
 * v summed, seq of the latest tick. Each returns one UPDATED event with a copy. */
static void test_forming(void)
{
    struct cg_series s;
    struct cg_bar_event ev[2];
    cg_series_init(&s, 60000, 10);
    memset(ev, 0, sizeof(ev));
    CHECK_INT(cg_series_tick(&s, 1732249985123, 3850.5, 2, 11, ev), 1);
    CHECK_INT(ev[0].kind, CG_BAR_UPDATED);
    EXPECT_BAR(&ev[0].bar, 1732249980000, 3850.5, 3850.5, 3850.5, 3850.5, 2, 11);
    CHECK_UINT(cg_series_size(&s), 1);
    CHECK_PTR(cg_series_at(&s, 0), &s.forming);
    CHECK(s.ring == NULL); /* no completed bar yet: nothing allocated */

    CHECK_INT(cg_series_tick(&s, 1732249990000, 3852, 3, 12, ev), 1);
    CHECK_INT(ev[0].kind, CG_BAR_UPDATED);
    EXPECT_BAR(&ev[0].bar, 1732249980000, 3850.5, 3852, 3850.5, 3852, 5, 12);
    CHECK_INT(cg_series_tick(&s, 1732249995000, 3849.25, 0, 13, ev), 1);
    EXPECT_BAR(&ev[0].bar, 1732249980000, 3850.5, 3852, 3849.25, 3849.25, 5, 13);
    /* Same timestamp as the newest: not late, it becomes the close. */
    CHECK_INT(cg_series_tick(&s, 1732249995000, 3851, 1.5, 14, ev), 1);
    EXPECT_BAR(&ev[0].bar, 1732249980000, 3850.5, 3852, 3849.25, 3851, 6.5, 14);
    /* Last millisecond of the bucket. */
    CHECK_INT(cg_series_tick(&s, 1732250039999, 3850, 0.5, 15, ev), 1);
    EXPECT_BAR(&ev[0].bar, 1732249980000, 3850.5, 3852, 3849.25, 3850, 7, 15);
    CHECK_UINT(cg_series_size(&s), 1);
    EXPECT_BAR(cg_series_at(&s, 0), 1732249980000, 3850.5, 3852, 3849.25, 3850, 7, 15);

    /* The event is a copy: changing it does not change the series. */
    ev[0].bar.h = 1e9;
    CHECK(s.forming.h == 3852);
    cg_series_finish(&s);
}

/* A tick in the same bucket but older than the newest one (out of order) updates
 * h, l, v and seq, but never the close. */
static void test_out_of_order_in_forming(void)
{
    struct cg_series s;
    struct cg_bar_event ev[2];
    cg_series_init(&s, 1000, 10);
    CHECK_INT(cg_series_tick(&s, 5100, 10, 1, 1, ev), 1);
    CHECK_INT(cg_series_tick(&s, 5500, 12, 1, 2, ev), 1);
    CHECK_INT(cg_series_tick(&s, 5200, 8, 1, 3, ev), 1);
    CHECK_INT(ev[0].kind, CG_BAR_UPDATED);
    EXPECT_BAR(&ev[0].bar, 5000, 10, 12, 8, 12, 3, 3);
    CHECK_INT(s.forming_ts, 5500);
    CHECK_INT(cg_series_tick(&s, 5300, 13, 1, 4, ev), 1);
    EXPECT_BAR(&ev[0].bar, 5000, 10, 13, 8, 12, 4, 4);
    /* Newer again: the close moves. */
    CHECK_INT(cg_series_tick(&s, 5600, 11, 1, 5, ev), 1);
    EXPECT_BAR(&ev[0].bar, 5000, 10, 13, 8, 11, 5, 5);
    CHECK_INT(s.forming_ts, 5600);
    cg_series_finish(&s);
}

/* A tick in a later bucket closes the forming bar (CLOSED, final values, seq of the
 * closing tick) and starts the next (UPDATED). Empty buckets produce no bar. */
static void test_close(void)
{
    struct cg_series s;
    struct cg_bar_event ev[2];
    cg_series_init(&s, 60000, 10);
    cg_series_tick(&s, 60000, 100, 1, 1, ev);
    cg_series_tick(&s, 70000, 104, 2, 2, ev);
    cg_series_tick(&s, 80000, 99, 3, 3, ev);
    CHECK_INT(cg_series_tick(&s, 125000, 101, 4, 4, ev), 2);
    CHECK_INT(ev[0].kind, CG_BAR_CLOSED);
    EXPECT_BAR(&ev[0].bar, 60000, 100, 104, 99, 99, 6, 4); /* seq: the closing tick's */
    CHECK_INT(ev[1].kind, CG_BAR_UPDATED);
    EXPECT_BAR(&ev[1].bar, 120000, 101, 101, 101, 101, 4, 4);
    CHECK_UINT(cg_series_size(&s), 2);
    EXPECT_BAR(cg_series_at(&s, 0), 60000, 100, 104, 99, 99, 6, 4);
    EXPECT_BAR(cg_series_at(&s, 1), 120000, 101, 101, 101, 101, 4, 4);
    CHECK_PTR(cg_series_at(&s, 1), &s.forming);
    CHECK(s.ring != NULL);
    CHECK_UINT(s.cap, 10); /* min(16, depth) */

    /* Skipping buckets 180000..360000: no flat bars in between. */
    CHECK_INT(cg_series_tick(&s, 420001, 102.5, 0, 7, ev), 2);
    CHECK_INT(ev[0].kind, CG_BAR_CLOSED);
    EXPECT_BAR(&ev[0].bar, 120000, 101, 101, 101, 101, 4, 7);
    CHECK_INT(ev[1].kind, CG_BAR_UPDATED);
    EXPECT_BAR(&ev[1].bar, 420000, 102.5, 102.5, 102.5, 102.5, 0, 7);
    CHECK_UINT(cg_series_size(&s), 3);
    CHECK_INT(cg_series_at(&s, 0)->t, 60000);
    CHECK_INT(cg_series_at(&s, 1)->t, 120000);
    CHECK_INT(cg_series_at(&s, 2)->t, 420000);
    cg_series_finish(&s);
    CHECK(s.ring == NULL);
}

/* A tick older than the forming bar corrects the completed bar of its bucket while
 * held (h, l, v, seq; never o or c), and is reported -1 otherwise; it never changes
 * the forming bar. */
static void test_late(void)
{
    struct cg_series s;
    struct cg_bar_event ev[2];
    cg_series_init(&s, 1000, 10);
    /* Completed bars at 1000, 2000, 4000 (3000 empty); forming at 5000. */
    cg_series_tick(&s, 1100, 10, 1, 1, ev);
    cg_series_tick(&s, 2100, 20, 1, 2, ev);
    cg_series_tick(&s, 2900, 21, 1, 3, ev);
    cg_series_tick(&s, 4100, 40, 1, 4, ev);
    cg_series_tick(&s, 5100, 50, 1, 5, ev);
    CHECK_UINT(cg_series_size(&s), 4);
    struct cg_bar forming = s.forming;

    memset(ev, 0, sizeof(ev));
    CHECK_INT(cg_series_tick(&s, 2500, 25, 2, 6, ev), 1);
    CHECK_INT(ev[0].kind, CG_BAR_CORRECTED);
    EXPECT_BAR(&ev[0].bar, 2000, 20, 25, 20, 21, 4, 6);
    EXPECT_BAR(cg_series_at(&s, 1), 2000, 20, 25, 20, 21, 4, 6);
    CHECK_INT(cg_series_tick(&s, 2999, 15, 0.5, 7, ev), 1);
    CHECK_INT(ev[0].kind, CG_BAR_CORRECTED);
    EXPECT_BAR(&ev[0].bar, 2000, 20, 25, 15, 21, 4.5, 7);
    /* The oldest held bar, and the newest completed one. */
    CHECK_INT(cg_series_tick(&s, 1000, 9, 1, 8, ev), 1);
    EXPECT_BAR(&ev[0].bar, 1000, 10, 10, 9, 10, 2, 8);
    CHECK_INT(cg_series_tick(&s, 4999, 41, 1, 9, ev), 1);
    EXPECT_BAR(&ev[0].bar, 4000, 40, 41, 40, 40, 2, 9);
    CHECK(!memcmp(&s.forming, &forming, sizeof(forming)));

    /* An empty bucket between held bars, and older than every bar: ignored. */
    CHECK_INT(cg_series_tick(&s, 3500, 35, 1, 10, ev), -1);
    CHECK_INT(cg_series_tick(&s, 999, 1, 1, 11, ev), -1);
    CHECK_INT(cg_series_tick(&s, -5000, 1, 1, 12, ev), -1);
    CHECK_UINT(cg_series_size(&s), 4);
    EXPECT_BAR(cg_series_at(&s, 0), 1000, 10, 10, 9, 10, 2, 8);
    EXPECT_BAR(cg_series_at(&s, 1), 2000, 20, 25, 15, 21, 4.5, 7);
    EXPECT_BAR(cg_series_at(&s, 2), 4000, 40, 41, 40, 40, 2, 9);
    CHECK(!memcmp(&s.forming, &forming, sizeof(forming)));
    cg_series_finish(&s);

    /* Only a forming bar, no completed ones: an older tick is ignored. */
    cg_series_init(&s, 1000, 10);
    cg_series_tick(&s, 5100, 50, 1, 1, ev);
    CHECK_INT(cg_series_tick(&s, 4900, 49, 1, 2, ev), -1);
    CHECK_UINT(cg_series_size(&s), 1);
    EXPECT_BAR(cg_series_at(&s, 0), 5000, 50, 50, 50, 50, 1, 1);
    cg_series_finish(&s);
}

/* The ring is allocated at the first completed bar and doubles from 16 up to depth,
 * then the oldest bar makes room. Corrections find bars across the wrap. */
static void test_ring_growth(void)
{
    struct cg_series s;
    struct cg_bar_event ev[2];
    cg_series_init(&s, 1000, 40);
    /* Tick k (seq 100 + k) at k*1000 + 500: it closes bar k-1. */
    CHECK_INT(cg_series_tick(&s, 500, 0, 1, 100, ev), 1);
    CHECK(s.ring == NULL);
    CHECK_UINT(s.cap, 0);
    static const struct {
        int k;
        uint32_t cap, count;
    } steps[] = {{1, 16, 1},   {16, 16, 16}, {17, 32, 17}, {32, 32, 32},
                 {33, 40, 33}, {40, 40, 40}, {41, 40, 40}, {45, 40, 40}};
    int k = 1;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        for (; k <= steps[i].k; k++) {
            int n = cg_series_tick(&s, (int64_t)k * 1000 + 500, k, 1, 100 + (uint64_t)k, ev);
            CHECK_INT(n, 2);
            CHECK_INT(ev[0].kind, CG_BAR_CLOSED);
            CHECK_INT(ev[0].bar.t, (int64_t)(k - 1) * 1000);
            CHECK_UINT(ev[0].bar.seq, 100 + (uint64_t)k);
        }
        CHECK_UINT(s.cap, steps[i].cap);
        CHECK_UINT(s.count, steps[i].count);
        CHECK_UINT(cg_series_size(&s), steps[i].count + 1);
    }
    /* Bars 0..44 completed, 5..44 held, oldest first; 45 forming. */
    CHECK_UINT(s.head, 5);
    for (size_t i = 0; i < 40; i++) {
        int64_t bk = (int64_t)i + 5;
        EXPECT_BAR(cg_series_at(&s, i), bk * 1000, (double)bk, (double)bk, (double)bk, (double)bk,
                   1, 100 + (uint64_t)bk + 1);
    }
    EXPECT_BAR(cg_series_at(&s, 40), 45000, 45, 45, 45, 45, 1, 145);

    /* Corrections on both sides of the wrap point: bar 39 sits in ring slot 39,
     * bar 40 in slot 0. */
    CHECK_INT(cg_series_tick(&s, 39999, 1, 1, 200, ev), 1);
    CHECK_INT(ev[0].kind, CG_BAR_CORRECTED);
    EXPECT_BAR(&ev[0].bar, 39000, 39, 39, 1, 39, 2, 200);
    EXPECT_BAR(cg_series_at(&s, 34), 39000, 39, 39, 1, 39, 2, 200);
    CHECK_INT(cg_series_tick(&s, 40000, 99, 1, 201, ev), 1);
    EXPECT_BAR(&ev[0].bar, 40000, 40, 99, 40, 40, 2, 201);
    EXPECT_BAR(cg_series_at(&s, 35), 40000, 40, 99, 40, 40, 2, 201);
    CHECK_INT(cg_series_tick(&s, 5001, 6, 1, 202, ev), 1);
    EXPECT_BAR(&ev[0].bar, 5000, 5, 6, 5, 5, 2, 202);
    CHECK_INT(cg_series_tick(&s, 44001, 43, 1, 203, ev), 1);
    EXPECT_BAR(&ev[0].bar, 44000, 44, 44, 43, 44, 2, 203);
    /* Bar 4 was dropped: too old now. */
    CHECK_INT(cg_series_tick(&s, 4999, 1, 1, 204, ev), -1);
    CHECK_UINT(s.cap, 40);
    cg_series_finish(&s);

    /* A small depth caps the first allocation. */
    cg_series_init(&s, 1000, 3);
    for (int j = 0; j < 6; j++)
        cg_series_tick(&s, j * 1000, j, 1, (uint64_t)j + 1, ev);
    CHECK_UINT(s.cap, 3);
    CHECK_UINT(s.count, 3);
    CHECK_UINT(cg_series_size(&s), 4);
    CHECK_INT(cg_series_at(&s, 0)->t, 2000);
    CHECK_INT(cg_series_at(&s, 2)->t, 4000);
    CHECK_INT(cg_series_at(&s, 3)->t, 5000);
    cg_series_finish(&s);

    /* depth 1: one completed bar. */
    cg_series_init(&s, 1000, 0);
    for (int j = 0; j < 4; j++)
        cg_series_tick(&s, j * 1000, j, 1, (uint64_t)j + 1, ev);
    CHECK_UINT(s.cap, 1);
    CHECK_UINT(cg_series_size(&s), 2);
    EXPECT_BAR(cg_series_at(&s, 0), 2000, 2, 2, 2, 2, 1, 4);
    EXPECT_BAR(cg_series_at(&s, 1), 3000, 3, 3, 3, 3, 1, 4);
    cg_series_finish(&s);
}

/* Clearing forgets every bar (the ring's memory stays); the next tick, whatever its
 * time, starts a new forming bar. */
static void test_clear(void)
{
    struct cg_series s;
    struct cg_bar_event ev[2];
    cg_series_init(&s, 1000, 10);
    for (int j = 0; j < 5; j++)
        cg_series_tick(&s, j * 1000, j, 1, (uint64_t)j + 1, ev);
    CHECK_UINT(cg_series_size(&s), 5);
    struct cg_bar *ring = s.ring;
    cg_series_clear(&s);
    CHECK_UINT(cg_series_size(&s), 0);
    CHECK_PTR(s.ring, ring);
    /* An older time than before the clear: not late, a fresh forming bar. */
    CHECK_INT(cg_series_tick(&s, 1500, 7, 2, 9, ev), 1);
    CHECK_INT(ev[0].kind, CG_BAR_UPDATED);
    EXPECT_BAR(&ev[0].bar, 1000, 7, 7, 7, 7, 2, 9);
    CHECK_UINT(cg_series_size(&s), 1);
    /* Bars from before the clear are not corrected. */
    CHECK_INT(cg_series_tick(&s, 500, 1, 1, 10, ev), -1);
    CHECK_INT(cg_series_tick(&s, 2500, 8, 1, 11, ev), 2);
    EXPECT_BAR(&ev[0].bar, 1000, 7, 7, 7, 7, 2, 11);
    CHECK_UINT(cg_series_size(&s), 2);
    EXPECT_BAR(cg_series_at(&s, 0), 1000, 7, 7, 7, 7, 2, 11);
    cg_series_finish(&s);
}

/* Negative timestamps (before 1970) bucket and close like any other. */
static void test_negative_ts(void)
{
    struct cg_series s;
    struct cg_bar_event ev[2];
    cg_series_init(&s, 60000, 10);
    CHECK_INT(cg_series_tick(&s, -61000, 5, 1, 1, ev), 1);
    EXPECT_BAR(&ev[0].bar, -120000, 5, 5, 5, 5, 1, 1);
    CHECK_INT(cg_series_tick(&s, -1, 6, 1, 2, ev), 2);
    EXPECT_BAR(&ev[0].bar, -120000, 5, 5, 5, 5, 1, 2);
    EXPECT_BAR(&ev[1].bar, -60000, 6, 6, 6, 6, 1, 2);
    CHECK_INT(cg_series_tick(&s, 0, 7, 1, 3, ev), 2);
    EXPECT_BAR(&ev[1].bar, 0, 7, 7, 7, 7, 1, 3);
    CHECK_INT(cg_series_tick(&s, -100000, 4, 1, 4, ev), 1);
    CHECK_INT(ev[0].kind, CG_BAR_CORRECTED);
    EXPECT_BAR(&ev[0].bar, -120000, 5, 5, 4, 5, 2, 4);
    cg_series_finish(&s);
}

int main(void)
{
    test_bucket();
    test_init();
    test_forming();
    test_out_of_order_in_forming();
    test_close();
    test_late();
    test_ring_growth();
    test_clear();
    test_negative_ts();
    return check_summary("bars");
}
