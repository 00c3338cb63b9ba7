"""
What real applications and nginx habits need from the proxy (issue 10): the WebSocket
lines of every nginx guide work with ws and socket.io, proxy_set_header replaces the
field portier would set (one copy, no quotes) and each forwarding field on its own,
Host is nginx's $proxy_host unless told otherwise, $proxy_* variables, the 301 of a
location ending in '/', proxy_buffer_size, proxy_buffering with gzip, HEAD carrying
GET's fields, proxy_http_version.  Clients are the ones users run: ws, socket.io-client,
curl; the application is express.
"""

import os
import subprocess
import time
import zlib

import harness
import nodeapp
from harness import location, server, upstream

GUIDE_WS = ["Upgrade $http_upgrade", 'Connection "upgrade"']


def curl(*args):
    """curl's stdout for <args> (-s and a time limit added)."""
    p = subprocess.run(["curl", "-s", "--max-time", "10"] + list(args), capture_output=True,
                       timeout=20)
    return p.stdout.decode("latin-1")


class DropInProxy(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.app = nodeapp.NodeApp()
        cls.addClassCleanup(cls.app.stop)
        cls.rec = cls.class_recorder()
        cls.port = harness.free_port()
        rec = "http://%s" % cls.rec.addr
        cls.p = cls.class_portier({
            "gzip": True,
            "upstream": {"node": upstream(cls.app.addr, keepalive=8),
                         "rec": upstream(cls.rec.addr),
                         "reckeep": upstream(cls.rec.addr, keepalive=4)},
            "server": [server(cls.port, [
                # nginx's WebSocket guide, as users copy it.
                location("/ws", proxy_pass="http://node", proxy_http_version="1.1",
                         proxy_set_header=GUIDE_WS),
                location("/socket.io/", proxy_pass="http://node", proxy_http_version="1.1",
                         proxy_set_header=GUIDE_WS),
                location("/guide/", proxy_pass="http://rec", proxy_set_header=GUIDE_WS),
                location("/plain/", proxy_pass="http://rec"),
                location("/implicit/", proxy_pass=rec),
                location("/host-host/", proxy_pass="http://rec", proxy_set_header=["Host $host"]),
                location("/host-http-host/", proxy_pass="http://rec",
                         proxy_set_header=["Host $http_host"]),
                location("/host-proxy-host/", proxy_pass=rec,
                         proxy_set_header=["Host $proxy_host", "X-Port $proxy_port"]),
                location("/xff/", proxy_pass="http://rec",
                         proxy_set_header=["X-Forwarded-For $proxy_add_x_forwarded_for"]),
                location("/xfp/", proxy_pass="http://rec",
                         proxy_set_header=["X-Forwarded-Proto https"]),
                location("/close/", proxy_pass="http://reckeep",
                         proxy_set_header=["Connection close"]),
                location("/empty-conn/", proxy_pass="http://rec",
                         proxy_set_header=['Connection ""']),
                location("/v10/", proxy_pass="http://reckeep", proxy_http_version="1.0"),
                location("/keep/", proxy_pass="http://reckeep"),
                location("/app/", proxy_pass="http://node/"),
                location("/exact/", proxy_pass="http://node/"),
                location("= /exact", ret="200 exact wins"),
                location("~ ^/re/", proxy_pass="http://node"),
                location("/api/", proxy_pass="http://node/"),
                location("/api", ret="200 prefix api"),
                location("/stream", proxy_pass="http://node"),
                location("/unbuffered/", proxy_pass="http://node/", proxy_buffering=False),
                location("/big", proxy_pass="http://node"),
                location("/bigger/", proxy_pass="http://node/", proxy_buffer_size="64k"),
                location("/headers", proxy_pass="http://node"),
                location("/", ret="200 root"),
            ])],
        })

    def last(self, path, method="GET", headers=(), host="localhost", body=None):
        """Sends one request through portier and returns what the recorder got."""
        before = len(self.rec.requests)
        with self.p.client() as c:
            r = c.request(method, path, headers=list(headers), host=host, body=body)
        self.assertEqual(r.status, 200, r)
        harness.wait_until(lambda: len(self.rec.requests) > before, what="the recorded request")
        return self.rec.requests[-1]

    def names(self, req, name):
        return harness.headers_named(req.headers, name)

    # -- WebSocket with nginx's guide lines

    def test_ws_client_handshake_and_echo(self):
        r = nodeapp.run_client("ws", "ws://127.0.0.1:%d/ws" % self.port)
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["reply"], "echo:hello")

    def test_socketio_client_over_websocket(self):
        r = nodeapp.run_client("socketio", "http://127.0.0.1:%d" % self.port)
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["reply"], "pong:x")

    def test_socketio_client_polling_then_upgrade(self):
        r = nodeapp.run_client("polling", "http://127.0.0.1:%d" % self.port)
        self.assertTrue(r["ok"], r)
        self.assertEqual(r["transport"], "websocket")

    def test_guide_lines_send_one_upgrade_and_one_connection(self):
        req = self.last("/guide/x", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                             ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                             ("Sec-WebSocket-Version", "13")])
        self.assertEqual(self.names(req, "Upgrade"), ["websocket"], req.head)
        # The quotes of nginx's configuration are not part of the value; no "close" beside it
        # although this upstream keeps no connection.
        self.assertEqual(self.names(req, "Connection"), ["upgrade"], req.head)

    def test_guide_lines_on_a_plain_request(self):
        # As nginx: $http_upgrade is empty, so no Upgrade; Connection is the one set.
        req = self.last("/guide/plain")
        self.assertEqual(self.names(req, "Upgrade"), [], req.head)
        self.assertEqual(self.names(req, "Connection"), ["upgrade"], req.head)

    def test_empty_connection_value_sends_none(self):
        req = self.last("/empty-conn/x")
        self.assertEqual(self.names(req, "Connection"), [], req.head)

    def test_connection_close_set_keeps_connection_out_of_pool(self):
        first = self.last("/close/a")
        second = self.last("/close/b")
        self.assertEqual(self.names(second, "Connection"), ["close"], second.head)
        self.assertNotEqual(first.conn_id, second.conn_id)

    def test_get_with_body_connection_not_pooled(self):
        # A server that ignored the body of a GET would read it as a next request: the
        # connection that carried one serves nothing else.
        a = self.last("/keep/a")
        b = self.last("/keep/b")
        self.assertEqual(a.conn_id, b.conn_id, "plain GETs share the pooled connection")
        c = self.last("/keep/c", body=b'{"query":{}}')
        self.assertEqual(c.body, b'{"query":{}}')
        d = self.last("/keep/d")
        self.assertNotEqual(c.conn_id, d.conn_id)

    # -- Host and the $proxy_* variables

    def test_default_host_is_proxy_host_of_a_group(self):
        req = self.last("/plain/x", host="Client.Example:8080")
        self.assertEqual(self.names(req, "Host"), ["rec"], req.head)
        self.assertEqual(self.names(req, "X-Forwarded-Host"), ["Client.Example:8080"])

    def test_default_host_is_proxy_host_of_an_address(self):
        req = self.last("/implicit/x", host="client.example")
        self.assertEqual(self.names(req, "Host"), [self.rec.addr], req.head)

    def test_host_set_to_host_variable(self):
        req = self.last("/host-host/x", host="Client.Example:8080")
        self.assertEqual(self.names(req, "Host"), ["client.example"], req.head)

    def test_host_set_to_http_host_variable(self):
        req = self.last("/host-http-host/x", host="Client.Example:8080")
        self.assertEqual(self.names(req, "Host"), ["Client.Example:8080"], req.head)

    def test_host_set_to_proxy_host_and_proxy_port(self):
        req = self.last("/host-proxy-host/x", host="client.example")
        self.assertEqual(self.names(req, "Host"), [self.rec.addr], req.head)
        self.assertEqual(self.names(req, "X-Port"), [str(self.rec.port)], req.head)

    # -- X-Forwarded-*

    def test_proxy_add_x_forwarded_for_keeps_proto_and_host(self):
        req = self.last("/xff/x", headers=[("X-Forwarded-For", "10.1.1.1")], host="a.example")
        self.assertEqual(self.names(req, "X-Forwarded-For"), ["10.1.1.1, 127.0.0.1"], req.head)
        self.assertEqual(self.names(req, "X-Forwarded-Proto"), ["http"], req.head)
        self.assertEqual(self.names(req, "X-Forwarded-Host"), ["a.example"], req.head)

    def test_proxy_add_x_forwarded_for_without_client_header(self):
        req = self.last("/xff/x")
        self.assertEqual(self.names(req, "X-Forwarded-For"), ["127.0.0.1"], req.head)

    def test_one_forwarding_field_set_keeps_the_others(self):
        req = self.last("/xfp/x", host="a.example")
        self.assertEqual(self.names(req, "X-Forwarded-Proto"), ["https"], req.head)
        self.assertEqual(self.names(req, "X-Forwarded-For"), ["127.0.0.1"], req.head)
        self.assertEqual(self.names(req, "X-Forwarded-Host"), ["a.example"], req.head)

    # -- the 301 of a location ending in '/'

    def test_location_without_slash_redirects(self):
        out = curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                   "http://localhost:%d/app" % self.port)
        self.assertEqual(out, "301 http://localhost:%d/app/" % self.port)

    def test_redirect_keeps_the_query(self):
        out = curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                   "http://localhost:%d/app?a=1&b=2" % self.port)
        self.assertEqual(out, "301 http://localhost:%d/app/?a=1&b=2" % self.port)

    def test_redirect_followed_reaches_the_app(self):
        out = curl("-L", "http://localhost:%d/app?x=1" % self.port)
        self.assertIn('"url":"/?x=1"', out)

    def test_exact_location_wins_over_redirect(self):
        self.assertEqual(curl("http://localhost:%d/exact" % self.port), "exact wins")

    def test_regex_location_does_not_redirect(self):
        # As nginx: only a prefix or exact location ending in '/' makes the 301.
        self.assertEqual(curl("http://localhost:%d/re" % self.port), "root")

    def test_prefix_location_of_that_path_wins_over_redirect(self):
        self.assertEqual(curl("http://localhost:%d/api" % self.port), "prefix api")

    # -- proxy_buffer_size

    def test_too_big_response_head_is_502_logged_as_nginx(self):
        r = self.p.get("/big?bytes=20000")
        self.assertPortierError(r, 502)
        harness.wait_for_line(self.p.error_log, "upstream sent too big header")

    def test_proxy_buffer_size_takes_a_larger_head(self):
        r = self.p.get("/bigger/big?bytes=20000")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Big"), "b" * 20000)

    # -- streaming with gzip

    @staticmethod
    def read_chunk(c, deadline):
        """The data of the next chunk of a chunked body on <c>."""
        size = int(c.read_line(deadline).split(b";")[0].strip(), 16)
        if size == 0:
            raise harness.ProtocolError("the body ended")
        data = c.read_exact(size, deadline)
        c.read_exact(2, deadline)
        return data

    def read_piece(self, c, d, want):
        """Reads compressed chunks from <c> until <want> appears in what they decompress
        to (<d> a zlib decompressor): it fails (timeout) if portier holds them back."""
        deadline = time.monotonic() + 10
        text = b""
        while want not in text:
            text += d.decompress(self.read_chunk(c, deadline))
        return text

    def stream_through(self, path, stream_id):
        with self.p.client(timeout=10) as c:
            c.send(harness.build_request("GET", path, [("Accept-Encoding", "gzip")], None,
                                         "localhost", "HTTP/1.1"))
            head = c._parse_head(c.read_head())
            self.assertEqual(head.header("Content-Encoding"), "gzip", head)
            self.assertIsNone(head.header("X-Accel-Buffering"), head)
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            # Each piece is asked of the app only after the one before arrived here.
            for i in range(3):
                if i:
                    nxt = harness.http_request(self.app.port, "GET", "/next?id=" + stream_id)
                    self.assertEqual(nxt.status, 200)
                self.read_piece(c, d, b"piece %d " % i)

    def test_proxy_buffering_off_flushes_each_piece_compressed(self):
        self.stream_through("/unbuffered/stream?id=u1&n=3", "u1")

    def test_x_accel_buffering_no_flushes_each_piece(self):
        self.stream_through("/stream?id=a1&n=3&accel=no", "a1")

    # -- HEAD carries what GET would

    def test_head_has_the_fields_of_get_with_gzip(self):
        get = curl("-D", "-", "-o", "/dev/null", "-H", "Accept-Encoding: gzip",
                   "http://localhost:%d/headers" % self.port).lower()
        head = curl("-I", "-H", "Accept-Encoding: gzip",
                    "http://localhost:%d/headers" % self.port).lower()
        for text in (get, head):
            self.assertIn("content-encoding: gzip", text)
            self.assertIn("vary: accept-encoding", text)
            self.assertNotIn("content-length", text)

    # -- proxy_http_version

    def test_http_1_0_upstream_request(self):
        req = self.last("/v10/x")
        self.assertTrue(req.request_line.endswith(" HTTP/1.0"), req.request_line)
        self.assertEqual(self.names(req, "Connection"), ["close"], req.head)

    def test_http_1_0_refuses_chunked_body_with_411(self):
        before = len(self.rec.requests)
        with self.p.client() as c:
            c.send(b"POST /v10/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n0\r\n\r\n")
            r = c.read_response("POST")
        self.assertPortierError(r, 411)
        self.assertEqual(len(self.rec.requests), before)


class ProxyConfig(harness.TestCase):

    def test_http_version_forms(self):
        for value in ("1.1", "1.0", harness.Raw("1.1"), harness.Raw("1.0")):
            with self.subTest(value=value):
                p = self.start_portier({"server": [server(harness.free_port(), [
                    location("/", proxy_pass="http://127.0.0.1:9", proxy_http_version=value)])]},
                    start=False)
                out = p.run("-t", "-c", p.conf_path)
                self.assertEqual(out.returncode, 0, out.stderr)

    def test_bad_http_version_names_the_line(self):
        p = self.start_portier({"server": [server(harness.free_port(), [
            location("/", proxy_pass="http://127.0.0.1:9", proxy_http_version="2")])]},
            start=False)
        out = p.run("-t", "-c", p.conf_path)
        self.assertNotEqual(out.returncode, 0)
        self.assertRegex(out.stderr.decode(), r'portier\.conf:\d+: invalid value "2" for "proxy_http_version"')


if __name__ == "__main__":
    harness.main()
