"""
recorder.py: RecordingBackend, an in-process HTTP/1.1 origin that records exactly
what arrives (every byte, every request, every connection close) and answers every
request 200 "ok".
"""

import socket
import threading

from httpclient import LOCALHOST, headers_named


class RecordedRequest:
    def __init__(self, conn_id, head, body):
        self.conn_id = conn_id
        self.head = head
        self.body = body
        lines = head.split(b"\r\n")
        self.request_line = lines[0].decode("latin-1")
        parts = self.request_line.split(" ")
        self.method = parts[0]
        self.target = parts[1] if len(parts) > 1 else ""
        self.headers = []
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(b":")
                self.headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))

    def header(self, name):
        vals = headers_named(self.headers, name)
        return vals[0] if vals else None


class RecordingBackend:
    """Answers every request 200 "ok" (X-Backend: <name>), keeps connections alive,
    and records bytes, requests and closes."""

    def __init__(self, name="recorder"):
        self.name = name
        self.lock = threading.Lock()
        self.requests = []
        self.bytes_in = 0
        self.conns = {}      # id -> {"closed": bool, "bytes": int}
        self._next_id = 0
        self._socks = set()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((LOCALHOST, 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def addr(self):
        return "%s:%d" % (LOCALHOST, self.port)

    def _accept_loop(self):
        while not self._stop:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                cid = self._next_id
                self._next_id += 1
                self.conns[cid] = {"closed": False, "bytes": 0}
                self._socks.add(s)
            threading.Thread(target=self._serve, args=(s, cid), daemon=True).start()

    def _recv(self, s, cid):
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        with self.lock:
            self.bytes_in += len(data)
            self.conns[cid]["bytes"] += len(data)
        return data

    def _serve(self, s, cid):
        buf = bytearray()
        try:
            while self._serve_one(s, cid, buf):
                pass
        finally:
            with self.lock:
                self.conns[cid]["closed"] = True
                self._socks.discard(s)
            s.close()

    def _need(self, s, cid, buf, n):
        while len(buf) < n:
            d = self._recv(s, cid)
            if not d:
                return False
            buf += d
        return True

    def _line(self, s, cid, buf):
        while b"\r\n" not in buf:
            d = self._recv(s, cid)
            if not d:
                return None
            buf += d
        i = buf.index(b"\r\n")
        line = bytes(buf[:i])
        del buf[:i + 2]
        return line

    def _serve_one(self, s, cid, buf):
        while b"\r\n\r\n" not in buf:
            d = self._recv(s, cid)
            if not d:
                return False
            buf += d
        i = buf.index(b"\r\n\r\n")
        head = bytes(buf[:i + 4])
        del buf[:i + 4]
        req = RecordedRequest(cid, head, b"")
        body = bytearray()
        te = (req.header("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            while True:
                line = self._line(s, cid, buf)
                if line is None:
                    return False
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while True:
                        t = self._line(s, cid, buf)
                        if t is None:
                            return False
                        if t == b"":
                            break
                    break
                if not self._need(s, cid, buf, size + 2):
                    return False
                body += buf[:size]
                del buf[:size + 2]
        elif req.header("Content-Length"):
            n = int(req.header("Content-Length"))
            if not self._need(s, cid, buf, n):
                return False
            body += buf[:n]
            del buf[:n]
        req.body = bytes(body)
        with self.lock:
            self.requests.append(req)
        close = "close" in (req.header("Connection") or "").lower()
        out = (b"HTTP/1.1 200 OK\r\nX-Backend: " + self.name.encode() +
               b"\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n" +
               (b"Connection: close\r\n" if close else b"") + b"\r\n")
        if req.method != "HEAD":
            out += b"ok\n"
        try:
            s.sendall(out)
        except OSError:
            return False
        return not close

    def mark(self):
        """A point in time to compare against with since()."""
        with self.lock:
            return (len(self.requests), self.bytes_in, self._next_id)

    def since(self, mark):
        """(requests, bytes received, ids of connections that got data) after <mark>."""
        with self.lock:
            reqs = self.requests[mark[0]:]
            return reqs, self.bytes_in - mark[1]

    def conn_closed(self, cid):
        with self.lock:
            return self.conns[cid]["closed"]

    def stop(self):
        self._stop = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    cleanup = stop
