/* shardsub.h -- one Redis 7 sharded pub/sub connection (SSUBSCRIBE/SUNSUBSCRIBE) on libuv.
 *
 * Written here because hiredis 0.14's async API does not know "ssubscribe"/"smessage": a
 * spontaneous smessage on a context that is not in subscribed mode hits an assert, and on a
 * subscribed one the callbacks are looked up in the classic channel dict (and leak). This
 * module drives its own uv_tcp_t and uses only hiredis' reply reader and command formatter.
 *
 * RESP2 replies to commands come in order, interleaved with messages: a FIFO of outstanding
 * commands (AUTH, PING, SSUBSCRIBE ch, SUNSUBSCRIBE ch) says which command an error, a
 * confirmation or a pong answers. An ["sunsubscribe", ch, n] that does not answer our own
 * SUNSUBSCRIBE of ch at the head of the FIFO is one Redis sent on its own (the channel's slot
 * left this node: resharding, failover, CLUSTER DELSLOTS): the `lost` hook.
 *
 * Lifecycle: init -> connect -> (hooks: up ... down) -> connect again, or close. The hooks are
 * only ever called from the loop, never from inside a cg_shardsub_* call, and never after
 * cg_shardsub_close. A hook may call any cg_shardsub_* function on its struct, including
 * cg_shardsub_close and (from `down`) cg_shardsub_connect.
 *
 * Memory: every per-connection resource (uv handles, reader, FIFO, output) lives in a heap
 * object the struct points to; cg_shardsub_close detaches it and it frees itself once libuv has
 * closed its handles. So the struct may be freed (or re-initialised) as soon as
 * cg_shardsub_close returns, even from inside a hook; the loop must run once more (uv_run)
 * before uv_loop_close so that those handles finish closing. */
#ifndef CG_SHARDSUB_H
#define CG_SHARDSUB_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* From connect to up (name resolution, TCP connect, AUTH and the first PING answered). */
#define CG_SHARDSUB_CONNECT_TIMEOUT_MS 3000
/* While up: a PING this long after the previous one was answered ... */
#define CG_SHARDSUB_PING_INTERVAL_MS 2000
/* ... and down("ping unanswered") when it is not answered within this. */
#define CG_SHARDSUB_PING_TIMEOUT_MS 5000
/* Bounds while Redis does not read or answer: bytes written but not yet taken by the kernel
 * (with each write request's own ~200 bytes), and commands sent but not yet answered. A command
 * that would pass either makes the call fail and takes the link down (down hook from the loop, with
 * a reason naming the bound). */
#define CG_SHARDSUB_MAX_PENDING_OUT (64u * 1024 * 1024)
#define CG_SHARDSUB_MAX_UNANSWERED (1u << 20)

struct cg_shardsub_hooks {
    /* Connected, AUTH accepted and a PING answered: (re)send the subscriptions now. */
    void (*up)(void *data);
    /* Lost or failed: connect error, name resolution, connect timeout, AUTH refused, ping
     * unanswered, protocol error, Redis closed the link, a bound passed. why is borrowed for
     * the call. The struct is idle when this is called: cg_shardsub_connect may be called. */
    void (*down)(void *data, const char *why);
    /* An "smessage" (or a classic "message"). ch and msg are borrowed for the call; binary-safe. */
    void (*message)(void *data, const char *ch, size_t chlen, const char *msg, size_t msglen);
    /* Redis confirmed our SSUBSCRIBE of ch. */
    void (*subscribed)(void *data, const char *ch, size_t chlen);
    /* Redis answered our SSUBSCRIBE of ch with an error: err is its text, e.g.
     * "MOVED 1234 127.0.0.1:7001", "CROSSSLOT ...", "CLUSTERDOWN ...", "NOPERM ...". */
    void (*refused)(void *data, const char *ch, size_t chlen, const char *err);
    /* An sunsubscribe of ch we did not ask for: the slot of ch moved to another node. Also
     * possible for a channel being unsubscribed at that moment (Redis' own sunsubscribe and
     * the answer to ours then both arrive, and the second one is the unsolicited-looking one):
     * the caller ignores it for channels it no longer wants. */
    void (*lost)(void *data, const char *ch, size_t chlen);
    void *data;
};

struct cg_shardsub_link; /* shardsub.c: the per-connection state */

/* Embed it; touch the fields only through the functions. */
struct cg_shardsub {
    uv_loop_t *loop;
    struct cg_shardsub_hooks h;
    struct cg_shardsub_link *link; /* NULL: idle */
};

/* Prepares s (idle). hooks is copied; every hook must be set (NULL is not checked on use). */
void cg_shardsub_init(struct cg_shardsub *s, uv_loop_t *loop, const struct cg_shardsub_hooks *h);

/* Starts connecting to host:port: a numeric IPv4/IPv6 address is used as is, anything else is
 * resolved asynchronously (its addresses are tried in order, all within the connect timeout).
 * auth_argc 0: no AUTH; else the AUTH arguments after the command name ({password} or {user,
 * password}, binary-safe with auth_lens; copied). Returns 0, then exactly one of up or down
 * follows; or -1 (nothing started, no hook follows) when s is not idle, host is empty or longer
 * than 255 bytes, port is 0 or over 65535, auth_argc is not 0..2, or on allocation or libuv
 * failure. */
int cg_shardsub_connect(struct cg_shardsub *s, const char *host, uint32_t port, int auth_argc,
                        const char **auth_argv, const size_t *auth_lens);

/* SSUBSCRIBE ch (one channel per command: channels in one command must share a slot); the
 * answer comes as the subscribed or refused hook. Returns 0; -1 when not up, or when a bound
 * was passed (the link then goes down: the down hook follows from the loop). ch is copied. */
int cg_shardsub_subscribe(struct cg_shardsub *s, const char *ch, size_t len);

/* SUNSUBSCRIBE ch; no hook answers it (messages already on the way may still arrive). Returns
 * as cg_shardsub_subscribe. */
int cg_shardsub_unsubscribe(struct cg_shardsub *s, const char *ch, size_t len);

/* 1 from the up hook until the link fails (a down hook is then pending or being called), else 0. */
int cg_shardsub_up(const struct cg_shardsub *s);

/* 1 when idle (never connected, or down was called, or closed), 0 while connecting or up. */
int cg_shardsub_idle(const struct cg_shardsub *s);

/* Drops the connection now, whatever its state: no hook is called any more (also not a down
 * that was pending). s is idle after it and may be freed or connected again. Accepts an idle s. */
void cg_shardsub_close(struct cg_shardsub *s);

#endif
