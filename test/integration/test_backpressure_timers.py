"""
Timers during backpressure blame the side that caused the wait (issue 11, defect 2).

A side's timer runs only while portier waits on that side.  While portier waits on the
other side because it cannot take more (an upstream that stops reading the request body,
a client that stops reading the response), that other side's timer runs instead:
proxy_send_timeout for the upstream, send_timeout for the client.  A failure is logged and
counted against the side that caused it: a client that stops reading is "client timed
out ... while sending response to client" and is no failure of the upstream (its "fails"
in the status JSON stays put); an upstream that stops reading the body is "upstream timed
out ... while sending request to upstream", a 504 counted against it.

Scaled down from the issue's figures: timeouts of 1 s, pauses of 2.5 s, bodies of 16 MiB
through small socket buffers.
"""

import json
import re
import socket
import threading
import time

import harness
from harness import LOCALHOST, MIB, location, server, upstream

BODY = 16 * MIB       # more than the socket buffers on the way can hold
PAUSE = 2.5           # seconds a side stops reading: past every 1 s timeout
SMALL_BUF = 16 * 1024  # SO_RCVBUF of the sides that stop reading


class PausingUpstream:
    """An origin in this process whose small receive buffer fills fast.  POST .../pause
    reads the head, reads nothing more for PAUSE seconds, then reads the whole body and
    answers 200 "received N"; POST .../stuck never reads the body (it holds the
    connection until portier closes it or the test ends)."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by accepted sockets: the window stays small, the sender blocks soon.
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUF)
        self.lsock.bind((LOCALHOST, 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.received = []  # body sizes read by /pause
        self.stop_event = threading.Event()
        self.threads = []
        self.socks = []
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)

    @property
    def addr(self):
        return "%s:%d" % (LOCALHOST, self.port)

    def _accept_loop(self):
        while not self.stop_event.is_set():
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            self.socks.append(s)
            t = threading.Thread(target=self._serve, args=(s,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, s):
        try:
            s.settimeout(20)
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = s.recv(4096)
                if not data:
                    return
                buf += data
            head, _, rest = buf.partition(b"\r\n\r\n")
            target = head.split(b" ", 2)[1]
            m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
            length = int(m.group(1)) if m else 0
            if target.endswith(b"/stuck"):
                self.stop_event.wait(20)
                return
            self.stop_event.wait(PAUSE)
            got = len(rest)
            while got < length:
                data = s.recv(1 << 20)
                if not data:
                    return
                got += len(data)
            self.received.append(got)
            body = b"received %d\n" % got
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                      % (len(body), body))
        except OSError:
            pass
        finally:
            s.close()

    def stop(self):
        self.stop_event.set()
        self.lsock.close()
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:
            t.join(5)


def small_client(port):
    """A client socket whose receive buffer is small, so that not reading blocks the
    response soon."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUF)
    s.settimeout(10)
    s.connect((LOCALHOST, port))
    return s


def recv_all(s, n, deadline):
    """Reads until <n> bytes came or the connection ended; the bytes read."""
    out = bytearray()
    while len(out) < n:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = s.recv(min(1 << 20, n - len(out)))
        except (ConnectionResetError, socket.timeout):
            break
        if not data:
            break
        out += data
    return bytes(out)


def read_head(s, deadline):
    """The response head, and the body bytes that came with it."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        data = s.recv(4096)
        if not data:
            raise AssertionError("connection closed before a response head: %r" % buf)
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


class BackpressureTimers(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.origin = PausingUpstream()
        cls.addClassCleanup(cls.origin.stop)
        cls.big = cls.class_backend("big")
        cls.port = harness.free_port()
        cls.p = cls.class_portier({
            "upstream": {"slow": upstream(cls.origin.addr), "big": upstream(cls.big.addr)},
            "client_max_body_size": "32m",
            "server": [server(cls.port, [
                location("= /status", status=True),
                # The upstream pauses reading the body; the client must not be blamed.
                location("/body/", proxy_pass="http://slow", client_body_timeout="1s",
                         proxy_send_timeout="5s"),
                # The upstream never reads the body: its own timer ends the request.
                location("/stuck/", proxy_pass="http://slow", client_body_timeout="5s",
                         proxy_send_timeout="1s"),
                # The client pauses reading the response; the upstream must not be blamed.
                location("/pause/", proxy_pass="http://big", proxy_read_timeout="1s",
                         send_timeout="5s"),
                # The client never reads the response: its own timer ends the request.
                location("/stop/", proxy_pass="http://big", proxy_read_timeout="1s",
                         send_timeout="1s"),
            ])],
        })

    def fails(self, name, addr):
        r = self.p.get("/status")
        self.assertEqual(r.status, 200, r)
        servers = json.loads(r.body)["upstreams"][name]["servers"]
        return {s["server"]: s for s in servers}[addr]["fails"]

    def log_since(self, mark):
        return harness.read_file(self.p.error_log, "rb")[mark:].decode("utf-8", "replace")

    def access_line(self, request):
        """The access log line of <request> ("METHOD TARGET"), once it is written."""
        def probe():
            lines = [l for l in self.p.access_lines() if '"%s ' % request in l]
            return lines[-1] if lines else None
        return harness.wait_until(probe, 5.0, 0.05, "an access log line for %s" % request)

    def test_upstream_pausing_its_body_read_is_no_client_timeout(self):
        """(a) client_body_timeout 1s, the upstream reads nothing for 2.5 s while the client
        sends 16 MiB as fast as it can: 200 once the upstream goes on, every byte arrived."""
        before = self.fails("slow", self.origin.addr)
        mark = harness.file_size(self.p.error_log)
        with harness.Client(self.port, timeout=15) as c:
            sent = c.send(b"POST /body/pause HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n"
                          b"\r\n" % BODY + b"x" * BODY)
            r = c.read_response(timeout=15)
        self.assertTrue(sent, "portier closed the connection in the middle of the body")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"received %d\n" % BODY)
        self.assertIn('"POST /body/pause HTTP/1.1" 200 ', self.access_line("POST /body/pause"))
        log = self.log_since(mark)
        self.assertNotIn("client timed out", log)
        self.assertNotIn("upstream timed out", log)
        self.assertEqual(self.fails("slow", self.origin.addr), before)

    def test_upstream_that_never_reads_the_body_times_out_as_upstream(self):
        """proxy_send_timeout 1s, the upstream never reads: 504, logged in nginx's words as
        the upstream's timeout while sending the request, counted against it."""
        before = self.fails("slow", self.origin.addr)
        mark = harness.file_size(self.p.error_log)
        with harness.Client(self.port, timeout=15) as c:
            c.send(b"POST /stuck/stuck HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n"
                   b"\r\n" % BODY + b"x" * BODY)
            r = c.read_response(timeout=15)
        self.assertPortierError(r, 504)
        self.assertIn('"POST /stuck/stuck HTTP/1.1" 504 ', self.access_line("POST /stuck/stuck"))
        log = self.log_since(mark)
        self.assertRegex(log, r"upstream timed out \(110: Connection timed out\) while sending "
                              r"request to upstream")
        self.assertNotIn("client timed out", log)
        self.assertEqual(self.fails("slow", self.origin.addr), before + 1)

    def test_client_pausing_its_read_gets_the_whole_response(self):
        """(b) proxy_read_timeout 1s, the client reads nothing for 2.5 s in the middle of a
        16 MiB response: it gets every byte, the access log says 200 with all of them, and
        the upstream is not blamed."""
        before = self.fails("big", self.big.addr)
        mark = harness.file_size(self.p.error_log)
        path = "/pause/bytes?n=%d" % BODY
        s = small_client(self.port)
        try:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
                      % path.encode())
            deadline = time.monotonic() + 15
            head, first = read_head(s, deadline)
            self.assertRegex(head, r"^HTTP/1.1 200 ")
            self.assertIn("Content-Length: %d" % BODY, head)
            time.sleep(PAUSE)
            rest = recv_all(s, BODY - len(first), deadline)
        finally:
            s.close()
        self.assertEqual(len(first) + len(rest), BODY)
        line = self.access_line("GET " + path)
        self.assertIn('"GET %s HTTP/1.1" 200 %d ' % (path, BODY), line)
        log = self.log_since(mark)
        self.assertNotIn("upstream timed out", log)
        self.assertNotIn("client timed out", log)
        self.assertEqual(self.fails("big", self.big.addr), before)

    def test_client_that_never_reads_times_out_as_client(self):
        """send_timeout 1s, the client never reads the response: it is cut off and logged as
        nginx logs a client timeout; the upstream is not blamed nor counted."""
        before = self.fails("big", self.big.addr)
        mark = harness.file_size(self.p.error_log)
        path = "/stop/bytes?n=%d" % BODY
        s = small_client(self.port)
        try:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: a.test\r\n\r\n" % path.encode())
            harness.wait_for_line(self.p.error_log, r"client timed out", timeout=8.0, start=mark)
            got = recv_all(s, BODY, time.monotonic() + 10)
        finally:
            s.close()
        self.assertLess(len(got), BODY, "the whole response went to a client that did not read")
        log = self.log_since(mark)
        self.assertRegex(log, r"client timed out \(110: Connection timed out\) while sending "
                              r"response to client, client: 127\.0\.0\.1")
        self.assertNotIn("upstream timed out", log)
        self.assertRegex(self.access_line("GET " + path), r'"GET %s HTTP/1.1" 200 '
                         % re.escape(path))
        self.assertEqual(self.fails("big", self.big.addr), before)


if __name__ == "__main__":
    harness.main()
