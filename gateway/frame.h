/* frame.h -- gateway->client frames: refcounted, encoded once, shared by all recipients.
 *
 * A frame is one compact JSON object (never a raw newline, so frames can be batched
 * with "\n" between them) stored after CG_FRAME_PRE bytes of headroom, which the
 * WebSocket layer may use for its header (it asserts CG_FRAME_PRE >= LWS_PRE).
 * Every encoder returns a new frame with one reference, or NULL on allocation
 * failure; recipients take references with cg_frame_ref and drop them with
 * cg_frame_unref. This module knows neither libwebsockets nor hiredis. */
#ifndef CG_FRAME_H
#define CG_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "bars.h"

#define CG_FRAME_PRE 16

enum cg_frame_kind {
    CG_FRAME_CONTROL, /* replies, errors: never conflated */
    CG_FRAME_TICK,    /* conflatable per instrument (ckey) */
    CG_FRAME_MESSAGE, /* user / broadcast messages: never conflated */
};

struct cg_frame {
    uint32_t refs;
    uint8_t kind;
    const void *ckey; /* conflation key (the instrument), borrowed; NULL unless TICK */
    size_t len;       /* payload bytes after the headroom */
    unsigned char buf[];
};

static inline unsigned char *cg_frame_data(struct cg_frame *f)
{
    return f->buf + CG_FRAME_PRE;
}

/* Allocates a frame with room for len payload bytes, one reference, kind CONTROL. */
struct cg_frame *cg_frame_alloc(size_t len);
struct cg_frame *cg_frame_ref(struct cg_frame *f);
/* Drops one reference; frees at zero. Accepts NULL. */
void cg_frame_unref(struct cg_frame *f);

/* Encoders. Strings named *_json are already-valid compact JSON text (no raw CR/LF),
 * copied into the frame; id_json may be NULL (no "id" member). Names are instrument
 * names already validated as [A-Za-z0-9._-], so they need no escaping. */
struct cg_frame *cg_frame_tick(const void *ckey, const char *instrument, uint64_t seq,
                               const char *data_json, size_t data_len);
struct cg_frame *cg_frame_message(const char *channel, const char *data_json, size_t data_len);
struct cg_frame *cg_frame_error(const char *code, const char *message, const char *id_json);
struct cg_frame *cg_frame_pong(const char *id_json);
/* {"type":"sent","id":..}: a send is on its service's list. */
struct cg_frame *cg_frame_sent(const char *id_json);
/* {"type":"reply","service":..,"id":..,"data":<data_json>}: a service's answer to one socket.
 * service must be a valid service name (no escaping needed); data_json compact JSON text. */
struct cg_frame *cg_frame_reply(const char *service, const char *id_json, const char *data_json,
                                size_t data_len);
/* {"type":<type>,"id":..,"instruments":[names...]} for subscribed/unsubscribed/instruments. */
struct cg_frame *cg_frame_names(const char *type, const char *id_json, const char *const *names,
                                size_t n);
/* The answer to list or search: {"type":"instruments","id":..,"instruments":[..],"more":true},
 * "more" only when more is set (further names follow the last one: PROTOCOL.md §3 list). */
struct cg_frame *cg_frame_instruments(const char *id_json, const char *const *names, size_t n,
                                      int more);

/* {"type":"subscribed","id":..,"instruments":[..],"intervals":[..],"epoch":..,"shared_epoch":..,
 * "recovered":{..}}: shared_epoch is left out when NULL or ""; recovered, when not NULL, holds per
 * name 1/0, or -1 for names without "since". */
struct cg_frame *cg_frame_subscribed(const char *id_json, const char *const *names, size_t n,
                                     const char *const *intervals, size_t ni, const char *epoch,
                                     const char *shared_epoch, const int *recovered);

/* {"type":"bar",...}: ckey is the series (conflation key of forming updates); a
 * final bar is encoded as CONTROL so it is never conflated away. */
struct cg_frame *cg_frame_bar(const void *ckey, const char *instrument, const char *interval,
                              uint64_t seq, const struct cg_bar *bar, int final);

/* One interval's bars for snapshot and history frames: the concatenation of
 * first[0..nfirst) then second[0..nsecond) (older bars from Redis, then memory). */
struct cg_frame_bars {
    const char *interval;
    const struct cg_bar *first;
    size_t nfirst;
    const struct cg_bar *const *second;
    size_t nsecond;
};

/* {"type":"snapshot","instrument":..,"seq":..,"last":<last_json or null>,"bars":{..}}. */
struct cg_frame *cg_frame_snapshot(const char *instrument, uint64_t seq, const char *last_json,
                                   size_t last_len, const struct cg_frame_bars *series, size_t n);
/* The same with "tz", the instrument's trading-calendar zone (PROTOCOL.md §18), and "overlays", a
 * compact JSON array of its current overlays (PROTOCOL.md §17); NULL leaves either out. */
struct cg_frame *cg_frame_snapshot_full(const char *instrument, uint64_t seq, const char *last_json,
                                        size_t last_len, const struct cg_frame_bars *series,
                                        size_t n, const char *tz, const char *overlays_json,
                                        size_t overlays_len);
/* {"type":"overlay","instrument":..,"op":<op_json>}: one applied overlay operation. */
struct cg_frame *cg_frame_overlay(const char *instrument, const char *op_json, size_t op_len);
/* {"type":"overlay","instrument":..,"op":{"op":"sync","v":v,"overlays":<overlays_json>}}:
 * the whole overlay state, replacing what the client holds (after a resume or a gap). */
struct cg_frame *cg_frame_overlay_sync(const char *instrument, uint64_t v,
                                       const char *overlays_json, size_t overlays_len);
/* {"type":"history","id":..,"instrument":..,"interval":..,"bars":[..]}. */
struct cg_frame *cg_frame_history(const char *id_json, const char *instrument,
                                  const struct cg_frame_bars *bars);

/* Writes bar as the compact array [t,o,h,l,c,v] into out (>= 160 bytes); returns
 * its length. Also the member format of recorded bars in Redis. */
size_t cg_frame_bar_array(const struct cg_bar *bar, char *out, size_t outsz);

#endif
