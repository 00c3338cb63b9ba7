"""
The request id both ways, the $upstream_* timing and byte variables, $request_length and
$connection_requests, and stub_status.  Where nginx defines the output, Debian's nginx runs
beside portier on the same requests and the shapes of the two are compared (numbers that
cannot agree, such as times, are compared as nginx formats them).
"""

import os
import re

import harness
import nginx
from harness import location, server, upstream

VARS = ("$request_length|$connection_requests|$upstream_addr|$upstream_status|"
        "$upstream_connect_time|$upstream_header_time|$upstream_response_time|"
        "$upstream_bytes_sent|$upstream_bytes_received|$request_uri")

# The recorder's answer to a GET, byte for byte (recorder.py).
RECORDER_ANSWER = (b"HTTP/1.1 200 OK\r\nX-Backend: recorder\r\nContent-Type: text/plain\r\n"
                   b"Content-Length: 3\r\n\r\nok\n")

HEX32 = r"^[0-9a-f]{32}$"


def shape(line):
    """<line> with each time ("0.012") as T and each other number as N: what nginx's and
    portier's logs must share."""
    line = re.sub(r"\b\d+\.\d{3}\b", "T", line)
    return re.sub(r"\b\d+\b", "N", line)


class RequestId(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.rec = cls.class_recorder()
        cls.port = harness.free_port()
        p = harness.Portier(start=False)
        cls.addClassCleanup(p.cleanup)
        cls._class_portiers = [p]
        cls.log = os.path.join(p.dir, "ids.log")
        p.write_config({
            "log_format": {"ids": "$request_id $request_uri"},
            "access_log": cls.log + " ids",
            "upstream": {"app": upstream(cls.rec.addr, keepalive=4)},
            "server": [server(cls.port, [
                location("/trusted/", proxy_pass="http://app", set_real_ip_from=["127.0.0.1"]),
                location("/untrusted/", proxy_pass="http://app", set_real_ip_from=["10.0.0.0/8"]),
                location("/off/", proxy_pass="http://app", set_real_ip_from=["127.0.0.1"],
                         request_id_header="off"),
                location("/set/", proxy_pass="http://app",
                         proxy_set_header=["X-Request-ID upstream-$request_id"]),
                location("= /local", **{"return": "200 local"}),
            ])],
        })
        p.start()
        cls.p = p

    def exchange(self, path, rid=None):
        """GET <path> (with X-Request-ID <rid>): the response, what the upstream saw of the
        field, and the id the log has."""
        mark = self.rec.mark()
        r = self.p.get(path, headers=[("X-Request-ID", rid)] if rid else [])
        self.assertEqual(r.status, 200)
        reqs, _ = self.rec.since(mark)
        seen = [v for k, v in reqs[-1].headers if k.lower() == "x-request-id"]
        line = harness.wait_for_line(self.log, re.escape(path) + "$")
        return r, seen, line.split(" ")[0]

    def test_a_trusted_peer_keeps_its_id_up_and_back(self):
        rid = "7f3c2a9e-1b4d-4c8e-9f00-aa11bb22cc33"
        r, seen, logged = self.exchange("/trusted/?keep", rid)
        self.assertEqual(seen, [rid])
        self.assertEqual(r.header("X-Request-ID"), rid)
        self.assertEqual(logged, rid)

    def test_an_untrusted_peer_gets_a_fresh_id_up_and_back(self):
        r, seen, logged = self.exchange("/untrusted/?fresh", "client-chosen-id")
        self.assertRegex(logged, HEX32)
        self.assertEqual(seen, [logged])
        self.assertEqual(r.header_all("X-Request-ID"), [logged])

    def test_without_an_incoming_id_one_is_generated(self):
        r, seen, logged = self.exchange("/trusted/?none")
        self.assertRegex(logged, HEX32)
        self.assertEqual(seen, [logged])
        self.assertEqual(r.header("X-Request-ID"), logged)

    def test_an_insane_incoming_id_is_replaced(self):
        for bad in ("has space", "<script>", "x" * 129, "quote\"d"):
            with self.subTest(bad=bad):
                r, seen, logged = self.exchange("/trusted/?bad=%d" % len(bad), bad)
                self.assertRegex(logged, HEX32)
                self.assertEqual(seen, [logged])

    def test_an_id_of_128_bytes_is_kept(self):
        rid = "a" * 128
        r, seen, logged = self.exchange("/trusted/?long", rid)
        self.assertEqual(logged, rid)
        self.assertEqual(r.header("X-Request-ID"), rid)

    def test_off_sends_the_id_nowhere_as_nginx(self):
        r, seen, logged = self.exchange("/off/?off", "from-client")
        self.assertRegex(logged, HEX32)
        self.assertIsNone(r.header("X-Request-ID"))
        self.assertEqual(seen, ["from-client"])  # passed on as any other field

    def test_proxy_set_header_names_the_field_sent_up(self):
        r, seen, logged = self.exchange("/set/?set")
        self.assertEqual(seen, ["upstream-" + logged])
        self.assertEqual(r.header("X-Request-ID"), logged)

    def test_a_response_portier_makes_carries_the_id(self):
        r = self.p.get("/local")
        line = harness.wait_for_line(self.log, r" /local$")
        self.assertEqual(r.header("X-Request-ID"), line.split(" ")[0])


class UpstreamVariables(harness.TestCase):
    """Each variable logged for requests of known size, in portier and in nginx."""

    @classmethod
    def setUpClass(cls):
        cls.rec = cls.class_recorder()
        dead = "127.0.0.1:%d" % harness.free_port()
        cls.port, cls.nport = harness.free_port(), harness.free_port()
        p = harness.Portier(start=False)
        cls.addClassCleanup(p.cleanup)
        cls._class_portiers = [p]
        cls.log = os.path.join(p.dir, "vars.log")
        p.write_config({
            "log_format": {"vars": VARS},
            "access_log": cls.log + " vars",
            "upstream": {"app": upstream(cls.rec.addr), "twice": upstream(dead, cls.rec.addr)},
            "server": [server(cls.port, [
                location("/one/", proxy_pass="http://app"),
                location("/two/", proxy_pass="http://twice"),
                location("= /local", **{"return": "200 local"}),
            ])],
        })
        p.start()
        cls.p = p
        cls.ng = nginx.Nginx(cls.nport, """
  log_format vars '%s';
  upstream app { server %s; }
  upstream twice { server %s; server %s; }
  server {
    listen 127.0.0.1:%d;
    access_log %%s vars;
    location /one/ { proxy_pass http://app; }
    location /two/ { proxy_pass http://twice; }
    location = /local { return 200 local; }
  }
""".replace("%%s", "NGINXLOG") % (VARS, cls.rec.addr, dead, cls.rec.addr, cls.nport))
        cls.addClassCleanup(cls.ng.stop)

    def line(self, path):
        return harness.wait_for_line(self.log, re.escape(path) + "$")

    def fields(self, path):
        return dict(zip(["request_length", "connection_requests", "addr", "status", "connect",
                         "header", "response", "sent", "received", "uri"],
                        self.line(path).split("|")))

    def test_bytes_and_times_of_one_try(self):
        raw = harness.build_request("GET", "/one/?bytes", headers=[("X-Pad", "p" * 100)])
        mark = self.rec.mark()
        with self.p.client() as c:
            c.send(raw)
            self.assertEqual(c.read_response().status, 200)
        reqs, got = self.rec.since(mark)
        f = self.fields("/one/?bytes")
        self.assertEqual(int(f["request_length"]), len(raw))
        self.assertEqual(f["connection_requests"], "1")
        self.assertEqual(f["addr"], self.rec.addr)
        self.assertEqual(f["status"], "200")
        self.assertEqual(int(f["sent"]), got)
        self.assertEqual(int(f["sent"]), len(reqs[0].head))
        self.assertEqual(int(f["received"]),
                         len(RECORDER_ANSWER) + len(b"Connection: close\r\n"))
        for k in ("connect", "header", "response"):
            self.assertRegex(f[k], r"^\d+\.\d{3}$", k)
        self.assertLessEqual(float(f["connect"]), float(f["header"]))
        self.assertLessEqual(float(f["header"]), float(f["response"]))
        self.assertLess(float(f["response"]), 5.0)

    def test_request_length_counts_a_chunked_body_as_sent(self):
        raw = harness.build_request("POST", "/one/?chunked",
                                    headers=[("Transfer-Encoding", "chunked")],
                                    body=b"5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n\r\n")
        with self.p.client() as c:
            c.send(raw)
            self.assertEqual(c.read_response().status, 200)
        self.assertEqual(int(self.fields("/one/?chunked")["request_length"]), len(raw))

    def test_connection_requests_counts_on_one_connection(self):
        with self.p.client() as c:
            for i in (1, 2, 3):
                self.assertEqual(c.request("GET", "/one/?cr=%d" % i).status, 200)
        self.assertEqual([self.fields("/one/?cr=%d" % i)["connection_requests"] for i in (1, 2, 3)],
                         ["1", "2", "3"])

    def test_a_failed_try_is_listed_first_as_nginx_lists_it(self):
        self.assertEqual(self.p.get("/two/?tries").status, 200)
        f = self.fields("/two/?tries")
        addrs = f["addr"].split(", ")
        self.assertEqual(len(addrs), 2, f)
        self.assertEqual(f["status"], "502, 200")
        self.assertRegex(f["connect"], r"^-, \d+\.\d{3}$")
        self.assertRegex(f["header"], r"^-, \d+\.\d{3}$")
        self.assertRegex(f["response"], r"^\d+\.\d{3}, \d+\.\d{3}$")
        self.assertRegex(f["sent"], r"^0, [1-9]\d*$")
        self.assertRegex(f["received"], r"^0, [1-9]\d*$")

    def test_no_upstream_logs_dashes(self):
        self.assertEqual(self.p.get("/local").status, 200)
        f = self.fields("/local")
        for k in ("addr", "status", "connect", "header", "response", "sent", "received"):
            self.assertEqual(f[k], "-", k)

    def test_the_log_lines_have_nginx_shape(self):
        nlog = self.ng.dir + "/NGINXLOG"
        for path in ("/one/?shape", "/local?shape"):
            with self.subTest(path=path):
                self.assertEqual(self.p.get(path).status, 200)
                self.assertEqual(harness.http_request(self.nport, "GET", path).status, 200)
                mine = self.line(path)
                theirs = harness.wait_for_line(nlog, re.escape(path) + "$")
                self.assertEqual(shape(mine), shape(theirs), (mine, theirs))
                # The upstream answered both the same bytes.
                self.assertEqual(mine.split("|")[8], theirs.split("|")[8])
                self.assertEqual(mine.split("|")[0], theirs.split("|")[0])


STUB_SHAPE = (r"^Active connections: (\d+) \nserver accepts handled requests\n (\d+) (\d+) (\d+) \n"
              r"Reading: (\d+) Writing: (\d+) Waiting: (\d+) \n$")


class StubStatus(harness.TestCase):

    def stub(self, port):
        r = harness.http_request(port, "GET", "/basic_status")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "text/plain")
        m = re.match(STUB_SHAPE, r.body.decode())
        self.assertIsNotNone(m, r.body)
        return [int(x) for x in m.groups()]

    def test_counts_requests_over_two_workers_as_nginx_shapes_them(self):
        port, nport = harness.free_port(), harness.free_port()
        p = self.start_portier({"server": [server(port, [
            location("= /basic_status", stub_status=True),
            location("= /ping", **{"return": "200 pong"}),
        ])]}, main={"worker_processes": 2}, workers=2)
        ng = nginx.Nginx(nport, "server { listen 127.0.0.1:%d; "
                         "location = /basic_status { stub_status; } "
                         "location = /ping { return 200 pong; } }" % nport)
        self.addCleanup(ng.stop)
        per_worker = 5
        held = p.clients_on_workers(per_worker)
        for c in held[0] + held[1]:
            self.assertEqual(c.request("GET", "/ping").status, 200)  # a second request each
        active, accepts, handled, requests, reading, writing, waiting = self.stub(port)
        n = 2 * per_worker
        self.assertEqual(requests, 2 * n + 1)  # the stub_status request counts, as nginx's
        self.assertEqual((accepts, handled), (n + 1, n + 1))
        self.assertEqual((active, reading, writing, waiting), (n + 1, 0, 1, n))
        for c in held[0] + held[1]:
            c.close()
        probes = [0]

        def closed():
            probes[0] += 1
            return self.stub(port)[0] == 1
        harness.wait_until(closed, 10.0, 0.05, "connections to close")
        k = 1 + probes[0] + 1  # the stub_status connections, this next one included
        self.assertEqual(self.stub(port)[1:], [n + k, n + k, 2 * n + k, 0, 1, 0])
        # nginx's page for the same history is the same text but for the numbers.
        for _ in range(n):
            harness.http_request(nport, "GET", "/ping")
        r = harness.http_request(nport, "GET", "/basic_status")
        self.assertRegex(r.body.decode(), STUB_SHAPE)
        self.assertEqual(r.header("Content-Type"), "text/plain")

    def test_connections_variables_are_logged(self):
        port = harness.free_port()
        p = self.start_portier(start=False)
        log = os.path.join(p.dir, "c.log")
        p.write_config({
            "log_format": {"c": "$connections_active $connections_reading "
                                "$connections_writing $connections_waiting $request_uri"},
            "server": [server(port, [location("= /v", **{"return": "200 v"})],
                              access_log="%s c" % log)],
        })
        p.start()
        self.assertEqual(p.get("/v").status, 200)
        self.assertEqual(harness.wait_for_line(log, r"/v$"), "1 0 1 0 /v")

    def test_other_methods_are_not_allowed(self):
        port = harness.free_port()
        self.start_portier({"server": [server(port, [
            location("= /basic_status", stub_status=True)])]})
        self.assertEqual(harness.http_request(port, "POST", "/basic_status", body=b"x").status, 405)


if __name__ == "__main__":
    harness.main()
