/*
 * test_order.c - the B+tree behind kv_scan, checked against a sorted model.
 *
 * Keys live in a test-owned table indexed by id, as the keydir's arena
 * would; the comparison callback fails the test if the tree ever compares
 * an id it does not hold (a stale separator after a remove).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "order.h"
#include "allocfail.h"

#define NONE UINT32_MAX

/*
 * Building both files with e.g. -DKV_ORDER_LEAF_CAP=6 -DKV_ORDER_INNER_CAP=6
 * makes every case run on tiny nodes and deep trees; the memory and height
 * figures below assume the default fanout, so such builds skip them.
 */
#ifdef KV_ORDER_LEAF_CAP
#define SIZE_CHECKS 0
#else
#define SIZE_CHECKS 1
#endif

struct world {
	uint32_t nids;
	const unsigned char **kp;   /* key bytes by id */
	size_t *kl;                 /* key length by id */
	unsigned char *live;        /* id is in the tree */
	uint64_t ncmp;
	kv__order o;
};

static int key_cmp(const unsigned char *a, size_t al, const unsigned char *b,
		   size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	if (c)
		return c;
	return (al > bl) - (al < bl);
}

static int world_cmp(void *ctx, uint32_t id, const void *key, size_t klen)
{
	struct world *w = ctx;

	assert_true(id < w->nids);
	assert_true(w->live[id]);
	w->ncmp++;
	return key_cmp(w->kp[id], w->kl[id], key, klen);
}

/* The tree asks for an id's key while inserting it, before ins() marks
 * it live, so this checks only the range. */
static const uint8_t *world_key(void *ctx, uint32_t id, size_t *klen)
{
	struct world *w = ctx;

	assert_true(id < w->nids);
	*klen = w->kl[id];
	return w->kp[id];
}

static void world_init(struct world *w, uint32_t nids)
{
	w->nids = nids;
	w->kp = calloc(nids, sizeof(w->kp[0]));
	w->kl = calloc(nids, sizeof(w->kl[0]));
	w->live = calloc(nids, 1);
	assert_non_null(w->kp);
	assert_non_null(w->kl);
	assert_non_null(w->live);
	w->ncmp = 0;
	kv__order_init(&w->o, world_cmp, w);
	w->o.key = world_key;
}

static void world_free(struct world *w)
{
	kv__order_free(&w->o);
	assert_int_equal(w->o.bytes, 0);
	assert_null(w->o.root);
	free(w->kp);
	free(w->kl);
	free(w->live);
}

static void ins(struct world *w, uint32_t id)
{
	assert_false(w->live[id]);
	assert_int_equal(kv__order_insert(&w->o, id, w->kp[id], w->kl[id]), 0);
	w->live[id] = 1;
}

static void rem(struct world *w, uint32_t id)
{
	assert_true(w->live[id]);
	assert_int_equal(kv__order_remove(&w->o, id, w->kp[id], w->kl[id]), 0);
	w->live[id] = 0;
}

/* Replaces old_id by new_id, which must name equal key bytes: the tree
 * must then hand out new_id, never old_id, for that key. */
static void repl(struct world *w, uint32_t old_id, uint32_t new_id)
{
	assert_int_equal(kv__order_remove(&w->o, old_id, w->kp[old_id],
					  w->kl[old_id]), 0);
	assert_int_equal(kv__order_insert(&w->o, new_id, w->kp[new_id],
					  w->kl[new_id]), 0);
	w->live[old_id] = 0;
	w->live[new_id] = 1;
}

/* The whole tree, in order, must be exactly want[0..n). */
static void check_walk(struct world *w, const uint32_t *want, size_t n)
{
	kv__order_cur c;
	uint32_t id;
	size_t i = 0;

	kv__order_seek(&w->o, NULL, 0, 0, &c);
	while (kv__order_next(&c, &id)) {
		assert_true(i < n);
		assert_int_equal(id, want[i]);
		i++;
	}
	assert_int_equal(i, n);
	assert_int_equal(w->o.count, n);
	assert_int_equal(kv__order_next(&c, &id), 0);
	assert_int_equal(kv__order_check(&w->o), 0);
}

/* Seeks (key, klen) and expects exactly the ids want[0..n) to follow. */
static void check_seek(struct world *w, const void *key, size_t klen,
		       int after, const uint32_t *want, size_t n)
{
	kv__order_cur c;
	uint32_t id;

	kv__order_seek(&w->o, key, klen, after, &c);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(kv__order_next(&c, &id), 1);
		assert_int_equal(id, want[i]);
	}
	assert_int_equal(kv__order_next(&c, &id), 0);
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint32_t rng_below(uint64_t *s, uint32_t n)
{
	return (uint32_t)(rng_next(s) % n);
}

static void shuffle(uint32_t *a, uint32_t n, uint64_t *s)
{
	for (uint32_t i = n; i > 1; i--) {
		uint32_t j = rng_below(s, i), t = a[i - 1];

		a[i - 1] = a[j];
		a[j] = t;
	}
}

/* ---- small, hand-checked cases ---- */

static void test_empty(void **state)
{
	struct world w;
	kv__order_cur c;
	uint32_t id = 7;

	(void)state;
	world_init(&w, 1);
	assert_int_equal(w.o.count, 0);
	assert_int_equal(w.o.bytes, 0);
	assert_int_equal(w.o.height, 0);
	kv__order_seek(&w.o, NULL, 0, 0, &c);
	assert_int_equal(kv__order_next(&c, &id), 0);
	kv__order_seek(&w.o, "a", 1, 1, &c);
	assert_int_equal(kv__order_next(&c, &id), 0);
	assert_int_equal(kv__order_remove(&w.o, 0, "a", 1), KV_ENOTFOUND);
	kv__order_free(&w.o);
	kv__order_free(&w.o); /* twice is harmless */
	world_free(&w);
}

static void test_single(void **state)
{
	struct world w;
	const uint32_t one[] = { 0 };

	(void)state;
	world_init(&w, 1);
	w.kp[0] = (const unsigned char *)"m";
	w.kl[0] = 1;
	ins(&w, 0);
	assert_int_equal(w.o.count, 1);
	assert_int_equal(w.o.height, 1);
	assert_true(w.o.bytes > 0);
	check_walk(&w, one, 1);
	check_seek(&w, "m", 1, 0, one, 1);
	check_seek(&w, "m", 1, 1, NULL, 0);
	check_seek(&w, "l", 1, 1, one, 1);
	check_seek(&w, "m\0", 2, 0, NULL, 0);
	check_seek(&w, "n", 1, 0, NULL, 0);
	/* id 0 is in the tree, but under "m": nothing is removed */
	assert_int_equal(kv__order_remove(&w.o, 0, "n", 1), KV_ENOTFOUND);
	assert_int_equal(kv__order_remove(&w.o, 0, "m\0", 2), KV_ENOTFOUND);
	assert_int_equal(kv__order_remove(&w.o, 1, "m", 1), KV_ENOTFOUND);
	assert_int_equal(kv__order_insert(&w.o, 1, "m", 1), KV_EINVAL);
	assert_int_equal(w.o.count, 1);
	rem(&w, 0);
	assert_int_equal(w.o.count, 0);
	assert_int_equal(w.o.bytes, 0);
	assert_int_equal(w.o.height, 0);
	check_walk(&w, NULL, 0);
	ins(&w, 0);
	check_walk(&w, one, 1);
	world_free(&w);
}

/* Prefixes, embedded and trailing 0x00, 0xff, and 65535-byte keys, with the
 * order written out by hand rather than computed by a comparison. */
static void test_prefix_and_binary(void **state)
{
	static unsigned char big[3][65535];
	static const struct {
		const char *k;
		size_t len;
	} small[] = {
		{ "\0", 1 }, { "\0\0", 2 }, { "\0\xff", 2 }, { "\x01", 1 },
		{ "a", 1 }, { "a\0", 2 }, { "a\0\0", 3 }, { "a\0a", 3 },
		{ "aa", 2 }, { "aaa", 3 }, { "ab", 2 }, { "b", 1 },
		{ "\xfe\xff", 2 }, { "\xff", 1 }, { "\xff\0", 2 },
		{ "\xff\xff", 2 },
	};
	enum { NS = sizeof(small) / sizeof(small[0]), N = NS + 3 };
	uint32_t order[N], ids[N];
	uint64_t seed = 42;
	struct world w;

	(void)state;
	/* big[0] < big[1] < big[2], all after "\xff\xff". */
	memset(big, 0xff, sizeof(big));
	big[0][65533] = 0xfe;
	world_init(&w, N);
	for (uint32_t i = 0; i < N; i++)
		order[i] = i;
	shuffle(order, N, &seed); /* rank -> id, so ids are not in order */
	for (uint32_t r = 0; r < NS; r++) {
		w.kp[order[r]] = (const unsigned char *)small[r].k;
		w.kl[order[r]] = small[r].len;
	}
	w.kp[order[NS]] = big[0];
	w.kl[order[NS]] = 65535;
	w.kp[order[NS + 1]] = big[1];
	w.kl[order[NS + 1]] = 65534;
	w.kp[order[NS + 2]] = big[2];
	w.kl[order[NS + 2]] = 65535;
	for (uint32_t i = 0; i < N; i++)
		ids[i] = i;
	shuffle(ids, N, &seed);
	for (uint32_t i = 0; i < N; i++)
		ins(&w, ids[i]);
	check_walk(&w, order, N);
	check_seek(&w, "a", 1, 0, &order[4], N - 4);
	check_seek(&w, "a", 1, 1, &order[5], N - 5);
	check_seek(&w, "a\0\x01", 3, 0, &order[7], N - 7);
	check_seek(&w, "\0\x01", 2, 1, &order[2], N - 2);
	check_seek(&w, "", 0, 0, order, N);
	check_seek(&w, "\xff\xff\xff", 3, 0, &order[NS], 3);
	check_seek(&w, big[1], 65534, 1, &order[NS + 2], 1);
	check_seek(&w, big[2], 65535, 1, NULL, 0);
	for (uint32_t i = 0; i < N; i++)
		rem(&w, ids[(i * 7) % N]);
	assert_int_equal(w.o.bytes, 0);
	world_free(&w);
}

/* 256 one-byte keys, each followed by its 0x00 and 0xff extensions: 768
 * keys (several leaves) whose order is known without comparing. */
static void test_byte_ladder(void **state)
{
	enum { N = 768 };
	static unsigned char kb[N][2];
	uint32_t order[N], ids[N];
	uint64_t seed = 7;
	struct world w;

	(void)state;
	world_init(&w, N);
	for (uint32_t i = 0; i < N; i++)
		order[i] = i;
	shuffle(order, N, &seed);
	for (uint32_t b = 0; b < 256; b++) {
		for (uint32_t k = 0; k < 3; k++) {
			uint32_t id = order[b * 3 + k];

			kb[id][0] = (unsigned char)b;
			kb[id][1] = k == 1 ? 0x00 : 0xff;
			w.kp[id] = kb[id];
			w.kl[id] = k == 0 ? 1 : 2;
		}
	}
	memcpy(ids, order, sizeof(ids));
	shuffle(ids, N, &seed);
	for (uint32_t i = 0; i < N; i++)
		ins(&w, ids[i]);
	assert_true(w.o.height >= 2);
	check_walk(&w, order, N);
	for (uint32_t b = 0; b < 256; b += 17) {
		unsigned char k[2] = { (unsigned char)b, 0x00 };

		check_seek(&w, k, 1, 1, &order[b * 3 + 1], N - b * 3 - 1);
		check_seek(&w, k, 2, 1, &order[b * 3 + 2], N - b * 3 - 2);
		k[1] = 0x80;
		check_seek(&w, k, 2, 0, &order[b * 3 + 2], N - b * 3 - 2);
	}
	world_free(&w);
}

/* ---- bulk cases over a generated universe of distinct keys ---- */

struct universe {
	uint32_t n;                 /* keys; ids n..2n-1 alias ids 0..n-1 */
	unsigned char *arena;
	const unsigned char **rk;   /* key bytes by rank (sorted) */
	size_t *rl;
	uint32_t *id_of;            /* rank -> base id */
};

/* Keys drawn to collide on prefixes: tiny alphabets full of 0x00/0xff,
 * random binary, decimal text, and long keys sharing a long prefix. */
static size_t gen_key(uint64_t *s, unsigned char *out)
{
	static const unsigned char abc[] = { 0, 1, 0x7f, 0x80, 0xfe, 0xff };
	uint32_t kind = rng_below(s, 8), len;

	if (kind < 3) {
		len = 1 + rng_below(s, 7);
		for (uint32_t i = 0; i < len; i++)
			out[i] = abc[rng_below(s, sizeof(abc))];
	} else if (kind < 6) {
		len = 1 + rng_below(s, 24);
		for (uint32_t i = 0; i < len; i++)
			out[i] = (unsigned char)rng_next(s);
	} else if (kind < 7) {
		len = (uint32_t)snprintf((char *)out, 24, "user:%u",
					 rng_below(s, 1000000));
	} else {
		len = 300 + rng_below(s, 8);
		memset(out, 'p', len);
		out[len - 1 - rng_below(s, 4)] = (unsigned char)rng_next(s);
	}
	return len;
}

static const struct universe *sort_u;

static int rank_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return key_cmp(sort_u->rk[x], sort_u->rl[x], sort_u->rk[y],
		       sort_u->rl[y]);
}

static void universe_build(struct universe *u, uint32_t want, uint64_t seed)
{
	const unsigned char **k = malloc(want * sizeof(*k));
	size_t *l = malloc(want * sizeof(*l));
	uint32_t *idx = malloc(want * sizeof(*idx)), n = 0;
	unsigned char *p;

	u->arena = malloc((size_t)want * 320);
	assert_true(k && l && idx && u->arena);
	p = u->arena;
	u->rk = k;
	u->rl = l;
	for (uint32_t i = 0; i < want; i++) {
		k[i] = p;
		l[i] = gen_key(&seed, p);
		p += l[i];
		idx[i] = i;
	}
	sort_u = u;
	qsort(idx, want, sizeof(idx[0]), rank_cmp);
	u->rk = malloc(want * sizeof(*u->rk));
	u->rl = malloc(want * sizeof(*u->rl));
	assert_true(u->rk && u->rl);
	for (uint32_t i = 0; i < want; i++) {
		if (n && key_cmp(u->rk[n - 1], u->rl[n - 1], k[idx[i]],
				 l[idx[i]]) == 0)
			continue;
		u->rk[n] = k[idx[i]];
		u->rl[n++] = l[idx[i]];
	}
	u->n = n;
	u->id_of = idx; /* reused: rank -> id, shuffled */
	for (uint32_t i = 0; i < n; i++)
		idx[i] = i;
	shuffle(idx, n, &seed);
	free(k);
	free(l);
}

static void universe_free(struct universe *u)
{
	free(u->arena);
	free(u->rk);
	free(u->rl);
	free(u->id_of);
}

/* A world whose ids 0..2n-1 name the universe's keys (id and id + n equal). */
static void world_from(struct world *w, const struct universe *u)
{
	world_init(w, 2 * u->n);
	for (uint32_t r = 0; r < u->n; r++) {
		uint32_t id = u->id_of[r];

		w->kp[id] = w->kp[id + u->n] = u->rk[r];
		w->kl[id] = w->kl[id + u->n] = u->rl[r];
	}
}

/* The sorted model: which id (if any) holds each rank. */
struct model {
	const struct universe *u;
	uint32_t *at;      /* rank -> id in the tree, or NONE */
	uint32_t count;
};

static void model_init(struct model *m, const struct universe *u)
{
	m->u = u;
	m->at = malloc(u->n * sizeof(m->at[0]));
	assert_non_null(m->at);
	for (uint32_t r = 0; r < u->n; r++)
		m->at[r] = NONE;
	m->count = 0;
}

/* First rank whose key is >= (key, klen); *eq if it is equal. */
static uint32_t model_lower(const struct model *m, const unsigned char *key,
			    size_t klen, int *eq)
{
	uint32_t lo = 0, hi = m->u->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (key_cmp(m->u->rk[mid], m->u->rl[mid], key, klen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*eq = lo < m->u->n &&
	      key_cmp(m->u->rk[lo], m->u->rl[lo], key, klen) == 0;
	return lo;
}

static void check_model_walk(struct world *w, const struct model *m)
{
	uint32_t *want = malloc((m->count + 1) * sizeof(want[0])), n = 0;

	assert_non_null(want);
	for (uint32_t r = 0; r < m->u->n; r++)
		if (m->at[r] != NONE)
			want[n++] = m->at[r];
	assert_int_equal(n, m->count);
	check_walk(w, want, n);
	free(want);
}

/* Seeks and compares the next few ids with the model; also bounds the
 * comparisons a seek may make (O(log n)). */
static void check_model_seek(struct world *w, const struct model *m,
			     const unsigned char *key, size_t klen, int after)
{
	kv__order_cur c;
	uint32_t id, r;
	int eq;
	uint64_t before = w->ncmp;

	r = model_lower(m, key, klen, &eq);
	if (eq && after)
		r++;
	kv__order_seek(&w->o, key, klen, after, &c);
	assert_true(w->ncmp - before <= 8u * w->o.height);
	for (int k = 0; k < 3; k++) {
		while (r < m->u->n && m->at[r] == NONE)
			r++;
		if (r == m->u->n) {
			assert_int_equal(kv__order_next(&c, &id), 0);
			return;
		}
		assert_int_equal(kv__order_next(&c, &id), 1);
		assert_int_equal(id, m->at[r]);
		r++;
	}
}

/* A probe key near the universe: a member, a member with a byte added,
 * dropped or bumped, or something fresh. */
static size_t probe_key(const struct universe *u, uint64_t *s,
			unsigned char *out)
{
	uint32_t r = rng_below(s, u->n), kind = rng_below(s, 5);
	size_t len = u->rl[r];

	if (kind == 4)
		return gen_key(s, out);
	memcpy(out, u->rk[r], len);
	if (kind == 1) {
		out[len++] = rng_below(s, 2) ? 0 : (unsigned char)rng_next(s);
	} else if (kind == 2 && len > 1) {
		len--;
	} else if (kind == 3) {
		unsigned bump = rng_below(s, 2) ? 1 : 255; /* +1 or -1 */

		out[len - 1] = (unsigned char)(out[len - 1] + bump);
	}
	return len;
}

/* Memory stays proportional to count: nodes below the root are at least a
 * third full, so a 512-byte leaf never holds fewer than 41 ids. */
static void check_bytes(const struct world *w)
{
	if (SIZE_CHECKS)
		assert_true(w->o.bytes <= 2048 + 16 * w->o.count);
	if (w->o.count == 0) {
		assert_int_equal(w->o.bytes, 0);
		assert_int_equal(w->o.height, 0);
	}
}

static void model_put(struct world *w, struct model *m, uint32_t r,
		      uint32_t id)
{
	ins(w, id);
	m->at[r] = id;
	m->count++;
}

static void model_del(struct world *w, struct model *m, uint32_t r)
{
	rem(w, m->at[r]);
	m->at[r] = NONE;
	m->count--;
}

/* Swaps the rank's id for its alias (same key bytes, other id). */
static void model_swap(struct world *w, struct model *m, uint32_t r)
{
	uint32_t n = m->u->n, old = m->at[r];
	uint32_t id = old >= n ? old - n : old + n;

	repl(w, old, id);
	m->at[r] = id;
}

/* One random step on rank r; grow phases mostly insert, shrink phases
 * mostly remove, so the tree keeps splitting and merging at every level.
 * Absent keys also get removes and replaces that must find nothing, and
 * present ones a second insert that must be refused. */
static void model_step(struct world *w, struct model *m, uint64_t *s,
		       int grow)
{
	uint32_t n = m->u->n, r = rng_below(s, n), x = rng_below(s, 10);

	if (m->at[r] == NONE) {
		if (grow || x < 2)
			model_put(w, m, r, m->u->id_of[r] + (x & 1) * n);
		else if (x < 4)
			assert_int_equal(kv__order_remove(&w->o,
							  m->u->id_of[r],
							  m->u->rk[r],
							  m->u->rl[r]),
					 KV_ENOTFOUND);
		else if (x < 5)
			assert_int_equal(kv__order_remove(&w->o,
							  m->u->id_of[r] + n,
							  m->u->rk[r],
							  m->u->rl[r]),
					 KV_ENOTFOUND);
	} else if (x < (grow ? 2u : 8u)) {
		model_del(w, m, r);
	} else if (x < (grow ? 5u : 9u)) {
		model_swap(w, m, r);
	} else if (x == 9) {
		assert_int_equal(kv__order_insert(&w->o, 0, m->u->rk[r],
						  m->u->rl[r]), KV_EINVAL);
	}
	assert_int_equal(w->o.count, m->count);
}

static void test_random_model(void **state)
{
	enum { KEYS = 60000, OPS = 200000, PHASE = 25000 };
	static unsigned char probe[400];
	struct universe u;
	struct model m;
	struct world w;
	uint64_t s = 0x5eed1234ULL;
	unsigned max_height = 0;
	uint32_t *perm;

	(void)state;
	universe_build(&u, KEYS, s);
	assert_true(u.n > KEYS / 2);
	world_from(&w, &u);
	model_init(&m, &u);
	perm = malloc(u.n * sizeof(perm[0]));
	assert_non_null(perm);
	for (uint32_t i = 0; i < u.n; i++)
		perm[i] = i;
	for (uint32_t op = 0; op < OPS; op++) {
		model_step(&w, &m, &s, (op / PHASE) % 2 == 0);
		size_t len = probe_key(&u, &s, probe);

		check_model_seek(&w, &m, probe, len, (int)(op & 1));
		if (op % 5000 == 0) {
			check_model_walk(&w, &m);
			check_bytes(&w);
		}
		if (w.o.height > max_height)
			max_height = w.o.height;
	}
	assert_true(max_height >= 3); /* splits reached an inner level */
	check_model_walk(&w, &m);
	/* Remove everything in random order, then bring a third of it back. */
	shuffle(perm, u.n, &s);
	for (uint32_t i = 0; i < u.n; i++)
		if (m.at[perm[i]] != NONE)
			model_del(&w, &m, perm[i]);
	assert_int_equal(w.o.count, 0);
	check_bytes(&w);
	check_model_walk(&w, &m);
	for (uint32_t i = 0; i < u.n; i += 3)
		model_put(&w, &m, perm[i], u.id_of[perm[i]]);
	check_model_walk(&w, &m);
	for (int k = 0; k < 2000; k++) {
		size_t len = probe_key(&u, &s, probe);

		check_model_seek(&w, &m, probe, len, k & 1);
	}
	world_free(&w);
	free(m.at);
	free(perm);
	universe_free(&u);
}

/* Fills in ascending, descending and random order; each must walk in key
 * order, and ordered loads must pack leaves nearly full. */
static void fill_and_empty(const struct universe *u, int mode, double max_bpi)
{
	struct world w;
	struct model m;
	uint32_t *ranks = malloc(u->n * sizeof(ranks[0]));
	uint64_t s = 99 + (uint64_t)mode;

	assert_non_null(ranks);
	world_from(&w, u);
	model_init(&m, u);
	for (uint32_t i = 0; i < u->n; i++)
		ranks[i] = mode == 1 ? u->n - 1 - i : i;
	if (mode == 2)
		shuffle(ranks, u->n, &s);
	for (uint32_t i = 0; i < u->n; i++)
		model_put(&w, &m, ranks[i], u->id_of[ranks[i]]);
	check_model_walk(&w, &m);
	if (SIZE_CHECKS) {
		assert_true((double)w.o.bytes / (double)w.o.count <= max_bpi);
		assert_true(w.o.height <= 3);
	}
	/* Replace every id, so every separator must follow, then drain. */
	for (uint32_t r = 0; r < u->n; r++)
		model_swap(&w, &m, r);
	check_model_walk(&w, &m);
	shuffle(ranks, u->n, &s);
	for (uint32_t i = 0; i < u->n; i++) {
		model_del(&w, &m, ranks[i]);
		if (i % 4096 == 0)
			check_bytes(&w);
	}
	assert_int_equal(w.o.bytes, 0);
	assert_int_equal(w.o.height, 0);
	assert_null(w.o.root);
	world_free(&w);
	free(m.at);
	free(ranks);
}

static void test_fill_orders(void **state)
{
	struct universe u;

	(void)state;
	universe_build(&u, 40000, 3);
	fill_and_empty(&u, 0, 4.8);
	fill_and_empty(&u, 1, 4.8);
	fill_and_empty(&u, 2, 6.0);
	universe_free(&u);
}

/*
 * kv__order_load with `want` ids: three ranks in four, in key order, so
 * that later inserts land between loaded keys. The loaded tree must walk
 * and seek as the model says, cost no comparison to build, pack its nodes,
 * refuse a second load, and keep all of that through inserts, removes and
 * replaces afterwards (splits and merges of loaded nodes).
 */
static void load_and_churn(const struct universe *u, uint32_t want)
{
	static unsigned char probe[400];
	struct world w;
	struct model m;
	uint32_t *ids = malloc((want + 1) * sizeof(ids[0])), k = 0;
	uint64_t s = 7 + want;

	assert_non_null(ids);
	world_from(&w, u);
	model_init(&m, u);
	for (uint32_t r = 0; r < u->n && k < want; r++) {
		if (r % 4 == 3)
			continue;
		ids[k++] = m.at[r] = u->id_of[r];
		w.live[u->id_of[r]] = 1;
	}
	assert_int_equal(k, want);
	m.count = k;
	assert_int_equal(kv__order_load(&w.o, ids, k), 0);
	assert_int_equal(w.ncmp, 0);
	check_model_walk(&w, &m);
	check_bytes(&w);
	if (SIZE_CHECKS && k > 20000) {
		assert_true((double)w.o.bytes / (double)w.o.count <= 5.3);
		assert_int_equal(w.o.height, 3);
	}
	for (int t = 0; t < 300; t++) {
		size_t len = probe_key(u, &s, probe);

		check_model_seek(&w, &m, probe, len, t & 1);
	}
	if (k)
		assert_int_equal(kv__order_load(&w.o, ids, k), KV_EINVAL);
	check_model_walk(&w, &m);
	for (uint32_t op = 0; op < 8000; op++)
		model_step(&w, &m, &s, (op / 2000) % 2 == 1);
	check_model_walk(&w, &m);
	check_bytes(&w);
	world_free(&w);
	free(m.at);
	free(ids);
}

static void test_load_sorted(void **state)
{
	/* Around one leaf, two leaves, one inner level full (110 ids a leaf
	 * and 56 children an inner node at the default fanout) and a big
	 * three-level tree. */
	const uint32_t sizes[] = { 0, 1, 2, 109, 110, 111, 221, 6160, 6161,
				   25000 };
	struct universe u;

	(void)state;
	universe_build(&u, 60000, 17);
	assert_true(u.n >= 34000);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		load_and_churn(&u, sizes[i]);
	universe_free(&u);
}

/* A load that runs out of memory at any of its allocations (the level
 * arrays, a leaf, an inner node; once, or from then on) leaves the tree
 * empty with nothing held, and a load after it works. */
static void test_load_out_of_memory(void **state)
{
	struct universe u;
	struct world w;
	struct model m;
	uint32_t *ids;
	long calls = 0;

	(void)state;
	universe_build(&u, 30000, 23);
	assert_true(u.n >= 9000);
	world_from(&w, &u);
	model_init(&m, &u);
	ids = malloc(9000 * sizeof(ids[0]));
	assert_non_null(ids);
	for (uint32_t r = 0; r < 9000; r++) {
		ids[r] = m.at[r] = u.id_of[r];
		w.live[ids[r]] = 1;
	}
	m.count = 9000;
	for (int persistent = 0; persistent < 2; persistent++) {
		for (long i = 0;; i++) {
			tu_alloc_arm(i, persistent);
			int rc = kv__order_load(&w.o, ids, 9000);
			int fired = tu_alloc_fired();

			tu_alloc_disarm();
			if (!fired) {
				assert_int_equal(rc, 0);
				calls = i;
				break;
			}
			assert_int_equal(rc, KV_ENOMEM);
			assert_null(w.o.root);
			assert_int_equal(w.o.bytes, 0);
			assert_int_equal(w.o.count, 0);
			assert_int_equal(w.o.height, 0);
		}
		check_model_walk(&w, &m);
		kv__order_free(&w.o);
	}
	/* The two level arrays, 82 leaves, 2 inner nodes and the root at
	 * the default fanout: every one of them was made to fail. */
	assert_true(calls >= 8);
	if (SIZE_CHECKS)
		assert_int_equal(calls, 87);
	world_free(&w);
	free(m.at);
	free(ids);
	universe_free(&u);
}

/* Removing most of a big tree must give the memory back. */
static void test_shrink_memory(void **state)
{
	struct universe u;
	struct world w;
	struct model m;
	uint64_t s = 5, full;

	(void)state;
	universe_build(&u, 40000, 11);
	world_from(&w, &u);
	model_init(&m, &u);
	for (uint32_t r = 0; r < u.n; r++)
		model_put(&w, &m, r, u.id_of[r]);
	full = w.o.bytes;
	if (SIZE_CHECKS)
		assert_int_equal(w.o.height, 3);
	for (uint32_t r = 0; r < u.n; r++)
		if (rng_below(&s, 100) < 97)
			model_del(&w, &m, r);
	check_model_walk(&w, &m);
	check_bytes(&w);
	if (SIZE_CHECKS) {
		assert_true(w.o.bytes < full / 8);
		assert_int_equal(w.o.height, 2); /* ~1200 ids are left */
	}
	kv__order_free(&w.o);
	assert_int_equal(w.o.bytes, 0);
	assert_int_equal(w.o.count, 0);
	assert_int_equal(w.o.height, 0);
	memset(w.live, 0, w.nids);
	/* The freed tree is empty and usable again. */
	check_walk(&w, NULL, 0);
	ins(&w, u.id_of[0]);
	check_walk(&w, &u.id_of[0], 1);
	world_free(&w);
	free(m.at);
	universe_free(&u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_load_sorted),
		cmocka_unit_test(test_load_out_of_memory),
		cmocka_unit_test(test_single),
		cmocka_unit_test(test_prefix_and_binary),
		cmocka_unit_test(test_byte_ladder),
		cmocka_unit_test(test_random_model),
		cmocka_unit_test(test_fill_orders),
		cmocka_unit_test(test_shrink_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
