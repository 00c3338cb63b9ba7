/*
 * test_router.c: server_name and location matching (worker/router.h), nginx semantics.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "check_main.h"
#include "worker/router.h"

/* Distinct values to store; only their addresses matter. */
static int A, B, C, D, E;

static struct pt_names *names;
static struct pt_locations *locs;
static char err[256];

static void setup(void)
{
    names = pt_names_create();
    locs = pt_locations_create();
    ck_assert_ptr_nonnull(names);
    ck_assert_ptr_nonnull(locs);
    err[0] = '\0';
}

static void teardown(void)
{
    pt_names_free(names);
    pt_locations_free(locs);
}

static void add_name(const char *name, void *value)
{
    ck_assert_msg(pt_names_add(names, name, value, err, sizeof(err)) == PT_OK, "adding \"%s\": %s",
                  name, err);
}

static void *find_name(const char *host)
{
    return pt_names_find(names, host, strlen(host));
}

static void add_loc(const char *spec, void *value)
{
    ck_assert_msg(pt_locations_add(locs, spec, value, err, sizeof(err)) == PT_OK,
                  "adding \"%s\": %s", spec, err);
}

static void *find_loc(const char *path)
{
    return pt_locations_find(locs, path, strlen(path), NULL, NULL);
}

/* ---- server names: each form ------------------------------------------------------- */

START_TEST(exact_name_matches_itself_only)
{
    add_name("example.com", &A);
    ck_assert_ptr_eq(find_name("example.com"), &A);
    ck_assert_ptr_null(find_name("www.example.com"));
    ck_assert_ptr_null(find_name("example.co"));
}
END_TEST

START_TEST(unknown_host_finds_nothing)
{
    add_name("example.com", &A);
    ck_assert_ptr_null(find_name("example.org"));
}
END_TEST

START_TEST(leading_wildcard_matches_any_depth_of_subdomain)
{
    add_name("*.example.com", &A);
    ck_assert_ptr_eq(find_name("www.example.com"), &A);
    ck_assert_ptr_eq(find_name("a.b.example.com"), &A);
}
END_TEST

START_TEST(leading_wildcard_does_not_match_the_bare_domain)
{
    add_name("*.example.com", &A);
    ck_assert_ptr_null(find_name("example.com"));
    ck_assert_ptr_null(find_name("badexample.com"));
}
END_TEST

START_TEST(trailing_wildcard_matches_any_suffix)
{
    add_name("www.example.*", &A);
    ck_assert_ptr_eq(find_name("www.example.com"), &A);
    ck_assert_ptr_eq(find_name("www.example.co.uk"), &A);
}
END_TEST

START_TEST(trailing_wildcard_needs_a_label_after_the_dot)
{
    add_name("www.example.*", &A);
    ck_assert_ptr_null(find_name("www.example"));
    ck_assert_ptr_null(find_name("www.examples.com"));
}
END_TEST

START_TEST(dot_name_matches_bare_domain_and_subdomains)
{
    add_name(".example.com", &A);
    ck_assert_ptr_eq(find_name("example.com"), &A);
    ck_assert_ptr_eq(find_name("www.example.com"), &A);
    ck_assert_ptr_null(find_name("xexample.com"));
}
END_TEST

START_TEST(regex_name_matches)
{
    add_name("~^www\\d+\\.example\\.com$", &A);
    ck_assert_ptr_eq(find_name("www12.example.com"), &A);
    ck_assert_ptr_null(find_name("www.example.com"));
}
END_TEST

START_TEST(regex_name_is_case_insensitive)
{
    add_name("~^WWW\\d+\\.example\\.com$", &A);
    ck_assert_ptr_eq(find_name("www7.EXAMPLE.com"), &A);
}
END_TEST

START_TEST(empty_name_matches_request_without_host)
{
    add_name("", &A);
    ck_assert_ptr_eq(find_name(""), &A);
    ck_assert_ptr_null(find_name("example.com"));
}
END_TEST

/* ---- server names: priority -------------------------------------------------------- */

START_TEST(exact_name_beats_wildcards_and_regex)
{
    add_name("~^www\\.", &D);
    add_name("www.example.*", &C);
    add_name("*.example.com", &B);
    add_name("www.example.com", &A);
    ck_assert_ptr_eq(find_name("www.example.com"), &A);
}
END_TEST

START_TEST(leading_wildcard_beats_trailing_wildcard)
{
    add_name("www.example.*", &B);
    add_name("*.example.com", &A);
    ck_assert_ptr_eq(find_name("www.example.com"), &A);
}
END_TEST

START_TEST(trailing_wildcard_beats_regex)
{
    add_name("~example", &B);
    add_name("www.example.*", &A);
    ck_assert_ptr_eq(find_name("www.example.com"), &A);
}
END_TEST

START_TEST(longest_leading_wildcard_wins)
{
    add_name("*.b.example.com", &B);
    add_name("*.example.com", &A);
    ck_assert_ptr_eq(find_name("a.b.example.com"), &B);
    ck_assert_ptr_eq(find_name("a.c.example.com"), &A);
    ck_assert_ptr_eq(find_name("b.example.com"), &A);
}
END_TEST

START_TEST(longest_trailing_wildcard_wins)
{
    add_name("www.*", &A);
    add_name("www.example.*", &B);
    ck_assert_ptr_eq(find_name("www.example.com"), &B);
    ck_assert_ptr_eq(find_name("www.other.com"), &A);
}
END_TEST

START_TEST(first_regex_added_wins)
{
    add_name("~^www", &A);
    add_name("~^www\\d+", &B);
    ck_assert_ptr_eq(find_name("www1.example.com"), &A);
}
END_TEST

START_TEST(exact_half_of_dot_name_beats_other_wildcards)
{
    add_name("example.*", &B);
    add_name(".example.com", &A);
    ck_assert_ptr_eq(find_name("example.com"), &A);
}
END_TEST

/* ---- server names: host normalization ---------------------------------------------- */

START_TEST(port_is_ignored)
{
    add_name("example.com", &A);
    ck_assert_ptr_eq(find_name("example.com:8080"), &A);
}
END_TEST

START_TEST(port_is_ignored_for_wildcards_and_regex)
{
    add_name("*.example.com", &A);
    add_name("~^api\\.example\\.org$", &B);
    ck_assert_ptr_eq(find_name("www.example.com:443"), &A);
    ck_assert_ptr_eq(find_name("api.example.org:8443"), &B);
}
END_TEST

START_TEST(ipv6_literal_keeps_its_colons_and_drops_the_port)
{
    add_name("[::1]", &A);
    ck_assert_ptr_eq(find_name("[::1]:8080"), &A);
    ck_assert_ptr_eq(find_name("[::1]"), &A);
}
END_TEST

START_TEST(trailing_dot_in_host_is_ignored)
{
    add_name("example.com", &A);
    ck_assert_ptr_eq(find_name("example.com."), &A);
    ck_assert_ptr_eq(find_name("example.com.:80"), &A);
}
END_TEST

START_TEST(trailing_dot_in_server_name_is_ignored)
{
    add_name("example.com.", &A);
    ck_assert_ptr_eq(find_name("example.com"), &A);
}
END_TEST

START_TEST(host_matching_is_case_insensitive)
{
    add_name("example.com", &A);
    add_name("*.example.org", &B);
    add_name("www.example.*", &C);
    ck_assert_ptr_eq(find_name("EXAMPLE.Com"), &A);
    ck_assert_ptr_eq(find_name("WWW.Example.ORG"), &B);
    ck_assert_ptr_eq(find_name("WWW.EXAMPLE.net"), &C);
}
END_TEST

START_TEST(server_name_is_stored_lower_case)
{
    add_name("Example.COM", &A);
    ck_assert_ptr_eq(find_name("example.com"), &A);
}
END_TEST

START_TEST(host_longer_than_255_bytes_never_matches)
{
    char host[300];

    memset(host, 'a', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    add_name("~.", &A);
    ck_assert_ptr_null(find_name(host));
    host[255] = '\0';
    ck_assert_ptr_eq(find_name(host), &A);
}
END_TEST

/* ---- server names: errors and duplicates ------------------------------------------- */

START_TEST(same_name_twice_is_declined_and_first_kept)
{
    add_name("example.com", &A);
    ck_assert_int_eq(pt_names_add(names, "EXAMPLE.com", &B, err, sizeof(err)), PT_DECLINED);
    ck_assert_ptr_eq(find_name("example.com"), &A);
}
END_TEST

START_TEST(dot_name_conflicting_with_exact_is_declined_whole)
{
    add_name("example.com", &A);
    ck_assert_int_eq(pt_names_add(names, ".example.com", &B, err, sizeof(err)), PT_DECLINED);
    ck_assert_ptr_eq(find_name("example.com"), &A);
    ck_assert_ptr_null(find_name("www.example.com"));
}
END_TEST

START_TEST(dot_name_conflicts_with_leading_wildcard)
{
    add_name("*.example.com", &A);
    ck_assert_int_eq(pt_names_add(names, ".example.com", &B, err, sizeof(err)), PT_DECLINED);
    ck_assert_ptr_null(find_name("example.com"));
}
END_TEST

START_TEST(same_regex_twice_is_declined)
{
    add_name("~^www", &A);
    ck_assert_int_eq(pt_names_add(names, "~^www", &B, err, sizeof(err)), PT_DECLINED);
}
END_TEST

START_TEST(asterisk_inside_a_name_is_an_error)
{
    ck_assert_int_eq(pt_names_add(names, "w*w.example.com", &A, err, sizeof(err)), PT_ERROR);
    ck_assert_str_eq(err, "invalid server name or wildcard \"w*w.example.com\"");
}
END_TEST

START_TEST(malformed_wildcards_are_errors)
{
    static const char *const bad[] = {
        "*", "*.",           "**.example.com", "*.example.*", "example.*.com",
        ".", "*example.com", "www.example*",   "a b.com"};

    for (size_t i = 0; i < pt_nelems(bad); i++)
        ck_assert_msg(pt_names_add(names, bad[i], &A, err, sizeof(err)) == PT_ERROR,
                      "\"%s\" accepted", bad[i]);
}
END_TEST

START_TEST(bad_name_regex_error_gives_the_offset)
{
    ck_assert_int_eq(pt_names_add(names, "~^(www", &A, err, sizeof(err)), PT_ERROR);
    ck_assert_str_eq(err, "invalid regex \"^(www\": missing closing parenthesis at offset 5");
}
END_TEST

START_TEST(name_longer_than_255_bytes_is_an_error)
{
    char name[300];

    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    ck_assert_int_eq(pt_names_add(names, name, &A, err, sizeof(err)), PT_ERROR);
}
END_TEST

START_TEST(many_names_are_all_found)
{
    static int vals[2000];
    char name[64];

    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof(name), "host%d.example.com", i);
        add_name(name, &vals[i]);
    }
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof(name), "HOST%d.example.com", i);
        ck_assert_ptr_eq(find_name(name), &vals[i]);
    }
}
END_TEST

/* ---- locations: priority ----------------------------------------------------------- */

START_TEST(exact_location_matches_only_the_exact_path)
{
    add_loc("= /a", &A);
    ck_assert_ptr_eq(find_loc("/a"), &A);
    ck_assert_ptr_null(find_loc("/a/"));
    ck_assert_ptr_null(find_loc("/ab"));
}
END_TEST

START_TEST(exact_location_beats_everything)
{
    add_loc("/", &E);
    add_loc("^~ /a", &D);
    add_loc("~ ^/a$", &C);
    add_loc("= /a", &A);
    ck_assert_ptr_eq(find_loc("/a"), &A);
}
END_TEST

START_TEST(exact_and_prefix_on_same_path_coexist)
{
    add_loc("= /", &A);
    add_loc("/", &B);
    ck_assert_ptr_eq(find_loc("/"), &A);
    ck_assert_ptr_eq(find_loc("/x"), &B);
}
END_TEST

START_TEST(longest_prefix_wins)
{
    add_loc("/a", &B);
    add_loc("/a/b", &C);
    add_loc("/", &A);
    ck_assert_ptr_eq(find_loc("/a/b/c"), &C);
    ck_assert_ptr_eq(find_loc("/a/x"), &B);
    ck_assert_ptr_eq(find_loc("/x"), &A);
}
END_TEST

START_TEST(prefix_matches_without_a_segment_boundary)
{
    add_loc("/img", &A);
    ck_assert_ptr_eq(find_loc("/imgs/x.png"), &A);
}
END_TEST

START_TEST(longest_prefix_is_found_past_nonmatching_siblings)
{
    /* "/a/c" sorts between "/a/b..." and "/a/d": the search must climb back to "/a/". */
    add_loc("/a/", &A);
    add_loc("/a/b", &B);
    add_loc("/a/bb", &C);
    add_loc("/a/d", &D);
    ck_assert_ptr_eq(find_loc("/a/c"), &A);
    ck_assert_ptr_eq(find_loc("/a/bc"), &B);
}
END_TEST

START_TEST(noregex_prefix_beats_regex)
{
    add_loc("~ \\.png$", &B);
    add_loc("^~ /img/", &A);
    ck_assert_ptr_eq(find_loc("/img/x.png"), &A);
}
END_TEST

START_TEST(regex_beats_longer_plain_prefix)
{
    add_loc("/img/icons/", &B);
    add_loc("~ \\.png$", &A);
    ck_assert_ptr_eq(find_loc("/img/icons/x.png"), &A);
}
END_TEST

START_TEST(noregex_applies_only_when_it_is_the_longest_prefix)
{
    add_loc("^~ /img/", &C);
    add_loc("/img/icons/", &B);
    add_loc("~ \\.png$", &A);
    ck_assert_ptr_eq(find_loc("/img/icons/x.png"), &A);
    ck_assert_ptr_eq(find_loc("/img/x.png"), &C);
}
END_TEST

START_TEST(regexes_are_tried_in_config_order)
{
    add_loc("~ ^/a", &A);
    add_loc("~ ^/a/b", &B);
    ck_assert_ptr_eq(find_loc("/a/b"), &A);
}
END_TEST

START_TEST(longest_prefix_is_used_when_no_regex_matches)
{
    add_loc("/", &A);
    add_loc("/static/", &B);
    add_loc("~ \\.php$", &C);
    ck_assert_ptr_eq(find_loc("/static/x.css"), &B);
}
END_TEST

START_TEST(nothing_matching_gives_null)
{
    add_loc("/a", &A);
    add_loc("~ \\.php$", &B);
    ck_assert_ptr_null(find_loc("/b"));
}
END_TEST

START_TEST(regex_matches_without_any_prefix)
{
    add_loc("~ \\.php$", &A);
    ck_assert_ptr_eq(find_loc("/index.php"), &A);
}
END_TEST

/* ---- locations: case, captures, spec forms ----------------------------------------- */

START_TEST(caseless_regex_ignores_case)
{
    add_loc("~* \\.PNG$", &A);
    ck_assert_ptr_eq(find_loc("/x.png"), &A);
}
END_TEST

START_TEST(plain_regex_is_case_sensitive)
{
    add_loc("~ \\.PNG$", &A);
    ck_assert_ptr_null(find_loc("/x.png"));
}
END_TEST

START_TEST(prefix_is_case_sensitive)
{
    add_loc("/A", &A);
    ck_assert_ptr_null(find_loc("/a"));
}
END_TEST

START_TEST(regex_captures_are_reported)
{
    size_t caps[2 * PT_LOC_MAX_CAPTURES];
    int ncaps = -7;
    const char *path = "/u/42/bob";

    add_loc("~ ^/u/(\\d+)/(\\w+)$", &A);
    ck_assert_ptr_eq(pt_locations_find(locs, path, strlen(path), caps, &ncaps), &A);
    ck_assert_int_eq(ncaps, 3);
    ck_assert_uint_eq(caps[0], 0);
    ck_assert_uint_eq(caps[1], 9);
    ck_assert_uint_eq(caps[2], 3);
    ck_assert_uint_eq(caps[3], 5);
    ck_assert_uint_eq(caps[4], 6);
    ck_assert_uint_eq(caps[5], 9);
}
END_TEST

START_TEST(unset_capture_is_reported_unset)
{
    size_t caps[2 * PT_LOC_MAX_CAPTURES];
    int ncaps = 0;

    add_loc("~ ^/(a)?(b)$", &A);
    ck_assert_ptr_eq(pt_locations_find(locs, "/b", 2, caps, &ncaps), &A);
    ck_assert_int_eq(ncaps, 3);
    ck_assert_uint_eq(caps[2], PT_LOC_UNSET);
    ck_assert_uint_eq(caps[3], PT_LOC_UNSET);
    ck_assert_uint_eq(caps[4], 1);
    ck_assert_uint_eq(caps[5], 2);
}
END_TEST

START_TEST(captures_are_capped_at_ten_pairs)
{
    size_t caps[2 * PT_LOC_MAX_CAPTURES];
    int ncaps = 0;
    const char *path = "/abcdefghijkl";

    add_loc("~ ^/(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)$", &A);
    ck_assert_ptr_eq(pt_locations_find(locs, path, strlen(path), caps, &ncaps), &A);
    ck_assert_int_eq(ncaps, PT_LOC_MAX_CAPTURES);
    ck_assert_uint_eq(caps[18], 9);
    ck_assert_uint_eq(caps[19], 10);
}
END_TEST

START_TEST(prefix_match_reports_no_captures)
{
    size_t caps[2 * PT_LOC_MAX_CAPTURES];
    int ncaps = -7;

    add_loc("~ ^/(x)", &B);
    add_loc("/", &A);
    ck_assert_ptr_eq(pt_locations_find(locs, "/a", 2, caps, &ncaps), &A);
    ck_assert_int_eq(ncaps, 0);
}
END_TEST

START_TEST(runaway_regex_is_reported_as_an_error)
{
    char path[64];
    int ncaps = 0;

    /* Nested quantifiers on a subject that fails at the end: exponential backtracking
       hits PCRE2's match limit instead of falling through to the "/" location. */
    path[0] = '/';
    memset(path + 1, 'a', 40);
    strcpy(path + 41, "!");
    add_loc("/", &A);
    add_loc("~ ^/(a|aa)+$", &B);
    ck_assert_ptr_null(pt_locations_find(locs, path, strlen(path), NULL, &ncaps));
    ck_assert_int_eq(ncaps, PT_ERROR);
}
END_TEST

START_TEST(modifier_without_space_is_accepted)
{
    add_loc("=/a", &A);
    add_loc("^~/b", &B);
    add_loc("~*\\.GIF$", &C);
    ck_assert_ptr_eq(find_loc("/a"), &A);
    ck_assert_ptr_eq(find_loc("/b/x.gif"), &B);
    ck_assert_ptr_eq(find_loc("/c/x.gif"), &C);
}
END_TEST

START_TEST(prefix_pattern_is_normalized_like_request_paths)
{
    add_loc("/%7euser//docs/", &A);
    ck_assert_ptr_eq(find_loc("/~user/docs/x"), &A);
}
END_TEST

/* ---- locations: errors and duplicates ---------------------------------------------- */

START_TEST(duplicate_prefix_is_declined)
{
    add_loc("/a", &A);
    ck_assert_int_eq(pt_locations_add(locs, "/a", &B, err, sizeof(err)), PT_DECLINED);
    ck_assert_ptr_eq(find_loc("/a"), &A);
}
END_TEST

START_TEST(noregex_prefix_duplicates_plain_prefix)
{
    add_loc("/a", &A);
    ck_assert_int_eq(pt_locations_add(locs, "^~ /a", &B, err, sizeof(err)), PT_DECLINED);
}
END_TEST

START_TEST(duplicate_exact_is_declined)
{
    add_loc("= /a", &A);
    ck_assert_int_eq(pt_locations_add(locs, "= /a", &B, err, sizeof(err)), PT_DECLINED);
}
END_TEST

START_TEST(duplicate_regex_is_declined)
{
    add_loc("~ \\.php$", &A);
    ck_assert_int_eq(pt_locations_add(locs, "~ \\.php$", &B, err, sizeof(err)), PT_DECLINED);
}
END_TEST

START_TEST(same_regex_with_other_case_mode_is_not_a_duplicate)
{
    add_loc("~ \\.php$", &A);
    add_loc("~* \\.php$", &B);
    ck_assert_ptr_eq(find_loc("/x.PHP"), &B);
}
END_TEST

START_TEST(bad_location_regex_error_gives_the_offset)
{
    ck_assert_int_eq(pt_locations_add(locs, "~ ^/(a", &A, err, sizeof(err)), PT_ERROR);
    ck_assert_str_eq(err, "invalid regex \"^/(a\": missing closing parenthesis at offset 4");
}
END_TEST

START_TEST(prefix_without_leading_slash_is_an_error)
{
    ck_assert_int_eq(pt_locations_add(locs, "images/", &A, err, sizeof(err)), PT_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "\"images/\""));
}
END_TEST

START_TEST(modifier_without_pattern_is_an_error)
{
    ck_assert_int_eq(pt_locations_add(locs, "=", &A, err, sizeof(err)), PT_ERROR);
    ck_assert_int_eq(pt_locations_add(locs, "~ ", &A, err, sizeof(err)), PT_ERROR);
    ck_assert_str_eq(err, "location \"~ \": missing regex");
}
END_TEST

START_TEST(named_location_is_an_error)
{
    ck_assert_int_eq(pt_locations_add(locs, "@fallback", &A, err, sizeof(err)), PT_ERROR);
}
END_TEST

/* Reference: the longest prefix by linear scan. */
static int linear_longest(char (*pre)[16], int n, const char *path)
{
    int best = -1;

    for (int i = 0; i < n; i++) {
        size_t len = strlen(pre[i]);

        if (strncmp(pre[i], path, len) == 0 && (best < 0 || len > strlen(pre[best])))
            best = i;
    }
    return best;
}

static int contains(char (*pre)[16], int n, const char *s)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(pre[i], s) == 0)
            return 1;
    }
    return 0;
}

START_TEST(longest_prefix_agrees_with_linear_scan_over_many_locations)
{
    static int vals[400];
    static char pre[400][16];
    unsigned seed = 12345;
    int n = 0;

    /* Short random paths over a tiny alphabet, so that prefixes nest and collide. */
    while (n < 400) {
        int len = 1 + (int)((seed = seed * 1103515245 + 12345) >> 16) % 8;

        pre[n][0] = '/';
        for (int k = 1; k < len; k++)
            pre[n][k] = "ab/"[((seed = seed * 1103515245 + 12345) >> 16) % 3];
        pre[n][len] = '\0';
        /* Skip duplicates, and "//" which would normalize to another string. */
        if (strstr(pre[n], "//") || contains(pre, n, pre[n]))
            continue;
        add_loc(pre[n], &vals[n]);
        n++;
    }
    for (int t = 0; t < 3000; t++) {
        char path[16];
        int len = 1 + (int)((seed = seed * 1103515245 + 12345) >> 16) % 12;
        int want;

        path[0] = '/';
        for (int k = 1; k < len; k++)
            path[k] = "ab/"[((seed = seed * 1103515245 + 12345) >> 16) % 3];
        path[len] = '\0';
        want = linear_longest(pre, n, path);
        ck_assert_ptr_eq(find_loc(path), want < 0 ? NULL : &vals[want]);
    }
}
END_TEST

/* A deep tree of prefixes, added in a scrambled order, some "^~", beside a regex: every
 * lookup agrees with nginx's rule applied by linear scan.  Loading many locations must
 * not be quadratic; the result must not depend on the order they were added in. */
#define TREE_N 8000

struct tree_loc {
    char path[24];
    int noregex;
};

static const struct tree_loc *tree_reference(const struct tree_loc *t, int n, const char *path)
{
    const struct tree_loc *best = NULL;

    for (int i = 0; i < n; i++) {
        size_t len = strlen(t[i].path);

        if (strncmp(t[i].path, path, len) == 0 && (best == NULL || len > strlen(best->path)))
            best = &t[i];
    }
    return best;
}

START_TEST(many_nested_locations_in_any_order_agree_with_linear_scan)
{
    static struct tree_loc t[TREE_N];
    static int order[TREE_N];
    unsigned seed = 777;

    /* /0 .. /9, /0/0 .. /9/9, ...: each path's parent is among the others. */
    for (int i = 0; i < TREE_N; i++) {
        char *p = t[i].path;
        int len = 0;

        for (int v = i; len < 20; v = v / 10 - 1) {
            len += snprintf(p + len, sizeof(t[i].path) - (size_t)len, "/%d", v % 10);
            if (v < 10)
                break;
        }
        t[i].noregex = i % 5 == 0;
        order[i] = i;
    }
    for (int i = TREE_N - 1; i > 0; i--) {
        int j = (int)((seed = seed * 1103515245 + 12345) >> 16) % (i + 1), k = order[i];

        order[i] = order[j];
        order[j] = k;
    }
    add_loc("~ \\.php$", &A);
    for (int i = 0; i < TREE_N; i++) {
        char spec[32];

        snprintf(spec, sizeof(spec), "%s%s", t[order[i]].noregex ? "^~ " : "", t[order[i]].path);
        add_loc(spec, &t[order[i]]);
    }
    pt_locations_build(locs);
    for (int q = 0; q < 3000; q++) {
        const struct tree_loc *want;
        char path[48];
        int i = (int)((seed = seed * 1103515245 + 12345) >> 16) % TREE_N;

        snprintf(path, sizeof(path), "%s%s", t[i].path,
                 q % 3 == 0   ? "/x.php"
                 : q % 3 == 1 ? "7"
                              : "");
        want = tree_reference(t, TREE_N, path);
        if (want && !want->noregex && q % 3 == 0)
            ck_assert_ptr_eq(find_loc(path), &A);
        else
            ck_assert_ptr_eq(find_loc(path), want);
    }
}
END_TEST

START_TEST(location_added_after_a_lookup_is_found)
{
    add_loc("/a", &A);
    ck_assert_ptr_eq(find_loc("/a/b/c"), &A);
    add_loc("/a/b", &B);
    ck_assert_ptr_eq(find_loc("/a/b/c"), &B);
    pt_locations_build(locs);
    pt_locations_build(locs);
    ck_assert_ptr_eq(find_loc("/a/x"), &A);
    ck_assert_int_eq(pt_locations_add(locs, "^~ /a/b", &C, err, sizeof(err)), PT_DECLINED);
    ck_assert_ptr_eq(find_loc("/a/b"), &B);
}
END_TEST

/* Found by fuzz_conf (UBSan): a table with no prefix location handed qsort() a NULL
 * array.  Building one with only an exact and a regex location, or with nothing, is fine. */
START_TEST(table_without_prefixes_builds_and_finds)
{
    pt_locations_build(locs);
    ck_assert_ptr_null(find_loc("/x"));
    add_loc("= /x", &A);
    add_loc("~ ^/r", &B);
    pt_locations_build(locs);
    ck_assert_ptr_eq(find_loc("/x"), &A);
    ck_assert_ptr_eq(find_loc("/r1"), &B);
    ck_assert_ptr_null(find_loc("/y"));
}
END_TEST

/* Creates a test case named <name> with the shared fixture and adds it to <s>. */
static TCase *add_tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup, teardown);
    suite_add_tcase(s, tc);
    return tc;
}

static void add_name_tests(Suite *s)
{
    TCase *nf = add_tcase(s, "server_name forms");
    TCase *np = add_tcase(s, "server_name priority");
    TCase *nh = add_tcase(s, "server_name host normalization");
    TCase *ne = add_tcase(s, "server_name errors");

    tcase_add_test(nf, exact_name_matches_itself_only);
    tcase_add_test(nf, unknown_host_finds_nothing);
    tcase_add_test(nf, leading_wildcard_matches_any_depth_of_subdomain);
    tcase_add_test(nf, leading_wildcard_does_not_match_the_bare_domain);
    tcase_add_test(nf, trailing_wildcard_matches_any_suffix);
    tcase_add_test(nf, trailing_wildcard_needs_a_label_after_the_dot);
    tcase_add_test(nf, dot_name_matches_bare_domain_and_subdomains);
    tcase_add_test(nf, regex_name_matches);
    tcase_add_test(nf, regex_name_is_case_insensitive);
    tcase_add_test(nf, empty_name_matches_request_without_host);
    tcase_add_test(nf, many_names_are_all_found);

    tcase_add_test(np, exact_name_beats_wildcards_and_regex);
    tcase_add_test(np, leading_wildcard_beats_trailing_wildcard);
    tcase_add_test(np, trailing_wildcard_beats_regex);
    tcase_add_test(np, longest_leading_wildcard_wins);
    tcase_add_test(np, longest_trailing_wildcard_wins);
    tcase_add_test(np, first_regex_added_wins);
    tcase_add_test(np, exact_half_of_dot_name_beats_other_wildcards);

    tcase_add_test(nh, port_is_ignored);
    tcase_add_test(nh, port_is_ignored_for_wildcards_and_regex);
    tcase_add_test(nh, ipv6_literal_keeps_its_colons_and_drops_the_port);
    tcase_add_test(nh, trailing_dot_in_host_is_ignored);
    tcase_add_test(nh, trailing_dot_in_server_name_is_ignored);
    tcase_add_test(nh, host_matching_is_case_insensitive);
    tcase_add_test(nh, server_name_is_stored_lower_case);
    tcase_add_test(nh, host_longer_than_255_bytes_never_matches);

    tcase_add_test(ne, same_name_twice_is_declined_and_first_kept);
    tcase_add_test(ne, dot_name_conflicting_with_exact_is_declined_whole);
    tcase_add_test(ne, dot_name_conflicts_with_leading_wildcard);
    tcase_add_test(ne, same_regex_twice_is_declined);
    tcase_add_test(ne, asterisk_inside_a_name_is_an_error);
    tcase_add_test(ne, malformed_wildcards_are_errors);
    tcase_add_test(ne, bad_name_regex_error_gives_the_offset);
    tcase_add_test(ne, name_longer_than_255_bytes_is_an_error);
}

static void add_location_tests(Suite *s)
{
    TCase *lp = add_tcase(s, "location priority");
    TCase *lc = add_tcase(s, "location matching");
    TCase *le = add_tcase(s, "location errors");

    tcase_add_test(lp, exact_location_matches_only_the_exact_path);
    tcase_add_test(lp, exact_location_beats_everything);
    tcase_add_test(lp, exact_and_prefix_on_same_path_coexist);
    tcase_add_test(lp, longest_prefix_wins);
    tcase_add_test(lp, prefix_matches_without_a_segment_boundary);
    tcase_add_test(lp, longest_prefix_is_found_past_nonmatching_siblings);
    tcase_add_test(lp, noregex_prefix_beats_regex);
    tcase_add_test(lp, regex_beats_longer_plain_prefix);
    tcase_add_test(lp, noregex_applies_only_when_it_is_the_longest_prefix);
    tcase_add_test(lp, regexes_are_tried_in_config_order);
    tcase_add_test(lp, longest_prefix_is_used_when_no_regex_matches);
    tcase_add_test(lp, nothing_matching_gives_null);
    tcase_add_test(lp, regex_matches_without_any_prefix);
    tcase_add_test(lp, longest_prefix_agrees_with_linear_scan_over_many_locations);
    tcase_add_test(lp, many_nested_locations_in_any_order_agree_with_linear_scan);
    tcase_add_test(lp, location_added_after_a_lookup_is_found);
    tcase_add_test(lp, table_without_prefixes_builds_and_finds);

    tcase_add_test(lc, caseless_regex_ignores_case);
    tcase_add_test(lc, plain_regex_is_case_sensitive);
    tcase_add_test(lc, prefix_is_case_sensitive);
    tcase_add_test(lc, regex_captures_are_reported);
    tcase_add_test(lc, unset_capture_is_reported_unset);
    tcase_add_test(lc, captures_are_capped_at_ten_pairs);
    tcase_add_test(lc, prefix_match_reports_no_captures);
    tcase_add_test(lc, runaway_regex_is_reported_as_an_error);
    tcase_add_test(lc, modifier_without_space_is_accepted);
    tcase_add_test(lc, prefix_pattern_is_normalized_like_request_paths);

    tcase_add_test(le, duplicate_prefix_is_declined);
    tcase_add_test(le, noregex_prefix_duplicates_plain_prefix);
    tcase_add_test(le, duplicate_exact_is_declined);
    tcase_add_test(le, duplicate_regex_is_declined);
    tcase_add_test(le, same_regex_with_other_case_mode_is_not_a_duplicate);
    tcase_add_test(le, bad_location_regex_error_gives_the_offset);
    tcase_add_test(le, prefix_without_leading_slash_is_an_error);
    tcase_add_test(le, modifier_without_pattern_is_an_error);
    tcase_add_test(le, named_location_is_an_error);
}

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("router");

    add_name_tests(s);
    add_location_tests(s);
    return s;
}
