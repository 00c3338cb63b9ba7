"""
Centralized logging: access_log and error_log to syslog as nginx sends them (UDP and
unix datagram sockets, PRI from facility and severity, tag, nohostname), compared with
Debian's nginx on the same listener; a dead syslog server costs a request nothing; the
error log in JSON; syslog parameters wrong at their line.
"""

import json
import os
import re
import socket
import tempfile
import shutil

import harness
from harness import location, server
from nginx import Nginx

HOST = socket.gethostname().lower()
# nginx's ngx_cached_syslog_time: "Mmm dd hh:mm:ss", the day padded with a space.
STAMP = r"[A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d"
COMBINED = (r'127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] '
            r'"GET %s HTTP/1\.1" 200 2 "-" "-"')

LOCAL3, LOCAL7 = 19, 23
ERROR, NOTICE, INFO = 3, 5, 6


def pri(facility, severity):
    return "<%d>" % (facility * 8 + severity)


class Listener:
    """A syslog server for a test: a datagram socket (UDP on 127.0.0.1, or unix in
    <directory>) keeping every message it receives."""

    def __init__(self, unix_dir=None):
        if unix_dir:
            self.path = os.path.join(unix_dir, "syslog.sock")
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(self.path)
            os.chmod(self.path, 0o666)  # workers run as nobody when the suite runs as root
            self.target = "unix:" + self.path
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((harness.LOCALHOST, 0))
            self.target = "%s:%d" % self.sock.getsockname()
        self.messages = []
        self.senders = {}  # message -> the address it came from

    def wait_for(self, pattern, timeout=5.0):
        """The first message received matching the regex <pattern>."""
        rx = re.compile(pattern)

        def found():
            return next((m for m in self.messages if rx.search(m)), None)
        self.sock.settimeout(0.1)
        harness.wait_until(lambda: found() or self._receive(), timeout, 0,
                           "a syslog message matching %r in %r" % (pattern, self.messages[-5:]))
        return found()

    def wait_count(self, pattern, n, timeout=5.0):
        """The messages matching <pattern>, once there are <n> of them."""
        rx = re.compile(pattern)

        def matching():
            return [m for m in self.messages if rx.search(m)]
        self.sock.settimeout(0.1)
        harness.wait_until(lambda: len(matching()) >= n or self._receive(), timeout, 0,
                           "%d syslog messages matching %r in %r" % (n, pattern, self.messages))
        return matching()

    def _receive(self):
        try:
            data, sender = self.sock.recvfrom(65536)
            self.messages.append(data.decode("utf-8", "replace"))
            self.senders[self.messages[-1]] = sender
        except socket.timeout:
            pass
        return False

    def close(self):
        self.sock.close()


class SyslogTargets(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="pt-it-syslog-")
        os.chmod(cls.dir, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.udp = Listener()
        cls.unix = Listener(cls.dir)
        cls.addClassCleanup(cls.udp.close)
        cls.addClassCleanup(cls.unix.close)
        dead_udp = "%s:%d" % (harness.LOCALHOST, harness.free_port())
        dead_unix = "unix:" + os.path.join(cls.dir, "nobody-listens.sock")
        cls.p = p = harness.Portier(start=False)
        cls.addClassCleanup(p.cleanup)
        cls.file_log = os.path.join(p.dir, "file.log")
        p.write_config({
            "log_format": {"short": "$request_method $uri $status"},
            "access_log": [
                "syslog:server=%s,facility=local3 combined" % cls.udp.target,
                "syslog:server=%s,nohostname,severity=notice,tag=t_1 short" % cls.unix.target,
            ],
            "server": [server(harness.free_port(), [
                location("/", ret="200 ok"),
                location("/file/", ret="200 ok", access_log=[
                    cls.file_log + " combined",
                    "syslog:server=%s,facility=local3 combined" % cls.udp.target]),
                location("/missing/", root=os.path.join(cls.dir, "none")),
                location("/dead/", ret="200 ok", access_log=[
                    "syslog:server=%s" % dead_udp, "syslog:server=%s" % dead_unix]),
            ])],
        }, main={"error_log": "syslog:server=%s,tag=pterr info" % cls.udp.target})
        p.start()

    def test_access_log_over_udp_is_pri_time_hostname_tag_and_the_line(self):
        self.assertEqual(self.p.get("/udp?a=1").status, 200)
        msg = self.udp.wait_for(r"GET /udp\?a=1 ")
        self.assertRegex(msg, "^%s%s %s portier: %s$" % (
            re.escape(pri(LOCAL3, INFO)), STAMP, re.escape(HOST), COMBINED % r"/udp\?a=1"))

    def test_syslog_message_is_the_log_format_line_without_newline(self):
        self.assertEqual(self.p.get("/file/same").status, 200)
        msg = self.udp.wait_for(r"GET /file/same ")
        line = harness.wait_for_line(self.file_log, r"GET /file/same ")
        self.assertEqual(msg.split(" portier: ", 1)[1], line)

    def test_access_log_over_unix_socket_with_nohostname_severity_and_tag(self):
        self.assertEqual(self.p.get("/unix").status, 200)
        msg = self.unix.wait_for(r"GET /unix ")
        self.assertRegex(msg, r"^%s%s t_1: GET /unix 200$" % (re.escape(pri(LOCAL7, NOTICE)),
                                                            STAMP))

    def test_error_log_severity_is_the_level_of_the_line(self):
        self.assertEqual(self.p.get("/missing/x").status, 404)
        msg = self.udp.wait_for(r"pterr: .*/missing/x")
        self.assertRegex(msg, (
            r'^%s%s %s pterr: \d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] \d+ worker: open\(\) '
            r'"%s/none/missing/x" failed \(2: No such file or directory\), client: 127\.0\.0\.1, '
            r'server: , request: "GET /missing/x HTTP/1\.1", host: "[^"]+"$') % (
                re.escape(pri(LOCAL7, ERROR)), STAMP, re.escape(HOST), re.escape(self.dir)))
        started = self.udp.wait_for(r"\[notice\] \d+ master: .*started")
        self.assertTrue(started.startswith(pri(LOCAL7, NOTICE)), started)

    def test_each_process_sends_from_its_own_socket(self):
        self.assertEqual(self.p.get("/missing/own-socket").status, 404)
        worker = self.udp.wait_for(r"worker: .*/missing/own-socket")
        master = self.udp.wait_for(r"master: .*started")
        self.assertNotEqual(self.udp.senders[worker], self.udp.senders[master])

    def test_dead_syslog_servers_do_not_stall_requests(self):
        worker = self.p.worker()
        for i in range(200):
            # Each request has 2 s to complete: a worker waiting on its syslog socket fails it.
            self.assertEqual(self.p.get("/dead/%d" % i, timeout=2).status, 200)
        self.assertEqual(self.p.worker_pids(), [worker])
        self.assertEqual(self.p.get("/after-dead", timeout=2).status, 200)
        self.udp.wait_for(r'sending access log to syslog "[^"]+" failed: ')


class SameAsNginx(harness.TestCase):
    """nginx and portier configured alike send their lines to one listener: the same
    datagram but for the time (and, in the error line, nginx's "pid#tid: *conn" where
    portier writes "pid worker:")."""

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="pt-it-syslog-")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.udp = Listener()
        self.addCleanup(self.udp.close)
        self.unix = Listener(self.dir)
        self.addCleanup(self.unix.close)

    def both_send(self, path):
        """Sends GET <path> to nginx, then to portier; returns the access lines each sent
        to UDP and to the unix socket, and each one's error line, times masked."""
        target = "syslog:server=%s,tag=%s"
        logs = [(self.udp, ",facility=local3,severity=warn"), (self.unix, ",nohostname")]
        port = harness.free_port()
        missing = os.path.join(self.dir, "none")
        # In the server block: the harness's nginx.conf has "access_log off" in http.
        ngx = Nginx(port, (
            "log_format short '$request_method $uri $status';\n"
            "error_log syslog:server=%s,tag=ngx_err error;\n"
            "server { listen 127.0.0.1:%d; root %s;\n%s}") % (
                self.udp.target, port, missing,
                "".join("access_log %s%s short;\n" % (target % (l.target, "ngx"), o)
                        for l, o in logs)))
        try:
            self.assertEqual(harness.http_request(port, "GET", path).status, 404)
        finally:
            ngx.stop()
        p = self.start_portier({
            "log_format": {"short": "$request_method $uri $status"},
            "access_log": ["%s%s short" % (target % (l.target, "ngx"), o) for l, o in logs],
            "server": [server(harness.free_port(), [location("/", root=missing)])],
        }, main={"error_log": "syslog:server=%s,tag=pt_err error" % self.udp.target})
        self.assertEqual(p.get(path).status, 404)
        out = []
        for l in (self.udp, self.unix):
            lines = l.wait_count(r"ngx: GET %s 404$" % re.escape(path), 2)
            out.append([re.sub(STAMP, "TIME", m) for m in lines])
        errors = [self.udp.wait_for(tag + r": .*open\(\)") for tag in ("ngx_err", "pt_err")]
        return out, errors

    def test_access_and_error_lines_match_nginx(self):
        (udp, unix), (ngx_error, pt_error) = self.both_send("/a/b.txt")
        self.assertEqual(len(udp), 2, udp)
        self.assertEqual(udp[0], udp[1])
        self.assertRegex(udp[0], r"^%sTIME %s ngx: GET /a/b\.txt 404$" % (
            re.escape(pri(LOCAL3, 4)), re.escape(HOST)))
        self.assertEqual(len(unix), 2, unix)
        self.assertEqual(unix[0], unix[1])
        self.assertTrue(unix[0].startswith(pri(LOCAL7, INFO) + "TIME ngx: GET"), unix[0])
        # The header (facility, severity from the level, hostname) and the words of the
        # message match; what comes between is each server's own error line prefix.
        head = r"^(<\d+>)%s (\S+) \w+: \d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] [^:]+: (?:\*\d+ )?"
        n = re.match(head % STAMP + "(.*)$", ngx_error)
        q = re.match(head % STAMP + "(.*)$", pt_error)
        self.assertIsNotNone(n, ngx_error)
        self.assertIsNotNone(q, pt_error)
        self.assertEqual(q.groups(), n.groups())
        self.assertEqual(q.group(1), pri(LOCAL7, ERROR))


class JsonErrorLog(harness.TestCase):

    def test_each_line_is_a_json_object_with_the_request_fields(self):
        p = harness.Portier(start=False)
        self.addCleanup(p.cleanup)
        d = os.path.join(p.dir, "www")
        p.write_config({"server": [server(harness.free_port(), [location("/", root=d)],
                                          names=["json.test"])]},
                       main={"error_log": "%s info json" % p.error_log})
        p.start()
        self.assertEqual(p.get("/no-such", host="json.test").status, 404)
        harness.wait_for_line(p.error_log, r"no-such")
        lines = [json.loads(l) for l in harness.read_file(p.error_log).splitlines()]
        err = next(l for l in lines if l["level"] == "error")
        self.assertEqual(err, {
            "time": err["time"], "level": "error", "pid": p.worker(), "process": "worker",
            "message": 'open() "%s/no-such" failed (2: No such file or directory)' % d,
            "client": "127.0.0.1", "server": "json.test",
            "request": "GET /no-such HTTP/1.1", "host": "json.test"})
        self.assertRegex(err["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
        started = next(l for l in lines if "started" in l["message"])
        self.assertEqual(started["process"], "master")
        self.assertEqual(started["pid"], p.pid)
        self.assertNotIn("client", started)

    def test_json_lines_go_to_syslog_too(self):
        udp = Listener()
        self.addCleanup(udp.close)
        p = self.start_portier({"server": [server(harness.free_port(), [location("/", ret="200 ok")])]},
                               main={"error_log": "syslog:server=%s,nohostname notice json"
                                     % udp.target})
        msg = udp.wait_for(r"started")
        self.assertTrue(msg.startswith(pri(LOCAL7, NOTICE)), msg)
        obj = json.loads(msg.split(" portier: ", 1)[1])
        self.assertEqual((obj["level"], obj["pid"], obj["process"]), ("notice", p.pid, "master"))


class ConfigErrors(harness.TestCase):

    def check(self, main=None, http=None):
        """`portier -t` of a config with <main> and <http> added: its stderr; it must fail."""
        p = harness.Portier(start=False)
        self.addCleanup(p.cleanup)
        h = {"server": [server(harness.free_port(), [location("/", ret="200 ok")])]}
        h.update(http or {})
        p.write_config(h, main)
        res = p.run("-t", "-c", p.conf_path)
        self.assertEqual(res.returncode, 1, res.stderr)
        line = next(i for i, l in enumerate(p.text.splitlines(), 1) if "syslog:" in l)
        return res.stderr.decode(), "portier.conf:%d: " % line

    def assertRejected(self, target, message, directive="error_log"):
        where = "main" if directive == "error_log" else "http"
        err, at = self.check(**{where: {directive: target}})
        self.assertIn(at + message, err)

    def test_unknown_facility(self):
        self.assertRejected("syslog:server=127.0.0.1,facility=local9",
                            'unknown syslog facility "local9"')

    def test_unknown_severity(self):
        self.assertRejected("syslog:server=127.0.0.1,severity=loud combined",
                            'unknown syslog severity "loud"', "access_log")

    def test_unknown_parameter(self):
        self.assertRejected("syslog:server=127.0.0.1,port=514", 'unknown syslog parameter "port=514"')

    def test_missing_server(self):
        self.assertRejected("syslog:facility=local0 combined", "no syslog server specified",
                            "access_log")

    def test_bad_tag(self):
        self.assertRejected("syslog:server=127.0.0.1,tag=a-b",
                            'syslog "tag" only allows alphanumeric characters and underscore')

    def test_bad_port(self):
        self.assertRejected("syslog:server=127.0.0.1:70000",
                            'invalid port "70000" in syslog server "127.0.0.1:70000"')

    def test_syslog_access_log_cannot_be_buffered(self):
        self.assertRejected("syslog:server=127.0.0.1 combined buffer=64k",
                            "logs to syslog cannot be buffered", "access_log")

    def test_unknown_error_log_parameter(self):
        err, at = self.check(main={"error_log": "syslog:server=127.0.0.1 warn jsn"})
        self.assertIn(at + 'unknown error_log parameter "jsn"', err)


if __name__ == "__main__":
    harness.main()
