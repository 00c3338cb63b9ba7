/*
 * source.c: the configuration's files: reading one with libconfig, explaining libconfig's
 * errors in the terms of an nginx user, and the include directive, which reads every file a
 * glob pattern matches as if its settings were written where the include is.
 */
#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <libconfig.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/conf.h"
#include "core/files.h"
#include "core/log.h"
#include "core/pool.h"

/* Deep enough for any real layout, shallow enough to stop a file that includes itself. */
#define INCLUDE_DEPTH_MAX 16

/* A file read by include.  Kept until the whole configuration is read: blocks keep pointers
 * to their settings (a server's, for errors found when listeners are built) until then. */
struct pt_conf_source {
    config_t lc;
    const char *path;
    struct pt_conf_source *next;
};

/* Writes the directory of <file> into <dir> ("" when it has none). */
static void dir_of(const char *file, char *dir, size_t len)
{
    const char *slash = strrchr(file, '/');

    snprintf(dir, len, "%.*s", slash ? (int)(slash - file) : 0, file);
}

/* <path> relative to the directory of <main> unless absolute, into <buf>. */
static const char *from_main_dir(const char *main, const char *path, char *buf, size_t len)
{
    char dir[4096];

    dir_of(main, dir, sizeof(dir));
    if (path[0] == '/' || dir[0] == '\0')
        return path;
    /* A name past PATH_MAX cannot be opened either way: the error then names it as written. */
    if ((size_t)snprintf(buf, len, "%s/%s", dir, path) >= len)
        return path;
    return buf;
}

const char *pt_conf_path_beside(struct pt_conf *cf, const char *path)
{
    char buf[4096];

    return pt_pstrdup(cf->pool, from_main_dir(cf->cycle->conf_file, path, buf, sizeof(buf)));
}

/* The name to show for <file>, a file of the configuration <lc> was read from as <top>:
 * libconfig names an @include'd file as written, relative to the main file's directory, and
 * the reader must be able to open what an error names. */
static const char *shown_name(const char *main, const char *top, const char *file, char *buf,
                              size_t len)
{
    if (file == NULL)
        return top;
    if (strcmp(file, top) == 0)
        return file;
    return from_main_dir(main, file, buf, len);
}

/* Reads line <line> (from 1) of <file> into <buf>.  PT_OK, or PT_ERROR if there is none. */
static int read_line(const char *file, int line, char *buf, size_t len)
{
    FILE *f = fopen(file, "r");
    int n = 0;

    if (f == NULL)
        return PT_ERROR;
    while (fgets(buf, (int)len, f)) {
        size_t l = strlen(buf);
        /* A line longer than <buf> spans several reads: count it once. */
        if (l && buf[l - 1] != '\n' && !feof(f))
            continue;
        if (++n == line) {
            fclose(f);
            buf[strcspn(buf, "\r\n")] = '\0';
            return PT_OK;
        }
    }
    fclose(f);
    return PT_ERROR;
}

/* Length of the setting name at <s>: a letter or '_', then letters, digits, '_', '-'. */
static size_t name_len(const char *s)
{
    size_t n = 0;

    if (!isalpha((unsigned char)s[0]) && s[0] != '_')
        return 0;
    while (isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == '-')
        n++;
    return n;
}

/* True when the <n> bytes at <v> are a value libconfig reads unquoted: a boolean or a
 * number (1, -2, 0x1F, 64L, 1.5e3). */
static int libconfig_scalar(const char *v, size_t n)
{
    char buf[64], *end;

    if ((n == 4 && strncasecmp(v, "true", 4) == 0) || (n == 5 && strncasecmp(v, "false", 5) == 0))
        return 1;
    if (n == 0 || n >= sizeof(buf) || !(isdigit((unsigned char)v[0]) || strchr("+-.", v[0])))
        return 0;
    snprintf(buf, sizeof(buf), "%.*s", (int)n, v);
    while (n && buf[n - 1] == 'L')
        buf[--n] = '\0';
    strtod(buf, &end);
    return n && *end == '\0';
}

/*
 * libconfig has no bare words, so nginx's `gzip on;` written as `gzip = on;` (or
 * `listen = 80 default_server;`) is a syntax error that names nothing.  When <text>, the
 * line libconfig stopped at, holds "NAME = VALUE;" with a VALUE libconfig cannot read
 * unquoted, writes into <hint> what to write instead.  Returns 1 if it did.
 */
static int bare_word_hint(const char *text, char *hint, size_t len)
{
    const char *name, *value;
    size_t nlen, vlen;

    text += strspn(text, " \t");
    name = text;
    if ((nlen = name_len(name)) == 0)
        return 0;
    text += nlen;
    text += strspn(text, " \t");
    if (*text != '=' && *text != ':')
        return 0;
    text++;
    value = text + strspn(text, " \t");
    vlen = strcspn(value, ";");
    while (vlen && isspace((unsigned char)value[vlen - 1]))
        vlen--;
    /* Quotes, lists and groups are libconfig's own syntax: the error is something else. */
    if (vlen == 0 || memchr(value, '"', vlen) || strcspn(value, "[({=#") < vlen ||
        libconfig_scalar(value, vlen))
        return 0;
    if ((vlen == 2 && strncmp(value, "on", 2) == 0) || (vlen == 3 && strncmp(value, "off", 3) == 0))
        snprintf(hint, len, "\"%.*s\" is not a libconfig value: write %.*s = %s; (or \"%.*s\")",
                 (int)vlen, value, (int)nlen, name, vlen == 2 ? "true" : "false", (int)vlen, value);
    else
        snprintf(hint, len,
                 "\"%.*s\" is not a libconfig value: write %.*s = \"%.*s\"; (strings are quoted)",
                 (int)vlen, value, (int)nlen, name, (int)vlen, value);
    return 1;
}

/* For libconfig's "cannot open include file" at <text>: names the file it tried. */
static int include_hint(const char *main, const char *text, char *hint, size_t len)
{
    const char *q = strstr(text, "@include");
    char name[2048], buf[4096];
    const char *path;
    size_t n;

    if (q == NULL || (q = strchr(q, '"')) == NULL)
        return 0;
    n = strcspn(q + 1, "\"");
    snprintf(name, sizeof(name), "%.*s", (int)n, q + 1);
    path = from_main_dir(main, name, buf, sizeof(buf));
    snprintf(hint, len,
             "cannot open include file \"%s\": %s (@include paths are relative to the main "
             "configuration file's directory)",
             path, access(path, R_OK) == 0 ? "unreadable" : strerror(errno));
    return 1;
}

/*
 * libconfig 1.5 reads an integer literal without an L suffix into 32 bits and wraps it
 * (4294967298 reads as 2), saturates one past 64 bits, and keeps no text of either: a
 * setter would take the wrapped value for the one written.  So the file is scanned for its
 * integer literals, which pair in order with the integer settings libconfig read from it;
 * a setting whose value is not its literal's gets the literal's own value as its hook
 * (decimal, or the literal as written past 64 bits), which scalar_value() hands to setters.
 */
struct int_literal {
    int line;
    int exact; /* <value> is the literal's value (it fits 64 bits) */
    long long value;
    char text[64]; /* as written, cut short past its size */
};

struct file_literals {
    const char *file; /* libconfig's name for it */
    struct int_literal *v;
    size_t n, next;
    int unsure; /* the pairing went wrong: leave the file's values as read */
    struct file_literals *link;
};

/* The integer literal at <s> (a sign or a digit: libconfig's integer, integer64, hex and
 * hex64 tokens) into <lit>.  Returns its length, or 0 when <s> is a float (or no number). */
static size_t integer_literal(const char *s, struct int_literal *lit)
{
    size_t n = (s[0] == '-' || s[0] == '+') ? 1 : 0, digits = n;
    int hex = s[n] == '0' && (s[n + 1] == 'x' || s[n + 1] == 'X') && !n;
    char *end;

    if (hex) {
        n += 2;
        digits = n;
        n += strspn(s + n, "0123456789abcdefABCDEF");
    } else {
        n += strspn(s + n, "0123456789");
        /* "1.5", "1.", "1e3" and ".5" are floats. */
        if (s[n] == '.' || n == digits ||
            ((s[n] == 'e' || s[n] == 'E') &&
             (isdigit((unsigned char)s[n + 1]) ||
              ((s[n + 1] == '-' || s[n + 1] == '+') && isdigit((unsigned char)s[n + 2])))))
            return 0;
    }
    if (n == digits)
        return 0;
    errno = 0;
    if (hex) {
        unsigned long long u = strtoull(s, &end, 16);
        lit->exact = errno == 0 && u <= (unsigned long long)LLONG_MAX;
        lit->value = (long long)u;
    } else {
        lit->value = strtoll(s, &end, 10);
        lit->exact = errno == 0;
    }
    snprintf(lit->text, sizeof(lit->text), "%.*s", (int)(n + strspn(s + n, "L")), s);
    return n + strspn(s + n, "L");
}

/* Length of the comment or string at <s> (0 if none), counting its newlines into *<line>. */
static size_t skip_text(const char *s, int *line)
{
    const char *p = s, *close;

    if (s[0] == '#' || (s[0] == '/' && s[1] == '/'))
        return strcspn(s, "\n");
    if (s[0] == '/' && s[1] == '*') {
        close = strstr(s + 2, "*/");
        p = close ? close + 2 : s + strlen(s);
    } else if (s[0] == '"') {
        for (p = s + 1; *p && *p != '"'; p++)
            if (*p == '\\' && p[1])
                p++;
        p += *p == '"';
    }
    for (const char *q = s; q < p; q++)
        *line += *q == '\n';
    return (size_t)(p - s);
}

/* Collects the integer literals of <text> into <fl>.  Returns PT_OK or PT_ERROR. */
static int scan_literals(const char *text, struct file_literals *fl)
{
    size_t cap = 0;
    int line = 1;

    for (const char *s = text; *s;) {
        struct int_literal lit;
        size_t n = skip_text(s, &line);

        if (n == 0 && (isalpha((unsigned char)*s) || *s == '*' || *s == '_')) {
            n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-*");
        } else if (n == 0 && (isdigit((unsigned char)*s) || *s == '-' || *s == '+' || *s == '.')) {
            n = integer_literal(s, &lit);
            if (n == 0) /* a float, or a lone sign: skip its characters */
                n = 1 + strspn(s + 1, "0123456789.eE+-");
            else {
                if (fl->n == cap) {
                    struct int_literal *v = realloc(fl->v, (cap = cap ? 2 * cap : 16) * sizeof(*v));
                    if (v == NULL)
                        return PT_ERROR;
                    fl->v = v;
                }
                lit.line = line;
                fl->v[fl->n++] = lit;
            }
        } else if (n == 0) {
            line += *s == '\n';
            n = 1;
        }
        s += n;
    }
    return PT_OK;
}

/* Reads the file <path> whole.  Returns a NUL-terminated copy to free, or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = NULL;
    size_t len = 0, cap = 0, got;

    if (f == NULL)
        return NULL;
    do {
        if (cap - len < 4096) {
            char *t = realloc(text, cap = cap ? 2 * cap : 65536);
            if (t == NULL) {
                free(text);
                fclose(f);
                return NULL;
            }
            text = t;
        }
        got = fread(text + len, 1, cap - len - 1, f);
        len += got;
    } while (got > 0);
    fclose(f);
    text[len] = '\0';
    return text;
}

/* The literals of the file libconfig named <file> (read as <top> under <main>), scanned on
 * first use into the list <*list>.  NULL when out of memory. */
static struct file_literals *literals_of(struct file_literals **list, const char *file,
                                         const char *main, const char *top)
{
    struct file_literals *fl;
    char buf[4096], *text;

    for (fl = *list; fl; fl = fl->link)
        if (strcmp(fl->file, file) == 0)
            return fl;
    if ((fl = calloc(1, sizeof(*fl))) == NULL)
        return NULL;
    fl->file = file;
    fl->link = *list;
    *list = fl;
    text = slurp(shown_name(main, top, file, buf, sizeof(buf)));
    if (text == NULL || scan_literals(text, fl) != PT_OK)
        fl->unsure = 1;
    free(text);
    return fl;
}

/* Pairs the integer settings under <s>, in the order read, with their files' literals. */
static void mark_wrapped(config_setting_t *s, struct file_literals **list, const char *main,
                         const char *top)
{
    int type = config_setting_type(s);
    struct file_literals *fl;
    struct int_literal *lit;
    char num[32];

    if (type == CONFIG_TYPE_GROUP || type == CONFIG_TYPE_ARRAY || type == CONFIG_TYPE_LIST) {
        for (int i = 0; i < config_setting_length(s); i++)
            mark_wrapped(config_setting_get_elem(s, (unsigned)i), list, main, top);
        return;
    }
    if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
        return;
    fl = literals_of(list, config_setting_source_file(s) ? config_setting_source_file(s) : top,
                     main, top);
    if (fl == NULL || fl->unsure)
        return;
    /* Every integer setting has its literal, in the same order and on the same line. */
    if (fl->next == fl->n || fl->v[fl->next].line != (int)config_setting_source_line(s)) {
        fl->unsure = 1;
        return;
    }
    lit = &fl->v[fl->next++];
    if (lit->exact && lit->value == config_setting_get_int64(s))
        return;
    if (lit->exact)
        snprintf(num, sizeof(num), "%lld", lit->value);
    config_setting_set_hook(s, strdup(lit->exact ? num : lit->text));
}

static void free_literals(struct file_literals *list)
{
    while (list) {
        struct file_literals *next = list->link;
        free(list->v);
        free(list);
        list = next;
    }
}

int pt_conf_read_file(config_t *lc, const char *file, const char *main, char *err, size_t errlen)
{
    char dir[4096], line[1024], hint[1024], buf[4096];
    const char *where, *text;

    config_init(lc);
    /* @include paths are relative to the main file's directory, as include's are. */
    dir_of(main, dir, sizeof(dir));
    if (dir[0])
        config_set_include_dir(lc, dir);
    /* Hooks hold the literals of wrapped integers (see mark_wrapped). */
    config_set_destructor(lc, free);
    if (config_read_file(lc, file) == CONFIG_TRUE) {
        struct file_literals *list = NULL;
        mark_wrapped(config_root_setting(lc), &list, main, file);
        free_literals(list);
        return PT_OK;
    }
    if (config_error_type(lc) == CONFIG_ERR_FILE_IO) {
        snprintf(err, errlen, "%s: cannot read the configuration file: %s", file,
                 access(file, R_OK) == 0 ? "unreadable" : strerror(errno));
        config_destroy(lc);
        return PT_ERROR;
    }
    where = config_error_file(lc) ? config_error_file(lc) : file;
    text = config_error_text(lc);
    where = shown_name(main, file, where, buf, sizeof(buf));
    if (read_line(where, config_error_line(lc), line, sizeof(line)) == PT_OK &&
        (bare_word_hint(line, hint, sizeof(hint)) ||
         (strstr(text, "include") && include_hint(main, line, hint, sizeof(hint)))))
        text = hint;
    snprintf(err, errlen, "%s:%d: %s", where, config_error_line(lc), text);
    config_destroy(lc);
    return PT_ERROR;
}

const char *pt_conf_file_name(struct pt_conf *cf, const char *file, char *buf, size_t len)
{
    const char *main = cf->cycle ? cf->cycle->conf_file : cf->file;

    if (file == NULL || main == NULL)
        return file;
    for (struct pt_conf_source *src = cf->sources; src; src = src->next)
        if (strcmp(file, src->path) == 0)
            return file;
    return shown_name(main, main, file, buf, len);
}

/* Reads the file <path> and dispatches its settings in the context being read. */
static int include_file(struct pt_conf *cf, const char *path)
{
    const struct pt_conf_setting *setting = cf->setting;
    const char *name = cf->name, *value = cf->value;
    struct pt_conf_source *src;
    struct stat st;
    char err[1024];
    int rc;

    if (cf->depth == INCLUDE_DEPTH_MAX)
        return pt_conf_error(cf, "include of \"%s\" nested %d deep: does a file include itself?",
                             path, INCLUDE_DEPTH_MAX);
    if (stat(path, &st) != 0)
        return pt_conf_open_failed(cf, "include file", path, errno);
    if (S_ISDIR(st.st_mode))
        return pt_conf_error(cf, "include \"%s\" is a directory: include \"%s/*.conf\"", path,
                             path);
    src = calloc(1, sizeof(*src));
    if (src == NULL || (src->path = pt_pstrdup(cf->pool, path)) == NULL) {
        free(src);
        return pt_conf_error(cf, "out of memory");
    }
    if (pt_conf_read_file(&src->lc, path, cf->cycle->conf_file, err, sizeof(err)) != PT_OK) {
        free(src);
        /* The message already names the included file and its line. */
        if (cf->err && cf->err[0] == '\0')
            snprintf(cf->err, cf->errlen, "%s", err);
        cf->failed = 1;
        return PT_ERROR;
    }
    src->next = cf->sources;
    cf->sources = src;
    cf->depth++;
    rc = pt_conf_read_block(cf, pt_conf_root(&src->lc), cf->ctx, cf->conf, NULL);
    cf->depth--;
    cf->setting = setting;
    cf->name = name;
    cf->value = value;
    return rc;
}

int pt_conf_set_include(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    char buf[4096];
    const char *pattern = from_main_dir(cf->cycle->conf_file, cf->value, buf, sizeof(buf));
    glob_t gl;
    int rc;

    pt_unused(d);
    pt_unused(conf);
    /* nginx's rule: a plain path must exist, a pattern may match nothing (an empty conf.d). */
    if (strpbrk(pattern, "*?[") == NULL)
        return include_file(cf, pattern);
    rc = glob(pattern, 0, NULL, &gl);
    if (rc == GLOB_NOMATCH)
        return PT_OK;
    if (rc != 0)
        return pt_conf_error(cf, "cannot read the files of include \"%s\": %s", pattern,
                             rc == GLOB_NOSPACE ? "out of memory" : "read error");
    rc = PT_OK;
    for (size_t i = 0; i < gl.gl_pathc && rc == PT_OK; i++)
        rc = include_file(cf, gl.gl_pathv[i]);
    globfree(&gl);
    return rc;
}

void pt_conf_release(struct pt_conf *cf)
{
    while (cf->sources) {
        struct pt_conf_source *src = cf->sources;
        cf->sources = src->next;
        config_destroy(&src->lc);
        free(src);
    }
}

int pt_conf_open_failed(struct pt_conf *cf, const char *what, const char *path, int err)
{
    char dir[4096];
    struct stat st;

    /* A link or hard link pt_file_open_append() refused names itself and the fix. */
    if (err == ELOOP || err == EMLINK)
        return pt_conf_error(cf, "cannot open %s: %s", what, pt_file_strerror(err));
    /* "No such file or directory" does not say which: name the directory when it is that. */
    dir_of(path, dir, sizeof(dir));
    if (err == ENOENT && dir[0] && stat(dir, &st) != 0)
        return pt_conf_error(cf, "cannot open %s \"%s\": %s (the directory \"%s\" does not exist)",
                             what, path, strerror(err), dir);
    return pt_conf_error(cf, "cannot open %s \"%s\": %s", what, path, strerror(err));
}
