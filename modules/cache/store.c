/*
 * store.c: a cache's files (see store.h).
 */
#include "modules/cache/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/log.h"
#include "core/pool.h"

static const char magic[8] = {'p', 't', 'c', 'a', 'c', 'h', 'e', CACHE_FILE_VERSION};

/* The CRC-32 of the header after its crc field. */
static uint32_t header_crc(const struct cache_file_header *h)
{
    const unsigned char *p = (const unsigned char *)h;
    size_t skip = offsetof(struct cache_file_header, crc) + sizeof(h->crc);

    return (uint32_t)crc32(0L, p + skip, (uInt)(sizeof(*h) - skip));
}

static uint32_t crc_more(uint32_t crc, const char *p, size_t len)
{
    return (uint32_t)crc32(crc, (const unsigned char *)p, (uInt)len);
}

char *cache_file_path(const struct cache_path *cp, const uint8_t *md5, char *buf, size_t len)
{
    static const char hexd[] = "0123456789abcdef";
    char hex[2 * CACHE_MD5_LEN + 1];
    size_t n, end = 2 * CACHE_MD5_LEN;

    for (int i = 0; i < CACHE_MD5_LEN; i++) {
        hex[2 * i] = hexd[md5[i] >> 4];
        hex[2 * i + 1] = hexd[md5[i] & 15];
    }
    hex[end] = '\0';
    n = (size_t)snprintf(buf, len, "%s", cp->dir);
    /* Each level takes its digits from the end of the name, as nginx's. */
    for (int i = 0; i < cp->nlevels && n < len; i++) {
        end -= (size_t)cp->levels[i];
        n += (size_t)snprintf(buf + n, len - n, "/%.*s", cp->levels[i], hex + end);
    }
    if (n < len)
        snprintf(buf + n, len - n, "/%s", hex);
    return buf;
}

/* Creates the directories of <path>'s levels below <cp>->dir, as needed. */
static int make_dirs(const struct cache_path *cp, char *path)
{
    size_t base = strlen(cp->dir);
    char *slash = path + base;

    while ((slash = strchr(slash + 1, '/')) != NULL) {
        *slash = '\0';
        int rc = mkdir(path, 0700);
        *slash = '/';
        if (rc < 0 && errno != EEXIST)
            return PT_ERROR;
    }
    return PT_OK;
}

static int write_all(int fd, const char *p, size_t len, off_t off)
{
    while (len) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = ENOSPC;
            return PT_ERROR;
        }
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return PT_OK;
}

static int read_all(int fd, char *p, size_t len, off_t off)
{
    while (len) {
        ssize_t n = pread(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            errno = n == 0 ? EIO : errno;
            return PT_ERROR;
        }
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return PT_OK;
}

/* Keeps bytes in the writer's memory copy while the file fits in it. */
static void mem_add(struct cache_writer *w, const char *p, size_t len)
{
    if (w->mem == NULL)
        return;
    if (w->mem_len + len > w->mem_max) {
        free(w->mem);
        w->mem = NULL;
        return;
    }
    memcpy(w->mem + w->mem_len, p, len);
    w->mem_len += len;
}

static uint64_t writer_seq;

int cache_writer_open(struct cache_writer *w, const struct cache_path *cp, const uint8_t *md5,
                      const struct cache_file_header *h, const char *key, const char *vary,
                      const char *head, size_t head_len, size_t mem_max)
{
    int saved;

    memset(w, 0, sizeof(*w));
    w->fd = -1;
    w->h = *h;
    memcpy(w->h.magic, magic, sizeof(magic));
    w->h.key_len = (uint16_t)strlen(key);
    w->h.vary_len = (uint16_t)strlen(vary);
    w->h.head_len = (uint32_t)head_len;
    w->h.header_len = (uint32_t)(sizeof(w->h) + w->h.key_len + w->h.vary_len + head_len);
    w->h.body_len = 0;
    cache_file_path(cp, md5, w->path, sizeof(w->path));
    /* The name of a temporary file carries its writer's pid: the loader removes those of
     * writers that died. */
    snprintf(w->tmp, sizeof(w->tmp), "%s.%d.%llu.tmp", w->path, (int)getpid(),
             (unsigned long long)++writer_seq);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd < 0 && errno == ENOENT && make_dirs(cp, w->tmp) == PT_OK)
        w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd < 0)
        return PT_ERROR;
    w->crc =
        crc_more(crc_more(crc_more(0, key, w->h.key_len), vary, w->h.vary_len), head, head_len);
    if (mem_max >= w->h.header_len)
        w->mem = malloc(mem_max);
    w->mem_max = mem_max;
    mem_add(w, (const char *)&w->h, sizeof(w->h));
    mem_add(w, key, w->h.key_len);
    mem_add(w, vary, w->h.vary_len);
    mem_add(w, head, head_len);
    if (write_all(w->fd, (const char *)&w->h, sizeof(w->h), 0) == PT_OK &&
        write_all(w->fd, key, w->h.key_len, sizeof(w->h)) == PT_OK &&
        write_all(w->fd, vary, w->h.vary_len, (off_t)sizeof(w->h) + w->h.key_len) == PT_OK &&
        write_all(w->fd, head, head_len, (off_t)w->h.header_len - (off_t)head_len) == PT_OK)
        return PT_OK;
    saved = errno;
    cache_writer_abort(w);
    errno = saved;
    return PT_ERROR;
}

int cache_writer_append(struct cache_writer *w, const char *data, size_t len)
{
    if (w->failed || w->fd < 0)
        return PT_ERROR;
    if (write_all(w->fd, data, len, (off_t)(w->h.header_len + w->h.body_len)) != PT_OK) {
        w->failed = 1;
        return PT_ERROR;
    }
    mem_add(w, data, len);
    w->h.body_len += len;
    return PT_OK;
}

int cache_writer_copy(struct cache_writer *w, int fd, off_t off, uint64_t len)
{
    char buf[16384];

    while (len) {
        size_t n = (size_t)pt_min(len, sizeof(buf));
        if (read_all(fd, buf, n, off) != PT_OK || cache_writer_append(w, buf, n) != PT_OK) {
            w->failed = 1;
            return PT_ERROR;
        }
        off += (off_t)n;
        len -= n;
    }
    return PT_OK;
}

int cache_writer_commit(struct cache_writer *w, uint64_t *size)
{
    int saved;

    if (w->failed || w->fd < 0) {
        cache_writer_abort(w);
        errno = errno ? errno : EIO;
        return PT_ERROR;
    }
    w->h.crc = header_crc(&w->h);
    w->h.crc = crc_more(w->h.crc, (const char *)&w->crc, sizeof(w->crc));
    if (w->mem)
        memcpy(w->mem, &w->h, sizeof(w->h));
    if (write_all(w->fd, (const char *)&w->h, sizeof(w->h), 0) == PT_OK && close(w->fd) == 0 &&
        rename(w->tmp, w->path) == 0) {
        w->fd = -1;
        *size = w->h.header_len + w->h.body_len;
        return PT_OK;
    }
    saved = errno;
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    cache_writer_abort(w);
    errno = saved;
    return PT_ERROR;
}

void cache_writer_abort(struct cache_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    if (w->fd >= 0 || w->tmp[0])
        unlink(w->tmp);
    w->fd = -1;
    w->tmp[0] = '\0';
    free(w->mem);
    w->mem = NULL;
    w->mem_len = 0;
}

/* Checks header <h> against the bytes that follow it (<rest>, <rest_len> of them: the key,
 * Vary and head) and the file's <size> (0: not known); the CRC too unless <trusted>.  PT_OK
 * or PT_ERROR. */
static int header_sound(const struct cache_file_header *h, const char *rest, size_t rest_len,
                        uint64_t size, int trusted)
{
    uint32_t crc;

    if (memcmp(h->magic, magic, sizeof(magic)) != 0 ||
        h->header_len != sizeof(*h) + h->key_len + h->vary_len + (uint64_t)h->head_len ||
        rest_len != h->header_len - sizeof(*h))
        return PT_ERROR;
    if (size && size != h->header_len + h->body_len)
        return PT_ERROR;
    if (trusted)
        return PT_OK;
    crc = crc_more(0, rest, rest_len);
    return crc_more(header_crc(h), (const char *)&crc, sizeof(crc)) == h->crc ? PT_OK : PT_ERROR;
}

/* Copies the key, Vary and head that follow the header in <rest> into <pool>. */
static int split_rest(struct cache_file *f, const char *rest, struct pt_pool *pool)
{
    const struct cache_file_header *h = &f->h;

    f->key = pt_pstrndup(pool, rest, h->key_len);
    f->vary = pt_pstrndup(pool, rest + h->key_len, h->vary_len);
    f->head = pt_pstrndup(pool, rest + h->key_len + h->vary_len, h->head_len);
    return f->key && f->vary && f->head ? PT_OK : PT_ERROR;
}

int cache_file_open(const struct cache_path *cp, const uint8_t *md5, struct pt_pool *pool,
                    struct cache_file *f)
{
    char path[PATH_MAX], *rest;
    struct stat st;
    size_t rest_len;

    memset(f, 0, sizeof(*f));
    cache_file_path(cp, md5, path, sizeof(path));
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        if (errno == ENOENT)
            return PT_DECLINED;
        pt_log(PT_LOG_CRIT, "cannot open cache file \"%s\": %m", path);
        return PT_ERROR;
    }
    if (fstat(f->fd, &st) < 0 || read_all(f->fd, (char *)&f->h, sizeof(f->h), 0) != PT_OK ||
        f->h.header_len < sizeof(f->h) || f->h.header_len > (1u << 24))
        goto corrupt;
    rest_len = f->h.header_len - sizeof(f->h);
    rest = pt_palloc(pool, rest_len + 1);
    if (rest == NULL || read_all(f->fd, rest, rest_len, sizeof(f->h)) != PT_OK ||
        header_sound(&f->h, rest, rest_len, (uint64_t)st.st_size, 0) != PT_OK ||
        split_rest(f, rest, pool) != PT_OK)
        goto corrupt;
    return PT_OK;
corrupt:
    pt_log(PT_LOG_ERR, "cache file \"%s\" is corrupt or truncated: treated as a miss", path);
    cache_file_close(f);
    return PT_ERROR;
}

int cache_file_parse(const void *mem, size_t len, struct pt_pool *pool, struct cache_file *f)
{
    const char *p = mem;

    memset(f, 0, sizeof(*f));
    f->fd = -1;
    if (len < sizeof(f->h))
        return PT_ERROR;
    memcpy(&f->h, p, sizeof(f->h));
    if (f->h.header_len < sizeof(f->h) || f->h.header_len > len ||
        /* A memory copy never touched a disk: its lengths are checked, not its CRC. */
        header_sound(&f->h, p + sizeof(f->h), f->h.header_len - sizeof(f->h), len, 1) != PT_OK ||
        split_rest(f, p + sizeof(f->h), pool) != PT_OK)
        return PT_ERROR;
    f->mem_body = p + f->h.header_len;
    return PT_OK;
}

void cache_file_close(struct cache_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

int cache_file_probe(const char *path, struct cache_file_header *h, char *key, size_t key_room,
                     char *vary)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    char *rest = NULL;
    size_t rest_len;
    int rc = PT_ERROR;

    if (fd < 0)
        return PT_ERROR;
    if (fstat(fd, &st) == 0 && read_all(fd, (char *)h, sizeof(*h), 0) == PT_OK &&
        h->header_len >= sizeof(*h) && h->header_len <= (1u << 24) && h->key_len < key_room &&
        h->vary_len < CACHE_VARY_MAX) {
        rest_len = h->header_len - sizeof(*h);
        rest = malloc(rest_len + 1);
        if (rest && read_all(fd, rest, rest_len, sizeof(*h)) == PT_OK &&
            header_sound(h, rest, rest_len, (uint64_t)st.st_size, 0) == PT_OK) {
            memcpy(key, rest, h->key_len);
            key[h->key_len] = '\0';
            memcpy(vary, rest + h->key_len, h->vary_len);
            vary[h->vary_len] = '\0';
            rc = PT_OK;
        }
    }
    free(rest);
    close(fd);
    return rc;
}
