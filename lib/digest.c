/*
 * digest.c - kv_digest, kv_digest_buckets, kv_digest_foreach: digests of
 * the live set, whole or by key-hash range, for anti-entropy.
 *
 * A pair's hash is XXH3_128bits over le32(klen) || key || value, the value
 * uncompressed; a set's digest is the sum of its pairs' hashes modulo
 * 2^128. The sum does not depend on order, and unlike xor two equal pairs
 * do not cancel (two stores cannot hold a key twice, but buckets of
 * different stores are summed by callers). The length prefix keeps
 * ("ab", "c") apart from ("a", "bc"); klen < 2^16 and the value runs to the
 * end, so the encoding is unambiguous.
 *
 * The walk is kv_foreach's: windows of records pinned under the shared
 * keydir lock, then checked (header, CRC, expiry) and hashed outside it,
 * through the read path (read.h). A digest also holds the write lock for
 * the whole walk, so it is of one moment of the store's history: without
 * it a key rewritten mid-walk could be summed at neither or both values,
 * and two stores holding the same data would disagree. Compaction may move
 * records meanwhile; the pairs it moves are the same pairs.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "lock.h"
#include "commit.h"
#include "db.h"
#include "error.h"
#include "le.h"
#include "read.h"

#define WINDOW 64
/* Ids looked at per hold of the keydir lock when most are out of range,
 * so a compaction's switch step never waits for a whole pass. */
#define SCAN_STEP 4096
/* Pairs up to this size are hashed from one copy; larger ones stream. */
#define FLAT_MAX 1024

/* A key-hash range [first, first + span - 1] cut into n buckets. 128-bit
 * arithmetic because the whole range has 2^64 values. */
typedef struct range {
	uint64_t first;
	unsigned __int128 span;
	unsigned n;
	int whole;             /* one bucket over everything: no key hash */
} range;

/* Where walked pairs go: a digest per bucket, or a caller's callback. */
typedef struct sink {
	struct kv_digest *out; /* NULL: call fn instead */
	XXH3_state_t *st;      /* for pairs over FLAT_MAX, made on first use */
	kv_pair_fn fn;
	void *ctx;
} sink;

typedef struct window {
	kv__fetch f[WINDOW];
	unsigned bucket[WINDOW];
	size_t n;
} window;

/* Unpins every record of the window. */
static void release_all(window *w)
{
	kv__fetch_release_n(w->f, &w->n);
}

static int range_init(range *r, uint64_t first, uint64_t last, unsigned n)
{
	if (first > last || n == 0 || n > KV_DIGEST_MAX_BUCKETS)
		return kv__fail(KV_EINVAL, "digest: empty range or nbuckets "
				"%u not in 1..%u", n, KV_DIGEST_MAX_BUCKETS);
	r->first = first;
	r->span = (unsigned __int128)(last - first) + 1;
	r->n = n;
	r->whole = n == 1 && first == 0 && last == UINT64_MAX;
	/* Every bucket must hold at least one hash value, so that each has
	 * bounds a caller can split again. */
	if ((unsigned __int128)n > r->span)
		return kv__fail(KV_EINVAL, "digest: %u buckets for a range of "
				"%llu hash values", n,
				(unsigned long long)r->span);
	return 0;
}

/* Offset of bucket i's first hash value: ceil(i * span / n). Hash offset
 * o is in bucket floor(o * n / span), which is i exactly when
 * start(i) <= o < start(i + 1). */
static unsigned __int128 bucket_start(const range *r, unsigned i)
{
	return (r->span * i + r->n - 1) / r->n;
}

static int bucket_of(const range *r, uint64_t h, unsigned *b)
{
	if (h < r->first || (unsigned __int128)(h - r->first) >= r->span)
		return 0;
	*b = (unsigned)(((unsigned __int128)(h - r->first) * r->n) / r->span);
	return 1;
}

/* Pins the records of the next live keys in range, from id *next on. */
static int fill(kv_t *db, const range *r, window *w, uint32_t *next,
		int *more)
{
	int rc = 0;

	kv__klock_rd(&db->klock);
	for (unsigned seen = 0; *next < db->kd.nids && w->n < WINDOW &&
	     seen < SCAN_STEP && rc == 0; (*next)++, seen++) {
		unsigned b = 0;
		if (!kv__kd_live(&db->kd, *next))
			continue;
		if (!r->whole) {
			const kv__kent *e = kv__kd_ent(&db->kd, *next);
			uint64_t h = kv__kd_hash(kv__kd_key(&db->kd, *next),
						 kv__kent_klen(e));
			if (!bucket_of(r, h, &b))
				continue;
		}
		if ((rc = kv__fetch_locked(db, *next, &w->f[w->n])) == 0)
			w->bucket[w->n++] = b;
	}
	*more = *next < db->kd.nids;
	kv__klock_unlock(&db->klock);
	return rc;
}

static XXH128_hash_t pair_hash(sink *s, const uint8_t *key, size_t klen,
			       const uint8_t *val, size_t vlen, int *rc)
{
	uint8_t buf[FLAT_MAX], len[4];

	kv__put32(len, (uint32_t)klen);
	if (4 + klen + vlen <= sizeof buf) {
		memcpy(buf, len, 4);
		memcpy(buf + 4, key, klen);
		if (vlen)
			memcpy(buf + 4 + klen, val, vlen);
		return XXH3_128bits(buf, 4 + klen + vlen);
	}
	/* Streaming gives the same hash as one call over the concatenation. */
	if (!s->st && !(s->st = XXH3_createState())) {
		*rc = kv__fail(KV_ENOMEM, "out of memory for a digest");
		return (XXH128_hash_t){ 0, 0 };
	}
	XXH3_128bits_reset(s->st);
	XXH3_128bits_update(s->st, len, 4);
	XXH3_128bits_update(s->st, key, klen);
	XXH3_128bits_update(s->st, val, vlen);
	return XXH3_128bits_digest(s->st);
}

static int take(sink *s, unsigned b, const uint8_t *key, size_t klen,
		const uint8_t *val, size_t vlen)
{
	int rc = 0;

	if (!s->out)
		return s->fn(s->ctx, key, klen, val, vlen);
	XXH128_hash_t h = pair_hash(s, key, klen, val, vlen, &rc);
	if (rc)
		return rc;
	struct kv_digest *d = &s->out[b];
	uint64_t lo = d->lo + h.low64;
	d->hi += h.high64 + (lo < d->lo); /* carry */
	d->lo = lo;
	d->keys++;
	d->bytes += klen + vlen;
	return 0;
}

/* Checks each pinned record as a read does (KV_ECORRUPT names file and
 * offset; expired ones are skipped) and hands its plain value on. */
/* take() as a kv_pair_fn, for kv__fetch_call. */
typedef struct taker {
	sink *s;
	unsigned bucket;
} taker;

static int take_pair(void *ctx, const void *key, size_t klen,
		     const void *val, size_t vlen)
{
	taker *t = ctx;

	return take(t->s, t->bucket, key, klen, val, vlen);
}

static int deliver(kv_t *db, window *w, sink *s)
{
	int rc = 0;

	for (size_t i = 0; i < w->n && rc == 0; i++) {
		taker t = { s, w->bucket[i] };
		int called;

		rc = kv__fetch_call(db, &w->f[i], take_pair, &t, &called);
		if (rc == KV_ENOTFOUND && !called)
			rc = 0;
	}
	release_all(w);
	return rc;
}

static int walk(kv_t *db, const range *r, sink *s)
{
	window *w = calloc(1, sizeof *w);
	uint32_t next = 0;
	int rc = 0, more = 0;

	if (!w)
		return kv__fail(KV_ENOMEM, "out of memory for a digest");
	do {
		if ((rc = fill(db, r, w, &next, &more)) == 0)
			rc = deliver(db, w, s);
		release_all(w);
	} while (rc == 0 && more);
	free(w);
	XXH3_freeState(s->st);
	s->st = NULL;
	return rc;
}

static int digest_range(kv_t *db, const range *r, struct kv_digest *out)
{
	sink s = { .out = out };
	int rc;

	memset(out, 0, sizeof *out * r->n);
	pthread_mutex_lock(&db->wlock);
	if ((rc = kv__settle_wl(db)) == 0)
		rc = walk(db, r, &s);
	pthread_mutex_unlock(&db->wlock);
	if (rc) {
		memset(out, 0, sizeof *out * r->n);
		return rc;
	}
	for (unsigned i = 0; i < r->n; i++) {
		out[i].first = (uint64_t)(r->first + bucket_start(r, i));
		out[i].last = (uint64_t)(r->first + bucket_start(r, i + 1) - 1);
	}
	return 0;
}

KV_API int kv_digest(kv_t *db, struct kv_digest *out)
{
	range r;

	if (!db || !out)
		return kv__fail(KV_EINVAL, "kv_digest: NULL argument");
	(void)range_init(&r, 0, UINT64_MAX, 1); /* cannot fail */
	return digest_range(db, &r, out);
}

KV_API int kv_digest_buckets(kv_t *db, uint64_t first, uint64_t last,
			     unsigned nbuckets, struct kv_digest *out)
{
	range r;
	int rc;

	if (!db || !out)
		return kv__fail(KV_EINVAL, "kv_digest_buckets: NULL argument");
	if ((rc = range_init(&r, first, last, nbuckets)) != 0)
		return rc;
	return digest_range(db, &r, out);
}

/* No write lock here: fn may write to the store, as in kv_foreach. */
KV_API int kv_digest_foreach(kv_t *db, uint64_t first, uint64_t last,
			     kv_pair_fn fn, void *ctx)
{
	sink s = { .fn = fn, .ctx = ctx };
	range r;
	int rc;

	if (!db || !fn)
		return kv__fail(KV_EINVAL, "kv_digest_foreach: NULL argument");
	if ((rc = range_init(&r, first, last, 1)) != 0 ||
	    (rc = kv__settle(db)) != 0)
		return rc;
	return walk(db, &r, &s);
}
