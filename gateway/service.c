/* service.c -- envelopes onto services' Redis lists, through one length-checking function. */
#include "service.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge.h"
#include "config.h"
#include "metrics.h"

#define FUNCTION_NAME "chartgate_service_push"

/* KEYS[1] the list, ARGV[1] the envelope, ARGV[2] the cap: -1 when the list is full, else the
 * list's new length. One step in Redis: no other push can come between the check and the push. */
static const char library[] =
    "#!lua name=chartgate_services\n"
    "redis.register_function('" FUNCTION_NAME "', function(keys, args)\n"
    "  if redis.call('LLEN', keys[1]) >= tonumber(args[2]) then return -1 end\n"
    "  return redis.call('RPUSH', keys[1], args[1])\n"
    "end)\n";

struct push {
    struct cg_service *s;
    uint32_t svc;
    int event; /* a connection event: no done, counted apart */
    cg_service_done_fn *done;
    void *arg;
};

void cg_service_init(struct cg_service *s, const struct cg_config *cfg, struct cg_bridge *bridge,
                     const char *epoch)
{
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->bridge = bridge;
    snprintf(s->epoch, sizeof(s->epoch), "%s", epoch);
    snprintf(s->reply_to, sizeof(s->reply_to), "%.180s%s", cfg->reply_prefix, epoch);
}

static void on_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct cg_service *s = priv;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        cg_log_limited(&s->log, 60000, CG_LOG_ERROR, "service function not loaded",
                       "reason=\"%.200s\" effect=\"every send is answered unavailable\"",
                       reply->str);
}

void cg_service_command_up(void *data)
{
    struct cg_service *s = data;
    if (!s->cfg->nservices)
        return;
    const char *argv[4] = {"FUNCTION", "LOAD", "REPLACE", library};
    size_t lens[4] = {8, 4, 7, sizeof(library) - 1};
    cg_bridge_command(s->bridge, on_loaded, s, 4, argv, lens);
}

void cg_service_conn_id(const struct cg_service *s, uint64_t conn, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s.%" PRIu64, s->epoch, conn);
}

static json_int_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void counted(struct push *p, int ok)
{
    if (p->event) {
        if (!ok)
            cg_metrics.service_events_dropped++;
    } else if (ok) {
        cg_metrics.service_sent[p->svc]++;
    } else {
        cg_metrics.service_unavailable[p->svc]++;
    }
}

static void on_pushed(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct push *p = priv;
    redisReply *reply = r;
    int ok = reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        cg_log_limited(&p->s->log, 10000, CG_LOG_WARN, "service push failed",
                       "service=%s reason=\"%.200s\"", p->s->cfg->services[p->svc], reply->str);
    counted(p, ok);
    if (p->done)
        p->done(p->arg, ok);
    free(p);
}

/* FCALLs the push of obj (stolen) onto service svc's list. Returns 0 (on_pushed follows) or -1
 * (counted here; no callback). */
static int push(struct cg_service *s, uint32_t svc, json_t *obj, int event,
                cg_service_done_fn *done, void *arg)
{
    char key[256], cap[24];
    struct push *p = malloc(sizeof(*p));
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(obj);
    int rc = -1;
    if (p && text) {
        *p = (struct push){s, svc, event, done, arg};
        size_t klen = (size_t)snprintf(key, sizeof(key), "%s%s", s->cfg->service_prefix,
                                       s->cfg->services[svc]);
        size_t clen = (size_t)snprintf(cap, sizeof(cap), "%u", s->cfg->service_queue_max);
        const char *argv[6] = {"FCALL", FUNCTION_NAME, "1", key, text, cap};
        size_t lens[6] = {5, sizeof(FUNCTION_NAME) - 1, 1, klen, strlen(text), clen};
        rc = cg_bridge_command(s->bridge, on_pushed, p, 6, argv, lens);
    }
    free(text);
    if (rc) {
        struct push q = {s, svc, event, NULL, NULL};
        counted(&q, 0);
        free(p);
    }
    return rc;
}

int cg_service_send(struct cg_service *s, uint32_t svc, const char *user, uint64_t conn, json_t *id,
                    json_t *data, cg_service_done_fn *done, void *arg)
{
    char cid[40];
    cg_service_conn_id(s, conn, cid, sizeof(cid));
    json_t *obj =
        json_pack("{s:s, s:s, s:s, s:O, s:I, s:s}", "service", s->cfg->services[svc], "user", user,
                  "conn", cid, "data", data, "ts", wall_ms(), "reply_to", s->reply_to);
    if (obj && id && json_object_set(obj, "id", id)) {
        json_decref(obj);
        obj = NULL;
    }
    return push(s, svc, obj, 0, done, arg);
}

void cg_service_event(struct cg_service *s, const char *event, const char *user, uint64_t conn)
{
    if (!s->cfg->service_events)
        return;
    char cid[40];
    cg_service_conn_id(s, conn, cid, sizeof(cid));
    for (uint32_t i = 0; i < s->cfg->nservices; i++) {
        if (!(s->cfg->service_events & (1u << i)))
            continue;
        json_t *obj = json_pack("{s:s, s:s, s:s, s:I}", "event", event, "user", user, "conn", cid,
                                "ts", wall_ms());
        push(s, i, obj, 1, NULL, NULL);
    }
}
