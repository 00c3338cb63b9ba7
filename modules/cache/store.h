/*
 * store.h: a cache's files.  One file per stored response, named by the MD5 of its key in
 * hex, under the levels of subdirectories proxy_cache_path asks for (levels=1:2 puts
 * c29b7f54b2df9d2c7d8c4f3b2a1e0d9f under f/d9/, as nginx does).
 *
 * A file is a header (struct cache_file_header), the key, the Vary names, the response head
 * as it is sent to clients ("200 OK\r\nName: value\r\n..."), then the body.  It is written to
 * a temporary file in the same directory and renamed into place only when complete, so a
 * response cut short is never found; the header carries a CRC-32 of itself, the key and the
 * head, and the body's length, so a file corrupted or truncated later reads as a miss.  A
 * small entry's whole file is also the memory tier's copy: the same bytes, parsed the same
 * way.
 */
#ifndef PT_CACHE_STORE_H
#define PT_CACHE_STORE_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/pt.h"
#include "modules/cache/index.h"

#define CACHE_FILE_VERSION 1
#define CACHE_LEVELS_MAX   3

/* Where a cache's files live: proxy_cache_path's directory and levels. */
struct cache_path {
    char *dir;
    int nlevels;
    int levels[CACHE_LEVELS_MAX]; /* 1 or 2 hex digits each */
};

/* At the start of every file, in the byte order of the machine that wrote it (a file from
 * another one fails the magic or the CRC and is a miss). */
struct cache_file_header {
    char magic[8];
    uint32_t crc;        /* CRC-32 of what follows it in the header, the key, Vary and head */
    uint32_t header_len; /* bytes before the body */
    uint64_t body_len;
    int64_t date;          /* when the response was stored (s) */
    int64_t age;           /* its age then (RFC 9111 4.2.3 corrected_initial_age) */
    int64_t last_modified; /* -1: none */
    struct cache_meta meta;
    uint8_t main_md5[CACHE_MD5_LEN]; /* a variant's: its key's main node */
    uint16_t key_len, vary_len;
    uint32_t head_len;
};

/* A stored response, read from a file or a memory copy. */
struct cache_file {
    int fd; /* -1: from memory (or closed) */
    struct cache_file_header h;
    char *key, *vary, *head; /* NUL-terminated copies in the caller's pool */
    const char *mem_body;    /* the body, when read from memory */
};

/* Writes into <buf>/<len> the path of <md5>'s file in <cp>, with the directories of its
 * levels.  Returns <buf>. */
char *cache_file_path(const struct cache_path *cp, const uint8_t *md5, char *buf, size_t len);

/* Opens and checks <md5>'s file: PT_OK with *<f> filled (fd open: read the body with
 * pread from h.header_len; strings in <pool>), PT_DECLINED when there is no file, PT_ERROR when it
 * is unreadable, corrupt or truncated (logged; the caller treats it as a miss and removes it). */
struct pt_pool;
int cache_file_open(const struct cache_path *cp, const uint8_t *md5, struct pt_pool *pool,
                    struct cache_file *f);

/* Parses a memory copy <mem>/<len> into *<f> (strings in <pool>, the body pointing into
 * <mem>).  PT_OK or PT_ERROR when it is not a sound copy. */
int cache_file_parse(const void *mem, size_t len, struct pt_pool *pool, struct cache_file *f);

/* Closes <f>'s descriptor (if any). */
void cache_file_close(struct cache_file *f);

/* One file being written. */
struct cache_writer {
    int fd; /* -1: none (never opened, or done) */
    unsigned failed : 1;
    struct cache_file_header h;
    uint32_t crc;
    char tmp[PATH_MAX];
    char path[PATH_MAX - 64]; /* room in tmp for the suffix */
    /* The memory tier's copy, while the file is small enough for it: the whole file. */
    char *mem;
    size_t mem_len, mem_max;
};

/* Starts writing the entry for <md5> in <cp>: a temporary file beside where it will live
 * (the levels' directories created as needed), holding header <h> (its magic, lengths and
 * CRC are set here), <key>, <vary> (may be ""), and <head>/<head_len>.  With <mem_max> > 0
 * a copy of the whole file is kept in memory (malloc'ed) while it fits.  PT_OK, or PT_ERROR
 * with errno (nothing is left on disk). */
int cache_writer_open(struct cache_writer *w, const struct cache_path *cp, const uint8_t *md5,
                      const struct cache_file_header *h, const char *key, const char *vary,
                      const char *head, size_t head_len, size_t mem_max);

/* Appends body bytes.  PT_OK, or PT_ERROR with errno (the writer is then failed: commit
 * will refuse). */
int cache_writer_append(struct cache_writer *w, const char *data, size_t len);

/* Appends <len> body bytes read from <fd> at <off> (a revalidated entry's old body).  PT_OK
 * or PT_ERROR with errno. */
int cache_writer_copy(struct cache_writer *w, int fd, off_t off, uint64_t len);

/* Completes the file: its header gets the body's length and is rewritten, and the file is
 * renamed into place (replacing an older one).  *<size> gets the file's bytes.  PT_OK, or
 * PT_ERROR with errno (the temporary file is removed).  Closes the writer either way; the
 * memory copy, if kept, stays in w->mem/w->mem_len for the caller (free() it). */
int cache_writer_commit(struct cache_writer *w, uint64_t *size);

/* Abandons the file (an incomplete response): removes the temporary file, frees the copy. */
void cache_writer_abort(struct cache_writer *w);

/* Reads the header and the key of the file at <path> for the loader: PT_OK with *<h> and
 * <key> (NUL-terminated, at most <key_room> bytes) and <vary> (CACHE_VARY_MAX), PT_ERROR
 * when it is not a sound cache file (the loader removes it). */
int cache_file_probe(const char *path, struct cache_file_header *h, char *key, size_t key_room,
                     char *vary);

#endif
