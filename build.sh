#!/bin/sh
# build.sh - build, run and test Rumble.
#
#   ./build.sh            build ./rumble: static (musl), stripped, x86-64
#   ./build.sh run        build, then run it with conf/rumble.conf
#   ./build.sh test       build, then every test: unit tests and the Lua
#                         end-to-end tests under ASan+UBSan, every end-to-end
#                         test against ./rumble, the smoke test under qemu
#                         for ARMv7 and big-endian MIPS (and wine for 64-bit
#                         Windows when mingw-w64 is installed)
#   ./build.sh dist       every release target into dist/, each smoke-tested
#                         (qemu-user, wine), with SHA256SUMS and SIZES
#   ./build.sh dev        the glibc builds for debugging: build/dev/rumble
#                         (-O2 -g) and build/asan/ (sanitizers)
#   ./build.sh target T   one target (see TARGETS) into build/T/
#   ./build.sh windows    cross-compile build/win/rumble.exe (win32/build.sh)
#   ./build.sh format     apply .clang-format to the C sources
#   ./build.sh fuzz [S]   the libFuzzer targets of SMTP and POP3 over
#                         in-memory sessions into build/fuzz/ (clang,
#                         ASan+UBSan), each run S seconds (default 10)
#
# Lua 5.1 and BearSSL are built from their Debian source packages in
# build/ for each target (libs.sh). As root it installs what is missing
# with apt-get.
set -eu
cd "$(dirname "$0")"
. ./libs.sh
JOBS=$(libs_ncpu)

# Every release target. The Linux ones link musl statically: Debian's
# musl-gcc for x86_64, musl built from its Debian source package with
# Debian's cross compilers for the others (libs.sh; docs/ARCHITECTURE.md
# says why).
TARGETS="x86_64 arm64 armhf armel mips mipsel win64 win32"
TEST_TARGETS="x86_64 armhf mips"

# Size-first code generation for the release builds: -Os, every function
# and object in its own section so that --gc-sections drops what nothing
# uses, no unwind tables (C, no exceptions; backtraces come from dev).
REL_OPT="-Os -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables"
REL_LD="-static -s -Wl,--gc-sections"
# Lua and BearSSL: the same, plus 64-bit file offsets and time_t on 32-bit
# glibc (Makefile does it for ours) and Lua's POSIX features, no dlopen.
LIB_OPT="$REL_OPT -D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64 -DLUA_USE_POSIX"

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

common_deps() {
	need gcc command -v gcc # musl-gcc wraps it; musl's configure wants a host cc
	need make command -v make
	need xz-utils command -v xz
	need ca-certificates test -d /etc/ssl/certs
	# the common-password list compiled in (tools/passwords.py)
	need python3 test -x /usr/bin/python3
	need python3-zxcvbn /usr/bin/python3 -c 'import zxcvbn'
	# compiled into dmarc.c's table by tools/pslgen.c (Makefile)
	need publicsuffix test -f /usr/share/publicsuffix/public_suffix_list.dat
}

dev_deps() {
	common_deps
	need gcc command -v cc
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
	need offlineimap3 command -v offlineimap
	need wine64 test -x /usr/lib/wine/wine64
	need sslscan command -v sslscan
	need openssl command -v openssl
	need python3-dnslib /usr/bin/python3 -c 'import dnslib'
	need fail2ban command -v fail2ban-regex # test_logs runs README's filter
	need pebble test -x /usr/bin/pebble
	need python3-aiosmtpd /usr/bin/python3 -c 'import aiosmtpd'
	need python3-dkim /usr/bin/python3 -c 'import dkim'
	need python3-nacl /usr/bin/python3 -c 'import nacl' # ed25519-sha256 signing
	need chromium command -v chromium
	need chromium-driver command -v chromedriver
	need python3-selenium /usr/bin/python3 -c 'import selenium'
	need dovecot-sieve command -v sieve-test # test_sieve.py: Pigeonhole agrees
	need sieve-connect command -v sieve-connect # test_managesieve.py: a real client
	# test_import.py has Dovecot's imap write a Maildir (no daemon)
	need dovecot-imapd test -x /usr/lib/dovecot/imap
	need dovecot-core command -v doveadm
}

# ---- targets ----

# target_info T: sets CC, AR, PKG (Debian package of the compiler), DIR,
# EXE, RUN (the command that runs a program of T here) and TRIPLE (the
# cross compiler's, for musl) for target T.
target_info() {
	EXE= RUN= TRIPLE=
	case $1 in
	x86_64) CC=musl-gcc AR=ar PKG=musl-tools DIR=build/rel ;;
	arm64) cross aarch64-linux-gnu qemu-aarch64-static ;;
	armhf) cross arm-linux-gnueabihf qemu-arm-static ;;
	armel) cross arm-linux-gnueabi qemu-arm-static ;;
	mips) cross mips-linux-gnu qemu-mips-static ;;
	mipsel) cross mipsel-linux-gnu qemu-mipsel-static ;;
	win64) CC=x86_64-w64-mingw32-gcc PKG=mingw-w64 DIR=build/win EXE=.exe RUN=/usr/lib/wine/wine64 ;;
	win32) CC=i686-w64-mingw32-gcc PKG=mingw-w64 DIR=build/win32 EXE=.exe RUN=/usr/lib/wine/wine ;;
	*)
		echo "build.sh: unknown target $1 (one of: $TARGETS)" >&2
		exit 2
		;;
	esac
	[ "$1" = "${1#win}" ] || AR=${CC%gcc}ar
	DIR=${DIR:-build/$1}
}

cross() {
	TRIPLE=$1 CC=$1-gcc AR=$1-ar PKG=gcc-$1 DIR= RUN=$2
}

# build_target T: DIR/rumble (or rumble.exe) for target T.
build_target() {
	target_info "$1"
	common_deps
	need "$PKG" command -v "$CC"
	case $1 in
	win*) ;;
	x86_64) ;;
	*) need qemu-user-static command -v "$RUN" ;;
	esac
	libs_fetch
	case $1 in
	win64) sh win32/build.sh >/dev/null ;;
	win32) RUMBLE_WIN_ARCH=i686 sh win32/build.sh >/dev/null ;;
	*)
		if [ -n "$TRIPLE" ]; then
			libs_musl "$DIR" "$TRIPLE"
			CC=$(pwd)/$DIR/musl/bin/musl-gcc
		fi
		libs_build "$DIR/lib" "$CC" "$AR" "$LIB_OPT"
		make -s -j"$JOBS" OUT="$DIR" CC="$CC" OPT="$REL_OPT" \
			LUA_INC="$LIBS_SRC/lua/src" LUA_A="$DIR/lib/liblua.a" \
			SSL_INC="$LIBS_SRC/bearssl/inc" SSL_A="$DIR/lib/libbearssl.a" \
			SYSLIBS="-lpthread -lm" EXTRA_LDFLAGS="$REL_LD" "$DIR/rumble"
		;;
	esac
}

build() {
	build_target x86_64
	cp build/rel/rumble ./rumble
}

build_dev() {
	dev_deps
	make -s -j"$JOBS" OUT=build/dev OPT="-O2 -g" SYSLIBS="-lpthread -lm -ldl" build/dev/rumble
}

build_asan() {
	dev_deps
	make -s -j"$JOBS" OUT=build/asan SYSLIBS="-lpthread -lm -ldl" \
		OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		build/asan/rumble build/asan/unit
}

# The SMTP, POP3, Sieve and ManageSieve fuzzers (tests/fuzz_*.c), each run $1 seconds from
# its seeds (tests/fuzz/*/) with its dictionary; new inputs go to
# build/fuzz/corpus-*, crashes to build/fuzz/.
build_fuzz() {
	dev_deps
	need clang command -v clang
	need libclang-rt-14-dev sh -c 'ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a'
	m=$(gcc -dumpmachine) # clang says x86_64-pc-linux-gnu, Debian's path does not
	make -s -j"$JOBS" CC=clang OUT=build/fuzz SYSLIBS="-lpthread -lm -ldl" \
		LUA_A=/usr/lib/$m/liblua5.1.a SSL_A=/usr/lib/$m/libbearssl.a \
		OPT="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		fuzz
	for f in smtp pop3 sieve managesieve; do
		mkdir -p build/fuzz/corpus-$f
		(cd build/fuzz && nice ./fuzz_$f -max_total_time="${1:-10}" -max_len=8192 \
			-dict=../../tests/fuzz_$f.dict -print_final_stats=1 \
			corpus-$f ../../tests/fuzz/$f) >build/fuzz/$f.log 2>&1 || {
			tail -n 40 build/fuzz/$f.log
			echo "build.sh: fuzz_$f failed (build/fuzz/$f.log)" >&2
			return 1
		}
		grep -E '^stat::number_of_executed_units|^Done' build/fuzz/$f.log | sed "s/^/fuzz_$f: /"
	done
}

# ---- tests ----

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

# step TITLE LOG COMMAND...: runs a test program, shows and counts its log.
step() {
	title=$1 log=$2
	shift 2
	echo "== $title"
	"$@" >"$log" 2>&1 || true
	cat "$log"
	count "$log"
}

# smoke T...: the smoke test of each target, one store passed from each
# to the next (tests/e2e/smoke.py).
smoke() {
	set --
	for t in $SMOKE; do
		target_info "$t"
		set -- "$@" "$t=$RUN${RUN:+ }$DIR/rumble$EXE"
	done
	/usr/bin/python3 tests/e2e/smoke.py "$@"
}

summary() {
	if [ "$SKIPPED" -gt 0 ]; then
		echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
	else
		echo "$PASSED passed, $FAILED failed"
	fi
	[ "$FAILED" -eq 0 ]
}

run_tests() {
	# and 64-bit Windows where mingw-w64 is there (.ci/run builds it first)
	command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 && TEST_TARGETS="$TEST_TARGETS win64"
	for t in $TEST_TARGETS; do
		build_target "$t"
	done
	cp build/rel/rumble ./rumble
	test_deps
	build_asan
	mkdir -p build/tmp
	PASSED=0 FAILED=0 SKIPPED=0
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	step "unit tests (sanitizer build)" build/unit.log env UNIT_TMP=build/tmp build/asan/unit
	step "Lua end-to-end tests (sanitizer build)" build/e2e-asan.log \
		env RUMBLE_BIN=build/asan/rumble /usr/bin/python3 tests/e2e/run.py test_lua
	step "end-to-end tests (static build)" build/e2e.log \
		env RUMBLE_BIN=build/rel/rumble /usr/bin/python3 tests/e2e/run.py -test_luafuzz
	SMOKE=$TEST_TARGETS
	step "smoke test: $SMOKE" build/smoke.log smoke
	summary
}

# ---- release ----

dist() {
	for t in $TARGETS; do
		build_target "$t"
	done
	test_deps
	mkdir -p build/tmp
	PASSED=0 FAILED=0 SKIPPED=0
	SMOKE=$TARGETS
	step "smoke test: $SMOKE" build/smoke-dist.log smoke
	rm -rf dist
	mkdir -p dist
	v=$(sed -n 's/^#define RUMBLE_VERSION "\(.*\)"/\1/p' rumble.h)
	for t in $TARGETS; do
		target_info "$t"
		case $t in
		win64) name=windows-x86_64 ;;
		win32) name=windows-x86 ;;
		*) name=linux-$t ;;
		esac
		cp "$DIR/rumble$EXE" "dist/rumble-$v-$name$EXE"
		case $t in win*) ${CC%gcc}strip "dist/rumble-$v-$name$EXE" ;; esac
	done
	(cd dist && sha256sum rumble-* >SHA256SUMS)
	sh bench/footprint.sh dist | tee dist/SIZES
	summary
}

case "${1:-build}" in
build) build ;;
dev)
	build_dev
	build_asan
	;;
run)
	build
	mkdir -p data
	exec ./rumble -c conf/rumble.conf
	;;
test) run_tests ;;
dist) dist ;;
target)
	build_target "${2:?usage: ./build.sh target T}"
	echo "$DIR/rumble$EXE"
	;;
windows) sh win32/build.sh ;;
fuzz) build_fuzz "${2:-10}" ;;
format)
	command -v clang-format >/dev/null || apt_install clang-format
	clang-format -i ./*.c ./*.h posix/*.c win32/*.c tests/*.c tests/*.h
	;;
*)
	echo "usage: ./build.sh [build|run|test|dist|dev|target T|windows|format|fuzz [S]]" >&2
	exit 2
	;;
esac
