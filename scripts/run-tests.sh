#!/bin/sh
# Runs each test binary (one per file, so one crash fails one file) and
# prints the plain summary line CI reads: "N passed, N failed".
set -u
pass=0 fail=0 failed=""
for t in "$@"; do
	if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed ${t##*/}"; fi
done
[ -n "$failed" ] && echo "failed:$failed"
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
