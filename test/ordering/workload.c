/*
 * workload.c - the program check_order.py runs under strace -f (T3).
 *
 *   workload DIR PHASE
 *
 * Each phase opens the store in DIR (KV_SYNC_ALWAYS, 2 KiB segments, so
 * it rolls over often), writes, compacts and closes. After every write
 * the library acknowledged, it writes "ACK <what>" to standard output with
 * one write(2), so the acknowledgement is an event in the trace, ordered
 * against the file-system calls that must precede it.
 *   1  puts, deletes, batches; two compactions (the second reads the
 *      first one's outputs and their hints)
 *   2  an open that truncates the torn tail check_order.py appended, then
 *      writes and a compaction whose input unlinks fail (EIO, through the
 *      kv__io table): its obsolete list stays on disk
 *   3  an open that carries the list out; writes; a compaction that fails
 *      on the directory fsync after its list (and is undone); another one
 * Exits 0 when every call behaved as the phase expects.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "kv.h"

static kv_t *db;
static int ops;

static void die(const char *what, int rc)
{
	fprintf(stderr, "workload: %s: %s: %s\n", what, kv_strerror(rc),
		kv_errmsg());
	exit(1);
}

/* One write(2): the acknowledgement as the trace will show it. */
static void ack(const char *what, int k)
{
	char line[64];
	int n = snprintf(line, sizeof line, "ACK %s k%d\n", what, k);

	if (write(1, line, (size_t)n) != n)
		exit(1);
}

static void put(int k)
{
	char key[16], val[1400];
	size_t len = (size_t)(8 + (ops * 131) % 1200);

	snprintf(key, sizeof key, "k%d", k);
	memset(val, 'a' + ops % 26, len);
	int rc = kv_put(db, key, strlen(key), val, len);
	if (rc)
		die("put", rc);
	ack("put", k);
}

static void del(int k)
{
	char key[16];

	snprintf(key, sizeof key, "k%d", k);
	int rc = kv_delete(db, key, strlen(key));
	if (rc && rc != KV_ENOTFOUND)
		die("delete", rc);
	ack("delete", k);
}

static void batch(int k)
{
	char key[16], val[300];
	kv_batch *b;
	int rc = kv_batch_new(&b);

	if (rc)
		die("batch", rc);
	memset(val, 'b', sizeof val);
	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof key, "k%d", (k + i) % 10);
		rc = i == 2 ? kv_batch_delete(b, key, strlen(key))
			    : kv_batch_put(b, key, strlen(key), val, sizeof val);
		if (rc)
			die("batch", rc);
	}
	if ((rc = kv_write(db, b)) != 0)
		die("batch", rc);
	kv_batch_free(b);
	ack("batch", k);
}

static void writes(int n)
{
	for (int i = 0; i < n; i++, ops++) {
		int k = (ops * 7) % 10;
		if (ops % 7 == 3)
			del(k);
		else if (ops % 5 == 0)
			batch(k);
		else
			put(k);
	}
}

static void compact(int must_succeed)
{
	int rc = kv_compact(db, NULL);

	if (rc && must_succeed)
		die("compact", rc);
}

/* ---- faults, through the library's I/O table ---- */

static int unlink_seg_fails(const char *path)
{
	size_t n = strlen(path);

	if (n > 4 && strcmp(path + n - 4, ".seg") == 0) {
		errno = EIO;
		return -1;
	}
	return kv__io_default.unlink(path);
}

static int obs_renamed, dir_fd = -1;

static int open_noting_dirs(const char *path, int flags, mode_t mode)
{
	int fd = kv__io_default.open(path, flags, mode);

	if (fd >= 0 && (flags & O_DIRECTORY))
		dir_fd = fd;
	return fd;
}

static int rename_noting_obs(const char *from, const char *to)
{
	size_t n = strlen(to);

	obs_renamed = n > 4 && strcmp(to + n - 4, ".obs") == 0;
	return kv__io_default.rename(from, to);
}

/* The directory fsync right after an obsolete list's rename fails once. */
static int fsync_failing_after_obs(int fd)
{
	if (fd == dir_fd && obs_renamed) {
		obs_renamed = 0;
		kv__io = kv__io_default;
		errno = EIO;
		return -1;
	}
	return kv__io_default.fsync(fd);
}

/* ---- phases ---- */

static void open_store(const char *dir)
{
	kv_options o;

	kv_options_init(&o);
	o.flags = KV_CREATE | KV_NO_AUTO_COMPACT;
	o.sync_mode = KV_SYNC_ALWAYS;
	o.max_file_size = 2048;
	o.compact_min_size = 4096;
	int rc = kv_open(dir, &o, &db);
	if (rc)
		die("open", rc);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: workload DIR PHASE\n");
		return 2;
	}
	int phase = atoi(argv[2]);

	ops = phase * 1000;
	open_store(argv[1]);
	if (phase == 1) {
		writes(40);
		compact(1);
		writes(30);
		compact(1);
	} else if (phase == 2) {
		writes(20);
		kv__io.unlink = unlink_seg_fails;
		compact(1);
		kv__io = kv__io_default;
	} else if (phase == 3) {
		writes(20);
		kv__io.open = open_noting_dirs;
		kv__io.rename = rename_noting_obs;
		kv__io.fsync = fsync_failing_after_obs;
		compact(0);
		kv__io = kv__io_default;
		writes(10);
		compact(1);
	} else {
		fprintf(stderr, "workload: no phase %d\n", phase);
		return 2;
	}
	int rc = kv_close(db);
	if (rc)
		die("close", rc);
	return 0;
}
