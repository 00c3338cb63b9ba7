"""
OCSP stapling (ssl_stapling, ssl_stapling_verify, ssl_stapling_responder,
ssl_stapling_file), nginx's meaning, but fetched once for all workers by the
helper process and shared through shared memory.

Each test builds a throw-away CA with the openssl CLI: a CA, a delegated OCSP
signer, leaf certificates whose authorityInfoAccess names a responder on
127.0.0.1, and an index.txt.  The responder is a small HTTP server on
127.0.0.1 that answers every POST by running `openssl ocsp -reqin ... -index
index.txt -rsigner ... -CA ca.crt -respout ...`: the openssl CLI makes the
responses, the server only carries them and records the requests (`openssl ocsp
-port` of OpenSSL 3.0 listens on every interface and takes no address).  The
client is `openssl s_client -status`.
"""

import os
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from harness import location, server

OPENSSL = shutil.which("openssl") or "openssl"
X509V3 = """
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ ca ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ signer ]
basicConstraints = CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,OCSPSigning
[ leaf ]
basicConstraints = CA:false
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
"""


def run(*args, cwd):
    subprocess.run([OPENSSL] + list(args), cwd=cwd, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)


class PKI:
    """A CA in directory <dir>: ca.crt/ca.key, an OCSP signer (ocsp.crt/key), an
    unrelated "evil" CA whose key signs nothing legitimate, leaves and index.txt."""

    def __init__(self, dir):
        self.dir = dir
        self.index = []
        with open(self.path("x509v3.cnf"), "w") as f:
            f.write(X509V3)
        with open(self.path("index.txt.attr"), "w") as f:
            f.write("unique_subject = no\n")  # every leaf is CN=localhost
        self._self_signed("ca", "Test CA")
        self._self_signed("evil", "Evil CA")
        self._issue("ocsp", "OCSP signer", "signer", 0x2001)
        self._lock = threading.Lock()
        self._n = 0

    def path(self, name):
        return os.path.join(self.dir, name)

    def _key(self, name, kind):
        if kind == "rsa":
            run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", name + ".key", cwd=self.dir)
        else:
            run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", name + ".key", cwd=self.dir)

    def _self_signed(self, name, cn):
        self._key(name, "ec")
        run("req", "-x509", "-new", "-key", name + ".key", "-out", name + ".crt", "-days", "30",
            "-subj", "/CN=" + cn, "-config", "x509v3.cnf", "-extensions", "ca", cwd=self.dir)

    def _issue(self, name, cn, ext, serial, aia=None, kind="ec"):
        self._key(name, kind)
        run("req", "-new", "-key", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn,
            "-config", "x509v3.cnf", cwd=self.dir)
        extfile = "x509v3.cnf"
        if aia:
            extfile = name + ".ext"
            with open(self.path(extfile), "w") as f:
                f.write(X509V3 + "authorityInfoAccess = OCSP;URI:%s\n" % aia)
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", str(serial), "-days", "30", "-out", name + ".crt",
            "-extfile", extfile, "-extensions", ext, cwd=self.dir)

    def leaf(self, name, serial, aia=None, kind="ec", revoked=False):
        """Issues leaf <name> (name.crt, name.key, and name-chain.pem with the CA
        after it) with <serial>, listed in index.txt as valid or revoked."""
        self._issue(name, "localhost", "leaf", serial, aia, kind)
        with open(self.path(name + "-chain.pem"), "w") as out:
            for part in (name + ".crt", "ca.crt"):
                with open(self.path(part)) as f:
                    out.write(f.read())
        expiry = time.strftime("%y%m%d%H%M%SZ", time.gmtime(time.time() + 30 * 86400))
        revocation = time.strftime("%y%m%d%H%M%SZ", time.gmtime(time.time() - 3600))
        self.index.append("%s\t%s\t%s\t%X\tunknown\t/CN=localhost\n" %
                          ("R" if revoked else "V", expiry, revocation if revoked else "", serial))
        with open(self.path("index.txt"), "w") as f:
            f.writelines(self.index)
        return self.path(name + "-chain.pem"), self.path(name + ".key")

    def respond(self, request, signer="ocsp"):
        """The DER response `openssl ocsp` makes to DER <request>, signed by <signer>."""
        with self._lock:
            self._n += 1
            n = self._n
        req, resp = self.path("req%d.der" % n), self.path("resp%d.der" % n)
        with open(req, "wb") as f:
            f.write(request)
        run("ocsp", "-reqin", req, "-respout", resp, "-index", "index.txt", "-CA", "ca.crt",
            "-rsigner", signer + ".crt", "-rkey", signer + ".key", "-ndays", "1", cwd=self.dir)
        with open(resp, "rb") as f:
            return f.read()

    def offline_response(self, name):
        """A response for leaf <name> made without any network: -reqout, then -reqin."""
        run("ocsp", "-issuer", "ca.crt", "-cert", name + ".crt", "-no_nonce",
            "-reqout", name + ".req", cwd=self.dir)
        with open(self.path(name + ".req"), "rb") as f:
            der = self.respond(f.read())
        with open(self.path(name + ".ocsp"), "wb") as f:
            f.write(der)
        return self.path(name + ".ocsp")


class Responder:
    """An OCSP responder over HTTP on 127.0.0.1.  <signer> names the key that signs
    ("evil": a key the CA never certified); <failures> first answers are 500s."""

    def __init__(self, pki, signer="ocsp", failures=0):
        self.pki, self.signer, self.failures = pki, signer, failures
        self.requests = []  # (path, content type, body)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests.append((self.path, self.headers.get("Content-Type"), body))
                if outer.failures > 0:
                    outer.failures -= 1
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                der = outer.pki.respond(body, outer.signer)
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(der)))
                self.end_headers()
                self.wfile.write(der)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((harness.LOCALHOST, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = "http://%s:%d/" % (harness.LOCALHOST, self.port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def s_client(port, status=True, sigalgs=None, servername="localhost"):
    """What `openssl s_client` prints for one handshake with 127.0.0.1:<port>."""
    argv = [OPENSSL, "s_client", "-connect", "%s:%d" % (harness.LOCALHOST, port),
            "-servername", servername]
    if status:
        argv.append("-status")
    if sigalgs:
        argv += ["-sigalgs", sigalgs]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    out = r.stdout.decode("utf-8", "replace")
    if "BEGIN CERTIFICATE" not in out:
        raise AssertionError("no TLS handshake with port %d:\n%s%s" %
                             (port, out, r.stderr.decode("utf-8", "replace")))
    return out


def stapled(out):
    return "OCSP Response Status: successful" in out


class Stapling(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="pt-it-ocsp-")
        os.chmod(self.dir, 0o755)
        if not harness.KEEP_TMP:
            self.addCleanup(shutil.rmtree, self.dir, True)
        self.pki = PKI(self.dir)
        self.port = harness.free_port()

    def responder(self, **kw):
        r = Responder(self.pki, **kw)
        self.addCleanup(r.stop)
        return r

    def portier(self, certs, workers=1, **ssl):
        """portier with one TLS server on self.port for <certs> [(chain, key)]."""
        directives = {"ssl_certificate": [c for c, _ in certs],
                      "ssl_certificate_key": [k for _, k in certs], "ssl_stapling": True}
        directives.update(ssl)
        srv = server(self.port, [location("/", ret="200 ok")], **directives)
        srv["listen"] = ["%s:%d ssl" % (harness.LOCALHOST, self.port)]
        return self.start_portier({"server": [srv]}, main={"worker_processes": workers},
                                  workers=workers)

    def wait_stapled(self, **kw):
        return harness.wait_until(lambda: (lambda o: o if stapled(o) else None)(
            s_client(self.port, **kw)), 20, 0.2, "a stapled OCSP response")

    def test_fetched_once_for_all_workers_and_stapled(self):
        rsp = self.responder()
        leaf = self.pki.leaf("leaf", 0x1001, aia=rsp.url)
        self.portier([leaf], workers=2, ssl_stapling_verify=True,
                     ssl_trusted_certificate=self.pki.path("ca.crt"))
        out = self.wait_stapled()
        self.assertIn("Cert Status: good", out)
        self.assertIn("Serial Number: 1001", out)
        for _ in range(6):  # whichever worker takes the connection
            self.assertIn("Cert Status: good", s_client(self.port))
        self.assertEqual(len(rsp.requests), 1, rsp.requests)
        path, ctype, _ = rsp.requests[0]
        self.assertEqual((path, ctype), ("/", "application/ocsp-request"))

    def test_client_that_does_not_ask_gets_no_response(self):
        rsp = self.responder()
        leaf = self.pki.leaf("leaf", 0x1001, aia=rsp.url)
        self.portier([leaf])
        self.wait_stapled()
        out = s_client(self.port, status=False)
        self.assertNotIn("OCSP", out)

    def test_nothing_stapled_before_a_response_is_fetched(self):
        rsp = self.responder(failures=1000)
        leaf = self.pki.leaf("leaf", 0x1001, aia=rsp.url)
        p = self.portier([leaf])
        harness.wait_for_line(p.error_log, r"\[warn\].*cannot get the OCSP response of certificate"
                              r" \".*leaf-chain.pem\" from %s: HTTP status 500; next try in 5s"
                              % rsp.url, 10)
        self.assertIn("OCSP response: no response sent", s_client(self.port))

    def test_failed_fetch_is_retried(self):
        rsp = self.responder(failures=1)
        leaf = self.pki.leaf("leaf", 0x1001, aia=rsp.url)
        self.portier([leaf])
        self.assertIn("Cert Status: good", self.wait_stapled())
        self.assertEqual(len(rsp.requests), 2)

    def test_responder_directive_overrides_the_certificate_url(self):
        rsp = self.responder()
        dead = "http://%s:%d/" % (harness.LOCALHOST, harness.free_port())
        leaf = self.pki.leaf("leaf", 0x1001, aia=dead)
        self.portier([leaf], ssl_stapling_responder=rsp.url + "ocsp/path")
        self.assertIn("Cert Status: good", self.wait_stapled())
        self.assertEqual(rsp.requests[0][0], "/ocsp/path")

    def test_each_certificate_gets_its_own_response(self):
        rsp = self.responder()
        ecdsa = self.pki.leaf("ecdsa", 0x1001, aia=rsp.url)
        rsa = self.pki.leaf("rsa", 0x1002, aia=rsp.url, kind="rsa")
        self.portier([rsa, ecdsa], ssl_stapling_verify=True,
                     ssl_trusted_certificate=self.pki.path("ca.crt"))
        out = self.wait_stapled(sigalgs="ECDSA+SHA256")
        self.assertIn("Serial Number: 1001", out)
        out = self.wait_stapled(sigalgs="RSA-PSS+SHA256:RSA+SHA256")
        self.assertIn("Serial Number: 1002", out)
        self.assertEqual(len(rsp.requests), 2)

    def test_issuer_missing_from_the_file_is_found_in_trusted_certificates(self):
        rsp = self.responder()
        self.pki.leaf("leaf", 0x1001, aia=rsp.url)
        leaf = (self.pki.path("leaf.crt"), self.pki.path("leaf.key"))  # no chain
        self.portier([leaf], ssl_stapling_verify=True,
                     ssl_trusted_certificate=self.pki.path("ca.crt"))
        self.assertIn("Cert Status: good", self.wait_stapled())

    def test_server_chosen_by_sni_staples_its_own_response(self):
        rsp = self.responder()
        plain = self.pki.leaf("plain", 0x1001)
        named = self.pki.leaf("named", 0x1002, aia=rsp.url)
        listen = ["%s:%d ssl" % (harness.LOCALHOST, self.port)]
        default = server(self.port, [location("/", ret="200 ok")], ssl_certificate=plain[0],
                         ssl_certificate_key=plain[1])
        stapling = server(self.port, [location("/", ret="200 ok")], names=["named.test"],
                          ssl_certificate=named[0], ssl_certificate_key=named[1],
                          ssl_stapling=True)
        default["listen"] = stapling["listen"] = listen
        self.start_portier({"server": [default, stapling]})
        out = self.wait_stapled(servername="named.test")
        self.assertIn("Serial Number: 1002", out)
        self.assertIn("OCSP response: no response sent", s_client(self.port))

    def test_revoked_response_is_stapled_without_verify(self):
        rsp = self.responder()
        leaf = self.pki.leaf("leaf", 0x1001, aia=rsp.url, revoked=True)
        self.portier([leaf])
        self.assertIn("Cert Status: revoked", self.wait_stapled())

    def test_revoked_response_is_not_stapled_with_verify(self):
        rsp = self.responder()
        leaf = self.pki.leaf("leaf", 0x1001, aia=rsp.url, revoked=True)
        p = self.portier([leaf], ssl_stapling_verify=True,
                         ssl_trusted_certificate=self.pki.path("ca.crt"))
        harness.wait_for_line(p.error_log, r"\[warn\].*certificate status \"revoked\"", 10)
        self.assertIn("OCSP response: no response sent", s_client(self.port))

    def test_response_signed_by_a_wrong_key_is_not_stapled_with_verify(self):
        rsp = self.responder(signer="evil")
        leaf = self.pki.leaf("leaf", 0x1001, aia=rsp.url)
        p = self.portier([leaf], ssl_stapling_verify=True,
                         ssl_trusted_certificate=self.pki.path("ca.crt"))
        harness.wait_for_line(p.error_log, r"\[warn\].*%s: the response does not verify"
                              % rsp.url, 10)
        self.assertIn("OCSP response: no response sent", s_client(self.port))

    def test_response_signed_by_a_wrong_key_is_stapled_without_verify(self):
        rsp = self.responder(signer="evil")
        leaf = self.pki.leaf("leaf", 0x1001, aia=rsp.url)
        self.portier([leaf])
        self.assertIn("Cert Status: good", self.wait_stapled())

    def test_reload_staples_at_once_without_fetching_again(self):
        rsp = self.responder()
        leaf = self.pki.leaf("leaf", 0x1001, aia=rsp.url)
        p = self.portier([leaf])
        self.wait_stapled()
        p.reload()
        self.assertIn("Cert Status: good", s_client(self.port))
        harness.wait_for_line(p.error_log, r"\[info\].*helper: OCSP response of certificate "
                              r"\".*leaf-chain.pem\" kept from the previous helper, next fetch in "
                              r"\d+s")
        self.assertEqual(len(rsp.requests), 1)

    def test_certificate_without_responder_url_warns_and_staples_nothing(self):
        leaf = self.pki.leaf("leaf", 0x1001)
        p = self.portier([leaf])
        # Said while the configuration is read: on stderr at start, in the log on reload.
        harness.wait_for_line(p.stderr, r"\[warn\].*\"ssl_stapling\" ignored for certificate "
                              r"\".*leaf-chain.pem\": no OCSP responder URL in the certificate")
        self.assertIn("OCSP response: no response sent", s_client(self.port))

    def test_stapling_file_is_stapled_as_is(self):
        dead = "http://%s:%d/" % (harness.LOCALHOST, harness.free_port())
        leaf = self.pki.leaf("leaf", 0x1001, aia=dead)
        der = self.pki.offline_response("leaf")
        self.portier([leaf], ssl_stapling_file=der)
        out = s_client(self.port)
        self.assertIn("Cert Status: good", out)
        self.assertIn("Serial Number: 1001", out)

    def config_test(self, **ssl):
        """`portier -t` of a TLS server with <ssl>: (exit code, what it printed)."""
        leaf = (self.pki.path("leaf-chain.pem"), self.pki.path("leaf.key"))
        srv = server(self.port, [location("/", ret="200 ok")], ssl_certificate=leaf[0],
                     ssl_certificate_key=leaf[1], ssl_stapling=True, **ssl)
        srv["listen"] = ["%s:%d ssl" % (harness.LOCALHOST, self.port)]
        p = self.start_portier({"server": [srv]}, start=False)
        r = p.run("-t", "-c", p.conf_path)
        return r.returncode, r.stderr.decode() + r.stdout.decode()

    def test_stapling_file_missing_or_invalid_fails_the_configuration(self):
        self.pki.leaf("leaf", 0x1001)
        garbage = self.pki.path("garbage.der")
        with open(garbage, "wb") as f:
            f.write(b"not an OCSP response")
        for bad in (self.pki.path("missing.der"), garbage):
            with self.subTest(file=bad):
                rc, out = self.config_test(ssl_stapling_file=bad)
                self.assertNotEqual(rc, 0, out)
                self.assertRegex(out, r"portier\.conf:\d+: cannot read ssl_stapling_file \"%s\""
                                 % bad)

    def test_invalid_responder_fails_the_configuration(self):
        self.pki.leaf("leaf", 0x1001)
        for bad in ("https://127.0.0.1/", "http://127.0.0.1:99999/", "http:///x"):
            with self.subTest(url=bad):
                rc, out = self.config_test(ssl_stapling_responder=bad)
                self.assertNotEqual(rc, 0, out)
                self.assertRegex(out, r"portier\.conf:\d+: invalid OCSP responder \"%s\"" % bad)


if __name__ == "__main__":
    harness.main()
