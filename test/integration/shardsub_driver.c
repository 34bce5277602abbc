/* shardsub_driver.c -- drives gateway/shardsub.c from stdin lines, prints its hooks on stdout.
 *
 * For test_shardsub.py, against a real redis-server. Commands, one per line (tokens split on
 * spaces; channels and passwords without spaces):
 *   connect HOST PORT [PASSWORD | USER PASSWORD]   start connecting
 *   reconnect on|off   after a down, connect again 200 ms later with the same arguments
 *   sub CH / unsub CH  (un)subscribe now; CH is also added to / removed from the wanted set,
 *                      which is subscribed again on every up
 *   close              cg_shardsub_close
 *   closein N          close from inside the N-th next message hook
 *   flood N LEN        SSUBSCRIBE N channels of LEN bytes ("ok flood", or "fail flood at I"
 *                      when the I-th call failed: a bound passed)
 * End of input: close, let the loop finish, check uv_loop_close, exit 0.
 * Output lines: "up", "down <why>", "subscribed <ch>", "refused <ch> <err>", "lost <ch>",
 * "message <ch> <len> <fnv1a-64 hex> <hex of the first 32 bytes>", "ok <cmd>", "fail <cmd>".
 * Each is flushed at once. */
#include "shardsub.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WANTED 64
#define MAX_ARGS 8

static struct {
    uv_loop_t loop;
    uv_pipe_t in;
    uv_timer_t retry;
    struct cg_shardsub ss;
    char line[4096];
    size_t linelen;
    int reconnect;
    int closein; /* 0: off */
    char host[256];
    unsigned port;
    int auth_argc;
    char auth[2][256];
    char wanted[MAX_WANTED][128];
    int nwanted;
} d;

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static int do_connect(void)
{
    const char *argv[2] = {d.auth[0], d.auth[1]};
    size_t lens[2] = {strlen(d.auth[0]), strlen(d.auth[1])};
    return cg_shardsub_connect(&d.ss, d.host, d.port, d.auth_argc, argv, lens);
}

static void on_up(void *data)
{
    (void)data;
    out("up");
    for (int i = 0; i < d.nwanted; i++)
        if (cg_shardsub_subscribe(&d.ss, d.wanted[i], strlen(d.wanted[i])) < 0)
            out("fail resubscribe %s", d.wanted[i]);
}

static void on_retry(uv_timer_t *t)
{
    (void)t;
    out(do_connect() == 0 ? "ok reconnect" : "fail reconnect");
}

static void on_down(void *data, const char *why)
{
    (void)data;
    out("down %s", why);
    if (!cg_shardsub_idle(&d.ss))
        out("fail not idle in down");
    if (d.reconnect)
        uv_timer_start(&d.retry, on_retry, 200, 0);
}

static void on_message(void *data, const char *ch, size_t chlen, const char *msg, size_t len)
{
    (void)data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)msg[i]) * 1099511628211ull;
    char hex[65];
    size_t n = len < 32 ? len : 32;
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)msg[i]);
    hex[2 * n] = 0;
    out("message %.*s %zu %016llx %s", (int)chlen, ch, len, (unsigned long long)h, hex);
    if (d.closein && --d.closein == 0) {
        cg_shardsub_close(&d.ss);
        out("ok closed in hook");
    }
}

static void on_subscribed(void *data, const char *ch, size_t chlen)
{
    (void)data;
    out("subscribed %.*s", (int)chlen, ch);
}

static void on_refused(void *data, const char *ch, size_t chlen, const char *err)
{
    (void)data;
    out("refused %.*s %s", (int)chlen, ch, err);
}

static void on_lost(void *data, const char *ch, size_t chlen)
{
    (void)data;
    out("lost %.*s", (int)chlen, ch);
}

static int wanted_find(const char *ch)
{
    for (int i = 0; i < d.nwanted; i++)
        if (strcmp(d.wanted[i], ch) == 0)
            return i;
    return -1;
}

static void command(char *line)
{
    char *argv[MAX_ARGS];
    int argc = 0;
    for (char *tok = strtok(line, " "); tok && argc < MAX_ARGS; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    if (argc == 0)
        return;
    const char *c = argv[0];
    int ok;
    if (strcmp(c, "connect") == 0 && argc >= 3 && argc <= 5 && strlen(argv[1]) < 256) {
        snprintf(d.host, sizeof d.host, "%s", argv[1]);
        d.port = (unsigned)strtoul(argv[2], NULL, 10);
        d.auth_argc = argc - 3;
        for (int i = 0; i < d.auth_argc; i++)
            snprintf(d.auth[i], sizeof d.auth[i], "%s", argv[3 + i]);
        ok = do_connect() == 0;
    } else if (strcmp(c, "reconnect") == 0 && argc == 2) {
        d.reconnect = strcmp(argv[1], "on") == 0;
        ok = 1;
    } else if (strcmp(c, "sub") == 0 && argc == 2 && strlen(argv[1]) < 128) {
        if (wanted_find(argv[1]) < 0 && d.nwanted < MAX_WANTED)
            snprintf(d.wanted[d.nwanted++], sizeof d.wanted[0], "%s", argv[1]);
        ok = cg_shardsub_subscribe(&d.ss, argv[1], strlen(argv[1])) == 0;
    } else if (strcmp(c, "unsub") == 0 && argc == 2) {
        int i = wanted_find(argv[1]);
        if (i >= 0)
            memcpy(d.wanted[i], d.wanted[--d.nwanted], sizeof d.wanted[0]);
        ok = cg_shardsub_unsubscribe(&d.ss, argv[1], strlen(argv[1])) == 0;
    } else if (strcmp(c, "close") == 0) {
        cg_shardsub_close(&d.ss);
        ok = cg_shardsub_idle(&d.ss);
    } else if (strcmp(c, "closein") == 0 && argc == 2) {
        d.closein = atoi(argv[1]);
        ok = 1;
    } else if (strcmp(c, "flood") == 0 && argc == 3) {
        int n = atoi(argv[1]);
        size_t len = strtoul(argv[2], NULL, 10);
        char *ch = malloc(len + 16);
        ok = ch != NULL;
        for (int i = 0; ok && i < n; i++) {
            memset(ch, 'f', len);
            int k = snprintf(ch + len, 16, "%d", i);
            if (cg_shardsub_subscribe(&d.ss, ch, len + (size_t)k) < 0) {
                out("fail flood at %d", i);
                free(ch);
                return;
            }
        }
        free(ch);
    } else {
        ok = 0;
    }
    out("%s %s", ok ? "ok" : "fail", c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(d.line + d.linelen, (unsigned)(sizeof d.line - 1 - d.linelen));
}

static void on_stdin(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0) {
        cg_shardsub_close(&d.ss);
        uv_timer_stop(&d.retry);
        uv_close((uv_handle_t *)&d.retry, NULL);
        uv_close((uv_handle_t *)s, NULL);
        return;
    }
    d.linelen += (size_t)nread;
    char *nl;
    while ((nl = memchr(d.line, '\n', d.linelen))) {
        *nl = 0;
        size_t used = (size_t)(nl - d.line) + 1;
        command(d.line);
        memmove(d.line, nl + 1, d.linelen - used);
        d.linelen -= used;
    }
    if (d.linelen == sizeof d.line - 1) {
        out("fail line too long");
        d.linelen = 0;
    }
}

int main(void)
{
    static const struct cg_shardsub_hooks hooks = {on_up,      on_down, on_message, on_subscribed,
                                                   on_refused, on_lost, NULL};
    if (uv_loop_init(&d.loop) < 0 || uv_pipe_init(&d.loop, &d.in, 0) < 0 ||
        uv_pipe_open(&d.in, 0) < 0 || uv_timer_init(&d.loop, &d.retry) < 0) {
        fprintf(stderr, "shardsub_driver: cannot set up the loop on stdin\n");
        return 1;
    }
    cg_shardsub_init(&d.ss, &d.loop, &hooks);
    uv_read_start((uv_stream_t *)&d.in, on_alloc, on_stdin);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&d.loop);
    if (rc != 0) {
        fprintf(stderr, "shardsub_driver: uv_loop_close: %s (a handle left open)\n",
                uv_strerror(rc));
        return 1;
    }
    out("exit");
    return 0;
}
