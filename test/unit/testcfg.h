/* testcfg.h -- the default gateway configuration, for unit tests of modules that take one
 * (request parsing, and the allocation-failure tests of it). Header only, like check.h. */
#ifndef CG_TEST_TESTCFG_H
#define CG_TEST_TESTCFG_H

#include <stddef.h>

#include "config.h"

/* The configuration of a gateway started with no flags (intervals 1s,1m,5m,15m,1h,1d; history
 * cap 1000), loaded on first use; borrowed, valid for the whole process. */
static inline const struct cg_config *test_cfg(void)
{
    static struct cg_config cfg;
    static int done;
    if (!done) {
        char *argv[] = {"test", NULL};
        char err[256];
        cg_config_load(&cfg, 1, argv, "web", err, sizeof(err), NULL);
        done = 1;
    }
    return &cfg;
}

#endif
