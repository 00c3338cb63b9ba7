"""
The cache (nginx's proxy_cache family, issue 13) end to end: what is stored and for how
long (Cache-Control, Expires, X-Accel-Expires, proxy_cache_valid), what is not (no-store,
private, Set-Cookie, Vary: *, Authorization), revalidation, the client's conditionals and
ranges answered from the cache, variants, bypass and no_cache, min_uses, the lock against
a herd across workers, stale answers, purging, survival of a reload, an upgrade and a
restart, bad upstream responses and bad files, max_size, configuration errors and the log.

Every test has its own origin (cachebackend.CacheBackend, which counts requests per path
and numbers its bodies "PATH #N"), its own portier and its own cache directory; the
X-Cache response field is $upstream_cache_status.
"""

import http.client
import os
import signal
import threading
import time
import urllib.parse
from email.utils import formatdate

import harness
from cachebackend import Answer, CacheBackend
from harness import location, server, upstream

ZONE = "c"


def http_date(t):
    return formatdate(t, usegmt=True)


class CacheCase(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.origin = CacheBackend()
        self.addCleanup(self.origin.stop)

    # -- portier

    def cache_http(self, p, zone_opts="", locations=(), http_extra=None, **directives):
        """The http block: the cache "c" in <p>'s temporary directory, and a server whose
        "/" location caches what it proxies to the origin with <directives>; <locations>
        come before it."""
        self.cache_dir = os.path.join(p.dir, "cache")
        loc = {"proxy_pass": "http://origin", "proxy_cache": ZONE}
        loc.update(directives)
        http = {
            "proxy_cache_path": [" ".join([self.cache_dir, "levels=1:2 keys_zone=%s:1m" % ZONE,
                                           zone_opts]).strip()],
            "add_header": ["X-Cache $upstream_cache_status always"],
            "upstream": {"origin": upstream(self.origin.addr)},
            "server": [server(self.port, list(locations) + [location("/", **loc)])],
        }
        http.update(http_extra or {})
        return http

    def start_cache(self, workers=1, zone_opts="", locations=(), http_extra=None, **directives):
        """A portier caching "/" (see cache_http), started with <workers> workers."""
        self.port = harness.free_port()
        p = self.start_portier(start=False)
        p.write_config(self.cache_http(p, zone_opts, locations, http_extra, **directives),
                       main={"worker_processes": workers})
        p.start(workers=workers)
        return p

    # -- requests

    def get(self, path, headers=(), method="GET", **kw):
        return harness.http_request(self.port, method, path, headers=headers, **kw)

    def assertCache(self, r, status, body=None, code=200):
        """<r> has HTTP status <code>, X-Cache <status> and (when given) <body>."""
        self.assertEqual((r.status, r.header("X-Cache")), (code, status), r)
        if body is not None:
            self.assertEqual(r.body, body, r)

    def cached(self, path, **answer):
        """Routes <path> with <answer> (when given) and fetches it once (a MISS that stores
        it)."""
        if answer:
            self.origin.route(path, **answer)
        r = self.get(path)
        self.assertCache(r, "MISS", b"%s #1\n" % path.encode())
        return r

    # -- the files

    def cache_files(self):
        """Paths of the complete files under the cache directory."""
        out = []
        for d, _, names in os.walk(self.cache_dir):
            out += [os.path.join(d, n) for n in names if not n.endswith(".tmp")]
        return out

    def only_file(self):
        files = self.cache_files()
        self.assertEqual(len(files), 1, files)
        return files[0]


MAX_AGE_60 = [("Cache-Control", "max-age=60")]


class Storing(CacheCase):
    """Whether a response is stored, and for how long."""

    def test_miss_then_hit_serves_the_stored_body_with_age_and_the_origin_sees_one_request(self):
        self.start_cache()
        self.cached("/a", headers=MAX_AGE_60)
        r = self.get("/a")
        self.assertCache(r, "HIT", b"/a #1\n")
        self.assertIn(r.header("Age"), ("0", "1"), r)
        self.assertEqual(self.origin.count("/a"), 1)

    def test_age_of_a_hit_counts_the_age_the_response_had_when_stored(self):
        self.start_cache()
        self.cached("/aged", headers=MAX_AGE_60 + [("Age", "30")])
        self.assertIn(self.get("/aged").header("Age"), ("30", "31"))

    def test_big_body_is_served_whole_from_the_file(self):
        self.start_cache()
        body = harness.pattern_bytes(0, 3 * harness.MIB)
        self.origin.route("/big", headers=MAX_AGE_60, body=body)
        self.assertEqual(self.get("/big").body, body)
        r = self.get("/big")
        self.assertEqual(r.header("X-Cache"), "HIT")
        self.assertTrue(r.body == body, "the HIT's %d bytes differ from the stored %d" %
                        (len(r.body), len(body)))

    def test_an_entry_stored_by_one_worker_is_a_hit_in_the_other(self):
        p = self.start_cache(workers=2)
        self.cached("/w", headers=MAX_AGE_60)
        # One connection held by each worker (which one accepts is the kernel's choice:
        # on a busy machine one worker may take every new connection).
        held = p.clients_on_workers(1, path="/w")
        try:
            for (c,) in held:
                self.assertCache(c.request("GET", "/w"), "HIT", b"/w #1\n")
        finally:
            for (c,) in held:
                c.close()
        self.assertEqual(self.origin.count("/w"), 1)

    def test_max_age_expiry_refetches_as_expired(self):
        self.start_cache()
        self.cached("/short", headers=[("Cache-Control", "max-age=1")])
        time.sleep(1.1)
        self.assertCache(self.get("/short"), "EXPIRED", b"/short #2\n")

    def test_proxy_cache_valid_stores_a_response_without_caching_fields(self):
        self.start_cache(proxy_cache_valid=["200 1m"])
        self.cached("/plain")
        self.assertCache(self.get("/plain"), "HIT", b"/plain #1\n")

    def test_proxy_cache_valid_time_is_for_its_statuses_only(self):
        self.start_cache(proxy_cache_valid=["200 1m"])
        self.origin.route("/gone", status=404)
        self.assertCache(self.get("/gone"), "MISS", b"/gone #1\n", code=404)
        self.assertCache(self.get("/gone"), "MISS", b"/gone #2\n", code=404)

    def test_response_without_caching_fields_or_valid_is_not_stored(self):
        self.start_cache()
        self.cached("/nothing")
        self.assertCache(self.get("/nothing"), "MISS", b"/nothing #2\n")

    def test_last_modified_alone_is_not_stored_without_proxy_cache_heuristic(self):
        self.start_cache()
        self.cached("/lm", headers=[("Last-Modified", http_date(time.time() - 10 * 86400))])
        self.assertCache(self.get("/lm"), "MISS", b"/lm #2\n")

    def test_proxy_cache_heuristic_keeps_a_tenth_of_the_last_modified_age(self):
        self.start_cache(proxy_cache_heuristic=True)
        now = time.time()
        # Ten days old: a day fresh (the cap).  Five seconds old: fresh for none.
        self.cached("/lm10d", headers=[("Date", http_date(now)),
                                       ("Last-Modified", http_date(now - 10 * 86400))])
        self.assertCache(self.get("/lm10d"), "HIT", b"/lm10d #1\n")
        self.cached("/lm5s", headers=[("Date", http_date(now)),
                                      ("Last-Modified", http_date(now - 5))])
        self.assertCache(self.get("/lm5s"), "EXPIRED", b"/lm5s #2\n")

    def test_proxy_cache_heuristic_does_not_store_a_status_not_heuristically_cacheable(self):
        self.start_cache(proxy_cache_heuristic=True)
        self.origin.route("/lm500", status=500,
                          headers=[("Last-Modified", http_date(time.time() - 10 * 86400))])
        self.assertCache(self.get("/lm500"), "MISS", code=500)
        self.assertCache(self.get("/lm500"), "MISS", code=500)

    def test_chunked_response_is_stored_and_a_hit_carries_its_length(self):
        self.start_cache()
        body = harness.pattern_bytes(0, 5500)
        self.origin.route("/chunked", headers=MAX_AGE_60, body=body, framing="chunked")
        self.assertEqual(self.get("/chunked").body, body)
        r = self.get("/chunked")
        self.assertCache(r, "HIT", body)
        self.assertEqual(r.header("Content-Length"), "5500", r)

    def test_response_ended_by_close_is_stored_and_a_hit_carries_its_length(self):
        self.start_cache()
        body = harness.pattern_bytes(0, 5500)
        self.origin.route("/close", headers=MAX_AGE_60, body=body, framing="close")
        self.assertEqual(self.get("/close").body, body)
        r = self.get("/close")
        self.assertCache(r, "HIT", body)
        self.assertEqual(r.header("Content-Length"), "5500", r)

    def test_x_accel_expires_stores_a_response_without_other_fields(self):
        self.start_cache()
        self.cached("/xae", headers=[("X-Accel-Expires", "60")])
        self.assertCache(self.get("/xae"), "HIT", b"/xae #1\n")

    def test_x_accel_expires_is_not_passed_to_the_client(self):
        self.start_cache()
        self.origin.route("/xae", headers=[("X-Accel-Expires", "60")])
        self.assertIsNone(self.get("/xae").header("X-Accel-Expires"))
        self.assertIsNone(self.get("/xae").header("X-Accel-Expires"))

    def test_x_accel_expires_wins_over_cache_control_no_store(self):
        self.start_cache()
        self.cached("/xae-ns", headers=[("Cache-Control", "no-store"), ("X-Accel-Expires", "60")])
        self.assertCache(self.get("/xae-ns"), "HIT", b"/xae-ns #1\n")

    def test_x_accel_expires_zero_is_not_stored_whatever_max_age_says(self):
        self.start_cache()
        self.cached("/xae0", headers=[("Cache-Control", "max-age=60"), ("X-Accel-Expires", "0")])
        self.assertCache(self.get("/xae0"), "MISS", b"/xae0 #2\n")

    def test_cache_control_no_store_is_not_stored(self):
        self.start_cache(proxy_cache_valid=["200 1m"])
        self.cached("/ns", headers=[("Cache-Control", "no-store, max-age=60")])
        self.assertCache(self.get("/ns"), "MISS", b"/ns #2\n")

    def test_cache_control_private_is_not_stored(self):
        self.start_cache(proxy_cache_valid=["200 1m"])
        self.cached("/priv", headers=[("Cache-Control", "private, max-age=60")])
        self.assertCache(self.get("/priv"), "MISS", b"/priv #2\n")

    def test_s_maxage_wins_over_max_age(self):
        self.start_cache()
        self.cached("/smax", headers=[("Cache-Control", "max-age=0, s-maxage=60")])
        self.assertCache(self.get("/smax"), "HIT", b"/smax #1\n")

    def test_expires_in_the_future_is_stored(self):
        self.start_cache()
        self.cached("/exp", headers=[("Expires", http_date(time.time() + 3600))])
        self.assertCache(self.get("/exp"), "HIT", b"/exp #1\n")

    def test_expires_in_the_past_is_not_served_from_the_cache(self):
        self.start_cache()
        self.cached("/past", headers=[("Expires", http_date(time.time() - 3600))])
        r = self.get("/past")
        self.assertEqual(r.body, b"/past #2\n", r)
        self.assertIn(r.header("X-Cache"), ("MISS", "EXPIRED"), r)

    def test_set_cookie_response_is_not_stored(self):
        self.start_cache()
        self.cached("/cookie", headers=MAX_AGE_60 + [("Set-Cookie", "s=1")])
        self.assertCache(self.get("/cookie"), "MISS", b"/cookie #2\n")

    def test_set_cookie_response_is_stored_when_ignored(self):
        self.start_cache(proxy_ignore_headers=["Set-Cookie"])
        self.cached("/cookie", headers=MAX_AGE_60 + [("Set-Cookie", "s=1")])
        self.assertCache(self.get("/cookie"), "HIT", b"/cookie #1\n")

    def test_vary_star_is_never_stored(self):
        self.start_cache()
        self.cached("/vstar", headers=MAX_AGE_60 + [("Vary", "*")])
        self.assertCache(self.get("/vstar"), "MISS", b"/vstar #2\n")

    def test_request_with_authorization_is_not_stored(self):
        self.start_cache()
        self.origin.route("/auth", headers=MAX_AGE_60)
        auth = [("Authorization", "Basic dTpw")]
        self.assertCache(self.get("/auth", auth), "MISS", b"/auth #1\n")
        self.assertCache(self.get("/auth", auth), "MISS", b"/auth #2\n")

    def test_request_with_authorization_is_stored_when_the_response_is_public(self):
        self.start_cache()
        self.origin.route("/auth", headers=[("Cache-Control", "public, max-age=60")])
        auth = [("Authorization", "Basic dTpw")]
        self.assertCache(self.get("/auth", auth), "MISS", b"/auth #1\n")
        self.assertCache(self.get("/auth", auth), "HIT", b"/auth #1\n")

    def test_request_with_authorization_is_stored_when_the_response_has_s_maxage(self):
        self.start_cache()
        self.origin.route("/auth", headers=[("Cache-Control", "s-maxage=60")])
        auth = [("Authorization", "Basic dTpw")]
        self.assertCache(self.get("/auth", auth), "MISS", b"/auth #1\n")
        self.assertCache(self.get("/auth", auth), "HIT", b"/auth #1\n")

    def test_successful_post_invalidates_the_stored_uri(self):
        self.start_cache()
        self.cached("/doc", headers=MAX_AGE_60)
        self.assertCache(self.get("/doc"), "HIT")
        r = self.get("/doc", method="POST", body=b"x=1")
        self.assertEqual(r.status, 200, r)
        self.assertCache(self.get("/doc"), "MISS", b"/doc #3\n")

    def test_successful_delete_invalidates_the_stored_uri(self):
        self.start_cache()
        self.cached("/doc", headers=MAX_AGE_60)
        self.assertEqual(self.get("/doc", method="DELETE").status, 200)
        self.assertCache(self.get("/doc"), "MISS", b"/doc #3\n")

    def test_failed_post_leaves_the_stored_uri(self):
        self.start_cache()
        self.cached("/doc", headers=MAX_AGE_60)
        self.origin.route("/doc", status=500)
        self.assertEqual(self.get("/doc", method="POST", body=b"x=1").status, 500)
        self.assertCache(self.get("/doc"), "HIT", b"/doc #1\n")

    def test_min_uses_stores_on_the_second_request(self):
        self.start_cache(proxy_cache_min_uses=2)
        self.cached("/twice", headers=MAX_AGE_60)
        self.assertCache(self.get("/twice"), "MISS", b"/twice #2\n")
        self.assertCache(self.get("/twice"), "HIT", b"/twice #2\n")


LAST_MODIFIED = http_date(time.time() - 86400)


class Revalidation(CacheCase):
    """proxy_cache_revalidate, and Cache-Control's no-cache."""

    def revalidating_origin(self, path, max_age=1):
        """<path> answers 200 (ETag "v1", X-Version 1, max-age <max_age>), and 304 (X-Version
        2, max-age=60) to an If-None-Match of "v1"."""
        self.origin.route(path, headers=[("Cache-Control", "max-age=%d" % max_age),
                                         ("ETag", '"v1"'), ("Last-Modified", LAST_MODIFIED),
                                         ("X-Version", "1")],
                          not_modified=True,
                          headers_304=[("Cache-Control", "max-age=60"), ("ETag", '"v1"'),
                                       ("X-Version", "2")])

    def test_expired_entry_is_revalidated_with_its_etag_and_last_modified(self):
        self.start_cache(proxy_cache_revalidate=True)
        self.revalidating_origin("/rv")
        self.assertCache(self.get("/rv"), "MISS")
        time.sleep(1.1)
        self.get("/rv")
        second = self.origin.requests("/rv")[1]
        self.assertEqual((second.header("If-None-Match"), second.header("If-Modified-Since")),
                         ('"v1"', LAST_MODIFIED))

    def test_revalidated_entry_serves_the_stored_body_with_the_fields_of_the_304(self):
        self.start_cache(proxy_cache_revalidate=True)
        self.revalidating_origin("/rv")
        self.assertCache(self.get("/rv"), "MISS", b"/rv #1\n")
        time.sleep(1.1)
        r = self.get("/rv")
        self.assertCache(r, "REVALIDATED", b"/rv #1\n")
        self.assertEqual(r.header("X-Version"), "2", r)

    def test_revalidated_entry_is_fresh_for_the_lifetime_the_304_gives(self):
        self.start_cache(proxy_cache_revalidate=True)
        self.revalidating_origin("/rv")
        self.get("/rv")
        time.sleep(1.1)
        self.assertCache(self.get("/rv"), "REVALIDATED")
        self.assertCache(self.get("/rv"), "HIT", b"/rv #1\n")
        self.assertEqual(self.origin.count("/rv"), 2)

    def test_expired_entry_without_revalidate_is_fetched_whole_without_validators(self):
        self.start_cache()
        self.revalidating_origin("/norv")
        self.get("/norv")
        time.sleep(1.1)
        self.assertCache(self.get("/norv"), "EXPIRED", b"/norv #2\n")
        self.assertIsNone(self.origin.requests("/norv")[1].header("If-None-Match"))

    def test_no_cache_response_is_stored_but_revalidated_on_every_use(self):
        self.start_cache(proxy_cache_revalidate=True)
        self.origin.route("/nc", headers=[("Cache-Control", "no-cache"), ("ETag", '"n1"')],
                          not_modified=True)
        self.assertCache(self.get("/nc"), "MISS", b"/nc #1\n")
        self.assertCache(self.get("/nc"), "REVALIDATED", b"/nc #1\n")
        self.assertCache(self.get("/nc"), "REVALIDATED", b"/nc #1\n")
        self.assertEqual([s.header("If-None-Match") for s in self.origin.requests("/nc")],
                         [None, '"n1"', '"n1"'])

    def test_max_age_0_response_is_stored_and_revalidated_before_use(self):
        self.start_cache(proxy_cache_revalidate=True)
        self.origin.route("/ma0", headers=[("Cache-Control", "max-age=0"), ("ETag", '"z"')],
                          not_modified=True)
        self.assertCache(self.get("/ma0"), "MISS", b"/ma0 #1\n")
        self.assertCache(self.get("/ma0"), "REVALIDATED", b"/ma0 #1\n")


class Answering(CacheCase):
    """The client's own conditionals, ranges and HEAD, answered from a stored entry."""

    BODY = b"0123456789abcdefghij"

    def stored(self, path):
        self.origin.route(path, headers=MAX_AGE_60 + [("ETag", '"e1"')], body=self.BODY)
        self.assertCache(self.get(path), "MISS", self.BODY)

    def test_client_if_none_match_of_the_stored_etag_gets_304_from_the_cache(self):
        self.start_cache()
        self.stored("/cond")
        r = self.get("/cond", [("If-None-Match", '"e1"')])
        self.assertCache(r, "HIT", b"", code=304)
        self.assertEqual(r.header("ETag"), '"e1"', r)
        self.assertEqual(self.origin.count("/cond"), 1)

    def test_client_if_match_of_another_etag_gets_412_from_the_cache(self):
        self.start_cache()
        self.stored("/cond")
        self.assertCache(self.get("/cond", [("If-Match", '"other"')]), "HIT", code=412)
        self.assertEqual(self.origin.count("/cond"), 1)

    def test_client_if_modified_since_of_the_stored_last_modified_gets_304(self):
        self.start_cache()
        self.origin.route("/ims", headers=MAX_AGE_60 + [("Last-Modified", LAST_MODIFIED)])
        self.get("/ims")
        self.assertCache(self.get("/ims", [("If-Modified-Since", LAST_MODIFIED)]), "HIT", b"",
                         code=304)

    def test_range_of_a_stored_entry_gets_206_with_content_range(self):
        self.start_cache()
        self.stored("/range")
        r = self.get("/range", [("Range", "bytes=0-4")])
        self.assertCache(r, "HIT", b"01234", code=206)
        self.assertEqual(r.header("Content-Range"), "bytes 0-4/20", r)

    def test_range_deep_in_a_big_stored_file_gets_those_bytes(self):
        self.start_cache()
        body = harness.pattern_bytes(0, harness.MIB)
        self.origin.route("/bigrange", headers=MAX_AGE_60, body=body)
        self.get("/bigrange")
        r = self.get("/bigrange", [("Range", "bytes=700000-700009")])
        self.assertCache(r, "HIT", body[700000:700010], code=206)
        self.assertEqual(r.header("Content-Range"), "bytes 700000-700009/%d" % len(body), r)

    def test_unsatisfiable_range_of_a_stored_entry_gets_416(self):
        self.start_cache()
        self.stored("/range")
        r = self.get("/range", [("Range", "bytes=100-200")])
        self.assertCache(r, "HIT", code=416)
        self.assertEqual(r.header("Content-Range"), "bytes */20", r)

    def test_several_ranges_get_the_whole_stored_200(self):
        self.start_cache()
        self.stored("/ranges")
        r = self.get("/ranges", [("Range", "bytes=0-1,5-6")])
        self.assertCache(r, "HIT", self.BODY)
        self.assertIsNone(r.header("Content-Range"), r)

    def test_malformed_range_gets_the_whole_stored_200(self):
        self.start_cache()
        self.stored("/badrange")
        self.assertCache(self.get("/badrange", [("Range", "bytes=x-y")]), "HIT", self.BODY)

    def test_head_of_a_stored_entry_has_its_length_and_no_body(self):
        p = self.start_cache()
        self.stored("/head")
        with p.client() as c:
            r = c.request("HEAD", "/head")
            self.assertCache(r, "HIT")
            self.assertEqual(r.header("Content-Length"), "20", r)
            # A body after the HEAD response would be read as the next response.
            self.assertCache(c.request("GET", "/head"), "HIT", self.BODY)

    def test_head_goes_upstream_as_get_and_fills_the_entry_for_get(self):
        self.start_cache()
        self.origin.route("/hfirst", headers=MAX_AGE_60)
        self.assertCache(self.get("/hfirst", method="HEAD"), "MISS", b"")
        # The HEAD's answer leaves with the head; the body it went up for is stored after.
        harness.wait_until(self.cache_files, 3, 0.05, "the entry to be stored")
        time.sleep(0.05)
        self.assertCache(self.get("/hfirst"), "HIT", b"/hfirst #1\n")
        self.assertEqual([s.method for s in self.origin.requests("/hfirst")], ["GET"])


class Variants(CacheCase):
    """Vary: Accept-Encoding, the origin answering "for ENCODING"."""

    ENCODINGS = ("gzip", "br")

    def vary_origin(self, path):
        self.origin.route(path, lambda seen: Answer(
            headers=MAX_AGE_60 + [("Vary", "Accept-Encoding")],
            body=b"for %s\n" % (seen.header("Accept-Encoding") or "none").encode()))

    def get_as(self, path, ae):
        return self.get(path, [("Accept-Encoding", ae)])

    def stored_variants(self, path, **start):
        p = self.start_cache(**start)
        self.vary_origin(path)
        for ae in self.ENCODINGS:
            self.assertCache(self.get_as(path, ae), "MISS", b"for %s\n" % ae.encode())
        return p

    def test_vary_accept_encoding_variants_are_stored_apart_and_chosen_by_the_request(self):
        self.stored_variants("/v")
        for ae in self.ENCODINGS:
            self.assertCache(self.get_as("/v", ae), "HIT", b"for %s\n" % ae.encode())
        self.assertEqual(self.origin.count("/v"), 2)

    def test_request_without_the_varying_field_does_not_get_a_variant_made_for_one(self):
        self.stored_variants("/vn")
        self.assertCache(self.get("/vn"), "MISS", b"for none\n")
        self.assertCache(self.get("/vn"), "HIT", b"for none\n")

    def test_accept_encoding_spellings_of_one_list_select_one_variant(self):
        self.start_cache()
        self.vary_origin("/vs")
        self.assertCache(self.get_as("/vs", "gzip, deflate"), "MISS", b"for gzip, deflate\n")
        self.assertCache(self.get_as("/vs", "GZIP,deflate"), "HIT", b"for gzip, deflate\n")

    def test_successful_post_invalidates_every_variant_of_the_uri(self):
        self.stored_variants("/pv")
        self.origin.route("/pv", lambda seen: Answer(
            headers=MAX_AGE_60 + [("Vary", "Accept-Encoding")],
            body=b"for %s, after\n" % (seen.header("Accept-Encoding") or "").encode()))
        self.assertEqual(self.get("/pv", method="POST", body=b"x=1").status, 200)
        # The first refills the key; the second must not find its old variant.
        for ae in self.ENCODINGS:
            self.assertCache(self.get_as("/pv", ae), "MISS", b"for %s, after\n" % ae.encode())

    def test_response_that_starts_to_vary_leaves_no_file_of_the_plain_entry(self):
        self.start_cache()
        self.origin.route("/vc", lambda seen: Answer(headers=[("Cache-Control", "max-age=1")])
                          if seen.n == 1 else
                          Answer(headers=MAX_AGE_60 + [("Vary", "Accept-Encoding")]))
        self.assertCache(self.get_as("/vc", "gzip"), "MISS", b"/vc #1\n")
        time.sleep(1.1)
        self.assertCache(self.get_as("/vc", "gzip"), "EXPIRED", b"/vc #2\n")
        self.assertEqual(len(self.cache_files()), 1, self.cache_files())

    def test_purge_by_key_removes_every_variant_and_counts_them(self):
        self.stored_variants("/pv", locations=[location("/purge", proxy_cache_purge=ZONE)])
        r = self.get("/purge?key=httporigin/pv", method="PURGE")
        self.assertEqual((r.status, r.body), (200, b'{"cache":"c","purged":2}\n'))
        for ae in self.ENCODINGS:
            self.assertCache(self.get_as("/pv", ae), "MISS")

    def test_variants_survive_a_stop_and_start(self):
        p = self.stored_variants("/rv")
        p.stop()
        log_at = harness.file_size(p.error_log)
        p.start()
        harness.wait_for_line(p.error_log, r'cache "c": \d+ entries loaded', 5, log_at)
        for ae in self.ENCODINGS:
            self.assertCache(self.get_as("/rv", ae), "HIT", b"for %s\n" % ae.encode())


class BypassAndNoCache(CacheCase):
    """proxy_cache_bypass, proxy_no_cache, with a key without the query."""

    def start(self):
        return self.start_cache(proxy_cache_key="$scheme$proxy_host$uri",
                                proxy_cache_bypass=["$arg_nocache", "$http_x_bypass"],
                                proxy_no_cache=["$arg_nostore"])

    def test_bypass_by_argument_takes_the_response_from_the_origin(self):
        self.start()
        self.cached("/b", headers=MAX_AGE_60)
        self.assertCache(self.get("/b?nocache=1"), "BYPASS", b"/b #2\n")

    def test_bypass_by_request_header_takes_the_response_from_the_origin(self):
        self.start()
        self.cached("/b", headers=MAX_AGE_60)
        self.assertCache(self.get("/b", [("X-Bypass", "yes")]), "BYPASS", b"/b #2\n")

    def test_bypass_value_0_does_not_bypass(self):
        self.start()
        self.cached("/b", headers=MAX_AGE_60)
        self.assertCache(self.get("/b?nocache=0"), "HIT", b"/b #1\n")

    def test_bypassed_response_replaces_the_stored_one(self):
        self.start()
        self.cached("/b", headers=MAX_AGE_60)
        self.get("/b?nocache=1")
        self.assertCache(self.get("/b"), "HIT", b"/b #2\n")

    def test_no_cache_response_is_not_stored(self):
        self.start()
        self.origin.route("/n", headers=MAX_AGE_60)
        self.assertCache(self.get("/n?nostore=1"), "MISS", b"/n #1\n")
        self.assertCache(self.get("/n"), "MISS", b"/n #2\n")


class Lock(CacheCase):

    def test_lock_sends_one_request_upstream_for_a_herd_across_workers(self):
        self.start_cache(workers=2, proxy_cache_lock=True)
        self.origin.route("/herd", headers=MAX_AGE_60, delay=0.5)
        n = 100
        results = [None] * n
        conns = [http.client.HTTPConnection(harness.LOCALHOST, self.port, timeout=15)
                 for _ in range(n)]
        for c in conns:
            c.connect()
        go = threading.Barrier(n)

        def fetch(i):
            go.wait()
            try:
                conns[i].request("GET", "/herd")
                r = conns[i].getresponse()
                results[i] = (r.status, r.read(), r.getheader("X-Cache"))
            except OSError as e:
                results[i] = (0, repr(e).encode(), None)
            finally:
                conns[i].close()

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        self.assertEqual(self.origin.count("/herd"), 1)
        self.assertEqual([r[:2] for r in results], [(200, b"/herd #1\n")] * n)
        self.assertEqual(sorted(r[2] for r in results), ["HIT"] * (n - 1) + ["MISS"])

    def test_request_waiting_past_lock_timeout_goes_upstream_and_is_not_stored(self):
        self.start_cache(proxy_cache_lock=True, proxy_cache_lock_timeout="300ms")
        self.origin.route("/lt", lambda seen: Answer(headers=MAX_AGE_60,
                                                     delay=2 if seen.n == 1 else 0))
        filler = threading.Thread(target=self.get, args=("/lt",))
        filler.start()
        self.addCleanup(filler.join)
        harness.wait_until(lambda: self.origin.count("/lt") == 1, 3, 0.01, "the fill to start")
        self.assertCache(self.get("/lt", timeout=1.5), "MISS", b"/lt #2\n")
        filler.join(5)
        self.assertCache(self.get("/lt"), "HIT", b"/lt #1\n")

    def test_lock_of_a_killed_worker_holds_the_key_no_longer_than_lock_age(self):
        p = self.start_cache(proxy_cache_lock=True, proxy_cache_lock_age="1s",
                             proxy_cache_lock_timeout="10s")
        self.origin.route("/killed", lambda seen: Answer(headers=MAX_AGE_60,
                                                         delay=5 if seen.n == 1 else 0))
        filler = threading.Thread(target=lambda: self.get_quietly("/killed"))
        filler.start()
        self.addCleanup(filler.join)
        harness.wait_until(lambda: self.origin.count("/killed") == 1, 3, 0.01,
                           "the fill to start")
        old = p.worker_pids()
        os.kill(old[0], signal.SIGKILL)  # it dies holding the key's lock
        p.wait_new_workers(1, old)
        started = time.monotonic()
        self.assertCache(self.get("/killed", timeout=8), "MISS", b"/killed #2\n")
        # Not the 10 s lock_timeout: the dead worker's lock lapsed after lock_age.
        self.assertLess(time.monotonic() - started, 3)
        self.assertCache(self.get("/killed"), "HIT", b"/killed #2\n")

    def get_quietly(self, path):
        """GET <path>, whose connection may die with its worker."""
        try:
            self.get(path, timeout=8)
        except Exception:  # the reset or the EOF of a killed worker
            pass


STALE_ON = ["error", "timeout", "http_500", "http_502", "http_503"]


class Stale(CacheCase):
    """Expired entries served when the origin fails or while they are refreshed."""

    def expired(self, path, cache_control="max-age=1"):
        """<path> stored with <cache_control>, then expired."""
        self.cached(path, headers=[("Cache-Control", cache_control)])
        time.sleep(1.1)

    def test_use_stale_error_serves_the_expired_entry_when_the_origin_is_down(self):
        self.start_cache(proxy_cache_use_stale=STALE_ON)
        self.expired("/s")
        self.origin.stop()
        self.assertCache(self.get("/s"), "STALE", b"/s #1\n")

    def test_use_stale_http_500_serves_the_expired_entry_for_an_origin_500(self):
        self.start_cache(proxy_cache_use_stale=STALE_ON)
        self.expired("/s")
        self.origin.route("/s", status=500)
        self.assertCache(self.get("/s"), "STALE", b"/s #1\n")

    def test_expired_entry_is_not_served_stale_without_use_stale(self):
        self.start_cache()
        self.expired("/s")
        self.origin.route("/s", status=500)
        self.assertCache(self.get("/s"), "EXPIRED", b"/s #2\n", code=500)

    def test_must_revalidate_entry_is_not_served_stale_when_the_origin_is_down(self):
        self.start_cache(proxy_cache_use_stale=STALE_ON)
        self.expired("/mr", "max-age=1, must-revalidate")
        self.origin.stop()
        r = self.get("/mr")
        self.assertEqual(r.status, 502, r)
        self.assertNotEqual(r.header("X-Cache"), "STALE", r)

    def test_must_revalidate_entry_is_not_served_stale_for_an_origin_500(self):
        self.start_cache(proxy_cache_use_stale=STALE_ON)
        self.expired("/mr", "max-age=1, must-revalidate")
        self.origin.route("/mr", status=500)
        self.assertCache(self.get("/mr"), "EXPIRED", b"/mr #2\n", code=500)

    def test_stale_if_error_serves_the_expired_entry_for_an_origin_500_without_use_stale(self):
        self.start_cache()
        self.expired("/sie", "max-age=1, stale-if-error=60")
        self.origin.route("/sie", status=500)
        self.assertCache(self.get("/sie"), "STALE", b"/sie #1\n")

    def test_stale_if_error_serves_the_expired_entry_when_the_origin_is_down(self):
        self.start_cache()
        self.expired("/sie", "max-age=1, stale-if-error=60")
        self.origin.stop()
        self.assertCache(self.get("/sie"), "STALE", b"/sie #1\n")

    def test_use_stale_updating_answers_at_once_while_one_request_refreshes(self):
        self.start_cache(proxy_cache_use_stale=["updating"])
        self.origin.route("/u", lambda seen: Answer(headers=[("Cache-Control", "max-age=1")],
                                                    delay=0 if seen.n == 1 else 2))
        self.cached("/u")
        time.sleep(1.1)
        refresh = {}
        t = threading.Thread(target=lambda: refresh.update(r=self.get("/u")))
        t.start()
        self.addCleanup(t.join)
        harness.wait_until(lambda: self.origin.count("/u") == 2, 3, 0.01, "the refresh to start")
        start = time.monotonic()
        r = self.get("/u")
        took = time.monotonic() - start
        self.assertCache(r, "UPDATING", b"/u #1\n")
        self.assertLess(took, 1)
        t.join(5)
        self.assertCache(refresh["r"], "EXPIRED", b"/u #2\n")

    def test_stale_while_revalidate_answers_at_once_while_one_request_refreshes(self):
        self.start_cache()
        self.origin.route("/swr", lambda seen: Answer(
            headers=[("Cache-Control", "max-age=1, stale-while-revalidate=60")],
            delay=0 if seen.n == 1 else 2))
        self.cached("/swr")
        time.sleep(1.1)
        t = threading.Thread(target=self.get, args=("/swr",))
        t.start()
        self.addCleanup(t.join)
        harness.wait_until(lambda: self.origin.count("/swr") == 2, 3, 0.01, "the refresh to start")
        self.assertCache(self.get("/swr", timeout=1.5), "UPDATING", b"/swr #1\n")


class Purge(CacheCase):
    """proxy_cache_purge, the key being the default "$scheme$proxy_host$request_uri"."""

    def start(self):
        return self.start_cache(locations=[
            location("/purge", proxy_cache_purge=ZONE),
            location("/purge-closed", proxy_cache_purge=ZONE, deny=["all"]),
        ])

    def purge(self, query, method="PURGE", where="/purge"):
        return self.get("%s?%s" % (where, urllib.parse.urlencode(query)), method=method)

    def test_purge_by_key_answers_the_count_and_the_next_get_is_a_miss(self):
        self.start()
        self.cached("/x", headers=MAX_AGE_60)
        r = self.purge({"key": "httporigin/x"})
        self.assertEqual((r.status, r.header("Content-Type"), r.body),
                         (200, "application/json", b'{"cache":"c","purged":1}\n'))
        self.assertCache(self.get("/x"), "MISS", b"/x #2\n")

    def test_purge_by_prefix_removes_every_key_so_starting(self):
        self.start()
        for path in ("/pp/a", "/pp/b", "/keep"):
            self.cached(path, headers=MAX_AGE_60)
        r = self.purge({"prefix": "httporigin/pp/"})
        self.assertEqual((r.status, r.body), (200, b'{"cache":"c","purged":2}\n'))
        self.assertCache(self.get("/pp/a"), "MISS")
        self.assertCache(self.get("/keep"), "HIT")

    def test_delete_purges_like_purge(self):
        self.start()
        self.cached("/x", headers=MAX_AGE_60)
        r = self.purge({"key": "httporigin/x"}, method="DELETE")
        self.assertEqual((r.status, r.body), (200, b'{"cache":"c","purged":1}\n'))
        self.assertCache(self.get("/x"), "MISS")

    def test_purge_removes_the_file(self):
        self.start()
        self.cached("/x", headers=MAX_AGE_60)
        self.only_file()
        self.purge({"key": "httporigin/x"})
        self.assertEqual(self.cache_files(), [])

    def test_get_on_the_purge_location_is_405_with_allow(self):
        self.start()
        r = self.get("/purge?key=httporigin/x")
        self.assertEqual((r.status, r.header("Allow")), (405, "PURGE, DELETE"), r)

    def test_purge_location_denied_to_the_client_answers_403_and_keeps_the_entry(self):
        self.start()
        self.cached("/x", headers=MAX_AGE_60)
        self.assertEqual(self.purge({"key": "httporigin/x"}, where="/purge-closed").status, 403)
        self.assertCache(self.get("/x"), "HIT")


class Survival(CacheCase):
    """A stored entry outlives the processes that stored it."""

    def test_entry_survives_a_reload(self):
        p = self.start_cache(workers=2)
        self.cached("/r", headers=MAX_AGE_60)
        p.reload()
        self.assertCache(self.get("/r"), "HIT", b"/r #1\n")

    def test_entry_survives_a_binary_upgrade(self):
        p = self.start_cache()
        self.cached("/up", headers=MAX_AGE_60)
        old = p.pid
        os.kill(old, signal.SIGUSR2)
        new = harness.wait_until(lambda: self.new_master(p, old), 10, 0.02, "a new master")
        self.addCleanup(self.stop_master, new)
        harness.wait_until(lambda: self.workers_of(new), 10, 0.02, "the new master's worker")
        os.kill(old, signal.SIGWINCH)
        harness.wait_until(lambda: not self.workers_of(old), 10, 0.02, "the old worker to exit")
        os.kill(old, signal.SIGQUIT)
        self.assertIsNotNone(p.wait_exit(10), "the old master did not exit on QUIT")
        self.assertCache(self.get("/up"), "HIT", b"/up #1\n")

    def test_entry_survives_a_stop_and_start(self):
        p = self.start_cache()
        self.cached("/restart", headers=MAX_AGE_60)
        p.stop()
        log_at = harness.file_size(p.error_log)
        p.start()
        harness.wait_for_line(p.error_log, r'cache "c": 1 entries loaded', 5, log_at)
        self.assertCache(self.get("/restart"), "HIT", b"/restart #1\n")

    def test_loader_removes_unsound_files_and_abandoned_temporary_files(self):
        p = self.start_cache()
        self.cached("/keep", headers=MAX_AGE_60)
        p.stop()
        kept = self.only_file()
        unsound = os.path.join(self.cache_dir, "0123456789abcdef0123456789abcdef")
        abandoned = kept + ".999999999.1.tmp"  # its writer's pid cannot exist
        for path in (unsound, abandoned):
            with open(path, "wb") as f:
                f.write(b"not a cache file")
        log_at = harness.file_size(p.error_log)
        p.start()
        harness.wait_for_line(p.error_log, r'cache "c": 1 entries loaded', 5, log_at)
        left = [os.path.join(d, n) for d, _, names in os.walk(self.cache_dir) for n in names]
        self.assertEqual(left, [kept])

    @staticmethod
    def new_master(p, old):
        try:
            with open(p.pid_path) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if pid != old and harness.pid_alive(pid) else None

    @staticmethod
    def workers_of(master):
        return [k for k in harness.children(master) if "worker" in harness.proc_title(k)]

    @staticmethod
    def stop_master(pid):
        if harness.pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            harness.wait_until(lambda: not harness.pid_alive(pid), 10, 0.05,
                               "master %d to exit" % pid)


class BadResponsesAndFiles(CacheCase):

    def test_truncated_upstream_response_is_not_stored(self):
        self.start_cache()
        self.origin.route("/cut", headers=MAX_AGE_60, body=b"z" * 1000, truncate=100)
        try:
            self.get("/cut")
        except harness.ProtocolError:
            pass  # the client sees the cut too
        self.origin.route("/cut", headers=MAX_AGE_60)
        self.assertCache(self.get("/cut"), "MISS", b"/cut #2\n")
        self.assertEqual(self.origin.count("/cut"), 2)

    def corrupt_then_refetch(self, damage):
        self.start_cache(zone_opts="memory_max_object=0")
        self.cached("/f", headers=MAX_AGE_60)
        self.assertCache(self.get("/f"), "HIT")
        damage(self.only_file())
        self.assertCache(self.get("/f"), "MISS", b"/f #2\n")
        self.assertCache(self.get("/f"), "HIT", b"/f #2\n")

    def test_file_with_a_damaged_header_is_a_miss_and_is_stored_again(self):
        def damage(path):
            with open(path, "r+b") as f:
                data = f.read()
                f.seek(data.index(b"max-age=60"))
                f.write(b"max-age=99")
        self.corrupt_then_refetch(damage)

    def test_truncated_file_is_a_miss_and_is_stored_again(self):
        self.corrupt_then_refetch(lambda path: os.truncate(path, os.path.getsize(path) - 3))

    def test_max_size_evicts_the_least_recently_used_entry(self):
        self.start_cache(zone_opts="max_size=64k")
        for path in ("/e1", "/e2", "/e3"):
            self.origin.route(path, headers=MAX_AGE_60, body=b"e" * 30000)
            self.assertCache(self.get(path), "MISS")
        harness.wait_until(lambda: sum(map(os.path.getsize, self.cache_files())) <= 65536, 3,
                           0.05, "the sweep to bring the files under max_size")
        self.assertCache(self.get("/e3"), "HIT")
        self.assertCache(self.get("/e1"), "MISS")

    def test_entry_unused_for_inactive_is_removed_with_its_file(self):
        self.start_cache(zone_opts="inactive=1s")
        self.cached("/idle", headers=MAX_AGE_60)
        self.only_file()
        harness.wait_until(lambda: not self.cache_files(), 3.5, 0.05,
                           "the sweep to remove the file")
        self.assertCache(self.get("/idle"), "MISS", b"/idle #2\n")


class Configuration(CacheCase):

    def config_test(self, **directives):
        """`portier -t` of a configuration caching with <directives>: (its result, the
        Portier holding the configuration)."""
        self.port = harness.free_port()
        p = self.start_portier(start=False)
        p.write_config(self.cache_http(p, **directives))
        return p.run("-t", "-c", p.conf_path), p

    @staticmethod
    def line_of(p, needle):
        return next(i + 1 for i, line in enumerate(p.text.splitlines()) if needle in line)

    def test_proxy_cache_naming_an_unknown_zone_fails_the_config_test(self):
        res, p = self.config_test(proxy_cache="nope")
        self.assertNotEqual(res.returncode, 0)
        self.assertIn('%s:%d: unknown cache "nope" in "proxy_cache"' %
                      (p.conf_path, self.line_of(p, 'proxy_cache = "nope"')),
                      res.stderr.decode())

    def test_proxy_cache_purge_naming_an_unknown_zone_fails_the_config_test(self):
        res, p = self.config_test(proxy_cache_purge="nope")
        self.assertNotEqual(res.returncode, 0)
        self.assertIn('%s:%d: unknown cache "nope" in "proxy_cache_purge"' %
                      (p.conf_path, self.line_of(p, 'proxy_cache_purge = "nope"')),
                      res.stderr.decode())

    def test_cache_directory_that_cannot_be_created_fails_the_config_test(self):
        self.port = harness.free_port()
        p = self.start_portier(start=False)
        blocker = os.path.join(p.dir, "afile")
        open(blocker, "w").close()
        http = self.cache_http(p)
        http["proxy_cache_path"] = ["%s/cache levels=1:2 keys_zone=c:1m" % blocker]
        p.write_config(http)
        res = p.run("-t", "-c", p.conf_path)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn('%s:%d: cannot create the cache directory "%s/cache": Not a directory' %
                      (p.conf_path, self.line_of(p, "proxy_cache_path"), blocker),
                      res.stderr.decode())


class Logging(CacheCase):

    def test_upstream_cache_status_is_logged(self):
        self.port = harness.free_port()
        p = self.start_portier(start=False)
        http = self.cache_http(p, http_extra={
            "log_format": {"cache": "$request_uri $upstream_cache_status"},
            "access_log": "%s cache" % p.access_log})
        self.origin.route("/log", headers=MAX_AGE_60)
        p.write_config(http)
        p.start()
        self.get("/log")
        self.get("/log")
        harness.wait_until(lambda: len(p.access_lines()) >= 2, 3, 0.05, "two access log lines")
        self.assertEqual(p.access_lines(), ["/log MISS", "/log HIT"])


if __name__ == "__main__":
    harness.main()
