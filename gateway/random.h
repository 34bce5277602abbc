/* random.h -- random identifiers from the operating system's generator (OpenSSL RAND_bytes):
 * session ids for dev logins, the resume epoch. */
#ifndef CG_RANDOM_H
#define CG_RANDOM_H

#include <stddef.h>

/* Writes nbytes random bytes as 2 * nbytes lowercase hex digits and a NUL into out (which must
 * hold 2 * nbytes + 1). Returns 0, or -1 when the generator fails (out is then "").*/
int cg_random_hex(char *out, size_t nbytes);

#endif
