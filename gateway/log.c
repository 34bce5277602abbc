/* log.c -- logfmt event lines on stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static struct {
    enum cg_log_level level;
    char context[64]; /* key-values on every line (a worker's index and pid) */
} L = {CG_LOG_INFO, ""};

static const char *const names[] = {"debug", "info", "warn", "error"};

void cg_log_set_level(enum cg_log_level level)
{
    L.level = level;
}

void cg_log_set_context(const char *kv)
{
    snprintf(L.context, sizeof(L.context), "%s", kv);
}

int cg_log_parse_level(const char *s, enum cg_log_level *out)
{
    for (int i = 0; i <= CG_LOG_ERROR; i++) {
        if (!strcmp(s, names[i])) {
            *out = (enum cg_log_level)i;
            return 0;
        }
    }
    return -1;
}

int cg_log_enabled(enum cg_log_level level)
{
    return level >= L.level;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void vlog(enum cg_log_level level, const char *msg, uint64_t suppressed, const char *kvfmt,
                 va_list ap)
{
    char line[2048], ts[32];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    int n = snprintf(line, sizeof(line), "ts=%s.%03ldZ level=%s msg=\"%s\"%s%s", ts,
                     now.tv_nsec / 1000000, names[level], msg, L.context[0] ? " " : "", L.context);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = (int)sizeof(line) - 1;
    if (kvfmt && *kvfmt && (size_t)n < sizeof(line) - 2) {
        line[n++] = ' ';
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n, kvfmt, ap);
        if (m > 0)
            n += m;
        else
            line[--n] = 0; /* nothing came of the key-values: no trailing space */
        if ((size_t)n >= sizeof(line))
            n = (int)sizeof(line) - 1;
    }
    if (suppressed && (size_t)n < sizeof(line) - 1) {
        int m = snprintf(line + n, sizeof(line) - (size_t)n, " suppressed=%llu",
                         (unsigned long long)suppressed);
        if (m > 0)
            n += m;
        if ((size_t)n >= sizeof(line))
            n = (int)sizeof(line) - 1;
    }
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
}

void cg_log(enum cg_log_level level, const char *msg, const char *kvfmt, ...)
{
    if (level < L.level)
        return;
    va_list ap;
    va_start(ap, kvfmt);
    vlog(level, msg, 0, kvfmt, ap);
    va_end(ap);
}

void cg_log_limited(struct cg_log_limit *lim, uint64_t interval_ms, enum cg_log_level level,
                    const char *msg, const char *kvfmt, ...)
{
    if (level < L.level)
        return;
    uint64_t now = now_ms();
    if (lim->last_ms && now - lim->last_ms < interval_ms) {
        lim->suppressed++;
        return;
    }
    va_list ap;
    va_start(ap, kvfmt);
    vlog(level, msg, lim->suppressed, kvfmt, ap);
    va_end(ap);
    lim->last_ms = now;
    lim->suppressed = 0;
}

const char *cg_log_quote(char *out, size_t outsz, const char *s, size_t len)
{
    size_t o = 0;
    if (outsz < 3) {
        if (outsz)
            out[0] = 0;
        return out;
    }
    out[o++] = '"';
    for (size_t i = 0; i < len && o + 3 < outsz; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            out[o++] = '?';
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = 0;
    return out;
}
