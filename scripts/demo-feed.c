/* demo-feed.c -- a made-up futures market for chartgate demos, published into Redis.
 *
 * What it owns: one synchronous hiredis connection (the commands of one wake-up are pipelined),
 * the instrument table with one random walk per instrument, and the pacing clock. It never
 * reads anything the gateway writes. One thread.
 *
 * What it writes (proto/PROTOCOL.md §11; names changeable with the --*-prefix/--*-key flags):
 *   FCALL chartgate_publish 1 md:<name> <tick> [<stream-len>]
 *                                     --rate ticks/s in total, shared out Zipf-like by rank so
 *                                     that a few instruments tick far more often than the rest,
 *                                     and more so during a burst; the Redis Function of
 *                                     gateway/functions/chartgate_md.lua numbers each tick once
 *                                     for every gateway, keeps it in a capped stream and
 *                                     publishes "#<seq> <tick>" (PROTOCOL.md §19)
 *   PUBLISH md:<name> <tick>          the same ticks with --publish plain (per-gateway seq)
 *   SADD md:instruments <names...>    on every (re)connection and every ~30 s
 *   PUBLISH user:demo / broadcast     a fill or an order notice every ~20-40 s, and a notice to
 *                                     everyone every ~20-40 s; about a third of them go through
 *   RPUSH chartgate:inbox <envelope>  the inbox instead, as does one tick every ~10 s
 * A tick is CTP-like: {"last_price","volume","bid","ask","bid_vol","ask_vol","open_interest",
 * "ts"}. Prices are multiples of the instrument's tick size; volume is the cumulative volume of
 * the day and never goes down (the gateway runs with --cumulative-volume); ts is epoch ms.
 *
 * The walk: the log price moves by a normal step per tick, sized so that an instrument moves
 * about its spec's `vol` per minute at the configured rate, with a slow pull back to its start
 * price (half-life 90 min) so that hours of running stay near the imported history. Now and then
 * one instrument has a burst: a few seconds of trend, wider steps and four times its tick share.
 *
 * Pacing is open-loop: tick k is due at start + k/rate on CLOCK_MONOTONIC whatever Redis does
 * (clock_nanosleep to the deadline). When more than a second behind -- Redis was away or slow --
 * the schedule restarts from now and the missed ticks are counted as skipped, never sent as a
 * burst. A lost connection is logged once, then retried with doubling back-off (0.2 s .. 5 s).
 *
 * The function: on every (re)connection, and after a "Function not found" reply (FUNCTION
 * FLUSH, a Redis restarted empty), demo-feed checks that chartgate_md is loaded and loads it
 * from --functions if not (FUNCTION LOAD without REPLACE: a library a gateway loaded with its
 * --stream-len wins). When it cannot be there -- a Redis without Functions (< 7.0), an ACL that
 * refuses FUNCTION LOAD, an unreadable file -- demo-feed stops with one line and exit status 1.
 *
 * Map: options -> instrument table -> random numbers -> walk and JSON -> Redis link -> the paced
 * loop -> main.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEMO_MAX_RATE 1000000.0
#define DEMO_DEFAULT_INSTRUMENTS 20
#define DEMO_STATS_S 10.0
#define DEMO_CATALOG_S 30.0
#define DEMO_INBOX_CAP 10000 /* the inbox is trimmed to this many items after each push */
#define DEMO_MAX_BATCH 10000 /* ticks in one pipeline */
#define DEMO_IO_TIMEOUT_S 2
#define DEMO_FN_LIBRARY "chartgate_md"
#define DEMO_FN_MAX_BYTES (1 << 20) /* a library file larger than this is refused */
#ifndef CG_DEFAULT_FUNCTIONS
#define CG_DEFAULT_FUNCTIONS "gateway/functions/chartgate_md.lua"
#endif

static void demo_log(const char *level, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- options -------------------------------------------------------------------------------- */

struct demo_opts {
    char host[256];
    int port;
    unsigned db;
    double rate;
    int ninstruments;
    double duration;
    uint64_t seed;
    int seed_given;
    int print_instruments;
    int plain;             /* --publish plain: PUBLISH, not FCALL chartgate_publish */
    const char *functions; /* the library file, loaded when Redis lacks it */
    char stream_len[24];   /* FCALL's optional stream length; "" = the library's */
    const char *md_prefix, *user_prefix, *broadcast, *inbox_key, *instruments_key, *user;
};

#define DEMO_USAGE                                                                                 \
    "usage: demo-feed [--redis redis://HOST:PORT[/DB]] [--rate N] [--instruments N]\n"             \
    "                 [--duration S] [--seed N] [--user NAME] [--print-instruments]\n"             \
    "\n"                                                                                           \
    "Publishes random-walk CTP-style futures ticks for chartgate (PUBLISH md:<name>), keeps\n"     \
    "md:instruments filled, and now and then sends a message to one user, a broadcast, and\n"      \
    "chartgate:inbox envelopes. Runs until SIGINT/SIGTERM (exit 0) or --duration.\n"               \
    "\n"                                                                                           \
    "  --redis URL              Redis to publish to (default redis://127.0.0.1:6379)\n"            \
    "  --rate N                 ticks per second over all instruments (default 40)\n"              \
    "  --instruments N          how many instruments, most active first (default 20, max %d)\n"    \
    "  --duration S             stop after S seconds; 0 = run until a signal (default 0)\n"        \
    "  --seed N                 random seed, for a repeatable walk (default: time and pid)\n"      \
    "  --user NAME              user id that gets the user messages (default demo)\n"              \
    "  --print-instruments      print name, start price, tick size, decimals, volatility per\n"    \
    "                           minute and lots per minute at --rate, one line each; then exit\n"  \
    "  --publish fcall|plain    ticks through the Redis Function chartgate_publish (shared seq\n"  \
    "                           and stream, loaded from --functions when missing) or plain\n"      \
    "                           PUBLISH (default fcall)\n"                                         \
    "  --functions FILE         the library to load when Redis has none (default\n"                \
    "                           " CG_DEFAULT_FUNCTIONS ")\n"                                       \
    "  --stream-len N           pass N as chartgate_publish's stream length (default: the\n"       \
    "                           loaded library's)\n"                                               \
    "  --md-prefix P            tick channel prefix (default md:)\n"                               \
    "  --user-prefix P          user channel prefix (default user:)\n"                             \
    "  --broadcast-channel C    broadcast channel (default broadcast)\n"                           \
    "  --inbox-key K            inbox list (default chartgate:inbox)\n"                            \
    "  --instruments-key K      catalog set (default md:instruments)\n"                            \
    "  -h, --help               this text\n"

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("demo-feed: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see demo-feed --help)\n", stderr);
    exit(2);
}

/* parse_redis_url -- redis://HOST[:PORT][/DB], HOST may be [IPv6]. Returns 0, or -1 when the
 * URL does not have that shape (o is then partly written). */
static int parse_redis_url(const char *url, struct demo_opts *o)
{
    static const char scheme[] = "redis://";
    if (strncmp(url, scheme, sizeof(scheme) - 1) || strchr(url, '@'))
        return -1;
    const char *s = url + sizeof(scheme) - 1, *end = s + strcspn(s, "/"), *port = NULL;
    const char *h = s, *he;
    if (*s == '[') {
        h = s + 1;
        he = memchr(h, ']', (size_t)(end - h));
        if (!he)
            return -1;
        if (he + 1 < end) {
            if (he[1] != ':')
                return -1;
            port = he + 2;
        }
    } else {
        he = memchr(s, ':', (size_t)(end - s));
        if (he)
            port = he + 1;
        else
            he = end;
    }
    if (he == h || (size_t)(he - h) >= sizeof(o->host))
        return -1;
    memcpy(o->host, h, (size_t)(he - h));
    o->host[he - h] = 0;
    o->port = 6379;
    if (port) {
        char *e;
        errno = 0;
        long p = strtol(port, &e, 10);
        if (errno || e != end || p < 1 || p > 65535)
            return -1;
        o->port = (int)p;
    }
    o->db = 0;
    if (*end == '/' && end[1]) {
        char *e;
        errno = 0;
        unsigned long d = strtoul(end + 1, &e, 10);
        if (errno || *e || end[1] == '-' || d > 15)
            return -1;
        o->db = (unsigned)d;
    }
    return 0;
}

static double parse_number(const char *flag, const char *v, double lo, double hi)
{
    char *e;
    errno = 0;
    double d = strtod(v, &e);
    if (errno || e == v || *e || !isfinite(d) || d < lo || d > hi)
        usage_error("%s: expected a number from %g to %g, got '%s'", flag, lo, hi, v);
    return d;
}

static const char *parse_name(const char *flag, const char *v)
{
    if (!*v || strlen(v) > 128 || strpbrk(v, " \t\r\n"))
        usage_error("%s: expected 1 to 128 characters without spaces, got '%s'", flag, v);
    return v;
}

static int nspecs(void);

/* parse_opts -- fills o from argv; exits 0 after --help, 2 on a bad flag or value (one line on
 * stderr naming the flag). Accepts "--flag value" and "--flag=value". */
static void parse_opts(int argc, char **argv, struct demo_opts *o)
{
    *o = (struct demo_opts){.rate = 40,
                            .ninstruments = DEMO_DEFAULT_INSTRUMENTS,
                            .md_prefix = "md:",
                            .user_prefix = "user:",
                            .broadcast = "broadcast",
                            .inbox_key = "chartgate:inbox",
                            .instruments_key = "md:instruments",
                            .user = "demo",
                            .functions = CG_DEFAULT_FUNCTIONS};
    parse_redis_url("redis://127.0.0.1:6379", o);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq = strchr(arg, '='), *v;
        char flag[40];
        size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
        if (n >= sizeof(flag))
            usage_error("unknown flag '%.*s'", 60, arg);
        memcpy(flag, arg, n);
        flag[n] = 0;
        if (!strcmp(flag, "-h") || !strcmp(flag, "--help")) {
            printf(DEMO_USAGE, nspecs());
            exit(0);
        }
        if (!strcmp(flag, "--print-instruments")) {
            if (eq)
                usage_error("%s takes no value", flag);
            o->print_instruments = 1;
            continue;
        }
        static const char *const valued[] = {"--redis",
                                             "--rate",
                                             "--instruments",
                                             "--duration",
                                             "--seed",
                                             "--user",
                                             "--md-prefix",
                                             "--user-prefix",
                                             "--inbox-key",
                                             "--instruments-key",
                                             "--broadcast-channel",
                                             "--publish",
                                             "--functions",
                                             "--stream-len",
                                             NULL};
        int known = 0;
        for (int k = 0; valued[k]; k++)
            known |= !strcmp(flag, valued[k]);
        if (!known)
            usage_error("unknown flag '%s'", flag);
        if (eq)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        else
            usage_error("%s needs a value", flag);

        if (!strcmp(flag, "--redis")) {
            if (parse_redis_url(v, o))
                usage_error("--redis: expected redis://HOST:PORT[/DB], got '%s'", v);
        } else if (!strcmp(flag, "--rate")) {
            o->rate = parse_number(flag, v, 0.01, DEMO_MAX_RATE);
        } else if (!strcmp(flag, "--instruments")) {
            double d = parse_number(flag, v, 1, nspecs());
            if (d != floor(d))
                usage_error("%s: expected a whole number, got '%s'", flag, v);
            o->ninstruments = (int)d;
        } else if (!strcmp(flag, "--duration")) {
            o->duration = parse_number(flag, v, 0, 1e9);
        } else if (!strcmp(flag, "--seed")) {
            char *e;
            errno = 0;
            o->seed = strtoull(v, &e, 0);
            if (errno || e == v || *e || *v == '-')
                usage_error("--seed: expected an unsigned integer, got '%s'", v);
            o->seed_given = 1;
        } else if (!strcmp(flag, "--publish")) {
            if (!strcmp(v, "plain"))
                o->plain = 1;
            else if (!strcmp(v, "fcall"))
                o->plain = 0;
            else
                usage_error("--publish: expected fcall or plain, got '%s'", v);
        } else if (!strcmp(flag, "--functions")) {
            if (!*v)
                usage_error("--functions: expected a file name");
            o->functions = v;
        } else if (!strcmp(flag, "--stream-len")) {
            /* as chartgate_publish accepts it: 1 to 15 decimal digits, no leading zero */
            size_t len = strlen(v);
            if (len < 1 || len > 15 || v[0] < '1' || v[0] > '9' || strspn(v, "0123456789") != len)
                usage_error("--stream-len: expected an integer from 1 to 999999999999999, got "
                            "'%s'",
                            v);
            snprintf(o->stream_len, sizeof(o->stream_len), "%s", v);
        } else if (!strcmp(flag, "--user")) {
            o->user = parse_name(flag, v);
        } else if (!strcmp(flag, "--md-prefix")) {
            o->md_prefix = parse_name(flag, v);
        } else if (!strcmp(flag, "--user-prefix")) {
            o->user_prefix = parse_name(flag, v);
        } else if (!strcmp(flag, "--broadcast-channel")) {
            o->broadcast = parse_name(flag, v);
        } else if (!strcmp(flag, "--inbox-key")) {
            o->inbox_key = parse_name(flag, v);
        } else {
            o->instruments_key = parse_name(flag, v);
        }
    }
}

/* ---- the instrument table ------------------------------------------------------------------- */

struct demo_spec {
    const char *name;
    double price; /* start price, a multiple of tick; what imported history should end near */
    double tick;  /* minimum price increment */
    double vol;   /* standard deviation of the one-minute log-price change */
    double lots;  /* mean lots traded per tick */
    double oi;    /* open interest at start */
};

/* Most active first: the rank sets the tick share (Zipf-like), --instruments N takes the first
 * N. Price levels and tick sizes are those of the real contracts in late 2024. */
static const struct demo_spec specs[] = {
    {"rb2501", 3500, 1, 0.0009, 40, 1850000},   /* SHFE rebar */
    {"IF2412", 3900, 0.2, 0.0008, 6, 235000},   /* CFFEX CSI 300 index */
    {"au2412", 620.4, 0.02, 0.0005, 8, 182000}, /* SHFE gold, yuan/g */
    {"cu2501", 74000, 10, 0.0007, 10, 210000},  /* SHFE copper */
    {"i2501", 800, 0.5, 0.0010, 25, 720000},    /* DCE iron ore */
    {"m2501", 2900, 1, 0.0008, 30, 1450000},    /* DCE soybean meal */
    {"ag2412", 7800, 1, 0.0012, 35, 650000},    /* SHFE silver */
    {"sc2501", 550, 0.1, 0.0012, 8, 42000},     /* INE crude oil */
    {"ru2501", 17500, 5, 0.0011, 10, 180000},   /* SHFE rubber */
    {"hc2501", 3550, 1, 0.0009, 15, 1100000},   /* SHFE hot-rolled coil */
    {"ni2501", 125000, 10, 0.0013, 12, 160000}, /* SHFE nickel */
    {"IC2412", 5900, 0.2, 0.0010, 4, 210000},   /* CFFEX CSI 500 index */
    {"p2501", 9500, 2, 0.0010, 18, 520000},     /* DCE palm oil */
    {"SR501", 5900, 1, 0.0006, 10, 480000},     /* CZCE white sugar */
    {"rb2505", 3520, 1, 0.0008, 20, 1200000},   /* SHFE rebar, May */
    {"al2501", 20500, 5, 0.0006, 10, 300000},   /* SHFE aluminium */
    {"zn2501", 25000, 5, 0.0008, 8, 190000},    /* SHFE zinc */
    {"y2501", 8000, 2, 0.0008, 12, 600000},     /* DCE soybean oil */
    {"fu2501", 3100, 1, 0.0010, 15, 380000},    /* SHFE fuel oil */
    {"c2501", 2150, 1, 0.0005, 20, 1300000},    /* DCE corn */
    {"IH2412", 2700, 0.2, 0.0007, 3, 90000},    /* CFFEX SSE 50 index */
    {"j2501", 2050, 0.5, 0.0011, 4, 45000},     /* DCE coke */
    {"TA501", 4700, 2, 0.0009, 20, 900000},     /* CZCE PTA */
    {"MA501", 2550, 1, 0.0010, 20, 800000},     /* CZCE methanol */
    {"jm2501", 1350, 0.5, 0.0012, 8, 300000},   /* DCE coking coal */
};

static int nspecs(void)
{
    return (int)(sizeof(specs) / sizeof(specs[0]));
}

struct demo_inst {
    const struct demo_spec *spec;
    int decimals;       /* of tick, for text */
    double share;       /* expected fraction of all ticks (Zipf weight, normalised) */
    double sigma;       /* log-price step per tick, from spec->vol and the expected tick rate */
    double revert;      /* fraction of the log distance to the start price undone per tick */
    double x;           /* log(price / spec->price): the walk */
    uint64_t volume;    /* cumulative lots today */
    int64_t oi;         /* open interest */
    double burst_end;   /* monotonic s; a burst runs while now < burst_end */
    double burst_drift; /* trend of the burst, in sigmas per tick */
    double hold_end;    /* no pub/sub tick before this: an inbox tick may still be in flight */
};

static int tick_decimals(double tick)
{
    int d = 0;
    for (double scale = 1; d < 6; d++, scale *= 10) {
        double v = tick * scale;
        if (fabs(v - round(v)) < 1e-9)
            break;
    }
    return d;
}

/* The Zipf weight of rank r (0 = most active): mild enough that the tail still moves. */
static double zipf_weight(int rank)
{
    return pow(rank + 1, -0.8);
}

/* ---- random numbers (splitmix64: small, fast, good enough for a demo) ------------------------ */

static uint64_t rng_state;

static uint64_t rnd_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rnd_unit(void)
{
    return (double)(rnd_u64() >> 11) * 0x1.0p-53;
}

static double rnd_range(double lo, double hi)
{
    return lo + (hi - lo) * rnd_unit();
}

static double rnd_normal(void)
{
    double u = 1.0 - rnd_unit(); /* (0, 1] */
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * rnd_unit());
}

/* At least 1, geometric with the given mean (>= 1). */
static uint64_t rnd_lots(double mean)
{
    if (mean <= 1.0)
        return 1;
    double u = 1.0 - rnd_unit();
    return 1 + (uint64_t)floor(log(u) / log1p(-1.0 / mean));
}

/* ---- the walk and the JSON it produces ------------------------------------------------------ */

static void insts_init(struct demo_inst *in, int n, double rate)
{
    double total = 0;
    for (int i = 0; i < n; i++)
        total += zipf_weight(i);
    for (int i = 0; i < n; i++) {
        const struct demo_spec *s = &specs[i];
        double per_min = fmax(60.0 * rate * zipf_weight(i) / total, 1.0);
        in[i] = (struct demo_inst){
            .spec = s,
            .decimals = tick_decimals(s->tick),
            .share = zipf_weight(i) / total,
            .sigma = s->vol / sqrt(per_min),
            .revert = (log(2.0) / 90.0) / per_min,
            /* as if the day were some hours old already */
            .volume = (uint64_t)(s->lots * rnd_range(3000, 9000)),
            .oi = (int64_t)(s->oi * rnd_range(0.97, 1.03)),
        };
    }
}

static int in_burst(const struct demo_inst *in, double now)
{
    return now < in->burst_end;
}

/* pick -- an instrument by tick share (x4 in a burst), skipping held ones; NULL if all held. */
static struct demo_inst *pick(struct demo_inst *in, int n, double now, int include_held)
{
    double total = 0;
    for (int i = 0; i < n; i++)
        if (include_held || now >= in[i].hold_end)
            total += in[i].share * (in_burst(&in[i], now) ? 4 : 1);
    if (total <= 0)
        return NULL;
    double r = rnd_unit() * total;
    struct demo_inst *last = NULL;
    for (int i = 0; i < n; i++) {
        if (!include_held && now < in[i].hold_end)
            continue;
        last = &in[i];
        r -= in[i].share * (in_burst(&in[i], now) ? 4 : 1);
        if (r < 0)
            break;
    }
    return last;
}

/* Price ticks of the walk's current price (at least one tick). */
static int64_t price_ticks(const struct demo_inst *in)
{
    long long t = llround(in->spec->price * exp(in->x) / in->spec->tick);
    return t < 1 ? 1 : (int64_t)t;
}

static double ticks_to_price(const struct demo_inst *in, int64_t t)
{
    double scale = pow(10, in->decimals);
    return round((double)t * in->spec->tick * scale) / scale;
}

static void step(struct demo_inst *in, double now)
{
    double sigma = in->sigma, drift = 0;
    if (in_burst(in, now)) {
        sigma *= 2;
        drift = in->burst_drift * in->sigma;
    }
    in->x += drift - in->revert * in->x + sigma * rnd_normal();
    if (in->x < -1.5) /* a demo, not a crash: keep within a factor ~4 of the start */
        in->x = -1.5;
    else if (in->x > 1.5)
        in->x = 1.5;
    in->volume += rnd_lots(in->spec->lots);
    in->oi += llround(rnd_normal() * in->spec->lots * 0.4);
    if (in->oi < 1)
        in->oi = 1;
}

static void start_burst(struct demo_inst *in, double now)
{
    in->burst_end = now + rnd_range(3, 10);
    in->burst_drift = (rnd_unit() < 0.5 ? -1 : 1) * rnd_range(0.2, 0.5);
}

static int64_t epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* tick_json -- a new reference to the tick object of the current state; NULL without memory. */
static json_t *tick_json(const struct demo_inst *in)
{
    int64_t last = price_ticks(in);
    int64_t bid = last - (int64_t)(rnd_u64() & 1);
    int64_t ask = bid + 1 + (rnd_unit() < 0.08); /* now and then a two-tick spread */
    if (bid < 1) {
        bid = 1;
        ask = 2;
    }
    return json_pack("{s:f, s:I, s:f, s:f, s:I, s:I, s:I, s:I}", "last_price",
                     ticks_to_price(in, last), "volume", (json_int_t)in->volume, "bid",
                     ticks_to_price(in, bid), "ask", ticks_to_price(in, ask), "bid_vol",
                     (json_int_t)rnd_lots(in->spec->lots * 4), "ask_vol",
                     (json_int_t)rnd_lots(in->spec->lots * 4), "open_interest", (json_int_t)in->oi,
                     "ts", (json_int_t)epoch_ms());
}

/* Compact text of j (which is stolen); NULL without memory. Free with free(). */
static char *dump_steal(json_t *j)
{
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(j);
    return s;
}

/* ---- messages ---------------------------------------------------------------------------------
 */

/* user_message -- a new reference to a message for the demo user: mostly fills. */
static json_t *user_message(const struct demo_inst *in)
{
    int buy = rnd_unit() < 0.5;
    int qty = 1 + (int)(rnd_u64() % 5);
    double px = ticks_to_price(in, price_ticks(in));
    char text[160];
    if (rnd_unit() < 0.75) {
        snprintf(text, sizeof(text), "%s %d %s @ %.*f", buy ? "Bought" : "Sold", qty,
                 in->spec->name, in->decimals, px);
        return json_pack("{s:s, s:s, s:s, s:i, s:f, s:s}", "kind", "fill", "instrument",
                         in->spec->name, "side", buy ? "buy" : "sell", "qty", qty, "price", px,
                         "text", text);
    }
    if (rnd_unit() < 0.6) {
        snprintf(text, sizeof(text), "Order #%u accepted: %s %d %s @ %.*f limit",
                 (unsigned)(rnd_u64() % 90000 + 10000), buy ? "buy" : "sell", qty, in->spec->name,
                 in->decimals, px);
        return json_pack("{s:s, s:s, s:s}", "kind", "order", "instrument", in->spec->name, "text",
                         text);
    }
    snprintf(text, sizeof(text), "Margin usage %d%% of available funds", (int)(rnd_range(35, 85)));
    return json_pack("{s:s, s:s}", "kind", "risk", "text", text);
}

static const char *const notices[] = {
    "Market opens in 5 minutes",
    "Night session starts at 21:00",
    "Day session closes in 10 minutes",
    "Exchange notice: price limit for ni2501 widened to 10%",
    "Exchange notice: margin ratio for IF2412 unchanged",
    "Scheduled maintenance tonight 23:30-00:30",
    "New contracts listed: rb2506, hc2506",
    "Trading reminder: au2412 enters its delivery month soon",
};

/* broadcast_message -- a new reference to a notice for everyone. */
static json_t *broadcast_message(void)
{
    size_t n = sizeof(notices) / sizeof(notices[0]);
    return json_pack("{s:s, s:s}", "kind", "notice", "text", notices[rnd_u64() % n]);
}

/* ---- logging (logfmt on stderr, like the gateway's) -------------------------------------------
 */

static void demo_log(const char *level, const char *msg, const char *kvfmt, ...)
{
    char ts[32];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "ts=%s.%03ldZ level=%s prog=demo-feed msg=\"%s\"", ts, now.tv_nsec / 1000000,
            level, msg);
    if (kvfmt && *kvfmt) {
        va_list ap;
        va_start(ap, kvfmt);
        fputc(' ', stderr);
        vfprintf(stderr, kvfmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
}

/* ---- the Redis link ---------------------------------------------------------------------------
 */

struct demo_link {
    const struct demo_opts *o;
    redisContext *c;   /* NULL while down */
    int pending;       /* commands appended whose replies are not read yet */
    double retry_at;   /* monotonic s of the next connection attempt while down */
    double backoff;    /* s */
    double down_since; /* monotonic s when the current outage began; 0 while up */
    uint64_t errors;   /* error replies, e.g. WRONGTYPE on the catalog key */
    uint64_t losses;   /* connections lost or refused */
    int fn_ready;      /* chartgate_publish known to be loaded on this connection */
    char fatal[1024];  /* set when the feed cannot go on (the function cannot be loaded) */
};

/* link_down -- drops the connection (if any) and schedules the next attempt. The first failure
 * of an outage is logged, the retries are not. */
static void link_down(struct demo_link *l, double now, const char *why)
{
    if (l->down_since == 0) {
        demo_log("warn",
                 l->c ? "redis connection lost, reconnecting with back-off"
                      : "cannot connect to redis, retrying with back-off",
                 "redis=%s:%d error=\"%s\"", l->o->host, l->o->port, why);
        l->down_since = now;
    }
    if (l->c) {
        redisFree(l->c);
        l->losses++;
    }
    l->c = NULL;
    l->pending = 0;
    l->retry_at = now + l->backoff;
    l->backoff = fmin(l->backoff * 2, 5.0);
}

/* link_up -- one connection attempt; 0 when connected (the caller then re-sends the catalog),
 * -1 when not (next attempt scheduled with back-off). */
static int link_up(struct demo_link *l, double now)
{
    struct timeval tv = {DEMO_IO_TIMEOUT_S, 0};
    redisContext *c = redisConnectWithTimeout(l->o->host, l->o->port, tv);
    if (!c || c->err) {
        char why[128];
        snprintf(why, sizeof(why), "%s", c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        link_down(l, now, why);
        return -1;
    }
    redisSetTimeout(c, tv);
    if (l->o->db) {
        redisReply *r = redisCommand(c, "SELECT %u", l->o->db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            char why[160];
            snprintf(why, sizeof(why), "SELECT %u: %s", l->o->db, r ? r->str : c->errstr);
            if (r)
                freeReplyObject(r);
            redisFree(c);
            link_down(l, now, why);
            return -1;
        }
        freeReplyObject(r);
    }
    l->c = c;
    if (l->down_since != 0)
        demo_log("info", "redis connected", "redis=%s:%d db=%u after_s=%.1f", l->o->host,
                 l->o->port, l->o->db, now - l->down_since);
    else
        demo_log("info", "redis connected", "redis=%s:%d db=%u", l->o->host, l->o->port, l->o->db);
    l->down_since = 0;
    l->backoff = 0.2;
    return 0;
}

static void append_argv(struct demo_link *l, int argc, const char **argv)
{
    if (redisAppendCommandArgv(l->c, argc, argv, NULL) == REDIS_OK)
        l->pending++;
}

/* link_flush -- sends what was appended and reads every reply. Error replies are counted and
 * logged once per stats period; an I/O error drops the link. */
static void link_flush(struct demo_link *l, double now, int *error_logged)
{
    while (l->c && l->pending > 0) {
        void *reply = NULL;
        if (redisGetReply(l->c, &reply) != REDIS_OK) {
            char why[128];
            snprintf(why, sizeof(why), "%s", l->c->errstr[0] ? l->c->errstr : "I/O error");
            link_down(l, now, why);
            return;
        }
        l->pending--;
        redisReply *r = reply;
        if (r && r->type == REDIS_REPLY_ERROR) {
            l->errors++;
            if (strstr(r->str, "Function not found"))
                l->fn_ready = 0; /* flushed under us: checked and loaded again before more */
            if (!*error_logged) {
                demo_log("warn", "redis refused a command", "error=\"%s\"", r->str);
                *error_logged = 1;
            }
        }
        if (r)
            freeReplyObject(r);
    }
}

/* read_library -- the file's text (malloc'd, NUL-terminated; the caller frees) and its length,
 * or NULL with why filled. */
static char *read_library(const char *path, size_t *len, char *why, size_t whysz)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(why, whysz, "cannot read %.200s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(DEMO_FN_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, DEMO_FN_MAX_BYTES + 1, fp) : 0;
    int bad = !buf || ferror(fp) || n > DEMO_FN_MAX_BYTES || n == 0;
    fclose(fp);
    if (bad) {
        snprintf(why, whysz, "%.200s: %s", path,
                 !buf                    ? "out of memory"
                 : n > DEMO_FN_MAX_BYTES ? "larger than 1 MiB"
                 : n                     ? "read error"
                                         : "empty");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* fn_ensure -- makes sure chartgate_publish is loaded on l's connection: FUNCTION LIST, and
 * FUNCTION LOAD of --functions when the library is missing (no REPLACE, so a library a gateway
 * loaded first stays; losing that race to another loader is fine). Returns 0 when it is there
 * (l->fn_ready set), -1 when the link dropped (retried with back-off), -2 when it cannot be
 * loaded (l->fatal holds the one line saying why). */
static int fn_ensure(struct demo_link *l, double now)
{
    const char *why = NULL;
    char buf[300];
    redisReply *r = redisCommand(l->c, "FUNCTION LIST LIBRARYNAME %s", DEMO_FN_LIBRARY);
    if (!r) {
        link_down(l, now, l->c->errstr[0] ? l->c->errstr : "I/O error");
        return -1;
    }
    int have = r->type == REDIS_REPLY_ARRAY && r->elements > 0;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(buf, sizeof(buf), "%.200s", r->str);
        why = buf;
    }
    freeReplyObject(r);
    if (why) {
        snprintf(l->fatal, sizeof(l->fatal),
                 "redis %s:%d cannot list its functions (%s): chartgate_publish needs Redis 7.0 "
                 "or later and FUNCTION rights, or run with --publish plain",
                 l->o->host, l->o->port, why);
        return -2;
    }
    if (!have) {
        size_t len;
        char *text = read_library(l->o->functions, &len, buf, sizeof(buf));
        if (!text) {
            snprintf(l->fatal, sizeof(l->fatal),
                     "redis %s:%d has no function chartgate_publish and the library cannot be "
                     "loaded: %s (give --functions, run scripts/load-functions, or --publish "
                     "plain)",
                     l->o->host, l->o->port, buf);
            return -2;
        }
        r = redisCommand(l->c, "FUNCTION LOAD %b", text, len);
        free(text);
        if (!r) {
            link_down(l, now, l->c->errstr[0] ? l->c->errstr : "I/O error");
            return -1;
        }
        int ok = r->type != REDIS_REPLY_ERROR || strstr(r->str, "already exists");
        if (!ok)
            snprintf(l->fatal, sizeof(l->fatal),
                     "redis %s:%d refused FUNCTION LOAD of %.300s: %.200s (or run with --publish "
                     "plain)",
                     l->o->host, l->o->port, l->o->functions, r->str);
        freeReplyObject(r);
        if (!ok)
            return -2;
        demo_log("info", "loaded the redis function library", "library=%s file=%s", DEMO_FN_LIBRARY,
                 l->o->functions);
    }
    l->fn_ready = 1;
    return 0;
}

/* ---- the feed ---------------------------------------------------------------------------------
 */

struct demo_feed {
    const struct demo_opts *o;
    struct demo_inst *in;
    int n;
    struct demo_link link;
    const char **catalog_argv;

    double next_tick, next_catalog, next_user, next_broadcast, next_inbox_tick, next_stats;
    double stats_since;
    uint64_t ticks, ticks_at_stats, inbox_ticks, messages, skipped;
    int error_logged;
};

static volatile sig_atomic_t demo_stop;

static void on_signal(int sig)
{
    demo_stop = sig;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_until(double when)
{
    struct timespec ts;
    ts.tv_sec = (time_t)when;
    ts.tv_nsec = (long)((when - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    /* EINTR (a signal) returns early on purpose: the loop then sees demo_stop. */
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void push_inbox(struct demo_feed *f, char *envelope)
{
    char cap[24];
    snprintf(cap, sizeof(cap), "-%d", DEMO_INBOX_CAP);
    const char *rpush[] = {"RPUSH", f->o->inbox_key, envelope};
    const char *ltrim[] = {"LTRIM", f->o->inbox_key, cap, "-1"};
    append_argv(&f->link, 3, rpush);
    append_argv(&f->link, 4, ltrim);
}

/* publish_tick -- a tick of instrument name: FCALL chartgate_publish, or PUBLISH when plain. */
static void publish_tick(struct demo_feed *f, const char *name, const char *text)
{
    char key[200];
    snprintf(key, sizeof(key), "%s%s", f->o->md_prefix, name);
    if (f->o->plain) {
        const char *argv[] = {"PUBLISH", key, text};
        append_argv(&f->link, 3, argv);
        return;
    }
    const char *argv[] = {"FCALL", "chartgate_publish", "1", key, text, f->o->stream_len};
    append_argv(&f->link, f->o->stream_len[0] ? 6 : 5, argv);
}

static void publish(struct demo_feed *f, const char *prefix, const char *name, const char *text)
{
    char channel[200];
    snprintf(channel, sizeof(channel), "%s%s", prefix, name);
    const char *argv[] = {"PUBLISH", channel, text};
    append_argv(&f->link, 3, argv);
}

/* send_tick -- steps one instrument and appends its tick; via the inbox when via_inbox. */
static void send_tick(struct demo_feed *f, double now, int via_inbox)
{
    struct demo_inst *in = pick(f->in, f->n, now, 0);
    if (!in) /* every instrument held (one instrument, inbox tick in flight): wait */
        in = pick(f->in, f->n, now, 1);
    if (!via_inbox && now < in->hold_end) {
        f->skipped++;
        return;
    }
    if (f->n > 1 && rnd_unit() * 15.0 * f->o->rate < 1.0)
        start_burst(pick(f->in, f->n, now, 1), now);
    step(in, now);
    json_t *tick = tick_json(in);
    if (via_inbox) {
        /* The gateway republishes inbox items a little later than pub/sub ticks arrive; hold
         * this instrument's pub/sub ticks for a second so its cumulative volume never reaches
         * the gateway out of order (a lower total would read as a new trading session). */
        in->hold_end = now + 1.0;
        char *env = dump_steal(json_pack("{s:s, s:o}", "instrument", in->spec->name, "data", tick));
        if (env) {
            push_inbox(f, env);
            free(env);
            f->inbox_ticks++;
        }
    } else {
        char *text = dump_steal(tick);
        if (text) {
            publish_tick(f, in->spec->name, text);
            free(text);
        }
    }
    f->ticks++;
}

/* send_message -- data is stolen; to user (NULL = broadcast), a third through the inbox. */
static void send_message(struct demo_feed *f, const char *user, json_t *data)
{
    if (!data)
        return;
    char *text;
    int via_inbox = rnd_unit() < 1.0 / 3;
    if (via_inbox && user)
        text = dump_steal(json_pack("{s:s, s:o}", "user", user, "data", data));
    else if (via_inbox)
        text = dump_steal(json_pack("{s:b, s:o}", "broadcast", 1, "data", data));
    else
        text = dump_steal(data);
    if (!text)
        return;
    if (via_inbox)
        push_inbox(f, text);
    else if (user)
        publish(f, f->o->user_prefix, user, text);
    else
        publish(f, f->o->broadcast, "", text);
    free(text);
    f->messages++;
}

static void stats(struct demo_feed *f, double now, const char *msg)
{
    double span = now - f->stats_since;
    uint64_t ticks = f->ticks - f->ticks_at_stats;
    demo_log("info", msg,
             "ticks=%" PRIu64 " rate=%.1f ticks_total=%" PRIu64 " inbox_ticks=%" PRIu64
             " messages=%" PRIu64 " skipped=%" PRIu64 " redis_errors=%" PRIu64 " redis=%s",
             ticks, span > 0 ? (double)ticks / span : 0.0, f->ticks, f->inbox_ticks, f->messages,
             f->skipped, f->link.errors, f->link.c ? "up" : "down");
    f->stats_since = now;
    f->ticks_at_stats = f->ticks;
    f->error_logged = 0;
}

/* run -- the paced loop, until a signal or the end of --duration. */
static void run(struct demo_feed *f)
{
    const struct demo_opts *o = f->o;
    double start = mono(), interval = 1.0 / o->rate;
    double end = o->duration > 0 ? start + o->duration : INFINITY;
    f->next_tick = start;
    f->next_catalog = start;
    f->next_user = start + rnd_range(8, 15);
    f->next_broadcast = start + rnd_range(15, 25);
    f->next_inbox_tick = start + rnd_range(5, 10);
    f->next_stats = start + DEMO_STATS_S;
    f->stats_since = start;

    while (!demo_stop) {
        double now = mono();
        if (now >= end)
            break;
        if (!f->link.c && now >= f->link.retry_at && link_up(&f->link, now) == 0) {
            f->next_catalog = now;
            f->link.fn_ready = 0; /* a new connection may reach a Redis restarted empty */
        }
        if (f->link.c && !o->plain && !f->link.fn_ready && fn_ensure(&f->link, now) == -2)
            break;

        int due = 0;
        if (now - f->next_tick > 1.0) { /* behind by more than a second: restart the schedule */
            f->skipped += (uint64_t)((now - f->next_tick) * o->rate);
            f->next_tick = now;
        }
        while (f->next_tick <= now && due < DEMO_MAX_BATCH) {
            due++;
            f->next_tick += interval;
        }

        if (f->link.c) {
            for (int i = 0; i < due; i++) {
                int via_inbox = now >= f->next_inbox_tick;
                if (via_inbox)
                    f->next_inbox_tick = now + rnd_range(8, 12);
                send_tick(f, now, via_inbox);
            }
            if (now >= f->next_catalog) {
                append_argv(&f->link, f->n + 2, f->catalog_argv);
                f->next_catalog = now + DEMO_CATALOG_S;
            }
            if (now >= f->next_user) {
                send_message(f, o->user, user_message(pick(f->in, f->n, now, 1)));
                f->next_user = now + rnd_range(20, 40);
            }
            if (now >= f->next_broadcast) {
                send_message(f, NULL, broadcast_message());
                f->next_broadcast = now + rnd_range(20, 40);
            }
            link_flush(&f->link, now, &f->error_logged);
        } else {
            f->skipped += (uint64_t)due; /* messages that fall due wait for the link, once */
        }

        now = mono();
        if (now >= f->next_stats) {
            stats(f, now, "feed");
            f->next_stats += DEMO_STATS_S;
            if (f->next_stats < now)
                f->next_stats = now + DEMO_STATS_S;
        }

        double wake = fmin(fmin(f->next_tick, f->next_stats), end);
        if (f->link.c)
            wake = fmin(wake, fmin(f->next_catalog, fmin(f->next_user, f->next_broadcast)));
        else
            wake = fmin(wake, f->link.retry_at);
        if (wake > now)
            sleep_until(wake);
    }
}

static uint64_t default_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rng_state =
        (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    return rnd_u64();
}

static void print_instruments(const struct demo_inst *in, int n, double rate)
{
    printf("# name price tick decimals vol_per_min lots_per_min (at --rate %g)\n", rate);
    for (int i = 0; i < n; i++)
        printf("%s %.*f %g %d %g %.0f\n", in[i].spec->name, in[i].decimals, in[i].spec->price,
               in[i].spec->tick, in[i].decimals, in[i].spec->vol,
               in[i].spec->lots * 60.0 * rate * in[i].share);
}

int main(int argc, char **argv)
{
    struct demo_opts o;
    parse_opts(argc, argv, &o);
    if (!o.seed_given)
        o.seed = default_seed();
    rng_state = o.seed;

    struct demo_inst in[sizeof(specs) / sizeof(specs[0])];
    insts_init(in, o.ninstruments, o.rate);
    if (o.print_instruments) {
        print_instruments(in, o.ninstruments, o.rate);
        return 0;
    }

    const char *catalog[sizeof(specs) / sizeof(specs[0]) + 2];
    catalog[0] = "SADD";
    catalog[1] = o.instruments_key;
    for (int i = 0; i < o.ninstruments; i++)
        catalog[i + 2] = specs[i].name;

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: a signal ends a sleep */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a write to a closed Redis socket is an error, not death */

    struct demo_feed f = {
        .o = &o,
        .in = in,
        .n = o.ninstruments,
        .link = {.o = &o, .backoff = 0.2},
        .catalog_argv = catalog,
    };
    demo_log("info", "demo feed starting",
             "redis=%s:%d db=%u rate=%g instruments=%d duration_s=%g seed=%" PRIu64 " publish=%s",
             o.host, o.port, o.db, o.rate, o.ninstruments, o.duration, o.seed,
             o.plain ? "plain" : "fcall");
    run(&f);
    if (f.link.fatal[0]) {
        demo_log("error", "cannot publish through chartgate_publish", "error=\"%s\"", f.link.fatal);
        if (f.link.c)
            redisFree(f.link.c);
        return 1;
    }
    stats(&f, mono(), demo_stop ? "stopped by signal" : "duration reached");
    if (f.link.c)
        redisFree(f.link.c);
    return 0;
}
