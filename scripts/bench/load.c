/* load.c -- cg-load: the benchmark's WebSocket load client (thousands of sockets, one epoll).
 *
 * What it owns: one epoll set of non-blocking TCP sockets, each a WebSocket client speaking the
 * subset of proto/PROTOCOL.md a chart page uses (cookie handshake, one `subscribe`, pongs), the
 * sessions it creates in Redis for them (one synchronous hiredis link, used before the run and
 * at exit only), and the measurements: a log-linear latency histogram, per-subscription seq
 * tracking and counters. One thread, no threads; several processes for more sockets than one
 * process may open (the bench runner merges their reports).
 *
 * How it measures:
 *   - latency: every tick carries the publisher's *scheduled* send time as `"pub_us":` in its
 *     data (scripts/bench/publish.c, CLOCK_REALTIME microseconds); receive time is read once per
 *     read() on the same clock. A stalled system therefore shows as latency (no coordinated
 *     omission). Values go into a log-linear histogram (128 sub-buckets per power of two:
 *     <= 0.8 % error), merged across processes by the runner from the `hist` array.
 *   - loss: each socket remembers, per subscribed instrument, the last seq seen (the snapshot
 *     gives the start); a jump counts the skipped seqs as `missing` (conflated by the gateway or
 *     lost), a step back counts `out_of_order`. `expected` is left to the runner, which knows
 *     what was published (per_instrument_subs x published per instrument).
 *   - handshakes: status of every upgrade (101 checked against Sec-WebSocket-Accept with
 *     OpenSSL's SHA-1), connect errors by errno, connect-to-101 latency, handshakes per second.
 *
 *   - send round trips (--send-rate R): once every socket is open, each sends R `send` actions
 *     a second to --send-service (PROTOCOL.md §3 send, §16) for --send-for seconds, on one
 *     open-loop schedule spread evenly over the sockets (send n is due at start + n / (R x
 *     sockets), on socket n mod sockets). Its id is the *scheduled* send time (CLOCK_REALTIME
 *     microseconds), so the `sent` answer carrying it back gives the round trip without any
 *     per-send state, and a client or gateway that falls behind shows as latency. Answers are
 *     counted by kind (sent, unavailable, rate_limited, other errors); sends whose socket has
 *     closed are counted as skipped; the lateness of the client's own sending is reported.
 *
 * Modes: hold (default: open --conns sockets, subscribe, print `ready ...` on stdout once every
 * socket is subscribed or failed, then receive (and send, with --send-rate) until --duration or
 * SIGTERM/SIGINT, then print ONE JSON report line on stdout) and --churn (keep --concurrency
 * handshakes in flight, close each socket right after its 101 with close code 1000 and an RST so
 * no TIME_WAIT piles up; measures sustained authenticated handshakes per second).
 *
 * Only loopback targets and sources; every run is bounded by --duration; sessions created in
 * Redis are deleted again at exit (and expire after an hour anyway).
 *
 * Map: options -> histogram -> sessions (Redis) -> sockets and handshake -> WebSocket frames ->
 * frame scanning and accounting -> sends -> the loop -> report -> main.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BENCH_PROG "cg-load"
#include "bench.h"

#define LOAD_MAX_CONNS 200000
#define LOAD_RBUF (1U << 20)        /* shared read buffer */
#define LOAD_MAX_PENDING (4U << 20) /* a socket's unparsed bytes beyond this: protocol error */
#define LOAD_HTTP_MAX 8192
#define LOAD_EVENTS 1024
#define LOAD_STATUS_MAX 600
#define LOAD_CLOSE_CODES 8
#define HIST_SUB 128
#define HIST_BUCKETS (256 + 56 * HIST_SUB)

/* ---- options ----------------------------------------------------------------------------- */

struct load_opts {
    struct bench_url url;   /* the gateway: ws://HOST:PORT/PATH */
    struct bench_url redis; /* the sessions' Redis */
    char session_prefix[64];
    uint32_t conns;
    uint32_t users;
    uint32_t sources;
    uint32_t instruments;
    char prefix[BENCH_PREFIX_MAX + 1];
    uint32_t subs;
    int zipf;
    double zipf_s;
    double duration_s;
    double connect_rate;
    uint32_t concurrency;
    int churn;
    double stats_s;
    uint64_t seed;
    int overlays; /* subscribe with "overlays":true; overlay frames are counted as ticks */
    int deflate;  /* offer permessage-deflate (server_no_context_takeover) and inflate */
    char origin[160];
    double send_rate;  /* sends per second per socket; 0: none */
    double send_for_s; /* seconds of sending from ready; 0: until the end */
    char send_service[65];
};

enum conn_state { C_IDLE, C_CONNECTING, C_HTTP, C_OPEN, C_DONE };

struct conn {
    int fd;
    uint8_t state;
    uint8_t subscribed;
    uint8_t deflate; /* the 101 accepted permessage-deflate */
    uint16_t nsubs;
    uint32_t user;
    uint16_t *subs;    /* sorted instrument indices; owned */
    int64_t *last_seq; /* per subs[] slot, -1 = none yet; owned */
    uint8_t *in;       /* unparsed bytes (partial HTTP head or frame); owned, NULL when none */
    uint32_t in_len;
    uint8_t *out; /* unsent bytes (rare: a write that would block); owned */
    uint32_t out_len;
    uint64_t t_connect_ns;
    char key[32];
};

struct hist {
    uint64_t n[HIST_BUCKETS];
    uint64_t count, max, sum;
};

struct load_stats {
    uint64_t handshakes_ok, connect_errors, http_errors, accept_mismatch, disconnects;
    uint64_t status[LOAD_STATUS_MAX];
    uint64_t errno_counts[160];
    uint64_t ticks, missing, out_of_order, unexpected, snapshots, subscribed, error_frames,
        other_frames, messages, tick_messages, bytes, pings, bad_frames;
    /* --deflate: sockets that got the extension, messages that came compressed, and their
     * bytes once inflated (bytes counts payload bytes as received) */
    uint64_t deflate_sockets, compressed_messages, inflated_bytes;
    uint16_t close_code[LOAD_CLOSE_CODES];
    uint64_t close_count[LOAD_CLOSE_CODES];
    /* --send-rate: sends made, skipped (socket closed), and their answers by kind */
    uint64_t sends, send_skipped, sent, unavailable, rate_limited, send_errors, lag_max_us;
};

struct load {
    struct load_opts o;
    struct conn *conns;
    uint32_t started, inflight, open, finished;
    int ep;
    uint8_t *rbuf;
    uint64_t now_us; /* CLOCK_REALTIME of the current read */
    uint64_t t0_ns, t_ready_ns, t_first_ok_ns, t_last_ok_ns;
    int ready_printed;
    struct hist lat;  /* publish (scheduled) -> receive, microseconds */
    struct hist hs;   /* connect -> 101, microseconds */
    struct hist slat; /* send (scheduled) -> its sent answer, microseconds */
    /* --send-rate: the schedule, from the ready line on */
    int sending;
    uint32_t *send_to; /* the sockets open at ready, in order; owned */
    uint32_t nsend_to;
    uint64_t send_t0_ns, send_t0_us, send_end_ns, send_n;
    double send_period_ns; /* between two sends of the whole process */
    struct load_stats st;
    uint64_t *per_subs; /* per instrument: sockets subscribed */
    uint64_t *per_rx;   /* per instrument: ticks received */
    double *zipf_cdf;
    uint64_t rng;
    redisContext *redis;
    uint32_t pid;
    z_stream z;    /* --deflate: one inflater, reset per message (no context takeover) */
    uint8_t *zbuf; /* LOAD_MAX_PENDING: an inflated message */
};

/* The signal flag: the one piece of state a handler may touch. */
static volatile sig_atomic_t load_stop;

static void on_signal(int sig)
{
    (void)sig;
    load_stop = 1;
}

static void usage(FILE *f)
{
    fputs("usage: cg-load --url ws://127.0.0.1:PORT/ws --redis redis://127.0.0.1:PORT [options]\n"
          "  --conns N            sockets to open (hold mode) or keep in flight (churn)  [100]\n"
          "  --users N            distinct users/sessions, sockets spread round-robin   [conns]\n"
          "  --sources N          spread over source addresses 127.0.0.1..127.0.0.N      [1]\n"
          "  --instruments K      instruments named <prefix><i>, i < K                  [100]\n"
          "  --prefix P           instrument name prefix                                 [bn]\n"
          "  --subs S             instruments per socket (0: no subscribe)               [1]\n"
          "  --dist uniform|zipf  which instruments a socket picks              [uniform]\n"
          "  --zipf-s S           Zipf exponent                                         [1.0]\n"
          "  --duration S         hard bound of the run, seconds                         [60]\n"
          "  --connect-rate R     new connections per second (0: as fast as possible)      [0]\n"
          "  --concurrency M      handshakes in flight at most                          [256]\n"
          "  --churn              close each socket after its 101 and open another\n"
          "  --session-prefix P   Redis key prefix of sessions                     [session:]\n"
          "  --origin O           Origin header                     [http://HOST:PORT of url]\n"
          "  --stats S            progress line on stderr every S seconds (0: off)        [0]\n"
          "  --seed N             PRNG seed                                               [1]\n"
          "  --send-rate R        `send` actions per second per socket, from ready on     [0]\n"
          "  --send-for S         seconds of sending (0: until the end)                  [0]\n"
          "  --send-service NAME  the service sends go to                             [bench]\n"
          "  --overlays           subscribe with \"overlays\":true and count overlay frames "
          "(cg-publish\n"
          "                       --mode overlay) instead of ticks: seq is the op's v, latency\n"
          "                       from its point [pub_ms, pub_us %% 1000]\n"
          "  --deflate            offer permessage-deflate (server_no_context_takeover) and\n"
          "                       inflate compressed messages\n"
          "Prints `ready ...` when every socket is subscribed (hold mode), then one JSON line\n"
          "with the report at the end (duration over, or SIGTERM/SIGINT).\n",
          f);
}

static void parse_opts(struct load_opts *o, int argc, char **argv)
{
    enum {
        O_URL = 1,
        O_REDIS,
        O_CONNS,
        O_USERS,
        O_SOURCES,
        O_INSTR,
        O_PREFIX,
        O_SUBS,
        O_DIST,
        O_ZIPF,
        O_DUR,
        O_RATE,
        O_CONC,
        O_CHURN,
        O_SPFX,
        O_ORIGIN,
        O_STATS,
        O_SEED,
        O_SEND_RATE,
        O_SEND_FOR,
        O_SEND_SERVICE,
        O_OVERLAYS,
        O_DEFLATE,
        O_HELP
    };
    static const struct option opts[] = {{"url", required_argument, 0, O_URL},
                                         {"redis", required_argument, 0, O_REDIS},
                                         {"conns", required_argument, 0, O_CONNS},
                                         {"users", required_argument, 0, O_USERS},
                                         {"sources", required_argument, 0, O_SOURCES},
                                         {"instruments", required_argument, 0, O_INSTR},
                                         {"prefix", required_argument, 0, O_PREFIX},
                                         {"subs", required_argument, 0, O_SUBS},
                                         {"dist", required_argument, 0, O_DIST},
                                         {"zipf-s", required_argument, 0, O_ZIPF},
                                         {"duration", required_argument, 0, O_DUR},
                                         {"connect-rate", required_argument, 0, O_RATE},
                                         {"concurrency", required_argument, 0, O_CONC},
                                         {"churn", no_argument, 0, O_CHURN},
                                         {"session-prefix", required_argument, 0, O_SPFX},
                                         {"origin", required_argument, 0, O_ORIGIN},
                                         {"stats", required_argument, 0, O_STATS},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"send-rate", required_argument, 0, O_SEND_RATE},
                                         {"send-for", required_argument, 0, O_SEND_FOR},
                                         {"send-service", required_argument, 0, O_SEND_SERVICE},
                                         {"overlays", no_argument, 0, O_OVERLAYS},
                                         {"deflate", no_argument, 0, O_DEFLATE},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    const char *url = NULL, *redis = NULL;
    memset(o, 0, sizeof(*o));
    o->conns = 100;
    o->sources = 1;
    o->instruments = 100;
    snprintf(o->prefix, sizeof(o->prefix), "bn");
    o->subs = 1;
    o->zipf_s = 1.0;
    o->duration_s = 60;
    o->concurrency = 256;
    o->seed = 1;
    snprintf(o->session_prefix, sizeof(o->session_prefix), "session:");
    snprintf(o->send_service, sizeof(o->send_service), "bench");
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_URL:
            url = optarg;
            break;
        case O_REDIS:
            redis = optarg;
            break;
        case O_CONNS:
            o->conns = (uint32_t)bench_num_arg("conns", optarg, 1, LOAD_MAX_CONNS);
            break;
        case O_USERS:
            o->users = (uint32_t)bench_num_arg("users", optarg, 1, LOAD_MAX_CONNS);
            break;
        case O_SOURCES:
            o->sources = (uint32_t)bench_num_arg("sources", optarg, 1, 250);
            break;
        case O_INSTR:
            o->instruments = (uint32_t)bench_num_arg("instruments", optarg, 1, 65535);
            break;
        case O_PREFIX:
            bench_prefix_arg(optarg, o->prefix, sizeof(o->prefix));
            break;
        case O_SUBS:
            o->subs = (uint32_t)bench_num_arg("subs", optarg, 0, 65535);
            break;
        case O_DIST:
            if (!strcmp(optarg, "zipf"))
                o->zipf = 1;
            else if (strcmp(optarg, "uniform"))
                bench_die("--dist: uniform or zipf, got '%s'", optarg);
            break;
        case O_ZIPF:
            o->zipf_s = bench_num_arg("zipf-s", optarg, 0, 10);
            break;
        case O_DUR:
            o->duration_s = bench_num_arg("duration", optarg, 0.1, 3600);
            break;
        case O_RATE:
            o->connect_rate = bench_num_arg("connect-rate", optarg, 0, 1e6);
            break;
        case O_CONC:
            o->concurrency = (uint32_t)bench_num_arg("concurrency", optarg, 1, 100000);
            break;
        case O_CHURN:
            o->churn = 1;
            break;
        case O_SPFX:
            snprintf(o->session_prefix, sizeof(o->session_prefix), "%s", optarg);
            break;
        case O_ORIGIN:
            snprintf(o->origin, sizeof(o->origin), "%s", optarg);
            break;
        case O_STATS:
            o->stats_s = bench_num_arg("stats", optarg, 0, 3600);
            break;
        case O_SEED:
            o->seed = (uint64_t)bench_num_arg("seed", optarg, 0, 1e15);
            break;
        case O_SEND_RATE:
            o->send_rate = bench_num_arg("send-rate", optarg, 0, 100000);
            break;
        case O_SEND_FOR:
            o->send_for_s = bench_num_arg("send-for", optarg, 0, 3600);
            break;
        case O_OVERLAYS:
            o->overlays = 1;
            break;
        case O_DEFLATE:
            o->deflate = 1;
            break;
        case O_SEND_SERVICE: {
            size_t n = strlen(optarg);
            if (!n || n >= sizeof(o->send_service) ||
                strspn(optarg,
                       "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
                bench_die("--send-service: want a service name ([A-Za-z0-9._-], 1 to 64), got '%s'",
                          optarg);
            memcpy(o->send_service, optarg, n + 1);
            break;
        }
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc)
        bench_die("unexpected argument '%s'", argv[optind]);
    if (!url || !redis)
        bench_die("--url and --redis are required (see --help)");
    bench_parse_url("url", "ws://", url, &o->url);
    bench_parse_url("redis", "redis://", redis, &o->redis);
    if (o->subs > o->instruments)
        bench_die("--subs %u is more than --instruments %u", o->subs, o->instruments);
    if (o->churn)
        o->subs = 0;
    if (o->churn && o->send_rate > 0)
        bench_die("--send-rate and --churn do not go together");
    if (!o->users)
        o->users = o->conns;
    if (!o->origin[0])
        snprintf(o->origin, sizeof(o->origin), "http://%s:%d", o->url.host, o->url.port);
}

/* ---- histogram ------------------------------------------------------------------------------ */

static unsigned hist_index(uint64_t v)
{
    if (v < 256)
        return (unsigned)v;
    unsigned e = 63 - (unsigned)__builtin_clzll(v) - 7; /* v >> e in [128, 256) */
    unsigned i = 256 + (e - 1) * HIST_SUB + (unsigned)((v >> e) - HIST_SUB);
    return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

/* The lowest value of bucket i (what the report prints for it). */
static uint64_t hist_value(unsigned i)
{
    if (i < 256)
        return i;
    unsigned e = (i - 256) / HIST_SUB + 1;
    return (uint64_t)((i - 256) % HIST_SUB + HIST_SUB) << e;
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->n[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

static uint64_t hist_pct(const struct hist *h, double p)
{
    if (!h->count)
        return 0;
    uint64_t want = (uint64_t)(p / 100.0 * (double)h->count + 0.5), seen = 0;
    if (want < 1)
        want = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->n[i];
        if (seen >= want)
            return hist_value(i) < h->max ? hist_value(i) : h->max;
    }
    return h->max;
}

/* ---- sessions (Redis) ------------------------------------------------------------------------ */

static void session_id(const struct load *l, uint32_t u, char *buf, size_t sz)
{
    snprintf(buf, sz, "cgload-%u-%u", l->pid, u);
}

static void redis_check(redisContext *r, redisReply *rep, const char *what)
{
    if (!rep)
        bench_die("redis %s: %s", what, r->errstr);
    if (rep->type == REDIS_REPLY_ERROR)
        bench_die("redis %s: %s", what, rep->str);
    freeReplyObject(rep);
}

static void sessions_create(struct load *l)
{
    struct timeval tv = {5, 0};
    l->redis = redisConnectWithTimeout(l->o.redis.host, l->o.redis.port, tv);
    if (!l->redis || l->redis->err)
        bench_die("redis %s:%d: %s", l->o.redis.host, l->o.redis.port,
                  l->redis ? l->redis->errstr : "out of memory");
    redisSetTimeout(l->redis, tv);
    if (l->o.redis.db)
        redis_check(l->redis, redisCommand(l->redis, "SELECT %u", l->o.redis.db), "SELECT");
    char sid[64], key[160], val[96];
    for (uint32_t u = 0; u < l->o.users; u++) {
        session_id(l, u, sid, sizeof(sid));
        snprintf(key, sizeof(key), "%s%s", l->o.session_prefix, sid);
        snprintf(val, sizeof(val), "{\"user_id\":\"bench-%u-%u\"}", l->pid, u);
        redisAppendCommand(l->redis, "SET %s %s EX 3600", key, val);
        if (u % 1000 == 999 || u + 1 == l->o.users) {
            for (uint32_t k = u - u % 1000; k <= u; k++) {
                redisReply *rep = NULL;
                if (redisGetReply(l->redis, (void **)&rep) != REDIS_OK)
                    bench_die("redis SET: %s", l->redis->errstr);
                redis_check(l->redis, rep, "SET");
            }
        }
    }
}

static void sessions_delete(struct load *l)
{
    if (!l->redis)
        return;
    char sid[64], key[160];
    uint32_t pending = 0;
    for (uint32_t u = 0; u < l->o.users; u++) {
        session_id(l, u, sid, sizeof(sid));
        snprintf(key, sizeof(key), "%s%s", l->o.session_prefix, sid);
        redisAppendCommand(l->redis, "DEL %s", key);
        pending++;
    }
    for (; pending; pending--) {
        redisReply *rep = NULL;
        if (redisGetReply(l->redis, (void **)&rep) != REDIS_OK) {
            fprintf(stderr, "cg-load: redis DEL: %s (sessions expire in an hour)\n",
                    l->redis->errstr);
            break;
        }
        freeReplyObject(rep);
    }
    redisFree(l->redis);
    l->redis = NULL;
}

/* ---- instrument choice ---------------------------------------------------------------------- */

static int cmp_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static uint16_t pick_instrument(struct load *l)
{
    if (!l->o.zipf)
        return (uint16_t)(bench_rnd(&l->rng) % l->o.instruments);
    return (uint16_t)bench_zipf_pick(l->zipf_cdf, l->o.instruments, bench_rnd_unit(&l->rng));
}

/* Chooses c's S distinct instruments (all of them when S = K). */
static void choose_subs(struct load *l, struct conn *c)
{
    uint32_t s = l->o.subs, k = l->o.instruments;
    c->nsubs = (uint16_t)s;
    if (!s)
        return;
    c->subs = malloc(s * sizeof(*c->subs));
    c->last_seq = malloc(s * sizeof(*c->last_seq));
    if (!c->subs || !c->last_seq)
        bench_die("out of memory");
    if (s == k) {
        for (uint32_t i = 0; i < s; i++)
            c->subs[i] = (uint16_t)i;
    } else {
        /* Rejection sampling; when S is close to K a partial shuffle instead. */
        uint8_t *taken = calloc(k, 1);
        if (!taken)
            bench_die("out of memory");
        uint32_t n = 0, tries = 0;
        while (n < s && tries < 50 * s) {
            uint16_t i = pick_instrument(l);
            tries++;
            if (!taken[i]) {
                taken[i] = 1;
                c->subs[n++] = i;
            }
        }
        for (uint32_t i = 0; n < s && i < k; i++)
            if (!taken[i]) {
                taken[i] = 1;
                c->subs[n++] = (uint16_t)i;
            }
        free(taken);
        qsort(c->subs, s, sizeof(*c->subs), cmp_u16);
    }
    for (uint32_t i = 0; i < s; i++) {
        c->last_seq[i] = -1;
        l->per_subs[c->subs[i]]++;
    }
}

static int sub_slot(const struct conn *c, uint32_t inst)
{
    int lo = 0, hi = (int)c->nsubs - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c->subs[mid] == inst)
            return mid;
        if (c->subs[mid] < inst)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* ---- sockets and handshake ----------------------------------------------------------------- */

static void count_errno(struct load *l, int err)
{
    l->st.connect_errors++;
    l->st.errno_counts[err > 0 && err < 160 ? err : 0]++;
}

static void conn_close(struct load *l, struct conn *c, int rst)
{
    if (c->fd >= 0) {
        if (rst) {
            struct linger lg = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(c->fd);
        c->fd = -1;
    }
    if (c->state == C_CONNECTING || c->state == C_HTTP)
        l->inflight--;
    if (c->state == C_OPEN)
        l->open--;
    c->state = C_DONE;
    l->finished++;
    free(c->in);
    c->in = NULL;
    c->in_len = 0;
    free(c->out);
    c->out = NULL;
    c->out_len = 0;
}

/* Writes bytes to c, keeping what the socket does not take (rare: small control frames). */
static void conn_send(struct load *l, struct conn *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    if (!c->out_len) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
            l->st.disconnects++;
            conn_close(l, c, 0);
            return;
        }
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        }
        if (!len)
            return;
    }
    uint8_t *nb = realloc(c->out, c->out_len + len);
    if (!nb)
        bench_die("out of memory");
    memcpy(nb + c->out_len, p, len);
    c->out = nb;
    c->out_len += (uint32_t)len;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_flush(struct load *l, struct conn *c)
{
    ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) {
        l->st.disconnects++;
        conn_close(l, c, 0);
        return;
    }
    if (n > 0) {
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (uint32_t)n;
    }
    if (!c->out_len) {
        free(c->out);
        c->out = NULL;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

static void conn_start(struct load *l, struct conn *c, uint32_t idx)
{
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001U + idx % l->o.sources);
    dst.sin_port = htons((uint16_t)l->o.url.port);
    inet_pton(AF_INET, l->o.url.host, &dst.sin_addr);
    c->state = C_CONNECTING;
    c->subscribed = 0;
    l->inflight++;
    c->t_connect_ns = bench_mono_ns();
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        count_errno(l, errno);
        conn_close(l, c, 0);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (l->o.sources > 1 && bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
        count_errno(l, errno);
        conn_close(l, c, 0);
        return;
    }
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
        count_errno(l, errno);
        conn_close(l, c, 0);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        bench_die("epoll_ctl: %s", strerror(errno));
}

static void b64(const uint8_t *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static void send_upgrade(struct load *l, struct conn *c)
{
    uint8_t raw[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = bench_rnd(&l->rng);
        memcpy(raw + i, &r, 8);
    }
    b64(raw, 16, c->key);
    char sid[64], req[1024];
    session_id(l, c->user, sid, sizeof(sid));
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nOrigin: %s\r\nCookie: sessionid=%s\r\n%s\r\n",
                     l->o.url.path, l->o.url.host, l->o.url.port, c->key, l->o.origin, sid,
                     l->o.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                    "server_no_context_takeover\r\n"
                                  : "");
    c->state = C_HTTP;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
    conn_send(l, c, req, (size_t)n);
}

/* A masked client frame. */
static void send_frame(struct load *l, struct conn *c, int opcode, const void *payload, size_t len)
{
    uint8_t hdr[14];
    size_t h = 0;
    hdr[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126)
        hdr[h++] = (uint8_t)(0x80 | len);
    else if (len < 65536) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (uint8_t)(len >> 8);
        hdr[h++] = (uint8_t)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint32_t mask = (uint32_t)bench_rnd(&l->rng);
    memcpy(hdr + h, &mask, 4);
    const uint8_t *m = hdr + h;
    h += 4;
    uint8_t *buf = malloc(h + len);
    if (!buf)
        bench_die("out of memory");
    memcpy(buf, hdr, h);
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        buf[h + i] = p[i] ^ m[i & 3];
    conn_send(l, c, buf, h + len);
    free(buf);
}

static void send_subscribe(struct load *l, struct conn *c)
{
    size_t cap = 64 + (size_t)c->nsubs * 32, n = 0;
    char *s = malloc(cap);
    if (!s)
        bench_die("out of memory");
    n += (size_t)snprintf(s + n, cap - n, "{\"action\":\"subscribe\",\"id\":1,\"instruments\":[");
    for (uint32_t i = 0; i < c->nsubs; i++)
        n += (size_t)snprintf(s + n, cap - n, "%s\"%s%u\"", i ? "," : "", l->o.prefix, c->subs[i]);
    n += (size_t)snprintf(s + n, cap - n, "]%s}", l->o.overlays ? ",\"overlays\":true" : "");
    send_frame(l, c, 0x1, s, n);
    free(s);
}

static int accept_ok(const char *head, const char *key)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char cat[96], want[32];
    uint8_t sha[SHA_DIGEST_LENGTH];
    snprintf(cat, sizeof(cat), "%s%s", key, guid);
    SHA1((const unsigned char *)cat, strlen(cat), sha);
    b64(sha, sizeof(sha), want);
    const char *p = strcasestr(head, "\r\nSec-WebSocket-Accept:");
    if (!p)
        return 0;
    p += 23;
    while (*p == ' ')
        p++;
    return !strncmp(p, want, strlen(want));
}

/* Handles the HTTP answer in buf[0..len); returns bytes consumed, 0 = incomplete, -1 = closed. */
static long on_http(struct load *l, struct conn *c, uint8_t *buf, size_t len)
{
    if (!buf) /* never: the shared read buffer; tells gcc -fsanitize builds so */
        return -1;
    uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) {
        if (len > LOAD_HTTP_MAX) {
            l->st.http_errors++;
            conn_close(l, c, 1);
            return -1;
        }
        return 0;
    }
    size_t hl = (size_t)(end - buf) + 4;
    char head[LOAD_HTTP_MAX + 1];
    size_t cp = hl < LOAD_HTTP_MAX ? hl : LOAD_HTTP_MAX;
    memcpy(head, buf, cp);
    head[cp] = 0;
    int status = 0;
    if (sscanf(head, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status >= LOAD_STATUS_MAX)
        status = 0;
    l->st.status[status]++;
    if (status != 101) {
        l->st.http_errors++;
        conn_close(l, c, 1);
        return -1;
    }
    if (!accept_ok(head, c->key)) {
        l->st.accept_mismatch++;
        conn_close(l, c, 1);
        return -1;
    }
    /* The extension only with the server's promise to reset its stream per message: then one
     * inflater serves every socket. */
    c->deflate = l->o.deflate && strcasestr(head, "\r\nSec-WebSocket-Extensions:") &&
                 strstr(head, "permessage-deflate") && strstr(head, "server_no_context_takeover");
    l->st.deflate_sockets += c->deflate;
    uint64_t t = bench_mono_ns();
    hist_add(&l->hs, (t - c->t_connect_ns) / 1000);
    l->st.handshakes_ok++;
    if (!l->t_first_ok_ns)
        l->t_first_ok_ns = t;
    l->t_last_ok_ns = t;
    l->inflight--;
    c->state = C_OPEN;
    l->open++;
    if (l->o.churn) {
        static const uint8_t bye[2] = {0x03, 0xe8}; /* 1000 */
        send_frame(l, c, 0x8, bye, 2);
        conn_close(l, c, 1);
        return -1;
    }
    if (c->nsubs)
        send_subscribe(l, c);
    return (long)hl;
}

/* ---- frame scanning and accounting ----------------------------------------------------------- */

/* Finds "key": in [p, end) and returns the first byte of its value, or NULL. */
static const char *member(const char *p, const char *end, const char *qkey, size_t qlen)
{
    const char *k = memmem(p, (size_t)(end - p), qkey, qlen);
    if (!k)
        return NULL;
    k += qlen;
    while (k < end && (*k == ' ' || *k == ':'))
        k++;
    return k < end ? k : NULL;
}

static int64_t int_at(const char *p, const char *end)
{
    int64_t v = 0;
    int neg = p < end && *p == '-';
    p += neg;
    while (p < end && *p >= '0' && *p <= '9')
        v = v * 10 + (*p++ - '0');
    return neg ? -v : v;
}

/* The instrument index of a name "<prefix><i>" at p (after its opening quote), or -1. */
static int32_t instrument_at(const struct load *l, const char *p, const char *end)
{
    size_t pl = strlen(l->o.prefix);
    if ((size_t)(end - p) <= pl || memcmp(p, l->o.prefix, pl))
        return -1;
    p += pl;
    int64_t v = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 6) {
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    if (!digits || p >= end || *p != '"' || v >= (int64_t)l->o.instruments)
        return -1;
    return (int32_t)v;
}

#define KEY(s) s, sizeof(s) - 1

/* Accounts one tick for c: seq continuity per subscription, latency from pub_us (-1: none). */
static void on_tick(struct load *l, struct conn *c, uint32_t idx, int64_t seq, int64_t pub_us)
{
    int slot = c->nsubs == l->o.instruments ? (int)idx : sub_slot(c, idx); /* all: subs[i] = i */
    if (slot < 0) {
        l->st.unexpected++;
        return;
    }
    int64_t last = c->last_seq[slot];
    if (last >= 0) {
        if (seq > last + 1)
            l->st.missing += (uint64_t)(seq - last - 1);
        else if (seq <= last)
            l->st.out_of_order++;
    }
    if (seq > last)
        c->last_seq[slot] = seq;
    l->st.ticks++;
    l->per_rx[idx]++;
    if (pub_us >= 0)
        hist_add(&l->lat, l->now_us > (uint64_t)pub_us ? l->now_us - (uint64_t)pub_us : 0);
}

/* The common case at a million frames a second, without searching: a compact tick frame
 * {"type":"tick","instrument":"<prefix><i>","seq":N,"data":{...,"pub_us":T}} as both servers
 * write it with cg-publish's payload. Returns 0 when the frame has another shape (the caller
 * then scans it member by member). */
static int tick_fast(struct load *l, struct conn *c, const char *p, const char *end)
{
    static const char head[] = "{\"type\":\"tick\",\"instrument\":\"";
    static const char seqk[] = "\",\"seq\":";
    static const char pubk[] = "\"pub_us\":";
    size_t hl = sizeof(head) - 1, pl = strlen(l->o.prefix);
    if (end - p < 64 || memcmp(p, head, hl) || memcmp(p + hl, l->o.prefix, pl))
        return 0;
    const char *q = p + hl + pl;
    uint32_t idx = 0;
    int digits = 0;
    while (q < end && *q >= '0' && *q <= '9' && digits < 6) {
        idx = idx * 10 + (uint32_t)(*q++ - '0');
        digits++;
    }
    if (!digits || idx >= l->o.instruments || end - q < 16 || memcmp(q, seqk, sizeof(seqk) - 1))
        return 0;
    int64_t seq = int_at(q + sizeof(seqk) - 1, end);
    const char *e = end;
    while (e > q && e[-1] == '}')
        e--;
    const char *d = e;
    while (d > q && d[-1] >= '0' && d[-1] <= '9')
        d--;
    if (d == e || d - q < 9 || memcmp(d - (sizeof(pubk) - 1), pubk, sizeof(pubk) - 1))
        return 0;
    on_tick(l, c, idx, seq, int_at(d, e));
    return 1;
}

/* An overlay append of cg-publish --mode overlay, accounted as a tick (seq = its v):
 * {"type":"overlay","instrument":"<prefix><i>","op":{"op":"append","overlay":"bench",
 *  "points":[[<pub_ms>,<pub_us % 1000>]],"v":N}}. Returns 0 for any other frame. */
static int overlay_fast(struct load *l, struct conn *c, const char *p, const char *end)
{
    static const char head[] = "{\"type\":\"overlay\",\"instrument\":\"";
    static const char mid[] = "\",\"op\":{\"op\":\"append\",\"overlay\":\"bench\",\"points\":[[";
    static const char vk[] = "]],\"v\":";
    size_t hl = sizeof(head) - 1, pl = strlen(l->o.prefix);
    if (!l->o.overlays || end - p < 80 || memcmp(p, head, hl) || memcmp(p + hl, l->o.prefix, pl))
        return 0;
    const char *q = p + hl + pl;
    uint32_t idx = 0;
    int digits = 0;
    while (q < end && *q >= '0' && *q <= '9' && digits < 6) {
        idx = idx * 10 + (uint32_t)(*q++ - '0');
        digits++;
    }
    if (!digits || idx >= l->o.instruments || end - q < (ptrdiff_t)sizeof(mid) ||
        memcmp(q, mid, sizeof(mid) - 1))
        return 0;
    q += sizeof(mid) - 1;
    int64_t ms = int_at(q, end);
    const char *comma = memchr(q, ',', (size_t)(end - q));
    if (!comma)
        return 0;
    int64_t us = int_at(comma + 1, end);
    const char *v = memmem(comma, (size_t)(end - comma), vk, sizeof(vk) - 1);
    if (!v)
        return 0;
    on_tick(l, c, idx, int_at(v + sizeof(vk) - 1, end), ms * 1000 + us);
    return 1;
}

/* A send's answer {"type":"sent","id":<scheduled send time, us>}: its round trip. */
static int sent_fast(struct load *l, const char *p, const char *end)
{
    static const char head[] = "{\"type\":\"sent\",\"id\":";
    size_t hl = sizeof(head) - 1;
    if ((size_t)(end - p) <= hl || memcmp(p, head, hl))
        return 0;
    int64_t sched = int_at(p + hl, end);
    l->st.sent++;
    hist_add(&l->slat, sched > 0 && l->now_us > (uint64_t)sched ? l->now_us - (uint64_t)sched : 0);
    return 1;
}

/* An error frame: counted by code; the first few are shown. */
static void on_error_frame(struct load *l, const char *p, const char *end)
{
    const char *code = member(p, end, KEY("\"code\""));
    if (code && end - code > 12 && !memcmp(code, "\"unavailable\"", 13))
        l->st.unavailable++;
    else if (code && end - code > 13 && !memcmp(code, "\"rate_limited\"", 14))
        l->st.rate_limited++;
    else if (member(p, end, KEY("\"id\""))) /* an answer to a send (others carry no id) */
        l->st.send_errors++;
    if (l->st.error_frames++ < 5)
        fprintf(stderr, "cg-load: error frame: %.*s\n", (int)(end - p), p);
}

static void on_json(struct load *l, struct conn *c, const char *p, const char *end)
{
    if (tick_fast(l, c, p, end) || overlay_fast(l, c, p, end) || sent_fast(l, p, end))
        return;
    const char *t = member(p, end, KEY("\"type\""));
    if (!t || *t != '"') {
        l->st.bad_frames++;
        return;
    }
    t++;
    if (end - t > 5 && !memcmp(t, "tick\"", 5)) {
        const char *in = member(t, end, KEY("\"instrument\""));
        const char *sq = in ? member(in, end, KEY("\"seq\"")) : NULL;
        int32_t idx = in && *in == '"' ? instrument_at(l, in + 1, end) : -1;
        if (!sq || idx < 0) {
            l->st.unexpected++;
            return;
        }
        const char *pu = member(sq, end, KEY("\"pub_us\""));
        on_tick(l, c, (uint32_t)idx, int_at(sq, end), pu ? int_at(pu, end) : -1);
    } else if (end - t > 9 && !memcmp(t, "snapshot\"", 9)) {
        const char *in = member(t, end, KEY("\"instrument\""));
        const char *sq = in ? member(in, end, KEY("\"seq\"")) : NULL;
        int32_t idx = in && *in == '"' ? instrument_at(l, in + 1, end) : -1;
        int slot = idx >= 0 ? sub_slot(c, (uint32_t)idx) : -1;
        l->st.snapshots++;
        if (sq && slot >= 0 && !l->o.overlays) { /* with overlays, seq counts operations (v) */
            int64_t seq = int_at(sq, end);
            if (seq > c->last_seq[slot])
                c->last_seq[slot] = seq;
        }
    } else if (end - t > 11 && !memcmp(t, "subscribed\"", 11)) {
        if (!c->subscribed) {
            c->subscribed = 1;
            l->st.subscribed++;
        }
    } else if (end - t > 6 && !memcmp(t, "error\"", 6)) {
        on_error_frame(l, p, end);
    } else {
        l->st.other_frames++;
    }
}

static void on_close_frame(struct load *l, const uint8_t *p, uint64_t len)
{
    uint16_t code = len >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1005;
    for (int i = 0; i < LOAD_CLOSE_CODES; i++) {
        if (l->st.close_code[i] == code || !l->st.close_code[i]) {
            l->st.close_code[i] = code;
            l->st.close_count[i]++;
            return;
        }
    }
}

/* Parses the frames in buf[0..len); returns bytes consumed or -1 when c was closed. */
/* Inflates one compressed message (RFC 7692: the 00 00 ff ff tail appended) into l->zbuf;
 * returns its length, or UINT64_MAX when it is not valid deflate data or too large. */
static uint64_t inflate_message(struct load *l, const uint8_t *p, uint64_t len)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    if (inflateReset(&l->z) != Z_OK)
        return UINT64_MAX;
    l->z.next_out = l->zbuf;
    l->z.avail_out = LOAD_MAX_PENDING;
    for (int part = 0; part < 2; part++) {
        l->z.next_in = (uint8_t *)(part ? tail : p);
        l->z.avail_in = (uInt)(part ? sizeof(tail) : len);
        int rc = inflate(&l->z, Z_SYNC_FLUSH);
        if ((rc != Z_OK && rc != Z_BUF_ERROR) || l->z.avail_in || !l->z.avail_out)
            return UINT64_MAX;
    }
    return LOAD_MAX_PENDING - l->z.avail_out;
}

static long on_ws(struct load *l, struct conn *c, uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (len - off >= 2) {
        uint8_t *f = buf + off;
        int op = f[0] & 0x0f;
        uint64_t pl = f[1] & 0x7f;
        size_t h = 2;
        if (f[1] & 0x80) { /* a server must not mask */
            l->st.bad_frames++;
            conn_close(l, c, 1);
            return -1;
        }
        if (pl == 126) {
            if (len - off < 4)
                break;
            pl = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (pl == 127) {
            if (len - off < 10)
                break;
            pl = 0;
            for (int i = 0; i < 8; i++)
                pl = pl << 8 | f[2 + i];
            h = 10;
        }
        if (pl > LOAD_MAX_PENDING) {
            l->st.bad_frames++;
            conn_close(l, c, 1);
            return -1;
        }
        if (len - off < h + pl)
            break;
        uint8_t *p = f + h;
        off += h + pl;
        if ((f[0] & 0x40) && (!c->deflate || op != 0x1)) { /* RSV1: a compressed message */
            l->st.bad_frames++;
            conn_close(l, c, 1);
            return -1;
        }
        if (f[0] & 0x40) {
            uint64_t wire = pl;
            pl = inflate_message(l, p, pl);
            if (pl == UINT64_MAX) {
                l->st.bad_frames++;
                conn_close(l, c, 1);
                return -1;
            }
            l->st.compressed_messages++;
            l->st.inflated_bytes += pl;
            l->st.bytes += wire;
            p = l->zbuf;
        } else if (op == 0x1 || op == 0x0)
            l->st.bytes += pl;
        if (op == 0x1 || op == 0x0) {
            /* lws sends each message as one unfragmented frame; a continuation frame is
             * scanned as if it stood alone, which is right for newline-joined batches. */
            uint64_t ticks_before = l->st.ticks;
            l->st.messages++;
            const char *s = (const char *)p, *e = s + pl;
            while (s < e) {
                const char *nl = memchr(s, '\n', (size_t)(e - s));
                const char *fe = nl ? nl : e;
                on_json(l, c, s, fe);
                s = fe + 1;
            }
            l->st.tick_messages += l->st.ticks != ticks_before;
        } else if (op == 0x9) {
            l->st.pings++;
            send_frame(l, c, 0xA, p, pl);
            if (c->state != C_OPEN)
                return -1;
        } else if (op == 0x8) {
            on_close_frame(l, p, pl);
            l->st.disconnects++;
            conn_close(l, c, 0);
            return -1;
        }
    }
    return (long)off;
}

static void on_readable(struct load *l, struct conn *c)
{
    uint8_t *buf = l->rbuf;
    size_t have = c->in_len;
    if (have)
        memcpy(buf, c->in, have);
    ssize_t n = read(c->fd, buf + have, LOAD_RBUF - have);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (c->state == C_HTTP)
            l->st.http_errors++;
        else
            l->st.disconnects++;
        conn_close(l, c, 0);
        return;
    }
    l->now_us = bench_real_us();
    size_t len = have + (size_t)n, off = 0;
    if (c->state == C_HTTP) {
        long used = on_http(l, c, buf, len);
        if (used < 0)
            return;
        off = (size_t)used;
        if (!used)
            goto keep;
    }
    long used = on_ws(l, c, buf + off, len - off);
    if (used < 0)
        return;
    off += (size_t)used;
keep:
    if (len - off > LOAD_MAX_PENDING) {
        l->st.bad_frames++;
        conn_close(l, c, 1);
        return;
    }
    if (len == off) {
        free(c->in);
        c->in = NULL;
        c->in_len = 0;
        return;
    }
    uint8_t *keep_buf = realloc(c->in, len - off);
    if (!keep_buf)
        bench_die("out of memory");
    memcpy(keep_buf, buf + off, len - off);
    c->in = keep_buf;
    c->in_len = (uint32_t)(len - off);
}

static void on_event(struct load *l, struct conn *c, uint32_t ev)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (ev & (EPOLLERR | EPOLLHUP))) {
            count_errno(l, err ? err : ECONNRESET);
            conn_close(l, c, 0);
            return;
        }
        send_upgrade(l, c);
        return;
    }
    if ((ev & EPOLLOUT) && c->out_len) {
        conn_flush(l, c);
        if (c->state == C_DONE)
            return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(l, c);
}

/* ---- sends (--send-rate) ------------------------------------------------------------------- */

/* From the ready line on: the sockets open now share one schedule. */
static void send_start(struct load *l)
{
    if (l->o.send_rate <= 0)
        return;
    l->send_to = malloc((l->open ? l->open : 1) * sizeof(*l->send_to));
    if (!l->send_to)
        bench_die("out of memory");
    for (uint32_t i = 0; i < l->o.conns; i++)
        if (l->conns[i].state == C_OPEN && l->nsend_to < l->open)
            l->send_to[l->nsend_to++] = i;
    if (!l->nsend_to)
        return;
    l->send_period_ns = 1e9 / (l->o.send_rate * l->nsend_to);
    l->send_t0_ns = bench_mono_ns();
    l->send_t0_us = bench_real_us();
    l->send_end_ns =
        l->o.send_for_s > 0 ? l->send_t0_ns + (uint64_t)(l->o.send_for_s * 1e9) : UINT64_MAX;
    l->sending = 1;
}

/* Every send due by now, each on its socket: {"action":"send",...,"id":<scheduled us>}. */
static void send_due(struct load *l)
{
    if (!l->sending)
        return;
    uint64_t now = bench_mono_ns();
    for (;;) {
        uint64_t off = (uint64_t)((double)l->send_n * l->send_period_ns);
        uint64_t at = l->send_t0_ns + off;
        if (at >= l->send_end_ns) {
            l->sending = 0;
            return;
        }
        if (at > now)
            return;
        if ((now - at) / 1000 > l->st.lag_max_us)
            l->st.lag_max_us = (now - at) / 1000;
        struct conn *c = &l->conns[l->send_to[l->send_n % l->nsend_to]];
        if (c->state == C_OPEN) {
            char msg[160];
            int n = snprintf(msg, sizeof(msg),
                             "{\"action\":\"send\",\"service\":\"%s\",\"id\":%" PRIu64
                             ",\"data\":{\"op\":\"bench\",\"n\":%" PRIu64 "}}",
                             l->o.send_service, l->send_t0_us + off / 1000, l->send_n);
            send_frame(l, c, 0x1, msg, (size_t)n);
            l->st.sends++;
        } else {
            l->st.send_skipped++;
        }
        l->send_n++;
    }
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void print_ready(struct load *l)
{
    double s = (double)(bench_mono_ns() - l->t0_ns) / 1e9;
    printf("ready open=%u failed=%" PRIu64 " subscribed=%" PRIu64 " elapsed_s=%.3f\n", l->open,
           l->st.connect_errors + l->st.http_errors + l->st.accept_mismatch, l->st.subscribed, s);
    fflush(stdout);
    l->ready_printed = 1;
    l->t_ready_ns = bench_mono_ns();
    send_start(l);
}

static void maybe_ready(struct load *l)
{
    if (l->ready_printed || l->o.churn || l->started < l->o.conns || l->inflight)
        return;
    uint64_t want = 0;
    for (uint32_t i = 0; i < l->o.conns; i++)
        if (l->conns[i].state == C_OPEN && l->conns[i].nsubs)
            want++;
    if (l->st.subscribed >= want)
        print_ready(l);
}

static void start_more(struct load *l)
{
    double el = (double)(bench_mono_ns() - l->t0_ns) / 1e9;
    for (;;) {
        if (l->inflight >= l->o.concurrency)
            return;
        if (l->o.connect_rate > 0 && (double)l->started >= el * l->o.connect_rate + 1)
            return;
        struct conn *c;
        uint32_t idx;
        if (!l->o.churn) {
            if (l->started >= l->o.conns)
                return;
            idx = l->started;
            c = &l->conns[idx];
        } else {
            idx = l->started;
            c = &l->conns[idx % l->o.conns];
            if (c->state != C_IDLE && c->state != C_DONE)
                return; /* its slot is still busy: the next pass */
            l->finished -= c->state == C_DONE;
        }
        c->user = idx % l->o.users;
        l->started++;
        conn_start(l, c, idx);
    }
}

static void progress(struct load *l)
{
    fprintf(stderr,
            "cg-load: t=%.1fs open=%u inflight=%u ok=%" PRIu64 " ticks=%" PRIu64 " p99=%" PRIu64
            "us missing=%" PRIu64,
            (double)(bench_mono_ns() - l->t0_ns) / 1e9, l->open, l->inflight, l->st.handshakes_ok,
            l->st.ticks, hist_pct(&l->lat, 99), l->st.missing);
    if (l->o.send_rate > 0)
        fprintf(stderr,
                " sends=%" PRIu64 " sent=%" PRIu64 " unavailable=%" PRIu64 " send_p50=%" PRIu64
                "us send_p99=%" PRIu64 "us lag_max=%" PRIu64 "us",
                l->st.sends, l->st.sent, l->st.unavailable, hist_pct(&l->slat, 50),
                hist_pct(&l->slat, 99), l->st.lag_max_us);
    fputc('\n', stderr);
}

static void run(struct load *l)
{
    struct epoll_event evs[LOAD_EVENTS];
    uint64_t end = l->t0_ns + (uint64_t)(l->o.duration_s * 1e9);
    uint64_t next_stats = l->t0_ns + (uint64_t)(l->o.stats_s * 1e9);
    while (!load_stop) {
        start_more(l);
        maybe_ready(l);
        uint64_t now = bench_mono_ns();
        if (now >= end)
            break;
        if (l->o.stats_s > 0 && now >= next_stats) {
            progress(l);
            next_stats += (uint64_t)(l->o.stats_s * 1e9);
        }
        int timeout = l->o.connect_rate > 0 || l->o.churn || l->sending ? 1 : 50;
        int n = epoll_wait(l->ep, evs, LOAD_EVENTS, timeout);
        if (n < 0 && errno != EINTR)
            bench_die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++)
            on_event(l, evs[i].data.ptr, evs[i].events);
        send_due(l);
    }
}

/* ---- report -----------------------------------------------------------------------------------
 */

static void print_u64_array(const char *name, const uint64_t *a, uint32_t n)
{
    printf(",\"%s\":[", name);
    for (uint32_t i = 0; i < n; i++)
        printf("%s%" PRIu64, i ? "," : "", a[i]);
    printf("]");
}

static void print_hist(const char *name, const struct hist *h)
{
    printf(",\"%s\":{\"count\":%" PRIu64 ",\"mean\":%.1f,\"p50\":%" PRIu64 ",\"p90\":%" PRIu64
           ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 ",\"buckets\":[",
           name, h->count, h->count ? (double)h->sum / (double)h->count : 0.0, hist_pct(h, 50),
           hist_pct(h, 90), hist_pct(h, 99), hist_pct(h, 99.9), h->max);
    int first = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        if (!h->n[i])
            continue;
        printf("%s[%" PRIu64 ",%" PRIu64 "]", first ? "" : ",", hist_value(i), h->n[i]);
        first = 0;
    }
    printf("]}");
}

static void report(struct load *l)
{
    const struct load_stats *s = &l->st;
    uint64_t end = bench_mono_ns();
    double elapsed = (double)(end - l->t0_ns) / 1e9;
    double hs_span =
        l->t_last_ok_ns > l->t_first_ok_ns ? (double)(l->t_last_ok_ns - l->t_first_ok_ns) / 1e9 : 0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"conns\":%u,\"open\":%u,\"elapsed_s\":%.3f,\"since_ready_s\":%.3f", l->o.conns,
           l->open, elapsed, l->t_ready_ns ? (double)(end - l->t_ready_ns) / 1e9 : 0.0);
    printf(",\"handshakes\":{\"ok\":%" PRIu64 ",\"per_s\":%.1f,\"connect_errors\":%" PRIu64
           ",\"accept_mismatch\":%" PRIu64 ",\"status\":{",
           s->handshakes_ok, hs_span > 0 ? (double)(s->handshakes_ok - 1) / hs_span : 0.0,
           s->connect_errors, s->accept_mismatch);
    int first = 1;
    for (int i = 0; i < LOAD_STATUS_MAX; i++)
        if (s->status[i]) {
            printf("%s\"%d\":%" PRIu64, first ? "" : ",", i, s->status[i]);
            first = 0;
        }
    printf("},\"errno\":{");
    first = 1;
    for (int i = 0; i < 160; i++)
        if (s->errno_counts[i]) {
            printf("%s\"%s\":%" PRIu64, first ? "" : ",", i ? strerrorname_np(i) : "other",
                   s->errno_counts[i]);
            first = 0;
        }
    printf("}}");
    printf(",\"ticks\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"out_of_order\":%" PRIu64
           ",\"unexpected\":%" PRIu64 ",\"snapshots\":%" PRIu64 ",\"subscribed\":%" PRIu64
           ",\"error_frames\":%" PRIu64 ",\"other_frames\":%" PRIu64 ",\"bad_frames\":%" PRIu64
           ",\"messages\":%" PRIu64 ",\"tick_messages\":%" PRIu64 ",\"bytes\":%" PRIu64
           ",\"pings\":%" PRIu64 ",\"disconnects\":%" PRIu64,
           s->ticks, s->missing, s->out_of_order, s->unexpected, s->snapshots, s->subscribed,
           s->error_frames, s->other_frames, s->bad_frames, s->messages, s->tick_messages, s->bytes,
           s->pings, s->disconnects);
    printf(",\"deflate\":{\"sockets\":%" PRIu64 ",\"compressed_messages\":%" PRIu64
           ",\"inflated_bytes\":%" PRIu64 "}",
           s->deflate_sockets, s->compressed_messages, s->inflated_bytes);
    printf(",\"closes\":{");
    for (int i = 0; i < LOAD_CLOSE_CODES && s->close_code[i]; i++)
        printf("%s\"%u\":%" PRIu64, i ? "," : "", s->close_code[i], s->close_count[i]);
    printf("},\"cpu_s\":{\"user\":%.3f,\"sys\":%.3f}",
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    printf(",\"send\":{\"rate_per_socket\":%g,\"sockets\":%u,\"sends\":%" PRIu64
           ",\"skipped\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"unavailable\":%" PRIu64
           ",\"rate_limited\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"lag_max_us\":%" PRIu64
           ",\"send_s\":%.3f}",
           l->o.send_rate, l->nsend_to, s->sends, s->send_skipped, s->sent, s->unavailable,
           s->rate_limited, s->send_errors, s->lag_max_us,
           l->send_n && l->send_period_ns > 0 ? (double)l->send_n * l->send_period_ns / 1e9 : 0.0);
    print_hist("latency_us", &l->lat);
    print_hist("handshake_us", &l->hs);
    print_hist("send_latency_us", &l->slat);
    print_u64_array("per_instrument_subs", l->per_subs, l->o.instruments);
    print_u64_array("per_instrument_rx", l->per_rx, l->o.instruments);
    printf("}\n");
    fflush(stdout);
}

/* ---- main --------------------------------------------------------------------------------------
 */

int main(int argc, char **argv)
{
    struct load *l = calloc(1, sizeof(*l));
    if (!l)
        bench_die("out of memory");
    parse_opts(&l->o, argc, argv);
    l->pid = (uint32_t)getpid();
    l->rng = l->o.seed * 0x9E3779B97F4A7C15ULL + l->pid + 1;
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl)) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (!l->o.churn && l->o.conns + 16 > rl.rlim_cur)
            bench_die("--conns %u needs more files than this process may open (%llu): use several "
                      "processes",
                      l->o.conns, (unsigned long long)rl.rlim_cur);
    }
    l->conns = calloc(l->o.conns, sizeof(*l->conns));
    l->per_subs = calloc(l->o.instruments, sizeof(uint64_t));
    l->per_rx = calloc(l->o.instruments, sizeof(uint64_t));
    l->rbuf = malloc(LOAD_RBUF);
    if (l->o.deflate) {
        l->zbuf = malloc(LOAD_MAX_PENDING);
        if (!l->zbuf || inflateInit2(&l->z, -15) != Z_OK)
            bench_die("out of memory");
    }
    if (!l->conns || !l->per_subs || !l->per_rx || !l->rbuf)
        bench_die("out of memory");
    if (l->o.zipf && !(l->zipf_cdf = bench_zipf_cdf(l->o.instruments, l->o.zipf_s)))
        bench_die("out of memory");
    for (uint32_t i = 0; i < l->o.conns; i++) {
        l->conns[i].fd = -1;
        if (!l->o.churn)
            choose_subs(l, &l->conns[i]);
    }
    sessions_create(l);
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    if (l->ep < 0)
        bench_die("epoll_create1: %s", strerror(errno));
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    l->t0_ns = bench_mono_ns();
    run(l);
    if (!l->ready_printed && !l->o.churn)
        print_ready(l); /* the runner waits for the line; it reads the counts */
    report(l);
    for (uint32_t i = 0; i < l->o.conns; i++) {
        if (l->conns[i].fd >= 0)
            close(l->conns[i].fd);
        free(l->conns[i].subs);
        free(l->conns[i].last_seq);
        free(l->conns[i].in);
        free(l->conns[i].out);
    }
    sessions_delete(l);
    close(l->ep);
    free(l->zipf_cdf);
    free(l->send_to);
    free(l->conns);
    free(l->per_subs);
    free(l->per_rx);
    free(l->rbuf);
    free(l);
    return 0;
}
