/*
 * test_slab.c: the shared-memory allocator (core/slab.h), in private memory: the
 * behaviours across processes are in test_shm.c.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "core/slab.h"

#define PAGE PT_SLAB_PAGE_SIZE

static void *region;

/* Returns a fresh pool over a private region of <size> bytes starting <skew> bytes past a
 * page boundary (the region is freed by the test's teardown). */
static struct pt_slab_pool *pool_new_at(size_t size, size_t skew)
{
    struct pt_slab_pool *pool;

    free(region);
    region = aligned_alloc(PAGE, (size + skew + PAGE - 1) / PAGE * PAGE);
    ck_assert_ptr_nonnull(region);
    pool = pt_slab_init((char *)region + skew, size);
    ck_assert_ptr_nonnull(pool);
    return pool;
}

/* Returns a pool of exactly <pages> pages: the smallest region that holds them. */
static struct pt_slab_pool *pool_of_pages(size_t pages)
{
    size_t lo = 1, hi = pt_slab_region_size(pages * PAGE), used, free_bytes;
    struct pt_slab_pool *pool;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        free(region);
        region = aligned_alloc(PAGE, (mid + PAGE - 1) / PAGE * PAGE);
        pool = pt_slab_init(region, mid);
        free_bytes = 0;
        if (pool != NULL)
            pt_slab_stats(pool, &used, &free_bytes);
        if (free_bytes >= pages * PAGE)
            hi = mid;
        else
            lo = mid + 1;
    }
    pool = pool_new_at(lo, 0);
    pt_slab_stats(pool, &used, &free_bytes);
    ck_assert_uint_eq(free_bytes, pages * PAGE);
    return pool;
}

static void teardown(void)
{
    free(region);
    region = NULL;
}

static size_t stats_used(struct pt_slab_pool *pool)
{
    size_t used, free_bytes;

    pt_slab_stats(pool, &used, &free_bytes);
    return used;
}

static size_t stats_free(struct pt_slab_pool *pool)
{
    size_t used, free_bytes;

    pt_slab_stats(pool, &used, &free_bytes);
    return free_bytes;
}

static int all_bytes_are(const void *p, int c, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        if (b[i] != (unsigned char)c)
            return 0;
    }
    return 1;
}

START_TEST(each_size_class_allocates_aligned_and_frees)
{
    struct pt_slab_pool *pool = pool_new_at(64 * PAGE, 0);

    for (size_t cls = PT_SLAB_MIN_SIZE; cls <= PT_SLAB_MAX_SMALL; cls *= 2) {
        void *a = pt_slab_alloc(pool, cls), *b = pt_slab_alloc(pool, cls);

        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        ck_assert_ptr_ne(a, b);
        ck_assert_uint_eq((uintptr_t)a % cls, 0);
        ck_assert_uint_eq((uintptr_t)b % cls, 0);
        ck_assert_uint_eq(stats_used(pool), 2 * cls);
        pt_slab_free(pool, a);
        pt_slab_free(pool, b);
        ck_assert_uint_eq(stats_used(pool), 0);
    }
    ck_assert_int_eq(pt_slab_check(pool), PT_OK);
}
END_TEST

START_TEST(request_rounds_up_to_its_size_class)
{
    struct pt_slab_pool *pool = pool_new_at(64 * PAGE, 0);
    static const size_t cases[][2] = {
        {1, 8},       {8, 8},       {9, 16},      {100, 128},
        {1025, 2048}, {2048, 2048}, {2049, PAGE}, {PAGE + 1, 2 * PAGE}};

    for (size_t i = 0; i < pt_nelems(cases); i++) {
        void *p = pt_slab_alloc(pool, cases[i][0]);

        ck_assert_ptr_nonnull(p);
        ck_assert_msg(stats_used(pool) == cases[i][1], "%zu bytes took %zu, want %zu", cases[i][0],
                      stats_used(pool), cases[i][1]);
        pt_slab_free(pool, p);
    }
}
END_TEST

START_TEST(zero_size_request_gets_the_smallest_object)
{
    struct pt_slab_pool *pool = pool_new_at(8 * PAGE, 0);

    ck_assert_ptr_nonnull(pt_slab_alloc(pool, 0));
    ck_assert_uint_eq(stats_used(pool), PT_SLAB_MIN_SIZE);
}
END_TEST

START_TEST(memory_is_zeroed_even_when_reused)
{
    struct pt_slab_pool *pool = pool_new_at(16 * PAGE, 0);
    static const size_t sizes[] = {24, 2000, 3 * PAGE};

    for (size_t i = 0; i < pt_nelems(sizes); i++) {
        char *p = pt_slab_alloc(pool, sizes[i]), *q;

        memset(p, 0xab, sizes[i]);
        pt_slab_free(pool, p);
        q = pt_slab_alloc(pool, sizes[i]);
        ck_assert_ptr_eq(q, p);                   /* the same memory came back... */
        ck_assert(all_bytes_are(q, 0, sizes[i])); /* ...cleared */
        pt_slab_free(pool, q);
    }
}
END_TEST

START_TEST(exhaustion_returns_null_and_free_makes_room)
{
    struct pt_slab_pool *pool = pool_of_pages(4);
    void *objs[4 * PAGE / 64], *p;
    size_t n = 0;

    while ((p = pt_slab_alloc(pool, 64)) != NULL) {
        ck_assert_uint_lt(n, pt_nelems(objs));
        objs[n++] = p;
    }
    ck_assert_uint_eq(n, pt_nelems(objs));
    ck_assert_ptr_null(pt_slab_alloc(pool, 8));
    ck_assert_ptr_null(pt_slab_alloc(pool, PAGE));
    pt_slab_free(pool, objs[17]);
    ck_assert_ptr_eq(pt_slab_alloc(pool, 64), objs[17]);
    ck_assert_ptr_null(pt_slab_alloc(pool, 64));
    ck_assert_int_eq(pt_slab_check(pool), PT_OK);
}
END_TEST

START_TEST(large_request_takes_a_page_aligned_run)
{
    struct pt_slab_pool *pool = pool_of_pages(8);
    char *p = pt_slab_alloc(pool, 3 * PAGE - 1);

    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % PAGE, 0);
    ck_assert_uint_eq(stats_used(pool), 3 * PAGE);
    ck_assert_uint_eq(stats_free(pool), 5 * PAGE);
    memset(p, 1, 3 * PAGE - 1); /* all of it is ours (ASan would tell) */
    ck_assert_ptr_null(pt_slab_alloc(pool, 6 * PAGE));
    ck_assert_ptr_nonnull(pt_slab_alloc(pool, 5 * PAGE));
    pt_slab_free(pool, p);
    ck_assert_uint_eq(stats_used(pool), 5 * PAGE);
    ck_assert_int_eq(pt_slab_check(pool), PT_OK);
}
END_TEST

START_TEST(freed_page_runs_coalesce_into_one)
{
    struct pt_slab_pool *pool = pool_of_pages(9);
    char *pages[9], *whole;
    size_t i;

    for (i = 0; i < 9; i++)
        pages[i] = pt_slab_alloc(pool, PAGE);
    /* Every other page first (nothing to merge), then the rest, each of which must merge
     * with both neighbours for the whole pool to be one run again. */
    for (i = 0; i < 9; i += 2)
        pt_slab_free(pool, pages[i]);
    ck_assert_ptr_null(pt_slab_alloc(pool, 2 * PAGE));
    for (i = 1; i < 9; i += 2)
        pt_slab_free(pool, pages[i]);
    ck_assert_int_eq(pt_slab_check(pool), PT_OK);
    whole = pt_slab_alloc(pool, 9 * PAGE);
    ck_assert_ptr_nonnull(whole);
    for (i = 0; i < 9; i++)
        ck_assert(pages[i] >= whole && pages[i] < whole + 9 * PAGE);
}
END_TEST

START_TEST(emptied_small_pages_return_to_the_page_runs)
{
    struct pt_slab_pool *pool = pool_of_pages(3);
    void *objs[3 * PAGE / 8];
    size_t i;

    for (i = 0; i < pt_nelems(objs); i++)
        objs[i] = pt_slab_alloc(pool, 8);
    ck_assert_ptr_null(pt_slab_alloc(pool, 8));
    for (i = 0; i < pt_nelems(objs); i++)
        pt_slab_free(pool, objs[i]);
    ck_assert_ptr_nonnull(pt_slab_alloc(pool, 3 * PAGE));
}
END_TEST

/* A small deterministic generator, so that a failure replays. */
static uint32_t next_random(uint32_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

struct live {
    unsigned char *p;
    size_t size;
    unsigned char fill;
};

START_TEST(live_allocations_never_overlap)
{
    struct pt_slab_pool *pool = pool_new_at(256 * PAGE, 0);
    static const size_t sizes[] = {1,   7,   8,    12,   16,   33,   64,  100,
                                   200, 500, 1000, 2048, 2049, 5000, 9000};
    struct live live[300] = {{0}};
    uint32_t seed = 12345;

    for (int round = 0; round < 20000; round++) {
        struct live *l = &live[next_random(&seed) % pt_nelems(live)];

        if (l->p != NULL) {
            ck_assert_msg(all_bytes_are(l->p, l->fill, l->size),
                          "round %d: %zu bytes at %p "
                          "overwritten",
                          round, l->size, (void *)l->p);
            pt_slab_free(pool, l->p);
            l->p = NULL;
            continue;
        }
        l->size = sizes[next_random(&seed) % pt_nelems(sizes)];
        l->p = pt_slab_alloc(pool, l->size);
        ck_assert_ptr_nonnull(l->p);
        ck_assert(all_bytes_are(l->p, 0, l->size));
        l->fill = (unsigned char)(round | 1);
        memset(l->p, l->fill, l->size);
    }
    for (size_t i = 0; i < pt_nelems(live); i++) {
        if (live[i].p != NULL)
            ck_assert(all_bytes_are(live[i].p, live[i].fill, live[i].size));
    }
    ck_assert_int_eq(pt_slab_check(pool), PT_OK);
}
END_TEST

START_TEST(invalid_and_double_frees_are_ignored)
{
    struct pt_slab_pool *pool = pool_new_at(16 * PAGE, 0);
    char *small = pt_slab_alloc(pool, 64), *large = pt_slab_alloc(pool, 2 * PAGE);
    int outside;
    size_t used = stats_used(pool);

    pt_slab_free(pool, NULL);
    pt_slab_free(pool, &outside);
    pt_slab_free(pool, small + 8);    /* inside an object */
    pt_slab_free(pool, small + 64);   /* a free slot of the same page */
    pt_slab_free(pool, large + PAGE); /* the second page of a run */
    ck_assert_uint_eq(stats_used(pool), used);

    pt_slab_free(pool, small);
    pt_slab_free(pool, small);
    pt_slab_free(pool, large);
    pt_slab_free(pool, large);
    ck_assert_uint_eq(stats_used(pool), 0);
    ck_assert_int_eq(pt_slab_check(pool), PT_OK);
}
END_TEST

START_TEST(pool_keeps_working_after_moving_to_another_address)
{
    size_t size = 16 * PAGE;
    struct pt_slab_pool *pool = pool_new_at(size, 0), *moved;
    char *a = pt_slab_alloc(pool, 100), *b = pt_slab_alloc(pool, 2 * PAGE);
    char *copy = aligned_alloc(PAGE, size);
    ptrdiff_t delta;

    strcpy(a, "small");
    strcpy(b, "large");
    memcpy(copy, region, size);
    memset(region, 0xee, size); /* the old address is gone */
    moved = (struct pt_slab_pool *)copy;
    delta = copy - (char *)region;

    ck_assert_str_eq(a + delta, "small");
    ck_assert_str_eq(b + delta, "large");
    pt_slab_free(moved, a + delta);
    ck_assert_ptr_eq(pt_slab_alloc(moved, 100), a + delta);
    pt_slab_free(moved, b + delta);
    ck_assert_ptr_nonnull(pt_slab_alloc(moved, 10 * PAGE));
    ck_assert_int_eq(pt_slab_check(moved), PT_OK);
    free(copy);
}
END_TEST

START_TEST(region_size_yields_the_usable_bytes_at_any_alignment)
{
    static const size_t usable[] = {1, PAGE, 5 * PAGE + 1, 1000 * PAGE};
    static const size_t skews[] = {0, 16, 128, 2048, PAGE - 16};

    for (size_t u = 0; u < pt_nelems(usable); u++) {
        for (size_t s = 0; s < pt_nelems(skews); s++) {
            struct pt_slab_pool *pool = pool_new_at(pt_slab_region_size(usable[u]), skews[s]);

            ck_assert_uint_ge(stats_free(pool), usable[u]);
            ck_assert_ptr_nonnull(pt_slab_alloc(pool, usable[u]));
        }
    }
}
END_TEST

START_TEST(too_small_or_misaligned_region_is_refused)
{
    static _Alignas(16) char small[PAGE];
    char *big = aligned_alloc(PAGE, 8 * PAGE);

    ck_assert_ptr_null(pt_slab_init(small, sizeof(small)));
    ck_assert_ptr_null(pt_slab_init(big + 8, 7 * PAGE));
    ck_assert_ptr_nonnull(pt_slab_init(big + 16, 7 * PAGE));
    free(big);
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("slab");
    TCase *alloc = tcase_create("alloc"), *pages = tcase_create("pages");
    TCase *safety = tcase_create("safety");

    tcase_add_checked_fixture(alloc, NULL, teardown);
    tcase_add_test(alloc, each_size_class_allocates_aligned_and_frees);
    tcase_add_test(alloc, request_rounds_up_to_its_size_class);
    tcase_add_test(alloc, zero_size_request_gets_the_smallest_object);
    tcase_add_test(alloc, memory_is_zeroed_even_when_reused);
    tcase_add_test(alloc, exhaustion_returns_null_and_free_makes_room);
    suite_add_tcase(s, alloc);

    tcase_add_checked_fixture(pages, NULL, teardown);
    tcase_add_test(pages, large_request_takes_a_page_aligned_run);
    tcase_add_test(pages, freed_page_runs_coalesce_into_one);
    tcase_add_test(pages, emptied_small_pages_return_to_the_page_runs);
    tcase_add_test(pages, region_size_yields_the_usable_bytes_at_any_alignment);
    suite_add_tcase(s, pages);

    tcase_add_checked_fixture(safety, NULL, teardown);
    tcase_set_timeout(safety, 30);
    tcase_add_test(safety, live_allocations_never_overlap);
    tcase_add_test(safety, invalid_and_double_frees_are_ignored);
    tcase_add_test(safety, pool_keeps_working_after_moving_to_another_address);
    tcase_add_test(safety, too_small_or_misaligned_region_is_refused);
    suite_add_tcase(s, safety);
    return s;
}
