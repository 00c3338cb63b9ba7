/*
 * manager.c: the helper's work for each cache, done once for all workers.
 *
 * The loader walks the cache directory when the helper starts and puts every sound file
 * into the index that does not have its key yet, so the cache survives a restart (a reload
 * or an upgrade keeps the zone, and the walk then finds nothing new).  It goes a batch of
 * files per turn of the helper's loop, so that health checks and OCSP fetches keep their
 * timing on a large cache.  On the way it removes files that are not sound (a crash
 * mid-write cannot leave one: files are renamed into place complete; a disk error or a
 * hand can) and temporary files whose writer is gone.
 *
 * Then, every second, a sweep removes entries unused for `inactive`, and the least
 * recently used ones while the cache's files take more than max_size or the disk has less
 * than min_free: the index decides under its lock, the files go after.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/log.h"
#include "core/times.h"
#include "modules/cache/cache.h"
#include "worker/event.h"

#define LOAD_BATCH 256  /* files looked at per turn */
#define SWEEP_MS   1000 /* between sweeps */
#define DEPTH_MAX  (CACHE_LEVELS_MAX + 1)

struct manager {
    struct cache *cache;
    struct pt_timer timer;
    /* the loader's walk: one open directory per level */
    DIR *dirs[DEPTH_MAX];
    char path[PATH_MAX];
    size_t len[DEPTH_MAX];
    int depth; /* -1: the walk is over */
    uint64_t loaded, removed;
};

/* Whether the writer process of the temporary file <name> ("<md5>.<pid>.<seq>.tmp") is
 * gone, so that the file will never be completed. */
static int writer_gone(const char *name)
{
    const char *dot = strchr(name, '.');
    long pid = dot ? strtol(dot + 1, NULL, 10) : 0;

    return pid <= 0 || (kill((pid_t)pid, 0) < 0 && errno == ESRCH);
}

static int hex_name(const char *name)
{
    if (strlen(name) != 2 * CACHE_MD5_LEN)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

static void unhex(const char *name, uint8_t *md5)
{
    for (int i = 0; i < CACHE_MD5_LEN; i++) {
        char b[3] = {name[2 * i], name[2 * i + 1], 0};
        md5[i] = (uint8_t)strtoul(b, NULL, 16);
    }
}

/* One file of the walk, at m->path. */
static void load_file(struct manager *m, const char *name)
{
    struct cache *c = m->cache;
    struct cache_file_header h;
    char key[4096], vary[CACHE_VARY_MAX];
    uint8_t md5[CACHE_MD5_LEN], want[CACHE_MD5_LEN];
    static const uint8_t zero[CACHE_MD5_LEN];
    struct stat st;

    if (strstr(name, ".tmp")) {
        if (writer_gone(name) && unlink(m->path) == 0)
            m->removed++;
        return;
    }
    if (!hex_name(name))
        return; /* not ours: left alone */
    unhex(name, md5);
    if (cache_file_probe(m->path, &h, key, sizeof(key), vary) != PT_OK) {
        pt_log(PT_LOG_WARN, "cache \"%s\": removing unsound file \"%s\"", c->name, m->path);
        if (unlink(m->path) == 0)
            m->removed++;
        return;
    }
    /* A plain entry's name is its key's MD5; a variant's cannot be checked here. */
    cache_md5(key, strlen(key), NULL, 0, want);
    if (memcmp(h.main_md5, zero, CACHE_MD5_LEN) == 0 && memcmp(want, md5, CACHE_MD5_LEN) != 0)
        return;
    if (vary[0] && memcmp(h.main_md5, zero, CACHE_MD5_LEN) != 0) {
        struct cache_meta mm = {.valid = h.meta.valid, .flags = CACHE_F_VARY};
        cache_index_load(c->zone, h.main_md5, key, strlen(key), &mm, vary, h.date);
    }
    h.meta.fs_size = h.header_len + h.body_len;
    if (cache_index_load(c->zone, md5, key, strlen(key), &h.meta, NULL,
                         stat(m->path, &st) == 0 ? st.st_atime : h.date) == 1)
        m->loaded++;
}

/* Goes on with the walk for up to LOAD_BATCH entries.  Returns 1 when it is over. */
static int load_some(struct manager *m)
{
    for (int n = 0; n < LOAD_BATCH && m->depth >= 0; n++) {
        struct dirent *e = readdir(m->dirs[m->depth]);
        if (e == NULL) {
            closedir(m->dirs[m->depth--]);
            continue;
        }
        if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || strcmp(e->d_name, "..") == 0))
            continue;
        snprintf(m->path + m->len[m->depth], sizeof(m->path) - m->len[m->depth], "/%s", e->d_name);
        if (e->d_type == DT_DIR && m->depth + 1 < DEPTH_MAX) {
            DIR *d = opendir(m->path);
            if (d) {
                m->depth++;
                m->dirs[m->depth] = d;
                m->len[m->depth] = strlen(m->path);
            }
        } else if (e->d_type == DT_REG || e->d_type == DT_UNKNOWN) {
            load_file(m, e->d_name);
        }
    }
    return m->depth < 0;
}

static void gather(void *arg, const uint8_t *md5)
{
    struct {
        uint8_t (*md5)[CACHE_MD5_LEN];
        size_t n, cap;
    } *g = arg;

    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        void *a = realloc(g->md5, cap * CACHE_MD5_LEN);
        if (a == NULL)
            return;
        g->md5 = a;
        g->cap = cap;
    }
    memcpy(g->md5[g->n++], md5, CACHE_MD5_LEN);
}

/* Bytes to free for min_free: how far the disk's free space is below it. */
static uint64_t want_free(const struct cache *c)
{
    struct statvfs vfs;
    uint64_t avail;

    if (c->min_free <= 0 || statvfs(c->path.dir, &vfs) < 0)
        return 0;
    avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    return avail < (uint64_t)c->min_free ? (uint64_t)c->min_free - avail : 0;
}

static void sweep(struct manager *m)
{
    struct cache *c = m->cache;
    struct {
        uint8_t (*md5)[CACHE_MD5_LEN];
        size_t n, cap;
    } g = {NULL, 0, 0};
    char path[PATH_MAX];

    cache_index_sweep(c->zone, pt_time_sec(), c->inactive, (uint64_t)c->max_size, want_free(c),
                      gather, &g);
    for (size_t i = 0; i < g.n; i++)
        unlink(cache_file_path(&c->path, g.md5[i], path, sizeof(path)));
    free(g.md5);
}

static void on_timer(struct pt_timer *t)
{
    struct manager *m = t->data;

    if (m->depth >= 0) {
        if (!load_some(m)) {
            pt_timer_add(&m->timer, 1);
            return;
        }
        cache_index_set_loaded(m->cache->zone);
        pt_log(PT_LOG_NOTICE, "cache \"%s\": %llu entries loaded from \"%s\"%s", m->cache->name,
               (unsigned long long)m->loaded, m->cache->path.dir,
               m->removed ? " (unsound and abandoned files removed)" : "");
    }
    sweep(m);
    pt_timer_add(&m->timer, SWEEP_MS);
}

int cache_helper_init(struct pt_cycle *cycle)
{
    struct cache_main_conf *mc = pt_cycle_main_conf(cycle, pt_cache_module);

    for (struct cache *c = mc ? mc->caches : NULL; c; c = c->next) {
        struct manager *m = calloc(1, sizeof(*m));
        if (m == NULL)
            return PT_ERROR;
        m->cache = c;
        m->timer.handler = on_timer;
        m->timer.data = m;
        m->depth = -1;
        snprintf(m->path, sizeof(m->path), "%s", c->path.dir);
        m->dirs[0] = opendir(c->path.dir);
        if (m->dirs[0]) {
            m->depth = 0;
            m->len[0] = strlen(m->path);
        } else {
            pt_log(PT_LOG_CRIT, "cache \"%s\": cannot open \"%s\": %m", c->name, c->path.dir);
        }
        pt_timer_add(&m->timer, 1);
    }
    return PT_OK;
}
