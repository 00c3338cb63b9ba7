"""
Configuration checks that must hold at `portier -t` as at start, each at its directive's
file:line (issue 11, points 6-8):

- numbers past 32 bits are taken as written, not as libconfig 1.5 wraps them:
  `worker_processes = 4294967298;` started 2 workers, `keepalive_requests = 4294967297;`
  closed every connection after one request; both are refused, quoting the value written;
- a pid file in a directory that does not exist passed -t and then failed the start;
- the same listen address twice in one server was accepted (nginx: "a duplicate listen");
- many prefix locations load (once quadratic) and each request finds its own.
"""

import os
import random

import harness
from harness import LOCALHOST, free_port


def line_of(text, needle):
    """1-based number of the first line of <text> holding <needle>."""
    return next(i for i, l in enumerate(text.splitlines(), 1) if needle in l)


class ConfLimits(harness.TestCase):

    def config(self, main="", http="", port=None):
        """A portier (not started) whose file is <main> and an http block holding <http>
        and one server on <port> answering 200 on /."""
        p = self.start_portier(start=False)
        port = port or free_port()
        text = ('daemon = false;\nerror_log = "%s info";\n%s'
                'http = {\n  access_log = "off";\n%s'
                '  server = ( { listen = [ "%s:%d" ];\n'
                '    location = ( { path = "/"; return = "200 ok"; } ); } );\n};\n'
                % (p.error_log, main, http, LOCALHOST, port))
        if "pid =" not in main:
            text = 'pid = "%s";\n' % p.pid_path + text
        p.write_config(text=text)
        return p

    def refused(self, p, needle, message):
        """Asserts that -t and a start both refuse <p>'s file at the line holding <needle>,
        saying <message>."""
        want = "%s:%d: %s" % (p.conf_path, line_of(p.text, needle), message)
        res = p.run("-t", "-c", p.conf_path)
        self.assertNotEqual(res.returncode, 0, res.stdout)
        self.assertIn(want, res.stderr.decode())
        res = p.run("-c", p.conf_path, timeout=10)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn(want, res.stderr.decode())
        self.assertFalse(os.path.exists(p.pid_path), "a refused start wrote its pid file")

    def test_worker_processes_past_32_bits_is_refused_as_written(self):
        p = self.config(main="worker_processes = 4294967298;\n")
        self.refused(p, "worker_processes", 'invalid worker_processes "4294967298"')

    def test_keepalive_requests_past_32_bits_is_refused_as_written(self):
        p = self.config(http="  keepalive_requests = 4294967297;\n")
        self.refused(p, "keepalive_requests",
                     '"keepalive_requests" must be between 0 and 2147483647, not 4294967297')

    def test_number_past_64_bits_is_refused_as_written(self):
        p = self.config(http="  keepalive_requests = 99999999999999999999;\n")
        self.refused(p, "keepalive_requests",
                     'invalid number "99999999999999999999" for "keepalive_requests"')

    def test_size_past_64_bits_in_a_string_is_refused(self):
        p = self.config(http='  client_max_body_size = "99999999999999999999k";\n')
        self.refused(p, "client_max_body_size",
                     'invalid size "99999999999999999999k" for "client_max_body_size"')

    def test_keepalive_requests_written_in_range_keeps_the_connection(self):
        """The value beside a comment holding a wrapped-looking number is the one written:
        3 requests on one connection, then the server closes it."""
        p = self.config(http="  keepalive_requests = 3; # not 4294967297\n")
        p.ports = [int(p.text.split('"%s:' % LOCALHOST)[1].split('"')[0])]
        p.start()
        c = p.client()
        for i in range(3):
            c.send(harness.build_request("GET", "/"))
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("connection") == "close", i == 2)
        self.assertClosed(c)
        c.close()

    def test_pid_in_missing_directory_is_refused_at_its_line(self):
        p = self.start_portier(start=False)
        missing = os.path.join(p.dir, "no-such-dir", "portier.pid")
        p = self.config(main='pid = "%s";\n' % missing)
        self.refused(p, "pid =",
                     'cannot open pid file "%s": No such file or directory (the directory '
                     '"%s" does not exist)' % (missing, os.path.dirname(missing)))

    def test_same_listen_twice_in_a_server_is_refused(self):
        port = free_port()
        p = self.config(port=port)
        text = p.text.replace('listen = [ "%s:%d" ]' % (LOCALHOST, port),
                              'listen = [ "%s:%d", "%s:%d default_server" ]'
                              % (LOCALHOST, port, LOCALHOST, port))
        p.write_config(text=text)
        self.refused(p, "listen", "a duplicate listen %s:%d" % (LOCALHOST, port))

    def test_same_listen_in_two_servers_is_no_duplicate(self):
        port = free_port()
        p = self.config(port=port)
        text = p.text.replace(
            "} );\n};", '},\n    { listen = [ "%s:%d" ]; server_name = [ "b" ];\n'
            '      location = ( { path = "/"; return = "200 b"; } ); } );\n};' % (LOCALHOST, port))
        p.write_config(text=text)
        res = p.run("-t", "-c", p.conf_path)
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_many_prefix_locations_each_find_their_own(self):
        """5,000 nested prefix locations written in a scrambled order: each path gets the
        longest prefix's answer (the table is built once, in the master)."""
        paths = ["/p%d" % i for i in range(1000)]
        paths += ["/p%d/q%d" % (i, j) for i in range(1000) for j in range(4)]
        order = list(paths)
        random.Random(11).shuffle(order)
        locs = ",\n".join('{ path = "%s"; return = "200 %s"; }' % (x, x) for x in order)
        port = free_port()
        p = self.config(port=port)
        p.write_config(text=p.text.replace('{ path = "/"; return = "200 ok"; }',
                                           '{ path = "/"; return = "200 ok"; },\n' + locs))
        p.ports = [port]
        p.start()
        c = p.client()
        for path, want in (("/p7/q3/x", "/p7/q3"), ("/p7/q4", "/p7"), ("/p999/q0", "/p999/q0"),
                           ("/p1000", "/p100"), ("/x", "ok"), ("/p12/q1", "/p12/q1")):
            c.send(harness.build_request("GET", path))
            r = c.read_response()
            self.assertEqual((r.status, r.body.decode()), (200, want), path)
        c.close()


if __name__ == "__main__":
    harness.main()
