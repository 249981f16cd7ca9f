"""bench/logins.py - what a login costs: starts ./rumble (or RUMBLE_BIN) on
free loopback ports, makes a user, and times N IMAP logins in a row (a new
connection each: LOGIN, LOGOUT, as mail clients reconnect all day), once
with AuthCacheTime 0 (every login runs PBKDF2-SHA-256, 75,000 rounds) and
once with the default (3600: a login seen before is checked by a salted
SHA-256 in memory). Prints logins/s, CPU ms per login, and the ratio.

    python3 bench/logins.py [N]      (default 200)

Target (issue 12): logins no slower than Dovecot's with a password hash of
similar cost; Dovecot's auth cache is what this mirrors."""
import imaplib
import os
import subprocess
import sys
import tempfile
import time

from benchlib import ROOT, cpu_ms, free_port, make_user, wait_port

BIN = os.environ.get("RUMBLE_BIN", os.path.join(ROOT, "rumble"))


def run(n, cache):
    d = tempfile.mkdtemp(dir=os.path.join(ROOT, "build"), prefix="logins-")
    port, smtp = free_port(), free_port()
    conf = os.path.join(d, "rumble.conf")
    with open(conf, "w") as f:
        f.write("ServerName bench.example\nStorageFolder %s/data\nBindToAddress 127.0.0.1\n"
                "SMTPPort %d\nIMAP4Port %d\nEnablePOP3 0\nEnableSubmission 0\nEnableSMTPS 0\n"
                "EnablePOP3S 0\nEnableIMAPS 0\nEnableWebAdmin 0\nLogLevel warn\n"
                "AuthCacheTime %d\n" % (d, smtp, port, cache))
    make_user(BIN, conf, "u@bench.example")
    p = subprocess.Popen([BIN, "-c", conf])
    try:
        wait_port(port)
        c0, t0 = cpu_ms(p.pid), time.time()
        for _ in range(n):
            m = imaplib.IMAP4("127.0.0.1", port, timeout=30)
            m.login("u@bench.example", "secret")
            m.logout()
        took, cpu = time.time() - t0, cpu_ms(p.pid) - c0
    finally:
        p.terminate()
        p.wait(20)
        subprocess.run(["rm", "-rf", d])
    return n / took, cpu / n


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    slow = run(n, 0)
    fast = run(n, 3600)
    print("%d IMAP logins, AuthCacheTime 0:    %6.0f logins/s, %5.1f ms CPU each" % (n, slow[0], slow[1]))
    print("%d IMAP logins, AuthCacheTime 3600: %6.0f logins/s, %5.1f ms CPU each" % (n, fast[0], fast[1]))
    print("ratio: %.1fx the logins per second with the cache" % (fast[0] / slow[0]))


if __name__ == "__main__":
    main()
