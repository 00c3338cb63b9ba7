/*
 * response.c: writing responses: the status line and headers, the body filter chain and
 * its last link (framing and the socket), generated error pages.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "worker/http.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/times.h"
#include "worker/var_http.h"

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {416, "Range Not Satisfiable"},
    {421, "Misdirected Request"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *pt_http_reason(int status)
{
    for (size_t i = 0; i < pt_nelems(reasons); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

int pt_header_add(struct pt_request *r, struct pt_headers *hs, struct pt_str name,
                  struct pt_str value)
{
    if (hs->n == hs->cap) {
        int cap = hs->cap ? hs->cap * 2 : 16;
        struct pt_header *h = pt_palloc(r->pool, (size_t)cap * sizeof(*h));
        if (h == NULL)
            return PT_ERROR;
        if (hs->n)
            memcpy(h, hs->h, (size_t)hs->n * sizeof(*h));
        hs->h = h;
        hs->cap = cap;
    }
    hs->h[hs->n].name = name;
    hs->h[hs->n].value = value;
    hs->n++;
    return PT_OK;
}

void pt_header_remove(struct pt_headers *hs, const char *name)
{
    int j = 0;

    for (int i = 0; i < hs->n; i++)
        if (!pt_str_ieq(hs->h[i].name, name))
            hs->h[j++] = hs->h[i];
    hs->n = j;
}

struct pt_header *pt_header_find(struct pt_headers *hs, const char *name)
{
    for (int i = 0; i < hs->n; i++)
        if (pt_str_ieq(hs->h[i].name, name))
            return &hs->h[i];
    return NULL;
}

/* How much of a file one read takes, where a file is read (sendfile off, TLS without kernel
 * TLS, a body filter on the way). */
#define READ_CHUNK 65536

/* A piece of a file under this whose header still waits is read and written with it. */
#define SENDFILE_MIN 16384

/* --- the output buffer --- */

/* Makes room for <n> more bytes in c->out, growing it if needed.  PT_OK or PT_ERROR. */
static int out_reserve(struct pt_http_conn *c, size_t n)
{
    struct pt_buf *b;

    if (c->out == NULL) {
        c->out = pt_buf_get(n);
        return c->out ? PT_OK : PT_ERROR;
    }
    if (pt_buf_room(c->out) >= n)
        return PT_OK;
    pt_buf_compact(c->out);
    if (pt_buf_room(c->out) >= n)
        return PT_OK;
    b = pt_buf_get(pt_buf_len(c->out) + n);
    if (b == NULL)
        return PT_ERROR;
    pt_buf_append(b, c->out->pos, pt_buf_len(c->out));
    pt_buf_put(c->out);
    c->out = b;
    return PT_OK;
}

static int out_append(struct pt_http_conn *c, const char *p, size_t n)
{
    if (out_reserve(c, n) != PT_OK)
        return PT_ERROR;
    return pt_buf_append(c->out, p, n);
}

/* Writes <iov> to the client, after whatever waits in c->out, and keeps what the socket
 * does not take in c->out.  PT_OK or PT_ERROR (the connection is broken). */
static int write_iov(struct pt_http_conn *c, struct iovec *iov, int n)
{
    struct iovec all[8];
    int k = 0;
    ssize_t w = 0;

    if (c->out && pt_buf_len(c->out)) {
        all[k].iov_base = c->out->pos;
        all[k++].iov_len = pt_buf_len(c->out);
    }
    for (int i = 0; i < n; i++)
        if (iov[i].iov_len)
            all[k++] = iov[i];
    if (k == 0)
        return PT_OK;
    if (c->s.writable && !c->error) {
        /* PT_AGAIN: the transport cleared c->s.writable, nothing was taken. */
        w = c->s.t->send(&c->s, all, k);
        if (w == PT_ERROR) {
            c->error = 1;
            return PT_ERROR;
        }
        if (w < 0)
            w = 0;
    }
    /* Drop what was written, then keep the rest: first from c->out itself, then copied. */
    for (int i = 0; i < k; i++) {
        size_t len = all[i].iov_len;
        if ((size_t)w >= len) {
            w -= (ssize_t)len;
            if (c->out && all[i].iov_base == c->out->pos)
                c->out->pos = c->out->last;
            continue;
        }
        if (c->out && all[i].iov_base == c->out->pos) {
            c->out->pos += w;
        } else if (out_append(c, (char *)all[i].iov_base + w, len - (size_t)w) != PT_OK) {
            return PT_ERROR;
        }
        c->s.writable = 0;
        w = 0;
    }
    if (c->out && pt_buf_len(c->out) == 0)
        c->out->pos = c->out->last = c->out->start;
    return PT_OK;
}

int pt_http_flush(struct pt_http_conn *c)
{
    if (c->out == NULL || pt_buf_len(c->out) == 0)
        return PT_OK;
    if (write_iov(c, NULL, 0) != PT_OK)
        return PT_ERROR;
    return pt_buf_len(c->out) ? PT_AGAIN : PT_OK;
}

int pt_http_output_blocked(const struct pt_request *r)
{
    /* Bytes queued while the socket still takes more (a header waiting for its body) do
     * not block: the next write sends them along. */
    return ((r->c->out && pt_buf_len(r->c->out) > 0) || r->c->file_wait) &&
           (!r->c->s.writable || r->c->error);
}

void pt_http_wait_output(struct pt_request *r, void (*handler)(struct pt_request *r))
{
    struct pt_http_loc_conf *lc = r->loc_conf[pt_http_module.index];

    r->write_handler = handler;
    if (!pt_timer_armed(&r->c->s.timer))
        pt_timer_add(&r->c->s.timer, (uint64_t)lc->send_timeout);
}

int pt_http_write_raw(struct pt_http_conn *c, const char *data, size_t len)
{
    struct iovec iov = {(void *)data, len};

    return write_iov(c, &iov, 1);
}

/* --- the header --- */

static size_t put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return n;
}

/* put() of a string literal, its length counted by the compiler. */
#define put_lit(p, lit) put((p), (lit), sizeof(lit) - 1)

/* An upper bound of the head send_header writes: the fixed lines (status, Server, Date,
 * Content-Length with 20 digits or Transfer-Encoding, Connection, the blank line) take
 * less than 256 bytes besides the reason phrase and the headers. */
static size_t header_size(struct pt_request *r)
{
    size_t n = 256 + (r->status_line.len ? r->status_line.len : strlen(pt_http_reason(r->status)));

    for (int i = 0; i < r->out.n; i++)
        n += r->out.h[i].name.len + r->out.h[i].value.len + 4;
    return n;
}

/* Decides the response framing: Content-Length, chunked, or close-delimited for HTTP/1.0
 * clients when the length is unknown. */
static void decide_framing(struct pt_request *r)
{
    if (r->h.method_id == PT_HTTP_HEAD || r->status == 204 || r->status == 304 ||
        (r->status >= 100 && r->status < 200))
        r->header_only = 1;
    if (r->status == 204 || r->status == 304 || r->status < 200 || r->tunnel)
        return;
    if (r->out_length >= 0 || r->header_only)
        return;
    if (r->h.version >= 11)
        r->chunked_out = 1;
    else
        r->keepalive = 0;
}

const char *pt_http_conn_server_string(const struct pt_http_conn *c)
{
    const struct pt_http_loc_conf *lc =
        pt_http_conn_addr(c)->default_server->loc_conf[pt_http_module.index];

    return pt_http_server_string(lc->server_tokens);
}

/* The request's server_tokens (its location's, or its server's before one is chosen). */
static int server_tokens(struct pt_request *r)
{
    struct pt_http_loc_conf *lc = pt_http_loc_conf(r, pt_http_module);

    return lc ? lc->server_tokens : PT_SERVER_TOKENS_ON;
}

/* request_id_header: the response carries $request_id, after every filter so that it is
 * the one field of that name (an upstream's or an add_header's is replaced). */
static int add_request_id(struct pt_request *r)
{
    struct pt_http_loc_conf *lc = pt_http_loc_conf(r, pt_http_module);
    struct pt_str name = lc ? lc->request_id_header : PT_NULL_STR;

    if (name.len == 0)
        return PT_OK;
    pt_header_remove(&r->out, name.p); /* NUL-terminated: the configuration's string */
    return pt_header_add(r, &r->out, name, pt_str_c(pt_request_id(r)));
}

int pt_http_send_header(struct pt_request *r)
{
    struct pt_http_conn *c = r->c;
    struct pt_str date = pt_http_date(), reason;
    const char *server = pt_http_server_string(server_tokens(r));
    char *p;
    size_t n = 0;

    if (r->header_sent)
        return PT_OK;
    /* error_page: the answer of the page goes out with the error's status (or its =CODE). */
    if (r->err_status && r->status >= 200 && r->status < 300) {
        r->status = r->err_status;
        r->status_line = PT_NULL_STR;
    }
    for (int i = 0; i < r->hooks->nheader_filters; i++)
        if (r->hooks->header_filters[i](r) != PT_OK)
            return PT_ERROR;
    if (r->last_header_filter && r->last_header_filter(r) != PT_OK)
        return PT_ERROR;
    if (add_request_id(r) != PT_OK)
        return PT_ERROR;
    decide_framing(r);
    if (c->closing)
        r->keepalive = 0;
    if (out_reserve(c, header_size(r)) != PT_OK)
        return PT_ERROR;
    p = c->out->last;
    reason = r->status_line.len ? r->status_line : pt_str_c(pt_http_reason(r->status));
    n += put_lit(p, "HTTP/1.1 ");
    n += pt_format_uint(p + n, (uint64_t)r->status, 10);
    p[n++] = ' ';
    n += put(p + n, reason.p, reason.len);
    n += put_lit(p + n, "\r\nServer: ");
    n += put(p + n, server, strlen(server));
    n += put_lit(p + n, "\r\nDate: ");
    n += put(p + n, date.p, date.len);
    n += put_lit(p + n, "\r\n");
    for (int i = 0; i < r->out.n; i++) {
        n += put(p + n, r->out.h[i].name.p, r->out.h[i].name.len);
        n += put_lit(p + n, ": ");
        n += put(p + n, r->out.h[i].value.p, r->out.h[i].value.len);
        n += put_lit(p + n, "\r\n");
    }
    if (r->out_length >= 0 && r->status != 204 && r->status != 304 && r->status >= 200) {
        n += put_lit(p + n, "Content-Length: ");
        n += pt_format_uint(p + n, (uint64_t)r->out_length, 10);
        n += put_lit(p + n, "\r\n");
    } else if (r->chunked_out && !r->header_only)
        n += put_lit(p + n, "Transfer-Encoding: chunked\r\n");
    if (r->tunnel)
        n += put_lit(p + n, "Connection: upgrade\r\n");
    else if (!r->keepalive)
        n += put_lit(p + n, "Connection: close\r\n");
    else if (r->h.version == 10)
        n += put_lit(p + n, "Connection: keep-alive\r\n");
    n += put_lit(p + n, "\r\n");
    c->out->last += n;
    r->bytes_sent += (int64_t)n;
    r->header_sent = 1;
    if (r->header_only) {
        r->response_done = 1;
        return write_iov(c, NULL, 0);
    }
    return PT_OK;
}

/* The last body filter: framing, then the socket. */
static int write_body(struct pt_request *r, const char *data, size_t len, int last)
{
    char chunk_head[24];
    struct iovec iov[3];
    int n = 0;

    if (r->header_only || r->response_done)
        return PT_OK;
    if (r->chunked_out && len) {
        iov[n].iov_base = chunk_head;
        iov[n].iov_len = pt_format_uint(chunk_head, len, 16);
        chunk_head[iov[n].iov_len++] = '\r';
        chunk_head[iov[n++].iov_len++] = '\n';
    }
    iov[n].iov_base = (void *)data;
    iov[n++].iov_len = len;
    if (r->chunked_out) {
        static const char crlf_last[] = "\r\n0\r\n\r\n";
        if (len && last)
            iov[n].iov_base = (void *)crlf_last, iov[n++].iov_len = 7;
        else if (len)
            iov[n].iov_base = (void *)crlf_last, iov[n++].iov_len = 2;
        else if (last)
            iov[n].iov_base = (void *)(crlf_last + 2), iov[n++].iov_len = 5;
    }
    r->body_bytes_sent += (int64_t)len;
    for (int i = 0; i < n; i++)
        r->bytes_sent += (int64_t)iov[i].iov_len;
    if (last)
        r->response_done = 1;
    return write_iov(r->c, iov, n);
}

ssize_t pt_http_send_file(struct pt_request *r, int fd, int64_t off, size_t len, int last)
{
    struct pt_http_conn *c = r->c;
    ssize_t n;
    int rc;

    struct pt_http_loc_conf *lc = r->loc_conf[pt_http_module.index];
    int yield = 0;

    /* A transport that cannot is asked first: the header then goes with the bytes read. */
    if (r->body_filtered || r->chunked_out || r->header_only || r->response_done || !lc->sendfile ||
        len == 0 || c->s.t->sendfile == NULL || c->s.t->sendfile(&c->s, fd, off, 0) == PT_DECLINED)
        return PT_DECLINED;
    if (c->error)
        return PT_ERROR;
    if (c->file_wait)
        return PT_AGAIN; /* the socket is full, or the connection gave the others a turn */
    if (lc->sendfile_max_chunk > 0 && (int64_t)len > lc->sendfile_max_chunk) {
        len = (size_t)lc->sendfile_max_chunk;
        yield = 1;
        last = 0;
    }
    /* The header (and any body bytes before) go first, held back by the kernel to fill the
     * file's first packet (MSG_MORE) rather than leave in one of their own. */
    c->s.more = 1;
    rc = pt_http_flush(c);
    c->s.more = 0;
    if (rc != PT_OK)
        return rc;
    if (!c->s.writable) {
        c->file_wait = 1;
        return PT_AGAIN;
    }
    n = c->s.t->sendfile(&c->s, fd, off, len);
    if (n == PT_AGAIN || n == PT_DECLINED) {
        c->file_wait = n == PT_AGAIN;
        return n;
    }
    if (n == 0)
        return 0;
    if (n < 0) {
        c->error = 1;
        return PT_ERROR;
    }
    c->file_wait = !c->s.writable;
    if (yield && c->s.writable) {
        /* Its turn is over: it goes on after this round's other events. */
        c->file_wait = 1;
        pt_event_post_next(&c->s.ev);
    }
    r->body_bytes_sent += n;
    r->bytes_sent += n;
    if (last && (size_t)n == len)
        r->response_done = 1;
    return n;
}

ssize_t pt_http_send_file_part(struct pt_request *r, int fd, const char *name, int64_t off,
                               int64_t len, int last, char **buf)
{
    struct pt_http_conn *c = r->c;
    ssize_t n = PT_DECLINED;

    if (len >= SENDFILE_MIN || c->out == NULL || pt_buf_len(c->out) == 0)
        n = pt_http_send_file(r, fd, off, (size_t)len, last);
    if (n == 0)
        pt_http_log(r, PT_LOG_CRIT, "sendfile() reported that \"%s\" was truncated at %lld", name,
                    (long long)off);
    if (n != PT_DECLINED)
        return n == 0 ? PT_ERROR : n;
    if (*buf == NULL && (*buf = pt_pnalloc(r->pool, READ_CHUNK)) == NULL)
        return PT_ERROR;
    do
        n = pread(fd, *buf, (size_t)pt_min(len, READ_CHUNK), off);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        pt_http_log(r, PT_LOG_CRIT, "pread() \"%s\" failed (%d: %s)", name, errno, strerror(errno));
    else if (n == 0)
        pt_http_log(r, PT_LOG_CRIT, "pread() read only 0 of %lld from \"%s\"",
                    (long long)pt_min(len, READ_CHUNK), name);
    if (n <= 0)
        return PT_ERROR;
    if (pt_http_send_body(r, *buf, (size_t)n, last && n == len) != PT_OK)
        return PT_ERROR;
    return n;
}

int pt_body_filter_next(struct pt_request *r, int self, const char *data, size_t len, int last)
{
    int next = self + 1;

    if (next < r->hooks->nbody_filters)
        return r->hooks->body_filters[next](r, next, data, len, last);
    return write_body(r, data, len, last);
}

int pt_http_send_body(struct pt_request *r, const char *data, size_t len, int last)
{
    if (r->c->error)
        return PT_ERROR;
    return pt_body_filter_next(r, -1, data, len, last);
}

/* --- generated responses --- */

struct pt_str pt_http_error_page(struct pt_request *r, int status)
{
    char page[600], id[80] = "";
    size_t n;
    const char *reason = pt_http_reason(status);

    if (r->page_request_id)
        snprintf(id, sizeof(id), "<center>request id %s</center>\r\n", pt_request_id(r));
    n = (size_t)snprintf(page, sizeof(page),
                         "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
                         "<center><h1>%d %s</h1></center>\r\n%s<hr><center>%s</center>\r\n"
                         "</body>\r\n</html>\r\n",
                         status, reason, status, reason, id,
                         pt_http_server_string(server_tokens(r)));
    return (struct pt_str){pt_pstrndup(r->pool, page, n), n};
}

int pt_http_send_special(struct pt_request *r, int status, struct pt_str text)
{
    r->status = status;
    /* Headers set for a response that is now replaced by an error page do not apply; a
     * redirect keeps its Location. */
    if (status < 300 || status > 308)
        r->out.n = 0;
    if (text.p == NULL) {
        text = pt_http_error_page(r, status);
        pt_header_add(r, &r->out, PT_STR("Content-Type"), PT_STR("text/html"));
    } else {
        pt_header_add(r, &r->out, PT_STR("Content-Type"), PT_STR("text/plain"));
    }
    /* A client whose request was refused cannot be trusted to be in sync any more. */
    if (status == 400 || status == 408 || status == 413 || status == 414 || status == 431 ||
        status == 501 || status == 505)
        r->keepalive = 0;
    r->out_length = (int64_t)text.len;
    if (pt_http_send_header(r) != PT_OK)
        return PT_ERROR;
    return pt_http_send_body(r, text.p, text.len, 1);
}
