#!/bin/sh
# mutants.sh WORKDIR - seeds ordering bugs into a copy of the tree and
# checks that both power-loss checkers catch each one:
#   T2  test_powerloss_compact (simulated crash states)
#   T3  test/ordering/check_order.py (strace of the workload)
# The copy lives in WORKDIR/src; lib/ in the real tree is never touched.
# Prints one line per mutant and checker; exits 1 if a checker missed one.
set -u
work=${1:?usage: mutants.sh WORKDIR}
top=$(cd "$(dirname "$0")/../.." && pwd)
src=$work/src
mkdir -p "$work"
rm -rf "$src"
mkdir -p "$src/bench"
cp -r "$top/include" "$top/lib" "$top/test" "$top/scripts" "$top/Makefile" \
	"$src/"
cp "$top/bench/bench.mk" "$src/bench/"

# mutate FILE FUNC REGEX NEW: REGEX must match exactly once inside the
# definition of function FUNC ("-": anywhere in FILE), else the script is
# stale and stops. Regexes and function scope keep it working while the
# code around the mutated line changes.
mutate() {
	python3 - "$src/$1" "$2" "$3" "$4" <<'EOF'
import re, sys
path, func, old, new = sys.argv[1:]
s = open(path).read()
lo, hi = 0, len(s)
if func != "-":
    m = re.search(r"^[A-Za-z_][^\n(]*\b%s\(" % re.escape(func), s, re.M)
    if not m:
        sys.exit("mutants.sh: no function %s in %s" % (func, path))
    lo, hi = m.start(), s.index("\n}\n", m.start())
body = s[lo:hi]
found = re.findall(old, body)
if len(found) != 1:
    sys.exit("mutants.sh: /%s/ matches %d times in %s of %s" %
             (old, len(found), func, path))
s = s[:lo] + re.sub(old, lambda m: new, body) + s[hi:]
open(path, "w").write(s)
EOF
}

missed=0
total=0
# run NAME FILE FUNC REGEX NEW [t2]: one mutant, both checkers (with t2:
# T2 only, for a bug that is not one of ordering).
run() {
	name=$1 file=$2 only=${6:-}
	total=$((total + 1))
	cp "$top/$file" "$src/$file"
	mutate "$file" "$3" "$4" "$5" || exit 2
	if ! make -s -C "$src" B=build-mut build-mut/test_powerloss_compact \
		build-mut/ordering_workload >"$work/build.log" 2>&1; then
		cat "$work/build.log"
		exit 2
	fi
	if "$src/build-mut/test_powerloss_compact" >"$work/t2.log" 2>&1; then
		t2="MISSED"
		missed=$((missed + 1))
	else
		t2="caught: $(grep -m1 -E 'power cut after' "$work/t2.log" |
			sed 's/; unsynced.*//' | cut -c1-60): $(grep -m1 \
			'^ERROR:' "$work/t2.log" | cut -c8-70)"
	fi
	if [ "$only" = t2 ]; then
		t3="not run (not an ordering bug)"
	elif python3 "$src/test/ordering/check_order.py" \
		"$src/build-mut/ordering_workload" >"$work/t3.log" 2>&1; then
		t3="MISSED"
		missed=$((missed + 1))
	else
		t3="caught: $(grep -m1 VIOLATION "$work/t3.log" |
			sed 's/.*VIOLATION [^ ]* [^ ]* //' | cut -c1-90)"
	fi
	cp "$top/$file" "$src/$file"
	printf '%s\n  T2 %s\n  T3 %s\n' "$name" "$t2" "$t3"
}

run "M1 no directory fsync after a new segment's rename (segment.c)" \
	lib/segment.c create_file 'kv__io_fsync_dir\(dir\)' '0'
run "M2 no fsync of a new segment before its rename (segment.c)" \
	lib/segment.c rename_in 'kv__io[._]fsync\(s->fd\)' '0'
run "M3 no fsync of a hint or obsolete list before its rename (io.c)" \
	lib/io.c kv__io_write_file ' \|\| kv__io[._]fsync\(fd\)' ''
run "M4 outputs' renames not durable before the list (compact.c)" \
	lib/compact.c publish_outputs 'kv__io_fsync_dir\(j->db->dir\)' '0'
run "M5 obsolete list not durable before inputs go (compact.c)" \
	lib/compact.c write_obsolete 'kv__io_fsync_dir\(j->db->dir\)' '0'
run "M6 list removed before the input unlinks are durable (compact.c)" \
	lib/compact.c drop_inputs 'kv__io_fsync_dir\(db->dir\) == 0' '1'
run "M7 failed compaction: outputs go, list removal not durable" \
	lib/compact.c unlist 'return kv__io_fsync_dir\(j->db->dir\);' \
	'return 0;'
run "M8 open removes a list before its unlinks are durable (recover.c)" \
	lib/recover.c - \
	'kv__io_fsync_dir\(db->dir\)(?=[^;]*finishing a compaction)' '0'
run "M9 KV_SYNC_ALWAYS acknowledges before fdatasync (commit.c)" \
	lib/commit.c sync_target \
	'case KV_SYNC_ALWAYS:\s*return db->appended;' \
	'case KV_SYNC_ALWAYS: return 0;'
run "M10 a torn append's lost first sector taken for damage (recover.c)" \
	lib/recover.c zero_sector 'from & ~UINT64_C\(511\);' \
	'(from + 511) & ~UINT64_C(511);' t2

echo "mutants: $total seeded, $missed misses"
[ "$missed" -eq 0 ]
