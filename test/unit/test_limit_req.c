/*
 * test_limit_req.c: the limit_req module's leaky bucket (pt_limit_req_decide) against nginx's
 * arithmetic, worked out by hand from ngx_http_limit_req_module.c: a sequence of (time, key)
 * events on the limits of a location, read from a configuration loaded for real, gives the
 * exact passed, delayed (and for how many ms) and rejected that nginx gives, with several
 * limits on one request, a last limit without a key, and a full zone evicting its oldest key.
 * Then the configuration errors of limit_req_zone, limit_req, limit_conn_zone and limit_conn,
 * each at its file and line.
 *
 * needs modules: limit_req limit_conn
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "core/cycle.h"
#include "core/shm.h"
#include "modules/limit_req.h"
#include "worker/http.h"
#include "worker/router.h"

extern struct pt_module pt_limit_req_module;

/* A monotonic clock well past boot, as nginx's and portier's are. */
#define T0 ((uint64_t)1000000000)

static const char conf[] =
    "http = { access_log = \"off\";\n"
    "  limit_req_zone = [ \"$arg_k zone=sec:32k rate=1r/s\", \"$arg_k zone=min:32k rate=1r/m\",\n"
    "    \"$arg_k zone=ten:32k rate=10r/s\", \"$arg_u zone=other:32k rate=2r/s\",\n"
    "    \"$arg_k zone=small:32k rate=1r/m\" ];\n"
    "  server = ( { listen = [ \"127.0.0.1:1\" ];\n"
    "    location = (\n"
    "      { path = \"/burst2\"; limit_req = \"zone=sec burst=2\"; },\n"
    "      { path = \"/nodelay\"; limit_req = \"zone=sec burst=2 nodelay\"; },\n"
    "      { path = \"/delay1\"; limit_req = \"zone=min burst=5 delay=1\"; },\n"
    "      { path = \"/two\"; limit_req = [ \"zone=ten burst=10\", \"zone=other burst=1\" ]; },\n"
    "      { path = \"/small\"; limit_req = \"zone=small burst=5\"; }\n"
    "    ); } );\n"
    "};\n";

static struct pt_cycle *cycle;
static char err[1024], path[64];

static void setup(void)
{
    cycle = pt_test_load_conf(conf, path, err, sizeof(err));
    ck_assert_msg(cycle != NULL, "%s", err);
    /* What the master does before forking: make every zone the configuration declares. */
    for (struct pt_shm_zone *z = cycle->zones; z; z = z->next)
        ck_assert_int_eq(pt_shm_zone_create(z), PT_OK);
}

static void teardown(void)
{
    for (struct pt_shm_zone *z = cycle->zones; z; z = z->next)
        pt_shm_zone_destroy(z);
    pt_cycle_free(cycle);
}

/* The limit_req lines of the location <uri> finds. */
static const struct pt_limit_lines *limits_of(const char *uri)
{
    struct pt_http_main_conf *mc = pt_http_main_conf_of(cycle, pt_http_module);
    struct pt_http_srv_conf *sc = mc->servers[0]->srv_conf[pt_http_module.index];
    size_t caps[2 * PT_LOC_MAX_CAPTURES];
    int ncaps = 0;
    struct pt_http_loc_conf *lc = pt_locations_find(sc->locations, uri, strlen(uri), caps, &ncaps);
    const struct pt_limit_conf *c;

    ck_assert_ptr_nonnull(lc);
    c = lc->loc_conf[pt_limit_req_module.index];
    ck_assert_ptr_nonnull(c->limits);
    return c->limits;
}

/* One request of keys <k> (and <u>, for the second limit) to <uri> at T0 + <ms>. */
static struct pt_limit_req_verdict at(const char *uri, uint64_t ms, const char *k, const char *u)
{
    const struct pt_limit_lines *l = limits_of(uri);
    struct pt_str keys[2] = {pt_str_c(k), pt_str_c(u)};
    struct pt_limit_req_verdict v;

    ck_assert_int_le(l->n, 2);
    pt_limit_req_decide(l, keys, T0 + ms, &v);
    return v;
}

#define ASSERT_VERDICT(v, want, ms, exc, lim)           \
    do {                                                \
        struct pt_limit_req_verdict v_ = (v);           \
        ck_assert_int_eq(v_.outcome, (want));           \
        ck_assert_uint_eq(v_.delay_ms, (uint64_t)(ms)); \
        ck_assert_int_eq(v_.excess, (int64_t)(exc));    \
        ck_assert_int_eq(v_.limit, (lim));              \
    } while (0)

#define PASSED   PT_LIMIT_REQ_PASSED
#define DELAYED  PT_LIMIT_REQ_DELAYED
#define REJECTED PT_LIMIT_REQ_REJECTED

/* rate=1r/s (1000 thousandths a second), burst=2, delay 0: every request over an empty
 * bucket waits (excess - 0) * 1000 / 1000 ms. */
START_TEST(bucket_drains_at_the_rate_and_delays_by_the_excess)
{
    ASSERT_VERDICT(at("/burst2", 0, "a", NULL), PASSED, 0, 0, 0);          /* new key: empty */
    ASSERT_VERDICT(at("/burst2", 0, "a", NULL), DELAYED, 1000, 1000, 0);   /* 0 - 0 + 1000 */
    ASSERT_VERDICT(at("/burst2", 100, "a", NULL), DELAYED, 1900, 1900, 0); /* 1000 - 100 + 1000 */
    ASSERT_VERDICT(at("/burst2", 100, "a", NULL), REJECTED, 0, 2900, 0);   /* over 2000 */
    /* The refusal was not counted: 1900 - 900 + 1000, at the burst exactly. */
    ASSERT_VERDICT(at("/burst2", 1000, "a", NULL), DELAYED, 2000, 2000, 0);
    /* Drained below zero: empty again. */
    ASSERT_VERDICT(at("/burst2", 5000, "a", NULL), PASSED, 0, 0, 0);
}
END_TEST

START_TEST(keys_have_buckets_of_their_own)
{
    ASSERT_VERDICT(at("/burst2", 0, "a", NULL), PASSED, 0, 0, 0);
    ASSERT_VERDICT(at("/burst2", 0, "a", NULL), DELAYED, 1000, 1000, 0);
    ASSERT_VERDICT(at("/burst2", 0, "b", NULL), PASSED, 0, 0, 0);
    ASSERT_VERDICT(at("/burst2", 0, "ab", NULL), PASSED, 0, 0, 0);
}
END_TEST

START_TEST(empty_key_is_not_counted)
{
    for (int i = 0; i < 5; i++)
        ASSERT_VERDICT(at("/burst2", 0, "", NULL), PT_LIMIT_REQ_NONE, 0, 0, -1);
    ASSERT_VERDICT(at("/burst2", 0, "a", NULL), PASSED, 0, 0, 0);
}
END_TEST

/* The same zone and events as above through nodelay: the same excess, no delay. */
START_TEST(nodelay_passes_within_the_burst)
{
    ASSERT_VERDICT(at("/nodelay", 0, "a", NULL), PASSED, 0, 0, 0);
    ASSERT_VERDICT(at("/nodelay", 0, "a", NULL), PASSED, 0, 1000, 0);
    ASSERT_VERDICT(at("/nodelay", 100, "a", NULL), PASSED, 0, 1900, 0);
    ASSERT_VERDICT(at("/nodelay", 100, "a", NULL), REJECTED, 0, 2900, 0);
    ASSERT_VERDICT(at("/nodelay", 1000, "a", NULL), PASSED, 0, 2000, 0);
}
END_TEST

/* rate=1r/m is 1000 / 60 = 16 thousandths a second (nginx's integer division); delay=1 lets
 * one request past the first through at once, then (excess - 1000) * 1000 / 16 ms. */
START_TEST(per_minute_rate_and_delay_parameter)
{
    ASSERT_VERDICT(at("/delay1", 0, "a", NULL), PASSED, 0, 0, 0);
    ASSERT_VERDICT(at("/delay1", 0, "a", NULL), PASSED, 0, 1000, 0);
    ASSERT_VERDICT(at("/delay1", 0, "a", NULL), DELAYED, 62500, 2000, 0);
    /* 2000 - 16 * 1000 / 1000 + 1000 */
    ASSERT_VERDICT(at("/delay1", 1000, "a", NULL), DELAYED, 124000, 2984, 0);
    ASSERT_VERDICT(at("/delay1", 1000, "a", NULL), DELAYED, 186500, 3984, 0);
    ASSERT_VERDICT(at("/delay1", 1000, "a", NULL), DELAYED, 249000, 4984, 0);
    ASSERT_VERDICT(at("/delay1", 1000, "a", NULL), REJECTED, 0, 5984, 0);
    /* 4984 - 16 * 59000 / 1000 + 1000 = 5040: still over. */
    ASSERT_VERDICT(at("/delay1", 60000, "a", NULL), REJECTED, 0, 5040, 0);
    /* 4984 - 16 * 61500 / 1000 + 1000 = 5000: at the burst. */
    ASSERT_VERDICT(at("/delay1", 62500, "a", NULL), DELAYED, 250000, 5000, 0);
}
END_TEST

/* Two limits: ten (10r/s, burst=10, delay 0) on k, then other (2r/s, burst=1) on u.  The
 * first only holds its node until the last has passed, then accounts; the longest delay
 * wins; a refusal by the second leaves the first uncounted. */
START_TEST(several_limits_account_together_and_the_longest_delay_wins)
{
    ASSERT_VERDICT(at("/two", 0, "a", "x"), PASSED, 0, 0, 1);
    /* ten: 1000 -> 100 ms; other: 1000 -> 500 ms. */
    ASSERT_VERDICT(at("/two", 0, "a", "x"), DELAYED, 500, 1000, 1);
    /* other is at 2000 > 1000: refused by the second limit, the first not counting it. */
    ASSERT_VERDICT(at("/two", 0, "a", "x"), REJECTED, 0, 2000, 1);
    /* ten is at 2000 (not 3000): 200 ms, more than a new key of other's 0. */
    ASSERT_VERDICT(at("/two", 0, "a", "y"), DELAYED, 200, 2000, 0);
    /* No key for the last limit: the first is accounted alone (3000: 300 ms). */
    ASSERT_VERDICT(at("/two", 0, "a", ""), DELAYED, 300, 3000, 0);
    /* Drained: 3000 - 10000 * 250 / 1000 + 1000 = 1500 on ten, 0 on a new other key. */
    ASSERT_VERDICT(at("/two", 250, "a", "z"), DELAYED, 150, 1500, 0);
    ASSERT_VERDICT(at("/two", 250, "", ""), PT_LIMIT_REQ_NONE, 0, 0, -1);
}
END_TEST

START_TEST(refusal_by_the_first_limit_leaves_the_second_alone)
{
    char u[8];

    for (int i = 0; i <= 10; i++) {
        snprintf(u, sizeof(u), "v%d", i);
        ck_assert_int_ne(at("/two", 0, "a", u).outcome, REJECTED);
    }
    /* ten is full (11 requests, burst 10): refused there, other's "new" never looked at. */
    ASSERT_VERDICT(at("/two", 0, "a", "new"), REJECTED, 0, 11000, 0);
    ASSERT_VERDICT(at("/two", 0, "b", "new"), PASSED, 0, 0, 1);
}
END_TEST

/* A zone full of keys makes room by evicting its least recently used one, as nginx's
 * ngx_http_limit_req_expire(ctx, 0): the oldest key starts over, the newest is kept. */
START_TEST(full_zone_evicts_its_oldest_key)
{
    char key[32];

    ASSERT_VERDICT(at("/small", 0, "first", NULL), PASSED, 0, 0, 0);
    ck_assert_int_eq(at("/small", 0, "first", NULL).outcome, DELAYED);
    for (int i = 0; i < 4000; i++) {
        snprintf(key, sizeof(key), "key-%04d", i);
        ck_assert_int_eq(at("/small", 0, key, NULL).outcome, PASSED);
    }
    ck_assert_int_eq(at("/small", 0, "key-3999", NULL).outcome, DELAYED);
    ASSERT_VERDICT(at("/small", 0, "first", NULL), PASSED, 0, 0, 0);
}
END_TEST

/* --- configuration errors --- */

/* Loads <http> (the inside of an http block, starting on line 2) and asserts the load fails
 * with "<file>:<line>: <message>". */
static void assert_refused(const char *http, int line, const char *message)
{
    char text[2048], want[1024];
    struct pt_cycle *c;

    snprintf(text, sizeof(text),
             "http = { access_log = \"off\";\n%s\n"
             "  server = ( { listen = [ \"127.0.0.1:1\" ]; location = ( { path = \"/\"; } ); } );\n"
             "};\n",
             http);
    c = pt_test_load_conf(text, path, err, sizeof(err));
    if (c)
        pt_cycle_free(c);
    ck_assert_ptr_null(c);
    snprintf(want, sizeof(want), "%s:%d: %s", path, line, message);
    ck_assert_msg(strstr(err, want) != NULL, "want \"%s\", got \"%s\"", want, err);
}

START_TEST(unknown_zone_is_an_error_at_the_limit_s_line)
{
    assert_refused("  limit_req_zone = \"$arg_k zone=one:1m rate=1r/s\";\n"
                   "  limit_req = \"zone=unknown burst=5\";",
                   3, "unknown limit_req zone \"unknown\": declare it with limit_req_zone in http");
    assert_refused("  limit_conn = \"nothere 1\";", 2,
                   "unknown limit_conn zone \"nothere\": declare it with limit_conn_zone in http");
}
END_TEST

START_TEST(zone_may_be_declared_after_its_use)
{
    struct pt_cycle *c = pt_test_load_conf(
        "http = { access_log = \"off\"; limit_req = \"zone=later burst=1\";\n"
        "  limit_conn = \"conns 2\";\n"
        "  limit_req_zone = \"$binary_remote_addr zone=later:1m rate=5r/s\";\n"
        "  limit_conn_zone = \"$binary_remote_addr zone=conns:1m\";\n"
        "  server = ( { listen = [ \"127.0.0.1:1\" ]; location = ( { path = \"/\"; } ); } );\n"
        "};\n",
        path, err, sizeof(err));

    ck_assert_msg(c != NULL, "%s", err);
    pt_cycle_free(c);
}
END_TEST

START_TEST(zone_name_is_one_namespace_for_both_directives)
{
    assert_refused("  limit_req_zone = [ \"$arg_k zone=one:1m rate=1r/s\",\n"
                   "    \"$arg_u zone=one:1m rate=2r/s\" ];",
                   2, "limit_req_zone \"one\" is already bound to key \"$arg_k\"");
    assert_refused("  limit_req_zone = \"$arg_k zone=one:1m rate=1r/s\";\n"
                   "  limit_conn_zone = \"$arg_k zone=one:1m\";",
                   3,
                   "the shared memory zone \"one\" is already declared for a different use (by "
                   "limit_req_zone)");
    assert_refused("  limit_conn_zone = \"$arg_k zone=c:1m\";\n  limit_req = \"zone=c\";", 3,
                   "zone \"c\" is declared by limit_conn_zone, not by limit_req_zone");
}
END_TEST

START_TEST(zone_declarations_are_checked_as_nginx_checks_them)
{
    assert_refused("  limit_req_zone = \"$arg_k zone=one:16k rate=1r/s\";", 2,
                   "zone \"zone=one:16k\" is too small: at least 32k");
    assert_refused("  limit_req_zone = \"$arg_k zone=one rate=1r/s\";", 2,
                   "invalid zone size \"zone=one\"");
    assert_refused("  limit_req_zone = \"$arg_k zone=one:1m rate=1r/h\";", 2,
                   "invalid rate \"rate=1r/h\": use rate=Nr/s or rate=Nr/m");
    assert_refused("  limit_req_zone = \"$arg_k zone=one:1m rate=0r/s\";", 2,
                   "invalid rate \"rate=0r/s\"");
    assert_refused("  limit_req_zone = \"$arg_k zone=one:1m rate=1r/s sync\";", 2,
                   "\"sync\" in \"limit_req_zone\" (nginx Plus's zone synchronization) is not "
                   "supported");
    assert_refused("  limit_req_zone = \"$arg_k rate=1r/s\";", 2,
                   "invalid number of arguments in \"limit_req_zone\"");
    assert_refused("  limit_req_zone = \"$arg_k rate=1r/s rate=2r/s\";", 2,
                   "\"limit_req_zone\" must have \"zone\" parameter");
    assert_refused("  limit_req_zone = \"$arg_k zone=one:1m burst=5\";", 2,
                   "invalid parameter \"burst=5\" in \"limit_req_zone\"");
    assert_refused("  limit_req_zone = \"$no_such_variable zone=one:1m rate=1r/s\";", 2,
                   "unknown variable \"$no_such_variable\"");
    assert_refused("  limit_conn_zone = \"$arg_k zone=one:1m rate=1r/s\";", 2,
                   "invalid number of arguments in \"limit_conn_zone\": use \"KEY "
                   "zone=NAME:SIZE\"");
}
END_TEST

START_TEST(limits_are_checked_as_nginx_checks_them)
{
    const char *zones = "  limit_req_zone = \"$arg_k zone=r:1m rate=1r/s\";\n"
                        "  limit_conn_zone = \"$arg_k zone=c:1m\";\n";
    static const struct {
        const char *line, *message;
    } cases[] = {
        {"limit_req = \"zone=r burst=0\";", "invalid burst value \"burst=0\""},
        {"limit_req = \"zone=r delay=-1\";", "invalid delay value \"delay=-1\""},
        {"limit_req = \"zone=r fast\";", "invalid parameter \"fast\" in \"limit_req\""},
        {"limit_req = \"burst=5\";", "\"limit_req\" must have \"zone\" parameter"},
        {"limit_req = [ \"zone=r\", \"zone=r burst=2\" ];",
         "\"limit_req\" is duplicate: zone \"r\" is limited already at this level"},
        {"limit_req_status = 600;", "\"limit_req_status\" must be between 400 and 599, not 600"},
        {"limit_req_log_level = \"debug\";", "invalid value \"debug\" for \"limit_req_log_level\""},
        {"limit_conn = \"c 0\";", "invalid number of connections \"0\""},
        {"limit_conn = \"c 65536\";", "connection limit must be less 65536"},
        {"limit_conn = \"c\";", "invalid number of arguments in \"limit_conn\""},
        {"limit_conn = [ \"c 1\", \"c 2\" ];",
         "\"limit_conn\" is duplicate: zone \"c\" is limited already at this level"},
        {"limit_conn_status = 399;", "\"limit_conn_status\" must be between 400 and 599"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char http[512];
        snprintf(http, sizeof(http), "%s  %s", zones, cases[i].line);
        assert_refused(http, 4, cases[i].message);
    }
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("limit_req");
    TCase *t = tcase_create("bucket");
    TCase *c = tcase_create("config");

    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, bucket_drains_at_the_rate_and_delays_by_the_excess);
    tcase_add_test(t, keys_have_buckets_of_their_own);
    tcase_add_test(t, empty_key_is_not_counted);
    tcase_add_test(t, nodelay_passes_within_the_burst);
    tcase_add_test(t, per_minute_rate_and_delay_parameter);
    tcase_add_test(t, several_limits_account_together_and_the_longest_delay_wins);
    tcase_add_test(t, refusal_by_the_first_limit_leaves_the_second_alone);
    tcase_add_test(t, full_zone_evicts_its_oldest_key);
    suite_add_tcase(s, t);
    tcase_add_test(c, unknown_zone_is_an_error_at_the_limit_s_line);
    tcase_add_test(c, zone_may_be_declared_after_its_use);
    tcase_add_test(c, zone_name_is_one_namespace_for_both_directives);
    tcase_add_test(c, zone_declarations_are_checked_as_nginx_checks_them);
    tcase_add_test(c, limits_are_checked_as_nginx_checks_them);
    suite_add_tcase(s, c);
    return s;
}
