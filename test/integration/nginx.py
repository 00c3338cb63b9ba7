"""
nginx.py: nginx from Debian beside portier, for differential tests where nginx defines
the behaviour.  scripts/deps installs it; when it is missing the test fails with that
instruction, it never skips.
"""

import os
import shutil
import tempfile
import time

from harness import KEEP_TMP, is_listening, spawn, tail, terminate

NGINX_BIN = "/usr/sbin/nginx"


class Nginx:
    """nginx in the foreground with one worker, listening on 127.0.0.1:<port>, with the
    given http-block text <http> (its own temp paths and logs in a fresh directory) and
    main-level text <main> (load_module lines: the harness's nginx.conf is its own, so the
    modules Debian enables in /etc/nginx/modules-enabled are not loaded unless named)."""

    def __init__(self, port, http, main=""):
        if not os.access(NGINX_BIN, os.X_OK):
            raise RuntimeError("%s is missing: run scripts/deps" % NGINX_BIN)
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="pt-it-nginx-")
        # Workers run as nobody when we are root: they write their temp files here.
        os.chmod(self.dir, 0o777)
        self.error_log = os.path.join(self.dir, "error.log")
        d = self.dir
        conf = (main + "worker_processes 1;\nerror_log %s info;\npid %s/nginx.pid;\n"
                "events { worker_connections 256; }\n"
                "http {\n  access_log off;\n  client_body_temp_path %s/body;\n"
                "  proxy_temp_path %s/proxy;\n  fastcgi_temp_path %s/fcgi;\n"
                "  uwsgi_temp_path %s/uwsgi;\n  scgi_temp_path %s/scgi;\n%s\n}\n"
                % (self.error_log, d, d, d, d, d, d, http))
        self.conf = os.path.join(d, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        out = os.path.join(d, "stderr.txt")
        self.proc = spawn([NGINX_BIN, "-p", d, "-c", self.conf, "-g", "daemon off;"], out, out)
        deadline = time.monotonic() + 10
        while not is_listening(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("nginx did not start: %s %s" % (tail(out), tail(self.error_log)))
            time.sleep(0.02)

    def stop(self):
        terminate(self.proc, grace=5.0)
        self.proc = None
        if not KEEP_TMP:
            shutil.rmtree(self.dir, ignore_errors=True)
