"""End-to-end tests of special-use folders (RFC 6154) and LIST-EXTENDED
(RFC 5258) with LIST-STATUS (RFC 5819): the folders every account gets at
its first login, their attributes, CREATE (USE), the selection and return
options, as Thunderbird and phones use them."""
import subprocess

from harness import BIN, Server
from test_imap import Raw, deliver, imap_server, login

SPECIAL = {b"Drafts": b"\\Drafts", b"Sent": b"\\Sent", b"Trash": b"\\Trash",
           b"Junk": b"\\Junk", b"Archive": b"\\Archive"}


def lines_for(lines, kind=b"* LIST "):
    return [l for l in lines if l.startswith(kind)]


def attrs_of(line):
    """A LIST line's attributes, as a set; its name last."""
    inner = line.split(b"(", 1)[1].split(b")", 1)[0]
    name = line.split(b') "." ', 1)[1].split(b' ("CHILDINFO"', 1)[0]
    return set(inner.split()), name.strip(b'"')


def listed(c, tag, args):
    r = c.cmd(tag, b"LIST " + args)
    assert r[-1].startswith(tag + b" OK"), r
    return {attrs_of(l)[1]: attrs_of(l)[0] for l in lines_for(r)}


def test_first_login_makes_the_special_use_folders_subscribed():
    """SPECIAL-USE: an account's first login makes Drafts, Sent, Trash, Junk and Archive, subscribed, with their attributes in LIST"""
    s = imap_server()
    try:
        c = Raw(s.imap_port)
        caps = c.cmd(b"a", b"CAPABILITY")[0]
        for cap in (b"SPECIAL-USE", b"CREATE-SPECIAL-USE", b"LIST-EXTENDED", b"LIST-STATUS"):
            assert cap in caps.split(), caps
        c.cmd(b"b", b"LOGIN alice@example.org secret")
        got = listed(c, b"c", b'"" "*"')
        for name, attr in SPECIAL.items():
            assert attr in got[name], (name, got)
        assert got[b"INBOX"] == {b"\\HasNoChildren"}, got
        subs = [attrs_of(l)[1] for l in lines_for(c.cmd(b"d", b'LSUB "" "*"'), b"* LSUB ")]
        assert sorted(subs) == sorted(SPECIAL), subs
        # only the special-use ones, and RETURN (SPECIAL-USE) on a pattern
        assert set(listed(c, b"e", b'(SPECIAL-USE) "" "*"')) == set(SPECIAL)
        got = listed(c, b"f", b'"" "S*" RETURN (SPECIAL-USE)')
        assert got == {b"Sent": {b"\\HasNoChildren", b"\\Sent"}}, got
        c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0


def test_an_account_made_before_gets_them_and_keeps_its_mail():
    """SPECIAL-USE: an account with folders of its own (a "Sent" with mail among them) gets the missing ones; nothing it had changes"""
    s = imap_server()
    try:
        deliver(s, [b"Subject: kept\r\n\r\nkept\r\n"])
        m = login(s)  # the first login: made now
        m.select("Sent")
        m.append("Sent", None, None, b"Subject: sent one\r\n\r\nx\r\n")
        m.delete("Junk")
        m.logout()
        m = login(s)  # the next login makes Junk again, leaves Sent's mail
        assert m.select("Sent")[1] == [b"1"]
        assert m.select("INBOX")[1] == [b"1"]
        typ, data = m.list('""', "Junk")
        assert typ == "OK" and b"\\Junk" in data[0], data
        m.logout()
    finally:
        assert s.stop() == 0


def test_create_use_gives_a_folder_its_special_use():
    """CREATE-SPECIAL-USE: CREATE "Sent Items" (USE (\\Sent)) shows \\Sent on it; \\All is NO [USEATTR]; bad syntax BAD"""
    s = imap_server()
    try:
        c = Raw(s.imap_port)
        c.cmd(b"a", b"LOGIN alice@example.org secret")
        assert c.cmd(b"b", b'CREATE "Sent Items" (USE (\\Sent))')[-1].startswith(b"b OK")
        got = listed(c, b"c", b'(SPECIAL-USE) "" "*"')
        assert b"\\Sent" in got[b"Sent Items"], got
        r = c.cmd(b"d", b"CREATE Everything (USE (\\All))")[-1]
        assert r.startswith(b"d NO [USEATTR] "), r
        assert c.cmd(b"e", b"CREATE Odd (USE \\Sent)")[-1].startswith(b"e BAD")
        assert c.cmd(b"f", b"CREATE Odd (FOO (\\Sent))")[-1].startswith(b"f BAD")
        assert b"Everything" not in listed(c, b"g", b'"" "*"')
        # the use is the folder's metadata (RFC 6154 section 4)
        r = c.cmd(b"h", b'GETMETADATA "Sent Items" /private/specialuse')
        assert r[0] == b'* METADATA "Sent Items" ("/private/specialuse" "\\\\Sent")', r
        c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0


def test_folder_names_come_from_the_configuration():
    """SPECIAL-USE: SentFolder "Sent Messages" and JunkFolder none change what is made; a bad name stops the start"""
    s = imap_server(conf='SentFolder Sent Messages\nJunkFolder none\n')
    try:
        m = login(s)
        typ, data = m.list('""', "*")
        text = b"\n".join(data)
        assert b'"Sent Messages"' in text and b"\\Sent" in text, data
        assert b"Junk" not in text and b'"Sent"' not in text, data
        m.logout()
    finally:
        assert s.stop() == 0
    for bad in ("TrashFolder INBOX", "JunkFolder a..b", "SentFolder Trash"):
        srv = Server()
        with open(srv.conf, "a") as f:
            f.write(bad + "\n")
        try:
            r = subprocess.run([BIN, "-c", srv.conf], capture_output=True, text=True, timeout=15)
        except subprocess.TimeoutExpired:
            raise AssertionError("the server started with " + bad)
        assert r.returncode != 0 and bad.split()[0] in r.stderr, (bad, r)


def test_list_extended_subscribed_recursivematch_and_status():
    """LIST-EXTENDED: (SUBSCRIBED) shows \\Subscribed and \\NonExistent, RECURSIVEMATCH gives CHILDINFO, several patterns, RETURN (STATUS ...)"""
    s = imap_server(conf="SentFolder none\nDraftsFolder none\nTrashFolder none\n"
                         "JunkFolder none\nArchiveFolder none\n")
    try:
        deliver(s, [b"Subject: a\r\n\r\na\r\n", b"Subject: b\r\n\r\nb\r\n"])
        c = Raw(s.imap_port)
        c.cmd(b"a", b"LOGIN alice@example.org secret")
        for name in (b"Work", b"Work.Q1", b"Home"):
            assert c.cmd(b"b", b"CREATE " + name)[-1].startswith(b"b OK")
        for name in (b"Work.Q1", b"Gone", b"INBOX"):
            assert c.cmd(b"c", b"SUBSCRIBE " + name)[-1].startswith(b"c OK")
        got = listed(c, b"d", b'(SUBSCRIBED) "" "*"')
        assert got == {b"INBOX": {b"\\HasNoChildren", b"\\Subscribed"},
                       b"Work.Q1": {b"\\HasNoChildren", b"\\Subscribed"},
                       b"Gone": {b"\\NonExistent", b"\\Subscribed"}}, got
        r = c.cmd(b"e", b'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
        work = [l for l in r if l.endswith(b'"Work" ("CHILDINFO" ("SUBSCRIBED"))')]
        assert len(work) == 1 and b"\\Subscribed" not in work[0], r
        assert not [l for l in r if b'"Home"' in l], r
        assert c.cmd(b"f", b'LIST (RECURSIVEMATCH) "" "*"')[-1].startswith(b"f BAD")
        assert c.cmd(b"g", b'LIST (FOO) "" "*"')[-1].startswith(b"g BAD")
        got = listed(c, b"h", b'"" ("INBOX" "Home") RETURN (SUBSCRIBED CHILDREN)')
        assert got == {b"INBOX": {b"\\HasNoChildren", b"\\Subscribed"},
                       b"Home": {b"\\HasNoChildren"}}, got
        r = c.cmd(b"i", b'LIST "" "INBOX" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))')
        assert r[0].startswith(b"* LIST ") and r[0].endswith(b'"INBOX"'), r
        assert r[1] == b'* STATUS "INBOX" (MESSAGES 2 UNSEEN 2 UIDNEXT 3)', r
        assert r[2].startswith(b"i OK"), r
        r = c.cmd(b"j", b'LIST "" "%" RETURN (STATUS (MESSAGES))')
        assert not [l for l in r if l.startswith(b'* STATUS "Work.Q1"')], r  # not listed by %
        assert c.cmd(b"k", b'LIST "" "*" RETURN (STATUS (BOGUS))')[-1].startswith(b"k BAD")
        c.cmd(b"z", b"LOGOUT")
    finally:
        assert s.stop() == 0
