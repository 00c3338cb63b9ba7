"""
The request parser's rejections end to end (DESIGN.md "HTTP/1.1 parser"): each
malformed request gets its status from portier itself, the client connection is
closed, nothing reaches the backend (its request counter does not move), and the
error log gets an info line saying why, in nginx's form ("client sent ... while reading
client request headers, client: 127.0.0.1, server: ..., request: ..."; the reasons
themselves are pinned in test_http_parse.c and test_dropin_requests.py).
"""

import harness
from harness import location, server, upstream

GOOD_HEAD = b"POST /echo HTTP/1.1\r\nHost: a.test\r\n"


def post(extra_headers, body=b""):
    """A POST /echo with <extra_headers> (raw bytes, CRLF-terminated lines)."""
    return GOOD_HEAD + extra_headers + b"\r\n" + body


class ParserRejections(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.b1 = cls.class_backend("b1")
        cls.port = harness.free_port()
        cls.p = cls.class_portier({
            "large_client_header_buffers": "4 8k",
            "client_max_body_size": "1k",
            "upstream": {"app": upstream(cls.b1.addr, keepalive=8)},
            "server": [server(cls.port, [location("/", proxy_pass="http://app")])],
        })

    def assertRejected(self, raw, status=400, close=True):
        before = self.b1.count()[0]
        log_start = harness.file_size(self.p.error_log)
        with self.p.client(timeout=10) as c:
            c.send(raw)
            r = c.read_response()
            self.assertPortierError(r, status)
            if close:
                self.assertClosed(c)
        self.assertEqual(self.b1.count()[0], before, "rejected request reached the backend")
        harness.wait_for_line(self.p.error_log, r"\[info\] .*client (sent|intended) .*"
                              r"client: 127\.0\.0\.1, server: ", start=log_start)

    def assertAllRejected(self, variants, status=400):
        for raw in variants:
            with self.subTest(request=raw[:120]):
                self.assertRejected(raw, status)

    # -- control

    def test_control_valid_request_is_forwarded(self):
        before = self.b1.count()[0]
        with self.p.client() as c:
            c.send(post(b"Content-Length: 5\r\n", b"hello"))
            r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(self.b1.count()[0], before + 1)

    # -- framing

    def test_both_content_length_and_transfer_encoding(self):
        self.assertAllRejected([
            post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
            post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"),
        ])

    def test_transfer_encoding_not_ending_in_chunked(self):
        self.assertAllRejected([
            post(b"Transfer-Encoding: gzip\r\n", b"hello"),
            post(b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n"),
            post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", b"0\r\n\r\n"),
            post(b"Transfer-Encoding: chunkedx\r\n", b"0\r\n\r\n"),
        ])

    def test_transfer_encoding_on_http_1_0(self):
        self.assertRejected(b"POST /echo HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"5\r\nhello\r\n0\r\n\r\n")

    def test_malformed_content_length(self):
        self.assertAllRejected([post(b"Content-Length: " + v + b"\r\n", b"hello") for v in (
            b"", b"+5", b"-5", b"5a", b"0x5", b"5 5", b"5,5", b"5.0",
            b"99999999999999999999999", b"18446744073709551616")])

    def test_conflicting_content_lengths(self):
        self.assertRejected(post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"))

    # -- header syntax

    def test_obs_fold(self):
        self.assertAllRejected([
            post(b"X-A: a\r\n b\r\n"),
            post(b"X-A: a\r\n\tb\r\n"),
        ])

    def test_whitespace_before_colon(self):
        self.assertAllRejected([
            post(b"X-A : b\r\n"),
            post(b"X-A\t: b\r\n"),
            post(b"Content-Length : 5\r\n", b"hello"),
        ])

    def test_nul_cr_lf_in_header_name_or_value(self):
        self.assertAllRejected([
            post(b"X-A: a\x00b\r\n"),
            post(b"X-A: a\rb\r\n"),
            post(b"X\x00A: b\r\n"),
            post(b"X\rA: b\r\n"),
        ])

    def test_bare_lf_line_endings(self):
        self.assertAllRejected([
            b"GET / HTTP/1.1\nHost: a.test\n\n",
            b"GET / HTTP/1.1\r\nHost: a.test\nX-A: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a.test\r\nX-A: a\nb: c\r\n\r\n",
        ])

    def test_absurd_request_lines(self):
        self.assertAllRejected([
            b"GET  / HTTP/1.1\r\nHost: a.test\r\n\r\n",
            b"GET / HTTP/1.1 x\r\nHost: a.test\r\n\r\n",
            b"G\x01T / HTTP/1.1\r\nHost: a.test\r\n\r\n",
            b"GET /a\tb HTTP/1.1\r\nHost: a.test\r\n\r\n",
            b"GET / HTTX/1.1\r\nHost: a.test\r\n\r\n",
        ])

    # -- chunked body syntax

    def test_malformed_chunk_size(self):
        te = b"Transfer-Encoding: chunked\r\n"
        self.assertAllRejected([post(te, body) for body in (
            b"zz\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\nhello\n0\n\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
        )])

    def test_chunk_extension_past_bound(self):
        self.assertRejected(post(b"Transfer-Encoding: chunked\r\n",
                                 b"5;" + b"e" * 100000 + b"\r\nhello\r\n0\r\n\r\n"))

    # -- Host

    def test_missing_host_on_http_1_1(self):
        self.assertRejected(b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n")

    def test_two_host_headers(self):
        self.assertRejected(b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n")

    def test_invalid_host(self):
        self.assertAllRejected([b"GET / HTTP/1.1\r\nHost: " + h + b"\r\n\r\n"
                                for h in (b"a b", b"a/b", b"a@b", b"[::1", b"a\\b")])

    # -- limits

    def test_long_uri_gets_414(self):
        self.assertRejected(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a.test\r\n\r\n", 414, close=False)

    def test_huge_header_section_gets_431(self):
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(40))
        self.assertRejected(b"GET / HTTP/1.1\r\nHost: a.test\r\n" + many + b"\r\n", 431, close=False)

    def test_body_over_limit_gets_413(self):
        self.assertRejected(post(b"Content-Length: 2048\r\n", b"x" * 2048), 413, close=False)


if __name__ == "__main__":
    harness.main()
