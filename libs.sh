# libs.sh - Lua 5.1 and BearSSL built from their Debian source packages,
# once per target. Sourced (POSIX sh) by build.sh and win32/build.sh from
# the project root; nothing here is committed output, all of it lives in
# build/:
#   build/src/            the Debian source packages and their unpacked trees
#   build/src/apt/        a private apt configuration (the system's is left
#                         alone): a deb-src line for the system's own mirror
#   DIR/liblua.a, DIR/libbearssl.a, DIR/obj/   what libs_build makes
# Debian's patches are not applied: Rumble needs Lua 5.1.5 as released
# (lua/pcall.c checks the layout of its lua_State at start-up).

LIBS_SRC=build/src # relative: the paths given to compilers stay free of spaces

libs_say() { printf 'libs.sh: %s\n' "$*" >&2; }
libs_die() {
	libs_say "$*"
	exit 1
}
libs_first() {
	for l_f in "$@"; do
		if [ -e "$l_f" ]; then
			echo "$l_f"
			break
		fi
	done
}

libs_ncpu() {
	l_n=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
	[ "$l_n" -ge 1 ] 2>/dev/null || l_n=2
	echo "$l_n"
}

# The Debian mirror and suite this system uses (RUMBLE_DEBIAN_MIRROR and
# RUMBLE_DEBIAN_SUITE override them).
libs_mirror() {
	[ -n "${RUMBLE_DEBIAN_MIRROR:-}" ] && { echo "$RUMBLE_DEBIAN_MIRROR"; return 0; }
	l_m=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/*$/\1/p' \
		/etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
	[ -n "$l_m" ] || l_m=$(sed -n 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]*\)\{0,1\}\([^[:space:]]*\/debian\)\/*[[:space:]].*/\2/p' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n 1)
	[ -n "$l_m" ] || libs_die "no Debian mirror in /etc/apt: set RUMBLE_DEBIAN_MIRROR"
	echo "$l_m"
}

libs_suite() {
	l_s=${RUMBLE_DEBIAN_SUITE:-}
	[ -n "$l_s" ] || l_s=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null)
	echo "${l_s:-bookworm}"
}

# apt-get with every path that matters pointed into build/src/apt. The
# download runs as the caller: apt's own user may not enter build/.
libs_apt() {
	l_a=$LIBS_APT
	apt-get -o Dir::Etc::sourcelist="$l_a/sources.list" -o Dir::Etc::sourceparts="$l_a/parts" \
		-o Dir::State::lists="$l_a/lists" -o Dir::Cache="$l_a/cache" \
		-o APT::Sandbox::User="$(id -un)" "$@"
}

# libs_download PACKAGE...: their Debian sources into build/src.
libs_download() {
	command -v apt-get >/dev/null 2>&1 ||
		libs_die "no apt-get: put the sources of $* (*.orig.tar.*) in $LIBS_SRC"
	LIBS_APT=$(pwd)/$LIBS_SRC/apt # apt wants absolute paths
	l_a=$LIBS_APT
	mkdir -p "$l_a/lists/partial" "$l_a/cache/archives/partial" "$l_a/parts"
	if [ ! -f "$l_a/sources.list" ]; then
		l_key=/usr/share/keyrings/debian-archive-keyring.gpg
		l_opt=
		[ -f "$l_key" ] && l_opt="[signed-by=$l_key] "
		echo "deb-src $l_opt$(libs_mirror) $(libs_suite) main" >"$l_a/sources.list.tmp"
		libs_apt -qq -o Dir::Etc::sourcelist="$l_a/sources.list.tmp" update
		mv "$l_a/sources.list.tmp" "$l_a/sources.list"
	fi
	libs_say "fetching the sources of $* ($(libs_suite))"
	(cd "$LIBS_SRC" && libs_apt -qq source --download-only "$@")
}

# libs_unpack DIR TARBALL...: the first existing tarball into build/src/DIR.
libs_unpack() {
	[ -d "$LIBS_SRC/$1" ] && return 0
	l_udir=$1
	shift
	l_tarball=$(libs_first "$@")
	[ -n "$l_tarball" ] || libs_die "no $* in $LIBS_SRC"
	rm -rf "$LIBS_SRC/$l_udir.tmp"
	mkdir -p "$LIBS_SRC/$l_udir.tmp"
	case $l_tarball in
	*.asc) libs_die "no tarball of $l_udir in $LIBS_SRC" ;;
	*.xz) xz -dc "$l_tarball" | tar -xf - -C "$LIBS_SRC/$l_udir.tmp" --strip-components=1 ;;
	*) gzip -dc "$l_tarball" | tar -xf - -C "$LIBS_SRC/$l_udir.tmp" --strip-components=1 ;;
	esac
	mv "$LIBS_SRC/$l_udir.tmp" "$LIBS_SRC/$l_udir"
}

# libs_fetch [PACKAGE DIR]...: the sources of each Debian source PACKAGE,
# downloaded and unpacked into build/src/DIR once for every target (by
# default Lua 5.1 and BearSSL).
libs_fetch() {
	[ $# -gt 0 ] || set -- lua5.1 lua bearssl bearssl
	mkdir -p "$LIBS_SRC"
	l_missing=
	l_all="$*"
	while [ $# -gt 1 ]; do
		[ -n "$(libs_first "$LIBS_SRC/$1"_*.orig.tar.*)" ] || l_missing="$l_missing $1"
		shift 2
	done
	# shellcheck disable=SC2086 # package names
	[ -z "$l_missing" ] || libs_download $l_missing
	# shellcheck disable=SC2086
	set -- $l_all
	while [ $# -gt 1 ]; do
		libs_unpack "$2" "$LIBS_SRC/$1"_*.orig.tar.*
		shift 2
	done
}

# libs_compile NAME DIR CC AR FLAGS FILE...: every file to DIR/obj/NAME/
# in parallel, then the archive DIR/libNAME.a.
libs_compile() {
	l_name=$1 l_dir=$2 l_cc=$3 l_ar=$4 l_flags=$5
	shift 5
	l_obj=$l_dir/obj/$l_name
	rm -rf "$l_obj"
	mkdir -p "$l_obj"
	for l_f in "$@"; do
		l_o=$(printf '%s' "${l_f#"$LIBS_SRC"/}" | tr '/' '_')
		printf '%s %s\n' "$l_f" "$l_obj/${l_o%.c}.o"
	done | xargs -P "$(libs_ncpu)" -n 2 sh -c "$l_cc $l_flags -c -o \"\$2\" \"\$1\" || exit 255" sh
	rm -f "$l_dir/lib$l_name.a.tmp"
	$l_ar rcs "$l_dir/lib$l_name.a.tmp" "$l_obj"/*.o
	mv "$l_dir/lib$l_name.a.tmp" "$l_dir/lib$l_name.a"
}

# libs_build DIR CC AR FLAGS: DIR/liblua.a and DIR/libbearssl.a, each
# unless it exists. FLAGS are the compiler flags of both (optimisation,
# target defines); warnings are off: the code is not ours.
libs_build() {
	l_dir=$1 l_cc=$2 l_ar=$3 l_flags="$4 -w"
	mkdir -p "$l_dir"
	# other flags or another compiler: build again
	if [ "$(cat "$l_dir/libs.flags" 2>/dev/null)" != "$l_cc $l_flags" ]; then
		rm -f "$l_dir/liblua.a" "$l_dir/libbearssl.a"
		echo "$l_cc $l_flags" >"$l_dir/libs.flags"
	fi
	if [ ! -f "$l_dir/liblua.a" ]; then
		libs_say "building $l_dir/liblua.a"
		set --
		for l_f in "$LIBS_SRC"/lua/src/*.c; do
			case ${l_f##*/} in
			lua.c | luac.c | print.c) ;; # the stand-alone programs
			*) set -- "$@" "$l_f" ;;
			esac
		done
		libs_compile lua "$l_dir" "$l_cc" "$l_ar" "$l_flags" "$@"
	fi
	if [ ! -f "$l_dir/libbearssl.a" ]; then
		libs_say "building $l_dir/libbearssl.a"
		# shellcheck disable=SC2046 # relative paths without spaces
		set -- $(find "$LIBS_SRC/bearssl/src" -name '*.c' | sort)
		libs_compile bearssl "$l_dir" "$l_cc" "$l_ar" \
			"$l_flags -I$LIBS_SRC/bearssl/inc -I$LIBS_SRC/bearssl/src" "$@"
	fi
}

# libs_musl DIR TRIPLE: musl, from Debian's source package, built with the
# cross compiler TRIPLE-gcc into DIR/musl (static only), with its gcc
# wrapper DIR/musl/bin/musl-gcc. Debian has no musl cross toolchains;
# musl's own wrapper turns the glibc-targeted cross gcc into one.
libs_musl() {
	l_dir=$1 l_triple=$2
	l_prefix=$(pwd)/$l_dir/musl
	[ -x "$l_prefix/bin/musl-gcc" ] && [ -f "$l_prefix/lib/libc.a" ] && return 0
	libs_fetch musl musl
	libs_say "building musl for $l_triple"
	rm -rf "$l_dir/musl-obj" "$l_prefix"
	mkdir -p "$l_dir/musl-obj"
	l_src=$(pwd)/$LIBS_SRC/musl
	(
		cd "$l_dir/musl-obj"
		"$l_src/configure" --target="$l_triple" CC="$l_triple-gcc" \
			CROSS_COMPILE="$l_triple-" CFLAGS=-Os --prefix="$l_prefix" \
			--disable-shared --enable-wrapper=gcc >configure.log
		make -s -j"$(libs_ncpu)" >make.log 2>&1 && make -s install >>make.log 2>&1
	) || libs_die "musl for $l_triple did not build: see $l_dir/musl-obj/"
	rm -rf "$l_dir/musl-obj"
}
