/*
 * test_http_util.h: helpers shared by the HTTP parser tests (test_http_parse.c,
 * test_http_framing.c, test_http_response.c, test_http_chunked.c).  Header-only.
 */
#ifndef TEST_HTTP_UTIL_H
#define TEST_HTTP_UTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "worker/http_parse.h"

/* The request the helpers parse into; each test file has its own. */
static struct pt_http_request req __attribute__((unused));

/* Parses the <n> bytes <s> in one call into a zeroed <req>, with limits <lim> (NULL:
 * defaults). */
static inline int parse_lim(const char *s, size_t n, const struct pt_http_limits *lim)
{
    memset(&req, 0, sizeof(req));
    return pt_http_parse_request(s, n, lim, &req);
}

static inline int parse(const char *s)
{
    return parse_lim(s, strlen(s), NULL);
}

/* A request with request line <line>, a valid Host and then <fields> (each ending in
 * CRLF), so that tests of other rules need not repeat the Host. */
#define REQ(line, fields) line "\r\nHost: h\r\n" fields "\r\n"

/*
 * Feeds the <n> bytes of <s> one more byte per call, each time from a fresh copy (so any
 * slice kept from an earlier call would be caught by ASan), until the parser stops asking
 * for more.  Returns the final result; the slices point into <*copy>, which the caller
 * frees.
 */
static inline int parse_bytewise(const char *s, size_t n, const struct pt_http_limits *lim,
                                 char **copy)
{
    int rc = PT_AGAIN;

    memset(&req, 0, sizeof(req));
    *copy = NULL;
    for (size_t i = 1; i <= n && rc == PT_AGAIN; i++) {
        free(*copy);
        *copy = malloc(i);
        memcpy(*copy, s, i);
        rc = pt_http_parse_request(*copy, i, lim, &req);
    }
    return rc;
}

/* Asserts that slice <s> holds exactly the string literal <lit>. */
#define ck_assert_slice(s, lit)                                                                \
    ck_assert_msg(pt_str_eq((s), (lit)), "expected \"%s\", got \"%.*s\"", (lit), (int)(s).len, \
                  (s).p ? (s).p : "")

#endif
