/* lock.c - klock's table of visible readers (lock.h). */
#include <sched.h>
#include <stdint.h>

#include "lock.h"

/* 512 cache lines of 8 slots: a thread's line is chosen by its own
 * number, its slot in the line by the lock, so two threads reading one
 * store rarely share a line. 32 KiB to scan per revocation. */
#define LINES 512u
#define PER_LINE 8u

static _Atomic(kv__klock *) visible[LINES * PER_LINE];
static _Atomic unsigned next_self;
static _Thread_local unsigned self;

int kv__klock_init(kv__klock *k)
{
	pthread_rwlockattr_t attr;
	int err;

	/* glibc's default rwlock lets a stream of readers starve the writer
	 * that publishes a put; prefer the writer. Safe because no path
	 * takes the lock shared twice in one thread. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr,
		PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	err = pthread_rwlock_init(&k->rw, &attr);
	pthread_rwlockattr_destroy(&attr);
	atomic_init(&k->bias, 0);
	atomic_init(&k->inhibit, KV__BIAS_INHIBIT);
	return err;
}

void kv__klock_destroy(kv__klock *k)
{
	pthread_rwlock_destroy(&k->rw);
}

static unsigned slot_of(const kv__klock *k)
{
	if (!self)
		self = atomic_fetch_add(&next_self, 1) + 1;
	unsigned line = (self * 0x9e3779b1u) >> 23; /* 9 bits: 512 lines */

	return line * PER_LINE + (unsigned)(((uintptr_t)k >> 6) % PER_LINE);
}

void kv__klock_revoke(kv__klock *k)
{
	/* Sequentially consistent with the readers' publish-then-check: a
	 * reader either sees the bias off, or is seen in its slot here. */
	atomic_store(&k->bias, 0);
	for (unsigned i = 0; i < LINES * PER_LINE; i++)
		for (unsigned n = 0; atomic_load(&visible[i]) == k; n++) {
			/* A get holds its slot for a copy of at most 4 KiB,
			 * or to pin a segment; a descheduled one is waited
			 * for without burning the CPU it needs. */
			if (n < KV__SPIN_TRIES)
				kv__cpu_relax();
			else
				sched_yield();
		}
	atomic_store_explicit(&k->inhibit, KV__BIAS_INHIBIT,
			      memory_order_relaxed);
}

unsigned kv__klock_rd_get(kv__klock *k)
{
	if (atomic_load_explicit(&k->bias, memory_order_relaxed)) {
		unsigned i = slot_of(k);
		kv__klock *none = NULL;

		if (atomic_compare_exchange_strong(&visible[i], &none, k)) {
			if (atomic_load(&k->bias))
				return i + 1;
			atomic_store_explicit(&visible[i], NULL,
					      memory_order_release);
		}
	}
	kv__klock_rd(k);
	/* Held shared, so no writer is inside: the bias may come back. */
	if (!atomic_load_explicit(&k->bias, memory_order_relaxed) &&
	    atomic_fetch_sub_explicit(&k->inhibit, 1,
				      memory_order_relaxed) == 1)
		atomic_store(&k->bias, 1);
	return 0;
}

void kv__klock_rd_done(kv__klock *k, unsigned token)
{
	if (token)
		atomic_store_explicit(&visible[token - 1], NULL,
				      memory_order_release);
	else
		kv__klock_unlock(k);
}
