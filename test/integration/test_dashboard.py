"""
The status module's live dashboard: a browser's GET of a status location (an Accept naming
text/html) gets one self-contained page, which polls the same URL for the JSON and, where
the location has status = "write", drives the servers' controls.  The page is checked in
headless Chromium (webdriver.py): it loads without a console error, lists the configured
servers and their state, a drain click drains the server in the JSON status, and it still
reads in a narrow window.  Screenshots are kept under the build dir's artifacts/ (their
paths are printed).  Without chromium and chromedriver the browser tests fail, saying what
to install.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from decimal import ROUND_HALF_UP, Decimal

import harness
import webdriver
from harness import location, server, upstream
from test_metrics import Exchange

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(harness.PORTIER_BIN)), "artifacts")


def start_lb(test, status="write", **directives):
    """Portier before b1, b2 and a server configured down, with the status location at
    /status; returns (portier, b1, b2, the down server's address)."""
    b1, b2 = test.start_backend("b1"), test.start_backend("b2")
    off = "127.0.0.1:%d" % harness.free_port()
    p = test.start_portier({
        "upstream": {"app": upstream(b1.addr, b2.addr, off + " down")},
        "server": [server(harness.free_port(), [
            location("= /status", status=status, **directives),
            location("/", proxy_pass="http://app")])],
    })
    return p, b1, b2, off


def get(p, accept=None):
    return harness.http_request(p.port, "GET", "/status",
                                headers=[("Accept", accept)] if accept else [])


def built_with(module):
    """Whether this build of portier has <module> (its -V lists the modules)."""
    if not os.access(harness.PORTIER_BIN, os.X_OK):
        return False  # harness.main() says what is missing
    out = subprocess.run([harness.PORTIER_BIN, "-V"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True).stdout
    return any(module in line.split() for line in out.splitlines()
               if line.startswith("modules:"))


needs_metrics = unittest.skipUnless(built_with("metrics"),
                                    "portier built without the metrics module")


def ms(v):
    """A latency as the page writes it."""
    if v is None:
        return "\u2014"
    # Number.toFixed rounds the exact binary value, a tie upwards.
    places = Decimal(1) if v >= 100 else Decimal("0.1") if v >= 10 else Decimal("0.01")
    return "%s ms" % Decimal(v).quantize(places, rounding=ROUND_HALF_UP)


def start_counted(test):
    """Portier counting (a status_zone): a server app.test proxying /api/ (status_zone
    "api") to b1 and b2 and answering /missing with a 404, and the status location on a
    server of its own, so that reading the status adds nothing to app.test's counts.
    Returns (portier, the status server's port, b1, b2)."""
    b1, b2 = test.start_backend("b1"), test.start_backend("b2")
    app, status = harness.free_port(), harness.free_port()
    p = test.start_portier({
        "upstream": {"app": upstream(b1.addr, b2.addr)},
        "server": [
            server(app, [location("/api/", proxy_pass="http://app", status_zone="api"),
                         location("/missing", ret="404")], names=["app.test"]),
            server(status, [location("= /status", status="write")], names=["status.test"])],
    })
    p.app_port = app
    return p, status, b1, b2


def send_known(p):
    """6 requests to /api/ (200) and 3 to /missing (404) on one connection; returns the
    bytes (received, sent) as portier counts them."""
    ex = Exchange()
    with p.client(p.app_port) as c:
        for i in range(6):
            assert ex.request(c, "GET", "/api/%d" % i).status == 200
        for _ in range(3):
            assert ex.request(c, "GET", "/missing").status == 404
    return ex


def status_doc(port):
    return json.loads(harness.http_request(port, "GET", "/status").body)


def counted(port, n):
    """The status document once app.test counted <n> requests (a worker counts a request
    once its answer is out, so the last may still be on its way when the client has it)."""
    def probe():
        doc = status_doc(port)
        return doc if doc.get("servers", {}).get("app.test", {}).get("requests") == n else None
    return harness.wait_until(probe, 5.0, 0.05, "app.test to count %d requests" % n)


class DashboardHTTP(harness.TestCase):
    """What the status location answers, by the request's Accept."""

    def test_a_browser_gets_the_page_and_a_script_the_json(self):
        p, b1, _, _ = start_lb(self)
        page = get(p, BROWSER_ACCEPT)
        self.assertEqual(page.status, 200)
        self.assertEqual(page.header("Content-Type"), "text/html; charset=utf-8")
        self.assertEqual(page.header("Vary"), "Accept")
        self.assertIn("frame-ancestors 'none'", page.header("Content-Security-Policy"))
        self.assertTrue(page.body.startswith(b"<!doctype html>"))
        for accept in (None, "*/*", "application/json", "text/html;q=0, */*"):
            r = get(p, accept)
            self.assertEqual(r.header("Content-Type"), "application/json", accept)
            self.assertEqual(r.header("Vary"), "Accept", accept)
            self.assertIn(b1.addr, [s["server"] for s in
                                    json.loads(r.body)["upstreams"]["app"]["servers"]])

    def test_the_page_has_no_outside_asset(self):
        p, _, _, _ = start_lb(self)
        body = get(p, BROWSER_ACCEPT).body.decode()
        self.assertEqual(re.findall(r"""(?:src|href)\s*=\s*["'](?!data:|#)[^"']*""", body), [])
        self.assertNotIn("@import", body)

    def test_the_page_offers_controls_only_where_the_location_takes_writes(self):
        p, _, _, _ = start_lb(self)
        self.assertIn(b'<meta name="portier-status-write" content="true">',
                      get(p, BROWSER_ACCEPT).body)
        p, _, _, _ = start_lb(self, status=True)
        self.assertIn(b'<meta name="portier-status-write" content="false">',
                      get(p, BROWSER_ACCEPT).body)

    def test_status_dashboard_off_answers_json_to_a_browser(self):
        p, _, _, _ = start_lb(self, status_dashboard=False)
        r = get(p, BROWSER_ACCEPT)
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertIsNone(r.header("Vary"))


@needs_metrics
class StatusCounts(harness.TestCase):
    """With the metrics module counting, the status document has the servers' and
    status_zone locations' counts and latencies, and each upstream server's latencies."""

    def assertLatency(self, lat, count):
        self.assertEqual(lat["count"], count)
        self.assertTrue(0 <= lat["p50"] <= lat["p99"] <= 10000, lat)
        self.assertGreaterEqual(lat["mean"], 0)
        self.assertLess(lat["mean"], 1000, "a local request took a second?")

    def test_server_and_location_counts_equal_the_requests_sent(self):
        p, status, _, _ = start_counted(self)
        ex = send_known(p)
        doc = counted(status, 9)
        app = doc["servers"]["app.test"]
        self.assertEqual(app["responses"], {"1xx": 0, "2xx": 6, "3xx": 0, "4xx": 3, "5xx": 0})
        self.assertEqual((app["bytes_in"], app["bytes_out"]), (ex.bytes_in, ex.bytes_out))
        self.assertLatency(app["request_ms"], 9)
        api = doc["locations"]["api"]
        self.assertEqual(api["requests"], 6)
        self.assertEqual(api["responses"]["2xx"], 6)
        self.assertLatency(api["request_ms"], 6)
        self.assertEqual(list(doc["locations"]), ["api"])

    def test_each_upstream_server_has_its_response_times(self):
        p, status, b1, b2 = start_counted(self)
        send_known(p)
        servers = counted(status, 9)["upstreams"]["app"]["servers"]
        self.assertEqual(sum(s["response_ms"]["count"] for s in servers), 6)
        for s in servers:
            self.assertEqual(s["requests"], s["response_ms"]["count"])
            self.assertEqual(s["header_ms"]["count"], s["response_ms"]["count"])
            self.assertLatency(s["response_ms"], s["requests"])
            self.assertLessEqual(s["header_ms"]["mean"], s["response_ms"]["mean"])

    def test_nothing_observed_reads_null_not_zero(self):
        p, status, _, _ = start_counted(self)
        doc = status_doc(status)
        self.assertEqual(doc["servers"]["app.test"]["request_ms"],
                         {"count": 0, "mean": None, "p50": None, "p99": None})
        self.assertEqual(doc["upstreams"]["app"]["servers"][0]["response_ms"]["p99"], None)

    def test_without_counting_the_document_has_no_metrics_sections(self):
        p, _, _, _ = start_lb(self)
        doc = json.loads(get(p).body)
        self.assertNotIn("servers", doc)
        self.assertNotIn("locations", doc)
        self.assertNotIn("response_ms", doc["upstreams"]["app"]["servers"][0])


class DashboardBrowser(harness.TestCase):
    """The page in headless Chromium."""

    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="pt-it-chromium-")
        cls.addClassCleanup(shutil.rmtree, cls.workdir, True)
        try:
            cls.browser = webdriver.Browser(cls.workdir)
            cls.browser.start()
        except webdriver.Unavailable as e:
            raise AssertionError(str(e)) from None
        cls.addClassCleanup(cls.browser.stop)

    def setUp(self):
        super().setUp()
        self.browser.logs()  # what an earlier test's page logged is not this test's
        self.addCleanup(self.browser.resize, 1280, 900)

    def open(self, p, servers):
        """Opens portier <p>'s dashboard and waits until it lists <servers>."""
        self.browser.open("http://127.0.0.1:%d/status" % p.port)
        # Left before <p> stops (cleanups run last first): a page still polling a stopped
        # portier would log failed loads into the next test.
        self.addCleanup(self.browser.open, "about:blank")
        self.browser.wait("document.querySelectorAll('tr[data-server]').length >= %d"
                          % len(servers), what="the page to list %s" % ", ".join(servers))

    def page_states(self):
        return self.browser.js(
            "const s = {}; for (const tr of document.querySelectorAll('tr[data-server]'))"
            " s[tr.dataset.server] = tr.querySelector('[data-field=state] .state').textContent;"
            " return s;")

    def json_server(self, p, addr):
        doc = json.loads(get(p).body)
        return {s["server"]: s for s in doc["upstreams"]["app"]["servers"]}[addr]

    def keep_screenshot(self, name):
        path = self.browser.screenshot(os.path.join(ARTIFACTS, "dashboard-%s.png" % name))
        sys.stderr.write("\nscreenshot: %s\n" % path)
        return path

    def assertNoConsoleErrors(self):
        self.assertEqual(self.browser.console_errors(), [])

    def test_the_page_shows_every_server_and_its_state_without_console_errors(self):
        p, b1, b2, off = start_lb(self)
        self.open(p, [b1.addr, b2.addr, off])
        self.assertEqual(self.page_states(), {b1.addr: "up", b2.addr: "up", off: "down"})
        self.assertIn("configuration", self.browser.js(
            "return document.querySelector('tr[data-server=\"%s\"] [data-field=state]')"
            ".textContent;" % off))
        self.assertEqual(self.browser.js("return document.title;"), "portier status")
        time.sleep(2.5)  # a few polls
        self.keep_screenshot("wide")
        self.assertNoConsoleErrors()

    def test_a_drain_click_drains_the_server_in_the_json_and_on_the_page(self):
        p, b1, b2, off = start_lb(self)
        self.open(p, [b1.addr, b2.addr, off])
        self.browser.click('tr[data-server="%s"] button[data-action="drain"]' % b1.addr)
        harness.wait_until(lambda: self.json_server(p, b1.addr)["state"] == "draining", 5.0,
                           0.05, "the JSON status to say %s is draining" % b1.addr)
        self.browser.wait("document.querySelector('tr[data-server=\"%s\"] .state')"
                          ".textContent == 'draining'" % b1.addr, what="the page to show it")
        self.assertIn("now draining", self.browser.js(
            "return document.getElementById('notice').textContent;"))
        self.assertEqual(self.json_server(p, b2.addr)["state"], "up")
        self.keep_screenshot("drained")
        self.browser.click('tr[data-server="%s"] button[data-action="up"]' % b1.addr)
        harness.wait_until(lambda: self.json_server(p, b1.addr)["state"] == "up", 5.0, 0.05,
                           "%s to be up again" % b1.addr)
        self.assertNoConsoleErrors()

    def test_a_weight_set_on_the_page_is_the_servers_weight(self):
        p, b1, b2, off = start_lb(self)
        self.open(p, [b1.addr, b2.addr, off])
        row = 'tr[data-server="%s"]' % b2.addr
        self.browser.type(row + " input[type=number]", "7")
        self.browser.click(row + " form button")
        harness.wait_until(lambda: self.json_server(p, b2.addr)["weight"] == 7, 5.0, 0.05,
                           "the weight of %s to be 7" % b2.addr)
        self.browser.wait("document.querySelector('%s [data-field=weight]').textContent"
                          ".startsWith('7')" % row, what="the page to show weight 7")
        self.assertNoConsoleErrors()

    def test_a_read_only_location_shows_no_controls(self):
        p, b1, b2, off = start_lb(self, status=True)
        self.open(p, [b1.addr, b2.addr, off])
        self.assertEqual(self.browser.js(
            "return document.querySelectorAll('button, input, form').length;"), 0)
        self.assertIn("Read-only", self.browser.js(
            "return document.getElementById('mode').textContent;"))
        self.assertNoConsoleErrors()

    def test_every_control_and_table_is_labelled(self):
        p, b1, b2, off = start_lb(self)
        self.open(p, [b1.addr, b2.addr, off])
        unlabelled = self.browser.js("""
            const bad = [];
            for (const i of document.querySelectorAll('input'))
                if (!i.labels.length || !i.labels[0].textContent.trim()) bad.push(i.outerHTML);
            for (const b of document.querySelectorAll('button'))
                if (!(b.getAttribute('aria-label') || b.textContent).trim()) bad.push(b.outerHTML);
            for (const t of document.querySelectorAll('table'))
                if (!t.caption || !t.tHead) bad.push('table without caption or thead');
            for (const th of document.querySelectorAll('th'))
                if (!th.scope) bad.push(th.outerHTML);
            return bad;""")
        self.assertEqual(unlabelled, [])
        self.assertIn("Drain %s of upstream app" % b1.addr, self.browser.js(
            "return [...document.querySelectorAll('button')].map(b => b.ariaLabel).join('|');"))
        self.assertNoConsoleErrors()

    def test_request_rates_come_from_successive_polls(self):
        p, b1, b2, off = start_lb(self)
        self.open(p, [b1.addr, b2.addr, off])
        deadline = time.monotonic() + 10
        rps = None
        while time.monotonic() < deadline and not rps:
            for _ in range(10):
                self.assertEqual(p.get("/").status, 200)
            rps = self.browser.js(
                "return [...document.querySelectorAll('[data-field=rps]')]"
                ".map(c => parseFloat(c.textContent)).filter(n => n > 0);")
            time.sleep(0.1)
        self.assertTrue(rps, "no Req/s above 0 while requests were sent")
        self.assertEqual(self.browser.js(
            "return document.querySelector('tr[data-server=\"%s\"] [data-field=rps]')"
            ".textContent;" % off), "0.0")
        self.assertNoConsoleErrors()

    def zone_cells(self, kind, name):
        return self.browser.js(
            "const c = {}; for (const td of document.querySelectorAll("
            "'table[data-kind=%s] tr[data-zone=\"%s\"] [data-field]'))"
            " c[td.dataset.field] = td.textContent; return c;" % (kind, name))

    @needs_metrics
    def test_servers_and_locations_tables_show_the_counts_and_latencies(self):
        p, status, b1, b2 = start_counted(self)
        send_known(p)
        doc = counted(status, 9)
        self.browser.open("http://127.0.0.1:%d/status" % status)
        self.addCleanup(self.browser.open, "about:blank")
        self.browser.wait("document.querySelector('tr[data-zone=\"api\"]') !== null",
                          what="the page to list the location api")
        app = self.zone_cells("servers", "app.test")
        self.assertEqual((app["requests"], app["2xx"], app["4xx"], app["5xx"], app["errors"]),
                         ("9", "6", "3", "0", "0.0 %"))
        self.assertEqual(app["p50"], ms(doc["servers"]["app.test"]["request_ms"]["p50"]))
        self.assertEqual(app["p99"], ms(doc["servers"]["app.test"]["request_ms"]["p99"]))
        api = self.zone_cells("locations", "api")
        self.assertEqual((api["name"], api["requests"], api["2xx"]), ("api", "6", "6"))
        self.assertTrue(api["p99"].endswith(" ms"), api)
        # The status server counts the page's own polls: its row is there too.
        self.assertIn("status.test", self.browser.js(
            "return [...document.querySelectorAll('table[data-kind=servers] tr[data-zone]')]"
            ".map(tr => tr.dataset.zone);"))
        for addr in (b1.addr, b2.addr):
            peer = {s["server"]: s for s in doc["upstreams"]["app"]["servers"]}[addr]
            cell = self.browser.js(
                "return document.querySelector('tr[data-server=\"%s\"] [data-field=latency]')"
                ".textContent;" % addr)
            self.assertEqual(cell, "%s / %s" % (ms(peer["response_ms"]["p50"])[:-3],
                                                ms(peer["response_ms"]["p99"])))
        self.assertLessEqual(self.browser.js("return document.documentElement.scrollWidth;"),
                             self.browser.js("return window.innerWidth;"),
                             "the page scrolls sideways")
        self.keep_screenshot("zones")
        self.assertNoConsoleErrors()

    @needs_metrics
    def test_a_narrow_window_stacks_each_server_and_location_as_a_card(self):
        p, status, _, _ = start_counted(self)
        send_known(p)
        counted(status, 9)
        self.browser.resize(390, 844)
        self.browser.open("http://127.0.0.1:%d/status" % status)
        self.addCleanup(self.browser.open, "about:blank")
        self.browser.wait("document.querySelector('tr[data-zone=\"api\"]') !== null",
                          what="the page to list the location api")
        layout = self.browser.js("""
            const row = document.querySelector('table[data-kind=locations] tr[data-zone]');
            return {scroll: document.documentElement.scrollWidth, width: window.innerWidth,
                    row: getComputedStyle(row).display,
                    label: getComputedStyle(row.querySelector('[data-field=p99]'), '::before')
                        .content};""")
        self.assertLessEqual(layout["scroll"], layout["width"], "the page scrolls sideways")
        self.assertEqual(layout["row"], "block")
        self.assertEqual(layout["label"], '"p99"')
        self.keep_screenshot("zones-narrow")
        self.assertNoConsoleErrors()

    def test_without_counting_the_page_has_no_servers_or_latency_columns(self):
        p, b1, b2, off = start_lb(self, status=True)
        self.open(p, [b1.addr, b2.addr, off])
        time.sleep(1.5)
        shown = self.browser.js(
            "return {servers: !document.getElementById('zones-servers').hidden,"
            " locations: !document.getElementById('zones-locations').hidden,"
            " latency: document.querySelectorAll('[data-field=latency]').length};")
        self.assertEqual(shown, {"servers": False, "locations": False, "latency": 0})
        self.assertNoConsoleErrors()

    def test_a_narrow_window_stacks_each_server_as_a_card(self):
        p, b1, b2, off = start_lb(self)
        self.browser.resize(390, 844)
        self.open(p, [b1.addr, b2.addr, off])
        width = self.browser.js("return window.innerWidth;")
        self.assertLessEqual(width, 480, "the window did not narrow")
        layout = self.browser.js("""
            const row = document.querySelector('tr[data-server]');
            return {scroll: document.documentElement.scrollWidth,
                    row: getComputedStyle(row).display,
                    head: getComputedStyle(document.querySelector('table.servers thead')).position,
                    label: getComputedStyle(row.querySelector('td'), '::before').content,
                    outside: [...document.querySelectorAll('button, input')]
                        .filter(e => e.getBoundingClientRect().right > window.innerWidth)
                        .map(e => e.outerHTML)};""")
        self.assertLessEqual(layout["scroll"], width, "the page scrolls sideways")
        self.assertEqual(layout["row"], "block")
        self.assertEqual(layout["head"], "absolute")
        self.assertEqual(layout["label"], '"State"')
        self.assertEqual(layout["outside"], [])
        self.keep_screenshot("narrow")
        self.assertNoConsoleErrors()


if __name__ == "__main__":
    harness.main()
