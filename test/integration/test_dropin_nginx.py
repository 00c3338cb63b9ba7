"""
portier and nginx side by side on the same configuration (issue 10): what reaches the
upstream (Host by default and with $host / $http_host / $proxy_host, the WebSocket guide's
Upgrade and Connection, $proxy_add_x_forwarded_for, proxy_http_version 1.0) and the 301
of a location ending in '/' must be the same.  Where portier differs on purpose (it adds
X-Forwarded-* by default), only the fields nginx also sends are compared.
"""

import harness
import nginx
from harness import location, server, upstream

# (path, proxy_pass, [proxy_set_header lines], proxy_http_version)
LOCATIONS = [
    ("/plain/", "http://rec", [], "1.1"),
    ("/implicit/", "http://{rec}", [], "1.1"),
    ("/guide/", "http://rec", ["Upgrade $http_upgrade", 'Connection "upgrade"'], "1.1"),
    ("/host-host/", "http://rec", ["Host $host"], "1.1"),
    ("/host-http-host/", "http://rec", ["Host $http_host"], "1.1"),
    ("/host-proxy-host/", "http://{rec}", ["Host $proxy_host", "X-Port $proxy_port"], "1.1"),
    ("/xff/", "http://rec", ["X-Forwarded-For $proxy_add_x_forwarded_for"], "1.1"),
    ("/v10/", "http://rec", [], "1.0"),
    ("/app/", "http://rec/", [], "1.1"),
    ("/api/", "http://rec/", [], "1.1"),
    ("~ ^/re/", "http://rec", [], "1.1"),
]

# Compared everywhere; Connection where a test sets it (nginx sends "close" by default even
# to a keepalive upstream, portier keeps the connection: on purpose) and X-Forwarded-For
# where a test sets it (portier sends it by default, nginx not: on purpose).
COMPARED = ("Host", "Upgrade", "X-Port")


def nginx_http(port, rec):
    locs = []
    for path, to, sets, version in LOCATIONS:
        lines = ["proxy_pass %s;" % to.format(rec=rec), "proxy_http_version %s;" % version]
        lines += ["proxy_set_header %s;" % s for s in sets]
        locs.append("    location %s { %s }" % (path, " ".join(lines)))
    return ("  upstream rec { server %s; keepalive 4; }\n"
            "  server {\n    listen 127.0.0.1:%d;\n%s\n    location /api { return 200 api; }\n"
            "    location / { return 200 root; }\n  }"
            % (rec, port, "\n".join(locs)))


def portier_http(port, rec):
    locs = [location(path, proxy_pass=to.format(rec=rec), proxy_http_version=version,
                     **({"proxy_set_header": sets} if sets else {}))
            for path, to, sets, version in LOCATIONS]
    locs.append(location("/api", ret="200 api"))
    locs.append(location("/", ret="200 root"))
    return {"upstream": {"rec": upstream(rec, keepalive=4)}, "server": [server(port, locs)]}


class SideBySide(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.rec = cls.class_recorder()
        cls.nport = harness.free_port()
        cls.nginx = nginx.Nginx(cls.nport, nginx_http(cls.nport, cls.rec.addr))
        cls.addClassCleanup(cls.nginx.stop)
        cls.pport = harness.free_port()
        cls.p = cls.class_portier(portier_http(cls.pport, cls.rec.addr))

    def upstream_view(self, port, path, headers, host, fields):
        """The compared fields of what reached the recorder for one request on <port>."""
        before = len(self.rec.requests)
        with harness.Client(port) as c:
            r = c.request("GET", path, headers=headers, host=host)
        self.assertEqual(r.status, 200, r)
        harness.wait_until(lambda: len(self.rec.requests) > before, what="the recorded request")
        req = self.rec.requests[-1]
        return (req.request_line.split(" ")[-1],
                {n: harness.headers_named(req.headers, n) for n in fields})

    def assertSame(self, path, headers=(), host="Client.Example:8080", also=()):
        fields = COMPARED + tuple(also)
        want = self.upstream_view(self.nport, path, list(headers), host, fields)
        got = self.upstream_view(self.pport, path, list(headers), host, fields)
        self.assertEqual(got, want, "portier (left) and nginx (right) sent different fields")

    def test_default_host_of_a_group(self):
        self.assertSame("/plain/x")

    def test_default_host_of_an_address(self):
        self.assertSame("/implicit/x")

    def test_websocket_guide_lines_on_an_upgrade(self):
        self.assertSame("/guide/ws", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                      ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                      ("Sec-WebSocket-Version", "13")], also=["Connection"])

    def test_websocket_guide_lines_on_a_plain_request(self):
        self.assertSame("/guide/plain", also=["Connection"])

    def test_host_variable(self):
        self.assertSame("/host-host/x")

    def test_http_host_variable(self):
        self.assertSame("/host-http-host/x")

    def test_proxy_host_and_proxy_port(self):
        self.assertSame("/host-proxy-host/x")

    def test_proxy_add_x_forwarded_for(self):
        self.assertSame("/xff/x", [("X-Forwarded-For", "10.9.8.7")], also=["X-Forwarded-For"])
        self.assertSame("/xff/x", also=["X-Forwarded-For"])

    def test_http_1_0_upstream(self):
        self.assertSame("/v10/x", also=["Connection"])

    def redirect(self, port, target):
        with harness.Client(port) as c:
            r = c.request("GET", target, host="localhost:%d" % port)
        loc = r.header("Location")
        return r.status, loc.replace(str(port), "PORT") if loc else None, \
            r.body if r.status == 200 else None

    def test_location_ending_in_slash_redirects_the_same(self):
        for target in ("/app", "/app?a=1&b=%20c"):
            with self.subTest(target=target):
                self.assertEqual(self.redirect(self.pport, target),
                                 self.redirect(self.nport, target))
                self.assertEqual(self.redirect(self.pport, target)[0], 301)

    def test_no_redirect_for_a_regex_or_where_the_path_has_a_location(self):
        # "~ ^/re/" is a regex: /re goes to "/"; "/api" is a location of its own.
        for target in ("/re", "/api"):
            with self.subTest(target=target):
                self.assertEqual(self.redirect(self.pport, target),
                                 self.redirect(self.nport, target))
                self.assertEqual(self.redirect(self.pport, target)[0], 200)


if __name__ == "__main__":
    harness.main()
