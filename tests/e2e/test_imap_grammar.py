"""End-to-end: every byte the IMAP server sends in a representative session
parses by the response grammar of RFC 3501 9 (imapgrammar.py), strictly:
text after every response code, 7-bit quoted strings, FETCH items down to
BODYSTRUCTURE's extension data and ENVELOPE's addresses."""
import re
import socket

import imapgrammar
from test_imap import MULTIPART, deliver, imap_server

NESTED = (b"From: \"Quote \\\"Me\\\" \\\\ Back\" <q@remote.test>\r\n"
          b"Sender: sender@remote.test\r\nReply-To: <@hop.example:reply@remote.test>\r\n"
          b"To: undisclosed-recipients:;, Team: a@x.test, b@x.test;\r\nCc: (nobody)\r\n"
          b"Subject: He said \"hi\" \\o/\r\nMessage-ID: <m1@remote.test>\r\n"
          b"In-Reply-To: <m0@remote.test>\r\nDate: Wed, 04 Feb 2026 08:00:00 -0500\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\n"
          b"--o\r\nContent-Type: text/html; charset=us-ascii\r\nContent-Language: en, de\r\n"
          b"Content-Location: http://x.test/a\r\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
          b"Content-Disposition: inline; filename=\"a.html\"\r\nContent-ID: <c1@x>\r\n"
          b"Content-Description: the page\r\n\r\n<p>hi</p>\r\n"
          b"--o\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n"
          b"From: inner@remote.test\r\nSubject: inner\r\nContent-Type: multipart/alternative;"
          b" boundary=i\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\nplain\r\n--i\r\n"
          b"Content-Type: text/enriched\r\n\r\nrich\r\n--i--\r\n"
          b"--o\r\nContent-Type: application/pdf; name*=utf-8''%C3%A9t%C3%A9.pdf\r\n"
          b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--o--\r\n")

EIGHT_BIT = ("From: Jörg Müller <jorg@remote.test>\r\nTo: Zoë <zoe@example.org>\r\n"
             "Subject: Grüße aus Köln\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Transfer-Encoding: 8bit\r\n\r\nKäse\r\n").encode()


class Strict:
    """A raw IMAP connection whose every response goes through
    imapgrammar.check; cmd() returns the responses up to the tagged one."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.f = self.sock.makefile("rb")
        self.count = 0
        self.n = 0
        self.flags = set()  # the keywords of the last * FLAGS
        resp = imapgrammar.frame(self.f)
        try:
            imapgrammar.check_greeting(resp)
        except imapgrammar.GrammarError as e:
            raise AssertionError("greeting: %s" % e)
        self.count += 1

    def response(self):
        resp = imapgrammar.frame(self.f)
        try:
            kind, _ = imapgrammar.check(resp)
        except imapgrammar.GrammarError as e:
            raise AssertionError("%s\nin the response %r" % (e, resp[:400]))
        self.count += 1
        self.keywords_told(resp)
        return kind, resp

    def keywords_told(self, resp):
        """A keyword in a FETCH's FLAGS must be in the last * FLAGS (RFC 3501
        7.2.6; imaptest checks it too). Our test messages hold no "FLAGS (" of
        their own, so a look at the whole response is enough."""
        if resp.startswith(b"* FLAGS ("):
            self.flags = set(resp[9:resp.index(b")")].lower().split())
        elif re.match(rb"\* \d+ FETCH ", resp):
            for m in re.finditer(rb"FLAGS \(([^)]*)\)", resp):
                new = [f for f in m.group(1).lower().split()
                       if not f.startswith(b"\\") and f not in self.flags]
                assert not new, "keywords %r not in the last * FLAGS: %r" % (new, resp[:300])

    def cmd(self, text, literal=None, status=b"OK", after=b""):
        """Sends one command (literal: its synchronising literal, sent after
        the "+", then after); checks the tagged reply's status."""
        self.n += 1
        tag = b"g%d" % self.n
        if literal is None:
            self.sock.sendall(tag + b" " + text + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + text + b" {%d}\r\n" % len(literal))
            kind, resp = self.response()
            assert kind == "continue", resp
            self.sock.sendall(literal + after + b"\r\n")
        out = []
        while True:
            kind, resp = self.response()
            out.append(resp)
            if kind == "tagged" and resp.startswith(tag + b" "):
                assert resp.startswith(tag + b" " + status), (text, out[-5:])
                return out


def test_checker_tells_good_from_bad():
    """imap grammar: the checker takes well-formed responses and refuses malformed ones (empty text after a code, 8-bit quoted, a space between addresses, ...)"""
    good = [b"* OK [COPYUID 7 1:2 5:6] Moved\r\n", b"a1 OK [READ-WRITE] SELECT completed\r\n",
            b"* 1 FETCH (FLAGS (\\Seen $x) UID 4 BODY[HEADER.FIELDS (From)]<0> {3}\r\nab\n)\r\n",
            b'* 2 FETCH (ENVELOPE (NIL "s" ((NIL "@r" "u" "h")(NIL NIL "g" NIL)(NIL NIL NIL NIL))'
            b" NIL NIL NIL NIL NIL NIL NIL))\r\n",
            b'* LIST (\\Noselect \\HasChildren) "." "a]b"\r\n', b"+ \r\n", b"+ Ready\r\n",
            b"* SEARCH\r\n", b"* ESEARCH (TAG \"a\") UID ALL 1:3,5\r\n",
            b'* STATUS {3}\r\nx y (MESSAGES 0 UIDNEXT 1)\r\n', b"* 3 EXISTS\r\n",
            b'* 1 FETCH (BODYSTRUCTURE (("text" "plain" NIL NIL NIL "7bit" 1 1 NIL NIL NIL NIL)'
            b'("message" "rfc822" NIL NIL NIL "7bit" 9 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)'
            b' ("text" "plain" NIL NIL NIL "7bit" 1 1) 2) "mixed" ("b" "1") NIL NIL NIL))\r\n',
            b"* 1 FETCH (BINARY[1] ~{2}\r\n\x00\x01 BINARY.SIZE[1] 2)\r\n"]
    bad = [b"* OK [COPYUID 7 1 2] \r\n", b"* OK [UIDNEXT 4]\r\n", b"a1 OK\r\n",
           b'* 1 FETCH (ENVELOPE (NIL "s" ((NIL NIL "u" "h") (NIL NIL "v" "h")) NIL NIL NIL NIL'
           b" NIL NIL NIL))\r\n", b'* LIST () "." "caf\xc3\xa9"\r\n', b"* 0 FETCH (UID 1)\r\n",
           b"* 1 FETCH (UID 1 UID 1)\r\n", b"* 1 FETCH (BODY[] {2}\r\na\x00)\r\n",
           b"* OK [COPYUID 7 1:3 5] Moved\r\n", b"* SEARCH 4294967296\r\n", b"* OK caf\xc3\xa9\r\n",
           b"* FLAGS (\\Seen \\seen)\r\n", b"* 1 FETCH (INTERNALDATE \"1-Jan-2026 10:00:00 +0000\")\r\n",
           b"* LIST (\\Noselect \\Marked) \".\" a\r\n", b"* BOGUS\r\n", b"+\r\n"]
    for r in good:
        try:
            imapgrammar.check(r)
        except imapgrammar.GrammarError as e:
            raise AssertionError("refused %r: %s" % (r, e))
    for r in bad:
        try:
            imapgrammar.check(r)
        except imapgrammar.GrammarError:
            continue
        raise AssertionError("took %r" % r)


def test_every_response_of_a_session_parses():
    """imap grammar: every response of a session (LOGIN, LIST, LSUB, STATUS, METADATA, APPEND, SELECT, FETCH of every kind, STORE, SEARCH, COPY, MOVE, EXPUNGE, IDLE, EXAMINE, LOGOUT) parses by RFC 3501's grammar"""
    s = imap_server()
    deliver(s, [MULTIPART, NESTED, EIGHT_BIT, b"Subject: plain\r\n\r\nplain body\r\n"])
    c = Strict(s.imap_port)
    c.cmd(b"CAPABILITY")
    c.cmd(b"BOGUS", status=b"BAD")
    c.cmd(b"LOGIN alice@example.org secret")
    c.cmd(b"ENABLE UTF8=ACCEPT")
    c.cmd(b'ID ("name" "grammar")')
    c.cmd(b"NAMESPACE")
    c.cmd(b"CREATE Saved")
    c.cmd(b"CREATE Work.Sub")
    c.cmd(b"CREATE Saved", status=b"NO")
    for name in (b"Saved", b"Work.Sub", b"Gone.Away"):
        c.cmd(b"SUBSCRIBE " + name)
    for pat in (b'"" *', b'"" ""', b'"" %', b'"" Work.%'):
        c.cmd(b"LIST " + pat)
        c.cmd(b"LSUB " + pat)
    c.cmd(b"STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
    c.cmd(b"STATUS Nope (MESSAGES)", status=b"NO")
    c.cmd(b'SETMETADATA "" (/private/comment "a note")')
    c.cmd(b"SETMETADATA INBOX (/private/comment", literal=b"two\r\nlines", after=b")")
    c.cmd(b'GETMETADATA "" /private/comment')
    c.cmd(b"GETMETADATA INBOX (/private/comment /private/none)")
    c.cmd(b'APPEND Saved (\\Seen $Kept) "05-Feb-2026 10:00:00 +0100"',
          literal=b"Subject: appended\r\n\r\nbody\r\n")
    c.cmd(b"APPEND Nope", literal=b"x\r\n", status=b"NO")
    c.cmd(b"SELECT INBOX")
    c.cmd(b"FETCH 1:* (FLAGS UID INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE)")
    c.cmd(b"FETCH 1:* (BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT]<0.10> BODY.PEEK[1]"
          b" BODY.PEEK[1.MIME] BODY.PEEK[HEADER.FIELDS (From Subject)]"
          b" BODY.PEEK[HEADER.FIELDS.NOT (Received)] BODY.PEEK[9])")
    c.cmd(b"FETCH 2 (BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1.2] BODY.PEEK[2.1.MIME])")
    c.cmd(b"FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2] BINARY.PEEK[1]<2.3>)")
    c.cmd(b"FETCH 3 (RFC822.HEADER RFC822.TEXT)")
    c.cmd(b"FETCH 1:2 ALL")
    c.cmd(b"FETCH 1:2 FAST")
    c.cmd(b"FETCH 1:2 FULL")
    c.cmd(b"UID FETCH 1:* (UID)")
    c.cmd(b"FETCH 4 RFC822")  # sets \Seen: FLAGS come with it
    c.cmd(b"STORE 1 +FLAGS ($Brand-New)")
    c.cmd(b"STORE 1:2 +FLAGS.SILENT (\\Flagged)")
    c.cmd(b"UID STORE 1:* FLAGS (\\Answered)")
    c.cmd(b"SEARCH ALL")
    c.cmd(b"SEARCH FROM nobody@nowhere")
    c.cmd(b"UID SEARCH OR SUBJECT plain FROM alice")
    c.cmd(b"SEARCH CHARSET KOI8-R ALL", status=b"NO")
    c.cmd(b"SEARCH BOGUS", status=b"BAD")
    c.cmd(b"COPY 1:2 Saved")
    c.cmd(b"COPY 1 Nope", status=b"NO")
    c.cmd(b"UID MOVE 3 Saved")
    c.cmd(b"STORE 1 +FLAGS (\\Deleted)")
    c.cmd(b"EXPUNGE")
    c.cmd(b"UID EXPUNGE 1:*")
    other = Strict(s.imap_port)
    other.cmd(b"LOGIN alice@example.org secret")
    other.cmd(b"SELECT INBOX")
    c.sock.sendall(b"i1 IDLE\r\n")
    kind, resp = c.response()
    assert kind == "continue", resp
    deliver(s, [b"Subject: during idle\r\n\r\nx\r\n"])
    other.cmd(b"STORE 1 +FLAGS ($FromOther)")
    seen = []
    while not (seen and seen[-1].endswith(b"RECENT\r\n")):
        seen.append(c.response()[1])
    c.sock.sendall(b"DONE\r\n")
    r = c.response()[1]
    while r.startswith(b"* "):  # the other's FETCH, if pushed after the EXISTS
        seen.append(r)
        r = c.response()[1]
    assert r.startswith(b"i1 OK"), seen + [r]
    other.cmd(b"NOOP")
    other.cmd(b"LOGOUT")
    c.cmd(b"NOOP")
    c.cmd(b"EXAMINE Saved")
    c.cmd(b"FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE)")
    c.cmd(b"STORE 1 +FLAGS (\\Seen)", status=b"NO")
    c.cmd(b"UNSELECT")
    c.cmd(b"SELECT Work.Sub")
    c.cmd(b"CLOSE")
    c.cmd(b"DELETE Work.Sub")
    c.cmd(b"RENAME Saved Old")
    c.cmd(b"LOGOUT")
    assert c.count > 150, c.count  # every one of them checked
    c.sock.close()
    assert s.stop() == 0


ODD = [
    # a NUL and control characters in the header and the body
    b"Subject: nul\x00here and \x01\x7f bell\r\nFrom: \"N\x00L\" <n@x.test>\r\n\r\nbody \x00 with NUL\r\n",
    # 8-bit and quotes in parameters, no subtype, an empty message/rfc822, deep nesting
    b"Subject: params\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n"
    b"--a\r\nContent-Type: text\r\nContent-Disposition: attachment; filename=\"caf\xc3\xa9 \\\"q\\\".txt\"\r\n"
    b"\r\nx\r\n--a\r\nContent-Type: message/rfc822\r\n\r\n--a\r\nContent-Type: multipart/mixed;"
    b" boundary=b\r\n\r\n--b\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n"
    b"Content-Type: text/plain; charset=\"\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xc3\xa9\r\n"
    b"--c--\r\n--b--\r\n--a--\r\n",
    # no header at all, and a header that never ends
    b"\r\njust a body\r\n",
    b"X-Only: header",
    # group syntax gone wrong, an address without a host, a route without an address
    b"From: Grp: ;\r\nTo: : a@b;, <@r.test:>, nohost, \"\" <>\r\nCc: a@b (unclosed\r\n"
    b"Subject: =?utf-8?q?enc=00oded?=\r\n\r\nx\r\n",
]


def test_odd_messages_answer_well_formed():
    """imap grammar: FETCH of odd messages (NULs, control and 8-bit characters, broken MIME and addresses, no header) answers well-formed responses"""
    s = imap_server()
    c = Strict(s.imap_port)
    c.cmd(b"LOGIN alice@example.org secret")
    for m in ODD:
        c.sock.sendall(b"a APPEND INBOX ~{%d}\r\n" % len(m))
        kind, resp = c.response()
        assert kind == "continue", resp
        c.sock.sendall(m + b"\r\n")
        kind, resp = c.response()
        assert resp.startswith(b"a OK"), resp
    c.cmd(b"SELECT INBOX")
    c.cmd(b"FETCH 1:* (FLAGS ENVELOPE BODY BODYSTRUCTURE RFC822.SIZE)")
    c.cmd(b"FETCH 1:* (BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[1.MIME]"
          b" BODY.PEEK[HEADER.FIELDS (Subject From)])")
    c.cmd(b"FETCH 1:* (RFC822.HEADER RFC822.TEXT BINARY.SIZE[1])")
    c.cmd(b"FETCH 2 (BODY.PEEK[2] BODY.PEEK[2.1] BODY.PEEK[3.1.1] BINARY.PEEK[3.1.1])")
    c.cmd(b"SEARCH TEXT nul")
    c.cmd(b"LOGOUT")
    c.sock.close()
    assert s.stop() == 0


def test_the_corpus_answers_well_formed():
    """imap grammar: FETCH of every structure, envelope and section of the MIME corpus (corpus.py, 130 messages) and its SEARCHes answer well-formed responses"""
    import corpus
    import test_imap_corpus
    s = imap_server()
    c = Strict(s.imap_port)
    c.cmd(b"LOGIN alice@example.org secret")
    c.cmd(b"CREATE Corpus")
    for m in corpus.messages():
        c.sock.sendall(b"a APPEND Corpus {%d+}\r\n" % len(m) + m + b"\r\n")
        kind, resp = c.response()
        assert resp.startswith(b"a OK"), resp
    c.cmd(b"EXAMINE Corpus")
    for items in test_imap_corpus.FETCHES:
        c.cmd(b"FETCH 1:* " + items)
    for keys in test_imap_corpus.SEARCHES:
        c.cmd(b"UID SEARCH CHARSET UTF-8 " + keys)
    c.cmd(b"LOGOUT")
    c.sock.close()
    assert s.stop() == 0


def test_refusals_and_odd_names_answer_well_formed():
    """imap grammar: refusals (bad logins, SASL, long lines, big literals, bad sets, wrong states) and odd mailbox names and keywords answer well-formed responses"""
    s = imap_server("MessageSizeLimit 100000")
    deliver(s, [b"Subject: one\r\n\r\nbody\r\n"])
    c = Strict(s.imap_port)
    c.cmd(b"SELECT INBOX", status=b"BAD")
    c.cmd(b"LOGIN alice@example.org wrong", status=b"NO")
    c.sock.sendall(b"g90 AUTHENTICATE PLAIN\r\n")
    kind, resp = c.response()
    assert kind == "continue", resp
    c.sock.sendall(b"*\r\n")
    assert c.response()[1].startswith(b"g90 BAD"), "cancelled"
    c.sock.sendall(b"x" * 70000 + b"\r\n")
    assert c.response()[1].startswith(b"* BAD"), "a line too long"
    c.cmd(b"LOGIN alice@example.org secret")
    c.cmd(b"LOGIN alice@example.org secret", status=b"BAD")
    c.sock.sendall(b"g91 APPEND INBOX {200000}\r\n")
    assert c.response()[1].startswith(b"g91 NO [TOOBIG]"), "too big"
    c.cmd(b"FETCH 1 FLAGS", status=b"BAD")
    for name in (b'"a\\"q"', b'"back]slash"', b"{5}\r\ncaf\xc3\xa9", b'"sp ace"', b'"{brace}"'):
        c.cmd(b"CREATE " + name)
        c.cmd(b"SUBSCRIBE " + name)
        c.cmd(b"STATUS " + name + b" (MESSAGES UIDNEXT)")
    c.cmd(b'LIST "" *')
    c.cmd(b'LSUB "" *')
    c.cmd(b"SELECT INBOX")
    c.cmd(b"FETCH 5 FLAGS", status=b"BAD")
    c.cmd(b"FETCH 1 (BODY[X])", status=b"BAD")
    c.cmd(b"STORE 1 +FLAGS (\\Bogus)", status=b"BAD")
    for kw in (b"a*b", b"c%d", b"$ok"):
        c.cmd(b"STORE 1 +FLAGS (" + kw + b")", status=b"BAD" if kw != b"$ok" else b"OK")
    c.cmd(b"FETCH 1 (FLAGS BODY[1] BODY[2] BINARY.SIZE[1])")
    c.cmd(b"COPY 1 " + b'"a\\"q"')
    c.cmd(b"SELECT " + b'"a\\"q"')
    c.cmd(b"FETCH 1 (FLAGS UID)")
    c.cmd(b"CREATE INBOX", status=b"NO")
    c.cmd(b"DELETE INBOX", status=b"NO")
    c.cmd(b"STATUS INBOX ()", status=b"BAD")  # RFC 3501: at least one item
    c.cmd(b"CREATE {4+}\r\na\x00bc", status=b"BAD")  # a NUL only in a literal8
    c.cmd(b'SETMETADATA "" (/private/bin ~{3+}\r\na\x00b /private/t {3+}\r\nx\x00y)', status=b"BAD")
    c.cmd(b'SETMETADATA "" (/private/bin ~{3+}\r\na\x00b)')
    out = c.cmd(b'GETMETADATA "" /private/bin')
    assert out[0] == b'* METADATA "" ("/private/bin" ~{3}\r\na\x00b)\r\n', out
    c.cmd(b"UID EXPUNGE", status=b"BAD")
    c.cmd(b"NOOP")
    c.sock.sendall(b"g99 APPEND INBOX {200000+}\r\n")
    kind, resp = c.response()
    assert resp.startswith(b"* BYE"), resp
    c.sock.close()
    assert s.stop() == 0
