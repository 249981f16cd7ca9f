#!/bin/sh
# bench/lua.sh - what Lua costs a running Rumble.
#
#   bench/lua.sh [IDLE] [CALLS]        (defaults 1000 20000)
#
# Starts ./rumble (RUMBLE_BIN to pick another binary) on free loopback
# ports with a script that makes an echo service (session:receive() in a
# loop) and a trivial SMTP HELO hook, then:
#  1. opens IDLE connections to the service, each reading its greeting and
#     then waiting in session:receive(), and prints the server's RSS growth
#     per idle Lua session (target: <= 8 KB);
#  2. sends CALLS HELO commands on one SMTP connection (pipelined in
#     batches of 100) and prints hook calls per second.
set -eu
cd "$(dirname "$0")/.."
BIN=${RUMBLE_BIN:-./rumble}
[ -x "$BIN" ] || ./build.sh
mkdir -p build/bench
DIR=$(mktemp -d build/bench/lua.XXXXXX)
exec python3 - "$BIN" "$DIR" "${1:-1000}" "${2:-20000}" <<'PY'
import os, resource, socket, subprocess, sys, time
binp, d, idle, calls = sys.argv[1], os.path.abspath(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, idle + 200)), hard))
smtp, svc = free_port(), free_port()
with open(d + "/bench.lua", "w") as f:
    f.write("""
local function echo(session)
    session:send("hello\\r\\n")
    while true do
        local line = session:receive()
        if not line then break end
        session:send(line .. "\\r\\n")
    end
end
Rumble.createService(echo, %d)
local calls = 0
Rumble.setHook(function(session, arg) calls = calls + 1 end, "smtp", "command", "helo")
""" % svc)
with open(d + "/rumble.conf", "w") as f:
    f.write("ServerName bench.example\nStorageFolder %s/data\nBindToAddress 127.0.0.1\n"
            "SMTPPort %d\nEnablePOP3 0\nEnableIMAP4 0\nEnableSubmission 0\nEnableSMTPS 0\n"
            "EnablePOP3S 0\nEnableIMAPS 0\nLogLevel warn\nWorkers 2\nThreadsPerIP 100000\n"
            "LoadScript %s/bench.lua\n" % (d, smtp, d))
p = subprocess.Popen([binp, "-c", d + "/rumble.conf"], stdout=subprocess.DEVNULL)
import atexit
atexit.register(lambda: p.poll() is None and (p.terminate(), p.wait()))
for _ in range(500):
    try:
        socket.create_connection(("127.0.0.1", svc), timeout=1).close(); break
    except OSError:
        time.sleep(0.01)
time.sleep(0.3)
base = rss_kb(p.pid)
socks = []
for i in range(idle):
    c = socket.create_connection(("127.0.0.1", svc))
    socks.append(c)
for c in socks:
    buf = b""
    while not buf.endswith(b"\n"):
        buf += c.recv(100)
time.sleep(0.5)
grown = rss_kb(p.pid) - base
print("idle Lua sessions: %d, RSS %d KB -> %d KB, %.1f KB per session (target <= 8)"
      % (idle, base, base + grown, grown / idle))
for c in socks:
    c.close()
s = socket.create_connection(("127.0.0.1", smtp))
f = s.makefile("rb")
f.readline()
t0 = time.time()
done = 0
while done < calls:
    n = min(100, calls - done)
    s.sendall(b"HELO bench.example\r\n" * n)
    for _ in range(n):
        f.readline()
    done += n
dt = time.time() - t0
print("SMTP HELO with a Lua hook: %d calls in %.2f s, %.0f calls/s" % (calls, dt, calls / dt))
s.close()
p.terminate()
p.wait()
PY
