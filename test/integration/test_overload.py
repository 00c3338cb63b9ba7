"""
Connection management under overload (issue 11): a worker out of file descriptors rests
instead of spinning; answers already due survive the close that follows them; upstream
connections count against worker_connections; at the limit, idle connections make room for
new clients.  Each test is bounded to a few hundred connections and a few seconds.
"""

import os
import socket
import time

import harness
from harness import location, server, upstream


def cpu_seconds(pid):
    """utime + stime of <pid>, in seconds (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_lines(p, needle):
    text = harness.read_file(p.error_log, "rb").decode("utf-8", "replace")
    return [line for line in text.splitlines() if needle in line]


def open_clients(port, n, first_bytes=b""):
    """<n> raw connections to <port>, each having sent <first_bytes>; a connection the
    server refused is left out."""
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection((harness.LOCALHOST, port), 5)
            if first_bytes:
                s.sendall(first_bytes)
            socks.append(s)
        except OSError:
            pass
    return socks


def close_all(socks):
    for s in socks:
        s.close()


def served(port, path="/"):
    """True when a fresh client gets a 200 for <path>."""
    try:
        return harness.http_request(port, "GET", path, timeout=2).status == 200
    except (OSError, harness.ProtocolError):
        return False


class FdExhaustion(harness.TestCase):
    """worker_rlimit_nofile = 64 and more clients than that: accept() fails with EMFILE."""

    def test_worker_rests_instead_of_spinning_and_serves_again(self):
        port = harness.free_port()
        p = self.start_portier({"server": [server(port, [location("/", ret="200 ok\n")])]},
                               main={"worker_rlimit_nofile": 64})
        worker = p.worker()
        # A partial head each: these connections are in a request, nothing to reclaim.
        idle = open_clients(port, 150, b"GET / HTTP/1.1\r\n")
        self.addCleanup(close_all, idle)
        time.sleep(0.5)
        before = cpu_seconds(worker)
        time.sleep(2.0)
        used = cpu_seconds(worker) - before
        # A worker that retries accept() at once for as long as the backlog is full burns
        # the whole 2 s; one that rests 500 ms between tries uses next to nothing.
        self.assertLess(used, 0.5, "the worker spent %.2fs of CPU in 2s" % used)
        failures = log_lines(p, "accept() on")
        self.assertGreater(len(failures), 0)
        self.assertLessEqual(len(failures), 3, failures)
        self.assertIn("Too many open files", failures[0])
        self.assertIn("not accepting for 500 ms", failures[0])
        close_all(idle)
        harness.wait_until(lambda: served(port), 5.0, 0.1, "a client served again")

    def test_start_warns_when_worker_connections_exceed_the_fd_limit(self):
        port = harness.free_port()
        p = self.start_portier({"server": [server(port, [location("/", ret="200 ok\n")])]},
                               main={"worker_rlimit_nofile": 64, "worker_connections": 1024})
        text = harness.read_file(p.error_log) + harness.read_file(p.stderr)
        self.assertIn("1024 worker_connections exceed the open file limit of a worker (64", text)
        self.assertIn("set worker_rlimit_nofile to at least 1056", text)
        self.assertTrue(served(port))


class AnswersBeforeClose(harness.TestCase):
    """A connection that ends while the client still sends lingers: no RST destroys the
    answers already on their way."""

    BODY = "x" * 1000

    @classmethod
    def setUpClass(cls):
        cls.port = harness.free_port()
        cls.p = cls.class_portier({"server": [server(cls.port, [
            location("/", ret="200 %s" % cls.BODY),
        ])]})

    def read_to_end(self, s, timeout=10.0):
        """Everything <s> receives up to the server's FIN; fails on a reset."""
        data = bytearray()
        s.settimeout(timeout)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return bytes(data)
            data += chunk

    def test_pipelined_requests_past_keepalive_requests_get_every_answer_due(self):
        s = socket.create_connection((harness.LOCALHOST, self.port), 5)
        self.addCleanup(s.close)
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 2000)
        time.sleep(1.0)  # the client reads late: the answers fill every buffer meanwhile
        data = self.read_to_end(s)
        # keepalive_requests (1000) ends the connection after the 1,000th answer (nginx
        # sends all 1,000 as well).
        self.assertEqual(data.count(b"HTTP/1.1 200 "), 1000)
        self.assertEqual(data.count(b"Connection: close"), 1)
        self.assertTrue(data.endswith(self.BODY.encode()))

    def test_request_line_of_a_mebibyte_without_crlf_gets_its_414(self):
        s = socket.create_connection((harness.LOCALHOST, self.port), 5)
        self.addCleanup(s.close)
        s.settimeout(10)
        try:
            s.sendall(b"GET /" + b"a" * (1024 * 1024))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the answer must still be readable
        data = self.read_to_end(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 414 "), data[:200])


class UpstreamConnectionsCount(harness.TestCase):

    def test_worker_connections_bound_client_and_upstream_connections_together(self):
        b = self.start_backend("b1")
        port = harness.free_port()
        limit = 40
        p = self.start_portier({
            "upstream": {"app": upstream(b.addr)},
            "server": [server(port, [location("/", proxy_pass="http://app")])],
        }, main={"worker_connections": limit})
        worker = p.worker()
        baseline = len(harness.socket_inodes(worker))
        # Slow bodies: each request holds its client and its upstream connection.
        head = (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
        clients = open_clients(port, 60, head)
        self.addCleanup(close_all, clients)
        time.sleep(1.0)
        held = len(harness.socket_inodes(worker)) - baseline
        upstream_conns = len(harness.established_to(b.port))
        self.assertGreater(upstream_conns, 0)
        self.assertLessEqual(held, limit, "%d sockets beside the listeners (%d upstream)"
                             % (held, upstream_conns))
        self.assertLessEqual(len(log_lines(p, "worker_connections are not enough")), 2)
        close_all(clients)
        harness.wait_until(lambda: served(port), 5.0, 0.1, "a client served again")

    def test_no_connection_left_for_upstream_is_500_and_not_the_servers_fault(self):
        # Clients take every slot, so the upstream connect of the last ones finds none:
        # they get 500 (nginx's answer), and the server, with max_fails=1, is not marked
        # down for it: the next request is served.
        b = self.start_backend("b1")
        port = harness.free_port()
        p = self.start_portier({
            "upstream": {"app": upstream("%s max_fails=1 fail_timeout=60s" % b.addr)},
            "server": [server(port, [location("/", proxy_pass="http://app")])],
        }, main={"worker_connections": 21})  # odd: a client takes the last slot
        head = (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
        clients = open_clients(port, 30, head)
        self.addCleanup(close_all, clients)
        # (before: "connect() to ... failed" and the server marked down for 60 s)
        harness.wait_until(lambda: log_lines(p, "cannot connect to upstream") or
                           log_lines(p, "connect() to"), 5.0,
                           what="an upstream connect refused for lack of connections")
        close_all(clients)
        harness.wait_until(lambda: served(port), 5.0, 0.1, "a client served again")
        self.assertEqual(log_lines(p, "no live upstreams"), [])
        self.assertEqual(log_lines(p, "connect() to"), [])


class IdleConnectionsReclaimed(harness.TestCase):

    def test_idle_keepalive_connections_make_room_for_new_clients(self):
        port = harness.free_port()
        p = self.start_portier({"server": [server(port, [location("/", ret="200 ok\n")])]},
                               main={"worker_connections": 64})
        idle = []
        self.addCleanup(lambda: [c.close() for c in idle])
        for _ in range(64):
            c = p.client()
            idle.append(c)
            self.assertEqual(c.request("GET", "/").status, 200)
        # The worker is full of idle keepalive connections: new clients are served all
        # the same (nginx's ngx_drain_connections closes the oldest idle ones).
        for i in range(100):
            self.assertTrue(served(port), "new client %d refused" % i)
        self.assertTrue(idle[0].wait_closed(3.0), "the oldest idle connection is kept")
        self.assertEqual(idle[-1].request("GET", "/").status, 200)
        self.assertLessEqual(len(log_lines(p, "worker_connections are not enough")), 2)

    def test_connections_that_sent_nothing_make_room_too(self):
        port = harness.free_port()
        p = self.start_portier({"server": [server(port, [location("/", ret="200 ok\n")])]},
                               main={"worker_connections": 64})
        silent = open_clients(port, 64)
        self.addCleanup(close_all, silent)
        time.sleep(0.3)
        for i in range(20):
            self.assertTrue(served(port), "new client %d refused" % i)
        self.assertLessEqual(len(log_lines(p, "worker_connections are not enough")), 2)


if __name__ == "__main__":
    harness.main()
