"""
The static module against nginx: one tree of files, the same root, alias, index, try_files,
types and default_type rules in Debian's nginx and in portier, and for each request the status,
the body and the headers a client acts on (Content-Type, Content-Length, Last-Modified, ETag,
Location, Content-Range, Accept-Ranges) compared.  Covers files (small, empty, 1 MiB, hidden,
a UTF-8 name), HEAD, directories (index in order, the redirect that adds the slash, 403 without
an index), 404, a file the workers cannot read, root at each level, alias in a prefix and a
regex location, types and default_type, try_files (a URI, =404, a named location, an SPA's
fallback), the validators and the conditional requests, byte ranges (one, and several as
multipart/byteranges, the boundary aside) and If-Range, and
paths that try to leave the root (where portier may refuse otherwise than nginx, never serve).
nginx's configuration is written from portier's locations, so the two cannot drift apart.

nginx answers some of these otherwise than one might expect, and the tests pin what it does:
a "Range: bytes=abc" (or bytes=5-2) is 416, not ignored; If-Modified-Since with any date but
the exact mtime is 200 (if_modified_since exact); If-None-Match compares weakly, If-Match and
If-Range strongly; "try_files $uri $uri/ ..." on a directory without its slash redirects to it
(301) rather than serving the index.
"""

import email.utils
import gzip
import hashlib
import os
import random
import shutil
import tempfile

import harness
import nginx
from harness import location, server

T0 = 1700000000  # 2023-11-14 22:13:20 UTC: every file's mtime is a fixed time after it

# The tree, as (path under the tree's top, bytes).  The server root is srv/www; the decoy
# passwd files sit one and two levels above it, where "/../etc/passwd" and
# "/../../etc/passwd" would land.
DECOY = b"root:x:0:0:decoy above the static root:/root:/bin/sh\n"
NUL_BAIT = b"served by a path cut at its %00\n"
FILES = [
    ("srv/www/index.html", b"<!doctype html><title>root</title>the root's index\n"),
    ("srv/www/hello.txt", b"Hello, static world: 0123456789 abcdefghijklmnopqrstuvwxyz\n"),
    ("srv/www/style.css", b"body { color: #123456; }\n"),
    ("srv/www/data.json", b'{"static": true, "n": 42}\n'),
    ("srv/www/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256))),
    ("srv/www/photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(255, -1, -1))),
    ("srv/www/anim.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
    ("srv/www/icon.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n'),
    ("srv/www/LOUD.PNG", b"\x89PNG\r\n\x1a\nupper-case extension"),
    ("srv/www/notes.unknownext", b"an extension no table knows\n"),
    ("srv/www/big.bin", random.Random(20240101).randbytes(harness.MIB)),
    ("srv/www/empty.txt", b""),
    ("srv/www/.env", b"SECRET=a hidden file nginx serves like any other\n"),
    ("srv/www/two words \u00e9.txt", b"spaces and UTF-8 in the name\n"),
    ("srv/www/secret.txt", b"the workers cannot read this\n"),
    ("srv/www/file", NUL_BAIT),
    ("srv/www/a/inside.txt", b"inside a/\n"),
    ("srv/www/docs/index.html", b"<title>docs</title>the docs' index\n"),
    ("srv/www/noindex/file.txt", b"a directory without an index\n"),
    ("srv/www/legacy/default.htm", b"<title>legacy</title>default.htm, the second index\n"),
    ("srv/www/legacy/both/index.html", b"index.html, the first index\n"),
    ("srv/www/legacy/both/default.htm", b"default.htm, never reached\n"),
    ("srv/www/typed/page.html", b"<p>html</p>\n"),
    ("srv/www/typed/page.htm", b"<p>htm</p>\n"),
    ("srv/www/typed/sheet.css", b"p { margin: 0; }\n"),
    ("srv/www/typed/script.js", b"console.log('typed');\n"),
    ("srv/www/typed/pic.png", b"\x89PNG\r\n\x1a\ntyped"),
    ("srv/www/typed/photo.jpg", b"\xff\xd8\xff not in this location's types\n"),
    ("srv/www/typed/README", b"no extension\n"),
    ("srv/www/typed/data.xyz", b"unknown extension\n"),
    ("srv/www/try/exists.txt", b"try: the URI itself\n"),
    ("srv/www/try/sub/index.html", b"try: the directory's index\n"),
    ("srv/www/try/bare/file.txt", b"try: a directory without an index\n"),
    ("srv/www/try404/exists.txt", b"try404: the URI itself\n"),
    ("srv/www/tryfb/exists.txt", b"tryfb: the URI itself\n"),
    ("srv/www/app/index.html", b"<title>app</title><div id=root></div>\n"),
    ("srv/www/app/app.css", b"#root { display: grid; }\n"),
    ("srv/www/gz/site.css", b"p { margin: 0 auto; }\n" * 20),
    ("srv/www/gz/site.css.gz", gzip.compress(b"p { margin: 0 auto; }\n" * 20, mtime=0)),
    ("srv/www/gz/only-plain.css", b"p { color: red; }\n"),
    ("srv/alt/other/page.txt", b"from the location's own root\n"),
    ("srv/aliased/one.txt", b"from the alias\n"),
    ("srv/aliased/index.html", b"<title>aliased</title>the alias' index\n"),
    ("srv/pics/a.png", b"\x89PNG\r\n\x1a\nregex alias"),
    ("srv/pics/sub/b.gif", b"GIF89a regex alias, deeper"),
    ("srv/etc/passwd", DECOY),
    ("etc/passwd", DECOY),
    ("http-root/index.html", b"<title>http root</title>the http level's root\n"),
    ("http-root/only.txt", b"only under the http level's root\n"),
]
CONTENT = dict(FILES)
MTIME = {path: T0 + 86400 * i + i for i, (path, _) in enumerate(FILES)}
UNREADABLE = "srv/www/secret.txt"
WWW = "srv/www/"


def etag(path):
    """nginx's ETag: the mtime and the size in hex, strong ("%xT-%xO")."""
    return '"%x-%x"' % (MTIME[path], len(CONTENT[path]))


def http_date(t):
    return email.utils.formatdate(t, usegmt=True)


def last_modified(path):
    return http_date(MTIME[path])


def build_tree(top):
    """Writes FILES under <top> with their mtimes; directories 755 and files 644 (the
    workers of both servers run as nobody), the unreadable one 000."""
    for path, data in FILES:
        full = os.path.join(top, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
        os.utime(full, (MTIME[path], MTIME[path]))
    for d, _, files in os.walk(top):
        os.chmod(d, 0o755)
        for name in files:
            os.chmod(os.path.join(d, name), 0o644)
    os.chmod(os.path.join(top, UNREADABLE), 0)


# portier's locations; nginx's are written from them (nginx_location).  {TREE} is the tree's
# top.  The server's root is {TREE}/srv/www, the http level's {TREE}/http-root.
LOCATIONS = [
    # Types from the default table (nginx's mime.types, portier's /etc/mime.types) for the
    # extensions where the two agree; default_type for the others.
    location("/", default_type="application/octet-stream"),
    location("/legacy/", index=["index.html", "default.htm"]),
    location("/other/", root="{TREE}/srv/alt"),
    location("/files/", alias="{TREE}/srv/aliased/"),
    location("~ ^/img/(.+)$", alias="{TREE}/srv/pics/$1"),
    location("/typed/", types=["text/html html htm", "text/css css",
                               "application/javascript js", "image/png png"],
             default_type="application/octet-stream"),
    location("/try/", try_files="$uri $uri/ /index.html"),
    location("/try404/", try_files="$uri =404"),
    location("/tryfb/", try_files="$uri @fallback"),
    location("@fallback", ret="200 fallback\n"),
    location("/app/", try_files="$uri /app/index.html"),
    # expires (the headers module): each on the www tree through an alias.
    location("/expmax/", alias="{TREE}/srv/www/", expires="max"),
    location("/expepoch/", alias="{TREE}/srv/www/", expires="epoch"),
    location("/exp1h/", alias="{TREE}/srv/www/", expires="1h30m"),
    location("/expneg/", alias="{TREE}/srv/www/", expires="-1"),
    location("/expmod/", alias="{TREE}/srv/www/", expires="modified +30d"),
    location("/expoff/", alias="{TREE}/srv/www/", expires="off"),
    # gzip_static: /gz/ on, /gzalways/ always, over the same files.
    location("/gz/", gzip_static="on"),
    location("/gzalways/", alias="{TREE}/srv/www/gz/", gzip_static="always"),
]


def nginx_directive(name, value):
    if name == "types":
        return "types { %s }" % " ".join("%s;" % line for line in value)
    if name == "return":
        status, _, text = value.partition(" ")
        return 'return %s "%s";' % (status, text.replace("\n", "\\n"))
    if isinstance(value, list):
        value = " ".join(value)
    return "%s %s;" % (name, value)


def nginx_location(loc):
    return "location %s { %s }" % (loc["path"], " ".join(
        nginx_directive(k, v) for k, v in loc.items() if k != "path"))


def with_tree(value, tree):
    if isinstance(value, str):
        return value.replace("{TREE}", tree)
    if isinstance(value, list):
        return [with_tree(v, tree) for v in value]
    if isinstance(value, dict):
        return {k: with_tree(v, tree) for k, v in value.items()}
    return value


def nginx_http(tree, port, port2):
    locs = "\n".join("    " + nginx_location(with_tree(loc, tree)) for loc in LOCATIONS)
    return ("  include /etc/nginx/mime.types;\n  root %s/http-root;\n"
            "  server {\n    listen 127.0.0.1:%d;\n    root %s/srv/www;\n%s\n  }\n"
            "  server {\n    listen 127.0.0.1:%d;\n    location / { }\n  }"
            % (tree, port, tree, locs, port2))


def portier_http(tree, port, port2):
    return {"root": tree + "/http-root",
            "server": [server(port, with_tree(LOCATIONS, tree), root=tree + "/srv/www"),
                       server(port2, [location("/")])]}


# What is compared besides the status, by status; bodies only where they are the file's
# (error pages are each server's own).
CONTENT_HEADERS = ("Content-Type", "Content-Length", "Last-Modified", "ETag", "Accept-Ranges",
                   "Content-Range")


def shown(body):
    if len(body) <= 80:
        return body
    return "sha256:%s (%d bytes)" % (hashlib.sha256(body).hexdigest()[:16], len(body))


MULTIPART = "multipart/byteranges; boundary="


def outcome(r, port):
    """The parts of response <r> (from the server on <port>) that must be nginx's; a
    multipart answer's boundary (a counter in nginx, random in portier, both 20 characters)
    is replaced by BOUNDARY."""
    out = [("status", r.status)]
    if r.status in (200, 206):
        body, ctype = r.body, r.header("Content-Type") or ""
        if ctype.startswith(MULTIPART):
            boundary = ctype[len(MULTIPART):]
            body = body.replace(boundary.encode(), b"BOUNDARY")
        out += [(h, r.header(h).replace(ctype, MULTIPART + "BOUNDARY")
                 if h == "Content-Type" and ctype.startswith(MULTIPART) else r.header(h))
                for h in CONTENT_HEADERS] + [("body", shown(body))]
    elif r.status == 304:
        out += [(h, r.header(h)) for h in ("ETag", "Last-Modified")]
    elif r.status in (301, 302):
        loc = r.header("Location")
        out.append(("Location", loc and loc.replace(":%d/" % port, ":PORT/")))
    elif r.status == 416:
        out.append(("Content-Range", r.header("Content-Range")))
    return tuple(out)


def ask(port, method, target, headers=()):
    """<method> <target> (sent as given, byte for byte) on a fresh connection."""
    with harness.Client(port) as c:
        return c.request(method, target, headers=list(headers), host="localhost")


def req(method, target, status, *headers):
    """A request of a case table, with the status nginx answers it."""
    return (method, target, list(headers), status)


def said(method, target, headers):
    return "%s %s%s" % (method, target, "".join(" [%s: %s]" % h for h in headers))


def fields(answer):
    return ", ".join("%s=%r" % kv for kv in answer)


def distinct_ports(n, avoid=()):
    """<n> free ports, none twice and none in <avoid>."""
    ports = []
    while len(ports) < n:
        p = harness.free_port()
        if p not in ports and p not in avoid:
            ports.append(p)
    return ports


class StaticSideBySide(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tree = tempfile.mkdtemp(prefix="pt-it-static-")
        if not harness.KEEP_TMP:
            cls.addClassCleanup(shutil.rmtree, cls.tree, True)
        build_tree(cls.tree)
        cls.nports = distinct_ports(2)
        cls.nginx = nginx.Nginx(cls.nports[0], nginx_http(cls.tree, *cls.nports))
        cls.addClassCleanup(cls.nginx.stop)
        cls.pports = distinct_ports(2, avoid=cls.nports)
        cls.p = cls.class_portier(portier_http(cls.tree, *cls.pports))

    def assertLikeNginx(self, requests, srv=0):
        """Each of <requests> (req() tuples) on the server <srv> (0: the one with the
        locations, 1: the one with the http level's root): nginx answers the status the table
        says, portier answers what nginx answers.  Returns portier's answers as dicts."""
        nport, pport = self.nports[srv], self.pports[srv]
        wrong, diffs, got_all = [], [], []
        for method, target, headers, status in requests:
            want = outcome(ask(nport, method, target, headers), nport)
            try:
                got = outcome(ask(pport, method, target, headers), pport)
            except (harness.ProtocolError, OSError) as e:  # TimeoutError is an OSError
                got = (("error", repr(e)),)
            if want[0][1] != status:
                wrong.append("%s: nginx says %d, the table %d" % (
                    said(method, target, headers), want[0][1], status))
            if got != want:
                diffs.append("%s\n  portier: %s\n  nginx:   %s" % (
                    said(method, target, headers), fields(got), fields(want)))
            got_all.append(dict(got))
        self.assertEqual(wrong, [], "this test's table is wrong about nginx")
        if diffs:
            self.fail("%d of %d requests answered unlike nginx:\n%s"
                      % (len(diffs), len(requests), "\n".join(diffs)))
        return got_all

    # -- files

    def test_a_file_is_served_whole_with_its_type_length_and_validators(self):
        got, = self.assertLikeNginx([req("GET", "/hello.txt", 200)])
        self.assertEqual(got["body"], CONTENT[WWW + "hello.txt"])
        self.assertEqual(got["Content-Length"], str(len(CONTENT[WWW + "hello.txt"])))
        self.assertEqual(got["Accept-Ranges"], "bytes")

    def test_etag_is_the_mtime_and_size_in_hex(self):
        for name in ("hello.txt", "big.bin", "empty.txt"):
            with self.subTest(name=name):
                nginx_etag = ask(self.nports[0], "GET", "/" + name).header("ETag")
                self.assertEqual(nginx_etag, etag(WWW + name))
                got, = self.assertLikeNginx([req("GET", "/" + name, 200)])
                self.assertEqual(got["ETag"], etag(WWW + name))

    def test_last_modified_is_the_file_s_mtime(self):
        got, = self.assertLikeNginx([req("GET", "/hello.txt", 200)])
        self.assertEqual(got["Last-Modified"], last_modified(WWW + "hello.txt"))

    def test_common_extensions_take_their_type_from_the_default_table(self):
        # The extensions where nginx's mime.types and /etc/mime.types agree (.js does not:
        # application/javascript against text/javascript).
        types = {"/index.html": "text/html", "/style.css": "text/css",
                 "/data.json": "application/json", "/logo.png": "image/png",
                 "/photo.jpg": "image/jpeg", "/anim.gif": "image/gif",
                 "/hello.txt": "text/plain", "/icon.svg": "image/svg+xml"}
        got = self.assertLikeNginx([req("GET", t, 200) for t in types])
        self.assertEqual([g["Content-Type"] for g in got], list(types.values()))

    def test_an_upper_case_extension_has_the_lower_case_one_s_type(self):
        got, = self.assertLikeNginx([req("GET", "/LOUD.PNG", 200)])
        self.assertEqual(got["Content-Type"], "image/png")

    def test_an_extension_the_table_lacks_gets_default_type(self):
        got = self.assertLikeNginx([req("GET", "/notes.unknownext", 200),
                                    req("GET", "/.env", 200)])
        self.assertEqual([g["Content-Type"] for g in got], ["application/octet-stream"] * 2)

    def test_a_hidden_file_is_served_like_any_other(self):
        got, = self.assertLikeNginx([req("GET", "/.env", 200)])
        self.assertEqual(got["body"], CONTENT[WWW + ".env"])

    def test_an_empty_file_is_200_with_length_0(self):
        got, = self.assertLikeNginx([req("GET", "/empty.txt", 200)])
        self.assertEqual((got["Content-Length"], got["body"]), ("0", b""))

    def test_a_1mib_file_arrives_whole(self):
        got, = self.assertLikeNginx([req("GET", "/big.bin", 200)])
        self.assertEqual(got["body"], shown(CONTENT[WWW + "big.bin"]))

    def test_a_percent_encoded_name_with_spaces_and_utf8_is_found(self):
        got, = self.assertLikeNginx([req("GET", "/two%20words%20%C3%A9.txt", 200)])
        self.assertEqual(got["body"], b"spaces and UTF-8 in the name\n")

    def test_head_has_get_s_headers(self):
        self.assertLikeNginx([req("HEAD", "/hello.txt", 200), req("HEAD", "/big.bin", 200),
                              req("HEAD", "/", 200), req("HEAD", "/empty.txt", 200)])

    def test_head_sends_no_body_bytes(self):
        # A body after HEAD's head would be read as the next response's status line.
        for port in (self.nports[0], self.pports[0]):
            with self.subTest(server="nginx" if port == self.nports[0] else "portier"):
                with harness.Client(port) as c:
                    head = c.request("HEAD", "/big.bin")
                    after = c.request("GET", "/hello.txt")
                self.assertEqual(head.status, 200)
                self.assertEqual(head.header("Content-Length"), str(harness.MIB))
                self.assertEqual((after.status, after.body), (200, CONTENT[WWW + "hello.txt"]))

    def test_a_missing_file_is_404(self):
        self.assertLikeNginx([req("GET", "/nope.txt", 404), req("GET", "/docs/nope.html", 404),
                              req("HEAD", "/nope.txt", 404)])

    def test_a_file_named_with_a_trailing_slash_is_404(self):
        self.assertLikeNginx([req("GET", "/hello.txt/", 404)])

    def test_a_file_the_workers_cannot_read_is_403(self):
        self.assertLikeNginx([req("GET", "/secret.txt", 403)])

    # -- directories

    def test_a_directory_is_answered_by_its_index_html(self):
        got = self.assertLikeNginx([req("GET", "/", 200), req("GET", "/docs/", 200)])
        self.assertEqual(got[0]["body"], CONTENT[WWW + "index.html"])
        self.assertEqual(got[0]["ETag"], etag(WWW + "index.html"))
        self.assertEqual(got[1]["body"], CONTENT[WWW + "docs/index.html"])

    def test_index_tries_its_files_in_order(self):
        got = self.assertLikeNginx([req("GET", "/legacy/", 200), req("GET", "/legacy/both/", 200)])
        self.assertEqual(got[0]["body"], CONTENT[WWW + "legacy/default.htm"])
        self.assertEqual(got[0]["Content-Type"], "text/html")
        self.assertEqual(got[1]["body"], CONTENT[WWW + "legacy/both/index.html"])

    def test_a_directory_without_an_index_is_403(self):
        self.assertLikeNginx([req("GET", "/noindex/", 403)])

    def test_a_directory_without_its_slash_is_redirected_to_it(self):
        got = self.assertLikeNginx([req("GET", "/docs", 301), req("GET", "/docs?x=1&y", 301),
                                    req("GET", "/noindex", 301), req("HEAD", "/docs", 301)])
        self.assertEqual(got[0]["Location"], "http://localhost:PORT/docs/")
        self.assertEqual(got[1]["Location"], "http://localhost:PORT/docs/?x=1&y")

    # -- root and alias

    def test_root_in_a_location_replaces_the_server_s(self):
        got, = self.assertLikeNginx([req("GET", "/other/page.txt", 200)])
        self.assertEqual(got["body"], CONTENT["srv/alt/other/page.txt"])

    def test_root_at_the_http_level_serves_a_server_without_one(self):
        got = self.assertLikeNginx([req("GET", "/", 200), req("GET", "/only.txt", 200),
                                    req("GET", "/hello.txt", 404)], srv=1)
        self.assertEqual(got[0]["body"], CONTENT["http-root/index.html"])

    def test_alias_replaces_the_location_s_prefix(self):
        got = self.assertLikeNginx([req("GET", "/files/one.txt", 200), req("GET", "/files/", 200),
                                    req("GET", "/files/missing.txt", 404)])
        self.assertEqual(got[0]["body"], CONTENT["srv/aliased/one.txt"])
        self.assertEqual(got[1]["body"], CONTENT["srv/aliased/index.html"])

    def test_alias_in_a_regex_location_takes_the_capture(self):
        got = self.assertLikeNginx([req("GET", "/img/a.png", 200),
                                    req("GET", "/img/sub/b.gif", 200),
                                    req("GET", "/img/none.png", 404)])
        self.assertEqual(got[0]["body"], CONTENT["srv/pics/a.png"])
        self.assertEqual(got[1]["Content-Type"], "image/gif")

    # -- types and default_type

    def test_a_types_block_gives_its_extensions_their_type(self):
        types = {"/typed/page.html": "text/html", "/typed/page.htm": "text/html",
                 "/typed/sheet.css": "text/css", "/typed/script.js": "application/javascript",
                 "/typed/pic.png": "image/png"}
        got = self.assertLikeNginx([req("GET", t, 200) for t in types])
        self.assertEqual([g["Content-Type"] for g in got], list(types.values()))

    def test_a_types_block_replaces_the_default_table(self):
        got, = self.assertLikeNginx([req("GET", "/typed/photo.jpg", 200)])
        self.assertEqual(got["Content-Type"], "application/octet-stream")

    def test_default_type_covers_no_extension_and_an_unknown_one(self):
        got = self.assertLikeNginx([req("GET", "/typed/README", 200),
                                    req("GET", "/typed/data.xyz", 200)])
        self.assertEqual([g["Content-Type"] for g in got], ["application/octet-stream"] * 2)

    # -- try_files

    def test_try_files_serves_the_uri_when_it_exists(self):
        got = self.assertLikeNginx([req("GET", "/try/exists.txt", 200),
                                    req("GET", "/try404/exists.txt", 200),
                                    req("GET", "/tryfb/exists.txt", 200)])
        self.assertEqual(got[0]["body"], CONTENT[WWW + "try/exists.txt"])

    def test_try_files_uri_slash_redirects_a_directory_to_its_slash(self):
        # "$uri/" matches the directory, but the URI it leaves has no slash: the directory
        # redirect follows, as for a directory served without try_files.
        got = self.assertLikeNginx([req("GET", "/try/sub", 301), req("GET", "/try/bare", 301)])
        self.assertEqual(got[0]["Location"], "http://localhost:PORT/try/sub/")

    def test_try_files_uri_slash_serves_the_directory_s_index(self):
        got, = self.assertLikeNginx([req("GET", "/try/sub/", 200)])
        self.assertEqual(got["body"], CONTENT[WWW + "try/sub/index.html"])

    def test_try_files_uri_slash_on_a_directory_without_an_index_is_403(self):
        self.assertLikeNginx([req("GET", "/try/bare/", 403)])

    def test_try_files_falls_back_to_its_last_uri(self):
        got = self.assertLikeNginx([req("GET", "/try/missing.txt", 200),
                                    req("GET", "/try/missing/deeper?q=1", 200)])
        self.assertEqual([g["body"] for g in got], [CONTENT[WWW + "index.html"]] * 2)
        self.assertEqual(got[0]["ETag"], etag(WWW + "index.html"))

    def test_try_files_equals_404_ends_in_404(self):
        self.assertLikeNginx([req("GET", "/try404/missing.txt", 404)])

    def test_try_files_falls_back_to_a_named_location(self):
        got, = self.assertLikeNginx([req("GET", "/tryfb/missing.txt", 200)])
        self.assertEqual(got["body"], b"fallback\n")

    def test_an_spa_serves_its_assets_and_its_index_for_client_routes(self):
        got = self.assertLikeNginx([req("GET", "/app/app.css", 200),
                                    req("GET", "/app/users/42", 200),
                                    req("GET", "/app/", 200)])
        self.assertEqual(got[0]["body"], CONTENT[WWW + "app/app.css"])
        self.assertEqual(got[1]["body"], CONTENT[WWW + "app/index.html"])
        self.assertEqual(got[1]["Content-Type"], "text/html")

    # -- conditional requests (on /hello.txt)

    ETAG = etag(WWW + "hello.txt")
    DATE = last_modified(WWW + "hello.txt")
    EARLIER = http_date(MTIME[WWW + "hello.txt"] - 3600)
    LATER = http_date(MTIME[WWW + "hello.txt"] + 3600)
    RESIZED = '"%x-%x"' % (MTIME[WWW + "hello.txt"], len(CONTENT[WWW + "hello.txt"]) + 1)

    def test_if_none_match_with_the_etag_is_304_with_the_validators(self):
        got = self.assertLikeNginx([
            req("GET", "/hello.txt", 304, ("If-None-Match", self.ETAG)),
            req("GET", "/hello.txt", 304, ("If-None-Match", '"other", %s' % self.ETAG)),
            req("GET", "/hello.txt", 304, ("If-None-Match", "*")),
            req("HEAD", "/hello.txt", 304, ("If-None-Match", self.ETAG))])
        self.assertEqual(got[0], {"status": 304, "ETag": self.ETAG, "Last-Modified": self.DATE})

    def test_if_none_match_compares_weakly(self):
        self.assertLikeNginx([req("GET", "/hello.txt", 304, ("If-None-Match", "W/" + self.ETAG))])

    def test_if_none_match_with_another_etag_is_200(self):
        self.assertLikeNginx([req("GET", "/hello.txt", 200, ("If-None-Match", '"other"')),
                              req("GET", "/hello.txt", 200, ("If-None-Match", self.RESIZED))])

    def test_if_modified_since_the_exact_mtime_is_304(self):
        self.assertLikeNginx([req("GET", "/hello.txt", 304, ("If-Modified-Since", self.DATE))])

    def test_if_modified_since_another_date_is_200(self):
        # nginx's default "if_modified_since exact": a later date is not "not modified" either.
        self.assertLikeNginx([req("GET", "/hello.txt", 200, ("If-Modified-Since", self.EARLIER)),
                              req("GET", "/hello.txt", 200, ("If-Modified-Since", self.LATER))])

    def test_if_match_with_another_etag_is_412(self):
        self.assertLikeNginx([req("GET", "/hello.txt", 412, ("If-Match", '"other"'))])

    def test_if_match_with_the_etag_or_star_is_200(self):
        self.assertLikeNginx([req("GET", "/hello.txt", 200, ("If-Match", self.ETAG)),
                              req("GET", "/hello.txt", 200, ("If-Match", '"x", %s' % self.ETAG)),
                              req("GET", "/hello.txt", 200, ("If-Match", "*"))])

    def test_if_match_compares_strongly(self):
        self.assertLikeNginx([req("GET", "/hello.txt", 412, ("If-Match", "W/" + self.ETAG))])

    def test_if_unmodified_since_before_the_mtime_is_412(self):
        self.assertLikeNginx([req("GET", "/hello.txt", 412,
                                  ("If-Unmodified-Since", self.EARLIER))])

    def test_if_unmodified_since_the_mtime_or_later_is_200(self):
        self.assertLikeNginx([req("GET", "/hello.txt", 200, ("If-Unmodified-Since", self.DATE)),
                              req("GET", "/hello.txt", 200, ("If-Unmodified-Since", self.LATER))])

    # -- single byte ranges (on /hello.txt, 59 bytes, and /big.bin)

    def test_a_byte_range_is_206_with_its_content_range(self):
        text = CONTENT[WWW + "hello.txt"]
        got = self.assertLikeNginx([req("GET", "/hello.txt", 206, ("Range", "bytes=0-9")),
                                    req("GET", "/hello.txt", 206, ("Range", "bytes=-5")),
                                    req("GET", "/hello.txt", 206, ("Range", "bytes=10-")),
                                    req("GET", "/hello.txt", 206, ("Range", "bytes=5-5"))])
        self.assertEqual([g["body"] for g in got], [text[:10], text[-5:], text[10:], text[5:6]])
        self.assertEqual([g["Content-Range"] for g in got],
                         ["bytes 0-9/59", "bytes 54-58/59", "bytes 10-58/59", "bytes 5-5/59"])
        self.assertEqual(got[0]["Content-Length"], "10")

    def test_a_range_ending_past_the_end_is_cut_at_the_end(self):
        got, = self.assertLikeNginx([req("GET", "/hello.txt", 206, ("Range", "bytes=50-999"))])
        self.assertEqual(got["Content-Range"], "bytes 50-58/59")

    def test_a_range_of_a_large_file_is_its_bytes(self):
        big = CONTENT[WWW + "big.bin"]
        got, = self.assertLikeNginx([req("GET", "/big.bin", 206,
                                         ("Range", "bytes=524288-589823"))])
        self.assertEqual(got["body"], shown(big[524288:589824]))

    def test_a_range_starting_past_the_end_is_416_with_the_size(self):
        got = self.assertLikeNginx([req("GET", "/hello.txt", 416, ("Range", "bytes=1000-2000")),
                                    req("GET", "/hello.txt", 416, ("Range", "bytes=59-"))])
        self.assertEqual(got[0]["Content-Range"], "bytes */59")

    def test_a_bytes_range_that_does_not_parse_is_416(self):
        # Not ignored: nginx answers a bytes range it cannot parse, or one whose end is before
        # its start, as it answers one past the end.
        got = self.assertLikeNginx([req("GET", "/hello.txt", 416, ("Range", "bytes=abc")),
                                    req("GET", "/hello.txt", 416, ("Range", "bytes=5-2"))])
        self.assertEqual(got[0]["Content-Range"], "bytes */59")

    # -- expires

    def expiry(self, port, target, headers=()):
        r = ask(port, "GET", target, headers)
        return r.status, r.header("Cache-Control"), r.header("Expires")

    def test_expires_sets_cache_control_and_expires_as_nginx(self):
        # Expires is compared where it does not depend on the second the answer is made.
        cases = [("/expmax/hello.txt", True), ("/expepoch/hello.txt", True),
                 ("/exp1h/hello.txt", False), ("/expneg/hello.txt", False),
                 ("/expmod/hello.txt", True), ("/expoff/hello.txt", True)]
        for target, whole in cases:
            with self.subTest(target):
                want = self.expiry(self.nports[0], target)
                got = self.expiry(self.pports[0], target)
                self.assertEqual(got if whole else got[:2], want if whole else want[:2])
        self.assertEqual(self.expiry(self.pports[0], "/exp1h/hello.txt")[1], "max-age=5400")

    def test_expires_goes_on_a_304_too(self):
        target = "/expmax/hello.txt"
        want = self.expiry(self.nports[0], target, [("If-None-Match", self.ETAG)])
        self.assertEqual(want[0], 304)
        self.assertEqual(self.expiry(self.pports[0], target, [("If-None-Match", self.ETAG)]),
                         want)

    # -- gzip_static

    def encoded(self, port, target, headers=()):
        r = ask(port, "GET", target, headers)
        return (r.status, r.header("Content-Encoding"), r.header("Content-Type"),
                r.header("Content-Length"), r.header("ETag"), r.header("Last-Modified"),
                r.header("Accept-Ranges"), hashlib.sha256(r.body).hexdigest())

    def test_gzip_static_sends_the_gz_file_to_clients_that_take_gzip(self):
        cases = [("/gz/site.css", [("Accept-Encoding", "gzip, deflate, br")]),
                 ("/gz/site.css", [("Accept-Encoding", "br;q=1, GZIP;q=0.5")]),
                 ("/gz/site.css", [("Accept-Encoding", "gzip;q=0")]),
                 ("/gz/site.css", [("Accept-Encoding", "*")]),
                 ("/gz/site.css", []),
                 ("/gz/site.css", [("Accept-Encoding", "gzip"), ("Via", "1.1 cache")]),
                 ("/gz/site.css", [("Accept-Encoding", "gzip"), ("Range", "bytes=0-9")]),
                 ("/gz/only-plain.css", [("Accept-Encoding", "gzip")]),
                 ("/gzalways/site.css", []),
                 ("/gzalways/only-plain.css", [])]
        for target, headers in cases:
            with self.subTest(target=target, headers=headers):
                want = self.encoded(self.nports[0], target, headers)
                self.assertEqual(self.encoded(self.pports[0], target, headers), want)
        got = self.encoded(self.pports[0], "/gz/site.css", [("Accept-Encoding", "gzip")])
        self.assertEqual(got[:3], (200, "gzip", "text/css"))
        self.assertEqual(got[4], etag(WWW + "gz/site.css.gz"))

    # -- several ranges: multipart/byteranges

    def test_several_ranges_are_one_multipart_answer(self):
        text = CONTENT[WWW + "hello.txt"]
        got = self.assertLikeNginx([req("GET", "/hello.txt", 206, ("Range", "bytes=0-4,10-14")),
                                    req("GET", "/hello.txt", 206, ("Range", "bytes=0-4, -5")),
                                    req("GET", "/hello.txt", 206, ("Range", "bytes=0-9,5-14"))])
        self.assertEqual(got[0]["Content-Type"], MULTIPART + "BOUNDARY")
        self.assertEqual(got[0]["body"], shown(
            b"\r\n--BOUNDARY\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-4/59\r\n\r\n"
            + text[0:5] + b"\r\n--BOUNDARY\r\nContent-Type: text/plain\r\n"
            b"Content-Range: bytes 10-14/59\r\n\r\n" + text[10:15] + b"\r\n--BOUNDARY--\r\n"))

    def test_ranges_asking_more_than_the_file_get_it_whole(self):
        self.assertLikeNginx([req("GET", "/hello.txt", 200, ("Range", "bytes=0-50,10-58"))])

    def test_of_several_ranges_one_satisfiable_is_a_single_part(self):
        got, = self.assertLikeNginx([req("GET", "/hello.txt", 206,
                                         ("Range", "bytes=0-4,1000-2000"))])
        self.assertEqual(got["Content-Range"], "bytes 0-4/59")

    def test_a_range_in_another_unit_is_ignored(self):
        got, = self.assertLikeNginx([req("GET", "/hello.txt", 200, ("Range", "lines=0-9"))])
        self.assertEqual(got["body"], CONTENT[WWW + "hello.txt"])

    def test_if_range_with_the_etag_gives_the_range(self):
        self.assertLikeNginx([req("GET", "/hello.txt", 206, ("Range", "bytes=0-9"),
                                  ("If-Range", self.ETAG))])

    def test_if_range_with_another_etag_gives_the_whole_file(self):
        self.assertLikeNginx([req("GET", "/hello.txt", 200, ("Range", "bytes=0-9"),
                                  ("If-Range", '"other"'))])

    def test_if_range_with_a_weak_etag_gives_the_whole_file(self):
        self.assertLikeNginx([req("GET", "/hello.txt", 200, ("Range", "bytes=0-9"),
                                  ("If-Range", "W/" + self.ETAG))])

    def test_if_range_with_the_last_modified_date_gives_the_range(self):
        self.assertLikeNginx([req("GET", "/hello.txt", 206, ("Range", "bytes=0-9"),
                                  ("If-Range", self.DATE))])

    def test_if_range_with_another_date_gives_the_whole_file(self):
        self.assertLikeNginx([req("GET", "/hello.txt", 200, ("Range", "bytes=0-9"),
                                  ("If-Range", self.EARLIER))])

    # -- paths that try to leave the root

    TRAVERSALS = ["/../etc/passwd", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                  "/a/..%2f..%2fetc/passwd", "/%252e%252e/etc/passwd", "/..%5c..%5cetc/passwd",
                  "/a\\..\\..\\etc/passwd", "/%00", "/file%00.txt",
                  "/%c0%ae%c0%ae/etc/passwd"]

    def test_paths_that_leave_the_root_serve_nothing_outside_it(self):
        # portier's normalizer may refuse where nginx answers 404, so the statuses need not
        # be nginx's: only that nothing from above the root (the decoy passwd files, or the
        # system's) nor a file cut at a %00 comes out, and that portier refuses.
        leaks, statuses = [], []
        for target in self.TRAVERSALS:
            n = ask(self.nports[0], "GET", target)
            try:
                p = ask(self.pports[0], "GET", target)
            except (harness.ProtocolError, OSError) as e:
                statuses.append("%s: portier %r (nginx %d)" % (target, e, n.status))
                continue
            for who, r in (("portier", p), ("nginx", n)):
                if b"root:" in r.body or NUL_BAIT in r.body:
                    leaks.append("%s: %s answered %d %r" % (target, who, r.status, r.body[:80]))
            if p.status not in (400, 403, 404):
                statuses.append("%s: portier %d (nginx %d)" % (target, p.status, n.status))
        self.assertEqual(leaks, [])
        self.assertEqual(statuses, [], "portier must refuse with 400, 403 or 404")


if __name__ == "__main__":
    harness.main()
