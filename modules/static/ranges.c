/*
 * ranges.c: byte ranges of a file, as nginx's range filter answers them: the set parsed
 * as ngx_http_range_parse parses it (a malformed set, or one with nothing satisfiable, is
 * 416; a range from 0 that is empty, or more bytes asked than the file has, the whole
 * file), one range answered with its Content-Range, several as multipart/byteranges in
 * nginx's layout.  More than MAX_RANGES ranges get the whole file.
 */
#include <stdio.h>
#include <string.h>

#include "core/pool.h"
#include "modules/static/static.h"
#include "worker/var_http.h"

#define MAX_RANGES 64

struct byte_range {
    int64_t first, end; /* [first, end) */
};

enum parsed { PARSED_NONE, PARSED_SOME, PARSED_BAD };

/* Reads a run of digits at *<p> into *<v>; 0 when none or on overflow. */
static int number(const char **p, const char *end, int64_t *v)
{
    const char *s = *p;

    *v = 0;
    while (*p < end && **p >= '0' && **p <= '9') {
        if (*v > (INT64_MAX - 9) / 10)
            return 0;
        *v = *v * 10 + (**p - '0');
        (*p)++;
    }
    return *p > s;
}

static void skip_spaces(const char **p, const char *end)
{
    while (*p < end && **p == ' ')
        (*p)++;
}

/* Reads one range-spec at *<p> into [*start, *stop) against <size>; 0 when malformed. */
static int one_spec(const char **p, const char *end, int64_t size, int64_t *start, int64_t *stop)
{
    int suffix = 0;

    *start = *stop = 0;
    skip_spaces(p, end);
    if (*p < end && **p != '-') {
        if (!number(p, end, start))
            return 0;
        skip_spaces(p, end);
        if (*p == end || *(*p)++ != '-')
            return 0;
        skip_spaces(p, end);
        if (*p == end || **p == ',') {
            *stop = size;
            return 1;
        }
    } else {
        suffix = 1;
        (*p)++;
    }
    if (!number(p, end, stop))
        return 0;
    skip_spaces(p, end);
    if (*p < end && **p != ',')
        return 0;
    if (suffix) {
        *start = *stop < size ? size - *stop : 0;
        *stop = size - 1;
    }
    *stop = *stop >= size ? size : *stop + 1;
    return 1;
}

/* nginx's ngx_http_range_parse of <s> into <out> (MAX_RANGES at most) and *<n>. */
static enum parsed parse(struct pt_str s, int64_t size, struct byte_range *out, int *n)
{
    const char *p = s.p, *end = s.p + s.len;
    int64_t total = 0, start, stop;

    *n = 0;
    for (;;) {
        if (!one_spec(&p, end, size, &start, &stop))
            return PARSED_BAD;
        if (start < stop) {
            if (*n == MAX_RANGES)
                return PARSED_NONE;
            out[(*n)++] = (struct byte_range){start, stop};
            total += stop - start;
        } else if (start == 0) {
            return PARSED_NONE;
        }
        if (p == end || *p++ != ',')
            break;
    }
    if (*n == 0)
        return PARSED_BAD;
    return total > size ? PARSED_NONE : PARSED_SOME;
}

/* <prefix>"bytes FIRST-LAST/SIZE"<suffix> into r's pool (p NULL when out of memory). */
static struct pt_str content_range(struct pt_request *r, const struct byte_range *br, int64_t size,
                                   const char *prefix, const char *suffix)
{
    char buf[160];
    int n = snprintf(buf, sizeof(buf), "%sbytes %lld-%lld/%lld%s", prefix, (long long)br->first,
                     (long long)br->end - 1, (long long)size, suffix);
    char *p = pt_pstrndup(r->pool, buf, (size_t)n);

    return (struct pt_str){p, p ? (size_t)n : 0};
}

/* Several ranges: multipart/byteranges, each part "CRLF--B CRLF Content-Type: T CRLF
 * Content-Range: bytes A-Z/S CRLF CRLF" then its bytes, closed by "CRLF--B--CRLF". */
static int multipart(struct pt_request *r, const struct byte_range *br, int n, int64_t size,
                     struct file_ctx *f)
{
    struct pt_header *ct = pt_header_find(&r->out, "Content-Type");
    struct pt_str type = ct ? ct->value : PT_STR("application/octet-stream"), close;
    char boundary[21], head[512], *p;
    int len;

    /* 80 random bits: no file holds them by chance. */
    pt_random_hex(boundary, 20);
    boundary[20] = '\0';
    if ((f->pieces = pt_palloc(r->pool, (size_t)(2 * n + 1) * sizeof(*f->pieces))) == NULL)
        return PT_ERROR;
    len =
        snprintf(head, sizeof(head), "\r\n--%s\r\nContent-Type: %.*s\r\nContent-Range: ", boundary,
                 (int)pt_min(type.len, 400), type.p);
    for (int i = 0; i < n; i++) {
        f->pieces[2 * i].text = content_range(r, &br[i], size, head, "\r\n\r\n");
        if (f->pieces[2 * i].text.p == NULL)
            return PT_ERROR;
        f->pieces[2 * i + 1] = (struct piece){PT_NULL_STR, br[i].first, br[i].end - br[i].first};
    }
    len = snprintf(head, sizeof(head), "\r\n--%s--\r\n", boundary);
    close = (struct pt_str){pt_pstrndup(r->pool, head, (size_t)len), (size_t)len};
    len = snprintf(head, sizeof(head), "multipart/byteranges; boundary=%s", boundary);
    if (close.p == NULL || (p = pt_pstrndup(r->pool, head, (size_t)len)) == NULL)
        return PT_ERROR;
    f->pieces[2 * n] = (struct piece){close, 0, 0};
    f->npieces = 2 * n + 1;
    pt_header_remove(&r->out, "Content-Type");
    return pt_header_add(r, &r->out, PT_STR("Content-Type"), (struct pt_str){p, (size_t)len});
}

int pt_static_ranges(struct pt_request *r, struct pt_str set, int64_t size, struct file_ctx *f)
{
    struct byte_range br[MAX_RANGES];
    struct pt_str cr;
    int n;

    switch (parse(set, size, br, &n)) {
    case PARSED_BAD: return 416;
    case PARSED_NONE: return PT_OK;
    case PARSED_SOME: break;
    }
    if (f == NULL)
        return PT_OK;
    r->status = 206;
    pt_header_remove(&r->out, "Accept-Ranges");
    if (n > 1)
        return multipart(r, br, n, size, f);
    cr = content_range(r, &br[0], size, "", "");
    if (cr.p == NULL || pt_header_add(r, &r->out, PT_STR("Content-Range"), cr) != PT_OK)
        return PT_ERROR;
    f->whole = (struct piece){PT_NULL_STR, br[0].first, br[0].end - br[0].first};
    return PT_OK;
}
