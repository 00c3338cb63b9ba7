/* words.c: reading the blocks of lines of map and split_clients (words.h). */
#include "config/words.h"

#include <string.h>

#include "core/pool.h"

static int blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Copies the word <p>/<len> into the pool, its escapes undone as nginx undoes them. */
static char *unescape(struct pt_conf *cf, const char *p, size_t len)
{
    char *w = pt_pnalloc(cf->pool, len + 1), *d = w;

    if (w == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        char c = i + 1 < len && p[i] == '\\' ? p[i + 1] : '\0';
        if (c == '"' || c == '\'' || c == '\\' || c == 't' || c == 'r' || c == 'n') {
            *d++ = c == 't' ? '\t' : c == 'r' ? '\r' : c == 'n' ? '\n' : c;
            i++;
            continue;
        }
        *d++ = p[i];
    }
    *d = '\0';
    return w;
}

/* The end of the word starting at <s> (after its opening quote <q>, or bare with <q> 0):
 * the closing quote, or the first blank or ';' of a bare word.  A backslash carries the
 * next character over. */
static const char *word_end(const char *s, char q)
{
    for (; *s; s++) {
        if (q ? *s == q : blank(*s) || *s == ';')
            break;
        if (*s == '\\' && s[1])
            s++;
    }
    return s;
}

/* After the ';' at <s>: only blanks or a comment may follow. */
static int line_end(struct pt_conf *cf, const char *s)
{
    while (blank(*++s))
        ;
    if (*s != '\0' && *s != '#')
        return pt_conf_error(cf, "unexpected \"%s\" after \";\"", s);
    return PT_OK;
}

int pt_conf_words(struct pt_conf *cf, const char *s, char **words, int max)
{
    int n = 0;

    for (;;) {
        const char *start, *end;
        char q = 0;

        while (blank(*s))
            s++;
        if (*s == '\0' || *s == '#')
            return n;
        if (*s == ';')
            return line_end(cf, s) == PT_OK ? n : -1;
        if (*s == '"' || *s == '\'')
            q = *s++;
        start = s;
        end = word_end(s, q);
        if (q && *end != q) {
            pt_conf_error(cf, "missing closing %c in \"%s\"", q, start - 1);
            return -1;
        }
        s = end + (q != 0);
        if (q && *s != '\0' && *s != ';' && !blank(*s)) {
            pt_conf_error(cf,
                          "unexpected \"%c\" after the quoted \"%.*s\" (put a blank between words)",
                          *s, (int)(end - start), start);
            return -1;
        }
        if (n < max && (words[n] = unescape(cf, start, (size_t)(end - start))) == NULL) {
            pt_conf_error(cf, "out of memory");
            return -1;
        }
        n++;
    }
}

int pt_conf_check_members(struct pt_conf *cf, const struct pt_conf_setting *g,
                          const char *const *known, const char *block, const char *hint)
{
    for (int i = 0; i < pt_conf_setting_count(g); i++) {
        const struct pt_conf_setting *s = pt_conf_setting_elem(g, i);
        const char *name = pt_conf_setting_name(s);
        const char *const *k = known;
        while (*k && strcmp(*k, name) != 0)
            k++;
        if (*k == NULL)
            return pt_conf_error_at(cf, s, "unknown setting \"%s\" in %s: %s", name, block, hint);
    }
    return PT_OK;
}

const char *pt_conf_member_string(struct pt_conf *cf, const struct pt_conf_setting *g,
                                  const char *name, const char *block, const char *example)
{
    const struct pt_conf_setting *s = pt_conf_setting_member(g, name);
    const char *v = s ? pt_conf_setting_string(s) : NULL;

    if (s == NULL)
        pt_conf_error_at(cf, g, "%s needs %s = \"%s\"", block, name, example);
    else if (v == NULL)
        pt_conf_error_at(cf, s, "\"%s\" of %s takes a string, like \"%s\"", name, block, example);
    return v;
}

char *pt_conf_var_name(struct pt_conf *cf, const char *s)
{
    size_t len = strlen(s);
    char *name;

    /* var.c's limit on names */
    if (s[0] != '$' || len < 2 || len > 129) {
        pt_conf_error(cf, "invalid variable name \"%s\" (use \"$name\")", s);
        return NULL;
    }
    if ((name = pt_pstrdup(cf->pool, s + 1)) == NULL) {
        pt_conf_error(cf, "out of memory");
        return NULL;
    }
    for (char *p = name; *p; p++) {
        *p = pt_lower(*p);
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) {
            pt_conf_error(cf, "invalid variable name \"%s\" (letters, digits and '_')", s);
            return NULL;
        }
    }
    return name;
}
