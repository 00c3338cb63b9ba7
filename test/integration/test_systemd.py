"""
systemd integration: sd_notify messages on NOTIFY_SOCKET (READY=1 once workers
run, RELOADING=1 then READY=1 around a reload, STOPPING=1 on a stop), socket
activation (LISTEN_FDS: portier adopts fd 3 instead of binding), and the unit and
logrotate files shipped in config/.
"""

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time

import harness
from harness import location, server, upstream

_libc = ctypes.CDLL(None, use_errno=True)

# Runs in the child of the wrapper's fork: the passed socket becomes fd 3, then
# portier replaces this process, so LISTEN_PID (our pid) is portier's pid.
ACTIVATE = ("import os, sys\n"
            "fd = int(sys.argv[1])\n"
            "if fd != 3:\n"
            "    os.dup2(fd, 3)\n"
            "    os.close(fd)\n"
            "os.environ['LISTEN_FDS'] = '1'\n"
            "os.environ['LISTEN_PID'] = str(os.getpid())\n"
            "os.execv(sys.argv[2], sys.argv[2:])\n")


def _die_with_parent():
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG, as procs.spawn does


class NotifySocket:
    """A unix datagram socket standing for systemd's notify socket: at a path in
    <directory>, or abstract (NOTIFY_SOCKET="@name") when <abstract>."""

    def __init__(self, directory, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "pt-it-notify-%d-%d" % (os.getpid(), id(self))
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            self.env_value = os.path.join(directory, "notify.sock")
            self.sock.bind(self.env_value)
            os.chmod(self.env_value, 0o777)
        self.messages = []

    def close(self):
        self.sock.close()

    def wait_for(self, line, timeout=10.0):
        """Reads datagrams until one has the line <line>; returns its lines as a dict.
        Every datagram read is kept in self.messages (a list of dicts)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no %r notification within %.0fs (got %r)"
                                     % (line, timeout, self.messages))
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            msg = dict(l.split("=", 1) for l in data.decode("utf-8", "replace").split("\n") if "=" in l)
            self.messages.append(msg)
            k, v = line.split("=", 1)
            if msg.get(k) == v:
                return msg


class Systemd(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.b1 = cls.class_backend("b1")

    def http(self, port=None):
        return {
            "upstream": {"app": upstream(self.b1.addr, keepalive=8)},
            "server": [server(port or harness.free_port(), [location("/", proxy_pass="http://app")])],
        }

    def notified_portier(self, abstract=False):
        """A portier not yet started whose NOTIFY_SOCKET is a socket of ours."""
        p = harness.Portier(self.http(), start=False)
        self.addCleanup(p.cleanup)
        self._portiers.append(p)
        n = NotifySocket(p.dir, abstract)
        self.addCleanup(n.close)
        p.env = dict(os.environ, NOTIFY_SOCKET=n.env_value)
        return p, n

    def assertReady(self, p, n):
        p.start(workers=0)
        msg = n.wait_for("READY=1")
        self.assertTrue(p.worker_pids(), "READY=1 before any worker runs")
        if "MAINPID" in msg:
            self.assertEqual(int(msg["MAINPID"]), p.pid)
        self.assertEqual(p.get("/").status, 200)

    def test_ready_once_workers_run(self):
        p, n = self.notified_portier()
        self.assertReady(p, n)

    def test_ready_on_an_abstract_notify_socket(self):
        p, n = self.notified_portier(abstract=True)
        self.assertReady(p, n)

    def test_reload_sends_reloading_then_ready(self):
        p, n = self.notified_portier()
        self.assertReady(p, n)
        old = p.worker_pids()
        p.signal(signal.SIGHUP)
        n.wait_for("RELOADING=1")
        n.wait_for("READY=1")
        p.wait_new_workers(1, old)
        self.assertEqual(p.get("/").status, 200)

    def assertStopping(self, sig):
        p, n = self.notified_portier()
        self.assertReady(p, n)
        p.signal(sig)
        n.wait_for("STOPPING=1")
        self.assertIsNotNone(p.wait_exit(10), "master still running after signal %d" % sig)

    def test_quit_sends_stopping(self):
        self.assertStopping(signal.SIGQUIT)

    def test_term_sends_stopping(self):
        self.assertStopping(signal.SIGTERM)

    def test_socket_activation_adopts_fd_3_instead_of_binding(self):
        port = harness.free_port()
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(ls.close)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((harness.LOCALHOST, port))
        ls.listen(128)
        inode = os.fstat(ls.fileno()).st_ino
        p = self.start_portier(self.http(port), start=False)
        with open(p.stdout, "ab") as out, open(p.stderr, "ab") as err:
            p.proc = subprocess.Popen([sys.executable, "-c", ACTIVATE, str(ls.fileno()),
                                       harness.PORTIER_BIN, "-c", p.conf_path],
                                      stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                      pass_fds=(ls.fileno(),), start_new_session=True,
                                      preexec_fn=_die_with_parent, cwd=p.dir)
        harness.wait_until(lambda: p.proc.poll() is not None or p.worker_pids(), 10, 0.02,
                           "portier's workers")
        self.assertIsNone(p.proc.poll(), "portier exited:\n" + p.diagnostics())
        self.assertIn(inode, harness.socket_inodes(p.pid), "portier does not hold the passed socket")
        listeners = {r["inode"] for r in harness.tcp_sockets() if r["lport"] == port and r["state"] == "0A"}
        self.assertEqual(listeners, {inode}, "portier listens on a socket of its own")
        # systemd passes blocking sockets (NonBlocking=false is its default): portier must
        # make them non-blocking, or a worker blocks in accept().
        for _ in range(5):
            try:
                r = p.get("/", timeout=5)
            except TimeoutError:
                self.fail("no answer on the adopted socket (left blocking?)")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("X-Backend"), "b1")

    # -- files shipped

    def shipped(self, name):
        path = os.path.join(harness.SOURCE_DIR, "config", name)
        self.assertTrue(os.path.isfile(path), "%s is not shipped" % path)
        return harness.read_file(path)

    def test_systemd_unit_shipped(self):
        unit = self.shipped("portier.service")
        self.assertRegex(unit, r"(?m)^\[Service\]")
        self.assertRegex(unit, r"(?m)^Type=notify\s*$")
        self.assertRegex(unit, r"(?m)^ExecStart=\S*portier\b")
        self.assertRegex(unit, r"(?m)^ExecReload=.*(kill -HUP \$MAINPID|-s reload)")

    def test_logrotate_snippet_shipped(self):
        text = self.shipped("portier.logrotate")
        self.assertRegex(text, r"-s reopen|kill -USR1|kill -s USR1|USR1")
        self.assertRegex(text, r"(?m)^\s*postrotate\b")


if __name__ == "__main__":
    harness.main()
