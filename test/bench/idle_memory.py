#!/usr/bin/env python3
"""
idle_memory.py PORT PID [N] [PATH] [WAVE]: what an idle keepalive client connection costs a proxy.

Opens N connections to 127.0.0.1:PORT, sends one "GET PATH" on each (at most WAVE, 50 by
default, waiting for their response at a time, as a load generator's connections would),
reads each response (keepalive), and leaves them all open and idle.  Prints

    KIB_PER_CONNECTION RSS_HALF_KIB RSS_AFTER_KIB N

from the resident memory of process PID (the proxy's one worker): Rss of
/proc/PID/smaps_rollup (VmRSS where that file is missing), read half a second after the
first N/2 connections went idle and again after all N.  The figure is the growth over the
second half: the first half fills the holes that serving the warm-up (and any earlier load)
left in the heap, which would otherwise make a connection look cheaper than it is.
Exits 1 when a connection fails or a response is not 200.
"""

import os
import selectors
import socket
import sys
import time


def rss_kib(pid):
    for path, key in (("/proc/%d/smaps_rollup" % pid, "Rss:"), ("/proc/%d/status" % pid, "VmRSS:")):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1])
        except OSError:
            continue
    raise SystemExit("idle_memory: cannot read the memory of pid %d" % pid)


def request(path):
    return ("GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % path).encode()


def response_complete(buf):
    """True when <buf> holds a whole response with a Content-Length body (or none)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in buf[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return len(buf) >= end + 4 + length


def open_idle(port, n, path, wave, timeout=60.0):
    """N connections with one request each, at most <wave> of them waiting for their
    response at a time (as wrk's connections would); returns the open sockets."""
    sel = selectors.DefaultSelector()
    req = request(path)
    socks, pending = [], {}
    deadline = time.monotonic() + timeout
    while len(socks) < n or pending:
        while len(socks) < n and len(pending) < wave:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_WRITE)
            pending[s] = b""
            socks.append(s)
        if time.monotonic() > deadline:
            raise SystemExit("idle_memory: %d responses missing after %.0fs" % (len(pending), timeout))
        for key, events in sel.select(1.0):
            s = key.fileobj
            if events & selectors.EVENT_WRITE:
                s.send(req)
                sel.modify(s, selectors.EVENT_READ)
                continue
            data = s.recv(65536)
            if not data:
                raise SystemExit("idle_memory: a connection was closed before its response")
            pending[s] += data
            if response_complete(pending[s]):
                if not pending[s].startswith(b"HTTP/1.1 200"):
                    raise SystemExit("idle_memory: got %r" % pending[s][:40])
                sel.unregister(s)
                del pending[s]
    sel.close()
    return socks


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    path = sys.argv[4] if len(sys.argv) > 4 else "/"
    wave = int(sys.argv[5]) if len(sys.argv) > 5 else 50
    # The warm-up is one wave: what serving <wave> requests at once takes is in the
    # baseline, not counted against the idle connections.
    for s in open_idle(port, wave, path, wave):
        s.close()
    socks = open_idle(port, n // 2, path, wave)
    time.sleep(0.5)
    half = rss_kib(pid)
    socks += open_idle(port, n - n // 2, path, wave)
    time.sleep(0.5)
    after = rss_kib(pid)
    for s in socks:
        s.close()
    print("%.2f %d %d %d" % ((after - half) / (n - n // 2), half, after, n))


if __name__ == "__main__":
    main()
