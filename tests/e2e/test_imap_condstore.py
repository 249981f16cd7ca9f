"""End-to-end tests of CONDSTORE and QRESYNC (RFC 7162), \\Recent (RFC
3501 2.3.2) and SAVEDATE (RFC 8514), with raw sockets; every answer also
goes through the strict response grammar (imapgrammar.py). The resync
flows are the ones Thunderbird and K-9 run: remember HIGHESTMODSEQ, come
back later, ask only for what changed."""
import re

import imapgrammar
from test_imap import Raw, deliver, imap_server


def checked(lines):
    for l in lines:
        imapgrammar.check(l + b"\r\n")
    return lines


def session(s, box=None, enable=None):
    c = Raw(s.imap_port)
    assert c.cmd(b"a", b"LOGIN alice@example.org secret")[-1].startswith(b"a OK")
    if enable:
        assert checked(c.cmd(b"e", b"ENABLE " + enable))[-1].startswith(b"e OK")
    if box:
        assert c.cmd(b"s", b"SELECT " + box)[-1].startswith(b"s OK")
    return c


def code(lines, name):
    """The number of the response code [NAME n] among lines."""
    for l in lines:
        m = re.search(rb"\[" + name + rb" (\d+)\]", l)
        if m:
            return int(m.group(1))
    raise AssertionError("no [%s] in %r" % (name.decode(), lines))


def modseqs(lines):
    """{uid: modseq} of the FETCH lines."""
    out = {}
    for l in lines:
        m = re.search(rb"UID (\d+).*MODSEQ \((\d+)\)|MODSEQ \((\d+)\).*UID (\d+)", l)
        if m:
            uid, ms = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
            out[int(uid)] = int(ms)
    return out


def test_condstore_modseqs_changedsince_unchangedsince():
    """condstore: HIGHESTMODSEQ at SELECT and in STATUS, FETCH MODSEQ, CHANGEDSINCE, STORE UNCHANGEDSINCE with [MODIFIED], SEARCH MODSEQ"""
    s = imap_server()
    try:
        deliver(s, [b"Subject: %d\r\n\r\nbody\r\n" % i for i in range(1, 6)])
        c = Raw(s.imap_port)
        caps = c.cmd(b"a", b"CAPABILITY")[0].split()
        assert b"CONDSTORE" in caps and b"QRESYNC" in caps and b"SAVEDATE" in caps, caps
        c.cmd(b"b", b"LOGIN alice@example.org secret")
        r = checked(c.cmd(b"c", b"SELECT INBOX (CONDSTORE)"))
        high = code(r, b"HIGHESTMODSEQ")
        r = checked(c.cmd(b"d", b"UID FETCH 1:* (FLAGS MODSEQ)"))
        ms = modseqs(r)
        assert sorted(ms) == [1, 2, 3, 4, 5] and max(ms.values()) == high, (r, high)
        assert len(set(ms.values())) == 5, ms  # every message its own
        # a change moves the message's modseq above every other one
        r = checked(c.cmd(b"e", b"STORE 2 +FLAGS (\\Flagged)"))
        m2 = modseqs(r)[2]
        assert m2 > high and b"FLAGS (\\Flagged" in r[0].replace(b"\\Recent ", b""), r
        r = checked(c.cmd(b"f", b"FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % high))
        assert len(r) == 2 and r[0].startswith(b"* 2 FETCH") and b"MODSEQ (%d)" % m2 in r[0], r
        # UNCHANGEDSINCE: 2 changed after high, so it fails there; 3 passes
        r = checked(c.cmd(b"g", b"STORE 2:3 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % high))
        assert r[-1].startswith(b"g OK [MODIFIED 2]"), r
        assert [l for l in r if b"FETCH" in l][0].startswith(b"* 3 FETCH"), r
        r = checked(c.cmd(b"h", b"UID FETCH 2:3 (FLAGS)"))
        assert b"\\Seen" not in r[0] and b"\\Seen" in r[1], r
        # .SILENT still tells the new modseq (RFC 7162 3.1.3)
        r = checked(c.cmd(b"i", b"UID STORE 4 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Deleted)" % high))
        assert len(r) == 2 and b"UID 4" in r[0] and b"MODSEQ" in r[0] and b"FLAGS" not in r[0], r
        r = checked(c.cmd(b"j", b"UID STORE 4 (UNCHANGEDSINCE 1) -FLAGS (\\Deleted)"))
        assert r[-1].startswith(b"j OK [MODIFIED 4]"), r
        r = checked(c.cmd(b"k", b"SEARCH MODSEQ %d" % (high + 1)))
        assert r[0].startswith(b"* SEARCH 2 3 4 (MODSEQ "), r
        r = checked(c.cmd(b"l", b'SEARCH RETURN (COUNT) MODSEQ "/flags/\\\\seen" all %d' % (high + 1)))
        assert r[0].startswith(b'* ESEARCH (TAG "l") COUNT 3 MODSEQ '), r
        r = checked(c.cmd(b"m", b"STATUS INBOX (HIGHESTMODSEQ MESSAGES)"))
        now = int(re.search(rb"HIGHESTMODSEQ (\d+)", r[0]).group(1))
        assert now > m2, r
        assert c.cmd(b"n", b"STORE 1 (UNCHANGEDSINCE x) +FLAGS (\\Seen)")[-1].startswith(b"n BAD")
        assert c.cmd(b"o", b"FETCH 1 (FLAGS) (CHANGEDSINCE)")[-1].startswith(b"o BAD")
        assert c.cmd(b"p", b"FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)")[-1].startswith(b"p BAD")
        c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0


def test_condstore_other_sessions_changes_carry_modseq():
    """condstore: once on, another session's flag change arrives as FETCH with UID and MODSEQ; before, without"""
    s = imap_server()
    try:
        deliver(s, [b"Subject: x\r\n\r\nbody\r\n"])
        plain, cond, other = session(s, b"INBOX"), session(s), session(s, b"INBOX")
        assert checked(cond.cmd(b"s", b"SELECT INBOX (CONDSTORE)"))[-1].startswith(b"s OK")
        other.cmd(b"t", b"STORE 1 +FLAGS (\\Answered)")
        r = checked(cond.cmd(b"n", b"NOOP"))
        assert re.match(rb"\* 1 FETCH \(UID 1 FLAGS \(\\Answered\) MODSEQ \(\d+\)\)", r[0]), r
        r = checked(plain.cmd(b"n", b"NOOP"))
        assert r[0] == b"* 1 FETCH (FLAGS (\\Recent \\Answered))", r  # plain took it as recent
        for c in (plain, cond, other):
            c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0


def test_qresync_select_tells_vanished_and_changed():
    """qresync: ENABLE QRESYNC; SELECT (QRESYNC (uidvalidity modseq)) gives VANISHED (EARLIER) and the changed flags only; expunges come as VANISHED; [CLOSED]"""
    s = imap_server()
    try:
        deliver(s, [b"Subject: %d\r\n\r\nbody\r\n" % i for i in range(1, 9)])
        c = session(s, enable=b"QRESYNC")
        r = checked(c.cmd(b"s", b"SELECT INBOX"))
        uv, high = code(r, b"UIDVALIDITY"), code(r, b"HIGHESTMODSEQ")
        c.cmd(b"u", b"UNSELECT")
        # meanwhile, another client: expunges 2 and 5, flags 7
        o = session(s, b"INBOX")
        o.cmd(b"t", b"STORE 2,5 +FLAGS.SILENT (\\Deleted)")
        o.cmd(b"x", b"EXPUNGE")
        o.cmd(b"f", b"UID STORE 7 +FLAGS (\\Flagged)")
        r = checked(c.cmd(b"q", b"SELECT INBOX (QRESYNC (%d %d))" % (uv, high)))
        assert b"* VANISHED (EARLIER) 2,5" in r, r
        fetches = [l for l in r if b"FETCH" in l]
        assert len(fetches) == 1 and b"UID 7 " in fetches[0] and b"\\Flagged" in fetches[0], r
        assert r.index(b"* VANISHED (EARLIER) 2,5") < r.index(fetches[0]), r
        # known-uids limits the answer
        r = checked(c.cmd(b"k", b"SELECT INBOX (QRESYNC (%d %d 1:4 (1:3 1:3)))" % (uv, high)))
        assert b"* OK [CLOSED] Previous mailbox closed" in r, r
        assert b"* VANISHED (EARLIER) 2" in r and not [l for l in r if b"FETCH" in l], r
        # another UIDVALIDITY: a plain SELECT, nothing vanished told
        r = checked(c.cmd(b"w", b"SELECT INBOX (QRESYNC (%d %d))" % (uv + 1, high)))
        assert not [l for l in r if b"VANISHED" in l or b"FETCH" in l], r
        # UID FETCH (CHANGEDSINCE VANISHED)
        r = checked(c.cmd(b"v", b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % high))
        assert r[0] == b"* VANISHED (EARLIER) 2,5" and b"UID 7" in r[1] and len(r) == 3, r
        # an expunge now: VANISHED, not EXPUNGE
        o.cmd(b"d", b"UID STORE 3 +FLAGS.SILENT (\\Deleted)")
        o.cmd(b"e", b"UID EXPUNGE 3")
        r = checked(c.cmd(b"n", b"NOOP"))
        assert b"* VANISHED 3" in r and not [l for l in r if l.endswith(b"EXPUNGE")], r
        r = checked(c.cmd(b"g", b"SEARCH ALL"))
        assert r[0] == b"* SEARCH 1 2 3 4 5", r
        assert c.cmd(b"b", b"FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)")[-1].startswith(b"b BAD")
        c.cmd(b"z", b"LOGOUT")
        o.cmd(b"z", b"LOGOUT")
        # QRESYNC in SELECT without ENABLE is BAD
        p = session(s)
        assert p.cmd(b"q", b"SELECT INBOX (QRESYNC (%d %d))" % (uv, high))[-1].startswith(b"q BAD")
        p.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0


def test_qresync_after_compaction_still_names_every_vanished_uid():
    """qresync: expunges a compaction dropped from the index are still told (every UID not live), the live ones never"""
    s = imap_server()
    try:
        deliver(s, [b"Subject: %d\r\n\r\n%s\r\n" % (i, b"x" * 2000) for i in range(1, 11)])
        c = session(s, enable=b"QRESYNC")
        r = c.cmd(b"s", b"SELECT INBOX")
        uv, high = code(r, b"UIDVALIDITY"), code(r, b"HIGHESTMODSEQ")
        c.cmd(b"u", b"UNSELECT")
        o = session(s, b"INBOX")
        o.cmd(b"t", b"STORE 1:7 +FLAGS.SILENT (\\Deleted)")
        o.cmd(b"x", b"EXPUNGE")  # most of the mbox: compacted
        o.cmd(b"z", b"LOGOUT")
        r = checked(c.cmd(b"q", b"SELECT INBOX (QRESYNC (%d %d))" % (uv, high)))
        assert b"* 3 EXISTS" in r, r
        assert b"* VANISHED (EARLIER) 1:7" in r, r
        # and from a modseq after the compaction: nothing
        high2 = code(r, b"HIGHESTMODSEQ")
        r = checked(c.cmd(b"r", b"SELECT INBOX (QRESYNC (%d %d))" % (uv, high2)))
        assert not [l for l in r if b"VANISHED" in l or b"FETCH" in l], r
        c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0


def test_recent_goes_to_one_session():
    """recent: the first SELECT takes new mail as \\Recent, a second SELECT and EXAMINE see none; new mail while selected is recent to one session; STATUS RECENT"""
    s = imap_server()
    try:
        deliver(s, [b"Subject: %d\r\n\r\nbody\r\n" % i for i in range(1, 4)])
        st = session(s)
        r = checked(st.cmd(b"t", b"STATUS INBOX (RECENT MESSAGES)"))
        assert r[0] == b'* STATUS "INBOX" (RECENT 3 MESSAGES 3)', r
        ex = session(s)
        r = checked(ex.cmd(b"x", b"EXAMINE INBOX"))
        assert b"* 0 RECENT" in r, r
        a = session(s)
        r = checked(a.cmd(b"s", b"SELECT INBOX"))
        assert b"* 3 RECENT" in r, r
        r = checked(a.cmd(b"f", b"FETCH 1 (FLAGS)"))
        assert r[0] == b"* 1 FETCH (FLAGS (\\Recent))", r
        assert checked(a.cmd(b"g", b"SEARCH RECENT"))[0] == b"* SEARCH 1 2 3"
        assert checked(a.cmd(b"h", b"SEARCH NEW"))[0] == b"* SEARCH 1 2 3"
        b = session(s)
        r = checked(b.cmd(b"s", b"SELECT INBOX"))
        assert b"* 0 RECENT" in r, r
        assert checked(b.cmd(b"g", b"SEARCH RECENT"))[0] == b"* SEARCH"
        assert checked(b.cmd(b"h", b"SEARCH OLD"))[0] == b"* SEARCH 1 2 3"
        r = checked(st.cmd(b"t", b"STATUS INBOX (RECENT)"))
        assert r[0] == b'* STATUS "INBOX" (RECENT 0)', r
        deliver(s, [b"Subject: 4\r\n\r\nbody\r\n"])
        ra, rb = checked(a.cmd(b"n", b"NOOP")), checked(b.cmd(b"n", b"NOOP"))
        got = sorted([l for l in ra + rb if l.endswith(b"RECENT")])
        assert got in ([b"* 0 RECENT", b"* 4 RECENT"], [b"* 1 RECENT", b"* 3 RECENT"]), (ra, rb)
        for c in (st, ex, a, b):
            c.cmd(b"z", b"LOGOUT")
        # a new session after all that: nothing is recent any more
        c = session(s)
        assert b"* 0 RECENT" in c.cmd(b"s", b"SELECT INBOX")
        c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0


def test_savedate():
    """savedate: FETCH SAVEDATE gives when the message came into the folder; SEARCH SAVEDSINCE and SAVEDATESUPPORTED"""
    s = imap_server()
    try:
        deliver(s, [b"Subject: x\r\n\r\nbody\r\n"])
        c = session(s, b"INBOX")
        msg = b"Subject: old\r\n\r\nx\r\n"
        c.send(b"p APPEND INBOX \"01-Jan-2001 10:00:00 +0000\" {%d+}\r\n%s\r\n" % (len(msg), msg))
        assert c.until(b"p")[-1].startswith(b"p OK")
        r = checked(c.cmd(b"f", b"FETCH 1:2 (INTERNALDATE SAVEDATE)"))
        dates = [re.findall(rb'"([^"]+)"', l) for l in r[:2]]
        assert dates[1][0].startswith(b"01-Jan-2001") and not dates[1][1].endswith(b"2001 10:00:00 +0000"), r
        assert checked(c.cmd(b"g", b"SEARCH SAVEDSINCE 1-Jan-2020"))[0] == b"* SEARCH 1 2"
        assert checked(c.cmd(b"h", b"SEARCH SINCE 1-Jan-2020"))[0] == b"* SEARCH 1"
        assert checked(c.cmd(b"i", b"SEARCH SAVEDATESUPPORTED"))[0] == b"* SEARCH 1 2"
        c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0


def test_thunderbird_style_session_and_resync():
    """condstore: a Thunderbird-style session (ID, NAMESPACE, ENABLE CONDSTORE, LIST-EXTENDED with SPECIAL-USE, SELECT (CONDSTORE), IDLE) and its resync the next day asks only for what changed"""
    s = imap_server()
    try:
        deliver(s, [b"Subject: %d\r\n\r\nbody\r\n" % i for i in range(1, 21)])
        c = Raw(s.imap_port)
        checked(c.cmd(b"1", b"capability"))
        assert c.cmd(b"2", b"login alice@example.org secret")[-1].startswith(b"2 OK")
        checked(c.cmd(b"3", b'ID ("name" "Thunderbird" "version" "128.0")'))
        checked(c.cmd(b"4", b"namespace"))
        assert checked(c.cmd(b"5", b"ENABLE CONDSTORE"))[0] == b"* ENABLED CONDSTORE"
        r = checked(c.cmd(b"6", b'list (subscribed) "" "*" return (special-use)'))
        uses = {l.rsplit(b" ", 1)[1]: l for l in r if l.startswith(b"* LIST")}
        assert b"\\Sent" in uses[b'"Sent"'] and b"\\Trash" in uses[b'"Trash"'], r
        r = checked(c.cmd(b"7", b'select "INBOX" (CONDSTORE)'))
        uv, high = code(r, b"UIDVALIDITY"), code(r, b"HIGHESTMODSEQ")
        r = checked(c.cmd(b"8", b"UID fetch 1:* (FLAGS)"))
        assert len(r) == 21, r
        c.send(b"9 IDLE\r\n")
        assert c.line().startswith(b"+ ")
        c.send(b"DONE\r\n")
        assert c.until(b"9")[-1].startswith(b"9 OK")
        c.cmd(b"10", b"logout")
        # meanwhile a phone reads two, deletes one, and new mail comes
        p = session(s, b"INBOX")
        p.cmd(b"a", b"UID STORE 3,4 +FLAGS (\\Seen)")
        p.cmd(b"b", b"UID MOVE 5 Trash")
        p.cmd(b"z", b"LOGOUT")
        deliver(s, [b"Subject: new\r\n\r\nbody\r\n"])
        # the next day
        c = session(s)
        r = checked(c.cmd(b"s", b'select "INBOX" (CONDSTORE)'))
        assert code(r, b"UIDVALIDITY") == uv and code(r, b"HIGHESTMODSEQ") > high, r
        r = checked(c.cmd(b"f", b"UID fetch 1:* (FLAGS) (CHANGEDSINCE %d)" % high))
        uids = sorted(int(re.search(rb"UID (\d+)", l).group(1)) for l in r if l.startswith(b"* "))
        assert uids == [3, 4, 21], r  # the two read and the new one; 5 is gone
        c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0


def test_recent_is_never_given_to_two_sessions():
    """recent: new mail another session took first is not \\Recent to a session that holds older recent mail (imaptest: "\\Recent flag in multiple sessions")"""
    s = imap_server()
    try:
        a, b = session(s, b"INBOX"), session(s, b"INBOX")
        deliver(s, [b"Subject: 1\r\n\r\nbody\r\n"])
        assert b"* 1 RECENT" in checked(b.cmd(b"n", b"NOOP"))  # b is told first: b's
        assert b"* 0 RECENT" in checked(a.cmd(b"n", b"NOOP"))
        deliver(s, [b"Subject: 2\r\n\r\nbody\r\n"])
        assert b"* 1 RECENT" in checked(a.cmd(b"n", b"NOOP"))  # a first this time: a's
        r = checked(b.cmd(b"m", b"NOOP"))
        assert b"* 2 EXISTS" in r and b"* 1 RECENT" in r, r  # still only its first
        fa = checked(a.cmd(b"f", b"FETCH 1:2 (FLAGS)"))
        fb = checked(b.cmd(b"f", b"FETCH 1:2 (FLAGS)"))
        assert [b"\\Recent" in l for l in fa[:2]] == [False, True], fa
        assert [b"\\Recent" in l for l in fb[:2]] == [True, False], fb
        assert checked(b.cmd(b"g", b"SEARCH RECENT"))[0] == b"* SEARCH 1"
        for c in (a, b):
            c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0
