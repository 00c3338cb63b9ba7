"""
Idle keepalive connections cost a worker their small struct and nothing more: no read
buffer, no request pool.  What an idle connection gave back it takes again when its next
request comes, and bytes already received (a pipelined request, whole or in part) are not
lost on the way.
"""

import resource
import time
import unittest

import harness
from harness import location, server, upstream

IDLE = 1000
# The target is 0.5 KiB per idle connection (sizeof(struct pt_http_conn) is about 0.2):
# a read buffer (16 KiB) or a request pool (8 KiB) held by each would be far above this.
KIB_PER_IDLE_BOUND = 0.6


def raise_fd_limit(need):
    """Raises the soft RLIMIT_NOFILE to <need> if the hard limit allows; True when it
    does.  Portier's workers inherit it (worker_rlimit_nofile asks for more)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return True
    if hard != resource.RLIM_INFINITY and hard < need:
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return True


class IdleMemory(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        if not raise_fd_limit(2 * IDLE + 1024):
            raise unittest.SkipTest("RLIMIT_NOFILE hard limit below %d" % (2 * IDLE + 1024))
        cls.b1 = cls.class_backend("b1")
        cls.port = harness.free_port()
        cls.p = cls.class_portier({
            "upstream": {"app": upstream(cls.b1.addr, keepalive=8)},
            "server": [server(cls.port, [
                location("= /a", **{"return": "200 a\n"}),
                location("= /b", **{"return": "200 b\n"}),
                location("/", proxy_pass="http://app"),
            ])],
        }, main={"worker_connections": 2 * IDLE + 512})

    def open_idle(self, n):
        """<n> connections, each after one proxied request answered with keepalive."""
        clients = []
        try:
            for _ in range(n):
                c = self.p.client()
                clients.append(c)
                r = c.request("GET", "/")
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, b"hello from b1\n")
                self.assertNotIn("close", r.connection_tokens())
        except BaseException:
            for c in clients:
                c.close()
            raise
        return clients

    def test_idle_keepalive_connections_hold_no_buffer(self):
        if harness.binary_is_sanitized(harness.PORTIER_BIN):
            self.skipTest("ASan build: its allocator's quarantine and shadow memory make RSS "
                          "say nothing about portier's own allocations")
        worker = self.p.worker()
        for c in self.open_idle(50):  # what serving requests takes is in the baseline
            c.close()
        time.sleep(0.3)
        before = harness.rss_kib(worker)
        clients = self.open_idle(IDLE)
        try:
            time.sleep(0.5)
            grown = harness.rss_kib(worker) - before
            self.assertLess(grown / IDLE, KIB_PER_IDLE_BOUND,
                            "worker RSS grew by %d KiB for %d idle connections" % (grown, IDLE))
        finally:
            for c in clients:
                c.close()

    def test_memory_of_a_burst_is_given_back(self):
        # 300 clients at once that do not read a large response pin two buffers each in
        # the worker; once they are gone, the worker's trim gives that memory back, and the
        # connections that come next are served as before.
        if harness.binary_is_sanitized(harness.PORTIER_BIN):
            self.skipTest("ASan build: its allocator keeps freed memory in quarantine")
        worker = self.p.worker()
        base = harness.rss_kib(worker)
        clients = []
        try:
            for _ in range(300):
                c = self.p.client()
                c.send(harness.build_request("GET", "/bytes?n=4000000"))
                clients.append(c)
            harness.wait_until(lambda: harness.rss_kib(worker) > base + 6000, timeout=10,
                               what="the burst to take its buffers")
            peak = harness.rss_kib(worker)
        finally:
            for c in clients:
                c.close()
        harness.wait_until(lambda: harness.rss_kib(worker) < peak - 4000, timeout=15,
                           what="the worker to give the burst's memory back (peak %d KiB)" % peak)
        for c in self.open_idle(20):
            self.assertEqual(c.request("GET", "/a").body, b"a\n")
            c.close()

    def test_every_idle_connection_serves_its_next_request(self):
        clients = self.open_idle(200)
        try:
            for i, c in enumerate(clients):
                r = c.request("GET", "/")
                self.assertEqual(r.status, 200, "connection %d" % i)
                self.assertEqual(r.body, b"hello from b1\n", "connection %d" % i)
        finally:
            for c in clients:
                c.close()

    def test_pipelined_requests_in_one_segment_are_all_answered_in_order(self):
        with self.p.client() as c:
            c.send(harness.build_request("GET", "/a") + harness.build_request("GET", "/b") +
                   harness.build_request("GET", "/"))
            self.assertEqual(c.read_response().body, b"a\n")
            self.assertEqual(c.read_response().body, b"b\n")
            self.assertEqual(c.read_response().body, b"hello from b1\n")

    def test_partial_pipelined_request_survives_the_first_response(self):
        second = harness.build_request("GET", "/b")
        with self.p.client() as c:
            c.send(harness.build_request("GET", "/a") + second[:10])
            self.assertEqual(c.read_response().body, b"a\n")
            time.sleep(0.3)  # the 10 bytes wait in the buffer for the rest
            c.send(second[10:])
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"b\n")

    def test_request_on_a_long_idle_connection_is_served(self):
        # Longer than the worker's memory-trim interval (2 s): whatever it gives back, the
        # connection does not miss it.
        with self.p.client() as c:
            self.assertEqual(c.request("GET", "/").status, 200)
            time.sleep(2.5)
            r = c.request("GET", "/")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"hello from b1\n")

    def test_request_on_a_connection_silent_since_accept_is_served(self):
        with self.p.client() as c:
            time.sleep(1.0)  # accepted, woken for writability, nothing to read yet
            r = c.request("GET", "/a")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"a\n")

    def test_burst_of_pipelined_requests_after_idle_is_answered_whole(self):
        # Many requests arrive at once on a connection that held no buffer: the first read
        # takes a buffer again and the rest are served from it, in order.
        paths = ["/a", "/b"] * 50
        with self.p.client() as c:
            self.assertEqual(c.request("GET", "/a").status, 200)
            time.sleep(0.3)
            c.send(b"".join(harness.build_request("GET", p) for p in paths))
            for i, p in enumerate(paths):
                self.assertEqual(c.read_response().body, p[1:].encode() + b"\n", "response %d" % i)


if __name__ == "__main__":
    harness.main()
