/* probe.c -- the smallest libFuzzer target: meson links it to learn whether clang's
 * fuzzer runtime (libclang-rt-14-dev) is installed. */
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)data;
    (void)size;
    return 0;
}
