/*
 * index.c: a cache's index in its shared-memory zone (see index.h): a hash table of nodes
 * keyed by MD5, chained through offsets, and one LRU list, all under the slab pool's lock.
 */
#include "modules/cache/index.h"

#include <string.h>

#include "core/shmtx.h"
#include "core/slab.h"
#include "core/times.h"

#define INDEX_MAGIC 0x70744358u /* "ptCX" */
#define EVICT_TRIES 16          /* LRU nodes looked at to make room for one allocation */

struct node {
    uint8_t md5[CACHE_MD5_LEN];
    uint64_t next;               /* the hash chain's next node */
    uint64_t lru_prev, lru_next; /* prev: used more recently */
    uint64_t mem;                /* the memory tier's copy; 0: none */
    uint64_t vary;               /* a main node's Vary names (not NUL-terminated); 0: none */
    struct cache_meta meta;
    int64_t accessed;   /* last use (s) */
    int64_t lock_until; /* ms, monotonic; 0: not locked */
    uint64_t lock_ticket;
    uint32_t uses, gen, mem_len;
    uint16_t key_len, vary_len;
    uint8_t exists;
    char key[];
};

struct root {
    uint32_t magic, nbuckets;
    uint64_t buckets; /* uint64_t[nbuckets]: the chains' first nodes */
    uint64_t lru_head, lru_tail;
    uint64_t nodes, entries, bytes, mem_entries, mem_bytes, evicted;
    uint32_t loaded;
    uint64_t counters[CACHE_NSTATS];
};

/* Every function below runs with the zone's lock held, except where it says it takes it. */

static struct root *root_of(struct pt_shm_zone *z)
{
    return pt_shm_root(z);
}

static struct node *at(struct pt_shm_zone *z, uint64_t off)
{
    return off ? pt_shm_ptr(z, off) : NULL;
}

static uint64_t *bucket(struct pt_shm_zone *z, struct root *rt, const uint8_t *md5)
{
    uint32_t h;

    memcpy(&h, md5, sizeof(h)); /* MD5 spreads its bits: any four of them are a hash */
    return (uint64_t *)pt_shm_ptr(z, rt->buckets) + (h & (rt->nbuckets - 1));
}

static struct node *find(struct pt_shm_zone *z, struct root *rt, const uint8_t *md5)
{
    for (struct node *n = at(z, *bucket(z, rt, md5)); n; n = at(z, n->next))
        if (memcmp(n->md5, md5, CACHE_MD5_LEN) == 0)
            return n;
    return NULL;
}

static void lru_unlink(struct pt_shm_zone *z, struct root *rt, struct node *n)
{
    struct node *p = at(z, n->lru_prev), *q = at(z, n->lru_next);

    if (p)
        p->lru_next = n->lru_next;
    else
        rt->lru_head = n->lru_next;
    if (q)
        q->lru_prev = n->lru_prev;
    else
        rt->lru_tail = n->lru_prev;
    n->lru_prev = n->lru_next = 0;
}

static void lru_front(struct pt_shm_zone *z, struct root *rt, struct node *n)
{
    uint64_t off = pt_shm_off(z, n);
    struct node *h = at(z, rt->lru_head);

    n->lru_prev = 0;
    n->lru_next = rt->lru_head;
    if (h)
        h->lru_prev = off;
    rt->lru_head = off;
    if (rt->lru_tail == 0)
        rt->lru_tail = off;
}

static void drop_mem(struct pt_shm_zone *z, struct root *rt, struct node *n)
{
    if (n->mem == 0)
        return;
    pt_slab_free_locked(z->pool, pt_shm_ptr(z, n->mem));
    rt->mem_entries--;
    rt->mem_bytes -= n->mem_len;
    n->mem = 0;
    n->mem_len = 0;
}

/* Forgets what <n> stored (its size, its memory copy, its Vary names): its file is the
 * caller's to unlink. */
static void drop_entry(struct pt_shm_zone *z, struct root *rt, struct node *n)
{
    drop_mem(z, rt, n);
    if (n->vary)
        pt_slab_free_locked(z->pool, pt_shm_ptr(z, n->vary));
    n->vary = 0;
    n->vary_len = 0;
    if (n->exists) {
        rt->entries--;
        rt->bytes -= n->meta.fs_size;
    }
    n->exists = 0;
}

static void unlink_node(struct pt_shm_zone *z, struct root *rt, struct node *n)
{
    uint64_t *pp = bucket(z, rt, n->md5), off = pt_shm_off(z, n);

    while (*pp && *pp != off)
        pp = &at(z, *pp)->next;
    if (*pp)
        *pp = n->next;
    lru_unlink(z, rt, n);
    drop_entry(z, rt, n);
    rt->nodes--;
    pt_slab_free_locked(z->pool, n);
}

static int locked_by_other(const struct node *n, uint64_t ticket, int64_t now)
{
    return n->lock_until > now && n->lock_ticket != ticket;
}

/* Makes room for an allocation: frees memory copies from the least recently used end,
 * then nodes that hold no file and no lock (a file's node goes only with its file, which
 * the helper's sweep removes).  Returns whether something was freed. */
static int make_room(struct pt_shm_zone *z, struct root *rt)
{
    int64_t now = (int64_t)pt_now_ms();
    struct node *n = at(z, rt->lru_tail);

    for (int i = 0; n && i < EVICT_TRIES; i++) {
        struct node *prev = at(z, n->lru_prev);
        if (n->mem) {
            drop_mem(z, rt, n);
            return 1;
        }
        if (!n->exists && !(n->meta.flags & CACHE_F_VARY) && n->lock_until <= now) {
            unlink_node(z, rt, n);
            rt->evicted++;
            return 1;
        }
        n = prev;
    }
    return 0;
}

static void *alloc(struct pt_shm_zone *z, struct root *rt, size_t size)
{
    void *p;

    while ((p = pt_slab_alloc_locked(z->pool, size)) == NULL)
        if (!make_room(z, rt))
            return NULL;
    return p;
}

static struct node *create(struct pt_shm_zone *z, struct root *rt, const uint8_t *md5,
                           const char *key, size_t key_len)
{
    struct node *n;
    uint64_t *b;

    key_len = pt_min(key_len, UINT16_MAX);
    n = alloc(z, rt, sizeof(*n) + key_len);
    if (n == NULL)
        return NULL;
    memcpy(n->md5, md5, CACHE_MD5_LEN);
    memcpy(n->key, key, key_len);
    n->key_len = (uint16_t)key_len;
    b = bucket(z, rt, md5);
    n->next = *b;
    *b = pt_shm_off(z, n);
    lru_front(z, rt, n);
    rt->nodes++;
    return n;
}

/* Takes the zone's lock; NULL when the zone is not an index (or the lock is lost). */
static struct root *lock(struct pt_shm_zone *z)
{
    struct root *rt = root_of(z);

    if (rt == NULL || rt->magic != INDEX_MAGIC)
        return NULL;
    /* A process that died holding the lock may have left a list half linked; the window
     * is a few stores wide, and nginx's cache takes the same risk. */
    if (pt_shmtx_lock(pt_slab_lock(z->pool)) == PT_ERROR)
        return NULL;
    return rt;
}

static void unlock(struct pt_shm_zone *z)
{
    pt_shmtx_unlock(pt_slab_lock(z->pool));
}

int cache_index_init(struct pt_shm_zone *zone, int reused)
{
    struct root *rt = reused ? root_of(zone) : NULL;
    uint32_t nb = 256;

    if (rt && rt->magic == INDEX_MAGIC)
        return PT_OK;
    /* A bucket per 2 KiB of zone: chains stay short for nodes of a few hundred bytes. */
    while ((size_t)nb * 2 * 2048 <= zone->size && nb < (1u << 24))
        nb *= 2;
    rt = pt_slab_alloc(zone->pool, sizeof(*rt));
    if (rt == NULL)
        return PT_ERROR;
    void *b = pt_slab_alloc(zone->pool, (size_t)nb * sizeof(uint64_t));
    if (b == NULL)
        return PT_ERROR;
    rt->nbuckets = nb;
    rt->buckets = pt_shm_off(zone, b);
    rt->magic = INDEX_MAGIC;
    pt_shm_set_root(zone, rt);
    return PT_OK;
}

static void view_of(struct pt_shm_zone *z, const struct node *n, uint64_t ticket, void *mem,
                    size_t mem_room, struct cache_view *v)
{
    int64_t now = (int64_t)pt_now_ms();

    v->exists = n->exists;
    v->uses = n->uses;
    v->gen = n->gen;
    v->meta = n->meta;
    v->updating = n->lock_until > now;
    v->mine = v->updating && n->lock_ticket == ticket;
    v->lock_until = n->lock_until;
    if (n->vary)
        memcpy(v->vary, pt_shm_ptr(z, n->vary), n->vary_len);
    v->vary[n->vary_len] = '\0';
    v->mem_len = 0;
    if (mem && n->mem && n->mem_len <= mem_room) {
        memcpy(mem, pt_shm_ptr(z, n->mem), n->mem_len);
        v->mem_len = n->mem_len;
    }
}

int cache_index_lookup(struct pt_shm_zone *zone, const uint8_t *md5, const char *key,
                       size_t key_len, int count, void *mem, size_t mem_room, uint64_t ticket,
                       struct cache_view *v)
{
    struct root *rt = lock(zone);
    struct node *n;

    memset(v, 0, sizeof(*v));
    if (rt == NULL)
        return -1;
    n = find(zone, rt, md5);
    if (n == NULL && count)
        n = create(zone, rt, md5, key, key_len);
    if (n == NULL) {
        unlock(zone);
        return count ? -1 : 0;
    }
    if (count) {
        n->uses++;
        n->accessed = pt_time_sec();
        lru_unlink(zone, rt, n);
        lru_front(zone, rt, n);
    }
    view_of(zone, n, ticket, mem, mem_room, v);
    unlock(zone);
    return 1;
}

int cache_index_lock(struct pt_shm_zone *zone, const uint8_t *md5, uint64_t ticket, int64_t age_ms,
                     int64_t *until)
{
    struct root *rt = lock(zone);
    int64_t now = (int64_t)pt_now_ms();
    struct node *n;
    int rc;

    if (rt == NULL)
        return -1;
    n = find(zone, rt, md5);
    if (n == NULL) {
        rc = -1;
    } else if (locked_by_other(n, ticket, now)) {
        *until = n->lock_until;
        rc = 0;
    } else {
        n->lock_ticket = ticket;
        n->lock_until = now + age_ms;
        rc = 1;
    }
    unlock(zone);
    return rc;
}

void cache_index_unlock(struct pt_shm_zone *zone, const uint8_t *md5, uint64_t ticket)
{
    struct root *rt = lock(zone);
    struct node *n;

    if (rt == NULL)
        return;
    n = find(zone, rt, md5);
    if (n && n->lock_ticket == ticket)
        n->lock_until = 0;
    unlock(zone);
}

/* A copy of the Vary names <vary> in the zone, or 0 (none, or no room).  Allocated before
 * the node is looked at: making room may evict nodes without a file. */
static uint64_t copy_vary(struct pt_shm_zone *z, struct root *rt, const char *vary, uint16_t *len)
{
    size_t n = vary ? pt_min(strlen(vary), CACHE_VARY_MAX - 1) : 0;
    char *p = n ? alloc(z, rt, n) : NULL;

    *len = p ? (uint16_t)n : 0;
    if (p == NULL)
        return 0;
    memcpy(p, vary, n);
    return pt_shm_off(z, p);
}

int cache_index_publish(struct pt_shm_zone *zone, const uint8_t *md5, const char *key,
                        size_t key_len, const struct cache_meta *meta, const char *vary,
                        const void *mem, uint32_t mem_len, uint64_t ticket)
{
    struct root *rt = lock(zone);
    struct node *n;
    uint64_t vary_off;
    uint16_t vary_len;
    void *copy;

    if (rt == NULL)
        return PT_ERROR;
    vary_off = copy_vary(zone, rt, vary, &vary_len);
    n = find(zone, rt, md5);
    if (n == NULL)
        n = create(zone, rt, md5, key, key_len);
    if (n == NULL || (vary && *vary && vary_off == 0)) {
        if (vary_off)
            pt_slab_free_locked(zone->pool, pt_shm_ptr(zone, vary_off));
        unlock(zone);
        return PT_ERROR;
    }
    drop_entry(zone, rt, n);
    n->vary = vary_off;
    n->vary_len = vary_len;
    n->meta = *meta;
    n->gen++;
    n->accessed = pt_time_sec();
    if (n->lock_ticket == ticket)
        n->lock_until = 0;
    if (!(meta->flags & CACHE_F_VARY)) {
        n->exists = 1;
        rt->entries++;
        rt->bytes += meta->fs_size;
    }
    /* The memory copy is a bonus: no room for it evicts nothing. */
    copy = mem && mem_len ? pt_slab_alloc_locked(zone->pool, mem_len) : NULL;
    if (copy) {
        memcpy(copy, mem, mem_len);
        n->mem = pt_shm_off(zone, copy);
        n->mem_len = mem_len;
        rt->mem_entries++;
        rt->mem_bytes += mem_len;
    }
    unlock(zone);
    return PT_OK;
}

void cache_index_refresh(struct pt_shm_zone *zone, const uint8_t *md5, int64_t valid, int64_t swr,
                         int64_t sie)
{
    struct root *rt = lock(zone);
    struct node *n;

    if (rt == NULL)
        return;
    n = find(zone, rt, md5);
    if (n) {
        n->meta.valid = valid;
        n->meta.swr = swr;
        n->meta.sie = sie;
    }
    unlock(zone);
}

int cache_index_remove(struct pt_shm_zone *zone, const uint8_t *md5)
{
    struct root *rt = lock(zone);
    struct node *n;
    int had;

    if (rt == NULL)
        return -1;
    n = find(zone, rt, md5);
    if (n == NULL) {
        unlock(zone);
        return -1;
    }
    had = n->exists;
    unlink_node(zone, rt, n);
    unlock(zone);
    return had;
}

uint64_t cache_index_purge(struct pt_shm_zone *zone, const char *prefix, size_t len, int exact,
                           void (*fn)(void *arg, const uint8_t *md5), void *arg)
{
    struct root *rt = lock(zone);
    uint64_t gone = 0;

    if (rt == NULL)
        return 0;
    for (struct node *n = at(zone, rt->lru_head), *next; n; n = next) {
        next = at(zone, n->lru_next);
        if (n->key_len < len || (exact && n->key_len != len) || memcmp(n->key, prefix, len) != 0)
            continue;
        /* A main node of varying responses is no entry of its own: its variants count. */
        if (n->exists) {
            gone++;
            fn(arg, n->md5);
        }
        unlink_node(zone, rt, n);
    }
    unlock(zone);
    return gone;
}

/* Whether the sweep should remove <n>: unused too long, or the files or the zone want
 * room.  <freed>: file bytes removed so far in this sweep. */
static int sweep_wants(struct pt_shm_zone *z, struct root *rt, const struct node *n, int64_t now,
                       int64_t inactive, uint64_t max_size, uint64_t want_free, uint64_t freed)
{
    size_t used, free_bytes;

    if (n->accessed + inactive <= now)
        return 1;
    if (max_size && rt->bytes > max_size)
        return 1;
    /* A node without a file frees nothing, but stopping at it would leave every file
     * behind it on a full disk. */
    if (want_free && freed < want_free)
        return 1;
    /* Keep a twentieth of the zone free, so that lookups find room for new keys. */
    pt_slab_stats_locked(z->pool, &used, &free_bytes);
    return free_bytes < z->size / 20;
}

uint64_t cache_index_sweep(struct pt_shm_zone *zone, int64_t now, int64_t inactive,
                           uint64_t max_size, uint64_t want_free,
                           void (*fn)(void *arg, const uint8_t *md5), void *arg)
{
    struct root *rt = lock(zone);
    int64_t mono = (int64_t)pt_now_ms();
    uint64_t gone = 0, freed = 0;

    if (rt == NULL)
        return 0;
    /* From the least recently used end: the first node that needs to stay ends the size
     * and room checks, and a node used within <inactive> means the rest are too. */
    for (struct node *n = at(zone, rt->lru_tail), *prev; n; n = prev) {
        prev = at(zone, n->lru_prev);
        if (n->lock_until > mono)
            continue;
        if (!sweep_wants(zone, rt, n, now, inactive, max_size, want_free, freed))
            break;
        if (n->exists) {
            fn(arg, n->md5);
            freed += n->meta.fs_size;
        }
        unlink_node(zone, rt, n);
        rt->evicted++;
        gone++;
    }
    unlock(zone);
    return gone;
}

int cache_index_load(struct pt_shm_zone *zone, const uint8_t *md5, const char *key, size_t key_len,
                     const struct cache_meta *meta, const char *vary, int64_t accessed)
{
    struct root *rt = lock(zone);
    struct node *n;
    uint64_t vary_off = 0;
    uint16_t vary_len = 0;

    if (rt == NULL)
        return PT_ERROR;
    if (find(zone, rt, md5)) {
        unlock(zone);
        return 0;
    }
    vary_off = copy_vary(zone, rt, vary, &vary_len);
    n = create(zone, rt, md5, key, key_len);
    if (n == NULL) {
        if (vary_off)
            pt_slab_free_locked(zone->pool, pt_shm_ptr(zone, vary_off));
        unlock(zone);
        return PT_ERROR;
    }
    n->meta = *meta;
    n->vary = vary_off;
    n->vary_len = vary_len;
    n->accessed = accessed;
    n->gen = 1;
    /* Loaded entries are older than any a worker used: to the LRU's far end. */
    lru_unlink(zone, rt, n);
    n->lru_prev = rt->lru_tail;
    if (rt->lru_tail)
        at(zone, rt->lru_tail)->lru_next = pt_shm_off(zone, n);
    rt->lru_tail = pt_shm_off(zone, n);
    if (rt->lru_head == 0)
        rt->lru_head = rt->lru_tail;
    if (!(meta->flags & CACHE_F_VARY)) {
        n->exists = 1;
        rt->entries++;
        rt->bytes += meta->fs_size;
    }
    unlock(zone);
    return 1;
}

void cache_index_set_loaded(struct pt_shm_zone *zone)
{
    struct root *rt = root_of(zone);

    if (rt)
        __atomic_store_n(&rt->loaded, 1, __ATOMIC_RELEASE);
}

int cache_index_loaded(struct pt_shm_zone *zone)
{
    struct root *rt = root_of(zone);

    return rt && __atomic_load_n(&rt->loaded, __ATOMIC_ACQUIRE);
}

void cache_index_count(struct pt_shm_zone *zone, enum cache_stat what)
{
    struct root *rt = root_of(zone);

    if (rt && what < CACHE_NSTATS)
        __atomic_add_fetch(&rt->counters[what], 1, __ATOMIC_RELAXED);
}

void cache_index_stats(struct pt_shm_zone *zone, struct cache_stats *st)
{
    struct root *rt = lock(zone);
    uint64_t c[CACHE_NSTATS];

    memset(st, 0, sizeof(*st));
    if (rt == NULL)
        return;
    st->entries = rt->entries;
    st->bytes = rt->bytes;
    st->mem_entries = rt->mem_entries;
    st->mem_bytes = rt->mem_bytes;
    st->evicted = rt->evicted;
    unlock(zone);
    for (int i = 0; i < CACHE_NSTATS; i++)
        c[i] = __atomic_load_n(&rt->counters[i], __ATOMIC_RELAXED);
    st->hits = c[CACHE_STAT_HIT];
    st->misses = c[CACHE_STAT_MISS];
    st->stale = c[CACHE_STAT_STALE];
    st->updating = c[CACHE_STAT_UPDATING];
    st->revalidated = c[CACHE_STAT_REVALIDATED];
    st->bypass = c[CACHE_STAT_BYPASS];
    st->expired = c[CACHE_STAT_EXPIRED];
    st->stored = c[CACHE_STAT_STORED];
    st->store_failed = c[CACHE_STAT_STORE_FAILED];
}
