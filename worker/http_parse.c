/*
 * http_parse.c: request head, response head and chunked body parsers.
 *
 * A head is read in two steps.  The scanner (scan_head) runs on every call over the new
 * bytes only: it finds the line ends, refuses a bare LF the moment it sees it and enforces
 * the limits as soon as they are crossed.  Once the empty line has arrived, one pass over
 * the complete head splits and validates the start line and every field, and derives the
 * framing.  Slices are therefore only ever taken from the buffer of the final call, which
 * lets the caller move its bytes to a larger buffer between calls.
 *
 * The Transfer-Encoding field is parsed in http_te.c, the character classes are in
 * http_chars.c.
 */
#include "worker/http_parse.h"

#include <arpa/inet.h>

#include "worker/http_chars.h"
#include "worker/http_te.h"

const struct pt_http_limits pt_http_default_limits = {
    .max_request_line = 8192,
    .max_head = 32768,
    .max_headers = PT_HTTP_MAX_HEADERS,
};

/* Returned by the per-line steps of the scanner: keep going. */
#define NEXT_LINE 1

/* Returned by parse_field_line(): a field line to leave out (ignore_invalid_headers). */
#define IGNORED 2

/* Returns <status>, noting <reason> and <detail> in <err> (NULL for a response, whose
 * errors are logged by the proxy). */
static int fail(struct pt_http_error *err, int status, const char *reason, struct pt_str detail)
{
    if (err) {
        err->reason = reason;
        err->detail = detail;
    }
    return status;
}

static inline int is_alnum(char c)
{
    c = pt_lower(c);
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static inline int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    return pt_lower(c) - 'a' + 10;
}

/* Returns 1 if all of <s> is of class <cls> (and <s> is not empty when <nonempty>). */
static int all_of_class(struct pt_str s, int cls, int nonempty)
{
    if (nonempty && s.len == 0)
        return 0;
    for (size_t i = 0; i < s.len; i++)
        if (!pt_http_has_class(s.p[i], cls))
            return 0;
    return 1;
}

static struct pt_str trim_ows(struct pt_str s)
{
    while (s.len && pt_http_is_ows(s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len && pt_http_is_ows(s.p[s.len - 1]))
        s.len--;
    return s;
}

/*
 * Splits the next element off the comma-separated list <*rest>: returns it with OWS
 * trimmed (possibly empty) and advances <*rest> past its comma.  Returns 0 when the list
 * is exhausted.
 */
static int next_list_element(struct pt_str *rest, struct pt_str *elem)
{
    if (rest->p == NULL)
        return 0;
    const char *comma = memchr(rest->p, ',', rest->len);
    size_t n = comma ? (size_t)(comma - rest->p) : rest->len;
    *elem = trim_ows((struct pt_str){rest->p, n});
    if (comma)
        *rest = (struct pt_str){comma + 1, rest->len - n - 1};
    else
        *rest = PT_NULL_STR;
    return 1;
}

int pt_http_is_token(const char *s, size_t len)
{
    return all_of_class((struct pt_str){s, len}, PT_HTTP_C_TCHAR, 1);
}

int pt_http_has_token(struct pt_str value, const char *token)
{
    struct pt_str elem;

    while (next_list_element(&value, &elem))
        if (pt_str_ieq(elem, token))
            return 1;
    return 0;
}

const struct pt_http_header *pt_http_find_header(const struct pt_http_header *h, size_t n,
                                                 const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (pt_str_ieq(h[i].name, name))
            return &h[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * The head scanner: line framing and limits, over new bytes only.
 */

struct scan_limits {
    size_t first_line; /* start line length without CRLF */
    size_t head;       /* whole head */
    size_t fields;     /* field lines */
    int first_status;  /* status for a start line over first_line */
    int is_request;    /* skip leading empty lines, check the method early */
};

/*
 * Best-effort early refusal of a request line whose method is not a token, looking at
 * <buf>[<from>..<to>): binary junk or a TLS handshake on a plain port gets its 400 at once
 * instead of after 8k bytes or a timeout.  The full check is parse_request_line()'s.
 * Bytes past the limits <lim> are not looked at: a caller feeding one byte at a time
 * would have had its 414 or 431 before them, and the answer must not depend on that.
 */
static int method_prefix_bad(const char *buf, size_t from, size_t to, const struct scan_limits *lim,
                             struct pt_http_scan *st)
{
    to = pt_min(to, pt_min(st->line_start + lim->first_line, lim->head) + 1);
    for (size_t i = from; i < to && !st->method_seen; i++) {
        if (buf[i] == ' ' || buf[i] == '\r')
            st->method_seen = 1;
        else if (!pt_http_has_class(buf[i], PT_HTTP_C_TCHAR))
            return 1;
    }
    return 0;
}

/* Limits that a line without its end yet may already cross. */
static int check_partial_line(const char *buf, size_t len, const struct scan_limits *lim,
                              const struct pt_http_scan *st, struct pt_http_error *err)
{
    size_t line = len - st->line_start;

    if (line && buf[len - 1] == '\r')
        line--; /* may be the CR of the CRLF: not part of the line */
    if (!st->in_fields && line > lim->first_line)
        return fail(err, lim->first_status, "client sent too long URI", PT_NULL_STR);
    if (len > lim->head)
        return fail(err, 431, "client sent too large request", PT_NULL_STR);
    return PT_AGAIN;
}

/*
 * Accounts for the complete line <buf>[line_start..<eol>) ending in CRLF at <eol>-1 (its
 * length was checked by check_partial_line()).  Returns NEXT_LINE, PT_OK with *<head_len>
 * set when it was the empty line ending the head, or an error status.
 */
static int end_line(size_t eol, const struct scan_limits *lim, struct pt_http_scan *st,
                    size_t *head_len, struct pt_http_error *err)
{
    size_t line_len = eol - 1 - st->line_start;

    if (eol + 1 > lim->head)
        return fail(err, 431, "client sent too large request", PT_NULL_STR);
    if (st->in_fields && line_len == 0) {
        *head_len = eol + 1;
        return PT_OK;
    }
    if (st->in_fields) {
        if (++st->nfields > lim->fields)
            return fail(err, 431, "client sent too many header lines", PT_NULL_STR);
    } else if (line_len == 0 && lim->is_request) {
        /* RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request
         * line; a few, not an unbounded stream of them. */
        if (++st->nempty > PT_HTTP_MAX_EMPTY_LINES)
            return fail(err, 400, "client sent too many empty lines before the request line",
                        PT_NULL_STR);
        st->first_line = eol + 1;
        st->method_seen = 0;
    } else {
        st->in_fields = 1;
    }
    st->line_start = eol + 1;
    return NEXT_LINE;
}

/*
 * Scans <buf>/<len> from *<pos> for the end of the head.  Returns PT_OK with *<head_len>
 * set, PT_AGAIN, or an error status (400, the start-line status, 431).
 */
static int scan_head(const char *buf, size_t len, const struct scan_limits *lim, size_t *pos,
                     struct pt_http_scan *st, size_t *head_len, struct pt_http_error *err)
{
    while (*pos < len) {
        const char *lf = memchr(buf + *pos, '\n', len - *pos);
        size_t end = lf ? (size_t)(lf - buf) : len;

        if (lim->is_request && !st->in_fields && method_prefix_bad(buf, *pos, end, lim, st))
            return fail(err, 400, "client sent invalid method", PT_NULL_STR);
        /* Limits before the line end: a caller feeding one byte at a time meets them
         * before the LF, so one feeding all at once must get the same answer. */
        int rc = check_partial_line(buf, end, lim, st, err);
        *pos = lf ? end + 1 : len;
        if (rc != PT_AGAIN || lf == NULL)
            return rc;
        /* RFC 9112 2.2: a bare LF is not a line terminator here.  Accepting one is how a
         * proxy and its backend come to disagree on where a field ends. */
        if (end == st->line_start || buf[end - 1] != '\r')
            return fail(err, 400, "client sent line ending in LF without CR",
                        (struct pt_str){buf + st->line_start, end - st->line_start});
        rc = end_line(end, lim, st, head_len, err);
        if (rc != NEXT_LINE)
            return rc;
    }
    return check_partial_line(buf, len, lim, st, err);
}

/* ---------------------------------------------------------------------------------------
 * Field lines, common to requests and responses.
 */

/* Returns the line at *<p> without its CRLF and moves *<p> past it.  The scanner has
 * guaranteed that every line of the head, which ends at <end>, ends in CRLF. */
static struct pt_str next_line(const char **p, const char *end)
{
    const char *lf = memchr(*p, '\n', (size_t)(end - *p));
    struct pt_str line = {*p, (size_t)(lf - 1 - *p)};

    *p = lf + 1;
    return line;
}

/* parse_fields() flag of response heads: a name must be a token, none is ignored. */
#define NAMES_TOKEN 0x100

/* Returns 1 if nginx keeps a field name holding <c>: a letter, a digit, '-', or '_' when
 * <flags> has PT_HTTP_UNDERSCORES. */
static int valid_name_char(char c, unsigned flags)
{
    return is_alnum(c) || c == '-' || (c == '_' && (flags & PT_HTTP_UNDERSCORES));
}

/*
 * Judges the request field name <name> of <line> by the policy of http_parse.h under
 * <flags> (PT_HTTP_*): returns PT_OK (keep it), IGNORED, or 400.
 */
static int judge_name(struct pt_str name, struct pt_str line, unsigned flags,
                      struct pt_http_error *err)
{
    int invalid = 0;

    for (size_t i = 0; i < name.len; i++) {
        unsigned char c = (unsigned char)name.p[i];
        /* RFC 9112 5.1: whitespace between the name and the colon MUST be rejected with
         * 400; nginx refuses any CTL, SP or DEL in a name the same way.  Bytes >= 0x80 too,
         * unlike nginx: "Tran\u017Ffer-Encoding" is Transfer-Encoding to a backend that
         * folds Unicode case, and no real client sends a non-ASCII name. */
        if (c <= 0x20 || c >= 0x7f)
            return fail(err, 400, "client sent invalid header line", line);
        invalid |= !valid_name_char(name.p[i], flags);
    }
    if (!invalid)
        return PT_OK;
    if (!(flags & PT_HTTP_KEEP_INVALID))
        return IGNORED;
    /* Kept names are forwarded: RFC 9110 5.1 makes a field-name a token. */
    if (!all_of_class(name, PT_HTTP_C_TCHAR, 1))
        return fail(err, 400, "client sent invalid character in header name", line);
    return PT_OK;
}

/* Splits and validates the field line <line> into <h>.  Returns PT_OK, IGNORED (a request
 * field with an invalid name, see judge_name()) or 400. */
static int parse_field_line(struct pt_str line, unsigned flags, struct pt_http_header *h,
                            struct pt_http_error *err)
{
    /* RFC 9112 5.2: obs-fold (a line starting with SP or HTAB) is refused; RFC 9112 2.2:
     * so is whitespace between the start line and the first field. */
    if (line.len == 0 || pt_http_is_ows(line.p[0]))
        return fail(err, 400, "client sent header line starting with whitespace", line);
    const char *colon = memchr(line.p, ':', line.len);
    if (colon == NULL)
        return fail(err, 400, "client sent header line without colon", line);
    h->name = (struct pt_str){line.p, (size_t)(colon - line.p)};
    /* RFC 9110 5.1: field-name = token, so never empty. */
    if (h->name.len == 0)
        return fail(err, 400, "client sent header line with empty name", line);
    int rc = PT_OK;
    if (!(flags & NAMES_TOKEN))
        rc = judge_name(h->name, line, flags, err);
    else if (!all_of_class(h->name, PT_HTTP_C_TCHAR, 1))
        rc = 400;
    if (rc == 400)
        return rc;
    h->value = trim_ows((struct pt_str){colon + 1, line.len - h->name.len - 1});
    /* RFC 9110 5.5: CR, LF and NUL in a value MUST be rejected (or replaced); other CTLs
     * are invalid too, in an ignored field as well.  HTAB, SP, VCHAR and obs-text are
     * fine. */
    if (!all_of_class(h->value, PT_HTTP_C_VALUE, 0))
        return fail(err, 400, "client sent invalid header value", line);
    return rc;
}

/* Parses the field lines from <p> up to <end> (the final CRLF) into <h>: the fields kept
 * from h[0] (<*n> of them), the ignored ones from h[PT_HTTP_MAX_HEADERS - 1] down (<*nign>).
 * The scanner has counted the lines, so the two ends never meet. */
static int parse_fields(const char *p, const char *end, unsigned flags, struct pt_http_header *h,
                        size_t *n, size_t *nign, struct pt_http_error *err)
{
    *n = *nign = 0;
    while (p < end) {
        struct pt_http_header f;
        int rc = parse_field_line(next_line(&p, end), flags, &f, err);
        if (rc == IGNORED)
            h[PT_HTTP_MAX_HEADERS - 1 - (*nign)++] = f;
        else if (rc == PT_OK)
            h[(*n)++] = f;
        else
            return rc;
    }
    return PT_OK;
}

/* "HTTP/1.0" -> 10; "HTTP/1.1" and any higher "HTTP/1.d" -> 11 (RFC 9112 2.3: a recipient
 * handles a higher minor version of a major version it implements as the highest minor
 * it knows); another "HTTP/d.d" -> 505; anything else -> 400 (RFC 9112 2.3:
 * HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive). */
static int parse_version(struct pt_str v)
{
    if (v.len != 8 || memcmp(v.p, "HTTP/", 5) != 0 || v.p[6] != '.')
        return 400;
    if (v.p[5] < '0' || v.p[5] > '9' || v.p[7] < '0' || v.p[7] > '9')
        return 400;
    if (v.p[5] != '1')
        return 505;
    return v.p[7] == '0' ? 10 : 11;
}

/* Parses a Content-Length value: 1*DIGIT (RFC 9110 8.6), at most 2^62.  Returns -1 when
 * it is anything else: empty, signed, spaced, a list, hex, overflowing. */
static int64_t parse_content_length(struct pt_str v)
{
    int64_t n = 0;

    if (v.len == 0)
        return -1;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        int d = v.p[i] - '0';
        if (n > (PT_HTTP_MAX_CONTENT_LENGTH - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------
 * Framing, common to requests and responses.
 */

/*
 * What the framing fields of a message say.  cl: -1 absent, else the value; cl_bad:
 * malformed or repeated.  te: PT_OK (a final chunked, known codings before it), 400 or
 * 501, when te_seen; tel: the codings.
 */
struct framing {
    int64_t cl;
    int cl_bad, cl_repeated;
    int te_seen, te;
    struct pt_http_te_list tel;
    int conn_close, conn_keep_alive, conn_upgrade;
    const struct pt_http_header *cl_h, *te_h; /* the last Content-Length, the first
                                                 Transfer-Encoding: for the error log */
};

/* Reads the framing and connection fields of <h>/<n> into <f>. */
static void read_framing(const struct pt_http_header *h, size_t n, struct framing *f)
{
    *f = (struct framing){.cl = -1};
    for (size_t i = 0; i < n; i++) {
        if (pt_str_ieq(h[i].name, "content-length")) {
            /* RFC 9110 8.6 lets a recipient either refuse repeated identical values or
             * merge them; the desync corpus ranks it ambiguous, so refuse. */
            f->cl_repeated |= f->cl_h != NULL;
            f->cl_h = &h[i];
            f->cl = parse_content_length(h[i].value);
            f->cl_bad |= f->cl == -1;
        } else if (pt_str_ieq(h[i].name, "transfer-encoding")) {
            if (!f->te_seen)
                f->te_h = &h[i];
            f->te_seen = 1;
            pt_http_te_fold(h[i].value, &f->tel);
        } else if (pt_str_ieq(h[i].name, "connection")) {
            f->conn_close |= pt_http_has_token(h[i].value, "close");
            f->conn_keep_alive |= pt_http_has_token(h[i].value, "keep-alive");
            f->conn_upgrade |= pt_http_has_token(h[i].value, "upgrade");
        }
    }
    f->te = f->te_seen ? pt_http_te_verdict(&f->tel) : PT_OK;
}

/* The error of Transfer-Encoding verdict <f>->te (400 or 501), with its reason. */
static int te_error(const struct framing *f, struct pt_http_error *err)
{
    struct pt_str line = pt_http_field_line(f->te_h);

    if (f->te == 501)
        return fail(err, 501, "client sent unknown \"Transfer-Encoding\"", f->te_h->value);
    if (f->tel.malformed)
        return fail(err, 400, "client sent invalid \"Transfer-Encoding\" header", line);
    return fail(err, 400, "client sent \"Transfer-Encoding\" not ending in chunked", line);
}

/*
 * Common framing rules of requests and responses.  Returns PT_OK, 400 or 501 (the latter
 * only when every 400 rule passed), noting why in <err> (may be NULL).  Sets <*cl>,
 * <*chunked> and <*keep_alive>.
 */
static int check_framing(const struct framing *f, int version, int64_t *cl, int *chunked,
                         int *keep_alive, struct pt_http_error *err)
{
    if (f->cl_repeated)
        return fail(err, 400, "client sent duplicate header line", pt_http_field_line(f->cl_h));
    if (f->cl_bad)
        return fail(err, 400, "client sent invalid \"Content-Length\" header", PT_NULL_STR);
    if (f->te_seen) {
        /* RFC 9112 6.1: a server MAY reject a request with both Content-Length and
         * Transfer-Encoding; a proxy in front of unknown backends must. */
        if (f->cl != -1)
            return fail(err, 400,
                        "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at "
                        "the same time",
                        PT_NULL_STR);
        /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing. */
        if (version == 10)
            return fail(err, 400, "client sent HTTP/1.0 request with \"Transfer-Encoding\" header",
                        PT_NULL_STR);
        if (f->te != PT_OK)
            return te_error(f, err);
    }
    *cl = f->cl;
    *chunked = f->te_seen;
    /* RFC 9112 9.3: persistence is the version's default unless Connection says. */
    *keep_alive = !f->conn_close && (version == 11 || f->conn_keep_alive);
    return PT_OK;
}

/* ---------------------------------------------------------------------------------------
 * Requests.
 */

static int method_id(struct pt_str m)
{
    static const char *const names[] = {
        [PT_HTTP_GET] = "GET",     [PT_HTTP_HEAD] = "HEAD",     [PT_HTTP_POST] = "POST",
        [PT_HTTP_PUT] = "PUT",     [PT_HTTP_DELETE] = "DELETE", [PT_HTTP_OPTIONS] = "OPTIONS",
        [PT_HTTP_PATCH] = "PATCH", [PT_HTTP_TRACE] = "TRACE",   [PT_HTTP_CONNECT] = "CONNECT",
    };

    for (int i = 0; i < (int)pt_nelems(names); i++)
        if (pt_str_eq(m, names[i]))
            return i;
    return PT_HTTP_OTHER;
}

/* Returns 1 if <s> (no brackets) is an IPv6 address. */
static int valid_ipv6(struct pt_str s)
{
    char tmp[INET6_ADDRSTRLEN];
    struct in6_addr addr;

    if (s.len == 0 || s.len >= sizeof(tmp))
        return 0;
    memcpy(tmp, s.p, s.len); /* inet_pton wants a C string; 45 bytes on the stack */
    tmp[s.len] = '\0';
    return inet_pton(AF_INET6, tmp, &addr) == 1;
}

/* Returns the length of the host part of authority <a> if it is a valid IP-literal, IPv4
 * address or reg-name (RFC 3986 3.2.2, percent-escapes checked), else 0. */
static size_t host_part_len(struct pt_str a)
{
    size_t i = 0;

    if (a.len && a.p[0] == '[') {
        const char *close = memchr(a.p, ']', a.len);
        if (close == NULL || !valid_ipv6((struct pt_str){a.p + 1, (size_t)(close - a.p - 1)}))
            return 0;
        return (size_t)(close - a.p) + 1;
    }
    for (; i < a.len && a.p[i] != ':'; i++) {
        if (!pt_http_has_class(a.p[i], PT_HTTP_C_REGNAME))
            return 0;
        if (a.p[i] == '%' && (i + 2 >= a.len || !pt_http_has_class(a.p[i + 1], PT_HTTP_C_HEX) ||
                              !pt_http_has_class(a.p[i + 2], PT_HTTP_C_HEX)))
            return 0;
    }
    return i;
}

/* Returns 1 if <a> is host [":" port] (port 1-5 digits, <= 65535; required when
 * <need_port>), the form of Host (RFC 9110 7.2) and of an authority-form target. */
static int valid_authority(struct pt_str a, int need_port)
{
    size_t i = host_part_len(a);
    unsigned port = 0;

    if (i == 0)
        return 0; /* RFC 9110 4.2.1: an empty host is invalid; we refuse an empty Host too */
    if (i == a.len)
        return !need_port;
    if (a.p[i] != ':' || a.len - i - 1 == 0 || a.len - i - 1 > 5)
        return 0;
    for (i++; i < a.len; i++) {
        if (a.p[i] < '0' || a.p[i] > '9')
            return 0;
        port = port * 10 + (unsigned)(a.p[i] - '0');
    }
    return port <= 65535;
}

/* Splits <t> (from the path on) into path and query. */
static void split_query(struct pt_http_request *req, struct pt_str t)
{
    const char *q = memchr(t.p, '?', t.len);

    req->path = (struct pt_str){t.p, q ? (size_t)(q - t.p) : t.len};
    req->has_query = q != NULL;
    req->query =
        q ? (struct pt_str){q + 1, t.len - req->path.len - 1} : (struct pt_str){t.p + t.len, 0};
}

/* Absolute-form (RFC 9112 3.2.2): "http://" or "https://" authority [path] [?query]. */
static int parse_absolute_form(struct pt_http_request *req)
{
    struct pt_str t = req->target;
    size_t skip = t.len > 7 && strncasecmp(t.p, "http://", 7) == 0    ? 7
                  : t.len > 8 && strncasecmp(t.p, "https://", 8) == 0 ? 8
                                                                      : 0;
    if (skip == 0)
        return fail(&req->err, 400, "client sent request target of unknown form", req->target);
    t.p += skip;
    t.len -= skip;
    size_t n = 0;
    while (n < t.len && t.p[n] != '/' && t.p[n] != '?')
        n++;
    req->host = (struct pt_str){t.p, n};
    /* RFC 9110 4.2.1: an empty host MUST be rejected; 4.2.4: userinfo ('@') SHOULD be
     * treated as an error; both fail the reg-name check. */
    if (!valid_authority(req->host, 0))
        return fail(&req->err, 400, "client sent invalid host in request line", PT_NULL_STR);
    split_query(req, (struct pt_str){t.p + n, t.len - n});
    if (req->path.len == 0)
        req->path = PT_STR("/");
    return PT_OK;
}

/* Classifies and splits the request target (RFC 9112 3.2). */
static int parse_target(struct pt_http_request *req)
{
    struct pt_str t = req->target;

    /* RFC 9112 3.2.3: authority-form is for CONNECT only, and CONNECT uses only it. */
    if (req->method_id == PT_HTTP_CONNECT) {
        if (!valid_authority(t, 1))
            return fail(&req->err, 400, "client sent invalid host in CONNECT request line", t);
        req->host = t;
        req->path = req->query = (struct pt_str){t.p, 0};
        return PT_OK;
    }
    if (t.p[0] == '/') {
        split_query(req, t);
        return PT_OK;
    }
    /* RFC 9112 3.2.4: asterisk-form is for a server-wide OPTIONS only. */
    if (pt_str_eq(t, "*")) {
        if (req->method_id != PT_HTTP_OPTIONS)
            return fail(&req->err, 400, "client sent \"*\" target with a method other than OPTIONS",
                        PT_NULL_STR);
        split_query(req, t);
        return PT_OK;
    }
    return parse_absolute_form(req);
}

/*
 * request-line = method SP request-target SP HTTP-version (RFC 9112 3): exactly one SP
 * between the parts, none elsewhere, so "GET /a b HTTP/1.1" and "GET /a HTTP/1.1 " are
 * malformed rather than guessed at.  A line without a version (HTTP/0.9) is 400.
 */
static int parse_request_line(struct pt_str line, struct pt_http_request *req)
{
    struct pt_http_error *err = &req->err;
    const char *sp1 = memchr(line.p, ' ', line.len);
    if (sp1 == NULL)
        return fail(err, 400, "client sent request line without spaces", PT_NULL_STR);
    req->method = (struct pt_str){line.p, (size_t)(sp1 - line.p)};
    if (!all_of_class(req->method, PT_HTTP_C_TCHAR, 1)) /* RFC 9110 9.1: method = token */
        return fail(err, 400, "client sent invalid method", PT_NULL_STR);
    const char *tp = sp1 + 1, *end = line.p + line.len;
    const char *sp2 = memchr(tp, ' ', (size_t)(end - tp));
    if (sp2 == NULL)
        return fail(err, 400, "client sent request line without HTTP version", PT_NULL_STR);
    req->target = (struct pt_str){tp, (size_t)(sp2 - tp)};
    /* RFC 9112 3.2: no CTL, SP or DEL in a target (raw 8-bit bytes pass, by policy). */
    if (!all_of_class(req->target, PT_HTTP_C_TARGET, 1))
        return fail(err, 400, "client sent invalid character in request target", PT_NULL_STR);
    /* Exactly 8 bytes, so a third SP ("HTTP/1.1 ", "HTTP/1.1 HTTP/1.1") is a 400 too. */
    req->protocol = (struct pt_str){sp2 + 1, (size_t)(end - sp2 - 1)};
    req->version = parse_version(req->protocol);
    if (req->version == 400)
        return fail(err, 400, "client sent malformed HTTP version", PT_NULL_STR);
    if (req->version == 505)
        return fail(err, 505, "client sent invalid version", PT_NULL_STR);
    req->method_id = method_id(req->method);
    return parse_target(req);
}

/* Returns 1 if the letters of <name>, its punctuation ignored, spell <letters>. */
static int same_letters(struct pt_str name, const char *letters)
{
    for (size_t i = 0; i < name.len; i++) {
        if (!is_alnum(name.p[i]))
            continue;
        if (pt_lower(name.p[i]) != *letters++)
            return 0;
    }
    return *letters == '\0';
}

/* Returns 1 if <name> is a misspelling of a framing field that only its punctuation
 * tells apart ("Content_Length", "Transfer---Encoding"): CGI-style backends map '-' and
 * '_' to the same variable, others normalize names; either could see framing that
 * portier did not. */
static int is_framing_lookalike(struct pt_str name)
{
    if (pt_str_ieq(name, "content-length") || pt_str_ieq(name, "transfer-encoding"))
        return 0;
    return same_letters(name, "contentlength") || same_letters(name, "transferencoding");
}

/* Host (RFC 9112 3.2): exactly one on HTTP/1.1, at most one on HTTP/1.0, always valid.
 * An absolute-form target's authority, already in req->host, wins over it (3.2.2). */
static int check_host(struct pt_http_request *req)
{
    const struct pt_http_header *host = NULL;

    for (size_t i = 0; i < req->nheaders; i++) {
        if (!pt_str_ieq(req->headers[i].name, "host"))
            continue;
        if (host)
            return fail(&req->err, 400, "client sent duplicate host header",
                        pt_http_field_line(&req->headers[i]));
        host = &req->headers[i];
    }
    if (host == NULL && req->version == 11)
        return fail(&req->err, 400, "client sent HTTP/1.1 request without \"Host\" header",
                    PT_NULL_STR);
    if (host == NULL)
        return PT_OK;
    if (!valid_authority(host->value, 0))
        return fail(&req->err, 400, "client sent invalid host header", PT_NULL_STR);
    if (req->host.p == NULL)
        req->host = host->value;
    return PT_OK;
}

/* Refuses a framing lookalike among the fields of <req>, kept or ignored: an ignored one
 * is not forwarded, but one that the backend would have read as framing says the client
 * is trying something. */
static int check_lookalikes(struct pt_http_request *req)
{
    const struct pt_http_header *h = NULL;

    for (size_t i = 0; i < req->nheaders && h == NULL; i++)
        if (is_framing_lookalike(req->headers[i].name))
            h = &req->headers[i];
    for (size_t i = 0; i < req->nignored && h == NULL; i++)
        if (is_framing_lookalike(pt_http_ignored_header(req, i)->name))
            h = pt_http_ignored_header(req, i);
    if (h == NULL)
        return PT_OK;
    return fail(&req->err, 400, "client sent header line spelling a framing header",
                pt_http_field_line(h));
}

/* Derives framing and connection semantics of the parsed request <req>. */
static int request_semantics(struct pt_http_request *req)
{
    struct framing f;
    int chunked = 0, keep_alive = 0;

    int rc = check_host(req);
    if (rc != PT_OK)
        return rc;
    rc = check_lookalikes(req);
    if (rc != PT_OK)
        return rc;
    read_framing(req->headers, req->nheaders, &f);
    /* RFC 9110 9.3.8: a client MUST NOT send content in TRACE.  (Content in GET, HEAD,
     * DELETE and OPTIONS is framed like any other: see the policy in http_parse.h.) */
    if (req->method_id == PT_HTTP_TRACE && (f.te_seen || f.cl > 0))
        return fail(&req->err, 400, "client sent TRACE request with body", PT_NULL_STR);
    rc = check_framing(&f, req->version, &req->content_length, &chunked, &keep_alive, &req->err);
    if (rc != PT_OK)
        return rc;
    req->chunked = chunked;
    memcpy(req->te_codings, f.tel.codings, sizeof(req->te_codings));
    req->n_te_codings = f.tel.ncodings;
    req->keep_alive = keep_alive;
    /* RFC 9110 10.1.1 and 7.8: Expect and Upgrade are ignored in HTTP/1.0 requests. */
    const struct pt_http_header *h = pt_http_find_header(req->headers, req->nheaders, "expect");
    req->expect_continue = req->version == 11 && h && pt_str_ieq(h->value, "100-continue");
    h = pt_http_find_header(req->headers, req->nheaders, "upgrade");
    req->upgrade = req->version == 11 && h && f.conn_upgrade;
    return PT_OK;
}

/* Parses the complete head of <req> (the scanner has found its end) from <buf>. */
static int parse_request_head(const char *buf, unsigned flags, struct pt_http_request *req)
{
    const char *p = buf + req->scan.first_line;
    const char *end = buf + req->head_len - 2;

    int rc = parse_request_line(next_line(&p, end), req);
    if (rc != PT_OK)
        return rc;
    req->err.in_fields = 1;
    rc = parse_fields(p, end, flags & ~NAMES_TOKEN, req->headers, &req->nheaders, &req->nignored,
                      &req->err);
    if (rc != PT_OK)
        return rc;
    return request_semantics(req);
}

void pt_http_request_seen(const char *buf, size_t len, struct pt_http_request *req)
{
    const char *line = buf + pt_min(req->scan.first_line, len);
    size_t n = 0, avail = len - (size_t)(line - buf);

    while (n < avail && line[n] != '\r' && line[n] != '\n')
        n++;
    req->err.request_line = (struct pt_str){line, n};
    req->err.in_fields = req->scan.in_fields;
}

int pt_http_parse_request(const char *buf, size_t len, const struct pt_http_limits *lim,
                          struct pt_http_request *req)
{
    const struct pt_http_limits *d = &pt_http_default_limits;

    if (lim == NULL)
        lim = d;
    struct scan_limits sl = {
        .first_line = lim->max_request_line ? lim->max_request_line : d->max_request_line,
        .head = lim->max_head ? lim->max_head : d->max_head,
        .fields = lim->max_headers ? pt_min(lim->max_headers, (size_t)PT_HTTP_MAX_HEADERS)
                                   : d->max_headers,
        .first_status = 414,
        .is_request = 1,
    };
    int rc = scan_head(buf, len, &sl, &req->scan_pos, &req->scan, &req->head_len, &req->err);
    if (rc == PT_OK) {
        rc = parse_request_head(buf, lim->flags, req);
        if (rc == PT_OK)
            return rc;
        int in_fields = req->err.in_fields;
        pt_http_request_seen(buf, len, req);
        req->err.in_fields = in_fields; /* the request line may be the bad one */
    } else if (rc != PT_AGAIN) {
        pt_http_request_seen(buf, len, req);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Responses.
 */

/* status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 4).  The SP
 * before an empty reason is often missing in the wild and harmless: tolerated. */
static int parse_status_line(struct pt_str line, struct pt_http_response *resp)
{
    if (line.len < 12 || line.p[8] != ' ')
        return PT_ERROR;
    resp->version = parse_version((struct pt_str){line.p, 8});
    if (resp->version != 10 && resp->version != 11)
        return PT_ERROR;
    const char *s = line.p + 9;
    resp->status = 0;
    for (int i = 0; i < 3; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PT_ERROR;
        resp->status = resp->status * 10 + (s[i] - '0');
    }
    if (resp->status < 100 || resp->status > 599) /* RFC 9110 15 */
        return PT_ERROR;
    if (line.len > 12 && line.p[12] != ' ')
        return PT_ERROR;
    resp->reason = line.len > 12 ? (struct pt_str){line.p + 13, line.len - 13}
                                 : (struct pt_str){line.p + 12, 0};
    return all_of_class(resp->reason, PT_HTTP_C_VALUE, 0) ? PT_OK : PT_ERROR;
}

int pt_http_parse_response(const char *buf, size_t len, size_t max_head,
                           struct pt_http_response *resp)
{
    struct scan_limits sl = {
        .head = max_head ? max_head : pt_http_default_limits.max_head,
        .fields = PT_HTTP_MAX_HEADERS,
        .first_status = PT_ERROR,
    };
    sl.first_line = sl.head;
    int rc = scan_head(buf, len, &sl, &resp->scan_pos, &resp->scan, &resp->head_len, NULL);
    if (rc == PT_AGAIN || rc == PT_ERROR)
        return rc;
    if (rc != PT_OK)
        return PT_ERROR;

    const char *p = buf + resp->scan.first_line, *end = buf + resp->head_len - 2;
    if (parse_status_line(next_line(&p, end), resp) != PT_OK)
        return PT_ERROR;
    size_t nignored;
    if (parse_fields(p, end, NAMES_TOKEN, resp->headers, &resp->nheaders, &nignored, NULL) != PT_OK)
        return PT_ERROR;

    struct framing f;
    int chunked = 0, keep_alive = 0;
    read_framing(resp->headers, resp->nheaders, &f);
    /* The request rules, 501 included.  A response has nowhere to keep a coding before
     * chunked, and re-framing without it would hand the client coded bytes as plain: the
     * upstream answer is unusable (502). */
    if (check_framing(&f, resp->version, &resp->content_length, &chunked, &keep_alive, NULL) !=
        PT_OK)
        return PT_ERROR;
    if (f.tel.ncodings)
        return PT_ERROR;
    resp->chunked = chunked;
    resp->keep_alive = keep_alive;
    return PT_OK;
}

/* ---------------------------------------------------------------------------------------
 * Chunked bodies (RFC 9112 7.1):
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 * One byte at a time for the framing, a whole slice for chunk-data.
 */

enum {
    CK_SIZE,    /* chunk-size digits */
    CK_SIZE_WS, /* BWS after the size: only before a ';' */
    CK_EXT,     /* chunk-ext outside quotes */
    CK_EXT_Q,   /* inside a quoted-string */
    CK_EXT_QP,  /* after a backslash inside a quoted-string */
    CK_SIZE_LF, /* CR seen at the end of the chunk line */
    CK_DATA,    /* chunk-data */
    CK_DATA_CR, /* CRLF after chunk-data */
    CK_DATA_LF,
    CK_TR_START, /* start of a trailer line, or of the final CRLF */
    CK_TR_NAME,  /* trailer field name */
    CK_TR_VALUE, /* trailer field value */
    CK_TR_LF,    /* CR seen at the end of a trailer line */
    CK_END_LF,   /* CR of the final CRLF seen */
};

/* Chunk line: size digits, BWS, extensions.  Returns the next state or PT_ERROR. */
static int chunk_line_byte(struct pt_chunked *ck, char c)
{
    if (ck->state == CK_SIZE && pt_http_has_class(c, PT_HTTP_C_HEX)) {
        /* Bounded digit count: 16 hex digits fit in 64 bits, so no overflow check. */
        if (++ck->ndigits > PT_CHUNK_MAX_SIZE_DIGITS)
            return PT_ERROR;
        ck->remaining = ck->remaining << 4 | (uint64_t)hex_value(c);
        return CK_SIZE;
    }
    if (ck->state == CK_SIZE && ck->ndigits == 0)
        return PT_ERROR; /* chunk-size = 1*HEXDIG */
    if (c == '\r' && (ck->state == CK_SIZE || ck->state == CK_EXT))
        return CK_SIZE_LF;
    /* The rest of the line is chunk-ext with its BWS.  Extensions are dropped, never
     * forwarded: they are bounded and checked byte by byte (no CTL but HTAB, quoted-strings
     * closed on the line), not parsed into names and values. */
    if (++ck->ext_len > PT_CHUNK_MAX_EXT)
        return PT_ERROR;
    switch (ck->state) {
    case CK_SIZE:
    case CK_SIZE_WS: /* BWS is only allowed before a ';' */
        if (pt_http_is_ows(c))
            return CK_SIZE_WS;
        return c == ';' ? CK_EXT : PT_ERROR;
    case CK_EXT_QP: return pt_http_has_class(c, PT_HTTP_C_VALUE) ? CK_EXT_Q : PT_ERROR;
    case CK_EXT_Q:
        if (c == '"')
            return CK_EXT;
        if (c == '\\')
            return CK_EXT_QP;
        return pt_http_has_class(c, PT_HTTP_C_VALUE) ? CK_EXT_Q : PT_ERROR;
    default:
        if (c == '"')
            return CK_EXT_Q;
        return pt_http_has_class(c, PT_HTTP_C_TCHAR) || pt_http_is_ows(c) || c == ';' || c == '='
                   ? CK_EXT
                   : PT_ERROR;
    }
}

/* Trailer section: field lines checked like header fields, then dropped. */
static int chunk_trailer_byte(struct pt_chunked *ck, char c)
{
    if (++ck->trailer_len > PT_CHUNK_MAX_TRAILERS)
        return PT_ERROR;
    switch (ck->state) {
    case CK_TR_START:
        if (c == '\r')
            return CK_END_LF;
        /* RFC 9112 5.2 (obs-fold) and RFC 9110 5.1 (token) as for header fields. */
        return pt_http_has_class(c, PT_HTTP_C_TCHAR) ? CK_TR_NAME : PT_ERROR;
    case CK_TR_NAME:
        if (c == ':')
            return CK_TR_VALUE;
        return pt_http_has_class(c, PT_HTTP_C_TCHAR) ? CK_TR_NAME : PT_ERROR;
    case CK_TR_VALUE:
        if (c == '\r')
            return CK_TR_LF;
        return pt_http_has_class(c, PT_HTTP_C_VALUE) ? CK_TR_VALUE : PT_ERROR;
    case CK_TR_LF: return c == '\n' ? CK_TR_START : PT_ERROR; /* RFC 9112 2.2: no bare CR */
    default: return PT_ERROR;
    }
}

/* One framing byte <c>: returns the next state or PT_ERROR. */
static int chunk_framing_byte(struct pt_chunked *ck, char c)
{
    switch (ck->state) {
    case CK_SIZE_LF:
        if (c != '\n')
            return PT_ERROR; /* RFC 9112 2.2: CRLF, nothing else, ends a line */
        ck->ext_len = 0;
        ck->ndigits = 0;
        return ck->remaining ? CK_DATA : CK_TR_START;
    case CK_DATA_CR: return c == '\r' ? CK_DATA_LF : PT_ERROR;
    case CK_DATA_LF: return c == '\n' ? CK_SIZE : PT_ERROR;
    case CK_END_LF:
        if (c != '\n')
            return PT_ERROR;
        ck->done = 1;
        return CK_END_LF;
    case CK_TR_START:
    case CK_TR_NAME:
    case CK_TR_VALUE:
    case CK_TR_LF: return chunk_trailer_byte(ck, c);
    default: return chunk_line_byte(ck, c);
    }
}

ssize_t pt_chunked_parse(struct pt_chunked *ck, const char *buf, size_t len, struct pt_str *data)
{
    size_t i = 0;

    *data = (struct pt_str){buf, 0};
    while (i < len && !ck->done) {
        if (ck->state != CK_DATA) {
            int next = chunk_framing_byte(ck, buf[i++]);
            if (next == PT_ERROR)
                return PT_ERROR;
            ck->state = next;
            continue;
        }
        /* Stop right after the data: the caller may keep it in place, where it is, and
         * resume with the bytes that follow it. */
        size_t n = (size_t)pt_min((uint64_t)(len - i), ck->remaining);
        *data = (struct pt_str){buf + i, n};
        ck->remaining -= n;
        if (ck->remaining == 0)
            ck->state = CK_DATA_CR;
        return (ssize_t)(i + n);
    }
    return (ssize_t)i;
}
