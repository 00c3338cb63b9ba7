"""
expires @TIME (the headers module) against nginx: the same locations in Debian's nginx and in
portier, both in a time zone half an hour off UTC's hours, so that a local time of day and a
UTC one cannot be taken for each other.  Expires must be the next moment at that local time
of day (today's when it is still ahead, else tomorrow's) and equal to nginx's; Cache-Control
is max-age=SECONDS until then, which depends on the second each answer is made: it is
compared within a second.  The times of day are chosen an hour either side of the time the
test starts, so that both branches are taken whatever the hour.
"""

import email.utils
import os
import re
import time

import harness
import nginx
from harness import location, server

TZ = "PTZ-5:30"  # POSIX: five and a half hours ahead of UTC, no daylight saving time
OFFSET = 5 * 3600 + 1800


def next_at(now, secs):
    """The first moment after <now> whose time of day in TZ is <secs> past midnight."""
    midnight = (now + OFFSET) // 86400 * 86400 - OFFSET
    t = midnight + secs
    return t if t > now else t + 86400


def at(secs):
    """nginx's spelling of a time of day: "@15h30m"."""
    return "@%dh%dm" % (secs // 3600, secs % 3600 // 60)


class ExpiresDailySideBySide(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        old = os.environ.get("TZ")
        cls.addClassCleanup(lambda: os.environ.pop("TZ") if old is None
                            else os.environ.update(TZ=old))
        os.environ["TZ"] = TZ  # both servers are started with it
        now = int(time.time())
        local = (now + OFFSET) % 86400 // 60 * 60  # this minute, local time of day
        cls.times = {"/ahead/": (local + 3600) % 86400, "/behind/": (local - 3600) % 86400,
                     "/midnight/": 0, "/at24/": 86400}
        nlocs, plocs = [], []
        for path, secs in cls.times.items():
            value = "@24h" if secs == 86400 else at(secs)
            nlocs.append('location %s { expires %s; return 200 "x"; }' % (path, value))
            plocs.append(location(path, expires=value, ret="200 x"))
        cls.nport = harness.free_port()
        cls.nginx = nginx.Nginx(cls.nport, "  server {\n    listen 127.0.0.1:%d;\n    %s\n  }"
                                % (cls.nport, "\n    ".join(nlocs)))
        cls.addClassCleanup(cls.nginx.stop)
        cls.pport = harness.free_port()
        while cls.pport == cls.nport:
            cls.pport = harness.free_port()
        cls.p = cls.class_portier({"server": [server(cls.pport, plocs)]})

    def expiry(self, port, path):
        with harness.Client(port) as c:
            r = c.request("GET", path, host="localhost")
        self.assertEqual(r.status, 200)
        m = re.fullmatch(r"max-age=(\d+)", r.header("Cache-Control") or "")
        self.assertIsNotNone(m, r.header("Cache-Control"))
        return email.utils.parsedate_to_datetime(r.header("Expires")), int(m.group(1)), r

    def test_expires_is_the_next_such_local_time_of_day_as_in_nginx(self):
        for path, secs in self.times.items():
            with self.subTest(path=path):
                now = int(time.time())
                theirs, their_age, _ = self.expiry(self.nport, path)
                ours, our_age, r = self.expiry(self.pport, path)
                want = next_at(now, secs % 86400)
                self.assertEqual(int(theirs.timestamp()), want, "nginx is not what this test says")
                self.assertEqual(ours, theirs)
                self.assertLessEqual(abs(our_age - their_age), 1)
                self.assertLessEqual(abs(our_age - (want - now)), 2)
                self.assertRegex(r.header("Expires"), r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} "
                                 r"\d\d:\d\d:\d\d GMT$")

    def test_a_time_still_ahead_today_is_today_s_and_one_past_is_tomorrow_s(self):
        ahead, _, _ = self.expiry(self.pport, "/ahead/")
        behind, _, _ = self.expiry(self.pport, "/behind/")
        now = time.time()
        self.assertTrue(0 < ahead.timestamp() - now <= 3600 + 60)
        self.assertTrue(82800 - 60 <= behind.timestamp() - now <= 86400)

    def test_midnight_and_24h_are_the_next_midnight(self):
        self.assertEqual(self.expiry(self.pport, "/midnight/")[0],
                         self.expiry(self.pport, "/at24/")[0])


class ExpiresDailyRefused(harness.TestCase):

    def minus_t(self, value):
        p = harness.Portier(text="", start=False)
        self.addCleanup(p.cleanup)
        p.write_config(text='pid = "%s"; error_log = "%s";\nhttp = { access_log = "off";\n'
                       '  server = ( { listen = [ "127.0.0.1:%d" ]; expires = "%s"; } );\n};\n'
                       % (p.pid_path, p.error_log, harness.free_port(), value))
        res = p.run("-t", "-c", p.conf_path)
        return res.returncode, res.stderr.decode()

    def test_a_time_of_day_past_24h_is_refused(self):
        status, err = self.minus_t("@24h1s")
        self.assertNotEqual(status, 0)
        self.assertIn("portier.conf:3: invalid \"expires\" value \"@24h1s\": a time of day must "
                      "be at most 24 hours", err)

    def test_a_time_of_day_with_modified_is_refused(self):
        status, err = self.minus_t("modified @1h")
        self.assertNotEqual(status, 0)
        self.assertIn("cannot be used with \"modified\"", err)

    def test_a_time_of_day_is_accepted(self):
        status, err = self.minus_t("@15h30m")
        self.assertEqual(status, 0, err)


if __name__ == "__main__":
    harness.main()
