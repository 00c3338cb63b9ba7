"""
limit_conn, counted in shared memory by every worker: requests held open (a backend that
never answers) on both workers count against one limit, the next is refused on either
worker, and a request that ends however it ends (its client leaving, an upstream error or
timeout) gives its count back; dry run only sets $limit_conn_status; a worker killed while
holding counts does not hold them forever, and a worker that exits at
worker_shutdown_timeout gives back what it held itself; and nginx side by side.
"""

import os
import signal
import socket

import harness
import nginx
from harness import build_request, location, server

LOG = "$status $limit_conn_status $request_uri"


def answered(c):
    """Whether <c> has bytes to read (a refusal came back), without waiting."""
    c.sock.setblocking(False)
    try:
        return bool(c.sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
    finally:
        c.sock.setblocking(True)


def hold(port, backend, clients):
    """Sends GET /hang on each of <clients> (to portier or nginx on <port>) and waits until
    every one is held at <backend>.  A request that ends is given back just after its answer
    went out (a pool cleanup, as nginx's), so another worker may refuse a request sent at
    that moment: a refused one is sent again on a new connection.  Returns the clients
    held (the refused ones closed)."""
    clients = list(clients)
    pending = clients
    for _ in range(20):
        before = backend.count()[0]
        for c in pending:
            assert c.send(build_request("GET", "/hang"))
        harness.wait_until(lambda: any(answered(c) for c in pending) or
                           backend.count()[0] >= before + len(pending),
                           10.0, 0.02, "the held requests upstream")
        refused = [c for c in pending if answered(c)]
        if not refused:
            return clients
        for c in refused:
            c.close()
            clients.remove(c)
        pending = [harness.Client(port) for _ in refused]
        clients += pending
    raise AssertionError("requests kept being refused")


def passes(port, path, client=None):
    """Sends GET <path> until it is not refused (see hold()); the response."""
    def attempt():
        r = client.request("GET", path) if client else harness.http_request(port, "GET", path)
        return r if r.status != 503 else None
    return harness.wait_until(attempt, 10.0, 0.02, "%s to pass" % path)


class LimitConn(harness.TestCase):

    def start(self, locations, workers=2, main=None, **http):
        """portier with one limit_conn_zone "conns" by client address, "= /ping" answered by
        itself and <locations>, whose proxy_pass "http://backend" reaches a pt-backend
        (/hang never answers, / does at once); its access log in LOG's format."""
        self.backend = self.start_backend("b")
        p = self.start_portier(start=False)
        conf = {"log_format": {"lim": LOG}, "access_log": "%s lim" % p.access_log,
                "limit_conn_zone": "$binary_remote_addr zone=conns:1m",
                "upstream": {"backend": {"server": [self.backend.addr]}}}
        conf.update(http)
        conf["server"] = [server(harness.free_port(),
                                 [location("= /ping", ret="200 pong")] + list(locations))]
        m = {"worker_processes": workers}
        m.update(main or {})
        p.write_config(conf, main=m)
        p.start(workers=workers)
        return p

    def logged(self, p, pattern):
        return harness.wait_for_line(p.access_log, pattern, timeout=10)

    def test_limit_holds_across_two_workers_until_requests_end(self):
        p = self.start([location("/", proxy_pass="http://backend", limit_conn="conns 3")])
        first, second = p.clients_on_workers(3)
        # Three held: two through one worker, one through the other.
        hold(p.port, self.backend, first[:2] + second[:1])
        for c in (first[2], second[1]):
            self.assertPortierError(c.request("GET", "/more"), 503)
        # One of the held requests ends (its client leaves): either worker may count again.
        first[0].close()
        self.logged(p, r"^499 PASSED /hang$")
        r = passes(p.port, "/again", second[1])
        self.assertEqual((r.status, r.header("X-Backend")), (200, "b"))
        for c in first + second:
            c.close()
        # Every count given back: three can be held again.
        fresh = hold(p.port, self.backend, [p.client() for _ in range(3)])
        self.assertPortierError(p.get("/full"), 503)
        for c in fresh:
            c.close()

    def test_count_is_given_back_after_upstream_errors_and_timeouts(self):
        p = self.start([location("/down/", proxy_pass="http://127.0.0.1:%d" % harness.free_port(),
                                 limit_conn="conns 1"),
                        location("/slow/", proxy_pass="http://backend/hang",
                                 proxy_read_timeout="1s", limit_conn="conns 1")])
        # Each one has its own answer, never 503: the one before gave its count back.
        self.assertEqual([passes(p.port, "/down/").status for _ in range(3)], [502] * 3)
        self.assertEqual([passes(p.port, "/slow/").status for _ in range(2)], [504] * 2)

    def test_dry_run_refuses_nothing(self):
        p = self.start([location("/", proxy_pass="http://backend", limit_conn="conns 1",
                                 limit_conn_dry_run=True)], workers=1)
        start = harness.file_size(p.error_log)
        with p.client() as held:
            hold(p.port, self.backend, [held])
            self.assertEqual(p.get("/second").status, 200)
            self.logged(p, r"^200 REJECTED_DRY_RUN /second$")
            harness.wait_for_line(p.error_log, r'\[error\].*limiting connections, dry run, by zone '
                                  r'"conns", client: 127\.0\.0\.1', start=start)

    def test_counts_of_a_killed_worker_are_given_back(self):
        p = self.start([location("/", proxy_pass="http://backend", limit_conn="conns 2")])
        first, second = p.clients_on_workers(2)
        hold(p.port, self.backend, first)
        self.assertPortierError(second[0].request("GET", "/full"), 503)
        victim = p.worker_for(first[0])
        start = harness.file_size(p.error_log)
        os.kill(victim, signal.SIGKILL)
        p.wait_workers(2, exclude=[victim])
        # The dead worker could not give its two back: they are dropped once they stand in
        # the way, and the survivor's request passes.
        self.assertEqual(passes(p.port, "/after", second[1]).status, 200)
        harness.wait_for_line(p.error_log, r'limit_conn_zone "conns": 2 connections counted for '
                              r'processes that are gone given back', start=start)
        for c in first + second:
            c.close()

    def test_worker_leaving_at_shutdown_timeout_gives_back_what_it_holds(self):
        p = self.start([location("/", proxy_pass="http://backend", limit_conn="conns 2")],
                       workers=1, main={"worker_shutdown_timeout": "1s"})
        held = hold(p.port, self.backend, [p.client() for _ in range(2)])
        self.assertPortierError(p.get("/full"), 503)
        old = p.worker()
        start = harness.file_size(p.error_log)
        p.reload()
        harness.wait_until(lambda: not harness.pid_alive(old), 10.0, 0.05, "the old worker to exit")
        # Given back by the old worker's exit, not dropped as a dead process's.
        fresh = hold(p.port, self.backend, [p.client() for _ in range(2)])
        self.assertPortierError(p.get("/full-again"), 503)
        self.assertNotIn("processes that are gone", harness.read_file(p.error_log)[start:])
        for c in held + fresh:
            c.close()


class LimitConnBesideNginx(harness.TestCase):

    def test_same_answers_as_nginx(self):
        backend = self.start_backend("b")
        nport, pport = harness.free_port(), harness.free_port()
        ngx = nginx.Nginx(nport, (
            "limit_conn_zone $binary_remote_addr zone=conns:1m;\n"
            "server { listen 127.0.0.1:%d; add_header X-Limit $limit_conn_status always;\n"
            "  location / { limit_conn conns 1; proxy_pass http://%s; }\n"
            "  location /dry/ { limit_conn conns 1; limit_conn_dry_run on; "
            "proxy_pass http://%s; }\n"
            "  location /status/ { limit_conn conns 1; limit_conn_status 429; "
            "proxy_pass http://%s; }\n}") % (nport, backend.addr, backend.addr, backend.addr))
        self.addCleanup(ngx.stop)
        self.start_portier({
            "limit_conn_zone": "$binary_remote_addr zone=conns:1m",
            "server": [server(pport, [
                location("/", limit_conn="conns 1", proxy_pass="http://%s" % backend.addr),
                location("/dry/", limit_conn="conns 1", limit_conn_dry_run=True,
                         proxy_pass="http://%s" % backend.addr),
                location("/status/", limit_conn="conns 1", limit_conn_status=429,
                         proxy_pass="http://%s" % backend.addr),
            ], add_header="X-Limit $limit_conn_status always")],
        }, main={"worker_processes": 2}, workers=2)

        def answer(port, path):
            r = harness.http_request(port, "GET", path)
            return r.status, r.header("X-Limit") or ""

        for port in (nport, pport):
            who = "nginx" if port == nport else "portier"
            self.assertEqual(answer(port, "/"), (200, "PASSED"), who)
            (held,) = hold(port, backend, [harness.Client(port)])
            self.assertEqual(answer(port, "/"), (503, "REJECTED"), who)
            self.assertEqual(answer(port, "/dry/"), (200, "REJECTED_DRY_RUN"), who)
            self.assertEqual(answer(port, "/status/"), (429, "REJECTED"), who)
            held.close()
            harness.wait_until(lambda: answer(port, "/") == (200, "PASSED"), 10.0, 0.05,
                               "the count to come back on %s" % who)


if __name__ == "__main__":
    harness.main()
