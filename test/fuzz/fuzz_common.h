/* fuzz_common.h -- helpers shared by the libFuzzer targets (header-only: each target is
 * its own program, linked with the pure gateway modules compiled by clang).
 *
 * A target checks more than "does not crash": what the gateway would send a client is
 * encoded and must be one valid JSON object on one line (frames are batched with "\n").
 * A broken invariant aborts with a message, which libFuzzer reports as a crash. */
#ifndef CG_FUZZ_COMMON_H
#define CG_FUZZ_COMMON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A copy of len bytes in its own allocation, so ASan sees any read past the end
 * (libFuzzer's buffer is exact-sized too, but a target may pass a part of it). */
static inline char *fuzz_dup(const void *p, size_t len)
{
    char *s = malloc(len ? len : 1);
    FUZZ_CHECK(s);
    if (len)
        memcpy(s, p, len);
    return s;
}

/* Text a client receives: one JSON object, no raw line break or other control byte
 * (a batch is frames joined by "\n"), nothing after the object. */
static inline void fuzz_check_json_object(const unsigned char *p, size_t len)
{
    FUZZ_CHECK(len > 0);
    for (size_t i = 0; i < len; i++)
        FUZZ_CHECK(p[i] >= 0x20 || p[i] == '\t');
    json_error_t err;
    json_t *v = json_loadb((const char *)p, len, 0, &err);
    if (!v)
        fprintf(stderr, "frame is not valid JSON: %s at %d: %.*s\n", err.text, err.position,
                (int)(len > 400 ? 400 : len), (const char *)p);
    FUZZ_CHECK(v);
    FUZZ_CHECK(json_is_object(v));
    FUZZ_CHECK(json_is_string(json_object_get(v, "type")));
    json_decref(v);
}

static inline void fuzz_check_frame(struct cg_frame *f)
{
    FUZZ_CHECK(f);
    FUZZ_CHECK(f->refs >= 1);
    fuzz_check_json_object(cg_frame_data(f), f->len);
}

/* Consumes the frame an encoder returned: checks it and drops the reference. */
static inline void fuzz_check_new_frame(struct cg_frame *f)
{
    fuzz_check_frame(f);
    FUZZ_CHECK(f->refs == 1);
    cg_frame_unref(f);
}

/* The gateway's defaults, as main() would get them with no flags. */
static inline void fuzz_default_config(struct cg_config *cfg)
{
    char err[256], arg0[] = "chartgate";
    char *argv[] = {arg0, NULL};
    FUZZ_CHECK(cg_config_load(cfg, 1, argv, "web", err, sizeof(err), NULL) == CG_CONFIG_OK);
}

/* 1 when the NUL-terminated buffer s of size n is terminated inside it. */
#define FUZZ_TERMINATED(s) (memchr((s), 0, sizeof(s)) != NULL)

#endif
