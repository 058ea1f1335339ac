/* test_api_ttl.c - per-key expiry, driven by a replaced clock. */
#include <string.h>

#include "testutil.h"

static void test_expired_keys_are_invisible_everywhere(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	struct kv_stats st = { .size = sizeof st };
	int n = 0;

	(void)state;
	tu_clock_ms = 1000000;
	tu_options(&o);
	db = tu_open(dir, &o);
	TU_OK(kv_put_ttl(db, "t", 1, "temp", 4, 500));
	TU_OK(tu_put(db, "p", "perm"));
	tu_clock_ms += 499;
	tu_expect(db, "t", "temp");
	tu_clock_ms += 1; /* expiry is at put time + ttl, exclusive */
	tu_expect_missing(db, "t");
	assert_int_equal(kv_foreach(db, tu_count_pair, &n), KV_OK);
	assert_int_equal(n, 1);
	n = 0;
	assert_int_equal(kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 0, tu_count_pair,
				 &n), KV_OK);
	assert_int_equal(n, 1);
	assert_int_equal(kv_delete(db, "t", 1), KV_ENOTFOUND);
	/* Its bytes count as dead: 32 + 1 + 4 = 37. */
	assert_int_equal(kv_stats(db, &st), KV_OK);
	assert_int_equal(st.live_keys, 1);
	assert_int_equal(st.live_bytes, 32 + 1 + 4);
	assert_int_equal(st.dead_bytes, 37);
	/* ...in the segment's own figures too. */
	kv_segment_stats seg[2];
	size_t nseg;
	TU_OK(kv_stats_segments(db, seg, 2, &nseg));
	assert_int_equal(nseg, 1);
	assert_int_equal(seg[0].live_bytes, 37);
	assert_int_equal(seg[0].dead_bytes, 37);
	kv_close(db);
	/* Reopening after expiry drops the key from the index for good, so a
	 * clock turned back afterwards does not bring it back. */
	db = tu_open(dir, &o);
	tu_expect_missing(db, "t");
	tu_clock_ms -= 100;
	tu_expect_missing(db, "t");
	kv_close(db);
	tu_rmdir(dir);
}

static void test_plain_put_clears_a_ttl_and_ttl_survives_reopen(void **s)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	kv_batch *b;

	(void)s;
	tu_clock_ms = 5000000;
	tu_options(&o);
	db = tu_open(dir, &o);
	TU_OK(kv_put_ttl(db, "a", 1, "1", 1, 100));
	TU_OK(tu_put(db, "a", "forever"));
	TU_OK(kv_put_ttl(db, "b", 1, "2", 1, 1000));
	TU_OK(kv_batch_new(&b));
	TU_OK(kv_batch_put_ttl(b, "c", 1, "3", 1, 200));
	assert_int_equal(kv_batch_put_ttl(b, "c", 1, "3", 1, 0), KV_EINVAL);
	assert_int_equal(kv_batch_count(b), 1);
	TU_OK(kv_write(db, b));
	kv_batch_free(b);
	kv_close(db);
	db = tu_open(dir, &o);
	tu_clock_ms += 150;
	tu_expect(db, "a", "forever");
	tu_expect(db, "b", "2");
	tu_expect(db, "c", "3");
	tu_clock_ms += 100;
	tu_expect_missing(db, "c");
	tu_expect(db, "b", "2");
	tu_clock_ms += 1000;
	tu_expect_missing(db, "b");
	/* A put after expiry makes the key live again, without TTL. */
	TU_OK(tu_put(db, "b", "back"));
	tu_expect(db, "b", "back");
	kv_close(db);
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expired_keys_are_invisible_everywhere),
		cmocka_unit_test(test_plain_put_clears_a_ttl_and_ttl_survives_reopen),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
