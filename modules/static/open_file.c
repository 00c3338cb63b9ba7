/*
 * open_file.c: how the static module opens the files it serves or looks for (index,
 * try_files, gzip_static), as nginx's ngx_open_cached_file: disable_symlinks, and the
 * open_file_cache.
 *
 * disable_symlinks walks the path a component at a time from "/" (or from the part
 * "from=" names, which is opened as it is): with "on" every component is opened with
 * O_NOFOLLOW, so a symbolic link among the directories is not a directory (ENOTDIR, 404
 * as in nginx) and a link as the last component is refused (ELOOP, 403); with
 * "if_not_owner" links are followed where the link and what it names have one owner.
 *
 * The open_file_cache is each worker's own (an fd cannot be shared), made on first use
 * from the settings the configuration gave: a table of paths with their open descriptor,
 * their stat and the error of a failed open (open_file_cache_errors), the least recently
 * used first to go past max=, and the unused past inactive= dropped as requests come (as
 * nginx, no timer: an idle worker keeps them).  An entry older than open_file_cache_valid
 * is opened again before use.  A request holds the entry it uses: one dropped meanwhile is
 * closed when the last such request ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/pool.h"
#include "core/times.h"
#include "modules/static/static.h"

struct fc_entry {
    struct fc_entry *hnext;       /* the table's chain */
    struct fc_entry *prev, *next; /* the use list: most recent at the head */
    uint32_t hash;
    int fd;  /* -1: none kept (an error, a test only, uses below min_uses) */
    int err; /* errno of the open that failed; 0 */
    struct stat st;
    uint64_t validated, accessed; /* pt_now_ms() of its open, of its last use */
    unsigned uses, refs;          /* requests that used it; that hold its fd now */
    int symlinks;                 /* the disable_symlinks it was opened under ... */
    size_t from;                  /* ... and its from= length */
    unsigned removed : 1;         /* out of the table: closed when refs drop to 0 */
    size_t len;
    char path[];
};

struct fc_state {
    struct fc_entry **buckets;
    uint32_t mask;
    int count;
    struct fc_entry *head, *tail;
};

/* ---- opening, with or without following symbolic links ---------------------------------- */

/* Opens the component <name> in the directory <at> as disable_symlinks <mode> wants, with
 * <flags> (O_NOFOLLOW added for "on").  For "if_not_owner" a link is followed only when it
 * and what it names have one owner.  The fd, or -1 with errno. */
static int open_at(int at, const char *name, int flags, int mode)
{
    struct stat target, link;
    int fd;

    if (mode == SYMLINKS_ON)
        return openat(at, name, flags | O_NOFOLLOW | O_CLOEXEC);
    if ((fd = openat(at, name, flags | O_CLOEXEC)) < 0)
        return -1;
    if (fstat(fd, &target) != 0 || fstatat(at, name, &link, AT_SYMLINK_NOFOLLOW) != 0 ||
        target.st_uid != link.st_uid) {
        int e = target.st_uid != link.st_uid ? ELOOP : errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Opens <path> with <flags>, each component checked as <mode> says from byte <from> on
 * (the part before it opened as it is).  The fd, or -1 with errno. */
static int open_checked(const char *path, size_t from, int flags, int mode)
{
    char *copy = strdup(path), *p = copy, *slash;
    int at, fd = -1, e;

    if (copy == NULL)
        return -1;
    if (from > 0) {
        copy[from] = '\0';
        at = open(copy, O_PATH | O_DIRECTORY | O_CLOEXEC);
        p += from + 1;
    } else {
        at = open(path[0] == '/' ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    while (at >= 0) {
        while (*p == '/')
            p++;
        if ((slash = strchr(p, '/')) == NULL || slash[strspn(slash, "/")] == '\0') {
            if (slash)
                *slash = '\0';
            fd = *p ? open_at(at, p, flags, mode) : openat(at, ".", flags | O_CLOEXEC);
            break;
        }
        *slash = '\0';
        fd = open_at(at, p, O_PATH | O_DIRECTORY, mode);
        e = errno;
        close(at);
        errno = e;
        at = fd;
        fd = -1;
        p = slash + 1;
    }
    e = errno;
    if (at >= 0)
        close(at);
    free(copy);
    errno = e;
    return fd;
}

/* Opens (or, <test_only>, looks at) <path> under disable_symlinks <mode>: 0 with *<fd> (-1 when
 * only looked at) and <st>, or the errno. */
static int open_path(int mode, const char *path, size_t from, int test_only, int *fd,
                     struct stat *st)
{
    int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY;

    *fd = -1;
    if (mode == SYMLINKS_OFF) {
        if (test_only)
            return stat(path, st) == 0 ? 0 : errno;
        if ((*fd = open(path, flags | O_CLOEXEC)) < 0)
            return errno;
    } else if ((*fd = open_checked(path, from, flags, mode)) < 0) {
        return errno;
    }
    if (fstat(*fd, st) != 0) {
        int e = errno;
        close(*fd);
        *fd = -1;
        return e;
    }
    /* As nginx's test with disable_symlinks: the file is opened to be looked at.  Nor is a
     * directory kept open (nginx): nothing reads it. */
    if (test_only || S_ISDIR(st->st_mode)) {
        close(*fd);
        *fd = -1;
    }
    return 0;
}

/* The disable_symlinks <mode> for <path>, and the length <from> of its start that from=
 * leaves unchecked (0: none).  PT_OK or PT_ERROR. */
static int symlinks_from(struct pt_request *r, const struct static_loc_conf *lc, struct pt_str path,
                         size_t *from, int *mode)
{
    struct pt_str v;

    *from = 0;
    *mode = lc->symlinks;
    if (lc->symlinks == SYMLINKS_OFF || lc->symlinks_from == NULL)
        return PT_OK;
    if (pt_template_eval(r, lc->symlinks_from, &v) != PT_OK)
        return PT_ERROR;
    while (v.len > 1 && v.p[v.len - 1] == '/')
        v.len--;
    if (v.len == 0 || v.len > path.len || memcmp(v.p, path.p, v.len) != 0)
        return PT_OK;
    if (v.len == path.len)
        *mode = SYMLINKS_OFF; /* nothing of it is left to check, as nginx */
    else if (path.p[v.len] == '/')
        *from = v.len;
    return PT_OK;
}

/* ---- the cache ---------------------------------------------------------------------------- */

static uint32_t hash_of(const char *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    while (n--)
        h = (h ^ (unsigned char)*p++) * 16777619u;
    return h;
}

static struct fc_state *state_of(struct open_file_cache *c)
{
    struct fc_state *s = c->state;
    uint32_t n = 16;

    if (s)
        return s;
    while (n < (uint32_t)c->max && n < (1u << 20))
        n <<= 1;
    if ((s = calloc(1, sizeof(*s))) == NULL || (s->buckets = calloc(n, sizeof(void *))) == NULL) {
        free(s);
        return NULL;
    }
    s->mask = n - 1;
    c->state = s;
    return s;
}

static void unlink_use(struct fc_state *s, struct fc_entry *e)
{
    *(e->prev ? &e->prev->next : &s->head) = e->next;
    *(e->next ? &e->next->prev : &s->tail) = e->prev;
    e->prev = e->next = NULL;
}

static void link_use(struct fc_state *s, struct fc_entry *e)
{
    e->prev = NULL;
    e->next = s->head;
    *(s->head ? &s->head->prev : &s->tail) = e;
    s->head = e;
}

static void entry_free(struct fc_entry *e)
{
    if (e->fd >= 0)
        close(e->fd);
    free(e);
}

/* Takes <e> out of the table: closed now, or by the last request holding it. */
static void entry_remove(struct fc_state *s, struct fc_entry *e)
{
    struct fc_entry **pp = &s->buckets[e->hash & s->mask];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    unlink_use(s, e);
    s->count--;
    if (e->refs == 0)
        entry_free(e);
    else
        e->removed = 1;
}

/* Drops up to two entries unused for inactive: the table shrinks as requests come. */
static void expire(struct open_file_cache *c, struct fc_state *s, uint64_t now)
{
    for (int i = 0; i < 2 && s->tail && now - s->tail->accessed >= (uint64_t)c->inactive; i++)
        entry_remove(s, s->tail);
}

static struct fc_entry *find(struct fc_state *s, const char *path, size_t len, uint32_t hash)
{
    for (struct fc_entry *e = s->buckets[hash & s->mask]; e; e = e->hnext)
        if (e->hash == hash && e->len == len && memcmp(e->path, path, len) == 0)
            return e;
    return NULL;
}

static struct fc_entry *insert(struct open_file_cache *c, struct fc_state *s, struct pt_str path,
                               uint32_t hash)
{
    struct fc_entry *e = calloc(1, sizeof(*e) + path.len + 1);

    if (e == NULL)
        return NULL;
    memcpy(e->path, path.p, path.len);
    e->len = path.len;
    e->hash = hash;
    e->fd = -1;
    e->hnext = s->buckets[hash & s->mask];
    s->buckets[hash & s->mask] = e;
    link_use(s, e);
    if (++s->count > c->max) /* max >= 1: the tail is not <e> */
        entry_remove(s, s->tail);
    return e;
}

static void release(void *arg)
{
    struct fc_entry *e = arg;

    if (--e->refs == 0 && e->removed)
        entry_free(e);
}

static void close_fd(void *arg)
{
    close((int)(intptr_t)arg);
}

/* Gives <of> to <r>: a cached entry's fd held until the request ends, or its own fd closed
 * then. */
static int hand_over(struct pt_request *r, struct fc_entry *e, int fd, struct open_file *of)
{
    of->fd = fd;
    if (fd < 0)
        return PT_OK;
    if (e) {
        if (pt_pool_cleanup(r->pool, release, e) != PT_OK)
            return PT_ERROR;
        e->refs++;
        return PT_OK;
    }
    if (pt_pool_cleanup(r->pool, close_fd, (void *)(intptr_t)fd) != PT_OK) {
        close(fd);
        of->fd = -1;
        return PT_ERROR;
    }
    return PT_OK;
}

int pt_static_open(struct pt_request *r, const struct static_loc_conf *lc, struct pt_str path,
                   int test_only, struct open_file *of)
{
    struct open_file_cache *c = lc->open_file_cache;
    struct fc_state *s = c ? state_of(c) : NULL;
    struct fc_entry *e = NULL;
    uint64_t now = pt_now_ms();
    unsigned uses = 0;
    uint32_t hash = 0;
    size_t from;
    int mode, fd;

    if (symlinks_from(r, lc, path, &from, &mode) != PT_OK)
        return PT_ERROR;
    of->fd = -1;
    if (s) {
        expire(c, s, now);
        hash = hash_of(path.p, path.len);
        e = find(s, path.p, path.len, hash);
    }
    if (e && (now - e->validated >= (uint64_t)lc->open_file_cache_valid || e->symlinks != mode ||
              e->from != from || (e->err && !lc->open_file_cache_errors) ||
              (!e->err && e->fd < 0 && !test_only && !S_ISDIR(e->st.st_mode)))) {
        uses = e->uses; /* opened again below, its uses counted on */
        entry_remove(s, e);
        e = NULL;
    }
    if (e) {
        e->uses++;
        e->accessed = now;
        unlink_use(s, e);
        link_use(s, e);
        of->err = e->err;
        of->st = e->st;
        return hand_over(r, e, test_only ? -1 : e->fd, of);
    }
    of->err = open_path(mode, path.p, from, test_only, &fd, &of->st);
    if (s == NULL || (of->err && !lc->open_file_cache_errors) ||
        (e = insert(c, s, path, hash)) == NULL)
        return hand_over(r, NULL, fd, of);
    e->err = of->err;
    e->st = of->st;
    e->validated = e->accessed = now;
    e->uses = uses + 1;
    e->symlinks = mode;
    e->from = from;
    /* Below min_uses the entry counts uses but keeps no descriptor (nginx). */
    if (fd < 0 || e->uses < (unsigned)lc->open_file_cache_min_uses)
        return hand_over(r, NULL, fd, of);
    e->fd = fd;
    return hand_over(r, e, fd, of);
}
