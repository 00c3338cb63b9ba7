"""
Client-side timeouts and keepalive limits: a stalled head or body, an idle
keepalive connection, and keepalive_requests.
"""

import time

import harness
from harness import location, server, upstream


class Timeouts(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.b1 = cls.class_backend("b1")
        cls.port = harness.free_port()
        cls.p = cls.class_portier({
            "client_header_timeout": "1s",
            "client_body_timeout": "1s",
            "keepalive_timeout": "1s",
            "keepalive_requests": 3,
            "upstream": {"app": upstream(cls.b1.addr, keepalive=8)},
            "server": [server(cls.port, [location("/", proxy_pass="http://app")])],
        })

    def assertClosedWith408OrNothing(self, c, timeout, what):
        start = time.monotonic()
        self.assertTrue(c.wait_closed(timeout), "%s: still open after %.0fs" % (what, timeout))
        if c.buf:
            self.assertTrue(c.buf.startswith(b"HTTP/1.1 408 "), "%s: got %r" % (what, bytes(c.buf[:100])))
        return time.monotonic() - start

    def test_client_header_timeout_closes_partial_head(self):
        with self.p.client() as c:
            c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
            self.assertClosedWith408OrNothing(c, 6.0, "partial head")

    def test_client_body_timeout_closes_stalled_body(self):
        with self.p.client() as c:
            c.send(b"POST /sink HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\n0123456789")
            self.assertClosedWith408OrNothing(c, 6.0, "stalled body")

    def test_keepalive_timeout_closes_idle_connection(self):
        with self.p.client() as c:
            r = c.request("GET", "/")
            self.assertEqual(r.status, 200)
            self.assertNotIn("close", r.connection_tokens())
            start = time.monotonic()
            self.assertTrue(c.wait_closed(6.0), "idle keepalive connection open 6s past a 1s timeout")
            self.assertEqual(c.buf, b"", "bytes sent on an idle connection")
            self.assertGreater(time.monotonic() - start, 0.5, "closed long before keepalive_timeout")

    def test_keepalive_requests_limit_closes_after_third_response(self):
        with self.p.client() as c:
            for i in range(2):
                r = c.request("GET", "/")
                self.assertEqual(r.status, 200)
                self.assertNotIn("close", r.connection_tokens(), "response %d" % (i + 1))
            r = c.request("GET", "/")
            self.assertEqual(r.status, 200)
            self.assertIn("close", r.connection_tokens())
            self.assertClosed(c)


if __name__ == "__main__":
    harness.main()
