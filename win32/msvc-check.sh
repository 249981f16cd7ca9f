#!/bin/sh
# win32/msvc-check.sh - what can be checked of Makefile.msvc without MSVC.
# Run from the project root after ./build.sh windows (it takes the Lua and
# BearSSL sources from build/src, libs.sh):
#
#   sh win32/msvc-check.sh
#   RUMBLE_EXE=build/msvc-check/rumble.exe /usr/bin/python3 tests/e2e/run.py test_windows
#
# It reads Makefile.msvc's macros (they are GNU make syntax too), runs its
# compile lines with clang-cl, LLVM's cl.exe work-alike (same options,
# _MSC_VER defined, the MSVC ABI), against wine's MSVC-like C library and
# Windows headers (libwine-dev), archives with llvm-lib and links with
# lld-link against wine's import libraries. rumble.exe then runs under wine:
# the tests above exercise the code that only an MSVC build compiles (the
# _MSC_VER branches of win32/os.c, BearSSL's MSVC path) and the C library's
# parameter checks of the UCRT (wine's ucrtbase, which MSVC links).
#
# What it adds to Makefile.msvc, for want of the real thing:
#   - crt.c below: MSVC's start-up code (argv, the TLS directory, atexit) is
#     in its static libraries, not in wine; /GS- for the same reason
#   - /D_UCRT: wine's headers then declare the UCRT, as MSVC's do
#   - BearSSL: BR_CLANG=0 (clang-cl would take both BearSSL's clang and MSVC
#     paths), -m flags for the intrinsics MSVC allows without them, and
#     windows.h included first in sysrng.c (wine's winnt.h and clang's
#     intrin.h disagree the other way round)
# docs/MSVC.md says what this does not prove.
set -eu

OUT=build/msvc-check
SRC=build/src
WINEINC=/usr/include/wine/wine
WINELIB=/usr/lib/x86_64-linux-gnu/wine/x86_64-windows
LLVM=$(ls -d /usr/lib/llvm-* 2>/dev/null | sort -V | tail -n 1)
CLANG_CL="$LLVM/bin/clang-cl --target=x86_64-pc-windows-msvc -fms-compatibility-version=19.38 -imsvc $WINEINC/msvcrt -imsvc $WINEINC/windows"

say() { printf 'win32/msvc-check.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

need() {
	[ -e "$2" ] && return 0
	[ "$(id -u)" = 0 ] || die "$2 missing: install $1"
	say "installing $1"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null
}

# msvc MACRO: Makefile.msvc's macro, expanded, with / for \.
msvc() {
	{
		sed -n '1,/^all:/p' Makefile.msvc | sed '$d'
		printf 'print:\n\t@printf "%%s\\n" '"'"'$(%s)'"'"'\n' "$1"
	} | make -s -f - OUT="$OUT" LUA="$SRC/lua" BEARSSL="$SRC/bearssl" print | tr '\\' /
}

[ -f Makefile.msvc ] || die "run from the project root"
[ -d "$SRC/lua/src" ] && [ -d "$SRC/bearssl/src" ] || die "no sources in $SRC: run ./build.sh windows first"
need clang "$LLVM/bin/clang-cl"
need lld /usr/bin/lld-link
need llvm "$LLVM/bin/llvm-lib"
need libwine-dev "$WINEINC/msvcrt/stdio.h"

rm -rf "$OUT"
mkdir -p "$OUT/gen" "$OUT/lua" "$OUT/win32" "$OUT/liblua" "$OUT/libbearssl"
BASE="$(msvc BASEFLAGS) /GS- /D_UCRT"
CFLAGS="$(msvc CFLAGS) /GS- /D_UCRT"

cat >"$OUT/crt.c" <<'EOF'
/* What MSVC's static CRT gives an exe: start-up with argv, the TLS
 * directory (__declspec(thread)), atexit. */
#include <windows.h>
#include <stdlib.h>
int main(int, char **);
int __cdecl _configure_narrow_argv(int mode);
int __cdecl _crt_atexit(void (*f)(void));
int _fltused = 0x9875;
ULONG _tls_index = 0;
#pragma section(".tls", read, write)
#pragma section(".tls$ZZZ", read, write)
#pragma section(".CRT$XLA", read)
#pragma section(".CRT$XLZ", read)
#pragma section(".rdata$T", read)
__declspec(allocate(".tls")) char _tls_start = 0;
__declspec(allocate(".tls$ZZZ")) char _tls_end = 0;
__declspec(allocate(".CRT$XLA")) PIMAGE_TLS_CALLBACK __xl_a = 0;
__declspec(allocate(".CRT$XLZ")) PIMAGE_TLS_CALLBACK __xl_z = 0;
__declspec(allocate(".rdata$T")) const IMAGE_TLS_DIRECTORY64 _tls_used = {
	(ULONGLONG)&_tls_start, (ULONGLONG)&_tls_end, (ULONGLONG)&_tls_index,
	(ULONGLONG)(&__xl_a + 1), 0, 0};
static int __cdecl crt_atexit(void (*f)(void)) { return _crt_atexit(f); }
int(__cdecl *__imp_atexit)(void (*)(void)) = crt_atexit;
void __cdecl mainCRTStartup(void)
{
	_configure_narrow_argv(2);
	exit(main(*__p___argc(), *__p___argv()));
}
EOF

say "lua.lib"
# shellcheck disable=SC2046 # the macros are word lists without spaces in names
$CLANG_CL $BASE /W1 /c /Fo"$OUT/liblua/" $(msvc LUA_C)
"$LLVM/bin/llvm-lib" /nologo /out:"$OUT/lua.lib" "$OUT"/liblua/*.obj

say "bearssl.lib"
BSSL="$BASE /W1 /I$SRC/bearssl/inc /I$SRC/bearssl/src /DBR_CLANG=0"
# shellcheck disable=SC2046
$CLANG_CL $BSSL /clang:-mpclmul /clang:-maes /clang:-msse4.1 /clang:-mrdrnd /c \
	/Fo"$OUT/libbearssl/" $(for f in $(msvc BEARSSL_C); do echo $f; done | grep -v /sysrng.c)
$CLANG_CL $BSSL /clang:-mrdrnd /FIwindows.h /c /Fo"$OUT/libbearssl/" "$SRC/bearssl/src/rand/sysrng.c"
"$LLVM/bin/llvm-lib" /nologo /out:"$OUT/bearssl.lib" "$OUT"/libbearssl/*.obj

say "rumble.exe"
cc -O2 -o "$OUT/embed" tools/embed.c # embed.exe would run on the build machine
"$OUT/embed" webadmin_lua lua/webadmin.lua "$OUT/gen/webadmin_lua.h"
for obj in $(msvc OBJ); do
	src=${obj#"$OUT"/}
	$CLANG_CL $CFLAGS /c /Fo"$obj" "${src%.obj}.c"
done
$CLANG_CL /nologo /O2 /GS- /D_UCRT /c /Fo"$OUT/crt.obj" "$OUT/crt.c"
# shellcheck disable=SC2046
lld-link /nologo /subsystem:console /entry:mainCRTStartup /nodefaultlib /out:"$OUT/rumble.exe" \
	$(msvc OBJ) "$OUT/crt.obj" "$OUT/lua.lib" "$OUT/bearssl.lib" "$WINELIB/libucrtbase.a" \
	"$WINELIB/libkernel32.a" "$WINELIB/libntdll.a" \
	$(for l in $(msvc SYSLIBS); do echo "$WINELIB/lib${l%.lib}.a"; done)
echo "$OUT/rumble.exe"
