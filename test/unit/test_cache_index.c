/*
 * test_cache_index.c: a cache's index in its shared-memory zone (modules/cache/index.c):
 * lookups and use counts, publishing, the memory tier's copy, the update lock, refresh,
 * remove, purge, the helper's sweep, the loader's insert, main nodes of varying keys, a
 * zone that fills up, the counters, and an index found again in a reused zone.
 *
 * needs modules: cache
 *
 * Test key <i> is "http://t/<i>", and its MD5 any sixteen bytes that no other key has (the
 * index does not compute them): <i> in the first four and the last four, 0x5a between.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "core/shm.h"
#include "core/slab.h"
#include "core/times.h"
#include "modules/cache/index.h"

#define ZONE_SIZE  (1024 * 1024) /* room to spare: no test but the filling one runs short */
#define SMALL_ZONE (64 * 1024)
#define HOUR       3600

#define T1 ((uint64_t)1001) /* two callers' lock tickets */
#define T2 ((uint64_t)1002)

static struct pt_shm_zone zone;

/* What a sweep or purge handed to its callback, in order. */
struct removed {
    int n;
    uint8_t md5[16][CACHE_MD5_LEN];
};

static void record(void *arg, const uint8_t *md5)
{
    struct removed *r = arg;

    ck_assert_int_lt(r->n, 16);
    memcpy(r->md5[r->n++], md5, CACHE_MD5_LEN);
}

/* Creates the index zone of <size> bytes and reads the clocks once. */
static void create_zone(size_t size)
{
    memset(&zone, 0, sizeof(zone));
    strcpy(zone.name, "cache_test");
    zone.size = size;
    zone.version = 1;
    zone.init = cache_index_init;
    ck_assert_int_eq(pt_shm_zone_create(&zone), PT_OK);
    pt_time_update();
}

static void setup(void)
{
    create_zone(ZONE_SIZE);
}

static void teardown(void)
{
    pt_shm_zone_destroy(&zone);
}

/* The MD5 of test key <i>, in <md5>. */
static const uint8_t *md5_fill(int i, uint8_t *md5)
{
    uint32_t u = (uint32_t)i;

    memset(md5, 0x5a, CACHE_MD5_LEN);
    memcpy(md5, &u, sizeof(u));
    memcpy(md5 + CACHE_MD5_LEN - sizeof(u), &u, sizeof(u));
    return md5;
}

#define MD5(i) md5_fill((i), (uint8_t[CACHE_MD5_LEN]){0})

/* The text of test key <i>, in one of four buffers used in turn (the index copies it). */
static const char *key_of(int i)
{
    static char buf[4][32];
    static int next;
    char *k = buf[next++ % 4];

    snprintf(k, sizeof(buf[0]), "http://t/%d", i);
    return k;
}

/* Looks up test key <i>, counting the use, with no memory buffer and ticket T1. */
static int lookup_counted(int i, struct cache_view *v)
{
    return cache_index_lookup(&zone, MD5(i), key_of(i), strlen(key_of(i)), 1, NULL, 0, T1, v);
}

/* Looks up test key <i> without counting (and so without creating it). */
static int peek(int i, struct cache_view *v)
{
    return cache_index_lookup(&zone, MD5(i), key_of(i), strlen(key_of(i)), 0, NULL, 0, T1, v);
}

static struct cache_meta meta_of(uint64_t fs_size)
{
    struct cache_meta m = {.valid = 2000000000, .swr = 10, .sie = 20, .fs_size = fs_size};

    return m;
}

/* Publishes a file of <fs_size> bytes for test key <i>, with no memory copy. */
static void publish(int i, uint64_t fs_size)
{
    struct cache_meta m = meta_of(fs_size);

    ck_assert_int_eq(
        cache_index_publish(&zone, MD5(i), key_of(i), strlen(key_of(i)), &m, NULL, NULL, 0, T1),
        PT_OK);
}

/* Publishes an entry under the key text <key> (several MD5s may share one: variants). */
static void publish_key(int i, const char *key, uint32_t flags, const char *vary)
{
    struct cache_meta m = meta_of(flags & CACHE_F_VARY ? 0 : 100);

    m.flags = flags;
    ck_assert_int_eq(cache_index_publish(&zone, MD5(i), key, strlen(key), &m, vary, NULL, 0, T1),
                     PT_OK);
}

static struct cache_stats stats(void)
{
    struct cache_stats st;

    cache_index_stats(&zone, &st);
    return st;
}

static void assert_removed(const struct removed *r, int at, int i)
{
    ck_assert_mem_eq(r->md5[at], MD5(i), CACHE_MD5_LEN);
}

/* Lookups */

START_TEST(counted_lookup_creates_the_node_and_counts_each_use)
{
    struct cache_view v;

    ck_assert_int_eq(lookup_counted(1, &v), 1);
    ck_assert_uint_eq(v.uses, 1);
    ck_assert_int_eq(v.exists, 0);
    ck_assert_int_eq(lookup_counted(1, &v), 1);
    ck_assert_uint_eq(v.uses, 2);
    ck_assert_int_eq(lookup_counted(1, &v), 1);
    ck_assert_uint_eq(v.uses, 3);
}
END_TEST

START_TEST(uncounted_lookup_of_a_missing_key_creates_nothing)
{
    struct cache_view v;

    ck_assert_int_eq(peek(1, &v), 0);
    ck_assert_int_eq(peek(1, &v), 0);
    ck_assert_int_eq(v.exists, 0);
}
END_TEST

START_TEST(uncounted_lookup_does_not_count_a_use)
{
    struct cache_view v;

    lookup_counted(1, &v);
    ck_assert_int_eq(peek(1, &v), 1);
    ck_assert_uint_eq(v.uses, 1);
}
END_TEST

/* Publishing */

START_TEST(publish_makes_the_entry_exist_with_its_meta_and_a_new_gen)
{
    struct cache_meta m = {.valid = 1234, .swr = 5, .sie = 6, .fs_size = 700};
    struct cache_view v;
    struct cache_stats st;
    uint32_t gen;

    lookup_counted(1, &v);
    gen = v.gen;
    ck_assert_int_eq(
        cache_index_publish(&zone, MD5(1), key_of(1), strlen(key_of(1)), &m, NULL, NULL, 0, T1),
        PT_OK);
    ck_assert_int_eq(peek(1, &v), 1);
    ck_assert_int_eq(v.exists, 1);
    ck_assert_uint_eq(v.gen, gen + 1);
    ck_assert_int_eq(v.meta.valid, 1234);
    ck_assert_int_eq(v.meta.swr, 5);
    ck_assert_int_eq(v.meta.sie, 6);
    ck_assert_uint_eq(v.meta.fs_size, 700);
    ck_assert_uint_eq(v.meta.flags, 0);
    st = stats();
    ck_assert_uint_eq(st.entries, 1);
    ck_assert_uint_eq(st.bytes, 700);
}
END_TEST

START_TEST(publish_creates_a_node_never_looked_up)
{
    struct cache_view v;

    publish(1, 700);
    ck_assert_int_eq(peek(1, &v), 1);
    ck_assert_int_eq(v.exists, 1);
    ck_assert_uint_eq(v.gen, 1);
}
END_TEST

START_TEST(publishing_again_replaces_the_size_counted)
{
    struct cache_view v;
    struct cache_stats st;

    publish(1, 700);
    publish(2, 50);
    publish(1, 300);
    ck_assert_int_eq(peek(1, &v), 1);
    ck_assert_uint_eq(v.gen, 2);
    ck_assert_uint_eq(v.meta.fs_size, 300);
    st = stats();
    ck_assert_uint_eq(st.entries, 2);
    ck_assert_uint_eq(st.bytes, 350);
}
END_TEST

/* The memory tier */

START_TEST(lookup_copies_the_memory_copy_into_a_buffer_with_room)
{
    struct cache_meta m = meta_of(11);
    struct cache_view v;
    struct cache_stats st;
    char buf[11];

    ck_assert_int_eq(cache_index_publish(&zone, MD5(1), key_of(1), strlen(key_of(1)), &m, NULL,
                                         "hello world", 11, T1),
                     PT_OK);
    memset(buf, '.', sizeof(buf));
    ck_assert_int_eq(cache_index_lookup(&zone, MD5(1), key_of(1), strlen(key_of(1)), 1, buf,
                                        sizeof(buf), T1, &v),
                     1);
    ck_assert_uint_eq(v.mem_len, 11);
    ck_assert_mem_eq(buf, "hello world", 11);
    st = stats();
    ck_assert_uint_eq(st.mem_entries, 1);
    ck_assert_uint_eq(st.mem_bytes, 11);
}
END_TEST

START_TEST(lookup_copies_no_memory_copy_into_a_buffer_too_small)
{
    struct cache_meta m = meta_of(11);
    struct cache_view v;
    char buf[11];

    ck_assert_int_eq(cache_index_publish(&zone, MD5(1), key_of(1), strlen(key_of(1)), &m, NULL,
                                         "hello world", 11, T1),
                     PT_OK);
    memset(buf, '.', sizeof(buf));
    ck_assert_int_eq(
        cache_index_lookup(&zone, MD5(1), key_of(1), strlen(key_of(1)), 1, buf, 10, T1, &v), 1);
    ck_assert_uint_eq(v.mem_len, 0);
    ck_assert_mem_eq(buf, "...........", 11);
}
END_TEST

START_TEST(publishing_again_without_a_copy_drops_the_old_copy)
{
    struct cache_meta m = meta_of(11);
    struct cache_view v;
    struct cache_stats st;
    char buf[64];

    ck_assert_int_eq(cache_index_publish(&zone, MD5(1), key_of(1), strlen(key_of(1)), &m, NULL,
                                         "hello world", 11, T1),
                     PT_OK);
    publish(1, 11);
    cache_index_lookup(&zone, MD5(1), key_of(1), strlen(key_of(1)), 1, buf, sizeof(buf), T1, &v);
    ck_assert_uint_eq(v.mem_len, 0);
    st = stats();
    ck_assert_uint_eq(st.mem_entries, 0);
    ck_assert_uint_eq(st.mem_bytes, 0);
}
END_TEST

/* The update lock */

START_TEST(lock_goes_to_the_first_ticket)
{
    struct cache_view v;
    int64_t until = -1;

    lookup_counted(1, &v);
    ck_assert_int_eq(cache_index_lock(&zone, MD5(1), T1, 1000, &until), 1);
    ck_assert_int_eq(until, -1); /* set only when refused */
    ck_assert_int_eq(peek(1, &v), 1);
    ck_assert_int_eq(v.updating, 1);
    ck_assert_int_eq(v.mine, 1);
    ck_assert_int_eq(v.lock_until, (int64_t)pt_now_ms() + 1000);
}
END_TEST

START_TEST(lock_held_by_one_ticket_refuses_another_with_its_deadline)
{
    struct cache_view v;
    int64_t until = 0;

    lookup_counted(1, &v);
    cache_index_lock(&zone, MD5(1), T1, 1000, &until);
    ck_assert_int_eq(cache_index_lock(&zone, MD5(1), T2, 5000, &until), 0);
    ck_assert_int_eq(until, (int64_t)pt_now_ms() + 1000);
    /* A lookup by the other caller sees the lock, not as its own. */
    cache_index_lookup(&zone, MD5(1), key_of(1), strlen(key_of(1)), 0, NULL, 0, T2, &v);
    ck_assert_int_eq(v.updating, 1);
    ck_assert_int_eq(v.mine, 0);
}
END_TEST

START_TEST(lock_is_taken_again_by_its_holder)
{
    struct cache_view v;
    int64_t until = 0;

    lookup_counted(1, &v);
    ck_assert_int_eq(cache_index_lock(&zone, MD5(1), T1, 1000, &until), 1);
    ck_assert_int_eq(cache_index_lock(&zone, MD5(1), T1, 1000, &until), 1);
}
END_TEST

START_TEST(unlock_lets_another_ticket_take_the_lock)
{
    struct cache_view v;
    int64_t until = 0;

    lookup_counted(1, &v);
    cache_index_lock(&zone, MD5(1), T1, 1000, &until);
    cache_index_unlock(&zone, MD5(1), T1);
    ck_assert_int_eq(cache_index_lock(&zone, MD5(1), T2, 1000, &until), 1);
}
END_TEST

START_TEST(unlock_by_another_ticket_leaves_the_lock)
{
    struct cache_view v;
    int64_t until = 0;

    lookup_counted(1, &v);
    cache_index_lock(&zone, MD5(1), T1, 1000, &until);
    cache_index_unlock(&zone, MD5(1), T2);
    ck_assert_int_eq(cache_index_lock(&zone, MD5(1), T2, 1000, &until), 0);
}
END_TEST

START_TEST(expired_lock_goes_to_another_ticket)
{
    struct cache_view v;
    int64_t until = 0;

    lookup_counted(1, &v);
    cache_index_lock(&zone, MD5(1), T1, 5, &until);
    usleep(20 * 1000);
    pt_time_update();
    ck_assert_int_eq(cache_index_lock(&zone, MD5(1), T2, 1000, &until), 1);
    peek(1, &v);
    ck_assert_int_eq(v.lock_until, (int64_t)pt_now_ms() + 1000);
}
END_TEST

START_TEST(lock_of_a_missing_node_fails)
{
    int64_t until = 0;

    ck_assert_int_eq(cache_index_lock(&zone, MD5(1), T1, 1000, &until), -1);
}
END_TEST

START_TEST(publish_by_the_lock_holder_releases_the_lock)
{
    struct cache_view v;
    int64_t until = 0;

    lookup_counted(1, &v);
    cache_index_lock(&zone, MD5(1), T1, 1000, &until);
    publish(1, 100); /* with T1 */
    ck_assert_int_eq(peek(1, &v), 1);
    ck_assert_int_eq(v.updating, 0);
    ck_assert_int_eq(cache_index_lock(&zone, MD5(1), T2, 1000, &until), 1);
}
END_TEST

START_TEST(publish_by_another_ticket_leaves_the_lock)
{
    struct cache_view v;
    int64_t until = 0;

    lookup_counted(1, &v);
    cache_index_lock(&zone, MD5(1), T2, 1000, &until);
    publish(1, 100); /* with T1 */
    ck_assert_int_eq(cache_index_lock(&zone, MD5(1), T1, 1000, &until), 0);
}
END_TEST

/* Refresh and remove */

START_TEST(refresh_changes_the_freshness_only)
{
    struct cache_view v;

    publish(1, 700);
    cache_index_refresh(&zone, MD5(1), 5000, 30, 40);
    ck_assert_int_eq(peek(1, &v), 1);
    ck_assert_int_eq(v.meta.valid, 5000);
    ck_assert_int_eq(v.meta.swr, 30);
    ck_assert_int_eq(v.meta.sie, 40);
    ck_assert_uint_eq(v.meta.fs_size, 700);
    ck_assert_uint_eq(v.gen, 1);
}
END_TEST

START_TEST(remove_of_a_node_with_a_file_returns_1)
{
    struct cache_view v;
    struct cache_stats st;

    publish(1, 700);
    ck_assert_int_eq(cache_index_remove(&zone, MD5(1)), 1);
    ck_assert_int_eq(peek(1, &v), 0);
    st = stats();
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_uint_eq(st.bytes, 0);
}
END_TEST

START_TEST(remove_of_a_node_without_a_file_returns_0)
{
    struct cache_view v;

    lookup_counted(1, &v);
    ck_assert_int_eq(cache_index_remove(&zone, MD5(1)), 0);
    ck_assert_int_eq(peek(1, &v), 0);
}
END_TEST

START_TEST(remove_of_no_node_returns_minus_1)
{
    ck_assert_int_eq(cache_index_remove(&zone, MD5(1)), -1);
}
END_TEST

/* Purge */

START_TEST(purge_by_prefix_removes_the_matching_keys_only)
{
    struct removed r = {0};
    struct cache_view v;
    struct cache_stats st;

    publish_key(1, "http://a/1", 0, NULL);
    cache_index_lookup(&zone, MD5(2), "http://a/2", 10, 1, NULL, 0, T1, &v); /* no file */
    publish_key(3, "http://b/1", 0, NULL);
    ck_assert_uint_eq(cache_index_purge(&zone, "http://a/", 9, 0, record, &r), 1);
    ck_assert_int_eq(r.n, 1);
    assert_removed(&r, 0, 1);
    ck_assert_int_eq(cache_index_lookup(&zone, MD5(1), "", 0, 0, NULL, 0, T1, &v), 0);
    ck_assert_int_eq(cache_index_lookup(&zone, MD5(2), "", 0, 0, NULL, 0, T1, &v), 0);
    ck_assert_int_eq(cache_index_lookup(&zone, MD5(3), "", 0, 0, NULL, 0, T1, &v), 1);
    st = stats();
    ck_assert_uint_eq(st.entries, 1);
    ck_assert_uint_eq(st.bytes, 100);
}
END_TEST

START_TEST(purge_with_an_empty_prefix_removes_every_node)
{
    struct removed r = {0};
    struct cache_stats st;

    publish(1, 100);
    publish(2, 100);
    ck_assert_uint_eq(cache_index_purge(&zone, "", 0, 0, record, &r), 2);
    ck_assert_int_eq(r.n, 2);
    st = stats();
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_uint_eq(st.bytes, 0);
}
END_TEST

START_TEST(exact_purge_removes_the_main_node_and_variants_but_not_a_longer_key)
{
    struct removed r = {0};
    struct cache_view v;

    publish_key(1, "http://a/x", CACHE_F_VARY, "Accept-Encoding"); /* main node */
    publish_key(2, "http://a/x", 0, NULL);                         /* variant: gzip */
    publish_key(3, "http://a/x", 0, NULL);                         /* variant: identity */
    publish_key(4, "http://a/xy", 0, NULL);
    ck_assert_uint_eq(cache_index_purge(&zone, "http://a/x", 10, 1, record, &r), 2);
    ck_assert_int_eq(r.n, 2);
    ck_assert(memcmp(r.md5[0], MD5(2), CACHE_MD5_LEN) == 0 ||
              memcmp(r.md5[1], MD5(2), CACHE_MD5_LEN) == 0);
    ck_assert(memcmp(r.md5[0], MD5(3), CACHE_MD5_LEN) == 0 ||
              memcmp(r.md5[1], MD5(3), CACHE_MD5_LEN) == 0);
    ck_assert_int_eq(cache_index_lookup(&zone, MD5(1), "", 0, 0, NULL, 0, T1, &v), 0);
    ck_assert_int_eq(cache_index_lookup(&zone, MD5(2), "", 0, 0, NULL, 0, T1, &v), 0);
    ck_assert_int_eq(cache_index_lookup(&zone, MD5(3), "", 0, 0, NULL, 0, T1, &v), 0);
    ck_assert_int_eq(cache_index_lookup(&zone, MD5(4), "", 0, 0, NULL, 0, T1, &v), 1);
}
END_TEST

/* The helper's sweep */

START_TEST(sweep_removes_nodes_unused_for_inactive_seconds)
{
    struct cache_meta m = meta_of(100);
    int64_t now = pt_time_sec();
    struct removed r = {0};
    struct cache_view v;

    /* Test key 1 was last used two hours ago (the loader says when), key 2 just now. */
    ck_assert_int_eq(
        cache_index_load(&zone, MD5(1), key_of(1), strlen(key_of(1)), &m, NULL, now - 2 * HOUR), 1);
    publish(2, 100);
    ck_assert_uint_eq(cache_index_sweep(&zone, now, HOUR, 0, 0, record, &r), 1);
    ck_assert_int_eq(r.n, 1);
    assert_removed(&r, 0, 1);
    ck_assert_int_eq(peek(1, &v), 0);
    ck_assert_int_eq(peek(2, &v), 1);
}
END_TEST

START_TEST(sweep_removes_inactive_nodes_without_a_file_without_calling_fn)
{
    struct removed r = {0};
    struct cache_view v;

    lookup_counted(1, &v);
    ck_assert_uint_eq(cache_index_sweep(&zone, pt_time_sec() + HOUR, HOUR, 0, 0, record, &r), 1);
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(peek(1, &v), 0);
}
END_TEST

START_TEST(sweep_over_max_size_evicts_least_recently_used_until_under_it)
{
    struct removed r = {0};
    struct cache_view v;
    struct cache_stats st;

    for (int i = 1; i <= 4; i++)
        publish(i, 100);
    lookup_counted(1, &v);
    lookup_counted(2, &v);
    /* Most recently used first: 2, 1, 4, 3. */
    ck_assert_uint_eq(cache_index_sweep(&zone, pt_time_sec(), HOUR, 250, 0, record, &r), 2);
    ck_assert_int_eq(r.n, 2);
    assert_removed(&r, 0, 3);
    assert_removed(&r, 1, 4);
    ck_assert_int_eq(peek(1, &v), 1);
    ck_assert_int_eq(peek(2, &v), 1);
    st = stats();
    ck_assert_uint_eq(st.entries, 2);
    ck_assert_uint_eq(st.bytes, 200);
    ck_assert_uint_eq(st.evicted, 2);
}
END_TEST

START_TEST(sweep_under_max_size_removes_nothing)
{
    struct removed r = {0};

    for (int i = 1; i <= 4; i++)
        publish(i, 100);
    ck_assert_uint_eq(cache_index_sweep(&zone, pt_time_sec(), HOUR, 400, 0, record, &r), 0);
    ck_assert_int_eq(r.n, 0);
}
END_TEST

START_TEST(sweep_skips_a_locked_node)
{
    struct removed r = {0};
    struct cache_view v;
    int64_t until = 0;

    for (int i = 1; i <= 3; i++)
        publish(i, 100); /* least recently used first: 1, 2, 3 */
    ck_assert_int_eq(cache_index_lock(&zone, MD5(1), T2, 10000, &until), 1);
    ck_assert_uint_eq(cache_index_sweep(&zone, pt_time_sec(), HOUR, 250, 0, record, &r), 1);
    ck_assert_int_eq(r.n, 1);
    assert_removed(&r, 0, 2);
    ck_assert_int_eq(peek(1, &v), 1);
    ck_assert_int_eq(peek(3, &v), 1);
}
END_TEST

START_TEST(sweep_with_want_free_evicts_until_that_many_bytes_went)
{
    struct removed r = {0};
    struct cache_view v;

    for (int i = 1; i <= 3; i++)
        publish(i, 100); /* least recently used first: 1, 2, 3 */
    ck_assert_uint_eq(cache_index_sweep(&zone, pt_time_sec(), HOUR, 0, 150, record, &r), 2);
    ck_assert_int_eq(r.n, 2);
    assert_removed(&r, 0, 1);
    assert_removed(&r, 1, 2);
    ck_assert_int_eq(peek(3, &v), 1);
    ck_assert_uint_eq(stats().bytes, 100);
}
END_TEST

START_TEST(sweep_with_want_free_passes_a_node_without_a_file)
{
    struct removed r = {0};
    struct cache_view v;

    /* The least recently used node holds no file (a response never stored): it frees no
     * disk, and must not end the sweep either (whether it goes too is not the point, so the
     * count returned is not asserted). */
    lookup_counted(1, &v);
    for (int i = 2; i <= 4; i++)
        publish(i, 100); /* least recently used first: 1, 2, 3, 4 */
    cache_index_sweep(&zone, pt_time_sec(), HOUR, 0, 150, record, &r);
    ck_assert_int_eq(r.n, 2);
    assert_removed(&r, 0, 2);
    assert_removed(&r, 1, 3);
    ck_assert_int_eq(peek(4, &v), 1);
    ck_assert_uint_eq(stats().bytes, 100);
}
END_TEST

/* The loader */

START_TEST(load_inserts_an_entry_not_indexed)
{
    struct cache_meta m = {.valid = 1234, .swr = 5, .sie = 6, .fs_size = 700};
    struct cache_view v;
    struct cache_stats st;

    ck_assert_int_eq(
        cache_index_load(&zone, MD5(1), key_of(1), strlen(key_of(1)), &m, NULL, pt_time_sec()), 1);
    ck_assert_int_eq(peek(1, &v), 1);
    ck_assert_int_eq(v.exists, 1);
    ck_assert_uint_eq(v.uses, 0);
    ck_assert_int_eq(v.meta.valid, 1234);
    ck_assert_uint_eq(v.meta.fs_size, 700);
    st = stats();
    ck_assert_uint_eq(st.entries, 1);
    ck_assert_uint_eq(st.bytes, 700);
}
END_TEST

START_TEST(load_leaves_an_entry_a_worker_indexed_first)
{
    struct cache_meta m = meta_of(999);
    struct cache_view v;

    publish(1, 100);
    ck_assert_int_eq(
        cache_index_load(&zone, MD5(1), key_of(1), strlen(key_of(1)), &m, NULL, pt_time_sec()), 0);
    peek(1, &v);
    ck_assert_uint_eq(v.meta.fs_size, 100);
    ck_assert_uint_eq(v.gen, 1);
    ck_assert_uint_eq(stats().bytes, 100);
}
END_TEST

START_TEST(loaded_entry_is_the_first_to_be_evicted)
{
    struct cache_meta m = meta_of(100);
    struct removed r = {0};

    publish(1, 100);
    publish(2, 100);
    ck_assert_int_eq(
        cache_index_load(&zone, MD5(3), key_of(3), strlen(key_of(3)), &m, NULL, pt_time_sec()), 1);
    ck_assert_uint_eq(cache_index_sweep(&zone, pt_time_sec(), HOUR, 250, 0, record, &r), 1);
    ck_assert_int_eq(r.n, 1);
    assert_removed(&r, 0, 3);
}
END_TEST

START_TEST(loaded_flag_is_set_once_the_loader_is_done)
{
    ck_assert_int_eq(cache_index_loaded(&zone), 0);
    cache_index_set_loaded(&zone);
    ck_assert_int_eq(cache_index_loaded(&zone), 1);
}
END_TEST

/* Varying responses */

START_TEST(main_node_of_a_varying_key_is_no_entry)
{
    struct cache_view v;
    struct cache_stats st;

    publish_key(1, "http://a/x", CACHE_F_VARY, "Accept-Encoding");
    ck_assert_int_eq(peek(1, &v), 1);
    ck_assert_int_eq(v.exists, 0);
    ck_assert_uint_eq(v.meta.flags, CACHE_F_VARY);
    ck_assert_str_eq(v.vary, "Accept-Encoding");
    st = stats();
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_uint_eq(st.bytes, 0);
}
END_TEST

START_TEST(loaded_main_node_keeps_its_vary_names)
{
    struct cache_meta m = {.flags = CACHE_F_VARY};
    struct cache_view v;

    ck_assert_int_eq(
        cache_index_load(&zone, MD5(1), "http://a/x", 10, &m, "Accept, Cookie", pt_time_sec()), 1);
    ck_assert_int_eq(peek(1, &v), 1);
    ck_assert_int_eq(v.exists, 0);
    ck_assert_str_eq(v.vary, "Accept, Cookie");
    ck_assert_uint_eq(stats().entries, 0);
}
END_TEST

/* A zone that fills up */

START_TEST(full_zone_evicts_nodes_without_files_to_make_room)
{
    struct cache_view v;
    int failed = 0;

    teardown();
    create_zone(SMALL_ZONE);
    /* Far more keys than 64 KiB holds nodes for. */
    for (int i = 0; i < 5000; i++) {
        int rc = lookup_counted(i, &v);

        ck_assert_msg(rc == 1 || rc == -1, "lookup %d returned %d", i, rc);
        failed += rc == -1;
    }
    ck_assert_int_eq(failed, 0);
    ck_assert_int_eq(lookup_counted(5000, &v), 1);
    ck_assert_uint_eq(v.uses, 1);
    ck_assert_int_eq(peek(0, &v), 0); /* the first went */
    ck_assert_uint_gt(stats().evicted, 0);
    ck_assert_int_eq(pt_slab_check(zone.pool), PT_OK);
}
END_TEST

START_TEST(zone_full_of_files_refuses_a_new_key)
{
    struct cache_meta m = meta_of(100);
    struct cache_view v;
    int i;

    teardown();
    create_zone(SMALL_ZONE);
    /* A file's node goes only with its file (the sweep's work): nothing can be evicted. */
    for (i = 0; i < 5000; i++)
        if (cache_index_publish(&zone, MD5(i), key_of(i), strlen(key_of(i)), &m, NULL, NULL, 0,
                                T1) != PT_OK)
            break;
    ck_assert_int_lt(i, 5000);
    ck_assert_uint_eq(stats().entries, (uint64_t)i);
    ck_assert_int_eq(lookup_counted(5001, &v), -1);
    ck_assert_int_eq(peek(0, &v), 1);
    ck_assert_int_eq(pt_slab_check(zone.pool), PT_OK);
}
END_TEST

/* Counters and reuse */

START_TEST(count_adds_each_event_to_its_own_counter)
{
    struct cache_stats st;

    for (int what = 0; what < CACHE_NSTATS; what++)
        for (int k = 0; k <= what; k++)
            cache_index_count(&zone, (enum cache_stat)what);
    st = stats();
    ck_assert_uint_eq(st.hits, 1);
    ck_assert_uint_eq(st.misses, 2);
    ck_assert_uint_eq(st.stale, 3);
    ck_assert_uint_eq(st.updating, 4);
    ck_assert_uint_eq(st.revalidated, 5);
    ck_assert_uint_eq(st.bypass, 6);
    ck_assert_uint_eq(st.expired, 7);
    ck_assert_uint_eq(st.stored, 8);
    ck_assert_uint_eq(st.store_failed, 9);
    ck_assert_uint_eq(st.evicted, 0);
}
END_TEST

START_TEST(init_of_a_reused_zone_keeps_the_index)
{
    struct cache_view v;

    publish(1, 700);
    cache_index_count(&zone, CACHE_STAT_HIT);
    ck_assert_int_eq(cache_index_init(&zone, 1), PT_OK);
    ck_assert_int_eq(peek(1, &v), 1);
    ck_assert_int_eq(v.exists, 1);
    ck_assert_uint_eq(v.meta.fs_size, 700);
    ck_assert_uint_eq(stats().entries, 1);
    ck_assert_uint_eq(stats().hits, 1);
}
END_TEST

START_TEST(index_adopted_at_another_address_keeps_its_entries)
{
    struct pt_shm_zone other;
    struct cache_meta m;
    struct cache_view v;

    publish(1, 700);
    memset(&other, 0, sizeof(other));
    strcpy(other.name, zone.name);
    other.size = zone.size;
    other.version = zone.version;
    other.init = cache_index_init;
    ck_assert_int_eq(pt_shm_zone_adopt_fd(&other, dup(zone.fd)), PT_OK);
    ck_assert_int_eq(
        cache_index_lookup(&other, MD5(1), key_of(1), strlen(key_of(1)), 1, NULL, 0, T1, &v), 1);
    ck_assert_int_eq(v.exists, 1);
    ck_assert_uint_eq(v.meta.fs_size, 700);
    /* What one mapping adds, the other sees. */
    m = meta_of(50);
    ck_assert_int_eq(
        cache_index_publish(&other, MD5(2), key_of(2), strlen(key_of(2)), &m, NULL, NULL, 0, T1),
        PT_OK);
    ck_assert_int_eq(peek(2, &v), 1);
    ck_assert_uint_eq(stats().bytes, 750);
    pt_shm_zone_destroy(&other);
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("cache_index");
    TCase *lookup = tcase_create("lookup"), *lock = tcase_create("lock");
    TCase *gone = tcase_create("remove"), *sweep = tcase_create("sweep");
    TCase *load = tcase_create("load"), *zone_tc = tcase_create("zone");

    tcase_add_checked_fixture(lookup, setup, teardown);
    tcase_add_test(lookup, counted_lookup_creates_the_node_and_counts_each_use);
    tcase_add_test(lookup, uncounted_lookup_of_a_missing_key_creates_nothing);
    tcase_add_test(lookup, uncounted_lookup_does_not_count_a_use);
    tcase_add_test(lookup, publish_makes_the_entry_exist_with_its_meta_and_a_new_gen);
    tcase_add_test(lookup, publish_creates_a_node_never_looked_up);
    tcase_add_test(lookup, publishing_again_replaces_the_size_counted);
    tcase_add_test(lookup, lookup_copies_the_memory_copy_into_a_buffer_with_room);
    tcase_add_test(lookup, lookup_copies_no_memory_copy_into_a_buffer_too_small);
    tcase_add_test(lookup, publishing_again_without_a_copy_drops_the_old_copy);
    tcase_add_test(lookup, refresh_changes_the_freshness_only);
    tcase_add_test(lookup, main_node_of_a_varying_key_is_no_entry);
    suite_add_tcase(s, lookup);

    tcase_add_checked_fixture(lock, setup, teardown);
    tcase_add_test(lock, lock_goes_to_the_first_ticket);
    tcase_add_test(lock, lock_held_by_one_ticket_refuses_another_with_its_deadline);
    tcase_add_test(lock, lock_is_taken_again_by_its_holder);
    tcase_add_test(lock, unlock_lets_another_ticket_take_the_lock);
    tcase_add_test(lock, unlock_by_another_ticket_leaves_the_lock);
    tcase_add_test(lock, expired_lock_goes_to_another_ticket);
    tcase_add_test(lock, lock_of_a_missing_node_fails);
    tcase_add_test(lock, publish_by_the_lock_holder_releases_the_lock);
    tcase_add_test(lock, publish_by_another_ticket_leaves_the_lock);
    suite_add_tcase(s, lock);

    tcase_add_checked_fixture(gone, setup, teardown);
    tcase_add_test(gone, remove_of_a_node_with_a_file_returns_1);
    tcase_add_test(gone, remove_of_a_node_without_a_file_returns_0);
    tcase_add_test(gone, remove_of_no_node_returns_minus_1);
    tcase_add_test(gone, purge_by_prefix_removes_the_matching_keys_only);
    tcase_add_test(gone, purge_with_an_empty_prefix_removes_every_node);
    tcase_add_test(gone, exact_purge_removes_the_main_node_and_variants_but_not_a_longer_key);
    suite_add_tcase(s, gone);

    tcase_add_checked_fixture(sweep, setup, teardown);
    tcase_add_test(sweep, sweep_removes_nodes_unused_for_inactive_seconds);
    tcase_add_test(sweep, sweep_removes_inactive_nodes_without_a_file_without_calling_fn);
    tcase_add_test(sweep, sweep_over_max_size_evicts_least_recently_used_until_under_it);
    tcase_add_test(sweep, sweep_under_max_size_removes_nothing);
    tcase_add_test(sweep, sweep_skips_a_locked_node);
    tcase_add_test(sweep, sweep_with_want_free_evicts_until_that_many_bytes_went);
    tcase_add_test(sweep, sweep_with_want_free_passes_a_node_without_a_file);
    suite_add_tcase(s, sweep);

    tcase_add_checked_fixture(load, setup, teardown);
    tcase_add_test(load, load_inserts_an_entry_not_indexed);
    tcase_add_test(load, load_leaves_an_entry_a_worker_indexed_first);
    tcase_add_test(load, loaded_entry_is_the_first_to_be_evicted);
    tcase_add_test(load, loaded_flag_is_set_once_the_loader_is_done);
    tcase_add_test(load, loaded_main_node_keeps_its_vary_names);
    suite_add_tcase(s, load);

    tcase_add_checked_fixture(zone_tc, setup, teardown);
    tcase_set_timeout(zone_tc, 30);
    tcase_add_test(zone_tc, full_zone_evicts_nodes_without_files_to_make_room);
    tcase_add_test(zone_tc, zone_full_of_files_refuses_a_new_key);
    tcase_add_test(zone_tc, count_adds_each_event_to_its_own_counter);
    tcase_add_test(zone_tc, init_of_a_reused_zone_keeps_the_index);
    tcase_add_test(zone_tc, index_adopted_at_another_address_keeps_its_entries);
    suite_add_tcase(s, zone_tc);
    return s;
}
