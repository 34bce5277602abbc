/* test_deflate.c -- unit tests of the shared permessage-deflate compressor (gateway/deflate.h):
 * RFC 7692 messages that inflate back, one compression per distinct batch, frame references
 * held while cached, incompressible batches sent plain, server_max_window_bits kept to. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check.h"
#include "deflate.h"

static struct cg_frame *mk(const char *text)
{
    struct cg_frame *f = cg_frame_alloc(strlen(text));
    memcpy(cg_frame_data(f), text, strlen(text));
    return f;
}

/* Inflates an RFC 7692 message (the 00 00 ff ff tail appended) into out with a wbits window;
 * returns its length, or (size_t)-1 when zlib refuses the data. Output goes 64 bytes at a time,
 * as a streaming client's would: zlib resolves a back-reference from the output buffer when it
 * can, so only small steps make it go through the window, and refuse one reaching past it. */
static size_t inflate_window(const unsigned char *in, size_t len, unsigned char *out, size_t cap,
                             int wbits)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    CHECK(inflateInit2(&z, -wbits) == Z_OK);
    unsigned char *buf = malloc(len + 4);
    memcpy(buf, in, len);
    memcpy(buf + len, "\x00\x00\xff\xff", 4);
    z.next_in = buf;
    z.avail_in = (uInt)(len + 4);
    size_t n = 0;
    int rc = Z_OK;
    while (rc == Z_OK && (z.avail_in || !z.avail_out) && n < cap) {
        size_t step = cap - n < 64 ? cap - n : 64;
        z.next_out = out + n;
        z.avail_out = (uInt)step;
        rc = inflate(&z, Z_SYNC_FLUSH);
        n += step - z.avail_out;
    }
    if (rc == Z_BUF_ERROR && !z.avail_in)
        rc = Z_OK; /* all read, nothing more to give */
    if (rc == Z_OK || rc == Z_STREAM_END)
        CHECK_UINT(z.avail_in, 0);
    else
        n = (size_t)-1;
    inflateEnd(&z);
    free(buf);
    return n;
}

static size_t inflate_msg(const unsigned char *in, size_t len, unsigned char *out, size_t cap)
{
    return inflate_window(in, len, out, cap, 15);
}

static const char TICK[] = "{\"type\":\"tick\",\"instrument\":\"rb2501\",\"seq\":%d,\"data\":"
                           "{\"ts\":1700000000%03d,\"last_price\":3512.5,\"volume\":%d}}";

static size_t join(struct cg_frame **fr, uint32_t n, unsigned char *out)
{
    size_t len = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            out[len++] = '\n';
        memcpy(out + len, cg_frame_data(fr[i]), fr[i]->len);
        len += fr[i]->len;
    }
    return len;
}

static void test_roundtrip_and_sharing(void)
{
    struct cg_deflate d;
    CHECK(cg_deflate_init(&d, 256) == 0);
    struct cg_frame *fr[10];
    char text[256];
    for (int i = 0; i < 10; i++) {
        snprintf(text, sizeof(text), TICK, i, i, i * 7);
        fr[i] = mk(text);
    }
    unsigned char msg[4096], back[4096];
    size_t len = join(fr, 10, msg);
    CHECK(cg_deflate_find(&d, fr, 10, 15) == NULL);
    const struct cg_deflate_entry *e = cg_deflate_add(&d, fr, 10, 15, msg, len);
    CHECK(e != NULL);
    CHECK(e->compressed);
    CHECK(e->len < len / 2);
    CHECK_UINT(fr[0]->refs, 2); /* the cache holds each frame of its key */
    CHECK_UINT(fr[9]->refs, 2);
    CHECK_UINT(inflate_msg(e->buf + CG_FRAME_PRE, e->len, back, sizeof(back)), len);
    CHECK(!memcmp(back, msg, len));
    /* another socket with the same batch: found, not compressed again */
    CHECK(cg_deflate_find(&d, fr, 10, 15) == e);
    CHECK_UINT(d.compressions, 1);
    /* a prefix or another order of the same frames is another batch */
    CHECK(cg_deflate_find(&d, fr, 9, 15) == NULL);
    struct cg_frame *swapped[10];
    memcpy(swapped, fr, sizeof(fr));
    swapped[0] = fr[1];
    swapped[1] = fr[0];
    CHECK(cg_deflate_find(&d, swapped, 10, 15) == NULL);
    /* entries are replaced round robin: the first goes after CG_DEFLATE_CACHE others */
    for (int k = 0; k < CG_DEFLATE_CACHE; k++) {
        size_t l = join(fr + 1, 9, msg);
        struct cg_frame *key[9];
        memcpy(key, fr + 1, sizeof(key));
        key[8] = k % 2 ? fr[0] : fr[9]; /* distinct keys don't matter: eviction is by age */
        CHECK(cg_deflate_add(&d, key, 9, 15, msg, l) != NULL);
    }
    CHECK(cg_deflate_find(&d, fr, 10, 15) == NULL);
    CHECK_UINT(d.compressions, 1 + CG_DEFLATE_CACHE);
    cg_deflate_finish(&d);
    for (int i = 0; i < 10; i++) {
        CHECK_UINT(fr[i]->refs, 1); /* finish dropped the cache's references */
        cg_frame_unref(fr[i]);
    }
    cg_deflate_finish(&d); /* twice is harmless */
}

static void test_incompressible_goes_plain(void)
{
    struct cg_deflate d;
    CHECK(cg_deflate_init(&d, 0) == 0);
    unsigned char noise[600];
    srand(17);
    for (size_t i = 0; i < sizeof(noise); i++)
        noise[i] = (unsigned char)(' ' + rand() % 90);
    struct cg_frame *f = cg_frame_alloc(sizeof(noise));
    memcpy(cg_frame_data(f), noise, sizeof(noise));
    const struct cg_deflate_entry *e = cg_deflate_add(&d, &f, 1, 15, noise, sizeof(noise));
    CHECK(e != NULL);
    /* random printable text still compresses a little (6.5 of 8 bits): whichever it is, the
     * entry says so and a compressed one inflates back */
    if (e->compressed) {
        unsigned char back[1024];
        CHECK(e->len < sizeof(noise));
        CHECK_UINT(inflate_msg(e->buf + CG_FRAME_PRE, e->len, back, sizeof(back)), sizeof(noise));
        CHECK(!memcmp(back, noise, sizeof(noise)));
    }
    /* a 1-byte message cannot get smaller: plain */
    struct cg_frame *g = mk("x");
    e = cg_deflate_add(&d, &g, 1, 15, (const unsigned char *)"x", 1);
    CHECK(e != NULL && !e->compressed);
    CHECK(cg_deflate_find(&d, &g, 1, 15) == e); /* remembered: not tried again */
    /* an empty message deflates to the one byte 00 (RFC 7692 §7.2.3.6); no room, no result */
    unsigned char out[8];
    CHECK_UINT(cg_deflate_message(&d, 15, (const unsigned char *)"", 0, out, sizeof(out)), 1);
    CHECK_UINT(out[0], 0);
    CHECK_UINT(cg_deflate_message(&d, 15, noise, sizeof(noise), out, sizeof(out)), 0);
    cg_deflate_finish(&d);
    cg_frame_unref(f);
    cg_frame_unref(g);
}

/* server_max_window_bits: a batch is compressed once per window asked for, and a message made
 * for a 9-bit window inflates with one, where the 15-bit message's far back-references do not */
static void test_window_bits(void)
{
    struct cg_deflate d;
    CHECK(cg_deflate_init(&d, 0) == 0);
    /* 1,000 bytes of noise, then the same 1,000 bytes again: the repeat is 1,000 bytes back,
     * further than a 512-byte window reaches */
    enum { HALF = 1000 };
    unsigned char msg[2 * HALF], back[4 * HALF];
    srand(5);
    for (size_t i = 0; i < HALF; i++)
        msg[i] = (unsigned char)('a' + rand() % 26);
    memcpy(msg + HALF, msg, HALF);
    struct cg_frame *f = cg_frame_alloc(sizeof(msg));
    memcpy(cg_frame_data(f), msg, sizeof(msg));
    const struct cg_deflate_entry *e15 = cg_deflate_add(&d, &f, 1, 15, msg, sizeof(msg));
    CHECK(e15 != NULL && e15->compressed && e15->wbits == 15);
    CHECK(cg_deflate_find(&d, &f, 1, 9) == NULL); /* the 15-bit answer is not the 9-bit one */
    const struct cg_deflate_entry *e9 = cg_deflate_add(&d, &f, 1, 9, msg, sizeof(msg));
    CHECK(e9 != NULL && e9->compressed && e9->wbits == 9);
    CHECK_UINT(d.compressions, 2);
    CHECK(cg_deflate_find(&d, &f, 1, 15) == e15);
    CHECK(cg_deflate_find(&d, &f, 1, 9) == e9);
    CHECK(e15->len < e9->len); /* only the wide window found the repeat */
    CHECK_UINT(inflate_window(e9->buf + CG_FRAME_PRE, e9->len, back, sizeof(back), 9), sizeof(msg));
    CHECK(!memcmp(back, msg, sizeof(msg)));
    CHECK_UINT(inflate_window(e15->buf + CG_FRAME_PRE, e15->len, back, sizeof(back), 9),
               (size_t)-1); /* "invalid distance too far back": the test can tell */
    /* every window from 9 to 15 makes a message its own size of window inflates */
    for (unsigned wb = CG_DEFLATE_MIN_WBITS; wb <= CG_DEFLATE_MAX_WBITS; wb++) {
        unsigned char out[sizeof(msg) + 1];
        size_t n = cg_deflate_message(&d, wb, msg, sizeof(msg), out, sizeof(out));
        CHECK(n > 0);
        CHECK_UINT(inflate_window(out, n, back, sizeof(back), (int)wb), sizeof(msg));
    }
    unsigned char out[sizeof(msg) + 1];
    CHECK_UINT(cg_deflate_message(&d, 8, msg, sizeof(msg), out, sizeof(out)), 0);
    CHECK_UINT(cg_deflate_message(&d, 16, msg, sizeof(msg), out, sizeof(out)), 0);
    cg_deflate_finish(&d);
    cg_frame_unref(f);
}

int main(void)
{
    test_roundtrip_and_sharing();
    test_incompressible_goes_plain();
    test_window_bits();
    return check_summary("deflate");
}
