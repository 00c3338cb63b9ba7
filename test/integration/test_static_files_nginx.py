"""
How the static module opens and sends files, against Debian's nginx where nginx defines it:
the same tree and the same locations (nginx's written from portier's, as test_static_nginx
does) in both, and for each request the status, the body and the headers a client acts on
compared.

- disable_symlinks: off, on (a link as the last component 403, a link among the directories
  404), if_not_owner (a link followed only where it and what it names have one owner: needs
  root, to give a file to nobody) and from=$document_root (the root reached through a link);
  a linked index file and a linked try_files candidate under "on".
- open_file_cache: a removed or replaced file served as it was until open_file_cache_valid
  passes, open_file_cache_errors on and off, and the descriptors each worker keeps (max=2,
  inactive=, min_uses=2, none for a directory, a file pushed out while it is sent), read in
  /proc/<worker>/fd of both servers' workers.
- brotli_static (ngx_brotli's, Debian's libnginx-mod-http-brotli-static, loaded by the nginx
  these tests start): on, always, off, q=0 (and how ngx_brotli reads odd q values, which is
  not how nginx reads them for gzip_static), br before gzip_static, HEAD, a Range (ignored on
  the .br file), HTTP/1.0 and Via, a 304, and the .br file's own validators.
- sendfile: a 5 MiB file whole with sendfile on and off and over TLS (read and encrypted: this
  kernel has no TLS ULP), a range deep in it, several ranges over TLS, a gzip-compressed
  static file, HEAD, and the edges: send_timeout against a client that stops reading (and not
  against one that reads slowly), two 30 MiB downloads side by side with sendfile_max_chunk,
  and a file truncated while it is sent.  With the waf on, a static file goes through its
  response body rules (portier only: nginx-light has no ModSecurity).

nginx's open_file_cache counts whole seconds (ngx_time()), portier milliseconds: the waits
below are long enough for both, and the checks before them short enough for both.
"""

import gzip
import hashlib
import os
import random
import shutil
import socket
import ssl
import tempfile
import threading
import time

import harness
import nginx
import test_static_nginx as static_nginx
from harness import MIB, location, server
from test_backpressure_timers import read_head
from test_ssl import TLSClient, tls_context, tls_server
from test_ssl_sessions import make_cert

BROTLI_STATIC_SO = "/usr/lib/nginx/modules/ngx_http_brotli_static_module.so"
NOBODY = 65534
T0 = 1700000000  # every file's mtime is a fixed time after it
SMALL_RCVBUF = 16 * 1024  # a client that stops reading: the server's writes block soon
TLS_RCVBUF = 256 * 1024  # ... over TLS, where a 16 KiB record must fit in the window
BIG = random.Random(5).randbytes(5 * MIB)
HUGE = random.Random(30).randbytes(30 * MIB)
TEXT = b"".join(b"line %07d of a compressible static text file\n" % i for i in range(48000))
STUCK_SIZE = 50 * MIB


def write(path, data, mtime=None):
    """Writes <data> at <path> (its directories made), world-readable, with <mtime>."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def etag_of(path):
    """nginx's ETag of the file at <path>: its mtime and size in hex."""
    st = os.stat(path)
    return '"%x-%x"' % (int(st.st_mtime), st.st_size)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def ask(port, method, target, headers=(), version="HTTP/1.1", tls=False):
    """<method> <target> on a fresh connection (TLS when <tls>)."""
    with (TLSClient(port) if tls else harness.Client(port, 30.0)) as c:
        return c.request(method, target, headers=list(headers), host="localhost",
                         version=version)


def slow_client(port, tls=False):
    """A connected socket (TLS when <tls>) with a small receive buffer, so that the
    server's writes block soon once it stops reading."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TLS_RCVBUF if tls else SMALL_RCVBUF)
    s.settimeout(10)
    s.connect((harness.LOCALHOST, port))
    return tls_context().wrap_socket(s) if tls else s


def drain(s, deadline, limit=None):
    """What <s> receives until the server ends the connection (EOF, a reset, a TLS
    connection cut without close_notify), <limit> bytes came, or <deadline>."""
    out = bytearray()
    while time.monotonic() < deadline and (limit is None or len(out) < limit):
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = s.recv(1 << 20 if limit is None else min(1 << 20, limit - len(out)))
        except (ConnectionResetError, ssl.SSLError):
            break
        except socket.timeout:
            continue
        if not data:
            break
        out += data
    return bytes(out)


def multipart(boundary, ctype, data, ranges):
    """nginx's multipart/byteranges body of <data> for <ranges> ((first, last) pairs)."""
    out = b""
    for first, last in ranges:
        out += b"\r\n--%s\r\nContent-Type: %s\r\nContent-Range: bytes %d-%d/%d\r\n\r\n" % (
            boundary, ctype, first, last, len(data)) + data[first:last + 1]
    return out + b"\r\n--%s--\r\n" % boundary


def open_files(pid, directory):
    """The names of the files under <directory> that process <pid> holds open (sorted; a
    removed one keeps its name, without " (deleted)")."""
    names = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith(directory + "/"):
            names.append(link[len(directory) + 1:].replace(" (deleted)", ""))
    return sorted(names)


def settled(probe, want, timeout=2.0):
    """<probe>() once it returns <want> (a worker closes a request's files just after its
    last byte went), or what it returns after <timeout>."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


class SideBySide(harness.TestCase):
    """nginx and portier on one description: SERVERS (each a list of portier's locations,
    nginx's written from them), the indexes in TLS of those that listen with ssl, HTTP the
    http level's directives of both, MODULES the .so files nginx loads.  Each server's root
    is {TREE}/www; build() writes the tree."""

    SERVERS = []
    TLS = ()
    HTTP = {}
    MODULES = ()
    assertLikeNginx = static_nginx.StaticSideBySide.assertLikeNginx

    @classmethod
    def build(cls, tree):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.tree = tempfile.mkdtemp(prefix="pt-it-static-files-")
        if not harness.KEEP_TMP:
            cls.addClassCleanup(shutil.rmtree, cls.tree, True)
        cls.www = os.path.join(cls.tree, "www")
        cls.build(cls.tree)
        for d, _, _ in os.walk(cls.tree):
            os.chmod(d, 0o755)
        cls.cert = make_cert(cls.tree, "localhost") if cls.TLS else None
        n = len(cls.SERVERS)
        cls.nports = static_nginx.distinct_ports(n)
        cls.pports = static_nginx.distinct_ports(n, avoid=cls.nports)
        cls.nginx = nginx.Nginx(cls.nports[0], cls.nginx_http(), main="".join(
            "load_module %s;\n" % so for so in cls.MODULES))
        cls.addClassCleanup(cls.nginx.stop)
        cls.p = cls.class_portier(cls.portier_http())

    @classmethod
    def nginx_http(cls):
        text = "  include /etc/nginx/mime.types;\n"
        text += "".join("  %s %s;\n" % kv for kv in cls.HTTP.items())
        for i, locs in enumerate(cls.SERVERS):
            tls = ""
            if i in cls.TLS:
                tls = " ssl;\n    ssl_certificate %s;\n    ssl_certificate_key %s" % cls.cert
            text += "  server {\n    listen 127.0.0.1:%d%s;\n    root %s;\n%s\n  }\n" % (
                cls.nports[i], tls, cls.www, "\n".join(
                    "    " + static_nginx.nginx_location(static_nginx.with_tree(loc, cls.tree))
                    for loc in locs))
        return text

    @classmethod
    def portier_http(cls):
        servers = []
        for i, locs in enumerate(cls.SERVERS):
            locs = static_nginx.with_tree(locs, cls.tree)
            if i in cls.TLS:
                servers.append(tls_server(cls.pports[i], None, locs, root=cls.www,
                                          ssl_certificate=cls.cert[0],
                                          ssl_certificate_key=cls.cert[1]))
            else:
                servers.append(server(cls.pports[i], locs, root=cls.www))
        return dict(cls.HTTP, server=servers)

    def nginx_worker(self):
        workers = harness.children(self.nginx.proc.pid)
        self.assertEqual(len(workers), 1, "nginx's workers: %r" % workers)
        return workers[0]

    def both(self, method, target, headers=(), srv=0, **kw):
        """The answers of nginx and of portier, in that order."""
        return (ask(self.nports[srv], method, target, headers, **kw),
                ask(self.pports[srv], method, target, headers, **kw))


req = static_nginx.req
outcome = static_nginx.outcome


# --------------------------------------------------------------------------
# disable_symlinks

def link_set(top):
    """In <top>: real.txt and link.txt (a link to it), realdir/ and linkdir (a link to it),
    page.html and idxlink/ whose index.html is a link to it, fallback.txt, and
    dangling.txt (a link to nothing)."""
    write(os.path.join(top, "real.txt"), b"the real file in %s\n" % os.path.basename(top).encode())
    os.symlink("real.txt", os.path.join(top, "link.txt"))
    write(os.path.join(top, "realdir/inside.txt"), b"inside the real directory\n")
    os.symlink("realdir", os.path.join(top, "linkdir"))
    write(os.path.join(top, "page.html"), b"<title>page</title>the linked index\n")
    os.makedirs(os.path.join(top, "idxlink"))
    os.symlink("../page.html", os.path.join(top, "idxlink/index.html"))
    write(os.path.join(top, "fallback.txt"), b"try_files' fallback\n")
    os.symlink("nowhere.txt", os.path.join(top, "dangling.txt"))


class DisableSymlinks(SideBySide):
    """disable_symlinks as nginx's: with "on" every component is opened without following
    a link (O_NOFOLLOW), so a link as the file is refused (ELOOP: 403) and a link among the
    directories is no directory (ENOTDIR: 404)."""

    SERVERS = [[
        location("/off/", disable_symlinks="off"),
        location("/on/", disable_symlinks="on"),
        location("/tryon/", disable_symlinks="on", try_files="$uri /tryon/fallback.txt"),
        location("/owner/", disable_symlinks="if_not_owner"),
        # {TREE}/linkedroot is a link to {TREE}/www: from= leaves it unchecked.
        location("/fromlit/", root="{TREE}/linkedroot",
                 disable_symlinks="on from={TREE}/linkedroot"),
        location("/nofrom/", root="{TREE}/linkedroot", disable_symlinks="on"),
    ]]

    @classmethod
    def build(cls, tree):
        www = os.path.join(tree, "www")
        for d in ("off", "on", "tryon", "owner", "fromlit", "nofrom"):
            link_set(os.path.join(www, d))
        os.symlink("www", os.path.join(tree, "linkedroot"))
        if os.geteuid() != 0:
            return
        # if_not_owner: a link (root's) to nobody's file, a link of nobody's to it, and a
        # link (root's) to nobody's directory.
        owner = os.path.join(www, "owner")
        write(os.path.join(owner, "theirs.txt"), b"nobody's file\n")
        os.chown(os.path.join(owner, "theirs.txt"), NOBODY, NOBODY)
        os.symlink("theirs.txt", os.path.join(owner, "tolink.txt"))
        os.symlink("theirs.txt", os.path.join(owner, "theirlink.txt"))
        os.lchown(os.path.join(owner, "theirlink.txt"), NOBODY, NOBODY)
        write(os.path.join(owner, "theirdir/inside.txt"), b"in nobody's directory\n")
        os.chown(os.path.join(owner, "theirdir"), NOBODY, NOBODY)
        os.symlink("theirdir", os.path.join(owner, "todir"))

    def need_root(self):
        if os.geteuid() != 0:
            self.skipTest("if_not_owner needs files of another owner: chown needs root "
                          "(CI runs as root)")

    def test_off_follows_links_to_files_directories_and_index_files(self):
        got = self.assertLikeNginx([req("GET", "/off/link.txt", 200),
                                    req("GET", "/off/linkdir/inside.txt", 200),
                                    req("GET", "/off/idxlink/", 200)])
        self.assertEqual(got[0]["body"], b"the real file in off\n")
        self.assertEqual(got[2]["body"], b"<title>page</title>the linked index\n")

    def test_on_serves_a_path_without_links(self):
        got = self.assertLikeNginx([req("GET", "/on/real.txt", 200),
                                    req("GET", "/on/realdir/inside.txt", 200),
                                    req("GET", "/on/realdir", 301)])
        self.assertEqual(got[0]["body"], b"the real file in on\n")

    def test_a_dangling_link_is_404_with_off_and_403_with_on(self):
        self.assertLikeNginx([req("GET", "/off/dangling.txt", 404),
                              req("GET", "/on/dangling.txt", 403)])

    def test_on_refuses_a_link_as_the_file_with_403(self):
        self.assertLikeNginx([req("GET", "/on/link.txt", 403)])

    def test_on_answers_a_link_among_the_directories_with_404(self):
        self.assertLikeNginx([req("GET", "/on/linkdir/inside.txt", 404),
                              req("GET", "/on/linkdir/", 404)])

    def test_on_refuses_a_link_to_a_directory_as_the_last_component_with_403(self):
        # Before any redirect to the slash: the link itself is the file opened.
        self.assertLikeNginx([req("GET", "/on/linkdir", 403)])

    def test_on_refuses_a_linked_index_file_with_403(self):
        self.assertLikeNginx([req("GET", "/on/idxlink/", 403)])

    def test_on_makes_try_files_pass_over_a_linked_candidate(self):
        got = self.assertLikeNginx([req("GET", "/tryon/real.txt", 200),
                                    req("GET", "/tryon/link.txt", 200),
                                    req("GET", "/tryon/linkdir/inside.txt", 200)])
        self.assertEqual([g["body"] for g in got],
                         [b"the real file in tryon\n"] + [b"try_files' fallback\n"] * 2)

    def test_from_a_path_leaves_a_linked_root_unchecked(self):
        got = self.assertLikeNginx([req("GET", "/fromlit/real.txt", 200),
                                    req("GET", "/fromlit/link.txt", 403),
                                    req("GET", "/fromlit/linkdir/inside.txt", 404)])
        self.assertEqual(got[0]["body"], b"the real file in fromlit\n")

    def test_on_without_from_refuses_a_linked_root(self):
        self.assertLikeNginx([req("GET", "/nofrom/real.txt", 404)])

    def test_if_not_owner_follows_links_of_the_target_s_owner(self):
        self.need_root()
        got = self.assertLikeNginx([req("GET", "/owner/link.txt", 200),
                                    req("GET", "/owner/linkdir/inside.txt", 200),
                                    req("GET", "/owner/theirlink.txt", 200),
                                    req("GET", "/owner/theirdir/inside.txt", 200)])
        self.assertEqual(got[2]["body"], b"nobody's file\n")

    def test_if_not_owner_refuses_a_link_to_another_owner_s_file_with_403(self):
        self.need_root()
        self.assertLikeNginx([req("GET", "/owner/tolink.txt", 403)])

    def test_if_not_owner_refuses_a_link_to_another_owner_s_directory(self):
        self.need_root()
        self.assertLikeNginx([req("GET", "/owner/todir/inside.txt", 403)])


class DisableSymlinksFromDocumentRoot(SideBySide):
    """disable_symlinks on from=$document_root, the form nginx's documentation gives: the
    root (here reached through a link) is not checked, what is under it is."""

    SERVERS = [[location("/from/", root="{TREE}/linkedroot",
                         disable_symlinks="on from=$document_root")]]

    @classmethod
    def build(cls, tree):
        link_set(os.path.join(tree, "www", "from"))
        os.symlink("www", os.path.join(tree, "linkedroot"))

    def test_from_document_root_leaves_a_linked_root_unchecked(self):
        got = self.assertLikeNginx([req("GET", "/from/real.txt", 200),
                                    req("GET", "/from/link.txt", 403),
                                    req("GET", "/from/linkdir/inside.txt", 404)])
        self.assertEqual(got[0]["body"], b"the real file in from\n")


# --------------------------------------------------------------------------
# open_file_cache

VALID = 2  # seconds: open_file_cache_valid of /valid/ and /errors/


class OpenFileCache(SideBySide):
    """open_file_cache in each location that names one: the checks before a wait are made
    within a few milliseconds of the first request, the waits outlast open_file_cache_valid
    (or inactive) in whole seconds as nginx counts them."""

    SERVERS = [[
        location("/valid/", open_file_cache="max=16 inactive=60s",
                 open_file_cache_valid="%ds" % VALID),
        location("/errors/", open_file_cache="max=16 inactive=60s",
                 open_file_cache_valid="%ds" % VALID, open_file_cache_errors="on"),
        location("/max2/", open_file_cache="max=2"),
        location("/inactive/", open_file_cache="max=16 inactive=1s"),
        location("/minuses/", open_file_cache="max=16", open_file_cache_min_uses="2"),
        location("/dirs/", open_file_cache="max=16"),
    ]]

    @classmethod
    def build(cls, tree):
        www = os.path.join(tree, "www")
        for name in ("gone.txt", "swap.txt"):
            write(os.path.join(www, "valid", name), b"the first %s\n" % name.encode(), T0)
        write(os.path.join(www, "max2", "big.bin"), HUGE[:20 * MIB])
        for name in ("a.txt", "b.txt", "c.txt"):
            for d in ("max2", "inactive", "minuses"):
                write(os.path.join(www, d, name), b"%s in %s\n" % (name.encode(), d.encode()))
        os.makedirs(os.path.join(www, "errors"))
        write(os.path.join(www, "dirs", "sub", "index.html"), b"the index of dirs/sub/\n")

    def wait_past(self, t, seconds):
        """Sleeps until <seconds> have passed since <t> (time.time() just after the
        request that made an entry): then both servers open the file again."""
        time.sleep(max(0.0, t + seconds + 0.1 - time.time()))

    def held(self, directory):
        """(nginx's, portier's) files under www/<directory> held open by the worker."""
        d = os.path.join(self.www, directory)
        return open_files(self.nginx_worker(), d), open_files(self.p.worker(), d)

    def test_a_removed_file_is_served_as_it_was_until_valid_passes(self):
        self.assertLikeNginx([req("GET", "/valid/gone.txt", 200)])
        t = time.time()
        os.unlink(os.path.join(self.www, "valid/gone.txt"))
        got, = self.assertLikeNginx([req("GET", "/valid/gone.txt", 200)])
        self.assertEqual(got["body"], b"the first gone.txt\n")
        self.wait_past(t, VALID)
        self.assertLikeNginx([req("GET", "/valid/gone.txt", 404)])

    def test_a_file_renamed_over_is_served_as_it_was_until_valid_passes(self):
        path = os.path.join(self.www, "valid/swap.txt")
        old_etag = etag_of(path)
        self.assertLikeNginx([req("GET", "/valid/swap.txt", 200)])
        t = time.time()
        write(path + ".new", b"the second swap.txt, longer than the first\n", T0 + 3600)
        os.rename(path + ".new", path)
        got, = self.assertLikeNginx([req("GET", "/valid/swap.txt", 200)])
        self.assertEqual((got["body"], got["ETag"]), (b"the first swap.txt\n", old_etag))
        self.wait_past(t, VALID)
        got, = self.assertLikeNginx([req("GET", "/valid/swap.txt", 200)])
        self.assertEqual((got["body"], got["ETag"]),
                         (b"the second swap.txt, longer than the first\n", etag_of(path)))

    def test_errors_on_keeps_a_missing_file_404_until_valid_passes(self):
        self.assertLikeNginx([req("GET", "/errors/late.txt", 404)])
        t = time.time()
        write(os.path.join(self.www, "errors/late.txt"), b"created after the 404\n")
        self.assertLikeNginx([req("GET", "/errors/late.txt", 404)])
        self.wait_past(t, VALID)
        got, = self.assertLikeNginx([req("GET", "/errors/late.txt", 200)])
        self.assertEqual(got["body"], b"created after the 404\n")

    def test_errors_off_finds_a_created_file_at_once(self):
        self.assertLikeNginx([req("GET", "/valid/late.txt", 404)])
        write(os.path.join(self.www, "valid/late.txt"), b"created after the 404\n")
        got, = self.assertLikeNginx([req("GET", "/valid/late.txt", 200)])
        self.assertEqual(got["body"], b"created after the 404\n")

    def test_max_2_keeps_the_two_files_used_last_open(self):
        self.assertLikeNginx([req("GET", "/max2/%s" % n, 200) for n in ("a.txt", "b.txt", "c.txt")])
        want = ["b.txt", "c.txt"]
        self.assertEqual(settled(lambda: self.held("max2"), (want, want)), (want, want))

    def test_a_file_pushed_out_while_it_is_sent_is_sent_whole(self):
        """max=2: two other files push big.bin out of the cache while a slow client reads
        it; it is sent whole, and its descriptor closed once it is."""
        clients = [slow_client(port) for port in (self.nports[0], self.pports[0])]
        try:
            heads = []
            for s in clients:
                s.sendall(b"GET /max2/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
                heads.append(read_head(s, time.monotonic() + 5))
            self.assertLikeNginx([req("GET", "/max2/a.txt", 200), req("GET", "/max2/b.txt", 200)])
            bodies = [body + drain(s, time.monotonic() + 10, 20 * MIB - len(body))
                      for s, (_, body) in zip(clients, heads)]
        finally:
            for s in clients:
                s.close()
        self.assertEqual([sha(b) for b in bodies], [sha(HUGE[:20 * MIB])] * 2)
        want = ["a.txt", "b.txt"]
        self.assertEqual(settled(lambda: self.held("max2"), (want, want)), (want, want))

    def test_entries_unused_for_inactive_are_dropped_by_the_next_request(self):
        self.assertLikeNginx([req("GET", "/inactive/a.txt", 200),
                              req("GET", "/inactive/b.txt", 200)])
        both = ["a.txt", "b.txt"]
        self.assertEqual(settled(lambda: self.held("inactive"), (both, both)), (both, both))
        # inactive=1s: nginx drops an entry once "now - accessed > 1" in whole seconds.
        self.wait_past(float(int(time.time())), 2)
        self.assertLikeNginx([req("GET", "/inactive/c.txt", 200)])
        want = ["c.txt"]
        self.assertEqual(settled(lambda: self.held("inactive"), (want, want)), (want, want))

    def test_a_directory_is_cached_without_a_descriptor(self):
        """The redirect that adds the slash, then the index: nginx keeps the index file
        open, never the directory (ngx_open_and_stat_file closes a directory's fd)."""
        self.assertLikeNginx([req("GET", "/dirs/sub", 301), req("GET", "/dirs/sub/", 200)])
        want = ["sub/index.html"]
        self.assertEqual(settled(lambda: self.held("dirs"), (want, want)), (want, want))

    def test_min_uses_2_keeps_no_descriptor_after_one_use(self):
        self.assertLikeNginx([req("GET", "/minuses/a.txt", 200)])
        self.assertEqual(settled(lambda: self.held("minuses"), ([], [])), ([], []))
        self.assertLikeNginx([req("GET", "/minuses/a.txt", 200)])
        want = ["a.txt"]
        self.assertEqual(settled(lambda: self.held("minuses"), (want, want)), (want, want))


# --------------------------------------------------------------------------
# brotli_static

CSS = b"p { margin: 0 auto; color: #123456; }\n" * 40


class BrotliStatic(SideBySide):
    """ngx_brotli's brotli_static, beside gzip_static: the .br file (fake compressed bytes:
    neither server decodes it) with Content-Encoding: br, its own length and validators,
    the type of the file asked for, no ranges."""

    MODULES = (BROTLI_STATIC_SO,)
    SERVERS = [[
        location("/br/", brotli_static="on", gzip_static="on"),
        location("/bronly/", alias="{TREE}/www/br/", brotli_static="on"),
        location("/bralways/", alias="{TREE}/www/br/", brotli_static="always"),
        location("/broff/", alias="{TREE}/www/br/", brotli_static="off", gzip_static="on"),
    ]]

    @classmethod
    def build(cls, tree):
        br = os.path.join(tree, "www/br")
        write(os.path.join(br, "site.css"), CSS, T0)
        write(os.path.join(br, "site.css.br"), b"BR:" + bytes(range(256)), T0 + 86401)
        write(os.path.join(br, "site.css.gz"), gzip.compress(CSS, mtime=0), T0 + 2 * 86401)
        write(os.path.join(br, "gzonly.css"), CSS, T0)
        write(os.path.join(br, "gzonly.css.gz"), gzip.compress(CSS, mtime=0), T0 + 5)
        write(os.path.join(br, "plain.css"), CSS, T0)
        write(os.path.join(br, "brfile.css.br"), b"BR: no brfile.css beside it", T0)

    def encoded(self, method, target, headers=(), version="HTTP/1.1"):
        """(nginx's, portier's) status, coding, type, length, validators, ranges and body."""
        out = []
        for r in self.both(method, target, headers, version=version):
            out.append({"status": r.status, **{h: r.header(h) for h in (
                "Content-Encoding", "Content-Type", "Content-Length", "ETag", "Last-Modified",
                "Accept-Ranges", "Content-Range")}, "body": sha(r.body)})
        return out

    def assertBr(self, method, target, headers=(), version="HTTP/1.1"):
        """Both answer alike; portier's answer."""
        want, got = self.encoded(method, target, headers, version)
        self.assertEqual(got, want, "%s %s %r" % (method, target, headers))
        return got

    BR = os.path.join("www", "br", "site.css.br")

    def test_on_sends_the_br_file_to_a_client_taking_br(self):
        got = self.assertBr("GET", "/bronly/site.css", [("Accept-Encoding", "gzip, deflate, br")])
        br = os.path.join(self.tree, self.BR)
        with open(br, "rb") as f:
            self.assertEqual((got["Content-Encoding"], got["Content-Type"], got["body"]),
                             ("br", "text/css", sha(f.read())))

    def test_the_br_file_s_own_etag_and_last_modified(self):
        got = self.assertBr("GET", "/bronly/site.css", [("Accept-Encoding", "br")])
        br = os.path.join(self.tree, self.BR)
        self.assertEqual((got["ETag"], got["Last-Modified"], got["Content-Length"]),
                         (etag_of(br), static_nginx.http_date(T0 + 86401),
                          str(os.path.getsize(br))))

    def test_br_refused_or_not_named_sends_the_file(self):
        for ae in ("br;q=0", "br; q=0", "br;q=0.000", "gzip", "brotli", "*", None):
            with self.subTest(accept_encoding=ae):
                got = self.assertBr("GET", "/bronly/site.css",
                                    [("Accept-Encoding", ae)] if ae else [])
                self.assertEqual((got["Content-Encoding"], got["body"]), (None, sha(CSS)))

    def test_br_with_a_q_above_0_or_in_capitals_is_taken(self):
        for ae in ("br;q=0.001", "br;q=1", "BR", "gzip;q=1.0, br;q=0.5"):
            with self.subTest(accept_encoding=ae):
                got = self.assertBr("GET", "/bronly/site.css", [("Accept-Encoding", ae)])
                self.assertEqual(got["Content-Encoding"], "br")

    def test_br_is_preferred_to_gzip_static_whatever_the_q(self):
        for ae in ("gzip, br", "br, gzip", "gzip;q=1, br;q=0.1"):
            with self.subTest(accept_encoding=ae):
                got = self.assertBr("GET", "/br/site.css", [("Accept-Encoding", ae)])
                self.assertEqual(got["Content-Encoding"], "br")

    def test_br_refused_falls_back_to_gzip_static(self):
        got = self.assertBr("GET", "/br/site.css", [("Accept-Encoding", "br;q=0, gzip")])
        self.assertEqual(got["Content-Encoding"], "gzip")

    def test_without_a_br_file_gzip_static_answers(self):
        got = self.assertBr("GET", "/br/gzonly.css", [("Accept-Encoding", "br, gzip")])
        self.assertEqual(got["Content-Encoding"], "gzip")

    def test_without_a_br_file_the_file_is_sent(self):
        got = self.assertBr("GET", "/bronly/plain.css", [("Accept-Encoding", "br")])
        self.assertEqual((got["Content-Encoding"], got["Accept-Ranges"]), (None, "bytes"))

    def test_always_sends_the_br_file_to_every_client(self):
        got = self.assertBr("GET", "/bralways/site.css")
        self.assertEqual(got["Content-Encoding"], "br")

    def test_always_without_a_br_file_sends_the_file(self):
        got = self.assertBr("GET", "/bralways/plain.css")
        self.assertEqual((got["status"], got["Content-Encoding"]), (200, None))

    def test_off_never_sends_the_br_file(self):
        got = self.assertBr("GET", "/broff/site.css", [("Accept-Encoding", "br")])
        self.assertEqual(got["Content-Encoding"], None)
        got = self.assertBr("GET", "/broff/site.css", [("Accept-Encoding", "br, gzip")])
        self.assertEqual(got["Content-Encoding"], "gzip")

    def test_head_has_the_br_file_s_fields_and_no_body(self):
        got = self.assertBr("HEAD", "/bronly/site.css", [("Accept-Encoding", "br")])
        self.assertEqual((got["Content-Encoding"], got["body"]), ("br", sha(b"")))

    def test_a_range_is_ignored_on_the_br_file(self):
        got = self.assertBr("GET", "/bronly/site.css", [("Accept-Encoding", "br"),
                                                        ("Range", "bytes=0-9")])
        self.assertEqual((got["status"], got["Content-Encoding"], got["Accept-Ranges"],
                          got["Content-Range"]), (200, "br", None, None))

    def test_http_1_0_and_a_proxy_s_via_still_get_the_br_file(self):
        # Unlike gzip_static: ngx_brotli looks at Accept-Encoding only.
        for headers, version in (([("Accept-Encoding", "br")], "HTTP/1.0"),
                                 ([("Accept-Encoding", "br"), ("Via", "1.1 cache")], "HTTP/1.1")):
            with self.subTest(version=version, headers=headers):
                got = self.assertBr("GET", "/bronly/site.css", headers, version)
                self.assertEqual(got["Content-Encoding"], "br")

    def test_a_br_file_is_sent_without_the_file_itself(self):
        got = self.assertBr("GET", "/bronly/brfile.css", [("Accept-Encoding", "br")])
        self.assertEqual((got["status"], got["Content-Encoding"]), (200, "br"))

    def test_accept_encoding_is_read_for_br_as_ngx_brotli_reads_it(self):
        """ngx_brotli's own parser, not nginx's gzip one: "q" in lower case only, spaces
        allowed around "=", "q=0" with up to three zero decimals refuses (so does
        "q=0.0001"), and a q it cannot read ("q=", "q=-1") takes br."""
        diffs = []
        for ae in ("br;q=0.0001", "br;q=", "br;Q=0", "br;q =0", "br;q=-1", "br;q=0.",
                   "br;q=00", "br;level=1", "br;q=0.5;q=0", "x-br", "br;q=0,br"):
            want, got = self.encoded("GET", "/bronly/site.css", [("Accept-Encoding", ae)])
            if got != want:
                diffs.append("%r: nginx %s, portier %s" % (ae, want["Content-Encoding"],
                                                           got["Content-Encoding"]))
        self.assertEqual(diffs, [])

    def test_accept_encoding_is_read_for_gzip_static_as_nginx_reads_it(self):
        """nginx's ngx_http_gzip_accept_encoding: a parameter other than q, a q above 1 or
        with more than three decimals, or a second q refuse gzip."""
        diffs = []
        for ae in ("gzip;q=0.0001", "gzip;level=1", "gzip;q =0", "gzip;q=2", "gzip;q=1.5",
                   "gzip;q=0.5;q=0", "gzip;q=", "gzip;Q=0", "gzip;q=-1", "gzip;q=0.001"):
            want, got = self.encoded("GET", "/broff/site.css", [("Accept-Encoding", ae)])
            if got != want:
                diffs.append("%r: nginx %s, portier %s" % (ae, want["Content-Encoding"],
                                                           got["Content-Encoding"]))
        self.assertEqual(diffs, [])

    def test_a_304_for_the_gz_file_has_no_content_encoding(self):
        gz = etag_of(os.path.join(self.tree, "www/br/site.css.gz"))
        got = self.assertBr("GET", "/broff/site.css", [("Accept-Encoding", "gzip"),
                                                       ("If-None-Match", gz)])
        self.assertEqual((got["status"], got["Content-Encoding"]), (304, None))

    def test_if_none_match_with_the_br_file_s_etag_is_304(self):
        br = etag_of(os.path.join(self.tree, self.BR))
        got = self.assertBr("GET", "/bronly/site.css", [("Accept-Encoding", "br"),
                                                        ("If-None-Match", br)])
        self.assertEqual((got["status"], got["ETag"], got["Content-Encoding"]), (304, br, None))


# --------------------------------------------------------------------------
# sendfile

class Sendfile(SideBySide):
    """Files sent by sendfile(2) (portier's default; nginx's set on here, as Debian's
    nginx.conf does), read and written with sendfile off, read and encrypted over TLS, and
    through the gzip filter when it compresses them."""

    HTTP = {"sendfile": "on"}
    TLS = (1,)
    SERVERS = [[
        location("/"),
        location("/nosf/", alias="{TREE}/www/", sendfile="off"),
        location("/gz/", alias="{TREE}/www/", gzip="on", gzip_types=["text/plain"]),
        location("/stop/", alias="{TREE}/www/", send_timeout="1s"),
        location("/chunk/", alias="{TREE}/www/", sendfile_max_chunk="256k",
                 open_file_cache="max=4"),
    ], [location("/")]]

    @classmethod
    def build(cls, tree):
        www = os.path.join(tree, "www")
        write(os.path.join(www, "big.bin"), BIG, T0)
        write(os.path.join(www, "huge.bin"), HUGE, T0)
        write(os.path.join(www, "text.txt"), TEXT, T0)
        write(os.path.join(www, "small.txt"), b"small\n", T0)
        with open(os.path.join(www, "stuck.bin"), "wb") as f:
            block = random.Random(50).randbytes(MIB)
            for _ in range(STUCK_SIZE // MIB):
                f.write(block)
        os.chmod(os.path.join(www, "stuck.bin"), 0o644)

    def assertSame(self, method, target, headers=(), srv=0):
        """Both answer alike (status, content fields, body); portier's answer."""
        want, got = self.both(method, target, headers, srv=srv, tls=srv in self.TLS)
        self.assertEqual(outcome(got, self.pports[srv]), outcome(want, self.nports[srv]),
                         "%s %s %r" % (method, target, headers))
        return got

    def servers(self):
        """(name, port, error log, worker pid getter) of nginx and portier's plain servers."""
        return (("nginx", self.nports[0], self.nginx.error_log, self.nginx_worker),
                ("portier", self.pports[0], self.p.error_log, self.p.worker))

    # -- whole files and ranges

    def test_a_5_mib_file_is_sent_whole_with_sendfile_on(self):
        got = self.assertSame("GET", "/big.bin")
        self.assertEqual(sha(got.body), sha(BIG))

    def test_a_5_mib_file_is_sent_whole_with_sendfile_off(self):
        got = self.assertSame("GET", "/nosf/big.bin")
        self.assertEqual(sha(got.body), sha(BIG))

    def test_a_5_mib_file_is_sent_whole_over_tls(self):
        got = self.assertSame("GET", "/big.bin", srv=1)
        self.assertEqual(sha(got.body), sha(BIG))

    def test_a_5_mib_file_is_sent_whole_before_an_http_1_0_close(self):
        for name, port, _, _ in self.servers():
            r = ask(port, "GET", "/big.bin", version="HTTP/1.0")
            self.assertEqual((r.status, r.header("Connection"), len(r.body), sha(r.body)),
                             (200, "close", len(BIG), sha(BIG)), name)

    def test_a_range_deep_in_a_big_file_is_its_bytes(self):
        got = self.assertSame("GET", "/big.bin", [("Range", "bytes=1000000-4999999")])
        self.assertEqual((got.status, got.header("Content-Range"), sha(got.body)),
                         (206, "bytes 1000000-4999999/%d" % len(BIG), sha(BIG[1000000:5000000])))

    def test_small_and_large_ranges_are_one_multipart_answer(self):
        # A piece below 16 KiB goes with the part heads in one write, larger ones by sendfile.
        got = self.assertSame("GET", "/big.bin", [("Range", "bytes=0-99,16384-16483,2000000-")])
        boundary = got.header("Content-Type").split("boundary=")[1].encode()
        self.assertEqual(got.body, multipart(boundary, b"application/octet-stream", BIG, [
            (0, 99), (16384, 16483), (2000000, len(BIG) - 1)]))

    def test_several_ranges_over_tls_are_one_multipart_answer(self):
        got = self.assertSame("GET", "/big.bin", [("Range", "bytes=0-99999,3000000-")], srv=1)
        boundary = got.header("Content-Type").split("boundary=")[1].encode()
        self.assertEqual(got.body, multipart(boundary, b"application/octet-stream", BIG, [
            (0, 99999), (3000000, len(BIG) - 1)]))

    def test_head_of_a_big_file_sends_no_body(self):
        # On one connection: file bytes after the HEAD would be read as the next answer.
        for name, port, _, _ in self.servers():
            with harness.Client(port) as c:
                head = c.request("HEAD", "/big.bin")
                small = c.request("GET", "/small.txt")
            self.assertEqual((head.status, head.header("Content-Length"), small.status,
                              small.body), (200, str(len(BIG)), 200, b"small\n"), name)

    def test_a_request_pipelined_behind_a_big_file_is_answered_after_it(self):
        two = harness.build_request("GET", "/big.bin") + harness.build_request("GET", "/small.txt")
        for srv in (0, 1):
            for port in (self.nports[srv], self.pports[srv]):
                with (TLSClient(port) if srv else harness.Client(port)) as c:
                    c.send(two)
                    big, small = c.read_response(), c.read_response()
                self.assertEqual((big.status, sha(big.body), small.status, small.body),
                                 (200, sha(BIG), 200, b"small\n"), "port %d" % port)

    # -- gzip

    def test_gzip_sends_a_static_file_compressed_and_whole(self):
        answers = self.both("GET", "/gz/text.txt", [("Accept-Encoding", "gzip")])
        for r in answers:
            self.assertEqual(gzip.decompress(r.body), TEXT)
        want, got = [(r.status, r.header("Content-Encoding"), r.header("Content-Length"),
                      r.chunked, r.header("ETag"), r.header("Last-Modified")) for r in answers]
        self.assertEqual(got, want)
        self.assertEqual(got[:4], (200, "gzip", None, True))

    def test_a_range_of_a_file_gzip_compresses_gets_it_whole(self):
        answers = self.both("GET", "/gz/text.txt", [("Accept-Encoding", "gzip"),
                                                   ("Range", "bytes=0-99")])
        # nginx's gzip header filter runs before its range filter and leaves it no length.
        want, got = [(r.status, r.header("Content-Encoding"), r.header("Content-Range"),
                      len(r.body) if r.header("Content-Encoding") != "gzip" else
                      gzip.decompress(r.body) == TEXT) for r in answers]
        self.assertEqual(got, want)
        self.assertEqual(got, (200, "gzip", None, True))

    # -- clients that read slowly or not at all

    def test_a_client_that_stops_reading_is_closed_after_send_timeout(self):
        """send_timeout 1s: nginx and portier both cut the response off and log the client's
        timeout; their worker answers the next request."""
        for name, port, log, worker in self.servers():
            with self.subTest(server=name):
                pid = worker()
                mark = harness.file_size(log)
                s = slow_client(port)
                try:
                    s.sendall(b"GET /stop/stuck.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    head, _ = read_head(s, time.monotonic() + 5)
                    stopped = time.monotonic()
                    harness.wait_for_line(log, r"client timed out", timeout=8.0, start=mark)
                    waited = time.monotonic() - stopped
                    got = drain(s, time.monotonic() + 10)
                finally:
                    s.close()
                self.assertIn(" 200 ", head.split("\r\n")[0])
                self.assertGreater(waited, 0.9)
                self.assertLess(len(got), STUCK_SIZE)
                r = ask(port, "GET", "/small.txt")
                self.assertEqual((r.status, r.body), (200, b"small\n"))
                self.assertEqual(worker(), pid)

    def test_a_slow_reader_is_not_cut_off_by_send_timeout(self):
        """send_timeout bounds the time between two writes, not the response: a client
        that takes 2 seconds to read 30 MiB, never pausing 1s, gets it all.  Portier only
        (nginx behaves so)."""
        s = slow_client(self.pports[0])
        try:
            s.sendall(b"GET /stop/huge.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
            _, body = read_head(s, time.monotonic() + 5)
            body = bytearray(body)
            start, deadline = time.monotonic(), time.monotonic() + 20
            while len(body) < len(HUGE) and time.monotonic() < deadline:
                # 30 MiB in about 2s: what 15 MiB/s allows, every 30 ms.
                allowed = min(len(HUGE), int((time.monotonic() - start + 0.03) * 15 * MIB))
                while len(body) < allowed:
                    data = s.recv(allowed - len(body))
                    if not data:
                        break
                    body += data
                if len(body) < allowed:
                    break
                time.sleep(0.03)
        finally:
            s.close()
        self.assertEqual(len(body), len(HUGE))
        self.assertEqual(sha(body), sha(HUGE))

    def test_two_30_mib_downloads_at_once_complete_intact(self):
        """sendfile_max_chunk 256k: each connection yields after 256 KiB; both files
        arrive whole (from the one descriptor open_file_cache keeps).  Portier only."""
        results = [None, None]

        def download(i):
            h = hashlib.sha256()
            try:
                with harness.Client(self.pports[0], 30.0) as c:
                    r = c.request("GET", "/chunk/huge.bin", body_sink=h.update)
                results[i] = (r.status, r.body_len, h.hexdigest())
            except Exception as e:  # reported below
                results[i] = repr(e)
        threads = [threading.Thread(target=download, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(results, [(200, len(HUGE), sha(HUGE))] * 2)

    # -- a file truncated while it is sent

    def truncated_while_sent(self, srv, prefix, left, syscall):
        """The 20 MiB file shrinks to <left> bytes once the head came (the client reading
        nothing yet, the server having sent what the socket buffers hold, 4 MiB or so):
        the connection ends at once, before Content-Length bytes, with the bytes the file
        still had when <left> is beyond what was sent; the error log says why.  Portier's
        line is crit and names <syscall>; nginx's are alerts ("sendfile() reported that ...
        was truncated", "pread() read only 0 of ...")."""
        for name, port, log in (("nginx", self.nports[srv], self.nginx.error_log),
                                ("portier", self.pports[srv], self.p.error_log)):
            with self.subTest(server=name):
                path = os.path.join(self.www, "trunc-%s-%d%s-%d.bin" % (
                    name, srv, prefix[1:-1], left))
                write(path, HUGE[:20 * MIB], T0)
                mark = harness.file_size(log)
                s = slow_client(port, tls=srv in self.TLS)
                try:
                    s.sendall(b"GET %s%s HTTP/1.1\r\nHost: localhost\r\n\r\n" % (
                        prefix.encode(), os.path.basename(path).encode()))
                    head, body = read_head(s, time.monotonic() + 5)
                    os.truncate(path, left)
                    started = time.monotonic()
                    body += drain(s, started + 4)
                    took = time.monotonic() - started
                finally:
                    s.close()
                self.assertIn("Content-Length: %d" % (20 * MIB), head)
                self.assertLess(took, 3.0, "the connection stayed open")
                self.assertLess(len(body), 20 * MIB)
                if left > 4 * MIB:
                    self.assertLessEqual(len(body), left)
                    self.assertEqual(sha(body), sha(HUGE[:len(body)]), "not the file's bytes")
                if left > 4 * MIB and syscall == "sendfile()":
                    self.assertEqual(len(body), left, "sendfile sends what the file still has")
                line = harness.wait_for_line(log, r"truncated|read only 0 of", timeout=3.0,
                                             start=mark)
                if name == "portier":
                    self.assertIn("[crit]", line)
                    self.assertIn(syscall, line)

    def test_a_file_cut_to_1_mib_while_sendfile_sends_it_ends_the_connection(self):
        self.truncated_while_sent(0, "/", MIB, "sendfile()")

    def test_a_file_cut_to_12_mib_while_sendfile_sends_it_ends_after_its_12_mib(self):
        self.truncated_while_sent(0, "/", 12 * MIB, "sendfile()")

    def test_a_file_cut_while_read_with_sendfile_off_ends_the_connection(self):
        self.truncated_while_sent(0, "/nosf/", 12 * MIB, "pread()")

    def test_a_file_cut_while_sent_over_tls_ends_the_connection(self):
        self.truncated_while_sent(1, "/", 12 * MIB, "pread()")


# --------------------------------------------------------------------------
# the waf

WAF_RULES = ("SecRuleEngine On\nSecResponseBodyAccess On\nSecResponseBodyMimeType text/html\n"
             "SecResponseBodyLimit 10485760\nSecResponseBodyLimitAction ProcessPartial\n"
             'SecRule RESPONSE_BODY "@contains TOPSECRET" '
             '"id:100031,phase:4,deny,status:403,log,msg:\'leaky body\'"')
PAGE = b"<!doctype html><title>page</title>\n" + b"<p>static text</p>\n" * 60000


class StaticUnderTheWaf(harness.TestCase):
    """With the waf on, a static file's bytes go through its response body rules, never
    around them by sendfile.  Portier only (nginx-light has no ModSecurity)."""

    @classmethod
    def setUpClass(cls):
        cls.tree = tempfile.mkdtemp(prefix="pt-it-static-files-")
        if not harness.KEEP_TMP:
            cls.addClassCleanup(shutil.rmtree, cls.tree, True)
        os.chmod(cls.tree, 0o755)
        write(os.path.join(cls.tree, "clean.html"), PAGE)
        write(os.path.join(cls.tree, "leak.html"), PAGE + b"<p>TOPSECRET</p>\n")
        cls.port = harness.free_port()
        cls.p = cls.class_portier({"server": [server(cls.port, [
            location("/", modsecurity="on", modsecurity_rules=WAF_RULES)], root=cls.tree)]})

    def test_a_file_the_waf_reads_is_sent_whole(self):
        r = ask(self.port, "GET", "/clean.html")
        self.assertEqual((r.status, r.header("Content-Length"), sha(r.body)),
                         (200, str(len(PAGE)), sha(PAGE)))

    def test_a_file_a_response_body_rule_refuses_never_reaches_the_client_whole(self):
        """The rule matches at the body's end (phase 4), after the head went: the answer
        is cut short, as ModSecurity-nginx cuts it; by sendfile it would have gone whole."""
        got = bytearray()
        with harness.Client(self.port) as c:
            try:
                r = c.request("GET", "/leak.html", body_sink=got.extend)
                status = r.status
            except harness.ProtocolError:
                status = "cut"
        self.assertIn(status, (403, "cut"))
        self.assertNotIn(b"TOPSECRET", bytes(got))
        harness.wait_for_line(self.p.error_log, r'Access denied with code 403 \(phase 4\).*'
                                                r'\[id "100031"\]')


if __name__ == "__main__":
    harness.main()
