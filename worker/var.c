/*
 * var.c: the variable registry and templates.
 *
 * The registry is per process and outlives cycles: modules register their variables from
 * postconfig, which runs again on every reload, so registering the same name with the
 * same getter again is accepted.  Exact names sit in a sorted array (binary search);
 * prefix variables ("http_", "arg_") are few and matched by the longest prefix.
 *
 * A template is compiled once at configuration time into parts: literal text, or a
 * variable's getter with its suffix argument.  Evaluation calls the getters; only variable
 * values are escaped, never the literal text around them.
 */
#include "worker/var.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/conf.h"
#include "core/pool.h"
#include "worker/var_http.h"

/* Longest variable name accepted, suffix included. */
#define VAR_NAME_MAX 128

struct var {
    char *name;
    size_t len;
    pt_var_get get;
};

struct var_table {
    struct var *v;
    size_t n, cap;
};

static struct var_table exact_vars, prefix_vars;

/* One piece of a template: literal text (get == NULL) or a variable. */
struct part {
    struct pt_str text; /* literal text, or the variable's name for messages */
    pt_var_get get;
    struct pt_str arg; /* suffix of a prefix variable */
};

struct pt_template {
    enum pt_escape esc;
    unsigned dash : 1; /* a variable without a value renders as "-" */
    int nparts;
    struct part parts[];
};

/* ---- the registry -------------------------------------------------------------------- */

static int name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* Index of <name>/<len> in the sorted <t>, or where it would go (*<found> tells). */
static size_t table_search(const struct var_table *t, const char *name, size_t len, int *found)
{
    size_t lo = 0, hi = t->n;

    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct var *v = &t->v[mid];
        int cmp = memcmp(v->name, name, pt_min(v->len, len));
        if (cmp == 0)
            cmp = v->len < len ? -1 : v->len > len;
        if (cmp == 0) {
            *found = 1;
            return mid;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int table_insert(struct var_table *t, const char *name, pt_var_get get)
{
    size_t len = strlen(name);
    int found;
    size_t at = table_search(t, name, len, &found);
    char *copy;

    if (found)
        return t->v[at].get == get ? PT_OK : PT_ERROR;
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        struct var *v = realloc(t->v, cap * sizeof(*v));
        if (v == NULL)
            return PT_ERROR;
        t->v = v;
        t->cap = cap;
    }
    copy = strdup(name);
    if (copy == NULL)
        return PT_ERROR;
    memmove(&t->v[at + 1], &t->v[at], (t->n - at) * sizeof(*t->v));
    t->v[at] = (struct var){copy, len, get};
    t->n++;
    return PT_OK;
}

int pt_var_register(const char *name, int prefix, pt_var_get get)
{
    /* Names are lower-case: templates look them up lower-cased, as nginx does. */
    for (const char *p = name; *p; p++)
        if (!name_char(*p) || isupper((unsigned char)*p))
            return PT_ERROR;
    if (*name == '\0' || strlen(name) > VAR_NAME_MAX || get == NULL)
        return PT_ERROR;
    return table_insert(prefix ? &prefix_vars : &exact_vars, name, get);
}

/*
 * Finds the variable <name>/<len> (lower-case): an exact name first, else the longest
 * registered prefix; *<arg> receives the rest of the name after that prefix, or for an
 * exact name the name itself, so that one getter can serve variables that configuration
 * defines (map, split_clients) and tell them apart.  NULL when nothing matches.
 */
static pt_var_get var_lookup(const char *name, size_t len, struct pt_str *arg)
{
    const struct var *best = NULL;
    int found;
    size_t at = table_search(&exact_vars, name, len, &found);

    if (found) {
        *arg = (struct pt_str){name, len};
        return exact_vars.v[at].get;
    }
    for (size_t i = 0; i < prefix_vars.n; i++) {
        const struct var *v = &prefix_vars.v[i];
        if (v->len < len && memcmp(v->name, name, v->len) == 0 && (!best || v->len > best->len))
            best = v;
    }
    if (best == NULL)
        return NULL;
    *arg = (struct pt_str){name + best->len, len - best->len};
    return best->get;
}

/* Lower-cases <name>/<len> into <buf> (VAR_NAME_MAX + 1 bytes).  PT_ERROR if too long. */
static int lower_name(const char *name, size_t len, char *buf)
{
    if (len > VAR_NAME_MAX)
        return PT_ERROR;
    for (size_t i = 0; i < len; i++)
        buf[i] = pt_lower(name[i]);
    buf[len] = '\0';
    return PT_OK;
}

int pt_var_value(struct pt_request *r, const char *name, struct pt_str *out)
{
    char low[VAR_NAME_MAX + 1];
    size_t len = strlen(name);
    struct pt_str arg;
    pt_var_get get;

    if (lower_name(name, len, low) != PT_OK || (get = var_lookup(low, len, &arg)) == NULL)
        return PT_ERROR;
    /* The suffix keeps the case it was asked with ($arg_Foo); the getters that use it
     * compare case-insensitively anyway. */
    arg.p = name + (arg.p - low);
    return get(r, arg, out);
}

/* ---- compiling templates ------------------------------------------------------------- */

/*
 * Reads the variable name at <s> (just after '$'): "name" or "{name}".  Sets *<name> and
 * returns the number of bytes consumed; 0 when '$' is not followed by a name (the '$' is
 * then literal text); -1 after reporting a malformed "${...".
 */
static int scan_name(struct pt_conf *cf, const char *s, struct pt_str *name)
{
    size_t n = 0;

    if (*s == '{') {
        while (name_char(s[1 + n]))
            n++;
        if (n == 0)
            return pt_conf_error(cf, "invalid variable name after \"${\": use letters, digits "
                                     "and '_'");
        if (s[1 + n] != '}')
            return pt_conf_error(cf, "missing \"}\" after \"${%.*s\"", (int)n, s + 1);
        *name = (struct pt_str){s + 1, n};
        return (int)n + 2;
    }
    /* $1..$9 are one digit, as in nginx: "$1abc" is capture 1 then "abc". */
    if (isdigit((unsigned char)*s))
        n = 1;
    else
        while (name_char(s[n]))
            n++;
    *name = (struct pt_str){s, n};
    return (int)n;
}

static void add_literal(struct pt_template *t, const char *p, size_t len)
{
    struct part *last = t->nparts ? &t->parts[t->nparts - 1] : NULL;

    if (len == 0)
        return;
    /* Literal text is copied contiguously, so adjacent pieces ("$" kept literally, then
     * text) merge into one part. */
    if (last && last->get == NULL && last->text.p + last->text.len == p) {
        last->text.len += len;
        return;
    }
    t->parts[t->nparts++] = (struct part){{p, len}, NULL, PT_NULL_STR};
}

/* Stands in for a variable not registered yet when its template is compiled. */
static int unresolved(struct pt_request *r, struct pt_str arg, struct pt_str *out)
{
    (void)r, (void)arg, (void)out;
    return PT_DECLINED;
}

/* Looks the variable of <part> up; NULL when nothing by its name is registered. */
static pt_var_get resolve(struct part *part)
{
    char low[VAR_NAME_MAX + 1];
    pt_var_get get;

    lower_name(part->text.p, part->text.len, low); /* length checked when compiled */
    if ((get = var_lookup(low, part->text.len, &part->arg)) != NULL) {
        /* The suffix points into the pool copy of the source, not the stack. */
        part->arg.p = part->text.p + (part->arg.p - low);
        part->get = get;
    }
    return get;
}

/* pt_conf_defer's second look at a variable unknown when its template was compiled: the
 * whole file is read now, every map and set has registered theirs. */
static int resolve_late(struct pt_conf *cf, void *arg)
{
    struct part *part = arg;

    if (resolve(part) == NULL)
        return pt_conf_error(cf, "unknown variable \"$%.*s\"", (int)part->text.len, part->text.p);
    return PT_OK;
}

static int add_variable(struct pt_conf *cf, struct pt_template *t, struct pt_str name)
{
    struct part *part = &t->parts[t->nparts++];

    if (name.len > VAR_NAME_MAX)
        return pt_conf_error(cf, "variable name \"$%.*s\" is too long", (int)name.len, name.p);
    *part = (struct part){name, NULL, PT_NULL_STR};
    if (resolve(part) != NULL)
        return PT_OK;
    /* Perhaps defined further down the file, as nginx allows: looked at again once all of
     * it is read.  Meanwhile the part is a variable without a value, never literal text. */
    part->get = unresolved;
    return pt_conf_defer(cf, resolve_late, part);
}

struct pt_template *pt_template_compile(struct pt_conf *cf, const char *src, enum pt_escape esc)
{
    size_t ndollars = 0;
    const char *copy, *p, *lit;
    struct pt_template *t;

    for (p = src; *p; p++)
        ndollars += *p == '$';
    copy = pt_pstrdup(cf->pool, src);
    t = pt_palloc(cf->pool, sizeof(*t) + (2 * ndollars + 1) * sizeof(struct part));
    if (copy == NULL || t == NULL) {
        pt_conf_error(cf, "out of memory");
        return NULL;
    }
    t->esc = esc;
    for (p = lit = copy; *p;) {
        struct pt_str name = PT_NULL_STR;
        int n;
        if (*p != '$') {
            p++;
            continue;
        }
        if ((n = scan_name(cf, p + 1, &name)) < 0)
            return NULL;
        if (n == 0) {
            p++; /* a '$' not followed by a name stays literal */
            continue;
        }
        add_literal(t, lit, (size_t)(p - lit));
        if (add_variable(cf, t, name) != PT_OK)
            return NULL;
        p += 1 + n;
        lit = p;
    }
    add_literal(t, lit, (size_t)(p - lit));
    return t;
}

void pt_template_dash_missing(struct pt_template *t)
{
    t->dash = 1;
}

int pt_template_is_static(const struct pt_template *t, struct pt_str *value)
{
    if (t->nparts > 1 || (t->nparts == 1 && t->parts[0].get))
        return 0;
    if (value)
        *value = t->nparts ? t->parts[0].text : PT_STR("");
    return 1;
}

/* ---- evaluating templates ------------------------------------------------------------ */

static const char hex_upper[] = "0123456789ABCDEF";
static const char hex_lower[] = "0123456789abcdef";

size_t pt_escape_byte(enum pt_escape esc, unsigned char c, char *seq)
{
    static const char json_short[] = {
        ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'};

    switch (esc) {
    case PT_ESCAPE_DEFAULT:
        /* nginx's access log escaping: everything a terminal or a log parser could
         * misread, and the quote and backslash that delimit fields. */
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            return 0;
        seq[0] = '\\', seq[1] = 'x', seq[2] = hex_upper[c >> 4], seq[3] = hex_upper[c & 15];
        return 4;
    case PT_ESCAPE_JSON:
        /* RFC 8259 7: quote, backslash and control characters must be escaped; bytes
         * >= 0x80 pass as they are (UTF-8 stays readable). */
        if (c == '"' || c == '\\') {
            seq[0] = '\\', seq[1] = (char)c;
            return 2;
        }
        if (c >= 0x20)
            return 0;
        if (c < sizeof(json_short) && json_short[c]) {
            seq[0] = '\\', seq[1] = json_short[c];
            return 2;
        }
        memcpy(seq, "\\u00", 4);
        seq[4] = hex_lower[c >> 4], seq[5] = hex_lower[c & 15];
        return 6;
    case PT_ESCAPE_NONE: break;
    }
    return 0;
}

/*
 * Writes <v> escaped under <esc> into <out>, at most <cap> bytes; an escape sequence that
 * does not fit whole is dropped.  With <out> NULL only measures.  Returns the byte count.
 */
static size_t put_escaped(enum pt_escape esc, struct pt_str v, char *out, size_t cap)
{
    size_t n = 0, run = 0;

    /* Nothing to escape: one copy, not a call per byte (a map on a long User-Agent). */
    if (esc == PT_ESCAPE_NONE) {
        n = pt_min(v.len, cap);
        if (out && n)
            memcpy(out, v.p, n);
        return n;
    }
    for (size_t i = 0; i < v.len; i++) {
        char seq[8];
        size_t len = pt_escape_byte(esc, (unsigned char)v.p[i], seq);
        if (len == 0) {
            run++;
            continue;
        }
        /* Copy the run of plain bytes before this one, then the escape. */
        if (run) {
            size_t k = pt_min(run, cap - n);
            if (out)
                memcpy(out + n, v.p + i - run, k);
            n += k;
            run = 0;
        }
        if (n + len > cap)
            return n;
        if (out)
            memcpy(out + n, seq, len);
        n += len;
    }
    if (run) {
        size_t k = pt_min(run, cap - n);
        if (out)
            memcpy(out + n, v.p + v.len - run, k);
        n += k;
    }
    return n;
}

/* The value of part <pt> of <t> for <r>: literal text, the variable's value, or "" / "-"
 * for a variable without one.  Sets *<escape> when the value must be escaped. */
static struct pt_str part_value(struct pt_request *r, const struct pt_template *t,
                                const struct part *pt, int *escape)
{
    struct pt_str v;

    *escape = 0;
    if (pt->get == NULL)
        return pt->text;
    if (pt->get(r, pt->arg, &v) != PT_OK)
        return t->dash ? PT_STR("-") : PT_STR("");
    *escape = 1;
    return v;
}

size_t pt_template_render(struct pt_request *r, const struct pt_template *t, char *buf, size_t cap)
{
    size_t n = 0;

    for (int i = 0; i < t->nparts && n < cap; i++) {
        int escape;
        struct pt_str v = part_value(r, t, &t->parts[i], &escape);
        n += put_escaped(escape ? t->esc : PT_ESCAPE_NONE, v, buf + n, cap - n);
    }
    return n;
}

int pt_template_eval(struct pt_request *r, const struct pt_template *t, struct pt_str *out)
{
    struct pt_str *vals;
    char *flags, *buf;
    size_t len = 0, n = 0;

    if (pt_template_is_static(t, out))
        return PT_OK;
    /* A template that is one variable with nothing to escape is that variable's value, as
     * the getter gives it (valid for the request): no copy. */
    if (t->nparts == 1 && t->parts[0].get && (t->esc == PT_ESCAPE_NONE)) {
        int escape;
        *out = part_value(r, t, &t->parts[0], &escape);
        return PT_OK;
    }
    /* Each getter runs once: values are kept, measured, then copied (every byte of both
     * allocations written, none zeroed first). */
    vals = pt_pnalloc(r->pool, (size_t)t->nparts * (sizeof(*vals) + 1));
    if (vals == NULL)
        return PT_ERROR;
    flags = (char *)(vals + t->nparts);
    for (int i = 0; i < t->nparts; i++) {
        int escape;
        vals[i] = part_value(r, t, &t->parts[i], &escape);
        flags[i] = (char)escape;
        len += put_escaped(escape ? t->esc : PT_ESCAPE_NONE, vals[i], NULL, SIZE_MAX);
    }
    buf = pt_pnalloc(r->pool, len + 1);
    if (buf == NULL)
        return PT_ERROR;
    for (int i = 0; i < t->nparts; i++)
        n += put_escaped(flags[i] ? t->esc : PT_ESCAPE_NONE, vals[i], buf + n, len - n);
    buf[n] = '\0';
    *out = (struct pt_str){buf, n};
    return PT_OK;
}
