/* metrics.h -- process counters and gauges, rendered as Prometheus text for /metrics.
 *
 * One struct, cg_metrics, is the module's only state: modules bump its fields
 * directly (single-threaded). Gauges that another module already knows (sockets,
 * subscriptions, link state) are passed in at render time instead of duplicated.
 *
 * Every field of struct cg_metrics is a uint64_t counter (or an array of them): with
 * --workers, each worker copies its struct into its slot of the memory the workers share
 * every 100 ms, and a scrape sums the slots as arrays of uint64_t (shared.c). */
#ifndef CG_METRICS_H
#define CG_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "codes.h"
#include "config.h"

struct cg_metrics {
    uint64_t frames_out;      /* frames written to sockets */
    uint64_t bytes_out;       /* WebSocket payload bytes written */
    uint64_t ws_messages_out; /* WebSocket messages written (each holds >= 1 frame) */
    uint64_t frames_conflated;
    uint64_t frames_paced; /* ticks and forming bars skipped for a subscription's max_rate */
    uint64_t slow_disconnects;
    uint64_t handshakes;
    uint64_t rejections[CG_REJECT__COUNT];
    uint64_t redis_reconnects[CG_LINK__COUNT];
    uint64_t redis_auth_failures[CG_AUTH_PEER__COUNT]; /* AUTH refused, by link (or sentinel) */
    uint64_t redis_master_switches; /* moves of the links to a new master address */
    uint64_t published[CG_SOURCE__COUNT];
    uint64_t dropped[CG_DROP__COUNT];
    uint64_t sessions_revoked;
    uint64_t client_errors[CG_ERR__COUNT];
    uint64_t rate_limit_disconnects;
    uint64_t session_cache_hits;
    uint64_t session_lookups;
    uint64_t handshake_us_total; /* time spent authenticating handshakes */
    uint64_t snapshots;
    uint64_t resumes;
    uint64_t history_requests;
    uint64_t bars_recorded;
    uint64_t bars_late_ignored;
    /* shared ticks (PROTOCOL.md §19) */
    uint64_t ticks_repeated;        /* a seq already applied: caught up and then live, or resent */
    uint64_t ticks_missed;          /* seqs neither received nor found in the stream */
    uint64_t stream_catchups;       /* gaps and warm-ups read from a stream */
    uint64_t stream_caught_up;      /* ticks taken from streams that way */
    uint64_t stream_resumes;        /* sockets resumed from a stream */
    uint64_t stream_hold_overflows; /* ticks not held while catching up (the cap was reached) */
    uint64_t bars_off_session;      /* ticks outside every trading session: relayed, no bars */
    uint64_t bars_timer_closed;     /* bars closed by the close timer (no later tick came) */
    /* services (PROTOCOL.md §16), by index in cfg->services */
    uint64_t service_sent[CG_CONFIG_SERVICES_MAX];        /* sends Redis accepted */
    uint64_t service_unavailable[CG_CONFIG_SERVICES_MAX]; /* sends refused: down or full */
    uint64_t service_events_dropped;
    uint64_t replies[CG_REPLY__COUNT];
    uint64_t overlay_syncs;         /* whole overlay states sent after a resume or a gap */
    uint64_t overlay_applied;       /* inbox overlay operations Redis applied (§17) */
    uint64_t cluster_moved;         /* MOVED redirections followed (cluster mode) */
    uint64_t cluster_asked;         /* ASK redirections followed */
    uint64_t cluster_resubscribes;  /* sharded subscriptions re-made after a slot move */
    uint64_t cluster_map_refreshes; /* slot maps read */
    uint64_t overlay_oversize;      /* overlay states left out of a snapshot or sync: too large */
    /* permessage-deflate (PROTOCOL.md §1) */
    uint64_t deflate_sockets;      /* gauge: open sockets that negotiated it */
    uint64_t deflate_messages_out; /* messages written compressed (RSV1) */
    uint64_t deflate_bytes_in;     /* their bytes before compression (bytes_out counts after) */
    uint64_t deflate_compressions; /* batches compressed: the rest reused a shared result */
};

extern struct cg_metrics cg_metrics;

struct cg_metrics_gauges {
    uint64_t connections;
    uint64_t users;
    uint64_t subscriptions;
    uint64_t instruments;
    int redis_up[CG_LINK__COUNT];
    uint64_t uptime_s;
    const struct cg_config *cfg; /* service names; NULL: no service metrics */
    const struct cg_metrics *m;  /* the counters to render (a sum over workers); NULL: ours */
};

/* Text appended to buf (size bytes), like snprintf: len counts what was wanted, also past the end
 * (then the caller knows the size needed). */
struct cg_metrics_text {
    char *buf;
    size_t size, len;
};
void cg_metrics_printf(struct cg_metrics_text *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Renders every metric into buf (bufsz bytes, NUL-terminated). Returns the length
 * written, or the length needed (>= bufsz) when buf is too small, like snprintf. */
size_t cg_metrics_render(const struct cg_metrics_gauges *g, char *buf, size_t bufsz);

#endif
