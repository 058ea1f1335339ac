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
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
static int fired;

static void on_fire(void *ctx)
{
	(void)ctx;
	fired = 1;
}

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

static void check(const char *dir, const char *what)
{
	kv_options o;
	kv_t *db = NULL;
	char k[8], buf[64];
	size_t n;

	tu_options(&o);
	int rc = kv_open(dir, &o, &db);
	if (rc == KV_ENOENT)
		return; /* the very first create failed: no store at all */
	if (rc)
		fail_msg("%s: reopen: %s: %s", what, kv_strerror(rc),
			 kv_errmsg());
	for (int key = 0; key < NKEYS; key++) {
		snprintf(k, sizeof k, "k%d", key);
		rc = kv_get_into(db, k, strlen(k), buf, sizeof buf - 1, &n);
		if (rc != KV_OK && rc != KV_ENOTFOUND)
			fail_msg("%s: get %s: %s", what, k, kv_errmsg());
		if (rc == KV_OK)
			buf[n] = 0;
		if (!permitted(&model[key], rc == KV_OK ? buf : NULL))
			fail_msg("%s: %s holds \"%s\", acknowledged op %d", what,
				 k, rc == KV_OK ? buf : "(absent)",
				 model[key].acked);
	}
	kv_close(db);
}

/* Runs the workload with call n of kind failing; 0 once it no longer
 * reaches call n. */
static int one_case(enum tu_fault_kind kind, unsigned n, int err,
		    int persistent, int shortw, int *cases)
{
	char *dir = tu_mkdir(), what[96];

	memset(model, 0, sizeof model);
	fired = 0;
	if (shortw)
		tu_fault_short_write(n, err);
	else
		tu_fault(kind, n, err, persistent);
	tu_fault_hook(on_fire, NULL);
	workload(dir);
	tu_fault_clear();
	snprintf(what, sizeof what, "kind %d call %u err %d%s%s", (int)kind, n,
		 err, persistent ? " persistent" : "", shortw ? " short" : "");
	if (fired) {
		check(dir, what);
		(*cases)++;
	}
	tu_rmdir(dir);
	return fired;
}

static void test_a_fault_at_every_io_call(void **state)
{
	static const struct { enum tu_fault_kind kind; int err; int shortw; }
	plan[] = {
		{ TU_OPEN, EIO, 0 }, { TU_OPEN, EMFILE, 0 },
		{ TU_PWRITE, EIO, 0 }, { TU_PWRITE, ENOSPC, 0 },
		{ TU_PWRITE, EIO, 1 },
		{ TU_FSYNC, EIO, 0 }, { TU_FDATASYNC, EIO, 0 },
		{ TU_RENAME, EIO, 0 }, { TU_UNLINK, EIO, 0 },
		{ TU_FTRUNCATE, EIO, 0 }, { TU_MMAP, ENOMEM, 0 },
	};
	int cases = 0;

	(void)state;
	for (size_t p = 0; p < sizeof plan / sizeof plan[0]; p++)
		for (int persistent = 0; persistent < 2; persistent++) {
			if (plan[p].shortw && persistent)
				continue;
			for (unsigned n = 0; n < 2000; n++)
				if (!one_case(plan[p].kind, n, plan[p].err,
					      persistent, plan[p].shortw, &cases))
					break;
		}
	print_message("I/O faults: %d cases, each reopened and checked\n",
		      cases);
	assert_true(cases > 300);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_fault_at_every_io_call),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
