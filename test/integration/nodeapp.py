"""
nodeapp.py: the real Node.js application and clients of test/node/ (express, ws,
socket.io) for integration tests.  `scripts/deps` installs their packages with
`npm ci`; when they are missing the test fails with that instruction, it never
skips.
"""

import json
import os
import subprocess
import tempfile
import time

from harness import SOURCE_DIR, read_file, spawn, terminate

NODE_DIR = os.path.join(SOURCE_DIR, "test", "node")


def require_node():
    """Raises with the fix when node or the test/node packages are missing."""
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "ws")):
        raise RuntimeError("test/node/node_modules is missing: run scripts/deps "
                           "(it runs npm ci in test/node)")


class NodeApp:
    """test/node/app.js on 127.0.0.1 and an ephemeral port."""

    def __init__(self):
        require_node()
        self.dir = tempfile.mkdtemp(prefix="pt-it-node-")
        port_file = os.path.join(self.dir, "port")
        self.log = os.path.join(self.dir, "app.log")
        self.proc = spawn(["node", os.path.join(NODE_DIR, "app.js"), port_file],
                          self.log, self.log, cwd=NODE_DIR)
        deadline = time.monotonic() + 15
        while not os.path.exists(port_file) or not read_file(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("node app did not start: %s" % read_file(self.log))
            time.sleep(0.05)
        self.port = int(read_file(port_file))

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        terminate(self.proc)
        self.proc = None


def run_client(kind, url, timeout=20):
    """Runs test/node/client.js <kind> <url>: returns its JSON line as a dict (ok, reply,
    error, transport)."""
    require_node()
    p = subprocess.run(["node", os.path.join(NODE_DIR, "client.js"), kind, url],
                       cwd=NODE_DIR, capture_output=True, timeout=timeout)
    out = p.stdout.decode().strip().splitlines()
    if not out:
        return {"ok": False, "error": "no output: %s" % p.stderr.decode()[-500:]}
    return json.loads(out[-1])
