"""
Request and response bodies: re-framing, limits, and streaming with bounded memory
(1 GiB each way and a slow reader, watching the worker's VmRSS).
"""

import sys
import time

import harness
from harness import MIB, location, server, upstream

GIB = 1024 * MIB
# Growth of the worker's VmRSS allowed during a transfer.  ASan builds keep freed
# memory in quarantine and grow shadow memory, so they get more slack; a proxy that
# buffers a 1 GiB body still fails by far.
RSS_SLACK_KIB = (64 if harness.binary_is_sanitized(harness.PORTIER_BIN) else 16) * 1024
RSS_SAMPLES = 8


class Bodies(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.b1 = cls.class_backend("b1")
        cls.port = harness.free_port()          # no body limit
        cls.limited_port = harness.free_port()  # client_max_body_size 1k
        cls.p = cls.class_portier({
            "upstream": {"app": upstream(cls.b1.addr, keepalive=8)},
            "server": [
                server(cls.port, [location("/", proxy_pass="http://app")],
                       client_max_body_size=0),
                server(cls.limited_port, [location("/", proxy_pass="http://app")],
                       client_max_body_size="1k"),
            ],
        })

    # -- framing

    def test_chunked_request_body_reframed_to_backend(self):
        r = harness.http_request(self.port, "POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
                                 body=harness.chunked(b"hello ", b"world"))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Received-Body-Length"), "11")
        _, hdrs, body = harness.parse_echo(r.body)
        self.assertEqual(body, b"hello world")
        framing = [k.lower() for k, _ in hdrs if k.lower() in ("content-length", "transfer-encoding")]
        self.assertEqual(len(framing), 1, "upstream framing headers: %r" % hdrs)

    def test_content_length_request_body_forwarded(self):
        with self.p.client() as c:
            r = c.request("POST", "/echo", body=b"abcde")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Received-Body-Length"), "5")
        self.assertTrue(r.body.endswith(b"\r\n\r\nabcde"), r.body)

    def test_chunked_response_passed_to_client(self):
        checker = harness.PatternChecker()
        with self.p.client() as c:
            r = c.request("GET", "/bytes?n=100000&chunked=1", body_sink=checker)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body_len, 100000)
        self.assertIsNone(checker.bad_at)

    def test_dripped_chunked_response_arrives_whole(self):
        r = self.p.get("/drip?n=5&ms=50")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"".join(b"chunk %d\n" % i for i in range(5)))

    def test_body_over_client_max_body_size_gets_413(self):
        req0, _ = self.b1.count()
        with harness.Client(self.limited_port) as c:
            c.send(harness.build_request("POST", "/sink", body=b"x" * 2048))
            r = c.read_response()
        self.assertPortierError(r, 413)
        self.assertEqual(self.b1.count()[0], req0, "request over the limit reached the backend")

    def test_chunked_body_over_client_max_body_size_gets_413(self):
        with harness.Client(self.limited_port) as c:
            c.send(harness.build_request("POST", "/sink", headers=[("Transfer-Encoding", "chunked")],
                                         body=harness.chunked(b"x" * 1000, b"y" * 1000)))
            r = c.read_response()
        self.assertEqual(r.status, 413)

    def test_body_within_client_max_body_size_passes(self):
        r = harness.http_request(self.limited_port, "POST", "/sink", body=b"x" * 1000)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Received-Body-Length"), "1000")

    # -- bounded memory

    def baseline(self, c):
        """Warms the worker serving <c> with a small proxied request, returns (pid, rss)."""
        r = c.request("GET", "/")
        self.assertEqual(r.status, 200)
        pid = self.p.worker_for(c)
        return pid, harness.rss_kib(pid)

    def assertRssBounded(self, pid, base, samples, what):
        self.assertGreaterEqual(len(samples), 3, "too few RSS samples during %s" % what)
        growth = max(samples) - base
        sys.stderr.write("\n  %s: worker %d VmRSS %d KiB before, max %d KiB during (%d samples)\n"
                         % (what, pid, base, max(samples), len(samples)))
        self.assertLessEqual(growth, RSS_SLACK_KIB,
                             "%s: worker %d VmRSS grew by %d KiB (base %d KiB, samples %r)"
                             % (what, pid, growth, base, samples))

    def test_1gib_upload_streams_with_bounded_worker_memory(self):
        block = harness.pattern_bytes(0, MIB)
        with self.p.client(timeout=60) as c:
            pid, base = self.baseline(c)
            c.send(b"POST /sink HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % GIB)
            samples = []
            every = 1024 // RSS_SAMPLES
            for i in range(1024):
                self.assertTrue(c.send(block), "portier closed the upload after %d MiB" % i)
                if i % every == every - 1:
                    samples.append(harness.rss_kib(pid))
            r = c.read_response(timeout=120)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Received-Body-Length"), str(GIB))
        self.assertRssBounded(pid, base, samples, "1 GiB upload")

    def test_1gib_download_streams_with_bounded_worker_memory(self):
        checker = harness.PatternChecker()
        samples = []
        state = {"next": 0}

        def sink(data):
            checker(data)
            if checker.offset >= state["next"]:
                samples.append(harness.rss_kib(pid))
                state["next"] += GIB // RSS_SAMPLES

        with self.p.client(timeout=60) as c:
            pid, base = self.baseline(c)
            state["next"] = GIB // RSS_SAMPLES
            r = c.request("GET", "/bytes?n=%d" % GIB, timeout=300, body_sink=sink)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body_len, GIB)
        self.assertIsNone(checker.bad_at, "pattern broken at byte %r" % checker.bad_at)
        self.assertRssBounded(pid, base, samples, "1 GiB download")

    def test_client_that_stops_reading_does_not_grow_worker_memory(self):
        n = 256 * MIB
        with self.p.client(timeout=60) as c:
            pid, base = self.baseline(c)
            c.send(harness.build_request("GET", "/bytes?n=%d" % n))
            samples = []
            for _ in range(6):  # not reading at all for 3 s
                time.sleep(0.5)
                samples.append(harness.rss_kib(pid))
            # then a trickle: 64 KiB every 50 ms for 1 s
            c.sock.settimeout(10)
            got = 0
            for i in range(20):
                got += len(c.sock.recv(65536))
                time.sleep(0.05)
                if i % 5 == 4:
                    samples.append(harness.rss_kib(pid))
            self.assertGreater(got, 0)
        self.assertRssBounded(pid, base, samples, "slow reader of 256 MiB")
        self.assertTrue(harness.pid_alive(pid))
        self.assertEqual(self.p.get("/").status, 200)


if __name__ == "__main__":
    harness.main()
