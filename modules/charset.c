/*
 * charset.c: the charset module: nginx's charset, charset_types, override_charset and
 * source_charset, as far as naming the charset goes.  A header filter appends
 * "; charset=NAME" to the Content-Type of a response whose type is listed and that names no
 * charset, whatever produced it (a file, a proxied answer, a generated page), and, with
 * override_charset, rewrites the charset an upstream named when it is the same charset.
 *
 * Recoding (nginx's charset_map, and a source_charset other than charset) is left out: a
 * configuration that would need it fails -t.  Where nginx decides only per request that it
 * would recode (an upstream naming another charset under override_charset, a charset from a
 * variable), it finds no charset_map between the two, logs so and leaves the answer as it
 * is; portier does the same, since it never has a charset_map.
 *
 * nginx's test of "the same charset" is by the names the configuration mentions: two names
 * are one charset when they are equal but for case and the configuration mentions them
 * (charset, source_charset); the name sent is the one written first.
 */
#include <string.h>
#include <strings.h>

#include "worker/http.h"
#include "config/conf.h"
#include "core/log.h"
#include "core/pool.h"
#include "worker/var.h"

/* A charset or source_charset value: an index into the configuration's names, or these
 * (below PT_ERROR, which the functions returning an index use for out of memory). */
#define CS_OFF   (-2) /* charset off (or source_charset not set) */
#define CS_VAR   (-3) /* a variable: its value is looked up per request */
#define CS_NONE  (-4) /* a name the configuration does not mention */
#define CS_UNSET (-5)

/* The charset names the configuration mentions, each once (case-insensitively), as first
 * written. */
struct charset_main_conf {
    const char **names;
    int n, cap;
};

struct charset_loc_conf {
    int charset, source;               /* CS_* or an index into the names */
    struct pt_template *charset_var;   /* with CS_VAR */
    struct pt_template *source_var;    /* likewise */
    int override;                      /* override_charset (flag) */
    char **types;                      /* charset_types: lower-case, besides text/html */
    int ntypes;                        /* PT_CONF_UNSET: not set here */
    int all_types;                     /* charset_types "*" */
    const struct pt_conf_setting *sat; /* the source_charset line, for a recoding refused */
};

static int set_charset(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_types(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_charset_map(struct pt_conf *cf, const struct pt_directive *d, void *conf);

#define CLC(f) offsetof(struct charset_loc_conf, f)
#define HSL    (PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC)

static const struct pt_directive charset_directives[] = {
    {"charset", HSL, 0, PT_LOC_CONF, set_charset, CLC(charset), NULL,
     "\"NAME\" (\"utf-8\"), \"$VARIABLE\" or \"off\" (default): appends \"; charset=NAME\" to "
     "the Content-Type of answers of a charset_types type that name no charset (files, "
     "proxied answers, error pages; not 301 and 302), as nginx"},
    {"charset_types", HSL, PT_DIR_MULTI, PT_LOC_CONF, set_types, 0, NULL,
     "MIME types charset applies to besides text/html, or \"*\" for all (default: text/html, "
     "text/xml, text/plain, text/vnd.wap.wml, application/javascript, application/rss+xml)"},
    {"override_charset", HSL, 0, PT_LOC_CONF, pt_conf_set_flag, CLC(override), NULL,
     "also for proxied answers that name a charset, whatever their type: the same charset is "
     "renamed as charset writes it, another is left as it is and logged (portier does not "
     "recode) (default off)"},
    {"source_charset", HSL, 0, PT_LOC_CONF, set_charset, CLC(source), NULL,
     "\"NAME\" or \"$VARIABLE\": the charset of answers that name none; only the charset's "
     "own is accepted, as recoding between charsets is not supported"},
    {"charset_map", PT_CTX_HTTP, PT_DIR_BLOCK, PT_MAIN_CONF, set_charset_map, 0, NULL,
     "not supported: portier does not recode between charsets, so a configuration with "
     "charset_map fails -t"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

extern struct pt_module pt_charset_module;

/* The types every level has unless charset_types says otherwise (nginx's). */
static const char *const default_types[] = {
    "text/html",           "text/xml", "text/plain", "text/vnd.wap.wml", "application/javascript",
    "application/rss+xml",
};

static void *create_main_conf(struct pt_conf *cf)
{
    return pt_palloc(cf->pool, sizeof(struct charset_main_conf));
}

static void *create_loc_conf(struct pt_conf *cf)
{
    struct charset_loc_conf *lc = pt_palloc(cf->pool, sizeof(*lc));

    if (lc == NULL)
        return NULL;
    lc->charset = lc->source = CS_UNSET;
    lc->override = lc->ntypes = PT_CONF_UNSET;
    return lc;
}

/* The index of <name> (<len> bytes) among the names of <mc>, or CS_NONE. */
static int name_index(const struct charset_main_conf *mc, const char *name, size_t len)
{
    for (int i = 0; i < mc->n; i++)
        if (strlen(mc->names[i]) == len && strncasecmp(mc->names[i], name, len) == 0)
            return i;
    return CS_NONE;
}

/* The index of <name> among the configuration's names, added when new.  PT_ERROR (reported)
 * when out of memory. */
static int add_name(struct pt_conf *cf, const char *name)
{
    struct charset_main_conf *mc = pt_cycle_main_conf(cf->cycle, pt_charset_module);
    int i = name_index(mc, name, strlen(name));

    if (i != CS_NONE)
        return i;
    if (mc->n == mc->cap) {
        int cap = mc->cap ? 2 * mc->cap : 8;
        const char **a = pt_palloc(cf->pool, (size_t)cap * sizeof(*a));
        if (a == NULL)
            return pt_conf_error(cf, "out of memory");
        if (mc->n)
            memcpy(a, mc->names, (size_t)mc->n * sizeof(*a));
        mc->names = a;
        mc->cap = cap;
    }
    if ((mc->names[mc->n] = pt_pstrdup(cf->pool, name)) == NULL)
        return pt_conf_error(cf, "out of memory");
    return mc->n++;
}

/* charset and source_charset: a name, a variable ("$name", the whole value), or, for
 * charset, "off".  As in nginx, "off" is a name like any other for source_charset. */
static int set_charset(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct charset_loc_conf *lc = conf;
    int *field = (int *)((char *)conf + d->offset), is_charset = d->offset == CLC(charset);
    const char *v = cf->value;
    size_t n;

    if (*field != CS_UNSET)
        return pt_conf_error(cf, "\"%s\" is duplicate", d->name);
    if (!is_charset)
        lc->sat = cf->setting;
    if (is_charset && strcmp(v, "off") == 0) {
        *field = CS_OFF;
        return PT_OK;
    }
    if (v[0] == '$') {
        struct pt_template *t;
        n = strspn(v + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
        if (n == 0 || v[1 + n] != '\0')
            return pt_conf_error(cf,
                                 "invalid \"%s\" value \"%s\": a variable is the whole value "
                                 "(\"$name\")",
                                 d->name, v);
        if ((t = pt_template_compile(cf, v, PT_ESCAPE_NONE)) == NULL)
            return PT_ERROR;
        *(is_charset ? &lc->charset_var : &lc->source_var) = t;
        *field = CS_VAR;
        return PT_OK;
    }
    if (v[0] == '\0' || strpbrk(v, " \t;\"\r\n"))
        return pt_conf_error(cf, "invalid \"%s\" value \"%s\": use a charset name (\"utf-8\")",
                             d->name, v);
    return (*field = add_name(cf, v)) == PT_ERROR ? PT_ERROR : PT_OK;
}

/* charset_types: a level that has any starts from text/html alone (nginx's); "*" is all. */
static int set_types(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct charset_loc_conf *lc = conf;
    char *type;

    pt_unused(d);
    if (lc->ntypes == PT_CONF_UNSET)
        lc->ntypes = 0;
    if (strcmp(cf->value, "*") == 0) {
        lc->all_types = 1;
        return PT_OK;
    }
    if ((type = pt_pstrdup(cf->pool, cf->value)) == NULL)
        return pt_conf_error(cf, "out of memory");
    for (char *p = type; *p; p++)
        *p = pt_lower(*p);
    return pt_conf_list_add(cf, &lc->types, &lc->ntypes, type);
}

static int set_charset_map(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    pt_unused(d), pt_unused(conf);
    return pt_conf_error(cf, "\"charset_map\" is not supported: portier does not recode between "
                             "charsets (remove it, and serve the answers in the charset that "
                             "\"charset\" names)");
}

static int merge_loc_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct charset_main_conf *mc = pt_cycle_main_conf(cf->cycle, pt_charset_module);
    struct charset_loc_conf *p = parent, *c = child;

    if (c->charset == CS_UNSET) {
        c->charset = p->charset == CS_UNSET ? CS_OFF : p->charset;
        c->charset_var = p->charset_var;
    }
    if (c->source == CS_UNSET) {
        c->source = p->source == CS_UNSET ? CS_OFF : p->source;
        c->source_var = p->source_var;
        c->sat = p->sat;
    }
    pt_conf_merge_int(c->override, p->override, 0);
    if (c->ntypes == PT_CONF_UNSET) {
        c->types = p->types;
        c->ntypes = p->ntypes;
        c->all_types = p->all_types;
    }
    if (c->ntypes == PT_CONF_UNSET) {
        c->types = (char **)default_types;
        c->ntypes = (int)pt_nelems(default_types);
    }
    /* Two names, neither a variable: nginx would recode every answer of this level from the
     * one to the other, which needs a charset_map. */
    if (c->charset >= 0 && c->source >= 0 && c->charset != c->source)
        return pt_conf_error_at(cf, c->sat,
                                "\"source_charset %s\" with \"charset %s\" would recode the "
                                "answers from one charset to the other, which portier does not "
                                "support: make source_charset the same as charset, or remove it",
                                mc->names[c->source], mc->names[c->charset]);
    return PT_OK;
}

/* Whether charset applies to the media type <type> (<len> bytes): nginx compares the whole
 * of it, lower-cased, parameters included, so "text/html; q=1" is not text/html. */
static int type_listed(const struct charset_loc_conf *lc, const char *type, size_t len)
{
    if (lc->all_types || (len == 9 && strncasecmp(type, "text/html", 9) == 0))
        return 1;
    for (int i = 0; i < lc->ntypes; i++)
        if (strlen(lc->types[i]) == len && strncasecmp(lc->types[i], type, len) == 0)
            return 1;
    return 0;
}

/*
 * nginx's reading of a Content-Type value <v> (ngx_http_upstream_copy_content_type): the
 * charset is what follows the first parameter that starts with "charset=", to the end of the
 * value, without enclosing quotes; *<type_len> is the length before the ';' of that
 * parameter (the whole value when there is none).
 */
static struct pt_str header_charset(struct pt_str v, size_t *type_len)
{
    size_t i, semi, end = v.len;

    *type_len = v.len;
    for (i = 0; i < v.len; i++) {
        if (v.p[i] != ';')
            continue;
        semi = i;
        while (++i < v.len && v.p[i] == ' ')
            ;
        if (i == v.len)
            break;
        /* nginx steps past the byte it looked at: "a;;charset=x" names no charset. */
        if (v.len - i < 8 || strncasecmp(v.p + i, "charset=", 8) != 0)
            continue;
        *type_len = semi;
        i += 8;
        if (i < v.len && v.p[i] == '"')
            i++;
        if (end > i && v.p[end - 1] == '"')
            end--;
        return (struct pt_str){v.p + i, end > i ? end - i : 0};
    }
    return PT_NULL_STR;
}

/* Sets *<name> to the charset <cs> (its variable <t>'s value for <r>, empty when it has
 * none) and returns its index: CS_NONE for a name the configuration does not mention,
 * PT_ERROR when out of memory. */
static int charset_of(struct pt_request *r, const struct charset_main_conf *mc, int cs,
                      const struct pt_template *t, struct pt_str *name)
{
    if (cs != CS_VAR) {
        *name = pt_str_c(mc->names[cs]);
        return cs;
    }
    if (pt_template_eval(r, t, name) != PT_OK)
        return PT_ERROR;
    /* A value from the request must not split the field it goes into. */
    for (size_t i = 0; i < name->len; i++)
        if ((unsigned char)name->p[i] < 0x20 || name->p[i] == 0x7f)
            name->len = 0;
    return name_index(mc, name->p, name->len);
}

/*
 * Sets the Content-Type <ct> of <r> to its first <keep> bytes, followed by "; charset=<name>"
 * when <whole> (nothing kept names a charset: nginx's header filter writes the charset only
 * then), <name> is not empty, and the status is not 301 or 302 (nginx's ngx_http_set_charset:
 * old browsers took a redirect's charset for the next page's).
 */
static int put_charset(struct pt_request *r, struct pt_header *ct, size_t keep, int whole,
                       struct pt_str name)
{
    char *p;

    if (r->status == 301 || r->status == 302 || name.len == 0 || !whole) {
        ct->value.len = keep;
        return PT_OK;
    }
    if ((p = pt_pnalloc(r->pool, keep + 10 + name.len)) == NULL)
        return PT_ERROR;
    memcpy(p, ct->value.p, keep);
    memcpy(p + keep, "; charset=", 10);
    memcpy(p + keep + 10, name.p, name.len);
    ct->value = (struct pt_str){p, keep + 10 + name.len};
    return PT_OK;
}

static int no_charset_map(struct pt_request *r, struct pt_str src, struct pt_str dst)
{
    pt_http_log(r, PT_LOG_ERR, "no \"charset_map\" between the charsets \"%.*s\" and \"%.*s\"",
                (int)src.len, src.p, (int)dst.len, dst.p);
    return PT_OK;
}

/* nginx's ngx_http_charset_header_filter, without the recoding. */
static int charset_filter(struct pt_request *r)
{
    struct charset_main_conf *mc = pt_http_main_conf_of(r, pt_charset_module);
    struct charset_loc_conf *lc = r->loc_conf ? pt_http_loc_conf(r, pt_charset_module) : NULL;
    struct pt_header *ct, *ce;
    struct pt_str dst, src, named;
    size_t type_len;
    int di, si;

    if (lc == NULL || lc->charset == CS_OFF)
        return PT_OK;
    if ((ct = pt_header_find(&r->out, "Content-Type")) == NULL || ct->value.len == 0)
        return PT_OK;
    named = header_charset(ct->value, &type_len);
    if (named.len ? !lc->override : !type_listed(lc, ct->value.p, type_len))
        return PT_OK;
    if ((di = charset_of(r, mc, lc->charset, lc->charset_var, &dst)) == PT_ERROR)
        return PT_ERROR;
    if (named.len) {
        src = named;
        si = name_index(mc, src.p, src.len);
    } else if (lc->source == CS_OFF) {
        return put_charset(r, ct, ct->value.len, type_len == ct->value.len, dst);
    } else if ((si = charset_of(r, mc, lc->source, lc->source_var, &src)) == PT_ERROR) {
        return PT_ERROR;
    }
    /* A name the configuration does not mention is the same charset only as the same bytes
     * (nginx compares the destination's length), and then the type is left as it is. */
    if (di == CS_NONE || si == CS_NONE) {
        if (si != di || src.len < dst.len || strncasecmp(dst.p, src.p, dst.len) != 0)
            return no_charset_map(r, src, dst);
        return put_charset(r, ct, ct->value.len, type_len == ct->value.len, dst);
    }
    if (si == di)
        return put_charset(r, ct, type_len, 1, dst);
    /* Another charset: nginx would recode, but not an encoded body, which it leaves alone. */
    if ((ce = pt_header_find(&r->out, "Content-Encoding")) != NULL && ce->value.len)
        return PT_OK;
    return no_charset_map(r, src, dst);
}

static int postconfig(struct pt_conf *cf)
{
    if (pt_header_filter_add(cf->cycle, charset_filter) != PT_OK)
        return pt_conf_error(cf, "too many header filters");
    return PT_OK;
}

struct pt_module pt_charset_module = {
    .name = "charset",
    .directives = charset_directives,
    .create_main_conf = create_main_conf,
    .create_loc_conf = create_loc_conf,
    .merge_loc_conf = merge_loc_conf,
    .postconfig = postconfig,
};
