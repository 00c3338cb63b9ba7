/*
 * test_time.c: the one clock (core/times.h): cached between updates, read on a process's
 * first question, the HTTP date of the cached second; and a shared-memory window stamped
 * by a process that read the clock after this one.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check_main.h"
#include "core/log.h"
#include "core/times.h"
#include "modules/upstream/upstream.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Check forks each test from a runner that never asked the time: the cache starts empty. */
START_TEST(first_question_reads_the_clocks)
{
    struct timespec after;

    ck_assert_uint_gt(pt_now_ms(), 0);
    /* Against CLOCK_REALTIME read afterwards: time(NULL) reads a coarser clock that may
     * still show the second before. */
    clock_gettime(CLOCK_REALTIME, &after);
    ck_assert_int_ge(pt_time_sec(), after.tv_sec - 1);
    ck_assert_int_le(pt_time_sec(), after.tv_sec);
}
END_TEST

START_TEST(now_stays_until_the_next_update)
{
    uint64_t before;

    pt_time_update();
    before = pt_now_ms();
    sleep_ms(30);
    ck_assert_uint_eq(pt_now_ms(), before);
    pt_time_update();
    ck_assert_uint_ge(pt_now_ms(), before + 30);
}
END_TEST

START_TEST(wall_seconds_and_milliseconds_agree)
{
    struct timespec before, after;

    clock_gettime(CLOCK_REALTIME, &before);
    pt_time_update();
    clock_gettime(CLOCK_REALTIME, &after);
    ck_assert_int_eq(pt_time_sec(), pt_time_wall_ms() / 1000);
    ck_assert_int_ge(pt_time_sec(), before.tv_sec);
    ck_assert_int_le(pt_time_sec(), after.tv_sec);
}
END_TEST

START_TEST(http_date_is_the_cached_second_in_gmt)
{
    time_t t;
    struct tm tm;
    char want[64];
    struct pt_str date;

    pt_time_update();
    t = pt_time_sec();
    gmtime_r(&t, &tm);
    strftime(want, sizeof(want), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    date = pt_http_date();
    ck_assert_uint_eq(date.len, 29);
    ck_assert_str_eq(want, date.p);
    sleep_ms(1100);
    ck_assert_str_eq(want, pt_http_date().p); /* no update: the same second */
}
END_TEST

/* Workers read the clock at the start of their rounds, so a failure window another worker
 * started may lie a little ahead of this one's <now>: that window is new, not expired. */
START_TEST(failure_window_stamped_ahead_of_now_is_not_restarted)
{
    struct pt_peer_shared shared = {0};
    struct pt_peer peers[2] = {{.name = "10.0.0.1:80", .max_fails = 2, .fail_timeout = 10000},
                               {.name = "10.0.0.2:80"}};
    struct pt_upstream u = {.name = "app", .peers = peers, .npeers = 2};

    pt_log_level = PT_LOG_CRIT; /* the "temporarily disabled" warning */
    peers[0].shared = &shared;
    pt_time_update();
    shared.fail_start_ms = pt_now_ms() + 5;
    shared.fails = 1;
    pt_peer_failed(&u, &peers[0]);
    ck_assert_uint_eq(shared.down_until_ms, pt_now_ms() + 10000);
    ck_assert_uint_eq(shared.fails, 0);
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("time");
    TCase *cache = tcase_create("cache"), *shared = tcase_create("shared");

    tcase_add_test(cache, first_question_reads_the_clocks);
    tcase_add_test(cache, now_stays_until_the_next_update);
    tcase_add_test(cache, wall_seconds_and_milliseconds_agree);
    tcase_add_test(cache, http_date_is_the_cached_second_in_gmt);
    suite_add_tcase(s, cache);
    tcase_add_test(shared, failure_window_stamped_ahead_of_now_is_not_restarted);
    suite_add_tcase(s, shared);
    return s;
}
