"""
httpclient.py: a raw-socket HTTP/1.1 client for the integration tests: exact bytes
out, a strict response reader in (Content-Length, chunked, until close, HEAD, 1xx),
and helpers for pt-backend's /echo and /bytes.
"""

import re
import socket
import time

LOCALHOST = "127.0.0.1"


class ProtocolError(Exception):
    pass


class Response:
    """A parsed response.  headers: list of (name, value) as received."""

    def __init__(self):
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers = []
        self.head = b""
        self.body = b""
        self.body_len = 0
        self.chunked = False

    def header(self, name, default=None):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def has_header(self, name):
        return self.header(name) is not None

    def connection_tokens(self):
        toks = set()
        for v in self.header_all("Connection"):
            toks.update(t.strip().lower() for t in v.split(",") if t.strip())
        return toks

    def __repr__(self):
        return "<Response %d %r headers=%r body=%r>" % (
            self.status, self.reason, self.headers, self.body[:200])


def build_request(method="GET", path="/", headers=(), body=None, host="localhost",
                  version="HTTP/1.1"):
    """Raw request bytes.  <headers>: list of (name, value) or dict; str values are
    latin-1 encoded.  A Content-Length is added for <body> unless the caller framed
    it (Content-Length or Transfer-Encoding given)."""
    if isinstance(headers, dict):
        headers = list(headers.items())
    lines = [("%s %s %s" % (method, path, version)).encode("latin-1")]
    if host is not None:
        lines.append(b"Host: " + host.encode("latin-1"))
    names = set()
    for k, v in headers:
        kb = k if isinstance(k, bytes) else k.encode("latin-1")
        vb = v if isinstance(v, bytes) else str(v).encode("latin-1")
        names.add(kb.lower())
        lines.append(kb + b": " + vb)
    if body is not None and b"content-length" not in names and b"transfer-encoding" not in names:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def chunked(*pieces):
    """A chunked body made of <pieces> (bytes), terminated."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
    return out + b"0\r\n\r\n"


class Client:
    """One client connection to 127.0.0.1:<port>."""

    def __init__(self, port, timeout=10.0):
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((LOCALHOST, port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.bytes_received = 0
        self._scratch = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def send(self, data):
        """Sends all of <data>; False if the peer closed or reset meanwhile."""
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self, deadline, size=65536):
        """Reads more into buf; False at EOF.  Raises TimeoutError past <deadline>."""
        data = self._recv_direct(deadline, size)
        if data is None:
            return False
        self.buf += data
        return True

    def _recv_direct(self, deadline, size):
        """Up to <size> new bytes as a memoryview into a reused scratch buffer
        (valid until the next read; recv(n) would allocate n bytes per call),
        or None at EOF.  Raises TimeoutError past <deadline>."""
        if self.eof:
            return None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from 127.0.0.1:%d (have %r)" % (self.port, bytes(self.buf[:200])))
        if self._scratch is None or len(self._scratch) < size:
            self._scratch = bytearray(max(size, 65536))
        self.sock.settimeout(remaining)
        try:
            n = self.sock.recv_into(self._scratch, size)
        except socket.timeout:
            raise TimeoutError("no data from 127.0.0.1:%d (have %r)" % (self.port, bytes(self.buf[:200])))
        except ConnectionResetError:
            self.reset = True
            n = 0
        if not n:
            self.eof = True
            return None
        self.bytes_received += n
        return memoryview(self._scratch)[:n]

    def _take(self, n):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_exact(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline, max(65536, min(n - len(self.buf), 1 << 20))):
                raise ProtocolError("EOF after %d of %d bytes" % (len(self.buf), n))
        return self._take(n)

    def read_line(self, deadline, limit=65536):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                return self._take(i + 1)
            if len(self.buf) > limit:
                raise ProtocolError("line too long")
            if not self._fill(deadline):
                raise ProtocolError("EOF in line (have %r)" % bytes(self.buf[:200]))

    def read_head(self, timeout=None):
        """The raw response head up to and including the empty line."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                return self._take(i + 4)
            if len(self.buf) >= 5 and not self.buf.startswith(b"HTTP/"):
                raise ProtocolError("not an HTTP response: %r" % bytes(self.buf[:200]))
            if not self._fill(deadline):
                raise ProtocolError("EOF before end of head (have %r)" % bytes(self.buf[:300]))

    def read_response(self, method="GET", timeout=None, interim=False, body_sink=None):
        """Reads one response.  1xx responses other than 101 are skipped unless
        <interim>.  Body by Content-Length, chunked, or until close; none for HEAD,
        1xx, 204, 304.  With <body_sink> (a callable taking a bytes-like object
        valid only during the call) the body is streamed to it and not kept;
        body_len counts it either way."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            resp = self._parse_head(self.read_head(deadline - time.monotonic()))
            if interim or not (100 <= resp.status < 200) or resp.status == 101:
                break
        if method == "HEAD" or 100 <= resp.status < 200 or resp.status in (204, 304):
            return resp
        parts = []
        sink = body_sink or (lambda d: parts.append(bytes(d)))
        te = ",".join(resp.header_all("Transfer-Encoding")).lower()
        cl = resp.header("Content-Length")
        if te:
            if te.split(",")[-1].strip() != "chunked":
                raise ProtocolError("response with Transfer-Encoding %r" % te)
            resp.chunked = True
            resp.body_len = self._read_chunked(sink, deadline)
        elif cl is not None:
            if not cl.strip().isdigit():
                raise ProtocolError("bad response Content-Length %r" % cl)
            resp.body_len = self._read_length(int(cl), sink, deadline)
        else:
            resp.body_len = self._read_to_close(sink, deadline)
        if body_sink is None:
            resp.body = b"".join(parts)
        return resp

    def _parse_head(self, head):
        resp = Response()
        resp.head = head
        lines = head[:-4].split(b"\r\n")
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise ProtocolError("bad status line %r" % lines[0])
        resp.version = m.group(1).decode()
        resp.status = int(m.group(2))
        resp.reason = (m.group(3) or b"").decode("latin-1")
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            # As strict with portier's output as portier is with its input (RFC 9110 5.5):
            # a token name, and no control byte but HTAB in a value.
            if not sep or not re.match(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", name) or \
                    re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", value):
                raise ProtocolError("bad header line %r" % line)
            resp.headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        return resp

    def _read_length(self, n, sink, deadline):
        left = n
        if self.buf:
            take = min(left, len(self.buf))
            sink(self._take(take))
            left -= take
        while left:
            data = self._recv_direct(deadline, min(left, 1 << 20))
            if data is None:
                raise ProtocolError("EOF with %d of %d body bytes missing" % (left, n))
            sink(data)
            left -= len(data)
        return n

    def _read_chunked(self, sink, deadline):
        total = 0
        while True:
            line = self.read_line(deadline).rstrip(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                break
            total += self._read_length(size, sink, deadline)
            if self.read_exact(2, deadline) != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
        while self.read_line(deadline) not in (b"\r\n", b"\n"):
            pass  # trailers
        return total

    def _read_to_close(self, sink, deadline):
        total = len(self.buf)
        if self.buf:
            sink(self._take(len(self.buf)))
        while True:
            data = self._recv_direct(deadline, 1 << 20)
            if data is None:
                return total
            total += len(data)
            sink(data)

    def request(self, method="GET", path="/", headers=(), body=None, host="localhost",
                version="HTTP/1.1", timeout=None, body_sink=None):
        """Sends one request and reads its response."""
        self.send(build_request(method, path, headers, body, host, version))
        return self.read_response(method, timeout, body_sink=body_sink)

    def wait_closed(self, timeout=3.0):
        """True if the peer closes (EOF or reset) within <timeout>; data arriving
        meanwhile is kept in self.buf."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
            return True
        except TimeoutError:
            return False

    def is_open(self):
        """True if the peer has not closed the connection (non-blocking probe)."""
        if self.eof:
            return False
        self.sock.setblocking(False)
        try:
            data = self.sock.recv(65536, socket.MSG_PEEK)
            return bool(data)
        except BlockingIOError:
            return True
        except ConnectionResetError:
            return False
        finally:
            self.sock.setblocking(True)


def http_request(port, method="GET", path="/", timeout=10.0, **kw):
    """One request on a fresh connection, closed afterwards."""
    with Client(port, timeout) as c:
        return c.request(method, path, timeout=timeout, **kw)


def parse_echo(body):
    """Splits a pt-backend /echo body into (request line, [(name, value)], body)."""
    head, sep, rest = body.partition(b"\r\n\r\n")
    if not sep:
        raise ProtocolError("echo body without a head: %r" % body[:200])
    lines = head.split(b"\r\n")
    hdrs = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        hdrs.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    return lines[0].decode("latin-1"), hdrs, rest


def headers_named(hdrs, name):
    n = name.lower()
    return [v for k, v in hdrs if k.lower() == n]


def pattern_bytes(offset, n):
    """pt-backend's /bytes pattern: byte i is 'a' + i % 26."""
    start = offset % 26
    reps = (start + n) // 26 + 1
    return (bytes(range(97, 97 + 26)) * reps)[start:start + n]


class PatternChecker:
    """A body sink that checks the /bytes pattern and counts without keeping data."""

    def __init__(self, block=1 << 20):
        self.offset = 0
        self.bad_at = None
        self._ref = bytes(range(97, 97 + 26)) * ((block + 2 * 26) // 26 + 1)
        self._block = block

    def __call__(self, data):
        # startswith() takes any buffer and is a memcmp: no copy of <data>
        mv = memoryview(data)
        i = 0
        while i < len(mv):
            n = min(len(mv) - i, self._block)
            if self.bad_at is None and not self._ref.startswith(mv[i:i + n], self.offset % 26):
                self.bad_at = self.offset
            self.offset += n
            i += n
