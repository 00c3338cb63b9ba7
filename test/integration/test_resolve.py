"""
`server "NAME:PORT resolve"`: the helper process re-resolves NAME every
resolve_interval and the workers connect to the new address without a reload.

The name comes from a hosts file of the test's own, through nss_wrapper (Debian's
libnss-wrapper, preloaded into portier), so the test changes what the name means
without touching the machine's /etc/hosts.  The second address is 127.0.0.2: still
the loopback interface, nothing leaves the machine.
"""

import json
import os
import time

import harness
from harness import location, server, upstream

def find_nss_wrapper():
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"):
        path = os.path.join(d, "libnss_wrapper.so")
        if os.path.exists(path):
            return path
    raise AssertionError("libnss_wrapper.so not found: install libnss-wrapper (scripts/deps does)")


class Resolve(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.wrapper = find_nss_wrapper()
        self.b1 = self.start_backend("b1")
        # b2 on the same port of another loopback address: only the name's address
        # tells them apart.
        self.b2_out = os.path.join(self.b1.dir, "b2.out")
        self.b2 = harness.spawn([harness.BACKEND_BIN, "--listen", "127.0.0.2:%d" % self.b1.port,
                                 "--name", "b2"], self.b2_out, self.b2_out)
        self.addCleanup(harness.terminate, self.b2)
        harness.wait_for_line(self.b2_out, r"READY \d+")

    def write_hosts(self, path, text):
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.chmod(path + ".tmp", 0o644)
        os.rename(path + ".tmp", path)

    def start(self):
        port = harness.free_port()
        p = harness.Portier({
            "upstream": {"app": upstream("backend.test:%d resolve" % self.b1.port,
                                         resolve_interval="200ms")},
            "server": [server(port, [location("= /status", status=True),
                                     location("/", proxy_pass="http://app")])],
        }, main={"worker_processes": 2}, start=False)
        self.addCleanup(p.cleanup)
        self._portiers.append(p)
        self.hosts = os.path.join(p.dir, "hosts")
        self.write_hosts(self.hosts, "127.0.0.1 backend.test\n")
        p.env = dict(os.environ, LD_PRELOAD=self.wrapper, NSS_WRAPPER_HOSTS=self.hosts,
                     NSS_WRAPPER_PASSWD="/etc/passwd", NSS_WRAPPER_GROUP="/etc/group",
                     NSS_WRAPPER_DISABLE_DEEPBIND="1",
                     ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
                     ":verify_asan_link_order=0")
        p.start(workers=2)
        return p

    def address(self, p):
        doc = json.loads(p.get("/status").body)
        return doc["upstreams"]["app"]["servers"][0]

    def test_a_new_address_is_followed_without_a_reload(self):
        p = self.start()
        self.assertEqual({p.get("/").header("X-Backend") for _ in range(4)}, {"b1"})
        workers = sorted(p.worker_pids())
        start = harness.file_size(p.error_log)
        self.write_hosts(self.hosts, "127.0.0.2 backend.test\n")
        harness.wait_until(lambda: p.get("/").header("X-Backend") == "b2", 10.0, 0.05,
                           "requests to follow the new address")
        self.assertEqual({p.get("/").header("X-Backend") for _ in range(8)}, {"b2"})
        line = harness.wait_for_line(p.error_log, r"now resolves to", start=start)
        self.assertIn("upstream app server backend.test:%d now resolves to 127.0.0.2:%d (was "
                      "127.0.0.1:%d)" % ((self.b1.port,) * 3), line)
        s = self.address(p)
        self.assertEqual((s["server"], s["address"]),
                         ("backend.test:%d" % self.b1.port, "127.0.0.2:%d" % self.b1.port))
        self.assertEqual(sorted(p.worker_pids()), workers, "no reload, no new workers")

    def test_a_failed_lookup_keeps_the_last_address(self):
        p = self.start()
        start = harness.file_size(p.error_log)
        self.write_hosts(self.hosts, "127.0.0.1 other.test\n")
        harness.wait_for_line(p.error_log, r"backend\.test.*keeping its last address",
                              start=start)
        time.sleep(0.3)
        self.assertEqual({p.get("/").header("X-Backend") for _ in range(4)}, {"b1"})


if __name__ == "__main__":
    harness.main()
