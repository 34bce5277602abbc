/* frame.c -- encoding of gateway->client frames into shared refcounted buffers. */
#include "frame.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cg_frame *cg_frame_alloc(size_t len)
{
    struct cg_frame *f = malloc(sizeof(*f) + CG_FRAME_PRE + len);
    if (!f)
        return NULL;
    f->refs = 1;
    f->kind = CG_FRAME_CONTROL;
    f->ckey = NULL;
    f->len = len;
    return f;
}

struct cg_frame *cg_frame_ref(struct cg_frame *f)
{
    f->refs++;
    return f;
}

void cg_frame_unref(struct cg_frame *f)
{
    if (f && --f->refs == 0)
        free(f);
}

/* A cursor over a frame whose exact size was computed beforehand. */
struct cur {
    unsigned char *p;
};

static void put(struct cur *c, const char *s, size_t n)
{
    memcpy(c->p, s, n);
    c->p += n;
}

#define PUTLIT(c, lit) put((c), (lit), sizeof(lit) - 1)

static void put_str(struct cur *c, const char *s)
{
    put(c, s, strlen(s));
}

struct cg_frame *cg_frame_tick(const void *ckey, const char *instrument, uint64_t seq,
                               const char *data_json, size_t data_len)
{
    static const char p1[] = "{\"type\":\"tick\",\"instrument\":\"";
    static const char p2[] = "\",\"seq\":";
    static const char p3[] = ",\"data\":";
    char num[24];
    int nl = snprintf(num, sizeof(num), "%" PRIu64, seq);
    size_t il = strlen(instrument);
    size_t len = sizeof(p1) - 1 + il + sizeof(p2) - 1 + (size_t)nl + sizeof(p3) - 1 + data_len + 1;
    struct cg_frame *f = cg_frame_alloc(len);
    if (!f)
        return NULL;
    struct cur c = {cg_frame_data(f)};
    PUTLIT(&c, p1);
    put(&c, instrument, il);
    PUTLIT(&c, p2);
    put(&c, num, (size_t)nl);
    PUTLIT(&c, p3);
    put(&c, data_json, data_len);
    PUTLIT(&c, "}");
    f->kind = CG_FRAME_TICK;
    f->ckey = ckey;
    return f;
}

struct cg_frame *cg_frame_message(const char *channel, const char *data_json, size_t data_len)
{
    static const char p1[] = "{\"type\":\"message\",\"channel\":\"";
    static const char p2[] = "\",\"data\":";
    size_t cl = strlen(channel);
    struct cg_frame *f = cg_frame_alloc(sizeof(p1) - 1 + cl + sizeof(p2) - 1 + data_len + 1);
    if (!f)
        return NULL;
    struct cur c = {cg_frame_data(f)};
    PUTLIT(&c, p1);
    put(&c, channel, cl);
    PUTLIT(&c, p2);
    put(&c, data_json, data_len);
    PUTLIT(&c, "}");
    f->kind = CG_FRAME_MESSAGE;
    return f;
}

/* Length of s once JSON-escaped (our own messages: only '"' and '\\' need it). */
static size_t esc_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += (*s == '"' || *s == '\\') ? 2 : (unsigned char)*s < 0x20 ? 6 : 1;
    return n;
}

static void put_esc(struct cur *c, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            *c->p++ = '\\';
            *c->p++ = ch;
        } else if (ch < 0x20) {
            char u[7];
            snprintf(u, sizeof(u), "\\u%04x", ch);
            put(c, u, 6);
        } else {
            *c->p++ = ch;
        }
    }
}

static size_t id_len(const char *id_json)
{
    return id_json ? sizeof(",\"id\":") - 1 + strlen(id_json) : 0;
}

static void put_id(struct cur *c, const char *id_json)
{
    if (id_json) {
        PUTLIT(c, ",\"id\":");
        put_str(c, id_json);
    }
}

struct cg_frame *cg_frame_error(const char *code, const char *message, const char *id_json)
{
    static const char p1[] = "{\"type\":\"error\",\"code\":\"";
    static const char p2[] = "\",\"message\":\"";
    size_t len =
        sizeof(p1) - 1 + strlen(code) + sizeof(p2) - 1 + esc_len(message) + 1 + id_len(id_json) + 1;
    struct cg_frame *f = cg_frame_alloc(len);
    if (!f)
        return NULL;
    struct cur c = {cg_frame_data(f)};
    PUTLIT(&c, p1);
    put_str(&c, code);
    PUTLIT(&c, p2);
    put_esc(&c, message);
    PUTLIT(&c, "\"");
    put_id(&c, id_json);
    PUTLIT(&c, "}");
    return f;
}

struct cg_frame *cg_frame_pong(const char *id_json)
{
    static const char p1[] = "{\"type\":\"pong\"";
    struct cg_frame *f = cg_frame_alloc(sizeof(p1) - 1 + id_len(id_json) + 1);
    if (!f)
        return NULL;
    struct cur c = {cg_frame_data(f)};
    PUTLIT(&c, p1);
    put_id(&c, id_json);
    PUTLIT(&c, "}");
    return f;
}

struct cg_frame *cg_frame_names(const char *type, const char *id_json, const char *const *names,
                                size_t n)
{
    static const char p1[] = "{\"type\":\"";
    static const char p2[] = ",\"instruments\":[";
    size_t len = sizeof(p1) - 1 + strlen(type) + 1 + id_len(id_json) + sizeof(p2) - 1 + 2;
    for (size_t i = 0; i < n; i++)
        len += strlen(names[i]) + 2 + (i ? 1 : 0);
    struct cg_frame *f = cg_frame_alloc(len);
    if (!f)
        return NULL;
    struct cur c = {cg_frame_data(f)};
    PUTLIT(&c, p1);
    put_str(&c, type);
    PUTLIT(&c, "\"");
    put_id(&c, id_json);
    PUTLIT(&c, p2);
    for (size_t i = 0; i < n; i++) {
        if (i)
            PUTLIT(&c, ",");
        PUTLIT(&c, "\"");
        put_str(&c, names[i]);
        PUTLIT(&c, "\"");
    }
    PUTLIT(&c, "]}");
    return f;
}
