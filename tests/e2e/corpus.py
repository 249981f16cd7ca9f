"""corpus.py - MIME messages for the FETCH/SEARCH before-and-after comparison
(test_imap_corpus.py): hand-written ones for every case the parser treats
specially, then messages grown from a seeded generator of our own (not Python's
random module, whose sequences may change between versions), so the corpus is the
same bytes on every machine."""

HAND = [
    # plain, multipart, nested, attachments, forwarded messages
    b"From: Alice <alice@example.org>\r\nSubject: hello\r\n\r\nHi Bob,\r\nsee you.\r\n",
    b"From: Alice <alice@remote.test>\r\nTo: alice@example.org\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= multipart\r\n"
    b"Date: Tue, 03 Feb 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
    b"preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Hello multipart world\r\n--b1\r\nContent-Type: application/octet-stream; name=a.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQF\r\n--b1--\r\nepilogue\r\n",
    b"From: \"Carol Q. Public\" <carol@example.org>\r\nTo: bob@example.net\r\n"
    b"Subject: report\r\nDate: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
    b"Message-ID: <1234@example.org>\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
    b"--outer\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
    b"--inner\r\nContent-Type: text/plain\r\n\r\ntext body\r\n--inner\r\n"
    b"Content-Type: text/html\r\n\r\n<b>html</b>\r\n--inner--\r\n\r\n--outer\r\n"
    b"Content-Type: application/pdf; name=\"report.pdf\"\r\n"
    b"Content-Disposition: attachment; filename=\"report.pdf\"\r\n"
    b"Content-Transfer-Encoding: base64\r\nContent-ID: <pdf@example.org>\r\n\r\n"
    b"SGVsbG8s\r\nIFdvcmxkIQ==\r\n--outer\r\nContent-Type: message/rfc822\r\n"
    b"Content-Description: forwarded\r\n\r\nFrom: dave@example.com\r\nSubject: inner\r\n"
    b"Content-Type: multipart/mixed; boundary=in2\r\n\r\n--in2\r\n\r\ndeep text\r\n--in2--\r\n"
    b"--outer--\r\n",
    # a missing final boundary, delimiters with blanks, prefixes that are not delimiters
    b"Content-Type: multipart/mixed; boundary=xyz\r\n\r\n--xyz\r\nContent-Type: text/plain\r\n\r\n"
    b"first\r\n--xyz  \r\n\r\nsecond part, no end\r\n",
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
    b"Content-Type: multipart/mixed; boundary=b-1\r\n\r\n--b-1\r\n\r\none\r\n--bx\r\n--b\r\n\r\n"
    b"two\r\n--b--\r\n",
    # the same boundary nested, header-only parts, empty parts, trimmed empty lines
    b"Content-Type: multipart/mixed; boundary=s\r\n\r\n--s\r\n"
    b"Content-Type: multipart/mixed; boundary=s\r\n\r\n--s\r\n\r\nx\r\n--s--\r\n",
    b"Content-Type: multipart/mixed; boundary=h\r\n\r\n--h\r\nContent-Type: text/plain\r\n--h\r\n"
    b"Content-Type: text/html\r\n\r\n--h\r\n--h\r\n\r\n--h\r\n\n--h\r\nX: y\r\n\r\n\r\n--h--\r\n",
    b"Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: message/rfc822\r\n\r\n"
    b"--m\r\nContent-Type: message/rfc822\r\n--m\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: in\r\n--m--\r\n",
    # digests, message/global, an encoded message that stays a leaf
    b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: one\r\n\r\nbody one\r\n"
    b"--d\r\nContent-Type: text/plain\r\n\r\nnot a message\r\n--d\r\n\r\nFrom: x@y\r\n--d--\r\n",
    b"Content-Type: message/global\r\n\r\nSubject: =?utf-8?B?w6k=?=\r\n\r\ninner\r\n",
    b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA0KDQp5DQo=\r\n",
    # bare LF, lone CR, From_ lines, quoting
    b"Subject: lf\nContent-Type: multipart/mixed; boundary=q\n\n--q\nContent-Type: text/plain\n\n"
    b"a\nb\n--q\n\nc\n--q--\n",
    b"Subject: cr\r\n\r\nlone\rCR here\r\nand \r\r\n end\r\nFrom the mbox\r\n>From quoted\r\n"
    b">>From twice\r\n.leading dot\r\n",
    # parameters: RFC 2231, encoded words, 8-bit, comments
    b"Content-Type: multipart/mixed;\r\n boundary=\"=_frontier; \\\"x\\\"=1\" (a comment)\r\n\r\n"
    b"--=_frontier; \"x\"=1\r\nContent-Type: application/octet-stream;\r\n"
    b" name*0*=utf-8''%E2%82%AC%20rates;\r\n name*1=\" 2024.txt\"\r\n"
    b"Content-Disposition: ATTACHMENT;\r\n\tfilename*=iso-8859-1'en'caf%E9.txt; size=5\r\n\r\n"
    b"data\r\n--=_frontier; \"x\"=1\r\n"
    b"Content-Type: text/plain; charset=us-ascii (Plain text); format=flowed\r\n"
    b"Content-Disposition: inline; filename=\"=?utf-8?B?w6lsw6h2ZQ==?=.txt\"\r\n\r\ntext\r\n"
    b"--=_frontier; \"x\"=1\r\nContent-Type: multipart/related; boundary=----=_Part_1_2.3\r\n\r\n"
    b"------=_Part_1_2.3\r\n\r\nrelated\r\n------=_Part_1_2.3--\r\n--=_frontier; \"x\"=1--\r\n",
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Language: en, de (German)\r\n"
    b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\nContent-Location: http://example.org/a\r\n"
    b"Content-Description: =?utf-8?Q?caf=C3=A9?=\r\nContent-ID: <x@y>\r\n\r\nx",
    b"Content-Type: TEXT/Plain; CHARSET=\"ISO-8859-1\"; name=caf\xe9.txt\r\n"
    b"Content-Transfer-Encoding: Quoted-Printable\r\n\r\ncaf=E9 cr=E8me =\r\nbr=FBl=C3=A9e\r\n",
    # envelopes
    b"Subject: caf\xc3\xa9 \"quoted\"\r\nFrom: Joe <joe@x.test>\r\nReply-To: list@x.test\r\n"
    b"To: Undisclosed recipients:;\r\nCc: team: a@b.test, \"C. D.\" <c@d.test>;\r\n"
    b"Bcc: (comment only) e@f.test\r\nIn-Reply-To: <a@b>\r\nSender: s@x.test\r\n"
    b"Date: Mon, 2 Feb 2026 23:59:59 -0800\r\nMessage-ID: <m@x.test>\r\n\r\n",
    b"subject: lower case\r\nFROM: UPPER <UP@X.TEST>\r\nfrom: second <second@x.test>\r\n"
    b"To: @route,@r2:user@host.test, broken@, <>, \"q\\\"uote\" <q@h>\r\n\r\nbody\r\n",
    b"Subject: a\0b\r\nContent-Type: multipart/mixed; boundary=\"n\0\"\r\n\r\n--n \r\n\r\n"
    b"bo\0dy\r\n--n --\r\n",
    # headers: folding, junk, no colon, no empty line at all
    b" stray continuation\r\nSubject : folded\r\n\tover two lines\r\nno colon here\r\nX-Empty:\r\n"
    b"To: bob@example.net\r\n\r\nNot: a header\r\n",
    b"Subject: only a header\r\nContent-Type: multipart/mixed; boundary=z",
    b"Subject: x\r\n",
    b"\r\n",
    b"x",
    # search material: encodings and charsets
    b"Subject: qp\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nThe budget is =E2=82=AC 100, Hello=\r\n"
    b" World. tail   \r\nsoft=  \r\nbreak =3D done=\r\n",
    b"Subject: b64\r\nContent-Type: text/plain; charset=iso-8859-15\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\npCBjYWbp\r\nIHByaXg=\r\n",
    b"Subject: 1252\r\nContent-Type: text/plain; charset=windows-1252\r\n\r\n\x80 smart \x93quotes\x94\r\n",
    b"Subject: ascii 8bit utf8\r\nContent-Type: text/plain\r\n\r\ncaf\xc3\xa9 ok\r\n",
    b"Subject: ascii 8bit latin\r\nContent-Type: text/plain\r\n\r\ncaf\xe9 ok\r\n",
    b"Subject: unknown cs\r\nContent-Type: text/plain; charset=koi8-r\r\n\r\n\xf0\xd2\xc9\r\n",
    b"Subject: bad utf8\r\nContent-Type: text/plain; charset=utf-8\r\n\r\na\xff\xfeb \xe2\x82 c\r\n",
]


class Rng:
    """xorshift64*: the same numbers everywhere."""

    def __init__(self, seed):
        self.s = seed or 1

    def next(self):
        x = self.s
        x ^= (x >> 12)
        x ^= (x << 25) & 0xFFFFFFFFFFFFFFFF
        x ^= (x >> 27)
        self.s = x
        return (x * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFFFFFF

    def below(self, n):
        return self.next() % n

    def pick(self, seq):
        return seq[self.below(len(seq))]


WORDS = [b"alpha", b"Budget", b"hello", b"World", b"caf\xc3\xa9", b"\xe9t\xe9", b"--", b"From",
         b">From", b"=", b"=3D", b"=\r\n", b"  ", b"\t", b".", b"needle", b"NEEDLE", b"=E2=82=AC",
         b"\x00", b"\r", b"x" * 90, b"=?utf-8?Q?caf=C3=A9?="]
TYPES = [b"text/plain", b"text/html", b"text/plain; charset=utf-8", b"text/plain; charset=iso-8859-1",
         b"application/octet-stream", b"image/png; name=\"p.png\"", b"message/rfc822",
         b"multipart/mixed", b"multipart/alternative", b"multipart/digest", b"text",
         b"text/plain; charset=\"unknown-8bit\""]
ENCODINGS = [None, b"7bit", b"8bit", b"base64", b"quoted-printable", b"binary", b"x-uuencode"]


def gen_text(r, eol):
    out = []
    for _ in range(r.below(6)):
        out.append(b" ".join(r.pick(WORDS) for _ in range(r.below(8))) + eol)
    return b"".join(out)


def gen_entity(r, depth, eol, top):
    hdr = []
    if top or r.below(3):
        hdr.append(b"Subject: " + gen_text(r, b"").strip() + b" " + b"%d" % r.below(1000) + eol)
    if top and r.below(2):
        hdr.append(b"From: " + r.pick([b"A <a@x.test>", b"b@y.test", b"\"Q\" <q@z>", b"grp: c@d;"]) + eol)
    if r.below(4):
        hdr.append(b"Date: " + r.pick([b"Tue, 03 Feb 2026 10:00:00 +0100", b"1 Jan 2000 00:00 GMT",
                                       b"junk"]) + eol)
    t = r.pick(TYPES) if depth < 5 else b"text/plain"
    boundary = None
    if t.startswith(b"multipart"):
        boundary = r.pick([b"b", b"bb", b"=_x", b"b%d" % depth, b"b " * 2])
        t += b"; boundary=\"" + boundary + b"\""
    if r.below(8):
        hdr.append(b"Content-Type: " + t + eol)
    enc = r.pick(ENCODINGS)
    if enc:
        hdr.append(b"Content-Transfer-Encoding: " + enc + eol)
    if r.below(5) == 0:
        hdr.append(b" continuation" + eol)
    if r.below(6) == 0:
        hdr.append(b"X-Folded: a" + eol + b"\tb" + eol)
    body = b""
    if boundary is not None and b"Content-Type: multipart" in b"".join(hdr):
        if r.below(3):
            body += gen_text(r, eol)
        for _ in range(r.below(4)):
            body += b"--" + boundary + r.pick([b"", b" ", b"\t "]) + eol
            body += gen_entity(r, depth + 1, eol, False)
        if r.below(4):
            body += b"--" + boundary + b"--" + eol + gen_text(r, eol)
    elif b"message/rfc822" in t and r.below(3):
        body = gen_entity(r, depth + 1, eol, True)
    elif enc == b"base64":
        body = b"SGVsbG8gbmVlZGxlIHdvcmxk" + eol + b"Y2Fmw6k=" + eol
    else:
        body = gen_text(r, eol)
    sep = eol if r.below(10) else b""
    return b"".join(hdr) + sep + body


def messages():
    out = list(HAND)
    r = Rng(20260203)
    for i in range(90):
        eol = b"\n" if r.below(7) == 0 else b"\r\n"
        out.append(gen_entity(r, 0, eol, True))
    # limits: parts, depth, headers; one long line
    out.append(b"Content-Type: multipart/mixed; boundary=p\r\n\r\n" + b"--p\r\n\r\nx\r\n" * 1010 + b"--p--\r\n")
    deep = b""
    for i in range(40):
        deep += b"Content-Type: multipart/mixed; boundary=d%d\r\n\r\n--d%d\r\n" % (i, i)
    out.append(deep + b"\r\nbottom\r\n")
    out.append(b"".join(b"X-H%d: v\r\n" % i for i in range(1100)) + b"Subject: late\r\n\r\nbody\r\n")
    out.append(b"Subject: long line\r\n\r\n" + b"y" * 100000 + b" needle " + b"z" * 5000 + b"\r\n")
    return out
