"""
Passing a request to the next upstream server (nginx's proxy_next_upstream,
proxy_next_upstream_tries, proxy_next_upstream_timeout): which failures are
retried, which requests may be (POST only before any byte went up, unless
non_idempotent; a streamed body only when its replay copy is whole), what the
client gets when no try is left, and what the logs say.

The failing servers are pt-backend instances started with --fail MODE (every
request, read whole, is answered with a status, reset, closed or left hanging)
or --once (a kept-alive connection is closed when it is reused).  In a group,
the first request of a fresh portier goes to the first server listed.
"""

import os
import re
import time

import harness
from harness import LOCALHOST, chunked, location, server, upstream

LOG_FORMAT = "$request_uri|$status|$upstream_addr|$upstream_status|$upstream_response_time"


class FlakyBackend(harness.Backend):
    """A pt-backend started with extra switches (--fail MODE, --once)."""

    def __init__(self, name, *switches):
        self.switches = list(switches)
        super().__init__(name)

    def start(self, timeout=10.0):
        out = os.path.join(self.dir, "backend-%s.out" % self.name)
        err = os.path.join(self.dir, "backend-%s.err" % self.name)
        self.proc = harness.spawn([harness.BACKEND_BIN, "--listen", "%s:0" % LOCALHOST,
                                   "--name", self.name] + self.switches, out, err)
        port = self._wait_ready(out, 0, time.monotonic() + timeout)
        if not port:
            raise RuntimeError("pt-backend %s did not start: %s" % (self.name, harness.tail(err)))
        self.port = port


class Retries(harness.TestCase):

    def flaky(self, name, *switches):
        b = FlakyBackend(name, *switches)
        self.addCleanup(b.cleanup)
        return b

    def dead_addr(self):
        return "%s:%d" % (LOCALHOST, harness.dead_port())

    def start_group(self, addrs, keepalive=None, **directives):
        """A portier proxying / to a group of <addrs> (max_fails=0: the tests see every
        try, none skipped as down), with <directives> in the location and an access log
        of the $upstream_* variables (self.log)."""
        p = self.start_portier(start=False)
        self.log = os.path.join(p.dir, "retries.log")
        p.write_config({
            "log_format": {"retries": LOG_FORMAT},
            "upstream": {"app": upstream(*["%s max_fails=0" % a for a in addrs],
                                         keepalive=keepalive)},
            "server": [server(harness.free_port(), [
                location("/", proxy_pass="http://app", access_log=self.log + " retries",
                         **directives)])],
        })
        p.start()
        return p

    def passive_group(self, bad, good, next_upstream):
        """A portier whose group marks a server down after one failure for a minute, so
        that whether an answer counts as a failure shows in the log and in where the next
        requests go."""
        return self.start_portier({
            "upstream": {"app": upstream("%s max_fails=1 fail_timeout=60s" % bad.addr,
                                         good.addr)},
            "server": [server(harness.free_port(), [
                location("/", proxy_pass="http://app", proxy_next_upstream=next_upstream)])],
        })

    def test_a_listed_5xx_counts_as_a_failure_of_the_server(self):
        bad, good = self.flaky("bad", "--fail", "503"), self.start_backend("good")
        p = self.passive_group(bad, good, "error timeout http_503")
        self.assertEqual(p.get("/?t=first").header("X-Backend"), "good")
        self.assertRegex(harness.read_file(p.error_log),
                         r"upstream app server %s temporarily disabled" % re.escape(bad.addr))
        self.assertEqual([p.get("/?n=%d" % i).status for i in range(6)], [200] * 6)

    def test_an_unlisted_5xx_or_a_404_is_not_a_failure(self):
        bad, good = self.flaky("bad", "--fail", "503"), self.start_backend("good")
        p = self.passive_group(bad, good, "error timeout")
        statuses = [p.get("/?n=%d" % i).status for i in range(4)]
        self.assertEqual(sorted(statuses), [200, 200, 503, 503], "still in the rotation")
        self.assertNotIn("temporarily disabled", harness.read_file(p.error_log))
        missing = self.flaky("missing", "--fail", "404")
        p = self.passive_group(missing, good, "error timeout http_404")
        self.assertEqual(p.get("/?t=404").header("X-Backend"), "good")  # passed on...
        self.assertNotIn("temporarily disabled", harness.read_file(p.error_log))  # ...not counted

    def log_entry(self, uri):
        """(status, upstream_addr, upstream_status, upstream_response_time) of the
        request to <uri> in the access log."""
        line = harness.wait_for_line(self.log, r"^%s\|" % re.escape(uri))
        return tuple(line.split("|")[1:])

    def post(self, p, path, body, headers=()):
        with p.client() as c:
            return c.request("POST", path, headers=list(headers), body=body)

    def echoed_body(self, r):
        _, hdrs, body = harness.parse_echo(r.body)
        return hdrs, body

    # -- error: connect, reset, close

    def test_get_to_refusing_server_goes_to_the_next(self):
        dead, good = self.dead_addr(), self.start_backend("good")
        p = self.start_group([dead, good.addr])
        r = p.get("/?t=refused")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Backend"), "good")
        log = harness.read_file(p.error_log)
        self.assertRegex(log, r'connect\(\) to %s failed: Connection refused \(upstream "app"\), '
                              r'client 127\.0\.0\.1, request "GET /\?t=refused"' % re.escape(dead))

    def test_get_retried_after_a_reset(self):
        bad, good = self.flaky("bad", "--fail", "reset"), self.start_backend("good")
        p = self.start_group([bad.addr, good.addr])
        r = p.get("/?t=reset")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Backend"), "good")
        self.assertRegex(harness.read_file(p.error_log),
                         r'upstream closed or reset the connection: upstream %s \("app"\)'
                         % re.escape(bad.addr))

    def test_post_with_body_not_retried_after_it_went_up(self):
        bad, good = self.flaky("bad", "--fail", "reset"), self.start_recorder("good")
        p = self.start_group([bad.addr, good.addr])
        mark = good.mark()
        r = self.post(p, "/echo?t=post-reset", b"x" * 1000)
        self.assertPortierError(r, 502)
        reqs, nbytes = good.since(mark)
        self.assertEqual((reqs, nbytes), ([], 0), "the second server saw the POST")

    def test_post_retried_with_non_idempotent_gets_the_exact_body(self):
        bad, good = self.flaky("bad", "--fail", "reset"), self.start_backend("good")
        p = self.start_group([bad.addr, good.addr],
                             proxy_next_upstream="error timeout non_idempotent")
        body = bytes(range(256)) * 200  # 51200 bytes: more than one buffer, under 64 KiB
        r = self.post(p, "/echo?t=post-ni", body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Backend"), "good")
        self.assertEqual(r.header("X-Received-Body-Length"), str(len(body)))
        self.assertEqual(self.echoed_body(r)[1], body)

    def test_chunked_post_retried_with_non_idempotent_gets_the_exact_body(self):
        bad, good = self.flaky("bad", "--fail", "close"), self.start_backend("good")
        p = self.start_group([bad.addr, good.addr],
                             proxy_next_upstream=["error", "timeout", "non_idempotent"])
        pieces = [b"first piece;", b"", b"a" * 20000, b"\r\n0\r\n", b"last"]
        r = self.post(p, "/echo?t=post-chunked", chunked(*pieces),
                      headers=[("Transfer-Encoding", "chunked")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Backend"), "good")
        self.assertEqual(r.header("X-Received-Chunked"), "1")
        self.assertEqual(self.echoed_body(r)[1], b"".join(pieces))

    def test_post_whose_body_is_over_the_replay_copy_is_not_retried(self):
        bad, good = self.flaky("bad", "--fail", "reset"), self.start_recorder("good")
        p = self.start_group([bad.addr, good.addr],
                             proxy_next_upstream="error timeout non_idempotent")
        mark = good.mark()
        r = self.post(p, "/echo?t=post-big", b"y" * (200 * 1024))
        self.assertPortierError(r, 502)
        self.assertEqual(good.since(mark), ([], 0))
        harness.wait_for_line(p.error_log, r"not passed to the next upstream server: its body")

    def test_a_body_kept_for_a_retry_goes_up_once_when_no_retry_is_needed(self):
        good = self.start_backend("good")
        p = self.start_group([good.addr, self.start_backend("other").addr], keepalive=4,
                             proxy_next_upstream="error timeout non_idempotent")
        body = b"0123456789" * 5000
        for method, headers, data in (
                ("PUT", [], body),
                ("PUT", [("Transfer-Encoding", "chunked")], chunked(body[:7], body[7:])),
                ("POST", [], body),
                ("POST", [("Transfer-Encoding", "chunked")], chunked(b"hello"))):
            with p.client() as c:
                r = c.request(method, "/echo?t=once", headers=headers, body=data)
            self.assertEqual(r.status, 200, r)
            want = body if data is not None and b"hello" not in data else b"hello"
            self.assertEqual(r.header("X-Received-Body-Length"), str(len(want)), method)
            self.assertEqual(self.echoed_body(r)[1], want, (method, headers))

    def test_post_to_refusing_server_is_retried(self):
        dead, good = self.dead_addr(), self.start_backend("good")
        p = self.start_group([dead, good.addr])
        r = self.post(p, "/echo?t=post-refused", b"hello body")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Backend"), "good")
        self.assertEqual(self.echoed_body(r)[1], b"hello body")

    # -- http_NNN

    def test_http_503_listed_is_retried(self):
        bad, good = self.flaky("bad", "--fail", "503"), self.start_backend("good")
        p = self.start_group([bad.addr, good.addr], proxy_next_upstream="error timeout http_503")
        r = p.get("/?t=503-listed")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Backend"), "good")
        self.assertEqual(self.log_entry("/?t=503-listed")[:3],
                         ("200", "%s, %s" % (bad.addr, good.addr), "503, 200"))

    def test_http_503_not_listed_is_passed_through(self):
        bad, good = self.flaky("bad", "--fail", "503"), self.start_backend("good")
        p = self.start_group([bad.addr, good.addr])
        r = p.get("/?t=503-not-listed")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.header("X-Backend"), "bad")
        self.assertEqual(r.body, b"status 503\n")

    def test_last_503_passes_through_when_every_server_answers_503(self):
        a, b = self.flaky("a", "--fail", "503"), self.flaky("b", "--fail", "503")
        p = self.start_group([a.addr, b.addr], proxy_next_upstream="http_503")
        r = p.get("/?t=all-503")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.header("X-Backend"), "b")
        self.assertEqual(r.body, b"status 503\n")
        self.assertEqual(self.log_entry("/?t=all-503")[:3],
                         ("503", "%s, %s" % (a.addr, b.addr), "503, 503"))

    def test_post_answered_503_is_not_retried_without_non_idempotent(self):
        bad, good = self.flaky("bad", "--fail", "503"), self.start_backend("good")
        p = self.start_group([bad.addr, good.addr], proxy_next_upstream="error http_503")
        r = self.post(p, "/echo?t=post-503", b"data")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.header("X-Backend"), "bad")

    # -- limits

    def test_off_gives_502_on_the_first_error(self):
        dead, good = self.dead_addr(), self.start_backend("good")
        p = self.start_group([dead, good.addr], proxy_next_upstream="off")
        self.assertPortierError(p.get("/?t=off"), 502)
        self.assertEqual(self.log_entry("/?t=off")[:3], ("502", dead, "502"))

    def test_tries_1_does_not_retry(self):
        dead, good = self.dead_addr(), self.start_backend("good")
        p = self.start_group([dead, good.addr], proxy_next_upstream_tries=1)
        self.assertPortierError(p.get("/?t=tries"), 502)

    def test_timeout_is_retried_and_logged_504(self):
        slow, good = self.flaky("slow", "--fail", "hang"), self.start_backend("good")
        p = self.start_group([slow.addr, good.addr], proxy_read_timeout="1s")
        r = p.get("/?t=timeout", timeout=15)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.log_entry("/?t=timeout")[1:3],
                         ("%s, %s" % (slow.addr, good.addr), "504, 200"))

    def test_next_upstream_timeout_stops_retries(self):
        slow, good = self.flaky("slow", "--fail", "hang"), self.start_backend("good")
        p = self.start_group([slow.addr, good.addr], proxy_read_timeout="1s",
                             proxy_next_upstream_timeout="500ms")
        self.assertPortierError(p.get("/?t=next-timeout", timeout=15), 504)

    def test_stale_keepalive_connection_does_not_use_up_a_try(self):
        a, b = self.flaky("a", "--once"), self.flaky("b", "--once")
        p = self.start_group([a.addr, b.addr], keepalive=8, proxy_next_upstream_tries=1)
        got = []
        for i in range(4):
            r = p.get("/?t=stale-%d" % i)
            self.assertEqual(r.status, 200, r)
            got.append(r.header("X-Backend"))
        # Requests 3 and 4 met the pooled connections of requests 1 and 2, which the
        # servers closed: each went again on a fresh connection to the same server.
        self.assertEqual(got, ["a", "b", "a", "b"])
        self.assertEqual(self.log_entry("/?t=stale-2")[:3], ("200", a.addr, "200"))
        log = harness.read_file(p.error_log)
        self.assertEqual(len(re.findall(r"closed a kept-alive connection; retrying", log)), 2, log)

    def test_put_on_a_stale_keepalive_connection_goes_again_with_its_body(self):
        a = self.flaky("a", "--once")
        p = self.start_group([a.addr], keepalive=8)
        self.assertEqual(p.get("/?t=stale-first").status, 200)
        body = b"0123456789" * 3000
        with p.client() as c:
            r = c.request("PUT", "/echo?t=stale-put", body=body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.echoed_body(r)[1], body)
        self.assertIn("closed a kept-alive connection; retrying", harness.read_file(p.error_log))

    # -- logs and configuration

    def test_access_log_lists_every_server_tried(self):
        dead, good = self.dead_addr(), self.start_backend("good")
        p = self.start_group([dead, good.addr])
        self.assertEqual(p.get("/?t=log").status, 200)
        status, addrs, statuses, times = self.log_entry("/?t=log")
        self.assertEqual((status, addrs, statuses), ("200", "%s, %s" % (dead, good.addr), "502, 200"))
        self.assertRegex(times, r"^\d+\.\d{3}, \d+\.\d{3}$")

    def check_refused(self, value, message):
        """portier -t refuses proxy_next_upstream = <value> with <message> at its line."""
        p = self.start_portier({
            "upstream": {"app": upstream("127.0.0.1:1")},
            "server": [server(harness.free_port(), [
                location("/", proxy_pass="http://app", proxy_next_upstream=value)])],
        }, start=False)
        line = next(i for i, l in enumerate(p.text.splitlines(), 1) if "proxy_next_upstream" in l)
        res = p.run("-t", "-c", p.conf_path)
        self.assertEqual(res.returncode, 1)
        self.assertRegex(res.stderr.decode("utf-8", "replace"),
                         r"portier\.conf:%d: %s" % (line, re.escape(message)))

    def test_unknown_word_is_refused_with_file_and_line(self):
        self.check_refused("error http_418", 'invalid value "http_418" in "proxy_next_upstream"')

    def test_off_with_other_words_is_refused(self):
        self.check_refused(["off", "http_503"],
                           '"off" cannot be combined with other values in "proxy_next_upstream"')


if __name__ == "__main__":
    harness.main()
