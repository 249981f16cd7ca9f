#!/usr/bin/env python3
"""luafuzz.py - fuzzes Rumble's Lua API in a real server (issue 10).

Starts one server (by default the ASan+UBSan build, build/asan/rumble) on
127.0.0.1 with free ports, a temporary storage folder, small
LuaInstructionLimit/LuaMemoryLimit, a DNS server of its own and a TCP
server that never answers; as root the server drops to nobody (RunAs), so
that a script's os.remove can only touch the server's folder. Then for
each seed:

  1. writes a random script (luagen.py) into the LoadScript file and a
     random SMTPScript, and sends SIGHUP (a reload, not a restart);
  2. drives a batch of client sessions at once (SMTP with mail to a
     mailbox and to a "mod" account, so that the mailman feed hook runs;
     POP3 and IMAP logins, so that mail_user_created runs; the services
     the script creates), some pipelined, some cut off;
  3. checks that the process lives, that its stderr has no sanitizer
     report, that it still answers SMTP and ends a POP3 login (two SMTP
     clients and a POP3 one at once); samples its RSS.

A finding (the process died, a sanitizer report, a hang: no answer within
PROBE_TIMEOUT + HANG_AFTER seconds) is saved in the findings folder
(scripts, configuration, the log's tail; for a hang the threads' stacks,
for an exit without a report the stack where it exits, from a rerun under
gdb) and the server is started again. An answer that only comes after
PROBE_TIMEOUT is "slow": counted, not a finding. At the end the server
must stop on SIGTERM with exit code 0, and LeakSanitizer must have nothing
to say.

  python3 tests/luafuzz.py --seeds 1-200          a fixed range of seeds
  python3 tests/luafuzz.py --duration 1800        seeds from --start on, 30 minutes
  python3 tests/luafuzz.py --seed 1234 --keep     one seed, keep the server's folder
  python3 tests/luafuzz.py --script repro.lua     a script of one's own (a reproducer)
  --skip exit,debug     leave out classes of harmful statements (luagen.CLASSES)
  --open                leave out the classes of open findings (OPEN below)

Prints one line per 50 scripts and a summary: scripts, sessions, scripts/s,
sessions/s, RSS at start (after warm-up), at the end and its maximum, and
the findings. Exit status 1 when there was a finding.
"""
import argparse
import json
import os
import random
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "e2e"))
import luagen  # noqa: E402
from harness import ROOT, free_port, wait_port  # noqa: E402

# Classes of luagen.py whose findings are still open (the fuzz driver's report
# lists them, with a reproducer each): --open leaves them out, so that the short
# run in tests/e2e/test_luafuzz.py passes and a long run finds the unknown ones.
# Take a class out of here once its fix lands.
OPEN = {
}

SANITIZER = ("ERROR: AddressSanitizer", "hard rss limit exhausted", "runtime error:",
             "LeakSanitizer", "AddressSanitizer:DEADLYSIGNAL", "ERROR: UndefinedBehaviorSanitizer",
             "==ABORTING")
READY = "lua: state for start-up -1 ready"
PROBE_TIMEOUT = 10.0  # a server that does not answer SMTP in this long is slow...
HANG_AFTER = 50       # ...and hangs if it still does not this long after
RELOAD_TIMEOUT = 20.0


# ---- a DNS server for the scripts' lookups ----

class FakeDNS:
    """Answers on 127.0.0.1: names under fuzz.test have an MX
    (mail.fuzz.test), A 127.0.0.1 and a TXT; names under slow.fuzz.test
    are answered after a second; everything else is NXDOMAIN. Hand-made
    packets: no dnslib needed."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @staticmethod
    def name(n):
        return b"".join(bytes([len(p)]) + p for p in n.encode().split(b".") if p) + b"\0"

    def answer(self, q):
        if len(q) < 12:
            return None
        i, labels = 12, []
        while i < len(q) and q[i]:
            if q[i] & 0xC0:
                return None
            labels.append(q[i + 1:i + 1 + q[i]])
            i += 1 + q[i]
        i += 1
        if i + 4 > len(q):
            return None
        qtype = struct.unpack(">H", q[i:i + 2])[0]
        name = b".".join(labels).decode("latin-1").lower()
        rdata = None
        if name == "fuzz.test" or name.endswith(".fuzz.test"):
            if qtype == 15:
                rdata = struct.pack(">H", 10) + self.name("mail.fuzz.test")
            elif qtype == 1:
                rdata = bytes([127, 0, 0, 1])
            elif qtype == 16:
                rdata = b"\x0bv=spf1 -all"
        rcode = 0 if rdata is not None or name.endswith("fuzz.test") else 3
        head = q[:2] + struct.pack(">HHHHH", 0x8180 | rcode, 1, 1 if rdata else 0, 0, 0)
        out = head + q[12:i + 4]
        if rdata is not None:
            out += b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 60, len(rdata)) + rdata
        return out, name.endswith("slow.fuzz.test")

    def serve(self):
        while not self.stopping:
            try:
                q, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            a = self.answer(q)
            if not a:
                continue
            pkt, slow = a
            if slow:
                threading.Timer(1.0, self.send, (pkt, addr)).start()
            else:
                self.send(pkt, addr)

    def send(self, pkt, addr):
        try:
            self.sock.sendto(pkt, addr)
        except OSError:
            pass

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()


# ---- the server ----

PROLOGUE = """-- luafuzz prologue: what the fuzz scripts may have undone
pcall(Rumble.startService, "smtp")
pcall(Rumble.resumeService, "smtp")
pcall(Rumble.startService, "pop3")
pcall(Rumble.resumeService, "pop3")
pcall(Rumble.startService, "imap4")
pcall(Rumble.resumeService, "imap4")
if not Mailman.accountExists("example.org", "alice") then
    pcall(Mailman.createDomain, "example.org")
    pcall(Mailman.saveAccount, {name = "alice", domain = "example.org", type = "mailbox",
        password = ("secret"):SHA256()})
end
if not Mailman.accountExists("example.org", "robot") then
    pcall(Mailman.saveAccount, {name = "robot", domain = "example.org", type = "mod"})
end
"""


class FuzzServer:
    def __init__(self, binary, workdir, opts, ports=None):
        self.bin = binary
        self.dir = tempfile.mkdtemp(dir=workdir, prefix="luafuzz-")
        self.storage = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "rumble.log")
        self.conf = os.path.join(self.dir, "rumble.conf")
        self.fuzz = os.path.join(self.dir, "fuzz.lua")
        self.vp3 = os.path.join(self.dir, "vp3.lua")
        self.prologue = os.path.join(self.dir, "prologue.lua")
        self.dns = FakeDNS()
        self.ports = dict(ports) if ports else {
            "smtp": free_port(), "pop3": free_port(), "imap": free_port(), "closed": free_port(),
            "svc": [free_port(), free_port()], "silent": 0}
        # a server that takes connections and never says a word (smtp.send's timeouts)
        self.silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.silent.bind(("127.0.0.1", self.ports["silent"]))
        self.silent.listen(128)
        self.ports["silent"] = self.silent.getsockname()[1]
        with open(self.prologue, "w") as f:
            f.write(PROLOGUE)
        for path in (self.fuzz, self.vp3):
            open(path, "w").close()
        with open(self.conf, "w") as f:
            f.write("ServerName fuzz.example\nMinPasswordLength 0\nStorageFolder %s\nBindToAddress 127.0.0.1\n"
                    "SMTPPort %d\nEnablePOP3 1\nPOP3Port %d\nEnableIMAP4 1\nIMAP4Port %d\n"
                    "EnableSubmission 0\nEnableSMTPS 0\nEnablePOP3S 0\nEnableIMAPS 0\nEnableManageSieve 0\n"
                    "EnableWebAdmin 0\nLogLevel debug\nWorkers 2\nDNSServer 127.0.0.1:%d\n"
                    "LuaInstructionLimit %d\nLuaMemoryLimit %s\nLuaTimeLimit %d\nIdleTimeout 30\n"
                    "OutboundTimeout 5\nRetryInterval 1\nMaxRetryInterval 2\nDeliveryAttempts 2\n"
                    "ThreadsPerIP 10000\n"
                    "LoadScript %s\nLoadScript %s\nSMTPScript %s\n"
                    % (self.storage, self.ports["smtp"], self.ports["pop3"], self.ports["imap"],
                       self.dns.port, opts.instructions, opts.memory, opts.time_limit,
                       self.prologue, self.fuzz, self.vp3))
        self.cli("domain", "add", "example.org")
        self.cli("user", "add", "alice@example.org", input="secret\n")
        self.run_as_nobody()
        self.proc = None
        self.off = 0  # how much of the log was checked
        self.reload_off = 0

    def run_as_nobody(self):
        """As root, the server drops to nobody (RunAs): a script that
        removes or writes files can only touch the server's own folder."""
        if os.geteuid() != 0:
            return
        import pwd
        try:
            pw = pwd.getpwnam("nobody")
        except KeyError:
            return
        for base, dirs, files in os.walk(self.dir):
            for n in [base] + [os.path.join(base, x) for x in dirs + files]:
                os.chown(n, pw.pw_uid, pw.pw_gid)
        with open(self.conf, "a") as f:
            f.write("RunAs nobody\n")

    def cli(self, *args, input=None):
        r = subprocess.run([self.bin, "-c", self.conf] + list(args), input=input,
                           capture_output=True, text=True, timeout=60, cwd=self.dir)
        if r.returncode != 0:
            raise RuntimeError("rumble %s: %s" % (" ".join(args), r.stderr.strip()))

    def start(self, gdb=False):
        self.gdb = gdb
        self.pid = None
        env = dict(os.environ)
        # a memory bomb outside the Lua cap is a finding, not a dead machine
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0") + \
            ":hard_rss_limit_mb=1500:allocator_may_return_null=0"
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self.errf = open(self.log, "ab")
        cmd = [self.bin, "-c", self.conf]
        if gdb:  # stops where the process exits (exit_stack)
            cmd = ["gdb", "-batch", "-ex", "set pagination off", "-ex",
                   "handle SIGPIPE SIGHUP nostop noprint pass", "-ex", "break exit", "-ex",
                   "break _exit", "-ex", "run", "-ex", "bt 40", "-ex", "thread apply all bt 8",
                   "-ex", "kill", "--args"] + cmd
        self.proc = subprocess.Popen(cmd, stdout=self.errf,
                                     stderr=self.errf, stdin=subprocess.DEVNULL, cwd=self.dir,
                                     env=env)
        # the listeners open before the scripts load and the signals are
        # handled: wait for the line that says it is ready (with its pid)
        end = time.time() + 60
        while not self.pid and time.time() < end and self.alive():
            m = re.search(r"ready in \d+ ms, storage .*, pid (\d+)", self.text())
            self.pid = int(m.group(1)) if m else None
            time.sleep(0.02)
        if not self.pid or not wait_port(self.ports["smtp"], 30):
            raise RuntimeError("server did not start:\n" + self.tail())
        return self

    def alive(self):
        return self.proc and self.proc.poll() is None

    def text(self, since=0):
        with open(self.log, "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")

    def read_new(self):
        """The log since the last call."""
        with open(self.log, "rb") as f:
            f.seek(self.off)
            data = f.read()
        self.off += len(data)
        return data.decode("utf-8", "replace")

    def size(self):
        return os.path.getsize(self.log)

    def tail(self, n=25000):
        size = self.size()
        return self.text(max(0, size - n))

    def rss_kb(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                m = re.search(r"VmRSS:\s+(\d+)", f.read())
                return int(m.group(1)) if m else 0
        except OSError:
            return 0

    def reload(self, script, vp3):
        """Writes the scripts and sends SIGHUP; True once the start-up
        state of the new generation is made."""
        for path, text in ((self.fuzz, script), (self.vp3, vp3)):
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.rename(tmp, path)
        off = self.reload_off = self.size()
        os.kill(self.pid, signal.SIGHUP)  # under gdb, its child
        end = time.time() + RELOAD_TIMEOUT
        while time.time() < end and self.alive():
            if READY in self.text(off):
                return True
            time.sleep(0.01)
        return False

    def stacks(self):
        """The threads' stacks (gdb), for a hang."""
        if not shutil.which("gdb") or not self.alive():
            return "(no stacks)"
        r = subprocess.run(["gdb", "-p", str(self.proc.pid), "-batch", "-ex",
                            "thread apply all bt 30"], capture_output=True, text=True, timeout=120)
        return r.stdout[-60000:]

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=30)
            rc = "timeout (killed)"
        self.errf.close()
        self.proc = None
        return rc

    def cleanup(self):
        self.dns.stop()
        self.silent.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- client sessions ----

class Conn:
    def __init__(self, port, chunks, cut=None, rst=False):
        self.port, self.chunks, self.cut, self.rst = port, list(chunks), cut, rst
        self.out = b""
        self.sent = 0
        self.got = 0
        self.done = False
        self.t0 = time.time()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.connect_ex(("127.0.0.1", port))

    def due(self, now):
        while self.chunks and now - self.t0 >= self.chunks[0][0]:
            self.out += self.chunks.pop(0)[1]

    def close(self):
        if not self.done:
            self.done = True
            try:
                if self.rst:
                    self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.sock.close()
            except OSError:
                pass


def run_conns(conns, deadline):
    """Drives the connections until each is closed or the deadline."""
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    end = time.time() + deadline
    while time.time() < end and any(not c.done for c in conns):
        now = time.time()
        for c in conns:
            if not c.done:
                c.due(now)
                if c.cut is not None and c.sent >= c.cut:
                    sel.unregister(c.sock)
                    c.close()
        for key, ev in sel.select(timeout=0.02):
            c = key.data
            if c.done:
                continue
            try:
                if ev & selectors.EVENT_READ:
                    data = c.sock.recv(65536)
                    if not data:
                        sel.unregister(c.sock)
                        c.close()
                        continue
                    c.got += len(data)
                if ev & selectors.EVENT_WRITE and c.out:
                    n = c.sock.send(c.out[:65536] if c.cut is None else c.out[:max(1, c.cut - c.sent)])
                    c.out = c.out[n:]
                    c.sent += n
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                sel.unregister(c.sock)
                c.close()
    for c in conns:
        if not c.done:
            try:
                sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.close()
    sel.close()


class Sessions:
    """Random client sessions (seeded) for one batch."""

    def __init__(self, rnd, ports):
        self.r, self.p = rnd, ports

    def chunks(self, data):
        """data sent in 1-3 pieces, some later."""
        r = self.r
        n = r.choice([1, 1, 1, 2, 3])
        cuts = sorted(r.randint(0, len(data)) for _ in range(n - 1))
        pieces, last = [], 0
        for i, c in enumerate(cuts + [len(data)]):
            pieces.append((0 if i == 0 else r.uniform(0.02, 0.4), data[last:c]))
            last = c
        t, out = 0, []
        for d, p in pieces:
            t += d
            out.append((t, p))
        return out

    def ending(self, data):
        r = self.r
        k = r.random()
        if k < 0.15:
            return dict(cut=r.randint(0, max(0, len(data) - 1)), rst=r.random() < 0.5)
        return {}

    def smtp(self):
        r = self.r
        lines = [r.choice(["EHLO fuzz.example", "HELO fuzz.example", "EHLO", "HELO bad.example"])]
        for _ in range(r.randint(0, 2)):
            lines.append(r.choice(["NOOP", "VRFY alice", "HELP", "RSET", "junk", "x" * 600]))
        if r.random() < 0.75:
            lines.append("MAIL FROM:<%s>" % r.choice(["a@fuzz.test", "", "alice@example.org"]))
            for _ in range(r.randint(1, 2)):
                lines.append("RCPT TO:<%s>" % r.choice(["alice@example.org", "robot@example.org",
                                                        "robot@example.org", "x@fuzz.test",
                                                        "nobody@example.org"]))
            lines.append("DATA")
            lines += ["Subject: fuzz %d" % r.randint(0, 999), "To: alice@example.org", "",
                      "line 1", "..dot", r.choice(["x" * 100, "y" * 5000, "", "z"]), "."]
        lines += [r.choice(["NOOP", "RSET", "NOOP"]), "QUIT"] if r.random() < 0.9 else []
        data = "".join(l + "\r\n" for l in lines).encode()
        return Conn(self.p["smtp"], self.chunks(data), **self.ending(data))

    def pop3(self):
        r = self.r
        lines = ["USER alice@example.org", "PASS %s" % ("secret" if r.random() < 0.9 else "bad"),
                 "STAT"]
        lines += r.sample(["LIST", "UIDL", "RETR 1", "TOP 1 0", "NOOP", "DELE 1", "RSET",
                           "junk"], r.randint(0, 3))
        lines.append("QUIT")
        data = "".join(l + "\r\n" for l in lines).encode()
        return Conn(self.p["pop3"], self.chunks(data), **self.ending(data))

    def imap(self):
        r = self.r
        lines = ["a1 LOGIN alice@example.org secret", "a2 SELECT INBOX", "a3 NOOP",
                 r.choice(["a4 FETCH 1 (FLAGS)", "a4 STATUS INBOX (MESSAGES)", "a4 CAPABILITY"]),
                 "a5 LOGOUT"]
        data = "".join(l + "\r\n" for l in lines).encode()
        return Conn(self.p["imap"], self.chunks(data), **self.ending(data))

    def service(self):
        r = self.r
        parts = []
        for _ in range(r.randint(0, 5)):
            parts.append(r.choice([b"hello\r\n", b"line\n", b"", b"\r\n", b"x" * 9000 + b"\r\n",
                                   bytes(r.randint(0, 255) for _ in range(r.randint(1, 30))),
                                   b"GET / HTTP/1.0\r\n\r\n"]))
        if r.random() < 0.6:
            parts.append(b"quit\r\n")
        data = b"".join(parts)
        return Conn(r.choice(self.p["svc"]), self.chunks(data), **self.ending(data))

    def batch(self, n):
        r = self.r
        conns = [self.smtp(), self.smtp()]  # mail for alice and robot each time
        kinds = [self.smtp] * 4 + [self.pop3] * 2 + [self.imap] + [self.service] * 3
        while len(conns) < n:
            conns.append(r.choice(kinds)())
        return conns


def probe_pop3(port, stopped_ok):
    """A POP3 login and QUIT, half-closed: the server must end the session
    within PROBE_TIMEOUT (the password check runs on a helper thread, so
    this sees helpers that scripts keep busy). None when fine."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT)
    except OSError as e:
        return None if stopped_ok else "POP3 refused: %s" % e
    try:
        s.sendall(b"USER alice@example.org\r\nPASS secret\r\nQUIT\r\n")
        s.shutdown(socket.SHUT_WR)
        end = time.time() + PROBE_TIMEOUT
        while time.time() < end:
            s.settimeout(max(0.1, end - time.time()))
            if not s.recv(4096):
                return None
        return "POP3 login did not end in %d s" % PROBE_TIMEOUT
    except socket.timeout:
        return "POP3 login did not end in %d s" % PROBE_TIMEOUT
    except OSError:
        return None
    finally:
        s.close()


def trim_mailbox(port):
    """Deletes alice's messages (POP3 DELE, expunged at QUIT), so that a
    long run measures the server in a steady state, not a growing mailbox.
    Best effort: a script's POP3 hooks may well be in the way."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        f = s.makefile("rb")
        s.sendall(b"USER alice@example.org\r\nPASS secret\r\nSTAT\r\n")
        n = 0
        for _ in range(10):
            line = f.readline()
            m = re.match(rb"\+OK (\d+) \d+", line)
            if m or not line:
                n = int(m.group(1)) if m else 0
                break
        s.sendall(b"".join(b"DELE %d\r\n" % i for i in range(1, min(n, 5000) + 1)) + b"QUIT\r\n")
        while f.readline():
            pass
        s.close()
    except (OSError, ValueError):
        pass


def probe(port, stopped_ok):
    """An SMTP client that says QUIT and half-closes: the server must
    answer or close within PROBE_TIMEOUT (a hook may drop or ignore it).
    Returns None when fine, else what went wrong."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT)
    except OSError as e:
        return None if stopped_ok else "SMTP refused: %s" % e
    try:
        s.sendall(b"QUIT\r\n")
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        return None
    except socket.timeout:
        return "SMTP did not answer in %d s" % PROBE_TIMEOUT
    except OSError:
        return None  # reset: the server closed
    finally:
        s.close()


# ---- the driver ----

class Driver:
    def __init__(self, opts):
        self.o = opts
        self.bin = os.path.abspath(opts.bin)
        self.findings_dir = os.path.abspath(opts.findings)
        self.work = os.path.join(ROOT, "build", "tmp")
        os.makedirs(self.work, exist_ok=True)
        self.findings = []
        self.scripts = self.sessions = 0
        self.rss = []  # (sessions, kB)
        self.srv = None
        self.restarts = 0
        self.seen = {}  # signature -> finding dir
        self.slow = []  # (seed, what): answered late

    def start_server(self):
        self.srv = FuzzServer(self.bin, self.work, self.o).start()

    def log(self, msg):
        print(msg, flush=True)

    IDLE = ("epoll_wait", "os_poller_wait", "os_cond_wait", "pthread_cond_wait", "__futex_abstimed_wait_common",
            "helper_main", "accept", "nanosleep", "clock_nanosleep")
    NOISE = ("__GI___libc_read", "_IO_new_file_underflow", "__GI__IO_default_uflow",
             "__GI__IO_getline_info", "__GI__IO_getline", "_IO_fgets", "__interceptor_fgets",
             "__libc_read", "read")

    def busy_frames(self, stacks):
        """The innermost frames of the threads that run Lua or Rumble code
        in a hang (gdb's "thread apply all bt")."""
        out = []
        for th in stacks.split("\nThread ")[1:]:
            frames = re.findall(r"#\d+\s+(?:0x[0-9a-f]+ in )?(\w+)", th)
            if not frames or any(f in self.IDLE or f.startswith("__sanitizer") for f in frames[:6]):
                continue
            top = []
            for f in frames:
                if f not in self.NOISE and (not top or top[-1] != f):
                    top.append(f)
            out.append("<".join(top[:3]))
        return sorted(set(out))

    def signature(self, kind, text, stacks=""):
        """A short key for a finding: what happened and where (the first
        frame of Rumble's own code in a sanitizer report, the busy
        frames of a hang)."""
        if "hard rss limit exhausted" in text:
            return "out of memory (ASan hard_rss_limit_mb)"
        m = re.search(r"(ERROR: AddressSanitizer: [\w-]+|runtime error: [^\n]{0,80}|"
                      r"LeakSanitizer: detected [\w ]+)", text)
        if m:
            report = text[m.start():].split("\n\n")[0]  # the first stack only
            frames = re.findall(r"#\d+ 0x[0-9a-f]+ in (\w+) (\S+)", report)
            mine = [f for f, where in frames if re.search(r"(^|/)(lua/)?\w+\.c:\d+", where)
                    and "sanitizer" not in where and "/usr/" not in where and "../" not in where]
            first = [f for f, _ in frames[:2]]
            return "%s | %s" % (m.group(1), " ".join(first + mine[:2]))
        if kind == "hang":
            return "hang | " + " ; ".join(self.busy_frames(stacks))
        where = re.findall(r"in (\w+) \(.*?\) at ((?:lua/)?\w+\.c):\d+", stacks)
        return "%s | %s" % (kind, " ".join("%s %s" % w for w in where[:2])) if where else kind

    def finding(self, seed, kind, detail, gen, script, vp3, stacks=""):
        text = self.srv.tail(200000)
        sig = self.signature(kind if kind != "died" else "died: " + detail, detail + "\n" + text, stacks)
        self.findings.append({"seed": seed, "kind": kind, "detail": detail, "signature": sig,
                              "classes": sorted(gen.used)})
        d = os.path.join(self.findings_dir, "%s-seed%d" % (re.sub(r"\W+", "_", kind), seed))
        os.makedirs(d, exist_ok=True)
        for name, content in (("fuzz.lua", script), ("vp3.lua", vp3), ("stacks.txt", stacks),
                              ("log-tail.txt", text[-150000:])):
            with open(os.path.join(d, name), "w") as f:
                f.write(content)
        shutil.copy(self.srv.conf, os.path.join(d, "rumble.conf"))
        shutil.copy(self.srv.prologue, os.path.join(d, "prologue.lua"))
        with open(os.path.join(d, "info.json"), "w") as f:
            json.dump(dict(self.findings[-1], skip=sorted(self.o.skip_set), ports=self.srv.ports,
                           instructions=self.o.instructions, memory=self.o.memory), f, indent=1)
        first = sig not in self.seen
        self.seen.setdefault(sig, d)
        self.log("FINDING seed %d: %s: %s [%s]%s -> %s" % (seed, kind, detail, sig,
                                                       "" if first else " (seen before)", d))

    def restart(self):
        """After a finding: a fresh server."""
        try:
            self.srv.stop(signal.SIGKILL, timeout=10)
        except Exception:
            pass
        self.srv.cleanup()
        self.restarts += 1
        self.start_server()

    def probes(self, stopped):
        """Two SMTP probes and a POP3 login at once: None, or what went wrong."""
        results = [None, None, None]

        def one(i):
            if i < 2:
                results[i] = probe(self.srv.ports["smtp"], stopped)
            else:
                results[i] = probe_pop3(self.srv.ports["pop3"], stopped)
        ts = [threading.Thread(target=one, args=(i,)) for i in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        bad = [r for r in results if r]
        return bad[0] if bad else None

    def check(self, seed, script, vp3, reloaded=True):
        """None when the server is well, else (kind, detail, stacks); kind
        "slow" when SMTP answered only after PROBE_TIMEOUT (a worker busy
        with budgeted but costly hooks: noted, not a finding)."""
        srv = self.srv
        if not srv.alive():
            rc = srv.proc.poll()
            return ("died", "exit status %s" % rc if rc >= 0 else "signal %d" % -rc, "")
        text = srv.read_new()
        for marker in SANITIZER:
            if marker in text:
                return ("sanitizer", marker, "")
        stopped = bool(re.search(r"stopService|suspendService", script + vp3))
        bad = self.probes(stopped)
        if not bad and not reloaded:
            # the start-up state is rebuilt later when a mailman hook holds it
            return ("slow", "the reload waits (the start-up state is busy); SMTP answers", "")
        if not bad:
            return None
        t0 = time.time()
        while time.time() - t0 < HANG_AFTER and srv.alive():
            if not self.probes(stopped):
                return ("slow", "SMTP answered after %.0f s more" % (time.time() - t0), "")
            time.sleep(1)
        if not srv.alive():
            return self.check(seed, script, vp3)
        return ("hang", "%s, nor in %d s more%s" % (
            bad, HANG_AFTER, "" if reloaded else " (and the reload did not finish)"), srv.stacks())

    def exit_stack(self, seed, script, vp3):
        """A process that ended without a report (exit(), a Lua panic):
        the same script and sessions once more in a fresh server under
        gdb, stopped where it exits. The stack, or "" if it did not."""
        if not shutil.which("gdb"):
            return ""
        self.srv.silent.close()
        srv = FuzzServer(self.bin, self.work, self.o, ports=self.srv.ports)  # the script names them
        try:
            srv.start(gdb=True)
            if srv.reload(script, vp3):  # by SIGHUP, as the first time
                conns = Sessions(random.Random(seed), srv.ports).batch(self.o.sessions)
                run_conns(conns, self.o.deadline)
            try:
                srv.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            m = re.search(r"(Thread \d+ .*hit Breakpoint.*|Breakpoint \d+, .*)", srv.text(), re.S)
            return m.group(1)[:20000] if m else ""
        except Exception as e:
            return "(gdb rerun failed: %s)\n%s" % (e, srv.tail(3000))
        finally:
            srv.stop(signal.SIGKILL, timeout=10)
            srv.cleanup()

    def script_for(self, seed):
        gen = luagen.Gen(seed, self.srv.ports, skip=self.o.skip_set)
        script, vp3 = gen.script(), gen.vpop3()
        if self.o.script:  # a reproducer instead: @SMTP@, @POP3@, ... are the ports
            path, vp3 = self.o.script, ""
            if os.path.isdir(path):  # a findings folder: its fuzz.lua and vp3.lua
                path = os.path.join(self.o.script, "fuzz.lua")
                vp3 = open(os.path.join(self.o.script, "vp3.lua")).read()
            script = open(path).read()
            for k, v in (("@SILENT@", self.srv.ports["silent"]),):
                vp3 = vp3.replace(k, str(v))
            for k, v in (("@SMTP@", self.srv.ports["smtp"]), ("@POP3@", self.srv.ports["pop3"]),
                         ("@IMAP@", self.srv.ports["imap"]), ("@SVC1@", self.srv.ports["svc"][0]),
                         ("@SVC2@", self.srv.ports["svc"][1]), ("@SILENT@", self.srv.ports["silent"])):
                script = script.replace(k, str(v))
        return gen, script, vp3

    def one(self, seed):
        o = self.o
        gen, script, vp3 = self.script_for(seed)
        reloaded = self.srv.reload(script, vp3)
        bad = None if reloaded else self.check(seed, script, vp3, reloaded=False)
        if not bad or bad[0] == "slow":
            if bad:
                self.slow.append((seed, bad[1]))
                self.log("slow seed %d: %s" % (seed, bad[1]))
            conns = Sessions(random.Random(seed), self.srv.ports).batch(o.sessions)
            run_conns(conns, o.deadline)
            self.sessions += len(conns) + 3
            self.scripts += 1
            bad = self.check(seed, script, vp3)
        if bad and bad[0] == "slow":
            self.slow.append((seed, bad[1]))
            self.log("slow seed %d: %s" % (seed, bad[1]))
            bad = None
        if bad:
            stacks = bad[2]
            if bad[0] == "died" and bad[1].startswith("exit status"):
                self.srv.stop()
                stacks = self.exit_stack(seed, script, vp3)
            self.finding(seed, bad[0], bad[1], gen, script, vp3, stacks)
            self.restart()
            return
        self.rss.append((self.sessions, self.srv.rss_kb()))
        if self.scripts % 20 == 0:
            trim_mailbox(self.srv.ports["pop3"])

    def run(self):
        o = self.o
        self.start_server()
        t0 = time.time()
        seed = o.first
        try:
            while True:
                if o.last is not None and seed > o.last:
                    break
                if o.duration and time.time() - t0 >= o.duration:
                    break
                self.one(seed)
                if self.scripts and self.scripts % 50 == 0:
                    el = time.time() - t0
                    self.log("%d scripts, %d sessions in %.0f s (%.2f scripts/s, %.1f sessions/s), "
                             "RSS %d kB, %d findings" % (self.scripts, self.sessions, el,
                                                         self.scripts / el, self.sessions / el,
                                                         self.srv.rss_kb(), len(self.findings)))
                seed += 1
        finally:
            elapsed = time.time() - t0
            rc = self.final_stop(seed)
        return self.summary(elapsed, seed, rc)

    def final_stop(self, seed):
        srv = self.srv
        if not srv.alive():
            srv.stop()
            srv.cleanup()
            return None
        off = srv.off
        rc = srv.stop()
        text = srv.text(off)
        if rc != 0:
            self.finding_at_stop(seed, "stop", "exit status %s on SIGTERM" % rc, text)
        for marker in SANITIZER:
            if marker in text:
                self.finding_at_stop(seed, "sanitizer at stop", marker, text)
                break
        if not self.o.keep:
            srv.cleanup()
        else:
            srv.dns.stop()
            self.log("kept %s" % srv.dir)
        return rc

    def finding_at_stop(self, seed, kind, detail, text):
        self.findings.append({"seed": seed - 1, "kind": kind, "detail": detail,
                              "signature": self.signature(kind, text), "classes": []})
        d = os.path.join(self.findings_dir, "%s-seed%d" % (re.sub(r"\W+", "_", kind), seed - 1))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "log-tail.txt"), "w") as f:
            f.write(text[-150000:])
        self.log("FINDING at stop: %s: %s -> %s" % (kind, detail, d))

    def summary(self, elapsed, seed, rc):
        rss = [k for _, k in self.rss]
        warm = max(1, len(rss) // 10)
        s = {
            "seconds": round(elapsed, 1), "scripts": self.scripts, "sessions": self.sessions,
            "scripts_per_s": round(self.scripts / elapsed, 2) if elapsed else 0,
            "sessions_per_s": round(self.sessions / elapsed, 1) if elapsed else 0,
            "seeds": "%d-%d" % (self.o.first, seed - 1),
            "rss_start_kb": rss[warm - 1] if rss else 0, "rss_end_kb": rss[-1] if rss else 0,
            "rss_max_kb": max(rss) if rss else 0, "restarts": self.restarts,
            "stop_status": rc, "findings": len(self.findings), "slow": len(self.slow),
            "distinct": len({f["signature"] for f in self.findings}),
            "skip": sorted(self.o.skip_set),
        }
        self.log("summary: " + json.dumps(s))
        for sig, d in self.seen.items():
            self.log("  finding: %s -> %s" % (sig, d))
        if self.o.rss_log:
            with open(self.o.rss_log, "w") as f:
                for n, k in self.rss:
                    f.write("%d %d\n" % (n, k))
        return s


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get("RUMBLE_BIN", os.path.join(ROOT, "build/asan/rumble")))
    ap.add_argument("--seeds", help="a range FIRST-LAST")
    ap.add_argument("--seed", type=int, help="one seed")
    ap.add_argument("--start", type=int, default=1, help="the first seed with --duration")
    ap.add_argument("--duration", type=float, default=0, help="seconds to run")
    ap.add_argument("--sessions", type=int, default=16, help="client sessions per script")
    ap.add_argument("--deadline", type=float, default=2.0, help="seconds a batch of sessions may take")
    ap.add_argument("--instructions", type=int, default=200000, help="LuaInstructionLimit")
    ap.add_argument("--memory", default="4M", help="LuaMemoryLimit")
    ap.add_argument("--time-limit", type=int, default=2, help="LuaTimeLimit (seconds)")
    ap.add_argument("--skip", default="", help="classes to leave out: " + ",".join(luagen.CLASSES))
    ap.add_argument("--open", action="store_true", help="leave out the classes of open findings (OPEN)")
    ap.add_argument("--findings", default=os.path.join(ROOT, "build", "fuzz-findings"))
    ap.add_argument("--rss-log", help="write 'sessions rss_kB' lines here")
    ap.add_argument("--keep", action="store_true", help="keep the server's folder")
    ap.add_argument("--script", help="run this script (or a findings folder's fuzz.lua and "
                    "vp3.lua) instead of generated ones (a reproducer; "
                    "@SMTP@, @POP3@, @IMAP@, @SVC1@, @SVC2@, @SILENT@ stand for the ports); with "
                    "--seed N the sessions of seed N")
    o = ap.parse_args(argv)
    o.skip_set = frozenset(s for s in o.skip.split(",") if s) | (frozenset(OPEN) if o.open else frozenset())
    bad = o.skip_set - set(luagen.CLASSES)
    if bad:
        ap.error("unknown classes: %s" % ", ".join(sorted(bad)))
    o.first, o.last = o.start, None
    if o.seed is not None:
        o.first = o.last = o.seed
    elif o.seeds:
        a, b = o.seeds.split("-")
        o.first, o.last = int(a), int(b)
    elif o.script and not o.duration:
        o.first = o.last = 1
    elif not o.duration:
        o.last = o.first + 99
    return o


def main(argv=None):
    o = parse_args(argv)
    s = Driver(o).run()
    return 1 if s["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
