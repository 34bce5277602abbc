/* bench.h -- what the benchmark tools (cg-load, cg-publish) share: clocks, the PRNG, Zipf
 * sampling and the loopback check. Header-only (static inline): each tool is one file plus
 * this. No state: the PRNG state and the Zipf table belong to the caller. */
#ifndef CG_BENCH_H
#define CG_BENCH_H

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
