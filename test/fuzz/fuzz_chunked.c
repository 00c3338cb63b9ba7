/*
 * fuzz_chunked.c: libFuzzer target for the chunked body decoder (pt_chunked_parse).
 *
 * The first byte of an input picks a piece size (1 to 64), the rest is a chunked body and
 * what follows it.  The body is decoded three times, the way a caller loops (drop what was
 * consumed, call again with the rest): given whole, given one byte per call, and given in
 * pieces of the chosen size.  Each call's bytes are at a new address (fuzz_feed).  The three
 * must agree: all refuse the framing, or all consume the same bytes, find the same body
 * and agree on whether it is done.  Each call must keep the contract of pt_chunked_parse():
 * at most what it was given consumed, the data slice inside it and ending where the
 * consumed bytes end, and nothing consumed only for an empty piece or a done body.
 */
#include "fuzz.h"
#include "worker/http_parse.h"

struct outcome {
    int failed;      /* PT_ERROR was returned */
    size_t consumed; /* bytes consumed in all, until done, an error or the end */
    unsigned done;   /* ck.done at the end */
    char *body;      /* the data slices, joined */
    size_t body_len;
};

/* Decodes the <n> bytes <p> in pieces of at most <piece> bytes into <o>, using <feed>. */
static void decode(const char *p, size_t n, size_t piece, struct fuzz_feed *feed, struct outcome *o)
{
    struct pt_chunked ck = {0};
    struct pt_str data;

    memset(o, 0, sizeof(*o));
    o->body = malloc(n ? n : 1);
    if (o->body == NULL)
        abort();
    while (o->consumed < n && !ck.done) {
        size_t avail = pt_min(piece, n - o->consumed);
        const char *buf = fuzz_feed(feed, p + o->consumed, avail);
        ssize_t used = pt_chunked_parse(&ck, buf, avail, &data);

        if (used == PT_ERROR) {
            o->failed = 1;
            break;
        }
        fuzz_check(used >= 0 && (size_t)used <= avail, "consumed %zd of %zu bytes", used, avail);
        fuzz_check(used > 0 || ck.done, "consumed nothing of %zu bytes, not done", avail);
        fuzz_check(data.len == 0 || (data.p >= buf && data.p + data.len == buf + used),
                   "data slice not ending where the consumed bytes end");
        fuzz_check(!ck.done || data.len == 0, "data returned by the call that ended the body");
        memcpy(o->body + o->body_len, data.p, data.len);
        o->body_len += data.len;
        o->consumed += (size_t)used;
    }
    o->done = ck.done;
}

/* Asserts that outcomes <a> (given whole) and <b> (given as <how>) agree. */
static void agree(const struct outcome *a, const struct outcome *b, const char *how)
{
    fuzz_check(a->failed == b->failed, "refused %s: %d, whole: %d", how, b->failed, a->failed);
    if (a->failed)
        return;
    fuzz_check(a->consumed == b->consumed, "consumed %zu %s, %zu whole", b->consumed, how,
               a->consumed);
    fuzz_check(a->done == b->done, "done %u %s, %u whole", b->done, how, a->done);
    fuzz_check(a->body_len == b->body_len && memcmp(a->body, b->body, a->body_len) == 0,
               "body of %zu bytes %s, %zu whole", b->body_len, how, a->body_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct outcome whole, bytewise, pieces;
    struct fuzz_feed feed;
    size_t piece, n;

    if (size < 1)
        return 0;
    piece = 1 + data[0] % 64;
    n = size - 1;
    fuzz_feed_init(&feed, n);
    decode((const char *)data + 1, n, SIZE_MAX, &feed, &whole);
    decode((const char *)data + 1, n, 1, &feed, &bytewise);
    decode((const char *)data + 1, n, piece, &feed, &pieces);
    fuzz_check(whole.failed || whole.done || whole.consumed == n,
               "stopped at %zu of %zu bytes, not done", whole.consumed, n);
    agree(&whole, &bytewise, "byte by byte");
    agree(&whole, &pieces, "in pieces");
    free(whole.body);
    free(bytewise.body);
    free(pieces.body);
    fuzz_feed_free(&feed);
    return 0;
}
