/*
 * lookup.c: a request meets the cache, before the content phase: its key, the entry the
 * index has for it (and its variant, when the response varies), and the decision: serve
 * it (HIT; STALE or UPDATING when allowed), go upstream to fill or refresh it (MISS,
 * EXPIRED, with a revalidation when proxy_cache_revalidate), or wait while another request
 * fills it (proxy_cache_lock), polling the shared index so that waiters in every worker
 * see the entry as soon as it is published.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/pool.h"
#include "core/times.h"
#include "modules/cache/cache.h"
#include "modules/cache/policy.h"

#define LOCK_POLL_MS 20 /* how often a waiter looks whether the entry came */

void cache_md5(const char *a, size_t alen, const char *b, size_t blen, uint8_t *out)
{
    /* One context and one fetched digest per process: OpenSSL 3 looks EVP_md5() up (under
     * a lock) on every init otherwise, which was a tenth of a small hit's time. */
    static EVP_MD_CTX *md;
    static EVP_MD *md5;
    unsigned n = 0;

    /* MD5 names the files as nginx's do; no one relies on it being hard to collide (the
     * key is stored in the file and compared on use). */
    if (md == NULL)
        md = EVP_MD_CTX_new();
    if (md5 == NULL)
        md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    if (md == NULL || md5 == NULL || EVP_DigestInit_ex(md, md5, NULL) != 1 ||
        EVP_DigestUpdate(md, a, alen) != 1 || (blen && EVP_DigestUpdate(md, b, blen) != 1) ||
        EVP_DigestFinal_ex(md, out, &n) != 1)
        memset(out, 0, CACHE_MD5_LEN);
}

/* A value unique to this request among every process of every generation.  The pid is
 * taken once per process (glibc makes getpid() a system call each time); workers are
 * forked before their first request, so each takes its own. */
static uint64_t new_ticket(void)
{
    static uint32_t seq;
    static pid_t pid;

    if (pid == 0)
        pid = getpid();
    return ((uint64_t)(uint32_t)pid << 32) | ++seq;
}

/* True when one of the values of <t> (proxy_cache_bypass, proxy_no_cache) is not empty
 * and not "0". */
int cache_any_set(struct pt_request *r, const struct cache_tpl *t, int n)
{
    for (int i = 0; i < n; i++) {
        struct pt_str v;
        if (pt_template_eval(r, t[i].t, &v) == PT_OK && v.len && !(v.len == 1 && v.p[0] == '0'))
            return 1;
    }
    return 0;
}

void cache_req_of(struct pt_request *r, struct pt_cache_req *req)
{
    req->method = r->h.method_id;
    req->h = r->h.headers;
    req->n = r->h.nheaders;
}

/* Forgets <ctx>'s entry: its node and its file (corrupt, or not what the key says). */
static void drop_entry(struct cache_ctx *ctx)
{
    char path[PATH_MAX];

    cache_file_close(&ctx->file);
    ctx->have_entry = 0;
    if (cache_index_remove(ctx->cache->zone, ctx->md5) == 1)
        unlink(cache_file_path(&ctx->cache->path, ctx->md5, path, sizeof(path)));
}

/* Opens the entry the view saw: the memory copy when there is one, else the file.  PT_OK,
 * or PT_DECLINED when there is none (after dropping a bad one). */
static int open_entry(struct cache_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    int rc;

    if (ctx->view.mem_len)
        rc = cache_file_parse(ctx->mem, ctx->view.mem_len, r->pool, &ctx->file);
    else
        rc = cache_file_open(&ctx->cache->path, ctx->md5, r->pool, &ctx->file);
    if (rc == PT_OK && (ctx->file.h.key_len != ctx->key.len ||
                        memcmp(ctx->file.key, ctx->key.p, ctx->key.len) != 0)) {
        pt_log(PT_LOG_WARN, "cache key collision or stale file for \"%.*s\": dropped",
               (int)ctx->key.len, ctx->key.p);
        rc = PT_ERROR;
    }
    if (rc == PT_OK) {
        ctx->have_entry = 1;
        return PT_OK;
    }
    cache_file_close(&ctx->file);
    if (rc == PT_ERROR || ctx->view.exists)
        drop_entry(ctx);
    return PT_DECLINED;
}

/* Looks up ctx->md5, counting the use the first time.  Returns 1 (found), 0 (not), -1.
 * The memory copy comes through a scratch buffer of the process's (no 16 KiB to allocate
 * and zero per request) and is kept in the request's pool at its own size. */
static int index_lookup(struct cache_ctx *ctx)
{
    static char *scratch;
    static size_t scratch_len;
    size_t room = (size_t)ctx->cache->mem_max;
    int rc;

    if (room > scratch_len) {
        char *p = realloc(scratch, room);
        if (p) {
            scratch = p;
            scratch_len = room;
        }
    }
    if (room > scratch_len)
        room = 0;
    rc = cache_index_lookup(ctx->cache->zone, ctx->md5, ctx->key.p, ctx->key.len, !ctx->waited,
                            room ? scratch : NULL, room, ctx->ticket, &ctx->view);
    if (ctx->view.mem_len) {
        ctx->mem = pt_pnalloc(ctx->r->pool, ctx->view.mem_len);
        if (ctx->mem)
            memcpy(ctx->mem, scratch, ctx->view.mem_len);
        else
            ctx->view.mem_len = 0;
    }
    return rc;
}

/* The key varies: looks up the variant that the request's values of the Vary names pick.
 * Returns as index_lookup. */
static int lookup_variant(struct cache_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    struct pt_http_header vary = {PT_STR("Vary"), pt_str_c(ctx->view.vary)};
    struct pt_cache_resp stored = {.status = 200, .h = &vary, .n = 1};
    struct pt_cache_conf conf = {0};
    struct pt_cache_req req;
    char buf[2048];
    size_t len;

    ctx->vary = pt_pstrdup(r->pool, ctx->view.vary);
    cache_req_of(r, &req);
    if (ctx->vary == NULL ||
        pt_cache_vary_key(&conf, &stored, &req, buf, sizeof(buf), &len) != PT_OK)
        return 0;
    cache_md5(ctx->key.p, ctx->key.len, buf, len, ctx->md5);
    return index_lookup(ctx);
}

static void wait_fired(struct pt_timer *t)
{
    struct cache_ctx *ctx = t->data;

    ctx->waited = 1;
    pt_http_run_phases(ctx->r);
}

/* Another request is filling the key: look again soon, until proxy_cache_lock_timeout. */
static int wait_for_lock(struct cache_ctx *ctx)
{
    if (ctx->wait_until == 0)
        ctx->wait_until = pt_now_ms() + (uint64_t)ctx->lc->lock_timeout;
    if (pt_now_ms() >= ctx->wait_until) {
        /* nginx's rule: the request goes upstream, and its response is not stored. */
        ctx->may_store = 0;
        ctx->status = CACHE_MISS;
        return PT_DECLINED;
    }
    ctx->wait.handler = wait_fired;
    ctx->wait.data = ctx;
    pt_timer_add(&ctx->wait, LOCK_POLL_MS);
    return PT_AGAIN;
}

/* Goes upstream to fill or refresh the entry, holding its lock when that can be had. */
static int go_upstream(struct cache_ctx *ctx, enum cache_status status)
{
    int64_t until = 0;
    int rc = cache_index_lock(ctx->cache->zone, ctx->md5, ctx->ticket, ctx->lc->lock_age, &until);

    ctx->status = status;
    ctx->may_store = 1;
    if (rc == 1) {
        ctx->locked = 1;
    } else if (rc == 0 && ctx->lc->lock) {
        return wait_for_lock(ctx);
    }
    if (status == CACHE_EXPIRED && ctx->have_entry && ctx->lc->revalidate)
        return cache_revalidate(ctx);
    return PT_DECLINED;
}

/* What to do with the stale entry ctx->file: serve it while another request updates it
 * (proxy_cache_use_stale updating, or stale-while-revalidate); serve it and refresh it in
 * the background (proxy_cache_background_update), or go upstream. */
static int stale_entry(struct cache_ctx *ctx)
{
    int64_t now = pt_time_sec(), until;
    const struct cache_meta *m = &ctx->view.meta;
    int may_stale = !(m->flags & CACHE_F_MUST_REVALIDATE) &&
                    ((ctx->lc->use_stale & CACHE_STALE_UPDATING) || now < m->valid + m->swr);

    if (ctx->view.updating && !ctx->view.mine && may_stale)
        return cache_serve(ctx, CACHE_UPDATING);
    if (may_stale && ctx->lc->background_update &&
        cache_index_lock(ctx->cache->zone, ctx->md5, ctx->ticket, ctx->lc->lock_age, &until) == 1) {
        ctx->locked = 1;
        ctx->may_store = 1;
        ctx->background = 1;
        if (ctx->lc->revalidate)
            cache_revalidate(ctx);
        return cache_serve(ctx, CACHE_STALE);
    }
    return go_upstream(ctx, CACHE_EXPIRED);
}

/* The decision for a looked-up key. */
static int decide(struct cache_ctx *ctx)
{
    int found = index_lookup(ctx);

    if (found < 0) {
        /* nginx's way too: a full keys_zone makes room at once, not at the next sweep. */
        cache_make_room(ctx->cache, ctx->r->pool);
        found = index_lookup(ctx);
    }
    if (found == 1 && ctx->view.meta.flags & CACHE_F_VARY)
        found = lookup_variant(ctx);
    if (found < 0) {
        pt_log(PT_LOG_WARN, "cache \"%s\": no room in keys_zone for \"%.*s\"", ctx->cache->name,
               (int)ctx->key.len, ctx->key.p);
        ctx->status = CACHE_MISS;
        return PT_DECLINED;
    }
    if (found && ctx->view.exists && open_entry(ctx) == PT_OK) {
        if (pt_time_sec() < ctx->view.meta.valid)
            return cache_serve(ctx, CACHE_HIT);
        return stale_entry(ctx);
    }
    if ((int64_t)ctx->view.uses < ctx->lc->min_uses) {
        ctx->status = CACHE_MISS; /* proxy_cache_min_uses not reached: not stored yet */
        return PT_DECLINED;
    }
    return go_upstream(ctx, CACHE_MISS);
}

static void ctx_cleanup(void *arg)
{
    struct cache_ctx *ctx = arg;

    pt_timer_del(&ctx->wait);
    cache_file_close(&ctx->file);
    if (ctx->writer)
        cache_writer_abort(ctx->writer);
    ctx->writer = NULL;
    if (ctx->locked)
        cache_index_unlock(ctx->cache->zone, ctx->md5, ctx->ticket);
    ctx->locked = 0;
}

static int unsafe_method(int m)
{
    return m == PT_HTTP_POST || m == PT_HTTP_PUT || m == PT_HTTP_DELETE || m == PT_HTTP_PATCH;
}

/* Sets up <r>'s use of the cache: its context, the tap the proxy consults, the key. */
static struct cache_ctx *start(struct pt_request *r, struct cache_loc_conf *lc)
{
    struct cache_ctx *ctx = pt_palloc(r->pool, sizeof(*ctx));

    if (ctx == NULL || pt_pool_cleanup(r->pool, ctx_cleanup, ctx) != PT_OK)
        return NULL;
    ctx->r = r;
    ctx->lc = lc;
    ctx->cache = lc->cache;
    ctx->file.fd = -1;
    ctx->ticket = new_ticket();
    if (pt_template_eval(r, lc->key->t, &ctx->key) != PT_OK)
        return NULL;
    cache_md5(ctx->key.p, ctx->key.len, NULL, 0, ctx->main_md5);
    memcpy(ctx->md5, ctx->main_md5, CACHE_MD5_LEN);
    cache_tap_init(ctx);
    r->ctx[pt_cache_module.index] = ctx;
    return ctx;
}

int cache_lookup_handler(struct pt_request *r)
{
    struct cache_loc_conf *lc = pt_http_loc_conf(r, pt_cache_module);
    struct cache_ctx *ctx = r->ctx[pt_cache_module.index];

    if (ctx) /* back from waiting for another request's lock */
        return ctx->serving ? PT_AGAIN : decide(ctx);
    if (lc->cache == NULL)
        return PT_DECLINED;
    if (!(lc->methods & (1 << r->h.method_id))) {
        /* Not cached, but an unsafe method's success invalidates the URI's entry (RFC 9111
         * 4.4): the tap watches its answer, asking nothing of the request. */
        if (!unsafe_method(r->h.method_id))
            return PT_DECLINED;
        ctx = start(r, lc);
        if (ctx == NULL)
            return PT_ERROR;
        ctx->tap.strip_conditionals = 0;
        ctx->tap.head_as_get = 0;
        return PT_DECLINED;
    }
    ctx = start(r, lc);
    if (ctx == NULL)
        return PT_ERROR;
    if (cache_any_set(r, lc->bypass, lc->nbypass)) {
        /* nginx: the upstream's response may still be stored. */
        ctx->status = CACHE_BYPASS;
        ctx->may_store = 1;
        return PT_DECLINED;
    }
    return decide(ctx);
}
