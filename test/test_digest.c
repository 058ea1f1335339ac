/* test_digest.c - kv_digest, kv_digest_buckets, kv_digest_foreach: equal
 * live sets give equal digests whatever their history; any change shows;
 * buckets localise a difference and a drill-down finds the key. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "testutil.h"

#define NKEYS 600

/* ---- an independent model of the digest: one XXH3_128 call per pair
 * over le32(klen) || key || value, summed modulo 2^128 ---- */

typedef unsigned __int128 u128;

static u128 pair_hash(const void *key, size_t klen, const void *val,
		      size_t vlen)
{
	uint8_t *buf = malloc(4 + klen + vlen);
	assert_non_null(buf);
	buf[0] = (uint8_t)klen;
	buf[1] = (uint8_t)(klen >> 8);
	buf[2] = buf[3] = 0;
	memcpy(buf + 4, key, klen);
	memcpy(buf + 4 + klen, val, vlen);
	XXH128_hash_t h = XXH3_128bits(buf, 4 + klen + vlen);
	free(buf);
	return ((u128)h.high64 << 64) | h.low64;
}

static u128 sum_of(const struct kv_digest *d)
{
	return ((u128)d->hi << 64) | d->lo;
}

static void assert_same(const struct kv_digest *a, const struct kv_digest *b)
{
	assert_int_equal(a->lo, b->lo);
	assert_int_equal(a->hi, b->hi);
	assert_int_equal(a->keys, b->keys);
	assert_int_equal(a->bytes, b->bytes);
	assert_int_equal(a->first, b->first);
	assert_int_equal(a->last, b->last);
}

static int same_sum(const struct kv_digest *a, const struct kv_digest *b)
{
	return a->lo == b->lo && a->hi == b->hi;
}

static struct kv_digest digest_of(kv_t *db)
{
	struct kv_digest d;
	TU_OK(kv_digest(db, &d));
	return d;
}

/* The final value of key i: short, compressible over compress_min, or
 * over the 1 KiB that the library hashes from one copy. */
static size_t final_value(int i, char *buf)
{
	size_t n;

	if (i % 7 == 0)
		n = 5000;
	else if (i % 3 == 0)
		n = 700;
	else
		return (size_t)sprintf(buf, "v%d-%x", i, (unsigned)(i * 2654435761u));
	for (size_t j = 0; j < n; j++)
		buf[j] = (char)('a' + (j * 7 + (size_t)i) % 13);
	buf[0] = (char)i; /* no two values alike */
	return n;
}

static int key_of(int i, char *buf)
{
	return sprintf(buf, "key%04d", i);
}

static u128 model_sum(int nkeys)
{
	char k[16], v[8192];
	u128 s = 0;

	for (int i = 0; i < nkeys; i++) {
		int kl = key_of(i, k);
		size_t vl = final_value(i, v);
		s += pair_hash(k, (size_t)kl, v, vl);
	}
	return s;
}

static void put_final(kv_t *db, int i)
{
	char k[16], v[8192];
	int kl = key_of(i, k);
	size_t vl = final_value(i, v);
	TU_OK(kv_put(db, k, (size_t)kl, v, vl));
}

/* Fisher-Yates with the test PRNG. */
static void shuffle(int *a, int n, uint64_t *seed)
{
	for (int i = 0; i < n; i++)
		a[i] = i;
	for (int i = n - 1; i > 0; i--) {
		int j = (int)(tu_rand(seed) % (uint64_t)(i + 1));
		int t = a[i];
		a[i] = a[j];
		a[j] = t;
	}
}

/* History A: small compressed segments, garbage first, final values in a
 * random order (some in batches, one with a TTL), keys written then
 * deleted, a key left to expire, compaction, reopen. */
static kv_t *build_messy(const char *dir, kv_options *o)
{
	char k[16], v[8192];
	int order[NKEYS];
	uint64_t seed = 42;
	kv_batch *b;
	kv_t *db;

	tu_options(o);
	o->flags |= KV_COMPRESS;
	o->max_file_size = 8192;
	db = tu_open(dir, o);
	shuffle(order, NKEYS, &seed);
	for (int i = 0; i < NKEYS; i++) {
		int kl = key_of(order[i], k);
		TU_OK(kv_put(db, k, (size_t)kl, "garbage", 7));
	}
	for (int i = 0; i < 50; i++) {
		int kl = sprintf(k, "tmp%d", i);
		TU_OK(kv_put(db, k, (size_t)kl, "x", 1));
	}
	TU_OK(kv_put_ttl(db, "doomed", 6, "soon gone", 9, 100));
	shuffle(order, NKEYS, &seed);
	TU_OK(kv_batch_new(&b));
	for (int i = 0; i < NKEYS; i++) {
		int kl = key_of(order[i], k);
		size_t vl = final_value(order[i], v);
		if (order[i] == 5)
			TU_OK(kv_put_ttl(db, k, (size_t)kl, v, vl, 1000000));
		else if (i % 10 == 0)
			TU_OK(kv_batch_put(b, k, (size_t)kl, v, vl));
		else
			TU_OK(kv_put(db, k, (size_t)kl, v, vl));
	}
	TU_OK(kv_write(db, b));
	kv_batch_free(b);
	for (int i = 0; i < 50; i++) {
		int kl = sprintf(k, "tmp%d", i);
		TU_OK(kv_delete(db, k, (size_t)kl));
	}
	tu_clock_ms += 200; /* "doomed" expires */
	TU_OK(kv_compact(db, NULL));
	struct kv_stats st = { .size = sizeof st };
	TU_OK(kv_stats(db, &st));
	assert_true(st.compressed_values >= NKEYS / 3);
	assert_true(st.compactions == 1);
	kv_close(db);
	return tu_open(dir, o);
}

/* History B: one big uncompressed segment, final values in reverse order. */
static kv_t *build_plain(const char *dir, kv_options *o)
{
	kv_t *db;

	tu_options(o);
	db = tu_open(dir, o);
	for (int i = NKEYS - 1; i >= 0; i--)
		put_final(db, i);
	return db;
}

static void test_equal_live_sets_have_equal_digests(void **state)
{
	char *da = tu_mkdir(), *db_dir = tu_mkdir();
	struct kv_stats sa = { .size = sizeof sa }, sb = { .size = sizeof sb };
	kv_options oa, ob;
	kv_t *a, *b;

	(void)state;
	tu_clock_ms = 1000000;
	a = build_messy(da, &oa);
	b = build_plain(db_dir, &ob);
	/* The histories did differ where it matters. */
	TU_OK(kv_stats(a, &sa));
	TU_OK(kv_stats(b, &sb));
	assert_true(sa.segments > 5);
	assert_int_equal(sb.segments, 1);
	assert_int_equal(sb.compressed_values, 0);

	struct kv_digest x = digest_of(a), y = digest_of(b);
	assert_same(&x, &y);
	assert_int_equal(x.keys, NKEYS);
	assert_true(sum_of(&x) == model_sum(NKEYS));
	assert_int_equal(x.first, 0);
	assert_int_equal(x.last, UINT64_MAX);
	/* Compaction and reopen of B change nothing either. */
	kv_close(b);
	ob.max_file_size = 4096;
	b = tu_open(db_dir, &ob);
	put_final(b, 3); /* rewrites in a new small segment */
	TU_OK(kv_compact(b, NULL));
	y = digest_of(b);
	assert_same(&x, &y);
	kv_close(a);
	kv_close(b);
	tu_rmdir(da);
	tu_rmdir(db_dir);
}

/* KV_SYNC_NONE keeps the newest records in a process buffer: the digest
 * reads them there (under the buffer lock, taken after the write lock). */
static void test_buffered_records_are_in_the_digest(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;

	(void)state;
	tu_options(&o);
	o.sync_mode = KV_SYNC_NONE;
	db = tu_open(dir, &o);
	for (int i = 0; i < 50; i++)
		put_final(db, i);
	assert_true(tu_file_size(tu_seg_path(dir, 1)) < 32 + 50 * 40);
	struct kv_digest d = digest_of(db);
	assert_int_equal(d.keys, 50);
	assert_true(sum_of(&d) == model_sum(50));
	kv_close(db);
	tu_rmdir(dir);
}

static void test_compressed_values_hash_as_plain(void **state)
{
	char *dir = tu_mkdir();
	struct kv_stats st = { .size = sizeof st };
	char v[8192];
	kv_options o;
	kv_t *db;

	(void)state;
	tu_options(&o);
	o.flags |= KV_COMPRESS;
	db = tu_open(dir, &o);
	size_t vl = final_value(7, v); /* 5000 compressible bytes */
	TU_OK(kv_put(db, "big", 3, v, vl));
	TU_OK(kv_stats(db, &st));
	assert_int_equal(st.compressed_values, 1);
	struct kv_digest d = digest_of(db);
	assert_true(sum_of(&d) == pair_hash("big", 3, v, vl));
	assert_int_equal(d.bytes, 3 + vl);
	kv_close(db);
	tu_rmdir(dir);
}

static void test_every_single_change_shows(void **state)
{
	char *dir = tu_mkdir();
	char k[16], v[8192];
	kv_options o;
	kv_t *db;

	(void)state;
	tu_clock_ms = 1000000;
	tu_options(&o);
	db = tu_open(dir, &o);
	for (int i = 0; i < 100; i++)
		put_final(db, i);
	struct kv_digest d0 = digest_of(db), d;

	/* One byte of one value, in a short and in a long value. */
	for (int i = 50; i <= 56; i += 6) {
		int kl = key_of(i, k);
		size_t vl = final_value(i, v);
		v[vl - 1] ^= 1;
		TU_OK(kv_put(db, k, (size_t)kl, v, vl));
		d = digest_of(db);
		assert_false(same_sum(&d, &d0));
		assert_int_equal(d.keys, d0.keys);
		put_final(db, i);
		d = digest_of(db);
		assert_same(&d, &d0);
	}
	/* One key more: the sum moves by exactly that pair's hash. */
	TU_OK(kv_put(db, "extra", 5, "1", 1));
	d = digest_of(db);
	assert_int_equal(d.keys, 101);
	assert_true(sum_of(&d) - sum_of(&d0) == pair_hash("extra", 5, "1", 1));
	TU_OK(kv_delete(db, "extra", 5));
	d = digest_of(db);
	assert_same(&d, &d0);
	/* One key fewer. */
	int kl = key_of(10, k);
	TU_OK(kv_delete(db, k, (size_t)kl));
	d = digest_of(db);
	assert_false(same_sum(&d, &d0));
	assert_int_equal(d.keys, 99);
	put_final(db, 10);
	d = digest_of(db);
	assert_same(&d, &d0);
	/* A TTL alone is not part of the digest; its expiry is. */
	kl = key_of(20, k);
	size_t vl = final_value(20, v);
	TU_OK(kv_put_ttl(db, k, (size_t)kl, v, vl, 1000));
	d = digest_of(db);
	assert_same(&d, &d0);
	tu_clock_ms += 1000;
	d = digest_of(db);
	assert_false(same_sum(&d, &d0));
	assert_int_equal(d.keys, 99);
	assert_true(sum_of(&d0) - sum_of(&d) == pair_hash(k, (size_t)kl, v, vl));
	/* Where the key ends and the value begins is part of the pair. */
	TU_OK(kv_put(db, "ab", 2, "c", 1));
	struct kv_digest e1 = digest_of(db);
	TU_OK(kv_delete(db, "ab", 2));
	TU_OK(kv_put(db, "a", 1, "bc", 2));
	struct kv_digest e2 = digest_of(db);
	assert_false(same_sum(&e1, &e2));
	kv_close(db);
	tu_rmdir(dir);
}

static void test_empty_store_digest_is_zero(void **state)
{
	char *dir = tu_mkdir();
	struct kv_digest d, bk[4];
	kv_options o;
	kv_t *db;

	(void)state;
	tu_options(&o);
	db = tu_open(dir, &o);
	memset(&d, 0xaa, sizeof d);
	TU_OK(kv_digest(db, &d));
	assert_int_equal(d.lo | d.hi | d.keys | d.bytes, 0);
	assert_int_equal(d.first, 0);
	assert_int_equal(d.last, UINT64_MAX);
	/* Every key deleted again: the same zero. */
	TU_OK(tu_put(db, "k", "v"));
	TU_OK(kv_delete(db, "k", 1));
	struct kv_digest e = digest_of(db);
	assert_same(&d, &e);
	TU_OK(kv_digest_buckets(db, 0, UINT64_MAX, 4, bk));
	for (int i = 0; i < 4; i++)
		assert_int_equal(bk[i].lo | bk[i].hi | bk[i].keys, 0);
	kv_close(db);
	tu_rmdir(dir);
}

/* Buckets tile the range, each key is counted in the bucket whose bounds
 * hold its hash, and bucket digests add up to the whole. */
static void test_buckets_tile_the_range_and_add_up(void **state)
{
	char *dir = tu_mkdir();
	struct kv_digest bk[7], whole, sub[10];
	uint64_t count[7] = { 0 };
	char k[16];
	kv_options o;
	kv_t *db;

	(void)state;
	tu_options(&o);
	db = tu_open(dir, &o);
	for (int i = 0; i < NKEYS; i++)
		put_final(db, i);
	whole = digest_of(db);
	TU_OK(kv_digest_buckets(db, 0, UINT64_MAX, 7, bk));
	u128 sum = 0;
	uint64_t keys = 0;
	assert_int_equal(bk[0].first, 0);
	assert_int_equal(bk[6].last, UINT64_MAX);
	for (int i = 0; i < 7; i++) {
		if (i > 0)
			assert_int_equal(bk[i].first, bk[i - 1].last + 1);
		sum += sum_of(&bk[i]);
		keys += bk[i].keys;
	}
	assert_true(sum == sum_of(&whole));
	assert_int_equal(keys, NKEYS);
	for (int i = 0; i < NKEYS; i++) {
		int kl = key_of(i, k);
		uint64_t h = XXH3_64bits(k, (size_t)kl);
		int b = 0;
		while (h > bk[b].last)
			b++;
		count[b]++;
	}
	for (int i = 0; i < 7; i++)
		assert_int_equal(count[i], bk[i].keys);
	/* A range of exactly as many hash values as buckets: one each. */
	TU_OK(kv_digest_buckets(db, 1000, 1009, 10, sub));
	for (int i = 0; i < 10; i++) {
		assert_int_equal(sub[i].first, 1000 + (uint64_t)i);
		assert_int_equal(sub[i].last, 1000 + (uint64_t)i);
	}
	assert_int_equal(kv_digest_buckets(db, 1000, 1009, 11, sub), KV_EINVAL);
	/* Buckets that do not divide the range: [0,3] [4,6] [7,9] of 10
	 * values in 3. Slide a 10-value range over one key's hash, so the key
	 * sits at each offset in turn: the bucket that counts it must be the
	 * one whose bounds hold its hash. */
	uint64_t h = XXH3_64bits("key0001", 7);
	for (uint64_t off = 0; off < 10; off++) {
		TU_OK(kv_digest_buckets(db, h - off, h - off + 9, 3, sub));
		assert_int_equal(sub[0].last - sub[0].first, 3);
		assert_int_equal(sub[1].last - sub[1].first, 2);
		assert_int_equal(sub[2].last - sub[2].first, 2);
		int in = off <= 3 ? 0 : off <= 6 ? 1 : 2;
		for (int i = 0; i < 3; i++)
			assert_int_equal(sub[i].keys, i == in);
		assert_true(h >= sub[in].first && h <= sub[in].last);
	}
	kv_close(db);
	tu_rmdir(dir);
}

/* ---- anti-entropy: drill down by buckets of 16, list small buckets ---- */

#define LEAF 8   /* list a bucket once both sides hold at most this many */

typedef struct pairs {
	int n;
	char key[2 * LEAF][32];
	size_t klen[2 * LEAF];
	u128 h[2 * LEAF];  /* pair hash: equal iff same key and value */
} pairs;

static int collect(void *ctx, const void *k, size_t kl, const void *v,
		   size_t vl)
{
	pairs *p = ctx;

	assert_true(p->n < 2 * LEAF && kl < 32);
	memcpy(p->key[p->n], k, kl);
	p->key[p->n][kl] = 0;
	p->klen[p->n] = kl;
	p->h[p->n++] = pair_hash(k, kl, v, vl);
	return 0;
}

static int has(const pairs *p, const char *k, u128 h)
{
	for (int i = 0; i < p->n; i++)
		if (!strcmp(p->key[i], k))
			return p->h[i] == h;
	return 0;
}

typedef struct found {
	int n;
	char key[8][32];
	int depth;       /* deepest level of buckets reached */
	int calls;       /* kv_digest_buckets calls on each side */
} found;

static void note(found *f, const char *k)
{
	for (int i = 0; i < f->n; i++)
		if (!strcmp(f->key[i], k))
			return;
	assert_true(f->n < 8);
	strcpy(f->key[f->n++], k);
}

/* Lists [first, last] on both sides; a key whose pair is not on the other
 * side (absent, or another value) differs. */
static void compare_leaf(kv_t *a, kv_t *b, const struct kv_digest *da,
			 const struct kv_digest *db_, found *f)
{
	pairs pa = { 0 }, pb = { 0 };

	TU_OK(kv_digest_foreach(a, da->first, da->last, collect, &pa));
	TU_OK(kv_digest_foreach(b, db_->first, db_->last, collect, &pb));
	assert_int_equal(pa.n, da->keys);
	assert_int_equal(pb.n, db_->keys);
	for (int i = 0; i < pa.n; i++)
		if (!has(&pb, pa.key[i], pa.h[i]))
			note(f, pa.key[i]);
	for (int i = 0; i < pb.n; i++)
		if (!has(&pa, pb.key[i], pb.h[i]))
			note(f, pb.key[i]);
}

static void drill(kv_t *a, kv_t *b, uint64_t first, uint64_t last,
		  int depth, found *f)
{
	struct kv_digest da[16], db_[16];
	unsigned n = last - first < 15 ? (unsigned)(last - first + 1) : 16;

	if (depth > f->depth)
		f->depth = depth;
	f->calls++;
	TU_OK(kv_digest_buckets(a, first, last, n, da));
	TU_OK(kv_digest_buckets(b, first, last, n, db_));
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(da[i].first, db_[i].first);
		assert_int_equal(da[i].last, db_[i].last);
		if (same_sum(&da[i], &db_[i]) && da[i].keys == db_[i].keys)
			continue;
		if ((da[i].keys <= LEAF && db_[i].keys <= LEAF) ||
		    da[i].first == da[i].last)
			compare_leaf(a, b, &da[i], &db_[i], f);
		else
			drill(a, b, da[i].first, da[i].last, depth + 1, f);
	}
}

static int found_has(const found *f, const char *k)
{
	for (int i = 0; i < f->n; i++)
		if (!strcmp(f->key[i], k))
			return 1;
	return 0;
}

static void test_drill_down_finds_exactly_the_differing_keys(void **state)
{
	char *da = tu_mkdir(), *dbd = tu_mkdir();
	char k[16];
	kv_options oa, ob;
	found f = { 0 };
	kv_t *a, *b;
	int nk = 3000;

	(void)state;
	tu_options(&oa);
	tu_options(&ob);
	ob.max_file_size = 16384;
	a = tu_open(da, &oa);
	b = tu_open(dbd, &ob);
	for (int i = 0; i < nk; i++) {
		put_final(a, i);
		put_final(b, nk - 1 - i);
	}
	struct kv_digest x = digest_of(a), y = digest_of(b);
	assert_same(&x, &y);
	drill(a, b, 0, UINT64_MAX, 1, &f);
	assert_int_equal(f.n, 0);
	/* Three differences: a value, a key only in b, a key only in a. */
	int kl = key_of(777, k);
	TU_OK(kv_put(b, k, (size_t)kl, "changed", 7));
	TU_OK(kv_put(b, "only-b", 6, "x", 1));
	kl = key_of(1500, k);
	TU_OK(kv_delete(b, k, (size_t)kl));
	x = digest_of(a);
	y = digest_of(b);
	assert_false(same_sum(&x, &y));
	drill(a, b, 0, UINT64_MAX, 1, &f);
	assert_int_equal(f.n, 3);
	assert_true(found_has(&f, "key0777"));
	assert_true(found_has(&f, "only-b"));
	assert_true(found_has(&f, "key1500"));
	/* 3000 keys / 16 / 16 < LEAF: two or three levels, never more. */
	assert_true(f.depth <= 3);
	print_message("drill-down: %d levels, %d bucket calls per side\n",
		      f.depth, f.calls);
	kv_close(a);
	kv_close(b);
	tu_rmdir(da);
	tu_rmdir(dbd);
}

/* A key whose hash lies in a range is listed by kv_digest_foreach for
 * that range only, and its pair hash is what the digest sums. */
static void test_foreach_lists_the_range_only(void **state)
{
	char *dir = tu_mkdir();
	struct kv_digest bk[64];
	kv_options o;
	kv_t *db;
	int total = 0;

	(void)state;
	tu_options(&o);
	db = tu_open(dir, &o);
	for (int i = 0; i < 100; i++)
		put_final(db, i);
	TU_OK(kv_digest_buckets(db, 0, UINT64_MAX, 64, bk));
	for (int i = 0; i < 64; i++) {
		pairs p = { 0 };
		if (bk[i].keys > 2 * LEAF)
			continue;
		TU_OK(kv_digest_foreach(db, bk[i].first, bk[i].last, collect,
					&p));
		assert_int_equal(p.n, bk[i].keys);
		u128 s = 0;
		for (int j = 0; j < p.n; j++) {
			uint64_t h = XXH3_64bits(p.key[j], p.klen[j]);
			assert_true(h >= bk[i].first && h <= bk[i].last);
			s += p.h[j];
		}
		assert_true(s == sum_of(&bk[i]));
		total += p.n;
	}
	assert_true(total >= 90);
	kv_close(db);
	tu_rmdir(dir);
}

static void test_bad_arguments_change_nothing(void **state)
{
	char *dir = tu_mkdir();
	struct kv_digest d[2], keep;
	kv_options o;
	kv_t *db;
	pairs p = { 0 };

	(void)state;
	tu_options(&o);
	db = tu_open(dir, &o);
	TU_OK(tu_put(db, "k", "v"));
	memset(d, 0x5a, sizeof d);
	keep = d[0];
	assert_int_equal(kv_digest(NULL, d), KV_EINVAL);
	assert_non_null(strstr(kv_errmsg(), "kv_digest"));
	assert_int_equal(kv_digest(db, NULL), KV_EINVAL);
	assert_int_equal(kv_digest_buckets(NULL, 0, 9, 1, d), KV_EINVAL);
	assert_int_equal(kv_digest_buckets(db, 0, 9, 1, NULL), KV_EINVAL);
	assert_int_equal(kv_digest_buckets(db, 0, UINT64_MAX, 0, d), KV_EINVAL);
	assert_int_equal(kv_digest_buckets(db, 0, UINT64_MAX,
					   KV_DIGEST_MAX_BUCKETS + 1, d),
			 KV_EINVAL);
	assert_int_equal(kv_digest_buckets(db, 0, UINT64_MAX, UINT32_MAX, d),
			 KV_EINVAL);
	assert_int_equal(kv_digest_buckets(db, 10, 9, 1, d), KV_EINVAL);
	assert_int_equal(kv_digest_buckets(db, 5, 5, 2, d), KV_EINVAL);
	assert_non_null(strstr(kv_errmsg(), "2 buckets"));
	assert_memory_equal(&d[0], &keep, sizeof keep);
	assert_int_equal(kv_digest_foreach(NULL, 0, 1, collect, &p), KV_EINVAL);
	assert_int_equal(kv_digest_foreach(db, 0, 1, NULL, &p), KV_EINVAL);
	assert_int_equal(kv_digest_foreach(db, 2, 1, collect, &p), KV_EINVAL);
	assert_int_equal(p.n, 0);
	/* The largest count is accepted. */
	struct kv_digest *big = calloc(KV_DIGEST_MAX_BUCKETS, sizeof *big);
	assert_non_null(big);
	TU_OK(kv_digest_buckets(db, 0, UINT64_MAX, KV_DIGEST_MAX_BUCKETS, big));
	assert_int_equal(big[KV_DIGEST_MAX_BUCKETS - 1].last, UINT64_MAX);
	free(big);
	kv_close(db);
	tu_rmdir(dir);
}

/* A record damaged after open: the digest fails as a read would, naming
 * the file and the offset, and leaves out zeroed. */
static void test_damaged_record_fails_with_file_and_offset(void **state)
{
	char *dir = tu_mkdir();
	char msg[256];
	struct kv_digest d;
	kv_options o;
	kv_t *db;

	(void)state;
	tu_options(&o);
	db = tu_open(dir, &o);
	TU_OK(tu_put(db, "k1", "value-one"));   /* offset 32, 43 bytes */
	TU_OK(tu_put(db, "k2", "value-two"));   /* offset 75 */
	const char *seg = tu_seg_path(dir, 1);
	tu_poke(seg, 75 + 32 + 2 + 3, tu_peek(seg, 75 + 32 + 2 + 3) ^ 0x20);
	assert_int_equal(kv_digest(db, &d), KV_ECORRUPT);
	snprintf(msg, sizeof msg, "%s", kv_errmsg());
	assert_non_null(strstr(msg, "0000000000000001.seg"));
	assert_non_null(strstr(msg, "offset 75"));
	assert_int_equal(d.lo | d.hi | d.keys | d.last, 0);
	struct kv_digest bk[3];
	assert_int_equal(kv_digest_buckets(db, 0, UINT64_MAX, 3, bk),
			 KV_ECORRUPT);
	kv_close(db);
	tu_rmdir(dir);
}

static void test_read_only_handle_sees_the_same_digest(void **state)
{
	char *dir = tu_mkdir();
	kv_options o, ro;
	kv_t *db, *rd;

	(void)state;
	tu_options(&o);
	db = tu_open(dir, &o);
	for (int i = 0; i < 200; i++)
		put_final(db, i);
	ro = o;
	ro.flags = KV_RDONLY;
	rd = tu_open(dir, &ro);
	struct kv_digest x = digest_of(db), y = digest_of(rd);
	assert_same(&x, &y);
	kv_close(rd);
	kv_close(db);
	tu_rmdir(dir);
}

/* ---- a digest is of one moment, even beside a writer ---- */

#define SNAP_KEYS 1000
#define SNAP_ROUNDS 40

typedef struct writer {
	kv_t *db;
	_Atomic int done;
} writer;

static int snap_key(int i, char *k)
{
	return sprintf(k, "s%04d", i);
}

static int snap_val(int r, char *v)
{
	return sprintf(v, "round-%d", r);
}

/* Round r writes every key with value r, from the last key to the first,
 * against the order of the digest's walk (ids ascending). */
static void *write_rounds(void *arg)
{
	writer *w = arg;
	char k[16], v[16];

	for (int r = 1; r <= SNAP_ROUNDS; r++)
		for (int i = SNAP_KEYS - 1; i >= 0; i--) {
			int kl = snap_key(i, k), vl = snap_val(r, v);
			TU_OK(kv_put(w->db, k, (size_t)kl, v, (size_t)vl));
		}
	w->done = 1;
	return NULL;
}

static int cmp_u128(const void *a, const void *b)
{
	u128 x = *(const u128 *)a, y = *(const u128 *)b;
	return x < y ? -1 : x > y;
}

static u128 snap_hash(int i, int r)
{
	char k[16], v[16];
	int kl = snap_key(i, k), vl = snap_val(r, v);
	return pair_hash(k, (size_t)kl, v, (size_t)vl);
}

static void test_digest_beside_a_writer_is_of_one_moment(void **state)
{
	char *dir = tu_mkdir();
	size_t nstates = (size_t)SNAP_ROUNDS * SNAP_KEYS + 1, ns = 0;
	u128 *states = malloc(nstates * sizeof *states), s = 0;
	u128 rounds[SNAP_ROUNDS + 1];
	writer w = { 0 };
	pthread_t t;
	kv_options o;
	int taken = 0, between = 0;

	(void)state;
	assert_non_null(states);
	tu_options(&o);
	w.db = tu_open(dir, &o);
	for (int i = 0; i < SNAP_KEYS; i++) {
		char k[16];
		int kl = snap_key(i, k);
		TU_OK(kv_put(w.db, k, (size_t)kl, "round-0", 7));
		s += snap_hash(i, 0);
	}
	/* Every state the writer passes through, one put at a time. */
	states[ns++] = rounds[0] = s;
	for (int r = 1; r <= SNAP_ROUNDS; r++) {
		for (int i = SNAP_KEYS - 1; i >= 0; i--) {
			s += snap_hash(i, r) - snap_hash(i, r - 1);
			states[ns++] = s;
		}
		rounds[r] = s;
	}
	qsort(states, ns, sizeof *states, cmp_u128);
	assert_int_equal(pthread_create(&t, NULL, write_rounds, &w), 0);
	do {
		struct kv_digest d = digest_of(w.db);
		u128 x = sum_of(&d);
		assert_int_equal(d.keys, SNAP_KEYS);
		if (!bsearch(&x, states, ns, sizeof x, cmp_u128))
			fail_msg("digest %d matches no state of the store", taken);
		taken++;
		between++;
		for (int r = 0; r <= SNAP_ROUNDS; r++)
			if (x == rounds[r]) {
				between--;
				break;
			}
	} while (!w.done);
	pthread_join(t, NULL);
	print_message("%d digests beside the writer, %d of them mid-round\n",
		      taken, between);
	kv_close(w.db);
	free(states);
	tu_rmdir(dir);
}

/* Compaction moves records while a digest walks: the same pairs, the same
 * digest. */
typedef struct compactor {
	kv_t *db;
	_Atomic int done;
} compactor;

static void *compact_once(void *arg)
{
	compactor *c = arg;
	TU_OK(kv_compact(c->db, NULL));
	c->done = 1;
	return NULL;
}

static void test_digest_beside_a_compaction_is_unchanged(void **state)
{
	char *dir = tu_mkdir();
	compactor c = { 0 };
	kv_options o;
	pthread_t t;
	int taken = 0;

	(void)state;
	tu_options(&o);
	o.max_file_size = 4096;
	c.db = tu_open(dir, &o);
	for (int i = 0; i < 2000; i++)
		TU_OK(kv_put(c.db, "churn", 5, &i, sizeof i));
	for (int i = 0; i < 2000; i++)
		put_final(c.db, i % NKEYS);
	struct kv_digest d0 = digest_of(c.db);
	assert_int_equal(d0.keys, NKEYS + 1);
	assert_int_equal(pthread_create(&t, NULL, compact_once, &c), 0);
	do {
		struct kv_digest d = digest_of(c.db);
		assert_same(&d, &d0);
		taken++;
	} while (!c.done);
	pthread_join(t, NULL);
	struct kv_digest d = digest_of(c.db);
	assert_same(&d, &d0);
	print_message("%d digests beside a compaction\n", taken);
	kv_close(c.db);
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_equal_live_sets_have_equal_digests),
		cmocka_unit_test(test_compressed_values_hash_as_plain),
		cmocka_unit_test(test_buffered_records_are_in_the_digest),
		cmocka_unit_test(test_every_single_change_shows),
		cmocka_unit_test(test_empty_store_digest_is_zero),
		cmocka_unit_test(test_buckets_tile_the_range_and_add_up),
		cmocka_unit_test(test_drill_down_finds_exactly_the_differing_keys),
		cmocka_unit_test(test_foreach_lists_the_range_only),
		cmocka_unit_test(test_bad_arguments_change_nothing),
		cmocka_unit_test(test_damaged_record_fails_with_file_and_offset),
		cmocka_unit_test(test_read_only_handle_sees_the_same_digest),
		cmocka_unit_test(test_digest_beside_a_writer_is_of_one_moment),
		cmocka_unit_test(test_digest_beside_a_compaction_is_unchanged),
	};
	tu_tmpdir_in_memory();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
