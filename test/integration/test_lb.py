"""
Balancing inside upstream groups, with the state that decides a choice in shared
memory: two workers behave as one balancer.  least_conn counts the connections of
every worker, hash $arg_user consistent sends a user to one backend whoever serves
the client, and weighted round robin is one sequence across the workers.
"""

import collections

import harness
from harness import build_request, location, server, upstream


class LoadBalancing(harness.TestCase):

    def start_backends(self, n=3):
        return [self.start_backend("b%d" % i) for i in range(1, n + 1)]

    def start_lb(self, addrs, workers=2, **directives):
        port = harness.free_port()
        return self.start_portier({
            "upstream": {"app": upstream(*addrs, **directives)},
            "server": [server(port, [location("= /ping", ret="200 pong"),
                                     location("/", proxy_pass="http://app")])],
        }, main={"worker_processes": workers}, workers=workers)

    def clients_by_worker(self, p, want_first, want_second, tries=200):
        """Opens connections until one worker holds <want_first> of them and the
        other <want_second>: returns the two lists."""
        held = collections.defaultdict(list)
        for _ in range(tries):
            c = p.client()
            self.addCleanup(c.close)
            # A request the server answers itself: the connection is accepted by
            # then, and the upstream sees nothing.
            self.assertEqual(c.request("GET", "/ping").status, 200)
            w = p.worker_for(c)
            if len(held[w]) < max(want_first, want_second):
                held[w].append(c)
            else:
                # Not needed.  Closing it keeps its worker busy a moment, which lets
                # the next connection go to the other one.
                c.close()
            for first, second in ((a, b) for a in held for b in held if a != b):
                if len(held[first]) >= want_first and len(held[second]) >= want_second:
                    return held[first][:want_first], held[second][:want_second]
        self.fail("connections did not reach both workers: %r" %
                  {w: len(cs) for w, cs in held.items()})

    def test_least_conn_sends_new_requests_away_from_backends_busy_through_the_other_worker(self):
        backends = self.start_backends()
        p = self.start_lb([b.addr for b in backends], least_conn=True)
        busy, (free,) = self.clients_by_worker(p, 2, 1)

        # Two slow requests through one worker hold a connection to two backends...
        for c in busy:
            self.assertTrue(c.send(build_request("GET", "/slow?ms=3000")))
        harness.wait_until(lambda: sum(len(harness.established_to(b.port)) for b in backends) >= 2,
                           5.0, 0.02, "the slow requests to reach the backends")
        # ...so the other worker, which holds none, sends every request to the third:
        # by its own counts all three would be equal and it would rotate.
        fast = [free.request("GET", "/").header("X-Backend") for _ in range(6)]
        slow = [c.read_response().header("X-Backend") for c in busy]
        self.assertEqual(len(set(slow)), 2, slow)
        idle = ({b.name for b in backends} - set(slow)).pop()
        self.assertEqual(fast, [idle] * 6)

    def test_hash_consistent_sends_a_user_to_one_backend_from_every_worker(self):
        backends = self.start_backends()
        p = self.start_lb([b.addr for b in backends], hash="$arg_user consistent")
        (one,), (other,) = self.clients_by_worker(p, 1, 1)
        served_by = collections.defaultdict(set)
        for rnd in range(4):
            for user in range(12):
                # Each user alternately through either worker.
                c = (one, other)[(rnd + user) % 2]
                r = c.request("GET", "/?user=u%d&n=%d" % (user, rnd))
                self.assertEqual(r.status, 200, r)
                served_by[user].add(r.header("X-Backend"))
        self.assertEqual({u: len(b) for u, b in served_by.items()}, {u: 1 for u in range(12)})
        # Not all on one backend: the key did spread users.
        self.assertGreater(len(set.union(*served_by.values())), 1)

    def test_weights_3_to_1_split_40_requests_30_to_10(self):
        b1, b2 = self.start_backends(2)
        p = self.start_lb(["%s weight=3" % b1.addr, b2.addr], workers=1)
        got = collections.Counter()
        for i in range(40):
            with p.client() as c:
                got[c.request("GET", "/?n=%d" % i).header("X-Backend")] += 1
        self.assertEqual(got, {"b1": 30, "b2": 10})

    def test_weighted_round_robin_is_one_sequence_across_workers(self):
        b1, b2 = self.start_backends(2)
        p = self.start_lb(["%s weight=3" % b1.addr, b2.addr], workers=2)
        (one,), (other,) = self.clients_by_worker(p, 1, 1)
        got = [(one, other)[i % 2].request("GET", "/?n=%d" % i).header("X-Backend")
               for i in range(40)]
        # Requests alternating between the workers still follow the smooth sequence
        # b1 b1 b2 b1.  Workers stepping weights of their own would each run it from
        # the start: b1 b1 b1 b1 b2 b2 b1 b1.
        self.assertEqual(got, ["b1", "b1", "b2", "b1"] * 10)

    def test_ip_hash_sends_one_client_to_one_backend(self):
        backends = self.start_backends()
        p = self.start_lb([b.addr for b in backends], ip_hash=True)
        seen = set()
        for i in range(12):
            with p.client() as c:
                seen.add(c.request("GET", "/?n=%d" % i).header("X-Backend"))
        self.assertEqual(len(seen), 1, seen)

    def test_two_methods_in_one_group_are_refused_with_file_and_line(self):
        b1, b2 = self.start_backends(2)
        port = harness.free_port()
        p = self.start_portier({
            "upstream": {"app": upstream(b1.addr, b2.addr, least_conn=True, ip_hash=True)},
            "server": [server(port, [location("/", proxy_pass="http://app")])],
        }, start=False)
        line = next(i for i, l in enumerate(p.text.splitlines(), 1) if "app = {" in l)
        res = p.run("-t", "-c", p.conf_path)
        self.assertEqual(res.returncode, 1)
        self.assertRegex(res.stderr.decode("utf-8", "replace"),
                         r'portier\.conf:%d: upstream "app" sets more than one of least_conn, '
                         r'ip_hash, hash and random' % line)

    def test_bad_random_value_is_refused(self):
        b1, b2 = self.start_backends(2)
        port = harness.free_port()
        p = self.start_portier({
            "upstream": {"app": upstream(b1.addr, b2.addr, random="three")},
            "server": [server(port, [location("/", proxy_pass="http://app")])],
        }, start=False)
        res = p.run("-t", "-c", p.conf_path)
        self.assertEqual(res.returncode, 1)
        self.assertIn('invalid value "three" for "random"', res.stderr.decode("utf-8", "replace"))


if __name__ == "__main__":
    harness.main()
