/*
 * proxy.c: the proxy module: `proxy_pass` and friends.  The request sent upstream is
 * re-framed by portier (never the client's framing as received), bodies stream both ways
 * through bounded buffers with backpressure, a stale pooled connection is retried once,
 * and an Upgrade becomes a tunnel only after the upstream answers 101.
 */
#include "proxy.h"

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
    pt_conf_merge_list(c->set, c->nset, p->set, p->nset);
    pt_conf_merge_list(c->hide, c->nhide, p->hide, p->nhide);
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

/* --- the exchange --- */

static void upstream_event(struct pt_upstream_conn *uc, unsigned events);
static void upstream_timeout(struct pt_timer *t);
static void client_readable(struct pt_request *r);
static void client_drained(struct pt_request *r);

static const char *const err_text[] = {
    [ERR_CONNECT] = "connect() failed",
    [ERR_CONNECT_TIMEOUT] = "connect timed out",
    [ERR_WRITE] = "send failed",
    [ERR_READ] = "upstream closed or reset the connection",
    [ERR_READ_TIMEOUT] = "upstream timed out",
    [ERR_INVALID] = "upstream sent an invalid response",
};

void pt_proxy_release(struct proxy_ctx *ctx, int keep)
{
    if (ctx->uc == NULL)
        return;
    pt_timer_del(&ctx->uc->timer);
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
}

void pt_proxy_note_upstream(struct proxy_ctx *ctx)
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

static int connect_peer(struct proxy_ctx *ctx, int count_try, int fresh)
{
    struct pt_upstream *u = ctx->plc->upstream;

    for (;;) {
        struct pt_peer *peer = ctx->peer;
        if (count_try) {
            peer = pt_upstream_choose(u, ctx->r, ctx->tried);
            if (peer == NULL) {
                pt_log(PT_LOG_ERR, "no live upstreams in \"%s\", client %s", u->name,
                       ctx->r->c->peer_text);
                return 502;
            }
            ctx->tried |= 1ull << ((peer - u->peers) % 64);
            ctx->tries++;
        }
        ctx->peer = peer;
        ctx->uc = pt_upstream_connect(u, peer, fresh, ctx, upstream_event);
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
void pt_proxy_failed(struct proxy_ctx *ctx, enum proxy_err err)
{
    struct pt_request *r = ctx->r;
    struct pt_upstream *u = ctx->plc->upstream;
    int stale = ctx->uc && ctx->uc->reused && !ctx->got_bytes &&
                (err == ERR_WRITE || err == ERR_READ) && !ctx->stale_retried;
    int rc;

    /* A failed retry is a failure like any other, and says so. */
    if (!stale || ctx->stale_retried)
        pt_log(PT_LOG_ERR, "%s: upstream %s (\"%s\"), client %s, request \"%.*s %.*s\"",
               err_text[err], ctx->peer ? ctx->peer->name : "-", u->name, r->c->peer_text,
               (int)r->h.method.len, r->h.method.p, (int)r->h.target.len, r->h.target.p);
    pt_proxy_release(ctx, 0);
    pt_buf_put(ctx->in);
    ctx->in = NULL;
    if (ctx->out)
        ctx->out->pos = ctx->out->last = ctx->out->start;
    pt_proxy_note_upstream(ctx);
    if (r->header_sent) {
        pt_http_abort(r);
        return;
    }
    /* A pooled connection the peer had closed: once more on a fresh one, not a failure. */
    if (stale && !ctx->body_started && !ctx->stale_retried) {
        ctx->stale_retried = 1;
        pt_log(PT_LOG_INFO, "upstream %s closed a kept-alive connection; retrying on a new one",
               ctx->peer->name);
        rc = connect_peer(ctx, 0, 1);
    } else {
        if (err != ERR_INVALID)
            pt_peer_failed(u, ctx->peer);
        if ((err != ERR_CONNECT && err != ERR_CONNECT_TIMEOUT) || ctx->body_started ||
            ctx->tries >= u->npeers) {
            pt_http_finalize(r, err == ERR_READ_TIMEOUT || err == ERR_CONNECT_TIMEOUT ? 504 : 502);
            return;
        }
        rc = connect_peer(ctx, 1, 0);
    }
    if (rc != PT_OK) {
        pt_http_finalize(r, rc);
        return;
    }
    if (ctx->uc->writable)
        pt_proxy_send_request(ctx);
}

static void upstream_timeout(struct pt_timer *t)
{
    struct proxy_ctx *ctx = t->data;

    if (!ctx->uc->connected)
        pt_proxy_failed(ctx, ERR_CONNECT_TIMEOUT);
    else if (ctx->r->tunnel && ctx->resp_head) {
        ctx->r->response_done = 1; /* an idle tunnel ends cleanly */
        pt_http_finalize(ctx->r, PT_OK);
    } else
        pt_proxy_failed(ctx, ctx->req_sent ? ERR_READ_TIMEOUT : ERR_WRITE);
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
    if (pt_proxy_build_head(ctx) != PT_OK)
        return PT_ERROR;
    r->cleanup = pt_proxy_cleanup;
    r->read_handler = client_readable;
    r->write_handler = client_drained;
    rc = connect_peer(ctx, 1, 0);
    if (rc != PT_OK)
        return rc;
    if (ctx->uc->writable)
        pt_proxy_send_request(ctx);
    return PT_AGAIN;
}

static int connected(struct proxy_ctx *ctx)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(ctx->uc->ev.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
        errno = err;
        pt_log(PT_LOG_ERR, "connect() to %s failed: %m", ctx->peer->name);
        pt_proxy_failed(ctx, ERR_CONNECT);
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
        if (uc->writable && pt_proxy_tunnel_client(ctx) == PT_DONE)
            return;
        if (ctx->uc == uc && (uc->readable || (events & PT_EV_ERROR)))
            pt_proxy_read_response(ctx);
        return;
    }
    if (uc->writable && !ctx->req_sent && pt_proxy_send_request(ctx) != PT_OK)
        return;
    if (ctx->uc == uc && (uc->readable || (events & PT_EV_ERROR)))
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

    if (recv(r->c->ev.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) != 0)
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
    if (!ctx->req_sent && ctx->uc->connected && ctx->uc->writable) {
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
