/*
 * test_faults.c - a failure at every I/O call (RELIABILITY-PLAN T6).
 *
 * One fixed workload - open, puts, deletes, batches, rollovers, a
 * compaction, close - is run again and again with the Nth call of one kind
 * failing, once or from then on, for every N the workload reaches and
 * every kind the I/O layer has. Each time: every call returns (no crash,
 * no abort); after the faults are cleared the store reopens; every write
 * that was acknowledged is there, and every value is one that was written
 * for its key (a failed write may or may not have landed).
 *
 * Also here: EINTR at every call where the I/O layer must retry it (the
 * workload must then succeed outright); every I/O call of an open that
 * has a torn tail, an obsolete list, hint files and leftovers to clean
 * failing in turn; directory fsyncs counted and failed on their own; and
 * a real ENOSPC, on a 1 MiB tmpfs mounted in a private mount namespace.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define NKEYS 8
#define NOPS 60

/* What each key may hold: its last acknowledged value, or the value of a
 * write that failed after it (in doubt). Values are "op:<n>"; 0 = absent. */
typedef struct allowed {
	int acked;             /* op number whose value is acknowledged */
	int doubt[NOPS];       /* ops that failed after it */
	int ndoubt;
} allowed;

static allowed model[NKEYS];
static void note(int key, int op, int ok)
{
	allowed *a = &model[key];

	if (ok) {
		a->acked = op;
		a->ndoubt = 0;
	} else {
		a->doubt[a->ndoubt++] = op;
	}
}

static int put_op(kv_t *db, int op)
{
	char k[8], v[32];
	int key = op % NKEYS;
	int len = snprintf(v, sizeof v, "op:%d:%.*s", op, op % 20,
			   "vvvvvvvvvvvvvvvvvvvv");

	snprintf(k, sizeof k, "k%d", key);
	int rc = kv_put(db, k, strlen(k), v, (size_t)len);
	note(key, op, rc == KV_OK);
	return rc;
}

static int del_op(kv_t *db, int op)
{
	char k[8];
	int key = (op * 3) % NKEYS;

	snprintf(k, sizeof k, "k%d", key);
	int rc = kv_delete(db, k, strlen(k));
	if (rc == KV_ENOTFOUND)
		rc = KV_OK;
	/* A delete stores "absent", which -op stands for. */
	note(key, -op, rc == KV_OK);
	return rc;
}

static int batch_op(kv_t *db, int op)
{
	kv_batch *b;
	char k[3][8], v[3][32];
	int keys[3], rc;

	if (kv_batch_new(&b))
		return KV_ENOMEM;
	for (int i = 0; i < 3; i++) {
		keys[i] = (op + i) % NKEYS;
		snprintf(k[i], sizeof k[i], "k%d", keys[i]);
		int len = snprintf(v[i], sizeof v[i], "op:%d:batch", op);
		kv_batch_put(b, k[i], strlen(k[i]), v[i], (size_t)len);
	}
	rc = kv_write(db, b);
	kv_batch_free(b);
	for (int i = 0; i < 3; i++)
		note(keys[i], op, rc == KV_OK);
	return rc;
}

/* The workload; returns the number of failed calls. */
static int workload(const char *dir)
{
	kv_options o;
	kv_t *db;
	int failed = 0;

	tu_options(&o);
	o.sync_mode = KV_SYNC_ALWAYS;
	o.max_file_size = 700;
	if (kv_open(dir, &o, &db) != KV_OK)
		return 1;
	for (int op = 1; op < NOPS; op++) {
		int rc = op % 7 == 0 ? del_op(db, op) :
			 op % 11 == 0 ? batch_op(db, op) : put_op(db, op);
		failed += rc != KV_OK;
		if (op == NOPS / 2)
			failed += kv_compact(db, NULL) != KV_OK;
	}
	failed += kv_close(db) != KV_OK;
	return failed;
}

/* Is `got` (NULL = absent) what key k may hold? */
static int permitted(const allowed *a, const char *got)
{
	int op;

	if (!got)
		op = 0;
	else if (sscanf(got, "op:%d:", &op) != 1)
		return 0;
	if (got ? a->acked == op : a->acked <= 0)
		return 1;
	for (int i = 0; i < a->ndoubt; i++)
		if (got ? a->doubt[i] == op : a->doubt[i] <= 0)
			return 1;
	return 0;
}

/* Every key of an open handle holds what the model allows. */
static void check_db(kv_t *db, const char *what)
{
	char k[8], buf[64];
	size_t n;
	int rc;

	for (int key = 0; key < NKEYS; key++) {
		snprintf(k, sizeof k, "k%d", key);
		rc = kv_get_into(db, k, strlen(k), buf, sizeof buf - 1, &n);
		if (rc != KV_OK && rc != KV_ENOTFOUND)
			fail_msg("%s: get %s: %s", what, k, kv_errmsg());
		if (rc == KV_OK)
			buf[n] = 0;
		if (!permitted(&model[key], rc == KV_OK ? buf : NULL))
			fail_msg("%s: %s holds \"%s\", acknowledged op %d",
				 what, k, rc == KV_OK ? buf : "(absent)",
				 model[key].acked);
	}
}

/* Reopens with no faults: the model holds, and the store takes writes. */
static void check(const char *dir, const char *what)
{
	kv_options o;
	kv_t *db = NULL;

	tu_options(&o);
	int rc = kv_open(dir, &o, &db);
	if (rc == KV_ENOENT)
		return; /* the very first create failed: no store at all */
	if (rc)
		fail_msg("%s: reopen: %s: %s", what, kv_strerror(rc),
			 kv_errmsg());
	check_db(db, what);
	TU_OK(tu_put(db, "later", "write"));
	tu_expect(db, "later", "write");
	TU_OK(kv_close(db));
}

/* Runs the workload with call n of kind failing; 0 once it no longer
 * reaches call n. */
/* How a case fails its call: a short write first, or with every read
 * going through pread because mmap fails. */
enum { SHORT = 1, NO_MMAP = 2 };

/* Runs the workload with call n of kind failing; 0 once it no longer
 * reaches call n. */
static int one_case(enum tu_fault_kind kind, unsigned n, int err,
		    int persistent, int how, int *cases)
{
	char *dir = tu_mkdir(), what[96];

	memset(model, 0, sizeof model);
	if (how & NO_MMAP)
		tu_fault(TU_MMAP, 0, ENOMEM, 1);
	if (how & SHORT)
		tu_fault_short_write(n, err);
	else
		tu_fault(kind, n, err, persistent);
	workload(dir);
	int reached = tu_calls(kind) > n;
	tu_fault_clear();
	snprintf(what, sizeof what, "kind %d call %u err %d%s%s%s", (int)kind,
		 n, err, persistent ? " persistent" : "",
		 how & SHORT ? " short" : "", how & NO_MMAP ? " no mmap" : "");
	if (reached) {
		check(dir, what);
		(*cases)++;
	}
	tu_rmdir(dir);
	return reached;
}

static void test_a_fault_at_every_io_call(void **state)
{
	static const struct { enum tu_fault_kind kind; int err; int how; }
	plan[] = {
		{ TU_OPEN, EIO, 0 }, { TU_OPEN, EMFILE, 0 },
		{ TU_PWRITE, EIO, 0 }, { TU_PWRITE, ENOSPC, 0 },
		{ TU_PWRITE, EIO, SHORT },
		{ TU_FSYNC, EIO, 0 }, { TU_FDATASYNC, EIO, 0 },
		{ TU_RENAME, EIO, 0 }, { TU_UNLINK, EIO, 0 },
		{ TU_FTRUNCATE, EIO, 0 }, { TU_MMAP, ENOMEM, 0 },
		{ TU_PREAD, EIO, NO_MMAP },
	};
	int cases = 0;

	(void)state;
	for (size_t p = 0; p < sizeof plan / sizeof plan[0]; p++)
		for (int persistent = 0; persistent < 2; persistent++) {
			if ((plan[p].how & SHORT) && persistent)
				continue;
			for (unsigned n = 0; n < 2000; n++)
				if (!one_case(plan[p].kind, n, plan[p].err,
					      persistent, plan[p].how, &cases))
					break;
		}
	print_message("I/O faults: %d cases, each reopened and checked\n",
		      cases);
	assert_true(cases > 300);
}

/* ---- EINTR: retried, never an error ---- */

/* Reopens the workload's store and reads every key back (more reads,
 * through hints and the tail); returns the number of failed calls. */
static int reread(const char *dir)
{
	kv_options o;
	kv_t *db;
	char k[8], buf[64];
	size_t n;
	int failed = 0;

	tu_options(&o);
	o.sync_mode = KV_SYNC_ALWAYS;
	if (kv_open(dir, &o, &db) != KV_OK)
		return 1;
	for (int key = 0; key < NKEYS; key++) {
		snprintf(k, sizeof k, "k%d", key);
		int rc = kv_get_into(db, k, strlen(k), buf, sizeof buf, &n);
		failed += rc != KV_OK && rc != KV_ENOTFOUND;
	}
	failed += kv_verify(db, NULL, NULL, NULL) != KV_OK;
	failed += kv_close(db) != KV_OK;
	return failed;
}

static void test_eintr_is_retried_at_every_call(void **state)
{
	/* pread only happens where nothing is mapped: with mmap failing
	 * every read goes through it. */
	static const struct { enum tu_fault_kind kind; int how; } plan[] = {
		{ TU_PREAD, 0 }, { TU_PREAD, NO_MMAP }, { TU_PWRITE, 0 },
		{ TU_PWRITE, SHORT }, { TU_FSYNC, 0 }, { TU_FDATASYNC, 0 },
	};
	int cases = 0;

	(void)state;
	for (size_t p = 0; p < sizeof plan / sizeof plan[0]; p++) {
		for (unsigned n = 0; n < 2000; n++) {
			char *dir = tu_mkdir(), what[64];

			memset(model, 0, sizeof model);
			if (plan[p].how & NO_MMAP)
				tu_fault(TU_MMAP, 0, ENOMEM, 1);
			if (plan[p].how & SHORT)
				tu_fault_short_write(n, EINTR);
			else
				tu_fault(plan[p].kind, n, EINTR, 0);
			int failed = workload(dir);
			failed += reread(dir);
			int reached = tu_calls(plan[p].kind) > n;
			tu_fault_clear();
			snprintf(what, sizeof what,
				 "EINTR: kind %d call %u%s%s",
				 (int)plan[p].kind, n,
				 plan[p].how & NO_MMAP ? " no mmap" : "",
				 plan[p].how & SHORT ? " after a short write" :
				 "");
			if (reached && failed)
				fail_msg("%s: %d calls failed; last error: %s",
					 what, failed, kv_errmsg());
			if (reached) {
				check(dir, what);
				cases++;
			}
			tu_rmdir(dir);
			if (!reached)
				break;
		}
	}
	print_message("EINTR: %d cases, every call retried, each reopened "
		      "and checked\n", cases);
	assert_true(cases > 200);
}

/* ---- faults along the recovery path ---- */

struct snap {
	const char *from;
	const char *to;
	int taken;
};

static void take_copy(void *ctx)
{
	struct snap *sn = ctx;

	tu_copy_dir(sn->from, sn->to);
	sn->taken = 1;
}

static void write_file(const char *path, const void *data, size_t len,
		       int append)
{
	int fd = open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC),
		      0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* The active segment's number. */
static uint64_t active_seq(kv_t *db)
{
	kv_segment_stats seg[64];
	size_t n;

	TU_OK(kv_stats_segments(db, seg, 64, &n));
	assert_true(n <= 64);
	for (size_t i = 0; i < n; i++)
		if (seg[i].active)
			return seg[i].seq;
	fail_msg("no active segment");
	return 0;
}

/* A store whose open has every recovery step to do: the files of a
 * compaction that crashed after its obsolete list was durable (inputs,
 * outputs with hints, the list), a torn record at the end of the log, a
 * segment left as .tmp by a crashed create, and a hint whose segment is
 * gone. model[] gets what it holds. */
static void build_recovery_store(const char *prep)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	struct snap sn = { .from = dir, .to = prep };
	static const uint8_t torn[23] = { 0x5a, 0x17, 0xc3, 0x01, 0x00, 0x02 };

	memset(model, 0, sizeof model);
	tu_options(&o);
	o.sync_mode = KV_SYNC_ALWAYS;
	o.max_file_size = 700;
	db = tu_open(dir, &o);
	for (int op = 1; op < 40; op++) {
		int rc = op % 7 == 0 ? del_op(db, op) :
			 op % 11 == 0 ? batch_op(db, op) : put_op(db, op);
		TU_OK(rc);
	}
	uint64_t tail = active_seq(db);
	/* The first unlink of a compaction is of an input, after the list
	 * is durable: the copy is what a crash there leaves. */
	tu_fault_hook(take_copy, &sn);
	tu_fault(TU_UNLINK, 0, ENOENT, 0);
	TU_OK(kv_compact(db, NULL));
	tu_fault_clear();
	TU_OK(kv_close(db));
	tu_rmdir(dir);
	assert_true(sn.taken);

	write_file(tu_seg_path(prep, tail), torn, sizeof torn, 1);
	char name[64];
	snprintf(name, sizeof name, "%016x.seg.tmp", 0x70);
	write_file(tu_path(prep, name), torn, 16, 0);
	snprintf(name, sizeof name, "%016x.hint", 0x71);
	write_file(tu_path(prep, name), torn, sizeof torn, 0);
}

/* Whether prep has files of each kind recovery handles. */
static void expect_recovery_work(const char *prep)
{
	DIR *d = opendir(prep);
	struct dirent *de;
	int obs = 0, hint = 0, tmp = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		obs += strstr(de->d_name, ".obs") != NULL;
		hint += strstr(de->d_name, ".hint") != NULL;
		tmp += strstr(de->d_name, ".tmp") != NULL;
	}
	closedir(d);
	assert_true(obs == 1 && hint >= 2 && tmp == 1);
}

/* Opens a copy of prep with call n of kind failing; 0 once the open no
 * longer reaches call n. An open that succeeds must show the whole model
 * (once the fault is cleared) and take a write; one that fails must say
 * KV_EIO or KV_ENOMEM, never that the store is damaged. */
static int recovery_case(const char *prep, enum tu_fault_kind kind,
			 unsigned n, int err, int persistent, int no_mmap)
{
	char *dir = tu_mkdir(), what[96];
	allowed saved[NKEYS];
	kv_options o;
	kv_t *db = NULL;

	memcpy(saved, model, sizeof saved);
	tu_copy_dir(prep, dir);
	tu_options(&o);
	o.sync_mode = KV_SYNC_ALWAYS;
	o.max_file_size = 700;
	if (no_mmap)
		tu_fault(TU_MMAP, 0, ENOMEM, 1);
	tu_fault(kind, n, err, persistent);
	int rc = kv_open(dir, &o, &db);
	int reached = tu_calls(kind) > n;
	tu_fault_clear();
	snprintf(what, sizeof what, "recovery: kind %d call %u err %d%s%s",
		 (int)kind, n, err, persistent ? " persistent" : "",
		 no_mmap ? " no mmap" : "");
	if (rc != KV_OK && rc != KV_EIO && rc != KV_ENOMEM)
		fail_msg("%s: open: %s: %s", what, kv_strerror(rc),
			 kv_errmsg());
	if (rc == KV_OK) {
		check_db(db, what);
		int wrc = put_op(db, 90);
		TU_OK(wrc);
		TU_OK(kv_close(db));
	}
	if (reached)
		check(dir, what);
	tu_rmdir(dir);
	memcpy(model, saved, sizeof saved);
	return reached;
}

static void test_a_fault_at_every_io_call_of_recovery(void **state)
{
	static const struct { enum tu_fault_kind kind; int err, no_mmap; }
	plan[] = {
		{ TU_OPEN, EIO, 0 }, { TU_OPEN, EMFILE, 0 },
		{ TU_PREAD, EIO, 0 }, { TU_PREAD, EIO, 1 },
		{ TU_MMAP, ENOMEM, 0 }, { TU_UNLINK, EIO, 0 },
		{ TU_FSYNC, EIO, 0 }, { TU_FSYNC_DIR, EIO, 0 },
		{ TU_FTRUNCATE, EIO, 0 },
	};
	char *prep = tu_mkdir();
	int cases = 0, kinds_reached = 0;

	(void)state;
	build_recovery_store(prep);
	expect_recovery_work(prep);
	for (size_t p = 0; p < sizeof plan / sizeof plan[0]; p++) {
		int any = 0;
		for (int persistent = 0; persistent < 2; persistent++)
			for (unsigned n = 0; n < 2000; n++) {
				if (!recovery_case(prep, plan[p].kind, n,
						   plan[p].err, persistent,
						   plan[p].no_mmap))
					break;
				cases++;
				any = 1;
			}
		kinds_reached += any;
	}
	tu_rmdir(prep);
	print_message("recovery I/O faults: %d cases over %d kinds of call, "
		      "each reopened and checked\n", cases, kinds_reached);
	/* Every kind but pwrite, fdatasync and rename: an open that finds
	 * a log tail appends to it and creates no segment. */
	assert_int_equal(kinds_reached, sizeof plan / sizeof plan[0]);
	assert_true(cases > 80);
}

/* ---- directory fsyncs ---- */

static void test_directory_fsyncs_are_counted_and_failed(void **state)
{
	char *dir = tu_mkdir();
	int cases = 0;

	(void)state;
	/* Count only: a fault armed too far away to fire. */
	memset(model, 0, sizeof model);
	tu_fault(TU_FSYNC_DIR, 1000000, EIO, 0);
	assert_int_equal(workload(dir), 0);
	unsigned dirs = tu_calls(TU_FSYNC_DIR), all = tu_calls(TU_FSYNC);
	tu_fault_clear();
	tu_rmdir(dir);
	/* One per segment created (NOPS puts of ~50 bytes in 700-byte
	 * segments: at least 4), and a compaction's three. */
	if (dirs < 7 || dirs >= all)
		fail_msg("directory fsyncs: %u of %u fsyncs", dirs, all);
	for (int persistent = 0; persistent < 2; persistent++)
		for (unsigned n = 0; n < 2000; n++)
			if (!one_case(TU_FSYNC_DIR, n, EIO, persistent, 0,
				      &cases))
				break;
	print_message("directory fsyncs: %u of %u fsyncs; %d cases failing "
		      "them, each reopened and checked\n", dirs, all, cases);
	assert_true(cases >= 2 * (int)dirs);
}

/* ---- a rollover that fails after its rename ---- */

/* Recovery cuts a torn write only in the log's tail, the newest segment
 * not written by compaction. If a rollover fails after the new segment is
 * in place (its directory fsync fails), the writer goes on appending to the
 * old segment: a newer, empty segment must not be left behind to become
 * the "tail", or a crash in the middle of one of those appends leaves a
 * store that a strict open refuses as damaged. */
static void test_failed_rollover_leaves_no_newer_segment(void **state)
{
	static const uint8_t torn[20] = { 0x3c, 0x91, 0x07 };
	char *dir = tu_mkdir(), big[401], k[8];
	kv_options o;
	kv_t *db;

	(void)state;
	memset(big, 'b', 400);
	big[400] = 0;
	tu_options(&o);
	o.sync_mode = KV_SYNC_ALWAYS;
	o.max_file_size = 700;
	db = tu_open(dir, &o);
	TU_OK(tu_put(db, "k0", big));
	/* This one does not fit: the rollover's directory fsync fails. */
	tu_fault(TU_FSYNC_DIR, 0, EIO, 0);
	assert_int_equal(tu_put(db, "k1", big), KV_EIO);
	tu_fault_clear();
	/* Small writes still fit the old segment. */
	for (int i = 2; i < 6; i++) {
		snprintf(k, sizeof k, "k%d", i);
		TU_OK(tu_put(db, k, "small"));
	}
	TU_OK(kv_close(db));
	/* A crash in the middle of the next append leaves part of it. */
	write_file(tu_seg_path(dir, 1), torn, sizeof torn, 1);
	db = NULL;
	int rc = kv_open(dir, &o, &db);
	if (rc)
		fail_msg("open after a crash mid-append: %s: %s",
			 kv_strerror(rc), kv_errmsg());
	tu_expect(db, "k0", big);
	tu_expect_missing(db, "k1");
	for (int i = 2; i < 6; i++) {
		snprintf(k, sizeof k, "k%d", i);
		tu_expect(db, k, "small");
	}
	TU_OK(kv_close(db));
	tu_rmdir(dir);
}

/* ---- a read error is not damage ---- */

/* A record that cannot be read (EIO, or no memory for a buffer when the
 * segment is not mapped) says nothing about its bytes. Taken for damage,
 * it would be cut from the log's tail as a torn write, or skipped by a
 * salvage open or compaction: acknowledged records lost. These stores
 * have real damage too, so that the reads past it (looking for the next
 * sound record) are reached. */

#define DKEYS 45
#define DREC 75u               /* header 32 + key 3 + value 40 */

static void dkey(int i, char *k, char *v)
{
	snprintf(k, 4, "k%02d", i);
	/* 40 bytes */
	snprintf(v, 41, "value of %02d%s", i, ".............................");
}

/* 45 records, 13 to a segment: segments 1-3 sealed, 4 the tail (6). */
static void build_damaged(const char *dir, int sealed, int tail)
{
	kv_options o;
	char k[4], v[41];

	tu_options(&o);
	o.max_file_size = 32 + 13 * DREC;
	kv_t *db = tu_open(dir, &o);
	for (int i = 0; i < DKEYS; i++) {
		dkey(i, k, v);
		TU_OK(kv_put(db, k, 3, v, 40));
	}
	TU_OK(kv_close(db));
	assert_int_equal(tu_file_size(tu_seg_path(dir, 4)), 32 + 6 * DREC);
	/* A flipped byte in the value of the third record. */
	uint64_t at = 32 + 2 * DREC + 50;
	for (int seq = 1; seq <= 4; seq += 3) {
		const char *seg = tu_seg_path(dir, (uint64_t)seq);
		if (seq == 1 ? sealed : tail)
			tu_poke(seg, at, tu_peek(seg, at) ^ 1);
	}
}

/* The keys present, each with its own value. */
static uint64_t present(kv_t *db)
{
	char k[4], v[41], got[41];
	uint64_t mask = 0;
	size_t n;

	for (int i = 0; i < DKEYS; i++) {
		dkey(i, k, v);
		int rc = kv_get_into(db, k, 3, got, sizeof got, &n);
		if (rc == KV_OK && n == 40 && !memcmp(got, v, 40))
			mask |= UINT64_C(1) << i;
		else if (rc != KV_ENOTFOUND)
			fail_msg("get %s: %s: %s", k, kv_strerror(rc),
				 kv_errmsg());
	}
	return mask;
}

static int dopen(const char *dir, uint32_t flags, kv_t **db)
{
	kv_options o;

	tu_options(&o);
	o.flags = flags;
	o.max_file_size = 32 + 13 * DREC;
	o.compact_min_size = 1 << 20; /* every sealed segment: merged */
	return kv_open(dir, &o, db);
}

/* What a clean salvage open finds. */
static uint64_t salvaged(const char *dir)
{
	kv_t *db;

	TU_OK(dopen(dir, KV_SALVAGE, &db));
	uint64_t m = present(db);
	TU_OK(kv_close(db));
	return m;
}

enum dcase { STRICT_OPEN, SALVAGE_OPEN, SALVAGE_COMPACT, COMPACT, VERIFY };

/* One case: with nothing mapped, read n fails during the step. */
static int damage_case(const char *prep, enum dcase what, unsigned n,
		       uint64_t want, uint64_t tail_size)
{
	char *dir = tu_mkdir();
	kv_t *db = NULL;
	unsigned base = 0;
	int rc, reached;

	tu_copy_dir(prep, dir);
	tu_fault(TU_MMAP, 0, ENOMEM, 1);
	if (what >= SALVAGE_COMPACT) {
		TU_OK(dopen(dir, what == SALVAGE_COMPACT ? KV_SALVAGE : 0,
			    &db));
		base = tu_calls(TU_PREAD); /* the open's reads */
		tu_fault(TU_PREAD, n, EIO, 0);
		rc = what == VERIFY ? kv_verify(db, NULL, NULL, NULL)
				    : kv_compact(db, NULL);
	} else {
		tu_fault(TU_PREAD, n, EIO, 0);
		rc = dopen(dir, what == STRICT_OPEN ? 0 : KV_SALVAGE, &db);
	}
	reached = tu_calls(TU_PREAD) - base > n;
	tu_fault_clear();
	/* What it says without the fault; or KV_EIO. (A hint that cannot
	 * be read is no error: its segment is scanned instead.) */
	int want_rc = what == STRICT_OPEN ? KV_ECORRUPT : KV_OK;
	if (rc != want_rc && !(reached && rc == KV_EIO))
		fail_msg("case %d read %u failing: %s (%s), want %s%s",
			 (int)what, n, kv_strerror(rc), kv_errmsg(),
			 kv_strerror(want_rc), reached ? " or KV_EIO" : "");
	if (db && what != VERIFY && (rc == KV_OK || what >= SALVAGE_COMPACT))
		assert_true(present(db) == want);
	if (db)
		kv_close(db);
	/* Nothing was cut or dropped on disk either. */
	assert_int_equal(tu_file_size(tu_seg_path(dir, 4)), tail_size);
	assert_true(salvaged(dir) == want);
	tu_rmdir(dir);
	return reached;
}

static void test_a_read_error_is_not_damage(void **state)
{
	static const struct { int sealed, tail; enum dcase what; } plan[] = {
		{ 0, 1, STRICT_OPEN }, { 0, 1, SALVAGE_OPEN },
		{ 1, 0, SALVAGE_OPEN }, { 1, 0, SALVAGE_COMPACT },
		{ 0, 0, COMPACT }, { 0, 0, VERIFY },
	};
	int cases = 0;

	(void)state;
	for (size_t p = 0; p < sizeof plan / sizeof plan[0]; p++) {
		char *prep = tu_mkdir();
		build_damaged(prep, plan[p].sealed, plan[p].tail);
		uint64_t want = salvaged(prep);
		uint64_t all = (UINT64_C(1) << DKEYS) - 1;
		/* Exactly the damaged record and the one after it (salvage
		 * skips the run after damage: it might be the rest of a
		 * damaged batch) are lost. */
		assert_int_equal(__builtin_popcountll(all & ~want),
				 2 * (plan[p].sealed + plan[p].tail));
		uint64_t tail = tu_file_size(tu_seg_path(prep, 4));
		for (unsigned n = 0; n < 5000; n++, cases++)
			if (!damage_case(prep, plan[p].what, n, want, tail))
				break;
		tu_rmdir(prep);
	}
	print_message("read errors near damage: %d cases, none taken for "
		      "damage\n", cases);
	assert_true(cases > 600);
}

/* ---- a real ENOSPC ---- */

/* The child reports through its exit status; cmocka's asserts belong to
 * the parent. */
#define SKIP_STATUS 77
static void child_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	fflush(NULL);
	_exit(1);
}
#define EXPECT(c, ...) do { if (!(c)) child_fail(__VA_ARGS__); } while (0)

static int write_proc(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	ssize_t len = (ssize_t)strlen(text);
	int ok = fd >= 0 && write(fd, text, (size_t)len) == len;

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* A private mount namespace (a user namespace too when not root) with a
 * 1 MiB tmpfs on mp; exits SKIP_STATUS when the system allows neither. */
static void mount_small_tmpfs(const char *mp)
{
	char map[64];
	uid_t uid = getuid();
	gid_t gid = getgid();

	if (unshare(CLONE_NEWNS) != 0) {
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
			fprintf(stderr, "ENOSPC test skipped: unshare: %s\n",
				strerror(errno));
			_exit(SKIP_STATUS);
		}
		snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
		write_proc("/proc/self/setgroups", "deny");
		write_proc("/proc/self/uid_map", map);
		snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
		write_proc("/proc/self/gid_map", map);
	}
	if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", mp, "tmpfs", MS_NOSUID | MS_NODEV,
		  "size=1m,mode=0700") != 0) {
		fprintf(stderr, "ENOSPC test skipped: mount: %s\n",
			strerror(errno));
		_exit(SKIP_STATUS);
	}
}

#define ENOSPC_KEYS 2000
/* Per key: 0 absent, 1 acknowledged value, -1 acknowledged delete; the
 * last failed op in doubt (2 = a put, -2 = a delete). */
static signed char have[ENOSPC_KEYS], maybe[ENOSPC_KEYS];

/* A 1000-byte value that cannot be compressed, derived from the key. */
static void value_of(int key, char *v, size_t len)
{
	uint64_t st = (uint64_t)key * 7919 + 1;

	for (size_t i = 0; i < len; i++)
		v[i] = (char)('!' + tu_rand(&st) % 90);
}

static int put_key(kv_t *db, int key, size_t len)
{
	char k[16], v[1000];

	snprintf(k, sizeof k, "key%05d", key);
	value_of(key, v, len);
	int rc = kv_put(db, k, strlen(k), v, len);
	if (rc == KV_OK)
		have[key] = 1, maybe[key] = 0;
	else
		maybe[key] = 2;
	return rc;
}

static int del_key(kv_t *db, int key)
{
	char k[16];

	snprintf(k, sizeof k, "key%05d", key);
	int rc = kv_delete(db, k, strlen(k));
	if (rc == KV_OK)
		have[key] = -1, maybe[key] = 0;
	else
		maybe[key] = -2;
	return rc;
}

/* A value of either length the test writes. */
static int value_ok(int key, const char *v, size_t n)
{
	char want[1000];

	value_of(key, want, sizeof want);
	return (n == sizeof want || n == 10) && memcmp(v, want, n) == 0;
}

static void enospc_check(kv_t *db, const char *when)
{
	char k[16], v[1000];
	size_t n;

	for (int key = 0; key < ENOSPC_KEYS; key++) {
		snprintf(k, sizeof k, "key%05d", key);
		int rc = kv_get_into(db, k, strlen(k), v, sizeof v, &n);
		int present = rc == KV_OK && value_ok(key, v, n);
		EXPECT(rc == KV_OK || rc == KV_ENOTFOUND, "%s: get %s: %s",
		       when, k, kv_errmsg());
		EXPECT(rc != KV_OK || present, "%s: %s holds a value never "
		       "written", when, k);
		if (have[key] == 1 && !present && maybe[key] != -2)
			child_fail("%s: acknowledged %s is missing", when, k);
		if (have[key] != 1 && present && maybe[key] != 2)
			child_fail("%s: %s is back after its delete", when, k);
	}
}

static void expect_no_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	EXPECT(d, "opendir %s", dir);
	while ((de = readdir(d)) != NULL)
		EXPECT(!strstr(de->d_name, ".tmp"), "%s left behind",
		       de->d_name);
	closedir(d);
}

static kv_t *enospc_open(const char *store, uint32_t sync_mode)
{
	kv_options o;
	kv_t *db = NULL;

	tu_options(&o);
	o.sync_mode = sync_mode;
	o.max_file_size = 64 << 10;
	o.compact_max_bytes = 64 << 10; /* one segment per compaction */
	int rc = kv_open(store, &o, &db);
	EXPECT(rc == KV_OK, "open %s: %s", store, kv_errmsg());
	return db;
}

/* Fills the tmpfs (a ballast file holds 128 KiB of it), then checks each
 * step on the full disk, then frees the ballast and checks that deletes,
 * compactions and puts work again. */
static void enospc_child(const char *mp, uint32_t sync_mode)
{
	char store[PATH_MAX], ballast[PATH_MAX];
	static char zeros[128 << 10];
	int key = 0, rc;

	mount_small_tmpfs(mp);
	snprintf(store, sizeof store, "%s/store", mp);
	snprintf(ballast, sizeof ballast, "%s/ballast", mp);
	write_file(ballast, zeros, sizeof zeros, 0);
	kv_t *db = enospc_open(store, sync_mode);
	/* Every fourth put overwrites an older key: dead bytes to reclaim. */
	while (key < ENOSPC_KEYS && (rc = put_key(db, key, 1000)) == KV_OK)
		if (++key % 4 == 0 &&
		    (rc = put_key(db, key / 2, 1000)) != KV_OK)
			break;
	EXPECT(key > 400 && key < ENOSPC_KEYS, "%d keys before ENOSPC", key);
	EXPECT(rc == KV_EIO && strstr(kv_errmsg(), strerror(ENOSPC)),
	       "the put that found the disk full: %s: %s", kv_strerror(rc),
	       kv_errmsg());
	/* Smaller writes may still fit in the last page; none may crash. */
	for (int i = 0; i < 20 && key < ENOSPC_KEYS; i++, key++) {
		rc = put_key(db, key, 10);
		EXPECT(rc == KV_OK || rc == KV_EIO, "small put: %s",
		       kv_errmsg());
	}
	enospc_check(db, "full, same handle");
	for (int k = 0; k < key; k += 2) {
		rc = del_key(db, k);
		EXPECT(rc == KV_OK || rc == KV_EIO || rc == KV_ENOTFOUND,
		       "delete on a full disk: %s", kv_errmsg());
	}
	int full_puts = key, dels = 0;
	for (int k = 0; k < key; k += 2)
		dels += have[k] == -1;
	rc = kv_compact(db, NULL);
	EXPECT(rc == KV_OK || rc == KV_EIO, "compaction on a full disk: %s",
	       kv_errmsg());
	printf("  sync mode %u: %d keys, then ENOSPC; %d deletes and a "
	       "compaction (%s) on the full disk\n", sync_mode, full_puts,
	       dels, rc ? kv_errmsg() : "done");
	rc = kv_close(db);
	EXPECT(rc == KV_OK || rc == KV_EIO, "close: %s", kv_errmsg());
	expect_no_tmp(store);
	db = enospc_open(store, sync_mode);
	enospc_check(db, "full, reopened");
	EXPECT(kv_verify(db, NULL, NULL, NULL) == KV_OK, "verify: %s",
	       kv_errmsg());

	/* Room again: everything works. */
	EXPECT(unlink(ballast) == 0, "unlink ballast");
	for (int k = 0; k < key; k += 2)
		if (have[k] == 1)
			EXPECT(del_key(db, k) == KV_OK, "delete with room: %s",
			       kv_errmsg());
	kv_compact_stats cs;
	int runs = 0;
	do {
		rc = kv_compact(db, &cs);
		EXPECT(rc == KV_OK, "compaction with room (run %d): %s", runs,
		       kv_errmsg());
	} while (cs.segments_in > 0 && ++runs < 64);
	EXPECT(runs > 2, "only %d compactions had work", runs);
	printf("  then with 128 KiB freed: %d compactions, 100 more puts\n",
	       runs);
	for (int i = 0; i < 100; i++, key++) {
		EXPECT(key < ENOSPC_KEYS, "out of keys");
		EXPECT(put_key(db, key, 1000) == KV_OK, "put after "
		       "compaction: %s", kv_errmsg());
	}
	enospc_check(db, "after compaction");
	EXPECT(kv_close(db) == KV_OK, "close: %s", kv_errmsg());
	expect_no_tmp(store);
	db = enospc_open(store, sync_mode);
	enospc_check(db, "reopened after compaction");
	EXPECT(kv_close(db) == KV_OK, "close: %s", kv_errmsg());
	fflush(stdout);
	_exit(0);
}

static void test_real_enospc_on_a_small_tmpfs(void **state)
{
	static const uint32_t modes[] = { KV_SYNC_ALWAYS, KV_SYNC_WRITE };

	(void)state;
	for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
		char *mp = tu_mkdir();
		int status;

		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			enospc_child(mp, modes[m]);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		tu_rmdir(mp);
		assert_true(WIFEXITED(status));
		if (WEXITSTATUS(status) == SKIP_STATUS)
			skip();
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	print_message("ENOSPC on a 1 MiB tmpfs: sync modes ALWAYS and WRITE "
		      "filled, checked full, freed, compacted, checked\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_fault_at_every_io_call),
		cmocka_unit_test(test_eintr_is_retried_at_every_call),
		cmocka_unit_test(test_a_fault_at_every_io_call_of_recovery),
		cmocka_unit_test(test_directory_fsyncs_are_counted_and_failed),
		cmocka_unit_test(test_a_read_error_is_not_damage),
		cmocka_unit_test(test_failed_rollover_leaves_no_newer_segment),
		cmocka_unit_test(test_real_enospc_on_a_small_tmpfs),
	};
	tu_tmpdir_in_memory();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
