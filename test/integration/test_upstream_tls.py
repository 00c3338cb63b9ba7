"""
TLS to upstream servers: proxy_pass https://, SNI (proxy_ssl_server_name,
proxy_ssl_name), verification of the chain and the name (proxy_ssl_verify,
proxy_ssl_trusted_certificate), client certificates (proxy_ssl_certificate, its
key readable by root only), the keepalive pool keyed by TLS configuration,
session resumption, WebSocket tunnels over TLS, and the handshake within
proxy_connect_timeout.

The certificates are made by the openssl CLI in the test's temporary directory;
the origins are Python's http.server behind ssl, answering with what they saw
(SNI name, client certificate subject, connection, resumption, path, body) in
X-* response headers.
"""

import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from harness import KEEP_TMP, location, server, upstream

# --------------------------------------------------------------------------
# certificates


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)


class Pki:
    """A CA, a second CA nobody trusts, server certificates for backend.test and
    other.test, one for backend.test from the rogue CA, and a client
    certificate; EC keys, made in <dir>."""

    def __init__(self, d):
        self.dir = d
        self.ca = self._ca("ca", "portier test CA")
        self.rogue_ca = self._ca("rogue", "rogue CA")
        self.backend = self._leaf("backend", "backend.test", "ca", "serverAuth")
        self.other = self._leaf("other", "other.test", "ca", "serverAuth")
        self.rogue = self._leaf("rogue-backend", "backend.test", "rogue", "serverAuth")
        self.client = self._leaf("client", "portier-client", "ca", "clientAuth")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _key(self, name):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", name + ".key", cwd=self.dir)

    def _ca(self, name, cn):
        self._key(name)
        openssl("req", "-x509", "-new", "-key", name + ".key", "-out", name + ".pem", "-days", "2",
                "-subj", "/CN=" + cn, "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)
        return self.path(name + ".pem")

    def _leaf(self, name, cn, ca, usage):
        self._key(name)
        openssl("req", "-new", "-key", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn,
                cwd=self.dir)
        with open(self.path(name + ".ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n" % usage)
            if usage == "serverAuth":
                f.write("subjectAltName=DNS:%s\n" % cn)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2",
                "-extfile", name + ".ext", "-out", name + ".pem", cwd=self.dir)
        return self.path(name + ".pem"), self.path(name + ".key")


# --------------------------------------------------------------------------
# the TLS origin


def read_chunked(rfile):
    body = bytearray()
    while True:
        size = int(rfile.readline().split(b";")[0].strip(), 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailer fields
            return bytes(body)
        body += rfile.read(size)
        rfile.readline()


class OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.headers.get("Upgrade"):
            self.tunnel()
            return
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = read_chunked(self.rfile)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer(body)

    do_POST = do_PUT = do_GET

    def what_it_saw(self, body):
        seen = self.server.origin.local
        return [("X-Sni", seen.sni or "-"), ("X-Client", seen.client or "-"),
                ("X-Conn", str(seen.conn)), ("X-Reused", "yes" if seen.reused else "no"),
                ("X-Path", self.path), ("X-Method", self.command),
                ("X-Body-Len", str(len(body))), ("X-Body-Sha", hashlib.sha256(body).hexdigest())]

    def answer(self, body):
        chunks = None
        if self.path.startswith("/big/"):
            out = harness.pattern_bytes(0, int(self.path[5:]))
        elif self.path == "/chunked":
            chunks = [b"first piece ", b"x" * 20000, b" last piece"]
            out = None
        else:
            out = body or ("ok %s" % self.path).encode()
        self.send_response(200)
        for k, v in self.what_it_saw(body):
            self.send_header(k, v)
        if chunks is None:
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for c in chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
        self.wfile.write(b"0\r\n\r\n")

    def tunnel(self):
        """101, then every byte echoed until the end; on /count/N, nothing back until N
        bytes came, then "got N"."""
        self.send_response(101)
        self.send_header("Upgrade", self.headers.get("Upgrade"))
        self.send_header("Connection", "Upgrade")
        self.end_headers()
        self.wfile.flush()
        if self.path.startswith("/count/"):
            want, got = int(self.path[7:]), 0
            while got < want:
                data = self.rfile.read1(65536)
                if not data:
                    break
                got += len(data)
            self.wfile.write(b"got %d\n" % got)
            self.wfile.flush()
            self.close_connection = True
            return
        while True:
            data = self.rfile.read1(65536)
            if not data:
                break
            self.wfile.write(data)
        self.close_connection = True


class OriginServer(ThreadingHTTPServer):
    daemon_threads = True

    def finish_request(self, request, client_address):
        # The handshake runs here, in the connection's own thread, so that a client
        # that stalls or aborts it holds up nobody else.
        o = self.origin
        o.local.sni = None
        try:
            tls = o.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with o.lock:
                o.failures.append(repr(e))
            return
        try:
            with o.lock:
                o.handshakes += 1
                o.local.conn = o.handshakes
                o.resumed += 1 if tls.session_reused else 0
            o.local.reused = tls.session_reused
            cert = tls.getpeercert()
            o.local.client = dict(x[0] for x in cert["subject"])["commonName"] if cert else None
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()


class TlsOrigin:
    """An HTTPS origin on 127.0.0.1 with certificate <cert> (a (pem, key) pair).
    <client_ca>: client certificates are asked for and checked against it,
    required when <require_client>."""

    def __init__(self, cert, client_ca=None, require_client=False, idle_timeout=None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*cert)
        if client_ca:
            self.ctx.load_verify_locations(client_ca)
            self.ctx.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_OPTIONAL
        self.ctx.sni_callback = self._sni
        self.local = threading.local()
        self.lock = threading.Lock()
        self.handshakes = 0
        self.resumed = 0
        self.failures = []
        # idle_timeout: a kept-alive connection idle this long is closed by the origin.
        handler = type("Handler", (OriginHandler,), {"timeout": idle_timeout})
        self.server = OriginServer((harness.LOCALHOST, 0), handler)
        self.server.origin = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _sni(self, sslobj, name, ctx):
        self.local.sni = name

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def addr(self):
        return "%s:%d" % (harness.LOCALHOST, self.port)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------


class UpstreamTlsCase(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pt-it-pki-")  # 0700: the workers cannot read it
        cls.addClassCleanup(lambda: KEEP_TMP or shutil.rmtree(cls.tmp, ignore_errors=True))
        cls.pki = Pki(cls.tmp)

    def origin(self, cert=None, **kw):
        o = TlsOrigin(cert or self.pki.backend, **kw)
        self.addCleanup(o.stop)
        return o

    def assertSaw(self, r, **expected):
        self.assertEqual(r.status, 200, r)
        for k, v in expected.items():
            name = "X-" + k.replace("_", "-").title()
            self.assertEqual(r.header(name), v, "%s in %r" % (name, r))

    def assertLogged(self, p, pattern):
        harness.wait_for_line(p.error_log, pattern)


class HttpsUpstream(UpstreamTlsCase):
    """One portier, locations for each configuration."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        pki = cls.pki
        cls.good = TlsOrigin(pki.backend, client_ca=pki.ca)
        cls.addClassCleanup(cls.good.stop)
        cls.rogue = TlsOrigin(pki.rogue)
        cls.addClassCleanup(cls.rogue.stop)
        cls.mtls = TlsOrigin(pki.backend, client_ca=pki.ca, require_client=True)
        cls.addClassCleanup(cls.mtls.stop)
        cls.port = harness.free_port()
        verified = {"proxy_ssl_verify": True, "proxy_ssl_name": "backend.test"}
        cls.p = cls.class_portier({
            # inherited by every location that turns proxy_ssl_verify on
            "proxy_ssl_trusted_certificate": pki.ca,
            "upstream": {"good": upstream(cls.good.addr), "rogue": upstream(cls.rogue.addr),
                         "mtls": upstream(cls.mtls.addr)},
            "server": [server(cls.port, [
                location("/plain/", proxy_pass="https://good/"),
                location("/direct/", proxy_pass="https://%s/" % cls.good.addr),
                location("/sni-host/", proxy_pass="https://good/", proxy_ssl_server_name=True),
                location("/sni-name/", proxy_pass="https://good/", proxy_ssl_server_name=True,
                         proxy_ssl_name="backend.test"),
                location("/sni-addr/", proxy_pass="https://%s/" % cls.good.addr,
                         proxy_ssl_server_name=True),
                location("/verified/", proxy_pass="https://good/", **verified),
                location("/wrong-name/", proxy_pass="https://good/", proxy_ssl_verify=True,
                         proxy_ssl_name="other.test"),
                location("/untrusted/", proxy_pass="https://rogue/", **verified),
                location("/mtls/", proxy_pass="https://mtls/",
                         proxy_ssl_certificate=pki.client[0],
                         proxy_ssl_certificate_key=pki.client[1]),
                location("/mtls-none/", proxy_pass="https://mtls/"),
                location("/tls12/", proxy_pass="https://good/", proxy_ssl_protocols="TLSv1.2",
                         proxy_ssl_ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"),
                location("/ws/", proxy_pass="https://good/"),
            ])],
        })

    def test_get_over_https(self):
        r = self.p.get("/plain/some/path?q=1")
        self.assertSaw(r, path="/some/path?q=1", method="GET")
        self.assertEqual(r.body, b"ok /some/path?q=1")

    def test_host_and_port_form(self):
        self.assertSaw(self.p.get("/direct/x"), path="/x")

    def test_post_body_goes_up(self):
        body = os.urandom(200000)
        r = harness.http_request(self.port, "POST", "/plain/post", body=body)
        self.assertSaw(r, method="POST", body_len=str(len(body)),
                       body_sha=hashlib.sha256(body).hexdigest())
        self.assertEqual(r.body, body)

    def test_chunked_request_body_goes_up(self):
        pieces = [b"a" * 5000, os.urandom(70000), b"end"]
        r = harness.http_request(self.port, "POST", "/plain/chunked-in",
                                 body=harness.chunked(*pieces),
                                 headers=[("Transfer-Encoding", "chunked")])
        whole = b"".join(pieces)
        self.assertSaw(r, body_len=str(len(whole)), body_sha=hashlib.sha256(whole).hexdigest())

    def test_chunked_response_comes_down(self):
        r = self.p.get("/plain/chunked")
        self.assertSaw(r)
        self.assertEqual(r.body, b"first piece " + b"x" * 20000 + b" last piece")

    def test_large_response_comes_down_whole(self):
        # Many TLS records: reads must go on while OpenSSL holds some, with no new edge.
        n = 3 * harness.MIB + 12345
        r = self.p.get("/plain/big/%d" % n, timeout=30)
        self.assertSaw(r)
        self.assertEqual(len(r.body), n)
        self.assertEqual(r.body, harness.pattern_bytes(0, n))

    def test_slow_client_gets_the_whole_response(self):
        # Backpressure: portier stops reading the upstream while the client does not
        # read, possibly with records inside OpenSSL, and must go on when it does.
        n = 16 * harness.MIB  # more than the sockets on the way hold
        with self.p.client(timeout=30) as c:
            c.send(harness.build_request("GET", "/plain/big/%d" % n))
            time.sleep(1.0)
            r = c.read_response(timeout=30)
        self.assertSaw(r)
        self.assertEqual(r.body, harness.pattern_bytes(0, n))

    def test_no_sni_by_default(self):
        self.assertSaw(self.p.get("/plain/"), sni="-")

    def test_sni_is_proxy_pass_host_when_on(self):
        self.assertSaw(self.p.get("/sni-host/"), sni="good")

    def test_sni_is_proxy_ssl_name_when_set(self):
        self.assertSaw(self.p.get("/sni-name/"), sni="backend.test")

    def test_no_sni_for_an_address(self):
        # RFC 6066 3: literal IP addresses are not sent as server names.
        self.assertSaw(self.p.get("/sni-addr/"), sni="-")

    def test_verify_with_trusted_ca_and_right_name(self):
        self.assertSaw(self.p.get("/verified/"), path="/")

    def test_verify_wrong_name_is_502_and_logged(self):
        r = self.p.get("/wrong-name/")
        self.assertPortierError(r, 502)
        self.assertLogged(self.p, r"upstream SSL certificate verify error: "
                          r"\(62:hostname mismatch\) while SSL handshaking to upstream %s"
                          % self.good.addr)

    def test_verify_untrusted_ca_is_502(self):
        r = self.p.get("/untrusted/")
        self.assertPortierError(r, 502)
        self.assertLogged(self.p, r"upstream SSL certificate verify error: \(\d+:[^)]+\) while SSL "
                          r"handshaking to upstream %s" % self.rogue.addr)

    def test_client_certificate_presented(self):
        self.assertSaw(self.p.get("/mtls/"), client="portier-client")

    def test_backend_requiring_certificate_refuses_none(self):
        self.assertPortierError(self.p.get("/mtls-none/"), 502)

    def test_protocols_and_ciphers(self):
        self.assertSaw(self.p.get("/tls12/"), path="/")

    def test_websocket_tunnel_over_https(self):
        with self.p.client() as c:
            r = c.request("GET", "/ws/chat", headers=[
                ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")])
            self.assertEqual(r.status, 101, r)
            deadline = time.monotonic() + 10
            c.send(b"hello through TLS")
            self.assertEqual(c.read_exact(17, deadline), b"hello through TLS")
            big = os.urandom(300000)
            c.send(big)
            self.assertEqual(c.read_exact(len(big), deadline), big)

    def test_tunnel_upload_of_more_than_a_record_goes_up_whole(self):
        # A large head makes the client buffer hold more than one TLS record (16 KiB):
        # what the client sends goes up whole though the origin answers nothing meanwhile
        # (no event from it would wake a tunnel that stopped after one record).
        n = 400000
        with self.p.client() as c:
            r = c.request("GET", "/ws/count/%d" % n, headers=[
                ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("X-Pad", "p" * 17000),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")])
            self.assertEqual(r.status, 101, r)
            c.send(os.urandom(n))
            line = b"got %d\n" % n
            self.assertEqual(c.read_exact(len(line), time.monotonic() + 10), line)


class HttpsUpstreamConfig(UpstreamTlsCase):

    def test_default_port_is_443(self):
        if harness.is_listening(443):
            self.skipTest("something listens on port 443 here")
        p = self.start_portier({"server": [server(harness.free_port(), [
            location("/", proxy_pass="https://127.0.0.1/")])]})
        self.assertPortierError(p.get("/"), 502)
        self.assertLogged(p, r"connect\(\) to 127\.0\.0\.1:443 failed")

    def test_verify_without_trusted_certificate_is_refused(self):
        p = self.start_portier({"server": [server(harness.free_port(), [
            location("/", proxy_pass="https://127.0.0.1:1/", proxy_ssl_verify=True)])]},
            start=False)
        line = next(i for i, l in enumerate(p.text.splitlines(), 1) if "proxy_pass" in l)
        res = p.run("-t", "-c", p.conf_path)
        self.assertEqual(res.returncode, 1, res)
        self.assertRegex(res.stderr.decode("utf-8", "replace"),
                         r'portier\.conf:%d: "proxy_ssl_verify" needs '
                         r'"proxy_ssl_trusted_certificate"' % line)

    def test_bad_protocol_word_is_refused(self):
        p = self.start_portier({"server": [server(harness.free_port(), [
            location("/", proxy_pass="https://127.0.0.1:1/", proxy_ssl_protocols="TLSv1.4")])]},
            start=False)
        res = p.run("-t", "-c", p.conf_path)
        self.assertEqual(res.returncode, 1, res)
        self.assertIn(b'invalid value "TLSv1.4" in "proxy_ssl_protocols"', res.stderr)


class HttpsUpstreamConnections(UpstreamTlsCase):
    """Each test with its own origin, so that its handshakes can be counted."""

    def test_keepalive_reuses_connections_per_tls_configuration(self):
        o = self.origin()
        p = self.start_portier({
            "upstream": {"tls": upstream(o.addr, keepalive=4)},
            "proxy_ssl_server_name": True,
            "server": [server(harness.free_port(), [
                location("/a/", proxy_pass="https://tls/", proxy_ssl_name="backend.test"),
                location("/b/", proxy_pass="https://tls/", proxy_ssl_name="other.test"),
            ])],
        })
        seen = []
        for path in ("/a/", "/b/", "/a/", "/b/"):
            r = p.get(path)
            self.assertEqual(r.status, 200, r)
            seen.append((r.header("X-Sni"), r.header("X-Conn")))
        self.assertEqual([s for s, _ in seen], ["backend.test", "other.test"] * 2)
        conn_a, conn_b = seen[0][1], seen[1][1]
        self.assertNotEqual(conn_a, conn_b)
        self.assertEqual([c for _, c in seen], [conn_a, conn_b] * 2)
        self.assertEqual(o.handshakes, 2, o.failures)

    def test_pooled_connection_closed_by_origin_is_replaced(self):
        o = self.origin(idle_timeout=0.3)
        p = self.start_portier({
            "upstream": {"tls": upstream(o.addr, keepalive=4)},
            "server": [server(harness.free_port(), [location("/", proxy_pass="https://tls")])],
        })
        first = p.get("/")
        self.assertSaw(first)
        time.sleep(1.0)  # the origin closes the idle connection
        second = p.get("/")
        self.assertSaw(second, reused="yes")
        self.assertNotEqual(first.header("X-Conn"), second.header("X-Conn"))

    def test_session_resumed_on_a_new_connection(self):
        o = self.origin()
        p = self.start_portier({
            "upstream": {"tls": upstream(o.addr)},  # no keepalive: a connection per request
            "server": [server(harness.free_port(), [location("/", proxy_pass="https://tls")])],
        })
        first = p.get("/")
        self.assertSaw(first, reused="no")
        for _ in range(3):
            self.assertSaw(p.get("/"), reused="yes")
        self.assertEqual((o.handshakes, o.resumed), (4, 3))

    def test_session_reuse_off(self):
        o = self.origin()
        p = self.start_portier({
            "upstream": {"tls": upstream(o.addr)},
            "server": [server(harness.free_port(), [
                location("/", proxy_pass="https://tls", proxy_ssl_session_reuse=False)])],
        })
        for _ in range(3):
            self.assertSaw(p.get("/"), reused="no")

    def test_failed_verification_passes_to_next_server(self):
        bad = self.origin(self.pki.other)  # other.test: not the name asked for
        good = self.origin()
        p = self.start_portier({
            "upstream": {"pair": upstream(bad.addr, good.addr)},
            "server": [server(harness.free_port(), [
                location("/", proxy_pass="https://pair", proxy_ssl_verify=True,
                         proxy_ssl_trusted_certificate=self.pki.ca,
                         proxy_ssl_name="backend.test")])],
        })
        for _ in range(4):
            self.assertSaw(p.get("/"), path="/")
        self.assertLogged(p, r"upstream SSL certificate verify error: \(62:hostname mismatch\) "
                          r"while SSL handshaking to upstream %s" % bad.addr)
        self.assertEqual(bad.handshakes, 0)

    def test_handshake_within_connect_timeout(self):
        mute = socket.socket()
        self.addCleanup(mute.close)
        mute.bind((harness.LOCALHOST, 0))
        mute.listen(8)  # the kernel completes the TCP handshake; nobody answers TLS
        p = self.start_portier({"server": [server(harness.free_port(), [
            location("/", proxy_pass="https://%s:%d" % mute.getsockname(),
                     proxy_connect_timeout="1s")])]})
        t0 = time.monotonic()
        r = p.get("/", timeout=15)
        self.assertPortierError(r, 504)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertLogged(p, r"upstream timed out while SSL handshaking")

    def raw_origin(self, serve):
        """A listening socket on 127.0.0.1 whose connections go, one by one, to <serve>(conn)
        in a thread; returns "host:port"."""
        ls = socket.socket()
        self.addCleanup(ls.close)
        ls.bind((harness.LOCALHOST, 0))
        ls.listen(8)

        def loop():
            while True:
                try:
                    conn, _ = ls.accept()
                except OSError:
                    return
                with conn:
                    try:
                        serve(conn)
                    except (OSError, ssl.SSLError):
                        pass
        threading.Thread(target=loop, daemon=True).start()
        return "%s:%d" % ls.getsockname()

    def fail_once(self, addr):
        """A portier passing / to https://<addr>, asked once: 502."""
        p = self.start_portier({"server": [server(harness.free_port(), [
            location("/", proxy_pass="https://%s" % addr, proxy_next_upstream="off")])]})
        self.assertPortierError(p.get("/"), 502)
        return p

    def test_origin_closing_in_handshake_is_logged_in_nginx_words(self):
        def close_after_hello(conn):
            conn.recv(65536)  # the ClientHello, so that the close is a FIN, not a reset
        addr = self.raw_origin(close_after_hello)
        p = self.fail_once(addr)
        self.assertLogged(p, r"peer closed connection in SSL handshake while SSL handshaking to "
                          r"upstream %s" % re.escape(addr))

    def test_plain_origin_is_a_handshake_error_with_openssl_reason(self):
        def plain_http(conn):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            time.sleep(0.5)
        addr = self.raw_origin(plain_http)
        p = self.fail_once(addr)
        self.assertLogged(p, r"SSL_do_handshake\(\) failed \(SSL: error:[0-9A-F]+:SSL routines::"
                          r"wrong version number\) while SSL handshaking to upstream %s"
                          % re.escape(addr))

    def test_tls_error_reading_the_response_is_logged(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.pki.backend)

        def garbage_after_handshake(conn):
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(65536)  # the request
                os.write(tls.fileno(), b"this is not a TLS record\r\n")  # under TLS
                time.sleep(0.5)
        addr = self.raw_origin(garbage_after_handshake)
        p = self.fail_once(addr)
        self.assertLogged(p, r"SSL_read\(\) with upstream %s failed \(SSL: error:"
                          % re.escape(addr))

    def test_root_only_client_key_read_by_master(self):
        key = self.pki.client[1]
        os.chmod(key, 0o600)
        o = self.origin(client_ca=self.pki.ca, require_client=True)
        p = self.start_portier({
            "upstream": {"tls": upstream(o.addr)},
            "server": [server(harness.free_port(), [
                location("/", proxy_pass="https://tls", proxy_ssl_certificate=self.pki.client[0],
                         proxy_ssl_certificate_key=key)])],
        })
        if os.getuid() == 0:
            self.assertNotEqual(harness.proc_uids(p.worker())[1], 0, "the worker runs as root")
        self.assertSaw(p.get("/"), client="portier-client")


if __name__ == "__main__":
    harness.main()
