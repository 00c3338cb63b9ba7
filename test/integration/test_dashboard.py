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
import sys
import tempfile
import time

import harness
import webdriver
from harness import location, server, upstream

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
