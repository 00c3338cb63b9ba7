/*
 * test_http_response.c: the upstream response head parser (worker/http_parse.c).
 */
#include "check_main.h"
#include "test_http_util.h"

static struct pt_http_response resp;

static int parse_resp_n(const char *s, size_t n, size_t max_head)
{
    memset(&resp, 0, sizeof(resp));
    return pt_http_parse_response(s, n, max_head, &resp);
}

static int parse_resp(const char *s)
{
    return parse_resp_n(s, strlen(s), 0);
}

START_TEST(ok_response_fills_every_field)
{
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer:  x \r\n\r\nhello world!";
    ck_assert_int_eq(parse_resp(s), PT_OK);
    ck_assert_int_eq(resp.version, 11);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_slice(resp.reason, "OK");
    ck_assert_uint_eq(resp.nheaders, 2);
    ck_assert_slice(resp.headers[1].value, "x");
    ck_assert_int_eq(resp.content_length, 12);
    ck_assert(!resp.chunked);
    ck_assert(resp.keep_alive);
    ck_assert_uint_eq(resp.head_len, strlen(s) - 12);
}
END_TEST

START_TEST(reason_may_contain_spaces_and_obs_text)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 404 Not \xe9 Found\r\n\r\n"), PT_OK);
    ck_assert_slice(resp.reason, "Not \xe9 Found");
}
END_TEST

START_TEST(missing_reason_is_accepted_with_or_without_space)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 204 \r\n\r\n"), PT_OK);
    ck_assert_uint_eq(resp.reason.len, 0);
    ck_assert_int_eq(parse_resp("HTTP/1.1 204\r\n\r\n"), PT_OK);
    ck_assert_int_eq(resp.status, 204);
    ck_assert_uint_eq(resp.reason.len, 0);
}
END_TEST

START_TEST(response_without_length_has_content_length_minus_one)
{
    ck_assert_int_eq(parse_resp("HTTP/1.0 200 OK\r\n\r\n"), PT_OK);
    ck_assert_int_eq(resp.content_length, -1);
    ck_assert(!resp.chunked);
}
END_TEST

START_TEST(chunked_response_is_flagged)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), PT_OK);
    ck_assert(resp.chunked);
}
END_TEST

START_TEST(chunked_with_parameter_is_accepted)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;x=1\r\n\r\n"),
                     PT_OK);
    ck_assert(resp.chunked);
}
END_TEST

START_TEST(identity_before_chunked_is_accepted)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity, chunked\r\n\r\n"),
                     PT_OK);
    ck_assert(resp.chunked);
}
END_TEST

START_TEST(http_1_0_response_is_not_persistent_by_default)
{
    ck_assert_int_eq(parse_resp("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), PT_OK);
    ck_assert_int_eq(resp.version, 10);
    ck_assert(!resp.keep_alive);
    ck_assert_int_eq(parse_resp("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n"), PT_OK);
    ck_assert(resp.keep_alive);
}
END_TEST

START_TEST(connection_close_ends_persistence)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"), PT_OK);
    ck_assert(!resp.keep_alive);
}
END_TEST

START_TEST(interim_response_is_returned_and_the_next_one_follows)
{
    const char *s = "HTTP/1.1 100 Continue\r\n\r\n"
                    "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    ck_assert_int_eq(parse_resp(s), PT_OK);
    ck_assert_int_eq(resp.status, 100);
    size_t off = resp.head_len;
    ck_assert_int_eq(parse_resp(s + off), PT_OK);
    ck_assert_int_eq(resp.status, 201);
    ck_assert_uint_eq(off + resp.head_len, strlen(s));
}
END_TEST

START_TEST(switching_protocols_is_returned)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\n\r\n"),
                     PT_OK);
    ck_assert_int_eq(resp.status, 101);
}
END_TEST

START_TEST(partial_response_is_again)
{
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n";
    for (size_t n = 0; n < strlen(s); n++)
        ck_assert_int_eq(parse_resp_n(s, n, 0), PT_AGAIN);
}
END_TEST

START_TEST(bytewise_feeding_gives_the_same_response)
{
    const char *s = "HTTP/1.1 503 Busy\r\nRetry-After: 5\r\nContent-Length: 3\r\n\r\nabc";
    int rc = PT_AGAIN;
    char *copy = NULL;

    memset(&resp, 0, sizeof(resp));
    for (size_t i = 1; i <= strlen(s) && rc == PT_AGAIN; i++) {
        free(copy);
        copy = malloc(i);
        memcpy(copy, s, i);
        rc = pt_http_parse_response(copy, i, 0, &resp);
    }
    ck_assert_int_eq(rc, PT_OK);
    ck_assert_int_eq(resp.status, 503);
    ck_assert_slice(resp.reason, "Busy");
    ck_assert_slice(resp.headers[0].value, "5");
    ck_assert_int_eq(resp.content_length, 3);
    ck_assert_uint_eq(resp.head_len, strlen(s) - 3);
    free(copy);
}
END_TEST

START_TEST(content_length_with_transfer_encoding_is_error)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n"),
                     PT_ERROR);
}
END_TEST

START_TEST(conflicting_content_lengths_are_error)
{
    ck_assert_int_eq(
        parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(malformed_content_length_is_error)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(final_coding_not_chunked_is_error)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(chunked_twice_is_error)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
                     PT_ERROR);
}
END_TEST

START_TEST(known_coding_before_chunked_is_error)
{
    /* accepted in requests, but a response has no te_codings to forward it with */
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
                     PT_ERROR);
}
END_TEST

START_TEST(unknown_coding_before_chunked_is_error)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: br, chunked\r\n\r\n"),
                     PT_ERROR);
}
END_TEST

START_TEST(malformed_transfer_encoding_is_error)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;=1\r\n\r\n"),
                     PT_ERROR);
}
END_TEST

START_TEST(transfer_encoding_on_http_1_0_response_is_error)
{
    ck_assert_int_eq(parse_resp("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(obs_fold_in_response_is_error)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(bare_lf_in_response_is_error)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 0\n"), PT_ERROR);
}
END_TEST

START_TEST(ctl_in_response_field_is_error)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nX-A: a\x01\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(space_before_colon_in_response_is_error)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(bad_status_codes_are_error)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1 099 Low\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(parse_resp("HTTP/1.1 600 High\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(parse_resp("HTTP/1.1 2x0 OK\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(parse_resp("HTTP/1.1 2000 OK\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(parse_resp("HTTP/1.1 20 OK\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(bad_status_line_shapes_are_error)
{
    ck_assert_int_eq(parse_resp("HTTP/1.1  200 OK\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(parse_resp("HTTP/2.0 200 OK\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(parse_resp("HTTP/1.1\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(parse_resp("ICY 200 OK\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(parse_resp("\r\nHTTP/1.1 200 OK\r\n\r\n"), PT_ERROR);
    ck_assert_int_eq(parse_resp("HTTP/1.1 200 O\x01K\r\n\r\n"), PT_ERROR);
}
END_TEST

START_TEST(response_head_over_limit_is_error)
{
    const char *s = "HTTP/1.1 200 OK\r\nX-A: 0123456789\r\n\r\n";
    ck_assert_int_eq(parse_resp_n(s, strlen(s), 20), PT_ERROR);
    ck_assert_int_eq(parse_resp_n(s, strlen(s), strlen(s)), PT_OK);
}
END_TEST

START_TEST(response_with_too_many_fields_is_error)
{
    static char s[4096];
    size_t n = (size_t)sprintf(s, "HTTP/1.1 200 OK\r\n");

    for (int i = 0; i <= PT_HTTP_MAX_HEADERS; i++)
        n += (size_t)sprintf(s + n, "X%d: v\r\n", i);
    strcpy(s + n, "\r\n");
    ck_assert_int_eq(parse_resp_n(s, n + 2, 0), PT_ERROR);
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("http_response");
    TCase *ok = tcase_create("accepted");
    TCase *bad = tcase_create("refused");

    tcase_add_test(ok, ok_response_fills_every_field);
    tcase_add_test(ok, reason_may_contain_spaces_and_obs_text);
    tcase_add_test(ok, missing_reason_is_accepted_with_or_without_space);
    tcase_add_test(ok, response_without_length_has_content_length_minus_one);
    tcase_add_test(ok, chunked_response_is_flagged);
    tcase_add_test(ok, chunked_with_parameter_is_accepted);
    tcase_add_test(ok, identity_before_chunked_is_accepted);
    tcase_add_test(ok, http_1_0_response_is_not_persistent_by_default);
    tcase_add_test(ok, connection_close_ends_persistence);
    tcase_add_test(ok, interim_response_is_returned_and_the_next_one_follows);
    tcase_add_test(ok, switching_protocols_is_returned);
    tcase_add_test(ok, partial_response_is_again);
    tcase_add_test(ok, bytewise_feeding_gives_the_same_response);
    suite_add_tcase(s, ok);

    tcase_add_test(bad, content_length_with_transfer_encoding_is_error);
    tcase_add_test(bad, conflicting_content_lengths_are_error);
    tcase_add_test(bad, malformed_content_length_is_error);
    tcase_add_test(bad, final_coding_not_chunked_is_error);
    tcase_add_test(bad, chunked_twice_is_error);
    tcase_add_test(bad, known_coding_before_chunked_is_error);
    tcase_add_test(bad, unknown_coding_before_chunked_is_error);
    tcase_add_test(bad, malformed_transfer_encoding_is_error);
    tcase_add_test(bad, transfer_encoding_on_http_1_0_response_is_error);
    tcase_add_test(bad, obs_fold_in_response_is_error);
    tcase_add_test(bad, bare_lf_in_response_is_error);
    tcase_add_test(bad, ctl_in_response_field_is_error);
    tcase_add_test(bad, space_before_colon_in_response_is_error);
    tcase_add_test(bad, bad_status_codes_are_error);
    tcase_add_test(bad, bad_status_line_shapes_are_error);
    tcase_add_test(bad, response_head_over_limit_is_error);
    tcase_add_test(bad, response_with_too_many_fields_is_error);
    suite_add_tcase(s, bad);
    return s;
}
