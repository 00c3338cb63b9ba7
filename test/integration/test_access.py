"""
allow and deny (the access module), nginx's meaning: rules checked in the order
written across both directives, the first match decides, no match allows; a
denied client gets portier's own 403 and nothing reaches the backend; a level
with any rule replaces its parent's list instead of extending it.
"""

import re
import socket

import harness
from harness import Raw, location, server, upstream


def ipv6_loopback_works():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def get_v6(port, path):
    """GET <path> from [::1] to [::1]:<port>; the status code."""
    with socket.create_connection(("::1", port), 10) as s:
        s.sendall(harness.build_request("GET", path, headers=[("Connection", "close")]))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    if not m:
        raise harness.ProtocolError("bad response %r" % data[:200])
    return int(m.group(1))


def ruled(path, **rules):
    """A location proxied to the recorder with the rules given."""
    return location(path, proxy_pass="http://app", **rules)


class Access(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.rec = cls.class_recorder("app")
        cls.port = harness.free_port()      # no rules at server level
        cls.closed = harness.free_port()    # server level: deny all
        cls.inherit = harness.free_port()   # inherits the http level's rule
        cls.p = cls.class_portier({
            "deny": "127.0.0.2",  # http level; the first two servers set their own
            "upstream": {"app": upstream(cls.rec.addr)},
            "server": [
                server(cls.port, [
                    location("/", proxy_pass="http://app"),
                    ruled("/deny/", deny="127.0.0.1"),
                    ruled("/no-match/", deny="10.0.0.1"),
                    ruled("/allow-then-deny/", allow="127.0.0.1", deny="all"),
                    ruled("/deny-then-allow/", deny="127.0.0.0/8", allow="all"),
                    ruled("/same-line-allow/", allow=Raw('"127.0.0.1"; deny = "all"')),
                    ruled("/same-line-deny/", deny=Raw('"127.0.0.1"; allow = "all"')),
                    ruled("/list-order/", allow=["10.0.0.0/8", "127.0.0.1/32"], deny="all"),
                    ruled("/cidr8/", deny="127.0.0.0/8"),
                    ruled("/cidr32/", deny="127.0.0.1/32"),
                    ruled("/cidr32-other/", deny="127.0.0.2/32", allow="all"),
                    ruled("/low-bits/", deny="127.9.9.9/8"),
                    ruled("/v6-all/", deny="::/0"),
                    ruled("/v6-mapped/", deny="::ffff:127.0.0.0/104"),
                    ruled("/ordered-deny/", access=["deny 127.0.0.1", "allow 127.0.0.0/8",
                                                    "deny all"]),
                    ruled("/ordered-allow/", access=["deny 127.0.0.2", "allow 127.0.0.0/8",
                                                     "deny all"]),
                ], allow="all"),
                server(cls.closed, [
                    location("/", proxy_pass="http://app"),
                    ruled("/open/", allow="127.0.0.1"),
                    ruled("/other-net/", allow="10.0.0.0/8"),
                ], deny="all"),
                server(cls.inherit, [location("/", proxy_pass="http://app")]),
            ],
        })

    def get(self, path, port=None):
        return self.p.get(path, port=port or self.port)

    def assertAllowed(self, path, port=None):
        r = self.get(path, port)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Backend"), "app", r)

    def assertDenied(self, path, port=None):
        mark = self.rec.mark()
        r = self.get(path, port)
        self.assertPortierError(r, 403)
        self.assertIn(b"403", r.body)
        reqs, nbytes = self.rec.since(mark)
        self.assertEqual((len(reqs), nbytes), (0, 0), "a denied request reached the backend")

    # -- allowed and denied

    def test_allowed_client_is_proxied(self):
        self.assertAllowed("/")

    def test_deny_own_address_gives_403_and_nothing_reaches_backend(self):
        self.assertDenied("/deny/x")

    def test_denied_request_is_logged_at_error_level(self):
        start = harness.file_size(self.p.error_log)
        self.assertDenied("/deny/logged")
        harness.wait_for_line(self.p.error_log,
                              r'\[error\].*access forbidden by rule, client 127\.0\.0\.1, '
                              r'request "GET /deny/logged"', start=start)

    def test_no_matching_rule_allows(self):
        self.assertAllowed("/no-match/")

    # -- order

    def test_allow_then_deny_all_allows(self):
        self.assertAllowed("/allow-then-deny/")

    def test_deny_then_allow_all_denies(self):
        self.assertDenied("/deny-then-allow/")

    def test_allow_before_deny_on_one_line_allows(self):
        self.assertAllowed("/same-line-allow/")

    def test_deny_before_allow_on_one_line_denies(self):
        self.assertDenied("/same-line-deny/")

    def test_list_elements_keep_their_order(self):
        self.assertAllowed("/list-order/")

    # -- addresses

    def test_access_list_keeps_nginx_order_deny_allow_deny(self):
        # nginx's "deny A; allow NET; deny all;", which two libconfig keys cannot write.
        self.assertDenied("/ordered-deny/x")
        self.assertAllowed("/ordered-allow/x")

    def test_cidr_8_covers_the_client(self):
        self.assertDenied("/cidr8/")

    def test_cidr_32_matches_the_client_only(self):
        self.assertDenied("/cidr32/")
        self.assertAllowed("/cidr32-other/")

    def test_host_bits_beyond_the_mask_mean_the_network(self):
        self.assertDenied("/low-bits/")

    def test_ipv6_rule_does_not_match_an_ipv4_client(self):
        self.assertAllowed("/v6-all/")

    def test_ipv4_mapped_ipv6_rule_does_not_match_an_ipv4_client(self):
        # nginx checks an IPv4 client (or a v4-mapped one) against IPv4 rules only
        self.assertAllowed("/v6-mapped/")

    # -- inheritance

    def test_server_rules_apply_to_a_location_without_rules(self):
        self.assertDenied("/", port=self.closed)

    def test_location_rules_replace_the_server_list(self):
        self.assertAllowed("/open/", port=self.closed)

    def test_location_list_replaces_rather_than_extends(self):
        # Only "allow 10.0.0.0/8" applies here: no rule matches, so the client is
        # allowed; had the server's "deny all" been appended, it would be denied.
        self.assertAllowed("/other-net/", port=self.closed)

    def test_server_without_rules_inherits_http_level(self):
        self.assertAllowed("/", port=self.inherit)  # http level denies 127.0.0.2 only

    def test_http_level_rules_reach_server_without_rules(self):
        p = self.start_portier({
            "deny": "127.0.0.1",
            "upstream": {"app": upstream(self.rec.addr)},
            "server": [server(harness.free_port(), [location("/", proxy_pass="http://app")])],
        })
        mark = self.rec.mark()
        self.assertPortierError(p.get("/"), 403)
        self.assertEqual(self.rec.since(mark)[0], [])


@harness.unittest.skipUnless(ipv6_loopback_works(), "no IPv6 loopback")
class AccessIPv6(harness.TestCase):

    def start(self, **rules):
        rec = self.start_recorder("app")
        port = harness.free_port()
        srv = server(port, [location("/", proxy_pass="http://app")], **rules)
        srv["listen"].append("[::1]:%d" % port)
        p = self.start_portier({"upstream": {"app": upstream(rec.addr)}, "server": [srv]})
        return p, port

    def test_ipv6_rule_matches_ipv6_client_only(self):
        p, port = self.start(deny="::1")
        self.assertEqual(get_v6(port, "/"), 403)
        self.assertEqual(p.get("/").status, 200)

    def test_ipv6_prefix_allows_then_deny_all(self):
        p, port = self.start(allow="::/64", deny="all")
        self.assertEqual(get_v6(port, "/"), 200)
        self.assertPortierError(p.get("/"), 403)


class AccessConfigErrors(harness.TestCase):

    def check_refused(self, directive, value, shown=None):
        port = harness.free_port()
        p = self.start_portier({"server": [server(port, [
            location("/", ret="200 ok", **{directive: value})])]}, start=False)
        line = next(i for i, l in enumerate(p.text.splitlines(), 1)
                    if l.strip().startswith(directive + " ="))
        res = p.run("-t", "-c", p.conf_path)
        self.assertEqual(res.returncode, 1, res)
        self.assertIn('portier.conf:%d: invalid value "%s" for "%s": use ADDRESS, ADDRESS/BITS '
                      'or "all"' % (line, shown or value, directive),
                      res.stderr.decode("utf-8", "replace"))

    def test_bad_ipv4_address_is_refused_with_file_and_line(self):
        self.check_refused("allow", "10.0.0.300")

    def test_mask_too_long_is_refused(self):
        self.check_refused("deny", "10.0.0.0/33")

    def test_ipv6_mask_too_long_is_refused(self):
        self.check_refused("deny", "2001:db8::/129")

    def test_empty_or_signed_mask_is_refused(self):
        self.check_refused("deny", "10.0.0.0/")
        self.check_refused("deny", "10.0.0.0/+8")

    def test_name_instead_of_address_is_refused(self):
        self.check_refused("allow", "localhost")

    def test_bad_element_of_a_list_is_refused(self):
        self.check_refused("deny", ["10.0.0.1", "all/8"], shown="all/8")

    def test_bad_access_element_is_refused(self):
        p = self.start_portier({"server": [server(harness.free_port(), [
            location("/", ret="200 ok", access=["allow 127.0.0.1", "permit all"])])]},
            start=False)
        res = p.run("-t", "-c", p.conf_path)
        self.assertEqual(res.returncode, 1, res)
        self.assertRegex(res.stderr.decode("utf-8", "replace"),
                         r'portier\.conf:\d+: invalid value "permit all" for "access": use '
                         r'"allow ADDRESS" or "deny ADDRESS"')

    def test_good_rules_pass(self):
        port = harness.free_port()
        p = self.start_portier({"server": [server(port, [location(
            "/", ret="200 ok", allow=["10.0.0.0/8", "2001:db8::/32", "127.0.0.1"],
            deny="all")])]}, start=False)
        res = p.run("-t", "-c", p.conf_path)
        self.assertEqual(res.returncode, 0, res.stderr)


if __name__ == "__main__":
    harness.main()
