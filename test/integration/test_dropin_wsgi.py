"""
A WSGI application behind portier (wsgiref, the standard library's server): a request
header whose name has '_' would reach it as the same CGI variable as the real one
(X_Forwarded_For and X-Forwarded-For are both HTTP_X_FORWARDED_FOR), a spoofing path
around portier's X-Forwarded-For.  As nginx, portier drops such headers by default
(underscores_in_headers off, ignore_invalid_headers on) and logs them at info.
"""

import json
import threading
import wsgiref.simple_server

import harness
from harness import location, server


def app(environ, start_response):
    seen = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


class Quiet(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


class Wsgi(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.wsgi = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=Quiet)
        t = threading.Thread(target=cls.wsgi.serve_forever, daemon=True)
        t.start()
        cls.addClassCleanup(cls.wsgi.server_close)
        cls.addClassCleanup(cls.wsgi.shutdown)
        to = "http://127.0.0.1:%d" % cls.wsgi.server_port
        cls.port, cls.port_on = harness.free_port(), harness.free_port()
        cls.p = cls.class_portier({"server": [
            server(cls.port, [location("/", proxy_pass=to)]),
            server(cls.port_on, [location("/", proxy_pass=to)], underscores_in_headers=True),
        ]})

    def environ(self, port, headers):
        r = harness.http_request(port, "GET", "/", headers=headers)
        self.assertEqual(r.status, 200, r)
        return json.loads(r.body)

    def test_underscore_header_cannot_spoof_x_forwarded_for(self):
        env = self.environ(self.port, [("X_Forwarded_For", "6.6.6.6")])
        self.assertEqual(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1")

    def test_dropped_header_is_logged_at_info(self):
        self.environ(self.port, [("X_Real_IP", "6.6.6.6")])
        line = harness.wait_for_line(self.p.error_log, r"client sent invalid header line")
        self.assertIn("X_Real_IP", line)

    def test_underscore_header_kept_when_allowed(self):
        # underscores_in_headers on: the application sees both, as behind nginx so configured.
        env = self.environ(self.port_on, [("X_Custom", "1")])
        self.assertEqual(env["HTTP_X_CUSTOM"], "1")

    def test_dash_headers_still_pass(self):
        env = self.environ(self.port, [("X-Custom-Thing", "ok")])
        self.assertEqual(env["HTTP_X_CUSTOM_THING"], "ok")


if __name__ == "__main__":
    harness.main()
