"""End-to-end tests of ESEARCH (RFC 4731: SEARCH RETURN (MIN MAX ALL
COUNT)) and STATUS=SIZE (RFC 8438), two of what IMAP4rev2 requires; every
answer also goes through the strict response grammar (imapgrammar.py)."""
import imapgrammar
from test_imap import Raw, deliver, imap_server


def checked(lines):
    for l in lines:
        imapgrammar.check(l + b"\r\n")
    return lines


def test_search_return_gives_esearch_answers():
    """ESEARCH: SEARCH RETURN (MIN MAX COUNT ALL), UID SEARCH RETURN, RETURN () as ALL, no match, bad options"""
    s = imap_server()
    try:
        deliver(s, [b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i) for i in range(1, 8)])
        c = Raw(s.imap_port)
        caps = c.cmd(b"a", b"CAPABILITY")[0].split()
        assert b"ESEARCH" in caps and b"STATUS=SIZE" in caps, caps
        c.cmd(b"b", b"LOGIN alice@example.org secret")
        c.cmd(b"c", b"SELECT INBOX")
        assert c.cmd(b"d", b"STORE 2,3,6 +FLAGS.SILENT (\\Seen)")[-1].startswith(b"d OK")
        r = checked(c.cmd(b"e", b"SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN"))
        assert r[0] == b'* ESEARCH (TAG "e") MIN 1 MAX 7 ALL 1,4:5,7 COUNT 4', r
        assert r[-1].startswith(b"e OK"), r
        r = checked(c.cmd(b"f", b"UID SEARCH RETURN (COUNT) SEEN"))
        assert r[0] == b'* ESEARCH (TAG "f") UID COUNT 3', r
        r = checked(c.cmd(b"g", b"SEARCH RETURN () 2:5"))
        assert r[0] == b'* ESEARCH (TAG "g") ALL 2:5', r
        r = checked(c.cmd(b"h", b"SEARCH RETURN (MIN ALL) SUBJECT nothing-like-it"))
        assert r[0] == b'* ESEARCH (TAG "h")', r
        r = checked(c.cmd(b"i", b"SEARCH RETURN (MAX COUNT) CHARSET UTF-8 SUBJECT nothing"))
        assert r[0] == b'* ESEARCH (TAG "i") COUNT 0', r
        assert c.cmd(b"j", b"SEARCH RETURN (FOO) ALL")[-1].startswith(b"j BAD")
        assert c.cmd(b"k", b"SEARCH RETURN MIN ALL")[-1].startswith(b"k BAD")
        r = checked(c.cmd(b"l", b"SEARCH UNSEEN"))  # without RETURN: as before
        assert r[0] == b"* SEARCH 1 4 5 7", r
        c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0


def test_status_size_is_the_sum_of_the_message_sizes():
    """STATUS=SIZE: STATUS INBOX (SIZE MESSAGES) gives the sum of the RFC822.SIZEs; an empty folder 0"""
    s = imap_server()
    try:
        deliver(s, [b"Subject: a\r\n\r\n" + b"x" * 1000 + b"\r\n", b"Subject: b\r\n\r\nshort\r\n"])
        c = Raw(s.imap_port)
        c.cmd(b"a", b"LOGIN alice@example.org secret")
        c.cmd(b"b", b"EXAMINE INBOX")
        r = c.cmd(b"c", b"FETCH 1:* (RFC822.SIZE)")
        total = sum(int(l.rsplit(b" ", 1)[1].rstrip(b")")) for l in r if b"RFC822.SIZE" in l)
        assert total > 1000, r
        r = checked(c.cmd(b"d", b"STATUS INBOX (SIZE MESSAGES)"))
        assert r[0] == b'* STATUS "INBOX" (SIZE %d MESSAGES 2)' % total, (r, total)
        r = checked(c.cmd(b"e", b"STATUS Drafts (SIZE)"))
        assert r[0] == b'* STATUS "Drafts" (SIZE 0)', r
        c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0
