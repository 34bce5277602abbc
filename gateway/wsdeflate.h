/* wsdeflate.h -- the permessage-deflate extension (RFC 7692) as libwebsockets runs it: the
 * negotiation, inflating what clients send, and marking the messages the write path compressed.
 *
 * lws 4.1's own extension compresses per socket (2.5-4x the gateway's CPU per frame,
 * BENCHMARKS.md) and loses output when a client message inflates past its 1 KiB buffer at the
 * end of a frame, so this one replaces it: sending passes the payload through (client.c
 * compresses each distinct batch once, deflate.h, and sets c->deflate_rsv1 for the write), and
 * receiving inflates each chunk lws reads whole into one buffer per vhost, at most
 * --max-message-bytes + 1 bytes a message, so that dispatch.c closes a larger one with 1009
 * without it ever being inflated further. */
#ifndef CG_WSDEFLATE_H
#define CG_WSDEFLATE_H

#include <libwebsockets.h>

#include "client.h"

/* The extension table for lws_context_creation_info.extensions (lives for the process). */
extern const struct lws_extension cg_wsdeflate_extensions[];

/* LWS_CALLBACK_CONFIRM_EXTENSION_OKAY: 0 accepts the extension on wsi. */
int cg_wsdeflate_offer_ok(struct lws *wsi);
/* Whether wsi negotiated the extension (at ESTABLISHED or later). */
int cg_wsdeflate_active(struct lws *wsi);
/* The LZ77 window (bits, 9..15) wsi's compressed messages must keep to: the
 * server_max_window_bits it agreed, else 15. Only for a wsi with the extension active. */
int cg_wsdeflate_window(struct lws *wsi);

#endif
