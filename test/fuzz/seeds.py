#!/usr/bin/env python3
"""
seeds.py: writes the seed corpora of the fuzz targets, test/fuzz/corpus/NAME/, from the
cases the tests already hold:

  request    the request heads of test/unit/test_http_parse.c and test_http_framing.c,
             and every case of the desync corpus (test/corpus/http-desync-guardian),
             built as test/integration/test_corpus.py puts it on the wire
  response   the response heads of test/unit/test_http_response.c
  chunked    the chunked bodies of test/unit/test_http_chunked.c
  normalize  the paths of test/unit/test_normalize.c
  conf       the configurations of test/unit/test_conf.c and the demo config/portier.conf

The string literals of a unit test file are read from its preprocessed text (so that macros
such as REQ() are expanded and adjacent literals joined, as the compiler does), and kept
when they look like what the target parses.  Each seed is one file named by the SHA-1 of
its bytes, as libFuzzer names what it finds; the first byte of a request, response or
chunked seed is the options byte of its target (0: default limits, no flags).

Run it again after adding cases to those tests: it only adds files.
"""

import glob
import hashlib
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "test", "fuzz", "corpus")
UNIT = os.path.join(ROOT, "test", "unit")

TOKEN = re.compile(rb"""'(?:[^'\\\n]|\\.)*'|"((?:[^"\\\n]|\\.)*)"|\S""")
SIMPLE_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"\\": b"\\", b'"': b'"',
                  b"'": b"'", b"0": b"\0", b"a": b"\a", b"b": b"\b", b"f": b"\f",
                  b"v": b"\v", b"?": b"?"}


def unescape(body):
    """The bytes of a C string literal's body, escapes decoded as the compiler does."""
    out, i = bytearray(), 0
    while i < len(body):
        c = body[i:i + 1]
        if c != b"\\":
            out += c
            i += 1
            continue
        e = body[i + 1:i + 2]
        if e == b"x":
            m = re.match(rb"[0-9a-fA-F]+", body[i + 2:])
            out.append(int(m.group(0), 16) & 0xFF)
            i += 2 + len(m.group(0))
        elif e in b"01234567" and e:
            m = re.match(rb"[0-7]{1,3}", body[i + 1:])
            out.append(int(m.group(0), 8) & 0xFF)
            i += 1 + len(m.group(0))
        else:
            out += SIMPLE_ESCAPES[e]
            i += 2
    return bytes(out)


def literals(path):
    """Every run of adjacent string literals of the C file <path>, preprocessed, joined."""
    text = subprocess.run(
        ["cc", "-E", "-P", "-D_GNU_SOURCE", "-DPT_SOURCE_DIR=\"\"", "-I", UNIT] +
        sum((["-I", os.path.join(ROOT, d)] for d in ("core", "worker", "config", "master")), []) +
        [path], check=True, capture_output=True).stdout
    runs, current = [], None
    for m in TOKEN.finditer(text):
        if m.group(1) is not None:
            current = (current or b"") + unescape(m.group(1))
            continue
        if current is not None:
            runs.append(current)
            current = None
    return runs


def unit_cases(files, keep):
    found = []
    for f in files:
        # __FILE__ of the assertion macros is a path, not a case.
        found += [s for s in literals(os.path.join(UNIT, f))
                  if keep(s) and ROOT.encode() not in s]
    return found


def desync_requests():
    """The desync corpus cases as test_corpus.py sends them (with a short body)."""
    import yaml  # Debian: python3-yaml

    def wire(s):
        s = str(s)
        try:
            return s.encode("latin-1")
        except UnicodeEncodeError:
            return s.encode("utf-8")

    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "test", "corpus", "http-desync-guardian",
                                              "*.yaml"))):
        with open(path, "rb") as f:
            for case in yaml.safe_load(f) or []:
                headers = [(h["name"], h["value"]) for h in (case.get("headers") or [])]
                line = wire(case["method"]) + b" " + wire(case["uri"])
                if case["version"]:
                    line += b" " + wire(case["version"])
                lines = [line]
                if not any(str(n).lower() == "host" for n, _ in headers):
                    lines.append(b"Host: corpus.test")
                lines += [wire(n) + b": " + wire(v) for n, v in headers]
                out.append(b"\r\n".join(lines) + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    return out


def demo_conf():
    with open(os.path.join(ROOT, "config", "portier.conf"), "rb") as f:
        text = f.read()
    return [text.replace(b"@PREFIX@", b"logs").replace(b"@LISTEN@", b"8080")
            .replace(b"@BACKEND@", b"127.0.0.1:9000")]


def write(name, seeds, prefix=b""):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    added = 0
    for s in dict.fromkeys(prefix + s for s in seeds):
        p = os.path.join(d, hashlib.sha1(s).hexdigest())
        if not os.path.exists(p):
            with open(p, "wb") as f:
                f.write(s)
            added += 1
    print("%s: %d seeds, %d new" % (name, len(set(seeds)), added))


def main():
    write("request", unit_cases(["test_http_parse.c", "test_http_framing.c"],
                                lambda s: b"\r\n" in s or b"HTTP/" in s) + desync_requests(),
          b"\0")
    write("response", unit_cases(["test_http_response.c"], lambda s: s.startswith(b"HTTP/")),
          b"\0")
    write("chunked", unit_cases(["test_http_chunked.c"], lambda s: b"\r\n" in s), b"\0")
    write("normalize", unit_cases(["test_normalize.c"], lambda s: s.startswith(b"/")))
    write("conf", unit_cases(["test_conf.c"], lambda s: b"=" in s and b";" in s) + demo_conf())
    return 0


if __name__ == "__main__":
    sys.exit(main())
