"""
Requests that nginx takes and portier used to refuse or pass on differently (issue 10,
points 1, 5, 10 and 11), tried with the clients that send them: curl as an Elasticsearch
or GraphQL client does, Node's http module, and raw sockets where the bytes matter.

  1. GET, HEAD, DELETE and OPTIONS with a body are passed on, re-framed by portier;
     reject_unexpected_body = true refuses them with 400.
  5. Header names with '_' (and other invalid names) are dropped and logged at info, as
     nginx's underscores_in_headers off / ignore_invalid_headers on.
 10. HTTP/1.2 is handled as HTTP/1.1; HTTP/2.0 on this HTTP/1 port is 505.
 11. Every 400, 408, 413, 414 and 431 portier answers itself leaves one info line in the
     error log saying why, in nginx's words.

What reaches the upstream is read from a RecordingBackend: exact request line, headers
and body bytes.
"""

import json
import re
import shutil
import subprocess

import harness
from harness import location, server, upstream

CURL = shutil.which("curl") or "curl"
NODE = shutil.which("node") or "node"

SEARCH = b'{"query":{"match":{"title":"portier"}},"size":3}'

# What nginx appends to a client error line: the stage, the client, the server, the request.
CONTEXT = r' while reading client request headers, client: 127\.0\.0\.1, server: main\.test, '


def node_request(port, method, path, body, headers=None):
    """Sends one request with Node's http module (as undici-era clients do: a body with an
    explicit Content-Length on any method); returns (status, body text)."""
    script = r"""
const http = require('http');
const [port, method, path, body, headers] = JSON.parse(process.argv[1]);
const req = http.request({host: '127.0.0.1', port, method, path,
                          headers: Object.assign({'Content-Length': Buffer.byteLength(body)},
                                                 headers)},
  res => { let d = ''; res.on('data', c => d += c);
           res.on('end', () => console.log(JSON.stringify([res.statusCode, d]))); });
req.on('error', e => { console.error(e.message); process.exit(1); });
req.end(body);
"""
    out = subprocess.run([NODE, "-e", script, json.dumps([port, method, path, body, headers or {}])],
                         capture_output=True, text=True, timeout=20)
    if out.returncode != 0:
        raise AssertionError("node failed: %s" % out.stderr)
    return json.loads(out.stdout)


class DropinRequests(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.rec = cls.class_recorder("rec")
        cls.port, cls.port_us, cls.port_keep, cls.port_slow = (harness.free_port() for _ in range(4))
        proxied = dict(proxy_pass="http://rec",
                       proxy_set_header=["X-Proto $server_protocol", "X-Request $request",
                                         "X-Seen-Xff $http_x_forwarded_for"])
        cls.p = cls.class_portier({
            "client_max_body_size": "1k",
            "upstream": {"rec": upstream(cls.rec.addr, keepalive=4)},
            "server": [
                server(cls.port, [location("/", **proxied),
                                  location("/strict/", reject_unexpected_body=True, **proxied)],
                       names=["main.test"]),
                server(cls.port_us, [location("/", **proxied)], names=["us.test"],
                       underscores_in_headers=True),
                server(cls.port_keep, [location("/", **proxied)], names=["keep.test"],
                       ignore_invalid_headers=False),
                server(cls.port_slow, [location("/", **proxied)], names=["slow.test"],
                       client_header_timeout="1s"),
            ],
        })

    def setUp(self):
        super().setUp()
        self.mark = self.rec.mark()
        self.log_start = harness.file_size(self.p.error_log)

    def forwarded(self):
        return self.rec.since(self.mark)[0]

    def only_forwarded(self):
        reqs = self.forwarded()
        self.assertEqual(len(reqs), 1, [r.request_line for r in reqs])
        return reqs[0]

    def assertLogged(self, pattern):
        """The error log gained, since setUp, an [info] line matching <pattern>."""
        return harness.wait_for_line(self.p.error_log, r"\[info\] .*" + pattern, start=self.log_start)

    def new_log(self):
        return harness.read_file(self.p.error_log, "rb")[self.log_start:].decode("utf-8", "replace")

    def curl(self, *args, port=None, path="/"):
        """curl ARGS http://127.0.0.1:PORT/PATH; returns (status, body)."""
        url = "http://127.0.0.1:%d%s" % (port or self.port, path)
        out = subprocess.run([CURL, "-sS", "-o", "-", "-w", "\n%{http_code}"] + list(args) + [url],
                             capture_output=True, timeout=20)
        body, _, code = out.stdout.rpartition(b"\n")
        return int(code), body

    def raw(self, data, port=None, method="GET"):
        with self.p.client(port=port) as c:
            c.send(data)
            return c.read_response(method)

    # -- 1. bodies on GET, HEAD, DELETE, OPTIONS

    def test_curl_get_with_json_body_reaches_backend_reframed(self):
        # What the Elasticsearch clients do for _search.
        code, body = self.curl("-X", "GET", "-H", "Content-Type: application/json",
                               "--data-binary", SEARCH, path="/books/_search")
        self.assertEqual((code, body), (200, b"ok\n"))
        q = self.only_forwarded()
        self.assertEqual(q.request_line, "GET /books/_search HTTP/1.1")
        self.assertEqual(q.body, SEARCH)
        self.assertEqual(q.header("Content-Length"), str(len(SEARCH)))
        self.assertEqual(q.header("Content-Type"), "application/json")

    def test_curl_get_with_chunked_body_reaches_backend(self):
        code, _ = self.curl("-X", "GET", "-H", "Transfer-Encoding: chunked", "--data-binary",
                            SEARCH, path="/books/_search")
        self.assertEqual(code, 200)
        q = self.only_forwarded()
        self.assertEqual(q.body, SEARCH)
        self.assertEqual(q.header("Transfer-Encoding"), "chunked")
        self.assertIsNone(q.header("Content-Length"))

    def test_curl_delete_with_body_reaches_backend(self):
        code, _ = self.curl("-X", "DELETE", "-H", "Content-Type: application/json",
                            "--data-binary", b'{"ids":[1,2]}', path="/items")
        self.assertEqual(code, 200)
        q = self.only_forwarded()
        self.assertEqual((q.method, q.body), ("DELETE", b'{"ids":[1,2]}'))

    def test_node_get_head_delete_options_with_body_reach_backend(self):
        for method in ("GET", "HEAD", "DELETE", "OPTIONS"):
            with self.subTest(method=method):
                mark = self.rec.mark()
                status, text = node_request(self.port, method, "/graphql", '{"query":"{ me }"}')
                self.assertEqual(status, 200)
                self.assertEqual(text, "" if method == "HEAD" else "ok\n")
                reqs = self.rec.since(mark)[0]
                self.assertEqual([(r.method, r.body) for r in reqs],
                                 [(method, b'{"query":"{ me }"}')])

    def test_body_that_looks_like_a_request_stays_a_body(self):
        # The backend must get one request whose body is these bytes; then both connections
        # end (the corpus's rule for an ambiguous request that is forwarded), so nothing
        # after it can be taken for the smuggled request.
        smuggled = b"GET /admin HTTP/1.1\r\nHost: main.test\r\n\r\n"
        with self.p.client() as c:
            c.send(b"GET /a HTTP/1.1\r\nHost: main.test\r\nContent-Length: %d\r\n\r\n%s"
                   % (len(smuggled), smuggled))
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Connection"), "close")
            self.assertClosed(c)
        reqs = self.forwarded()
        self.assertEqual([(r.target, r.body) for r in reqs], [("/a", smuggled)])

    def test_reject_unexpected_body_refuses_get_with_body(self):
        before = self.rec.mark()
        with self.p.client() as c:
            c.send(b"GET /strict/x HTTP/1.1\r\nHost: main.test\r\nContent-Length: 5\r\n\r\nhello")
            self.assertPortierError(c.read_response(), 400)
            self.assertClosed(c)
        self.assertEqual(self.rec.since(before)[0], [])
        self.assertLogged(r'client sent GET request with body, client: 127\.0\.0\.1, '
                          r'server: main\.test, request: "GET /strict/x HTTP/1\.1", host: "main\.test"$')

    def test_reject_unexpected_body_refuses_chunked_options_and_delete(self):
        for method in ("OPTIONS", "DELETE", "HEAD"):
            with self.subTest(method=method):
                r = self.raw(b"%s /strict/x HTTP/1.1\r\nHost: main.test\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                             % method.encode(), method=method)
                self.assertPortierError(r, 400)
        self.assertEqual(self.forwarded(), [])

    def test_reject_unexpected_body_lets_bodiless_get_and_post_body_through(self):
        code, _ = self.curl(path="/strict/x")
        self.assertEqual(code, 200)
        code, _ = self.curl("-X", "GET", "-H", "Content-Length: 0", path="/strict/y")
        self.assertEqual(code, 200)
        code, _ = self.curl("--data-binary", "a=1", path="/strict/z")
        self.assertEqual(code, 200)
        self.assertEqual([(r.method, r.target, r.body) for r in self.forwarded()],
                         [("GET", "/strict/x", b""), ("GET", "/strict/y", b""),
                          ("POST", "/strict/z", b"a=1")])

    def test_trace_with_body_is_still_400(self):
        r = self.raw(b"TRACE / HTTP/1.1\r\nHost: main.test\r\nContent-Length: 1\r\n\r\nx")
        self.assertPortierError(r, 400)
        self.assertLogged(r"client sent TRACE request with body" + CONTEXT)

    # -- 5. invalid header names

    def test_underscore_headers_are_dropped_and_logged(self):
        code, _ = self.curl("-H", "Host: main.test", "-H", "X_Forwarded_For: 1.2.3.4",
                            "-H", "X-Api_Key: k", "-H", "X-Fine: yes")
        self.assertEqual(code, 200)
        q = self.only_forwarded()
        names = [n.lower() for n, _ in q.headers]
        self.assertNotIn("x_forwarded_for", names)
        self.assertNotIn("x-api_key", names)
        self.assertEqual(q.header("X-Fine"), "yes")
        # Neither forwarded nor seen as $http_x_forwarded_for; portier's own value only.
        self.assertEqual(q.header("X-Forwarded-For"), "127.0.0.1")
        self.assertIsNone(q.header("X-Seen-Xff"))
        self.assertLogged(r'client sent invalid header line: "X_Forwarded_For: 1\.2\.3\.4"' + CONTEXT +
                          r'request: "GET / HTTP/1\.1", host: "main\.test"$')
        self.assertLogged(r'client sent invalid header line: "X-Api_Key: k" while')

    def test_other_invalid_names_are_dropped(self):
        r = self.raw(b"GET / HTTP/1.1\r\nHost: main.test\r\nX.Dot: 1\r\nX@At: 2\r\n"
                     b"X{Brace}: 3\r\nX-Ok: 4\r\n\r\n")
        self.assertEqual(r.status, 200)
        q = self.only_forwarded()
        names = [n for n, _ in q.headers]
        for dropped in ("X.Dot", "X@At", "X{Brace}"):
            self.assertNotIn(dropped, names)
        self.assertEqual(q.header("X-Ok"), "4")

    def test_underscores_in_headers_on_forwards_them(self):
        code, _ = self.curl("-H", "X_Custom: 1", "-H", "X.Dot: 2", port=self.port_us)
        self.assertEqual(code, 200)
        q = self.only_forwarded()
        self.assertEqual(q.header("X_Custom"), "1")
        self.assertIsNone(q.header("X.Dot"))

    def test_ignore_invalid_headers_off_keeps_token_names_and_refuses_others(self):
        code, _ = self.curl("-H", "X_Custom: 1", "-H", "X.Dot: 2", port=self.port_keep)
        self.assertEqual(code, 200)
        q = self.only_forwarded()
        self.assertEqual((q.header("X_Custom"), q.header("X.Dot")), ("1", "2"))
        r = self.raw(b"GET / HTTP/1.1\r\nHost: keep.test\r\nX@At: 2\r\n\r\n", port=self.port_keep)
        self.assertPortierError(r, 400)
        self.assertLogged(r'client sent invalid character in header name: "X@At: 2" while reading '
                          r'client request headers')

    def test_underscore_framing_lookalike_is_400_not_dropped(self):
        r = self.raw(b"POST / HTTP/1.1\r\nHost: main.test\r\nContent_Length: 5\r\n\r\nhello")
        self.assertPortierError(r, 400)
        self.assertEqual(self.forwarded(), [])
        self.assertLogged(r'client sent header line spelling a framing header: "Content_Length: 5"')

    def test_space_or_ctl_in_a_name_is_400(self):
        for line in (b"X-A : b", b"X\x01A: b"):
            with self.subTest(line=line):
                r = self.raw(b"GET / HTTP/1.1\r\nHost: main.test\r\n" + line + b"\r\n\r\n")
                self.assertPortierError(r, 400)
        self.assertEqual(self.forwarded(), [])
        self.assertLogged(r'client sent invalid header line: "X\\x01A: b"' + CONTEXT)

    # -- 10. HTTP versions

    def test_http_1_2_is_served_as_1_1(self):
        with self.p.client() as c:
            c.send(b"GET /v HTTP/1.2\r\nHost: main.test\r\n\r\n")
            r = c.read_response()
            self.assertEqual((r.status, r.version), (200, "HTTP/1.1"))
            # persistent, as 1.1
            c.send(b"GET /w HTTP/1.2\r\nHost: main.test\r\n\r\n")
            self.assertEqual(c.read_response().status, 200)
        reqs = self.forwarded()
        self.assertEqual([q.request_line for q in reqs], ["GET /v HTTP/1.1", "GET /w HTTP/1.1"])
        # $server_protocol and $request say what the client sent, as nginx's do.
        self.assertEqual(reqs[0].header("X-Proto"), "HTTP/1.2")
        self.assertEqual(reqs[0].header("X-Request"), "GET /v HTTP/1.2")

    def test_http_2_0_request_line_is_505(self):
        with self.p.client() as c:
            c.send(b"GET / HTTP/2.0\r\nHost: main.test\r\n\r\n")
            self.assertPortierError(c.read_response(), 505)
            self.assertClosed(c)
        self.assertEqual(self.forwarded(), [])
        self.assertLogged(r'client sent invalid version while reading client request line, '
                          r'client: 127\.0\.0\.1, server: main\.test, request: "GET / HTTP/2\.0"$')

    # -- 11. why a client was refused

    def test_invalid_content_length_is_logged_as_nginx(self):
        r = self.raw(b"POST / HTTP/1.1\r\nHost: main.test\r\nContent-Length: 5x\r\n\r\nhello")
        self.assertPortierError(r, 400)
        self.assertLogged(r'client sent invalid "Content-Length" header' + CONTEXT +
                          r'request: "POST / HTTP/1\.1"$')

    def test_missing_host_is_logged_as_nginx(self):
        self.assertPortierError(self.raw(b"GET /nohost HTTP/1.1\r\nX-A: b\r\n\r\n"), 400)
        self.assertLogged(r'client sent HTTP/1\.1 request without "Host" header' + CONTEXT +
                          r'request: "GET /nohost HTTP/1\.1"$')

    def test_too_long_uri_is_logged_as_nginx(self):
        r = self.raw(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: main.test\r\n\r\n")
        self.assertPortierError(r, 414)
        line = self.assertLogged(r'client sent too long URI while reading client request line, '
                                 r'client: 127\.0\.0\.1, server: main\.test, request: "GET /aaa')
        self.assertLess(len(line), 1024, "the request line is cut in the log")

    def test_too_large_head_is_logged(self):
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(40))
        r = self.raw(b"GET / HTTP/1.1\r\nHost: main.test\r\n" + many + b"\r\n")
        self.assertPortierError(r, 431)
        self.assertLogged(r"client sent too large request while reading client request headers")

    def test_too_large_body_is_logged_as_nginx(self):
        r = self.raw(b"POST / HTTP/1.1\r\nHost: main.test\r\nContent-Length: 2048\r\n\r\n" + b"x" * 2048)
        self.assertPortierError(r, 413)
        self.assertLogged(r'client intended to send too large body: 2048 bytes, client: 127\.0\.0\.1, '
                          r'server: main\.test, request: "POST / HTTP/1\.1", host: "main\.test"$')

    def test_too_large_chunked_body_is_logged_as_nginx(self):
        chunk = b"x" * 1500
        r = self.raw(b"POST / HTTP/1.1\r\nHost: main.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk))
        self.assertPortierError(r, 413)
        self.assertLogged(r"client intended to send too large chunked body: 0\+1500 bytes, client: ")

    def test_invalid_chunked_body_is_logged_as_nginx(self):
        r = self.raw(b"POST / HTTP/1.1\r\nHost: main.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"zz\r\nhello\r\n0\r\n\r\n")
        self.assertPortierError(r, 400)
        self.assertLogged(r'client sent invalid chunked body, client: 127\.0\.0\.1, server: main\.test, '
                          r'request: "POST / HTTP/1\.1", host: "main\.test"$')
        self.assertEqual(len(re.findall("invalid chunked body", self.new_log())), 1,
                         "logged once, not again when the rest is discarded")

    def test_header_timeout_is_408_and_logged_as_nginx(self):
        with self.p.client(port=self.port_slow) as c:
            c.send(b"GET /slow HTTP/1.1\r\nHost: slow.test\r\n")
            self.assertPortierError(c.read_response(timeout=5), 408)
        self.assertLogged(r'client timed out \(110: Connection timed out\) while reading client request '
                          r'headers, client: 127\.0\.0\.1, server: slow\.test, request: "GET /slow HTTP/1\.1"$')

    def test_reasons_are_not_logged_below_info(self):
        http = {"upstream": {"rec": upstream(self.rec.addr)},
                "server": [server(harness.free_port(), [location("/", proxy_pass="http://rec")])]}
        p = self.start_portier(http, start=False)
        p.write_config(http, main={"error_log": "%s notice" % p.error_log})
        p.start()
        with p.client() as c:
            c.send(b"GET / HTTP/1.1\r\nHost: a\r\nX_A: 1\r\nContent-Length: 5x\r\n\r\n")
            self.assertPortierError(c.read_response(), 400)
        self.assertEqual(p.get("/").status, 200)  # the worker is past that request
        log = harness.read_file(p.error_log, "rb").decode("utf-8", "replace")
        self.assertNotIn("client sent", log)

if __name__ == "__main__":
    harness.main()
