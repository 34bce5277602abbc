/* slots.c -- Redis Cluster hash slots, the slot map, redirection errors and routing keys. */
#include "slots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as Redis Cluster specifies. */
static uint16_t crc16(const unsigned char *p, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

uint16_t cg_slots_of(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return crc16((const unsigned char *)open + 1, (size_t)(close - open - 1)) & 16383;
    }
    return crc16((const unsigned char *)key, len) & 16383;
}

void cg_slots_init(struct cg_slots *m)
{
    memset(m, 0, sizeof(*m));
    cg_slots_clear(m);
}

void cg_slots_clear(struct cg_slots *m)
{
    for (size_t i = 0; i < CG_SLOTS_COUNT; i++)
        m->owner[i] = CG_SLOTS_NONE;
}

int cg_slots_node(struct cg_slots *m, const char *host, uint32_t port)
{
    size_t hl = strlen(host);
    if (hl > CG_SLOTS_HOST_MAX || !port || port > 65535)
        return -1;
    for (size_t i = 0; i < m->nnodes; i++)
        if (m->nodes[i].port == port && !strcmp(m->nodes[i].host, host))
            return (int)i;
    if (m->nnodes == CG_SLOTS_NODES_MAX)
        return -1;
    memcpy(m->nodes[m->nnodes].host, host, hl + 1);
    m->nodes[m->nnodes].port = port;
    return (int)m->nnodes++;
}

int cg_slots_assign(struct cg_slots *m, uint32_t from, uint32_t to, const char *host, uint32_t port)
{
    if (from > to || to >= CG_SLOTS_COUNT)
        return -1;
    int n = cg_slots_node(m, host, port);
    if (n < 0)
        return -1;
    for (uint32_t s = from; s <= to; s++)
        m->owner[s] = (uint16_t)n;
    return n;
}

size_t cg_slots_unserved(const struct cg_slots *m)
{
    size_t n = 0;
    for (size_t i = 0; i < CG_SLOTS_COUNT; i++)
        n += m->owner[i] == CG_SLOTS_NONE;
    return n;
}

int cg_slots_redirect(const char *err, size_t len, uint16_t *slot, char host[CG_SLOTS_HOST_MAX + 1],
                      uint32_t *port)
{
    int kind;
    size_t at;
    if (len > 6 && !memcmp(err, "MOVED ", 6))
        kind = CG_SLOTS_MOVED, at = 6;
    else if (len > 4 && !memcmp(err, "ASK ", 4))
        kind = CG_SLOTS_ASK, at = 4;
    else
        return 0;
    /* <slot> */
    uint32_t s = 0;
    size_t digits = 0;
    while (at < len && err[at] >= '0' && err[at] <= '9' && digits < 6)
        s = s * 10 + (uint32_t)(err[at++] - '0'), digits++;
    if (!digits || s >= CG_SLOTS_COUNT || at >= len || err[at] != ' ')
        return 0;
    at++;
    /* <host>:<port>, split at the last ':' (IPv6 hosts hold colons) */
    const char *addr = err + at;
    size_t alen = len - at;
    const char *colon = NULL;
    for (size_t i = 0; i < alen; i++)
        if (addr[i] == ':')
            colon = addr + i;
    if (!colon || (size_t)(colon - addr) > CG_SLOTS_HOST_MAX)
        return 0;
    uint32_t p = 0;
    size_t pd = 0;
    for (const char *c = colon + 1; c < addr + alen; c++, pd++) {
        if (*c < '0' || *c > '9' || pd == 5)
            return 0;
        p = p * 10 + (uint32_t)(*c - '0');
    }
    if (!pd || !p || p > 65535)
        return 0;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    *slot = (uint16_t)s;
    *port = p;
    return kind;
}

static int named(const char *arg, size_t len, const char *name)
{
    return strlen(name) == len && !strncasecmp(arg, name, len);
}

int cg_slots_key_index(int argc, const char *const *argv, const size_t *lens)
{
    if (argc < 1)
        return -1;
    const char *cmd = argv[0];
    size_t cl = lens[0];
    if (named(cmd, cl, "FCALL") || named(cmd, cl, "FCALL_RO") || named(cmd, cl, "EVAL") ||
        named(cmd, cl, "EVALSHA")) {
        if (argc < 4 || !lens[2] || (lens[2] == 1 && argv[2][0] == '0'))
            return -1;
        return 3;
    }
    if (named(cmd, cl, "FUNCTION") || named(cmd, cl, "SCRIPT") || named(cmd, cl, "PING") ||
        named(cmd, cl, "CLUSTER") || named(cmd, cl, "AUTH") || named(cmd, cl, "SELECT") ||
        named(cmd, cl, "ROLE") || named(cmd, cl, "INFO"))
        return -1;
    return argc >= 2 ? 1 : -1;
}
