/* deflate.c -- permessage-deflate compression of outgoing batches, shared between sockets. */
#include "deflate.h"

#include <stdlib.h>
#include <string.h>

#define LEVEL 1     /* what the benchmark measured: ratio ~ level 6's on ticks, a third the CPU */
#define MEM_LEVEL 8 /* zlib's default */

static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};

/* The stream for a wbits window, made on first use; NULL: out of range or out of memory. */
static z_stream *window_stream(struct cg_deflate *d, unsigned wbits)
{
    if (wbits < CG_DEFLATE_MIN_WBITS || wbits > CG_DEFLATE_MAX_WBITS)
        return NULL;
    unsigned i = wbits - CG_DEFLATE_MIN_WBITS;
    if (!d->ready[i]) {
        /* the memory level stays at zlib's default: it sizes the hash table, not the window */
        if (deflateInit2(&d->z[i], LEVEL, Z_DEFLATED, -(int)wbits, MEM_LEVEL, Z_DEFAULT_STRATEGY) !=
            Z_OK)
            return NULL;
        d->ready[i] = 1;
    }
    return &d->z[i];
}

int cg_deflate_init(struct cg_deflate *d, size_t min_bytes)
{
    memset(d, 0, sizeof(*d));
    d->min_bytes = min_bytes;
    return window_stream(d, CG_DEFLATE_MAX_WBITS) ? 0 : -1;
}

static void entry_clear(struct cg_deflate_entry *e)
{
    for (uint32_t i = 0; i < e->n; i++)
        cg_frame_unref(e->frames[i]);
    e->n = 0;
    e->len = 0;
    e->compressed = 0;
}

void cg_deflate_finish(struct cg_deflate *d)
{
    for (unsigned i = 0; i < CG_DEFLATE_CACHE; i++) {
        struct cg_deflate_entry *e = &d->ent[i];
        entry_clear(e);
        free(e->frames);
        free(e->buf);
        e->frames = NULL;
        e->buf = NULL;
        e->cap_frames = 0;
        e->cap = 0;
    }
    for (unsigned i = 0; i < CG_DEFLATE_NWBITS; i++) {
        if (d->ready[i])
            deflateEnd(&d->z[i]);
        d->ready[i] = 0;
    }
}

const struct cg_deflate_entry *cg_deflate_find(const struct cg_deflate *d,
                                               struct cg_frame *const *frames, uint32_t n,
                                               unsigned wbits)
{
    for (unsigned i = 0; i < CG_DEFLATE_CACHE; i++) {
        const struct cg_deflate_entry *e = &d->ent[i];
        if (e->n == n && n && e->wbits == wbits && !memcmp(e->frames, frames, n * sizeof(*frames)))
            return e;
    }
    return NULL;
}

size_t cg_deflate_message(struct cg_deflate *d, unsigned wbits, const unsigned char *msg,
                          size_t len, unsigned char *out, size_t cap)
{
    z_stream *z = window_stream(d, wbits);
    if (!z || deflateReset(z) != Z_OK)
        return 0;
    z->next_in = (unsigned char *)msg;
    z->avail_in = (uInt)len;
    z->next_out = out;
    z->avail_out = (uInt)cap;
    int rc = deflate(z, Z_SYNC_FLUSH);
    /* Z_SYNC_FLUSH with output room left means all of it is out, ending in the empty block. */
    if ((rc != Z_OK && rc != Z_BUF_ERROR) || z->avail_in || !z->avail_out)
        return 0;
    size_t n = cap - z->avail_out;
    if (n < sizeof(tail) || memcmp(out + n - sizeof(tail), tail, sizeof(tail)))
        return 0;
    return n - sizeof(tail);
}

const struct cg_deflate_entry *cg_deflate_add(struct cg_deflate *d, struct cg_frame *const *frames,
                                              uint32_t n, unsigned wbits, const unsigned char *msg,
                                              size_t len)
{
    struct cg_deflate_entry *e = &d->ent[d->next];
    d->next = (d->next + 1) % CG_DEFLATE_CACHE;
    entry_clear(e);
    if (!n)
        return NULL;
    if (n > e->cap_frames) {
        struct cg_frame **fr = realloc(e->frames, n * sizeof(*fr));
        if (!fr)
            return NULL;
        e->frames = fr;
        e->cap_frames = n;
    }
    /* Only a result smaller than msg is kept: len bytes of room are enough (and one more for
     * zlib to tell "all out" from "out of room"). */
    size_t need = CG_FRAME_PRE + len + 1;
    if (need > e->cap) {
        unsigned char *b = realloc(e->buf, need);
        if (!b)
            return NULL;
        e->buf = b;
        e->cap = need;
    }
    size_t clen = cg_deflate_message(d, wbits, msg, len, e->buf + CG_FRAME_PRE, len + 1);
    d->compressions++;
    e->wbits = wbits;
    e->compressed = clen && clen < len;
    e->len = e->compressed ? clen : 0;
    for (uint32_t i = 0; i < n; i++)
        e->frames[i] = cg_frame_ref(frames[i]);
    e->n = n;
    return e;
}
