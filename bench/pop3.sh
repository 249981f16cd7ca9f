#!/bin/sh
# bench/pop3.sh - POP3 throughput and footprint of a running Rumble.
#
#   bench/pop3.sh [MESSAGES] [SIZE] [IDLE] [IDLE_LOGGED_IN]
#                                      (defaults 1000 51200 1000 100)
#
# Starts ./rumble (built by ./build.sh; RUMBLE=path picks another binary)
# on free loopback ports with a temporary storage folder. First, on the
# fresh server, opens IDLE POP3 sessions that only read the greeting, then
# IDLE_LOGGED_IN sessions logged in to as many empty maildrops, and prints
# the RSS each costs. Then it delivers MESSAGES messages of SIZE bytes to
# one maildrop over SMTP (bench/smtp_source.c) and RETRs all of them, three
# times, pipelined (bench/pop3_fetch.c), printing MB/s and the server's RSS
# before and after. Targets: >= 200 MB/s on loopback, RETR streamed from
# the mbox by offset (the RSS does not grow by the maildrop's size), an
# idle session <= 4 KB.
set -eu
cd "$(dirname "$0")/.."
MSGS=${1:-1000}
SIZE=${2:-51200}
IDLE=${3:-1000}
IDLE_IN=${4:-100}
RUMBLE=${RUMBLE:-./rumble}
[ "$RUMBLE" != ./rumble ] || ./build.sh
mkdir -p build/bench
cc -O2 -o build/bench/smtp_source bench/smtp_source.c -lpthread
cc -O2 -o build/bench/pop3_fetch bench/pop3_fetch.c
DIR=$(mktemp -d build/bench/run.XXXXXX)
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
SMTP=$(free_port)
POP3=$(free_port)
cat >"$DIR/rumble.conf" <<CONF
MinPasswordLength 0
ServerName bench.example
StorageFolder $DIR/data
BindToAddress 127.0.0.1
SMTPPort $SMTP
EnablePOP3 1
POP3Port $POP3
EnableIMAP4 0
EnableSubmission 0
EnableSMTPS 0
EnablePOP3S 0
EnableIMAPS 0
LogLevel warn
CONF
"$RUMBLE" -c "$DIR/rumble.conf" domain add example.org
echo pw | "$RUMBLE" -c "$DIR/rumble.conf" user add bench@example.org
i=0
while [ $i -lt "$IDLE_IN" ]; do
	echo pw | "$RUMBLE" -c "$DIR/rumble.conf" user add "idle$i@example.org"
	i=$((i + 1))
done
# the server and the idle client each hold a descriptor per session
ulimit -n $((IDLE + IDLE_IN + 256)) 2>/dev/null || ulimit -n 4096 2>/dev/null || true
PID=
HOLD=
cleanup() {
	[ -z "$HOLD" ] || kill "$HOLD" 2>/dev/null || true
	[ -z "$PID" ] || { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; } || true
	rm -rf "$DIR"
}
trap cleanup EXIT
start() {
	"$RUMBLE" -c "$DIR/rumble.conf" 2>>"$DIR/stderr" &
	PID=$!
	n=0
	until python3 -c "import socket; socket.create_connection(('127.0.0.1',$POP3),1)" 2>/dev/null; do
		n=$((n + 1))
		[ $n -lt 200 ] || { echo "server did not start"; cat "$DIR/stderr"; exit 1; }
		sleep 0.05
	done
}
stop() {
	kill "$PID"
	wait "$PID" || { echo "server exited with $?"; exit 1; }
	PID=
}
rss() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }
hwm() { awk '/VmHWM/ {print $2}' /proc/$PID/status; }

# idle: N sessions held open by one client until its standard input closes
idle() {
	rm -f "$DIR/hold" "$DIR/idle.out"
	mkfifo "$DIR/hold"
	build/bench/pop3_fetch -p "$POP3" "$@" <"$DIR/hold" >"$DIR/idle.out" &
	HOLD=$!
	exec 3>"$DIR/hold"
	n=0
	until grep -q ready "$DIR/idle.out" 2>/dev/null; do
		n=$((n + 1))
		kill -0 "$HOLD" 2>/dev/null && [ $n -lt 1200 ] || { echo "idle client failed"; exit 1; }
		sleep 0.05
	done
	sleep 0.3 # let the server finish with the last ones
}
idle_end() {
	exec 3>&-
	wait "$HOLD" || true
	HOLD=
	sleep 0.3
}

start
sleep 0.2
before=$(rss)
idle -i "$IDLE"
during=$(rss)
idle_end
echo "idle RSS: $before KB; with $IDLE connected POP3 sessions: $during KB:" \
	"$(((during - before) * 1024 / IDLE)) bytes per session"
if [ "$IDLE_IN" -gt 0 ]; then
	before=$(rss)
	idle -i "$IDLE_IN" -u 'idle%d@example.org' -w pw
	during=$(rss)
	idle_end
	echo "with $IDLE_IN sessions logged in to empty maildrops: $during KB:" \
		"$(((during - before) * 1024 / IDLE_IN)) bytes per session"
fi
stop

start
build/bench/smtp_source -p "$SMTP" -s 10 -m "$MSGS" -l "$SIZE" -t bench@example.org
MBOX=$DIR/data/mail/example.org/bench/INBOX.mbox
echo "maildrop: $(grep -c '^From ' "$MBOX") messages, $(($(wc -c <"$MBOX") / 1024)) KB"
echo "RSS before RETR: $(rss) KB (peak so far $(hwm) KB)"
build/bench/pop3_fetch -p "$POP3" -u bench@example.org -w pw -n 3 -d 8
echo "RSS after RETR: $(rss) KB (peak $(hwm) KB)"
stop
