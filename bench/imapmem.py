"""bench/imapmem.py - what IMAP (and POP3, SMTP) operations cost a running Rumble in
memory: starts a Rumble on free loopback ports with a temporary storage folder and
prints RSS deltas for

  - a 50 MB message (multipart: part 1 a 50 MB base64 text/plain, part 2 a short
    text) received over SMTP, then FETCH BODYSTRUCTURE, BODY.PEEK[HEADER],
    BODY.PEEK[TEXT]<0.100>, BODY.PEEK[1], SEARCH BODY, COPY, and POP3 RETR of it,
    each by 1 and by 3 clients at once: the peak RSS (VmHWM, reset through
    /proc/PID/clear_refs before each step) minus the RSS before the step;
  - 1 and then 20 sessions with a 20,000-message INBOX selected;
  - N idle logged-in IMAP sessions with INBOX selected (KiB each), on an INBOX of
    --idle-inbox messages;
  - file descriptors per selected session.

    python3 bench/imapmem.py [--bin PATH] [--size MB] [--idle N] [--idle-inbox N]
                             [--many N] [--only big,sessions,idle or step names]

Targets (issue 11): one operation on a 50 MB message adds at most 1 MB, three at
once at most 3 MB; 20 sessions on a 20,000-message INBOX at most 2 MB more than
one; an idle session with INBOX selected at most 4 KiB. Run it against the release
build (./build.sh), not ASan. Needs root for clear_refs' peak reset (else the peak
is the process's whole-life peak and the figures are upper bounds)."""
import argparse
import base64
import imaplib
import os
import poplib
import resource
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import ROOT, free_port


def status(pid, key):
    for line in open("/proc/%d/status" % pid):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def reset_peak(pid):
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Bench:
    def __init__(self, binary, size_mb):
        self.bin = binary
        self.dir = tempfile.mkdtemp(dir=os.path.join(ROOT, "build"), prefix="imapmem-")
        self.storage = os.path.join(self.dir, "data")
        self.ports = {k: free_port() for k in ("smtp", "pop3", "imap")}
        self.conf = os.path.join(self.dir, "rumble.conf")
        with open(self.conf, "w") as f:
            f.write("ServerName bench.example\nMinPasswordLength 0\nStorageFolder %s\nBindToAddress 127.0.0.1\n"
                    "SMTPPort %d\nPOP3Port %d\nIMAP4Port %d\nEnableSubmission 0\nEnableSMTPS 0\n"
                    "EnablePOP3S 0\nEnableIMAPS 0\nEnableWebAdmin 0\nLogLevel warn\nWorkers 2\n"
                    "MessageSizeLimit %d\nAllowPlaintextAuth 1\n"
                    % (self.storage, self.ports["smtp"], self.ports["pop3"], self.ports["imap"],
                       (size_mb + 20) * 1024 * 1024))
        self.cli("domain", "add", "example.org")
        for u in ("big", "many", "idle"):
            self.cli("user", "add", "%s@example.org" % u, input="secret\n")
        self.proc = None

    def cli(self, *args, input=None):
        subprocess.run([self.bin, "-c", self.conf] + list(args), input=input, text=True,
                       check=True, capture_output=True, timeout=60)

    def start(self):
        self.proc = subprocess.Popen([self.bin, "-c", self.conf])
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.ports["imap"]), 1).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.3)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)

    def rss(self):
        return status(self.proc.pid, "VmRSS")

    def measure(self, fn, clients):
        """Runs fn in `clients` threads at once; the peak RSS growth in KB."""
        time.sleep(0.2)
        reset_peak(self.proc.pid)
        before = self.rss()
        errors = []

        def run():
            try:
                fn()
            except Exception as e:  # report, do not hide
                errors.append(e)

        ts = [threading.Thread(target=run) for _ in range(clients)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise errors[0]
        return status(self.proc.pid, "VmHWM") - before

    def imap(self, user):
        m = imaplib.IMAP4("127.0.0.1", self.ports["imap"], timeout=600)
        m.login("%s@example.org" % user, "secret")
        return m


def big_message(size_mb):
    """multipart/mixed: part 1 text/plain base64 of about size_mb MB, part 2 short text."""
    line = base64.b64encode(bytes(range(32, 89)) * 1)  # 76 characters
    lines = size_mb * 1024 * 1024 // (len(line) + 2)
    body1 = (line + b"\r\n") * lines
    return (b"From: Big Sender <big@remote.test>\r\nTo: big@example.org\r\n"
            b"Subject: a big one\r\nDate: Tue, 03 Feb 2026 10:00:00 +0100\r\n"
            b"Message-ID: <big@remote.test>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"XXbXX\"\r\n\r\n"
            b"--XXbXX\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + body1 +
            b"--XXbXX\r\nContent-Type: text/plain\r\n\r\nthe end\r\n--XXbXX--\r\n")


def drain_fetch(m, spec, items):
    typ, data = m.fetch(spec, items)
    assert typ == "OK", data
    del data


def run_big(b, size_mb, only):
    msg = big_message(size_mb)
    b.reset = True
    def smtp():
        with smtplib.SMTP("127.0.0.1", b.ports["smtp"], timeout=600) as c:
            c.sendmail("big@remote.test", ["big@example.org"], msg)
    rows = []
    rows.append(("SMTP receive of the message", b.measure(smtp, 1), None))
    m = b.imap("big")
    m.create("Copies")
    m.logout()

    def step(name, fn):
        if only and not any(o in name for o in only):
            return
        one = b.measure(fn, 1)
        three = b.measure(fn, 3)
        rows.append((name, one, three))

    def fetch(items):
        def go():
            m = b.imap("big")
            m.select("INBOX", readonly=True)
            drain_fetch(m, "1", items)
            m.logout()
        return go

    def search():
        m = b.imap("big")
        m.select("INBOX", readonly=True)
        typ, data = m.search(None, "BODY", "needle-that-is-not-there")
        assert typ == "OK", data
        m.logout()

    def copy():
        m = b.imap("big")
        m.select("INBOX", readonly=True)
        typ, data = m.copy("1", "Copies")
        assert typ == "OK", data
        m.logout()

    def pop3():
        p = poplib.POP3("127.0.0.1", b.ports["pop3"], timeout=600)
        p.user("big@example.org")
        p.pass_("secret")
        p.retr(1)
        p.quit()

    step("FETCH BODYSTRUCTURE", fetch("(BODYSTRUCTURE)"))
    step("FETCH BODY.PEEK[HEADER]", fetch("(BODY.PEEK[HEADER])"))
    step("FETCH BODY.PEEK[TEXT]<0.100>", fetch("(BODY.PEEK[TEXT]<0.100>)"))
    step("FETCH BODY.PEEK[1]", fetch("(BODY.PEEK[1])"))
    step("FETCH BODY.PEEK[]", fetch("(BODY.PEEK[])"))
    step("SEARCH BODY", search)
    step("COPY", copy)
    if not only or any("POP3" in o for o in only):
        one = b.measure(pop3, 1)  # one POP3 session per maildrop at a time
        rows.append(("POP3 RETR", one, None))
    return rows


def write_mbox(path, n):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        for i in range(n):
            f.write(b"From sender@remote.test Tue Feb  3 10:00:00 2026\n"
                    b"From: Sender %d <sender%d@remote.test>\nTo: many@example.org\n"
                    b"Subject: message number %d\nDate: Tue, 03 Feb 2026 10:00:00 +0100\n"
                    b"Message-ID: <%d@remote.test>\n\nHello, this is message %d.\n\n"
                    % (i, i, i, i, i))


def run_sessions(b, nsess, nmsg):
    """RSS with 1 and with nsess sessions selecting the nmsg-message INBOX of 'many'."""
    conns = [b.imap("many")]
    conns[0].select("INBOX")
    time.sleep(0.3)
    one = b.rss()
    fds1 = nfds(b.proc.pid)
    for _ in range(nsess - 1):
        m = b.imap("many")
        m.select("INBOX")
        conns.append(m)
    time.sleep(0.3)
    many = b.rss()
    fdsn = nfds(b.proc.pid)
    for m in conns:
        m.logout()
    return one, many, fds1, fdsn


def run_idle(b, n):
    """RSS growth per idle logged-in IMAP session with INBOX selected (the 'idle'
    user's INBOX, --idle-inbox messages); returns (KB per session, fds per session)."""
    socks = []
    first = b.imap("idle")  # the folder is loaded (once, for all sessions) before
    first.select("INBOX")
    time.sleep(0.3)
    base = b.rss()
    fds0 = nfds(b.proc.pid)

    def open_one():
        s = socket.create_connection(("127.0.0.1", b.ports["imap"]), 30)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"a LOGIN idle@example.org secret\r\nb SELECT INBOX\r\n")
        while True:
            l = f.readline()
            if not l:
                raise EOFError("closed during login/select")
            if l.startswith(b"b "):
                assert l.startswith(b"b OK"), l
                break
        return s, f

    lock = threading.Lock()

    def worker(k):
        for _ in range(k):
            c = open_one()
            with lock:
                socks.append(c)

    ts = [threading.Thread(target=worker, args=(n // 8 + (1 if i < n % 8 else 0),)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    time.sleep(1.0)
    after = b.rss()
    fdsn = nfds(b.proc.pid)
    for s, f in socks:
        s.close()
    first.logout()
    return (after - base) / n, (fdsn - fds0 - n) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "rel", "rumble"))
    ap.add_argument("--size", type=int, default=50, help="MB of the big message")
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--many", type=int, default=20000, help="messages in the shared INBOX")
    ap.add_argument("--idle-inbox", type=int, default=100, help="messages in the idle sessions' INBOX")
    ap.add_argument("--only", default="", help="comma-separated step names (substrings)")
    a = ap.parse_args()
    only = [o for o in a.only.split(",") if o]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    b = Bench(a.bin, a.size)
    write_mbox(os.path.join(b.storage, "mail", "example.org", "many", "INBOX.mbox"), a.many)
    write_mbox(os.path.join(b.storage, "mail", "example.org", "idle", "INBOX.mbox"), a.idle_inbox)
    try:
        b.start()
        print("binary: %s" % a.bin)
        print("server RSS at start: %d KB" % b.rss())
        if not only or "big" in only or any(o not in ("sessions", "idle") for o in only):
            rows = run_big(b, a.size, [o for o in only if o != "big"])
            print("\n%d MB message: peak RSS growth (KB)" % a.size)
            print("  %-34s %10s %10s" % ("operation", "1 client", "3 clients"))
            for name, one, three in rows:
                print("  %-34s %10d %10s" % (name, one, "-" if three is None else "%d" % three))
        if not only or "sessions" in only:
            one, many, fds1, fdsn = run_sessions(b, 20, a.many)
            print("\nINBOX of %d messages selected: 1 session RSS %d KB, 20 sessions %d KB "
                  "(+%d KB for 19 more); fds %d -> %d (%.1f per session beyond the socket)"
                  % (a.many, one, many, many - one, fds1, fdsn, (fdsn - fds1 - 19) / 19.0))
        if not only or "idle" in only:
            kb, fds = run_idle(b, a.idle)
            print("\n%d idle IMAP sessions with INBOX (%d messages) selected: %.2f KiB each, "
                  "%.2f fds each beyond the socket" % (a.idle, a.idle_inbox, kb, fds))
    finally:
        b.stop()


if __name__ == "__main__":
    main()
