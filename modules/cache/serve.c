/*
 * serve.c: answering a request from a stored response: the stored head, Age, the client's
 * own conditionals and range, then the body from the memory copy (no file I/O) or from the
 * file, read as fast as the client takes it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/log.h"
#include "core/pool.h"
#include "core/times.h"
#include "modules/cache/cache.h"
#include "modules/cache/policy.h"
#include "worker/http_phase.h"

int cache_apply_head(struct pt_request *r, char *head)
{
    char *line = head, *eol;
    long status;

    status = strtol(line, &eol, 10);
    if (status < 100 || status > 599 || (*eol != ' ' && *eol != '\r'))
        return PT_ERROR;
    r->status = (int)status;
    line = strstr(eol, "\r\n");
    if (line == NULL)
        return PT_ERROR;
    if (*eol == ' ' && line > eol + 1)
        r->status_line = (struct pt_str){eol + 1, (size_t)(line - eol - 1)};
    for (line += 2; *line && (eol = strstr(line, "\r\n")) != NULL; line = eol + 2) {
        char *colon = memchr(line, ':', (size_t)(eol - line));
        char *v;
        if (colon == NULL)
            return PT_ERROR;
        v = colon + 1;
        while (v < eol && *v == ' ')
            v++;
        if (pt_header_add(r, &r->out, (struct pt_str){line, (size_t)(colon - line)},
                          (struct pt_str){v, (size_t)(eol - v)}) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

/* Age (RFC 9111 4.2.3, 5.1): the age the response had when stored, plus its time here. */
static int add_age(struct cache_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    int64_t age = ctx->file.h.age + pt_max(pt_time_sec() - ctx->file.h.date, 0);
    char *v = pt_palloc(r->pool, 24);

    if (v == NULL)
        return PT_ERROR;
    pt_header_remove(&r->out, "Age");
    return pt_header_add(r, &r->out, PT_STR("Age"),
                         (struct pt_str){v, (size_t)snprintf(v, 24, "%lld", (long long)age)});
}

struct pt_str cache_head_field(const char *head, const char *name)
{
    size_t n = strlen(name);
    const char *line = strstr(head, "\r\n");

    while (line && line[2]) {
        const char *eol = strstr(line + 2, "\r\n");
        line += 2;
        if (eol == NULL)
            break;
        if ((size_t)(eol - line) > n && line[n] == ':' && strncasecmp(line, name, n) == 0) {
            const char *v = line + n + 1;
            while (v < eol && *v == ' ')
                v++;
            return (struct pt_str){v, (size_t)(eol - v)};
        }
        line = eol;
    }
    return PT_NULL_STR;
}

/* The response in <r> as the policy sees a stored one. */
static int stored_of(struct pt_request *r, struct pt_cache_resp *stored)
{
    struct pt_http_header *f = pt_palloc(r->pool, (size_t)(r->out.n + 1) * sizeof(*f));

    if (f == NULL)
        return PT_ERROR;
    for (int i = 0; i < r->out.n; i++)
        f[i] = (struct pt_http_header){r->out.h[i].name, r->out.h[i].value};
    *stored = (struct pt_cache_resp){r->status, f, (size_t)r->out.n, pt_time_sec(), pt_time_sec()};
    return PT_OK;
}

int cache_apply_range(struct cache_ctx *ctx, int kind, const struct pt_cache_range *range)
{
    struct pt_request *r = ctx->r;
    char *v = pt_palloc(r->pool, 64);
    uint64_t len = ctx->file.h.body_len;
    int n;

    if (v == NULL)
        return PT_ERROR;
    if (kind == PT_CACHE_RANGE_UNSATISFIABLE) {
        n = snprintf(v, 64, "bytes */%llu", (unsigned long long)len);
        r->status = 416;
        r->status_line = PT_NULL_STR;
        r->out.n = 0; /* a 416 is not the entry: none of its fields */
        r->out_length = 0;
        ctx->left = 0;
        return pt_header_add(r, &r->out, PT_STR("Content-Range"), (struct pt_str){v, (size_t)n});
    }
    n = snprintf(v, 64, "bytes %lld-%lld/%llu", (long long)range->first, (long long)range->last,
                 (unsigned long long)len);
    r->status = 206;
    r->status_line = PT_NULL_STR;
    ctx->off += (off_t)range->first;
    ctx->left = (uint64_t)(range->last - range->first + 1);
    r->out_length = (int64_t)ctx->left;
    return pt_header_add(r, &r->out, PT_STR("Content-Range"), (struct pt_str){v, (size_t)n});
}

/* The client's own conditionals and range, answered from the stored entry (RFC 9110 13.2.2,
 * 14.2): a 304 or 412 without a body, a 206 of one range, a 416, or the whole 200.  Several
 * ranges get the whole 200, as nginx's cache gives them. */
static int answer_conditionals(struct cache_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    struct pt_cache_resp stored;
    struct pt_cache_range range;
    struct pt_cache_req req;
    int st;

    if (r->status < 200 || r->status > 299 || stored_of(r, &stored) != PT_OK)
        return r->status < 200 || r->status > 299 ? PT_OK : PT_ERROR;
    cache_req_of(r, &req);
    st = pt_cache_conditional(&req, &stored, PT_CACHE_IMS_EXACT);
    if (st) {
        r->status = st;
        r->status_line = PT_NULL_STR;
        r->out_length = -1;
        ctx->left = 0;
        if (st == 412)
            r->out.n = 0;
        return PT_OK;
    }
    if (r->status != 200)
        return PT_OK;
    if (pt_header_add(r, &r->out, PT_STR("Accept-Ranges"), PT_STR("bytes")) != PT_OK)
        return PT_ERROR;
    st = (int)pt_cache_range(&req, &stored, (int64_t)ctx->file.h.body_len, &range);
    if (st == PT_CACHE_RANGE_SINGLE || st == PT_CACHE_RANGE_UNSATISFIABLE)
        return cache_apply_range(ctx, st, &range);
    return PT_OK;
}

static void send_more(struct pt_request *r);

/* The stale entry is out: the request goes on to the content handler (the proxy), its
 * output for the cache only, to refresh the entry.  Returns PT_AGAIN. */
static int start_background(struct cache_ctx *ctx)
{
    struct pt_request *r = ctx->r;

    /* The entry stays open: a revalidation's 304 copies its body.  The response fields
     * start empty again: the upstream's answer is what gets stored. */
    ctx->serving = 0;
    r->out.n = 0;
    r->status_line = PT_NULL_STR;
    r->background = 1;
    r->phase = PT_PHASE_CONTENT;
    r->phase_index = 0;
    pt_http_run_phases(r);
    return PT_AGAIN;
}

/* Sends file bytes while the client takes them.  PT_OK when the body is out, PT_AGAIN when
 * the client must read first, PT_ERROR. */
static int send_file(struct cache_ctx *ctx)
{
    struct pt_request *r = ctx->r;
    char path[PATH_MAX];

    while (ctx->left) {
        ssize_t got;
        if (pt_http_output_blocked(r)) {
            pt_http_wait_output(r, send_more);
            return PT_AGAIN;
        }
        got = pt_http_send_file_part(
            r, ctx->file.fd, cache_file_path(&ctx->cache->path, ctx->md5, path, sizeof(path)),
            ctx->off, (int64_t)ctx->left, 1, &ctx->buf);
        if (got == PT_AGAIN) {
            pt_http_wait_output(r, send_more);
            return PT_AGAIN;
        }
        if (got <= 0)
            return PT_ERROR;
        ctx->off += got;
        ctx->left -= (uint64_t)got;
    }
    return PT_OK;
}

/* The client took what waited: the next piece of the file. */
static void send_more(struct pt_request *r)
{
    struct cache_ctx *ctx = r->ctx[pt_cache_module.index];
    int rc = send_file(ctx);

    if (rc == PT_AGAIN)
        return;
    if (rc == PT_OK && ctx->background) {
        start_background(ctx);
        return;
    }
    cache_file_close(&ctx->file);
    pt_http_finalize(r, rc == PT_OK ? PT_OK : PT_ERROR);
}

int cache_serve(struct cache_ctx *ctx, enum cache_status status)
{
    struct pt_request *r = ctx->r;
    int rc;

    ctx->status = status;
    ctx->serving = 1;
    r->out.n = 0;
    r->status_line = PT_NULL_STR;
    if (cache_apply_head(r, ctx->file.head) != PT_OK) {
        pt_log(PT_LOG_ERR, "the stored head of \"%.*s\" is unreadable", (int)ctx->key.len,
               ctx->key.p);
        return PT_ERROR;
    }
    r->out_length = (int64_t)ctx->file.h.body_len;
    ctx->off = (off_t)ctx->file.h.header_len;
    ctx->left = ctx->file.h.body_len;
    if (add_age(ctx) != PT_OK || answer_conditionals(ctx) != PT_OK)
        return PT_ERROR;
    if (pt_http_send_header(r) != PT_OK)
        return PT_ERROR;
    if (r->header_only || ctx->left == 0) {
        rc = r->header_only ? PT_OK : pt_http_send_body(r, NULL, 0, 1);
    } else if (ctx->file.mem_body) {
        rc = pt_http_send_body(r, ctx->file.mem_body + (ctx->off - ctx->file.h.header_len),
                               (size_t)ctx->left, 1);
    } else {
        rc = send_file(ctx);
        if (rc == PT_AGAIN)
            return PT_AGAIN;
    }
    if (rc == PT_OK && ctx->background)
        return start_background(ctx);
    cache_file_close(&ctx->file);
    return rc == PT_OK ? PT_OK : PT_ERROR;
}
