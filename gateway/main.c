/* main.c -- chartgate: configuration, the one libuv loop, wiring, signals, shutdown.
 *
 * Everything runs on one thread and one libuv loop owned here: libwebsockets is
 * attached to it as a foreign loop, hiredis through its libuv adapter. Scale-out
 * is more processes sharing one Redis, not threads: --workers N forks them here, on one port
 * (supervisor.c), before any of this exists.
 *
 * SIGHUP reloads the TLS certificate and re-reads the Redis password files; links that are
 * down then retry at once with the new credentials (links that are up keep their session). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "agent.h"
#include "auth.h"
#include "bridge.h"
#include "config.h"
#include "instrument.h"
#include "log.h"
#include "overlay.h"
#include "registry.h"
#include "random.h"
#include "relay.h"
#include "sentinel.h"
#include "service.h"
#include "shared.h"
#include "stream.h"
#include "supervisor.h"
#include "tls.h"
#include "ws.h"

#ifndef CG_DEFAULT_WEB_ROOT
#define CG_DEFAULT_WEB_ROOT "web"
#endif

#define SHUTDOWN_CLOSE_MS 1500 /* time given to clients to take their close frame */
#define SHUTDOWN_HARD_MS 4500  /* exit 0 within 5 s whatever happens */

struct app {
    uv_loop_t loop;
    struct cg_config cfg;
    struct cg_registry reg;
    struct cg_relay relay;
    struct cg_sentinel sentinel;
    struct cg_bridge bridge;
    struct cg_auth auth;
    struct cg_agent agent;
    struct cg_service service;
    struct cg_stream stream;
    struct cg_ws ws;
    char epoch[17]; /* this process's identity: seq ranges, socket ids, the reply channel */
    struct cg_shared *shared; /* --workers: the instance's shared region (supervisor.c) */
    int worker;               /* this worker's index; -1 without a supervisor */
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t shutdown_timer, hard_timer;
    int stopping;
};

static void print_usage(const char *text)
{
    fputs(text, stdout);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void log_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    cg_log(CG_LOG_DEBUG, "open handle", "type=%s closing=%d", uv_handle_type_name(h->type),
           uv_is_closing(h));
}

static void hard_exit(uv_timer_t *t)
{
    (void)t;
    cg_log(CG_LOG_WARN, "shutdown deadline reached", "pid=%d", (int)getpid());
    _exit(0);
}

/* Second phase: the clients had their close frames; take everything down and let
 * the loop run dry. */
static void finish_shutdown(uv_timer_t *t)
{
    struct app *a = t->data;
    close_handle((uv_handle_t *)&a->shutdown_timer);
    cg_ws_stop(&a->ws);
    cg_bridge_stop(&a->bridge);
    cg_stream_stop(&a->stream);
    cg_sentinel_stop(&a->sentinel);
    cg_auth_finish(&a->auth);
    cg_agent_finish(&a->agent);
}

/* Registry hooks fan out to the bridge (upstream subscriptions) and the agent. */
static void instrument_active(void *data, struct cg_instrument *in, int active)
{
    struct app *a = data;
    cg_agent_instrument_active(&a->agent, in, active);
    cg_bridge_instrument_active(&a->bridge, in, active);
    cg_stream_instrument_active(&a->stream, in, active);
}

static void user_active(void *data, struct cg_user *u, int active)
{
    struct app *a = data;
    cg_bridge_user_active(&a->bridge, u, active);
}

static void sub_dropped(void *data, struct cg_sub *sub)
{
    struct app *a = data;
    cg_agent_sub_dropped(&a->agent, sub);
    cg_client_unpace(&a->ws, sub);
}

/* Bridge hooks: what follows a link coming (back) up. */
static void pubsub_up(void *data)
{
    struct app *a = data;
    cg_agent_gap(&a->agent);
    cg_stream_pubsub_up(&a->stream);
}

static void instrument_gap(void *data, const char *name, size_t len, int overlays)
{
    struct app *a = data;
    struct cg_instrument *in =
        cg_instrument_valid(name, len) ? cg_registry_instrument(&a->reg, name, len, 0) : NULL;
    if (!in)
        return; /* no longer watched here */
    cg_agent_instrument_gap(&a->agent, in, overlays);
    if (!overlays)
        cg_stream_instrument_gap(&a->stream, in);
}

static void on_overlay_library(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    (void)priv;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        cg_log(CG_LOG_ERROR, "overlay functions not loaded",
               "reason=\"%.200s\" effect=\"overlay operations are refused, snapshots carry none\"",
               reply->str);
}

/* The overlay function library goes in first: the inbox and snapshots call it (§17). */
static void load_overlay_library(struct app *a)
{
    char *lib = cg_overlay_library(&a->cfg);
    if (!lib) {
        cg_log(CG_LOG_ERROR, "overlay functions not loaded", "reason=\"out of memory\"");
        return;
    }
    const char *argv[4] = {"FUNCTION", "LOAD", "REPLACE", lib};
    size_t lens[4] = {8, 4, 7, strlen(lib)};
    cg_bridge_command(&a->bridge, on_overlay_library, NULL, 4, argv, lens);
    free(lib);
}

static void command_up(void *data)
{
    struct app *a = data;
    load_overlay_library(a);
    cg_service_command_up(&a->service);
    cg_stream_command_up(&a->stream);
    cg_agent_command_up(&a->agent);
}

/* The sentinels answered: links not on the master's address move to it. */
static void master_resolved(void *data, int changed)
{
    struct app *a = data;
    cg_bridge_master_resolved(&a->bridge, changed);
    cg_auth_master_resolved(&a->auth, changed);
}

/* Re-reads the password files; a file that cannot be read keeps the old credentials. */
static void reload_secrets(struct app *a)
{
    if (!a->cfg.redis_password_file[0] && !a->cfg.sentinel_password_file[0])
        return;
    char err[512], q[520];
    if (cg_config_reload_secrets(&a->cfg, err, sizeof(err))) {
        const char *why = strncmp(err, "chartgate: ", 11) ? err : err + 11;
        cg_log(CG_LOG_ERROR, "password file reload failed", "reason=%s",
               cg_log_quote(q, sizeof(q), why, strlen(why)));
        return;
    }
    cg_log(CG_LOG_INFO, "password files reloaded", "redis=%s sentinel=%s",
           a->cfg.redis_password_file[0] ? "yes" : "no",
           a->cfg.sentinel_password_file[0] ? "yes" : "no");
    cg_sentinel_retry_now(&a->sentinel);
    cg_bridge_retry_now(&a->bridge);
    cg_auth_retry_now(&a->auth);
}

static void on_sighup(uv_signal_t *s, int signum)
{
    (void)signum;
    struct app *a = s->data;
    cg_tls_reload(a->ws.ctx, &a->cfg);
    reload_secrets(a);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct app *a = s->data;
    if (a->stopping)
        return;
    a->stopping = 1;
    cg_log(CG_LOG_INFO, "shutting down", "signal=%d connections=%zu", signum, a->reg.nmembers);
    uv_signal_stop(&a->sigterm);
    uv_signal_stop(&a->sigint);
    uv_signal_stop(&a->sighup);
    close_handle((uv_handle_t *)&a->sigterm);
    close_handle((uv_handle_t *)&a->sigint);
    close_handle((uv_handle_t *)&a->sighup);
    uv_timer_start(&a->hard_timer, hard_exit, SHUTDOWN_HARD_MS, 0);
    cg_ws_close_all(&a->ws);
    uv_timer_init(&a->loop, &a->shutdown_timer);
    a->shutdown_timer.data = a;
    uv_timer_start(&a->shutdown_timer, finish_shutdown, a->reg.nmembers ? SHUTDOWN_CLOSE_MS : 0, 0);
}

int main(int argc, char **argv)
{
    static struct app a;
    char err[512];
    switch (
        cg_config_load(&a.cfg, argc, argv, CG_DEFAULT_WEB_ROOT, err, sizeof(err), print_usage)) {
    case CG_CONFIG_HELP:
        return 0;
    case CG_CONFIG_ERROR:
        fprintf(stderr, "%s\n", err);
        return 2;
    case CG_CONFIG_OK:
        break;
    }
    cg_config_scrub_argv(argc, argv);
    cg_log_set_level((enum cg_log_level)a.cfg.log_level);
    if (a.cfg.dev_login)
        cg_log(CG_LOG_WARN, "DEV LOGIN ENABLED: anyone who reaches this port can log in as anyone",
               "endpoint=/dev/login?user=NAME listen=%s:%u", a.cfg.listen_host, a.cfg.listen_port);
    /* --workers: the supervisor forks here, before any loop, Redis link or lws context; only
     * the workers come back from it. */
    a.worker = -1;
    uint32_t nworkers = cg_supervisor_workers(&a.cfg);
    if (a.cfg.workers != 1) {
        int rc;
        a.worker = cg_supervisor_run(&a.cfg, nworkers, &a.shared, &rc);
        if (a.worker < 0)
            return rc;
    }
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());

    if (uv_loop_init(&a.loop)) {
        fprintf(stderr, "chartgate: cannot create the event loop\n");
        return 1;
    }
    struct cg_registry_hooks rh = {instrument_active, user_active, sub_dropped, &a};
    cg_registry_init(&a.reg, &rh, a.cfg.max_instruments);
    /* Recording aggregates every instrument, watched here or not. */
    struct cg_relay_hooks relay_hooks = {
        cg_client_deliver,    &a.ws,          cg_agent_tick, &a.agent,
        a.cfg.record_bars,    cg_stream_hold, cg_stream_gap, &a.stream,
        cg_agent_overlay_gap, cg_client_paced};
    cg_relay_init(&a.relay, &a.reg, &relay_hooks, a.cfg.max_payload_bytes);
    cg_agent_init(&a.agent, &a.loop, &a.cfg, &a.reg, &a.bridge, &relay_hooks);
    char proposed[17];
    if (cg_random_hex(a.epoch, 8) || cg_random_hex(proposed, 8)) {
        fprintf(stderr, "chartgate: no random bytes for this process's epoch\n");
        return 1;
    }
    if (cg_stream_init(&a.stream, &a.loop, &a.cfg, &a.reg, &a.relay, &a.bridge, proposed)) {
        fprintf(stderr, "chartgate: out of memory\n");
        return 1;
    }
    /* The links ask the sentinel module where the master is; with sentinels they wait for the
     * first answer, which comes once the loop runs. */
    struct cg_sentinel_hooks sh = {master_resolved, &a};
    cg_sentinel_init(&a.sentinel, &a.loop, &a.cfg, &sh);
    struct cg_bridge_hooks bh = {pubsub_up, instrument_gap, command_up, &a};
    cg_bridge_start(&a.bridge, &a.loop, &a.cfg, &a.reg, &a.relay, a.epoch, &a.sentinel, &bh);
    cg_service_init(&a.service, &a.cfg, &a.bridge, a.epoch);
    struct cg_auth_hooks ah = {cg_client_revoked, &a.ws};
    cg_auth_init(&a.auth, &a.loop, &a.cfg, &a.bridge, &a.sentinel, &ah);
    struct cg_ws_deps wd = {
        &a.cfg,     &a.reg,    &a.auth, &a.bridge, &a.agent,
        &a.service, &a.stream, a.epoch, a.shared,  a.worker < 0 ? 0 : (uint32_t)a.worker};
    if (cg_ws_start(&a.ws, &a.loop, &wd)) {
        fprintf(stderr, "chartgate: --listen: cannot listen on %s:%u\n", a.cfg.listen_host,
                a.cfg.listen_port);
        return 1;
    }
    uv_timer_init(&a.loop, &a.hard_timer);
    uv_unref((uv_handle_t *)&a.hard_timer);
    uv_signal_init(&a.loop, &a.sigterm);
    uv_signal_init(&a.loop, &a.sigint);
    uv_signal_init(&a.loop, &a.sighup);
    a.sigterm.data = a.sigint.data = a.sighup.data = &a;
    uv_signal_start(&a.sighup, on_sighup, SIGHUP);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    if (a.worker >= 0)
        cg_supervisor_worker_ready();

    uv_run(&a.loop, UV_RUN_DEFAULT);

    /* The deadline timer is unreferenced, so the loop ran dry without it. */
    close_handle((uv_handle_t *)&a.hard_timer);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    cg_stream_finish(&a.stream);
    cg_registry_finish(&a.reg);
    if (uv_loop_close(&a.loop) == UV_EBUSY) {
        uv_walk(&a.loop, log_handle, NULL);
        cg_log(CG_LOG_WARN, "event loop closed with handles open", "pid=%d", (int)getpid());
    }
    cg_log(CG_LOG_INFO, "stopped", "pid=%d", (int)getpid());
    return 0;
}
