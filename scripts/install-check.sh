#!/bin/sh
# install-check.sh - make install into a temporary DESTDIR, then build and
# run examples/quickstart.c against it with nothing but pkg-config (shared
# and from libkv.a through libkv-static.pc), run the installed kvctl, and check that make uninstall
# leaves no file behind.
set -eu
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
prefix=/usr
make -s install DESTDIR="$root" PREFIX=$prefix >/dev/null

export PKG_CONFIG_PATH="$root$prefix/lib/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$root"
cc=${CC:-cc}
pass=0 fail=0
check() { if "$@"; then pass=$((pass + 1)); else echo "install: FAILED: $*"; fail=$((fail + 1)); fi; }

# shellcheck disable=SC2046
check $cc -std=c11 -o "$root/qs" examples/quickstart.c $(pkg-config --cflags --libs libkv)
check env LD_LIBRARY_PATH="$root$prefix/lib" "$root/qs" "$root/store1"
# shellcheck disable=SC2046
check $cc -std=c11 -o "$root/qs-static" examples/quickstart.c \
	$(pkg-config --cflags --libs libkv-static)
check "$root/qs-static" "$root/store2"
# Linked from the archive: the program must not need libkv.so.
check sh -c "! readelf -d '$root/qs-static' | grep -q 'NEEDED.*libkv'"
check test -x "$root$prefix/bin/kvctl"
check "$root$prefix/bin/kvrepl" --version
check test -f "$root$prefix/share/man/man1/kvrepl.1"
check test -f "$root$prefix/share/man/man3/kv_put_ttl.3"
check grep -q '^\.so man3/kv_put\.3$' "$root$prefix/share/man/man3/kv_put_ttl.3"
check test -L "$root$prefix/lib/libkv.so.0"
check sh -c "readelf -d '$root$prefix/lib/libkv.so' | grep -q 'SONAME.*libkv.so.0'"

make -s uninstall DESTDIR="$root" PREFIX=$prefix >/dev/null
rm -rf "$root/qs" "$root/qs-static" "$root/store1" "$root/store2"
left=$(find "$root" -type f -o -type l)
check test -z "$left"
[ -z "$left" ] || echo "install: left after uninstall: $left"
echo "install: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
