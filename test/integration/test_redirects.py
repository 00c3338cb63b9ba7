"""
Redirects portier builds itself (return, the 301 to a location's slash) as nginx writes
them (issue 14): a path goes out as an absolute URL on the request's scheme, the Host
without its port (or the server's first name with server_name_in_redirect, or the address
reached without a Host) and the listening port unless it is the scheme's
(absolute_redirect, port_in_redirect).  Checked side by side with Debian's nginx on the same
configuration, for Hosts with and without a port and for HTTP/1.0 without one.
"""

import harness
import nginx
from harness import location, server

# (location, return, extra directives as nginx lines, the same as portier settings)
LOCATIONS = [
    ("= /rel", "301 /new", [], {}),
    ("= /relq", "302 /new?a=1", [], {}),
    ("= /abs", "301 http://elsewhere.example/x", [], {}),
    ("= /off", "301 /new", ["absolute_redirect off;"], {"absolute_redirect": False}),
    ("= /noport", "301 /new", ["port_in_redirect off;"], {"port_in_redirect": False}),
    ("= /name", "301 /new", ["server_name_in_redirect on;"], {"server_name_in_redirect": True}),
    ("= /var", "302 /to$uri", [], {}),
]

HOSTS = ["localhost", "Client.Example:8080", "client.example.", None]


def nginx_http(port):
    locs = ["    location %s { %s return %s; }" % (path, " ".join(extra), ret)
            for path, ret, extra, _ in LOCATIONS]
    locs.append("    location /app/ { proxy_pass http://127.0.0.1:9; }")
    return ("  server {\n    listen 127.0.0.1:%d;\n    server_name first.example second.example;\n"
            "%s\n    location / { return 200 root; }\n  }" % (port, "\n".join(locs)))


def portier_http(port):
    locs = [location(path, ret=ret, **settings) for path, ret, _, settings in LOCATIONS]
    locs.append(location("/app/", proxy_pass="http://127.0.0.1:9"))
    locs.append(location("/", ret="200 root"))
    return {"server": [server(port, locs, names=["first.example", "second.example"])]}


class Redirects(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.nport = harness.free_port()
        cls.nginx = nginx.Nginx(cls.nport, nginx_http(cls.nport))
        cls.addClassCleanup(cls.nginx.stop)
        cls.pport = harness.free_port()
        cls.p = cls.class_portier(portier_http(cls.pport))

    def answer(self, port, target, host, version="HTTP/1.1"):
        """Status and Location for <target>, the port written as PORT."""
        with harness.Client(port) as c:
            r = c.request("GET", target, host=host, version=version)
        loc = r.header("Location")
        return r.status, loc.replace(str(port), "PORT") if loc else None

    def assertSame(self, target, host, version="HTTP/1.1"):
        got = self.answer(self.pport, target, host, version)
        want = self.answer(self.nport, target, host, version)
        self.assertEqual(got, want, "portier (left) and nginx (right) redirect differently")
        return got

    def test_return_to_a_path_goes_out_absolute_as_nginx(self):
        for host in HOSTS:
            with self.subTest(host=host):
                status, loc = self.assertSame("/rel", host if host else "localhost")
                self.assertEqual(status, 301)
                self.assertTrue(loc.startswith("http://"), loc)

    def test_query_in_the_return_is_kept(self):
        self.assertEqual(self.assertSame("/relq", "localhost")[1], "http://localhost:PORT/new?a=1")

    def test_absolute_url_is_left_as_written(self):
        self.assertEqual(self.assertSame("/abs", "localhost")[1], "http://elsewhere.example/x")

    def test_absolute_redirect_off_leaves_the_path(self):
        self.assertEqual(self.assertSame("/off", "localhost")[1], "/new")

    def test_port_in_redirect_off_leaves_the_port_out(self):
        self.assertEqual(self.assertSame("/noport", "localhost:1234")[1], "http://localhost/new")

    def test_server_name_in_redirect_names_the_first_server_name(self):
        self.assertEqual(self.assertSame("/name", "localhost")[1],
                         "http://first.example:PORT/new")

    def test_return_with_a_variable_is_made_absolute_after_evaluation(self):
        self.assertEqual(self.assertSame("/var", "localhost")[1], "http://localhost:PORT/to/var")

    def test_http_1_0_without_host_names_the_address_reached(self):
        self.assertEqual(self.assertSame("/rel", None, "HTTP/1.0")[1],
                         "http://127.0.0.1:PORT/new")

    def test_slash_redirect_of_a_proxied_location_is_the_same(self):
        for host in HOSTS[:3]:
            with self.subTest(host=host):
                self.assertEqual(self.assertSame("/app?x=1", host)[0], 301)


if __name__ == "__main__":
    harness.main()
