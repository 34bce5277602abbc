/* bench.h -- what the benchmark tools (cg-load, cg-publish) share: clocks, the PRNG, Zipf
 * sampling, the loopback check and the option values both take (numbers, the instrument
 * prefix, ws:// and redis:// addresses). Header-only (static inline): each tool is one file plus
 * this. No state: the PRNG state and the Zipf table belong to the caller. Each tool keeps its
 * own getopt table; a bad value ends the process through bench_die, whose line starts with
 * BENCH_PROG, which the tool defines before including this header. */
#ifndef CG_BENCH_H
#define CG_BENCH_H

#ifndef BENCH_PROG
#error "define BENCH_PROG (the tool's name, e.g. \"cg-load\") before including bench.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Instrument names are <prefix><i>: a prefix this long leaves room for i in the 32 characters
 * an instrument may have (PROTOCOL.md §11.2). */
#define BENCH_PREFIX_MAX 20

static inline uint64_t bench_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Wall-clock microseconds: what the publisher stamps and the load client subtracts. */
static inline uint64_t bench_real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* xorshift64*; *state must not be 0. */
static inline uint64_t bench_rnd(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 2685821657736338717ULL;
}

static inline double bench_rnd_unit(uint64_t *state) /* [0, 1) */
{
    return (double)(bench_rnd(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* A whole-string finite number in [lo, hi] into *out; 0, or -1 ("nan", "1e999", "5x", ""...). */
static inline int bench_number(const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d) || d < lo || d > hi)
        return -1;
    *out = d;
    return 0;
}

/* 127.0.0.0/8 or "localhost": the only targets the tools accept. */
static inline int bench_is_loopback(const char *host)
{
    struct in_addr a;
    if (!strcmp(host, "localhost"))
        return 1;
    return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

/* ---- option values ------------------------------------------------------------------------ */

/* One line "BENCH_PROG: error: ..." on stderr, then exit status 2 (bad options, or a setup
 * step that cannot go on). Does not return. */
static inline void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(BENCH_PROG ": error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* --name's value v as a number in [lo, hi] (bench_number); exits 2 otherwise. */
static inline double bench_num_arg(const char *name, const char *v, double lo, double hi)
{
    double d;
    if (bench_number(v, lo, hi, &d)) /* also refuses "nan", which passes a range test */
        bench_die("--%s: want a number in [%g, %g], got '%s'", name, lo, hi, v);
    return d;
}

/* --name's value v as a whole decimal number in [lo, hi]; exits 2 otherwise. */
static inline uint64_t bench_uint_arg(const char *name, const char *v, uint64_t lo, uint64_t hi)
{
    char *end;
    errno = 0;
    unsigned long long u = strtoull(v, &end, 10);
    if (errno || end == v || *end || *v == '-' || u < lo || u > hi)
        bench_die("--%s: want a whole number in [%" PRIu64 ", %" PRIu64 "], got '%s'", name, lo, hi,
                  v);
    return (uint64_t)u;
}

/* --prefix's value v (instrument names are <prefix><i>) into out, which holds at least
 * BENCH_PREFIX_MAX + 1 bytes: up to BENCH_PREFIX_MAX letters, '.', '_' or '-'; exits 2
 * otherwise. */
static inline void bench_prefix_arg(const char *v, char *out, size_t outsz)
{
    size_t n = strlen(v);
    if (n > BENCH_PREFIX_MAX || n >= outsz ||
        strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._-") != n)
        bench_die("--prefix: want up to %d letters, '.', '_' or '-', got '%s'", BENCH_PREFIX_MAX,
                  v);
    memcpy(out, v, n + 1);
}

/* A loopback address given as ws://HOST:PORT[/PATH] or redis://HOST:PORT[/DB]. */
struct bench_url {
    char host[64]; /* 127.x.y.z ("localhost" is stored as 127.0.0.1, not ::1: a server bound to
                      127.0.0.1 must be found) */
    int port;
    char path[128]; /* ws:// only: the request path, "/" when the URL has none */
    unsigned db;    /* redis:// only: 0..15, 0 when the URL has none */
};

/* bench_parse_url -- --name's value url, which must start with scheme ("ws://" or "redis://"),
 * into u; exits 2 (one line naming --name) on another shape, a bad port or database, or a host
 * that is not loopback. */
static inline void bench_parse_url(const char *name, const char *scheme, const char *url,
                                   struct bench_url *u)
{
    int redis = !strcmp(scheme, "redis://");
    size_t sl = strlen(scheme);
    memset(u, 0, sizeof(*u));
    const char *h = url + sl, *colon = strncmp(url, scheme, sl) ? NULL : strchr(h, ':');
    if (!colon || colon == h || (size_t)(colon - h) >= sizeof(u->host))
        bench_die("--%s: want %sHOST:PORT%s, got '%s'", name, scheme, redis ? "[/DB]" : "[/PATH]",
                  url);
    memcpy(u->host, h, (size_t)(colon - h));
    u->host[colon - h] = 0;
    if (!bench_is_loopback(u->host))
        bench_die("--%s: only loopback targets (127.0.0.0/8 or localhost), got '%s'", name,
                  u->host);
    if (!strcmp(u->host, "localhost"))
        snprintf(u->host, sizeof(u->host), "127.0.0.1");
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || p < 1 || p > 65535 || (*end && *end != '/'))
        bench_die("--%s: bad port in '%s'", name, url);
    u->port = (int)p;
    if (redis) {
        if (*end == '/' && end[1])
            u->db = (unsigned)bench_uint_arg("redis database", end + 1, 0, 15);
    } else if ((size_t)snprintf(u->path, sizeof(u->path), "%s", *end ? end : "/") >=
               sizeof(u->path)) {
        bench_die("--%s: a path of at most %zu bytes, got '%s'", name, sizeof(u->path) - 1, url);
    }
}

/* A new array (caller frees) of k cumulative probabilities of P(i) ~ 1/(i+1)^s, the last
 * exactly 1; NULL when out of memory. */
static inline double *bench_zipf_cdf(uint32_t k, double s)
{
    double *cdf = malloc(k * sizeof(*cdf));
    if (!cdf)
        return NULL;
    double sum = 0;
    for (uint32_t i = 0; i < k; i++) {
        sum += pow((double)i + 1.0, -s);
        cdf[i] = sum;
    }
    for (uint32_t i = 0; i < k; i++)
        cdf[i] /= sum;
    cdf[k - 1] = 1.0;
    return cdf;
}

/* The first index whose cumulative probability exceeds u in [0, 1). */
static inline uint32_t bench_zipf_pick(const double *cdf, uint32_t k, double u)
{
    uint32_t lo = 0, hi = k - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

#endif
