/* conf.c: the configuration loader: libconfig settings dispatched on directive tables. */
#include "config/conf.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/pool.h"

/* The config layer's handle is libconfig's setting itself, never dereferenced as its own
 * type: these two are the only places that say so. */
static const config_setting_t *lc(const struct pt_conf_setting *s)
{
    return (const config_setting_t *)s;
}

static const struct pt_conf_setting *handle(const config_setting_t *s)
{
    return (const struct pt_conf_setting *)s;
}

static const char *ctx_name(unsigned ctx)
{
    switch (ctx) {
    case PT_CTX_MAIN: return "the main context";
    case PT_CTX_HTTP: return "http";
    case PT_CTX_SRV: return "server";
    case PT_CTX_LOC: return "location";
    case PT_CTX_UPS: return "upstream";
    }
    return "?";
}

static int conf_verror(struct pt_conf *cf, const struct pt_conf_setting *s, const char *fmt,
                       va_list ap)
{
    char msg[1024], name[4096];
    const char *file;
    int line = 0;

    cf->failed = 1;
    if (cf->err == NULL || cf->err[0] != '\0')
        return PT_ERROR;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    file = pt_conf_setting_file(cf, s);
    file = pt_conf_file_name(cf, file, name, sizeof(name));
    line = pt_conf_setting_line(s);
    snprintf(cf->err, cf->errlen, "%s:%d: %s", file ? file : "?", line, msg);
    return PT_ERROR;
}

int pt_conf_error(struct pt_conf *cf, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    conf_verror(cf, cf->setting, fmt, ap);
    va_end(ap);
    return PT_ERROR;
}

void pt_conf_warn(struct pt_conf *cf, const char *fmt, ...)
{
    const char *file = pt_conf_setting_file(cf, cf->setting);
    char msg[1024], name[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    file = pt_conf_file_name(cf, file, name, sizeof(name));
    pt_log(PT_LOG_WARN, "%s:%d: %s", file ? file : "?", pt_conf_setting_line(cf->setting), msg);
}

struct pt_conf_deferred {
    int (*fn)(struct pt_conf *cf, void *arg);
    void *arg;
    const struct pt_conf_setting *setting;
    struct pt_conf_deferred *next;
};

int pt_conf_defer(struct pt_conf *cf, int (*fn)(struct pt_conf *cf, void *arg), void *arg)
{
    struct pt_conf_deferred *d = pt_palloc(cf->pool, sizeof(*d)), **tail = &cf->deferred;

    if (d == NULL)
        return pt_conf_error(cf, "out of memory");
    *d = (struct pt_conf_deferred){fn, arg, cf->setting, NULL};
    while (*tail)
        tail = &(*tail)->next;
    *tail = d;
    return PT_OK;
}

int pt_conf_run_deferred(struct pt_conf *cf)
{
    for (struct pt_conf_deferred *d = cf->deferred; d; d = d->next) {
        cf->setting = d->setting;
        if (d->fn(cf, d->arg) != PT_OK)
            return PT_ERROR;
    }
    cf->deferred = NULL;
    cf->setting = NULL;
    return PT_OK;
}

int pt_conf_error_at(struct pt_conf *cf, const struct pt_conf_setting *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    conf_verror(cf, s, fmt, ap);
    va_end(ap);
    return PT_ERROR;
}

const struct pt_directive *pt_conf_find_directive(const char *name, unsigned ctx,
                                                  struct pt_module **mod)
{
    const struct pt_directive *found = NULL;

    /* Two modules may use one name in different contexts ("server" in http is a block, in
     * an upstream a peer): prefer the one allowed where we are. */
    for (int i = 0; pt_modules[i]; i++) {
        const struct pt_directive *d = pt_modules[i]->directives;
        for (; d && d->name; d++) {
            if (strcmp(d->name, name) != 0)
                continue;
            if (found == NULL || (d->where & ctx)) {
                found = d;
                if (mod)
                    *mod = pt_modules[i];
            }
            if (d->where & ctx)
                return d;
        }
    }
    return found;
}

/* Edit distance, bounded: enough to suggest "proxy_pass" for "proxy_pas". */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64];

    if (la >= 63 || lb >= 63)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            row[j] = pt_min(pt_min(row[j] + 1, row[j - 1] + 1), prev + cost);
            prev = cur;
        }
    }
    return row[lb];
}

static const char *closest_directive(const char *name, unsigned ctx)
{
    const char *best = NULL;
    size_t best_d = 3;

    for (int i = 0; pt_modules[i]; i++) {
        const struct pt_directive *d = pt_modules[i]->directives;
        for (; d && d->name; d++) {
            size_t dist = distance(name, d->name);
            if ((d->where & ctx) && dist < best_d) {
                best = d->name;
                best_d = dist;
            }
        }
    }
    return best;
}

static void *level_conf(struct pt_conf *cf, const struct pt_directive *d, struct pt_module *m)
{
    switch (d->level) {
    case PT_MAIN_CONF: return cf->conf->main_conf ? cf->conf->main_conf[m->index] : NULL;
    case PT_SRV_CONF: return cf->conf->srv_conf ? cf->conf->srv_conf[m->index] : NULL;
    case PT_LOC_CONF: return cf->conf->loc_conf ? cf->conf->loc_conf[m->index] : NULL;
    case PT_UPS_CONF: return cf->block;
    }
    return NULL;
}

/* Renders a scalar setting as the string its setter reads. */
static const char *scalar_value(struct pt_conf *cf, const config_setting_t *s)
{
    char num[32];

    switch (config_setting_type(s)) {
    case CONFIG_TYPE_STRING: return config_setting_get_string(s);
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        /* The value as written when libconfig wrapped it (see pt_conf_read_file). */
        if (config_setting_get_hook(s))
            return config_setting_get_hook(s);
        snprintf(num, sizeof(num), "%lld", (long long)config_setting_get_int64(s));
        return pt_pstrdup(cf->pool, num);
    case CONFIG_TYPE_BOOL: return config_setting_get_bool(s) ? "on" : "off";
    case CONFIG_TYPE_FLOAT:
        snprintf(num, sizeof(num), "%g", config_setting_get_float(s));
        return pt_pstrdup(cf->pool, num);
    }
    return NULL;
}

static int set_values(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    const config_setting_t *s = lc(cf->setting);
    int type = config_setting_type(s);

    if (type == CONFIG_TYPE_ARRAY || type == CONFIG_TYPE_LIST) {
        int n = config_setting_length(s);
        if (!(d->flags & PT_DIR_MULTI))
            return pt_conf_error(cf, "\"%s\" takes one value, not a list", d->name);
        for (int i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            cf->value = scalar_value(cf, e);
            if (cf->value == NULL)
                return pt_conf_error_at(cf, handle(e), "\"%s\" takes strings, not groups or lists",
                                        d->name);
            if (d->set(cf, d, conf) != PT_OK)
                return PT_ERROR;
        }
        return PT_OK;
    }
    cf->value = scalar_value(cf, s);
    if (cf->value == NULL)
        return pt_conf_error(cf, "\"%s\" takes a value, not a group", d->name);
    return d->set(cf, d, conf);
}

static int dispatch(struct pt_conf *cf, const config_setting_t *s, unsigned ctx)
{
    struct pt_module *m = NULL;
    const char *name = config_setting_name(s);
    const struct pt_directive *d = pt_conf_find_directive(name, ctx, &m);
    void *conf;

    cf->setting = handle(s);
    cf->name = name;
    if (d == NULL) {
        const char *hint = closest_directive(name, ctx);
        if (hint)
            return pt_conf_error(cf, "unknown directive \"%s\" in %s (did you mean \"%s\"?)", name,
                                 ctx_name(ctx), hint);
        return pt_conf_error(cf, "unknown directive \"%s\" in %s", name, ctx_name(ctx));
    }
    if (!(d->where & ctx))
        return pt_conf_error(cf, "\"%s\" directive is not allowed in %s", name, ctx_name(ctx));
    conf = level_conf(cf, d, m);
    if (conf == NULL)
        return pt_conf_error(cf, "\"%s\" directive has no configuration in %s", name,
                             ctx_name(ctx));
    if (d->flags & PT_DIR_BLOCK)
        return d->set(cf, d, conf);
    return set_values(cf, d, conf);
}

static int skipped(const char *name, const char *const *skip)
{
    for (; skip && *skip; skip++)
        if (strcmp(name, *skip) == 0)
            return 1;
    return 0;
}

int pt_conf_read_block(struct pt_conf *cf, const struct pt_conf_setting *group, unsigned ctx,
                       struct pt_conf_ctx *conf, const char *const *skip)
{
    struct pt_conf_ctx *saved_conf = cf->conf;
    const struct pt_conf_setting *saved_setting = cf->setting;
    const char *saved_name = cf->name;
    unsigned saved_ctx = cf->ctx;
    int n = config_setting_length(lc(group)), rc = PT_OK;

    cf->conf = conf;
    cf->ctx = ctx;
    for (int i = 0; i < n && rc == PT_OK; i++) {
        const config_setting_t *s = config_setting_get_elem(lc(group), (unsigned)i);
        if (skipped(config_setting_name(s), skip))
            continue;
        rc = dispatch(cf, s, ctx);
    }
    cf->conf = saved_conf;
    cf->ctx = saved_ctx;
    cf->setting = saved_setting;
    cf->name = saved_name;
    return rc;
}

/* --- settings, for the blocks that modules read themselves --- */

const struct pt_conf_setting *pt_conf_root(struct config_t *lc)
{
    return handle(config_root_setting(lc));
}

enum pt_conf_kind pt_conf_setting_kind(const struct pt_conf_setting *s)
{
    switch (config_setting_type(lc(s))) {
    case CONFIG_TYPE_STRING: return PT_CONF_STRING;
    case CONFIG_TYPE_ARRAY: return PT_CONF_ARRAY;
    case CONFIG_TYPE_LIST: return PT_CONF_LIST;
    case CONFIG_TYPE_GROUP: return PT_CONF_GROUP;
    }
    return PT_CONF_SCALAR;
}

const char *pt_conf_setting_name(const struct pt_conf_setting *s)
{
    return config_setting_name(lc(s));
}

const char *pt_conf_setting_string(const struct pt_conf_setting *s)
{
    return config_setting_get_string(lc(s));
}

int pt_conf_setting_count(const struct pt_conf_setting *s)
{
    return config_setting_length(lc(s));
}

const struct pt_conf_setting *pt_conf_setting_elem(const struct pt_conf_setting *s, int i)
{
    return i < 0 ? NULL : handle(config_setting_get_elem(lc(s), (unsigned)i));
}

const struct pt_conf_setting *pt_conf_setting_member(const struct pt_conf_setting *s,
                                                     const char *name)
{
    return handle(config_setting_get_member(lc(s), name));
}

const char *pt_conf_setting_file(struct pt_conf *cf, const struct pt_conf_setting *s)
{
    const char *file = s ? config_setting_source_file(lc(s)) : NULL;

    return file ? file : cf->file;
}

int pt_conf_setting_line(const struct pt_conf_setting *s)
{
    return s ? (int)config_setting_source_line(lc(s)) : 0;
}

int pt_conf_each_group(struct pt_conf *cf, const struct pt_conf_setting *s,
                       int (*fn)(struct pt_conf *cf, const struct pt_conf_setting *group))
{
    enum pt_conf_kind kind = pt_conf_setting_kind(s);

    if (kind == PT_CONF_GROUP)
        return fn(cf, s);
    if (kind != PT_CONF_LIST)
        return pt_conf_error(cf, "\"%s\" takes a group { ... } or a list of groups ( {...}, ... )",
                             pt_conf_setting_name(s));
    for (int i = 0; i < pt_conf_setting_count(s); i++) {
        const struct pt_conf_setting *g = pt_conf_setting_elem(s, i);
        if (pt_conf_setting_kind(g) != PT_CONF_GROUP)
            return pt_conf_error_at(cf, g, "\"%s\" list elements must be groups { ... }",
                                    pt_conf_setting_name(s));
        if (fn(cf, g) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

const char *pt_conf_parser_version(void)
{
    static char version[64];

    snprintf(version, sizeof(version), "libconfig %d.%d.%d", LIBCONFIG_VER_MAJOR,
             LIBCONFIG_VER_MINOR, LIBCONFIG_VER_REVISION);
    return version;
}

int pt_conf_create_level(struct pt_conf *cf, enum pt_conf_level level, void ***arr)
{
    int n = pt_modules_count();
    void **a = pt_palloc(cf->pool, (size_t)(n + 1) * sizeof(void *));

    if (a == NULL)
        return PT_ERROR;
    for (int i = 0; i < n; i++) {
        struct pt_module *m = pt_modules[i];
        void *(*create)(struct pt_conf *) = level == PT_MAIN_CONF  ? m->create_main_conf
                                            : level == PT_SRV_CONF ? m->create_srv_conf
                                                                   : m->create_loc_conf;
        if (create && (a[i] = create(cf)) == NULL)
            return pt_conf_error(cf, "out of memory");
    }
    *arr = a;
    return PT_OK;
}

int pt_conf_merge_level(struct pt_conf *cf, enum pt_conf_level level, void **parent, void **child)
{
    for (int i = 0; pt_modules[i]; i++) {
        struct pt_module *m = pt_modules[i];
        int (*merge)(struct pt_conf *, void *, void *) =
            level == PT_SRV_CONF ? m->merge_srv_conf : m->merge_loc_conf;
        if (merge && child[i] && merge(cf, parent[i], child[i]) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

int pt_conf_list_add(struct pt_conf *cf, char ***list, int *n, char *value)
{
    int have = *n == PT_CONF_UNSET ? 0 : *n;
    char **a = pt_palloc(cf->pool, (size_t)(have + 1) * sizeof(*a));

    if (a == NULL || value == NULL)
        return pt_conf_error(cf, "out of memory");
    if (have)
        memcpy(a, *list, (size_t)have * sizeof(*a));
    a[have] = value;
    *list = a;
    *n = have + 1;
    return PT_OK;
}

const char *pt_conf_path(struct pt_conf *cf, const char *path)
{
    size_t n;
    char *p;

    /* Always a copy: <path> is often the configuration's own string, gone after loading. */
    if (path[0] == '/' || cf->cycle->prefix == NULL)
        return pt_pstrdup(cf->pool, path);
    n = strlen(cf->cycle->prefix) + strlen(path) + 2;
    p = pt_palloc(cf->pool, n);
    if (p)
        snprintf(p, n, "%s/%s", cf->cycle->prefix, path);
    return p;
}

int pt_conf_split(struct pt_conf *cf, const char *s, char **words, int max)
{
    int n = 0;

    while (*s) {
        const char *start;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0')
            break;
        start = s;
        while (*s && *s != ' ' && *s != '\t')
            s++;
        if (n == max)
            return -1;
        words[n++] = pt_pstrndup(cf->pool, start, (size_t)(s - start));
    }
    return n;
}

/* --- value parsers --- */

int pt_parse_int(const char *s, int64_t *n)
{
    int64_t v = 0;

    if (*s == '\0')
        return PT_ERROR;
    for (; *s; s++) {
        int digit = *s - '0';
        if (!isdigit((unsigned char)*s) || v > (INT64_MAX - digit) / 10)
            return PT_ERROR;
        v = v * 10 + digit;
    }
    *n = v;
    return PT_OK;
}

/* Parses digits followed by a unit from <units> (NULL-terminated names with multipliers). */
static int parse_unit(const char *s, const char *const *names, const int64_t *mult, int64_t *out)
{
    char digits[32];
    size_t n = 0;
    int64_t v;

    while (isdigit((unsigned char)s[n]) && n < sizeof(digits) - 1) {
        digits[n] = s[n];
        n++;
    }
    digits[n] = '\0';
    if (pt_parse_int(digits, &v) != PT_OK)
        return PT_ERROR;
    for (int i = 0; names[i]; i++) {
        if (strcmp(s + n, names[i]) == 0) {
            if (v > INT64_MAX / mult[i])
                return PT_ERROR;
            *out = v * mult[i];
            return PT_OK;
        }
    }
    return PT_ERROR;
}

int pt_parse_msec(const char *s, int64_t *ms)
{
    static const char *const names[] = {"", "ms", "s", "m", "h", "d", NULL};
    static const int64_t mult[] = {1000, 1, 1000, 60000, 3600000, 86400000};

    return parse_unit(s, names, mult, ms);
}

int pt_parse_size(const char *s, int64_t *bytes)
{
    static const char *const names[] = {"", "k", "K", "m", "M", "g", "G", NULL};
    static const int64_t mult[] = {1, 1024, 1024, 1 << 20, 1 << 20, 1 << 30, 1 << 30};

    return parse_unit(s, names, mult, bytes);
}

/* --- generic setters --- */

#define FIELD(conf, d, type) ((type *)((char *)(conf) + (d)->offset))

int pt_conf_set_flag(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    int *f = FIELD(conf, d, int);

    if (*f != PT_CONF_UNSET)
        return pt_conf_error(cf, "\"%s\" is duplicate", d->name);
    if (strcmp(cf->value, "on") == 0)
        *f = 1;
    else if (strcmp(cf->value, "off") == 0)
        *f = 0;
    else
        return pt_conf_error(cf,
                             "invalid value \"%s\" for \"%s\": use true/false or \"on\"/\"off\"",
                             cf->value, d->name);
    return PT_OK;
}

typedef int (*value_parser)(const char *, int64_t *);

static int set_int64(struct pt_conf *cf, const struct pt_directive *d, void *conf,
                     value_parser parse, const int64_t *bounds, const char *what, const char *like)
{
    int64_t *f = FIELD(conf, d, int64_t), v;

    if (*f != PT_CONF_UNSET)
        return pt_conf_error(cf, "\"%s\" is duplicate", d->name);
    if (parse(cf->value, &v) != PT_OK)
        return pt_conf_error(cf, "invalid %s \"%s\" for \"%s\" (use %s)", what, cf->value, d->name,
                             like);
    if (bounds && (v < bounds[0] || v > bounds[1]))
        return pt_conf_error(cf, "\"%s\" must be between %lld and %lld, not %lld", d->name,
                             (long long)bounds[0], (long long)bounds[1], (long long)v);
    *f = v;
    return PT_OK;
}

int pt_conf_set_num(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    /* A count without bounds of its own still ends up in an int or an unsigned somewhere
     * (keepalive_requests is compared with a connection's unsigned count): past INT_MAX
     * it would wrap there instead of here, in the operator's sight. */
    static const int64_t count_bounds[2] = {0, INT_MAX};

    return set_int64(cf, d, conf, pt_parse_int, d->post ? d->post : count_bounds, "number",
                     "digits");
}

int pt_conf_set_size(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    return set_int64(cf, d, conf, pt_parse_size, d->post, "size", "a size like 512, 8k, 1m");
}

int pt_conf_set_msec(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    return set_int64(cf, d, conf, pt_parse_msec, d->post, "time", "a time like 500ms, 5s, 2m");
}

int pt_conf_set_enum(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    const struct pt_conf_enum *e = d->post;
    int *f = FIELD(conf, d, int);
    char words[256];
    size_t n = 0;

    if (*f != PT_CONF_UNSET)
        return pt_conf_error(cf, "\"%s\" is duplicate", d->name);
    for (; e->name; e++) {
        if (strcmp(cf->value, e->name) == 0) {
            *f = e->value;
            return PT_OK;
        }
        n += (size_t)snprintf(words + n, sizeof(words) - n, "%s\"%s\"", n ? ", " : "", e->name);
        if (n >= sizeof(words))
            n = sizeof(words) - 1;
    }
    return pt_conf_error(cf, "invalid value \"%s\" for \"%s\": use %s", cf->value, d->name, words);
}

int pt_conf_set_str(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    char **f = FIELD(conf, d, char *);

    if (*f != NULL)
        return pt_conf_error(cf, "\"%s\" is duplicate", d->name);
    *f = pt_pstrdup(cf->pool, cf->value);
    return PT_OK;
}
