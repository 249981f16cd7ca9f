#!/bin/sh
# bench/smtp.sh - SMTP throughput and footprint of a running Rumble.
#
#   bench/smtp.sh [MESSAGES] [SESSIONS] [SIZE]     (defaults 5000 20 4096)
#
# Starts ./rumble (built by ./build.sh) on a free loopback port with a
# temporary storage folder, measures start-up time and idle RSS, sends
# MESSAGES messages of SIZE bytes over SESSIONS parallel sessions, one
# connection per message, each durable before its 250, then prints
# msgs/s and the server's RSS. Targets (2 cores): >= 1,000 msgs/s,
# idle RSS <= 3 MB, start-up < 20 ms.
set -eu
cd "$(dirname "$0")/.."
MSGS=${1:-5000}
SESS=${2:-20}
SIZE=${3:-4096}
[ -x ./rumble ] || ./build.sh
mkdir -p build/bench
cc -O2 -o build/bench/smtp_source bench/smtp_source.c -lpthread
DIR=$(mktemp -d build/bench/run.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$DIR/rumble.conf" <<CONF
MinPasswordLength 0
ServerName bench.example
StorageFolder $DIR/data
BindToAddress 127.0.0.1
SMTPPort $PORT
EnablePOP3 0
EnableIMAP4 0
EnableSubmission 0
EnableSMTPS 0
EnablePOP3S 0
EnableIMAPS 0
LogLevel warn
CONF
./rumble -c "$DIR/rumble.conf" domain add example.org
echo pw | ./rumble -c "$DIR/rumble.conf" user add bench@example.org
./rumble -c "$DIR/rumble.conf" 2>"$DIR/stderr" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
i=0
until python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT),1)" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 200 ] || { echo "server did not start"; exit 1; }
	sleep 0.05
done
rss() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }
echo "idle RSS: $(rss) KB"
# start-up: time from exec to the ready line, as the server logs it
python3 - "$DIR" <<'PY'
import subprocess, sys, time, socket, os
d = sys.argv[1]
conf = open(d + "/rumble.conf").read()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
c2 = d + "/startup.conf"
open(c2, "w").write(conf.replace("SMTPPort", "SMTPPort %d\n#" % port).replace("LogLevel warn", "LogLevel info"))
best = 1e9
for _ in range(5):
    t = time.time()
    p = subprocess.Popen(["./rumble", "-c", c2], stderr=subprocess.PIPE)
    for line in p.stderr:
        if b"ready in" in line:
            best = min(best, time.time() - t)
            break
    p.terminate(); p.wait(10)
print("start-up (exec to ready, best of 5): %.1f ms" % (best * 1000))
PY
build/bench/smtp_source -p "$PORT" -s "$SESS" -m "$MSGS" -l "$SIZE" -t bench@example.org
echo "RSS after load: $(rss) KB"
N=$(grep -c '^From ' "$DIR/data/mail/example.org/bench/INBOX.mbox" || true)
echo "messages in the mailbox: $N"
