/* keydir.c - hash table over stable entry ids, keys in an arena. */
#include <bsd/stdlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "kv.h"
#include "keydir.h"

#define CHUNK_SHIFT 16 /* 65536 entries (2 MiB: one huge page) per chunk */
#define CHUNK_IDS (1u << CHUNK_SHIFT)
#define CHUNK_BYTES ((size_t)CHUNK_IDS * sizeof(kv__kent))
#define ARENA_SHIFT 20 /* 1 MiB arena chunks; a key (<= 64 KiB) never spans */
#define ARENA_CHUNK (1u << ARENA_SHIFT)
#define SLOT_EMPTY 0u
#define SLOT_DELETED UINT32_MAX
#define MIN_CAP 64u
/* Grow past 80% full: a slot holds 32 hash bits, so a probe compares
 * eight slots per cache line and touches an entry only on a real match;
 * a lower bound would cost memory for little. */
#define LOAD_NUM 4u
#define LOAD_DEN 5u
/* Slots are addressed with the 32 stored hash bits, so the table stops at
 * 2^32 slots: 3.4 billion keys at the load bound. */
#define MAX_CAP (UINT64_C(1) << 32)
/* The filter: a 512-bit block per 128 slots, 3 bits set per key in one
 * block (one cache line per lookup). At the load bounds (0.4-0.8) that is
 * 10-5 bits per key; removed keys' bits stay until the next rehash. */
#define BLOOM_SLOTS 128u
#define BLOOM_WORDS 8u
#define BLOOM_BITS 3
/* A transparent huge page (x86-64, arm64 with 4 KiB pages). */
#define HUGE_PAGE ((size_t)2 << 20)
/* Compact the arena once this much is dead and it is half the arena. */
#define ARENA_COMPACT_MIN (4u << 20)

uint64_t kv__kd_hash(const void *key, size_t klen)
{
	return XXH3_64bits(key, klen);
}

/* The 32 hash bits a slot keeps: its position and its tag at once. */
static uint32_t h32_of(uint64_t hash)
{
	return (uint32_t)hash;
}

_Static_assert(sizeof(kv__kent) == 32, "an entry is 32 bytes");

static int in_arena(size_t klen)
{
	return klen > KV__KD_INLINE;
}

kv__kent *kv__kd_ent(const kv__keydir *kd, uint32_t id)
{
	return &kd->chunks[id >> CHUNK_SHIFT][id & (CHUNK_IDS - 1)];
}

const uint8_t *kv__kd_key(const kv__keydir *kd, uint32_t id)
{
	const kv__kent *e = kv__kd_ent(kd, id);

	if (!in_arena(kv__kent_klen(e)))
		return e->k.bytes;
	uint64_t off = e->k.arena;
	return kd->arena[off >> ARENA_SHIFT] + (off & (ARENA_CHUNK - 1));
}

int kv__kd_cmp(const kv__keydir *kd, uint32_t id, const void *key,
	       size_t klen)
{
	size_t mine = kv__kent_klen(kv__kd_ent(kd, id));
	int c = memcmp(kv__kd_key(kd, id), key, mine < klen ? mine : klen);

	if (c)
		return c;
	return mine < klen ? -1 : mine > klen;
}

/* Every probe of a big table lands on a random page: with 4 KiB pages it
 * pays a TLB miss on top of the cache miss. Asking for transparent huge
 * pages took a 1M-key lookup from 800 to 690 ns of CPU time (NOTES.md).
 * The entry a lookup reads next is on a random page as well: with entry
 * chunks of one huge page each, kvbench's readrandom, overwrite and
 * deleterandom ran 3-5% faster and a reopen 10% (6 alternating pairs).
 * So tables and chunks are maps of their own, zeroed by the kernel, and
 * those asked to be huge are aligned to a huge page and advised (advice
 * only: where THP is off it does nothing). Aligned, no entry straddles
 * two cache lines either. */
static void *region_new(size_t bytes, int huge)
{
	size_t span = huge && bytes >= HUGE_PAGE ? bytes + HUGE_PAGE : bytes;
	/* fd -1: what Linux and POSIX ask of an anonymous map */
	uint8_t *p = mmap(NULL, span, PROT_READ | PROT_WRITE,
			  /* cppcheck-suppress invalidFunctionArg */
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (span == bytes)
		return p;
	uintptr_t mask = HUGE_PAGE - 1, a = ((uintptr_t)p + mask) & ~mask;
	size_t head = a - (uintptr_t)p;
	if (head) /* the unaligned ends of the span */
		munmap(p, head);
	munmap((uint8_t *)a + bytes, span - head - bytes);
	(void)madvise((void *)a, bytes, MADV_HUGEPAGE);
	return (void *)a;
}

static void region_free(void *p, size_t bytes)
{
	if (p)
		munmap(p, bytes);
}

/* The filter's block and three bit positions for a slot's hash bits:
 * MurmurHash3's 64-bit finaliser spreads the 32 bits, whose low ones
 * already chose the slot, over the block number and the positions. */
static uint64_t bloom_mix(uint32_t h)
{
	uint64_t m = h;

	m ^= m >> 33;
	m *= UINT64_C(0xff51afd7ed558ccd);
	m ^= m >> 33;
	m *= UINT64_C(0xc4ceb9fe1a85ec53);
	return m ^ (m >> 33);
}

/* The filter block that mixed bits m choose. */
static uint64_t *bloom_block(const kv__keydir *kd, uint64_t m)
{
	return kd->bloom + ((m >> 32) & (kd->nblocks - 1)) * BLOOM_WORDS;
}

static void bloom_add(kv__keydir *kd, uint32_t h)
{
	uint64_t m = bloom_mix(h);
	uint64_t *b = bloom_block(kd, m);

	for (int i = 0; i < BLOOM_BITS; i++, m >>= 9)
		b[(m >> 6) & 7] |= UINT64_C(1) << (m & 63);
}

/* 0 when no key with hash bits h was added since the filter was built. */
static int bloom_may_have(const kv__keydir *kd, uint32_t h)
{
	uint64_t m = bloom_mix(h);
	const uint64_t *b = bloom_block(kd, m);

	for (int i = 0; i < BLOOM_BITS; i++, m >>= 9)
		if (!(b[(m >> 6) & 7] & (UINT64_C(1) << (m & 63))))
			return 0;
	return 1;
}

static uint64_t nblocks_of(uint64_t cap)
{
	return cap / BLOOM_SLOTS ? cap / BLOOM_SLOTS : 1;
}

/* The table size growth picks for `need` live keys. */
static uint64_t cap_for(uint64_t need)
{
	uint64_t cap = MIN_CAP;

	while (need * LOAD_DEN >= cap * LOAD_NUM)
		cap <<= 1;
	return cap;
}

static size_t table_bytes(uint64_t cap)
{
	return (size_t)cap * sizeof(kv__kslot);
}

/* Tables of two huge pages or more take them (a smaller one mostly stays
 * in cache); so do entry chunks after the first (ensure_id), so that a
 * small store does not take a whole huge page for its few entries. */
static int table_huge(uint64_t cap)
{
	return table_bytes(cap) >= 2 * HUGE_PAGE;
}

static int alloc_table(kv__keydir *kd, uint64_t cap)
{
	uint64_t nblocks = nblocks_of(cap);
	kv__kslot *slots;

	if (cap > MAX_CAP ||
	    !(slots = region_new(table_bytes(cap), table_huge(cap))))
		return KV_ENOMEM; /* the caller frees kd, or restores it */
	if (!(kd->bloom = calloc(nblocks, BLOOM_WORDS * sizeof *kd->bloom))) {
		region_free(slots, table_bytes(cap));
		return KV_ENOMEM;
	}
	kd->slots = slots;
	kd->cap = cap;
	kd->nblocks = nblocks;
	return 0;
}

int kv__kd_init(kv__keydir *kd)
{
	memset(kd, 0, sizeof *kd);
	return alloc_table(kd, MIN_CAP);
}

void kv__kd_free(kv__keydir *kd)
{
	for (uint32_t i = 0; i < kd->nchunks; i++)
		region_free(kd->chunks[i], CHUNK_BYTES);
	for (uint32_t i = 0; i < kd->narena; i++)
		free(kd->arena[i]);
	free(kd->chunks);
	free(kd->arena);
	region_free(kd->slots, table_bytes(kd->cap));
	free(kd->bloom);
	memset(kd, 0, sizeof *kd);
}

uint32_t kv__kd_find(const kv__keydir *kd, const void *key, size_t klen,
		     uint64_t hash)
{
	uint64_t mask = kd->cap - 1;
	uint32_t h = h32_of(hash);

	if (!bloom_may_have(kd, h))
		return UINT32_MAX;
	for (uint64_t i = h & mask;; i = (i + 1) & mask) {
		kv__kslot sl = kd->slots[i];

		if (sl.id1 == SLOT_EMPTY)
			return UINT32_MAX;
		if (sl.h != h || sl.id1 == SLOT_DELETED)
			continue;
		uint32_t id = sl.id1 - 1;
		const kv__kent *e = kv__kd_ent(kd, id);
		if (kv__kent_klen(e) == klen &&
		    memcmp(kv__kd_key(kd, id), key, klen) == 0)
			return id;
	}
}

/* The first slot at or after i whose tag is h, or NULL at an empty one. */
static const kv__kslot *tag_match(const kv__keydir *kd, uint32_t h)
{
	uint64_t mask = kd->cap - 1;

	for (uint64_t i = h & mask;; i = (i + 1) & mask) {
		const kv__kslot *sl = &kd->slots[i];

		if (sl->id1 == SLOT_EMPTY)
			return NULL;
		if (sl->h == h && sl->id1 != SLOT_DELETED)
			return sl;
	}
}

void kv__kd_prefetch_find(const kv__keydir *kd, uint64_t hash)
{
	__builtin_prefetch(bloom_block(kd, bloom_mix(h32_of(hash))));
	kv__kd_prefetch(kd, hash);
}

void kv__kd_warm(const kv__keydir *kd, const uint64_t *hashes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		__builtin_prefetch(bloom_block(kd, bloom_mix(h32_of(hashes[i]))));
	for (size_t i = 0; i < n; i++)
		if (bloom_may_have(kd, h32_of(hashes[i])))
			kv__kd_prefetch(kd, hashes[i]);
	for (int stage = 0; stage < 2; stage++) {
		for (size_t i = 0; i < n; i++) {
			uint32_t h = h32_of(hashes[i]);
			const kv__kslot *sl =
				bloom_may_have(kd, h) ? tag_match(kd, h) : NULL;

			if (sl && stage == 0)
				__builtin_prefetch(kv__kd_ent(kd, sl->id1 - 1));
			else if (sl)
				__builtin_prefetch(kv__kd_key(kd, sl->id1 - 1));
		}
	}
}

/* Places id in the first free slot of its probe run (rehash and insert). */
static void place(kv__keydir *kd, uint32_t id, uint32_t h)
{
	uint64_t mask = kd->cap - 1;
	uint64_t i = h & mask;

	while (kd->slots[i].id1 != SLOT_EMPTY &&
	       kd->slots[i].id1 != SLOT_DELETED)
		i = (i + 1) & mask;
	if (kd->slots[i].id1 == SLOT_DELETED)
		kd->deleted--;
	kd->slots[i].id1 = id + 1;
	kd->slots[i].h = h;
	kd->used++;
	bloom_add(kd, h);
}

/* Rebuilds the table at a size fit for `need` live keys, which also clears
 * the deleted markers and the filter bits of removed keys. The slots' own
 * hash bits place them: no key is read, so growing a table of 1M keys
 * streams 16 MB instead of taking a cache miss per key in the arena (that
 * was a fifth of a 1M-key open). */
static int rehash(kv__keydir *kd, uint64_t need)
{
	kv__keydir old = *kd;

	if (alloc_table(kd, cap_for(need > kd->floor ? need : kd->floor))) {
		*kd = old;
		return KV_ENOMEM;
	}
	kd->used = kd->deleted = 0;
	for (uint64_t i = 0; i < old.cap; i++) {
		kv__kslot sl = old.slots[i];

		if (sl.id1 != SLOT_EMPTY && sl.id1 != SLOT_DELETED)
			place(kd, sl.id1 - 1, sl.h);
	}
	region_free(old.slots, table_bytes(old.cap));
	free(old.bloom);
	return 0;
}

uint64_t kv__kd_max_keys(void)
{
	/* The largest n for which cap_for(n) is at most MAX_CAP. */
	return (MAX_CAP * LOAD_NUM - 1) / LOAD_DEN;
}

int kv__kd_reserve(kv__keydir *kd, uint64_t n)
{
	if ((n + kd->deleted) * LOAD_DEN < kd->cap * LOAD_NUM)
		return 0;
	return rehash(kd, n);
}

int kv__kd_expect(kv__keydir *kd, uint64_t n)
{
	int rc = kv__kd_reserve(kd, n);

	if (rc == 0)
		kd->floor = n;
	return rc;
}

static int ensure_id(kv__keydir *kd, uint32_t *id)
{
	if (kd->free_id) {
		*id = kd->free_id - 1;
		return 0;
	}
	if (kd->nids == UINT32_MAX - 1)
		return KV_ENOMEM;
	if ((kd->nids >> CHUNK_SHIFT) == kd->nchunks) {
		kv__kent **c = reallocarray(kd->chunks, kd->nchunks + 1u,
					    sizeof *c);
		if (!c)
			return KV_ENOMEM;
		kd->chunks = c;
		c[kd->nchunks] = region_new(CHUNK_BYTES, kd->nchunks > 0);
		if (!c[kd->nchunks])
			return KV_ENOMEM;
		kd->nchunks++;
	}
	*id = kd->nids;
	return 0;
}

static int arena_room(kv__keydir *kd, size_t klen)
{
	if (kd->narena && kd->arena_pos + klen <= ARENA_CHUNK)
		return 0;
	uint8_t **a = reallocarray(kd->arena, kd->narena + 1u, sizeof *a);
	if (!a)
		return KV_ENOMEM;
	kd->arena = a;
	a[kd->narena] = malloc(ARENA_CHUNK);
	if (!a[kd->narena])
		return KV_ENOMEM;
	/* The unused tail of the previous chunk is lost space: count it dead
	 * so compaction of the arena accounts for it. */
	if (kd->narena)
		kd->arena_dead += ARENA_CHUNK - kd->arena_pos;
	kd->narena++;
	kd->arena_pos = 0;
	return 0;
}

static uint64_t arena_put(kv__keydir *kd, const void *key, size_t klen)
{
	uint64_t off = ((uint64_t)(kd->narena - 1) << ARENA_SHIFT) |
		       kd->arena_pos;

	memcpy(kd->arena[kd->narena - 1] + kd->arena_pos, key, klen);
	kd->arena_pos += (uint32_t)klen;
	kd->arena_live += klen;
	return off;
}

int kv__kd_insert(kv__keydir *kd, const void *key, size_t klen,
		  uint64_t hash, uint64_t loc, uint32_t vlen, uint32_t flags,
		  uint32_t *id)
{
	uint64_t need = kd->used + 1;
	int rc;

	if ((need + kd->deleted) * LOAD_DEN >= kd->cap * LOAD_NUM &&
	    (rc = rehash(kd, need)) != 0)
		return rc;
	if ((rc = ensure_id(kd, id)) != 0 ||
	    (in_arena(klen) && (rc = arena_room(kd, klen)) != 0))
		return rc;
	kv__kent *e = kv__kd_ent(kd, *id);
	/* New ids go up one by one: start taking the line of the entry 32
	 * ids on (4 lines ahead, inside the chunk), so that the stores of
	 * later inserts find it in cache. A chunk's huge page is zeroed all
	 * at once, most of it long out of cache by the time it is used;
	 * without this fillrandom was 5-12% slower than with 4 KiB pages
	 * each zeroed just before its first entry. */
	if (!kd->free_id && ((*id + 32) & (CHUNK_IDS - 1)) >= 32)
		__builtin_prefetch(e + 32, 1);
	if (kd->free_id)
		kd->free_id = (uint32_t)e->loc; /* next link of the free list */
	else
		kd->nids++;
	e->loc = loc;
	e->key = kv__kent_pack(vlen, klen, flags);
	if (in_arena(klen))
		e->k.arena = arena_put(kd, key, klen);
	else
		memcpy(e->k.bytes, key, klen);
	place(kd, *id, h32_of(hash));
	return 0;
}

void kv__kd_set_flags(kv__keydir *kd, uint32_t id, uint32_t flags)
{
	kv__kent *e = kv__kd_ent(kd, id);

	e->key = (e->key & ~(uint64_t)0xff) | (flags & 0xffu);
}

void kv__kd_update(kv__keydir *kd, uint32_t id, uint64_t loc, uint32_t vlen,
		   uint32_t flags)
{
	kv__kent *e = kv__kd_ent(kd, id);

	e->loc = loc;
	e->key = kv__kent_pack(vlen, kv__kent_klen(e), flags);
}

/* Copies live keys into fresh chunks. Runs when half the arena is dead, so
 * its cost is paid back by the removals that made the garbage. On
 * allocation failure the old arena simply stays. */
static void arena_compact(kv__keydir *kd)
{
	kv__keydir fresh = {0};

	for (uint32_t id = 0; id < kd->nids; id++) {
		kv__kent *e = kv__kd_ent(kd, id);
		size_t klen = kv__kent_klen(e);

		if (e->key == 0 || !in_arena(klen))
			continue;
		if (arena_room(&fresh, klen))
			goto fail;
		arena_put(&fresh, kv__kd_key(kd, id), klen);
	}
	/* Second pass only after every allocation succeeded. */
	uint64_t pos = 0;
	for (uint32_t id = 0; id < kd->nids; id++) {
		kv__kent *e = kv__kd_ent(kd, id);
		size_t klen = kv__kent_klen(e);

		if (e->key == 0 || !in_arena(klen))
			continue;
		if ((pos & (ARENA_CHUNK - 1)) + klen > ARENA_CHUNK)
			pos = ((pos >> ARENA_SHIFT) + 1) << ARENA_SHIFT;
		e->k.arena = pos;
		pos += klen;
	}
	for (uint32_t i = 0; i < kd->narena; i++)
		free(kd->arena[i]);
	free(kd->arena);
	kd->arena = fresh.arena;
	kd->narena = fresh.narena;
	kd->arena_pos = fresh.arena_pos;
	kd->arena_live = fresh.arena_live;
	kd->arena_dead = fresh.arena_dead;
	return;
fail:
	for (uint32_t i = 0; i < fresh.narena; i++)
		free(fresh.arena[i]);
	free(fresh.arena);
}

void kv__kd_remove(kv__keydir *kd, uint32_t id, uint64_t hash)
{
	uint64_t mask = kd->cap - 1;
	uint64_t i = h32_of(hash) & mask;
	kv__kent *e = kv__kd_ent(kd, id);
	size_t klen = kv__kent_klen(e);

	while (kd->slots[i].id1 != id + 1)
		i = (i + 1) & mask;
	kd->slots[i].id1 = SLOT_DELETED;
	kd->used--;
	kd->deleted++;
	if (in_arena(klen)) {
		kd->arena_live -= klen;
		kd->arena_dead += klen;
	}
	e->key = 0;
	e->loc = kd->free_id;
	kd->free_id = id + 1;
	if (kd->arena_dead >= ARENA_COMPACT_MIN &&
	    kd->arena_dead > kd->arena_live)
		arena_compact(kd);
}

uint64_t kv__kd_count(const kv__keydir *kd)
{
	return kd->used;
}

uint64_t kv__kd_bytes(const kv__keydir *kd)
{
	return table_bytes(kd->cap) +
	       kd->nblocks * BLOOM_WORDS * sizeof *kd->bloom +
	       (uint64_t)kd->nchunks * CHUNK_BYTES +
	       (uint64_t)kd->narena * ARENA_CHUNK +
	       (uint64_t)(kd->nchunks + kd->narena) * sizeof(void *);
}
