/*
 * test_api_durability.c - what each sync mode promises, checked by crashing
 * a child process (_exit without close, SIGKILL) and by failing system
 * calls through the io table.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define N 3000

static void key_of(int i, char *k)
{
	snprintf(k, 16, "key%06d", i);
}

/* A child writes N keys in `mode` and dies without kv_close. */
static void crash_child(const char *dir, uint32_t mode)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		kv_options o;
		kv_t *db;
		char k[16];

		tu_options(&o);
		o.sync_mode = mode;
		o.sync_every = 7;
		o.max_file_size = 32 << 10;
		if (kv_open(dir, &o, &db))
			_exit(3);
		for (int i = 0; i < N; i++) {
			key_of(i, k);
			if (kv_put(db, k, strlen(k), k, strlen(k)))
				_exit(4);
		}
		_exit(0); /* no kv_close: buffers in the process are lost */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* The number of keys 0..m-1 present, asserting there is no hole. */
static int present_prefix(kv_t *db)
{
	char k[16];
	int m = 0;

	while (m < N) {
		key_of(m, k);
		if (kv_exists(db, k, strlen(k)) != KV_OK)
			break;
		tu_expect(db, k, k);
		m++;
	}
	for (int i = m; i < N; i++) {
		key_of(i, k);
		assert_int_equal(kv_exists(db, k, strlen(k)), KV_ENOTFOUND);
	}
	return m;
}

static void test_process_crash_loses_nothing_except_in_sync_none(void **s)
{
	const uint32_t modes[] = { KV_SYNC_WRITE, KV_SYNC_EVERY,
				   KV_SYNC_INTERVAL, KV_SYNC_ALWAYS,
				   KV_SYNC_NONE };

	(void)s;
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		char *dir = tu_mkdir();
		kv_options o;
		kv_t *db;

		crash_child(dir, modes[i]);
		tu_options(&o);
		db = tu_open(dir, &o);
		int m = present_prefix(db);
		if (modes[i] == KV_SYNC_NONE) {
			/* At most one 64 KiB buffer of 47-byte records lost;
			 * sealed segments were flushed when they rolled. */
			assert_true(m >= N - (64 << 10) / 47 - 1);
			assert_true(m < N);
		} else {
			assert_int_equal(m, N);
		}
		kv_close(db);
		tu_rmdir(dir);
	}
}

/* SIGKILL at a random moment under KV_SYNC_ALWAYS: every put the child
 * reported as acknowledged is there; at most the one in flight besides. */
static void test_kill_9_keeps_every_acknowledged_write(void **s)
{
	uint64_t seed = 12345;

	(void)s;
	for (int round = 0; round < 8; round++) {
		char *dir = tu_mkdir();
		int fds[2];
		pid_t pid;

		assert_int_equal(pipe(fds), 0);
		pid = fork();
		if (pid == 0) {
			kv_options o;
			kv_t *db;
			char k[16];

			close(fds[0]);
			tu_options(&o);
			o.sync_mode = KV_SYNC_ALWAYS;
			o.max_file_size = 4096;
			if (kv_open(dir, &o, &db))
				_exit(3);
			for (int i = 0;; i++) {
				key_of(i, k);
				if (kv_put(db, k, strlen(k), k, strlen(k)))
					_exit(4);
				if (write(fds[1], &i, sizeof i) != sizeof i)
					_exit(5);
			}
		}
		close(fds[1]);
		int want = 20 + (int)(tu_rand(&seed) % 300), last = -1, got;
		while (last < want &&
		       read(fds[0], &got, sizeof got) == sizeof got)
			last = got;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(fds[0]);

		kv_options o;
		tu_options(&o);
		kv_t *db = tu_open(dir, &o);
		int m = present_prefix(db);
		/* acknowledged: 0..last; in flight: at most a few more that
		 * the child wrote before it was killed but had not reported */
		assert_true(m >= last + 1);
		kv_close(db);
		tu_rmdir(dir);
	}
}

static void test_fdatasync_counts_follow_the_mode(void **s)
{
	struct { uint32_t mode, every; unsigned want; } cases[] = {
		{ KV_SYNC_ALWAYS, 0, 100 },
		{ KV_SYNC_EVERY, 10, 10 },
		{ KV_SYNC_EVERY, 30, 3 },
		{ KV_SYNC_WRITE, 0, 0 },
		{ KV_SYNC_NONE, 0, 0 },
	};

	(void)s;
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		char *dir = tu_mkdir();
		kv_options o;
		kv_t *db;
		char k[16];

		tu_options(&o);
		o.sync_mode = cases[c].mode;
		o.sync_every = cases[c].every;
		db = tu_open(dir, &o);
		tu_fault_clear();
		tu_fault(TU_FDATASYNC, 1000000, EIO, 0); /* count only */
		for (int i = 0; i < 100; i++) {
			key_of(i, k);
			TU_OK(tu_put(db, k, "v"));
		}
		assert_int_equal(tu_calls(TU_FDATASYNC), cases[c].want);
		tu_fault_clear();
		kv_close(db);
		tu_rmdir(dir);
	}
}

static void test_interval_mode_syncs_in_the_background(void **s)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;

	(void)s;
	tu_options(&o);
	o.sync_mode = KV_SYNC_INTERVAL;
	o.sync_every = 2;
	/* Install the counting table before the sync thread starts. */
	tu_fault(TU_FDATASYNC, 1000000, EIO, 0);
	db = tu_open(dir, &o);
	TU_OK(tu_put(db, "k", "v"));
	/* Not a timing assertion: wait (up to 20 s) for the thread to act. */
	for (int i = 0; i < 2000 && tu_calls(TU_FDATASYNC) == 0; i++)
		usleep(10000);
	assert_true(tu_calls(TU_FDATASYNC) >= 1);
	kv_close(db);
	tu_fault_clear();
	tu_rmdir(dir);
}

/* A failed fsync is never retried into a false success: the write fails,
 * the store refuses writes until reopened, and what was acknowledged
 * before is still there after reopening. */
static void test_failed_fsync_poisons_the_store(void **s)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;

	(void)s;
	tu_options(&o);
	o.sync_mode = KV_SYNC_ALWAYS;
	db = tu_open(dir, &o);
	TU_OK(tu_put(db, "before", "1"));
	tu_fault(TU_FDATASYNC, 0, EIO, 0);
	assert_int_equal(tu_put(db, "during", "2"), KV_EIO);
	assert_non_null(strstr(kv_errmsg(), "fdatasync"));
	tu_fault_clear();
	assert_int_equal(tu_put(db, "after", "3"), KV_EIO);
	assert_int_equal(kv_sync(db), KV_EIO);
	tu_expect(db, "before", "1"); /* reads still work */
	assert_int_equal(kv_close(db), KV_EIO);
	db = tu_open(dir, &o);
	tu_expect(db, "before", "1");
	tu_expect_missing(db, "after");
	TU_OK(tu_put(db, "after", "3"));
	kv_close(db);
	tu_rmdir(dir);
}

/* A failed or short append leaves no partial record behind, so the next
 * write and the next open both work and nothing wrong is read. */
static void test_failed_and_short_writes_leave_no_garbage(void **s)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	struct kv_stats st = { .size = sizeof st };

	(void)s;
	tu_options(&o);
	db = tu_open(dir, &o);
	TU_OK(tu_put(db, "a", "1"));
	uint64_t size = tu_disk_bytes(db);
	tu_fault(TU_PWRITE, 0, ENOSPC, 0);
	assert_int_equal(tu_put(db, "b", "2"), KV_EIO);
	assert_non_null(strstr(kv_errmsg(), "No space"));
	tu_fault_short_write(0, EIO);
	assert_int_equal(tu_put(db, "c", "3"), KV_EIO);
	tu_fault_clear();
	assert_int_equal(tu_file_size(tu_seg_path(dir, 1)), size);
	tu_expect_missing(db, "b");
	tu_expect_missing(db, "c");
	TU_OK(tu_put(db, "d", "4"));
	kv_close(db);
	db = tu_open(dir, &o);
	assert_int_equal(kv_stats(db, &st), KV_OK);
	assert_int_equal(st.recovered_truncated_bytes, 0);
	assert_int_equal(st.live_keys, 2);
	tu_expect(db, "a", "1");
	tu_expect(db, "d", "4");
	kv_close(db);
	tu_rmdir(dir);
}

/* When the file cannot even be cut back, the store stops writing. */
static void test_write_failure_that_cannot_be_undone_poisons(void **s)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;

	(void)s;
	tu_options(&o);
	db = tu_open(dir, &o);
	tu_fault_short_write(0, EIO);
	tu_fault(TU_FTRUNCATE, 0, EIO, 0);
	assert_int_equal(tu_put(db, "b", "2"), KV_EIO);
	tu_fault_clear();
	assert_int_equal(tu_put(db, "c", "3"), KV_EIO);
	kv_close(db);
	/* The half record is a torn tail: cut at open, nothing else lost. */
	db = tu_open(dir, &o);
	tu_expect_missing(db, "b");
	TU_OK(tu_put(db, "c", "3"));
	kv_close(db);
	tu_rmdir(dir);
}

static void test_failed_rollover_fails_the_write_only(void **s)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	char val[300];

	(void)s;
	memset(val, 'x', sizeof val);
	tu_options(&o);
	o.max_file_size = 1000;
	db = tu_open(dir, &o);
	/* Two 342-byte records fill the segment so the third must roll. */
	for (int i = 0; i < 2; i++) {
		char k[16];
		key_of(i, k);
		TU_OK(kv_put(db, k, strlen(k), val, sizeof val));
	}
	tu_fault(TU_RENAME, 0, EIO, 0);
	assert_int_equal(kv_put(db, "next", 4, val, sizeof val), KV_EIO);
	assert_non_null(strstr(kv_errmsg(), "0000000000000002.seg.tmp"));
	tu_fault(TU_OPEN, 0, EMFILE, 0);
	assert_int_equal(kv_put(db, "next", 4, val, sizeof val), KV_EIO);
	tu_fault_clear();
	kv_segment_stats seg[4];
	size_t nseg;
	TU_OK(kv_stats_segments(db, seg, 4, &nseg));
	assert_int_equal(nseg, 1);
	TU_OK(kv_put(db, "next", 4, val, sizeof val));
	/* Failed attempts use up their file numbers; a new one is made. */
	TU_OK(kv_stats_segments(db, seg, 4, &nseg));
	assert_int_equal(nseg, 2);
	assert_true(seg[1].seq > 2 && seg[1].active);
	assert_int_equal(access(tu_seg_path(dir, 2), F_OK), -1);
	assert_int_equal(access(tu_seg_path(dir, seg[1].seq), F_OK), 0);
	kv_close(db);
	db = tu_open(dir, &o);
	size_t n;
	assert_int_equal(kv_get_into(db, "next", 4, val, sizeof val, &n), KV_OK);
	assert_int_equal(n, sizeof val);
	kv_close(db);
	tu_rmdir(dir);
}

/* The newest segment file and the total size of the segment files. */
static uint64_t seg_files(const char *dir, uint64_t *newest)
{
	uint64_t total = 0;

	*newest = 0;
	for (uint64_t seq = 1; seq < 10000; seq++) {
		if (access(tu_seg_path(dir, seq), F_OK) != 0)
			continue;
		total += tu_file_size(tu_seg_path(dir, seq));
		*newest = seq;
	}
	return total;
}

static void expect_quiet_open(const char *dir, uint32_t flags,
			      uint64_t *disk)
{
	struct kv_stats st = { .size = sizeof st };
	kv_options o;
	kv_t *db;

	tu_options(&o);
	if (flags)
		o.flags = flags; /* KV_RDONLY, without KV_CREATE */
	o.sync_mode = KV_SYNC_ALWAYS;
	db = tu_open(dir, &o);
	assert_int_equal(present_prefix(db), N);
	TU_OK(kv_stats(db, &st));
	assert_int_equal(st.recovered_truncated_bytes, 0);
	*disk = st.disk_bytes;
	TU_OK(kv_close(db));
}

/* Every sync mode but NONE allocates the log's tail ahead of the appends
 * (which copy into a writable map; an fdatasync need not record a new
 * file size). A sealed segment and a closed store hold no such zeros;
 * after a crash, a reader stops at them and a writer cuts them, and
 * neither calls them a torn write. */
static void test_preallocated_tail_after_a_crash(void **state)
{
	const uint32_t modes[] = { KV_SYNC_ALWAYS, KV_SYNC_EVERY,
				   KV_SYNC_INTERVAL, KV_SYNC_WRITE };

	(void)state;
	for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
		char *dir = tu_mkdir(), *copy = tu_mkdir();
		uint64_t newest, seq, disk;

		crash_child(dir, modes[m]);
		uint64_t files = seg_files(dir, &newest);
		char tail[PATH_MAX], path[PATH_MAX];

		snprintf(tail, sizeof tail, "%s", tu_seg_path(dir, newest));
		uint64_t tail_size = tu_file_size(tail);
		/* Every sealed segment ends with a record, not zeros. */
		for (seq = 1; seq < newest; seq++) {
			snprintf(path, sizeof path, "%s", tu_seg_path(dir, seq));
			if (access(path, F_OK) == 0)
				assert_int_not_equal(
					tu_peek(path, tu_file_size(path) - 1), 0);
		}
		assert_int_equal(tu_peek(tail, tail_size - 1), 0);

		tu_copy_dir(dir, copy);
		expect_quiet_open(copy, KV_RDONLY, &disk);
		assert_true(disk < files); /* the zeros are not data */
		assert_int_equal(seg_files(copy, &seq), files); /* untouched */

		expect_quiet_open(dir, 0, &disk);
		assert_int_equal(seg_files(dir, &seq), disk); /* cut, closed */
		assert_true(tu_file_size(tail) < tail_size);
		tu_rmdir(copy);
		tu_rmdir(dir);
	}
}

static void test_reads_fall_back_to_pread_without_mmap(void **s)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;

	(void)s;
	tu_options(&o);
	db = tu_open(dir, &o);
	TU_OK(tu_put(db, "k", "mapped"));
	kv_close(db);
	tu_fault(TU_MMAP, 0, ENOMEM, 1);
	db = tu_open(dir, &o);
	tu_expect(db, "k", "mapped");
	TU_OK(tu_put(db, "k2", "unmapped"));
	tu_expect(db, "k2", "unmapped");
	kv_close(db);
	tu_fault_clear();
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_process_crash_loses_nothing_except_in_sync_none),
		cmocka_unit_test(test_kill_9_keeps_every_acknowledged_write),
		cmocka_unit_test(test_fdatasync_counts_follow_the_mode),
		cmocka_unit_test(test_interval_mode_syncs_in_the_background),
		cmocka_unit_test(test_failed_fsync_poisons_the_store),
		cmocka_unit_test(test_failed_and_short_writes_leave_no_garbage),
		cmocka_unit_test(test_write_failure_that_cannot_be_undone_poisons),
		cmocka_unit_test(test_failed_rollover_fails_the_write_only),
		cmocka_unit_test(test_preallocated_tail_after_a_crash),
		cmocka_unit_test(test_reads_fall_back_to_pread_without_mmap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
