/*
 * upstream.c: the upstream module: its directive table and its configuration, `upstream`
 * groups and their `server` peers with their balancing directives (the algorithms are in
 * lb.c).  The rest of the module: the peers' shared-memory state (shared.c), passive
 * health, the status view and choosing a peer (passive.c), connections and the keepalive
 * pool (keepalive.c), and the helper's work, active checks (health.c) and re-resolution
 * (resolve.c).
 */
#include "modules/upstream/upstream.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cycle.h"
#include "modules/upstream/health.h"
#include "worker/http.h"
#include "worker/listen.h"
#include "core/module.h"
#include "core/pool.h"
#include "modules/upstream/resolve.h"
#include "modules/upstream/upstream_internal.h"
#include "worker/var.h"

static int upstream_block(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_server(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_hash(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_random(struct pt_conf *cf, const struct pt_directive *d, void *conf);

static const struct pt_directive upstream_directives[] = {
    {"upstream", PT_CTX_HTTP, PT_DIR_BLOCK, PT_MAIN_CONF, upstream_block, 0, NULL,
     "named groups of backend servers: upstream = { app = { server = [...]; }; }"},
    {"server", PT_CTX_UPS, PT_DIR_MULTI, PT_UPS_CONF, set_server, 0, NULL,
     "\"HOST:PORT [weight=N] [max_fails=N] [fail_timeout=TIME] [max_conns=N] [backup] [down] "
     "[slow_start=TIME] [resolve]\"; max_conns counts the connections of all workers; "
     "slow_start ramps the weight up from 0 over TIME after the server comes back; resolve: "
     "the helper process re-resolves HOST every resolve_interval and workers follow without "
     "a reload"},
    {"health_check", PT_CTX_UPS, 0, PT_UPS_CONF, pt_health_set, 0, NULL,
     "active checks run once for all workers by the helper process: \"[type=http|tcp] [tls] "
     "[uri=/PATH] [method=GET|HEAD] [status=200-399] [body=REGEX] [host=NAME] [port=N] "
     "[interval=5s] [timeout=2s] [rise=2] [fall=3] [mandatory]\"; a server is down after fall "
     "failed checks in a row and up again after rise passed ones; mandatory: no requests "
     "before a first pass"},
    {"resolve_interval", PT_CTX_UPS, 0, PT_UPS_CONF, pt_conf_set_msec,
     offsetof(struct pt_upstream, resolve_interval), NULL,
     "how often the helper re-resolves the names of `resolve` servers, with the system's "
     "resolver (default 30s)"},
    {"least_conn", PT_CTX_UPS, 0, PT_UPS_CONF, pt_conf_set_flag,
     offsetof(struct pt_upstream, least_conn), NULL,
     "send to the server with the fewest active connections (all workers counted) per weight; "
     "ties by weighted round robin"},
    {"ip_hash", PT_CTX_UPS, 0, PT_UPS_CONF, pt_conf_set_flag, offsetof(struct pt_upstream, ip_hash),
     NULL,
     "send a client to the same server, by its IPv4 /24 or IPv6 address; the next one in the "
     "hash sequence while it is unavailable"},
    {"hash", PT_CTX_UPS, 0, PT_UPS_CONF, set_hash, 0, NULL,
     "\"KEY [consistent]\": send by a hash of KEY (variables allowed, e.g. \"$arg_user\"); "
     "consistent: on a ketama ring, so removing a server moves only its keys"},
    {"random", PT_CTX_UPS, 0, PT_UPS_CONF, set_random, 0, NULL,
     "\"on\" (or true): a server at random, by weight; \"two\" or \"two least_conn\": of two "
     "servers at random, the one with fewer active connections"},
    {"keepalive", PT_CTX_UPS, 0, PT_UPS_CONF, pt_conf_set_num,
     offsetof(struct pt_upstream, keepalive), NULL,
     "idle upstream connections each worker keeps (default 0: none)"},
    {"keepalive_timeout", PT_CTX_UPS, 0, PT_UPS_CONF, pt_conf_set_msec,
     offsetof(struct pt_upstream, keepalive_timeout), NULL,
     "how long an idle upstream connection is kept (default 60s)"},
    {"keepalive_requests", PT_CTX_UPS, 0, PT_UPS_CONF, pt_conf_set_num,
     offsetof(struct pt_upstream, keepalive_requests), NULL,
     "requests sent on one upstream connection (default 1000)"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static void *create_main_conf(struct pt_conf *cf)
{
    return pt_palloc(cf->pool, sizeof(struct ups_main_conf));
}

static struct ups_main_conf *main_conf(struct pt_conf *cf)
{
    return cf->cycle->main_conf[pt_upstream_module.index];
}

void (*pt_upstream_observe)(struct pt_peer *peer, enum pt_upstream_step step, int value,
                            uint64_t ms);

struct pt_upstream **pt_upstream_groups(struct pt_cycle *cycle, int *n)
{
    struct ups_main_conf *mc = cycle->main_conf[pt_upstream_module.index];

    *n = mc ? mc->nups : 0;
    return mc ? mc->ups : NULL;
}

struct pt_upstream *pt_upstream_find(struct pt_conf *cf, const char *name)
{
    struct ups_main_conf *mc = main_conf(cf);

    for (int i = 0; i < mc->nups; i++)
        if (strcmp(mc->ups[i]->name, name) == 0)
            return mc->ups[i];
    return NULL;
}

static struct pt_upstream *add_upstream(struct pt_conf *cf, const char *name)
{
    struct ups_main_conf *mc = main_conf(cf);
    struct pt_upstream *u = pt_palloc(cf->pool, sizeof(*u));

    if (u == NULL)
        return NULL;
    if (mc->nups == mc->cap) {
        int cap = mc->cap ? 2 * mc->cap : 8;
        struct pt_upstream **a = pt_palloc(cf->pool, (size_t)cap * sizeof(*a));
        if (a == NULL)
            return NULL;
        if (mc->nups)
            memcpy(a, mc->ups, (size_t)mc->nups * sizeof(*a));
        mc->ups = a;
        mc->cap = cap;
    }
    u->name = pt_pstrdup(cf->pool, name);
    u->keepalive = PT_CONF_UNSET;
    u->keepalive_timeout = PT_CONF_UNSET;
    u->keepalive_requests = PT_CONF_UNSET;
    u->least_conn = PT_CONF_UNSET;
    u->ip_hash = PT_CONF_UNSET;
    u->random = PT_CONF_UNSET;
    u->resolve_interval = PT_CONF_UNSET;
    mc->ups[mc->nups++] = u;
    return u;
}

int pt_resolve_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len, char *err,
                        size_t errlen)
{
    char host[256], *colon;
    const char *port;
    struct addrinfo hints = {0}, *res = NULL;
    int rc;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - s) >= sizeof(host)) {
            snprintf(err, errlen, "invalid address \"%s\"", s);
            return PT_ERROR;
        }
        snprintf(host, sizeof(host), "%.*s", (int)(close - s - 1), s + 1);
        port = close + 2;
    } else {
        snprintf(host, sizeof(host), "%s", s);
        colon = strrchr(host, ':');
        if (colon == NULL) {
            port = "80";
        } else {
            *colon = '\0';
            port = s + (colon - host) + 1;
        }
    }
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "host not found in \"%s\": %s", s, gai_strerror(rc));
        return PT_ERROR;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return PT_OK;
}

static struct pt_peer *add_peer(struct pt_conf *cf, struct pt_upstream *u, const char *addr)
{
    struct pt_peer *p = pt_palloc(cf->pool, (size_t)(u->npeers + 1) * sizeof(*p));
    char err[300];

    if (p == NULL)
        return NULL;
    if (u->npeers)
        memcpy(p, u->peers, (size_t)u->npeers * sizeof(*p));
    u->peers = p;
    p = &u->peers[u->npeers];
    if (pt_resolve_hostport(addr, &p->addr, &p->addrlen, err, sizeof(err)) != PT_OK) {
        pt_conf_error(cf, "%s", err);
        return NULL;
    }
    pt_sockaddr_text((struct sockaddr *)&p->addr, p->name, sizeof(p->name));
    snprintf(p->host, sizeof(p->host), "%s", addr);
    p->weight = 1;
    p->max_fails = 1;
    p->fail_timeout = 10000;
    u->npeers++;
    return p;
}

static int peer_option(struct pt_conf *cf, struct pt_peer *p, const char *opt)
{
    int64_t v;

    if (strcmp(opt, "backup") == 0)
        p->backup = 1;
    else if (strcmp(opt, "resolve") == 0)
        p->resolve = 1;
    else if (strcmp(opt, "down") == 0)
        p->down = 1;
    else if (strncmp(opt, "weight=", 7) == 0 && pt_parse_int(opt + 7, &v) == PT_OK && v > 0 &&
             v <= 1000)
        p->weight = (int)v;
    else if (strncmp(opt, "max_fails=", 10) == 0 && pt_parse_int(opt + 10, &v) == PT_OK &&
             v <= 1000)
        p->max_fails = (int)v;
    else if (strncmp(opt, "max_conns=", 10) == 0 && pt_parse_int(opt + 10, &v) == PT_OK &&
             v <= 1000000)
        p->max_conns = (int)v;
    else if (strncmp(opt, "fail_timeout=", 13) == 0 && pt_parse_msec(opt + 13, &v) == PT_OK)
        p->fail_timeout = v;
    else if (strncmp(opt, "slow_start=", 11) == 0 && pt_parse_msec(opt + 11, &v) == PT_OK)
        p->slow_start = v;
    else
        return pt_conf_error(cf, "invalid server option \"%s\"", opt);
    return PT_OK;
}

static int set_server(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct pt_upstream *u = conf;
    char *w[8];
    int n = pt_conf_split(cf, cf->value, w, 8);
    struct pt_peer *p;

    if (n < 1)
        return pt_conf_error(cf, "\"server\" takes \"HOST:PORT [options]\"");
    p = add_peer(cf, u, w[0]);
    if (p == NULL)
        return PT_ERROR;
    for (int i = 1; i < n; i++)
        if (peer_option(cf, p, w[i]) != PT_OK)
            return PT_ERROR;
    if (p->resolve) {
        /* The server is known by its name: addresses come and go under it. */
        if (strlen(w[0]) >= sizeof(p->name))
            return pt_conf_error(cf, "server name \"%s\" is too long for resolve", w[0]);
        snprintf(p->name, sizeof(p->name), "%s", w[0]);
    }
    return PT_OK;
}

/* hash = "KEY [consistent]": KEY is a template, and may hold spaces ("$host $uri"). */
static int set_hash(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct pt_upstream *u = conf;
    const char *v = cf->value;
    size_t len = strlen(v);
    int consistent = len > 11 && strcmp(v + len - 11, " consistent") == 0;

    if (u->hash)
        return pt_conf_error(cf, "\"hash\" is duplicate");
    len -= consistent ? 11 : 0;
    while (len && v[len - 1] == ' ')
        len--;
    if (len == 0)
        return pt_conf_error(cf, "invalid value \"%s\" for \"hash\": use \"KEY [consistent]\"", v);
    u->hash = pt_template_compile(cf, pt_pstrndup(cf->pool, v, len), PT_ESCAPE_NONE);
    if (u->hash == NULL)
        return PT_ERROR;
    u->lb.consistent = consistent;
    return PT_OK;
}

/* random takes a string where nginx takes none or words: "on" (true), "off" (false),
 * "two", "two least_conn" (least_conn is nginx's only way to compare two). */
static int set_random(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct pt_upstream *u = conf;
    const char *v = cf->value;

    if (u->random != PT_CONF_UNSET)
        return pt_conf_error(cf, "\"random\" is duplicate");
    if (strcmp(v, "on") == 0 || strcmp(v, "off") == 0)
        u->random = v[1] == 'n';
    else if (strcmp(v, "two") == 0 || strcmp(v, "two least_conn") == 0)
        u->random = 2;
    else
        return pt_conf_error(cf,
                             "invalid value \"%s\" for \"random\": use true, \"two\" or "
                             "\"two least_conn\"",
                             v);
    return PT_OK;
}

/* Settles the balancing method of <u> (group setting <g>) from its directives. */
static int set_method(struct pt_conf *cf, const struct pt_conf_setting *g, struct pt_upstream *u)
{
    struct pt_lb *lb = &u->lb;
    uint32_t n;

    if ((u->least_conn == 1) + (u->ip_hash == 1) + (u->hash != NULL) + (u->random > 0) > 1)
        return pt_conf_error_at(
            cf, g, "upstream \"%s\" sets more than one of least_conn, ip_hash, hash and random",
            u->name);
    lb->method = u->least_conn == 1 ? PT_LB_LEAST_CONN
                 : u->ip_hash == 1  ? PT_LB_IP_HASH
                 : u->hash          ? PT_LB_HASH
                 : u->random > 0    ? PT_LB_RANDOM
                                    : PT_LB_ROUND_ROBIN;
    lb->two = u->random == 2;
    for (int i = 0; i < u->npeers; i++)
        if (u->peers[i].slow_start && (lb->method == PT_LB_IP_HASH || lb->method == PT_LB_HASH))
            return pt_conf_error_at(cf, g,
                                    "slow_start cannot be used with ip_hash or hash in upstream "
                                    "\"%s\": they map keys to servers by the configured weights",
                                    u->name);
    n = lb->consistent ? pt_lb_ring_size(u->peers, u->npeers) : 0;
    if (n == 0)
        return PT_OK;
    lb->points = pt_palloc(cf->pool, n * sizeof(*lb->points));
    if (lb->points == NULL)
        return pt_conf_error(cf, "out of memory");
    lb->npoints = pt_lb_ring_build(lb->points, u->peers, u->npeers);
    return PT_OK;
}

static int read_group(struct pt_conf *cf, const struct pt_conf_setting *g)
{
    const char *name = pt_conf_setting_name(g);
    struct pt_upstream *u;
    void *saved = cf->block;
    int rc;

    if (pt_conf_setting_kind(g) != PT_CONF_GROUP)
        return pt_conf_error_at(cf, g, "upstream \"%s\" must be a group { server = [...]; }", name);
    if (pt_upstream_find(cf, name))
        return pt_conf_error_at(cf, g, "duplicate upstream \"%s\"", name);
    u = add_upstream(cf, name);
    if (u == NULL)
        return pt_conf_error(cf, "out of memory");
    u->file = pt_conf_setting_file(cf, g);
    if (u->file != cf->file)
        u->file = pt_pstrdup(cf->pool, u->file);
    u->line = pt_conf_setting_line(g);
    cf->block = u;
    rc = pt_conf_read_block(cf, g, PT_CTX_UPS, cf->conf, NULL);
    cf->block = saved;
    if (rc != PT_OK)
        return PT_ERROR;
    if (u->npeers == 0)
        return pt_conf_error_at(cf, g, "no servers in upstream \"%s\"", name);
    for (int i = 0; i < u->npeers && u->check; i++) {
        u->peers[i].checked = 1;
        u->peers[i].mandatory = pt_health_mandatory(u->check);
    }
    return set_method(cf, g, u);
}

static int upstream_block(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    const struct pt_conf_setting *s = cf->setting;

    if (pt_conf_setting_kind(s) != PT_CONF_GROUP)
        return pt_conf_error(
            cf, "\"upstream\" takes a group of named groups: upstream = { app = { ... }; }");
    for (int i = 0; i < pt_conf_setting_count(s); i++)
        if (read_group(cf, pt_conf_setting_elem(s, i)) != PT_OK)
            return PT_ERROR;
    return PT_OK;
}

/* Fills what <u>'s block left unset with the defaults. */
static void merge_upstream(struct pt_conf *cf, struct pt_upstream *u)
{
    pt_conf_merge_int(u->keepalive, PT_CONF_UNSET, 0);
    pt_conf_merge_int(u->keepalive_timeout, PT_CONF_UNSET, 60000);
    pt_conf_merge_int(u->keepalive_requests, PT_CONF_UNSET, 1000);
    pt_conf_merge_int(u->resolve_interval, PT_CONF_UNSET, 30000);
    for (int j = 0; j < u->npeers; j++)
        if (u->peers[j].resolve)
            cf->cycle->need_helper = 1;
    if (u->check)
        cf->cycle->need_helper = 1;
}

struct pt_upstream *pt_upstream_implicit(struct pt_conf *cf, const char *hostport)
{
    struct pt_upstream *u = pt_upstream_find(cf, hostport);

    if (u)
        return u;
    u = add_upstream(cf, hostport);
    if (u == NULL) {
        pt_conf_error(cf, "out of memory");
        return NULL;
    }
    u->implicit = 1;
    u->file = cf->file;
    if (add_peer(cf, u, hostport) == NULL)
        return NULL;
    /* Made after the upstream blocks were merged (proxy_pass is bound later). */
    merge_upstream(cf, u);
    return u;
}

static int merge_upstreams(struct pt_conf *cf)
{
    struct ups_main_conf *mc = main_conf(cf);

    for (int i = 0; i < mc->nups; i++)
        merge_upstream(cf, mc->ups[i]);
    return PT_OK;
}

static int postconfig(struct pt_conf *cf)
{
    struct ups_main_conf *mc = main_conf(cf);

    merge_upstreams(cf);
    if (mc->nups == 0)
        return PT_OK;
    return pt_upstream_zone_add(cf, mc);
}

/* Seeds this worker's random numbers: forked workers would otherwise share one sequence. */
static int init_worker(struct pt_cycle *cycle)
{
    pt_upstream_seed(cycle);
    return PT_OK;
}

/* The helper's work: health checks and re-resolution. */
static int init_helper(struct pt_cycle *cycle)
{
    if (pt_health_start(cycle) != PT_OK)
        return PT_ERROR;
    return pt_resolve_start(cycle);
}

struct pt_module pt_upstream_module = {
    .name = "upstream",
    .directives = upstream_directives,
    .create_main_conf = create_main_conf,
    .postconfig = postconfig,
    .init_worker = init_worker,
    .init_helper = init_helper,
};
