/*
 * fields.h: small readers of field values that the cache's policy (policy.c) and its
 * answers from a stored entry (answer.c) share: fields by name, numbers, OWS, lists, dates.
 * Static inline: each file gets its copy, none is exported.
 */
#ifndef PT_CACHE_FIELDS_H
#define PT_CACHE_FIELDS_H

#include "modules/cache/policy.h"
#include "worker/http_chars.h"

/* The next field named <name> among <h>[*<i> .. <n>), advancing *<i> past it; NULL at the end. */
static inline const struct pt_http_header *next_field(const struct pt_http_header *h, size_t n,
                                                      size_t *i, const char *name)
{
    while (*i < n) {
        const struct pt_http_header *f = &h[(*i)++];
        if (pt_str_ieq(f->name, name))
            return f;
    }
    return NULL;
}

static inline int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Parses <s> as 1*DIGIT, saturating at <max> (RFC 9111 1.2.2 asks delta-seconds too large to
 * be 2^31; positions and epoch times saturate far above anything real).  -1 when not
 * digits. */
static inline int64_t parse_digits(struct pt_str s, int64_t max)
{
    int64_t v = 0;

    if (s.len == 0)
        return -1;
    for (size_t i = 0; i < s.len; i++) {
        int d = s.p[i] - '0';
        if (!is_digit(s.p[i]))
            return -1;
        v = v > (max - d) / 10 ? max : v * 10 + d;
    }
    return v;
}

static inline struct pt_str skip_ows(struct pt_str s)
{
    while (s.len && pt_http_is_ows(*s.p)) {
        s.p++;
        s.len--;
    }
    return s;
}

static inline struct pt_str trim(struct pt_str s)
{
    s = skip_ows(s);
    while (s.len && pt_http_is_ows(s.p[s.len - 1]))
        s.len--;
    return s;
}

/* Takes the next non-empty member of the comma list <*s>, OWS trimmed, into <*m>; returns
 * 0 at the end.  For lists of tokens (Vary, Accept-*, byte ranges): no quoted strings. */
static inline int next_member(struct pt_str *s, struct pt_str *m)
{
    while (s->len) {
        const char *comma = memchr(s->p, ',', s->len);
        size_t n = comma ? (size_t)(comma - s->p) : s->len;

        *m = trim((struct pt_str){s->p, n});
        s->p += n + (comma != NULL);
        s->len -= n + (comma != NULL);
        if (m->len) /* empty members are allowed and skipped (RFC 9110 5.6.1.2) */
            return 1;
    }
    return 0;
}

/* Elapsed seconds from <from> to <to>: 0 if the clock went back, at most PT_CC_DELTA_MAX.
 * The subtraction is unsigned so that no pair of times overflows. */
static inline int64_t elapsed(time_t from, time_t to)
{
    uint64_t d;

    if (to <= from)
        return 0;
    d = (uint64_t)to - (uint64_t)from;
    return d > (uint64_t)PT_CC_DELTA_MAX ? PT_CC_DELTA_MAX : (int64_t)d;
}

/* The first field <name> of <h> as a date; -1 when absent or invalid. */
static inline time_t date_field(const struct pt_http_header *h, size_t n, const char *name,
                                time_t now)
{
    const struct pt_http_header *f = pt_http_find_header(h, n, name);

    return f ? pt_http_parse_date(f->value, now) : -1;
}

/* Skips to the next comma of a list that is not inside a quoted-string. */
static inline const char *skip_member(const char *p, const char *end)
{
    int quoted = 0;

    for (; p < end; p++) {
        if (quoted && *p == '\\' && p + 1 < end)
            p++;
        else if (*p == '"')
            quoted = !quoted;
        else if (*p == ',' && !quoted)
            break;
    }
    return p;
}

#endif
