#!/bin/sh
# check-man.sh BUILDDIR - the manual matches the library, and lints clean.
#
# (a) Three lists must be equal: the kv_* symbols that BUILDDIR/libkv.so
#     exports, the functions declared on KV_API lines of include/kv.h, and
#     the names in the NAME sections (.Nm) of man/man3/*.3, less the
#     overview page kv(3).
# (b) man/ is copied to BUILDDIR/man and indexed with makewhatis, so that
#     mandoc -T lint -W style with an absolute -M also reports .Xr links to
#     pages that do not exist; any output from mandoc is a failure.
#
# Run by `make check` from any directory; NM, MANDOC and MAKEWHATIS may be
# set in the environment.
set -u

if [ $# -ne 1 ]; then
	echo "usage: $0 BUILDDIR" >&2
	exit 2
fi

builddir=$1
root=$(cd "$(dirname "$0")/.." && pwd -P) || exit 2
header=$root/include/kv.h
lib=$builddir/libkv.so
NM=${NM:-nm}
MANDOC=${MANDOC:-mandoc}
MAKEWHATIS=${MAKEWHATIS:-makewhatis}

for f in "$lib" "$header"; do
	if [ ! -f "$f" ]; then
		echo "check-man: $f: not found" >&2
		exit 2
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-man.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' HUP INT TERM
fail=0

# Exported: every defined dynamic symbol starting kv_ (a leaked kv__
# internal is reported too), without any @VERSION suffix.
if ! "$NM" -D --defined-only "$lib" >"$tmp/nm.out"; then
	echo "check-man: $NM failed on $lib" >&2
	exit 2
fi
awk 'NF >= 2 { s = $NF; sub(/@.*/, "", s); if (s ~ /^kv_/) print s }' \
	"$tmp/nm.out" | sort -u >"$tmp/exported"

# Declared: from a line that starts with KV_API up to the first "(", which
# may be on a later line; the name is the identifier just before it.
# "#define KV_API ..." does not start with KV_API, so it is not matched.
awk '
	/^[ \t]*KV_API([ \t]|$)/ { decl = ""; on = 1 }
	on {
		decl = decl " " $0
		p = index(decl, "(")
		if (p > 0) {
			s = substr(decl, 1, p - 1)
			sub(/[ \t]+$/, "", s)
			if (match(s, /[A-Za-z_][A-Za-z0-9_]*$/))
				print substr(s, RSTART, RLENGTH)
			else
				print "check-man: unparsable KV_API line " NR \
				    > "/dev/stderr"
			on = 0
		}
	}' "$header" | sort >"$tmp/declared.all"

# Documented: .Nm arguments inside ".Sh NAME" of each section 3 page;
# punctuation arguments ("," and the like) are dropped.
# Also checks that each such name has a .Fn (or .Fo) in the SYNOPSIS.
for page in "$root"/man/man3/*.3; do
	[ -f "$page" ] || continue
	awk -v page="${page#"$root"/}" -v out="$tmp/documented.all" '
		/^\.Sh[ \t]/ { sec = $2 }
		sec == "NAME" && $1 == ".Nm" {
			for (i = 2; i <= NF; i++)
				if ($i ~ /^[A-Za-z_][A-Za-z0-9_]*$/) {
					names[$i] = 1
					print $i >> out
				}
		}
		sec == "SYNOPSIS" && ($1 == ".Fn" || $1 == ".Fo") { fn[$2] = 1 }
		END {
			bad = 0
			for (n in names)
				if (n != "kv" && !(n in fn)) {
					print "check-man: " page ": " n \
					    " is in NAME but has no .Fn in SYNOPSIS"
					bad = 1
				}
			exit bad
		}' "$page" || fail=1
done
touch "$tmp/documented.all"
grep -vx 'kv' "$tmp/documented.all" | sort >"$tmp/documented.sorted"

# A name declared twice, or documented on two pages, is an error as well.
for l in declared documented; do
	case $l in
	declared) src=$tmp/declared.all ;;
	documented) src=$tmp/documented.sorted ;;
	esac
	dups=$(uniq -d "$src")
	if [ -n "$dups" ]; then
		echo "check-man: $l more than once:" $dups
		fail=1
	fi
	sort -u "$src" >"$tmp/$l"
done

# compare A B: print what one list has and the other lacks.
compare() {
	only_a=$(comm -23 "$tmp/$1" "$tmp/$2")
	only_b=$(comm -13 "$tmp/$1" "$tmp/$2")
	if [ -n "$only_a" ]; then
		echo "check-man: $1 but not $2:" $only_a
		fail=1
	fi
	if [ -n "$only_b" ]; then
		echo "check-man: $2 but not $1:" $only_b
		fail=1
	fi
}
compare exported declared
compare declared documented
compare exported documented

nexp=$(wc -l <"$tmp/exported" | tr -d ' ')
ndecl=$(wc -l <"$tmp/declared" | tr -d ' ')
ndoc=$(wc -l <"$tmp/documented" | tr -d ' ')

# (b) lint a fresh copy, indexed, with an absolute manpath.
rm -rf "$builddir/man"
if ! cp -R "$root/man" "$builddir/man"; then
	echo "check-man: cannot copy man/ to $builddir/man" >&2
	exit 2
fi
manpath=$(cd "$builddir/man" && pwd -P) || exit 2
if ! "$MAKEWHATIS" "$manpath"; then
	echo "check-man: $MAKEWHATIS $manpath failed" >&2
	exit 2
fi
set -- "$manpath"/man*/*.[0-9]
if [ ! -f "$1" ]; then
	echo "check-man: no pages under $manpath" >&2
	exit 2
fi
"$MANDOC" -T lint -W style -M "$manpath" "$@" >"$tmp/lint" 2>&1
rc=$?
if [ -s "$tmp/lint" ] || [ $rc -ne 0 ]; then
	sed "s|$manpath/|man/|g" "$tmp/lint"
	lint="lint FAILED ($(wc -l <"$tmp/lint" | tr -d ' ') lines)"
	fail=1
else
	lint="lint clean"
fi

echo "man: $nexp symbols, $ndecl declared, $ndoc documented, $lint"
exit $fail
