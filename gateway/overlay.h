/* overlay.h -- chart overlays (PROTOCOL.md §17): the Redis library that applies operations,
 * the check of an applied operation as it arrives, and the recent operations of an instrument.
 *
 * Operations are applied in Redis, once, by the chartgate_overlay function (overlay.lua), which
 * stores the result and publishes the operation with its version on <chart-prefix><instrument>,
 * in one atomic step: every gateway process receives the same operations in version order and
 * reads the same state, and none of them writes it. A gateway keeps, per instrument that some
 * socket views with overlays, the last version seen and a ring of the most recent operations'
 * frames: a snapshot read from Redis at version V is followed by the ring's frames after V, so
 * the seam has no gap. Pure: neither lws nor hiredis. */
#ifndef CG_OVERLAY_H
#define CG_OVERLAY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "frame.h"
#include "instrument.h"
#include "session.h"

#define CG_OVERLAY_FUNCTION "chartgate_overlay"
#define CG_OVERLAY_READ_FUNCTION "chartgate_overlay_read"
#define CG_OVERLAY_RING 64    /* recent operations kept per viewed instrument */
#define CG_OVERLAY_KEY_MAX 64 /* "overlays:{" + instrument + "}" */

/* The function library for FUNCTION LOAD REPLACE, with cfg's bounds, intervals and chart
 * prefix: a new NUL-terminated string (free()), or NULL when out of memory. */
char *cg_overlay_library(const struct cg_config *cfg);

/* "overlays:{<instrument>}" into out; returns its length. */
size_t cg_overlay_key(const char *instrument, char out[CG_OVERLAY_KEY_MAX]);

/* An applied operation as a gateway checks it on arrival. */
struct cg_overlay_op {
    uint64_t v;       /* its version, from 1 */
    const char *user; /* the user it is for, borrowed from the parsed object; NULL = shared */
};

/* Checks obj (a parsed operation published by chartgate_overlay): an object with "op" set,
 * append or remove, "overlay" a string, "v" an integer >= 1, "user" absent or a string of 1 to
 * CG_SESSION_USER_MAX bytes. Returns 0 with *op filled, or -1 with *why saying what is wrong. */
int cg_overlay_check(json_t *obj, struct cg_overlay_op *op, const char **why);

struct cg_overlay_recent {
    uint64_t v;
    struct cg_frame *f;                 /* one reference, owned */
    char user[CG_SESSION_USER_MAX + 1]; /* "" = shared */
};

/* An instrument's overlay state in this process, while some socket views its overlays. */
struct cg_overlay_inst {
    uint64_t last_v;  /* the newest version seen; 0 = none yet */
    uint32_t viewers; /* subscriptions with overlays on */
    uint32_t head, count;
    struct cg_overlay_recent ring[CG_OVERLAY_RING];
};

/* A new zeroed state, or NULL when out of memory. */
struct cg_overlay_inst *cg_overlay_inst_create(void);
/* Releases the ring's frames and s; accepts NULL. */
void cg_overlay_inst_destroy(struct cg_overlay_inst *s);

/* Remembers frame f (a reference is taken) of operation version v for user ("" or NULL:
 * shared), dropping the oldest when the ring is full. */
void cg_overlay_remember(struct cg_overlay_inst *s, uint64_t v, struct cg_frame *f,
                         const char *user);

/* 1 when the ring holds every operation after version v (none missing between v and the
 * newest), so a reader at v can be brought up to date from it; 0 when it must read again. */
int cg_overlay_covers(const struct cg_overlay_inst *s, uint64_t v);

/* Calls fn for each remembered operation with version > v, oldest first, that user (NULL: none)
 * may see: shared ones and its own. */
void cg_overlay_each_after(const struct cg_overlay_inst *s, uint64_t v, const char *user,
                           void (*fn)(void *arg, struct cg_frame *f), void *arg);

/* 1 when an operation for op_user (NULL: shared) may reach a socket of user (NULL: none). */
int cg_overlay_visible(const char *op_user, const char *user);

#endif
