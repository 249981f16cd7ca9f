"""End-to-end SMTP tests against the real binary (smtplib, raw sockets, swaks, curl)."""
import os
import shutil
import smtplib
import socket
import subprocess
import threading
import time

from harness import BIN, Server, SMTPRaw, free_port, queue_files, strip_received


def message(i, size=0, extra=b""):
    body = b"".join(b"line %d of message %d, some text to fill it up.\r\n" % (n, i)
                    for n in range(max(1, size // 48)))
    return (b"From: sender@remote.test\r\nTo: alice@example.org\r\nSubject: test %d\r\n"
            b"Message-ID: <m%d@remote.test>\r\n\r\n" % (i, i)) + extra + body


def test_one_message_arrives_intact():
    """smtp: one message arrives in the mailbox with its bytes intact"""
    s = Server().start()
    msg = message(1, 2000)
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.sendmail("sender@remote.test", ["alice@example.org"], msg)
    got = s.messages("alice@example.org")
    assert len(got) == 1, got
    assert strip_received(got[0]) == msg
    assert got[0].startswith(b"Received: from ")
    assert s.stop() == 0


def test_thousand_messages_arrive_intact():
    """smtp: 1,000 messages over 10 parallel sessions all arrive intact"""
    s = Server().start()
    sent = {}
    errors = []

    def sender(k):
        try:
            with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=30) as c:
                for i in range(k * 100, k * 100 + 100):
                    m = message(i, 500 + (i % 7) * 300)
                    c.sendmail("sender@remote.test", ["alice@example.org"], m)
                    sent[i] = m
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    got = [strip_received(m) for m in s.messages("alice@example.org")]
    assert len(got) == 1000, len(got)
    assert sorted(got) == sorted(sent.values())
    assert s.stop() == 0


def test_pipelined_commands_answer_in_order():
    """smtp: pipelined commands in one write get their replies in order"""
    s = Server(users=("alice@example.org", "bob@example.org")).start()
    c = SMTPRaw(s.smtp_port)
    c.send(b"EHLO client.test\r\n")
    code, text = c.reply()
    assert code == 250 and "PIPELINING" in text
    c.send(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.org>\r\n"
           b"RCPT TO:<nobody@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(5)] == [250, 250, 550, 250, 354]
    c.send(b"Subject: piped\r\n\r\nhello\r\n.\r\nMAIL FROM:<y@remote.test>\r\n"
           b"RCPT TO:<alice@example.org>\r\nDATA\r\nSubject: second\r\n\r\nagain\r\n.\r\nQUIT\r\n")
    codes = [c.reply()[0] for _ in range(6)]
    assert codes == [250, 250, 250, 354, 250, 221], codes
    assert c.closed()
    assert len(s.messages("alice@example.org")) == 2
    assert len(s.messages("bob@example.org")) == 1
    assert s.stop() == 0


def test_unknown_user_and_relay_are_refused():
    """smtp: unknown local users get 550 and relaying to other domains is refused"""
    s = Server().start()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.ehlo("client.test")
        c.mail("x@remote.test")
        code, _ = c.rcpt("nobody@example.org")
        assert code == 550
        code, text = c.rcpt("someone@elsewhere.test")
        assert code == 554 and b"Relay" in text, text
        code, _ = c.rcpt("ALICE@Example.ORG")
        assert code == 250
    assert s.stop() == 0


def test_size_limit_is_enforced():
    """smtp: SIZE is advertised and messages over MessageSizeLimit get 552"""
    s = Server(conf="MessageSizeLimit 20K").start()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.ehlo("client.test")
        assert c.esmtp_features["size"] == str(20 * 1024)
        code, _ = c.docmd("MAIL FROM:<x@remote.test> SIZE=30000")
        assert code == 552
        code, _ = c.docmd("MAIL FROM:<x@remote.test>")
        assert code == 250
        assert c.rcpt("alice@example.org")[0] == 250
        code, _ = c.data(message(1, 40000))
        assert code == 552
        assert c.noop()[0] == 250  # the session goes on
        c.sendmail("x@remote.test", ["alice@example.org"], message(2, 1000))
    assert len(s.messages("alice@example.org")) == 1
    assert s.stop() == 0


def test_dot_stuffing_round_trips():
    """smtp: lines starting with dots are unstuffed and stored as sent"""
    s = Server().start()
    msg = b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\n...three\r\nFrom the start\r\n>From quoted\r\nend\r\n"
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.sendmail("x@remote.test", ["alice@example.org"], msg)
    got = s.messages("alice@example.org")
    assert len(got) == 1
    assert strip_received(got[0]) == msg, got[0]
    assert s.stop() == 0


def test_bare_lf_cannot_smuggle_a_second_message():
    """smtp: bare LF and lone CR dots do not end DATA (no smuggling)"""
    s = Server(users=("alice@example.org", "bob@example.org")).start()
    c = SMTPRaw(s.smtp_port)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.org>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: one\r\n\r\nfirst\n.\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.org>\r\n"
           b"DATA\r\nSubject: smuggled\r\n\r\nx\r\n\r.\r\nmore\r\n.\r\n")
    code, text = c.reply()
    assert code == 250, (code, text)
    assert c.cmd("QUIT")[0] == 221
    got = s.messages("alice@example.org")
    assert len(got) == 1
    assert b"smuggled" in got[0] and b"first\r\n" in got[0]
    assert s.messages("bob@example.org") == []
    assert s.stop() == 0


def test_limits_and_bad_input_get_errors():
    """smtp: too many recipients, long lines, garbage and errors are bounded"""
    s = Server(conf="MaxRecipients 3\nMaxErrors 6").start()
    c = SMTPRaw(s.smtp_port)
    assert c.cmd("MAIL FROM:<x@remote.test>")[0] == 503  # HELO first
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    for _ in range(3):
        assert c.cmd("RCPT TO:<alice@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.org>")[0] == 452
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("X" * 5000)[0] == 500  # line too long
    assert c.cmd("NOOP")[0] == 250  # still in sync after the long line
    c.send(b"\x00\xff\xfe garbage\r\n")
    assert c.reply()[0] == 500
    assert c.cmd("RCPT TO:<alice@example.org>")[0] == 503
    assert c.cmd("MAIL FROM:<not an address>")[0] == 501
    code, text = c.cmd("FOO")
    assert code == 500
    assert c.reply()[0] == 421  # the sixth error ends the session
    assert c.closed()
    # the server is still up
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c2:
        assert c2.noop()[0] == 250
    assert s.stop() == 0


def test_helo_rules():
    """smtp: HELO/EHLO need a name; EnforceFQDN refuses unqualified ones; VRFY/HELP answer"""
    s = Server(conf="EnforceFQDN 1").start()
    c = SMTPRaw(s.smtp_port)
    assert c.greeting[0] == 220
    assert c.cmd("EHLO")[0] == 501
    assert c.cmd("EHLO localhost")[0] == 504
    assert c.cmd("HELO [127.0.0.1]")[0] == 250
    code, text = c.cmd("EHLO client.example.test")
    assert code == 250
    for ext in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"):
        assert ext in text, text
    assert c.cmd("VRFY alice")[0] == 252
    assert c.cmd("HELP")[0] == 214
    assert c.cmd("QUIT")[0] == 221
    assert s.stop() == 0


def test_smtputf8_and_8bit_mail_is_accepted():
    """smtp: SMTPUTF8 addresses and 8-bit bodies are accepted and stored unchanged"""
    s = Server(users=("jos\u00e9@example.org",)).start()
    msg = "Subject: caf\u00e9\r\n\r\nna\u00efve \u65e5\u672c\r\n".encode()
    c = SMTPRaw(s.smtp_port)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<s\u00e9nder@remote.test> SMTPUTF8 BODY=8BITMIME")[0] == 250
    assert c.cmd("RCPT TO:<jos\u00e9@example.org>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(msg + b".\r\n")
    assert c.reply()[0] == 250
    got = s.messages("jos\u00e9@example.org")
    assert len(got) == 1 and strip_received(got[0]) == msg
    assert s.stop() == 0


def test_cli_changes_are_seen_by_the_running_server():
    """cli: domains and users added or removed while the server runs take effect at once"""
    s = Server(domains=(), users=()).start()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.ehlo("client.test")
        c.mail("x@remote.test")
        assert c.rcpt("carol@new.test")[0] == 554  # not a local domain yet
        s.cli("domain", "add", "new.test")
        assert c.rcpt("carol@new.test")[0] == 550  # local, no such user
        s.cli("user", "add", "carol@new.test", input="pw\n")
        assert c.rcpt("carol@new.test")[0] == 250
        s.cli("alias", "add", "team@new.test", "carol@new.test")
        assert c.rcpt("team@new.test")[0] == 250
        c.rset()
        c.sendmail("x@remote.test", ["team@new.test"], b"Subject: via alias\r\n\r\nhi\r\n")
        s.cli("user", "del", "carol@new.test")
        c.mail("x@remote.test")
        assert c.rcpt("carol@new.test")[0] == 550
    assert len(s.messages("carol@new.test")) == 1
    out = s.cli("domain", "list").stdout
    assert "new.test" in out
    assert s.stop() == 0


def test_glob_accounts_catch_mail():
    """smtp: GLOB accounts take mail; an exact name wins over a pattern"""
    s = Server(users=("alice@example.org",)).start()
    s.cli("alias", "add", "*@example.org", "alice@example.org")
    s.cli("user", "add", "bob@example.org", input="pw\n")
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.sendmail("x@remote.test", ["whoever@example.org"], b"Subject: glob\r\n\r\nx\r\n")
        c.sendmail("x@remote.test", ["bob@example.org"], b"Subject: exact\r\n\r\nx\r\n")
    assert len(s.messages("alice@example.org")) == 1
    assert len(s.messages("bob@example.org")) == 1
    assert s.stop() == 0


def test_cli_rejects_bad_input():
    """cli: bad input gives one clear line and a non-zero exit"""
    s = Server(domains=(), users=())
    for args, inp in ((("domain", "add", "../etc"), None), (("user", "add", "nodomain"), "pw\n"),
                      (("user", "add", "bob@nowhere.test"), "pw\n"), (("frob",), None),
                      (("domain",), None), (("user", "passwd", "x@y.test"), "pw\n")):
        r = s.cli(*args, input=inp, check=False)
        assert r.returncode != 0, args
        assert r.stderr.strip() and len(r.stderr.strip().splitlines()) == 1, r.stderr
    s.cli("domain", "add", "ok.test")
    r = s.cli("user", "add", "a@ok.test", input="", check=False)
    assert r.returncode != 0 and "password" in r.stderr


def test_bad_config_stops_startup_with_file_and_line():
    """config: a bad value stops start-up with file:line: reason"""
    s = Server(domains=(), users=())
    with open(s.conf, "a") as f:
        f.write("SMTPPort notaport\n")
    r = subprocess.run([BIN, "-c", s.conf], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "rumble.conf:" in r.stderr and "SMTPPort" in r.stderr, r.stderr


def test_kill_9_loses_no_acknowledged_message():
    """smtp: kill -9 in a 200-message burst, restart: every acknowledged message is there exactly once"""
    s = Server().start()
    acked, lock = [], threading.Lock()

    def sender(k):
        for i in range(k, 200, 10):
            try:
                with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
                    c.sendmail("x@remote.test", ["alice@example.org"], message(i, 4000))
                with lock:
                    acked.append(i)
            except (OSError, smtplib.SMTPException):
                return

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(10)]
    for t in threads:
        t.start()
    for _ in range(1000):
        with lock:
            if len(acked) >= 60:
                break
        time.sleep(0.005)
    s.kill9()
    for t in threads:
        t.join(60)
    assert 0 < len(acked) < 200, len(acked)
    s.start()
    got = [strip_received(m) for m in s.messages("alice@example.org")]
    for i in acked:
        assert got.count(message(i, 4000)) == 1, (i, got.count(message(i, 4000)))
    # and the folder is still good for new mail
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.sendmail("x@remote.test", ["alice@example.org"], message(999, 100))
    assert strip_received(s.messages("alice@example.org")[-1]) == message(999, 100)
    assert s.stop() == 0


def test_queue_files_left_by_a_crash_are_delivered_once():
    """queue: a queue file left by a crash is delivered at start-up, exactly once"""
    s = Server()
    qdir = os.path.join(s.storage, "queue")
    os.makedirs(qdir, exist_ok=True)
    qid = "0000000012345678"
    msg = b"Subject: left over\r\n\r\nfrom the queue\r\n"
    open(os.path.join(qdir, qid + ".msg"), "wb").write(msg)
    open(os.path.join(qdir, qid + ".env"), "w").write(
        "from x@remote.test\ndate 1700000000\nattempts 0\nnext 0\nrcpt alice@example.org\n")
    open(os.path.join(qdir, "00000000deadbeef.msg"), "wb").write(b"half-written, never acked")
    s.start()
    for _ in range(500):
        if s.messages("alice@example.org"):
            break
        time.sleep(0.01)
    time.sleep(0.2)
    assert s.stop() == 0
    assert [m for m in s.messages("alice@example.org")] == [msg]
    assert queue_files(s.storage) == []
    s.start()
    time.sleep(0.3)
    assert s.stop() == 0
    assert len(s.messages("alice@example.org")) == 1


def test_swaks_delivers():
    """smtp: swaks sends a message that arrives"""
    if not shutil.which("swaks"):
        raise Skip("swaks not installed")
    s = Server().start()
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(s.smtp_port), "--from",
                        "x@remote.test", "--to", "alice@example.org", "--helo", "client.test",
                        "--header", "Subject: swaks test", "--body", "hello from swaks", "--pipeline"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    got = s.messages("alice@example.org")
    assert len(got) == 1 and b"hello from swaks" in got[0] and b"Subject: swaks test" in got[0]
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(s.smtp_port), "--from",
                        "x@remote.test", "--to", "nobody@example.org"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0 and "550" in r.stdout
    assert s.stop() == 0


def test_curl_uploads_over_smtp():
    """smtp: curl smtp:// uploads a message that arrives"""
    if not shutil.which("curl"):
        raise Skip("curl not installed")
    s = Server().start()
    msg = b"Subject: curl\r\n\r\nsent by curl\r\n"
    r = subprocess.run(["curl", "-s", "-S", "smtp://127.0.0.1:%d/client.test" % s.smtp_port,
                        "--mail-from", "x@remote.test", "--mail-rcpt", "alice@example.org",
                        "-T", "-"], input=msg, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    got = s.messages("alice@example.org")
    assert len(got) == 1 and strip_received(got[0]) == msg
    assert s.stop() == 0


def test_mbox_opens_in_python_mailbox_and_mutt():
    """store: the mbox file opens in Python's mailbox.mbox and in mutt"""
    import mailbox
    s = Server().start()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        for i in range(3):
            c.sendmail("x@remote.test", ["alice@example.org"], message(i, 300, b"From here on\r\n"))
    assert s.stop() == 0
    box = mailbox.mbox(s.mbox("alice@example.org"), create=False)
    subjects = [m["subject"] for m in box]
    assert subjects == ["test 0", "test 1", "test 2"], subjects
    if not shutil.which("mutt") or not shutil.which("script"):
        raise Skip("mutt or script not installed")
    out = os.path.join(s.dir, "mutt.out")
    os.makedirs(os.path.join(s.dir, "Mail"), exist_ok=True)  # else mutt asks to create it
    setup = 'set print=yes print_split=yes wait_key=no print_command="cat >> %s"' % out
    keys = 'push "<first-entry><print-message><next-entry><print-message><next-entry><print-message><quit>"'
    cmd = "mutt -n -F /dev/null -R -f '%s' -e '%s' -e '%s'" % (s.mbox("alice@example.org"), setup, keys)
    subprocess.run(["script", "-qec", cmd, "/dev/null"], env=dict(os.environ, TERM="dumb", HOME=s.dir),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, stdin=subprocess.DEVNULL)
    data = open(out, "rb").read()
    assert [l for l in data.split(b"\n") if l.startswith(b"Subject: ")] == \
        [b"Subject: test 0", b"Subject: test 1", b"Subject: test 2"], data[:300]


def wait_for(pred, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_feed_accounts_pipe_the_message_to_a_program():
    """queue: a feed account hands the message to its program on stdin"""
    s = Server()
    out = os.path.join(s.dir, "feed.out")
    s.cli("feed", "add", "robot@example.org", "cat", ">", out)
    s.start()
    msg = b"Subject: to the robot\r\n\r\nbeep\r\n"
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.sendmail("x@remote.test", ["robot@example.org"], msg)
    assert wait_for(lambda: os.path.exists(out) and os.path.getsize(out) > 0)
    assert wait_for(lambda: queue_files(s.storage) == [])
    assert strip_received(open(out, "rb").read()) == msg
    assert s.stop() == 0


def test_mail_for_remote_alias_targets_waits_in_the_queue():
    """queue: an alias to another domain keeps the message safe in the queue"""
    s = Server(conf="DNSServer 127.0.0.1:%d" % free_port())  # DNS never answers
    s.cli("alias", "add", "fwd@example.org", "alice@example.org", "someone@elsewhere.test")
    s.start()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.sendmail("x@remote.test", ["fwd@example.org"], b"Subject: fwd\r\n\r\nx\r\n")
    assert len(s.messages("alice@example.org")) == 1
    qdir = os.path.join(s.storage, "queue")
    names = sorted(n for n in os.listdir(qdir) if n.endswith((".env", ".msg")))
    assert len(names) == 2 and names[0].endswith(".env") and names[1].endswith(".msg"), names
    env = open(os.path.join(qdir, names[0])).read()
    assert "rcpt someone@elsewhere.test" in env and "alice" not in env, env
    assert s.stop() == 0


def test_idle_sessions_time_out():
    """smtp: an idle session gets 421 and is closed after IdleTimeout"""
    s = Server(conf="IdleTimeout 1").start()
    c = SMTPRaw(s.smtp_port)
    t0 = time.time()
    code, text = c.reply()
    assert code == 421 and "timeout" in text, (code, text)
    assert c.closed()
    assert time.time() - t0 < 5
    assert s.stop() == 0


def test_log_file_reload_and_detached_service():
    """server: --service detaches, logs to LogFile, reloads on SIGHUP, stops on SIGTERM"""
    import signal
    s = Server()
    log = os.path.join(s.dir, "server.log")
    with open(s.conf, "a") as f:
        f.write("LogFile %s\n" % log)
    r = subprocess.run([BIN, "-c", s.conf, "--service"], capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: os.path.exists(log) and b"ready in" in open(log, "rb").read())
    pid = int(open(log).read().split(" pid ")[1].split()[0])
    try:
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
            assert c.noop()[0] == 250
        os.kill(pid, signal.SIGHUP)
        assert wait_for(lambda: b"reload" in open(log, "rb").read())
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
            c.sendmail("x@remote.test", ["alice@example.org"], b"Subject: after reload\r\n\r\nx\r\n")
    finally:
        os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: b"stopped" in open(log, "rb").read())
    assert len(s.messages("alice@example.org")) == 1


def test_sigterm_lets_a_running_transaction_finish():
    """server: SIGTERM stops new connections but a message in progress still gets 250 and is kept"""
    import signal
    s = Server().start()
    c = SMTPRaw(s.smtp_port)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<x@remote.test>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.org>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    try:
        socket.create_connection(("127.0.0.1", s.smtp_port), timeout=2).close()
        refused = False
    except OSError:
        refused = True
    assert refused, "still accepting after SIGTERM"
    c.send(b"Subject: last one\r\n\r\nfinished during shutdown\r\n.\r\n")
    assert c.reply()[0] == 250
    # with the transaction done the session goes: 421 at once, or 221 to a quick QUIT
    c.send(b"QUIT\r\n")
    assert c.reply()[0] in (221, 421)
    assert s.stop() == 0
    got = s.messages("alice@example.org")
    assert len(got) == 1 and b"finished during shutdown" in got[0]


def connect_from(addr, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((addr, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def test_connections_per_address_are_capped():
    """smtp: past ThreadsPerIP connections from one address get 421; 127.0.0.1 is exempt"""
    s = Server(conf="ThreadsPerIP 2").start()
    held = [connect_from("127.0.0.2", s.smtp_port) for _ in range(2)]
    for h in held:
        assert h.recv(100).startswith(b"220")
    extra = connect_from("127.0.0.2", s.smtp_port)
    assert extra.recv(200).startswith(b"421 4.7.0"), "third connection not refused"
    local = [SMTPRaw(s.smtp_port) for _ in range(4)]
    assert all(c.greeting[0] == 220 for c in local)
    for h in held:
        h.close()
    time.sleep(0.2)
    again = connect_from("127.0.0.2", s.smtp_port)
    assert again.recv(100).startswith(b"220")
    again.close()
    extra.close()
    for c in local:
        c.close()
    assert s.stop() == 0


class Sink:
    """A tiny SMTP server on 127.0.0.1 that keeps what it receives (one
    thread, bounded): answers 250 to everything, or `code` to RCPT."""

    def __init__(self, rcpt_code=250):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]
        self.rcpt_code = rcpt_code
        self.got = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        f = conn.makefile("rb")
        conn.sendall(b"220 sink ready\r\n")
        env, data = {}, None
        while True:
            line = f.readline()
            if not line:
                break
            if data is not None:
                if line == b".\r\n":
                    self.got.append((env, b"".join(data)))
                    data = None
                    conn.sendall(b"250 ok\r\n")
                else:
                    data.append(line[1:] if line.startswith(b".") else line)
                continue
            verb = line[:4].upper()
            if verb == b"DATA":
                data = []
                conn.sendall(b"354 go\r\n")
            elif verb == b"RCPT":
                env["rcpt"] = line
                conn.sendall(b"%d rcpt\r\n" % self.rcpt_code)
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                break
            else:
                env[verb.decode()] = line
                conn.sendall(b"250 ok\r\n")
        conn.close()

    def close(self):
        self.sock.close()
        self.thread.join(10)


def test_relay_accounts_send_mail_on_to_their_host():
    """queue: a relay account sends the message on to its host over SMTP, dot-stuffed"""
    sink = Sink()
    s = Server()
    s.cli("relay", "add", "partner@example.org", "127.0.0.1:%d" % sink.port)
    s.start()
    msg = b"Subject: relayed\r\n\r\n.dot line\r\nend\r\n"
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.sendmail("x@remote.test", ["partner@example.org"], msg)
    assert wait_for(lambda: sink.got)
    env, data = sink.got[0]
    assert env["rcpt"] == b"RCPT TO:<partner@example.org>\r\n" and b"x@remote.test" in env["MAIL"]
    assert strip_received(data) == msg
    assert wait_for(lambda: [n for n in os.listdir(os.path.join(s.storage, "queue"))
                             if n.endswith(".env")] == [])
    assert s.stop() == 0
    sink.close()
