"""
Access logs (combined, custom formats with variables, escape=json, off) and the
worker's behaviour at its worker_connections limit.
"""

import json
import os
import time

import harness
from harness import location, server, upstream

COMBINED = (r'^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] '
            r'"GET /\?q=combined HTTP/1\.1" 200 14 "http://ref\.test/" "ua-test/1\.0"$')


class AccessLogs(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.b1 = cls.class_backend("b1")
        p = harness.Portier(start=False)
        cls.addClassCleanup(p.cleanup)
        cls._class_portiers = [p]
        cls.custom_log = os.path.join(p.dir, "custom.log")
        cls.json_log = os.path.join(p.dir, "json.log")
        cls.port = harness.free_port()
        p.write_config({
            "log_format": {
                "ids": "$request_id|$upstream_addr|$upstream_status|$request_time|$status|$request_uri",
                "js": 'escape=json {"ua":"$http_user_agent","uri":"$request_uri"}',
            },
            "upstream": {"app": upstream(cls.b1.addr, keepalive=8)},
            "server": [server(cls.port, [
                location("/", proxy_pass="http://app"),
                location("/custom/", proxy_pass="http://app/", access_log=cls.custom_log + " ids"),
                location("/json/", proxy_pass="http://app/", access_log=cls.json_log + " js"),
                location("/nolog/", proxy_pass="http://app/", access_log="off"),
            ])],
        })
        p.start()
        cls.p = p

    def test_default_combined_format(self):
        r = self.p.get("/?q=combined", headers=[("User-Agent", "ua-test/1.0"),
                                                 ("Referer", "http://ref.test/")])
        self.assertEqual(r.body, b"hello from b1\n")
        line = harness.wait_for_line(self.p.access_log, r"q=combined")
        self.assertRegex(line, COMBINED)

    def test_custom_format_variables(self):
        self.p.get("/custom/?n=1")
        self.p.get("/custom/?n=2")
        line1 = harness.wait_for_line(self.custom_log, r"\|/custom/\?n=1$")
        line2 = harness.wait_for_line(self.custom_log, r"\|/custom/\?n=2$")
        rid, addr, ustatus, rtime, status, uri = line1.split("|")
        self.assertRegex(rid, r"^[0-9a-f]{32}$")
        self.assertEqual(addr, self.b1.addr)
        self.assertEqual(ustatus, "200")
        self.assertRegex(rtime, r"^\d+\.\d{3}$")
        self.assertEqual(status, "200")
        self.assertNotEqual(line2.split("|")[0], rid, "$request_id repeated")

    def test_escape_json_escapes_quotes_and_control_bytes(self):
        # HTAB is the one control byte a header value may carry (RFC 9110 5.5)
        ua = 'q"b\\s\tt'
        r = self.p.get("/json/?j=1", headers=[("User-Agent", ua)])
        self.assertEqual(r.status, 200)
        line = harness.wait_for_line(self.json_log, r"j=1")
        self.assertNotIn("\t", line)
        self.assertEqual(json.loads(line), {"ua": ua, "uri": "/json/?j=1"})

    def test_access_log_off_writes_nothing(self):
        self.p.get("/nolog/?marker-nolog")
        self.p.get("/?fence-after-nolog")
        harness.wait_for_line(self.p.access_log, r"fence-after-nolog")
        logs = [self.p.access_log, self.custom_log, self.json_log]
        for path in logs:
            self.assertNotIn("marker-nolog", harness.read_file(path), path)


class ConnectionLimit(harness.TestCase):

    def test_worker_connections_limit_does_not_kill_worker(self):
        b = self.start_backend("b1")
        p = self.start_portier({
            "upstream": {"app": upstream(b.addr, keepalive=2)},
            "server": [server(harness.free_port(), [location("/", proxy_pass="http://app")])],
        }, main={"worker_connections": 8})
        worker = p.worker()
        idle = []
        try:
            for _ in range(20):
                idle.append(p.client(timeout=2))
            time.sleep(1.0)
            self.assertTrue(harness.pid_alive(worker), "worker died at the connection limit")
        finally:
            for c in idle:
                c.close()

        def served():
            try:
                return p.get("/", timeout=2).status == 200
            except (OSError, harness.ProtocolError, TimeoutError):
                return False
        harness.wait_until(served, 10, 0.2, "a request served after the idle connections closed")
        self.assertEqual(p.worker_pids(), [worker], "worker was replaced")


if __name__ == "__main__":
    harness.main()
