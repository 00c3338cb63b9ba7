/*
 * static.c: the static module's configuration: nginx's root, alias, index, try_files, types,
 * default_type, gzip_static and autoindex, and the MIME types table.
 *
 * The table at the top is the system's /etc/mime.types (Debian's media-types), read once per
 * configuration, or a small built-in one where that file is absent; a level with `types`
 * of its own uses only those, as nginx.  Files go out from serve.c; try_files is
 * try_files.c.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/conf.h"
#include "config/words.h"
#include "core/log.h"
#include "core/pool.h"
#include "modules/static/static.h"
#include "worker/http_phase.h"

#define SYSTEM_MIME_TYPES "/etc/mime.types"

static int set_root(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_index(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_try_files(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_types(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_open_file_cache(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_disable_symlinks(struct pt_conf *cf, const struct pt_directive *d, void *conf);

#define HSL (PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC)

static const int is_root = 0, is_alias = 1;

static const struct pt_conf_enum gzip_static_values[] = {
    {"off", GZIP_STATIC_OFF}, {"on", GZIP_STATIC_ON}, {"always", GZIP_STATIC_ALWAYS}, {NULL, 0}};

static const struct pt_conf_enum autoindex_formats[] = {{"html", AUTOINDEX_HTML},
                                                        {"json", AUTOINDEX_JSON},
                                                        {"jsonp", AUTOINDEX_JSONP},
                                                        {"xml", AUTOINDEX_XML},
                                                        {NULL, 0}};

static const struct pt_directive static_directives[] = {
    {"root", HSL, 0, PT_LOC_CONF, set_root, 0, &is_root,
     "the directory a request's URI is looked up under (variables allowed): the file of "
     "/img/a.png is ROOT/img/a.png (default \"html\" under the prefix, as nginx)"},
    {"alias", PT_CTX_LOC, 0, PT_LOC_CONF, set_root, 0, &is_alias,
     "a location's replacement for its prefix: in location /img/ with alias /srv/pics/, "
     "/img/a.png is /srv/pics/a.png; in a regex location it is the whole path, naming the "
     "regex's captures (alias /srv/$1)"},
    {"index", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_index, 0, NULL,
     "the files tried, in order, for a URI ending in '/' (variables allowed); the first that "
     "exists is served through an internal redirect to it (default index.html)"},
    {"try_files", PT_CTX_SRV | PT_CTX_LOC, 0, PT_LOC_CONF, set_try_files, 0, NULL,
     "\"FILE ... LAST\" as nginx's line: each FILE (variables allowed, \"$uri/\" for a "
     "directory) is looked up under root or alias, and the first that exists is served; "
     "else LAST: a URI (an internal redirect), \"=CODE\" or a named location \"@name\""},
    {"types", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_types, 0, NULL,
     "[ \"text/html html htm\", \"image/png png\" ]: MIME types by file extension, a line of "
     "nginx's types block each; a level with types uses only its own (default: the system's "
     "/etc/mime.types, or a built-in table where it is absent)"},
    {"default_type", HSL, 0, PT_LOC_CONF, pt_conf_set_str,
     offsetof(struct static_loc_conf, default_type), NULL,
     "the MIME type of a file whose extension no type names (default text/plain, as nginx)"},
    {"gzip_static", HSL, 0, PT_LOC_CONF, pt_conf_set_enum,
     offsetof(struct static_loc_conf, gzip_static), gzip_static_values,
     "on: a file FILE.gz beside the file asked for is sent instead, with Content-Encoding: "
     "gzip, to a client whose Accept-Encoding takes gzip (its own Last-Modified, ETag and "
     "length; the type of the file asked for); always: to every client; off (default)"},
    {"brotli_static", HSL, 0, PT_LOC_CONF, pt_conf_set_enum,
     offsetof(struct static_loc_conf, brotli_static), gzip_static_values,
     "as gzip_static for FILE.br and a client whose Accept-Encoding takes br (over HTTP/1.0 "
     "and through proxies too, as ngx_brotli); tried before gzip_static; off (default)"},
    {"open_file_cache", HSL, 0, PT_LOC_CONF, set_open_file_cache, 0, NULL,
     "\"max=N [inactive=TIME]\" or \"off\" (default): each worker keeps up to N files open "
     "with what stat said of them, the least recently used going first, and drops those "
     "unused for inactive (default 60s) as requests come; a file changed or removed is "
     "served as it was until open_file_cache_valid has passed, as in nginx"},
    {"open_file_cache_valid", HSL, 0, PT_LOC_CONF, pt_conf_set_msec,
     offsetof(struct static_loc_conf, open_file_cache_valid), NULL,
     "how long a cached file (or error) is used before it is opened again (default 60s)"},
    {"open_file_cache_min_uses", HSL, 0, PT_LOC_CONF, pt_conf_set_num,
     offsetof(struct static_loc_conf, open_file_cache_min_uses), NULL,
     "uses within inactive before a file's descriptor is kept open (default 1)"},
    {"open_file_cache_errors", HSL, 0, PT_LOC_CONF, pt_conf_set_flag,
     offsetof(struct static_loc_conf, open_file_cache_errors), NULL,
     "on: a file that could not be opened (missing, forbidden) is remembered as such too "
     "(default off)"},
    {"disable_symlinks", HSL, 0, PT_LOC_CONF, set_disable_symlinks, 0, NULL,
     "\"off\" (default: links are followed, as nginx), \"on\" (a symbolic link anywhere in "
     "the path is refused: 403 for the file itself, 404 for a directory on the way) or "
     "\"if_not_owner\" (a link is followed only where it and what it names have one "
     "owner), with \"from=PART\" (variables allowed; \"from=$document_root\"): the path's "
     "start that is not checked"},
    {"autoindex", HSL, 0, PT_LOC_CONF, pt_conf_set_flag,
     offsetof(struct static_loc_conf, autoindex), NULL,
     "on: a URI ending in '/' whose directory has no index file is answered with a listing "
     "of the directory, as nginx's (names starting with '.' left out, directories first); "
     "off (default): 403"},
    {"autoindex_format", HSL, 0, PT_LOC_CONF, pt_conf_set_enum,
     offsetof(struct static_loc_conf, autoindex_format), autoindex_formats,
     "the listing's format: html (default), json, jsonp (the JSON passed to the function the "
     "request's callback argument names; JSON without one) or xml"},
    {"autoindex_exact_size", HSL, 0, PT_LOC_CONF, pt_conf_set_flag,
     offsetof(struct static_loc_conf, autoindex_exact_size), NULL,
     "on (default): the HTML listing gives file sizes in bytes; off: rounded to kilobytes, "
     "megabytes or gigabytes (\"12K\"), as nginx rounds them"},
    {"autoindex_localtime", HSL, 0, PT_LOC_CONF, pt_conf_set_flag,
     offsetof(struct static_loc_conf, autoindex_localtime), NULL,
     "on: the HTML listing's times are in the server's local time zone; off (default): GMT"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

/* ---- MIME types -------------------------------------------------------------------------- */

/* Where /etc/mime.types is absent: the types the web serves most. */
static const char *const builtin_types[] = {
    "text/html html htm shtml",
    "text/css css",
    "text/xml xml",
    "text/plain txt",
    "text/javascript js mjs",
    "application/json json",
    "application/wasm wasm",
    "application/pdf pdf",
    "application/zip zip",
    "application/gzip gz",
    "application/xhtml+xml xhtml",
    "image/gif gif",
    "image/jpeg jpeg jpg",
    "image/png png",
    "image/svg+xml svg svgz",
    "image/webp webp",
    "image/avif avif",
    "image/x-icon ico",
    "font/woff woff",
    "font/woff2 woff2",
    "audio/mpeg mp3",
    "video/mp4 mp4",
    "video/webm webm",
    NULL,
};

static int type_order(const void *a, const void *b)
{
    const struct mime_type *x = a, *y = b;
    int d = strcmp(x->ext, y->ext);

    return d ? d : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Adds the line "TYPE EXT..." (nginx's types line, split as nginx splits it) to <t>.
 * PT_OK or PT_ERROR (reported). */
static int add_types_line(struct pt_conf *cf, struct mime_types *t, const char *line)
{
    char *w[64];
    int n = pt_conf_words(cf, line, w, 64);

    if (n < 0)
        return PT_ERROR;
    if (n > 64)
        return pt_conf_error(cf, "too many extensions in one types line (64 at most)");
    for (int i = 1; i < n; i++) {
        if (t->n == t->cap) {
            int cap = t->cap ? 2 * t->cap : 64;
            struct mime_type *a = pt_palloc(cf->pool, (size_t)cap * sizeof(*a));
            if (a == NULL)
                return pt_conf_error(cf, "out of memory");
            if (t->n)
                memcpy(a, t->t, (size_t)t->n * sizeof(*a));
            t->t = a;
            t->cap = cap;
        }
        for (char *p = w[i]; *p; p++)
            *p = (char)pt_lower(*p);
        t->t[t->n++] = (struct mime_type){w[i], w[0], t->named++};
    }
    return PT_OK;
}

/* Sorts <t> by extension; of an extension named twice the first type stays (nginx warns,
 * and keeps the first). */
static void finish_types(struct mime_types *t)
{
    int n = 0;

    qsort(t->t, (size_t)t->n, sizeof(*t->t), type_order);
    for (int i = 0; i < t->n; i++)
        if (n == 0 || strcmp(t->t[i].ext, t->t[n - 1].ext) != 0)
            t->t[n++] = t->t[i];
    t->n = n;
}

/* Reads the system's types into <t>: PT_OK, PT_DECLINED when the file is absent. */
static int read_system_types(struct pt_conf *cf, struct mime_types *t)
{
    FILE *f = fopen(SYSTEM_MIME_TYPES, "re");
    char line[1024];
    int rc = PT_OK;

    if (f == NULL)
        return PT_DECLINED;
    while (rc == PT_OK && fgets(line, sizeof(line), f)) {
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || *p == '\0' || !strpbrk(p, " \t"))
            continue;
        p[strcspn(p, "\r\n#;")] = '\0';
        rc = add_types_line(cf, t, pt_pstrdup(cf->pool, p));
    }
    fclose(f);
    return rc;
}

struct pt_str pt_static_type(struct pt_request *r, const struct static_loc_conf *lc,
                             struct pt_str path)
{
    const struct static_main_conf *mc = r->main_conf[pt_static_module.index];
    const struct mime_types *t = lc->types ? lc->types : &mc->types;
    const char *slash = memrchr(path.p, '/', path.len), *dot;
    char ext[32];
    size_t start = slash ? (size_t)(slash - path.p) + 1 : 0, n;
    int lo = 0, hi;

    dot = memrchr(path.p + start, '.', path.len - start);
    if (dot == NULL || (n = path.len - (size_t)(dot + 1 - path.p)) == 0 || n >= sizeof(ext))
        return pt_str_c(lc->default_type);
    for (size_t i = 0; i < n; i++)
        ext[i] = pt_lower(dot[1 + i]);
    ext[n] = '\0';
    for (hi = t->n; lo < hi;) {
        int mid = lo + (hi - lo) / 2, d = strcmp(ext, t->t[mid].ext);
        if (d == 0)
            return pt_str_c(t->t[mid].type);
        if (d < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return pt_str_c(lc->default_type);
}

/* ---- directives -------------------------------------------------------------------------- */

static void *create_main_conf(struct pt_conf *cf)
{
    struct static_main_conf *mc = pt_palloc(cf->pool, sizeof(*mc));
    int rc;

    if (mc == NULL)
        return NULL;
    rc = read_system_types(cf, &mc->types);
    for (int i = 0; rc == PT_DECLINED && builtin_types[i]; i++)
        if (add_types_line(cf, &mc->types, builtin_types[i]) != PT_OK)
            return NULL;
    if (rc == PT_ERROR)
        return NULL;
    finish_types(&mc->types);
    return mc;
}

static void *create_loc_conf(struct pt_conf *cf)
{
    struct static_loc_conf *lc = pt_palloc(cf->pool, sizeof(*lc));

    if (lc == NULL)
        return NULL;
    lc->nindex = lc->gzip_static = lc->brotli_static = PT_CONF_UNSET;
    lc->open_file_cache_valid = lc->open_file_cache_min_uses = PT_CONF_UNSET;
    lc->open_file_cache_errors = lc->symlinks = PT_CONF_UNSET;
    lc->autoindex = lc->autoindex_format = PT_CONF_UNSET;
    lc->autoindex_exact_size = lc->autoindex_localtime = PT_CONF_UNSET;
    return lc;
}

/* The location's spec <name> ("/img/", "= /x", "^~ /p", "~ re"): its prefix, or regex. */
static void location_prefix(struct static_loc_conf *lc, const char *name)
{
    if (name == NULL || name[0] == '~') {
        lc->alias_whole = 1;
        return;
    }
    if (strncmp(name, "= ", 2) == 0)
        name += 2;
    else if (strncmp(name, "^~ ", 3) == 0)
        name += 3;
    lc->loc_prefix = pt_str_c(name);
}

static int set_root(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct static_loc_conf *lc = conf;
    int alias = *(const int *)d->post == is_alias;

    if (lc->root)
        return pt_conf_error(cf, "\"%s\" directive is duplicate%s", d->name,
                             lc->alias != alias ? ", \"root\" and \"alias\" exclude each other"
                                                : "");
    if ((lc->root = pt_template_compile(cf, cf->value, PT_ESCAPE_NONE)) == NULL)
        return PT_ERROR;
    lc->alias = (unsigned)alias;
    if (alias) {
        struct pt_http_loc_conf *hl = cf->conf->loc_conf[pt_http_module.index];
        location_prefix(lc, hl->name);
    }
    return PT_OK;
}

static int set_index(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct static_loc_conf *lc = conf;

    pt_unused(d);
    if (cf->value[0] == '\0' || strchr(cf->value, '/'))
        return pt_conf_error(cf, "invalid index \"%s\": a file name, not a path", cf->value);
    return pt_conf_list_add(cf, &lc->index, &lc->nindex, pt_pstrdup(cf->pool, cf->value));
}

static int set_try_files(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct static_loc_conf *lc = conf;
    char *w[32];
    int n = pt_conf_words(cf, cf->value, w, 32);

    pt_unused(d);
    if (n < 0)
        return PT_ERROR;
    if (n < 2 || n > 32)
        return pt_conf_error(cf,
                             "invalid try_files \"%s\": use \"FILE ... LAST\" (2 to 32 "
                             "words; LAST a URI, =CODE or @name)",
                             cf->value);
    if ((lc->try_files = pt_palloc(cf->pool, (size_t)(n - 1) * sizeof(*lc->try_files))) == NULL)
        return pt_conf_error(cf, "out of memory");
    for (int i = 0; i < n - 1; i++) {
        size_t len = strlen(w[i]);
        lc->try_files[i].dir = len > 1 && w[i][len - 1] == '/';
        if ((lc->try_files[i].path = pt_template_compile(cf, w[i], PT_ESCAPE_NONE)) == NULL)
            return PT_ERROR;
    }
    if (w[n - 1][0] == '=') {
        char *end;
        long code = strtol(w[n - 1] + 1, &end, 10);
        if (*end || code < 100 || code > 999)
            return pt_conf_error(cf, "invalid code \"%s\" in try_files", w[n - 1]);
        lc->try_code = (int)code;
    } else if ((lc->try_to = pt_template_compile(cf, w[n - 1], PT_ESCAPE_NONE)) == NULL) {
        return PT_ERROR;
    }
    lc->ntry = n - 1;
    lc->try_last = w[n - 1];
    return PT_OK;
}

static int set_types(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct static_loc_conf *lc = conf;

    pt_unused(d);
    if (lc->types == NULL && (lc->types = pt_palloc(cf->pool, sizeof(*lc->types))) == NULL)
        return pt_conf_error(cf, "out of memory");
    if (add_types_line(cf, lc->types, cf->value) != PT_OK)
        return PT_ERROR;
    finish_types(lc->types);
    return PT_OK;
}

static int set_open_file_cache(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct static_loc_conf *lc = conf;
    char *w[3];
    int64_t max = 0, inactive = 60000;
    int n = pt_conf_words(cf, cf->value, w, 3);

    pt_unused(d);
    if (n < 0)
        return PT_ERROR;
    if (lc->open_file_cache_set)
        return pt_conf_error(cf, "\"open_file_cache\" is duplicate");
    lc->open_file_cache_set = 1;
    if (n == 1 && strcmp(w[0], "off") == 0)
        return PT_OK;
    for (int i = 0; i < n; i++) {
        if (strncmp(w[i], "max=", 4) == 0 && pt_parse_int(w[i] + 4, &max) == PT_OK && max > 0 &&
            max <= 1 << 24)
            continue;
        if (strncmp(w[i], "inactive=", 9) == 0 && pt_parse_msec(w[i] + 9, &inactive) == PT_OK)
            continue;
        return pt_conf_error(cf,
                             "invalid open_file_cache parameter \"%s\": use \"max=N "
                             "[inactive=TIME]\" (N from 1) or \"off\"",
                             w[i]);
    }
    if (max == 0)
        return pt_conf_error(cf, "\"open_file_cache\" must have the \"max\" parameter");
    if ((lc->open_file_cache = pt_palloc(cf->pool, sizeof(*lc->open_file_cache))) == NULL)
        return pt_conf_error(cf, "out of memory");
    lc->open_file_cache->max = (int)max;
    lc->open_file_cache->inactive = inactive;
    return PT_OK;
}

static int set_disable_symlinks(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    static const struct pt_conf_enum modes[] = {
        {"off", SYMLINKS_OFF}, {"on", SYMLINKS_ON}, {"if_not_owner", SYMLINKS_IF_NOT_OWNER}};
    struct static_loc_conf *lc = conf;
    char *w[3];
    int n = pt_conf_words(cf, cf->value, w, 3);

    pt_unused(d);
    if (n < 0)
        return PT_ERROR;
    if (lc->symlinks != PT_CONF_UNSET)
        return pt_conf_error(cf, "\"disable_symlinks\" is duplicate");
    for (size_t i = 0; n >= 1 && n <= 2 && i < sizeof(modes) / sizeof(modes[0]); i++)
        if (strcmp(w[0], modes[i].name) == 0)
            lc->symlinks = modes[i].value;
    if (lc->symlinks == PT_CONF_UNSET || (n == 2 && strncmp(w[1], "from=", 5) != 0))
        return pt_conf_error(cf,
                             "invalid disable_symlinks \"%s\": use \"off\", \"on\" or "
                             "\"if_not_owner\", then \"from=PART\" if wanted",
                             cf->value);
    if (n == 2 && lc->symlinks == SYMLINKS_OFF)
        return pt_conf_error(cf, "\"from=\" cannot be used with \"off\"");
    if (n == 2 && (lc->symlinks_from = pt_template_compile(cf, w[1] + 5, PT_ESCAPE_NONE)) == NULL)
        return PT_ERROR;
    return PT_OK;
}

static int merge_loc_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct static_loc_conf *p = parent, *c = child;

    if (c->root == NULL) {
        c->root = p->root;
        c->alias = p->alias;
        c->alias_whole = p->alias_whole;
        c->loc_prefix = p->loc_prefix;
    }
    if (c->root == NULL &&
        (c->root = pt_template_compile(cf, pt_conf_path(cf, "html"), PT_ESCAPE_NONE)) == NULL)
        return PT_ERROR;
    if (c->nindex == PT_CONF_UNSET) {
        c->index = p->index;
        c->nindex = p->nindex;
    }
    if (c->nindex == PT_CONF_UNSET) {
        static char *dflt[] = {"index.html"};
        c->index = dflt;
        c->nindex = 1;
    }
    /* try_files is not inherited: nginx's at server level serves only the requests no
     * location takes. */
    pt_conf_merge_ptr(c->types, p->types, NULL);
    pt_conf_merge_int(c->gzip_static, p->gzip_static, GZIP_STATIC_OFF);
    pt_conf_merge_int(c->brotli_static, p->brotli_static, GZIP_STATIC_OFF);
    if (!c->open_file_cache_set) {
        c->open_file_cache = p->open_file_cache;
        c->open_file_cache_set = p->open_file_cache_set;
    }
    pt_conf_merge_int(c->open_file_cache_valid, p->open_file_cache_valid, 60000);
    pt_conf_merge_int(c->open_file_cache_min_uses, p->open_file_cache_min_uses, 1);
    pt_conf_merge_int(c->open_file_cache_errors, p->open_file_cache_errors, 0);
    if (c->symlinks == PT_CONF_UNSET) {
        c->symlinks = p->symlinks;
        c->symlinks_from = p->symlinks_from;
    }
    pt_conf_merge_int(c->symlinks, p->symlinks, SYMLINKS_OFF);
    pt_conf_merge_int(c->autoindex, p->autoindex, 0);
    pt_conf_merge_int(c->autoindex_format, p->autoindex_format, AUTOINDEX_HTML);
    pt_conf_merge_int(c->autoindex_exact_size, p->autoindex_exact_size, 1);
    pt_conf_merge_int(c->autoindex_localtime, p->autoindex_localtime, 0);
    pt_conf_merge_ptr(c->default_type, p->default_type, (char *)"text/plain");
    return PT_OK;
}

/* ---- variables ------------------------------------------------------------------------ */

/* $document_root: the root or alias of the request's location, as nginx's. */
static int var_document_root(struct pt_request *r, struct pt_str arg, struct pt_str *out)
{
    const struct static_loc_conf *lc = pt_http_loc_conf(r, pt_static_module);

    pt_unused(arg);
    return lc && pt_template_eval(r, lc->root, out) == PT_OK ? PT_OK : PT_DECLINED;
}

/* $realpath_root: that directory with its symbolic links resolved (realpath). */
static int var_realpath_root(struct pt_request *r, struct pt_str arg, struct pt_str *out)
{
    char *root, *real;

    if (var_document_root(r, arg, out) != PT_OK ||
        (root = pt_pstrndup(r->pool, out->p, out->len)) == NULL)
        return PT_DECLINED;
    if ((real = realpath(root, NULL)) == NULL) {
        pt_http_log(r, PT_LOG_CRIT, "realpath() \"%s\" failed (%d: %s)", root, errno,
                    strerror(errno));
        return PT_DECLINED;
    }
    out->len = strlen(real);
    out->p = pt_pstrndup(r->pool, real, out->len);
    free(real);
    return out->p ? PT_OK : PT_DECLINED;
}

/* $request_filename: the file the request's URI names under root or alias. */
static int var_request_filename(struct pt_request *r, struct pt_str arg, struct pt_str *out)
{
    const struct static_loc_conf *lc = pt_http_loc_conf(r, pt_static_module);

    pt_unused(arg);
    return lc && pt_static_map_uri(r, lc, r->uri, out) == PT_OK ? PT_OK : PT_DECLINED;
}

/* pt_http_uri_type for the worker: the type of the request's URI in its location. */
static struct pt_str uri_type(struct pt_request *r)
{
    return pt_static_type(r, pt_http_loc_conf(r, pt_static_module), r->uri);
}

static int postconfig(struct pt_conf *cf)
{
    pt_http_uri_type = uri_type;
    if (pt_var_register("document_root", 0, var_document_root) != PT_OK ||
        pt_var_register("realpath_root", 0, var_realpath_root) != PT_OK ||
        pt_var_register("request_filename", 0, var_request_filename) != PT_OK)
        return pt_conf_error(cf, "the static module's variables are taken");
    if (pt_phase_add(cf->cycle, PT_PHASE_PRECONTENT, pt_static_try_files) != PT_OK ||
        pt_phase_add(cf->cycle, PT_PHASE_CONTENT, pt_static_handler) != PT_OK)
        return pt_conf_error(cf, "too many phase handlers");
    return PT_OK;
}

struct pt_module pt_static_module = {
    .name = "static",
    .directives = static_directives,
    .create_main_conf = create_main_conf,
    .create_loc_conf = create_loc_conf,
    .merge_loc_conf = merge_loc_conf,
    .postconfig = postconfig,
};
