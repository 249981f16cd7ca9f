"""bench/burst.py - does memory go back after a burst? Starts ./rumble (or
RUMBLE_BIN) on free loopback ports, opens N IMAP sessions at once (each logs
in and selects INBOX, half of them over TLS), closes them all, and prints the
server's RSS and VmSize before, at the peak, right after, and 15 s later.

    python3 bench/burst.py [N]      (default 3000)

Target (issue 11): RSS after the burst within 1 MB of RSS before it."""
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from benchlib import ROOT, free_port


def status(pid, key):
    for line in open("/proc/%d/status" % pid):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def show(label, pid):
    print("%-22s RSS %7d KB   VmSize %8d KB   threads %d" % (
        label, status(pid, "VmRSS"), status(pid, "VmSize"), status(pid, "Threads")), flush=True)


def session(port, tls):
    s = socket.create_connection(("127.0.0.1", port), 10)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"a LOGIN alice@bench.example secret\r\nb SELECT INBOX\r\n")
    for _ in range(40):
        if f.readline().startswith(b"b "):
            break
    return s, f


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    binary = os.environ.get("RUMBLE_BIN", os.path.join(ROOT, "rumble"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * n + 100)), hard))
    d = tempfile.mkdtemp(dir=os.path.join(ROOT, "build"), prefix="burst-")
    imap, imaps, smtp = free_port(), free_port(), free_port()
    conf = os.path.join(d, "rumble.conf")
    with open(conf, "w") as f:
        f.write("ServerName bench.example\nMinPasswordLength 0\nStorageFolder %s/data\nBindToAddress 127.0.0.1\n"
                "SMTPPort %d\nIMAP4Port %d\nIMAPSPort %d\nEnableSubmission 0\nEnableSMTPS 0\n"
                "EnablePOP3 0\nEnablePOP3S 0\nEnableWebAdmin 0\nLogLevel warn\n"
                "AllowPlaintextAuth 1\nThreadsPerIP 100000\n" % (d, smtp, imap, imaps))
    subprocess.run([binary, "-c", conf, "domain", "add", "bench.example"], check=True)
    subprocess.run([binary, "-c", conf, "user", "add", "alice@bench.example"], input=b"secret\n",
                   check=True)
    p = subprocess.Popen([binary, "-c", conf])
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", imap), 1).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.5)
        show("before", p.pid)
        held = [session(imaps if i % 2 else imap, i % 2) for i in range(n)]
        show("%d sessions" % n, p.pid)
        for s, f in held:
            f.close()
            s.close()
        held = None
        time.sleep(2)
        show("closed, 2 s later", p.pid)
        time.sleep(13)
        show("closed, 15 s later", p.pid)
    finally:
        p.terminate()
        p.wait(timeout=20)


if __name__ == "__main__":
    main()
