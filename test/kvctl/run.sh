#!/bin/sh
# run.sh KVCTL - black-box tests of the kvctl binary: every command and its
# --help, exit statuses, binary safety, TTLs, dump and load, scan ranges,
# stats, compaction, and verify and repair of a segment with a flipped byte.
#
# Each check prints "ok" or "FAIL" and its name; the last line is
# "kvctl: N passed, N failed". Exits 1 if any check failed, 2 on misuse.
# Every store lives in one temporary directory, removed on exit.
set -u

if [ $# -ne 1 ]; then
	echo "usage: $0 KVCTL" >&2
	exit 2
fi
case $1 in
/*) K=$1 ;;
*) K=$(pwd)/$1 ;;
esac
if [ ! -x "$K" ]; then
	echo "run.sh: $K: not an executable" >&2
	exit 2
fi

export LC_ALL=C
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvctl-test.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' HUP INT TERM
cd "$tmp" || exit 2
passed=0
failed=0

# ---- helpers ----

# check NAME FUNCTION: the check passes when FUNCTION returns 0; what it
# said on the way (to stdout or stderr) is shown only when it fails.
check() {
	if ( set -u; "$2" ) >"$tmp/log" 2>&1; then
		passed=$((passed + 1))
		echo "ok   $1"
	else
		failed=$((failed + 1))
		echo "FAIL $1"
		sed 's/^/     | /' "$tmp/log"
	fi
}

# st WANT ARGS...: runs kvctl ARGS with stdin from /dev/null, output in
# out and err; fails (saying why) unless it exits WANT.
st() {
	want=$1
	shift
	"$K" "$@" >out 2>err </dev/null
	got=$?
	[ "$got" -eq "$want" ] && return 0
	echo "kvctl $*: exit $got, want $want"
	sed 's/^/  stderr: /' err
	return 1
}

# has FILE PATTERN: FILE has a line matching the basic regex PATTERN.
has() {
	grep -q -e "$2" "$1" && return 0
	echo "no line matching '$2' in $1:"
	sed 's/^/  | /' "$1"
	return 1
}

# same A B: the two files are byte-identical.
same() {
	cmp "$1" "$2" && return 0
	echo "$1 and $2 differ"
	return 1
}

# absent PATH: nothing was created there.
absent() {
	[ ! -e "$1" ] && return 0
	echo "$1 exists"
	return 1
}

# empty FILE: FILE has no bytes.
empty() {
	[ ! -s "$1" ] && return 0
	echo "$1 is not empty:"
	sed 's/^/  | /' "$1"
	return 1
}

# field NAME: the value of a kv_stats field in out (stats --bytes output).
field() {
	awk -v n="$1" '$1 == n { print $2 }' out
}

# All 256 byte values, in order, and their escaped form (\x00...\xff).
allbytes() {
	i=0
	fmt=
	while [ $i -lt 256 ]; do
		fmt=$fmt$(printf '\\0%03o' $i)
		i=$((i + 1))
	done
	printf '%b' "$fmt"
}
allbytes_escaped() {
	i=0
	while [ $i -lt 256 ]; do
		printf '\\x%02x' $i
		i=$((i + 1))
	done
}

# pairs N [FIRST]: a dump of N pairs, key%05d -> a 60-byte value.
pairs() {
	echo "kvctl-dump 1"
	awk -v n="$1" 'BEGIN {
		for (i = 1; i <= n; i++)
			printf "key%05d\tvalue-%05d-%050d\n", i, i, i
		printf "end %d\n", n
	}'
}

# flip FILE OFFSET: inverts every bit of one byte, in place.
flip() {
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf '%b' "$(printf '\\0%03o' $((b ^ 255)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

allbytes >all.bin
allbytes_escaped >all.esc

# ---- usage and help ----

t_help_top() {
	st 0 --help && has out '^usage: kvctl COMMAND' && has out '^  repair' &&
		st 0 --version && has out '^kvctl (libkv) [0-9]*\.[0-9]*\.[0-9]*$'
}
check "kvctl --help and --version exit 0" t_help_top

t_help_commands() {
	for c in get put del scan stats compact verify dump load repair; do
		st 0 "$c" --help && has out "^usage: kvctl $c " || return 1
		st 0 "$c" -h || return 1
	done
}
check "every COMMAND --help prints its usage, exit 0" t_help_commands

t_usage_errors() {
	st 2 && has err '^usage:' &&
		st 2 frobnicate && has err "unknown command 'frobnicate'" &&
		st 2 --bogus &&
		st 2 get && has err '^kvctl: get: missing arguments' &&
		st 2 get s k extra && has err 'too many arguments' &&
		st 2 put --bogus s k v && has err 'kvctl: put: unrecognized' &&
		st 2 scan --newline s &&
		st 2 get s ''  && has err 'KEY must not be empty' &&
		st 2 get -e s 'a\q' && has err 'unknown escape'
}
check "bad usage exits 2" t_usage_errors

t_bad_numbers() {
	st 2 put --ttl abc s k v && has err '^kvctl: put: --ttl abc: invalid' &&
		st 2 put --ttl 0 s k v && has err 'too small' &&
		st 2 put --ttl 99999999999999999999 s k v &&
		st 2 scan --limit -1 s && st 2 scan --limit 1x s &&
		st 2 load --batch 0 s && st 2 put --segment-size '' s k v &&
		st 2 load --expected-keys x s && st 2 put --expected-keys 5 s k v
}
check "bad numbers exit 2" t_bad_numbers

# ---- get, put, del ----

t_missing_store() {
	st 1 get nostore k && has err 'kvctl: get: nostore: no store' &&
		st 1 put nostore k v && has err 'create' &&
		absent nostore &&
		st 1 del nostore k && st 1 scan nostore && st 1 stats nostore &&
		st 1 dump nostore && st 1 verify nostore &&
		st 1 compact nostore && st 1 repair nostore && absent nostore
}
check "a missing store exits 1 and is not created" t_missing_store

t_put_get_del() {
	st 0 put --create s1 greeting 'hello world' &&
		st 0 get s1 greeting && printf 'hello world' >want &&
		same out want &&
		st 0 get -n s1 greeting && printf 'hello world\n' >want &&
		same out want &&
		st 1 get s1 nokey && has err '^kvctl: get: nokey: key not found$' &&
		st 0 del s1 greeting && st 1 get s1 greeting &&
		st 1 del s1 greeting && has err 'key not found'
}
check "put, get (-n), del; missing key exits 1" t_put_get_del

t_binary_stdin() {
	[ "$(wc -c <all.bin)" -eq 256 ] || { echo "all.bin is not 256 bytes"; return 1; }
	"$K" put --create s2 bin <all.bin || return 1
	"$K" get s2 bin >got.bin || return 1
	same all.bin got.bin || return 1
	# An empty stdin is an empty value, not an error.
	"$K" put s2 empty </dev/null && st 0 get s2 empty && empty out
}
check "put from stdin: all 256 byte values come back identical" t_binary_stdin

t_binary_key() {
	key=$(cat all.esc)
	"$K" put -e s2 "$key" <all.bin || return 1
	"$K" get -e s2 "$key" >got.bin && same all.bin got.bin &&
		st 0 put -e s2 'nul\x00key' 'tab\there' &&
		st 0 get -e s2 'nul\x00key' && printf 'tab\there' >want &&
		same out want && st 1 get s2 nul
}
check "--escaped keys: all 256 byte values, NUL" t_binary_key

# ---- scan ----

t_scan() {
	for k in b a c ab aa ba ca; do
		"$K" put -c s3 "$k" "v-$k" || return 1
	done
	"$K" put s3 ' sp ace ' 'x y' || return 1
	st 0 scan s3 &&
		printf '\\x20sp ace\\x20\tx y\na\tv-a\naa\tv-aa\nab\tv-ab\nb\tv-b\nba\tv-ba\nc\tv-c\nca\tv-ca\n' >want &&
		same out want &&
		st 0 scan --prefix a s3 && printf 'a\tv-a\naa\tv-aa\nab\tv-ab\n' >want &&
		same out want &&
		st 0 scan -k --start ab --end c s3 && printf 'ab\nb\nba\n' >want &&
		same out want &&
		st 0 scan --limit 2 --start b s3 && printf 'b\tv-b\nba\tv-ba\n' >want &&
		same out want &&
		st 0 scan -k --prefix c --limit 1 s3 && printf 'c\n' >want &&
		same out want &&
		st 0 scan -e --prefix '\x20' -k s3 && printf '\\x20sp ace\\x20\n' >want &&
		same out want
}
check "scan: key order, --prefix, --start/--end, --limit, escaping" t_scan

t_scan_binary() {
	st 0 scan -k s2 && has out '^\\x00\\x01\\x02' && has out '^nul\\x00key$' &&
		! grep -q "$(printf '\001')" out
}
check "scan output escapes binary keys" t_scan_binary

# ---- TTL, dump, load ----

t_ttl() {
	now=$(($(date +%s) * 1000))
	st 0 put --ttl 3600000 s1 t 'short-lived' &&
		st 0 put --ttl 1 s1 gone x && sleep 1 && st 1 get s1 gone &&
		st 0 dump s1 || return 1
	exp=$(awk -F '\t' '$1 == "t" { print $3 }' out)
	[ -n "$exp" ] || { echo "no expiry for t in:"; cat out; return 1; }
	if [ "$exp" -lt $((now + 3590000)) ] || [ "$exp" -gt $((now + 3610000)) ]
	then
		echo "expiry $exp not about now ($now) + 1 h"
		return 1
	fi
	! grep -q '^gone' out
}
check "put --ttl: dump shows the expiry; an expired key is gone" t_ttl

# A store with every awkward kind of key and value.
make_rich() {
	"$K" put -c rich plain value &&
		"$K" put -e rich "$(cat all.esc)" <all.bin &&
		"$K" put -e rich 'k\tt\nn\\b' ' edge spaces ' &&
		"$K" put -e rich 'empty' '' &&
		"$K" put -e rich '\xff\x00' '\r\n' &&
		"$K" put --ttl 7200000 rich ttl1 'expires' &&
		"$K" put --ttl 7200000 -e rich 'ttl\x00bin' <all.bin
}

t_dump_format() {
	make_rich || return 1
	st 0 dump rich || return 1
	head -n 1 out >first && printf 'kvctl-dump 1\n' >want && same first want &&
		tail -n 1 out >last && printf 'end 7\n' >want && same last want &&
		has out '^k\\tt\\nn\\\\b	\\x20edge spaces\\x20$' &&
		has out '^empty	$' &&
		has out '^ttl1	expires	[0-9]*$' &&
		[ "$(wc -l <out)" -eq 9 ]
}
check "dump: header, one escaped line per pair, expiry, end line" t_dump_format

t_roundtrip() {
	"$K" dump rich >a.dump || return 1
	"$K" dump rich - | "$K" load rich2 >out 2>err || { cat err; return 1; }
	has out '7 pairs written' && "$K" dump rich2 >b.dump && same a.dump b.dump &&
		"$K" load rich3 a.dump >/dev/null && "$K" dump rich3 c.dump &&
		same a.dump c.dump || return 1
	"$K" get -e rich2 "$(cat all.esc)" >got.bin && same all.bin got.bin &&
		"$K" get -e rich2 'ttl\x00bin' >got.bin && same all.bin got.bin &&
		"$K" get -e rich2 '\xff\x00' >got && printf '\r\n' >want &&
		same got want
}
check "dump | load round-trips exactly (dumps and binary values)" t_roundtrip

t_write_errors() {
	[ -w /dev/full ] || return 0
	"$K" dump rich /dev/full 2>err; [ $? -eq 1 ] || return 1
	has err 'kvctl: dump: /dev/full: ' || return 1
	"$K" get rich plain >/dev/full 2>err; [ $? -eq 1 ] || return 1
	"$K" scan rich >/dev/full 2>err; [ $? -eq 1 ] || return 1
	has err 'kvctl: scan: stdout: '
}
check "a full disk under dump, get or scan output exits 1" t_write_errors

t_load_expired() {
	printf 'kvctl-dump 1\nold\tx\t1000\nnew\ty\nend 2\n' >e.dump
	st 0 load s4 e.dump && has out '1 pairs written, 1 already expired' &&
		st 1 get s4 old && st 0 get s4 new
}
check "load skips pairs already expired" t_load_expired

t_load_malformed() {
	printf 'kvctl-dump 1\na\t1\nb\t2\tsoon\nc\t3\nend 3\n' >bad.dump
	st 1 load s5 bad.dump && has err '^kvctl: load: bad.dump:3: ' &&
		st 0 scan s5 && empty out || return 1
	printf 'kvctl-dump 1\na\t1\nb\\q\t2\nend 2\n' | "$K" load s5 2>err
	[ $? -eq 1 ] && has err 'stdin:3: unknown escape' || return 1
	printf 'kvctl-dump 1\na\t1\n' >cut.dump
	st 1 load s5 cut.dump && has err 'cut.dump:3: no end line' || return 1
	printf 'kvctl-dump 1\na\t1\nend 2\n' >count.dump
	st 1 load s5 count.dump && has err 'count.dump:3: ' || return 1
	printf 'kvctl-dump 1\n\tv\nend 1\n' >ek.dump
	st 1 load s5 ek.dump && has err 'ek.dump:2: empty key' || return 1
	printf 'not a dump\n' >nd.dump
	st 1 load s6 nd.dump && has err 'nd.dump:1: not a kvctl dump' &&
		absent s6
}
check "load of a malformed file fails with the line number, exit 1" t_load_malformed

t_load_batches() {
	pairs 1500 | awk 'NR == 1204 { print "broken line"; next } { print }' \
		>b.dump
	st 1 load b.dump.store b.dump && has err 'b.dump:1204: ' &&
		has err '1000 pairs were written before it' &&
		st 0 scan -k b.dump.store && [ "$(wc -l <out)" -eq 1000 ] &&
		st 0 scan -k --limit 1 --start key01000 b.dump.store &&
		printf 'key01000\n' >want && same out want &&
		st 1 get b.dump.store key01001 &&
		st 1 load --batch 100 b2 b.dump && has err '1200 pairs were written'
}
check "load writes whole batches only: nothing from a bad line's batch on" t_load_batches

t_load_expected_keys() {
	pairs 1500 >e.dump
	st 0 load --expected-keys 100000 e.store e.dump &&
		has out '1500 pairs written' &&
		st 0 scan -k e.store && [ "$(wc -l <out)" -eq 1500 ] &&
		st 1 load --expected-keys 3435973837 e2.store e.dump &&
		has err 'expected_keys' && [ ! -e e2.store ]
}
check "load --expected-keys sizes the index; one past the limit creates nothing" t_load_expected_keys

# ---- stats, compact ----

t_stats() {
	pairs 500 >p500.dump
	st 0 load --segment-size 4096 big p500.dump &&
		st 0 stats big && has out '^live_keys  *500$' &&
		has out '^disk_bytes  *[0-9.]*[BKMG]$' &&
		has out '^0000000000000001 ' &&
		st 0 stats --bytes big && has out '^disk_bytes  *[0-9]*$' &&
		[ "$(field segments)" -gt 5 ]
}
check "stats with and without --bytes; small segments roll over" t_stats

t_compact() {
	"$K" dump big >pre.dump &&
		st 0 load --segment-size 4096 big p500.dump &&
		st 0 stats -b big || return 1
	before=$(field disk_bytes)
	dead=$(field dead_bytes)
	[ "$dead" -gt 0 ] || { echo "no dead bytes after overwriting"; return 1; }
	st 0 compact big && has out '^compact: .*read .*written .*freed ' &&
		st 0 stats -b big || return 1
	after=$(field disk_bytes)
	[ "$after" -lt "$before" ] || { echo "disk $before -> $after"; return 1; }
	"$K" dump big >post.dump && same pre.dump post.dump
}
check "compact frees space after overwrites and keeps every pair" t_compact

t_progress() {
	"$K" load --segment-size 4096 bar p500.dump >/dev/null &&
		"$K" load --segment-size 4096 bar p500.dump >/dev/null &&
		"$K" load --segment-size 4096 bar2 p500.dump >/dev/null &&
		"$K" load --segment-size 4096 bar2 p500.dump >/dev/null || return 1
	st 0 compact bar && empty err || return 1
	# script(1) gives kvctl a terminal for stderr, where the bar belongs.
	command -v script >/dev/null 2>&1 || return 0
	script -qc "'$K' compact bar2" /dev/null >tty.out </dev/null &&
		has tty.out 'compact  \[#*\] 100%'
}
check "compact draws a progress bar on a terminal only" t_progress

# ---- verify, repair ----

t_verify_sound() {
	st 0 verify big && has out '^verify: sound: .* 500 records' &&
		st 0 verify rich
}
check "verify passes on a sound store" t_verify_sound

# One pair per batch, so that a flipped byte damages exactly one record.
t_verify_damaged() {
	st 0 load --batch 1 --segment-size 4096 dmg p500.dump &&
		"$K" dump dmg >dmg-before.dump || return 1
	seg=dmg/0000000000000003.seg
	size=$(wc -c <"$seg")
	[ "$size" -gt 1000 ] || { echo "$seg is only $size bytes"; return 1; }
	flip "$seg" $((size / 2))
	st 1 verify dmg && has err '0000000000000003\.seg' && has err 'offset' &&
		has err 'damaged place'
}
check "verify fails, naming the .seg file and offset, after a byte flip" t_verify_damaged

t_repair() {
	st 0 repair dmg && has out '^repair: open skipped' &&
		has out '^repair: sound' &&
		st 0 verify dmg && "$K" dump dmg >dmg-after.dump || return 1
	# Every pair kept is as it was; only the damaged record's is gone,
	# and the one right after it, which salvage skips too (it might have
	# been the rest of a damaged batch; kv_open(3)).
	sed '1d;$d' dmg-before.dump | sort >b.sorted
	sed '1d;$d' dmg-after.dump | sort >a.sorted
	extra=$(comm -13 b.sorted a.sorted | wc -l)
	lost=$(comm -23 b.sorted a.sorted | wc -l)
	[ "$extra" -eq 0 ] && [ "$lost" -eq 2 ] && return 0
	echo "after repair: $extra pairs changed or new, $lost lost (want 0, 2)"
	return 1
}
check "repair makes verify pass and keeps every pair but the damaged one and the next" t_repair

# A segment whose file header is damaged cannot be read at all: a strict
# open fails, and salvage has to leave the whole file out.
t_damaged_header() {
	st 0 load --batch 1 --segment-size 4096 hdr p500.dump &&
		"$K" dump hdr >hdr-before.dump || return 1
	flip hdr/0000000000000002.seg 3
	st 1 verify hdr && has err '0000000000000002\.seg' &&
		st 1 get hdr key00001 && has err 'kvctl repair' &&
		st 0 repair hdr && st 0 verify hdr &&
		"$K" dump hdr >hdr-after.dump || return 1
	sed '1d;$d' hdr-before.dump | sort >b.sorted
	sed '1d;$d' hdr-after.dump | sort >a.sorted
	extra=$(comm -13 b.sorted a.sorted | wc -l)
	[ "$extra" -eq 0 ] && [ "$(wc -l <a.sorted)" -gt 400 ] && return 0
	echo "after repair: $extra pairs changed, $(wc -l <a.sorted) kept"
	return 1
}
check "verify fails on a damaged segment header; repair saves the rest" t_damaged_header

echo "kvctl: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
