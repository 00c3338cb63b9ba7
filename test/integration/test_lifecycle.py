"""
The master's life: -t, -V, -s; signals (TERM, QUIT, HUP, USR1); respawning a dead
worker; privilege drop; worker count.
"""

import os
import re
import signal
import sys
import threading
import time
import unittest

import harness
from harness import location, server, upstream


def cmake_modules():
    """The module list CMakeLists.txt compiles in (set(PORTIER_MODULES ...))."""
    text = harness.read_file(os.path.join(harness.SOURCE_DIR, "CMakeLists.txt"))
    m = re.search(r"set\(PORTIER_MODULES([^)]*)\)", text)
    return m.group(1).split() if m else []


class Lifecycle(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.b1 = cls.class_backend("b1")

    def http(self, port=None, extra=()):
        return {
            "upstream": {"app": upstream(self.b1.addr, keepalive=8)},
            "server": [server(port or harness.free_port(),
                              [location("/", proxy_pass="http://app")] + list(extra))],
        }

    def portier(self, extra=(), main=None, workers=1):
        return self.start_portier(self.http(extra=extra), main=main, workers=workers)

    def wait_body(self, p, path, body, timeout=10.0):
        def probe():
            try:
                return p.get(path, timeout=2).body == body
            except (OSError, harness.ProtocolError, TimeoutError):
                return False
        harness.wait_until(probe, timeout, 0.1, "GET %s to answer %r" % (path, body))

    # -- command line

    def test_t_accepts_good_config(self):
        p = self.start_portier(self.http(), start=False)
        res = p.run("-t", "-c", p.conf_path)
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_t_reports_unknown_directive_with_file_line_and_hint(self):
        p = self.start_portier(self.http(), start=False)
        cfg = self.http()
        cfg["server"][0]["location"][0] = {"path": "/", "proxy_pas": "http://app"}
        p.write_config(cfg)
        line = next(i for i, l in enumerate(p.text.splitlines(), 1) if "proxy_pas " in l)
        res = p.run("-t", "-c", p.conf_path)
        self.assertEqual(res.returncode, 1)
        err = res.stderr.decode("utf-8", "replace")
        self.assertRegex(err, r'portier\.conf:%d: unknown directive "proxy_pas"' % line)
        self.assertIn('did you mean "proxy_pass"', err)

    def test_V_lists_compiled_in_modules(self):
        p = self.start_portier(self.http(), start=False)
        res = p.run("-V")
        self.assertEqual(res.returncode, 0)
        out = (res.stdout + res.stderr).decode("utf-8", "replace")
        self.assertIn("portier", out)
        modules = cmake_modules()
        self.assertTrue(modules, "no PORTIER_MODULES in CMakeLists.txt")
        for m in modules:
            self.assertRegex(out, r"\b%s\b" % re.escape(m), "module %s not listed by -V" % m)

    def test_s_reload_signals_master_from_pid_file(self):
        p = self.portier()
        p.write_config(self.http(p.port, [location("= /new", ret="200 new-config")]))
        res = p.run("-c", p.conf_path, "-s", "reload")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.wait_body(p, "/new", b"new-config")
        self.assertTrue(p.alive())

    def test_s_stop_signals_master_from_pid_file(self):
        p = self.portier()
        res = p.run("-c", p.conf_path, "-s", "stop")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIsNotNone(p.wait_exit(10), "master still running after -s stop")

    # -- workers

    def test_killed_worker_is_respawned(self):
        p = self.portier()
        old = p.worker()
        os.kill(old, signal.SIGKILL)
        new = p.wait_workers(1, exclude={old})
        self.assertNotEqual(new[0], old)
        r = p.get("/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Backend"), "b1")

    def test_worker_processes_2_gives_two_workers(self):
        p = self.portier(main={"worker_processes": 2}, workers=2)
        time.sleep(0.3)  # no extra workers appear later
        self.assertEqual(len(p.worker_pids()), 2, p.worker_pids())

    @unittest.skipUnless(os.geteuid() == 0, "needs root")
    def test_workers_do_not_run_as_root(self):
        p = self.portier()
        self.assertEqual(harness.proc_uids(p.pid)[1], 0, "master should run as root here")
        for w in p.worker_pids():
            self.assertNotIn(0, harness.proc_uids(w), "worker %d has uid 0" % w)
        self.assertEqual(p.get("/").status, 200)

    # -- signals

    def test_term_stops_quickly(self):
        p = self.portier()
        idle = p.client()
        self.addCleanup(idle.close)
        self.assertEqual(idle.request("GET", "/").status, 200)
        busy = p.client()
        self.addCleanup(busy.close)
        busy.send(harness.build_request("GET", "/slow?ms=10000"))
        time.sleep(0.3)
        p.signal(signal.SIGTERM)
        self.assertIsNotNone(p.wait_exit(5), "master still running 5s after TERM")

    def test_quit_finishes_inflight_request_then_exits(self):
        p = self.portier()
        self.assertTrue(os.path.exists(p.pid_path))
        with p.client() as c:
            c.send(harness.build_request("GET", "/slow?ms=1500"))
            time.sleep(0.3)
            p.signal(signal.SIGQUIT)
            r = c.read_response(timeout=10)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Backend"), "b1")
        self.assertIsNotNone(p.wait_exit(10), "master still running after QUIT")
        self.assertFalse(os.path.exists(p.pid_path), "pid file left behind")

    def test_hup_reload_applies_new_config_and_inflight_request_completes(self):
        p = self.portier()
        with p.client() as c:
            c.send(harness.build_request("GET", "/slow?ms=1500"))
            time.sleep(0.3)
            p.write_config(self.http(p.port, [location("= /new", ret="200 new-config")]))
            p.signal(signal.SIGHUP)
            self.wait_body(p, "/new", b"new-config")
            r = c.read_response(timeout=10)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Backend"), "b1")

    def test_reload_with_invalid_config_logs_error_and_keeps_serving(self):
        p = self.portier()
        workers = p.worker_pids()
        start = harness.file_size(p.error_log)
        cfg = self.http(p.port, [location("= /new", ret="200 new-config")])
        cfg["bogus_directive"] = "1"
        p.write_config(cfg)
        p.signal(signal.SIGHUP)
        harness.wait_for_line(p.error_log, r"bogus_directive", timeout=5, start=start)
        self.assertTrue(p.alive())
        self.assertEqual(p.worker_pids(), workers)
        r = p.get("/new")
        self.assertEqual(r.header("X-Backend"), "b1", "new config applied despite the error")

    def test_no_failed_requests_across_five_reloads(self):
        p = self.portier()
        stop = threading.Event()
        stats = {"ok": 0, "retried": 0, "failed": []}
        lock = threading.Lock()
        threads = [threading.Thread(target=load_loop, args=(p.port, stop, stats, lock))
                   for _ in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            for _ in range(5):
                p.reload()
                time.sleep(0.3)
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        sys.stderr.write("\n  load across reloads: %d ok, %d retried on a closed keepalive connection\n"
                         % (stats["ok"], stats["retried"]))
        self.assertEqual(stats["failed"], [], "failed requests across reloads")
        self.assertGreater(stats["ok"], 50, stats)

    def test_usr1_reopens_logs(self):
        p = self.portier()
        p.get("/?before-usr1")
        harness.wait_for_line(p.access_log, r"before-usr1")
        os.rename(p.access_log, p.access_log + ".1")
        p.signal(signal.SIGUSR1)

        def marker_in_new_log():
            p.get("/?after-usr1")
            return "after-usr1" in harness.read_file(p.access_log)
        harness.wait_until(marker_in_new_log, 5, 0.2, "requests logged to a fresh access.log")
        self.assertNotIn("before-usr1", harness.read_file(p.access_log))


def load_loop(port, stop, stats, lock):
    """Loops GET / on keepalive connections.  Like browsers and curl, a request that
    fails on a reused connection before any response byte arrived is retried on a
    new one (the keepalive close race); anything else is a failure."""
    c, reused = None, False
    while not stop.is_set():
        try:
            if c is None:
                c, reused = harness.Client(port, timeout=5), False
            before = c.bytes_received
            if not c.send(harness.build_request("GET", "/")):
                raise ConnectionResetError("send failed")
            r = c.read_response(timeout=5)
        except (OSError, harness.ProtocolError, TimeoutError) as e:
            retry = reused and c is not None and c.bytes_received == before and not isinstance(e, TimeoutError)
            with lock:
                if retry:
                    stats["retried"] += 1
                else:
                    stats["failed"].append(repr(e))
            if c is not None:
                c.close()
            c = None
            continue
        with lock:
            if r.status == 200:
                stats["ok"] += 1
            else:
                stats["failed"].append("status %d" % r.status)
        if "close" in r.connection_tokens():
            c.close()
            c = None
        else:
            reused = True
    if c is not None:
        c.close()


if __name__ == "__main__":
    harness.main()
