"""
procs.py: processes and sockets as /proc shows them, for the integration tests:
spawning children that die with the test runner, killing a process tree, finding
children, RSS and uids, TCP sockets, free ports, waiting for conditions and log
lines.
"""

import atexit
import ctypes
import os
import re
import signal
import socket
import subprocess
import time

LOCALHOST = "127.0.0.1"

# Process bookkeeping: everything we start is killed at exit, even on a crash
# of the test itself (atexit) or the death of this process (PDEATHSIG).

_live_procs = set()
_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _child_setup():
    # Dies with us if ctest kills the test runner.  Children are spawned from the
    # main thread only (PDEATHSIG follows the spawning thread).
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv, stdout, stderr, env=None, cwd=None):
    """Starts <argv> in its own session (so its whole process tree can be killed
    by session id) with stdout/stderr to the given file paths."""
    out = open(stdout, "ab")
    err = out if stderr == stdout else open(stderr, "ab")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True, preexec_fn=_child_setup,
                                env=env, cwd=cwd)
    finally:
        out.close()
        if err is not out:
            err.close()
    _live_procs.add(proc)
    return proc


def kill_session(sid):
    """SIGKILLs every process of session <sid> (a master and all it forked)."""
    for pid in session_members(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def terminate(proc, sig=signal.SIGTERM, grace=5.0):
    """Stops <proc> with <sig>, then SIGKILL after <grace> seconds, then kills
    whatever is left in its session."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
    kill_session(proc.pid)
    if proc.poll() is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
        proc.wait(5)
    _live_procs.discard(proc)


@atexit.register
def _kill_everything():
    for proc in list(_live_procs):
        try:
            terminate(proc, signal.SIGKILL, 1.0)
        except Exception:
            pass


# --------------------------------------------------------------------------
# /proc helpers

def _stat_fields(pid):
    """(comm, fields after comm) of /proc/<pid>/stat, or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("latin-1")
    except OSError:
        return None
    r = data.rfind(")")
    return data[data.find("(") + 1:r], data[r + 2:].split()


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def ppid_of(pid):
    st = _stat_fields(pid)
    return int(st[1][1]) if st else None


def pid_alive(pid):
    st = _stat_fields(pid)
    return st is not None and st[1][0] != "Z"


def session_members(sid):
    out = []
    for pid in all_pids():
        st = _stat_fields(pid)
        if st and int(st[1][3]) == sid:
            out.append(pid)
    return out


def children(pid):
    """Live (non-zombie) children of <pid>."""
    out = []
    for p in all_pids():
        st = _stat_fields(p)
        if st and int(st[1][1]) == pid and st[1][0] != "Z":
            out.append(p)
    return sorted(out)


def proc_title(pid):
    """cmdline (NULs as spaces) and comm of <pid>, lowercased, for telling workers
    from the helper process."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode("latin-1")
    except OSError:
        cmd = ""
    st = _stat_fields(pid)
    return (cmd + " " + (st[0] if st else "")).lower()


def proc_status(pid):
    """/proc/<pid>/status as a dict of strings."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def rss_kib(pid):
    """VmRSS of <pid> in KiB."""
    return int(proc_status(pid)["VmRSS"].split()[0])


def proc_uids(pid):
    """(real, effective, saved, fs) uids of <pid>."""
    return tuple(int(x) for x in proc_status(pid)["Uid"].split())


def _hexaddr(s):
    ip, port = s.split(":")
    return ip, int(port, 16)


def tcp_sockets():
    """Rows of /proc/net/tcp{,6}: dicts with lport, rport, state (hex str), inode."""
    rows = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            lip, lport = _hexaddr(parts[1])
            rip, rport = _hexaddr(parts[2])
            rows.append({"lip": lip, "lport": lport, "rip": rip, "rport": rport,
                         "state": parts[3], "inode": int(parts[9])})
    return rows


TCP_ESTABLISHED = "01"
TCP_LISTEN = "0A"


def is_listening(port):
    return any(r["lport"] == port and r["state"] == TCP_LISTEN for r in tcp_sockets())


def established_to(port):
    """Set of (local port) of ESTABLISHED client-side sockets connected to <port>."""
    return {r["lport"] for r in tcp_sockets()
            if r["rport"] == port and r["state"] == TCP_ESTABLISHED}


def socket_inodes(pid):
    """Inodes of the sockets <pid> holds open."""
    out = set()
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    s = socket.socket()
    s.bind((LOCALHOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


_dead_sockets = []


def dead_port():
    """A TCP port on 127.0.0.1 that refuses connections for as long as this process runs:
    bound and never listened on, so that no other test's server can take it while a test
    counts on nothing being there (free_port's port is free only until someone binds it),
    and no outgoing connection gets it as its own port and connects to itself."""
    s = socket.socket()
    s.bind((LOCALHOST, 0))
    _dead_sockets.append(s)
    return s.getsockname()[1]


def wait_until(pred, timeout=5.0, interval=0.02, what="condition"):
    """Polls <pred> until it returns a true value (returned) or raises after <timeout>."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def binary_is_sanitized(path):
    """True when <path> was built with AddressSanitizer (its RSS behaves differently:
    quarantine and shadow memory)."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def read_file(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except FileNotFoundError:
        return "" if mode == "r" else b""


def tail(path, n=40):
    lines = read_file(path, "rb").decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-n:])


def wait_for_line(path, pattern, timeout=5.0, start=0):
    """Waits until file <path> has, past byte offset <start>, a line matching regex
    <pattern> (str); returns the line."""
    rx = re.compile(pattern)

    def probe():
        data = read_file(path, "rb")[start:].decode("utf-8", "replace")
        for line in data.splitlines():
            if rx.search(line):
                return line
        return None
    return wait_until(probe, timeout, 0.05, "a line matching %r in %s" % (pattern, path))


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
