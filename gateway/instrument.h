/* instrument.h -- what an instrument name is, and how search matches one.
 *
 * Names travel in channel names (md:<name>), Redis keys and frames, so they are kept to a safe
 * ASCII alphabet and a fixed bound. Pure. */
#ifndef CG_INSTRUMENT_H
#define CG_INSTRUMENT_H

#include <stddef.h>

#define CG_INSTRUMENT_MAX 32 /* bytes (= characters: the alphabet is ASCII) */

/* 1 if the len bytes at name are a valid instrument name: [A-Za-z0-9._-]{1,32}. */
int cg_instrument_valid(const char *name, size_t len);

/* 1 if name (NUL-terminated) contains needle, ignoring ASCII case. The empty needle matches
 * every name. */
int cg_instrument_contains(const char *name, const char *needle);

#endif
