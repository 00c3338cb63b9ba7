"""
TLS session resumption is shared by every worker: a session stored in the shared
cache (ssl_session_cache "shared:NAME:SIZE") or sealed in a ticket (keys made by the
master, or read from ssl_session_ticket_key files) resumes on another worker than the
one that issued it, and after a reload; a session of one server is not resumed on
another server of the same port with another certificate; a ticket from one portier
is accepted by another portier with the same key file and not by one with another.
Configuration errors name the directive.

The client is Python's ssl module; with TLS 1.3 the session (ticket) arrives after
the handshake, so each connection reads a whole response before taking .session.
"""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import types

import harness
from harness import location

WORKERS = 4
VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def make_cert(d, name):
    """A self-signed P-256 certificate for <name> in directory <d>: (crt, key) paths."""
    crt, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=" + name, "-addext",
                    "subjectAltName=DNS:" + name],
                   check=True, capture_output=True)
    return crt, key


def client_context(version):
    """A client context speaking only <version> ("TLSv1.2" or "TLSv1.3").  Python
    resumes a session only with the context that made it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
    return ctx


def read_response(s):
    """Status and body of one response with a Content-Length, read from <s>."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise harness.ProtocolError("connection closed in the head: %r" % data)
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(head.split(b" ")[1]), body[:length]


class Sessions(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="pt-it-certs-")
        os.chmod(cls.certdir, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.certdir, True)
        cls.a = make_cert(cls.certdir, "a.test")
        cls.b = make_cert(cls.certdir, "b.test")
        cls.ctx = {v: client_context(v) for v in VERSIONS}

    # -- configuration

    def tls_server(self, port, name, cert, default=False, **directives):
        """A server named <name> with certificate pair <cert> on 127.0.0.1:<port> ssl
        that answers its own name."""
        d = {"listen": ["127.0.0.1:%d ssl%s" % (port, " default_server" if default else "")],
             "server_name": [name], "ssl_certificate": cert[0], "ssl_certificate_key": cert[1]}
        d.update(directives)
        d["location"] = [location("/", ret="200 %s" % name)]
        return d

    def start(self, servers, workers=WORKERS):
        return self.start_portier({"server": servers}, main={"worker_processes": workers},
                                  workers=workers)

    # -- connections

    def fetch(self, p, port, version, sni, session=None):
        """One TLS connection to <port> with SNI (and Host) <sni>, offering <session>:
        the response body, whether the session was reused, the new session and the
        pid of the worker that served it."""
        raw = socket.create_connection((harness.LOCALHOST, port), timeout=10)
        with self.ctx[version].wrap_socket(raw, server_hostname=sni, session=session) as s:
            worker = p.worker_for(types.SimpleNamespace(local_port=s.getsockname()[1],
                                                        port=port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % sni.encode())
            status, body = read_response(s)
            self.assertEqual(status, 200)
            return types.SimpleNamespace(body=body, reused=s.session_reused, session=s.session,
                                         worker=worker)

    def resume_on_another_worker(self, p, port, version, sni="a.test", tries=200):
        """Pairs of connections from concurrent clients, a full handshake then one
        resuming its session, until a session resumes on another worker than the
        one that issued it (an idle worker would take every sequential connection).
        Every resumption must succeed, whichever worker takes it."""
        found, failures, lock = [], [], threading.Lock()

        def client():
            try:
                for _ in range(tries // 8):
                    with lock:
                        if found or failures:
                            return
                    first = self.fetch(p, port, version, sni)
                    second = self.fetch(p, port, version, sni, first.session)
                    with lock:
                        if first.reused or not second.reused:
                            failures.append("first reused %s, second reused %s (workers %d, %d)" %
                                            (first.reused, second.reused, first.worker,
                                             second.worker))
                        elif first.worker != second.worker:
                            found.append((first.worker, second.worker))
            except Exception as e:  # reported by the test's thread
                with lock:
                    failures.append(repr(e))

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])
        self.assertTrue(found, "no session was resumed on another worker in %d tries" % tries)
        return found[0]

    # -- tests

    def test_session_id_resumes_on_another_worker(self):
        port = harness.free_port()
        p = self.start([self.tls_server(port, "a.test", self.a, ssl_session_cache="shared:SSL:1m",
                                        ssl_session_tickets=False)])
        for version in VERSIONS:
            with self.subTest(version=version):
                self.resume_on_another_worker(p, port, version)

    def test_ticket_resumes_on_another_worker(self):
        port = harness.free_port()
        p = self.start([self.tls_server(port, "a.test", self.a, ssl_session_cache="off")])
        for version in VERSIONS:
            with self.subTest(version=version):
                self.resume_on_another_worker(p, port, version)

    def test_sessions_resume_after_reload(self):
        cache, tickets = harness.free_port(), harness.free_port()
        p = self.start([
            self.tls_server(cache, "a.test", self.a, ssl_session_cache="shared:SSL:1m",
                            ssl_session_tickets=False),
            self.tls_server(tickets, "a.test", self.a, ssl_session_cache="off"),
        ], workers=2)
        before = {(port, v): self.fetch(p, port, v, "a.test")
                  for port in (cache, tickets) for v in VERSIONS}
        old_workers = p.worker_pids()
        p.reload()
        # The old workers gone, only the new generation can take a connection.
        new_workers = p.wait_workers(2, exclude=old_workers)
        for (port, version), first in before.items():
            with self.subTest(port="cache" if port == cache else "tickets", version=version):
                second = self.fetch(p, port, version, "a.test", first.session)
                self.assertTrue(second.reused)
                self.assertIn(second.worker, new_workers)

    def test_session_of_one_server_not_resumed_on_another(self):
        cache, tickets = harness.free_port(), harness.free_port()
        p = self.start([
            self.tls_server(cache, "a.test", self.a, default=True,
                            ssl_session_cache="shared:SSL:1m", ssl_session_tickets=False),
            self.tls_server(cache, "b.test", self.b, ssl_session_cache="shared:SSL:1m",
                            ssl_session_tickets=False),
            self.tls_server(tickets, "a.test", self.a, default=True, ssl_session_cache="off"),
            self.tls_server(tickets, "b.test", self.b, ssl_session_cache="off"),
        ], workers=2)
        for port in (cache, tickets):
            for version in VERSIONS:
                for issuer, other in (("a.test", "b.test"), ("b.test", "a.test")):
                    with self.subTest(port="cache" if port == cache else "tickets",
                                      version=version, issuer=issuer):
                        first = self.fetch(p, port, version, issuer)
                        self.assertEqual(first.body, issuer.encode())
                        elsewhere = self.fetch(p, port, version, other, first.session)
                        self.assertEqual(elsewhere.body, other.encode())
                        self.assertFalse(elsewhere.reused)
                        # The session itself was good: its own server resumes it.
                        first = self.fetch(p, port, version, issuer)
                        again = self.fetch(p, port, version, issuer, first.session)
                        self.assertTrue(again.reused)

    def test_full_cache_drops_its_oldest_sessions(self):
        port = harness.free_port()
        p = self.start([self.tls_server(port, "a.test", self.a,
                                        ssl_session_cache="shared:SSL:32k",
                                        ssl_session_tickets=False)], workers=2)
        # TLS 1.2: resuming a session leaves it in the cache.  32k holds a few dozen.
        sessions = [self.fetch(p, port, "TLSv1.2", "a.test").session for _ in range(150)]
        self.assertFalse(self.fetch(p, port, "TLSv1.2", "a.test", sessions[0]).reused)
        for s in sessions[-10:]:
            self.assertTrue(self.fetch(p, port, "TLSv1.2", "a.test", s).reused)

    def key_file(self, name, size):
        path = os.path.join(self.certdir, name)
        with open(path, "wb") as f:
            f.write(os.urandom(size))
        return path

    def test_ticket_key_file_shared_between_instances(self):
        for size in (80, 48):
            with self.subTest(size=size):
                k1 = self.key_file("k1-%d.key" % size, size)
                k2 = self.key_file("k2-%d.key" % size, size)
                ports = [harness.free_port() for _ in range(3)]
                keys = [[k1], [k2, k1], [k2]]  # the first file encrypts, all decrypt
                ps = [self.start([self.tls_server(port, "a.test", self.a,
                                                  ssl_session_cache="off",
                                                  ssl_session_ticket_key=k)], workers=1)
                      for port, k in zip(ports, keys)]
                for version in VERSIONS:
                    first = self.fetch(ps[0], ports[0], version, "a.test")
                    # k1 decrypts it on the second; the ticket it gets instead is k2's.
                    second = self.fetch(ps[1], ports[1], version, "a.test", first.session)
                    self.assertTrue(second.reused, version)
                    self.assertFalse(self.fetch(ps[2], ports[2], version, "a.test",
                                                first.session).reused, version)
                    third = self.fetch(ps[2], ports[2], version, "a.test", second.session)
                    self.assertTrue(third.reused, version)

    def config_error(self, **directives):
        """The stderr of `portier -t` on a server with <directives> (it must fail)."""
        port = harness.free_port()
        p = self.start_portier({"server": [self.tls_server(port, "a.test", self.a,
                                                           **directives)]}, start=False)
        r = p.run("-t", "-c", p.conf_path)
        self.assertEqual(r.returncode, 1, r)
        return r.stderr.decode()

    def test_ticket_key_file_of_wrong_size_is_refused(self):
        bad = self.key_file("bad.key", 64)
        err = self.config_error(ssl_session_ticket_key=bad)
        self.assertRegex(err, r'portier\.conf:\d+: "ssl_session_ticket_key" file "%s" must be '
                              r'48 or 80 bytes' % bad)

    def test_builtin_session_cache_is_refused(self):
        err = self.config_error(ssl_session_cache="builtin:1000 shared:SSL:1m")
        self.assertRegex(err, r'portier\.conf:\d+: "ssl_session_cache" "builtin:1000 '
                              r'shared:SSL:1m": builtin caches are not supported')

    def test_one_zone_name_with_two_sizes_is_refused(self):
        port = harness.free_port()
        p = self.start_portier({"server": [
            self.tls_server(port, "a.test", self.a, default=True,
                            ssl_session_cache="shared:SSL:1m"),
            self.tls_server(port, "b.test", self.b, ssl_session_cache="shared:SSL:2m"),
        ]}, start=False)
        r = p.run("-t", "-c", p.conf_path)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn('zone "SSL" is already declared with another size', r.stderr.decode())


if __name__ == "__main__":
    harness.main()
