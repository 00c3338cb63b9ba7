/*
 * purge.c: a proxy_cache_purge location (beyond nginx's free edition): PURGE or DELETE with
 * ?key=KEY removes that key's entry and its variants, ?prefix=PREFIX every entry whose key
 * starts so (an empty prefix empties the cache); the answer is JSON with how many entries
 * went.  Restrict the location with allow/deny, as the status page.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/pool.h"
#include "core/times.h"
#include "modules/cache/cache.h"

/* The md5s of the files to remove, gathered under the index's lock. */
struct doomed {
    struct pt_pool *pool;
    uint8_t (*md5)[CACHE_MD5_LEN];
    size_t n, cap;
};

static void doom(void *arg, const uint8_t *md5)
{
    struct doomed *d = arg;

    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        uint8_t(*a)[CACHE_MD5_LEN] = pt_palloc(d->pool, cap * CACHE_MD5_LEN);
        if (a == NULL)
            return; /* its file stays: the loader of a restart finds it orphaned */
        if (d->n)
            memcpy(a, d->md5, d->n * CACHE_MD5_LEN);
        d->md5 = a;
        d->cap = cap;
    }
    memcpy(d->md5[d->n++], md5, CACHE_MD5_LEN);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 32);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The query argument <name> of <r>, percent-decoded (and '+' as a space) into the pool;
 * NULL when absent. */
static struct pt_str *query_arg(struct pt_request *r, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = r->args.p, *end = r->args.p + r->args.len;

    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) >= nlen + 1 && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
            struct pt_str *v = pt_palloc(r->pool, sizeof(*v));
            char *out = pt_palloc(r->pool, (size_t)(stop - p) + 1);
            size_t n = 0;
            if (v == NULL || out == NULL)
                return NULL;
            for (const char *q = p + nlen + 1; q < stop; q++) {
                if (*q == '%' && q + 2 < stop && hexval(q[1]) >= 0 && hexval(q[2]) >= 0) {
                    out[n++] = (char)(hexval(q[1]) * 16 + hexval(q[2]));
                    q += 2;
                } else {
                    out[n++] = *q == '+' ? ' ' : *q;
                }
            }
            *v = (struct pt_str){out, n};
            return v;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

uint64_t cache_purge(struct cache *c, struct pt_pool *pool, const char *key, size_t len, int exact)
{
    struct doomed d = {pool, NULL, 0, 0};
    char path[PATH_MAX];
    uint64_t gone = cache_index_purge(c->zone, key, len, exact, doom, &d);

    for (size_t i = 0; i < d.n; i++)
        unlink(cache_file_path(&c->path, d.md5[i], path, sizeof(path)));
    return gone;
}

void cache_make_room(struct cache *c, struct pt_pool *pool)
{
    struct doomed d = {pool, NULL, 0, 0};
    char path[PATH_MAX];

    cache_index_sweep(c->zone, pt_time_sec(), c->inactive, (uint64_t)c->max_size, 0, doom, &d);
    for (size_t i = 0; i < d.n; i++)
        unlink(cache_file_path(&c->path, d.md5[i], path, sizeof(path)));
}

/* Sends <body> as JSON with <status>. */
static int answer(struct pt_request *r, int status, const char *body, int len)
{
    r->status = status;
    r->out_length = len;
    if (pt_header_add(r, &r->out, PT_STR("Content-Type"), PT_STR("application/json")) != PT_OK ||
        pt_header_add(r, &r->out, PT_STR("Cache-Control"), PT_STR("no-store")) != PT_OK ||
        pt_http_send_header(r) != PT_OK || pt_http_send_body(r, body, (size_t)len, 1) != PT_OK)
        return PT_ERROR;
    return PT_OK;
}

int cache_purge_handler(struct pt_request *r)
{
    struct cache_loc_conf *lc = pt_http_loc_conf(r, pt_cache_module);
    struct cache *c = lc->purge;
    struct pt_str *key = query_arg(r, "key"), *prefix = key ? NULL : query_arg(r, "prefix");
    char *body;
    uint64_t gone;
    int len;

    if (r->h.method_id != PT_HTTP_DELETE &&
        !(r->h.method_id == PT_HTTP_OTHER && pt_str_eq(r->h.method, "PURGE"))) {
        static const char refusal[] = "{\"error\":\"use PURGE or DELETE\"}\n";
        if (pt_header_add(r, &r->out, PT_STR("Allow"), PT_STR("PURGE, DELETE")) != PT_OK)
            return PT_ERROR;
        return answer(r, 405, refusal, (int)sizeof(refusal) - 1);
    }
    if (key == NULL && prefix == NULL)
        return answer(r, 400, "{\"error\":\"give ?key=KEY or ?prefix=PREFIX\"}\n", 43);
    if (key)
        gone = cache_purge(c, r->pool, key->p, key->len, 1);
    else
        gone = cache_purge(c, r->pool, prefix->p, prefix->len, 0);
    body = pt_palloc(r->pool, 128 + strlen(c->name));
    if (body == NULL)
        return PT_ERROR;
    len = snprintf(body, 128 + strlen(c->name), "{\"cache\":\"%s\",\"purged\":%llu}\n", c->name,
                   (unsigned long long)gone);
    return answer(r, 200, body, len);
}
