/*
 * negotiate.c: Accept-Encoding (RFC 9110 12.5.3).  The value is a list of codings with
 * optional weights: "gzip;q=0.8, br, *;q=0.1".  A weight is 0 to 1 with at most three
 * decimals; 0 means "not acceptable".  Nothing here allocates.
 */
#include <string.h>

#include "modules/gzip/gzip.h"

#define UNSET (-1) /* weight of a coding the client did not name */

static const char *const names[PT_NCODINGS] = {"br", "zstd", "gzip"};

const char *pt_coding_name(enum pt_coding coding)
{
    return coding >= 0 && coding < PT_NCODINGS ? names[coding] : "identity";
}

static int ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims optional white space around <s>. */
static struct pt_str trim(struct pt_str s)
{
    while (s.len && ows(s.p[0]))
        s.p++, s.len--;
    while (s.len && ows(s.p[s.len - 1]))
        s.len--;
    return s;
}

/* Parses a qvalue ("0", "0.5", "1.000") into thousandths; -1 when it is not one. */
static int qvalue(struct pt_str v)
{
    int q, digits = 0;

    if (v.len == 0 || (v.p[0] != '0' && v.p[0] != '1'))
        return -1;
    q = (v.p[0] - '0') * 1000;
    if (v.len == 1)
        return q;
    if (v.p[1] != '.' || v.len > 5)
        return -1;
    for (size_t i = 2; i < v.len; i++, digits++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        q += (v.p[i] - '0') * (digits == 0 ? 100 : digits == 1 ? 10 : 1);
    }
    return q > 1000 ? -1 : q;
}

/* The weight of one list element "coding[;q=x][;other]", its coding in *<coding>; -1 when
 * the element does not parse. */
static int element(struct pt_str e, struct pt_str *coding)
{
    const char *semi = memchr(e.p, ';', e.len);
    struct pt_str params;
    int q = 1000;

    *coding = trim((struct pt_str){e.p, semi ? (size_t)(semi - e.p) : e.len});
    if (coding->len == 0)
        return -1;
    params = semi ? (struct pt_str){semi + 1, e.len - (size_t)(semi + 1 - e.p)} : PT_NULL_STR;
    while (params.len) {
        const char *next = memchr(params.p, ';', params.len);
        struct pt_str p =
            trim((struct pt_str){params.p, next ? (size_t)(next - params.p) : params.len});
        if (p.len >= 2 && (p.p[0] == 'q' || p.p[0] == 'Q') && p.p[1] == '=') {
            q = qvalue(trim((struct pt_str){p.p + 2, p.len - 2}));
            if (q < 0)
                return -1;
        }
        params = next ? (struct pt_str){next + 1, params.len - (size_t)(next + 1 - params.p)}
                      : PT_NULL_STR;
    }
    return q;
}

enum pt_coding pt_coding_negotiate(struct pt_str ae, unsigned offered)
{
    int weight[PT_NCODINGS], star = UNSET, best = PT_CODING_NONE, best_q = 0;

    if (ae.p == NULL)
        return PT_CODING_NONE;
    for (int i = 0; i < PT_NCODINGS; i++)
        weight[i] = UNSET;
    while (ae.len) {
        const char *comma = memchr(ae.p, ',', ae.len);
        struct pt_str e = {ae.p, comma ? (size_t)(comma - ae.p) : ae.len}, coding;
        int q = element(e, &coding);
        ae = comma ? (struct pt_str){comma + 1, ae.len - (size_t)(comma + 1 - ae.p)} : PT_NULL_STR;
        if (q < 0)
            continue;
        if (pt_str_ieq(coding, "*"))
            star = q;
        else if (pt_str_ieq(coding, "x-gzip"))
            weight[PT_CODING_GZIP] = weight[PT_CODING_GZIP] == UNSET ? q : weight[PT_CODING_GZIP];
        for (int i = 0; i < PT_NCODINGS; i++)
            if (pt_str_ieq(coding, names[i]))
                weight[i] = q;
    }
    for (int i = 0; i < PT_NCODINGS; i++) {
        int q = weight[i] == UNSET ? star : weight[i];
        if (!(offered & (1u << i)) || q <= 0)
            continue;
        if (q > best_q) {
            best_q = q;
            best = i;
        }
    }
    return (enum pt_coding)best;
}
