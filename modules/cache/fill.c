/*
 * fill.c: the cache on the proxy's way back: the tap the proxy consults (struct
 * pt_upstream_tap), which decides when the upstream's response head arrives whether it is
 * stored (RFC 9111 3 as a shared cache, nginx's rules for what the configuration says),
 * answers a revalidation's 304 or a failure with the stored entry, and invalidates on
 * unsafe methods; then the body filter that writes the stored copy as the body streams to
 * the client, and publishes it in the index once the last byte is on disk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/pool.h"
#include "core/times.h"
#include "modules/cache/cache.h"
#include "modules/cache/policy.h"

/* Fields never stored with a response: the framing and the connection are portier's to
 * set on each answer, and Age is computed when served. */
static int unstored(struct pt_str name)
{
    static const char *const names[] = {"content-length", "transfer-encoding", "connection",
                                        "keep-alive", "age"};

    for (size_t i = 0; i < pt_nelems(names); i++)
        if (pt_str_ieq(name, names[i]))
            return 1;
    return 0;
}

/* The response head as stored: "STATUS REASON\r\n" then the fields going to the client. */
static struct pt_str stored_head(struct pt_request *r)
{
    size_t cap = 64 + r->status_line.len, n;
    char *p;

    for (int i = 0; i < r->out.n; i++)
        cap += r->out.h[i].name.len + r->out.h[i].value.len + 4;
    p = pt_palloc(r->pool, cap + 1);
    if (p == NULL)
        return PT_NULL_STR;
    n = (size_t)snprintf(p, cap, "%d %.*s\r\n", r->status, (int)r->status_line.len,
                         r->status_line.p ? r->status_line.p : "");
    for (int i = 0; i < r->out.n; i++) {
        const struct pt_header *h = &r->out.h[i];
        if (unstored(h->name))
            continue;
        n += (size_t)snprintf(p + n, cap - n, "%.*s: %.*s\r\n", (int)h->name.len, h->name.p,
                              (int)h->value.len, h->value.p);
    }
    return (struct pt_str){p, n};
}

static void conf_of(const struct cache_loc_conf *lc, struct pt_cache_conf *conf)
{
    conf->methods = (unsigned)lc->methods;
    conf->ignore = (unsigned)lc->ignore & 0x1fu; /* the PT_CACHE_IGN_* share our bits */
    conf->flags = (lc->convert_head ? 0 : PT_CACHE_NO_CONVERT_HEAD) |
                  (lc->use_stale & CACHE_STALE_UPDATING ? PT_CACHE_STALE_UPDATING : 0) |
                  (lc->heuristic ? PT_CACHE_HEURISTIC : 0);
}

/* proxy_cache_valid's time for <status>: the line naming it, else "any"; -1 when none. */
static int64_t valid_for(const struct cache_loc_conf *lc, int status)
{
    int64_t any = PT_CACHE_VALID_NONE;

    for (int i = 0; i < lc->nvalid; i++) {
        if (lc->valid[i].status == status)
            return lc->valid[i].seconds;
        if (lc->valid[i].status == 0)
            any = lc->valid[i].seconds;
    }
    return any;
}

/* Releases the key's lock when this request will not fill it after all. */
static void give_up(struct cache_ctx *ctx)
{
    if (ctx->locked)
        cache_index_unlock(ctx->cache->zone, ctx->md5, ctx->ticket);
    ctx->locked = 0;
}

/* An unsafe method that succeeded invalidates what the cache holds for its URI (RFC 9111
 * 4.4): the key's entry, or all its variants. */
static void invalidate(struct cache_ctx *ctx)
{
    cache_purge(ctx->cache, ctx->r->pool, ctx->key.p, ctx->key.len, 1);
}

#define STORE_LOG_EVERY_S 60

/* A response could not be stored (<what> failed with errno): counted, and logged once a
 * minute at most, with how many went unlogged: a full disk must not flood the log. */
static void store_failed(struct cache_ctx *ctx, const char *what)
{
    static int64_t next;
    static unsigned quiet;
    int err = errno;

    cache_index_count(ctx->cache->zone, CACHE_STAT_STORE_FAILED);
    if (pt_time_sec() < next) {
        quiet++;
        return;
    }
    next = pt_time_sec() + STORE_LOG_EVERY_S;
    pt_log(PT_LOG_CRIT,
           "cache \"%s\": cannot %s a file in \"%s\": %s; the response is not cached (%u more "
           "since the last message)",
           ctx->cache->name, what, ctx->cache->path.dir, strerror(err), quiet);
    quiet = 0;
}

static int open_writer(struct cache_ctx *ctx, const struct cache_file_header *h, const char *names,
                       struct pt_str head);

/* Starts the stored copy of the response in <r> for <ctx>: the variant's key when it
 * varies, the file's header, its writer.  Returns PT_OK, or PT_DECLINED (not stored). */
static int start_writer(struct cache_ctx *ctx, const struct pt_cache_resp *resp,
                        const struct pt_cache_lifetime *lt, const struct pt_cc *cc)
{
    struct pt_request *r = ctx->r;
    struct pt_cache_conf conf;
    struct pt_cache_req req;
    struct cache_file_header h = {0};
    const struct pt_http_header *vary = NULL;
    char vkey[2048], names[CACHE_VARY_MAX];
    size_t vlen = 0;
    struct pt_str head = stored_head(r);

    conf_of(ctx->lc, &conf);
    cache_req_of(r, &req);
    if (!(ctx->lc->ignore & CACHE_IGN_VARY))
        vary = pt_http_find_header(resp->h, resp->n, "vary");
    names[0] = '\0';
    if (vary && vary->value.len) {
        if (pt_cache_vary_key(&conf, resp, &req, vkey, sizeof(vkey), &vlen) != PT_OK ||
            vary->value.len >= sizeof(names))
            return PT_DECLINED;
        snprintf(names, sizeof(names), "%.*s", (int)vary->value.len, vary->value.p);
        memcpy(h.main_md5, ctx->main_md5, CACHE_MD5_LEN);
        cache_md5(ctx->key.p, ctx->key.len, vkey, vlen, ctx->md5);
    }
    ctx->vary = vlen ? pt_pstrdup(r->pool, names) : NULL;
    h.date = pt_time_sec();
    h.age = pt_cache_age(resp, h.date);
    h.last_modified = -1;
    {
        const struct pt_http_header *lm = pt_http_find_header(resp->h, resp->n, "last-modified");
        if (lm)
            h.last_modified = pt_http_parse_date(lm->value, h.date);
    }
    h.meta.valid = lt->expires;
    h.meta.swr = cc->stale_while_revalidate > 0 ? cc->stale_while_revalidate : 0;
    h.meta.sie = cc->stale_if_error > 0 ? cc->stale_if_error : 0;
    if (cc->flags & (PT_CC_MUST_REVALIDATE | PT_CC_PROXY_REVALIDATE | PT_CC_NO_CACHE))
        h.meta.flags |= CACHE_F_MUST_REVALIDATE;
    return open_writer(ctx, &h, names, head);
}

/* Opens ctx->writer for the entry with header <h>, Vary <names> and head <head>.  PT_OK,
 * or PT_DECLINED (logged). */
static int open_writer(struct cache_ctx *ctx, const struct cache_file_header *h, const char *names,
                       struct pt_str head)
{
    struct pt_request *r = ctx->r;
    char *key = pt_pstrndup(r->pool, ctx->key.p, ctx->key.len);

    ctx->writer = pt_palloc(r->pool, sizeof(*ctx->writer));
    if (head.p == NULL || key == NULL || ctx->writer == NULL) {
        ctx->writer = NULL;
        return PT_DECLINED;
    }
    if (cache_writer_open(ctx->writer, &ctx->cache->path, ctx->md5, h, key, names, head.p, head.len,
                          (size_t)ctx->cache->mem_max) != PT_OK) {
        store_failed(ctx, "write");
        ctx->writer = NULL;
        return PT_DECLINED;
    }
    r->body_filtered = 1;
    return PT_OK;
}

/* The upstream's head has come: answer with the stored entry, or decide storing. */
static int tap_head(struct pt_request *r, const struct pt_http_response *up)
{
    struct cache_ctx *ctx = r->ctx[pt_cache_module.index];
    struct cache_loc_conf *lc = ctx->lc;
    struct pt_cache_resp resp = {up->status, up->headers, up->nheaders, 0, 0};
    struct pt_cache_conf conf;
    struct pt_cache_req req;
    struct pt_cache_lifetime lt;
    struct pt_cc cc;
    enum pt_cache_store why;

    resp.request_time = resp.response_time = pt_time_sec();
    if (ctx->revalidating && up->status == 304 && ctx->have_entry)
        return cache_revalidated(ctx, &resp);
    if (ctx->have_entry && cache_stale_for_status(ctx, up->status))
        return PT_DONE;
    if (pt_cache_invalidates(r->h.method_id, up->status))
        invalidate(ctx);
    if (!ctx->may_store || cache_any_set(r, lc->no_cache, lc->nno_cache)) {
        give_up(ctx);
        return PT_DECLINED;
    }
    conf_of(lc, &conf);
    cache_req_of(r, &req);
    why = pt_cache_storable(&conf, &req, &resp);
    pt_cache_freshness(&conf, &resp, valid_for(lc, up->status), &lt);
    pt_cc_parse(up->headers, up->nheaders, &cc);
    if (why != PT_CACHE_STORABLE || lt.lifetime == PT_CACHE_NOT_CACHEABLE ||
        start_writer(ctx, &resp, &lt, &cc) != PT_OK) {
        if (why != PT_CACHE_STORABLE)
            pt_log_debug("not cached: \"%.*s\": %s", (int)ctx->key.len, ctx->key.p,
                         pt_cache_store_text(why));
        give_up(ctx);
    }
    return PT_DECLINED;
}

/* Every try failed: a stale entry may answer (proxy_cache_use_stale error, timeout,
 * invalid_header, or the response's stale-if-error). */
static int tap_failed(struct pt_request *r, unsigned kind)
{
    struct cache_ctx *ctx = r->ctx[pt_cache_module.index];
    int want = kind == PT_UPSTREAM_TIMEOUT          ? CACHE_STALE_TIMEOUT
               : kind == PT_UPSTREAM_INVALID_HEADER ? CACHE_STALE_INVALID_HEADER
                                                    : CACHE_STALE_ERROR;

    if (!ctx->have_entry || !cache_stale_allowed(ctx, want))
        return PT_DECLINED;
    give_up(ctx);
    ctx->status = CACHE_STALE;
    return PT_DONE;
}

static int tap_answer(struct pt_request *r)
{
    struct cache_ctx *ctx = r->ctx[pt_cache_module.index];

    /* A background refresh answers no one: the client had the stale entry. */
    if (r->background) {
        cache_file_close(&ctx->file);
        return PT_OK;
    }
    return cache_serve(ctx, ctx->status);
}

void cache_tap_init(struct cache_ctx *ctx)
{
    struct pt_request *r = ctx->r;

    ctx->tap.strip_conditionals = 1;
    ctx->tap.head_as_get = ctx->lc->convert_head && r->h.method_id == PT_HTTP_HEAD;
    ctx->tap.head = tap_head;
    ctx->tap.failed = tap_failed;
    ctx->tap.answer = tap_answer;
    r->tap = &ctx->tap;
}

/* --- the body filter: writing the copy --- */

/* The last byte is in the file: into place, and into the index for every worker. */
static void publish(struct cache_ctx *ctx)
{
    struct cache_writer *w = ctx->writer;
    struct cache_meta meta = w->h.meta;
    uint64_t size;

    ctx->writer = NULL;
    if (cache_writer_commit(w, &size) != PT_OK) {
        store_failed(ctx, "complete");
        give_up(ctx);
        return;
    }
    meta.fs_size = size;
    if (ctx->vary) {
        /* The main node says which fields pick a variant; a plain entry it held before the
         * response began to vary is gone with its file. */
        struct cache_meta mm = {.valid = meta.valid, .flags = CACHE_F_VARY};
        char path[PATH_MAX];
        cache_index_publish(ctx->cache->zone, ctx->main_md5, ctx->key.p, ctx->key.len, &mm,
                            ctx->vary, NULL, 0, ctx->ticket);
        unlink(cache_file_path(&ctx->cache->path, ctx->main_md5, path, sizeof(path)));
    }
    if (cache_index_publish(ctx->cache->zone, ctx->md5, ctx->key.p, ctx->key.len, &meta, NULL,
                            w->mem, (uint32_t)w->mem_len, ctx->ticket) != PT_OK &&
        (cache_make_room(ctx->cache, ctx->r->pool),
         cache_index_publish(ctx->cache->zone, ctx->md5, ctx->key.p, ctx->key.len, &meta, NULL,
                             w->mem, (uint32_t)w->mem_len, ctx->ticket) != PT_OK)) {
        /* A file the index does not know would only wait for the next start's loader. */
        unlink(w->path);
        pt_log(PT_LOG_WARN, "cache \"%s\": no room in keys_zone for \"%.*s\"", ctx->cache->name,
               (int)ctx->key.len, ctx->key.p);
    } else
        cache_index_count(ctx->cache->zone, CACHE_STAT_STORED);
    free(w->mem);
    w->mem = NULL;
    ctx->locked = 0;
}

int cache_body_filter(struct pt_request *r, int self, const char *data, size_t len, int last)
{
    struct cache_ctx *ctx = r->ctx[pt_cache_module.index];

    if (ctx && ctx->writer && !ctx->serving) {
        if (len && cache_writer_append(ctx->writer, data, len) != PT_OK) {
            store_failed(ctx, "write");
            cache_writer_abort(ctx->writer);
            ctx->writer = NULL;
            give_up(ctx);
        } else if (last) {
            publish(ctx);
        }
    }
    /* A background refresh's body, or a HEAD's that went up as GET, is for the cache only. */
    if (r->background)
        return PT_OK;
    if (ctx && ctx->tap.head_as_get && !ctx->serving)
        return last ? pt_body_filter_next(r, self, NULL, 0, 1) : PT_OK;
    return pt_body_filter_next(r, self, data, len, last);
}

/* --- revalidation and stale answers --- */

int cache_revalidate(struct cache_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    struct pt_str etag = cache_head_field(ctx->file.head, "ETag");
    struct pt_str lm = cache_head_field(ctx->file.head, "Last-Modified");
    size_t cap = etag.len + lm.len + 64;
    char *p;
    int n = 0;

    if (etag.len == 0 && lm.len == 0)
        return PT_DECLINED;
    p = pt_palloc(r->pool, cap);
    if (p == NULL)
        return PT_DECLINED;
    if (lm.len)
        n += snprintf(p + n, cap - (size_t)n, "If-Modified-Since: %.*s\r\n", (int)lm.len, lm.p);
    if (etag.len)
        n += snprintf(p + n, cap - (size_t)n, "If-None-Match: %.*s\r\n", (int)etag.len, etag.p);
    ctx->tap.extra = (struct pt_str){p, (size_t)n};
    ctx->revalidating = 1;
    return PT_DECLINED;
}

/* The stored head with the fields of the 304 <resp> in place of the stored ones of the
 * same names (RFC 9111 4.3.4), as text, and as a field array in *<fields>/<nfields>. */
static struct pt_str merge_head(struct cache_ctx *ctx, const struct pt_cache_resp *resp,
                                struct pt_http_header **fields, size_t *nfields)
{
    struct pt_request *r = ctx->r;
    struct pt_headers saved = r->out;
    struct pt_str status_line = r->status_line, head;
    int status = r->status;

    /* The stored head is read into the request's response fields (as serving would),
     * merged there, then written out again. */
    r->out.n = 0;
    r->out.h = NULL;
    r->out.cap = 0;
    if (cache_apply_head(r, pt_pstrdup(r->pool, ctx->file.head)) != PT_OK) {
        r->out = saved;
        return PT_NULL_STR;
    }
    for (size_t i = 0; i < resp->n; i++) {
        struct pt_str name = resp->h[i].name;
        if (unstored(name) || pt_str_ieq(name, "date") || pt_str_ieq(name, "server"))
            continue;
        if (pt_header_find(&r->out, pt_pstrndup(r->pool, name.p, name.len)))
            pt_header_remove(&r->out, pt_pstrndup(r->pool, name.p, name.len));
    }
    for (size_t i = 0; i < resp->n; i++) {
        struct pt_str name = resp->h[i].name;
        if (unstored(name) || pt_str_ieq(name, "date") || pt_str_ieq(name, "server"))
            continue;
        pt_header_add(r, &r->out, name, resp->h[i].value);
    }
    head = stored_head(r);
    *nfields = (size_t)r->out.n;
    *fields = pt_palloc(r->pool, (size_t)(r->out.n + 1) * sizeof(**fields));
    for (int i = 0; *fields && i < r->out.n; i++)
        (*fields)[i] = (struct pt_http_header){r->out.h[i].name, r->out.h[i].value};
    r->out = saved;
    r->status = status;
    r->status_line = status_line;
    return *fields ? head : PT_NULL_STR;
}

int cache_revalidated(struct cache_ctx *ctx, const struct pt_cache_resp *resp)
{
    struct pt_request *r = ctx->r;
    struct cache_file_header h = ctx->file.h;
    struct pt_http_header *fields = NULL;
    size_t nfields = 0;
    struct pt_str head = merge_head(ctx, resp, &fields, &nfields);
    int stored_status = atoi(ctx->file.head);
    struct pt_cache_resp merged = {stored_status, fields, nfields, resp->request_time,
                                   resp->response_time};
    struct pt_cache_conf conf;
    struct pt_cache_lifetime lt;
    struct pt_cc cc;

    if (head.p == NULL)
        return PT_DECLINED;
    conf_of(ctx->lc, &conf);
    pt_cache_freshness(&conf, &merged, valid_for(ctx->lc, stored_status), &lt);
    pt_cc_parse(fields, nfields, &cc);
    h.date = pt_time_sec();
    h.age = pt_cache_age(resp, h.date);
    h.meta.valid = lt.lifetime == PT_CACHE_NOT_CACHEABLE ? h.date : lt.expires;
    h.meta.swr = cc.stale_while_revalidate > 0 ? cc.stale_while_revalidate : 0;
    h.meta.sie = cc.stale_if_error > 0 ? cc.stale_if_error : 0;
    if (open_writer(ctx, &h, ctx->file.vary, head) != PT_OK)
        return PT_DECLINED;
    if (ctx->file.mem_body)
        cache_writer_append(ctx->writer, ctx->file.mem_body, ctx->file.h.body_len);
    else
        cache_writer_copy(ctx->writer, ctx->file.fd, (off_t)ctx->file.h.header_len,
                          ctx->file.h.body_len);
    publish(ctx);
    /* The new file answers: what was stored, with the 304's fields. */
    cache_file_close(&ctx->file);
    ctx->have_entry = 0;
    if (cache_file_open(&ctx->cache->path, ctx->md5, r->pool, &ctx->file) != PT_OK)
        return PT_DECLINED;
    ctx->have_entry = 1;
    ctx->status = CACHE_REVALIDATED;
    return PT_DONE;
}

/* must-revalidate, proxy-revalidate and no-cache forbid a stale answer whatever
 * proxy_cache_use_stale says (RFC 9111 5.2.2.2: an error rather than the stale response;
 * nginx lets use_stale win). */
int cache_stale_allowed(struct cache_ctx *ctx, int want)
{
    const struct cache_meta *m = &ctx->file.h.meta;

    if (m->flags & CACHE_F_MUST_REVALIDATE)
        return 0;
    return (ctx->lc->use_stale & want) || pt_time_sec() < m->valid + m->sie;
}

int cache_stale_for_status(struct cache_ctx *ctx, int status)
{
    static const struct {
        int status, bit;
    } map[] = {{500, CACHE_STALE_HTTP_500}, {502, CACHE_STALE_HTTP_502},
               {503, CACHE_STALE_HTTP_503}, {504, CACHE_STALE_HTTP_504},
               {403, CACHE_STALE_HTTP_403}, {404, CACHE_STALE_HTTP_404},
               {429, CACHE_STALE_HTTP_429}};
    const struct cache_meta *m = &ctx->file.h.meta;

    for (size_t i = 0; i < pt_nelems(map); i++) {
        if (map[i].status != status)
            continue;
        /* stale-if-error covers the 5xx the RFC calls errors (RFC 5861 4). */
        if (m->flags & CACHE_F_MUST_REVALIDATE)
            return 0;
        if ((ctx->lc->use_stale & map[i].bit) ||
            (status >= 500 && pt_time_sec() < m->valid + m->sie)) {
            give_up(ctx);
            ctx->status = CACHE_STALE;
            return 1;
        }
    }
    return 0;
}
