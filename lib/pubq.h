/*
 * pubq.h - puts appended but not yet in the keydir.
 *
 * Why: at 1M keys a put's index update is two dependent cache misses, the
 * table slot and then the entry it names (about 180 ns each here), and
 * nothing else in the put can hide the second. A single put of a short
 * key is queued here instead, and the queue enters the keydir KV__PUBQ_LEN
 * at a time with the misses of all of them overlapped (kv__kd_warm).
 * Measured with kvbench, libkv alone, 3 alternating pairs: overwrite of
 * 1M keys 2,566-2,966 against 1,349-1,750 k/s, YCSB-A 1,629-1,760 against
 * 1,233-1,458; fill, gets and deletes as before (deletes must look up
 * the key to answer KV_ENOTFOUND, so they cannot wait here).
 *
 * What keeps it invisible to users:
 *   - it changes only with wlock and klock (exclusive) held, as the keydir
 *     does, and is read under either;
 *   - a get looks here first, newest entry first (read.c);
 *   - every other reader of the keydir (iteration, scan, digests, stats,
 *     a replica's snapshot) publishes the queue first (kv__settle), so
 *     that it sees every put that returned before it; kv_verify reads
 *     only the segments;
 *   - a write that is not a queued put (a delete, a batch, a long key)
 *     publishes the queue before itself, so the keydir takes the writes
 *     in log order;
 *   - a rollover publishes it before the next segment starts, so queued
 *     records are always in the active segment. Compaction reads only
 *     sealed segments, so it never meets a record the keydir does not
 *     know yet (which it would drop as dead).
 * The records themselves are in the log before they are queued: a crash
 * loses nothing that the keydir had not taken yet.
 */
#ifndef KV_PUBQ_H
#define KV_PUBQ_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "keydir.h"

/* Lookups overlapped per publish; also what a get scans first (16
 * hashes: two cache lines). */
#define KV__PUBQ_LEN 16

typedef struct kv__pubq {
	kv__kent ent[KV__PUBQ_LEN]; /* as the keydir's entry; key inline */
	uint64_t hash[KV__PUBQ_LEN];
	/* Written under both locks; read without them by kv__settle, which
	 * only needs to know whether anything is queued. */
	_Atomic uint32_t n;
} kv__pubq;

/* Whether a put of this key may wait in the queue: its key fits inline. */
static inline int kv__pubq_fits(size_t klen)
{
	return klen <= KV__KD_INLINE;
}

/* The newest queued entry for the key, or NULL; under klock or wlock. */
static inline const kv__kent *kv__pubq_find(const kv__pubq *q,
					    const void *key, size_t klen,
					    uint64_t hash)
{
	uint32_t n = atomic_load_explicit(&q->n, memory_order_relaxed);

	while (n-- > 0) {
		const kv__kent *e = &q->ent[n];

		if (q->hash[n] == hash && kv__kent_klen(e) == klen &&
		    memcmp(e->k.bytes, key, klen) == 0)
			return e;
	}
	return NULL;
}

#endif
