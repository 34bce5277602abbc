/* log.h -- logfmt event lines on stderr, with levels and per-site rate limiting.
 *
 * One line per event: `ts=<RFC3339 ms> level=<lvl> msg="<msg>" k=v ...`. The kv part
 * is printf-formatted by the caller; values that may hold spaces or quotes go
 * through cg_log_quote(). Session ids never reach a log line: log cg_auth's short hash. */
#ifndef CG_LOG_H
#define CG_LOG_H

#include <stddef.h>
#include <stdint.h>

enum cg_log_level { CG_LOG_DEBUG, CG_LOG_INFO, CG_LOG_WARN, CG_LOG_ERROR };

/* A rate limit for one log site: at most one line per interval; the next line that
 * passes reports how many were suppressed. Zero-initialise. */
struct cg_log_limit {
    uint64_t last_ms;
    uint64_t suppressed;
};

void cg_log_set_level(enum cg_log_level level);
/* Key-values put right after msg on every line of this process from now on, e.g.
 * "worker=1 pid=4242" (copied; at most 63 characters; "" clears it). */
void cg_log_set_context(const char *kv);
/* Parses "debug|info|warn|error"; returns 0 or -1. */
int cg_log_parse_level(const char *s, enum cg_log_level *out);
int cg_log_enabled(enum cg_log_level level);

void cg_log(enum cg_log_level level, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like cg_log, but at most once per interval_ms for this limit. */
void cg_log_limited(struct cg_log_limit *lim, uint64_t interval_ms, enum cg_log_level level,
                    const char *msg, const char *kvfmt, ...) __attribute__((format(printf, 5, 6)));

/* Writes s as a logfmt value (quoted and escaped, truncated to fit) into out. Returns out. */
const char *cg_log_quote(char *out, size_t outsz, const char *s, size_t len);

#endif
