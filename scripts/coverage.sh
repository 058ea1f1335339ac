#!/bin/sh
# Line and branch coverage of lib/ (RELIABILITY-PLAN T16), with gcovr.
#   scripts/coverage.sh [build-dir]      (make coverage)
# Builds the library and the C tests with --coverage at -O0 (so branches
# are those of the source, not of the optimiser) in build-cov, runs the
# C tests and the fuzz corpus replay, and prints per file of lib/: lines,
# gcov's raw branch figure, and the figure with branches gcovr deems
# unreachable or exception-only excluded. COV_EXTRA="kvctl-check
# python-check" adds the tool and binding suites to the run.
# Scaled down for speed: KV_KILL_ROUNDS defaults to 10 here.
# Not counted: code run only by processes that end in _exit or SIGKILL
# (kill -9 and kill-point children write no .gcda), so the kill-point
# hooks (KV__KILLPOINT) show as never taken though test_killpoints hits
# every one.
set -eu
B=${1:-build-cov}
MAKE=${MAKE:-make}
command -v gcovr >/dev/null 2>&1 || {
	echo "coverage: gcovr is missing: apt-get install -y gcovr" >&2
	exit 1
}
# Counters accumulate across runs: start from zero.
[ -d "$B" ] && find "$B" -name '*.gcda' -delete
# -fprofile-update=atomic: the thread tests would otherwise race on the
# counters and produce slightly wrong (even negative) counts.
# A failing test still gets its report (and the exit status says so).
rc=0
KV_KILL_ROUNDS=${KV_KILL_ROUNDS:-10} $MAKE --no-print-directory B="$B" \
	SAN="--coverage -fprofile-update=atomic" CFLAGS="-O0" \
	test-run fuzz-replay ${COV_EXTRA:-} || rc=$?

mkdir -p "$B/coverage"
# Only lib/: tests and helpers are not what is measured.
gcovr -r . --filter 'lib/' --json-summary-pretty \
	-o "$B/coverage/raw.json" "$B"
gcovr -r . --filter 'lib/' --exclude-unreachable-branches \
	--exclude-throw-branches --json-summary-pretty \
	-o "$B/coverage/excl.json" "$B"
gcovr -r . --filter 'lib/' --html-details "$B/coverage/index.html" "$B"
python3 - "$B/coverage/raw.json" "$B/coverage/excl.json" <<'PY'
import json, sys
raw, excl = (json.load(open(p)) for p in sys.argv[1:3])
ex = {f["filename"]: f for f in excl["files"]}
def pct(c, t):
    return "%5.1f%%" % (100.0 * c / t) if t else "    - "
row = "%-18s %16s  %16s  %16s"
print(row % ("file", "lines", "branches (raw)", "branches (excl)"))
def line(name, r, e):
    print(row % (name,
        "%s %5d/%-5d" % (pct(r["line_covered"], r["line_total"]), r["line_covered"], r["line_total"]),
        "%s %5d/%-5d" % (pct(r["branch_covered"], r["branch_total"]), r["branch_covered"], r["branch_total"]),
        "%s %5d/%-5d" % (pct(e["branch_covered"], e["branch_total"]), e["branch_covered"], e["branch_total"])))
for f in sorted(raw["files"], key=lambda f: f["filename"]):
    line(f["filename"], f, ex.get(f["filename"], f))
line("TOTAL", raw, excl)
PY
echo "coverage: per-line report in $B/coverage/index.html"
[ $rc -eq 0 ] || echo "coverage: some tests failed (make exit $rc)" >&2
exit $rc
