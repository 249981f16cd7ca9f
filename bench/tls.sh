#!/bin/sh
# bench/tls.sh - what a TLS session costs Rumble: handshakes per second on
# one core and bytes per idle session, from bench/tls_handshake.c (the
# engine of crypto.c against BearSSL's client, in memory, one thread).
#
#   bench/tls.sh [SECONDS] [SESSIONS]      (defaults 3 2000)
#
# Runs with Rumble's self-signed EC P-256 certificate (ECDHE-ECDSA), then,
# when openssl is installed, with an RSA-2048 one (ECDHE-RSA).
# Targets: >= 500 ECDHE-ECDSA handshakes/s on one core; <= 24 KB per idle
# TLS connection. The RSS of a running server with 2,000 idle TLS
# connections is measured end to end once the listeners speak TLS.
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-3}
SESS=${2:-2000}
TRIPLE=$(cc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
SSL_A=/usr/lib/$TRIPLE/libbearssl.a
[ -f "$SSL_A" ] || { echo "bench/tls.sh: no $SSL_A (apt-get install libbearssl-dev)" >&2; exit 1; }
mkdir -p build/bench
# the same flags as the release build; taskset keeps it on one core
cc -O2 -g -std=c11 -D_DEFAULT_SOURCE -D_FILE_OFFSET_BITS=64 -I. \
	-o build/bench/tls_handshake bench/tls_handshake.c crypto.c log.c buf.c posix/os.c \
	"$SSL_A" -lpthread -lm
PIN=
command -v taskset >/dev/null 2>&1 && PIN="taskset -c 0"
echo "== ECDHE-ECDSA, self-signed P-256 (what Rumble makes on first start)"
$PIN build/bench/tls_handshake "$SECS" "$SESS"
if command -v openssl >/dev/null 2>&1; then
	DIR=$(mktemp -d build/bench/tls.XXXXXX)
	trap 'rm -rf "$DIR"' EXIT
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$DIR/key.pem" -out "$DIR/cert.pem" \
		-days 2 -subj /CN=bench.example >/dev/null 2>&1
	echo "== ECDHE-RSA, RSA-2048"
	$PIN build/bench/tls_handshake "$SECS" "$SESS" "$DIR/cert.pem" "$DIR/key.pem"
fi
if [ -x ./rumble ] && command -v python3 >/dev/null 2>&1; then
	echo "== a running server: RSS per idle TLS connection (SMTPS, handshake done)"
	python3 bench/idle.py "$SESS" smtps
fi
