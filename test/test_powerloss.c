/*
 * test_powerloss.c - simulated power loss on the write path (T2, part).
 *
 * The I/O layer's fsync and fdatasync are wrapped to record what each one
 * made durable: a file's size when its data was synced, a directory's
 * entries when it was synced. After every acknowledged operation the test
 * builds the files a power cut at that instant would leave - only names
 * made durable by a directory fsync, each cut to its last synced size,
 * then optionally followed by a torn tail (garbage, or part of the bytes
 * written but not synced) - and opens that state. Under KV_SYNC_ALWAYS it
 * must hold exactly the operations acknowledged so far; under
 * KV_SYNC_EVERY, a prefix of them no shorter than the last sync.
 * Workload: puts, deletes, batches, with segment rollover; no compaction
 * (its crash states are covered by test_api_compact's snapshots).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "testutil.h"

#define MAXF 64
#define NKEYS 10
#define NOPS 120

/* What a power cut would keep: names, and per name the synced size. */
static struct durable {
	char name[MAXF][64];
	uint64_t size[MAXF];
	int listed[MAXF];      /* entry made durable by a directory fsync */
	int n;
} dur;

static int slot_of(const char *name)
{
	for (int i = 0; i < dur.n; i++)
		if (strcmp(dur.name[i], name) == 0)
			return i;
	assert_true(dur.n < MAXF);
	snprintf(dur.name[dur.n], sizeof dur.name[0], "%s", name);
	dur.size[dur.n] = 0;
	dur.listed[dur.n] = 0;
	return dur.n++;
}

/* Records what a successful sync of fd made durable. */
static void record_sync(int fd)
{
	char link[64], path[PATH_MAX];
	struct stat st;
	ssize_t n;

	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof path - 1);
	if (n < 0 || fstat(fd, &st) != 0)
		return;
	path[n] = 0;
	if (S_ISDIR(st.st_mode)) {
		/* Every entry now in the directory is durable; gone ones not. */
		for (int i = 0; i < dur.n; i++)
			dur.listed[i] = 0;
		DIR *d = opendir(path);
		struct dirent *de;
		while (d && (de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				dur.listed[slot_of(de->d_name)] = 1;
		if (d)
			closedir(d);
		return;
	}
	const char *base = strrchr(path, '/');
	dur.size[slot_of(base ? base + 1 : path)] = (uint64_t)st.st_size;
}

static int recording;      /* off while a crash state is opened */

static int rec_fsync(int fd)
{
	int rc = kv__io_default.fsync(fd);

	if (rc == 0 && recording)
		record_sync(fd);
	return rc;
}

static int rec_fdatasync(int fd)
{
	int rc = kv__io_default.fdatasync(fd);

	if (rc == 0 && recording)
		record_sync(fd);
	return rc;
}

static void start_recording(void)
{
	kv__io.fsync = rec_fsync;
	kv__io.fdatasync = rec_fdatasync;
	recording = 1;
}

/* Builds the crash state of `from` in `to`; torn: 0 none, 1 garbage,
 * 2 part of the unsynced bytes. A renamed file keeps the size synced
 * under its temporary name. */
static void crash_state(const char *from, const char *to, int torn,
			uint64_t *seed)
{
	static uint8_t buf[1 << 16];

	assert_int_equal(mkdir(to, 0700), 0);
	for (int i = 0; i < dur.n; i++) {
		char src[PATH_MAX + 80], dst[PATH_MAX + 80], tmpname[80];
		uint64_t keep = dur.size[i];

		if (!dur.listed[i] || strcmp(dur.name[i], "LOCK") == 0)
			continue;
		snprintf(tmpname, sizeof tmpname, "%s.tmp", dur.name[i]);
		for (int j = 0; j < dur.n; j++)
			if (strcmp(dur.name[j], tmpname) == 0 && dur.size[j] > keep)
				keep = dur.size[j];
		snprintf(src, sizeof src, "%s/%s", from, dur.name[i]);
		snprintf(dst, sizeof dst, "%s/%s", to, dur.name[i]);
		int in = open(src, O_RDONLY), out;
		assert_true(in >= 0);
		out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_true(out >= 0);
		uint64_t have = tu_file_size(src);
		uint64_t extra = have > keep && torn ?
				 tu_rand(seed) % (have - keep + 1) : 0;
		for (uint64_t off = 0; off < keep + extra;) {
			size_t n = sizeof buf;
			if (n > keep + extra - off)
				n = (size_t)(keep + extra - off);
			assert_int_equal(pread(in, buf, n, (off_t)off), (ssize_t)n);
			if (torn == 1)
				for (size_t k = 0; k < n; k++)
					if (off + k >= keep)
						buf[k] = (uint8_t)tu_rand(seed);
			assert_int_equal(write(out, buf, n), (ssize_t)n);
			off += n;
		}
		close(in);
		close(out);
	}
}

/* The model: each op's effect in order; state after ops 1..n. */
static int op_key(int op) { return (op * 7) % NKEYS; }
static int op_is_del(int op) { return op % 9 == 0; }

static void expect_prefix(kv_t *db, int n, const char *what)
{
	int val[NKEYS] = { 0 };
	char k[8], buf[64];
	size_t len;

	for (int op = 1; op <= n; op++) {
		val[op_key(op)] = op_is_del(op) ? 0 : op;
		if (op % 10 == 0 && !op_is_del(op))
			val[(op_key(op) + 1) % NKEYS] = op; /* batch's 2nd put */
	}
	for (int key = 0; key < NKEYS; key++) {
		snprintf(k, sizeof k, "k%d", key);
		int rc = kv_get_into(db, k, strlen(k), buf, sizeof buf - 1, &len);
		int got = 0;
		if (rc == KV_OK) {
			buf[len] = 0;
			assert_int_equal(sscanf(buf, "op%d", &got), 1);
		} else if (rc != KV_ENOTFOUND) {
			fail_msg("%s: get %s: %s", what, k, kv_errmsg());
		}
		if (got != val[key])
			fail_msg("%s: %s holds op %d, want op %d", what, k, got,
				 val[key]);
	}
}

static int do_op(kv_t *db, int op)
{
	char k[8], k2[8], v[64];
	int len = snprintf(v, sizeof v, "op%d-%.*s", op, op % 40,
			   "pppppppppppppppppppppppppppppppppppppppp");

	snprintf(k, sizeof k, "k%d", op_key(op));
	if (op_is_del(op)) {
		int rc = kv_delete(db, k, strlen(k));
		return rc == KV_ENOTFOUND ? KV_OK : rc;
	}
	if (op % 10 != 0)
		return kv_put(db, k, strlen(k), v, (size_t)len);
	kv_batch *b;
	snprintf(k2, sizeof k2, "k%d", (op_key(op) + 1) % NKEYS);
	TU_OK(kv_batch_new(&b));
	TU_OK(kv_batch_put(b, k, strlen(k), v, (size_t)len));
	TU_OK(kv_batch_put(b, k2, strlen(k2), v, (size_t)len));
	int rc = kv_write(db, b);
	kv_batch_free(b);
	return rc;
}

/* Opens a crash state and returns the longest acknowledged prefix it
 * matches, checking it is at least `min`. */
static void check_state(const char *dir, int acked, int min, int torn,
			uint64_t *seed)
{
	char *tmp, path[PATH_MAX], what[64];
	kv_options o;
	kv_t *db = NULL;

	recording = 0;
	tmp = tu_mkdir(); /* this resets the I/O table */
	snprintf(path, sizeof path, "%s/crash", tmp);
	crash_state(dir, path, torn, seed);
	tu_options(&o);
	o.flags = KV_NO_AUTO_COMPACT;
	snprintf(what, sizeof what, "after op %d (torn %d)", acked, torn);
	if (kv_open(path, &o, &db) != KV_OK)
		fail_msg("%s: open: %s", what, kv_errmsg());
	/* Find the prefix it holds: exactly `acked` under ALWAYS. */
	int n;
	for (n = acked; n > min; n--) {
		int ok = 1;
		char k[8], buf[64];
		size_t len;
		/* The newest op's key decides quickly which prefix this is. */
		snprintf(k, sizeof k, "k%d", op_key(n));
		int rc = kv_get_into(db, k, strlen(k), buf, sizeof buf - 1, &len);
		if (rc == KV_OK) {
			int got;
			buf[len] = 0;
			ok = sscanf(buf, "op%d", &got) == 1 && got == n;
		} else {
			ok = op_is_del(n);
		}
		if (ok)
			break;
	}
	expect_prefix(db, n, what);
	kv_close(db);
	tu_rmdir(tmp);
	start_recording();
}

static void run_mode(uint32_t mode, uint32_t every)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	uint64_t seed = 77;
	int states = 0;

	memset(&dur, 0, sizeof dur);
	start_recording();
	tu_options(&o);
	o.sync_mode = mode;
	o.sync_every = every;
	o.max_file_size = 900;
	db = tu_open(dir, &o);
	for (int op = 1; op <= NOPS; op++) {
		TU_OK(do_op(db, op));
		int min = mode == KV_SYNC_ALWAYS ? op : op - (int)every;
		for (int torn = 0; torn < 3; torn++, states++)
			check_state(dir, op, min < 0 ? 0 : min, torn, &seed);
	}
	kv_close(db);
	recording = 0;
	kv__io = kv__io_default;
	print_message("power loss (mode %u): %d crash states opened\n", mode,
		      states);
	tu_rmdir(dir);
}

static void test_power_loss_under_sync_always(void **state)
{
	(void)state;
	run_mode(KV_SYNC_ALWAYS, 0);
}

static void test_power_loss_under_sync_every(void **state)
{
	(void)state;
	run_mode(KV_SYNC_EVERY, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_power_loss_under_sync_always),
		cmocka_unit_test(test_power_loss_under_sync_every),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
