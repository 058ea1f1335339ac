/*
 * test_api_recovery.c - what open does with damaged files: torn tails are
 * cut and reported, a cut batch vanishes whole, corruption elsewhere is
 * KV_ECORRUPT naming file and offset, salvage skips it, reads check CRCs.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

#define NREC 40
static const size_t sizes[] = { 0, 1, 100, 4095, 4096, 4097, 70000 };
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void val_for(int i, uint8_t *buf, size_t n)
{
	for (size_t j = 0; j < n; j++)
		buf[j] = (uint8_t)(i * 31 + (int)j);
}

static size_t size_for(int i)
{
	return sizes[(size_t)i % NSIZES];
}

/* Writes NREC records k00..k39 and returns each record's end offset. */
static void write_records(const char *dir, uint64_t *ends)
{
	kv_options o;
	kv_t *db;
	static uint8_t val[70000];
	char key[8];

	tu_options(&o);
	db = tu_open(dir, &o);
	for (int i = 0; i < NREC; i++) {
		snprintf(key, sizeof key, "k%02d", i);
		val_for(i, val, size_for(i));
		assert_int_equal(kv_put(db, key, 3, val, size_for(i)), KV_OK);
		ends[i] = tu_disk_bytes(db);
	}
	kv_close(db);
}

static uint8_t *slurp(const char *path, uint64_t *len)
{
	*len = tu_file_size(path);
	uint8_t *b = malloc(*len);
	int fd = open(path, O_RDONLY);

	assert_non_null(b);
	assert_int_equal(pread(fd, b, *len, 0), (ssize_t)*len);
	close(fd);
	return b;
}

static void spill(const char *path, const uint8_t *b, uint64_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, len), (ssize_t)len);
	close(fd);
}

/* Every record ending at or before `cut` reads back exactly; the others are
 * absent. */
static void expect_prefix(kv_t *db, const uint64_t *ends, uint64_t cut)
{
	static uint8_t want[70000], got[70000];
	char key[8];
	size_t n;

	for (int i = 0; i < NREC; i++) {
		snprintf(key, sizeof key, "k%02d", i);
		int rc = kv_get_into(db, key, 3, got, sizeof got, &n);
		if (ends[i] > cut) {
			assert_int_equal(rc, KV_ENOTFOUND);
			continue;
		}
		assert_int_equal(rc, KV_OK);
		val_for(i, want, size_for(i));
		assert_int_equal(n, size_for(i));
		assert_memory_equal(got, want, n);
	}
}

/* The last valid record boundary at or below cut. */
static uint64_t boundary(const uint64_t *ends, uint64_t cut)
{
	uint64_t b = 32;

	for (int i = 0; i < NREC && ends[i] <= cut; i++)
		b = ends[i];
	return b;
}

/* Damages the tail from `cut` on in one of three ways, reopens, checks. */
static void torn_case(const char *dir, const uint8_t *img, uint64_t len,
		      const uint64_t *ends, uint64_t cut, int how)
{
	const char *seg = tu_seg_path(dir, 1);
	static uint8_t buf[1 << 20];
	struct kv_stats st = { .size = sizeof st };
	kv_options o;
	kv_t *db;

	memcpy(buf, img, len);
	if (how == 1)
		memset(buf + cut, 0, len - cut);
	else if (how == 2)
		for (uint64_t i = cut; i < len; i++)
			buf[i] = (uint8_t)(i * 131 + 7);
	spill(seg, buf, how == 0 ? cut : len);
	tu_options(&o);
	db = tu_open(dir, &o);
	uint64_t keep = boundary(ends, cut);
	assert_int_equal(kv_stats(db, &st), KV_OK);
	/* Zeros from a record boundary on are space the writer allocated
	 * ahead (segment flag 0x2), not a torn write: cut, not reported. */
	uint64_t torn = how == 1 && keep == cut ? 0
						: (how == 0 ? cut : len) - keep;
	assert_int_equal(st.recovered_truncated_bytes, torn);
	assert_int_equal(tu_file_size(seg), keep);
	expect_prefix(db, ends, cut);
	kv_close(db);
}

static void test_torn_tail_at_every_byte(void **state)
{
	char *dir = tu_mkdir();
	uint64_t ends[NREC], len;
	uint8_t *img;

	(void)state;
	write_records(dir, ends);
	img = slurp(tu_seg_path(dir, 1), &len);
	assert_int_equal(len, ends[NREC - 1]);
	/* Every byte of the last 3 records (~74 KB of offsets), truncated;
	 * zero- and garbage-filled at a stride across the last 8. */
	for (uint64_t cut = ends[NREC - 4]; cut < len; cut++)
		torn_case(dir, img, len, ends, cut, 0);
	for (uint64_t cut = ends[NREC - 9]; cut < len; cut += 97) {
		torn_case(dir, img, len, ends, cut, 1);
		torn_case(dir, img, len, ends, cut, 2);
	}
	free(img);
	tu_rmdir(dir);
}

static void test_put_after_torn_tail_survives_next_reopen(void **state)
{
	char *dir = tu_mkdir();
	uint64_t ends[NREC];
	kv_options o;
	kv_t *db;

	(void)state;
	write_records(dir, ends);
	tu_truncate(tu_seg_path(dir, 1), ends[NREC - 1] - 5);
	tu_options(&o);
	db = tu_open(dir, &o);
	assert_int_equal(tu_put(db, "after", "cut"), KV_OK);
	kv_close(db);
	db = tu_open(dir, &o);
	tu_expect(db, "after", "cut");
	expect_prefix(db, ends, ends[NREC - 2]);
	kv_close(db);
	tu_rmdir(dir);
}

static void test_read_only_open_leaves_torn_tail_alone(void **state)
{
	char *dir = tu_mkdir();
	uint64_t ends[NREC];
	kv_options o;
	kv_t *db;

	(void)state;
	write_records(dir, ends);
	tu_truncate(tu_seg_path(dir, 1), ends[NREC - 1] - 5);
	kv_options_init(&o);
	o.flags = KV_RDONLY;
	db = tu_open(dir, &o);
	expect_prefix(db, ends, ends[NREC - 2]);
	kv_close(db);
	assert_int_equal(tu_file_size(tu_seg_path(dir, 1)), ends[NREC - 1] - 5);
	tu_rmdir(dir);
}

/* Damage in the middle of the log's tail, with sound records after it, is
 * not a torn write: a strict open refuses; salvage skips that range and
 * the run right after it (which might have been the rest of a damaged
 * batch: records do not mark a batch's head), and keeps what follows. */
static void test_damage_mid_tail_is_not_a_torn_write(void **state)
{
	char *dir = tu_mkdir();
	uint64_t ends[NREC];
	kv_options o;
	kv_t *db = NULL;
	struct kv_stats st = { .size = sizeof st };

	(void)state;
	write_records(dir, ends);
	/* A byte of record 20 (k20), far from the end. */
	const char *seg = tu_seg_path(dir, 1);
	uint64_t at = ends[19] + 40;
	tu_poke(seg, at, tu_peek(seg, at) ^ 0x20);
	tu_options(&o);
	assert_int_equal(kv_open(dir, &o, &db), KV_ECORRUPT);
	assert_null(db);
	assert_non_null(strstr(kv_errmsg(), "not a torn write"));
	assert_int_equal(tu_file_size(seg), ends[NREC - 1]); /* untouched */
	o.flags |= KV_SALVAGE;
	db = tu_open(dir, &o);
	TU_OK(kv_stats(db, &st));
	assert_int_equal(st.recovered_truncated_bytes, 0);
	assert_int_equal(st.recovered_skipped_records, 1);
	assert_int_equal(st.recovered_skipped_bytes, ends[21] - ends[19]);
	tu_expect_missing(db, "k20");
	tu_expect_missing(db, "k21");
	static uint8_t want[70000], got[70000];
	size_t n;
	for (int i = 22; i < NREC; i++) {
		char key[8];
		snprintf(key, sizeof key, "k%02d", i);
		TU_OK(kv_get_into(db, key, 3, got, sizeof got, &n));
		val_for(i, want, size_for(i));
		assert_memory_equal(got, want, n);
	}
	kv_close(db);
	tu_rmdir(dir);
}

/* A crash can leave never-written blocks as zeros before blocks that were
 * written: such a hole is a torn write, cut and reported. */
static void test_zero_hole_before_sound_records_is_torn(void **state)
{
	char *dir = tu_mkdir();
	uint64_t ends[NREC];
	kv_options o;
	kv_t *db;
	struct kv_stats st = { .size = sizeof st };

	(void)state;
	write_records(dir, ends);
	const char *seg = tu_seg_path(dir, 1);
	/* Zero one aligned 4 KiB block inside record 34 (70,000 bytes);
	 * records 35 to 39 after it stay sound. */
	assert_int_equal(size_for(34), 70000);
	uint64_t from = (ends[33] + 8192) & ~UINT64_C(4095);
	for (uint64_t p = from; p < from + 4096; p++)
		tu_poke(seg, p, 0);
	tu_options(&o);
	db = tu_open(dir, &o);
	TU_OK(kv_stats(db, &st));
	assert_int_equal(st.recovered_truncated_bytes, ends[NREC - 1] - ends[33]);
	expect_prefix(db, ends, ends[33]);
	kv_close(db);
	tu_rmdir(dir);
}

/* A batch is all or nothing when the log is cut anywhere inside it. */
static void test_batch_cut_anywhere_is_all_or_nothing(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	kv_batch *b;
	uint64_t start, end, len;
	uint8_t *img;

	(void)state;
	tu_options(&o);
	db = tu_open(dir, &o);
	assert_int_equal(tu_put(db, "x", "old"), KV_OK);
	assert_int_equal(tu_put(db, "gone", "here"), KV_OK);
	start = tu_disk_bytes(db);
	assert_int_equal(kv_batch_new(&b), KV_OK);
	assert_int_equal(kv_batch_put(b, "x", 1, "new", 3), KV_OK);
	assert_int_equal(kv_batch_put(b, "y", 1, "why", 3), KV_OK);
	assert_int_equal(kv_batch_delete(b, "gone", 4), KV_OK);
	assert_int_equal(kv_batch_put(b, "z", 1, "zed", 3), KV_OK);
	assert_int_equal(kv_write(db, b), KV_OK);
	kv_batch_free(b);
	kv_close(db);
	img = slurp(tu_seg_path(dir, 1), &len);
	end = len;
	for (uint64_t cut = start; cut <= end; cut++) {
		spill(tu_seg_path(dir, 1), img, cut);
		db = tu_open(dir, &o);
		if (cut == end) {
			tu_expect(db, "x", "new");
			tu_expect(db, "y", "why");
			tu_expect(db, "z", "zed");
			tu_expect_missing(db, "gone");
		} else {
			tu_expect(db, "x", "old");
			tu_expect(db, "gone", "here");
			tu_expect_missing(db, "y");
			tu_expect_missing(db, "z");
		}
		kv_close(db);
	}
	free(img);
	tu_rmdir(dir);
}

/* Five sealed segments of two records each, and an active one. */
static void make_sealed(const char *dir, kv_options *o)
{
	kv_t *db;
	char key[8], val[200];

	tu_options(o);
	o->max_file_size = 600;
	db = tu_open(dir, o);
	memset(val, 'v', sizeof val);
	for (int i = 0; i < 12; i++) {
		snprintf(key, sizeof key, "s%02d", i);
		val[0] = (char)('a' + i);
		assert_int_equal(kv_put(db, key, 3, val, sizeof val), KV_OK);
	}
	kv_close(db);
}

static void collect_log(void *ctx, int level, const char *msg)
{
	char *buf = ctx;

	(void)level;
	strncat(buf, msg, 4095 - strlen(buf));
	strncat(buf, "\n", 4095 - strlen(buf));
}

/* A damaged tombstone with sound records after it: salvage skips it, so the key it
 * deleted reads again. The issue asks that salvage report such keys: the
 * key is counted at risk and named in the log; keys written after the
 * damage are not at risk. */
static void test_salvage_reports_the_keys_a_lost_tombstone_puts_at_risk(
	void **state)
{
	char *dir = tu_mkdir(), log[4096] = "";
	kv_options o;
	kv_t *db;
	struct kv_stats st = { .size = sizeof st };

	(void)state;
	tu_options(&o);
	o.max_file_size = 4096;
	db = tu_open(dir, &o);
	TU_OK(tu_put(db, "old", "1"));
	TU_OK(tu_put(db, "gone", "2"));
	TU_OK(kv_delete(db, "gone", 4));
	TU_OK(tu_put(db, "after", "3"));
	TU_OK(kv_close(db));
	/* Segment 1: header, old (36 B), gone (37 B), the tombstone. */
	const char *seg = tu_seg_path(dir, 1);
	uint64_t tomb = 32 + (32 + 3 + 1) + (32 + 4 + 1);
	tu_poke(seg, tomb + 33, tu_peek(seg, tomb + 33) ^ 0x40);
	/* The tombstone is not at the end of the log: strict open refuses. */
	assert_int_equal(kv_open(dir, &o, &db), KV_ECORRUPT);
	o.flags |= KV_SALVAGE;
	o.log = collect_log;
	o.log_ctx = log;
	db = tu_open(dir, &o);
	tu_expect(db, "gone", "2"); /* resurrected: what salvage must report */
	assert_int_equal(kv_stats(db, &st), KV_OK);
	assert_int_equal(st.recovered_keys_at_risk, 2);
	assert_non_null(strstr(log, "key at risk: gone"));
	assert_non_null(strstr(log, "key at risk: old"));
	assert_null(strstr(log, "key at risk: after"));
	TU_OK(kv_close(db));
	tu_rmdir(dir);
}

/* kv_close leaves a hint file beside every sealed segment, and open loads
 * those instead of reading records: damage in a sealed segment is found
 * by the read of the damaged record (naming file and offset, never a
 * wrong value) and by kv_verify, while every other key reads. */
static void test_flipped_byte_in_hinted_sealed_segment_fails_its_read(
	void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	struct kv_stats st = { .size = sizeof st };
	kv_verify_stats vs;
	char key[8], val[200];
	size_t n;

	(void)state;
	make_sealed(dir, &o);
	/* 12 records of 235 B, two per 600-byte segment: 5 sealed, each
	 * with a hint, and the active one. */
	for (int seq = 1; seq <= 5; seq++) {
		char name[32];
		snprintf(name, sizeof name, "%016d.hint", seq);
		assert_true(tu_file_size(tu_path(dir, name)) > 0);
	}
	const char *seg = tu_seg_path(dir, 1);
	tu_poke(seg, 267 + 100, tu_peek(seg, 267 + 100) ^ 0x10);
	db = tu_open(dir, &o);
	assert_int_equal(kv_stats(db, &st), KV_OK);
	assert_int_equal(st.recovered_hint_segments, 5);
	for (int i = 0; i < 12; i++) {
		snprintf(key, sizeof key, "s%02d", i);
		int rc = kv_get_into(db, key, 3, val, sizeof val, &n);
		assert_int_equal(rc, i == 1 ? KV_ECORRUPT : KV_OK);
		if (i == 1) {
			assert_non_null(strstr(kv_errmsg(),
					       "0000000000000001.seg"));
			assert_non_null(strstr(kv_errmsg(), "offset 267"));
		} else {
			assert_int_equal(val[0], 'a' + i);
		}
	}
	assert_int_equal(kv_verify(db, NULL, NULL, &vs), KV_ECORRUPT);
	assert_int_equal(vs.bad_ranges, 1);
	kv_close(db);
	tu_rmdir(dir);
}

static void test_flipped_byte_in_sealed_segment(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db = (kv_t *)1;
	struct kv_stats st = { .size = sizeof st };
	char key[8];
	size_t n;
	char val[200];

	(void)state;
	make_sealed(dir, &o);
	/* Without its hint file (a store closed before the hint was
	 * written), open scans the sealed segment and checks each record. */
	assert_int_equal(unlink(tu_path(dir, "0000000000000001.hint")), 0);
	/* Records are 235 B: segment 1 holds s00 and s01 at 32 and 267. */
	const char *seg = tu_seg_path(dir, 1);
	uint64_t off = 267 + 100;
	tu_poke(seg, off, tu_peek(seg, off) ^ 0x10);
	o.flags = KV_NO_AUTO_COMPACT;
	assert_int_equal(kv_open(dir, &o, &db), KV_ECORRUPT);
	assert_null(db);
	assert_non_null(strstr(kv_errmsg(), "0000000000000001.seg"));
	assert_non_null(strstr(kv_errmsg(), "offset 267"));
	/* Salvage skips the bad record and keeps every other one. */
	o.flags = KV_SALVAGE | KV_NO_AUTO_COMPACT;
	db = tu_open(dir, &o);
	assert_int_equal(kv_stats(db, &st), KV_OK);
	assert_int_equal(st.recovered_skipped_records, 1);
	assert_int_equal(st.recovered_skipped_bytes, 235);
	/* s01 was the last record of segment 1: what was lost is older than
	 * segment 2's first record, so only s00 (older still) is at risk. */
	assert_int_equal(st.recovered_keys_at_risk, 1);
	for (int i = 0; i < 12; i++) {
		snprintf(key, sizeof key, "s%02d", i);
		int rc = kv_get_into(db, key, 3, val, sizeof val, &n);
		assert_int_equal(rc, i == 1 ? KV_ENOTFOUND : KV_OK);
		if (rc == KV_OK)
			assert_int_equal(val[0], 'a' + i);
	}
	kv_close(db);
	tu_rmdir(dir);
}

static void test_damage_after_open_is_caught_on_read(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	void *v = (void *)1;
	size_t n;

	(void)state;
	make_sealed(dir, &o);
	o.flags = KV_NO_AUTO_COMPACT;
	db = tu_open(dir, &o);
	/* The store maps the file shared, so it sees this change. */
	const char *seg = tu_seg_path(dir, 2);
	tu_poke(seg, 32 + 40, tu_peek(seg, 32 + 40) ^ 1);
	assert_int_equal(kv_get(db, "s02", 3, &v, &n), KV_ECORRUPT);
	assert_null(v);
	assert_non_null(strstr(kv_errmsg(), "0000000000000002.seg"));
	assert_non_null(strstr(kv_errmsg(), "offset 32"));
	/* Only the damaged record is refused; its neighbours still read. */
	char val[200];
	assert_int_equal(kv_get_into(db, "s03", 3, val, sizeof val, &n), KV_OK);
	assert_int_equal(n, 200);
	assert_int_equal(val[0], 'd');
	kv_close(db);
	tu_rmdir(dir);
}

static void test_bad_headers_and_versions(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db = NULL;
	uint8_t h[32];

	(void)state;
	make_sealed(dir, &o);
	o.flags = KV_NO_AUTO_COMPACT;
	const char *seg = tu_seg_path(dir, 2);
	int fd = open(seg, O_RDWR);
	assert_int_equal(pread(fd, h, 32, 0), 32);
	/* A newer format version, with a valid header CRC: refused as such. */
	h[8] = 2;
	uint32_t crc = (uint32_t)crc32(0, h, 28);
	memcpy(h + 28, &crc, 4);
	assert_int_equal(pwrite(fd, h, 32, 0), 32);
	assert_int_equal(kv_open(dir, &o, &db), KV_EVERSION);
	assert_non_null(strstr(kv_errmsg(), "format version 2"));
	/* A broken magic number. */
	h[0] = 'X';
	assert_int_equal(pwrite(fd, h, 32, 0), 32);
	assert_int_equal(kv_open(dir, &o, &db), KV_ECORRUPT);
	assert_non_null(strstr(kv_errmsg(), "bad magic"));
	/* A file shorter than its header. */
	assert_int_equal(ftruncate(fd, 10), 0);
	close(fd);
	assert_int_equal(kv_open(dir, &o, &db), KV_ECORRUPT);
	assert_non_null(strstr(kv_errmsg(), "shorter than its header"));
	tu_rmdir(dir);
}

static void test_leftovers_and_strangers_in_the_directory(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;

	(void)state;
	make_sealed(dir, &o);
	/* A crashed segment create, and a file that is not ours. */
	int fd = open(tu_path(dir, "0000000000000099.seg.tmp"),
		      O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	fd = open(tu_path(dir, "notes.txt"), O_WRONLY | O_CREAT, 0644);
	close(fd);
	o.flags = KV_NO_AUTO_COMPACT;
	db = tu_open(dir, &o);
	assert_int_equal(access(tu_path(dir, "0000000000000099.seg.tmp"), F_OK), -1);
	assert_int_equal(access(tu_path(dir, "notes.txt"), F_OK), 0);
	kv_close(db);
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_torn_tail_at_every_byte),
		cmocka_unit_test(test_put_after_torn_tail_survives_next_reopen),
		cmocka_unit_test(test_read_only_open_leaves_torn_tail_alone),
		cmocka_unit_test(test_damage_mid_tail_is_not_a_torn_write),
		cmocka_unit_test(test_zero_hole_before_sound_records_is_torn),
		cmocka_unit_test(test_batch_cut_anywhere_is_all_or_nothing),
		cmocka_unit_test(test_flipped_byte_in_sealed_segment),
		cmocka_unit_test(
			test_salvage_reports_the_keys_a_lost_tombstone_puts_at_risk),
		cmocka_unit_test(
			test_flipped_byte_in_hinted_sealed_segment_fails_its_read),
		cmocka_unit_test(test_damage_after_open_is_caught_on_read),
		cmocka_unit_test(test_bad_headers_and_versions),
		cmocka_unit_test(test_leftovers_and_strangers_in_the_directory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
