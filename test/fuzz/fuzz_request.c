/*
 * fuzz_request.c: libFuzzer target for the request head parser (pt_http_parse_request).
 *
 * The first byte of an input picks the options and limits, the rest is what a client sends.
 * It is parsed twice: whole, in one call, and then as a client trickling it in would have it
 * arrive, one more byte per call, each call's bytes at a new address (fuzz_feed), until the
 * parser stops asking for more.  The parser's contract is that both give the same answer:
 * the same status, and on PT_OK the same fields, every slice at the same offset into the
 * head; on an error, the same reason.  Anything else aborts.
 */
#include "fuzz.h"
#include "worker/http_parse.h"

/* The limits and options that byte <b> selects: bits 0-1 are the flags
 * (PT_HTTP_UNDERSCORES, PT_HTTP_KEEP_INVALID); bit 2 set gives small limits derived from
 * the upper bits, so that 414 and 431 are reached by short inputs. */
static struct pt_http_limits limits_of(uint8_t b)
{
    struct pt_http_limits lim = {.flags = b & 3};

    if (b & 4) {
        lim.max_request_line = 8 + (size_t)(b >> 3) * 8;
        lim.max_head = 4 * lim.max_request_line;
        lim.max_headers = 1 + (b >> 3) % 8;
    }
    return lim;
}

#define SAME_SLICE(field) fuzz_same_slice(#field, a->field, abuf, b->field, bbuf, a->head_len)
#define SAME_INT(field)                                                              \
    fuzz_check(a->field == b->field, #field ": %lld in one call, %lld byte by byte", \
               (long long)a->field, (long long)b->field)

/* Asserts that <a> (parsed from <abuf>) and <b> (from <bbuf>), both PT_OK, are the same. */
static void same_request(const struct pt_http_request *a, const char *abuf,
                         const struct pt_http_request *b, const char *bbuf)
{
    SAME_INT(head_len);
    SAME_SLICE(method);
    SAME_SLICE(target);
    SAME_SLICE(path);
    SAME_SLICE(query);
    SAME_SLICE(protocol);
    SAME_SLICE(host);
    SAME_INT(has_query);
    SAME_INT(method_id);
    SAME_INT(version);
    SAME_INT(nheaders);
    SAME_INT(nignored);
    SAME_INT(content_length);
    SAME_INT(chunked);
    SAME_INT(n_te_codings);
    SAME_INT(keep_alive);
    SAME_INT(expect_continue);
    SAME_INT(upgrade);
    fuzz_check(a->nheaders + a->nignored <= PT_HTTP_MAX_HEADERS, "%zu fields kept, %zu ignored",
               a->nheaders, a->nignored);
    for (size_t i = 0; i < a->nheaders; i++) {
        SAME_SLICE(headers[i].name);
        SAME_SLICE(headers[i].value);
    }
    for (size_t i = 0; i < a->nignored; i++) {
        const struct pt_http_header *ha = pt_http_ignored_header(a, i);
        const struct pt_http_header *hb = pt_http_ignored_header(b, i);
        fuzz_same_slice("ignored name", ha->name, abuf, hb->name, bbuf, a->head_len);
        fuzz_same_slice("ignored value", ha->value, abuf, hb->value, bbuf, a->head_len);
    }
    fuzz_check(a->n_te_codings <= PT_HTTP_MAX_TE_CODINGS, "%u codings", a->n_te_codings);
    fuzz_check(memcmp(a->te_codings, b->te_codings, a->n_te_codings) == 0, "te_codings differ");
    fuzz_check(a->version == 10 || a->version == 11, "version %d", a->version);
    fuzz_check(a->content_length >= -1 && a->content_length <= PT_HTTP_MAX_CONTENT_LENGTH,
               "content_length %lld", (long long)a->content_length);
    fuzz_check(!(a->chunked && a->content_length >= 0), "both chunked and a Content-Length");
}

/* Asserts that the errors of <a> and <b> (the same status) say the same. */
static void same_error(const struct pt_http_request *a, const struct pt_http_request *b)
{
    fuzz_check(a->err.reason != NULL && b->err.reason != NULL, "an error without a reason");
    fuzz_check(strcmp(a->err.reason, b->err.reason) == 0,
               "reason \"%s\" in one call, \"%s\" byte by byte", a->err.reason, b->err.reason);
    fuzz_check(a->err.detail.len == b->err.detail.len, "detail of %zu bytes, then %zu",
               a->err.detail.len, b->err.detail.len);
    fuzz_check(a->err.in_fields == b->err.in_fields, "in_fields %d, then %d", a->err.in_fields,
               b->err.in_fields);
}

/* Exercises pt_http_te_codings_format() on a parsed request, in a buffer of every size. */
static void format_codings(const struct pt_http_request *req)
{
    char full[PT_HTTP_TE_CODINGS_BUFSZ], small[PT_HTTP_TE_CODINGS_BUFSZ];
    size_t n = pt_http_te_codings_format(req, full, sizeof(full));

    fuzz_check(n < sizeof(full) && strlen(full) == n, "codings text of %zu bytes", n);
    for (size_t cap = 0; cap <= n; cap++) {
        fuzz_check(pt_http_te_codings_format(req, small, cap) == n, "length depends on room");
        fuzz_check(cap == 0 || small[0] == '\0', "a truncated codings text was written");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct pt_http_request whole, bytewise;
    struct pt_http_limits lim;
    struct fuzz_feed feed;
    const char *buf = NULL;
    int rc_whole, rc = PT_AGAIN;
    size_t n;

    if (size < 1)
        return 0;
    lim = limits_of(data[0]);
    data++;
    n = size - 1;

    fuzz_feed_init(&feed, n);
    memset(&whole, 0, sizeof(whole));
    const char *all = fuzz_feed(&feed, data, n);
    rc_whole = pt_http_parse_request(all, n, &lim, &whole);
    if (rc_whole == PT_OK)
        format_codings(&whole);

    memset(&bytewise, 0, sizeof(bytewise));
    for (size_t i = 0; i <= n && rc == PT_AGAIN; i++) {
        buf = fuzz_feed(&feed, data, i);
        rc = pt_http_parse_request(buf, i, &lim, &bytewise);
    }
    /* <all> is poisoned by now: only its address is used below. */
    fuzz_check(rc == rc_whole, "status %d in one call, %d byte by byte", rc_whole, rc);
    if (rc == PT_OK) {
        same_request(&whole, all, &bytewise, buf);
    } else if (rc != PT_AGAIN) {
        same_error(&whole, &bytewise);
    } else {
        /* What the caller logs when such a head times out (it ends the request). */
        pt_http_request_seen(buf, n, &bytewise);
        fuzz_check(fuzz_offset(bytewise.err.request_line, buf, n) >= 0 &&
                       bytewise.err.request_line.p + bytewise.err.request_line.len <= buf + n,
                   "the request line seen is outside the bytes received");
    }
    fuzz_feed_free(&feed);
    return 0;
}
