"""
The waf module (issue 15): libmodsecurity with the OWASP Core Rule Set from Debian's
modsecurity-crs package, at paranoia level 1.  Attacks in the URI, the query, a header, a
urlencoded, a JSON and a multipart body are refused with 403 and portier's error page
carrying the request id, logged with their rule ids and that id (the transaction's
unique_id), and reach the origin with nothing, not even a header; the same kinds of benign
requests pass with their bodies intact.  DetectionOnly logs and lets through.  The request
body limit (Reject, and ProcessPartial streaming 100 MiB without the worker's memory
growing), phase 3 and 4 refusals on the response, the audit log in JSON, inheritance and
the transaction id, and rule errors at `portier -t`.
"""

import hashlib
import json
import os
import re
import signal
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from harness import location, server, upstream

CRS_SETUP = "/etc/modsecurity/crs/crs-setup.conf"
CRS_RULES = "/usr/share/modsecurity-crs/rules"

# The base ModSecurity settings of the tests (those of ModSecurity's recommended file that
# matter here); ENGINE, LIMIT, ACTION and DIR filled in.
BASE = """SecRuleEngine {engine}
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^application/json" \\
    "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRequestBodyLimit {limit}
SecRequestBodyNoFilesLimit {limit}
SecRequestBodyLimitAction {action}
SecRule REQBODY_ERROR "!@eq 0" \\
    "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.'"
SecResponseBodyAccess Off
SecAuditEngine RelevantOnly
SecAuditLogRelevantStatus "^(?:5|4(?!04))"
SecAuditLogParts ABIJDEFHZ
SecAuditLogType Serial
SecAuditLogFormat JSON
SecAuditLog {dir}/audit.json
SecTmpDir {dir}
SecDataDir {dir}
"""

CRS = "Include %s\nInclude %s/*.conf\n" % (CRS_SETUP, CRS_RULES)


def require_crs():
    """The CRS from Debian must be there (scripts/deps installs it): a test without its
    data fails, it never passes silently."""
    for p in (CRS_SETUP, CRS_RULES):
        if not os.path.exists(p):
            raise AssertionError("%s is missing: run scripts/deps (modsecurity-crs)" % p)


class Origin:
    """An HTTP/1.1 origin that reads each request body whole (Content-Length or chunked),
    records (method, target, body length, sha256 of the body) and answers 200 "ok".  A
    request may ask for extra response fields (X-Reply-Header: "Name: value") and a body
    (X-Reply-Body)."""

    def __init__(self):
        self.seen = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def body(self):
                h = hashlib.sha256()
                n = 0
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b""):
                                pass
                            return n, h.hexdigest()
                        n += self.read_into(h, size)
                        self.rfile.readline()
                return self.read_into(h, int(self.headers.get("Content-Length", "0"))), \
                    h.hexdigest()

            def read_into(self, h, left):
                n = 0
                while left:
                    b = self.rfile.read(min(left, 1 << 20))
                    if not b:
                        break
                    h.update(b)
                    n += len(b)
                    left -= len(b)
                return n

            def answer(self):
                n, digest = self.body()
                origin.seen.append((self.command, self.path, n, digest))
                out = self.headers.get("X-Reply-Body", "ok").encode()
                self.send_response(200)
                for v in self.headers.get_all("X-Reply-Header") or []:
                    k, _, val = v.partition(":")
                    self.send_header(k.strip(), val.strip())
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.addr = "127.0.0.1:%d" % self.port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def rules_file(p, name, text):
    path = os.path.join(p.dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def waf_portier(case, locations, rules_text, workers=1, **http):
    """A portier (not started) whose server has modsecurity on with <rules_text> written
    to a file in its directory ({dir} filled in) and <locations>."""
    port = harness.free_port()
    p = harness.Portier(start=False)
    path = rules_file(p, "rules.conf", rules_text.replace("{dir}", p.dir))
    h = {"upstream": {"o": upstream(case.origin.addr, keepalive=4)},
         "server": [server(port, locations, modsecurity=True, modsecurity_rules_file=path)]}
    h.update(http)
    p.write_config(h, main={"worker_processes": workers})
    return p


def multipart(fields, boundary="----portiertest7MA4YWxk"):
    """A multipart/form-data body of (name, filename or None, content) parts."""
    out = b""
    for name, filename, content in fields:
        disp = 'form-data; name="%s"' % name
        if filename:
            disp += '; filename="%s"' % filename
        out += b"--%s\r\nContent-Disposition: %s\r\n" % (boundary.encode(), disp.encode())
        if filename:
            out += b"Content-Type: text/plain\r\n"
        out += b"\r\n" + content + b"\r\n"
    out += b"--%s--\r\n" % boundary.encode()
    return out, "multipart/form-data; boundary=%s" % boundary


FORM = "application/x-www-form-urlencoded"

# (name, method, target, headers, body, the rule id prefix expected in the log)
ATTACKS = [
    ("sqli in the query", "GET", "/search?id=1%27%20OR%20%271%27%3D%271", [], None, "942"),
    ("xss in the query", "GET", "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", [], None, "941"),
    ("path traversal", "GET", "/download?file=../../../../etc/passwd", [], None, "930"),
    ("response splitting in the uri", "GET",
     "/r?next=%0d%0aSet-Cookie:%20session%3Devil", [], None, "921"),
    ("xss in a header", "GET", "/page", [("Referer", "<script>alert(document.cookie)</script>")],
     None, "941"),
    ("sqli in a urlencoded body", "POST", "/login", [("Content-Type", FORM)],
     b"user=admin%27%20OR%201%3D1--&password=x", "942"),
    ("sqli in a json body", "POST", "/api/search", [("Content-Type", "application/json")],
     b'{"q": "1 UNION SELECT password FROM users"}', "942"),
    ("xss in a multipart body", "POST", "/upload", None, None, "941"),
]

BENIGN = [
    ("a query", "GET", "/products?id=42&sort=name&q=blue+shoes", [], None),
    ("a form", "POST", "/login", [("Content-Type", FORM)], b"user=alice&password=s3cret%21"),
    ("json", "POST", "/api/items", [("Content-Type", "application/json")],
     b'{"name": "Alice", "tags": ["a", "b"], "n": 3}'),
    ("a multipart upload", "POST", "/upload", None, None),
    # Past client_body_buffer_size: read ahead into a temporary file and sent from it.
    ("a 200 KiB form", "POST", "/blob", [("Content-Type", FORM)],
     b"note=" + b"abcdefghijklmnopqrstuvwxyz0123456789" * 5700 + b"&end=1"),
]


def body_of(name, headers, body, attack):
    if headers is not None:
        return headers, body
    content = b"<script>alert(document.cookie)</script>" if attack else b"hello, world\n" * 40
    b, ctype = multipart([("title", None, content), ("file", "notes.txt", b"plain notes\n")])
    return [("Content-Type", ctype)], b


class CoreRuleSet(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        require_crs()
        cls.origin = Origin()
        cls.addClassCleanup(cls.origin.stop)
        rules = BASE.format(engine="On", limit=13107200, action="Reject", dir="{dir}") + CRS
        cls.p = waf_portier(cls, [location("/", proxy_pass="http://o")], rules, workers=2)
        cls.addClassCleanup(cls.p.cleanup)
        cls._class_portiers = [cls.p]
        cls.p.start(workers=2)

    def send(self, method, target, headers, body):
        with harness.Client(self.p.port) as c:
            return c.request(method, target, headers=headers, body=body, host="localhost")

    def test_attacks_are_refused_logged_and_never_reach_the_origin(self):
        for name, method, target, headers, body, rule in ATTACKS:
            with self.subTest(name):
                headers, body = body_of(name, headers, body, True)
                before = len(self.origin.seen)
                r = self.send(method, target, headers, body)
                self.assertPortierError(r, 403)
                m = re.search(rb"request id ([0-9a-f]{32})", r.body)
                self.assertIsNotNone(m, r.body)
                rid = m.group(1).decode()
                # Each matched rule at warn, the refusal at error, both with the request id.
                harness.wait_until(lambda: 'Access denied with code 403' in self.lines(rid),
                                   what="the refusal in the error log")
                ids = re.findall(r'\[id "(\d+)"\]', self.lines(rid))
                self.assertTrue(any(i.startswith(rule) for i in ids), (rule, ids))
                self.assertIn("949110", ids)
                self.assertEqual(self.origin.seen[before:], [], name)

    def lines(self, rid):
        return "\n".join(l for l in harness.read_file(self.p.error_log).splitlines()
                         if '[unique_id "%s"]' % rid in l)

    def test_benign_requests_pass_with_their_bodies(self):
        for name, method, target, headers, body in BENIGN:
            with self.subTest(name):
                headers, body = body_of(name, headers, body, False)
                before = len(self.origin.seen)
                r = self.send(method, target, headers, body)
                self.assertEqual((r.status, r.body), (200, b"ok"), r)
                digest = hashlib.sha256(body or b"").hexdigest()
                self.assertEqual(self.origin.seen[before:],
                                 [(method, target, len(body or b""), digest)])

    def test_a_chunked_body_is_inspected_and_passed_whole(self):
        chunks = [b"user=alice&", b"note=" + b"x" * 30000, b"&end=1"]
        raw = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        before = len(self.origin.seen)
        r = self.send("POST", "/chunked", [("Content-Type", FORM),
                                           ("Transfer-Encoding", "chunked")], raw)
        self.assertEqual(r.status, 200, r)
        whole = b"".join(chunks)
        self.assertEqual(self.origin.seen[before:],
                         [("POST", "/chunked", len(whole), hashlib.sha256(whole).hexdigest())])
        bad = [b"user=x&q=", b"1%27%20UNION%20SELECT%20password%20FROM%20users--"]
        raw = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in bad) + b"0\r\n\r\n"
        r = self.send("POST", "/chunked", [("Content-Type", FORM),
                                           ("Transfer-Encoding", "chunked")], raw)
        self.assertPortierError(r, 403)
        self.assertEqual(len(self.origin.seen), before + 1)

    def test_the_audit_log_is_json_with_the_request_id(self):
        r = self.send("GET", "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", [], None)
        rid = re.search(rb"request id ([0-9a-f]{32})", r.body).group(1).decode()
        path = os.path.join(self.p.dir, "audit.json")

        def entry():
            for line in harness.read_file(path).splitlines():
                if rid in line:
                    return json.loads(line)
            return None
        harness.wait_until(lambda: entry() is not None, what="the audit log entry")
        t = entry()["transaction"]
        self.assertEqual(t["unique_id"], rid)
        self.assertEqual(t["response"]["http_code"], 403)
        self.assertIn("941100", {m["details"]["ruleId"] for m in t["messages"]})


class DetectionOnly(harness.TestCase):

    def test_attacks_are_logged_and_let_through(self):
        require_crs()
        self.origin = Origin()
        self.addCleanup(self.origin.stop)
        rules = BASE.format(engine="DetectionOnly", limit=13107200, action="Reject",
                            dir="{dir}") + CRS
        p = waf_portier(self, [location("/", proxy_pass="http://o")], rules)
        self._portiers.append(p)
        self.addCleanup(p.cleanup)
        p.start()
        r = p.get("/search?id=1%27%20OR%20%271%27%3D%271")
        self.assertEqual((r.status, r.body), (200, b"ok"), r)
        self.assertEqual(len(self.origin.seen), 1)
        harness.wait_until(lambda: '[id "942100"]' in harness.read_file(p.error_log),
                           what="the matched rule in the error log")
        self.assertNotIn("Access denied", harness.read_file(p.error_log))


class Levels(harness.TestCase):
    """Rules and switches per location, with nginx's inheritance, and the transaction id."""

    @classmethod
    def setUpClass(cls):
        require_crs()
        cls.origin = Origin()
        cls.addClassCleanup(cls.origin.stop)
        rules = BASE.format(engine="On", limit=13107200, action="Reject", dir="{dir}") + CRS
        cls.p = waf_portier(cls, [
            location("/", proxy_pass="http://o"),
            location("/off/", proxy_pass="http://o", modsecurity=False),
            location("/detect/", proxy_pass="http://o",
                     modsecurity_rules="SecRuleEngine DetectionOnly"),
            location("/strict/", proxy_pass="http://o", modsecurity_rules=(
                'SecRule ARGS:token "!@rx ^[0-9]+$" '
                '"id:100010,phase:2,deny,status:406,log,msg:\'token is not a number\'"')),
            location("/moved/", proxy_pass="http://o", modsecurity_rules=(
                'SecRule ARGS:legacy "@streq 1" '
                '"id:100011,phase:1,redirect:https://new.example/,log,msg:\'legacy client\'"')),
            location("/txid/", proxy_pass="http://o",
                     modsecurity_transaction_id="tx-$request_id"),
            location("/ep/", proxy_pass="http://o", error_page=["403 @refused"]),
            location("@refused", ret="403 refused by the site's policy\n"),
            location("/ep2/", proxy_pass="http://o", error_page=["403 /sorry/page"]),
            location("/sorry/", proxy_pass="http://o"),
        ], rules)
        cls.addClassCleanup(cls.p.cleanup)
        cls._class_portiers = [cls.p]
        cls.p.start()

    ATTACK = "?id=1%27%20OR%20%271%27%3D%271"

    def test_modsecurity_off_in_a_location(self):
        self.assertEqual(self.p.get("/off/x" + self.ATTACK).status, 200)

    def test_a_location_s_own_rules_come_with_the_parent_s(self):
        self.assertEqual(self.p.get("/detect/x" + self.ATTACK).status, 200)
        self.assertEqual(self.p.get("/strict/x?token=12").status, 200)
        self.assertPortierError(self.p.get("/strict/x?token=abc"), 406)
        self.assertPortierError(self.p.get("/strict/x" + self.ATTACK + "&token=1"), 403)
        self.assertPortierError(self.p.get("/" + self.ATTACK), 403)

    def test_error_page_answers_a_refusal_once(self):
        before = len(self.origin.seen)
        r = self.p.get("/ep/x" + self.ATTACK, headers=[("Content-Type", FORM)])
        self.assertEqual((r.status, r.body), (403, b"refused by the site's policy\n"), r)
        self.assertEqual(len(self.origin.seen), before)
        # One refusal logged for the request, not one more for the error page's pass.
        log = harness.read_file(self.p.error_log)
        self.assertEqual(log.count("Access denied") - self.denied_before, 1)

    def test_error_page_to_a_proxied_uri_is_not_judged_again(self):
        before = len(self.origin.seen)
        r = self.p.get("/ep2/x" + self.ATTACK)
        self.assertEqual((r.status, r.body), (403, b"ok"), r)
        self.assertEqual(self.origin.seen[before:], [("GET", "/sorry/page", 0,
                                                      hashlib.sha256(b"").hexdigest())])
        log = harness.read_file(self.p.error_log)
        self.assertEqual(log.count("Access denied") - self.denied_before, 1)

    def setUp(self):
        super().setUp()
        self.denied_before = harness.read_file(self.p.error_log).count("Access denied")

    def test_a_redirect_intervention_answers_302_with_its_location(self):
        before = len(self.origin.seen)
        r = self.p.get("/moved/x?legacy=1")
        self.assertEqual((r.status, r.header("Location")), (302, "https://new.example/"), r)
        self.assertEqual(len(self.origin.seen), before)
        self.assertEqual(self.p.get("/moved/x?legacy=0").status, 200)

    def test_transaction_id_names_the_transaction(self):
        r = self.p.get("/txid/x" + self.ATTACK)
        self.assertPortierError(r, 403)
        rid = re.search(rb"request id ([0-9a-f]{32})", r.body).group(1).decode()
        harness.wait_until(lambda: '[unique_id "tx-%s"]' % rid in
                           harness.read_file(self.p.error_log), what="the transaction id")


def worker_rss_kib(p):
    pid = p.worker_pids()[0]
    with open("/proc/%d/status" % pid) as f:
        return {k: int(v.split()[0]) for k, v in
                (l.split(":", 1) for l in f if l.startswith(("VmRSS", "VmHWM")))}


class BodyLimits(harness.TestCase):

    def portier(self, action, limit=1 << 20, extra=""):
        self.origin = Origin()
        self.addCleanup(self.origin.stop)
        rules = BASE.format(engine="On", limit=limit, action=action, dir="{dir}") + extra
        p = waf_portier(self, [location("/", proxy_pass="http://o", client_max_body_size="0",
                                        client_body_buffer_size="16k")], rules)
        self._portiers.append(p)
        self.addCleanup(p.cleanup)
        p.start()
        return p

    def test_reject_refuses_a_body_over_the_limit_and_sends_nothing(self):
        p = self.portier("Reject")
        with harness.Client(p.port) as c:
            r = c.request("POST", "/up", body=b"a" * (2 << 20),
                          headers=[("Content-Type", "text/plain")])
        self.assertPortierError(r, 403)
        self.assertEqual(self.origin.seen, [])

    def test_process_partial_streams_100_mib_in_bounded_memory(self):
        rule = ('SecRule REQUEST_BODY "@contains EVIL" '
                '"id:100020,phase:2,deny,status:403,log,msg:\'evil in the body\'"\n')
        p = self.portier("ProcessPartial", extra=rule)
        before = worker_rss_kib(p)
        total = 100 << 20
        piece = bytes(range(256)) * 4096  # 1 MiB
        h = hashlib.sha256()
        s = socket.create_connection(("127.0.0.1", p.port))
        s.sendall(b"POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n"
                  b"Content-Length: %d\r\n\r\n" % total)
        for _ in range(total // len(piece)):
            s.sendall(piece)
            h.update(piece)
        s.settimeout(60)
        resp = b""
        while b"\r\n\r\n" not in resp:
            got = s.recv(65536)
            if not got:
                break
            resp += got
        s.close()
        self.assertTrue(resp.startswith(b"HTTP/1.1 200"), resp[:200])
        self.assertEqual(self.origin.seen, [("POST", "/up", total, h.hexdigest())])
        after = worker_rss_kib(p)
        # The rules saw 1 MiB; the rest streamed.  Not 100 MiB, nor tens of it.
        self.assertLess(after["VmHWM"] - before["VmRSS"], 24 << 10, (before, after))
        # Within the limit, the rules see the body: the same rule refuses.
        with harness.Client(p.port) as c:
            r = c.request("POST", "/up", body=b"x" * 1000 + b"EVIL",
                          headers=[("Content-Type", "text/plain")])
        self.assertPortierError(r, 403)


class ResponsePhases(harness.TestCase):

    def test_phase_3_replaces_the_response_and_phase_4_cuts_it_short(self):
        self.origin = Origin()
        self.addCleanup(self.origin.stop)
        rules = BASE.format(engine="On", limit=1 << 20, action="Reject", dir="{dir}") + (
            "SecResponseBodyAccess On\nSecResponseBodyMimeType text/html\n"
            'SecRule RESPONSE_HEADERS:X-Leak "@streq secret" '
            '"id:100030,phase:3,deny,status:403,log,msg:\'leaky header\'"\n'
            'SecRule RESPONSE_BODY "@contains TOPSECRET" '
            '"id:100031,phase:4,deny,status:403,log,msg:\'leaky body\'"\n')
        p = waf_portier(self, [location("/", proxy_pass="http://o")], rules)
        self._portiers.append(p)
        self.addCleanup(p.cleanup)
        p.start()
        r = p.get("/h", headers=[("X-Reply-Header", "X-Leak: secret")])
        self.assertPortierError(r, 403)
        self.assertIsNone(r.header("X-Leak"))
        self.assertIn(b"request id", r.body)
        ok = p.get("/h", headers=[("X-Reply-Body", "all fine")])
        self.assertEqual((ok.status, ok.body), (200, b"all fine"))
        # The fields are out before the body is judged: the response is cut short.
        with harness.Client(p.port) as c:
            c.send(harness.build_request("GET", "/b", headers=[
                ("X-Reply-Body", "TOPSECRET " * 10)]))
            with self.assertRaises(Exception):
                c.read_response()
        harness.wait_until(lambda: '[id "100031"]' in harness.read_file(p.error_log),
                           what="the phase 4 refusal")


class Reload(harness.TestCase):

    def test_reload_reads_the_rules_again_and_a_bad_file_keeps_the_old(self):
        self.origin = Origin()
        self.addCleanup(self.origin.stop)
        rule = ('SecRule ARGS:x "@streq bad" '
                '"id:100040,phase:2,deny,status:403,log,msg:\'x is bad\'"\n')
        p = waf_portier(self, [location("/", proxy_pass="http://o")],
                        BASE.format(engine="DetectionOnly", limit=1 << 20, action="Reject",
                                    dir="{dir}") + rule)
        self._portiers.append(p)
        self.addCleanup(p.cleanup)
        p.start()
        path = os.path.join(p.dir, "rules.conf")
        self.assertEqual(p.get("/?x=bad").status, 200)
        rules_file(p, "rules.conf", BASE.format(engine="On", limit=1 << 20, action="Reject",
                                                dir=p.dir) + rule)
        p.reload()
        harness.wait_until(lambda: p.get("/?x=bad").status == 403, what="the new rules")
        rules_file(p, "rules.conf", "SecRuleEngine Sometimes\n")
        p.signal(signal.SIGHUP)
        harness.wait_until(lambda: "Rules error" in harness.read_file(p.error_log),
                           what="the refused reload in the error log")
        self.assertPortierError(p.get("/?x=bad"), 403)
        self.assertEqual(p.get("/?x=good").status, 200)
        self.assertIn(path, harness.read_file(p.error_log))


class RuleErrors(harness.TestCase):

    def check(self, **directives):
        port = harness.free_port()
        p = self.start_portier({"server": [server(port, [location("/", ret="200 ok")],
                                                  modsecurity=True, **directives)]},
                               start=False)
        res = p.run("-t", "-c", p.conf_path)
        line = next(i for i, l in enumerate(p.text.splitlines(), 1) if "modsecurity_rules" in l)
        return res.returncode, res.stderr.decode(), line, p

    def test_a_syntax_error_names_the_rules_file_and_line(self):
        p0 = harness.Portier(start=False)
        self.addCleanup(p0.cleanup)
        path = rules_file(p0, "bad.conf", "SecRuleEngine On\nSecRuleEngine Sometimes\n")
        rc, err, line, _ = self.check(modsecurity_rules_file=path)
        self.assertNotEqual(rc, 0, err)
        self.assertIn("portier.conf:%d: modsecurity_rules_file %s:" % (line, path), err)
        self.assertIn("Line: 2", err)

    def test_a_missing_rules_file(self):
        rc, err, line, _ = self.check(modsecurity_rules_file="/nonexistent/rules.conf")
        self.assertNotEqual(rc, 0, err)
        self.assertIn('portier.conf:%d: cannot read "/nonexistent/rules.conf": No such file'
                      % line, err)

    def test_inline_rules_errors(self):
        rc, err, line, _ = self.check(modsecurity_rules="SecRuleEngine On\nSecRuleEngine Sometimes")
        self.assertNotEqual(rc, 0, err)
        self.assertIn("portier.conf:%d: modsecurity_rules: " % line, err)


if __name__ == "__main__":
    harness.main()
