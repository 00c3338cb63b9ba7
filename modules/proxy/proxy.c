/*
 * proxy.c: the proxy module: `proxy_pass` and friends.  The request sent upstream is
 * re-framed by portier (never the client's framing as received), bodies stream both ways
 * through bounded buffers with backpressure, a stale pooled connection is retried once,
 * and an Upgrade becomes a tunnel only after the upstream answers 101.
 *
 * A try that fails before anything of the response reached the client passes the request
 * to the next server not yet tried, as nginx's proxy_next_upstream says (kinds of failure,
 * tries, timeout; POST, PATCH and LOCK not once bytes went up unless non_idempotent).  The
 * body streams rather than being buffered first, so the bytes that went up are kept, up to
 * PROXY_REPLAY_MAX, to be sent again; a larger body rules out another try once it started.
 *
 * With proxy_pass https:// the connection is TLS (proxy_ssl.c): the handshake follows the
 * connect, within proxy_connect_timeout, and its failure is a failure of the server like a
 * refused connect.
 */
#include "modules/proxy/proxy.h"

static int set_proxy_header(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_hide_header(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_next_upstream(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_http_version(struct pt_conf *cf, const struct pt_directive *d, void *conf);

/* proxy_next_upstream's words and the PROXY_FT_* bit each stands for. */
static const struct next_word {
    const char *name;
    unsigned ft;
} next_words[] = {
    {"error", PROXY_FT_ERROR},
    {"timeout", PROXY_FT_TIMEOUT},
    {"invalid_header", PROXY_FT_INVALID_HEADER},
    {"http_500", PROXY_FT_HTTP_500},
    {"http_502", PROXY_FT_HTTP_502},
    {"http_503", PROXY_FT_HTTP_503},
    {"http_504", PROXY_FT_HTTP_504},
    {"http_403", PROXY_FT_HTTP_403},
    {"http_404", PROXY_FT_HTTP_404},
    {"http_429", PROXY_FT_HTTP_429},
    {"non_idempotent", PROXY_FT_NON_IDEMPOTENT},
    {"off", PROXY_FT_OFF},
    {NULL, 0},
};

static const int64_t tries_bounds[2] = {0, 1000};
#if PORTIER_WITH_SSL
static const int64_t depth_bounds[2] = {0, 100}; /* proxy_ssl_verify_depth */
#endif
/* A response head must fit one buffer: at least 1 KiB, at most 1 MiB. */
static const int64_t buffer_size_bounds[2] = {1024, 1024 * 1024};

#define PLC(f) offsetof(struct proxy_loc_conf, f)
#define HSL    (PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC)

static const struct pt_directive proxy_directives[] = {
    {"proxy_pass", PT_CTX_LOC, 0, PT_LOC_CONF, pt_proxy_set_pass, 0, NULL,
     "\"http://UPSTREAM[/URI]\" or \"http://HOST:PORT[/URI]\" (https:// for TLS, port 443 by "
     "default): the URI part replaces the location prefix.  With variables "
     "(\"http://$pool$request_uri\") the URL is made per request: its host names an upstream "
     "group, else must be an IP address (IPv4 or [IPv6], port 80 or 443 by default); a DNS name "
     "that is neither gets 502, names not being resolved at run time (nginx would need "
     "resolver: define an upstream block of that name); a URI part, when there is one, is sent "
     "as it is instead of the request's URI"},
    {"proxy_redirect", HSL, PT_DIR_MULTI, PT_LOC_CONF, pt_proxy_set_redirect, 0, NULL,
     "\"default\", \"off\" or \"REDIRECT REPLACEMENT\" (a list for several, tried in order, "
     "the first match wins): rewrites the upstream's Location and Refresh (after url=) fields.  "
     "REDIRECT is a prefix of the value (case-sensitive, variables allowed) that REPLACEMENT "
     "replaces, or a regex (~, or ~* in any case) whose match replaces the whole value, "
     "REPLACEMENT naming its captures ($1..$9, named ones); REPLACEMENT may hold variables, and "
     "a Location rewritten to a relative \"/...\" gets this server's scheme, host and port as "
     "portier's own redirects (absolute_redirect).  default, in a location with proxy_pass: "
     "proxy_pass's URL becomes the location's prefix (without a URI part, the URL and \"/\" "
     "becomes \"/\"); refused with variables in proxy_pass, which get no default.  A level with "
     "proxy_redirect does not inherit its parent's (default \"default\")"},
    {"proxy_cookie_domain", HSL, PT_DIR_MULTI, PT_LOC_CONF, pt_proxy_set_cookie_domain, 0, NULL,
     "\"off\" or \"DOMAIN REPLACEMENT\" (a list for several, the first match wins): a domain= "
     "attribute of the upstream's Set-Cookie fields equal to DOMAIN (in any case, a leading '.' "
     "ignored) becomes REPLACEMENT (variables allowed); \"~REGEX\" matches in any case and "
     "REPLACEMENT may use its captures.  A rewritten field has its attributes joined by \"; \" "
     "as nginx writes them.  A level with it does not inherit its parent's (default off)"},
    {"proxy_cookie_path", HSL, PT_DIR_MULTI, PT_LOC_CONF, pt_proxy_set_cookie_path, 0, NULL,
     "\"off\" or \"PATH REPLACEMENT\" (a list for several, the first match wins): a path= "
     "attribute of the upstream's Set-Cookie fields starting with PATH has that prefix replaced "
     "by REPLACEMENT (variables allowed); with ~ (case-sensitive) or ~* PATH is a regex, "
     "REPLACEMENT may use its captures and replaces the whole path.  A level with it does not "
     "inherit its parent's (default off)"},
    {"proxy_connect_timeout", HSL, 0, PT_LOC_CONF, pt_conf_set_msec, PLC(connect_timeout), NULL,
     "time to establish an upstream connection (default 60s)"},
    {"proxy_read_timeout", HSL, 0, PT_LOC_CONF, pt_conf_set_msec, PLC(read_timeout), NULL,
     "time between two reads from the upstream, counted only while portier waits for it (a "
     "client slow to read stops it, and send_timeout runs instead); 504 before the response "
     "starts (default 60s)"},
    {"proxy_send_timeout", HSL, 0, PT_LOC_CONF, pt_conf_set_msec, PLC(send_timeout), NULL,
     "time between two writes to the upstream while it does not take the request (the "
     "client's client_body_timeout stops meanwhile); 504 (default 60s)"},
    {"proxy_set_header", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_proxy_header, 0, NULL,
     "\"NAME VALUE\" sent upstream (VALUE may hold variables and be quoted; empty or \"\" removes "
     "the header); one naming Host, Connection, Upgrade or an X-Forwarded-* field replaces the "
     "value portier sends by default, each on its own; a level with proxy_set_header does not "
     "inherit its parent's"},
    {"proxy_http_version", HSL, 0, PT_LOC_CONF, set_http_version, PLC(http_version), NULL,
     "\"1.1\" or \"1.0\" upstream; 1.0 sends Connection: close, keeps no connection, passes no "
     "upgrade, and answers 411 to a chunked request body (default 1.1; nginx's is 1.0)"},
    {"proxy_intercept_errors", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, PLC(intercept_errors), NULL,
     "an upstream answer of status 300 or more that error_page lists is replaced by "
     "error_page's, as portier's own errors are (default off)"},
    {"proxy_buffering", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, PLC(buffering), NULL,
     "off: every piece of the response leaves as soon as it arrives, compressed ones flushed "
     "at once; the upstream's X-Accel-Buffering: yes|no decides per response (default on)"},
    {"proxy_buffer_size", HSL, 0, PT_LOC_CONF, pt_conf_set_size, PLC(buffer_size),
     buffer_size_bounds,
     "the largest response head taken from the upstream; a larger one is a 502 logged as "
     "\"upstream sent too big header\" (default 16k; nginx's is 4k or 8k)"},
    {"proxy_hide_header", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_hide_header, 0, NULL,
     "response header NAME not passed to the client"},
    {"proxy_next_upstream", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_next_upstream, PLC(next_upstream),
     next_words,
     "failures passed to the next server: error timeout invalid_header http_500 http_502 "
     "http_503 http_504 http_403 http_404 http_429 non_idempotent, or off (default \"error "
     "timeout\")"},
    {"proxy_next_upstream_tries", HSL, 0, PT_LOC_CONF, pt_conf_set_num, PLC(next_upstream_tries),
     tries_bounds, "tries of one request in all, the first included; 0: no limit (default 0)"},
    {"proxy_next_upstream_timeout", HSL, 0, PT_LOC_CONF, pt_conf_set_msec,
     PLC(next_upstream_timeout), NULL,
     "no new try once this long has passed since the first began; 0: no limit (default 0)"},
#if PORTIER_WITH_SSL /* as nginx without its ssl module: no proxy_ssl_* at all */
    {"proxy_ssl_server_name", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, PLC(ssl_conf.server_name),
     NULL, "send proxy_ssl_name as SNI to an https upstream (not for an IP address) (default off)"},
    {"proxy_ssl_name", HSL, 0, PT_LOC_CONF, pt_conf_set_str, PLC(ssl_conf.name), NULL,
     "the name sent as SNI and checked by proxy_ssl_verify, a plain string (default: the host "
     "of proxy_pass)"},
    {"proxy_ssl_verify", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, PLC(ssl_conf.verify), NULL,
     "check the upstream's certificate chain against proxy_ssl_trusted_certificate and its "
     "name against proxy_ssl_name; a failure is a 502 (default off)"},
    {"proxy_ssl_verify_depth", HSL, 0, PT_LOC_CONF, pt_conf_set_num, PLC(ssl_conf.verify_depth),
     depth_bounds, "how many CA certificates may stand above the upstream's (default 1)"},
    {"proxy_ssl_trusted_certificate", HSL, 0, PT_LOC_CONF, pt_conf_set_str,
     PLC(ssl_conf.trusted_certificate), NULL,
     "PEM file of the CAs trusted for upstream certificates (needed by proxy_ssl_verify)"},
    {"proxy_ssl_certificate", HSL, 0, PT_LOC_CONF, pt_conf_set_str, PLC(ssl_conf.certificate), NULL,
     "PEM client certificate (and chain) presented to an https upstream"},
    {"proxy_ssl_certificate_key", HSL, 0, PT_LOC_CONF, pt_conf_set_str,
     PLC(ssl_conf.certificate_key), NULL,
     "PEM key of proxy_ssl_certificate, read by the master at start (may be readable by root "
     "only)"},
    {"proxy_ssl_protocols", HSL, 0, PT_LOC_CONF, pt_proxy_ssl_set_protocols,
     PLC(ssl_conf.protocols), NULL,
     "TLS versions offered upstream: TLSv1 TLSv1.1 TLSv1.2 TLSv1.3 (default \"TLSv1.2 TLSv1.3\")"},
    {"proxy_ssl_ciphers", HSL, 0, PT_LOC_CONF, pt_proxy_ssl_set_ciphers, PLC(ssl_conf.ciphers),
     NULL, "OpenSSL cipher list for TLSv1.2 and below upstream (default \"DEFAULT\")"},
    {"proxy_ssl_session_reuse", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, PLC(ssl_conf.session_reuse),
     NULL,
     "resume the last TLS session with the same upstream server on a new connection "
     "(default on)"},
#endif
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static void *create_loc_conf(struct pt_conf *cf)
{
    struct proxy_loc_conf *plc = pt_palloc(cf->pool, sizeof(*plc));

    if (plc == NULL)
        return NULL;
    plc->connect_timeout = PT_CONF_UNSET;
    plc->read_timeout = PT_CONF_UNSET;
    plc->send_timeout = PT_CONF_UNSET;
    plc->nset = PT_CONF_UNSET;
    plc->nhide = PT_CONF_UNSET;
    plc->http_version = PT_CONF_UNSET;
    plc->buffering = PT_CONF_UNSET;
    plc->intercept_errors = PT_CONF_UNSET;
    plc->buffer_size = PT_CONF_UNSET;
    plc->next_upstream = PT_CONF_UNSET;
    plc->next_upstream_tries = PT_CONF_UNSET;
    plc->next_upstream_timeout = PT_CONF_UNSET;
    pt_proxy_ssl_init_conf(&plc->ssl_conf);
    pt_proxy_init_rewrites(plc);
    return plc;
}

static int merge_loc_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct proxy_loc_conf *p = parent, *c = child;

    /* An if block's level takes its location's proxy_pass unless it has its own, as nginx's
     * (a location's parent, the server level, never has one). */
    if (c->pass == NULL) {
        c->pass = p->pass;
        c->pass_setting = p->pass_setting;
    }
    pt_conf_merge_int(c->connect_timeout, p->connect_timeout, 60000);
    pt_conf_merge_int(c->read_timeout, p->read_timeout, 60000);
    pt_conf_merge_int(c->send_timeout, p->send_timeout, 60000);
    pt_conf_merge_list(c->set, c->nset, p->set, p->nset);
    c->own_set = 0;
    for (int i = 0; i < c->nset; i++)
        c->own_set |= pt_proxy_own_field(c->set[i].name);
    pt_conf_merge_int(c->http_version, p->http_version, 11);
    pt_conf_merge_int(c->buffering, p->buffering, 1);
    pt_conf_merge_int(c->intercept_errors, p->intercept_errors, 0);
    pt_conf_merge_int(c->buffer_size, p->buffer_size, PT_BUF_SIZE);
    pt_conf_merge_list(c->hide, c->nhide, p->hide, p->nhide);
    pt_conf_merge_int(c->next_upstream, p->next_upstream, (int)(PROXY_FT_ERROR | PROXY_FT_TIMEOUT));
    pt_conf_merge_int(c->next_upstream_tries, p->next_upstream_tries, 0);
    pt_conf_merge_int(c->next_upstream_timeout, p->next_upstream_timeout, 0);
    pt_proxy_ssl_merge_conf(&p->ssl_conf, &c->ssl_conf);
    return pt_proxy_merge_rewrites(cf, p, c);
}

static int set_proxy_header(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct proxy_loc_conf *plc = conf;
    int n = plc->nset == PT_CONF_UNSET ? 0 : plc->nset;
    struct proxy_header *a = pt_palloc(cf->pool, (size_t)(n + 1) * sizeof(*a));
    char *value;

    if (a == NULL)
        return pt_conf_error(cf, "out of memory");
    /* Quotes come off as in nginx: Connection "upgrade" sends upgrade. */
    if (pt_http_header_directive(cf, cf->value, &a[n].name, &value, NULL) != PT_OK)
        return pt_conf_error(
            cf,
            "invalid \"proxy_set_header\" \"%s\": use \"NAME VALUE\" (\"NAME \\\"\\\"\" "
            "removes the header)",
            cf->value);
    if (n)
        memcpy(a, plc->set, (size_t)n * sizeof(*a));
    a[n].value = pt_template_compile(cf, value, PT_ESCAPE_NONE);
    if (a[n].value == NULL)
        return PT_ERROR;
    plc->set = a;
    plc->nset = n + 1;
    return PT_OK;
}

static int set_http_version(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct proxy_loc_conf *plc = conf;

    if (plc->http_version != PT_CONF_UNSET)
        return pt_conf_error(cf, "\"%s\" is duplicate", d->name);
    /* libconfig reads a bare 1.0 as the number 1. */
    if (strcmp(cf->value, "1.1") == 0)
        plc->http_version = 11;
    else if (strcmp(cf->value, "1.0") == 0 || strcmp(cf->value, "1") == 0)
        plc->http_version = 10;
    else
        return pt_conf_error(cf, "invalid value \"%s\" for \"%s\": use \"1.0\" or \"1.1\"",
                             cf->value, d->name);
    return PT_OK;
}

static int set_hide_header(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct proxy_loc_conf *plc = conf;

    pt_unused(d);
    return pt_conf_list_add(cf, &plc->hide, &plc->nhide, pt_pstrdup(cf->pool, cf->value));
}

/* One value of proxy_next_upstream: a string of words (or one element of a list of them),
 * each adding its bit.  "off" stands alone. */
static int set_next_upstream(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct proxy_loc_conf *plc = conf;
    const struct next_word *table = d->post;
    char *words[16];
    int n = pt_conf_split(cf, cf->value, words, (int)pt_nelems(words));

    if (n <= 0)
        return pt_conf_error(cf, "invalid value \"%s\" in \"%s\"", cf->value, d->name);
    if (plc->next_upstream == PT_CONF_UNSET)
        plc->next_upstream = 0;
    for (int i = 0; i < n; i++) {
        const struct next_word *w = table;
        while (w->name && strcmp(w->name, words[i]) != 0)
            w++;
        if (w->name == NULL)
            return pt_conf_error(cf, "invalid value \"%s\" in \"%s\"", words[i], d->name);
        plc->next_upstream |= (int)w->ft;
    }
    if ((plc->next_upstream & PROXY_FT_OFF) && plc->next_upstream != PROXY_FT_OFF)
        return pt_conf_error(cf, "\"off\" cannot be combined with other values in \"%s\"", d->name);
    return PT_OK;
}

static int proxy_handler(struct pt_request *r);

/* Binds each proxy_pass to its upstream now that every upstream block has been read
 * (proxy_target.c), and gives its location the proxy's handler. */
static int bind_location(struct pt_conf *cf, void **loc_conf)
{
    struct proxy_loc_conf *plc = loc_conf[pt_proxy_module.index];
    struct pt_http_loc_conf *lc = loc_conf[pt_http_module.index];

    if (plc->pass == NULL)
        return PT_OK;
    cf->setting = plc->pass_setting;
    if (pt_proxy_bind_target(cf, plc) != PT_OK)
        return PT_ERROR;
    lc->handler = proxy_handler;
    return PT_OK;
}

/* The $proxy_* variables exist before any directive is read, so that proxy_set_header and
 * log formats can name them. */
static void *create_main_conf(struct pt_conf *cf)
{
    if (pt_proxy_vars_register() != PT_OK)
        return NULL;
    return pt_palloc(cf->pool, sizeof(struct proxy_main_conf));
}

static int postconfig(struct pt_conf *cf);

struct pt_module pt_proxy_module = {
    .name = "proxy",
    .directives = proxy_directives,
    .create_main_conf = create_main_conf,
    .create_loc_conf = create_loc_conf,
    .merge_loc_conf = merge_loc_conf,
    .postconfig = postconfig,
};

static int postconfig(struct pt_conf *cf)
{
    return pt_http_foreach_loc(cf, bind_location);
}

/* --- the exchange --- */

static void upstream_event(struct pt_upstream_conn *uc, unsigned events);
static void upstream_timeout(struct pt_timer *t);
static void client_readable(struct pt_request *r);
static void client_drained(struct pt_request *r);

static const char *const err_text[] = {
    [ERR_CONNECT] = "connect() failed",
    [ERR_CONNECT_TIMEOUT] = "connect timed out",
    [ERR_HANDSHAKE] = "SSL handshake failed",
    [ERR_HANDSHAKE_TIMEOUT] = "upstream timed out while SSL handshaking",
    [ERR_WRITE] = "send failed",
    [ERR_SEND_TIMEOUT] = "sending request to upstream", /* see failure_text */
    [ERR_READ] = "upstream closed or reset the connection",
    [ERR_READ_TIMEOUT] = "reading response header from upstream",
    [ERR_INVALID] = "upstream sent an invalid response",
    [ERR_TOO_BIG] = "upstream sent too big header while reading response header from upstream",
};

/* The proxy_next_upstream kind of each failure. */
static const unsigned err_ft[] = {
    [ERR_CONNECT] = PROXY_FT_ERROR,
    [ERR_CONNECT_TIMEOUT] = PROXY_FT_TIMEOUT,
    [ERR_HANDSHAKE] = PROXY_FT_ERROR,
    [ERR_HANDSHAKE_TIMEOUT] = PROXY_FT_TIMEOUT,
    [ERR_WRITE] = PROXY_FT_ERROR,
    [ERR_SEND_TIMEOUT] = PROXY_FT_TIMEOUT,
    [ERR_READ] = PROXY_FT_ERROR,
    [ERR_READ_TIMEOUT] = PROXY_FT_TIMEOUT,
    [ERR_INVALID] = PROXY_FT_INVALID_HEADER,
    [ERR_TOO_BIG] = PROXY_FT_INVALID_HEADER,
};

/* What a failure is to the metrics. */
static const int err_failure[] = {
    [ERR_CONNECT] = PT_UPSTREAM_FAIL_CONNECT,
    [ERR_CONNECT_TIMEOUT] = PT_UPSTREAM_FAIL_TIMEOUT,
    [ERR_HANDSHAKE] = PT_UPSTREAM_FAIL_CONNECT,
    [ERR_HANDSHAKE_TIMEOUT] = PT_UPSTREAM_FAIL_TIMEOUT,
    [ERR_WRITE] = PT_UPSTREAM_FAIL_ERROR,
    [ERR_SEND_TIMEOUT] = PT_UPSTREAM_FAIL_TIMEOUT,
    [ERR_READ] = PT_UPSTREAM_FAIL_ERROR,
    [ERR_READ_TIMEOUT] = PT_UPSTREAM_FAIL_TIMEOUT,
    [ERR_INVALID] = PT_UPSTREAM_FAIL_INVALID_HEADER,
    [ERR_TOO_BIG] = PT_UPSTREAM_FAIL_INVALID_HEADER,
};

/* The statuses that count as a failure of the server when they are listed (as in nginx,
 * 403 and 404 only send the request on). */
#define FT_STATUS_COUNTED                                                            \
    (PROXY_FT_HTTP_500 | PROXY_FT_HTTP_502 | PROXY_FT_HTTP_503 | PROXY_FT_HTTP_504 | \
     PROXY_FT_HTTP_429)

static unsigned status_ft(int status)
{
    switch (status) {
    case 500: return PROXY_FT_HTTP_500;
    case 502: return PROXY_FT_HTTP_502;
    case 503: return PROXY_FT_HTTP_503;
    case 504: return PROXY_FT_HTTP_504;
    case 403: return PROXY_FT_HTTP_403;
    case 404: return PROXY_FT_HTTP_404;
    case 429: return PROXY_FT_HTTP_429;
    default: return 0;
    }
}

/* The methods nginx does not pass to another server once the request went up: POST, PATCH
 * and LOCK (RFC 9110 9.2.2 leaves the others idempotent or safe). */
static int non_idempotent(const struct pt_request *r)
{
    return r->h.method_id == PT_HTTP_POST || r->h.method_id == PT_HTTP_PATCH ||
           (r->h.method_id == PT_HTTP_OTHER && pt_str_eq(r->h.method, "LOCK"));
}

ssize_t pt_proxy_recv(struct proxy_ctx *ctx, char *buf, size_t len)
{
    struct pt_upstream_conn *uc = ctx->uc;
    ssize_t n = uc->s.t->recv(&uc->s, buf, len);

    if (n > 0)
        ctx->received += (uint64_t)n;
    if (n == PT_ERROR)
        pt_proxy_ssl_log_failure(uc, "SSL_read");
    return n;
}

ssize_t pt_proxy_send(struct proxy_ctx *ctx, const char *buf, size_t len)
{
    ssize_t n = pt_stream_send(&ctx->uc->s, buf, len);

    if (n > 0)
        ctx->sent += (uint64_t)n;
    if (n == PT_ERROR)
        pt_proxy_ssl_log_failure(ctx->uc, "SSL_write");
    return n;
}

void pt_proxy_release(struct proxy_ctx *ctx, int keep)
{
    if (ctx->uc == NULL)
        return;
    /* TLS may hold bytes past the response that the socket no longer shows. */
    if (keep && ctx->uc->s.tls && !pt_proxy_ssl_clean(ctx->uc))
        keep = 0;
    pt_timer_del(&ctx->uc->s.timer);
    pt_upstream_release(ctx->uc, keep);
    ctx->uc = NULL;
}

void pt_proxy_cleanup(struct pt_request *r)
{
    struct proxy_ctx *ctx = r->ctx[pt_proxy_module.index];

    pt_proxy_release(ctx, 0);
    pt_buf_put(ctx->in);
    pt_buf_put(ctx->out);
    ctx->in = ctx->out = NULL;
    free(ctx->replay);
    ctx->replay = NULL;
    ctx->replay_len = ctx->replay_cap = 0;
}

void pt_proxy_note_upstream(struct proxy_ctx *ctx, int status)
{
    struct pt_upstream_log *up = &ctx->r->up;
    struct pt_upstream_try *t;

    if (ctx->peer == NULL)
        return;
    if (status)
        ctx->status = status;
    if (ctx->log_index >= up->cap) {
        int cap = up->cap ? 2 * up->cap : 2;
        struct pt_upstream_try *a = pt_palloc(ctx->r->pool, (size_t)cap * sizeof(*a));
        if (a == NULL)
            return;
        if (up->n)
            memcpy(a, up->tries, (size_t)up->n * sizeof(*a));
        up->tries = a;
        up->cap = cap;
    }
    t = &up->tries[ctx->log_index];
    *t = (struct pt_upstream_try){
        ctx->peer->name, ctx->status,    (int64_t)(pt_now_ms() - ctx->try_start_ms),
        ctx->connect_ms, ctx->header_ms, ctx->sent,
        ctx->received};
    up->n = ctx->log_index + 1;
}

/* One error line per failed try: what went wrong, with which server, for which request. */
static void log_failure(struct proxy_ctx *ctx, const char *what)
{
    struct pt_request *r = ctx->r;
    const char *group = ctx->t->upstream->name, *peer = ctx->peer->name;
    char why[512];

    if (ctx->err_no)
        snprintf(why, sizeof(why), "connect() to %s failed: %s (upstream \"%s\")", peer,
                 strerror(ctx->err_no), group);
    else if (ctx->tls_error) /* nginx's words, which operators grep for */
        snprintf(why, sizeof(why), "%s while SSL handshaking to upstream %s (upstream \"%s\")",
                 ctx->tls_error, peer, group);
    else
        snprintf(why, sizeof(why), "%s: upstream %s (\"%s\")", what, peer, group);
    pt_log(PT_LOG_ERR, "%s, client %s, request \"%.*s %.*s\"", why, r->c->peer_text,
           (int)r->h.method.len, r->h.method.p, (int)r->h.target.len, r->h.target.p);
}

/* Whether the body may have to go up again (to the same server after a stale pooled
 * connection, or to another one), so that a replay copy of it is worth keeping.  A started
 * non-idempotent body never goes again unless non_idempotent is listed. */
static int replay_useful(const struct proxy_ctx *ctx)
{
    const struct proxy_loc_conf *plc = ctx->plc;
    const struct pt_upstream *u = ctx->t->upstream;
    int kinds = plc->next_upstream & ~(int)(PROXY_FT_NON_IDEMPOTENT | PROXY_FT_OFF);
    int next = kinds && plc->next_upstream_tries != 1 && u->npeers > 1;

    if (non_idempotent(ctx->r) && !(plc->next_upstream & PROXY_FT_NON_IDEMPOTENT))
        return 0;
    return next || u->keepalive > 0;
}

/* The server for another try after the current one failed with <ft> (a PROXY_FT_* bit), or
 * NULL when proxy_next_upstream, its limits, the method or a body that cannot be sent again
 * rule it out, or when no server is left. */
static struct pt_peer *next_peer(struct proxy_ctx *ctx, unsigned ft)
{
    struct proxy_loc_conf *plc = ctx->plc;
    struct pt_request *r = ctx->r;

    if (!(plc->next_upstream & (int)ft))
        return NULL;
    if (ctx->tries >= ctx->t->upstream->npeers ||
        (plc->next_upstream_tries && ctx->tries >= plc->next_upstream_tries))
        return NULL;
    if (plc->next_upstream_timeout &&
        pt_now_ms() - ctx->start_ms >= (uint64_t)plc->next_upstream_timeout)
        return NULL;
    if (ctx->sent_any && non_idempotent(r) && !(plc->next_upstream & PROXY_FT_NON_IDEMPOTENT))
        return NULL;
    if (ctx->body_started && !ctx->replay_ok) {
        if (ctx->replay_lost)
            pt_log(PT_LOG_INFO,
                   "request \"%.*s %.*s\" not passed to the next upstream server: its body "
                   "had started going up and is larger than the %d KiB kept to resend it",
                   (int)r->h.method.len, r->h.method.p, (int)r->h.target.len, r->h.target.p,
                   PROXY_REPLAY_MAX / 1024);
        return NULL;
    }
    return pt_upstream_choose(ctx->t->upstream, r, ctx->tried);
}

/* A pooled connection the peer had closed before any byte of the response: the request goes
 * once more to the same server on a fresh connection, which is neither a try nor a failure
 * (nor possible when the body started going up and cannot be sent again). */
static int stale(const struct proxy_ctx *ctx, enum proxy_err err)
{
    if (ctx->uc == NULL || !ctx->uc->reused || ctx->got_bytes || ctx->stale_retried ||
        ctx->r->header_sent || (err != ERR_WRITE && err != ERR_READ))
        return 0;
    return !ctx->body_started || ctx->replay_ok;
}

/* Ends the current try's connection and what was buffered for it. */
static void end_try(struct proxy_ctx *ctx)
{
    pt_proxy_release(ctx, 0);
    pt_buf_put(ctx->in);
    ctx->in = NULL;
    if (ctx->out)
        ctx->out->pos = ctx->out->last = ctx->out->start;
}

/* Clears what one try learnt, so that the next one starts over: head and body go again from
 * their start, and the response is a new one. */
static void reset_try(struct proxy_ctx *ctx)
{
    ctx->head_copied = 0;
    ctx->replay_pos = 0;
    ctx->status = 0;
    ctx->err_no = 0;
    ctx->tls_error = NULL;
    ctx->body_sent = ctx->sent_any = ctx->req_sent = ctx->got_bytes = 0;
    ctx->resp_head = ctx->resp_until_close = ctx->resp_chunked = ctx->resp_done = 0;
    ctx->resp_left = 0;
    ctx->connect_noted = 0;
    pt_proxy_resp_clear(ctx);
    memset(&ctx->chunk, 0, sizeof(ctx->chunk));
}

/* Starts a try of the request on <peer>: a new one, or when <again> the same server again on
 * a fresh connection.  Connects and sends what it can; a failure goes on through
 * pt_proxy_failed(), which may end the request. */
static void start_try(struct proxy_ctx *ctx, struct pt_peer *peer, int again)
{
    struct proxy_loc_conf *plc = ctx->plc;
    struct pt_upstream *u = ctx->t->upstream;
    struct pt_upstream_conn *uc;
    int ready;

    if (!again) {
        ctx->tried |= 1ull << ((peer - u->peers) % 64);
        ctx->tries++;
        ctx->stale_retried = 0;
        ctx->try_start_ms = pt_now_ms();
        ctx->sent = ctx->received = 0;
        pt_upstream_note(peer, PT_UPSTREAM_TRY, ctx->tries > 1, 0);
    }
    /* A stale pooled connection's retry measures from the try's start, as its time does. */
    ctx->connect_ms = ctx->header_ms = -1;
    ctx->peer = peer;
    reset_try(ctx);
    /* The TLS configuration keys the pool: a pooled connection is one made for it. */
    uc = pt_upstream_connect(u, peer, again, ctx->t->ssl, ctx, upstream_event);
    if (uc == NULL && (errno == EMFILE || errno == ENFILE || errno == ENOMEM)) {
        /* Out of worker_connections or descriptors: the worker's shortage, not a failure
         * of the server, so no other server is tried and passive health is not told (as
         * nginx, which answers 500). */
        pt_log(PT_LOG_ERR, "cannot connect to upstream %s for client %s: %m", peer->name,
               ctx->r->c->peer_text);
        pt_proxy_note_upstream(ctx, 0);
        pt_http_finalize(ctx->r, 500);
        return;
    }
    if (uc == NULL) {
        ctx->err_no = errno ? errno : EIO;
        pt_proxy_failed(ctx, ERR_CONNECT);
        return;
    }
    ctx->uc = uc;
    uc->s.timer.handler = upstream_timeout;
    uc->s.timer.data = ctx;
    if (ctx->t->ssl && uc->s.tls == NULL && pt_proxy_ssl_attach(ctx) != PT_OK) {
        pt_proxy_failed(ctx, ERR_HANDSHAKE);
        return;
    }
    ready = uc->s.connected && (uc->s.tls == NULL || uc->s.handshaken);
    pt_timer_add(&uc->s.timer, (uint64_t)(ready ? plc->send_timeout : plc->connect_timeout));
    if (uc->s.connected)
        upstream_event(uc, 0); /* no edge may come for a socket already usable */
}

/* The failed try's entries join the log lists, and <peer> gets the next try. */
static void go_next(struct proxy_ctx *ctx, struct pt_peer *peer)
{
    ctx->log_index = ctx->r->up.n;
    start_try(ctx, peer, 0);
}

/* What failure <err> of <ctx> is called in the error log: a send or read timeout in
 * nginx's words, which operators grep for ("upstream timed out (110: Connection timed
 * out) while sending request to upstream"), saying what portier was waiting for. */
static const char *failure_text(const struct proxy_ctx *ctx, enum proxy_err err, char *buf,
                                size_t size)
{
    if (err != ERR_SEND_TIMEOUT && err != ERR_READ_TIMEOUT)
        return err_text[err];
    snprintf(buf, size, "upstream timed out (%d: %s) while %s", ETIMEDOUT, strerror(ETIMEDOUT),
             err == ERR_READ_TIMEOUT && ctx->resp_head ? "reading upstream" : err_text[err]);
    return buf;
}

void pt_proxy_tap_answer(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    int rc;

    r->cleanup = NULL;
    pt_proxy_cleanup(r);
    r->read_handler = NULL;
    r->write_handler = NULL;
    rc = r->tap->answer(r);
    if (rc != PT_AGAIN)
        pt_http_finalize(r, rc);
}

/* Every try failed, the last with <err>: a tap (a cache with a stale entry) may answer
 * instead.  Returns 1 when it did (the request is finalized, or will be by the tap). */
static int tap_failed(struct proxy_ctx *ctx, enum proxy_err err)
{
    struct pt_request *r = ctx->r;
    const struct pt_upstream_tap *tap = r->tap;
    unsigned kind = err_ft[err] == PROXY_FT_TIMEOUT          ? PT_UPSTREAM_TIMEOUT
                    : err_ft[err] == PROXY_FT_INVALID_HEADER ? PT_UPSTREAM_INVALID_HEADER
                                                             : PT_UPSTREAM_ERROR;

    if (tap == NULL || tap->failed == NULL || tap->failed(r, kind) != PT_DONE)
        return 0;
    pt_proxy_tap_answer(ctx);
    return 1;
}

void pt_proxy_failed(struct proxy_ctx *ctx, enum proxy_err err)
{
    struct pt_request *r = ctx->r;
    int status = err_ft[err] == PROXY_FT_TIMEOUT ? 504 : 502;
    struct pt_peer *next;
    char what[128];

    if (stale(ctx, err)) {
        end_try(ctx);
        ctx->stale_retried = 1;
        pt_log(PT_LOG_INFO, "upstream %s closed a kept-alive connection; retrying on a new one",
               ctx->peer->name);
        start_try(ctx, ctx->peer, 1);
        return;
    }
    log_failure(ctx, failure_text(ctx, err, what, sizeof(what)));
    end_try(ctx);
    if (r->header_sent) {
        pt_proxy_note_upstream(ctx, 0);
        pt_http_abort(r);
        return;
    }
    /* error, timeout and invalid_header are failures of the server whatever is listed. */
    pt_peer_failed(ctx->t->upstream, ctx->peer);
    pt_upstream_note(ctx->peer, PT_UPSTREAM_FAILED, err_failure[err],
                     pt_now_ms() - ctx->try_start_ms);
    pt_proxy_note_upstream(ctx, status);
    next = next_peer(ctx, err_ft[err]);
    if (next == NULL) {
        if (!tap_failed(ctx, err))
            pt_http_finalize(r, status);
        return;
    }
    go_next(ctx, next);
}

int pt_proxy_retry_status(struct proxy_ctx *ctx)
{
    int status = ctx->resp.status;
    unsigned ft = status_ft(status);
    struct pt_peer *next = next_peer(ctx, ft);
    char what[32];

    if (next == NULL)
        return PT_DECLINED; /* the last answer goes to the client as it is */
    snprintf(what, sizeof(what), "upstream answered %d", status);
    log_failure(ctx, what);
    end_try(ctx);
    if (ft & FT_STATUS_COUNTED)
        pt_peer_failed(ctx->t->upstream, ctx->peer);
    pt_proxy_note_upstream(ctx, status);
    go_next(ctx, next);
    return PT_DONE;
}

static void upstream_timeout(struct pt_timer *t)
{
    struct proxy_ctx *ctx = t->data;

    if (!ctx->uc->s.connected)
        pt_proxy_failed(ctx, ERR_CONNECT_TIMEOUT);
    else if (ctx->uc->s.tls && !ctx->uc->s.handshaken)
        pt_proxy_failed(ctx, ERR_HANDSHAKE_TIMEOUT);
    else if (ctx->r->tunnel && ctx->resp_head) {
        ctx->r->response_done = 1; /* an idle tunnel ends cleanly */
        pt_http_finalize(ctx->r, PT_OK);
    } else
        pt_proxy_failed(ctx, ctx->req_sent ? ERR_READ_TIMEOUT : ERR_SEND_TIMEOUT);
}

/* A body too large for the replay copy can still go to another server as long as none of
 * it went up; only its start rules that out (see next_peer). */
static void init_replay(struct proxy_ctx *ctx)
{
    if (!ctx->r->has_body || !replay_useful(ctx))
        return;
    if (ctx->r->h.content_length > PROXY_REPLAY_MAX)
        ctx->replay_lost = 1;
    else
        ctx->replay_ok = 1;
}

static int proxy_handler(struct pt_request *r)
{
    struct proxy_loc_conf *plc = pt_http_loc_conf(r, pt_proxy_module);
    struct proxy_ctx *ctx = pt_proxy_ctx(r);
    const struct proxy_target *t;
    struct pt_peer *peer;

    if (ctx == NULL)
        return PT_ERROR;
    if (r->has_body && pt_http_body_check_buffered(r) != PT_OK)
        return 400;
    if (r->h.chunked && plc->http_version == 10) {
        /* HTTP/1.0 has no chunked framing and the body streams: its length is unknown. */
        pt_log(PT_LOG_INFO,
               "client %s sent a chunked body to a proxy_http_version 1.0 location: 411",
               r->c->peer_text);
        return 411;
    }
    ctx->plc = plc;
    t = pt_proxy_target(ctx);
    if (t == NULL)
        return ctx->target_status;
    ctx->start_ms = pt_now_ms();
    if (pt_proxy_build_head(ctx) != PT_OK)
        return PT_ERROR;
    init_replay(ctx);
    r->cleanup = pt_proxy_cleanup;
    r->read_handler = client_readable;
    r->write_handler = client_drained;
    peer = pt_upstream_choose(t->upstream, r, 0);
    if (peer == NULL) {
        pt_log(PT_LOG_ERR, "no live upstreams in \"%s\", client %s", t->upstream->name,
               r->c->peer_text);
        return 502;
    }
    /* Failures from here on end the request themselves (or pass it on). */
    start_try(ctx, peer, 0);
    return PT_AGAIN;
}

/* Brings the connection of <ctx> up on <events>: the connect's outcome, then the TLS
 * handshake of an https upstream.  PT_OK once it can carry the request; PT_AGAIN while it
 * waits; PT_DONE after a failure, which went on through pt_proxy_failed(). */
static int establish(struct proxy_ctx *ctx, unsigned events)
{
    struct pt_upstream_conn *uc = ctx->uc;
    int rc;

    if (!uc->s.connected) {
        rc = pt_stream_connect_done(&uc->s, events);
        if (rc == PT_AGAIN)
            return PT_AGAIN;
        if (rc == PT_ERROR) {
            ctx->err_no = errno;
            pt_proxy_failed(ctx, ERR_CONNECT);
            return PT_DONE;
        }
        /* As in nginx, the TLS handshake gets a proxy_connect_timeout of its own. */
        if (uc->s.tls)
            pt_timer_add(&uc->s.timer, (uint64_t)ctx->plc->connect_timeout);
    }
    if (uc->s.tls && !uc->s.handshaken) {
        rc = pt_proxy_ssl_handshake(ctx);
        if (rc == PT_ERROR) {
            pt_proxy_failed(ctx, ERR_HANDSHAKE);
            return PT_DONE;
        }
        if (rc != PT_OK)
            return rc;
    }
    /* nginx's $upstream_connect_time: until the connection (TLS handshake included) is
     * ready for the request. */
    if (ctx->connect_ms < 0)
        ctx->connect_ms = (int64_t)(pt_now_ms() - ctx->try_start_ms);
    return PT_OK;
}

static void upstream_event(struct pt_upstream_conn *uc, unsigned events)
{
    struct proxy_ctx *ctx = uc->owner;

    if (establish(ctx, events) != PT_OK)
        return;
    if (!ctx->connect_noted) {
        ctx->connect_noted = 1;
        pt_upstream_note(ctx->peer, PT_UPSTREAM_CONNECTED, 0, pt_now_ms() - ctx->try_start_ms);
    }
    if (ctx->r->tunnel && ctx->resp_head) {
        if (uc->s.writable && pt_proxy_tunnel_client(ctx) == PT_DONE)
            return;
        if (ctx->uc == uc && (uc->s.readable || (events & PT_EV_ERROR)))
            pt_proxy_read_response(ctx);
        return;
    }
    if (uc->s.writable && !ctx->req_sent && pt_proxy_send_request(ctx) != PT_OK)
        return;
    if (ctx->uc == uc && (uc->s.readable || (events & PT_EV_ERROR)))
        pt_proxy_read_response(ctx);
}

/* While the upstream thinks, a client that closed its connection is not waited for (as
 * nginx does without proxy_ignore_client_abort): the request ends as 499 and the upstream
 * connection, whose answer nobody will read, is closed.  Bytes the client pipelined
 * behind its request are not an end. */
static void check_client_gone(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    char byte;

    if (recv(r->c->s.ev.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) != 0)
        return;
    pt_log(PT_LOG_INFO, "client %s closed the connection while upstream %s was answering",
           r->c->peer_text, ctx->peer->name);
    pt_proxy_release(ctx, 0);
    r->status = 499;
    pt_http_abort(r);
}

static void client_readable(struct pt_request *r)
{
    struct proxy_ctx *ctx = r->ctx[pt_proxy_module.index];

    if (ctx->uc == NULL)
        return;
    if (r->tunnel && ctx->resp_head) {
        pt_proxy_tunnel_client(ctx);
        return;
    }
    if (!ctx->req_sent && ctx->uc->s.connected && ctx->uc->s.writable) {
        pt_proxy_send_request(ctx);
        return;
    }
    if (ctx->req_sent && !r->header_sent)
        check_client_gone(ctx);
}

static void client_drained(struct pt_request *r)
{
    struct proxy_ctx *ctx = r->ctx[pt_proxy_module.index];

    if (ctx->uc)
        pt_proxy_read_response(ctx);
}
