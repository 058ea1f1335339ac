/*
 * test_compound.c - crash states reopened under faults (RELIABILITY-PLAN T8).
 *
 * Crash states: a workload of puts, deletes, batches, rollovers and two
 * compactions (KV_SYNC_ALWAYS) runs with its Nth call of one kind armed;
 * when the call is reached, the store's files are copied as they stand,
 * which is what a process crash at that instant leaves. For pwrite the
 * write is also made short (half of it lands) and the files copied again:
 * a torn record, or a torn segment header. Each copy is paired with what
 * was acknowledged by then (and the op in flight, which may or may not
 * have landed).
 *
 * Each crash state is then opened with every call of the open failing in
 * turn: each kind of I/O call (once and from then on), and each
 * allocation (once and from then on, with segments mapped and with mmap
 * failing so that records are read into buffers). An open that succeeds
 * must show the state exactly; one that fails must fail cleanly (KV_EIO
 * or KV_ENOMEM, never "corrupt"), leak nothing, and leave files that a
 * clean open then recovers: every acknowledged write present, every
 * value one that was written, no deleted key back, and the store takes
 * writes.
 *
 * KV_COMPOUND_STRIDE=k opens only every kth crash state (3 in make
 * check; make torture opens all of them, of a workload of KV_COMPOUND_OPS
 * ops, 48 by default and 150 there).
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allocfail.h"
#include "testutil.h"

/* ---- the model ---- */

#define NKEYS 8
#define MAXDOUBT 8

/* What a key may hold: its acknowledged value ("op:<n>"; 0 never
 * written, -n deleted by op n) or one of the failed ops since. */
typedef struct allowed {
	int acked;
	int doubt[MAXDOUBT];
	int ndoubt;
} allowed;

static allowed model[NKEYS];
static int nops = 48;      /* ops in the workload; KV_COMPOUND_OPS */
/* The op in flight: its keys may hold its value in a crash state. */
static int cur_op, cur_keys[3], cur_n;

static void note(int key, int op, int ok)
{
	allowed *a = &model[key];

	if (ok) {
		a->acked = op;
		a->ndoubt = 0;
	} else if (a->ndoubt < MAXDOUBT) {
		a->doubt[a->ndoubt++] = op;
	}
}

static void begin(int op, int n, const int *keys)
{
	cur_op = op;
	cur_n = n;
	memcpy(cur_keys, keys, (size_t)n * sizeof *keys);
}

static int put_op(kv_t *db, int op)
{
	char k[8], v[40];
	int key = op % NKEYS;
	int len = snprintf(v, sizeof v, "op:%d:%.*s", op, op % 24,
			   "vvvvvvvvvvvvvvvvvvvvvvvv");

	snprintf(k, sizeof k, "k%d", key);
	begin(op, 1, &key);
	int rc = kv_put(db, k, strlen(k), v, (size_t)len);
	note(key, op, rc == KV_OK);
	return rc;
}

static int del_op(kv_t *db, int op)
{
	char k[8];
	int key = (op * 3) % NKEYS;

	snprintf(k, sizeof k, "k%d", key);
	begin(-op, 1, &key);
	int rc = kv_delete(db, k, strlen(k));
	if (rc == KV_ENOTFOUND)
		rc = KV_OK;
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
	begin(op, 3, keys);
	rc = kv_write(db, b);
	kv_batch_free(b);
	for (int i = 0; i < 3; i++)
		note(keys[i], op, rc == KV_OK);
	return rc;
}

static void options(kv_options *o)
{
	tu_options(o);
	o->sync_mode = KV_SYNC_ALWAYS;
	o->max_file_size = 600;
}

/* Puts, deletes, batches, rollovers, two compactions (the second after a
 * reopen, so that it has hint files and an obsolete list to replace). */
static void workload(const char *dir)
{
	kv_options o;
	kv_t *db;

	options(&o);
	if (kv_open(dir, &o, &db) != KV_OK)
		return;
	for (int op = 1; op < nops; op++) {
		op % 7 == 0 ? del_op(db, op) :
		op % 11 == 0 ? batch_op(db, op) : put_op(db, op);
		if (op == nops / 3 || op == 2 * nops / 3) {
			cur_n = 0;
			kv_compact(db, NULL);
		}
		if (op == nops / 2) {
			cur_n = 0;
			kv_close(db);
			if (kv_open(dir, &o, &db) != KV_OK)
				return;
		}
	}
	cur_n = 0;
	kv_close(db);
}

/* Is `got` (NULL = absent) what a key may hold? */
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

/* ---- crash states ---- */

typedef struct cstate {
	char *dir;
	allowed m[NKEYS];
	int taken;
} cstate;

typedef struct gen {
	const char *work;     /* where the workload runs */
	cstate st[2];         /* before the call; after half of a pwrite */
} gen;

/* The files as they stand, and what they may hold. */
static void take(const gen *g, cstate *s)
{
	memcpy(s->m, model, sizeof model);
	for (int i = 0; i < cur_n; i++) {
		allowed *a = &s->m[cur_keys[i]];
		if (a->ndoubt < MAXDOUBT)
			a->doubt[a->ndoubt++] = cur_op;
	}
	tu_copy_dir(g->work, s->dir);
	s->taken = 1;
}

static void take_after(void *ctx)
{
	gen *g = ctx;

	take(g, &g->st[1]);
}

static void take_before(void *ctx)
{
	gen *g = ctx;

	take(g, &g->st[0]);
	/* A short write fires again when it retries the rest. */
	tu_fault_hook(take_after, g);
}

/* ---- opening a crash state under faults ---- */

static struct {
	long states, io, alloc;
} count;

static void check_db(kv_t *db, const cstate *s, const char *what)
{
	char k[8], buf[64];
	size_t n;

	for (int key = 0; key < NKEYS; key++) {
		snprintf(k, sizeof k, "k%d", key);
		int rc = kv_get_into(db, k, strlen(k), buf, sizeof buf - 1, &n);
		if (rc != KV_OK && rc != KV_ENOTFOUND)
			fail_msg("%s: get %s: %s", what, k, kv_errmsg());
		if (rc == KV_OK)
			buf[n] = 0;
		if (!permitted(&s->m[key], rc == KV_OK ? buf : NULL))
			fail_msg("%s: %s holds \"%s\", acknowledged op %d",
				 what, k, rc == KV_OK ? buf : "(absent)",
				 s->m[key].acked);
	}
}

/* A clean open recovers the state, and the store takes a write. */
static void check_clean(const char *dir, const cstate *s, const char *what)
{
	kv_options o;
	kv_t *db = NULL;

	options(&o);
	o.flags &= ~KV_CREATE;
	int rc = kv_open(dir, &o, &db);
	if (rc == KV_ENOENT)
		return; /* crashed before the first segment was in place */
	if (rc)
		fail_msg("%s: clean reopen: %s: %s", what, kv_strerror(rc),
			 kv_errmsg());
	check_db(db, s, what);
	TU_OK(tu_put(db, "later", "write"));
	TU_OK(kv_close(db));
	db = tu_open(dir, &o);
	check_db(db, s, what);
	tu_expect(db, "later", "write");
	TU_OK(kv_close(db));
}

/* After an open under faults: a failure must be clean; a success must
 * show the state. Then the faults are gone and a clean open must work. */
static void after_open(int rc, kv_t *db, const char *dir, const cstate *s,
		       const char *what)
{
	if (rc != KV_OK && rc != KV_EIO && rc != KV_ENOMEM && rc != KV_ENOENT)
		fail_msg("%s: open: %s: %s", what, kv_strerror(rc),
			 kv_errmsg());
	if (rc == KV_OK) {
		check_db(db, s, what);
		TU_OK(kv_close(db));
	}
	check_clean(dir, s, what);
}

/* to := a fresh copy of from, which stays as it is. */
static void fresh_copy(const char *from, const char *to)
{
	tu_rmdir(strdup(to)); /* tu_rmdir frees its argument */
	tu_copy_dir(from, to);
}

static int open_faulted(const char *dir, kv_t **db)
{
	kv_options o;

	options(&o);
	o.flags &= ~KV_CREATE;
	return kv_open(dir, &o, db);
}

/* Call n of kind fails (persistent: and every later one); 0 once the
 * open no longer reaches call n. */
static int io_case(const cstate *s, const char *tmp, enum tu_fault_kind kind,
		   int err, int persistent, int no_mmap, unsigned n)
{
	char what[128];
	kv_t *db = NULL;

	fresh_copy(s->dir, tmp);
	if (no_mmap)
		tu_fault(TU_MMAP, 0, ENOMEM, 1);
	tu_fault(kind, n, err, persistent);
	int rc = open_faulted(tmp, &db);
	int reached = tu_calls(kind) > n;
	tu_fault_clear();
	snprintf(what, sizeof what, "state %ld: open with kind %d call %u "
		 "err %d%s%s", count.states, (int)kind, n, err,
		 persistent ? " persistent" : "", no_mmap ? " no mmap" : "");
	after_open(rc, db, tmp, s, what);
	return reached;
}

/* Allocation n of the open fails (persistent: and every later one). */
static int alloc_case(const cstate *s, const char *tmp, int persistent,
		      int no_mmap, long n)
{
	char what[128];
	kv_t *db = NULL;

	fresh_copy(s->dir, tmp);
	if (no_mmap)
		tu_fault(TU_MMAP, 0, ENOMEM, 1);
	tu_alloc_arm(n, persistent);
	int rc = open_faulted(tmp, &db);
	tu_alloc_disarm();
	tu_fault_clear();
	snprintf(what, sizeof what, "state %ld: open with allocation %ld "
		 "failing%s%s", count.states, n,
		 persistent ? " persistent" : "", no_mmap ? " no mmap" : "");
	after_open(rc, db, tmp, s, what);
	return tu_alloc_fired();
}

static const struct { enum tu_fault_kind kind; int err, no_mmap; }
open_plan[] = {
	{ TU_OPEN, EIO, 0 }, { TU_PREAD, EIO, 0 }, { TU_PREAD, EIO, 1 },
	{ TU_MMAP, ENOMEM, 0 }, { TU_UNLINK, EIO, 0 }, { TU_FSYNC, EIO, 0 },
	{ TU_FTRUNCATE, EIO, 0 }, { TU_PWRITE, ENOSPC, 0 },
	{ TU_RENAME, EIO, 0 },
};

/* Every call of the open of state s failing in turn. */
static void open_every_way(const cstate *s)
{
	char *tmp = tu_mkdir();
	char sub[4096];

	snprintf(sub, sizeof sub, "%s/s", tmp);
	count.states++;
	fresh_copy(s->dir, sub);
	check_clean(sub, s, "crash state, clean open");
	for (size_t p = 0; p < sizeof open_plan / sizeof open_plan[0]; p++)
		for (int persistent = 0; persistent < 2; persistent++)
			for (unsigned n = 0; n < 1000; n++) {
				if (!io_case(s, sub, open_plan[p].kind,
					     open_plan[p].err, persistent,
					     open_plan[p].no_mmap, n))
					break;
				count.io++;
			}
	for (int no_mmap = 0; no_mmap < 2; no_mmap++)
		for (int persistent = 0; persistent < 2; persistent++)
			for (long n = 0; n < 100000; n++) {
				if (!alloc_case(s, sub, persistent, no_mmap, n))
					break;
				count.alloc++;
			}
	tu_rmdir(tmp);
}

static long env_long(const char *name, long dflt)
{
	const char *e = getenv(name);
	long v = e ? atol(e) : dflt;

	return v > 0 ? v : dflt;
}

static long stride(void)
{
	return env_long("KV_COMPOUND_STRIDE", 3);
}

/* Runs the workload with call n of kind armed; opens every crash state it
 * left (every kth, by stride). 0 once the workload no longer reaches n. */
static int generate(enum tu_fault_kind kind, unsigned n, long *seen)
{
	gen g = { 0 };
	char *work = tu_mkdir();

	g.work = work;
	g.st[0].dir = tu_mkdir();
	g.st[1].dir = tu_mkdir();
	memset(model, 0, sizeof model);
	cur_n = 0;
	tu_fault_hook(take_before, &g);
	if (kind == TU_PWRITE)
		tu_fault_short_write(n, EIO);
	else
		tu_fault(kind, n, EIO, 0);
	workload(work);
	tu_fault_clear();
	for (int i = 0; i < 2; i++) {
		if (g.st[i].taken && (*seen)++ % stride() == 0)
			open_every_way(&g.st[i]);
		tu_rmdir(g.st[i].dir);
	}
	tu_rmdir(work);
	return g.st[0].taken;
}

static void test_crash_states_opened_under_faults(void **state)
{
	static const enum tu_fault_kind kinds[] = {
		TU_PWRITE, TU_FSYNC, TU_FDATASYNC, TU_RENAME, TU_UNLINK,
		TU_FTRUNCATE,
	};
	long seen = 0;

	(void)state;
	nops = (int)env_long("KV_COMPOUND_OPS", 48);
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
		for (unsigned n = 0; n < 1000; n++)
			if (!generate(kinds[k], n, &seen))
				break;
	print_message("compound: %d ops, %ld crash states, %ld opened "
		      "(stride %ld): %ld opens under I/O faults, %ld under "
		      "allocation faults, each then reopened clean and "
		      "checked\n", nops, seen, count.states, stride(),
		      count.io, count.alloc);
	assert_true(count.states * stride() >= seen);
	assert_true(seen > 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crash_states_opened_under_faults),
	};
	tu_tmpdir_in_memory();
	/* Each open callocs a 320 KiB keydir chunk. glibc serves it from
	 * the heap (zeroing it all) once its mmap threshold has risen; a
	 * fixed threshold keeps it mmapped, fresh zero pages, and this test,
	 * which opens stores tens of thousands of times, 5x faster. */
	mallopt(M_MMAP_THRESHOLD, 128 << 10);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
