/*
 * request.c: the request lifecycle: reading the head, choosing the server and location,
 * running the phases, reading the body for whoever consumes it, and ending the request
 * (log, keepalive or close).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "worker/http.h"
#include "worker/http_req.h"
#include "worker/http_stats.h"
#include "core/log.h"
#include "core/module.h"
#include "worker/normalize.h"
#include "core/pool.h"
#include "worker/router.h"
#include "worker/var.h"

static struct pt_http_srv_conf *srv_conf_of(struct pt_http_server *s)
{
    return s->srv_conf[pt_http_module.index];
}

static struct pt_request *request_create(struct pt_http_conn *c)
{
    /* 16 KiB: the request (3.8 KB), a proxied one's state (3.6 KB) and the head it sends
     * upstream fit in the first block, without a second malloc() per request. */
    struct pt_pool *pool = pt_pool_create(16384);
    struct pt_request *r;

    if (pool == NULL)
        return NULL;
    /* The header slots are the parser's to fill: only what it counted is read. */
    if ((r = pt_pnalloc(pool, sizeof(*r))) != NULL)
        pt_zero_except(r, sizeof(*r), r->h.headers, sizeof(r->h.headers));
    if (r == NULL ||
        (r->ctx = pt_palloc(pool, (size_t)pt_modules_count() * sizeof(void *))) == NULL) {
        pt_pool_destroy(pool);
        return NULL;
    }
    r->pool = pool;
    r->c = c;
    r->phase = -1; /* reading the head */
    r->server = pt_http_conn_addr(c)->default_server;
    r->main_conf = pt_cycle->main_conf;
    /* Once per request, so that the phases and filters cost one load as they run. */
    r->hooks = &((struct pt_http_main_conf *)r->main_conf[pt_http_module.index])->hooks;
    r->srv_conf = r->server->srv_conf;
    r->loc_conf = r->server->loc_conf;
    r->out_length = -1;
    r->status = 0;
    r->start_ms = pt_now_ms();
    r->stat_reading = 1;
    pt_http_stats_add(PT_STAT_REQUESTS, 1);
    pt_http_stats_add(PT_STAT_READING, 1);
    c->r = r;
    c->req_gen++;
    return r;
}

void pt_http_request_free(struct pt_request *r)
{
    if (r->cleanup) {
        void (*cleanup)(struct pt_request *) = r->cleanup;
        r->cleanup = NULL;
        cleanup(r);
    }
    if (r->stat_reading)
        pt_http_stats_add(PT_STAT_READING, -1);
    if (r->stat_writing)
        pt_http_stats_add(PT_STAT_WRITING, -1);
    r->c->r = NULL;
    pt_pool_destroy(r->pool);
}

/* --- why a client is refused: the error log at info, in nginx's words --- */

/* nginx's "while ..." of each stage of a request. */
#define WHILE_LINE    "reading client request line"
#define WHILE_HEADERS "reading client request headers"
#define WHILE_BODY    "reading client request body"
#define WHILE_SENDING "sending response to client"

/* Writes <s> into <dst> (<cap> bytes, NUL-terminated) with nginx's log escapes (\xHH for
 * bytes outside printable ASCII, '"' and '\\'), cut with "..." when it does not fit: a
 * client's bytes never make a log line of their own.  Returns <dst>. */
static const char *escape(char *dst, size_t cap, struct pt_str s)
{
    size_t n = 0;

    for (size_t i = 0; i < s.len; i++) {
        char seq[8];
        size_t k = pt_escape_byte(PT_ESCAPE_DEFAULT, (unsigned char)s.p[i], seq);
        if (k == 0) {
            seq[0] = s.p[i];
            k = 1;
        }
        if (n + k + sizeof("...") > cap) {
            memcpy(dst + n, "...", 3);
            n += 3;
            break;
        }
        memcpy(dst + n, seq, k);
        n += k;
    }
    dst[n] = '\0';
    return dst;
}

/* The request line of <r> for a log, escaped into <dst> (<cap> bytes): from its parts once
 * the head is parsed (an error_page's pass may have replaced the method with a static
 * "GET", so the span from method to protocol is not one slice), else what the parser saw. */
static const char *request_line(const struct pt_request *r, char *dst, size_t cap)
{
    const struct pt_http_request *h = &r->h;
    char m[64], t[512], p[32];

    if (r->phase < 0)
        return escape(dst, cap, h->err.request_line);
    snprintf(dst, cap, "%s %s %s", escape(m, sizeof(m), h->method), escape(t, sizeof(t), h->target),
             escape(p, sizeof(p), h->protocol));
    return dst;
}

/* "<msg>, client: ..., server: ..., request: "...", host: "..."" at <level>, nginx's way
 * (or as members of a JSON line: log.h). */
static void log_with_request(struct pt_request *r, int level, const char *msg)
{
    struct pt_http_srv_conf *sc = r->server ? srv_conf_of(r->server) : NULL;
    const struct pt_http_header *host = NULL;
    char line[640], hbuf[300];
    struct pt_log_request rq;

    request_line(r, line, sizeof(line));
    if (r->phase >= 0)
        host = pt_http_find_header(r->h.headers, r->h.nheaders, "host");
    rq = (struct pt_log_request){
        .client = r->c->peer_text,
        .server = sc && sc->server_name ? sc->server_name : "",
        .request = line[0] ? line : NULL,
        .host = host ? escape(hbuf, sizeof(hbuf), host->value) : NULL,
    };
    pt_log_request(level, &rq, msg);
}

void pt_http_log(struct pt_request *r, int level, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;

    if (level < pt_log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_with_request(r, level, msg);
}

/*
 * Logs at info why the client of <r> is refused, or why its request ends early, the way
 * nginx does: the reason made of <fmt> and its arguments, " while <action>" when <action>
 * is not NULL, then the client, the server, the request line and the Host.  Costs nothing
 * below info.
 */
static void log_client_error(struct pt_request *r, const char *action, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_client_error(struct pt_request *r, const char *action, const char *fmt, ...)
{
    char why[640];
    size_t n;
    va_list ap;

    if (pt_log_level > PT_LOG_INFO)
        return;
    va_start(ap, fmt);
    n = (size_t)vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (action && n < sizeof(why))
        snprintf(why + n, sizeof(why) - n, " while %s", action);
    log_with_request(r, PT_LOG_INFO, why);
}

/* Logs why the parser refused the head of <r> (its req->err). */
static void log_head_error(struct pt_request *r)
{
    const struct pt_http_error *e = &r->h.err;
    char detail[640];

    if (pt_log_level > PT_LOG_INFO)
        return;
    if (e->detail.len)
        log_client_error(r, e->in_fields ? WHILE_HEADERS : WHILE_LINE, "%s: \"%s\"", e->reason,
                         escape(detail, sizeof(detail), e->detail));
    else
        log_client_error(r, e->in_fields ? WHILE_HEADERS : WHILE_LINE, "%s", e->reason);
}

/* Logs each field line the parser ignored as invalid, as nginx's ignore_invalid_headers. */
static void log_ignored_headers(struct pt_request *r)
{
    char text[640];

    for (size_t i = 0; i < r->h.nignored && pt_log_level <= PT_LOG_INFO; i++)
        log_client_error(
            r, WHILE_HEADERS, "client sent invalid header line: \"%s\"",
            escape(text, sizeof(text), pt_http_field_line(pt_http_ignored_header(&r->h, i))));
}

/* --- reading the head --- */

static void head_limits(struct pt_http_conn *c, struct pt_http_limits *lim)
{
    /* The Host is not known yet: the default server of the address decides (as nginx's
     * "the value from the default server can be used"). */
    struct pt_http_srv_conf *sc = srv_conf_of(pt_http_conn_addr(c)->default_server);

    lim->max_request_line = (size_t)sc->large_header_size;
    lim->max_head = (size_t)(sc->large_header_size * sc->large_header_num);
    lim->max_headers = (size_t)sc->max_headers;
    lim->flags = (sc->underscores_in_headers ? PT_HTTP_UNDERSCORES : 0) |
                 (sc->ignore_invalid_headers ? 0 : PT_HTTP_KEEP_INVALID);
}

/* Makes room to read more of a head: a head may grow past one standard buffer up to the
 * configured limit (the parser reports 431 past it). */
static int head_room(struct pt_http_conn *c, size_t max_head)
{
    struct pt_buf *b;

    if (pt_buf_room(c->in))
        return PT_OK;
    if (c->in->pos != c->in->start) {
        pt_buf_compact(c->in);
        return PT_OK;
    }
    if (pt_buf_size(c->in) >= max_head + 4096)
        return PT_ERROR;
    b = pt_buf_get(max_head + 4096);
    if (b == NULL)
        return PT_ERROR;
    pt_buf_append(b, c->in->pos, pt_buf_len(c->in));
    pt_buf_put(c->in);
    c->in = b;
    return PT_OK;
}

static void refuse(struct pt_request *r, int status)
{
    r->keepalive = 0;
    r->phase = PT_PHASE_CONTENT;
    pt_http_finalize(r, status);
}

static void process_request(struct pt_request *r);

void pt_http_read_head(struct pt_http_conn *c)
{
    struct pt_http_limits lim;
    struct pt_request *r = c->r;

    if (r == NULL) {
        if (c->in == NULL && (c->in = pt_buf_get(PT_BUF_SIZE)) == NULL) {
            pt_http_conn_close(c);
            return;
        }
        /* Nothing to read on a keepalive wake-up that was only an EOF: close quietly.
         * A wake-up with nothing to read gives the buffer back: idle costs no buffer. */
        if (pt_buf_len(c->in) == 0 && pt_http_conn_read(c) <= 0) {
            if (c->eof || c->error) {
                pt_http_conn_close(c);
                return;
            }
            pt_buf_put(c->in);
            c->in = NULL;
            return;
        }
        if ((r = request_create(c)) == NULL) {
            pt_http_conn_close(c);
            return;
        }
        /* A new request's server is its address's default one until the Host is read. */
        pt_timer_add(&c->s.timer, (uint64_t)srv_conf_of(r->server)->client_header_timeout);
    }
    head_limits(c, &lim);
    for (;;) {
        int rc = pt_http_parse_request(c->in->pos, pt_buf_len(c->in), &lim, &r->h);
        ssize_t n;

        if (rc == PT_OK)
            break;
        if (rc != PT_AGAIN) {
            log_head_error(r);
            refuse(r, rc);
            return;
        }
        if (!c->s.readable)
            return;
        if (head_room(c, lim.max_head) != PT_OK) {
            pt_http_request_seen(c->in->pos, pt_buf_len(c->in), &r->h);
            log_client_error(r, r->h.err.in_fields ? WHILE_HEADERS : WHILE_LINE,
                             "client sent too large request");
            refuse(r, 431);
            return;
        }
        n = pt_http_conn_read(c);
        if (n == 0 || n == PT_ERROR) {
            /* The client left in the middle of a head: nobody to answer. */
            pt_http_conn_close(c);
            return;
        }
        if (n == PT_AGAIN)
            return;
    }
    process_request(r);
}

/* Logs nginx's "client timed out (110: Connection timed out) while <action>". */
static void log_timeout(struct pt_request *r, const char *action)
{
    log_client_error(r, action, "client timed out (%d: %s)", ETIMEDOUT, strerror(ETIMEDOUT));
}

/* client_header_timeout expired on the head of <r>: 408. */
static void head_timed_out(struct pt_request *r)
{
    pt_http_request_seen(r->c->in->pos, pt_buf_len(r->c->in), &r->h);
    log_timeout(r, r->h.err.in_fields ? WHILE_HEADERS : WHILE_LINE);
    refuse(r, 408);
}

void pt_http_head_timeout(struct pt_http_conn *c)
{
    if (c->r == NULL) {
        pt_http_conn_close(c);
        return;
    }
    head_timed_out(c->r);
}

/* --- choosing the server and location --- */

static struct pt_str host_without_port(struct pt_str h)
{
    size_t i = h.len;

    if (h.len && h.p[0] == '[') {
        const char *end = memchr(h.p, ']', h.len);
        return (struct pt_str){h.p, end ? (size_t)(end - h.p + 1) : h.len};
    }
    while (i > 0 && h.p[i - 1] >= '0' && h.p[i - 1] <= '9')
        i--;
    if (i > 0 && i < h.len && h.p[i - 1] == ':')
        return (struct pt_str){h.p, i - 1};
    return h;
}

static int find_server(struct pt_request *r)
{
    struct pt_str host = host_without_port(r->h.host);
    struct pt_http_addr *addr = pt_http_conn_addr(r->c);
    struct pt_http_server *s = NULL;

    if (host.len)
        s = pt_names_find(addr->names, host.p, host.len);
    else
        s = pt_names_find(addr->names, "", 0);
    if (s == NULL)
        s = addr->default_server;
    r->server = s;
    r->srv_conf = s->srv_conf;
    r->loc_conf = s->loc_conf;
    return PT_OK;
}

/* Methods whose content has no generally defined meaning (RFC 9110 9.3.1, 9.3.2, 9.3.5)
 * or that rarely carry any (OPTIONS): reject_unexpected_body refuses a body on them. */
static int unexpected_body(int method_id)
{
    return method_id == PT_HTTP_GET || method_id == PT_HTTP_HEAD || method_id == PT_HTTP_DELETE ||
           method_id == PT_HTTP_OPTIONS;
}

static int find_location(struct pt_request *r)
{
    struct pt_http_srv_conf *sc = srv_conf_of(r->server);
    struct pt_http_loc_conf *lc;
    size_t caps[2 * PT_LOC_MAX_CAPTURES];
    int ncaps = 0;

    /* A search again after a rewrite: the previous location's captures are gone. */
    r->captures = NULL;
    r->ncaptures = 0;
    r->uri_whole = 0;
    r->loc_conf = r->server->loc_conf;
    lc = pt_locations_find(sc->locations, r->uri.p, r->uri.len, caps, &ncaps);
    if (lc == NULL && ncaps == PT_ERROR)
        return 500;
    if (lc) {
        r->loc_conf = lc->loc_conf;
        if (ncaps > 0) {
            r->captures = pt_palloc(r->pool, (size_t)ncaps * 2 * sizeof(size_t));
            if (r->captures == NULL)
                return PT_ERROR;
            memcpy(r->captures, caps, (size_t)ncaps * 2 * sizeof(size_t));
            r->ncaptures = ncaps;
        }
    }
    lc = r->loc_conf[pt_http_module.index];
    if (lc->reject_unexpected_body && r->unexpected_body) {
        log_client_error(r, NULL, "client sent %.*s request with body", (int)r->h.method.len,
                         r->h.method.p);
        r->keepalive = 0;
        return 400;
    }
    if (lc->client_max_body_size && r->h.content_length > lc->client_max_body_size) {
        log_client_error(r, NULL, "client intended to send too large body: %lld bytes",
                         (long long)r->h.content_length);
        return 413;
    }
    if (lc->keepalive_timeout == 0 || r->c->nrequests >= (unsigned)lc->keepalive_requests)
        r->keepalive = 0;
    return PT_OK;
}

static void process_request(struct pt_request *r)
{
    struct pt_http_conn *c = r->c;
    char *uri;
    size_t len;

    pt_timer_del(&c->s.timer);
    c->in->pos += r->h.head_len;
    r->body_start = c->in->pos;
    c->nrequests++;
    /* stub_status: the head is in, the request is being served. */
    r->stat_reading = 0;
    r->stat_writing = 1;
    pt_http_stats_add(PT_STAT_READING, -1);
    pt_http_stats_add(PT_STAT_WRITING, 1);
    r->keepalive = r->h.keep_alive;
    r->args = r->h.query;
    if (r->h.chunked) {
        r->has_body = 1;
        r->body_left = -1;
    } else if (r->h.content_length > 0) {
        r->has_body = 1;
        r->body_left = r->h.content_length;
    } else {
        r->body_done = 1;
    }
    /* The desync corpus's rule for such an ambiguous request: forward it, then close both
     * connections (the proxy keeps no upstream one that carried it). */
    r->unexpected_body = r->has_body && unexpected_body(r->h.method_id);
    if (r->unexpected_body)
        r->keepalive = 0;
    find_server(r);
    r->phase = PT_PHASE_POST_READ;
    log_ignored_headers(r);
    uri = pt_palloc(r->pool, 3 * r->h.path.len + 1);
    if (uri == NULL) {
        pt_http_finalize(r, 500);
        return;
    }
    /* OPTIONS * and CONNECT carry no path to normalize. */
    if (r->h.path.len == 0 || r->h.path.p[0] != '/') {
        r->uri = r->h.path;
    } else {
        if (pt_path_normalize(r->h.path.p, r->h.path.len, uri, &len) != PT_OK) {
            log_client_error(r, NULL, "client sent invalid request");
            refuse(r, 400);
            return;
        }
        r->uri = (struct pt_str){uri, len};
    }
    pt_http_run_phases(r);
}

/* --- phases --- */

static int run_content(struct pt_request *r)
{
    struct pt_http_loc_conf *lc = r->loc_conf[pt_http_module.index];

    if (lc->handler)
        return lc->handler(r);
    for (int i = 0; i < r->hooks->nphase[PT_PHASE_CONTENT]; i++) {
        int rc = r->hooks->phases[PT_PHASE_CONTENT][i](r);
        if (rc != PT_DECLINED)
            return rc;
    }
    return 404;
}

/* Starts <r> over for an error_page: what the first pass set up goes (its module states,
 * its handlers, its response fields), then the phases run from <phase> in <loc_conf>. */
static void restart(struct pt_request *r, enum pt_phase phase, void **loc_conf)
{
    if (r->cleanup) {
        void (*cleanup)(struct pt_request *) = r->cleanup;
        r->cleanup = NULL;
        cleanup(r);
    }
    memset(r->ctx, 0, (size_t)pt_modules_count() * sizeof(*r->ctx));
    r->tap = NULL;
    r->read_handler = r->write_handler = NULL;
    r->last_header_filter = NULL;
    r->body_filtered = 0;
    r->out.n = 0;
    r->status = 0;
    r->status_line = PT_NULL_STR;
    r->out_length = -1;
    r->stream_out = 0;
    r->loc_conf = loc_conf;
    r->phase = phase;
    r->phase_index = 0;
    pt_http_run_phases(r);
}

/* The error_page line of <r>'s location for <status>, or NULL (also when an error page may
 * not have one, recursive_error_pages being off). */
static const struct pt_error_page *error_page_of(struct pt_request *r, int status)
{
    struct pt_http_loc_conf *lc = r->loc_conf[pt_http_module.index];

    if (r->error_page && !lc->recursive_error_pages)
        return NULL;
    for (int i = 0; i < lc->nerror_pages; i++)
        if (lc->error_pages[i].status == status)
            return &lc->error_pages[i];
    return NULL;
}

int pt_http_error_page_for(struct pt_request *r, int status)
{
    return error_page_of(r, status) != NULL;
}

/* A redirect of error_page <ep> to a URL: 302 unless the line names another redirect. */
static int error_page_url(struct pt_request *r, const struct pt_error_page *ep, struct pt_str url)
{
    int status = ep->overwrite >= 301 && ep->overwrite <= 308 ? ep->overwrite : 302;

    r->out.n = 0;
    if (pt_header_add(r, &r->out, PT_STR("Location"), url) != PT_OK ||
        pt_http_send_special(r, status, PT_NULL_STR) != PT_OK)
        pt_http_abort(r);
    else
        pt_http_finalize(r, PT_OK);
    return PT_DONE;
}

/* Starts <r> over for the URI <uri> ("/path?args"), as nginx's internal redirect. */
static void goto_uri(struct pt_request *r, struct pt_str uri)
{
    const char *q = memchr(uri.p, '?', uri.len);

    r->uri = q ? (struct pt_str){uri.p, (size_t)(q - uri.p)} : uri;
    r->args = q ? (struct pt_str){q + 1, uri.len - (size_t)(q + 1 - uri.p)} : PT_NULL_STR;
    r->h.has_query = q != NULL;
    r->uri_rewritten = 1;
    restart(r, PT_PHASE_SERVER_REWRITE, r->server->loc_conf);
}

/* One more internal redirect of <r> to <to>: PT_OK, or PT_ERROR past nginx's ten (logged). */
static int count_redirect(struct pt_request *r, struct pt_str to)
{
    if (++r->internal_redirects <= 10)
        return PT_OK;
    pt_log(PT_LOG_ERR,
           "rewrite or internal redirection cycle while internally redirecting to \"%.*s\", "
           "client: %s",
           (int)to.len, to.p, r->c->peer_text);
    return PT_ERROR;
}

int pt_http_internal_redirect(struct pt_request *r, struct pt_str to)
{
    struct pt_http_loc_conf *named;

    if (count_redirect(r, to) != PT_OK)
        return 500;
    if (to.len && to.p[0] == '@') {
        if ((named = pt_http_named_location(r, to)) == NULL) {
            pt_log(PT_LOG_ERR, "could not find named location \"%.*s\"", (int)to.len, to.p);
            return 500;
        }
        restart(r, PT_PHASE_REWRITE, named->loc_conf);
        return PT_DONE;
    }
    goto_uri(r, to);
    return PT_DONE;
}

/*
 * nginx's error_page: the answer <status> that portier was about to make is, when the
 * location lists it, the answer of another URI (a new pass over the phases, with GET), of a
 * named location (the same method), or a redirect.  Not again for the answer of an
 * error_page unless recursive_error_pages.  Returns PT_DONE when it took the request over,
 * PT_DECLINED when the error goes out as it is.
 */
static int error_page(struct pt_request *r, int status)
{
    const struct pt_error_page *ep = error_page_of(r, status);
    struct pt_str uri;

    if (ep == NULL || pt_template_eval(r, ep->uri, &uri) != PT_OK || uri.len == 0)
        return PT_DECLINED;
    if (count_redirect(r, uri) != PT_OK)
        return PT_DECLINED;
    r->error_page = 1;
    r->err_status = ep->overwrite > 0 ? ep->overwrite : ep->overwrite < 0 ? 0 : status;
    if (uri.p[0] == '@') {
        struct pt_http_loc_conf *named = pt_http_named_location(r, uri);
        if (named == NULL) {
            pt_log(PT_LOG_ERR, "could not find named location \"%.*s\"", (int)uri.len, uri.p);
            r->err_status = 0;
            return PT_DECLINED;
        }
        restart(r, PT_PHASE_REWRITE, named->loc_conf);
        return PT_DONE;
    }
    if (uri.p[0] != '/') {
        r->err_status = 0;
        return error_page_url(r, ep, uri);
    }
    /* nginx: a URI's answer is asked for with GET (HEAD stays HEAD). */
    if (r->h.method_id != PT_HTTP_GET && r->h.method_id != PT_HTTP_HEAD) {
        r->h.method_id = PT_HTTP_GET;
        r->h.method = PT_STR("GET");
    }
    goto_uri(r, uri);
    return PT_DONE;
}

void pt_http_search_location_again(struct pt_request *r)
{
    /* The engine moves on to the next phase after a handler's PT_OK: the one before. */
    r->phase = PT_PHASE_FIND_CONFIG - 1;
    r->phase_index = 0;
}

void pt_http_run_phases(struct pt_request *r)
{
    while (r->phase < PT_PHASE_CONTENT) {
        int rc = PT_OK;

        if (r->phase == PT_PHASE_FIND_CONFIG) {
            rc = find_location(r);
        } else {
            for (; r->phase_index < r->hooks->nphase[r->phase]; r->phase_index++) {
                rc = r->hooks->phases[r->phase][r->phase_index](r);
                if (rc != PT_DECLINED)
                    break;
            }
            if (rc == PT_DECLINED)
                rc = PT_OK;
        }
        if (rc == PT_AGAIN || rc == PT_DONE)
            return;
        /* A handler that answered and said PT_OK is still done with the request. */
        if (rc != PT_OK || r->header_sent) {
            pt_http_finalize(r, rc);
            return;
        }
        r->phase++;
        r->phase_index = 0;
    }
    {
        int rc = run_content(r);
        if (rc != PT_AGAIN && rc != PT_DONE)
            pt_http_finalize(r, rc);
    }
}

/* --- the request body --- */

void pt_http_send_continue(struct pt_request *r)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

    if (!r->h.expect_continue || r->expect_sent || r->header_sent)
        return;
    r->expect_sent = 1;
    pt_http_write_raw(r->c, cont, sizeof(cont) - 1);
}

/* Decodes from the buffered bytes; see pt_http_body_peek. */
static int body_from_buffer(struct pt_request *r, struct pt_str *data, int *last)
{
    struct pt_buf *in = r->c->in;
    size_t avail = pt_buf_len(in);

    if (r->body_left >= 0) {
        size_t n = (size_t)pt_min((int64_t)avail, r->body_left);
        *data = (struct pt_str){in->pos, n};
        *last = (int64_t)n == r->body_left;
        return n || *last ? PT_OK : PT_AGAIN;
    }
    while (avail) {
        struct pt_str d = PT_NULL_STR;
        ssize_t used = pt_chunked_parse(&r->chunk, in->pos, avail, &d);
        if (used < 0)
            return 400;
        if (d.len) {
            /* Skip the framing before the data; keep the data in place for the caller.
             * The decoder consumed exactly up to the end of the data. */
            r->body_framing += d.p - in->pos;
            in->pos = (char *)d.p;
            r->chunk_ready = d.len;
            *data = d;
            *last = 0;
            return PT_OK;
        }
        in->pos += used;
        avail -= (size_t)used;
        r->body_framing += used;
        if (r->chunk.done) {
            *data = (struct pt_str){in->pos, 0};
            *last = 1;
            r->body_done = 1;
            return PT_OK;
        }
        if (used == 0)
            break;
    }
    return PT_AGAIN;
}

int pt_http_body_peek(struct pt_request *r, struct pt_str *data, int *last)
{
    int rc = pt_body_store_peek(r, data, last);

    return rc != PT_DECLINED ? rc : pt_http_body_peek_from_client(r, data, last);
}

int pt_http_body_peek_from_client(struct pt_request *r, struct pt_str *data, int *last)
{
    struct pt_http_conn *c = r->c;
    struct pt_http_loc_conf *lc = r->loc_conf[pt_http_module.index];

    *last = 0;
    if (r->body_done) {
        *data = (struct pt_str){c->in ? c->in->pos : NULL, 0};
        *last = 1;
        return PT_OK;
    }
    for (;;) {
        int rc;
        ssize_t n;

        /* Chunked data decoded earlier and not consumed yet. */
        if (r->chunk_ready) {
            *data = (struct pt_str){c->in->pos, r->chunk_ready};
            return PT_OK;
        }
        rc = body_from_buffer(r, data, last);
        if (rc == 400) /* logged here, not again when what is buffered is discarded */
            log_client_error(r, NULL, "client sent invalid chunked body");
        if (rc == PT_OK && lc->client_max_body_size &&
            r->body_received + (int64_t)data->len > lc->client_max_body_size) {
            log_client_error(r, NULL,
                             "client intended to send too large chunked body: %lld+%zu bytes",
                             (long long)r->body_received, data->len);
            return 413;
        }
        if (rc != PT_AGAIN)
            return rc;
        /* Reuse the space after the head (which must stay readable for the log and the
         * variables), keeping a partial chunk line that is still buffered. */
        if (c->in->pos != r->body_start) {
            size_t keep = pt_buf_len(c->in);
            memmove(r->body_start, c->in->pos, keep);
            c->in->pos = r->body_start;
            c->in->last = r->body_start + keep;
        }
        if (!c->s.readable) {
            pt_http_send_continue(r);
            pt_timer_add(&c->s.timer, (uint64_t)lc->client_body_timeout);
            return PT_AGAIN;
        }
        n = pt_http_conn_read(c);
        if (n == 0 || n == PT_ERROR) {
            log_client_error(r, NULL, "client prematurely closed connection");
            return 400;
        }
        if (n == PT_AGAIN) {
            pt_http_send_continue(r);
            pt_timer_add(&c->s.timer, (uint64_t)lc->client_body_timeout);
            return PT_AGAIN;
        }
    }
}

int pt_http_body_check_buffered(struct pt_request *r)
{
    struct pt_chunked scratch = r->chunk;
    const char *p = r->c->in->pos;
    size_t avail = pt_buf_len(r->c->in);

    if (r->body_done || r->body_left >= 0 || r->chunk_ready)
        return PT_OK;
    while (avail && !scratch.done) {
        struct pt_str d;
        ssize_t used = pt_chunked_parse(&scratch, p, avail, &d);
        if (used < 0) {
            log_client_error(r, NULL, "client sent invalid chunked body");
            return 400;
        }
        if (used == 0)
            break;
        p += used;
        avail -= (size_t)used;
    }
    return PT_OK;
}

void pt_http_body_consumed(struct pt_request *r, size_t n)
{
    if (!pt_body_store_consumed(r, n))
        pt_http_body_consumed_from_client(r, n);
}

void pt_http_body_consumed_from_client(struct pt_request *r, size_t n)
{
    r->c->in->pos += n;
    r->body_received += (int64_t)n;
    if (r->body_left >= 0) {
        r->body_left -= (int64_t)n;
        if (r->body_left == 0)
            r->body_done = 1;
    } else {
        r->chunk_ready -= n;
        if (r->chunk_ready == 0 && r->chunk.done)
            r->body_done = 1;
    }
    if (r->body_done)
        pt_timer_del(&r->c->s.timer);
}

/* --- ending a request --- */

static void run_log_phase(struct pt_request *r)
{
    if (r->logged)
        return;
    r->logged = 1;
    for (int i = 0; i < r->hooks->nphase[PT_PHASE_LOG]; i++)
        r->hooks->phases[PT_PHASE_LOG][i](r);
}

/* Drops the rest of a request body that nobody consumed, as far as it is buffered.
 * Returns 1 when the body is complete (the connection can serve the next request). */
static int discard_buffered_body(struct pt_request *r)
{
    struct pt_http_conn *c = r->c;

    while (!r->body_done && c->in) {
        struct pt_str d;
        int last = 0;
        if (r->chunk_ready) {
            pt_http_body_consumed_from_client(r, r->chunk_ready);
            continue;
        }
        if (body_from_buffer(r, &d, &last) != PT_OK)
            return 0;
        if (d.len == 0 && !last)
            return 0;
        pt_http_body_consumed_from_client(r, d.len);
        if (last)
            r->body_done = 1;
    }
    return 1;
}

static void request_done(struct pt_request *r)
{
    struct pt_http_conn *c = r->c;
    struct pt_http_loc_conf *lc = r->loc_conf[pt_http_module.index];
    int keepalive = r->keepalive && !c->closing && !c->error && !c->eof;

    run_log_phase(r);
    /* The rest of a body still on its way ends this connection. */
    if (!discard_buffered_body(r))
        keepalive = 0;
    pt_http_request_free(r);
    c->file_wait = 0;
    if (keepalive) {
        pt_http_conn_idle(c, lc->keepalive_timeout);
        return;
    }
    if (c->error) {
        pt_http_conn_close(c);
        return;
    }
    /* Whatever the client still sends (that body, requests pipelined past
     * keepalive_requests, the rest of a refused head) must not meet a closed socket: its
     * RST would destroy the answers in flight.  The connection lingers once they are out,
     * which send_timeout bounds. */
    pt_timer_add(&c->s.timer, (uint64_t)lc->send_timeout);
    pt_http_conn_linger(c);
}

void pt_http_abort(struct pt_request *r)
{
    struct pt_http_conn *c = r->c;

    if (r->status == 0)
        r->status = 499;
    run_log_phase(r);
    pt_http_conn_close(c);
}

void pt_http_finalize(struct pt_request *r, int rc)
{
    struct pt_http_loc_conf *lc = r->loc_conf[pt_http_module.index];

    if (r->finalized)
        return;
    if (r->background)
        rc = PT_OK; /* the client was answered before the background work began */
    if (rc == PT_ERROR)
        rc = 500;
    if (rc >= 100) {
        if (r->header_sent) {
            pt_http_abort(r);
            return;
        }
        if (error_page(r, rc) == PT_DONE)
            return;
        if (pt_http_send_special(r, rc, PT_NULL_STR) != PT_OK) {
            pt_http_abort(r);
            return;
        }
    }
    if (!r->response_done || r->c->error) {
        pt_http_abort(r);
        return;
    }
    r->finalized = 1;
    r->read_handler = NULL;
    r->write_handler = NULL;
    if (pt_http_output_blocked(r)) {
        pt_timer_add(&r->c->s.timer, (uint64_t)lc->send_timeout);
        return;
    }
    request_done(r);
}

void pt_http_request_event(struct pt_request *r, unsigned events)
{
    struct pt_http_conn *c = r->c;

    if (r->phase < 0) {
        if (c->s.readable)
            pt_http_read_head(c);
        return;
    }
    if (((c->out && pt_buf_len(c->out)) || c->file_wait) && c->s.writable) {
        int rc = pt_http_flush(c);
        c->file_wait = 0;
        if (rc == PT_ERROR) {
            pt_http_abort(r);
            return;
        }
        if (rc == PT_OK) {
            unsigned gen = c->req_gen;
            /* The send timeout measured the wait for this flush; it is over. */
            pt_timer_del(&c->s.timer);
            if (r->finalized) {
                request_done(r);
                return;
            }
            if (r->write_handler) {
                r->write_handler(r);
                if (c->s.ev.fd < 0 || c->r != r || c->req_gen != gen)
                    return;
            }
        } else {
            struct pt_http_loc_conf *lc = r->loc_conf[pt_http_module.index];
            pt_timer_add(&c->s.timer, (uint64_t)lc->send_timeout);
        }
    }
    if ((c->s.readable || (events & PT_EV_ERROR)) && r->read_handler)
        r->read_handler(r);
}

void pt_http_request_timeout(struct pt_request *r)
{
    if (r->phase < 0) {
        head_timed_out(r);
        return;
    }
    log_timeout(r, r->header_sent || r->finalized ? WHILE_SENDING
                   : !r->body_done                ? WHILE_BODY
                                                  : NULL);
    if (!r->header_sent && !r->finalized) {
        r->keepalive = 0;
        if (r->cleanup) {
            void (*cleanup)(struct pt_request *) = r->cleanup;
            r->cleanup = NULL;
            cleanup(r);
        }
        pt_http_finalize(r, 408);
        return;
    }
    pt_http_abort(r);
}
