/* config.h -- every setting, its default, and parsing from flags and a JSON file.
 *
 * Defaults, then the --config JSON file (keys are the flag names with '_' for '-'),
 * then command-line flags, later winning. Every setting is a row of one table in
 * config.c, which also generates --help. A bad setting yields one line naming the
 * flag (or the file and key) and what was expected. Pure (jansson only).
 *
 * Redis credentials come from the --redis URL or, preferably, from --redis-password-file (a
 * command line is readable by every local user); the files are re-read on SIGHUP. No error
 * line, log line or /metrics text carries a password: config errors mask it. */
#ifndef CG_CONFIG_H
#define CG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CG_CONFIG_ORIGINS_MAX 32
#define CG_CONFIG_INTERVALS_MAX 8
#define CG_CONFIG_PREFIXES_MAX 32
#define CG_CONFIG_SERVICES_MAX 32
#define CG_CONFIG_SERVICE_MAX 64 /* characters of a service name: [A-Za-z0-9._-] */
#define CG_CONFIG_SENTINELS_MAX 8
#define CG_CONFIG_USER_MAX 128
#define CG_CONFIG_PASSWORD_MAX 512

/* Credentials for Redis's AUTH. Secret: never printed, logged or echoed in an error. */
struct cg_config_credentials {
    char user[CG_CONFIG_USER_MAX];         /* ACL user; empty: the default user (AUTH password) */
    char password[CG_CONFIG_PASSWORD_MAX]; /* empty: no AUTH */
};

struct cg_config {
    char listen_host[128];
    uint32_t listen_port;
    char redis_host[128];
    uint32_t redis_port;
    uint32_t redis_db;
    /* AUTH for every Redis link: the URL's credentials, overridden by the password file's
     * (re-read on SIGHUP by cg_config_reload_secrets). */
    struct cg_config_credentials redis_auth;     /* effective */
    struct cg_config_credentials redis_url_auth; /* as given in --redis */
    char redis_password_file[512];
    /* Sentinel mode: the master's address comes from these, by name (redis_host/port unused). */
    char sentinel_hosts[CG_CONFIG_SENTINELS_MAX][128];
    uint32_t sentinel_ports[CG_CONFIG_SENTINELS_MAX];
    uint32_t nsentinels;
    char redis_master[128];
    /* Cluster mode: seed nodes; the slot map and the masters come from them (redis_host/port
     * unused). redis_given: --redis was set explicitly (it cannot go with cluster seeds). */
    char cluster_hosts[CG_CONFIG_SENTINELS_MAX][128];
    uint32_t cluster_ports[CG_CONFIG_SENTINELS_MAX];
    uint32_t ncluster;
    int redis_given;
    struct cg_config_credentials sentinel_auth; /* from sentinel_password_file */
    char sentinel_password_file[512];
    char web_root[512];
    char origins[CG_CONFIG_ORIGINS_MAX][256];
    uint32_t norigins;

    char session_prefix[64];
    char md_prefix[64];
    char user_prefix[64];
    char broadcast_channel[128];
    char inbox_key[128];
    char instruments_key[128];
    char inbox_id[128]; /* names this gateway's inbox processing list; default host:port */

    uint32_t session_timeout_ms;
    uint32_t session_cache_ms;
    uint32_t session_check_s;

    uint32_t queue_max_frames;
    uint32_t queue_max_bytes;
    uint32_t queue_conflate_frames;
    uint32_t batch_max_bytes;
    uint32_t max_subscriptions;
    uint32_t max_message_bytes;
    uint32_t rate_limit;
    uint32_t rate_burst;
    uint32_t ping_s;
    uint32_t idle_timeout_s;
    uint32_t max_payload_bytes;
    uint32_t max_instruments;
    uint32_t redis_backoff_max_ms;

    int log_level; /* enum cg_log_level */

    /* chart agent */
    char intervals_text[128]; /* as given, e.g. "1s,1m,5m" */
    uint32_t nintervals;      /* parsed from intervals_text */
    char interval_names[CG_CONFIG_INTERVALS_MAX][8];
    int64_t interval_ms[CG_CONFIG_INTERVALS_MAX];
    char price_field[64];
    char volume_field[64];
    char ts_field[64];
    char cumulative_text[256]; /* instrument name prefixes with cumulative volume; "*" = all */
    uint32_t ncumulative;
    char cumulative[CG_CONFIG_PREFIXES_MAX][32];
    int record_bars;
    int deflate;                /* --deflate on|off: permessage-deflate offered to clients */
    uint32_t deflate_min_bytes; /* messages shorter than this go out uncompressed */
    char bars_prefix[64];
    uint32_t bars_depth;    /* completed bars kept in memory per series; snapshot size */
    uint32_t history_depth; /* bars kept per series in Redis */
    uint32_t history_max;   /* largest history reply */
    uint32_t resume_ring;   /* ticks kept per instrument for resume */
    uint32_t chart_idle_s;  /* chart state kept this long after the last subscriber */
    /* trading calendar (PROTOCOL.md §18): checked at load, read again by the agent */
    char timezone[64];           /* IANA zone of the sessions and the 24/7 default */
    char sessions_file[512];     /* empty: 24/7 */
    uint32_t bar_close_grace_ms; /* a bar closes this long after its end (calendar on) */
    uint32_t session_slack_ms;   /* ticks this close to a session still make bars */

    int dev_login;

    /* abuse limits */
    uint32_t max_conns_per_ip;      /* 0 = none */
    uint32_t handshake_rate_per_ip; /* handshakes per second; 0 = none */
    uint32_t handshake_burst_per_ip;
    uint32_t max_sockets_per_user;                   /* 0 = none */
    char trusted_proxies[CG_CONFIG_ORIGINS_MAX][64]; /* whose X-Forwarded-For is believed */
    uint32_t ntrusted_proxies;
    int allow_any_origin;

    char tls_cert[512]; /* PEM certificate (chain); with tls_key: serve wss:// and https:// */
    char tls_key[512];

    /* services: clients send to them through Redis lists (PROTOCOL.md §16) */
    char services[CG_CONFIG_SERVICES_MAX][CG_CONFIG_SERVICE_MAX + 1];
    uint32_t nservices;
    uint32_t service_events; /* bit i: services[i] gets open/close events */
    char service_events_text[CG_CONFIG_SERVICES_MAX * (CG_CONFIG_SERVICE_MAX + 1)]; /* as given */
    char service_prefix[128];
    uint32_t service_queue_max;
    char reply_prefix[128];
    uint32_t stream_len;         /* chartgate_publish's default stream length (PROTOCOL.md §19) */
    uint32_t stream_catchup_max; /* stream entries read per catch-up or resume */
    char epoch_key[128];         /* the shared epoch's key */

    /* --workers: processes sharing the port under a supervisor (supervisor.h) */
    uint32_t workers;           /* 1 = one process, no supervisor; 0 = one per online CPU */
    uint32_t worker_deaths_max; /* more deaths than this within the window: give up */
    uint32_t worker_deaths_window_s;

    /* chart overlays (PROTOCOL.md §17) */
    char chart_prefix[64];   /* pub/sub channel prefix of applied overlay operations */
    uint32_t overlay_max;    /* overlays per instrument */
    uint32_t overlay_points; /* points per overlay */
};

/* Index of service name (len bytes) in cfg, or -1. */
int cg_config_service(const struct cg_config *cfg, const char *name, size_t len);
/* 1 if the len bytes at name are a well-formed service name. */
int cg_config_service_name_valid(const char *name, size_t len);

/* 1 when host names the loopback interface (127.0.0.0/8, ::1, localhost). */
int cg_config_loopback(const char *host);

/* Index of interval name in cfg, or -1. */
int cg_config_interval(const struct cg_config *cfg, const char *name);

enum cg_config_result {
    CG_CONFIG_OK = 0,
    CG_CONFIG_HELP = 1, /* --help was given: usage was written, exit 0 */
    CG_CONFIG_ERROR = -1,
};

/* Fills cfg from defaults, the --config file if any, and argv. On CG_CONFIG_ERROR,
 * err holds one line (no trailing newline) naming the setting. default_web_root is
 * the compiled-in web/ directory. usage_out receives --help text. */
enum cg_config_result cg_config_load(struct cg_config *cfg, int argc, char **argv,
                                     const char *default_web_root, char *err, size_t errsz,
                                     void (*usage_out)(const char *text));

/* Re-reads --redis-password-file and --sentinel-password-file (SIGHUP) into cfg's effective
 * credentials. All or nothing: on -1, err holds one line (naming the flag and file, never the
 * content) and cfg is unchanged. Returns 0 when there is no file to read. */
int cg_config_reload_secrets(struct cg_config *cfg, char *err, size_t errsz);

/* Overwrites the password of any redis:// URL among argv with '*' in place, so that
 * /proc/PID/cmdline stops showing it (it did until this call: prefer the password file). */
void cg_config_scrub_argv(int argc, char **argv);

/* Parses "HOST:PORT" / "redis://[USER[:PASSWORD]@]HOST:PORT[/DB]" (USER and PASSWORD
 * percent-decoded). cred receives the credentials (both empty without "@"); with cred NULL a
 * URL holding credentials is refused. Return 0 or -1. Exposed for tests. */
int cg_config_parse_hostport(const char *s, char *host, size_t hostsz, uint32_t *port);
int cg_config_parse_redis_url(const char *s, char *host, size_t hostsz, uint32_t *port,
                              uint32_t *db, struct cg_config_credentials *cred);
/* Reads a secret file: one line, "PASSWORD" or "USER:PASSWORD" (a trailing newline is
 * dropped; a password holding ':' needs the USER: form, e.g. "default:pa:ss"). Returns 0, or
 * -1 with a reason in err (never the content). The read buffer is wiped. */
int cg_config_read_secret(const char *path, struct cg_config_credentials *out, char *err,
                          size_t errsz);

#endif
