"""End-to-end: FETCH and SEARCH answer a corpus of MIME messages (corpus.py) exactly
as the server did before sections and structures were streamed from the mbox: the
answers' hashes are in data/imap_corpus.golden, recorded with the release build of
commit 79f46ac (which read whole messages into memory). To record again:
RUMBLE_CORPUS_RECORD=1 RUMBLE_BIN=... python3 tests/e2e/run.py test_imap_corpus."""
import hashlib
import os
import socket

import corpus
from harness import Server, free_port, wait_port

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "imap_corpus.golden")

SPECS = ["1", "2", "3", "4", "1.1", "1.2", "2.1", "2.2", "3.1", "1.1.1", "2.1.1", "1.2.1",
         "1.1.1.1"]
FETCHES = [
    b"(RFC822.SIZE BODY BODYSTRUCTURE ENVELOPE)",
    b"(BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT])",
    b"(RFC822.HEADER RFC822.TEXT)",
    b"(BODY.PEEK[HEADER.FIELDS (From To Subject Content-Type X-Folded)]"
    b" BODY.PEEK[HEADER.FIELDS.NOT (Subject Received Date)])",
    b"(BODY.PEEK[]<0.10> BODY.PEEK[TEXT]<5.50> BODY.PEEK[HEADER.FIELDS (Subject)]<2.5>"
    b" BODY.PEEK[1]<3.7> BODY.PEEK[2]<100000.10> BODY.PEEK[1]<0.0>)",
] + [b"(BODY.PEEK[%s] BODY.PEEK[%s.MIME] BODY.PEEK[%s.HEADER] BODY.PEEK[%s.TEXT]"
     b" BODY.PEEK[%s.HEADER.FIELDS (Subject)])" % ((s.encode(),) * 5) for s in SPECS]
SEARCHES = [
    b"BODY needle", b"BODY hello", b"BODY \"hello world\"", b"BODY {6+}\r\ncaf\xc3\xa9",
    b"BODY {3+}\r\n\xe2\x82\xac", b"BODY =", b"BODY \"\"", b"NOT BODY \"\"", b"BODY \"x x\"",
    b"BODY \"crXme\"", b"BODY {6+}\r\ncr\xc3\xa8me", b"BODY {3+}\r\n\xe2\x80\x9c", b"BODY prix",
    b"TEXT budget", b"TEXT \"=\"", b"TEXT caf", b"TEXT {5+}\r\n\xc3\xa9t\xc3\xa9",
    b"HEADER Subject \"\"", b"HEADER X-Folded b", b"HEADER x-folded \"a\tb\"", b"SUBJECT lower",
    b"SUBJECT {5+}\r\ncaf\xc3\xa9", b"FROM a@x", b"TO bob", b"CC team", b"BCC comment",
    b"SENTON 3-Feb-2026", b"SENTBEFORE 1-Jan-2001", b"SENTSINCE 2-Feb-2026", b"LARGER 1000",
    b"OR BODY needle SUBJECT late", b"NOT TEXT a", b"BODY \"\tb\"", b"BODY smart",
    b"BODY {3+}\r\n\xef\xbf\xbd", b"BODY ---", b"TEXT \"Content-Type\"", b"BODY \"--\"",
]


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""
        self.line()

    def fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("closed; had %r" % self.buf[:300])
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def cmd(self, tag, text):
        """The whole answer (literals included) up to and including the tagged line."""
        self.sock.sendall(tag + b" " + text + b"\r\n")
        out = []
        while True:
            l = self.line()
            out.append(l + b"\r\n")
            while l.endswith(b"}") and b"{" in l:
                n = int(l[l.rindex(b"{") + 1:-1])
                out.append(self.take(n))
                l = self.line()
                out.append(l + b"\r\n")
            if l.startswith(tag + b" "):
                return b"".join(out)


def answers(port, msgs):
    c = Client(port)
    assert c.cmd(b"l", b"LOGIN alice@example.org secret").startswith(b"l OK")
    assert b"c OK" in c.cmd(b"c", b"CREATE Corpus")
    for i, m in enumerate(msgs):
        r = c.cmd(b"a%d" % i, b"APPEND Corpus {%d+}\r\n" % len(m) + m)
        assert b"OK" in r.splitlines()[-1], (i, r)
    assert b"e OK" in c.cmd(b"e", b"EXAMINE Corpus")
    out = []
    for i in range(len(msgs)):
        for k, items in enumerate(FETCHES):
            r = c.cmd(b"f", b"UID FETCH %d " % (i + 1) + items)
            out.append("%d %d %s" % (i, k, hashlib.sha256(r).hexdigest()[:16]))
    for k, keys in enumerate(SEARCHES):
        r = c.cmd(b"s", b"UID SEARCH CHARSET UTF-8 " + keys)
        found = [l for l in r.split(b"\r\n") if l.startswith(b"* SEARCH")]
        out.append("S %d %s" % (k, found[0].decode() if found else r.decode("utf-8", "replace")))
    c.sock.close()
    return out


def test_fetch_and_search_answer_the_corpus_as_before():
    """imap: FETCH (structures, envelopes, every kind of section, partials) and SEARCH (header, body, text) answer a corpus of 130 MIME messages byte for byte as before streaming"""
    port = free_port()
    s = Server(conf="EnableIMAP4 1\nIMAP4Port %d\n" % port)
    s.start()
    assert wait_port(port)
    got = answers(port, corpus.messages())
    assert s.stop() == 0
    if os.environ.get("RUMBLE_CORPUS_RECORD"):
        os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
        with open(GOLDEN, "w") as f:
            f.write("\n".join(got) + "\n")
        return
    want = open(GOLDEN).read().splitlines()
    assert len(got) == len(want), (len(got), len(want))
    bad = [(g, w) for g, w in zip(got, want) if g != w]
    assert not bad, "%d answers differ, first: got %s, want %s" % (len(bad), bad[0][0], bad[0][1])
