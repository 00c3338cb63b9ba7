/*
 * test_http_framing.c: what the request parser (worker/http_parse.c) derives from fields:
 * Host, Content-Length, Transfer-Encoding, bodies on bodyless methods, Connection, Upgrade
 * and Expect.  One behaviour per test.
 */
#include "check_main.h"
#include "test_http_util.h"

/* --- Host ------------------------------------------------------------------------------ */

START_TEST(http_1_1_without_host_is_400)
{
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\n\r\n"), 400);
}
END_TEST

START_TEST(http_1_0_without_host_is_accepted)
{
    ck_assert_int_eq(parse("GET / HTTP/1.0\r\n\r\n"), PT_OK);
    ck_assert_uint_eq(req.host.len, 0);
}
END_TEST

START_TEST(two_host_fields_are_400)
{
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
    ck_assert_int_eq(parse("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), 400);
}
END_TEST

START_TEST(empty_host_is_400)
{
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 400);
    ck_assert_int_eq(parse("GET / HTTP/1.0\r\nHost: \r\n\r\n"), 400);
}
END_TEST

START_TEST(host_with_invalid_chars_is_400)
{
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a\xe9\r\n\r\n"), 400);
}
END_TEST

START_TEST(host_with_reg_name_chars_and_port_is_accepted)
{
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a-b.c_d~!$&'()*+,;=%41:8080\r\n\r\n"), PT_OK);
    ck_assert_slice(req.host, "a-b.c_d~!$&'()*+,;=%41:8080");
}
END_TEST

START_TEST(host_with_bad_percent_escape_is_400)
{
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a%4\r\n\r\n"), 400);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n"), 400);
}
END_TEST

START_TEST(host_ipv4_and_ipv6_literals_are_accepted)
{
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n"), PT_OK);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n"), PT_OK);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n"), PT_OK);
    ck_assert_slice(req.host, "[2001:db8::1]:8443");
}
END_TEST

START_TEST(host_with_bad_ipv6_literal_is_400)
{
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n"), 400);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), 400);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: []\r\n\r\n"), 400);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n"), 400);
}
END_TEST

START_TEST(host_with_bad_port_is_400)
{
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a:\r\n\r\n"), 400);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n"), 400);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n"), 400);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a:000080\r\n\r\n"), 400);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: :80\r\n\r\n"), 400);
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nHost: a:65535\r\n\r\n"), PT_OK);
}
END_TEST

/* --- Content-Length -------------------------------------------------------------------- */

START_TEST(content_length_is_parsed)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content-Length:  42 \r\n")), PT_OK);
    ck_assert_int_eq(req.content_length, 42);
    ck_assert(!req.chunked);
}
END_TEST

START_TEST(content_length_of_2_pow_62_is_accepted)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content-Length: 4611686018427387904\r\n")),
                     PT_OK);
    ck_assert_int_eq(req.content_length, (int64_t)1 << 62);
}
END_TEST

START_TEST(content_length_over_2_pow_62_is_400)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content-Length: 4611686018427387905\r\n")), 400);
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content-Length: 18446744073709551616\r\n")),
                     400);
}
END_TEST

START_TEST(empty_content_length_is_400)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content-Length: \r\n")), 400);
}
END_TEST

START_TEST(signed_content_length_is_400)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content-Length: +5\r\n")), 400);
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content-Length: -5\r\n")), 400);
}
END_TEST

START_TEST(non_digit_content_length_is_400)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content-Length: 0x5\r\n")), 400);
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content-Length: 5.0\r\n")), 400);
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content-Length: 5\xa0\r\n")), 400);
}
END_TEST

START_TEST(content_length_with_inner_space_is_400)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content-Length: 5 5\r\n")), 400);
}
END_TEST

START_TEST(content_length_list_is_400)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content-Length: 5,5\r\n")), 400);
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content-Length: 5, 6\r\n")), 400);
}
END_TEST

START_TEST(repeated_identical_content_length_is_400)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content-Length: 5\r\nContent-Length: 5\r\n")),
                     400);
}
END_TEST

START_TEST(conflicting_content_lengths_are_400)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Content-Length: 5\r\ncontent-length: 6\r\n")),
                     400);
}
END_TEST

/* --- Transfer-Encoding ----------------------------------------------------------------- */

START_TEST(chunked_is_recognized_case_insensitively)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "transfer-encoding: ChUnKeD\r\n")), PT_OK);
    ck_assert(req.chunked);
    ck_assert_int_eq(req.content_length, -1);
}
END_TEST

START_TEST(empty_list_elements_around_chunked_are_ignored)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Transfer-Encoding: , chunked ,\r\n")), PT_OK);
    ck_assert(req.chunked);
}
END_TEST

START_TEST(content_length_with_transfer_encoding_is_400)
{
    ck_assert_int_eq(
        parse(REQ("POST / HTTP/1.1", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n")), 400);
}
END_TEST

START_TEST(content_length_with_other_coding_is_400_not_501)
{
    ck_assert_int_eq(
        parse(REQ("POST / HTTP/1.1", "Content-Length: 5\r\nTransfer-Encoding: br, chunked\r\n")),
        400);
}
END_TEST

START_TEST(transfer_encoding_on_http_1_0_is_400)
{
    ck_assert_int_eq(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
}
END_TEST

START_TEST(final_coding_not_chunked_is_400)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Transfer-Encoding: gzip\r\n")), 400);
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Transfer-Encoding: chunked, gzip\r\n")), 400);
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Transfer-Encoding: xchunked\r\n")), 400);
}
END_TEST

START_TEST(empty_transfer_encoding_is_400)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Transfer-Encoding:\r\n")), 400);
}
END_TEST

START_TEST(chunked_twice_in_one_field_is_400)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Transfer-Encoding: chunked, chunked\r\n")), 400);
}
END_TEST

START_TEST(chunked_in_two_fields_is_400)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1",
                               "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")),
                     400);
}
END_TEST

/* Parses a POST whose Transfer-Encoding field lines are <fields>. */
#define TE(fields) parse(REQ("POST / HTTP/1.1", fields))

/* Asserts that req holds exactly the <n> codings that follow, in order. */
#define ck_assert_codings(n, ...)                             \
    do {                                                      \
        const uint8_t want_[] = {__VA_ARGS__};                \
        ck_assert_uint_eq(req.n_te_codings, (n));             \
        for (unsigned i_ = 0; i_ < (n); i_++)                 \
            ck_assert_uint_eq(req.te_codings[i_], want_[i_]); \
    } while (0)

START_TEST(plain_chunked_has_no_codings)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked\r\n"), PT_OK);
    ck_assert_uint_eq(req.n_te_codings, 0);
}
END_TEST

START_TEST(known_coding_before_chunked_is_accepted)
{
    ck_assert_int_eq(TE("Transfer-Encoding: gzip, chunked\r\n"), PT_OK);
    ck_assert(req.chunked);
    ck_assert_codings(1, PT_HTTP_CODING_GZIP);
}
END_TEST

START_TEST(codings_keep_their_order)
{
    ck_assert_int_eq(TE("Transfer-Encoding: deflate,gzip , compress\t,chunked\r\n"), PT_OK);
    ck_assert_codings(3, PT_HTTP_CODING_DEFLATE, PT_HTTP_CODING_GZIP, PT_HTTP_CODING_COMPRESS);
}
END_TEST

START_TEST(codings_in_several_fields_combine_in_order)
{
    ck_assert_int_eq(TE("Transfer-Encoding: compress\r\nTransfer-Encoding: gzip\r\n"
                        "Transfer-Encoding: chunked\r\n"),
                     PT_OK);
    ck_assert_codings(2, PT_HTTP_CODING_COMPRESS, PT_HTTP_CODING_GZIP);
}
END_TEST

START_TEST(identity_is_dropped)
{
    ck_assert_int_eq(TE("Transfer-Encoding: deflate, identity, chunked\r\n"), PT_OK);
    ck_assert_codings(1, PT_HTTP_CODING_DEFLATE);
}
END_TEST

START_TEST(x_aliases_are_kept_as_their_coding)
{
    ck_assert_int_eq(TE("Transfer-Encoding: X-Gzip, x-compress, chunked\r\n"), PT_OK);
    ck_assert_codings(2, PT_HTTP_CODING_GZIP, PT_HTTP_CODING_COMPRESS);
}
END_TEST

START_TEST(same_coding_twice_is_accepted)
{
    ck_assert_int_eq(TE("Transfer-Encoding: gzip, gzip, chunked\r\n"), PT_OK);
    ck_assert_codings(2, PT_HTTP_CODING_GZIP, PT_HTTP_CODING_GZIP);
}
END_TEST

START_TEST(four_codings_are_accepted)
{
    ck_assert_int_eq(TE("Transfer-Encoding: gzip, deflate, identity, compress, gzip, chunked\r\n"),
                     PT_OK);
    ck_assert_codings(4, PT_HTTP_CODING_GZIP, PT_HTTP_CODING_DEFLATE, PT_HTTP_CODING_COMPRESS,
                      PT_HTTP_CODING_GZIP);
}
END_TEST

START_TEST(five_codings_are_501)
{
    ck_assert_int_eq(TE("Transfer-Encoding: gzip, gzip, gzip, gzip, gzip, chunked\r\n"), 501);
}
END_TEST

START_TEST(unknown_coding_before_chunked_is_501)
{
    ck_assert_int_eq(TE("Transfer-Encoding: br, chunked\r\n"), 501);
}
END_TEST

START_TEST(unknown_coding_in_earlier_field_is_501)
{
    ck_assert_int_eq(TE("Transfer-Encoding: cow\r\nTransfer-Encoding: chunked\r\n"), 501);
}
END_TEST

START_TEST(known_coding_after_chunked_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"), 400);
}
END_TEST

START_TEST(identity_after_chunked_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked, identity\r\n"), 400);
}
END_TEST

START_TEST(known_coding_without_chunked_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: identity\r\n"), 400);
}
END_TEST

START_TEST(unknown_coding_after_chunked_is_400_not_501)
{
    ck_assert_int_eq(TE("Transfer-Encoding: cow, chunked, cow\r\n"), 400);
}
END_TEST

START_TEST(chunked_with_parameter_is_accepted)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked;x=1\r\n"), PT_OK);
    ck_assert(req.chunked);
    ck_assert_uint_eq(req.n_te_codings, 0);
}
END_TEST

START_TEST(parameter_with_ows_and_bws_is_accepted)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked \t; x \t= 1 ;\ty=z\r\n"), PT_OK);
}
END_TEST

START_TEST(parameter_with_quoted_value_is_accepted)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked;x=\"a, b;\\\"c\\\\\"\r\n"), PT_OK);
    ck_assert(req.chunked);
}
END_TEST

START_TEST(bare_and_empty_parameters_are_accepted)
{
    /* the desync corpus case "Transfer-Encoding with a param", rated compliant */
    ck_assert_int_eq(TE("Transfer-Encoding:    gzip   ;   \r\n"
                        "Transfer-Encoding: deflate\t\t;\t\t\r\n"
                        "Transfer-Encoding: \t\t\t\tchunked;custom_param;\t\t\t\t\r\n"),
                     PT_OK);
    ck_assert_codings(2, PT_HTTP_CODING_GZIP, PT_HTTP_CODING_DEFLATE);
}
END_TEST

START_TEST(parameters_of_other_codings_are_dropped)
{
    ck_assert_int_eq(TE("Transfer-Encoding: gzip;level=9, chunked\r\n"), PT_OK);
    ck_assert_codings(1, PT_HTTP_CODING_GZIP);
}
END_TEST

START_TEST(chunked_with_parameter_twice_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked;a=1, chunked\r\n"), 400);
}
END_TEST

START_TEST(space_inside_a_coding_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chun ked\r\n"), 400);
}
END_TEST

START_TEST(coding_followed_by_a_token_without_semicolon_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: gzip chunked\r\n"), 400);
}
END_TEST

START_TEST(parameter_without_coding_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: ;x=1, chunked\r\n"), 400);
}
END_TEST

START_TEST(parameter_without_name_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked;=1\r\n"), 400);
}
END_TEST

START_TEST(parameter_without_value_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked;x=\r\n"), 400);
}
END_TEST

START_TEST(parameter_with_two_values_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked;x=1 2\r\n"), 400);
}
END_TEST

START_TEST(parameter_with_second_equals_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked;x=1=2\r\n"), 400);
}
END_TEST

START_TEST(unclosed_quoted_parameter_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked;x=\"abc\r\n"), 400);
}
END_TEST

START_TEST(quoted_parameter_ending_in_backslash_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked;x=\"abc\\\r\n"), 400);
}
END_TEST

START_TEST(non_ascii_in_quoted_parameter_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked;x=\"\xa0\"\r\n"), 400);
}
END_TEST

START_TEST(non_ascii_byte_around_chunked_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: \xa0"
                        "chunked\r\n"),
                     400);
    ck_assert_int_eq(TE("Transfer-Encoding: chunked\xa0\r\n"), 400);
}
END_TEST

START_TEST(ctl_in_transfer_encoding_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked\x0b\r\n"), 400);
}
END_TEST

START_TEST(content_length_with_parameterized_chunked_is_400)
{
    ck_assert_int_eq(TE("Transfer-Encoding: chunked;custom_param\r\nContent-Length: 4\r\n"), 400);
}
END_TEST

START_TEST(codings_format_lists_codings_in_order)
{
    char buf[PT_HTTP_TE_CODINGS_BUFSZ];

    ck_assert_int_eq(TE("Transfer-Encoding: x-gzip, deflate, identity, compress, chunked\r\n"),
                     PT_OK);
    ck_assert_uint_eq(pt_http_te_codings_format(&req, buf, sizeof(buf)), 25);
    ck_assert_str_eq(buf, "gzip, deflate, compress, ");
}
END_TEST

START_TEST(codings_format_without_codings_is_empty)
{
    char buf[8] = "junk";

    ck_assert_int_eq(TE("Transfer-Encoding: chunked\r\n"), PT_OK);
    ck_assert_uint_eq(pt_http_te_codings_format(&req, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(codings_format_longest_text_fits_bufsz)
{
    char buf[PT_HTTP_TE_CODINGS_BUFSZ];

    ck_assert_int_eq(TE("Transfer-Encoding: compress, compress, compress, compress, chunked\r\n"),
                     PT_OK);
    ck_assert_uint_eq(pt_http_te_codings_format(&req, buf, sizeof(buf)), sizeof(buf) - 1);
    ck_assert_str_eq(buf, "compress, compress, compress, compress, ");
}
END_TEST

START_TEST(codings_format_too_small_writes_empty_text)
{
    char buf[6] = "junk"; /* "gzip, " needs 7 bytes with its NUL */

    ck_assert_int_eq(TE("Transfer-Encoding: gzip, chunked\r\n"), PT_OK);
    ck_assert_uint_eq(pt_http_te_codings_format(&req, buf, sizeof(buf)), 6);
    ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(codings_format_with_zero_cap_writes_nothing)
{
    ck_assert_int_eq(TE("Transfer-Encoding: gzip, chunked\r\n"), PT_OK);
    ck_assert_uint_eq(pt_http_te_codings_format(&req, NULL, 0), 6);
}
END_TEST

/* --- bodies on bodyless methods -------------------------------------------------------- */

START_TEST(get_with_zero_content_length_is_accepted)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "Content-Length: 0\r\n")), PT_OK);
    ck_assert_int_eq(req.content_length, 0);
}
END_TEST

START_TEST(get_with_content_is_framed_like_any_request)
{
    /* RFC 9112 6.3: the framing does not depend on the method; portier re-frames the body
     * upstream (Elasticsearch searches, GraphQL over GET send one). */
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "Content-Length: 3\r\n")), PT_OK);
    ck_assert_int_eq(req.content_length, 3);
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "Transfer-Encoding: chunked\r\n")), PT_OK);
    ck_assert(req.chunked);
}
END_TEST

START_TEST(head_delete_and_options_with_content_are_accepted)
{
    ck_assert_int_eq(parse(REQ("HEAD / HTTP/1.1", "Transfer-Encoding: chunked\r\n")), PT_OK);
    ck_assert(req.chunked);
    ck_assert_int_eq(parse(REQ("DELETE / HTTP/1.1", "Content-Length: 2\r\n")), PT_OK);
    ck_assert_int_eq(req.content_length, 2);
    ck_assert_int_eq(parse(REQ("OPTIONS / HTTP/1.1", "Content-Length: 2\r\n")), PT_OK);
}
END_TEST

START_TEST(trace_with_content_is_400)
{
    /* RFC 9110 9.3.8: a client MUST NOT send content in TRACE. */
    ck_assert_int_eq(parse(REQ("TRACE / HTTP/1.1", "Content-Length: 1\r\n")), 400);
    ck_assert_int_eq(parse(REQ("TRACE / HTTP/1.1", "Transfer-Encoding: chunked\r\n")), 400);
    ck_assert_int_eq(parse(REQ("TRACE / HTTP/1.1", "Content-Length: 0\r\n")), PT_OK);
}
END_TEST

/* --- Connection, Upgrade, Expect ------------------------------------------------------- */

START_TEST(connection_close_ends_keep_alive)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "Connection: foo, Close\r\n")), PT_OK);
    ck_assert(!req.keep_alive);
}
END_TEST

START_TEST(http_1_0_keep_alive_token_keeps_alive)
{
    ck_assert_int_eq(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), PT_OK);
    ck_assert(req.keep_alive);
}
END_TEST

START_TEST(close_wins_over_keep_alive)
{
    ck_assert_int_eq(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"),
                     PT_OK);
    ck_assert(!req.keep_alive);
}
END_TEST

START_TEST(upgrade_needs_connection_token_and_upgrade_field)
{
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "Connection: keep-alive, Upgrade\r\n"
                                                 "Upgrade: websocket\r\n")),
                     PT_OK);
    ck_assert(req.upgrade);
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "Upgrade: websocket\r\n")), PT_OK);
    ck_assert(!req.upgrade);
    ck_assert_int_eq(parse(REQ("GET / HTTP/1.1", "Connection: upgrade\r\n")), PT_OK);
    ck_assert(!req.upgrade);
}
END_TEST

START_TEST(upgrade_is_ignored_on_http_1_0)
{
    ck_assert_int_eq(parse("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
                     PT_OK);
    ck_assert(!req.upgrade);
}
END_TEST

START_TEST(expect_100_continue_is_flagged_case_insensitively)
{
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Expect: 100-Continue\r\nContent-Length: 1\r\n")),
                     PT_OK);
    ck_assert(req.expect_continue);
    ck_assert_int_eq(parse(REQ("POST / HTTP/1.1", "Expect: something\r\n")), PT_OK);
    ck_assert(!req.expect_continue);
}
END_TEST

START_TEST(expect_is_ignored_on_http_1_0)
{
    ck_assert_int_eq(parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"), PT_OK);
    ck_assert(!req.expect_continue);
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("http_framing");
    TCase *host = tcase_create("host");
    TCase *framing = tcase_create("framing");
    TCase *coding = tcase_create("transfer_coding");
    TCase *conn = tcase_create("connection");

    tcase_add_test(host, http_1_1_without_host_is_400);
    tcase_add_test(host, http_1_0_without_host_is_accepted);
    tcase_add_test(host, two_host_fields_are_400);
    tcase_add_test(host, empty_host_is_400);
    tcase_add_test(host, host_with_invalid_chars_is_400);
    tcase_add_test(host, host_with_reg_name_chars_and_port_is_accepted);
    tcase_add_test(host, host_with_bad_percent_escape_is_400);
    tcase_add_test(host, host_ipv4_and_ipv6_literals_are_accepted);
    tcase_add_test(host, host_with_bad_ipv6_literal_is_400);
    tcase_add_test(host, host_with_bad_port_is_400);
    tcase_add_test(framing, content_length_is_parsed);
    tcase_add_test(framing, content_length_of_2_pow_62_is_accepted);
    tcase_add_test(framing, content_length_over_2_pow_62_is_400);
    tcase_add_test(framing, empty_content_length_is_400);
    tcase_add_test(framing, signed_content_length_is_400);
    tcase_add_test(framing, non_digit_content_length_is_400);
    tcase_add_test(framing, content_length_with_inner_space_is_400);
    tcase_add_test(framing, content_length_list_is_400);
    tcase_add_test(framing, repeated_identical_content_length_is_400);
    tcase_add_test(framing, conflicting_content_lengths_are_400);
    tcase_add_test(framing, chunked_is_recognized_case_insensitively);
    tcase_add_test(framing, empty_list_elements_around_chunked_are_ignored);
    tcase_add_test(framing, content_length_with_transfer_encoding_is_400);
    tcase_add_test(framing, content_length_with_other_coding_is_400_not_501);
    tcase_add_test(framing, transfer_encoding_on_http_1_0_is_400);
    tcase_add_test(framing, final_coding_not_chunked_is_400);
    tcase_add_test(framing, empty_transfer_encoding_is_400);
    tcase_add_test(framing, chunked_twice_in_one_field_is_400);
    tcase_add_test(framing, chunked_in_two_fields_is_400);
    tcase_add_test(framing, get_with_zero_content_length_is_accepted);
    tcase_add_test(framing, get_with_content_is_framed_like_any_request);
    tcase_add_test(framing, head_delete_and_options_with_content_are_accepted);
    tcase_add_test(framing, trace_with_content_is_400);
    tcase_add_test(coding, plain_chunked_has_no_codings);
    tcase_add_test(coding, known_coding_before_chunked_is_accepted);
    tcase_add_test(coding, codings_keep_their_order);
    tcase_add_test(coding, codings_in_several_fields_combine_in_order);
    tcase_add_test(coding, identity_is_dropped);
    tcase_add_test(coding, x_aliases_are_kept_as_their_coding);
    tcase_add_test(coding, same_coding_twice_is_accepted);
    tcase_add_test(coding, four_codings_are_accepted);
    tcase_add_test(coding, five_codings_are_501);
    tcase_add_test(coding, unknown_coding_before_chunked_is_501);
    tcase_add_test(coding, unknown_coding_in_earlier_field_is_501);
    tcase_add_test(coding, known_coding_after_chunked_is_400);
    tcase_add_test(coding, identity_after_chunked_is_400);
    tcase_add_test(coding, known_coding_without_chunked_is_400);
    tcase_add_test(coding, unknown_coding_after_chunked_is_400_not_501);
    tcase_add_test(coding, chunked_with_parameter_is_accepted);
    tcase_add_test(coding, parameter_with_ows_and_bws_is_accepted);
    tcase_add_test(coding, parameter_with_quoted_value_is_accepted);
    tcase_add_test(coding, bare_and_empty_parameters_are_accepted);
    tcase_add_test(coding, parameters_of_other_codings_are_dropped);
    tcase_add_test(coding, chunked_with_parameter_twice_is_400);
    tcase_add_test(coding, space_inside_a_coding_is_400);
    tcase_add_test(coding, coding_followed_by_a_token_without_semicolon_is_400);
    tcase_add_test(coding, parameter_without_coding_is_400);
    tcase_add_test(coding, parameter_without_name_is_400);
    tcase_add_test(coding, parameter_without_value_is_400);
    tcase_add_test(coding, parameter_with_two_values_is_400);
    tcase_add_test(coding, parameter_with_second_equals_is_400);
    tcase_add_test(coding, unclosed_quoted_parameter_is_400);
    tcase_add_test(coding, quoted_parameter_ending_in_backslash_is_400);
    tcase_add_test(coding, non_ascii_in_quoted_parameter_is_400);
    tcase_add_test(coding, non_ascii_byte_around_chunked_is_400);
    tcase_add_test(coding, ctl_in_transfer_encoding_is_400);
    tcase_add_test(coding, content_length_with_parameterized_chunked_is_400);
    tcase_add_test(coding, codings_format_lists_codings_in_order);
    tcase_add_test(coding, codings_format_without_codings_is_empty);
    tcase_add_test(coding, codings_format_longest_text_fits_bufsz);
    tcase_add_test(coding, codings_format_too_small_writes_empty_text);
    tcase_add_test(coding, codings_format_with_zero_cap_writes_nothing);
    tcase_add_test(conn, connection_close_ends_keep_alive);
    tcase_add_test(conn, http_1_0_keep_alive_token_keeps_alive);
    tcase_add_test(conn, close_wins_over_keep_alive);
    tcase_add_test(conn, upgrade_needs_connection_token_and_upgrade_field);
    tcase_add_test(conn, upgrade_is_ignored_on_http_1_0);
    tcase_add_test(conn, expect_100_continue_is_flagged_case_insensitively);
    tcase_add_test(conn, expect_is_ignored_on_http_1_0);
    suite_add_tcase(s, host);
    suite_add_tcase(s, framing);
    suite_add_tcase(s, coding);
    suite_add_tcase(s, conn);
    return s;
}
