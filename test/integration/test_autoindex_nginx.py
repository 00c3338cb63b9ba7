"""
autoindex against nginx: one tree, the same locations in Debian's nginx and in portier, and
for each request the status, Content-Type, the framing (Content-Length, Transfer-Encoding),
the validators (none: a listing has no Last-Modified or ETag) and the body compared byte for
byte.  Every entry's mtime is set, so that the listings' times are the same in both.

The listed directory holds files whose sizes cross nginx's rounding steps (9999 bytes stays
in bytes, 10000 is "10K", half a unit rounds up; sparse files for M and G), directories, names
starting with '.', names that need escaping in the link and in the text (a space, '<', '&',
'"', '%', '#', '?', '+', a backslash, control bytes, UTF-8), names around the 50-byte column
(49, 50, 51 bytes, a long one with an escape, one cut inside a UTF-8 character) and around 50
characters (listed again under charset utf-8, where nginx counts characters, with bytes it
does not take as UTF-8), symlinks (to
a file, to a directory, dangling, into a directory the workers may not enter), and a FIFO.
It is listed as HTML, with exact_size off, with localtime on, as JSON, JSONP and XML; with
HEAD; with autoindex off (403); without its slash (301); with an index file (which wins); in
a directory the workers may not read (403) and one that is not there (404).  A directory of
3000 files makes a listing of some 400 KB, which goes out in pieces.

nginx's localtime takes the zone of the process: both run with TZ=IST-5:30, so that local
time differs from GMT by an offset with minutes.
"""

import hashlib
import os
import shutil
import tempfile

# Before any process starts: nginx and portier inherit it.
os.environ["TZ"] = "IST-5:30"

import harness  # noqa: E402
import nginx  # noqa: E402
from harness import location, server  # noqa: E402

T0 = 1700000000  # 2023-11-14 22:13:20 UTC
KIB, MIB, GIB = 1024, 1024 * 1024, 1024 * 1024 * 1024

MANY = 3000  # files in www/many: a listing of some 400 KB, sent in pieces

LONG_UTF8 = "x" * 46 + "\u00e9\u00e9\u00e9.txt"  # byte 47 falls inside the second "é"

# The listed directory: name -> size in bytes (written as that many bytes, or sparse for the
# large ones).
FILES = {
    "a.txt": 5,
    "B.txt": 6,  # upper case sorts before lower case (strcmp)
    "empty": 0,
    "size-9999": 9999,
    "size-10000": 10000,
    "size-10751": 10751,  # 10K and 511 bytes: 10K
    "size-10752": 10752,  # 10K and 512 bytes: 11K
    "size-1MiB-minus-1": MIB - 1,  # 1023K and 1023 bytes: 1024K
    "size-1.5MiB-minus-1": MIB + MIB // 2 - 1,
    "size-1.5MiB": MIB + MIB // 2,
    "size-1.5GiB": GIB + GIB // 2,
    "size-3GiB-minus-1": 3 * GIB - 1,
    "with space.txt": 1,
    "a<b>.txt": 2,
    "amp&amp.txt": 3,
    'quote".txt': 4,
    "percent%20.txt": 5,
    "hash#q?plus+.txt": 6,
    "back\\slash.txt": 7,
    "tab\there.txt": 8,
    "ctl\x01\x1f.txt": 9,
    "caf\u00e9-\u65e5\u672c.txt": 10,
    "n" * 49: 11,
    "f" * 50: 12,
    "g" * 51: 13,
    "long name with <html> & \"quotes\" past the fifty-byte column.txt": 14,
    LONG_UTF8: 15,
    ".hidden": 16,
    # Around the column in characters, for charset utf-8: 49, 50, 51 two-byte characters,
    # 52 three-byte ones; bytes nginx does not take as UTF-8 (a lone 0xff, an overlong '/')
    # and one it does (a lead byte followed by 0xff).
    "\u00e9" * 49: 17,
    "\u00e9" * 50: 18,
    "\u00e9" * 51: 19,
    "\u65e5\u672c" * 26: 20,
    "bad-\udcff-utf8.txt": 21,
    "overlong-\udcc0\udcaf.txt": 22,
    "odd-\udcc3\udcff-cont.txt": 23,
}
DIRS = ["sub", "another dir", "zeta", "d" * 49, "e" * 50, "odd <&> dir", ".hiddendir",
        "withindex", "locked", "\u00fc" * 49, "\u00fc" * 50]
MTIME = {name: T0 + 3600 * 7 * i + 59 * i for i, name in enumerate(sorted(FILES) + DIRS)}

LOCATIONS = [
    location("/list/", autoindex="on"),
    location("/approx/", alias="{TREE}/www/list/", autoindex="on", autoindex_exact_size="off"),
    location("/local/", alias="{TREE}/www/list/", autoindex="on", autoindex_localtime="on"),
    # charset utf-8: names measured in characters, as nginx measures them then.
    location("/utf8/", alias="{TREE}/www/list/", autoindex="on", charset="utf-8"),
    location("/utf8up/", alias="{TREE}/www/list/", autoindex="on", charset="UTF-8"),
    location("/latin/", alias="{TREE}/www/list/", autoindex="on", charset="koi8-r"),
    location("/json/", alias="{TREE}/www/list/", autoindex="on", autoindex_format="json"),
    location("/jsonp/", alias="{TREE}/www/list/", autoindex="on", autoindex_format="jsonp"),
    location("/xml/", alias="{TREE}/www/list/", autoindex="on", autoindex_format="xml"),
    location("/noauto/", alias="{TREE}/www/list/"),
    location("/empty/", autoindex="on"),
    location("/many/", autoindex="on"),
    location("/emptyjson/", alias="{TREE}/www/empty/", autoindex="on", autoindex_format="json"),
]


def build_tree(top):
    """The tree under <top>: www/list (the listed directory), www/empty, and vault (where
    the workers may not go) for a symlink to point into."""
    www = os.path.join(top, "www")
    lst = os.path.join(www, "list")
    os.makedirs(lst)
    os.makedirs(os.path.join(www, "empty"))
    os.makedirs(os.path.join(www, "many"))
    for i in range(MANY):
        path = os.path.join(www, "many", "file-%05d-with-a-name-long-enough.txt" % (MANY - i))
        with open(path, "wb") as f:
            f.write(b"x" * i)
        os.utime(path, (T0 + 61 * i, T0 + 61 * i))
    os.makedirs(os.path.join(top, "vault"))
    with open(os.path.join(top, "vault", "secret.txt"), "wb") as f:
        f.write(b"behind a directory the workers may not enter\n")
    for name, size in FILES.items():
        path = os.path.join(lst, name)
        with open(path, "wb") as f:
            if size > MIB:
                f.truncate(size)
            else:
                f.write(b"x" * size)
    for d in DIRS:
        os.makedirs(os.path.join(lst, d))
    with open(os.path.join(lst, "withindex", "index.html"), "wb") as f:
        f.write(b"<title>withindex</title>the index wins\n")
    with open(os.path.join(lst, "sub", "inner.txt"), "wb") as f:
        f.write(b"inner\n")
    os.symlink("a.txt", os.path.join(lst, "link-to-file"))
    os.symlink("sub", os.path.join(lst, "link-to-dir"))
    os.symlink("nowhere", os.path.join(lst, "link-dangling"))
    os.symlink("../../vault/secret.txt", os.path.join(lst, "link-into-vault"))
    os.mkfifo(os.path.join(lst, "a-fifo"))
    for d, dirs, files in os.walk(top):
        os.chmod(d, 0o755)
        for name in files:
            if not os.path.islink(os.path.join(d, name)):
                os.chmod(os.path.join(d, name), 0o644)
    os.chmod(os.path.join(top, "vault"), 0o700)
    os.chmod(os.path.join(lst, "locked"), 0o711)  # searchable, not readable
    # Times last: adding an entry changes its directory's mtime.
    for name, t in MTIME.items():
        os.utime(os.path.join(lst, name), (t, t))
    for i, name in enumerate(["link-dangling", "link-into-vault", "a-fifo"]):
        t = T0 - 86400 * (i + 1)
        os.utime(os.path.join(lst, name), (t, t), follow_symlinks=False)
    os.utime(os.path.join(lst, "sub", "inner.txt"), (T0, T0))
    os.utime(os.path.join(lst, "sub"), (T0 + 1, T0 + 1))


def with_tree(loc, tree):
    return {k: v.replace("{TREE}", tree) for k, v in loc.items()}


def nginx_location(loc):
    return "location %s { %s }" % (loc["path"], " ".join(
        "%s %s;" % (k, v) for k, v in loc.items() if k != "path"))


def nginx_http(tree, port):
    locs = "\n".join("    " + nginx_location(with_tree(loc, tree)) for loc in LOCATIONS)
    return ("  include /etc/nginx/mime.types;\n"
            "  server {\n    listen 127.0.0.1:%d;\n    root %s/www;\n%s\n  }" % (port, tree, locs))


def portier_http(tree, port):
    return {"server": [server(port, [with_tree(loc, tree) for loc in LOCATIONS],
                              root=tree + "/www")]}


# What is compared of a 200 besides the body; the framing says how long the body is.
HEADERS = ("Content-Type", "Content-Length", "Transfer-Encoding", "Last-Modified", "ETag")


def outcome(r, port):
    out = [("status", r.status)]
    if r.status == 200:
        out += [(h, r.header(h)) for h in HEADERS] + [("body", r.body)]
    elif r.status in (301, 302):
        loc = r.header("Location")
        out.append(("Location", loc and loc.replace(":%d/" % port, ":PORT/")))
    return tuple(out)


def ask(port, method, target, version="HTTP/1.1"):
    with harness.Client(port) as c:
        return c.request(method, target, host="localhost", version=version)


def shown(body):
    if len(body) <= 200:
        return repr(body)
    return "sha256:%s (%d bytes)" % (hashlib.sha256(body).hexdigest()[:16], len(body))


def first_difference(a, b):
    """Where bytes <a> and <b> part, with some context, for a readable failure."""
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    return "at byte %d: portier %r, nginx %r" % (i, a[max(0, i - 60):i + 60],
                                                  b[max(0, i - 60):i + 60])


class AutoindexSideBySide(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tree = tempfile.mkdtemp(prefix="pt-it-autoindex-")
        os.chmod(cls.tree, 0o755)
        if not harness.KEEP_TMP:
            cls.addClassCleanup(shutil.rmtree, cls.tree, True)
        build_tree(cls.tree)
        cls.nport = harness.free_port()
        cls.nginx = nginx.Nginx(cls.nport, nginx_http(cls.tree, cls.nport))
        cls.addClassCleanup(cls.nginx.stop)
        cls.pport = harness.free_port()
        while cls.pport == cls.nport:
            cls.pport = harness.free_port()
        cls.p = cls.class_portier(portier_http(cls.tree, cls.pport))

    def assertLikeNginx(self, method, target, status, version="HTTP/1.1"):
        """<method> <target> to both: nginx answers <status>, portier what nginx answers.
        Returns portier's answer as a dict."""
        want = outcome(ask(self.nport, method, target, version), self.nport)
        got = outcome(ask(self.pport, method, target, version), self.pport)
        self.assertEqual(want[0][1], status, "nginx answers %s %s otherwise" % (method, target))
        if got != want:
            g, w = dict(got), dict(want)
            if g.get("body") != w.get("body") and g.get("body") and w.get("body"):
                self.fail("%s %s: the bodies differ %s" % (
                    method, target, first_difference(g["body"], w["body"])))
            self.assertEqual({k: shown(v) if k == "body" else v for k, v in got},
                             {k: shown(v) if k == "body" else v for k, v in want})
        return dict(got)

    def nginx_body(self, target):
        return ask(self.nport, "GET", target).body

    # -- HTML

    def test_a_directory_without_an_index_is_listed_as_nginx_lists_it(self):
        got = self.assertLikeNginx("GET", "/list/", 200)
        self.assertEqual(got["Content-Type"], "text/html")
        self.assertEqual(got["Transfer-Encoding"], "chunked")
        self.assertTrue(got["body"].startswith(
            b"<html>\r\n<head><title>Index of /list/</title></head>\r\n<body>\r\n"
            b"<h1>Index of /list/</h1><hr><pre><a href=\"../\">../</a>\r\n"))
        self.assertTrue(got["body"].endswith(b"</pre><hr></body>\r\n</html>\r\n"))

    def test_an_http_1_0_listing_ends_with_the_connection(self):
        got = self.assertLikeNginx("GET", "/list/", 200, version="HTTP/1.0")
        self.assertEqual((got["Content-Length"], got["Transfer-Encoding"]), (None, None))

    def test_a_listing_has_no_validators(self):
        got = self.assertLikeNginx("GET", "/list/", 200)
        self.assertEqual((got["Last-Modified"], got["ETag"]), (None, None))

    def test_directories_come_first_then_names_in_byte_order(self):
        body = self.assertLikeNginx("GET", "/list/", 200)["body"]
        self.assertLess(body.index(b'href="zeta/"'), body.index(b'href="B.txt"'))
        self.assertLess(body.index(b'href="B.txt"'), body.index(b'href="a.txt"'))

    def test_names_starting_with_a_dot_are_left_out(self):
        body = self.assertLikeNginx("GET", "/list/", 200)["body"]
        self.assertNotIn(b"hidden", body)

    def test_names_are_escaped_in_the_link_and_in_the_text(self):
        body = self.assertLikeNginx("GET", "/list/", 200)["body"]
        self.assertIn(b'<a href="a%3Cb%3E.txt">a&lt;b&gt;.txt</a>', body)
        self.assertIn(b'<a href="quote%22.txt">quote&quot;.txt</a>', body)
        self.assertIn(b'<a href="with%20space.txt">with space.txt</a>', body)
        self.assertIn(b'<a href="percent%2520.txt">percent%20.txt</a>', body)

    def test_names_past_fifty_bytes_are_cut_with_an_arrow(self):
        body = self.assertLikeNginx("GET", "/list/", 200)["body"]
        self.assertIn(b">" + b"g" * 47 + b"..&gt;</a> ", body)
        self.assertIn(b">" + b"f" * 50 + b"</a> ", body)
        self.assertIn(b">" + b"e" * 50 + b"</a> ", body)  # no room for the directory's '/'
        self.assertIn(b">" + b"d" * 49 + b"/</a> ", body)

    def test_under_charset_utf_8_names_are_measured_in_characters(self):
        got = self.assertLikeNginx("GET", "/utf8/", 200)
        self.assertEqual(got["Content-Type"], "text/html; charset=utf-8")
        body = got["body"]
        e = "\u00e9".encode()
        self.assertIn(b">" + e * 49 + b"</a>  ", body)  # 49 columns and a space
        self.assertIn(b">" + e * 50 + b"</a> ", body)
        self.assertIn(b">" + e * 47 + b"..&gt;</a> ", body)
        self.assertIn(b">" + "\u00fc".encode() * 49 + b"/</a> ", body)
        self.assertIn(b">" + "\u65e5\u672c".encode() * 23 + "\u65e5".encode() + b"..&gt;</a>",
                      body)
        # Not UTF-8 as nginx reads it: measured in bytes.
        self.assertIn(b">bad-\xff-utf8.txt</a>" + b" " * (50 - 15), body)
        # The same name under another charset, or none, is measured in bytes.
        self.assertIn(b">" + e * 23 + b"\xc3..&gt;</a> ", self.nginx_body("/list/"))
        self.assertLikeNginx("GET", "/utf8up/", 200)
        self.assertLikeNginx("GET", "/latin/", 200)

    def test_exact_sizes_are_bytes(self):
        body = self.assertLikeNginx("GET", "/list/", 200)["body"]
        self.assertIn(b"%19d\r\n" % (3 * GIB - 1), body)

    def test_rounded_sizes_follow_nginx_s_steps(self):
        body = self.assertLikeNginx("GET", "/approx/", 200)["body"]
        lines = {line.split(b'"')[1]: line[-7:] for line in body.split(b"\r\n")
                 if line.startswith(b"<a href=\"size-")}
        self.assertEqual(lines, {
            b"size-9999": b"   9999", b"size-10000": b"    10K", b"size-10751": b"    10K",
            b"size-10752": b"    11K", b"size-1MiB-minus-1": b"  1024K",
            b"size-1.5MiB-minus-1": b"     1M", b"size-1.5MiB": b"     2M",
            b"size-1.5GiB": b"     2G", b"size-3GiB-minus-1": b"     3G"})

    def test_localtime_shows_times_in_the_zone_of_the_server(self):
        body = self.assertLikeNginx("GET", "/local/", 200)["body"]
        # sub's mtime T0 + 1 is 22:13 GMT, 03:43 the next day at +5:30.
        self.assertIn(b"15-Nov-2023 03:43", body)

    def test_the_title_is_the_decoded_uri_escaped(self):
        got = self.assertLikeNginx("GET", "/list/odd%20%3C%26%3E%20dir/", 200)
        self.assertIn(b"<title>Index of /list/odd &lt;&amp;&gt; dir/</title>", got["body"])

    def test_symlinks_and_other_entries_are_listed_as_stat_sees_them(self):
        body = self.assertLikeNginx("GET", "/list/", 200)["body"]
        self.assertIn(b'<a href="link-to-dir/">link-to-dir/</a>', body)
        self.assertIn(b'<a href="link-dangling">', body)
        self.assertIn(b'<a href="a-fifo">', body)

    def assertBothLog(self, line):
        for log in (self.nginx.error_log, self.p.error_log):
            self.assertIn(line, harness.read_file(log), log)

    def test_an_entry_the_workers_may_not_stat_is_left_out(self):
        body = self.assertLikeNginx("GET", "/list/", 200)["body"]
        self.assertNotIn(b"link-into-vault", body)
        self.assertBothLog("stat() \"%s/www/list/link-into-vault\" failed (13: Permission denied)"
                           % self.tree)

    def test_an_empty_directory_lists_only_the_parent(self):
        got = self.assertLikeNginx("GET", "/empty/", 200)
        self.assertIn(b"</a>\r\n</pre>", got["body"])

    def test_a_large_directory_arrives_whole(self):
        got = self.assertLikeNginx("GET", "/many/", 200)
        self.assertEqual(got["body"].count(b"\r\n<a href=\"file-"), MANY)
        self.assertGreater(len(got["body"]), 300 * 1024)

    def test_a_subdirectory_is_listed_too(self):
        self.assertLikeNginx("GET", "/list/sub/", 200)
        self.assertLikeNginx("GET", "/list/link-to-dir/", 200)

    # -- other formats

    def test_json_lists_names_types_times_and_file_sizes(self):
        got = self.assertLikeNginx("GET", "/json/", 200)
        self.assertEqual(got["Content-Type"], "application/json")
        self.assertIn(b'{ "name":"a.txt", "type":"file", "mtime":"', got["body"])
        self.assertIn(b'{ "name":"ctl\\u0001\\u001F.txt"', got["body"])
        self.assertIn(b'{ "name":"a-fifo", "type":"other", "mtime":"', got["body"])

    def test_json_of_an_empty_directory_is_an_empty_array(self):
        got = self.assertLikeNginx("GET", "/emptyjson/", 200)
        self.assertEqual(got["body"], b"[\r\n]")

    def test_jsonp_wraps_the_json_in_the_callback(self):
        got = self.assertLikeNginx("GET", "/jsonp/?callback=show.list_1", 200)
        self.assertEqual(got["Content-Type"], "application/javascript")
        self.assertTrue(got["body"].startswith(b"/* callback */\r\nshow.list_1(["))
        self.assertTrue(got["body"].endswith(b"]);"))

    def test_jsonp_without_a_callback_is_json(self):
        got = self.assertLikeNginx("GET", "/jsonp/?other=1", 200)
        self.assertEqual(got["Content-Type"], "application/json")
        self.assertLikeNginx("GET", "/jsonp/?callback=", 200)

    def test_jsonp_with_an_invalid_callback_is_400(self):
        self.assertLikeNginx("GET", "/jsonp/?callback=alert(1)", 400)
        self.assertLikeNginx("GET", "/jsonp/?callback=" + "a" * 129, 400)
        self.assertLikeNginx("GET", "/jsonp/?callback=" + "a" * 128, 200)

    def test_xml_lists_the_entries_as_elements(self):
        got = self.assertLikeNginx("GET", "/xml/", 200)
        self.assertEqual(got["Content-Type"], "text/xml; charset=utf-8")
        self.assertIn(b'<file mtime="', got["body"])

    # -- methods, and where a listing is not the answer

    def test_head_has_get_s_headers_and_no_body(self):
        for target in ("/list/", "/json/", "/xml/", "/list/locked/"):
            with self.subTest(target):
                self.assertLikeNginx("HEAD", target, 200 if target != "/list/locked/" else 403)
        with harness.Client(self.pport) as c:
            head = c.request("HEAD", "/list/", host="localhost")
            after = c.request("GET", "/list/sub/", host="localhost")
        self.assertEqual((head.status, head.body), (200, b""))
        self.assertEqual((after.status, after.body), (200, self.nginx_body("/list/sub/")))

    def test_autoindex_off_is_403(self):
        self.assertLikeNginx("GET", "/noauto/", 403)

    def test_a_directory_without_its_slash_is_redirected_first(self):
        got = self.assertLikeNginx("GET", "/list/sub", 301)
        self.assertEqual(got["Location"], "http://localhost:PORT/list/sub/")

    def test_an_index_file_wins(self):
        got = self.assertLikeNginx("GET", "/list/withindex/", 200)
        self.assertEqual(got["body"], b"<title>withindex</title>the index wins\n")

    def test_a_directory_the_workers_may_not_read_is_403(self):
        self.assertLikeNginx("GET", "/list/locked/", 403)
        self.assertBothLog("opendir() \"%s/www/list/locked\" failed (13: Permission denied)"
                           % self.tree)

    def test_a_directory_that_is_not_there_is_404(self):
        self.assertLikeNginx("GET", "/list/nope/", 404)

    def test_post_to_a_directory_is_not_listed(self):
        # nginx's index module takes POST (its redirect leads to the file, which refuses it);
        # its autoindex lists only for GET and HEAD, so the end of the phase refuses it.
        self.assertLikeNginx("POST", "/list/", 403)
        self.assertLikeNginx("POST", "/noauto/", 403)
        self.assertLikeNginx("POST", "/list/withindex/", 405)
        self.assertLikeNginx("POST", "/list/nope/", 404)


if __name__ == "__main__":
    harness.main()
