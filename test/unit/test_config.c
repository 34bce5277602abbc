/* test_config.c -- unit tests of settings: defaults, --config JSON file, flags, and
 * their error lines (gateway/config.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "log.h"

#define WEB "/srv/web"

static struct cg_config cfg;
static char err[512];
static char usage_text[16384];

static void usage_cb(const char *text)
{
    size_t n = strlen(usage_text);
    snprintf(usage_text + n, sizeof(usage_text) - n, "%s", text);
}

/* Runs cg_config_load on "chartgate" + the given arguments (NULL-terminated). On
 * CG_CONFIG_ERROR checks the error line's shape: "chartgate: ...", one line. */
static enum cg_config_result load_at(int line, ...)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = "chartgate";
    va_list ap;
    va_start(ap, line);
    for (char *a; argc < 63 && (a = va_arg(ap, char *));)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    memset(err, 'E', sizeof(err));
    err[sizeof(err) - 1] = 0;
    usage_text[0] = 0;
    enum cg_config_result rc = cg_config_load(&cfg, argc, argv, WEB, err, sizeof(err), usage_cb);
    if (rc == CG_CONFIG_ERROR) {
        check_(!strncmp(err, "chartgate: ", 11), __FILE__, line, "error starts \"chartgate: \"");
        check_(strlen(err) > 11, __FILE__, line, "error says something");
        if (!check_(strchr(err, '\n') == NULL && strchr(err, '\r') == NULL, __FILE__, line,
                    "error is one line")) {
            check_show_(err, strlen(err));
            fputc('\n', stderr);
        }
    } else {
        check_(err[0] == 0, __FILE__, line, "err empty on success");
    }
    return rc;
}

#define LOAD(...) load_at(__LINE__, __VA_ARGS__, (char *)NULL)
#define LOAD0() load_at(__LINE__, (char *)NULL)

/* Expects an error naming what: one line containing what. */
static void expect_error(enum cg_config_result rc, const char *what, int line)
{
    check_int_(rc, CG_CONFIG_ERROR, __FILE__, line, "rc", "CG_CONFIG_ERROR");
    if (!check_(strstr(err, what) != NULL, __FILE__, line, "error names the setting"))
        fprintf(stderr, "    wanted %s in: %s\n", what, err);
}

#define ERR(rc, what) expect_error((rc), (what), __LINE__)

static char tmpdir[64];
static int nfiles;

/* Writes text to a new temporary file and returns its path (static storage). */
static const char *file_with(const char *text)
{
    static char paths[32][128];
    char *p = paths[nfiles++ % 32];
    snprintf(p, 128, "%s/cfg%d.json", tmpdir, nfiles);
    FILE *f = fopen(p, "w");
    if (!f)
        return "/nonexistent";
    fputs(text, f);
    fclose(f);
    return p;
}

static void test_defaults(void)
{
    CHECK_INT(LOAD0(), CG_CONFIG_OK);
    CHECK_STR(cfg.listen_host, "127.0.0.1");
    CHECK_UINT(cfg.listen_port, 8080);
    CHECK_STR(cfg.redis_host, "127.0.0.1");
    CHECK_UINT(cfg.redis_port, 6379);
    CHECK_UINT(cfg.redis_db, 0);
    CHECK_STR(cfg.web_root, WEB);
    CHECK_UINT(cfg.norigins, 0);
    CHECK_STR(cfg.session_prefix, "session:");
    CHECK_STR(cfg.md_prefix, "md:");
    CHECK_STR(cfg.user_prefix, "user:");
    CHECK_STR(cfg.broadcast_channel, "broadcast");
    CHECK_STR(cfg.inbox_key, "chartgate:inbox");
    CHECK_STR(cfg.instruments_key, "md:instruments");
    CHECK_STR(cfg.inbox_id, "127.0.0.1:8080");
    CHECK_UINT(cfg.session_timeout_ms, 250);
    CHECK_UINT(cfg.session_cache_ms, 5000);
    CHECK_UINT(cfg.session_check_s, 10);
    CHECK_UINT(cfg.queue_max_frames, 1024);
    CHECK_UINT(cfg.queue_max_bytes, 1048576);
    CHECK_UINT(cfg.queue_conflate_frames, 64);
    CHECK_UINT(cfg.batch_max_bytes, 65536);
    CHECK_UINT(cfg.max_subscriptions, 200);
    CHECK_UINT(cfg.max_message_bytes, 65536);
    CHECK_UINT(cfg.rate_limit, 50);
    CHECK_UINT(cfg.rate_burst, 100);
    CHECK_UINT(cfg.ping_s, 25);
    CHECK_UINT(cfg.idle_timeout_s, 60);
    CHECK_UINT(cfg.max_payload_bytes, 1048576);
    CHECK_INT(cfg.log_level, CG_LOG_INFO);
    CHECK(cfg.max_instruments >= 1000);
    CHECK(cfg.redis_backoff_max_ms >= 1000 && cfg.redis_backoff_max_ms <= 10000);
    /* services (PROTOCOL.md §16): none unless named */
    CHECK_UINT(cfg.nservices, 0);
    CHECK_UINT(cfg.service_events, 0);
    CHECK_STR(cfg.service_prefix, "chartgate:service:");
    CHECK_UINT(cfg.service_queue_max, 10000);
    CHECK_STR(cfg.reply_prefix, "chartgate:reply:");

    char *argv[] = {"chartgate", NULL};
    CHECK_INT(cg_config_load(&cfg, 1, argv, NULL, err, sizeof(err), usage_cb), CG_CONFIG_OK);
    CHECK(cfg.web_root[0] != 0);
}

static void test_help(void)
{
    CHECK_INT(LOAD("--help"), CG_CONFIG_HELP);
    CHECK(strstr(usage_text, "usage: chartgate") != NULL);
    static const char *const flags[] = {
        "--listen",
        "--redis",
        "--config",
        "--web-root",
        "--origin",
        "--session-prefix",
        "--md-prefix",
        "--user-prefix",
        "--broadcast-channel",
        "--inbox-key",
        "--instruments-key",
        "--session-timeout-ms",
        "--session-cache-ms",
        "--session-check-s",
        "--queue-max-frames",
        "--queue-max-bytes",
        "--queue-conflate-frames",
        "--batch-max-bytes",
        "--max-subscriptions",
        "--max-message-bytes",
        "--rate-limit",
        "--rate-burst",
        "--ping-s",
        "--idle-timeout-s",
        "--max-payload-bytes",
        "--log-level",
        "--service",
        "--service-events",
        "--service-prefix",
        "--service-queue-max",
        "--reply-prefix",
        "--redis-password-file",
        "--redis-sentinel",
        "--redis-cluster",
        "--redis-master",
        "--sentinel-password-file",
        "--help",
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (!CHECK(strstr(usage_text, flags[i]) != NULL))
            fprintf(stderr, "    --help does not mention %s\n", flags[i]);
    /* --help wins wherever it stands, even after a bad flag. */
    CHECK_INT(LOAD("--listen", "0.0.0.0:1", "--help"), CG_CONFIG_HELP);
    CHECK_INT(LOAD("--bogus", "--help"), CG_CONFIG_HELP);
    CHECK_INT(LOAD("-h"), CG_CONFIG_HELP);
}

static void test_flags(void)
{
    CHECK_INT(LOAD("--listen", "0.0.0.0:9000", "--redis", "redis://r.example:6380/3", "--web-root",
                   "/tmp/w", "--session-prefix", "s:", "--md-prefix", "tick:", "--user-prefix",
                   "u:", "--broadcast-channel", "all", "--inbox-key", "ib", "--instruments-key",
                   "ik", "--inbox-id", "gw1", "--session-timeout-ms", "100", "--session-cache-ms",
                   "0", "--session-check-s", "5", "--queue-max-frames", "512", "--queue-max-bytes",
                   "65536", "--queue-conflate-frames", "32", "--batch-max-bytes", "4096",
                   "--max-subscriptions", "10", "--max-message-bytes", "1024", "--rate-limit", "5",
                   "--rate-burst", "10", "--ping-s", "10", "--idle-timeout-s", "30",
                   "--max-payload-bytes", "4096", "--log-level", "debug", "--allow-any-origin"),
              CG_CONFIG_OK);
    CHECK_STR(cfg.listen_host, "0.0.0.0");
    CHECK_UINT(cfg.listen_port, 9000);
    CHECK_STR(cfg.redis_host, "r.example");
    CHECK_UINT(cfg.redis_port, 6380);
    CHECK_UINT(cfg.redis_db, 3);
    CHECK_STR(cfg.web_root, "/tmp/w");
    CHECK_STR(cfg.session_prefix, "s:");
    CHECK_STR(cfg.md_prefix, "tick:");
    CHECK_STR(cfg.user_prefix, "u:");
    CHECK_STR(cfg.broadcast_channel, "all");
    CHECK_STR(cfg.inbox_key, "ib");
    CHECK_STR(cfg.instruments_key, "ik");
    CHECK_STR(cfg.inbox_id, "gw1");
    CHECK_UINT(cfg.session_timeout_ms, 100);
    CHECK_UINT(cfg.session_cache_ms, 0);
    CHECK_UINT(cfg.session_check_s, 5);
    CHECK_UINT(cfg.queue_max_frames, 512);
    CHECK_UINT(cfg.queue_max_bytes, 65536);
    CHECK_UINT(cfg.queue_conflate_frames, 32);
    CHECK_UINT(cfg.batch_max_bytes, 4096);
    CHECK_UINT(cfg.max_subscriptions, 10);
    CHECK_UINT(cfg.max_message_bytes, 1024);
    CHECK_UINT(cfg.rate_limit, 5);
    CHECK_UINT(cfg.rate_burst, 10);
    CHECK_UINT(cfg.ping_s, 10);
    CHECK_UINT(cfg.idle_timeout_s, 30);
    CHECK_UINT(cfg.max_payload_bytes, 4096);
    CHECK_INT(cfg.log_level, CG_LOG_DEBUG);

    /* --flag=value form. */
    CHECK_INT(LOAD("--listen=[::1]:8081", "--ping-s=5", "--log-level=warn"), CG_CONFIG_OK);
    CHECK_STR(cfg.listen_host, "::1");
    CHECK_UINT(cfg.listen_port, 8081);
    CHECK_UINT(cfg.ping_s, 5);
    CHECK_INT(cfg.log_level, CG_LOG_WARN);
    /* The inbox id defaults to the listen address. */
    CHECK_STR(cfg.inbox_id, "::1:8081");
    CHECK_INT(LOAD("--listen", "10.0.0.7:9999", "--origin", "https://app.example"), CG_CONFIG_OK);
    CHECK_STR(cfg.inbox_id, "10.0.0.7:9999");
    /* Beyond loopback an Origin allowlist is required, unless waived or in dev mode. */
    CHECK_INT(LOAD("--listen", "10.0.0.7:9999"), CG_CONFIG_ERROR);
    CHECK(strstr(err, "chartgate: --origin: required when listening beyond loopback") == err);
    CHECK_INT(LOAD("--listen", "10.0.0.7:9999", "--allow-any-origin"), CG_CONFIG_OK);
    CHECK_INT(cfg.allow_any_origin, 1);
    CHECK_INT(LOAD("--listen", "0.0.0.0:9999", "--dev-login"), CG_CONFIG_OK);
    CHECK_INT(LOAD("--listen", "127.0.0.2:9999"), CG_CONFIG_OK);
    CHECK_INT(LOAD("--listen", "localhost:9999"), CG_CONFIG_OK);
    /* Abuse limits and trusted proxies. */
    CHECK_INT(LOAD("--ping-s", "25"), CG_CONFIG_OK);
    CHECK_UINT(cfg.max_conns_per_ip, 1000);
    CHECK_UINT(cfg.handshake_rate_per_ip, 200);
    CHECK_UINT(cfg.max_sockets_per_user, 100);
    CHECK_UINT(cfg.ntrusted_proxies, 0);
    CHECK_INT(
        LOAD("--trusted-proxy", "127.0.0.1", "--trusted-proxy", "::1", "--max-conns-per-ip", "0"),
        CG_CONFIG_OK);
    CHECK_UINT(cfg.ntrusted_proxies, 2);
    CHECK_STR(cfg.trusted_proxies[1], "::1");
    CHECK_UINT(cfg.max_conns_per_ip, 0);
    CHECK_INT(LOAD("--trusted-proxy", "nginx.local"), CG_CONFIG_ERROR);
    CHECK(strstr(err, "chartgate: --trusted-proxy: expected an IP address") == err);
    /* The last of a repeated flag wins. */
    CHECK_INT(LOAD("--ping-s", "5", "--ping-s", "7"), CG_CONFIG_OK);
    CHECK_UINT(cfg.ping_s, 7);
    /* Conflation cannot start beyond the hard bound. */
    CHECK_INT(LOAD("--queue-max-frames", "10", "--queue-conflate-frames", "64"), CG_CONFIG_OK);
    CHECK(cfg.queue_conflate_frames <= 10);
    /* Bounds are inclusive. */
    CHECK_INT(LOAD("--ping-s", "1", "--idle-timeout-s", "2"), CG_CONFIG_OK);
    CHECK_INT(LOAD("--ping-s", "3600", "--idle-timeout-s", "7200"), CG_CONFIG_OK);
    CHECK_INT(LOAD("--queue-max-frames", "4"), CG_CONFIG_OK);
    CHECK_UINT(cfg.queue_max_frames, 4);
    CHECK_INT(LOAD("--log-level", "error"), CG_CONFIG_OK);
    CHECK_INT(cfg.log_level, CG_LOG_ERROR);
    CHECK_INT(LOAD("--log-level", "info"), CG_CONFIG_OK);
    CHECK_INT(cfg.log_level, CG_LOG_INFO);
}

static void test_origins_flags(void)
{
    CHECK_INT(LOAD("--origin", "https://charts.example.com", "--origin", "http://localhost:8080"),
              CG_CONFIG_OK);
    CHECK_UINT(cfg.norigins, 2);
    CHECK_STR(cfg.origins[0], "https://charts.example.com");
    CHECK_STR(cfg.origins[1], "http://localhost:8080");
    ERR(LOAD("--origin", "ftp://x"), "--origin");
    ERR(LOAD("--origin", "charts.example.com"), "--origin");
    /* At most 32. */
    char *argv[80];
    int argc = 0;
    static char vals[40][32];
    argv[argc++] = "chartgate";
    for (int i = 0; i < 33; i++) {
        snprintf(vals[i], sizeof(vals[i]), "http://h%d", i);
        argv[argc++] = "--origin";
        argv[argc++] = vals[i];
    }
    err[0] = 0;
    CHECK_INT(cg_config_load(&cfg, 1 + 2 * 32, argv, WEB, err, sizeof(err), usage_cb),
              CG_CONFIG_OK);
    CHECK_UINT(cfg.norigins, 32);
    CHECK_INT(cg_config_load(&cfg, argc, argv, WEB, err, sizeof(err), usage_cb), CG_CONFIG_ERROR);
    CHECK(strstr(err, "--origin") != NULL);
}

static void test_flag_errors(void)
{
    ERR(LOAD("--bogus", "1"), "--bogus");
    ERR(LOAD("--bogus=1"), "--bogus");
    ERR(LOAD("listen"), "listen"); /* not a flag */
    ERR(LOAD("-p", "80"), "-p");
    ERR(LOAD("--ping-s"), "--ping-s"); /* missing value */
    ERR(LOAD("--ping-s", "abc"), "--ping-s");
    ERR(LOAD("--ping-s", ""), "--ping-s");
    ERR(LOAD("--ping-s", "-1"), "--ping-s");
    ERR(LOAD("--ping-s", "0"), "--ping-s");    /* below min 1 */
    ERR(LOAD("--ping-s", "3601"), "--ping-s"); /* above max 3600 */
    ERR(LOAD("--ping-s", "10s"), "--ping-s");
    ERR(LOAD("--ping-s", "1.5"), "--ping-s");
    ERR(LOAD("--ping-s", "4294967297"), "--ping-s"); /* 2^32 + 1 must not wrap to 1 */
    ERR(LOAD("--ping-s", "99999999999999999999999"), "--ping-s");
    ERR(LOAD("--queue-max-frames", "3"), "--queue-max-frames");
    ERR(LOAD("--session-timeout-ms", "9"), "--session-timeout-ms");
    ERR(LOAD("--max-subscriptions", "0"), "--max-subscriptions");
    ERR(LOAD("--log-level", "verbose"), "--log-level");
    ERR(LOAD("--log-level", "INFO"), "--log-level");
    ERR(LOAD("--listen", "8080"), "--listen");
    ERR(LOAD("--listen", "host:"), "--listen");
    ERR(LOAD("--listen", ":8080"), "--listen");
    ERR(LOAD("--listen", "host:0"), "--listen");
    ERR(LOAD("--listen", "host:65536"), "--listen");
    ERR(LOAD("--redis", "http://h:6379"), "--redis");
    ERR(LOAD("--redis", "redis://h:6379/16"), "--redis");
    ERR(LOAD("--redis", "h:6379"), "--redis");
    ERR(LOAD("--config"), "--config");
    /* Too long for the buffer. */
    char longv[700];
    memset(longv, 'w', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = 0;
    ERR(LOAD("--web-root", longv), "--web-root");
    ERR(LOAD("--session-prefix", longv), "--session-prefix");
    /* Idle timeout must exceed the ping interval. */
    ERR(LOAD("--ping-s", "30", "--idle-timeout-s", "30"), "idle");
    ERR(LOAD("--ping-s", "30", "--idle-timeout-s", "29"), "idle");
    ERR(LOAD("--ping-s", "70"), "idle"); /* against the default 60 s */
    CHECK_INT(LOAD("--ping-s", "30", "--idle-timeout-s", "31"), CG_CONFIG_OK);
    /* A very long unknown flag still gives a bounded single line. */
    char longf[400];
    memcpy(longf, "--", 2);
    memset(longf + 2, 'f', sizeof(longf) - 3);
    longf[sizeof(longf) - 1] = 0;
    ERR(LOAD(longf, "1"), "--fff");
    CHECK(strlen(err) < 200);
}

/* "Exactly one line on stderr": values (and keys) holding a line break must not
 * break the error line. */
static void test_error_single_line(void)
{
    ERR(LOAD("--ping-s", "1\n2"), "--ping-s");
    ERR(LOAD("--log-level", "info\nlevel=error"), "--log-level");
    ERR(LOAD("--listen", "bad\nhost"), "--listen");
    ERR(LOAD("--bo\ngus", "1"), "--bo");
    ERR(LOAD("--config", file_with("{\"bad\\nkey\":1}")), "key");
    ERR(LOAD("--config", file_with("{\"ping_s\":\"5\\n\"}")), "ping_s");
}

static void test_file(void)
{
    const char *p = file_with("{\"listen\":\"127.0.0.2:9001\",\"redis\":\"redis://rh:7000/2\","
                              "\"queue_max_frames\":512,\"origins\":[\"http://a\",\"https://b\"],"
                              "\"md_prefix\":\"x:\",\"log_level\":\"debug\","
                              "\"session_cache_ms\":0,\"web_root\":\"/w\","
                              "\"idle_timeout_s\":90,\"inbox_key\":\"in\"}");
    CHECK_INT(LOAD("--config", p), CG_CONFIG_OK);
    CHECK_STR(cfg.listen_host, "127.0.0.2");
    CHECK_UINT(cfg.listen_port, 9001);
    CHECK_STR(cfg.redis_host, "rh");
    CHECK_UINT(cfg.redis_port, 7000);
    CHECK_UINT(cfg.redis_db, 2);
    CHECK_UINT(cfg.queue_max_frames, 512);
    CHECK_UINT(cfg.norigins, 2);
    CHECK_STR(cfg.origins[0], "http://a");
    CHECK_STR(cfg.origins[1], "https://b");
    CHECK_STR(cfg.md_prefix, "x:");
    CHECK_INT(cfg.log_level, CG_LOG_DEBUG);
    CHECK_UINT(cfg.session_cache_ms, 0);
    CHECK_STR(cfg.web_root, "/w");
    CHECK_UINT(cfg.idle_timeout_s, 90);
    CHECK_STR(cfg.inbox_key, "in");
    CHECK_STR(cfg.inbox_id, "127.0.0.2:9001");
    /* Untouched settings keep their defaults. */
    CHECK_UINT(cfg.ping_s, 25);
    CHECK_STR(cfg.session_prefix, "session:");

    /* --config=FILE form. */
    char arg[200];
    snprintf(arg, sizeof(arg), "--config=%s", p);
    CHECK_INT(LOAD(arg), CG_CONFIG_OK);
    CHECK_UINT(cfg.queue_max_frames, 512);

    /* Flags override the file, whether they come before or after --config. */
    CHECK_INT(LOAD("--queue-max-frames", "100", "--config", p, "--listen", "0.0.0.0:1"),
              CG_CONFIG_OK);
    CHECK_UINT(cfg.queue_max_frames, 100);
    CHECK_STR(cfg.listen_host, "0.0.0.0");
    CHECK_UINT(cfg.listen_port, 1);
    CHECK_STR(cfg.md_prefix, "x:"); /* from the file */
    CHECK_UINT(cfg.norigins, 2);

    /* --origin flags replace the file's origins (they do not add to them). */
    CHECK_INT(LOAD("--config", p, "--origin", "http://c", "--origin", "http://d"), CG_CONFIG_OK);
    CHECK_UINT(cfg.norigins, 2);
    CHECK_STR(cfg.origins[0], "http://c");
    CHECK_STR(cfg.origins[1], "http://d");
    CHECK_INT(LOAD("--origin", "http://e", "--config", p), CG_CONFIG_OK);
    CHECK_UINT(cfg.norigins, 1);
    CHECK_STR(cfg.origins[0], "http://e");

    /* A single origin as a string; an empty object is fine. */
    CHECK_INT(LOAD("--config", file_with("{\"origin\":\"https://x\"}")), CG_CONFIG_OK);
    CHECK_UINT(cfg.norigins, 1);
    CHECK_STR(cfg.origins[0], "https://x");
    CHECK_INT(LOAD("--config", file_with("{}")), CG_CONFIG_OK);
    CHECK_UINT(cfg.queue_max_frames, 1024);
    /* Flag spelling with '-' is also accepted as a key. */
    CHECK_INT(LOAD("--config", file_with("{\"queue-max-frames\":64}")), CG_CONFIG_OK);
    CHECK_UINT(cfg.queue_max_frames, 64);
}

static void test_file_errors(void)
{
    const char *p;
    p = file_with("{\"bogus_key\":1}");
    ERR(LOAD("--config", p), "bogus_key");
    CHECK(strstr(err, p) != NULL); /* "FILE: key" */
    p = file_with("{\"ping_s\":-1}");
    ERR(LOAD("--config", p), "ping_s");
    CHECK(strstr(err, p) != NULL);
    ERR(LOAD("--config", file_with("{\"ping_s\":\"5\"}")), "ping_s");
    ERR(LOAD("--config", file_with("{\"ping_s\":1.5}")), "ping_s");
    ERR(LOAD("--config", file_with("{\"ping_s\":true}")), "ping_s");
    ERR(LOAD("--config", file_with("{\"ping_s\":0}")), "ping_s");
    ERR(LOAD("--config", file_with("{\"ping_s\":3601}")), "ping_s");
    ERR(LOAD("--config", file_with("{\"ping_s\":4294967297}")), "ping_s");
    ERR(LOAD("--config", file_with("{\"queue_max_bytes\":100}")), "queue_max_bytes");
    ERR(LOAD("--config", file_with("{\"listen\":8080}")), "listen");
    ERR(LOAD("--config", file_with("{\"listen\":\"nohostport\"}")), "listen");
    ERR(LOAD("--config", file_with("{\"redis\":\"redis://h:1/99\"}")), "redis");
    ERR(LOAD("--config", file_with("{\"log_level\":\"loud\"}")), "log_level");
    ERR(LOAD("--config", file_with("{\"origins\":[\"http://a\",5]}")), "origins");
    ERR(LOAD("--config", file_with("{\"origins\":5}")), "origins");
    ERR(LOAD("--config", file_with("{\"origins\":[\"gopher://a\"]}")), "origins");
    ERR(LOAD("--config", file_with("{\"md_prefix\":null}")), "md_prefix");
    ERR(LOAD("--config", file_with("{\"ping_s\":5,\"ping_s\":6}")), "chartgate: ");
    p = file_with("{\"ping_s\":");
    ERR(LOAD("--config", p), p);
    p = file_with("[1,2]");
    ERR(LOAD("--config", p), p);
    p = file_with("");
    ERR(LOAD("--config", p), p);
    ERR(LOAD("--config", "/nonexistent/chartgate.json"), "/nonexistent/chartgate.json");
    /* The file's idle timeout against its ping interval. */
    ERR(LOAD("--config", file_with("{\"ping_s\":60,\"idle_timeout_s\":60}")), "idle");
    /* The file is checked even when a flag sets the same setting. */
    ERR(LOAD("--config", file_with("{\"ping_s\":0}"), "--ping-s", "5"), "ping_s");
}

/* The services of cfg as "a,b,c". */
static const char *services_text(void)
{
    static char buf[4096];
    buf[0] = 0;
    for (uint32_t i = 0; i < cfg.nservices; i++) {
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "", cfg.services[i]);
    }
    return buf;
}

static void test_services_flags(void)
{
    /* Repeatable, in order; a repeated name counts once. */
    CHECK_INT(LOAD("--service", "alerts", "--service", "orders.v2", "--service", "alerts",
                   "--service=A-b_9"),
              CG_CONFIG_OK);
    CHECK_UINT(cfg.nservices, 3);
    CHECK_STR(services_text(), "alerts,orders.v2,A-b_9");
    CHECK_INT(cg_config_service(&cfg, "orders.v2", 9), 1);
    CHECK_INT(cg_config_service(&cfg, "A-b_9", 5), 2);
    CHECK_INT(cg_config_service(&cfg, "orders", 6), -1);
    CHECK_INT(cg_config_service(&cfg, "alertsX", 6), 0); /* only len bytes */
    CHECK_INT(cg_config_service(&cfg, "alerts", 5), -1);
    CHECK_INT(cg_config_service(&cfg, "a-b_9", 5), -1); /* case-sensitive */
    CHECK_UINT(cfg.service_events, 0);

    /* The other settings. */
    CHECK_INT(LOAD("--service", "s", "--service-prefix", "svc:", "--service-queue-max", "5",
                   "--reply-prefix", "rep:"),
              CG_CONFIG_OK);
    CHECK_STR(cfg.service_prefix, "svc:");
    CHECK_UINT(cfg.service_queue_max, 5);
    CHECK_STR(cfg.reply_prefix, "rep:");
    CHECK_INT(LOAD("--service-queue-max", "1"), CG_CONFIG_OK);
    CHECK_UINT(cfg.service_queue_max, 1);
    CHECK_INT(LOAD("--service-queue-max", "100000000"), CG_CONFIG_OK);
    CHECK_UINT(cfg.service_queue_max, 100000000);
    ERR(LOAD("--service-queue-max", "0"), "--service-queue-max");
    ERR(LOAD("--service-queue-max", "100000001"), "--service-queue-max");
    ERR(LOAD("--service-queue-max", "-1"), "--service-queue-max");

    /* Names: [A-Za-z0-9._-], 1 to 64 characters. */
    static const char *const bad[] = {"",   "a b",      "a/b",  "a,b", "a:b",
                                      "a*", "\xc3\xa9", "a\"b", "a\nb"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ERR(LOAD("--service", "ok", "--service", bad[i]), "--service");
    char name[80];
    memset(name, 'n', 64);
    name[64] = 0;
    CHECK_INT(LOAD("--service", name), CG_CONFIG_OK);
    CHECK_STR(cfg.services[0], name);
    name[64] = 'n';
    name[65] = 0;
    ERR(LOAD("--service", name), "--service");
    ERR(LOAD("--service"), "--service"); /* missing value */

    /* At most 32. */
    char *argv[80];
    static char vals[40][16];
    int argc = 0;
    argv[argc++] = "chartgate";
    for (int i = 0; i < 33; i++) {
        snprintf(vals[i], sizeof(vals[i]), "svc%d", i);
        argv[argc++] = "--service";
        argv[argc++] = vals[i];
    }
    err[0] = 0;
    CHECK_INT(cg_config_load(&cfg, 1 + 2 * 32, argv, WEB, err, sizeof(err), usage_cb),
              CG_CONFIG_OK);
    CHECK_UINT(cfg.nservices, 32);
    CHECK_STR(cfg.services[31], "svc31");
    CHECK_INT(cg_config_load(&cfg, argc, argv, WEB, err, sizeof(err), usage_cb), CG_CONFIG_ERROR);
    CHECK(strstr(err, "--service") != NULL);
    CHECK(strstr(err, "svc32") != NULL);
    /* A repeated name is ignored, also when 32 services are already configured. */
    argv[1 + 2 * 32 + 1] = vals[0];
    CHECK_INT(cg_config_load(&cfg, argc, argv, WEB, err, sizeof(err), usage_cb), CG_CONFIG_OK);
    CHECK_UINT(cfg.nservices, 32);
    argv[1 + 2 * 32 + 1] = vals[32];

    /* --service-events names services given with --service (in any order), else an error
     * line naming the stray name. */
    CHECK_INT(LOAD("--service", "alerts", "--service", "orders", "--service-events", "orders"),
              CG_CONFIG_OK);
    CHECK_UINT(cfg.service_events, 2u);
    CHECK_INT(LOAD("--service-events", "orders", "--service-events", "alerts", "--service",
                   "alerts", "--service", "orders", "--service-events", "orders"),
              CG_CONFIG_OK);
    CHECK_UINT(cfg.service_events, 3u);
    /* the bit is the service's index: the 32nd service's is the top bit */
    argv[argc++] = "--service-events";
    argv[argc++] = vals[31];
    memmove(argv + 1 + 2 * 32, argv + 1 + 2 * 33, 2 * sizeof(char *)); /* drop svc32 */
    CHECK_INT(cg_config_load(&cfg, argc - 2, argv, WEB, err, sizeof(err), usage_cb), CG_CONFIG_OK);
    CHECK_UINT(cfg.nservices, 32);
    CHECK_UINT(cfg.service_events, 1u << 31);
    ERR(LOAD("--service", "alerts", "--service-events", "orders"), "--service-events");
    CHECK(strstr(err, "orders") != NULL);
    ERR(LOAD("--service-events", "alerts"), "--service-events");
    CHECK(strstr(err, "alerts") != NULL);
    ERR(LOAD("--service", "alerts", "--service-events", "alerts", "--service-events", "alertz"),
        "alertz");
    CHECK(strstr(err, "--service-events") != NULL);
    ERR(LOAD("--service", "alerts", "--service-events", "a b"), "--service-events");
    ERR(LOAD("--service", "alerts", "--service-events", "alerts,alerts"), "--service-events");
    ERR(LOAD("--service", "alerts", "--service-events", ""), "--service-events");
}

static void test_services_file(void)
{
    const char *p = file_with("{\"services\":[\"alerts\",\"orders\",\"alerts\"],"
                              "\"service_events\":[\"orders\"],\"service_prefix\":\"q:\","
                              "\"service_queue_max\":7,\"reply_prefix\":\"r:\","
                              "\"origins\":[\"http://a\",\"https://b\"]}");
    CHECK_INT(LOAD("--config", p), CG_CONFIG_OK);
    CHECK_STR(services_text(), "alerts,orders");
    CHECK_UINT(cfg.service_events, 2u);
    CHECK_STR(cfg.service_prefix, "q:");
    CHECK_UINT(cfg.service_queue_max, 7);
    CHECK_STR(cfg.reply_prefix, "r:");
    CHECK_UINT(cfg.norigins, 2);
    CHECK_STR(cfg.origins[1], "https://b");

    /* The flag's own name works as a key too, with one string or an array; '-' or '_'. */
    CHECK_INT(LOAD("--config", file_with("{\"service\":\"alerts\",\"service-events\":\"alerts\"}")),
              CG_CONFIG_OK);
    CHECK_STR(services_text(), "alerts");
    CHECK_UINT(cfg.service_events, 1u);
    CHECK_INT(LOAD("--config", file_with("{\"services\":\"alerts\"}")), CG_CONFIG_OK);
    CHECK_STR(services_text(), "alerts");
    CHECK_INT(LOAD("--config", file_with("{\"service\":[\"a\",\"b\"],\"trusted_proxy\":["
                                         "\"127.0.0.1\",\"::1\"]}")),
              CG_CONFIG_OK);
    CHECK_STR(services_text(), "a,b");
    CHECK_UINT(cfg.ntrusted_proxies, 2);
    CHECK_INT(LOAD("--config", file_with("{\"services\":[]}")), CG_CONFIG_OK);
    CHECK_UINT(cfg.nservices, 0);

    /* Flags replace the file's list (they do not add to it), list by list. */
    CHECK_INT(LOAD("--config", p, "--service", "orders"), CG_CONFIG_OK);
    CHECK_STR(services_text(), "orders"); /* file's events: orders, index 0 now */
    CHECK_UINT(cfg.service_events, 1u);
    CHECK_UINT(cfg.norigins, 2); /* untouched: no --origin */
    CHECK_INT(LOAD("--service", "x", "--service-events", "x", "--config", p), CG_CONFIG_OK);
    CHECK_STR(services_text(), "x");
    CHECK_UINT(cfg.service_events, 1u);
    CHECK_INT(LOAD("--config", p, "--service-events", "alerts"), CG_CONFIG_OK);
    CHECK_STR(services_text(), "alerts,orders");
    CHECK_UINT(cfg.service_events, 1u);
    CHECK_INT(LOAD("--config", p, "--origin", "http://c"), CG_CONFIG_OK);
    CHECK_UINT(cfg.norigins, 1);
    CHECK_STR(cfg.origins[0], "http://c");
    CHECK_STR(services_text(), "alerts,orders");
    /* ...so the file's events may name a service the flags dropped: an error. */
    ERR(LOAD("--config", p, "--service", "alerts"), "--service-events");
    CHECK(strstr(err, "orders") != NULL);

    /* Errors name the key. */
    ERR(LOAD("--config", file_with("{\"services\":[\"alerts\",5]}")), "services");
    ERR(LOAD("--config", file_with("{\"services\":5}")), "services");
    ERR(LOAD("--config", file_with("{\"services\":null}")), "services");
    ERR(LOAD("--config", file_with("{\"services\":{\"a\":1}}")), "services");
    ERR(LOAD("--config", file_with("{\"services\":[\"a b\"]}")), "services");
    ERR(LOAD("--config", file_with("{\"service_events\":[\"x\"]}")), "--service-events");
    CHECK(strstr(err, "\"x\"") != NULL);
    ERR(LOAD("--config", file_with("{\"service_events\":[[\"x\"]]}")), "service_events");
    ERR(LOAD("--config", file_with("{\"service_queue_max\":0}")), "service_queue_max");
    ERR(LOAD("--config", file_with("{\"service_queue_max\":\"5\"}")), "service_queue_max");
    ERR(LOAD("--config", file_with("{\"reply_prefix\":5}")), "reply_prefix");
    /* Only repeatable settings have a plural key. */
    ERR(LOAD("--config", file_with("{\"md_prefixs\":\"x:\"}")), "md_prefixs");
    CHECK(strstr(err, "unknown setting") != NULL);
    ERR(LOAD("--config", file_with("{\"service_prefixs\":\"x:\"}")), "service_prefixs");
    ERR(LOAD("--config", file_with("{\"s\":1}")), "\"s\"");
    /* More than 32 in a file. */
    char buf[2048];
    int n = snprintf(buf, sizeof(buf), "{\"services\":[");
    for (int i = 0; i < 33; i++)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s\"svc%d\"", i ? "," : "", i);
    snprintf(buf + n, sizeof(buf) - (size_t)n, "]}");
    ERR(LOAD("--config", file_with(buf)), "services");
}

static void test_hostport(void)
{
    char host[128];
    uint32_t port = 0;
    CHECK_INT(cg_config_parse_hostport("127.0.0.1:8080", host, sizeof(host), &port), 0);
    CHECK_STR(host, "127.0.0.1");
    CHECK_UINT(port, 8080);
    CHECK_INT(cg_config_parse_hostport("example.com:1", host, sizeof(host), &port), 0);
    CHECK_STR(host, "example.com");
    CHECK_UINT(port, 1);
    CHECK_INT(cg_config_parse_hostport("h:65535", host, sizeof(host), &port), 0);
    CHECK_UINT(port, 65535);
    CHECK_INT(cg_config_parse_hostport("[::1]:8080", host, sizeof(host), &port), 0);
    CHECK_STR(host, "::1");
    CHECK_UINT(port, 8080);
    CHECK_INT(cg_config_parse_hostport("[fe80::1%eth0]:443", host, sizeof(host), &port), 0);
    CHECK_STR(host, "fe80::1%eth0");
    CHECK_UINT(port, 443);
    CHECK_INT(cg_config_parse_hostport("h:65536", host, sizeof(host), &port), -1);
    CHECK_INT(cg_config_parse_hostport("h:0", host, sizeof(host), &port), -1);
    CHECK_INT(cg_config_parse_hostport("h:", host, sizeof(host), &port), -1);
    CHECK_INT(cg_config_parse_hostport(":80", host, sizeof(host), &port), -1);
    CHECK_INT(cg_config_parse_hostport("h", host, sizeof(host), &port), -1);
    CHECK_INT(cg_config_parse_hostport("", host, sizeof(host), &port), -1);
    CHECK_INT(cg_config_parse_hostport("h:80x", host, sizeof(host), &port), -1);
    CHECK_INT(cg_config_parse_hostport("h:-1", host, sizeof(host), &port), -1);
    CHECK_INT(cg_config_parse_hostport("[]:80", host, sizeof(host), &port), -1);
    CHECK_INT(cg_config_parse_hostport("h:99999999999999999999", host, sizeof(host), &port), -1);
    /* The host must fit (hostsz includes the NUL). */
    char small[4];
    CHECK_INT(cg_config_parse_hostport("abc:1", small, sizeof(small), &port), 0);
    CHECK_STR(small, "abc");
    CHECK_INT(cg_config_parse_hostport("abcd:1", small, sizeof(small), &port), -1);
}

static void test_redis_url(void)
{
    char host[128];
    uint32_t port = 0, db = 99;
    CHECK_INT(cg_config_parse_redis_url("redis://h", host, sizeof(host), &port, &db, NULL), 0);
    CHECK_STR(host, "h");
    CHECK_UINT(port, 6379);
    CHECK_UINT(db, 0);
    db = 99;
    CHECK_INT(cg_config_parse_redis_url("redis://h:7000", host, sizeof(host), &port, &db, NULL), 0);
    CHECK_STR(host, "h");
    CHECK_UINT(port, 7000);
    CHECK_UINT(db, 0);
    CHECK_INT(
        cg_config_parse_redis_url("redis://10.1.2.3:7001/3", host, sizeof(host), &port, &db, NULL),
        0);
    CHECK_STR(host, "10.1.2.3");
    CHECK_UINT(port, 7001);
    CHECK_UINT(db, 3);
    CHECK_INT(cg_config_parse_redis_url("redis://h/15", host, sizeof(host), &port, &db, NULL), 0);
    CHECK_UINT(port, 6379);
    CHECK_UINT(db, 15);
    CHECK_INT(cg_config_parse_redis_url("redis://h:1/", host, sizeof(host), &port, &db, NULL), 0);
    CHECK_UINT(db, 0);
    CHECK_INT(
        cg_config_parse_redis_url("redis://[::1]:6380/1", host, sizeof(host), &port, &db, NULL), 0);
    CHECK_STR(host, "::1");
    CHECK_UINT(port, 6380);
    CHECK_UINT(db, 1);
    CHECK_INT(cg_config_parse_redis_url("redis://h:1/16", host, sizeof(host), &port, &db, NULL),
              -1);
    CHECK_INT(cg_config_parse_redis_url("redis://h:1/-1", host, sizeof(host), &port, &db, NULL),
              -1);
    CHECK_INT(cg_config_parse_redis_url("redis://h:1/x", host, sizeof(host), &port, &db, NULL), -1);
    CHECK_INT(cg_config_parse_redis_url("redis://h:1/3/4", host, sizeof(host), &port, &db, NULL),
              -1);
    CHECK_INT(cg_config_parse_redis_url("rediss://h:1", host, sizeof(host), &port, &db, NULL), -1);
    CHECK_INT(cg_config_parse_redis_url("http://h:1", host, sizeof(host), &port, &db, NULL), -1);
    CHECK_INT(cg_config_parse_redis_url("REDIS://h:1", host, sizeof(host), &port, &db, NULL), -1);
    CHECK_INT(cg_config_parse_redis_url("h:6379", host, sizeof(host), &port, &db, NULL), -1);
    CHECK_INT(cg_config_parse_redis_url("redis://", host, sizeof(host), &port, &db, NULL), -1);
    CHECK_INT(cg_config_parse_redis_url("redis://:6379", host, sizeof(host), &port, &db, NULL), -1);
    CHECK_INT(cg_config_parse_redis_url("redis://h:0", host, sizeof(host), &port, &db, NULL), -1);
    CHECK_INT(
        cg_config_parse_redis_url("redis://u:pw@h:6379", host, sizeof(host), &port, &db, NULL), -1);
    /* An IPv6 literal without a port gets the default port, like any other host. */
    CHECK_INT(cg_config_parse_redis_url("redis://[::1]", host, sizeof(host), &port, &db, NULL), 0);
    CHECK_STR(host, "::1");
    CHECK_UINT(port, 6379);
    CHECK_INT(cg_config_parse_redis_url("redis://[::1]/2", host, sizeof(host), &port, &db, NULL),
              0);
    CHECK_STR(host, "::1");
    CHECK_UINT(db, 2);
}

/* Writes text (as is, no newline added) to a new temporary file; returns its path. */
static const char *secret_with(const char *text)
{
    static char paths[16][128];
    static int n;
    char *p = paths[n % 16];
    snprintf(p, 128, "%s/secret%d", tmpdir, n++);
    FILE *f = fopen(p, "w");
    if (!f)
        return "/nonexistent";
    fputs(text, f);
    fclose(f);
    return p;
}

static void test_redis_credentials(void)
{
    char host[128];
    uint32_t port = 0, db = 0;
    struct cg_config_credentials c;
    memset(&c, 'x', sizeof(c));
    /* No "@": both empty. */
    CHECK_INT(cg_config_parse_redis_url("redis://h:1/2", host, sizeof(host), &port, &db, &c), 0);
    CHECK_STR(c.user, "");
    CHECK_STR(c.password, "");
    CHECK_INT(
        cg_config_parse_redis_url("redis://gw:pw@h:7000/3", host, sizeof(host), &port, &db, &c), 0);
    CHECK_STR(c.user, "gw");
    CHECK_STR(c.password, "pw");
    CHECK_STR(host, "h");
    CHECK_UINT(port, 7000);
    CHECK_UINT(db, 3);
    /* A password alone (the default user), percent-decoding, ':' and '@' inside. */
    CHECK_INT(cg_config_parse_redis_url("redis://:s%40cr%3At@[::1]:6380", host, sizeof(host), &port,
                                        &db, &c),
              0);
    CHECK_STR(c.user, "");
    CHECK_STR(c.password, "s@cr:t");
    CHECK_STR(host, "::1");
    /* The last '@' ends the credentials; the password keeps later ':'. */
    CHECK_INT(cg_config_parse_redis_url("redis://u:a:b@c@h", host, sizeof(host), &port, &db, &c),
              0);
    CHECK_STR(c.user, "u");
    CHECK_STR(c.password, "a:b@c");
    CHECK_STR(host, "h");
    /* A user alone parses (its password may come from the file). */
    CHECK_INT(cg_config_parse_redis_url("redis://gw@h", host, sizeof(host), &port, &db, &c), 0);
    CHECK_STR(c.user, "gw");
    CHECK_STR(c.password, "");
    /* Malformed. */
    CHECK_INT(cg_config_parse_redis_url("redis://@h", host, sizeof(host), &port, &db, &c), -1);
    CHECK_INT(cg_config_parse_redis_url("redis://u:@h", host, sizeof(host), &port, &db, &c), -1);
    CHECK_INT(cg_config_parse_redis_url("redis://u:%4@h", host, sizeof(host), &port, &db, &c), -1);
    CHECK_INT(cg_config_parse_redis_url("redis://u:%zz@h", host, sizeof(host), &port, &db, &c), -1);
    CHECK_INT(cg_config_parse_redis_url("redis://u:%00@h", host, sizeof(host), &port, &db, &c), -1);
    CHECK_INT(cg_config_parse_redis_url("redis://u:p@", host, sizeof(host), &port, &db, &c), -1);
    CHECK_INT(cg_config_parse_redis_url("redis://u:p@h:0", host, sizeof(host), &port, &db, &c), -1);

    /* Through the flags: the URL's credentials are the effective ones. */
    CHECK_INT(LOAD("--redis", "redis://gw:pw@h:1"), CG_CONFIG_OK);
    CHECK_STR(cfg.redis_auth.user, "gw");
    CHECK_STR(cfg.redis_auth.password, "pw");
    CHECK_INT(LOAD0(), CG_CONFIG_OK);
    CHECK_STR(cfg.redis_auth.user, "");
    CHECK_STR(cfg.redis_auth.password, "");
    /* The file wins over the URL; a file without a user keeps the URL's. */
    CHECK_INT(LOAD("--redis", "redis://gw:pw@h:1", "--redis-password-file", secret_with("f1\n")),
              CG_CONFIG_OK);
    CHECK_STR(cfg.redis_auth.user, "gw");
    CHECK_STR(cfg.redis_auth.password, "f1");
    CHECK_INT(LOAD("--redis", "redis://gw@h:1", "--redis-password-file", secret_with("u2:p:2\r\n")),
              CG_CONFIG_OK);
    CHECK_STR(cfg.redis_auth.user, "u2");
    CHECK_STR(cfg.redis_auth.password, "p:2");
    CHECK_INT(LOAD("--redis-password-file", secret_with(":only")), CG_CONFIG_OK);
    CHECK_STR(cfg.redis_auth.user, "");
    CHECK_STR(cfg.redis_auth.password, "only");
    /* In the config file too. */
    char json[300];
    snprintf(json, sizeof(json), "{\"redis\":\"redis://h:2\",\"redis_password_file\":\"%s\"}",
             secret_with("fromfile"));
    CHECK_INT(LOAD("--config", file_with(json)), CG_CONFIG_OK);
    CHECK_STR(cfg.redis_auth.password, "fromfile");
    CHECK_UINT(cfg.redis_port, 2);

    /* Errors name the flag, never the secret. */
    ERR(LOAD("--redis", "redis://gw@h:1"), "--redis");
    ERR(LOAD("--redis-password-file", "/nonexistent/pw"), "--redis-password-file");
    CHECK(strstr(err, "/nonexistent/pw") != NULL);
    ERR(LOAD("--redis-password-file", secret_with("")), "--redis-password-file");
    ERR(LOAD("--redis-password-file", secret_with("\n")), "--redis-password-file");
    ERR(LOAD("--redis-password-file", secret_with("tw0\nlines")), "--redis-password-file");
    CHECK(strstr(err, "tw0") == NULL);
    ERR(LOAD("--redis-password-file", secret_with("us3r:")), "--redis-password-file");
    char big[1200];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    ERR(LOAD("--redis-password-file", secret_with(big)), "--redis-password-file");
    CHECK(strstr(err, "bbbb") == NULL);
    ERR(LOAD("--redis", "redis://gw:Sekr1t@h:99999"), "--redis");
    CHECK(strstr(err, "Sekr1t") == NULL);
    CHECK(strstr(err, "gw:***@h:99999") != NULL);
    ERR(LOAD("--redis", "rediss://Sekr1t@h"), "--redis");
    CHECK(strstr(err, "Sekr1t") == NULL);
    ERR(LOAD("redis://gw:Sekr1t@h:1"), "unexpected");
    CHECK(strstr(err, "Sekr1t") == NULL);
    snprintf(json, sizeof(json), "{\"redis\":\"redis://gw:Sekr1t@h:x\"}");
    ERR(LOAD("--config", file_with(json)), "redis");
    CHECK(strstr(err, "Sekr1t") == NULL);
    /* A file that does not parse: jansson's context, which quotes the text, is cut. */
    ERR(LOAD("--config", file_with("{\"redis\":\"redis://gw:Sekr1t\n@h\"}")), "chartgate: ");
    CHECK(strstr(err, "Sekr1t") == NULL);
    ERR(LOAD("--config", file_with("{\"redis\": redis://gw:Sekr1t@h}")), "chartgate: ");
    CHECK(strstr(err, "Sekr1t") == NULL);
}

static void test_cluster(void)
{
    CHECK_INT(LOAD("--redis-cluster", "127.0.0.1:7000", "--redis-cluster", "[::1]:7001"),
              CG_CONFIG_OK);
    CHECK_UINT(cfg.ncluster, 2);
    CHECK_STR(cfg.cluster_hosts[0], "127.0.0.1");
    CHECK_UINT(cfg.cluster_ports[0], 7000);
    CHECK_STR(cfg.cluster_hosts[1], "::1");
    CHECK_UINT(cfg.cluster_ports[1], 7001);
    CHECK_INT(LOAD("--redis-cluster", "h:1", "--redis-password-file", secret_with("cp")),
              CG_CONFIG_OK);
    CHECK_STR(cfg.redis_auth.password, "cp");
    ERR(LOAD("--redis-cluster", "nope"), "--redis-cluster");
    ERR(LOAD("--redis-cluster", "h:0"), "--redis-cluster");
    /* The seeds name the nodes: not with another way of naming them. */
    ERR(LOAD("--redis-cluster", "h:1", "--redis", "redis://h:2"), "--redis-cluster");
    ERR(LOAD("--redis-cluster", "h:1", "--redis-sentinel", "h:2", "--redis-master", "m"),
        "--redis-cluster");
    CHECK_INT(LOAD("--redis", "redis://h:2"), CG_CONFIG_OK);
    CHECK_UINT(cfg.ncluster, 0);
}

static void test_sentinels(void)
{
    CHECK_INT(LOAD("--redis-sentinel", "127.0.0.1:26379", "--redis-sentinel", "[::1]:26380",
                   "--redis-master", "mymaster"),
              CG_CONFIG_OK);
    CHECK_UINT(cfg.nsentinels, 2);
    CHECK_STR(cfg.sentinel_hosts[0], "127.0.0.1");
    CHECK_UINT(cfg.sentinel_ports[0], 26379);
    CHECK_STR(cfg.sentinel_hosts[1], "::1");
    CHECK_UINT(cfg.sentinel_ports[1], 26380);
    CHECK_STR(cfg.redis_master, "mymaster");
    CHECK_STR(cfg.sentinel_auth.password, "");
    CHECK_INT(LOAD("--redis-sentinel", "h:1", "--redis-master", "m", "--sentinel-password-file",
                   secret_with("sp")),
              CG_CONFIG_OK);
    CHECK_STR(cfg.sentinel_auth.password, "sp");
    /* Both go together. */
    ERR(LOAD("--redis-sentinel", "h:1"), "--redis-master");
    ERR(LOAD("--redis-master", "m"), "--redis-master");
    ERR(LOAD("--redis-sentinel", "h:1", "--redis-master", "my master"), "--redis-master");
    ERR(LOAD("--sentinel-password-file", secret_with("sp")), "--sentinel-password-file");
    ERR(LOAD("--redis-sentinel", "h:1", "--redis-master", "m", "--sentinel-password-file",
             "/nonexistent"),
        "--sentinel-password-file");
    ERR(LOAD("--redis-sentinel", "nope", "--redis-master", "m"), "--redis-sentinel");
    /* At most 8. */
    char *argv[24] = {"chartgate"};
    int argc = 1;
    for (int i = 0; i < 9; i++) {
        argv[argc++] = "--redis-sentinel";
        argv[argc++] = "h:1";
    }
    argv[argc++] = "--redis-master";
    argv[argc++] = "m";
    CHECK_INT(cg_config_load(&cfg, argc, argv, WEB, err, sizeof(err), usage_cb), CG_CONFIG_ERROR);
    CHECK(strstr(err, "--redis-sentinel") != NULL);
    CHECK_INT(cg_config_load(&cfg, argc - 4, argv, WEB, err, sizeof(err), usage_cb),
              CG_CONFIG_ERROR); /* 8, but no master */
    argv[argc - 4] = "--redis-master";
    argv[argc - 3] = "m";
    CHECK_INT(cg_config_load(&cfg, argc - 2, argv, WEB, err, sizeof(err), usage_cb), CG_CONFIG_OK);
    CHECK_UINT(cfg.nsentinels, 8);
    /* The file: an array (or one string) under redis_sentinels; flags replace the list. */
    const char *p = file_with("{\"redis_sentinels\":[\"a:1\",\"b:2\",\"c:3\"],"
                              "\"redis_master\":\"mm\"}");
    CHECK_INT(LOAD("--config", p), CG_CONFIG_OK);
    CHECK_UINT(cfg.nsentinels, 3);
    CHECK_STR(cfg.sentinel_hosts[2], "c");
    CHECK_UINT(cfg.sentinel_ports[2], 3);
    CHECK_STR(cfg.redis_master, "mm");
    CHECK_INT(LOAD("--config", p, "--redis-sentinel", "d:4"), CG_CONFIG_OK);
    CHECK_UINT(cfg.nsentinels, 1);
    CHECK_STR(cfg.sentinel_hosts[0], "d");
    CHECK_INT(LOAD("--config", file_with("{\"redis_sentinels\":\"e:5\",\"redis_master\":\"m\"}")),
              CG_CONFIG_OK);
    CHECK_UINT(cfg.nsentinels, 1);
    ERR(LOAD("--config", file_with("{\"redis_sentinels\":[5],\"redis_master\":\"m\"}")),
        "redis_sentinels");
}

static void test_reload_secrets(void)
{
    const char *p = secret_with("one");
    CHECK_INT(LOAD("--redis", "redis://gw@h:1", "--redis-password-file", p), CG_CONFIG_OK);
    CHECK_STR(cfg.redis_auth.password, "one");
    FILE *f = fopen(p, "w");
    fputs("two\n", f);
    fclose(f);
    CHECK_INT(cg_config_reload_secrets(&cfg, err, sizeof(err)), 0);
    CHECK_STR(cfg.redis_auth.user, "gw");
    CHECK_STR(cfg.redis_auth.password, "two");
    /* A broken file keeps the old credentials. */
    f = fopen(p, "w");
    fclose(f);
    CHECK_INT(cg_config_reload_secrets(&cfg, err, sizeof(err)), -1);
    CHECK(strstr(err, "--redis-password-file") != NULL);
    CHECK_STR(cfg.redis_auth.password, "two");
    unlink(p);
    CHECK_INT(cg_config_reload_secrets(&cfg, err, sizeof(err)), -1);
    CHECK_STR(cfg.redis_auth.password, "two");
    /* Without a file there is nothing to do. */
    CHECK_INT(LOAD("--redis", "redis://:pw@h:1"), CG_CONFIG_OK);
    CHECK_INT(cg_config_reload_secrets(&cfg, err, sizeof(err)), 0);
    CHECK_STR(cfg.redis_auth.password, "pw");
}

static void test_scrub_argv(void)
{
    char a0[] = "chartgate", a1[] = "--redis", a2[] = "redis://gw:Sekr1t@h:1/2",
         a3[] = "--redis=redis://:pw@h", a4[] = "--listen", a5[] = "127.0.0.1:1",
         a6[] = "redis://user@h";
    char *argv[] = {a0, a1, a2, a3, a4, a5, a6, NULL};
    cg_config_scrub_argv(7, argv);
    CHECK_STR(a2, "redis://gw:******@h:1/2");
    CHECK_STR(a3, "--redis=redis://:**@h");
    CHECK_STR(a5, "127.0.0.1:1");
    CHECK_STR(a6, "redis://****@h");
}

/* --workers N|auto and the supervisor's give-up settings. */
static void test_workers(void)
{
    CHECK_INT(LOAD0(), CG_CONFIG_OK);
    CHECK_UINT(cfg.workers, 1); /* one process, no supervisor */
    CHECK_UINT(cfg.worker_deaths_max, 10);
    CHECK_UINT(cfg.worker_deaths_window_s, 60);
    CHECK_INT(LOAD("--workers", "4", "--worker-deaths-max", "3", "--worker-deaths-window-s", "5"),
              CG_CONFIG_OK);
    CHECK_UINT(cfg.workers, 4);
    CHECK_UINT(cfg.worker_deaths_max, 3);
    CHECK_UINT(cfg.worker_deaths_window_s, 5);
    CHECK_INT(LOAD("--workers", "auto"), CG_CONFIG_OK);
    CHECK_UINT(cfg.workers, 0);
    CHECK_INT(LOAD("--workers=256"), CG_CONFIG_OK);
    ERR(LOAD("--workers", "0"), "--workers");
    ERR(LOAD("--workers", "257"), "--workers");
    ERR(LOAD("--workers", "Auto"), "--workers");
    ERR(LOAD("--workers", "-2"), "--workers");
    ERR(LOAD("--workers", ""), "--workers");
    ERR(LOAD("--worker-deaths-max", "0"), "--worker-deaths-max");
    const char *p = file_with("{\"workers\":3}");
    CHECK_INT(LOAD("--config", p), CG_CONFIG_OK);
    CHECK_UINT(cfg.workers, 3);
    p = file_with("{\"workers\":\"auto\"}");
    CHECK_INT(LOAD("--config", p), CG_CONFIG_OK);
    CHECK_UINT(cfg.workers, 0);
    p = file_with("{\"workers\":\"many\"}");
    ERR(LOAD("--config", p), "workers");
}

/* The trading calendar's options (PROTOCOL.md §18): defaults, a good file, and errors that name
 * the flag, the file and the position. */
static void test_deflate(void)
{
    CHECK_INT(LOAD0(), CG_CONFIG_OK);
    CHECK_INT(cfg.deflate, 1); /* on by default */
    CHECK_UINT(cfg.deflate_min_bytes, 256);
    CHECK_INT(LOAD("--deflate", "off", "--deflate-min-bytes", "0"), CG_CONFIG_OK);
    CHECK_INT(cfg.deflate, 0);
    CHECK_UINT(cfg.deflate_min_bytes, 0);
    CHECK_INT(LOAD("--deflate=on"), CG_CONFIG_OK);
    CHECK_INT(cfg.deflate, 1);
    ERR(LOAD("--deflate", "yes"), "--deflate");
    ERR(LOAD("--deflate"), "--deflate"); /* takes a value, unlike a boolean flag */
    ERR(LOAD("--deflate-min-bytes", "-1"), "--deflate-min-bytes");
    ERR(LOAD("--deflate-min-bytes", "16777217"), "--deflate-min-bytes");
    const char *p = file_with("{\"deflate\":\"off\",\"deflate_min_bytes\":1024}");
    CHECK_INT(LOAD("--config", p), CG_CONFIG_OK);
    CHECK_INT(cfg.deflate, 0);
    CHECK_UINT(cfg.deflate_min_bytes, 1024);
    p = file_with("{\"deflate\":false}");
    CHECK_INT(LOAD("--config", p, "--deflate", "on"), CG_CONFIG_OK); /* flags win */
    CHECK_INT(cfg.deflate, 1);
    CHECK_INT(LOAD("--config", p), CG_CONFIG_OK);
    CHECK_INT(cfg.deflate, 0);
    ERR(LOAD("--config", file_with("{\"deflate\":1}")), "deflate");
}

static void test_calendar(void)
{
    CHECK_INT(LOAD0(), CG_CONFIG_OK);
    CHECK_STR(cfg.timezone, "UTC");
    CHECK_STR(cfg.sessions_file, "");
    CHECK_UINT(cfg.bar_close_grace_ms, 2000);
    CHECK_UINT(cfg.session_slack_ms, 60000);
    const char *good = file_with("{\"calendars\":[{\"instruments\":[\"rb*\"],"
                                 "\"day\":[[\"09:00\",\"15:00\"]]}]}");
    CHECK_INT(LOAD("--sessions", good, "--timezone", "Asia/Shanghai", "--bar-close-grace-ms", "500",
                   "--session-slack-ms", "0"),
              CG_CONFIG_OK);
    CHECK_STR(cfg.sessions_file, good);
    CHECK_STR(cfg.timezone, "Asia/Shanghai");
    CHECK_UINT(cfg.bar_close_grace_ms, 500);
    CHECK_UINT(cfg.session_slack_ms, 0);
    ERR(LOAD("--timezone", "Mars/Olympus"), "--timezone");
    ERR(LOAD("--timezone", "../../etc/passwd"), "--timezone");
    ERR(LOAD("--sessions", "/nonexistent/s.json"), "/nonexistent/s.json");
    const char *bad = file_with("{\"calendars\":[{\"instruments\":[\"rb*\"],"
                                "\"day\":[[\"09:00\",\"15:00\"]],\"night_on\":1}]}");
    ERR(LOAD("--sessions", bad), "calendars[0].night_on");
    CHECK(strstr(err, bad) != NULL);
    ERR(LOAD("--sessions", good, "--intervals", "1m,2d"), "--intervals");
    CHECK_INT(LOAD("--intervals", "1m,2d"), CG_CONFIG_OK); /* no calendar: epoch days */
    ERR(LOAD("--session-slack-ms", "3600001"), "--session-slack-ms");
    ERR(LOAD("--bar-close-grace-ms", "-1"), "--bar-close-grace-ms");
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/cg-test-config-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults();
    test_help();
    test_flags();
    test_origins_flags();
    test_flag_errors();
    test_error_single_line();
    test_file();
    test_file_errors();
    test_services_flags();
    test_services_file();
    test_hostport();
    test_redis_url();
    test_redis_credentials();
    test_sentinels();
    test_cluster();
    test_reload_secrets();
    test_scrub_argv();
    test_workers();
    test_calendar();
    test_deflate();
    for (int i = 0; i < 16; i++) {
        char p[128];
        snprintf(p, sizeof(p), "%s/secret%d", tmpdir, i);
        unlink(p);
    }
    for (int i = 1; i <= nfiles; i++) {
        char p[128];
        snprintf(p, sizeof(p), "%s/cfg%d.json", tmpdir, i);
        unlink(p);
    }
    rmdir(tmpdir);
    return check_summary("config");
}
