/* handshake.c -- the upgrade's checks, the stash until ESTABLISHED, and a connection's set-up
 * and release. */
#include "handshake.h"

#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "cookie.h"
#include "log.h"
#include "metrics.h"
#include "shared.h"

#define STASH_MAX_AGE_MS 10000

struct stash_entry {
    struct cg_map_node node;
    struct lws *wsi; /* the key: the pointer's bytes */
    struct cg_auth_entry *auth;
    uint64_t at_ms;
    uint8_t held; /* --workers: HELD_* counted in the shared table for this handshake */
    char addr[CG_PEERS_ADDR_MAX + 1];
};

/* With --workers, what a handshake (then its connection) counts in the instance's shared table:
 * taken at CONFIRM_UPGRADE (check and count in one locked step, so concurrent handshakes on
 * other workers cannot both pass a limit), given back when the stash entry goes unused or the
 * connection closes. */
#define HELD_ADDR 1
#define HELD_USER 2

static void release_held(struct cg_ws *w, uint8_t held, const char *addr, const char *user)
{
    struct cg_shared *sh = w->worker.shared;
    if (!sh)
        return;
    if (held & HELD_ADDR)
        cg_shared_addr_release(sh, w->worker.index, addr, cg_shared_now_ms());
    if ((held & HELD_USER) && user)
        cg_shared_user_release(sh, w->worker.index, user);
}

static const char *entry_user(const struct cg_auth_entry *e)
{
    return e && e->session ? e->session->user_id : NULL;
}

static int reject(struct lws *wsi, enum cg_reject_reason why, unsigned int status)
{
    char peer[48];
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    cg_metrics.rejections[why]++;
    cg_log(CG_LOG_INFO, "handshake rejected", "peer=%s reason=%s status=%u", peer,
           cg_reject_names[why], status);
    if (lws_return_http_status(wsi, status, NULL))
        return -1;
    return 1;
}

static int origin_ok(const struct cg_ws *w, struct lws *wsi)
{
    if (!w->cfg->norigins)
        return 1;
    char origin[256];
    if (lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0)
        return 0;
    for (uint32_t i = 0; i < w->cfg->norigins; i++)
        if (!strcmp(origin, w->cfg->origins[i]))
            return 1;
    return 0;
}

static void stash_put(struct cg_ws *w, struct lws *wsi, struct cg_auth_entry *e, const char *addr,
                      uint8_t held)
{
    struct cg_map *stash = &w->hs.stash;
    struct cg_map_node *n = cg_map_get(stash, (const char *)&wsi, sizeof(wsi));
    struct stash_entry *s;
    if (n) { /* a previous connection at this address never got established */
        s = CG_CONTAINER_OF(n, struct stash_entry, node);
        release_held(w, s->held, s->addr, entry_user(s->auth));
        cg_auth_release(w->auth, s->auth);
    } else {
        s = malloc(sizeof(*s));
        if (!s) {
            release_held(w, held, addr, entry_user(e));
            cg_auth_release(w->auth, e);
            return;
        }
        s->wsi = wsi;
        if (cg_map_put(stash, &s->node, (const char *)&s->wsi, sizeof(s->wsi))) {
            free(s);
            release_held(w, held, addr, entry_user(e));
            cg_auth_release(w->auth, e);
            return;
        }
    }
    s->auth = e;
    s->held = held;
    s->at_ms = cg_client_now_ms(w);
    snprintf(s->addr, sizeof(s->addr), "%s", addr);
}

static struct cg_auth_entry *stash_take(struct cg_ws *w, struct lws *wsi, char *addr, size_t addrsz,
                                        uint8_t *held)
{
    struct cg_map_node *n = cg_map_get(&w->hs.stash, (const char *)&wsi, sizeof(wsi));
    if (!n)
        return NULL;
    struct stash_entry *s = CG_CONTAINER_OF(n, struct stash_entry, node);
    struct cg_auth_entry *e = s->auth;
    snprintf(addr, addrsz, "%s", s->addr);
    *held = s->held;
    cg_map_del(&w->hs.stash, n);
    free(s);
    return e;
}

static void stash_drop(struct cg_map_node *n, void *arg)
{
    struct cg_ws *w = arg;
    struct stash_entry *s = CG_CONTAINER_OF(n, struct stash_entry, node);
    cg_map_del(&w->hs.stash, n);
    release_held(w, s->held, s->addr, entry_user(s->auth));
    cg_auth_release(w->auth, s->auth);
    free(s);
}

/* An upgrade that passed auth but failed later (bad key, peer gone) leaves a stash
 * entry nobody takes: it goes after STASH_MAX_AGE_MS. */
static void sweep_one(struct cg_map_node *n, void *arg)
{
    struct cg_ws *w = arg;
    if (cg_client_now_ms(w) - CG_CONTAINER_OF(n, struct stash_entry, node)->at_ms >
        STASH_MAX_AGE_MS)
        stash_drop(n, w);
}

static void sweep_cb(uv_timer_t *t)
{
    struct cg_ws *w = t->data;
    cg_map_each(&w->hs.stash, sweep_one, w);
    cg_peers_sweep(&w->hs.peers, cg_client_now_ms(w));
}

static int trusted(const struct cg_ws *w, const char *peer)
{
    for (uint32_t i = 0; i < w->cfg->ntrusted_proxies; i++)
        if (!strcmp(peer, w->cfg->trusted_proxies[i]))
            return 1;
    return 0;
}

/* The client's address: the TCP peer, or, when the peer is a configured trusted
 * proxy (the local nginx), the address it reports: X-Real-IP, else the last entry
 * of X-Forwarded-For (the one that proxy appended; earlier ones are the client's
 * word). Headers from anyone else are ignored. */
static void client_addr(const struct cg_ws *w, struct lws *wsi, char *out, size_t outsz)
{
    char peer[64], hdr[512];
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    snprintf(out, outsz, "%s", peer);
    if (!trusted(w, peer))
        return;
    const char *a = NULL;
    if (lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_X_REAL_IP) > 0) {
        a = hdr;
    } else if (lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_X_FORWARDED_FOR) > 0) {
        char *comma = strrchr(hdr, ',');
        a = comma ? comma + 1 : hdr;
    }
    while (a && (*a == ' ' || *a == '\t'))
        a++;
    size_t n = a ? strspn(a, "0123456789abcdefABCDEF.:") : 0;
    if (n && n < outsz && n <= CG_PEERS_ADDR_MAX) {
        memcpy(out, a, n);
        out[n] = 0;
    }
}

/* The sessionid cookie's value into sid: its length, -1 when there is no such cookie, -2 when
 * it is not a well-formed session id. */
static int cookie_sid(struct lws *wsi, char sid[CG_SESSION_ID_MAX + 1])
{
    char cookie[8192];
    int clen = lws_hdr_copy(wsi, cookie, sizeof(cookie), WSI_TOKEN_HTTP_COOKIE);
    int sl = clen > 0 ? cg_cookie_get(cookie, (size_t)clen, "sessionid", sid, CG_SESSION_ID_MAX + 1)
                      : -1;
    if (sl == -1)
        return -1;
    if (sl < 0 || !cg_session_id_valid(sid, (size_t)sl))
        return -2;
    return sl;
}

enum cg_auth_result cg_handshake_session(struct cg_ws *w, struct lws *wsi, struct cg_auth_entry **e)
{
    char sid[CG_SESSION_ID_MAX + 1];
    *e = NULL;
    if (cookie_sid(wsi, sid) < 0)
        return CG_AUTH_UNKNOWN;
    return cg_auth_lookup(w->auth, sid, e);
}

int cg_handshake_confirm(struct cg_ws *w, struct lws *wsi)
{
    char uri[64], sid[CG_SESSION_ID_MAX + 1];
    if (w->shutting_down)
        return reject(wsi, CG_REJECT_SHUTDOWN, HTTP_STATUS_SERVICE_UNAVAILABLE);
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, "/ws"))
        return reject(wsi, CG_REJECT_BAD_PATH, HTTP_STATUS_NOT_FOUND);
    if (!origin_ok(w, wsi))
        return reject(wsi, CG_REJECT_ORIGIN, HTTP_STATUS_FORBIDDEN);
    char addr[CG_PEERS_ADDR_MAX + 1];
    client_addr(w, wsi, addr, sizeof(addr));
    struct cg_shared *sh = w->worker.shared;
    enum cg_peers_result pr =
        sh ? cg_shared_addr_acquire(sh, w->worker.index, addr, cg_shared_now_ms())
           : cg_peers_handshake(&w->hs.peers, addr, cg_client_now_ms(w));
    switch (pr) {
    case CG_PEERS_OK:
        break;
    case CG_PEERS_RATE:
        return reject(wsi, CG_REJECT_IP_RATE, 429);
    default:
        return reject(wsi, CG_REJECT_IP_LIMIT, 429);
    }
    uint8_t held = sh ? HELD_ADDR : 0;
    switch (cookie_sid(wsi, sid)) {
    case -1:
        release_held(w, held, addr, NULL);
        return reject(wsi, CG_REJECT_NO_COOKIE, HTTP_STATUS_UNAUTHORIZED);
    case -2:
        release_held(w, held, addr, NULL);
        return reject(wsi, CG_REJECT_UNKNOWN_SESSION, HTTP_STATUS_UNAUTHORIZED);
    default:
        break;
    }
    struct cg_auth_entry *e;
    uint64_t t0 = uv_hrtime();
    enum cg_auth_result r = cg_auth_lookup(w->auth, sid, &e);
    cg_metrics.handshake_us_total += (uv_hrtime() - t0) / 1000;
    if (r != CG_AUTH_OK)
        release_held(w, held, addr, NULL);
    switch (r) {
    case CG_AUTH_OK: {
        int over;
        if (sh) {
            over = cg_shared_user_acquire(sh, w->worker.index, e->session->user_id) != CG_PEERS_OK;
            held |= over ? 0 : HELD_USER;
        } else {
            struct cg_user *u = cg_registry_user(w->reg, e->session->user_id);
            over = w->cfg->max_sockets_per_user && u && u->nmembers >= w->cfg->max_sockets_per_user;
        }
        if (over) {
            release_held(w, held, addr, NULL);
            cg_auth_release(w->auth, e);
            return reject(wsi, CG_REJECT_USER_LIMIT, 429);
        }
        stash_put(w, wsi, e, addr, held);
        return 0;
    }
    case CG_AUTH_UNKNOWN:
        return reject(wsi, CG_REJECT_UNKNOWN_SESSION, HTTP_STATUS_UNAUTHORIZED);
    case CG_AUTH_BAD:
        return reject(wsi, CG_REJECT_BAD_SESSION, HTTP_STATUS_UNAUTHORIZED);
    case CG_AUTH_EXPIRED:
        return reject(wsi, CG_REJECT_EXPIRED, HTTP_STATUS_UNAUTHORIZED);
    case CG_AUTH_DOWN:
        return reject(wsi, CG_REJECT_REDIS_DOWN, HTTP_STATUS_SERVICE_UNAVAILABLE);
    }
    return -1;
}

int cg_handshake_established(struct cg_ws *w, struct cg_client *c, struct lws *wsi)
{
    memset(c, 0, sizeof(*c));
    c->wsi = wsi;
    c->w = w;
    cg_outq_init(&c->q);
    cg_list_init(&c->auth_link);
    cg_list_init(&c->close_link);
    cg_list_init(&c->flush_link);
    lws_get_peer_simple(wsi, c->peer, sizeof(c->peer));
    c->auth = stash_take(w, wsi, c->addr, sizeof(c->addr), &c->shared_held);
    if (!c->auth)
        return -1; /* cannot happen: every upgrade passes cg_handshake_confirm */
    if (!w->worker.shared)
        cg_peers_opened(&w->hs.peers, c->addr, cg_client_now_ms(w));
    cg_auth_attach(c->auth, &c->auth_link);
    if (cg_registry_join(w->reg, &c->member, c, c->auth->session->user_id)) {
        if (!w->worker.shared)
            cg_peers_closed(&w->hs.peers, c->addr, cg_client_now_ms(w));
        release_held(w, c->shared_held, c->addr, c->auth->session->user_id);
        c->shared_held = 0;
        cg_auth_detach(w->auth, c->auth, &c->auth_link);
        c->auth = NULL;
        return -1;
    }
    c->established = 1;
    cg_metrics.handshakes++;
    cg_worker_publish(w);
    cg_log(CG_LOG_DEBUG, "client connected", "peer=%s user=%s session=%s", c->peer,
           c->auth->session->user_id, c->auth->tag);
    return 0;
}

void cg_handshake_closed(struct cg_ws *w, struct cg_client *c)
{
    if (!w->worker.shared)
        cg_peers_closed(&w->hs.peers, c->addr, cg_client_now_ms(w));
    release_held(w, c->shared_held, c->addr, c->auth ? c->auth->session->user_id : NULL);
    c->shared_held = 0;
    cg_worker_publish(w);
    cg_auth_detach(w->auth, c->auth, &c->auth_link);
    c->auth = NULL;
}

int cg_handshake_init(struct cg_ws *w)
{
    const struct cg_config *cfg = w->cfg;
    cg_map_init(&w->hs.stash);
    cg_peers_init(&w->hs.peers, cfg->max_conns_per_ip, cfg->handshake_rate_per_ip,
                  cfg->handshake_burst_per_ip, 1000000);
    if (uv_timer_init(w->loop, &w->hs.sweep))
        return -1;
    w->hs.sweep.data = w;
    uv_timer_start(&w->hs.sweep, sweep_cb, 1000, 1000);
    return 0;
}

void cg_handshake_finish(struct cg_ws *w)
{
    if (!uv_is_closing((uv_handle_t *)&w->hs.sweep)) {
        uv_timer_stop(&w->hs.sweep);
        uv_close((uv_handle_t *)&w->hs.sweep, NULL);
    }
    cg_map_each(&w->hs.stash, stash_drop, w);
    cg_map_finish(&w->hs.stash);
    cg_peers_finish(&w->hs.peers);
}
