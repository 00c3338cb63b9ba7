/* cidr.c: address lists (set_real_ip_from, allow/deny). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/http.h"

int pt_cidr_parse(const char *s, struct pt_cidr *out)
{
    char ip[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    long bits;
    char *end;

    if (n >= sizeof(ip))
        return PT_ERROR;
    memcpy(ip, s, n);
    ip[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, ip, out->addr) == 1) {
        out->family = AF_INET;
        out->bits = 32;
    } else if (inet_pton(AF_INET6, ip, out->addr) == 1) {
        out->family = AF_INET6;
        out->bits = 128;
    } else {
        return PT_ERROR;
    }
    if (slash) {
        bits = strtol(slash + 1, &end, 10);
        if (*end || end == slash + 1 || bits < 0 || bits > (long)out->bits)
            return PT_ERROR;
        out->bits = (unsigned)bits;
    }
    return PT_OK;
}

static int prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned bytes = bits / 8, rest = bits % 8;

    if (memcmp(a, b, bytes) != 0)
        return 0;
    if (rest == 0)
        return 1;
    return ((a[bytes] ^ b[bytes]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

int pt_cidr_match(const struct pt_cidr *list, int n, const struct sockaddr *sa)
{
    const uint8_t *addr;
    uint8_t mapped[4];
    int family = sa->sa_family;

    if (family == AF_INET) {
        addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        addr = s6->sin6_addr.s6_addr;
        /* An IPv4-mapped peer matches IPv4 rules. */
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            memcpy(mapped, addr + 12, 4);
            addr = mapped;
            family = AF_INET;
        }
    }
    for (int i = 0; i < n; i++)
        if (list[i].family == family && prefix_equal(list[i].addr, addr, list[i].bits))
            return 1;
    return 0;
}
