"""End-to-end tests of quotas (RFC 9208 QUOTA with STORAGE and MESSAGE;
quota.c, imap_quota.c): the figures GETQUOTAROOT and GETQUOTA give,
APPEND and COPY over quota, SMTP's 452 at RCPT and 552 after DATA, several
recipients, DefaultQuota, a domain's quota, the command line, expunge,
the 90% warning and the web admin's field."""
import os
import re
import smtplib

from harness import SMTPRaw
from test_imap import Raw, imap_server, login

MSG = b"Subject: %d\r\n\r\n" + b"x" * 3000 + b"\r\n"


def send(s, rcpts, msg, sender="sender@remote.test"):
    """One SMTP transaction; returns smtplib's refused dict."""
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=30) as c:
        return c.sendmail(sender, rcpts, msg)


def quota_lines(c, tag, cmd):
    r = c.cmd(tag, cmd)
    assert r[-1].startswith(tag + b" "), r
    return r


def sizes(s, user="alice@example.org", folder="INBOX"):
    """The RFC822.SIZEs of a folder's messages, read over IMAP."""
    m = login(s, user)
    m.select(folder, readonly=True)
    typ, data = m.fetch("1:*", "(RFC822.SIZE)")
    m.logout()
    if data == [None]:
        return []
    return [int(re.search(rb"RFC822\.SIZE (\d+)", d).group(1)) for d in data]


def kib(n):
    return (n + 1023) // 1024


def real(s, addr):
    """The messages of addr's INBOX but the quota warnings."""
    return [m for m in s.messages(addr) if b"Subject: Your mailbox is almost full" not in m]


def transaction(s, sender, rcpts, msg):
    """MAIL without SIZE (smtplib would send it), RCPTs, DATA; the replies."""
    c = SMTPRaw(s.smtp_port)
    c.cmd("EHLO client.test")
    assert c.cmd("MAIL FROM:<%s>" % sender)[0] == 250
    codes = [c.cmd("RCPT TO:<%s>" % r)[0] for r in rcpts]
    assert c.cmd("DATA")[0] == 354
    c.send(msg + b".\r\n")
    end = c.reply()
    c.cmd("QUIT")
    return codes, end


def test_getquotaroot_and_getquota_give_the_delivered_figures():
    """QUOTA: CAPABILITY offers it; GETQUOTAROOT INBOX and GETQUOTA "" give what was delivered; no limit: no root; SETQUOTA refused"""
    s = imap_server(users=("alice@example.org", "bob@example.org"))
    try:
        s.cli("user", "quota", "alice@example.org", "100K", "50")
        for i in range(3):
            send(s, ["alice@example.org"], MSG % i)
        total = sum(sizes(s))
        c = Raw(s.imap_port)
        caps = c.cmd(b"a", b"CAPABILITY")[0].split()
        for cap in (b"QUOTA", b"QUOTA=RES-STORAGE", b"QUOTA=RES-MESSAGE"):
            assert cap in caps, caps
        c.cmd(b"b", b"LOGIN alice@example.org secret")
        r = quota_lines(c, b"c", b"GETQUOTAROOT INBOX")
        assert r[0] == b'* QUOTAROOT "INBOX" ""', r
        assert r[1] == b'* QUOTA "" (STORAGE %d 100 MESSAGE 3 50)' % kib(total), (r, total)
        assert r[2].startswith(b"c OK"), r
        r = quota_lines(c, b"d", b'GETQUOTA ""')
        assert r[0] == b'* QUOTA "" (STORAGE %d 100 MESSAGE 3 50)' % kib(total), r
        assert quota_lines(c, b"e", b"GETQUOTA other")[-1].startswith(b"e NO [NONEXISTENT]")
        assert quota_lines(c, b"f", b"GETQUOTAROOT Nothere")[-1].startswith(b"f NO [NONEXISTENT]")
        r = quota_lines(c, b"g", b'SETQUOTA "" (STORAGE 1000)')
        assert r[-1].startswith(b"g NO [NOPERM]"), r
        assert quota_lines(c, b"h", b"SETQUOTA")[-1].startswith(b"h BAD")
        # RFC 9208's STATUS items: \Deleted messages and what expunging them frees
        c.cmd(b"i", b"SELECT INBOX")
        c.cmd(b"j", b"STORE 1 +FLAGS (\\Deleted)")
        r = quota_lines(c, b"k", b"STATUS INBOX (DELETED DELETED-STORAGE)")
        assert r[0] == b'* STATUS "INBOX" (DELETED 1 DELETED-STORAGE %d)' % kib(sizes(s)[0]), r
        c.cmd(b"z", b"LOGOUT")
        c = Raw(s.imap_port)  # an account without any limit has no quota root
        c.cmd(b"a", b"LOGIN bob@example.org secret")
        r = quota_lines(c, b"b", b"GETQUOTAROOT INBOX")
        assert r[0] == b'* QUOTAROOT "INBOX"' and r[1].startswith(b"b OK"), r
        assert quota_lines(c, b"c", b'GETQUOTA ""')[-1].startswith(b"c NO [NONEXISTENT]")
    finally:
        assert s.stop() == 0


def test_append_over_quota_is_refused_with_overquota():
    """QUOTA: an APPEND that would pass the storage or the message limit gets NO [OVERQUOTA] and stores nothing"""
    s = imap_server()
    try:
        s.cli("user", "quota", "alice@example.org", "10K")
        m = login(s)
        body = b"Subject: big\r\n\r\n" + b"y" * 6000 + b"\r\n"
        typ, data = m.append("INBOX", None, None, body)
        assert typ == "OK", data
        typ, data = m.append("INBOX", None, None, body)
        assert typ == "NO" and b"[OVERQUOTA]" in data[0], (typ, data)
        typ, data = m.append("Drafts", None, None, body)  # any folder: one root
        assert typ == "NO" and b"[OVERQUOTA]" in data[0], (typ, data)
        typ, data = m.append("INBOX", None, None, b"Subject: small\r\n\r\nhi\r\n")
        assert typ == "OK", data  # what fits still goes in
        c = Raw(s.imap_port)  # a literal that cannot fit is refused before it is sent
        c.cmd(b"a", b"LOGIN alice@example.org secret")
        c.send(b"b APPEND INBOX {6000}\r\n")
        r = c.line()
        assert r.startswith(b"b NO [OVERQUOTA]"), r
        c.cmd(b"z", b"LOGOUT")
        m.select("INBOX")
        assert m.search(None, "ALL")[1][0].split() == [b"1", b"2"]
        m.logout()
        s.cli("user", "quota", "alice@example.org", "none", "2")
        m = login(s)
        typ, data = m.append("INBOX", None, None, b"Subject: third\r\n\r\nhi\r\n")
        assert typ == "NO" and b"[OVERQUOTA]" in data[0], (typ, data)
        m.logout()
    finally:
        assert s.stop() == 0


def test_copy_over_quota_is_refused_and_move_is_not():
    """QUOTA: a COPY that does not fit gets NO [OVERQUOTA] and copies nothing; one that fits works; MOVE of a full mailbox works"""
    s = imap_server()
    try:
        s.cli("user", "quota", "alice@example.org", "20K")
        for i in range(2):
            send(s, ["alice@example.org"], b"Subject: %d\r\n\r\n" % i + b"z" * 6000 + b"\r\n")
        m = login(s)
        m.select("INBOX")
        typ, data = m.copy("1:2", "Archive")
        assert typ == "NO" and b"[OVERQUOTA]" in data[0], (typ, data)
        assert m.status("Archive", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 0)")
        typ, data = m.copy("1", "Archive")
        assert typ == "OK", data
        typ, data = m.copy("2", "Archive")  # now 24K would not fit 20K
        assert typ == "NO" and b"[OVERQUOTA]" in data[0], (typ, data)
        typ, data = m._simple_command("MOVE", "1:2", "Trash")  # frees what it takes
        assert typ == "OK", data
        assert m.status("Trash", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 2)")
        m.logout()
    finally:
        assert s.stop() == 0


def test_smtp_rcpt_is_452_when_the_mailbox_is_full():
    """QUOTA: RCPT to a full mailbox is 452 4.2.2 (messages, storage, or MAIL SIZE= too big); others are taken"""
    s = imap_server(users=("alice@example.org", "bob@example.org"))
    try:
        s.cli("user", "quota", "alice@example.org", "10K", "2")
        send(s, ["alice@example.org"], MSG % 1)
        c = SMTPRaw(s.smtp_port)
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<sender@remote.test> SIZE=20000")[0] == 250
        code, text = c.cmd("RCPT TO:<alice@example.org>")  # 3 KB + 20 KB > 10K
        assert code == 452 and text.startswith("4.2.2"), (code, text)
        assert c.cmd("RCPT TO:<bob@example.org>")[0] == 250
        c.cmd("RSET")
        send(s, ["alice@example.org"], MSG % 2)  # 2 of 2 messages
        assert c.cmd("MAIL FROM:<sender@remote.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<alice@example.org>")
        assert code == 452 and text.startswith("4.2.2"), (code, text)
        c.cmd("QUIT")
        assert len(real(s, "alice@example.org")) == 2
        assert ("result=refused client=127.0.0.1 code=452 status=4.2.2 cmd=rcpt" in s.stderr()
                and "Mailbox full" in s.stderr())
    finally:
        assert s.stop() == 0


def test_smtp_data_is_552_when_the_message_does_not_fit():
    """QUOTA: a message too big for the room left is taken at RCPT and refused after DATA with 552 5.2.2; nothing stored"""
    s = imap_server()
    try:
        s.cli("user", "quota", "alice@example.org", "10K")
        c = SMTPRaw(s.smtp_port)
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<sender@remote.test>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.org>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: big\r\n\r\n" + (b"w" * 998 + b"\r\n") * 20 + b".\r\n")
        code, text = c.reply()
        assert code == 552 and text.startswith("5.2.2"), (code, text)
        # the session goes on: a message that fits is taken
        assert c.cmd("MAIL FROM:<sender@remote.test>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.org>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: small\r\n\r\nhi\r\n.\r\n")
        assert c.reply()[0] == 250
        c.cmd("QUIT")
        msgs = s.messages("alice@example.org")
        assert len(msgs) == 1 and b"Subject: small" in msgs[0], msgs
    finally:
        assert s.stop() == 0


def test_several_recipients_each_get_their_own_answer():
    """QUOTA: of several recipients those with room get the message and the sender a DSN (5.2.2) for the rest; all full: 552"""
    s = imap_server(users=("alice@example.org", "bob@example.org", "carol@example.org",
                           "dave@example.org"))
    try:
        s.cli("user", "quota", "alice@example.org", "10K")
        s.cli("user", "quota", "dave@example.org", "8K")
        big = b"Subject: big\r\nMessage-ID: <big@remote.test>\r\n\r\n" + b"v" * 12000 + b"\r\n"
        codes, end = transaction(s, "carol@example.org",
                                 ["alice@example.org", "bob@example.org", "dave@example.org"], big)
        assert codes == [250, 250, 250] and end[0] == 250, (codes, end)
        assert len(s.messages("bob@example.org")) == 1
        assert s.messages("alice@example.org") == [] and s.messages("dave@example.org") == []
        dsn = s.messages("carol@example.org")
        assert len(dsn) == 1, dsn
        assert b"Final-Recipient: rfc822; alice@example.org" in dsn[0], dsn[0]
        assert b"Final-Recipient: rfc822; dave@example.org" in dsn[0], dsn[0]
        assert b"bob@example.org" not in dsn[0].split(b"Undelivered Message Headers")[0]
        assert b"Status: 5.2.2" in dsn[0] and b"<big@remote.test>" in dsn[0]
        # every recipient over its quota: the one reply after DATA refuses it
        codes, end = transaction(s, "carol@example.org", ["alice@example.org",
                                                          "dave@example.org"], big)
        assert codes == [250, 250] and end[0] == 552 and end[1].startswith("5.2.2"), end
        assert len(s.messages("carol@example.org")) == 1  # no DSN: the client was told
    finally:
        assert s.stop() == 0


def test_default_quota_and_domain_quota():
    """QUOTA: DefaultQuota applies to every mailbox; a domain's quota beats it; an account's own beats both, none too"""
    s = imap_server(conf="DefaultQuota 1M 1000",
                    domains=("example.org", "other.test"),
                    users=("alice@example.org", "bob@example.org", "eve@other.test"))
    try:
        def root(user):
            c = Raw(s.imap_port)
            c.cmd(b"a", b"LOGIN " + user.encode() + b" secret")
            r = quota_lines(c, b"b", b"GETQUOTAROOT INBOX")
            c.cmd(b"z", b"LOGOUT")
            return r[1] if r[1].startswith(b"* QUOTA ") else None

        assert root("alice@example.org") == b'* QUOTA "" (STORAGE 0 1024 MESSAGE 0 1000)'
        r = s.cli("domain", "quota", "other.test", "50K", "5")
        assert "other.test: storage 50 KiB, messages 5" in r.stdout, r.stdout
        assert root("eve@other.test") == b'* QUOTA "" (STORAGE 0 50 MESSAGE 0 5)'
        s.cli("domain", "quota", "other.test", "2M")  # the count stays the domain's
        assert root("eve@other.test") == b'* QUOTA "" (STORAGE 0 2048 MESSAGE 0 5)'
        s.cli("user", "quota", "eve@other.test", "default", "none")
        assert root("eve@other.test") == b'* QUOTA "" (STORAGE 0 2048)'
        s.cli("user", "quota", "bob@example.org", "none", "none")
        assert root("bob@example.org") is None
        # the domain's limit refuses mail as an account's does
        s.cli("user", "quota", "eve@other.test", "default", "default")
        s.cli("domain", "quota", "other.test", "default", "1")
        send(s, ["eve@other.test"], MSG % 1)
        c = SMTPRaw(s.smtp_port)
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<sender@remote.test>")
        assert c.cmd("RCPT TO:<eve@other.test>")[0] == 452
        c.cmd("QUIT")
        r = s.cli("domain", "quota", "nosuch.test", "1M", check=False)
        assert r.returncode != 0
    finally:
        assert s.stop() == 0


def test_cli_user_quota_shows_sets_and_recalculates():
    """QUOTA: rumble user quota shows the figures, sets limits, refuses bad ones; --recalc and a lost figure count the folders again"""
    s = imap_server()
    try:
        r = s.cli("user", "quota", "alice@example.org")
        assert r.stdout.strip() == ("alice@example.org: storage 0 KiB (no limit), "
                                    "messages 0 (no limit)"), r.stdout
        r = s.cli("user", "quota", "alice@example.org", "1M", "100")
        assert r.stdout.strip() == ("alice@example.org: storage 0 of 1024 KiB (0%), "
                                    "messages 0 of 100 (0%)"), r.stdout
        for i in range(4):
            send(s, ["alice@example.org"], MSG % i)
        total = kib(sum(sizes(s)))
        want = ("alice@example.org: storage %d of 1024 KiB (%d%%), messages 4 of 100 (4%%)"
                % (total, total * 100 // 1024))
        assert s.cli("user", "quota", "alice@example.org").stdout.strip() == want
        usage = os.path.join(os.path.dirname(s.mbox("alice@example.org")), "quota")
        with open(usage, "w") as f:
            f.write("rumble-quota 1 99 99999 0\n")  # a wrong figure
        assert "messages 99 of 100" in s.cli("user", "quota", "alice@example.org").stdout
        assert s.cli("user", "quota", "alice@example.org", "--recalc").stdout.strip() == want
        os.remove(usage)  # lost: summed again at the next look
        assert s.cli("user", "quota", "alice@example.org").stdout.strip() == want
        for bad in (["12X"], ["1M", "many"], ["-5"]):
            r = s.cli("user", "quota", "alice@example.org", *bad, check=False)
            assert r.returncode == 1 and "quota: expected" in r.stderr, (bad, r.stderr)
        r = s.cli("user", "quota", "nobody@example.org", check=False)
        assert r.returncode == 1 and "no such mailbox" in r.stderr, r.stderr
        with open(os.path.join(s.storage, "accounts")) as f:
            assert "\t1024/100\n" in f.read()
        assert "user quota USER@DOMAIN" in s.cli("--help").stdout
    finally:
        assert s.stop() == 0


def test_expunge_frees_room():
    """QUOTA: expunged messages stop counting at once (no compaction needed), and mail fits again"""
    s = imap_server()
    try:
        s.cli("user", "quota", "alice@example.org", "none", "4")
        for i in range(4):
            send(s, ["alice@example.org"], MSG % i)  # the fourth passes 90%: and a warning
        m = login(s)
        typ, data = m.append("INBOX", None, None, b"Subject: x\r\n\r\nx\r\n")
        assert typ == "NO" and b"[OVERQUOTA]" in data[0]
        m.select("INBOX")
        m.store("1:2", "+FLAGS", "\\Deleted")
        m.expunge()
        typ, data = m._simple_command("GETQUOTA", '""')
        assert typ == "OK", data
        assert m.untagged_responses.pop("QUOTA")[0] == b'"" (MESSAGE 3 4)'
        typ, data = m.append("INBOX", None, None, b"Subject: x\r\n\r\nx\r\n")
        assert typ == "OK", data
        m.logout()
        # 4 of 4 passes 90% again: a second warning (it is delivered when full too)
        assert "messages 5 of 4" in s.cli("user", "quota", "alice@example.org").stdout
        assert len(s.messages("alice@example.org")) == 7  # the mbox is not compacted
    finally:
        assert s.stop() == 0


def test_warning_at_90_percent_arrives_once_per_crossing():
    """QUOTA: passing 90% puts one warning in the INBOX; more mail adds none; below 90% and past it again, one more"""
    s = imap_server()
    try:
        s.cli("user", "quota", "alice@example.org", "none", "20")

        def warnings():
            return [m for m in s.messages("alice@example.org")
                    if b"Subject: Your mailbox is almost full" in m]

        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=30) as c:
            for i in range(17):
                c.sendmail("sender@remote.test", ["alice@example.org"], MSG % i)
        assert warnings() == []
        send(s, ["alice@example.org"], MSG % 17)  # 18 of 20: 90%
        w = warnings()
        assert len(w) == 1, len(w)
        assert b"messages  19 of 20" in w[0] or b"messages  18 of 20" in w[0], w[0]
        assert b"Auto-Submitted: auto-generated" in w[0]
        send(s, ["alice@example.org"], MSG % 18)  # 20 of 20: no second warning
        assert len(warnings()) == 1
        m = login(s)
        m.select("INBOX")
        m.store("1:10", "+FLAGS", "\\Deleted")
        m.expunge()  # 10 of 20
        for i in range(8):  # 18 of 20: past 90% again
            assert m.append("INBOX", None, None, MSG % (100 + i))[0] == "OK"
        m.logout()
        assert len(warnings()) == 2, len(warnings())
    finally:
        assert s.stop() == 0


def test_web_admin_quota_field_saves():
    """QUOTA: the web admin shows a mailbox's quota and usage, and its form sets it (SMTP then obeys it)"""
    from test_webadmin import admin_server, logged_in
    s = admin_server()
    try:
        b = logged_in(s)
        html = b.page("/accounts?domain=example.org")
        assert 'name="quota"' in html and "default default" in html, html
        assert "0 KiB, 0 messages" in html, html
        st, _, html = b.post("/account/quota", {"domain": "example.org", "name": "bob",
                                                "quota": "20K 1"},
                             page="/accounts?domain=example.org")
        assert st == 200 and "Quota of bob@example.org set: " in html, (st, html)
        assert "20K 1" in html and "0 of 20 KiB, 0 of 1 messages" in html, html
        r = s.cli("user", "quota", "bob@example.org")
        assert "storage 0 of 20 KiB" in r.stdout and "messages 0 of 1" in r.stdout, r.stdout
        send(s, ["bob@example.org"], MSG % 1)
        c = SMTPRaw(s.smtp_port)
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<sender@remote.test>")
        assert c.cmd("RCPT TO:<bob@example.org>")[0] == 452
        c.cmd("QUIT")
        st, _, html = b.post("/account/quota", {"domain": "example.org", "name": "bob",
                                                "quota": "lots"},
                             page="/accounts?domain=example.org")
        assert st == 400 and "optionally a message count" in html, (st, html)
        st, _, html = b.post("/account/quota", {"domain": "example.org", "name": "bob",
                                                "quota": "<b>"},
                             page="/accounts?domain=example.org")
        assert st == 400 and "optionally a message count" in html
    finally:
        assert s.stop() == 0
