/*
 * test_http_parse.c: the request head parser (worker/http_parse.c): request line, line
 * endings, field syntax, limits, incremental feeding.  Host, body framing and connection
 * fields are in test_http_framing.c, response heads in test_http_response.c, chunked
 * bodies in test_http_chunked.c.  One behaviour per test.
 */
#include "check_main.h"
#include "test_http_util.h"

/* --- request line ---------------------------------------------------------------------- */

START_TEST(simple_get_fills_every_field)
{
    const char *s = "GET /index.html?a=1 HTTP/1.1\r\nHost: example.com\r\nAccept:  */* \t\r\n\r\n";
    ck_assert_int_eq(parse(s), PT_OK);
    ck_assert_slice(req.method, "GET");
    ck_assert_int_eq(req.method_id, PT_HTTP_GET);
    ck_assert_slice(req.target, "/index.html?a=1");
    ck_assert_slice(req.path, "/index.html");
    ck_assert_slice(req.query, "a=1");
    ck_assert(req.has_query);
    ck_assert_int_eq(req.version, 11);
    ck_assert_uint_eq(req.nheaders, 2);
    ck_assert_slice(req.headers[1].name, "Accept");
    ck_assert_slice(req.headers[1].value, "*/*");
    ck_assert_slice(req.host, "example.com");
    ck_assert_int_eq(req.content_length, -1);
    ck_assert(!req.chunked);
    ck_assert(req.keep_alive);
    ck_assert_uint_eq(req.head_len, strlen(s));
}
END_TEST

START_TEST(slices_point_into_the_buffer)
{
    const char *s = REQ("GET /p HTTP/1.1", "");
    ck_assert_int_eq(parse(s), PT_OK);
    ck_assert_ptr_eq(req.method.p, s);
    ck_assert_ptr_eq(req.path.p, s + 4);
    ck_assert_ptr_eq(req.headers[0].value.p, s + strlen("GET /p HTTP/1.1\r\nHost: "));
}
END_TEST

START_TEST(target_without_query_has_no_query)
{
    ck_assert_int_eq(parse(REQ("GET /a/b HTTP/1.1", "")), PT_OK);
    ck_assert_slice(req.path, "/a/b");
    ck_assert(!req.has_query);
    ck_assert_uint_eq(req.query.len, 0);
}
END_TEST

START_TEST(empty_query_after_question_mark_is_flagged)
{
    ck_assert_int_eq(parse(REQ("GET /a? HTTP/1.1", "")), PT_OK);
    ck_assert_slice(req.path, "/a");
    ck_assert(req.has_query);
    ck_assert_uint_eq(req.query.len, 0);
}
END_TEST

START_TEST(known_methods_get_their_id)
{
    static const struct {
        const char *line;
        int id;
    } cases[] = {
        {"GET / HTTP/1.1", PT_HTTP_GET},       {"HEAD / HTTP/1.1", PT_HTTP_HEAD},
        {"POST / HTTP/1.1", PT_HTTP_POST},     {"PUT / HTTP/1.1", PT_HTTP_PUT},
        {"DELETE / HTTP/1.1", PT_HTTP_DELETE}, {"OPTIONS / HTTP/1.1", PT_HTTP_OPTIONS},
        {"PATCH / HTTP/1.1", PT_HTTP_PATCH},   {"TRACE / HTTP/1.1", PT_HTTP_TRACE},
        {"PURGE / HTTP/1.1", PT_HTTP_OTHER},
    };
    char buf[128];

    for (size_t i = 0; i < pt_nelems(cases); i++) {
        snprintf(buf, sizeof(buf), "%s\r\nHost: h\r\n\r\n", cases[i].line);
        ck_assert_int_eq(parse(buf), PT_OK);
        ck_assert_int_eq(req.method_id, cases[i].id);
    }
}
END_TEST

START_TEST(methods_are_case_sensitive)
{
    ck_assert_int_eq(parse(REQ("get / HTTP/1.1", "")), PT_OK);
    ck_assert_int_eq(req.method_id, PT_HTTP_OTHER);
}
END_TEST

START_TEST(method_with_non_token_char_is_400)
{
    ck_assert_int_eq(parse(REQ("GE(T / HTTP/1.1", "")), 400);
}
END_TEST

START_TEST(binary_junk_is_400_before_any_line_end)
{
    /* a TLS ClientHello on a plain port: refused at once, not after 8k or a timeout */
    ck_assert_int_eq(parse_lim("\x16\x03\x01\x02\x00", 5, NULL), 400);
}
END_TEST

START_TEST(empty_method_is_400)
{
    ck_assert_int_eq(parse(REQ(" / HTTP/1.1", "")), 400);
}
END_TEST

START_TEST(two_spaces_after_method_is_400)
{
    ck_assert_int_eq(parse(REQ("GET  / HTTP/1.1", "")), 400);
}
END_TEST

START_TEST(two_spaces_before_version_is_400)
{
    ck_assert_int_eq(parse(REQ("GET /  HTTP/1.1", "")), 400);
}
END_TEST

START_TEST(space_after_version_is_400)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1 ", "")), 400);
}
END_TEST

START_TEST(space_inside_target_is_400)
{
    ck_assert_int_eq(parse(REQ("GET /a b HTTP/1.1", "")), 400);
}
END_TEST

START_TEST(request_line_without_version_is_400)
{
    /* HTTP/0.9 style */
    ck_assert_int_eq(parse("GET /\r\nHost: h\r\n\r\n"), 400);
}
END_TEST

START_TEST(http_1_0_is_version_10_and_not_persistent)
{
    ck_assert_int_eq(parse("GET / HTTP/1.0\r\n\r\n"), PT_OK);
    ck_assert_int_eq(req.version, 10);
    ck_assert(!req.keep_alive);
}
END_TEST

START_TEST(well_formed_other_major_versions_are_505)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/2.0", "")), 505);
    ck_assert_int_eq(parse(REQ("GET / HTTP/3.0", "")), 505);
    ck_assert_int_eq(parse(REQ("GET / HTTP/0.9", "")), 505);
    ck_assert_str_eq(req.err.reason, "client sent invalid version");
}
END_TEST

START_TEST(higher_http_1_minor_versions_are_handled_as_1_1)
{
    /* RFC 9112 2.3; the version as sent stays visible ($server_protocol). */
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.2", "")), PT_OK);
    ck_assert_int_eq(req.version, 11);
    ck_assert_slice(req.protocol, "HTTP/1.2");
    ck_assert(req.keep_alive);
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.9", "")), PT_OK);
    ck_assert_int_eq(req.version, 11);
    /* Like 1.1, such a request needs a Host. */
    ck_assert_int_eq(parse("GET / HTTP/1.2\r\n\r\n"), 400);
}
END_TEST

START_TEST(malformed_versions_are_400)
{
    ck_assert_int_eq(parse(REQ("GET / http/1.1", "")), 400);
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.10", "")), 400);
    ck_assert_int_eq(parse(REQ("GET / HTTP/1", "")), 400);
    ck_assert_int_eq(parse(REQ("GET / HTTP/x.1", "")), 400);
}
END_TEST

START_TEST(ctl_in_target_is_400)
{
    ck_assert_int_eq(parse(REQ("GET /a\tb HTTP/1.1", "")), 400);
    ck_assert_int_eq(parse(REQ("GET /a\x01 HTTP/1.1", "")), 400);
    ck_assert_int_eq(parse(REQ("GET /a\x7f HTTP/1.1", "")), 400);
}
END_TEST

START_TEST(nul_in_target_is_400)
{
    const char s[] = "GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n";
    ck_assert_int_eq(parse_lim(s, sizeof(s) - 1, NULL), 400);
}
END_TEST

START_TEST(raw_utf8_in_path_is_accepted)
{
    /* the desync corpus case "International in URI", rated compliant */
    ck_assert_int_eq(parse(REQ("GET /caf\xc3\xa9/\xd1\x8f HTTP/1.1", "")), PT_OK);
    ck_assert_slice(req.path, "/caf\xc3\xa9/\xd1\x8f");
}
END_TEST

START_TEST(raw_8bit_bytes_in_query_are_accepted)
{
    ck_assert_int_eq(parse(REQ("GET /a?q=\x80\xff HTTP/1.1", "")), PT_OK);
    ck_assert_slice(req.query, "q=\x80\xff");
}
END_TEST

START_TEST(raw_8bit_byte_in_absolute_form_path_is_accepted)
{
    ck_assert_int_eq(parse(REQ("GET http://a/\xe9 HTTP/1.1", "")), PT_OK);
    ck_assert_slice(req.path, "/\xe9");
    ck_assert_slice(req.host, "a");
}
END_TEST

START_TEST(raw_8bit_byte_in_absolute_form_authority_is_400)
{
    ck_assert_int_eq(parse(REQ("GET http://caf\xc3\xa9/ HTTP/1.1", "")), 400);
}
END_TEST

START_TEST(raw_8bit_byte_in_method_is_400)
{
    ck_assert_int_eq(parse(REQ("G\xc3\x89T / HTTP/1.1", "")), 400);
}
END_TEST

START_TEST(printable_oddities_in_target_are_accepted)
{
    /* the URI grammar is normalize.c's business; the parser only refuses CTL/SP/DEL */
    ck_assert_int_eq(parse(REQ("GET /a?x=<\"{|}>^`#f HTTP/1.1", "")), PT_OK);
    ck_assert_slice(req.query, "x=<\"{|}>^`#f");
}
END_TEST

START_TEST(target_not_starting_with_slash_is_400)
{
    ck_assert_int_eq(parse(REQ("GET index.html HTTP/1.1", "")), 400);
}
END_TEST

START_TEST(absolute_form_authority_becomes_host)
{
    ck_assert_int_eq(parse("GET http://Example.com:8080/x?y HTTP/1.1\r\nHost: other\r\n\r\n"),
                     PT_OK);
    ck_assert_slice(req.host, "Example.com:8080");
    ck_assert_slice(req.path, "/x");
    ck_assert_slice(req.query, "y");
}
END_TEST

START_TEST(absolute_form_without_path_has_path_slash)
{
    ck_assert_int_eq(parse("GET https://example.com?q HTTP/1.1\r\nHost: example.com\r\n\r\n"),
                     PT_OK);
    ck_assert_slice(req.path, "/");
    ck_assert_slice(req.query, "q");
}
END_TEST

START_TEST(absolute_form_with_userinfo_is_400)
{
    ck_assert_int_eq(parse(REQ("GET http://user@example.com/ HTTP/1.1", "")), 400);
}
END_TEST

START_TEST(absolute_form_with_empty_host_is_400)
{
    ck_assert_int_eq(parse(REQ("GET http:///x HTTP/1.1", "")), 400);
}
END_TEST

START_TEST(absolute_form_with_other_scheme_is_400)
{
    ck_assert_int_eq(parse(REQ("GET ftp://example.com/ HTTP/1.1", "")), 400);
}
END_TEST

START_TEST(absolute_form_still_needs_a_valid_host_field)
{
    ck_assert_int_eq(parse("GET http://a/ HTTP/1.1\r\n\r\n"), 400);
    ck_assert_int_eq(parse("GET http://a/ HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
}
END_TEST

START_TEST(asterisk_form_with_options_is_accepted)
{
    ck_assert_int_eq(parse(REQ("OPTIONS * HTTP/1.1", "")), PT_OK);
    ck_assert_slice(req.path, "*");
}
END_TEST

START_TEST(asterisk_form_with_get_is_400)
{
    ck_assert_int_eq(parse(REQ("GET * HTTP/1.1", "")), 400);
}
END_TEST

START_TEST(connect_with_authority_form_is_accepted)
{
    ck_assert_int_eq(parse(REQ("CONNECT example.com:443 HTTP/1.1", "")), PT_OK);
    ck_assert_int_eq(req.method_id, PT_HTTP_CONNECT);
    ck_assert_slice(req.host, "example.com:443");
    ck_assert_uint_eq(req.path.len, 0);
}
END_TEST

START_TEST(connect_without_port_is_400)
{
    ck_assert_int_eq(parse(REQ("CONNECT example.com HTTP/1.1", "")), 400);
}
END_TEST

START_TEST(connect_with_origin_form_is_400)
{
    ck_assert_int_eq(parse(REQ("CONNECT / HTTP/1.1", "")), 400);
}
END_TEST

START_TEST(authority_form_with_get_is_400)
{
    ck_assert_int_eq(parse(REQ("GET example.com:80 HTTP/1.1", "")), 400);
}
END_TEST

/* --- line endings ---------------------------------------------------------------------- */

START_TEST(leading_empty_lines_are_skipped)
{
    const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    ck_assert_int_eq(parse(s), PT_OK);
    ck_assert_slice(req.method, "GET");
    ck_assert_uint_eq(req.head_len, strlen(s));
}
END_TEST

START_TEST(too_many_leading_empty_lines_are_400)
{
    ck_assert_int_eq(parse("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
}
END_TEST

START_TEST(leading_bare_lf_is_400)
{
    ck_assert_int_eq(parse("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
}
END_TEST

START_TEST(bare_lf_after_request_line_is_400)
{
    ck_assert_int_eq(parse("GET / HTTP/1.1\nHost: h\r\n\r\n"), 400);
}
END_TEST

START_TEST(bare_lf_after_field_is_400_before_head_ends)
{
    /* incomplete head: the bare LF is refused as soon as it is seen */
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: h\nX-A: b"), 400);
}
END_TEST

START_TEST(bare_lf_as_final_line_is_400)
{
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: h\r\n\n"), 400);
}
END_TEST

START_TEST(bare_cr_in_field_value_is_400)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X-A: a\rb\r\n")), 400);
}
END_TEST

START_TEST(bare_cr_in_request_line_is_400)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1\r", "")), 400);
}
END_TEST

/* --- field lines ----------------------------------------------------------------------- */

START_TEST(obs_fold_is_400)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X-A: a\r\n b\r\n")), 400);
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X-A: a\r\n\tb\r\n")), 400);
}
END_TEST

START_TEST(whitespace_before_first_field_is_400)
{
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), 400);
}
END_TEST

START_TEST(whitespace_before_colon_is_400)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X-A : b\r\n")), 400);
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X-A\t: b\r\n")), 400);
}
END_TEST

START_TEST(empty_field_name_is_400)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", ": b\r\n")), 400);
}
END_TEST

START_TEST(ctl_in_field_name_is_400)
{
    const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX\0A: b\r\n\r\n";
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X\x01"
                                                 "A: b\r\n")),
                     400);
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X\x7f"
                                                 "A: b\r\n")),
                     400);
    ck_assert_int_eq(parse_lim(nul, sizeof(nul) - 1, NULL), 400);
    ck_assert_str_eq(req.err.reason, "client sent invalid header line");
}
END_TEST

START_TEST(non_ascii_byte_in_field_name_is_400)
{
    /* U+017F and U+0131 fold to 'S' and 'I' in some backends' case mappings. */
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Tran\xc5\xbf"
                                                  "fer-Encoding: chunked\r\n")),
                     400);
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Transfer-Encod\xc4\xb1ng: chunked\r\n")), 400);
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X\xa0"
                                                 "A: b\r\n")),
                     400);
}
END_TEST

START_TEST(invalid_field_names_are_ignored_by_default)
{
    /* nginx's ignore_invalid_headers on, underscores_in_headers off: anything but letters,
     * digits and '-' makes a name invalid, and an invalid field is left out. */
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X_Forwarded_For: 1.2.3.4\r\nX@A: b\r\n"
                                                 "X.A: c\r\nX-Ok: d\r\nX{}: e\r\n")),
                     PT_OK);
    ck_assert_uint_eq(req.nheaders, 2);
    ck_assert_slice(req.headers[0].name, "Host");
    ck_assert_slice(req.headers[1].name, "X-Ok");
    ck_assert_uint_eq(req.nignored, 4);
    ck_assert_slice(pt_http_ignored_header(&req, 0)->name, "X_Forwarded_For");
    ck_assert_slice(pt_http_ignored_header(&req, 0)->value, "1.2.3.4");
    ck_assert_slice(pt_http_field_line(pt_http_ignored_header(&req, 0)),
                    "X_Forwarded_For: 1.2.3.4");
    ck_assert_slice(pt_http_ignored_header(&req, 1)->name, "X@A");
    ck_assert_slice(pt_http_ignored_header(&req, 2)->name, "X.A");
    ck_assert_slice(pt_http_ignored_header(&req, 3)->name, "X{}");
    ck_assert_ptr_null(pt_http_find_header(req.headers, req.nheaders, "X_Forwarded_For"));
}
END_TEST

START_TEST(ignored_field_with_ctl_in_value_is_still_400)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X_A: a\x01"
                                                 "b\r\n")),
                     400);
}
END_TEST

START_TEST(ignored_fields_fill_the_header_array_from_its_end)
{
    struct pt_http_limits l = {.max_head = 1 << 20};
    char *s = malloc(64 * PT_HTTP_MAX_HEADERS), *p = s;

    p += sprintf(p, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 1; i < PT_HTTP_MAX_HEADERS; i++)
        p += sprintf(p, i % 2 ? "X_%d: %d\r\n" : "X-%d: %d\r\n", i, i);
    p += sprintf(p, "\r\n");
    ck_assert_int_eq(parse_lim(s, (size_t)(p - s), &l), PT_OK);
    ck_assert_uint_eq(req.nheaders + req.nignored, PT_HTTP_MAX_HEADERS);
    ck_assert_slice(req.headers[req.nheaders - 1].name, "X-98");
    ck_assert_slice(pt_http_ignored_header(&req, req.nignored - 1)->name, "X_99");
    free(s);
}
END_TEST

START_TEST(underscores_are_kept_with_underscores_in_headers)
{
    struct pt_http_limits l = {.flags = PT_HTTP_UNDERSCORES};
    const char *s = REQ("GET / HTTP/1.1", "My_Header: 1\r\nX.A: 2\r\n");

    ck_assert_int_eq(parse_lim(s, strlen(s), &l), PT_OK);
    ck_assert_uint_eq(req.nheaders, 2);
    ck_assert_slice(req.headers[1].name, "My_Header");
    ck_assert_uint_eq(req.nignored, 1);
}
END_TEST

START_TEST(invalid_token_names_are_kept_without_ignore_invalid_headers)
{
    /* nginx's ignore_invalid_headers off passes invalid names on; portier does so for the
     * names that are still tokens (RFC 9110 5.1) and refuses the others. */
    struct pt_http_limits l = {.flags = PT_HTTP_KEEP_INVALID};
    const char *s = REQ("GET / HTTP/1.1", "My_Header: 1\r\nX.A: 2\r\n");
    const char *bad = REQ("GET / HTTP/1.1", "X@A: b\r\n");

    ck_assert_int_eq(parse_lim(s, strlen(s), &l), PT_OK);
    ck_assert_uint_eq(req.nheaders, 3);
    ck_assert_uint_eq(req.nignored, 0);
    ck_assert_int_eq(parse_lim(bad, strlen(bad), &l), 400);
    ck_assert_str_eq(req.err.reason, "client sent invalid character in header name");
}
END_TEST

START_TEST(field_line_without_colon_is_400)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X-A b\r\n")), 400);
}
END_TEST

START_TEST(ctl_in_field_value_is_400)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X-A: a\x01"
                                                 "b\r\n")),
                     400);
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X-A: a\x7f\r\n")), 400);
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X-A: \x1f\r\n")), 400);
}
END_TEST

START_TEST(nul_in_field_value_is_400)
{
    const char s[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n";
    ck_assert_int_eq(parse_lim(s, sizeof(s) - 1, NULL), 400);
}
END_TEST

START_TEST(htab_and_obs_text_in_field_value_are_kept)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X-A:\ta\tb\xe9\xff\t\r\n")), PT_OK);
    ck_assert_slice(req.headers[1].value, "a\tb\xe9\xff");
}
END_TEST

START_TEST(empty_field_value_is_accepted)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X-A:   \r\n")), PT_OK);
    ck_assert_slice(req.headers[1].name, "X-A");
    ck_assert_uint_eq(req.headers[1].value.len, 0);
}
END_TEST

START_TEST(framing_field_lookalikes_are_400)
{
    /* Refused although ignored by default: kept with underscores_in_headers, and a
     * client that tries one is up to something. */
    struct pt_http_limits l = {.flags = PT_HTTP_UNDERSCORES};
    const char *s = REQ("POST / HTTP/1.1", "Content_Length: 1\r\n");

    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content_Length: 1\r\n")), 400);
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Transfer_Encoding: chunked\r\n")), 400);
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Transfer---Encoding: chunked\r\n")), 400);
    ck_assert_int_eq(parse_lim(s, strlen(s), &l), 400);
    ck_assert_str_eq(req.err.reason, "client sent header line spelling a framing header");
    ck_assert_slice(req.err.detail, "Content_Length: 1");
}
END_TEST

/* --- limits ---------------------------------------------------------------------------- */

static const struct pt_http_limits small = {
    .max_request_line = 16, .max_head = 64, .max_headers = 3};

START_TEST(request_line_at_limit_is_accepted)
{
    const char *s = "GET /0123456 HTTP/1.1\r\nHost: h\r\n\r\n"; /* line of 21 bytes */
    struct pt_http_limits l = small;
    l.max_request_line = 21;
    ck_assert_int_eq(parse_lim(s, strlen(s), &l), PT_OK);
}
END_TEST

START_TEST(request_line_over_limit_is_414)
{
    const char *s = "GET /01234567 HTTP/1.1\r\nHost: h\r\n\r\n";
    struct pt_http_limits l = small;
    l.max_request_line = 21;
    ck_assert_int_eq(parse_lim(s, strlen(s), &l), 414);
}
END_TEST

START_TEST(request_line_over_limit_is_414_before_its_end)
{
    const char *s = "GET /0123456789abcdef";
    ck_assert_int_eq(parse_lim(s, 16, &small), PT_AGAIN);
    ck_assert_int_eq(parse_lim(s, 17, &small), 414);
}
END_TEST

START_TEST(cr_at_request_line_limit_is_not_counted)
{
    const char *s = "GET /0123456 HTTP/1.1\r";
    struct pt_http_limits l = small;
    l.max_request_line = 21;
    ck_assert_int_eq(parse_lim(s, strlen(s), &l), PT_AGAIN);
}
END_TEST

START_TEST(head_over_limit_is_431)
{
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\nX-A: 0123456789012345678901234567890\r\n\r\n";
    ck_assert_int_eq(parse_lim(s, strlen(s), &small), 431);
}
END_TEST

START_TEST(head_over_limit_is_431_before_its_end)
{
    char s[80];
    memset(s, 'a', sizeof(s));
    memcpy(s, "GET / HTTP/1.1\r\nX-A: ", 21);
    ck_assert_int_eq(parse_lim(s, 64, &small), PT_AGAIN);
    ck_assert_int_eq(parse_lim(s, 65, &small), 431);
}
END_TEST

START_TEST(head_exactly_at_limit_is_accepted)
{
    char s[65];
    memset(s, 'a', sizeof(s));
    memcpy(s, "GET / HTTP/1.1\r\nHost: h\r\nX-A: ", 30);
    memcpy(s + 60, "\r\n\r\n", 4);
    ck_assert_int_eq(parse_lim(s, 64, &small), PT_OK);
    ck_assert_uint_eq(req.head_len, 64);
}
END_TEST

START_TEST(fields_over_limit_are_431)
{
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    ck_assert_int_eq(parse_lim(s, strlen(s), &small), 431);
}
END_TEST

START_TEST(fields_at_limit_are_accepted)
{
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    ck_assert_int_eq(parse_lim(s, strlen(s), &small), PT_OK);
    ck_assert_uint_eq(req.nheaders, 3);
}
END_TEST

START_TEST(max_headers_is_capped_at_array_size)
{
    static char s[4096];
    struct pt_http_limits l = {.max_headers = 1000};
    size_t n = (size_t)sprintf(s, "GET / HTTP/1.1\r\nHost: h\r\n");

    for (int i = 0; i < PT_HTTP_MAX_HEADERS; i++)
        n += (size_t)sprintf(s + n, "X%d: v\r\n", i);
    strcpy(s + n, "\r\n");
    ck_assert_int_eq(parse_lim(s, n + 2, &l), 431);
}
END_TEST

START_TEST(zero_limits_mean_defaults)
{
    const struct pt_http_limits zero = {0};
    const char *s = REQ("GET / HTTP/1.1", "");
    ck_assert_int_eq(parse_lim(s, strlen(s), &zero), PT_OK);
    ck_assert_uint_eq(pt_http_default_limits.max_request_line, 8192);
    ck_assert_uint_eq(pt_http_default_limits.max_head, 32768);
}
END_TEST

/* --- incremental parsing and pipelining ------------------------------------------------ */

static const char complex_req[] = "\r\nPOST http://example.com:81/up/load?x=1&y HTTP/1.1\r\n"
                                  "Host: example.com\r\n"
                                  "Content-Length: 5\r\n"
                                  "Connection: keep-alive, upgrade\r\n"
                                  "Upgrade: h2c\r\n"
                                  "Expect: 100-continue\r\n"
                                  "X-Obs: \t\xe9t\xe9 \r\n"
                                  "\r\n"
                                  "hello";

START_TEST(partial_head_is_again)
{
    size_t head = strlen(complex_req) - 5;
    for (size_t n = 0; n < head; n++)
        ck_assert_int_eq(parse_lim(complex_req, n, NULL), PT_AGAIN);
}
END_TEST

START_TEST(again_remembers_how_far_it_scanned)
{
    memset(&req, 0, sizeof(req));
    ck_assert_int_eq(pt_http_parse_request(complex_req, 40, NULL, &req), PT_AGAIN);
    ck_assert_uint_eq(req.scan_pos, 40);
}
END_TEST

START_TEST(bytewise_feeding_gives_the_same_request)
{
    size_t len = sizeof(complex_req) - 1;
    struct pt_http_request whole;
    char *copy;

    ck_assert_int_eq(parse_lim(complex_req, len, NULL), PT_OK);
    whole = req;
    ck_assert_int_eq(parse_bytewise(complex_req, len, NULL, &copy), PT_OK);
    ck_assert_uint_eq(req.head_len, whole.head_len);
    ck_assert_uint_eq(req.head_len, len - 5);
    ck_assert_uint_eq(req.nheaders, whole.nheaders);
    for (size_t i = 0; i < req.nheaders; i++) {
        ck_assert_uint_eq(req.headers[i].name.p - copy, whole.headers[i].name.p - complex_req);
        ck_assert_uint_eq(req.headers[i].value.len, whole.headers[i].value.len);
    }
    ck_assert_uint_eq(req.path.p - copy, whole.path.p - complex_req);
    ck_assert_slice(req.path, "/up/load");
    ck_assert_slice(req.query, "x=1&y");
    ck_assert_slice(req.host, "example.com:81");
    ck_assert_slice(req.headers[5].value, "\xe9t\xe9");
    ck_assert_int_eq(req.content_length, 5);
    ck_assert(req.keep_alive && req.upgrade && req.expect_continue);
    free(copy);
}
END_TEST

START_TEST(bytewise_feeding_gives_the_same_error)
{
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX : a\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: br, chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\nX: a\r\n\r\n",
        "G\x01T / HTTP/1.1\r\n\r\n",
    };
    char *copy;

    for (size_t i = 0; i < pt_nelems(bad); i++) {
        int whole = parse(bad[i]);
        ck_assert_int_ne(whole, PT_OK);
        ck_assert_int_eq(parse_bytewise(bad[i], strlen(bad[i]), NULL, &copy), whole);
        free(copy);
    }
}
END_TEST

START_TEST(bytewise_feeding_gives_414_at_the_same_byte)
{
    const char *s = "GET /0123456789abcdef HTTP/1.1\r\n\r\n";
    char *copy;
    ck_assert_int_eq(parse_bytewise(s, strlen(s), &small, &copy), 414);
    free(copy);
}
END_TEST

START_TEST(bytewise_feeding_gives_the_same_limit_error)
{
    /* past the limit, a bad method byte or a bare LF is never seen: both ways get 414 */
    static const char *const over[] = {
        "GETGETGETGETGETGETGET\x01 / HTTP/1.1\r\n\r\n",
        "GET /0123456789abcdef HTTP/1.1\n\r\n",
    };
    char *copy;

    for (size_t i = 0; i < pt_nelems(over); i++) {
        ck_assert_int_eq(parse_lim(over[i], strlen(over[i]), &small), 414);
        ck_assert_int_eq(parse_bytewise(over[i], strlen(over[i]), &small, &copy), 414);
        free(copy);
    }
}
END_TEST

START_TEST(pipelined_requests_parse_one_after_the_other)
{
    const char *s = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                    "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
                    "GET /c HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t off = 0, len = strlen(s);

    ck_assert_int_eq(parse_lim(s, len, NULL), PT_OK);
    ck_assert_slice(req.path, "/a");
    off = req.head_len + (size_t)req.content_length;
    ck_assert_int_eq(parse_lim(s + off, len - off, NULL), PT_OK);
    ck_assert_slice(req.path, "/b");
    off += req.head_len;
    ck_assert_int_eq(parse_lim(s + off, len - off, NULL), PT_OK);
    ck_assert_slice(req.path, "/c");
    ck_assert_uint_eq(off + req.head_len, len);
}
END_TEST

START_TEST(moved_buffer_gives_slices_into_the_new_one)
{
    const char *s = REQ("GET /moved HTTP/1.1", "X: y\r\n");
    char a[64], b[64];

    memcpy(a, s, 20);
    memset(&req, 0, sizeof(req));
    ck_assert_int_eq(pt_http_parse_request(a, 20, NULL, &req), PT_AGAIN);
    memset(a, 'Z', sizeof(a)); /* the old buffer is gone */
    memcpy(b, s, strlen(s));
    ck_assert_int_eq(pt_http_parse_request(b, strlen(s), NULL, &req), PT_OK);
    ck_assert_ptr_eq(req.path.p, b + 4);
    ck_assert_slice(req.path, "/moved");
    ck_assert_slice(req.headers[1].value, "y");
}
END_TEST

/* --- reasons of rejections, for the error log ----------------------------------------- */

START_TEST(every_rejection_says_why_in_nginx_words)
{
    static const struct {
        const char *head;
        int status;
        const char *reason, *detail;
        int in_fields;
    } cases[] = {
        {"G(T / HTTP/1.1\r\n", 400, "client sent invalid method", "", 0},
        {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, "client sent invalid version", "", 0},
        {"GET / HTTX/1.1\r\nHost: h\r\n\r\n", 400, "client sent malformed HTTP version", "", 0},
        {"GET /\r\nHost: h\r\n\r\n", 400, "client sent request line without HTTP version", "", 0},
        {"GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", 400,
         "client sent invalid character in request target", "", 0},
        {"GET http://a@b/ HTTP/1.1\r\nHost: h\r\n\r\n", 400,
         "client sent invalid host in request line", "", 0},
        {"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400,
         "client sent HTTP/1.1 request without \"Host\" header", "", 1},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "client sent duplicate host header",
         "Host: b", 1},
        {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "client sent invalid host header", "", 1},
        {"GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n", 400, "client sent invalid header line",
         "X-A : b", 1},
        {"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", 400,
         "client sent header line starting with whitespace", " b", 1},
        {"GET / HTTP/1.1\r\nHost: h\r\nX-A b\r\n\r\n", 400, "client sent header line without colon",
         "X-A b", 1},
        {"GET / HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n", 400, "client sent header line with empty name",
         ": b", 1},
        {"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01\r\n\r\n", 400, "client sent invalid header value",
         "X-A: a\x01", 1},
        {"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", 400, "client sent line ending in LF without CR",
         "Host: h", 1},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5x\r\n\r\n", 400,
         "client sent invalid \"Content-Length\" header", "", 1},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400,
         "client sent duplicate header line", "Content-Length: 5", 1},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
         400, "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time",
         "", 1},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
         "client sent HTTP/1.0 request with \"Transfer-Encoding\" header", "", 1},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400,
         "client sent \"Transfer-Encoding\" not ending in chunked",
         "Transfer-Encoding: chunked, gzip", 1},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: a b, chunked\r\n\r\n", 400,
         "client sent invalid \"Transfer-Encoding\" header", "Transfer-Encoding: a b, chunked", 1},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: br, chunked\r\n\r\n", 501,
         "client sent unknown \"Transfer-Encoding\"", "br, chunked", 1},
        {"TRACE / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n", 400,
         "client sent TRACE request with body", "", 1},
        {"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400,
         "client sent \"*\" target with a method other than OPTIONS", "", 0},
    };

    for (size_t i = 0; i < pt_nelems(cases); i++) {
        int rc = parse(cases[i].head);
        ck_assert_msg(rc == cases[i].status, "%s: %d", cases[i].head, rc);
        ck_assert_str_eq(req.err.reason, cases[i].reason);
        /* An empty detail may have a NULL pointer: compare lengths first. */
        ck_assert_msg(req.err.detail.len == strlen(cases[i].detail) &&
                          (req.err.detail.len == 0 || pt_str_eq(req.err.detail, cases[i].detail)),
                      "%s: detail \"%.*s\"", cases[i].head, (int)req.err.detail.len,
                      req.err.detail.p);
        ck_assert_msg(req.err.in_fields == cases[i].in_fields, "%s: in_fields", cases[i].head);
        ck_assert_uint_eq(req.err.request_line.len, strcspn(cases[i].head, "\r\n"));
    }
}
END_TEST

START_TEST(limit_rejections_say_why)
{
    const char *s = "GET /0123456789abcdef HTTP/1.1\r\n";
    ck_assert_int_eq(parse_lim(s, strlen(s), &small), 414);
    ck_assert_str_eq(req.err.reason, "client sent too long URI");
    ck_assert(!req.err.in_fields);
    ck_assert_slice(req.err.request_line, "GET /0123456789abcdef HTTP/1.1");
    s = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    ck_assert_int_eq(parse_lim(s, strlen(s), &small), 431);
    ck_assert_str_eq(req.err.reason, "client sent too many header lines");
    ck_assert(req.err.in_fields);
    s = "GET / HTTP/1.1\r\nHost: h\r\nA: 0123456789012345678901234567890123456789\r\n\r\n";
    ck_assert_int_eq(parse_lim(s, strlen(s), &small), 431);
    ck_assert_str_eq(req.err.reason, "client sent too large request");
}
END_TEST

START_TEST(request_seen_gives_the_partial_request_line)
{
    const char *s = "GET /slow HTTP/1.1\r\nHost: h\r\n";
    ck_assert_int_eq(parse(s), PT_AGAIN);
    pt_http_request_seen(s, strlen(s), &req);
    ck_assert_slice(req.err.request_line, "GET /slow HTTP/1.1");
    ck_assert(req.err.in_fields);
    ck_assert_int_eq(parse("GET /sl"), PT_AGAIN);
    pt_http_request_seen("GET /sl", 7, &req);
    ck_assert_slice(req.err.request_line, "GET /sl");
    ck_assert(!req.err.in_fields);
}
END_TEST

/* --- helpers --------------------------------------------------------------------------- */

START_TEST(find_header_returns_first_match_case_insensitively)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "X-A: 1\r\nx-a: 2\r\n")), PT_OK);
    const struct pt_http_header *h = pt_http_find_header(req.headers, req.nheaders, "X-a");
    ck_assert_ptr_eq(h, &req.headers[1]);
    ck_assert_ptr_null(pt_http_find_header(req.headers, req.nheaders, "X-B"));
}
END_TEST

START_TEST(has_token_matches_whole_list_elements)
{
    ck_assert(pt_http_has_token(PT_STR("a, B ,\tc"), "b"));
    ck_assert(pt_http_has_token(PT_STR(",,close,"), "CLOSE"));
    ck_assert(!pt_http_has_token(PT_STR("keep-alive"), "keep"));
    ck_assert(!pt_http_has_token(PT_STR("closed"), "close"));
    ck_assert(!pt_http_has_token(PT_STR(""), "close"));
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("http_parse");
    TCase *line = tcase_create("request_line");
    TCase *ends = tcase_create("line_endings");
    TCase *fields = tcase_create("fields");
    TCase *limits = tcase_create("limits");
    TCase *incr = tcase_create("incremental");
    TCase *help = tcase_create("helpers");
    TCase *why = tcase_create("reasons");

    tcase_add_test(line, simple_get_fills_every_field);
    tcase_add_test(line, slices_point_into_the_buffer);
    tcase_add_test(line, target_without_query_has_no_query);
    tcase_add_test(line, empty_query_after_question_mark_is_flagged);
    tcase_add_test(line, known_methods_get_their_id);
    tcase_add_test(line, methods_are_case_sensitive);
    tcase_add_test(line, method_with_non_token_char_is_400);
    tcase_add_test(line, binary_junk_is_400_before_any_line_end);
    tcase_add_test(line, empty_method_is_400);
    tcase_add_test(line, two_spaces_after_method_is_400);
    tcase_add_test(line, two_spaces_before_version_is_400);
    tcase_add_test(line, space_after_version_is_400);
    tcase_add_test(line, space_inside_target_is_400);
    tcase_add_test(line, request_line_without_version_is_400);
    tcase_add_test(line, http_1_0_is_version_10_and_not_persistent);
    tcase_add_test(line, well_formed_other_major_versions_are_505);
    tcase_add_test(line, higher_http_1_minor_versions_are_handled_as_1_1);
    tcase_add_test(line, malformed_versions_are_400);
    tcase_add_test(line, ctl_in_target_is_400);
    tcase_add_test(line, nul_in_target_is_400);
    tcase_add_test(line, raw_utf8_in_path_is_accepted);
    tcase_add_test(line, raw_8bit_bytes_in_query_are_accepted);
    tcase_add_test(line, raw_8bit_byte_in_absolute_form_path_is_accepted);
    tcase_add_test(line, raw_8bit_byte_in_absolute_form_authority_is_400);
    tcase_add_test(line, raw_8bit_byte_in_method_is_400);
    tcase_add_test(line, printable_oddities_in_target_are_accepted);
    tcase_add_test(line, target_not_starting_with_slash_is_400);
    tcase_add_test(line, absolute_form_authority_becomes_host);
    tcase_add_test(line, absolute_form_without_path_has_path_slash);
    tcase_add_test(line, absolute_form_with_userinfo_is_400);
    tcase_add_test(line, absolute_form_with_empty_host_is_400);
    tcase_add_test(line, absolute_form_with_other_scheme_is_400);
    tcase_add_test(line, absolute_form_still_needs_a_valid_host_field);
    tcase_add_test(line, asterisk_form_with_options_is_accepted);
    tcase_add_test(line, asterisk_form_with_get_is_400);
    tcase_add_test(line, connect_with_authority_form_is_accepted);
    tcase_add_test(line, connect_without_port_is_400);
    tcase_add_test(line, connect_with_origin_form_is_400);
    tcase_add_test(line, authority_form_with_get_is_400);
    suite_add_tcase(s, line);

    tcase_add_test(ends, leading_empty_lines_are_skipped);
    tcase_add_test(ends, too_many_leading_empty_lines_are_400);
    tcase_add_test(ends, leading_bare_lf_is_400);
    tcase_add_test(ends, bare_lf_after_request_line_is_400);
    tcase_add_test(ends, bare_lf_after_field_is_400_before_head_ends);
    tcase_add_test(ends, bare_lf_as_final_line_is_400);
    tcase_add_test(ends, bare_cr_in_field_value_is_400);
    tcase_add_test(ends, bare_cr_in_request_line_is_400);
    suite_add_tcase(s, ends);

    tcase_add_test(fields, obs_fold_is_400);
    tcase_add_test(fields, whitespace_before_first_field_is_400);
    tcase_add_test(fields, whitespace_before_colon_is_400);
    tcase_add_test(fields, empty_field_name_is_400);
    tcase_add_test(fields, ctl_in_field_name_is_400);
    tcase_add_test(fields, non_ascii_byte_in_field_name_is_400);
    tcase_add_test(fields, invalid_field_names_are_ignored_by_default);
    tcase_add_test(fields, ignored_field_with_ctl_in_value_is_still_400);
    tcase_add_test(fields, ignored_fields_fill_the_header_array_from_its_end);
    tcase_add_test(fields, underscores_are_kept_with_underscores_in_headers);
    tcase_add_test(fields, invalid_token_names_are_kept_without_ignore_invalid_headers);
    tcase_add_test(fields, field_line_without_colon_is_400);
    tcase_add_test(fields, ctl_in_field_value_is_400);
    tcase_add_test(fields, nul_in_field_value_is_400);
    tcase_add_test(fields, htab_and_obs_text_in_field_value_are_kept);
    tcase_add_test(fields, empty_field_value_is_accepted);
    tcase_add_test(fields, framing_field_lookalikes_are_400);
    suite_add_tcase(s, fields);

    tcase_add_test(limits, request_line_at_limit_is_accepted);
    tcase_add_test(limits, request_line_over_limit_is_414);
    tcase_add_test(limits, request_line_over_limit_is_414_before_its_end);
    tcase_add_test(limits, cr_at_request_line_limit_is_not_counted);
    tcase_add_test(limits, head_over_limit_is_431);
    tcase_add_test(limits, head_over_limit_is_431_before_its_end);
    tcase_add_test(limits, head_exactly_at_limit_is_accepted);
    tcase_add_test(limits, fields_over_limit_are_431);
    tcase_add_test(limits, fields_at_limit_are_accepted);
    tcase_add_test(limits, max_headers_is_capped_at_array_size);
    tcase_add_test(limits, zero_limits_mean_defaults);
    suite_add_tcase(s, limits);

    tcase_add_test(incr, partial_head_is_again);
    tcase_add_test(incr, again_remembers_how_far_it_scanned);
    tcase_add_test(incr, bytewise_feeding_gives_the_same_request);
    tcase_add_test(incr, bytewise_feeding_gives_the_same_error);
    tcase_add_test(incr, bytewise_feeding_gives_414_at_the_same_byte);
    tcase_add_test(incr, bytewise_feeding_gives_the_same_limit_error);
    tcase_add_test(incr, pipelined_requests_parse_one_after_the_other);
    tcase_add_test(incr, moved_buffer_gives_slices_into_the_new_one);
    suite_add_tcase(s, incr);

    tcase_add_test(why, every_rejection_says_why_in_nginx_words);
    tcase_add_test(why, limit_rejections_say_why);
    tcase_add_test(why, request_seen_gives_the_partial_request_line);
    suite_add_tcase(s, why);

    tcase_add_test(help, find_header_returns_first_match_case_insensitively);
    tcase_add_test(help, has_token_matches_whole_list_elements);
    suite_add_tcase(s, help);
    return s;
}
