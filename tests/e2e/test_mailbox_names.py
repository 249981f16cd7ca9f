"""IMAP mailbox names that cannot become a file name are refused up front:
a NUL (it would cut the name short) and names whose escaped file name is
too long (upper case is escaped three bytes a letter)."""
import os

from test_imap import Raw, imap_server

LONG = "A" * 100  # 100 characters, 300 once escaped: past the file name limit


def folder_files(s):
    d = os.path.join(s.storage, "mail", "example.org", "alice")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_a_long_upper_case_name_is_refused_with_cannot():
    """mailbox names: a name too long once escaped is NO [CANNOT] for CREATE, RENAME, APPEND, COPY, MOVE, SELECT, STATUS"""
    s = imap_server()
    c = Raw(s.imap_port)
    assert c.cmd(b"a", b"LOGIN alice@example.org secret")[-1].startswith(b"a OK")
    assert c.cmd(b"b", b"CREATE Short")[-1].startswith(b"b OK")
    before = folder_files(s)
    name = LONG.encode()
    utf7 = b"&AOkA6QDp-" * 20  # 60 x e-acute, 200 bytes of modified UTF-7
    for i, cmd in enumerate((b"CREATE " + name, b"CREATE " + utf7, b"RENAME Short " + name,
                             b"SELECT " + name, b"EXAMINE " + name,
                             b"STATUS " + name + b" (MESSAGES)")):
        tag = b"c%d" % i
        out = c.cmd(tag, cmd)[-1]
        assert out.startswith(tag + b" NO [CANNOT]"), (cmd, out)
    c.send(b"d APPEND " + name + b" {3}\r\n")
    out = c.line()
    if out.startswith(b"+"):
        c.send(b"x\r\n\r\n")
        out = c.until(b"d")[-1]
    assert out.startswith(b"d NO [CANNOT]"), out
    assert c.cmd(b"e", b"APPEND Short {3+}\r\nx\r\n")[-1].startswith(b"e OK")
    assert c.cmd(b"f", b"SELECT Short")[-1].startswith(b"f OK")
    for i, cmd in enumerate((b"COPY 1:* ", b"MOVE 1:* ", b"UID COPY 1:* ")):
        tag = b"g%d" % i
        out = c.cmd(tag, cmd + name)[-1]
        assert out.startswith(tag + b" NO [CANNOT]"), (cmd, out)
    c.sock.close()
    assert folder_files(s) == before, folder_files(s)
    assert s.stop() == 0


def test_a_nul_in_a_mailbox_name_is_refused_not_cut_short():
    """mailbox names: a NUL in a literal mailbox name is refused and creates nothing"""
    s = imap_server()
    c = Raw(s.imap_port)
    assert c.cmd(b"a", b"LOGIN alice@example.org secret")[-1].startswith(b"a OK")
    before = folder_files(s)
    for tag, cmd in ((b"b", b"CREATE"), (b"c", b"SELECT"), (b"d", b"STATUS")):
        for mark in (b"", b"~"):
            c.send(tag + b" " + cmd + b" " + mark + b"{8}\r\n")
            out = c.line()
            if out.startswith(b"+"):
                c.send(b"Work\0abc" + (b" (MESSAGES)" if cmd == b"STATUS" else b"") + b"\r\n")
                out = c.until(tag)[-1]
            assert out.startswith(tag + b" BAD") or out.startswith(tag + b" NO"), out
    c.send(b"e RENAME INBOX {8}\r\n")
    assert c.line().startswith(b"+")
    c.send(b"Work\0abc\r\n")
    assert c.until(b"e")[-1][2:4] in (b"BA", b"NO")
    assert folder_files(s) == before, folder_files(s)
    assert not any(f.lower().startswith("work") for f in folder_files(s))
    c.sock.close()
    assert s.stop() == 0
