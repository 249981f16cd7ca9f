"""bench/imapscale.py - what one IMAP command costs as a folder grows:
starts ./rumble (or RUMBLE_BIN) on free loopback ports, fills INBOX with
N messages (an mbox written directly, indexed at the first open: fast),
then times, per size, the median of several runs of: SELECT (warm: the
folder is open in another session), NOOP, UID FETCH of one message's
FLAGS, FETCH 1:* (FLAGS), STORE of one flag, APPEND of a small message,
STATUS (MESSAGES UNSEEN), and a QRESYNC resync after 10 flag changes.

    python3 bench/imapscale.py [N ...]      (default 1000 10000 100000)

Targets (issue 12): cost per command independent of folder size; SELECT
of 100,000 messages < 50 ms warm, FETCH 1:* (FLAGS) < 150 ms, QRESYNC
resync with 10 changes < 5 ms. With Dovecot installed (dovecot-imapd),
the same run against it on its own port and folder is printed beside."""
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import ROOT, free_port, make_user, wait_port

BIN = os.environ.get("RUMBLE_BIN", os.path.join(ROOT, "rumble"))
RUNS = 7


class Client:
    """A raw client that reads an answer as one block (no per-line work:
    FETCH 1:* of 100,000 messages is timed, not Python)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), 600)  # a cold index can take long
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.n = 0
        data = b""
        while b"\r\n" not in data:
            data += self.s.recv(4096)

    def cmd(self, text, literal=None):
        self.n += 1
        tag = b"t%d" % self.n
        if literal is not None:
            self.s.sendall(tag + b" " + text + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        else:
            self.s.sendall(tag + b" " + text + b"\r\n")
        chunks, end, tail = [], b"\r\n" + tag + b" ", b"\r\n"
        while True:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise EOFError(text)
            chunks.append(chunk)
            tail = (tail + chunk)[-8192:]
            i = tail.find(end)
            if i >= 0 and tail.endswith(b"\r\n") and tail.find(b"\r\n", i + 2) >= 0:
                break
        data = b"\r\n" + b"".join(chunks)
        last = data[data.rfind(end) + 2:]
        data = data[2:]
        if not last.startswith(tag + b" OK"):
            raise RuntimeError(last[:200])
        return data.split(b"\r\n")


def timed(fn):
    t = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        fn()
        t.append((time.perf_counter() - t0) * 1000)
    return statistics.median(t)


def message(i):
    return ("From: a@example.org\nTo: u@bench.example\nSubject: message %d\n"
            "Date: Mon, 5 Jan 2026 10:00:00 +0000\nMessage-ID: <%d@bench>\n\nbody %d\n"
            % (i, i, i)).encode()


def mbox(n):
    return b"".join(b"From bench@example.org Mon Jan  5 10:00:00 2026\n" + message(i) + b"\n"
                    for i in range(n))


def measure(port, n, login):
    keep = Client(port)  # keeps the folder open, as a phone in IDLE would
    keep.cmd(login)
    t0 = time.perf_counter()
    keep.cmd(b"SELECT INBOX")
    cold = (time.perf_counter() - t0) * 1000
    c = Client(port)
    c.cmd(login)
    c.cmd(b"ENABLE QRESYNC")
    r = {"SELECT cold": cold, "SELECT warm": timed(lambda: c.cmd(b"SELECT INBOX"))}
    r["NOOP"] = timed(lambda: c.cmd(b"NOOP"))
    r["UID FETCH 1 (FLAGS)"] = timed(lambda: c.cmd(b"UID FETCH %d (FLAGS)" % (n // 2)))
    r["FETCH 1:* (FLAGS)"] = timed(lambda: c.cmd(b"FETCH 1:* (FLAGS)"))
    r["STORE 1"] = timed(lambda: c.cmd(b"STORE %d +FLAGS.SILENT (\\Seen)" % (n // 3)))
    small = b"Subject: appended\r\n\r\nx\r\n"
    r["APPEND"] = timed(lambda: c.cmd(b"APPEND INBOX", small))
    r["STATUS"] = timed(lambda: c.cmd(b"STATUS INBOX (MESSAGES UNSEEN)"))
    sel = c.cmd(b"SELECT INBOX")
    uv = int(re.search(rb"UIDVALIDITY (\d+)", b" ".join(sel)).group(1))
    hm = int(re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(sel)).group(1))
    c.cmd(b"UNSELECT")
    for k in range(10):
        keep.cmd(b"STORE %d +FLAGS.SILENT (\\Flagged)" % (k * (n // 10) + 1))
    r["QRESYNC 10 changes"] = timed(lambda: c.cmd(b"SELECT INBOX (QRESYNC (%d %d))" % (uv, hm)))
    return r


def measured(cmd, port, n):
    """measure() of the server that cmd starts on port, stopped after."""
    p = subprocess.Popen(cmd)
    try:
        wait_port(port)
        return measure(port, n, b"LOGIN u@bench.example secret")
    finally:
        p.terminate()
        p.wait(60)


def rumble_run(sizes):
    out = {}
    for n in sizes:
        d = tempfile.mkdtemp(dir=os.path.join(ROOT, "build"), prefix="imapscale-")
        port, smtp = free_port(), free_port()
        conf = os.path.join(d, "rumble.conf")
        with open(conf, "w") as f:
            f.write("ServerName bench.example\nStorageFolder %s/data\nBindToAddress 127.0.0.1\n"
                    "SMTPPort %d\nIMAP4Port %d\nEnablePOP3 0\nEnableSubmission 0\n"
                    "EnableSMTPS 0\nEnablePOP3S 0\nEnableIMAPS 0\nEnableWebAdmin 0\n"
                    "LogLevel warn\nAllowPlaintextAuth 1\n" % (d, smtp, port))
        make_user(BIN, conf, "u@bench.example")
        home = os.path.join(d, "data", "mail", "bench.example", "u")
        os.makedirs(home, exist_ok=True)
        with open(os.path.join(home, "INBOX.mbox"), "wb") as f:
            f.write(mbox(n))
        out[n] = measured([BIN, "-c", conf], port, n)
    return out


DOVECOT_CONF = """instance_name = imapscale-%(port)d
base_dir = %(d)s/run
state_dir = %(d)s/state
log_path = %(d)s/dovecot.log
default_login_user = %(login)s
default_internal_user = %(internal)s
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_cache_size = 10M
auth_cache_ttl = 1 hour
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = %(d)s/passwd
}
userdb {
  driver = static
  args = uid=%(uid)d gid=%(gid)d home=%(d)s/home/%%u
}
protocol imap {
  mail_max_userip_connections = 1000
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %(port)d
  }
  inet_listener imaps {
    port = 0
  }
  service_count = 0
}
service imap {
  service_count = 100
}
service auth {
  client_limit = 2000
}
"""


def dovecot_run(sizes, binary):
    """The same measures against Debian's Dovecot (maildir, its own
    performance settings, a plain password: logins are not timed)."""
    import pwd
    root = os.getuid() == 0
    user = pwd.getpwnam("nobody" if root else pwd.getpwuid(os.getuid()).pw_name)
    out = {}
    for n in sizes:
        d = tempfile.mkdtemp(dir=os.path.join(ROOT, "build"), prefix="imapscale-dovecot-")
        port = free_port()
        for sub in ("run", "state"):
            os.makedirs(os.path.join(d, sub))
        os.chmod(d, 0o755)  # the auth and mail processes run as other users
        with open(os.path.join(d, "passwd"), "w") as f:
            f.write("u@bench.example:{PLAIN}secret\n")
        os.chmod(os.path.join(d, "passwd"), 0o644)
        md = os.path.join(d, "home", "u@bench.example", "Maildir")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, sub))
        for i in range(n):
            with open(os.path.join(md, "cur", "%d.%d.bench:2," % (1700000000 + i, i)), "wb") as f:
                f.write(message(i))
        hour_ago = time.time() - 3600  # a folder changed in the last seconds is rescanned
        for sub in ("cur", "new", "tmp", ""):
            os.utime(os.path.join(md, sub), (hour_ago, hour_ago))
        if root:
            for dirpath, _, files in os.walk(os.path.join(d, "home")):
                os.chown(dirpath, user.pw_uid, user.pw_gid)
                for x in files:
                    os.chown(os.path.join(dirpath, x), user.pw_uid, user.pw_gid)
        with open(os.path.join(d, "dovecot.conf"), "w") as f:
            f.write(DOVECOT_CONF % {"d": d, "port": port, "uid": user.pw_uid, "gid": user.pw_gid,
                                    "login": "dovenull" if root else user.pw_name,
                                    "internal": "dovecot" if root else user.pw_name})
        out[n] = measured([binary, "-F", "-c", os.path.join(d, "dovecot.conf")], port, n)
    return out


def table(title, sizes, res):
    names = list(next(iter(res.values())))
    print("%s\n%-22s" % (title, "ms (median of %d)" % RUNS) + "".join("%12d" % n for n in sizes))
    for k in names:
        print("%-22s" % k + "".join("%12.2f" % res[n][k] for n in sizes))


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000, 100000]
    res = rumble_run(sizes)
    table("Rumble", sizes, res)
    dovecot = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot")
                                          else None)
    if not dovecot:
        print("Dovecot is not installed (apt-get install dovecot-imapd): Rumble alone")
        return
    dres = dovecot_run(sizes, dovecot)
    table("\nDovecot (maildir)", sizes, dres)
    print("\nDovecot / Rumble (above 1: Rumble is faster)")
    for k in res[sizes[0]]:
        print("%-22s" % k + "".join("%12.1f" % (dres[n][k] / max(res[n][k], 0.001))
                                    for n in sizes))


if __name__ == "__main__":
    main()
