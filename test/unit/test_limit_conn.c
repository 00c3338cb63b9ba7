/*
 * test_limit_conn.c: the limit_conn module's counts in a real zone (modules/limit_conn.h),
 * driven as several processes would drive them: a key's connections of every process count
 * against its limit and come back when given back; a process that is gone (a child that
 * exited, reaped) has its counts dropped once they stand in the way; a worker's exit gives
 * back all it holds; and a process that dies holding the zone's lock leaves a zone that
 * starts empty, holds taken before it giving nothing back.
 *
 * needs modules: limit_conn
 */
#include <check.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "core/log.h"
#include "core/cycle.h"
#include "core/shm.h"
#include "modules/limit_conn.h"
#include "worker/http.h"

extern struct pt_module pt_limit_conn_module;

static const char conf[] = "http = { access_log = \"off\";\n"
                           "  limit_conn_zone = \"$binary_remote_addr zone=conns:32k\";\n"
                           "  limit_conn = \"conns 2\";\n"
                           "  server = ( { listen = [ \"127.0.0.1:1\" ]; } );\n"
                           "};\n";

static struct pt_cycle *cycle;
static struct pt_limit_zone *zone;
static char err[1024], path[64];

static void setup(void)
{
    struct pt_http_main_conf *mc;
    const struct pt_limit_conf *c;

    cycle = pt_test_load_conf(conf, path, err, sizeof(err));
    ck_assert_msg(cycle != NULL, "%s", err);
    for (struct pt_shm_zone *z = cycle->zones; z; z = z->next)
        ck_assert_int_eq(pt_shm_zone_create(z), PT_OK);
    mc = pt_http_main_conf_of(cycle, pt_http_module);
    c = mc->loc_conf[pt_limit_conn_module.index];
    ck_assert_int_eq(c->limits->n, 1);
    zone = c->limits->v[0]->zone;
}

static void teardown(void)
{
    for (struct pt_shm_zone *z = cycle->zones; z; z = z->next)
        pt_shm_zone_destroy(z);
    pt_cycle_free(cycle);
}

static struct pt_limit_conn_hold hold(const char *key, pid_t pid)
{
    return (struct pt_limit_conn_hold){.zone = zone, .key = pt_str_c(key), .pid = pid};
}

/* The pid of a process that has exited and been reaped. */
static pid_t dead_pid(void)
{
    pid_t pid = fork();
    int status;

    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return pid;
}

START_TEST(key_counts_up_to_its_limit_and_back)
{
    struct pt_limit_conn_hold a = hold("k", getpid()), b = a, c = a;

    ck_assert_int_eq(pt_limit_conn_take(&a, 2), PT_OK);
    ck_assert_int_eq(pt_limit_conn_take(&b, 2), PT_OK);
    ck_assert_int_eq(pt_limit_conn_take(&c, 2), PT_DECLINED);
    ck_assert(!c.held);
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c("k")), 2);
    pt_limit_conn_give(&a);
    pt_limit_conn_give(&a); /* a second time gives nothing */
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c("k")), 1);
    ck_assert_int_eq(pt_limit_conn_take(&c, 2), PT_OK);
    pt_limit_conn_give(&b);
    pt_limit_conn_give(&c);
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c("k")), 0);
}
END_TEST

START_TEST(keys_are_counted_apart)
{
    struct pt_limit_conn_hold a = hold("one", getpid()), b = hold("two", getpid());

    ck_assert_int_eq(pt_limit_conn_take(&a, 1), PT_OK);
    ck_assert_int_eq(pt_limit_conn_take(&b, 1), PT_OK);
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c("one")), 1);
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c("two")), 1);
}
END_TEST

START_TEST(processes_share_the_limit)
{
    /* Two live processes: this one and its parent (the test runner). */
    struct pt_limit_conn_hold mine = hold("k", getpid()), theirs = hold("k", getppid());
    struct pt_limit_conn_hold more = hold("k", getpid());

    ck_assert_int_eq(pt_limit_conn_take(&theirs, 2), PT_OK);
    ck_assert_int_eq(pt_limit_conn_take(&mine, 2), PT_OK);
    ck_assert_int_eq(pt_limit_conn_take(&more, 2), PT_DECLINED);
    pt_limit_conn_give(&theirs);
    ck_assert_int_eq(pt_limit_conn_take(&more, 2), PT_OK);
}
END_TEST

START_TEST(counts_of_a_process_that_is_gone_are_dropped_at_the_limit)
{
    pid_t dead = dead_pid();
    struct pt_limit_conn_hold d1 = hold("k", dead), d2 = d1, live = hold("k", getpid());

    ck_assert_int_eq(pt_limit_conn_take(&d1, 2), PT_OK);
    ck_assert_int_eq(pt_limit_conn_take(&d2, 2), PT_OK);
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c("k")), 2);
    /* At the limit: the dead process's two are dropped, the live one counted. */
    ck_assert_int_eq(pt_limit_conn_take(&live, 2), PT_OK);
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c("k")), 1);
}
END_TEST

START_TEST(live_processes_counts_are_kept_at_the_limit)
{
    struct pt_limit_conn_hold p1 = hold("k", getppid()), p2 = p1, me = hold("k", getpid());

    ck_assert_int_eq(pt_limit_conn_take(&p1, 2), PT_OK);
    ck_assert_int_eq(pt_limit_conn_take(&p2, 2), PT_OK);
    ck_assert_int_eq(pt_limit_conn_take(&me, 2), PT_DECLINED);
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c("k")), 2);
}
END_TEST

/* Takes one connection of each of <n> keys "<prefix>-NNNNN" for <pid>; returns how many
 * were counted. */
static int fill(const char *prefix, int n, pid_t pid)
{
    char key[32];
    int ok = 0, level = pt_log_level;

    pt_log_level = PT_LOG_CRIT + 1; /* not a line per key that finds the zone full */
    for (int i = 0; i < n; i++) {
        struct pt_limit_conn_hold h;
        snprintf(key, sizeof(key), "%s-%05d", prefix, i);
        h = hold(key, pid);
        ok += pt_limit_conn_take(&h, 1) == PT_OK;
    }
    pt_log_level = level;
    return ok;
}

START_TEST(full_zone_refuses_a_new_key)
{
    struct pt_limit_conn_hold h = hold("one-more", getpid());
    int n = fill("live", 2000, getppid());

    ck_assert_int_gt(n, 10);
    ck_assert_int_lt(n, 2000); /* 32k holds far fewer keys */
    ck_assert_int_eq(pt_limit_conn_take(&h, 1), PT_ERROR);
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c("live-00000")), 1);
}
END_TEST

START_TEST(full_zone_drops_keys_held_by_processes_that_are_gone)
{
    struct pt_limit_conn_hold live = hold("live", getpid());
    int n = fill("dead", 2000, dead_pid());
    char newest[32];

    ck_assert_int_lt(n, 2000); /* the zone is full */
    /* A live process's new key makes room from the oldest keys, held by the dead one. */
    ck_assert_int_eq(pt_limit_conn_take(&live, 1), PT_OK);
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c("dead-00000")), 0);
    snprintf(newest, sizeof(newest), "dead-%05d", n - 1);
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c(newest)), 1);
}
END_TEST

START_TEST(exiting_process_gives_back_all_it_holds)
{
    struct pt_limit_conn_hold a = hold("x", getpid()), b = hold("y", getpid()), c = a;
    struct pt_limit_conn_hold other = hold("x", getppid());

    ck_assert_int_eq(pt_limit_conn_take(&a, 5), PT_OK);
    ck_assert_int_eq(pt_limit_conn_take(&c, 5), PT_OK);
    ck_assert_int_eq(pt_limit_conn_take(&b, 5), PT_OK);
    ck_assert_int_eq(pt_limit_conn_take(&other, 5), PT_OK);
    pt_limit_conn_forget(zone, getpid());
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c("x")), 1); /* the other's */
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c("y")), 0);
}
END_TEST

START_TEST(lock_lost_by_a_dead_holder_empties_the_zone)
{
    struct pt_limit_conn_hold before = hold("k", getpid()), after = before;
    pid_t pid;
    int status;

    ck_assert_int_eq(pt_limit_conn_take(&before, 1), PT_OK);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Dies holding the lock, as a worker killed in the middle of an update. */
        pt_limit_lock(zone);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    /* The next lock finds it abandoned: the zone starts empty, so the key has room. */
    ck_assert_int_eq(pt_limit_conn_take(&after, 1), PT_OK);
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c("k")), 1);
    /* What was taken before the reset gives nothing back: the count stays right. */
    pt_limit_conn_give(&before);
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c("k")), 1);
    pt_limit_conn_give(&after);
    ck_assert_uint_eq(pt_limit_conn_count(zone, pt_str_c("k")), 0);
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("limit_conn");
    TCase *t = tcase_create("counts");

    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, key_counts_up_to_its_limit_and_back);
    tcase_add_test(t, keys_are_counted_apart);
    tcase_add_test(t, processes_share_the_limit);
    tcase_add_test(t, counts_of_a_process_that_is_gone_are_dropped_at_the_limit);
    tcase_add_test(t, live_processes_counts_are_kept_at_the_limit);
    tcase_add_test(t, full_zone_refuses_a_new_key);
    tcase_add_test(t, full_zone_drops_keys_held_by_processes_that_are_gone);
    tcase_add_test(t, exiting_process_gives_back_all_it_holds);
    tcase_add_test(t, lock_lost_by_a_dead_holder_empties_the_zone);
    suite_add_tcase(s, t);
    return s;
}
