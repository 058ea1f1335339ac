#!/bin/sh
# Installs what building libkv needs, from Debian packages.
#   scripts/deps.sh          library and tests
#   scripts/deps.sh bench    also the peer engines for bench/
#   scripts/deps.sh analysis also coverage, static analysers and valgrind
# As root it runs apt-get for whatever is missing; otherwise it prints the
# exact command and fails, so a build never half-works without its deps.
set -eu

pkgs="pkg-config zlib1g-dev libisal-dev libxxhash-dev libbsd-dev libcmocka-dev mandoc libzmq3-dev"
[ "${1:-}" = analysis ] && pkgs="$pkgs gcovr cppcheck clang-tidy clang-tools valgrind"
[ "${1:-}" = bench ] && pkgs="$pkgs liblmdb-dev libleveldb-dev librocksdb-dev libsqlite3-dev libkyotocabinet-dev libgdbm-dev libtkrzw-dev"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	echo "deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing
else
	echo "deps: missing Debian packages:$missing" >&2
	echo "deps: run: sudo apt-get install -y$missing" >&2
	exit 1
fi
