#!/bin/sh
# bench/footprint.sh - what each release binary costs: its size on disk
# and, where it runs natively, its idle resident memory.
#
#   bench/footprint.sh          the binaries in build/ (./build.sh, ./build.sh target T)
#   bench/footprint.sh dist     the files of dist/ (./build.sh dist)
#
# Idle RSS: the binary started with every service on (SMTP, submission,
# SMTPS, POP3, POP3S, IMAP, IMAPS, the web admin) on free loopback ports,
# two workers, a fresh storage folder (started once before, to make its TLS
# certificate), VmRSS 2 s after it logs "ready"; "after use": the same 2 s
# after one connection to each port (greeting read, then closed). Then it is
# stopped by its pid. "100 IMAP": what 100 more clients cost, each logged
# in with an INBOX of 200 messages selected (the folder index is shared).
# Only binaries that run natively here are
# measured: under qemu-user or wine the figure would be the emulator's.
# For comparison the last line is the glibc build (build/dev, ./build.sh dev).
# Targets: x86-64 <= 1,000 KB stripped (issue 13's budget, bench/size.sh); idle RSS <= 1 MB (musl); 100 IMAP
# clients <= 1.5 MB. Then bench/imapmem.py's table for the native binary.
set -eu
cd "$(dirname "$0")/.."
mkdir -p build/bench

# files: "target path" lines, those that exist
files() {
	if [ "${1:-}" = dist ]; then
		for f in dist/rumble-*; do
			[ -f "$f" ] || continue
			case $f in *SHA256SUMS | *SIZES) continue ;; esac
			t=${f#dist/rumble-*-} # linux-armhf, windows-x86_64.exe
			echo "${t%.exe} $f"
		done
	else
		for t in x86_64:build/rel/rumble arm64 armhf armel mips mipsel \
			win64:build/win/rumble.exe win32:build/win32/rumble.exe dev:build/dev/rumble; do
			f=${t#*:}
			[ "$f" = "$t" ] && f=build/$t/rumble
			[ -f "$f" ] && echo "${t%%:*} $f"
		done
	fi
	return 0
}

files "${1:-}" | python3 -c '
import imaplib, os, smtplib, socket, subprocess, sys, tempfile, time

NATIVE = os.uname().machine

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

def native(path):
    with open(path, "rb") as f:
        head = f.read(20)
    # ELF, x86-64 machine (62) when this host is x86-64
    return head[:4] == b"\x7fELF" and NATIVE == "x86_64" and head[18] == 62

def wait_ready(log, end):
    while time.time() < end:
        with open(log, "rb") as f:
            if b" ready in " in f.read():
                return True
        time.sleep(0.05)
    return False

def touch(port, end):
    """One connection, its greeting read (a TLS port just sees a hello)."""
    while time.time() < end:
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.settimeout(2)
            try:
                c.recv(512)
            except OSError:
                pass
            c.close()
            return
        except OSError:
            time.sleep(0.05)

def imap_clients(ports, n):
    """RSS growth, KB, when n IMAP clients log in and select an INBOX of 200 messages."""
    smtp = smtplib.SMTP("127.0.0.1", ports[0], timeout=30)
    for i in range(200):
        smtp.sendmail("a@example.net", ["u@bench.example"],
                      "Subject: message %d\r\n\r\n%s\r\n" % (i, "line\r\n" * 20))
    smtp.quit()
    return lambda pid: selected(ports[5], n, pid)

def selected(port, n, pid):
    time.sleep(1)
    before = rss_kb(pid)
    clients = []
    try:
        for i in range(n):
            c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
            c.login("u@bench.example", "secret")
            c.select("INBOX")
            clients.append(c)
        time.sleep(2)
        return rss_kb(pid) - before
    finally:
        for c in clients:
            c.logout()

def idle_rss(path):
    """(RSS at rest after start-up, RSS at rest after one connection to each
    port, RSS growth for 100 IMAP clients), KB."""
    d = tempfile.mkdtemp(dir="build/bench", prefix="footprint-")
    names = ("SMTPPort", "SubmissionPort", "SMTPSPort", "POP3Port", "POP3SPort",
             "IMAP4Port", "IMAPSPort", "WebAdminPort")
    ports = [free_port() for _ in names]
    with open(d + "/rumble.conf", "w") as f:
        f.write("ServerName bench.example\nStorageFolder %s/data\nBindToAddress 127.0.0.1\n"
                "WebAdminBind 127.0.0.1\nWorkers 2\nLogLevel info\nMinPasswordLength 0\n" % d)
        f.write("".join("%s %d\n" % np for np in zip(names, ports)))
    for args in (["domain", "add", "bench.example"], ["user", "add", "u@bench.example"]):
        subprocess.run([path, "-c", d + "/rumble.conf"] + args, input=b"secret\n",
                       capture_output=True, check=True, timeout=30)
    # the first start makes the TLS certificate; measure the second
    for i in range(2):
        log = open(d + "/log", "wb")
        p = subprocess.Popen([path, "-c", d + "/rumble.conf"], stdout=log, stderr=log)
        try:
            end = time.time() + 60
            wait_ready(d + "/log", end)
            time.sleep(2)
            rest = rss_kb(p.pid)
            for port in ports:
                touch(port, end)
            time.sleep(2)
            used = rss_kb(p.pid)
            more = imap_clients(ports, 100)(p.pid) if i == 1 else 0
        finally:
            p.terminate()
            p.wait(30)
            log.close()
    subprocess.run(["rm", "-rf", d])
    return rest, used, more

print("%-16s %-40s %8s %6s %9s %9s %9s" % ("target", "file", "bytes", "KB", "idle RSS",
                                               "after use", "100 IMAP"))
for line in sys.stdin:
    target, path = line.split()
    size = os.path.getsize(path)
    rss = ("-", "-", "-")
    if native(path):
        rss = tuple("%.2f MB" % (kb / 1024.0) for kb in idle_rss(path))
    print("%-16s %-40s %8d %6.0f %9s %9s %9s" % ((target, path, size, size / 1024.0) + rss))
'
# The memory table of issue 11 (a 50 MB message, 20 sessions on a
# 20,000-message INBOX, idle selected sessions, descriptors), for the
# native release binary: under qemu or wine the figures would be the
# emulator's. FOOTPRINT_QUICK=1 leaves it out.
if [ -z "${FOOTPRINT_QUICK:-}" ] && [ -x build/rel/rumble ] && [ "${1:-}" != dist ]; then
	echo
	echo "memory of IMAP, POP3 and SMTP operations (build/rel/rumble, bench/imapmem.py):"
	python3 bench/imapmem.py --bin build/rel/rumble
fi
