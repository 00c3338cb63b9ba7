/*
 * metrics.c: the metrics module: counters and histograms of every server, of each location
 * marked with `status_zone NAME` (nginx Plus's directive), and of every upstream server,
 * kept in the shared-memory zone "metrics" (layout in metrics.h) and read out in
 * Prometheus's format by a location with `metrics = true` (exposition.c).
 *
 * Requests are counted once they are over, in the LOG phase, with a few relaxed atomic
 * additions: no lock, nothing on the way of the response.  Nothing is counted, and no zone
 * is made, in a configuration with neither a metrics location nor a status_zone.
 */
#include <string.h>

#include "worker/http.h"
#include "worker/http_phase.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/shm.h"
#include "core/times.h"
#include "modules/metrics/metrics.h"
#include "modules/upstream/upstream.h"
#include "worker/var.h"
#include "worker/worker.h"

#define ROOT_MAGIC  0x706f72746d657432ull /* "portmet2" */
#define MIN_ENTRIES 256

const uint32_t metrics_bucket_ms[METRICS_BUCKETS - 1] = {1,   5,   10,   25,   50,   100,
                                                         250, 500, 1000, 2500, 5000, 10000};

const char *const metrics_cache_names[METRICS_CACHE] = {
    "MISS", "BYPASS", "EXPIRED", "STALE", "UPDATING", "REVALIDATED", "HIT"};

/* status_zone at server level, and the server's series. */
struct metrics_srv_conf {
    char *zone;
    int series; /* index in the main conf's series; -1: none */
};

/* status_zone of a location (inherited by the locations and if blocks inside it). */
struct metrics_loc_conf {
    char *zone;
    int series;
    int metrics; /* flag: this location answers with the metrics */
};

static int set_status_zone(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_metrics(struct pt_conf *cf, const struct pt_directive *d, void *conf);

static const struct pt_directive metrics_directives[] = {
    {"status_zone", PT_CTX_SRV | PT_CTX_LOC, 0, PT_LOC_CONF, set_status_zone, 0, NULL,
     "NAME: count this server's requests under NAME instead of its server_name, or this "
     "location's (and those inside it) under the label location=NAME of the portier_location_* "
     "metrics (nginx Plus's directive)"},
    {"metrics", PT_CTX_LOC, 0, PT_LOC_CONF, set_metrics, 0, NULL,
     "true: this location answers with the counters of every server, status_zone and upstream "
     "server in Prometheus's text format (OpenMetrics when the Accept field asks for it); "
     "restrict it with allow/deny"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static struct metrics_main_conf *main_conf_of(struct pt_conf *cf)
{
    return cf->cycle->main_conf[pt_metrics_module.index];
}

static void *create_main_conf(struct pt_conf *cf)
{
    return pt_palloc(cf->pool, sizeof(struct metrics_main_conf));
}

static void *create_srv_conf(struct pt_conf *cf)
{
    struct metrics_srv_conf *sc = pt_palloc(cf->pool, sizeof(*sc));

    if (sc)
        sc->series = -1;
    return sc;
}

static int merge_srv_conf(struct pt_conf *cf, void *parent, void *child)
{
    return PT_OK; /* a server's name is its own */
}

static void *create_loc_conf(struct pt_conf *cf)
{
    struct metrics_loc_conf *lc = pt_palloc(cf->pool, sizeof(*lc));

    if (lc) {
        lc->series = -1;
        lc->metrics = PT_CONF_UNSET;
    }
    return lc;
}

static int merge_loc_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct metrics_loc_conf *p = parent, *c = child;

    pt_conf_merge_ptr(c->zone, p->zone, NULL);
    /* Not inherited: a location inside a metrics location answers as its own says. */
    if (c->metrics == PT_CONF_UNSET)
        c->metrics = 0;
    return PT_OK;
}

/* A label value is any UTF-8, but a name made of what configurations use reads best: keep
 * it to one line, so that an error names it plainly. */
static int check_name(struct pt_conf *cf, const char *v)
{
    if (v[0] == '\0' || strlen(v) >= METRICS_NAME_MAX || strpbrk(v, "\r\n"))
        return pt_conf_error(cf, "invalid status_zone \"%s\": use a name of 1 to %d bytes", v,
                             METRICS_NAME_MAX - 1);
    return PT_OK;
}

static int set_status_zone(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct metrics_loc_conf *lc = conf;
    struct pt_http_loc_conf *hlc = cf->conf->loc_conf[pt_http_module.index];
    char **slot = &lc->zone;

    if (check_name(cf, cf->value) != PT_OK)
        return PT_ERROR;
    /* At server level it names the server (the server's own location arrays come first). */
    if (hlc->name == NULL || hlc->name[0] == '\0')
        slot = &((struct metrics_srv_conf *)cf->conf->srv_conf[pt_metrics_module.index])->zone;
    if (*slot)
        return pt_conf_error(cf, "\"status_zone\" is duplicate");
    *slot = pt_pstrdup(cf->pool, cf->value);
    main_conf_of(cf)->used = 1;
    return *slot ? PT_OK : PT_ERROR;
}

static int set_metrics(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct metrics_loc_conf *lc = conf;
    struct pt_http_loc_conf *hlc = cf->conf->loc_conf[pt_http_module.index];

    if (lc->metrics != PT_CONF_UNSET)
        return pt_conf_error(cf, "\"metrics\" is duplicate");
    if (strcmp(cf->value, "on") != 0 && strcmp(cf->value, "off") != 0)
        return pt_conf_error(cf, "invalid value \"%s\" for \"metrics\": use true or false",
                             cf->value);
    lc->metrics = strcmp(cf->value, "on") == 0;
    if (!lc->metrics)
        return PT_OK;
    if (hlc->handler)
        return pt_conf_error(cf, "\"metrics\" and another content handler (proxy_pass, ...) in "
                                 "one location");
    hlc->handler = metrics_handler;
    main_conf_of(cf)->used = 1;
    return PT_OK;
}

/* --- the series of a configuration --- */

/* The index of the series <kind> <a> <b> of <mc>, added if new; -1 when out of memory. */
static int series_index(struct pt_conf *cf, enum metrics_kind kind, const char *a, const char *b,
                        const void *peer)
{
    struct metrics_main_conf *mc = main_conf_of(cf);
    struct metrics_series *s;

    for (int i = 0; i < mc->nseries; i++) {
        s = &mc->series[i];
        if (s->kind == kind && strncmp(s->a, a, METRICS_NAME_MAX - 1) == 0 &&
            strncmp(s->b, b, METRICS_NAME_MAX - 1) == 0 && (peer == NULL || s->peer == peer))
            return i;
    }
    if (mc->nseries == mc->cap) {
        int cap = mc->cap ? mc->cap * 2 : 32;
        s = pt_palloc(cf->pool, (size_t)cap * sizeof(*s));
        if (s == NULL)
            return -1;
        if (mc->nseries)
            memcpy(s, mc->series, (size_t)mc->nseries * sizeof(*s));
        mc->series = s;
        mc->cap = cap;
    }
    mc->series[mc->nseries] = (struct metrics_series){kind, a, b, peer, NULL};
    return mc->nseries++;
}

/* The name a server is counted under: its status_zone, its first server_name, else its
 * first listen address. */
static const char *server_label(struct pt_http_server *s)
{
    struct metrics_srv_conf *sc = s->srv_conf[pt_metrics_module.index];
    struct pt_http_srv_conf *hs = s->srv_conf[pt_http_module.index];
    const struct pt_conf_setting *l;

    if (sc->zone)
        return sc->zone;
    if (hs->server_name && hs->server_name[0])
        return hs->server_name;
    l = s->setting ? pt_conf_setting_member(s->setting, "listen") : NULL;
    if (l && pt_conf_setting_kind(l) == PT_CONF_ARRAY)
        l = pt_conf_setting_elem(l, 0);
    if (l && pt_conf_setting_string(l))
        return pt_conf_setting_string(l);
    return "_";
}

static int add_location(struct pt_conf *cf, void **loc_conf)
{
    struct metrics_loc_conf *lc = loc_conf[pt_metrics_module.index];

    if (lc->zone == NULL)
        return PT_OK;
    lc->series = series_index(cf, METRICS_LOCATION, lc->zone, "", NULL);
    return lc->series < 0 ? PT_ERROR : PT_OK;
}

static int add_series(struct pt_conf *cf)
{
    struct pt_http_main_conf *hmc = cf->cycle->main_conf[pt_http_module.index];
    struct pt_upstream **ups;
    int n;

    for (int i = 0; hmc && i < hmc->nservers; i++) {
        struct pt_http_server *s = hmc->servers[i];
        struct metrics_srv_conf *sc = s->srv_conf[pt_metrics_module.index];
        const char *name = pt_pstrdup(cf->pool, server_label(s));
        if (name == NULL || (sc->series = series_index(cf, METRICS_SERVER, name, "", NULL)) < 0)
            return PT_ERROR;
    }
    if (hmc && pt_http_foreach_loc(cf, add_location) != PT_OK)
        return PT_ERROR;
    ups = pt_upstream_groups(cf->cycle, &n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < ups[i]->npeers; j++)
            if (series_index(cf, METRICS_PEER, ups[i]->name, ups[i]->peers[j].name,
                             &ups[i]->peers[j]) < 0)
                return PT_ERROR;
    return PT_OK;
}

/* --- the zone --- */

static int entry_matches(const struct metrics_entry *e, const struct metrics_series *s)
{
    return e->kind == (uint32_t)s->kind && strncmp(e->a, s->a, METRICS_NAME_MAX - 1) == 0 &&
           strncmp(e->b, s->b, METRICS_NAME_MAX - 1) == 0;
}

/* The entry of <s> in the zone, added if new; NULL when the zone is full. */
static struct metrics_entry *entry_of(struct pt_shm_zone *z, struct metrics_root *rt,
                                      const struct metrics_series *s)
{
    struct metrics_entry *e = pt_shm_ptr(z, rt->entries);

    for (uint32_t i = 0; i < rt->n; i++)
        if (entry_matches(&e[i], s))
            return &e[i];
    if (rt->n == rt->cap)
        return NULL;
    e += rt->n;
    memset(e, 0, sizeof(*e));
    snprintf(e->a, sizeof(e->a), "%s", s->a);
    snprintf(e->b, sizeof(e->b), "%s", s->b);
    e->kind = (uint32_t)s->kind;
    /* Old workers read only entries they know; the count goes up once the entry is whole. */
    __atomic_store_n(&rt->n, rt->n + 1, __ATOMIC_RELEASE);
    return e;
}

static size_t entries_for(int nseries)
{
    size_t cap = MIN_ENTRIES;

    while (cap < (size_t)nseries * 2)
        cap *= 2;
    return cap;
}

/* Runs in the master once the zone is mapped: the root when the zone is new, then every
 * series of the configuration finds its entry.  Workers fork after, sharing the pointers. */
static int zone_init(struct pt_shm_zone *z, int reused)
{
    struct metrics_main_conf *mc = z->ctx;
    struct metrics_root *rt = reused ? pt_shm_root(z) : NULL;
    int full = 0;

    if (rt && rt->magic != ROOT_MAGIC)
        return PT_ERROR;
    if (rt == NULL) {
        size_t cap = entries_for(mc->nseries);
        struct metrics_entry *e;
        rt = pt_slab_alloc(z->pool, sizeof(*rt));
        e = pt_slab_alloc(z->pool, cap * sizeof(*e));
        if (rt == NULL || e == NULL)
            return PT_ERROR;
        rt->cap = (uint32_t)cap;
        rt->entries = pt_shm_off(z, e);
        rt->magic = ROOT_MAGIC;
        pt_shm_set_root(z, rt);
    } else {
        __atomic_fetch_add(&rt->loads, 1, __ATOMIC_RELAXED);
    }
    mc->root = rt;
    for (int i = 0; i < mc->nseries; i++) {
        struct metrics_series *s = &mc->series[i];
        s->e = entry_of(z, rt, s);
        full |= s->e == NULL;
        if (s->kind == METRICS_PEER)
            ((struct pt_peer *)s->peer)->metrics = s->e;
    }
    if (full)
        pt_log(PT_LOG_WARN,
               "the metrics zone is full (%u series): new servers and zones are "
               "not counted until portier restarts",
               rt->cap);
    return PT_OK;
}

/* --- counting --- */

static inline void add(uint64_t *c, uint64_t n)
{
    __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static void metrics_observe(struct metrics_hist *h, uint64_t ms)
{
    int i = 0;

    while (i < METRICS_BUCKETS - 1 && ms > metrics_bucket_ms[i])
        i++;
    add(&h->b[i], 1);
    add(&h->sum_ms, ms);
}

/* The bytes of <r> read from the client: its head and body.  A body its handler did not
 * read (a `return`) is discarded after the LOG phase: what of it had arrived counts, as far
 * as a Content-Length bounds it (chunked framing left unread would need decoding). */
static uint64_t bytes_in(const struct pt_request *r)
{
    uint64_t n = r->h.head_len + (uint64_t)(r->body_received > 0 ? r->body_received : 0);
    const struct pt_buf *in = r->c->in;

    if (r->has_body && !r->body_done && r->body_left > 0 && in)
        n += (uint64_t)pt_min((int64_t)(in->last - in->pos), r->body_left);
    return n;
}

static void count_request(struct metrics_entry *e, struct pt_request *r, int class, uint64_t ms)
{
    struct metrics_zone_counters *z = &e->zone;

    if (class >= 1 && class <= METRICS_CLASSES)
        add(&z->requests[class - 1], 1);
    add(&z->bytes_in, bytes_in(r));
    add(&z->bytes_out, (uint64_t)(r->bytes_sent > 0 ? r->bytes_sent : 0));
    metrics_observe(&z->time, ms);
}

static struct metrics_entry *series_entry(struct metrics_main_conf *mc, int i)
{
    return i >= 0 && i < mc->nseries ? mc->series[i].e : NULL;
}

/* What the cache made of <r>, if it used one. */
static void count_cache(struct metrics_main_conf *mc, struct pt_request *r)
{
    struct pt_str v;

    if (mc->root == NULL || pt_template_eval(r, mc->cache_status, &v) != PT_OK || v.len == 0)
        return;
    for (int i = 0; i < METRICS_CACHE; i++)
        if (pt_str_eq(v, metrics_cache_names[i])) {
            add(&mc->root->cache[i], 1);
            return;
        }
}

static int log_handler(struct pt_request *r)
{
    struct metrics_main_conf *mc = r->main_conf[pt_metrics_module.index];
    struct metrics_entry *s = NULL, *l = NULL;
    uint64_t ms = pt_now_ms() - r->start_ms;
    int status = r->err_status ? r->err_status : r->status;

    if (r->srv_conf)
        s = series_entry(
            mc, ((struct metrics_srv_conf *)pt_http_srv_conf(r, pt_metrics_module))->series);
    if (r->loc_conf)
        l = series_entry(
            mc, ((struct metrics_loc_conf *)pt_http_loc_conf(r, pt_metrics_module))->series);
    if (s)
        count_request(s, r, status / 100, ms);
    if (l)
        count_request(l, r, status / 100, ms);
    if (mc->cache_status)
        count_cache(mc, r);
    return PT_OK;
}

/* A step of a try on an upstream server (pt_upstream_observe). */
static void observe_try(struct pt_peer *peer, enum pt_upstream_step step, int value, uint64_t ms)
{
    struct metrics_peer_counters *c = &((struct metrics_entry *)peer->metrics)->peer;

    switch (step) {
    case PT_UPSTREAM_TRY:
        add(&c->requests, 1);
        if (value)
            add(&c->retries, 1);
        break;
    case PT_UPSTREAM_CONNECTED: metrics_observe(&c->connect, ms); break;
    case PT_UPSTREAM_HEADER:
        if (value / 100 >= 1 && value / 100 <= METRICS_CLASSES)
            add(&c->responses[value / 100 - 1], 1);
        if (value >= 500)
            add(&c->fails[METRICS_FAIL_HTTP_5XX], 1);
        metrics_observe(&c->header, ms);
        break;
    case PT_UPSTREAM_DONE: metrics_observe(&c->response, ms); break;
    case PT_UPSTREAM_IDLE: __atomic_fetch_add(&c->idle, value, __ATOMIC_RELAXED); break;
    case PT_UPSTREAM_FAILED:
        if (value >= 0 && value < METRICS_FAIL_HTTP_5XX)
            add(&c->fails[value], 1);
        break;
    }
}

/* The workers' root, for the observers (which are told no configuration). */
static struct metrics_root *worker_root;

static void observe_tls(enum pt_tls_outcome outcome)
{
    if ((unsigned)outcome < METRICS_TLS)
        add(&worker_root->tls[outcome], 1);
}

static void observe_compressed(int coding, uint64_t in, uint64_t out)
{
    if (coding < 0 || coding >= METRICS_CODINGS)
        return;
    add(&worker_root->compressed[coding][0], 1);
    add(&worker_root->compressed[coding][1], in);
    add(&worker_root->compressed[coding][2], out);
}

static void observe_waf(const char *group)
{
    struct metrics_waf_group *g = worker_root->waf;
    uint32_t free_state = 0;

    if (group[0] == '\0')
        group = "unknown";
    for (int i = 0; i < METRICS_WAF; i++) {
        uint32_t st = __atomic_load_n(&g[i].state, __ATOMIC_ACQUIRE);
        if (st == 2 && strncmp(g[i].name, group, sizeof(g[i].name) - 1) == 0) {
            add(&g[i].n, 1);
            return;
        }
        if (st == 0 && i < METRICS_WAF - 1 &&
            __atomic_compare_exchange_n(&g[i].state, &free_state, 1, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED)) {
            snprintf(g[i].name, sizeof(g[i].name), "%s", group);
            add(&g[i].n, 1);
            __atomic_store_n(&g[i].state, 2, __ATOMIC_RELEASE);
            return;
        }
        free_state = 0;
    }
    /* Full: the last slot is "other". */
    add(&g[METRICS_WAF - 1].n, 1);
}

/* --- the module --- */

static int postconfig(struct pt_conf *cf)
{
    struct metrics_main_conf *mc = main_conf_of(cf);

    if (!mc->used)
        return PT_OK;
    if (add_series(cf) != PT_OK)
        return pt_conf_error(cf, "out of memory");
    mc->zone = pt_cycle_add_zone(
        cf->cycle, "metrics", entries_for(mc->nseries) * sizeof(struct metrics_entry) + 64 * 1024,
        METRICS_LAYOUT, zone_init, mc);
    if (mc->zone == NULL)
        return pt_conf_error(cf, "cannot declare the metrics zone");
#if PORTIER_WITH_CACHE
    mc->cache_status = pt_template_compile(cf, "$upstream_cache_status", PT_ESCAPE_NONE);
    if (mc->cache_status == NULL)
        return PT_ERROR;
#endif
    if (pt_phase_add(cf->cycle, PT_PHASE_LOG, log_handler) != PT_OK)
        return pt_conf_error(cf, "too many LOG phase handlers");
    if (metrics_report_add(cf->cycle) != PT_OK)
        return pt_conf_error(cf, "too many sections of the status document");
    return PT_OK;
}

static int init_worker(struct pt_cycle *cycle)
{
    struct metrics_main_conf *mc = cycle->main_conf[pt_metrics_module.index];

    if (mc->root)
        __atomic_fetch_add(&mc->root->worker_starts, 1, __ATOMIC_RELAXED);
    if (mc->root && pt_worker_respawned)
        __atomic_fetch_add(&mc->root->worker_restarts, 1, __ATOMIC_RELAXED);
    pt_upstream_observe = mc->root ? observe_try : NULL;
    worker_root = mc->root;
    pt_http_observers.tls_handshake = mc->root ? observe_tls : NULL;
    pt_http_observers.compressed = mc->root ? observe_compressed : NULL;
    pt_http_observers.waf_blocked = mc->root ? observe_waf : NULL;
    return PT_OK;
}

struct pt_module pt_metrics_module = {
    .name = "metrics",
    .directives = metrics_directives,
    .create_main_conf = create_main_conf,
    .create_srv_conf = create_srv_conf,
    .merge_srv_conf = merge_srv_conf,
    .create_loc_conf = create_loc_conf,
    .merge_loc_conf = merge_loc_conf,
    .postconfig = postconfig,
    .init_worker = init_worker,
};
