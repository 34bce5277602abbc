/* relay.h -- routing of published payloads to subscribers, parsed and encoded once.
 *
 * The Redis bridge hands over raw bytes it received (a pub/sub message already
 * classified by channel, or an inbox envelope); the relay validates them once,
 * assigns the per-instrument seq, encodes one shared frame and offers it to each
 * target member through the deliver hook: an instrument's subscribers, a user's
 * sockets, or everyone. Per-recipient cost is the hook call. Dropped input is
 * counted in cg_metrics and logged (rate-limited). Pure: no lws, no hiredis. */
#ifndef CG_RELAY_H
#define CG_RELAY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"

struct cg_relay_hooks {
    /* Offers frame f (borrowed: take a reference to keep it) to member m. slot is
     * the subscription's conflation slot for ticks, NULL otherwise. */
    void (*deliver)(void *data, struct cg_member *m, struct cg_frame *f, uint64_t *slot);
    void *data;
    /* After a tick was fanned out: the chart agent's turn (may be NULL). obj is the
     * tick object, text its compact JSON, f its frame (all borrowed); at_ms is when Redis took
     * the tick (a tick caught up from its stream), 0 for "now". */
    void (*tick)(void *data, struct cg_instrument *in, json_t *obj, const char *text, size_t len,
                 struct cg_frame *f, int64_t at_ms);
    void *tick_data;
    int tick_all; /* the tick hook wants ticks of instruments nobody here watches (recording) */
    /* Shared ticks (PROTOCOL.md §19): stream.c's hooks, may be NULL. */
    /* in is being caught up (in->catchup): keep tick seq for later (payload, plen bytes of JSON,
     * borrowed: copy it). */
    void (*hold)(void *data, struct cg_instrument *in, uint64_t seq, const char *payload,
                 size_t plen);
    /* Ticks in->seq + 1 .. seq - 1 never arrived: return 0 when they are being fetched (in->catchup
     * is then set and this tick goes to hold), -1 to go on with the gap. */
    int (*gap)(void *data, struct cg_instrument *in, uint64_t seq);
    void *stream_data;
    /* An overlay operation came after a missing version (tick_data; may be NULL): the
     * instrument's overlay viewers must read the state again. */
    void (*overlay_gap)(void *data, struct cg_instrument *in);
    /* Offers frame f (borrowed) to subscription s, which has a max_rate (s->pace): kind 0 for
     * its ticks, 1 + i for its forming bars of interval i (data: as for deliver); a NULL f
     * drops what is held back for that kind (a final bar made it old news). */
    void (*paced)(void *data, struct cg_sub *s, uint32_t kind, struct cg_frame *f);
};

struct cg_relay {
    struct cg_registry *reg; /* borrowed */
    struct cg_relay_hooks hooks;
    size_t max_payload;
    struct cg_log_limit drop_log;
};

void cg_relay_init(struct cg_relay *r, struct cg_registry *reg, const struct cg_relay_hooks *hooks,
                   size_t max_payload);

/* Each returns 0 when delivered (to zero or more members) or -1 when dropped. A tick payload
 * "#<seq> <JSON>" was numbered by chartgate_publish (PROTOCOL.md §19): it keeps that seq, an older
 * or repeated seq is skipped (counted), and a jump asks the gap hook to fetch what is missing. */
int cg_relay_tick(struct cg_relay *r, const char *name, size_t nlen, const char *payload,
                  size_t plen, enum cg_source src);
/* A shared tick of in, numbered seq, taken from its stream or from hold (stream.c): applied
 * like a live one when seq > in->seq, skipped otherwise (never held, never a gap fetch). at_ms:
 * the stream entry's time. Returns 0, or -1 when dropped. */
int cg_relay_apply(struct cg_relay *r, struct cg_instrument *in, uint64_t seq, const char *payload,
                   size_t plen, int64_t at_ms);
/* The tick frame of a shared tick of in read from its stream (a socket's resume): the same bytes
 * a live delivery would have had. Returns a new frame, or NULL when payload is not a JSON object
 * (or out of memory). */
struct cg_frame *cg_relay_tick_frame(struct cg_instrument *in, uint64_t seq, const char *payload,
                                     size_t plen);
int cg_relay_user(struct cg_relay *r, const char *user_id, size_t ulen, const char *payload,
                  size_t plen, enum cg_source src);
int cg_relay_broadcast(struct cg_relay *r, const char *payload, size_t plen, enum cg_source src);
/* An applied overlay operation published on <chart-prefix><name> (PROTOCOL.md §17): checked,
 * encoded once, remembered for snapshot seams and offered to each viewer of the instrument
 * with overlays on that may see it. Returns 0 when delivered or skipped (nobody here views
 * it, or this version was seen), -1 when dropped (counted as bad_overlay). */
int cg_relay_overlay(struct cg_relay *r, const char *name, size_t nlen, const char *payload,
                     size_t plen);
/* An inbox envelope, parsed and validated once:
 *   {"instrument":..,"data":{..}} | {"user":..,"data":..} | {"broadcast":true,"data":..}
 *   | {"chart":..,"data":{overlay operation}} (applied through chartgate_overlay, §17)
 * It is not delivered here: the bridge republishes data on the target's pub/sub
 * channel, so that every gateway process sharing the Redis delivers it to its own
 * sockets (an inbox item is popped by one process only). */
enum cg_envelope_kind { CG_ENV_INSTRUMENT, CG_ENV_USER, CG_ENV_BROADCAST, CG_ENV_CHART };

struct cg_envelope {
    enum cg_envelope_kind kind;
    char target[CG_SESSION_USER_MAX + 1]; /* instrument name or user id */
    char *data;                           /* compact JSON text, owned (free()) */
    size_t len;
};

/* Returns 0 with *env filled (free env->data), or -1 when dropped (counted, logged). */
int cg_relay_envelope(struct cg_relay *r, const char *payload, size_t plen,
                      struct cg_envelope *env);

/* A service's reply, published on this process's reply channel (PROTOCOL.md §16.2):
 *   {"service":"alerts","conn":"<epoch>.<n>","id":7,"data":..}
 * goes, as a reply frame, to the one member numbered n, when epoch is this process's (16 hex
 * digits). Returns 0 when delivered, -1 when dropped (counted in cg_metrics.replies). */
int cg_relay_reply(struct cg_relay *r, const char *epoch, const char *payload, size_t plen);

#endif
