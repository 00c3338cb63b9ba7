/*
 * test_http_client.c: the helper's HTTP client (worker/http_client.h) on the event loop,
 * against a server on 127.0.0.1 that this test plays by hand between the loop's rounds:
 * it accepts, reads the request head and writes a canned answer.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "worker/event.h"
#include "worker/http_client.h"

#define REQUEST "GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"

/* The server's side, played by serve(). */
static struct {
    int lfd, fd;
    struct sockaddr_in addr;
    const char *answer; /* written once the request head is in; NULL: never */
    int at_once;        /* answer on the first bytes, head or not (a TLS ClientHello) */
    int close_after;    /* close once answered */
    int answered, closed;
    char req[4096];
    size_t req_len;
} sv;

/* What done reported, copied: its strings live only during the call. */
static int calls;
static struct pt_http_client_result got;
static char got_text[64], got_body[4096];

static struct pt_http_client client;
static char buf[4096];

static void on_done(void *data, const struct pt_http_client_result *r)
{
    calls++;
    got = *r;
    snprintf(got_text, sizeof(got_text), "%s", r->text);
    memcpy(got_body, r->body ? r->body : "", r->body_len);
    got_body[r->body_len] = '\0';
}

static int stop_at_head(void *data, const struct pt_http_response *resp)
{
    return PT_DONE;
}

static void serve(void)
{
    ssize_t n;

    if (sv.fd < 0 && !sv.closed)
        sv.fd = accept4(sv.lfd, NULL, NULL, SOCK_NONBLOCK);
    if (sv.fd < 0 || sv.answered)
        return;
    while ((n = read(sv.fd, sv.req + sv.req_len, sizeof(sv.req) - 1 - sv.req_len)) > 0)
        sv.req_len += (size_t)n;
    sv.req[sv.req_len] = '\0';
    if (sv.answer == NULL || !(strstr(sv.req, "\r\n\r\n") || (sv.at_once && sv.req_len)))
        return;
    ck_assert_int_eq(write(sv.fd, sv.answer, strlen(sv.answer)), (ssize_t)strlen(sv.answer));
    sv.answered = 1;
    if (sv.close_after) {
        close(sv.fd);
        sv.fd = -1;
        sv.closed = 1;
    }
}

/* Runs the loop (and the server) until done was called, for at most about 3 s. */
static void run(void)
{
    for (int i = 0; i < 300 && calls == 0; i++) {
        pt_loop_once(10);
        serve();
    }
    ck_assert_int_eq(calls, 1);
}

static void start(void)
{
    pt_http_client_start(&client, (struct sockaddr *)&sv.addr, sizeof(sv.addr));
}

/* Starts an exchange with the server answering <answer> (closing after it: <close_after>),
 * and runs it to its end. */
static void exchange(const char *answer, int close_after)
{
    sv.answer = answer;
    sv.close_after = close_after;
    start();
    run();
}

/* That the exchange ended as <end>, in <phase>, saying <text>. */
static void assert_ended(enum pt_http_client_end end, enum pt_http_client_phase phase,
                         const char *text)
{
    ck_assert_int_eq(got.end, end);
    ck_assert_int_eq(got.phase, phase);
    ck_assert_str_eq(got_text, text);
}

static void setup(void)
{
    socklen_t len = sizeof(sv.addr);

    signal(SIGPIPE, SIG_IGN); /* as in the helper */
    ck_assert_int_eq(pt_loop_init(), PT_OK);
    memset(&sv, 0, sizeof(sv));
    sv.fd = -1;
    sv.addr.sin_family = AF_INET;
    sv.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(sv.lfd, 0);
    ck_assert_int_eq(bind(sv.lfd, (struct sockaddr *)&sv.addr, sizeof(sv.addr)), 0);
    ck_assert_int_eq(listen(sv.lfd, 8), 0);
    ck_assert_int_eq(getsockname(sv.lfd, (struct sockaddr *)&sv.addr, &len), 0);
    calls = 0;
    memset(&got, 0, sizeof(got));
    client = (struct pt_http_client){.request = REQUEST,
                                     .request_len = strlen(REQUEST),
                                     .buf = buf,
                                     .size = sizeof(buf),
                                     .head_max = sizeof(buf),
                                     .timeout_ms = 2000,
                                     .done = on_done};
}

static void teardown(void)
{
    pt_http_client_cancel(&client);
    if (sv.fd >= 0)
        close(sv.fd);
    close(sv.lfd);
}

/* --- responses --- */

START_TEST(request_bytes_are_sent_as_given)
{
    exchange("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0);
    ck_assert_str_eq(sv.req, REQUEST);
}
END_TEST

START_TEST(content_length_body_ends_the_exchange_without_a_close)
{
    exchange("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0);
    ck_assert_int_eq(got.end, PT_HC_RESPONSE);
    ck_assert_int_eq(got.status, 200);
    ck_assert_str_eq(got_text, "200 OK");
    ck_assert_str_eq(got_body, "hello");
    ck_assert(got.complete && !got.eof && !got.full);
}
END_TEST

START_TEST(chunked_body_is_decoded_for_the_caller)
{
    exchange("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
             0);
    ck_assert_int_eq(got.end, PT_HC_RESPONSE);
    ck_assert_str_eq(got_body, "hello world");
    ck_assert(got.complete && got.resp->chunked);
}
END_TEST

START_TEST(body_without_a_length_ends_at_the_close)
{
    exchange("HTTP/1.0 200 OK\r\n\r\nall of it", 1);
    ck_assert_str_eq(got_body, "all of it");
    ck_assert(got.complete && got.eof);
}
END_TEST

START_TEST(close_before_the_announced_length_is_a_truncated_body)
{
    exchange("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", 1);
    ck_assert_int_eq(got.end, PT_HC_RESPONSE);
    ck_assert_str_eq(got_body, "hello");
    ck_assert(!got.complete && got.eof && !got.full);
}
END_TEST

START_TEST(body_larger_than_the_buffer_is_cut_at_its_end)
{
    static char answer[2048];
    int head = snprintf(answer, sizeof(answer), "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");

    memset(answer + head, 'x', 1000);
    client.size = 100;
    exchange(answer, 0);
    ck_assert_int_eq(got.end, PT_HC_RESPONSE);
    ck_assert_uint_eq(got.body_len, 100 - (size_t)head);
    ck_assert(got.full && !got.complete && !got.eof);
}
END_TEST

START_TEST(head_callback_can_say_the_head_is_enough)
{
    client.head = stop_at_head;
    /* The body never comes and the server does not close: only the head ends it. */
    exchange("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\n", 0);
    ck_assert_int_eq(got.status, 503);
    ck_assert_str_eq(got_text, "503 Service Unavailable");
    ck_assert_uint_eq(got.body_len, 0);
}
END_TEST

START_TEST(no_body_is_read_after_204)
{
    exchange("HTTP/1.1 204 No Content\r\n\r\n", 0);
    ck_assert_int_eq(got.status, 204);
    ck_assert(got.complete && !got.eof);
}
END_TEST

START_TEST(without_a_request_the_connection_is_enough)
{
    client.request = NULL;
    exchange(NULL, 0);
    assert_ended(PT_HC_RESPONSE, PT_HC_CONNECT, "connected");
    ck_assert_ptr_null(got.resp);
}
END_TEST

/* --- failures --- */

START_TEST(close_before_a_whole_head_is_closed)
{
    exchange("HTTP/1.1 200 OK\r\n", 1);
    assert_ended(PT_HC_CLOSED, PT_HC_RECV, "closed before a complete response");
    ck_assert_ptr_null(got.resp);
}
END_TEST

START_TEST(malformed_head_is_invalid)
{
    exchange("HTTP/1.1 2000 OK\r\n\r\n", 0);
    assert_ended(PT_HC_INVALID, PT_HC_RECV, "invalid response");
}
END_TEST

START_TEST(malformed_chunked_framing_is_invalid)
{
    exchange("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0);
    assert_ended(PT_HC_INVALID, PT_HC_RECV, "invalid response");
}
END_TEST

START_TEST(refused_connection_says_connect_refused)
{
    close(sv.lfd); /* the port is free again: nothing listens */
    sv.lfd = socket(AF_INET, SOCK_STREAM, 0);
    start();
    run();
    ck_assert_int_eq(got.err, ECONNREFUSED);
    assert_ended(PT_HC_ERRNO, PT_HC_CONNECT, "connect refused");
}
END_TEST

START_TEST(connection_that_fails_at_once_is_reported_from_the_loop)
{
    struct sockaddr bad = {.sa_family = AF_UNSPEC};

    pt_http_client_start(&client, &bad, sizeof(bad));
    ck_assert_int_eq(calls, 0);
    run();
    ck_assert_int_ne(got.err, 0);
    assert_ended(PT_HC_ERRNO, PT_HC_CONNECT, "connect: Address family not supported by protocol");
}
END_TEST

START_TEST(silent_server_times_out_waiting_for_the_response)
{
    client.timeout_ms = 100;
    exchange(NULL, 0);
    assert_ended(PT_HC_TIMEOUT, PT_HC_RECV, "timeout waiting for the response");
}
END_TEST

START_TEST(cancel_closes_the_connection_without_calling_done)
{
    char byte;

    client.timeout_ms = 200;
    start();
    for (int i = 0; i < 5 && sv.fd < 0; i++) {
        pt_loop_once(10);
        serve();
    }
    ck_assert_int_ge(sv.fd, 0);
    pt_http_client_cancel(&client);
    for (int i = 0; i < 30; i++)
        pt_loop_once(10); /* past the timeout: it was disarmed */
    ck_assert_int_eq(calls, 0);
    ck_assert_int_eq(read(sv.fd, &byte, 1), 0);
}
END_TEST

#if PORTIER_WITH_SSL
/* --- TLS --- */

START_TEST(tls_to_a_silent_server_times_out_in_the_handshake)
{
    client.tls = pt_tls_client_ctx_noverify();
    client.timeout_ms = 100;
    exchange(NULL, 0);
    assert_ended(PT_HC_TIMEOUT, PT_HC_HANDSHAKE, "TLS handshake timeout");
}
END_TEST

START_TEST(tls_to_a_plain_http_server_fails_the_handshake)
{
    client.tls = pt_tls_client_ctx_noverify();
    sv.at_once = 1;
    exchange("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 1);
    assert_ended(PT_HC_TLS, PT_HC_HANDSHAKE, "TLS handshake failed: wrong version number");
}
END_TEST
#endif

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("http_client");
    TCase *ok = tcase_create("responses"), *bad = tcase_create("failures");

    tcase_add_checked_fixture(ok, setup, teardown);
    tcase_add_test(ok, request_bytes_are_sent_as_given);
    tcase_add_test(ok, content_length_body_ends_the_exchange_without_a_close);
    tcase_add_test(ok, chunked_body_is_decoded_for_the_caller);
    tcase_add_test(ok, body_without_a_length_ends_at_the_close);
    tcase_add_test(ok, close_before_the_announced_length_is_a_truncated_body);
    tcase_add_test(ok, body_larger_than_the_buffer_is_cut_at_its_end);
    tcase_add_test(ok, head_callback_can_say_the_head_is_enough);
    tcase_add_test(ok, no_body_is_read_after_204);
    tcase_add_test(ok, without_a_request_the_connection_is_enough);
    suite_add_tcase(s, ok);

    tcase_add_checked_fixture(bad, setup, teardown);
    tcase_add_test(bad, close_before_a_whole_head_is_closed);
    tcase_add_test(bad, malformed_head_is_invalid);
    tcase_add_test(bad, malformed_chunked_framing_is_invalid);
    tcase_add_test(bad, refused_connection_says_connect_refused);
    tcase_add_test(bad, connection_that_fails_at_once_is_reported_from_the_loop);
    tcase_add_test(bad, silent_server_times_out_waiting_for_the_response);
    tcase_add_test(bad, cancel_closes_the_connection_without_calling_done);
#if PORTIER_WITH_SSL
    tcase_add_test(bad, tls_to_a_silent_server_times_out_in_the_handshake);
    tcase_add_test(bad, tls_to_a_plain_http_server_fails_the_handshake);
#endif
    suite_add_tcase(s, bad);
    return s;
}
