/*
 * test_lock.c - klock's reader-biased path (lib/lock.h) excludes writers.
 *
 * Readers take the lock as a get does (kv__klock_rd_get), writers as a
 * put does (kv__klock_wr). A writer changes two plain counters one after
 * the other, with a pause between; a reader that ever sees them differ
 * was inside the lock together with a writer. The figures printed show
 * both reader paths were taken: the biased one (visible-readers table)
 * during read-only stretches, the shared rwlock after each revocation.
 * Also run under TSan (make check-tsan), which checks the same exclusion
 * through the atomics' ordering.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "lock.h"

#define WRITES 2000

static struct {
	kv__klock k;
	uint64_t a, b;        /* changed by writers, under the lock */
	_Atomic int writer_done;
	_Atomic long biased, shared, torn;
} S;

static void *reader(void *arg)
{
	long biased = 0, shared = 0, torn = 0;

	(void)arg;
	while (!atomic_load(&S.writer_done)) {
		unsigned t = kv__klock_rd_get(&S.k);
		uint64_t a = S.a;
		for (int j = 0; j < 4; j++)
			kv__cpu_relax();
		uint64_t b = S.b;
		kv__klock_rd_done(&S.k, t);
		torn += a != b;
		if (t)
			biased++;
		else
			shared++;
	}
	atomic_fetch_add(&S.biased, biased);
	atomic_fetch_add(&S.shared, shared);
	atomic_fetch_add(&S.torn, torn);
	return NULL;
}

static void *writer(void *arg)
{
	(void)arg;
	for (int i = 0; i < WRITES; i++) {
		kv__klock_wr(&S.k);
		S.a++;
		for (int j = 0; j < 64; j++)
			kv__cpu_relax();
		S.b++;
		kv__klock_unlock(&S.k);
		usleep(50); /* read-mostly stretches, so the bias returns */
	}
	atomic_store(&S.writer_done, 1);
	return NULL;
}

static void test_biased_readers_never_overlap_a_writer(void **state)
{
	pthread_t r1, r2, w;

	(void)state;
	assert_int_equal(kv__klock_init(&S.k), 0);
	assert_int_equal(pthread_create(&r1, NULL, reader, NULL), 0);
	assert_int_equal(pthread_create(&r2, NULL, reader, NULL), 0);
	assert_int_equal(pthread_create(&w, NULL, writer, NULL), 0);
	pthread_join(r1, NULL);
	pthread_join(r2, NULL);
	pthread_join(w, NULL);
	kv__klock_destroy(&S.k);
	print_message("klock: %ld biased and %ld shared reads, %llu writes, "
		      "%ld torn\n", atomic_load(&S.biased),
		      atomic_load(&S.shared), (unsigned long long)S.a,
		      atomic_load(&S.torn));
	assert_int_equal(atomic_load(&S.torn), 0);
	assert_true(S.a == WRITES && S.b == WRITES);
	/* Both paths ran: the bias came on, and writers turned it off. */
	assert_true(atomic_load(&S.biased) > 0);
	assert_true(atomic_load(&S.shared) >= KV__BIAS_INHIBIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_biased_readers_never_overlap_a_writer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
