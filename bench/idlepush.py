"""bench/idlepush.py - what idle IMAP IDLE connections cost a running Rumble in CPU:
starts a Rumble (the release build) on free loopback ports with a temporary storage
folder, opens N connections that LOGIN, SELECT INBOX and IDLE, lets them settle,
then reads the server's CPU time (utime + stime from /proc/PID/stat) before and
after SECONDS with nothing happening, and prints it. Then one message is delivered
over SMTP and the time until every connection has its "* 2 EXISTS" is printed (the
push's fan-out), and the connections still open are counted.

    python3 bench/idlepush.py [--bin PATH] [--n N] [--seconds S] [--workers W]

N defaults to 10,000, lowered to what the open-file limit allows (the bench holds
one descriptor a connection, the server one too; both raise the soft limit to the
hard one). Issue 12 item 7: 10,000 idle IDLE connections cost no CPU when nothing
happens. Before push (IDLE polled every second on a per-session timer) and after
are in docs/ARCHITECTURE.md."""
import argparse
import os
import resource
import selectors
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import ROOT, cpu_ms, free_port, make_user, rss_kb, wait_port

BATCH = 500


def fd_budget(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return min(n, hard - 200)


def read_until(conns, want, timeout):
    """Reads each socket in conns until its input holds want; the ones that
    did in time."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for c in conns:
        sel.register(c, selectors.EVENT_READ)
        bufs[c] = b""
    done, end = [], time.time() + timeout
    while bufs and time.time() < end:
        for key, _ in sel.select(timeout=1):
            c = key.fileobj
            try:
                data = c.recv(65536)
            except OSError:
                data = b""
            bufs[c] += data
            if want in bufs[c] or not data:
                if want in bufs[c]:
                    done.append(c)
                sel.unregister(c)
                del bufs[c]
    sel.close()
    return done


def open_idle(port, n):
    """n connections in IDLE on alice's INBOX, opened BATCH at a time."""
    conns = []
    login = b"a LOGIN alice@example.org secret\r\nb SELECT INBOX\r\nc IDLE\r\n"
    while len(conns) < n:
        batch = []
        for _ in range(min(BATCH, n - len(conns))):
            c = socket.create_connection(("127.0.0.1", port), 10)
            c.sendall(login)
            batch.append(c)
        ok = read_until(batch, b"+ idling", 60)
        if len(ok) != len(batch):
            raise SystemExit("only %d of %d connections reached IDLE" % (len(ok), len(batch)))
        conns += ok
    return conns


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "rel", "rumble"))
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    n = fd_budget(a.n)
    d = tempfile.mkdtemp(dir=os.path.join(ROOT, "build"), prefix="idlepush-")
    smtp, imap = free_port(), free_port()
    conf = os.path.join(d, "rumble.conf")
    with open(conf, "w") as f:
        f.write("ServerName bench.example\nStorageFolder %s/data\nBindToAddress 127.0.0.1\n"
                "SMTPPort %d\nIMAP4Port %d\nEnableIMAP4 1\nEnablePOP3 0\nEnableSubmission 0\n"
                "EnableSMTPS 0\nEnablePOP3S 0\nEnableIMAPS 0\nEnableWebAdmin 0\nLogLevel warn\n"
                "Workers %d\nAllowPlaintextAuth 1\nAuthCacheTime 3600\n"
                % (d, smtp, imap, a.workers))
    make_user(a.bin, conf, "alice@example.org")
    p = subprocess.Popen([a.bin, "-c", conf])
    conns = []
    try:
        if not wait_port(imap):
            raise SystemExit("the server did not start")
        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as c:
            c.sendmail("bob@remote.test", ["alice@example.org"], b"Subject: one\r\n\r\nx\r\n")
        t0 = time.time()
        conns = open_idle(imap, n)
        print("%d connections in IDLE on one INBOX (%d workers), set up in %.1f s, RSS %d KB"
              % (len(conns), a.workers, time.time() - t0, rss_kb(p.pid)))
        time.sleep(5)  # settle: the logins' helper threads, the committer's idle close
        c0, w0 = cpu_ms(p.pid), time.time()
        time.sleep(a.seconds)
        c1, w1 = cpu_ms(p.pid), time.time()
        print("server CPU time over %.0f s with nothing happening: %.0f ms (%.2f %% of a core)"
              % (w1 - w0, c1 - c0, (c1 - c0) / ((w1 - w0) * 10)))
        t0 = time.time()
        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as c:
            c.sendmail("bob@remote.test", ["alice@example.org"], b"Subject: two\r\n\r\ny\r\n")
        sent = time.time()
        told = read_until(conns, b"* 2 EXISTS", 60)
        print("one delivery: * 2 EXISTS at %d of %d connections, the last %.0f ms after the "
              "SMTP reply (delivery took %.0f ms)"
              % (len(told), len(conns), (time.time() - sent) * 1000, (sent - t0) * 1000))
    finally:
        for c in conns:
            c.close()
        p.terminate()
        p.wait(timeout=60)
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
