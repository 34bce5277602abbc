/* config.c -- the settings table, flag and JSON-file parsing, secret files, and --help.
 *
 * Credentials (the --redis URL's USER:PASSWORD, the password files) are secrets: no error line
 * echoes them (URLs are masked before they are quoted, jansson's "near '...'" context is cut)
 * and their read buffers are wiped. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "log.h"

enum kind {
    K_STR,
    K_U32,
    K_HOSTPORT,
    K_REDIS,
    K_ORIGIN,
    K_LEVEL,
    K_BOOL,
    K_PROXY,
    K_SERVICE,
    K_SERVICE_EVENTS,
    K_SENTINEL,
    K_WORKERS,
    K_CLUSTER,
    K_ONOFF,
};

/* Kinds that may be given several times; a config file gives them as an array, under the
 * flag's name or its plural ("origins", "services", "redis_sentinels"), and flags replace the
 * file's list. */
static int repeatable(enum kind k)
{
    return k == K_ORIGIN || k == K_PROXY || k == K_SERVICE || k == K_SERVICE_EVENTS ||
           k == K_SENTINEL || k == K_CLUSTER;
}

#define SECRET_MAX 1024 /* bytes read from a secret file */

struct opt {
    const char *name; /* flag without "--"; the JSON key is the same with '_' */
    enum kind kind;
    size_t off;
    size_t size; /* K_STR: buffer size */
    uint32_t min, max;
    const char *help;
};

#define F(m) offsetof(struct cg_config, m)
#define S(m) sizeof(((struct cg_config *)0)->m)

static const struct opt opts[] = {
    {"listen", K_HOSTPORT, 0, 0, 0, 0, "HOST:PORT to serve HTTP and WebSocket on"},
    {"redis", K_REDIS, 0, 0, 0, 0,
     "redis://[USER[:PASSWORD]@]HOST:PORT[/DB] of the shared Redis (a password here is visible "
     "to every local user in /proc: prefer --redis-password-file)"},
    {"redis-password-file", K_STR, F(redis_password_file), S(redis_password_file), 0, 0,
     "file holding the Redis password, or USER:PASSWORD, on one line (re-read on SIGHUP; wins "
     "over a password in --redis)"},
    {"redis-sentinel", K_SENTINEL, 0, 0, 0, 0,
     "HOST:PORT of a Redis Sentinel that knows --redis-master (repeatable, at most 8); the "
     "master's address then comes from the sentinels"},
    {"redis-cluster", K_CLUSTER, 0, 0, 0, 0,
     "HOST:PORT of a Redis Cluster node (repeatable, at most 8 seeds): keys go to their slot's "
     "master and every channel is sharded pub/sub (SPUBLISH/SSUBSCRIBE); not with --redis or "
     "--redis-sentinel"},
    {"redis-master", K_STR, F(redis_master), S(redis_master), 0, 0,
     "name of the master the sentinels monitor (required with --redis-sentinel)"},
    {"sentinel-password-file", K_STR, F(sentinel_password_file), S(sentinel_password_file), 0, 0,
     "file holding the sentinels' password, or USER:PASSWORD (re-read on SIGHUP)"},
    {"web-root", K_STR, F(web_root), S(web_root), 0, 0, "directory served at /"},
    {"origin", K_ORIGIN, 0, 0, 0, 0,
     "allowed Origin for WebSocket handshakes (repeatable; none = any origin)"},
    {"session-prefix", K_STR, F(session_prefix), S(session_prefix), 0, 0,
     "Redis key prefix of sessions"},
    {"md-prefix", K_STR, F(md_prefix), S(md_prefix), 0, 0, "pub/sub channel prefix of ticks"},
    {"user-prefix", K_STR, F(user_prefix), S(user_prefix), 0, 0,
     "pub/sub channel prefix of per-user messages"},
    {"broadcast-channel", K_STR, F(broadcast_channel), S(broadcast_channel), 0, 0,
     "pub/sub channel of messages to everyone"},
    {"inbox-key", K_STR, F(inbox_key), S(inbox_key), 0, 0, "Redis list of routed envelopes"},
    {"instruments-key", K_STR, F(instruments_key), S(instruments_key), 0, 0,
     "Redis set of known instruments"},
    {"inbox-id", K_STR, F(inbox_id), S(inbox_id), 0, 0,
     "name of this gateway's inbox processing list (default HOST:PORT)"},
    {"session-timeout-ms", K_U32, F(session_timeout_ms), 0, 10, 10000,
     "timeout of the synchronous session lookup"},
    {"session-cache-ms", K_U32, F(session_cache_ms), 0, 0, 600000,
     "how long a valid session is cached (0 = off)"},
    {"session-check-s", K_U32, F(session_check_s), 0, 1, 3600,
     "how often live sessions are re-checked (revocation bound)"},
    {"queue-max-frames", K_U32, F(queue_max_frames), 0, 4, 1000000,
     "pending frames per socket before it is closed as a slow consumer"},
    {"queue-max-bytes", K_U32, F(queue_max_bytes), 0, 4096, 1U << 30,
     "pending bytes per socket before it is closed as a slow consumer"},
    {"queue-conflate-frames", K_U32, F(queue_conflate_frames), 0, 1, 1000000,
     "pending frames from which ticks are conflated per instrument"},
    {"batch-max-bytes", K_U32, F(batch_max_bytes), 0, 1024, 16U << 20,
     "largest WebSocket message made of newline-joined frames"},
    {"deflate", K_ONOFF, F(deflate), 0, 0, 0,
     "permessage-deflate for clients that offer it: on or off"},
    {"deflate-min-bytes", K_U32, F(deflate_min_bytes), 0, 0, 16U << 20,
     "messages shorter than this are sent uncompressed"},
    {"max-subscriptions", K_U32, F(max_subscriptions), 0, 1, 100000, "subscriptions per socket"},
    {"max-message-bytes", K_U32, F(max_message_bytes), 0, 256, 16U << 20,
     "largest client message (larger: close 1009)"},
    {"rate-limit", K_U32, F(rate_limit), 0, 1, 1000000, "client messages per second per socket"},
    {"rate-burst", K_U32, F(rate_burst), 0, 1, 1000000, "client message burst per socket"},
    {"ping-s", K_U32, F(ping_s), 0, 1, 3600, "WebSocket ping interval"},
    {"idle-timeout-s", K_U32, F(idle_timeout_s), 0, 2, 7200, "close a socket silent for this long"},
    {"max-payload-bytes", K_U32, F(max_payload_bytes), 0, 64, 64U << 20,
     "largest published payload or envelope accepted"},
    {"max-instruments", K_U32, F(max_instruments), 0, 16, 10000000,
     "instruments remembered by the process"},
    {"redis-backoff-max-ms", K_U32, F(redis_backoff_max_ms), 0, 100, 60000,
     "cap of the Redis reconnect back-off"},
    {"log-level", K_LEVEL, F(log_level), 0, 0, 0, "debug, info, warn or error"},
    {"intervals", K_STR, F(intervals_text), S(intervals_text), 0, 0,
     "bar intervals, comma-separated (<n>s|m|h|d, at most 8)"},
    {"price-field", K_STR, F(price_field), S(price_field), 0, 0, "tick field holding the price"},
    {"volume-field", K_STR, F(volume_field), S(volume_field), 0, 0,
     "tick field holding the volume"},
    {"ts-field", K_STR, F(ts_field), S(ts_field), 0, 0,
     "tick field holding the epoch-ms timestamp (arrival time when absent)"},
    {"cumulative-volume", K_STR, F(cumulative_text), S(cumulative_text), 0, 0,
     "instrument prefixes whose volume is a running total, comma-separated (* = all)"},
    {"record-bars", K_BOOL, F(record_bars), 0, 0, 0,
     "aggregate every instrument and record completed bars in Redis"},
    {"bars-prefix", K_STR, F(bars_prefix), S(bars_prefix), 0, 0,
     "Redis key prefix of recorded bars"},
    {"bars-depth", K_U32, F(bars_depth), 0, 1, 100000,
     "completed bars kept in memory per instrument and interval (snapshot size)"},
    {"history-depth", K_U32, F(history_depth), 0, 1, 10000000,
     "bars kept per instrument and interval in Redis"},
    {"history-max", K_U32, F(history_max), 0, 1, 100000, "largest history reply"},
    {"resume-ring", K_U32, F(resume_ring), 0, 0, 100000,
     "ticks kept per instrument to resume reconnecting clients (at most half of "
     "--queue-max-frames)"},
    {"chart-idle-s", K_U32, F(chart_idle_s), 0, 0, 86400,
     "chart state kept after an instrument's last subscriber leaves"},
    {"timezone", K_STR, F(timezone), S(timezone), 0, 0,
     "IANA time zone of the exchange: trading days, sessions, the 1d bar (default UTC)"},
    {"sessions", K_STR, F(sessions_file), S(sessions_file), 0, 0,
     "JSON file of trading sessions per instrument pattern (PROTOCOL.md §18); none: 24/7"},
    {"bar-close-grace-ms", K_U32, F(bar_close_grace_ms), 0, 0, 600000,
     "with a calendar: a bar closes this long after its end when no later tick closes it"},
    {"session-slack-ms", K_U32, F(session_slack_ms), 0, 0, 3600000,
     "ticks this close before a session's open or after its close go into its first/last bar"},
    {"dev-login", K_BOOL, F(dev_login), 0, 0, 0,
     "DEVELOPMENT ONLY: GET /dev/login?user=NAME creates a session"},
    {"max-conns-per-ip", K_U32, F(max_conns_per_ip), 0, 0, 1000000,
     "open WebSockets per client address (0 = no limit)"},
    {"handshake-rate-per-ip", K_U32, F(handshake_rate_per_ip), 0, 0, 1000000,
     "WebSocket handshakes per second per client address (0 = no limit)"},
    {"handshake-burst-per-ip", K_U32, F(handshake_burst_per_ip), 0, 1, 1000000,
     "handshake burst per client address"},
    {"max-sockets-per-user", K_U32, F(max_sockets_per_user), 0, 0, 1000000,
     "open WebSockets per user (0 = no limit)"},
    {"trusted-proxy", K_PROXY, 0, 0, 0, 0,
     "address of a proxy whose X-Forwarded-For / X-Real-IP names the client (repeatable)"},
    {"allow-any-origin", K_BOOL, F(allow_any_origin), 0, 0, 0,
     "accept any Origin even when listening beyond loopback"},
    {"tls-cert", K_STR, F(tls_cert), S(tls_cert), 0, 0,
     "PEM certificate chain: serve wss:// and https:// (reloaded on SIGHUP)"},
    {"tls-key", K_STR, F(tls_key), S(tls_key), 0, 0, "PEM private key of --tls-cert"},
    {"service", K_SERVICE, 0, 0, 0, 0,
     "a backend service clients may send to (repeatable; [A-Za-z0-9._-], at most 64)"},
    {"service-events", K_SERVICE_EVENTS, 0, 0, 0, 0,
     "a --service that also gets connection open/close events (repeatable)"},
    {"service-prefix", K_STR, F(service_prefix), S(service_prefix), 0, 0,
     "Redis list prefix of service messages"},
    {"service-queue-max", K_U32, F(service_queue_max), 0, 1, 100000000,
     "items a service's list may hold; a send beyond it is refused (unavailable)"},
    {"reply-prefix", K_STR, F(reply_prefix), S(reply_prefix), 0, 0,
     "pub/sub channel prefix of service replies (one channel per gateway process)"},
    {"stream-len", K_U32, F(stream_len), 0, 16, 10000000,
     "ticks kept per instrument by chartgate_publish (its default; approximate, MAXLEN ~)"},
    {"stream-catchup-max", K_U32, F(stream_catchup_max), 0, 16, 10000000,
     "most stream entries read to catch an instrument up or resume a socket"},
    {"epoch-key", K_STR, F(epoch_key), S(epoch_key), 0, 0,
     "Redis key holding the epoch of shared seq numbers (created by the first gateway)"},
    {"workers", K_WORKERS, F(workers), 0, 1, 256,
     "worker processes sharing the port under a supervisor, or auto (one per online CPU); "
     "1 = a single process"},
    {"worker-deaths-max", K_U32, F(worker_deaths_max), 0, 1, 1000,
     "with --workers: more worker deaths than this within --worker-deaths-window-s and the "
     "supervisor gives up (exit 1)"},
    {"worker-deaths-window-s", K_U32, F(worker_deaths_window_s), 0, 1, 86400,
     "the window of --worker-deaths-max"},
    {"chart-prefix", K_STR, F(chart_prefix), S(chart_prefix), 0, 0,
     "pub/sub channel prefix of chart overlay operations (PROTOCOL.md §17)"},
    {"overlay-max", K_U32, F(overlay_max), 0, 1, 1000,
     "overlays an instrument may hold (shared and per-user together)"},
    {"overlay-points", K_U32, F(overlay_points), 0, 10, 100000,
     "points an overlay keeps (the oldest are dropped first)"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void defaults(struct cg_config *c, const char *web_root)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->listen_host, sizeof(c->listen_host), "127.0.0.1");
    c->listen_port = 8080;
    c->workers = 1;
    c->worker_deaths_max = 10;
    c->worker_deaths_window_s = 60;
    snprintf(c->redis_host, sizeof(c->redis_host), "127.0.0.1");
    c->redis_port = 6379;
    snprintf(c->web_root, sizeof(c->web_root), "%s", web_root ? web_root : "web");
    snprintf(c->session_prefix, sizeof(c->session_prefix), "session:");
    snprintf(c->md_prefix, sizeof(c->md_prefix), "md:");
    snprintf(c->user_prefix, sizeof(c->user_prefix), "user:");
    snprintf(c->broadcast_channel, sizeof(c->broadcast_channel), "broadcast");
    snprintf(c->inbox_key, sizeof(c->inbox_key), "chartgate:inbox");
    snprintf(c->instruments_key, sizeof(c->instruments_key), "md:instruments");
    c->session_timeout_ms = 250;
    c->session_cache_ms = 5000;
    c->session_check_s = 10;
    c->queue_max_frames = 1024;
    c->queue_max_bytes = 1U << 20;
    c->queue_conflate_frames = 64;
    c->batch_max_bytes = 65536;
    c->deflate = 1;
    c->deflate_min_bytes = 256;
    c->max_subscriptions = 200;
    c->max_message_bytes = 65536;
    c->rate_limit = 50;
    c->rate_burst = 100;
    c->ping_s = 25;
    c->idle_timeout_s = 60;
    c->max_payload_bytes = 1U << 20;
    c->max_instruments = 100000;
    c->redis_backoff_max_ms = 5000;
    c->log_level = CG_LOG_INFO;
    snprintf(c->intervals_text, sizeof(c->intervals_text), "1s,1m,5m,15m,1h,1d");
    snprintf(c->price_field, sizeof(c->price_field), "last_price");
    snprintf(c->volume_field, sizeof(c->volume_field), "volume");
    snprintf(c->ts_field, sizeof(c->ts_field), "ts");
    snprintf(c->bars_prefix, sizeof(c->bars_prefix), "bars:");
    c->bars_depth = 300;
    c->history_depth = 10000;
    c->history_max = 1000;
    c->resume_ring = 256;
    c->chart_idle_s = 300;
    snprintf(c->timezone, sizeof(c->timezone), "UTC");
    c->bar_close_grace_ms = 2000;
    c->session_slack_ms = 60000;
    c->max_conns_per_ip = 1000;
    c->handshake_rate_per_ip = 200;
    c->handshake_burst_per_ip = 400;
    snprintf(c->service_prefix, sizeof(c->service_prefix), "chartgate:service:");
    c->service_queue_max = 10000;
    snprintf(c->reply_prefix, sizeof(c->reply_prefix), "chartgate:reply:");
    c->max_sockets_per_user = 100;
    c->stream_len = 10000;
    c->stream_catchup_max = 10000;
    snprintf(c->epoch_key, sizeof(c->epoch_key), "chartgate:epoch");
    snprintf(c->chart_prefix, sizeof(c->chart_prefix), "chart:");
    c->overlay_max = 32;
    c->overlay_points = 1000;
}

int cg_config_loopback(const char *host)
{
    return !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strcmp(host, "localhost");
}

int cg_config_interval(const struct cg_config *cfg, const char *name)
{
    for (uint32_t i = 0; i < cfg->nintervals; i++)
        if (!strcmp(cfg->interval_names[i], name))
            return (int)i;
    return -1;
}

/* "15m" -> 900000. Returns 0 or -1. */
static int parse_interval(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(s, &end, 10);
    if (errno || end == s || s[0] < '1' || s[0] > '9' || n > 9999 || end[0] == 0 || end[1])
        return -1;
    int64_t unit = end[0] == 's'   ? 1000
                   : end[0] == 'm' ? 60000
                   : end[0] == 'h' ? 3600000
                   : end[0] == 'd' ? 86400000
                                   : 0;
    if (!unit)
        return -1;
    *ms = (int64_t)n * unit;
    return 0;
}

/* Splits a comma-separated list in place into out[max][width]; returns the count or -1. */
static int split_list(const char *text, char *out, size_t width, int max)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (!len || len >= width || n == max)
            return -1;
        memcpy(out + (size_t)n * width, p, len);
        out[(size_t)n * width + len] = 0;
        n++;
        p += len + (e ? 1 : 0);
        if (e && !*p)
            return -1;
    }
    return n;
}

/* Derives the parsed forms of list settings; returns 0 or -1 with err. */
static int derive(struct cg_config *c, char *err, size_t errsz)
{
    int n = split_list(c->intervals_text, &c->interval_names[0][0], sizeof(c->interval_names[0]),
                       CG_CONFIG_INTERVALS_MAX);
    if (n <= 0)
        goto bad_intervals;
    c->nintervals = (uint32_t)n;
    for (int i = 0; i < n; i++) {
        if (parse_interval(c->interval_names[i], &c->interval_ms[i]))
            goto bad_intervals;
        for (int j = 0; j < i; j++)
            if (c->interval_ms[j] == c->interval_ms[i])
                goto bad_intervals;
    }
    n = c->cumulative_text[0] ? split_list(c->cumulative_text, &c->cumulative[0][0],
                                           sizeof(c->cumulative[0]), CG_CONFIG_PREFIXES_MAX)
                              : 0;
    if (n < 0) {
        snprintf(err, errsz,
                 "chartgate: --cumulative-volume: expected up to %d comma-separated prefixes "
                 "(or *), got \"%.80s\"",
                 CG_CONFIG_PREFIXES_MAX, c->cumulative_text);
        return -1;
    }
    c->ncumulative = (uint32_t)n;
    /* The calendar is read here only to refuse a bad file at start-up; the agent keeps its own
     * copy (config stays a plain value). */
    int active = c->sessions_file[0] || strcmp(c->timezone, "UTC") != 0;
    if (active) {
        struct cg_calendar *cal =
            cg_calendar_load(c->sessions_file, c->timezone, c->session_slack_ms, err, errsz);
        if (!cal)
            return -1;
        cg_calendar_destroy(cal);
    }
    for (uint32_t i = 0; active && i < c->nintervals; i++) {
        if (c->interval_ms[i] % CG_CALENDAR_DAY_MS == 0 &&
            c->interval_ms[i] != CG_CALENDAR_DAY_MS) {
            snprintf(err, errsz,
                     "chartgate: --intervals: %s: with --sessions or --timezone, 1d is the only "
                     "interval of whole days (one trading day)",
                     c->interval_names[i]);
            return -1;
        }
    }
    /* Channels are told apart by prefix: one that starts another would route ticks as
     * overlay operations or the other way round. */
    const char *other[2] = {c->md_prefix, c->user_prefix};
    for (int i = 0; i < 2; i++) {
        size_t a = strlen(c->chart_prefix), b = strlen(other[i]);
        if (!a || !strncmp(c->chart_prefix, other[i], a < b ? a : b)) {
            snprintf(err, errsz,
                     "chartgate: --chart-prefix: \"%.60s\" must be non-empty and neither start "
                     "nor be the start of --%s \"%.60s\"",
                     c->chart_prefix, i ? "user-prefix" : "md-prefix", other[i]);
            return -1;
        }
    }
    return 0;
bad_intervals:
    snprintf(err, errsz,
             "chartgate: --intervals: expected up to %d distinct comma-separated intervals "
             "like 1s,1m,1h,1d, got \"%.80s\"",
             CG_CONFIG_INTERVALS_MAX, c->intervals_text);
    return -1;
}

int cg_config_parse_hostport(const char *s, char *host, size_t hostsz, uint32_t *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || colon[1] < '0' || colon[1] > '9')
        return -1;
    size_t hl = (size_t)(colon - s);
    if (s[0] == '[') { /* [::1]:8080 */
        if (colon[-1] != ']')
            return -1;
        s++;
        hl -= 2;
    } else if (memchr(s, ']', hl) || memchr(s, '[', hl)) {
        return -1;
    }
    if (!hl || hl >= hostsz)
        return -1;
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (errno || *end || colon[1] == 0 || p == 0 || p > 65535)
        return -1;
    memcpy(host, s, hl);
    host[hl] = 0;
    *port = (uint32_t)p;
    return 0;
}

/* Percent-decodes in[0..len) into out (outsz bytes with the NUL). Returns 0, or -1 on a bad
 * escape, a decoded NUL or no room. */
static int pct_decode(const char *in, size_t len, char *out, size_t outsz)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch == '%') {
            char hex[3] = {0, 0, 0};
            char *end;
            if (i + 2 >= len)
                return -1;
            hex[0] = in[i + 1];
            hex[1] = in[i + 2];
            unsigned long v = strtoul(hex, &end, 16);
            if (*end || !isxdigit((unsigned char)hex[0]) || !v)
                return -1;
            ch = (unsigned char)v;
            i += 2;
        }
        if (o + 1 >= outsz)
            return -1;
        out[o++] = (char)ch;
    }
    out[o] = 0;
    return 0;
}

int cg_config_parse_redis_url(const char *s, char *host, size_t hostsz, uint32_t *port,
                              uint32_t *db, struct cg_config_credentials *cred)
{
    static const char scheme[] = "redis://";
    if (strncmp(s, scheme, sizeof(scheme) - 1))
        return -1;
    s += sizeof(scheme) - 1;
    /* The last '@' ends the credentials: neither host nor DB holds one. */
    const char *at = strrchr(s, '@');
    struct cg_config_credentials c;
    memset(&c, 0, sizeof(c));
    if (at) {
        if (!cred)
            return -1;
        const char *colon = memchr(s, ':', (size_t)(at - s));
        size_t ul = colon ? (size_t)(colon - s) : (size_t)(at - s);
        if (pct_decode(s, ul, c.user, sizeof(c.user)) ||
            (colon &&
             pct_decode(colon + 1, (size_t)(at - colon - 1), c.password, sizeof(c.password))) ||
            (colon && !c.password[0]) || (!colon && !c.user[0])) {
            explicit_bzero(&c, sizeof(c));
            return -1;
        }
        s = at + 1;
    }
    char hp[200];
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    if (hl >= sizeof(hp))
        goto bad;
    memcpy(hp, s, hl);
    hp[hl] = 0;
    const char *rb = strrchr(hp, ']');
    if (!strchr(rb ? rb : hp, ':')) { /* no port: [::1] or host */
        if (hl + 6 >= sizeof(hp))
            goto bad;
        strcat(hp, ":6379");
    }
    uint32_t p, d = 0;
    if (cg_config_parse_hostport(hp, host, hostsz, &p))
        goto bad;
    if (slash && slash[1]) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(slash + 1, &end, 10);
        if (errno || *end || v > 15 || !isdigit((unsigned char)slash[1]))
            goto bad;
        d = (uint32_t)v;
    }
    *port = p;
    *db = d;
    if (cred)
        *cred = c;
    explicit_bzero(&c, sizeof(c));
    return 0;
bad:
    explicit_bzero(&c, sizeof(c));
    return -1;
}

/* Copies s into out with the password of a URL's credentials (everything from the first ':'
 * up to the last '@' after "://"), or the whole of credentials without ':', replaced by
 * "***": for quoting a value in an error line. */
static const char *mask_url(const char *s, char *out, size_t outsz)
{
    const char *from = strstr(s, "://");
    from = from ? from + 3 : s;
    const char *at = strrchr(from, '@');
    if (!at) {
        snprintf(out, outsz, "%s", s);
        return out;
    }
    const char *colon = memchr(from, ':', (size_t)(at - from));
    const char *cut = colon ? colon + 1 : from;
    snprintf(out, outsz, "%.*s***%s", (int)(cut - s), s, at);
    return out;
}

int cg_config_read_secret(const char *path, struct cg_config_credentials *out, char *err,
                          size_t errsz)
{
    char buf[SECRET_MAX + 1];
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errsz, "cannot read %.200s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, sizeof(buf), f);
    int rerr = ferror(f);
    fclose(f);
    int rc = -1;
    if (rerr) {
        snprintf(err, errsz, "cannot read %.200s", path);
        goto out;
    }
    if (n > SECRET_MAX) {
        snprintf(err, errsz, "%.200s: longer than %d bytes", path, SECRET_MAX);
        goto out;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = 0;
    if (!n) {
        snprintf(err, errsz, "%.200s: empty", path);
        goto out;
    }
    if (memchr(buf, 0, n) || memchr(buf, '\n', n) || memchr(buf, '\r', n)) {
        snprintf(err, errsz, "%.200s: expected one line, PASSWORD or USER:PASSWORD", path);
        goto out;
    }
    struct cg_config_credentials c;
    memset(&c, 0, sizeof(c));
    const char *colon = strchr(buf, ':');
    const char *pw = colon ? colon + 1 : buf;
    size_t ul = colon ? (size_t)(colon - buf) : 0;
    if (ul >= sizeof(c.user) || strlen(pw) >= sizeof(c.password)) {
        snprintf(err, errsz, "%.200s: user or password too long", path);
        goto out;
    }
    if (!*pw) {
        snprintf(err, errsz, "%.200s: no password after \"USER:\"", path);
        goto out;
    }
    memcpy(c.user, buf, ul);
    memcpy(c.password, pw, strlen(pw) + 1);
    *out = c;
    explicit_bzero(&c, sizeof(c));
    rc = 0;
out:
    explicit_bzero(buf, sizeof(buf));
    return rc;
}

/* Applies one value. where is "--flag" or "FILE: key \"k\""; returns 0 or -1 with err. */
static int apply(struct cg_config *c, const struct opt *o, const char *val, const char *where,
                 char *err, size_t errsz)
{
    char *base = (char *)c;
    switch (o->kind) {
    case K_STR:
        if (strlen(val) >= o->size) {
            snprintf(err, errsz, "chartgate: %s: longer than %zu characters", where, o->size - 1);
            return -1;
        }
        memcpy(base + o->off, val, strlen(val) + 1);
        return 0;
    case K_U32: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(val, &end, 10);
        if (errno || *end || !*val || val[0] == '-' || v < o->min || v > o->max) {
            snprintf(err, errsz, "chartgate: %s: expected an integer from %u to %u, got \"%.40s\"",
                     where, o->min, o->max, val);
            return -1;
        }
        *(uint32_t *)(base + o->off) = (uint32_t)v;
        return 0;
    }
    case K_HOSTPORT:
        if (cg_config_parse_hostport(val, c->listen_host, sizeof(c->listen_host),
                                     &c->listen_port)) {
            snprintf(err, errsz, "chartgate: %s: expected HOST:PORT, got \"%.80s\"", where, val);
            return -1;
        }
        return 0;
    case K_REDIS: {
        if (cg_config_parse_redis_url(val, c->redis_host, sizeof(c->redis_host), &c->redis_port,
                                      &c->redis_db, &c->redis_url_auth) == 0) {
            c->redis_given = 1;
            return 0;
        }
        char masked[120];
        snprintf(err, errsz,
                 "chartgate: %s: expected redis://[USER[:PASSWORD]@]HOST:PORT[/DB] (DB 0-15; "
                 "percent-encode reserved characters), got \"%.80s\"",
                 where, mask_url(val, masked, sizeof(masked)));
        return -1;
    }
    case K_WORKERS: {
        char *end;
        errno = 0;
        unsigned long long v = strcmp(val, "auto") ? strtoull(val, &end, 10) : 0;
        if (strcmp(val, "auto") &&
            (errno || *end || !*val || val[0] == '-' || v < o->min || v > o->max)) {
            snprintf(err, errsz,
                     "chartgate: %s: expected auto or an integer from %u to %u, got \"%.40s\"",
                     where, o->min, o->max, val);
            return -1;
        }
        *(uint32_t *)(base + o->off) = (uint32_t)v;
        return 0;
    }
    case K_SENTINEL:
        if (c->nsentinels >= CG_CONFIG_SENTINELS_MAX ||
            cg_config_parse_hostport(val, c->sentinel_hosts[c->nsentinels],
                                     sizeof(c->sentinel_hosts[0]),
                                     &c->sentinel_ports[c->nsentinels])) {
            snprintf(err, errsz, "chartgate: %s: expected HOST:PORT (at most %d), got \"%.80s\"",
                     where, CG_CONFIG_SENTINELS_MAX, val);
            return -1;
        }
        c->nsentinels++;
        return 0;
    case K_CLUSTER:
        if (c->ncluster >= CG_CONFIG_SENTINELS_MAX ||
            cg_config_parse_hostport(val, c->cluster_hosts[c->ncluster],
                                     sizeof(c->cluster_hosts[0]), &c->cluster_ports[c->ncluster])) {
            snprintf(err, errsz, "chartgate: %s: expected HOST:PORT (at most %d), got \"%.80s\"",
                     where, CG_CONFIG_SENTINELS_MAX, val);
            return -1;
        }
        c->ncluster++;
        return 0;
    case K_ORIGIN:
        if (c->norigins >= CG_CONFIG_ORIGINS_MAX || strlen(val) >= sizeof(c->origins[0]) ||
            !(strncmp(val, "http://", 7) == 0 || strncmp(val, "https://", 8) == 0)) {
            snprintf(err, errsz,
                     "chartgate: %s: expected an origin like https://host[:port] (at most %d), "
                     "got \"%.80s\"",
                     where, CG_CONFIG_ORIGINS_MAX, val);
            return -1;
        }
        snprintf(c->origins[c->norigins++], sizeof(c->origins[0]), "%s", val);
        return 0;
    case K_PROXY:
        if (c->ntrusted_proxies >= CG_CONFIG_ORIGINS_MAX || !*val ||
            strlen(val) >= sizeof(c->trusted_proxies[0]) ||
            strspn(val, "0123456789abcdef.:ABCDEF") != strlen(val)) {
            snprintf(err, errsz,
                     "chartgate: %s: expected an IP address (at most %d), got \"%.80s\"", where,
                     CG_CONFIG_ORIGINS_MAX, val);
            return -1;
        }
        snprintf(c->trusted_proxies[c->ntrusted_proxies++], sizeof(c->trusted_proxies[0]), "%s",
                 val);
        return 0;
    case K_SERVICE:
        if (cg_config_service_name_valid(val, strlen(val)) &&
            cg_config_service(c, val, strlen(val)) >= 0)
            return 0; /* given twice: once is enough */
        if (c->nservices >= CG_CONFIG_SERVICES_MAX ||
            !cg_config_service_name_valid(val, strlen(val))) {
            snprintf(err, errsz,
                     "chartgate: %s: expected a service name ([A-Za-z0-9._-], 1 to %d characters; "
                     "at most %d services), got \"%.80s\"",
                     where, CG_CONFIG_SERVICE_MAX, CG_CONFIG_SERVICES_MAX, val);
            return -1;
        }
        snprintf(c->services[c->nservices++], sizeof(c->services[0]), "%s", val);
        return 0;
    case K_SERVICE_EVENTS:
        if (!cg_config_service_name_valid(val, strlen(val))) {
            snprintf(err, errsz, "chartgate: %s: expected a service name, got \"%.80s\"", where,
                     val);
            return -1;
        }
        /* Which --service it names is checked once every setting is in (load). */
        if (strlen(c->service_events_text) + strlen(val) + 2 > sizeof(c->service_events_text)) {
            snprintf(err, errsz, "chartgate: %s: too many services", where);
            return -1;
        }
        strcat(strcat(c->service_events_text, c->service_events_text[0] ? "," : ""), val);
        return 0;
    case K_BOOL:
        if (!strcmp(val, "true") || !strcmp(val, "1")) {
            *(int *)(base + o->off) = 1;
        } else if (!strcmp(val, "false") || !strcmp(val, "0")) {
            *(int *)(base + o->off) = 0;
        } else {
            snprintf(err, errsz, "chartgate: %s: expected true or false, got \"%.40s\"", where,
                     val);
            return -1;
        }
        return 0;
    case K_ONOFF:
        if (!strcmp(val, "on") || !strcmp(val, "true")) {
            *(int *)(base + o->off) = 1;
        } else if (!strcmp(val, "off") || !strcmp(val, "false")) {
            *(int *)(base + o->off) = 0;
        } else {
            snprintf(err, errsz, "chartgate: %s: expected on or off, got \"%.40s\"", where, val);
            return -1;
        }
        return 0;
    case K_LEVEL: {
        enum cg_log_level l;
        if (cg_log_parse_level(val, &l)) {
            snprintf(err, errsz,
                     "chartgate: %s: expected debug, info, warn or error, got \"%.40s\"", where,
                     val);
            return -1;
        }
        c->log_level = (int)l;
        return 0;
    }
    }
    return -1;
}

static const struct opt *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(opts[i].name) == len && !memcmp(opts[i].name, name, len))
            return &opts[i];
    return NULL;
}

static const struct opt *find_key(const char *key)
{
    char flag[64];
    size_t n = strlen(key);
    if (n >= sizeof(flag))
        return NULL;
    for (size_t i = 0; i <= n; i++)
        flag[i] = key[i] == '_' ? '-' : key[i];
    return find_flag(flag, n);
}

/* A repeatable setting from the file: one string, or an array of them. */
static int load_list(struct cg_config *c, const struct opt *o, json_t *v, const char *where,
                     char *err, size_t errsz)
{
    if (json_is_string(v))
        return apply(c, o, json_string_value(v), where, err, errsz);
    size_t i;
    json_t *e;
    if (!json_is_array(v))
        goto bad;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e))
            goto bad;
        if (apply(c, o, json_string_value(e), where, err, errsz))
            return -1;
    }
    return 0;
bad:
    snprintf(err, errsz, "chartgate: %s: expected a string or an array of strings", where);
    return -1;
}

/* Forgets a repeatable setting's values (the flags replace what the file gave). */
static void clear_list(struct cg_config *c, enum kind k)
{
    if (k == K_ORIGIN)
        c->norigins = 0;
    else if (k == K_PROXY)
        c->ntrusted_proxies = 0;
    else if (k == K_SERVICE)
        c->nservices = 0;
    else if (k == K_SERVICE_EVENTS)
        c->service_events_text[0] = 0;
    else if (k == K_SENTINEL)
        c->nsentinels = 0;
    else if (k == K_CLUSTER)
        c->ncluster = 0;
}

static int load_file(struct cg_config *c, const char *path, char *err, size_t errsz)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        /* jansson quotes the text "near" the error, which may be a password: cut it. */
        char *near = strstr(je.text, " near ");
        if (near)
            *near = 0;
        if (je.line > 0)
            snprintf(err, errsz, "chartgate: %s:%d:%d: %s", path, je.line, je.column, je.text);
        else
            snprintf(err, errsz, "chartgate: %s: %s", path, je.text);
        return -1;
    }
    int rc = 0;
    if (!json_is_object(root)) {
        snprintf(err, errsz, "chartgate: %s: expected a JSON object of settings", path);
        rc = -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (rc)
            break;
        char where[200], buf[64];
        snprintf(where, sizeof(where), "%s: key \"%.64s\"", path, key);
        const struct opt *o = find_key(key);
        if (!o && strlen(key) > 1 && key[strlen(key) - 1] == 's') { /* "origins", "services" */
            char one[64];
            snprintf(one, sizeof(one), "%.*s", (int)strlen(key) - 1, key);
            o = find_key(one);
            if (o && !repeatable(o->kind))
                o = NULL;
        }
        if (o && repeatable(o->kind)) {
            rc = load_list(c, o, v, where, err, errsz);
            continue;
        }
        if (!o) {
            snprintf(err, errsz, "chartgate: %s: unknown setting", where);
            rc = -1;
            break;
        }
        const char *val = NULL;
        if ((o->kind == K_BOOL || o->kind == K_ONOFF) && json_is_boolean(v)) {
            val = json_is_true(v) ? "true" : "false";
        } else if (o->kind == K_BOOL) {
            snprintf(err, errsz, "chartgate: %s: expected true or false", where);
            rc = -1;
            break;
        } else if ((o->kind == K_U32 || o->kind == K_WORKERS) && json_is_integer(v) &&
                   json_integer_value(v) >= 0) {
            snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
            val = buf;
        } else if (o->kind != K_U32 && json_is_string(v)) {
            val = json_string_value(v);
        } else {
            snprintf(err, errsz, "chartgate: %s: expected %s", where,
                     o->kind == K_U32 ? "a non-negative integer" : "a string");
            rc = -1;
            break;
        }
        rc = apply(c, o, val, where, err, errsz);
    }
    json_decref(root);
    return rc;
}

int cg_config_service_name_valid(const char *name, size_t len)
{
    if (!len || len > CG_CONFIG_SERVICE_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

int cg_config_service(const struct cg_config *cfg, const char *name, size_t len)
{
    for (uint32_t i = 0; i < cfg->nservices; i++)
        if (strlen(cfg->services[i]) == len && !memcmp(cfg->services[i], name, len))
            return (int)i;
    return -1;
}

/* --service-events names --service entries: their bits. */
static int service_events(struct cg_config *c, char *err, size_t errsz)
{
    c->service_events = 0;
    char names[sizeof(c->service_events_text)];
    snprintf(names, sizeof(names), "%s", c->service_events_text);
    for (char *save = NULL, *n = strtok_r(names, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
        int i = cg_config_service(c, n, strlen(n));
        if (i < 0) {
            snprintf(err, errsz, "chartgate: --service-events: \"%.64s\" is not a --service", n);
            return -1;
        }
        c->service_events |= 1u << i;
    }
    return 0;
}

/* Effective credentials: the URL's, then the file's (a file naming no user keeps the URL's).
 * Returns 0, or -1 with err ("chartgate: --flag: ..."); cfg unchanged on -1. */
static int load_secrets(struct cg_config *cfg, char *err, size_t errsz)
{
    struct cg_config_credentials redis = cfg->redis_url_auth, sentinel;
    memset(&sentinel, 0, sizeof(sentinel));
    char why[300];
    int rc = -1;
    if (cfg->redis_password_file[0]) {
        struct cg_config_credentials f;
        if (cg_config_read_secret(cfg->redis_password_file, &f, why, sizeof(why))) {
            snprintf(err, errsz, "chartgate: --redis-password-file: %s", why);
            goto out;
        }
        if (f.user[0])
            memcpy(redis.user, f.user, sizeof(redis.user));
        memcpy(redis.password, f.password, sizeof(redis.password));
        explicit_bzero(&f, sizeof(f));
    }
    if (redis.user[0] && !redis.password[0]) {
        snprintf(err, errsz,
                 "chartgate: --redis: user \"%.64s\" has no password (give USER:PASSWORD in the "
                 "URL, or --redis-password-file)",
                 redis.user);
        goto out;
    }
    if (cfg->sentinel_password_file[0] &&
        cg_config_read_secret(cfg->sentinel_password_file, &sentinel, why, sizeof(why))) {
        snprintf(err, errsz, "chartgate: --sentinel-password-file: %s", why);
        goto out;
    }
    cfg->redis_auth = redis;
    cfg->sentinel_auth = sentinel;
    rc = 0;
out:
    explicit_bzero(&redis, sizeof(redis));
    explicit_bzero(&sentinel, sizeof(sentinel));
    return rc;
}

int cg_config_reload_secrets(struct cg_config *cfg, char *err, size_t errsz)
{
    err[0] = 0;
    return load_secrets(cfg, err, errsz);
}

/* The Redis settings that go together: sentinels and a master name, the secret files. */
static int check_redis(struct cg_config *cfg, char *err, size_t errsz)
{
    if (cfg->nsentinels && !cfg->redis_master[0]) {
        snprintf(err, errsz, "chartgate: --redis-master: required with --redis-sentinel");
        return -1;
    }
    if (cfg->redis_master[0] && !cfg->nsentinels) {
        snprintf(err, errsz, "chartgate: --redis-master: needs at least one --redis-sentinel");
        return -1;
    }
    for (const char *p = cfg->redis_master; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            snprintf(err, errsz, "chartgate: --redis-master: a name without spaces expected");
            return -1;
        }
    if (cfg->ncluster && (cfg->nsentinels || cfg->redis_given)) {
        snprintf(err, errsz, "chartgate: --redis-cluster: not with %s (the seeds name the nodes)",
                 cfg->nsentinels ? "--redis-sentinel" : "--redis");
        return -1;
    }
    if (cfg->ncluster && cfg->redis_db) {
        snprintf(err, errsz, "chartgate: --redis-cluster: a cluster has database 0 only");
        return -1;
    }
    if (cfg->sentinel_password_file[0] && !cfg->nsentinels) {
        snprintf(err, errsz, "chartgate: --sentinel-password-file: needs --redis-sentinel");
        return -1;
    }
    return load_secrets(cfg, err, errsz);
}

void cg_config_scrub_argv(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        char *u = strstr(argv[i], "redis://");
        char *at = u ? strrchr(u, '@') : NULL;
        if (!at)
            continue;
        char *colon = memchr(u + 8, ':', (size_t)(at - u - 8));
        for (char *p = colon ? colon + 1 : u + 8; p < at; p++)
            *p = '*';
    }
}

static void usage(void (*out)(const char *))
{
    char line[512];
    out("usage: chartgate [--config FILE] [--FLAG VALUE ...]\n"
        "Real-time market-data WebSocket gateway: relays Redis pub/sub and list messages\n"
        "to authenticated browser sessions subscribed by instrument.\n\n"
        "  --config FILE             JSON object of settings (keys: flag names, '_' for '-')\n"
        "  --help                    this text\n");
    for (size_t i = 0; i < NOPTS; i++) {
        snprintf(line, sizeof(line), "  --%-24s%s\n", opts[i].name, opts[i].help);
        out(line);
    }
}

static enum cg_config_result load(struct cg_config *cfg, int argc, char **argv,
                                  const char *default_web_root, char *err, size_t errsz,
                                  void (*usage_out)(const char *text));

enum cg_config_result cg_config_load(struct cg_config *cfg, int argc, char **argv,
                                     const char *default_web_root, char *err, size_t errsz,
                                     void (*usage_out)(const char *text))
{
    enum cg_config_result r = load(cfg, argc, argv, default_web_root, err, errsz, usage_out);
    /* The error is one line whatever the input held: values are echoed in it. */
    for (char *c = err; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    return r;
}

static enum cg_config_result load(struct cg_config *cfg, int argc, char **argv,
                                  const char *default_web_root, char *err, size_t errsz,
                                  void (*usage_out)(const char *text))
{
    defaults(cfg, default_web_root);
    err[0] = 0;
    /* The file first, wherever --config stands, so that flags override it. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(usage_out);
            return CG_CONFIG_HELP;
        }
        const struct opt *fo = !strncmp(argv[i], "--", 2) && !strchr(argv[i], '=')
                                   ? find_flag(argv[i] + 2, strlen(argv[i] + 2))
                                   : NULL;
        if (fo && fo->kind != K_BOOL) {
            i++; /* a flag's value is never taken for --help or --config */
            continue;
        }
        if (!strcmp(argv[i], "--config") || !strncmp(argv[i], "--config=", 9)) {
            const char *path = argv[i][8] == '=' ? argv[i] + 9 : (i + 1 < argc ? argv[++i] : NULL);
            if (!path) {
                snprintf(err, errsz, "chartgate: --config: missing FILE");
                return CG_CONFIG_ERROR;
            }
            if (load_file(cfg, path, err, errsz))
                return CG_CONFIG_ERROR;
        }
    }
    uint32_t lists_from_flags = 0; /* bit k: a flag of kind k was given */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9))
            continue;
        if (strncmp(a, "--", 2)) {
            char masked[120];
            snprintf(err, errsz, "chartgate: unexpected argument \"%.80s\" (see --help)",
                     mask_url(a, masked, sizeof(masked)));
            return CG_CONFIG_ERROR;
        }
        const char *eq = strchr(a + 2, '=');
        size_t nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        const struct opt *o = find_flag(a + 2, nl);
        if (!o) {
            snprintf(err, errsz, "chartgate: unknown flag \"%.*s\" (see --help)",
                     (int)(nl + 2) > 80 ? 80 : (int)(nl + 2), a);
            return CG_CONFIG_ERROR;
        }
        const char *val = eq                  ? eq + 1
                          : o->kind == K_BOOL ? "true"
                                              : (i + 1 < argc ? argv[++i] : NULL);
        char where[80];
        snprintf(where, sizeof(where), "--%s", o->name);
        if (!val) {
            snprintf(err, errsz, "chartgate: %s: missing value", where);
            return CG_CONFIG_ERROR;
        }
        if (repeatable(o->kind) && !(lists_from_flags & (1u << o->kind))) {
            clear_list(cfg, o->kind); /* flags replace the file's list */
            lists_from_flags |= 1u << o->kind;
        }
        if (apply(cfg, o, val, where, err, errsz))
            return CG_CONFIG_ERROR;
    }
    if (cfg->rate_burst < cfg->rate_limit / 10 + 1)
        cfg->rate_burst = cfg->rate_limit / 10 + 1;
    if (!cfg->inbox_id[0])
        snprintf(cfg->inbox_id, sizeof(cfg->inbox_id), "%.100s:%u", cfg->listen_host,
                 cfg->listen_port);
    if (cfg->queue_conflate_frames > cfg->queue_max_frames)
        cfg->queue_conflate_frames = cfg->queue_max_frames;
    if (derive(cfg, err, errsz))
        return CG_CONFIG_ERROR;
    if (service_events(cfg, err, errsz))
        return CG_CONFIG_ERROR;
    if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
        snprintf(err, errsz, "chartgate: --%s: --tls-cert and --tls-key go together",
                 cfg->tls_cert[0] ? "tls-key" : "tls-cert");
        return CG_CONFIG_ERROR;
    }
    const char *tls_files[2] = {cfg->tls_cert, cfg->tls_key};
    for (int i = 0; i < 2 && cfg->tls_cert[0]; i++) {
        FILE *f = fopen(tls_files[i], "r");
        if (!f) {
            snprintf(err, errsz, "chartgate: --%s: cannot read %.200s: %s",
                     i ? "tls-key" : "tls-cert", tls_files[i], strerror(errno));
            return CG_CONFIG_ERROR;
        }
        fclose(f);
    }
    if (check_redis(cfg, err, errsz))
        return CG_CONFIG_ERROR;
    if (!cfg->norigins && !cfg->allow_any_origin && !cfg->dev_login &&
        !cg_config_loopback(cfg->listen_host)) {
        snprintf(err, errsz,
                 "chartgate: --origin: required when listening beyond loopback (%.80s); give the "
                 "page's origin, or --allow-any-origin",
                 cfg->listen_host);
        return CG_CONFIG_ERROR;
    }
    /* A replay must fit a client's queue with room to spare. */
    if (cfg->resume_ring > cfg->queue_max_frames / 2)
        cfg->resume_ring = cfg->queue_max_frames / 2;
    if (cfg->idle_timeout_s <= cfg->ping_s) {
        snprintf(err, errsz, "chartgate: --idle-timeout-s: must be greater than --ping-s (%u)",
                 cfg->ping_s);
        return CG_CONFIG_ERROR;
    }
    return CG_CONFIG_OK;
}
