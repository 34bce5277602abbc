/* service.h -- client messages to backend services (PROTOCOL.md §16): envelopes pushed onto
 * capped Redis lists, and connection events.
 *
 * A push is one FCALL of a Redis function that checks the list's length and pushes in one
 * step, so a full list takes nothing; the function is (re)loaded whenever the command link
 * comes up, before any push queued after it. Pushes of one loop turn leave in one write to
 * Redis (hiredis buffers them), so the cost per message is one small command. */
#ifndef CG_SERVICE_H
#define CG_SERVICE_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "log.h"

struct cg_bridge;
struct cg_config;

struct cg_service {
    const struct cg_config *cfg; /* borrowed */
    struct cg_bridge *bridge;    /* borrowed */
    char epoch[17];              /* this process's, the first part of every conn */
    char reply_to[200];          /* <reply-prefix><epoch> */
    struct cg_log_limit log;
};

/* Initialises s (pointers borrowed; epoch copied). Cannot fail. */
void cg_service_init(struct cg_service *s, const struct cg_config *cfg, struct cg_bridge *bridge,
                     const char *epoch);
/* Bridge hook: the command link is (back) up. Loads the push function. data = cg_service. */
void cg_service_command_up(void *data);

/* Called once per push: ok = 1 when the envelope is on the list, 0 when it is not (Redis down
 * or the list full); arg as given. */
typedef void cg_service_done_fn(void *arg, int ok);

/* Pushes a client's message for configured service svc (an index in cfg->services) from user's
 * socket numbered conn: data and id (NULL: none) are borrowed and copied into the envelope.
 * Returns 0, done being called later, or -1 when the push cannot even be queued (done is not
 * called). Both outcomes are counted per service in cg_metrics. */
int cg_service_send(struct cg_service *s, uint32_t svc, const char *user, uint64_t conn, json_t *id,
                    json_t *data, cg_service_done_fn *done, void *arg);
/* Pushes {"event":event,...} to every service configured with --service-events; one that
 * cannot take it is counted (service_events_dropped). */
void cg_service_event(struct cg_service *s, const char *event, const char *user, uint64_t conn);

/* "<epoch>.<conn>" into out (at least 40 bytes). */
void cg_service_conn_id(const struct cg_service *s, uint64_t conn, char *out, size_t outsz);

#endif
