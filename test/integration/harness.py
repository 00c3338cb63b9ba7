"""
harness.py: shared machinery for portier's integration tests.

Everything runs on 127.0.0.1 with ephemeral ports.  A test starts real processes
(portier's master and workers, pt-backend, or the in-process RecordingBackend),
talks to them over raw sockets, and stops every process it started and removes
its temporary directory, whatever the outcome.

Environment (set by ctest): PORTIER_BIN, PT_BACKEND_BIN, PT_SOURCE_DIR.
PT_KEEP_TMP=1 keeps the temporary directories for post-mortem.

The tests use everything through this module: it re-exports the client
(httpclient.py), the recording origin (recorder.py) and the /proc helpers
(procs.py).
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from httpclient import (Client, PatternChecker, ProtocolError, Response,  # noqa: F401
                        build_request, chunked, headers_named, http_request, parse_echo,
                        pattern_bytes)
from procs import (LOCALHOST, all_pids, binary_is_sanitized, children, established_to,  # noqa: F401
                   dead_port, file_size, free_port, is_listening, pid_alive, proc_status,
                   proc_title, proc_uids, read_file, rss_kib, socket_inodes, spawn, tail, tcp_sockets,
                   terminate, wait_for_line, wait_until)
from recorder import RecordedRequest, RecordingBackend  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("PT_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
PORTIER_BIN = os.environ.get("PORTIER_BIN") or os.path.join(SOURCE_DIR, "build", "portier")
BACKEND_BIN = os.environ.get("PT_BACKEND_BIN") or os.path.join(SOURCE_DIR, "build", "pt-backend")
CORPUS_DIR = os.path.join(SOURCE_DIR, "test", "corpus")  # copies of outside data, licences beside
KEEP_TMP = os.environ.get("PT_KEEP_TMP") == "1"

MIB = 1024 * 1024


def require_binaries():
    """Exits with a clear message when the binaries under test are missing: a
    missing binary is a build problem, not a skipped test."""
    for what, path in (("PORTIER_BIN", PORTIER_BIN), ("PT_BACKEND_BIN", BACKEND_BIN)):
        if not os.access(path, os.X_OK):
            sys.stderr.write("%s: %s is not an executable (set %s)\n" % (sys.argv[0], path, what))
            sys.exit(2)


def main():
    """Entry point of every test file."""
    require_binaries()
    unittest.main(verbosity=2)

# --------------------------------------------------------------------------
# libconfig rendering

class Raw(str):
    """A value emitted verbatim into the config."""


def _quote(s):
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _value(v, ind):
    pad = "  " * (ind + 1)
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _quote(v)
    if isinstance(v, dict):
        return "{\n" + render_settings(v, ind + 1) + "  " * ind + "}"
    if isinstance(v, (list, tuple)):
        if any(isinstance(x, dict) for x in v):
            return "(\n" + ",\n".join(pad + _value(x, ind + 1) for x in v) + "\n" + "  " * ind + ")"
        return "[ " + ", ".join(_value(x, ind) for x in v) + " ]"
    raise TypeError("cannot render %r" % (v,))


def render_settings(d, ind=0):
    """libconfig text for dict <d> (insertion order kept; None values dropped).
    Lists holding a dict become libconfig lists ( ), other lists arrays [ ]."""
    return "".join("  " * ind + "%s = %s;\n" % (k, _value(v, ind))
                   for k, v in d.items() if v is not None)


def location(path, **directives):
    """A location entry: location("/api/", proxy_pass="http://app/"); ret= stands
    for the directive "return" (a Python keyword)."""
    if "ret" in directives:
        directives["return"] = directives.pop("ret")
    d = {"path": path}
    d.update(directives)
    return d


def server(port, locations, names=None, default=False, **directives):
    """A server entry listening on 127.0.0.1:<port>."""
    d = {"listen": ["%s:%d%s" % (LOCALHOST, port, " default_server" if default else "")]}
    if names:
        d["server_name"] = list(names)
    d.update(directives)
    d["location"] = list(locations)
    return d


def upstream(*addrs, keepalive=None, **directives):
    d = {"server": list(addrs)}
    if keepalive is not None:
        d["keepalive"] = keepalive
    d.update(directives)
    return d


# --------------------------------------------------------------------------
# pt-backend

class Backend:
    """A pt-backend process on 127.0.0.1."""

    def __init__(self, name="b1", port=0, workdir=None):
        self.name = name
        self.port = port
        self.proc = None
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="pt-it-backend-")
        self._count_cost = None
        self.start()

    def start(self, timeout=10.0):
        out = os.path.join(self.dir, "backend-%s.out" % self.name)
        err = os.path.join(self.dir, "backend-%s.err" % self.name)
        deadline = time.monotonic() + timeout
        while True:
            start_size = file_size(out)
            self.proc = spawn([BACKEND_BIN, "--listen", "%s:%d" % (LOCALHOST, self.port),
                               "--name", self.name], out, err)
            port = self._wait_ready(out, start_size, deadline)
            if port:
                self.port = port
                self._count_cost = None
                return
            terminate(self.proc)
            if time.monotonic() >= deadline:
                raise RuntimeError("pt-backend %s did not start: %s" % (self.name, tail(err)))
            time.sleep(0.1)  # port still held (restart on the same port): retry

    def _wait_ready(self, out, start, deadline):
        while time.monotonic() < deadline:
            data = read_file(out, "rb")[start:]
            m = re.search(rb"READY (\d+)\n", data)
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                return None
            time.sleep(0.01)
        return None

    @property
    def addr(self):
        return "%s:%d" % (LOCALHOST, self.port)

    def stop(self):
        terminate(self.proc)
        self.proc = None

    def restart(self, name=None):
        """Stops and starts again on the same port (optionally under a new name)."""
        self.stop()
        if name:
            self.name = name
        self.start()

    def cleanup(self):
        self.stop()
        if self._own_dir and not KEEP_TMP:
            shutil.rmtree(self.dir, ignore_errors=True)

    def raw_count(self):
        """(requests, connections) from /count, asked directly on a new connection."""
        r = http_request(self.port, "GET", "/count", headers=[("Connection", "close")])
        m = re.search(rb"requests=(\d+) connections=(\d+)", r.body)
        if r.status != 200 or not m:
            raise ProtocolError("bad /count answer %r" % r)
        return int(m.group(1)), int(m.group(2))

    def count(self):
        """(requests, connections) seen by the backend, not counting the /count
        queries made by this method (their own cost is measured once)."""
        if self._count_cost is None:
            a = self.raw_count()
            b = self.raw_count()
            self._count_cost = (b[0] - a[0], b[1] - a[1])
            self._adjust = (2 * self._count_cost[0], 2 * self._count_cost[1])
        raw = self.raw_count()
        self._adjust = (self._adjust[0] + self._count_cost[0], self._adjust[1] + self._count_cost[1])
        return raw[0] - self._adjust[0], raw[1] - self._adjust[1]


# --------------------------------------------------------------------------
# portier

class StartError(Exception):
    pass


class Portier:
    """A portier master (foreground) with its config, logs and pid file in a
    fresh temporary directory."""

    def __init__(self, http=None, main=None, text=None, start=True, env=None):
        self.dir = tempfile.mkdtemp(prefix="pt-it-")
        # Workers run as nobody when we are root: let them traverse the directory.
        os.chmod(self.dir, 0o755)
        self.conf_path = os.path.join(self.dir, "portier.conf")
        self.pid_path = os.path.join(self.dir, "portier.pid")
        self.error_log = os.path.join(self.dir, "error.log")
        self.access_log = os.path.join(self.dir, "access.log")
        self.stdout = os.path.join(self.dir, "stdout.txt")
        self.stderr = os.path.join(self.dir, "stderr.txt")
        self.env = env
        self.proc = None
        self.ports = []
        self.write_config(http, main, text)
        if start:
            self.start()

    # -- configuration
    def config_text(self, http=None, main=None):
        m = {"worker_processes": 1, "daemon": False, "pid": self.pid_path,
             "error_log": "%s info" % self.error_log}
        m.update(main or {})
        h = {"access_log": "%s combined" % self.access_log}
        h.update(http or {})
        m["http"] = h
        return render_settings(m)

    def write_config(self, http=None, main=None, text=None):
        """Writes the config file: <text> verbatim, or the defaults (one worker,
        foreground, pid/logs in the temp dir) merged with <main> and <http>."""
        if text is None:
            text = self.config_text(http, main)
        with open(self.conf_path + ".tmp", "w") as f:
            f.write(text)
        os.rename(self.conf_path + ".tmp", self.conf_path)
        if http is not None:
            self.ports = self._listen_ports(http)
        else:
            self.ports = []
            for lst in re.findall(r"listen\s*=\s*\[([^\]]*)\]", text):
                for p in re.findall(r'"127\.0\.0\.1:(\d+)', lst):
                    if int(p) not in self.ports:
                        self.ports.append(int(p))
        self.text = text

    @staticmethod
    def _listen_ports(http):
        ports = []
        for srv in http.get("server", []):
            for l in srv.get("listen", []):
                m = re.match(r"127\.0\.0\.1:(\d+)", l)
                if m and int(m.group(1)) not in ports:
                    ports.append(int(m.group(1)))
        return ports

    @property
    def port(self):
        return self.ports[0]

    # -- process control
    def start(self, timeout=15.0, workers=1):
        """Starts the master and waits until every listen port is listening and
        <workers> worker processes exist."""
        self.proc = spawn([PORTIER_BIN, "-c", self.conf_path], self.stdout, self.stderr,
                          env=self.env, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise StartError("portier exited with %s at start\n%s" % (self.proc.returncode, self.diagnostics()))
            if all(is_listening(p) for p in self.ports) and len(self.worker_pids()) >= workers:
                return
            if time.monotonic() > deadline:
                raise StartError("portier not ready after %.0fs\n%s" % (timeout, self.diagnostics()))
            time.sleep(0.02)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=10.0):
        """Exit code of the master, or None if still running after <timeout>."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def worker_pids(self):
        """Pids of the worker processes.  Children of the master whose title names
        them "worker" if titles say so, else every child not titled "helper"."""
        if self.proc is None:
            return []
        kids = children(self.proc.pid)
        titles = {k: proc_title(k) for k in kids}
        named = [k for k in kids if "worker" in titles[k]]
        if named:
            return named
        return [k for k in kids if "helper" not in titles[k]]

    def wait_workers(self, n, exclude=(), timeout=10.0):
        """Waits for exactly <n> workers none of which is in <exclude>."""
        ex = set(exclude)

        def probe():
            w = self.worker_pids()
            return w if len(w) == n and not ex.intersection(w) else None
        return wait_until(probe, timeout, 0.05, "%d new workers (have %r)" % (n, self.worker_pids()))

    def worker(self):
        """The single worker (fails if there is not exactly one)."""
        w = self.worker_pids()
        if len(w) != 1:
            raise AssertionError("expected one worker, have %r" % w)
        return w[0]

    def worker_for(self, client):
        """Pid of the worker holding the server side of <client>'s connection."""
        cport = client.local_port
        inodes = {r["inode"] for r in tcp_sockets()
                  if r["rport"] == cport and r["lport"] == client.port}
        for pid in self.worker_pids():
            if inodes & socket_inodes(pid):
                return pid
        return self.worker()

    @contextlib.contextmanager
    def only_worker(self, pid):
        """Within: every worker but <pid> stopped (SIGSTOP, and waited for: out of
        epoll_wait), so that the connections made go to <pid>."""
        others = [w for w in self.worker_pids() if w != pid]
        try:
            for o in others:
                os.kill(o, signal.SIGSTOP)
            for o in others:
                wait_until(lambda: proc_status(o)["State"].startswith("T"), 10.0, 0.005,
                           "worker %d to stop" % o)
            yield
        finally:
            for o in others:
                os.kill(o, signal.SIGCONT)

    def clients_on_workers(self, per_worker, path="/ping"):
        """With two workers: <per_worker> connections held by each, each answered once on
        <path> (a location portier answers itself, so that the upstream sees nothing).
        Returns the two lists; the caller closes them.  Which worker accepts is the
        kernel's choice (EPOLLEXCLUSIVE wakes one waiter, mostly the same one), so the
        other worker is stopped (SIGSTOP) while one worker's connections are made: it is
        not in epoll_wait then, and the kernel wakes the one that is."""
        pids = self.worker_pids()
        if len(pids) != 2:
            raise AssertionError("expected two workers, have %r" % pids)
        out = []
        for mine in pids:
            clients = []
            try:
                with self.only_worker(mine):
                    for _ in range(per_worker):
                        c = self.client()
                        clients.append(c)
                        r = c.request("GET", path)
                        if r.status != 200 or self.worker_for(c) != mine:
                            raise AssertionError("%s answered %d by %d, not by %d" %
                                                 (path, r.status, self.worker_for(c), mine))
            except BaseException:
                for c in clients + [c for cs in out for c in cs]:
                    c.close()
                raise
            out.append(clients)
        return out

    def wait_new_workers(self, n, old, timeout=10.0):
        """Waits until <n> workers not in <old> run (old ones may still drain)."""
        old = set(old)

        def probe():
            new = [w for w in self.worker_pids() if w not in old]
            return new if len(new) >= n else None
        return wait_until(probe, timeout, 0.05, "%d workers besides %r" % (n, sorted(old)))

    def reload(self, timeout=10.0):
        """HUP, then waits until as many new workers as before run."""
        old = set(self.worker_pids())
        self.signal(signal.SIGHUP)
        return self.wait_new_workers(len(old), old, timeout)

    def run(self, *args, timeout=20.0):
        """Runs `portier ARGS` (e.g. -t, -V, -s reload) to completion."""
        return subprocess.run([PORTIER_BIN] + list(args), capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=self.env, cwd=self.dir)

    def stop(self):
        if self.proc is not None:
            terminate(self.proc, signal.SIGTERM, 5.0)

    def cleanup(self):
        self.stop()
        if not KEEP_TMP:
            shutil.rmtree(self.dir, ignore_errors=True)

    def diagnostics(self):
        return ("--- %s\n%s\n--- error.log\n%s\n--- stderr\n%s\n--- stdout\n%s" %
                (self.conf_path, read_file(self.conf_path), tail(self.error_log),
                 tail(self.stderr), tail(self.stdout)))

    # -- requests
    def get(self, path="/", port=None, **kw):
        return http_request(port or self.port, "GET", path, **kw)

    def client(self, port=None, timeout=10.0):
        return Client(port or self.port, timeout)

    def access_lines(self):
        return read_file(self.access_log, "rb").decode("utf-8", "replace").splitlines()


# --------------------------------------------------------------------------
# unittest glue

class TestCase(unittest.TestCase):
    """Base class: start_*() helpers register their own cleanup; on a failing test
    the portier logs are printed."""

    maxDiff = None

    def setUp(self):
        self._portiers = []

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is None:
            return False
        return any(t is self for t, _ in list(result.failures) + list(result.errors))

    # A process of portier that died of a crash (or of a sanitizer's report, exit code 1):
    # the test's requests may all have been answered, it is a failure all the same.
    CRASH = re.compile(r"(worker|helper) process \d+ exited (on signal (4|6|7|8|11)|with code 1)\b")

    def tearDown(self):
        if self._failed():
            for p in self._portiers + getattr(type(self), "_class_portiers", []):
                sys.stderr.write("\n" + p.diagnostics() + "\n")
        for p in self._portiers + getattr(type(self), "_class_portiers", []):
            crash = self.CRASH.search(read_file(p.error_log, "rb").decode("utf-8", "replace"))
            if crash:
                sys.stderr.write("\n" + p.diagnostics() + "\n")
                self.fail("portier crashed: %s" % crash.group(0))

    def start_backend(self, name="b1", port=0):
        b = Backend(name, port)
        self.addCleanup(b.cleanup)
        return b

    def start_recorder(self, name="recorder"):
        r = RecordingBackend(name)
        self.addCleanup(r.stop)
        return r

    def start_portier(self, http=None, main=None, text=None, start=True, workers=1):
        p = Portier(http, main, text, start=False)
        self.addCleanup(p.cleanup)
        self._portiers.append(p)
        if start:
            p.start(workers=workers)
        return p

    @classmethod
    def class_backend(cls, name="b1"):
        b = Backend(name)
        cls.addClassCleanup(b.cleanup)
        return b

    @classmethod
    def class_recorder(cls, name="recorder"):
        r = RecordingBackend(name)
        cls.addClassCleanup(r.stop)
        return r

    @classmethod
    def class_portier(cls, http=None, main=None, workers=1):
        p = Portier(http, main, start=False)
        cls.addClassCleanup(p.cleanup)
        if "_class_portiers" not in cls.__dict__:
            cls._class_portiers = []
        cls._class_portiers.append(p)
        p.start(workers=workers)
        return p

    def assertClosed(self, client, timeout=3.0, msg=None):
        self.assertTrue(client.wait_closed(timeout),
                        msg or "connection still open %.1fs after the response" % timeout)

    def assertPortierError(self, resp, status):
        """<resp> is an error generated by portier itself with <status>."""
        self.assertEqual(resp.status, status, resp)
        # "portier/VERSION" by default, "portier" with server_tokens off
        self.assertRegex(resp.header("Server") or "", r"^portier(/[0-9.]+)?$", resp)
        self.assertIsNone(resp.header("X-Backend"), resp)


# --------------------------------------------------------------------------
# load

class Load:
    """<clients> threads, each looping GET <path> on its own keepalive connection
    to 127.0.0.1:<port>, with no retry: a connection error, a reset, an EOF before
    a full response, a timeout or a non-2xx status is a failure.  A response with
    "Connection: close" ends its connection and the next request goes on a new
    one: that is how a draining server hands a connection back without losing a
    request.  ok counts successes; failures lists (local port of the connection,
    or None when the connect failed, description).  Start and stop it with
    start()/stop() or as a context manager."""

    def __init__(self, port, clients=32, path="/", timeout=10.0):
        self.port = port
        self.request = build_request("GET", path)
        self.timeout = timeout
        self.ok = 0
        self.connections = 0
        self.failures = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(clients)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def failures_except(self, ports):
        """The failures on connections whose local port is not in <ports>."""
        return [f for f in self.failures if f[0] is None or f[0] not in ports]

    def _fail(self, lport, what):
        with self._lock:
            self.failures.append((lport, what))

    def _loop(self):
        c, lport = None, None
        while not self._stop.is_set():
            try:
                if c is None:
                    lport = None
                    c = Client(self.port, self.timeout)
                    lport = c.local_port
                    with self._lock:
                        self.connections += 1
                if not c.send(self.request):
                    raise ConnectionResetError("send failed")
                r = c.read_response(timeout=self.timeout)
            except (OSError, ProtocolError, TimeoutError) as e:
                self._fail(lport, "%r%s" % (e, " (reset)" if c is not None and c.reset else ""))
                if c is not None:
                    c.close()
                c = None
                continue
            if not 200 <= r.status < 300:
                self._fail(lport, "status %d" % r.status)
            else:
                with self._lock:
                    self.ok += 1
            if not 200 <= r.status < 300 or "close" in r.connection_tokens():
                c.close()
                c = None
        if c is not None:
            c.close()
