/* publish.c -- cg-publish: the benchmark's open-loop, paced publisher of ticks into Redis.
 *
 * What it owns: one synchronous hiredis connection to a loopback Redis, the instrument table
 * (<prefix><i>, i < K, each with a random-walk price and a cumulative volume), the schedule, and
 * the report. One thread. It never reads anything the gateway writes.
 *
 * What it writes (proto/PROTOCOL.md §11.2 and §11.4):
 *   PUBLISH <md-prefix><name> <tick>                                  --mode publish (default)
 *   SPUBLISH <md-prefix><name> <tick>                                 --mode spublish (Cluster)
 *   FCALL chartgate_publish 3 <md-prefix><name> {..}:seq {..}:stream <tick> [<len>]  --mode fcall
 *   RPUSH <inbox-key> {"instrument":"<name>","data":<tick>}           --mode rpush
 *   FCALL chartgate_overlay 1 overlays:{<name>} <name> <append>       --mode overlay
 * with <append> = {"op":"append","overlay":"bench","points":[[<pub_ms>,<pub_us % 1000>]]} (the
 * scheduled time in the point: PROTOCOL.md §17 keeps no other member), after one "set" of the
 * line overlay "bench" (interval 1m) per instrument before t0;
 * with <tick> = {"ts":<epoch ms>,"last_price":3500.3,"volume":<n>,"pub_us":<epoch us>} and, with
 * --payload-bytes, a trailing "pad" string member that brings it to about that many bytes.
 *
 * Why it is open-loop and stamps *scheduled* times: a closed-loop publisher (send, wait, send)
 * slows down exactly when the system under test stalls, so the stall never shows in the latency
 * samples -- coordinated omission. Here message i is due at t0 + i/rate (or burst j at t0 +
 * j/hz) on CLOCK_MONOTONIC whatever Redis or the gateway do. The loop sleeps to the next due time
 * (clock_nanosleep, absolute), then sends every message already due in one pipeline, so after a
 * stall it catches up in a burst. Each message carries its scheduled time in "ts" and "pub_us",
 * never the time it actually left: the load client (scripts/bench/load.c) subtracts pub_us from
 * its own CLOCK_REALTIME receive time, so any lateness of the publisher itself counts as latency
 * downstream, and shows here as behind_*_us. pub_us is realtime-at-t0 plus monotonic elapsed,
 * so it never steps back when the wall clock is adjusted mid-run.
 *
 * Errors: every reply is read and checked. An error reply or a lost connection ends the run with
 * one line on stderr and exit status 1; bad options exit 2; nothing is retried or ignored.
 * Functions that can fail return -1 and fill a caller-supplied message buffer; main reports it.
 *
 * State: everything lives in one struct pub on main's stack, except the signal flag, which is a
 * single static volatile sig_atomic_t: that is the only kind of object a C signal handler may
 * write, and a handler has no argument through which it could reach main's struct.
 *
 * Bounds: loopback Redis only; --duration is required (at most an hour); a pipeline holds at
 * most PUB_MAX_BATCH messages (more due ones go out in the next pipeline, without sleeping).
 *
 * Output: one JSON line on stdout at the end (normal end, --count reached, or SIGINT/SIGTERM
 * after the current pipeline is answered); diagnostics on stderr. "behind" is the time the
 * pipeline's write() returned minus each message's scheduled time (a log-linear histogram gives
 * the p99). duration_s runs from t0 to the last reply but never ends before the last schedule
 * slot sent does, so that achieved_rate equals the target when the publisher keeps up, in
 * bursty mode too, and falls below it when it does not.
 *
 * Redis Cluster: one cg-publish per master, each with --slots FROM-TO of that master, publishes
 * only the instruments whose channel <md-prefix><name> hashes into those slots (gateway/slots.c's
 * cg_slots_of, the gateway's own slot function), so nothing is redirected (MOVED ends the run).
 *
 * Map: options -> random numbers and Zipf -> histogram -> ticks -> Redis -> the paced loop ->
 * report -> main.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#define BENCH_PROG "cg-publish"
#include "bench.h"
#include "slots.h" /* gateway/slots.c: Redis Cluster's hash slot of a channel (--slots) */

#define PUB_MAX_INSTRUMENTS 65535 /* as cg-load */
#define PUB_MAX_RATE 1e7          /* messages/s */
#define PUB_MAX_HZ 1e4            /* bursts/s */
#define PUB_MAX_DURATION_S 3600.0
#define PUB_MAX_PAYLOAD (1U << 20) /* the gateway's default --max-payload-bytes */
#define PUB_MAX_BATCH 16384        /* messages in one pipeline */
#define PUB_IO_TIMEOUT_S 10        /* a Redis stalled this long ends the run */
#define PUB_START_TENTHS 35000     /* 3500.0 */
#define HIST_SUB_BITS 5
#define HIST_SUB (1U << HIST_SUB_BITS) /* sub-buckets per power of two: <= 3 % error */
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

/* ---- options ------------------------------------------------------------------------------- */

struct pub_opts {
    struct bench_url redis;
    uint32_t instruments;
    char prefix[BENCH_PREFIX_MAX + 1];
    const char *md_prefix; /* borrowed from argv, or a literal */
    double rate;           /* steady mode: messages/s over all instruments; 0 when bursty */
    double bursty_hz;      /* bursty mode: bursts/s, each one message per instrument; 0 = steady */
    int zipf;
    double zipf_s;
    uint64_t seed;
    double duration_s;
    uint64_t count; /* 0: bounded by the duration only */
    enum { MODE_PUBLISH, MODE_RPUSH, MODE_FCALL, MODE_OVERLAY, MODE_SPUBLISH } mode;
    uint32_t slot_from, slot_to; /* --slots: instruments whose channel's slot is in range */
    char stream_len[24];         /* --mode fcall: the function's optional argument; "": none */
    const char *inbox_key;       /* borrowed from argv, or a literal */
    uint32_t payload_bytes;      /* 0: no padding */
    uint32_t warmup_ms;
};

static void usage(FILE *f)
{
    fputs("usage: cg-publish --redis redis://127.0.0.1:PORT[/DB] (--rate R | --bursty HZ)\n"
          "                  --duration S [options]\n"
          "Open-loop paced publisher of benchmark ticks: message i is due at t0 + i/R whatever\n"
          "Redis does, and carries that scheduled time as \"ts\" (epoch ms) and \"pub_us\"\n"
          "(CLOCK_REALTIME microseconds); late messages are sent as soon as possible, pipelined.\n"
          "  --redis URL          loopback Redis only       [redis://127.0.0.1:6379]\n"
          "  --instruments K      instruments named <prefix><i>, i < K                  [100]\n"
          "  --prefix P           instrument name prefix (letters . _ -, <= 20)           [bn]\n"
          "  --md-prefix P        tick channel prefix                                    [md:]\n"
          "  --rate R             steady mode: messages per second in total\n"
          "  --bursty HZ          bursty mode: every 1/HZ s all K instruments tick together,\n"
          "                       K messages with the same scheduled time\n"
          "  --dist uniform|zipf  steady mode: round-robin over instruments, or instrument i\n"
          "                       with probability ~ 1/(i+1)^S                     [uniform]\n"
          "  --zipf-s S           Zipf exponent                                         [1.0]\n"
          "  --seed N             PRNG seed (Zipf choice, price walk)                     [1]\n"
          "  --duration S         stop scheduling after S seconds (required, <= 3600)\n"
          "  --count N            stop after N messages too, whichever comes first\n"
          "  --mode publish|spublish|rpush|fcall|overlay\n"
          "                       PUBLISH (SPUBLISH: sharded, Redis Cluster) <md-prefix><name>,\n"
          "                       RPUSH an inbox envelope, or\n"
          "                       FCALL chartgate_publish 3 <md-prefix><name> (+ its 2 keys) "
          "<tick> (the\n"
          "                       Redis Function of gateway/functions/chartgate_md.lua, which\n"
          "                       must be loaded: scripts/load-functions), or FCALL\n"
          "                       chartgate_overlay with an overlay append       [publish]\n"
          "  --slots FROM-TO      only the instruments whose channel's hash slot is in FROM..TO\n"
          "                       (Redis Cluster: one publisher per master)      [0-16383]\n"
          "  --stream-len N       --mode fcall: pass N as the function's stream length\n"
          "                       (default: none, the loaded library's)\n"
          "  --inbox-key K        inbox list for --mode rpush                [chartgate:inbox]\n"
          "  --payload-bytes B    pad each tick with a \"pad\" member to about B bytes    [0]\n"
          "  --warmup-ms M        sleep M ms after connecting, before t0                  [0]\n"
          "  -h, --help           this text\n"
          "Stops at --duration/--count or on SIGINT/SIGTERM (after the pipeline in flight), then\n"
          "prints one JSON line: published, mode, target_rate, duration_s (t0 to the last reply,\n"
          "at least to the end of the last schedule slot sent), achieved_rate (published /\n"
          "duration_s), receivers (sum of PUBLISH replies; 0 with fcall), behind_max_us and\n"
          "behind_p99_us (actual minus scheduled send time), per_instrument counts.\n"
          "Exit status: 0 done, 1 Redis error, 2 bad options.\n",
          f);
}

static const char *pub_mode_name(int mode)
{
    return mode == MODE_RPUSH      ? "rpush"
           : mode == MODE_FCALL    ? "fcall"
           : mode == MODE_SPUBLISH ? "spublish"
           : mode == MODE_OVERLAY  ? "overlay"
                                   : "publish";
}

static const char *key_arg(const char *name, const char *v)
{
    if (!*v || strlen(v) > 64 || strpbrk(v, " \t\r\n\"\\"))
        bench_die("--%s: want 1 to 64 characters without spaces or quotes, got '%s'", name, v);
    return v;
}

/* parse_opts -- fills o from argv; exits 0 after --help, 2 (one line on stderr) on a bad flag,
 * value or combination. */
static void parse_opts(struct pub_opts *o, int argc, char **argv)
{
    enum {
        O_REDIS = 1,
        O_INSTR,
        O_PREFIX,
        O_MDPFX,
        O_RATE,
        O_BURSTY,
        O_DIST,
        O_ZIPF,
        O_SEED,
        O_DUR,
        O_COUNT,
        O_MODE,
        O_INBOX,
        O_PAYLOAD,
        O_WARMUP,
        O_STREAMLEN,
        O_SLOTS,
        O_HELP
    };
    static const struct option opts[] = {{"redis", required_argument, 0, O_REDIS},
                                         {"instruments", required_argument, 0, O_INSTR},
                                         {"prefix", required_argument, 0, O_PREFIX},
                                         {"md-prefix", required_argument, 0, O_MDPFX},
                                         {"rate", required_argument, 0, O_RATE},
                                         {"bursty", required_argument, 0, O_BURSTY},
                                         {"dist", required_argument, 0, O_DIST},
                                         {"zipf-s", required_argument, 0, O_ZIPF},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"duration", required_argument, 0, O_DUR},
                                         {"count", required_argument, 0, O_COUNT},
                                         {"mode", required_argument, 0, O_MODE},
                                         {"inbox-key", required_argument, 0, O_INBOX},
                                         {"payload-bytes", required_argument, 0, O_PAYLOAD},
                                         {"warmup-ms", required_argument, 0, O_WARMUP},
                                         {"stream-len", required_argument, 0, O_STREAMLEN},
                                         {"slots", required_argument, 0, O_SLOTS},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    *o = (struct pub_opts){.instruments = 100,
                           .md_prefix = "md:",
                           .zipf_s = 1.0,
                           .seed = 1,
                           .slot_to = CG_SLOTS_COUNT - 1,
                           .inbox_key = "chartgate:inbox"};
    snprintf(o->prefix, sizeof(o->prefix), "bn");
    bench_parse_url("redis", "redis://", "redis://127.0.0.1:6379", &o->redis);
    int dist_given = 0;
    opterr = 0; /* our own one-line message instead of getopt's */
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_REDIS:
            bench_parse_url("redis", "redis://", optarg, &o->redis);
            break;
        case O_INSTR:
            o->instruments =
                (uint32_t)bench_uint_arg("instruments", optarg, 1, PUB_MAX_INSTRUMENTS);
            break;
        case O_PREFIX:
            bench_prefix_arg(optarg, o->prefix, sizeof(o->prefix));
            break;
        case O_MDPFX:
            o->md_prefix = key_arg("md-prefix", optarg);
            break;
        case O_RATE:
            o->rate = bench_num_arg("rate", optarg, 0.001, PUB_MAX_RATE);
            break;
        case O_BURSTY:
            o->bursty_hz = bench_num_arg("bursty", optarg, 0.001, PUB_MAX_HZ);
            break;
        case O_DIST:
            if (!strcmp(optarg, "zipf"))
                o->zipf = 1;
            else if (!strcmp(optarg, "uniform"))
                o->zipf = 0;
            else
                bench_die("--dist: want uniform or zipf, got '%s'", optarg);
            dist_given = 1;
            break;
        case O_ZIPF:
            o->zipf_s = bench_num_arg("zipf-s", optarg, 0, 10);
            break;
        case O_SEED:
            o->seed = bench_uint_arg("seed", optarg, 0, UINT64_MAX);
            break;
        case O_DUR:
            o->duration_s = bench_num_arg("duration", optarg, 0.001, PUB_MAX_DURATION_S);
            break;
        case O_COUNT:
            o->count = bench_uint_arg("count", optarg, 1, UINT64_MAX);
            break;
        case O_MODE:
            if (!strcmp(optarg, "rpush"))
                o->mode = MODE_RPUSH;
            else if (!strcmp(optarg, "publish"))
                o->mode = MODE_PUBLISH;
            else if (!strcmp(optarg, "fcall"))
                o->mode = MODE_FCALL;
            else if (!strcmp(optarg, "overlay"))
                o->mode = MODE_OVERLAY;
            else if (!strcmp(optarg, "spublish"))
                o->mode = MODE_SPUBLISH;
            else
                bench_die("--mode: want publish, spublish, rpush, fcall or overlay, got '%s'",
                          optarg);
            break;
        case O_SLOTS: {
            unsigned a, b;
            int used = 0;
            if (sscanf(optarg, "%5u-%5u%n", &a, &b, &used) != 2 || optarg[used] || a > b ||
                b >= CG_SLOTS_COUNT)
                bench_die("--slots: want FROM-TO with 0 <= FROM <= TO <= %d, got '%s'",
                          CG_SLOTS_COUNT - 1, optarg);
            o->slot_from = a;
            o->slot_to = b;
            break;
        }
        case O_STREAMLEN:
            /* the function's range; passed in canonical decimal form */
            snprintf(o->stream_len, sizeof(o->stream_len), "%" PRIu64,
                     bench_uint_arg("stream-len", optarg, 1, 999999999999999ULL));
            break;
        case O_INBOX:
            o->inbox_key = key_arg("inbox-key", optarg);
            break;
        case O_PAYLOAD:
            o->payload_bytes =
                (uint32_t)bench_uint_arg("payload-bytes", optarg, 0, PUB_MAX_PAYLOAD);
            break;
        case O_WARMUP:
            o->warmup_ms = (uint32_t)bench_uint_arg("warmup-ms", optarg, 0, 600000);
            break;
        case 'h':
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            bench_die("unknown option or missing value: '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc)
        bench_die("unexpected argument '%s' (see --help)", argv[optind]);
    if ((o->rate > 0) == (o->bursty_hz > 0))
        bench_die("give exactly one of --rate R and --bursty HZ (see --help)");
    if (o->duration_s <= 0)
        bench_die("--duration S is required (see --help)");
    if (o->stream_len[0] && o->mode != MODE_FCALL)
        bench_die("--stream-len applies to --mode fcall only");
    if (o->bursty_hz > 0 && dist_given)
        bench_die("--dist applies to --rate only: a burst ticks every instrument once");
}

/* ---- random numbers and the Zipf table ------------------------------------------------------ */

static uint64_t rng_seed(uint64_t seed)
{
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL; /* splitmix64: small seeds give good states */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return z ? z : 0x2545f4914f6cdd1dULL; /* xorshift must not start at 0 */
}

/* ---- histogram of lateness (log-linear, nanoseconds) --------------------------------------- */

struct hist {
    uint64_t n[HIST_BUCKETS];
    uint64_t count, max;
};

static unsigned hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned e = 63 - (unsigned)__builtin_clzll(v); /* 2^e <= v < 2^(e+1), e >= HIST_SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1);
    return (e - HIST_SUB_BITS + 1) * HIST_SUB + sub;
}

/* The highest value that falls into bucket i. */
static uint64_t hist_upper(unsigned i)
{
    if (i < HIST_SUB)
        return i;
    unsigned e = i / HIST_SUB + HIST_SUB_BITS - 1, sub = i % HIST_SUB;
    uint64_t width = 1ULL << (e - HIST_SUB_BITS);
    return ((uint64_t)(HIST_SUB + sub) << (e - HIST_SUB_BITS)) + (width - 1);
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->n[hist_index(v)]++;
    h->count++;
    if (v > h->max)
        h->max = v;
}

/* hist_pct -- the p-th percentile (an upper bucket bound, at most max); 0 when empty. */
static uint64_t hist_pct(const struct hist *h, double p)
{
    if (!h->count)
        return 0;
    uint64_t want = (uint64_t)ceil((double)h->count * p / 100.0), seen = 0;
    if (want < 1)
        want = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->n[i];
        if (seen >= want)
            return hist_upper(i) < h->max ? hist_upper(i) : h->max;
    }
    return h->max;
}

/* ---- the publisher -------------------------------------------------------------------------- */

struct pub_inst {
    char name[BENCH_PREFIX_MAX + 12];
    char target[BENCH_PREFIX_MAX + 12 + 64]; /* PUBLISH channel: <md-prefix><name> */
    size_t name_len, target_len;
    int64_t price_tenths; /* random walk around 3500.0, in 0.1 steps */
    uint64_t volume;      /* cumulative, +1..10 per tick */
    uint64_t published;
};

struct pub {
    struct pub_opts o;
    redisContext *c;
    struct pub_inst *in; /* o.instruments entries; owned */
    double *cdf;         /* --dist zipf: cumulative probabilities; owned, NULL otherwise */
    uint64_t rng;
    char *payload, *envelope; /* scratch buffers; owned */
    size_t payload_cap, envelope_cap;
    uint64_t *sched;   /* scheduled monotonic ns of each message of the pipeline; owned */
    uint64_t t0_ns;    /* CLOCK_MONOTONIC of the first scheduled send */
    uint64_t real0_us; /* CLOCK_REALTIME at t0_ns */
    uint64_t duration_ns;
    uint64_t next;      /* steady: index of the next message; bursty: index of the next burst */
    uint32_t burst_pos; /* bursty: messages of burst `next` already appended */
    uint64_t appended, published, receivers;
    uint64_t last_reply_ns;
    struct hist behind; /* actual minus scheduled send time, ns */
};

/* The signal flag (see the top comment for why it is the one static). */
static volatile sig_atomic_t pub_stop;

static void on_signal(int sig)
{
    pub_stop = sig;
}

/* sleep_until -- returns at the monotonic deadline, or earlier on a signal (on purpose: the loop
 * then sees pub_stop). */
static void sleep_until(uint64_t when_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(when_ns / 1000000000ULL),
                          .tv_nsec = (long)(when_ns % 1000000000ULL)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void pub_finish(struct pub *p)
{
    if (p->c)
        redisFree(p->c);
    free(p->in);
    free(p->cdf);
    free(p->payload);
    free(p->envelope);
    free(p->sched);
    *p = (struct pub){.o = p->o};
}

/* pub_init -- builds the instrument table and buffers from p->o. Returns 0, or -1 (out of
 * memory) with err filled; pub_finish frees what was made either way. */
static int pub_init(struct pub *p, char *err, size_t errsz)
{
    const struct pub_opts *o = &p->o;
    p->rng = rng_seed(o->seed);
    p->in = calloc(o->instruments, sizeof(*p->in));
    p->sched = malloc(PUB_MAX_BATCH * sizeof(*p->sched));
    /* The unpadded tick is under 120 bytes; the envelope adds the name and 30 bytes. */
    p->payload_cap = (o->payload_bytes > 128 ? o->payload_bytes : 128) + 128;
    p->envelope_cap = p->payload_cap + 128;
    p->payload = malloc(p->payload_cap);
    p->envelope = o->mode == MODE_RPUSH ? malloc(p->envelope_cap) : NULL;
    if (!p->in || !p->sched || !p->payload || (o->mode == MODE_RPUSH && !p->envelope)) {
        snprintf(err, errsz, "out of memory for %" PRIu32 " instruments", o->instruments);
        return -1;
    }
    /* <prefix><i> for every i < K whose channel's slot is in --slots (all of them by default);
     * the names keep their i, so publishers of different slot ranges never share a name. */
    uint32_t kept = 0;
    for (uint32_t i = 0; i < o->instruments; i++) {
        struct pub_inst *in = &p->in[kept];
        int n = snprintf(in->name, sizeof(in->name), "%s%" PRIu32, o->prefix, i);
        int t = snprintf(in->target, sizeof(in->target), "%s%s", o->md_prefix, in->name);
        in->name_len = (size_t)n;
        in->target_len = (size_t)t;
        in->price_tenths = PUB_START_TENTHS;
        uint16_t slot = cg_slots_of(in->target, in->target_len);
        if (slot >= o->slot_from && slot <= o->slot_to)
            kept++;
    }
    if (!kept) {
        snprintf(err, errsz,
                 "none of the %" PRIu32 " instruments hashes into slots %" PRIu32 "-%" PRIu32,
                 o->instruments, o->slot_from, o->slot_to);
        return -1;
    }
    p->o.instruments = kept;
    if (o->zipf && o->rate > 0) {
        p->cdf = bench_zipf_cdf(o->instruments, o->zipf_s);
        if (!p->cdf) {
            snprintf(err, errsz, "out of memory for %" PRIu32 " instruments", o->instruments);
            return -1;
        }
    }
    p->duration_ns = (uint64_t)(o->duration_s * 1e9);
    return 0;
}

/* pub_connect -- connects, selects the database. Returns 0, or -1 with err filled. */
static int pub_connect(struct pub *p, char *err, size_t errsz)
{
    struct timeval tv = {PUB_IO_TIMEOUT_S, 0};
    p->c = redisConnectWithTimeout(p->o.redis.host, p->o.redis.port, tv);
    if (!p->c || p->c->err) {
        snprintf(err, errsz, "redis %s:%d: %s", p->o.redis.host, p->o.redis.port,
                 p->c ? p->c->errstr : "out of memory");
        return -1;
    }
    if (redisSetTimeout(p->c, tv) != REDIS_OK) {
        snprintf(err, errsz, "redis %s:%d: setting the I/O timeout: %s", p->o.redis.host,
                 p->o.redis.port, p->c->errstr);
        return -1;
    }
    redisReply *r = redisCommand(p->c, p->o.redis.db ? "SELECT %u" : "PING", p->o.redis.db);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errsz, "redis %s:%d: %s: %s", p->o.redis.host, p->o.redis.port,
                 p->o.redis.db ? "SELECT" : "PING", r ? r->str : p->c->errstr);
        if (r)
            freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    /* --mode overlay: the line every append goes to, set (emptied) once per instrument. */
    for (uint32_t i = 0; p->o.mode == MODE_OVERLAY && i < p->o.instruments; i++) {
        const struct pub_inst *in = &p->in[i];
        r = redisCommand(p->c,
                         "FCALL chartgate_overlay 1 overlays:{%s} %s "
                         "{\"op\":\"set\",\"overlay\":\"bench\",\"kind\":\"line\","
                         "\"interval\":\"1m\",\"points\":[]}",
                         in->name, in->name);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            /* "Function not found": no gateway has connected to this Redis yet */
            snprintf(err, errsz, "FCALL chartgate_overlay (set): %.200s",
                     r ? r->str : p->c->errstr);
            if (r)
                freeReplyObject(r);
            return -1;
        }
        freeReplyObject(r);
    }
    return 0;
}

/* next_due -- the scheduled monotonic ns of the next message, or UINT64_MAX when the run is
 * over (--duration or --count reached). */
static uint64_t next_due(const struct pub *p)
{
    if (p->o.count && p->appended >= p->o.count)
        return UINT64_MAX;
    double per_s = p->o.bursty_hz > 0 ? p->o.bursty_hz : p->o.rate;
    double off = (double)p->next * 1e9 / per_s;
    if (off >= (double)p->duration_ns)
        return UINT64_MAX;
    return p->t0_ns + (uint64_t)off;
}

/* next_instrument -- the instrument of the message about to be appended; advances the
 * schedule. */
static uint32_t next_instrument(struct pub *p)
{
    uint32_t k = p->o.instruments, i;
    if (p->o.bursty_hz > 0) {
        i = p->burst_pos++;
        if (p->burst_pos == k) {
            p->burst_pos = 0;
            p->next++;
        }
        return i;
    }
    i = p->cdf ? bench_zipf_pick(p->cdf, k, bench_rnd_unit(&p->rng)) : (uint32_t)(p->next % k);
    p->next++;
    return i;
}

/* tick_text -- steps the instrument and writes its tick into p->payload; returns its length. */
static size_t tick_text(struct pub *p, struct pub_inst *in, uint64_t due_ns)
{
    uint64_t r = bench_rnd(&p->rng);
    /* Free walk within +-50.0 of 3500.0, pulled back beyond that. */
    in->price_tenths += (int64_t)(r % 11) - 5 - (in->price_tenths - PUB_START_TENTHS) / 500;
    if (in->price_tenths < 1)
        in->price_tenths = 1;
    in->volume += 1 + (r >> 32) % 10;

    uint64_t pub_us = p->real0_us + (due_ns - p->t0_ns) / 1000;
    int n = snprintf(p->payload, p->payload_cap,
                     "{\"ts\":%" PRIu64 ",\"last_price\":%.1f,\"volume\":%" PRIu64
                     ",\"pub_us\":%" PRIu64,
                     pub_us / 1000, (double)in->price_tenths / 10.0, in->volume, pub_us);
    size_t len = (size_t)n;
    static const char pad_open[] = ",\"pad\":\"";
    size_t fixed = len + (sizeof(pad_open) - 1) + 2; /* + closing quote and brace */
    if (p->o.payload_bytes > fixed) {
        memcpy(p->payload + len, pad_open, sizeof(pad_open) - 1);
        len += sizeof(pad_open) - 1;
        memset(p->payload + len, 'x', p->o.payload_bytes - fixed);
        len += p->o.payload_bytes - fixed;
        p->payload[len++] = '"';
    }
    p->payload[len++] = '}';
    return len;
}

/* append_tick -- appends the next message, due at due_ns, to the pipeline. Returns 0, or -1 with
 * err filled (out of memory in hiredis). */
static int append_tick(struct pub *p, uint64_t due_ns, char *err, size_t errsz)
{
    struct pub_inst *in = &p->in[next_instrument(p)];
    size_t len = tick_text(p, in, due_ns);
    const char *argv[8];
    size_t argvlen[8];
    char seqkey[sizeof(in->target) + 8], streamkey[sizeof(in->target) + 10];
    int argc = 3;
    if (p->o.mode == MODE_OVERLAY) {
        /* The scheduled time rides in the point: t = pub_ms, v = the microseconds past it. */
        uint64_t pub_us = p->real0_us + (due_ns - p->t0_ns) / 1000;
        char key[64];
        int n = snprintf(p->payload, p->payload_cap,
                         "{\"op\":\"append\",\"overlay\":\"bench\",\"points\":[[%" PRIu64
                         ",%" PRIu64 "]]}",
                         pub_us / 1000, pub_us % 1000);
        int k = snprintf(key, sizeof(key), "overlays:{%s}", in->name);
        const char *fargv[6] = {"FCALL", "chartgate_overlay", "1", key, in->name, p->payload};
        size_t flen[6] = {5, 17, 1, (size_t)k, in->name_len, (size_t)n};
        if (redisAppendCommandArgv(p->c, 6, fargv, flen) != REDIS_OK) {
            snprintf(err, errsz, "appending FCALL %s: %s", key,
                     p->c->errstr[0] ? p->c->errstr : "out of memory");
            return -1;
        }
        p->appended++;
        in->published++;
        return 0;
    }
    if (p->o.mode == MODE_RPUSH) {
        int h =
            snprintf(p->envelope, p->envelope_cap, "{\"instrument\":\"%s\",\"data\":", in->name);
        memcpy(p->envelope + h, p->payload, len);
        len += (size_t)h;
        p->envelope[len++] = '}';
        argv[0] = "RPUSH";
        argv[1] = p->o.inbox_key;
        argvlen[1] = strlen(p->o.inbox_key);
        argv[2] = p->envelope;
        argvlen[2] = len;
    } else if (p->o.mode == MODE_FCALL) {
        /* Every key declared (the counter and the stream after the channel), as a Redis
         * Cluster requires (PROTOCOL.md section 20.1); the same elsewhere. */
        argv[0] = "FCALL";
        argv[1] = "chartgate_publish";
        argvlen[1] = strlen(argv[1]);
        argv[2] = "3";
        argvlen[2] = 1;
        argv[3] = in->target;
        argvlen[3] = in->target_len;
        argv[4] = seqkey;
        argvlen[4] = (size_t)snprintf(seqkey, sizeof(seqkey), "{%s}:seq", in->target);
        argv[5] = streamkey;
        argvlen[5] = (size_t)snprintf(streamkey, sizeof(streamkey), "{%s}:stream", in->target);
        argv[6] = p->payload;
        argvlen[6] = len;
        argc = 7;
        if (p->o.stream_len[0]) {
            argv[7] = p->o.stream_len;
            argvlen[7] = strlen(p->o.stream_len);
            argc = 8;
        }
    } else {
        argv[0] = p->o.mode == MODE_SPUBLISH ? "SPUBLISH" : "PUBLISH";
        argv[1] = in->target;
        argvlen[1] = in->target_len;
        argv[2] = p->payload;
        argvlen[2] = len;
    }
    argvlen[0] = strlen(argv[0]);
    if (redisAppendCommandArgv(p->c, argc, argv, argvlen) != REDIS_OK) {
        snprintf(err, errsz, "appending %s %s: %s", argv[0], argc > 3 ? argv[3] : argv[1],
                 p->c->errstr[0] ? p->c->errstr : "out of memory");
        return -1;
    }
    p->appended++;
    in->published++;
    return 0;
}

/* flush -- writes the pipeline of n messages, records how late each left, and reads and checks
 * every reply. Returns 0, or -1 with err filled (I/O error, timeout, or an error reply). */
static int flush(struct pub *p, uint32_t n, char *err, size_t errsz)
{
    int done = 0;
    while (!done) {
        if (redisBufferWrite(p->c, &done) != REDIS_OK) {
            snprintf(err, errsz, "redis %s:%d: write: %s", p->o.redis.host, p->o.redis.port,
                     p->c->errstr);
            return -1;
        }
    }
    uint64_t sent = bench_mono_ns();
    for (uint32_t i = 0; i < n; i++)
        hist_add(&p->behind, sent - p->sched[i]);

    for (uint32_t i = 0; i < n; i++) {
        void *reply = NULL;
        if (redisGetReply(p->c, &reply) != REDIS_OK || !reply) {
            snprintf(err, errsz, "redis %s:%d: reading a reply: %s", p->o.redis.host,
                     p->o.redis.port, p->c->errstr[0] ? p->c->errstr : "no reply");
            return -1;
        }
        redisReply *r = reply;
        if (r->type != REDIS_REPLY_INTEGER) {
            snprintf(err, errsz, "redis refused %s: %s%s", pub_mode_name(p->o.mode),
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply type",
                     p->o.mode == MODE_FCALL && r->type == REDIS_REPLY_ERROR &&
                             strstr(r->str, "Function not found")
                         ? " (load it first: scripts/load-functions)"
                         : "");
            freeReplyObject(r);
            return -1;
        }
        if (p->o.mode == MODE_PUBLISH && r->integer > 0)
            p->receivers += (uint64_t)r->integer;
        freeReplyObject(r);
    }
    p->published += n;
    p->last_reply_ns = bench_mono_ns();
    return 0;
}

/* run -- the paced loop: sleep to the next due time, then append every message due by now (at
 * most PUB_MAX_BATCH) and flush them as one pipeline. Until the schedule ends or a signal.
 * Returns 0, or -1 with err filled. */
static int run(struct pub *p, char *err, size_t errsz)
{
    uint64_t warm_end = bench_mono_ns() + (uint64_t)p->o.warmup_ms * 1000000ULL;
    while (!pub_stop && bench_mono_ns() < warm_end)
        sleep_until(warm_end);

    p->t0_ns = bench_mono_ns();
    p->real0_us = bench_real_us();
    p->last_reply_ns = p->t0_ns;
    while (!pub_stop) {
        uint64_t due = next_due(p);
        if (due == UINT64_MAX)
            break;
        uint64_t now = bench_mono_ns();
        if (due > now) {
            sleep_until(due);
            continue;
        }
        uint32_t n = 0;
        while (due <= now && n < PUB_MAX_BATCH) {
            if (append_tick(p, due, err, errsz))
                return -1;
            p->sched[n++] = due;
            due = next_due(p);
        }
        if (flush(p, n, err, errsz))
            return -1;
    }
    return 0;
}

/* ---- report --------------------------------------------------------------------------------- */

static void report(const struct pub *p)
{
    const struct pub_opts *o = &p->o;
    /* duration_s runs from t0 to the last reply, but at least to the end of the last schedule
     * slot sent (message i owns [i/R, (i+1)/R), burst j owns [j/hz, (j+1)/hz)): otherwise B bursts
     * would count as (B-1)/hz seconds and overstate every rate derived from it by B/(B-1). */
    int bursty = o->bursty_hz > 0;
    double dur = 0;
    if (p->published) {
        double slots = (double)p->next + (p->burst_pos ? 1 : 0);
        double span = slots / (bursty ? o->bursty_hz : o->rate);
        dur = fmax((double)(p->last_reply_ns - p->t0_ns) / 1e9, span);
    }
    double target = bursty ? o->bursty_hz * o->instruments : o->rate;
    printf("{\"published\":%" PRIu64 ",\"mode\":\"%s\",\"target_rate\":%.10g,\"duration_s\":%.3f,"
           "\"achieved_rate\":%.1f,\"receivers\":%" PRIu64 ",\"behind_max_us\":%" PRIu64
           ",\"behind_p99_us\":%" PRIu64 ",\"per_instrument\":[",
           p->published, pub_mode_name(o->mode), target, dur,
           dur > 0 ? (double)p->published / dur : 0.0, p->receivers, p->behind.max / 1000,
           hist_pct(&p->behind, 99) / 1000);
    for (uint32_t i = 0; i < o->instruments; i++)
        printf("%s%" PRIu64, i ? "," : "", p->in[i].published);
    printf("]}\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct pub p = {0};
    char err[256];
    parse_opts(&p.o, argc, argv);

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: a signal ends a sleep */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a write to a closed Redis socket is an error, not death */
    /* Default timer slack (50 us) would make every wake-up late by that much. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);

    if (pub_init(&p, err, sizeof(err)) || pub_connect(&p, err, sizeof(err))) {
        fprintf(stderr, "cg-publish: error: %s\n", err);
        pub_finish(&p);
        return 1;
    }
    fprintf(stderr,
            "cg-publish: %s to redis %s:%d/%u, %" PRIu32 " instruments, %s %g%s, duration %g s\n",
            pub_mode_name(p.o.mode), p.o.redis.host, p.o.redis.port, p.o.redis.db, p.o.instruments,
            p.o.bursty_hz > 0 ? "bursts/s" : "messages/s",
            p.o.bursty_hz > 0 ? p.o.bursty_hz : p.o.rate,
            p.o.bursty_hz > 0 ? "" : (p.cdf ? " zipf" : " round-robin"), p.o.duration_s);
    if (run(&p, err, sizeof(err))) {
        fprintf(stderr, "cg-publish: error: %s (after %" PRIu64 " messages)\n", err, p.published);
        pub_finish(&p);
        return 1;
    }
    fprintf(stderr,
            "cg-publish: %s after %" PRIu64 " messages; behind_us p50 %" PRIu64 " p90 %" PRIu64
            " p99 %" PRIu64 " p99.9 %" PRIu64 " max %" PRIu64 "\n",
            pub_stop ? "stopped by signal" : "done", p.published, hist_pct(&p.behind, 50) / 1000,
            hist_pct(&p.behind, 90) / 1000, hist_pct(&p.behind, 99) / 1000,
            hist_pct(&p.behind, 99.9) / 1000, p.behind.max / 1000);
    report(&p);
    pub_finish(&p);
    return 0;
}
