/* frame.c -- encoding of gateway->client frames into shared refcounted buffers. */
#include "frame.h"

#include <inttypes.h>
#include <math.h>
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

/* head + name + mid + json + "}": a message-kind frame naming one thing and carrying one JSON
 * value (head and mid are string literals: their sizes include the NUL). */
#define NAMED_JSON(head, name, mid, json, jlen)                                                    \
    named_json(head, sizeof(head) - 1, name, mid, sizeof(mid) - 1, json, jlen)

static struct cg_frame *named_json(const char *head, size_t hlen, const char *name, const char *mid,
                                   size_t mlen, const char *json, size_t jlen)
{
    size_t nl = strlen(name);
    struct cg_frame *f = cg_frame_alloc(hlen + nl + mlen + jlen + 1);
    if (!f)
        return NULL;
    struct cur c = {cg_frame_data(f)};
    put(&c, head, hlen);
    put(&c, name, nl);
    put(&c, mid, mlen);
    put(&c, json, jlen);
    PUTLIT(&c, "}");
    f->kind = CG_FRAME_MESSAGE;
    return f;
}

struct cg_frame *cg_frame_message(const char *channel, const char *data_json, size_t data_len)
{
    return NAMED_JSON("{\"type\":\"message\",\"channel\":\"", channel, "\",\"data\":", data_json,
                      data_len);
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

/* {"type":"<type>","id":..}: the replies that carry nothing but their id. */
static struct cg_frame *id_only(const char *type, const char *id_json)
{
    static const char p1[] = "{\"type\":\"";
    size_t tl = strlen(type);
    struct cg_frame *f = cg_frame_alloc(sizeof(p1) - 1 + tl + 1 + id_len(id_json) + 1);
    if (!f)
        return NULL;
    struct cur c = {cg_frame_data(f)};
    PUTLIT(&c, p1);
    put(&c, type, tl);
    PUTLIT(&c, "\"");
    put_id(&c, id_json);
    PUTLIT(&c, "}");
    return f;
}

struct cg_frame *cg_frame_sent(const char *id_json)
{
    return id_only("sent", id_json);
}

struct cg_frame *cg_frame_reply(const char *service, const char *id_json, const char *data_json,
                                size_t data_len)
{
    static const char p1[] = "{\"type\":\"reply\",\"service\":\"";
    static const char p2[] = ",\"data\":";
    size_t sl = strlen(service);
    struct cg_frame *f =
        cg_frame_alloc(sizeof(p1) - 1 + sl + 1 + id_len(id_json) + sizeof(p2) - 1 + data_len + 1);
    if (!f)
        return NULL;
    struct cur c = {cg_frame_data(f)};
    PUTLIT(&c, p1);
    put(&c, service, sl);
    PUTLIT(&c, "\"");
    put_id(&c, id_json);
    PUTLIT(&c, p2);
    put(&c, data_json, data_len);
    PUTLIT(&c, "}");
    f->kind = CG_FRAME_MESSAGE; /* never conflated */
    return f;
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
    return id_only("pong", id_json);
}

/* "a","b",... (no brackets) */
static void put_names(struct cur *c, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            PUTLIT(c, ",");
        PUTLIT(c, "\"");
        put_str(c, names[i]);
        PUTLIT(c, "\"");
    }
}

/* {"type":<type>,"id":..,"instruments":[names...]<tail>} */
static struct cg_frame *names_frame(const char *type, const char *id_json, const char *const *names,
                                    size_t n, const char *tail)
{
    static const char p1[] = "{\"type\":\"";
    static const char p2[] = ",\"instruments\":[";
    size_t len =
        sizeof(p1) - 1 + strlen(type) + 1 + id_len(id_json) + sizeof(p2) - 1 + 2 + strlen(tail);
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
    put_names(&c, names, n);
    PUTLIT(&c, "]");
    put_str(&c, tail);
    PUTLIT(&c, "}");
    return f;
}

struct cg_frame *cg_frame_names(const char *type, const char *id_json, const char *const *names,
                                size_t n)
{
    return names_frame(type, id_json, names, n, "");
}

struct cg_frame *cg_frame_instruments(const char *id_json, const char *const *names, size_t n,
                                      int more)
{
    return names_frame("instruments", id_json, names, n, more ? ",\"more\":true" : "");
}

/* ---- bars ------------------------------------------------------------------ */

/* A JSON number for a finite double. Prices and volumes almost always have a few
 * decimals, so they are written with integer arithmetic (printf's %g costs a few
 * hundred ns a number, and a bar frame has five); anything else falls back to
 * %.15g. Non-finite values (never from valid JSON input) become 0 so a frame is
 * always valid JSON. */
static int num(char *out, size_t outsz, double v)
{
    static const double scale[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6};
    if (v != v || v > 1.7e308 || v < -1.7e308)
        v = 0;
    for (int k = 0; k < 7; k++) {
        double sv = v * scale[k];
        if (sv > 9e14 || sv < -9e14)
            break;
        long long r = (long long)(sv >= 0 ? sv + 0.5 : sv - 0.5);
        if ((double)r / scale[k] != v)
            continue; /* not exactly k decimals: try more, or let printf say it */
        char digits[24], *p = out;
        unsigned long long u = r < 0 ? (unsigned long long)-r : (unsigned long long)r;
        int n = 0;
        do {
            digits[n++] = (char)('0' + u % 10);
            u /= 10;
        } while (u || n <= k); /* at least one digit before the point */
        if (r < 0)
            *p++ = '-';
        for (int i = n - 1; i >= 0; i--) {
            if (i == k - 1)
                *p++ = '.';
            *p++ = digits[i];
        }
        *p = 0;
        return (int)(p - out);
    }
    return snprintf(out, outsz, "%.15g", v);
}

static int int_text(char *out, int64_t v);

size_t cg_frame_bar_array(const struct cg_bar *b, char *out, size_t outsz)
{
    char tmp[200];
    int n = 0;
    tmp[n++] = '[';
    n += int_text(tmp + n, b->t);
    const double v[5] = {b->o, b->h, b->l, b->c, b->v};
    for (int i = 0; i < 5; i++) {
        tmp[n++] = ',';
        n += num(tmp + n, sizeof(tmp) - (size_t)n, v[i]);
    }
    tmp[n++] = ']';
    size_t len = (size_t)n < outsz ? (size_t)n : outsz - 1;
    memcpy(out, tmp, len);
    out[len] = 0;
    return len;
}

/* Writes an unsigned/signed integer in decimal; returns its length. */
static int int_text(char *out, int64_t v)
{
    char d[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        d[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    int k = 0;
    if (v < 0)
        out[k++] = '-';
    while (n)
        out[k++] = d[--n];
    return k;
}

struct cg_frame *cg_frame_bar(const void *ckey, const char *instrument, const char *interval,
                              uint64_t seq, const struct cg_bar *b, int final)
{
    /* Built with memcpy, not printf: this runs for every tick and interval. */
    char tmp[512];
    struct cur c = {(unsigned char *)tmp};
    char n[32];
    if (strlen(instrument) > 64 || strlen(interval) > 16)
        return NULL;
    PUTLIT(&c, "{\"type\":\"bar\",\"instrument\":\"");
    put_str(&c, instrument);
    PUTLIT(&c, "\",\"interval\":\"");
    put_str(&c, interval);
    PUTLIT(&c, "\",\"seq\":");
    put(&c, n, (size_t)snprintf(n, sizeof(n), "%" PRIu64, seq));
    PUTLIT(&c, ",\"bar\":{\"t\":");
    put(&c, n, (size_t)int_text(n, b->t));
    PUTLIT(&c, ",\"o\":");
    put(&c, n, (size_t)num(n, sizeof(n), b->o));
    PUTLIT(&c, ",\"h\":");
    put(&c, n, (size_t)num(n, sizeof(n), b->h));
    PUTLIT(&c, ",\"l\":");
    put(&c, n, (size_t)num(n, sizeof(n), b->l));
    PUTLIT(&c, ",\"c\":");
    put(&c, n, (size_t)num(n, sizeof(n), b->c));
    PUTLIT(&c, ",\"v\":");
    put(&c, n, (size_t)num(n, sizeof(n), b->v));
    if (final)
        PUTLIT(&c, "},\"final\":true}");
    else
        PUTLIT(&c, "},\"final\":false}");
    size_t len = (size_t)(c.p - (unsigned char *)tmp);
    struct cg_frame *f = cg_frame_alloc(len);
    if (!f)
        return NULL;
    memcpy(cg_frame_data(f), tmp, len);
    if (!final) {
        f->kind = CG_FRAME_TICK;
        f->ckey = ckey;
    }
    return f;
}

#define BAR_MAX 160 /* longest [t,o,h,l,c,v] */

static size_t bars_len(const struct cg_frame_bars *b)
{
    size_t n = b->nfirst + b->nsecond;
    return 2 + n * (BAR_MAX + 1);
}

static void put_bars(struct cur *c, const struct cg_frame_bars *b)
{
    char tmp[BAR_MAX + 8];
    size_t k = 0;
    PUTLIT(c, "[");
    for (size_t i = 0; i < b->nfirst + b->nsecond; i++, k++) {
        const struct cg_bar *bar = i < b->nfirst ? &b->first[i] : b->second[i - b->nfirst];
        if (k)
            PUTLIT(c, ",");
        put(c, tmp, cg_frame_bar_array(bar, tmp, sizeof(tmp)));
    }
    PUTLIT(c, "]");
}

/* Encodes into a worst-case buffer, then trims the frame's length to what was
 * written (the allocation keeps its size; frames are short-lived). */
struct cg_frame *cg_frame_snapshot(const char *instrument, uint64_t seq, const char *last_json,
                                   size_t last_len, const struct cg_frame_bars *series, size_t n)
{
    return cg_frame_snapshot_full(instrument, seq, last_json, last_len, series, n, NULL, NULL, 0);
}

struct cg_frame *cg_frame_snapshot_full(const char *instrument, uint64_t seq, const char *last_json,
                                        size_t last_len, const struct cg_frame_bars *series,
                                        size_t n, const char *tz, const char *overlays_json,
                                        size_t overlays_len)
{
    size_t cap = 128 + strlen(instrument) + (last_json ? last_len : 4) + (tz ? strlen(tz) + 8 : 0) +
                 (overlays_json ? overlays_len + 16 : 0);
    for (size_t i = 0; i < n; i++)
        cap += strlen(series[i].interval) + 4 + bars_len(&series[i]);
    struct cg_frame *f = cg_frame_alloc(cap);
    if (!f)
        return NULL;
    struct cur c = {cg_frame_data(f)};
    char num_s[24];
    PUTLIT(&c, "{\"type\":\"snapshot\",\"instrument\":\"");
    put_str(&c, instrument);
    PUTLIT(&c, "\",\"seq\":");
    put(&c, num_s, (size_t)snprintf(num_s, sizeof(num_s), "%" PRIu64, seq));
    PUTLIT(&c, ",\"last\":");
    if (last_json)
        put(&c, last_json, last_len);
    else
        PUTLIT(&c, "null");
    PUTLIT(&c, ",\"bars\":{");
    for (size_t i = 0; i < n; i++) {
        if (i)
            PUTLIT(&c, ",");
        PUTLIT(&c, "\"");
        put_str(&c, series[i].interval);
        PUTLIT(&c, "\":");
        put_bars(&c, &series[i]);
    }
    PUTLIT(&c, "}");
    if (tz) {
        PUTLIT(&c, ",\"tz\":\"");
        put_str(&c, tz);
        PUTLIT(&c, "\"");
    }
    if (overlays_json) {
        PUTLIT(&c, ",\"overlays\":");
        put(&c, overlays_json, overlays_len);
    }
    PUTLIT(&c, "}");
    f->len = (size_t)(c.p - cg_frame_data(f));
    return f;
}

struct cg_frame *cg_frame_overlay(const char *instrument, const char *op_json, size_t op_len)
{
    return NAMED_JSON("{\"type\":\"overlay\",\"instrument\":\"", instrument, "\",\"op\":", op_json,
                      op_len);
}

struct cg_frame *cg_frame_overlay_sync(const char *instrument, uint64_t v,
                                       const char *overlays_json, size_t overlays_len)
{
    static const char p1[] = "{\"type\":\"overlay\",\"instrument\":\"";
    static const char p2[] = "\",\"op\":{\"op\":\"sync\",\"v\":";
    static const char p3[] = ",\"overlays\":";
    char num_s[24];
    int nl = snprintf(num_s, sizeof(num_s), "%" PRIu64, v);
    size_t il = strlen(instrument);
    struct cg_frame *f = cg_frame_alloc(sizeof(p1) - 1 + il + sizeof(p2) - 1 + (size_t)nl +
                                        sizeof(p3) - 1 + overlays_len + 2);
    if (!f)
        return NULL;
    struct cur c = {cg_frame_data(f)};
    PUTLIT(&c, p1);
    put(&c, instrument, il);
    PUTLIT(&c, p2);
    put(&c, num_s, (size_t)nl);
    PUTLIT(&c, p3);
    put(&c, overlays_json, overlays_len);
    PUTLIT(&c, "}}");
    f->kind = CG_FRAME_MESSAGE;
    return f;
}

struct cg_frame *cg_frame_history(const char *id_json, const char *instrument,
                                  const struct cg_frame_bars *bars)
{
    size_t cap =
        128 + id_len(id_json) + strlen(instrument) + strlen(bars->interval) + bars_len(bars);
    struct cg_frame *f = cg_frame_alloc(cap);
    if (!f)
        return NULL;
    struct cur c = {cg_frame_data(f)};
    PUTLIT(&c, "{\"type\":\"history\"");
    put_id(&c, id_json);
    PUTLIT(&c, ",\"instrument\":\"");
    put_str(&c, instrument);
    PUTLIT(&c, "\",\"interval\":\"");
    put_str(&c, bars->interval);
    PUTLIT(&c, "\",\"bars\":");
    put_bars(&c, bars);
    PUTLIT(&c, "}");
    f->len = (size_t)(c.p - cg_frame_data(f));
    return f;
}

struct cg_frame *cg_frame_subscribed(const char *id_json, const char *const *names, size_t n,
                                     const char *const *intervals, size_t ni, const char *epoch,
                                     const char *shared_epoch, const int *recovered)
{
    int shared = shared_epoch && shared_epoch[0];
    size_t cap = 160 + id_len(id_json) + strlen(epoch) + (shared ? strlen(shared_epoch) : 0);
    for (size_t i = 0; i < n; i++)
        cap += 2 * (strlen(names[i]) + 3) + 8;
    for (size_t i = 0; i < ni; i++)
        cap += strlen(intervals[i]) + 3;
    struct cg_frame *f = cg_frame_alloc(cap);
    if (!f)
        return NULL;
    struct cur c = {cg_frame_data(f)};
    PUTLIT(&c, "{\"type\":\"subscribed\"");
    put_id(&c, id_json);
    PUTLIT(&c, ",\"instruments\":[");
    put_names(&c, names, n);
    PUTLIT(&c, "],\"intervals\":[");
    put_names(&c, intervals, ni);
    PUTLIT(&c, "],\"epoch\":\"");
    put_str(&c, epoch);
    PUTLIT(&c, "\"");
    if (shared) {
        PUTLIT(&c, ",\"shared_epoch\":\"");
        put_str(&c, shared_epoch);
        PUTLIT(&c, "\"");
    }
    if (recovered) {
        size_t k = 0;
        PUTLIT(&c, ",\"recovered\":{");
        for (size_t i = 0; i < n; i++) {
            int dup = 0;
            for (size_t j = 0; j < i && !dup; j++)
                dup = !strcmp(names[i], names[j]);
            if (recovered[i] < 0 || dup)
                continue;
            if (k++)
                PUTLIT(&c, ",");
            PUTLIT(&c, "\"");
            put_str(&c, names[i]);
            PUTLIT(&c, "\":");
            if (recovered[i])
                PUTLIT(&c, "true");
            else
                PUTLIT(&c, "false");
        }
        PUTLIT(&c, "}");
    }
    PUTLIT(&c, "}");
    f->len = (size_t)(c.p - cg_frame_data(f));
    return f;
}
