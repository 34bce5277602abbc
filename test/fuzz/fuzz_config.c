/* fuzz_config.c -- cg_config_load (gateway/config.h) over a hostile --config file.
 *
 * Input: the file's bytes. They are written to a memfd and loaded as
 * `chartgate --config /proc/self/fd/N`, so nothing touches the disk. On success the
 * derived settings must hold their invariants; on failure the error is one printable
 * line. */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "fuzz_config.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fd = memfd_create("chartgate-fuzz-config", 0);
    FUZZ_CHECK(fd >= 0);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    FUZZ_CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
    char a0[] = "chartgate", a1[] = "--config";
    char *argv[] = {a0, a1, path, NULL};
    fuzz_config_run(3, argv);
    return 0;
}
