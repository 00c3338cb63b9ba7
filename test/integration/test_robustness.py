"""
Regressions found in review: a `return` answers and ends the request (nothing reaches the
backend, keepalive goes on); a long pipeline does not grow the stack; a response head
larger than a buffer is written safely; a client that leaves while the upstream thinks
ends its request (499) instead of holding the upstream connection.
"""

import socket
import threading
import time

import harness
from harness import location, server, upstream


class Robustness(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.b1 = cls.class_backend("b1")
        cls.port = harness.free_port()
        cls.maint = harness.free_port()
        cls.p = cls.class_portier({
            "upstream": {"app": upstream(cls.b1.addr, keepalive=4)},
            "server": [
                server(cls.port, [
                    location("/ret", ret="200 ok"),
                    location("/big", ret="200 big", add_header=["X-Big $http_x_big always"]),
                    location("/", proxy_pass="http://app", proxy_read_timeout="30s"),
                ], keepalive_requests=100000),
                server(cls.maint, [location("/", proxy_pass="http://app")],
                       **{"return": "503 down for maintenance"}),
            ],
        })

    def test_server_return_with_text_does_not_reach_backend(self):
        before = self.b1.count()[0]
        r = harness.http_request(self.maint, "POST", "/echo", body=b"side effect")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.body, b"down for maintenance")
        self.assertEqual(self.b1.count()[0], before, "the request was forwarded after return")

    def test_return_with_text_keeps_the_connection_alive(self):
        with self.p.client() as c:
            c.send(b"GET /ret HTTP/1.1\r\nHost: a\r\n\r\n" * 5)
            for _ in range(5):
                r = c.read_response()
                self.assertEqual((r.status, r.body), (200, b"ok"))
            r = c.request("GET", "/ret")
            self.assertEqual(r.status, 200)

    def test_long_pipeline_is_answered_in_full(self):
        n = 20000
        with self.p.client(timeout=60) as c:
            # Sent from a thread while this one reads, as a real pipelining client does.
            t = threading.Thread(target=c.send, args=(b"GET /ret HTTP/1.1\r\nHost: a\r\n\r\n" * n,))
            t.start()
            self.addCleanup(t.join)
            for i in range(n):
                r = c.read_response()
                self.assertEqual(r.status, 200, "response %d" % i)
        self.assertEqual(self.p.get("/ret").status, 200)

    def test_response_head_larger_than_a_buffer_is_written_whole(self):
        big = "x" * 16240
        r = self.p.get("/big", headers=[("X-Big", big)])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Big"), big)

    def test_client_leaving_while_upstream_thinks_ends_the_request(self):
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", self.port))
            s.sendall(b"GET /hang HTTP/1.1\r\nHost: a\r\n\r\n")
            time.sleep(0.2)
            s.close()
        harness.wait_until(lambda: sum(" 499 " in l for l in self.p.access_lines()) >= 3, 5.0,
                           0.1, "three 499 lines in the access log")


if __name__ == "__main__":
    harness.main()
