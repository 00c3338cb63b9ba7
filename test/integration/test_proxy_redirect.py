"""
proxy_redirect, proxy_cookie_domain, proxy_cookie_path and proxy_pass with variables, with
nginx (Debian's, test/integration/nginx.py) beside portier on the same configuration and
the same origins: the Location, Refresh and Set-Cookie fields the client gets, and where a
request with a variable proxy_pass goes (which origin, what target), must be nginx's.  The
origins (ReplyOrigin) answer each request with the fields it asks for in X-Reply request
fields, so every test says what the upstream sends and what the client must get.

Portier alone: keepalive to a group chosen by a variable, an IPv6 address, the error log for
a name that is no group, https:// with variables (SNI and verification of each request's
host), and the configuration errors at their file:line.
"""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
import nginx
from harness import LOCALHOST, location, server, upstream


class ReplyOrigin:
    """An HTTP/1.1 origin (keepalive) on 127.0.0.1, or ::1 with <v6>: every request gets
    200 (X-Reply-Status: N for another), "X-Origin: <name>", X-Host and X-Got-Proxy-Host
    with the Host and X-Proxy-Host it got, one response field per X-Reply: "Name: value"
    field of the request, in order, and the body "<name> <target>".  It records (target,
    client port) of each request: the port tells connections apart."""

    def __init__(self, name, v6=False, tls=None):
        self.name = name
        self.seen = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                origin.seen.append((self.path, self.client_address[1]))
                body = ("%s %s" % (origin.name, self.path)).encode()
                self.send_response(int(self.headers.get("X-Reply-Status", "200")))
                self.send_header("X-Origin", origin.name)
                self.send_header("X-Host", self.headers.get("Host", "-"))
                self.send_header("X-Got-Proxy-Host", self.headers.get("X-Proxy-Host", "-"))
                for v in self.headers.get_all("X-Reply") or []:
                    k, _, val = v.partition(":")
                    self.send_header(k.strip(), val.strip())
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if v6 else socket.AF_INET
            daemon_threads = True

        self.httpd = Server(("::1" if v6 else LOCALHOST, 0), Handler)
        if tls:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.addr = ("[::1]:%d" if v6 else LOCALHOST + ":%d") % self.port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# The locations of the main server, both sides: (path, [(directive, value)]).  A value is
# nginx's argument text; a directive given several times is a list on portier's side.
# {stable} is the stable origin's address.
LOCATIONS = [
    ("/one/", [("proxy_pass", "http://stable/two/")]),
    ("/plain/", [("proxy_pass", "http://stable")]),
    ("/addr/", [("proxy_pass", "http://{stable}/two/")]),
    ("/explicit/", [("proxy_pass", "http://stable/"),
                    ("proxy_redirect", "default"),
                    ("proxy_redirect", "http://other.example/ http://$host:$server_port/other/"),
                    ("proxy_redirect", "http://other.example/never/ /never/")]),
    ("/regex/", [("proxy_pass", "http://stable"),
                 ("proxy_redirect", r"~^http://([^/:]+)(:\d+)?/old/(.*)$ https://$1/new/$3"),
                 ("proxy_redirect", r"~*^HTTP://CASE\.EXAMPLE/(?<rest>.*)$ /case/$rest")]),
    ("/off/", [("proxy_pass", "http://stable/two/"), ("proxy_redirect", "off")]),
    ("/relative/", [("proxy_pass", "http://stable"), ("proxy_redirect", "/ /")]),
    ("/notabsolute/", [("proxy_pass", "http://stable/two/"), ("absolute_redirect", "off")]),
    ("/cookie/", [("proxy_pass", "http://stable"),
                  ("proxy_cookie_domain", "backend.internal example.org"),
                  ("proxy_cookie_domain", r"~^(?<sub>[a-z]+)\.corp\.internal$ $sub.example.com"),
                  ("proxy_cookie_path", "/two/ /one/"),
                  ("proxy_cookie_path", r"~*^/APP(/.*)?$ /front$1")]),
    ("/pool/", [("proxy_pass", "http://$http_x_pool"),
                ("proxy_set_header", "X-Proxy-Host $proxy_host")]),
    ("/canary/", [("proxy_pass", "http://$cookie_pool$request_uri")]),
    ("/release/", [("proxy_pass", "http://$release_pool")]),
    ("/fixed/", [("proxy_pass", "http://$http_x_pool/fixed/path")]),
    ("/query/", [("proxy_pass", "http://$http_x_pool?only=1")]),
    ("/rewritten/", [("rewrite", "^/rewritten/(.*)$ /new/$1 break"),
                     ("proxy_pass", "http://$http_x_pool")]),
    ("/rewrittenfixed/", [("rewrite", "^/rewrittenfixed/(.*)$ /new/$1 break"),
                          ("proxy_pass", "http://$http_x_pool/fixed")]),
    ("/varredirect/", [("proxy_pass", "http://$http_x_pool"),
                       ("proxy_redirect", "http://$proxy_host/ /varredirect/")]),
]

# A second server whose proxy_redirect is set at the server level.
INHERIT_LOCATIONS = [
    ("/inherit/", [("proxy_pass", "http://stable/two/")]),
    ("/own/", [("proxy_pass", "http://stable/two/"),
               ("proxy_redirect", "http://own.example/ /own-rule/")]),
]
INHERIT_SERVER_RULE = "http://server.example/ /from-server/"

# The canary by cookie as it is usually written: a map from the cookie to the group.
RELEASE_MAP = ["default stable", "canary canary", "~^beta- canary"]


def nginx_http(port, port2, origins):
    def loc(path, directives):
        return "    location %s { %s }" % (path, " ".join(
            "%s %s;" % (d, v.format(**origins)) for d, v in directives))

    return ("  map $cookie_release $release_pool {\n    %s;\n  }\n"
            "  upstream stable { server %s; keepalive 4; }\n"
            "  upstream canary { server %s; }\n"
            "  server {\n    listen 127.0.0.1:%d;\n%s\n  }\n"
            "  server {\n    listen 127.0.0.1:%d;\n    proxy_redirect %s;\n%s\n  }"
            % (";\n    ".join(RELEASE_MAP), origins["stable"], origins["canary"], port,
               "\n".join(loc(p, d) for p, d in LOCATIONS), port2, INHERIT_SERVER_RULE,
               "\n".join(loc(p, d) for p, d in INHERIT_LOCATIONS)))


def portier_location(path, directives, origins):
    settings = {}
    for d, v in directives:
        v = v.format(**origins)
        if d in ("proxy_redirect", "proxy_cookie_domain", "proxy_cookie_path",
                 "proxy_set_header", "rewrite"):
            settings.setdefault(d, []).append(v)
        else:
            settings[d] = v
    return location(path, **settings)


def portier_http(port, port2, origins):
    return {"map": [{"source": "$cookie_release", "variable": "$release_pool",
                     "entries": RELEASE_MAP}],
            "upstream": {"stable": upstream(origins["stable"], keepalive=4),
                         "canary": upstream(origins["canary"])},
            "server": [server(port, [portier_location(p, d, origins) for p, d in LOCATIONS]),
                       server(port2, [portier_location(p, d, origins)
                                      for p, d in INHERIT_LOCATIONS],
                              proxy_redirect=[INHERIT_SERVER_RULE])]}


class SideBySide(harness.TestCase):
    """Every test asks nginx and portier the same, asserts they answer the same, and that
    the answer is the one nginx's documentation and source give."""

    @classmethod
    def setUpClass(cls):
        cls.stable = ReplyOrigin("stable")
        cls.addClassCleanup(cls.stable.stop)
        cls.canary = ReplyOrigin("canary")
        cls.addClassCleanup(cls.canary.stop)
        origins = {"stable": cls.stable.addr, "canary": cls.canary.addr}
        cls.nport, cls.nport2 = harness.free_port(), harness.free_port()
        cls.nginx = nginx.Nginx(cls.nport, nginx_http(cls.nport, cls.nport2, origins))
        cls.addClassCleanup(cls.nginx.stop)
        cls.pport, cls.pport2 = harness.free_port(), harness.free_port()
        cls.p = cls.class_portier(portier_http(cls.pport, cls.pport2, origins))

    def ask(self, port, path, replies=(), headers=(), fields=("Location", "Refresh", "Set-Cookie")):
        """(status, {field: [values]}, body) of GET <path> on <port> with Host localhost:PORT,
        the origin asked to reply <replies> ("Name: value"); the port reads "PORT"."""
        hdrs = [("X-Reply", r) for r in replies] + list(headers)
        with harness.Client(port) as c:
            r = c.request("GET", path, headers=hdrs, host="localhost:%d" % port)
        seen = {f: [v.replace(str(port), "PORT") for v in r.header_all(f)] for f in fields}
        return r.status, seen, r.body.decode("latin-1") if r.status == 200 else None

    def same(self, path, replies=(), headers=(), second=False, **kw):
        """Asks both; asserts nginx (right) and portier (left) agree; returns the answer."""
        nport, pport = (self.nport2, self.pport2) if second else (self.nport, self.pport)
        want = self.ask(nport, path, replies, headers, **kw)
        got = self.ask(pport, path, replies, headers, **kw)
        self.assertEqual(got, want, "portier (left) and nginx (right) answered differently")
        return got

    def location(self, path, loc, second=False):
        """The Location the client gets for <loc> from the upstream, the same on both."""
        return self.same(path, ["Location: " + loc], second=second)[1]["Location"]

    # -- proxy_redirect default

    def test_default_replaces_proxy_pass_url_by_the_location(self):
        self.assertEqual(self.location("/one/x", "http://stable/two/some/uri/"),
                         ["http://localhost:PORT/one/some/uri/"])

    def test_default_without_a_uri_part_replaces_url_and_slash_by_slash(self):
        self.assertEqual(self.location("/plain/x", "http://stable/plain/y?a=1"),
                         ["http://localhost:PORT/plain/y?a=1"])

    def test_default_of_an_address_proxy_pass(self):
        self.assertEqual(self.location("/addr/x", "http://%s/two/z" % self.stable.addr),
                         ["http://localhost:PORT/addr/z"])

    def test_default_leaves_other_urls_and_relative_ones_as_they_are(self):
        self.assertEqual(self.location("/one/x", "http://elsewhere/two/x"),
                         ["http://elsewhere/two/x"])
        self.assertEqual(self.location("/one/x", "http://stable/twox"), ["http://stable/twox"])
        self.assertEqual(self.location("/one/x", "/two/x"), ["/two/x"])

    def test_default_is_case_sensitive(self):
        self.assertEqual(self.location("/one/x", "HTTP://STABLE/two/x"), ["HTTP://STABLE/two/x"])

    def test_refresh_url_is_rewritten_after_url_and_stays_relative(self):
        got = self.same("/one/x", ["Refresh: 5; URL=http://stable/two/r?q"])
        self.assertEqual(got[1]["Refresh"], ["5; URL=/one/r?q"])

    def test_refresh_without_url_is_left_alone(self):
        self.assertEqual(self.same("/one/x", ["Refresh: 5"])[1]["Refresh"], ["5"])

    def test_off_leaves_location_and_refresh_alone(self):
        got = self.same("/off/x", ["Location: http://stable/two/x", "Refresh: 1;url=http://stable/two/"])
        self.assertEqual(got[1]["Location"], ["http://stable/two/x"])
        self.assertEqual(got[1]["Refresh"], ["1;url=http://stable/two/"])

    # -- explicit and regex rules

    def test_explicit_rules_are_tried_in_order_and_the_first_match_wins(self):
        self.assertEqual(self.location("/explicit/x", "http://other.example/never/x"),
                         ["http://localhost:PORT/other/never/x"])

    def test_default_among_explicit_rules(self):
        self.assertEqual(self.location("/explicit/x", "http://stable/a"),
                         ["http://localhost:PORT/explicit/a"])

    def test_regex_replaces_the_whole_value_with_its_captures(self):
        self.assertEqual(self.location("/regex/x", "http://app.internal:8080/old/a/b?c=d"),
                         ["https://app.internal/new/a/b?c=d"])

    def test_caseless_regex_with_a_named_capture(self):
        self.assertEqual(self.location("/regex/x", "http://case.example/Deep/Path"),
                         ["http://localhost:PORT/case/Deep/Path"])

    def test_regex_that_does_not_match_leaves_the_location(self):
        self.assertEqual(self.location("/regex/x", "http://app.internal/other"),
                         ["http://app.internal/other"])

    def test_relative_location_gets_scheme_host_and_port(self):
        self.assertEqual(self.location("/relative/x", "/y/z"), ["http://localhost:PORT/y/z"])

    def test_absolute_redirect_off_keeps_a_rewritten_location_relative(self):
        self.assertEqual(self.location("/notabsolute/x", "http://stable/two/y"),
                         ["/notabsolute/y"])

    def test_server_level_rules_replace_the_default(self):
        self.assertEqual(self.location("/inherit/x", "http://stable/two/x", second=True),
                         ["http://stable/two/x"])
        self.assertEqual(self.location("/inherit/x", "http://server.example/a", second=True),
                         ["http://localhost:PORT/from-server/a"])

    def test_a_level_with_its_own_rules_does_not_inherit(self):
        self.assertEqual(self.location("/own/x", "http://server.example/a", second=True),
                         ["http://server.example/a"])
        self.assertEqual(self.location("/own/x", "http://own.example/a", second=True),
                         ["http://localhost:PORT/own-rule/a"])

    # -- cookies

    def cookies(self, *set_cookies):
        return self.same("/cookie/x", ["Set-Cookie: " + c for c in set_cookies])[1]["Set-Cookie"]

    def test_cookie_domain_and_path_are_rewritten_and_attributes_rejoined(self):
        self.assertEqual(self.cookies("a=b;Domain=.Backend.Internal;path=/two/x;  HttpOnly"),
                         ["a=b; Domain=.example.org; path=/one/x; HttpOnly"])

    def test_cookie_domain_regex_with_a_named_capture(self):
        self.assertEqual(self.cookies("c=d; Domain=API.corp.internal; Secure"),
                         ["c=d; Domain=API.example.com; Secure"])

    def test_cookie_path_caseless_regex(self):
        self.assertEqual(self.cookies("e=f; Path=/app/deep"), ["e=f; Path=/front/deep"])

    def test_cookie_that_matches_no_rule_keeps_its_spelling(self):
        self.assertEqual(self.cookies("g=h;Domain=other.org;  Path=/zzz"),
                         ["g=h;Domain=other.org;  Path=/zzz"])

    def test_cookie_domain_must_match_whole(self):
        self.assertEqual(self.cookies("i=j; Domain=sub.backend.internal"),
                         ["i=j; Domain=sub.backend.internal"])

    def test_several_set_cookie_fields_each_rewritten(self):
        self.assertEqual(self.cookies("k=1; Path=/two/", "l=2", "m=3; domain=backend.internal"),
                         ["k=1; Path=/one/", "l=2", "m=3; domain=example.org"])

    # -- proxy_pass with variables

    def origin_of(self, path, headers=()):
        """(status, body) of GET <path>: the body names the origin and the target it got."""
        status, _, body = self.same(path, headers=headers)
        return status, body

    def test_variable_chooses_the_upstream_group_by_a_header(self):
        self.assertEqual(self.origin_of("/pool/a?b=1", [("X-Pool", "canary")]),
                         (200, "canary /pool/a?b=1"))
        self.assertEqual(self.origin_of("/pool/a?b=1", [("X-Pool", "stable")]),
                         (200, "stable /pool/a?b=1"))

    def test_canary_by_cookie(self):
        self.assertEqual(self.origin_of("/canary/c?d", [("Cookie", "x=1; pool=canary")]),
                         (200, "canary /canary/c?d"))
        self.assertEqual(self.origin_of("/canary/c?d", [("Cookie", "pool=stable")]),
                         (200, "stable /canary/c?d"))

    def test_canary_by_cookie_through_a_map(self):
        for cookie, want in (("release=canary", "canary"), ("release=beta-7", "canary"),
                             ("release=other", "stable"), (None, "stable")):
            with self.subTest(cookie=cookie):
                headers = [("Cookie", cookie)] if cookie else []
                self.assertEqual(self.origin_of("/release/r", headers), (200, want + " /release/r"))

    def test_no_cookie_leaves_no_host_and_is_500(self):
        self.assertEqual(self.origin_of("/canary/c")[0], 500)

    def test_uri_part_of_a_variable_url_replaces_the_whole_uri(self):
        self.assertEqual(self.origin_of("/fixed/any/thing?q=1", [("X-Pool", "stable")]),
                         (200, "stable /fixed/path"))

    def test_query_without_a_path_gets_a_slash(self):
        self.assertEqual(self.origin_of("/query/x?y", [("X-Pool", "canary")]),
                         (200, "canary /?only=1"))

    def test_a_rewritten_uri_goes_up_whole_without_a_uri_part(self):
        self.assertEqual(self.origin_of("/rewritten/a%20b?q=1", [("X-Pool", "canary")]),
                         (200, "canary /new/a%20b?q=1"))

    def test_a_uri_part_stays_the_whole_uri_after_a_rewrite(self):
        self.assertEqual(self.origin_of("/rewrittenfixed/a?q=1", [("X-Pool", "canary")]),
                         (200, "canary /fixed"))

    def test_address_literal_with_its_port(self):
        self.assertEqual(self.origin_of("/pool/a", [("X-Pool", self.canary.addr)]),
                         (200, "canary /pool/a"))

    def test_name_that_is_no_group_is_502(self):
        self.assertEqual(self.origin_of("/pool/a", [("X-Pool", "no-such-group.invalid")])[0],
                         502)

    def test_bad_port_is_500(self):
        self.assertEqual(self.origin_of("/pool/a", [("X-Pool", "127.0.0.1:99999")])[0], 500)

    def test_no_default_redirect_with_variables(self):
        got = self.same("/pool/x", ["Location: http://stable/x"], [("X-Pool", "stable")])
        self.assertEqual(got[1]["Location"], ["http://stable/x"])

    def test_redirect_pattern_with_proxy_host_of_a_variable_url(self):
        got = self.same("/varredirect/x", ["Location: http://canary/a"], [("X-Pool", "canary")])
        self.assertEqual(got[1]["Location"], ["http://localhost:PORT/varredirect/a"])

    def test_host_and_proxy_host_of_a_variable_target(self):
        for pool, want in (("canary", "canary"), (self.stable.addr, self.stable.addr)):
            with self.subTest(pool=pool):
                got = self.same("/pool/h", [], [("X-Pool", pool)],
                                fields=("X-Host", "X-Got-Proxy-Host"))
                self.assertEqual(got[1], {"X-Host": [want], "X-Got-Proxy-Host": [want]})


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)


class HttpsWithVariables(harness.TestCase):
    """proxy_pass https://$var: the TLS name (SNI, and the name verified) is each request's
    host: here an upstream group named backend before a TLS origin whose certificate is for
    backend (made by the openssl CLI), and a group named wrong before the same origin."""

    @classmethod
    def setUpClass(cls):
        d = cls.dir = tempfile.mkdtemp(prefix="pt-it-tls-")
        cls.addClassCleanup(shutil.rmtree, d, True)
        for name in ("ca", "leaf"):
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", name + ".key", cwd=d)
        openssl("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem", "-days", "2",
                "-subj", "/CN=redirect test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        openssl("req", "-new", "-key", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=backend",
                cwd=d)
        with open(os.path.join(d, "leaf.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                    "subjectAltName=DNS:backend\n")
        openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-set_serial", "7", "-days", "2", "-extfile", "leaf.ext", "-out", "leaf.pem",
                cwd=d)
        cls.snis = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, "leaf.pem"), os.path.join(d, "leaf.key"))
        ctx.sni_callback = lambda sock, name, c: cls.snis.append(name)
        cls.origin = ReplyOrigin("tls", tls=ctx)
        cls.addClassCleanup(cls.origin.stop)
        port = harness.free_port()
        cls.p = cls.class_portier({
            "upstream": {"backend": upstream(cls.origin.addr),
                         "wrong": upstream(cls.origin.addr)},
            "server": [server(port, [location(
                "/", proxy_pass="https://$http_x_to", proxy_ssl_server_name="on",
                proxy_ssl_verify="on",
                proxy_ssl_trusted_certificate=os.path.join(d, "ca.pem"))])]})

    def test_the_group_name_is_sent_as_sni_and_verified(self):
        before = len(self.snis)
        r = self.p.get("/v", headers=[("X-To", "backend")])
        self.assertEqual((r.status, r.body), (200, b"tls /v"), r)
        self.assertEqual(self.snis[before:], ["backend"])

    def test_a_certificate_for_another_name_is_502(self):
        r = self.p.get("/v", headers=[("X-To", "wrong")])
        self.assertPortierError(r, 502)
        harness.wait_until(lambda: "certificate verify error" in
                           harness.read_file(self.p.error_log), what="the verify error")


class PortierAlone(harness.TestCase):

    def portier(self, *locs, **http):
        self.origin = ReplyOrigin("o")
        self.addCleanup(self.origin.stop)
        port = harness.free_port()
        h = {"upstream": {"pool": upstream(self.origin.addr, keepalive=2)},
             "server": [server(port, list(locs))]}
        h.update(http)
        return self.start_portier(h)

    def test_keepalive_to_a_group_named_by_a_variable(self):
        p = self.portier(location("/", proxy_pass="http://$http_x_pool"))
        with p.client() as c:
            for _ in range(3):
                r = c.request("GET", "/k", headers=[("X-Pool", "pool")])
                self.assertEqual(r.status, 200, r)
        self.assertEqual(len({port for _, port in self.origin.seen}), 1, self.origin.seen)

    def test_ipv6_address_literal(self):
        v6 = ReplyOrigin("v6", v6=True)
        self.addCleanup(v6.stop)
        p = self.portier(location("/", proxy_pass="http://$http_x_to"))
        r = p.get("/six", headers=[("X-To", v6.addr)])
        self.assertEqual((r.status, r.body), (200, b"v6 /six"), r)

    def test_a_name_that_is_no_group_says_what_to_do(self):
        p = self.portier(location("/", proxy_pass="http://$http_x_to/"))
        r = p.get("/", headers=[("X-To", "db.example")])
        self.assertPortierError(r, 502)
        harness.wait_until(lambda: "neither an upstream group nor an IP address" in
                           harness.read_file(p.error_log), what="the error line")
        log = harness.read_file(p.error_log)
        self.assertIn('proxy_pass "http://db.example/"', log)
        self.assertIn('nginx would need "resolver"', log)

    def test_proxy_host_goes_up_as_host(self):
        p = self.portier(location("/", proxy_pass="http://$http_x_to",
                                  proxy_set_header=["X-Reply X-Seen: $proxy_host:$proxy_port"]))
        r = p.get("/", headers=[("X-To", "pool")])
        self.assertEqual(r.header("X-Seen"), "pool:80", r)
        r = p.get("/", headers=[("X-To", self.origin.addr)])
        self.assertEqual(r.header("X-Seen"), "%s:%d" % (self.origin.addr, self.origin.port), r)

    def test_variables_defined_further_down_the_file(self):
        """nginx resolves variables once the whole file is read: an upstream's hash, a
        variable proxy_pass and proxy_set_header may name a map or a set that comes later."""
        self.origin = ReplyOrigin("o")
        self.addCleanup(self.origin.stop)
        port = harness.free_port()
        h = {"upstream": {"pool": upstream(self.origin.addr, hash="$lane")},
             "server": [server(port, [
                 location("/a", proxy_pass="http://$lane",
                          proxy_set_header=["X-Reply X-Seen: [$lane][$later]"]),
                 location("/b", rewrite_script=["set $later b", "return 204"])])],
             "map": [{"source": "$http_x_lane", "variable": "$lane",
                      "entries": ["default pool"]}]}
        p = self.start_portier(h, start=False)
        self.assertLess(p.text.index("proxy_set_header"), p.text.index("map"), p.text)
        p.start()
        r = p.get("/a")
        self.assertEqual((r.status, r.header("X-Seen")), (200, "[pool][]"), r)
        self.assertEqual(p.get("/b").status, 204)

    # -- configuration errors, at their file:line

    def check(self, *locs, **http):
        port = harness.free_port()
        h = {"upstream": {"pool": upstream("127.0.0.1:9")}, "server": [server(port, list(locs))]}
        h.update(http)
        p = self.start_portier(h, start=False)
        res = p.run("-t", "-c", p.conf_path)
        return res.returncode, res.stderr.decode(), p.text

    def assertRefused(self, needle, line_needle, *locs, **http):
        rc, err, text = self.check(*locs, **http)
        self.assertNotEqual(rc, 0, err)
        line = next(i for i, l in enumerate(text.splitlines(), 1) if line_needle in l)
        self.assertIn("portier.conf:%d: " % line, err)
        self.assertIn(needle, err)

    def test_bad_regex(self):
        self.assertRefused('invalid regex "(unclosed" in "proxy_redirect"', "proxy_redirect",
                           location("/", proxy_pass="http://pool",
                                    proxy_redirect=["~(unclosed /x/"]))

    def test_bad_cookie_path_regex(self):
        self.assertRefused('invalid regex "[a-" in "proxy_cookie_path"', "proxy_cookie_path",
                           location("/", proxy_pass="http://pool",
                                    proxy_cookie_path=["~*[a- /x/"]))

    def test_default_with_variables_in_proxy_pass(self):
        self.assertRefused('"proxy_redirect default" cannot be used with "proxy_pass" directive '
                           'with variables', "proxy_redirect",
                           location("/", proxy_pass="http://$http_x_to",
                                    proxy_redirect=["default"]))

    def test_default_outside_a_location(self):
        self.assertRefused('"proxy_redirect default" goes in a location with "proxy_pass"',
                           "proxy_redirect", location("/", proxy_pass="http://pool"),
                           proxy_redirect=["default"])

    def test_unknown_variable_in_a_replacement(self):
        self.assertRefused('unknown variable "$nosuch"', "proxy_cookie_domain",
                           location("/", proxy_pass="http://pool",
                                    proxy_cookie_domain=["a.example $nosuch"]))

    def test_unknown_variable_in_proxy_pass(self):
        self.assertRefused('unknown variable "$nosuch"', "proxy_pass",
                           location("/", proxy_pass="http://$nosuch"))

    def test_off_with_rules(self):
        self.assertRefused('"proxy_redirect" is duplicate', "proxy_redirect",
                           location("/", proxy_pass="http://pool",
                                    proxy_redirect=["http://a/ /", "off"]))

    def test_three_words(self):
        self.assertRefused('use "default", "off" or "REDIRECT REPLACEMENT"', "proxy_redirect",
                           location("/", proxy_pass="http://pool",
                                    proxy_redirect=["http://a/ / extra"]))

    def test_scheme_of_a_variable_url(self):
        self.assertRefused("it starts with http:// or https://", "proxy_pass",
                           location("/", proxy_pass="ftp://$http_x_to"))


if __name__ == "__main__":
    harness.main()
