"""
The demo configuration scripts/run starts (config/portier.conf), filled in the way
scripts/run fills it: it must load, proxy to the backend, answer /healthz, refuse an
attack with the CRS on /, and show the upstream's state at /status with its health checks.
"""

import json
import os

import harness


class Demo(harness.TestCase):

    def test_the_shipped_demo_configuration_serves(self):
        b = self.start_backend("demo")
        port = harness.free_port()
        p = harness.Portier(text="", start=False)
        self.addCleanup(p.cleanup)
        self._portiers.append(p)
        with open(os.path.join(harness.SOURCE_DIR, "config", "portier.conf")) as f:
            text = (f.read().replace("@BACKEND@", b.addr).replace("@LISTEN@", str(port))
                    .replace("@PREFIX@", p.dir))
        p.write_config(text=text)
        with open(os.path.join(harness.SOURCE_DIR, "config", "modsecurity.conf")) as f:
            rules = f.read().replace("@PREFIX@", p.dir)
        with open(os.path.join(p.dir, "modsecurity.conf"), "w") as f:
            f.write(rules)
        p.error_log = os.path.join(p.dir, "error.log")
        p.access_log = os.path.join(p.dir, "access.log")
        p.start()
        r = p.get("/")
        self.assertEqual((r.status, r.header("X-Backend"), r.header("X-Proxy")),
                         (200, "demo", "portier"))
        self.assertEqual(p.get("/healthz").body, b"ok\n")
        # The CRS on /: an attack is refused with the request id (test_waf checks the rest).
        r = p.get("/?q=%3Cscript%3Ealert(1)%3C/script%3E")
        self.assertPortierError(r, 403)
        self.assertIn(b"request id", r.body)
        servers = json.loads(p.get("/status").body)["upstreams"]["app"]["servers"]
        self.assertEqual([s["server"] for s in servers], [b.addr])
        harness.wait_until(
            lambda: json.loads(p.get("/status").body)["upstreams"]["app"]["servers"][0]
            ["health_check"]["last_result"] == "200 OK", 10.0, 0.1, "a first health check")


if __name__ == "__main__":
    harness.main()
