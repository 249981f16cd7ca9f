"""harness.py - start the real rumble binary on loopback with a temporary
storage folder and free ports, and stop it by its pid. Used by every
end-to-end test; see run.py for the runner."""
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.abspath(os.path.join(ROOT, os.environ.get("RUMBLE_BIN", "build/rel/rumble")))
TMP = os.path.join(ROOT, "build", "tmp")
_running = []


_given = set()  # ports handed out in this run: the kernel may give a freed one again


def free_port():
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _given:
            break
    _given.add(port)
    return port


def fs_name(name):
    """The file name mailman.c gives an account or domain: bytes outside
    [a-z0-9._-] (and a leading or trailing dot) become %XX."""
    raw = name.encode()
    out = []
    for i, c in enumerate(raw):
        plain = chr(c) in "abcdefghijklmnopqrstuvwxyz0123456789._-"
        if not plain or (c == ord(".") and i in (0, len(raw) - 1)):
            out.append("%%%02X" % c)
        else:
            out.append(chr(c))
    return "".join(out)


def wait_port(port, timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def folder_file(name):
    """The file name (without .mbox) names.c gives a folder that no other
    folder differs from only in case: the name itself, modified UTF-7
    shown as UTF-8, bytes unsafe on Windows or POSIX as %XX."""
    import base64
    import re

    def run(m):
        b = m.group(1).replace(",", "/")
        return base64.b64decode(b + "=" * (-len(b) % 4)).decode("utf-16-be") if b else "&"
    raw = "&" not in name
    text = name if raw else re.sub(r"&([^-]*)-", run, name)
    data = text.encode()
    dev = text.split(".")[0].lower()
    reserved = dev in ("con", "prn", "aux", "nul", "conin$", "conout$") or \
        (len(dev) == 4 and dev[:3] in ("com", "lpt") and dev[3].isdigit())
    out = []
    for i, c in enumerate(data):
        esc = c < 0x20 or c == 0x7f or chr(c) in '/\\:*?"<>|%~' or \
            (raw and (c == ord("&") or c >= 0x80)) or (i == 0 and (c == ord(".") or reserved)) or \
            (i == len(data) - 1 and chr(c) in ". ")
        out.append(b"%%%02X" % c if esc else bytes([c]))
    return b"".join(out).decode()


class Server:
    def __init__(self, conf="", domains=("example.org",), users=("alice@example.org",)):
        os.makedirs(TMP, exist_ok=True)
        self.dir = tempfile.mkdtemp(dir=TMP, prefix="e2e-")
        self.storage = os.path.join(self.dir, "data")
        self.smtp_port = free_port()
        self.log = os.path.join(self.dir, "rumble.log")
        self.conf = os.path.join(self.dir, "rumble.conf")
        base = ("ServerName test.example\nStorageFolder %s\nBindToAddress 127.0.0.1\n"
                "SMTPPort %d\nEnablePOP3 0\nEnableIMAP4 0\nEnableSubmission 0\nEnableSMTPS 0\n"
                "EnablePOP3S 0\nEnableIMAPS 0\nEnableWebAdmin 0\nEnableManageSieve 0\n"
                "LogLevel debug\nWorkers 2\n"
                # the tests' accounts have short passwords ("secret"): no
                # password checks unless a test sets MinPasswordLength
                "MinPasswordLength 0\n"
                % (self.storage, self.smtp_port))
        # a key given twice keeps its first value: the test's own lines replace these
        given = {l.split()[0].lower() for l in conf.splitlines() if l.strip()}
        base = "".join(l + "\n" for l in base.splitlines() if l.split()[0].lower() not in given)
        with open(self.conf, "w") as f:
            f.write(base + conf + "\n")
        self.proc = None
        for d in domains:
            self.cli("domain", "add", d)
        for u in users:
            self.cli("user", "add", u, input="secret\n")

    def cli(self, *args, input=None, check=True):
        r = subprocess.run([BIN, "-c", self.conf] + list(args), input=input, capture_output=True,
                           text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError("rumble %s failed: %s" % (" ".join(args), r.stderr.strip()))
        return r

    def start(self, preexec_fn=None):
        self.errf = open(self.log + ".stderr", "ab")
        self.proc = subprocess.Popen([BIN, "-c", self.conf], stdout=self.errf, stderr=self.errf,
                                     preexec_fn=preexec_fn)
        _running.append(self)
        if not wait_port(self.smtp_port):
            self.stop()
            raise AssertionError("server did not start: " + self.stderr())
        return self

    def stderr(self):
        try:
            with open(self.log + ".stderr", "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        """Stops the server by its pid; returns its exit code."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=10)
        self.proc = None
        self.errf.close()
        if self in _running:
            _running.remove(self)
        err = self.stderr()
        if "AddressSanitizer" in err or "runtime error:" in err or "LeakSanitizer" in err:
            raise AssertionError("sanitizer report:\n" + err[-4000:])
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def mbox(self, addr, folder="INBOX"):
        user, domain = addr.lower().rsplit("@", 1)
        return os.path.join(self.storage, "mail", fs_name(domain), fs_name(user), folder + ".mbox")

    def messages(self, addr):
        """The messages of addr's INBOX, read from the mbox file the way a
        mboxrd reader does: split at From_ lines, unquote >From, LF -> CRLF."""
        path = self.mbox(addr)
        if not os.path.exists(path):
            return []
        data = open(path, "rb").read()
        msgs, cur, prev_blank = [], None, True
        for line in data.split(b"\n")[:-1]:
            if prev_blank and line.startswith(b"From "):
                if cur is not None:
                    msgs.append(cur)
                cur = []
            elif cur is not None:
                if re.match(rb"^>+From ", line):
                    line = line[1:]
                cur.append(line)
            prev_blank = line == b""
        if cur is not None:
            msgs.append(cur)
        out = []
        for m in msgs:
            if m and m[-1] == b"":
                m = m[:-1]  # the separating blank line
            out.append(b"".join(l + b"\r\n" for l in m))
        return out


def imap_folder(port, user, folder, password="secret"):
    """(FLAGS, "Subject: ...") of each message in user's folder over IMAP on
    127.0.0.1:port; [] when it is empty or does not exist."""
    import imaplib
    m = imaplib.IMAP4("127.0.0.1", port)
    try:
        m.login(user, password)
        typ, data = m.select(folder, readonly=True)
        out = []
        if typ == "OK" and int(data[0]) > 0:
            typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            out = [(d[0].decode(), d[1].decode().strip()) for d in data if isinstance(d, tuple)]
        return out
    finally:
        m.logout()


def queue_files(storage):
    """The queue folder's messages and envelopes (.msg, .env, and anything
    left half-written): all but the running server's server.lock and the
    requests/ folder of `rumble queue` (queue.c)."""
    qdir = os.path.join(storage, "queue")
    return sorted(n for n in os.listdir(qdir) if n not in ("server.lock", "requests"))


def strip_received(msg):
    """Removes the Received: header Rumble adds (with its folded lines),
    and the DKIM-Signature before it on mail Rumble sent on."""
    lines = msg.split(b"\r\n")
    i = 0
    for name in (b"DKIM-Signature: ", b"Received: "):
        if name == b"Received: ":
            assert lines[i].startswith(name), lines[i]
        if lines[i].startswith(name):
            i += 1
            while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
                i += 1
    return b"\r\n".join(lines[i:])


def stop_all():
    for s in list(_running):
        try:
            s.stop(signal.SIGKILL)
        except Exception:
            pass


class SMTPRaw:
    """A plain socket client for what smtplib will not do (pipelining, bare
    LF, garbage)."""

    def __init__(self, port, timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; had %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        """One reply (all its lines); returns (code, text)."""
        lines = []
        while True:
            l = self.line()
            lines.append(l[4:])
            if len(l) < 4 or l[3] != "-":
                return int(l[:3]), "\n".join(lines)

    def cmd(self, text):
        self.send(text.encode() + b"\r\n")
        return self.reply()

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        self.sock.close()
