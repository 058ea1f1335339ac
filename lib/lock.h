/*
 * Taking klock: try, spin a little, then sleep.
 *
 * klock's holds are short: a put's index update is about 1 us, one of
 * compaction's batches of liveness checks about 10 us. Sleeping on the
 * futex costs far more: measured with `perf sched timehist` in this
 * project's 2-vCPU VM, a woken thread waited 40-80 us for its halted vCPU,
 * and a paced writer beside a compaction handed the lock back and forth
 * with it, two such wake-ups per put (writer p50 20-43 us, against 2 us
 * alone). So a taker first retries for a bounded time, which covers any
 * hold by a thread that is running, and sleeps only when the holder is
 * not (descheduled, or in a long step such as a table rebuild).
 *
 * A spinning writer is not queued, so glibc's writer preference does not
 * hold readers back while it spins; once it sleeps, preference applies
 * as before. On one CPU a spin cannot end early (the holder is not
 * running): it only delays the sleep by the bound.
 */
#ifndef KV_LOCK_H
#define KV_LOCK_H

#include <pthread.h>
#include <stdatomic.h>

/* Tries before sleeping: about 35 us on the Intel Xeon of bench/RESULTS.md
 * runs A-O, 56 us on the AMD EPYC of runs P-Q (PAUSE 26.6 ns there). */
#define KV__SPIN_TRIES 2048

static inline void kv__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* Tries try_fn up to KV__SPIN_TRIES times, then sleeps in take_fn. */
static inline void kv__rwlock_spin(pthread_rwlock_t *l,
				   int (*try_fn)(pthread_rwlock_t *),
				   int (*take_fn)(pthread_rwlock_t *))
{
	for (int i = 0; i < KV__SPIN_TRIES; i++) {
		if (try_fn(l) == 0)
			return;
		kv__cpu_relax();
	}
	take_fn(l);
}

/*
 * klock itself: a rwlock, plus a reader-biased path for gets (BRAVO: Dice
 * and Kogan, "BRAVO - Biased Locking for Reader-Writer Locks", USENIX
 * ATC 2019). Two threads taking a rwlock shared both write its word, so
 * its cache line moved between the cores on every get and unlock: kvbench
 * readrandom with 2 threads was 1.79-1.89x one thread's, 1.86-2.04x with
 * no lock at all. While the bias is on, a get instead marks a slot of its
 * own in a process-wide table of visible readers (a cache line that stays
 * in its core) and checks the bias again; a writer takes the rwlock,
 * turns the bias off and waits until no slot names this lock. A write
 * so costs one scan of the table after a read-mostly stretch, and the
 * bias stays off for the next KV__BIAS_INHIBIT shared takes by gets.
 */
#define KV__BIAS_INHIBIT 1024

typedef struct kv__klock {
	pthread_rwlock_t rw;
	_Atomic int bias;    /* gets may take the visible-readers path */
	_Atomic int inhibit; /* gets' shared takes before the bias returns */
} kv__klock;

int kv__klock_init(kv__klock *k);
void kv__klock_destroy(kv__klock *k);
/* Turns the bias off and waits for the visible readers (writer side). */
void kv__klock_revoke(kv__klock *k);

static inline void kv__klock_rd(kv__klock *k)
{
	kv__rwlock_spin(&k->rw, pthread_rwlock_tryrdlock,
			pthread_rwlock_rdlock);
}

static inline void kv__klock_wr(kv__klock *k)
{
	kv__rwlock_spin(&k->rw, pthread_rwlock_trywrlock,
			pthread_rwlock_wrlock);
	/* Relaxed: a reader sets the bias only holding the lock shared, so
	 * taking it exclusively ordered that store before this load. */
	if (atomic_load_explicit(&k->bias, memory_order_relaxed))
		kv__klock_revoke(k);
}

/* Releases kv__klock_rd or kv__klock_wr. */
static inline void kv__klock_unlock(kv__klock *k)
{
	pthread_rwlock_unlock(&k->rw);
}

/* Shared, for a get: the biased path when it can, else kv__klock_rd.
 * Returns the token kv__klock_rd_done takes. */
unsigned kv__klock_rd_get(kv__klock *k);
void kv__klock_rd_done(kv__klock *k, unsigned token);

#endif
