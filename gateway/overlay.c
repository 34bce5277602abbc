/* overlay.c -- the overlay function library's text, applied-operation checks, recent ops. */
#include "overlay.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* overlay.lua, embedded at build time (gateway/meson.build). */
#include "overlay_lua.h"

char *cg_overlay_library(const struct cg_config *cfg)
{
    /* The prefix goes in as decimal escapes: any byte is safe inside a Lua string that way. */
    size_t cap =
        512 + strlen(cfg->chart_prefix) * 4 + cfg->nintervals * 24 + sizeof(cg_overlay_lua_source);
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t n =
        (size_t)snprintf(out, cap,
                         "#!lua name=chartgate_overlays\n"
                         "local MAX_OVERLAYS = %u\n"
                         "local MAX_POINTS = %u\n"
                         "local CLUSTER = %s\n"
                         "local PREFIX = \"",
                         cfg->overlay_max, cfg->overlay_points, cfg->ncluster ? "true" : "false");
    for (const unsigned char *p = (const unsigned char *)cfg->chart_prefix; *p; p++)
        n += (size_t)snprintf(out + n, cap - n, "\\%03u", *p);
    n += (size_t)snprintf(out + n, cap - n, "\"\nlocal INTERVALS = {");
    for (uint32_t i = 0; i < cfg->nintervals; i++)
        n += (size_t)snprintf(out + n, cap - n, "['%s'] = true, ", cfg->interval_names[i]);
    n += (size_t)snprintf(out + n, cap - n, "}\n");
    memcpy(out + n, cg_overlay_lua_source, sizeof(cg_overlay_lua_source));
    return out;
}

size_t cg_overlay_key(const char *instrument, char out[CG_OVERLAY_KEY_MAX])
{
    return (size_t)snprintf(out, CG_OVERLAY_KEY_MAX, "overlays:{%s}", instrument);
}

int cg_overlay_check(json_t *obj, struct cg_overlay_op *op, const char **why)
{
    memset(op, 0, sizeof(*op));
    if (!json_is_object(obj)) {
        *why = "not an object";
        return -1;
    }
    const char *kind = json_string_value(json_object_get(obj, "op"));
    if (!kind || (strcmp(kind, "set") && strcmp(kind, "append") && strcmp(kind, "remove"))) {
        *why = "\"op\" is not set, append or remove";
        return -1;
    }
    if (!json_is_string(json_object_get(obj, "overlay"))) {
        *why = "no \"overlay\" name";
        return -1;
    }
    json_t *v = json_object_get(obj, "v");
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        *why = "no version \"v\": not applied through " CG_OVERLAY_FUNCTION;
        return -1;
    }
    json_t *u = json_object_get(obj, "user");
    if (u) {
        size_t ul = json_string_length(u);
        if (!json_is_string(u) || !ul || ul > CG_SESSION_USER_MAX ||
            strlen(json_string_value(u)) != ul) {
            *why = "\"user\" is not a user id";
            return -1;
        }
        op->user = json_string_value(u);
    }
    op->v = (uint64_t)json_integer_value(v);
    return 0;
}

struct cg_overlay_inst *cg_overlay_inst_create(void)
{
    return calloc(1, sizeof(struct cg_overlay_inst));
}

void cg_overlay_inst_destroy(struct cg_overlay_inst *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->count; i++)
        cg_frame_unref(s->ring[(s->head + i) % CG_OVERLAY_RING].f);
    free(s);
}

void cg_overlay_remember(struct cg_overlay_inst *s, uint64_t v, struct cg_frame *f,
                         const char *user)
{
    struct cg_overlay_recent *r;
    if (s->count == CG_OVERLAY_RING) {
        r = &s->ring[s->head];
        cg_frame_unref(r->f);
        s->head = (s->head + 1) % CG_OVERLAY_RING;
    } else {
        r = &s->ring[(s->head + s->count) % CG_OVERLAY_RING];
        s->count++;
    }
    r->v = v;
    r->f = cg_frame_ref(f);
    snprintf(r->user, sizeof(r->user), "%s", user ? user : "");
}

int cg_overlay_covers(const struct cg_overlay_inst *s, uint64_t v)
{
    if (v >= s->last_v)
        return 1; /* nothing newer has been seen */
    if (!s->count)
        return 0;
    /* Versions in the ring are consecutive (a gap resets it), so the oldest says it all. */
    return s->ring[s->head].v <= v + 1;
}

void cg_overlay_each_after(const struct cg_overlay_inst *s, uint64_t v, const char *user,
                           void (*fn)(void *arg, struct cg_frame *f), void *arg)
{
    for (uint32_t i = 0; i < s->count; i++) {
        const struct cg_overlay_recent *r = &s->ring[(s->head + i) % CG_OVERLAY_RING];
        if (r->v > v && cg_overlay_visible(r->user[0] ? r->user : NULL, user))
            fn(arg, r->f);
    }
}

int cg_overlay_visible(const char *op_user, const char *user)
{
    return !op_user || (user && !strcmp(op_user, user));
}
