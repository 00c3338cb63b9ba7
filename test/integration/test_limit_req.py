"""
limit_req, nginx's leaky bucket, counted in shared memory by every worker: with two
workers and requests sent at once on connections held by both, exactly as many pass, wait
and are refused as the arithmetic says; nodelay against delay; a delayed request waits on a
timer without blocking its worker and is freed when its client leaves; dry run only sets
$limit_req_status; limit_req_status and limit_req_log_level; PREACCESS before allow/deny;
an empty key is not counted; inheritance; and the same configuration side by side with
nginx.  Rates are per minute wherever counts must not depend on timing (nothing drains
during a test), and durations are only checked from below.
"""

import collections
import time

import harness
import nginx
from harness import build_request, location, server, upstream

LOG = "$status $limit_req_status $request_uri"


def statuses_of(lines):
    """Counts of (status, $limit_req_status) in access log lines of LOG's format."""
    return collections.Counter(tuple(line.split()[:2]) for line in lines)


class LimitReq(harness.TestCase):

    def start(self, zones, locations, workers=2, **http):
        """portier with limit_req_zone <zones>, a location "= /ping" answered by itself, and
        <locations>, whose proxy_pass "http://app" reaches a recorder; its access log in
        LOG's format."""
        self.rec = self.start_recorder("app")
        p = self.start_portier(start=False)
        conf = {"log_format": {"lim": LOG}, "access_log": "%s lim" % p.access_log,
                "limit_req_zone": zones, "upstream": {"app": upstream(self.rec.addr)}}
        conf.update(http)
        conf["server"] = [server(harness.free_port(),
                                 [location("= /ping", ret="200 pong")] + list(locations))]
        p.write_config(conf, main={"worker_processes": workers})
        p.start(workers=workers)
        return p

    def at_once(self, clients, path):
        """Sends GET <path> on every client before reading any answer: the statuses, in
        the order of <clients>."""
        for c in clients:
            self.assertTrue(c.send(build_request("GET", path)))
        return [c.read_response(timeout=20).status for c in clients]

    def logged(self, p, part, n):
        """The access log lines of requests whose URI has <part>, once there are <n>."""
        def probe():
            lines = [l for l in p.access_lines() if part in l.split()[-1]]
            return lines if len(lines) >= n else None
        return harness.wait_until(probe, 10.0, 0.05, "%d access log lines of %s" % (n, part))

    # -- counts, two workers

    def test_burst_counts_the_requests_of_both_workers_once(self):
        p = self.start(["$binary_remote_addr zone=one:1m rate=1r/m"],
                       [location("/", proxy_pass="http://app",
                                 limit_req="zone=one burst=5 nodelay")])
        first, second = p.clients_on_workers(12)
        mark = self.rec.mark()
        got = self.at_once(first + second, "/burst")
        # 1r/m: nothing drains during the test.  The first request finds an empty
        # bucket, each next one adds 1000 up to burst=5 (5000): 6 pass, 18 are refused.
        self.assertEqual(collections.Counter(got), {200: 6, 503: 18}, got)
        self.assertEqual(len(self.rec.since(mark)[0]), 6)
        lines = self.logged(p, "/burst", 24)
        self.assertEqual(statuses_of(lines), {("200", "PASSED"): 6, ("503", "REJECTED"): 18})
        for c in first + second:
            c.close()

    def test_delay_waits_and_nodelay_does_not(self):
        # 30r/m: 500 thousandths drain per second, so six requests sent within a second
        # find excess 0, ~1000, ~2000, ~3000, ~4000, ~5000 against burst=3 (3000).
        p = self.start(["$binary_remote_addr zone=d:1m rate=30r/m",
                        "$binary_remote_addr zone=n:1m rate=30r/m"],
                       [location("/delay/", proxy_pass="http://app",
                                 limit_req="zone=d burst=3 delay=1"),
                        location("/nodelay/", proxy_pass="http://app",
                                 limit_req="zone=n burst=3 nodelay")])
        first, second = p.clients_on_workers(3)
        clients = first + second
        start = time.monotonic()
        got = self.at_once(clients, "/delay/x")
        waited = time.monotonic() - start
        self.assertEqual(collections.Counter(got), {200: 4, 503: 2}, got)
        # delay=1: two pass at once, the next two wait (excess - 1000) / 500 s, about 2 s
        # and 4 s; the last two are over the burst.
        lines = self.logged(p, "/delay/", 6)
        self.assertEqual(statuses_of(lines), {("200", "PASSED"): 2, ("200", "DELAYED"): 2,
                                              ("503", "REJECTED"): 2})
        self.assertGreater(waited, 3.0, "the second delayed request waited about 4 s")
        got = self.at_once(clients, "/nodelay/x")
        self.assertEqual(collections.Counter(got), {200: 4, 503: 2}, got)
        lines = self.logged(p, "/nodelay/", 6)
        self.assertEqual(statuses_of(lines), {("200", "PASSED"): 4, ("503", "REJECTED"): 2})
        for c in clients:
            c.close()

    # -- a delayed request

    def test_delayed_request_does_not_block_its_worker(self):
        p = self.start(["$binary_remote_addr zone=one:1m rate=1r/m"],
                       [location("/", proxy_pass="http://app", limit_req="zone=one burst=5")],
                       workers=1)
        self.assertEqual(p.get("/first").status, 200)
        start = harness.file_size(p.error_log)
        with p.client() as waiting:
            self.assertTrue(waiting.send(build_request("GET", "/second")))
            harness.wait_for_line(p.error_log, r"\[warn\].*delaying request, excess: 1\.000, by "
                                  r'zone "one", client: 127\.0\.0\.1', start=start)
            # The one worker answers others while /second waits its 62.5 s.
            self.assertEqual(p.get("/ping").status, 200)
            self.assertFalse(waiting.wait_closed(0.2) or waiting.buf,
                             "the delayed request was answered early")

    def test_client_leaving_during_a_delay_ends_the_request(self):
        p = self.start(["$binary_remote_addr zone=one:1m rate=1r/m"],
                       [location("/", proxy_pass="http://app", limit_req="zone=one burst=5")])
        self.assertEqual(p.get("/first").status, 200)
        mark = self.rec.mark()
        start = harness.file_size(p.error_log)
        waiting = p.client()
        self.assertTrue(waiting.send(build_request("GET", "/left")))
        harness.wait_for_line(p.error_log, "delaying request", start=start)
        waiting.close()
        # Freed at once (its timer too), logged as 499, and nothing went upstream.
        harness.wait_for_line(p.access_log, r"^499 DELAYED /left$", timeout=10)
        harness.wait_for_line(p.error_log, "client prematurely closed connection while "
                              "delayed", start=start)
        self.assertEqual(self.rec.since(mark)[0], [])
        self.assertEqual(p.get("/ping").status, 200)

    # -- dry run, status, log level

    def test_dry_run_sets_the_variable_and_refuses_nothing(self):
        p = self.start(["$binary_remote_addr zone=one:1m rate=1r/m"],
                       [location("/", proxy_pass="http://app", limit_req="zone=one burst=2",
                                 limit_req_dry_run=True)])
        start = harness.file_size(p.error_log)
        mark = self.rec.mark()
        t0 = time.monotonic()
        got = [p.get("/dry").status for _ in range(5)]
        self.assertEqual(got, [200] * 5)
        self.assertLess(time.monotonic() - t0, 30, "a dry run must not delay (62.5 s each)")
        self.assertEqual(len(self.rec.since(mark)[0]), 5)
        # (Counted, not in order: two workers write the log.)
        self.assertEqual(statuses_of(self.logged(p, "/dry", 5)),
                         {("200", "PASSED"): 1, ("200", "DELAYED_DRY_RUN"): 2,
                          ("200", "REJECTED_DRY_RUN"): 2})
        harness.wait_for_line(p.error_log, r"\[warn\].*delaying request, dry run, excess: "
                              r'2\.000, by zone "one"', start=start)
        harness.wait_for_line(p.error_log, r"\[error\].*limiting requests, dry run, excess: "
                              r'3\.000 by zone "one"', start=start)

    def test_status_and_log_level(self):
        p = self.start(["$binary_remote_addr zone=one:1m rate=1r/m",
                        "$binary_remote_addr zone=two:1m rate=1r/m"],
                       [location("/refuse", proxy_pass="http://app", limit_req="zone=one",
                                 limit_req_status=429, limit_req_log_level="warn"),
                        location("/delay", proxy_pass="http://app", limit_req="zone=two burst=1",
                                 limit_req_log_level="warn", limit_req_dry_run=True)])
        start = harness.file_size(p.error_log)
        self.assertEqual(p.get("/refuse").status, 200)
        self.assertPortierError(p.get("/refuse"), 429)
        harness.wait_for_line(p.error_log, r"\[warn\].*limiting requests, excess: 1\.000 by zone "
                              r'"one", client: 127\.0\.0\.1, server: , request: "GET /refuse '
                              r'HTTP/1\.1", host: "localhost"', start=start)
        self.assertEqual([p.get("/delay").status for _ in range(2)], [200, 200])
        # One level below the refusals': notice.
        harness.wait_for_line(p.error_log, r'\[notice\].*delaying request, dry run, excess: '
                              r'1\.000, by zone "two"', start=start)

    # -- which requests count

    def test_limits_run_before_allow_and_deny(self):
        p = self.start(["$binary_remote_addr zone=one:1m rate=1r/m"],
                       [location("/", proxy_pass="http://app", limit_req="zone=one",
                                 deny="all")])
        # PREACCESS before ACCESS, as nginx: a denied request still counts, and the
        # next one is refused by the limit, not by the rule.
        self.assertPortierError(p.get("/a"), 403)
        self.assertPortierError(p.get("/a"), 503)

    def test_empty_key_is_not_counted(self):
        p = self.start(["$arg_k zone=one:1m rate=1r/m"],
                       [location("/", proxy_pass="http://app", limit_req="zone=one")])
        self.assertEqual([p.get("/free").status for _ in range(4)], [200] * 4)
        self.assertEqual([p.get("/free?k=x").status for _ in range(2)], [200, 503])
        self.assertEqual(statuses_of(self.logged(p, "/free", 6)),
                         {("200", "-"): 4, ("200", "PASSED"): 1, ("503", "REJECTED"): 1})

    def test_level_with_its_own_limits_does_not_inherit(self):
        p = self.start(["$binary_remote_addr zone=outer:1m rate=1r/m",
                        "$binary_remote_addr zone=inner:1m rate=1r/m"],
                       [location("/inherits/", proxy_pass="http://app"),
                        location("/own/", proxy_pass="http://app",
                                 limit_req="zone=inner burst=10 nodelay")],
                       limit_req="zone=outer")
        self.assertEqual([p.get("/own/x").status for _ in range(4)], [200] * 4)
        self.assertEqual([p.get("/inherits/x").status for _ in range(2)], [200, 503])

    def test_error_page_does_not_count_the_request_again(self):
        p = self.start(["$binary_remote_addr zone=one:1m rate=1r/m"],
                       [location("/", proxy_pass="http://app", limit_req="zone=one",
                                 error_page="503 /sorry"),
                        location("= /sorry", proxy_pass="http://app", limit_req="zone=one")])
        self.assertEqual(p.get("/x").status, 200)
        mark = self.rec.mark()
        r = p.get("/x")
        self.assertEqual((r.status, r.body), (503, b"ok\n"))
        self.assertEqual([q.target for q in self.rec.since(mark)[0]], ["/sorry"])

    def reload(self, p):
        """HUP, and the old workers gone (they use the previous zone until then)."""
        old = p.worker_pids()
        p.reload()
        harness.wait_until(lambda: not any(harness.pid_alive(w) for w in old), 10.0, 0.05,
                           "the old workers to exit")

    def test_zone_keeps_its_counts_across_a_reload_unless_its_key_changes(self):
        loc = [location("/", proxy_pass="http://app", limit_req="zone=one burst=1 nodelay")]
        p = self.start(["$binary_remote_addr zone=one:1m rate=1r/m"], loc, workers=1)
        self.assertEqual([p.get("/r").status for _ in range(3)], [200, 200, 503])
        self.reload(p)
        self.assertEqual(p.get("/r").status, 503, "the new workers count on")
        start = harness.file_size(p.error_log)
        conf = p.text.replace('"$binary_remote_addr zone=one', '"$remote_addr zone=one')
        p.write_config(text=conf)
        self.reload(p)
        harness.wait_for_line(p.error_log, r'limit_req_zone "one" now uses the key '
                              r'"\$remote_addr": it starts empty', start=start)
        self.assertEqual([p.get("/r").status for _ in range(3)], [200, 200, 503])


# nginx and portier on the same limits, requests one at a time.  Each case: a location in
# nginx's syntax, the same in portier's settings, and requests with the status and
# $limit_req_status (X-Limit, "" when it has no value) each should get.
ZONES = [("$binary_remote_addr", "a"), ("$binary_remote_addr", "b"), ("$binary_remote_addr", "c"),
         ("$arg_a", "d"), ("$arg_b", "e"), ("$binary_remote_addr", "f"),
         ("$binary_remote_addr", "g"), ("$arg_k", "h")]

CASES = [
    ("location /burst/ { limit_req zone=a burst=2 nodelay; proxy_pass http://rec; }",
     ("/burst/", {"limit_req": "zone=a burst=2 nodelay", "proxy_pass": "http://rec"}),
     [("/burst/", 200, "PASSED")] * 3 + [("/burst/", 503, "REJECTED")]),
    ("location /deny/ { limit_req zone=b; deny all; proxy_pass http://rec; }",
     ("/deny/", {"limit_req": "zone=b", "deny": "all", "proxy_pass": "http://rec"}),
     [("/deny/", 403, "PASSED"), ("/deny/", 503, "REJECTED")]),
    ("location /ep/ { limit_req zone=c; error_page 503 /sorry; proxy_pass http://rec; }\n"
     "location = /sorry { limit_req zone=c; proxy_pass http://rec; }",
     ("/ep/", {"limit_req": "zone=c", "error_page": "503 /sorry", "proxy_pass": "http://rec"}),
     [("/ep/", 200, "PASSED"), ("/ep/", 503, "REJECTED"), ("/ep/", 503, "REJECTED")]),
    ("location /two/ { limit_req zone=d burst=1 nodelay; limit_req zone=e nodelay; "
     "proxy_pass http://rec; }",
     ("/two/", {"limit_req": ["zone=d burst=1 nodelay", "zone=e nodelay"],
                "proxy_pass": "http://rec"}),
     [("/two/?a=1&b=1", 200, "PASSED"), ("/two/?a=1&b=1", 503, "REJECTED"),
      ("/two/?a=1&b=2", 200, "PASSED"), ("/two/?a=1&b=3", 503, "REJECTED"),
      ("/two/?a=2", 200, "PASSED"), ("/two/?a=&b=", 200, "")]),
    ("location /dry/ { limit_req zone=f burst=1; limit_req_dry_run on; proxy_pass http://rec; }",
     ("/dry/", {"limit_req": "zone=f burst=1", "limit_req_dry_run": True,
                "proxy_pass": "http://rec"}),
     [("/dry/", 200, "PASSED"), ("/dry/", 200, "DELAYED_DRY_RUN"),
      ("/dry/", 200, "REJECTED_DRY_RUN"), ("/dry/", 200, "REJECTED_DRY_RUN")]),
    ("location /s429/ { limit_req zone=g; limit_req_status 429; proxy_pass http://rec; }",
     ("/s429/", {"limit_req": "zone=g", "limit_req_status": 429, "proxy_pass": "http://rec"}),
     [("/s429/", 200, "PASSED"), ("/s429/", 429, "REJECTED")]),
    ("location /empty/ { limit_req zone=h; proxy_pass http://rec; }",
     ("/empty/", {"limit_req": "zone=h", "proxy_pass": "http://rec"}),
     [("/empty/", 200, "")] * 3 + [("/empty/?k=1", 200, "PASSED"), ("/empty/?k=1", 503, "REJECTED")]),
]


class LimitReqBesideNginx(harness.TestCase):

    def test_same_answers_as_nginx(self):
        rec = self.start_recorder("rec")
        nport, pport = harness.free_port(), harness.free_port()
        header = "add_header X-Limit $limit_req_status always;"
        zones = "\n".join("limit_req_zone %s zone=%s:1m rate=1r/m;" % z for z in ZONES)
        ngx = nginx.Nginx(nport, "%s\nupstream rec { server %s; }\nserver { listen 127.0.0.1:%d; "
                          "%s\n%s\n}" % (zones, rec.addr, nport, header,
                                         "\n".join(c[0] for c in CASES)))
        self.addCleanup(ngx.stop)
        locs = [location(path, **d) for _, (path, d), _ in CASES]
        locs.append(location("= /sorry", limit_req="zone=c", proxy_pass="http://rec"))
        self.start_portier({
            "limit_req_zone": ["%s zone=%s:1m rate=1r/m" % z for z in ZONES],
            "upstream": {"rec": upstream(rec.addr)},
            "server": [server(pport, locs, add_header="X-Limit $limit_req_status always")],
        }, main={"worker_processes": 2}, workers=2)
        for _, _, requests in CASES:
            for path, status, limit in requests:
                got = []
                for port in (nport, pport):
                    r = harness.http_request(port, "GET", path)
                    got.append((r.status, r.header("X-Limit") or ""))
                self.assertEqual(got[0], (status, limit), "nginx on %s" % path)
                self.assertEqual(got[1], got[0], "portier on %s, against nginx" % path)


if __name__ == "__main__":
    harness.main()
