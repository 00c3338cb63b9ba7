"""
Passive health lives in shared memory: when one worker finds an upstream server
dead, every worker stops sending to it, and the state survives a HUP reload (the
zone is kept when its name and size are unchanged).
"""

import re
import threading

import harness
from harness import location, server, upstream


class SharedHealth(harness.TestCase):

    def connect_failures(self, p, dead):
        text = harness.read_file(p.error_log)
        return len(re.findall(r"connect\(\) to 127\.0\.0\.1:%d failed" % dead, text))

    def spread_requests(self, p, n):
        """At least <n> requests on fresh connections, from concurrent clients (an idle
        worker would take every new connection), until both workers took some."""
        served, failures, lock = set(), [], threading.Lock()

        def client(k):
            for i in range(200):
                with lock:
                    if (i >= n // 8 and len(served - {None}) >= 2) or failures:
                        return
                with p.client() as c:
                    r = c.request("GET", "/?n=%d-%d" % (k, i))
                    with lock:
                        if r.status != 200 or r.header("X-Backend") != "alive":
                            failures.append(r)
                        served.add(p.worker_for(c))

        # The first two, one after the other: the round robin's first turn of the dead
        # server is taken before clients race (two workers choosing it in the same
        # instant would both try it).
        for i in range(2):
            self.assertEqual(p.get("/?first=%d" % i).header("X-Backend"), "alive")
        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])
        return served

    def test_dead_server_marked_down_once_for_all_workers_and_kept_across_reload(self):
        alive = self.start_backend("alive")
        dead = harness.dead_port()
        port = harness.free_port()
        p = self.start_portier({
            "upstream": {"app": upstream(alive.addr, "127.0.0.1:%d max_fails=1 fail_timeout=60s" % dead,
                                         keepalive=4)},
            "server": [server(port, [location("/", proxy_pass="http://app")])],
        }, main={"worker_processes": 2}, workers=2)

        workers = self.spread_requests(p, 40)
        # Both workers served, yet only the first attempt ever reached the dead server:
        # the others saw it marked down in shared memory.  (Each worker alone would try
        # it at least once.)
        self.assertGreaterEqual(len(workers - {None}), 2, "requests did not reach both workers")
        self.assertEqual(self.connect_failures(p, dead), 1)
        self.assertIn("temporarily disabled", harness.read_file(p.error_log))

        p.reload()
        self.spread_requests(p, 20)
        self.assertEqual(self.connect_failures(p, dead), 1,
                         "the reload forgot that the server is down")


if __name__ == "__main__":
    harness.main()
