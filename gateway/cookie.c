/* cookie.c -- exact-name Cookie header parsing (RFC 6265 section 4.2.1, leniently). */
#include "cookie.h"

#include <string.h>

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

int cg_cookie_get(const char *header, size_t len, const char *name, char *out, size_t outsz)
{
    size_t nlen = strlen(name), i = 0;
    while (i < len) {
        /* One "name=value" pair ends at ';' (browsers) or ',' (some proxies fold). */
        while (i < len && (is_ws(header[i]) || header[i] == ';' || header[i] == ','))
            i++;
        size_t ks = i;
        while (i < len && header[i] != '=' && header[i] != ';' && header[i] != ',')
            i++;
        size_t ke = i;
        while (ke > ks && is_ws(header[ke - 1]))
            ke--;
        if (i >= len || header[i] != '=')
            continue; /* a bare token: not a pair */
        i++;
        while (i < len && is_ws(header[i]))
            i++;
        size_t vs = i;
        while (i < len && header[i] != ';' && header[i] != ',')
            i++;
        size_t ve = i;
        while (ve > vs && is_ws(header[ve - 1]))
            ve--;
        if (ve - vs >= 2 && header[vs] == '"' && header[ve - 1] == '"') {
            vs++;
            ve--;
        }
        if (ke - ks == nlen && !memcmp(header + ks, name, nlen)) {
            size_t vl = ve - vs;
            if (vl + 1 > outsz)
                return -2;
            memcpy(out, header + vs, vl);
            out[vl] = 0;
            return (int)vl;
        }
    }
    return -1;
}
