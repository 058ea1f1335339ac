/*
 * test_mmap.c - the rule that makes mapped reads safe (NOTES.md, "Mapped
 * reads"): the library never shrinks a file below a record any reader
 * indexed. A read of a mapped page past the end of its file raises
 * SIGBUS, so a rollback that cut published bytes, or a publish before the
 * append, would kill these readers; ASan runs them too.
 */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define NKEYS 64

struct shared {
	kv_t *db;
	_Atomic int stop;
	_Atomic unsigned long reads;
	_Atomic int wrong;
};

/* Reads every key in turn, forever: each must hold one of the values the
 * writer acknowledged for it ("k<i>:<n>"), or be absent before its first. */
static void *reader(void *arg)
{
	struct shared *sh = arg;
	char key[16], val[64];
	size_t n;

	while (!atomic_load(&sh->stop)) {
		for (int i = 0; i < NKEYS; i++) {
			snprintf(key, sizeof key, "k%d", i);
			int rc = kv_get_into(sh->db, key, strlen(key), val,
					     sizeof val - 1, &n);
			if (rc == KV_ENOTFOUND)
				continue;
			val[rc == KV_OK ? n : 0] = 0;
			if (rc != KV_OK || strncmp(val, key, strlen(key)) ||
			    val[strlen(key)] != ':')
				atomic_store(&sh->wrong, 1);
			atomic_fetch_add(&sh->reads, 1);
		}
	}
	return NULL;
}

/* Appends that fail half-way are cut back with ftruncate while readers
 * read the records just before the cut, in segments mapped past their end
 * (the active one is mapped to max_file_size). */
static void test_rolled_back_appends_never_fault_readers(void **state)
{
	char *dir = tu_mkdir();
	struct shared sh = { 0 };
	pthread_t t[2];
	char key[16], val[48];
	kv_options o;
	int failed = 0;

	(void)state;
	tu_options(&o);
	o.max_file_size = 16 * 1024;
	sh.db = tu_open(dir, &o);
	for (int i = 0; i < NKEYS; i++) {
		snprintf(key, sizeof key, "k%d", i);
		snprintf(val, sizeof val, "%s:0", key);
		TU_OK(tu_put(sh.db, key, val));
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, reader, &sh), 0);
	while (atomic_load(&sh.reads) < 1000)
		sched_yield();
	for (int round = 1; round <= 400; round++) {
		snprintf(key, sizeof key, "k%d", round % NKEYS);
		snprintf(val, sizeof val, "%s:%d", key, round);
		if (round % 3 == 0)
			tu_fault_short_write(0, EIO);
		int rc = tu_put(sh.db, key, val);
		tu_fault_clear();
		if (round % 3 == 0) {
			assert_int_equal(rc, KV_EIO);
			failed++;
		} else {
			TU_OK(rc);
		}
	}
	atomic_store(&sh.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(failed, 133);
	assert_int_equal(atomic_load(&sh.wrong), 0);
	TU_OK(kv_close(sh.db));
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rolled_back_appends_never_fault_readers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
