#!/bin/sh
# repl_bench.sh [BUILD_DIR] - replication figures for bench/RESULTS.md:
# kvrepl on loopback, one primary and one follower, the writer being
# test/kvrepl/tool.c (`kvrepl_tool write`: each op one batch of 2 to 4
# records, values of 16..215 bytes, segments of 64 MiB).
#
#   A. catch-up: the writer writes CATCHUP_OPS with no follower; then a
#      follower starts from empty: records/s until it holds the position.
#   B. paced load: the writer at RATE ops/s for SECONDS with the follower
#      streaming, for each RATE in RATES: time from a write's return to
#      the follower's apply of it (p50/p99/max, from the writer's and the
#      follower's --trace), and the largest lag in records and bytes in
#      the status lines (every 100 ms).
#   C. unpaced: the writer as fast as it can for FAST_OPS; records/s the
#      writer wrote and the follower applied over the same span.
#
# Not part of make check. Needs `make B=BUILD_DIR kvrepl` and the test
# helpers: make B=BUILD_DIR BUILD_DIR/kvrepl BUILD_DIR/kvrepl_tool
set -eu

B=$(cd "${1:-build}" && pwd)
RATES=${RATES:-"1000 5000 20000"}
SECONDS_EACH=${SECONDS_EACH:-10}
CATCHUP_OPS=${CATCHUP_OPS:-200000}
FAST_OPS=${FAST_OPS:-200000}
POLL=${POLL:-20}
K=$B/kvrepl
T=$B/kvrepl_tool

tmp=$(mktemp -d "${TMPDIR:-/tmp}/repl-bench.XXXXXX")
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 2' HUP INT TERM

now() { date +%s.%N; }
pos_of() { "$T" digest "$1" | sed 's/.* lsn=\([0-9]*\).*/\1/'; }

# Each phase has its own output files ($out), so no line of an earlier
# process is taken for one of this one's.
start_primary() {
	out=$1.out
	mkdir -p "$out"
	"$K" primary --dir "$1" --bind 'tcp://127.0.0.1:*' --poll "$POLL" \
		--heartbeat 100 --timeout 2000 --status-interval 100 \
		>"$out/p.out" 2>"$out/p.err" &
	ppid=$!
	pids="$pids $ppid"
	while ! ep=$(sed -n 's/^kvrepl: primary listening on //p' "$out/p.out" \
		2>/dev/null) ||
		[ -z "$ep" ]; do sleep 0.05; done
}

start_follower() {
	"$K" follower --dir "$1" --connect "$ep" --heartbeat 100 --timeout 2000 \
		--status-interval 100 --trace "$2" >"$out/f.out" 2>"$out/f.err" &
	fpid=$!
	pids="$pids $fpid"
}

# Waits until the follower's status line shows position $1.
wait_pos() {
	n=0
	while ! tail -n 3 "$out/f.out" | grep -q "follower position=$1 "; do
		sleep 0.01
		n=$((n + 1))
		if [ $n -gt 30000 ]; then
			echo "repl_bench: follower never reached $1; see $out" >&2
			trap - EXIT
			exit 1
		fi
	done
}

stop() {
	kill "$@" 2>/dev/null || true
	wait "$@" 2>/dev/null || true
}

# Largest lag in the primary's status lines (every 100 ms): records
# behind its position, and bytes sent and not yet acknowledged. (The
# follower's own lag_records is against the last heartbeat, which comes
# after the data it announces: 0 whenever the stream keeps up.)
max_lag() {
	python3 - "$out/p.out" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
pat = r"primary follower=\S+ acked=\d+ lag_records=(\d+) lag_bytes=(\d+)"
v = [(int(a), int(b)) for a, b in re.findall(pat, t)] or [(0, 0)]
print("max_lag_records=%d max_lag_bytes=%d" % (
    max(a for a, b in v), max(b for a, b in v)))
EOF
}

echo "repl_bench: $(nproc) CPUs, poll $POLL ms, $(date -u +%Y-%m-%dT%H:%MZ)"

# ---- A. catch-up ----
mkdir -p "$tmp/a"
"$T" write "$tmp/a/w" --seed 1 --ops "$CATCHUP_OPS" >/dev/null
lsn=$(pos_of "$tmp/a/w")
start_primary "$tmp/a/w"
t0=$(now)
start_follower "$tmp/a/f" "$tmp/a/trace"
wait_pos "$lsn"
t1=$(now)
stop "$fpid" "$ppid"
echo "A catch-up: $lsn records ($(du -sk "$tmp/a/w" | cut -f1) KiB) in" \
	"$(echo "$t1 - $t0" | bc) s: $(echo "$lsn / ($t1 - $t0)" | bc) records/s"

# ---- B. paced load ----
for rate in $RATES; do
	d=$tmp/b$rate
	mkdir -p "$d"
	"$T" write "$d/w" --seed 2 --ops 1 >/dev/null
	start_primary "$d/w"
	start_follower "$d/f" "$d/ftrace"
	wait_pos "$(pos_of "$d/w")"
	ops=$((rate * SECONDS_EACH + 1))
	"$T" write "$d/w" --seed 2 --ops "$ops" --rate "$rate" \
		--trace "$d/wtrace" >/dev/null
	lsn=$(pos_of "$d/w")
	wait_pos "$lsn"
	stop "$fpid" "$ppid"
	echo "B paced $rate ops/s ($(( (lsn - 2) / SECONDS_EACH )) records/s)" \
		"for $SECONDS_EACH s: write->apply $("$T" latency "$d/wtrace" \
		"$d/ftrace") $(max_lag)"
done

# ---- C. unpaced ----
d=$tmp/c
mkdir -p "$d"
"$T" write "$d/w" --seed 3 --ops 1 >/dev/null
start_primary "$d/w"
start_follower "$d/f" "$d/ftrace"
wait_pos "$(pos_of "$d/w")"
base=$(pos_of "$d/w")
t0=$(now)
"$T" write "$d/w" --seed 3 --ops "$FAST_OPS" >/dev/null
t1=$(now)
lsn=$(pos_of "$d/w")
wait_pos "$lsn"
t2=$(now)
stop "$fpid" "$ppid"
n=$((lsn - base))
echo "C unpaced: $n records; writer $(echo "$n / ($t1 - $t0)" | bc) records/s" \
	"($(echo "$t1 - $t0" | bc) s); follower done $(echo "$t2 - $t1" | bc) s" \
	"after it: $(echo "$n / ($t2 - $t0)" | bc) records/s end to end; $(max_lag)"
