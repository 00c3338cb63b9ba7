"""
error_page and named locations against nginx (issue 14): the same configuration in Debian's
nginx and in portier, each request's status, Location and body compared.  A URI's answer
goes out with the error's status (or =CODE's, or with "=" its own), a named location
answers with the same method, a URL redirects (302, or =301), an error inside the error
page is not redirected again (recursive_error_pages off), and error_page does not inherit
into a level that has its own.
"""

import http.server
import threading

import harness
import nginx
from harness import location, server, upstream


class NotFoundOrigin:
    """An origin answering 404 with a body of its own to everything."""

    def __init__(self):
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                body = b"origin's own 404\n"
                self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer((harness.LOCALHOST, 0), H)
        self.addr = "%s:%d" % self.server.server_address
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

# (nginx location, portier location)
CASES = [
    ("location /nf/ { error_page 404 /pages/404; return 404; }",
     location("/nf/", error_page=["404 /pages/404"], ret="404")),
    ("location /over/ { error_page 403 =200 /pages/ok; return 403; }",
     location("/over/", error_page=["403 =200 /pages/ok"], ret="403")),
    ("location /own/ { error_page 502 = @fallback; proxy_pass http://dead; }",
     location("/own/", error_page=["502 = @fallback"], proxy_pass="http://dead")),
    ("location /named/ { error_page 502 503 @fallback; proxy_pass http://dead; }",
     location("/named/", error_page=["502 503 @fallback"], proxy_pass="http://dead")),
    ("location /url/ { error_page 404 http://other.example/nf; return 404; }",
     location("/url/", error_page=["404 http://other.example/nf"], ret="404")),
    ("location /url301/ { error_page 404 =301 http://other.example/nf; return 404; }",
     location("/url301/", error_page=["404 =301 http://other.example/nf"], ret="404")),
    ("location /twice/ { error_page 404 /pages/missing; return 404; }",
     location("/twice/", error_page=["404 /pages/missing"], ret="404")),
    ("location /args/ { error_page 404 /pages/args?from=nf; return 404; }",
     location("/args/", error_page=["404 /pages/args?from=nf"], ret="404")),
    ("location = /pages/404 { return 200 'the 404 page'; }",
     location("= /pages/404", ret="200 the 404 page")),
    ("location = /pages/ok { return 200 'fine'; }",
     location("= /pages/ok", ret="200 fine")),
    ("location = /pages/args { return 200 'args=$args'; }",
     location("= /pages/args", ret="200 args=$args")),
    ("location = /pages/missing { return 404; }",
     location("= /pages/missing", ret="404")),
    ("location /icpt/ { error_page 404 /pages/404; proxy_intercept_errors on; "
     "proxy_pass http://nf; }",
     location("/icpt/", error_page=["404 /pages/404"], proxy_intercept_errors=True,
              proxy_pass="http://nf")),
    ("location /noicpt/ { error_page 404 /pages/404; proxy_pass http://nf; }",
     location("/noicpt/", error_page=["404 /pages/404"], proxy_pass="http://nf")),
    ("location @fallback { return 200 'fallback $request_method'; }",
     location("@fallback", ret="200 fallback $request_method")),
]

SERVER_ERROR_PAGE = "error_page 404 /pages/404;"


def nginx_http(port, dead, nf):
    locs = "\n".join("    " + c[0] for c in CASES)
    return ("  upstream dead { server %s; }\n  upstream nf { server %s; }\n  server {\n"
            "    listen 127.0.0.1:%d;\n    %s\n%s\n"
            "    location /inherit/ { return 404; }\n"
            "    location /own-list/ { error_page 403 /pages/ok; return 404; }\n"
            "    location / { return 200 root; }\n  }"
            % (dead, nf, port, SERVER_ERROR_PAGE, locs))


def portier_http(port, dead, nf):
    locs = [c[1] for c in CASES]
    locs += [location("/inherit/", ret="404"),
             location("/own-list/", error_page=["403 /pages/ok"], ret="404"),
             location("/", ret="200 root")]
    return {"upstream": {"dead": upstream(dead), "nf": upstream(nf)},
            "server": [server(port, locs, error_page=["404 /pages/404"])]}


REQUESTS = [("GET", "/nf/x"), ("GET", "/over/x"), ("GET", "/own/x"), ("POST", "/own/x"),
            ("GET", "/named/x"), ("POST", "/named/x"), ("GET", "/url/x"), ("GET", "/url301/x"),
            ("GET", "/twice/x"), ("GET", "/args/x?a=1"), ("GET", "/inherit/x"),
            ("GET", "/own-list/x"), ("GET", "/no-such-location-but-root"),
            ("GET", "/icpt/x"), ("GET", "/noicpt/x")]


class ErrorPageSideBySide(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        dead = "127.0.0.1:%d" % harness.dead_port()  # refuses: 502
        cls.origin = NotFoundOrigin()
        cls.addClassCleanup(cls.origin.stop)
        cls.nport = harness.free_port()
        cls.nginx = nginx.Nginx(cls.nport, nginx_http(cls.nport, dead, cls.origin.addr))
        cls.addClassCleanup(cls.nginx.stop)
        cls.pport = harness.free_port()
        cls.p = cls.class_portier(portier_http(cls.pport, dead, cls.origin.addr))

    def outcome(self, port, method, target):
        with harness.Client(port) as c:
            r = c.request(method, target, host="localhost", body=b"x" if method == "POST" else None)
        loc = r.header("Location")
        body = r.body if r.status < 300 or b"<html>" not in r.body else b"(error page)"
        return r.status, loc, body

    def test_every_request_has_nginx_s_outcome(self):
        for method, target in REQUESTS:
            with self.subTest(method=method, target=target):
                self.assertEqual(self.outcome(self.pport, method, target),
                                 self.outcome(self.nport, method, target))

    def test_error_page_uri_answers_with_the_error_status(self):
        self.assertEqual(self.outcome(self.pport, "GET", "/nf/x"), (404, None, b"the 404 page"))

    def test_proxy_intercept_errors_gives_the_error_page(self):
        self.assertEqual(self.outcome(self.pport, "GET", "/icpt/x"), (404, None, b"the 404 page"))
        self.assertEqual(self.outcome(self.pport, "GET", "/noicpt/x"),
                         (404, None, b"origin's own 404\n"))

    def test_named_location_keeps_the_method(self):
        self.assertEqual(self.outcome(self.pport, "POST", "/own/x"),
                         (200, None, b"fallback POST"))


if __name__ == "__main__":
    harness.main()
