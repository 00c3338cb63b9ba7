"""
Response compression (the gzip module): gzip, br and zstd bodies that decode to the
upstream's exact bytes, small, 100 MiB (with the worker's memory watched) and chunked;
the headers a compressed response carries (no Content-Length, chunked, Vary, weak ETag);
every response that must go out as it came (already encoded, 204, 304, HEAD, 206, short,
type not listed, no-transform, HTTP/1.0, gzip off, gzip_disable, gzip_proxied); the
directives that tune it; Accept-Encoding q-values; server-sent events flushed one by one.
"""

import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib

import harness
from harness import MIB, location, server, upstream

# Growth of the worker's VmRSS allowed during a 100 MiB transfer: the compressor's window
# and tables are a few MiB; ASan keeps freed memory in quarantine (as in test_bodies).
RSS_SLACK_KIB = (64 if harness.binary_is_sanitized(harness.PORTIER_BIN) else 16) * 1024
BIG = 100 * MIB
TYPES = ["text/plain", "text/html", "text/event-stream"]
TOOLS = {"br": "brotli", "zstd": "zstd"}
MSIE6 = "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"
MSIE6_SV1 = "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)"


def check_config(http):
    """`portier -t` on a config whose http block is <http> (libconfig text): (exit code,
    stderr as text)."""
    d = tempfile.mkdtemp(prefix="pt-it-gzip-")
    try:
        conf = os.path.join(d, "portier.conf")
        with open(conf, "w") as f:
            f.write("http = { %s };\n" % http)
        p = subprocess.run([harness.PORTIER_BIN, "-t", "-c", conf], capture_output=True,
                           timeout=20, stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def built(coding):
    """Whether this build of portier produces <coding> ("br" or "zstd"): a build without
    the library refuses a config that turns it on, naming the library."""
    directive, library = {"br": ("brotli", "libbrotli"), "zstd": ("zstd", "libzstd")}[coding]
    if not os.access(harness.PORTIER_BIN, os.X_OK):
        return False  # harness.main() says what is missing
    rc, err = check_config("gzip = true; %s = true;" % directive)
    if rc != 0 and library not in err:
        raise RuntimeError("portier -t failed on %s = true: %r" % (directive, err))
    return rc == 0


CODINGS = ("gzip",) + tuple(c for c in ("br", "zstd") if built(c) and shutil.which(TOOLS[c]))
BR, ZSTD = "br" in CODINGS, "zstd" in CODINGS
needs_br_zstd = unittest.skipUnless(BR and ZSTD, "portier built without brotli or zstd "
                                    "(or the brotli/zstd tools are missing)")


def decode(coding, data):
    """The bytes that <data>, encoded with <coding>, stands for."""
    if coding == "gzip":
        z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = z.decompress(data)
        if not z.eof or z.unused_data:
            raise AssertionError("gzip stream not ended properly (eof=%r, %d bytes after)"
                                 % (z.eof, len(z.unused_data)))
        return out
    p = subprocess.run([TOOLS[coding], "-d", "-c"], input=data, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("%s -d failed: %r" % (TOOLS[coding], p.stderr))
    return p.stdout


class StreamDecoder:
    """Decodes a body of <coding> as it arrives, handing the decoded bytes to <sink>:
    zlib in process for gzip, the brotli or zstd tool through pipes for the others.
    Memory stays bounded whatever the decoded size."""

    def __init__(self, coding, sink):
        self.coding = coding
        self.sink = sink
        if coding == "gzip":
            self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            return
        self.proc = subprocess.Popen([TOOLS[coding], "-d", "-c"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self):
        while True:
            data = self.proc.stdout.read1(1 << 20)
            if not data:
                return
            self.sink(data)

    def __call__(self, data):
        if self.coding != "gzip":
            self.proc.stdin.write(data)
            return
        data = bytes(data)
        while data:
            self.sink(self.z.decompress(data, 1 << 20))
            data = self.z.unconsumed_tail

    def close(self):
        """Ends the stream; raises if it did not decode whole."""
        if self.coding == "gzip":
            self.sink(self.z.flush())
            if not self.z.eof or self.z.unused_data:
                raise AssertionError("gzip stream not ended properly")
            return
        self.proc.stdin.close()
        self.reader.join(120)
        err = self.proc.stderr.read()
        if self.proc.wait(60) != 0:
            raise AssertionError("%s -d failed: %r" % (TOOLS[self.coding], err))


class RssSampler:
    """Samples the VmRSS of <pid> every few milliseconds while in a with block."""

    def __init__(self, pid):
        self.pid = pid
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(harness.rss_kib(self.pid))
            self._stop.wait(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def read_chunks(c, deadline):
    """Yields the data of each chunk of a chunked body on <c> as it arrives."""
    while True:
        size = int(c.read_line(deadline).split(b";")[0].strip(), 16)
        if size == 0:
            while c.read_line(deadline) not in (b"\r\n", b"\n"):
                pass
            return
        yield c.read_exact(size, deadline)
        if c.read_exact(2, deadline) != b"\r\n":
            raise harness.ProtocolError("chunk not followed by CRLF")


def words(n, seed=1):
    """About <n> bytes of text of pseudo-random words: compressible, but not trivially."""
    rnd = random.Random(seed)
    vocab = ["".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9)))
             for _ in range(2000)]
    out, size = [], 0
    while size < n:
        w = rnd.choice(vocab)
        out.append(w)
        size += len(w) + 1
    return (" ".join(out) + "\n").encode()


def ae(value):
    return [("Accept-Encoding", value)]


class Gzip(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.b1 = cls.class_backend("b1")
        cls.port = harness.free_port()
        cls.default_port = harness.free_port()
        app = "http://app"
        cls.p = cls.class_portier({
            "upstream": {"app": upstream(cls.b1.addr, keepalive=8)},
            "server": [
                # Compression set at the server level, inherited by every location that
                # does not say otherwise.
                server(cls.port, [
                    location("/", proxy_pass=app),
                    location("/gz/", proxy_pass=app, brotli=False, zstd=False),
                    location("/off/", proxy_pass=app, gzip=False),
                    location("/min/", proxy_pass=app, gzip_min_length=1000),
                    location("/vary/", proxy_pass=app, gzip_vary=True),
                    location("/msie/", proxy_pass=app, gzip_disable="msie6"),
                    location("/ua/", proxy_pass=app, gzip_disable="^curl/|wget"),
                    location("/proxied-any/", proxy_pass=app, gzip_proxied="any"),
                    location("/proxied-expired/", proxy_pass=app,
                             gzip_proxied=["expired", "no-cache"]),
                    location("/level1/", proxy_pass=app, gzip_comp_level=1),
                    location("/level9/", proxy_pass=app, gzip_comp_level=9),
                    location("/brq0/", proxy_pass=app, brotli_comp_level=0),
                    location("/brq11/", proxy_pass=app, brotli_comp_level=11),
                    location("/zstd1/", proxy_pass=app, zstd_comp_level=1),
                    location("/zstd19/", proxy_pass=app, zstd_comp_level=19),
                    location("/all/", proxy_pass=app, gzip_types="*"),
                ], gzip=True, brotli=BR or None, zstd=ZSTD or None, gzip_types=TYPES,
                    gzip_min_length=0),
                # nginx's defaults: gzip_types, gzip_min_length 20, no brotli/zstd.
                server(cls.default_port, [location("/", proxy_pass=app, gzip=True)]),
            ],
        })

    def get(self, path, accept=None, port=None, **kw):
        headers = list(kw.pop("headers", []))
        if accept is not None:
            headers += ae(accept)
        return self.p.get(path, port=port, headers=headers, **kw)

    def assertCompressed(self, r, coding, expected=None):
        """<r> is <coding>-encoded (decoding to <expected> when given), chunked, without
        Content-Length, with Vary: Accept-Encoding."""
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header_all("Content-Encoding"), [coding], r)
        self.assertIsNone(r.header("Content-Length"), r)
        self.assertTrue(r.chunked, "compressed response not chunked: %r" % r)
        self.assertEqual(self.vary_tokens(r).count("accept-encoding"), 1, r)
        body = decode(coding, r.body)
        if expected is not None:
            self.assertEqual(body, expected)
        return body

    def assertIdentity(self, r, status=200):
        self.assertEqual(r.status, status, r)
        self.assertIsNone(r.header("Content-Encoding"), r)

    @staticmethod
    def vary_tokens(r):
        return [t.strip().lower() for v in r.header_all("Vary") for t in v.split(",") if t.strip()]

    # -- every coding decodes to the upstream's bytes

    def test_small_body_decodes_exactly_in_every_coding(self):
        for coding in CODINGS:
            with self.subTest(coding=coding):
                r = self.get("/bytes?n=1000&type=text/plain", coding)
                self.assertCompressed(r, coding, harness.pattern_bytes(0, 1000))

    def test_empty_body_is_a_valid_empty_stream_in_every_coding(self):
        for coding in CODINGS:
            with self.subTest(coding=coding):
                r = self.get("/bytes?n=0&type=text/plain", coding)
                self.assertCompressed(r, coding, b"")

    def test_chunked_upstream_body_decodes_exactly_in_every_coding(self):
        n = 3 * MIB + 123
        for coding in CODINGS:
            with self.subTest(coding=coding):
                r = self.get("/bytes?n=%d&chunked=1&chunk=1000&type=text/plain" % n, coding)
                self.assertCompressed(r, coding, harness.pattern_bytes(0, n))

    def test_text_body_decodes_exactly_in_every_coding(self):
        text = words(300000)
        for coding in CODINGS:
            with self.subTest(coding=coding):
                r = harness.http_request(self.port, "POST", "/echo", headers=ae(coding), body=text)
                body = self.assertCompressed(r, coding)
                self.assertTrue(body.endswith(b"\r\n\r\n" + text), body[-200:])
                self.assertLess(len(r.body), len(text) // 2)

    def test_100mib_body_in_every_coding_with_bounded_worker_memory(self):
        for coding in CODINGS:
            with self.subTest(coding=coding):
                self.big_transfer(coding)

    def big_transfer(self, coding):
        checker = harness.PatternChecker()
        dec = StreamDecoder(coding, checker)
        with self.p.client(timeout=60) as c:
            self.assertEqual(c.request("GET", "/off/").status, 200)
            pid = self.p.worker_for(c)
            base = harness.rss_kib(pid)
            with RssSampler(pid) as rss:
                r = c.request("GET", "/bytes?n=%d&type=text/plain" % BIG, headers=ae(coding),
                              timeout=300, body_sink=dec)
                dec.close()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Encoding"), coding, r)
        self.assertIsNone(checker.bad_at, "%s: pattern broken at byte %r" % (coding, checker.bad_at))
        self.assertEqual(checker.offset, BIG, "%s: decoded %d bytes" % (coding, checker.offset))
        self.assertGreaterEqual(len(rss.samples), 3, "too few RSS samples")
        growth = max(rss.samples) - base
        sys.stderr.write("\n  %s 100 MiB: %d bytes on the wire, worker VmRSS %d KiB before, "
                         "max %d KiB during (%d samples)\n"
                         % (coding, r.body_len, base, max(rss.samples), len(rss.samples)))
        self.assertLessEqual(growth, RSS_SLACK_KIB, "%s: worker VmRSS grew by %d KiB"
                             % (coding, growth))

    # -- the headers of a compressed response

    def test_content_length_dropped_and_chunked_to_http11_client(self):
        plain = self.get("/bytes?n=5000&type=text/plain")
        self.assertEqual(plain.header("Content-Length"), "5000")
        r = self.get("/bytes?n=5000&type=text/plain", "gzip")
        self.assertCompressed(r, "gzip", harness.pattern_bytes(0, 5000))
        self.assertEqual(r.header_all("Transfer-Encoding"), ["chunked"])

    def test_vary_added_to_compressed_response(self):
        r = self.get("/bytes?n=100&type=text/plain", "gzip")
        self.assertCompressed(r, "gzip")
        self.assertEqual(r.header_all("Vary"), ["Accept-Encoding"])

    def test_vary_from_upstream_not_duplicated(self):
        for vary in ("Accept-Encoding", "accept-encoding", "Cookie, Accept-Encoding"):
            with self.subTest(vary=vary):
                r = self.get("/headers?Vary=" + vary.replace(" ", "%20"), "gzip")
                self.assertCompressed(r, "gzip", b"hello from b1\n")
                self.assertEqual(r.header_all("Vary"), [vary])

    def test_vary_on_two_upstream_lines_not_duplicated(self):
        r = self.get("/headers?Vary=Cookie&Vary=Accept-Encoding", "gzip")
        self.assertCompressed(r, "gzip", b"hello from b1\n")

    def test_other_vary_from_upstream_kept_and_accept_encoding_added(self):
        r = self.get("/headers?Vary=Cookie", "gzip")
        self.assertCompressed(r, "gzip")
        self.assertEqual(sorted(self.vary_tokens(r)), ["accept-encoding", "cookie"])

    def test_vary_star_left_alone(self):
        r = self.get("/headers?Vary=*", "gzip")
        self.assertEqual(r.header("Content-Encoding"), "gzip")
        self.assertEqual(r.header_all("Vary"), ["*"])

    def test_strong_etag_weakened(self):
        r = self.get('/headers?ETag="v1"', "gzip")
        self.assertCompressed(r, "gzip")
        self.assertEqual(r.header("ETag"), 'W/"v1"')

    def test_weak_etag_kept(self):
        r = self.get('/headers?ETag=W/"v1"', "gzip")
        self.assertCompressed(r, "gzip")
        self.assertEqual(r.header_all("ETag"), ['W/"v1"'])

    def test_strong_etag_kept_when_not_compressed(self):
        r = self.get('/headers?ETag="v1"')
        self.assertIdentity(r)
        self.assertEqual(r.header("ETag"), '"v1"')

    def test_accept_ranges_dropped_from_compressed_response(self):
        r = self.get("/headers?Accept-Ranges=bytes", "gzip")
        self.assertCompressed(r, "gzip")
        self.assertIsNone(r.header("Accept-Ranges"))
        self.assertEqual(self.get("/headers?Accept-Ranges=bytes").header("Accept-Ranges"), "bytes")

    def test_media_type_parameters_and_case_ignored(self):
        for t in ("text/plain;%20charset=utf-8", "Text/HTML", "text/html%20;%20charset=utf-8"):
            with self.subTest(type=t):
                self.assertCompressed(self.get("/headers?type=" + t, "gzip"), "gzip",
                                      b"hello from b1\n")

    @needs_br_zstd
    def test_keepalive_connection_mixes_compressed_and_plain_responses(self):
        with self.p.client() as c:
            for accept in ("gzip", None, "br", "", "zstd"):
                r = c.request("GET", "/bytes?n=3000&type=text/plain",
                              headers=ae(accept) if accept is not None else [])
                if accept:
                    self.assertCompressed(r, accept, harness.pattern_bytes(0, 3000))
                else:
                    self.assertIdentity(r)
                    self.assertEqual(r.body, harness.pattern_bytes(0, 3000))

    def test_error_status_404_compressed_but_not_500(self):
        r = self.get("/status?code=404", "gzip")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.header("Content-Encoding"), "gzip")
        self.assertEqual(decode("gzip", r.body), b"status 404\n")
        self.assertIdentity(self.get("/status?code=500", "gzip"), 500)

    # -- never compressed

    def test_already_encoded_response_passed_untouched(self):
        for ce in ("gzip", "br", "deflate"):
            with self.subTest(content_encoding=ce):
                r = self.get("/headers?Content-Encoding=" + ce, "gzip, br, zstd")
                self.assertEqual(r.status, 200)
                self.assertEqual(r.header_all("Content-Encoding"), [ce])
                self.assertEqual(r.body, b"hello from b1\n")
                self.assertEqual(r.header("Content-Length"), "14")

    def test_identity_content_encoding_replaced_when_compressed(self):
        # "identity" is no coding (RFC 9110 8.4.1): the body is compressible, and the
        # response must not claim "identity, gzip"
        r = self.get("/headers?Content-Encoding=identity", "gzip")
        self.assertCompressed(r, "gzip", b"hello from b1\n")

    def test_204_not_compressed(self):
        r = self.get("/status?code=204", "gzip")
        self.assertIdentity(r, 204)
        self.assertEqual(r.body, b"")

    def test_304_not_compressed(self):
        r = self.get("/status?code=304", "gzip", headers=[("If-None-Match", '"x"')])
        self.assertIdentity(r, 304)
        self.assertEqual(r.body, b"")

    def test_head_carries_the_fields_of_get_and_no_body(self):
        # RFC 9110 9.3.2 (nginx leaves HEAD uncompressed: a difference on purpose).
        with self.p.client() as c:
            r = c.request("HEAD", "/bytes?n=5000&type=text/plain", headers=ae("gzip"))
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header_all("Content-Encoding"), ["gzip"], r)
            self.assertIsNone(r.header("Content-Length"), r)
            self.assertEqual(self.vary_tokens(r).count("accept-encoding"), 1, r)
            # nothing after the head: the next response on the connection is intact
            r = c.request("GET", "/bytes?n=10&type=text/plain")
        self.assertEqual(r.body, harness.pattern_bytes(0, 10))

    def test_206_range_response_not_compressed(self):
        r = self.get("/status?code=206", "gzip", headers=[("Range", "bytes=0-3")])
        self.assertIdentity(r, 206)
        self.assertEqual(r.body, b"status 206\n")

    def test_body_under_min_length_not_compressed(self):
        r = self.get("/min/bytes?n=999&type=text/plain", "gzip")
        self.assertIdentity(r)
        self.assertEqual(r.header("Content-Length"), "999")
        self.assertEqual(r.body, harness.pattern_bytes(0, 999))
        self.assertCompressed(self.get("/min/bytes?n=1000&type=text/plain", "gzip"), "gzip",
                              harness.pattern_bytes(0, 1000))

    def test_chunked_body_of_unknown_length_compressed_despite_min_length(self):
        r = self.get("/min/bytes?n=10&chunked=1&type=text/plain", "gzip")
        self.assertCompressed(r, "gzip", harness.pattern_bytes(0, 10))

    def test_type_not_listed_not_compressed(self):
        for path in ("/bytes?n=1000", "/bytes?n=1000&type=image/png",
                     "/bytes?n=1000&type=application/json"):
            with self.subTest(path=path):
                r = self.get(path, "gzip")
                self.assertIdentity(r)
                self.assertEqual(r.body, harness.pattern_bytes(0, 1000))

    def test_gzip_types_star_compresses_any_type(self):
        self.assertCompressed(self.get("/all/bytes?n=1000", "gzip"), "gzip",
                              harness.pattern_bytes(0, 1000))

    def test_cache_control_no_transform_not_compressed(self):
        for cc in ("no-transform", "public,%20no-transform", "max-age=60,NO-TRANSFORM"):
            with self.subTest(cache_control=cc):
                r = self.get("/headers?Cache-Control=" + cc, "gzip")
                self.assertIdentity(r)
                self.assertEqual(r.body, b"hello from b1\n")

    def test_cache_control_no_transform_on_second_line_not_compressed(self):
        r = self.get("/headers?Cache-Control=max-age=60&Cache-Control=no-transform", "gzip")
        self.assertIdentity(r)

    def test_http10_client_not_compressed(self):
        r = self.get("/bytes?n=1000&type=text/plain", "gzip", version="HTTP/1.0")
        self.assertIdentity(r)
        self.assertEqual(r.body, harness.pattern_bytes(0, 1000))

    def test_gzip_off_not_compressed(self):
        r = self.get("/off/bytes?n=1000&type=text/plain", "gzip, br, zstd")
        self.assertIdentity(r)
        self.assertEqual(r.header("Content-Length"), "1000")
        self.assertIsNone(r.header("Vary"))

    def test_client_without_accept_encoding_gets_identity(self):
        for accept in (None, "", "identity", "gzip;q=0", "deflate", "*;q=0"):
            with self.subTest(accept=accept):
                r = self.get("/bytes?n=1000&type=text/plain", accept)
                self.assertIdentity(r)
                self.assertEqual(r.header("Content-Length"), "1000")
                self.assertIsNone(r.header("Vary"))

    def test_client_gone_mid_compressed_body_leaves_worker_serving(self):
        with self.p.client() as c:
            c.send(harness.build_request("GET", "/bytes?n=%d&type=text/plain" % BIG,
                                         headers=ae("gzip")))
            head = c.read_head()
            self.assertIn(b"Content-Encoding: gzip", head)
            c.read_exact(1000, time.monotonic() + 10)
            pid = self.p.worker_for(c)
        r = self.get("/bytes?n=1000&type=text/plain", "gzip")
        self.assertCompressed(r, "gzip", harness.pattern_bytes(0, 1000))
        self.assertEqual(self.p.worker_pids(), [pid])

    # -- gzip_vary

    def test_gzip_vary_adds_vary_to_eligible_uncompressed_response(self):
        r = self.get("/vary/bytes?n=1000&type=text/plain")
        self.assertIdentity(r)
        self.assertEqual(r.header_all("Vary"), ["Accept-Encoding"])
        r = self.get("/vary/bytes?n=1000&type=text/plain", "gzip")
        self.assertCompressed(r, "gzip")
        self.assertEqual(r.header_all("Vary"), ["Accept-Encoding"])

    def test_gzip_vary_does_not_duplicate_upstream_vary(self):
        r = self.get("/vary/headers?Vary=Accept-Encoding")
        self.assertEqual(r.header_all("Vary"), ["Accept-Encoding"])

    # -- gzip_disable

    def test_gzip_disable_msie6(self):
        r = self.get("/msie/bytes?n=1000&type=text/plain", "gzip", headers=[("User-Agent", MSIE6)])
        self.assertIdentity(r)
        r = self.get("/msie/bytes?n=1000&type=text/plain", "gzip",
                     headers=[("User-Agent", MSIE6_SV1)])
        self.assertCompressed(r, "gzip", harness.pattern_bytes(0, 1000))
        r = self.get("/msie/bytes?n=1000&type=text/plain", "gzip",
                     headers=[("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0")])
        self.assertCompressed(r, "gzip")
        r = self.get("/msie/bytes?n=1000&type=text/plain", "gzip")  # no User-Agent
        self.assertCompressed(r, "gzip")

    def test_gzip_disable_custom_regex_is_case_insensitive(self):
        for ua, compressed in (("curl/8.5.0", False), ("Wget/1.21", False),
                               ("WGET/1.0", False), ("Mozilla/5.0 curl/8", True)):
            with self.subTest(user_agent=ua):
                r = self.get("/ua/bytes?n=1000&type=text/plain", "gzip",
                             headers=[("User-Agent", ua)])
                self.assertEqual(r.header("Content-Encoding"), "gzip" if compressed else None, r)

    def test_gzip_disable_takes_a_list(self):
        port = harness.free_port()
        p = self.start_portier({
            "upstream": {"app": upstream(self.b1.addr)},
            "server": [server(port, [location("/", proxy_pass="http://app")], gzip=True,
                              gzip_types=TYPES, gzip_disable=["msie6", "^curl/"])],
        }, start=False)
        try:
            p.start()
        except harness.StartError as e:
            self.fail("gzip_disable = [\"msie6\", \"^curl/\"] refused:\n%s" % e)
        for ua, compressed in ((MSIE6, False), ("curl/8", False), ("Firefox/120", True)):
            with self.subTest(user_agent=ua):
                r = p.get("/bytes?n=1000&type=text/plain", headers=ae("gzip") + [("User-Agent", ua)])
                self.assertEqual(r.header("Content-Encoding"), "gzip" if compressed else None, r)

    # -- gzip_proxied

    def test_gzip_proxied_off_refuses_request_with_via(self):
        r = self.get("/bytes?n=1000&type=text/plain", "gzip", headers=[("Via", "1.1 cache")])
        self.assertIdentity(r)
        self.assertEqual(r.body, harness.pattern_bytes(0, 1000))

    def test_gzip_proxied_any_compresses_request_with_via(self):
        r = self.get("/proxied-any/bytes?n=1000&type=text/plain", "gzip",
                     headers=[("Via", "1.1 cache")])
        self.assertCompressed(r, "gzip", harness.pattern_bytes(0, 1000))

    def test_gzip_proxied_expired_and_no_cache(self):
        via = [("Via", "1.1 cache")]
        cases = (("/headers", False),
                 ("/headers?Expires=Thu,%2001%20Jan%201970%2000:00:00%20GMT", True),
                 ("/headers?Cache-Control=no-cache", True),
                 ("/headers?Cache-Control=private", False))
        for path, compressed in cases:
            with self.subTest(path=path):
                r = self.get("/proxied-expired" + path, "gzip", headers=via)
                self.assertEqual(r.header("Content-Encoding"), "gzip" if compressed else None, r)

    # -- levels

    def compressed_size(self, prefix, coding, text):
        r = harness.http_request(self.port, "POST", prefix + "echo", headers=ae(coding), body=text)
        body = self.assertCompressed(r, coding)
        self.assertTrue(body.endswith(text))
        return len(r.body)

    def test_gzip_comp_level_changes_output_size(self):
        text = words(200000)
        fast, small = (self.compressed_size(p, "gzip", text) for p in ("/level1/", "/level9/"))
        sys.stderr.write("\n  gzip level 1: %d bytes, level 9: %d bytes\n" % (fast, small))
        self.assertLess(small, fast)

    @needs_br_zstd
    def test_brotli_comp_level_changes_output_size(self):
        text = words(200000)
        fast, small = (self.compressed_size(p, "br", text) for p in ("/brq0/", "/brq11/"))
        self.assertLess(small, fast)

    @needs_br_zstd
    def test_zstd_comp_level_changes_output_size(self):
        text = words(200000)
        fast, small = (self.compressed_size(p, "zstd", text) for p in ("/zstd1/", "/zstd19/"))
        self.assertLess(small, fast)

    # -- negotiation

    @needs_br_zstd
    def test_client_preference_chooses_br_over_gzip(self):
        r = self.get("/bytes?n=1000&type=text/plain", "gzip;q=0.5, br;q=0.9")
        self.assertCompressed(r, "br", harness.pattern_bytes(0, 1000))

    @needs_br_zstd
    def test_client_preference_chooses_gzip_over_br(self):
        r = self.get("/bytes?n=1000&type=text/plain", "br;q=0.5, gzip")
        self.assertCompressed(r, "gzip", harness.pattern_bytes(0, 1000))

    @needs_br_zstd
    def test_equal_preference_goes_to_server_order(self):
        r = self.get("/bytes?n=1000&type=text/plain", "gzip, deflate, zstd, br")
        self.assertCompressed(r, "br")
        r = self.get("/bytes?n=1000&type=text/plain", "gzip, zstd")
        self.assertCompressed(r, "zstd")

    @needs_br_zstd
    def test_codings_not_turned_on_are_not_offered(self):
        r = self.get("/gz/bytes?n=1000&type=text/plain", "br, zstd, gzip;q=0.1")
        self.assertCompressed(r, "gzip", harness.pattern_bytes(0, 1000))
        self.assertIdentity(self.get("/gz/bytes?n=1000&type=text/plain", "br, zstd"))

    def test_x_gzip_accepted(self):
        self.assertCompressed(self.get("/gz/bytes?n=1000&type=text/plain", "x-gzip"), "gzip")

    def test_accept_encoding_on_two_lines_is_one_list(self):
        # RFC 9110 5.3: field lines of a list-based field combine into one list
        r = self.get("/gz/bytes?n=1000&type=text/plain",
                     headers=[("Accept-Encoding", "br"), ("Accept-Encoding", "gzip")])
        self.assertCompressed(r, "gzip", harness.pattern_bytes(0, 1000))

    # -- nginx's defaults

    def test_default_types_compress_text_and_json_not_octet_stream(self):
        for t in ("text/html", "text/plain", "application/json", "application/javascript",
                  "image/svg%2Bxml"):
            with self.subTest(type=t):
                r = self.get("/bytes?n=1000&type=" + t, "gzip", port=self.default_port)
                self.assertCompressed(r, "gzip", harness.pattern_bytes(0, 1000))
        self.assertIdentity(self.get("/bytes?n=1000", "gzip", port=self.default_port))
        self.assertIdentity(self.get("/bytes?n=1000&type=image/png", "gzip",
                                     port=self.default_port))

    def test_default_min_length_is_20(self):
        r = self.get("/bytes?n=19&type=text/html", "gzip", port=self.default_port)
        self.assertIdentity(r)
        r = self.get("/bytes?n=20&type=text/html", "gzip", port=self.default_port)
        self.assertCompressed(r, "gzip", harness.pattern_bytes(0, 20))

    def test_brotli_and_zstd_off_by_default(self):
        r = self.get("/bytes?n=1000&type=text/html", "br, zstd, gzip;q=0.1",
                     port=self.default_port)
        self.assertCompressed(r, "gzip")

    # -- server-sent events

    def open_events(self, c, coding, n, ms):
        c.send(harness.build_request("GET", "/sse?n=%d&ms=%d" % (n, ms), headers=ae(coding)))
        r = c._parse_head(c.read_head())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "text/event-stream")
        self.assertEqual(r.header("Content-Encoding"), coding, r)
        self.assertEqual(r.header("Transfer-Encoding"), "chunked", r)
        return r

    def test_sse_first_event_readable_before_second_is_sent(self):
        # The second event is due a minute later: the first one can only be read now if
        # the compressor flushed it on its own.
        with self.p.client(timeout=15) as c:
            self.open_events(c, "gzip", 2, 60000)
            z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            got = b""
            for data in read_chunks(c, time.monotonic() + 10):
                got += z.decompress(data)
                if len(got) >= len(b"data: event 0\n\n"):
                    break
            self.assertEqual(got, b"data: event 0\n\n")

    def test_sse_events_arrive_one_by_one_and_stream_ends(self):
        events = [b"data: event %d\n\n" % i for i in range(4)]
        with self.p.client(timeout=15) as c:
            self.open_events(c, "gzip", len(events), 200)
            z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            got, seen = b"", []
            for data in read_chunks(c, time.monotonic() + 15):
                got += z.decompress(data)
                if got and (not seen or seen[-1] != got):
                    seen.append(got)
            self.assertTrue(z.eof, "gzip stream not ended")
        self.assertEqual(got, b"".join(events))
        # every event was readable on its own before the next one came
        for i in range(1, len(events) + 1):
            self.assertIn(b"".join(events[:i]), seen)

    @needs_br_zstd
    def test_sse_first_event_readable_in_br_and_zstd(self):
        # The command-line decoders print nothing of an unfinished stream, so the stream
        # received so far is closed by hand: after a flush it ends on a byte boundary,
        # where an empty last meta-block (br) or an empty last raw block (zstd, no
        # checksum) completes it.
        closers = {"br": b"\x03", "zstd": b"\x01\x00\x00"}
        for coding in ("br", "zstd"):
            with self.subTest(coding=coding), self.p.client(timeout=15) as c:
                self.open_events(c, coding, 2, 60000)
                wire, out = b"", b""
                for data in read_chunks(c, time.monotonic() + 10):
                    wire += data
                    p = subprocess.run([TOOLS[coding], "-d", "-c"], input=wire + closers[coding],
                                       capture_output=True, timeout=10)
                    out = p.stdout if p.returncode == 0 else b""
                    if out:
                        break
                self.assertEqual(out, b"data: event 0\n\n")

    def test_sse_whole_stream_decodes_in_every_coding(self):
        for coding in CODINGS:
            with self.subTest(coding=coding):
                r = self.get("/sse?n=3&ms=10", coding)
                self.assertCompressed(r, coding,
                                      b"".join(b"data: event %d\n\n" % i for i in range(3)))


class GzipConfig(harness.TestCase):

    def test_bad_values_refused_with_the_directive_named(self):
        cases = (("gzip_comp_level = 10;", '"gzip_comp_level" must be between 1 and 9, not 10'),
                 ("gzip_comp_level = 0;", '"gzip_comp_level" must be between 1 and 9, not 0'),
                 ("brotli_comp_level = 12;", '"brotli_comp_level" must be between 0 and 11'),
                 ("zstd_comp_level = 20;", '"zstd_comp_level" must be between 1 and 19'),
                 ('gzip_proxied = "sometimes";', 'invalid value "sometimes" for "gzip_proxied"'),
                 ('gzip_disable = "(";', 'invalid regex "(" in "gzip_disable"'))
        for directive, message in cases:
            with self.subTest(directive=directive):
                rc, err = check_config("gzip = true; " + directive)
                self.assertNotEqual(rc, 0, err)
                self.assertIn("portier.conf:1: " + message, err)

    def test_good_values_accepted(self):
        rc, err = check_config('gzip = true; gzip_comp_level = 9; gzip_min_length = "1k"; '
                               'gzip_types = ["text/plain", "application/json"]; '
                               'gzip_proxied = ["expired", "no-cache", "auth"]; gzip_vary = true;')
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    harness.main()
