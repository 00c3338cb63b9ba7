/*
 * test_cache_policy.c: the cache's decisions (modules/cache/policy.c): Cache-Control,
 * HTTP-dates, storability, freshness, age, serving fresh and stale responses, variants,
 * conditionals and ranges.  Messages are written as "Name: value" lines; every time is
 * counted from T0, the Date of RFC 9110's examples.
 */
#include <stdio.h>

#include "check_main.h"

#include "modules/cache/policy.h"

#define T0      ((time_t)784111777) /* Sun, 06 Nov 1994 08:49:37 GMT */
#define DATE_T0 "Date: Sun, 06 Nov 1994 08:49:37 GMT\n"

/* The fields of one message; the slices point into the string literal they came from. */
struct msg {
    struct pt_http_header h[16];
    size_t n;
};

static struct msg qm, qm2, sm; /* request, second request, response */

/* nginx's defaults: GET and HEAD, HEAD converted, nothing ignored, no heuristic, request
 * directives not read. */
static const struct pt_cache_conf dflt;

static struct pt_str trimmed(const char *p, size_t n)
{
    while (n && *p == ' ')
        p++, n--;
    while (n && p[n - 1] == ' ')
        n--;
    return (struct pt_str){p, n};
}

/* Fills <m> from <s>, "Name: value" lines ending in "\n" (the last may not). */
static void set_fields(struct msg *m, const char *s)
{
    m->n = 0;
    while (*s) {
        const char *eol = strchr(s, '\n'), *colon;

        if (!eol)
            eol = s + strlen(s);
        colon = memchr(s, ':', (size_t)(eol - s));
        ck_assert_ptr_nonnull(colon);
        ck_assert_uint_lt(m->n, pt_nelems(m->h));
        m->h[m->n].name = (struct pt_str){s, (size_t)(colon - s)};
        m->h[m->n].value = trimmed(colon + 1, (size_t)(eol - colon - 1));
        m->n++;
        s = *eol ? eol + 1 : eol;
    }
}

static struct pt_cache_req req_in(struct msg *m, int method, const char *fields)
{
    set_fields(m, fields);
    return (struct pt_cache_req){method, m->h, m->n};
}

static struct pt_cache_req req_of(int method, const char *fields)
{
    return req_in(&qm, method, fields);
}

/* A response fetched instantly at T0. */
static struct pt_cache_resp resp_of(int status, const char *fields)
{
    set_fields(&sm, fields);
    return (struct pt_cache_resp){status, sm.h, sm.n, T0, T0};
}

static struct pt_cc cc_of(const char *fields)
{
    struct pt_cc cc;

    set_fields(&qm, fields);
    pt_cc_parse(qm.h, qm.n, &cc);
    return cc;
}

static struct pt_cc request_cc_of(const char *fields)
{
    struct pt_cc cc;

    set_fields(&qm, fields);
    pt_cc_parse_request(qm.h, qm.n, &cc);
    return cc;
}

static time_t date(const char *s)
{
    return pt_http_parse_date(pt_str_c(s), T0);
}

static enum pt_cache_store store(const struct pt_cache_conf *c, int method, const char *qf,
                                 int status, const char *sf)
{
    struct pt_cache_req q = req_of(method, qf);
    struct pt_cache_resp r = resp_of(status, sf);

    return pt_cache_storable(c, &q, &r);
}

static struct pt_cache_lifetime life(const struct pt_cache_conf *c, int status, const char *sf,
                                     int64_t valid)
{
    struct pt_cache_resp r = resp_of(status, sf);
    struct pt_cache_lifetime lt;

    pt_cache_freshness(c, &r, valid, &lt);
    return lt;
}

/* How a 200 with <sf>, stored at T0 with the lifetime its fields give, answers a GET with
 * <qf> <after> seconds later. */
static enum pt_cache_use use_after(const struct pt_cache_conf *c, const char *qf, const char *sf,
                                   time_t after)
{
    struct pt_cache_resp r = resp_of(200, sf);
    struct pt_cache_req q = req_of(PT_HTTP_GET, qf);
    struct pt_cache_lifetime lt;

    pt_cache_freshness(c, &r, PT_CACHE_VALID_NONE, &lt);
    return pt_cache_use(c, &q, &r, &lt, T0 + after);
}

/* Whether that response may answer <after> seconds later when updating it failed. */
static int stale_on_error(const struct pt_cache_conf *c, const char *qf, const char *sf,
                          time_t after, int configured)
{
    struct pt_cache_resp r = resp_of(200, sf);
    struct pt_cache_req q = req_of(PT_HTTP_GET, qf);
    struct pt_cache_lifetime lt;

    pt_cache_freshness(c, &r, PT_CACHE_VALID_NONE, &lt);
    return pt_cache_stale_on_error(c, &q, &r, &lt, T0 + after, configured);
}

static int cond_ims(int method, const char *qf, int status, const char *sf, enum pt_cache_ims ims)
{
    struct pt_cache_req q = req_of(method, qf);
    struct pt_cache_resp r = resp_of(status, sf);

    return pt_cache_conditional(&q, &r, ims);
}

static int cond(const char *qf, const char *sf)
{
    return cond_ims(PT_HTTP_GET, qf, 200, sf, PT_CACHE_IMS_EXACT);
}

static struct pt_cache_range got;

static enum pt_cache_ranges range_of(int method, const char *qf, const char *sf, int64_t length)
{
    struct pt_cache_req q = req_of(method, qf);
    struct pt_cache_resp r = resp_of(200, sf);

    got = (struct pt_cache_range){-7, -7};
    return pt_cache_range(&q, &r, length, &got);
}

static enum pt_cache_ranges range(const char *qf, int64_t length)
{
    return range_of(PT_HTTP_GET, qf, "ETag: \"v1\"\n", length);
}

#define ck_range(first_, last_)              \
    do {                                     \
        ck_assert_int_eq(got.first, first_); \
        ck_assert_int_eq(got.last, last_);   \
    } while (0)

static char key[256];
static size_t keylen;

static int vary_key(const struct pt_cache_conf *c, const char *sf, const char *qf)
{
    struct pt_cache_resp r = resp_of(200, sf);
    struct pt_cache_req q = req_of(PT_HTTP_GET, qf);

    return pt_cache_vary_key(c, &r, &q, key, sizeof(key) - 1, &keylen);
}

/* The last key, NUL-terminated (vary_key() leaves room for the NUL). */
static const char *key_str(void)
{
    key[keylen] = '\0';
    return key;
}

#define ck_key(lit) ck_assert_str_eq(key_str(), lit)

/* ---------------------------------------------------------------------------------------
 * Cache-Control
 */

START_TEST(cc_names_are_case_insensitive)
{
    struct pt_cc cc = cc_of("Cache-Control: MAX-AGE=60, No-Store, S-MaxAge=5\n");

    ck_assert_int_eq(cc.max_age, 60);
    ck_assert_int_eq(cc.s_maxage, 5);
    ck_assert(cc.flags & PT_CC_NO_STORE);
}
END_TEST

START_TEST(cc_all_fields_are_combined)
{
    struct pt_cc cc = cc_of("Cache-Control: public\nX: y\ncache-control: max-age=7\n");

    ck_assert(cc.flags & PT_CC_PUBLIC);
    ck_assert_int_eq(cc.max_age, 7);
    ck_assert(cc.flags & PT_CC_PRESENT);
}
END_TEST

START_TEST(cc_without_field_is_absent)
{
    struct pt_cc cc = cc_of("Expires: 0\n");

    ck_assert_uint_eq(cc.flags, 0);
    ck_assert_int_eq(cc.max_age, PT_CC_UNSET);
    ck_assert_int_eq(cc.s_maxage, PT_CC_UNSET);
    ck_assert_int_eq(cc.max_stale, PT_CC_UNSET);
}
END_TEST

START_TEST(cc_quoted_argument_is_accepted)
{
    ck_assert_int_eq(cc_of("Cache-Control: max-age=\"60\"\n").max_age, 60);
}
END_TEST

START_TEST(cc_no_cache_field_name_form_is_no_cache)
{
    struct pt_cc cc = cc_of("Cache-Control: no-cache=\"Set-Cookie, X-Foo\", max-age=5\n");

    ck_assert(cc.flags & PT_CC_NO_CACHE);
    ck_assert_int_eq(cc.max_age, 5); /* the comma inside the quotes does not split */
}
END_TEST

START_TEST(cc_private_field_name_form_is_private)
{
    ck_assert(cc_of("Cache-Control: private=\"Set-Cookie\"\n").flags & PT_CC_PRIVATE);
    ck_assert(cc_of("Cache-Control: private=Set-Cookie\n").flags & PT_CC_PRIVATE);
}
END_TEST

START_TEST(cc_first_occurrence_wins)
{
    ck_assert_int_eq(cc_of("Cache-Control: max-age=5, max-age=10\n").max_age, 5);
    ck_assert_int_eq(cc_of("Cache-Control: max-age=x\nCache-Control: max-age=10\n").max_age,
                     PT_CC_INVALID);
}
END_TEST

START_TEST(cc_invalid_delta_is_marked_invalid)
{
    static const char *const bad[] = {
        "Cache-Control: max-age=abc\n",  "Cache-Control: max-age=-1\n",
        "Cache-Control: max-age=\n",     "Cache-Control: max-age=1.5\n",
        "Cache-Control: max-age\n",      "Cache-Control: max-age=+5\n",
        "Cache-Control: max-age=\"\"\n", "Cache-Control: max-age=60 junk\n",
        "Cache-Control: max-age=60;\n",  "Cache-Control: max-age=\"6\\0\"\n",
    };

    for (size_t i = 0; i < pt_nelems(bad); i++)
        ck_assert_msg(cc_of(bad[i]).max_age == PT_CC_INVALID, "%s", bad[i]);
}
END_TEST

START_TEST(cc_huge_delta_is_clamped_to_2_31)
{
    ck_assert_int_eq(cc_of("Cache-Control: max-age=99999999999999999999999\n").max_age,
                     PT_CC_DELTA_MAX);
    ck_assert_int_eq(cc_of("Cache-Control: max-age=2147483648\n").max_age, PT_CC_DELTA_MAX);
    ck_assert_int_eq(cc_of("Cache-Control: max-age=2147483647\n").max_age, 2147483647);
}
END_TEST

START_TEST(cc_unknown_directives_are_ignored)
{
    struct pt_cc cc = cc_of("Cache-Control: x-no-cache-hint, community=\"UCI\", foo=bar, "
                            "no-store-ish\n");

    ck_assert_uint_eq(cc.flags, PT_CC_PRESENT); /* no substring matching, unlike nginx */
}
END_TEST

START_TEST(cc_empty_members_are_skipped)
{
    struct pt_cc cc = cc_of("Cache-Control: ,, max-age=5 ,,public,\n");

    ck_assert_int_eq(cc.max_age, 5);
    ck_assert(cc.flags & PT_CC_PUBLIC);
}
END_TEST

START_TEST(cc_spaces_around_equals_are_tolerated)
{
    ck_assert_int_eq(cc_of("Cache-Control: max-age = 60\n").max_age, 60);
}
END_TEST

START_TEST(cc_unterminated_quote_is_invalid)
{
    struct pt_cc cc = cc_of("Cache-Control: max-age=\"60, public\n");

    ck_assert_int_eq(cc.max_age, PT_CC_INVALID);
    ck_assert(!(cc.flags & PT_CC_PUBLIC)); /* inside the quote */
}
END_TEST

START_TEST(cc_escaped_quote_stays_inside_the_quoted_string)
{
    static const char *const fields[] = {
        "Cache-Control: ext=\"a\\\", max-age=5\", public\n",   /* an argument */
        "Cache-Control: ext=x \"a\\\", max-age=5\", public\n", /* junk skipped over */
    };

    for (size_t i = 0; i < pt_nelems(fields); i++) {
        struct pt_cc cc = cc_of(fields[i]);

        ck_assert_msg(cc.max_age == PT_CC_UNSET, "%s", fields[i]);
        ck_assert_msg(cc.flags & PT_CC_PUBLIC, "%s", fields[i]);
    }
}
END_TEST

START_TEST(cc_bare_max_stale_is_any)
{
    ck_assert_int_eq(cc_of("Cache-Control: max-stale\n").max_stale, PT_CC_ANY);
    ck_assert_int_eq(cc_of("Cache-Control: max-stale=30\n").max_stale, 30);
    ck_assert_int_eq(cc_of("Cache-Control: max-stale=x\n").max_stale, PT_CC_INVALID);
}
END_TEST

START_TEST(cc_request_directives_are_parsed)
{
    struct pt_cc cc = request_cc_of("Cache-Control: min-fresh=20, only-if-cached, no-transform, "
                                    "stale-if-error=9\n");

    ck_assert_int_eq(cc.min_fresh, 20);
    ck_assert_int_eq(cc.stale_if_error, 9);
    ck_assert(cc.flags & PT_CC_ONLY_IF_CACHED);
    ck_assert(cc.flags & PT_CC_NO_TRANSFORM);
}
END_TEST

START_TEST(cc_response_directives_are_parsed)
{
    struct pt_cc cc = cc_of("Cache-Control: must-revalidate, proxy-revalidate, must-understand, "
                            "stale-while-revalidate=30, stale-if-error=60\n");

    ck_assert_uint_eq(cc.flags, PT_CC_PRESENT | PT_CC_MUST_REVALIDATE | PT_CC_PROXY_REVALIDATE |
                                    PT_CC_MUST_UNDERSTAND);
    ck_assert_int_eq(cc.stale_while_revalidate, 30);
    ck_assert_int_eq(cc.stale_if_error, 60);
}
END_TEST

START_TEST(pragma_no_cache_counts_without_cache_control)
{
    ck_assert(request_cc_of("Pragma: no-cache\n").flags & PT_CC_NO_CACHE);
    ck_assert(request_cc_of("Pragma: x=1, No-Cache\n").flags & PT_CC_NO_CACHE);
}
END_TEST

START_TEST(pragma_is_ignored_with_cache_control)
{
    ck_assert(
        !(request_cc_of("Pragma: no-cache\nCache-Control: max-age=5\n").flags & PT_CC_NO_CACHE));
}
END_TEST

START_TEST(pragma_is_not_read_by_the_response_parser)
{
    ck_assert(!(cc_of("Pragma: no-cache\n").flags & PT_CC_NO_CACHE));
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * HTTP-date
 */

START_TEST(imf_fixdate_parses)
{
    ck_assert_int_eq(date("Sun, 06 Nov 1994 08:49:37 GMT"), T0);
}
END_TEST

START_TEST(rfc850_date_parses)
{
    ck_assert_int_eq(date("Sunday, 06-Nov-94 08:49:37 GMT"), T0);
}
END_TEST

START_TEST(asctime_date_parses)
{
    ck_assert_int_eq(date("Sun Nov  6 08:49:37 1994"), T0);
    ck_assert_int_eq(date("Sun Nov 06 08:49:37 1994"), T0);
}
END_TEST

START_TEST(date_names_are_case_insensitive)
{
    ck_assert_int_eq(date("sun, 06 NOV 1994 08:49:37 gmt"), T0);
    ck_assert_int_eq(date("SUNDAY, 06-nov-94 08:49:37 GMT"), T0);
}
END_TEST

START_TEST(date_weekday_is_not_checked_against_the_date)
{
    ck_assert_int_eq(date("Mon, 06 Nov 1994 08:49:37 GMT"), T0);
}
END_TEST

START_TEST(invalid_dates_are_minus_one)
{
    static const char *const bad[] = {
        "",
        "0",
        "-1",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 +0000",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 06 Nov 1994 08:49:37 GMT ",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov 6 08:49:37 1994",
        "1994-11-06T08:49:37Z",
    };

    for (size_t i = 0; i < pt_nelems(bad); i++)
        ck_assert_msg(date(bad[i]) == -1, "\"%s\"", bad[i]);
    ck_assert_int_eq(pt_http_parse_date(PT_NULL_STR, T0), -1);
}
END_TEST

START_TEST(leap_day_parses_only_in_leap_years)
{
    ck_assert_int_eq(date("Thu, 29 Feb 1996 00:00:00 GMT"), 825552000);
    ck_assert_int_eq(date("Tue, 29 Feb 2000 00:00:00 GMT"), 951782400);
    ck_assert_int_eq(date("Thu, 29 Feb 1900 00:00:00 GMT"), -1);
    ck_assert_int_eq(date("Wed, 29 Feb 1995 00:00:00 GMT"), -1);
}
END_TEST

START_TEST(leap_second_is_accepted)
{
    ck_assert_int_eq(date("Sun, 06 Nov 1994 08:49:60 GMT"), 784111800);
}
END_TEST

START_TEST(date_before_1970_is_zero)
{
    ck_assert_int_eq(date("Wed, 31 Dec 1969 23:59:59 GMT"), 0);
    ck_assert_int_eq(date("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
    ck_assert_int_eq(date("Thu, 01 Jan 1970 00:00:01 GMT"), 1);
}
END_TEST

START_TEST(rfc850_year_over_50_years_ahead_is_in_the_past)
{
    time_t now = 1699920000; /* 2023-11-14 */

    ck_assert_int_eq(pt_http_parse_date(pt_str_c("Monday, 01-Jan-73 00:00:00 GMT"), now),
                     3250454400); /* 2073: 50 years ahead, not more */
    ck_assert_int_eq(pt_http_parse_date(pt_str_c("Tuesday, 01-Jan-74 00:00:00 GMT"), now),
                     126230400); /* 1974 */
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Storing
 */

START_TEST(get_response_with_max_age_is_stored)
{
    ck_assert_int_eq(store(&dflt, PT_HTTP_GET, "", 200, "Cache-Control: max-age=60\n"),
                     PT_CACHE_STORABLE);
}
END_TEST

START_TEST(post_is_not_stored_by_default)
{
    ck_assert_int_eq(store(&dflt, PT_HTTP_POST, "", 200, "Cache-Control: max-age=60\n"),
                     PT_CACHE_NO_METHOD);
}
END_TEST

START_TEST(post_is_stored_when_in_cache_methods)
{
    struct pt_cache_conf c = {.methods = PT_CACHE_METHOD(PT_HTTP_POST)};

    ck_assert_int_eq(store(&c, PT_HTTP_POST, "", 200, ""), PT_CACHE_STORABLE);
    ck_assert_int_eq(store(&c, PT_HTTP_GET, "", 200, ""), PT_CACHE_STORABLE); /* always in */
    ck_assert_int_eq(store(&c, PT_HTTP_PUT, "", 200, ""), PT_CACHE_NO_METHOD);
}
END_TEST

START_TEST(head_is_fetched_as_get_by_default)
{
    struct pt_cache_conf keep = {.flags = PT_CACHE_NO_CONVERT_HEAD};

    ck_assert_int_eq(pt_cache_upstream_method(&dflt, PT_HTTP_HEAD), PT_HTTP_GET);
    ck_assert_int_eq(pt_cache_upstream_method(&keep, PT_HTTP_HEAD), PT_HTTP_HEAD);
    ck_assert_int_eq(pt_cache_upstream_method(&dflt, PT_HTTP_POST), PT_HTTP_POST);
}
END_TEST

START_TEST(head_response_is_stored_with_or_without_conversion)
{
    struct pt_cache_conf keep = {.flags = PT_CACHE_NO_CONVERT_HEAD};

    ck_assert_int_eq(store(&dflt, PT_HTTP_HEAD, "", 200, ""), PT_CACHE_STORABLE);
    ck_assert_int_eq(store(&keep, PT_HTTP_HEAD, "", 200, ""), PT_CACHE_STORABLE);
}
END_TEST

START_TEST(interim_partial_and_not_modified_are_not_stored)
{
    static const int statuses[] = {100, 101, 103, 206, 304};

    for (size_t i = 0; i < pt_nelems(statuses); i++)
        ck_assert_int_eq(store(&dflt, PT_HTTP_GET, "", statuses[i], "Cache-Control: max-age=6\n"),
                         PT_CACHE_NO_STATUS);
    ck_assert_int_eq(store(&dflt, PT_HTTP_GET, "", 500, ""), PT_CACHE_STORABLE);
}
END_TEST

START_TEST(private_response_is_not_stored)
{
    ck_assert_int_eq(store(&dflt, PT_HTTP_GET, "", 200, "Cache-Control: private, max-age=60\n"),
                     PT_CACHE_NO_PRIVATE);
}
END_TEST

START_TEST(private_field_name_form_is_not_stored)
{
    ck_assert_int_eq(
        store(&dflt, PT_HTTP_GET, "", 200, "Cache-Control: private=\"Set-Cookie\", max-age=60\n"),
        PT_CACHE_NO_PRIVATE);
}
END_TEST

START_TEST(no_store_response_is_not_stored)
{
    ck_assert_int_eq(store(&dflt, PT_HTTP_GET, "", 200, "Cache-Control: no-store\n"),
                     PT_CACHE_NO_NO_STORE);
}
END_TEST

START_TEST(no_cache_response_is_stored)
{
    ck_assert_int_eq(store(&dflt, PT_HTTP_GET, "", 200, "Cache-Control: no-cache\n"),
                     PT_CACHE_STORABLE);
}
END_TEST

START_TEST(request_no_store_is_ignored_by_default)
{
    ck_assert_int_eq(store(&dflt, PT_HTTP_GET, "Cache-Control: no-store\n", 200, ""),
                     PT_CACHE_STORABLE);
}
END_TEST

START_TEST(request_no_store_prevents_storing_when_honoured)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_REQUEST_CC};

    ck_assert_int_eq(store(&c, PT_HTTP_GET, "Cache-Control: no-store\n", 200, ""),
                     PT_CACHE_NO_REQUEST_NO_STORE);
}
END_TEST

START_TEST(set_cookie_not_stored_unless_ignored)
{
    struct pt_cache_conf c = {.ignore = PT_CACHE_IGN_SET_COOKIE};
    const char *sf = "Set-Cookie: a=1\nCache-Control: max-age=60\n";

    ck_assert_int_eq(store(&dflt, PT_HTTP_GET, "", 200, sf), PT_CACHE_NO_SET_COOKIE);
    ck_assert_int_eq(store(&c, PT_HTTP_GET, "", 200, sf), PT_CACHE_STORABLE);
}
END_TEST

START_TEST(set_cookie_is_not_stored_even_with_x_accel_expires)
{
    ck_assert_int_eq(store(&dflt, PT_HTTP_GET, "", 200, "X-Accel-Expires: 60\nSet-Cookie: a=1\n"),
                     PT_CACHE_NO_SET_COOKIE);
}
END_TEST

START_TEST(vary_star_is_not_stored)
{
    ck_assert_int_eq(store(&dflt, PT_HTTP_GET, "", 200, "Vary: *\n"), PT_CACHE_NO_VARY_STAR);
    ck_assert_int_eq(store(&dflt, PT_HTTP_GET, "", 200, "Vary: Accept\nVary: Cookie, *\n"),
                     PT_CACHE_NO_VARY_STAR);
}
END_TEST

START_TEST(vary_star_is_stored_when_vary_ignored)
{
    struct pt_cache_conf c = {.ignore = PT_CACHE_IGN_VARY};

    ck_assert_int_eq(store(&c, PT_HTTP_GET, "", 200, "Vary: *\n"), PT_CACHE_STORABLE);
}
END_TEST

START_TEST(authorization_needs_public)
{
    static const struct {
        const char *sf;
        enum pt_cache_store want;
    } cases[] = {
        {"Cache-Control: max-age=60\n", PT_CACHE_NO_AUTHORIZATION},
        {"", PT_CACHE_NO_AUTHORIZATION},
        {"Cache-Control: proxy-revalidate, max-age=60\n", PT_CACHE_NO_AUTHORIZATION},
        {"Cache-Control: public\n", PT_CACHE_STORABLE},
        {"Cache-Control: s-maxage=60\n", PT_CACHE_STORABLE},
        {"Cache-Control: must-revalidate, max-age=60\n", PT_CACHE_STORABLE},
    };

    for (size_t i = 0; i < pt_nelems(cases); i++)
        ck_assert_msg(store(&dflt, PT_HTTP_GET, "Authorization: Basic eDp5\n", 200, cases[i].sf) ==
                          cases[i].want,
                      "%s", cases[i].sf);
}
END_TEST

START_TEST(authorization_with_cache_control_ignored_is_not_stored)
{
    struct pt_cache_conf c = {.ignore = PT_CACHE_IGN_CACHE_CONTROL};

    ck_assert_int_eq(store(&c, PT_HTTP_GET, "Authorization: x\n", 200, "Cache-Control: public\n"),
                     PT_CACHE_NO_AUTHORIZATION);
}
END_TEST

START_TEST(cache_control_ignored_stores_private)
{
    struct pt_cache_conf c = {.ignore = PT_CACHE_IGN_CACHE_CONTROL};

    ck_assert_int_eq(store(&c, PT_HTTP_GET, "", 200, "Cache-Control: private, no-store\n"),
                     PT_CACHE_STORABLE);
}
END_TEST

START_TEST(x_accel_expires_overrides_private_and_no_store)
{
    ck_assert_int_eq(store(&dflt, PT_HTTP_GET, "", 200,
                           "Cache-Control: private, no-store\nX-Accel-Expires: 60\n"),
                     PT_CACHE_STORABLE);
    ck_assert_int_eq(
        store(&dflt, PT_HTTP_GET, "", 200, "X-Accel-Expires: @784112077\nCache-Control: private\n"),
        PT_CACHE_STORABLE);
}
END_TEST

START_TEST(x_accel_expires_ignored_does_not_override_private)
{
    struct pt_cache_conf c = {.ignore = PT_CACHE_IGN_X_ACCEL_EXPIRES};

    ck_assert_int_eq(
        store(&c, PT_HTTP_GET, "", 200, "Cache-Control: private\nX-Accel-Expires: 60\n"),
        PT_CACHE_NO_PRIVATE);
}
END_TEST

START_TEST(invalid_x_accel_expires_does_not_override_private)
{
    ck_assert_int_eq(
        store(&dflt, PT_HTTP_GET, "", 200, "Cache-Control: private\nX-Accel-Expires: 1m\n"),
        PT_CACHE_NO_PRIVATE);
    ck_assert_int_eq(
        store(&dflt, PT_HTTP_GET, "", 200, "Cache-Control: private\nX-Accel-Expires: 0\n"),
        PT_CACHE_NO_PRIVATE);
}
END_TEST

START_TEST(must_understand_lets_no_store_go_for_a_known_status)
{
    ck_assert_int_eq(store(&dflt, PT_HTTP_GET, "", 200,
                           "Cache-Control: must-understand, no-store, max-age=60\n"),
                     PT_CACHE_STORABLE);
}
END_TEST

START_TEST(must_understand_with_an_unknown_status_is_not_stored)
{
    ck_assert_int_eq(store(&dflt, PT_HTTP_GET, "", 299,
                           "Cache-Control: must-understand, no-store, max-age=60\n"),
                     PT_CACHE_NO_MUST_UNDERSTAND);
    ck_assert_int_eq(store(&dflt, PT_HTTP_GET, "", 299, "Cache-Control: max-age=60\n"),
                     PT_CACHE_STORABLE);
}
END_TEST

START_TEST(store_reasons_have_text)
{
    ck_assert_str_eq(pt_cache_store_text(PT_CACHE_NO_PRIVATE), "response Cache-Control: private");
    for (int i = PT_CACHE_STORABLE; i <= PT_CACHE_NO_AUTHORIZATION; i++)
        ck_assert_ptr_nonnull(pt_cache_store_text((enum pt_cache_store)i));
    ck_assert_str_eq(pt_cache_store_text((enum pt_cache_store)99), "?");
}
END_TEST

START_TEST(unsafe_method_success_invalidates)
{
    ck_assert(pt_cache_invalidates(PT_HTTP_POST, 200));
    ck_assert(pt_cache_invalidates(PT_HTTP_DELETE, 204));
    ck_assert(pt_cache_invalidates(PT_HTTP_PUT, 302));
    ck_assert(pt_cache_invalidates(PT_HTTP_OTHER, 200)); /* safety unknown: unsafe */
}
END_TEST

START_TEST(safe_method_or_error_does_not_invalidate)
{
    ck_assert(!pt_cache_invalidates(PT_HTTP_GET, 200));
    ck_assert(!pt_cache_invalidates(PT_HTTP_HEAD, 200));
    ck_assert(!pt_cache_invalidates(PT_HTTP_OPTIONS, 200));
    ck_assert(!pt_cache_invalidates(PT_HTTP_POST, 404));
    ck_assert(!pt_cache_invalidates(PT_HTTP_POST, 500));
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Freshness
 */

#define ck_life(lt, secs, rule_)             \
    do {                                     \
        struct pt_cache_lifetime l_ = (lt);  \
        ck_assert_int_eq(l_.lifetime, secs); \
        ck_assert_int_eq(l_.rule, rule_);    \
    } while (0)

START_TEST(max_age_is_the_lifetime)
{
    struct pt_cache_lifetime lt = life(&dflt, 200, "Cache-Control: max-age=60\n", 600);

    ck_life(lt, 60, PT_CACHE_RULE_MAX_AGE);
    ck_assert_int_eq(lt.expires, T0 + 60);
}
END_TEST

START_TEST(s_maxage_wins_over_max_age)
{
    ck_life(life(&dflt, 200, "Cache-Control: max-age=60, s-maxage=5\n", PT_CACHE_VALID_NONE), 5,
            PT_CACHE_RULE_S_MAXAGE);
}
END_TEST

START_TEST(max_age_wins_over_expires)
{
    ck_life(life(&dflt, 200,
                 DATE_T0 "Expires: Sun, 06 Nov 1994 09:49:37 GMT\nCache-Control: max-age=60\n",
                 PT_CACHE_VALID_NONE),
            60, PT_CACHE_RULE_MAX_AGE);
}
END_TEST

START_TEST(x_accel_expires_wins_over_cache_control)
{
    ck_life(life(&dflt, 200, "Cache-Control: max-age=60, no-cache\nX-Accel-Expires: 300\n",
                 PT_CACHE_VALID_NONE),
            300, PT_CACHE_RULE_X_ACCEL_EXPIRES);
}
END_TEST

START_TEST(x_accel_expires_zero_is_not_cached)
{
    ck_life(life(&dflt, 200, "X-Accel-Expires: 0\nCache-Control: max-age=60\n", 600),
            PT_CACHE_NOT_CACHEABLE, PT_CACHE_RULE_X_ACCEL_EXPIRES);
}
END_TEST

START_TEST(x_accel_expires_at_time_is_absolute)
{
    struct pt_cache_lifetime lt = life(&dflt, 200, "X-Accel-Expires: @784112077\n", 0);

    ck_life(lt, 300, PT_CACHE_RULE_X_ACCEL_EXPIRES);
    ck_assert_int_eq(lt.expires, T0 + 300);
}
END_TEST

START_TEST(x_accel_expires_in_the_past_is_stale)
{
    ck_life(life(&dflt, 200, "X-Accel-Expires: @784111000\n", 0), 0, PT_CACHE_RULE_X_ACCEL_EXPIRES);
}
END_TEST

START_TEST(invalid_x_accel_expires_is_skipped)
{
    static const char *const bad[] = {"X-Accel-Expires: 1m\n", "X-Accel-Expires: -5\n",
                                      "X-Accel-Expires: @\n", "X-Accel-Expires: @x\n",
                                      "X-Accel-Expires:\n"};
    char sf[128];

    for (size_t i = 0; i < pt_nelems(bad); i++) {
        snprintf(sf, sizeof(sf), "%sCache-Control: max-age=60\n", bad[i]);
        ck_assert_msg(life(&dflt, 200, sf, 0).lifetime == 60, "%s", bad[i]);
    }
}
END_TEST

START_TEST(x_accel_expires_ignored_falls_through)
{
    struct pt_cache_conf c = {.ignore = PT_CACHE_IGN_X_ACCEL_EXPIRES};

    ck_life(life(&c, 200, "X-Accel-Expires: 0\nCache-Control: max-age=60\n", 0), 60,
            PT_CACHE_RULE_MAX_AGE);
}
END_TEST

START_TEST(only_the_first_x_accel_expires_counts)
{
    ck_life(life(&dflt, 200, "X-Accel-Expires: 30\nX-Accel-Expires: 0\n", 0), 30,
            PT_CACHE_RULE_X_ACCEL_EXPIRES);
}
END_TEST

START_TEST(invalid_max_age_is_stale)
{
    ck_life(life(&dflt, 200, "Cache-Control: max-age=soon\n", 600), 0, PT_CACHE_RULE_MAX_AGE);
    ck_life(life(&dflt, 200, "Cache-Control: s-maxage=-1, max-age=60\n", 600), 0,
            PT_CACHE_RULE_S_MAXAGE);
}
END_TEST

START_TEST(max_age_zero_is_stale)
{
    ck_life(life(&dflt, 200, "Cache-Control: max-age=0\n", 600), 0, PT_CACHE_RULE_MAX_AGE);
}
END_TEST

START_TEST(no_cache_response_is_stale_whatever_its_max_age)
{
    ck_life(life(&dflt, 200, "Cache-Control: max-age=600, no-cache\n", 600), 0,
            PT_CACHE_RULE_NO_CACHE);
}
END_TEST

START_TEST(huge_max_age_is_clamped)
{
    ck_life(life(&dflt, 200, "Cache-Control: max-age=1000000000000\n", 0), PT_CC_DELTA_MAX,
            PT_CACHE_RULE_MAX_AGE);
}
END_TEST

START_TEST(expires_minus_date_is_the_lifetime)
{
    struct pt_cache_resp r = resp_of(200, DATE_T0 "Expires: Sun, 06 Nov 1994 08:59:37 GMT\n");
    struct pt_cache_lifetime lt;

    r.request_time = r.response_time = T0 + 5; /* received 5 s after its Date */
    pt_cache_freshness(&dflt, &r, PT_CACHE_VALID_NONE, &lt);
    ck_life(lt, 600, PT_CACHE_RULE_EXPIRES);
    ck_assert_int_eq(lt.expires, T0 + 600); /* the 5 s count as age */
}
END_TEST

START_TEST(expires_without_date_counts_from_receipt)
{
    ck_life(life(&dflt, 200, "Expires: Sun, 06 Nov 1994 08:59:37 GMT\n", 0), 600,
            PT_CACHE_RULE_EXPIRES);
}
END_TEST

START_TEST(expires_in_the_past_is_stale)
{
    ck_life(life(&dflt, 200, DATE_T0 "Expires: Sun, 06 Nov 1994 08:32:57 GMT\n", 600), 0,
            PT_CACHE_RULE_EXPIRES);
}
END_TEST

START_TEST(invalid_expires_is_stale)
{
    ck_life(life(&dflt, 200, DATE_T0 "Expires: 0\n", 600), 0, PT_CACHE_RULE_EXPIRES);
    ck_life(life(&dflt, 200, DATE_T0 "Expires: -1\n", 600), 0, PT_CACHE_RULE_EXPIRES);
}
END_TEST

START_TEST(expires_ignored_falls_to_proxy_cache_valid)
{
    struct pt_cache_conf c = {.ignore = PT_CACHE_IGN_EXPIRES};

    ck_life(life(&c, 200, DATE_T0 "Expires: 0\n", 600), 600, PT_CACHE_RULE_VALID);
}
END_TEST

START_TEST(cache_control_ignored_falls_to_expires)
{
    struct pt_cache_conf c = {.ignore = PT_CACHE_IGN_CACHE_CONTROL};

    ck_life(life(&c, 200,
                 DATE_T0 "Cache-Control: no-cache, max-age=5\n"
                         "Expires: Sun, 06 Nov 1994 08:59:37 GMT\n",
                 0),
            600, PT_CACHE_RULE_EXPIRES);
}
END_TEST

START_TEST(proxy_cache_valid_applies_without_headers)
{
    struct pt_cache_lifetime lt = life(&dflt, 302, "", 120);

    ck_life(lt, 120, PT_CACHE_RULE_VALID);
    ck_assert_int_eq(lt.expires, T0 + 120);
}
END_TEST

START_TEST(proxy_cache_valid_zero_is_not_cached)
{
    ck_life(life(&dflt, 200, "", 0), PT_CACHE_NOT_CACHEABLE, PT_CACHE_RULE_VALID);
}
END_TEST

START_TEST(no_rule_is_not_cacheable)
{
    ck_life(life(&dflt, 200, "Last-Modified: Sun, 06 Nov 1994 07:49:37 GMT\n", PT_CACHE_VALID_NONE),
            PT_CACHE_NOT_CACHEABLE, PT_CACHE_RULE_NONE);
}
END_TEST

START_TEST(heuristic_is_a_tenth_of_the_time_since_last_modified)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_HEURISTIC};

    ck_life(life(&c, 200, DATE_T0 "Last-Modified: Sun, 06 Nov 1994 08:32:57 GMT\n",
                 PT_CACHE_VALID_NONE),
            100, PT_CACHE_RULE_HEURISTIC);
}
END_TEST

START_TEST(heuristic_is_capped_at_a_day)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_HEURISTIC};

    ck_life(life(&c, 200, DATE_T0 "Last-Modified: Mon, 17 Oct 1994 08:49:37 GMT\n",
                 PT_CACHE_VALID_NONE),
            86400, PT_CACHE_RULE_HEURISTIC);
}
END_TEST

START_TEST(heuristic_needs_a_cacheable_status_or_public)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_HEURISTIC};
    const char *lm = DATE_T0 "Last-Modified: Sun, 06 Nov 1994 08:32:57 GMT\n";

    ck_life(life(&c, 302, lm, PT_CACHE_VALID_NONE), PT_CACHE_NOT_CACHEABLE, PT_CACHE_RULE_NONE);
    ck_life(life(&c, 404, lm, PT_CACHE_VALID_NONE), 100, PT_CACHE_RULE_HEURISTIC);
    ck_life(life(&c, 302,
                 DATE_T0 "Last-Modified: Sun, 06 Nov 1994 08:32:57 GMT\nCache-Control: public\n",
                 PT_CACHE_VALID_NONE),
            100, PT_CACHE_RULE_HEURISTIC);
}
END_TEST

START_TEST(heuristic_needs_a_valid_last_modified_before_date)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_HEURISTIC};

    ck_life(life(&c, 200, DATE_T0, PT_CACHE_VALID_NONE), PT_CACHE_NOT_CACHEABLE,
            PT_CACHE_RULE_NONE);
    ck_life(life(&c, 200, DATE_T0 "Last-Modified: yesterday\n", PT_CACHE_VALID_NONE),
            PT_CACHE_NOT_CACHEABLE, PT_CACHE_RULE_NONE);
    ck_life(life(&c, 200, DATE_T0 "Last-Modified: Sun, 06 Nov 1994 09:49:37 GMT\n",
                 PT_CACHE_VALID_NONE),
            PT_CACHE_NOT_CACHEABLE, PT_CACHE_RULE_NONE);
}
END_TEST

START_TEST(heuristic_is_off_by_default)
{
    ck_life(life(&dflt, 200, DATE_T0 "Last-Modified: Sun, 06 Nov 1994 08:32:57 GMT\n",
                 PT_CACHE_VALID_NONE),
            PT_CACHE_NOT_CACHEABLE, PT_CACHE_RULE_NONE);
}
END_TEST

START_TEST(proxy_cache_valid_wins_over_heuristic)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_HEURISTIC};

    ck_life(life(&c, 200, DATE_T0 "Last-Modified: Sun, 06 Nov 1994 08:32:57 GMT\n", 30), 30,
            PT_CACHE_RULE_VALID);
}
END_TEST

START_TEST(age_from_upstream_shortens_max_age_not_proxy_cache_valid)
{
    struct pt_cache_lifetime lt = life(&dflt, 200, "Age: 100\nCache-Control: max-age=600\n", 0);

    ck_life(lt, 600, PT_CACHE_RULE_MAX_AGE);
    ck_assert_int_eq(lt.expires, T0 + 500);
    lt = life(&dflt, 200, "Age: 100\n", 600); /* nginx: valid from the receipt */
    ck_life(lt, 700, PT_CACHE_RULE_VALID);
    ck_assert_int_eq(lt.expires, T0 + 600);
    lt = life(&dflt, 200, "Age: 100\nX-Accel-Expires: 600\n", 0);
    ck_life(lt, 700, PT_CACHE_RULE_X_ACCEL_EXPIRES);
    ck_assert_int_eq(lt.expires, T0 + 600);
}
END_TEST

START_TEST(rule_texts_name_the_rule)
{
    ck_assert_str_eq(pt_cache_rule_text(PT_CACHE_RULE_VALID), "proxy_cache_valid");
    for (int i = PT_CACHE_RULE_NONE; i <= PT_CACHE_RULE_HEURISTIC; i++)
        ck_assert_ptr_nonnull(pt_cache_rule_text((enum pt_cache_rule)i));
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Age
 */

START_TEST(age_is_resident_time_when_received_at_once)
{
    ck_assert_int_eq(pt_cache_current_age(0, T0, T0, T0, T0 + 30), 30);
}
END_TEST

START_TEST(age_adds_the_response_delay_to_age_value)
{
    /* sent at T0, received at T0+2 with Age: 10: corrected age 12, then 5 s resident */
    ck_assert_int_eq(pt_cache_current_age(10, T0, T0, T0 + 2, T0 + 7), 17);
}
END_TEST

START_TEST(age_uses_the_apparent_age_when_larger)
{
    /* Date 100 s before receipt and no Age: an upstream clock behind, or a cache between */
    ck_assert_int_eq(pt_cache_current_age(0, T0 - 100, T0, T0, T0), 100);
    ck_assert_int_eq(pt_cache_current_age(0, -1, T0, T0, T0), 0); /* no Date */
}
END_TEST

START_TEST(date_in_the_future_gives_no_apparent_age)
{
    ck_assert_int_eq(pt_cache_current_age(0, T0 + 100, T0, T0, T0 + 1), 1);
}
END_TEST

START_TEST(clock_going_back_counts_as_no_time)
{
    ck_assert_int_eq(pt_cache_current_age(5, T0, T0 + 10, T0, T0 - 50), 5);
}
END_TEST

START_TEST(age_is_capped_at_2_31)
{
    ck_assert_int_eq(pt_cache_current_age(PT_CC_DELTA_MAX, T0, T0, T0, T0 + 1000), PT_CC_DELTA_MAX);
    ck_assert_int_eq(pt_cache_current_age(INT64_MAX, 0, 0, INT64_MAX, INT64_MAX), PT_CC_DELTA_MAX);
}
END_TEST

START_TEST(age_reads_age_and_date_fields)
{
    struct pt_cache_resp r = resp_of(200, "Age: 20\nDate: Sun, 06 Nov 1994 08:49:07 GMT\n");

    ck_assert_int_eq(pt_cache_age(&r, T0 + 10), 40); /* apparent 30 wins over 20, +10 */
}
END_TEST

START_TEST(invalid_age_is_ignored)
{
    struct pt_cache_resp r = resp_of(200, "Age: ten\n");

    ck_assert_int_eq(pt_cache_age(&r, T0 + 10), 10);
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Serving
 */

START_TEST(fresh_response_is_served)
{
    ck_assert_int_eq(use_after(&dflt, "", "Cache-Control: max-age=60\n", 59), PT_CACHE_USE_FRESH);
}
END_TEST

START_TEST(response_is_stale_once_age_reaches_lifetime)
{
    ck_assert_int_eq(use_after(&dflt, "", "Cache-Control: max-age=60\n", 60),
                     PT_CACHE_USE_REVALIDATE);
    ck_assert(pt_cache_fresh(60, 59));
    ck_assert(!pt_cache_fresh(60, 60));
}
END_TEST

START_TEST(stale_while_revalidate_window_allows_updating)
{
    const char *sf = "Cache-Control: max-age=60, stale-while-revalidate=30\n";

    ck_assert_int_eq(use_after(&dflt, "", sf, 70), PT_CACHE_USE_UPDATING);
    ck_assert_int_eq(use_after(&dflt, "", sf, 90), PT_CACHE_USE_UPDATING); /* inclusive */
    ck_assert_int_eq(use_after(&dflt, "", sf, 91), PT_CACHE_USE_REVALIDATE);
}
END_TEST

START_TEST(stale_while_revalidate_with_s_maxage_allows_updating)
{
    ck_assert_int_eq(
        use_after(&dflt, "", "Cache-Control: s-maxage=1, stale-while-revalidate=59\n", 30),
        PT_CACHE_USE_UPDATING);
}
END_TEST

START_TEST(must_revalidate_forbids_stale_while_revalidate)
{
    ck_assert_int_eq(use_after(&dflt, "",
                               "Cache-Control: max-age=60, must-revalidate, "
                               "stale-while-revalidate=30\n",
                               70),
                     PT_CACHE_USE_REVALIDATE);
}
END_TEST

START_TEST(proxy_revalidate_forbids_stale_while_revalidate)
{
    ck_assert_int_eq(use_after(&dflt, "",
                               "Cache-Control: max-age=60, proxy-revalidate, "
                               "stale-while-revalidate=30\n",
                               70),
                     PT_CACHE_USE_REVALIDATE);
}
END_TEST

START_TEST(no_cache_response_always_revalidates)
{
    ck_assert_int_eq(
        use_after(&dflt, "", "Cache-Control: no-cache, stale-while-revalidate=30\n", 0),
        PT_CACHE_USE_REVALIDATE);
}
END_TEST

START_TEST(use_stale_updating_serves_stale_even_with_must_revalidate)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_STALE_UPDATING};

    ck_assert_int_eq(use_after(&c, "", "Cache-Control: max-age=60, must-revalidate\n", 6000),
                     PT_CACHE_USE_UPDATING);
}
END_TEST

START_TEST(x_accel_expires_overrides_no_cache_when_serving)
{
    ck_assert_int_eq(use_after(&dflt, "",
                               "X-Accel-Expires: 60\n"
                               "Cache-Control: no-cache, stale-while-revalidate=30\n",
                               70),
                     PT_CACHE_USE_UPDATING);
    ck_assert_int_eq(use_after(&dflt, "", "X-Accel-Expires: 60\nCache-Control: no-cache\n", 59),
                     PT_CACHE_USE_FRESH);
}
END_TEST

START_TEST(request_no_cache_is_ignored_by_default)
{
    ck_assert_int_eq(
        use_after(&dflt, "Cache-Control: no-cache\n", "Cache-Control: max-age=60\n", 1),
        PT_CACHE_USE_FRESH);
    ck_assert_int_eq(use_after(&dflt, "Pragma: no-cache\n", "Cache-Control: max-age=60\n", 1),
                     PT_CACHE_USE_FRESH);
}
END_TEST

START_TEST(request_no_cache_forces_revalidation_when_honoured)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_REQUEST_CC};

    ck_assert_int_eq(use_after(&c, "Cache-Control: no-cache\n", "Cache-Control: max-age=60\n", 1),
                     PT_CACHE_USE_REVALIDATE);
}
END_TEST

START_TEST(pragma_no_cache_forces_revalidation_when_honoured)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_REQUEST_CC};

    ck_assert_int_eq(use_after(&c, "Pragma: no-cache\n", "Cache-Control: max-age=60\n", 1),
                     PT_CACHE_USE_REVALIDATE);
}
END_TEST

START_TEST(request_max_age_zero_forces_revalidation)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_REQUEST_CC};

    ck_assert_int_eq(use_after(&c, "Cache-Control: max-age=0\n", "Cache-Control: max-age=60\n", 0),
                     PT_CACHE_USE_REVALIDATE);
}
END_TEST

START_TEST(request_max_age_limits_the_age)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_REQUEST_CC};
    const char *sf = "Cache-Control: max-age=60\n";

    ck_assert_int_eq(use_after(&c, "Cache-Control: max-age=10\n", sf, 10), PT_CACHE_USE_FRESH);
    ck_assert_int_eq(use_after(&c, "Cache-Control: max-age=10\n", sf, 11), PT_CACHE_USE_REVALIDATE);
    ck_assert_int_eq(use_after(&c, "Cache-Control: max-age=x\n", sf, 11), PT_CACHE_USE_FRESH);
}
END_TEST

START_TEST(request_min_fresh_needs_remaining_freshness)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_REQUEST_CC};
    const char *sf = "Cache-Control: max-age=60\n";

    ck_assert_int_eq(use_after(&c, "Cache-Control: min-fresh=20\n", sf, 40), PT_CACHE_USE_FRESH);
    ck_assert_int_eq(use_after(&c, "Cache-Control: min-fresh=20\n", sf, 41),
                     PT_CACHE_USE_REVALIDATE);
}
END_TEST

START_TEST(request_max_stale_accepts_stale)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_REQUEST_CC};
    const char *sf = "Cache-Control: max-age=60\n";

    ck_assert_int_eq(use_after(&c, "Cache-Control: max-stale=30\n", sf, 90), PT_CACHE_USE_STALE);
    ck_assert_int_eq(use_after(&c, "Cache-Control: max-stale=30\n", sf, 91),
                     PT_CACHE_USE_REVALIDATE);
    ck_assert_int_eq(use_after(&c, "Cache-Control: max-stale\n", sf, 1000000), PT_CACHE_USE_STALE);
}
END_TEST

START_TEST(max_stale_is_refused_by_must_revalidate)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_REQUEST_CC};

    ck_assert_int_eq(use_after(&c, "Cache-Control: max-stale\n",
                               "Cache-Control: max-age=60, must-revalidate\n", 61),
                     PT_CACHE_USE_REVALIDATE);
}
END_TEST

START_TEST(max_stale_is_refused_under_s_maxage)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_REQUEST_CC};

    ck_assert_int_eq(
        use_after(&c, "Cache-Control: max-stale\n", "Cache-Control: s-maxage=60\n", 61),
        PT_CACHE_USE_REVALIDATE);
}
END_TEST

START_TEST(only_if_cached_gives_504_instead_of_going_upstream)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_REQUEST_CC};
    const char *sf = "Cache-Control: max-age=60\n";

    ck_assert_int_eq(use_after(&c, "Cache-Control: only-if-cached\n", sf, 61), PT_CACHE_USE_504);
    ck_assert_int_eq(use_after(&c, "Cache-Control: only-if-cached\n", sf, 1), PT_CACHE_USE_FRESH);
    ck_assert_int_eq(use_after(&dflt, "Cache-Control: only-if-cached\n", sf, 61),
                     PT_CACHE_USE_REVALIDATE);
}
END_TEST

START_TEST(stale_if_error_window_allows_stale_on_error)
{
    const char *sf = "Cache-Control: max-age=60, stale-if-error=100\n";

    ck_assert(stale_on_error(&dflt, "", sf, 160, 0));
    ck_assert(!stale_on_error(&dflt, "", sf, 161, 0));
    ck_assert(!stale_on_error(&dflt, "", "Cache-Control: max-age=60\n", 61, 0));
}
END_TEST

START_TEST(stale_while_revalidate_alone_does_not_allow_stale_on_error)
{
    ck_assert(!stale_on_error(&dflt, "", "Cache-Control: max-age=60, stale-while-revalidate=99\n",
                              61, 0));
}
END_TEST

START_TEST(stale_if_error_is_forbidden_by_must_revalidate)
{
    ck_assert(!stale_on_error(
        &dflt, "", "Cache-Control: max-age=60, must-revalidate, stale-if-error=100\n", 61, 0));
}
END_TEST

START_TEST(configured_use_stale_serves_on_error_whatever_the_headers)
{
    ck_assert(stale_on_error(&dflt, "", "Cache-Control: max-age=60, must-revalidate\n", 100000, 1));
}
END_TEST

START_TEST(request_stale_if_error_counts_when_honoured)
{
    struct pt_cache_conf c = {.flags = PT_CACHE_REQUEST_CC};
    const char *qf = "Cache-Control: stale-if-error=50\n";

    ck_assert(stale_on_error(&c, qf, "Cache-Control: max-age=60\n", 110, 0));
    ck_assert(!stale_on_error(&c, qf, "Cache-Control: max-age=60\n", 111, 0));
    ck_assert(!stale_on_error(&dflt, qf, "Cache-Control: max-age=60\n", 110, 0));
}
END_TEST

START_TEST(cache_control_ignored_reads_no_stale_window)
{
    struct pt_cache_conf c = {.ignore = PT_CACHE_IGN_CACHE_CONTROL};
    struct pt_cache_resp r = resp_of(200, "Cache-Control: max-age=60, stale-while-revalidate=30\n");
    struct pt_cache_req q = req_of(PT_HTTP_GET, "");
    struct pt_cache_lifetime lt;

    pt_cache_freshness(&c, &r, 60, &lt);
    ck_assert_int_eq(pt_cache_use(&c, &q, &r, &lt, T0 + 70), PT_CACHE_USE_REVALIDATE);
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Vary
 */

START_TEST(vary_key_keeps_the_order_of_vary)
{
    ck_assert_int_eq(
        vary_key(&dflt, "Vary: User-Agent, Accept\n", "Accept: text/html\nUser-Agent: x\n"), PT_OK);
    ck_key("user-agent:x\naccept:text/html\n");
}
END_TEST

START_TEST(vary_key_joins_repeated_fields)
{
    vary_key(&dflt, "Vary: Cookie\n", "Cookie: a=1\nX: y\ncookie:  b=2 \n");
    ck_key("cookie:a=1, b=2\n");
}
END_TEST

START_TEST(vary_key_tells_absent_from_empty)
{
    vary_key(&dflt, "Vary: Accept\n", "");
    ck_key("accept\n");
    vary_key(&dflt, "Vary: Accept\n", "Accept:\n");
    ck_key("accept:\n");
}
END_TEST

START_TEST(vary_key_normalizes_accept_lists)
{
    vary_key(&dflt, "Vary: Accept-Encoding\n", "Accept-Encoding: GZIP ,deflate;q=0.5,, br\n");
    ck_key("accept-encoding:gzip,deflate;q=0.5,br\n");
    vary_key(&dflt, "Vary: accept-encoding\n",
             "Accept-Encoding: gzip,deflate ; q=0.5\nAccept-Encoding: br\n");
    ck_key("accept-encoding:gzip,deflate;q=0.5,br\n");
    vary_key(&dflt, "Vary: Accept-Language\n", "Accept-Language: en-US, fr;q=0.8\n");
    ck_key("accept-language:en-us,fr;q=0.8\n");
}
END_TEST

START_TEST(vary_key_keeps_other_values_as_sent)
{
    vary_key(&dflt, "Vary: Accept\n", "Accept: Text/HTML,  */*\n");
    ck_key("accept:Text/HTML,  */*\n");
}
END_TEST

START_TEST(vary_key_reads_every_vary_field)
{
    vary_key(&dflt, "Vary: Accept\nVary: Origin,, X-Foo\n", "Origin: o\n");
    ck_key("accept\norigin:o\nx-foo\n");
}
END_TEST

START_TEST(vary_star_never_matches)
{
    ck_assert_int_eq(vary_key(&dflt, "Vary: Accept, *\n", "Accept: a\n"), PT_DECLINED);
}
END_TEST

START_TEST(vary_key_is_empty_without_vary_or_with_vary_ignored)
{
    struct pt_cache_conf c = {.ignore = PT_CACHE_IGN_VARY};

    ck_assert_int_eq(vary_key(&dflt, "", "Accept: a\n"), PT_OK);
    ck_assert_uint_eq(keylen, 0);
    ck_assert_int_eq(vary_key(&c, "Vary: *\n", "Accept: a\n"), PT_OK);
    ck_assert_uint_eq(keylen, 0);
}
END_TEST

START_TEST(vary_key_too_long_is_an_error)
{
    struct pt_cache_resp r = resp_of(200, "Vary: Accept\n");
    struct pt_cache_req q = req_of(PT_HTTP_GET, "Accept: text/html\n");
    char small[8];
    size_t n = 99;

    ck_assert_int_eq(pt_cache_vary_key(&dflt, &r, &q, small, sizeof(small), &n), PT_ERROR);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(vary_keys_match_only_for_the_same_values)
{
    struct pt_cache_resp r = resp_of(200, "Vary: Accept-Encoding\n");
    struct pt_cache_req a = req_in(&qm, PT_HTTP_GET, "Accept-Encoding: gzip, br\n");
    struct pt_cache_req b = req_in(&qm2, PT_HTTP_GET, "accept-encoding: GZIP,BR\n");
    char ka[64], kb[64];
    size_t la, lb;

    ck_assert_int_eq(pt_cache_vary_key(&dflt, &r, &a, ka, sizeof(ka), &la), PT_OK);
    ck_assert_int_eq(pt_cache_vary_key(&dflt, &r, &b, kb, sizeof(kb), &lb), PT_OK);
    ck_assert(la == lb && memcmp(ka, kb, la) == 0);
    b = req_in(&qm2, PT_HTTP_GET, "Accept-Encoding: gzip\n");
    ck_assert_int_eq(pt_cache_vary_key(&dflt, &r, &b, kb, sizeof(kb), &lb), PT_OK);
    ck_assert(la != lb || memcmp(ka, kb, la) != 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Conditionals
 */

#define STORED "ETag: \"v1\"\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\n"

START_TEST(if_none_match_star_gives_304)
{
    ck_assert_int_eq(cond("If-None-Match: *\n", STORED), 304);
    ck_assert_int_eq(cond("If-None-Match: *\n", ""), 304); /* any stored response */
}
END_TEST

START_TEST(if_none_match_uses_weak_comparison)
{
    ck_assert_int_eq(cond("If-None-Match: W/\"v1\"\n", STORED), 304);
    ck_assert_int_eq(cond("If-None-Match: \"v1\"\n", "ETag: W/\"v1\"\n"), 304);
}
END_TEST

START_TEST(if_none_match_list_matches_any_member)
{
    ck_assert_int_eq(cond("If-None-Match: \"a\", \"b\",\"v1\"\n", STORED), 304);
    ck_assert_int_eq(cond("If-None-Match: \"a\"\nIf-None-Match: \"v1\"\n", STORED), 304);
}
END_TEST

START_TEST(if_none_match_without_match_gives_full_response)
{
    ck_assert_int_eq(cond("If-None-Match: \"v2\", W/\"v3\"\n", STORED), 0);
    ck_assert_int_eq(
        cond("If-None-Match: \"v1\"\n", "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\n"), 0);
}
END_TEST

START_TEST(if_none_match_on_unsafe_method_gives_412)
{
    ck_assert_int_eq(
        cond_ims(PT_HTTP_POST, "If-None-Match: \"v1\"\n", 200, STORED, PT_CACHE_IMS_EXACT), 412);
}
END_TEST

START_TEST(if_none_match_wins_over_if_modified_since)
{
    ck_assert_int_eq(cond("If-None-Match: \"v2\"\n"
                          "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\n",
                          STORED),
                     0);
}
END_TEST

START_TEST(etag_holding_a_comma_matches)
{
    ck_assert_int_eq(cond("If-None-Match: \"x\", \"a,b\"\n", "ETag: \"a,b\"\n"), 304);
}
END_TEST

START_TEST(malformed_etag_matches_nothing)
{
    ck_assert_int_eq(cond("If-None-Match: v1\n", "ETag: v1\n"), 0);
    ck_assert_int_eq(cond("If-None-Match: \"v1\n", STORED), 0);
    ck_assert_int_eq(cond("If-None-Match: junk, \"v1\"\n", STORED), 304);
}
END_TEST

START_TEST(if_match_needs_a_strong_match)
{
    ck_assert_int_eq(cond("If-Match: \"v1\"\n", STORED), 0);
    ck_assert_int_eq(cond("If-Match: W/\"v1\"\n", STORED), 412);
    ck_assert_int_eq(cond("If-Match: \"v1\"\n", "ETag: W/\"v1\"\n"), 412);
}
END_TEST

START_TEST(if_match_star_passes)
{
    ck_assert_int_eq(cond("If-Match: *\n", ""), 0);
}
END_TEST

START_TEST(if_match_mismatch_gives_412)
{
    ck_assert_int_eq(cond("If-Match: \"v2\"\n", STORED), 412);
    ck_assert_int_eq(cond("If-Match: \"v1\"\n", ""), 412); /* no ETag stored */
}
END_TEST

START_TEST(if_unmodified_since_before_last_modified_gives_412)
{
    ck_assert_int_eq(cond("If-Unmodified-Since: Sun, 06 Nov 1994 08:49:36 GMT\n", STORED), 412);
    ck_assert_int_eq(cond("If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\n", STORED), 0);
}
END_TEST

START_TEST(if_unmodified_since_without_last_modified_gives_412)
{
    ck_assert_int_eq(cond("If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\n", "ETag: \"v1\"\n"),
                     412);
}
END_TEST

START_TEST(invalid_if_unmodified_since_is_ignored)
{
    ck_assert_int_eq(cond("If-Unmodified-Since: yesterday\n", STORED), 0);
    ck_assert_int_eq(cond("If-Unmodified-Since: Sun, 06 Nov 1994 08:49:36 GMT\n"
                          "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:36 GMT\n",
                          STORED),
                     0);
}
END_TEST

START_TEST(if_match_wins_over_if_unmodified_since)
{
    ck_assert_int_eq(cond("If-Match: \"v1\"\n"
                          "If-Unmodified-Since: Sun, 06 Nov 1994 08:00:00 GMT\n",
                          STORED),
                     0);
}
END_TEST

START_TEST(if_modified_since_exact_match_gives_304)
{
    ck_assert_int_eq(cond("If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\n", STORED), 304);
    /* nginx's default "if_modified_since exact": a later date is not a match */
    ck_assert_int_eq(cond("If-Modified-Since: Sun, 06 Nov 1994 09:49:37 GMT\n", STORED), 0);
    ck_assert_int_eq(cond("If-Modified-Since: Sun, 06 Nov 1994 07:49:37 GMT\n", STORED), 0);
}
END_TEST

START_TEST(if_modified_since_before_mode_is_the_rfc_rule)
{
    ck_assert_int_eq(cond_ims(PT_HTTP_GET, "If-Modified-Since: Sun, 06 Nov 1994 09:49:37 GMT\n",
                              200, STORED, PT_CACHE_IMS_BEFORE),
                     304);
    ck_assert_int_eq(cond_ims(PT_HTTP_GET, "If-Modified-Since: Sun, 06 Nov 1994 07:49:37 GMT\n",
                              200, STORED, PT_CACHE_IMS_BEFORE),
                     0);
}
END_TEST

START_TEST(if_modified_since_is_ignored_when_off_or_for_post)
{
    const char *qf = "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\n";

    ck_assert_int_eq(cond_ims(PT_HTTP_GET, qf, 200, STORED, PT_CACHE_IMS_OFF), 0);
    ck_assert_int_eq(cond_ims(PT_HTTP_POST, qf, 200, STORED, PT_CACHE_IMS_EXACT), 0);
    ck_assert_int_eq(cond_ims(PT_HTTP_HEAD, qf, 200, STORED, PT_CACHE_IMS_EXACT), 304);
}
END_TEST

START_TEST(invalid_if_modified_since_is_ignored)
{
    ck_assert_int_eq(cond("If-Modified-Since: Sun, 06 Nov 1994 08:49:37\n", STORED), 0);
    ck_assert_int_eq(cond("If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\n", "ETag: \"v1\"\n"),
                     0); /* nothing to compare with */
}
END_TEST

START_TEST(conditionals_apply_only_to_a_stored_2xx)
{
    ck_assert_int_eq(cond_ims(PT_HTTP_GET, "If-None-Match: *\n", 404, STORED, PT_CACHE_IMS_EXACT),
                     0);
    ck_assert_int_eq(cond_ims(PT_HTTP_GET, "If-Match: \"x\"\n", 301, STORED, PT_CACHE_IMS_EXACT),
                     0);
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Range
 */

START_TEST(single_range_is_206)
{
    ck_assert_int_eq(range("Range: bytes=0-99\n", 1000), PT_CACHE_RANGE_SINGLE);
    ck_range(0, 99);
}
END_TEST

START_TEST(open_range_runs_to_the_end)
{
    ck_assert_int_eq(range("Range: bytes=900-\n", 1000), PT_CACHE_RANGE_SINGLE);
    ck_range(900, 999);
}
END_TEST

START_TEST(last_past_length_is_clipped)
{
    ck_assert_int_eq(range("Range: bytes=500-5000\n", 1000), PT_CACHE_RANGE_SINGLE);
    ck_range(500, 999);
}
END_TEST

START_TEST(suffix_range_is_the_tail)
{
    ck_assert_int_eq(range("Range: bytes=-100\n", 1000), PT_CACHE_RANGE_SINGLE);
    ck_range(900, 999);
}
END_TEST

START_TEST(suffix_range_past_length_is_whole_body)
{
    ck_assert_int_eq(range("Range: bytes=-5000\n", 1000), PT_CACHE_RANGE_SINGLE);
    ck_range(0, 999);
}
END_TEST

START_TEST(range_starting_past_length_is_416)
{
    ck_assert_int_eq(range("Range: bytes=1000-\n", 1000), PT_CACHE_RANGE_UNSATISFIABLE);
    ck_assert_int_eq(range("Range: bytes=99999999999999999999999-\n", 1000),
                     PT_CACHE_RANGE_UNSATISFIABLE);
    ck_assert_int_eq(range("Range: bytes=0-\n", 0), PT_CACHE_RANGE_UNSATISFIABLE);
}
END_TEST

START_TEST(zero_suffix_is_416)
{
    ck_assert_int_eq(range("Range: bytes=-0\n", 1000), PT_CACHE_RANGE_UNSATISFIABLE);
}
END_TEST

START_TEST(suffix_of_an_empty_body_sends_it_whole)
{
    ck_assert_int_eq(range("Range: bytes=-5\n", 0), PT_CACHE_RANGE_NONE);
}
END_TEST

START_TEST(multiple_ranges_say_multiple_with_the_first)
{
    ck_assert_int_eq(range("Range: bytes=0-9, 20-29\n", 1000), PT_CACHE_RANGE_MULTIPLE);
    ck_range(0, 9);
}
END_TEST

START_TEST(unsatisfiable_members_are_dropped)
{
    ck_assert_int_eq(range("Range: bytes=2000-3000, 10-19\n", 1000), PT_CACHE_RANGE_SINGLE);
    ck_range(10, 19);
    ck_assert_int_eq(range("Range: bytes=2000-3000,-0\n", 1000), PT_CACHE_RANGE_UNSATISFIABLE);
}
END_TEST

START_TEST(invalid_range_is_ignored)
{
    static const char *const bad[] = {
        "Range: bytes=abc\n",   "Range: bytes=5-2\n",    "Range: bytes=\n",
        "Range: bytes=,\n",     "Range: bytes=1\n",      "Range: bytes=--5\n",
        "Range: bytes=1-2-3\n", "Range: bytes=0-1, x\n", "Range: bytes = 0-1\n",
        "Range: bytes=0 -1\n",
    };

    for (size_t i = 0; i < pt_nelems(bad); i++)
        ck_assert_msg(range(bad[i], 1000) == PT_CACHE_RANGE_NONE, "%s", bad[i]);
}
END_TEST

START_TEST(other_unit_is_ignored)
{
    ck_assert_int_eq(range("Range: items=0-5\n", 1000), PT_CACHE_RANGE_NONE);
}
END_TEST

START_TEST(range_unit_is_case_insensitive)
{
    ck_assert_int_eq(range("Range: BYTES=0-0\n", 1000), PT_CACHE_RANGE_SINGLE);
    ck_range(0, 0);
}
END_TEST

START_TEST(range_applies_only_to_get_on_a_known_200)
{
    struct pt_cache_req q = req_of(PT_HTTP_GET, "Range: bytes=0-1\n");
    struct pt_cache_resp r = resp_of(404, "");

    ck_assert_int_eq(range_of(PT_HTTP_HEAD, "Range: bytes=0-1\n", "", 1000), PT_CACHE_RANGE_NONE);
    ck_assert_int_eq(range("Range: bytes=0-1\n", -1), PT_CACHE_RANGE_NONE);
    ck_assert_int_eq(pt_cache_range(&q, &r, 1000, &got), PT_CACHE_RANGE_NONE);
    ck_assert_int_eq(range("Range: bytes=0-1\nRange: bytes=2-3\n", 1000), PT_CACHE_RANGE_NONE);
}
END_TEST

START_TEST(if_range_with_matching_strong_etag_applies_range)
{
    ck_assert_int_eq(range("Range: bytes=0-1\nIf-Range: \"v1\"\n", 1000), PT_CACHE_RANGE_SINGLE);
}
END_TEST

START_TEST(if_range_with_other_or_weak_etag_sends_whole)
{
    ck_assert_int_eq(range("Range: bytes=0-1\nIf-Range: \"v2\"\n", 1000), PT_CACHE_RANGE_NONE);
    ck_assert_int_eq(range("Range: bytes=0-1\nIf-Range: W/\"v1\"\n", 1000), PT_CACHE_RANGE_NONE);
    ck_assert_int_eq(
        range_of(PT_HTTP_GET, "Range: bytes=0-1\nIf-Range: \"v1\"\n", "ETag: W/\"v1\"\n", 1000),
        PT_CACHE_RANGE_NONE);
}
END_TEST

START_TEST(if_range_with_exact_strong_date_applies_range)
{
    const char *sf = DATE_T0 "Last-Modified: Sun, 06 Nov 1994 08:48:37 GMT\n";

    ck_assert_int_eq(range_of(PT_HTTP_GET,
                              "Range: bytes=0-1\nIf-Range: Sun, 06 Nov 1994 08:48:37 GMT\n", sf,
                              1000),
                     PT_CACHE_RANGE_SINGLE);
    ck_assert_int_eq(range_of(PT_HTTP_GET,
                              "Range: bytes=0-1\nIf-Range: Sun, 06 Nov 1994 08:48:38 GMT\n", sf,
                              1000),
                     PT_CACHE_RANGE_NONE);
}
END_TEST

START_TEST(if_range_date_close_to_date_is_weak_and_sends_whole)
{
    ck_assert_int_eq(range_of(PT_HTTP_GET,
                              "Range: bytes=0-1\nIf-Range: Sun, 06 Nov 1994 08:48:38 GMT\n",
                              DATE_T0 "Last-Modified: Sun, 06 Nov 1994 08:48:38 GMT\n", 1000),
                     PT_CACHE_RANGE_NONE);
    ck_assert_int_eq(range_of(PT_HTTP_GET,
                              "Range: bytes=0-1\nIf-Range: Sun, 06 Nov 1994 08:48:37 GMT\n",
                              "Last-Modified: Sun, 06 Nov 1994 08:48:37 GMT\n", 1000),
                     PT_CACHE_RANGE_NONE); /* no Date: cannot tell it is strong */
}
END_TEST

START_TEST(invalid_if_range_sends_whole)
{
    ck_assert_int_eq(range("Range: bytes=0-1\nIf-Range: tomorrow\n", 1000), PT_CACHE_RANGE_NONE);
}
END_TEST

static TCase *cache_control_case(void)
{
    TCase *tc = tcase_create("cache_control");

    tcase_add_test(tc, cc_names_are_case_insensitive);
    tcase_add_test(tc, cc_all_fields_are_combined);
    tcase_add_test(tc, cc_without_field_is_absent);
    tcase_add_test(tc, cc_quoted_argument_is_accepted);
    tcase_add_test(tc, cc_no_cache_field_name_form_is_no_cache);
    tcase_add_test(tc, cc_private_field_name_form_is_private);
    tcase_add_test(tc, cc_first_occurrence_wins);
    tcase_add_test(tc, cc_invalid_delta_is_marked_invalid);
    tcase_add_test(tc, cc_huge_delta_is_clamped_to_2_31);
    tcase_add_test(tc, cc_unknown_directives_are_ignored);
    tcase_add_test(tc, cc_empty_members_are_skipped);
    tcase_add_test(tc, cc_spaces_around_equals_are_tolerated);
    tcase_add_test(tc, cc_unterminated_quote_is_invalid);
    tcase_add_test(tc, cc_escaped_quote_stays_inside_the_quoted_string);
    tcase_add_test(tc, cc_bare_max_stale_is_any);
    tcase_add_test(tc, cc_request_directives_are_parsed);
    tcase_add_test(tc, cc_response_directives_are_parsed);
    tcase_add_test(tc, pragma_no_cache_counts_without_cache_control);
    tcase_add_test(tc, pragma_is_ignored_with_cache_control);
    tcase_add_test(tc, pragma_is_not_read_by_the_response_parser);
    return tc;
}

static TCase *dates_case(void)
{
    TCase *tc = tcase_create("dates");

    tcase_add_test(tc, imf_fixdate_parses);
    tcase_add_test(tc, rfc850_date_parses);
    tcase_add_test(tc, asctime_date_parses);
    tcase_add_test(tc, date_names_are_case_insensitive);
    tcase_add_test(tc, date_weekday_is_not_checked_against_the_date);
    tcase_add_test(tc, invalid_dates_are_minus_one);
    tcase_add_test(tc, leap_day_parses_only_in_leap_years);
    tcase_add_test(tc, leap_second_is_accepted);
    tcase_add_test(tc, date_before_1970_is_zero);
    tcase_add_test(tc, rfc850_year_over_50_years_ahead_is_in_the_past);
    return tc;
}

static TCase *store_case(void)
{
    TCase *tc = tcase_create("store");

    tcase_add_test(tc, get_response_with_max_age_is_stored);
    tcase_add_test(tc, post_is_not_stored_by_default);
    tcase_add_test(tc, post_is_stored_when_in_cache_methods);
    tcase_add_test(tc, head_is_fetched_as_get_by_default);
    tcase_add_test(tc, head_response_is_stored_with_or_without_conversion);
    tcase_add_test(tc, interim_partial_and_not_modified_are_not_stored);
    tcase_add_test(tc, private_response_is_not_stored);
    tcase_add_test(tc, private_field_name_form_is_not_stored);
    tcase_add_test(tc, no_store_response_is_not_stored);
    tcase_add_test(tc, no_cache_response_is_stored);
    tcase_add_test(tc, request_no_store_is_ignored_by_default);
    tcase_add_test(tc, request_no_store_prevents_storing_when_honoured);
    tcase_add_test(tc, set_cookie_not_stored_unless_ignored);
    tcase_add_test(tc, set_cookie_is_not_stored_even_with_x_accel_expires);
    tcase_add_test(tc, vary_star_is_not_stored);
    tcase_add_test(tc, vary_star_is_stored_when_vary_ignored);
    tcase_add_test(tc, authorization_needs_public);
    tcase_add_test(tc, authorization_with_cache_control_ignored_is_not_stored);
    tcase_add_test(tc, cache_control_ignored_stores_private);
    tcase_add_test(tc, x_accel_expires_overrides_private_and_no_store);
    tcase_add_test(tc, x_accel_expires_ignored_does_not_override_private);
    tcase_add_test(tc, invalid_x_accel_expires_does_not_override_private);
    tcase_add_test(tc, must_understand_lets_no_store_go_for_a_known_status);
    tcase_add_test(tc, must_understand_with_an_unknown_status_is_not_stored);
    tcase_add_test(tc, store_reasons_have_text);
    tcase_add_test(tc, unsafe_method_success_invalidates);
    tcase_add_test(tc, safe_method_or_error_does_not_invalidate);
    return tc;
}

static TCase *freshness_case(void)
{
    TCase *tc = tcase_create("freshness");

    tcase_add_test(tc, max_age_is_the_lifetime);
    tcase_add_test(tc, s_maxage_wins_over_max_age);
    tcase_add_test(tc, max_age_wins_over_expires);
    tcase_add_test(tc, x_accel_expires_wins_over_cache_control);
    tcase_add_test(tc, x_accel_expires_zero_is_not_cached);
    tcase_add_test(tc, x_accel_expires_at_time_is_absolute);
    tcase_add_test(tc, x_accel_expires_in_the_past_is_stale);
    tcase_add_test(tc, invalid_x_accel_expires_is_skipped);
    tcase_add_test(tc, x_accel_expires_ignored_falls_through);
    tcase_add_test(tc, only_the_first_x_accel_expires_counts);
    tcase_add_test(tc, invalid_max_age_is_stale);
    tcase_add_test(tc, max_age_zero_is_stale);
    tcase_add_test(tc, no_cache_response_is_stale_whatever_its_max_age);
    tcase_add_test(tc, huge_max_age_is_clamped);
    tcase_add_test(tc, expires_minus_date_is_the_lifetime);
    tcase_add_test(tc, expires_without_date_counts_from_receipt);
    tcase_add_test(tc, expires_in_the_past_is_stale);
    tcase_add_test(tc, invalid_expires_is_stale);
    tcase_add_test(tc, expires_ignored_falls_to_proxy_cache_valid);
    tcase_add_test(tc, cache_control_ignored_falls_to_expires);
    tcase_add_test(tc, proxy_cache_valid_applies_without_headers);
    tcase_add_test(tc, proxy_cache_valid_zero_is_not_cached);
    tcase_add_test(tc, no_rule_is_not_cacheable);
    tcase_add_test(tc, heuristic_is_a_tenth_of_the_time_since_last_modified);
    tcase_add_test(tc, heuristic_is_capped_at_a_day);
    tcase_add_test(tc, heuristic_needs_a_cacheable_status_or_public);
    tcase_add_test(tc, heuristic_needs_a_valid_last_modified_before_date);
    tcase_add_test(tc, heuristic_is_off_by_default);
    tcase_add_test(tc, proxy_cache_valid_wins_over_heuristic);
    tcase_add_test(tc, age_from_upstream_shortens_max_age_not_proxy_cache_valid);
    tcase_add_test(tc, rule_texts_name_the_rule);
    return tc;
}

static TCase *age_case(void)
{
    TCase *tc = tcase_create("age");

    tcase_add_test(tc, age_is_resident_time_when_received_at_once);
    tcase_add_test(tc, age_adds_the_response_delay_to_age_value);
    tcase_add_test(tc, age_uses_the_apparent_age_when_larger);
    tcase_add_test(tc, date_in_the_future_gives_no_apparent_age);
    tcase_add_test(tc, clock_going_back_counts_as_no_time);
    tcase_add_test(tc, age_is_capped_at_2_31);
    tcase_add_test(tc, age_reads_age_and_date_fields);
    tcase_add_test(tc, invalid_age_is_ignored);
    return tc;
}

static TCase *serve_case(void)
{
    TCase *tc = tcase_create("serve");

    tcase_add_test(tc, fresh_response_is_served);
    tcase_add_test(tc, response_is_stale_once_age_reaches_lifetime);
    tcase_add_test(tc, stale_while_revalidate_window_allows_updating);
    tcase_add_test(tc, stale_while_revalidate_with_s_maxage_allows_updating);
    tcase_add_test(tc, must_revalidate_forbids_stale_while_revalidate);
    tcase_add_test(tc, proxy_revalidate_forbids_stale_while_revalidate);
    tcase_add_test(tc, no_cache_response_always_revalidates);
    tcase_add_test(tc, use_stale_updating_serves_stale_even_with_must_revalidate);
    tcase_add_test(tc, x_accel_expires_overrides_no_cache_when_serving);
    tcase_add_test(tc, request_no_cache_is_ignored_by_default);
    tcase_add_test(tc, request_no_cache_forces_revalidation_when_honoured);
    tcase_add_test(tc, pragma_no_cache_forces_revalidation_when_honoured);
    tcase_add_test(tc, request_max_age_zero_forces_revalidation);
    tcase_add_test(tc, request_max_age_limits_the_age);
    tcase_add_test(tc, request_min_fresh_needs_remaining_freshness);
    tcase_add_test(tc, request_max_stale_accepts_stale);
    tcase_add_test(tc, max_stale_is_refused_by_must_revalidate);
    tcase_add_test(tc, max_stale_is_refused_under_s_maxage);
    tcase_add_test(tc, only_if_cached_gives_504_instead_of_going_upstream);
    tcase_add_test(tc, stale_if_error_window_allows_stale_on_error);
    tcase_add_test(tc, stale_while_revalidate_alone_does_not_allow_stale_on_error);
    tcase_add_test(tc, stale_if_error_is_forbidden_by_must_revalidate);
    tcase_add_test(tc, configured_use_stale_serves_on_error_whatever_the_headers);
    tcase_add_test(tc, request_stale_if_error_counts_when_honoured);
    tcase_add_test(tc, cache_control_ignored_reads_no_stale_window);
    return tc;
}

static TCase *vary_case(void)
{
    TCase *tc = tcase_create("vary");

    tcase_add_test(tc, vary_key_keeps_the_order_of_vary);
    tcase_add_test(tc, vary_key_joins_repeated_fields);
    tcase_add_test(tc, vary_key_tells_absent_from_empty);
    tcase_add_test(tc, vary_key_normalizes_accept_lists);
    tcase_add_test(tc, vary_key_keeps_other_values_as_sent);
    tcase_add_test(tc, vary_key_reads_every_vary_field);
    tcase_add_test(tc, vary_star_never_matches);
    tcase_add_test(tc, vary_key_is_empty_without_vary_or_with_vary_ignored);
    tcase_add_test(tc, vary_key_too_long_is_an_error);
    tcase_add_test(tc, vary_keys_match_only_for_the_same_values);
    return tc;
}

static TCase *conditionals_case(void)
{
    TCase *tc = tcase_create("conditionals");

    tcase_add_test(tc, if_none_match_star_gives_304);
    tcase_add_test(tc, if_none_match_uses_weak_comparison);
    tcase_add_test(tc, if_none_match_list_matches_any_member);
    tcase_add_test(tc, if_none_match_without_match_gives_full_response);
    tcase_add_test(tc, if_none_match_on_unsafe_method_gives_412);
    tcase_add_test(tc, if_none_match_wins_over_if_modified_since);
    tcase_add_test(tc, etag_holding_a_comma_matches);
    tcase_add_test(tc, malformed_etag_matches_nothing);
    tcase_add_test(tc, if_match_needs_a_strong_match);
    tcase_add_test(tc, if_match_star_passes);
    tcase_add_test(tc, if_match_mismatch_gives_412);
    tcase_add_test(tc, if_unmodified_since_before_last_modified_gives_412);
    tcase_add_test(tc, if_unmodified_since_without_last_modified_gives_412);
    tcase_add_test(tc, invalid_if_unmodified_since_is_ignored);
    tcase_add_test(tc, if_match_wins_over_if_unmodified_since);
    tcase_add_test(tc, if_modified_since_exact_match_gives_304);
    tcase_add_test(tc, if_modified_since_before_mode_is_the_rfc_rule);
    tcase_add_test(tc, if_modified_since_is_ignored_when_off_or_for_post);
    tcase_add_test(tc, invalid_if_modified_since_is_ignored);
    tcase_add_test(tc, conditionals_apply_only_to_a_stored_2xx);
    return tc;
}

static TCase *range_case(void)
{
    TCase *tc = tcase_create("range");

    tcase_add_test(tc, single_range_is_206);
    tcase_add_test(tc, open_range_runs_to_the_end);
    tcase_add_test(tc, last_past_length_is_clipped);
    tcase_add_test(tc, suffix_range_is_the_tail);
    tcase_add_test(tc, suffix_range_past_length_is_whole_body);
    tcase_add_test(tc, range_starting_past_length_is_416);
    tcase_add_test(tc, zero_suffix_is_416);
    tcase_add_test(tc, suffix_of_an_empty_body_sends_it_whole);
    tcase_add_test(tc, multiple_ranges_say_multiple_with_the_first);
    tcase_add_test(tc, unsatisfiable_members_are_dropped);
    tcase_add_test(tc, invalid_range_is_ignored);
    tcase_add_test(tc, other_unit_is_ignored);
    tcase_add_test(tc, range_unit_is_case_insensitive);
    tcase_add_test(tc, range_applies_only_to_get_on_a_known_200);
    tcase_add_test(tc, if_range_with_matching_strong_etag_applies_range);
    tcase_add_test(tc, if_range_with_other_or_weak_etag_sends_whole);
    tcase_add_test(tc, if_range_with_exact_strong_date_applies_range);
    tcase_add_test(tc, if_range_date_close_to_date_is_weak_and_sends_whole);
    tcase_add_test(tc, invalid_if_range_sends_whole);
    return tc;
}

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("cache_policy");

    suite_add_tcase(s, cache_control_case());
    suite_add_tcase(s, dates_case());
    suite_add_tcase(s, store_case());
    suite_add_tcase(s, freshness_case());
    suite_add_tcase(s, age_case());
    suite_add_tcase(s, serve_case());
    suite_add_tcase(s, vary_case());
    suite_add_tcase(s, conditionals_case());
    suite_add_tcase(s, range_case());
    return s;
}
