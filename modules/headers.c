/*
 * headers.c: the headers module: add_header, nginx's meaning.  A header filter adds the
 * configured headers to responses with a success or redirect status (any status with
 * "always").  As in nginx, a level that has any add_header does not inherit its parent's.
 *
 * Values are templates, compiled in postconfig once every module has registered its
 * variables.
 */
#include <string.h>

#include "worker/http.h"
#include "core/pool.h"
#include "worker/var.h"
#include "worker/var_http.h"

struct add_header {
    struct pt_str name;
    const char *src;
    struct pt_template *value;
    unsigned always : 1;
    const struct pt_conf_setting *setting; /* for errors found when compiling in postconfig */
    struct add_header *next_all;           /* every add_header of the cycle */
};

/* The add_header lines of one level; shared by the levels that inherit it. */
struct header_list {
    struct add_header **h;
    int n;
};

struct headers_main_conf {
    struct add_header *all;
};

struct headers_loc_conf {
    struct header_list *list; /* NULL: not set here, inherit */
};

static int set_add_header(struct pt_conf *cf, const struct pt_directive *d, void *conf);

static const struct pt_directive headers_directives[] = {
    {"add_header", PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC, PT_DIR_MULTI, PT_LOC_CONF, set_add_header,
     0, NULL,
     "\"NAME VALUE [always]\": adds a response header (VALUE may use variables) to 2xx/3xx "
     "responses, or to all with always; a level with add_header does not inherit its parent's"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

extern struct pt_module pt_headers_module;

static void *create_main_conf(struct pt_conf *cf)
{
    return pt_palloc(cf->pool, sizeof(struct headers_main_conf));
}

static void *create_loc_conf(struct pt_conf *cf)
{
    return pt_palloc(cf->pool, sizeof(struct headers_loc_conf));
}

static int merge_loc_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct headers_loc_conf *p = parent, *c = child;

    pt_unused(cf);
    if (c->list == NULL)
        c->list = p->list;
    return PT_OK;
}

static int set_add_header(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct headers_main_conf *mc = pt_cycle_main_conf(cf->cycle, pt_headers_module);
    struct headers_loc_conf *hlc = conf;
    struct header_list *l = hlc->list;
    struct add_header *h = pt_palloc(cf->pool, sizeof(*h)), **a;
    char *src;
    int always = 0;

    pt_unused(d);
    if (l == NULL && (l = hlc->list = pt_palloc(cf->pool, sizeof(*l))) == NULL)
        return pt_conf_error(cf, "out of memory");
    if (h == NULL || (a = pt_palloc(cf->pool, (size_t)(l->n + 1) * sizeof(*a))) == NULL)
        return pt_conf_error(cf, "out of memory");
    if (pt_http_header_directive(cf, cf->value, &h->name, &src, &always) != PT_OK)
        return pt_conf_error(cf,
                             "invalid add_header \"%s\" (use \"NAME VALUE [always]\", NAME "
                             "a token, VALUE without CR or LF)",
                             cf->value);
    h->src = src;
    h->always = always != 0;
    h->setting = cf->setting;
    h->next_all = mc->all;
    mc->all = h;
    if (l->n)
        memcpy(a, l->h, (size_t)l->n * sizeof(*a));
    a[l->n++] = h;
    l->h = a;
    return PT_OK;
}

/* nginx adds headers without "always" to these statuses only. */
static int status_allowed(int status)
{
    switch (status) {
    case 200:
    case 201:
    case 204:
    case 206:
    case 301:
    case 302:
    case 303:
    case 304:
    case 307:
    case 308: return 1;
    }
    return 0;
}

static int headers_filter(struct pt_request *r)
{
    struct headers_loc_conf *hlc = r->loc_conf ? pt_http_loc_conf(r, pt_headers_module) : NULL;
    struct header_list *l = hlc ? hlc->list : NULL;
    int allowed = status_allowed(r->status);

    for (int i = 0; l && i < l->n; i++) {
        struct add_header *h = l->h[i];
        struct pt_str v;
        if (!allowed && !h->always)
            continue;
        if (pt_template_eval(r, h->value, &v) != PT_OK)
            return PT_ERROR;
        /* Empty adds nothing (nginx); CR/LF/NUL from a variable would split the header. */
        if (v.len == 0 || memchr(v.p, '\r', v.len) || memchr(v.p, '\n', v.len) ||
            memchr(v.p, '\0', v.len))
            continue;
        if (pt_header_add(r, &r->out, h->name, v) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

static int postconfig(struct pt_conf *cf)
{
    struct headers_main_conf *mc = pt_cycle_main_conf(cf->cycle, pt_headers_module);

    /* Idempotent; makes sure the core variables exist whatever the http core did. */
    if (pt_http_vars_register() != PT_OK)
        return pt_conf_error(cf, "cannot register the HTTP variables");
    for (struct add_header *h = mc->all; h; h = h->next_all) {
        cf->setting = h->setting;
        if ((h->value = pt_template_compile(cf, h->src, PT_ESCAPE_NONE)) == NULL)
            return PT_ERROR;
    }
    cf->setting = NULL;
    if (pt_header_filter_add(cf->cycle, headers_filter) != PT_OK)
        return pt_conf_error(cf, "too many header filters");
    return PT_OK;
}

struct pt_module pt_headers_module = {
    .name = "headers",
    .directives = headers_directives,
    .create_main_conf = create_main_conf,
    .create_loc_conf = create_loc_conf,
    .merge_loc_conf = merge_loc_conf,
    .postconfig = postconfig,
};
