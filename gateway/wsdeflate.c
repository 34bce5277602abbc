/* wsdeflate.c -- the permessage-deflate extension: negotiation, inflating, RSV1 on send. */
#include "wsdeflate.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "deflate.h"

/* What lws 4.1 hands an extension's PAYLOAD_RX and expects back: its private struct
 * lws_ext_pm_deflate_rx_ebufs and enum pmd_return (lib/core-net/private-lib-core-net.h), whose
 * layout and values are fixed within the 4.1 series (Debian ships 4.1.6). */
#if LWS_LIBRARY_VERSION_MAJOR != 4 || LWS_LIBRARY_VERSION_MINOR != 1
#error "wsdeflate.c mirrors private libwebsockets 4.1 definitions: check them for this version"
#endif
struct rx_ebufs {
    struct lws_tokens eb_in;
    struct lws_tokens eb_out;
};
enum { PMDR_DID_NOTHING = 1, PMDR_EMPTY_NONFINAL = 3, PMDR_EMPTY_FINAL = 4 };

/* lws_set_extension_option() names that only ask: whether the extension is active on a wsi,
 * and the window its compressed messages must keep to (returned, 9..15). */
#define PROBE "chartgate-active"
#define PROBE_WINDOW "chartgate-window"

enum { OPT_SERVER_NO_CONTEXT, OPT_CLIENT_NO_CONTEXT, OPT_SERVER_WINDOW_9 };

/* lws 4.1 applies and echoes only valueless options, and matches them by prefix: so each value
 * of server_max_window_bits we accept is an option of its own, "server_max_window_bits=9" to
 * "=15", and accepting one echoes it, as RFC 7692 §7.1.2.1 asks. cg_wsdeflate_offer_ok()
 * declines any other spelling (8, a quoted value, no value) before lws gets here, so that no
 * prefix can match a longer value ("=1" is not listed, and "=9" is the only one-digit one). */
static const struct lws_ext_options options[] = {
    {"server_no_context_takeover", EXTARG_NONE}, /* we never take over: agreed */
    {"client_no_context_takeover", EXTARG_NONE}, /* then the inflater goes after each message */
    {"server_max_window_bits=9", EXTARG_NONE},   /* OPT_SERVER_WINDOW_9 + (bits - 9) */
    {"server_max_window_bits=10", EXTARG_NONE},
    {"server_max_window_bits=11", EXTARG_NONE},
    {"server_max_window_bits=12", EXTARG_NONE},
    {"server_max_window_bits=13", EXTARG_NONE},
    {"server_max_window_bits=14", EXTARG_NONE},
    {"server_max_window_bits=15", EXTARG_NONE},
    {"client_max_window_bits", EXTARG_OPT_DEC}, /* not echoed: a 15-bit inflater reads any window */
    {NULL, 0},
};

/* Per connection with the extension (lws keeps the pointer). */
struct pmd {
    z_stream z;
    uint8_t z_ready;
    uint8_t client_no_context;
    uint8_t server_window; /* server_max_window_bits agreed, or 15 */
    uint8_t in_message;    /* a data message is being received */
    uint8_t compressed;    /* ... and its first frame had RSV1 */
    uint8_t overflow;      /* ... and it inflated past --max-message-bytes: the rest is dropped */
    uint8_t stream_end;    /* the client ended its deflate stream (BFINAL): reset after */
    size_t out;            /* bytes it inflated to so far */
};

/* Whether the server_max_window_bits value at v is one the options table lists: 9 to 15,
 * unquoted, without leading zeros, ending the parameter. */
static int window_value_ok(const char *v)
{
    if (v[0] == '9')
        v++;
    else if (v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        v += 2;
    else
        return 0;
    return !*v || strchr("; \t", *v);
}

int cg_wsdeflate_offer_ok(struct lws *wsi)
{
    static const char name[] = "server_max_window_bits";
    char offer[256];
    int n = lws_hdr_copy(wsi, offer, sizeof(offer), WSI_TOKEN_EXTENSIONS);
    if (n < 0 || n >= (int)sizeof(offer) - 1)
        return 1;
    int seen = 0;
    for (const char *p = offer; (p = strstr(p, name)); p++) {
        const char *v = p + sizeof(name) - 1;
        /* no value (an offer must give one, §7.1.2.1), 8 (zlib has no 256-byte raw window),
         * quoted or spaced (lws would not match it to the table), invalid, or given twice
         * (§7: an offer with a parameter twice must be declined) */
        if (*v != '=' || !window_value_ok(v + 1) || seen++)
            return 1;
    }
    return 0;
}

int cg_wsdeflate_active(struct lws *wsi)
{
    return !lws_set_extension_option(wsi, "permessage-deflate", PROBE, NULL);
}

int cg_wsdeflate_window(struct lws *wsi)
{
    int bits = lws_set_extension_option(wsi, "permessage-deflate", PROBE_WINDOW, NULL);
    return bits >= CG_DEFLATE_MIN_WBITS && bits <= CG_DEFLATE_MAX_WBITS ? bits
                                                                        : CG_DEFLATE_MAX_WBITS;
}

/* Inflates in (len bytes) into out after *done bytes (cap in all). Returns 0, 1 when out is
 * full (the message is larger than the limit), or -1 on bad deflate data. */
static int inflate_some(struct pmd *p, const unsigned char *in, size_t len, unsigned char *out,
                        size_t cap, size_t *done)
{
    p->z.next_in = (unsigned char *)in;
    p->z.avail_in = (uInt)len;
    while (p->z.avail_in && !p->stream_end) {
        if (*done >= cap)
            return 1;
        p->z.next_out = out + *done;
        p->z.avail_out = (uInt)(cap - *done);
        int rc = inflate(&p->z, Z_SYNC_FLUSH);
        *done = cap - p->z.avail_out;
        if (rc == Z_STREAM_END)
            p->stream_end = 1;
        else if (rc != Z_OK && rc != Z_BUF_ERROR)
            return -1;
        else if (rc == Z_BUF_ERROR && p->z.avail_out)
            return -1; /* no progress with room left: cannot happen with input left */
    }
    /* Output may still be pending inside zlib when it filled out exactly. */
    return *done >= cap ? 1 : 0;
}

/* LWS_EXT_CB_PAYLOAD_RX: one chunk of a frame's payload, as lws read it (at most the rx buffer).
 * Passed through unless its message's first frame had RSV1; else all of it is inflated at once
 * into the vhost's buffer (lws calls the protocol callback with it before reading more), and the
 * message's end feeds the 00 00 ff ff the client dropped. A message starts at a chunk lws marks
 * as a first fragment. Control frames do not come here within a message, except a pong with a
 * payload between two fragments of one: a client doing that to a compressed message corrupts
 * only its own message. */
static int payload_rx(struct lws *wsi, struct pmd *p, struct rx_ebufs *eb)
{
    struct cg_ws *w = lws_context_user(lws_get_context(wsi));
    int last = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    if (!p->in_message) {
        /* After lws hands a frame's payload over in bulk, it runs its parser once more on no
         * input, and that reaches here with nothing: not the start of a message. */
        if (!lws_is_first_fragment(wsi))
            return PMDR_DID_NOTHING; /* lws then calls nobody */
        p->in_message = 1;
        p->compressed = !!(lws_get_reserved_bits(wsi) & 0x40);
        p->overflow = 0;
        p->out = 0;
    }
    if (!p->compressed) {
        p->in_message = !last;
        return 0; /* eb_out is eb_in: the payload as is */
    }
    if (!p->z_ready) {
        memset(&p->z, 0, sizeof(p->z));
        if (inflateInit2(&p->z, -15) != Z_OK)
            return -1;
        p->z_ready = 1;
        p->stream_end = 0;
    }
    size_t done = 0;
    size_t cap = p->overflow ? 0 : w->inflate_cap - p->out;
    int rc = 0;
    if (!p->overflow) {
        rc = inflate_some(p, (const unsigned char *)eb->eb_in.token, (size_t)eb->eb_in.len,
                          w->inflate_buf, cap, &done);
        if (!rc && last) {
            static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
            rc = inflate_some(p, tail, sizeof(tail), w->inflate_buf, cap, &done);
        }
    }
    if (rc < 0)
        return -1; /* lws fails the connection */
    if (rc > 0)
        p->overflow = 1; /* done == cap: dispatch.c sees more than the limit and closes 1009 */
    p->out += done;
    eb->eb_in.token += eb->eb_in.len;
    eb->eb_in.len = 0;
    eb->eb_out.token = w->inflate_buf;
    eb->eb_out.len = (int)done;
    if (!last)
        return PMDR_EMPTY_NONFINAL;
    p->in_message = 0;
    if (p->client_no_context || p->stream_end || p->overflow) {
        inflateEnd(&p->z); /* its memory goes until the next compressed message */
        p->z_ready = 0;
    }
    return PMDR_EMPTY_FINAL;
}

static int callback(struct lws_context *ctx, const struct lws_extension *ext, struct lws *wsi,
                    enum lws_extension_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)ctx;
    (void)ext;
    (void)len;
    switch (reason) {
    case LWS_EXT_CB_CONSTRUCT: {
        struct pmd *p = calloc(1, sizeof(*p));
        if (!p)
            return -1; /* not applied: the client gets plain frames */
        p->server_window = CG_DEFLATE_MAX_WBITS;
        *(struct pmd **)user = p;
        if (in)
            *(const struct lws_ext_options **)in = options;
        return 0;
    }
    case LWS_EXT_CB_DESTROY: {
        struct pmd *p = user;
        if (p && p->z_ready)
            inflateEnd(&p->z);
        free(p);
        return 0;
    }
    case LWS_EXT_CB_OPTION_SET: {
        const struct lws_ext_option_arg *oa = in;
        struct pmd *p = user;
        if (oa->option_index == OPT_CLIENT_NO_CONTEXT)
            p->client_no_context = 1;
        else if (oa->option_index >= OPT_SERVER_WINDOW_9 &&
                 oa->option_index <= OPT_SERVER_WINDOW_9 + CG_DEFLATE_NWBITS - 1)
            p->server_window =
                (uint8_t)(CG_DEFLATE_MIN_WBITS + oa->option_index - OPT_SERVER_WINDOW_9);
        return 0; /* accepted: lws echoes it */
    }
    case LWS_EXT_CB_NAMED_OPTION_SET: {
        const struct lws_ext_option_arg *oa = in;
        const struct pmd *p = user;
        if (!oa || !oa->option_name)
            return -1;
        if (!strcmp(oa->option_name, PROBE))
            return 0;
        if (!strcmp(oa->option_name, PROBE_WINDOW) && p)
            return p->server_window;
        return -1;
    }
    case LWS_EXT_CB_PAYLOAD_RX:
        return payload_rx(wsi, user, in);
    case LWS_EXT_CB_PAYLOAD_TX:
        return 0; /* eb_out stays eb_in: client.c compressed it already, or sends it plain */
    case LWS_EXT_CB_PACKET_TX_PRESEND: {
        /* the header lws made, then the payload; a NULL token: lws asking for a spill */
        struct lws_tokens *t = in;
        struct cg_client *c = lws_wsi_user(wsi);
        if (c && c->deflate_rsv1 && t && t->token && t->len) {
            t->token[0] |= 0x40;
            c->deflate_rsv1 = 0;
        }
        return 0;
    }
    default:
        return 0;
    }
}

const struct lws_extension cg_wsdeflate_extensions[] = {
    {"permessage-deflate", callback, "permessage-deflate"},
    {NULL, NULL, NULL},
};
