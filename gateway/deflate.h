/* deflate.h -- permessage-deflate (RFC 7692) for outgoing messages: each distinct batch is
 * compressed once, without context takeover, and the result is shared by every socket whose
 * batch is the same frames in the same order.
 *
 * Pure (zlib only). The write path (client.c) asks cg_deflate_find() for a batch of frames;
 * on a miss it joins the frames as it always does and hands the message to cg_deflate_add().
 * An entry holds a reference on each of its frames, so that the frame pointers that key it
 * cannot be freed and reused by another batch while it is cached: pointer equality is frame
 * identity. A message compressed from a fresh stream is valid for every client, with or
 * without context takeover (a client that keeps its window still decodes it). The one thing a
 * client can ask that changes the bytes is server_max_window_bits (9..15): a batch is
 * compressed once per window size its sockets asked for, and entries are keyed by both. */
#ifndef CG_DEFLATE_H
#define CG_DEFLATE_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "frame.h"

#define CG_DEFLATE_CACHE 4 /* distinct batches remembered (round robin) */
/* The LZ77 window sizes a client may ask for with server_max_window_bits. zlib cannot make raw
 * deflate with an 8-bit (256-byte) window, so an offer of 8 is declined (wsdeflate.c). */
#define CG_DEFLATE_MIN_WBITS 9
#define CG_DEFLATE_MAX_WBITS 15
#define CG_DEFLATE_NWBITS (CG_DEFLATE_MAX_WBITS - CG_DEFLATE_MIN_WBITS + 1)

struct cg_deflate_entry {
    struct cg_frame **frames; /* the batch, one reference each; NULL: entry unused */
    uint32_t n, cap_frames;
    unsigned char *buf; /* CG_FRAME_PRE headroom, then len bytes: the message to send */
    size_t cap, len;
    int compressed; /* 1: buf holds the deflated message (RSV1); 0: not smaller, sent plain */
    unsigned wbits; /* the window it was compressed with (CG_DEFLATE_MIN..MAX_WBITS) */
};

struct cg_deflate {
    /* one stream per window size, [wbits - CG_DEFLATE_MIN_WBITS]; the 15-bit one made at init,
     * the others when a socket first asks for them */
    z_stream z[CG_DEFLATE_NWBITS];
    uint8_t ready[CG_DEFLATE_NWBITS]; /* z[i] initialised */
    size_t min_bytes;
    struct cg_deflate_entry ent[CG_DEFLATE_CACHE];
    unsigned next;         /* the entry the next miss replaces */
    uint64_t compressions; /* messages deflated (cache misses) */
};

/* Sets d up; messages shorter than min_bytes are never compressed. Returns 0, or -1 out of
 * memory. */
int cg_deflate_init(struct cg_deflate *d, size_t min_bytes);
/* Frees d's stream and entries (dropping their frame references). Accepts a zeroed d. */
void cg_deflate_finish(struct cg_deflate *d);
/* The cached entry for the batch frames[0..n) compressed with a wbits window, or NULL. */
const struct cg_deflate_entry *cg_deflate_find(const struct cg_deflate *d,
                                               struct cg_frame *const *frames, uint32_t n,
                                               unsigned wbits);
/* Compresses msg (len bytes, the frames joined as the write path joins them; len >= min_bytes)
 * with a wbits window (CG_DEFLATE_MIN..MAX_WBITS) and caches the result under frames[0..n) and
 * wbits (a reference is taken on each frame), replacing the oldest entry. Returns the entry,
 * compressed 0 when deflating did not make msg smaller or zlib failed (send msg plain; the next
 * socket with this batch finds that answer); NULL out of memory (send msg plain). */
const struct cg_deflate_entry *cg_deflate_add(struct cg_deflate *d, struct cg_frame *const *frames,
                                              uint32_t n, unsigned wbits, const unsigned char *msg,
                                              size_t len);
/* Deflates msg into out (cap bytes) as one RFC 7692 message from a fresh stream with a wbits
 * window (raw deflate, Z_SYNC_FLUSH, its 00 00 ff ff tail removed): every back-reference
 * reaches at most 2^wbits bytes. Returns the length, or 0 when it does not fit in cap, wbits
 * is out of range, or zlib failed (out of memory for a new window size included). */
size_t cg_deflate_message(struct cg_deflate *d, unsigned wbits, const unsigned char *msg,
                          size_t len, unsigned char *out, size_t cap);

#endif
