/*
 * test_alloc.c - allocation failure at every malloc (RELIABILITY-PLAN T7).
 *
 * This binary is linked with --wrap for malloc, calloc, realloc,
 * reallocarray and strdup (see the Makefile), so the Nth allocation made
 * by libkv (or by this file) during the workload can be made to fail.
 * For every N the workload reaches: every call returns (KV_ENOMEM or a
 * success, never a crash), nothing leaks (under ASan), the same handle
 * goes on working for reads, and after a clean reopen every acknowledged
 * write is there and every value is one that was written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_reallocarray(void *p, size_t n, size_t m);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_reallocarray(void *p, size_t n, size_t m);
char *__wrap_strdup(const char *s);

static int armed;
static long countdown;     /* allocations left before the one that fails */
static long seen;
static int fired;

static int fail_now(void)
{
	if (!armed)
		return 0;
	seen++;
	if (countdown-- != 0)
		return 0;
	fired = 1;
	return 1;
}

void *__wrap_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return fail_now() ? NULL : __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return fail_now() ? NULL : __real_realloc(p, n); }
void *__wrap_reallocarray(void *p, size_t n, size_t m) { return fail_now() ? NULL : __real_reallocarray(p, n, m); }
char *__wrap_strdup(const char *s) { return fail_now() ? NULL : __real_strdup(s); }

#define NKEYS 6
#define MAXDOUBT 32
/* Per key: the op whose write was acknowledged (0: never written; a
 * negative op: a delete), and the failed ops since, which may still have
 * landed (a failure after the append poisons the store, so the writes
 * after it fail too). */
static int acked[NKEYS];
static int doubt[NKEYS][MAXDOUBT];
static int ndoubt[NKEYS];

static void note(int key, int op, int rc)
{
	if (rc == KV_OK) {
		acked[key] = op;
		ndoubt[key] = 0;
	} else if (ndoubt[key] < MAXDOUBT) {
		doubt[key][ndoubt[key]++] = op;
	}
}

static int count_pair(void *ctx, const void *k, size_t kl, const void *v,
		      size_t vl)
{
	(void)k; (void)kl; (void)v; (void)vl;
	++*(int *)ctx;
	return 0;
}

static int put(kv_t *db, int op)
{
	char k[8], v[700];
	int key = op % NKEYS;

	snprintf(k, sizeof k, "k%d", key);
	/* Long, compressible values: the compression path allocates. */
	memset(v, 'a' + op % 26, sizeof v);
	int len = snprintf(v, 32, "op:%d:", op);
	v[len] = 'x';
	int rc = kv_put(db, k, strlen(k), v, sizeof v);
	note(key, op, rc);
	return rc;
}

/* open, puts, gets, a batch, a scan, a compaction, close. */
static void workload(const char *dir)
{
	kv_options o;
	kv_t *db;
	kv_batch *b = NULL;
	void *v;
	size_t n;
	int ignored = 0;

	tu_options(&o);
	o.flags |= KV_COMPRESS;
	o.max_file_size = 1500;
	if (kv_open(dir, &o, &db) != KV_OK)
		return;
	for (int op = 1; op <= 12; op++) {
		put(db, op);
		if (kv_get(db, "k1", 2, &v, &n) == KV_OK)
			kv_free(v);
	}
	if (kv_batch_new(&b) == KV_OK) {
		/* An entry refused with KV_ENOMEM is not in the batch. */
		int put_in = kv_batch_put(b, "k0", 2, "op:100:", 7) == KV_OK;
		int del_in = kv_batch_delete(b, "k2", 2) == KV_OK;
		int rc = kv_write(db, b);
		if (put_in)
			note(0, 100, rc);
		if (del_in)
			note(2, -100, rc);
		kv_batch_free(b);
	}
	kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 0, count_pair, &ignored);
	kv_foreach(db, count_pair, &ignored);
	kv_compact(db, NULL);
	kv_close(db);
}

static int holds(const char *got, int key)
{
	int op;

	if (!got) {
		if (acked[key] <= 0)
			return 1;
		for (int i = 0; i < ndoubt[key]; i++)
			if (doubt[key][i] < 0)
				return 1;
		return 0;
	}
	if (sscanf(got, "op:%d:", &op) != 1)
		return 0;
	if (op == acked[key])
		return 1;
	for (int i = 0; i < ndoubt[key]; i++)
		if (doubt[key][i] == op)
			return 1;
	return 0;
}

static void check(const char *dir, long n)
{
	kv_options o;
	kv_t *db = NULL;
	char k[8];
	void *v;
	size_t len;

	tu_options(&o);
	int rc = kv_open(dir, &o, &db);
	if (rc == KV_ENOENT)
		return;
	if (rc)
		fail_msg("alloc %ld: reopen: %s", n, kv_errmsg());
	for (int key = 0; key < NKEYS; key++) {
		snprintf(k, sizeof k, "k%d", key);
		rc = kv_get(db, k, strlen(k), &v, &len);
		if (rc != KV_OK && rc != KV_ENOTFOUND)
			fail_msg("alloc %ld: get %s: %s", n, k, kv_errmsg());
		if (!holds(rc == KV_OK ? v : NULL, key))
			fail_msg("alloc %ld: %s holds %s; acknowledged op %d",
				 n, k, rc == KV_OK ? (char *)v : "(absent)",
				 acked[key]);
		if (rc == KV_OK)
			kv_free(v);
	}
	kv_close(db);
}

static void test_a_failed_allocation_at_every_malloc(void **state)
{
	long cases = 0;

	(void)state;
	for (long n = 0; n < 100000; n++) {
		char *dir = tu_mkdir();

		memset(acked, 0, sizeof acked);
		memset(ndoubt, 0, sizeof ndoubt);
		fired = 0;
		seen = 0;
		countdown = n;
		armed = 1;
		workload(dir);
		armed = 0;
		if (fired) {
			check(dir, n);
			cases++;
		}
		tu_rmdir(dir);
		if (!fired)
			break;
	}
	print_message("allocation failures: %ld cases, each reopened and "
		      "checked\n", cases);
	assert_true(cases > 50);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_failed_allocation_at_every_malloc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
