/*
 * http_parse.h: the strict, incremental, zero-copy HTTP/1.1 parser (RFC 9112, RFC 9110).
 *
 * Three parsers share one set of field rules: the request head (client side), the response
 * head (upstream side) and the chunked body decoder (both sides).  None of them allocates or
 * copies: every slice they return points into the caller's buffer, except the path "/"
 * substituted for an absolute-form target without a path, which points to a string literal.
 *
 * Strictness is the point: a front-door proxy that accepts a message its backend reads
 * differently is how request smuggling works.  So every field is checked, whether portier
 * uses it or not, and anything that two implementations could frame differently is refused.
 * Each rejection in http_parse.c (and http_te.c, for Transfer-Encoding) names the RFC
 * clause behind it.
 *
 * Policy choices beyond the letter of the RFCs (each with its reason):
 *  - Content-Length appearing more than once is refused, even with identical values
 *    (RFC 9110 8.6 allows either; the desync corpus classes it as ambiguous).
 *  - Transfer codings before the final "chunked" are accepted only when they are known
 *    (gzip, x-gzip, deflate, compress, x-compress, identity) and at most
 *    PT_HTTP_MAX_TE_CODINGS of them (identity not counted); any other is answered with 501
 *    (RFC 9112 6.1).  portier decodes only the chunked layer, re-frames the body with its
 *    own chunked framing and forwards the other codings untouched, announced from
 *    te_codings.  The same coding applied twice ("gzip, gzip, chunked") is accepted:
 *    RFC 9112 6.1 forbids only a repeated chunked, and framing depends on chunked alone.
 *  - Transfer coding parameters (RFC 9112 7: token *( OWS ";" OWS transfer-parameter ))
 *    are checked for syntax and dropped: no known coding defines one.  As the desync corpus
 *    rates "chunked;custom_param;" compliant, a parameter may also be a bare token or
 *    empty (more than the RFC grammar allows, harmless as it is dropped); otherwise it is
 *    token BWS "=" BWS ( token / quoted-string ), the quoted-string without obs-text.
 *    Anything else in a Transfer-Encoding value (a space inside a coding, a CTL, a
 *    non-ASCII byte) is 400.
 *  - TRACE requests with content (Content-Length > 0 or Transfer-Encoding) are refused
 *    (RFC 9110 9.3.8: a client MUST NOT send it).  GET, HEAD, DELETE and OPTIONS requests
 *    with content are accepted: their framing is read as for any other method (RFC 9112
 *    6.3 does not depend on the method) and portier sends the body upstream with its own
 *    framing, so no two readers can disagree on where it ends.  Elasticsearch searches and
 *    GraphQL-over-GET send such bodies.  A location may refuse them (reject_unexpected_body,
 *    request.c).
 *  - Field names spelling Content-Length or Transfer-Encoding with other punctuation
 *    ("Content_Length", "Transfer---Encoding") are refused: CGI-style backends map '-'
 *    and '_' to the same variable, so they could see framing that portier did not.
 *  - Request field names follow nginx (ignore_invalid_headers, underscores_in_headers):
 *    a name holding a CTL, SP or DEL (whitespace before the colon included) is 400, as in
 *    nginx, and so is one holding a byte >= 0x80 (nginx ignores it; but "Tran\u017Ffer-
 *    Encoding" reads as Transfer-Encoding to a backend that folds Unicode case); a name of letters,
 * digits and '-' (and '_' with PT_HTTP_UNDERSCORES) is kept; any other name is "invalid": ignored
 * (left out of headers[], listed as ignored, so that it is neither forwarded nor seen by $http_*)
 * unless PT_HTTP_KEEP_INVALID, which keeps a name that is still a token (RFC 9110 5.1) and refuses
 * any other with 400. Dropping "X_Forwarded_For" matters: CGI and WSGI present it to the
 * application as HTTP_X_FORWARDED_FOR, the very variable the real X-Forwarded-For becomes.
 *  - A request line with HTTP/1.x, x > 1, is handled as HTTP/1.1 (RFC 9112 2.3: a higher
 *    minor version of a major version the recipient implements); HTTP/2.0 and above, and
 *    HTTP/0.x, are 505 on this HTTP/1 connection, as in nginx.
 *  - Request targets may hold raw bytes >= 0x80 (obs-text, e.g. unencoded UTF-8) besides
 *    the VCHARs, as nginx accepts them and the desync corpus rates them compliant; CTLs,
 *    SP and DEL stay 400.  They are passed on raw (see normalize.h).
 */
#ifndef PT_HTTP_PARSE_H
#define PT_HTTP_PARSE_H

#include "core/pt.h"

/* Size of the header array of a request or response: no limit may exceed it. */
#define PT_HTTP_MAX_HEADERS 100

/* Empty lines (CRLF) tolerated before a request line (RFC 9112 2.2: "at least one"). */
#define PT_HTTP_MAX_EMPTY_LINES 4

/* Largest Content-Length accepted: 2^62, far beyond any real body, far from overflow. */
#define PT_HTTP_MAX_CONTENT_LENGTH ((int64_t)1 << 62)

/* Bounds of the chunked decoder. */
#define PT_CHUNK_MAX_SIZE_DIGITS 16   /* 16 hex digits cannot overflow a uint64_t */
#define PT_CHUNK_MAX_EXT         4096 /* chunk-ext bytes per chunk line */
#define PT_CHUNK_MAX_TRAILERS    8192 /* all trailer lines, with their CRLFs */

/* Most transfer codings kept before the final chunked (identity is not kept). */
#define PT_HTTP_MAX_TE_CODINGS 4

/*
 * A transfer coding portier forwards untouched (RFC 9112 7.2).  An alias received
 * ("x-gzip", "x-compress") is kept as the coding it stands for (RFC 9110 8.4.1.1, 8.4.1.3).
 */
enum pt_http_coding {
    PT_HTTP_CODING_GZIP = 1,
    PT_HTTP_CODING_DEFLATE,
    PT_HTTP_CODING_COMPRESS,
};

/* A buffer this large always holds the text of pt_http_te_codings_format() and its NUL:
 * PT_HTTP_MAX_TE_CODINGS times the longest "compress, ". */
#define PT_HTTP_TE_CODINGS_BUFSZ (PT_HTTP_MAX_TE_CODINGS * (sizeof("compress, ") - 1) + 1)

/* A header field line: <value> has its leading and trailing OWS (SP, HTAB) trimmed. */
struct pt_http_header {
    struct pt_str name, value;
};

/* Options of a request head (pt_http_limits.flags), both off by default as in nginx.
 * PT_HTTP_UNDERSCORES: '_' is a valid name character (underscores_in_headers on).
 * PT_HTTP_KEEP_INVALID: invalid names are kept or refused, never ignored
 * (ignore_invalid_headers off). */
#define PT_HTTP_UNDERSCORES  0x1
#define PT_HTTP_KEEP_INVALID 0x2

/*
 * Limits and options of a request head.  A field set to 0 takes the default given in
 * brackets; max_headers is capped at PT_HTTP_MAX_HEADERS.
 */
struct pt_http_limits {
    size_t max_request_line; /* request line without its CRLF; longer -> 414 [8192] */
    size_t max_head;         /* whole head incl. request line and final CRLF -> 431 [32768] */
    size_t max_headers;      /* number of header field lines -> 431 [100] */
    unsigned flags;          /* PT_HTTP_UNDERSCORES, PT_HTTP_KEEP_INVALID [none] */
};

/* The defaults above, for callers that have no configuration at hand. */
extern const struct pt_http_limits pt_http_default_limits;

enum pt_http_method {
    PT_HTTP_GET,
    PT_HTTP_HEAD,
    PT_HTTP_POST,
    PT_HTTP_PUT,
    PT_HTTP_DELETE,
    PT_HTTP_OPTIONS,
    PT_HTTP_PATCH,
    PT_HTTP_TRACE,
    PT_HTTP_CONNECT,
    PT_HTTP_OTHER /* any other token; methods are case-sensitive (RFC 9110 9.1) */
};

/*
 * Where the head scanner is between two calls.  Parser-private: the caller only zeroes it
 * (with the struct that holds it) before the first call for a new message.
 */
struct pt_http_scan {
    size_t line_start;        /* offset of the line being scanned */
    size_t first_line;        /* offset of the start line (after skipped empty lines) */
    unsigned nfields;         /* complete field lines seen so far */
    unsigned nempty;          /* empty lines skipped before the request line */
    unsigned in_fields : 1;   /* the start line is complete */
    unsigned method_seen : 1; /* the early method check reached the first SP or CR */
};

/*
 * Why a request head was refused, for the error log (the parser's answer is only a
 * status).  <reason> is static text in nginx's words where nginx has them ("client sent
 * invalid method"); <detail> is the field line or value it is about, possibly empty;
 * <request_line> is the start line as far as it was received; <in_fields> tells whether
 * that line was complete (nginx's "while reading client request headers") or not ("...
 * request line").  All slices point into the buffer of the call that failed.
 */
struct pt_http_error {
    const char *reason;
    struct pt_str detail;
    struct pt_str request_line;
    unsigned in_fields : 1;
};

struct pt_http_request {
    size_t scan_pos; /* caller zeroes the struct before the first call for a new request;
                        the parser keeps how far it has scanned so that re-calls with more
                        data are not O(n^2) */
    size_t head_len; /* set on PT_OK: bytes of the head incl. the blank line (and leading
                        empty lines); the next pipelined request starts after the body */
    struct pt_str method, target;
    struct pt_str path;  /* origin-form: target up to '?'; absolute-form: the path part, "/"
                            if empty; OPTIONS "*": "*"; CONNECT: empty */
    struct pt_str query; /* after '?', without it, may be empty (see has_query) */
    unsigned has_query : 1;
    int method_id;          /* enum pt_http_method */
    int version;            /* 10 or 11 (HTTP/1.2 and above are 11) */
    struct pt_str protocol; /* the HTTP-version as sent, "HTTP/1.2" say ($server_protocol) */
    /* The fields kept, in order, from headers[0]; the field lines ignored as invalid (see
     * the policy above) from the other end, read through pt_http_ignored_header().  Both
     * fit: there are never more field lines than PT_HTTP_MAX_HEADERS. */
    struct pt_http_header headers[PT_HTTP_MAX_HEADERS];
    size_t nheaders;
    size_t nignored;
    struct pt_str host;     /* validated host[:port]: the authority of an absolute-form or
                               authority-form target, else the Host field (RFC 9112 3.2.2);
                               empty only for HTTP/1.0 without Host */
    int64_t content_length; /* -1 when absent */
    unsigned chunked : 1;   /* Transfer-Encoding present, chunked final */
    /* The transfer codings applied before chunked, in the order the sender applied them
     * (the order of the list, over all the fields, RFC 9112 6.1): te_codings[0] first.
     * Elements are enum pt_http_coding; identity and parameters are dropped.  n_te_codings
     * is 0 unless chunked; when it is not 0 the body, once un-chunked, is still so encoded
     * and must be forwarded with "Transfer-Encoding: <pt_http_te_codings_format()>chunked",
     * never decoded as plain data. */
    uint8_t te_codings[PT_HTTP_MAX_TE_CODINGS];
    unsigned n_te_codings;
    unsigned keep_alive : 1;      /* version default (1.1 yes, 1.0 no) adjusted by Connection
                                     close/keep-alive */
    unsigned expect_continue : 1; /* HTTP/1.1 with Expect: 100-continue (case-insensitive) */
    unsigned upgrade : 1;         /* HTTP/1.1, Connection has the "upgrade" token and an
                                     Upgrade header is present */
    struct pt_http_error err;     /* set with every error status */
    struct pt_http_scan scan;     /* parser-private */
};

/* The <i>th field line (0 first, <i> < <req>->nignored) that the parser ignored as invalid. */
static inline const struct pt_http_header *pt_http_ignored_header(const struct pt_http_request *req,
                                                                  size_t i)
{
    return &req->headers[PT_HTTP_MAX_HEADERS - 1 - i];
}

/* The field line of <h> as received, from its name to the end of its (trimmed) value. */
static inline struct pt_str pt_http_field_line(const struct pt_http_header *h)
{
    return (struct pt_str){h->name.p, (size_t)(h->value.p + h->value.len - h->name.p)};
}

/*
 * Parses the request head at the start of <buf>/<len> into <req>, using the limits <lim>
 * (NULL: the defaults).  The caller zeroes <req> before the first call for a new request;
 * when PT_AGAIN is returned it calls again, with the same <req>, once more bytes have been
 * appended (the bytes already passed must be unchanged; <buf> may have moved to a larger
 * buffer).  Each call scans only the new bytes; the fields are filled in one pass once the
 * head is complete, so they always point into the <buf> of the call that returned PT_OK.
 *
 * Returns PT_OK (head complete: every field of <req> is set, head_len is the offset of
 * the body), PT_AGAIN (need more bytes), or the HTTP status to answer before closing the
 * connection: 400 (malformed or ambiguous), 414 (request line over the limit, reported as
 * soon as it is exceeded), 431 (head or field count over the limit), 501 (an unknown
 * transfer coding before chunked, or more than PT_HTTP_MAX_TE_CODINGS of them; only when
 * no 400 rule applies), 505 (an HTTP major version other than 1).  After an error, req->err
 * says why (its slices point into <buf>); the other contents of <req> are unspecified and
 * nothing else of the request may be used.
 */
int pt_http_parse_request(const char *buf, size_t len, const struct pt_http_limits *lim,
                          struct pt_http_request *req);

/*
 * Sets req->err.request_line and req->err.in_fields for a head that is still incomplete
 * in <buf>/<len> (the bytes of the last pt_http_parse_request() call on <req>, which
 * returned PT_AGAIN), so that a request that times out can be logged as nginx does.
 */
void pt_http_request_seen(const char *buf, size_t len, struct pt_http_request *req);

/*
 * Writes to <buf> (<cap> bytes) the transfer codings of <req>, in order, as the start of
 * an upstream Transfer-Encoding value: each name followed by ", ", so "gzip, deflate, " for
 * te_codings {GZIP, DEFLATE} and "" for none; the caller appends "chunked".  Returns the
 * length of that text (without the NUL).  The text is written NUL-terminated only when it
 * fits (returned length < <cap>); otherwise <buf> gets "" (if <cap> > 0).  A buffer of
 * PT_HTTP_TE_CODINGS_BUFSZ bytes always fits.
 */
size_t pt_http_te_codings_format(const struct pt_http_request *req, char *buf, size_t cap);

struct pt_http_response {
    size_t scan_pos, head_len; /* as in struct pt_http_request */
    int version, status;       /* version 10 or 11; status 100..599 */
    struct pt_str reason;      /* may be empty */
    struct pt_http_header headers[PT_HTTP_MAX_HEADERS];
    size_t nheaders;
    int64_t content_length;               /* -1 absent */
    unsigned chunked : 1, keep_alive : 1; /* keep_alive: version default adjusted by
                                             Connection; a response with neither length nor
                                             chunked ends at close, which is the caller's
                                             to see (it knows the request method) */
    struct pt_http_scan scan;             /* parser-private */
};

/*
 * Parses the upstream response head at the start of <buf>/<len> into <resp>, refusing a
 * head longer than <max_head> bytes (0: 32768) or with more than PT_HTTP_MAX_HEADERS
 * fields.  Same calling convention as pt_http_parse_request().  Returns PT_OK, PT_AGAIN,
 * or PT_ERROR for anything malformed (the caller answers 502): the field rules are those
 * of requests (no obs-fold, bare LF, CTLs, space before colon; Content-Length and
 * Transfer-Encoding together, repeated Content-Length, chunked not final, a malformed
 * Transfer-Encoding, Transfer-Encoding in HTTP/1.0).  Unlike a request, a response may
 * have no coding but chunked (identity aside; parameters are allowed): the struct has no
 * te_codings, so forwarding them would drop them silently.  Skips nothing: a 1xx response
 * is returned like any other; the caller handles 100 and 101 and parses the next head with
 * a zeroed <resp>.
 */
int pt_http_parse_response(const char *buf, size_t len, size_t max_head,
                           struct pt_http_response *resp);

/* State of a chunked body decoder: the caller zeroes it before the first byte of a body. */
struct pt_chunked {
    int state;
    uint64_t remaining; /* chunk-data bytes still to come in the current chunk */
    size_t ext_len;     /* chunk-ext bytes seen on the current chunk line */
    size_t trailer_len; /* trailer bytes seen so far */
    unsigned ndigits;   /* chunk-size digits seen on the current chunk line */
    unsigned done : 1;  /* the last chunk and the trailer section have been read */
};

/*
 * Decodes the chunked body bytes <buf>/<len> (RFC 9112 7.1) with decoder <ck>.  Returns
 * the number of bytes consumed (>= 0) and sets *<data> to the body bytes found inside what
 * was consumed (a slice of <buf>, possibly empty); returns PT_ERROR on malformed framing.
 * A call returns at most one slice and stops right after it: when data.len > 0, the bytes
 * consumed end exactly where the data ends, so the caller may leave the data in place and
 * resume after it.  The caller loops while bytes remain and !ck->done, dropping the
 * consumed bytes; it never needs to keep unconsumed bytes of a chunk line, as every byte
 * is consumed unless the body is done (0 is returned only for <len> 0 or a done body).
 * Bytes after the end of the body (ck->done) are not consumed: they are the next message.
 * Bounds: chunk-size at most 16 hex digits, chunk extensions at most 4096 bytes per chunk
 * line (checked character by character, then dropped), trailers at most 8192 bytes
 * (validated like header fields, then dropped).
 */
ssize_t pt_chunked_parse(struct pt_chunked *ck, const char *buf, size_t len, struct pt_str *data);

/*
 * Returns the first of the <n> headers <h> whose name equals <name> case-insensitively,
 * or NULL.
 */
const struct pt_http_header *pt_http_find_header(const struct pt_http_header *h, size_t n,
                                                 const char *name);

/*
 * Returns 1 if the comma-separated list <value> has an element equal to <token>
 * (case-insensitive, OWS around elements ignored, empty elements skipped), else 0.
 */
int pt_http_has_token(struct pt_str value, const char *token);

/* Returns 1 if the <len> bytes at <s> are a token (RFC 9110 5.6.2: a field name, say). */
int pt_http_is_token(const char *s, size_t len);

#endif
