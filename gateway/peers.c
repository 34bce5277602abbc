/* peers.c -- per-address connection counts and handshake token buckets. */
#include "peers.h"

#include <stdlib.h>
#include <string.h>

struct cg_peer {
    struct cg_map_node node;
    uint32_t conns;
    double tokens;
    uint64_t refill_ms;
    char addr[CG_PEERS_ADDR_MAX + 1];
};

void cg_peers_init(struct cg_peers *p, uint32_t max_conns, double rate, double burst,
                   size_t max_entries)
{
    cg_map_init(&p->map);
    p->max_conns = max_conns;
    p->rate = rate;
    p->burst = burst < 1 ? 1 : burst;
    p->max_entries = max_entries;
}

static void drop(struct cg_map_node *n, void *arg)
{
    cg_map_del(arg, n);
    free(CG_CONTAINER_OF(n, struct cg_peer, node));
}

void cg_peers_finish(struct cg_peers *p)
{
    cg_map_each(&p->map, drop, &p->map);
    cg_map_finish(&p->map);
}

static struct cg_peer *find(const struct cg_peers *p, const char *addr)
{
    struct cg_map_node *n = cg_map_get(&p->map, addr, strlen(addr));
    return n ? CG_CONTAINER_OF(n, struct cg_peer, node) : NULL;
}

static void refill(const struct cg_peers *p, struct cg_peer *e, uint64_t now)
{
    if (now > e->refill_ms)
        e->tokens += (double)(now - e->refill_ms) * p->rate / 1000.0;
    if (e->tokens > p->burst)
        e->tokens = p->burst;
    e->refill_ms = now;
}

static struct cg_peer *get(struct cg_peers *p, const char *addr, uint64_t now)
{
    struct cg_peer *e = find(p, addr);
    if (e) {
        refill(p, e, now);
        return e;
    }
    size_t len = strlen(addr);
    if (p->map.count >= p->max_entries || len > CG_PEERS_ADDR_MAX)
        return NULL;
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    memcpy(e->addr, addr, len);
    e->tokens = p->burst;
    e->refill_ms = now;
    if (cg_map_put(&p->map, &e->node, e->addr, len)) {
        free(e);
        return NULL;
    }
    return e;
}

enum cg_peers_result cg_peers_handshake(struct cg_peers *p, const char *addr, uint64_t now_ms)
{
    if (!p->max_conns && !p->rate)
        return CG_PEERS_OK;
    struct cg_peer *e = get(p, addr, now_ms);
    if (!e)
        return CG_PEERS_FULL;
    if (p->max_conns && e->conns >= p->max_conns)
        return CG_PEERS_TOO_MANY;
    if (p->rate) {
        if (e->tokens < 1.0)
            return CG_PEERS_RATE;
        e->tokens -= 1.0;
    }
    return CG_PEERS_OK;
}

void cg_peers_opened(struct cg_peers *p, const char *addr, uint64_t now_ms)
{
    struct cg_peer *e = get(p, addr, now_ms);
    if (e)
        e->conns++;
}

void cg_peers_closed(struct cg_peers *p, const char *addr, uint64_t now_ms)
{
    struct cg_peer *e = find(p, addr);
    if (e && e->conns) {
        e->conns--;
        refill(p, e, now_ms);
    }
}

struct sweep_ctx {
    struct cg_peers *p;
    uint64_t now;
};

static void sweep_one(struct cg_map_node *n, void *arg)
{
    struct sweep_ctx *s = arg;
    struct cg_peer *e = CG_CONTAINER_OF(n, struct cg_peer, node);
    refill(s->p, e, s->now);
    if (!e->conns && (!s->p->rate || e->tokens >= s->p->burst))
        drop(n, &s->p->map);
}

void cg_peers_sweep(struct cg_peers *p, uint64_t now_ms)
{
    struct sweep_ctx s = {p, now_ms};
    cg_map_each(&p->map, sweep_one, &s);
}

uint32_t cg_peers_conns(const struct cg_peers *p, const char *addr)
{
    struct cg_peer *e = find(p, addr);
    return e ? e->conns : 0;
}
