#!/bin/sh
# win32/build.sh - cross-compiles rumble.exe for 64-bit Windows with
# mingw-w64. Run from the project root (./build.sh windows calls it as
# "sh win32/build.sh"). Steps, each skipped when its output exists:
#   1. the mingw-w64 compiler (apt-get, as root)
#   2. the Debian sources of Lua 5.1 and BearSSL, fetched with a private
#      apt configuration so that the system's apt setup is left alone
#   3. build/win/liblua.a and build/win/libbearssl.a
#   4. build/win/rumble.exe through the Makefile
set -eu

CC=x86_64-w64-mingw32-gcc
AR=x86_64-w64-mingw32-ar
SUITE=${RUMBLE_DEBIAN_SUITE:-bookworm}
MIRROR=${RUMBLE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
W=build/win # relative: the paths given to the compiler stay free of spaces
SRC=$W/src
APT=$(pwd)/$W/apt # apt wants absolute paths
LIBCFLAGS="-O2 -w"
# advapi32 (RtlGenRandom, BearSSL's CryptGenRandom) is a default library of
# mingw-w64 gcc; named anyway so that the list is complete. iphlpapi:
# GetNetworkParams, the system's DNS servers (dns.c). shell32:
# CommandLineToArgvW, the UTF-16 command line (os_args_utf8).
SYSLIBS="-lws2_32 -ladvapi32 -liphlpapi -lshell32"

say() { printf 'win32/build.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
first() {
	for f in "$@"; do
		if [ -e "$f" ]; then
			echo "$f"
			break
		fi
	done
}

ncpu() {
	n=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
	[ "$n" -ge 1 ] 2>/dev/null || n=2
	echo "$n"
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

# ---- 2. sources ----
# apt-get with every path that matters pointed into build/win/apt. The
# download runs as the caller: apt's own user may not enter build/win.
private_apt() {
	apt-get -o Dir::Etc::sourcelist="$APT/sources.list" -o Dir::Etc::sourceparts=- \
		-o Dir::State::lists="$APT/lists" -o Dir::Cache="$APT/cache" \
		-o APT::Sandbox::User="$(id -un)" "$@"
}

fetch_sources() {
	lua_tgz=$(first "$SRC"/lua5.1_*.orig.tar.gz)
	ssl_txz=$(first "$SRC"/bearssl_*.orig.tar.*)
	[ -n "$lua_tgz" ] && [ -n "$ssl_txz" ] && return 0
	command -v apt-get >/dev/null 2>&1 ||
		die "no apt-get: put lua5.1_*.orig.tar.gz and bearssl_*.orig.tar.xz in $SRC"
	mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$SRC"
	key=/usr/share/keyrings/debian-archive-keyring.gpg
	opt=
	[ -f "$key" ] && opt="[signed-by=$key] "
	echo "deb-src $opt$MIRROR $SUITE main" >"$APT/sources.list"
	say "fetching the Lua 5.1 and BearSSL sources ($SUITE)"
	private_apt update
	(cd "$SRC" && private_apt source --download-only lua5.1 bearssl)
}

# unpack DIR TARBALL...: the first existing tarball into $SRC/DIR (Debian
# patches are not needed).
unpack() {
	[ -d "$SRC/$1" ] && return 0
	dir=$1
	shift
	tarball=$(first "$@")
	[ -n "$tarball" ] || die "no $* in $SRC"
	set -- "$dir"
	rm -rf "$SRC/$1.tmp"
	mkdir -p "$SRC/$1.tmp"
	case $tarball in
	*.xz) xz -dc "$tarball" | tar -xf - -C "$SRC/$1.tmp" --strip-components=1 ;;
	*) gzip -dc "$tarball" | tar -xf - -C "$SRC/$1.tmp" --strip-components=1 ;;
	esac
	mv "$SRC/$1.tmp" "$SRC/$1"
}

# ---- 3. libraries ----
# compile_lib NAME OBJDIR CFLAGS FILE...: every file to OBJDIR/<path with
# / as _>.o in parallel, then the archive build/win/libNAME.a.
compile_lib() {
	name=$1 obj=$2 flags=$3
	shift 3
	rm -rf "$obj"
	mkdir -p "$obj"
	for f in "$@"; do
		o=$(printf '%s' "${f#"$SRC"/}" | tr '/' '_')
		printf '%s %s\n' "$f" "$obj/${o%.c}.o"
	done | xargs -P "$(ncpu)" -n 2 sh -c "$CC $flags -c -o \"\$2\" \"\$1\" || exit 255" sh
	rm -f "$W/lib$name.a.tmp"
	$AR rcs "$W/lib$name.a.tmp" "$obj"/*.o
	mv "$W/lib$name.a.tmp" "$W/lib$name.a"
}

build_lua() {
	[ -f "$W/liblua.a" ] && return 0
	say "building liblua.a"
	set --
	for f in "$SRC"/lua/src/*.c; do
		case ${f##*/} in
		lua.c | luac.c | print.c) ;; # the stand-alone programs
		*) set -- "$@" "$f" ;;
		esac
	done
	compile_lib lua "$W/obj/lua" "$LIBCFLAGS" "$@"
}

build_bearssl() {
	[ -f "$W/libbearssl.a" ] && return 0
	say "building libbearssl.a"
	# shellcheck disable=SC2046 # relative paths without spaces
	set -- $(find "$SRC/bearssl/src" -name '*.c' | sort)
	compile_lib bearssl "$W/obj/bearssl" "$LIBCFLAGS -I$SRC/bearssl/inc -I$SRC/bearssl/src" "$@"
}

# ---- 4. rumble.exe ----
# -static: no DLL beyond the system's (msvcrt, kernel32, ws2_32, advapi32).
build_rumble() {
	say "building rumble.exe"
	make -s -j"$(ncpu)" OUT=build/win PLAT=win32 EXE=.exe CC="$CC" \
		LUA_INC="$SRC/lua/src" LUA_A="$W/liblua.a" \
		SSL_INC="$SRC/bearssl/inc" SSL_A="$W/libbearssl.a" \
		SYSLIBS="$SYSLIBS" EXTRA_LDFLAGS=-static
	echo "$W/rumble.exe"
}

if [ ! -f Makefile ] || [ ! -f os.h ]; then
	die "run from the project root"
fi
need_compiler
mkdir -p "$SRC"
fetch_sources
unpack lua "$SRC"/lua5.1_*.orig.tar.gz
unpack bearssl "$SRC"/bearssl_*.orig.tar.*
build_lua
build_bearssl
build_rumble
