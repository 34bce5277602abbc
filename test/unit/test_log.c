/* test_log.c -- logfmt event lines (gateway/log.h): the line format, levels, logfmt quoting and
 * the per-site rate limit. Each test captures stderr (fd 2) into a temporary file and checks the
 * bytes written; checks run after the capture ends, so their own reports reach the terminal. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "log.h"

#define LINE_MAX_BYTES 2048 /* what one event line may take, newline included (log.c) */

static FILE *cap_file;
static int cap_saved_fd = -1;
static char cap_buf[16384];

/* Sends stderr to a temporary file until capture_end(). */
static void capture_begin(void)
{
    fflush(stderr);
    cap_file = tmpfile();
    cap_saved_fd = dup(2);
    if (!cap_file || cap_saved_fd < 0 || dup2(fileno(cap_file), 2) < 0) {
        perror("test_log: capturing stderr");
        exit(1);
    }
}

/* Restores stderr; returns what was written meanwhile (NUL-terminated, valid until the next
 * capture). */
static const char *capture_end(void)
{
    fflush(stderr);
    dup2(cap_saved_fd, 2);
    close(cap_saved_fd);
    rewind(cap_file);
    size_t n = fread(cap_buf, 1, sizeof(cap_buf) - 1, cap_file);
    cap_buf[n] = 0;
    fclose(cap_file);
    return cap_buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* s starts with "ts=YYYY-MM-DDTHH:MM:SS.mmmZ " within a few seconds of now (UTC). Returns the
 * text after that prefix, or NULL. */
static const char *skip_ts(const char *s)
{
    static const char shape[] = "ts=0000-00-00T00:00:00.000Z ";
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == '0' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i])
            return NULL;
    }
    struct tm tm = {0};
    if (sscanf(s, "ts=%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return NULL;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm), now = time(NULL);
    if (t < now - 5 || t > now + 1)
        return NULL;
    return s + sizeof(shape) - 1;
}

/* line (the whole capture) is one event line whose part after the timestamp is rest. */
#define CHECK_LINE(line, rest)                                                                     \
    do {                                                                                           \
        const char *after_ts_ = skip_ts(line);                                                     \
        if (CHECK(after_ts_ != NULL))                                                              \
            CHECK_STR(after_ts_, rest);                                                            \
        else                                                                                       \
            fprintf(stderr, "    line: %s", line);                                                 \
    } while (0)

static void test_parse_level(void)
{
    static const struct {
        const char *name;
        enum cg_log_level level;
    } ok[] = {{"debug", CG_LOG_DEBUG},
              {"info", CG_LOG_INFO},
              {"warn", CG_LOG_WARN},
              {"error", CG_LOG_ERROR}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        enum cg_log_level l = CG_LOG_ERROR + 1;
        CHECK_INT(cg_log_parse_level(ok[i].name, &l), 0);
        CHECK_INT(l, ok[i].level);
    }
    static const char *const bad[] = {"", "INFO", "warning", "err", "info ", "debug2", "0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum cg_log_level l = CG_LOG_WARN;
        CHECK_INT(cg_log_parse_level(bad[i], &l), -1);
        CHECK_INT(l, CG_LOG_WARN); /* untouched on failure */
    }
}

static void test_format(void)
{
    cg_log_set_level(CG_LOG_INFO);
    capture_begin();
    cg_log(CG_LOG_INFO, "gateway started", "listen=%s conns=%d", "127.0.0.1:8080", 3);
    const char *out = capture_end();
    CHECK_LINE(out, "level=info msg=\"gateway started\" listen=127.0.0.1:8080 conns=3\n");

    /* No key-values: no trailing space. */
    capture_begin();
    cg_log(CG_LOG_ERROR, "redis down", NULL);
    out = capture_end();
    CHECK_LINE(out, "level=error msg=\"redis down\"\n");
    /* ...nor when the key-values come out empty. */
    capture_begin();
    cg_log(CG_LOG_ERROR, "redis down", "%s", "");
    out = capture_end();
    CHECK_LINE(out, "level=error msg=\"redis down\"\n");

    /* A value that may hold spaces or quotes goes through cg_log_quote. */
    char q[64];
    capture_begin();
    cg_log(CG_LOG_INFO, "rejected", "origin=%s", cg_log_quote(q, sizeof(q), "a \"b\"", 5));
    out = capture_end();
    CHECK_LINE(out, "level=info msg=\"rejected\" origin=\"a \\\"b\\\"\"\n");

    /* An overlong event is cut to one bounded line, still ending in a newline. */
    static char big[4 * LINE_MAX_BYTES];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    capture_begin();
    cg_log(CG_LOG_INFO, "big", "v=%s", big);
    out = capture_end();
    size_t n = strlen(out);
    CHECK(n <= LINE_MAX_BYTES);
    CHECK(n > LINE_MAX_BYTES / 2);
    CHECK_UINT(count_lines(out), 1);
    CHECK(n > 0 && out[n - 1] == '\n');
    const char *rest = skip_ts(out), *head = "level=info msg=\"big\" v=xxxx";
    CHECK(rest && !strncmp(rest, head, strlen(head)));
}

static void test_levels(void)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    cg_log_set_level(CG_LOG_WARN);
    CHECK(!cg_log_enabled(CG_LOG_DEBUG));
    CHECK(!cg_log_enabled(CG_LOG_INFO));
    CHECK(cg_log_enabled(CG_LOG_WARN));
    CHECK(cg_log_enabled(CG_LOG_ERROR));
    capture_begin();
    cg_log(CG_LOG_DEBUG, "d", NULL);
    cg_log(CG_LOG_INFO, "i", "k=%d", 1);
    const char *out = capture_end();
    CHECK_STR(out, ""); /* below the level: nothing at all */
    capture_begin();
    cg_log(CG_LOG_WARN, "w", NULL);
    cg_log(CG_LOG_ERROR, "e", NULL);
    out = capture_end();
    CHECK_UINT(count_lines(out), 2);
    CHECK(strstr(out, " level=warn msg=\"w\"\n") != NULL);
    CHECK(strstr(out, " level=error msg=\"e\"\n") != NULL);

    /* At debug, every level is written, with its own name. */
    cg_log_set_level(CG_LOG_DEBUG);
    for (int l = CG_LOG_DEBUG; l <= CG_LOG_ERROR; l++) {
        CHECK(cg_log_enabled((enum cg_log_level)l));
        capture_begin();
        cg_log((enum cg_log_level)l, "m", "n=%d", l);
        out = capture_end();
        char want[64];
        snprintf(want, sizeof(want), "level=%s msg=\"m\" n=%d\n", names[l], l);
        CHECK_LINE(out, want);
    }

    /* error only. */
    cg_log_set_level(CG_LOG_ERROR);
    CHECK(!cg_log_enabled(CG_LOG_WARN));
    capture_begin();
    cg_log(CG_LOG_WARN, "w", NULL);
    cg_log(CG_LOG_ERROR, "e", NULL);
    out = capture_end();
    CHECK_LINE(out, "level=error msg=\"e\"\n");
    cg_log_set_level(CG_LOG_INFO);
}

/* Quotes and backslashes, for the truncation tests. */
#define QUOTE_ME "ab\"cd\\ef gh\"\\\"ij"

/* cg_log_quote(out, outsz, s, len) equals want. */
static void quote_is(const char *s, size_t len, const char *want, int line)
{
    char out[128];
    const char *r = cg_log_quote(out, sizeof(out), s, len);
    check_(r == out, __FILE__, line, "cg_log_quote returns out");
    check_str_(out, want, __FILE__, line, "quoted");
}

static void test_quote(void)
{
    quote_is("plain", 5, "\"plain\"", __LINE__);
    quote_is("", 0, "\"\"", __LINE__);
    quote_is("a b", 3, "\"a b\"", __LINE__);
    quote_is("say \"hi\"", 8, "\"say \\\"hi\\\"\"", __LINE__);
    quote_is("c:\\dir", 6, "\"c:\\\\dir\"", __LINE__);
    /* Control bytes (a newline would split the line) become '?'; so does DEL. */
    quote_is("a\nb\tc\rd\177e", 9, "\"a?b?c?d?e\"", __LINE__);
    quote_is("a\0b", 3, "\"a?b\"", __LINE__); /* len counts, not a NUL */
    quote_is("abcdef", 3, "\"abc\"", __LINE__);
    quote_is("caf\xc3\xa9", 5, "\"caf\xc3\xa9\"", __LINE__); /* UTF-8 passes as is */

    /* Every output size: never a byte past outsz, always NUL-terminated, quoted once there is
     * room for the quotes, a prefix of the full quoting that never ends inside an escape. */
    const char *s = QUOTE_ME;
    char full[128];
    cg_log_quote(full, sizeof(full), s, strlen(s));
    CHECK_STR(full, "\"ab\\\"cd\\\\ef gh\\\"\\\\\\\"ij\"");
    size_t full_len = strlen(full);
    for (size_t outsz = 0; outsz <= full_len + 2; outsz++) {
        char buf[160];
        memset(buf, '#', sizeof(buf));
        cg_log_quote(buf, outsz, s, strlen(s));
        int ok = buf[outsz] == '#';
        if (outsz > 0) {
            size_t n = strnlen(buf, outsz);
            ok &= n < outsz;
            if (outsz < 3) {
                ok &= n == 0;
            } else {
                ok &= n >= 2 && buf[0] == '"' && buf[n - 1] == '"';
                /* the inside is a prefix of the full inside, cut between escapes */
                ok &= !strncmp(buf, full, n - 1);
                size_t backslashes = 0;
                for (size_t i = n - 1; i > 1 && buf[i - 1] == '\\'; i--)
                    backslashes++;
                ok &= backslashes % 2 == 0;
            }
        }
        if (!check_(ok, __FILE__, __LINE__, "cg_log_quote bounded and well-formed"))
            fprintf(stderr, "    outsz %zu: %.*s\n", outsz, (int)(outsz ? outsz : 0), buf);
    }
    /* 2 * len + 3 bytes hold any quoting whole: every byte escaped, two quotes, the NUL. */
    char enough[2 * (sizeof(QUOTE_ME) - 1) + 3];
    cg_log_quote(enough, sizeof(enough), s, strlen(s));
    CHECK_STR(enough, full);
    const char *worst = "\"\\\"\\";
    char all[2 * 4 + 3];
    cg_log_quote(all, sizeof(all), worst, strlen(worst));
    CHECK_STR(all, "\"\\\"\\\\\\\"\\\\\"");
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts))
        ;
}

static void test_rate_limit(void)
{
    cg_log_set_level(CG_LOG_INFO);
    struct cg_log_limit lim = {0};

    /* The first line passes, without a suppressed count. */
    capture_begin();
    cg_log_limited(&lim, 300, CG_LOG_WARN, "queue full", "conn=%d", 1);
    const char *out = capture_end();
    CHECK_LINE(out, "level=warn msg=\"queue full\" conn=1\n");

    /* Within the interval: nothing written, each one counted. */
    capture_begin();
    for (int i = 2; i <= 4; i++)
        cg_log_limited(&lim, 300, CG_LOG_WARN, "queue full", "conn=%d", i);
    out = capture_end();
    CHECK_STR(out, "");

    /* After the interval the next line passes and says how many were left out. */
    sleep_ms(350);
    capture_begin();
    cg_log_limited(&lim, 300, CG_LOG_WARN, "queue full", "conn=%d", 5);
    cg_log_limited(&lim, 300, CG_LOG_WARN, "queue full", "conn=%d", 6); /* suppressed again */
    out = capture_end();
    CHECK_LINE(out, "level=warn msg=\"queue full\" conn=5 suppressed=3\n");

    /* The count restarts from the last line written. */
    sleep_ms(350);
    capture_begin();
    cg_log_limited(&lim, 300, CG_LOG_WARN, "queue full", NULL);
    out = capture_end();
    CHECK_LINE(out, "level=warn msg=\"queue full\" suppressed=1\n");

    /* Each site has its own limit. */
    struct cg_log_limit other = {0};
    capture_begin();
    cg_log_limited(&lim, 300, CG_LOG_WARN, "queue full", NULL);
    cg_log_limited(&other, 300, CG_LOG_ERROR, "redis down", NULL);
    out = capture_end();
    CHECK_LINE(out, "level=error msg=\"redis down\"\n");
    /* ...nor when the key-values come out empty. */
    capture_begin();
    cg_log(CG_LOG_ERROR, "redis down", "%s", "");
    out = capture_end();
    CHECK_LINE(out, "level=error msg=\"redis down\"\n");

    /* Lines below the level are neither written nor counted as suppressed. */
    struct cg_log_limit quiet = {0};
    cg_log_set_level(CG_LOG_ERROR);
    capture_begin();
    for (int i = 0; i < 5; i++)
        cg_log_limited(&quiet, 300, CG_LOG_WARN, "noisy", NULL);
    out = capture_end();
    CHECK_STR(out, "");
    cg_log_set_level(CG_LOG_INFO);
    capture_begin();
    cg_log_limited(&quiet, 300, CG_LOG_WARN, "noisy", NULL);
    out = capture_end();
    CHECK_LINE(out, "level=warn msg=\"noisy\"\n");

    /* Interval 0: no limit. */
    struct cg_log_limit none = {0};
    capture_begin();
    for (int i = 0; i < 3; i++)
        cg_log_limited(&none, 0, CG_LOG_INFO, "every", NULL);
    out = capture_end();
    CHECK_UINT(count_lines(out), 3);
    CHECK(strstr(out, "suppressed") == NULL);
}

int main(void)
{
    test_parse_level();
    test_format();
    test_levels();
    test_quote();
    test_rate_limit();
    return check_summary("test_log");
}
