/*
 * health.c: active health checks (see health.h).  Each checked server has one struct
 * check in the helper process: a timer that starts a check every interval, and the HTTP
 * client (worker/http_client.h) that runs it, with its own timeout.  An HTTP check sends
 * one request with Connection: close and judges the status (and optionally the body); a
 * TCP check passes when the connection is accepted (with `tls`, once the handshake is
 * done).  Results are counted in the server's shared state: `fall` failures in a row mark
 * it down, `rise` passes in a row up again, and each transition is logged.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "modules/upstream/health.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cycle.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/regex.h"
#include "core/times.h"
#include "modules/upstream/upstream.h"
#include "worker/event.h"
#include "worker/http_client.h"

#define STATUS_RANGES 8
#define CHECK_BUF     16384 /* response bytes read: the head and the start of the body */

struct pt_health_conf {
    unsigned tcp : 1;
    unsigned mandatory : 1;
    struct ssl_ctx_st *tls; /* `tls`: checks go over TLS, not verified; NULL: plain */
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
    struct pt_timer timer; /* the next check */
    struct pt_upstream *u;
    struct pt_peer *p;
    const struct pt_health_conf *hc;
    struct pt_http_client http; /* the running check (its own timer is the timeout) */
    char req[512];
    char sni[128];
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

/* `tls`: the checks ask whether a server answers, not who it is, so certificates are not
 * verified (HAProxy's check-ssl with verify none): the shared context that does not. */
static int tls_context(struct pt_conf *cf, struct pt_health_conf *hc)
{
#if PORTIER_WITH_SSL
    hc->tls = pt_tls_client_ctx_noverify();
    if (hc->tls == NULL)
        return pt_conf_error(cf, "cannot create the TLS context of \"health_check\"");
    return PT_OK;
#else
    return pt_conf_error(cf, "invalid health_check option \"tls\": TLS needs the ssl module, which "
                             "this portier was built without (build with -DPORTIER_WITH_SSL=ON)");
#endif
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

static void start(struct check *c)
{
    struct sockaddr_storage ss;
    socklen_t len;

    pt_peer_address(c->p, &ss, &len);
    if (c->hc->port && ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)c->hc->port);
    else if (c->hc->port && ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)c->hc->port);
    pt_http_client_start(&c->http, (struct sockaddr *)&ss, len);
}

static void on_timer(struct pt_timer *t)
{
    start(t->data);
}

/* The head of an HTTP check's response: enough unless the status passes and the body is
 * to be matched. */
static int check_head(void *data, const struct pt_http_response *resp)
{
    struct check *c = data;

    return c->hc->body && pt_health_status_ok(c->hc, resp->status) ? PT_OK : PT_DONE;
}

/* Whether <c>'s body regex matches the body of <r>: the whole body, or its start when it
 * did not fit the buffer (a check looks at the start of a body only). */
static int body_matches(struct check *c, const struct pt_http_client_result *r)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(c->hc->body, NULL);
    int m = md ? pt_regex_exec(c->hc->body, r->body, r->body_len, md) : -1;

    pcre2_match_data_free(md);
    return m >= 0;
}

/* An exchange ended: judges it and schedules the next check. */
static void check_done(void *data, const struct pt_http_client_result *r)
{
    struct check *c = data;
    char text[64];
    int ok = r->end == PT_HC_RESPONSE;

    snprintf(text, sizeof(text), "%s", r->text);
    if (ok && r->resp) {
        ok = pt_health_status_ok(c->hc, r->status);
        if (ok && c->hc->body && !body_matches(c, r)) {
            snprintf(text, sizeof(text), "%d, body does not match", r->status);
            ok = 0;
        }
    }
    record(c, ok, text);
    pt_timer_add(&c->timer, (uint64_t)c->hc->interval);
}

/* --- start-up --- */

/* Sets up <c>'s client for its server: the request (none for a TCP check), the buffer,
 * the timeout and, with `tls`, the server name.  PT_OK or PT_ERROR. */
static int setup_client(struct check *c)
{
    const struct pt_health_conf *hc = c->hc;
    const char *host = hc->host ? hc->host : c->p->host;
    char *colon;
    int n = snprintf(c->req, sizeof(c->req),
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: portier-health-check\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n",
                     hc->method, hc->uri, host);

    if (n < 0 || (size_t)n >= sizeof(c->req))
        return PT_ERROR;
    /* SNI: the host= name, else the server's host without its port. */
    snprintf(c->sni, sizeof(c->sni), "%s", host);
    colon = strrchr(c->sni, ':');
    if (colon && !hc->host)
        *colon = '\0';
    c->http = (struct pt_http_client){
        .request = hc->tcp ? NULL : c->req,
        .request_len = (size_t)n,
        .buf = c->buf,
        .size = sizeof(c->buf),
        .head_max = sizeof(c->buf),
        .timeout_ms = (uint64_t)hc->timeout,
        .tls = hc->tls,
        .sni = c->sni,
        .head = check_head,
        .done = check_done,
        .data = c,
    };
    return PT_OK;
}

static int start_group(struct pt_upstream *u)
{
    const struct pt_health_conf *hc = u->check;

    for (int i = 0; i < u->npeers; i++) {
        struct check *c = calloc(1, sizeof(*c));
        struct pt_peer *p = &u->peers[i];
        if (c == NULL)
            return PT_ERROR;
        if (p->shared == NULL) /* a group of one: its state still lives in the zone */
            return PT_ERROR;
        c->u = u;
        c->p = p;
        c->hc = hc;
        c->timer.handler = on_timer;
        c->timer.data = c;
        if (setup_client(c) != PT_OK)
            return PT_ERROR;
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
