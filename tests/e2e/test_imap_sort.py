"""End-to-end tests of SORT and THREAD (RFC 5256) with DISPLAYFROM and
DISPLAYTO (RFC 5957), as webmail clients (Roundcube, SnappyMail) use them:
a dozen messages with varied headers, then exact answers."""
import time

from test_imap import Raw, deliver, imap_server


def msg(frm, subject=None, date=None, mid=None, to=None, cc=None, refs=None, irt=None, body=b"hi"):
    h = [b"From: " + frm]
    for name, v in ((b"To", to), (b"Cc", cc), (b"Subject", subject), (b"Date", date),
                    (b"Message-ID", mid), (b"References", refs), (b"In-Reply-To", irt)):
        if v is not None:
            h.append(name + b": " + v)
    return b"\r\n".join(h) + b"\r\n\r\n" + body + b"\r\n"


# Seq 1..12 once the throwaway first message is expunged (so UIDs are
# seq + 1). Sent dates, UTC: 3 < 6 < 5 < 9 < 10 < 1 < 4 < 2 < 8 < 12 < 11 < 7.
MESSAGES = [
    msg(b"zed@a.test", b"throwaway"),
    msg(b'"Zed Zulu" <zed@a.test>', b"Project plan", b"Mon, 05 Jan 2026 10:00:00 +0000",
        b"<m1@a.test>", to=b"Amy <amy@b.test>"),
    msg(b"bob@a.test", b"Re: Project plan", b"Tue, 06 Jan 2026 09:00:00 +0000", b"<m2@a.test>",
        to=b"zed@a.test", refs=b"<m1@a.test>"),
    msg(b"Carl <carl@a.test>", b"=?utf-8?q?=C3=84pfel?= und\r\n\tBirnen",
        b"Thu, 01 Jan 2026 00:30:00 +0100", b"<m3@a.test>", to=b"dan@b.test"),
    msg(b"dave@a.test", b"[team] Re: Project plan", b"Tue, 06 Jan 2026 08:00:00 +0000",
        b"<m4@a.test>", to=b"bob@b.test", cc=b"Zed <zed@a.test>, amy@a.test", irt=b"<m1@a.test>"),
    msg(b"=?utf-8?q?=C3=89mile?= <emile@a.test>", b"Fwd: Lunch", b"Sat, 03 Jan 2026 12:00:00 -0500",
        b"<m5@a.test>", to=b"carl@b.test"),
    msg(b"amy@a.test", b"lunch (fwd)", b"Fri, 02 Jan 2026 08:00:00 +0000", b"<m6@a.test>",
        to=b"emile@b.test"),
    msg(b"bob@a.test", b"Re: Re: lunch", None, b"<m7@a.test>", to=b"amy@b.test",
        refs=b"<m6@a.test>", body=b"x" * 3000),
    msg(b"Ann <ann@a.test>", b"Re: Project plan", b"Wed, 07 Jan 2026 10:00:00 +0000", b"<m8@a.test>",
        to=b"Zed <zed@b.test>", refs=b"<m1@a.test>\r\n <m2@a.test>"),
    msg(b"erin@a.test", None, b"Sun, 04 Jan 2026 10:00:00 +0000", b"<m9@a.test>",
        refs=b"<gone@a.test>"),
    msg(b"frank@a.test", b"Re: Budget", b"Sun, 04 Jan 2026 11:00:00 +0000", b"<m10@a.test>",
        refs=b"<gone@a.test>"),
    msg(b"gina@a.test", b"Budget", b"Thu, 08 Jan 2026 10:00:00 +0000", b"<m11@a.test>"),
    msg(b"hank@a.test", b"[fwd: Re: Budget]", b"Thu, 08 Jan 2026 09:00:00 +0000", b"<m1@a.test>"),
]


def session():
    s = imap_server()
    deliver(s, MESSAGES)
    c = Raw(s.imap_port)
    c.cmd(b"l", b"LOGIN alice@example.org secret")
    c.cmd(b"s", b"SELECT INBOX")
    c.cmd(b"d", b"STORE 1 +FLAGS (\\Deleted)")
    assert c.cmd(b"e", b"EXPUNGE")[-1].startswith(b"e OK")
    return s, c


def answer(c, tag, text, kind):
    r = c.cmd(tag, text)
    assert r[-1].startswith(tag + b" OK"), (text, r)
    got = [l for l in r if l.startswith(b"* " + kind)]
    assert len(got) == 1, r
    return got[0][len(kind) + 2:].strip()


def test_sort_orders_by_each_criterion_and_reverse():
    """SORT: DATE, ARRIVAL, SUBJECT (base subject), FROM/TO/CC (first mailbox), DISPLAYFROM, SIZE, REVERSE, ties by sequence number"""
    s, c = session()
    try:
        caps = c.cmd(b"a", b"CAPABILITY")[0].split()
        for cap in (b"SORT", b"THREAD=ORDEREDSUBJECT", b"THREAD=REFERENCES"):
            assert cap in caps, caps
        cases = [
            (b"(DATE)", b"3 6 5 9 10 1 4 2 8 12 11 7"),
            (b"(REVERSE DATE)", b"7 11 12 8 2 4 1 10 9 5 6 3"),
            (b"(SUBJECT)", b"9 10 11 12 5 6 7 1 2 4 8 3"),
            (b"(SUBJECT REVERSE DATE)", b"9 11 12 10 7 5 6 8 2 4 1 3"),
            (b"(FROM)", b"6 8 2 7 3 4 5 9 10 11 12 1"),
            (b"(REVERSE FROM DATE)", b"1 12 11 10 9 5 4 3 2 7 8 6"),
            (b"(DISPLAYFROM)", b"6 8 2 7 3 4 9 10 11 12 1 5"),
            (b"(TO)", b"9 10 11 12 1 7 4 5 3 6 2 8"),
            (b"(CC)", b"1 2 3 5 6 7 8 9 10 11 12 4"),
            (b"(ARRIVAL)", b"1 2 3 4 5 6 7 8 9 10 11 12"),
        ]
        for i, (crit, want) in enumerate(cases):
            got = answer(c, b"t%d" % i, b"SORT " + crit + b" UTF-8 ALL", b"SORT")
            assert got == want, (crit, got, want)
        sizes = {}
        for l in c.cmd(b"f", b"FETCH 1:* RFC822.SIZE"):
            if l.startswith(b"* "):
                sizes[int(l.split()[1])] = int(l.split(b"RFC822.SIZE ")[1].rstrip(b")"))
        want = b" ".join(b"%d" % n for n in sorted(sizes, key=lambda n: (-sizes[n], n)))
        assert answer(c, b"z", b"SORT (REVERSE SIZE) UTF-8 ALL", b"SORT") == want
    finally:
        c.close()
        assert s.stop() == 0


def test_sort_with_search_keys_and_uid_sort():
    """SORT with search keys keeps only what they match; UID SORT answers UIDs"""
    s, c = session()
    try:
        assert answer(c, b"a", b"SORT (DATE) UTF-8 FROM bob", b"SORT") == b"2 7"
        assert answer(c, b"b", b"SORT (SUBJECT) US-ASCII OR FROM bob FROM amy", b"SORT") == b"6 7 2"
        assert answer(c, b"c", b"SORT (SUBJECT) UTF-8 SUBJECT nothing-like-this", b"SORT") == b""
        assert answer(c, b"d", b"UID SORT (DATE) UTF-8 ALL", b"SORT") == \
            b"4 7 6 10 11 2 5 3 9 13 12 8"
        dates = {}
        for l in c.cmd(b"f", b"UID FETCH 2:4 INTERNALDATE"):
            if l.startswith(b"* "):
                uid = int(l.split(b"UID ")[1].split()[0].rstrip(b")"))
                dates[uid] = time.mktime(time.strptime(
                    l.split(b'INTERNALDATE "')[1].split(b'"')[0][:20].decode(), "%d-%b-%Y %H:%M:%S"))
        want = b" ".join(b"%d" % u for u in sorted(dates, key=lambda u: (-dates[u], u)))
        assert answer(c, b"e", b"UID SORT (REVERSE ARRIVAL) utf-8 UID 2:4", b"SORT") == want
    finally:
        c.close()
        assert s.stop() == 0


def test_thread_references_and_orderedsubject_exact():
    """THREAD: REFERENCES (parents from References/In-Reply-To, a dummy for a missing parent, a duplicate Message-ID, subjects merged) and ORDEREDSUBJECT, exact responses; UID THREAD"""
    s, c = session()
    try:
        assert answer(c, b"a", b"THREAD REFERENCES UTF-8 ALL", b"THREAD") == \
            b"(3)((6 7)(5))((9)(10))(1 (4)(2 8))(11 12)"
        assert answer(c, b"b", b"THREAD ORDEREDSUBJECT UTF-8 ALL", b"THREAD") == \
            b"(3)(6 (5)(7))(9)(10 (12)(11))(1 (4)(2)(8))"
        assert answer(c, b"c", b"UID THREAD REFERENCES UTF-8 ALL", b"THREAD") == \
            b"(4)((7 8)(6))((10)(11))(2 (5)(3 9))(12 13)"
        assert answer(c, b"d", b"THREAD REFERENCES US-ASCII FROM bob", b"THREAD") == b"(2)(7)"
        assert answer(c, b"e", b"THREAD ORDEREDSUBJECT UTF-8 SUBJECT lunch", b"THREAD") == \
            b"(6 (5)(7))"
        assert answer(c, b"f", b"THREAD REFERENCES UTF-8 SUBJECT nothing-like-this",
                      b"THREAD") == b""
    finally:
        c.close()
        assert s.stop() == 0


def test_badcharset_and_malformed_commands():
    """SORT and THREAD: an unknown charset gets NO [BADCHARSET (UTF-8 US-ASCII)]; malformed commands get BAD, before SELECT too"""
    s, c = session()
    try:
        for i, cmd in enumerate((b"SORT (DATE) KOI8-R ALL", b"THREAD REFERENCES ISO-8859-1 ALL")):
            r = c.cmd(b"n%d" % i, cmd)
            assert r[-1].startswith(b"n%d NO [BADCHARSET (UTF-8 US-ASCII)]" % i), r
        for i, cmd in enumerate((b"SORT DATE UTF-8 ALL", b"SORT (REVERSE) UTF-8 ALL",
                                 b"SORT (DATE BOGUS) UTF-8 ALL", b"SORT () UTF-8 ALL",
                                 b"SORT (DATE) UTF-8", b"SORT (DATE)", b"SORT (DATE) UTF-8 FOO",
                                 b"SORT (REVERSE REVERSE DATE) UTF-8 ALL",
                                 b"SORT (" + b"DATE " * 17 + b") UTF-8 ALL",
                                 b"THREAD FOO UTF-8 ALL", b"THREAD REFERENCES",
                                 b"THREAD (REFERENCES) UTF-8 ALL", b"UID THREAD ORDEREDSUBJECT UTF-8")):
            r = c.cmd(b"b%d" % i, cmd)
            assert len(r) == 1 and r[-1].startswith(b"b%d BAD" % i), (cmd, r)
        assert c.cmd(b"u", b"UNSELECT")[-1].startswith(b"u OK")
        r = c.cmd(b"v", b"SORT (DATE) UTF-8 ALL")
        assert r[-1].startswith(b"v BAD") or r[-1].startswith(b"v NO"), r
        assert c.cmd(b"w", b"NOOP")[-1].startswith(b"w OK")
    finally:
        c.close()
        assert s.stop() == 0
