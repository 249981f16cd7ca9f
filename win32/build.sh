#!/bin/sh
# win32/build.sh - cross-compiles rumble.exe for Windows with mingw-w64:
# 64-bit into build/win, or 32-bit (RUMBLE_WIN_ARCH=i686) into build/win32.
# Run from the project root (./build.sh windows calls it as
# "sh win32/build.sh"). Steps, each skipped when its output exists:
#   1. the mingw-w64 compiler (apt-get, as root)
#   2. the Debian sources of Lua 5.1 and BearSSL, and
#   3. OUT/lib/liblua.a and OUT/lib/libbearssl.a (both: libs.sh, shared
#      with the Linux targets of build.sh)
#   4. OUT/rumble.exe through the Makefile
set -eu

ARCH=${RUMBLE_WIN_ARCH:-x86_64}
CC=$ARCH-w64-mingw32-gcc
AR=$ARCH-w64-mingw32-ar
case $ARCH in
x86_64) W=build/win ;; # relative: the paths given to the compiler stay free of spaces
*) W=build/win32 ;;
esac
LIBCFLAGS="-O2"
# advapi32 (RtlGenRandom, BearSSL's CryptGenRandom) is a default library of
# mingw-w64 gcc; named anyway so that the list is complete. iphlpapi:
# GetNetworkParams, the system's DNS servers (dns.c). shell32:
# CommandLineToArgvW, the UTF-16 command line (os_args_utf8).
SYSLIBS="-lws2_32 -ladvapi32 -liphlpapi -lshell32"

say() { printf 'win32/build.sh: %s\n' "$*" >&2; }
die() {
	say "$*"
	exit 1
}

# ---- 1. compiler ----
need_compiler() {
	command -v "$CC" >/dev/null 2>&1 && return 0
	[ "$(id -u)" = 0 ] || die "$CC not found; install mingw-w64 (as root: apt-get install mingw-w64)"
	command -v apt-get >/dev/null 2>&1 || die "$CC not found and there is no apt-get to install it"
	say "installing mingw-w64"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y mingw-w64 || { apt-get update && apt-get install -y mingw-w64; }
	command -v "$CC" >/dev/null 2>&1 || die "$CC still missing after installing mingw-w64"
}

# The common-password list compiled in (Makefile: tools/passwords.py).
need_passwords() {
	/usr/bin/python3 -c 'import zxcvbn' >/dev/null 2>&1 && return 0
	[ "$(id -u)" = 0 ] || die "python3-zxcvbn not found; install it (as root: apt-get install python3-zxcvbn)"
	say "installing python3-zxcvbn"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y python3-zxcvbn || { apt-get update && apt-get install -y python3-zxcvbn; }
}

# ---- 4. rumble.exe ----
# -static: no DLL beyond the system's (msvcrt, kernel32, ws2_32, advapi32).
build_rumble() {
	say "building $W/rumble.exe"
	make -s -j"$(libs_ncpu)" OUT=$W PLAT=win32 EXE=.exe CC="$CC" \
		LUA_INC="$LIBS_SRC/lua/src" LUA_A="$W/lib/liblua.a" \
		SSL_INC="$LIBS_SRC/bearssl/inc" SSL_A="$W/lib/libbearssl.a" \
		SYSLIBS="$SYSLIBS" EXTRA_LDFLAGS=-static
	echo "$W/rumble.exe"
}

if [ ! -f Makefile ] || [ ! -f os.h ] || [ ! -f libs.sh ]; then
	die "run from the project root"
fi
. ./libs.sh
need_compiler
need_passwords
libs_fetch
libs_build "$W/lib" "$CC" "$AR" "$LIBCFLAGS"
build_rumble
