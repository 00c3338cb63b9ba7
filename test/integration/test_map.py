"""
portier and nginx side by side on the same map and split_clients rules: a user who moves
their configuration over must keep their results.  Both answer `return 200` with every
variable of the rules, and the bodies must be the same for each request: 1,000 split_clients
keys (each must land in nginx's bucket, for four splits with rounding at their bounds), and
the map cases (exact keys ignoring case, regexes in order with their positional and named
captures, the hostnames masks, defaults, values made of variables, a map of a map).
"""

import random
import string

import harness
import nginx
from harness import location, server

# nginx's blocks; portier's groups are built from the same lines (each line without ';').
MAPS = [
    ("$http_user_agent", "$is_mobile", [
        "default 0",
        '"~*iphone|android" 1',
        "desktop 2",
        '"~^curl/(?<ver>[0-9.]+)" "curl-$ver"',
        r'"~^(\w+)/(\d+)(?:\.(\d+))?" "$2-$1-[$3]"',
        r"\default escaped",
        "'two words' spaced",
    ]),
    ("$http_x_host", "$host_class", [
        "hostnames",
        "default none",
        "example.com exact",
        ".example.org dot",
        "*.example.net star",
        "*.a.example.net deeper",
        "www.example.* tail",
        "www.* short-tail",
        r'"~^(?<sub>[^.]+)\.test$" "test-$sub"',
        r'"~*\.IO$" io',
        r'"~^(?<sub>[^.]+)\.alt$" "alt-$sub"',
    ]),
    ("$arg_m", "$plain", [
        "default dflt",
        "*.example.com literal-star",
        "~^$ never",
        '"" empty',
        r'"~^x(\d)(\d)?y" "x[$1][$2]"',
        "~^x first",
        "~^X upper",
        "Mixed mixed-case",
        r'"~^(z)\1$" twice',
    ]),
    ("$is_mobile", "$chained", [
        "0 desk",
        "1 mob",
        'default "other:$is_mobile:$arg_m"',
    ]),
]

SPLITS = [
    ('"${arg_k}AAA"', "$variant", ["0.5% .one", "2.0% .two", "33.33% three", '* ""']),
    ("$arg_k", "$s2", ["10% a", "20% b", "30.5% c"]),
    ('"${arg_k}"', "$s3", ["50% x", "50% y"]),
    ('"${arg_k}salt"', "$s4", ["0.01% t1", "0.01% t2", "99.97% t3", "* t4"]),
]

BODY = ("$variant|$s2|$s3|$s4|$is_mobile|$host_class|$plain|$chained")

USER_AGENTS = ["Mozilla/5.0 (iPhone; CPU OS 17)", "Mozilla/5.0 (Linux; ANDROID 14)", "desktop",
               "DeskTop", "curl/8.5.0", "curl/", "Wget/1.21.3", "Opera/9", "default", "\\default",
               "two words", "Two Words", "", "x"]
HOSTS = ["example.com", "EXAMPLE.COM.", "www.example.com", "example.org", "a.b.example.org",
         "xexample.org", "example.net", "b.example.net", "a.example.net", "b.a.example.net",
         "www.example.net", "www.a.example.net", "WWW.Example.Org",
         "www.example.co.uk", "www.example", "www.other.net", "www", "shop.test", "a.b.test",
         "foo.io", "FOO.IO", "example.io.", "", ".", "..example.org", "a..b", "x.example.org..",
         "shop.alt", "x.y.alt"]
ARGS_M = ["", "x", "x1y", "x12y", "X", "xx", "mixed", "MIXED", "a.example.com",
          "*.example.com", "*.EXAMPLE.com", "other", "zz", "z", "zzz"]


def nginx_http(port):
    blocks = ["  map %s %s {\n%s\n  }" % (src, var, "\n".join("    %s;" % e for e in entries))
              for src, var, entries in MAPS]
    blocks += ["  split_clients %s %s {\n%s\n  }" % (src, var,
                                                      "\n".join("    %s;" % b for b in buckets))
               for src, var, buckets in SPLITS]
    return "%s\n  server {\n    listen 127.0.0.1:%d;\n    location / { return 200 \"%s\\n\"; }\n  }" \
        % ("\n".join(blocks), port, BODY)


def portier_http(port):
    return {
        "map": [{"source": src, "variable": var, "entries": entries}
                for src, var, entries in MAPS],
        "split_clients": [{"source": src.strip('"'), "variable": var, "buckets": buckets}
                          for src, var, buckets in SPLITS],
        "server": [server(port, [location("/", ret="200 %s\n" % BODY)])],
    }


def split_keys(n):
    """<n> keys for $arg_k: addresses as clients have them, and random words."""
    rnd = random.Random(20261205)
    chars = string.ascii_letters + string.digits + "._-~"
    keys = ["10.%d.%d.%d" % (i % 7, i // 7 % 256, i * 37 % 256) for i in range(n // 2)]
    keys += ["".join(rnd.choice(chars) for _ in range(rnd.randint(0, 24)))
             for _ in range(n - len(keys))]
    return keys


class SideBySide(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.nport = harness.free_port()
        cls.nginx = nginx.Nginx(cls.nport, nginx_http(cls.nport))
        cls.addClassCleanup(cls.nginx.stop)
        cls.pport = harness.free_port()
        cls.p = cls.class_portier(portier_http(cls.pport))

    def bodies(self, port, requests):
        """The bodies <port> answers to <requests>, (path, headers) each, on few connections
        (nginx closes one after keepalive_requests)."""
        out = []
        for i in range(0, len(requests), 200):
            with harness.Client(port) as c:
                for path, headers in requests[i:i + 200]:
                    r = c.request("GET", path, headers=headers)
                    self.assertEqual(r.status, 200, r)
                    out.append(r.body.decode("latin-1"))
        return out

    def assertSameBodies(self, requests):
        want = self.bodies(self.nport, requests)
        got = self.bodies(self.pport, requests)
        diff = [(req, g, w) for req, g, w in zip(requests, got, want) if g != w]
        self.assertEqual(diff[:10], [], "%d of %d requests differ (request, portier, nginx)"
                         % (len(diff), len(requests)))
        return got

    def test_thousand_split_clients_keys_land_in_nginxs_buckets(self):
        requests = [("/?k=%s" % k, []) for k in split_keys(1000)]
        got = self.assertSameBodies(requests)
        # The keys reach several buckets of each split, else the comparison says little.
        for i, buckets in enumerate((4, 4, 2, 1)):
            self.assertGreaterEqual(len({b.split("|")[i] for b in got}), buckets, SPLITS[i][1])

    def test_map_cases_are_nginxs(self):
        requests = []
        for i, ua in enumerate(USER_AGENTS):
            requests.append(("/?m=%s" % ARGS_M[i % len(ARGS_M)], [("User-Agent", ua)]))
        for host in HOSTS:
            requests.append(("/", [("X-Host", host)]))
        for m in ARGS_M:
            requests.append(("/?m=%s" % m, [("User-Agent", "Opera/9")]))
        got = self.assertSameBodies(requests)
        # Each map reaches more than its default.
        for i, var in enumerate(("is_mobile", "host_class", "plain", "chained"), start=4):
            self.assertGreaterEqual(len({b.split("|")[i] for b in got}), 4, var)


if __name__ == "__main__":
    harness.main()
