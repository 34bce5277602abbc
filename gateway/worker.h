/* worker.h -- one worker of --workers N: its own listening socket on the shared port, and its
 * slot in the instance's shared region (heartbeat, gauges, counters).
 *
 * libwebsockets 4.1.6 (Debian 12's build, LWS_MAX_SMP 1) ignores
 * LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE: it sets SO_REUSEPORT only when count_threads > 1,
 * which LWS_MAX_SMP caps at 1, so a second process's bind fails with EADDRINUSE. A worker
 * therefore opens the listening socket itself (SO_REUSEADDR + SO_REUSEPORT, so the kernel
 * spreads connections over the workers), accepts on the loop, and hands each connection to
 * lws with lws_adopt_socket_vhost(); the lws vhost is created with
 * CONTEXT_PORT_NO_LISTEN_SERVER. TLS, timeouts and everything after the accept are lws's as
 * before. Without a supervisor (--workers 1) none of this runs and lws listens itself. */
#ifndef CG_WORKER_H
#define CG_WORKER_H

#include <stdint.h>
#include <uv.h>

#include "log.h"

struct cg_shared;
struct cg_ws;

/* cg_ws's, per process. */
struct cg_worker {
    struct cg_shared *shared; /* borrowed (the supervisor's mapping); NULL: no supervisor */
    uint32_t index;
    int fd; /* the listening socket, -1 when closed */
    uv_poll_t poll;
    uv_timer_t beat;  /* heartbeat, gauges and the shared table's sweep */
    uv_timer_t pause; /* accepting paused after EMFILE/ENFILE */
    int handles;      /* poll/beat/pause initialised */
    struct cg_log_limit accept_log;
};

/* Opens the listening socket on cfg's address and starts accepting into w's lws context, and
 * starts the heartbeat. Returns 0, or -1 with a line logged. */
int cg_worker_start(struct cg_ws *w);
/* Stops accepting and closes the listening socket (shutdown: the kernel then gives new
 * connections to the other workers). */
void cg_worker_stop_accepting(struct cg_ws *w);
/* Publishes this worker's gauges into its slot now (a connection opened or closed). */
void cg_worker_publish(struct cg_ws *w);
/* Closes everything cg_worker_start opened; the loop must run on to close the handles. */
void cg_worker_stop(struct cg_ws *w);

#endif
