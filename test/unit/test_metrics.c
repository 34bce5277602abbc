/* test_metrics.c -- the /metrics text (gateway/metrics.h): every counter and gauge, in the
 * Prometheus text format, with its value; and cg_metrics_render's snprintf-like contract when
 * the buffer is too small. Checked on the rendered text (what scrapers and dashboards rely
 * on), not on the module's internal name tables. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "metrics.h"

static char text[1 << 16];

/* Every metric family: its name and type. Counters end in _total, gauges do not. */
static const struct {
    const char *name, *type;
} families[] = {
    {"chartgate_connections", "gauge"},
    {"chartgate_users", "gauge"},
    {"chartgate_subscriptions", "gauge"},
    {"chartgate_instruments", "gauge"},
    {"chartgate_uptime_seconds", "gauge"},
    {"chartgate_frames_out_total", "counter"},
    {"chartgate_bytes_out_total", "counter"},
    {"chartgate_ws_messages_out_total", "counter"},
    {"chartgate_frames_conflated_total", "counter"},
    {"chartgate_frames_paced_total", "counter"},
    {"chartgate_slow_disconnects_total", "counter"},
    {"chartgate_rate_limit_disconnects_total", "counter"},
    {"chartgate_handshakes_total", "counter"},
    {"chartgate_handshake_rejections_total", "counter"},
    {"chartgate_handshake_auth_seconds_total", "counter"},
    {"chartgate_session_lookups_total", "counter"},
    {"chartgate_session_cache_hits_total", "counter"},
    {"chartgate_sessions_revoked_total", "counter"},
    {"chartgate_snapshots_total", "counter"},
    {"chartgate_resumes_total", "counter"},
    {"chartgate_history_requests_total", "counter"},
    {"chartgate_bars_recorded_total", "counter"},
    {"chartgate_bars_late_ignored_total", "counter"},
    {"chartgate_ticks_repeated_total", "counter"},
    {"chartgate_ticks_missed_total", "counter"},
    {"chartgate_stream_catchups_total", "counter"},
    {"chartgate_stream_caught_up_ticks_total", "counter"},
    {"chartgate_stream_resumes_total", "counter"},
    {"chartgate_stream_hold_overflows_total", "counter"},
    {"chartgate_bars_off_session_total", "counter"},
    {"chartgate_bars_timer_closed_total", "counter"},
    {"chartgate_redis_up", "gauge"},
    {"chartgate_redis_reconnects_total", "counter"},
    {"chartgate_redis_auth_failures_total", "counter"},
    {"chartgate_redis_cluster_moved_total", "counter"},
    {"chartgate_redis_cluster_asked_total", "counter"},
    {"chartgate_redis_cluster_resubscribes_total", "counter"},
    {"chartgate_redis_cluster_map_refreshes_total", "counter"},
    {"chartgate_redis_master_switches_total", "counter"},
    {"chartgate_published_total", "counter"},
    {"chartgate_payloads_dropped_total", "counter"},
    {"chartgate_client_errors_total", "counter"},
    {"chartgate_service_replies_total", "counter"},
    {"chartgate_service_events_dropped_total", "counter"},
    {"chartgate_overlay_applied_total", "counter"},
    {"chartgate_overlay_syncs_total", "counter"},
    {"chartgate_overlay_oversize_total", "counter"},
    {"chartgate_deflate_sockets", "gauge"},
    {"chartgate_deflate_messages_out_total", "counter"},
    {"chartgate_deflate_bytes_in_total", "counter"},
    {"chartgate_deflate_compressions_total", "counter"},
    {"chartgate_service_messages_total", "counter"},
    {"chartgate_service_unavailable_total", "counter"},
};
#define NFAMILIES (sizeof(families) / sizeof(families[0]))

/* The label values of the labelled families, by the index the gateway counts them under. */
static const struct {
    int index;
    const char *name;
} reasons[] =
    {{CG_REJECT_NO_COOKIE, "no_cookie"},     {CG_REJECT_UNKNOWN_SESSION, "unknown_session"},
     {CG_REJECT_BAD_SESSION, "bad_session"}, {CG_REJECT_EXPIRED, "expired"},
     {CG_REJECT_ORIGIN, "origin"},           {CG_REJECT_REDIS_DOWN, "redis_down"},
     {CG_REJECT_BAD_PATH, "bad_path"},       {CG_REJECT_IP_LIMIT, "ip_limit"},
     {CG_REJECT_IP_RATE, "ip_rate"},         {CG_REJECT_USER_LIMIT, "user_limit"},
     {CG_REJECT_SHUTDOWN, "shutdown"}},
  links[] = {{CG_LINK_PUBSUB, "pubsub"},
             {CG_LINK_COMMAND, "command"},
             {CG_LINK_INBOX, "inbox"},
             {CG_LINK_SESSION, "session"}},
  peers[] = {{CG_LINK_PUBSUB, "pubsub"},
             {CG_LINK_COMMAND, "command"},
             {CG_LINK_INBOX, "inbox"},
             {CG_LINK_SESSION, "session"},
             {CG_AUTH_PEER_SENTINEL, "sentinel"}},
  sources[] = {{CG_SOURCE_PUBSUB, "pubsub"}, {CG_SOURCE_INBOX, "inbox"}},
  drops[] = {{CG_DROP_BAD_JSON, "bad_json"},   {CG_DROP_NOT_OBJECT, "not_object"},
             {CG_DROP_NO_TARGET, "no_target"}, {CG_DROP_TOO_LARGE, "too_large"},
             {CG_DROP_BAD_SEQ, "bad_seq"},     {CG_DROP_BAD_OVERLAY, "bad_overlay"}},
  codes[] = {{CG_ERR_BAD_JSON, "bad_json"},
             {CG_ERR_BAD_REQUEST, "bad_request"},
             {CG_ERR_UNKNOWN_ACTION, "unknown_action"},
             {CG_ERR_FORBIDDEN, "forbidden"},
             {CG_ERR_INVALID_INSTRUMENT, "invalid_instrument"},
             {CG_ERR_TOO_MANY_SUBSCRIPTIONS, "too_many_subscriptions"},
             {CG_ERR_RATE_LIMITED, "rate_limited"},
             {CG_ERR_UNKNOWN_SERVICE, "unknown_service"},
             {CG_ERR_UNAVAILABLE, "unavailable"}},
  replies[] = {{CG_REPLY_DELIVERED, "delivered"},
               {CG_REPLY_NO_SOCKET, "no_socket"},
               {CG_REPLY_MALFORMED, "malformed"}};

/* Two configured services: the per-service families have a sample each. */
static const struct cg_config *two_services(void)
{
    static struct cg_config cfg;
    cfg.nservices = 2;
    snprintf(cfg.services[0], sizeof(cfg.services[0]), "alerts");
    snprintf(cfg.services[1], sizeof(cfg.services[1]), "orders");
    return &cfg;
}
#define COUNT(a) (sizeof(a) / sizeof(a[0]))

/* Renders into text with room to spare; the length returned is the text's. */
static size_t render(const struct cg_metrics_gauges *g)
{
    memset(text, '#', sizeof(text));
    size_t n = cg_metrics_render(g, text, sizeof(text));
    CHECK(n < sizeof(text));
    CHECK_UINT(strnlen(text, sizeof(text)), n);
    return n;
}

/* How many lines of text are exactly line (given without its newline). */
static int count_line(const char *line)
{
    int found = 0;
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p += n)
        found += (p == text || p[-1] == '\n') && p[n] == '\n';
    return found;
}

/* How many sample lines family name has (lines "name value" or "name{...} value"). */
static int count_samples(const char *name)
{
    int found = 0;
    size_t n = strlen(name);
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, name, n) && (p[n] == ' ' || p[n] == '{'))
            found++;
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    return found;
}

static void sample_is(int at, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The line printf(fmt, ...) is in text exactly once. */
static void sample_is(int at, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    int found = count_line(line);
    if (!check_(found == 1, __FILE__, at, "the sample line is there, once"))
        fprintf(stderr, "    %s: %d times\n", line, found);
}

#define SAMPLE(...) sample_is(__LINE__, __VA_ARGS__)

/* Every line is "# HELP name text", "# TYPE name type" or a sample; each family is HELP, TYPE,
 * then its samples, once; the text ends with a newline. */
static void check_exposition_format(size_t len)
{
    CHECK(len > 0 && text[len - 1] == '\n');
    char family[128] = "", type[16] = "";
    char seen[NFAMILIES] = {0};
    int expect = 0; /* 0: HELP, 1: TYPE, 2: a sample (or the next HELP once one was seen) */
    int samples = 0;
    for (const char *p = text; p < text + len;) {
        const char *nl = memchr(p, '\n', (size_t)(text + len - p));
        if (!CHECK(nl != NULL))
            return;
        char line[512];
        size_t n = (size_t)(nl - p);
        if (!CHECK(n > 0 && n < sizeof(line)))
            return;
        memcpy(line, p, n);
        line[n] = 0;
        p = nl + 1;
        char name[128], rest[256];
        if (!strncmp(line, "# HELP ", 7)) {
            if (expect == 2)
                CHECK(samples > 0);
            check_(expect != 1, __FILE__, __LINE__, "HELP where TYPE was due");
            CHECK(sscanf(line, "# HELP %127s %255[^\n]", name, rest) == 2);
            snprintf(family, sizeof(family), "%s", name);
            size_t i = 0;
            while (i < NFAMILIES && strcmp(families[i].name, name))
                i++;
            if (!check_(i < NFAMILIES, __FILE__, __LINE__, "a known family"))
                fprintf(stderr, "    %s\n", name);
            else if (!check_(!seen[i]++, __FILE__, __LINE__, "each family once"))
                fprintf(stderr, "    %s\n", name);
            expect = 1;
            samples = 0;
        } else if (!strncmp(line, "# TYPE ", 7)) {
            CHECK_INT(expect, 1);
            CHECK(sscanf(line, "# TYPE %127s %15s", name, type) == 2);
            CHECK_STR(name, family);
            CHECK(!strcmp(type, "counter") || !strcmp(type, "gauge"));
            size_t fl = strlen(family);
            int total = fl > 6 && !strcmp(family + fl - 6, "_total");
            if (!check_(total == !strcmp(type, "counter"), __FILE__, __LINE__,
                        "counters, and only counters, end in _total"))
                fprintf(stderr, "    %s is a %s\n", family, type);
            expect = 2;
        } else {
            CHECK_INT(expect, 2);
            size_t fl = strlen(family);
            if (!check_(!strncmp(line, family, fl) && (line[fl] == ' ' || line[fl] == '{'),
                        __FILE__, __LINE__, "a sample of the family announced"))
                fprintf(stderr, "    %s (family %s)\n", line, family);
            const char *v = strrchr(line, ' ');
            char *end;
            if (v && line[fl] == '{') /* {label="value"} */
                CHECK(line[fl + 1] != '}' && strstr(line + fl, "=\"") && v[-1] == '}');
            double d = v ? strtod(v + 1, &end) : -1;
            if (!check_(v && end != v + 1 && !*end && d >= 0, __FILE__, __LINE__,
                        "a sample ends in a non-negative number"))
                fprintf(stderr, "    %s\n", line);
            samples++;
        }
    }
    CHECK_INT(expect, 2);
    CHECK(samples > 0);
    for (size_t i = 0; i < NFAMILIES; i++)
        if (!check_(seen[i] == 1, __FILE__, __LINE__, "every family rendered"))
            fprintf(stderr, "    %s\n", families[i].name);
}

static void test_zero(void)
{
    memset(&cg_metrics, 0, sizeof(cg_metrics));
    struct cg_metrics_gauges g = {.cfg = two_services()};
    size_t n = render(&g);
    check_exposition_format(n);
    /* Before anything happened every sample is there, at 0. */
    for (size_t i = 0; i < NFAMILIES; i++)
        CHECK(count_samples(families[i].name) >= 1);
    SAMPLE("chartgate_connections 0");
    SAMPLE("chartgate_frames_out_total 0");
    SAMPLE("chartgate_handshake_auth_seconds_total 0.000000");
    SAMPLE("chartgate_redis_up{link=\"pubsub\"} 0");
    SAMPLE("chartgate_handshake_rejections_total{reason=\"origin\"} 0");
}

/* Every field of cg_metrics and of the gauges set to a value of its own. */
static void set_all(struct cg_metrics_gauges *g)
{
    struct cg_metrics *m = &cg_metrics;
    memset(m, 0, sizeof(*m));
    m->frames_out = 1001;
    m->bytes_out = 1002;
    m->ws_messages_out = 1003;
    m->frames_conflated = 1004;
    m->frames_paced = 1017;
    m->slow_disconnects = 1005;
    m->handshakes = 1006;
    m->sessions_revoked = 1007;
    m->rate_limit_disconnects = 1008;
    m->session_cache_hits = 1009;
    m->session_lookups = 1010;
    m->handshake_us_total = 1234567;
    m->snapshots = 1011;
    m->resumes = 1012;
    m->history_requests = 1013;
    m->bars_recorded = 1014;
    m->bars_late_ignored = 1015;
    m->bars_off_session = 1016;
    m->bars_timer_closed = 1017;
    m->redis_master_switches = 1016;
    m->ticks_repeated = 1017;
    m->ticks_missed = 1018;
    m->stream_catchups = 1019;
    m->stream_caught_up = 1020;
    m->stream_resumes = 1021;
    m->stream_hold_overflows = 1022;
    for (int i = 0; i < CG_AUTH_PEER__COUNT; i++)
        m->redis_auth_failures[i] = 700 + (uint64_t)i;
    for (int i = 0; i < CG_REJECT__COUNT; i++)
        m->rejections[i] = 200 + (uint64_t)i;
    for (int i = 0; i < CG_LINK__COUNT; i++)
        m->redis_reconnects[i] = 300 + (uint64_t)i;
    for (int i = 0; i < CG_SOURCE__COUNT; i++)
        m->published[i] = 400 + (uint64_t)i;
    for (int i = 0; i < CG_DROP__COUNT; i++)
        m->dropped[i] = 500 + (uint64_t)i;
    for (int i = 0; i < CG_ERR__COUNT; i++)
        m->client_errors[i] = 600 + (uint64_t)i;
    for (int i = 0; i < CG_REPLY__COUNT; i++)
        m->replies[i] = 700 + (uint64_t)i;
    m->service_events_dropped = 1016;
    m->overlay_applied = 1017;
    m->overlay_syncs = 1018;
    m->overlay_oversize = 1019;
    m->cluster_moved = 1101;
    m->cluster_asked = 1102;
    m->cluster_resubscribes = 1103;
    m->cluster_map_refreshes = 1104;
    m->deflate_sockets = 1111;
    m->deflate_messages_out = 1112;
    m->deflate_bytes_in = 1113;
    m->deflate_compressions = 1114;
    m->service_sent[0] = 801;
    m->service_sent[1] = 802;
    m->service_unavailable[0] = 901;
    m->service_unavailable[1] = 902;
    *g = (struct cg_metrics_gauges){.connections = 11,
                                    .users = 12,
                                    .subscriptions = 13,
                                    .instruments = 14,
                                    .uptime_s = 15,
                                    .cfg = two_services()};
    g->redis_up[CG_LINK_PUBSUB] = 1;
    g->redis_up[CG_LINK_INBOX] = 7; /* any non-zero: up */
}

static void test_values(void)
{
    struct cg_metrics_gauges g;
    set_all(&g);
    size_t n = render(&g);
    check_exposition_format(n);

    SAMPLE("chartgate_connections 11");
    SAMPLE("chartgate_users 12");
    SAMPLE("chartgate_subscriptions 13");
    SAMPLE("chartgate_instruments 14");
    SAMPLE("chartgate_uptime_seconds 15");
    SAMPLE("chartgate_frames_out_total 1001");
    SAMPLE("chartgate_bytes_out_total 1002");
    SAMPLE("chartgate_ws_messages_out_total 1003");
    SAMPLE("chartgate_frames_conflated_total 1004");
    SAMPLE("chartgate_frames_paced_total 1017");
    SAMPLE("chartgate_slow_disconnects_total 1005");
    SAMPLE("chartgate_handshakes_total 1006");
    SAMPLE("chartgate_sessions_revoked_total 1007");
    SAMPLE("chartgate_rate_limit_disconnects_total 1008");
    SAMPLE("chartgate_session_cache_hits_total 1009");
    SAMPLE("chartgate_session_lookups_total 1010");
    SAMPLE("chartgate_handshake_auth_seconds_total 1.234567"); /* microseconds as seconds */
    SAMPLE("chartgate_snapshots_total 1011");
    SAMPLE("chartgate_resumes_total 1012");
    SAMPLE("chartgate_history_requests_total 1013");
    SAMPLE("chartgate_bars_recorded_total 1014");
    SAMPLE("chartgate_bars_late_ignored_total 1015");
    SAMPLE("chartgate_bars_off_session_total 1016");
    SAMPLE("chartgate_bars_timer_closed_total 1017");
    SAMPLE("chartgate_redis_master_switches_total 1016");
    SAMPLE("chartgate_redis_cluster_moved_total 1101");
    SAMPLE("chartgate_redis_cluster_asked_total 1102");
    SAMPLE("chartgate_redis_cluster_resubscribes_total 1103");
    SAMPLE("chartgate_redis_cluster_map_refreshes_total 1104");
    SAMPLE("chartgate_ticks_repeated_total 1017");
    SAMPLE("chartgate_ticks_missed_total 1018");
    SAMPLE("chartgate_stream_catchups_total 1019");
    SAMPLE("chartgate_stream_caught_up_ticks_total 1020");
    SAMPLE("chartgate_stream_resumes_total 1021");
    SAMPLE("chartgate_stream_hold_overflows_total 1022");

    /* Labelled families: one sample per label value, each with its own count. */
    CHECK_INT(count_samples("chartgate_handshake_rejections_total"), CG_REJECT__COUNT);
    CHECK_UINT(COUNT(reasons), CG_REJECT__COUNT);
    for (size_t i = 0; i < COUNT(reasons); i++)
        SAMPLE("chartgate_handshake_rejections_total{reason=\"%s\"} %d", reasons[i].name,
               200 + reasons[i].index);
    CHECK_INT(count_samples("chartgate_redis_up"), CG_LINK__COUNT);
    CHECK_INT(count_samples("chartgate_redis_reconnects_total"), CG_LINK__COUNT);
    CHECK_UINT(COUNT(links), CG_LINK__COUNT);
    for (size_t i = 0; i < COUNT(links); i++) {
        int up = links[i].index == CG_LINK_PUBSUB || links[i].index == CG_LINK_INBOX;
        SAMPLE("chartgate_redis_up{link=\"%s\"} %d", links[i].name, up);
        SAMPLE("chartgate_redis_reconnects_total{link=\"%s\"} %d", links[i].name,
               300 + links[i].index);
    }
    CHECK_INT(count_samples("chartgate_redis_auth_failures_total"), CG_AUTH_PEER__COUNT);
    CHECK_UINT(COUNT(peers), CG_AUTH_PEER__COUNT);
    for (size_t i = 0; i < COUNT(peers); i++)
        SAMPLE("chartgate_redis_auth_failures_total{link=\"%s\"} %d", peers[i].name,
               700 + peers[i].index);
    CHECK_INT(count_samples("chartgate_published_total"), CG_SOURCE__COUNT);
    CHECK_UINT(COUNT(sources), CG_SOURCE__COUNT);
    for (size_t i = 0; i < COUNT(sources); i++)
        SAMPLE("chartgate_published_total{source=\"%s\"} %d", sources[i].name,
               400 + sources[i].index);
    CHECK_INT(count_samples("chartgate_payloads_dropped_total"), CG_DROP__COUNT);
    CHECK_UINT(COUNT(drops), CG_DROP__COUNT);
    for (size_t i = 0; i < COUNT(drops); i++)
        SAMPLE("chartgate_payloads_dropped_total{reason=\"%s\"} %d", drops[i].name,
               500 + drops[i].index);
    /* Error frames by code: every code but "none" (CG_ERR_NONE is not an error). */
    CHECK_INT(count_samples("chartgate_client_errors_total"), CG_ERR__COUNT - 1);
    CHECK(strstr(text, "code=\"none\"") == NULL);
    for (size_t i = 0; i < COUNT(codes); i++)
        SAMPLE("chartgate_client_errors_total{code=\"%s\"} %d", codes[i].name,
               600 + codes[i].index);

    CHECK_UINT(COUNT(replies), CG_REPLY__COUNT);
    for (size_t i = 0; i < COUNT(replies); i++)
        SAMPLE("chartgate_service_replies_total{result=\"%s\"} %d", replies[i].name,
               700 + replies[i].index);
    SAMPLE("chartgate_service_events_dropped_total 1016");
    SAMPLE("chartgate_overlay_applied_total 1017");
    SAMPLE("chartgate_overlay_syncs_total 1018");
    SAMPLE("chartgate_overlay_oversize_total 1019");
    SAMPLE("chartgate_deflate_sockets 1111");
    SAMPLE("chartgate_deflate_messages_out_total 1112");
    SAMPLE("chartgate_deflate_bytes_in_total 1113");
    SAMPLE("chartgate_deflate_compressions_total 1114");
    SAMPLE("chartgate_service_messages_total{service=\"alerts\"} 801");
    SAMPLE("chartgate_service_messages_total{service=\"orders\"} 802");
    SAMPLE("chartgate_service_unavailable_total{service=\"alerts\"} 901");
    SAMPLE("chartgate_service_unavailable_total{service=\"orders\"} 902");

    /* Without --service the per-service families are left out (no family without samples). */
    g.cfg = NULL;
    render(&g);
    CHECK_INT(count_samples("chartgate_service_messages_total"), 0);
    CHECK(strstr(text, "chartgate_service_unavailable_total") == NULL);
    SAMPLE("chartgate_service_events_dropped_total 1016");
    g.cfg = two_services();

    /* Counters use the whole 64-bit range. */
    cg_metrics.frames_out = UINT64_MAX;
    render(&g);
    SAMPLE("chartgate_frames_out_total 18446744073709551615");
}

/* For every buffer size: the length returned is the whole text's, like snprintf; the buffer
 * holds the longest prefix that fits, NUL-terminated, and nothing is written past bufsz. */
static void test_small_buffer(void)
{
    struct cg_metrics_gauges g;
    set_all(&g);
    size_t len = render(&g);
    static char full[sizeof(text)];
    memcpy(full, text, len + 1);

    CHECK_UINT(cg_metrics_render(&g, NULL, 0), len);
    static char buf[sizeof(text)];
    int bad = 0;
    for (size_t size = 0; size <= len + 1 && bad < 5; size++) {
        memset(buf, '#', len + 2);
        size_t n = cg_metrics_render(&g, buf, size);
        int ok = n == len && buf[size] == '#';
        if (size > 0) {
            size_t kept = size - 1 < len ? size - 1 : len;
            ok &= buf[kept] == 0 && !memcmp(buf, full, kept);
        }
        if (!check_(ok, __FILE__, __LINE__, "truncated render: needed length, prefix, bounds")) {
            fprintf(stderr, "    bufsz %zu: returned %zu (text %zu)\n", size, n, len);
            bad++;
        }
    }
    /* The returned length says whether it was cut: >= bufsz means it was. */
    CHECK(cg_metrics_render(&g, buf, len) >= len);
    CHECK(cg_metrics_render(&g, buf, len + 1) < len + 1);
    CHECK_STR(buf, full);
}

int main(void)
{
    test_zero();
    test_values();
    test_small_buffer();
    return check_summary("test_metrics");
}
