/*
 * liveset.h - which records of compaction's inputs the keydir points at,
 * from one scan of the keydir's entries rather than a lookup per record.
 *
 * A lookup per record took klock shared for every record of every input:
 * kvbench overwrite beside a background compaction spent a fifth of its
 * time waiting for those holds. The scan reads the entries in id order,
 * in short holds, and costs no hashing or probing.
 *
 * Per input segment: a bit per 32-byte window of the file (a record is
 * longer than its 32-byte header, so no two records start in one window),
 * the count of set bits before each word, and the entries' ids (and where
 * in its window each record starts) in offset order, so the id of the
 * record at an offset is one popcount away.
 */
#ifndef KV_LIVESET_H
#define KV_LIVESET_H

#include <stddef.h>
#include <stdint.h>

/* An entry found pointing into input `in` at offset `off`. */
typedef struct kv__livepair {
	uint64_t off;
	uint32_t in;
	uint32_t id;
} kv__livepair;

typedef struct kv__liveset {
	uint64_t *bits;
	uint32_t *before;       /* set bits in the words before each word */
	uint32_t *ids;          /* by rank: ids in offset order */
	uint8_t *low;           /* by rank: offset within the window */
	uint64_t nwords;
} kv__liveset;

/* Builds sets[0..nsets), zero-initialised, for segments of sizes[] from
 * the pairs; KV_ENOMEM (every set freed, no message) when memory runs
 * out. */
int kv__live_build(kv__liveset *sets, size_t nsets, const uint64_t *sizes,
		   const kv__livepair *p, size_t n);
/* The id of the entry that pointed at the record at off, or UINT32_MAX. */
uint32_t kv__live_id(const kv__liveset *ls, uint64_t off);
void kv__live_free(kv__liveset *sets, size_t nsets);

#endif
