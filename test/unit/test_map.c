/*
 * test_map.c: the map module (nginx's map): the order in which keys are tried (exact, the
 * masks of hostnames, regexes in order, default), captures and variables in values, the
 * value kept for the rest of a request, and configuration errors with their lines.  Maps
 * match the value of $test_key, which each test sets.
 *
 * Its configurations use the map directive, so it needs modules: map
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "core/cycle.h"
#include "core/pool.h"
#include "worker/http.h"
#include "worker/var.h"

static char path[64];
static char err[1024];
static struct pt_cycle *cycle;
static struct pt_pool *pool;
static struct pt_request *r;
static char out[4096];

/* The source every map of these tests matches, and how many times it was read. */
static struct pt_str test_key;
static int key_reads;

static int get_test_key(struct pt_request *req, struct pt_str arg, struct pt_str *val)
{
    (void)req, (void)arg;
    key_reads++;
    *val = test_key;
    return PT_OK;
}

static void setup(void)
{
    ck_assert_int_eq(pt_var_register("test_key", 0, get_test_key), PT_OK);
    pool = pt_pool_create(4096);
    ck_assert_ptr_nonnull(pool);
    cycle = NULL;
    r = NULL;
}

static void teardown(void)
{
    pt_cycle_free(cycle);
    pt_pool_destroy(pool);
}

/* Loads <text> as a configuration file: the cycle, or NULL with <err> filled. */
static struct pt_cycle *load(const char *text)
{
    cycle = pt_test_load_conf(text, path, err, sizeof(err));
    return cycle;
}

/* Loads a configuration whose http block is <http>; it must load. */
static void load_http(const char *http)
{
    char text[8192];

    snprintf(text, sizeof(text), "http = {\n%s\n};\n", http);
    ck_assert_msg(load(text) != NULL, "%s", err);
}

/* Loads the map $v of $test_key with <entries> (libconfig strings, comma-separated). */
static void load_map(const char *entries)
{
    char http[4096];

    snprintf(http, sizeof(http),
             "map = ( { source = \"$test_key\"; variable = \"$v\";\n"
             "          entries = ( %s ); } );",
             entries);
    load_http(http);
}

/* A new request of the loaded configuration. */
static void new_request(void)
{
    r = pt_palloc(pool, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    r->pool = pool;
    r->main_conf = cycle->main_conf;
    r->ctx = pt_palloc(pool, (size_t)pt_modules_count() * sizeof(void *));
    ck_assert_ptr_nonnull(r->ctx);
}

/* The value of $<name> in the current request. */
static const char *value_now(const char *name)
{
    struct pt_str v;

    ck_assert_int_eq(pt_var_value(r, name, &v), PT_OK);
    snprintf(out, sizeof(out), "%.*s", (int)v.len, v.p);
    return out;
}

/* The value of $<name> in a new request whose $test_key is <key>. */
static const char *value(const char *name, const char *key)
{
    test_key = pt_str_c(key);
    new_request();
    return value_now(name);
}

/* Loading <http> fails at <line> with a message saying <message>. */
static void assert_error(const char *http, int line, const char *message)
{
    char text[8192], want[128];

    /* "http = {" is line 1 */
    snprintf(text, sizeof(text), "http = {\n%s\n};\n", http);
    ck_assert_msg(load(text) == NULL, "loaded: %s", http);
    snprintf(want, sizeof(want), "%s:%d: ", path, line);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "\"%s\" does not start with \"%s\"", err,
                  want);
    ck_assert_msg(strstr(err, message) != NULL, "\"%s\" does not say \"%s\"", err, message);
}

/* ---- the order of matching ------------------------------------------------------------ */

START_TEST(exact_key_matches_ignoring_case)
{
    load_map("\"default no\", \"Desktop yes\"");
    ck_assert_str_eq(value("v", "desktop"), "yes");
    ck_assert_str_eq(value("v", "DESKTOP"), "yes");
    ck_assert_str_eq(value("v", "desktops"), "no");
}
END_TEST

START_TEST(exact_key_wins_over_an_earlier_regex)
{
    load_map("\"~^abc regex\", \"abc exact\"");
    ck_assert_str_eq(value("v", "abc"), "exact");
    ck_assert_str_eq(value("v", "abcd"), "regex");
}
END_TEST

START_TEST(regexes_are_tried_in_the_order_written)
{
    load_map("\"~b second\", \"~^a first\", \"~c third\"");
    ck_assert_str_eq(value("v", "abc"), "second");
    ck_assert_str_eq(value("v", "ac"), "first");
    ck_assert_str_eq(value("v", "c"), "third");
}
END_TEST

START_TEST(tilde_star_ignores_case_and_tilde_does_not)
{
    load_map("\"~^iphone sensitive\", \"~*android insensitive\"");
    ck_assert_str_eq(value("v", "iPhone"), "");
    ck_assert_str_eq(value("v", "iphone"), "sensitive");
    ck_assert_str_eq(value("v", "ANDROID"), "insensitive");
}
END_TEST

START_TEST(default_when_nothing_matches_and_empty_without_one)
{
    load_http("map = ( { source = \"$test_key\"; variable = \"$with\";\n"
              "          entries = ( \"a 1\", \"default fallback\" ); },\n"
              "        { source = \"$test_key\"; variable = \"$without\";\n"
              "          entries = ( \"a 1\" ); } );");
    ck_assert_str_eq(value("with", "b"), "fallback");
    ck_assert_str_eq(value("without", "b"), "");
    ck_assert_str_eq(value("without", "a"), "1");
}
END_TEST

START_TEST(empty_source_matches_an_empty_key_but_never_a_regex)
{
    load_http("map = ( { source = \"$test_key\"; variable = \"$keyed\";\n"
              "          entries = ( \"'' empty\", \"~^$ regex\" ); },\n"
              "        { source = \"$test_key\"; variable = \"$regex_only\";\n"
              "          entries = ( \"~^$ regex\", \"default dflt\" ); } );");
    ck_assert_str_eq(value("keyed", ""), "empty");
    ck_assert_str_eq(value("regex_only", ""), "dflt");
}
END_TEST

START_TEST(backslash_makes_a_parameter_name_a_key)
{
    load_map("\"default dflt\", \"\\\\\\\\default key\", \"\\\\\\\\~x tilde\"");
    ck_assert_str_eq(value("v", "default"), "key");
    ck_assert_str_eq(value("v", "~x"), "tilde");
    ck_assert_str_eq(value("v", "x"), "dflt");
}
END_TEST

START_TEST(entries_are_split_as_nginx_splits_words)
{
    load_map("\"'a b' \\\"c d\\\"\", \"\\\"q\\\\\\\"uote\\\" x\\\\\\\\y\", \"semi done;\"");
    ck_assert_str_eq(value("v", "a b"), "c d");
    ck_assert_str_eq(value("v", "q\"uote"), "x\\y");
    ck_assert_str_eq(value("v", "semi"), "done");
}
END_TEST

/* ---- values ------------------------------------------------------------------------------- */

START_TEST(positional_captures_of_the_matching_regex)
{
    load_map("\"~^(\\\\w+)-(\\\\w+)(-(x))?$ $2.$1[$4]\", \"default [$1]\"");
    ck_assert_str_eq(value("v", "ab-cd"), "cd.ab[]");
    ck_assert_str_eq(value("v", "ab-cd-x"), "cd.ab[x]");
    /* $1 in the default's value: no regex matched, nothing to capture */
    ck_assert_str_eq(value("v", "nothing here"), "[]");
}
END_TEST

START_TEST(named_captures_with_and_without_braces)
{
    load_map("\"~^(?<user>[a-z]+)@(?<Domain>.+)$ ${user}_at_$domain\", \"~(?<other>z) $user\"");
    ck_assert_str_eq(value("v", "bob@example.com"), "bob_at_example.com");
    /* a name of another regex of the map is empty here */
    ck_assert_str_eq(value("v", "z"), "");
}
END_TEST

START_TEST(values_may_use_variables)
{
    load_map("\"~^k(.) <$1:$test_key>\", \"default =$test_key=\"");
    ck_assert_str_eq(value("v", "k1"), "<1:k1>");
    ck_assert_str_eq(value("v", "other"), "=other=");
}
END_TEST

START_TEST(a_map_may_use_another_map)
{
    load_http("map = ( { source = \"x$inner\"; variable = \"$outer\";\n"
              "          entries = ( \"xin out\", \"default none\" ); },\n"
              "        { source = \"$test_key\"; variable = \"$inner\";\n"
              "          entries = ( \"a in\" ); } );");
    ck_assert_str_eq(value("outer", "a"), "out");
    ck_assert_str_eq(value("outer", "b"), "none");
}
END_TEST

START_TEST(value_is_computed_once_per_request)
{
    load_map("\"~(.) $1\"");
    test_key = PT_STR("a");
    new_request();
    key_reads = 0;
    ck_assert_str_eq(value_now("v"), "a");
    test_key = PT_STR("b");
    ck_assert_str_eq(value_now("v"), "a");
    ck_assert_int_eq(key_reads, 1);
}
END_TEST

START_TEST(volatile_map_is_computed_at_each_use)
{
    load_map("\"volatile\", \"~(.) $1\"");
    test_key = PT_STR("a");
    new_request();
    ck_assert_str_eq(value_now("v"), "a");
    test_key = PT_STR("b");
    ck_assert_str_eq(value_now("v"), "b");
}
END_TEST

START_TEST(map_using_itself_is_stopped)
{
    load_http(
        "map = ( { source = \"$loop\"; variable = \"$loop\"; entries = ( \"default x\" ); } );");
    ck_assert_str_eq(value("loop", ""), "x");
}
END_TEST

/* ---- hostnames ------------------------------------------------------------------------------ */

#define HOSTS                                                                        \
    "\"hostnames\", \"default none\", \"example.com exact\", \".example.org dot\", " \
    "\"*.example.net star\", \"*.a.example.net deeper\", \"www.example.* tail\", "   \
    "\"www.* shorter-tail\", \"~^www\\\\.example\\\\.net$ regex\", \"~\\\\.test$ regex-test\""

START_TEST(dot_mask_matches_the_name_and_its_subdomains)
{
    load_map(HOSTS);
    ck_assert_str_eq(value("v", "example.org"), "dot");
    ck_assert_str_eq(value("v", "b.a.EXAMPLE.org"), "dot");
    ck_assert_str_eq(value("v", "xexample.org"), "none");
}
END_TEST

START_TEST(star_mask_matches_subdomains_only)
{
    load_map(HOSTS);
    ck_assert_str_eq(value("v", "example.net"), "none");
    ck_assert_str_eq(value("v", "b.example.net"), "star");
}
END_TEST

START_TEST(longest_mask_wins)
{
    load_map(HOSTS);
    ck_assert_str_eq(value("v", "b.a.example.net"), "deeper");
    ck_assert_str_eq(value("v", "a.example.net"), "star");
    ck_assert_str_eq(value("v", "www.example.co.uk"), "tail");
    ck_assert_str_eq(value("v", "www.other.com"), "shorter-tail");
    ck_assert_str_eq(value("v", "www.example"), "shorter-tail");
}
END_TEST

START_TEST(exact_then_head_masks_then_tail_masks_then_regexes)
{
    load_map(HOSTS);
    ck_assert_str_eq(value("v", "example.com"), "exact");
    /* *.example.net before www.* and the regex */
    ck_assert_str_eq(value("v", "www.example.net"), "star");
    ck_assert_str_eq(value("v", "www.x.test"), "shorter-tail");
    ck_assert_str_eq(value("v", "x.test"), "regex-test");
}
END_TEST

START_TEST(trailing_dot_of_a_host_name_is_dropped)
{
    load_map(HOSTS);
    ck_assert_str_eq(value("v", "example.com."), "exact");
    ck_assert_str_eq(value("v", "b.example.org."), "dot");
}
END_TEST

START_TEST(masks_are_plain_keys_without_hostnames)
{
    load_map("\"default none\", \"*.example.com star\", \".example.org dot\"");
    ck_assert_str_eq(value("v", "a.example.com"), "none");
    ck_assert_str_eq(value("v", "*.example.com"), "star");
    ck_assert_str_eq(value("v", "example.org"), "none");
    ck_assert_str_eq(value("v", ".example.org"), "dot");
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------- */

START_TEST(bad_regex_is_reported_with_pcre2s_reason_and_offset)
{
    assert_error("map = ( { source = \"$test_key\"; variable = \"$v\"; entries = (\n"
                 "  \"a 1\",\n  \"~^(a 2\" ); } );",
                 4, "invalid regex \"^(a\": missing closing parenthesis at offset 3");
}
END_TEST

START_TEST(unknown_variable_in_source_is_reported)
{
    assert_error("map = ( { variable = \"$v\";\n  source = \"$nope\"; } );", 3,
                 "unknown variable \"$nope\"");
}
END_TEST

START_TEST(unknown_variable_in_value_is_reported)
{
    assert_error("map = ( { source = \"$test_key\"; variable = \"$v\"; entries = (\n"
                 "  \"a 1\",\n  \"b x$nope\" ); } );",
                 4, "unknown variable \"$nope\"");
}
END_TEST

START_TEST(duplicate_variable_is_refused)
{
    assert_error("map = ( { source = \"$test_key\"; variable = \"$v\"; },\n"
                 "  { source = \"$test_key\";\n    variable = \"$V\"; } );",
                 4, "duplicate variable \"$v\"");
}
END_TEST

START_TEST(a_core_variable_cannot_be_redefined)
{
    assert_error("map = ( { source = \"$test_key\";\n  variable = \"$host\"; } );", 3,
                 "variable \"$host\" is already defined");
}
END_TEST

START_TEST(conflicting_keys_are_refused)
{
    assert_error("map = ( { source = \"$test_key\"; variable = \"$v\"; entries = (\n"
                 "  \"Abc 1\",\n  \"aBC 2\" ); } );",
                 4, "conflicting parameter \"abc\"");
    assert_error("map = ( { source = \"$test_key\"; variable = \"$v\"; entries = ( \"hostnames\",\n"
                 "  \"example.com 1\",\n  \".example.com 2\" ); } );",
                 4, "conflicting parameter \".example.com\"");
    assert_error("map = ( { source = \"$test_key\"; variable = \"$v\"; entries = ( \"hostnames\",\n"
                 "  \"*.example.com 1\",\n  \".example.com 2\" ); } );",
                 4, "conflicting parameter \".example.com\"");
}
END_TEST

START_TEST(invalid_masks_are_refused)
{
    assert_error("map = ( { source = \"$test_key\"; variable = \"$v\"; entries = ( \"hostnames\",\n"
                 "  \"a.*.com 1\" ); } );",
                 3, "invalid hostname or wildcard \"a.*.com\"");
}
END_TEST

START_TEST(duplicate_default_is_refused)
{
    assert_error("map = ( { source = \"$test_key\"; variable = \"$v\"; entries = (\n"
                 "  \"default 1\",\n  \"default 2\" ); } );",
                 4, "duplicate default map parameter");
}
END_TEST

START_TEST(entry_with_three_words_is_refused)
{
    assert_error("map = ( { source = \"$test_key\"; variable = \"$v\"; entries = (\n"
                 "  \"a b c\" ); } );",
                 3, "invalid map entry \"a b c\"");
}
END_TEST

START_TEST(unknown_setting_names_the_entries_form)
{
    assert_error("map = ( { source = \"$test_key\"; variable = \"$v\";\n  hostnames = true; } );",
                 3, "unknown setting \"hostnames\" in a map");
}
END_TEST

/* ---- the worker's memory of regex outcomes (map_regex_cache) ------------------------- */

/* The map these tests share: captures, a caseless regex, a default; <cache> the setting. */
static void load_cached_map(const char *cache)
{
    char http[1024];

    snprintf(http, sizeof(http),
             "%s\n"
             "map = ( { source = \"$test_key\"; variable = \"$v\";\n"
             "          entries = ( \"default none\", \"~^(?<w>[a-z]+)-(\\\\d+)$ $w:$2\",\n"
             "                      \"~*bot bot\", \"~(x)?y$ [$1]\" ); } );",
             cache);
    load_http(http);
}

/* The values of a run of keys, each asked three times in a row and again after others. */
static void assert_cached_values(void)
{
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3; i++) {
            ck_assert_str_eq(value("v", "abc-12"), "abc:12");
            ck_assert_str_eq(value("v", "x-9"), "x:9");
            ck_assert_str_eq(value("v", "GoogleBOT/2.1"), "bot");
            ck_assert_str_eq(value("v", "ABC-12"), "none");
            ck_assert_str_eq(value("v", "y"), "[]"); /* a group that took no part */
            ck_assert_str_eq(value("v", "xy"), "[x]");
        }
        ck_assert_str_eq(value("v", "abc-12"), "abc:12");
    }
}

START_TEST(remembered_outcomes_give_the_same_values_and_captures)
{
    load_cached_map("");
    assert_cached_values();
}
END_TEST

START_TEST(values_sharing_the_one_slot_of_a_cache_of_one_replace_each_other)
{
    load_cached_map("map_regex_cache = 1;");
    assert_cached_values();
}
END_TEST

START_TEST(cache_turned_off_gives_the_same_values)
{
    load_cached_map("map_regex_cache = 0;");
    assert_cached_values();
}
END_TEST

START_TEST(value_too_long_to_remember_is_matched_each_time)
{
    static char key[1000];

    memset(key, 'a', 400);
    strcpy(key + 400, "-77");
    load_cached_map("");
    for (int i = 0; i < 3; i++) {
        const char *got = value("v", key);
        ck_assert_uint_eq(strlen(got), 403);
        ck_assert_str_eq(got + 400, ":77");
    }
    /* Same start, other end: not taken for the one before. */
    strcpy(key + 400, "-78");
    ck_assert_str_eq(value("v", key) + 400, ":78");
}
END_TEST

START_TEST(values_that_differ_only_past_a_word_are_told_apart)
{
    load_cached_map("");
    /* Same length, same first eight bytes and same hash slot or not: the key is compared. */
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(value("v", "abcdefgh-1"), "abcdefgh:1");
        ck_assert_str_eq(value("v", "abcdefgh-2"), "abcdefgh:2");
        ck_assert_str_eq(value("v", "abcdefgh-x"), "none");
    }
}
END_TEST

START_TEST(cache_size_out_of_range_is_refused)
{
    assert_error("map_regex_cache = 70000;", 2, "map_regex_cache");
    assert_error("map_regex_cache = -1;", 2, "map_regex_cache");
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("map");
    TCase *o = tcase_create("order");
    TCase *v = tcase_create("values");
    TCase *h = tcase_create("hostnames");
    TCase *m = tcase_create("regex cache");
    TCase *e = tcase_create("errors");

    tcase_add_checked_fixture(o, setup, teardown);
    tcase_add_test(o, exact_key_matches_ignoring_case);
    tcase_add_test(o, exact_key_wins_over_an_earlier_regex);
    tcase_add_test(o, regexes_are_tried_in_the_order_written);
    tcase_add_test(o, tilde_star_ignores_case_and_tilde_does_not);
    tcase_add_test(o, default_when_nothing_matches_and_empty_without_one);
    tcase_add_test(o, empty_source_matches_an_empty_key_but_never_a_regex);
    tcase_add_test(o, backslash_makes_a_parameter_name_a_key);
    tcase_add_test(o, entries_are_split_as_nginx_splits_words);
    suite_add_tcase(s, o);

    tcase_add_checked_fixture(v, setup, teardown);
    tcase_add_test(v, positional_captures_of_the_matching_regex);
    tcase_add_test(v, named_captures_with_and_without_braces);
    tcase_add_test(v, values_may_use_variables);
    tcase_add_test(v, a_map_may_use_another_map);
    tcase_add_test(v, value_is_computed_once_per_request);
    tcase_add_test(v, volatile_map_is_computed_at_each_use);
    tcase_add_test(v, map_using_itself_is_stopped);
    suite_add_tcase(s, v);

    tcase_add_checked_fixture(h, setup, teardown);
    tcase_add_test(h, dot_mask_matches_the_name_and_its_subdomains);
    tcase_add_test(h, star_mask_matches_subdomains_only);
    tcase_add_test(h, longest_mask_wins);
    tcase_add_test(h, exact_then_head_masks_then_tail_masks_then_regexes);
    tcase_add_test(h, trailing_dot_of_a_host_name_is_dropped);
    tcase_add_test(h, masks_are_plain_keys_without_hostnames);
    suite_add_tcase(s, h);

    tcase_add_checked_fixture(m, setup, teardown);
    tcase_add_test(m, remembered_outcomes_give_the_same_values_and_captures);
    tcase_add_test(m, values_sharing_the_one_slot_of_a_cache_of_one_replace_each_other);
    tcase_add_test(m, cache_turned_off_gives_the_same_values);
    tcase_add_test(m, value_too_long_to_remember_is_matched_each_time);
    tcase_add_test(m, values_that_differ_only_past_a_word_are_told_apart);
    tcase_add_test(m, cache_size_out_of_range_is_refused);
    suite_add_tcase(s, m);

    tcase_add_checked_fixture(e, setup, teardown);
    tcase_add_test(e, bad_regex_is_reported_with_pcre2s_reason_and_offset);
    tcase_add_test(e, unknown_variable_in_source_is_reported);
    tcase_add_test(e, unknown_variable_in_value_is_reported);
    tcase_add_test(e, duplicate_variable_is_refused);
    tcase_add_test(e, a_core_variable_cannot_be_redefined);
    tcase_add_test(e, conflicting_keys_are_refused);
    tcase_add_test(e, invalid_masks_are_refused);
    tcase_add_test(e, duplicate_default_is_refused);
    tcase_add_test(e, entry_with_three_words_is_refused);
    tcase_add_test(e, unknown_setting_names_the_entries_form);
    suite_add_tcase(s, e);
    return s;
}
