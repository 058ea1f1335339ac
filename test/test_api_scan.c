/*
 * test_api_scan.c - kv_scan and kv_foreach through kv.h only.
 *
 * A model holds every key the test may write, with its value, whether it
 * is live and when it expires. The expected answer of a scan is computed
 * from the model by sorting its live keys (qsort, memcmp order with the
 * shorter key first) and filtering by range, prefix and limit; the
 * store's answer must match it pair for pair.
 */
#include "testutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KMAX 16
#define VMAX 160
#define NKEYS 2500

/* Key bytes are drawn from this alphabet so keys share many prefixes and
 * include the bytes where signed/unsigned mistakes show. */
static const uint8_t alphabet[] = { 0x00, 0x01, 'a', 'b', 0x7f, 0x80,
				    0xfe, 0xff };

typedef struct ment {
	uint8_t k[KMAX];
	size_t klen;
	uint8_t v[VMAX];
	size_t vlen;
	int live;
	uint64_t expire;   /* 0 = never */
	unsigned version;
} ment;

typedef struct model {
	ment *e;
	size_t n;
} model;

typedef struct pair {
	uint8_t k[KMAX];
	size_t klen;
	uint8_t v[VMAX];
	size_t vlen;
} pair;

typedef struct got {
	pair *p;
	size_t n, cap;
	size_t stop_after; /* return stop_ret on this call (1-based); 0 none */
	int stop_ret;
	size_t calls;
} got;

static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	if (c)
		return c;
	return (al > bl) - (al < bl);
}

static int collect(void *ctx, const void *key, size_t klen, const void *val,
		   size_t vlen)
{
	got *g = ctx;

	g->calls++;
	if (klen > KMAX || vlen > VMAX)
		fail_msg("scan delivered a pair of %zu/%zu bytes, larger than "
			 "any written", klen, vlen);
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 256;
		g->p = realloc(g->p, g->cap * sizeof *g->p);
		assert_non_null(g->p);
	}
	pair *p = &g->p[g->n++];
	memcpy(p->k, key, klen);
	p->klen = klen;
	if (vlen)
		memcpy(p->v, val, vlen);
	p->vlen = vlen;
	if (g->stop_after && g->calls == g->stop_after)
		return g->stop_ret;
	return 0;
}

/* As collect, but keeps only the key length and the value, for keys too
 * long for a pair. */
static int collect_index(void *ctx, const void *key, size_t klen,
			 const void *val, size_t vlen)
{
	got *g = ctx;

	(void)key;
	if (vlen > VMAX)
		return -1;
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 16;
		g->p = realloc(g->p, g->cap * sizeof *g->p);
		assert_non_null(g->p);
	}
	pair *p = &g->p[g->n++];
	p->klen = klen;
	memcpy(p->v, val, vlen);
	p->vlen = vlen;
	return 0;
}

static void got_reset(got *g)
{
	g->n = 0;
	g->calls = 0;
}

static void got_free(got *g)
{
	free(g->p);
	memset(g, 0, sizeof *g);
}

/* ---- the model ---- */

static void make_value(ment *m, size_t idx)
{
	int n = snprintf((char *)m->v, VMAX, "%zu:%u:", idx, m->version);
	size_t len = (idx * 7 + m->version * 13) % 100;

	/* Some values are empty: vlen 0 must scan like any other. */
	if ((idx + m->version) % 17 == 0) {
		m->vlen = 0;
		return;
	}
	for (size_t i = 0; i < len; i++)
		m->v[(size_t)n + i] = (uint8_t)('A' + (idx + i) % 26);
	m->vlen = (size_t)n + len;
}

static void random_key(uint8_t *k, size_t *klen, size_t minlen,
		       size_t maxlen, uint64_t *s)
{
	*klen = minlen + tu_rand(s) % (maxlen - minlen + 1);
	for (size_t i = 0; i < *klen; i++)
		k[i] = alphabet[tu_rand(s) % sizeof alphabet];
}

static void model_init(model *m, size_t n, uint64_t seed)
{
	uint64_t s = seed;

	m->e = calloc(n, sizeof *m->e);
	assert_non_null(m->e);
	m->n = n;
	for (size_t i = 0; i < n; i++) {
		ment *e = &m->e[i];
		int dup;

		do {
			random_key(e->k, &e->klen, 1, 6, &s);
			dup = 0;
			for (size_t j = 0; j < i && !dup; j++)
				dup = !key_cmp(e->k, e->klen, m->e[j].k,
					       m->e[j].klen);
		} while (dup);
	}
}

static void model_free(model *m)
{
	free(m->e);
	m->e = NULL;
}

static int alive(const ment *e, uint64_t now)
{
	return e->live && (!e->expire || e->expire > now);
}

static void m_put(kv_t *db, model *m, size_t i)
{
	ment *e = &m->e[i];

	e->version++;
	make_value(e, i);
	assert_int_equal(kv_put(db, e->k, e->klen, e->v, e->vlen), 0);
	e->live = 1;
	e->expire = 0;
}

static void m_put_ttl(kv_t *db, model *m, size_t i, uint64_t ttl)
{
	ment *e = &m->e[i];

	e->version++;
	make_value(e, i);
	assert_int_equal(kv_put_ttl(db, e->k, e->klen, e->v, e->vlen, ttl),
			 0);
	e->live = 1;
	e->expire = tu_clock_ms + ttl;
}

static void m_del(kv_t *db, model *m, size_t i)
{
	ment *e = &m->e[i];

	assert_int_equal(kv_delete(db, e->k, e->klen),
			 alive(e, tu_clock_ms) ? 0 : KV_ENOTFOUND);
	e->live = 0;
	e->expire = 0;
}

static const model *sort_model;

static int by_key(const void *a, const void *b)
{
	const ment *x = &sort_model->e[*(const size_t *)a];
	const ment *y = &sort_model->e[*(const size_t *)b];

	return key_cmp(x->k, x->klen, y->k, y->klen);
}

/* Indices of the live keys, sorted; returns the count. */
static size_t sorted_live(const model *m, size_t *out)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n; i++)
		if (alive(&m->e[i], tu_clock_ms))
			out[n++] = i;
	sort_model = m;
	qsort(out, n, sizeof *out, by_key);
	return n;
}

typedef struct query {
	const uint8_t *start;
	size_t slen;
	const uint8_t *end;
	size_t elen;
	const uint8_t *prefix;
	size_t plen;
	size_t limit;
} query;

static size_t expected(const model *m, const size_t *sorted, size_t n,
		       const query *q, size_t *out)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		const ment *e = &m->e[sorted[i]];

		if (q->start && key_cmp(e->k, e->klen, q->start, q->slen) < 0)
			continue;
		if (q->end && key_cmp(e->k, e->klen, q->end, q->elen) >= 0)
			continue;
		if (q->prefix && (e->klen < q->plen ||
				  memcmp(e->k, q->prefix, q->plen)))
			continue;
		if (q->limit && k == q->limit)
			break;
		out[k++] = sorted[i];
	}
	return k;
}

static void print_bytes(const char *what, const uint8_t *p, size_t n)
{
	print_message("  %s:", what);
	if (!p) {
		print_message(" NULL\n");
		return;
	}
	for (size_t i = 0; i < n; i++)
		print_message(" %02x", p[i]);
	print_message(" (%zu bytes)\n", n);
}

/* Runs q against the store and the model and asserts the same answer. */
static void check_query(kv_t *db, const model *m, const size_t *sorted,
			size_t n, const query *q, got *g, size_t *want)
{
	size_t nw = expected(m, sorted, n, q, want);
	int rc;

	got_reset(g);
	rc = kv_scan(db, q->start, q->slen, q->end, q->elen, q->prefix,
		     q->plen, q->limit, collect, g);
	int ok = rc == 0 && g->n == nw;
	for (size_t i = 0; ok && i < nw; i++) {
		const ment *e = &m->e[want[i]];
		const pair *p = &g->p[i];

		ok = p->klen == e->klen && !memcmp(p->k, e->k, e->klen) &&
		     p->vlen == e->vlen && !memcmp(p->v, e->v, e->vlen);
	}
	if (!ok) {
		print_message("scan mismatch: rc %d, %zu pairs, expected %zu\n",
			      rc, g->n, nw);
		print_bytes("start", q->start, q->slen);
		print_bytes("end", q->end, q->elen);
		print_bytes("prefix", q->prefix, q->plen);
		print_message("  limit: %zu\n", q->limit);
		for (size_t i = 0; i < g->n || i < nw; i++) {
			if (i < g->n)
				print_bytes("got", g->p[i].k, g->p[i].klen);
			if (i < nw)
				print_bytes("want", m->e[want[i]].k,
					    m->e[want[i]].klen);
			if (i > 8)
				break;
		}
		fail();
	}
}

/* Checks a full scan, and the full scan's pairs are also every live pair
 * of the model. */
static void check_full(kv_t *db, const model *m)
{
	size_t *sorted = malloc(m->n * sizeof *sorted);
	size_t *want = malloc(m->n * sizeof *want);
	got g = { 0 };
	query q = { 0 };

	assert_non_null(sorted);
	assert_non_null(want);
	size_t n = sorted_live(m, sorted);
	check_query(db, m, sorted, n, &q, &g, want);
	assert_int_equal(g.n, n);
	got_free(&g);
	free(sorted);
	free(want);
}

static kv_t *open_small(const char *dir, uint32_t flags, uint32_t sync_mode)
{
	kv_options o;

	tu_options(&o);
	o.flags |= flags;
	o.sync_mode = sync_mode;
	o.max_file_size = 64 << 10; /* many segments */
	return tu_open(dir, &o);
}

/* Fills the model's store: puts of every key, overwrites, deletes. */
static void populate(kv_t *db, model *m, uint64_t seed)
{
	uint64_t s = seed;

	for (size_t i = 0; i < m->n; i++)
		m_put(db, m, i);
	for (size_t t = 0; t < m->n / 4; t++)
		m_put(db, m, tu_rand(&s) % m->n);
	for (size_t t = 0; t < m->n / 4; t++)
		m_del(db, m, tu_rand(&s) % m->n);
}

/* ---- tests ---- */

static void test_scan_full_matches_sorted_model(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_t *db = open_small(dir, 0, KV_SYNC_WRITE);
	model m;
	got g = { 0 };

	tu_clock_ms = 1000000;
	model_init(&m, NKEYS, 1);
	/* An empty store scans to nothing, successfully. */
	assert_int_equal(kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 0, collect,
				 &g), 0);
	assert_int_equal(g.calls, 0);
	check_full(db, &m);
	/* One key. */
	m_put(db, &m, 0);
	check_full(db, &m);
	populate(db, &m, 2);
	check_full(db, &m);
	/* Each later mutation shows in the next scan (the ordered index
	 * follows the keydir once built). */
	uint64_t s = 3;
	for (int round = 0; round < 20; round++) {
		for (int t = 0; t < 50; t++) {
			size_t i = tu_rand(&s) % m.n;
			if (tu_rand(&s) % 3 == 0)
				m_del(db, &m, i);
			else
				m_put(db, &m, i);
		}
		check_full(db, &m);
	}
	/* Batches: puts and deletes, a key twice in one batch (the last op
	 * wins), delete-then-put and put-then-delete of absent keys. */
	kv_batch *b;
	assert_int_equal(kv_batch_new(&b), 0);
	for (int round = 0; round < 20; round++) {
		kv_batch_clear(b);
		for (int t = 0; t < 40; t++) {
			size_t i = tu_rand(&s) % m.n;
			ment *e = &m.e[i];
			if (tu_rand(&s) % 3 == 0) {
				assert_int_equal(kv_batch_delete(b, e->k,
								 e->klen), 0);
				e->live = 0;
			} else {
				e->version++;
				make_value(e, i);
				assert_int_equal(kv_batch_put(b, e->k, e->klen,
							      e->v, e->vlen),
						 0);
				e->live = 1;
			}
		}
		assert_int_equal(kv_write(db, b), 0);
		check_full(db, &m);
	}
	kv_batch_free(b);
	got_free(&g);
	model_free(&m);
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

static void test_scan_returns_inflated_values_of_compressed_store(
	void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_options o;
	model m;
	struct kv_stats st = { .size = sizeof st };

	/* Values over 16 bytes are stored compressed when that is shorter:
	 * scans must hand out the original bytes. */
	tu_clock_ms = 1000000;
	tu_options(&o);
	o.flags |= KV_COMPRESS;
	o.compress_min = 16;
	o.max_file_size = 64 << 10;
	kv_t *db = tu_open(dir, &o);
	model_init(&m, NKEYS, 29);
	populate(db, &m, 30);
	check_full(db, &m);
	assert_int_equal(kv_stats(db, &st), 0);
	assert_true(st.compressed_values > 100);
	assert_int_equal(kv_close(db), 0);
	db = tu_open(dir, &o);
	check_full(db, &m);
	model_free(&m);
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

/* A bound for a query: NULL, a live or dead model key, a key cut short or
 * made longer, or random bytes (mostly absent), incl. the empty key. */
static const uint8_t *pick_bound(const model *m, uint8_t *buf, size_t *len,
				 uint64_t *s)
{
	const ment *e = &m->e[tu_rand(s) % m->n];

	switch (tu_rand(s) % 6) {
	case 0:
		*len = 0;
		return NULL;
	case 1:
		memcpy(buf, e->k, e->klen);
		*len = e->klen;
		return buf;
	case 2:
		*len = tu_rand(s) % (e->klen + 1);
		memcpy(buf, e->k, *len);
		return buf;
	case 3:
		memcpy(buf, e->k, e->klen);
		buf[e->klen] = alphabet[tu_rand(s) % sizeof alphabet];
		*len = e->klen + 1;
		return buf;
	default:
		random_key(buf, len, 0, 8, s);
		return buf;
	}
}

static void test_scan_ranges_prefixes_limits_match_model(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_t *db = open_small(dir, 0, KV_SYNC_WRITE);
	model m;
	got g = { 0 };
	size_t sorted[NKEYS], want[NKEYS];
	uint8_t sb[KMAX], eb[KMAX], pb[KMAX];
	uint64_t s = 77;

	tu_clock_ms = 1000000;
	model_init(&m, NKEYS, 5);
	populate(db, &m, 6);
	size_t n = sorted_live(&m, sorted);
	size_t empty = 0, nonempty = 0;
	/* Random [start, end) ranges, prefixes and limits, alone and
	 * combined; many end up empty (start >= end, absent prefix). */
	for (int t = 0; t < 1500; t++) {
		query q = { 0 };
		unsigned mix = (unsigned)(t % 8);

		if (mix & 1)
			q.start = pick_bound(&m, sb, &q.slen, &s);
		if (mix & 2)
			q.end = pick_bound(&m, eb, &q.elen, &s);
		if (mix & 4)
			q.prefix = pick_bound(&m, pb, &q.plen, &s);
		if (tu_rand(&s) % 3 == 0)
			q.limit = 1 + tu_rand(&s) % 200;
		check_query(db, &m, sorted, n, &q, &g, want);
		if (g.n)
			nonempty++;
		else
			empty++;
	}
	/* The random bounds covered both kinds of answer. */
	assert_true(nonempty > 500 && empty > 100);
	got_free(&g);
	model_free(&m);
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

static void test_scan_empty_ranges_return_nothing(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_t *db = open_small(dir, 0, KV_SYNC_WRITE);
	got g = { 0 };

	tu_clock_ms = 1000000;
	assert_int_equal(tu_put(db, "a", "1"), 0);
	assert_int_equal(tu_put(db, "b", "2"), 0);
	assert_int_equal(tu_put(db, "c", "3"), 0);
	/* start == end, start > end, end at the first key, end "" (every key
	 * is >= ""), start past the last key, a prefix no key has. */
	static const struct { const char *s, *e, *p; } cases[] = {
		{ "b", "b", NULL }, { "c", "a", NULL }, { NULL, "a", NULL },
		{ NULL, "", NULL }, { "d", NULL, NULL }, { "c\x01", NULL, NULL },
		{ NULL, NULL, "d" }, { NULL, NULL, "ab" }, { "b", NULL, "a" },
		{ NULL, "b", "b" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		got_reset(&g);
		const char *st = cases[i].s, *en = cases[i].e,
			   *pf = cases[i].p;
		assert_int_equal(kv_scan(db, st, st ? strlen(st) : 0, en,
					 en ? strlen(en) : 0, pf,
					 pf ? strlen(pf) : 0, 0, collect, &g),
				 0);
		if (g.calls)
			fail_msg("case %zu: %zu pairs from an empty range", i,
				 g.calls);
	}
	/* And the non-empty neighbours, to show the store is not empty:
	 * [b, c) is exactly b; prefix "" is everything. */
	got_reset(&g);
	assert_int_equal(kv_scan(db, "b", 1, "c", 1, NULL, 0, 0, collect, &g),
			 0);
	assert_int_equal(g.n, 1);
	assert_memory_equal(g.p[0].k, "b", 1);
	assert_memory_equal(g.p[0].v, "2", 1);
	got_reset(&g);
	assert_int_equal(kv_scan(db, NULL, 0, NULL, 0, "", 0, 0, collect, &g),
			 0);
	assert_int_equal(g.n, 3);
	got_free(&g);
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

static void test_scan_prefixes_with_ff_bytes_and_whole_keys(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_t *db = open_small(dir, 0, KV_SYNC_WRITE);
	model m;
	got g = { 0 };
	size_t sorted[NKEYS], want[NKEYS];

	tu_clock_ms = 1000000;
	model_init(&m, NKEYS, 9);
	populate(db, &m, 10);
	size_t n = sorted_live(&m, sorted);
	/* Prefixes of 0xff bytes: the naive "increment the last byte" upper
	 * bound overflows on them. */
	static const struct { const char *p; size_t len; } fixed[] = {
		{ "\xff", 1 }, { "\xff\xff", 2 }, { "\xff\xff\xff", 3 },
		{ "a\xff", 2 }, { "\x00\xff", 2 }, { "\xff\x00", 2 },
		{ "\xfe\xff", 2 }, { "\x7f\xff", 2 }, { "\x00", 1 },
		{ "\x00\x00", 2 }, { "\xff\xff\xff\xff\xff\xff\xff", 7 },
	};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		query q = { .prefix = (const uint8_t *)fixed[i].p,
			    .plen = fixed[i].len };
		check_query(db, &m, sorted, n, &q, &g, want);
		if (i == 0)
			assert_true(g.n > 100); /* many keys start with ff */
		/* The same prefix with a limit, and with a start inside it. */
		q.limit = 3;
		check_query(db, &m, sorted, n, &q, &g, want);
		q.limit = 0;
		q.start = q.prefix;
		q.slen = q.plen;
		check_query(db, &m, sorted, n, &q, &g, want);
	}
	/* Every prefix of 300 model keys, up to and including the whole
	 * key (which then matches itself and the longer keys it begins). */
	for (size_t i = 0; i < 300; i++) {
		const ment *e = &m.e[i * 7 % m.n];
		for (size_t len = 1; len <= e->klen; len++) {
			query q = { .prefix = e->k, .plen = len };
			check_query(db, &m, sorted, n, &q, &g, want);
		}
	}
	got_free(&g);
	model_free(&m);
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

static void test_scan_limit_returns_exactly_limit_pairs(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_t *db = open_small(dir, 0, KV_SYNC_WRITE);
	model m;
	got g = { 0 };
	size_t sorted[NKEYS], want[NKEYS];
	uint64_t s = 4;

	tu_clock_ms = 1000000;
	model_init(&m, NKEYS, 11);
	populate(db, &m, 12);
	size_t n = sorted_live(&m, sorted);
	assert_true(n > 300);
	/* Limits around the scan's internal window size (128) and around the
	 * number of live keys, so both "exactly limit" and "fewer at the
	 * end" happen. */
	const size_t limits[] = { 1, 2, 63, 64, 65, 127, 128, 129, 300,
				  n - 1, n, n + 1, n + 1000 };
	for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
		query q = { .limit = limits[i] };
		check_query(db, &m, sorted, n, &q, &g, want);
		assert_int_equal(g.n, limits[i] < n ? limits[i] : n);
	}
	/* From a start near the end: fewer than limit remain. */
	for (size_t back = 1; back < 100; back += 7) {
		const ment *e = &m.e[sorted[n - back]];
		query q = { .start = e->k, .slen = e->klen, .limit = 50 };
		check_query(db, &m, sorted, n, &q, &g, want);
		assert_int_equal(g.n, back < 50 ? back : 50);
	}
	/* Random starts and limits. */
	for (int t = 0; t < 200; t++) {
		const ment *e = &m.e[sorted[tu_rand(&s) % n]];
		query q = { .start = e->k, .slen = e->klen,
			    .limit = 1 + tu_rand(&s) % 150 };
		check_query(db, &m, sorted, n, &q, &g, want);
	}
	got_free(&g);
	model_free(&m);
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

static void test_scan_start_and_prefix_combined(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_t *db = open_small(dir, 0, KV_SYNC_WRITE);
	model m;
	got g = { 0 };
	size_t sorted[NKEYS], want[NKEYS];
	uint8_t sb[KMAX];
	uint64_t s = 8;

	tu_clock_ms = 1000000;
	model_init(&m, NKEYS, 13);
	populate(db, &m, 14);
	size_t n = sorted_live(&m, sorted);
	for (int t = 0; t < 1000; t++) {
		const ment *e = &m.e[sorted[tu_rand(&s) % n]];
		size_t plen = 1 + tu_rand(&s) % (e->klen < 3 ? e->klen : 3);
		query q = { .prefix = e->k, .plen = plen, .start = sb };

		/* The start relative to the prefix: a prefix of it, the
		 * prefix itself, inside its range, before it, after it. */
		switch (t % 5) {
		case 0:
			q.slen = tu_rand(&s) % (plen + 1);
			memcpy(sb, e->k, q.slen);
			break;
		case 1:
			q.slen = plen;
			memcpy(sb, e->k, plen);
			break;
		case 2:
			memcpy(sb, e->k, plen);
			random_key(sb + plen, &q.slen, 0, 4, &s);
			q.slen += plen;
			break;
		case 3:
			memcpy(sb, e->k, plen);
			q.slen = plen;
			if (sb[plen - 1] > 0)
				sb[plen - 1]--;
			else
				q.slen--;
			break;
		default:
			memcpy(sb, e->k, plen);
			q.slen = plen;
			if (sb[plen - 1] < 0xff)
				sb[plen - 1]++;
			else
				sb[q.slen++] = 0xff;
			break;
		}
		if (tu_rand(&s) % 2)
			q.limit = 1 + tu_rand(&s) % 20;
		check_query(db, &m, sorted, n, &q, &g, want);
	}
	got_free(&g);
	model_free(&m);
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

static void test_scan_callback_nonzero_stops_and_is_returned(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_t *db = open_small(dir, 0, KV_SYNC_WRITE);
	model m;
	got g = { 0 };
	size_t sorted[NKEYS];

	tu_clock_ms = 1000000;
	model_init(&m, 500, 15);
	for (size_t i = 0; i < m.n; i++)
		m_put(db, &m, i);
	size_t n = sorted_live(&m, sorted);
	static const struct { size_t after; int ret; } cases[] = {
		{ 1, 1 }, { 1, -1 }, { 5, 7 }, { 64, -42 }, { 65, INT_MAX },
		{ 128, INT_MIN }, { 500, 3 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		got_reset(&g);
		g.stop_after = cases[i].after;
		g.stop_ret = cases[i].ret;
		assert_int_equal(kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 0,
					 collect, &g), cases[i].ret);
		/* No call after the one that said stop. */
		assert_int_equal(g.calls, cases[i].after);
		for (size_t j = 0; j < g.n; j++)
			assert_int_equal(key_cmp(g.p[j].k, g.p[j].klen,
						 m.e[sorted[j]].k,
						 m.e[sorted[j]].klen), 0);
		/* The same through kv_foreach. */
		got_reset(&g);
		assert_int_equal(kv_foreach(db, collect, &g), cases[i].ret);
		assert_int_equal(g.calls, cases[i].after);
	}
	assert_int_equal(n, 500);
	/* A stop on a pair the limit would have ended on anyway. */
	got_reset(&g);
	g.stop_after = 10;
	g.stop_ret = 9;
	assert_int_equal(kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 10, collect,
				 &g), 9);
	assert_int_equal(g.calls, 10);
	got_free(&g);
	model_free(&m);
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

/* ---- writes from inside the callback ---- */

typedef struct wctx {
	kv_t *db;
	size_t nkeys;          /* keys "m%05zu"; the even ones exist first */
	uint8_t *seen;         /* times each key was delivered */
	uint8_t *exists;       /* the key has a live value now */
	uint8_t *written;      /* the key was ever written */
	uint8_t *was_deleted;  /* deleted at some point during the scan */
	unsigned *version;     /* newest value version of each key */
	uint8_t last[KMAX];
	size_t last_len;
	int bad;
} wctx;

static void wkey(char *buf, size_t i)
{
	snprintf(buf, KMAX, "m%05u", (unsigned)(i % 100000));
}

static void wval(char *buf, size_t cap, size_t i, unsigned version)
{
	snprintf(buf, cap, "val-%zu-%u-%0*u", i, version, (int)(i % 40), 7u);
}

static void w_put(wctx *w, size_t i)
{
	char k[KMAX], v[VMAX];

	wkey(k, i);
	wval(v, sizeof v, i, ++w->version[i]);
	if (kv_put(w->db, k, 6, v, strlen(v)))
		w->bad++;
	w->exists[i] = w->written[i] = 1;
}

static void w_del(wctx *w, size_t i)
{
	char k[KMAX];

	wkey(k, i);
	if (kv_delete(w->db, k, 6) != (w->exists[i] ? 0 : KV_ENOTFOUND))
		w->bad++;
	w->exists[i] = 0;
	w->was_deleted[i] = 1;
}

static int writing_cb(void *ctx, const void *key, size_t klen,
		      const void *val, size_t vlen)
{
	wctx *w = ctx;
	char k[KMAX], v[VMAX];

	/* Strictly increasing: nothing is delivered twice or out of order,
	 * and keys written behind the cursor never show. */
	if (w->last_len && key_cmp(key, klen, w->last, w->last_len) <= 0)
		fail_msg("scan went backwards or repeated a key");
	assert_int_equal(klen, 6);
	memcpy(w->last, key, klen);
	w->last_len = klen;
	memcpy(k, key, 6);
	k[6] = 0;
	assert_int_equal(k[0], 'm');
	size_t i = (size_t)strtoul(k + 1, NULL, 10);
	assert_true(i < w->nkeys);
	/* A delivered key was written, with one of its own values (the
	 * callback may have overwritten it since the scan fetched it). */
	assert_true(w->written[i]);
	int match = 0;
	for (unsigned ver = 1; ver <= w->version[i] && !match; ver++) {
		wval(v, sizeof v, i, ver);
		match = vlen == strlen(v) && !memcmp(val, v, vlen);
	}
	if (!match)
		fail_msg("key %zu delivered with a value never written", i);
	w->seen[i]++;

	/* Insert the odd key just ahead, overwrite one further ahead,
	 * delete one further still, and overwrite one behind the cursor. */
	if (i + 1 < w->nkeys && !w->written[i + 1])
		w_put(w, i + 1);
	if (i + 6 < w->nkeys && w->exists[i + 6])
		w_put(w, i + 6);
	if (i % 3 == 0 && i + 10 < w->nkeys && w->exists[i + 10])
		w_del(w, i + 10);
	if (i >= 3)
		w_put(w, i - 3);
	/* A read from inside the callback sees the store as it is now. */
	if (w->exists[i]) {
		void *cur = NULL;
		size_t clen = 0;

		wval(v, sizeof v, i, w->version[i]);
		if (kv_get(w->db, k, 6, &cur, &clen) || clen != strlen(v) ||
		    memcmp(cur, v, clen))
			w->bad++;
		kv_free(cur);
	}
	return 0;
}

static void run_writing_scan(uint32_t sync_mode)
{
	char *dir = tu_mkdir();
	kv_options o;
	wctx w = { 0 };
	char k[KMAX], v[VMAX];
	struct kv_stats st0 = { .size = sizeof st0 }, st1 = st0;

	tu_options(&o);
	o.sync_mode = sync_mode;
	o.max_file_size = 16 << 10; /* the callback's writes roll segments */
	kv_t *db = tu_open(dir, &o);
	w.db = db;
	w.nkeys = 4000;
	w.seen = calloc(w.nkeys, 1);
	w.exists = calloc(w.nkeys, 1);
	w.written = calloc(w.nkeys, 1);
	w.was_deleted = calloc(w.nkeys, 1);
	w.version = calloc(w.nkeys, sizeof *w.version);
	assert_true(w.seen && w.exists && w.written && w.was_deleted &&
		    w.version);
	for (size_t i = 0; i < w.nkeys; i += 2)
		w_put(&w, i);
	assert_int_equal(w.bad, 0);
	assert_int_equal(kv_stats(db, &st0), 0);
	assert_int_equal(kv_scan(db, "m", 1, NULL, 0, NULL, 0, 0, writing_cb,
				 &w), 0);
	assert_int_equal(w.bad, 0);
	/* Every key that lived throughout the scan was seen exactly once. */
	size_t throughout = 0;
	for (size_t i = 0; i < w.nkeys; i += 2) {
		if (w.was_deleted[i])
			continue;
		throughout++;
		if (w.seen[i] != 1)
			fail_msg("key %zu, live throughout, seen %u times", i,
				 w.seen[i]);
	}
	assert_true(throughout > w.nkeys / 4);
	/* The writes all landed: every key reads as the model says, and a
	 * new scan sees exactly the live ones. */
	size_t live = 0;
	for (size_t i = 0; i < w.nkeys; i++) {
		wkey(k, i);
		assert_int_equal(kv_exists(db, k, 6),
				 w.exists[i] ? 0 : KV_ENOTFOUND);
		if (w.exists[i]) {
			wval(v, sizeof v, i, w.version[i]);
			tu_expect(db, k, v);
		}
		live += w.exists[i];
	}
	got g = { 0 };
	assert_int_equal(kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 0, collect,
				 &g), 0);
	assert_int_equal(g.n, live);
	/* Segments rolled over while the scan ran. */
	assert_int_equal(kv_stats(db, &st1), 0);
	assert_true(st1.segments > st0.segments + 3);
	got_free(&g);
	free(w.seen);
	free(w.exists);
	free(w.written);
	free(w.was_deleted);
	free(w.version);
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

static void test_scan_callback_that_writes_sees_live_keys_once(void **state)
{
	(void)state;
	tu_clock_ms = 1000000;
	run_writing_scan(KV_SYNC_WRITE);
	run_writing_scan(KV_SYNC_NONE);
}

static void test_scan_after_deletes_overwrites_and_reopen(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_t *db = open_small(dir, 0, KV_SYNC_WRITE);
	model m;
	uint64_t s = 21;

	tu_clock_ms = 1000000;
	model_init(&m, NKEYS, 17);
	populate(db, &m, 18);
	check_full(db, &m);
	/* Delete everything, then bring some back: the index must forget
	 * and relearn. */
	for (size_t i = 0; i < m.n; i++)
		if (m.e[i].live)
			m_del(db, &m, i);
	check_full(db, &m);
	for (size_t i = 0; i < m.n; i += 3)
		m_put(db, &m, i);
	check_full(db, &m);
	assert_int_equal(kv_close(db), 0);

	/* Reopen: the index is rebuilt from the log. */
	db = open_small(dir, 0, KV_SYNC_WRITE);
	check_full(db, &m);
	for (int t = 0; t < 1000; t++) {
		size_t i = tu_rand(&s) % m.n;
		if (tu_rand(&s) % 4 == 0)
			m_del(db, &m, i);
		else
			m_put(db, &m, i);
	}
	check_full(db, &m);
	assert_int_equal(kv_close(db), 0);

	/* Reopen without scanning first, write, then scan: the lazily built
	 * index must include writes made before it was built. */
	db = open_small(dir, 0, KV_SYNC_WRITE);
	for (int t = 0; t < 300; t++) {
		size_t i = tu_rand(&s) % m.n;
		if (tu_rand(&s) % 4 == 0)
			m_del(db, &m, i);
		else
			m_put(db, &m, i);
	}
	check_full(db, &m);
	assert_int_equal(kv_close(db), 0);

	/* A read-only handle scans the same. */
	kv_options o;
	kv_options_init(&o);
	o.flags = KV_RDONLY;
	o.clock = tu_clock;
	db = tu_open(dir, &o);
	check_full(db, &m);
	assert_int_equal(kv_close(db), 0);
	model_free(&m);
	tu_rmdir(dir);
}

static void test_scan_skips_expired_keys_and_they_do_not_count(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_t *db = open_small(dir, 0, KV_SYNC_WRITE);
	model m;
	got g = { 0 };
	size_t sorted[NKEYS], want[NKEYS];
	char k[KMAX];

	tu_clock_ms = 1000000;
	m.n = 400;
	m.e = calloc(m.n, sizeof *m.e);
	assert_non_null(m.e);
	/* Keys t000..t399 in order. t050..t199 expire after 1 s: a run of
	 * 150 expired keys, longer than a scan window; every 7th other key
	 * expires after 5 s. */
	for (size_t i = 0; i < m.n; i++) {
		snprintf(k, sizeof k, "t%03u", (unsigned)(i % 1000));
		memcpy(m.e[i].k, k, 4);
		m.e[i].klen = 4;
		if (i >= 50 && i < 200)
			m_put_ttl(db, &m, i, 1000);
		else if (i % 7 == 0)
			m_put_ttl(db, &m, i, 5000);
		else
			m_put(db, &m, i);
	}
	check_full(db, &m);
	size_t n = sorted_live(&m, sorted);
	assert_int_equal(n, 400);

	tu_clock_ms += 1001;
	n = sorted_live(&m, sorted);
	assert_int_equal(n, 250);
	check_full(db, &m);
	/* A limit counts live pairs only: 60 from the start are t000..t049
	 * and then the first 10 after the expired run. */
	query q = { .limit = 60 };
	check_query(db, &m, sorted, n, &q, &g, want);
	assert_int_equal(g.n, 60);
	assert_memory_equal(g.p[49].k, "t049", 4);
	assert_memory_equal(g.p[50].k, "t200", 4);
	/* Limits that end inside, at and after the expired run, and a start
	 * inside it. */
	for (size_t lim = 1; lim < 120; lim += 3) {
		query q2 = { .limit = lim, .start = (const uint8_t *)"t040",
			     .slen = 4 };
		check_query(db, &m, sorted, n, &q2, &g, want);
		assert_int_equal(g.n, lim);
		q2.start = (const uint8_t *)"t100";
		check_query(db, &m, sorted, n, &q2, &g, want);
		assert_int_equal(g.n, lim);
	}
	/* A range made only of expired keys is empty. */
	query q3 = { .start = (const uint8_t *)"t050", .slen = 4,
		     .end = (const uint8_t *)"t200", .elen = 4 };
	check_query(db, &m, sorted, n, &q3, &g, want);
	assert_int_equal(g.n, 0);

	/* kv_foreach skips them too. */
	got_reset(&g);
	assert_int_equal(kv_foreach(db, collect, &g), 0);
	assert_int_equal(g.n, 250);
	for (size_t i = 0; i < g.n; i++) {
		char num[4] = { 0 };

		assert_int_equal(g.p[i].klen, 4);
		memcpy(num, g.p[i].k + 1, 3);
		size_t idx = (size_t)strtoul(num, NULL, 10);
		assert_true(idx < m.n);
		assert_true(alive(&m.e[idx], tu_clock_ms));
		assert_int_equal(g.p[i].vlen, m.e[idx].vlen);
		assert_memory_equal(g.p[i].v, m.e[idx].v, m.e[idx].vlen);
	}

	/* The second wave expires; a put revives one expired key. */
	tu_clock_ms += 4000;
	m_put(db, &m, 100);
	n = sorted_live(&m, sorted);
	check_full(db, &m);
	query q4 = { .limit = 5, .start = (const uint8_t *)"t050", .slen = 4 };
	check_query(db, &m, sorted, n, &q4, &g, want);
	assert_memory_equal(g.p[0].k, "t100", 4);

	/* Keys that expire only after a reopen. */
	for (size_t i = 300; i < 320; i++)
		m_put_ttl(db, &m, i, 100000);
	check_full(db, &m);
	/* After reopen the expired keys stay gone, and the ones still alive
	 * then expire on the clock as before. */
	assert_int_equal(kv_close(db), 0);
	db = open_small(dir, 0, KV_SYNC_WRITE);
	check_full(db, &m);
	tu_clock_ms += 100001;
	n = sorted_live(&m, sorted);
	check_full(db, &m);
	query q5 = { .start = (const uint8_t *)"t299", .slen = 4, .limit = 3 };
	check_query(db, &m, sorted, n, &q5, &g, want);
	assert_memory_equal(g.p[0].k, "t299", 4);
	assert_memory_equal(g.p[1].k, "t320", 4);
	got_free(&g);
	model_free(&m);
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

static void test_scan_on_unordered_store_is_not_supported(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_t *db = open_small(dir, KV_UNORDERED, KV_SYNC_WRITE);
	got g = { 0 };

	assert_int_equal(tu_put(db, "a", "1"), 0);
	assert_int_equal(tu_put(db, "b", "2"), 0);
	assert_int_equal(kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 0, collect,
				 &g), KV_ENOTSUP);
	assert_int_equal(kv_scan(db, "a", 1, "z", 1, "a", 1, 5, collect, &g),
			 KV_ENOTSUP);
	assert_int_equal(g.calls, 0);
	/* kv_foreach needs no order and still works. */
	assert_int_equal(kv_foreach(db, collect, &g), 0);
	assert_int_equal(g.n, 2);
	got_free(&g);
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

static void test_scan_bad_arguments_return_einval(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_t *db = open_small(dir, 0, KV_SYNC_WRITE);
	got g = { 0 };

	assert_int_equal(tu_put(db, "a", "1"), 0);
	assert_int_equal(kv_scan(NULL, NULL, 0, NULL, 0, NULL, 0, 0, collect,
				 &g), KV_EINVAL);
	assert_int_equal(kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 0, NULL, &g),
			 KV_EINVAL);
	assert_int_equal(kv_scan(db, NULL, 1, NULL, 0, NULL, 0, 0, collect,
				 &g), KV_EINVAL);
	assert_int_equal(kv_scan(db, NULL, 0, NULL, 3, NULL, 0, 0, collect,
				 &g), KV_EINVAL);
	assert_int_equal(kv_scan(db, NULL, 0, NULL, 0, NULL, 2, 0, collect,
				 &g), KV_EINVAL);
	assert_int_equal(kv_foreach(db, NULL, &g), KV_EINVAL);
	assert_int_equal(kv_foreach(NULL, collect, &g), KV_EINVAL);
	assert_int_equal(g.calls, 0);
	/* The store is fine afterwards. */
	assert_int_equal(kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 0, collect,
				 &g), 0);
	assert_int_equal(g.n, 1);
	got_free(&g);
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

/* Keys at the 65535-byte limit, differing only in their last bytes, and
 * a 65535-byte prefix. */
static void test_scan_orders_keys_of_maximum_length(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_t *db = open_small(dir, 0, KV_SYNC_WRITE);
	const size_t max = KV_MAX_KEY;
	uint8_t *k = malloc(max);
	got g = { 0 };

	assert_non_null(k);
	/* Written out of order: 0xff*65535, 0xff*65534 + 0x00, 0xff*65534,
	 * 0xff*65534 + 0x80, 0xff*65533 + 0x00 + 0xff. */
	static const struct { size_t len; int last; int second; } ks[] = {
		{ 65535, 0xff, 0xff }, { 65535, 0x00, 0xff }, { 65534, -1, 0xff },
		{ 65535, 0x80, 0xff }, { 65535, 0xff, 0x00 },
	};
	/* Their byte order: index 4, 2, 1, 3, 0. */
	static const size_t sorted[] = { 4, 2, 1, 3, 0 };
	for (size_t i = 0; i < 5; i++) {
		memset(k, 0xff, max);
		if (ks[i].last >= 0)
			k[max - 1] = (uint8_t)ks[i].last;
		k[max - 2] = (uint8_t)ks[i].second;
		uint8_t v = (uint8_t)i;
		assert_int_equal(kv_put(db, k, ks[i].len, &v, 1), 0);
	}
	/* Each value is the key's index; collect_index keeps it and the
	 * key's length. */
	assert_int_equal(kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 0,
				 collect_index, &g), 0);
	assert_int_equal(g.n, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(g.p[i].v[0], sorted[i]);
		assert_int_equal(g.p[i].klen, ks[sorted[i]].len);
	}
	/* Prefix of 65534 0xff bytes: all but index 4. */
	memset(k, 0xff, max);
	got_reset(&g);
	assert_int_equal(kv_scan(db, NULL, 0, NULL, 0, k, max - 1, 0,
				 collect_index, &g), 0);
	assert_int_equal(g.n, 4);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(g.p[i].v[0], sorted[i + 1]);
	/* A whole 65535-byte key as prefix matches only itself; as start
	 * with limit 1 it is the first pair. */
	got_reset(&g);
	assert_int_equal(kv_scan(db, NULL, 0, NULL, 0, k, max, 0,
				 collect_index, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.p[0].v[0], 0);
	got_reset(&g);
	k[max - 1] = 0x80;
	assert_int_equal(kv_scan(db, k, max, NULL, 0, NULL, 0, 1,
				 collect_index, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.p[0].v[0], 3);
	got_free(&g);
	free(k);
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

/* Scans and walks started from inside a scan's callback. */
typedef struct nest {
	kv_t *db;
	size_t calls;
	int bad;
} nest;

static int count_cb(void *ctx, const void *key, size_t klen, const void *val,
		    size_t vlen)
{
	(void)key;
	(void)klen;
	(void)val;
	(void)vlen;
	(*(size_t *)ctx)++;
	return 0;
}

static int nesting_cb(void *ctx, const void *key, size_t klen,
		      const void *val, size_t vlen)
{
	nest *ns = ctx;
	got inner = { 0 };
	size_t all = 0;

	ns->calls++;
	/* A scan from this key with limit 2 starts with this very pair. */
	if (kv_scan(ns->db, key, klen, NULL, 0, NULL, 0, 2, collect, &inner) ||
	    inner.n < 1 || inner.p[0].klen != klen ||
	    memcmp(inner.p[0].k, key, klen) || inner.p[0].vlen != vlen ||
	    memcmp(inner.p[0].v, val, vlen))
		ns->bad++;
	got_free(&inner);
	if (ns->calls % 50 == 1 &&
	    (kv_foreach(ns->db, count_cb, &all) || all != 300))
		ns->bad++;
	return 0;
}

static void test_scan_callback_may_scan_and_walk_the_store(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_t *db = open_small(dir, 0, KV_SYNC_WRITE);
	model m;
	nest ns = { .db = db };

	tu_clock_ms = 1000000;
	model_init(&m, 300, 23);
	for (size_t i = 0; i < m.n; i++)
		m_put(db, &m, i);
	assert_int_equal(kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 0, nesting_cb,
				 &ns), 0);
	assert_int_equal(ns.calls, 300);
	assert_int_equal(ns.bad, 0);
	/* And the other way round: the first scan of a fresh handle made
	 * from inside kv_foreach's callback. */
	assert_int_equal(kv_close(db), 0);
	db = open_small(dir, 0, KV_SYNC_WRITE);
	ns = (nest){ .db = db };
	assert_int_equal(kv_foreach(db, nesting_cb, &ns), 0);
	assert_int_equal(ns.calls, 300);
	assert_int_equal(ns.bad, 0);
	model_free(&m);
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

static int by_pair_key(const void *a, const void *b)
{
	const pair *x = a, *y = b;

	return key_cmp(x->k, x->klen, y->k, y->klen);
}

static void test_foreach_sees_every_live_pair_once(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_t *db = open_small(dir, 0, KV_SYNC_WRITE);
	model m;
	got g = { 0 };
	size_t sorted[NKEYS];

	tu_clock_ms = 1000000;
	model_init(&m, NKEYS, 19);
	assert_int_equal(kv_foreach(db, collect, &g), 0);
	assert_int_equal(g.calls, 0);
	for (int round = 0; round < 3; round++) {
		populate(db, &m, 20 + (uint64_t)round);
		if (round == 2) {
			/* And after reopen. */
			assert_int_equal(kv_close(db), 0);
			db = open_small(dir, 0, KV_SYNC_WRITE);
		}
		got_reset(&g);
		assert_int_equal(kv_foreach(db, collect, &g), 0);
		size_t n = sorted_live(&m, sorted);
		assert_int_equal(g.n, n);
		/* In no promised order: sort what came and compare. */
		qsort(g.p, g.n, sizeof *g.p, by_pair_key);
		for (size_t i = 0; i < n; i++) {
			const ment *e = &m.e[sorted[i]];
			assert_int_equal(g.p[i].klen, e->klen);
			assert_memory_equal(g.p[i].k, e->k, e->klen);
			assert_int_equal(g.p[i].vlen, e->vlen);
			assert_memory_equal(g.p[i].v, e->v, e->vlen);
		}
	}
	got_free(&g);
	model_free(&m);
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_full_matches_sorted_model),
		cmocka_unit_test(test_scan_returns_inflated_values_of_compressed_store),
		cmocka_unit_test(test_scan_ranges_prefixes_limits_match_model),
		cmocka_unit_test(test_scan_empty_ranges_return_nothing),
		cmocka_unit_test(test_scan_prefixes_with_ff_bytes_and_whole_keys),
		cmocka_unit_test(test_scan_limit_returns_exactly_limit_pairs),
		cmocka_unit_test(test_scan_start_and_prefix_combined),
		cmocka_unit_test(test_scan_callback_nonzero_stops_and_is_returned),
		cmocka_unit_test(test_scan_callback_that_writes_sees_live_keys_once),
		cmocka_unit_test(test_scan_after_deletes_overwrites_and_reopen),
		cmocka_unit_test(test_scan_skips_expired_keys_and_they_do_not_count),
		cmocka_unit_test(test_scan_on_unordered_store_is_not_supported),
		cmocka_unit_test(test_scan_bad_arguments_return_einval),
		cmocka_unit_test(test_scan_orders_keys_of_maximum_length),
		cmocka_unit_test(test_scan_callback_may_scan_and_walk_the_store),
		cmocka_unit_test(test_foreach_sees_every_live_pair_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
