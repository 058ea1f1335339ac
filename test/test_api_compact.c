/*
 * test_api_compact.c - compaction and hint files through kv.h: space is
 * reclaimed, nothing acknowledged is lost, nothing deleted comes back, a
 * crash at any step of a compaction reopens to the same data, and a bad
 * hint file costs only a scan.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define NKEYS 600

/* The model: each key's value (NULL = absent) and expiry (0 = never). */
typedef struct model {
	char *val[NKEYS];
	uint64_t expire[NKEYS];
} model;

static void key_of(int i, char *k)
{
	snprintf(k, 16, "k%05d", i);
}

static void model_set(model *m, int i, const char *v, uint64_t expire)
{
	free(m->val[i]);
	m->val[i] = v ? strdup(v) : NULL;
	m->expire[i] = expire;
}

static void model_free(model *m)
{
	for (int i = 0; i < NKEYS; i++)
		free(m->val[i]);
}

static int model_live(const model *m, int i)
{
	return m->val[i] && (!m->expire[i] || m->expire[i] > tu_clock_ms);
}

/* Every key of the store holds what the model says, and nothing else. */
static void check_model(kv_t *db, const model *m)
{
	char k[16];

	for (int i = 0; i < NKEYS; i++) {
		key_of(i, k);
		if (model_live(m, i))
			tu_expect(db, k, m->val[i]);
		else
			tu_expect_missing(db, k);
	}
}

static kv_options compact_options(uint64_t file_size)
{
	kv_options o;

	tu_options(&o);
	o.max_file_size = file_size;
	return o;
}

/* Random puts (some with TTL) and deletes, recorded in the model. */
static void churn(kv_t *db, model *m, uint64_t *seed, int ops)
{
	char k[16], v[64];

	for (int n = 0; n < ops; n++) {
		int i = (int)(tu_rand(seed) % NKEYS);
		unsigned what = (unsigned)(tu_rand(seed) % 10);

		key_of(i, k);
		snprintf(v, sizeof v, "v%d-%llu-padding-to-make-it-longer", i,
			 (unsigned long long)(tu_rand(seed) % 100000));
		if (what < 6) {
			TU_OK(tu_put(db, k, v));
			model_set(m, i, v, 0);
		} else if (what < 8) {
			int rc = kv_delete(db, k, strlen(k));
			assert_int_equal(rc, model_live(m, i) ? KV_OK : KV_ENOTFOUND);
			model_set(m, i, NULL, 0);
		} else {
			uint64_t ttl = 1 + tu_rand(seed) % 50;
			TU_OK(kv_put_ttl(db, k, strlen(k), v, strlen(v), ttl));
			model_set(m, i, v, tu_clock_ms + ttl);
		}
		if (n % 97 == 0)
			tu_clock_ms += tu_rand(seed) % 20;
	}
}

static void test_compaction_shrinks_to_live_data(void **state)
{
	char *dir = tu_mkdir();
	kv_options o = compact_options(16 << 10);
	kv_compact_stats cs;
	struct kv_stats st = { .size = sizeof st };
	model m = { 0 };
	uint64_t seed = 42;
	kv_t *db;

	(void)state;
	db = tu_open(dir, &o);
	for (int round = 0; round < 10; round++)
		churn(db, &m, &seed, 2000);
	TU_OK(kv_stats(db, &st));
	uint64_t before = st.disk_bytes;
	TU_OK(kv_compact(db, &cs));
	TU_OK(kv_stats(db, &st));
	print_message("compaction: %llu segments in, %llu out, %llu read, "
		      "%llu written, %llu freed; disk %llu -> %llu bytes, "
		      "live %llu\n", (unsigned long long)cs.segments_in,
		      (unsigned long long)cs.segments_out,
		      (unsigned long long)cs.bytes_read,
		      (unsigned long long)cs.bytes_written,
		      (unsigned long long)cs.bytes_freed,
		      (unsigned long long)before,
		      (unsigned long long)st.disk_bytes,
		      (unsigned long long)st.live_bytes);
	assert_true(cs.segments_in > 10);
	/* Freed counts hint files as written, disk_bytes only segments. */
	assert_true(cs.bytes_freed > 0);
	assert_true(st.disk_bytes <= before - cs.bytes_freed);
	/* The figure that counts: at most 1.1 x live bytes plus one segment
	 * (the active one, which compaction never touches). */
	assert_true(st.disk_bytes * 10 <= st.live_bytes * 11 + 10 * (16 << 10));
	assert_int_equal(st.compactions, 1);
	check_model(db, &m);
	kv_close(db);
	/* Reopen: the new segments load from their hints, to the same state. */
	db = tu_open(dir, &o);
	struct kv_stats again = { .size = sizeof again };
	TU_OK(kv_stats(db, &again));
	assert_true(again.recovered_hint_segments >= cs.segments_out);
	assert_int_equal(again.recovered_hint_rejected, 0);
	assert_int_equal(again.live_bytes, st.live_bytes);
	assert_int_equal(again.live_keys, st.live_keys);
	check_model(db, &m);
	kv_close(db);
	model_free(&m);
	tu_rmdir(dir);
}

/* Any mix of writes, compactions and reopens: the model holds throughout,
 * in particular no deleted or expired key ever comes back. */
static void test_deleted_keys_never_come_back(void **state)
{
	char *dir = tu_mkdir();
	kv_options o = compact_options(4096);
	model m = { 0 };
	uint64_t seed = 7;
	kv_t *db;

	(void)state;
	tu_clock_ms = 1000000;
	db = tu_open(dir, &o);
	for (int step = 0; step < 60; step++) {
		churn(db, &m, &seed, 300);
		switch (tu_rand(&seed) % 4) {
		case 0:
			o.compact_max_bytes = 1 + tu_rand(&seed) % 20000;
			kv_close(db);
			db = tu_open(dir, &o);
			/* fall through */
		case 1:
			TU_OK(kv_compact(db, NULL));
			break;
		case 2:
			kv_close(db);
			db = tu_open(dir, &o);
			break;
		default:
			tu_clock_ms += 30;
		}
		check_model(db, &m);
	}
	kv_close(db);
	db = tu_open(dir, &o);
	check_model(db, &m);
	kv_close(db);
	model_free(&m);
	tu_rmdir(dir);
}

/* An expired record is dropped by compaction; when an older value of the
 * key sits in a segment that is not being compacted, a tombstone must
 * take its place, or the old value would come back at the next open. */
static void test_expired_record_leaves_tombstone_when_needed(void **state)
{
	char *dir = tu_mkdir();
	kv_options o = compact_options(1024);
	char filler[200];
	kv_segment_stats seg[16];
	size_t n;
	kv_t *db;

	(void)state;
	memset(filler, 'f', sizeof filler);
	tu_clock_ms = 5000000;
	db = tu_open(dir, &o);
	/* k = old and a filler that gets overwritten, in log segment 1;
	 * compaction moves k = old into an output with a higher number. */
	TU_OK(tu_put(db, "k", "old"));
	TU_OK(kv_put(db, "x", 1, filler, sizeof filler));
	for (int i = 0; i < 8; i++)
		TU_OK(kv_put(db, "y", 1, filler, sizeof filler));
	TU_OK(kv_compact(db, NULL));
	/* k = new with a TTL, in a log segment numbered below that output,
	 * plus dead bytes so it is worth compacting. */
	TU_OK(kv_put_ttl(db, "k", 1, "new", 3, 100));
	for (int i = 0; i < 8; i++)
		TU_OK(kv_put(db, "z", 1, filler, sizeof filler));
	tu_clock_ms += 200;
	tu_expect_missing(db, "k");
	/* Compact one segment at a time: the lowest number goes first. */
	o.compact_max_bytes = 1;
	kv_close(db);
	db = tu_open(dir, &o);
	TU_OK(kv_stats_segments(db, seg, 16, &n));
	TU_OK(kv_compact(db, NULL));
	tu_expect_missing(db, "k");
	kv_close(db);
	db = tu_open(dir, &o);
	tu_expect_missing(db, "k");
	/* And once everything is compacted together, k is gone for good. */
	o.compact_max_bytes = 0;
	kv_close(db);
	db = tu_open(dir, &o);
	for (int i = 0; i < 4; i++)
		TU_OK(kv_compact(db, NULL));
	kv_close(db);
	db = tu_open(dir, &o);
	tu_expect_missing(db, "k");
	kv_close(db);
	tu_rmdir(dir);
}

/* The same shape with a delete: the tombstone sits in a log segment
 * numbered below the compaction output that still holds the old value.
 * A compaction of the log segment alone must keep the tombstone. */
static void test_tombstone_kept_while_an_older_value_remains(void **state)
{
	char *dir = tu_mkdir();
	kv_options o = compact_options(1024);
	char filler[200];
	kv_compact_stats cs;
	kv_t *db;

	(void)state;
	memset(filler, 'f', sizeof filler);
	db = tu_open(dir, &o);
	TU_OK(tu_put(db, "k", "old"));
	TU_OK(kv_put(db, "x", 1, filler, sizeof filler));
	for (int i = 0; i < 8; i++)
		TU_OK(kv_put(db, "y", 1, filler, sizeof filler));
	TU_OK(kv_compact(db, NULL)); /* k = old now lives in an output */
	TU_OK(kv_delete(db, "k", 1));
	for (int i = 0; i < 8; i++)
		TU_OK(kv_put(db, "z", 1, filler, sizeof filler));
	kv_close(db);
	o.compact_max_bytes = 1; /* one segment: the log segment, first */
	db = tu_open(dir, &o);
	TU_OK(kv_compact(db, &cs));
	assert_int_equal(cs.segments_in, 1);
	tu_expect_missing(db, "k");
	kv_close(db);
	db = tu_open(dir, &o);
	tu_expect_missing(db, "k");
	kv_close(db);
	tu_rmdir(dir);
}

/* ---- a crash at every step ---- */

struct snap {
	const char *from;
	char *to;
	int taken;
};

static void take_snapshot(void *ctx)
{
	struct snap *s = ctx;

	tu_copy_dir(s->from, s->to);
	s->taken = 1;
}

/* Builds a store with dead bytes, tombstones and TTLs to compact. */
static void build_for_crash(const char *dir, model *m)
{
	kv_options o = compact_options(2048);
	uint64_t seed = 99;
	kv_t *db = tu_open(dir, &o);

	tu_clock_ms = 9000000;
	churn(db, m, &seed, 400);
	kv_close(db);
}

static void crash_case(const char *pristine, const model *m,
		       enum tu_fault_kind kind, unsigned n, int *done)
{
	char *dir = tu_mkdir(), *snapdir = tu_mkdir();
	kv_options o = compact_options(2048);
	struct snap sn = { .from = dir, .to = snapdir };
	kv_t *db;

	tu_copy_dir(pristine, dir);
	db = tu_open(dir, &o);
	tu_fault_hook(take_snapshot, &sn);
	tu_fault(kind, n, kind == TU_PWRITE ? ENOSPC : EIO, 0);
	int rc = kv_compact(db, NULL);
	tu_fault_clear();
	if (getenv("KV_TEST_VERBOSE"))
		print_message("crash case kind %d n %u: rc %d taken %d\n",
			      (int)kind, n, rc, sn.taken);
	if (!sn.taken) {
		/* The compaction made fewer calls of this kind: all covered. */
		TU_OK(rc);
		*done = 1;
	}
	/* The store that saw the failure still holds the model... */
	check_model(db, m);
	kv_close(db);
	db = tu_open(dir, &o);
	check_model(db, m);
	kv_close(db);
	/* ...and so do the files a crash at that very step would leave. */
	if (sn.taken) {
		db = tu_open(snapdir, &o);
		check_model(db, m);
		kv_close(db);
	}
	tu_rmdir(dir);
	tu_rmdir(snapdir);
}

static void test_crash_at_every_step_of_compaction(void **state)
{
	const enum tu_fault_kind kinds[] = { TU_OPEN, TU_PWRITE, TU_FSYNC,
					     TU_RENAME, TU_UNLINK };
	char *pristine = tu_mkdir();
	model m = { 0 };
	int cases = 0;

	(void)state;
	build_for_crash(pristine, &m);
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		int done = 0;
		for (unsigned n = 0; !done && n < 500; n++, cases++)
			crash_case(pristine, &m, kinds[k], n, &done);
		assert_true(done);
	}
	print_message("compaction crash cases: %d\n", cases);
	model_free(&m);
	tu_rmdir(pristine);
}

/* ---- hint files ---- */

static const char *hint_path(const char *dir, uint64_t seq)
{
	char name[64];

	snprintf(name, sizeof name, "%016llx.hint", (unsigned long long)seq);
	return tu_path(dir, name);
}

static void test_bad_hint_falls_back_to_scan(void **state)
{
	char *dir = tu_mkdir();
	kv_options o = compact_options(8192);
	struct kv_stats good = { .size = sizeof good };
	kv_segment_stats seg[64];
	model m = { 0 };
	uint64_t seed = 3;
	size_t n;
	kv_t *db;

	(void)state;
	tu_clock_ms = 7000000;
	db = tu_open(dir, &o);
	churn(db, &m, &seed, 3000);
	TU_OK(kv_compact(db, NULL));
	TU_OK(kv_stats(db, &good));
	TU_OK(kv_stats_segments(db, seg, 64, &n));
	kv_close(db);
	uint64_t hinted = 0;
	for (size_t i = 0; i < n; i++)
		if (seg[i].flags & KV_SEGMENT_HINT)
			hinted = seg[i].seq;
	assert_true(hinted != 0);
	const char *hp = hint_path(dir, hinted);
	uint64_t len = tu_file_size(hp);

	/* Each damage: flipped byte at several places, truncation, junk. */
	for (int how = 0; how < 6; how++) {
		char *copy = tu_mkdir();
		tu_copy_dir(dir, copy);
		const char *p = hint_path(copy, hinted);
		if (how < 4) {
			uint64_t off = how == 0 ? 5 : how == 1 ? 40 :
				       how == 2 ? len / 2 : len - 3;
			tu_poke(p, off, tu_peek(p, off) ^ 0x40);
		} else if (how == 4) {
			tu_truncate(p, len - 10);
		} else {
			tu_truncate(p, len + 100);
		}
		db = tu_open(copy, &o);
		struct kv_stats st = { .size = sizeof st };
		TU_OK(kv_stats(db, &st));
		assert_int_equal(st.recovered_hint_rejected, 1);
		assert_int_equal(st.live_keys, good.live_keys);
		assert_int_equal(st.live_bytes, good.live_bytes);
		assert_int_equal(st.dead_bytes, good.dead_bytes);
		check_model(db, &m);
		kv_close(db);
		tu_rmdir(copy);
	}
	model_free(&m);
	tu_rmdir(dir);
}

/* ---- segments with nothing left to keep ---- */

/* 60 keys of 100-byte values in 4 KiB segments, then every key but those
 * below `keep` written again: the first segments end up holding only
 * overwritten records (or, with keep, one live key). */
static void overwritten_store(const char *dir, kv_options *o, int keep)
{
	char k[16], v[100];
	kv_t *db;

	*o = compact_options(4096);
	db = tu_open(dir, o);
	for (int round = 0; round < 2; round++)
		for (int i = round ? keep : 0; i < 60; i++) {
			snprintf(k, sizeof k, "k%02d", i);
			memset(v, 'a' + round, sizeof v);
			TU_OK(kv_put(db, k, 3, v, sizeof v));
		}
	kv_close(db);
}

static void expect_rounds(kv_t *db, int keep)
{
	char k[16], v[100];
	size_t n;

	for (int i = 0; i < 60; i++) {
		snprintf(k, sizeof k, "k%02d", i);
		TU_OK(kv_get_into(db, k, 3, v, sizeof v, &n));
		assert_int_equal(n, sizeof v);
		assert_int_equal(v[0], i < keep ? 'a' : 'b');
	}
}

/* A chosen segment that no key points into, and that holds nothing older
 * segments left outside the compaction could need, is deleted without
 * being read: bytes_read leaves it out, and damage in its dead records
 * goes with it instead of failing the run. One live key in it is enough
 * for it to be read again, and then the same damage fails the run
 * (KV_ECORRUPT), changing nothing. */
static void test_segment_with_nothing_to_keep_goes_unread(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_compact_stats cs;
	kv_t *db;

	(void)state;
	for (int keep = 0; keep < 2; keep++) {
		overwritten_store(dir, &o, keep);
		const char *seg1 = tu_seg_path(dir, 1);
		uint64_t size1 = tu_file_size(seg1);
		/* A value byte of the second record: dead in both stores. */
		uint64_t off = 32 + (32 + 3 + 100) + 32 + 3 + 50;
		tu_poke(seg1, off, tu_peek(seg1, off) ^ 0x40);

		db = tu_open(dir, &o);
		if (keep) {
			assert_int_equal(kv_compact(db, &cs), KV_ECORRUPT);
			assert_non_null(strstr(kv_errmsg(),
					       "0000000000000001.seg"));
			assert_true(tu_file_size(seg1) == size1);
		} else {
			TU_OK(kv_compact(db, &cs));
			assert_true(cs.segments_in >= 2);
			assert_int_equal(access(seg1, F_OK), -1); /* deleted */
		}
		expect_rounds(db, keep);
		kv_close(db);
		db = tu_open(dir, &o);
		expect_rounds(db, keep);
		kv_close(db);
		tu_rmdir(dir);
		dir = tu_mkdir();
	}
	tu_rmdir(dir);
}

/* bytes_read counts what was read: with every record of the first two
 * segments overwritten, it leaves them out of the chosen files' total,
 * which the progress callback still reaches. */
static void test_bytes_read_leaves_out_unread_segments(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	tu_prog p = { 0 };
	kv_compact_stats cs;
	kv_t *db;

	(void)state;
	overwritten_store(dir, &o, 0);
	uint64_t unread = tu_file_size(tu_seg_path(dir, 1)) +
			  tu_file_size(tu_seg_path(dir, 2));
	o.progress = tu_on_progress;
	o.progress_ctx = &p;
	db = tu_open(dir, &o);
	TU_OK(kv_compact(db, &cs));
	assert_int_equal(p.last, p.total);
	assert_true(cs.segments_in >= 2);
	assert_true(cs.bytes_read + unread <= p.total);
	expect_rounds(db, 0);
	kv_close(db);
	tu_rmdir(dir);
}

/* A compaction whose inputs are small beside the keydir looks their
 * records up one by one instead of scanning every entry (compact.c,
 * SCAN_PER_ENTRY): 30,000 keys, and only the first segment's keys
 * overwritten, deleted or given a TTL that runs out. Every key then reads
 * as the model says, before and after a reopen, and the first segment's
 * dead records are gone. */
#define BIG_KEYS 30000

static void big_value(int i, int version, char *v, size_t n)
{
	snprintf(v, n, "value-%d-version-%d", i, version);
}

static void expect_big(kv_t *db, const int *version)
{
	char k[16], v[48];

	for (int i = 0; i < BIG_KEYS; i++) {
		snprintf(k, sizeof k, "b%06d", i);
		if (version[i] < 0) {
			tu_expect_missing(db, k);
			continue;
		}
		big_value(i, version[i], v, sizeof v);
		tu_expect(db, k, v);
	}
}

static void test_small_inputs_beside_many_keys_look_records_up(void **state)
{
	char *dir = tu_mkdir();
	kv_options o = compact_options(64 << 10);
	kv_compact_stats cs;
	int *version = calloc(BIG_KEYS, sizeof *version);
	char k[16], v[48];
	kv_t *db;

	(void)state;
	assert_non_null(version);
	db = tu_open(dir, &o);
	for (int i = 0; i < BIG_KEYS; i++) {
		snprintf(k, sizeof k, "b%06d", i);
		big_value(i, 0, v, sizeof v);
		TU_OK(tu_put(db, k, v));
	}
	/* The first segment holds about the first 900 keys. */
	for (int i = 0; i < 600; i++) {
		snprintf(k, sizeof k, "b%06d", i);
		if (i % 3 == 0) {
			TU_OK(kv_delete(db, k, strlen(k)));
			version[i] = -1;
		} else if (i % 3 == 1) {
			big_value(i, 1, v, sizeof v);
			TU_OK(tu_put(db, k, v));
			version[i] = 1;
		} else {
			big_value(i, 2, v, sizeof v);
			TU_OK(kv_put_ttl(db, k, strlen(k), v, strlen(v), 10));
			version[i] = -1; /* expires below */
		}
	}
	tu_clock_ms += 100;
	uint64_t first = tu_file_size(tu_seg_path(dir, 1));
	TU_OK(kv_compact(db, &cs));
	/* Inputs far smaller than 4 bytes per key: the lookup path. */
	assert_true(cs.segments_in >= 1);
	assert_true(cs.bytes_read < (uint64_t)BIG_KEYS * 4);
	assert_int_equal(access(tu_seg_path(dir, 1), F_OK), -1);
	assert_true(cs.bytes_freed > first / 3);
	expect_big(db, version);
	kv_close(db);
	db = tu_open(dir, &o);
	expect_big(db, version);
	kv_close(db);
	free(version);
	tu_rmdir(dir);
}

/* ---- the background thread and the progress callback ---- */

static void test_background_compaction_reclaims_space(void **state)
{
	char *dir = tu_mkdir();
	kv_options o = compact_options(8192);
	struct kv_stats st = { .size = sizeof st };
	char v[100];
	kv_t *db;

	(void)state;
	o.flags = KV_CREATE; /* auto compaction on */
	memset(v, 'a', sizeof v);
	db = tu_open(dir, &o);
	for (int i = 0; i < 3000; i++)
		TU_OK(kv_put(db, "hot", 3, v, sizeof v));
	/* Not a timing assertion: wait (up to 30 s) for the thread to act. */
	for (int i = 0; i < 3000; i++) {
		TU_OK(kv_stats(db, &st));
		if (st.compactions > 0 && st.segments < 10)
			break;
		usleep(10000);
	}
	assert_true(st.compactions > 0);
	assert_true(st.segments < 10);
	size_t got;
	char buf[100];
	TU_OK(kv_get_into(db, "hot", 3, buf, sizeof buf, &got));
	kv_close(db);
	tu_rmdir(dir);
}

static void test_progress_and_cancel(void **state)
{
	char *dir = tu_mkdir();
	kv_options o = compact_options(64 << 10);
	tu_prog p = { .stop_at = 2 };
	struct kv_stats a = { .size = sizeof a }, b = { .size = sizeof b };
	model m = { 0 };
	uint64_t seed = 11;
	kv_t *db;

	(void)state;
	o.progress = tu_on_progress;
	o.progress_ctx = &p;
	db = tu_open(dir, &o);
	for (int r = 0; r < 20; r++)
		churn(db, &m, &seed, 2000);
	TU_OK(kv_stats(db, &a));
	/* Canceled at the second report: nothing changes. */
	assert_int_equal(kv_compact(db, NULL), KV_ECANCELED);
	TU_OK(kv_stats(db, &b));
	assert_int_equal(b.segments, a.segments);
	assert_int_equal(b.disk_bytes, a.disk_bytes);
	assert_int_equal(b.compactions, 0);
	check_model(db, &m);
	/* Run to the end: the last report is done == total. */
	p = (tu_prog){ 0 };
	kv_compact_stats cs;
	TU_OK(kv_compact(db, &cs));
	assert_true(p.calls >= 2);
	assert_int_equal(p.last, p.total);
	/* Segments with nothing left to keep are passed over unread. */
	assert_true(cs.bytes_read <= p.total);
	assert_true(cs.bytes_read > 0);
	check_model(db, &m);
	kv_close(db);
	model_free(&m);
	tu_rmdir(dir);
}

static void test_compact_arguments(void **state)
{
	char *dir = tu_mkdir();
	kv_options o = compact_options(0);
	kv_compact_stats cs;
	kv_t *db;

	(void)state;
	assert_int_equal(kv_compact(NULL, &cs), KV_EINVAL);
	db = tu_open(dir, &o);
	TU_OK(tu_put(db, "a", "1"));
	/* Nothing sealed: nothing to do, and that is not an error. */
	TU_OK(kv_compact(db, &cs));
	assert_int_equal(cs.segments_in, 0);
	kv_close(db);
	o.flags = KV_RDONLY;
	db = tu_open(dir, &o);
	assert_int_equal(kv_compact(db, NULL), KV_EREADONLY);
	kv_close(db);
	tu_options(&o);
	o.compact_dead_pct = 101;
	assert_int_equal(kv_open(dir, &o, &db), KV_EINVAL);
	tu_rmdir(dir);
}

/* ---- figures during a compaction ---- */

struct sampler {
	kv_t *db;
	_Atomic int stop;
	uint64_t want_live;
	int bad, samples;
};

static void *sample_stats(void *arg)
{
	struct sampler *sm = arg;

	while (!sm->stop) {
		struct kv_stats st = { .size = sizeof st };
		if (kv_stats(sm->db, &st) != KV_OK ||
		    st.live_bytes != sm->want_live ||
		    st.live_bytes + st.dead_bytes + 32 * st.segments !=
		    st.disk_bytes)
			sm->bad++;
		sm->samples++;
	}
	return NULL;
}

/* With no writes, live bytes never move while a compaction copies and
 * switches, and live + dead + headers always equal the file sizes. */
static void test_figures_add_up_during_compaction(void **state)
{
	char *dir = tu_mkdir();
	kv_options o = compact_options(4096);
	struct sampler sm = { 0 };
	struct kv_stats st = { .size = sizeof st };
	model m = { 0 };
	uint64_t seed = 21;
	pthread_t t;

	(void)state;
	sm.db = tu_open(dir, &o);
	churn(sm.db, &m, &seed, 6000);
	/* No TTLs may expire mid-test: their bytes would move to dead. */
	tu_clock_ms += 1000;
	TU_OK(kv_stats(sm.db, &st));
	sm.want_live = st.live_bytes;
	pthread_create(&t, NULL, sample_stats, &sm);
	TU_OK(kv_compact(sm.db, NULL));
	sm.stop = 1;
	pthread_join(t, NULL);
	print_message("stats samples during compaction: %d\n", sm.samples);
	assert_true(sm.samples > 0);
	assert_int_equal(sm.bad, 0);
	kv_close(sm.db);
	model_free(&m);
	tu_rmdir(dir);
}

/* ---- readers and a writer during compactions ---- */

#define TKEYS 200
#define TOPS 6000

struct shared {
	kv_t *db;
	_Atomic int stop;
	_Atomic uint32_t acked[TKEYS];   /* last acknowledged version */
	_Atomic int bad;
};

/* Values are "key:version": a reader checks the key and that the version
 * was written, and is not older than the last acknowledged one when the
 * read began. */
static void *reader(void *arg)
{
	struct shared *sh = arg;
	uint64_t seed = (uint64_t)(uintptr_t)arg | 1;
	char k[16], buf[64];

	while (!sh->stop) {
		int i = (int)(tu_rand(&seed) % TKEYS);
		uint32_t floor = sh->acked[i];
		size_t n;

		key_of(i, k);
		int rc = kv_get_into(sh->db, k, strlen(k), buf, sizeof buf - 1, &n);
		if (rc == KV_ENOTFOUND) {
			if (floor != 0)
				sh->bad = 1; /* every key is written once first */
			continue;
		}
		if (rc != KV_OK) {
			sh->bad = 2;
			continue;
		}
		buf[n] = 0;
		unsigned key, ver;
		if (sscanf(buf, "%u:%u", &key, &ver) != 2 || (int)key != i ||
		    ver < floor)
			sh->bad = 3;
	}
	return NULL;
}

static void test_readers_and_writer_during_compactions(void **state)
{
	char *dir = tu_mkdir();
	kv_options o = compact_options(8192);
	struct shared *sh = calloc(1, sizeof *sh);
	pthread_t rd[2];
	char k[16], v[64];
	uint64_t seed = 5;

	(void)state;
	sh->db = tu_open(dir, &o);
	for (int i = 0; i < TKEYS; i++) {
		key_of(i, k);
		snprintf(v, sizeof v, "%d:%u", i, 1u);
		TU_OK(tu_put(sh->db, k, v));
		sh->acked[i] = 1;
	}
	for (int t = 0; t < 2; t++)
		pthread_create(&rd[t], NULL, reader, sh);
	for (int n = 0; n < TOPS; n++) {
		int i = (int)(tu_rand(&seed) % TKEYS);
		uint32_t ver = sh->acked[i] + 1;

		key_of(i, k);
		snprintf(v, sizeof v, "%d:%u", i, ver);
		TU_OK(tu_put(sh->db, k, v));
		sh->acked[i] = ver;
		if (n % 500 == 0)
			TU_OK(kv_compact(sh->db, NULL));
	}
	sh->stop = 1;
	for (int t = 0; t < 2; t++)
		pthread_join(rd[t], NULL);
	assert_int_equal(sh->bad, 0);
	struct kv_stats st = { .size = sizeof st };
	TU_OK(kv_stats(sh->db, &st));
	assert_true(st.compactions >= 5);
	kv_close(sh->db);
	sh->db = tu_open(dir, &o);
	for (int i = 0; i < TKEYS; i++) {
		key_of(i, k);
		snprintf(v, sizeof v, "%d:%u", i, (unsigned)sh->acked[i]);
		tu_expect(sh->db, k, v);
	}
	kv_close(sh->db);
	free(sh);
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compaction_shrinks_to_live_data),
		cmocka_unit_test(test_deleted_keys_never_come_back),
		cmocka_unit_test(test_expired_record_leaves_tombstone_when_needed),
		cmocka_unit_test(test_tombstone_kept_while_an_older_value_remains),
		cmocka_unit_test(test_crash_at_every_step_of_compaction),
		cmocka_unit_test(test_bad_hint_falls_back_to_scan),
		cmocka_unit_test(test_background_compaction_reclaims_space),
		cmocka_unit_test(test_progress_and_cancel),
		cmocka_unit_test(test_segment_with_nothing_to_keep_goes_unread),
		cmocka_unit_test(test_bytes_read_leaves_out_unread_segments),
		cmocka_unit_test(test_small_inputs_beside_many_keys_look_records_up),
		cmocka_unit_test(test_compact_arguments),
		cmocka_unit_test(test_figures_add_up_during_compaction),
		cmocka_unit_test(test_readers_and_writer_during_compactions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
