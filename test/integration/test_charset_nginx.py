"""
The charset module against nginx: the same charset, charset_types, override_charset and
source_charset lines in Debian's nginx and in portier, over files served from one tree and
answers proxied from one origin, and for each request the status and the Content-Type
compared.  Covers files of listed and unlisted types, charset_types with a type and with "*",
charset off in a location under a server that sets it, a charset from a variable, generated
pages (404, a redirect's: none on 301 and 302), a 304, proxied answers with no Content-Type,
with a charset of their own (left alone, or renamed with override_charset when it is the same
charset, left and logged when it is another), with parameters, with error and bodiless
statuses, and the configurations portier refuses because they would recode.

nginx answers some of these otherwise than one might expect, and the tests pin what it does:
charset_types always keeps text/html; a proxied type with a parameter ("text/html; q=1") is
not text/html; a 204 or 304 from the origin keeps its type and gets the charset; override
drops the quotes and the case of the origin's name ("UTF-8" -> "utf-8") and, on a 301, the
charset altogether.
"""

import os
import re
import shutil
import tempfile

import harness
import nginx
from cachebackend import CacheBackend
from harness import location, server

FILES = {"page.html": b"<p>page</p>\n", "notes.txt": b"notes\n", "style.css": b"p {}\n",
         "data.unknownext": b"an extension no table knows\n"}

# What the origin answers each path with: (status, Content-Type or None, more fields).
ORIGIN = {
    "/html": (200, "text/html", []),
    "/none": (200, None, []),
    "/json": (200, "application/json", []),
    "/upper": (200, "TEXT/HTML", []),
    "/param": (200, "text/html; q=1", []),
    "/koi8": (200, "text/html; charset=koi8-r", []),
    "/koi8-tight": (200, "text/html;charset=koi8-r", []),
    "/UTF8": (200, "text/html; charset=UTF-8", []),
    "/quoted": (200, 'text/html; charset="utf-8"', []),
    "/css-utf8": (200, "text/css; charset=utf-8", []),
    "/gz-koi8": (200, "text/html; charset=koi8-r", [("Content-Encoding", "gzip")]),
    "/201": (201, "text/html", []),
    "/204": (204, "text/html", []),
    "/304": (304, "text/html", []),
    "/301": (301, "text/html", [("Location", "/elsewhere")]),
    "/301-utf8": (301, "text/html; charset=UTF-8", [("Location", "/elsewhere")]),
    "/302": (302, "text/html", [("Location", "/elsewhere")]),
    "/303": (303, "text/html", [("Location", "/elsewhere")]),
    "/404": (404, "text/html", []),
    "/500": (500, "text/html", []),
}

# (nginx location, portier location); {TREE} is the files' directory, {ORIGIN} the origin.
# The server sets charset utf-8; each location adds or takes away.
CASES = [
    ("location / { }", location("/")),
    ("location /off/ { charset off; alias {TREE}/; }",
     location("/off/", charset="off", alias="{TREE}/")),
    ("location /css/ { charset_types text/css; alias {TREE}/; }",
     location("/css/", charset_types=["text/css"], alias="{TREE}/")),
    ("location /all/ { charset_types *; alias {TREE}/; }",
     location("/all/", charset_types="*", alias="{TREE}/")),
    ("location /koi/ { charset koi8-r; alias {TREE}/; }",
     location("/koi/", charset="koi8-r", alias="{TREE}/")),
    ("location /var/ { charset $cs; alias {TREE}/; }",
     location("/var/", charset="$cs", alias="{TREE}/")),
    ("location /src/ { source_charset utf-8; alias {TREE}/; }",
     location("/src/", source_charset="utf-8", alias="{TREE}/")),
    ("location /srcvar/ { source_charset $cs; alias {TREE}/; }",
     location("/srcvar/", source_charset="$cs", alias="{TREE}/")),
    ("location /r301/ { return 301 /x; }", location("/r301/", ret="301 /x")),
    ("location /r302/ { return 302 /x; }", location("/r302/", ret="302 /x")),
    ("location /r303/ { return 303 /x; }", location("/r303/", ret="303 /x")),
    ("location /r307/ { return 307 /x; }", location("/r307/", ret="307 /x")),
    ("location /r404/ { return 404; }", location("/r404/", ret="404")),
    ("location /ep/ { error_page 404 /page.html; }",
     location("/ep/", error_page=["404 /page.html"])),
    ("location /p/ { proxy_pass http://{ORIGIN}/; }",
     location("/p/", proxy_pass="http://{ORIGIN}/")),
    ("location /po/ { override_charset on; proxy_pass http://{ORIGIN}/; }",
     location("/po/", override_charset=True, proxy_pass="http://{ORIGIN}/")),
    ("location /pokoi/ { override_charset on; charset koi8-r; proxy_pass http://{ORIGIN}/; }",
     location("/pokoi/", override_charset=True, charset="koi8-r",
              proxy_pass="http://{ORIGIN}/")),
    ("location /pall/ { charset_types *; proxy_pass http://{ORIGIN}/; }",
     location("/pall/", charset_types="*", proxy_pass="http://{ORIGIN}/")),
    ("location /poff/ { charset off; proxy_pass http://{ORIGIN}/; }",
     location("/poff/", charset="off", proxy_pass="http://{ORIGIN}/")),
]

# $cs: utf-8, or what ?cs= asks for ("latin": ISO-8859-1, "empty": nothing).
NGINX_MAP = 'map $arg_cs $cs { default utf-8; latin ISO-8859-1; empty ""; }'
PORTIER_MAP = {"source": "$arg_cs", "variable": "$cs",
               "entries": ["default utf-8", "latin ISO-8859-1", 'empty ""']}


def filled(value, tree, origin):
    if isinstance(value, str):
        return value.replace("{TREE}", tree).replace("{ORIGIN}", origin)
    if isinstance(value, list):
        return [filled(v, tree, origin) for v in value]
    if isinstance(value, dict):
        return {k: filled(v, tree, origin) for k, v in value.items()}
    return value


def nginx_http(port, tree, origin):
    locs = "\n".join("    " + filled(c[0], tree, origin) for c in CASES)
    return ("  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n"
            "  %s\n  server {\n    listen 127.0.0.1:%d;\n    root %s;\n    charset utf-8;\n%s\n"
            "  }" % (NGINX_MAP, port, tree, locs))


def portier_http(port, tree, origin):
    locs = [filled(c[1], tree, origin) for c in CASES]
    return {"default_type": "application/octet-stream", "map": [PORTIER_MAP],
            "server": [server(port, locs, root=tree, charset="utf-8")]}


def content_type(port, target, method="GET", headers=()):
    with harness.Client(port) as c:
        r = c.request(method, target, headers=list(headers), host="localhost")
    return r.status, r.header("Content-Type")


class CharsetSideBySide(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tree = tempfile.mkdtemp(prefix="pt-it-charset-")
        if not harness.KEEP_TMP:
            cls.addClassCleanup(shutil.rmtree, cls.tree, True)
        os.chmod(cls.tree, 0o755)
        for name, data in FILES.items():
            path = os.path.join(cls.tree, name)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, 0o644)
        cls.origin = CacheBackend()
        cls.addClassCleanup(cls.origin.stop)
        for path, (status, ctype, more) in ORIGIN.items():
            fields = ([("Content-Type", ctype)] if ctype is not None else []) + more
            cls.origin.route(path, status=status, headers=fields,
                             body=b"" if status in (204, 304) else b"origin\n")
        cls.nport = harness.free_port()
        cls.nginx = nginx.Nginx(cls.nport, nginx_http(cls.nport, cls.tree, cls.origin.addr))
        cls.addClassCleanup(cls.nginx.stop)
        cls.pport = harness.free_port()
        while cls.pport == cls.nport:
            cls.pport = harness.free_port()
        cls.p = cls.class_portier(portier_http(cls.pport, cls.tree, cls.origin.addr))

    def assertLikeNginx(self, want, *targets, method="GET", headers=()):
        """Each of <targets> has the status and Content-Type nginx answers, which are
        <want> (a (status, Content-Type) pair, or a list of them, one per target)."""
        wants = want if isinstance(want, list) else [want] * len(targets)
        for target, expected in zip(targets, wants):
            with self.subTest(target=target):
                theirs = content_type(self.nport, target, method, headers)
                self.assertEqual(theirs, expected, "nginx is not what this test says")
                self.assertEqual(content_type(self.pport, target, method, headers), theirs)

    # -- files

    def test_a_file_of_a_listed_type_gets_the_charset(self):
        self.assertLikeNginx([(200, "text/html; charset=utf-8"),
                              (200, "text/plain; charset=utf-8")], "/page.html", "/notes.txt")

    def test_a_file_of_an_unlisted_type_does_not(self):
        self.assertLikeNginx([(200, "text/css"), (200, "application/octet-stream")],
                             "/style.css", "/data.unknownext")

    def test_head_gets_the_charset_too(self):
        self.assertLikeNginx((200, "text/html; charset=utf-8"), "/page.html", method="HEAD")

    def test_a_304_has_no_type_to_take_it(self):
        with harness.Client(self.pport) as c:
            etag = c.request("GET", "/page.html").header("ETag")
        self.assertLikeNginx((304, None), "/page.html", headers=[("If-None-Match", etag)])

    def several_ranges(self, port, target):
        with harness.Client(port) as c:
            r = c.request("GET", target, headers=[("Range", "bytes=0-1,3-4")], host="localhost")
        m = re.search(r"boundary=([^;]+)", r.header("Content-Type") or "")
        same = (lambda s: s.replace(m.group(1), "B")) if m else (lambda s: s)
        return r.status, same(r.header("Content-Type")), same(r.body.decode())

    def test_several_ranges_name_the_charset_in_each_part_not_in_multipart(self):
        # The static module applies ranges after the header filters (last_header_filter),
        # as nginx's range filter runs after its charset filter.
        for target in ("/page.html", "/all/page.html"):
            with self.subTest(target=target):
                want = self.several_ranges(self.nport, target)
                self.assertIn("Content-Type: text/html; charset=utf-8", want[2])
                self.assertEqual(want[1], "multipart/byteranges; boundary=B")
                self.assertEqual(self.several_ranges(self.pport, target), want)

    def test_charset_off_in_a_location_takes_the_server_s_away(self):
        self.assertLikeNginx((200, "text/html"), "/off/page.html")

    def test_charset_types_adds_to_text_html_alone(self):
        # The defaults go, text/html stays: text/plain is no longer listed.
        self.assertLikeNginx([(200, "text/css; charset=utf-8"), (200, "text/html; charset=utf-8"),
                              (200, "text/plain")],
                             "/css/style.css", "/css/page.html", "/css/notes.txt")

    def test_charset_types_star_is_every_type(self):
        self.assertLikeNginx([(200, "application/octet-stream; charset=utf-8"),
                              (200, "text/css; charset=utf-8")],
                             "/all/data.unknownext", "/all/style.css")

    def test_another_name_is_sent_as_written(self):
        self.assertLikeNginx((200, "text/html; charset=koi8-r"), "/koi/page.html")

    def test_a_charset_from_a_variable(self):
        self.assertLikeNginx([(200, "text/html; charset=utf-8"),
                              (200, "text/html; charset=ISO-8859-1"), (200, "text/html")],
                             "/var/page.html", "/var/page.html?cs=latin",
                             "/var/page.html?cs=empty")

    def test_source_charset_the_same_as_charset_changes_nothing(self):
        self.assertLikeNginx((200, "text/html; charset=utf-8"), "/src/page.html")

    def test_a_source_charset_from_a_variable_naming_another_leaves_the_type(self):
        # nginx would recode, finds no charset_map, logs so and sends the type as it is.
        self.assertLikeNginx([(200, "text/html; charset=utf-8"), (200, "text/html")],
                             "/srcvar/page.html", "/srcvar/page.html?cs=latin")
        self.assertIn('no "charset_map" between the charsets "ISO-8859-1" and "utf-8"',
                      harness.read_file(self.p.error_log, "rb").decode())

    # -- generated pages

    def test_error_pages_get_the_charset(self):
        self.assertLikeNginx((404, "text/html; charset=utf-8"), "/missing.html", "/r404/",
                             "/ep/missing")

    def test_a_301_or_302_does_not_and_other_redirects_do(self):
        self.assertLikeNginx([(301, "text/html"), (302, "text/html"),
                              (303, "text/html; charset=utf-8"),
                              (307, "text/html; charset=utf-8")],
                             "/r301/", "/r302/", "/r303/", "/r307/")

    # -- proxied answers

    def test_a_proxied_answer_of_a_listed_type_gets_the_charset(self):
        self.assertLikeNginx([(200, "text/html; charset=utf-8"), (200, "TEXT/HTML; charset=utf-8"),
                              (200, "application/json")], "/p/html", "/p/upper", "/p/json")

    def test_a_proxied_answer_without_a_type_gets_none(self):
        self.assertLikeNginx((200, None), "/p/none", "/pall/none")

    def test_a_type_with_a_parameter_is_not_the_type(self):
        self.assertLikeNginx((200, "text/html; q=1"), "/p/param")

    def test_a_proxied_charset_is_left_alone(self):
        self.assertLikeNginx([(200, "text/html; charset=koi8-r"), (200, "text/html; charset=UTF-8")],
                             "/p/koi8", "/p/UTF8")

    def test_every_status_but_301_and_302_gets_the_charset(self):
        self.assertLikeNginx([(201, "text/html; charset=utf-8"), (204, "text/html; charset=utf-8"),
                              (304, "text/html; charset=utf-8"), (301, "text/html"),
                              (302, "text/html"), (303, "text/html; charset=utf-8"),
                              (404, "text/html; charset=utf-8"), (500, "text/html; charset=utf-8")],
                             "/p/201", "/p/204", "/p/304", "/p/301", "/p/302", "/p/303", "/p/404",
                             "/p/500")

    def test_charset_types_star_takes_any_proxied_type(self):
        self.assertLikeNginx([(200, "application/json; charset=utf-8"),
                              (200, "text/html; q=1; charset=utf-8")], "/pall/json", "/pall/param")

    def test_charset_off_leaves_proxied_answers_alone(self):
        self.assertLikeNginx((200, "text/html"), "/poff/html")

    def test_override_renames_the_same_charset_as_charset_writes_it(self):
        self.assertLikeNginx([(200, "text/html; charset=utf-8"), (200, "text/html; charset=utf-8"),
                              (200, "text/css; charset=utf-8"), (301, "text/html"),
                              (200, "text/html; charset=utf-8")],
                             "/po/UTF8", "/po/quoted", "/po/css-utf8", "/po/301-utf8", "/po/html")
        self.assertLikeNginx((200, "text/html; charset=koi8-r"), "/pokoi/koi8")

    def test_override_leaves_another_charset_and_logs_that_it_cannot_recode(self):
        self.assertLikeNginx([(200, "text/html; charset=koi8-r"), (200, "text/html;charset=koi8-r"),
                              (200, "text/html; charset=UTF-8")],
                             "/po/koi8", "/po/koi8-tight", "/pokoi/UTF8")
        log = harness.read_file(self.p.error_log, "rb").decode()
        self.assertIn('no "charset_map" between the charsets "koi8-r" and "utf-8"', log)
        self.assertIn('no "charset_map" between the charsets "UTF-8" and "koi8-r"', log)

    def test_override_leaves_an_encoded_body_s_charset_alone(self):
        self.assertLikeNginx((200, "text/html; charset=koi8-r"), "/po/gz-koi8")


class CharsetRefused(harness.TestCase):
    """What nginx would recode is refused by -t with the line that asks for it."""

    def minus_t(self, http, loc=""):
        """`portier -t` of a server with <http> at the http level (line 2) and <loc> in its
        location (line 4)."""
        p = harness.Portier(text="", start=False)
        self.addCleanup(p.cleanup)
        p.write_config(text='pid = "%s"; error_log = "%s";\nhttp = { access_log = "off"; %s\n'
                       '  server = ( { listen = [ "127.0.0.1:%d" ];\n'
                       '    location = ( { path = "/"; %s } ); } );\n};\n'
                       % (p.pid_path, p.error_log, http, harness.free_port(), loc))
        res = p.run("-t", "-c", p.conf_path)
        return res.returncode, res.stderr.decode()

    def check(self, http, loc, *needles):
        status, err = self.minus_t(http, loc)
        self.assertNotEqual(status, 0, err)
        for needle in needles:
            self.assertIn(needle, err)

    def test_a_source_charset_other_than_charset_is_refused(self):
        self.check('charset = "utf-8";', 'source_charset = "koi8-r";',
                   'portier.conf:4: "source_charset koi8-r" with "charset utf-8" would recode',
                   "does not support")

    def test_an_inherited_source_charset_against_a_location_s_charset_is_refused(self):
        self.check('source_charset = "utf-8";', 'charset = "koi8-r";',
                   'portier.conf:2: "source_charset utf-8" with "charset koi8-r" would recode')

    def test_charset_map_is_refused(self):
        self.check('charset_map = { koi8 = "x"; };', "",
                   'portier.conf:2: "charset_map" is not supported: portier does not recode')

    def test_the_same_charset_in_another_case_is_accepted(self):
        status, err = self.minus_t('charset = "utf-8";', 'source_charset = "UTF-8";')
        self.assertEqual(status, 0, err)


if __name__ == "__main__":
    harness.main()
