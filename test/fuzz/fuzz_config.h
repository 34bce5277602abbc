/* fuzz_config.h -- what the two config targets check after cg_config_load. */
#ifndef CG_FUZZ_CONFIG_H
#define CG_FUZZ_CONFIG_H

#include "fuzz_common.h"

static size_t fuzz_usage_bytes;

static void fuzz_usage_sink(const char *text)
{
    FUZZ_CHECK(text);
    fuzz_usage_bytes += strlen(text);
}

static void fuzz_config_check_ok(const struct cg_config *c)
{
    FUZZ_CHECK(FUZZ_TERMINATED(c->listen_host) && c->listen_host[0]);
    FUZZ_CHECK(c->listen_port >= 1 && c->listen_port <= 65535);
    FUZZ_CHECK(FUZZ_TERMINATED(c->redis_host) && c->redis_host[0]);
    FUZZ_CHECK(c->redis_port >= 1 && c->redis_port <= 65535 && c->redis_db <= 15);
    FUZZ_CHECK(c->nsentinels <= CG_CONFIG_SENTINELS_MAX);
    FUZZ_CHECK(!c->nsentinels == !c->redis_master[0]);
    FUZZ_CHECK(FUZZ_TERMINATED(c->redis_auth.user) && FUZZ_TERMINATED(c->redis_auth.password));
    FUZZ_CHECK(!c->redis_auth.user[0] || c->redis_auth.password[0]);
    FUZZ_CHECK(FUZZ_TERMINATED(c->web_root));
    FUZZ_CHECK(c->norigins <= CG_CONFIG_ORIGINS_MAX);
    for (uint32_t i = 0; i < c->norigins; i++)
        FUZZ_CHECK(FUZZ_TERMINATED(c->origins[i]) && !strncmp(c->origins[i], "http", 4));
    FUZZ_CHECK(FUZZ_TERMINATED(c->session_prefix) && FUZZ_TERMINATED(c->md_prefix));
    FUZZ_CHECK(FUZZ_TERMINATED(c->user_prefix) && FUZZ_TERMINATED(c->broadcast_channel));
    FUZZ_CHECK(FUZZ_TERMINATED(c->inbox_key) && FUZZ_TERMINATED(c->instruments_key));
    FUZZ_CHECK(FUZZ_TERMINATED(c->inbox_id) && c->inbox_id[0]);
    FUZZ_CHECK(c->rate_burst >= c->rate_limit / 10 + 1);
    FUZZ_CHECK(c->queue_conflate_frames <= c->queue_max_frames);
    FUZZ_CHECK(c->resume_ring <= c->queue_max_frames / 2);
    FUZZ_CHECK(c->idle_timeout_s > c->ping_s);
    FUZZ_CHECK(c->log_level >= 0 && c->log_level <= 3);
    FUZZ_CHECK(c->nintervals >= 1 && c->nintervals <= CG_CONFIG_INTERVALS_MAX);
    for (uint32_t i = 0; i < c->nintervals; i++) {
        FUZZ_CHECK(FUZZ_TERMINATED(c->interval_names[i]) && c->interval_names[i][0]);
        FUZZ_CHECK(c->interval_ms[i] >= 1000);
        FUZZ_CHECK(cg_config_interval(c, c->interval_names[i]) == (int)i);
        for (uint32_t j = 0; j < i; j++)
            FUZZ_CHECK(c->interval_ms[j] != c->interval_ms[i]);
    }
    FUZZ_CHECK(c->ncumulative <= CG_CONFIG_PREFIXES_MAX);
    for (uint32_t i = 0; i < c->ncumulative; i++)
        FUZZ_CHECK(FUZZ_TERMINATED(c->cumulative[i]) && c->cumulative[i][0]);
    FUZZ_CHECK(FUZZ_TERMINATED(c->price_field) && FUZZ_TERMINATED(c->volume_field));
    FUZZ_CHECK(FUZZ_TERMINATED(c->ts_field) && FUZZ_TERMINATED(c->bars_prefix));
    FUZZ_CHECK(c->bars_depth >= 1 && c->history_depth >= 1 && c->history_max >= 1);
    FUZZ_CHECK(c->record_bars == 0 || c->record_bars == 1);
    FUZZ_CHECK(c->dev_login == 0 || c->dev_login == 1);
    /* services: valid, distinct names; events only for configured ones */
    FUZZ_CHECK(c->nservices <= CG_CONFIG_SERVICES_MAX);
    for (uint32_t i = 0; i < c->nservices; i++) {
        FUZZ_CHECK(FUZZ_TERMINATED(c->services[i]));
        FUZZ_CHECK(cg_config_service_name_valid(c->services[i], strlen(c->services[i])));
        FUZZ_CHECK(cg_config_service(c, c->services[i], strlen(c->services[i])) == (int)i);
    }
    FUZZ_CHECK(c->nservices == 32 || (c->service_events >> c->nservices) == 0);
    FUZZ_CHECK(c->service_queue_max >= 1 && c->service_queue_max <= 100000000);
    FUZZ_CHECK(FUZZ_TERMINATED(c->service_prefix) && FUZZ_TERMINATED(c->reply_prefix));
    FUZZ_CHECK(FUZZ_TERMINATED(c->service_events_text));
}

/* Loads argv, checks the result, returns it. */
static enum cg_config_result fuzz_config_run(int argc, char **argv)
{
    struct cg_config cfg;
    char err[256];
    memset(err, 'X', sizeof(err));
    fuzz_usage_bytes = 0;
    enum cg_config_result r =
        cg_config_load(&cfg, argc, argv, "web", err, sizeof(err), fuzz_usage_sink);
    FUZZ_CHECK(FUZZ_TERMINATED(err));
    switch (r) {
    case CG_CONFIG_OK:
        FUZZ_CHECK(err[0] == 0);
        fuzz_config_check_ok(&cfg);
        break;
    case CG_CONFIG_HELP:
        FUZZ_CHECK(fuzz_usage_bytes > 0);
        break;
    case CG_CONFIG_ERROR:
        FUZZ_CHECK(err[0] != 0);
        for (const char *p = err; *p; p++)
            FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
        break;
    default:
        FUZZ_CHECK(!"unknown result");
    }
    return r;
}

#endif
