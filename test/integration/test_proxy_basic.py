"""
The proxy path end to end: a request through portier reaches the backend and the
response comes back; keepalive, pipelining, 100-continue, header rewriting,
return, URI mapping of proxy_pass, server and location selection.
"""


import harness
from harness import location, server, upstream


class ProxyBasic(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.b1 = cls.class_backend("b1")
        cls.rec = cls.class_recorder("recorder")
        cls.port = harness.free_port()
        cls.route_port = harness.free_port()
        cls.p = cls.class_portier(cls.http_config(cls.b1, cls.rec, cls.port, cls.route_port,
                                                  trusted=["10.0.0.0/8"]))

    @staticmethod
    def http_config(b1, rec, port, route_port, trusted):
        return {
            "set_real_ip_from": trusted,
            "proxy_set_header": ["X-Real-IP $remote_addr", "X-Orig-Uri $request_uri"],
            "proxy_hide_header": ["X-Secret"],
            "add_header": ["X-Served-By portier"],
            "upstream": {
                "app": upstream(b1.addr, keepalive=8),
                "rec": upstream(rec.addr, keepalive=4),
            },
            "server": [
                server(port, [
                    location("/", proxy_pass="http://app"),
                    location("/api/", proxy_pass="http://rec/v1/"),
                    location("/raw/", proxy_pass="http://rec"),
                    location("/strip/", proxy_pass="http://app/"),
                    location("= /ret200", ret="200 plain text"),
                    location("/old", ret="301 https://example.com/new"),
                ], names=["main.test"]),
            ] + routing_servers(route_port),
        }

    # -- basics

    def test_get_reaches_backend(self):
        r = self.p.get("/", host="main.test")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Backend"), "b1")
        self.assertEqual(r.body, b"hello from b1\n")

    def test_head_has_no_body_and_keeps_framing(self):
        with self.p.client() as c:
            r = c.request("HEAD", "/", host="main.test")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("X-Backend"), "b1")
            # Had portier sent a body after the HEAD response, the next response
            # would not start with a status line.
            r2 = c.request("GET", "/", host="main.test")
            self.assertEqual(r2.status, 200)
            self.assertEqual(r2.body, b"hello from b1\n")

    def test_keepalive_client_connection_serves_several_requests(self):
        with self.p.client() as c:
            for i in range(5):
                r = c.request("GET", "/?n=%d" % i, host="main.test")
                self.assertEqual(r.status, 200)
                self.assertNotIn("close", r.connection_tokens())
            self.assertTrue(c.is_open())

    def test_keepalive_upstream_connections_are_reused(self):
        self.p.get("/", host="main.test")  # warm the pool
        req0, conn0 = self.b1.count()
        with self.p.client() as c:
            for _ in range(5):
                self.assertEqual(c.request("GET", "/", host="main.test").status, 200)
        req1, conn1 = self.b1.count()
        self.assertEqual(req1 - req0, 5)
        self.assertLessEqual(conn1 - conn0, 1, "upstream connections not reused with keepalive set")

    def test_pipelined_requests_answered_in_order(self):
        reqs = (harness.build_request("GET", "/slow?ms=200", host="main.test") +
                harness.build_request("GET", "/status?code=202", host="main.test") +
                harness.build_request("GET", "/", host="main.test"))
        with self.p.client() as c:
            c.send(reqs)
            statuses = [c.read_response().status for _ in range(3)]
            self.assertEqual(statuses, [200, 202, 200])
            self.assertTrue(c.is_open())

    def test_expect_100_continue_gets_interim_response_before_body(self):
        with self.p.client() as c:
            c.send(harness.build_request("POST", "/echo", host="main.test",
                                         headers=[("Expect", "100-continue"), ("Content-Length", "5")]))
            interim = c.read_response(interim=True, timeout=5)
            self.assertEqual(interim.status, 100)
            self.assertTrue(interim.head.startswith(b"HTTP/1.1 100 Continue\r\n"), interim.head)
            c.send(b"hello")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("X-Received-Body-Length"), "5")
            self.assertTrue(r.body.endswith(b"hello"), r.body)

    # -- request headers as the backend sees them

    def echo(self, headers=(), path="/echo", host="main.test", port=None):
        r = harness.http_request(port or self.port, "GET", path, headers=headers, host=host)
        self.assertEqual(r.status, 200, r)
        return harness.parse_echo(r.body)

    def test_hop_by_hop_headers_not_forwarded(self):
        _, hdrs, _ = self.echo([("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"),
                                ("TE", "trailers"), ("Trailer", "X-T"), ("Upgrade", "foo/1"),
                                ("Proxy-Connection", "keep-alive"), ("X-End-To-End", "kept")])
        for name in ("Keep-Alive", "TE", "Trailer", "Upgrade", "Proxy-Connection"):
            self.assertEqual(harness.headers_named(hdrs, name), [], "%s forwarded: %r" % (name, hdrs))
        for v in harness.headers_named(hdrs, "Connection"):
            self.assertIn(v.strip().lower(), ("keep-alive", "close", ""), hdrs)
        self.assertEqual(harness.headers_named(hdrs, "X-End-To-End"), ["kept"])

    def test_headers_named_in_connection_not_forwarded(self):
        _, hdrs, _ = self.echo([("Connection", "X-Hop-One, x-hop-two"), ("X-Hop-One", "1"),
                                ("X-Hop-Two", "2"), ("X-End-To-End", "kept")])
        self.assertEqual(harness.headers_named(hdrs, "X-Hop-One"), [], hdrs)
        self.assertEqual(harness.headers_named(hdrs, "X-Hop-Two"), [], hdrs)
        for v in harness.headers_named(hdrs, "Connection"):
            self.assertNotIn("hop", v.lower(), hdrs)
        self.assertEqual(harness.headers_named(hdrs, "X-End-To-End"), ["kept"])

    def test_x_forwarded_headers_set(self):
        _, hdrs, _ = self.echo(host="main.test")
        self.assertEqual(harness.headers_named(hdrs, "X-Forwarded-For"), ["127.0.0.1"])
        self.assertEqual(harness.headers_named(hdrs, "X-Forwarded-Proto"), ["http"])
        self.assertEqual(harness.headers_named(hdrs, "X-Forwarded-Host"), ["main.test"])

    def test_client_xff_dropped_from_untrusted_peer(self):
        _, hdrs, _ = self.echo([("X-Forwarded-For", "1.2.3.4")])
        self.assertEqual(harness.headers_named(hdrs, "X-Forwarded-For"), ["127.0.0.1"])

    def test_client_xff_kept_and_appended_from_trusted_peer(self):
        port, route_port = harness.free_port(), harness.free_port()
        p = self.start_portier(self.http_config(self.b1, self.rec, port, route_port,
                                                trusted=["127.0.0.1"]))
        _, hdrs, _ = self.echo([("X-Forwarded-For", "1.2.3.4")], port=p.port)
        self.assertEqual(harness.headers_named(hdrs, "X-Forwarded-For"), ["1.2.3.4, 127.0.0.1"])

    def test_host_is_proxy_host_by_default(self):
        # nginx's default: the upstream group's name (the client's Host is in X-Forwarded-Host).
        _, hdrs, _ = self.echo(host="Main.Test:8080")
        self.assertEqual(harness.headers_named(hdrs, "Host"), ["app"])

    def test_proxy_set_header_with_variables(self):
        _, hdrs, _ = self.echo(path="/echo?a=1")
        self.assertEqual(harness.headers_named(hdrs, "X-Real-IP"), ["127.0.0.1"])
        self.assertEqual(harness.headers_named(hdrs, "X-Orig-Uri"), ["/echo?a=1"])

    def test_proxy_hide_header_removes_backend_header(self):
        hidden = self.p.get("/headers?X-Secret=s3cr3t", host="main.test")
        self.assertEqual(hidden.status, 200)
        self.assertEqual(hidden.header("X-Backend"), "b1")
        self.assertIsNone(hidden.header("X-Secret"), hidden)
        shown = self.p.get("/headers?X-Visible=v", host="main.test")
        self.assertEqual(shown.header("X-Visible"), "v", shown)

    def test_add_header_on_proxied_response(self):
        r = self.p.get("/", host="main.test")
        self.assertEqual(r.header_all("X-Served-By"), ["portier"])

    # -- return

    def test_return_200_text(self):
        r = self.p.get("/ret200", host="main.test")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"plain text")
        self.assertRegex(r.header("Server") or "", r"^portier(/[0-9.]+)?$")
        self.assertIsNone(r.header("X-Backend"))

    def test_return_301_sets_location(self):
        r = self.p.get("/old", host="main.test")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("Location"), "https://example.com/new")

    # -- proxy_pass URI mapping

    def test_proxy_pass_with_uri_replaces_location_prefix(self):
        mark = self.rec.mark()
        r = self.p.get("/api/x?y=1", host="main.test")
        self.assertEqual(r.status, 200)
        reqs, _ = self.rec.since(mark)
        self.assertEqual([q.request_line for q in reqs], ["GET /v1/x?y=1 HTTP/1.1"])

    def test_proxy_pass_with_slash_uri_maps_to_backend_path(self):
        reqline, _, _ = self.echo(path="/strip/echo?y=1")
        self.assertEqual(reqline, "GET /echo?y=1 HTTP/1.1")

    def test_proxy_pass_without_uri_passes_request_uri_unchanged(self):
        mark = self.rec.mark()
        r = self.p.get("/raw/a%41b/c?x=%41b&y=1", host="main.test")
        self.assertEqual(r.status, 200)
        reqs, _ = self.rec.since(mark)
        self.assertEqual([q.target for q in reqs], ["/raw/a%41b/c?x=%41b&y=1"])

    # -- server selection (all on route_port, answered by `return`)

    def route(self, host, path="/"):
        r = harness.http_request(self.route_port, "GET", path, host=host)
        self.assertEqual(r.status, 200, r)
        return r.body.decode()

    def test_server_name_exact(self):
        self.assertEqual(self.route("exact.test"), "exact")

    def test_server_name_case_insensitive_and_port_ignored(self):
        self.assertEqual(self.route("EXACT.Test:%d" % self.route_port), "exact")

    def test_server_name_exact_beats_wildcard(self):
        self.assertEqual(self.route("x.wild.test"), "exact")

    def test_server_name_leading_wildcard(self):
        self.assertEqual(self.route("a.b.wild.test"), "wild")

    def test_server_name_trailing_wildcard(self):
        self.assertEqual(self.route("www.suffix.org"), "suffix")

    def test_server_name_regex(self):
        self.assertEqual(self.route("api12.re.test"), "regex")

    def test_unknown_host_goes_to_default_server(self):
        self.assertEqual(self.route("unknown.test"), "default")

    def test_regex_server_name_does_not_match_partially(self):
        self.assertEqual(self.route("api12.re.test.evil"), "default")

    # -- location selection (host loc.test on route_port)

    def loc(self, path):
        return self.route("loc.test", path)

    def test_location_exact_match(self):
        self.assertEqual(self.loc("/exact"), "exact-match")

    def test_location_exact_does_not_match_longer_path(self):
        self.assertEqual(self.loc("/exact/more"), "prefix-exact")

    def test_location_longest_prefix(self):
        self.assertEqual(self.loc("/docs/page"), "docs")
        self.assertEqual(self.loc("/doc"), "root")

    def test_location_caret_tilde_prefix_stops_regex_search(self):
        self.assertEqual(self.loc("/static/x.php"), "caret")

    def test_location_regex_beats_prefix(self):
        self.assertEqual(self.loc("/docs/a.php"), "regex-cs")

    def test_location_regex_checked_when_longest_prefix_is_not_caret(self):
        self.assertEqual(self.loc("/static/deep/x.php"), "regex-cs")

    def test_location_regex_case_sensitive(self):
        self.assertEqual(self.loc("/docs/a.PHP"), "docs")

    def test_location_regex_case_insensitive(self):
        self.assertEqual(self.loc("/img/a.jpg"), "regex-ci")
        self.assertEqual(self.loc("/img/a.JpG"), "regex-ci")

    def test_location_regexes_in_config_order(self):
        self.assertEqual(self.loc("/order/x"), "first-regex")


def routing_servers(port):
    """Servers sharing <port> that answer with their own name, for server_name and
    location selection.  The default server is deliberately not the first one."""
    def named(names, body, default=False):
        return server(port, [location("/", ret="200 " + body)], names=names, default=default)
    locs = server(port, [
        location("= /exact", ret="200 exact-match"),
        location("/exact", ret="200 prefix-exact"),
        location("^~ /static/", ret="200 caret"),
        location("/static/deep/", ret="200 deeper-prefix"),
        location("~ \\.php$", ret="200 regex-cs"),
        location("~* \\.JPG$", ret="200 regex-ci"),
        location("~ ^/order/", ret="200 first-regex"),
        location("~ /order/x$", ret="200 second-regex"),
        location("/docs/", ret="200 docs"),
        location("/", ret="200 root"),
    ], names=["loc.test"])
    return [
        named(["first.test"], "first"),
        named(["exact.test", "x.wild.test"], "exact"),
        named(["*.wild.test"], "wild"),
        named(["www.suffix.*"], "suffix"),
        named(["~^api\\d+\\.re\\.test$"], "regex"),
        named(["default.test"], "default", default=True),
        locs,
    ]


if __name__ == "__main__":
    harness.main()
