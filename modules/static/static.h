/*
 * static.h: what the static module's files share: its configuration (static.c, with the
 * MIME types), the file handler (serve.c), try_files (try_files.c) and the directory
 * listing (autoindex.c).
 */
#ifndef PT_STATIC_H
#define PT_STATIC_H

#include <sys/stat.h>

#include "worker/http.h"
#include "worker/var.h"

/* One extension's MIME type. */
struct mime_type {
    const char *ext; /* lower-case, without the dot */
    const char *type;
    int seq; /* the order it was named in: of an extension named twice, the first wins */
};

/* A types table: sorted by extension. */
struct mime_types {
    struct mime_type *t;
    int n, cap;
    int named; /* extensions named so far: the next one's seq */
};

/* One argument of try_files: a file (a directory with a trailing '/'), or the last one. */
struct try_file {
    struct pt_template *path; /* with variables, relative to root or alias */
    unsigned dir : 1;         /* written with a trailing '/' */
};

struct static_loc_conf {
    struct pt_template *root; /* root or alias; NULL: not set here */
    unsigned alias : 1;
    unsigned alias_whole : 1; /* alias in a regex location: the whole path, the URI not added */
    struct pt_str loc_prefix; /* the location's prefix, which alias replaces */
    char **index;             /* index, in order; nindex PT_CONF_UNSET: not set here */
    int nindex;
    struct try_file *try_files; /* all but the last; NULL: no try_files here */
    int ntry;
    const char *try_last;       /* the last argument as written: a URI, "=CODE", "@name" */
    struct pt_template *try_to; /* ... compiled, for a URI or a name; NULL for =CODE */
    int try_code;               /* ... the CODE */
    struct mime_types *types;   /* NULL: inherit (the main one at the top) */
    char *default_type;
    int gzip_static;                         /* GZIP_STATIC_*; PT_CONF_UNSET: not set here */
    int brotli_static;                       /* ... the same for FILE.br */
    struct open_file_cache *open_file_cache; /* NULL: off */
    unsigned open_file_cache_set : 1;        /* open_file_cache is written at this level */
    int64_t open_file_cache_valid;           /* ms */
    int64_t open_file_cache_min_uses;
    int open_file_cache_errors;        /* flag */
    int symlinks;                      /* disable_symlinks: SYMLINKS_* */
    struct pt_template *symlinks_from; /* its from=; NULL: none */
    int autoindex;                     /* flags and AUTOINDEX_*; PT_CONF_UNSET: not set here */
    int autoindex_format;
    int autoindex_exact_size;
    int autoindex_localtime;
};

enum { GZIP_STATIC_OFF, GZIP_STATIC_ON, GZIP_STATIC_ALWAYS };
enum { SYMLINKS_OFF, SYMLINKS_ON, SYMLINKS_IF_NOT_OWNER };
enum { AUTOINDEX_HTML, AUTOINDEX_JSON, AUTOINDEX_JSONP, AUTOINDEX_XML };

/* open_file_cache's settings; the table itself is each worker's (open_file.c). */
struct open_file_cache {
    int max;
    int64_t inactive; /* ms */
    void *state;      /* made on first use in each process */
};

/* What pt_static_open found. */
struct open_file {
    int fd;  /* -1: not open (it failed, or it was only looked at) */
    int err; /* errno of the failure: ENOENT, EACCES, ELOOP (a link refused) ...; 0 */
    struct stat st;
};

struct static_main_conf {
    struct mime_types types; /* /etc/mime.types, or the built-in table where it is absent */
};

/* What a file answer sends, in order: pieces of the file, or text (the part heads of a
 * multipart/byteranges answer and its close). */
struct piece {
    struct pt_str text; /* p NULL: the file's bytes [off, off + len) */
    int64_t off, len;
};

struct file_ctx {
    int fd;
    const char *path; /* for the log */
    char *buf;        /* READ_CHUNK bytes for reading the file, made on first use */
    struct piece *pieces;
    int npieces, cur;
    struct piece whole;  /* the one piece of an answer without ranges */
    struct pt_str range; /* the byte-range set asked for (after "bytes="), if any */
    int64_t size;        /* ... of the file of <size> bytes */
    unsigned gz : 1;     /* the gzip_static file is sent: no ranges of it, as nginx */
};

extern struct pt_module pt_static_module;

/* static.c: the MIME type of <path> by its extension in <lc>'s table, else default_type. */
struct pt_str pt_static_type(struct pt_request *r, const struct static_loc_conf *lc,
                             struct pt_str path);

/* serve.c: <uri> with every %XX decoded, as nginx's URI is (in r's pool, NUL-terminated):
 * PT_OK, 400 for a NUL or an escaped dot segment, or PT_ERROR. */
int pt_static_decode_uri(struct pt_request *r, struct pt_str uri, struct pt_str *out);

/* serve.c: the file path of <uri> under <lc>'s root or alias (in r's pool, NUL-terminated):
 * PT_OK, 400 for a URI that names no file (a NUL, an escaped dot segment), or PT_ERROR. */
int pt_static_map_uri(struct pt_request *r, const struct static_loc_conf *lc, struct pt_str uri,
                      struct pt_str *path);

/* open_file.c: opens <path> (NUL-terminated) for <r> under <lc>'s disable_symlinks and
 * through its open_file_cache, or only looks at it (<test_only>: index, try_files; of->fd
 * stays -1).  PT_OK with of->err 0, of->st and (unless test_only, or a directory) of->fd, which the
 * request holds until it ends (the caller never closes it), or with of->err the errno of the
 * failure (ELOOP: a symbolic link disable_symlinks refuses; ENOTDIR: one among the
 * directories under "on"); PT_ERROR when out of memory. */
int pt_static_open(struct pt_request *r, const struct static_loc_conf *lc, struct pt_str path,
                   int test_only, struct open_file *of);

/* ranges.c: nginx's range filter for the file of <f> of <size> bytes and the byte-range set
 * <set> (after "bytes="): PT_OK with f->pieces the answer (one range: 206 with its
 * Content-Range; several: 206 multipart/byteranges; none that counts: unchanged, the whole
 * file), 416 when the set is malformed or nothing in it is satisfiable, PT_ERROR.  <f> NULL:
 * only whether it is 416 (PT_OK if not), nothing changed. */
int pt_static_ranges(struct pt_request *r, struct pt_str set, int64_t size, struct file_ctx *f);

/* serve.c: the content handler (CONTENT phase). */
int pt_static_handler(struct pt_request *r);

/* try_files.c: the PRECONTENT handler of try_files. */
int pt_static_try_files(struct pt_request *r);

/* autoindex.c: answers a GET or HEAD of <r> with the listing of the directory <dir> (its
 * path, with the trailing '/'), as nginx's autoindex: what a content handler returns (PT_OK,
 * PT_AGAIN while the listing goes out, an HTTP status or PT_ERROR). */
int pt_static_autoindex(struct pt_request *r, const struct static_loc_conf *lc, struct pt_str dir);

#endif
