"""
Reloads without loss: a draining worker hands idle keepalive connections back with
"Connection: close" on their next request instead of closing them under the
client; HUPs under load fail no request; a WebSocket outlives a reload until
worker_shutdown_timeout; max_draining_generations bounds the workers a reload
storm leaves behind; every reload's outcome is logged; `-s reload` with a bad
config fails loudly and changes nothing.
"""

import random
import re
import signal
import sys
import threading
import time

import harness
from harness import location, server, upstream
from test_websocket import OP_TEXT, frame, handshake, read_frame


def workers_of(master):
    """Worker processes of <master> (children titled "worker")."""
    return sorted(k for k in harness.children(master) if "worker" in harness.proc_title(k))


def held_by_a_worker(p, client):
    """True once one of <p>'s workers holds the server side of <client>'s connection."""
    inodes = {r["inode"] for r in harness.tcp_sockets()
              if r["rport"] == client.local_port and r["lport"] == client.port}
    return any(inodes & harness.socket_inodes(w) for w in workers_of(p.pid))


class WorkerSampler(threading.Thread):
    """Counts <master>'s workers every few milliseconds; peak is the largest count."""

    def __init__(self, master):
        super().__init__(daemon=True)
        self.master = master
        self.peak = 0
        self.samples = 0
        self._done = threading.Event()

    def run(self):
        while not self._done.is_set():
            self.peak = max(self.peak, len(workers_of(self.master)))
            self.samples += 1
            time.sleep(0.005)

    def stop(self):
        self._done.set()
        self.join(10)


class ReloadDrain(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.b1 = cls.class_backend("b1")

    def http(self, port=None, extra=()):
        return {
            "upstream": {"app": upstream(self.b1.addr, keepalive=8)},
            "server": [server(port or harness.free_port(),
                              list(extra) + [location("/", proxy_pass="http://app")])],
        }

    def portier(self, extra=(), main=None, workers=1):
        m = {"worker_processes": workers}
        m.update(main or {})
        return self.start_portier(self.http(extra=extra), main=m, workers=workers)

    def test_idle_keepalive_connection_gets_close_on_its_next_request_after_reload(self):
        p = self.portier(main={"worker_shutdown_timeout": "10s"})
        with p.client() as c:
            self.assertEqual(c.request("GET", "/").status, 200)
            p.reload()
            time.sleep(0.3)
            self.assertTrue(c.is_open(), "the draining worker closed an idle keepalive connection")
            r = c.request("GET", "/")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("X-Backend"), "b1")
            self.assertIn("close", r.connection_tokens(), r)
            self.assertClosed(c, 3.0)
            self.assertFalse(c.reset, "closed with a reset")

    def test_no_failed_request_across_20_reloads_under_load(self):
        p = self.portier(workers=2, main={"worker_shutdown_timeout": "10s"})
        with harness.Load(p.port, clients=32) as load:
            time.sleep(0.5)
            for _ in range(20):
                p.signal(signal.SIGHUP)
                time.sleep(random.uniform(0.1, 0.2))
            time.sleep(0.5)
        sys.stderr.write("\n  %d ok on %d connections, %d failures\n"
                         % (load.ok, load.connections, len(load.failures)))
        self.assertEqual(load.failures, [], "failed requests across reloads")
        self.assertGreater(load.ok, 500)

    def test_websocket_outlives_reload_until_worker_shutdown_timeout(self):
        p = self.portier(main={"worker_shutdown_timeout": "3s"})
        c = p.client()
        self.addCleanup(c.close)
        r, _ = handshake(c)
        self.assertEqual(r.status, 101, r)
        c.send(frame(OP_TEXT, b"before"))
        self.assertEqual(read_frame(c), (OP_TEXT, b"before"))
        hup = time.monotonic()
        p.reload()
        # Traffic for 1.5 s after the reload, then silence so that the close cannot race
        # a frame in flight (a close with unread data is a reset).
        i = 0
        while time.monotonic() - hup < 1.5:
            c.send(frame(OP_TEXT, b"after %d" % i))
            self.assertEqual(read_frame(c), (OP_TEXT, b"after %d" % i))
            i += 1
            time.sleep(0.2)
        self.assertTrue(c.wait_closed(12), "tunnel still open 12 s after the reload")
        closed = time.monotonic() - hup
        self.assertFalse(c.reset, "the tunnel was reset, not closed")
        self.assertGreaterEqual(closed, 2.0, "closed %.2fs after the reload" % closed)
        self.assertLessEqual(closed, 10.0, "closed %.2fs after the reload" % closed)

    def test_draining_generations_are_capped(self):
        n = 2
        p = self.portier(main={"worker_shutdown_timeout": "60s", "max_draining_generations": n})
        sampler = WorkerSampler(p.pid)
        sampler.start()
        self.addCleanup(sampler.stop)
        for i in range(50):
            # A request in flight for a minute pins this generation: only the cap ends it.
            c = p.client()
            self.addCleanup(c.close)
            c.send(harness.build_request("GET", "/slow?ms=60000&gen=%d" % i))
            harness.wait_until(lambda: held_by_a_worker(p, c), 5, 0.005,
                               "a worker to accept slow request %d" % i)
            p.signal(signal.SIGHUP)
            time.sleep(0.05)
        time.sleep(0.5)
        sampler.stop()
        sys.stderr.write("\n  peak %d workers over %d samples\n" % (sampler.peak, sampler.samples))
        self.assertLessEqual(sampler.peak, (n + 1) * 1 + 1, "more than %d generations draining" % n)
        harness.wait_for_line(p.error_log, r"draining generation", timeout=5)
        self.assertEqual(p.get("/").status, 200)

    def test_s_reload_with_invalid_config_exits_nonzero_and_keeps_the_config(self):
        p = self.start_portier(self.http(extra=[location("= /v", ret="200 v1")]))
        workers = p.worker_pids()
        cfg = self.http(p.port, [location("= /v", ret="200 v2")])
        cfg["bogus_directive"] = "1"
        p.write_config(cfg)
        res = p.run("-c", p.conf_path, "-s", "reload")
        self.assertNotEqual(res.returncode, 0, "portier -s reload accepted a bad config")
        time.sleep(0.5)
        self.assertTrue(p.alive())
        self.assertEqual(p.worker_pids(), workers)
        self.assertEqual(p.get("/v").body, b"v1")

    def test_successful_reload_logged_with_config_path_and_worker_count(self):
        p = self.portier(workers=2)
        start = harness.file_size(p.error_log)
        p.reload()
        harness.wait_for_line(p.error_log, re.escape(p.conf_path) + r".*\b2 workers?\b|"
                              r"\b2 workers?\b.*" + re.escape(p.conf_path), timeout=5, start=start)

    def test_failed_reload_logged_with_reason(self):
        p = self.portier()
        start = harness.file_size(p.error_log)
        cfg = self.http(p.port)
        cfg["bogus_directive"] = "1"
        p.write_config(cfg)
        p.signal(signal.SIGHUP)
        line = harness.wait_for_line(p.error_log, r"(?i)reload.*bogus_directive", timeout=5, start=start)
        self.assertRegex(line, r"(?i)fail|error|invalid|unknown")


if __name__ == "__main__":
    harness.main()
