"""smoke.py - the smoke test of a release binary, for every target, on one
store that each target hands to the next.

    python3 tests/e2e/smoke.py NAME=COMMAND [NAME=COMMAND ...]

NAME is a build.sh target (x86_64, arm64, armhf, armel, mips, mipsel, win64,
win32); COMMAND runs its binary here, e.g. "qemu-mips-static build/mips/rumble"
or "/usr/lib/wine/wine64 build/win/rumble.exe". Each target in turn, on the
same storage folder:

  - --version names the target exactly (mips, not mipsel)
  - the command line adds the domain (the first target) and a user
  - SMTP plain, SMTP with STARTTLS, SMTPS and submission with AUTH (as that
    user) each deliver a message to a shared mailbox; a Lua hook (pcall in
    a coroutine) fires on each EHLO, and lua/pcall.c's probe of Lua's
    lua_State passes
  - IMAP and IMAPS read back every message, those of the targets before it
    too, with the UIDVALIDITY, UIDs, flags, keywords, INTERNALDATE and
    bytes that the target before saw; it sets a flag and a keyword and
    APPENDs a message dated 2040, which keeps its year (64-bit time_t)
  - POP3 and POP3S list the same messages, with the same UIDL and bytes

then the first target serves the store once more, as the last one left it:
the index (text, fixed-width lines) is the same for big- and little-endian,
32- and 64-bit, and Windows. Servers listen on 127.0.0.1 only and are
stopped by their pid; every wait is bounded, generously for qemu and wine.
Prints ok/FAIL per target and "N passed, N failed[, N skipped]"; a Windows
target whose wine is missing is skipped."""
import hashlib
import imaplib
import os
import poplib
import re
import shlex
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, wait_port  # noqa: E402

SHARED = "shared@example.org"
PASSWORD = "smoke secret"
START_WAIT = 240  # s: a first start under qemu makes an RSA key
IO_WAIT = 120  # s: one client operation (a PBKDF2 login under qemu is slow)
# Exactly what --version says each target is.
ARCH = {"x86_64": "linux/x86_64", "arm64": "linux/arm64", "armhf": "linux/armhf",
        "armel": "linux/armel", "mips": "linux/mips", "mipsel": "linux/mipsel",
        "win64": "windows/x86_64", "win32": "windows/x86"}
HOOK = r"""
-- pcall inside a coroutine inside the hook's own coroutine: lua/pcall.c's
-- replacements, and its probe of Lua's lua_State layout, on this target
local function onEHLO(session, name)
    local co = coroutine.create(function()
        return pcall(function() return "inner " .. name end)
    end)
    local resumed, ok, inner = coroutine.resume(co)
    local ok2, upper = pcall(string.upper, name)
    print(string.format("smoke hook fired on %s: %s %s %s %s", Rumble.serverInfo().arch,
        tostring(resumed and ok), tostring(inner), tostring(ok2), tostring(upper)))
    return true
end
Rumble.setHook(onEHLO, "smtp", "command", "helo")
"""


class Skip(Exception):
    pass


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Target:
    """One target's binary, run here through its command (qemu, wine)."""

    def __init__(self, name, command, top):
        self.name, self.top = name, top
        self.cmd = shlex.split(command)
        self.cmd[-1] = os.path.join(ROOT, self.cmd[-1])
        self.windows = name.startswith("win")
        self.env = dict(os.environ)
        if self.windows:
            if not os.path.exists(self.cmd[0]):
                raise Skip("no %s (32-bit wine)" % self.cmd[0])
            self.env.update(WINEDEBUG="-all", WINEPREFIX=os.path.join(top, "wineprefix"))
        self.proc = None

    def path(self, p):
        """p as this target's binary names it (Z:\\... under wine)."""
        return "Z:" + p.replace("/", "\\") if self.windows else p

    def run(self, *args, stdin=None):
        r = subprocess.run(self.cmd + list(args), input=stdin, capture_output=True,
                           env=self.env, timeout=IO_WAIT * 2)
        return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")

    def cli(self, conf, *args, stdin=None):
        rc, out = self.run("-c", self.path(conf), *args, stdin=stdin)
        assert rc == 0, "rumble %s: exit %d: %s" % (" ".join(args), rc, out)
        return out

    def start(self, conf, log):
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(self.cmd + ["-c", self.path(conf)], stdout=self.log,
                                     stderr=self.log, env=self.env)

    def stop(self):
        """Stops the server by its pid: SIGTERM (qemu passes it on), SIGKILL
        under wine. Returns the exit code."""
        if not self.proc:
            return None
        p, self.proc = self.proc, None
        if self.windows:
            p.kill()
        else:
            p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=IO_WAIT)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait(timeout=30)
        if self.windows:
            subprocess.run(["/usr/lib/wine/wineserver", "-k"], env=self.env, timeout=60)
        self.log.close()
        return rc


class Store:
    """The storage folder the targets share, and what the last one saw."""

    def __init__(self, top):
        self.top = top
        self.data = os.path.join(top, "data")
        self.uidvalidity = None
        self.seen = {}  # uid -> (flags, internaldate, sha256 of the message)
        self.uidl = {}  # POP3 UIDL -> sha256 of the message
        self.hook = os.path.join(top, "hook.lua")
        with open(self.hook, "w") as f:
            f.write(HOOK)


def config(t, store, ports):
    lines = ["ServerName smoke.example", "StorageFolder " + t.path(store.data),
             "BindToAddress 127.0.0.1", "LogLevel info", "Workers 2", "EnableWebAdmin 0",
             "EnableManageSieve 0",
             "LoadScript " + t.path(store.hook)]
    names = {"smtp": "SMTPPort", "submission": "SubmissionPort", "smtps": "SMTPSPort",
             "pop3": "POP3Port", "pop3s": "POP3SPort", "imap": "IMAP4Port", "imaps": "IMAPSPort"}
    lines += ["%s %d" % (names[k], p) for k, p in ports.items()]
    if not t.windows and os.geteuid() == 0:
        lines.append("RunAs nobody")  # getpwnam in a static binary
    conf = os.path.join(store.top, "rumble-%s.conf" % t.name)
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    return conf


def message(t, kind):
    return ("From: someone@remote.test\r\nTo: %s\r\nSubject: smoke %s %s\r\n"
            "Message-ID: <%s.%s@smoke.example>\r\n\r\nSent over %s to the %s binary.\r\n"
            "From here on a line that mboxrd quotes.\r\n>From and one quoted already.\r\n"
            "%s\r\n" % (SHARED, t.name, kind, kind, t.name, kind, t.name, "x" * 900)).encode()


def send_all(t, ports):
    """The four ways in: plain, STARTTLS, SMTPS, submission with AUTH."""
    ctx = tls_context()
    with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=IO_WAIT) as c:
        c.sendmail("someone@remote.test", [SHARED], message(t, "smtp"))
    with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=IO_WAIT) as c:
        c.starttls(context=ctx)
        c.sendmail("someone@remote.test", [SHARED], message(t, "starttls"))
    with smtplib.SMTP_SSL("127.0.0.1", ports["smtps"], timeout=IO_WAIT, context=ctx) as c:
        c.sendmail("someone@remote.test", [SHARED], message(t, "smtps"))
    with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=IO_WAIT) as c:
        c.starttls(context=ctx)
        c.login("%s@example.org" % t.name, PASSWORD)
        c.sendmail("%s@example.org" % t.name, [SHARED], message(t, "submission"))


def imap_state(m):
    """(UIDVALIDITY, {uid: (flags, internaldate, sha256)}) of the INBOX."""
    typ, data = m.select("INBOX")
    assert typ == "OK", data
    uidvalidity = int(m.untagged_responses["UIDVALIDITY"][0])
    typ, data = m.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
    assert typ == "OK", data
    out = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        head = item[0].decode()
        uid = int(re.search(r"UID (\d+)", head).group(1))
        flags = " ".join(sorted(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()))
        date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
        out[uid] = (flags, date, hashlib.sha256(item[1]).hexdigest())
    return uidvalidity, out


def check_imap(t, store, ports):
    """Every message the targets before saw, as they saw it; then this
    target's flags, keyword and message dated 2040."""
    m = imaplib.IMAP4("127.0.0.1", ports["imap"], timeout=IO_WAIT)
    m.login(SHARED, PASSWORD)
    uidvalidity, now = imap_state(m)
    if store.uidvalidity is not None:
        assert uidvalidity == store.uidvalidity, "UIDVALIDITY changed: the index was rebuilt"
    for uid, was in store.seen.items():
        assert now.get(uid) == was, "uid %d was %r, now %r" % (uid, was, now.get(uid))
    mine = sorted(set(now) - set(store.seen))
    assert len(mine) == 4, "expected this target's 4 messages, got uids %r" % mine
    typ, data = m.uid("STORE", str(mine[0]), "+FLAGS", "(\\Flagged smoke_%s)" % t.name)
    assert typ == "OK", data
    msg = message(t, "append dated 2040")
    typ, data = m.append("INBOX", "(\\Seen)", '"01-Feb-2040 12:34:56 +0000"', msg)
    assert typ == "OK", data
    uidvalidity, now = imap_state(m)
    dated = [v for u, v in now.items() if u not in store.seen and u not in mine]
    assert len(dated) == 1 and dated[0][1] == "01-Feb-2040 12:34:56 +0000", dated
    m.logout()
    store.uidvalidity, store.seen = uidvalidity, now


def check_imaps(t, store, ports):
    m = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=tls_context(),
                          timeout=IO_WAIT)
    m.login(SHARED, PASSWORD)
    assert imap_state(m) == (store.uidvalidity, store.seen), "IMAPS sees another mailbox"
    m.logout()


def pop3_state(c):
    """{UIDL: sha256} of the maildrop."""
    c.user(SHARED)
    c.pass_(PASSWORD)
    out = {}
    for line in c.uidl()[1]:
        n, uidl = line.decode().split()
        body = b"".join(l + b"\r\n" for l in c.retr(int(n))[1])
        out[uidl] = hashlib.sha256(body).hexdigest()
    c.quit()
    return out


def check_pop3(t, store, ports):
    now = pop3_state(poplib.POP3("127.0.0.1", ports["pop3"], timeout=IO_WAIT))
    for uidl, was in store.uidl.items():
        assert now.get(uidl) == was, "UIDL %s was %s, now %s" % (uidl, was, now.get(uidl))
    assert len(now) == len(store.seen), "POP3 has %d messages, IMAP %d" % (
        len(now), len(store.seen))
    c = poplib.POP3_SSL("127.0.0.1", ports["pop3s"], timeout=IO_WAIT, context=tls_context())
    assert pop3_state(c) == now, "POP3S sees another maildrop"
    store.uidl = now


def check_log(t, log):
    with open(log, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    want = "smoke hook fired on %s: true inner " % ARCH[t.name].split("/")[1]
    assert text.count(want) >= 4, "the Lua hook did not fire on every EHLO:\n" + text[-3000:]
    assert "is not the 5.1.5 Rumble was built for" not in text, text[-3000:]
    assert "script error" not in text, text[-3000:]


def smoke(t, store, first):
    rc, out = t.run("--version")
    assert rc == 0 and "(%s)" % ARCH[t.name] in out, "--version says %r" % out
    ports = {k: free_port() for k in ("smtp", "submission", "smtps", "pop3", "pop3s",
                                      "imap", "imaps")}
    conf = config(t, store, ports)
    if first:
        t.cli(conf, "domain", "add", "example.org")
        t.cli(conf, "user", "add", SHARED, stdin=(PASSWORD + "\n").encode())
    me = "%s@example.org" % t.name
    if me not in t.cli(conf, "user", "list", "example.org"):  # not when it comes again
        t.cli(conf, "user", "add", me, stdin=(PASSWORD + "\n").encode())
    log = os.path.join(store.top, "rumble-%s.log" % t.name)
    t.start(conf, log)
    try:
        for p in ports.values():
            assert wait_port(p, START_WAIT), "port %d did not open" % p
        send_all(t, ports)
        check_imap(t, store, ports)
        check_imaps(t, store, ports)
        check_pop3(t, store, ports)
    finally:
        rc = t.stop()
    assert t.windows or rc == 0, "the server exited %s on SIGTERM" % rc
    check_log(t, log)


def main(argv):
    targets = [a.split("=", 1) for a in argv]
    if not targets or any(len(t) != 2 for t in targets):
        print(__doc__)
        return 2
    targets.append(targets[0])  # the first reads what the last wrote
    top = tempfile.mkdtemp(prefix="rumble-smoke-", dir="/tmp")
    os.chmod(top, 0o755)  # RunAs nobody must reach the store
    store = Store(top)
    passed = failed = skipped = 0
    for i, (name, command) in enumerate(targets):
        title = "%s (%s)" % (name, command) + (": again, last" if i and i == len(targets) - 1 else "")
        t0 = time.time()
        try:
            t = Target(name, command, top)
            smoke(t, store, i == 0)
            passed += 1
            print("ok   smoke %s (%.1fs)" % (title, time.time() - t0), flush=True)
        except Skip as e:
            skipped += 1
            print("skip smoke %s: %s" % (title, e), flush=True)
        except Exception:
            failed += 1
            print("FAIL smoke %s\n%s" % (title, traceback.format_exc()), flush=True)
    if failed == 0 and not os.environ.get("RUMBLE_SMOKE_KEEP"):
        shutil.rmtree(top, ignore_errors=True)
    else:
        print("the store and logs are in " + top, flush=True)
    print("%d passed, %d failed%s" % (passed, failed, ", %d skipped" % skipped if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
