/* fuzz_cookie.c -- cg_cookie_get (gateway/cookie.h) over hostile Cookie headers.
 *
 * Input: the header bytes, looked up the way the handshake does ("sessionid" into a
 * CG_SESSION_ID_MAX + 1 buffer), then with other names and buffer sizes chosen by the
 * input's first byte. Checks the contract: -1, -2, or a length that fits, a
 * NUL-terminated copy that is a substring of the header and holds no pair separator. */
#include <string.h>

#include "cookie.h"
#include "fuzz_common.h"
#include "session.h"

static void lookup(const char *h, size_t len, const char *name, size_t outsz)
{
    char *out = malloc(outsz ? outsz : 1);
    FUZZ_CHECK(out);
    memset(out, 'X', outsz ? outsz : 1);
    int rc = cg_cookie_get(h, len, name, out, outsz);
    FUZZ_CHECK(rc >= -2);
    if (rc >= 0) {
        size_t vl = (size_t)rc;
        FUZZ_CHECK(vl < outsz);
        FUZZ_CHECK(out[vl] == 0);
        FUZZ_CHECK(vl <= len);
        FUZZ_CHECK(!vl || memmem(h, len, out, vl) != NULL);
        /* the value ends a pair: it never holds a separator */
        FUZZ_CHECK(!memchr(out, ';', vl) && !memchr(out, ',', vl));
        /* the name matched exactly somewhere before the value */
        FUZZ_CHECK(memmem(h, len, name, strlen(name)) != NULL);
        (void)cg_session_id_valid(out, vl);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"sessionid", "a", "xsessionid", "session id", "\"q\"", "="};
    static const size_t sizes[] = {0, 1, 2, 8, 65};
    char *h = fuzz_dup(data, size);
    /* what ws.c does */
    lookup(h, size, "sessionid", CG_SESSION_ID_MAX + 1);
    if (size) {
        uint8_t sel = data[0];
        lookup(h, size, names[sel % (sizeof(names) / sizeof(names[0]))],
               sizes[(sel >> 4) % (sizeof(sizes) / sizeof(sizes[0]))]);
        /* a prefix of the header: the parser must stop at len, not at a NUL */
        lookup(h, size / 2, "sessionid", CG_SESSION_ID_MAX + 1);
    }
    free(h);
    return 0;
}
