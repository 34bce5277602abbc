/* closing.h -- the close schedule: forming bars by the wall time they are due to close.
 *
 * A binary min-heap of (due, series) with each series knowing its position (heap_idx), so a
 * bar's due time moves and a destroyed chart leaves in O(log n). One per process, driven by
 * one timer in the agent: not a timer per instrument and interval. Entries borrow the series
 * and the owner (the instrument); whoever destroys a series removes it first. Pure. */
#ifndef CG_CLOSING_H
#define CG_CLOSING_H

#include <stddef.h>
#include <stdint.h>

#include "bars.h"

struct cg_closing_entry {
    int64_t due;
    struct cg_series *series; /* borrowed */
    void *owner;              /* borrowed */
    uint32_t interval;
};

struct cg_closing {
    struct cg_closing_entry *heap;
    size_t n, cap;
};

void cg_closing_init(struct cg_closing *q);
void cg_closing_finish(struct cg_closing *q);

/* Puts series at due (adds it, or moves it when queued). Returns 0, or -1 on OOM (not queued:
 * the bar then closes at the next tick, as without a calendar). */
int cg_closing_set(struct cg_closing *q, struct cg_series *s, void *owner, uint32_t interval,
                   int64_t due);
/* Takes series out (no-op when not queued). */
void cg_closing_remove(struct cg_closing *q, struct cg_series *s);
/* The earliest due time, or INT64_MAX when empty. */
int64_t cg_closing_next(const struct cg_closing *q);
/* Removes and returns the earliest entry when due <= now (1), else 0. */
int cg_closing_pop(struct cg_closing *q, int64_t now, struct cg_closing_entry *out);

#endif
