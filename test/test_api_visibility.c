/*
 * test_api_visibility.c - a write is seen by every kind of read from the
 * moment its call returns, and the last write of a key wins, whatever
 * kinds of write came before it.
 *
 * Single puts of short keys reach the keydir some puts later than their
 * records reach the log (lib/pubq.h); these tests hold the store to what
 * a user sees, at counts on both sides of that group of puts (16), and
 * across a rollover and a compaction that must not drop a record the
 * keydir has not taken yet.
 */
#include <stdio.h>
#include <string.h>

#include "testutil.h"

static void key_of(char *k, size_t cap, int i)
{
	snprintf(k, cap, "key%05d", i);
}

static void put_numbered(kv_t *db, int i, const char *tag)
{
	char k[16], v[32];

	key_of(k, sizeof k, i);
	snprintf(v, sizeof v, "%s-%05d", tag, i);
	TU_OK(kv_put(db, k, strlen(k), v, strlen(v)));
}

static void expect_numbered(kv_t *db, int i, const char *tag)
{
	char k[16], v[32];

	key_of(k, sizeof k, i);
	snprintf(v, sizeof v, "%s-%05d", tag, i);
	tu_expect(db, k, v);
}

/* The live keys as one kind of reader counts them. */
enum { R_FOREACH, R_SCAN, R_DIGEST_FOREACH, R_STATS, R_DIGEST,
       R_SEGMENT_STATS, R_KINDS };

static int count_by(kv_t *db, int reader)
{
	struct kv_stats st = { .size = sizeof st };
	kv_segment_stats seg[64];
	struct kv_digest d;
	size_t nseg;
	int n = 0;

	switch (reader) {
	case R_FOREACH:
		TU_OK(kv_foreach(db, tu_count_pair, &n));
		return n;
	case R_SCAN:
		TU_OK(kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 0, tu_count_pair,
			      &n));
		return n;
	case R_DIGEST_FOREACH:
		TU_OK(kv_digest_foreach(db, 0, UINT64_MAX, tu_count_pair, &n));
		return n;
	case R_STATS:
		TU_OK(kv_stats(db, &st));
		return (int)st.live_keys;
	case R_DIGEST:
		TU_OK(kv_digest(db, &d));
		return (int)d.keys;
	default:
		/* Records of live keys: header, key00000, v-00000 (the values
		 * test_each_put_is_seen_at_once_by_every_reader writes). */
		TU_OK(kv_stats_segments(db, seg, 64, &nseg));
		assert_true(nseg <= 64);
		uint64_t live = 0;
		for (size_t i = 0; i < nseg; i++)
			live += seg[i].live_bytes;
		return (int)(live / (32 + 8 + 7));
	}
}

/* Every reader that counts keys agrees that there are n (all but the
 * segments' live bytes, which depend on the values' lengths). */
static void expect_count(kv_t *db, int n)
{
	for (int r = 0; r < R_SEGMENT_STATS; r++)
		assert_int_equal(count_by(db, r), n);
}

/* After each put, at every count from 1 to 60, a get, kv_exists and
 * one kind of counting reader (in turn, each the first reader since the
 * put) see it. */
static void test_each_put_is_seen_at_once_by_every_reader(void **s)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;

	(void)s;
	tu_options(&o);
	db = tu_open(dir, &o);
	for (int i = 0; i < 60; i++) {
		char k[16];

		put_numbered(db, i, "v");
		assert_int_equal(count_by(db, i % R_KINDS), i + 1);
		expect_numbered(db, i, "v");
		key_of(k, sizeof k, i);
		assert_int_equal(kv_exists(db, k, strlen(k)), KV_OK);
	}
	expect_count(db, 60);
	assert_int_equal(count_by(db, R_SEGMENT_STATS), 60);
	TU_OK(kv_close(db));
	tu_rmdir(dir);
}

/* The digest of a live set does not depend on whether a reopen rebuilt
 * the index: the same pairs, read right after the puts and after. 28
 * puts: not a whole number of the groups of 16 the index takes them in,
 * so some are still on their way when kv_digest runs. */
static void test_digest_right_after_puts_matches_reopened(void **s)
{
	char *dir = tu_mkdir();
	struct kv_digest before, after;
	kv_options o;
	kv_t *db;

	(void)s;
	tu_options(&o);
	db = tu_open(dir, &o);
	for (int i = 0; i < 21; i++)
		put_numbered(db, i, "first");
	for (int i = 0; i < 21; i += 3)
		put_numbered(db, i, "second");
	TU_OK(kv_digest(db, &before));
	TU_OK(kv_close(db));
	db = tu_open(dir, &o);
	TU_OK(kv_digest(db, &after));
	assert_int_equal(before.keys, 21);
	assert_memory_equal(&before, &after, sizeof before);
	TU_OK(kv_close(db));
	tu_rmdir(dir);
}

/* The last write wins when puts of short keys are mixed with the writes
 * that take another path: batches, deletes, long keys, expiring puts. */
static void test_last_write_wins_across_kinds_of_write(void **s)
{
	static const char long_key[] = "a key longer than sixteen bytes";
	char *dir = tu_mkdir();
	kv_batch *b;
	kv_options o;
	kv_t *db;

	(void)s;
	tu_options(&o);
	db = tu_open(dir, &o);
	TU_OK(kv_batch_new(&b));

	assert_int_equal(tu_put(db, "k", "put 1"), KV_OK);
	TU_OK(kv_batch_put(b, "k", 1, "batch", 5));
	TU_OK(kv_write(db, b));
	tu_expect(db, "k", "batch");
	assert_int_equal(tu_put(db, "k", "put 2"), KV_OK);
	tu_expect(db, "k", "put 2");

	/* A delete right after a put finds it live, and removes it. */
	assert_int_equal(kv_delete(db, "k", 1), KV_OK);
	tu_expect_missing(db, "k");
	assert_int_equal(kv_delete(db, "k", 1), KV_ENOTFOUND);
	assert_int_equal(tu_put(db, "k", "put 3"), KV_OK);
	tu_expect(db, "k", "put 3");

	/* A batch that deletes a key just put. */
	kv_batch_clear(b);
	TU_OK(kv_batch_delete(b, "k", 1));
	TU_OK(kv_write(db, b));
	tu_expect_missing(db, "k");

	/* Short and long keys in turn. */
	assert_int_equal(tu_put(db, "s", "short 1"), KV_OK);
	assert_int_equal(tu_put(db, long_key, "long 1"), KV_OK);
	assert_int_equal(tu_put(db, "s", "short 2"), KV_OK);
	assert_int_equal(tu_put(db, long_key, "long 2"), KV_OK);
	tu_expect(db, "s", "short 2");
	tu_expect(db, long_key, "long 2");

	/* An expiring put over a plain one, and the other way round. */
	TU_OK(kv_put_ttl(db, "t", 1, "ttl", 3, 1000));
	tu_expect(db, "t", "ttl");
	tu_clock_ms += 1000;
	tu_expect_missing(db, "t");
	assert_int_equal(kv_delete(db, "t", 1), KV_ENOTFOUND);
	assert_int_equal(tu_put(db, "u", "plain"), KV_OK);
	TU_OK(kv_put_ttl(db, "u", 1, "expiring", 8, 1000));
	tu_expect(db, "u", "expiring");
	tu_clock_ms += 1000;
	tu_expect_missing(db, "u");
	TU_OK(kv_put_ttl(db, "w", 1, "expiring", 8, 1000));
	assert_int_equal(tu_put(db, "w", "plain"), KV_OK);
	tu_clock_ms += 1000;
	tu_expect(db, "w", "plain");
	expect_count(db, 3); /* s, the long key, w */

	kv_batch_free(b);
	TU_OK(kv_close(db));
	db = tu_open(dir, &o);
	tu_expect(db, "s", "short 2");
	tu_expect(db, long_key, "long 2");
	tu_expect(db, "w", "plain");
	tu_expect_missing(db, "k");
	tu_expect_missing(db, "u");
	TU_OK(kv_close(db));
	tu_rmdir(dir);
}

/* Segments of a few records each: puts roll over to a new segment every
 * few calls, and a compaction then merges every sealed one (all are under
 * compact_min_size), the newest among them too. No put is lost, none
 * reads an old value, before or after a reopen. */
static void test_rollovers_and_compaction_keep_every_put(void **s)
{
	enum { KEYS = 100 };
	char *dir = tu_mkdir();
	kv_compact_stats cs;
	kv_options o;
	kv_t *db;

	(void)s;
	tu_options(&o);
	o.max_file_size = 512; /* about 8 records of 60 bytes */
	o.compact_min_size = 1 << 20;
	db = tu_open(dir, &o);
	for (int i = 0; i < KEYS; i++)
		put_numbered(db, i, "old");
	for (int i = 0; i < KEYS; i += 3)
		put_numbered(db, i, "new");
	/* New keys written last, so that some are only in the segments the
	 * compaction reads and were never in the index before it. */
	for (int i = KEYS; i < KEYS + 20; i++)
		put_numbered(db, i, "late");
	TU_OK(kv_compact(db, &cs));
	for (int i = 0; i < KEYS + 20; i++)
		expect_numbered(db, i, i >= KEYS ? "late" :
				       i % 3 == 0 ? "new" : "old");
	expect_count(db, KEYS + 20);
	TU_OK(kv_close(db));
	db = tu_open(dir, &o);
	for (int i = 0; i < KEYS + 20; i++)
		expect_numbered(db, i, i >= KEYS ? "late" :
				       i % 3 == 0 ? "new" : "old");
	TU_OK(kv_close(db));
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_put_is_seen_at_once_by_every_reader),
		cmocka_unit_test(test_digest_right_after_puts_matches_reopened),
		cmocka_unit_test(test_last_write_wins_across_kinds_of_write),
		cmocka_unit_test(test_rollovers_and_compaction_keep_every_put),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
