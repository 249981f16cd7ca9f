"""Sieve (sieve_parse.c, sieve_run.c): the corpus in sieve_corpus.py run
through `rumble sieve test` and through Pigeonhole's sieve-test (Debian's
dovecot-sieve); the actions must agree, and both must refuse the same
scripts. Prints the agreement figure."""
import os
import pwd
import shutil
import subprocess
import tempfile
import time

from harness import BIN, TMP, imap_folder
from sieve_corpus import CASES, INCLUDES, MESSAGES

FROM, TO = "sender@example.com", "bob+work@example.org"


def pigeonhole(d):
    """A sieve-test that runs as a user who may (not root), or None."""
    if not shutil.which("sieve-test"):
        return None
    uid = os.getuid()
    pw = pwd.getpwuid(uid if uid else pwd.getpwnam("nobody").pw_uid)
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write("mail_uid = %d\nmail_gid = %d\nfirst_valid_uid = 0\nfirst_valid_gid = 0\n"
                "mail_location = maildir:%s/Maildir\nprotocols =\n"
                "plugin {\n  sieve_extensions = +editheader +vacation-seconds\n"
                "  sieve = file:%s\n  sieve_global = file:%s/global\n}\n" % (pw.pw_uid, pw.pw_gid, d, d, d))
    os.chmod(d, 0o777)
    os.chmod(TMP, os.stat(TMP).st_mode | 0o011)  # sieve-test runs as that user: let it reach d
    return ["sieve-test", "-c", conf, "-f", FROM, "-r", TO, "-a", TO]


def run(cmd, d, name, script, msg):
    sp, mp = os.path.join(d, name + ".sieve"), os.path.join(d, name + ".eml")
    with open(sp, "w") as f:
        f.write(script)
    with open(mp, "wb") as f:
        f.write(MESSAGES[msg])
    os.chmod(sp, 0o644)
    os.chmod(mp, 0o644)
    r = subprocess.run(cmd(sp, mp), capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def test_sieve_agrees_with_pigeonhole():
    """Sieve: every script of the corpus gives the same actions as Pigeonhole's sieve-test, or is refused by both"""
    os.makedirs(TMP, exist_ok=True)
    d = tempfile.mkdtemp(dir=TMP, prefix="sieve-")
    ph = pigeonhole(d)
    if not ph:
        raise Skip("sieve-test (dovecot-sieve) not installed")
    os.makedirs(os.path.join(d, "global"))
    os.chmod(os.path.join(d, "global"), 0o755)
    for name, text in INCLUDES.items():  # personal beside the scripts, global in global/
        with open(os.path.join(d, name + ".sieve"), "w") as f:
            f.write(text)
        os.chmod(os.path.join(d, name + ".sieve"), 0o644)
    agree, differ = 0, []
    for name, script, msg in CASES:
        ours = run(lambda s, m: [BIN, "sieve", "test", s, m, FROM, TO], d, name, script, msg)
        theirs = run(lambda s, m: ph + [s, m], d, name, script, msg)
        if name.startswith("err-"):
            ok = ours[0] != 0 and theirs[0] != 0 and "rumble: sieve:" in ours[2]
        else:
            ok = ours[0] == 0 and theirs[0] == 0 and ours[1] == theirs[1]
        if ok:
            agree += 1
        else:
            differ.append((name, ours, theirs))
    print("    Pigeonhole agreement: %d of %d scripts" % (agree, len(CASES)))
    for name, ours, theirs in differ:
        print("    %s:\n      rumble (%d): %r %r\n      sieve-test (%d): %r %r"
              % (name, ours[0], ours[1], ours[2][-300:], theirs[0], theirs[1], theirs[2][-300:]))
    shutil.rmtree(d, ignore_errors=True)
    assert not differ, "%d of %d scripts differ" % (len(differ), len(CASES))


def test_sieve_check_reports_line_and_column():
    """Sieve: rumble sieve check says ok for a good script, and LINE:COL with the reason for a bad one, exit 1"""
    os.makedirs(TMP, exist_ok=True)
    d = tempfile.mkdtemp(dir=TMP, prefix="sieve-")
    good, bad = os.path.join(d, "good.sieve"), os.path.join(d, "bad.sieve")
    with open(good, "w") as f:
        f.write('require "fileinto";\nif header :contains "subject" "x" { fileinto "X"; }\n')
    with open(bad, "w") as f:
        f.write('require "fileinto";\nif header :contains "subject" "x" {\n  fileinto "X"\n}\n')
    r = subprocess.run([BIN, "sieve", "check", good], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "ok" in r.stdout, r
    r = subprocess.run([BIN, "sieve", "check", bad], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "bad.sieve:4:1: ';' was expected" in r.stderr, r
    shutil.rmtree(d, ignore_errors=True)


FILTER = r'''require ["fileinto", "imap4flags", "copy", "mailbox", "envelope", "subaddress"];
if envelope :detail "to" "work" { fileinto :create "Work"; stop; }
if header :contains "subject" "report" { addflag "\\Seen $Report"; fileinto :create "Reports"; stop; }
if header :contains "subject" "list" { fileinto "Lists"; stop; }
if header :contains "subject" "spam" { discard; stop; }
if header :contains "subject" "share" { redirect :copy "carol@example.org"; }
'''


def test_sieve_at_delivery():
    """Sieve at delivery: fileinto :create with flags, fileinto a missing folder (INBOX), discard, redirect :copy, user+detail@ (RFC 5233) with envelope :detail; a script that no longer compiles delivers to INBOX"""
    import smtplib
    from harness import Server, free_port
    from test_webadmin import wait_for
    port = free_port()
    s = Server(conf="EnableIMAP4 1\nIMAP4Port %d\n" % port,
               users=("bob@example.org", "carol@example.org"))
    script = os.path.join(s.dir, "filter.sieve")
    with open(script, "w") as f:
        f.write(FILTER)
    r = s.cli("user", "sieve", "bob@example.org", script)
    assert "active for bob@example.org" in r.stdout, r.stdout
    assert "rumble" in s.cli("user", "sieve", "bob@example.org", "show").stdout
    s.start()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        for subj in ("Q3 report", "list digest", "spam spam", "please share", "plain hello"):
            c.sendmail("x@example.net", ["bob@example.org"], "Subject: %s\r\n\r\nbody\r\n" % subj)
        c.sendmail("x@example.net", ["bob+work@example.org"], "Subject: for work\r\n\r\nbody\r\n")


    assert wait_for(lambda: len(imap_folder(port, "bob@example.org", "INBOX")) == 3), s.stderr()[-3000:]
    inbox = imap_folder(port, "bob@example.org", "INBOX")
    subjects = sorted(sub for _, sub in inbox)
    assert subjects == ["Subject: list digest", "Subject: plain hello", "Subject: please share"], inbox
    reports = imap_folder(port, "bob@example.org", "Reports")
    assert len(reports) == 1 and "Q3 report" in reports[0][1], reports
    assert "\\Seen" in reports[0][0] and "$Report" in reports[0][0], reports
    assert wait_for(lambda: len(imap_folder(port, "carol@example.org", "INBOX")) == 1)
    work = imap_folder(port, "bob@example.org", "Work")
    assert len(work) == 1 and "for work" in work[0][1], work
    log = s.stderr()
    assert "no folder Lists (fileinto without :create); to INBOX" in log, log[-2000:]
    assert "discard" in log
    # a script broken on disk: mail still arrives, in INBOX, and the log says why
    with open(os.path.join(s.storage, "mail", "example.org", "bob", "sieve", "rumble.sieve"), "w") as f:
        f.write("if true {")
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        c.sendmail("x@example.net", ["bob@example.org"], "Subject: Q4 report\r\n\r\nbody\r\n")
    assert wait_for(lambda: len(imap_folder(port, "bob@example.org", "INBOX")) == 4), s.stderr()[-3000:]
    assert "delivered to INBOX" in s.stderr()
    s.stop()


def test_sieve_duplicate_at_delivery():
    """Sieve duplicate (RFC 7352): the second message with a Message-ID already delivered goes where the script says; other IDs and messages without one are not duplicates; the memory is the user's sieve/duplicate"""
    import smtplib
    from harness import Server, free_port
    from test_webadmin import wait_for
    port = free_port()
    s = Server(conf="EnableIMAP4 1\nIMAP4Port %d\n" % port, users=("bob@example.org",))
    script = os.path.join(s.dir, "dup.sieve")
    with open(script, "w") as f:
        f.write('require ["duplicate", "fileinto", "mailbox"];\n'
                'if duplicate { fileinto :create "Dups"; }\n')
    assert "active for" in s.cli("user", "sieve", "bob@example.org", script).stdout
    s.start()
    msgs = [("<a1@example.net>", "first"), ("<a2@example.net>", "other"), ("<a1@example.net>", "again"),
            (None, "no id"), (None, "no id either")]
    for part in (msgs[:2], msgs[2:]):  # the first two delivered before the repeat arrives
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
            for mid, subj in part:
                c.sendmail("x@example.net", ["bob@example.org"],
                           ("Message-ID: %s\r\n" % mid if mid else "") + "Subject: %s\r\n\r\nbody\r\n" % subj)
        assert wait_for(lambda: len(imap_folder(port, "bob@example.org", "INBOX")) >= 2), s.stderr()[-3000:]
    assert wait_for(lambda: len(imap_folder(port, "bob@example.org", "INBOX")) == 4), s.stderr()[-3000:]
    assert wait_for(lambda: len(imap_folder(port, "bob@example.org", "Dups")) == 1), s.stderr()[-3000:]
    dups = imap_folder(port, "bob@example.org", "Dups")
    assert "again" in dups[0][1], dups
    inbox = sorted(sub for _, sub in imap_folder(port, "bob@example.org", "INBOX"))
    assert inbox == ["Subject: first", "Subject: no id", "Subject: no id either", "Subject: other"], inbox
    with open(os.path.join(s.storage, "mail", "example.org", "bob", "sieve", "duplicate")) as f:
        assert len(f.read().splitlines()) == 2
    s.stop()


def imap_message(port, user, folder, n=1):
    """Message n of user's folder, whole, over IMAP (bytes)."""
    import imaplib
    m = imaplib.IMAP4("127.0.0.1", port)
    try:
        m.login(user, "secret")
        m.select(folder, readonly=True)
        typ, data = m.fetch(str(n), "(BODY.PEEK[])")
        return data[0][1]
    finally:
        m.logout()


def test_sieve_editheader_at_delivery():
    """Sieve editheader (RFC 5293): the stored message and a redirected copy carry the edited header (a field added, one deleted, Received kept), the body unchanged; a message the script does not edit is stored as it came"""
    import smtplib
    from harness import Server, free_port
    from test_webadmin import wait_for
    port = free_port()
    s = Server(conf="EnableIMAP4 1\nIMAP4Port %d\n" % port, users=("bob@example.org", "carol@example.org"))
    script = os.path.join(s.dir, "edit.sieve")
    with open(script, "w") as f:
        f.write('require ["editheader", "fileinto", "mailbox", "copy"];\n'
                'if header :contains "subject" "edit me" {\n'
                '  deleteheader "x-spam-score"; deleteheader "received";\n'
                '  addheader "X-Filtered" "by bob\'s rules";\n'
                '  fileinto :create "Edited"; redirect :copy "carol@example.org"; stop;\n'
                '}\n')
    assert "active for" in s.cli("user", "sieve", "bob@example.org", script).stdout
    s.start()
    body = "line one\r\nX-Spam-Score: in the body stays\r\n"
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        c.sendmail("x@example.net", ["bob@example.org"],
                   "Subject: edit me\r\nX-Spam-Score: 9\r\nX-Other: kept\r\n\r\n" + body)
        c.sendmail("x@example.net", ["bob@example.org"], "Subject: leave me\r\nX-Spam-Score: 1\r\n\r\n" + body)
    assert wait_for(lambda: len(imap_folder(port, "bob@example.org", "Edited")) == 1), s.stderr()[-3000:]
    assert wait_for(lambda: len(imap_folder(port, "carol@example.org", "INBOX")) == 1), s.stderr()[-3000:]
    assert wait_for(lambda: len(imap_folder(port, "bob@example.org", "INBOX")) == 1), s.stderr()[-3000:]
    for msg in (imap_message(port, "bob@example.org", "Edited"), imap_message(port, "carol@example.org", "INBOX")):
        head, _, rest = msg.partition(b"\r\n\r\n")
        assert head.startswith(b"X-Filtered: by bob's rules\r\n"), msg
        assert b"X-Spam-Score" not in head and b"X-Other: kept" in head and b"Received:" in head, msg
        assert rest == body.encode(), msg
    plain = imap_message(port, "bob@example.org", "INBOX")
    assert b"X-Spam-Score: 1\r\n" in plain and b"X-Filtered" not in plain, plain
    s.stop()


def test_sieve_include_at_delivery():
    """Sieve include (RFC 6609) at delivery: the active script includes one of the user's other scripts and a global one from StorageFolder/sieve-global/, sharing a global variable; a missing :optional one is skipped; the domain's sieve-before/sieve-after scripts run around it"""
    import smtplib
    from harness import Server, free_port
    from test_webadmin import wait_for
    port = free_port()
    s = Server(conf="EnableIMAP4 1\nIMAP4Port %d\n" % port, users=("bob@example.org",))
    script = os.path.join(s.dir, "main.sieve")
    with open(script, "w") as f:
        f.write('require ["include", "variables", "fileinto", "mailbox"];\n'
                'global "box"; set "box" "Main";\n'
                'include :global "spam"; include :optional "missing"; include "lists";\n'
                'fileinto :create "${box}";\n')
    assert "active for" in s.cli("user", "sieve", "bob@example.org", script).stdout
    folder = os.path.join(s.storage, "mail", "example.org", "bob", "sieve")
    with open(os.path.join(folder, "lists.sieve"), "w") as f:
        f.write('require ["include", "variables"]; global "box";\n'
                'if header :contains "subject" "[dev]" { set "box" "Dev"; }\n')
    os.makedirs(os.path.join(s.storage, "sieve-global"))
    with open(os.path.join(s.storage, "sieve-global", "spam.sieve"), "w") as f:
        f.write('if header :contains "subject" "viagra" { discard; stop; }\n')
    # the domain's scripts around every user's (stop in any one ends them all)
    with open(os.path.join(s.storage, "mail", "example.org", "sieve-before.sieve"), "w") as f:
        f.write('require "imap4flags"; addflag "$Checked";\n')
    with open(os.path.join(s.storage, "mail", "example.org", "sieve-after.sieve"), "w") as f:
        f.write('require ["fileinto", "mailbox"]; fileinto :create "Archive";\n')
    s.start()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        for subj in ("[dev] build", "hello", "cheap viagra"):
            c.sendmail("x@example.net", ["bob@example.org"], "Subject: %s\r\n\r\nbody\r\n" % subj)
    assert wait_for(lambda: len(imap_folder(port, "bob@example.org", "Dev")) == 1), s.stderr()[-3000:]
    assert wait_for(lambda: len(imap_folder(port, "bob@example.org", "Main")) == 1), s.stderr()[-3000:]
    assert wait_for(lambda: "discard" in s.stderr()), s.stderr()[-3000:]
    main = imap_folder(port, "bob@example.org", "Main")
    assert "hello" in main[0][1] and "$Checked" in main[0][0], main
    assert imap_folder(port, "bob@example.org", "INBOX") == []
    assert len(imap_folder(port, "bob@example.org", "Archive")) == 2
    s.stop()


VACATION = r'''require ["vacation", "reject"];
if header :contains "subject" "ads" { reject "No ads, thank you."; stop; }
vacation :days 1 :subject "Away until Monday" "I am away.
Back on Monday.";
'''


def test_sieve_vacation_and_reject():
    """Sieve vacation: one answer per sender and period at an SMTP sink (from <>, Auto-Submitted, In-Reply-To), none to lists, automatic mail, Bcc or <>; reject sends the sender a DSN with the reason"""
    import email
    import smtplib
    from harness import Server
    from test_outbound import ZONE, FakeDNS, Sink
    from test_webadmin import wait_for
    sink, dns = Sink(), FakeDNS(ZONE)
    s = Server(conf="DNSServer 127.0.0.1:%d\nOutboundPort %d\nRetryInterval 1\n"
                    "OutboundTimeout 10\n" % (dns.port, sink.port), users=("bob@example.org",))
    try:
        script = os.path.join(s.dir, "away.sieve")
        with open(script, "w") as f:
            f.write(VACATION)
        s.cli("user", "sieve", "bob@example.org", script, "away")
        s.start()
        mails = [
            ("x@remote.test", "To: bob@example.org\r\nSubject: hi\r\nMessage-ID: <m1@remote.test>\r\n"),
            ("x@remote.test", "To: bob@example.org\r\nSubject: hi again\r\n"),
            ("y@remote.test", "To: Bob <BOB@example.org>\r\nSubject: hello\r\n"),
            ("z@remote.test", "To: bob@example.org\r\nSubject: list\r\nList-Id: <l.remote.test>\r\n"),
            ("w@remote.test", "To: bob@example.org\r\nSubject: auto\r\nAuto-Submitted: auto-generated\r\n"),
            ("v@remote.test", "To: other@remote.test\r\nSubject: bcc\r\n"),
            ("", "To: bob@example.org\r\nSubject: bounce\r\n"),
            ("u@remote.test", "To: bob@example.org\r\nSubject: cheap ads\r\n"),
        ]
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
            for frm, head in mails:
                c.sendmail(frm, ["bob@example.org"], "From: %s\r\n%s\r\nbody\r\n" % (frm or "daemon", head))
        assert wait_for(lambda: len(sink.got) >= 3, 30), s.stderr()[-3000:]
        time.sleep(2)  # nothing more comes
        got = {}
        for frm, rcpts, data, _ in sink.got:
            assert frm == "" or frm == "<>", frm
            got.setdefault(rcpts[0], []).append(email.message_from_bytes(data))
        assert sorted(got) == ["u@remote.test", "x@remote.test", "y@remote.test"], sorted(got)
        assert all(len(v) == 1 for v in got.values()), got
        x = got["x@remote.test"][0]
        assert x["Subject"] == "Away until Monday" and x["Auto-Submitted"].startswith("auto-replied")
        assert x["In-Reply-To"] == "<m1@remote.test>" and x["From"] == "bob@example.org"
        assert "Back on Monday." in x.get_payload()
        u = got["u@remote.test"][0]
        assert u.get_content_type() == "multipart/report" and "No ads, thank you." in u.as_string()
        assert "sieve reject" in s.stderr() and "sieve vacation" in s.stderr()
        # the rejected message is not in bob's INBOX; the others are
        assert len(s.messages("bob@example.org")) == 7
    finally:
        s.stop()
        sink.stop()
        dns.stop()


HOOK = r'''
Rumble.setHook(function(msg, rcpt, from, plan)
    local f = io.open(Rumble.readConfig("PlanFile"), "ab")
    f:write(("%s from=%s subject=%s plan=%s size=%d\n"):format(rcpt, from, msg.subject or "",
        plan[1] and plan[1].action .. ":" .. (plan[1].folder or plan[1].to or "") or "none", msg.size))
    f:close()
    if msg.subject and msg.subject:find("invoice") then
        return {{action = "fileinto", folder = "Invoices", flags = "\\Seen $Paid", create = true}}
    end
    if msg.headers["x-drop"] then
        return "discard"
    end
    if msg.body:find("unsubscribe") then
        return "reject", "No newsletters here."
    end
    if msg.subject == "bad plan" then
        return {{action = "fileinto", folder = "../escape"}}
    end
end, "mailman", "delivery")
'''


def test_lua_delivery_hook():
    """Lua delivery hook: sees the parsed message and Sieve's plan; files with flags, discards, rejects (a DSN), and a bad plan leaves Sieve's standing"""
    import smtplib
    from harness import Server, free_port
    from test_webadmin import wait_for
    port = free_port()
    s = Server(conf="EnableIMAP4 1\nIMAP4Port %d\n" % port, users=("bob@example.org", "alice@example.org"))
    plans = os.path.join(s.dir, "plans.txt")
    hook = os.path.join(s.dir, "hook.lua")
    with open(hook, "w") as f:
        f.write(HOOK)
    with open(s.conf, "a") as f:
        f.write("PlanFile %s\nLoadScript %s\n" % (plans, hook))
    script = os.path.join(s.dir, "f.sieve")
    with open(script, "w") as f:
        f.write('require ["fileinto", "mailbox"];\n'
                'if header :contains "subject" "sieve" { fileinto :create "FromSieve"; }\n')
    s.cli("user", "sieve", "bob@example.org", script)
    s.start()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as c:
        for head in ("Subject: your invoice", "Subject: hi\r\nX-Drop: 1", "Subject: news",
                     "Subject: sieve decides", "Subject: bad plan"):
            body = "please unsubscribe" if "news" in head else "hello"
            c.sendmail("alice@example.org", ["bob@example.org"], "%s\r\n\r\n%s\r\n" % (head, body))


    assert wait_for(lambda: len(imap_folder(port, "bob@example.org", "INBOX")) == 1), "\n".join(l for l in s.stderr().splitlines() if "imap" not in l)[-3000:]
    inv = imap_folder(port, "bob@example.org", "Invoices")
    assert len(inv) == 1 and "\\Seen" in inv[0][0] and "$Paid" in inv[0][0], inv
    assert len(imap_folder(port, "bob@example.org", "FromSieve")) == 1
    assert "bad plan" in imap_folder(port, "bob@example.org", "INBOX")[0][1]
    assert wait_for(lambda: any("Undelivered" in sub for _, sub in imap_folder(port, "alice@example.org", "INBOX")))
    log = open(plans).read()
    assert "bob@example.org from=alice@example.org subject=sieve decides plan=fileinto:FromSieve" in log, log
    assert "subject=your invoice plan=keep:" in log, log
    assert "not a plan" in s.stderr()
    s.stop()
