/*
 * index.h: a cache's index, in its shared-memory zone (keys_zone=NAME:SIZE): one node per
 * key that every worker and the helper see, so that all of them serve one cache.
 *
 * A node is keyed by the MD5 of the cache key (its file's name, as nginx's) and holds the
 * key itself (for purging by prefix and for the loader to check a file), what the index
 * needs to decide without opening a file (freshness, the stale windows, whether a file is
 * complete), the lock of the key's update (proxy_cache_lock and the one refresh of a
 * stale entry), use counts (proxy_cache_min_uses), the last use (inactive=) and its place
 * in the LRU, and optionally a copy of a small entry (the memory tier).
 *
 * A key whose response varies (Vary) has a main node that holds the Vary field names and
 * no file; each variant is a node of its own, keyed by the MD5 of the key and the
 * request's values of those fields.
 *
 * Every function takes the zone's lock (the slab pool's) for the time of one operation and
 * copies what a caller needs out of shared memory: a node may change or go as soon as the
 * lock is released.  Times are wall-clock seconds (they survive a restart in the files)
 * except the lock's deadline, in milliseconds of CLOCK_MONOTONIC, which every process of
 * the machine shares.
 */
#ifndef PT_CACHE_INDEX_H
#define PT_CACHE_INDEX_H

#include <stdint.h>
#include <sys/types.h>

#include "core/pt.h"
#include "core/shm.h"

#define CACHE_MD5_LEN  16
#define CACHE_VARY_MAX 256 /* bytes of Vary field names a main node keeps */

/* Node flags. */
#define CACHE_F_VARY            0x01u /* a main node: the response varies; no file of its own */
#define CACHE_F_MUST_REVALIDATE 0x02u /* never served stale (must-revalidate, no-cache ...) */

/* What a stored response tells the index of itself. */
struct cache_meta {
    int64_t valid;    /* fresh until (s) */
    int64_t swr, sie; /* stale-while-revalidate, stale-if-error: seconds after <valid> */
    uint64_t fs_size; /* bytes of its file */
    uint32_t flags;   /* CACHE_F_* */
};

/* A node as one lookup saw it. */
struct cache_view {
    int exists;    /* a complete file (or memory copy) is there */
    uint32_t uses; /* lookups counted since the node was made */
    uint32_t gen;  /* changes each time a response is published for the key */
    struct cache_meta meta;
    int updating;              /* someone holds the key's update lock (not expired) */
    int mine;                  /* ... and it is this process, for this caller's ticket */
    int64_t lock_until;        /* when that lock expires (ms, monotonic) */
    char vary[CACHE_VARY_MAX]; /* a main node's Vary names, NUL-terminated */
    /* The memory tier's copy (the whole stored file), copied out into the caller's buffer
     * when it had room; mem_len 0: none. */
    uint32_t mem_len;
};

/* The zone's counters, for the status page. */
struct cache_stats {
    uint64_t entries, bytes, mem_entries, mem_bytes;
    uint64_t hits, misses, stale, updating, revalidated, bypass, expired;
    uint64_t evicted, stored, store_failed;
};

enum cache_stat {
    CACHE_STAT_HIT,
    CACHE_STAT_MISS,
    CACHE_STAT_STALE,
    CACHE_STAT_UPDATING,
    CACHE_STAT_REVALIDATED,
    CACHE_STAT_BYPASS,
    CACHE_STAT_EXPIRED,
    CACHE_STAT_STORED,
    CACHE_STAT_STORE_FAILED,
    CACHE_NSTATS
};

/* Formats a fresh zone's index (<reused> 0) or checks an inherited one; the init callback
 * of the cache's zone.  PT_OK or PT_ERROR. */
int cache_index_init(struct pt_shm_zone *zone, int reused);

/* Looks up <md5> in <zone>: fills *<v> and returns 1 when the node exists, 0 when not.
 * With <count>, a missing node is created (holding <key>/<key_len>), the node's use is
 * counted and it becomes the most recently used.  <mem>/<mem_room>: where to copy the
 * memory tier's copy (NULL: do not copy).  <ticket> identifies the caller's lock (see
 * cache_index_lock).  Returns -1 when the zone is full even after evicting. */
int cache_index_lookup(struct pt_shm_zone *zone, const uint8_t *md5, const char *key,
                       size_t key_len, int count, void *mem, size_t mem_room, uint64_t ticket,
                       struct cache_view *v);

/* Takes the update lock of <md5> for <ticket> (a value unique to the caller among all
 * processes: pid and a counter) until <age_ms> from now, unless another holder's lock is
 * still live.  Returns 1 when taken (or already held by <ticket>), 0 when another holds
 * it (*<until> set to when that lock expires), -1 when the node is gone. */
int cache_index_lock(struct pt_shm_zone *zone, const uint8_t *md5, uint64_t ticket, int64_t age_ms,
                     int64_t *until);

/* Releases <ticket>'s lock of <md5>, if it still holds it. */
void cache_index_unlock(struct pt_shm_zone *zone, const uint8_t *md5, uint64_t ticket);

/* Publishes a complete entry for <md5>: its <meta>, the Vary names <vary> (main nodes;
 * NULL: none), and a memory-tier copy <mem>/<mem_len> (NULL: none; dropped when the zone
 * has no room for it).  Creates the node when needed, releases <ticket>'s lock, counts the
 * size.  Returns PT_OK, or PT_ERROR when the zone is full. */
int cache_index_publish(struct pt_shm_zone *zone, const uint8_t *md5, const char *key,
                        size_t key_len, const struct cache_meta *meta, const char *vary,
                        const void *mem, uint32_t mem_len, uint64_t ticket);

/* Refreshes the freshness of <md5>'s entry (a revalidation's 304): <valid>, <swr>, <sie>. */
void cache_index_refresh(struct pt_shm_zone *zone, const uint8_t *md5, int64_t valid, int64_t swr,
                         int64_t sie);

/* Removes <md5>'s node.  Returns 1 when it had a file (the caller unlinks it), 0 when it
 * had none, -1 when there was no node. */
int cache_index_remove(struct pt_shm_zone *zone, const uint8_t *md5);

/* Removes the nodes whose key starts with <prefix>/<len> (every node for len 0; with
 * <exact>, whose key is <prefix>: the key's main node and its variants), calling
 * <fn>(<arg>, md5) for each that had a file, outside nothing: under the lock, so <fn> must
 * be quick (record the name; unlink later).  Returns how many nodes with an entry went. */
uint64_t cache_index_purge(struct pt_shm_zone *zone, const char *prefix, size_t len, int exact,
                           void (*fn)(void *arg, const uint8_t *md5), void *arg);

/* The helper's sweep: removes nodes unused for <inactive> seconds (now: <now>), then the
 * least recently used ones while the files take more than <max_size> bytes (0: no limit)
 * or until <want_free> bytes went (min_free), calling <fn> for each that had a file.
 * Nodes whose update is locked are left alone.  Returns how many nodes went. */
uint64_t cache_index_sweep(struct pt_shm_zone *zone, int64_t now, int64_t inactive,
                           uint64_t max_size, uint64_t want_free,
                           void (*fn)(void *arg, const uint8_t *md5), void *arg);

/* The loader's insert: a file found on disk for <md5>/<key> with <meta>, last used at
 * <accessed> (or, with CACHE_F_VARY in meta->flags, the main node of a varying key, with
 * its Vary names <vary>).  Does nothing when the key has a node already (workers came
 * first).  Returns 1 when it was inserted, 0 when the key was there, PT_ERROR when the
 * zone is full. */
int cache_index_load(struct pt_shm_zone *zone, const uint8_t *md5, const char *key, size_t key_len,
                     const struct cache_meta *meta, const char *vary, int64_t accessed);

/* Marks the loader's work done (cache_index_loaded() then returns 1). */
void cache_index_set_loaded(struct pt_shm_zone *zone);
int cache_index_loaded(struct pt_shm_zone *zone);

/* Counts one event <what> (relaxed atomics: no lock). */
void cache_index_count(struct pt_shm_zone *zone, enum cache_stat what);

/* Copies the zone's counters. */
void cache_index_stats(struct pt_shm_zone *zone, struct cache_stats *st);

#endif
