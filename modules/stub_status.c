/*
 * stub_status.c: nginx's ngx_http_stub_status_module.  `stub_status = true` in a location
 * makes it answer, in nginx's words and spacing, with the client connection and request
 * counters every worker adds to in shared memory (worker/http_stats.h), for the tools that
 * scrape nginx's page:
 *
 *   Active connections: 2
 *   server accepts handled requests
 *    16 16 31
 *   Reading: 0 Writing: 1 Waiting: 1
 *
 * The module also offers nginx's $connections_active, $connections_reading,
 * $connections_writing and $connections_waiting.  The zone is kept across reload and
 * binary upgrade, so the totals go on counting, as nginx's do.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "worker/http.h"
#include "worker/http_stats.h"
#include "core/cycle.h"
#include "core/pool.h"
#include "core/shm.h"
#include "worker/var.h"

#define ZONE_NAME    "stub_status"
#define ZONE_SIZE    (32u * 1024)
#define ZONE_VERSION 1

/* The directive sets the location's content handler; the module keeps no settings. */
struct stub_status_conf {
    int unused;
};

static int set_stub_status(struct pt_conf *cf, const struct pt_directive *d, void *conf);

static const struct pt_directive stub_status_directives[] = {
    {"stub_status", PT_CTX_LOC, 0, PT_LOC_CONF, set_stub_status, 0, NULL,
     "true: this location answers GET and HEAD with nginx's stub_status page (active "
     "connections; accepted, handled and requests totals; reading, writing, waiting), counted "
     "by all workers in shared memory and kept across reloads; restrict it with allow/deny"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

extern struct pt_module pt_stub_status_module;

/* --- the page --- */

/* Waiting is what nginx calls the idle connections: those open without a request. */
static int64_t waiting(const struct pt_http_stats *s)
{
    int64_t w = s->active - s->reading - s->writing;

    return w > 0 ? w : 0;
}

static int stub_status_handler(struct pt_request *r)
{
    struct pt_http_stats s;
    char page[256];
    int n;

    if (r->h.method_id != PT_HTTP_GET && r->h.method_id != PT_HTTP_HEAD)
        return 405; /* as nginx: NGX_HTTP_NOT_ALLOWED */
    pt_http_stats_read(&s);
    /* ngx_http_stub_status_handler's text, trailing spaces included. */
    n = snprintf(page, sizeof(page),
                 "Active connections: %" PRId64 " \n"
                 "server accepts handled requests\n"
                 " %" PRIu64 " %" PRIu64 " %" PRIu64 " \n"
                 "Reading: %" PRId64 " Writing: %" PRId64 " Waiting: %" PRId64 " \n",
                 s.active, s.accepted, s.handled, s.requests, s.reading, s.writing, waiting(&s));
    if (n < 0 || (size_t)n >= sizeof(page))
        return PT_ERROR;
    r->status = 200;
    r->out_length = n;
    if (pt_header_add(r, &r->out, PT_STR("Content-Type"), PT_STR("text/plain")) != PT_OK ||
        pt_http_send_header(r) != PT_OK)
        return PT_ERROR;
    return pt_http_send_body(r, page, (size_t)n, 1) == PT_OK ? PT_OK : PT_ERROR;
}

static int set_stub_status(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct pt_http_loc_conf *lc = cf->conf->loc_conf[pt_http_module.index];

    (void)d;
    (void)conf;
    if (strcmp(cf->value, "off") == 0)
        return PT_OK;
    if (strcmp(cf->value, "on") != 0)
        return pt_conf_error(cf, "invalid value \"%s\" for \"stub_status\": use true or false",
                             cf->value);
    if (lc->handler)
        return pt_conf_error(cf, "\"stub_status\" and another content handler (proxy_pass, "
                                 "...) in one location");
    lc->handler = stub_status_handler;
    return PT_OK;
}

/* --- variables --- */

#define CONNECTIONS_VAR(name, expr)                                                 \
    static int name(struct pt_request *r, struct pt_str arg, struct pt_str *out)    \
    {                                                                               \
        struct pt_http_stats s;                                                     \
        char buf[24];                                                               \
                                                                                    \
        (void)arg;                                                                  \
        pt_http_stats_read(&s);                                                     \
        out->len = (size_t)snprintf(buf, sizeof(buf), "%" PRId64, (int64_t)(expr)); \
        out->p = pt_pstrndup(r->pool, buf, out->len);                               \
        return out->p ? PT_OK : PT_ERROR;                                           \
    }

CONNECTIONS_VAR(var_active, s.active)
CONNECTIONS_VAR(var_reading, s.reading)
CONNECTIONS_VAR(var_writing, s.writing)
CONNECTIONS_VAR(var_waiting, waiting(&s))

/* --- the zone --- */

static int zone_init(struct pt_shm_zone *zone, int reused)
{
    struct pt_http_stats *s = reused ? pt_shm_root(zone) : NULL;

    (void)zone->ctx;
    if (s == NULL) {
        if ((s = pt_slab_alloc(zone->pool, sizeof(*s))) == NULL)
            return PT_ERROR;
        memset(s, 0, sizeof(*s));
        pt_shm_set_root(zone, s);
    }
    /* Mapped before the workers fork: they inherit the pointer with the mapping. */
    pt_http_stats_use(s);
    return PT_OK;
}

/* Variables exist before any directive is read, so that a template in any setter may name
 * them; the zone is declared with the configuration, as every zone is. */
static void *create_main_conf(struct pt_conf *cf)
{
    if (pt_var_register("connections_active", 0, var_active) != PT_OK ||
        pt_var_register("connections_reading", 0, var_reading) != PT_OK ||
        pt_var_register("connections_writing", 0, var_writing) != PT_OK ||
        pt_var_register("connections_waiting", 0, var_waiting) != PT_OK)
        return NULL;
    if (pt_cycle_add_zone(cf->cycle, ZONE_NAME, ZONE_SIZE, ZONE_VERSION, zone_init, NULL) == NULL)
        return NULL;
    return pt_palloc(cf->pool, sizeof(struct stub_status_conf));
}

static void *create_loc_conf(struct pt_conf *cf)
{
    return pt_palloc(cf->pool, sizeof(struct stub_status_conf));
}

struct pt_module pt_stub_status_module = {
    .name = "stub_status",
    .directives = stub_status_directives,
    .create_main_conf = create_main_conf,
    .create_loc_conf = create_loc_conf,
};
