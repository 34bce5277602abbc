/* test_closing.c -- unit tests of the close schedule (gateway/closing.h): order of due times,
 * moving and removing entries (the series' heap_idx kept right), popping only what is due. */
#include <stdlib.h>

#include "check.h"
#include "closing.h"

#define N 200

static void test_order(void)
{
    struct cg_closing q;
    cg_closing_init(&q);
    static struct cg_series s[N];
    CHECK_INT(cg_closing_next(&q), INT64_MAX);
    srand(7);
    int64_t due[N];
    for (int i = 0; i < N; i++) {
        s[i].heap_idx = 0;
        due[i] = rand() % 1000;
        CHECK_INT(cg_closing_set(&q, &s[i], &s[i], (uint32_t)i, due[i]), 0);
    }
    /* move some, remove some */
    for (int i = 0; i < N; i += 3) {
        due[i] = rand() % 1000;
        cg_closing_set(&q, &s[i], &s[i], (uint32_t)i, due[i]);
    }
    for (int i = 1; i < N; i += 5) {
        cg_closing_remove(&q, &s[i]);
        CHECK_INT(s[i].heap_idx, 0);
        cg_closing_remove(&q, &s[i]); /* twice: no-op */
        due[i] = -1;
    }
    for (size_t k = 0; k < q.n; k++)
        CHECK_INT(q.heap[k].series->heap_idx, k + 1);
    struct cg_closing_entry e;
    CHECK_INT(cg_closing_pop(&q, -1, &e), 0);
    int64_t last = -1;
    int popped = 0;
    while (cg_closing_pop(&q, 500, &e)) {
        CHECK(e.due >= last);
        CHECK(e.due <= 500);
        CHECK_INT(e.due, due[e.interval]);
        CHECK_INT(e.series->heap_idx, 0);
        last = e.due;
        popped++;
    }
    CHECK(cg_closing_next(&q) > 500);
    while (cg_closing_pop(&q, INT64_MAX, &e)) {
        CHECK(e.due >= last);
        last = e.due;
        popped++;
    }
    CHECK_INT(popped, N - N / 5);
    cg_closing_finish(&q);
}

int main(void)
{
    test_order();
    return check_summary("closing");
}
