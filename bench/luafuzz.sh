#!/bin/sh
# bench/luafuzz.sh - the long run of the Lua fuzz driver (tests/luafuzz.py).
#
#   bench/luafuzz.sh [SECONDS] [FIRST-SEED]       (defaults 1800 and 1000)
#
# Runs random scripts over the whole Lua API in one server (RUMBLE_BIN,
# default the sanitizer build build/asan/rumble, built if missing), a
# reload (SIGHUP) per script and a batch of client sessions each, for
# SECONDS, then stops it with SIGTERM. Prints a line per 50 scripts and the
# figures: scripts/s, sessions, sessions/s, RSS after warm-up (the first
# tenth) and at the end, the findings (saved in build/fuzz-findings/). The
# RSS samples go to build/luafuzz-rss.txt ("sessions kB" per script).
# LUAFUZZ_ARGS adds driver options: "--open" leaves out the classes of
# open findings (luafuzz.py OPEN), "--sessions 40" makes more sessions per
# script. Exit status 1 when there was a finding.
#
# Measured 2026-12-06 (2 cores, with other jobs running): 1800 s, seeds
# 1000-2073, 1,074 scripts and 20,406 sessions (0.6 scripts/s, 11.3
# sessions/s) under ASan+UBSan, no finding, exit 0 on SIGTERM, nothing
# from LeakSanitizer. The release build, leaving out the classes that run
# to LuaTimeLimit in every hook (--skip loop,catchloop,handlerloop,bomb,
# fullstate,slowop,recurse,helperhog,selfsend --sessions 60): 18,900
# sessions, RSS 3.2 MB after the first 3,000 and 3.7 MB at the end.
# bench/luasessions.py measures RSS over 100,000 scripted sessions.
set -eu
cd "$(dirname "$0")/.."
BIN=${RUMBLE_BIN:-build/asan/rumble}
if [ ! -x "$BIN" ]; then
	make -s -j2 OUT=build/asan \
		OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		build/asan/rumble
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3 # Debian's, as the tests use
# shellcheck disable=SC2086
exec $PY tests/luafuzz.py --bin "$BIN" --duration "${1:-1800}" --start "${2:-1000}" \
	--rss-log build/luafuzz-rss.txt ${LUAFUZZ_ARGS:-}
