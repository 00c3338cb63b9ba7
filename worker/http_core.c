/*
 * http_core.c: the http core module: the http, server and location blocks, listen and
 * server_name, client limits and timeouts.  It builds, per listen address, the table that
 * chooses a server by Host.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/http.h"
#include "worker/var.h"
#include "worker/listen.h"
#include "core/log.h"
#include "core/pool.h"
#include "worker/router.h"
#include "worker/var_http.h"

struct pt_http_observers pt_http_observers;

/* The listen options of one server, kept until the server block is fully read. */
struct listen_opt {
    struct pt_listen addr;
    unsigned default_server : 1;
};

struct srv_extra {
    struct listen_opt *listens;
    int nlistens;
    char **names;
    int nnames;
    struct pt_http_loc_conf **locs; /* every location of the server, for merging */
    int nlocs;
};

static int http_block(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_error_page(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int server_block(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int location_block(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_listen(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_server_name(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_header_buffers(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_real_ip_from(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int merge_request_id_header(struct pt_conf *cf, struct pt_http_loc_conf *lc);
static int set_resolver(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_tcp_nopush(struct pt_conf *cf, const struct pt_directive *d, void *conf);

static const struct pt_conf_enum server_tokens_values[] = {{"on", PT_SERVER_TOKENS_ON},
                                                           {"off", PT_SERVER_TOKENS_OFF},
                                                           {"build", PT_SERVER_TOKENS_BUILD},
                                                           {NULL, 0}};

#define SRV(f) offsetof(struct pt_http_srv_conf, f)
#define LOC(f) offsetof(struct pt_http_loc_conf, f)
#define HSL    (PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC)

static const struct pt_directive http_directives[] = {
    {"http", PT_CTX_MAIN, PT_DIR_BLOCK, PT_MAIN_CONF, http_block, 0, NULL,
     "the HTTP context: upstreams, servers and their defaults"},
    {"server", PT_CTX_HTTP, PT_DIR_BLOCK, PT_MAIN_CONF, server_block, 0, NULL,
     "a list of virtual servers: ( { listen = ...; server_name = ...; location = (...); }, ... )"},
    {"location", PT_CTX_SRV, PT_DIR_BLOCK, PT_SRV_CONF, location_block, 0, NULL,
     "a list of locations, each with path = \"[=|^~|~|~*] PATTERN\""},
    {"listen", PT_CTX_SRV, PT_DIR_MULTI, PT_SRV_CONF, set_listen, 0, NULL,
     "\"[ADDR:]PORT [default_server] [ssl] [backlog=N] [reuseport]\"; ADDR may be [IPv6]; ssl: "
     "connections on the address start with TLS (the ssl module)"},
    {"server_name", PT_CTX_SRV, PT_DIR_MULTI, PT_SRV_CONF, set_server_name, 0, NULL,
     "names: exact, *.wildcard, wildcard.*, .example.com, ~regex"},
    {"client_header_timeout", PT_CTX_HTTP | PT_CTX_SRV, 0, PT_SRV_CONF, pt_conf_set_msec,
     SRV(client_header_timeout), NULL, "time to receive a request head (default 60s)"},
    {"large_client_header_buffers", PT_CTX_HTTP | PT_CTX_SRV, 0, PT_SRV_CONF, set_header_buffers, 0,
     NULL,
     "\"NUMBER SIZE\": request line limit SIZE (414), head limit NUMBER x SIZE (431); default \"4 "
     "8k\""},
    {"keepalive_timeout", HSL, 0, PT_LOC_CONF, pt_conf_set_msec, LOC(keepalive_timeout), NULL,
     "idle time before a keepalive client connection is closed (default 75s; 0 disables "
     "keepalive)"},
    {"keepalive_requests", HSL, 0, PT_LOC_CONF, pt_conf_set_num, LOC(keepalive_requests), NULL,
     "requests served on one client connection (default 1000)"},
    {"underscores_in_headers", PT_CTX_HTTP | PT_CTX_SRV, 0, PT_SRV_CONF, pt_conf_set_flag,
     SRV(underscores_in_headers), NULL,
     "on: '_' is valid in a request header name; off (default): a name with '_' is invalid "
     "(see ignore_invalid_headers), as in nginx, so that X_Forwarded_For never reaches a "
     "CGI/WSGI app as HTTP_X_FORWARDED_FOR.  Taken from the address's default server"},
    {"ignore_invalid_headers", PT_CTX_HTTP | PT_CTX_SRV, 0, PT_SRV_CONF, pt_conf_set_flag,
     SRV(ignore_invalid_headers), NULL,
     "on (default): request headers whose names hold anything but letters, digits and '-' "
     "('_' too with underscores_in_headers) are dropped, neither forwarded nor seen by $http_*, "
     "and logged at info; off: such names are kept if they are tokens, else 400.  A CTL or "
     "space in a name is 400 either way.  Taken from the address's default server"},
    {"reject_unexpected_body", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, LOC(reject_unexpected_body),
     NULL,
     "on: GET, HEAD, DELETE and OPTIONS requests with a body (Content-Length > 0 or chunked) "
     "get 400 and the connection is closed; off (default): they are passed on, the body "
     "re-framed by portier (Elasticsearch searches, GraphQL over GET send one)"},
    {"client_body_timeout", HSL, 0, PT_LOC_CONF, pt_conf_set_msec, LOC(client_body_timeout), NULL,
     "time between two reads of the request body (default 60s)"},
    {"send_timeout", HSL, 0, PT_LOC_CONF, pt_conf_set_msec, LOC(send_timeout), NULL,
     "time between two writes to the client (default 60s)"},
    {"sendfile", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, LOC(sendfile), NULL,
     "on (default): files (static, not compressed or inspected on the way) go from the page "
     "cache to the socket without a copy, by sendfile(2), or by kernel TLS where OpenSSL "
     "and the kernel offer it (ssl_conf_command \"Options KTLS\", as nginx); off: read and "
     "written.  nginx's default is off; distributions turn it on"},
    {"sendfile_max_chunk", HSL, 0, PT_LOC_CONF, pt_conf_set_size, LOC(sendfile_max_chunk), NULL,
     "bytes of a file one connection sends before the worker turns to the others, so that a "
     "fast client of a big file does not hold it (default 2m, as nginx; 0: no limit)"},
    {"tcp_nopush", HSL, 0, PT_LOC_CONF, set_tcp_nopush, 0, NULL,
     "accepted (on or off) for nginx's configurations: portier always sends a file's "
     "response header in the file's first packet (MSG_MORE), which is what nginx's "
     "tcp_nopush on does with TCP_CORK"},
    {"client_max_body_size", HSL, 0, PT_LOC_CONF, pt_conf_set_size, LOC(client_max_body_size), NULL,
     "largest request body; 413 past it; 0 = unlimited (default 1m)"},
    {"client_body_buffer_size", HSL, 0, PT_LOC_CONF, pt_conf_set_size, LOC(client_body_buffer_size),
     NULL,
     "how much of a request body that a module reads ahead (the waf) is kept in memory; the "
     "rest goes to a temporary file (default 16k).  Bodies that only pass through are "
     "streamed and never kept"},
    {"client_body_temp_path", HSL, 0, PT_LOC_CONF, pt_conf_set_str, LOC(client_body_temp_path),
     NULL,
     "directory of those temporary files, which are unnamed (O_TMPFILE) and gone when the "
     "request ends; the workers' user must be able to write in it (default /tmp)"},
    {"set_real_ip_from", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_real_ip_from, 0, NULL,
     "addresses (CIDR) of trusted proxies whose X-Forwarded-For is kept"},
    {"request_id_header", HSL, 0, PT_LOC_CONF, pt_conf_set_str, LOC(request_id_header_conf), NULL,
     "NAME|off: the field $request_id travels in (default X-Request-ID).  A request from a "
     "set_real_ip_from peer with one such field of 1 to 128 letters, digits or \"-_.:+/=@\" "
     "keeps that id; any other gets a fresh one.  It goes upstream with proxy_pass (unless "
     "proxy_set_header names the field; the client's own is replaced) and back in every "
     "response (replacing the upstream's).  nginx needs proxy_set_header and add_header for "
     "this; off: $request_id is always generated and sent nowhere, as in nginx"},
    {"error_page", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_error_page, 0, NULL,
     "\"CODE ... [=[RESPONSE]] URI\" (a list): an answer portier makes with one of these "
     "statuses (or an upstream's, with proxy_intercept_errors) becomes the URI's, searched "
     "as a new request (GET), or the named location @NAME's (same method), or a redirect to a "
     "URL (302, or =301 ...); its status stays unless =RESPONSE names another or = takes the "
     "new answer's; a level with error_page does not inherit its parent's, as nginx"},
    {"recursive_error_pages", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, LOC(recursive_error_pages),
     NULL, "error_page applies again to the answer of an error_page's URI (default off)"},
    {"absolute_redirect", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, LOC(absolute_redirect), NULL,
     "redirects portier makes to a path (return, rewrite, the 301 to a location's slash) go out "
     "as absolute URLs on the request's scheme, host and port (default on, as nginx)"},
    {"port_in_redirect", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, LOC(port_in_redirect), NULL,
     "an absolute redirect names the listening port unless it is the scheme's (default on)"},
    {"server_name_in_redirect", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, LOC(server_name_in_redirect),
     NULL,
     "an absolute redirect names the server's first server_name instead of the request's Host "
     "(default off)"},
    {"server_tokens", HSL, 0, PT_LOC_CONF, pt_conf_set_enum, LOC(server_tokens),
     server_tokens_values,
     "on|off|build (or true/false): on shows the version in the Server header and on the error "
     "pages portier writes (Server: portier/VERSION), off only the name (Server: portier); "
     "build is on, there being no build name (default on, as nginx)"},
    {"resolver", HSL, PT_DIR_MULTI, PT_MAIN_CONF, set_resolver, 0, NULL,
     "accepted for nginx configurations and ignored, with a warning: portier resolves names "
     "with the system resolver (/etc/resolv.conf); a `resolve` server in an upstream is "
     "re-resolved every resolve_interval"},
    {"resolver_timeout", HSL, 0, PT_MAIN_CONF, set_resolver, 0, NULL,
     "accepted and ignored, with a warning, as resolver"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static void *create_main_conf(struct pt_conf *cf)
{
    /* Variables exist before any directive is read, so that setters can compile
     * templates at once. */
    if (pt_http_vars_register() != PT_OK)
        return NULL;
    return pt_palloc(cf->pool, sizeof(struct pt_http_main_conf));
}

static void *create_srv_conf(struct pt_conf *cf)
{
    struct pt_http_srv_conf *sc = pt_palloc(cf->pool, sizeof(*sc) + sizeof(struct srv_extra));

    if (sc == NULL)
        return NULL;
    sc->client_header_timeout = PT_CONF_UNSET;
    sc->large_header_size = PT_CONF_UNSET;
    sc->large_header_num = PT_CONF_UNSET;
    sc->max_headers = PT_CONF_UNSET;
    sc->underscores_in_headers = PT_CONF_UNSET;
    sc->ignore_invalid_headers = PT_CONF_UNSET;
    return sc;
}

static struct srv_extra *extra(struct pt_http_srv_conf *sc)
{
    return (struct srv_extra *)(sc + 1);
}

static int merge_srv_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct pt_http_srv_conf *p = parent, *c = child;

    pt_conf_merge_int(c->client_header_timeout, p->client_header_timeout, 60000);
    pt_conf_merge_int(c->large_header_size, p->large_header_size, 8192);
    pt_conf_merge_int(c->large_header_num, p->large_header_num, 4);
    pt_conf_merge_int(c->max_headers, p->max_headers, PT_HTTP_MAX_HEADERS);
    pt_conf_merge_int(c->underscores_in_headers, p->underscores_in_headers, 0);
    pt_conf_merge_int(c->ignore_invalid_headers, p->ignore_invalid_headers, 1);
    return PT_OK;
}

static void *create_loc_conf(struct pt_conf *cf)
{
    struct pt_http_loc_conf *lc = pt_palloc(cf->pool, sizeof(*lc));

    if (lc == NULL)
        return NULL;
    lc->keepalive_timeout = PT_CONF_UNSET;
    lc->keepalive_requests = PT_CONF_UNSET;
    lc->reject_unexpected_body = PT_CONF_UNSET;
    lc->client_body_timeout = PT_CONF_UNSET;
    lc->send_timeout = PT_CONF_UNSET;
    lc->sendfile = PT_CONF_UNSET;
    lc->sendfile_max_chunk = PT_CONF_UNSET;
    lc->client_max_body_size = PT_CONF_UNSET;
    lc->client_body_buffer_size = PT_CONF_UNSET;
    lc->server_tokens = PT_CONF_UNSET;
    lc->absolute_redirect = lc->port_in_redirect = lc->server_name_in_redirect = PT_CONF_UNSET;
    lc->nerror_pages = lc->recursive_error_pages = PT_CONF_UNSET;
    lc->nreal_ip_from = PT_CONF_UNSET;
    return lc;
}

static int merge_loc_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct pt_http_loc_conf *p = parent, *c = child;

    pt_conf_merge_int(c->keepalive_timeout, p->keepalive_timeout, 75000);
    pt_conf_merge_int(c->keepalive_requests, p->keepalive_requests, 1000);
    pt_conf_merge_int(c->reject_unexpected_body, p->reject_unexpected_body, 0);
    pt_conf_merge_int(c->client_body_timeout, p->client_body_timeout, 60000);
    pt_conf_merge_int(c->send_timeout, p->send_timeout, 60000);
    pt_conf_merge_int(c->sendfile, p->sendfile, 1);
    pt_conf_merge_int(c->sendfile_max_chunk, p->sendfile_max_chunk, 2 << 20);
    pt_conf_merge_int(c->client_max_body_size, p->client_max_body_size, 1 << 20);
    pt_conf_merge_int(c->client_body_buffer_size, p->client_body_buffer_size, 16384);
    pt_conf_merge_ptr(c->client_body_temp_path, p->client_body_temp_path, (char *)"/tmp");
    pt_conf_merge_int(c->server_tokens, p->server_tokens, PT_SERVER_TOKENS_ON);
    pt_conf_merge_int(c->absolute_redirect, p->absolute_redirect, 1);
    pt_conf_merge_int(c->port_in_redirect, p->port_in_redirect, 1);
    pt_conf_merge_int(c->server_name_in_redirect, p->server_name_in_redirect, 0);
    pt_conf_merge_list(c->error_pages, c->nerror_pages, p->error_pages, p->nerror_pages);
    pt_conf_merge_int(c->recursive_error_pages, p->recursive_error_pages, 0);
    pt_conf_merge_list(c->real_ip_from, c->nreal_ip_from, p->real_ip_from, p->nreal_ip_from);
    pt_conf_merge_ptr(c->request_id_header_conf, p->request_id_header_conf, (char *)"X-Request-ID");
    return merge_request_id_header(cf, c);
}

/* request_id_header's value: "off", or a field name (a token of letters, digits, '-' and
 * '_', so that it is never a field portier frames or sets itself by accident). */
static int merge_request_id_header(struct pt_conf *cf, struct pt_http_loc_conf *lc)
{
    const char *name = lc->request_id_header_conf;

    if (strcmp(name, "off") == 0) {
        lc->request_id_header = PT_NULL_STR;
        return PT_OK;
    }
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return pt_conf_error(cf,
                                 "invalid request_id_header \"%s\" (a field name of letters, "
                                 "digits, '-' and '_', or off)",
                                 name);
    if (*name == '\0')
        return pt_conf_error(cf, "empty request_id_header (a field name, or off)");
    lc->request_id_header = pt_str_c(name);
    return PT_OK;
}

int pt_http_peer_trusted(struct pt_request *r)
{
    const struct pt_http_loc_conf *lc = r->loc_conf ? pt_http_loc_conf(r, pt_http_module) : NULL;

    return lc && lc->nreal_ip_from > 0 &&
           pt_cidr_match(lc->real_ip_from, lc->nreal_ip_from, (struct sockaddr *)&r->c->peer);
}

/* Appends <item> to a pool-allocated array that grows by doubling. */
static int grow(struct pt_conf *cf, void **arr, int n, size_t size)
{
    void *a;

    if (n && (n & (n - 1)))
        return PT_OK; /* not a power of two: there is room */
    a = pt_palloc(cf->pool, (size_t)(n ? 2 * n : 1) * size);
    if (a == NULL)
        return pt_conf_error(cf, "out of memory");
    if (n)
        memcpy(a, *arr, (size_t)n * size);
    *arr = a;
    return PT_OK;
}

/* --- listen and server_name --- */

static int set_listen(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct srv_extra *x = extra(conf);
    char *w[6];
    int n = pt_conf_split(cf, cf->value, w, 6);
    struct listen_opt *lo;

    if (n < 1)
        return pt_conf_error(cf, "\"listen\" takes \"[ADDR:]PORT [options]\"");
    if (grow(cf, (void **)&x->listens, x->nlistens, sizeof(*lo)) != PT_OK)
        return PT_ERROR;
    lo = &x->listens[x->nlistens++];
    memset(lo, 0, sizeof(*lo));
    lo->addr.backlog = 511;
    lo->addr.fd = -1;
    if (pt_listen_parse_addr(w[0], &lo->addr) != PT_OK)
        return pt_conf_error(
            cf, "invalid listen address \"%s\" (use PORT, ADDR:PORT or [IPv6]:PORT)", w[0]);
    /* nginx refuses it too: the options of the two could disagree. */
    for (struct listen_opt *o = x->listens; o < lo; o++)
        if (o->addr.addrlen == lo->addr.addrlen &&
            memcmp(&o->addr.addr, &lo->addr.addr, lo->addr.addrlen) == 0)
            return pt_conf_error(cf, "a duplicate listen %s in one server", lo->addr.text);
    for (int i = 1; i < n; i++) {
        int64_t v;
        if (strcmp(w[i], "default_server") == 0 || strcmp(w[i], "default") == 0)
            lo->default_server = 1;
        else if (strcmp(w[i], "reuseport") == 0)
            lo->addr.reuseport = 1;
        else if (strcmp(w[i], "ssl") == 0 && !PORTIER_WITH_SSL) /* nginx: "requires" */
            return pt_conf_error(
                cf,
                "listen %s: the \"ssl\" parameter needs the ssl module, which "
                "this portier was built without (build with -DPORTIER_WITH_SSL=ON)",
                w[0]);
        else if (strcmp(w[i], "ssl") == 0)
            lo->addr.ssl = 1;
        else if (strncmp(w[i], "backlog=", 8) == 0 && pt_parse_int(w[i] + 8, &v) == PT_OK &&
                 v > 0 && v <= 65535)
            lo->addr.backlog = (int)v;
        else
            return pt_conf_error(cf, "invalid listen option \"%s\"", w[i]);
    }
    return PT_OK;
}

static int set_server_name(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct pt_http_srv_conf *sc = conf;
    struct srv_extra *x = extra(sc);

    if (grow(cf, (void **)&x->names, x->nnames, sizeof(char *)) != PT_OK)
        return PT_ERROR;
    x->names[x->nnames++] = pt_pstrdup(cf->pool, cf->value);
    if (sc->server_name == NULL)
        sc->server_name = x->names[0];
    return PT_OK;
}

static int set_header_buffers(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct pt_http_srv_conf *sc = conf;
    char *w[2];

    if (pt_conf_split(cf, cf->value, w, 2) != 2 ||
        pt_parse_int(w[0], &sc->large_header_num) != PT_OK ||
        pt_parse_size(w[1], &sc->large_header_size) != PT_OK || sc->large_header_num < 1 ||
        sc->large_header_size < 256)
        return pt_conf_error(
            cf, "\"large_client_header_buffers\" takes \"NUMBER SIZE\" (like \"4 8k\")");
    return PT_OK;
}

static int set_real_ip_from(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct pt_http_loc_conf *lc = conf;
    int n = lc->nreal_ip_from == PT_CONF_UNSET ? 0 : lc->nreal_ip_from;

    if (grow(cf, (void **)&lc->real_ip_from, n, sizeof(struct pt_cidr)) != PT_OK)
        return PT_ERROR;
    if (pt_cidr_parse(cf->value, &lc->real_ip_from[n]) != PT_OK)
        return pt_conf_error(cf, "invalid address \"%s\" (use IP or IP/BITS)", cf->value);
    lc->nreal_ip_from = n + 1;
    return PT_OK;
}

/* nginx's resolver serves its own asynchronous lookups; portier's helper process resolves
 * with the system's resolver instead, so the directive has nothing to set.  It is accepted
 * so that an nginx configuration passes -t, and warned about so that nobody believes it. */
static int set_resolver(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    int64_t ms;

    pt_unused(conf);
    if (strcmp(d->name, "resolver_timeout") == 0) {
        if (pt_parse_msec(cf->value, &ms) != PT_OK)
            return pt_conf_error(cf,
                                 "invalid time \"%s\" for \"resolver_timeout\" (use a time "
                                 "like 30s)",
                                 cf->value);
        pt_conf_warn(cf, "\"resolver_timeout\" is ignored: portier uses the system resolver "
                         "(see \"resolver\")");
        return PT_OK;
    }
    pt_conf_warn(cf,
                 "\"resolver %s\" is ignored: portier resolves names with the system "
                 "resolver (/etc/resolv.conf); for an upstream name that changes, write "
                 "server = [\"NAME:PORT resolve\"] in the upstream, re-resolved every "
                 "resolve_interval (default 30s)",
                 cf->value);
    return PT_OK;
}

/* nginx's tcp_nopush corks the socket so that a response header leaves with the file's
 * first bytes; portier's sendfile path does that at every response (MSG_MORE), so either
 * value is taken and there is nothing to set. */
static int set_tcp_nopush(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    pt_unused(d);
    pt_unused(conf);
    if (strcmp(cf->value, "on") != 0 && strcmp(cf->value, "off") != 0 &&
        strcmp(cf->value, "true") != 0 && strcmp(cf->value, "false") != 0)
        return pt_conf_error(cf, "invalid value \"%s\" for \"tcp_nopush\": use on or off",
                             cf->value);
    return PT_OK;
}

/* --- blocks --- */

/* Checks the named location <lc> against the server's others.  PT_OK, PT_DECLINED for a
 * duplicate, or PT_ERROR after reporting an empty name. */
static int named_location_add(struct pt_conf *cf, struct srv_extra *x, struct pt_http_loc_conf *lc,
                              const struct pt_conf_setting *path)
{
    if (lc->name[1] == '\0')
        return pt_conf_error_at(cf, path, "a named location needs a name: path = \"@NAME\"");
    for (int i = 0; i < x->nlocs; i++)
        if (strcmp(x->locs[i]->name, lc->name) == 0)
            return PT_DECLINED;
    return PT_OK;
}

int pt_http_nested_level(struct pt_conf *cf, void **parent, void ***arr)
{
    struct pt_http_srv_conf *sc = cf->conf->srv_conf[pt_http_module.index];
    struct srv_extra *x = extra(sc);
    struct pt_http_loc_conf *lc;

    if (pt_conf_create_level(cf, PT_LOC_CONF, arr) != PT_OK)
        return PT_ERROR;
    lc = (*arr)[pt_http_module.index];
    lc->name = "if";
    lc->loc_conf = *arr;
    lc->parent = parent;
    if (grow(cf, (void **)&x->locs, x->nlocs, sizeof(lc)) != PT_OK)
        return PT_ERROR;
    x->locs[x->nlocs++] = lc;
    return PT_OK;
}

struct pt_http_loc_conf *pt_http_named_location(struct pt_request *r, struct pt_str name)
{
    struct srv_extra *x = extra(r->server->srv_conf[pt_http_module.index]);

    for (int i = 0; i < x->nlocs; i++)
        if (x->locs[i]->name[0] == '@' && pt_str_eq(name, x->locs[i]->name))
            return x->locs[i];
    return NULL;
}

/* "CODE ... [=[RESPONSE]] URI". */
static int set_error_page(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct pt_http_loc_conf *lc = conf;
    char *w[32];
    int n = pt_conf_split(cf, cf->value, w, (int)pt_nelems(w)), overwrite = 0, last, have;
    struct pt_error_page *a;

    pt_unused(d);
    if (n < 2)
        return pt_conf_error(cf,
                             "invalid \"error_page\" \"%s\": use \"CODE ... [=[RESPONSE]] "
                             "URI\"",
                             cf->value);
    last = n - 1;
    if (w[last - 1][0] == '=') {
        char *end;
        long v = w[last - 1][1] ? strtol(w[last - 1] + 1, &end, 10) : -1;
        if (w[last - 1][1] && (*end || v < 100 || v > 599))
            return pt_conf_error(cf, "invalid response \"%s\" in \"error_page\"", w[last - 1]);
        overwrite = (int)v;
        last--;
    } else if (w[last - 1][0] != '\0' && w[last][0] == '=') {
        return pt_conf_error(cf, "invalid \"error_page\" \"%s\"", cf->value);
    }
    have = lc->nerror_pages == PT_CONF_UNSET ? 0 : lc->nerror_pages;
    a = pt_palloc(cf->pool, (size_t)(have + last) * sizeof(*a));
    if (a == NULL)
        return pt_conf_error(cf, "out of memory");
    if (have)
        memcpy(a, lc->error_pages, (size_t)have * sizeof(*a));
    for (int i = 0; i < last; i++) {
        char *end;
        long v = strtol(w[i], &end, 10);
        if (*end || v < 300 || v > 599)
            return pt_conf_error(cf, "value \"%s\" must be between 300 and 599 in \"error_page\"",
                                 w[i]);
        a[have + i] = (struct pt_error_page){(int)v, overwrite, w[n - 1], NULL};
        a[have + i].uri = pt_template_compile(cf, w[n - 1], PT_ESCAPE_NONE);
        if (a[have + i].uri == NULL)
            return PT_ERROR;
    }
    lc->error_pages = a;
    lc->nerror_pages = have + last;
    return PT_OK;
}

static int read_location(struct pt_conf *cf, const struct pt_conf_setting *g)
{
    static const char *const skip[] = {"path", NULL};
    struct pt_http_srv_conf *sc = cf->conf->srv_conf[pt_http_module.index];
    struct srv_extra *x = extra(sc);
    const struct pt_conf_setting *path = pt_conf_setting_member(g, "path");
    struct pt_conf_ctx ctx = {cf->conf->main_conf, cf->conf->srv_conf, NULL};
    struct pt_http_loc_conf *lc;
    char err[512];
    int rc;

    if (path == NULL || pt_conf_setting_kind(path) != PT_CONF_STRING)
        return pt_conf_error_at(cf, g, "location needs path = \"[=|^~|~|~*] PATTERN\"");
    if (pt_conf_create_level(cf, PT_LOC_CONF, &ctx.loc_conf) != PT_OK)
        return PT_ERROR;
    lc = ctx.loc_conf[pt_http_module.index];
    lc->name = pt_pstrdup(cf->pool, pt_conf_setting_string(path));
    lc->loc_conf = ctx.loc_conf;
    if (pt_conf_read_block(cf, g, PT_CTX_LOC, &ctx, skip) != PT_OK)
        return PT_ERROR;
    /* A named location ("@fallback") is reached by error_page only, never by a URI. */
    rc = lc->name[0] == '@' ? named_location_add(cf, x, lc, path)
                            : pt_locations_add(sc->locations, lc->name, lc, err, sizeof(err));
    if (rc == PT_DECLINED)
        return pt_conf_error_at(cf, path, "duplicate location \"%s\"", lc->name);
    if (rc != PT_OK)
        return pt_conf_error_at(cf, path, "invalid location \"%s\": %s", lc->name, err);
    if (grow(cf, (void **)&x->locs, x->nlocs, sizeof(lc)) != PT_OK)
        return PT_ERROR;
    x->locs[x->nlocs++] = lc;
    return PT_OK;
}

static int location_block(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    return pt_conf_each_group(cf, cf->setting, read_location);
}

static void free_locations(void *p)
{
    pt_locations_free(p);
}

static int read_server(struct pt_conf *cf, const struct pt_conf_setting *g)
{
    struct pt_http_main_conf *mc = cf->conf->main_conf[pt_http_module.index];
    struct pt_conf_ctx ctx = {cf->conf->main_conf, NULL, NULL};
    struct pt_http_server *s = pt_palloc(cf->pool, sizeof(*s));
    struct pt_http_srv_conf *sc;
    struct pt_http_loc_conf *lc;

    if (s == NULL || pt_conf_create_level(cf, PT_SRV_CONF, &ctx.srv_conf) != PT_OK ||
        pt_conf_create_level(cf, PT_LOC_CONF, &ctx.loc_conf) != PT_OK)
        return pt_conf_error(cf, "out of memory");
    s->srv_conf = ctx.srv_conf;
    s->loc_conf = ctx.loc_conf;
    s->file = pt_pstrdup(cf->pool, pt_conf_setting_file(cf, g));
    s->line = pt_conf_setting_line(g);
    s->setting = g;
    sc = ctx.srv_conf[pt_http_module.index];
    sc->server = s;
    sc->locations = pt_locations_create();
    if (sc->locations == NULL || pt_pool_cleanup(cf->pool, free_locations, sc->locations) != PT_OK)
        return pt_conf_error(cf, "out of memory");
    lc = ctx.loc_conf[pt_http_module.index];
    lc->name = "";
    lc->loc_conf = ctx.loc_conf;
    if (grow(cf, (void **)&mc->servers, mc->nservers, sizeof(s)) != PT_OK)
        return PT_ERROR;
    mc->servers[mc->nservers++] = s;
    return pt_conf_read_block(cf, g, PT_CTX_SRV, &ctx, NULL);
}

static int server_block(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    return pt_conf_each_group(cf, cf->setting, read_server);
}

struct pt_str (*pt_http_uri_type)(struct pt_request *r);

struct pt_str pt_http_text_type(struct pt_request *r)
{
    return pt_http_uri_type ? pt_http_uri_type(r) : PT_STR("text/plain");
}

struct pt_str pt_http_redirect_location(struct pt_request *r, struct pt_str loc)
{
    struct pt_http_loc_conf *lc = r->loc_conf[pt_http_module.index];
    struct pt_http_srv_conf *sc = r->server->srv_conf[pt_http_module.index];
    struct pt_str scheme, host, port;
    size_t len;
    char *p;
    int dflt, v6;

    if (loc.len == 0 || loc.p[0] != '/' || !lc->absolute_redirect)
        return loc;
    if (pt_var_value(r, "scheme", &scheme) != PT_OK ||
        pt_var_value(r, "server_port", &port) != PT_OK)
        return PT_NULL_STR;
    if (lc->server_name_in_redirect && sc->server_name && sc->server_name[0])
        host = pt_str_c(sc->server_name);
    else if (r->h.host.len == 0 || pt_var_value(r, "host", &host) != PT_OK)
        /* No Host (HTTP/1.0): the address the connection reached, as nginx. */
        if (pt_var_value(r, "server_addr", &host) != PT_OK)
            return PT_NULL_STR;
    dflt = !lc->port_in_redirect || pt_str_eq(port, pt_str_eq(scheme, "https") ? "443" : "80");
    v6 = memchr(host.p, ':', host.len) != NULL && host.p[0] != '[';
    len = scheme.len + 3 + host.len + 2 + 1 + port.len + loc.len;
    p = pt_palloc(r->pool, len + 1);
    if (p == NULL)
        return PT_NULL_STR;
    len = (size_t)snprintf(p, len + 1, "%.*s://%s%.*s%s%s%.*s%.*s", (int)scheme.len, scheme.p,
                           v6 ? "[" : "", (int)host.len, host.p, v6 ? "]" : "", dflt ? "" : ":",
                           dflt ? 0 : (int)port.len, port.p, (int)loc.len, loc.p);
    return (struct pt_str){p, len};
}

/* The answer of nginx's auto_redirect: 301 to the location's path with its slash (see
 * pt_http_redirect_location), the query kept. */
static int auto_redirect(struct pt_request *r)
{
    struct pt_http_loc_conf *lc = r->loc_conf[pt_http_module.index];
    struct pt_str target = pt_str_c(lc->name + 2); /* after "= " */
    size_t len = target.len + 2 + r->args.len;
    char *path = pt_palloc(r->pool, len + 1);
    struct pt_str loc;

    if (path == NULL)
        return PT_ERROR;
    len = (size_t)snprintf(path, len + 1, "%.*s/%s%.*s", (int)target.len, target.p,
                           r->h.has_query ? "?" : "", (int)r->args.len, r->args.p);
    loc = pt_http_redirect_location(r, (struct pt_str){path, len});
    if (loc.p == NULL || pt_header_add(r, &r->out, PT_STR("Location"), loc) != PT_OK)
        return PT_ERROR;
    return 301;
}

/* The path of the location spec <name> without its modifier ("= /x", "=/x", "^~ /x",
 * "/x"), or NULL for a regex location. */
static const char *loc_path(const char *name)
{
    if (name[0] == '~')
        return NULL;
    if (name[0] == '^' && name[1] == '~')
        name += 2;
    else if (name[0] == '=')
        name++;
    return name + strspn(name, " ");
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* True when one of the <n> sorted paths <paths> is the <len> bytes at <p>. */
static int has_path(const char **paths, int n, const char *p, size_t len)
{
    int lo = 0, hi = n;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strncmp(paths[mid], p, len);
        if (c == 0 && paths[mid][len] != '\0')
            c = 1;
        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* An exact location "= /app" that answers with the redirect, for the auto_redirect location
 * <lc> ("/app/", merged): a copy of it, so that it keeps its access rules and timeouts. */
static int add_redirect_location(struct pt_conf *cf, struct pt_http_srv_conf *sc,
                                 struct pt_http_loc_conf *lc, const char *path, size_t len)
{
    int nmod = pt_modules_count();
    void **arr = pt_palloc(cf->pool, (size_t)(nmod + 1) * sizeof(void *));
    struct pt_http_loc_conf *rlc = pt_palloc(cf->pool, sizeof(*rlc));

    if (rlc == NULL || arr == NULL)
        return pt_conf_error(cf, "out of memory");
    *rlc = *lc;
    rlc->loc_conf = memcpy(arr, lc->loc_conf, (size_t)(nmod + 1) * sizeof(void *));
    rlc->loc_conf[pt_http_module.index] = rlc;
    rlc->handler = auto_redirect;
    rlc->auto_redirect = 0;
    /* "= " and the path without its slash: the handler reads the path back from it. */
    rlc->name = pt_palloc(cf->pool, len + 2);
    if (rlc->name == NULL)
        return pt_conf_error(cf, "out of memory");
    snprintf(rlc->name, len + 2, "= %.*s", (int)(len - 1), path);
    if (pt_locations_add(sc->locations, rlc->name, rlc, NULL, 0) == PT_ERROR)
        return pt_conf_error(cf, "out of memory");
    return PT_OK;
}

/* nginx's auto_redirect for the locations of <x>: "/app/" with proxy_pass makes "/app"
 * answer 301 to "/app/", unless a location of the server (exact, prefix or ^~) has the path
 * "/app" itself.  The paths are sorted once, so that many locations stay O(n log n). */
static int add_auto_redirects(struct pt_conf *cf, struct pt_http_srv_conf *sc, struct srv_extra *x)
{
    const char **paths;
    int n = 0, any = 0;

    for (int i = 0; i < x->nlocs; i++)
        any |= x->locs[i]->auto_redirect;
    if (!any)
        return PT_OK;
    paths = pt_palloc(cf->pool, (size_t)x->nlocs * sizeof(*paths));
    if (paths == NULL)
        return pt_conf_error(cf, "out of memory");
    for (int i = 0; i < x->nlocs; i++)
        if ((paths[n] = loc_path(x->locs[i]->name)) != NULL)
            n++;
    qsort(paths, (size_t)n, sizeof(*paths), cmp_path);
    for (int i = 0; i < x->nlocs; i++) {
        struct pt_http_loc_conf *lc = x->locs[i];
        const char *path = loc_path(lc->name);
        size_t len = path ? strlen(path) : 0;

        if (!lc->auto_redirect || len < 2 || has_path(paths, n, path, len - 1))
            continue;
        if (add_redirect_location(cf, sc, lc, path, len) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

static int merge_server(struct pt_conf *cf, struct pt_http_main_conf *mc, struct pt_http_server *s)
{
    struct pt_http_srv_conf *sc = s->srv_conf[pt_http_module.index];
    struct srv_extra *x = extra(sc);

    if (pt_conf_merge_level(cf, PT_SRV_CONF, mc->srv_conf, s->srv_conf) != PT_OK ||
        pt_conf_merge_level(cf, PT_LOC_CONF, mc->loc_conf, s->loc_conf) != PT_OK)
        return PT_ERROR;
    /* Locations first, then if blocks' levels, each after the level it inherits from (an
     * outer block's level was made before an inner one's). */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < x->nlocs; i++) {
            void **from = x->locs[i]->parent ? x->locs[i]->parent : s->loc_conf;
            if ((x->locs[i]->parent != NULL) == pass &&
                pt_conf_merge_level(cf, PT_LOC_CONF, from, x->locs[i]->loc_conf) != PT_OK)
                return PT_ERROR;
        }
    if (add_auto_redirects(cf, sc, x) != PT_OK)
        return PT_ERROR;
    /* Once, here in the master, rather than in each worker's first lookup. */
    pt_locations_build(sc->locations);
    return PT_OK;
}

static void free_names(void *p)
{
    pt_names_free(p);
}

/* Finds or creates the cycle's listener for <lo>'s address. */
static struct pt_listen *listener_for(struct pt_conf *cf, struct listen_opt *lo)
{
    struct pt_listen *ls, **tail = &cf->cycle->listens;
    struct pt_http_addr *a;

    for (ls = cf->cycle->listens; ls; tail = &ls->next, ls = ls->next)
        if (ls->addrlen == lo->addr.addrlen && memcmp(&ls->addr, &lo->addr.addr, ls->addrlen) == 0)
            return ls;
    ls = pt_palloc(cf->pool, sizeof(*ls));
    a = pt_palloc(cf->pool, sizeof(*a));
    if (ls == NULL || a == NULL || (a->names = pt_names_create()) == NULL ||
        pt_pool_cleanup(cf->pool, free_names, a->names) != PT_OK)
        return NULL;
    *ls = lo->addr;
    ls->next = NULL;
    ls->servers = a;
    *tail = ls;
    return ls;
}

static int add_server_to_listen(struct pt_conf *cf, struct pt_http_server *s, struct listen_opt *lo)
{
    struct pt_http_srv_conf *sc = s->srv_conf[pt_http_module.index];
    struct srv_extra *x = extra(sc);
    struct pt_listen *ls = listener_for(cf, lo);
    struct pt_http_addr *a;
    char err[512];

    if (ls == NULL)
        return pt_conf_error(cf, "out of memory");
    a = ls->servers;
    ls->reuseport |= lo->addr.reuseport;
    ls->ssl |= lo->addr.ssl;
    if (lo->addr.backlog != 511)
        ls->backlog = lo->addr.backlog;
    if (lo->default_server) {
        if (a->explicit_default && a->default_server != s)
            return pt_conf_error_at(cf, s->setting, "a duplicate default server for %s", ls->text);
        a->default_server = s;
        a->explicit_default = 1;
    } else if (a->default_server == NULL) {
        a->default_server = s;
    }
    for (int i = 0; i < x->nnames; i++) {
        int rc = pt_names_add(a->names, x->names[i], s, err, sizeof(err));
        if (rc == PT_DECLINED)
            pt_log(PT_LOG_WARN, "%s:%d: conflicting server name \"%s\" on %s, ignored", s->file,
                   s->line, x->names[i], ls->text);
        else if (rc != PT_OK)
            return pt_conf_error_at(cf, s->setting, "invalid server name \"%s\": %s", x->names[i],
                                    err);
    }
    return PT_OK;
}

static int build_listens(struct pt_conf *cf, struct pt_http_main_conf *mc)
{
    cf->setting = NULL;
    for (int i = 0; i < mc->nservers; i++) {
        struct pt_http_server *s = mc->servers[i];
        struct srv_extra *x = extra(s->srv_conf[pt_http_module.index]);
        struct listen_opt def = {.addr = {.backlog = 511, .fd = -1}};

        if (x->nlistens == 0) {
            /* nginx's default: port 80 as root, 8000 otherwise. */
            pt_listen_parse_addr(geteuid() == 0 ? "80" : "8000", &def.addr);
            if (add_server_to_listen(cf, s, &def) != PT_OK)
                return PT_ERROR;
        }
        for (int j = 0; j < x->nlistens; j++)
            if (add_server_to_listen(cf, s, &x->listens[j]) != PT_OK)
                return PT_ERROR;
    }
    return PT_OK;
}

static int http_block(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct pt_cycle *c = cf->cycle;
    struct pt_http_main_conf *mc = conf;
    struct pt_conf_ctx ctx = {c->main_conf, NULL, NULL};

    if (mc->srv_conf)
        return pt_conf_error(cf, "\"http\" is duplicate");
    if (pt_conf_setting_kind(cf->setting) != PT_CONF_GROUP)
        return pt_conf_error(cf, "\"http\" takes a group { ... }");
    if (pt_conf_create_level(cf, PT_SRV_CONF, &mc->srv_conf) != PT_OK ||
        pt_conf_create_level(cf, PT_LOC_CONF, &mc->loc_conf) != PT_OK)
        return PT_ERROR;
    ctx.srv_conf = mc->srv_conf;
    ctx.loc_conf = mc->loc_conf;
    ((struct pt_http_loc_conf *)ctx.loc_conf[pt_http_module.index])->loc_conf = ctx.loc_conf;
    if (pt_conf_read_block(cf, cf->setting, PT_CTX_HTTP, &ctx, NULL) != PT_OK)
        return PT_ERROR;
    /* Merge after the whole block is read: a default given after a server still applies. */
    {
        struct pt_http_srv_conf *dflt = mc->srv_conf[pt_http_module.index];
        struct pt_http_loc_conf *dloc = mc->loc_conf[pt_http_module.index];
        merge_srv_conf(cf, create_srv_conf(cf), dflt);
        merge_loc_conf(cf, create_loc_conf(cf), dloc);
    }
    for (int i = 0; i < mc->nservers; i++)
        if (merge_server(cf, mc, mc->servers[i]) != PT_OK)
            return PT_ERROR;
    return build_listens(cf, mc);
}

static int blank(char c)
{
    return c == ' ' || c == '\t';
}

int pt_http_header_directive(struct pt_conf *cf, const char *s, struct pt_str *name, char **value,
                             int *always)
{
    const char *n, *v, *end;

    while (blank(*s))
        s++;
    for (n = s; *s && !blank(*s); s++)
        ;
    if (*s == '\0' || !pt_http_is_token(n, (size_t)(s - n)))
        return PT_ERROR;
    for (v = s; blank(*v); v++)
        ;
    end = v + strlen(v);
    while (end > v && blank(end[-1]))
        end--;
    if (always && end - v >= 6 && strncmp(end - 6, "always", 6) == 0 &&
        (end - 6 == v || blank(end[-7]))) {
        *always = 1;
        for (end -= 6; end > v && blank(end[-1]);)
            end--;
    }
    if (end - v >= 2 && (*v == '"' || *v == '\'') && end[-1] == *v)
        v++, end--;
    if (memchr(v, '\r', (size_t)(end - v)) || memchr(v, '\n', (size_t)(end - v)))
        return PT_ERROR;
    *name = (struct pt_str){pt_pstrndup(cf->pool, n, (size_t)(s - n)), (size_t)(s - n)};
    *value = pt_pstrndup(cf->pool, v, (size_t)(end - v));
    return name->p && *value ? PT_OK : PT_ERROR;
}

int pt_http_server_ssl(struct pt_http_server *s, const char **listen)
{
    struct srv_extra *x = extra(s->srv_conf[pt_http_module.index]);

    for (int i = 0; i < x->nlistens; i++) {
        if (x->listens[i].addr.ssl) {
            *listen = x->listens[i].addr.text;
            return 1;
        }
    }
    return 0;
}

int pt_http_foreach_loc(struct pt_conf *cf, int (*fn)(struct pt_conf *cf, void **loc_conf))
{
    struct pt_http_main_conf *mc = cf->cycle->main_conf[pt_http_module.index];

    for (int i = 0; i < mc->nservers; i++) {
        struct pt_http_server *s = mc->servers[i];
        struct srv_extra *x = extra(s->srv_conf[pt_http_module.index]);
        if (fn(cf, s->loc_conf) != PT_OK)
            return PT_ERROR;
        for (int j = 0; j < x->nlocs; j++)
            if (fn(cf, x->locs[j]->loc_conf) != PT_OK)
                return PT_ERROR;
    }
    return PT_OK;
}

struct pt_module pt_http_module = {
    .name = "http",
    .directives = http_directives,
    .create_main_conf = create_main_conf,
    .create_srv_conf = create_srv_conf,
    .merge_srv_conf = merge_srv_conf,
    .create_loc_conf = create_loc_conf,
    .merge_loc_conf = merge_loc_conf,
};
