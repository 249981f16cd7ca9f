"""End-to-end IMAP tests of protocol details Dovecot's imaptest found wrong
(issue 12, item 8): response codes with their text, atom characters in
mailbox names and tags, UID ranges, LSUB's \\Noselect parents, FLAGS after
a new keyword, ENVELOPE routes, SEARCH by address. Raw sockets, so that
every byte of an answer is seen."""
import re

from test_imap import Raw, deliver, imap_server


def session(s, select=None):
    c = Raw(s.imap_port)
    assert c.cmd(b"l", b"LOGIN alice@example.org secret")[-1].startswith(b"l OK")
    if select:
        assert c.cmd(b"s", b"SELECT " + select)[-1].startswith(b"s OK")
    return c


def test_move_answers_copyuid_with_text():
    """imap rfc: MOVE's untagged OK [COPYUID ...] has text after the code (RFC 6851, 4315)"""
    s = imap_server()
    deliver(s, [b"Subject: %d\r\n\r\nbody\r\n" % i for i in range(3)])
    c = session(s, b"INBOX")
    assert c.cmd(b"c", b"CREATE Saved")[-1].startswith(b"c OK")
    for tag, cmd in ((b"m", b"MOVE 1 Saved"), (b"u", b"UID MOVE 3 Saved")):
        out = c.cmd(tag, cmd)
        oks = [l for l in out if l.startswith(b"* OK [COPYUID")]
        assert len(oks) == 1 and re.match(rb"\* OK \[COPYUID \d+ \d+ \d+\] \S", oks[0]), out
        assert out[-1].startswith(tag + b" OK "), out
    c.close()
    assert s.stop() == 0


def test_atom_chars_in_names_and_tags():
    """imap rfc: "[" and "}" are ATOM-CHARs and "]" an ASTRING-CHAR: SELECT a[ is NO [NONEXISTENT], not BAD; a tag may hold brackets"""
    s = imap_server()
    c = session(s)
    for name in (b"a[", b"a}", b"a]", b"[a", b"a[b]c"):
        out = c.cmd(b"t", b"SELECT " + name)
        assert out[-1].startswith(b"t NO [NONEXISTENT] "), (name, out)
        out = c.cmd(b"t", b"STATUS " + name + b" (MESSAGES)")
        assert out[-1].startswith(b"t NO [NONEXISTENT] "), (name, out)
    assert c.cmd(b"c", b"CREATE x[1]")[-1].startswith(b"c OK")
    out = c.cmd(b"s", b"SELECT x[1]")
    assert out[-1].startswith(b"s OK [READ-WRITE]"), out
    out = c.cmd(b"x", b'LIST "" x[*')
    assert out[0] == b'* LIST (\\HasNoChildren) "." "x[1]"', out
    assert c.cmd(b"a[1]", b"NOOP")[-1].startswith(b"a[1] OK"), "a tag with brackets"
    # still one argument too many, and still a syntax error: a "{" in an atom
    assert c.cmd(b"b", b"SELECT a[ b]")[-1].startswith(b"b BAD"), "two arguments"
    assert c.cmd(b"d", b"SELECT a{b")[-1].startswith(b"d BAD"), "{ is an atom-special"
    c.close()
    assert s.stop() == 0


def test_uid_ranges_past_the_last_uid():
    """imap rfc: UID n:4294967295 past the last UID matches nothing, 4294967295 is not *, n:* is the last message"""
    s = imap_server()
    deliver(s, [b"Subject: %d\r\n\r\nbody\r\n" % i for i in range(3)])
    c = session(s, b"INBOX")
    cases = [(b"UID SEARCH UID 4:4294967295", b"* SEARCH"), (b"UID SEARCH UID 4294967295", b"* SEARCH"),
             (b"UID SEARCH UID 4:*", b"* SEARCH 3"), (b"UID SEARCH UID *:4", b"* SEARCH 3"),
             (b"UID SEARCH UID 2:4294967295", b"* SEARCH 2 3"), (b"SEARCH UID 3:4294967295", b"* SEARCH 3"),
             (b"SEARCH *:2", b"* SEARCH 2 3"), (b"SEARCH 2,*", b"* SEARCH 2 3")]
    for cmd, want in cases:
        out = c.cmd(b"q", cmd)
        assert out[-1].startswith(b"q OK") and out[0] == want, (cmd, out)
    out = c.cmd(b"f", b"UID FETCH 4294967295 (UID)")
    assert out == [b"f OK UID FETCH completed"], out
    out = c.cmd(b"g", b"UID FETCH 4:* (UID)")
    assert out[0] == b"* 3 FETCH (UID 3)", out
    out = c.cmd(b"h", b"UID STORE 4:4294967295 +FLAGS (\\Seen)")
    assert out == [b"h OK STORE completed"], out
    c.close()
    assert s.stop() == 0


def test_lsub_percent_shows_noselect_parents():
    """imap rfc: LSUB with % lists an unsubscribed parent of a subscribed child as \\Noselect (RFC 3501 6.3.9)"""
    s = imap_server()
    c = session(s)
    for name in (b"box", b"box.test", b"box.test2", b"box.test2.test", b"box.test3.test3"):
        assert c.cmd(b"c", b"CREATE " + name)[-1].startswith(b"c OK"), name
    for name in (b"box.test", b"box.test2.test", b"box.test3.test3", b"gone.child"):
        assert c.cmd(b"s", b"SUBSCRIBE " + name)[-1].startswith(b"s OK"), name
    out = c.cmd(b"l", b'LSUB "" box.%')
    assert sorted(out[:-1]) == [b'* LSUB () "." "box.test"', b'* LSUB (\\Noselect) "." "box.test2"',
                                b'* LSUB (\\Noselect) "." "box.test3"'], out
    out = c.cmd(b"l", b'LSUB "" %')
    out = [l for l in out if b"(\\Noselect)" in l]  # the special-use folders are subscribed too
    assert sorted(out) == [b'* LSUB (\\Noselect) "." "box"', b'* LSUB (\\Noselect) "." "gone"'], out
    out = c.cmd(b"l", b'LSUB "" *test')
    assert sorted(out[:-1]) == [b'* LSUB () "." "box.test"', b'* LSUB () "." "box.test2.test"'], out
    out = c.cmd(b"l", b'LSUB "" *')  # every subscribed name is there: no parent with it
    assert len(out) == 5 + 5 and not any(b"Noselect" in l for l in out), out  # 5 special-use
    assert c.cmd(b"u", b"UNSUBSCRIBE box.test2.test")[-1].startswith(b"u OK")
    out = c.cmd(b"l", b'LSUB "" box.%')
    assert sorted(out[:-1]) == [b'* LSUB () "." "box.test"', b'* LSUB (\\Noselect) "." "box.test3"'], out
    c.close()
    assert s.stop() == 0


def flags_lines(out):
    """The untagged FLAGS and PERMANENTFLAGS lines of an answer."""
    return [l for l in out if l.startswith(b"* FLAGS ") or l.startswith(b"* OK [PERMANENTFLAGS ")]


def test_new_keyword_updates_flags_of_every_session():
    """imap rfc: a keyword new to the folder (STORE, APPEND, COPY) sends * FLAGS and PERMANENTFLAGS to every session with it selected, before a FETCH shows it"""
    s = imap_server()
    deliver(s, [b"Subject: %d\r\n\r\nbody\r\n" % i for i in range(2)])
    a, b = session(s, b"INBOX"), session(s, b"INBOX")
    ex = session(s)
    assert ex.cmd(b"e", b"EXAMINE INBOX")[-1].startswith(b"e OK")
    out = a.cmd(b"k", b"STORE 1 +FLAGS ($Fresh)")
    assert flags_lines(out) == [
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Fresh)",
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Fresh \\*)] Flags permitted"], out
    assert out.index(flags_lines(out)[0]) < min(i for i, l in enumerate(out) if b"FETCH" in l), out
    # told once; a selected first, so the message is \Recent to it (RFC 3501 2.3.2)
    assert [l for l in out if b"FETCH" in l] == [b"* 1 FETCH (FLAGS (\\Recent $Fresh))"], out
    out = b.cmd(b"n", b"NOOP")
    assert flags_lines(out)[0].endswith(b" $Fresh)"), out
    assert out.index(flags_lines(out)[0]) < out.index(b"* 1 FETCH (FLAGS ($Fresh))"), out
    out = ex.cmd(b"n", b"NOOP")  # read-only: FLAGS, and PERMANENTFLAGS stays empty
    assert flags_lines(out) == [b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Fresh)",
                                b"* OK [PERMANENTFLAGS ()] Flags permitted"], out
    assert flags_lines(a.cmd(b"n", b"NOOP")) == [], "told once"
    deliver(s, [b"Subject: new mail\r\n\r\nbody\r\n"])  # the STORE's FETCH comes once still
    out = a.cmd(b"k", b"STORE 2 +FLAGS ($Fresh)")
    assert flags_lines(out) == [], "not new"
    assert [l for l in out if b"FETCH" in l] == [b"* 2 FETCH (FLAGS (\\Recent $Fresh))"], out
    assert b"* 3 EXISTS" in out and b"* 3 RECENT" in out, out
    # APPEND into the selected folder with a new keyword, then COPY with another
    msg = b"Subject: appended\r\n\r\nx\r\n"
    a.send(b"p APPEND INBOX ($Appended) {%d+}\r\n%s\r\n" % (len(msg), msg))
    out = a.until(b"p")
    assert flags_lines(out) and flags_lines(out)[0].endswith(b"$Fresh $Appended)"), out
    assert b.cmd(b"c", b"CREATE Other")[-1].startswith(b"c OK")
    assert b.cmd(b"s", b"SELECT Other")[-1].startswith(b"s OK")
    out = a.cmd(b"y", b"COPY 1:2,4 Other")
    assert out[-1].startswith(b"y OK"), out
    out = b.cmd(b"n", b"NOOP")
    assert flags_lines(out) and flags_lines(out)[0].endswith(b"$Fresh $Appended)"), out
    assert b"* 3 EXISTS" in out, out
    for c in (a, b, ex):
        c.close()
    assert s.stop() == 0


ROUTED = (b"From: <@route.example:user@host.example>\r\n"
          b"To: Two Hops <@a.example,@b.example:u2@h2.example>, plain@h3.example\r\n"
          b"Subject: routed\r\n\r\nbody\r\n")


def test_envelope_keeps_the_route():
    """imap rfc: ENVELOPE gives an address's source route as its adl ("@route.example"), not NIL"""
    s = imap_server()
    deliver(s, [ROUTED])
    c = session(s, b"INBOX")
    out = c.cmd(b"f", b"FETCH 1 (ENVELOPE)")
    env = out[0]
    frm = b'((NIL "@route.example" "user" "host.example"))'
    assert b' "routed" %s %s %s ' % (frm, frm, frm) in env, env
    assert (b'(("Two Hops" "@a.example,@b.example" "u2" "h2.example")'
            b'(NIL NIL "plain" "h3.example"))') in env, env  # no space between: RFC 3501 9
    c.close()
    assert s.stop() == 0


ADDRESSES = [
    b"From: user-from@domain.org\r\nTo: user-to@domain.org\r\nCc: user-cc@domain.org\r\n",
    b"From: RealFrom <user-from@domain.org>\r\nTo: RealTo <user-to@domain.org>\r\n",
    b"From: <user-from (comment)@ (comment) domain.org>\r\nTo: <user-to @ domain.org>\r\n",
    b"From: user-from@domain.org (RealFrom)\r\nTo: user-to@domain.org (RealTo)\r\n",
    b"From: user-from1@domain.org, user-from2@domain.org\r\nCc: user-cc@domain.org\r\n",
    b"To: groupname: groupuser1@domain.org, groupuser2@domain.org;,\r\n groupname2: groupuser3@domain.org;\r\n",
    b"From: =?utf-8?q?J=C3=B6rg?= <joerg@domain.org>\r\nTo: \"Quoted, Name\" <USER-TO@DOMAIN.ORG>\r\n",
    b"From: Folded\r\n <user-from@domain.org>\r\nCc: user-cc\r\n @domain.org\r\n",
]


def test_search_by_address_in_every_form():
    """imap rfc: SEARCH FROM/TO/CC finds an address in any form (display names, comments, groups, quoted, encoded, folded, case, comments inside the address)"""
    s = imap_server()
    deliver(s, [h + b"Subject: %d\r\n\r\nbody\r\n" % i for i, h in enumerate(ADDRESSES, 1)])
    c = session(s, b"INBOX")
    cases = [(b"FROM user-from@domain.org", b"1 2 3 4 8"), (b"TO user-to@domain.org", b"1 2 3 4 7"),
             (b"CC user-cc@domain.org", b"1 5 8"), (b"FROM realfrom", b"2 4"), (b"TO realto", b"2 4"),
             (b"FROM ser-fro", b"1 2 3 4 5 8"), (b"FROM user-from1", b"5"), (b"FROM user-from2", b"5"),
             (b"TO groupname", b"6"), (b"TO groupname2", b"6"), (b"TO groupuser3", b"6"),
             (b"TO groupuser4", b""), (b'FROM "j\xc3\xb6rg"', b"7"), (b'TO "quoted, name"', b"7"),
             (b"FROM joerg@domain.org", b"7"), (b"FROM folded", b"8"), (b'HEADER FROM ""', b"1 2 3 4 5 7 8")]
    for key, want in cases:
        charset = b"CHARSET UTF-8 " if b"\xc3" in key else b""
        out = c.cmd(b"q", b"SEARCH " + charset + key)
        assert out[-1].startswith(b"q OK") and out[0] == (b"* SEARCH " + want).strip(), (key, out)
    c.close()
    assert s.stop() == 0


def test_rename_inbox_moves_its_messages():
    """imap rfc: RENAME INBOX moves its messages to the new folder and leaves an empty INBOX (RFC 3501 6.3.5); INBOX's children stay; new mail lands in the new INBOX"""
    s = imap_server()
    deliver(s, [b"Subject: %d\r\n\r\nbody\r\n" % i for i in range(3)])
    c = session(s)
    assert c.cmd(b"c", b"CREATE INBOX.kid")[-1].startswith(b"c OK")
    out = c.cmd(b"r", b"RENAME INBOX Before")
    assert out[-1].startswith(b"r OK"), out
    out = c.cmd(b"t", b"STATUS Before (MESSAGES UIDNEXT)")
    assert out[0] == b'* STATUS "Before" (MESSAGES 3 UIDNEXT 4)', out
    out = c.cmd(b"u", b"STATUS INBOX (MESSAGES UIDNEXT)")
    assert out[0] == b'* STATUS "INBOX" (MESSAGES 0 UIDNEXT 1)', out
    out = c.cmd(b"l", b'LIST "" "*"')
    names = [l.rsplit(b" ", 1)[1] for l in out if l.startswith(b"* LIST")]
    assert b'"INBOX.kid"' in names and b'"Before.kid"' not in names, out
    deliver(s, [b"Subject: later\r\n\r\nbody\r\n"])
    out = c.cmd(b"s", b"SELECT INBOX")
    assert b"* 1 EXISTS" in out, out
    assert c.cmd(b"x", b"RENAME Before INBOX")[-1].startswith(b"x NO [ALREADYEXISTS]")
    c.close()
    assert s.stop() == 0


def test_search_still_matches_a_message_expunged_elsewhere_and_not_told():
    """imap rfc: a message another session expunged keeps its number until this session is told, and SEARCH still matches it by number and content (imaptest expects every number of the set back)"""
    s = imap_server()
    deliver(s, [b"Subject: s%d\r\n\r\nbody %d\r\n" % (i, i) for i in range(1, 4)])
    a, b = session(s, b"INBOX"), session(s, b"INBOX")
    b.cmd(b"d", b"STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert b.cmd(b"x", b"EXPUNGE")[-1].startswith(b"x OK")
    out = a.cmd(b"q", b"SEARCH 1:3")  # SEARCH may not tell of the expunge
    assert out[0] == b"* SEARCH 1 2 3" and not [l for l in out if l.endswith(b"EXPUNGE")], out
    assert a.cmd(b"r", b"SEARCH SUBJECT s2")[0] == b"* SEARCH 2"
    assert a.cmd(b"u", b"UID SEARCH DELETED")[0] == b"* SEARCH 2"
    out = a.cmd(b"n", b"NOOP")
    assert b"* 2 EXPUNGE" in out, out
    assert a.cmd(b"t", b"SEARCH 1:*")[0] == b"* SEARCH 1 2"
    for c in (a, b):
        c.close()
    assert s.stop() == 0
