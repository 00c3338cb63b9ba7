/*
 * limit_req.c: the limit_req module: nginx's limit_req_zone, limit_req, limit_req_status,
 * limit_req_log_level, limit_req_dry_run and $limit_req_status, with nginx's arithmetic.
 *
 * Each key of a zone has a leaky bucket in shared memory, so that all workers count
 * together: its excess, in thousandths of a request, drains at the zone's rate; a request
 * adds 1000.  A request whose excess would pass burst * 1000 is refused (503, or
 * limit_req_status) and not counted; one whose excess passes delay * 1000 (delay=N; 0 by
 * default; nodelay: never) waits (excess - delay * 1000) / rate seconds, suspended on a
 * timer, the worker serving others meanwhile.  The handler runs in PREACCESS, before allow
 * and deny, once per request (an error_page's new pass does not count it again).
 */
#include "modules/limit_req.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/words.h"
#include "core/log.h"
#include "core/pool.h"
#include "worker/var.h"

#define STALE_HOLD_MS 60000 /* a node held longer was held by a process that died */

/* The state of a key in a zone (struct pt_limit_node's state). */
struct req_state {
    uint64_t last;     /* pt_now_ms() when last accounted; 0: held, never accounted */
    int64_t excess;    /* thousandths of a request in the bucket */
    uint64_t count_at; /* when count last went up */
    uint32_t count;    /* decisions in progress holding the node (nginx's count) */
    uint32_t spare;
};

/* $limit_req_status, by r->limit_req_status (nginx's order). */
enum { ST_PASSED = 1, ST_DELAYED, ST_REJECTED, ST_DELAYED_DRY_RUN, ST_REJECTED_DRY_RUN };

static int set_zone(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_limit(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int zone_param(struct pt_conf *cf, struct pt_limit_zone *lz, const char *w);

#define HSL    (PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC)
#define LOC(f) offsetof(struct pt_limit_conf, f)

static const struct pt_directive limit_req_directives[] = {
    {"limit_req_zone", PT_CTX_HTTP, PT_DIR_MULTI, PT_LOC_CONF, set_zone, 0, NULL,
     "\"KEY zone=NAME:SIZE rate=RATE\": a zone of SIZE (at least 32k) in shared memory where "
     "all workers count the requests of each value of KEY (a template: $binary_remote_addr, "
     "\"$host$uri\"; requests whose KEY is empty are not counted) against RATE, Nr/s or Nr/m; "
     "\"sync\" is not supported"},
    {"limit_req", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_limit, 0, NULL,
     "\"zone=NAME [burst=N] [nodelay | delay=N]\": nginx's leaky bucket; a request past the "
     "burst is refused, one past the delay (0 by default, nodelay: never) waits; several "
     "apply together; a level with its own does not inherit its parent's"},
    {"limit_req_status", HSL, 0, PT_LOC_CONF, pt_conf_set_num, LOC(status), pt_limit_status_bounds,
     "the status of refused requests (400-599, default 503)"},
    {"limit_req_log_level", HSL, 0, PT_LOC_CONF, pt_conf_set_enum, LOC(log_level),
     pt_limit_log_levels,
     "info, notice, warn or error (the default): the level of refusals; delays are logged one "
     "level lower"},
    {"limit_req_dry_run", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, LOC(dry_run), NULL,
     "count and set $limit_req_status, but neither refuse nor delay (default off)"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static const struct pt_limit_kind req_kind = {
    .directive = "limit_req_zone",
    .user = "limit_req",
    .usage = "KEY zone=NAME:SIZE rate=RATE",
    .nargs = 3,
    .state_size = sizeof(struct req_state),
    .version = 0x52510001, /* "RQ", 1 */
    .param = zone_param,
};

extern struct pt_module pt_limit_req_module;

/* --- configuration --- */

/* The zone belongs to the cycle: the http level's configuration it is read into is not
 * used. */
static int set_zone(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    pt_unused(d);
    pt_unused(conf);
    return pt_limit_zone_declare(cf, &req_kind);
}

/* rate=Nr/s or rate=Nr/m (bare N: per second), as nginx reads it: N * 1000 / 60 for r/m. */
static int zone_param(struct pt_conf *cf, struct pt_limit_zone *lz, const char *w)
{
    char digits[24];
    size_t len;
    int64_t rate, scale = 1;

    if (strncmp(w, "rate=", 5) != 0)
        return PT_DECLINED;
    len = strlen(w + 5);
    if (len >= 3 && strcmp(w + 5 + len - 3, "r/s") == 0) {
        len -= 3;
    } else if (len >= 3 && strcmp(w + 5 + len - 3, "r/m") == 0) {
        len -= 3;
        scale = 60;
    }
    if (len < sizeof(digits)) {
        memcpy(digits, w + 5, len);
        digits[len] = '\0';
    }
    if (len >= sizeof(digits) || pt_parse_int(digits, &rate) != PT_OK || rate <= 0 ||
        rate > INT32_MAX)
        return pt_conf_error(cf, "invalid rate \"%s\": use rate=Nr/s or rate=Nr/m", w);
    lz->rate = (uint64_t)(rate * 1000 / scale);
    return PT_OK;
}

/* burst=N or delay=N: N from 1 to 2^31 - 1 into *<out> (thousandths).  PT_OK or PT_ERROR. */
static int parse_count(struct pt_conf *cf, const char *w, size_t skip, uint64_t *out)
{
    int64_t v;

    if (pt_parse_int(w + skip, &v) != PT_OK || v <= 0 || v > INT32_MAX)
        return pt_conf_error(cf, "invalid %.*s value \"%s\"", (int)skip - 1, w, w);
    *out = (uint64_t)v * 1000;
    return PT_OK;
}

/* Reads the word <w> of a limit_req line into <lim>, or its zone's name into *<zone>. */
static int limit_word(struct pt_conf *cf, const char *w, const char **zone,
                      struct pt_limit_req_limit *lim)
{
    if (strncmp(w, "zone=", 5) == 0) {
        *zone = w + 5;
        return PT_OK;
    }
    if (strncmp(w, "burst=", 6) == 0)
        return parse_count(cf, w, 6, &lim->burst);
    if (strncmp(w, "delay=", 6) == 0)
        return parse_count(cf, w, 6, &lim->delay);
    if (strcmp(w, "nodelay") == 0) {
        lim->delay = PT_LIMIT_REQ_NODELAY;
        return PT_OK;
    }
    return pt_conf_error(cf, "invalid parameter \"%s\" in \"limit_req\"", w);
}

/* limit_req: "zone=NAME [burst=N] [nodelay | delay=N]". */
static int set_limit(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct pt_limit_req_limit *lim = pt_palloc(cf->pool, sizeof(*lim));
    const char *zone = NULL;
    char *w[4];
    int n = pt_conf_words(cf, cf->value, w, 4);

    if (lim == NULL)
        return pt_conf_error(cf, "out of memory");
    if (n < 0)
        return PT_ERROR;
    if (n < 1 || n > 3)
        return pt_conf_error(cf,
                             "invalid number of arguments in \"%s\": use \"zone=NAME "
                             "[burst=N] [nodelay | delay=N]\"",
                             d->name);
    for (int i = 0; i < n; i++)
        if (limit_word(cf, w[i], &zone, lim) != PT_OK)
            return PT_ERROR;
    if (zone == NULL || *zone == '\0')
        return pt_conf_error(cf, "\"%s\" must have \"zone\" parameter", d->name);
    return pt_limit_lines_add(cf, &req_kind, d->name, &((struct pt_limit_conf *)conf)->limits,
                              &lim->line, zone);
}

/* --- the leaky bucket --- */

enum { LOOKUP_SKIP, LOOKUP_ACCOUNTED, LOOKUP_HELD, LOOKUP_BUSY, LOOKUP_NO_ROOM };

static struct pt_limit_req_limit *limit_at(const struct pt_limit_lines *limits, int i)
{
    return pt_container_of(limits->v[i], struct pt_limit_req_limit, line);
}

static struct req_state *state_of(struct pt_limit_node *n)
{
    return (struct req_state *)n->state;
}

/* nginx's ms since <last>: a <last> a little ahead of <now> (written by a process that read
 * the clock later) reads as 0, one far ahead (a minute) as 1. */
static int64_t elapsed(uint64_t now, uint64_t last)
{
    int64_t ms = (int64_t)(now - last);

    return ms < -60000 ? 1 : ms < 0 ? 0 : ms;
}

/* nginx's "excess - rate * ms / 1000 + add", without the overflow of a long-idle key. */
static int64_t drain(int64_t excess, uint64_t rate, int64_t ms, int64_t add)
{
    uint64_t out;

    if (ms > 0 && rate > UINT64_MAX / (uint64_t)ms)
        return -1;
    out = rate * (uint64_t)ms / 1000;
    if (out > (uint64_t)INT64_MAX / 2)
        return -1;
    return excess + add - (int64_t)out;
}

/* The delay <limit> asks at <excess>: nginx's (excess - delay) * 1000 / rate ms. */
static uint64_t delay_of(const struct pt_limit_req_limit *limit, int64_t excess)
{
    if ((uint64_t)excess <= limit->delay)
        return 0;
    return ((uint64_t)excess - limit->delay) * 1000 / limit->line.zone->rate;
}

/* nginx's ngx_http_limit_req_expire: <n> 1 frees one or two idle, drained nodes from the old
 * end; <n> 0 frees the oldest one whatever its state, then as 1.  A node held by a decision
 * in progress stops it, unless held so long that its holder must have died. */
static void expire(struct pt_limit_zone *lz, int n, uint64_t now)
{
    while (n < 3) {
        struct pt_limit_node *node = pt_limit_oldest(lz);
        struct req_state *st;
        if (node == NULL)
            return;
        st = state_of(node);
        if (st->count && llabs((int64_t)(now - st->count_at)) < STALE_HOLD_MS)
            return;
        if (n++ != 0) {
            int64_t ms = llabs((int64_t)(now - st->last));
            if (ms < 60000 || drain(st->excess, lz->rate, ms, 0) > 0)
                return;
        }
        pt_limit_remove(lz, node);
    }
}

static void hold(struct pt_limit_req_limit *limit, struct pt_limit_node *node, uint64_t now)
{
    struct req_state *st = state_of(node);

    st->count++;
    st->count_at = now;
    limit->held = node;
    limit->held_epoch = pt_limit_epoch(limit->line.zone);
}

/* A key seen before: its excess now, checked against the burst. */
static int lookup_found(struct pt_limit_req_limit *limit, struct pt_limit_node *node, uint64_t now,
                        int account, int64_t *ep)
{
    struct req_state *st = state_of(node);
    int64_t ms = elapsed(now, st->last);
    int64_t excess = drain(st->excess, limit->line.zone->rate, ms, 1000);

    pt_limit_touch(limit->line.zone, node);
    *ep = excess = excess < 0 ? 0 : excess;
    if ((uint64_t)excess > limit->burst)
        return LOOKUP_BUSY;
    if (!account) {
        hold(limit, node, now);
        return LOOKUP_HELD;
    }
    st->excess = excess;
    if (ms)
        st->last = now;
    return LOOKUP_ACCOUNTED;
}

/* A new key: an empty bucket, room made by expiring old ones. */
static int lookup_new(struct pt_limit_req_limit *limit, struct pt_str key, uint32_t hash,
                      uint64_t now, int account, int64_t *ep)
{
    struct pt_limit_zone *lz = limit->line.zone;
    struct pt_limit_node *node;

    *ep = 0;
    expire(lz, 1, now);
    if ((node = pt_limit_insert(lz, key, hash)) == NULL) {
        expire(lz, 0, now);
        if ((node = pt_limit_insert(lz, key, hash)) == NULL) {
            pt_log(PT_LOG_CRIT, "could not allocate node in limit_req zone \"%s\"", lz->name);
            return LOOKUP_NO_ROOM;
        }
    }
    if (!account) {
        hold(limit, node, now);
        return LOOKUP_HELD;
    }
    state_of(node)->last = now;
    return LOOKUP_ACCOUNTED;
}

/* nginx's ngx_http_limit_req_lookup for one limit; <account> for the last one. */
static int lookup(struct pt_limit_req_limit *limit, struct pt_str key, uint64_t now, int account,
                  int64_t *ep)
{
    struct pt_limit_zone *lz = limit->line.zone;
    uint32_t hash = pt_limit_hash(lz, key);
    struct pt_limit_node *node;
    int rc;

    if (pt_limit_lock(lz) != PT_OK)
        return LOOKUP_SKIP;
    node = pt_limit_find(lz, key, hash);
    rc = node ? lookup_found(limit, node, now, account, ep)
              : lookup_new(limit, key, hash, now, account, ep);
    pt_limit_unlock(lz);
    return rc;
}

/* Lets go of the nodes the first <n> limits hold.  With <now> not 0 it accounts them first,
 * as nginx's ngx_http_limit_req_account: a limit asking a longer delay than <max_delay>
 * becomes *<which>, its excess *<ep>.  Returns the longest delay. */
static uint64_t let_go(const struct pt_limit_lines *limits, int n, uint64_t now, uint64_t max_delay,
                       int64_t *ep, int *which)
{
    while (n--) {
        struct pt_limit_req_limit *l = limit_at(limits, n);
        struct req_state *st;
        int64_t ms, excess = 0;
        int valid;
        if (l->held == NULL || pt_limit_lock(l->line.zone) != PT_OK) {
            l->held = NULL;
            continue;
        }
        st = state_of(l->held);
        /* Emptied meanwhile (a process died holding the lock): the node is gone. */
        valid = pt_limit_epoch(l->line.zone) == l->held_epoch;
        if (valid && now) {
            ms = elapsed(now, st->last);
            excess = drain(st->excess, l->line.zone->rate, ms, 1000);
            st->excess = excess = excess < 0 ? 0 : excess;
            if (ms)
                st->last = now;
        }
        if (valid && st->count)
            st->count--;
        pt_limit_unlock(l->line.zone);
        l->held = NULL;
        if (valid && now && (uint64_t)excess > l->delay && delay_of(l, excess) > max_delay) {
            max_delay = delay_of(l, excess);
            *ep = excess;
            *which = n;
        }
    }
    return max_delay;
}

void pt_limit_req_decide(const struct pt_limit_lines *limits, const struct pt_str *keys,
                         uint64_t now, struct pt_limit_req_verdict *v)
{
    int rc = LOOKUP_SKIP, i, which, n = limits->n;
    int64_t excess = 0;

    *v = (struct pt_limit_req_verdict){PT_LIMIT_REQ_NONE, 0, 0, -1};
    for (i = 0; i < n; i++) {
        int got;
        if (keys[i].len == 0 ||
            (got = lookup(limit_at(limits, i), keys[i], now, i == n - 1, &excess)) == LOOKUP_SKIP)
            continue;
        if ((rc = got) != LOOKUP_HELD)
            break;
    }
    if (rc == LOOKUP_SKIP)
        return;
    if (rc == LOOKUP_BUSY || rc == LOOKUP_NO_ROOM) {
        let_go(limits, i, 0, 0, NULL, NULL);
        v->outcome = rc == LOOKUP_BUSY ? PT_LIMIT_REQ_REJECTED : PT_LIMIT_REQ_NO_ROOM;
        v->excess = excess;
        v->limit = i;
        return;
    }
    /* The limit that accounted at once (the last), or, when the last had no key, the last
     * one: nginx's starting point, its delay the one to beat. */
    which = i < n ? i : n - 1;
    if (rc == LOOKUP_HELD)
        excess = 0;
    v->delay_ms =
        let_go(limits, i, now, delay_of(limit_at(limits, which), excess), &excess, &which);
    v->outcome = v->delay_ms ? PT_LIMIT_REQ_DELAYED : PT_LIMIT_REQ_PASSED;
    v->excess = excess;
    v->limit = which;
}

/* --- requests --- */

/* A request waiting out its delay. */
struct delay {
    struct pt_timer timer;
    struct pt_request *r;
};

/* Whether the client of <r> closed its connection (or it failed): bytes it sent after its
 * request (a body, a pipelined request) are no end. */
static int client_gone(struct pt_request *r)
{
    char byte;
    ssize_t n = recv(r->c->s.ev.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);

    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* The client is readable while its request waits: if it left, nobody waits for the answer
 * (nginx's ngx_http_test_reading): the request ends as 499, its timer with its pool. */
static void delay_watch(struct pt_request *r)
{
    if (!client_gone(r))
        return;
    pt_http_log(r, PT_LOG_INFO, "client prematurely closed connection while delayed");
    r->status = 499;
    pt_http_abort(r);
}

static void delay_over(struct pt_timer *t)
{
    struct delay *d = t->data;

    d->r->read_handler = NULL;
    /* The handler runs again, finds the request decided, and the phases go on. */
    pt_http_run_phases(d->r);
}

/* The request's pool is going (it ended, or its client left): no timer may outlive it. */
static void delay_cancel(void *p)
{
    struct delay *d = p;

    pt_timer_del(&d->timer);
}

/* Suspends <r> for <ms>: PT_AGAIN, or PT_ERROR when out of memory. */
static int delay_request(struct pt_request *r, uint64_t ms)
{
    struct delay *d = pt_palloc(r->pool, sizeof(*d));

    if (d == NULL || pt_pool_cleanup(r->pool, delay_cancel, d) != PT_OK)
        return PT_ERROR;
    d->r = r;
    d->timer.handler = delay_over;
    d->timer.data = d;
    pt_timer_add(&d->timer, ms);
    r->read_handler = delay_watch;
    /* A client that closed before we got here sends no new edge: look now, from the loop. */
    if (r->c->s.readable)
        pt_event_post(&r->c->s.ev);
    return PT_AGAIN;
}

/* Acts on verdict <v> for <r> under the configuration <c>. */
static int enforce(struct pt_request *r, const struct pt_limit_conf *c,
                   const struct pt_limit_req_verdict *v)
{
    int64_t e = v->excess;
    const char *dry = c->dry_run ? ", dry run" : "";

    switch (v->outcome) {
    case PT_LIMIT_REQ_NONE: return PT_DECLINED;
    case PT_LIMIT_REQ_PASSED: r->limit_req_status = ST_PASSED; return PT_DECLINED;
    case PT_LIMIT_REQ_REJECTED:
        pt_http_log(r, c->log_level, "limiting requests%s, excess: %lld.%03lld by zone \"%s\"", dry,
                    (long long)(e / 1000), (long long)(e % 1000),
                    c->limits->v[v->limit]->zone->name);
        /* fall through */
    case PT_LIMIT_REQ_NO_ROOM:
        r->limit_req_status = c->dry_run ? ST_REJECTED_DRY_RUN : ST_REJECTED;
        return c->dry_run ? PT_DECLINED : (int)c->status;
    case PT_LIMIT_REQ_DELAYED: break;
    }
    /* nginx logs a delay one level below a refusal (info stays info). */
    pt_http_log(r, c->log_level == PT_LOG_INFO ? PT_LOG_INFO : c->log_level - 1,
                "delaying request%s, excess: %lld.%03lld, by zone \"%s\"", dry,
                (long long)(e / 1000), (long long)(e % 1000), c->limits->v[v->limit]->zone->name);
    r->limit_req_status = c->dry_run ? ST_DELAYED_DRY_RUN : ST_DELAYED;
    return c->dry_run ? PT_DECLINED : delay_request(r, v->delay_ms);
}

static int limit_req_handler(struct pt_request *r)
{
    const struct pt_limit_conf *c = pt_http_loc_conf(r, pt_limit_req_module);
    struct pt_limit_req_verdict v;
    struct pt_str *keys;
    int n;

    /* Decided already: an error_page's new pass, or back from a delay. */
    if (r->limit_req_status || c->limits == NULL)
        return PT_DECLINED;
    n = c->limits->n;
    if ((keys = pt_palloc(r->pool, (size_t)n * sizeof(*keys))) == NULL)
        return PT_ERROR;
    for (int i = 0; i < n; i++) {
        int rc = pt_limit_key(r, c->limits->v[i]->zone, UINT16_MAX, &keys[i]);
        if (rc == PT_ERROR)
            return PT_ERROR;
        if (rc == PT_DECLINED)
            keys[i] = PT_NULL_STR;
    }
    pt_limit_req_decide(c->limits, keys, pt_now_ms(), &v);
    return enforce(r, c, &v);
}

/* $limit_req_status: PASSED, DELAYED, REJECTED, DELAYED_DRY_RUN or REJECTED_DRY_RUN; no
 * value when no limit counted the request. */
static int var_status(struct pt_request *r, struct pt_str arg, struct pt_str *out)
{
    static const struct pt_str names[] = {{"PASSED", 6},
                                          {"DELAYED", 7},
                                          {"REJECTED", 8},
                                          {"DELAYED_DRY_RUN", 15},
                                          {"REJECTED_DRY_RUN", 16}};

    pt_unused(arg);
    if (r->limit_req_status == 0)
        return PT_DECLINED;
    *out = names[r->limit_req_status - 1];
    return PT_OK;
}

static int postconfig(struct pt_conf *cf)
{
    if (pt_var_register("limit_req_status", 0, var_status) != PT_OK)
        return pt_conf_error(cf, "cannot register $limit_req_status");
    if (pt_phase_add(cf->cycle, PT_PHASE_PREACCESS, limit_req_handler) != PT_OK)
        return pt_conf_error(cf, "too many phase handlers");
    return PT_OK;
}

struct pt_module pt_limit_req_module = {
    .name = "limit_req",
    .directives = limit_req_directives,
    .create_loc_conf = pt_limit_conf_create,
    .merge_loc_conf = pt_limit_conf_merge,
    .postconfig = postconfig,
};
