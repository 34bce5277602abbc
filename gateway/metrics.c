/* metrics.c -- the counters struct and its Prometheus text rendering. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>

struct cg_metrics cg_metrics;

void cg_metrics_printf(struct cg_metrics_text *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->len < o->size ? o->buf + o->len : NULL,
                      o->len < o->size ? o->size - o->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

static void one(struct cg_metrics_text *o, const char *name, const char *type, const char *help,
                uint64_t v)
{
    cg_metrics_printf(o, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                      (unsigned long long)v);
}

static void labelled(struct cg_metrics_text *o, const char *name, const char *type,
                     const char *help, const char *label, const char *const *names,
                     const uint64_t *v, size_t n)
{
    cg_metrics_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t i = 0; i < n; i++)
        cg_metrics_printf(o, "%s{%s=\"%s\"} %llu\n", name, label, names[i],
                          (unsigned long long)v[i]);
}

size_t cg_metrics_render(const struct cg_metrics_gauges *g, char *buf, size_t bufsz)
{
    struct cg_metrics_text o = {buf, bufsz, 0};
    const struct cg_metrics *m = g->m ? g->m : &cg_metrics;
    uint64_t up[CG_LINK__COUNT], errs[CG_ERR__COUNT - 1];
    const char *errnames[CG_ERR__COUNT - 1];
    for (int i = 0; i < CG_LINK__COUNT; i++)
        up[i] = g->redis_up[i] ? 1 : 0;
    for (int i = 1; i < CG_ERR__COUNT; i++) {
        errs[i - 1] = m->client_errors[i];
        errnames[i - 1] = cg_errcode_name((enum cg_errcode)i);
    }
    if (bufsz)
        buf[0] = 0;
    one(&o, "chartgate_connections", "gauge", "Open WebSocket connections.", g->connections);
    one(&o, "chartgate_users", "gauge", "Distinct users with an open connection.", g->users);
    one(&o, "chartgate_subscriptions", "gauge", "Instrument subscriptions over all sockets.",
        g->subscriptions);
    one(&o, "chartgate_instruments", "gauge", "Instruments with at least one local subscriber.",
        g->instruments);
    one(&o, "chartgate_uptime_seconds", "gauge", "Seconds since start.", g->uptime_s);
    one(&o, "chartgate_frames_out_total", "counter", "Frames written to clients.", m->frames_out);
    one(&o, "chartgate_bytes_out_total", "counter", "WebSocket payload bytes written.",
        m->bytes_out);
    one(&o, "chartgate_ws_messages_out_total", "counter",
        "WebSocket messages written (each holds one or more frames).", m->ws_messages_out);
    one(&o, "chartgate_deflate_sockets", "gauge",
        "Open WebSocket connections that negotiated permessage-deflate.", m->deflate_sockets);
    one(&o, "chartgate_deflate_messages_out_total", "counter",
        "WebSocket messages written compressed (permessage-deflate).", m->deflate_messages_out);
    one(&o, "chartgate_deflate_bytes_in_total", "counter",
        "Bytes of the compressed messages before compression (bytes_out counts them after).",
        m->deflate_bytes_in);
    one(&o, "chartgate_deflate_compressions_total", "counter",
        "Batches compressed; other sockets with the same batch reused the result.",
        m->deflate_compressions);
    one(&o, "chartgate_frames_conflated_total", "counter",
        "Pending ticks replaced by a newer tick of the same instrument.", m->frames_conflated);
    one(&o, "chartgate_frames_paced_total", "counter",
        "Ticks and forming bars skipped (replaced by a newer one) for a subscription's max_rate.",
        m->frames_paced);
    one(&o, "chartgate_slow_disconnects_total", "counter",
        "Sockets closed for exceeding their output bound.", m->slow_disconnects);
    one(&o, "chartgate_rate_limit_disconnects_total", "counter",
        "Sockets closed for sustained excess of the message rate limit.",
        m->rate_limit_disconnects);
    one(&o, "chartgate_handshakes_total", "counter", "WebSocket handshakes accepted.",
        m->handshakes);
    labelled(&o, "chartgate_handshake_rejections_total", "counter",
             "WebSocket handshakes refused, by reason.", "reason", cg_reject_names, m->rejections,
             CG_REJECT__COUNT);
    cg_metrics_printf(
        &o,
        "# HELP chartgate_handshake_auth_seconds_total Loop time spent authenticating "
        "handshakes.\n# TYPE chartgate_handshake_auth_seconds_total counter\n"
        "chartgate_handshake_auth_seconds_total %.6f\n",
        (double)m->handshake_us_total / 1e6);
    one(&o, "chartgate_session_lookups_total", "counter", "Session lookups sent to Redis.",
        m->session_lookups);
    one(&o, "chartgate_session_cache_hits_total", "counter",
        "Handshakes authenticated from the session cache.", m->session_cache_hits);
    one(&o, "chartgate_sessions_revoked_total", "counter",
        "Sessions found deleted or expired while connected.", m->sessions_revoked);
    one(&o, "chartgate_snapshots_total", "counter", "Snapshots sent on subscribe.", m->snapshots);
    one(&o, "chartgate_resumes_total", "counter",
        "Subscriptions resumed from the replay ring instead of a snapshot.", m->resumes);
    one(&o, "chartgate_history_requests_total", "counter", "History requests served.",
        m->history_requests);
    one(&o, "chartgate_bars_recorded_total", "counter", "Completed bars written to Redis.",
        m->bars_recorded);
    one(&o, "chartgate_bars_late_ignored_total", "counter",
        "Tick-interval updates ignored: the tick was older than every bar held, or (with a "
        "trading calendar) its bar was final past its grace.",
        m->bars_late_ignored);
    one(&o, "chartgate_ticks_repeated_total", "counter",
        "Shared ticks skipped because their seq was already applied (caught up, then live).",
        m->ticks_repeated);
    one(&o, "chartgate_ticks_missed_total", "counter",
        "Shared seqs never received and not found in the stream: gaps clients see.",
        m->ticks_missed);
    one(&o, "chartgate_stream_catchups_total", "counter",
        "Instruments caught up from their Redis stream (a gap, or a first subscriber).",
        m->stream_catchups);
    one(&o, "chartgate_stream_caught_up_ticks_total", "counter",
        "Ticks taken from Redis streams by those catch-ups.", m->stream_caught_up);
    one(&o, "chartgate_stream_resumes_total", "counter",
        "Subscriptions resumed from a Redis stream (the ring no longer held the range).",
        m->stream_resumes);
    one(&o, "chartgate_stream_hold_overflows_total", "counter",
        "Live ticks not kept while their instrument was being caught up (cap reached).",
        m->stream_hold_overflows);
    one(&o, "chartgate_bars_off_session_total", "counter",
        "Ticks outside every trading session (and its slack): relayed, making no bar.",
        m->bars_off_session);
    one(&o, "chartgate_bars_timer_closed_total", "counter",
        "Bars closed by the close timer at their end plus the grace, no later tick having come.",
        m->bars_timer_closed);
    labelled(&o, "chartgate_redis_up", "gauge", "1 while the Redis link is connected.", "link",
             cg_link_names, up, CG_LINK__COUNT);
    labelled(&o, "chartgate_redis_reconnects_total", "counter", "Redis reconnections, by link.",
             "link", cg_link_names, m->redis_reconnects, CG_LINK__COUNT);
    labelled(&o, "chartgate_redis_auth_failures_total", "counter",
             "Redis AUTH refusals (wrong password, unknown or disabled user), by link.", "link",
             cg_auth_peer_names, m->redis_auth_failures, CG_AUTH_PEER__COUNT);
    one(&o, "chartgate_redis_cluster_moved_total", "counter",
        "MOVED redirections followed: a key's slot had moved to another master (cluster mode).",
        m->cluster_moved);
    one(&o, "chartgate_redis_cluster_asked_total", "counter",
        "ASK redirections followed: a key's slot was being migrated (cluster mode).",
        m->cluster_asked);
    one(&o, "chartgate_redis_cluster_resubscribes_total", "counter",
        "Sharded subscriptions made again after their slot moved or Redis refused them.",
        m->cluster_resubscribes);
    one(&o, "chartgate_redis_cluster_map_refreshes_total", "counter",
        "Cluster slot maps read (CLUSTER SLOTS).", m->cluster_map_refreshes);
    one(&o, "chartgate_redis_master_switches_total", "counter",
        "Times every Redis link moved to a new master address given by Sentinel.",
        m->redis_master_switches);
    labelled(&o, "chartgate_published_total", "counter", "Payloads received from Redis, by source.",
             "source", cg_source_names, m->published, CG_SOURCE__COUNT);
    labelled(&o, "chartgate_payloads_dropped_total", "counter",
             "Published payloads or envelopes dropped, by reason.", "reason", cg_drop_names,
             m->dropped, CG_DROP__COUNT);
    labelled(&o, "chartgate_client_errors_total", "counter", "Error frames sent, by code.", "code",
             errnames, errs, CG_ERR__COUNT - 1);
    labelled(&o, "chartgate_service_replies_total", "counter",
             "Replies published by services, by what became of them.", "result", cg_reply_names,
             m->replies, CG_REPLY__COUNT);
    one(&o, "chartgate_service_events_dropped_total", "counter",
        "Connection events a service's list could not take.", m->service_events_dropped);
    one(&o, "chartgate_overlay_applied_total", "counter",
        "Overlay operations from the inbox that Redis applied.", m->overlay_applied);
    one(&o, "chartgate_overlay_syncs_total", "counter",
        "Whole overlay states sent after a resume or a missed operation.", m->overlay_syncs);
    one(&o, "chartgate_overlay_oversize_total", "counter",
        "Overlay states left out of a snapshot or sync: more than half of --queue-max-bytes.",
        m->overlay_oversize);
    const char *snames[CG_CONFIG_SERVICES_MAX];
    uint32_t ns = g->cfg ? g->cfg->nservices : 0;
    if (!ns)
        return o.len; /* no --service: no family without samples */
    for (uint32_t i = 0; i < ns; i++)
        snames[i] = g->cfg->services[i];
    labelled(&o, "chartgate_service_messages_total", "counter",
             "Client messages on a service's list, by service.", "service", snames, m->service_sent,
             ns);
    labelled(&o, "chartgate_service_unavailable_total", "counter",
             "Client messages refused (Redis down, or the list full), by service.", "service",
             snames, m->service_unavailable, ns);
    return o.len;
}
