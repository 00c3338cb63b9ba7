"""
Active health checks run by the helper process, the status JSON every worker
serves from shared memory, and runtime control through it: a killed backend is
marked down after `fall` failed checks while GETs see no error, comes back after
`rise` passed ones, every worker reports the same state, draining stops new
requests while those in flight finish, and changes survive a reload.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import harness
from harness import build_request, location, server, upstream

INTERVAL_MS = 200
FALL, RISE = 2, 3


def check(**opts):
    o = {"interval": "%dms" % INTERVAL_MS, "timeout": "%dms" % INTERVAL_MS, "fall": FALL,
         "rise": RISE}
    o.update(opts)
    return " ".join(k if v is True else "%s=%s" % (k, v) for k, v in o.items())


class HealthChecks(harness.TestCase):

    def start_lb(self, backends, workers=2, status="write", extra_locations=(), **ups):
        port = harness.free_port()
        self.http = {
            "upstream": {"app": upstream(*[b.addr for b in backends], **ups)},
            "server": [server(port, list(extra_locations) + [
                location("= /status", status=status),
                location("/", proxy_pass="http://app")])],
        }
        return self.start_portier(self.http, main={"worker_processes": workers}, workers=workers)

    def status(self, p, client=None):
        r = client.request("GET", "/status") if client else p.get("/status")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "application/json")
        return json.loads(r.body)

    def servers(self, p, client=None):
        return {s["server"]: s for s in self.status(p, client)["upstreams"]["app"]["servers"]}

    def post(self, p, body):
        return harness.http_request(p.port, "POST", "/status", body=body.encode(),
                                    headers=[("Content-Type",
                                              "application/x-www-form-urlencoded")])

    def wait_state(self, p, addr, state, timeout):
        return harness.wait_until(
            lambda: self.servers(p)[addr]["state"] == state and self.servers(p)[addr],
            timeout, 0.02, "%s to be %s" % (addr, state))

    def views_of_every_worker(self, p, n):
        """{worker pid: {server: (state, weight)}} from a status answer of each of the <n>
        workers.  Which worker accepts a connection is the kernel's choice (on a busy
        machine one may take them all), so every other worker is stopped (SIGSTOP: out of
        epoll_wait) while one worker's connection is made."""
        pids = p.worker_pids()
        self.assertEqual(len(pids), n)
        seen = {}
        for pid in pids:
            with p.only_worker(pid):
                with p.client() as c:
                    doc = json.loads(c.request("GET", "/status").body)
            seen[doc["pid"]] = {s["server"]: (s["state"], s["weight"])
                                for s in doc["upstreams"]["app"]["servers"]}
        return seen

    def helper_pids(self, p):
        return [k for k in harness.children(p.pid) if "helper" in harness.proc_title(k)]

    # -- checks

    def test_a_killed_backend_is_down_after_fall_checks_and_gets_no_get_errors(self):
        b1, b2, b3 = (self.start_backend("b%d" % i) for i in (1, 2, 3))
        p = self.start_lb([b1, b2, b3], health_check=check())
        self.wait_state(p, b2.addr, "up", 5.0)
        with harness.Load(p.port, clients=8) as load:
            time.sleep(0.3)
            start = harness.file_size(p.error_log)
            b2.proc.kill()
            b2.proc.wait()
            # Passive health may see the failures first; the checks must reach it too.
            down = harness.wait_until(
                lambda: self.servers(p)[b2.addr]["health_check"]["status"] == "down" and
                self.servers(p)[b2.addr], (FALL + 2) * INTERVAL_MS / 1000 + 3, 0.02,
                "the checks to mark %s down" % b2.addr)
            time.sleep(0.3)
        self.assertEqual(load.failures, [], "GETs failed while a backend died")
        self.assertGreater(load.ok, 50)
        self.assertEqual(down["down_reason"], "health checks")
        self.assertEqual(down["health_check"]["status"], "down")
        self.assertEqual(down["health_check"]["last_result"], "connect refused")
        # Down at the fall-th failure in a row, not before or after.
        line = harness.wait_for_line(p.error_log, r"upstream app server %s is down" % b2.addr,
                                     start=start)
        self.assertIn("(%d failed checks: connect refused)" % FALL, line)
        # Traffic avoids it from then on: the others serve everything.
        for _ in range(10):
            self.assertIn(p.get("/").header("X-Backend"), ("b1", "b3"))

    def test_a_backend_comes_back_after_rise_passed_checks(self):
        b1, b2 = self.start_backend("b1"), self.start_backend("b2")
        p = self.start_lb([b1, b2], health_check=check())
        self.wait_state(p, b2.addr, "up", 5.0)
        b2.stop()
        self.wait_state(p, b2.addr, "down", 5.0)
        start = harness.file_size(p.error_log)
        b2.start()
        up = self.wait_state(p, b2.addr, "up", (RISE + 2) * INTERVAL_MS / 1000 + 3)
        self.assertGreaterEqual(up["health_check"]["passes_in_a_row"], RISE)
        line = harness.wait_for_line(p.error_log, r"upstream app server %s is up" % b2.addr,
                                     start=start)
        self.assertIn("(%d passed checks: 200 OK)" % RISE, line)
        seen = {p.get("/").header("X-Backend") for _ in range(6)}
        self.assertEqual(seen, {"b1", "b2"})

    def test_http_check_judges_status_and_body(self):
        b1, b2 = self.start_backend("b1"), self.start_backend("b2")
        # Only b1's hello body matches: b2 answers 200 but fails the check.
        p = self.start_lb([b1, b2], health_check=check(body="b1$"))
        s = self.wait_state(p, b2.addr, "down", 5.0)
        self.assertEqual(s["health_check"]["last_result"], "200, body does not match")
        # Until the old generation has seen its QUIT, it may still take a connection and
        # answer from the configuration without b1.
        back = harness.wait_until(lambda: self.servers(p).get(b1.addr), 5.0, 0.05, "b1 listed")
        self.assertEqual(back["state"], "up")
        self.assertEqual({p.get("/").header("X-Backend") for _ in range(6)}, {"b1"})

    def test_http_check_status_outside_the_range_fails(self):
        b1 = self.start_backend("b1")
        b2 = self.start_backend("b2")
        p = self.start_lb([b1, b2], health_check=check(uri="/status?code=503"))
        s = self.wait_state(p, b1.addr, "down", 5.0)
        self.assertEqual(s["health_check"]["last_result"], "503 Service Unavailable")
        # Every server down: the group still answers, with portier's 502.
        self.wait_state(p, b2.addr, "down", 5.0)
        self.assertPortierError(p.get("/"), 502)

    def test_tcp_check_passes_on_connect(self):
        b1, b2 = self.start_backend("b1"), self.start_backend("b2")
        p = self.start_lb([b1, b2], health_check=check(type="tcp"))
        s = self.wait_state(p, b1.addr, "up", 5.0)
        self.assertEqual(s["health_check"]["last_result"], "connected")
        b1.stop()
        s = self.wait_state(p, b1.addr, "down", 5.0)
        self.assertEqual(s["health_check"]["last_result"], "connect refused")

    def tls_origin(self, name):
        """A portier terminating TLS on 127.0.0.1 that answers "<name> ok": an https
        backend for the checks to reach."""
        d = tempfile.mkdtemp(prefix="pt-it-tls-")
        self.addCleanup(shutil.rmtree, d, True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=origin.test", "-keyout", os.path.join(d, "o.key"),
                        "-out", os.path.join(d, "o.crt")], check=True, capture_output=True)
        os.chmod(d, 0o755)
        os.chmod(os.path.join(d, "o.key"), 0o644)
        port = harness.free_port()
        origin = self.start_portier({"server": [server(port, [
            location("/", ret="200 %s ok" % name)], listen=["127.0.0.1:%d ssl" % port],
            ssl_certificate=os.path.join(d, "o.crt"),
            ssl_certificate_key=os.path.join(d, "o.key"))]})
        return origin, "127.0.0.1:%d" % port

    def test_tls_checks_reach_https_backends(self):
        origin, addr = self.tls_origin("o1")
        plain = self.start_backend("plain")
        port = harness.free_port()
        p = self.start_portier({
            "upstream": {"app": upstream(addr, plain.addr, health_check=check(tls=True,
                                                                               body="ok$"))},
            "server": [server(port, [location("= /status", status=True),
                                     location("/", proxy_pass="http://app")])],
        })
        up = self.wait_state(p, addr, "up", 5.0)
        self.assertEqual(up["health_check"]["last_result"], "200 OK")
        # A backend that does not speak TLS fails the TLS check (pt-backend waits for the
        # end of a request head that never comes: the handshake times out).
        down = self.wait_state(p, plain.addr, "down", 5.0)
        self.assertEqual(down["health_check"]["last_result"], "TLS handshake timeout")
        origin.stop()
        self.wait_state(p, addr, "down", 5.0)

    def test_mandatory_keeps_a_server_out_until_its_first_pass(self):
        b1, b2 = self.start_backend("b1"), self.start_backend("b2")
        p = self.start_lb([b1, b2], health_check=check(body="b1$", mandatory=True,
                                                       interval="1s"))
        # Before any result, b2 is "checking" and takes nothing.
        first = self.servers(p)[b2.addr]
        self.assertIn(first["state"], ("checking", "down"))
        self.assertEqual({p.get("/").header("X-Backend") for _ in range(6)}, {"b1"})

    def test_checks_run_once_in_one_unprivileged_helper(self):
        b1, b2 = self.start_backend("b1"), self.start_backend("b2")
        p = self.start_lb([b1, b2], workers=4, health_check=check(interval="500ms"))
        helpers = harness.wait_until(lambda: self.helper_pids(p), 5.0, 0.05, "the helper")
        self.assertEqual(len(helpers), 1)
        if os.geteuid() == 0:
            self.assertNotEqual(harness.proc_uids(helpers[0])[0], 0)
        # One check per interval per server, not one per worker: over ~2 s, about 4.
        before = b1.count()[0]
        time.sleep(2.0)
        checks = b1.count()[0] - before
        self.assertGreaterEqual(checks, 2)
        self.assertLessEqual(checks, 6)
        # A dead helper is replaced; a reload replaces it too.
        os.kill(helpers[0], signal.SIGKILL)
        again = harness.wait_until(lambda: [h for h in self.helper_pids(p) if h != helpers[0]],
                                   5.0, 0.05, "a new helper")
        p.reload()
        harness.wait_until(lambda: [h for h in self.helper_pids(p) if h not in again],
                           5.0, 0.05, "the next generation's helper")
        harness.wait_until(lambda: len(self.helper_pids(p)) == 1, 5.0, 0.05, "one helper")

    def test_no_helper_without_periodic_work(self):
        b1 = self.start_backend("b1")
        p = self.start_lb([b1])
        time.sleep(0.3)
        self.assertEqual(self.helper_pids(p), [])

    # -- status and control

    def test_every_worker_reports_the_same_state(self):
        b1, b2, b3 = (self.start_backend("b%d" % i) for i in (1, 2, 3))
        p = self.start_lb([b1, b2, b3], workers=4, health_check=check())
        b3.stop()
        self.wait_state(p, b3.addr, "down", 5.0)
        self.assertEqual(self.post(p, "upstream=app&server=%s&state=drain" % b1.addr).status,
                         200)
        self.assertEqual(self.post(p, "upstream=app&server=%s&weight=7" % b2.addr).status, 200)
        seen = self.views_of_every_worker(p, 4)
        self.assertEqual(sorted(seen), sorted(p.worker_pids()))
        want = {b1.addr: ("draining", 1), b2.addr: ("up", 7), b3.addr: ("down", 1)}
        for pid, view in seen.items():
            self.assertEqual(view, want, "worker %d" % pid)

    def test_drain_stops_new_requests_while_in_flight_ones_finish(self):
        b1, b2 = self.start_backend("b1"), self.start_backend("b2")
        p = self.start_lb([b1, b2])
        slow = []
        for _ in range(2):
            c = p.client()
            self.addCleanup(c.close)
            self.assertTrue(c.send(build_request("GET", "/slow?ms=1500")))
            slow.append(c)
        harness.wait_until(lambda: self.servers(p)[b1.addr]["active"] == 1, 5.0, 0.02,
                           "a slow request on b1")
        r = self.post(p, "upstream=app&server=%s&state=drain" % b1.addr)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(json.loads(r.body)["state"], "draining")
        self.assertEqual({p.get("/").header("X-Backend") for _ in range(8)}, {"b2"})
        answers = sorted(c.read_response().header("X-Backend") for c in slow)
        self.assertEqual(answers, ["b1", "b2"])
        self.assertEqual(self.servers(p)[b1.addr]["active"], 0)
        self.assertEqual(self.post(p, "upstream=app&server=%s&state=up" % b1.addr).status, 200)
        self.assertEqual({p.get("/").header("X-Backend") for _ in range(8)}, {"b1", "b2"})

    def test_runtime_changes_survive_a_reload_while_the_server_exists(self):
        b1, b2 = self.start_backend("b1"), self.start_backend("b2")
        p = self.start_lb([b1, b2])
        self.assertEqual(self.post(p, "upstream=app&server=%s&state=down" % b1.addr).status, 200)
        self.assertEqual(self.post(p, "upstream=app&server=%s&weight=4" % b2.addr).status, 200)
        p.reload()
        s = self.servers(p)
        self.assertEqual((s[b1.addr]["state"], s[b1.addr]["down_reason"]), ("down", "api"))
        self.assertEqual(s[b2.addr]["weight"], 4)
        self.assertEqual({p.get("/").header("X-Backend") for _ in range(6)}, {"b2"})
        # Removed, then added back: it starts as configured.
        only_b2 = dict(self.http, upstream={"app": upstream(b2.addr)})
        for http in (only_b2, self.http):
            p.wait_workers(2)  # the previous generation has drained
            p.write_config(http, main={"worker_processes": 2})
            p.reload()
        # Until the old generation has seen its QUIT, it may still take a connection and
        # answer from the configuration without b1.
        back = harness.wait_until(lambda: self.servers(p).get(b1.addr), 5.0, 0.05, "b1 listed")
        self.assertEqual(back["state"], "up")

    def test_reset_returns_to_the_configuration(self):
        b1, b2 = self.start_backend("b1"), self.start_backend("b2")
        p = self.start_lb([b1, b2])
        self.post(p, "upstream=app&server=%s&state=down&weight=9" % b1.addr)
        r = self.post(p, "upstream=app&server=%s&state=reset&weight=0" % b1.addr)
        doc = json.loads(r.body)
        self.assertEqual((doc["state"], doc["weight"]), ("up", 1))

    def test_a_change_posted_from_another_site_s_page_is_refused(self):
        b1 = self.start_backend("b1")
        p = self.start_lb([b1, self.start_backend("b2")])
        body = ("upstream=app&server=%s&state=down" % b1.addr).encode()
        form = ("Content-Type", "application/x-www-form-urlencoded")
        here = "http://localhost"  # the Host the test client sends
        for headers in ([("Sec-Fetch-Site", "cross-site")], [("Sec-Fetch-Site", "same-site")],
                        [("Origin", "http://evil.example")], [("Origin", here + ":1")]):
            r = harness.http_request(p.port, "POST", "/status", body=body,
                                     headers=[form] + headers)
            self.assertEqual(r.status, 403, headers)
            self.assertIn("another site", json.loads(r.body)["error"])
        self.assertEqual(self.servers(p)[b1.addr]["state"], "up")
        # The dashboard's own POST: same origin.
        r = harness.http_request(p.port, "POST", "/status", body=body,
                                 headers=[form, ("Sec-Fetch-Site", "same-origin"),
                                          ("Origin", here)])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.servers(p)[b1.addr]["state"], "down")

    def test_control_errors_are_clear(self):
        b1 = self.start_backend("b1")
        p = self.start_lb([b1, self.start_backend("b2")])
        cases = [
            ("upstream=nope&server=%s&state=down" % b1.addr, 404, "no upstream"),
            ("upstream=app&server=127.0.0.1:1&state=down", 404, "no server"),
            ("upstream=app&server=%s&state=sleepy" % b1.addr, 400, "invalid state"),
            ("upstream=app&server=%s&weight=-3" % b1.addr, 400, "invalid weight"),
            ("upstream=app&server=%s" % b1.addr, 400, "nothing to change"),
            ("upstream=app&color=red", 400, "unknown parameter"),
        ]
        for body, status, text in cases:
            r = self.post(p, body)
            self.assertEqual(r.status, status, (body, r))
            self.assertIn(text, json.loads(r.body)["error"], body)
        r = harness.http_request(p.port, "DELETE", "/status")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("Allow"), "GET, HEAD, POST")

    def test_read_only_status_refuses_changes_and_deny_refuses_all(self):
        b1 = self.start_backend("b1")
        p = self.start_lb([b1, self.start_backend("b2")], status=True, extra_locations=[
            location("= /status/private", status="write", deny="all")])
        r = self.post(p, "upstream=app&server=%s&state=down" % b1.addr)
        self.assertEqual(r.status, 403)
        self.assertIn("read-only", json.loads(r.body)["error"])
        # Until the old generation has seen its QUIT, it may still take a connection and
        # answer from the configuration without b1.
        back = harness.wait_until(lambda: self.servers(p).get(b1.addr), 5.0, 0.05, "b1 listed")
        self.assertEqual(back["state"], "up")
        self.assertEqual(p.get("/status/private").status, 403)

    def test_status_filters_one_upstream_and_escapes_nothing_wrong(self):
        b1 = self.start_backend("b1")
        p = self.start_lb([b1, self.start_backend("b2")])
        doc = json.loads(p.get("/status?upstream=app").body)
        self.assertEqual(list(doc["upstreams"]), ["app"])
        self.assertEqual(doc["upstreams"]["app"]["method"], "round_robin")
        doc = json.loads(p.get("/status?upstream=other").body)
        self.assertEqual(doc["upstreams"], {})

    def test_bad_health_check_is_a_config_error_with_its_line(self):
        p = self.start_portier({
            "upstream": {"app": upstream("127.0.0.1:1", "127.0.0.1:2",
                                         health_check="interval=fast")},
            "server": [server(harness.free_port(), [location("/", proxy_pass="http://app")])],
        }, start=False)
        res = p.run("-t", "-c", p.conf_path)
        self.assertEqual(res.returncode, 1)
        self.assertRegex(res.stderr.decode(), r"portier\.conf:\d+: invalid interval \"fast\" in \"health_check\"")


if __name__ == "__main__":
    harness.main()
