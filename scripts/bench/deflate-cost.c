/* deflate-cost.c -- what permessage-deflate (RFC 7692) would cost chartgate, per message and per
 * frame, for the two designs issue #17 weighs. A design measurement: the gateway does not
 * compress yet.
 *
 * Messages are what the write path sends: tick frames encoded by frame.c (the benchmark
 * publisher's payload, 20 instruments, random-walk prices) joined by "\n", F frames a message.
 * Each is deflated (raw, level 1, Z_SYNC_FLUSH, the 00 00 ff ff tail dropped, as RFC 7692 says)
 *   - per socket: one stream per socket with context takeover (what lws's extension does);
 *     the cost is paid once per socket per message;
 *   - shared: one stream reset before each message (server_no_context_takeover), so sockets
 *     with byte-identical batches can share one compressed message; the cost is paid once per
 *     distinct batch, whatever the number of sockets.
 * Bytes include the WebSocket frame header (server to client: 2, 4 or 10 bytes).
 *
 *   build/scripts/deflate-cost [MESSAGES]      (default 20000 per row; prints a markdown table) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "frame.h"

#define NINST 20
#define POOL 4096
#define MSG_MAX 4096 /* bytes: 20 tick frames fit */

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static size_t ws_header(size_t len)
{
    return len < 126 ? 2 : len < 65536 ? 4 : 10;
}

/* One message of nframes tick frames, as the write path joins them; returns its length. */
static size_t batch(unsigned char *out, size_t cap, int nframes, uint64_t *seqs, double *prices,
                    int64_t *ts, uint64_t *vol)
{
    size_t len = 0;
    for (int k = 0; k < nframes; k++) {
        int i = rand() % NINST;
        char name[16], data[200];
        snprintf(name, sizeof(name), "bn%d", i);
        prices[i] += 0.1 * (rand() % 11 - 5);
        vol[i] += (uint64_t)(1 + rand() % 50);
        *ts += rand() % 50;
        int dl = snprintf(data, sizeof(data),
                          "{\"ts\":%" PRId64 ",\"last_price\":%.1f,\"volume\":%" PRIu64
                          ",\"pub_us\":%" PRId64 "}",
                          *ts, prices[i], vol[i], *ts * 1000 + rand() % 1000);
        struct cg_frame *f = cg_frame_tick(&prices[i], name, ++seqs[i], data, (size_t)dl);
        if (!f || len + 1 + f->len > cap) {
            cg_frame_unref(f);
            break;
        }
        if (len)
            out[len++] = '\n';
        memcpy(out + len, cg_frame_data(f), f->len);
        len += f->len;
        cg_frame_unref(f);
    }
    return len;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    if (n < 1) {
        fprintf(stderr, "usage: deflate-cost [MESSAGES]\n");
        return 2;
    }
    static const int frames[] = {1, 2, 5, 10, 20};
    static const struct {
        const char *name;
        int takeover, wbits, mem;
    } modes[] = {{"per socket, window 15, memLevel 8", 1, 15, 8},
                 {"per socket, window 10, memLevel 4", 1, 10, 4},
                 {"shared (no context takeover), window 15, memLevel 8", 0, 15, 8},
                 {"shared (no context takeover), window 10, memLevel 4", 0, 10, 4}};
    size_t cap = MSG_MAX;
    static size_t plen[POOL];
    unsigned char *msgs = malloc((size_t)MSG_MAX * POOL), *out = malloc(2 * cap);
    size_t *lens = malloc(sizeof(size_t) * (size_t)n);
    unsigned char **at = malloc(sizeof(*at) * (size_t)n);
    if (!msgs || !out || !lens || !at)
        return 1;
    printf("| frames/message | design | bytes vs uncompressed | us per message | us per frame |\n"
           "|---|---|---|---|---|\n");
    for (size_t fi = 0; fi < sizeof(frames) / sizeof(frames[0]); fi++) {
        /* n messages, cycling through a pool of POOL: far more than a 32 KiB window holds, so
         * context takeover finds no repeated message, only the repeats within real ticks. */
        uint64_t seqs[NINST] = {0}, vol[NINST] = {0};
        double prices[NINST];
        int64_t ts = 1764790000000;
        for (int i = 0; i < NINST; i++)
            prices[i] = 3500.0;
        srand(1);
        for (int k = 0; k < POOL; k++)
            plen[k] =
                batch(msgs + (size_t)k * MSG_MAX, MSG_MAX, frames[fi], seqs, prices, &ts, vol);
        for (int i = 0; i < n; i++) {
            at[i] = msgs + (size_t)(i % POOL) * MSG_MAX;
            lens[i] = plen[i % POOL];
        }
        for (size_t mi = 0; mi < sizeof(modes) / sizeof(modes[0]); mi++) {
            z_stream z;
            memset(&z, 0, sizeof(z));
            if (deflateInit2(&z, 1, Z_DEFLATED, -modes[mi].wbits, modes[mi].mem,
                             Z_DEFAULT_STRATEGY) != Z_OK)
                return 1;
            double raw = 0, comp = 0, t0 = cpu_s();
            for (int i = 0; i < n; i++) {
                if (!modes[mi].takeover)
                    deflateReset(&z);
                z.next_in = at[i];
                z.avail_in = (uInt)lens[i];
                z.next_out = out;
                z.avail_out = (uInt)(2 * cap);
                if (deflate(&z, Z_SYNC_FLUSH) != Z_OK)
                    return 1;
                size_t zl = 2 * cap - z.avail_out - 4;
                raw += (double)(lens[i] + ws_header(lens[i]));
                comp += (double)(zl + ws_header(zl));
            }
            double us = (cpu_s() - t0) / n * 1e6;
            deflateEnd(&z);
            printf("| %d | %s | %.1f%% | %.2f | %.2f |\n", frames[fi], modes[mi].name,
                   100 * comp / raw, us, us / frames[fi]);
        }
    }
    free(msgs);
    free(out);
    free(lens);
    free(at);
    return 0;
}
