#!/bin/sh
# build.sh - build, run and test Rumble.
#
#   ./build.sh            build ./rumble
#   ./build.sh run        build, then run it with conf/rumble.conf
#   ./build.sh test       build (also with sanitizers) and run every test
#   ./build.sh windows    cross-compile build/win/rumble.exe with mingw-w64
#   ./build.sh format     apply .clang-format to the C sources
#
# As root it installs what is missing with apt-get.
set -eu
cd "$(dirname "$0")"
JOBS=$(nproc 2>/dev/null || echo 2)
TRIPLE=$(cc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)

apt_install() {
	if [ "$(id -u)" != 0 ]; then
		echo "build.sh: please install: $*" >&2
		exit 1
	fi
	echo "build.sh: installing $*" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq "$@" >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null && apt-get install -y -qq "$@" >/dev/null; }
}

# need PACKAGE TEST...: install PACKAGE unless the test command succeeds
need() {
	pkg=$1
	shift
	"$@" >/dev/null 2>&1 || apt_install "$pkg"
}

build_deps() {
	need gcc command -v cc
	need make command -v make
	need liblua5.1-0-dev test -f /usr/include/lua5.1/lua.h
	need libbearssl-dev test -f /usr/include/bearssl.h
}

test_deps() {
	need python3 test -x /usr/bin/python3
	need swaks command -v swaks
	need curl command -v curl
	need mutt command -v mutt
	need fetchmail command -v fetchmail
	need isync command -v mbsync
	need wine64 test -x /usr/lib/wine/wine64
	need sslscan command -v sslscan
	need openssl command -v openssl
	need python3-dnslib /usr/bin/python3 -c 'import dnslib'
	need python3-aiosmtpd /usr/bin/python3 -c 'import aiosmtpd'
	need python3-dkim /usr/bin/python3 -c 'import dkim'
	need chromium command -v chromium
	need chromium-driver command -v chromedriver
	need python3-selenium /usr/bin/python3 -c 'import selenium'
}

build() {
	build_deps
	make -s -j"$JOBS" OUT=build/rel build/rel/rumble
	cp build/rel/rumble ./rumble
}

build_asan() {
	make -s -j"$JOBS" OUT=build/asan \
		OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		build/asan/rumble build/asan/unit
}

# Adds "N passed, N failed[, N skipped]" lines of a log to the totals.
count() {
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
	p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
	f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
	s=$(echo "$line" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
	if [ -z "$line" ]; then
		echo "build.sh: $1 ended without a summary" >&2
		f=1
		p=0
	fi
	PASSED=$((PASSED + ${p:-0}))
	FAILED=$((FAILED + ${f:-0}))
	SKIPPED=$((SKIPPED + ${s:-0}))
}

run_tests() {
	build
	test_deps
	build_asan
	mkdir -p build/tmp
	PASSED=0 FAILED=0 SKIPPED=0
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	echo "== unit tests"
	UNIT_TMP=build/tmp build/asan/unit >build/unit.log 2>&1 || true
	cat build/unit.log
	count build/unit.log
	echo "== end-to-end tests (sanitizer build)"
	RUMBLE_BIN=build/asan/rumble /usr/bin/python3 tests/e2e/run.py >build/e2e.log 2>&1 || true
	cat build/e2e.log
	count build/e2e.log
	if [ "$SKIPPED" -gt 0 ]; then
		echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
	else
		echo "$PASSED passed, $FAILED failed"
	fi
	[ "$FAILED" -eq 0 ]
}

case "${1:-build}" in
build) build ;;
run)
	build
	mkdir -p data
	exec ./rumble -c conf/rumble.conf
	;;
test) run_tests ;;
windows) sh win32/build.sh ;;
format)
	command -v clang-format >/dev/null || apt_install clang-format
	clang-format -i ./*.c ./*.h posix/*.c win32/*.c tests/*.c tests/*.h
	;;
*)
	echo "usage: ./build.sh [build|run|test|windows|format]" >&2
	exit 2
	;;
esac
