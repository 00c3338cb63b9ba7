"""
Upstream failures become portier's own small error pages: 502 for a refused
connect or a reset, 504 for a read timeout; a stale pooled upstream connection is
retried once, invisibly to the client.
"""

import harness
from harness import location, server, upstream


class UpstreamErrors(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.b1 = cls.class_backend("b1")
        cls.dead_port = harness.dead_port()
        cls.port = harness.free_port()
        # One upstream group per test, so that one test's failures (and the
        # peer state they leave) cannot change another's outcome.
        cls.p = cls.class_portier({
            "upstream": {
                "app": upstream(cls.b1.addr, keepalive=8),
                "resetter": upstream(cls.b1.addr),
                "hanger": upstream(cls.b1.addr),
            },
            "server": [server(cls.port, [
                location("/", proxy_pass="http://app"),
                location("/r/", proxy_pass="http://resetter/"),
                location("/dead/", proxy_pass="http://127.0.0.1:%d" % cls.dead_port),
                location("/hang", proxy_pass="http://hanger", proxy_read_timeout="1s"),
            ])],
        })

    def assertErrorPage(self, r, status):
        self.assertPortierError(r, status)
        self.assertTrue(r.header("Content-Type", "").startswith("text/html"), r)
        self.assertLess(len(r.body), 1024, "error page is not small")
        self.assertIn(str(status).encode(), r.body)
        self.assertIn(b"<html", r.body.lower())

    def test_connect_refused_gives_502(self):
        self.assertErrorPage(self.p.get("/dead/"), 502)

    def test_backend_reset_gives_502(self):
        self.assertErrorPage(self.p.get("/r/reset"), 502)

    def test_read_timeout_gives_504(self):
        self.assertErrorPage(self.p.get("/hang", timeout=15), 504)

    def test_single_server_upstream_not_disabled_by_errors(self):
        # nginx: with one server in a group, max_fails/fail_timeout are ignored
        self.assertEqual(self.p.get("/reset").status, 502)
        r = self.p.get("/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Backend"), "b1")

    def test_stale_pooled_connection_retried_once(self):
        b = self.start_backend("first")
        p = self.start_portier({
            "upstream": {"solo": upstream(b.addr, keepalive=4)},
            "server": [server(harness.free_port(), [location("/", proxy_pass="http://solo")])],
        })
        with p.client() as c:
            r1 = c.request("GET", "/")
            self.assertEqual(r1.header("X-Backend"), "first")
            self.assertGreaterEqual(len(harness.established_to(b.port)), 1,
                                    "no pooled upstream connection after the first request")
            b.restart("second")  # same port; the pooled connection is now dead
            r2 = c.request("GET", "/")
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r2.header("X-Backend"), "second")


if __name__ == "__main__":
    harness.main()
