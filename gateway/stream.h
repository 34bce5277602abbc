/* stream.h -- shared seq numbers (PROTOCOL.md §19): the chartgate_md function, the shared epoch,
 * and catching instruments and sockets up from the instruments' Redis streams.
 *
 * A tick published with FCALL chartgate_publish carries a seq that Redis gave it, the same in
 * every gateway process, and stays in the instrument's capped stream {<md-prefix><name>}:stream
 * (entry ID <seq>-0, fields t and d). This module:
 *   - loads the function library (FUNCTION LOAD REPLACE, with --stream-len) and reads or sets
 *     the shared epoch (--epoch-key) whenever the command link comes up;
 *   - catches an instrument up from its stream when ticks went missing (a seq jump, a pub/sub
 *     reconnection) and when this process gets its first subscriber (the last tick and the
 *     forming bars then come from the stream, not from a restart). Live ticks of an instrument
 *     being caught up are held (the relay's hold hook) and applied after, in seq order;
 *   - reads a stream range for one socket's resume (dispatch.c).
 * Not pure: hiredis commands through the bridge. */
#ifndef CG_STREAM_H
#define CG_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bridge.h"
#include "config.h"
#include "list.h"
#include "log.h"
#include "registry.h"
#include "relay.h"

struct cg_stream {
    uv_loop_t *loop;             /* borrowed */
    const struct cg_config *cfg; /* borrowed */
    struct cg_registry *reg;     /* borrowed */
    struct cg_relay *relay;      /* borrowed */
    struct cg_bridge *bridge;    /* borrowed */
    char *library;               /* the Lua library with --stream-len, owned */
    size_t library_len;
    char epoch[17];          /* the shared epoch, "" until Redis told it */
    char proposed[17];       /* what this process sets when the key is missing */
    struct cg_list catchups; /* struct cg_stream_catchup in flight or waiting */
    uv_timer_t retry;        /* runs while a catch-up waits for the command link */
    struct cg_log_limit log;
};

/* One entry of a stream read (borrowed: valid during the callback only). */
struct cg_stream_entry {
    uint64_t seq;
    int64_t t; /* Redis time when it was published, ms */
    const char *data;
    size_t len;
};

/* Prepares s; proposed is 16 hex digits this process offers as the shared epoch if Redis has
 * none. All pointers borrowed. Returns 0, or -1 when out of memory. */
int cg_stream_init(struct cg_stream *s, uv_loop_t *loop, const struct cg_config *cfg,
                   struct cg_registry *reg, struct cg_relay *relay, struct cg_bridge *bridge,
                   const char *proposed);
/* Closes the retry timer (shutdown; the loop must run on to let it close). */
void cg_stream_stop(struct cg_stream *s);
/* After the links are freed: completes what still waits (held ticks applied, waiters called)
 * and frees s's memory. */
void cg_stream_finish(struct cg_stream *s);

/* The shared epoch, or "" while unknown (Redis not reached yet). */
const char *cg_stream_epoch(const struct cg_stream *s);

/* Bridge hooks (through main). */
void cg_stream_command_up(struct cg_stream *s);
void cg_stream_pubsub_up(struct cg_stream *s);
/* Cluster mode: only in's tick channel was subscribed again after a gap: cg_stream_pubsub_up
 * for that one instrument. */
void cg_stream_instrument_gap(struct cg_stream *s, struct cg_instrument *in);

/* Registry hook (through main, after the agent's): in got its first subscriber here. */
void cg_stream_instrument_active(struct cg_stream *s, struct cg_instrument *in, int active);

/* Relay hooks (data = s). */
void cg_stream_hold(void *data, struct cg_instrument *in, uint64_t seq, const char *payload,
                    size_t plen);
int cg_stream_gap(void *data, struct cg_instrument *in, uint64_t seq);

/* Calls fn(arg) once in is not being caught up any more (its held ticks applied), or returns 1
 * at once when it is not. Returns 0 when fn will be called (exactly once, also if s is
 * finished first), -1 when out of memory (fn is never called). */
typedef void cg_stream_ready_fn(void *arg);
int cg_stream_when_ready(struct cg_stream *s, struct cg_instrument *in, cg_stream_ready_fn *fn,
                         void *arg);

/* Reads the entries of in's stream with seq >= from, at most count, oldest first. fn gets them
 * (ok = 0 and n = 0 when the read failed: link down or dropped, no such stream, bad entries).
 * Returns 0 when fn will be called, -1 when it will not (the command link is down). */
typedef void cg_stream_read_fn(void *arg, const struct cg_stream_entry *e, size_t n, int ok);
int cg_stream_read(struct cg_stream *s, const struct cg_instrument *in, uint64_t from,
                   uint64_t count, cg_stream_read_fn *fn, void *arg);

#endif
