/*
 * upstream.c: the upstream module: `upstream` groups and their `server` peers, their
 * balancing directives (the algorithms are in lb.c), passive health in shared memory, and
 * the per-worker keepalive pool of upstream connections.
 */
#include "upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cycle.h"
#include "health.h"
#include "http.h"
#include "listen.h"
#include "log.h"
#include "module.h"
#include "pool.h"
#include "resolve.h"
#include "shm.h"
#include "shmtx.h"
#include "times.h"
#include "var.h"

#define ZONE_SIZE    (1u << 20)
#define ZONE_VERSION 3    /* 3: health checks, runtime control, resolved addresses */
#define GROUPS_MAX   512  /* group entries in the zone */
#define HASH_KEY_MAX 1024 /* bytes of a hash key that count */

struct ups_main_conf {
    struct pt_upstream **ups;
    int nups, cap;
};

/* A group's shared state: the lock that makes its choices one sequence for all workers. */
struct group_shared {
    char key[88]; /* the group's name */
    struct pt_shmtx lock;
};

/* The zone's root: tables of group and peer states, found again by key after a reload. */
struct zone_root {
    uint32_t ngroups, npeers, peer_cap;
    uint32_t binds; /* configurations bound so far: tells entries still named from orphans */
    struct group_shared groups[GROUPS_MAX];
    struct pt_peer_shared peers[];
};

/* This worker's random numbers (random), seeded apart from the other workers'. */
static uint64_t rng_state;

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

static void merge_upstream(struct pt_conf *cf, struct pt_upstream *u);

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

/* --- shared state --- */

/* Finds the entry keyed <key> among the *<n> entries of <size> bytes at <base> (each starts
 * with its key), else claims the next one (zeroed) and sets *<fresh>; NULL when all <cap>
 * are taken.  Only the master claims entries, so workers never see a half-written key. */
static void *find_entry(void *base, size_t size, uint32_t *n, uint32_t cap, const char *key,
                        int *fresh)
{
    char *e = base;

    for (uint32_t i = 0; i < *n; i++, e += size)
        if (strcmp(e, key) == 0)
            return e;
    if (*n == cap)
        return NULL;
    strcpy(e, key);
    (*n)++;
    *fresh = 1;
    return e;
}

/* Points <u> at its shared state in <t>, creating what a new group or peer needs. */
static int bind_group(struct zone_root *t, struct pt_upstream *u)
{
    char key[sizeof(t->peers[0].key)];
    struct group_shared *g;
    int fresh = 0;

    snprintf(key, sizeof(t->groups[0].key), "%s", u->name);
    g = find_entry(t->groups, sizeof(*g), &t->ngroups, GROUPS_MAX, key, &fresh);
    /* A lock is initialized once, when its entry is claimed: after a reload, workers of
     * the old generation may be holding it. */
    if (g == NULL || (fresh && pt_shmtx_init(&g->lock) != PT_OK))
        return PT_ERROR;
    u->lock = &g->lock;
    for (int j = 0; j < u->npeers; j++) {
        snprintf(key, sizeof(key), "%s/%s", u->name, u->peers[j].name);
        u->peers[j].shared =
            find_entry(t->peers, sizeof(t->peers[0]), &t->npeers, t->peer_cap, key, &fresh);
        if (u->peers[j].shared == NULL)
            return PT_ERROR;
        u->peers[j].shared->bound = t->binds;
        /* Connections counted by workers of a previous generation are theirs to
         * release; a fresh table starts at zero. */
    }
    return PT_OK;
}

/* A server the new configuration no longer names keeps its entry (old workers may still
 * count its connections) but not what an operator or the checks said of it: were it added
 * back later, it starts as configured. */
static void forget_orphans(struct zone_root *t)
{
    for (uint32_t i = 0; i < t->npeers; i++) {
        struct pt_peer_shared *s = &t->peers[i];
        if (s->bound == t->binds)
            continue;
        __atomic_store_n(&s->admin, PT_ADMIN_NONE, __ATOMIC_RELAXED);
        __atomic_store_n(&s->admin_weight, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->health, PT_HEALTH_UNKNOWN, __ATOMIC_RELAXED);
        __atomic_store_n(&s->check_passes, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->check_fails, 0, __ATOMIC_RELAXED);
    }
}

static int zone_init(struct pt_shm_zone *zone, int reused)
{
    struct ups_main_conf *mc = zone->ctx;
    struct zone_root *t = reused ? pt_shm_root(zone) : NULL;

    if (t == NULL) {
        size_t room = ZONE_SIZE - 64 * 1024;
        t = pt_slab_alloc(zone->pool, room);
        if (t == NULL)
            return PT_ERROR;
        t->peer_cap = (uint32_t)((room - sizeof(*t)) / sizeof(t->peers[0]));
        pt_shm_set_root(zone, t);
    }
    t->binds++;
    for (int i = 0; i < mc->nups; i++)
        if (bind_group(t, mc->ups[i]) != PT_OK)
            return PT_ERROR;
    forget_orphans(t);
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
    struct pt_shm_zone *z;

    merge_upstreams(cf);
    if (mc->nups == 0)
        return PT_OK;
    z = pt_cycle_add_zone(cf->cycle, "upstream", ZONE_SIZE, ZONE_VERSION, zone_init, mc);
    if (z == NULL)
        return pt_conf_error(cf, "cannot declare the upstream shared memory zone");
    return PT_OK;
}

/* --- health --- */

void pt_peer_failed(struct pt_upstream *u, struct pt_peer *p)
{
    struct pt_peer_shared *s = p->shared;
    uint64_t now = pt_now_ms();
    uint32_t fails;

    if (s == NULL)
        return;
    __atomic_add_fetch(&s->total_fails, 1, __ATOMIC_RELAXED);
    /* As in nginx, a group of one server never marks it down: there is nothing else to
     * send the request to, so refusing would only turn a blip into an outage. */
    if (p->max_fails == 0 || u->npeers == 1)
        return;
    /* A window older than fail_timeout starts over.  Races between workers here can only
     * lose a count, never mark a healthy peer down.  A window started by a worker that read
     * the clock after us is ahead of our <now>: it is not old. */
    if (now > __atomic_load_n(&s->fail_start_ms, __ATOMIC_RELAXED) + (uint64_t)p->fail_timeout) {
        __atomic_store_n(&s->fail_start_ms, now, __ATOMIC_RELAXED);
        __atomic_store_n(&s->fails, 0, __ATOMIC_RELAXED);
    }
    fails = __atomic_add_fetch(&s->fails, 1, __ATOMIC_RELAXED);
    if (fails >= (uint32_t)p->max_fails) {
        __atomic_store_n(&s->down_until_ms, now + (uint64_t)p->fail_timeout, __ATOMIC_RELAXED);
        /* It comes back when the window ends: slow start ramps from there. */
        __atomic_store_n(&s->recovered_ms, now + (uint64_t)p->fail_timeout, __ATOMIC_RELAXED);
        __atomic_store_n(&s->fails, 0, __ATOMIC_RELAXED);
        pt_log(PT_LOG_WARN,
               "upstream %s server %s temporarily disabled for %lldms after %u failures", u->name,
               p->name, (long long)p->fail_timeout, fails);
    }
}

void pt_peer_succeeded(struct pt_peer *p)
{
    struct pt_peer_shared *s = p->shared;

    if (s && __atomic_load_n(&s->fails, __ATOMIC_RELAXED))
        __atomic_store_n(&s->fails, 0, __ATOMIC_RELAXED);
}

/* The state of <p> at <now> for the status API; *<why> gets what holds it down, else "". */
static const char *peer_state(const struct pt_peer *p, uint64_t now, const char **why)
{
    const struct pt_peer_shared *s = p->shared;
    uint32_t admin = s ? __atomic_load_n(&s->admin, __ATOMIC_RELAXED) : PT_ADMIN_NONE;
    uint32_t health = s ? __atomic_load_n(&s->health, __ATOMIC_RELAXED) : PT_HEALTH_UNKNOWN;

    *why = "";
    if (admin == PT_ADMIN_DRAIN)
        return "draining";
    if (admin == PT_ADMIN_DOWN || (p->down && admin != PT_ADMIN_UP)) {
        *why = admin == PT_ADMIN_DOWN ? "api" : "configuration";
        return "down";
    }
    if (p->checked && health == PT_HEALTH_DOWN) {
        *why = "health checks";
        return "down";
    }
    if (s && p->max_fails && __atomic_load_n(&s->down_until_ms, __ATOMIC_RELAXED) > now) {
        *why = "failures";
        return "down";
    }
    return p->checked && health == PT_HEALTH_UNKNOWN ? "checking" : "up";
}

/* The last check result of <s>, read under the helper's seqlock (health.c writes it). */
static void last_check(const struct pt_peer_shared *s, struct pt_peer_view *v)
{
    for (int i = 0; i < 100; i++) {
        uint32_t seq = __atomic_load_n(&s->check_seq, __ATOMIC_ACQUIRE);
        if (seq & 1)
            continue;
        snprintf(v->last_check, sizeof(v->last_check), "%s", s->last_check);
        v->last_check_ms = __atomic_load_n(&s->last_check_ms, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->check_seq, __ATOMIC_RELAXED) == seq)
            return;
    }
    v->last_check[0] = '\0';
    v->last_check_ms = 0;
}

void pt_peer_view(const struct pt_peer *p, uint64_t now, struct pt_peer_view *v)
{
    static const char *const health[] = {"checking", "up", "down"};
    const struct pt_peer_shared *s = p->shared;
    struct sockaddr_storage ss;
    socklen_t len;
    int32_t set = s ? __atomic_load_n(&s->admin_weight, __ATOMIC_RELAXED) : 0;
    uint64_t until = s ? __atomic_load_n(&s->down_until_ms, __ATOMIC_RELAXED) : 0;

    memset(v, 0, sizeof(*v));
    v->name = p->name;
    pt_peer_address(p, &ss, &len);
    pt_sockaddr_text((struct sockaddr *)&ss, v->address, sizeof(v->address));
    v->state = peer_state(p, now, &v->down_reason);
    v->weight = set > 0 ? set : p->weight;
    v->configured_weight = p->weight;
    v->max_conns = p->max_conns;
    v->backup = p->backup;
    v->unavailable_ms = until > now ? until - now : 0;
    v->checked = p->checked && s;
    if (s == NULL)
        return;
    v->active = __atomic_load_n(&s->conns, __ATOMIC_RELAXED);
    v->requests = __atomic_load_n(&s->requests, __ATOMIC_RELAXED);
    v->fails = __atomic_load_n(&s->total_fails, __ATOMIC_RELAXED);
    if (!v->checked)
        return;
    v->health = health[__atomic_load_n(&s->health, __ATOMIC_RELAXED) % 3];
    v->checks = __atomic_load_n(&s->checks, __ATOMIC_RELAXED);
    v->checks_failed = __atomic_load_n(&s->checks_failed, __ATOMIC_RELAXED);
    v->passes_in_a_row = __atomic_load_n(&s->check_passes, __ATOMIC_RELAXED);
    v->fails_in_a_row = __atomic_load_n(&s->check_fails, __ATOMIC_RELAXED);
    last_check(s, v);
}

void pt_peer_control(struct pt_peer *p, int admin, int weight)
{
    struct pt_peer_shared *s = p->shared;

    if (s == NULL)
        return;
    if (admin >= 0) {
        uint32_t was = __atomic_exchange_n(&s->admin, (uint32_t)admin, __ATOMIC_RELAXED);
        /* Back from down: slow start ramps from now, as after any recovery. */
        if ((was == PT_ADMIN_DOWN || was == PT_ADMIN_DRAIN) && admin != (int)was)
            __atomic_store_n(&s->recovered_ms, pt_now_ms(), __ATOMIC_RELAXED);
    }
    if (weight >= 0)
        __atomic_store_n(&s->admin_weight, weight, __ATOMIC_RELAXED);
}

struct pt_peer *pt_upstream_choose(struct pt_upstream *u, struct pt_request *r, uint64_t tried)
{
    struct pt_lb_pick k = {.peers = u->peers,
                           .npeers = u->npeers,
                           .tried = tried,
                           .now = pt_now_ms(),
                           .rng = &rng_state};
    uint8_t addr[16];
    char key[HASH_KEY_MAX];
    struct pt_peer *p;
    int locked;

    if (r && u->lb.method == PT_LB_IP_HASH) {
        k.addrlen = pt_lb_ip_bytes((struct sockaddr *)&r->c->peer, addr);
        k.addr = addr;
    } else if (r && u->lb.method == PT_LB_HASH) {
        k.key = (struct pt_str){key, pt_template_render(r, u->hash, key, sizeof(key))};
    }
    /* One lock per group makes the shared round-robin weights one sequence.  Were it lost,
     * choosing unlocked still gives a live peer, only a less even spread. */
    locked = u->npeers > 1 && u->lock && pt_shmtx_lock(u->lock) != PT_ERROR;
    p = pt_lb_choose(&u->lb, &k);
    if (locked)
        pt_shmtx_unlock(u->lock);
    return p;
}

/* --- connections --- */

static void idle_event(struct pt_upstream_conn *uc, unsigned events);

static void conn_event(struct pt_event *ev, unsigned events)
{
    struct pt_upstream_conn *uc = ev->data;

    /* A transport that waited for the other direction (a TLS write needing to read a
     * record first, or a read needing to flush one) can go on when that one is ready:
     * no edge of its own would come. */
    if (events & PT_EV_READ) {
        uc->readable = 1;
        if (uc->send_wants_read)
            uc->writable = 1;
        uc->send_wants_read = 0;
    }
    if (events & PT_EV_RDHUP)
        uc->rdhup = 1;
    if (events & PT_EV_WRITE) {
        uc->writable = 1;
        if (uc->recv_wants_write)
            uc->readable = 1;
        uc->recv_wants_write = 0;
    }
    uc->handler(uc, events);
}

ssize_t pt_upstream_recv(struct pt_upstream_conn *uc, char *buf, size_t len)
{
    ssize_t n;

    if (uc->io)
        return uc->io->recv(uc, buf, len);
    n = read(uc->ev.fd, buf, len);
    if (n > 0) {
        /* A short read emptied the socket: more bytes bring a new edge.  Not after the
         * peer's FIN, which no edge follows: read on to the EOF. */
        if ((size_t)n < len && !uc->rdhup)
            uc->readable = 0;
        return n;
    }
    if (n == 0)
        return 0;
    if (errno == EAGAIN || errno == EINTR) {
        uc->readable = 0;
        return PT_AGAIN;
    }
    return PT_ERROR;
}

ssize_t pt_upstream_send(struct pt_upstream_conn *uc, const char *buf, size_t len)
{
    ssize_t n;

    if (uc->io)
        return uc->io->send(uc, buf, len);
    n = write(uc->ev.fd, buf, len);
    if (n >= 0) {
        if ((size_t)n < len)
            uc->writable = 0; /* the socket is full: EPOLLOUT says when it has room */
        return n;
    }
    if (errno == EAGAIN || errno == EINTR) {
        uc->writable = 0;
        return PT_AGAIN;
    }
    return PT_ERROR;
}

static void close_conn(struct pt_upstream_conn *uc)
{
    pt_timer_del(&uc->timer);
    pt_event_del(&uc->ev);
    if (uc->io)
        uc->io->close(uc);
    close(uc->ev.fd);
    uc->ev.fd = -1;
    pt_conn_slot_put();
    pt_loop_defer_free(uc);
}

static void unlink_idle(struct pt_upstream_conn *uc)
{
    struct pt_upstream_conn **pp = &uc->ups->idle;

    while (*pp && *pp != uc)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = uc->next;
        uc->ups->nidle--;
    }
    uc->next = NULL;
}

/* Whether an idle connection that turned readable can still carry a request: nothing is
 * there to read after all (an edge queued for data read while it was busy), or only what
 * its transport handles itself (a TLS session ticket). */
static int still_idle(struct pt_upstream_conn *uc)
{
    char byte;

    if (uc->io)
        return uc->io->idle_check(uc) == PT_OK;
    return recv(uc->ev.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

/* An idle pooled connection that turns readable was closed by the peer (or sent bytes
 * nobody asked for): either way it cannot be reused. */
static void idle_event(struct pt_upstream_conn *uc, unsigned events)
{
    if (!(events & (PT_EV_READ | PT_EV_ERROR)))
        return;
    if (!(events & (PT_EV_ERROR | PT_EV_RDHUP)) && still_idle(uc)) {
        uc->readable = 0;
        return;
    }
    unlink_idle(uc);
    close_conn(uc);
}

static void idle_timeout(struct pt_timer *t)
{
    struct pt_upstream_conn *uc = t->data;

    unlink_idle(uc);
    close_conn(uc);
}

uint32_t pt_peer_address(const struct pt_peer *peer, struct sockaddr_storage *ss, socklen_t *len)
{
    const struct pt_peer_shared *s = peer->shared;
    uint32_t seq;

    if (peer->resolve && s) {
        /* A seqlock: the helper bumps addr_seq to odd, writes, bumps to even. */
        for (int i = 0; i < 100; i++) {
            seq = __atomic_load_n(&s->addr_seq, __ATOMIC_ACQUIRE);
            if (seq & 1)
                continue;
            *len = __atomic_load_n(&s->addrlen, __ATOMIC_RELAXED);
            memcpy(ss, &s->addr, sizeof(*ss));
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&s->addr_seq, __ATOMIC_RELAXED) == seq && *len)
                return seq;
            if (*len == 0)
                break;
        }
    }
    memcpy(ss, &peer->addr, sizeof(*ss));
    *len = peer->addrlen;
    return 0;
}

static struct pt_upstream_conn *take_idle(struct pt_upstream *u, struct pt_peer *peer,
                                          const void *key)
{
    uint32_t seq = 0;

    if (peer->resolve) {
        struct sockaddr_storage ss;
        socklen_t len;
        seq = pt_peer_address(peer, &ss, &len);
    }
    for (struct pt_upstream_conn *uc = u->idle; uc; uc = uc->next) {
        /* A connection made to an address the name no longer has is not reused, nor one
         * made for another transport (plain or TLS, SNI name, client certificate). */
        if (uc->peer == peer && uc->addr_seq == seq && uc->key == key) {
            unlink_idle(uc);
            pt_timer_del(&uc->timer);
            uc->reused = 1;
            return uc;
        }
    }
    return NULL;
}

struct pt_upstream_conn *pt_upstream_connect(struct pt_upstream *u, struct pt_peer *peer, int fresh,
                                             const void *key, void *owner,
                                             void (*handler)(struct pt_upstream_conn *, unsigned))
{
    struct pt_upstream_conn *uc = fresh ? NULL : take_idle(u, peer, key);
    struct sockaddr_storage ss;
    socklen_t sslen;
    int one = 1, fd;

    if (uc == NULL) {
        uint32_t seq = pt_peer_address(peer, &ss, &sslen);
        /* Upstream connections count against worker_connections, as the client ones. */
        if (pt_conn_slot_take() != PT_OK)
            return NULL;
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || (uc = calloc(1, sizeof(*uc))) == NULL) {
            int saved = fd < 0 ? errno : ENOMEM;
            if (fd >= 0)
                close(fd);
            pt_conn_slot_put();
            errno = saved;
            return NULL;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        uc->ev.fd = fd;
        uc->ev.handler = conn_event;
        uc->ev.data = uc;
        uc->ups = u;
        uc->peer = peer;
        uc->addr_seq = seq;
        uc->key = key;
        if (connect(fd, (struct sockaddr *)&ss, sslen) == 0) {
            uc->connected = 1;
            uc->writable = 1;
        } else if (errno != EINPROGRESS) {
            int saved = errno;
            close(fd);
            free(uc);
            pt_conn_slot_put();
            errno = saved;
            return NULL;
        }
        if (pt_event_add(&uc->ev, 0) != PT_OK) {
            close(fd);
            free(uc);
            pt_conn_slot_put();
            return NULL;
        }
    }
    uc->owner = owner;
    uc->handler = handler;
    if (peer->shared) {
        __atomic_add_fetch(&peer->shared->conns, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&peer->shared->requests, 1, __ATOMIC_RELAXED);
    }
    return uc;
}

void pt_upstream_release(struct pt_upstream_conn *uc, int keep)
{
    struct pt_upstream *u = uc->ups;

    if (uc->peer->shared)
        __atomic_sub_fetch(&uc->peer->shared->conns, 1, __ATOMIC_RELAXED);
    uc->owner = NULL;
    uc->requests++;
    /* A connection whose FIN was already seen would only fail its next request. */
    if (!keep || uc->rdhup || u->keepalive == 0 ||
        uc->requests >= (unsigned)u->keepalive_requests) {
        close_conn(uc);
        return;
    }
    if (u->nidle >= u->keepalive) {
        /* The pool is full: the oldest idle connection (at the tail) makes room. */
        struct pt_upstream_conn *last = u->idle;
        while (last->next)
            last = last->next;
        unlink_idle(last);
        close_conn(last);
    }
    uc->handler = idle_event;
    uc->timer.handler = idle_timeout;
    uc->timer.data = uc;
    uc->readable = 0;
    uc->next = u->idle;
    u->idle = uc;
    u->nidle++;
    pt_timer_add(&uc->timer, (uint64_t)u->keepalive_timeout);
}

/* Seeds this worker's random numbers: forked workers would otherwise share one sequence. */
static int init_worker(struct pt_cycle *cycle)
{
    rng_state = ((uint64_t)getpid() << 32) ^ pt_now_ms() ^ (uint64_t)(uintptr_t)&cycle;
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
