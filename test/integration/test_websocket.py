"""
WebSocket through portier: the Upgrade is passed, the tunnel carries frames both
ways, it exists only once the backend answered 101, and proxy_read_timeout closes
an idle tunnel.
"""

import base64
import hashlib
import os
import struct
import time

import harness
from harness import location, server, upstream

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10


def frame(opcode, payload, fin=True):
    """A client frame (masked, as RFC 6455 requires of clients)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(c, timeout=5.0):
    """(opcode, payload) of the next server frame; server frames must be unmasked."""
    deadline = time.monotonic() + timeout
    b0, b1 = c.read_exact(2, deadline)
    if b1 & 0x80:
        raise harness.ProtocolError("server frame is masked")
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", c.read_exact(2, deadline))[0]
    elif n == 127:
        n = struct.unpack("!Q", c.read_exact(8, deadline))[0]
    return b0 & 0x0F, c.read_exact(n, deadline)


def handshake(c, path="/ws"):
    key = base64.b64encode(os.urandom(16)).decode()
    r = c.request("GET", path, headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                        ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")])
    return r, key


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


class WebSocket(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.b1 = cls.class_backend("b1")
        cls.port = harness.free_port()
        cls.p = cls.class_portier({
            "upstream": {"app": upstream(cls.b1.addr, keepalive=8)},
            "server": [server(cls.port, [
                location("/", proxy_pass="http://app"),
                location("/idle/", proxy_pass="http://app/", proxy_read_timeout="1s"),
                location("= /here", ret="200 portier-here"),
            ])],
        })

    def open_ws(self, path="/ws"):
        c = self.p.client()
        self.addCleanup(c.close)
        r, key = handshake(c, path)
        self.assertEqual(r.status, 101, r)
        self.assertEqual(r.header("Upgrade", "").lower(), "websocket")
        self.assertIn("upgrade", r.connection_tokens())
        self.assertEqual(r.header("Sec-WebSocket-Accept"), accept_for(key))
        return c

    def test_text_frame_echoed(self):
        c = self.open_ws()
        c.send(frame(OP_TEXT, b"hello"))
        self.assertEqual(read_frame(c), (OP_TEXT, b"hello"))

    def test_binary_frames_echoed_both_directions(self):
        c = self.open_ws()
        small = bytes(range(256))
        big = os.urandom(70000)  # 64-bit length form
        c.send(frame(OP_BINARY, small) + frame(OP_BINARY, big))
        self.assertEqual(read_frame(c), (OP_BINARY, small))
        self.assertEqual(read_frame(c), (OP_BINARY, big))

    def test_ping_answered_with_pong(self):
        c = self.open_ws()
        c.send(frame(OP_PING, b"p1"))
        self.assertEqual(read_frame(c), (OP_PONG, b"p1"))

    def test_close_handshake_then_connection_closed(self):
        c = self.open_ws()
        c.send(frame(OP_CLOSE, struct.pack("!H", 1000)))
        op, payload = read_frame(c)
        self.assertEqual(op, OP_CLOSE)
        self.assertClosed(c, 5.0)

    def test_non_101_answer_does_not_become_tunnel(self):
        with self.p.client() as c:
            r, _ = handshake(c, "/")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"hello from b1\n")
            # Still HTTP on portier's side: this request is routed by portier, not
            # piped to the backend connection.
            r2 = c.request("GET", "/here")
            self.assertEqual(r2.status, 200)
            self.assertEqual(r2.body, b"portier-here")
            self.assertIsNone(r2.header("X-Backend"))

    def test_idle_tunnel_closed_after_proxy_read_timeout(self):
        c = self.open_ws("/idle/ws")
        c.send(frame(OP_TEXT, b"x"))
        self.assertEqual(read_frame(c), (OP_TEXT, b"x"))
        self.assertClosed(c, 6.0, "idle tunnel open 6s past a 1s proxy_read_timeout")

    def test_active_tunnel_outlives_idle_timeout(self):
        c = self.open_ws("/idle/ws")
        for i in range(6):  # 2.4 s of traffic, never 1 s idle
            c.send(frame(OP_TEXT, b"m%d" % i))
            self.assertEqual(read_frame(c), (OP_TEXT, b"m%d" % i))
            time.sleep(0.4)


if __name__ == "__main__":
    harness.main()
