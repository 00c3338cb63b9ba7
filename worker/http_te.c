/*
 * http_te.c: the Transfer-Encoding field (RFC 9112 6.1 and 7, RFC 9110 5.6):
 *   Transfer-Encoding  = #transfer-coding
 *   transfer-coding    = token *( OWS ";" OWS transfer-parameter )
 *   transfer-parameter = token BWS "=" BWS ( token / quoted-string )
 * Elements are read one by one, each coding checked against the few portier forwards,
 * its parameters checked for syntax and dropped.  Also writes the codings back out for
 * the upstream request (pt_http_te_codings_format(), declared in http_parse.h).
 */
#include "worker/http_te.h"

#include "worker/http_chars.h"

/* Canonical names of the codings forwarded untouched, by enum pt_http_coding. */
static const char *const coding_names[] = {
    [PT_HTTP_CODING_GZIP] = "gzip",
    [PT_HTTP_CODING_DEFLATE] = "deflate",
    [PT_HTTP_CODING_COMPRESS] = "compress",
};

/* The codings accepted before chunked (RFC 9112 7.2).  id 0 is identity, which codes
 * nothing: RFC 7230 dropped it, but senders still use it and the corpus rates it
 * compliant. */
static const struct {
    const char *name;
    uint8_t id;
} known_codings[] = {
    {"gzip", PT_HTTP_CODING_GZIP},
    {"x-gzip", PT_HTTP_CODING_GZIP}, /* RFC 9110 8.4.1.3: SHOULD be taken as gzip */
    {"deflate", PT_HTTP_CODING_DEFLATE},
    {"compress", PT_HTTP_CODING_COMPRESS},
    {"x-compress", PT_HTTP_CODING_COMPRESS}, /* RFC 9110 8.4.1.1 */
    {"identity", 0},
};

/* Returns the index of the first byte of <v> from <i> on that is not OWS (or v.len). */
static size_t skip_ows(struct pt_str v, size_t i)
{
    while (i < v.len && pt_http_is_ows(v.p[i]))
        i++;
    return i;
}

/* Returns the index of the first byte of <v> from <i> on that is not a tchar (or v.len). */
static size_t skip_token(struct pt_str v, size_t i)
{
    while (i < v.len && pt_http_has_class(v.p[i], PT_HTTP_C_TCHAR))
        i++;
    return i;
}

/* Returns the index after the quoted-string at <v>[<i>] (a '"'), or 0 if it is not closed
 * or holds a CTL or obs-text: RFC 9110 5.6.4 allows obs-text, no transfer coding needs
 * it, so it is refused like the other non-ASCII bytes of the field. */
static size_t skip_quoted(struct pt_str v, size_t i)
{
    for (i++; i < v.len; i++) {
        if (v.p[i] == '"')
            return i + 1;
        if (v.p[i] == '\\' && ++i == v.len) /* quoted-pair: the same bytes as qdtext */
            return 0;
        if ((unsigned char)v.p[i] >= 0x80 || !pt_http_has_class(v.p[i], PT_HTTP_C_VALUE))
            return 0;
    }
    return 0;
}

/*
 * Returns the index after the transfer-parameter at <v>[<i>] (<i> > 0: it follows a ';'),
 * or 0 if it is malformed.  Besides token BWS "=" BWS ( token / quoted-string ), a bare
 * token and an empty parameter are taken: the desync corpus rates "chunked;custom_param;"
 * compliant, and a dropped parameter cannot change the framing.
 */
static size_t skip_parameter(struct pt_str v, size_t i)
{
    size_t end = skip_token(v, i);
    size_t eq = skip_ows(v, end);

    if (end == i || eq == v.len || v.p[eq] != '=')
        return end;
    size_t val = skip_ows(v, eq + 1);
    if (val < v.len && v.p[val] == '"')
        return skip_quoted(v, val);
    end = skip_token(v, val);
    return end > val ? end : 0;
}

/*
 * Parses the list element at <v>[*<i>] up to its comma (consumed) or the end, and sets
 * <name> to its coding, empty for an empty element (RFC 9110 5.6.1: ignored).  Returns 0
 * if it is not a transfer-coding: a space inside a name ("chun ked"), a byte that is
 * neither tchar nor a delimiter, a parameter without a coding.
 */
static int next_coding(struct pt_str v, size_t *i, struct pt_str *name)
{
    size_t p = skip_ows(v, *i);
    size_t end = skip_token(v, p);

    *name = (struct pt_str){v.p + p, end - p};
    for (p = skip_ows(v, end); p < v.len && v.p[p] != ','; p = skip_ows(v, p)) {
        if (v.p[p] != ';' || name->len == 0)
            return 0;
        p = skip_parameter(v, skip_ows(v, p + 1));
        if (p == 0)
            return 0;
    }
    *i = p < v.len ? p + 1 : p;
    return 1;
}

/* Appends the coding <name> to <te>. */
static void add_coding(struct pt_http_te_list *te, struct pt_str name)
{
    te->after_chunked |= te->chunked;
    if (pt_str_ieq(name, "chunked")) {
        te->chunked = 1;
        return;
    }
    for (size_t k = 0; k < pt_nelems(known_codings); k++) {
        if (!pt_str_ieq(name, known_codings[k].name))
            continue;
        if (known_codings[k].id == 0)
            return; /* identity: nothing to forward */
        if (te->ncodings == PT_HTTP_MAX_TE_CODINGS)
            break;
        te->codings[te->ncodings++] = known_codings[k].id;
        return;
    }
    te->unsupported = 1;
}

void pt_http_te_fold(struct pt_str v, struct pt_http_te_list *te)
{
    struct pt_str name;
    size_t i = 0;

    while (i < v.len && !te->malformed) {
        if (!next_coding(v, &i, &name))
            te->malformed = 1;
        else if (name.len)
            add_coding(te, name);
    }
}

int pt_http_te_verdict(const struct pt_http_te_list *te)
{
    /* RFC 9112 6.1: chunked MUST NOT be applied more than once and MUST be final; RFC 9112
     * 6.3 (4): when it is not final in a request, the length cannot be determined: 400.
     * A value that is not a list of transfer-codings is as unreadable. */
    if (te->malformed || te->after_chunked || !te->chunked)
        return 400;
    /* RFC 9112 6.1: a coding the server does not understand SHOULD get 501. */
    if (te->unsupported)
        return 501;
    return PT_OK;
}

size_t pt_http_te_codings_format(const struct pt_http_request *req, char *buf, size_t cap)
{
    size_t len = 0;

    for (unsigned i = 0; i < req->n_te_codings; i++)
        len += strlen(coding_names[req->te_codings[i]]) + 2;
    if (len >= cap) {
        if (cap)
            buf[0] = '\0';
        return len;
    }
    for (unsigned i = 0; i < req->n_te_codings; i++) {
        size_t n = strlen(coding_names[req->te_codings[i]]);
        memcpy(buf, coding_names[req->te_codings[i]], n);
        memcpy(buf + n, ", ", 2);
        buf += n + 2;
    }
    *buf = '\0';
    return len;
}
