/*
 * test_cov_api.c - API contracts that coverage (make coverage) showed no
 * test reached: batch argument checks, option bounds, the version call,
 * and what a read-only handle does with writes. The rule under test is
 * kv.h's: bad input returns its code and changes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "testutil.h"

static void test_version_matches_the_header(void **state)
{
	int major = -1, minor = -1, patch = -1;
	char want[32];

	(void)state;
	snprintf(want, sizeof want, "%d.%d.%d", KV_VERSION_MAJOR,
		 KV_VERSION_MINOR, KV_VERSION_PATCH);
	assert_string_equal(kv_version(&major, &minor, &patch), want);
	assert_int_equal(major, KV_VERSION_MAJOR);
	assert_int_equal(minor, KV_VERSION_MINOR);
	assert_int_equal(patch, KV_VERSION_PATCH);
	/* Any pointer may be NULL. */
	assert_string_equal(kv_version(NULL, NULL, NULL), want);
}

/* Each refused call leaves the batch as it was: committing it afterwards
 * writes exactly the one good operation. */
static void test_bad_batch_arguments_change_nothing(void **state)
{
	char *dir = tu_mkdir();
	char *big = calloc(1, KV_MAX_KEY + 1);
	kv_options o;
	kv_batch *b = (kv_batch *)1;
	kv_t *db;

	(void)state;
	assert_non_null(big);
	assert_int_equal(kv_batch_new(NULL), KV_EINVAL);
	assert_int_equal(kv_batch_new(&b), KV_OK);
	assert_int_equal(kv_batch_put(b, "a", 1, "1", 1), KV_OK);

	assert_int_equal(kv_batch_put(NULL, "k", 1, "v", 1), KV_EINVAL);
	assert_int_equal(kv_batch_put(b, NULL, 1, "v", 1), KV_EINVAL);
	assert_int_equal(kv_batch_put(b, "k", 0, "v", 1), KV_EINVAL);
	assert_int_equal(kv_batch_put(b, "k", 1, NULL, 1), KV_EINVAL);
	assert_int_equal(kv_batch_put(b, big, KV_MAX_KEY + 1, "v", 1),
			 KV_ETOOBIG);
	assert_int_equal(kv_batch_delete(b, NULL, 1), KV_EINVAL);
	assert_int_equal(kv_batch_put_ttl(b, "k", 1, "v", 1, 0), KV_EINVAL);
	assert_int_equal(kv_batch_put_ttl(b, "k", 1, "v", 1,
					  UINT64_MAX / 2 + 1), KV_EINVAL);
	assert_int_equal(kv_batch_count(b), 1);
	assert_int_equal(kv_batch_count(NULL), 0);
	kv_batch_clear(NULL);  /* no-ops */
	kv_batch_free(NULL);

	/* A key of exactly KV_MAX_KEY bytes is fine, and a NULL value of
	 * length 0 is an empty value. */
	memset(big, 'k', KV_MAX_KEY);
	assert_int_equal(kv_batch_put(b, big, KV_MAX_KEY, NULL, 0), KV_OK);
	tu_options(&o);
	db = tu_open(dir, &o);
	assert_int_equal(kv_write(NULL, b), KV_EINVAL);
	assert_int_equal(kv_write(db, b), KV_OK);
	tu_expect(db, "a", "1");
	tu_expect_missing(db, "k");
	size_t n = 1;
	void *v = NULL;
	assert_int_equal(kv_get(db, big, KV_MAX_KEY, &v, &n), KV_OK);
	assert_int_equal(n, 0);
	kv_free(v);
	kv_batch_free(b);
	kv_close(db);
	free(big);
	tu_rmdir(dir);
}

/* A batch with one value over max_value_size is refused whole: none of
 * its other operations is applied, and nothing is appended. */
static void test_batch_with_one_value_too_big_applies_nothing(void **state)
{
	char *dir = tu_mkdir();
	char val[101];
	kv_options o;
	kv_batch *b;
	kv_t *db;
	struct kv_stats s0 = { .size = sizeof s0 }, s1 = { .size = sizeof s1 };

	(void)state;
	tu_options(&o);
	o.max_value_size = 100;
	db = tu_open(dir, &o);
	assert_int_equal(tu_put(db, "old", "x"), KV_OK);
	assert_int_equal(kv_stats(db, &s0), KV_OK);
	memset(val, 'v', sizeof val);
	assert_int_equal(kv_batch_new(&b), KV_OK);
	assert_int_equal(kv_batch_put(b, "a", 1, val, 100), KV_OK);
	assert_int_equal(kv_batch_delete(b, "old", 3), KV_OK);
	assert_int_equal(kv_batch_put(b, "c", 1, val, 101), KV_OK);
	assert_int_equal(kv_write(db, b), KV_ETOOBIG);
	assert_non_null(strstr(kv_errmsg(), "max_value_size"));
	assert_int_equal(kv_stats(db, &s1), KV_OK);
	assert_int_equal(s1.last_lsn, s0.last_lsn);
	assert_int_equal(s1.disk_bytes, s0.disk_bytes);
	tu_expect_missing(db, "a");
	tu_expect(db, "old", "x");
	/* The same batch less the big value goes in whole. */
	kv_batch_clear(b);
	assert_int_equal(kv_batch_count(b), 0);
	assert_int_equal(kv_batch_put(b, "a", 1, "1", 1), KV_OK);
	assert_int_equal(kv_batch_delete(b, "old", 3), KV_OK);
	assert_int_equal(kv_write(db, b), KV_OK);
	tu_expect(db, "a", "1");
	tu_expect_missing(db, "old");
	kv_batch_free(b);
	kv_close(db);
	tu_rmdir(dir);
}

/* Out-of-range options are refused before anything is created. */
static void test_option_bounds_are_refused_before_creating(void **state)
{
	char *dir = tu_mkdir();
	char sub[4200];
	struct stat st;
	kv_options o;
	kv_t *db = (kv_t *)1;

	(void)state;
	snprintf(sub, sizeof sub, "%s/store", dir);
	for (int c = 0; c < 5; c++) {
		tu_options(&o);
		switch (c) {
		case 0: o.max_file_size = UINT64_C(1) << 40; break;
		case 1: o.file_mode = 01777; break;
		case 2: o.file_mode = 04600; break;
		case 3: o.compact_dead_pct = 101; break;
		case 4: o.compact_store_pct = 101; break;
		}
		db = (kv_t *)1;
		assert_int_equal(kv_open(sub, &o, &db), KV_EINVAL);
		assert_null(db);
		assert_int_not_equal(stat(sub, &st), 0);
	}
	/* The largest values in range are accepted. */
	tu_options(&o);
	o.max_file_size = (UINT64_C(1) << 40) - 1;
	o.file_mode = 0777;
	o.compact_dead_pct = 100;
	o.compact_store_pct = 100;
	db = tu_open(sub, &o);
	assert_int_equal(tu_put(db, "k", "v"), KV_OK);
	kv_close(db);
	tu_rmdir(dir);
}

/* KV_CREATE makes the store's directory, not its parents. */
static void test_create_does_not_make_missing_parents(void **state)
{
	char *dir = tu_mkdir();
	char sub[4200];
	struct stat st;
	kv_options o;
	kv_t *db = (kv_t *)1;

	(void)state;
	snprintf(sub, sizeof sub, "%s/no/such/parent", dir);
	tu_options(&o);
	assert_int_equal(kv_open(sub, &o, &db), KV_EIO);
	assert_null(db);
	assert_non_null(strstr(kv_errmsg(), "cannot create directory"));
	assert_non_null(strstr(kv_errmsg(), sub));
	snprintf(sub, sizeof sub, "%s/no", dir);
	assert_int_not_equal(stat(sub, &st), 0);
	tu_rmdir(dir);
}

/* ttl_ms must be 1..2^63 for a single put too; a refused put writes
 * nothing. */
static void test_put_ttl_bounds(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	uint64_t exp = 1;
	struct kv_stats s0 = { .size = sizeof s0 }, s1 = { .size = sizeof s1 };

	(void)state;
	tu_options(&o);
	db = tu_open(dir, &o);
	assert_int_equal(kv_stats(db, &s0), KV_OK);
	assert_int_equal(kv_put_ttl(db, "k", 1, "v", 1, UINT64_MAX / 2 + 1),
			 KV_EINVAL);
	assert_int_equal(kv_put_ttl(db, "k", 1, "v", 1, UINT64_MAX), KV_EINVAL);
	assert_int_equal(kv_stats(db, &s1), KV_OK);
	assert_int_equal(s1.last_lsn, s0.last_lsn);
	tu_expect_missing(db, "k");
	assert_int_equal(kv_put_ttl(db, "k", 1, "v", 1, UINT64_MAX / 2), KV_OK);
	assert_int_equal(kv_expiry(db, "k", 1, &exp), KV_OK);
	assert_true(exp == tu_clock_ms + UINT64_MAX / 2);
	kv_close(db);
	tu_rmdir(dir);
}

/* kv_get_into with no buffer and cap 0 asks for the size. */
static void test_get_into_size_query(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	size_t n = 0;

	(void)state;
	tu_options(&o);
	db = tu_open(dir, &o);
	assert_int_equal(tu_put(db, "k", "twelve bytes"), KV_OK);
	assert_int_equal(kv_get_into(db, "k", 1, NULL, 0, &n), KV_ERANGE);
	assert_int_equal(n, 12);
	assert_int_equal(kv_get_into(db, "nokey", 5, NULL, 0, &n),
			 KV_ENOTFOUND);
	assert_int_equal(n, 0);
	kv_close(db);
	tu_rmdir(dir);
}

/* kv_stats_segments(db, NULL, 0, &n) counts; the array must be there
 * when cap says so, and n must be there always. */
static void test_segment_stats_count_query(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	kv_segment_stats arr[8];
	size_t n = 99, m = 0;
	char key[16], val[100];

	(void)state;
	tu_options(&o);
	o.max_file_size = 512;
	db = tu_open(dir, &o);
	memset(val, 'v', sizeof val);
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof key, "k%d", i);
		assert_int_equal(kv_put(db, key, strlen(key), val, sizeof val),
				 KV_OK);
	}
	assert_int_equal(kv_stats_segments(db, NULL, 0, &n), KV_OK);
	assert_true(n >= 3 && n <= 8);
	assert_int_equal(kv_stats_segments(db, arr, 8, NULL), KV_EINVAL);
	assert_int_equal(kv_stats_segments(NULL, arr, 8, &m), KV_EINVAL);
	assert_int_equal(kv_stats_segments(db, arr, 8, &m), KV_OK);
	assert_int_equal(m, n);
	for (size_t i = 1; i < m; i++)
		assert_true(arr[i].seq > arr[i - 1].seq);
	assert_int_equal(arr[m - 1].active, 1);
	kv_close(db);
	tu_rmdir(dir);
}

/* A read-only handle refuses every write with KV_EREADONLY, batches
 * included, and its kv_sync has nothing to do. */
static void test_read_only_handle_refuses_writes(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	kv_batch *b;

	(void)state;
	tu_options(&o);
	db = tu_open(dir, &o);
	assert_int_equal(tu_put(db, "k", "v"), KV_OK);
	kv_close(db);
	o.flags = KV_RDONLY;
	db = tu_open(dir, &o);
	assert_int_equal(kv_batch_new(&b), KV_OK);
	assert_int_equal(kv_batch_put(b, "a", 1, "1", 1), KV_OK);
	assert_int_equal(kv_write(db, b), KV_EREADONLY);
	assert_int_equal(kv_put(db, "a", 1, "1", 1), KV_EREADONLY);
	assert_int_equal(kv_delete(db, "k", 1), KV_EREADONLY);
	assert_int_equal(kv_sync(db), KV_OK);
	kv_batch_free(b);
	kv_close(db);
	o.flags = 0;
	db = tu_open(dir, &o);
	tu_expect(db, "k", "v");
	tu_expect_missing(db, "a");
	kv_close(db);
	tu_rmdir(dir);
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* compact_dead_bytes alone starts a background compaction: no segment
 * reaches compact_dead_pct (100) nor the store compact_store_pct (100),
 * merging is off (compact_min_size 1), yet a sealed segment with more
 * dead bytes than compact_dead_bytes is compacted. The thread wakes at
 * each seal; the wait below is for that event, capped at 60 s so a
 * broken trigger fails instead of hanging (it takes milliseconds). */
static void test_dead_bytes_alone_trigger_background_compaction(
	void **state)
{
	char *dir = tu_mkdir(), key[16], val[100];
	kv_options o;
	kv_t *db;
	struct kv_stats st = { .size = sizeof st };

	(void)state;
	tu_options(&o);
	o.flags = KV_CREATE;           /* background thread on */
	o.max_file_size = 2048;
	o.compact_dead_pct = 100;
	o.compact_store_pct = 100;
	o.compact_dead_bytes = 600;
	o.compact_min_size = 1;
	db = tu_open(dir, &o);
	memset(val, 'v', sizeof val);
	for (int i = 0; i < 10; i++) {  /* 10 x 135 B in segment 1 */
		snprintf(key, sizeof key, "k%03d", i);
		TU_OK(kv_put(db, key, strlen(key), val, sizeof val));
	}
	for (int i = 0; i < 6; i++) {   /* 810 B of it dead (60 %) */
		val[0] = 'w';
		snprintf(key, sizeof key, "k%03d", i);
		TU_OK(kv_put(db, key, strlen(key), val, sizeof val));
	}
	for (int i = 0; i < 1200 && st.compactions == 0; i++) {
		nap_ms(50);
		TU_OK(kv_stats(db, &st));
	}
	assert_true(st.compactions >= 1);
	for (int i = 0; i < 10; i++) {
		char got[100];
		size_t n;

		snprintf(key, sizeof key, "k%03d", i);
		TU_OK(kv_get_into(db, key, strlen(key), got, sizeof got, &n));
		assert_int_equal(got[0], i < 6 ? 'w' : 'v');
	}
	kv_close(db);
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version_matches_the_header),
		cmocka_unit_test(test_bad_batch_arguments_change_nothing),
		cmocka_unit_test(test_batch_with_one_value_too_big_applies_nothing),
		cmocka_unit_test(test_option_bounds_are_refused_before_creating),
		cmocka_unit_test(test_create_does_not_make_missing_parents),
		cmocka_unit_test(test_put_ttl_bounds),
		cmocka_unit_test(test_get_into_size_query),
		cmocka_unit_test(test_segment_stats_count_query),
		cmocka_unit_test(test_read_only_handle_refuses_writes),
		cmocka_unit_test(test_dead_bytes_alone_trigger_background_compaction),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
