"""
nginx habits in the configuration file, tried as an nginx user would, with `portier -t`, a
start, a reload (HUP) and curl:

- a bare `gzip = on;` (libconfig has no bare words) names the fix at its file:line; "on"
  and "off" strings set flags;
- server_tokens: Server: portier/VERSION and the version on generated pages by default
  (nginx's on), the name alone with off, per location;
- include = "conf.d/*.conf": sites laid out one per file add up, errors name the included
  file and line, a broken include on reload keeps the running configuration;
  libconfig's own @include names its file too;
- resolver is accepted with a warning that says what portier does instead;
- a log in a directory that does not exist is reported at its directive's line by -t, at
  start and on reload.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile

import harness
from harness import LOCALHOST, free_port, render_settings

CURL = shutil.which("curl") or "curl"
OPENSSL = shutil.which("openssl") or "openssl"


def server(port, name, body, **directives):
    """One server answering <body> on / (and 404 on /missing) for server_name <name>."""
    d = {"listen": ["%s:%d" % (LOCALHOST, port)], "server_name": [name]}
    d.update(directives)
    d["location"] = [{"path": "/", "return": "200 %s" % body},
                     {"path": "/missing", "return": "404"}]
    return d


def site(port, name, body, **directives):
    """A libconfig fragment: the server list of one server(...)."""
    return render_settings({"server": [server(port, name, body, **directives)]})


def line_of(text, needle):
    """1-based number of the first line of <text> holding <needle>."""
    return next(i for i, l in enumerate(text.splitlines(), 1) if needle in l)


class Habits(harness.TestCase):

    def portier(self, http_text, main_text="", port=None, start=True):
        """A portier whose config is the harness's main settings, <main_text>, and an http
        block of <http_text> (libconfig, indented freely)."""
        p = self.start_portier(start=False)
        text = render_settings({"worker_processes": 1, "daemon": False, "pid": p.pid_path,
                                "error_log": "%s info" % p.error_log})
        text += main_text
        text += "http = {\n  access_log = \"%s\";\n%s};\n" % (p.access_log, http_text)
        p.write_config(text=text)
        p.ports = [port] if port else []
        if start:
            p.start()
        return p

    def write(self, p, name, text):
        path = os.path.join(p.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check(self, p):
        """`portier -t` of <p>'s file: (exit code, stdout, stderr)."""
        res = p.run("-t", "-c", p.conf_path)
        return res.returncode, res.stdout.decode(), res.stderr.decode()

    def curl(self, port, path="/", host=None, extra=()):
        """curl -si; returns (headers dict of lower-cased names, body)."""
        args = [CURL, "-si", "--max-time", "10", "http://%s:%d%s" % (LOCALHOST, port, path)]
        if host:
            args += ["-H", "Host: %s" % host]
        out = subprocess.run(args + list(extra), capture_output=True, timeout=20, check=True).stdout
        head, _, body = out.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return headers, body

    def version(self, p):
        out = p.run("-V").stdout.decode()
        return re.match(r"portier (\S+)", out).group(1)

    # -- flags

    def test_t_bare_on_names_the_fix_at_its_line(self):
        p = self.portier("  gzip = on;\n", start=False)
        rc, _, err = self.check(p)
        self.assertEqual(rc, 1, err)
        self.assertIn('portier.conf:%d: "on" is not a libconfig value: write gzip = true; (or "on")'
                      % line_of(p.text, "gzip = on"), err)

    def test_t_bare_off_names_the_fix(self):
        p = self.portier("  gzip = off;\n", start=False)
        rc, _, err = self.check(p)
        self.assertEqual(rc, 1, err)
        self.assertIn('"off" is not a libconfig value: write gzip = false; (or "off")', err)

    def test_quoted_on_sets_a_flag(self):
        port = free_port()
        p = self.portier('  gzip = "on";\n  gzip_min_length = 1;\n' + site(port, "a.test", "x" * 200),
                         port=port)
        headers, _ = self.curl(port, host="a.test", extra=["-H", "Accept-Encoding: gzip"])
        self.assertEqual(headers.get("content-encoding"), "gzip", headers)

    def test_quoted_off_sets_a_flag(self):
        port = free_port()
        p = self.portier('  gzip = "off";\n' + site(port, "a.test", "x" * 200), port=port)
        headers, _ = self.curl(port, host="a.test", extra=["-H", "Accept-Encoding: gzip"])
        self.assertNotIn("content-encoding", headers)

    # -- server_tokens

    def test_server_tokens_default_shows_the_version(self):
        port = free_port()
        p = self.portier(site(port, "a.test", "ok"), port=port)
        version = self.version(p)
        headers, body = self.curl(port, host="a.test")
        self.assertEqual(headers["server"], "portier/" + version)
        headers, body = self.curl(port, "/missing", host="a.test")
        self.assertEqual(headers["server"], "portier/" + version)
        self.assertIn(b"<hr><center>portier/" + version.encode() + b"</center>", body)

    def test_server_tokens_off_shows_the_name_only(self):
        port = free_port()
        p = self.portier("  server_tokens = \"off\";\n" + site(port, "a.test", "ok"), port=port)
        headers, body = self.curl(port, "/missing", host="a.test")
        self.assertEqual(headers["server"], "portier")
        self.assertIn(b"<hr><center>portier</center>", body)
        self.assertNotIn(self.version(p).encode(), body)

    def test_server_tokens_false_in_one_server_only(self):
        port = free_port()
        p = self.portier(render_settings({"server": [
            server(port, "a.test", "a"), server(port, "b.test", "b", server_tokens=False)]}),
            port=port)
        self.assertRegex(self.curl(port, host="a.test")[0]["server"], r"^portier/[0-9.]+$")
        self.assertEqual(self.curl(port, host="b.test")[0]["server"], "portier")

    def test_server_tokens_off_on_plain_http_to_https_port(self):
        certs = tempfile.mkdtemp(prefix="pt-it-habits-")
        self.addCleanup(shutil.rmtree, certs, True)
        crt, key = os.path.join(certs, "a.crt"), os.path.join(certs, "a.key")
        subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=a.test", "-keyout", key, "-out", crt],
                       capture_output=True, check=True, timeout=60)
        port = free_port()
        srv = ('  server_tokens = "off";\n  server = ( { listen = [ "%s:%d ssl" ]; '
               'ssl_certificate = "%s"; ssl_certificate_key = "%s"; } );\n'
               % (LOCALHOST, port, crt, key))
        p = self.portier(srv, port=port)
        headers, body = self.curl(port, host="a.test")
        self.assertIn(b"The plain HTTP request was sent to HTTPS port", body)
        self.assertEqual(headers["server"], "portier")

    # -- include

    def conf_d(self, p, port):
        self.write(p, "conf.d/a.conf", site(port, "a.test", "site a"))
        self.write(p, "conf.d/b.conf", site(port, "b.test", "site b"))

    def test_include_conf_d_serves_every_site(self):
        port = free_port()
        p = self.portier('  include = "conf.d/*.conf";\n' + site(port, "main.test", "main"),
                         port=port, start=False)
        self.conf_d(p, port)
        self.write(p, "conf.d/c.conf.disabled", "not libconfig at all")
        p.start()
        self.assertEqual(self.curl(port, host="a.test")[1], b"site a")
        self.assertEqual(self.curl(port, host="b.test")[1], b"site b")
        self.assertEqual(self.curl(port, host="main.test")[1], b"main")

    def test_include_sites_enabled_and_conf_d_in_one_list(self):
        port = free_port()
        p = self.portier('  include = [ "conf.d/*.conf", "sites-enabled/*" ];\n', port=port,
                         start=False)
        self.write(p, "conf.d/a.conf", site(port, "a.test", "site a"))
        self.write(p, "sites-enabled/b", site(port, "b.test", "site b"))
        p.start()
        self.assertEqual(self.curl(port, host="a.test")[1], b"site a")
        self.assertEqual(self.curl(port, host="b.test")[1], b"site b")

    def test_t_include_error_names_the_included_file_and_line(self):
        port = free_port()
        p = self.portier('  include = "conf.d/*.conf";\n', start=False)
        self.conf_d(p, port)
        text = site(port, "c.test", "c").replace('server_name', 'proxy_pas = "http://x";\n'
                                                                '    server_name')
        path = self.write(p, "conf.d/c.conf", text)
        rc, _, err = self.check(p)
        self.assertEqual(rc, 1, err)
        self.assertIn('%s:%d: unknown directive "proxy_pas" in server' %
                      (path, line_of(text, "proxy_pas")), err)

    def test_t_include_of_missing_file_is_an_error(self):
        p = self.portier('  include = "sites/app.conf";\n', start=False)
        rc, _, err = self.check(p)
        self.assertEqual(rc, 1, err)
        self.assertIn('portier.conf:%d: cannot open include file "%s/sites/app.conf"' %
                      (line_of(p.text, "include"), p.dir), err)

    def test_t_include_pattern_matching_nothing_passes(self):
        port = free_port()
        p = self.portier('  include = "conf.d/*.conf";\n' + site(port, "a.test", "a"),
                         start=False)
        rc, out, err = self.check(p)
        self.assertEqual(rc, 0, err)
        self.assertIn("test is successful", out)

    def test_t_upstream_defined_in_two_files_is_an_error(self):
        p = self.portier('  include = "conf.d/*.conf";\n', start=False)
        self.write(p, "conf.d/a.conf", 'upstream = { app = { server = [ "127.0.0.1:1" ]; }; };\n')
        path = self.write(p, "conf.d/b.conf",
                          'upstream = {\n  app = { server = [ "127.0.0.1:2" ]; };\n};\n')
        rc, _, err = self.check(p)
        self.assertEqual(rc, 1, err)
        self.assertIn('%s:2: duplicate upstream "app"' % path, err)

    def test_reload_with_broken_include_keeps_serving(self):
        port = free_port()
        p = self.portier('  include = "conf.d/*.conf";\n', port=port, start=False)
        self.conf_d(p, port)
        p.start()
        workers = p.worker_pids()
        start = harness.file_size(p.error_log)
        text = site(port, "a.test", "new a").replace("server_name", "gzip = on;\n    server_name")
        path = self.write(p, "conf.d/a.conf", text)
        p.signal(signal.SIGHUP)
        line = harness.wait_for_line(p.error_log, r"keeping the running configuration", timeout=5,
                                     start=start)
        self.assertIn('%s:%d: "on" is not a libconfig value' % (path, line_of(text, "gzip")), line)
        self.assertTrue(p.alive())
        self.assertEqual(p.worker_pids(), workers)
        self.assertEqual(self.curl(port, host="a.test")[1], b"site a")
        self.assertEqual(self.curl(port, host="b.test")[1], b"site b")

    def test_t_at_include_error_names_the_included_file(self):
        port = free_port()
        p = self.portier('  @include "sites/a.conf"\n', start=False)
        text = site(port, "a.test", "a") + "bogus = 1;\n"
        path = self.write(p, "sites/a.conf", text)
        rc, _, err = self.check(p)
        self.assertEqual(rc, 1, err)
        self.assertIn('%s:%d: unknown directive "bogus" in http' % (path, line_of(text, "bogus")),
                      err)

    def test_at_include_serves_the_included_site(self):
        port = free_port()
        p = self.portier('  @include "sites/a.conf"\n', port=port, start=False)
        self.write(p, "sites/a.conf", site(port, "a.test", "site a"))
        p.start()
        self.assertEqual(self.curl(port, host="a.test")[1], b"site a")

    # -- resolver

    def test_t_resolver_passes_with_a_warning_at_its_line(self):
        port = free_port()
        p = self.portier('  resolver = "127.0.0.53 valid=30s";\n  resolver_timeout = "5s";\n' +
                         site(port, "a.test", "a"), start=False)
        rc, out, err = self.check(p)
        self.assertEqual(rc, 0, err)
        self.assertIn("test is successful", out)
        self.assertIn('portier: [warn] %s:%d: "resolver 127.0.0.53 valid=30s" is ignored: '
                      'portier resolves names with the system resolver (/etc/resolv.conf)'
                      % (p.conf_path, line_of(p.text, "resolver =")), err)
        self.assertIn("resolve_interval", err)
        self.assertIn('portier.conf:%d: "resolver_timeout" is ignored'
                      % line_of(p.text, "resolver_timeout"), err)

    def test_resolver_warning_is_logged_on_reload(self):
        port = free_port()
        p = self.portier(site(port, "a.test", "a"), port=port)
        start = harness.file_size(p.error_log)
        p.write_config(text=p.text.replace("http = {\n", 'http = {\n  resolver = "8.8.8.8";\n'))
        p.ports = [port]
        p.reload()
        harness.wait_for_line(p.error_log, r'\[warn\] .*portier\.conf:\d+: "resolver 8\.8\.8\.8" '
                              r'is ignored', timeout=5, start=start)

    # -- logs in a directory that does not exist

    def test_t_access_log_in_missing_directory_names_its_line(self):
        port = free_port()
        p = self.portier(site(port, "a.test", "a", access_log="/nonexistent-pt/access.log"),
                         start=False)
        rc, _, err = self.check(p)
        self.assertEqual(rc, 1, err)
        self.assertIn('portier.conf:%d: cannot open access log "/nonexistent-pt/access.log": '
                      'No such file or directory' % line_of(p.text, "/nonexistent-pt"), err)

    def test_t_error_log_in_missing_directory_names_its_line(self):
        port = free_port()
        p = self.portier(site(port, "a.test", "a"), start=False)
        p.write_config(text=p.text.replace(p.error_log, "/nonexistent-pt/error.log"))
        rc, _, err = self.check(p)
        self.assertEqual(rc, 1, err)
        self.assertIn('portier.conf:%d: cannot open error log "/nonexistent-pt/error.log": '
                      'No such file or directory' % line_of(p.text, "/nonexistent-pt"), err)

    def test_start_with_access_log_in_missing_directory_fails_at_its_line(self):
        port = free_port()
        p = self.portier(site(port, "a.test", "a", access_log="/nonexistent-pt/access.log"),
                         port=port, start=False)
        with self.assertRaises(harness.StartError):
            p.start(timeout=5)
        self.assertEqual(p.wait_exit(5), 1)
        self.assertIn('portier.conf:%d: cannot open access log "/nonexistent-pt/access.log"'
                      % line_of(p.text, "/nonexistent-pt"), harness.read_file(p.stderr))

    def test_reload_with_log_in_missing_directory_keeps_serving(self):
        port = free_port()
        p = self.portier(site(port, "a.test", "old"), port=port)
        workers = p.worker_pids()
        start = harness.file_size(p.error_log)
        p.write_config(text=p.text.replace('"200 old"', '"200 new"').replace(
            "http = {\n", 'http = {\n  server_tokens = false;\n').replace(
            p.access_log, "/nonexistent-pt/access.log"))
        p.ports = [port]
        p.signal(signal.SIGHUP)
        line = harness.wait_for_line(p.error_log, r"keeping the running configuration", timeout=5,
                                     start=start)
        self.assertIn('portier.conf:%d: cannot open access log "/nonexistent-pt/access.log"'
                      % line_of(p.text, "/nonexistent-pt"), line)
        self.assertEqual(p.worker_pids(), workers)
        self.assertEqual(self.curl(port, host="a.test")[1], b"old")


if __name__ == "__main__":
    harness.main()
