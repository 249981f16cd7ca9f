"""Queue administration (`rumble queue ...`, the web admin's queue page) and
the pid file (`PidFile`, `rumble stop`, `rumble reload`) against a running
server, with the fake DNS and SMTP sinks of test_outbound.py."""
import os
import re
import subprocess
import time

from harness import BIN, Server, free_port, strip_received, wait_port
from test_outbound import MSG, ZONE, FakeDNS, Sink, dsn_of, send, wait_for
from test_webadmin import Browser


def deferred_server(sink_port, extra=""):
    """A server whose retries are an hour apart: only a flush sends again."""
    dns = FakeDNS(ZONE)
    s = Server(conf="DNSServer 127.0.0.1:%d\nOutboundPort %d\nRetryInterval 3600\n"
                    "MaxRetryInterval 3600\nOutboundTimeout 10\n%s" % (dns.port, sink_port, extra))
    return dns, s.start()


def queued(s):
    """The rows of `rumble queue list` (header left out), as field lists."""
    out = s.cli("queue", "list").stdout.splitlines()
    assert out[0].startswith("ID\tAGE\tFROM\tTO"), out
    return [l.split("\t") for l in out[1:]]


def one_deferred(s):
    """Sends MSG to bob@remote.test (its MX down) and waits until it is deferred."""
    send(s, ["bob@remote.test"], MSG)
    assert wait_for(lambda: "deferred to=<bob@remote.test>" in s.stderr()), s.stderr()
    rows = queued(s)
    assert len(rows) == 1, rows
    return rows[0][0]


def test_deferred_message_is_listed_with_its_reason_and_flush_sends_it_at_once():
    """queue: list shows a deferral's reason; flush ID delivers at once once the MX is up"""
    port = free_port()
    dns, s = deferred_server(port)
    sink = None
    try:
        qid = one_deferred(s)
        row = queued(s)[0]
        assert row[2] == "<alice@example.org>" and row[3] == "bob@remote.test", row
        assert row[4] == "1" and row[5] != "now", row  # one attempt, the next in an hour
        assert "connect to mx1.remote.test[127.0.0.1]" in row[6], row
        log = s.stderr()
        assert re.search(qid + r' deferred to=<bob@remote.test> reason="connect to', log), log
        sink = Sink(port=port)
        r = s.cli("queue", "flush", qid)
        assert "flushed" in r.stdout, r.stdout
        assert wait_for(lambda: sink.got, 5), s.stderr()
        assert strip_received(sink.got[0][2]) == MSG
        assert wait_for(lambda: queued(s) == [], 5)
        assert re.search(qid + r' flush by="[^",]+, command line, pid \d+"', s.stderr())
        assert s.stop() == 0
    finally:
        if sink:
            sink.stop()
        dns.stop()


def test_delete_removes_a_message_that_is_never_delivered():
    """queue: delete ID removes the entry while the server runs; a later flush sends nothing"""
    port = free_port()
    dns, s = deferred_server(port)
    sink = None
    try:
        qid = one_deferred(s)
        r = s.cli("queue", "delete", qid)
        assert r.stdout.strip() == qid + " deleted", r.stdout
        assert queued(s) == []
        assert re.search(qid + r' deleted by="[^",]+, command line', s.stderr())
        sink = Sink(port=port)
        s.cli("queue", "flush")
        time.sleep(2)
        assert sink.got == [] and s.messages("alice@example.org") == []
        assert s.stop() == 0
    finally:
        if sink:
            sink.stop()
        dns.stop()


def test_bounce_returns_the_message_to_the_local_sender_with_the_last_reply():
    """queue: bounce ID sends the sender a DSN with the last reply, as an expiry would"""
    sink = Sink(data_replies=["451 4.7.1 greylisted"] * 100)
    dns, s = deferred_server(sink.port)
    try:
        qid = one_deferred(s)
        r = s.cli("queue", "bounce", qid)
        assert r.stdout.strip() == qid + " bounced", r.stdout
        assert wait_for(lambda: s.messages("alice@example.org"), 5), s.stderr()
        _, human, status, headers = dsn_of(s.messages("alice@example.org")[0])
        assert "Action: failed" in status and "Status: 4.7.1" in status, status
        assert "451 4.7.1 greylisted" in status and "returned by the postmaster" in status
        assert "X-Rumble-Queue-ID: " + qid in status
        assert "Subject: outbound" in headers
        assert queued(s) == []
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


def test_show_prints_the_envelope_and_the_header_and_bad_ids_fail():
    """queue: show ID prints the envelope and the header; bad or unknown ids: one line, exit 1"""
    port = free_port()
    dns, s = deferred_server(port)
    try:
        qid = one_deferred(s)
        out = s.cli("queue", "show", qid).stdout
        assert "id " + qid + "\n" in out and "from alice@example.org\n" in out, out
        assert "rcpt bob@remote.test\nlast connect to" in out and "attempts 1\n" in out, out
        assert "Subject: outbound" in out and "a line with a dot" not in out, out
        for args in (("show", "zzz"), ("delete", "0123456789abcdef"), ("bounce", qid + "0"),
                     ("flush", "nothex"), ("delete",), ("frobnicate", qid)):
            r = s.cli("queue", *args, check=False)
            assert r.returncode != 0 and r.stdout == "", (args, r)
            assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert len(queued(s)) == 1
        assert s.stop() == 0
        # no server: delete works on the folder itself
        r = s.cli("queue", "delete", qid)
        assert r.stdout.strip() == qid + " deleted" and queued(s) == [], r
    finally:
        dns.stop()


def test_mx_lookup_failure_is_logged_with_the_queue_id():
    """queue: a DNS failure when looking up the MX is one log line with the queue id"""
    dead = free_port()  # no DNS server there: the lookup fails, temporarily
    s = Server(conf="DNSServer 127.0.0.1:%d\nRetryInterval 3600\nMaxRetryInterval 3600\n" % dead)
    s.start()
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: "deferred to=<bob@remote.test>" in s.stderr(), 40), s.stderr()
        qid = queued(s)[0][0]
        assert re.search(qid + r' domain=remote.test status=deferred reply="remote.test: ',
                         s.stderr()), s.stderr()
        assert s.stop() == 0
    finally:
        s.stop()


def test_web_admin_shows_the_reason_and_flushes_and_deletes():
    """queue: the web admin's queue page shows the reason; Retry now delivers, Delete removes"""
    port, web = free_port(), free_port()
    dns, s = deferred_server(port, "EnableWebAdmin 1\nWebAdminPort %d\nWebAdmin alice@example.org\n"
                             % web)
    sink = None
    try:
        assert wait_port(web)
        qid = one_deferred(s)
        b = Browser(web)
        st, _, _ = b.login()
        assert st == 303
        html = b.page("/queue")
        assert qid in html and "connect to mx1.remote.test[127.0.0.1]" in html, html
        sink = Sink(port=port)
        st, _, html = b.post("/queue/flush", {"id": qid}, page="/queue")
        assert st == 200 and "delivery started" in html, html
        assert wait_for(lambda: sink.got, 5), s.stderr()
        assert re.search(qid + r' flush by="web admin alice@example.org"', s.stderr())
        sink.stop()
        sink = None
        qid2 = one_deferred(s)
        st, _, html = b.post("/queue/delete", {"id": qid2}, page="/queue")
        assert st == 200 and "Yes, delete" in html and queued(s) != []  # asks first
        st, _, html = b.post("/queue/delete", {"id": qid2, "confirm": "yes"}, page="/queue")
        assert st == 200 and "deleted." in html, html
        assert wait_for(lambda: queued(s) == [], 5)
        st, _, html = b.post("/queue/bounce", {"id": "0123456789abcdef", "confirm": "yes"},
                             page="/queue")
        assert st == 400 and "no such message" in html, html
        assert s.stop() == 0
    finally:
        if sink:
            sink.stop()
        dns.stop()


# ---- the pid file ----

def pid_file(s):
    return os.path.join(s.storage, "rumble.pid")


def test_stop_and_reload_use_the_pid_file():
    """pid file: written at start; rumble reload reloads, rumble stop stops and the file goes"""
    s = Server().start()
    try:
        assert wait_for(lambda: os.path.exists(pid_file(s)), 5)
        assert open(pid_file(s)).read() == "%d\n" % s.proc.pid
        r = s.cli("reload")
        assert r.stdout.strip() == "reload requested (pid %d)" % s.proc.pid, r
        assert wait_for(lambda: "reload: re-reading domains and accounts" in s.stderr(), 5)
        r = s.cli("stop")
        assert r.stdout.strip() == "stopped (pid %d)" % s.proc.pid, r
        assert s.proc.wait(timeout=10) == 0
        assert not os.path.exists(pid_file(s))
        for verb in ("stop", "reload"):
            r = s.cli(verb, check=False)
            assert r.returncode == 1 and "no server runs" in r.stderr, r
    finally:
        s.stop()


def test_a_stale_pid_file_is_replaced_and_a_live_one_refused():
    """pid file: a stale one (process gone, or a number another program has now) is replaced; a live server's stops a second start"""
    gone = subprocess.Popen(["true"])
    gone.wait()
    s = Server(conf="PidFile %s\n" % "PLACEHOLDER")
    path = os.path.join(s.dir, "server.pid")
    with open(s.conf) as f:
        text = f.read().replace("PLACEHOLDER", path)
    with open(s.conf, "w") as f:
        f.write(text)
    with open(path, "w") as f:
        f.write("%d\n" % gone.pid)
    r = s.cli("stop", check=False)
    assert r.returncode == 1 and "is stale" in r.stderr, r
    s.start()
    try:
        assert wait_for(lambda: open(path).read() == "%d\n" % s.proc.pid, 5)
        assert "replacing a stale one (pid %d no longer runs it)" % gone.pid in s.stderr()
        # a second server with the same pid file (on other ports) does not start
        conf2 = os.path.join(s.dir, "second.conf")
        with open(conf2, "w") as f:
            f.write(text.replace("SMTPPort %d" % s.smtp_port, "SMTPPort %d" % free_port()))
        r = subprocess.run([BIN, "-c", conf2], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "a server runs already (pid %d)" % s.proc.pid in r.stderr, r
        assert open(path).read() == "%d\n" % s.proc.pid
        assert s.cli("stop").returncode == 0
        assert s.proc.wait(timeout=10) == 0 and not os.path.exists(path)
        s.stop()
        # after a reboot the number may be another program's: only the lock counts
        with open(path, "w") as f:
            f.write("%d\n" % os.getpid())
        r = s.cli("reload", check=False)
        assert r.returncode == 1 and "is stale" in r.stderr, r
        s.start()
        assert wait_for(lambda: open(path).read() == "%d\n" % s.proc.pid, 5), s.stderr()
        assert s.cli("stop").returncode == 0
    finally:
        s.stop()
