/* agent.h -- the chart agent: bars per tick, snapshots, resume, history, recording.
 *
 * Hooked into the relay (every tick, once, for all viewers) and the registry
 * (instrument activation, subscriptions going away). Bar frames are encoded once
 * per tick and interval, only when some socket wants that interval, and offered
 * through the relay's deliver hook. Snapshot fill and history are asynchronous
 * Redis reads on the bridge's command link; a subscription whose snapshot is being
 * prepared gets no live frames (sub->pending) and its snapshot is built from the
 * state at the moment the reply arrives, so the seam has no gap and no duplicate.
 * With --record-bars completed bars are written to Redis by an idempotent script. */
#ifndef CG_AGENT_H
#define CG_AGENT_H

#include <uv.h>

#include "bridge.h"
#include "calendar.h"
#include "chart.h"
#include "closing.h"
#include "config.h"
#include "registry.h"
#include "relay.h"

struct cg_agent {
    const struct cg_config *cfg; /* borrowed */
    uv_loop_t *loop;             /* borrowed */
    struct cg_registry *reg;     /* borrowed */
    struct cg_bridge *bridge;    /* borrowed */
    struct cg_relay_hooks out;   /* deliver hook (borrowed data) */
    uv_timer_t sweep;
    struct cg_log_limit rec_log;
    /* trading calendar: bars follow sessions and close on time (PROTOCOL.md §18) */
    struct cg_calendar *cal;   /* owned; NULL: epoch buckets, closed by later ticks */
    struct cg_closing closing; /* forming bars by due time */
    uv_timer_t close_timer;    /* one for the process, armed at the earliest due time */
    int64_t close_armed;       /* due time the timer is armed for; INT64_MAX: idle */
    struct cg_log_limit ov_log;
};

void cg_agent_init(struct cg_agent *a, uv_loop_t *loop, const struct cg_config *cfg,
                   struct cg_registry *reg, struct cg_bridge *bridge,
                   const struct cg_relay_hooks *out);
/* Frees every chart; closes the timer handle. */
void cg_agent_finish(struct cg_agent *a);

/* Hooks (data = agent). */
void cg_agent_instrument_active(void *data, struct cg_instrument *in, int active);
void cg_agent_sub_dropped(void *data, struct cg_sub *sub);
void cg_agent_tick(void *data, struct cg_instrument *in, json_t *obj, const char *text, size_t len,
                   struct cg_frame *f, int64_t at_ms);
/* The command link came (back) up: overlay viewers whose state could not be read get it. */
void cg_agent_command_up(void *data);
/* The pub/sub link came (back) up: ticks may have been missed, resume restarts. */
void cg_agent_gap(void *data);
/* Cluster mode: only in's tick channel (overlays 0) or its overlay channel (overlays 1) was
 * subscribed again after a gap: cg_agent_gap for that one instrument. */
void cg_agent_instrument_gap(struct cg_agent *a, struct cg_instrument *in, int overlays);

/* Turns overlay operations on or off for a subscription (PROTOCOL.md §17). Returns 0, or -1
 * when out of memory (then they stay off). */
int cg_agent_set_overlays(struct cg_agent *a, struct cg_sub *sub, int on);
/* Relay hook: operations of in were missed; its overlay viewers read the state again. */
void cg_agent_overlay_gap(void *data, struct cg_instrument *in);

/* Sets the intervals a subscription wants (replacing the previous set). */
void cg_agent_set_intervals(struct cg_agent *a, struct cg_sub *sub, uint32_t mask);
/* 1 when a client that last saw since on sub's instrument can be resumed. */
int cg_agent_can_resume(const struct cg_agent *a, const struct cg_instrument *in, uint64_t since);
/* After the subscribed reply: replays what the client missed (recovered) or sends
 * a snapshot (possibly after an asynchronous fill from Redis). */
void cg_agent_start(struct cg_agent *a, struct cg_sub *sub, int recovered, uint64_t since);
/* A resume whose first ticks come from the instrument's stream (subscribe.c): pre (n tick frames,
 * borrowed, in seq order, all > since) first, then the ring's frames after the last of them,
 * then the bars updated after since. */
void cg_agent_resume_from(struct cg_agent *a, struct cg_sub *sub, uint64_t since,
                          struct cg_frame *const *pre, const uint64_t *pre_seq, size_t n);

/* History of an instrument/interval: bars with t < before, newest limit, oldest
 * first, from Redis merged with memory. done(arg, frame) is called exactly once,
 * with a new frame (or NULL on OOM), possibly before this returns. */
void cg_agent_history(struct cg_agent *a, const char *instrument, uint32_t interval, int64_t before,
                      uint32_t limit, const char *id_json,
                      void (*done)(void *arg, struct cg_frame *f), void *arg);

#endif
