/* registry.c -- members, users, instruments and the subscriptions that link them. */
#include "registry.h"

#include <stdlib.h>
#include <string.h>

void cg_registry_init(struct cg_registry *r, const struct cg_registry_hooks *hooks,
                      size_t max_instruments)
{
    memset(r, 0, sizeof(*r));
    cg_map_init(&r->instruments);
    cg_map_init(&r->users);
    cg_map_init(&r->conns);
    cg_list_init(&r->members);
    if (hooks)
        r->hooks = *hooks;
    r->max_instruments = max_instruments;
}

static void free_node(struct cg_map_node *n, void *map)
{
    cg_map_del(map, n);
    free(n); /* node is the first member of both instrument and user */
}

static void free_instrument(struct cg_map_node *n, void *map)
{
    free(CG_CONTAINER_OF(n, struct cg_instrument, node)->fan);
    free_node(n, map);
}

/* Makes room in in->fan for one more subscription. Returns 0 or -1 (out of memory). */
static int reserve_sub(struct cg_instrument *in)
{
    if (in->nsubs < in->fan_cap)
        return 0;
    uint32_t cap = in->fan_cap ? in->fan_cap * 2 : 4;
    struct cg_fan *a = realloc(in->fan, cap * sizeof(*a));
    if (!a)
        return -1;
    in->fan = a;
    in->fan_cap = cap;
    return 0;
}

void cg_registry_want_overlays(struct cg_sub *s, int on)
{
    s->inst->fan[s->index].overlays = on != 0;
}

void cg_registry_set_paced(struct cg_sub *s, int on)
{
    s->inst->fan[s->index].paced = on != 0;
}

void cg_registry_hold(struct cg_sub *s, int held)
{
    s->inst->fan[s->index].held = held != 0;
}

void cg_registry_finish(struct cg_registry *r)
{
    cg_map_each(&r->instruments, free_instrument, &r->instruments);
    cg_map_each(&r->users, free_node, &r->users);
    cg_map_finish(&r->instruments);
    cg_map_finish(&r->users);
    cg_map_finish(&r->conns);
}

struct cg_instrument *cg_registry_instrument(struct cg_registry *r, const char *name, size_t len,
                                             int create)
{
    struct cg_map_node *n = cg_map_get(&r->instruments, name, len);
    if (n)
        return CG_CONTAINER_OF(n, struct cg_instrument, node);
    if (!create || r->instruments.count >= r->max_instruments || len > CG_INSTRUMENT_MAX)
        return NULL;
    struct cg_instrument *in = calloc(1, sizeof(*in));
    if (!in)
        return NULL;
    memcpy(in->name, name, len);
    if (cg_map_put(&r->instruments, &in->node, in->name, len)) {
        free(in);
        return NULL;
    }
    return in;
}

struct cg_user *cg_registry_user(struct cg_registry *r, const char *id)
{
    struct cg_map_node *n = cg_map_get(&r->users, id, strlen(id));
    return n ? CG_CONTAINER_OF(n, struct cg_user, node) : NULL;
}

int cg_registry_join(struct cg_registry *r, struct cg_member *m, void *owner, const char *user_id)
{
    memset(m, 0, sizeof(*m));
    cg_list_init(&m->user_link);
    cg_list_init(&m->all_link);
    cg_list_init(&m->subs);
    m->owner = owner;
    size_t len = strlen(user_id);
    if (len > CG_SESSION_USER_MAX)
        return CG_REG_NOMEM;
    m->conn = r->last_conn + 1;
    if (cg_map_put(&r->conns, &m->conn_node, (const char *)&m->conn, sizeof(m->conn)))
        return CG_REG_NOMEM;
    struct cg_user *u = cg_registry_user(r, user_id);
    if (!u) {
        u = calloc(1, sizeof(*u));
        if (u)
            memcpy(u->id, user_id, len);
        if (!u || cg_map_put(&r->users, &u->node, u->id, len)) {
            free(u);
            cg_map_del(&r->conns, &m->conn_node);
            return CG_REG_NOMEM;
        }
        cg_list_init(&u->members);
    }
    r->last_conn = m->conn;
    m->user = u;
    cg_list_append(&u->members, &m->user_link);
    cg_list_append(&r->members, &m->all_link);
    r->nmembers++;
    if (u->nmembers++ == 0 && r->hooks.user_active)
        r->hooks.user_active(r->hooks.data, u, 1);
    return CG_REG_OK;
}

/* Forgets an instrument that only clients ever named (never published, not in the
 * catalog) once nobody subscribes to it: clients cannot fill the table. */
void cg_registry_reap(struct cg_registry *r, struct cg_instrument *in)
{
    if (!in->nsubs && !in->known && !in->seq && !in->chart && !in->catchup) {
        cg_map_del(&r->instruments, &in->node);
        free(in->fan);
        free(in);
    }
}

static void drop_sub(struct cg_registry *r, struct cg_sub *s)
{
    struct cg_instrument *in = s->inst;
    if (r->hooks.sub_dropped)
        r->hooks.sub_dropped(r->hooks.data, s);
    in->fan[s->index] = in->fan[in->nsubs - 1];
    in->fan[s->index].sub->index = s->index;
    cg_list_remove(&s->member_link);
    s->member->nsubs--;
    r->nsubs--;
    free(s);
    if (--in->nsubs == 0) {
        r->nactive--;
        if (r->hooks.instrument_active)
            r->hooks.instrument_active(r->hooks.data, in, 0);
        cg_registry_reap(r, in);
    }
}

void cg_registry_leave(struct cg_registry *r, struct cg_member *m)
{
    struct cg_user *u = m->user;
    if (!u)
        return;
    struct cg_list *it, *tmp;
    CG_LIST_FOREACH_SAFE(it, tmp, &m->subs)
    drop_sub(r, CG_CONTAINER_OF(it, struct cg_sub, member_link));
    cg_list_remove(&m->user_link);
    cg_list_remove(&m->all_link);
    cg_map_del(&r->conns, &m->conn_node);
    r->nmembers--;
    m->user = NULL;
    if (--u->nmembers == 0) {
        if (r->hooks.user_active)
            r->hooks.user_active(r->hooks.data, u, 0);
        cg_map_del(&r->users, &u->node);
        free(u);
    }
}

struct cg_member *cg_registry_member(const struct cg_registry *r, uint64_t conn)
{
    struct cg_map_node *n = cg_map_get(&r->conns, (const char *)&conn, sizeof(conn));
    return n ? CG_CONTAINER_OF(n, struct cg_member, conn_node) : NULL;
}

struct cg_sub *cg_registry_find_sub(const struct cg_member *m, const struct cg_instrument *inst)
{
    for (const struct cg_list *it = m->subs.next; it != &m->subs; it = it->next) {
        struct cg_sub *s = CG_CONTAINER_OF(it, struct cg_sub, member_link);
        if (s->inst == inst)
            return s;
    }
    return NULL;
}

int cg_registry_subscribe(struct cg_registry *r, struct cg_member *m, const char *const *names,
                          size_t n, uint32_t max_subs)
{
    /* First pass: count what is new (duplicates within names count once), so the
     * limit is checked before anything changes. */
    size_t fresh = 0;
    for (size_t i = 0; i < n; i++) {
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = !strcmp(names[i], names[j]);
        if (dup)
            continue;
        struct cg_instrument *in = cg_registry_instrument(r, names[i], strlen(names[i]), 0);
        if (!in || !cg_registry_find_sub(m, in))
            fresh++;
    }
    if (m->nsubs + fresh > max_subs)
        return CG_REG_TOO_MANY;

    /* Second pass: allocate every new subscription before linking any, so a failure
     * unwinds without having fired hooks (instruments it created are reaped). */
    struct cg_sub **subs = fresh ? calloc(fresh, sizeof(*subs)) : NULL;
    if (fresh && !subs)
        return CG_REG_NOMEM;
    size_t k = 0;
    int rc = CG_REG_OK;
    for (size_t i = 0; i < n && rc == CG_REG_OK; i++) {
        struct cg_instrument *in = cg_registry_instrument(r, names[i], strlen(names[i]), 1);
        if (!in) {
            rc = r->instruments.count >= r->max_instruments ? CG_REG_FULL : CG_REG_NOMEM;
            break;
        }
        if (cg_registry_find_sub(m, in))
            continue;
        int dup = 0;
        for (size_t j = 0; j < k && !dup; j++)
            dup = subs[j]->inst == in;
        if (dup)
            continue;
        subs[k] = reserve_sub(in) ? NULL : calloc(1, sizeof(**subs));
        if (!subs[k]) {
            rc = CG_REG_NOMEM;
            break;
        }
        subs[k]->inst = in;
        subs[k]->member = m;
        k++;
    }
    if (rc != CG_REG_OK) {
        for (size_t j = 0; j < k; j++)
            free(subs[j]);
        free(subs);
        for (size_t i = 0; i < n; i++) {
            struct cg_instrument *in = cg_registry_instrument(r, names[i], strlen(names[i]), 0);
            if (in)
                cg_registry_reap(r, in);
        }
        return rc;
    }
    for (size_t j = 0; j < k; j++) {
        struct cg_sub *s = subs[j];
        s->index = s->inst->nsubs;
        s->inst->fan[s->index] =
            (struct cg_fan){s->member, 0, s, 0, 0, 0}; /* room reserved above */
        cg_list_append(&m->subs, &s->member_link);
        m->nsubs++;
        r->nsubs++;
        if (s->inst->nsubs++ == 0) {
            r->nactive++;
            if (r->hooks.instrument_active)
                r->hooks.instrument_active(r->hooks.data, s->inst, 1);
        }
    }
    free(subs);
    return CG_REG_OK;
}

void cg_registry_unsubscribe(struct cg_registry *r, struct cg_member *m, const char *const *names,
                             size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct cg_instrument *in = cg_registry_instrument(r, names[i], strlen(names[i]), 0);
        struct cg_sub *s = in ? cg_registry_find_sub(m, in) : NULL;
        if (s)
            drop_sub(r, s);
    }
}
