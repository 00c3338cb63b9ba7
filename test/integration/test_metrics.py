"""
Metrics: counters and histograms in shared memory, read out by a `metrics` location in
Prometheus's text format (and OpenMetrics when asked).  After requests of known outcomes
spread over two workers and across a reload, every counter equals what was sent.
"""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import zlib

import harness
from harness import location, server, upstream
from httpclient import build_request
from test_upgrade import UpgradeCase

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, frozenset(labels)): value} of every sample of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m is None:
            raise AssertionError("not a sample line: %r" % line)
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


class Exchange:
    """Requests made and the bytes each way, to compare with the counters."""

    def __init__(self):
        self.by_class = {}
        self.bytes_in = 0
        self.bytes_out = 0
        self.n = 0

    def request(self, client, method, path, body=None):
        raw = build_request(method, path, body=body)
        client.send(raw)
        r = client.read_response(method)
        self.by_class[r.status // 100] = self.by_class.get(r.status // 100, 0) + 1
        self.bytes_in += len(raw)
        self.bytes_out += len(r.head) + len(r.body)
        self.n += 1
        return r


class Metrics(harness.TestCase):

    def start(self, workers=1, locations=(), http=None, servers=()):
        """Portier with a server app.test of the locations used here and <locations>, a
        server scrape.test on another port answering /metrics, and <servers>."""
        self.dead = harness.free_port()
        self.port = harness.free_port()
        self.scrape_port = harness.free_port()
        h = dict(http or {})
        h["server"] = [
            server(self.port, [
                location("/ping", ret="200 pong"),
                location("/ok", ret="200 hello", status_zone="ok"),
                location("/missing", ret="404"),
                location("/dead", proxy_pass="http://127.0.0.1:%d" % self.dead,
                         status_zone="dead"),
            ] + list(locations), names=["app.test"]),
            server(self.scrape_port, [location("/metrics", metrics=True)],
                   names=["scrape.test"]),
        ] + list(servers)
        return self.start_portier(h, main={"worker_processes": workers}, workers=workers)

    def scrape(self, p, accept=None):
        headers = {"Accept": accept} if accept else {}
        r = harness.http_request(self.scrape_port, "GET", "/metrics", headers=headers)
        self.assertEqual(r.status, 200)
        return r

    def samples(self, p):
        return parse(self.scrape(p).body.decode())

    def samples_when(self, p, name, at_least, **labels):
        """The samples once <name>{<labels>} reached <at_least>: a worker counts a request
        once its answer went out, so the last one may still be on its way when the client
        has it."""
        def probe():
            s = self.samples(p)
            return s if value(s, name, **labels) >= at_least else None
        return harness.wait_until(probe, 5.0, 0.05, "%s to reach %d" % (name, at_least))

    def outcomes(self, ex, client, k):
        """<k> rounds of a 200 with a body sent, a 200, a 404 and a 502 on <client>."""
        for i in range(k):
            self.assertEqual(ex.request(client, "POST", "/ok", body=b"x" * (100 + i)).status, 200)
            self.assertEqual(ex.request(client, "GET", "/ok?i=%d" % i).status, 200)
            self.assertEqual(ex.request(client, "GET", "/missing").status, 404)
            self.assertEqual(ex.request(client, "GET", "/dead").status, 502)

    def assert_histogram(self, s, name, count, **labels):
        buckets = sorted(((float(dict(l)["le"]), v) for (n, l), v in s.items()
                          if n == name + "_bucket" and dict(l).items() - {("le", dict(l)["le"])}
                          == labels.items()), key=lambda b: b[0])
        self.assertEqual(len(buckets), 13)
        self.assertEqual([b[0] for b in buckets],
                         [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                          float("inf")])
        counts = [b[1] for b in buckets]
        self.assertEqual(counts, sorted(counts), "buckets are cumulative")
        self.assertEqual(counts[-1], count)
        self.assertEqual(value(s, name + "_count", **labels), count)
        total = value(s, name + "_sum", **labels)
        self.assertGreaterEqual(total, 0)
        self.assertLess(total, count * 10.0)

    def test_counters_equal_requests_sent_over_two_workers_and_a_reload(self):
        p = self.start(workers=2)
        ping = Exchange()  # what clients_on_workers sends, measured on a client of our own
        with p.client() as c:
            ping.request(c, "GET", "/ping")
        ex = Exchange()
        groups = p.clients_on_workers(2)
        try:
            for clients in groups:
                for c in clients:
                    self.outcomes(ex, c, 3)
        finally:
            for c in [c for cs in groups for c in cs]:
                c.close()
        old = set(p.worker_pids())
        p.reload()
        # A connection the old generation takes before its QUIT is closed after one answer.
        harness.wait_until(lambda: not old & set(p.worker_pids()), 10.0, 0.02,
                           "the old workers to exit")
        for _ in range(2):
            with p.client() as c:
                self.outcomes(ex, c, 2)

        pings = 1 + sum(len(g) for g in groups)
        srv = {"server": "app.test"}
        s = self.samples_when(p, "portier_server_request_duration_seconds_count", ex.n + pings,
                              **srv)
        self.assertEqual(value(s, "portier_server_requests_total", code="2xx", **srv),
                         ex.by_class[2] + pings)
        self.assertEqual(value(s, "portier_server_requests_total", code="4xx", **srv),
                         ex.by_class[4])
        self.assertEqual(value(s, "portier_server_requests_total", code="5xx", **srv),
                         ex.by_class[5])
        for code in ("1xx", "3xx"):
            self.assertEqual(value(s, "portier_server_requests_total", code=code, **srv), 0)
        self.assertEqual(value(s, "portier_server_received_bytes_total", **srv),
                         ex.bytes_in + pings * ping.bytes_in)
        self.assertEqual(value(s, "portier_server_sent_bytes_total", **srv),
                         ex.bytes_out + pings * ping.bytes_out)
        self.assert_histogram(s, "portier_server_request_duration_seconds", ex.n + pings, **srv)

        self.assertEqual(value(s, "portier_location_requests_total", location="ok", code="2xx"),
                         ex.by_class[2])
        self.assertEqual(value(s, "portier_location_requests_total", location="dead",
                               code="5xx"), ex.by_class[5])
        self.assert_histogram(s, "portier_location_request_duration_seconds", ex.by_class[2],
                              location="ok")
        self.assertEqual(value(s, "portier_config_loads_total"), 1)
        self.assertEqual(value(s, "portier_worker_starts_total"), 4)

    def test_a_worker_that_died_and_was_replaced_counts_as_a_restart(self):
        p = self.start(workers=2)
        victim = p.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        p.wait_workers(2, exclude=[victim])
        s = harness.wait_until(
            lambda: (lambda s: s if value(s, "portier_worker_starts_total") == 3 else None)(
                self.samples(p)), 5.0, 0.05, "the new worker to count its start")
        self.assertEqual(value(s, "portier_worker_restarts_total"), 1)

    def test_connections_are_counted_as_stub_status_counts_them(self):
        p = self.start(workers=2)
        groups = p.clients_on_workers(2)  # 4 connections held open, one request each
        try:
            s = self.samples(p)
            # The scrape's own connection is open too, writing its answer.
            self.assertEqual(value(s, "portier_connections", state="active"), 5)
            self.assertEqual(value(s, "portier_connections", state="writing"), 1)
            self.assertEqual(value(s, "portier_connections", state="waiting"), 4)
            self.assertEqual(value(s, "portier_connections", state="reading"), 0)
            self.assertEqual(value(s, "portier_connections_accepted_total"), 5)
            self.assertEqual(value(s, "portier_connections_handled_total"), 5)
            self.assertEqual(value(s, "portier_http_requests_total"), 5)
        finally:
            for c in [c for cs in groups for c in cs]:
                c.close()

    def test_upstream_servers_count_tries_failures_and_retries(self):
        alive = self.start_backend("alive")
        dead = harness.free_port()
        p = self.start(workers=2, locations=[location("/", proxy_pass="http://app")], http={
            "upstream": {"app": upstream(alive.addr, "127.0.0.1:%d" % dead, keepalive=4)}})
        n = 10
        for i in range(n):
            self.assertEqual(p.get("/?i=%d" % i).status, 200)
        for i in range(3):
            self.assertEqual(p.get("/dead").status, 502)

        a = {"upstream": "app", "peer": alive.addr}
        s = self.samples_when(p, "portier_server_request_duration_seconds_count", n + 3,
                              server="app.test")
        d = {"upstream": "app", "peer": "127.0.0.1:%d" % dead}
        self.assertEqual(value(s, "portier_upstream_requests_total", **a), n)
        self.assertEqual(value(s, "portier_upstream_responses_total", code="2xx", **a), n)
        tried_dead = value(s, "portier_upstream_requests_total", **d)
        self.assertGreaterEqual(tried_dead, 1)
        self.assertEqual(value(s, "portier_upstream_failures_total", kind="connect", **d),
                         tried_dead)
        self.assertEqual(value(s, "portier_upstream_retries_total", **a), tried_dead)
        self.assertEqual(value(s, "portier_upstream_responses_total", code="2xx", **d), 0)
        for h in ("connect", "header", "response"):
            self.assert_histogram(s, "portier_upstream_%s_duration_seconds" % h, n, **a)
        self.assertEqual(value(s, "portier_upstream_peer_state", state="up", **a), 1)
        self.assertEqual(value(s, "portier_upstream_active_connections", **a), 0)
        # Sequential requests: one kept-alive connection in the pool of each worker used.
        self.assertIn(value(s, "portier_upstream_idle_connections", **a), (1, 2))
        self.assertEqual(value(s, "portier_upstream_idle_connections", **d), 0)

        implicit = {"upstream": "127.0.0.1:%d" % self.dead, "peer": "127.0.0.1:%d" % self.dead}
        self.assertEqual(value(s, "portier_upstream_requests_total", **implicit), 3)
        self.assertEqual(value(s, "portier_upstream_failures_total", kind="connect", **implicit),
                         3)
        self.assertEqual(value(s, "portier_upstream_retries_total", **implicit), 0)

    def test_compression_counts_bytes_before_and_after(self):
        b = self.start_backend("b1")
        p = self.start(locations=[location("/gz/", proxy_pass="http://%s/" % b.addr, gzip=True,
                                           brotli=False, zstd=False)])
        out = 0
        for i in range(3):
            r = p.get("/gz/bytes?n=5000&type=text/plain&i=%d" % i,
                      headers={"Accept-Encoding": "gzip"})
            self.assertEqual(r.header("Content-Encoding"), "gzip")
            self.assertEqual(len(zlib.decompress(r.body, 31)), 5000)
            out += len(r.body)
        s = self.samples_when(p, "portier_compressed_responses_total", 3, coding="gzip")
        self.assertEqual(value(s, "portier_compression_input_bytes_total", coding="gzip"), 15000)
        self.assertEqual(value(s, "portier_compression_output_bytes_total", coding="gzip"), out)
        self.assertEqual(value(s, "portier_compressed_responses_total", coding="br"), 0)

    def test_cache_requests_counted_by_cache_status(self):
        b = self.start_backend("b1")
        d = tempfile.mkdtemp(prefix="pt-it-cache-")
        os.chmod(d, 0o777)
        self.addCleanup(shutil.rmtree, d, True)
        p = self.start(
            locations=[location("/c/", proxy_pass="http://%s/" % b.addr, proxy_cache="c",
                                proxy_cache_valid="200 10m")],
            http={"proxy_cache_path": ["%s levels=1:2 keys_zone=c:1m" % d]})
        for _ in range(3):
            self.assertEqual(p.get("/c/bytes?n=100").status, 200)
        s = self.samples_when(p, "portier_cache_requests_total", 2, cache_status="HIT")
        self.assertEqual(value(s, "portier_cache_requests_total", cache_status="MISS"), 1)
        self.assertEqual(value(s, "portier_cache_requests_total", cache_status="HIT"), 2)

    def test_waf_refusals_counted_by_rule_group(self):
        if "waf" not in harness.Portier(start=False).run("-V").stdout.decode().split():
            self.skipTest("the waf module is not built (PORTIER_WITH_WAF=OFF)")
        d = tempfile.mkdtemp(prefix="pt-it-waf-")
        os.chmod(d, 0o755)
        self.addCleanup(shutil.rmtree, d, True)
        rules = os.path.join(d, "blocklist.conf")
        with open(rules, "w") as f:
            f.write('SecRuleEngine On\n'
                    'SecRule ARGS:q "@contains attack" "id:1001,phase:1,deny,status:403,log"\n')
        b = self.start_backend("b1")
        p = self.start(locations=[location("/waf/", proxy_pass="http://%s/" % b.addr,
                                           modsecurity=True, modsecurity_rules_file=rules)])
        self.assertEqual(p.get("/waf/?q=hello").status, 200)
        for _ in range(2):
            self.assertEqual(p.get("/waf/?q=an+attack").status, 403)
        s = self.samples_when(p, "portier_waf_blocked_requests_total", 2, group="blocklist")
        self.assertEqual(value(s, "portier_waf_blocked_requests_total", group="other"), 0)

    def test_tls_handshakes_full_resumed_and_failed(self):
        d = tempfile.mkdtemp(prefix="pt-it-certs-")
        os.chmod(d, 0o755)
        self.addCleanup(shutil.rmtree, d, True)
        crt, key = os.path.join(d, "a.crt"), os.path.join(d, "a.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "2", "-subj", "/CN=a.test"], check=True, capture_output=True)
        tls_port = harness.free_port()
        p = self.start(servers=[
            {"listen": ["127.0.0.1:%d ssl" % tls_port], "server_name": ["a.test"],
             "ssl_certificate": crt, "ssl_certificate_key": key,
             "location": [location("/", ret="200 tls")]}])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        session = None
        for resume in (False, False, True):
            raw = socket.create_connection(("127.0.0.1", tls_port), timeout=10)
            with ctx.wrap_socket(raw, server_hostname="a.test",
                                 session=session if resume else None) as t:
                t.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                while t.recv(65536):
                    pass
                self.assertEqual(t.session_reused, resume)
                session = t.session
        with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            self.assertIn(b"plain HTTP request was sent to HTTPS port", plain.recv(65536))
        s = self.samples_when(p, "portier_tls_handshake_failures_total", 1,
                              reason="http_request")
        self.assertEqual(value(s, "portier_tls_handshakes_total", result="full"), 2)
        self.assertEqual(value(s, "portier_tls_handshakes_total", result="resumed"), 1)

    def test_promtool_check_metrics_passes(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.fail("promtool is not installed: it comes with Debian's prometheus package "
                      "(scripts/deps installs it)")
        p = self.start()
        with p.client() as c:
            self.outcomes(Exchange(), c, 1)
        text = self.scrape(p).body
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           timeout=30)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, b""), text.decode())

    def test_text_format_0_0_4_by_default(self):
        p = self.start()
        r = self.scrape(p)
        self.assertEqual(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        text = r.body.decode()
        self.assertIn("# TYPE portier_server_requests_total counter\n", text)
        self.assertIn("# TYPE portier_server_request_duration_seconds histogram\n", text)
        self.assertNotIn("# EOF", text)

    def test_openmetrics_when_accept_asks_for_it(self):
        p = self.start()
        r = self.scrape(p, accept="application/openmetrics-text;version=1.0.0,text/plain;"
                                  "version=0.0.4;q=0.5,*/*;q=0.1")
        self.assertEqual(r.header("Content-Type"),
                         "application/openmetrics-text; version=1.0.0; charset=utf-8")
        text = r.body.decode()
        self.assertTrue(text.endswith("\n# EOF\n"), text[-200:])
        self.assertIn("# TYPE portier_server_requests counter\n", text)
        self.assertIn('le="1.0"', text)
        self.assertIn("# TYPE portier_build info\nportier_build_info{", text)

    def test_metrics_location_answers_only_get_and_head(self):
        p = self.start()
        r = harness.http_request(self.scrape_port, "POST", "/metrics", body=b"")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("Allow"), "GET, HEAD")


class MetricsUpgrade(UpgradeCase):

    def test_counters_live_on_through_a_binary_upgrade(self):
        port = harness.free_port()
        p = self.portier(self.http(port, extra=[location("/metrics", metrics=True)]))
        for _ in range(5):
            self.get_ok(p)
        self.upgrade(p, p.pid)
        for _ in range(3):
            self.get_ok(p)
        text = harness.http_request(port, "GET", "/metrics").body.decode()
        s = parse(text)
        self.assertEqual(value(s, "portier_server_requests_total", server="127.0.0.1:%d" % port,
                               code="2xx"), 8, text)
        self.assertEqual(value(s, "portier_upstream_requests_total", upstream="app",
                               peer=self.b1.addr), 8)
        self.assertEqual(value(s, "portier_config_loads_total"), 1)


if __name__ == "__main__":
    harness.main()
