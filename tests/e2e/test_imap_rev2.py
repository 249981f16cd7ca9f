"""End-to-end tests of IMAP4rev2 (RFC 9051) beside IMAP4rev1: ENABLE
IMAP4rev2 and what it changes for that session only (no RECENT or \\Recent,
ESEARCH for every SEARCH, UTF-8 mailbox names over the stored modified
UTF-7, LIST at SELECT, [CLOSED], UIDs in unsolicited FETCH), STATUS DELETED
and SEARCHRES (RFC 5182: SEARCH RETURN (SAVE) and "$"). Raw sockets; every
answer goes through the strict response grammar (imapgrammar.py), in its
rev2 mode for a rev2 session."""
import re

import imapgrammar
from test_imap import Raw, deliver, imap_server


def checked(lines, rev2=False):
    for l in lines:
        imapgrammar.check(l + b"\r\n", rev2=rev2)
    return lines


def session(s, rev2, box=None):
    c = Raw(s.imap_port)
    assert c.cmd(b"a", b"LOGIN alice@example.org secret")[-1].startswith(b"a OK")
    if rev2:
        r = checked(c.cmd(b"e", b"ENABLE IMAP4rev2"))
        assert r == [b"* ENABLED IMAP4rev2", r[-1]] and r[-1].startswith(b"e OK"), r
    if box:
        r = checked(c.cmd(b"s", b"SELECT " + box), rev2)
        assert r[-1].startswith(b"s OK"), r
    return c


def untagged(lines, word):
    return [l for l in lines if l.startswith(b"* ") and word in l]


def test_imap4rev2_is_offered_beside_imap4rev1_and_enabled():
    """rev2: CAPABILITY has IMAP4rev1, IMAP4rev2 and SEARCHRES (LITERAL+ stands for LITERAL-); ENABLE IMAP4rev2 once; CAPABILITY unchanged after"""
    s = imap_server()
    try:
        c = Raw(s.imap_port)
        assert b"IMAP4rev2" in c.greeting, c.greeting
        caps = checked(c.cmd(b"a", b"CAPABILITY"))[0].split()
        for want in (b"IMAP4rev1", b"IMAP4rev2", b"SEARCHRES", b"LITERAL+", b"ESEARCH",
                     b"ENABLE", b"STATUS=SIZE"):
            assert want in caps, (want, caps)
        # RFC 7888 5: never both (LITERAL+ is the larger, and covers rev2's LITERAL-)
        assert b"LITERAL-" not in caps, caps
        c.cmd(b"b", b"LOGIN alice@example.org secret")
        caps = checked(c.cmd(b"b2", b"CAPABILITY"))[0]
        r = checked(c.cmd(b"c", b"ENABLE IMAP4rev2 CONDSTORE"))
        assert r[0] == b"* ENABLED IMAP4rev2 CONDSTORE", r
        r = checked(c.cmd(b"d", b"ENABLE imap4rev2 X-UNKNOWN"), rev2=True)
        assert r[0] == b"* ENABLED", r  # already on: not named again
        after = checked(c.cmd(b"f", b"CAPABILITY"), rev2=True)[0]
        assert after == caps, (caps, after)  # RFC 9051 6.3.1
        c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0


def test_a_rev2_session_gets_no_recent_esearch_list_and_closed():
    """rev2: SELECT without RECENT or UNSEEN but with LIST; no \\Recent; SEARCH answers ESEARCH; unsolicited FETCH has UID; [CLOSED]; a rev1 session after it sees all as before"""
    s = imap_server()
    try:
        deliver(s, [b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i) for i in range(1, 4)])
        c = session(s, rev2=True)
        r = checked(c.cmd(b"b", b"SELECT INBOX"), rev2=True)
        assert b"* 3 EXISTS" in r and not untagged(r, b"RECENT"), r
        assert not [l for l in r if b"[UNSEEN" in l], r
        assert [l for l in r if re.match(rb'\* LIST \([^)]*\) "\." "?INBOX"?$', l)], r
        r = checked(c.cmd(b"c", b"FETCH 1:* (FLAGS)"), rev2=True)
        assert len(r) == 4 and not [l for l in r if b"\\Recent" in l], r
        r = checked(c.cmd(b"d", b"SEARCH ALL"), rev2=True)
        assert r[0] == b'* ESEARCH (TAG "d") ALL 1:3', r
        r = checked(c.cmd(b"e", b"UID SEARCH 2:*"), rev2=True)
        assert r[0] == b'* ESEARCH (TAG "e") UID ALL 2:3', r
        r = checked(c.cmd(b"f", b"SEARCH SUBJECT nowhere"), rev2=True)
        assert r[0] == b'* ESEARCH (TAG "f")' and r[1].startswith(b"f OK"), r
        # no message is \Recent to a rev2 session: RECENT and NEW match none, OLD all
        r = checked(c.cmd(b"g", b"SEARCH RECENT"), rev2=True)
        assert r[0] == b'* ESEARCH (TAG "g")', r
        r = checked(c.cmd(b"h", b"SEARCH OLD"), rev2=True)
        assert r[0] == b'* ESEARCH (TAG "h") ALL 1:3', r
        r = checked(c.cmd(b"i", b"SEARCH RETURN (COUNT) NEW"), rev2=True)
        assert r[0] == b'* ESEARCH (TAG "i") COUNT 0', r
        # what another session does arrives with the UID (RFC 9051 7.5.2), no RECENT
        other = session(s, rev2=True, box=b"INBOX")  # rev2 too: it takes no \Recent
        assert other.cmd(b"x", b"STORE 2 +FLAGS.SILENT (\\Flagged)")[-1].startswith(b"x OK")
        deliver(s, [b"Subject: 4\r\n\r\nbody 4\r\n"])
        r = checked(c.cmd(b"j", b"NOOP"), rev2=True)
        assert b"* 2 FETCH (UID 2 FLAGS (\\Flagged))" in r, r
        assert b"* 4 EXISTS" in r and not untagged(r, b"RECENT"), r
        r = checked(c.cmd(b"k", b"STORE 1 +FLAGS (\\Seen)"), rev2=True)
        assert r[0] == b"* 1 FETCH (UID 1 FLAGS (\\Seen))", r
        r = checked(c.cmd(b"l", b"EXAMINE Drafts"), rev2=True)
        assert r[0] == b"* OK [CLOSED] Previous mailbox closed", r
        assert [l for l in r if re.match(rb'\* LIST \([^)]*\\Drafts[^)]*\) "\." "?Drafts"?$', l)], r
        c.cmd(b"z", b"LOGOUT")
        # the rev2 session took no \Recent: a rev1 one gets them all, as before
        v1 = session(s, rev2=False)
        r = checked(v1.cmd(b"b", b"SELECT INBOX"))
        assert b"* 4 RECENT" in r and [l for l in r if b"[UNSEEN 2]" in l], r
        assert not untagged(r, b"LIST"), r
        r = checked(v1.cmd(b"c", b"SEARCH RECENT"))
        assert r[0] == b"* SEARCH 1 2 3 4", r
        r = checked(v1.cmd(b"d", b"FETCH 4 (FLAGS)"))
        assert r[0] == b"* 4 FETCH (FLAGS (\\Recent))", r
        r = checked(v1.cmd(b"e", b"SELECT Drafts"))
        assert not [l for l in r if b"CLOSED" in l], r
        v1.cmd(b"z", b"LOGOUT")
        other.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0


def test_a_rev2_session_names_mailboxes_in_utf8():
    """rev2: CREATE, LIST, LSUB, STATUS, SELECT, APPEND, COPY, RENAME, DELETE take and give UTF-8 names; rev1 sees the same folders in modified UTF-7"""
    s = imap_server()
    try:
        deliver(s, [b"Subject: a\r\n\r\nbody\r\n"])
        u = session(s, rev2=True)
        v1 = session(s, rev2=False)
        ent = "Entwürfe".encode()
        assert u.cmd(b"b", b'CREATE "' + ent + b'"')[-1].startswith(b"b OK")
        r = checked(u.cmd(b"c", b'LIST "" "Entw*"'), rev2=True)
        assert r[0] == b'* LIST (\\HasNoChildren) "." "' + ent + b'"', r
        r = checked(v1.cmd(b"c", b'LIST "" "Entw*"'))
        assert r[0] == b'* LIST (\\HasNoChildren) "." "Entw&APw-rfe"', r
        # one made by a rev1 client, seen and used in UTF-8
        assert v1.cmd(b"d", b'CREATE "Gr&APwA3w-e.2026"')[-1].startswith(b"d OK")
        gr = "Grüße".encode()
        r = checked(u.cmd(b"d", b'LIST "" "Gr' + "ü".encode() + b'%"'), rev2=True)
        assert r[0] == b'* LIST (\\Noselect \\HasChildren) "." "' + gr + b'"', r
        r = checked(u.cmd(b"e", b'LIST "" "*2026"'), rev2=True)
        assert r[0] == b'* LIST (\\HasNoChildren) "." "' + gr + b'.2026"', r
        msg = b"Subject: x\r\n\r\nhi\r\n"
        r = checked(u.cmd(b"f", b'APPEND "' + ent + b'" {%d+}\r\n' % len(msg) + msg), rev2=True)
        assert r[-1].startswith(b"f OK [APPENDUID"), r
        r = checked(u.cmd(b"g", b'STATUS "' + ent + b'" (MESSAGES DELETED)'), rev2=True)
        assert r[0] == b'* STATUS "' + ent + b'" (MESSAGES 1 DELETED 0)', r
        r = checked(u.cmd(b"h", b"SELECT INBOX"), rev2=True)
        r = checked(u.cmd(b"i", b'COPY 1 "' + gr + b'.2026"'), rev2=True)
        assert r[-1].startswith(b"i OK [COPYUID"), r
        r = checked(u.cmd(b"j", b'SELECT "' + gr + b'.2026"'), rev2=True)
        assert b"* 1 EXISTS" in r and r[-1].startswith(b"j OK"), r
        assert [l for l in r if l.startswith(b'* LIST (') and l.endswith(b' "' + gr + b'.2026"')], r
        assert u.cmd(b"k", b'SUBSCRIBE "' + gr + b'.2026"')[-1].startswith(b"k OK")
        r = checked(u.cmd(b"l", b'LSUB "" "Gr*"'), rev2=True)
        assert r[0] == b'* LSUB () "." "' + gr + b'.2026"', r
        r = checked(v1.cmd(b"l", b'LSUB "" "Gr*"'))
        assert r[0] == b'* LSUB () "." "Gr&APwA3w-e.2026"', r
        # a rev2 client's "&APw-" is those five characters, not "ü"
        r = checked(u.cmd(b"o", b'STATUS "Entw&APw-rfe" (MESSAGES)'), rev2=True)
        assert r[-1].startswith(b"o NO"), r
        # "&" is itself in UTF-8, "&-" in the store; the name rev1 sent stays its own
        assert u.cmd(b"m", b'RENAME "' + ent + b'" "Brouillons & ' + "é".encode() + b'"')[-1].startswith(b"m OK")
        r = checked(v1.cmd(b"n", b'LIST "" "Brou*"'))
        assert r[0] == b'* LIST (\\HasNoChildren) "." "Brouillons &- &AOk-"', r
        r = checked(u.cmd(b"n", b'LIST "" "Brou*"'), rev2=True)
        assert r[0] == b'* LIST (\\HasNoChildren) "." "Brouillons & ' + "é".encode() + b'"', r
        r = checked(u.cmd(b"p", b'CREATE "bad\xc3"'), rev2=True)
        assert r[-1].startswith(b"p NO"), r
        assert u.cmd(b"q", b'DELETE "Brouillons & ' + "é".encode() + b'"')[-1].startswith(b"q OK")
        r = checked(v1.cmd(b"r", b'LIST "" "Brou*"'))
        assert len(r) == 1, r
        u.cmd(b"z", b"LOGOUT")
        v1.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0


def test_status_deleted_counts_deleted_messages():
    """rev2: STATUS (DELETED) counts the \\Deleted messages, for rev1 and rev2 sessions alike"""
    s = imap_server()
    try:
        deliver(s, [b"Subject: %d\r\n\r\nbody\r\n" % i for i in range(1, 5)])
        c = session(s, rev2=False, box=b"INBOX")
        assert c.cmd(b"b", b"STORE 2:3 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"b OK")
        r = checked(c.cmd(b"c", b"STATUS INBOX (MESSAGES DELETED)"))
        assert r[0] == b'* STATUS "INBOX" (MESSAGES 4 DELETED 2)', r
        u = session(s, rev2=True)
        r = checked(u.cmd(b"c", b"STATUS INBOX (DELETED SIZE)"), rev2=True)
        assert re.match(rb'\* STATUS "INBOX" \(DELETED 2 SIZE \d+\)$', r[0]), r
        r = checked(u.cmd(b"d", b'LIST "" "INBOX" RETURN (STATUS (DELETED))'), rev2=True)
        assert b'* STATUS "INBOX" (DELETED 2)' in r, r
        c.cmd(b"z", b"LOGOUT")
        u.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0


def fetched(lines):
    """The sequence numbers of the FETCH answers."""
    return [int(l.split()[1]) for l in lines if re.match(rb"\* \d+ FETCH", l)]


def test_searchres_saves_a_result_for_dollar():
    """searchres: SEARCH RETURN (SAVE), then $ in FETCH, UID FETCH, STORE, SEARCH, UID SEARCH UID $, COPY and MOVE; expunges drop out; MIN/MAX SAVE; NO empties it; SELECT resets it; pipelined"""
    s = imap_server()
    try:
        deliver(s, [b"Subject: %d\r\n\r\nbody\r\n" % i for i in range(1, 9)])
        c = session(s, rev2=False, box=b"INBOX")
        r = checked(c.cmd(b"b", b"FETCH $ (UID)"))  # nothing saved yet: empty, not BAD
        assert r == [r[-1]] and r[-1].startswith(b"b OK"), r
        assert c.cmd(b"c", b"STORE 2,4:5,7 +FLAGS.SILENT (\\Flagged)")[-1].startswith(b"c OK")
        r = checked(c.cmd(b"d", b"SEARCH RETURN (SAVE) FLAGGED"))
        assert r == [r[-1]] and r[-1].startswith(b"d OK"), r  # SAVE alone: no ESEARCH
        assert fetched(checked(c.cmd(b"e", b"FETCH $ (FLAGS)"))) == [2, 4, 5, 7]
        r = checked(c.cmd(b"f", b"UID FETCH $ (FLAGS)"))
        assert fetched(r) == [2, 4, 5, 7] and b"UID 2" in r[0], r
        r = checked(c.cmd(b"g", b"SEARCH $ SUBJECT 4"))
        assert r[0] == b"* SEARCH 4", r
        r = checked(c.cmd(b"h", b"UID SEARCH RETURN (ALL) UID $"))
        assert r[0] == b'* ESEARCH (TAG "h") UID ALL 2,4:5,7', r
        r = checked(c.cmd(b"i", b"STORE $ +FLAGS (\\Seen)"))
        assert fetched(r) == [2, 4, 5, 7], r
        r = checked(c.cmd(b"j", b"COPY $ Archive"))
        assert r[-1].startswith(b"j OK [COPYUID ") and b" 2,4:5,7 " in r[-1], r
        # an expunged message drops out, and the rest keep their messages
        assert c.cmd(b"k", b"STORE 4 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"k OK")
        r = checked(c.cmd(b"l", b"UID EXPUNGE 4"))
        assert b"* 4 EXPUNGE" in r, r
        r = checked(c.cmd(b"m", b"FETCH $ (UID)"))
        assert [l for l in r if l.startswith(b"* ")] == [b"* 2 FETCH (UID 2)", b"* 4 FETCH (UID 5)",
                                                  b"* 6 FETCH (UID 7)"], r
        # MIN MAX SAVE keeps only those two; the ESEARCH answer still comes
        r = checked(c.cmd(b"n", b"SEARCH RETURN (MIN MAX SAVE) FLAGGED"))
        assert r[0] == b'* ESEARCH (TAG "n") MIN 2 MAX 6', r
        assert fetched(checked(c.cmd(b"o", b"FETCH $ (FLAGS)"))) == [2, 6]
        # pipelined: the FETCH sees what the SEARCH saved
        c.send(b"p UID SEARCH RETURN (SAVE COUNT) SUBJECT 3\r\nq UID FETCH $ (UID)\r\n")
        r = checked(c.until(b"p"))
        assert r[0] == b'* ESEARCH (TAG "p") UID COUNT 1', r
        r = checked(c.until(b"q"))
        assert r[0] == b"* 3 FETCH (UID 3)", r
        r = checked(c.cmd(b"r", b"MOVE $ Trash"))
        assert r[-1].startswith(b"r OK") and b"* 3 EXPUNGE" in r, r
        assert checked(c.cmd(b"s", b"FETCH $ (UID)")) == [b"s OK FETCH completed"]
        # a NO with SAVE empties it; a SEARCH without SAVE leaves it
        checked(c.cmd(b"t", b"SEARCH RETURN (SAVE) ALL"))
        assert fetched(c.cmd(b"u", b"FETCH $ (UID)")) == [1, 2, 3, 4, 5, 6]
        checked(c.cmd(b"v", b"SEARCH SUBJECT 1"))
        assert fetched(c.cmd(b"w", b"FETCH $ (UID)")) == [1, 2, 3, 4, 5, 6]
        r = checked(c.cmd(b"x", b"SEARCH RETURN (SAVE) CHARSET KOI8-R ALL"))
        assert r[-1].startswith(b"x NO [BADCHARSET"), r
        assert checked(c.cmd(b"y", b"FETCH $ (UID)")) == [b"y OK FETCH completed"]
        # SELECT starts with an empty one
        checked(c.cmd(b"a1", b"SEARCH RETURN (SAVE) ALL"))
        checked(c.cmd(b"a2", b"SELECT Archive"))
        assert checked(c.cmd(b"a3", b"FETCH $ (UID)")) == [b"a3 OK FETCH completed"]
        assert c.cmd(b"a4", b"SEARCH RETURN (FOO SAVE) ALL")[-1].startswith(b"a4 BAD")
        c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0


def test_searchres_in_a_rev2_session():
    """searchres: in a rev2 session SEARCH RETURN (SAVE) answers nothing and $ works across UID SEARCH and FETCH"""
    s = imap_server()
    try:
        deliver(s, [b"Subject: %d\r\n\r\nbody\r\n" % i for i in range(1, 6)])
        c = session(s, rev2=True, box=b"INBOX")
        r = checked(c.cmd(b"b", b"UID SEARCH RETURN (SAVE) 2:3"), rev2=True)
        assert r == [r[-1]] and r[-1].startswith(b"b OK"), r
        r = checked(c.cmd(b"c", b"SEARCH $"), rev2=True)
        assert r[0] == b'* ESEARCH (TAG "c") ALL 2:3', r
        r = checked(c.cmd(b"d", b"SEARCH OR $ 5"), rev2=True)
        assert r[0] == b'* ESEARCH (TAG "d") ALL 2:3,5', r
        c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0
