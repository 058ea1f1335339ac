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

/* Tries before sleeping: about 35 us on the machine of bench/RESULTS.md. */
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

static inline void kv__rwlock_rd(pthread_rwlock_t *l)
{
	kv__rwlock_spin(l, pthread_rwlock_tryrdlock, pthread_rwlock_rdlock);
}

static inline void kv__rwlock_wr(pthread_rwlock_t *l)
{
	kv__rwlock_spin(l, pthread_rwlock_trywrlock, pthread_rwlock_wrlock);
}

#endif
