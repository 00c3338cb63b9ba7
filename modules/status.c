/*
 * status.c: the status module.  `status = true` (or "write") in a location makes it
 * answer with the state of every upstream server as JSON: what the workers share in
 * memory, so any worker gives the same answer.  With "write", POSTs change a server's
 * state or weight at run time (HAProxy's runtime API, nginx Plus's api write=on): the
 * change is in shared memory, followed at once by every worker and kept across reloads.
 * Who may read or write is the location's allow/deny.
 *
 * A browser's GET (an Accept naming text/html) gets the live dashboard instead, unless
 * status_dashboard is off: one page compiled in (modules/status_page.html), which polls the
 * same URL for the JSON and, with "write", offers each server's controls as the POSTs below.
 *
 *   GET  /status[?upstream=NAME]
 *   POST /status  upstream=NAME&server=HOST:PORT[&state=up|down|drain|reset][&weight=N]
 *                 (form-encoded body or query string; weight=0 returns to the configured one)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "worker/http.h"
#include "worker/http_phase.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/text.h"
#include "core/times.h"
#include "modules/upstream/upstream.h"
#include "worker/var.h"
#include "modules/status_page.h" /* generated from status_page.html (CMakeLists.txt) */

#define FORM_MAX 4096 /* bytes of a POST body */

enum { STATUS_UNSET = -1, STATUS_OFF, STATUS_READ, STATUS_WRITE };

struct status_conf {
    int mode;
    int dashboard; /* status_dashboard: browsers get the page */
};

/* A growing text, JSON but for the dashboard's page (malloc'd: it is handed to the writer,
 * which copies it). */
/* One POST's parameters. */
struct control {
    struct pt_str upstream, server, state, weight;
};

struct status_ctx {
    char form[FORM_MAX];
    size_t len;
};

static int set_status(struct pt_conf *cf, const struct pt_directive *d, void *conf);

static const struct pt_directive status_directives[] = {
    {"status", PT_CTX_LOC, 0, PT_LOC_CONF, set_status, 0, NULL,
     "true: this location answers with the upstream servers' state as JSON (same in every "
     "worker); \"write\": also takes POSTs upstream=NAME&server=HOST:PORT&state=up|down|drain|"
     "reset&weight=N, kept across reloads; restrict it with allow/deny"},
    {"status_dashboard", PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC, 0, PT_LOC_CONF, pt_conf_set_flag,
     offsetof(struct status_conf, dashboard), NULL,
     "on (default): a GET of a status location whose Accept names text/html (a browser's) "
     "gets the live dashboard, a page that polls the JSON every second and, with \"write\", "
     "has each server's controls; off: JSON to every client"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

extern struct pt_module pt_status_module;

static void *create_loc_conf(struct pt_conf *cf)
{
    struct status_conf *sc = pt_palloc(cf->pool, sizeof(*sc));

    if (sc) {
        sc->mode = STATUS_UNSET;
        sc->dashboard = PT_CONF_UNSET;
    }
    return sc;
}

static int merge_loc_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct status_conf *p = parent, *c = child;

    pt_conf_merge_int(c->dashboard, p->dashboard, 1);
    return PT_OK;
}

static int status_handler(struct pt_request *r);

static int set_status(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct status_conf *sc = conf;
    struct pt_http_loc_conf *lc = cf->conf->loc_conf[pt_http_module.index];

    if (sc->mode != STATUS_UNSET)
        return pt_conf_error(cf, "\"status\" is duplicate");
    if (strcmp(cf->value, "on") == 0)
        sc->mode = STATUS_READ;
    else if (strcmp(cf->value, "write") == 0)
        sc->mode = STATUS_WRITE;
    else if (strcmp(cf->value, "off") == 0)
        sc->mode = STATUS_OFF;
    else
        return pt_conf_error(
            cf, "invalid value \"%s\" for \"status\": use true, false or \"write\"", cf->value);
    if (sc->mode != STATUS_OFF) {
        if (lc->handler)
            return pt_conf_error(cf, "\"status\" and another content handler (proxy_pass, ...) "
                                     "in one location");
        lc->handler = status_handler;
    }
    return PT_OK;
}

/* --- JSON --- */

/* A JSON string. */
static void put_str(struct pt_text *j, const char *s, size_t n)
{
    pt_text_put(j, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        char seq[8];
        size_t k = pt_escape_byte(PT_ESCAPE_JSON, (unsigned char)s[i], seq);
        if (k)
            pt_text_put(j, seq, k);
        else
            pt_text_put(j, s + i, 1);
    }
    pt_text_put(j, "\"", 1);
}

static void put_cstr(struct pt_text *j, const char *s)
{
    put_str(j, s, strlen(s));
}

/* An ISO 8601 UTC time from milliseconds since the epoch, or null. */
static void put_time(struct pt_text *j, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[40];

    if (ms <= 0) {
        pt_text_put(j, "null", 4);
        return;
    }
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    pt_text_printf(j, "\"%s.%03dZ\"", buf, (int)(ms % 1000));
}

static const char *method_name(enum pt_lb_method m)
{
    static const char *const names[] = {"round_robin", "least_conn", "ip_hash", "hash", "random"};

    return names[m];
}

static void put_health(struct pt_text *j, const struct pt_peer_view *v)
{
    if (!v->checked) {
        pt_text_put(j, "null", 4);
        return;
    }
    pt_text_printf(
        j,
        "{\"status\":\"%s\",\"checks\":%llu,\"checks_failed\":%llu,\"passes_in_a_row\":%u,"
        "\"fails_in_a_row\":%u,\"last_result\":",
        v->health, (unsigned long long)v->checks, (unsigned long long)v->checks_failed,
        v->passes_in_a_row, v->fails_in_a_row);
    if (v->last_check_ms)
        put_cstr(j, v->last_check);
    else
        pt_text_put(j, "null", 4);
    pt_text_put(j, ",\"last_time\":", 13);
    put_time(j, v->last_check_ms);
    pt_text_put(j, "}", 1);
}

static void put_any(void *w, const char *s, size_t n)
{
    pt_text_put(w, s, n);
}

static void put_server(struct pt_text *j, const struct pt_peer *p, uint64_t now)
{
    const struct pt_http_hooks *hk = pt_http_hooks_of(pt_cycle);
    struct pt_peer_view v;

    pt_peer_view(p, now, &v);
    pt_text_put(j, "{\"server\":", 10);
    put_cstr(j, v.name);
    pt_text_put(j, ",\"address\":", 11);
    put_cstr(j, v.address);
    pt_text_printf(j, ",\"state\":\"%s\",\"down_reason\":", v.state);
    if (v.down_reason[0])
        put_cstr(j, v.down_reason);
    else
        pt_text_put(j, "null", 4);
    pt_text_printf(
        j,
        ",\"weight\":%d,\"configured_weight\":%d,\"backup\":%s,\"max_conns\":%d,\"active\":%d,"
        "\"requests\":%llu,\"fails\":%llu,\"unavailable_ms\":%llu,\"health_check\":",
        v.weight, v.configured_weight, v.backup ? "true" : "false", v.max_conns, v.active,
        (unsigned long long)v.requests, (unsigned long long)v.fails,
        (unsigned long long)v.unavailable_ms);
    put_health(j, &v);
    /* Other modules' figures of the server (the metrics module's latencies, say). */
    for (int i = 0; i < hk->npeer_reports; i++)
        if (hk->peer_reports[i](p, put_any, j) != PT_OK)
            j->failed = 1;
    pt_text_put(j, "}", 1);
}

static void put_upstream(struct pt_text *j, const struct pt_upstream *u, uint64_t now)
{
    put_cstr(j, u->name);
    pt_text_printf(j, ":{\"method\":\"%s\",\"servers\":[", method_name(u->lb.method));
    for (int i = 0; i < u->npeers; i++) {
        if (i)
            pt_text_put(j, ",", 1);
        put_server(j, &u->peers[i], now);
    }
    pt_text_put(j, "]}", 2);
}

/* The other modules' sections (the caches, say), each under its name. */
static void put_reports(struct pt_text *j)
{
    const struct pt_http_hooks *hk = pt_http_hooks_of(pt_cycle);

    for (int i = 0; i < hk->nreports; i++) {
        pt_text_put(j, ",", 1);
        put_cstr(j, hk->report_names[i]);
        pt_text_put(j, ":", 1);
        if (hk->reports[i](pt_cycle, put_any, j) != PT_OK)
            j->failed = 1;
    }
}

/* The whole document, or one group's when <only> is not empty. */
static void put_document(struct pt_text *j, struct pt_str only)
{
    int n, first = 1;
    struct pt_upstream **ups = pt_upstream_groups(pt_cycle, &n);
    uint64_t now = pt_now_ms();
    pt_text_printf(j, "{\"version\":\"%s\",\"pid\":%d,\"generation\":%u,\"time\":", PORTIER_VERSION,
                   (int)getpid(), pt_cycle->generation);
    put_time(j, pt_time_wall_ms());
    pt_text_put(j, ",\"upstreams\":{", 14);
    for (int i = 0; i < n; i++) {
        /* An implicit group (proxy_pass to an address) has nothing to control. */
        if (ups[i]->implicit || (only.len && !pt_str_eq(only, ups[i]->name)))
            continue;
        if (!first)
            pt_text_put(j, ",", 1);
        first = 0;
        put_upstream(j, ups[i], now);
    }
    pt_text_put(j, "}", 1);
    put_reports(j);
    pt_text_put(j, "}\n", 2);
}

/* --- answers --- */

/* Sends <j> (or, if building it failed, a 500) as <type> with <status> and finishes the
 * request. */
static int respond_as(struct pt_request *r, int status, struct pt_str type, struct pt_text *j)
{
    int rc;

    if (j->failed) {
        pt_text_free(j);
        return 500;
    }
    r->status = status;
    r->out_length = (int64_t)j->len;
    rc = pt_header_add(r, &r->out, PT_STR("Content-Type"), type) == PT_OK &&
                 pt_header_add(r, &r->out, PT_STR("Cache-Control"), PT_STR("no-store")) == PT_OK &&
                 pt_http_send_header(r) == PT_OK && pt_http_send_body(r, j->p, j->len, 1) == PT_OK
             ? PT_OK
             : PT_ERROR;
    pt_text_free(j);
    pt_http_finalize(r, rc);
    return PT_DONE;
}

static int respond(struct pt_request *r, int status, struct pt_text *j)
{
    return respond_as(r, status, PT_STR("application/json"), j);
}

static int respond_error(struct pt_request *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int respond_error(struct pt_request *r, int status, const char *fmt, ...)
{
    struct pt_text j = {0};
    char msg[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pt_text_put(&j, "{\"error\":", 9);
    put_cstr(&j, msg);
    pt_text_put(&j, "}\n", 2);
    return respond(r, status, &j);
}

/* --- the dashboard --- */

/* Whether the parameters <p>..<end> of a media range hold a q of 0, "not acceptable" (RFC
 * 9110 12.4.2: "0", "0.", "0.0" to "0.000"). */
static int q_zero(const char *p, const char *end)
{
    for (; p < end; p++) {
        if ((*p != 'q' && *p != 'Q') || (p[-1] != ';' && p[-1] != ' ' && p[-1] != '\t'))
            continue;
        if (end - p < 3 || p[1] != '=' || p[2] != '0')
            continue;
        for (p += 3; p < end && (*p == '0' || *p == '.'); p++)
            ;
        return p == end || *p == ';' || *p == ' ' || *p == '\t';
    }
    return 0;
}

/* Whether <r>'s Accept names text/html (q above 0), as a browser's navigation does.  A
 * wildcard does not count: scripts (curl, fetch) send one or ask for application/json, and
 * they keep getting the JSON. */
static int wants_html(struct pt_request *r)
{
    const struct pt_http_header *h = pt_http_find_header(r->h.headers, r->h.nheaders, "Accept");
    const char *p, *end, *e, *semi;

    if (h == NULL)
        return 0;
    for (p = h->value.p, end = p + h->value.len; p < end; p = e + 1) {
        struct pt_str range;
        e = memchr(p, ',', (size_t)(end - p));
        if (e == NULL)
            e = end;
        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        semi = memchr(p, ';', (size_t)(e - p));
        range = (struct pt_str){p, (size_t)((semi ? semi : e) - p)};
        while (range.len && (range.p[range.len - 1] == ' ' || range.p[range.len - 1] == '\t'))
            range.len--;
        if (pt_str_ieq(range, "text/html") && !(semi && q_zero(semi, e)))
            return 1;
    }
    return 0;
}

/* Sends the dashboard, its meta portier-status-write filled in: the script offers the
 * controls only where POSTs will be taken. */
static int respond_dashboard(struct pt_request *r, const struct status_conf *sc)
{
    static const char mark[] = "@STATUS_WRITE@";
    const char *at = strstr(status_page, mark);
    const char *write = sc->mode == STATUS_WRITE ? "true" : "false";
    struct pt_text page = {0};

    if (at == NULL) { /* a page edited without its mark: no controls rather than wrong ones */
        pt_text_put(&page, status_page, sizeof(status_page) - 1);
    } else {
        pt_text_put(&page, status_page, (size_t)(at - status_page));
        pt_text_put(&page, write, strlen(write));
        pt_text_put(&page, at + sizeof(mark) - 1, strlen(at + sizeof(mark) - 1));
    }
    /* Nothing from outside: the script and styles are inline and only talk to this URL; no
     * framing, so that no other site can lay its page over the controls. */
    if (pt_header_add(r, &r->out, PT_STR("Content-Security-Policy"),
                      PT_STR("default-src 'none'; script-src 'unsafe-inline'; "
                             "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
                             "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")) !=
            PT_OK ||
        pt_header_add(r, &r->out, PT_STR("X-Content-Type-Options"), PT_STR("nosniff")) != PT_OK ||
        pt_header_add(r, &r->out, PT_STR("Referrer-Policy"), PT_STR("no-referrer")) != PT_OK) {
        free(page.p);
        return PT_ERROR;
    }
    return respond_as(r, 200, PT_STR("text/html; charset=utf-8"), &page);
}

/* --- control --- */

static int hex_value(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decodes %XX and '+' of a form value in place; returns its new length. */
static size_t form_decode(char *s, size_t n)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '+') {
            s[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && (hi = hex_value(s[i + 1])) >= 0 &&
                   (lo = hex_value(s[i + 2])) >= 0) {
            s[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            s[o++] = s[i];
        }
    }
    return o;
}

/* Reads "k=v&k=v" in <s>/<n> (decoded in place) into <c>.  PT_OK, or a message in <err>. */
static int parse_form(char *s, size_t n, struct control *c, const char **err)
{
    while (n) {
        char *amp = memchr(s, '&', n), *eq;
        size_t len = amp ? (size_t)(amp - s) : n;
        struct pt_str *slot = NULL;
        eq = memchr(s, '=', len);
        if (len && eq) {
            struct pt_str k = {s, (size_t)(eq - s)};
            slot = pt_str_eq(k, "upstream") ? &c->upstream
                   : pt_str_eq(k, "server") ? &c->server
                   : pt_str_eq(k, "state")  ? &c->state
                   : pt_str_eq(k, "weight") ? &c->weight
                                            : NULL;
        }
        if (len && slot == NULL) {
            *err = "unknown parameter: use upstream, server, state and weight";
            return PT_ERROR;
        }
        if (slot)
            *slot = (struct pt_str){eq + 1, form_decode(eq + 1, len - (size_t)(eq + 1 - s))};
        s += len + (amp != NULL);
        n -= len + (amp != NULL);
    }
    return PT_OK;
}

static struct pt_peer *find_server(const struct pt_upstream *u, struct pt_str name)
{
    for (int i = 0; i < u->npeers; i++)
        if (pt_str_eq(name, u->peers[i].name) || pt_str_eq(name, u->peers[i].host))
            return &u->peers[i];
    return NULL;
}

static struct pt_upstream *find_upstream(struct pt_str name)
{
    int n;
    struct pt_upstream **ups = pt_upstream_groups(pt_cycle, &n);

    for (int i = 0; i < n; i++)
        if (!ups[i]->implicit && pt_str_eq(name, ups[i]->name))
            return ups[i];
    return NULL;
}

/* Applies a POST's <c> and answers with the server's new state. */
static int apply(struct pt_request *r, struct control *c)
{
    static const struct {
        const char *name;
        int admin;
    } states[] = {{"up", PT_ADMIN_UP},
                  {"down", PT_ADMIN_DOWN},
                  {"drain", PT_ADMIN_DRAIN},
                  {"reset", PT_ADMIN_NONE}};
    struct pt_upstream *u = find_upstream(c->upstream);
    struct pt_peer *p = u ? find_server(u, c->server) : NULL;
    int admin = -1;
    int64_t weight = -1;
    struct pt_text j = {0};

    if (u == NULL)
        return respond_error(r, 404, "no upstream \"%.*s\"", (int)c->upstream.len, c->upstream.p);
    if (p == NULL)
        return respond_error(r, 404, "no server \"%.*s\" in upstream \"%s\"", (int)c->server.len,
                             c->server.p, u->name);
    for (size_t i = 0; i < pt_nelems(states) && c->state.p; i++)
        if (pt_str_eq(c->state, states[i].name))
            admin = states[i].admin;
    if (c->state.p && admin < 0)
        return respond_error(r, 400, "invalid state \"%.*s\": use up, down, drain or reset",
                             (int)c->state.len, c->state.p);
    if (c->weight.p) {
        char buf[16];
        snprintf(buf, sizeof(buf), "%.*s", (int)pt_min(c->weight.len, 15), c->weight.p);
        if (c->weight.len > 15 || pt_parse_int(buf, &weight) != PT_OK || weight > 1000)
            return respond_error(r, 400,
                                 "invalid weight \"%.*s\": use 1 to 1000, or 0 for the "
                                 "configured weight",
                                 (int)c->weight.len, c->weight.p);
    }
    if (admin < 0 && weight < 0)
        return respond_error(r, 400,
                             "nothing to change: give state=up|down|drain|reset or weight=N");
    pt_peer_control(p, admin, (int)weight);
    pt_log(PT_LOG_NOTICE, "status API: upstream %s server %s set%s%.*s%s%.*s by client %s", u->name,
           p->name, c->state.p ? " state " : "", (int)c->state.len, c->state.p ? c->state.p : "",
           c->weight.p ? " weight " : "", (int)c->weight.len, c->weight.p ? c->weight.p : "",
           r->c->peer_text);
    put_server(&j, p, pt_now_ms());
    pt_text_put(&j, "\n", 1);
    return respond(r, 200, &j);
}

/* Collects the POST body; PT_OK when whole, PT_AGAIN, or an HTTP status. */
static int read_form(struct pt_request *r, struct status_ctx *ctx)
{
    struct pt_str d;
    int last = 0, rc;

    while (r->has_body && !last) {
        rc = pt_http_body_peek(r, &d, &last);
        if (rc != PT_OK)
            return rc;
        if (ctx->len + d.len > sizeof(ctx->form))
            return 413;
        memcpy(ctx->form + ctx->len, d.p, d.len);
        ctx->len += d.len;
        pt_http_body_consumed(r, d.len);
        if (d.len == 0 && !last)
            return PT_AGAIN;
    }
    return PT_OK;
}

static int post(struct pt_request *r)
{
    struct status_ctx *ctx = r->ctx[pt_status_module.index];
    struct control c = {.upstream = {NULL, 0}};
    const char *err = NULL;
    char *args;
    int rc = read_form(r, ctx);

    if (rc != PT_OK)
        return rc;
    r->read_handler = NULL;
    args = pt_pstrndup(r->pool, r->args.p ? r->args.p : "", r->args.len);
    if (args == NULL)
        return PT_ERROR;
    if (parse_form(args, r->args.len, &c, &err) != PT_OK ||
        parse_form(ctx->form, ctx->len, &c, &err) != PT_OK)
        return respond_error(r, 400, "%s", err);
    if (c.upstream.p == NULL || c.server.p == NULL)
        return respond_error(r, 400, "give upstream=NAME and server=HOST:PORT");
    return apply(r, &c);
}

/* The body came in: carry on with the POST. */
static void body_readable(struct pt_request *r)
{
    int rc = post(r);

    if (rc != PT_AGAIN && rc != PT_DONE)
        pt_http_finalize(r, rc);
}

/* Whether a browser sent <r> from another site's page: its Sec-Fetch-Site says so, or its
 * Origin names another host than Host.  A plain form POST needs no preflight, so without
 * this a page elsewhere could drain servers through a visitor allowed here. */
static int cross_site(struct pt_request *r)
{
    const struct pt_http_header *site =
        pt_http_find_header(r->h.headers, r->h.nheaders, "Sec-Fetch-Site");
    const struct pt_http_header *origin =
        pt_http_find_header(r->h.headers, r->h.nheaders, "Origin");
    const char *host;

    if (site && !pt_str_ieq(site->value, "same-origin") && !pt_str_ieq(site->value, "none"))
        return 1;
    if (origin == NULL)
        return 0;
    /* "scheme://host[:port]": what follows "://" must be the Host field exactly. */
    for (host = origin->value.p; host + 2 < origin->value.p + origin->value.len; host++)
        if (host[0] == ':' && host[1] == '/' && host[2] == '/')
            break;
    host += 3;
    if (host > origin->value.p + origin->value.len)
        return 1;
    return r->h.host.len != (size_t)(origin->value.p + origin->value.len - host) ||
           strncasecmp(host, r->h.host.p, r->h.host.len) != 0;
}

static int status_handler(struct pt_request *r)
{
    struct status_conf *sc = pt_http_loc_conf(r, pt_status_module);
    struct pt_text j = {0};

    if (r->h.method_id == PT_HTTP_POST) {
        if (sc->mode != STATUS_WRITE)
            return respond_error(r, 403,
                                 "this status location is read-only (status = \"write\" "
                                 "takes changes)");
        if (cross_site(r))
            return respond_error(r, 403, "a change from another site's page is refused");
        r->ctx[pt_status_module.index] = pt_palloc(r->pool, sizeof(struct status_ctx));
        if (r->ctx[pt_status_module.index] == NULL)
            return PT_ERROR;
        r->read_handler = body_readable;
        return post(r);
    }
    if (r->h.method_id != PT_HTTP_GET && r->h.method_id != PT_HTTP_HEAD) {
        if (pt_header_add(r, &r->out, PT_STR("Allow"), PT_STR("GET, HEAD, POST")) != PT_OK)
            return PT_ERROR;
        return respond_error(r, 405, "use GET, or POST to change a server");
    }
    {
        struct control c = {.upstream = {NULL, 0}};
        const char *err = NULL;
        char *args = pt_pstrndup(r->pool, r->args.p ? r->args.p : "", r->args.len);
        if (args == NULL)
            return PT_ERROR;
        if (parse_form(args, r->args.len, &c, &err) != PT_OK)
            return respond_error(r, 400, "%s", err);
        /* The same URL answers the page or the JSON, as the request's Accept asks. */
        if (sc->dashboard && pt_header_add(r, &r->out, PT_STR("Vary"), PT_STR("Accept")) != PT_OK)
            return PT_ERROR;
        if (sc->dashboard && wants_html(r))
            return respond_dashboard(r, sc);
        put_document(&j, c.upstream);
    }
    return respond(r, 200, &j);
}

struct pt_module pt_status_module = {
    .name = "status",
    .directives = status_directives,
    .create_loc_conf = create_loc_conf,
    .merge_loc_conf = merge_loc_conf,
};
