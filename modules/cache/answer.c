/*
 * answer.c: answering a client's own conditionals and ranges from a stored entry (RFC 9110
 * 8.8.3, 13, 14; see policy.h for the contract).  Nothing here reads a clock or allocates.
 */
#include "modules/cache/fields.h"
#include "modules/cache/policy.h"

/* ---------------------------------------------------------------------------------------
 * Entity-tags and conditionals (RFC 9110 8.8.3, 13).
 */

/* Reads the entity-tag at the start of <*s> (OWS skipped first) and consumes it:
 * [ "W/" ] DQUOTE *etagc DQUOTE.  <*opaque> is the quoted part; returns 0 when malformed. */
static int parse_etag(struct pt_str *s, struct pt_str *opaque, int *weak)
{
    struct pt_str t = skip_ows(*s);
    size_t i;

    *weak = t.len >= 2 && t.p[0] == 'W' && t.p[1] == '/'; /* "W/" is case-sensitive */
    if (*weak) {
        t.p += 2;
        t.len -= 2;
    }
    if (t.len < 2 || t.p[0] != '"')
        return 0;
    for (i = 1; i < t.len && t.p[i] != '"'; i++)
        if ((unsigned char)t.p[i] < 0x21 || t.p[i] == 0x7f) /* etagc: no CTL, SP or DEL */
            return 0;
    if (i == t.len)
        return 0;
    *opaque = (struct pt_str){t.p, i + 1};
    *s = (struct pt_str){t.p + i + 1, t.len - i - 1};
    return 1;
}

/* The stored entity-tag of <stored>; 0 when it has none (or a malformed one). */
static int stored_etag(const struct pt_cache_resp *stored, struct pt_str *opaque, int *weak)
{
    const struct pt_http_header *f = pt_http_find_header(stored->h, stored->n, "ETag");
    struct pt_str v;

    if (!f)
        return 0;
    v = f->value;
    return parse_etag(&v, opaque, weak) && skip_ows(v).len == 0;
}

/* Returns 1 if entity-tag <a> matches <b>: weakly (same opaque-tag) or strongly (also both
 * strong), RFC 9110 8.8.3.2. */
static int etag_match(struct pt_str a, int a_weak, struct pt_str b, int b_weak, int weak)
{
    if (!weak && (a_weak || b_weak))
        return 0;
    return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

/* Returns 1 if one of the fields <name> of <req> (If-Match, If-None-Match) holds "*" (the
 * stored response is a current representation) or a tag matching the stored one. */
static int etag_list_matches(const struct pt_cache_req *req, const char *name,
                             const struct pt_cache_resp *stored, int weak)
{
    const struct pt_http_header *f;
    struct pt_str tag, list, mine;
    int tag_weak, mine_weak, have = stored_etag(stored, &mine, &mine_weak);
    size_t i = 0;

    while ((f = next_field(req->h, req->n, &i, name))) {
        list = f->value;
        while ((list = skip_ows(list)).len) {
            if (list.p[0] == ',') {
                list.p++, list.len--;
            } else if (list.p[0] == '*') {
                return 1;
            } else if (parse_etag(&list, &tag, &tag_weak)) {
                if (have && etag_match(tag, tag_weak, mine, mine_weak, weak))
                    return 1;
            } else { /* a malformed member matches nothing */
                const char *end = skip_member(list.p, list.p + list.len);
                list = (struct pt_str){end, (size_t)(list.p + list.len - end)};
            }
        }
    }
    return 0;
}

/* The one field <name> of <req> as a date; -1 when absent, invalid, or repeated (a list of
 * dates, which RFC 9110 13.1.3 and 13.1.4 ask to ignore). */
static time_t single_date(const struct pt_cache_req *req, const char *name, time_t now)
{
    size_t i = 0;
    const struct pt_http_header *f = next_field(req->h, req->n, &i, name);

    if (!f || next_field(req->h, req->n, &i, name))
        return -1;
    return pt_http_parse_date(f->value, now);
}

int pt_cache_conditional(const struct pt_cache_req *req, const struct pt_cache_resp *stored,
                         enum pt_cache_ims ims)
{
    time_t now = stored->response_time, lm, since;
    int safe = req->method == PT_HTTP_GET || req->method == PT_HTTP_HEAD;

    if (stored->status < 200 || stored->status > 299)
        return 0; /* RFC 9110 13.2.1: preconditions apply to what would be a 2xx */
    lm = date_field(stored->h, stored->n, "Last-Modified", now);
    if (pt_http_find_header(req->h, req->n, "If-Match")) {
        if (!etag_list_matches(req, "If-Match", stored, 0))
            return 412;
    } else if ((since = single_date(req, "If-Unmodified-Since", now)) >= 0) {
        if (lm < 0 || lm > since)
            return 412;
    }
    if (pt_http_find_header(req->h, req->n,
                            "If-None-Match")) /* If-Modified-Since is then ignored */
        return etag_list_matches(req, "If-None-Match", stored, 1) ? (safe ? 304 : 412) : 0;
    if (!safe || ims == PT_CACHE_IMS_OFF || lm < 0)
        return 0;
    since = single_date(req, "If-Modified-Since", now);
    if (since < 0)
        return 0;
    return lm == since || (ims == PT_CACHE_IMS_BEFORE && lm < since) ? 304 : 0;
}

/* ---------------------------------------------------------------------------------------
 * Range (RFC 9110 14).
 */

/* Returns 1 unless <req>'s If-Range says the stored response is not the one the client
 * has (RFC 9110 13.1.5): then the Range is ignored and the whole response sent. */
static int if_range_holds(const struct pt_cache_req *req, const struct pt_cache_resp *stored)
{
    const struct pt_http_header *f = pt_http_find_header(req->h, req->n, "If-Range");
    struct pt_str v, tag, mine;
    int weak, mine_weak;
    time_t when, lm, date;

    if (!f)
        return 1;
    v = f->value;
    /* an entity-tag has a DQUOTE in its first three characters, a date has none */
    if (memchr(v.p, '"', pt_min(v.len, 3)))
        return parse_etag(&v, &tag, &weak) && skip_ows(v).len == 0 &&
               stored_etag(stored, &mine, &mine_weak) && etag_match(tag, weak, mine, mine_weak, 0);
    when = pt_http_parse_date(f->value, stored->response_time);
    lm = date_field(stored->h, stored->n, "Last-Modified", stored->response_time);
    date = date_field(stored->h, stored->n, "Date", stored->response_time);
    /* a date is only a strong validator when Last-Modified is a minute before Date
     * (RFC 9110 8.8.2.2) */
    return when >= 0 && when == lm && date >= 0 && date - lm >= 60;
}

enum spec { SPEC_BAD, SPEC_RANGE, SPEC_SUFFIX };

/* Parses one range-spec: first "-" [ last ] (last -1 when absent) or "-" suffix. */
static enum spec parse_spec(struct pt_str s, int64_t *first, int64_t *last)
{
    const char *dash = memchr(s.p, '-', s.len);
    struct pt_str a, b;

    if (!dash)
        return SPEC_BAD;
    a = (struct pt_str){s.p, (size_t)(dash - s.p)};
    b = (struct pt_str){dash + 1, s.len - a.len - 1};
    if (a.len == 0) {
        *first = parse_digits(b, INT64_MAX);
        return *first < 0 ? SPEC_BAD : SPEC_SUFFIX;
    }
    *first = parse_digits(a, INT64_MAX);
    *last = b.len ? parse_digits(b, INT64_MAX) : -1;
    if (*first < 0 || (b.len && (*last < 0 || *last < *first)))
        return SPEC_BAD; /* RFC 9110 14.1.1: last before first is invalid */
    return SPEC_RANGE;
}

/* Clips a parsed spec to <length> into <r>; returns 0 when it is unsatisfiable. */
static int clip(enum spec kind, int64_t first, int64_t last, int64_t length,
                struct pt_cache_range *r)
{
    if (kind == SPEC_SUFFIX) {
        if (first == 0 || length == 0)
            return 0;
        r->first = first >= length ? 0 : length - first;
        r->last = length - 1;
        return 1;
    }
    if (first >= length)
        return 0;
    r->first = first;
    r->last = last < 0 || last >= length ? length - 1 : last;
    return 1;
}

enum pt_cache_ranges pt_cache_range(const struct pt_cache_req *req,
                                    const struct pt_cache_resp *stored, int64_t length,
                                    struct pt_cache_range *out)
{
    const struct pt_http_header *f;
    struct pt_str set, m;
    struct pt_cache_range r;
    unsigned specs = 0, satisfiable = 0, empty_suffix = 0;
    int64_t first, last = -1;
    enum spec kind;
    size_t i = 0;

    if (req->method != PT_HTTP_GET || stored->status != 200 || length < 0)
        return PT_CACHE_RANGE_NONE;
    f = next_field(req->h, req->n, &i, "Range");
    if (!f || next_field(req->h, req->n, &i, "Range") || !if_range_holds(req, stored))
        return PT_CACHE_RANGE_NONE;
    if (f->value.len < 6 || strncasecmp(f->value.p, "bytes=", 6) != 0)
        return PT_CACHE_RANGE_NONE; /* another unit: ignored (RFC 9110 14.2) */
    set = (struct pt_str){f->value.p + 6, f->value.len - 6};
    for (; next_member(&set, &m); specs++) {
        if ((kind = parse_spec(m, &first, &last)) == SPEC_BAD)
            return PT_CACHE_RANGE_NONE;
        empty_suffix |= kind == SPEC_SUFFIX && first > 0 && length == 0;
        if (clip(kind, first, last, length, &r) && satisfiable++ == 0)
            *out = r;
    }
    if (specs == 0 || (satisfiable == 0 && empty_suffix))
        return PT_CACHE_RANGE_NONE; /* an empty body is sent whole to "-N" */
    if (satisfiable == 0)
        return PT_CACHE_RANGE_UNSATISFIABLE;
    return satisfiable == 1 ? PT_CACHE_RANGE_SINGLE : PT_CACHE_RANGE_MULTIPLE;
}
