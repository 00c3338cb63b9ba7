/*
 * proxy_rewrite.c: proxy_redirect, proxy_cookie_domain and proxy_cookie_path: nginx's
 * rewriting of the upstream's Location, Refresh and Set-Cookie fields.
 *
 * A rule is a pattern and a replacement.  The pattern is a prefix (proxy_redirect,
 * proxy_cookie_path) or a whole domain compared in any case (proxy_cookie_domain), either
 * holding variables, or a PCRE2 regex, which replaces the whole value and whose captures
 * the replacement may name.  The rules of a directive are tried in order and the first
 * that matches rewrites, as nginx's ngx_http_proxy_rewrite_*_handler do; a Location made
 * relative ("/...") then gets the scheme, host and port of this server, as nginx's
 * absolute_redirect does to a Location it rewrote.
 */
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include "modules/proxy/proxy.h"

#include "config/words.h"
#include "core/regex.h"

enum rule_kind {
    RULE_PREFIX, /* the value starts with the pattern: that prefix is replaced */
    RULE_DOMAIN, /* the value (less a leading '.') is the pattern in any case: replaced */
    RULE_REGEX,  /* the regex matches somewhere: the whole value is replaced */
};

/* A piece of a pattern or a replacement: literal text, a template with variables, or a
 * capture of the rule's regex. */
struct piece {
    struct pt_str text;    /* literal, when t is NULL and capture is -1 */
    struct pt_template *t; /* variables */
    int capture;           /* the group's number; -1: not a capture */
};

struct subst {
    struct piece *v;
    int n;
};

struct proxy_rewrite {
    enum rule_kind kind;
    struct subst pattern; /* RULE_PREFIX, RULE_DOMAIN */
    pcre2_code *re;       /* RULE_REGEX */
    pcre2_match_data *md; /* its match data: one per rule, a worker has one thread */
    struct subst replacement;
    /* proxy_redirect default: pattern and replacement are made from the location's
     * proxy_pass once the location is merged; <setting> places the errors. */
    unsigned is_default : 1;
    const struct pt_conf_setting *setting;
};

/* --- reading the directives --- */

static void free_code(void *code)
{
    pcre2_code_free(code);
}

static void free_md(void *md)
{
    pcre2_match_data_free(md);
}

/* Compiles the regex <src> of <rule> (case-insensitive when <caseless>). */
static int compile_regex(struct pt_conf *cf, struct proxy_rewrite *rule, const char *src,
                         int caseless)
{
    PCRE2_UCHAR msg[256];
    PCRE2_SIZE off;
    int rc;

    rule->kind = RULE_REGEX;
    rule->re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, caseless ? PCRE2_CASELESS : 0,
                             &rc, &off, NULL);
    if (rule->re == NULL) {
        pcre2_get_error_message(rc, msg, sizeof(msg));
        return pt_conf_error(cf, "invalid regex \"%s\" in \"%s\": %s at offset %zu", src, cf->name,
                             (const char *)msg, (size_t)off);
    }
    if (pt_pool_cleanup(cf->pool, free_code, rule->re) != PT_OK ||
        (rule->md = pcre2_match_data_create_from_pattern(rule->re, NULL)) == NULL ||
        pt_pool_cleanup(cf->pool, free_md, rule->md) != PT_OK)
        return pt_conf_error(cf, "out of memory");
    (void)pcre2_jit_compile(rule->re, PCRE2_JIT_COMPLETE);
    return PT_OK;
}

/* The number of the group of <re> named <name>, or -1. */
static int named_group(const pcre2_code *re, struct pt_str name)
{
    uint32_t count = 0, size = 0;
    PCRE2_SPTR table = NULL;

    pcre2_pattern_info(re, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(re, PCRE2_INFO_NAMEENTRYSIZE, &size);
    pcre2_pattern_info(re, PCRE2_INFO_NAMETABLE, &table);
    for (uint32_t i = 0; i < count; i++) {
        PCRE2_SPTR e = table + i * size;
        const char *n = (const char *)e + 2;
        if (strlen(n) == name.len && memcmp(n, name.p, name.len) == 0)
            return (e[0] << 8) | e[1];
    }
    return -1;
}

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The capture that the '$' at <s> names in a replacement of <re> ("$1", "$name" or
 * "${name}" of a named group), with *<len> the bytes it takes; -1 when none. */
static int capture_at(const pcre2_code *re, const char *s, size_t *len)
{
    size_t n = 0, brace = s[1] == '{';
    int g;

    if (s[1] >= '1' && s[1] <= '9') {
        *len = 2; /* one digit, as nginx: "$1abc" is capture 1, then "abc" */
        return s[1] - '0';
    }
    while (name_char(s[1 + brace + n]))
        n++;
    if (n == 0 || (brace && s[1 + brace + n] != '}'))
        return -1;
    g = named_group(re, (struct pt_str){s + 1 + brace, n});
    *len = 1 + n + 2 * brace;
    return g;
}

/* Adds to <sb> the text <p>/<len>: a literal piece, or a template when it holds variables.
 * PT_OK or PT_ERROR (reported). */
static int add_text(struct pt_conf *cf, struct subst *sb, const char *p, size_t len)
{
    struct piece *pc = &sb->v[sb->n];
    char *copy;

    if (len == 0)
        return PT_OK;
    copy = pt_pstrndup(cf->pool, p, len);
    if (copy == NULL)
        return pt_conf_error(cf, "out of memory");
    *pc = (struct piece){{copy, len}, NULL, -1};
    if (memchr(copy, '$', len)) {
        pc->t = pt_template_compile(cf, copy, PT_ESCAPE_NONE);
        if (pc->t == NULL)
            return PT_ERROR;
        if (pt_template_is_static(pc->t, &pc->text))
            pc->t = NULL;
    }
    sb->n++;
    return PT_OK;
}

/* Compiles <src> into <sb>: variables, and when <re> is given its captures, which nginx
 * lets a replacement name.  PT_OK or PT_ERROR (reported). */
static int compile_subst(struct pt_conf *cf, const char *src, const pcre2_code *re,
                         struct subst *sb)
{
    size_t ndollars = 0;
    const char *p, *lit = src;

    for (p = src; *p; p++)
        ndollars += *p == '$';
    sb->n = 0;
    sb->v = pt_palloc(cf->pool, (2 * ndollars + 1) * sizeof(*sb->v));
    if (sb->v == NULL)
        return pt_conf_error(cf, "out of memory");
    for (p = src; re && *p; p++) {
        size_t len;
        int g = *p == '$' ? capture_at(re, p, &len) : -1;
        if (g < 0)
            continue;
        if (add_text(cf, sb, lit, (size_t)(p - lit)) != PT_OK)
            return PT_ERROR;
        sb->v[sb->n++] = (struct piece){PT_NULL_STR, NULL, g};
        p += len - 1;
        lit = p + 1;
    }
    return add_text(cf, sb, lit, strlen(lit));
}

/* A subst of the one literal <s>. */
static int literal_subst(struct pt_conf *cf, struct pt_str s, struct subst *sb)
{
    sb->v = pt_palloc(cf->pool, sizeof(*sb->v));
    if (sb->v == NULL)
        return pt_conf_error(cf, "out of memory");
    sb->v[0] = (struct piece){s, NULL, -1};
    sb->n = 1;
    return PT_OK;
}

/* Appends <rule> to the <*n> rules of <*list> (PT_CONF_UNSET: none yet). */
static int add_rule(struct pt_conf *cf, struct proxy_rewrite ***list, int *n,
                    struct proxy_rewrite *rule)
{
    int have = *n > 0 ? *n : 0;
    struct proxy_rewrite **a = pt_palloc(cf->pool, (size_t)(have + 1) * sizeof(*a));

    if (a == NULL)
        return pt_conf_error(cf, "out of memory");
    if (have)
        memcpy(a, *list, (size_t)have * sizeof(*a));
    a[have] = rule;
    *list = a;
    *n = have + 1;
    return PT_OK;
}

/* A rule of proxy_redirect or proxy_cookie_path from its two words: a regex after '~' (in
 * any case after "~*"), else a prefix. */
static int prefix_or_regex(struct pt_conf *cf, struct proxy_rewrite *rule, const char *pattern,
                           const char *replacement)
{
    if (pattern[0] == '~') {
        int caseless = pattern[1] == '*';
        if (compile_regex(cf, rule, pattern + 1 + caseless, caseless) != PT_OK)
            return PT_ERROR;
    } else {
        rule->kind = RULE_PREFIX;
        if (compile_subst(cf, pattern, NULL, &rule->pattern) != PT_OK)
            return PT_ERROR;
    }
    return compile_subst(cf, replacement, rule->re, &rule->replacement);
}

/* Reads the value of <d> into <w> (one or two words, split as nginx splits a directive's
 * arguments: quotes and escapes).  Returns the count, or 0 after an error naming the
 * directive's forms <forms>. */
static int read_words(struct pt_conf *cf, const struct pt_directive *d, char **w, const char *forms)
{
    int n = pt_conf_words(cf, cf->value, w, 2);

    if (n < 0)
        return 0;
    if (n == 0 || n > 2) {
        pt_conf_error(cf, "invalid value \"%s\" for \"%s\": use %s", cf->value, d->name, forms);
        return 0;
    }
    return n;
}

int pt_proxy_set_redirect(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    static const char forms[] = "\"default\", \"off\" or \"REDIRECT REPLACEMENT\"";
    struct proxy_loc_conf *plc = conf;
    struct proxy_rewrite *rule;
    char *w[2];
    int n = read_words(cf, d, w, forms);

    if (n == 0)
        return PT_ERROR;
    /* nginx's order rules: nothing after "off", "off" after nothing. */
    if (plc->redirect == 0 || (n == 1 && strcmp(w[0], "off") == 0 && plc->nredirects > 0))
        return pt_conf_error(cf, "\"%s\" is duplicate: \"off\" goes alone", d->name);
    if (n == 1 && strcmp(w[0], "off") == 0) {
        plc->redirect = 0;
        return PT_OK;
    }
    if (n == 1 && strcmp(w[0], "default") != 0)
        return pt_conf_error(cf, "invalid parameter \"%s\" for \"%s\": use %s", w[0], d->name,
                             forms);
    plc->redirect = 1;
    rule = pt_palloc(cf->pool, sizeof(*rule));
    if (rule == NULL)
        return pt_conf_error(cf, "out of memory");
    if (n == 1) {
        /* Made from the location's proxy_pass when it is merged. */
        if (cf->ctx != PT_CTX_LOC)
            return pt_conf_error(cf, "\"proxy_redirect default\" goes in a location with "
                                     "\"proxy_pass\" (nginx: it should be placed after the "
                                     "\"proxy_pass\" directive)");
        rule->is_default = 1;
        rule->setting = cf->setting;
    } else if (prefix_or_regex(cf, rule, w[0], w[1]) != PT_OK) {
        return PT_ERROR;
    }
    return add_rule(cf, &plc->redirects, &plc->nredirects, rule);
}

/* "off" of proxy_cookie_domain or proxy_cookie_path (<n> its rules so far), or a rule to
 * read (PT_DECLINED).  The words are in <w> (<nw> of them). */
static int cookie_off(struct pt_conf *cf, const struct pt_directive *d, int *n, char **w, int nw)
{
    if (*n == 0 || (nw == 1 && strcmp(w[0], "off") == 0 && *n > 0))
        return pt_conf_error(cf, "\"%s\" is duplicate: \"off\" goes alone", d->name);
    if (nw == 2)
        return PT_DECLINED;
    if (strcmp(w[0], "off") != 0)
        return pt_conf_error(cf, "invalid parameter \"%s\" for \"%s\"", w[0], d->name);
    *n = 0;
    return PT_OK;
}

int pt_proxy_set_cookie_domain(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct proxy_loc_conf *plc = conf;
    struct proxy_rewrite *rule;
    char *w[2];
    int n = read_words(cf, d, w, "\"off\" or \"DOMAIN REPLACEMENT\""), rc;

    if (n == 0)
        return PT_ERROR;
    rc = cookie_off(cf, d, &plc->ncookie_domains, w, n);
    if (rc != PT_DECLINED)
        return rc;
    rule = pt_palloc(cf->pool, sizeof(*rule));
    if (rule == NULL)
        return pt_conf_error(cf, "out of memory");
    if (w[0][0] == '~') {
        /* nginx's: a domain regex always matches in any case (no "~*"). */
        if (compile_regex(cf, rule, w[0] + 1, 1) != PT_OK ||
            compile_subst(cf, w[1], rule->re, &rule->replacement) != PT_OK)
            return PT_ERROR;
    } else {
        /* A leading '.' is no part of a domain (RFC 6265 5.2.3), on either side. */
        rule->kind = RULE_DOMAIN;
        if (compile_subst(cf, w[0] + (w[0][0] == '.'), NULL, &rule->pattern) != PT_OK ||
            compile_subst(cf, w[1] + (w[1][0] == '.'), NULL, &rule->replacement) != PT_OK)
            return PT_ERROR;
    }
    return add_rule(cf, &plc->cookie_domains, &plc->ncookie_domains, rule);
}

int pt_proxy_set_cookie_path(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct proxy_loc_conf *plc = conf;
    struct proxy_rewrite *rule;
    char *w[2];
    int n = read_words(cf, d, w, "\"off\" or \"PATH REPLACEMENT\""), rc;

    if (n == 0)
        return PT_ERROR;
    rc = cookie_off(cf, d, &plc->ncookie_paths, w, n);
    if (rc != PT_DECLINED)
        return rc;
    rule = pt_palloc(cf->pool, sizeof(*rule));
    if (rule == NULL)
        return pt_conf_error(cf, "out of memory");
    if (prefix_or_regex(cf, rule, w[0], w[1]) != PT_OK)
        return PT_ERROR;
    return add_rule(cf, &plc->cookie_paths, &plc->ncookie_paths, rule);
}

/* --- merging --- */

void pt_proxy_init_rewrites(struct proxy_loc_conf *plc)
{
    plc->redirect = PT_CONF_UNSET;
    plc->nredirects = PT_CONF_UNSET;
    plc->ncookie_domains = PT_CONF_UNSET;
    plc->ncookie_paths = PT_CONF_UNSET;
}

/* Makes <rule> proxy_redirect's default for the location <c>, as nginx: proxy_pass's URL
 * becomes the location's prefix, or, without a URI part, the URL and "/" becomes "/". */
static int make_default(struct pt_conf *cf, const struct proxy_loc_conf *c,
                        struct proxy_rewrite *rule)
{
    struct pt_str pass = pt_str_c(c->pass), prefix = c->prefix;
    char *p;

    rule->kind = RULE_PREFIX;
    if (!c->target.has_uri) {
        p = pt_palloc(cf->pool, pass.len + 2);
        if (p == NULL)
            return pt_conf_error(cf, "out of memory");
        memcpy(p, pass.p, pass.len);
        p[pass.len] = '/';
        pass = (struct pt_str){p, pass.len + 1};
        prefix = PT_STR("/");
    }
    if (literal_subst(cf, pass, &rule->pattern) != PT_OK)
        return PT_ERROR;
    return literal_subst(cf, prefix, &rule->replacement);
}

/* Settles the "default" rules written in the location <c>. */
static int settle_defaults(struct pt_conf *cf, struct proxy_loc_conf *c)
{
    for (int i = 0; i < c->nredirects; i++) {
        struct proxy_rewrite *rule = c->redirects[i];
        if (!rule->is_default)
            continue;
        if (c->pass == NULL)
            return pt_conf_error_at(cf, rule->setting,
                                    "\"proxy_redirect default\" goes in a location with "
                                    "\"proxy_pass\", and this one has none");
        if (c->pass_vars)
            return pt_conf_error_at(cf, rule->setting,
                                    "\"proxy_redirect default\" cannot be used with "
                                    "\"proxy_pass\" directive with variables (\"%s\"): write "
                                    "the rule out as \"REDIRECT REPLACEMENT\"",
                                    c->pass);
        if (make_default(cf, c, rule) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

int pt_proxy_merge_rewrites(struct pt_conf *cf, struct proxy_loc_conf *p, struct proxy_loc_conf *c)
{
    if (settle_defaults(cf, c) != PT_OK)
        return PT_ERROR;
    pt_conf_merge_int(c->redirect, p->redirect, 1);
    if (!c->redirect) {
        c->redirects = NULL;
        c->nredirects = 0;
    } else if (c->nredirects <= 0) {
        /* A level without rules takes its parent's, else a proxy_pass without variables
         * gets its default (nginx's merge). */
        c->redirects = p->redirects;
        c->nredirects = p->nredirects;
        if (c->nredirects <= 0 && c->pass && c->pass_vars == NULL) {
            struct proxy_rewrite *rule = pt_palloc(cf->pool, sizeof(*rule));
            if (rule == NULL)
                return pt_conf_error(cf, "out of memory");
            c->nredirects = 0;
            if (make_default(cf, c, rule) != PT_OK ||
                add_rule(cf, &c->redirects, &c->nredirects, rule) != PT_OK)
                return PT_ERROR;
        }
    }
    pt_conf_merge_list(c->cookie_domains, c->ncookie_domains, p->cookie_domains,
                       p->ncookie_domains);
    pt_conf_merge_list(c->cookie_paths, c->ncookie_paths, p->cookie_paths, p->ncookie_paths);
    return PT_OK;
}

/* --- rewriting --- */

/* The value of <sb> for <r>, captures taken from <subject> by the match <ov>/<rc> (none
 * when <ov> is NULL).  PT_OK with *<out> (request pool, or the literal), or PT_ERROR. */
static int eval_subst(struct pt_request *r, const struct subst *sb, struct pt_str subject,
                      const PCRE2_SIZE *ov, int rc, struct pt_str *out)
{
    struct pt_str *vals;
    size_t len = 0;
    char *p;

    if (sb->n == 1 && sb->v[0].t == NULL && sb->v[0].capture < 0) {
        *out = sb->v[0].text;
        return PT_OK;
    }
    vals = pt_palloc(r->pool, (size_t)(sb->n + 1) * sizeof(*vals));
    if (vals == NULL)
        return PT_ERROR;
    for (int i = 0; i < sb->n; i++) {
        const struct piece *pc = &sb->v[i];
        int g = pc->capture;
        if (pc->t && pt_template_eval(r, pc->t, &vals[i]) != PT_OK)
            return PT_ERROR;
        if (pc->t == NULL && g < 0)
            vals[i] = pc->text;
        /* A group that did not take part, or past the regex's, is empty (nginx's). */
        if (g >= 0)
            vals[i] = ov && g < rc && ov[2 * g] != PCRE2_UNSET
                          ? (struct pt_str){subject.p + ov[2 * g], ov[2 * g + 1] - ov[2 * g]}
                          : PT_STR("");
        len += vals[i].len;
    }
    p = pt_pnalloc(r->pool, len + 1);
    if (p == NULL)
        return PT_ERROR;
    *out = (struct pt_str){p, len};
    for (int i = 0; i < sb->n; i++) {
        if (vals[i].len)
            memcpy(p, vals[i].p, vals[i].len);
        p += vals[i].len;
    }
    *p = '\0';
    return PT_OK;
}

/* <v> with its <len> bytes from <at> replaced by <rep>, in <r>'s pool (nginx's
 * ngx_http_proxy_rewrite).  PT_OK or PT_ERROR. */
static int splice(struct pt_request *r, struct pt_str v, size_t at, size_t len, struct pt_str rep,
                  struct pt_str *out)
{
    size_t n = v.len - len + rep.len;
    char *p;

    if (at == 0 && len == v.len) {
        *out = rep;
        return PT_OK;
    }
    p = pt_pnalloc(r->pool, n + 1);
    if (p == NULL)
        return PT_ERROR;
    memcpy(p, v.p, at);
    if (rep.len)
        memcpy(p + at, rep.p, rep.len);
    memcpy(p + at + rep.len, v.p + at + len, v.len - at - len);
    p[n] = '\0';
    *out = (struct pt_str){p, n};
    return PT_OK;
}

/* Applies <rule> to <v> from byte <from> on.  PT_OK with *<out>, PT_DECLINED when it does
 * not match, PT_ERROR. */
static int apply(struct pt_request *r, struct proxy_rewrite *rule, struct pt_str v, size_t from,
                 struct pt_str *out)
{
    struct pt_str rest = {v.p + from, v.len - from}, pat, rep;
    size_t skip = 0, len = rest.len;
    int rc;

    if (rule->kind == RULE_REGEX) {
        rc = pt_regex_exec(rule->re, rest.p, rest.len, rule->md);
        if (rc < 0) /* no match, or one that failed to run: nginx declines either way */
            return PT_DECLINED;
        if (eval_subst(r, &rule->replacement, rest, pcre2_get_ovector_pointer(rule->md), rc,
                       &rep) != PT_OK)
            return PT_ERROR;
        return splice(r, v, from, len, rep, out);
    }
    if (eval_subst(r, &rule->pattern, rest, NULL, 0, &pat) != PT_OK)
        return PT_ERROR;
    if (rule->kind == RULE_DOMAIN) {
        skip = rest.len && rest.p[0] == '.';
        len = rest.len - skip;
        if (pat.len != len || strncasecmp(pat.p, rest.p + skip, len) != 0)
            return PT_DECLINED;
    } else {
        if (pat.len > rest.len || memcmp(pat.p, rest.p, pat.len) != 0)
            return PT_DECLINED;
        len = pat.len;
    }
    if (eval_subst(r, &rule->replacement, rest, NULL, 0, &rep) != PT_OK)
        return PT_ERROR;
    return splice(r, v, from + skip, len, rep, out);
}

/* The first of the <n> <rules> that matches <v> from byte <from> on rewrites it: PT_OK
 * with *<out>, PT_DECLINED when none matches, PT_ERROR. */
static int rewrite(struct pt_request *r, struct proxy_rewrite **rules, int n, struct pt_str v,
                   size_t from, struct pt_str *out)
{
    for (int i = 0; i < n; i++) {
        int rc = apply(r, rules[i], v, from, out);
        if (rc != PT_DECLINED)
            return rc;
    }
    return PT_DECLINED;
}

/* Where "url=" starts in <v> (any case), or -1: a Refresh field's URL follows it. */
static ssize_t find_url(struct pt_str v)
{
    for (size_t i = 0; i + 4 <= v.len; i++)
        if (strncasecmp(v.p + i, "url=", 4) == 0)
            return (ssize_t)i;
    return -1;
}

/* An attribute of a Set-Cookie field: "key" or "key=value", blanks around both trimmed. */
struct cookie_attr {
    struct pt_str key, value;
    int has_value;
};

/* Splits the Set-Cookie value <v> on ';' into <a> (room for one more than its ';'s), as
 * nginx's ngx_http_proxy_parse_cookie: spaces trimmed around names and values.  Returns
 * the count. */
static int parse_cookie(struct pt_str v, struct cookie_attr *a)
{
    const char *s = v.p, *end = v.p + v.len;
    int n = 0;

    for (;;) {
        const char *last = memchr(s, ';', (size_t)(end - s)), *eq;
        if (last == NULL)
            last = end;
        while (s < last && *s == ' ')
            s++;
        for (eq = s; eq < last && *eq != '='; eq++)
            ;
        a[n].key = (struct pt_str){s, (size_t)(eq - s)};
        while (a[n].key.len && a[n].key.p[a[n].key.len - 1] == ' ')
            a[n].key.len--;
        a[n].has_value = eq < last;
        a[n].value = PT_NULL_STR;
        if (eq < last) {
            for (eq++; eq < last && *eq == ' '; eq++)
                ;
            a[n].value = (struct pt_str){eq, (size_t)(last - eq)};
            while (a[n].value.len && a[n].value.p[a[n].value.len - 1] == ' ')
                a[n].value.len--;
        }
        n++;
        if (last == end)
            return n;
        s = last + 1;
    }
}

/* Rewrites the domain= and path= attributes of the Set-Cookie value *<v> by the location's
 * rules; a field rewritten is written again with its attributes joined by "; " (nginx's).
 * PT_OK (rewritten or not) or PT_ERROR. */
static int rewrite_cookie(struct pt_request *r, const struct proxy_loc_conf *plc, struct pt_str *v)
{
    size_t semis = 0, len = 0;
    struct cookie_attr *a;
    int n, changed = 0;
    char *p;

    for (size_t i = 0; i < v->len; i++)
        semis += v->p[i] == ';';
    a = pt_palloc(r->pool, (semis + 1) * sizeof(*a));
    if (a == NULL)
        return PT_ERROR;
    n = parse_cookie(*v, a);
    if (!a[0].has_value) /* not a cookie: left alone */
        return PT_OK;
    for (int i = 1; i < n; i++) {
        int rc = PT_DECLINED;
        if (!a[i].has_value)
            continue;
        if (plc->ncookie_domains > 0 && pt_str_ieq(a[i].key, "domain"))
            rc = rewrite(r, plc->cookie_domains, plc->ncookie_domains, a[i].value, 0, &a[i].value);
        else if (plc->ncookie_paths > 0 && pt_str_ieq(a[i].key, "path"))
            rc = rewrite(r, plc->cookie_paths, plc->ncookie_paths, a[i].value, 0, &a[i].value);
        if (rc == PT_ERROR)
            return PT_ERROR;
        changed |= rc == PT_OK;
    }
    if (!changed)
        return PT_OK;
    for (int i = 0; i < n; i++)
        len += (i ? 2 : 0) + a[i].key.len + (a[i].has_value ? 1 + a[i].value.len : 0);
    p = pt_pnalloc(r->pool, len + 1);
    if (p == NULL)
        return PT_ERROR;
    *v = (struct pt_str){p, len};
    for (int i = 0; i < n; i++) {
        if (i)
            memcpy(p, "; ", 2), p += 2;
        memcpy(p, a[i].key.p, a[i].key.len);
        p += a[i].key.len;
        if (!a[i].has_value)
            continue;
        *p++ = '=';
        if (a[i].value.len)
            memcpy(p, a[i].value.p, a[i].value.len);
        p += a[i].value.len;
    }
    *p = '\0';
    return PT_OK;
}

int pt_proxy_rewrite_field(struct proxy_ctx *ctx, struct pt_str name, struct pt_str *value)
{
    const struct proxy_loc_conf *plc = ctx->plc;
    struct pt_request *r = ctx->r;
    struct pt_str out;
    ssize_t url;
    int rc;

    if (plc->redirect && plc->nredirects > 0 && pt_str_ieq(name, "location")) {
        rc = rewrite(r, plc->redirects, plc->nredirects, *value, 0, &out);
        if (rc == PT_DECLINED)
            return PT_OK;
        if (rc != PT_OK)
            return PT_ERROR;
        /* nginx's header filter writes the Location it rewrote as its own redirects:
         * absolute_redirect and its friends apply (an upstream's own "/..." stays). */
        *value = pt_http_redirect_location(r, out);
        return value->p ? PT_OK : PT_ERROR;
    }
    if (plc->redirect && plc->nredirects > 0 && pt_str_ieq(name, "refresh")) {
        if ((url = find_url(*value)) < 0)
            return PT_OK;
        rc = rewrite(r, plc->redirects, plc->nredirects, *value, (size_t)url + 4, &out);
        if (rc == PT_OK)
            *value = out;
        return rc == PT_ERROR ? PT_ERROR : PT_OK;
    }
    if ((plc->ncookie_domains > 0 || plc->ncookie_paths > 0) && pt_str_ieq(name, "set-cookie"))
        return rewrite_cookie(r, plc, value);
    return PT_OK;
}
