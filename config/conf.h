/*
 * conf.h: reading the libconfig file into the modules' typed configuration.  Each
 * directive is dispatched on its module's table; errors are "file:line: message".
 */
#ifndef PT_CONF_H
#define PT_CONF_H

#include <stdio.h>
#include <stdint.h>

#include "core/cycle.h"
#include "core/module.h"

/* Unset markers for merge. */
#define PT_CONF_UNSET     (-1)
#define PT_CONF_UNSET_PTR NULL

/* The configuration arrays of one context (main, a server, a location): one slot per module. */
struct pt_conf_ctx {
    void **main_conf;
    void **srv_conf;
    void **loc_conf;
};

struct pt_conf_source;
struct config_t;

/* One setting of the configuration file (a directive, a block, an element of a list), as
 * the config layer hands it to modules: opaque, read with the pt_conf_setting_* functions
 * below.  It lives while the configuration is being read; keep one only to report an error
 * at its line later in the same load (postconfig, say). */
struct pt_conf_setting;

struct pt_conf {
    struct pt_cycle *cycle;
    struct pt_pool *pool;
    const char *file;                      /* of the setting being read */
    const struct pt_conf_setting *setting; /* the directive being set */
    const char *name;                      /* its name */
    const char *value;                     /* its (current element's) value as a string */
    unsigned ctx;                          /* PT_CTX_* bit of where we are */
    struct pt_conf_ctx *conf;              /* the arrays of the context being read */
    void *block; /* the object of the enclosing block (an upstream, say) */
    char *err;   /* first error goes here */
    size_t errlen;
    int failed;
    struct pt_conf_source *sources;    /* files read by include, kept until loading ends */
    int depth;                         /* of include nesting */
    struct pt_conf_deferred *deferred; /* pt_conf_defer's work, in the order asked */
};

/* Formats "<file>:<line>: <message>" for the setting being read into cf->err (the first
 * error wins).  Always returns PT_ERROR. */
int pt_conf_error(struct pt_conf *cf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Work that must wait until the whole file is read and every module's postconfig has run:
 * a value naming a variable that a directive further down defines (a map, a set), as
 * nginx allows.  <fn>(cf, <arg>) then runs with cf->setting back at the setting being read
 * now, so that its errors name that line.  PT_OK, or PT_ERROR (reported) out of memory.
 */
int pt_conf_defer(struct pt_conf *cf, int (*fn)(struct pt_conf *cf, void *arg), void *arg);

/* Runs the deferred work in order; stops at the first that fails.  PT_OK or PT_ERROR. */
int pt_conf_run_deferred(struct pt_conf *cf);

/* Like pt_conf_error but for another setting <s>. */
int pt_conf_error_at(struct pt_conf *cf, const struct pt_conf_setting *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Initialises <lc> and reads the libconfig file <file> into it; @include paths are relative
 * to the directory of <main>, the main configuration file (<file> itself, or the file whose
 * include reads it).  On failure <lc> is destroyed and <err> says why as "file:line: message",
 * naming the fix for nginx habits libconfig refuses (a bare word, as in `gzip = on;`).
 * An integer setting whose literal libconfig did not read as written (1.5 wraps literals
 * past 32 bits without an L suffix: 4294967298 reads as 2; past 64 bits it saturates) gets
 * as its hook the literal's value in decimal, or the literal itself past 64 bits: a
 * malloc'ed string that config_destroy() frees.  Returns PT_OK or PT_ERROR. */
int pt_conf_read_file(struct config_t *lc, const char *file, const char *main, char *err,
                      size_t errlen);

/* The root group of the file <lc> that pt_conf_read_file read, for pt_conf_read_block. */
const struct pt_conf_setting *pt_conf_root(struct config_t *lc);

/* The name errors give for <file>, the source file of a setting <cf> read: files read by
 * @include are named by libconfig as written, relative to the main file's directory; they
 * are joined to it (into <buf>) so that the name can be opened.  Returns <file> or <buf>. */
const char *pt_conf_file_name(struct pt_conf *cf, const char *file, char *buf, size_t len);

/* The include directive: reads the files that cf->value names (a path or a glob pattern,
 * relative to the main file's directory; matches in sorted order) as if their settings were
 * written where the include is.  A pattern that matches nothing is no error; a plain path
 * that does not exist is.  Returns PT_OK or PT_ERROR (reported). */
int pt_conf_set_include(struct pt_conf *cf, const struct pt_directive *d, void *conf);

/* Frees the files <cf> read through include; settings read from them are gone after it.
 * The loader calls it once the configuration is fully read. */
void pt_conf_release(struct pt_conf *cf);

/* Reports, at the setting being read, that <path> (a <what>, "access log" say) cannot be
 * opened for the reason <err> (an errno), naming the missing directory when that is the
 * reason, or pt_file_strerror()'s sentence for a link refused.  Returns PT_ERROR. */
int pt_conf_open_failed(struct pt_conf *cf, const char *what, const char *path, int err);

/* Reads every directive in <group> as context <ctx> with the arrays <conf>, dispatching
 * each to its module's setter.  Settings named in <skip> (NULL-terminated, may be NULL)
 * are left to the caller.  cf->setting is the same after as before, so that errors found
 * after a block is read (merging) point at the block.  Returns PT_OK or PT_ERROR. */
int pt_conf_read_block(struct pt_conf *cf, const struct pt_conf_setting *group, unsigned ctx,
                       struct pt_conf_ctx *conf, const char *const *skip);

/* What a setting holds. */
enum pt_conf_kind {
    PT_CONF_SCALAR, /* a number or a boolean */
    PT_CONF_STRING,
    PT_CONF_ARRAY, /* [ ... ]: scalars of one type */
    PT_CONF_LIST,  /* ( ... ): anything */
    PT_CONF_GROUP  /* { name = value; ... } */
};

/* What the setting <s> holds. */
enum pt_conf_kind pt_conf_setting_kind(const struct pt_conf_setting *s);

/* The name of <s> (a member of a group: "location", "app" in an upstream group), or NULL
 * for an element of a list or an array.  The string is the configuration's: copy it to
 * keep it past loading. */
const char *pt_conf_setting_name(const struct pt_conf_setting *s);

/* The string value of <s>, or NULL if <s> is not a string.  The configuration's string:
 * copy it to keep it past loading. */
const char *pt_conf_setting_string(const struct pt_conf_setting *s);

/* The number of elements of the group, list or array <s>; 0 for a scalar or a string. */
int pt_conf_setting_count(const struct pt_conf_setting *s);

/* The <i>th element (from 0) of the group, list or array <s>, or NULL past the end. */
const struct pt_conf_setting *pt_conf_setting_elem(const struct pt_conf_setting *s, int i);

/* The member named <name> of the group <s>, or NULL if it has none. */
const struct pt_conf_setting *pt_conf_setting_member(const struct pt_conf_setting *s,
                                                     const char *name);

/* The file <s> was read from, as the parser names it (an included file relative to the
 * main file's directory: pt_conf_file_name joins it), or cf->file when it names none. */
const char *pt_conf_setting_file(struct pt_conf *cf, const struct pt_conf_setting *s);

/* The line of <s> in its file (0 if unknown). */
int pt_conf_setting_line(const struct pt_conf_setting *s);

/* Calls <fn> for every group of the block directive <s>: <s> itself when it is a group
 * { ... }, or each element of a list ( {...}, ... ).  Anything else, or a list element
 * that is not a group, is reported.  Returns PT_OK, or PT_ERROR as soon as <fn> or a check
 * fails. */
int pt_conf_each_group(struct pt_conf *cf, const struct pt_conf_setting *s,
                       int (*fn)(struct pt_conf *cf, const struct pt_conf_setting *group));

/* "libconfig MAJOR.MINOR.REVISION": the parser built in, for portier -V. */
const char *pt_conf_parser_version(void);

/* Creates, for every module, a configuration of the given level into <arr> (allocated from
 * the cycle pool).  Returns PT_OK or PT_ERROR. */
int pt_conf_create_level(struct pt_conf *cf, enum pt_conf_level level, void ***arr);

/* Merges every module's <level> configuration from <parent> into <child>. */
int pt_conf_merge_level(struct pt_conf *cf, enum pt_conf_level level, void **parent, void **child);

/* Appends <value> (kept as given: copy it first if it does not outlive the cycle) to the
 * list *<list> of *<n> strings, *<n> being PT_CONF_UNSET for a list not set yet.  Returns
 * PT_OK, or PT_ERROR after reporting "out of memory". */
int pt_conf_list_add(struct pt_conf *cf, char ***list, int *n, char *value);

/* Resolves <path> against the prefix unless it is absolute; always a copy in the cycle pool. */
const char *pt_conf_path(struct pt_conf *cf, const char *path);

/* Resolves <path> against the main configuration file's directory unless it is absolute, as
 * include's files are (files that go with the configuration: a waf's rules); a copy in the
 * cycle pool, NULL when out of memory. */
const char *pt_conf_path_beside(struct pt_conf *cf, const char *path);

/* Parsers shared by setters.  Each returns PT_OK or PT_ERROR (nothing reported). */
int pt_parse_msec(const char *s, int64_t *ms);    /* "500ms" "5s" "2m" "1h" "1d" or bare seconds */
int pt_parse_size(const char *s, int64_t *bytes); /* "512" "8k" "1m" "1g" */
int pt_parse_int(const char *s, int64_t *n);

/* One word of an enum directive's value table (d->post), NULL-name terminated. */
struct pt_conf_enum {
    const char *name;
    int value;
};

/* Generic setters; the field at d->offset is: flag int; num/size/msec int64_t; str char *;
 * enum int, one of the values of the struct pt_conf_enum table d->post (true and false read
 * as "on" and "off").  d->post for num, size and msec is an optional int64_t[2] {min, max};
 * a num without one is a count from 0 to INT_MAX.  Values out of bounds, or too large for
 * 64 bits, are refused and quoted as written (libconfig's wrapping of integer literals
 * past 32 bits undone: see pt_conf_read_file). */
int pt_conf_set_flag(struct pt_conf *cf, const struct pt_directive *d, void *conf);
int pt_conf_set_num(struct pt_conf *cf, const struct pt_directive *d, void *conf);
int pt_conf_set_size(struct pt_conf *cf, const struct pt_directive *d, void *conf);
int pt_conf_set_msec(struct pt_conf *cf, const struct pt_directive *d, void *conf);
int pt_conf_set_str(struct pt_conf *cf, const struct pt_directive *d, void *conf);
int pt_conf_set_enum(struct pt_conf *cf, const struct pt_directive *d, void *conf);

/* Logs at warn "<file>:<line>: <message>" for the setting being read: accepted, but the
 * operator should know (a directive portier ignores, say).  -t prints it too. */
void pt_conf_warn(struct pt_conf *cf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pt_conf_merge_int(conf, prev, def)                       \
    do {                                                         \
        if ((conf) == PT_CONF_UNSET)                             \
            (conf) = ((prev) == PT_CONF_UNSET) ? (def) : (prev); \
    } while (0)

#define pt_conf_merge_ptr(conf, prev, def)              \
    do {                                                \
        if ((conf) == NULL)                             \
            (conf) = ((prev) == NULL) ? (def) : (prev); \
    } while (0)

/* nginx's rule for repeatable directives (proxy_set_header, set_real_ip_from, ...): a level
 * that has any of its own does not inherit the parent's list; one that has none does. */
#define pt_conf_merge_list(arr, n, parr, pn)        \
    do {                                            \
        if ((n) == PT_CONF_UNSET) {                 \
            (arr) = (parr);                         \
            (n) = (pn) == PT_CONF_UNSET ? 0 : (pn); \
        }                                           \
    } while (0)

/* Finds the directive named <name>, preferring one allowed in <ctx>; *<mod> receives its
 * module.  NULL if no module has it. */
const struct pt_directive *pt_conf_find_directive(const char *name, unsigned ctx,
                                                  struct pt_module **mod);

/* Splits <s> on spaces into at most <max> words (copied into the cycle pool); returns the
 * count, or -1 if there were more. */
int pt_conf_split(struct pt_conf *cf, const char *s, char **words, int max);

/* Prints the configuration reference (every module's directives, where they go and what
 * they mean) as Markdown to <f>. */
void pt_conf_print_reference(FILE *f);

#endif
