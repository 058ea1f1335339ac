/* test_api_verify.c - kv_verify finds damage anywhere, live or dead;
 * KV_SALVAGE + kv_compact repairs a store; kv_expiry reports TTLs. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* 40 records of 235 B over segments of 600 B, then half overwritten, so
 * there are sealed segments holding dead records too. */
static void build(const char *dir, kv_options *o)
{
	char key[8], val[200];
	kv_t *db;

	tu_options(o);
	o->max_file_size = 600;
	db = tu_open(dir, o);
	memset(val, 'v', sizeof val);
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof key, "k%02d", i % 20);
		val[0] = (char)('a' + i);
		TU_OK(kv_put(db, key, 3, val, sizeof val));
	}
	kv_close(db);
}

static void test_sound_store_verifies(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_verify_stats vs;
	kv_t *db;

	(void)state;
	build(dir, &o);
	db = tu_open(dir, &o);
	TU_OK(kv_verify(db, NULL, NULL, &vs));
	assert_int_equal(vs.records, 40);
	assert_int_equal(vs.segments, 20);
	assert_int_equal(vs.bytes, 20 * 32 + 40 * 235);
	assert_int_equal(vs.bad_ranges, 0);
	kv_close(db);
	tu_rmdir(dir);
}

/* A byte flipped after open in a dead record: no read will ever touch
 * that record, but verify reads every record and finds it. */
static void test_damage_in_a_dead_record_is_found(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_verify_stats vs;
	kv_t *db;

	(void)state;
	build(dir, &o);
	o.flags = KV_RDONLY;
	db = tu_open(dir, &o);
	/* Segment 1 holds k00 and k01 as first written: both dead now. */
	const char *seg = tu_seg_path(dir, 1);
	tu_poke(seg, 267 + 50, tu_peek(seg, 267 + 50) ^ 0x04);
	assert_int_equal(kv_verify(db, NULL, NULL, &vs), KV_ECORRUPT);
	assert_non_null(strstr(kv_errmsg(), "0000000000000001.seg"));
	assert_non_null(strstr(kv_errmsg(), "offset 267"));
	assert_int_equal(vs.bad_ranges, 1);
	assert_int_equal(vs.bad_bytes, 235);
	assert_int_equal(vs.records, 39);
	kv_close(db);
	tu_rmdir(dir);
}

static void test_progress_and_cancel(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	tu_prog p = { 0 };
	kv_t *db;

	(void)state;
	build(dir, &o);
	db = tu_open(dir, &o);
	TU_OK(kv_verify(db, tu_on_progress, &p, NULL));
	assert_true(p.calls >= 1);
	assert_int_equal(p.last, p.total);
	p = (tu_prog){ .stop_at = 1 };
	assert_int_equal(kv_verify(db, tu_on_progress, &p, NULL), KV_ECANCELED);
	assert_int_equal(p.calls, 1);
	assert_int_equal(kv_verify(NULL, NULL, NULL, NULL), KV_EINVAL);
	kv_close(db);
	tu_rmdir(dir);
}

/* Repair: open with KV_SALVAGE skips the damage, compaction rewrites the
 * damaged segment without it, and the store then verifies sound. */
static void test_salvage_and_compact_repair_a_store(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_verify_stats vs;
	char key[8], val[200];
	size_t n;
	kv_t *db;

	(void)state;
	build(dir, &o);
	/* Segment 15 holds k08 and k09 as last written: live records. */
	const char *seg = tu_seg_path(dir, 15);
	tu_poke(seg, 32 + 100, tu_peek(seg, 32 + 100) ^ 0x01);
	o.flags = KV_SALVAGE | KV_NO_AUTO_COMPACT;
	db = tu_open(dir, &o);
	TU_OK(kv_compact(db, NULL));
	TU_OK(kv_verify(db, NULL, NULL, &vs));
	assert_int_equal(vs.bad_ranges, 0);
	kv_close(db);
	o.flags = KV_NO_AUTO_COMPACT;
	db = tu_open(dir, &o);
	TU_OK(kv_verify(db, NULL, NULL, NULL));
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof key, "k%02d", i);
		int rc = kv_get_into(db, key, 3, val, sizeof val, &n);
		TU_OK(rc);
		/* k08's newest record was the damaged one, and k09's the run
		 * right after it, which salvage skips too (it might have been
		 * the rest of a damaged batch): their older values are back.
		 * That is the risk KV_SALVAGE documents (a skipped record may
		 * have been a newer value or a tombstone); every other key is
		 * intact. */
		assert_int_equal((unsigned char)val[0],
				 i == 8 || i == 9 ? 'a' + i : 'a' + 20 + i);
	}
	kv_close(db);
	tu_rmdir(dir);
}

/* Damage inside a segment written by compaction, which open normally
 * loads from its hint without reading: salvage reads it anyway. */
static void test_repair_reaches_hinted_segments(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_segment_stats seg[64];
	size_t n;
	kv_t *db;

	(void)state;
	build(dir, &o);
	db = tu_open(dir, &o);
	/* Segment 16 holds the live k10 and k11: overwriting k10 leaves it
	 * half dead, so compaction copies k11 into a hinted segment. */
	TU_OK(tu_put(db, "k10", "new"));
	TU_OK(kv_compact(db, NULL));
	TU_OK(kv_stats_segments(db, seg, 64, &n));
	kv_close(db);
	uint64_t hinted = 0;
	for (size_t i = 0; i < n; i++)
		if (seg[i].flags & KV_SEGMENT_HINT)
			hinted = seg[i].seq;
	assert_true(hinted != 0);
	const char *p = tu_seg_path(dir, hinted);
	tu_poke(p, 32 + 120, tu_peek(p, 32 + 120) ^ 0x10);
	db = tu_open(dir, &o);
	assert_int_equal(kv_verify(db, NULL, NULL, NULL), KV_ECORRUPT);
	kv_close(db);
	o.flags = KV_SALVAGE | KV_NO_AUTO_COMPACT;
	db = tu_open(dir, &o);
	TU_OK(kv_compact(db, NULL));
	TU_OK(kv_verify(db, NULL, NULL, NULL));
	kv_close(db);
	tu_rmdir(dir);
}

/* A damaged file header: salvage sets the file aside, and the store then
 * opens without KV_SALVAGE again. */
static void test_repair_sets_aside_a_file_with_a_bad_header(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db = NULL;

	(void)state;
	build(dir, &o);
	tu_poke(tu_seg_path(dir, 3), 3, 'X');
	o.flags = KV_NO_AUTO_COMPACT;
	assert_int_equal(kv_open(dir, &o, &db), KV_ECORRUPT);
	o.flags = KV_SALVAGE | KV_NO_AUTO_COMPACT;
	db = tu_open(dir, &o);
	kv_close(db);
	assert_int_equal(access(tu_path(dir, "0000000000000003.seg.damaged"),
				F_OK), 0);
	o.flags = KV_NO_AUTO_COMPACT;
	db = tu_open(dir, &o);
	TU_OK(kv_verify(db, NULL, NULL, NULL));
	kv_close(db);
	tu_rmdir(dir);
}

static void test_expiry(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	uint64_t e = 99;
	kv_t *db;

	(void)state;
	tu_clock_ms = 2000000;
	tu_options(&o);
	db = tu_open(dir, &o);
	TU_OK(kv_put_ttl(db, "t", 1, "v", 1, 1500));
	TU_OK(tu_put(db, "p", "v"));
	TU_OK(kv_expiry(db, "t", 1, &e));
	assert_int_equal(e, 2001500);
	TU_OK(kv_expiry(db, "p", 1, &e));
	assert_int_equal(e, 0);
	assert_int_equal(kv_expiry(db, "x", 1, &e), KV_ENOTFOUND);
	assert_int_equal(kv_expiry(db, "t", 1, NULL), KV_EINVAL);
	assert_int_equal(kv_expiry(db, NULL, 1, &e), KV_EINVAL);
	tu_clock_ms += 1500;
	assert_int_equal(kv_expiry(db, "t", 1, &e), KV_ENOTFOUND);
	kv_close(db);
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sound_store_verifies),
		cmocka_unit_test(test_damage_in_a_dead_record_is_found),
		cmocka_unit_test(test_progress_and_cancel),
		cmocka_unit_test(test_salvage_and_compact_repair_a_store),
		cmocka_unit_test(test_repair_reaches_hinted_segments),
		cmocka_unit_test(test_repair_sets_aside_a_file_with_a_bad_header),
		cmocka_unit_test(test_expiry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
