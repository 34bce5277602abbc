/* registry.h -- who is subscribed to what: members (sockets), users, instruments.
 *
 * A member is one socket's registry record, embedded in that socket's session
 * state (the registry never allocates or frees it). Each member belongs to a user
 * (one user, many sockets: tabs, screens) and holds up to N subscriptions; each
 * subscription links one member and one instrument, so delivering a tick walks
 * only that instrument's subscribers and a user message only that user's sockets.
 * Hooks fire when an instrument gains its first or loses its last subscriber, and
 * likewise for users: that is where upstream SUBSCRIBE/UNSUBSCRIBE are issued.
 * Instruments seen on the wire or in the catalog are kept (with their seq) after
 * their last subscriber leaves, up to max_instruments, so seq keeps increasing for
 * the life of the process; an instrument only clients ever named is forgotten when
 * its last subscriber leaves, so clients cannot fill the table. Pure. */
#ifndef CG_REGISTRY_H
#define CG_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "chart.h"
#include "config.h"
#include "instrument.h"
#include "list.h"
#include "map.h"
#include "session.h"

/* One subscription as a tick's fan-out sees it. An instrument keeps them in one array that
 * the fan-out streams through: a list of subscriptions cost a cache miss per subscriber, and
 * so did a pointer array (perf at 1000 sockets x 500 instruments: the fan-out stalled on
 * loading each struct cg_sub, 23% of the gateway's CPU). */
struct cg_overlay_inst;
struct cg_pace_sub;

struct cg_fan {
    struct cg_member *member;
    uint64_t slot;      /* the member's pending-tick position, see outq.h */
    struct cg_sub *sub; /* the rest of the subscription */
    uint32_t held;      /* a snapshot is being prepared: no live ticks (cg_registry_hold) */
    uint16_t overlays;  /* overlay frames wanted (cg_registry_want_overlays), in the padding */
    uint16_t paced;     /* the subscription has a max_rate (cg_registry_set_paced): sub->pace */
};

struct cg_instrument {
    struct cg_map_node node;
    struct cg_fan *fan; /* nsubs entries; order not meaningful (removal swaps the last in) */
    uint32_t nsubs;
    uint32_t fan_cap;
    uint8_t known;   /* seen on the wire or listed in Redis: shown by list/search */
    uint8_t shared;  /* ticks come numbered by chartgate_publish (PROTOCOL.md §19) */
    uint8_t warming; /* stream.c is replaying the stream into a new chart: no recording */
    uint8_t owed;    /* stream.c gave a gap read up (no command link): read it when one is up */
    uint64_t seq;    /* last seq assigned to (or carried by) a tick of this instrument */
    void *catchup;   /* stream.c's while the instrument is caught up from its stream: ticks wait */
    struct cg_chart *chart;           /* the chart agent's state, owned by the agent; NULL = none */
    struct cg_overlay_inst *overlays; /* overlay viewers' state (overlay.h), owned by the
                                       * agent; NULL while no subscription has overlays on */
    char name[CG_INSTRUMENT_MAX + 1];
};

struct cg_user {
    struct cg_map_node node;
    struct cg_list members; /* struct cg_member.user_link */
    uint32_t nmembers;
    char id[CG_SESSION_USER_MAX + 1];
};

struct cg_member {
    struct cg_user *user; /* NULL until joined */
    struct cg_list user_link;
    struct cg_list all_link;
    struct cg_list subs; /* struct cg_sub.member_link */
    uint32_t nsubs;
    void *owner;   /* the socket state that embeds this member, borrowed */
    uint64_t conn; /* this process's number for the socket, from 1 (cg_registry_member) */
    struct cg_map_node conn_node;
};

struct cg_sub {
    struct cg_member *member;
    struct cg_list member_link;
    struct cg_instrument *inst;
    uint32_t index;            /* position in inst->fan */
    struct cg_chart_view view; /* the chart agent's, zeroed at subscribe; never read here */
    struct cg_pace_sub *pace;  /* client.c's max_rate pacing (pace.h), owned there; NULL = none */
};

struct cg_registry_hooks {
    /* active = 1 on first subscriber/socket, 0 when the last one leaves. */
    void (*instrument_active)(void *data, struct cg_instrument *inst, int active);
    void (*user_active)(void *data, struct cg_user *user, int active);
    /* A subscription is about to be freed (unsubscribe or leave). May be NULL. */
    void (*sub_dropped)(void *data, struct cg_sub *sub);
    void *data;
};

struct cg_registry {
    struct cg_map instruments; /* name -> struct cg_instrument */
    struct cg_map users;       /* id -> struct cg_user */
    struct cg_list members;    /* every joined member: broadcast targets */
    struct cg_map conns;       /* conn -> struct cg_member: replies to one socket */
    uint64_t last_conn;
    size_t nmembers;
    size_t nsubs;
    size_t nactive; /* instruments with at least one subscriber */
    size_t max_instruments;
    struct cg_registry_hooks hooks;
};

enum cg_registry_result {
    CG_REG_OK = 0,
    CG_REG_TOO_MANY = -1, /* the member would exceed its subscription limit */
    CG_REG_FULL = -2,     /* the instrument table is at max_instruments */
    CG_REG_NOMEM = -3,
};

void cg_registry_init(struct cg_registry *r, const struct cg_registry_hooks *hooks,
                      size_t max_instruments);
/* Frees instruments and users. Members must have left already. */
void cg_registry_finish(struct cg_registry *r);

/* Returns the instrument called name, creating it when create is set. NULL when
 * absent (and not created), when the table is full, or on allocation failure.
 * name must be valid (cg_instrument_valid). */
struct cg_instrument *cg_registry_instrument(struct cg_registry *r, const char *name, size_t len,
                                             int create);
struct cg_user *cg_registry_user(struct cg_registry *r, const char *id);
/* The joined member numbered conn, or NULL. */
struct cg_member *cg_registry_member(const struct cg_registry *r, uint64_t conn);

/* Joins member (owned by the caller, must stay put until cg_registry_leave) as a
 * socket of user_id, numbering it (m->conn, never reused by this registry). Returns CG_REG_OK
 * or CG_REG_NOMEM. */
int cg_registry_join(struct cg_registry *r, struct cg_member *m, void *owner, const char *user_id);
/* Drops every subscription of m and detaches it from its user. Safe on a member
 * that never joined (zeroed, or after a failed join). */
void cg_registry_leave(struct cg_registry *r, struct cg_member *m);

/* Subscribes m to every name (all valid), atomically: on any failure nothing
 * changes. Names already subscribed are no-ops. Instrument records are created
 * here for names not seen before; see above for when they go. */
int cg_registry_subscribe(struct cg_registry *r, struct cg_member *m, const char *const *names,
                          size_t n, uint32_t max_subs);
/* Unsubscribes m from each name it is subscribed to; others are ignored. */
void cg_registry_unsubscribe(struct cg_registry *r, struct cg_member *m, const char *const *names,
                             size_t n);
/* Forgets in if nothing refers to it any more (no subscriber, never published, not
 * in the catalog, no chart state); see above. */
void cg_registry_reap(struct cg_registry *r, struct cg_instrument *in);
/* The subscription of m to inst, or NULL. O(subscriptions of m). */
struct cg_sub *cg_registry_find_sub(const struct cg_member *m, const struct cg_instrument *inst);

/* Holds live ticks back from s (held = 1: its snapshot is being prepared and will include
 * them) or lets them through again (0). */
void cg_registry_hold(struct cg_sub *s, int held);
/* Marks s as wanting overlay frames (1) or not (0), where the overlay fan-out reads it. */
void cg_registry_want_overlays(struct cg_sub *s, int on);
/* Marks s as paced (1: its ticks go through the relay's paced hook) or not (0). */
void cg_registry_set_paced(struct cg_sub *s, int on);

/* The i-th subscription of in (i < in->nsubs), for code that reaches every viewer of an
 * instrument (the chart agent's bar fan-out). The order is not meaningful. */
static inline struct cg_sub *cg_registry_sub_at(const struct cg_instrument *in, uint32_t i)
{
    return in->fan[i].sub;
}

#endif
