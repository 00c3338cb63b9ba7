/*
 * limit_conn.c: the limit_conn module: nginx's limit_conn_zone, limit_conn,
 * limit_conn_status, limit_conn_log_level, limit_conn_dry_run and $limit_conn_status.
 *
 * A request counts as one connection of its key in each zone its level limits, from the
 * PREACCESS phase (after limit_req, before allow and deny, as in nginx) until it ends: the
 * count is given back by a cleanup of the request's pool, as nginx's, which every end runs
 * (the response sent, the client gone, the upstream failed, a timeout).  A request that
 * would pass a limit is refused (503, or limit_conn_status) and counts nowhere.  A worker
 * that exits with requests still open (worker_shutdown_timeout, a fast stop) gives their
 * counts back from its exit hook; what a worker that died could not give back is dropped
 * when it stands in the way (limit_conn.h).
 */
#include "modules/limit_conn.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "config/words.h"
#include "core/log.h"
#include "core/pool.h"
#include "worker/var.h"

#define KEY_MAX      255 /* nginx's: longer keys are not counted */
#define CONN_MAX     65535
#define REAP_OLDEST  16   /* nodes looked at for dead holders when the zone is full */
#define HOLDERS_SCAN 1024 /* holders of one key walked at most (a corrupt list ends) */

/* The state of a key in a zone (struct pt_limit_node's state). */
struct conn_state {
    uint32_t conn; /* connections counted, all processes */
    uint32_t spare;
    uint64_t holders; /* offset of the first struct holder */
};

/* How many of a key's connections one process holds. */
struct holder {
    uint64_t next;
    int32_t pid;
    uint32_t n;
};

/* One limit_conn line. */
struct conn_limit {
    struct pt_limit_line line; /* first: the zone */
    uint32_t conn;
};

/* $limit_conn_status, by r->limit_conn_status (nginx's order). */
enum { ST_PASSED = 1, ST_REJECTED, ST_REJECTED_DRY_RUN };

static int set_zone(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_limit(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static void drop_holders(struct pt_limit_zone *lz, void *state);

#define HSL    (PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC)
#define LOC(f) offsetof(struct pt_limit_conf, f)

static const struct pt_directive limit_conn_directives[] = {
    {"limit_conn_zone", PT_CTX_HTTP, PT_DIR_MULTI, PT_LOC_CONF, set_zone, 0, NULL,
     "\"KEY zone=NAME:SIZE\": a zone of SIZE (at least 32k) in shared memory where all "
     "workers count the requests in progress of each value of KEY (a template: "
     "$binary_remote_addr, $server_name; requests whose KEY is empty are not counted)"},
    {"limit_conn", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_limit, 0, NULL,
     "\"NAME NUMBER\": a request past NUMBER (1-65535) in progress for its key in zone NAME is "
     "refused; several apply together; a level with its own does not inherit its parent's"},
    {"limit_conn_status", HSL, 0, PT_LOC_CONF, pt_conf_set_num, LOC(status), pt_limit_status_bounds,
     "the status of refused requests (400-599, default 503)"},
    {"limit_conn_log_level", HSL, 0, PT_LOC_CONF, pt_conf_set_enum, LOC(log_level),
     pt_limit_log_levels, "info, notice, warn or error (the default): the level of refusals"},
    {"limit_conn_dry_run", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, LOC(dry_run), NULL,
     "count and set $limit_conn_status, but never refuse (default off)"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const struct pt_limit_kind conn_kind = {
    .directive = "limit_conn_zone",
    .user = "limit_conn",
    .usage = "KEY zone=NAME:SIZE",
    .nargs = 2,
    .state_size = sizeof(struct conn_state),
    .version = 0x43430001, /* "CC", 1 */
    .drop = drop_holders,
};

extern struct pt_module pt_limit_conn_module;

static pid_t self; /* this process's pid, read once it runs as a worker */

/* --- configuration --- */

/* The zone belongs to the cycle: the http level's configuration it is read into is not
 * used. */
static int set_zone(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    pt_unused(d);
    pt_unused(conf);
    return pt_limit_zone_declare(cf, &conn_kind);
}

/* limit_conn: "NAME NUMBER". */
static int set_limit(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct conn_limit *lim = pt_palloc(cf->pool, sizeof(*lim));
    char *w[3];
    int n = pt_conf_words(cf, cf->value, w, 3);
    int64_t conn;

    if (lim == NULL)
        return pt_conf_error(cf, "out of memory");
    if (n < 0)
        return PT_ERROR;
    if (n != 2)
        return pt_conf_error(cf, "invalid number of arguments in \"%s\": use \"NAME NUMBER\"",
                             d->name);
    if (pt_parse_int(w[1], &conn) != PT_OK || conn <= 0)
        return pt_conf_error(cf, "invalid number of connections \"%s\"", w[1]);
    if (conn > CONN_MAX)
        return pt_conf_error(cf, "connection limit must be less 65536");
    lim->conn = (uint32_t)conn;
    return pt_limit_lines_add(cf, &conn_kind, d->name, &((struct pt_limit_conf *)conf)->limits,
                              &lim->line, w[0]);
}

/* --- the counts in the zone --- */

static struct conn_state *state_of(struct pt_limit_node *n)
{
    return (struct conn_state *)n->state;
}

/* The link to <pid>'s holder of <st>, or to the end of the list when it has none. */
static uint64_t *holder_link(struct pt_limit_zone *lz, struct conn_state *st, pid_t pid)
{
    uint64_t *link = &st->holders;
    struct holder *h;

    for (int i = 0; i < HOLDERS_SCAN && (h = pt_limit_ptr(lz, *link)) != NULL; i++) {
        if (h->pid == pid)
            return link;
        link = &h->next;
    }
    return link;
}

/* Takes <h> (at *<link>) off its list, its connections off <st>'s count, and frees it. */
static void holder_remove(struct pt_limit_zone *lz, struct conn_state *st, uint64_t *link)
{
    struct holder *h = pt_limit_ptr(lz, *link);

    *link = h->next;
    st->conn -= pt_min(st->conn, h->n);
    pt_limit_free(lz, h);
}

static void drop_holders(struct pt_limit_zone *lz, void *state)
{
    struct conn_state *st = state;

    for (int i = 0; i < HOLDERS_SCAN && st->holders != 0; i++)
        holder_remove(lz, st, &st->holders);
}

/* Drops from <st> the connections of processes that no longer exist (killed, crashed:
 * they could not give them back).  <alive> is the caller's pid.  Returns how many. */
static uint32_t reap(struct pt_limit_zone *lz, struct conn_state *st, pid_t alive)
{
    uint64_t *link = &st->holders;
    struct holder *h;
    uint32_t n = 0;

    for (int i = 0; i < HOLDERS_SCAN && (h = pt_limit_ptr(lz, *link)) != NULL; i++) {
        if (h->pid == alive || kill(h->pid, 0) == 0 || errno != ESRCH) {
            link = &h->next;
            continue;
        }
        n += h->n;
        holder_remove(lz, st, link);
    }
    return n;
}

static void log_reaped(struct pt_limit_zone *lz, uint32_t n)
{
    if (n)
        pt_log(PT_LOG_NOTICE,
               "limit_conn_zone \"%s\": %u connections counted for processes that are gone "
               "given back",
               lz->name, n);
}

/* Frees the node <n> once nothing counts on it. */
static void release_node(struct pt_limit_zone *lz, struct pt_limit_node *n)
{
    if (state_of(n)->conn == 0) {
        drop_holders(lz, n->state);
        pt_limit_remove(lz, n);
    }
}

/* The zone is full: the oldest keys may be counts of dead processes only. */
static void reap_oldest(struct pt_limit_zone *lz, pid_t alive)
{
    struct pt_limit_node *n = pt_limit_oldest(lz);
    uint32_t reaped = 0;

    for (int i = 0; i < REAP_OLDEST && n; i++) {
        struct pt_limit_node *newer = pt_limit_newer(lz, n);
        reaped += reap(lz, state_of(n), alive);
        release_node(lz, n);
        n = newer;
    }
    log_reaped(lz, reaped);
}

/* The node of <h>'s key, made if need be; NULL when the zone has no room (logged). */
static struct pt_limit_node *node_for(struct pt_limit_conn_hold *h, uint32_t hash)
{
    struct pt_limit_zone *lz = h->zone;
    struct pt_limit_node *n = pt_limit_find(lz, h->key, hash);

    if (n) {
        pt_limit_touch(lz, n);
        return n;
    }
    if ((n = pt_limit_insert(lz, h->key, hash)) != NULL)
        return n;
    reap_oldest(lz, h->pid);
    if ((n = pt_limit_insert(lz, h->key, hash)) == NULL)
        pt_log(PT_LOG_CRIT, "could not allocate node in limit_conn_zone \"%s\"", lz->name);
    return n;
}

/* Counts one connection of <h> on <n>.  PT_OK, PT_DECLINED at <max>, PT_ERROR (no room). */
static int count_on(struct pt_limit_conn_hold *h, struct pt_limit_node *n, uint32_t max)
{
    struct pt_limit_zone *lz = h->zone;
    struct conn_state *st = state_of(n);
    uint64_t *link;
    struct holder *mine;

    if (st->conn >= max)
        log_reaped(lz, reap(lz, st, h->pid));
    if (st->conn >= max)
        return PT_DECLINED;
    link = holder_link(lz, st, h->pid);
    if ((mine = pt_limit_ptr(lz, *link)) == NULL) {
        if ((mine = pt_limit_alloc(lz, sizeof(*mine))) == NULL) {
            pt_log(PT_LOG_CRIT, "could not allocate node in limit_conn_zone \"%s\"", lz->name);
            return PT_ERROR;
        }
        mine->pid = (int32_t)h->pid;
        *link = pt_limit_off(lz, mine);
    }
    mine->n++;
    st->conn++;
    h->epoch = pt_limit_epoch(lz);
    h->held = 1;
    return PT_OK;
}

int pt_limit_conn_take(struct pt_limit_conn_hold *h, uint32_t max)
{
    uint32_t hash = pt_limit_hash(h->zone, h->key);
    struct pt_limit_node *n;
    int rc = PT_ERROR;

    if (pt_limit_lock(h->zone) != PT_OK)
        return PT_ERROR;
    if ((n = node_for(h, hash)) != NULL) {
        rc = count_on(h, n, max);
        release_node(h->zone, n);
    }
    pt_limit_unlock(h->zone);
    return rc;
}

void pt_limit_conn_give(struct pt_limit_conn_hold *h)
{
    struct pt_limit_zone *lz = h->zone;
    struct pt_limit_node *n;

    if (!h->held || pt_limit_lock(lz) != PT_OK)
        return;
    h->held = 0;
    n = pt_limit_epoch(lz) == h->epoch ? pt_limit_find(lz, h->key, pt_limit_hash(lz, h->key))
                                       : NULL;
    if (n) {
        struct conn_state *st = state_of(n);
        uint64_t *link = holder_link(lz, st, h->pid);
        struct holder *mine = pt_limit_ptr(lz, *link);
        if (mine && mine->n) {
            mine->n--;
            st->conn -= pt_min(st->conn, 1u);
        }
        if (mine && mine->n == 0)
            holder_remove(lz, st, link);
        release_node(lz, n);
    }
    pt_limit_unlock(lz);
}

void pt_limit_conn_forget(struct pt_limit_zone *lz, pid_t pid)
{
    struct pt_limit_node *n;

    if (pt_limit_lock(lz) != PT_OK)
        return;
    n = pt_limit_oldest(lz);
    while (n) {
        struct pt_limit_node *newer = pt_limit_newer(lz, n);
        struct conn_state *st = state_of(n);
        uint64_t *link = holder_link(lz, st, pid);
        if (*link != 0) {
            holder_remove(lz, st, link);
            release_node(lz, n);
        }
        n = newer;
    }
    pt_limit_unlock(lz);
}

uint32_t pt_limit_conn_count(struct pt_limit_zone *lz, struct pt_str key)
{
    struct pt_limit_node *n;
    uint32_t conn = 0;

    if (pt_limit_lock(lz) != PT_OK)
        return 0;
    if ((n = pt_limit_find(lz, key, pt_limit_hash(lz, key))) != NULL)
        conn = state_of(n)->conn;
    pt_limit_unlock(lz);
    return conn;
}

/* --- requests --- */

/* The request's pool is going: its connection is no longer counted. */
static void give_back(void *p)
{
    pt_limit_conn_give(p);
}

static int refuse(struct pt_request *r, const struct pt_limit_conf *c,
                  struct pt_limit_conn_hold **holds, int n)
{
    /* What the request took in other zones goes back now (nginx's cleanup_all). */
    for (int i = 0; i < n; i++)
        if (holds[i])
            pt_limit_conn_give(holds[i]);
    r->limit_conn_status = c->dry_run ? ST_REJECTED_DRY_RUN : ST_REJECTED;
    return c->dry_run ? PT_DECLINED : (int)c->status;
}

/* Counts <r> in the zone of limit <l>; *<out> is its hold when counted.  PT_OK (counted,
 * or not counted for want of a key), PT_DECLINED (refused), PT_ERROR. */
static int count_request(struct pt_request *r, const struct pt_limit_conf *c,
                         const struct conn_limit *l, struct pt_limit_conn_hold **out)
{
    struct pt_limit_conn_hold *h = pt_palloc(r->pool, sizeof(*h));
    int rc;

    if (h == NULL)
        return PT_ERROR;
    h->zone = l->line.zone;
    h->pid = self ? self : getpid();
    rc = pt_limit_key(r, h->zone, KEY_MAX, &h->key);
    if (rc != PT_OK)
        return rc == PT_DECLINED ? PT_OK : PT_ERROR;
    r->limit_conn_status = ST_PASSED;
    rc = pt_limit_conn_take(h, l->conn);
    if (rc == PT_DECLINED)
        pt_http_log(r, c->log_level, "limiting connections%s by zone \"%s\"",
                    c->dry_run ? ", dry run," : "", h->zone->name);
    if (rc != PT_OK)
        return PT_DECLINED;
    if (pt_pool_cleanup(r->pool, give_back, h) != PT_OK) {
        pt_limit_conn_give(h);
        return PT_ERROR;
    }
    *out = h;
    return PT_OK;
}

static int limit_conn_handler(struct pt_request *r)
{
    const struct pt_limit_conf *c = pt_http_loc_conf(r, pt_limit_conn_module);
    struct pt_limit_conn_hold **holds;

    /* Decided already: an error_page's new pass keeps what the first one counted. */
    if (r->limit_conn_status || c->limits == NULL)
        return PT_DECLINED;
    if ((holds = pt_palloc(r->pool, (size_t)c->limits->n * sizeof(*holds))) == NULL)
        return PT_ERROR;
    for (int i = 0; i < c->limits->n; i++) {
        const struct conn_limit *l = pt_container_of(c->limits->v[i], struct conn_limit, line);
        int rc = count_request(r, c, l, &holds[i]);
        if (rc == PT_ERROR)
            return PT_ERROR;
        if (rc == PT_DECLINED)
            return refuse(r, c, holds, i);
    }
    return PT_DECLINED;
}

/* $limit_conn_status: PASSED, REJECTED or REJECTED_DRY_RUN; no value when no limit counted
 * the request. */
static int var_status(struct pt_request *r, struct pt_str arg, struct pt_str *out)
{
    static const struct pt_str names[] = {{"PASSED", 6}, {"REJECTED", 8}, {"REJECTED_DRY_RUN", 16}};

    pt_unused(arg);
    if (r->limit_conn_status == 0)
        return PT_DECLINED;
    *out = names[r->limit_conn_status - 1];
    return PT_OK;
}

static int postconfig(struct pt_conf *cf)
{
    if (pt_var_register("limit_conn_status", 0, var_status) != PT_OK)
        return pt_conf_error(cf, "cannot register $limit_conn_status");
    if (pt_phase_add(cf->cycle, PT_PHASE_PREACCESS, limit_conn_handler) != PT_OK)
        return pt_conf_error(cf, "too many phase handlers");
    return PT_OK;
}

static int init_worker(struct pt_cycle *cycle)
{
    pt_unused(cycle);
    self = getpid();
    return PT_OK;
}

static void forget_self(struct pt_limit_zone *lz)
{
    pt_limit_conn_forget(lz, self ? self : getpid());
}

/* A worker leaving with requests in progress (worker_shutdown_timeout, a fast stop) does
 * not destroy their pools: what they hold is given back here. */
static void exit_worker(struct pt_cycle *cycle)
{
    pt_limit_zone_each(cycle, &conn_kind, forget_self);
}

struct pt_module pt_limit_conn_module = {
    .name = "limit_conn",
    .directives = limit_conn_directives,
    .create_loc_conf = pt_limit_conf_create,
    .merge_loc_conf = pt_limit_conf_merge,
    .postconfig = postconfig,
    .init_worker = init_worker,
    .exit_worker = exit_worker,
};
