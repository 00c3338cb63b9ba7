/*
 * proxy_target.c: proxy_pass, where a request goes: the upstream group or address, TLS,
 * and the URI part.
 *
 * Without variables the target is fixed: bound in postconfig to the group the host names,
 * or to an implicit group of that address (pt_upstream_implicit resolves a name then).
 * With variables (nginx's rules) each request evaluates the URL: its host names an
 * upstream group (an `upstream` block, or the implicit group of another location's fixed
 * proxy_pass with the same host:port), else an IP address literal, made a group of one
 * server for that request.  A name that is neither cannot be resolved without blocking the
 * worker (nginx would need `resolver`): the request gets 502 and the error log says so.
 * The URI part of such a URL is sent as it is instead of the request's URI, and without it
 * the request's URI goes up unchanged.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "modules/proxy/proxy.h"

#include "worker/listen.h"

/* A proxy_pass URL "http[s]://HOST[:PORT][/URI]" in parts (slices of the URL). */
struct url_parts {
    unsigned https : 1;
    struct pt_str hostport; /* HOST[:PORT] as written */
    struct pt_str host;     /* HOST, an IPv6 address with its brackets */
    struct pt_str port;     /* PORT; empty: none */
    struct pt_str uri;      /* from the first '/' or '?' on; empty: none */
};

/* Length of the scheme "http://" or "https://" (any case, as nginx) that <s> starts with;
 * 0 when it starts with neither.  *<https> tells which. */
static size_t scheme_len(struct pt_str s, int *https)
{
    *https = 0;
    if (s.len >= 7 && strncasecmp(s.p, "http://", 7) == 0)
        return 7;
    *https = 1;
    if (s.len >= 8 && strncasecmp(s.p, "https://", 8) == 0)
        return 8;
    return 0;
}

/* Splits the URL <s> into <u>.  Returns NULL, or why <s> is not a proxy_pass URL. */
static const char *parse_url(struct pt_str s, struct url_parts *u)
{
    int https;
    size_t at = scheme_len(s, &https), end;
    const char *colon = NULL;

    memset(u, 0, sizeof(*u));
    if (at == 0)
        return "it starts with http:// or https://";
    u->https = https;
    for (end = at; end < s.len && s.p[end] != '/' && s.p[end] != '?'; end++)
        ;
    u->hostport = (struct pt_str){s.p + at, end - at};
    u->uri = (struct pt_str){s.p + end, s.len - end};
    u->host = u->hostport;
    if (u->host.len && u->host.p[0] == '[') {
        const char *close = memchr(u->host.p, ']', u->host.len);
        if (close == NULL)
            return "an IPv6 address without its ']'";
        u->host.len = (size_t)(close - u->host.p) + 1;
        if (u->host.len < u->hostport.len) {
            if (close[1] != ':')
                return "a ']' not followed by ':PORT'";
            colon = close + 1;
        }
    } else {
        colon = memchr(u->host.p, ':', u->host.len);
        if (colon)
            u->host.len = (size_t)(colon - u->host.p);
    }
    if (colon)
        u->port = (struct pt_str){colon + 1, (size_t)(u->hostport.p + u->hostport.len - colon - 1)};
    if (u->host.len == 0)
        return "no host";
    return NULL;
}

/* The port <p> as a number, 0 when it is not one (1 to 65535, digits only). */
static unsigned port_number(struct pt_str p)
{
    unsigned v = 0;

    if (p.len == 0 || p.len > 5)
        return 0;
    for (size_t i = 0; i < p.len; i++) {
        if (p.p[i] < '0' || p.p[i] > '9')
            return 0;
        v = v * 10 + (unsigned)(p.p[i] - '0');
    }
    return v <= 65535 ? v : 0;
}

/* $proxy_host and $proxy_port of <u> into <t>, as nginx makes them: the port is left out
 * of the host when it is the scheme's default. */
static void set_proxy_host(const struct url_parts *u, struct proxy_target *t)
{
    const char *dflt = u->https ? "443" : "80";

    if (u->port.len == 0 || pt_str_eq(u->port, dflt)) {
        t->proxy_host = u->host;
        t->proxy_port = pt_str_c(dflt);
        return;
    }
    t->proxy_host = u->hostport;
    t->proxy_port = u->port;
}

/* The host of <u> as a TLS name: without the brackets of an IPv6 address, in <pool>. */
static const char *tls_name(struct pt_pool *pool, const struct url_parts *u)
{
    struct pt_str h = u->host;

    if (h.p[0] == '[')
        h = (struct pt_str){h.p + 1, h.len - 2};
    return pt_pstrndup(pool, h.p, h.len);
}

/* --- the directive --- */

/* A proxy_pass with variables: checked as far as its text allows (the scheme, when it is
 * written out), the rest when a request evaluates it. */
static int set_pass_vars(struct pt_conf *cf, struct proxy_loc_conf *plc, struct pt_template *t)
{
    struct pt_str v = pt_str_c(cf->value);
    int https;

    if (v.p[0] != '$' && scheme_len(v, &https) == 0)
        return pt_conf_error(cf, "invalid proxy_pass \"%s\": it starts with http:// or https://",
                             v.p);
    if (v.p[0] != '$' && https && !PORTIER_WITH_SSL)
        return pt_conf_error(cf,
                             "invalid proxy_pass \"%s\": https:// needs the ssl module, which this "
                             "portier was built without (build with -DPORTIER_WITH_SSL=ON)",
                             v.p);
    plc->pass_vars = t;
    return PT_OK;
}

/* The prefix of the location <lc> that a URI part replaces: its pattern without the
 * modifier.  nginx's auto_redirect is set for a prefix ending in '/'. */
static int set_prefix(struct pt_conf *cf, struct pt_http_loc_conf *lc, struct proxy_loc_conf *plc)
{
    const char *name = lc->name;

    if (name[0] == '~' && plc->target.has_uri && plc->pass_vars == NULL)
        return pt_conf_error(cf, "\"proxy_pass\" cannot have a URI part in a regex location");
    if (strncmp(name, "= ", 2) == 0)
        name += 2;
    else if (strncmp(name, "^~ ", 3) == 0)
        name += 3;
    while (*name == ' ')
        name++;
    plc->prefix = pt_str_c(name);
    /* nginx's rule: a location ending in '/' (not a regex) answers its path without the
     * slash with a 301 to it, whatever its proxy_pass. */
    lc->auto_redirect =
        lc->name[0] != '~' && plc->prefix.len > 1 && name[plc->prefix.len - 1] == '/';
    return PT_OK;
}

int pt_proxy_set_pass(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct proxy_loc_conf *plc = conf;
    struct pt_http_loc_conf *lc = cf->conf->loc_conf[pt_http_module.index];
    struct url_parts u;
    const char *v = cf->value, *why;

    pt_unused(d);
    if (plc->pass)
        return pt_conf_error(cf, "\"proxy_pass\" is duplicate");
    plc->pass = pt_pstrdup(cf->pool, v);
    plc->pass_setting = cf->setting;
    lc->handler = NULL; /* set in postconfig once the upstream is known */
    if (strchr(v, '$')) {
        struct pt_template *t = pt_template_compile(cf, v, PT_ESCAPE_NONE);
        if (t == NULL)
            return PT_ERROR;
        if (!pt_template_is_static(t, NULL)) {
            if (set_pass_vars(cf, plc, t) != PT_OK)
                return PT_ERROR;
            return set_prefix(cf, lc, plc);
        }
    }
    why = parse_url(pt_str_c(plc->pass), &u);
    if (why)
        return pt_conf_error(cf, "invalid proxy_pass \"%s\": %s", v, why);
    if (u.https && !PORTIER_WITH_SSL) /* nginx: "https protocol requires SSL support" */
        return pt_conf_error(cf,
                             "invalid proxy_pass \"%s\": https:// needs the ssl module, which this "
                             "portier was built without (build with -DPORTIER_WITH_SSL=ON)",
                             v);
    plc->host = pt_pstrndup(cf->pool, u.hostport.p, u.hostport.len);
    plc->target.https = u.https;
    plc->target.tls_name = tls_name(cf->pool, &u);
    if (u.uri.len) {
        plc->target.has_uri = 1;
        plc->target.uri = u.uri;
    }
    set_proxy_host(&u, &plc->target);
    return set_prefix(cf, lc, plc);
}

/* True when the proxy_pass host <h> names a port: "host:port" or "[v6]:port". */
static int has_port(const char *h)
{
    const char *close = h[0] == '[' ? strchr(h, ']') : NULL;

    return close ? close[1] == ':' : strchr(h, ':') != NULL;
}

/* Whether a proxy_pass with variables of <plc> may turn out https: its scheme is not
 * written out as http://. */
static int may_be_https(const struct proxy_loc_conf *plc)
{
    return strncasecmp(plc->pass, "http://", 7) != 0;
}

int pt_proxy_bind_target(struct pt_conf *cf, struct proxy_loc_conf *plc)
{
    struct proxy_target *t = &plc->target;
    const char *addr = plc->host;

    if (plc->pass_vars) {
        /* The TLS configuration is made now, as nginx makes it for any proxy_pass with
         * variables; its name is each request's host unless proxy_ssl_name sets one. */
        if (PORTIER_WITH_SSL && may_be_https(plc) && pt_proxy_ssl_conf(cf, plc) != PT_OK)
            return PT_ERROR;
        return PT_OK;
    }
    t->upstream = has_port(plc->host) ? NULL : pt_upstream_find(cf, plc->host);
    if (t->upstream == NULL && t->https && !has_port(plc->host)) {
        size_t n = strlen(plc->host) + sizeof(":443");
        char *a = pt_palloc(cf->pool, n);
        if (a == NULL)
            return pt_conf_error(cf, "out of memory");
        snprintf(a, n, "%s:443", plc->host);
        addr = a;
    }
    if (t->upstream == NULL && (t->upstream = pt_upstream_implicit(cf, addr)) == NULL)
        return PT_ERROR;
    if (t->https && pt_proxy_ssl_conf(cf, plc) != PT_OK)
        return PT_ERROR;
    t->ssl = plc->ssl;
    return PT_OK;
}

/* --- a proxy_pass with variables, per request --- */

struct proxy_ctx *pt_proxy_ctx(struct pt_request *r)
{
    struct proxy_ctx *ctx = r->ctx[pt_proxy_module.index];

    if (ctx)
        return ctx;
    ctx = pt_pnalloc(r->pool, sizeof(*ctx));
    if (ctx == NULL)
        return NULL;
    /* The response's header slots are the parser's to fill (pt_proxy_resp_clear). */
    pt_zero_except(ctx, sizeof(*ctx), ctx->resp.headers, sizeof(ctx->resp.headers));
    ctx->r = r;
    r->ctx[pt_proxy_module.index] = ctx;
    return ctx;
}

/* The group the host of <u> names: an upstream block of that name when the URL has no
 * port, or the implicit group of a fixed proxy_pass with the same HOST[:PORT] (nginx's
 * rule: host and port are compared); NULL when none. */
static struct pt_upstream *find_group(const struct url_parts *u)
{
    int n;
    struct pt_upstream **g = pt_upstream_groups(pt_cycle, &n);

    for (int i = 0; i < n; i++) {
        struct pt_str want = g[i]->implicit ? u->hostport : u->host;
        if (!g[i]->implicit && u->port.len)
            continue;
        if (strlen(g[i]->name) == want.len && strncasecmp(g[i]->name, want.p, want.len) == 0)
            return g[i];
    }
    return NULL;
}

/* The IP address literal <u> names made a group of one server in <r>'s pool, as nginx's
 * round-robin peer of a resolved address: no keepalive, no shared state (nothing to
 * balance).  NULL when the host is not an address (or out of memory: *<oom> set). */
static struct pt_upstream *transient_group(struct pt_request *r, const struct url_parts *u,
                                           int *oom)
{
    struct pt_upstream *g;
    struct pt_peer *p;
    char host[INET6_ADDRSTRLEN];
    struct pt_str h = u->host;
    unsigned port = u->port.len ? port_number(u->port) : u->https ? 443 : 80;
    int v6 = h.p[0] == '[';

    if (v6)
        h = (struct pt_str){h.p + 1, h.len - 2};
    if (h.len >= sizeof(host))
        return NULL;
    memcpy(host, h.p, h.len);
    host[h.len] = '\0';
    g = pt_palloc(r->pool, sizeof(*g));
    p = pt_palloc(r->pool, sizeof(*p));
    if (g == NULL || p == NULL) {
        *oom = 1;
        return NULL;
    }
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&p->addr;
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return NULL;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        p->addrlen = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&p->addr;
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return NULL;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        p->addrlen = sizeof(*a);
    }
    pt_sockaddr_text((struct sockaddr *)&p->addr, p->name, sizeof(p->name));
    snprintf(p->host, sizeof(p->host), "%s", p->name);
    p->weight = 1;
    p->max_fails = 1;
    p->fail_timeout = 10000;
    g->name = p->name;
    g->peers = p;
    g->npeers = 1;
    g->keepalive_timeout = 60000;
    g->keepalive_requests = 1000;
    g->implicit = 1;
    return g;
}

/* Whether the bytes of <s> may stand in a request line: no controls, spaces or DEL. */
static int clean_uri(struct pt_str s)
{
    for (size_t i = 0; i < s.len; i++)
        if ((unsigned char)s.p[i] <= 0x20 || s.p[i] == 0x7f)
            return 0;
    return 1;
}

/* Whether the host of <u> is one a Host field may carry: letters, digits, '-', '.', '_',
 * or an IPv6 address in brackets. */
static int clean_host(struct pt_str h)
{
    int v6 = h.p[0] == '[';

    for (size_t i = v6; i < h.len - v6; i++) {
        char c = h.p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || (v6 && c == ':'))
            continue;
        return 0;
    }
    return 1;
}

/* Logs why the proxy_pass <url> of <r> goes nowhere and records <status> for it.  NULL. */
static const struct proxy_target *no_target(struct proxy_ctx *ctx, struct pt_str url, int status,
                                            const char *why)
{
    struct pt_request *r = ctx->r;

    pt_log(PT_LOG_ERR, "proxy_pass \"%.*s\": %s, client %s, request \"%.*s %.*s\"", (int)url.len,
           url.p, why, r->c->peer_text, (int)r->h.method.len, r->h.method.p, (int)r->h.target.len,
           r->h.target.p);
    ctx->target_status = status;
    return NULL;
}

/* Evaluates the proxy_pass with variables of <plc> for <ctx>'s request. */
static const struct proxy_target *eval_target(struct proxy_ctx *ctx, struct proxy_loc_conf *plc)
{
    struct pt_request *r = ctx->r;
    struct proxy_target *t = pt_palloc(r->pool, sizeof(*t));
    struct url_parts u;
    struct pt_str url;
    const char *why;
    int oom = 0;

    ctx->target_status = PT_ERROR;
    if (t == NULL || pt_template_eval(r, plc->pass_vars, &url) != PT_OK)
        return NULL;
    /* nginx's words for a URL that is not one ("invalid URL prefix"), answered with 500. */
    if ((why = parse_url(url, &u)) != NULL)
        return no_target(ctx, url, 500, why);
    if (u.port.len && port_number(u.port) == 0)
        return no_target(ctx, url, 500, "invalid port");
    /* nginx would ask its resolver about such a host, and answer 502 without one. */
    if (!clean_host(u.host))
        return no_target(ctx, url, 502, "invalid host");
    if (!clean_uri(u.uri))
        return no_target(ctx, url, 500, "the URI holds a space or a control character");
    if (u.https && plc->ssl == NULL)
        return no_target(ctx, url, 500, "https:// needs the ssl module");
    t->https = u.https;
    t->ssl = u.https ? plc->ssl : NULL;
    t->tls_name = tls_name(r->pool, &u);
    set_proxy_host(&u, t);
    if (u.uri.len) {
        t->has_uri = 1;
        t->uri = u.uri;
        if (u.uri.p[0] == '?') { /* nginx's: "http://h?a" asks for "/?a" */
            char *p = pt_pnalloc(r->pool, u.uri.len + 1);
            if (p == NULL)
                return NULL;
            p[0] = '/';
            memcpy(p + 1, u.uri.p, u.uri.len);
            t->uri = (struct pt_str){p, u.uri.len + 1};
        }
    }
    t->upstream = find_group(&u);
    if (t->upstream == NULL) {
        t->upstream = transient_group(r, &u, &oom);
        t->transient = 1;
    }
    if (oom || t->tls_name == NULL)
        return NULL;
    if (t->upstream == NULL)
        return no_target(ctx, url, 502,
                         "the host is neither an upstream group nor an IP address, and no name "
                         "is resolved at run time (nginx would need \"resolver\"): define an "
                         "upstream block of that name or pass an address");
    return t;
}

const struct proxy_target *pt_proxy_target(struct proxy_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    struct proxy_loc_conf *plc = pt_http_loc_conf(r, pt_proxy_module);

    if (ctx->target_of == plc)
        return ctx->t;
    /* Set first: a proxy_pass naming $proxy_host finds no value rather than itself. */
    ctx->target_of = plc;
    ctx->t = plc->pass_vars ? NULL : &plc->target;
    if (plc->pass_vars)
        ctx->t = eval_target(ctx, plc);
    return ctx->t;
}
