/*
 * cache.c: the cache module: nginx's proxy_cache family of directives, with nginx's
 * meanings, and the caches proxy_cache_path declares (see cache.h for the other files).
 *
 * Each cache has a directory of files and a shared-memory zone named by keys_zone that
 * holds its index; the zone is the cache's identity, so a reload or a binary upgrade that
 * keeps the name and size keeps the index, and a restart finds the files again (the
 * helper's loader).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/conf.h"
#include "config/core_module.h"
#include "core/log.h"
#include "core/pool.h"
#include "modules/cache/cache.h"
#include "worker/http_phase.h"

#define ZONE_VERSION 1

static int set_cache_path(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_cache(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_key(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_valid(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_methods(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_template_list(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_words(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_purge(struct pt_conf *cf, const struct pt_directive *d, void *conf);

/* A word of a directive that sets bits, and its bit. */
struct word {
    const char *name;
    int bit;
};

static const struct word stale_words[] = {
    {"error", CACHE_STALE_ERROR},
    {"timeout", CACHE_STALE_TIMEOUT},
    {"invalid_header", CACHE_STALE_INVALID_HEADER},
    {"updating", CACHE_STALE_UPDATING},
    {"http_500", CACHE_STALE_HTTP_500},
    {"http_502", CACHE_STALE_HTTP_502},
    {"http_503", CACHE_STALE_HTTP_503},
    {"http_504", CACHE_STALE_HTTP_504},
    {"http_403", CACHE_STALE_HTTP_403},
    {"http_404", CACHE_STALE_HTTP_404},
    {"http_429", CACHE_STALE_HTTP_429},
    {"off", CACHE_STALE_OFF},
    {NULL, 0},
};

static const struct word ignore_words[] = {
    {"X-Accel-Expires", CACHE_IGN_X_ACCEL_EXPIRES},
    {"Expires", CACHE_IGN_EXPIRES},
    {"Cache-Control", CACHE_IGN_CACHE_CONTROL},
    {"Set-Cookie", CACHE_IGN_SET_COOKIE},
    {"Vary", CACHE_IGN_VARY},
    {"X-Accel-Redirect", CACHE_IGN_X_ACCEL_REDIRECT},
    {"X-Accel-Limit-Rate", CACHE_IGN_X_ACCEL_LIMIT},
    {"X-Accel-Buffering", CACHE_IGN_X_ACCEL_BUFFER},
    {"X-Accel-Charset", CACHE_IGN_X_ACCEL_CHARSET},
    {NULL, 0},
};

static const int64_t min_uses_bounds[2] = {1, 1000000};

#define HSL    (PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC)
#define CLC(f) offsetof(struct cache_loc_conf, f)

static const struct pt_directive cache_directives[] = {
    {"proxy_cache_path", PT_CTX_HTTP, PT_DIR_MULTI, PT_MAIN_CONF, set_cache_path, 0, NULL,
     "\"DIR levels=1:2 keys_zone=NAME:SIZE [inactive=10m] [max_size=SIZE] [min_free=SIZE] "
     "[memory_max_object=16k] [use_temp_path=off]\": a cache, its files under DIR (created if "
     "missing) and its index in the shared-memory zone NAME; responses of up to "
     "memory_max_object bytes are also kept in the zone (0: none); temporary files are always "
     "written beside the final ones"},
    {"proxy_cache", HSL, 0, PT_LOC_CONF, set_cache, 0, NULL,
     "\"NAME\" of a proxy_cache_path to cache responses in, or \"off\" (default off)"},
    {"proxy_cache_key", HSL, 0, PT_LOC_CONF, set_key, 0, NULL,
     "the key of a cached response (variables allowed; default "
     "\"$scheme$proxy_host$request_uri\")"},
    {"proxy_cache_valid", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_valid, 0, NULL,
     "\"[CODE ...|any] TIME\": how long responses of these statuses stay fresh when the "
     "response does not say (X-Accel-Expires, Cache-Control, Expires); without codes 200 301 "
     "302; a level with proxy_cache_valid does not inherit its parent's"},
    {"proxy_cache_methods", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_methods, CLC(methods), NULL,
     "methods whose responses are cached: GET HEAD POST (GET and HEAD always; default GET "
     "HEAD)"},
    {"proxy_cache_min_uses", HSL, 0, PT_LOC_CONF, pt_conf_set_num, CLC(min_uses), min_uses_bounds,
     "requests for a key before its response is stored (default 1)"},
    {"proxy_cache_bypass", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_template_list, CLC(bypass), NULL,
     "values (variables): when one is not empty and not \"0\", the response is taken from the "
     "upstream, not the cache (and may be stored)"},
    {"proxy_no_cache", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_template_list, CLC(no_cache), NULL,
     "values (variables): when one is not empty and not \"0\", the response is not stored"},
    {"proxy_cache_use_stale", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_words, CLC(use_stale),
     stale_words,
     "when a stale response is served: error timeout invalid_header updating http_500 "
     "http_502 http_503 http_504 http_403 http_404 http_429, or off (default off); the "
     "response's stale-while-revalidate and stale-if-error allow it too"},
    {"proxy_cache_background_update", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, CLC(background_update),
     NULL,
     "refresh an expired entry in the background while the stale one is served (with "
     "proxy_cache_use_stale updating; default off)"},
    {"proxy_cache_lock", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, CLC(lock), NULL,
     "one request per key goes upstream to fill the cache, across all workers; the others "
     "wait for it (default off)"},
    {"proxy_cache_lock_timeout", HSL, 0, PT_LOC_CONF, pt_conf_set_msec, CLC(lock_timeout), NULL,
     "the longest a request waits for the lock; then it goes upstream and its response is "
     "not stored (default 5s)"},
    {"proxy_cache_lock_age", HSL, 0, PT_LOC_CONF, pt_conf_set_msec, CLC(lock_age), NULL,
     "after this, one more request may go upstream to fill the cache (default 5s)"},
    {"proxy_cache_revalidate", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, CLC(revalidate), NULL,
     "expired entries are revalidated with If-Modified-Since and If-None-Match (default off)"},
    {"proxy_cache_heuristic", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, CLC(heuristic), NULL,
     "a response with Last-Modified and no other freshness (nor proxy_cache_valid for its "
     "status) stays fresh for a tenth of its age, at most a day (RFC 9111 4.2.2; portier's; "
     "default off, as nginx has none)"},
    {"proxy_cache_convert_head", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, CLC(convert_head), NULL,
     "a HEAD request goes upstream as GET so its response can be cached (default on)"},
    {"proxy_ignore_headers", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_words, CLC(ignore), ignore_words,
     "response fields not obeyed for caching: X-Accel-Expires Expires Cache-Control "
     "Set-Cookie Vary (X-Accel-Redirect X-Accel-Limit-Rate X-Accel-Buffering X-Accel-Charset "
     "accepted)"},
    {"proxy_cache_purge", PT_CTX_LOC, 0, PT_LOC_CONF, set_purge, 0, NULL,
     "\"NAME\": this location purges the cache NAME: PURGE or DELETE with ?key=KEY (one entry) "
     "or ?prefix=PREFIX (every key starting so; empty: all), answered in JSON with the count "
     "(restrict it with allow/deny)"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

/* --- proxy_cache_path --- */

/* "levels=1:2": one to three levels of 1 or 2 hex digits. */
static int parse_levels(struct pt_conf *cf, struct cache *c, const char *v)
{
    const char *p = v;

    c->path.nlevels = 0;
    while (*p) {
        if ((*p != '1' && *p != '2') || c->path.nlevels == CACHE_LEVELS_MAX)
            return pt_conf_error(cf,
                                 "invalid \"levels=%s\" in \"proxy_cache_path\": use 1 to 3 "
                                 "levels of 1 or 2, like levels=1:2",
                                 v);
        c->path.levels[c->path.nlevels++] = *p++ - '0';
        if (*p == ':' && p[1])
            p++;
        else if (*p)
            return pt_conf_error(cf, "invalid \"levels=%s\" in \"proxy_cache_path\"", v);
    }
    return PT_OK;
}

/* "keys_zone=NAME:SIZE". */
static int parse_zone(struct pt_conf *cf, struct cache *c, const char *v)
{
    const char *colon = strrchr(v, ':');

    if (colon == NULL || colon == v || pt_parse_size(colon + 1, &c->zone_size) != PT_OK ||
        c->zone_size < 64 * 1024)
        return pt_conf_error(cf,
                             "invalid \"keys_zone=%s\" in \"proxy_cache_path\": use "
                             "keys_zone=NAME:SIZE with SIZE of 64k at least",
                             v);
    for (const char *p = v; p < colon; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return pt_conf_error(cf,
                                 "invalid name in \"keys_zone=%s\": use letters, digits, "
                                 "'_' and '-'",
                                 v);
    c->name = pt_pstrndup(cf->pool, v, (size_t)(colon - v));
    return c->name ? PT_OK : pt_conf_error(cf, "out of memory");
}

/* One NAME=VALUE word of proxy_cache_path. */
static int path_option(struct pt_conf *cf, struct cache *c, const char *w)
{
    const char *eq = strchr(w, '=');
    const char *v = eq ? eq + 1 : "";
    size_t n = eq ? (size_t)(eq - w) : strlen(w);
    int64_t ms;

#define IS(s) (n == sizeof(s) - 1 && strncmp(w, s, n) == 0)
    if (IS("levels"))
        return parse_levels(cf, c, v);
    if (IS("keys_zone"))
        return parse_zone(cf, c, v);
    if (IS("inactive")) {
        if (pt_parse_msec(v, &ms) != PT_OK || ms < 1000)
            return pt_conf_error(cf, "invalid \"inactive=%s\" in \"proxy_cache_path\"", v);
        c->inactive = ms / 1000;
        return PT_OK;
    }
    if (IS("max_size") || IS("min_free") || IS("memory_max_object")) {
        int64_t *to = IS("max_size") ? &c->max_size : IS("min_free") ? &c->min_free : &c->mem_max;
        if (pt_parse_size(v, to) != PT_OK)
            return pt_conf_error(cf, "invalid \"%s\" in \"proxy_cache_path\"", w);
        return PT_OK;
    }
    /* nginx's tuning of its loader, manager and purger, and use_temp_path: portier's
     * helper needs none of them, and its temporary files always sit beside the final ones
     * (use_temp_path=off).  Accepted so that a configuration moves over as it is. */
    if (IS("use_temp_path") || IS("loader_files") || IS("loader_sleep") || IS("loader_threshold") ||
        IS("manager_files") || IS("manager_sleep") || IS("manager_threshold") || IS("purger") ||
        IS("purger_files") || IS("purger_sleep") || IS("purger_threshold"))
        return PT_OK;
#undef IS
    return pt_conf_error(cf, "unknown parameter \"%s\" in \"proxy_cache_path\"", w);
}

/* Creates <dir> (and its parents) if missing, and checks that it is a directory the workers
 * can write: a cache that cannot store fails -t. */
static int check_dir(struct pt_conf *cf, const char *dir)
{
    char buf[PATH_MAX];
    struct stat st;

    snprintf(buf, sizeof(buf), "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return pt_conf_error(cf, "cannot create the cache directory \"%s\": %s", buf,
                                 strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0700) < 0 && errno != EEXIST)
        return pt_conf_error(cf, "cannot create the cache directory \"%s\": %s", buf,
                             strerror(errno));
    if (stat(buf, &st) < 0 || !S_ISDIR(st.st_mode))
        return pt_conf_error(cf, "the cache path \"%s\" is not a directory", buf);
    if (access(buf, W_OK | X_OK) < 0)
        return pt_conf_error(cf, "the cache directory \"%s\" is not writable: %s", buf,
                             strerror(errno));
    return PT_OK;
}

static int set_cache_path(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct cache_main_conf *mc = conf;
    struct cache *c = pt_palloc(cf->pool, sizeof(*c));
    char *w[24];
    int n = pt_conf_split(cf, cf->value, w, (int)pt_nelems(w));

    pt_unused(d);
    if (c == NULL)
        return pt_conf_error(cf, "out of memory");
    if (n < 2)
        return pt_conf_error(cf, "\"proxy_cache_path\" needs a directory and "
                                 "keys_zone=NAME:SIZE");
    c->path.dir = (char *)pt_conf_path(cf, w[0]);
    c->inactive = 600;
    c->mem_max = 16 * 1024;
    for (int i = 1; i < n; i++)
        if (path_option(cf, c, w[i]) != PT_OK)
            return PT_ERROR;
    if (c->name == NULL)
        return pt_conf_error(cf, "\"proxy_cache_path\" needs keys_zone=NAME:SIZE");
    for (struct cache *o = mc->caches; o; o = o->next) {
        if (strcmp(o->name, c->name) == 0)
            return pt_conf_error(cf, "duplicate keys_zone \"%s\" in \"proxy_cache_path\"", c->name);
        if (strcmp(o->path.dir, c->path.dir) == 0)
            return pt_conf_error(cf,
                                 "the cache directory \"%s\" is used by keys_zone \"%s\" "
                                 "already",
                                 c->path.dir, o->name);
    }
    if (check_dir(cf, c->path.dir) != PT_OK)
        return PT_ERROR;
    c->file = cf->file;
    c->line = pt_conf_setting_line(cf->setting);
    c->next = mc->caches;
    mc->caches = c;
    return PT_OK;
}

static struct cache *find_cache(struct pt_conf *cf, const char *name)
{
    struct cache_main_conf *mc = pt_cycle_main_conf(cf->cycle, pt_cache_module);

    for (struct cache *c = mc->caches; c; c = c->next)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

/* --- location directives --- */

static int set_cache(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct cache_loc_conf *lc = conf;

    pt_unused(d);
    lc->cache_set = 1;
    lc->cache = NULL;
    if (strcmp(cf->value, "off") == 0)
        return PT_OK;
    /* Found in postconfig: proxy_cache_path may come later in the file. */
    lc->cache_name = pt_pstrdup(cf->pool, cf->value);
    lc->cache_setting = cf->setting;
    return lc->cache_name ? PT_OK : pt_conf_error(cf, "out of memory");
}

static int set_purge(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct cache_loc_conf *lc = conf;

    pt_unused(d);
    lc->purge_name = pt_pstrdup(cf->pool, cf->value);
    lc->purge_setting = cf->setting;
    return lc->purge_name ? PT_OK : pt_conf_error(cf, "out of memory");
}

static int set_key(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct cache_loc_conf *lc = conf;

    pt_unused(d);
    lc->key = pt_palloc(cf->pool, sizeof(*lc->key));
    if (lc->key == NULL || (lc->key->src = pt_pstrdup(cf->pool, cf->value)) == NULL)
        return pt_conf_error(cf, "out of memory");
    lc->key->setting = cf->setting;
    return PT_OK;
}

static int parse_status(const char *w, int *status)
{
    char *end;
    long v;

    if (strcmp(w, "any") == 0) {
        *status = 0;
        return PT_OK;
    }
    v = strtol(w, &end, 10);
    if (*end || v < 100 || v > 599)
        return PT_ERROR;
    *status = (int)v;
    return PT_OK;
}

static int set_valid(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    static const int dflt[] = {200, 301, 302};
    struct cache_loc_conf *lc = conf;
    char *w[16];
    int n = pt_conf_split(cf, cf->value, w, (int)pt_nelems(w)), have, add;
    int64_t ms;
    struct cache_valid *v;

    pt_unused(d);
    if (n < 1 || pt_parse_msec(w[n - 1], &ms) != PT_OK || ms < 0)
        return pt_conf_error(cf,
                             "invalid \"proxy_cache_valid\" \"%s\": use \"[CODE ...|any] "
                             "TIME\", like \"200 302 10m\"",
                             cf->value);
    have = lc->nvalid == PT_CONF_UNSET ? 0 : lc->nvalid;
    add = n == 1 ? (int)pt_nelems(dflt) : n - 1;
    v = pt_palloc(cf->pool, (size_t)(have + add) * sizeof(*v));
    if (v == NULL)
        return pt_conf_error(cf, "out of memory");
    if (have)
        memcpy(v, lc->valid, (size_t)have * sizeof(*v));
    for (int i = 0; i < add; i++) {
        v[have + i].seconds = ms / 1000;
        if (n == 1)
            v[have + i].status = dflt[i];
        else if (parse_status(w[i], &v[have + i].status) != PT_OK)
            return pt_conf_error(cf, "invalid status \"%s\" in \"proxy_cache_valid\"", w[i]);
    }
    lc->valid = v;
    lc->nvalid = have + add;
    return PT_OK;
}

static int set_methods(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    int *bits = (int *)((char *)conf + d->offset);
    char *w[8];
    int n = pt_conf_split(cf, cf->value, w, (int)pt_nelems(w));

    if (n < 1)
        return pt_conf_error(cf, "\"proxy_cache_methods\" needs GET, HEAD or POST");
    if (*bits == PT_CONF_UNSET)
        *bits = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(w[i], "GET") == 0)
            *bits |= 1 << PT_HTTP_GET;
        else if (strcmp(w[i], "HEAD") == 0)
            *bits |= 1 << PT_HTTP_HEAD;
        else if (strcmp(w[i], "POST") == 0)
            *bits |= 1 << PT_HTTP_POST;
        else
            return pt_conf_error(cf,
                                 "invalid method \"%s\" in \"proxy_cache_methods\": use "
                                 "GET, HEAD or POST",
                                 w[i]);
    }
    return PT_OK;
}

/* proxy_cache_bypass, proxy_no_cache: templates; the count follows the array in the
 * struct (both pairs are declared array, then count). */
static int set_template_list(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct cache_loc_conf *lc = conf;
    int bypass = d->offset == CLC(bypass);
    struct cache_tpl **arr = bypass ? &lc->bypass : &lc->no_cache;
    int *n = bypass ? &lc->nbypass : &lc->nno_cache;
    int have = *n == PT_CONF_UNSET ? 0 : *n;
    char *words[16];
    int nw = pt_conf_split(cf, cf->value, words, (int)pt_nelems(words));
    struct cache_tpl *a;

    if (nw < 1)
        return pt_conf_error(cf, "\"%s\" needs a value", d->name);
    a = pt_palloc(cf->pool, (size_t)(have + nw) * sizeof(*a));
    if (a == NULL)
        return pt_conf_error(cf, "out of memory");
    if (have)
        memcpy(a, *arr, (size_t)have * sizeof(*a));
    for (int i = 0; i < nw; i++)
        a[have + i] = (struct cache_tpl){words[i], cf->setting, NULL};
    *arr = a;
    *n = have + nw;
    return PT_OK;
}

static int set_words(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    int *bits = (int *)((char *)conf + d->offset);
    const struct word *table = d->post;
    char *w[16];
    int n = pt_conf_split(cf, cf->value, w, (int)pt_nelems(w));

    if (n < 1)
        return pt_conf_error(cf, "\"%s\" needs a value", d->name);
    if (*bits == PT_CONF_UNSET)
        *bits = 0;
    for (int i = 0; i < n; i++) {
        const struct word *t = table;
        while (t->name && strcasecmp(t->name, w[i]) != 0)
            t++;
        if (t->name == NULL)
            return pt_conf_error(cf, "invalid value \"%s\" in \"%s\"", w[i], d->name);
        *bits |= t->bit;
    }
    return PT_OK;
}

/* --- configuration structs --- */

static void *create_main_conf(struct pt_conf *cf)
{
    return pt_palloc(cf->pool, sizeof(struct cache_main_conf));
}

static void *create_loc_conf(struct pt_conf *cf)
{
    struct cache_loc_conf *lc = pt_palloc(cf->pool, sizeof(*lc));

    if (lc == NULL)
        return NULL;
    lc->nvalid = lc->methods = lc->nbypass = lc->nno_cache = PT_CONF_UNSET;
    lc->use_stale = lc->background_update = lc->lock = PT_CONF_UNSET;
    lc->revalidate = lc->convert_head = lc->ignore = lc->heuristic = PT_CONF_UNSET;
    lc->min_uses = lc->lock_timeout = lc->lock_age = PT_CONF_UNSET;
    return lc;
}

static int merge_loc_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct cache_loc_conf *p = parent, *c = child;

    if (!c->cache_set) {
        c->cache_set = p->cache_set;
        c->cache_name = p->cache_name;
        c->cache_setting = p->cache_setting;
    }
    pt_conf_merge_ptr(c->key, p->key, NULL);
    if (c->key == NULL) {
        static struct cache_tpl dflt_src = {"$scheme$proxy_host$request_uri", NULL, NULL};
        c->key = pt_palloc(cf->pool, sizeof(*c->key));
        if (c->key == NULL)
            return pt_conf_error(cf, "out of memory");
        *c->key = dflt_src;
        p->key = c->key;
    }
    pt_conf_merge_list(c->valid, c->nvalid, p->valid, p->nvalid);
    pt_conf_merge_int(c->methods, p->methods, 0);
    c->methods |= (1 << PT_HTTP_GET) | (1 << PT_HTTP_HEAD);
    pt_conf_merge_int(c->min_uses, p->min_uses, 1);
    pt_conf_merge_list(c->bypass, c->nbypass, p->bypass, p->nbypass);
    pt_conf_merge_list(c->no_cache, c->nno_cache, p->no_cache, p->nno_cache);
    pt_conf_merge_int(c->use_stale, p->use_stale, (int)CACHE_STALE_OFF);
    if (c->use_stale & CACHE_STALE_OFF)
        c->use_stale = 0;
    pt_conf_merge_int(c->background_update, p->background_update, 0);
    pt_conf_merge_int(c->lock, p->lock, 0);
    pt_conf_merge_int(c->lock_timeout, p->lock_timeout, 5000);
    pt_conf_merge_int(c->lock_age, p->lock_age, 5000);
    pt_conf_merge_int(c->revalidate, p->revalidate, 0);
    pt_conf_merge_int(c->heuristic, p->heuristic, 0);
    pt_conf_merge_int(c->convert_head, p->convert_head, 1);
    pt_conf_merge_int(c->ignore, p->ignore, 0);
    return PT_OK;
}

/* Compiles <t> if it is not yet (levels share what they inherit). */
static int compile(struct pt_conf *cf, struct cache_tpl *t)
{
    if (t->t)
        return PT_OK;
    if (t->setting)
        cf->setting = t->setting;
    t->t = pt_template_compile(cf, t->src, PT_ESCAPE_NONE);
    return t->t ? PT_OK : PT_ERROR;
}

/* Resolves the cache names of one location (proxy_cache, proxy_cache_purge) and compiles
 * its values. */
static int resolve_loc(struct pt_conf *cf, void **loc_conf)
{
    struct cache_loc_conf *lc = loc_conf[pt_cache_module.index];

    if (compile(cf, lc->key) != PT_OK)
        return PT_ERROR;
    for (int i = 0; i < lc->nbypass; i++)
        if (compile(cf, &lc->bypass[i]) != PT_OK)
            return PT_ERROR;
    for (int i = 0; i < lc->nno_cache; i++)
        if (compile(cf, &lc->no_cache[i]) != PT_OK)
            return PT_ERROR;
    if (lc->cache_name && (lc->cache = find_cache(cf, lc->cache_name)) == NULL)
        return pt_conf_error_at(cf, lc->cache_setting,
                                "unknown cache \"%s\" in \"proxy_cache\": "
                                "declare it with proxy_cache_path ... keys_zone=%s:SIZE",
                                lc->cache_name, lc->cache_name);
    if (lc->purge_name && (lc->purge = find_cache(cf, lc->purge_name)) == NULL)
        return pt_conf_error_at(cf, lc->purge_setting,
                                "unknown cache \"%s\" in \"proxy_cache_purge\"", lc->purge_name);
    if (lc->purge) {
        struct pt_http_loc_conf *hlc = loc_conf[pt_http_module.index];
        hlc->handler = cache_purge_handler;
    }
    return PT_OK;
}

static const char *const status_names[] = {"",      "MISS",     "BYPASS",      "EXPIRED",
                                           "STALE", "UPDATING", "REVALIDATED", "HIT"};

/* $upstream_cache_status: empty when the request did not use the cache. */
static int var_cache_status(struct pt_request *r, struct pt_str arg, struct pt_str *out)
{
    struct cache_ctx *ctx = r->ctx ? r->ctx[pt_cache_module.index] : NULL;

    pt_unused(arg);
    *out = pt_str_c(ctx ? status_names[ctx->status] : "");
    return PT_OK;
}

/* Counts what each request that used a cache came to, once, at its end. */
static int log_handler(struct pt_request *r)
{
    static const enum cache_stat stat_of[] = {
        CACHE_NSTATS,     CACHE_STAT_MISS,     CACHE_STAT_BYPASS,      CACHE_STAT_EXPIRED,
        CACHE_STAT_STALE, CACHE_STAT_UPDATING, CACHE_STAT_REVALIDATED, CACHE_STAT_HIT};
    struct cache_ctx *ctx = r->ctx[pt_cache_module.index];

    if (ctx && ctx->status != CACHE_NONE)
        cache_index_count(ctx->cache->zone, stat_of[ctx->status]);
    return PT_DECLINED;
}

/* The status document's "caches" section: each cache's figures. */
static int report(struct pt_cycle *cycle, void (*put)(void *w, const char *s, size_t n), void *w)
{
    struct cache_main_conf *mc = pt_cycle_main_conf(cycle, pt_cache_module);
    char buf[1024];
    int first = 1;

    put(w, "{", 1);
    for (struct cache *c = mc->caches; c; c = c->next) {
        struct cache_stats st;
        int n;
        cache_index_stats(c->zone, &st);
        n = snprintf(buf, sizeof(buf),
                     "%s\"%s\":{\"entries\":%llu,\"bytes\":%llu,\"memory_entries\":%llu,"
                     "\"memory_bytes\":%llu,\"max_size\":%lld,\"hit\":%llu,\"miss\":%llu,"
                     "\"expired\":%llu,\"stale\":%llu,\"updating\":%llu,\"revalidated\":%llu,"
                     "\"bypass\":%llu,\"stored\":%llu,\"store_failed\":%llu,\"evicted\":%llu,"
                     "\"loaded\":%s}",
                     first ? "" : ",", c->name, (unsigned long long)st.entries,
                     (unsigned long long)st.bytes, (unsigned long long)st.mem_entries,
                     (unsigned long long)st.mem_bytes, (long long)c->max_size,
                     (unsigned long long)st.hits, (unsigned long long)st.misses,
                     (unsigned long long)st.expired, (unsigned long long)st.stale,
                     (unsigned long long)st.updating, (unsigned long long)st.revalidated,
                     (unsigned long long)st.bypass, (unsigned long long)st.stored,
                     (unsigned long long)st.store_failed, (unsigned long long)st.evicted,
                     cache_index_loaded(c->zone) ? "true" : "false");
        put(w, buf, (size_t)n);
        first = 0;
    }
    put(w, "}", 1);
    return PT_OK;
}

static int postconfig(struct pt_conf *cf)
{
    struct cache_main_conf *mc = pt_cycle_main_conf(cf->cycle, pt_cache_module);

    if (pt_var_register("upstream_cache_status", 0, var_cache_status) != PT_OK ||
        pt_phase_add(cf->cycle, PT_PHASE_PRECONTENT, cache_lookup_handler) != PT_OK ||
        pt_phase_add(cf->cycle, PT_PHASE_LOG, log_handler) != PT_OK ||
        pt_body_filter_add(cf->cycle, cache_body_filter) != PT_OK ||
        (mc->caches && pt_report_add(cf->cycle, "caches", report) != PT_OK))
        return pt_conf_error(cf, "cannot register the cache module's handlers");
    for (struct cache *c = mc->caches; c; c = c->next) {
        c->zone = pt_cycle_add_zone(cf->cycle, c->name, (size_t)c->zone_size, ZONE_VERSION,
                                    cache_index_init, c);
        if (c->zone == NULL)
            return pt_conf_error(cf,
                                 "cannot declare the shared memory zone \"%s\" of "
                                 "\"proxy_cache_path\" (is the name used twice?)",
                                 c->name);
        cf->cycle->need_helper = 1; /* the loader and the sweeps */
    }
    return pt_http_foreach_loc(cf, resolve_loc);
}

/* The workers write the caches: a directory the master created as root is handed to the
 * configured user, as nginx does. */
static int init_master(struct pt_cycle *cycle)
{
    struct cache_main_conf *mc = pt_cycle_main_conf(cycle, pt_cache_module);
    struct pt_core_conf *cc = pt_core_conf(cycle);

    if (geteuid() != 0 || !cc->user_set)
        return PT_OK;
    for (struct cache *c = mc->caches; c; c = c->next)
        if (chown(c->path.dir, cc->uid, cc->gid) < 0) {
            pt_log(PT_LOG_CRIT,
                   "%s:%d: cannot give the cache directory \"%s\" to user "
                   "\"%s\": %m",
                   c->file, c->line, c->path.dir, cc->user);
            return PT_ERROR;
        }
    return PT_OK;
}

struct pt_module pt_cache_module = {
    .name = "cache",
    .init_master = init_master,
    .init_helper = cache_helper_init,
    .directives = cache_directives,
    .create_main_conf = create_main_conf,
    .create_loc_conf = create_loc_conf,
    .merge_loc_conf = merge_loc_conf,
    .postconfig = postconfig,
};
