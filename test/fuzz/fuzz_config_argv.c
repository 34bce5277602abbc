/* fuzz_config_argv.c -- cg_config_load (gateway/config.h) over hostile command lines.
 *
 * Input: the arguments after argv[0], separated by NUL bytes. A --config FILE (or
 * --config=FILE) names a fixed small settings file instead of whatever path the input
 * holds, so flags are also parsed on top of a file (and no input opens /dev/zero). */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "fuzz_config.h"

#define MAX_ARGS 64

static char path[64], path_eq[80];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char file[] = "{\"listen\":\"127.0.0.1:9000\",\"origins\":[\"https://a.example\"],"
                               "\"intervals\":\"1m,1h\",\"record_bars\":true,\"rate_limit\":"
                               "200}\n";
    (void)argc;
    (void)argv;
    int fd = memfd_create("chartgate-fuzz-config", 0);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(write(fd, file, sizeof(file) - 1) == (ssize_t)(sizeof(file) - 1));
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    snprintf(path_eq, sizeof(path_eq), "--config=%s", path);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *args[MAX_ARGS + 2];
    int argc = 0;
    char a0[] = "chartgate";
    args[argc++] = a0;
    size_t pos = 0;
    while (pos < size && argc <= MAX_ARGS) {
        const uint8_t *p = data + pos;
        const uint8_t *z = memchr(p, 0, size - pos);
        size_t len = z ? (size_t)(z - p) : size - pos;
        pos += len + 1;
        char *s = malloc(len + 1); /* each argument in its own exact allocation */
        FUZZ_CHECK(s);
        memcpy(s, p, len);
        s[len] = 0;
        if (argc >= 2 && !strcmp(args[argc - 1], "--config")) {
            free(s);
            s = strdup(path);
        } else if (!strncmp(s, "--config=", 9)) {
            free(s);
            s = strdup(path_eq);
        }
        FUZZ_CHECK(s);
        args[argc++] = s;
    }
    args[argc] = NULL;
    fuzz_config_run(argc, args);
    for (int i = 1; i < argc; i++)
        free(args[i]);
    return 0;
}
