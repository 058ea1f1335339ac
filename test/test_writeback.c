/*
 * test_writeback.c - write-back ahead of the seal (lib/writeback.h).
 *
 * Each finished KV__WB_STEP stretch of the active segment is handed to a
 * background thread that starts its write-back, after the writer dropped
 * its page-table entries for it. What a user relies on: every value reads
 * back, through the dropped pages and after a reopen; the stretches
 * handed over are whole, in order, and below the last record; none is
 * still mapped in the process when its write-back starts (else ext4's
 * write-protection of each page interrupts the writer); and a failing
 * write-back changes nothing, being advice; and a full segment's seal,
 * which runs on the writer's path, has less than KV__WB_TAIL_STEP left to
 * write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "io.h"
#include "testutil.h"

#define NPUT 30000 /* of about 1 KiB: three stretches of 8 MiB and more */
#define VLEN 1000

static struct {
	uint8_t *map;     /* the active segment's map */
	uint64_t next;    /* where the next request must begin */
	int calls;
	int mapped_pages; /* pages of a request still in the page table */
	int misplaced;    /* requests not starting at next, or unaligned */
	int fail;         /* return -1 / EIO */
	int lag_us;       /* each request first sleeps this long */
	_Atomic uint64_t handed; /* next, for the test's thread to wait on */
} R;

static void value_of(int i, char *v)
{
	memset(v, 'a' + i % 26, VLEN);
	snprintf(v, VLEN, "value %d", i);
	v[strlen(v)] = '.';
	v[VLEN] = '\0';
}

/* Pages of [p, p + len) present in this process's page table
 * (/proc/self/pagemap, bit 63). */
static int present_pages(const uint8_t *p, uint64_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	int fd = open("/proc/self/pagemap", O_RDONLY), n = 0;

	assert_true(fd >= 0);
	for (uint64_t o = 0; o < len; o += (uint64_t)pg) {
		uint64_t e = 0, vpn = (uint64_t)(uintptr_t)(p + o) / (uint64_t)pg;
		assert_int_equal(pread(fd, &e, sizeof e, (off_t)(vpn * 8)),
				 sizeof e);
		n += (int)(e >> 63);
	}
	close(fd);
	return n;
}

static int recorder(int fd, off_t off, off_t len)
{
	(void)fd;
	R.calls++;
	if (R.lag_us)
		usleep((useconds_t)R.lag_us);
	if ((uint64_t)off != R.next || (uint64_t)off % KV__WB_STEP ||
	    (uint64_t)len % KV__WB_STEP || len <= 0)
		R.misplaced++;
	R.next = (uint64_t)(off + len);
	R.mapped_pages += present_pages(R.map + off, (uint64_t)len);
	atomic_store(&R.handed, R.next);
	if (R.fail) {
		errno = EIO;
		return -1;
	}
	return 0;
}

static void fill_and_check(int fail, int lag_us)
{
	char *dir = tu_mkdir(), key[32], val[VLEN + 1];
	kv_options o;

	memset(&R, 0, sizeof R);
	R.fail = fail;
	R.lag_us = lag_us;
	tu_options(&o); /* KV_SYNC_WRITE, one segment of 64 MiB */
	kv_t *db = tu_open(dir, &o);
	R.map = db->active->map;
	assert_non_null(R.map);
	kv__io.writeback = recorder;
	for (int i = 0; i < NPUT; i++) {
		snprintf(key, sizeof key, "key%06d", i);
		value_of(i, val);
		TU_OK(kv_put(db, key, strlen(key), val, VLEN));
	}
	/* The reads below fault pages of finished stretches back in, so
	 * first the thread must have taken every stretch handed over (it
	 * lagged once in CI: 1,021 pages counted as mapped). */
	uint64_t end = db->active->size - db->active->size % KV__WB_STEP;
	for (int ms = 0; atomic_load(&R.handed) < end; ms++) {
		if (ms == 60000)
			fail_msg("write-back thread took %llu of %llu bytes "
				 "in 60 s", (unsigned long long)R.handed,
				 (unsigned long long)end);
		usleep(1000);
	}
	/* Read back through pages the writer no longer maps. */
	for (int i = 0; i < NPUT; i += 7) {
		snprintf(key, sizeof key, "key%06d", i);
		value_of(i, val);
		tu_expect(db, key, val);
	}
	TU_OK(kv_close(db)); /* joins the thread after its last request */
	tu_fault_clear();

	uint64_t size = tu_file_size(tu_seg_path(dir, 1));
	assert_true(size >= 3 * (uint64_t)KV__WB_STEP);
	assert_true(R.calls >= 1);
	assert_int_equal(R.misplaced, 0);
	assert_int_equal(R.next, size - size % KV__WB_STEP);
	assert_int_equal(R.mapped_pages, 0);

	db = tu_open(dir, &o);
	for (int i = 0; i < NPUT; i++) {
		snprintf(key, sizeof key, "key%06d", i);
		value_of(i, val);
		tu_expect(db, key, val);
	}
	TU_OK(kv_close(db));
	tu_rmdir(dir);
}

static void test_finished_stretches_are_handed_over_unmapped(void **state)
{
	(void)state;
	fill_and_check(0, 0);
}

/* A thread that falls behind the writer (a busy machine) must not map
 * finished pages back in: while each write-back here takes 20 ms more,
 * the writer's requests to fault in pages ahead wait and merge. */
static void test_a_lagging_thread_maps_no_finished_page_back(void **state)
{
	(void)state;
	fill_and_check(0, 20000);
}

static void test_a_failing_writeback_changes_nothing(void **state)
{
	(void)state;
	fill_and_check(1, 0);
}

/* In KV_SYNC_ALWAYS each put's fdatasync writes its own pages: nothing
 * is left for write-back ahead, and no thread is started for it. */
static void test_sync_always_needs_no_writeback_ahead(void **state)
{
	char *dir = tu_mkdir(), key[32], val[VLEN + 1];
	kv_options o;

	(void)state;
	memset(&R, 0, sizeof R);
	tu_options(&o);
	o.sync_mode = KV_SYNC_ALWAYS;
	kv_t *db = tu_open(dir, &o);
	R.map = db->active->map;
	kv__io.writeback = recorder;
	for (int i = 0; i < 9000; i++) {
		snprintf(key, sizeof key, "key%06d", i);
		value_of(i, val);
		TU_OK(kv_put(db, key, strlen(key), val, VLEN));
	}
	assert_int_equal(db->wb.thread_on, 0);
	TU_OK(kv_close(db));
	tu_fault_clear();
	assert_int_equal(R.calls, 0);
	tu_rmdir(dir);
}

/* The seal's fsync writes what write-back ahead has not been handed: in
 * the last KV__WB_STEP of a segment the steps shrink to KV__WB_TAIL_STEP,
 * so a full segment is sealed with less than that left to write (with 8
 * MiB steps throughout, 7 ms of fsync per rollover here). */
static void test_a_full_segment_is_sealed_with_little_left_to_write(void **st)
{
	char *dir = tu_mkdir(), key[32], val[VLEN + 1];
	kv_options o;
	uint64_t size = 0, done = 0;

	(void)st;
	tu_options(&o);
	o.max_file_size = 2 * KV__WB_STEP;
	kv_t *db = tu_open(dir, &o);
	int i;
	for (i = 0; db->active->seq == 1; i++) {
		size = db->active->size; /* as the put below may seal it */
		done = db->active->wb_done;
		snprintf(key, sizeof key, "key%06d", i);
		value_of(i, val);
		TU_OK(kv_put(db, key, strlen(key), val, VLEN));
	}
	assert_true(size > o.max_file_size - 2 * (VLEN + 64));
	assert_true(done <= size);
	if (size - done >= KV__WB_TAIL_STEP)
		fail_msg("sealed at %llu bytes with %llu not handed to "
			 "write-back", (unsigned long long)size,
			 (unsigned long long)(size - done));
	for (int j = 0; j < i; j += 11) {
		snprintf(key, sizeof key, "key%06d", j);
		value_of(j, val);
		tu_expect(db, key, val);
	}
	TU_OK(kv_close(db));
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_finished_stretches_are_handed_over_unmapped),
		cmocka_unit_test(test_a_lagging_thread_maps_no_finished_page_back),
		cmocka_unit_test(test_a_failing_writeback_changes_nothing),
		cmocka_unit_test(test_sync_always_needs_no_writeback_ahead),
		cmocka_unit_test(
			test_a_full_segment_is_sealed_with_little_left_to_write),
	};

	tu_tmpdir_in_memory();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
