/*
 * proxy.c: the proxy module: `proxy_pass` and friends.  The request sent upstream is
 * re-framed by portier (never the client's framing as received), bodies stream both ways
 * through bounded buffers with backpressure, a stale pooled connection is retried once,
 * and an Upgrade becomes a tunnel only after the upstream answers 101.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "pool.h"
#include "upstream.h"
#include "var.h"

struct proxy_header {
    struct pt_str name;
    struct pt_template *value;
};

struct proxy_loc_conf {
    struct pt_upstream *upstream;
    char *pass; /* "http://app/v1/" as written */
    const config_setting_t *pass_setting;
    char *host;        /* the part after http:// and before the URI */
    struct pt_str uri; /* URI part of proxy_pass */
    unsigned has_uri : 1;
    struct pt_str prefix; /* the location prefix the URI part replaces */
    int64_t connect_timeout, read_timeout, send_timeout;
    struct proxy_header *set;
    int nset;
    char **hide;
    int nhide;
};

enum { ERR_CONNECT, ERR_CONNECT_TIMEOUT, ERR_WRITE, ERR_READ, ERR_READ_TIMEOUT, ERR_INVALID };

struct proxy_ctx {
    struct pt_request *r;
    struct proxy_loc_conf *plc;
    struct pt_upstream_conn *uc;
    struct pt_peer *peer;
    struct pt_str head; /* the request head sent upstream (kept for a retry) */
    size_t head_copied;
    struct pt_buf *out; /* bytes on their way upstream */
    struct pt_buf *in;  /* bytes from upstream */
    struct pt_http_response resp;
    uint64_t tried;
    int tries;
    int64_t resp_left;
    struct pt_chunked chunk;
    uint64_t start_ms;
    unsigned req_chunked : 1;  /* the body goes upstream chunked */
    unsigned body_started : 1; /* client body bytes were consumed: no retry */
    unsigned body_sent : 1;
    unsigned req_sent : 1;
    unsigned got_bytes : 1; /* the upstream sent something on this connection */
    unsigned resp_head : 1;
    unsigned resp_until_close : 1;
    unsigned resp_chunked : 1;
    unsigned resp_done : 1;
    unsigned stale_retried : 1;
};

extern struct pt_module pt_proxy_module;

static int set_proxy_pass(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_proxy_header(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_hide_header(struct pt_conf *cf, const struct pt_directive *d, void *conf);

#define PLC(f) offsetof(struct proxy_loc_conf, f)
#define HSL    (PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC)

static const struct pt_directive proxy_directives[] = {
    {"proxy_pass", PT_CTX_LOC, 0, PT_LOC_CONF, set_proxy_pass, 0, NULL,
     "\"http://UPSTREAM[/URI]\" or \"http://HOST:PORT[/URI]\": the URI part replaces the location "
     "prefix"},
    {"proxy_connect_timeout", HSL, 0, PT_LOC_CONF, pt_conf_set_msec, PLC(connect_timeout), NULL,
     "time to establish an upstream connection (default 60s)"},
    {"proxy_read_timeout", HSL, 0, PT_LOC_CONF, pt_conf_set_msec, PLC(read_timeout), NULL,
     "time between two reads from the upstream; 504 before the response starts (default 60s)"},
    {"proxy_send_timeout", HSL, 0, PT_LOC_CONF, pt_conf_set_msec, PLC(send_timeout), NULL,
     "time between two writes to the upstream (default 60s)"},
    {"proxy_set_header", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_proxy_header, 0, NULL,
     "\"NAME VALUE\" sent upstream (VALUE may hold variables; empty removes the header)"},
    {"proxy_hide_header", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_hide_header, 0, NULL,
     "response header NAME not passed to the client"},
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
    return plc;
}

static int merge_loc_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct proxy_loc_conf *p = parent, *c = child;

    pt_conf_merge_int(c->connect_timeout, p->connect_timeout, 60000);
    pt_conf_merge_int(c->read_timeout, p->read_timeout, 60000);
    pt_conf_merge_int(c->send_timeout, p->send_timeout, 60000);
    /* nginx's rule: a level with any proxy_set_header does not inherit the parent's. */
    if (c->nset == PT_CONF_UNSET) {
        c->set = p->set;
        c->nset = p->nset == PT_CONF_UNSET ? 0 : p->nset;
    }
    if (c->nhide == PT_CONF_UNSET) {
        c->hide = p->hide;
        c->nhide = p->nhide == PT_CONF_UNSET ? 0 : p->nhide;
    }
    return PT_OK;
}

static int set_proxy_pass(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct proxy_loc_conf *plc = conf;
    struct pt_http_loc_conf *lc = cf->conf->loc_conf[pt_http_module.index];
    const char *v = cf->value, *host, *slash;

    if (plc->pass)
        return pt_conf_error(cf, "\"proxy_pass\" is duplicate");
    if (strncmp(v, "http://", 7) != 0)
        return pt_conf_error(cf,
                             "invalid proxy_pass \"%s\": only http:// is supported here "
                             "(https upstreams come with the ssl module)",
                             v);
    host = v + 7;
    slash = strchr(host, '/');
    plc->pass = pt_pstrdup(cf->pool, v);
    plc->pass_setting = cf->setting;
    plc->host = pt_pstrndup(cf->pool, host, slash ? (size_t)(slash - host) : strlen(host));
    if (plc->host[0] == '\0')
        return pt_conf_error(cf, "invalid proxy_pass \"%s\": no host", v);
    if (slash) {
        plc->has_uri = 1;
        plc->uri = pt_str_c(pt_pstrdup(cf->pool, slash));
    }
    /* The prefix a URI part replaces: the location's pattern without its modifier. */
    {
        const char *name = lc->name;
        if (name[0] == '~' && plc->has_uri)
            return pt_conf_error(cf, "\"proxy_pass\" cannot have a URI part in a regex location");
        if (strncmp(name, "= ", 2) == 0)
            name += 2;
        else if (strncmp(name, "^~ ", 3) == 0)
            name += 3;
        while (*name == ' ')
            name++;
        plc->prefix = pt_str_c(name);
    }
    lc->handler = NULL; /* set in postconfig once the upstream is known */
    return PT_OK;
}

static int set_proxy_header(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct proxy_loc_conf *plc = conf;
    const char *v = cf->value, *sp = strchr(v, ' ');
    int n = plc->nset == PT_CONF_UNSET ? 0 : plc->nset;
    struct proxy_header *a;

    if (sp == NULL || sp == v)
        return pt_conf_error(
            cf, "\"proxy_set_header\" takes \"NAME VALUE\" (use \"NAME \" with an empty "
                "value to remove a header)");
    a = pt_palloc(cf->pool, (size_t)(n + 1) * sizeof(*a));
    if (a == NULL)
        return pt_conf_error(cf, "out of memory");
    if (n)
        memcpy(a, plc->set, (size_t)n * sizeof(*a));
    a[n].name = (struct pt_str){pt_pstrndup(cf->pool, v, (size_t)(sp - v)), (size_t)(sp - v)};
    while (*sp == ' ')
        sp++;
    a[n].value = pt_template_compile(cf, sp, PT_ESCAPE_NONE);
    if (a[n].value == NULL)
        return PT_ERROR;
    plc->set = a;
    plc->nset = n + 1;
    return PT_OK;
}

static int set_hide_header(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct proxy_loc_conf *plc = conf;
    int n = plc->nhide == PT_CONF_UNSET ? 0 : plc->nhide;
    char **a = pt_palloc(cf->pool, (size_t)(n + 1) * sizeof(*a));

    if (a == NULL)
        return pt_conf_error(cf, "out of memory");
    if (n)
        memcpy(a, plc->hide, (size_t)n * sizeof(*a));
    a[n] = pt_pstrdup(cf->pool, cf->value);
    plc->hide = a;
    plc->nhide = n + 1;
    return PT_OK;
}

static int proxy_handler(struct pt_request *r);

/* Binds each proxy_pass to its upstream now that every upstream block has been read. */
static int bind_location(struct pt_conf *cf, void **loc_conf)
{
    struct proxy_loc_conf *plc = loc_conf[pt_proxy_module.index];
    struct pt_http_loc_conf *lc = loc_conf[pt_http_module.index];

    if (plc->pass == NULL)
        return PT_OK;
    cf->setting = plc->pass_setting;
    plc->upstream = strchr(plc->host, ':') ? NULL : pt_upstream_find(cf, plc->host);
    if (plc->upstream == NULL && (plc->upstream = pt_upstream_implicit(cf, plc->host)) == NULL)
        return PT_ERROR;
    lc->handler = proxy_handler;
    return PT_OK;
}

static int postconfig(struct pt_conf *cf);

struct pt_module pt_proxy_module = {
    .name = "proxy",
    .directives = proxy_directives,
    .create_loc_conf = create_loc_conf,
    .merge_loc_conf = merge_loc_conf,
    .postconfig = postconfig,
};

static int postconfig(struct pt_conf *cf)
{
    return pt_http_foreach_loc(cf, bind_location);
}

/* --- building the upstream request --- */

struct builder {
    struct pt_pool *pool;
    char *p;
    size_t len, cap;
    int failed;
};

static void put(struct builder *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = (b->cap + n) * 2;
        char *p = pt_palloc(b->pool, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        if (b->len)
            memcpy(p, b->p, b->len);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void put_str(struct builder *b, struct pt_str s)
{
    put(b, s.p, s.len);
}

/* True when the field name <name> is a token of the Connection value <conn>. */
static int named_in(struct pt_str conn, struct pt_str name)
{
    char lower[64];

    if (name.len >= sizeof(lower))
        return 0;
    for (size_t i = 0; i < name.len; i++)
        lower[i] = pt_lower(name.p[i]);
    lower[name.len] = '\0';
    return pt_http_has_token(conn, lower);
}

static void put_header(struct builder *b, struct pt_str name, struct pt_str value)
{
    put_str(b, name);
    put(b, ": ", 2);
    put_str(b, value);
    put(b, "\r\n", 2);
}

/* Hop-by-hop fields (RFC 9110 7.6.1), those named in the client's Connection field
 * <conn> (may be NULL), and the fields portier sets itself. */
static int skip_request_header(struct pt_str name, const struct pt_http_header *conn, int trusted)
{
    static const char *const hop[] = {
        "connection", "keep-alive", "proxy-connection", "te",     "trailer", "transfer-encoding",
        "upgrade",    "host",       "content-length",   "expect", NULL};

    for (int i = 0; hop[i]; i++)
        if (pt_str_ieq(name, hop[i]))
            return 1;
    if (pt_str_ieq(name, "x-forwarded-for"))
        return 1; /* re-sent below, with the client's kept only from a trusted peer */
    if (!trusted && (pt_str_ieq(name, "x-forwarded-proto") || pt_str_ieq(name, "x-forwarded-host")))
        return 1;
    return conn && named_in(conn->value, name);
}

static int overridden(struct proxy_loc_conf *plc, struct pt_str name)
{
    for (int i = 0; i < plc->nset; i++)
        if (plc->set[i].name.len == name.len &&
            strncasecmp(plc->set[i].name.p, name.p, name.len) == 0)
            return 1;
    return 0;
}

static void put_target(struct builder *b, struct pt_request *r, struct proxy_loc_conf *plc)
{
    struct pt_str rest;

    if (!plc->has_uri) {
        /* Without a URI part the request URI goes up unchanged (for an absolute-form
         * target, its path and query). */
        put_str(b, r->h.path.len ? r->h.path : PT_STR("/"));
        if (r->h.has_query) {
            put(b, "?", 1);
            put_str(b, r->h.query);
        }
        return;
    }
    rest = r->uri;
    if (rest.len >= plc->prefix.len && memcmp(rest.p, plc->prefix.p, plc->prefix.len) == 0) {
        rest.p += plc->prefix.len;
        rest.len -= plc->prefix.len;
    }
    put_str(b, plc->uri);
    put_str(b, rest);
    if (r->h.has_query) {
        put(b, "?", 1);
        put_str(b, r->args);
    }
}

static void put_forwarded(struct builder *b, struct pt_request *r, int trusted)
{
    const struct pt_http_header *xff =
        pt_http_find_header(r->h.headers, r->h.nheaders, "x-forwarded-for");
    struct pt_str peer = pt_str_c(r->c->peer_text);

    put(b, "X-Forwarded-For: ", 17);
    if (trusted && xff && xff->value.len) {
        put_str(b, xff->value);
        put(b, ", ", 2);
    }
    put_str(b, peer);
    put(b, "\r\n", 2);
    if (!trusted || !pt_http_find_header(r->h.headers, r->h.nheaders, "x-forwarded-proto"))
        put(b, "X-Forwarded-Proto: http\r\n", 25);
    if ((!trusted || !pt_http_find_header(r->h.headers, r->h.nheaders, "x-forwarded-host")) &&
        r->h.host.len)
        put_header(b, PT_STR("X-Forwarded-Host"), r->h.host);
}

static int build_head(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    struct proxy_loc_conf *plc = ctx->plc;
    struct pt_http_loc_conf *lc = r->loc_conf[pt_http_module.index];
    /* Sized for the client's head plus what portier adds: one allocation in most cases. */
    struct builder b = {r->pool, pt_palloc(r->pool, r->h.head_len + 512), 0, r->h.head_len + 512,
                        0};
    int trusted = lc->nreal_ip_from > 0 && pt_cidr_match(lc->real_ip_from, lc->nreal_ip_from,
                                                         (struct sockaddr *)&r->c->peer);
    const struct pt_http_header *conn;

    put_str(&b, r->h.method);
    put(&b, " ", 1);
    put_target(&b, r, plc);
    put(&b, " HTTP/1.1\r\n", 11);
    if (!overridden(plc, PT_STR("Host")))
        put_header(&b, PT_STR("Host"), r->h.host.len ? r->h.host : pt_str_c(plc->host));
    conn = pt_http_find_header(r->h.headers, r->h.nheaders, "connection");
    for (size_t i = 0; i < r->h.nheaders; i++) {
        struct pt_str name = r->h.headers[i].name;
        if (skip_request_header(name, conn, trusted) || overridden(plc, name))
            continue;
        put_header(&b, name, r->h.headers[i].value);
    }
    for (int i = 0; i < plc->nset; i++) {
        struct pt_str v;
        if (pt_template_eval(r, plc->set[i].value, &v) != PT_OK)
            return PT_ERROR;
        if (v.len)
            put_header(&b, plc->set[i].name, v);
    }
    if (!overridden(plc, PT_STR("X-Forwarded-For")))
        put_forwarded(&b, r, trusted);
    if (r->h.upgrade) {
        const struct pt_http_header *up =
            pt_http_find_header(r->h.headers, r->h.nheaders, "upgrade");
        put_header(&b, PT_STR("Upgrade"), up->value);
        put(&b, "Connection: upgrade\r\n", 21);
    } else if (ctx->plc->upstream->keepalive == 0) {
        put(&b, "Connection: close\r\n", 19);
    }
    if (r->h.chunked) {
        /* Only the chunked layer is portier's to decode and redo: codings applied before
         * it (gzip, chunked) travel on untouched. */
        char te[PT_HTTP_TE_CODINGS_BUFSZ];
        size_t n = pt_http_te_codings_format(&r->h, te, sizeof(te));
        ctx->req_chunked = 1;
        put(&b, "Transfer-Encoding: ", 19);
        put(&b, te, n);
        put(&b, "chunked\r\n", 9);
    } else if (r->has_body) {
        char cl[40];
        int n =
            snprintf(cl, sizeof(cl), "Content-Length: %lld\r\n", (long long)r->h.content_length);
        put(&b, cl, (size_t)n);
    } else if (r->h.method_id == PT_HTTP_POST || r->h.method_id == PT_HTTP_PUT) {
        put(&b, "Content-Length: 0\r\n", 19);
    }
    put(&b, "\r\n", 2);
    if (b.failed)
        return PT_ERROR;
    ctx->head = (struct pt_str){b.p, b.len};
    return PT_OK;
}

/* --- the exchange --- */

static void upstream_event(struct pt_upstream_conn *uc, unsigned events);
static void upstream_timeout(struct pt_timer *t);
static int send_request(struct proxy_ctx *ctx);
static int read_response(struct proxy_ctx *ctx);
static void client_readable(struct pt_request *r);
static int tunnel_client_to_upstream(struct proxy_ctx *ctx);
static void client_drained(struct pt_request *r);

static const char *const err_text[] = {
    [ERR_CONNECT] = "connect() failed",
    [ERR_CONNECT_TIMEOUT] = "connect timed out",
    [ERR_WRITE] = "send failed",
    [ERR_READ] = "upstream closed or reset the connection",
    [ERR_READ_TIMEOUT] = "upstream timed out",
    [ERR_INVALID] = "upstream sent an invalid response",
};

static void release_upstream(struct proxy_ctx *ctx, int keep)
{
    if (ctx->uc == NULL)
        return;
    pt_timer_del(&ctx->uc->timer);
    pt_upstream_release(ctx->uc, keep);
    ctx->uc = NULL;
}

static void cleanup(struct pt_request *r)
{
    struct proxy_ctx *ctx = r->ctx[pt_proxy_module.index];

    release_upstream(ctx, 0);
    pt_buf_put(ctx->in);
    pt_buf_put(ctx->out);
    ctx->in = ctx->out = NULL;
}

static void note_upstream(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    char t[32];
    uint64_t ms = pt_now_ms() - ctx->start_ms;
    int n = snprintf(t, sizeof(t), "%llu.%03llu", (unsigned long long)(ms / 1000),
                     (unsigned long long)(ms % 1000));

    r->upstream_time = (struct pt_str){pt_pstrndup(r->pool, t, (size_t)n), (size_t)n};
    if (ctx->peer)
        r->upstream_addr = pt_str_c(ctx->peer->name);
}

static int connect_peer(struct proxy_ctx *ctx, int count_try)
{
    struct pt_upstream *u = ctx->plc->upstream;

    for (;;) {
        struct pt_peer *peer = ctx->peer;
        if (count_try) {
            peer = pt_upstream_choose(u, ctx->tried);
            if (peer == NULL) {
                pt_log(PT_LOG_ERR, "no live upstreams in \"%s\", client %s", u->name,
                       ctx->r->c->peer_text);
                return 502;
            }
            ctx->tried |= 1ull << ((peer - u->peers) % 64);
            ctx->tries++;
        }
        ctx->peer = peer;
        ctx->uc = pt_upstream_connect(u, peer, ctx, upstream_event);
        if (ctx->uc)
            break;
        pt_log(PT_LOG_ERR, "connect() to %s failed: %m (upstream \"%s\")", peer->name, u->name);
        pt_peer_failed(u, peer);
        if (ctx->tries >= u->npeers)
            return 502;
        count_try = 1;
    }
    ctx->uc->timer.handler = upstream_timeout;
    ctx->uc->timer.data = ctx;
    ctx->head_copied = 0;
    ctx->got_bytes = 0;
    ctx->req_sent = 0;
    pt_timer_add(&ctx->uc->timer, (uint64_t)(ctx->uc->connected ? ctx->plc->send_timeout
                                                                : ctx->plc->connect_timeout));
    return PT_OK;
}

/* Ends the request after the exchange failed with <err>: retries when nothing was lost,
 * else answers 502/504 (or cuts the client off if its response had started). */
static void upstream_failed(struct proxy_ctx *ctx, int err)
{
    struct pt_request *r = ctx->r;
    struct pt_upstream *u = ctx->plc->upstream;
    int stale =
        ctx->uc && ctx->uc->reused && !ctx->got_bytes && (err == ERR_WRITE || err == ERR_READ);
    int rc;

    if (!stale)
        pt_log(PT_LOG_ERR, "%s: upstream %s (\"%s\"), client %s, request \"%.*s %.*s\"",
               err_text[err], ctx->peer ? ctx->peer->name : "-", u->name, r->c->peer_text,
               (int)r->h.method.len, r->h.method.p, (int)r->h.target.len, r->h.target.p);
    release_upstream(ctx, 0);
    pt_buf_put(ctx->in);
    ctx->in = NULL;
    if (ctx->out)
        ctx->out->pos = ctx->out->last = ctx->out->start;
    note_upstream(ctx);
    if (r->header_sent) {
        pt_http_abort(r);
        return;
    }
    /* A pooled connection the peer had closed: once more on a fresh one, not a failure. */
    if (stale && !ctx->body_started && !ctx->stale_retried) {
        ctx->stale_retried = 1;
        rc = connect_peer(ctx, 0);
    } else {
        if (err != ERR_INVALID)
            pt_peer_failed(u, ctx->peer);
        if ((err != ERR_CONNECT && err != ERR_CONNECT_TIMEOUT) || ctx->body_started ||
            ctx->tries >= u->npeers) {
            pt_http_finalize(r, err == ERR_READ_TIMEOUT || err == ERR_CONNECT_TIMEOUT ? 504 : 502);
            return;
        }
        rc = connect_peer(ctx, 1);
    }
    if (rc != PT_OK) {
        pt_http_finalize(r, rc);
        return;
    }
    if (ctx->uc->writable)
        send_request(ctx);
}

static void upstream_timeout(struct pt_timer *t)
{
    struct proxy_ctx *ctx = t->data;

    if (!ctx->uc->connected)
        upstream_failed(ctx, ERR_CONNECT_TIMEOUT);
    else if (ctx->r->tunnel && ctx->resp_head) {
        ctx->r->response_done = 1; /* an idle tunnel ends cleanly */
        pt_http_finalize(ctx->r, PT_OK);
    } else
        upstream_failed(ctx, ctx->req_sent ? ERR_READ_TIMEOUT : ERR_WRITE);
}

static int proxy_handler(struct pt_request *r)
{
    struct proxy_loc_conf *plc = pt_http_loc_conf(r, pt_proxy_module);
    struct proxy_ctx *ctx = pt_palloc(r->pool, sizeof(*ctx));
    int rc;

    if (ctx == NULL)
        return PT_ERROR;
    if (r->has_body && pt_http_body_check_buffered(r) != PT_OK)
        return 400;
    r->ctx[pt_proxy_module.index] = ctx;
    ctx->r = r;
    ctx->plc = plc;
    ctx->start_ms = pt_now_ms();
    if (build_head(ctx) != PT_OK)
        return PT_ERROR;
    r->cleanup = cleanup;
    r->read_handler = client_readable;
    r->write_handler = client_drained;
    rc = connect_peer(ctx, 1);
    if (rc != PT_OK)
        return rc;
    if (ctx->uc->writable)
        send_request(ctx);
    return PT_AGAIN;
}

static int connected(struct proxy_ctx *ctx)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(ctx->uc->ev.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
        errno = err;
        pt_log(PT_LOG_ERR, "connect() to %s failed: %m", ctx->peer->name);
        upstream_failed(ctx, ERR_CONNECT);
        return PT_DONE;
    }
    ctx->uc->connected = 1;
    return PT_OK;
}

static void upstream_event(struct pt_upstream_conn *uc, unsigned events)
{
    struct proxy_ctx *ctx = uc->owner;

    if (!uc->connected) {
        if (!(events & (PT_EV_WRITE | PT_EV_ERROR)) || connected(ctx) != PT_OK)
            return;
    }
    if (ctx->r->tunnel && ctx->resp_head) {
        if (uc->writable && tunnel_client_to_upstream(ctx) == PT_DONE)
            return;
        if (ctx->uc == uc && (uc->readable || (events & PT_EV_ERROR)))
            read_response(ctx);
        return;
    }
    if (uc->writable && !ctx->req_sent && send_request(ctx) != PT_OK)
        return;
    if (ctx->uc == uc && (uc->readable || (events & PT_EV_ERROR)))
        read_response(ctx);
}

/* --- request to upstream --- */

/* Moves request bytes into ctx->out: the head first, then the body with its new framing. */
static int fill_out(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    struct pt_buf *out = ctx->out;
    struct pt_str data;
    int last = 0, rc;

    if (ctx->head_copied < ctx->head.len) {
        size_t n = pt_min(pt_buf_room(out), ctx->head.len - ctx->head_copied);
        pt_buf_append(out, ctx->head.p + ctx->head_copied, n);
        ctx->head_copied += n;
        return PT_OK;
    }
    if (ctx->body_sent || !r->has_body) {
        ctx->body_sent = 1;
        return PT_DONE;
    }
    rc = pt_http_body_peek(r, &data, &last);
    if (rc != PT_OK)
        return rc;
    if (ctx->req_chunked) {
        char head[24];
        size_t room = pt_buf_room(out), n;
        if (room < 32)
            return PT_OK;
        n = pt_min(data.len, room - 32);
        if (n) {
            int h = sprintf(head, "%zx\r\n", n);
            pt_buf_append(out, head, (size_t)h);
            pt_buf_append(out, data.p, n);
            pt_buf_append(out, "\r\n", 2);
        }
        pt_http_body_consumed(r, n);
        if (last && n == data.len) {
            pt_buf_append(out, "0\r\n\r\n", 5);
            ctx->body_sent = 1;
        }
    } else {
        size_t n = pt_min(data.len, pt_buf_room(out));
        pt_buf_append(out, data.p, n);
        pt_http_body_consumed(r, n);
        if (last && n == data.len)
            ctx->body_sent = 1;
    }
    ctx->body_started = 1;
    return PT_OK;
}

static int send_request(struct proxy_ctx *ctx)
{
    struct pt_upstream_conn *uc = ctx->uc;

    if (ctx->out == NULL && (ctx->out = pt_buf_get(PT_BUF_SIZE)) == NULL) {
        pt_http_finalize(ctx->r, PT_ERROR);
        return PT_DONE;
    }
    for (;;) {
        struct pt_buf *out = ctx->out;
        if (pt_buf_len(out)) {
            ssize_t n = write(uc->ev.fd, out->pos, pt_buf_len(out));
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                uc->writable = 0;
                pt_timer_add(&uc->timer, (uint64_t)ctx->plc->send_timeout);
                return PT_OK;
            }
            if (n < 0) {
                upstream_failed(ctx, ERR_WRITE);
                return PT_DONE;
            }
            out->pos += n;
            if (pt_buf_len(out)) {
                uc->writable = 0;
                pt_timer_add(&uc->timer, (uint64_t)ctx->plc->send_timeout);
                return PT_OK;
            }
        }
        out->pos = out->last = out->start;
        if (ctx->body_sent && ctx->head_copied == ctx->head.len) {
            ctx->req_sent = 1;
            pt_timer_add(&uc->timer, (uint64_t)ctx->plc->read_timeout);
            return PT_OK;
        }
        {
            int rc = fill_out(ctx);
            if (rc == PT_AGAIN && pt_buf_len(out) == 0)
                return PT_OK; /* waiting for the client's body: client_readable resumes */
            if (rc > 0) {
                /* A bad body (400) or one over client_max_body_size (413). */
                release_upstream(ctx, 0);
                pt_http_finalize(ctx->r, rc);
                return PT_DONE;
            }
        }
    }
}

static void client_readable(struct pt_request *r)
{
    struct proxy_ctx *ctx = r->ctx[pt_proxy_module.index];

    if (ctx->uc == NULL)
        return;
    if (r->tunnel && ctx->resp_head) {
        tunnel_client_to_upstream(ctx);
        return;
    }
    if (!ctx->req_sent && ctx->uc->connected && ctx->uc->writable)
        send_request(ctx);
}

static void client_drained(struct pt_request *r)
{
    struct proxy_ctx *ctx = r->ctx[pt_proxy_module.index];

    if (ctx->uc)
        read_response(ctx);
}

/* --- response from upstream --- */

/* Response fields not passed to the client: hop-by-hop ones, those named in the upstream's
 * Connection field <conn> (may be NULL), those portier sets itself, proxy_hide_header. */
static int hide_response_header(struct proxy_ctx *ctx, struct pt_str name,
                                const struct pt_http_header *conn)
{
    static const char *const hop[] = {
        "connection", "keep-alive",     "proxy-connection", "te",   "trailer", "transfer-encoding",
        "upgrade",    "content-length", "server",           "date", NULL};

    for (int i = 0; hop[i]; i++)
        if (pt_str_ieq(name, hop[i]))
            return !(ctx->r->tunnel && pt_str_ieq(name, "upgrade"));
    for (int i = 0; i < ctx->plc->nhide; i++)
        if (pt_str_ieq(name, ctx->plc->hide[i]))
            return 1;
    return conn && named_in(conn->value, name);
}

/* Copies the upstream's head into the client response (the pool keeps the bytes alive
 * for the log after ctx->in is reused). */
static int pass_head(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    struct pt_http_response *resp = &ctx->resp;
    char *copy = pt_pstrndup(r->pool, ctx->in->pos, resp->head_len);
    const struct pt_http_header *conn =
        pt_http_find_header(resp->headers, resp->nheaders, "connection");
    char status[4];

    if (copy == NULL)
        return PT_ERROR;
#define MOVE(s) ((struct pt_str){copy + ((s).p - ctx->in->pos), (s).len})
    r->status = resp->status;
    r->status_line = MOVE(resp->reason);
    for (size_t i = 0; i < resp->nheaders; i++) {
        struct pt_http_header *h = &resp->headers[i];
        if (hide_response_header(ctx, h->name, conn))
            continue;
        if (pt_header_add(r, &r->out, MOVE(h->name), MOVE(h->value)) != PT_OK)
            return PT_ERROR;
    }
#undef MOVE
    snprintf(status, sizeof(status), "%03d", resp->status);
    r->upstream_status = (struct pt_str){pt_pstrndup(r->pool, status, 3), 3};
    note_upstream(ctx);
    /* RFC 9112 6.3: which responses have a body and how it is framed. */
    if (r->h.method_id == PT_HTTP_HEAD || resp->status == 204 || resp->status == 304 || r->tunnel) {
        ctx->resp_left = 0;
        r->out_length =
            resp->content_length >= 0 && r->h.method_id == PT_HTTP_HEAD ? resp->content_length : -1;
        if (resp->status == 204 || resp->status == 304)
            r->out_length = -1;
    } else if (resp->chunked) {
        ctx->resp_chunked = 1;
        r->out_length = -1;
    } else if (resp->content_length >= 0) {
        ctx->resp_left = resp->content_length;
        r->out_length = resp->content_length;
    } else {
        ctx->resp_until_close = 1;
        r->out_length = -1;
    }
    ctx->in->pos += resp->head_len;
    ctx->resp_head = 1;
    if (pt_http_send_header(r) != PT_OK)
        return PT_ERROR;
    if (!ctx->resp_chunked && !ctx->resp_until_close && ctx->resp_left == 0 && !r->tunnel) {
        ctx->resp_done = 1;
        return pt_http_send_body(r, NULL, 0, 1);
    }
    return PT_OK;
}

/* Parses the head in ctx->in.  PT_OK (passed on), PT_AGAIN (need more), PT_ERROR (bad). */
static int parse_head(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;

    for (;;) {
        int rc = pt_http_parse_response(ctx->in->pos, pt_buf_len(ctx->in), PT_BUF_SIZE - 1024,
                                        &ctx->resp);
        if (rc != PT_OK)
            return rc == PT_AGAIN ? PT_AGAIN : PT_ERROR;
        if (ctx->resp.status == 101) {
            if (!r->h.upgrade)
                return PT_ERROR;
            r->tunnel = 1;
            r->keepalive = 0;
            return pass_head(ctx);
        }
        if (ctx->resp.status >= 200)
            return pass_head(ctx);
        /* An interim response (100 Continue, 103): portier answered Expect itself. */
        ctx->in->pos += ctx->resp.head_len;
        memset(&ctx->resp, 0, sizeof(ctx->resp));
    }
}

/* Finishes the exchange once the whole response is out of the upstream. */
static void response_complete(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    int keep =
        ctx->resp.keep_alive && !ctx->resp_until_close && ctx->req_sent && pt_buf_len(ctx->in) == 0;

    pt_peer_succeeded(ctx->peer);
    note_upstream(ctx);
    release_upstream(ctx, keep);
    r->cleanup = NULL;
    cleanup(r);
    pt_http_finalize(r, PT_OK);
}

/* Passes buffered body bytes on to the client while it keeps up.  PT_OK, PT_DONE (the
 * response is complete) or PT_ERROR (bad framing or the client is gone). */
static int forward_body(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    struct pt_buf *in = ctx->in;

    while (pt_buf_len(in) && !pt_http_output_blocked(r)) {
        struct pt_str d = PT_NULL_STR;
        size_t used;
        int last = 0;
        if (ctx->resp_until_close) {
            d = (struct pt_str){in->pos, pt_buf_len(in)};
            used = d.len;
        } else if (!ctx->resp_chunked) {
            used = (size_t)pt_min((int64_t)pt_buf_len(in), ctx->resp_left);
            d = (struct pt_str){in->pos, used};
            ctx->resp_left -= (int64_t)used;
            last = ctx->resp_left == 0;
        } else {
            ssize_t n = pt_chunked_parse(&ctx->chunk, in->pos, pt_buf_len(in), &d);
            if (n < 0)
                return PT_ERROR;
            used = (size_t)n;
            last = ctx->chunk.done;
            if (n == 0 && !last)
                break;
        }
        in->pos += used;
        if (pt_http_send_body(r, d.p, d.len, last) != PT_OK)
            return PT_ERROR;
        if (last) {
            ctx->resp_done = 1;
            return PT_DONE;
        }
        if (!ctx->resp_chunked && !ctx->resp_until_close && ctx->resp_left == 0)
            break;
    }
    if (pt_buf_len(in) == 0)
        in->pos = in->last = in->start;
    return ctx->resp_done ? PT_DONE : PT_OK;
}

/* What the buffered bytes mean now.  PT_OK: wait for more; PT_DONE: the request is over. */
static int process_input(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    int rc;

    if (!ctx->resp_head) {
        rc = parse_head(ctx);
        if (rc == PT_AGAIN)
            return PT_OK;
        if (rc != PT_OK) {
            upstream_failed(ctx, ERR_INVALID);
            return PT_DONE;
        }
        if (ctx->resp_done) {
            response_complete(ctx);
            return PT_DONE;
        }
    }
    if (r->tunnel) {
        if (pt_buf_len(ctx->in) && !pt_http_output_blocked(r)) {
            if (pt_http_write_raw(r->c, ctx->in->pos, pt_buf_len(ctx->in)) != PT_OK) {
                pt_http_abort(r);
                return PT_DONE;
            }
            ctx->in->pos = ctx->in->last = ctx->in->start;
        }
        return tunnel_client_to_upstream(ctx);
    }
    rc = forward_body(ctx);
    if (rc == PT_ERROR) {
        if (r->c->error)
            pt_http_abort(r);
        else
            upstream_failed(ctx, ERR_INVALID);
        return PT_DONE;
    }
    if (rc == PT_DONE) {
        response_complete(ctx);
        return PT_DONE;
    }
    /* The head arrived without body bytes: the client gets it now, not with the body. */
    if (pt_http_flush(r->c) == PT_ERROR) {
        pt_http_abort(r);
        return PT_DONE;
    }
    return PT_OK;
}

/* The upstream closed its side: the end of a close-delimited body, or a failure. */
static void upstream_eof(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;

    if (ctx->resp_head && (ctx->resp_until_close || r->tunnel)) {
        if (!r->tunnel && pt_http_send_body(r, NULL, 0, 1) != PT_OK) {
            pt_http_abort(r);
            return;
        }
        r->response_done = 1;
        release_upstream(ctx, 0);
        r->cleanup = NULL;
        cleanup(r);
        pt_http_finalize(r, PT_OK);
        return;
    }
    if (ctx->resp_head) {
        pt_log(PT_LOG_ERR,
               "upstream %s closed the connection before the end of the response "
               "(client %s)",
               ctx->peer->name, r->c->peer_text);
        pt_http_abort(r);
        return;
    }
    upstream_failed(ctx, ERR_READ);
}

static int read_response(struct proxy_ctx *ctx)
{
    struct pt_upstream_conn *uc = ctx->uc;

    if (ctx->in == NULL && (ctx->in = pt_buf_get(PT_BUF_SIZE)) == NULL) {
        pt_http_finalize(ctx->r, PT_ERROR);
        return PT_DONE;
    }
    for (;;) {
        ssize_t n;
        size_t room;

        if (pt_buf_len(ctx->in) && process_input(ctx) == PT_DONE)
            return PT_DONE;
        /* Backpressure: nothing more is read while the client has not taken the last. */
        if (pt_http_output_blocked(ctx->r) || !uc->readable)
            return PT_OK;
        if (pt_buf_room(ctx->in) == 0)
            pt_buf_compact(ctx->in);
        room = pt_buf_room(ctx->in);
        if (room == 0) {
            upstream_failed(ctx, ERR_INVALID); /* a head larger than the buffer */
            return PT_DONE;
        }
        n = read(uc->ev.fd, ctx->in->last, room);
        if (n > 0) {
            ctx->in->last += n;
            ctx->got_bytes = 1;
            if ((size_t)n < room && !uc->rdhup)
                uc->readable = 0;
            pt_timer_add(&uc->timer, (uint64_t)ctx->plc->read_timeout);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            uc->readable = 0;
            return PT_OK;
        }
        if (n < 0 && !ctx->resp_head && errno != ECONNRESET && errno != EPIPE)
            pt_log(PT_LOG_ERR, "read from upstream %s failed: %m", ctx->peer->name);
        upstream_eof(ctx);
        return PT_DONE;
    }
}

/* --- tunnel (after 101) --- */

static int tunnel_client_to_upstream(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    struct pt_http_conn *c = r->c;

    for (;;) {
        ssize_t n;
        if (pt_buf_len(c->in)) {
            n = write(ctx->uc->ev.fd, c->in->pos, pt_buf_len(c->in));
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                ctx->uc->writable = 0;
                return PT_OK;
            }
            if (n < 0) {
                upstream_eof(ctx);
                return PT_DONE;
            }
            c->in->pos += n;
            pt_timer_add(&ctx->uc->timer, (uint64_t)ctx->plc->read_timeout);
            if (pt_buf_len(c->in))
                return PT_OK;
        }
        c->in->pos = c->in->last = r->body_start;
        if (!c->readable)
            return PT_OK;
        n = pt_http_conn_read(c);
        if (n == 0 || n == PT_ERROR) {
            r->response_done = 1;
            release_upstream(ctx, 0);
            r->cleanup = NULL;
            cleanup(r);
            pt_http_finalize(r, PT_OK);
            return PT_DONE;
        }
        if (n == PT_AGAIN)
            return PT_OK;
    }
}
