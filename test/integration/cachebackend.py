"""
cachebackend.py: CacheBackend, an in-process origin for the cache tests.  It counts the
requests of every path and answers each path as the test configured it (status, fields,
body, a delay, a body cut short, a 304 to a matching If-None-Match), so a test can tell a
response from the cache from one fetched anew: unless told otherwise a path's body is
"PATH #N\n", N counting the requests the origin saw for it.
"""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from httpclient import LOCALHOST, headers_named


class Seen:
    """A request as the origin received it."""

    def __init__(self, method, target, headers, body, n):
        self.method = method
        self.target = target
        self.path = target.split("?", 1)[0]
        self.headers = headers  # [(name, value)]
        self.body = body
        self.n = n  # its rank among the requests for its path, from 1

    def header(self, name):
        vals = headers_named(self.headers, name)
        return vals[0] if vals else None


class Answer:
    """What the origin answers for a path.

    status, headers ([(name, value)]), body (None: "PATH #N\\n").  delay: seconds before the
    head is sent.  truncate: send a Content-Length for the whole body but only this many
    bytes of it, then close.  not_modified: a request whose If-None-Match holds the ETag of
    <headers> gets a 304 with <headers> (or <headers_304> when given).  framing: "length"
    (Content-Length), "chunked" (chunks of 1000 bytes) or "close" (neither: the body ends
    with the connection)."""

    def __init__(self, status=200, headers=(), body=None, delay=0.0, truncate=None,
                 not_modified=False, headers_304=None, framing="length"):
        self.status = status
        self.headers = list(headers)
        self.body = body
        self.delay = delay
        self.truncate = truncate
        self.not_modified = not_modified
        self.headers_304 = headers_304
        self.framing = framing


class CacheBackend:
    """An origin on 127.0.0.1 (ephemeral port): one thread per connection, every response
    closes its connection (so stop() leaves nothing to reuse)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.answers = {}   # path -> Answer, or a callable(Seen) -> Answer
        self.seen = []
        self._counts = {}
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one_request(self):
                try:
                    super().handle_one_request()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def do_GET(self):
                backend._answer(self)

            do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

        self.server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        self.running = True

    @property
    def addr(self):
        return "%s:%d" % (LOCALHOST, self.port)

    def route(self, path, answer=None, **kw):
        """Answers <path> with <answer> (an Answer or a callable taking the Seen request and
        returning one), or with Answer(**kw)."""
        with self.lock:
            self.answers[path] = answer if answer is not None else Answer(**kw)

    def count(self, path):
        """Requests the origin received for <path> (query ignored)."""
        with self.lock:
            return self._counts.get(path, 0)

    def requests(self, path):
        with self.lock:
            return [s for s in self.seen if s.path == path]

    def stop(self):
        """Closes the listening socket: new connections are refused."""
        if self.running:
            self.running = False
            self.server.shutdown()
            self.server.server_close()

    def _answer(self, h):
        n = int(h.headers.get("Content-Length") or 0)
        body_in = h.rfile.read(n) if n else b""
        path = h.path.split("?", 1)[0]
        with self.lock:
            rank = self._counts.get(path, 0) + 1
            self._counts[path] = rank
            seen = Seen(h.command, h.path, list(h.headers.items()), body_in, rank)
            self.seen.append(seen)
            a = self.answers.get(path) or Answer()
        if callable(a):
            a = a(seen)
        if a.delay:
            time.sleep(a.delay)
        status, headers = a.status, a.headers
        body = a.body if a.body is not None else ("%s #%d\n" % (path, rank)).encode()
        etag = headers_named(headers, "ETag")
        if a.not_modified and etag and seen.header("If-None-Match") == etag[0]:
            status = 304
            headers = a.headers_304 if a.headers_304 is not None else headers
            body = b""
        h.close_connection = True
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        if status == 304 or a.framing == "close":
            pass
        elif a.framing == "chunked":
            h.send_header("Transfer-Encoding", "chunked")
            body = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 1000]), body[i:i + 1000])
                            for i in range(0, len(body), 1000)) + b"0\r\n\r\n"
        else:
            h.send_header("Content-Length", str(len(body)))
        h.send_header("Connection", "close")
        h.end_headers()
        if h.command == "HEAD" or status == 304:
            return
        if a.truncate is not None:
            h.wfile.write(body[:a.truncate])
            h.wfile.flush()
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        h.wfile.write(body)
