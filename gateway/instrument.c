/* instrument.c -- instrument name validity and search matching. */
#include "instrument.h"

#include <ctype.h>
#include <string.h>

int cg_instrument_valid(const char *name, size_t len)
{
    if (!len || len > CG_INSTRUMENT_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return 0;
    }
    return 1;
}

int cg_instrument_contains(const char *name, const char *needle)
{
    size_t nl = strlen(needle);
    for (; *name; name++) {
        size_t i = 0;
        while (i < nl && name[i] &&
               tolower((unsigned char)name[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == nl)
            return 1;
    }
    return nl == 0;
}
