/*
 * keydir.h - the in-memory hash index: key -> location of its newest record.
 *
 * Layout, chosen for memory and for the cache misses of a lookup:
 *   - entries: 32-byte records in fixed-size chunks, addressed by a
 *     stable 32-bit id (freed ids are reused), so nothing moves on growth
 *     and the ordered index can refer to ids;
 *   - key bytes: a key of up to KV__KD_INLINE bytes sits in its entry, so
 *     finding it is two cache misses (slot, entry), not three (slot,
 *     entry, key): 32 bytes per key instead of 20 + the key's length.
 *     Longer keys cost 12 bytes more than that, in 1 MiB arena chunks,
 *     compacted when half dead;
 *   - table: open addressing with linear probing; a slot is a 32-bit id and
 *     32 bits of the key's hash, so a probe touches one cache line, rarely
 *     an entry whose key differs, and growing needs no key bytes;
 *   - filter: a blocked Bloom filter over the same 32 bits, 4 bits per
 *     slot (about 1 byte per key), small enough to stay in cache, so a
 *     lookup of a missing key usually ends without the table's cache miss.
 * No per-key malloc anywhere. Touches no files. Not thread-safe: kv.c holds
 * the keydir lock (shared for lookups, exclusive for changes).
 */
#ifndef KV_KEYDIR_H
#define KV_KEYDIR_H

#include <stddef.h>
#include <stdint.h>

/* Entry flags, in kv__kent.key. */
#define KV__KF_TTL  0x1u /* the record has an expiry: check it on read */
#define KV__KF_DEAD 0x2u /* recovery only: newest record is a tombstone */

#define KV__LOC(slot, off) (((uint64_t)(slot) << 40) | (uint64_t)(off))
#define KV__LOC_SLOT(loc) ((uint32_t)((loc) >> 40))
#define KV__LOC_OFF(loc) ((loc) & ((UINT64_C(1) << 40) - 1))
#define KV__MAX_SEG_SLOTS (1u << 24)
#define KV__MAX_SEG_OFF (UINT64_C(1) << 40)

#define KV__KD_INLINE 16u

typedef struct kv__kent {
	uint64_t loc;  /* segment slot (24 bits) | record offset (40 bits) */
	/* vlen (32) | 0 (8) | klen (16) | flags (8); 0 = free. vlen is the
	 * stored value length, so the record's size is 32 + klen + vlen. */
	uint64_t key;
	union {
		uint8_t bytes[KV__KD_INLINE]; /* klen <= KV__KD_INLINE */
		uint64_t arena;               /* longer: offset in the arena */
	} k;
} kv__kent;

typedef struct kv__kslot {
	uint32_t id1; /* id + 1; 0 = empty, UINT32_MAX = deleted */
	uint32_t h;   /* low 32 bits of the key's hash: position and tag */
} kv__kslot;

typedef struct kv__keydir {
	kv__kslot *slots;
	uint64_t cap;        /* slots, a power of two */
	uint64_t *bloom;     /* 512-bit blocks, cap / 128 of them (at least 1) */
	uint64_t nblocks;    /* a power of two */
	uint64_t used;       /* live slots */
	uint64_t deleted;    /* deleted-marker slots */
	uint64_t floor;      /* no rehash sizes for fewer keys (kv__kd_expect) */
	kv__kent **chunks;   /* entry chunks */
	uint32_t nchunks;
	uint32_t nids;       /* ids handed out so far (high-water mark) */
	uint32_t free_id;    /* head of the free-id list, id + 1; 0 = none */
	uint8_t **arena;     /* key byte chunks */
	uint32_t narena;
	uint32_t arena_pos;  /* bytes used in the newest arena chunk */
	uint64_t arena_dead; /* bytes of keys removed */
	uint64_t arena_live;
} kv__keydir;

/* The key field of an entry: vlen (32) | 0 (8) | klen (16) | flags (8). */
static inline uint64_t kv__kent_pack(uint32_t vlen, size_t klen,
				     uint32_t flags)
{
	return ((uint64_t)vlen << 32) | ((uint64_t)klen << 8) | (flags & 0xffu);
}

static inline uint32_t kv__kent_klen(const kv__kent *e)
{
	return (uint32_t)(e->key >> 8) & 0xffffu;
}

static inline uint32_t kv__kent_flags(const kv__kent *e)
{
	return (uint32_t)e->key & 0xffu;
}

static inline uint32_t kv__kent_vlen(const kv__kent *e)
{
	return (uint32_t)(e->key >> 32);
}

uint64_t kv__kd_hash(const void *key, size_t klen);
int kv__kd_init(kv__keydir *kd);
void kv__kd_free(kv__keydir *kd);
/* The id of the key's entry, or UINT32_MAX. */
uint32_t kv__kd_find(const kv__keydir *kd, const void *key, size_t klen,
		     uint64_t hash);
kv__kent *kv__kd_ent(const kv__keydir *kd, uint32_t id);
const uint8_t *kv__kd_key(const kv__keydir *kd, uint32_t id);
/* Adds a key not yet present; copies its bytes. KV_ENOMEM leaves kd as it
 * was. e->key's klen and arena bits are set here; pass flags in it. */
int kv__kd_insert(kv__keydir *kd, const void *key, size_t klen,
		  uint64_t hash, uint64_t loc, uint32_t vlen, uint32_t flags,
		  uint32_t *id);
void kv__kd_set_flags(kv__keydir *kd, uint32_t id, uint32_t flags);
/* Points a live entry at a newer record of its key. */
void kv__kd_update(kv__keydir *kd, uint32_t id, uint64_t loc, uint32_t vlen,
		   uint32_t flags);
/* Grows the table now for n keys, so loading them rehashes nothing;
 * n at most kv__kd_max_keys(). */
int kv__kd_reserve(kv__keydir *kd, uint64_t n);
/* The most keys one table holds. */
uint64_t kv__kd_max_keys(void);
/* kv_options.expected_keys: reserves for n keys and keeps the table that
 * big, so that the rehash that clears deleted slots never shrinks it
 * below n, which a store filled back up would have to grow again. */
int kv__kd_expect(kv__keydir *kd, uint64_t n);
void kv__kd_remove(kv__keydir *kd, uint32_t id, uint64_t hash);
/* Starts loading the table slot where a search for hash begins, for a
 * caller about to look up several keys (recovery). */
static inline void kv__kd_prefetch(const kv__keydir *kd, uint64_t hash)
{
	__builtin_prefetch(&kd->slots[(uint32_t)hash & (kd->cap - 1)]);
}
/* Starts loading the filter block and the table slot that finding (or
 * inserting) hash will read first: two independent cache misses. */
void kv__kd_prefetch_find(const kv__keydir *kd, uint64_t hash);
/* Brings into cache what finding each of n keys (by hash) will touch:
 * filter blocks, then table slots, then the entries and key bytes of
 * matching slots, each stage over all n, so their cache misses overlap
 * instead of following one another (about 4 per key at 1M keys). Only
 * hints: kv__kd_find gives the answers. For a caller looking up many keys
 * under a lock others wait for (compaction). */
void kv__kd_warm(const kv__keydir *kd, const uint64_t *hashes, size_t n);
/* Live keys, and heap bytes held. */
uint64_t kv__kd_count(const kv__keydir *kd);
uint64_t kv__kd_bytes(const kv__keydir *kd);
/* Ids in use are those below kd->nids whose entry key field is non-zero. */
static inline int kv__kd_live(const kv__keydir *kd, uint32_t id)
{
	return id < kd->nids && kv__kd_ent(kd, id)->key != 0;
}
/* Compares the key of id with (key, klen) like memcmp, shorter first. */
int kv__kd_cmp(const kv__keydir *kd, uint32_t id, const void *key,
	       size_t klen);

#endif
