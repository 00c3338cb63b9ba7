/*
 * fuzz_response.c: libFuzzer target for the upstream response head parser
 * (pt_http_parse_response).
 *
 * The first byte of an input picks the head limit, the rest is what an upstream sends.  As
 * for requests (fuzz_request.c), the head is parsed in one call and then one more byte per
 * call, at a new address each time, and both must give the same answer.
 */
#include "fuzz.h"
#include "worker/http_parse.h"

#define SAME_SLICE(field) fuzz_same_slice(#field, a->field, abuf, b->field, bbuf, a->head_len)
#define SAME_INT(field)                                                              \
    fuzz_check(a->field == b->field, #field ": %lld in one call, %lld byte by byte", \
               (long long)a->field, (long long)b->field)

/* Asserts that <a> (parsed from <abuf>) and <b> (from <bbuf>), both PT_OK, are the same and
 * keep the contract of struct pt_http_response. */
static void same_response(const struct pt_http_response *a, const char *abuf,
                          const struct pt_http_response *b, const char *bbuf)
{
    SAME_INT(head_len);
    SAME_INT(version);
    SAME_INT(status);
    SAME_SLICE(reason);
    SAME_INT(nheaders);
    SAME_INT(content_length);
    SAME_INT(chunked);
    SAME_INT(keep_alive);
    fuzz_check(a->nheaders <= PT_HTTP_MAX_HEADERS, "%zu fields", a->nheaders);
    for (size_t i = 0; i < a->nheaders; i++) {
        SAME_SLICE(headers[i].name);
        SAME_SLICE(headers[i].value);
    }
    fuzz_check(a->version == 10 || a->version == 11, "version %d", a->version);
    fuzz_check(a->status >= 100 && a->status <= 599, "status %d", a->status);
    fuzz_check(a->content_length >= -1 && a->content_length <= PT_HTTP_MAX_CONTENT_LENGTH,
               "content_length %lld", (long long)a->content_length);
    fuzz_check(!(a->chunked && a->content_length >= 0), "both chunked and a Content-Length");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct pt_http_response whole, bytewise;
    struct fuzz_feed feed;
    const char *all, *buf = NULL;
    size_t max_head, n;
    int rc_whole, rc = PT_AGAIN;

    if (size < 1)
        return 0;
    /* 0 is the default (32768); otherwise small enough for short inputs to cross it. */
    max_head = data[0] & 0x80 ? (size_t)(data[0] & 0x7f) * 4 : 0;
    data++;
    n = size - 1;

    fuzz_feed_init(&feed, n);
    memset(&whole, 0, sizeof(whole));
    all = fuzz_feed(&feed, data, n);
    rc_whole = pt_http_parse_response(all, n, max_head, &whole);

    memset(&bytewise, 0, sizeof(bytewise));
    for (size_t i = 0; i <= n && rc == PT_AGAIN; i++) {
        buf = fuzz_feed(&feed, data, i);
        rc = pt_http_parse_response(buf, i, max_head, &bytewise);
    }
    /* <all> is poisoned by now: only its address is used below. */
    fuzz_check(rc == rc_whole, "status %d in one call, %d byte by byte", rc_whole, rc);
    fuzz_check(rc == PT_OK || rc == PT_AGAIN || rc == PT_ERROR, "returned %d", rc);
    if (rc == PT_OK)
        same_response(&whole, all, &bytewise, buf);
    fuzz_feed_free(&feed);
    return 0;
}
