/*
 * test_var.c: variables and templates (worker/var.h, worker/var_http.h): compiling,
 * escaping, and the core HTTP variables on a request built by hand from a parsed head.
 */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "worker/http.h"
#include "worker/listen.h"
#include "core/pool.h"
#include "worker/var.h"
#include "worker/var_http.h"

static const char head[] = "GET /p/a?x=1&Name=Bob&empty=&flag HTTP/1.1\r\n"
                           "Host: Example.COM:8080\r\n"
                           "User-Agent: curl/8\r\n"
                           "X-Custom-Thing: v1\r\n"
                           "Cookie: a=1; sid=abc\r\n"
                           "X-Custom-Thing: v2\r\n"
                           "cookie: theme=dark\r\n"
                           "Referer: http://r/\"q\r\n"
                           "\r\n";

static struct pt_pool *pool;
static struct pt_cycle cycle;
static struct pt_conf cf;
static char err[512];
static struct pt_http_conn conn;
static struct pt_listen ls;
static struct pt_http_srv_conf sc;
static struct pt_request *r;
static struct pt_header out_headers[2];
static char out[8192];

/* The value of $test_value, set by the escaping tests. */
static struct pt_str test_value;

static int get_test_value(struct pt_request *req, struct pt_str arg, struct pt_str *val)
{
    (void)req, (void)arg;
    *val = test_value;
    return PT_OK;
}

static struct pt_request *new_request(void)
{
    struct pt_request *req = pt_palloc(pool, sizeof(*req));
    void **srv = pt_palloc(pool, (size_t)(pt_modules_count() + 1) * sizeof(void *));

    ck_assert_ptr_nonnull(req);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(pt_http_parse_request(head, sizeof(head) - 1, NULL, &req->h), PT_OK);
    srv[pt_http_module.index] = &sc;
    req->pool = pool;
    req->c = &conn;
    req->srv_conf = srv;
    req->uri = req->h.path;
    req->args = req->h.query;
    return req;
}

static void setup(void)
{
    pool = pt_pool_create(4096);
    ck_assert_ptr_nonnull(pool);
    cycle = (struct pt_cycle){.pool = pool};
    err[0] = '\0';
    cf = (struct pt_conf){
        .cycle = &cycle, .pool = pool, .file = "test.conf", .err = err, .errlen = sizeof(err)};
    ck_assert_int_eq(pt_http_vars_register(), PT_OK);
    ck_assert_int_eq(pt_var_register("test_value", 0, get_test_value), PT_OK);

    snprintf(ls.text, sizeof(ls.text), "127.0.0.1:8080");
    conn = (struct pt_http_conn){.ls = &ls, .peer_port = 5555, .nrequests = 3};
    snprintf(conn.peer_text, sizeof(conn.peer_text), "10.0.0.1");
    sc = (struct pt_http_srv_conf){.server_name = "example.org"};
    r = new_request();
}

static void teardown(void)
{
    pt_pool_destroy(pool);
}

static struct pt_template *compile(const char *src, enum pt_escape esc)
{
    struct pt_template *t = pt_template_compile(&cf, src, esc);

    ck_assert_msg(t != NULL, "compiling \"%s\": %s", src, err);
    return t;
}

/* Renders <src> for r and returns the NUL-terminated result (in a static buffer). */
static const char *render(const char *src, enum pt_escape esc)
{
    size_t n = pt_template_render(r, compile(src, esc), out, sizeof(out) - 1);

    out[n] = '\0';
    return out;
}

static const char *var(const char *name)
{
    struct pt_str v;
    int rc = pt_var_value(r, name, &v);

    ck_assert_msg(rc == PT_OK, "$%s: rc %d", name, rc);
    snprintf(out, sizeof(out), "%.*s", (int)v.len, v.p);
    return out;
}

static int var_rc(const char *name)
{
    struct pt_str v;

    return pt_var_value(r, name, &v);
}

/* ---- compiling ----------------------------------------------------------------------- */

START_TEST(literal_text_is_static)
{
    struct pt_str v;

    ck_assert(pt_template_is_static(compile("hello world", PT_ESCAPE_NONE), &v));
    ck_assert_int_eq((int)v.len, 11);
    ck_assert(memcmp(v.p, "hello world", 11) == 0);
    ck_assert(!pt_template_is_static(compile("a $uri", PT_ESCAPE_NONE), NULL));
}
END_TEST

START_TEST(empty_template_is_static_and_empty)
{
    struct pt_str v;

    ck_assert(pt_template_is_static(compile("", PT_ESCAPE_NONE), &v));
    ck_assert_int_eq((int)v.len, 0);
}
END_TEST

START_TEST(variable_is_replaced_by_its_value)
{
    ck_assert_str_eq(render("$request_method $uri!", PT_ESCAPE_NONE), "GET /p/a!");
}
END_TEST

START_TEST(braces_end_a_name_before_name_characters)
{
    ck_assert_str_eq(render("${request_method}x", PT_ESCAPE_NONE), "GETx");
}
END_TEST

START_TEST(dollar_not_followed_by_a_name_is_literal)
{
    ck_assert_str_eq(render("cost: $ 5 $", PT_ESCAPE_NONE), "cost: $ 5 $");
    ck_assert_str_eq(render("$$uri", PT_ESCAPE_NONE), "$/p/a");
}
END_TEST

START_TEST(variable_names_are_case_insensitive)
{
    ck_assert_str_eq(render("$REQUEST_METHOD", PT_ESCAPE_NONE), "GET");
}
END_TEST

START_TEST(unknown_variable_is_reported_with_file_and_name)
{
    /* Not an error yet: a directive further down may define it.  Once the file is read,
     * it is. */
    ck_assert_ptr_nonnull(pt_template_compile(&cf, "x $nope y", PT_ESCAPE_NONE));
    ck_assert_int_eq(pt_conf_run_deferred(&cf), PT_ERROR);
    ck_assert_str_eq(err, "test.conf:0: unknown variable \"$nope\"");
}
END_TEST

START_TEST(variable_registered_after_the_template_is_found)
{
    struct pt_template *t = pt_template_compile(&cf, "<$later_var>", PT_ESCAPE_NONE);

    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(pt_template_is_static(t, NULL), 0);
    ck_assert_int_eq(pt_var_register("later_var", 0, get_test_value), PT_OK);
    ck_assert_int_eq(pt_conf_run_deferred(&cf), PT_OK);
    test_value = PT_STR("v");
    out[pt_template_render(r, t, out, sizeof(out) - 1)] = '\0';
    ck_assert_str_eq(out, "<v>");
}
END_TEST

START_TEST(unclosed_brace_is_an_error)
{
    ck_assert_ptr_null(pt_template_compile(&cf, "${uri", PT_ESCAPE_NONE));
    ck_assert_ptr_nonnull(strstr(err, "missing \"}\""));
}
END_TEST

START_TEST(empty_braces_are_an_error)
{
    ck_assert_ptr_null(pt_template_compile(&cf, "a${}b", PT_ESCAPE_NONE));
    ck_assert_ptr_nonnull(strstr(err, "invalid variable name"));
}
END_TEST

START_TEST(registering_again_with_the_same_getter_is_accepted)
{
    ck_assert_int_eq(pt_http_vars_register(), PT_OK);
    ck_assert_int_eq(pt_var_register("test_value", 0, get_test_value), PT_OK);
}
END_TEST

START_TEST(registering_a_taken_name_with_another_getter_fails)
{
    struct pt_str v;

    ck_assert_int_eq(pt_var_register("uri", 0, get_test_value), PT_ERROR);
    ck_assert_int_eq(pt_var_value(r, "uri", &v), PT_OK);
    ck_assert_int_eq((int)v.len, 4);
}
END_TEST

START_TEST(invalid_names_cannot_be_registered)
{
    ck_assert_int_eq(pt_var_register("Bad", 0, get_test_value), PT_ERROR);
    ck_assert_int_eq(pt_var_register("a-b", 0, get_test_value), PT_ERROR);
    ck_assert_int_eq(pt_var_register("", 0, get_test_value), PT_ERROR);
}
END_TEST

/* ---- escaping ------------------------------------------------------------------------ */

START_TEST(default_escape_hexes_quotes_backslashes_and_control_bytes)
{
    test_value = PT_STR("a\"b\\c\x01\x1f\x7f \xc3\xa9");
    ck_assert_str_eq(render("$test_value", PT_ESCAPE_DEFAULT),
                     "a\\x22b\\x5Cc\\x01\\x1F\\x7F \\xC3\\xA9");
}
END_TEST

START_TEST(json_escape_uses_json_string_escapes_and_keeps_utf8)
{
    test_value = PT_STR("a\"b\\c\n\r\t\b\f\x01\x7f \xc3\xa9");
    ck_assert_str_eq(render("$test_value", PT_ESCAPE_JSON),
                     "a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\x7f \xc3\xa9");
}
END_TEST

START_TEST(escape_none_copies_values_as_they_are)
{
    test_value = PT_STR("a\"b\\c\x01");
    ck_assert_str_eq(render("$test_value", PT_ESCAPE_NONE), "a\"b\\c\x01");
}
END_TEST

START_TEST(literal_text_is_never_escaped)
{
    test_value = PT_STR("say \"hi\"");
    ck_assert_str_eq(render("{\"v\":\"$test_value\"}", PT_ESCAPE_JSON),
                     "{\"v\":\"say \\\"hi\\\"\"}");
}
END_TEST

START_TEST(request_header_values_are_escaped_in_logs)
{
    ck_assert_str_eq(render("\"$http_referer\"", PT_ESCAPE_DEFAULT), "\"http://r/\\x22q\"");
}
END_TEST

/* ---- rendering ------------------------------------------------------------------------ */

START_TEST(missing_value_renders_empty_by_default)
{
    ck_assert_str_eq(render("[$http_x_nope]", PT_ESCAPE_DEFAULT), "[]");
}
END_TEST

START_TEST(missing_value_renders_as_dash_in_a_log_template)
{
    struct pt_template *t = compile("[$http_x_nope] [$remote_user]", PT_ESCAPE_DEFAULT);
    size_t n;

    pt_template_dash_missing(t);
    n = pt_template_render(r, t, out, sizeof(out));
    ck_assert_int_eq((int)n, 7);
    ck_assert(memcmp(out, "[-] [-]", 7) == 0);
}
END_TEST

START_TEST(render_truncates_at_the_buffer_size)
{
    char small[6];

    ck_assert_int_eq((int)pt_template_render(r, compile("$request_method $uri", PT_ESCAPE_NONE),
                                             small, sizeof(small)),
                     6);
    ck_assert(memcmp(small, "GET /p", 6) == 0);
}
END_TEST

START_TEST(render_does_not_cut_an_escape_sequence)
{
    char small[6];

    test_value = PT_STR("ab\"cd");
    /* "ab" fits, "\x22" would need 4 more bytes of the 4 left: it fits exactly. */
    ck_assert_int_eq(
        (int)pt_template_render(r, compile("$test_value", PT_ESCAPE_DEFAULT), small, sizeof(small)),
        6);
    ck_assert(memcmp(small, "ab\\x22", 6) == 0);
    ck_assert_int_eq(
        (int)pt_template_render(r, compile("$test_value", PT_ESCAPE_DEFAULT), small, 5), 2);
}
END_TEST

START_TEST(eval_gives_the_same_text_as_render)
{
    struct pt_template *t = compile("$host|$request|\"$http_referer\"", PT_ESCAPE_DEFAULT);
    struct pt_str v;
    size_t n = pt_template_render(r, t, out, sizeof(out));

    ck_assert_int_eq(pt_template_eval(r, t, &v), PT_OK);
    ck_assert_int_eq((int)v.len, (int)n);
    ck_assert(memcmp(v.p, out, n) == 0);
    ck_assert_int_eq(v.p[v.len], '\0');
}
END_TEST

/* ---- the HTTP variables -------------------------------------------------------------- */

START_TEST(arg_finds_the_first_match_case_insensitively)
{
    ck_assert_str_eq(var("arg_x"), "1");
    ck_assert_str_eq(var("arg_name"), "Bob");
    ck_assert_str_eq(var("arg_empty"), "");
    ck_assert_str_eq(var("arg_flag"), "");
    ck_assert_int_eq(var_rc("arg_nope"), PT_DECLINED);
    ck_assert_int_eq(var_rc("arg_fla"), PT_DECLINED);
}
END_TEST

START_TEST(args_and_query_string_are_the_raw_query)
{
    ck_assert_str_eq(var("args"), "x=1&Name=Bob&empty=&flag");
    ck_assert_str_eq(var("query_string"), "x=1&Name=Bob&empty=&flag");
    ck_assert_str_eq(var("is_args"), "?");
}
END_TEST

START_TEST(http_matches_header_names_with_underscores_for_dashes)
{
    ck_assert_str_eq(var("http_user_agent"), "curl/8");
    ck_assert_str_eq(var("http_USER_AGENT"), "curl/8");
    ck_assert_int_eq(var_rc("http_user_agen"), PT_DECLINED);
}
END_TEST

START_TEST(http_joins_repeated_headers)
{
    ck_assert_str_eq(var("http_x_custom_thing"), "v1, v2");
    ck_assert_str_eq(var("http_cookie"), "a=1; sid=abc; theme=dark");
}
END_TEST

START_TEST(cookie_is_found_in_any_cookie_header)
{
    ck_assert_str_eq(var("cookie_sid"), "abc");
    ck_assert_str_eq(var("cookie_a"), "1");
    ck_assert_str_eq(var("cookie_theme"), "dark");
    ck_assert_int_eq(var_rc("cookie_si"), PT_DECLINED);
}
END_TEST

START_TEST(host_is_lower_cased_without_port)
{
    ck_assert_str_eq(var("host"), "example.com");
}
END_TEST

START_TEST(host_falls_back_to_server_name)
{
    r->h.host = PT_NULL_STR;
    ck_assert_str_eq(var("host"), "example.org");
    ck_assert_str_eq(var("server_name"), "example.org");
}
END_TEST

START_TEST(request_line_variables)
{
    ck_assert_str_eq(var("request"), "GET /p/a?x=1&Name=Bob&empty=&flag HTTP/1.1");
    ck_assert_str_eq(var("request_uri"), "/p/a?x=1&Name=Bob&empty=&flag");
    ck_assert_str_eq(var("uri"), "/p/a");
    ck_assert_str_eq(var("server_protocol"), "HTTP/1.1");
    ck_assert_str_eq(var("scheme"), "http");
}
END_TEST

START_TEST(connection_variables)
{
    ck_assert_str_eq(var("remote_addr"), "10.0.0.1");
    ck_assert_str_eq(var("remote_port"), "5555");
    ck_assert_str_eq(var("server_addr"), "127.0.0.1");
    ck_assert_str_eq(var("server_port"), "8080");
    ck_assert_str_eq(var("connection_requests"), "3");
}
END_TEST

START_TEST(server_addr_strips_ipv6_brackets)
{
    snprintf(ls.text, sizeof(ls.text), "[::1]:8443");
    ck_assert_str_eq(var("server_addr"), "::1");
    ck_assert_str_eq(var("server_port"), "8443");
}
END_TEST

START_TEST(status_is_three_digits)
{
    ck_assert_str_eq(var("status"), "000");
    r->status = 404;
    ck_assert_str_eq(var("status"), "404");
}
END_TEST

START_TEST(byte_counts)
{
    r->body_bytes_sent = 1234;
    r->bytes_sent = 1500;
    ck_assert_str_eq(var("body_bytes_sent"), "1234");
    ck_assert_str_eq(var("bytes_sent"), "1500");
}
END_TEST

START_TEST(upstream_variables_have_no_value_when_empty)
{
    struct pt_upstream_try one = {"127.0.0.1:3000", 200, 12, 1, 5, 80, 120};

    ck_assert_int_eq(var_rc("upstream_addr"), PT_DECLINED);
    r->up = (struct pt_upstream_log){&one, 1, 1};
    ck_assert_str_eq(var("upstream_addr"), "127.0.0.1:3000");
    ck_assert_str_eq(var("upstream_status"), "200");
}
END_TEST

START_TEST(upstream_variables_list_every_try_as_nginx)
{
    struct pt_upstream_try tries[2] = {{"10.0.0.1:80", 502, 3, -1, -1, 0, 0},
                                       {"10.0.0.2:80", 200, 1234, 2, 1001, 77, 4096}};

    r->up = (struct pt_upstream_log){tries, 2, 2};
    ck_assert_str_eq(var("upstream_addr"), "10.0.0.1:80, 10.0.0.2:80");
    ck_assert_str_eq(var("upstream_status"), "502, 200");
    ck_assert_str_eq(var("upstream_response_time"), "0.003, 1.234");
    ck_assert_str_eq(var("upstream_connect_time"), "-, 0.002");
    ck_assert_str_eq(var("upstream_header_time"), "-, 1.001");
    ck_assert_str_eq(var("upstream_bytes_sent"), "0, 77");
    ck_assert_str_eq(var("upstream_bytes_received"), "0, 4096");
    tries[0].status = tries[1].status = 0;
    ck_assert_int_eq(var_rc("upstream_status"), PT_DECLINED);
}
END_TEST

START_TEST(sent_http_reads_response_headers)
{
    out_headers[0] = (struct pt_header){PT_STR("Content-Type"), PT_STR("text/plain")};
    r->out = (struct pt_headers){out_headers, 1, 2};
    ck_assert_str_eq(var("sent_http_content_type"), "text/plain");
    ck_assert_int_eq(var_rc("sent_http_location"), PT_DECLINED);
}
END_TEST

START_TEST(request_time_has_millisecond_resolution)
{
    const char *v;

    r->start_ms = pt_now_ms(); /* as pt_request_create stamps it */
    v = var("request_time");

    ck_assert_int_eq((int)strlen(v), 5);
    ck_assert(isdigit((unsigned char)v[0]) && v[1] == '.');
}
END_TEST

START_TEST(time_local_has_nginx_format)
{
    const char *v = var("time_local");
    int day, year, h, m, s, off;
    char mon[4], sign;

    ck_assert_int_eq((int)strlen(v), 26);
    ck_assert_int_eq(
        sscanf(v, "%2d/%3s/%4d:%2d:%2d:%2d %c%4d", &day, mon, &year, &h, &m, &s, &sign, &off), 8);
    ck_assert(sign == '+' || sign == '-');
}
END_TEST

START_TEST(time_iso8601_has_an_offset)
{
    const char *v = var("time_iso8601");

    ck_assert_int_eq((int)strlen(v), 25);
    ck_assert_int_eq(v[10], 'T');
    ck_assert_int_eq(v[22], ':');
}
END_TEST

static int is_hex32(const char *s)
{
    for (int i = 0; i < 32; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return 0;
    return s[32] == '\0';
}

START_TEST(request_id_is_32_hex_and_differs_between_requests)
{
    struct pt_request *other = new_request();
    char first[33];

    snprintf(first, sizeof(first), "%s", var("request_id"));
    ck_assert(is_hex32(first));
    ck_assert_str_eq(var("request_id"), first); /* stable within a request */
    ck_assert(is_hex32(pt_request_id(other)));
    ck_assert_str_ne(pt_request_id(other), first);
}
END_TEST

/* Random hex of any length is all hex digits, every digit in use, and no two draws alike. */
START_TEST(random_hex_fills_every_length_with_all_digits)
{
    int seen[16] = {0}, kinds = 0;
    char a[40], b[40];

    for (size_t n = 1; n < sizeof(a); n++) {
        memset(a, '#', sizeof(a));
        pt_random_hex(a, n);
        for (size_t i = 0; i < n; i++) {
            ck_assert_msg(isxdigit((unsigned char)a[i]) && !isupper((unsigned char)a[i]),
                          "byte %zu of %zu: %c", i, n, a[i]);
            seen[a[i] <= '9' ? a[i] - '0' : a[i] - 'a' + 10] = 1;
        }
        ck_assert_int_eq(a[n], '#'); /* nothing past n */
    }
    for (int i = 0; i < 16; i++)
        kinds += seen[i];
    ck_assert_int_eq(kinds, 16);
    pt_random_hex(a, 32);
    pt_random_hex(b, 32);
    ck_assert_int_ne(memcmp(a, b, 32), 0);
}
END_TEST

START_TEST(unknown_variable_lookup_is_an_error)
{
    ck_assert_int_eq(var_rc("nope"), PT_ERROR);
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("var");
    TCase *c = tcase_create("compile");
    TCase *e = tcase_create("escape");
    TCase *h = tcase_create("http");

    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, literal_text_is_static);
    tcase_add_test(c, empty_template_is_static_and_empty);
    tcase_add_test(c, variable_is_replaced_by_its_value);
    tcase_add_test(c, braces_end_a_name_before_name_characters);
    tcase_add_test(c, dollar_not_followed_by_a_name_is_literal);
    tcase_add_test(c, variable_names_are_case_insensitive);
    tcase_add_test(c, unknown_variable_is_reported_with_file_and_name);
    tcase_add_test(c, variable_registered_after_the_template_is_found);
    tcase_add_test(c, unclosed_brace_is_an_error);
    tcase_add_test(c, empty_braces_are_an_error);
    tcase_add_test(c, registering_again_with_the_same_getter_is_accepted);
    tcase_add_test(c, registering_a_taken_name_with_another_getter_fails);
    tcase_add_test(c, invalid_names_cannot_be_registered);
    suite_add_tcase(s, c);

    tcase_add_checked_fixture(e, setup, teardown);
    tcase_add_test(e, default_escape_hexes_quotes_backslashes_and_control_bytes);
    tcase_add_test(e, json_escape_uses_json_string_escapes_and_keeps_utf8);
    tcase_add_test(e, escape_none_copies_values_as_they_are);
    tcase_add_test(e, literal_text_is_never_escaped);
    tcase_add_test(e, request_header_values_are_escaped_in_logs);
    tcase_add_test(e, missing_value_renders_empty_by_default);
    tcase_add_test(e, missing_value_renders_as_dash_in_a_log_template);
    tcase_add_test(e, render_truncates_at_the_buffer_size);
    tcase_add_test(e, render_does_not_cut_an_escape_sequence);
    tcase_add_test(e, eval_gives_the_same_text_as_render);
    suite_add_tcase(s, e);

    tcase_add_checked_fixture(h, setup, teardown);
    tcase_add_test(h, arg_finds_the_first_match_case_insensitively);
    tcase_add_test(h, args_and_query_string_are_the_raw_query);
    tcase_add_test(h, http_matches_header_names_with_underscores_for_dashes);
    tcase_add_test(h, http_joins_repeated_headers);
    tcase_add_test(h, cookie_is_found_in_any_cookie_header);
    tcase_add_test(h, host_is_lower_cased_without_port);
    tcase_add_test(h, host_falls_back_to_server_name);
    tcase_add_test(h, request_line_variables);
    tcase_add_test(h, connection_variables);
    tcase_add_test(h, server_addr_strips_ipv6_brackets);
    tcase_add_test(h, status_is_three_digits);
    tcase_add_test(h, byte_counts);
    tcase_add_test(h, upstream_variables_have_no_value_when_empty);
    tcase_add_test(h, upstream_variables_list_every_try_as_nginx);
    tcase_add_test(h, sent_http_reads_response_headers);
    tcase_add_test(h, request_time_has_millisecond_resolution);
    tcase_add_test(h, time_local_has_nginx_format);
    tcase_add_test(h, time_iso8601_has_an_offset);
    tcase_add_test(h, request_id_is_32_hex_and_differs_between_requests);
    tcase_add_test(h, random_hex_fills_every_length_with_all_digits);
    tcase_add_test(h, unknown_variable_lookup_is_an_error);
    suite_add_tcase(s, h);
    return s;
}
