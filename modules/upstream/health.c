/*
 * health.c: active health checks (see health.h).  Each checked server has one struct
 * check in the helper process: a timer that starts a check every interval, and while a
 * check runs, a non-blocking connection with its own timeout.  An HTTP check sends one
 * request with Connection: close and judges the status (and optionally the body); a TCP
 * check passes when the connection is accepted.  Results are counted in the server's
 * shared state: `fall` failures in a row mark it down, `rise` passes in a row up again,
 * and each transition is logged.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "modules/upstream/health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/cycle.h"
#include "worker/event.h"
#include "worker/http_parse.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/times.h"
#include "modules/upstream/upstream.h"

#define STATUS_RANGES 8
#define CHECK_BUF     16384 /* response bytes read: the head and the start of the body */

struct pt_health_conf {
    unsigned tcp : 1;
    unsigned mandatory : 1;
    SSL_CTX *tls; /* `tls`: checks go over TLS (no certificate verification); NULL: plain */
    const char *method;
    const char *uri;
    const char *host; /* NULL: the server as written */
    int port;         /* 0: the server's */
    int nstatus;
    int status[STATUS_RANGES][2];
    pcre2_code *body;
    int64_t interval, timeout;
    int rise, fall;
};

/* One server's checks, in the helper. */
struct check {
    struct pt_event ev;
    struct pt_timer timer; /* the next check, or the running one's timeout */
    struct pt_upstream *u;
    struct pt_peer *p;
    const struct pt_health_conf *hc;
    char req[512];
    size_t req_len, sent;
    size_t len;
    SSL *ssl; /* the running check's TLS, with `tls` */
    unsigned running : 1;
    unsigned connected : 1;
    unsigned handshaken : 1;
    char buf[CHECK_BUF];
};

int pt_health_mandatory(const struct pt_health_conf *hc)
{
    return hc->mandatory;
}

int pt_health_status_ok(const struct pt_health_conf *hc, int status)
{
    for (int i = 0; i < hc->nstatus; i++)
        if (status >= hc->status[i][0] && status <= hc->status[i][1])
            return 1;
    return 0;
}

/* --- configuration --- */

static void free_regex(void *code)
{
    pcre2_code_free(code);
}

/* "200-399", "200" or "200,204,301-302". */
static int parse_status(struct pt_conf *cf, struct pt_health_conf *hc, const char *v)
{
    const char *s = v;

    hc->nstatus = 0;
    while (*s) {
        char *end;
        long lo = strtol(s, &end, 10), hi = lo;
        if (*end == '-')
            hi = strtol(end + 1, &end, 10);
        if (lo < 100 || hi > 599 || lo > hi || (*end != ',' && *end != '\0') ||
            hc->nstatus == STATUS_RANGES)
            return pt_conf_error(cf,
                                 "invalid status \"%s\" in \"health_check\": use CODE, LOW-HIGH "
                                 "or a comma-separated list of them (at most %d)",
                                 v, STATUS_RANGES);
        hc->status[hc->nstatus][0] = (int)lo;
        hc->status[hc->nstatus][1] = (int)hi;
        hc->nstatus++;
        s = *end ? end + 1 : end;
    }
    return PT_OK;
}

static int parse_body(struct pt_conf *cf, struct pt_health_conf *hc, const char *v)
{
    PCRE2_UCHAR msg[256];
    PCRE2_SIZE off;
    int rc;

    hc->body = pcre2_compile((PCRE2_SPTR)v, PCRE2_ZERO_TERMINATED, 0, &rc, &off, NULL);
    if (hc->body == NULL) {
        pcre2_get_error_message(rc, msg, sizeof(msg));
        return pt_conf_error(cf, "invalid body regex \"%s\" in \"health_check\": %s at offset %zu",
                             v, (const char *)msg, (size_t)off);
    }
    pt_pool_cleanup(cf->pool, free_regex, hc->body);
    return PT_OK;
}

static int parse_count(struct pt_conf *cf, const char *name, const char *v, int *out)
{
    int64_t n;

    if (pt_parse_int(v, &n) != PT_OK || n < 1 || n > 1000)
        return pt_conf_error(cf, "invalid %s \"%s\" in \"health_check\": use 1 to 1000", name, v);
    *out = (int)n;
    return PT_OK;
}

static int parse_time(struct pt_conf *cf, const char *name, const char *v, int64_t *out)
{
    if (pt_parse_msec(v, out) != PT_OK || *out < 1)
        return pt_conf_error(cf, "invalid %s \"%s\" in \"health_check\": use a time like 2s", name,
                             v);
    return PT_OK;
}

static void free_ctx(void *ctx)
{
    SSL_CTX_free(ctx);
}

/* `tls`: a client context for the checks.  They ask whether a server answers, not who it
 * is, so certificates are not verified (HAProxy's check-ssl with verify none). */
static int tls_context(struct pt_conf *cf, struct pt_health_conf *hc)
{
    if (hc->tls)
        return PT_OK;
    hc->tls = SSL_CTX_new(TLS_client_method());
    if (hc->tls == NULL || pt_pool_cleanup(cf->pool, free_ctx, hc->tls) != PT_OK)
        return pt_conf_error(cf, "cannot create the TLS context of \"health_check\"");
    SSL_CTX_set_verify(hc->tls, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_options(hc->tls, SSL_OP_IGNORE_UNEXPECTED_EOF);
    return PT_OK;
}

/* One word of the directive's value. */
static int health_option(struct pt_conf *cf, struct pt_health_conf *hc, const char *w)
{
    const char *eq = strchr(w, '=');
    const char *v = eq ? eq + 1 : "";
    size_t n = eq ? (size_t)(eq - w) : strlen(w);
    int64_t port;

#define IS(name) (n == sizeof(name) - 1 && strncmp(w, name, n) == 0)
    if (!eq && IS("mandatory"))
        hc->mandatory = 1;
    else if (!eq && IS("tls"))
        return tls_context(cf, hc);
    else if (eq && IS("type") && (strcmp(v, "http") == 0 || strcmp(v, "tcp") == 0))
        hc->tcp = v[0] == 't';
    else if (eq && IS("uri") && v[0] == '/')
        hc->uri = pt_pstrdup(cf->pool, v);
    else if (eq && IS("method") && (strcmp(v, "GET") == 0 || strcmp(v, "HEAD") == 0))
        hc->method = pt_pstrdup(cf->pool, v);
    else if (eq && IS("host") && v[0])
        hc->host = pt_pstrdup(cf->pool, v);
    else if (eq && IS("port"))
        return pt_parse_int(v, &port) == PT_OK && port > 0 && port < 65536
                   ? (hc->port = (int)port, PT_OK)
                   : pt_conf_error(cf, "invalid port \"%s\" in \"health_check\"", v);
    else if (eq && IS("status"))
        return parse_status(cf, hc, v);
    else if (eq && IS("body"))
        return parse_body(cf, hc, v);
    else if (eq && (IS("rise") || IS("passes")))
        return parse_count(cf, "rise", v, &hc->rise);
    else if (eq && (IS("fall") || IS("fails")))
        return parse_count(cf, "fall", v, &hc->fall);
    else if (eq && IS("interval"))
        return parse_time(cf, "interval", v, &hc->interval);
    else if (eq && IS("timeout"))
        return parse_time(cf, "timeout", v, &hc->timeout);
    else
        return pt_conf_error(cf,
                             "invalid health_check option \"%s\": use type=http|tcp, tls, "
                             "uri=/PATH, method=GET|HEAD, status=LOW-HIGH, body=REGEX, host=NAME, "
                             "port=N, interval=TIME, timeout=TIME, rise=N, fall=N or mandatory",
                             w);
#undef IS
    return PT_OK;
}

int pt_health_set(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct pt_upstream *u = conf;
    struct pt_health_conf *hc;
    char *w[16];
    int n;

    if (u->check)
        return pt_conf_error(cf, "\"health_check\" is duplicate");
    hc = pt_palloc(cf->pool, sizeof(*hc));
    if (hc == NULL)
        return pt_conf_error(cf, "out of memory");
    *hc = (struct pt_health_conf){.method = "GET",
                                  .uri = "/",
                                  .nstatus = 1,
                                  .status = {{200, 399}},
                                  .interval = 5000,
                                  .timeout = 2000,
                                  .rise = 2,
                                  .fall = 3};
    n = pt_conf_split(cf, cf->value, w, 16);
    if (n < 0)
        return PT_ERROR;
    for (int i = 0; i < n; i++)
        if (health_option(cf, hc, w[i]) != PT_OK)
            return PT_ERROR;
    u->check = hc;
    return PT_OK;
}

/* --- results --- */

/* Publishes <text> as the last result, under the seqlock readers (the status API) use. */
static void set_last(struct pt_peer_shared *s, const char *text)
{
    __atomic_add_fetch(&s->check_seq, 1, __ATOMIC_RELEASE);
    snprintf(s->last_check, sizeof(s->last_check), "%s", text);
    __atomic_store_n(&s->last_check_ms, pt_time_wall_ms(), __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->check_seq, 1, __ATOMIC_RELEASE);
}

static void mark(struct check *c, enum pt_health h, const char *why)
{
    struct pt_peer_shared *s = c->p->shared;

    __atomic_store_n(&s->health, h, __ATOMIC_RELAXED);
    if (h == PT_HEALTH_UP) {
        /* Checks say it is back: what passive failures said before no longer holds, and
         * slow start ramps from now. */
        __atomic_store_n(&s->down_until_ms, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->fails, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->recovered_ms, pt_now_ms(), __ATOMIC_RELAXED);
    }
    pt_log(h == PT_HEALTH_DOWN ? PT_LOG_WARN : PT_LOG_NOTICE, "upstream %s server %s is %s (%s)",
           c->u->name, c->p->name, h == PT_HEALTH_DOWN ? "down" : "up", why);
}

/* Counts one result of <c>'s server and moves its health when rise or fall is reached. */
static void record(struct check *c, int ok, const char *text)
{
    struct pt_peer_shared *s = c->p->shared;
    uint32_t h = __atomic_load_n(&s->health, __ATOMIC_RELAXED), run;
    char why[160];

    __atomic_add_fetch(&s->checks, 1, __ATOMIC_RELAXED);
    set_last(s, text);
    if (ok) {
        __atomic_store_n(&s->check_fails, 0, __ATOMIC_RELAXED);
        run = __atomic_add_fetch(&s->check_passes, 1, __ATOMIC_RELAXED);
        /* A server nobody has judged yet is up at its first pass; a down one needs rise. */
        if (h == PT_HEALTH_UNKNOWN || (h == PT_HEALTH_DOWN && run >= (uint32_t)c->hc->rise)) {
            snprintf(why, sizeof(why), "%u passed check%s: %s", run, run > 1 ? "s" : "", text);
            mark(c, PT_HEALTH_UP, why);
        }
        return;
    }
    __atomic_add_fetch(&s->checks_failed, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&s->check_passes, 0, __ATOMIC_RELAXED);
    run = __atomic_add_fetch(&s->check_fails, 1, __ATOMIC_RELAXED);
    if (h != PT_HEALTH_DOWN && run >= (uint32_t)c->hc->fall) {
        snprintf(why, sizeof(why), "%u failed check%s: %s", run, run > 1 ? "s" : "", text);
        mark(c, PT_HEALTH_DOWN, why);
    } else if (h != PT_HEALTH_DOWN) {
        pt_log(PT_LOG_INFO, "upstream %s server %s failed a health check (%u in a row): %s",
               c->u->name, c->p->name, run, text);
    }
}

/* --- one check --- */

static void check_event(struct pt_event *ev, unsigned events);

static void finish(struct check *c, int ok, const char *text)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
    ERR_clear_error();
    pt_event_del(&c->ev);
    close(c->ev.fd);
    c->ev.fd = -1;
    c->running = 0;
    record(c, ok, text);
    pt_timer_add(&c->timer, (uint64_t)c->hc->interval);
}

static void fail_errno(struct check *c, const char *what, int err)
{
    char text[64];

    if (err == ECONNREFUSED)
        snprintf(text, sizeof(text), "%s refused", what);
    else
        snprintf(text, sizeof(text), "%s: %s", what, strerror(err));
    finish(c, 0, text);
}

static void start(struct check *c)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd;

    pt_peer_address(c->p, &ss, &len);
    if (c->hc->port && ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)c->hc->port);
    else if (c->hc->port && ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)c->hc->port);
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->ev.fd = fd;
    c->running = 1;
    c->connected = c->handshaken = 0;
    c->sent = c->len = 0;
    if (fd < 0 || pt_event_add(&c->ev, 0) != PT_OK) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        c->ev.fd = -1;
        c->running = 0;
        record(c, 0, strerror(err));
        pt_timer_add(&c->timer, (uint64_t)c->hc->interval);
        return;
    }
    pt_timer_add(&c->timer, (uint64_t)c->hc->timeout);
    if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS)
        fail_errno(c, "connect", errno);
}

static void on_timer(struct pt_timer *t)
{
    struct check *c = t->data;

    if (c->running)
        finish(c, 0,
               !c->connected                  ? "connect timeout"
               : c->hc->tls && !c->handshaken ? "TLS handshake timeout"
                                              : "timeout waiting for the response");
    else
        start(c);
}

/* Judges the response read so far: PT_AGAIN while more is needed, else PT_DONE after
 * finish().  <eof>: the server closed the connection. */
static int judge(struct check *c, int eof)
{
    struct pt_http_response resp = {0};
    char text[64];
    int rc = pt_http_parse_response(c->buf, c->len, sizeof(c->buf), &resp);

    if (rc == PT_AGAIN && !eof && c->len < sizeof(c->buf))
        return PT_AGAIN;
    if (rc != PT_OK) {
        finish(c, 0, rc == PT_AGAIN ? "closed before a complete response" : "invalid response");
        return PT_DONE;
    }
    snprintf(text, sizeof(text), "%d %.*s", resp.status, (int)pt_min(resp.reason.len, 40),
             resp.reason.p);
    if (!pt_health_status_ok(c->hc, resp.status)) {
        finish(c, 0, text);
        return PT_DONE;
    }
    if (c->hc->body == NULL) {
        finish(c, 1, text);
        return PT_DONE;
    }
    /* The body is matched once it is whole (the server closes: Connection: close), or
     * once the buffer is full: a check looks at the start of a body only. */
    if (!eof && c->len < sizeof(c->buf) &&
        (resp.content_length < 0 || c->len < resp.head_len + (size_t)resp.content_length))
        return PT_AGAIN;
    {
        const char *body = c->buf + resp.head_len;
        size_t blen = c->len - resp.head_len;
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(c->hc->body, NULL);
        int m;
        if (resp.chunked) {
            /* Decoded in place: the data slices only ever move towards the start. */
            struct pt_chunked ck = {0};
            size_t out = 0, pos = 0;
            while (pos < blen && !ck.done) {
                struct pt_str d;
                ssize_t k = pt_chunked_parse(&ck, body + pos, blen - pos, &d);
                if (k <= 0)
                    break;
                memmove(c->buf + resp.head_len + out, d.p, d.len);
                out += d.len;
                pos += (size_t)k;
            }
            blen = out;
        }
        m = md ? pcre2_match(c->hc->body, (PCRE2_SPTR)body, blen, 0, 0, md, NULL) : -1;
        pcre2_match_data_free(md);
        if (m < 0)
            snprintf(text, sizeof(text), "%d, body does not match", resp.status);
        finish(c, m >= 0, text);
    }
    return PT_DONE;
}

/* send() or SSL_write(): bytes taken, or -1 with errno (EAGAIN: wait for an event). */
static ssize_t chk_send(struct check *c, const char *p, size_t n)
{
    size_t done = 0;
    int err;

    if (c->ssl == NULL)
        return send(c->ev.fd, p, n, MSG_NOSIGNAL);
    if (SSL_write_ex(c->ssl, p, n, &done) == 1)
        return (ssize_t)done;
    err = SSL_get_error(c->ssl, 0);
    errno = err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? EAGAIN : EPROTO;
    return -1;
}

/* recv() or SSL_read(): bytes, 0 at the end, or -1 with errno. */
static ssize_t chk_recv(struct check *c, char *p, size_t n)
{
    size_t done = 0;
    int err;

    if (c->ssl == NULL)
        return recv(c->ev.fd, p, n, 0);
    if (SSL_read_ex(c->ssl, p, n, &done) == 1)
        return (ssize_t)done;
    err = SSL_get_error(c->ssl, 0);
    if (err == SSL_ERROR_ZERO_RETURN)
        return 0;
    errno = err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? EAGAIN : EPROTO;
    return -1;
}

static void do_write(struct check *c)
{
    while (c->sent < c->req_len) {
        ssize_t n = chk_send(c, c->req + c->sent, c->req_len - c->sent);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0) {
            fail_errno(c, "send", errno);
            return;
        }
        c->sent += (size_t)n;
    }
}

static void do_read(struct check *c)
{
    /* The buffer is never full here: judge() ends the check before that. */
    for (;;) {
        ssize_t n = chk_recv(c, c->buf + c->len, sizeof(c->buf) - c->len);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0) {
            fail_errno(c, "recv", errno);
            return;
        }
        c->len += (size_t)n;
        if (judge(c, n == 0) == PT_DONE)
            return;
    }
}

/* Runs the TLS handshake of <c> as far as it goes: PT_OK once done (a TCP check then passes),
 * PT_AGAIN while it waits, PT_ERROR after finish(). */
static int tls_handshake(struct check *c)
{
    char text[64], host[128];
    const char *why;
    int rc, err;

    if (c->ssl == NULL) {
        struct in6_addr a;
        char *colon;
        snprintf(host, sizeof(host), "%s", c->hc->host ? c->hc->host : c->p->host);
        colon = strrchr(host, ':');
        if (colon && !c->hc->host)
            *colon = '\0';
        c->ssl = SSL_new(c->hc->tls);
        if (c->ssl == NULL || SSL_set_fd(c->ssl, c->ev.fd) != 1) {
            finish(c, 0, "cannot start TLS");
            return PT_ERROR;
        }
        /* SNI is a host name, never an address (RFC 6066 3). */
        if (inet_pton(AF_INET, host, &a) != 1 && inet_pton(AF_INET6, host, &a) != 1 &&
            host[0] != '[')
            SSL_set_tlsext_host_name(c->ssl, host);
        SSL_set_connect_state(c->ssl);
    }
    rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        c->handshaken = 1;
        if (c->hc->tcp) {
            finish(c, 1, "TLS handshake done");
            return PT_ERROR;
        }
        return PT_OK;
    }
    err = SSL_get_error(c->ssl, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
        return PT_AGAIN;
    why = ERR_peek_last_error() ? ERR_reason_error_string(ERR_peek_last_error()) : NULL;
    snprintf(text, sizeof(text), "TLS handshake failed: %s", why ? why : "connection closed");
    finish(c, 0, text);
    return PT_ERROR;
}

static void check_event(struct pt_event *ev, unsigned events)
{
    struct check *c = ev->data;

    if (!c->running)
        return;
    if (!c->connected) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (!(events & (PT_EV_WRITE | PT_EV_ERROR)))
            return;
        if (getsockopt(ev->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            fail_errno(c, "connect", err ? err : errno);
            return;
        }
        c->connected = 1;
        if (c->hc->tcp && !c->hc->tls) {
            finish(c, 1, "connected");
            return;
        }
    }
    if (c->hc->tls && !c->handshaken && tls_handshake(c) != PT_OK)
        return;
    do_write(c);
    /* Edge-triggered: what arrived while we were writing (or inside the TLS library) gives
     * no new edge, so reading is tried whenever the request is out. */
    if (c->running && c->sent == c->req_len)
        do_read(c);
}

/* --- start-up --- */

static int start_group(struct pt_upstream *u)
{
    const struct pt_health_conf *hc = u->check;

    for (int i = 0; i < u->npeers; i++) {
        struct check *c = calloc(1, sizeof(*c));
        struct pt_peer *p = &u->peers[i];
        int n;
        if (c == NULL)
            return PT_ERROR;
        if (p->shared == NULL) /* a group of one: its state still lives in the zone */
            return PT_ERROR;
        c->u = u;
        c->p = p;
        c->hc = hc;
        c->ev.fd = -1;
        c->ev.handler = check_event;
        c->ev.data = c;
        c->timer.handler = on_timer;
        c->timer.data = c;
        n = snprintf(c->req, sizeof(c->req),
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: portier-health-check\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n",
                     hc->method, hc->uri, hc->host ? hc->host : p->host);
        if (n < 0 || (size_t)n >= sizeof(c->req))
            return PT_ERROR;
        c->req_len = (size_t)n;
        /* Staggered: the servers of a group are checked at even steps of the interval. */
        pt_timer_add(&c->timer, (uint64_t)(hc->interval * i / u->npeers) + 1);
    }
    return PT_OK;
}

int pt_health_start(struct pt_cycle *cycle)
{
    int n;
    struct pt_upstream **ups = pt_upstream_groups(cycle, &n);

    for (int i = 0; i < n; i++) {
        if (ups[i]->check == NULL)
            continue;
        if (start_group(ups[i]) != PT_OK) {
            pt_log(PT_LOG_CRIT, "cannot start the health checks of upstream %s", ups[i]->name);
            return PT_ERROR;
        }
        pt_log(PT_LOG_INFO, "health checks of upstream %s: %d servers every %lldms", ups[i]->name,
               ups[i]->npeers, (long long)ups[i]->check->interval);
    }
    return PT_OK;
}
