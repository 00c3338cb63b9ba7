"""
Replays the http-desync-guardian request corpus (../shared/corpus, Apache-2.0,
written outside this project) against portier proxying to a recording backend,
one fresh client connection per case.

What each tier requires (corpus README):
  Severe     a 4xx from portier, the client connection closed, not a byte forwarded.
  Ambiguous  refused like Severe (any 4xx/5xx from portier), or forwarded and then
             both the client and the upstream connection closed.
  Compliant  forwarded: the backend's 200 comes back and the backend got the body.
  Acceptable either; the outcome is recorded in the summary.

Ambiguous cases portier forwards on purpose (FORWARDED_ON_PURPOSE, each with its
reason) must reach the backend once, answered by it, with their whole body, and
then both connections must be closed.

Building a request from a case: "METHOD URI VERSION" (version "" is HTTP/0.9: no
version), a Host header when the case has none (the corpus cases carry none, and
HTTP/1.1 requires it), then the case's headers as "name: value" with their raw
bytes.  A small body follows when the headers announce one: a chunked body when a
header spelled like Transfer-Encoding names chunked, otherwise as many bytes as the
largest number in a header spelled like Content-Length.
"""

import glob
import os
import re
import sys
import unittest

import harness
from harness import location, server, upstream

# The repository's copy (test/corpus, with its licence), so that a fresh clone replays it.
CORPUS = os.path.join(harness.CORPUS_DIR, "http-desync-guardian")

# Cases portier refuses on purpose although the corpus files them as Compliant,
# keyed by case name, with the reason.  Keep it empty unless there is a reason an
# nginx/HAProxy user would accept.
STRICTER_ON_PURPOSE = {
}

# Ambiguous cases portier forwards on purpose, keyed by case name, with the reason.
# Each must be forwarded once, answered by the backend, with its whole body, and then both
# connections closed, as the corpus says of an ambiguous request that is forwarded.
BODY_ON_GET_OR_HEAD = (
    "a body on GET or HEAD is framed like any other (RFC 9112 6.3 does not depend on the "
    "method) and portier sends it upstream with its own framing, so portier and the backend "
    "cannot disagree on where it ends; Elasticsearch and GraphQL clients send such bodies, and "
    "nginx forwards them.  reject_unexpected_body = true refuses them (test_dropin_requests)")
FORWARDED_ON_PURPOSE = {
    "Get with a body and Content-Length": BODY_ON_GET_OR_HEAD,
    "Get with a body and Transfer-Encoding": BODY_ON_GET_OR_HEAD,
    "Head with a body and Content-Length": BODY_ON_GET_OR_HEAD,
    "Head with a body and Transfer-Encoding": BODY_ON_GET_OR_HEAD,
    "Has a CL in GET": BODY_ON_GET_OR_HEAD,
    "Has a TE in GET": BODY_ON_GET_OR_HEAD,
}

# Cases that cannot be put on the wire as written, with the reason.
NOT_REPLAYABLE = {
    ("GET", ""): "an empty request-target cannot be sent: the request line would be 'GET  HTTP/1.1'",
}

CHUNKED_BODY = b"5\r\nhello\r\n0\r\n\r\n"  # decodes to 5 bytes
MAX_BODY = 4 * 1000 * 1000  # the largest Content-Length in the corpus


def wire(s):
    """Bytes for a corpus string: latin-1 when it fits (\\xNN escapes are bytes),
    UTF-8 otherwise."""
    s = str(s)
    try:
        return s.encode("latin-1")
    except UnicodeEncodeError:
        return s.encode("utf-8")


def letters(name):
    return re.sub(r"[^a-z-]", "", str(name).lower())


def body_for(headers):
    """(raw body bytes to send, length of the body once de-chunked)."""
    te = [str(v).lower() for n, v in headers if letters(n) == "transfer-encoding"]
    if any("chunked" in v for v in te):
        return CHUNKED_BODY, 5
    lengths = [int(x) for n, v in headers if letters(n) == "content-length"
               for x in re.findall(r"\d+", str(v))]
    lengths = [x for x in lengths if x <= MAX_BODY]
    n = max(lengths) if lengths else 0
    return b"a" * n, n


def build(case):
    headers = [(h["name"], h["value"]) for h in (case.get("headers") or [])]
    line = wire(case["method"]) + b" " + wire(case["uri"])
    if case["version"]:
        line += b" " + wire(case["version"])
    out = [line]
    if not any(str(n).lower() == "host" for n, _ in headers):
        out.append(b"Host: corpus.test")
    out += [wire(n) + b": " + wire(v) for n, v in headers]
    body, body_len = body_for(headers)
    return b"\r\n".join(out) + b"\r\n\r\n" + body, body_len


def load_cases():
    """Every case of the corpus; missing data is a failure, never a pass."""
    import yaml  # Debian: python3-yaml
    cases = []
    if not glob.glob(os.path.join(CORPUS, "*.yaml")):
        raise AssertionError("no corpus cases in %s: the test data is missing" % CORPUS)
    for path in sorted(glob.glob(os.path.join(CORPUS, "*.yaml"))):
        with open(path, "rb") as f:
            for case in yaml.safe_load(f) or []:
                case["file"] = os.path.basename(path)
                cases.append(case)
    return cases


class Outcome:
    def __init__(self, case):
        self.case = case
        self.status = None
        self.from_backend = False
        self.closed = False
        self.forwarded = []      # RecordedRequests that reached the backend
        self.bytes_forwarded = 0
        self.upstream_closed = True
        self.body_len = 0        # body length the backend should get
        self.error = None

    @property
    def refused(self):
        if self.from_backend or self.bytes_forwarded:
            return False
        if self.status is not None:
            return self.status >= 400
        # An HTTP/0.9 request may be answered without a status line.
        return self.closed and self.case["version"] in ("", "HTTP/0.9")

    def describe(self):
        return ("status=%s from_backend=%s client_closed=%s forwarded_requests=%d "
                "forwarded_bytes=%d upstream_closed=%s error=%s"
                % (self.status, self.from_backend, self.closed, len(self.forwarded),
                   self.bytes_forwarded, self.upstream_closed, self.error))


class Corpus(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        try:
            import yaml  # noqa: F401
        except ImportError:
            raise RuntimeError("PyYAML missing: install python3-yaml (scripts/deps)")
        cls.rec = cls.class_recorder("recorder")
        cls.port = harness.free_port()
        cls.p = cls.class_portier({
            "client_max_body_size": 0,
            "upstream": {"app": upstream(cls.rec.addr, keepalive=4)},
            "server": [server(cls.port, [location("/", proxy_pass="http://app")])],
        })

    def replay(self, case):
        """Sends <case> on a fresh connection and observes what happens.  Closing
        is waited for only where the tier makes it matter, to keep the run short."""
        tier = case["expected"]["tier"]
        raw, body_len = build(case)
        out = Outcome(case)
        mark = self.rec.mark()
        try:
            with self.p.client(timeout=5) as c:
                c.send(raw)
                try:
                    r = c.read_response("HEAD" if case["method"] == "HEAD" else "GET", timeout=3)
                    out.status = r.status
                    out.from_backend = r.header("X-Backend") == self.rec.name
                except (harness.ProtocolError, TimeoutError) as e:
                    out.error = str(e)[:120]
                must_close = tier in ("Severe", "Ambiguous") or (out.status or 400) >= 400
                out.closed = c.wait_closed(1.0) if must_close else c.wait_closed(0)
        except OSError as e:
            out.error = "socket: %s" % e
        out.forwarded, out.bytes_forwarded = self.rec.since(mark)
        if out.forwarded and tier == "Ambiguous":
            cids = {q.conn_id for q in out.forwarded}
            try:
                harness.wait_until(lambda: all(self.rec.conn_closed(i) for i in cids), 1.0)
                out.upstream_closed = True
            except AssertionError:
                out.upstream_closed = False
        out.body_len = body_len
        return out

    @staticmethod
    def kind(o):
        """What happened, for the summary: refuse, forward or ? (neither)."""
        if o.refused:
            return "refuse"
        return "forward" if o.forwarded else "?"

    @staticmethod
    def forwarded_whole(o):
        """None if <o> reached the backend once, was answered by it and took its whole
        body along, else why not."""
        if not (o.status == 200 and o.from_backend and len(o.forwarded) == 1):
            return "not forwarded"
        got = len(o.forwarded[0].body)
        return None if got == o.body_len else "backend got %d body bytes, sent %d" % (got, o.body_len)

    @classmethod
    def violation(cls, tier, o):
        """None if <o> is what <tier> requires, else why not."""
        if tier == "Ambiguous" and o.case["name"] in FORWARDED_ON_PURPOSE:
            why = cls.forwarded_whole(o)
            if why is None and not o.closed:
                why = "forwarded but client connection left open"
            if why is None and not o.upstream_closed:
                why = "forwarded but upstream connection left open"
            return why
        if tier == "Severe":
            if not (o.refused and o.status is not None and 400 <= o.status < 500):
                return "not refused with a 4xx by portier"
            return None if o.closed else "client connection left open"
        if tier == "Ambiguous":
            if o.refused:
                return None if o.closed else "refused but client connection left open"
            if not (o.forwarded and o.from_backend):
                return "neither refused nor forwarded"
            if not o.closed:
                return "forwarded but client connection left open"
            return None if o.upstream_closed else "forwarded but upstream connection left open"
        if tier == "Compliant":
            if o.refused and o.case["name"] in STRICTER_ON_PURPOSE:
                return None
            return cls.forwarded_whole(o)
        # Acceptable: either
        return None if o.refused or o.forwarded else "neither refused nor forwarded"

    def test_corpus_replay(self):
        cases = load_cases()
        self.assertGreater(len(cases), 100, "corpus looks truncated")
        tiers = ["Severe", "Ambiguous", "Compliant", "Acceptable"]
        summary = {t: {"refuse": 0, "forward": 0, "?": 0, "fail": 0, "skip": 0} for t in tiers}
        failures, notes = [], []
        worker = self.p.worker()
        for case in cases:
            tier = case["expected"]["tier"]
            key = (case["method"], case["uri"])
            if key in NOT_REPLAYABLE:
                summary[tier]["skip"] += 1
                notes.append("skipped %s/%r: %s" % (case["file"], case["name"], NOT_REPLAYABLE[key]))
                continue
            o = self.replay(case)
            kind, why = self.kind(o), self.violation(tier, o)
            summary[tier][kind] += 1
            if why:
                summary[tier]["fail"] += 1
                failures.append("%s %s/%r: %s (%s)" % (tier, case["file"], case["name"], why, o.describe()))
            elif tier == "Acceptable":
                notes.append("Acceptable %s/%r: %s" % (case["file"], case["name"], kind))
            elif tier == "Compliant" and kind == "refuse":
                notes.append("Compliant %s/%r refused on purpose: %s"
                             % (case["file"], case["name"], STRICTER_ON_PURPOSE[case["name"]]))
            elif tier == "Ambiguous" and case["name"] in FORWARDED_ON_PURPOSE:
                notes.append("Ambiguous %s/%r forwarded on purpose" % (case["file"], case["name"]))
            if not harness.pid_alive(worker):
                failures.append("worker %d died on %s/%r" % (worker, case["file"], case["name"]))
                break
        self.print_summary(summary, notes, failures, tiers)
        if failures:
            self.fail("%d corpus cases failed:\n  %s" % (len(failures), "\n  ".join(failures)))

    @staticmethod
    def print_summary(summary, notes, failures, tiers):
        w = sys.stderr.write
        w("\nhttp-desync-guardian replay (%s)\n" % CORPUS)
        w("%-11s %8s %8s %8s %8s %8s\n" % ("tier", "refused", "forwarded", "unclear", "skipped", "FAILED"))
        for t in tiers:
            s = summary[t]
            w("%-11s %8d %8d %8d %8d %8d\n" % (t, s["refuse"], s["forward"], s["?"], s["skip"], s["fail"]))
        for n in notes:
            w("  %s\n" % n)
        for f in failures:
            w("  FAIL %s\n" % f)


if __name__ == "__main__":
    harness.main()
