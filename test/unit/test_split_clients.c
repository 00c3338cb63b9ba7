/*
 * test_split_clients.c: the split_clients module (nginx's split_clients): its MurmurHash2
 * gives nginx's values, and a hash lands in the bucket nginx puts it in, to the unit at
 * every bound.  The source is $test_key, set by each test to the 4 bytes whose hash is the
 * one wanted (MurmurHash2 of 4 bytes can be inverted).
 *
 * Its configurations use the split_clients directive, so it needs modules: split_clients
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "core/cycle.h"
#include "core/pool.h"
#include "modules/split_clients.h"
#include "worker/http.h"
#include "worker/var.h"

#define M 0x5bd1e995u

static char path[64];
static char err[1024];
static struct pt_cycle *cycle;
static struct pt_pool *pool;
static char out[256];

static char key[4];
static int key_reads;

static int get_test_key(struct pt_request *r, struct pt_str arg, struct pt_str *val)
{
    (void)r, (void)arg;
    key_reads++;
    *val = (struct pt_str){key, sizeof(key)};
    return PT_OK;
}

static void setup(void)
{
    ck_assert_int_eq(pt_var_register("test_key", 0, get_test_key), PT_OK);
    pool = pt_pool_create(4096);
    ck_assert_ptr_nonnull(pool);
    cycle = NULL;
}

static void teardown(void)
{
    pt_cycle_free(cycle);
    pt_pool_destroy(pool);
}

static uint32_t inverse_of_m(void)
{
    uint32_t inv = M;

    /* Newton's iteration: each step doubles the correct low bits. */
    for (int i = 0; i < 5; i++)
        inv *= 2 - M * inv;
    return inv;
}

/* Sets <key> to the 4 bytes whose MurmurHash2 is <hash>: every step of the hash of 4
 * bytes (the final mix, the mix of the one block) can be undone. */
static void key_with_hash(uint32_t hash)
{
    uint32_t inv = inverse_of_m(), h = hash, k;

    h ^= h >> 15 ^ h >> 30;
    h *= inv;
    h ^= h >> 13 ^ h >> 26;
    k = (h ^ 4u * M) * inv;
    k ^= k >> 24;
    k *= inv;
    for (int i = 0; i < 4; i++)
        key[i] = (char)(k >> 8 * i);
    ck_assert_uint_eq(pt_murmur_hash2(key, 4), hash);
}

/* Loads <text> as a configuration file: the cycle, or NULL with <err> filled. */
static struct pt_cycle *load(const char *text)
{
    cycle = pt_test_load_conf(text, path, err, sizeof(err));
    return cycle;
}

/* Loads $v, split by $test_key into <buckets> (libconfig strings, comma-separated). */
static void load_split(const char *buckets)
{
    char text[4096];

    snprintf(text, sizeof(text),
             "http = {\n  split_clients = ( { source = \"$test_key\"; variable = \"$v\";\n"
             "    buckets = ( %s ); } );\n};\n",
             buckets);
    ck_assert_msg(load(text) != NULL, "%s", err);
}

static struct pt_request *new_request(void)
{
    struct pt_request *r = pt_palloc(pool, sizeof(*r));

    ck_assert_ptr_nonnull(r);
    r->pool = pool;
    r->main_conf = cycle->main_conf;
    r->ctx = pt_palloc(pool, (size_t)pt_modules_count() * sizeof(void *));
    ck_assert_ptr_nonnull(r->ctx);
    return r;
}

static const char *value_in(struct pt_request *r)
{
    struct pt_str v;

    ck_assert_int_eq(pt_var_value(r, "v", &v), PT_OK);
    snprintf(out, sizeof(out), "%.*s", (int)v.len, v.p);
    return out;
}

/* The bucket of a request whose source hashes to <hash>. */
static const char *bucket_of(uint32_t hash)
{
    key_with_hash(hash);
    return value_in(new_request());
}

static void assert_error(const char *buckets, int line, const char *message)
{
    char text[4096], want[128];

    snprintf(text, sizeof(text),
             "http = {\n  split_clients = ( { source = \"$test_key\"; variable = \"$v\";\n"
             "    buckets = (\n%s ); } );\n};\n",
             buckets);
    ck_assert_msg(load(text) == NULL, "loaded: %s", buckets);
    snprintf(want, sizeof(want), "%s:%d: ", path, line);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "\"%s\" does not start with \"%s\"", err,
                  want);
    ck_assert_msg(strstr(err, message) != NULL, "\"%s\" does not say \"%s\"", err, message);
}

/* ---- the hash ------------------------------------------------------------------------------ */

START_TEST(murmur_hash2_gives_nginxs_values)
{
    /* From nginx's own ngx_murmur_hash2 (src/core/ngx_murmurhash.c), compiled apart. */
    static const struct {
        const char *s;
        uint32_t h;
    } v[] = {
        {"", 0x0},
        {"a", 0x92685f5e},
        {"ab", 0x1aa14063},
        {"abc", 0x13577c9b},
        {"abcd", 0x26873021},
        {"hello", 0xe56129cb},
        {"127.0.0.1AAA", 0xb5fc5e4b},
        {"The quick brown fox jumps over the lazy dog", 0x212729d0},
        {"\xff\xfe\x80\x81\x7f", 0x1b1e9dbe},
    };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        ck_assert_msg(pt_murmur_hash2(v[i].s, strlen(v[i].s)) == v[i].h, "\"%s\": %#x, not %#x",
                      v[i].s, pt_murmur_hash2(v[i].s, strlen(v[i].s)), v[i].h);
}
END_TEST

/* ---- buckets --------------------------------------------------------------------------------- */

START_TEST(a_hash_below_a_bound_takes_the_bucket_and_the_bound_the_next)
{
    /* 0.5%: 50 * 0xffffffff / 10000 = 21474836; 2.0% adds 85899345: 107374181 */
    load_split("\"0.5% .one\", \"2.0% .two\", \"* rest\"");
    ck_assert_str_eq(bucket_of(0), ".one");
    ck_assert_str_eq(bucket_of(21474835), ".one");
    ck_assert_str_eq(bucket_of(21474836), ".two");
    ck_assert_str_eq(bucket_of(107374180), ".two");
    ck_assert_str_eq(bucket_of(107374181), "rest");
    ck_assert_str_eq(bucket_of(0xffffffff), "rest");
}
END_TEST

START_TEST(each_bucket_is_rounded_down_on_its_own)
{
    /* 0.01% is 429496.7295 hashes: two of them end at 858992, not at 858993 */
    load_split("\"0.01% a\", \"0.01% b\", \"* c\"");
    ck_assert_str_eq(bucket_of(429495), "a");
    ck_assert_str_eq(bucket_of(429496), "b");
    ck_assert_str_eq(bucket_of(858991), "b");
    ck_assert_str_eq(bucket_of(858992), "c");
}
END_TEST

START_TEST(the_bucket_that_makes_100_percent_takes_every_hash_left)
{
    load_split("\"50% a\", \"50% b\"");
    ck_assert_str_eq(bucket_of(2147483646), "a");
    ck_assert_str_eq(bucket_of(2147483647), "b");
    ck_assert_str_eq(bucket_of(0xffffffff), "b");
}
END_TEST

START_TEST(percentages_short_of_100_leave_the_rest_empty)
{
    load_split("\"10% a\"");
    ck_assert_str_eq(bucket_of(429496728), "a");
    ck_assert_str_eq(bucket_of(429496729), "");
}
END_TEST

START_TEST(empty_value_and_quoted_words)
{
    load_split("\"50% 'a b'\", \"* \\\"\\\"\"");
    ck_assert_str_eq(bucket_of(0), "a b");
    ck_assert_str_eq(bucket_of(0xffffffff), "");
}
END_TEST

START_TEST(value_is_computed_once_per_request)
{
    struct pt_request *r;

    load_split("\"50% a\", \"* b\"");
    key_with_hash(0);
    r = new_request();
    key_reads = 0;
    ck_assert_str_eq(value_in(r), "a");
    key_with_hash(0xffffffff);
    ck_assert_str_eq(value_in(r), "a");
    ck_assert_int_eq(key_reads, 1);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------- */

START_TEST(percent_total_over_100_is_refused_at_its_bucket)
{
    assert_error("  \"60% a\",\n  \"40.01% b\" ", 5, "percent total is greater than 100%");
    assert_error("  \"* a\",\n  \"1% b\" ", 5, "percent total is greater than 100%");
}
END_TEST

START_TEST(invalid_percentages_are_refused)
{
    assert_error("  \"0% a\" ", 4, "invalid percent value \"0%\"");
    assert_error("  \"1.234% a\" ", 4, "invalid percent value \"1.234%\"");
    assert_error("  \"50 a\" ", 4, "invalid percent value \"50\"");
    assert_error("  \"-5% a\" ", 4, "invalid percent value \"-5%\"");
}
END_TEST

START_TEST(bucket_without_a_value_is_refused)
{
    assert_error("  \"50%\" ", 4, "invalid bucket \"50%\"");
}
END_TEST

START_TEST(a_core_variable_cannot_be_redefined)
{
    ck_assert_ptr_null(load("http = {\n  split_clients = ( { source = \"$test_key\";\n"
                            "    variable = \"$host\"; } );\n};\n"));
    ck_assert_msg(strstr(err, ":3: variable \"$host\" is already defined") != NULL, "%s", err);
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("split_clients");
    TCase *h = tcase_create("hash");
    TCase *b = tcase_create("buckets");
    TCase *e = tcase_create("errors");

    tcase_add_test(h, murmur_hash2_gives_nginxs_values);
    suite_add_tcase(s, h);

    tcase_add_checked_fixture(b, setup, teardown);
    tcase_add_test(b, a_hash_below_a_bound_takes_the_bucket_and_the_bound_the_next);
    tcase_add_test(b, each_bucket_is_rounded_down_on_its_own);
    tcase_add_test(b, the_bucket_that_makes_100_percent_takes_every_hash_left);
    tcase_add_test(b, percentages_short_of_100_leave_the_rest_empty);
    tcase_add_test(b, empty_value_and_quoted_words);
    tcase_add_test(b, value_is_computed_once_per_request);
    suite_add_tcase(s, b);

    tcase_add_checked_fixture(e, setup, teardown);
    tcase_add_test(e, percent_total_over_100_is_refused_at_its_bucket);
    tcase_add_test(e, invalid_percentages_are_refused);
    tcase_add_test(e, bucket_without_a_value_is_refused);
    tcase_add_test(e, a_core_variable_cannot_be_redefined);
    suite_add_tcase(s, e);
    return s;
}
