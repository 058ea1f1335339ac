/* test_api_basic.c - the kv.h contract for single keys, options, locking. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static void test_put_get_survive_reopen(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;

	(void)state;
	tu_options(&o);
	db = tu_open(dir, &o);
	assert_int_equal(tu_put(db, "a", "1"), KV_OK);
	assert_int_equal(kv_put(db, "empty", 5, NULL, 0), KV_OK);
	assert_int_equal(tu_put(db, "b", "2"), KV_OK);
	assert_int_equal(tu_put(db, "a", "one"), KV_OK); /* overwrite */
	assert_int_equal(kv_delete(db, "b", 1), KV_OK);
	assert_int_equal(kv_close(db), KV_OK);

	o.flags = KV_NO_AUTO_COMPACT;
	db = tu_open(dir, &o);
	tu_expect(db, "a", "one");
	tu_expect(db, "empty", "");
	tu_expect_missing(db, "b");
	assert_int_equal(kv_delete(db, "b", 1), KV_ENOTFOUND);
	assert_int_equal(kv_close(db), KV_OK);
	tu_rmdir(dir);
}

static void test_binary_keys_and_limits(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	static uint8_t big[KV_MAX_KEY + 1];
	void *v;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)i;
	tu_options(&o);
	o.max_value_size = 1000;
	db = tu_open(dir, &o);
	assert_int_equal(kv_put(db, big, KV_MAX_KEY, "max", 3), KV_OK);
	assert_int_equal(kv_put(db, "\0\xff", 2, big, 1000), KV_OK);
	assert_int_equal(kv_put(db, big, KV_MAX_KEY + 1, "x", 1), KV_ETOOBIG);
	assert_int_equal(kv_put(db, "k", 1, big, 1001), KV_ETOOBIG);
	assert_int_equal(kv_close(db), KV_OK);
	db = tu_open(dir, &o);
	assert_int_equal(kv_get(db, big, KV_MAX_KEY, &v, &n), KV_OK);
	assert_int_equal(n, 3);
	assert_memory_equal(v, "max", 3);
	assert_int_equal(((char *)v)[3], 0); /* NUL after the value */
	kv_free(v);
	assert_int_equal(kv_get(db, "\0\xff", 2, &v, &n), KV_OK);
	assert_int_equal(n, 1000);
	assert_memory_equal(v, big, 1000);
	kv_free(v);
	/* A key that is a prefix of a stored key is a different key. */
	assert_int_equal(kv_exists(db, "\0", 1), KV_ENOTFOUND);
	kv_close(db);
	tu_rmdir(dir);
}

/* Bad input returns KV_EINVAL (or ETOOBIG) and writes nothing. */
static void test_bad_arguments_change_nothing(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	void *v = (void *)1;
	size_t n = 7;
	char buf[4];
	struct kv_stats before = { .size = sizeof before };
	struct kv_stats after = { .size = sizeof after };

	(void)state;
	tu_options(&o);
	db = tu_open(dir, &o);
	assert_int_equal(tu_put(db, "k", "v"), KV_OK);
	assert_int_equal(kv_stats(db, &before), KV_OK);

	assert_int_equal(kv_put(NULL, "k", 1, "v", 1), KV_EINVAL);
	assert_int_equal(kv_put(db, NULL, 1, "v", 1), KV_EINVAL);
	assert_int_equal(kv_put(db, "k", 0, "v", 1), KV_EINVAL);
	assert_int_equal(kv_put(db, "k", 1, NULL, 1), KV_EINVAL);
	assert_int_equal(kv_put_ttl(db, "k", 1, "v", 1, 0), KV_EINVAL);
	assert_int_equal(kv_delete(db, NULL, 0), KV_EINVAL);
	assert_int_equal(kv_delete(db, "", 0), KV_EINVAL);
	assert_int_equal(kv_get(db, "k", 1, NULL, &n), KV_EINVAL);
	assert_int_equal(kv_get(db, "k", 1, &v, NULL), KV_EINVAL);
	assert_int_equal(kv_get(db, "", 0, &v, &n), KV_EINVAL);
	assert_null(v);
	assert_int_equal(n, 0);
	assert_int_equal(kv_get_into(db, "k", 1, NULL, 4, &n), KV_EINVAL);
	assert_int_equal(kv_get_into(db, "k", 1, buf, 4, NULL), KV_EINVAL);
	assert_int_equal(kv_get_view(db, "k", 1, NULL, NULL), KV_EINVAL);
	assert_int_equal(kv_exists(NULL, "k", 1), KV_EINVAL);
	assert_int_equal(kv_foreach(db, NULL, NULL), KV_EINVAL);
	assert_int_equal(kv_sync(NULL), KV_EINVAL);
	assert_int_equal(kv_stats(db, NULL), KV_EINVAL);
	after.size = 3;
	assert_int_equal(kv_stats(db, &after), KV_EINVAL);
	after.size = sizeof after;
	assert_int_equal(kv_stats_segments(db, NULL, 1, &n), KV_EINVAL);
	assert_int_equal(kv_write(db, NULL), KV_EINVAL);

	assert_int_equal(kv_stats(db, &after), KV_OK);
	assert_int_equal(after.last_lsn, before.last_lsn);
	assert_int_equal(after.disk_bytes, before.disk_bytes);
	tu_expect(db, "k", "v");
	kv_close(db);
	tu_rmdir(dir);
}

static void test_bad_options_are_refused(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db = (kv_t *)1;

	(void)state;
	tu_options(&o);
	o.flags |= 0x8000;
	assert_int_equal(kv_open(dir, &o, &db), KV_EINVAL);
	assert_null(db);
	assert_non_null(strstr(kv_errmsg(), "unknown flags"));
	tu_options(&o);
	o.sync_mode = 99;
	assert_int_equal(kv_open(dir, &o, &db), KV_EINVAL);
	tu_options(&o);
	o.size = 8;
	assert_int_equal(kv_open(dir, &o, &db), KV_EINVAL);
	tu_options(&o);
	o.expected_keys = UINT64_MAX;
	assert_int_equal(kv_open(dir, &o, &db), KV_EINVAL);
	assert_non_null(strstr(kv_errmsg(), "expected_keys"));
	tu_options(&o);
	o.max_value_size = (uint64_t)KV_MAX_VALUE + 1;
	assert_int_equal(kv_open(dir, &o, &db), KV_EINVAL);
	tu_options(&o);
	o.flags = KV_RDONLY | KV_CREATE;
	assert_int_equal(kv_open(dir, &o, &db), KV_EINVAL);
	tu_options(&o);
	o.flags = KV_EXCL;
	assert_int_equal(kv_open(dir, &o, &db), KV_EINVAL);
	assert_int_equal(kv_open(NULL, &o, &db), KV_EINVAL);
	assert_int_equal(kv_open("", &o, &db), KV_EINVAL);
	assert_int_equal(kv_open(dir, &o, NULL), KV_EINVAL);
	assert_int_equal(kv_close(NULL), KV_OK);
	tu_rmdir(dir);
}

static void test_create_excl_and_missing_store(void **state)
{
	char *dir = tu_mkdir();
	char sub[4200];
	kv_options o;
	kv_t *db = NULL;

	(void)state;
	snprintf(sub, sizeof sub, "%s/store", dir);
	kv_options_init(&o);
	assert_int_equal(kv_open(sub, &o, &db), KV_ENOENT);
	assert_int_equal(kv_open(sub, NULL, &db), KV_ENOENT);
	o.flags = KV_RDONLY;
	assert_int_equal(kv_open(sub, &o, &db), KV_ENOENT);
	o.flags = KV_CREATE | KV_EXCL | KV_NO_AUTO_COMPACT;
	db = tu_open(sub, &o);
	assert_int_equal(tu_put(db, "k", "v"), KV_OK);
	kv_close(db);
	assert_int_equal(kv_open(sub, &o, &db), KV_EEXIST);
	assert_null(db);
	/* A file where the directory should be. */
	o.flags = KV_CREATE | KV_NO_AUTO_COMPACT;
	assert_int_equal(kv_open(tu_seg_path(sub, 1), &o, &db), KV_EINVAL);
	tu_rmdir(dir);
}

static void test_second_writer_is_locked_out(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db, *db2 = (kv_t *)1, *ro;
	pid_t pid;
	int status;

	(void)state;
	tu_options(&o);
	db = tu_open(dir, &o);
	assert_int_equal(tu_put(db, "k", "v"), KV_OK);
	assert_int_equal(kv_open(dir, &o, &db2), KV_ELOCKED);
	assert_null(db2);
	/* Another process is refused too. */
	pid = fork();
	if (pid == 0) {
		kv_t *x;
		_exit(kv_open(dir, &o, &x) == KV_ELOCKED ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Readers coexist with the writer and see the data as of open. */
	o.flags = KV_RDONLY;
	ro = tu_open(dir, &o);
	tu_expect(ro, "k", "v");
	assert_int_equal(tu_put(ro, "k", "w"), KV_EREADONLY);
	assert_int_equal(kv_delete(ro, "k", 1), KV_EREADONLY);
	assert_int_equal(kv_close(ro), KV_OK);
	assert_int_equal(kv_close(db), KV_OK);
	/* The lock goes with the handle. */
	o.flags = KV_NO_AUTO_COMPACT;
	db = tu_open(dir, &o);
	kv_close(db);
	tu_rmdir(dir);
}

static int view_cb(void *ctx, const void *val, size_t vlen)
{
	*(size_t *)ctx = vlen;
	return memcmp(val, "hello", 5) == 0 ? 42 : -1000;
}

static void test_get_into_view_and_exists(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	char buf[8] = "xxxxxxx";
	size_t n = 0;

	(void)state;
	tu_options(&o);
	db = tu_open(dir, &o);
	assert_int_equal(tu_put(db, "k", "hello"), KV_OK);
	assert_int_equal(kv_get_into(db, "k", 1, buf, 4, &n), KV_ERANGE);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "xxxxxxx", 7); /* untouched */
	assert_int_equal(kv_get_into(db, "k", 1, buf, 5, &n), KV_OK);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(kv_get_into(db, "zz", 2, buf, 5, &n), KV_ENOTFOUND);
	assert_int_equal(kv_get_view(db, "k", 1, view_cb, &n), 42);
	assert_int_equal(kv_exists(db, "k", 1), KV_OK);
	assert_int_equal(kv_exists(db, "q", 1), KV_ENOTFOUND);
	kv_close(db);
	tu_rmdir(dir);
}

static void test_compression_is_transparent_and_counted(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	struct kv_stats st = { .size = sizeof st };
	char val[4000], noise[600];
	uint64_t seed = 7;

	(void)state;
	memset(val, 'a', sizeof val);
	for (size_t i = 0; i < sizeof noise; i++)
		noise[i] = (char)tu_rand(&seed);
	tu_options(&o);
	o.flags |= KV_COMPRESS;
	o.compress_min = 512;
	db = tu_open(dir, &o);
	assert_int_equal(kv_put(db, "z", 1, val, sizeof val), KV_OK);
	assert_int_equal(kv_put(db, "noise", 5, noise, sizeof noise), KV_OK);
	assert_int_equal(kv_put(db, "small", 5, val, 100), KV_OK);
	assert_int_equal(kv_stats(db, &st), KV_OK);
	assert_int_equal(st.compressed_values, 1);
	assert_true(st.compression_saved_bytes > 3500);
	kv_close(db);
	/* Readable after reopen, with or without the flag. */
	o.flags = KV_NO_AUTO_COMPACT;
	db = tu_open(dir, &o);
	void *v;
	size_t n;
	assert_int_equal(kv_get(db, "z", 1, &v, &n), KV_OK);
	assert_int_equal(n, sizeof val);
	assert_memory_equal(v, val, sizeof val);
	kv_free(v);
	assert_int_equal(kv_get(db, "noise", 5, &v, &n), KV_OK);
	assert_memory_equal(v, noise, sizeof noise);
	kv_free(v);
	kv_close(db);
	tu_rmdir(dir);
}

static void test_errors_have_text(void **state)
{
	(void)state;
	for (int e = KV_OK; e >= KV_ECANCELED; e--) {
		assert_non_null(kv_strerror(e));
		assert_string_not_equal(kv_strerror(e), "unknown error");
	}
	assert_string_equal(kv_strerror(1), "unknown error");
	assert_string_equal(kv_strerror(-999), "unknown error");
	assert_non_null(kv_errmsg());
}

static void test_rollover_and_segment_figures(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	kv_segment_stats seg[64];
	struct kv_stats st = { .size = sizeof st };
	size_t n;
	char key[16], val[100];

	(void)state;
	memset(val, 'v', sizeof val);
	tu_options(&o);
	o.max_file_size = 1024;
	db = tu_open(dir, &o);
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof key, "k%03d", i);
		assert_int_equal(kv_put(db, key, 4, val, sizeof val), KV_OK);
	}
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof key, "k%03d", i);
		assert_int_equal(kv_put(db, key, 4, val, 10), KV_OK);
	}
	assert_int_equal(kv_stats_segments(db, seg, 64, &n), KV_OK);
	assert_true(n > 10);
	assert_int_equal(kv_stats(db, &st), KV_OK);
	assert_int_equal(st.segments, n);
	assert_int_equal(st.live_keys, 100);
	/* 50 records of 136 B and 50 of 46 B are live; 50 of 136 B dead. */
	assert_int_equal(st.live_bytes, 50 * 136 + 50 * 46);
	assert_int_equal(st.dead_bytes, 50 * 136);
	uint64_t sum = 0, live = 0;
	for (size_t i = 0; i < n; i++) {
		assert_true(i == 0 || seg[i].seq > seg[i - 1].seq);
		assert_true(seg[i].bytes <= 1024 || seg[i].bytes == 32 + 136);
		assert_int_equal(seg[i].active, i + 1 == n);
		sum += seg[i].bytes;
		live += seg[i].live_bytes;
	}
	assert_int_equal(sum, st.disk_bytes);
	assert_int_equal(live, st.live_bytes);
	kv_close(db);
	/* Figures are rebuilt identically at open. */
	db = tu_open(dir, &o);
	struct kv_stats again = { .size = sizeof again };
	assert_int_equal(kv_stats(db, &again), KV_OK);
	assert_int_equal(again.live_bytes, st.live_bytes);
	assert_int_equal(again.dead_bytes, st.dead_bytes);
	assert_int_equal(again.last_lsn, 150);
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof key, "k%03d", i);
		size_t len;
		assert_int_equal(kv_get_into(db, key, 4, val, sizeof val, &len),
				 KV_OK);
		assert_int_equal(len, i < 50 ? 10 : 100);
	}
	kv_close(db);
	tu_rmdir(dir);
}

/* Files are private by default (0600, directory 0700), follow the mode
 * option under the umask, and a symlink or directory where a segment
 * should be is refused, not followed. */
static void test_file_modes_and_strangers(void **state)
{
	char *dir = tu_mkdir(), sub[4200], sub2[4200];
	kv_options o;
	struct stat st;
	kv_t *db = NULL;
	mode_t old = umask(022);

	(void)state;
	snprintf(sub, sizeof sub, "%s/private", dir);
	tu_options(&o);
	db = tu_open(sub, &o);
	kv_close(db);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(tu_seg_path(sub, 1), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(tu_path(sub, "LOCK"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	snprintf(sub2, sizeof sub2, "%s/shared", dir);
	o.file_mode = 0666; /* the umask still applies */
	db = tu_open(sub2, &o);
	kv_close(db);
	assert_int_equal(stat(sub2, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0755);
	assert_int_equal(stat(tu_seg_path(sub2, 1), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	umask(old);

	/* A symlink in place of segment 2, pointing at a real segment. */
	char target[4200];
	snprintf(target, sizeof target, "%s", tu_seg_path(sub2, 1));
	assert_int_equal(symlink(target, tu_seg_path(sub, 2)), 0);
	o.flags = KV_NO_AUTO_COMPACT;
	assert_int_equal(kv_open(sub, &o, &db), KV_EIO);
	assert_null(db);
	assert_non_null(strstr(kv_errmsg(), "0000000000000002.seg"));
	unlink(tu_seg_path(sub, 2));
	assert_int_equal(mkdir(tu_seg_path(sub, 2), 0700), 0);
	assert_int_equal(kv_open(sub, &o, &db), KV_EIO);
	assert_non_null(strstr(kv_errmsg(), "0000000000000002.seg"));
	rmdir(tu_seg_path(sub, 2));
	db = tu_open(sub, &o);
	kv_close(db);
	tu_rmdir(dir);
}

static uint64_t keydir_bytes(kv_t *db)
{
	struct kv_stats st = { .size = sizeof st };

	assert_int_equal(kv_stats(db, &st), KV_OK);
	return st.keydir_bytes;
}

/* expected_keys sizes the index at open (a table of 8-byte slots at most
 * 80% full), keeps every key findable whether the store stays under it
 * or grows past it, and a bad value creates nothing. */
static void test_expected_keys_sizes_the_index_at_open(void **state)
{
	char *dir = tu_mkdir();
	char sub[4200], key[32];
	kv_options o;
	kv_t *db = (kv_t *)1;
	struct stat st;

	(void)state;
	snprintf(sub, sizeof sub, "%s/store", dir);
	tu_options(&o);
	o.expected_keys = (UINT64_C(1) << 32) / 5 * 4 + 1;
	assert_int_equal(kv_open(sub, &o, &db), KV_EINVAL);
	assert_null(db);
	assert_int_equal(stat(sub, &st), -1);

	tu_options(&o);
	db = tu_open(sub, &o);
	uint64_t plain = keydir_bytes(db);
	kv_close(db);
	o.expected_keys = 200000;
	db = tu_open(sub, &o);
	uint64_t sized = keydir_bytes(db);
	assert_true(sized >= 200000 / 4 * 5 * 8);
	assert_true(sized > plain + 200000 * 8);
	for (int i = 0; i < 3000; i++) {
		snprintf(key, sizeof key, "key-%06d", i);
		assert_int_equal(tu_put(db, key, key), KV_OK);
	}
	kv_close(db);

	/* Reopened with fewer expected than it holds, then grown past. */
	o.expected_keys = 100;
	db = tu_open(sub, &o);
	assert_true(keydir_bytes(db) < sized);
	for (int i = 3000; i < 6000; i++) {
		snprintf(key, sizeof key, "key-%06d", i);
		assert_int_equal(tu_put(db, key, key), KV_OK);
	}
	for (int i = 0; i < 6000; i++) {
		snprintf(key, sizeof key, "key-%06d", i);
		tu_expect(db, key, key);
	}
	kv_close(db);
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_survive_reopen),
		cmocka_unit_test(test_binary_keys_and_limits),
		cmocka_unit_test(test_bad_arguments_change_nothing),
		cmocka_unit_test(test_bad_options_are_refused),
		cmocka_unit_test(test_create_excl_and_missing_store),
		cmocka_unit_test(test_second_writer_is_locked_out),
		cmocka_unit_test(test_get_into_view_and_exists),
		cmocka_unit_test(test_compression_is_transparent_and_counted),
		cmocka_unit_test(test_errors_have_text),
		cmocka_unit_test(test_rollover_and_segment_figures),
		cmocka_unit_test(test_file_modes_and_strangers),
		cmocka_unit_test(test_expected_keys_sizes_the_index_at_open),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
