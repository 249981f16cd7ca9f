"""bench/idle.py - what idle connections cost a running Rumble: starts ./rumble
on free loopback ports, opens N connections of a kind and keeps them idle,
and prints the server's RSS growth per connection.

    python3 bench/idle.py [N] [smtp|smtps|pop3|imap|imaps]     (defaults 2000 smtps)

smtps and imaps connections complete the TLS handshake and read the greeting, so the
figure includes the TLS engine. Target: <= 24 KB per idle TLS connection."""
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from benchlib import ROOT, free_port, rss_kb


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    kind = sys.argv[2] if len(sys.argv) > 2 else "smtps"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 100)), hard))
    d = tempfile.mkdtemp(dir=os.path.join(ROOT, "build"), prefix="idle-")
    ports = {k: free_port() for k in ("smtp", "smtps", "pop3", "imap", "imaps")}
    conf = os.path.join(d, "rumble.conf")
    open(conf, "w").write(
        "ServerName bench.example\nStorageFolder %s/data\nBindToAddress 127.0.0.1\n"
        "SMTPPort %d\nSMTPSPort %d\nPOP3Port %d\nIMAP4Port %d\nIMAPSPort %d\nEnableSubmission 0\n"
        "EnablePOP3S 0\nLogLevel warn\n" % (d, ports["smtp"], ports["smtps"], ports["pop3"],
                                            ports["imap"], ports["imaps"]))
    p = subprocess.Popen([os.path.join(ROOT, "rumble"), "-c", conf])
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", ports[kind]), 1).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.3)
        before = rss_kb(p.pid)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conns = []
        t0 = time.time()
        for _ in range(n):
            c = socket.create_connection(("127.0.0.1", ports[kind]), 10)
            if kind in ("smtps", "imaps"):
                c = ctx.wrap_socket(c)
            c.recv(100)  # the greeting: the session is fully set up
            conns.append(c)
        took = time.time() - t0
        time.sleep(0.5)
        after = rss_kb(p.pid)
        print("%d idle %s connections: RSS %d KB -> %d KB, %.1f KB per connection "
              "(set up at %.0f/s)" % (n, kind, before, after, (after - before) / n, n / took))
        for c in conns:
            c.close()
    finally:
        p.terminate()
        p.wait(20)


if __name__ == "__main__":
    main()
