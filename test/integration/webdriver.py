"""
webdriver.py: headless Chromium for the dashboard's tests, driven through chromedriver's
W3C WebDriver HTTP API with urllib (no package beyond the Debian ones: chromium and
chromium-driver, which scripts/deps installs).

    with Browser(workdir) as b:
        b.open("http://127.0.0.1:8080/status")
        b.wait("document.querySelectorAll('tr[data-server]').length == 2")
        b.click('button[data-action="drain"]')
        b.screenshot(path)
        b.console_errors()  # [] when the page logged none

A missing chromium or chromedriver raises Unavailable with what to install: the tests
that need the browser then fail saying so, they are not skipped.
"""

import base64
import json
import os
import shutil
import time
import urllib.error
import urllib.request

from procs import free_port, spawn, terminate

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C name of an element reference


class Unavailable(Exception):
    """Chromium or chromedriver is not installed, or will not start."""


class WebDriverError(Exception):
    pass


def find_binaries():
    """(chromium, chromedriver) paths; Unavailable naming the packages when one is missing."""
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        raise Unavailable("the dashboard tests need headless Chromium and chromedriver, and %s "
                          "is not on PATH: run scripts/deps (Debian packages chromium and "
                          "chromium-driver)" % ("chromium" if browser is None else "chromedriver"))
    return browser, driver


class Browser:
    """One chromedriver process and one headless Chromium session in it."""

    def __init__(self, workdir, width=1280, height=900):
        self.browser, self.driver = find_binaries()
        self.workdir = workdir
        self.size = (width, height)
        self.proc = None
        self.session = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=30.0):
        port = free_port()
        # In a session of its own: stopping it kills the Chromium it started too.
        log = os.path.join(self.workdir, "chromedriver.log")
        self.proc = spawn([self.driver, "--port=%d" % port], log, log)
        self.base = "http://127.0.0.1:%d" % port
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._call("GET", "/status").get("ready"):
                    break
            except (OSError, WebDriverError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise Unavailable("chromedriver did not start (see %s/chromedriver.log)"
                                  % self.workdir)
            time.sleep(0.05)
        args = ["--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--user-data-dir=" + os.path.join(self.workdir, "chromium-profile"),
                "--window-size=%d,%d" % self.size]
        # Chromium's sandbox needs user namespaces, which containers and root often lack.
        args.append("--no-sandbox")
        try:
            caps = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": self.browser, "args": args},
                "goog:loggingPrefs": {"browser": "ALL"},
            }}})
        except WebDriverError as e:
            self.stop()
            raise Unavailable("chromedriver could not start %s: %s" % (self.browser, e))
        self.session = caps["sessionId"]

    def stop(self):
        if self.session:
            try:
                self._call("DELETE", "/session/" + self.session)
            except (OSError, WebDriverError):
                pass
            self.session = None
        if self.proc:
            terminate(self.proc)
            self.proc = None

    # -- the protocol

    def _call(self, method, path, body=None, timeout=30.0):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                answer = json.loads(res.read() or b"{}")
        except urllib.error.HTTPError as e:
            answer = json.loads(e.read() or b"{}")
            v = answer.get("value") or {}
            raise WebDriverError("%s %s: %s: %s" % (method, path, v.get("error"),
                                                   v.get("message", "").split("\n")[0]))
        return answer.get("value", answer)

    def _session(self, method, path, body=None):
        return self._call(method, "/session/%s%s" % (self.session, path), body)

    # -- what the tests use

    def open(self, url):
        self._session("POST", "/url", {"url": url})

    def js(self, script, *args):
        """The value of the function body <script> run in the page with <args>."""
        return self._session("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait(self, expression, timeout=10.0, what=None):
        """Waits until the JavaScript <expression> is truthy in the page; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js("return (%s);" % expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError("timed out after %.1fs waiting for %s"
                                     % (timeout, what or expression))
            time.sleep(0.05)

    def find(self, css):
        return self._session("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def click(self, css):
        """Clicks the element <css> as a user would (WebDriver's element click)."""
        self._session("POST", "/element/%s/click" % self.find(css), {})

    def type(self, css, text):
        self._session("POST", "/element/%s/value" % self.find(css), {"text": text})

    def resize(self, width, height):
        self._session("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path):
        """Writes a PNG of the viewport to <path>; returns <path>."""
        png = base64.b64decode(self._session("GET", "/screenshot"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(png)
        return path

    def logs(self):
        """The browser's console entries since the last call ({level, message, ...})."""
        return self._session("POST", "/se/log", {"type": "browser"})

    def console_errors(self):
        """The messages of the console entries at SEVERE (errors, uncaught exceptions, failed
        loads) since the last call to logs()."""
        return [e["message"] for e in self.logs() if e.get("level") == "SEVERE"]
