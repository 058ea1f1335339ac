/*
 * test_linearize.c - linearizability of concurrent operations
 * (RELIABILITY-PLAN T13, a PULSE analogue).
 *
 * Four threads run kv_put, kv_get (also kv_get_into, kv_get_view and
 * kv_exists), kv_delete, two-op kv_write batches and folds (kv_foreach and
 * kv_scan) on 1-5 hot keys of one store. Each call and return is stamped
 * with CLOCK_MONOTONIC into the thread's own history buffer, so recording
 * takes no lock. Every write stores a value used nowhere else (its id is
 * in the value, and the rest of the bytes follow from the id and the key),
 * so each read names the one write it saw, and a torn, foreign or invented
 * value is recognised as such.
 *
 * After the threads are joined a Wing-Gong search decides whether the
 * history is linearizable: it tries to order the operations so that each
 * takes effect at one instant between its call and its return and the
 * whole sequence is legal for a map of registers. Lowe's memo of the
 * (linearized set, state) pairs already explored (as in porcupine and
 * Knossos) keeps the search to a few steps per operation. Linearizability
 * is local, so each key is checked as a register on its own, except that
 * keys joined by a batch form one object whose state is the tuple of
 * their values: that checks batch atomicity too. A fold is not atomic: for
 * each key it counts as a read spanning the whole fold, i.e. it may only
 * return a value (or the absence) that the key had at some instant during
 * the scan; and it must deliver each key at most once.
 *
 * kv_delete returns KV_OK only if this call removed a live value (kv.h):
 * checked strictly by default. This test found that two racing deletes of
 * one value both returned KV_OK (the liveness check was outside the write
 * lock); KV_LIN_STRICT_DELETE=0 selects the weaker model that bug met:
 * "the key was live at some instant of the call, and the tombstone took
 * effect at some instant of it".
 *
 * The runs cycle through the sync modes (KV_SYNC_NONE, where readers copy
 * records still in the write buffer, gets big segments so the buffer also
 * flushes mid-segment), small segments with rollovers, compression, the
 * background compaction thread, and kv_compact in a loop in another
 * thread during every other history. Half the histories write values of
 * one length, so that a stale record cannot be caught by the library's
 * own check of the record against the index, only by the checker. Each
 * run ends with a close and a reopen, after which every key must still
 * hold its final value.
 *
 * KV_LIN_HISTORIES (default 1,000; 300 under ASan, 140 under TSan),
 * KV_LIN_OPS (operations per history, default 200) and KV_LIN_SEED scale
 * and seed the run; `make torture` runs 10,000 histories (test/mk/lin.mk).
 * KV_TEST_VERBOSE=1 prints the time spent per configuration and the
 * checker's reports on its own self-tests. The checker is tested first, on
 * hand-made histories and against a brute-force search.
 *
 * Seeded bugs this test catches (by hand, RELIABILITY.md): the keydir
 * updated or read without its lock, a batch published in two lock holds,
 * compaction's switch overwriting a newer write. Races only a few
 * instructions wide (a buffered read without the buffer lock, the switch
 * without its lock) are left to TSan, which flags them on this workload.
 *
 * cmocka's assertions must not run off the main thread (they longjmp), so
 * threads keep the first unexpected return code and the main thread fails.
 */
#include "testutil.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ==== the checker ==== */

#define LIN_MAXKEYS 8
#define LIN_ABSENT 0u               /* the state of a key with no value */
#define LIN_BAD UINT64_MAX          /* a value that no write produced */
#define LIN_BUDGET 50000000u        /* search steps before giving up */
/* Write ids of the workload: (thread + 1) << 40 | ID_FIXED? | sequence. */
#define ID_FIXED (UINT64_C(1) << 39) /* the value has FIXED_LEN bytes */

/* What one operation does to one key. */
enum { A_PUT, A_READ, A_DEL, A_LIVE };
/* The API call behind an operation, for reports. */
enum { W_HAND, W_PUT, W_GET, W_GET_INTO, W_GET_VIEW, W_EXISTS, W_DEL,
       W_BATCH, W_FOREACH, W_SCAN, W_FINAL };

static const char *const what_name[] = {
	"op", "put", "get", "get_into", "get_view", "exists", "delete",
	"write", "foreach", "scan", "final get",
};

typedef struct lin_act {
	uint8_t kind;    /* A_* */
	uint8_t key;     /* 0 .. LIN_MAXKEYS-1 */
	uint64_t v;      /* A_PUT: value written (LIN_ABSENT: a delete);
			    A_READ: value seen (LIN_ABSENT: not found) */
} lin_act;

/*
 * One operation: it takes effect at a single instant in [call, ret] and
 * applies its actions there in order, all at once (A_DEL: the key must be
 * live and becomes absent; A_LIVE: the key must be live).
 */
typedef struct lin_op {
	uint64_t call, ret;  /* ns, CLOCK_MONOTONIC */
	uint16_t thread;
	uint8_t what;        /* W_* */
	uint8_t nact;        /* 1 or 2 */
	lin_act act[2];
} lin_op;

typedef struct lin_stats {
	uint64_t ops;        /* operations checked */
	uint64_t parts;      /* independent objects (keys or joined keys) */
	uint64_t steps;      /* search steps */
	uint64_t memo;       /* (set, state) pairs remembered */
	uint64_t longest;    /* most operations in one object */
} lin_stats;

typedef struct lstate {
	uint64_t v[LIN_MAXKEYS];
} lstate;

/* Applies o to s; 0 if o cannot take effect in state s. */
static int lin_step(const lstate *s, const lin_op *o, lstate *out)
{
	*out = *s;
	for (unsigned i = 0; i < o->nact; i++) {
		const lin_act *a = &o->act[i];
		uint64_t *v = &out->v[a->key];

		switch (a->kind) {
		case A_PUT:
			*v = a->v;
			break;
		case A_READ:
			if (*v != a->v)
				return 0;
			break;
		case A_DEL:
			if (*v == LIN_ABSENT)
				return 0;
			*v = LIN_ABSENT;
			break;
		default: /* A_LIVE */
			if (*v == LIN_ABSENT)
				return 0;
			break;
		}
	}
	return 1;
}

/* ---- the memo: a hash set of (linearized bitset, state) ---- */

typedef struct memo {
	size_t words;        /* bitset words */
	size_t stride;       /* words + LIN_MAXKEYS */
	uint64_t *arena;     /* entries, stride words each */
	size_t n, cap;
	uint32_t *slot;      /* 0 = empty, else entry index + 1 */
	size_t nslots;       /* a power of two */
	uint64_t *key;       /* the entry being looked up */
} memo;

static uint64_t memo_hash(const uint64_t *w, size_t n)
{
	uint64_t h = 0x243f6a8885a308d3u;

	for (size_t i = 0; i < n; i++) {
		h = (h ^ w[i]) * 0x9e3779b97f4a7c15u;
		h ^= h >> 31;
	}
	return h;
}

static int memo_init(memo *m, size_t nops)
{
	memset(m, 0, sizeof *m);
	m->words = (nops + 63) / 64;
	m->stride = m->words + LIN_MAXKEYS;
	m->nslots = 1024;
	m->slot = calloc(m->nslots, sizeof *m->slot);
	m->key = calloc(m->stride, sizeof *m->key);
	return m->slot && m->key ? 0 : -1;
}

static void memo_free(memo *m)
{
	free(m->arena);
	free(m->slot);
	free(m->key);
}

static void memo_place(memo *m, uint32_t idx)
{
	size_t mask = m->nslots - 1;
	size_t i = memo_hash(m->arena + (size_t)idx * m->stride, m->stride) & mask;

	while (m->slot[i])
		i = (i + 1) & mask;
	m->slot[i] = idx + 1;
}

static int memo_grow(memo *m)
{
	uint32_t *old = m->slot;

	m->slot = calloc(m->nslots * 2, sizeof *m->slot);
	if (!m->slot) {
		m->slot = old;
		return -1;
	}
	free(old);
	m->nslots *= 2;
	for (size_t i = 0; i < m->n; i++)
		memo_place(m, (uint32_t)i);
	return 0;
}

/* Remembers (bits, s): 1 if it is new, 0 if seen before, -1 on ENOMEM. */
static int memo_add(memo *m, const uint64_t *bits, const lstate *s)
{
	size_t mask = m->nslots - 1, bytes = m->stride * sizeof *m->key;

	memcpy(m->key, bits, m->words * sizeof *bits);
	memcpy(m->key + m->words, s->v, sizeof s->v);
	for (size_t i = memo_hash(m->key, m->stride) & mask; m->slot[i];
	     i = (i + 1) & mask)
		if (!memcmp(m->arena + (size_t)(m->slot[i] - 1) * m->stride,
			    m->key, bytes))
			return 0;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 1024;
		uint64_t *a = realloc(m->arena, cap * bytes);
		if (!a)
			return -1;
		m->arena = a;
		m->cap = cap;
	}
	memcpy(m->arena + m->n * m->stride, m->key, bytes);
	m->n++;
	if (m->n * 2 > m->nslots && memo_grow(m))
		return -1;
	memo_place(m, (uint32_t)(m->n - 1));
	return 1;
}

/* ---- the search ---- */

/* A call or return event, in a doubly linked list sorted by time. */
typedef struct ent {
	uint64_t t;
	uint32_t op;
	uint32_t is_ret;
	struct ent *match;   /* a call's return */
	struct ent *prev, *next;
} ent;

typedef struct frame {
	ent *call;
	lstate before;
} frame;

/* Calls before returns at equal times: such operations overlap, which
 * allows more orders, never fewer. */
static int ent_cmp(const void *a, const void *b)
{
	const ent *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	if (x->is_ret != y->is_ret)
		return x->is_ret < y->is_ret ? -1 : 1;
	return x->op < y->op ? -1 : x->op > y->op;
}

/* Takes a linearized operation's call and return out of the list. */
static void lift(ent *call)
{
	ent *r = call->match;

	call->prev->next = call->next;
	if (call->next)
		call->next->prev = call->prev;
	r->prev->next = r->next;
	if (r->next)
		r->next->prev = r->prev;
}

/* Puts them back; lifts are undone in reverse order. */
static void unlift(ent *call)
{
	ent *r = call->match;

	r->prev->next = r;
	if (r->next)
		r->next->prev = r;
	call->prev->next = call;
	if (call->next)
		call->next->prev = call;
}

static ent *make_list(const lin_op *const *ops, size_t m, ent *head)
{
	ent *e = calloc(2 * m, sizeof *e);
	size_t *callpos = malloc(m * sizeof *callpos);

	if (!e || !callpos) {
		free(e);
		free(callpos);
		return NULL;
	}
	for (size_t i = 0; i < m; i++) {
		e[2 * i] = (ent){ .t = ops[i]->call, .op = (uint32_t)i };
		e[2 * i + 1] = (ent){ .t = ops[i]->ret, .op = (uint32_t)i,
				      .is_ret = 1 };
	}
	qsort(e, 2 * m, sizeof *e, ent_cmp);
	for (size_t k = 0; k < 2 * m; k++)
		if (!e[k].is_ret)
			callpos[e[k].op] = k;
	for (size_t k = 0; k < 2 * m; k++) {
		if (e[k].is_ret)
			e[callpos[e[k].op]].match = &e[k];
		e[k].prev = k ? &e[k - 1] : head;
		e[k].next = k + 1 < 2 * m ? &e[k + 1] : NULL;
	}
	head->next = m ? &e[0] : NULL;
	free(callpos);
	return e;
}

typedef struct search {
	const lin_op *const *ops;
	size_t m;
	lstate state;
	uint64_t *bits;
	frame *stack;
	size_t depth, best;
	size_t stuck;        /* at the deepest point: an op that fits nowhere */
	uint64_t steps;
	memo memo;
} search;

/* Tries to linearize cur's operation next: 1 done, 0 not possible (or
 * already explored), -1 out of memory. */
static int try_op(search *s, ent *cur)
{
	lstate next;
	uint32_t op = cur->op;

	if (!lin_step(&s->state, s->ops[op], &next))
		return 0;
	s->bits[op / 64] |= UINT64_C(1) << (op % 64);
	int fresh = memo_add(&s->memo, s->bits, &next);
	if (fresh <= 0) {
		s->bits[op / 64] &= ~(UINT64_C(1) << (op % 64));
		return fresh;
	}
	s->stack[s->depth++] = (frame){ cur, s->state };
	s->state = next;
	lift(cur);
	return 1;
}

/* 1: linearizable; 0: not; -1: out of memory or over the step budget. */
static int run_search(search *s, ent *head)
{
	ent *cur = head->next;

	while (head->next) {
		if (++s->steps > LIN_BUDGET)
			return -1;
		if (!cur->is_ret) {
			int rc = try_op(s, cur);
			if (rc < 0)
				return -1;
			if (s->depth > s->best)
				s->best = s->depth;
			cur = rc ? head->next : cur->next;
			continue;
		}
		/* A return whose call could not be placed: undo the last
		 * choice and try the operation after it instead. */
		if (s->depth == s->best)
			s->stuck = cur->op;
		if (s->depth == 0)
			return 0;
		frame *f = &s->stack[--s->depth];
		s->bits[f->call->op / 64] &= ~(UINT64_C(1) << (f->call->op % 64));
		s->state = f->before;
		unlift(f->call);
		cur = f->call->next;
	}
	return 1;
}

/* Checks one object (the operations on one key, or on keys joined by
 * batches). */
static int check_part(const lin_op *const *ops, size_t m, const lstate *init,
		      lin_stats *st, size_t *stuck, size_t *best)
{
	search s = { .ops = ops, .m = m, .state = *init };
	ent head = { 0 }, *e = make_list(ops, m, &head);
	int rc = -1;

	s.bits = calloc((m + 63) / 64 + 1, sizeof *s.bits);
	s.stack = malloc((m + 1) * sizeof *s.stack);
	if (e && s.bits && s.stack && memo_init(&s.memo, m) == 0)
		rc = run_search(&s, &head);
	st->steps += s.steps;
	st->memo += s.memo.n;
	*stuck = s.stuck;
	*best = s.best;
	memo_free(&s.memo);
	free(s.bits);
	free(s.stack);
	free(e);
	return rc;
}

/* ---- reports ---- */

static void print_value(FILE *f, uint64_t v)
{
	if (v == LIN_ABSENT)
		fprintf(f, "absent");
	else if (v == LIN_BAD)
		fprintf(f, "a value never written");
	else if (v >> 40)
		fprintf(f, "t%" PRIu64 ".%" PRIu64 "%s", (v >> 40) - 1,
			v & (ID_FIXED - 1), v & ID_FIXED ? "f" : "");
	else
		fprintf(f, "#%" PRIu64, v);
}

static void print_op(FILE *f, const lin_op *o, uint64_t t0, int mark)
{
	fprintf(f, "%s t%u [%11.3f, %11.3f] us %-9s", mark ? ">>" : "  ",
		o->thread, (double)(o->call - t0) / 1e3,
		(double)(o->ret - t0) / 1e3, what_name[o->what]);
	for (unsigned i = 0; i < o->nact; i++) {
		const lin_act *a = &o->act[i];

		fprintf(f, " k%u", a->key);
		if (a->kind == A_PUT)
			fprintf(f, ":=");
		else if (a->kind == A_READ)
			fprintf(f, "->");
		if (a->kind == A_PUT || a->kind == A_READ)
			print_value(f, a->v);
		else
			fprintf(f, a->kind == A_DEL ? " deleted" : " live");
		fprintf(f, i + 1 < o->nact ? "," : "");
	}
	fputc('\n', f);
}

static int by_call(const void *a, const void *b)
{
	const lin_op *x = *(const lin_op *const *)a, *y = *(const lin_op *const *)b;

	return x->call < y->call ? -1 : x->call > y->call;
}

/* Prints the object's history by call time, the op the search could not
 * place marked; a long one is cut to the ops around that one. */
static void report(FILE *f, const lin_op **ops, size_t m, const lstate *init,
		   size_t stuck, size_t best)
{
	const lin_op *bad = ops[stuck];
	uint64_t t0 = ops[0]->call;
	size_t from = 0, to = m;

	for (size_t i = 1; i < m; i++)
		if (ops[i]->call < t0)
			t0 = ops[i]->call;
	qsort(ops, m, sizeof *ops, by_call);
	for (size_t i = 0; i < m; i++)
		if (ops[i] == bad) {
			from = i > 40 ? i - 40 : 0;
			to = i + 20 < m ? i + 20 : m;
		}
	fprintf(f, "not linearizable: %zu operations, at most %zu placed; "
		"initial state:", m, best);
	for (unsigned k = 0; k < LIN_MAXKEYS; k++)
		if (init->v[k] != LIN_ABSENT) {
			fprintf(f, " k%u=", k);
			print_value(f, init->v[k]);
		}
	fprintf(f, "\n%s", from ? "  ...\n" : "");
	for (size_t i = from; i < to; i++)
		print_op(f, ops[i], t0, ops[i] == bad);
	fprintf(f, "%s", to < m ? "  ...\n" : "");
}

/* ---- the whole history ---- */

static unsigned uf_find(unsigned *uf, unsigned k)
{
	while (uf[k] != k)
		k = uf[k] = uf[uf[k]];
	return k;
}

/*
 * Decides whether ops (in any order) are linearizable from init (one value
 * per key, nkeys <= LIN_MAXKEYS). 1: yes; 0: no, and the offending object's
 * history went to out (if not NULL); -1: search budget or memory ran out.
 */
static int lin_check(const lin_op *ops, size_t n, unsigned nkeys,
		     const uint64_t *init, lin_stats *st, FILE *out)
{
	unsigned uf[LIN_MAXKEYS];
	const lin_op **part = malloc((n + 1) * sizeof *part);
	lstate s0 = { { 0 } };
	int rc = 1;

	if (!part)
		return -1;
	for (unsigned k = 0; k < LIN_MAXKEYS; k++) {
		uf[k] = k;
		s0.v[k] = k < nkeys ? init[k] : LIN_ABSENT;
	}
	for (size_t i = 0; i < n; i++) {
		for (unsigned a = 0; a < ops[i].nact; a++)
			if (ops[i].act[a].key >= nkeys) {
				free(part);
				return -1; /* a key outside the model */
			}
		for (unsigned a = 1; a < ops[i].nact; a++)
			uf[uf_find(uf, ops[i].act[a].key)] =
				uf_find(uf, ops[i].act[0].key);
	}
	st->ops += n;
	for (unsigned r = 0; r < nkeys && rc == 1; r++) {
		size_t m = 0, stuck, best;

		if (uf_find(uf, r) != r)
			continue;
		for (size_t i = 0; i < n; i++)
			if (uf_find(uf, ops[i].act[0].key) == r)
				part[m++] = &ops[i];
		if (m == 0)
			continue;
		st->parts++;
		if (m > st->longest)
			st->longest = m;
		rc = check_part(part, m, &s0, st, &stuck, &best);
		if (rc == 0 && out)
			report(out, part, m, &s0, stuck, best);
	}
	free(part);
	return rc;
}

/* ==== tests of the checker on hand-made histories ==== */

/* A hand-made op: times in ticks, one action. */
static lin_op hop(uint64_t call, uint64_t ret, int kind, unsigned key,
		  uint64_t v)
{
	return (lin_op){ .call = call, .ret = ret, .nact = 1,
			 .act = { { (uint8_t)kind, (uint8_t)key, v } } };
}

/* A two-key batch of puts. */
static lin_op hbatch(uint64_t call, uint64_t ret, unsigned k1, uint64_t v1,
		     unsigned k2, uint64_t v2)
{
	return (lin_op){ .call = call, .ret = ret, .what = W_BATCH, .nact = 2,
			 .act = { { A_PUT, (uint8_t)k1, v1 },
				  { A_PUT, (uint8_t)k2, v2 } } };
}

static int hcheck(const lin_op *ops, size_t n, const uint64_t *init)
{
	static const uint64_t none[LIN_MAXKEYS];
	lin_stats st = { 0 };
	FILE *out = getenv("KV_TEST_VERBOSE") ? stderr : NULL;

	return lin_check(ops, n, LIN_MAXKEYS, init ? init : none, &st, out);
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void test_checker_accepts_legal_histories(void **state)
{
	(void)state;
	/* Sequential: put, get, delete, get absent, delete of nothing. */
	const lin_op seq[] = {
		hop(0, 1, A_PUT, 0, 1), hop(2, 3, A_READ, 0, 1),
		hop(4, 5, A_DEL, 0, 0), hop(6, 7, A_READ, 0, LIN_ABSENT),
		hop(8, 9, A_READ, 0, LIN_ABSENT),
	};
	assert_int_equal(hcheck(seq, N_OF(seq), NULL), 1);
	/* Reads overlapping a write may see the old or the new value, and
	 * may be listed in any order. */
	const lin_op overlap[] = {
		hop(5, 20, A_READ, 0, 2), hop(0, 10, A_PUT, 0, 2),
		hop(3, 4, A_READ, 0, 2), hop(1, 2, A_READ, 0, 1),
	};
	uint64_t init[LIN_MAXKEYS] = { 1 };
	assert_int_equal(hcheck(overlap, N_OF(overlap), init), 1);
	/* Two overlapping writes land in either order. */
	const lin_op race[] = {
		hop(0, 10, A_PUT, 0, 1), hop(1, 9, A_PUT, 0, 2),
		hop(11, 12, A_READ, 0, 1), hop(13, 14, A_READ, 0, 1),
	};
	assert_int_equal(hcheck(race, N_OF(race), NULL), 1);
	/* Keys are independent registers. */
	const lin_op two[] = {
		hop(0, 10, A_PUT, 0, 1), hop(0, 10, A_PUT, 1, 2),
		hop(2, 3, A_READ, 1, 2), hop(4, 5, A_READ, 0, LIN_ABSENT),
		hop(11, 12, A_READ, 0, 1),
	};
	assert_int_equal(hcheck(two, N_OF(two), NULL), 1);
	/* Equal stamps count as overlapping. */
	const lin_op tie[] = {
		hop(0, 5, A_PUT, 0, 1), hop(5, 6, A_READ, 0, LIN_ABSENT),
	};
	assert_int_equal(hcheck(tie, N_OF(tie), NULL), 1);
}

static void test_checker_rejects_stale_read_after_completed_write(void **state)
{
	(void)state;
	const lin_op h[] = {
		hop(0, 1, A_PUT, 0, 1), hop(2, 3, A_PUT, 0, 2),
		hop(4, 5, A_READ, 0, 1),
	};
	assert_int_equal(hcheck(h, N_OF(h), NULL), 0);
	/* The initial value after a completed overwrite. */
	uint64_t init[LIN_MAXKEYS] = { 0, 7 };
	const lin_op h2[] = {
		hop(0, 1, A_PUT, 1, 8), hop(2, 3, A_READ, 1, 7),
	};
	assert_int_equal(hcheck(h2, N_OF(h2), init), 0);
	/* A value that comes back after a completed delete. */
	const lin_op h3[] = {
		hop(0, 1, A_PUT, 0, 1), hop(2, 3, A_DEL, 0, 0),
		hop(4, 5, A_READ, 0, 1),
	};
	assert_int_equal(hcheck(h3, N_OF(h3), NULL), 0);
	/* Absent after a completed put. */
	const lin_op h4[] = {
		hop(0, 1, A_PUT, 0, 1), hop(2, 3, A_READ, 0, LIN_ABSENT),
	};
	assert_int_equal(hcheck(h4, N_OF(h4), NULL), 0);
}

static void test_checker_rejects_value_never_written(void **state)
{
	(void)state;
	const lin_op h[] = {
		hop(0, 10, A_PUT, 0, 1), hop(1, 2, A_READ, 0, 3),
	};
	assert_int_equal(hcheck(h, N_OF(h), NULL), 0);
	const lin_op bad[] = { hop(0, 1, A_READ, 2, LIN_BAD) };
	assert_int_equal(hcheck(bad, N_OF(bad), NULL), 0);
	/* Another key's value. */
	const lin_op foreign[] = {
		hop(0, 1, A_PUT, 1, 5), hop(2, 3, A_READ, 0, 5),
	};
	assert_int_equal(hcheck(foreign, N_OF(foreign), NULL), 0);
	/* A value read before its write was called. */
	const lin_op early[] = {
		hop(0, 1, A_READ, 0, 4), hop(2, 3, A_PUT, 0, 4),
	};
	assert_int_equal(hcheck(early, N_OF(early), NULL), 0);
}

static void test_checker_rejects_read_going_back_in_time(void **state)
{
	(void)state;
	uint64_t init[LIN_MAXKEYS] = { 1 };
	/* Both reads overlap the write; the new value then the old. */
	const lin_op h[] = {
		hop(0, 100, A_PUT, 0, 2), hop(10, 20, A_READ, 0, 2),
		hop(30, 40, A_READ, 0, 1),
	};
	assert_int_equal(hcheck(h, N_OF(h), init), 0);
	/* The same two reads the other way round are fine. */
	const lin_op ok[] = {
		hop(0, 100, A_PUT, 0, 2), hop(10, 20, A_READ, 0, 1),
		hop(30, 40, A_READ, 0, 2),
	};
	assert_int_equal(hcheck(ok, N_OF(ok), init), 1);
	/* Two writers: a reader sees 3 then 2, another 2 then 3. */
	const lin_op h2[] = {
		hop(0, 100, A_PUT, 0, 2), hop(0, 100, A_PUT, 0, 3),
		hop(10, 20, A_READ, 0, 3), hop(30, 40, A_READ, 0, 2),
		hop(10, 20, A_READ, 0, 2), hop(30, 40, A_READ, 0, 3),
	};
	assert_int_equal(hcheck(h2, N_OF(h2), init), 0);
}

static void test_checker_models_deletes(void **state)
{
	(void)state;
	uint64_t init[LIN_MAXKEYS] = { 1 };
	/* Strict: two racing deletes of one value cannot both succeed. */
	const lin_op both[] = {
		hop(0, 10, A_DEL, 0, 0), hop(1, 11, A_DEL, 0, 0),
	};
	assert_int_equal(hcheck(both, N_OF(both), init), 0);
	/* Unless a put lands between them. */
	const lin_op put_between[] = {
		hop(0, 10, A_DEL, 0, 0), hop(1, 11, A_DEL, 0, 0),
		hop(2, 3, A_PUT, 0, 2),
	};
	assert_int_equal(hcheck(put_between, N_OF(put_between), init), 1);
	/* The weaker model of what kv_delete does (live at some instant,
	 * tombstone at some instant) accepts two racing successes. */
	const lin_op weak[] = {
		hop(0, 10, A_LIVE, 0, 0), hop(0, 10, A_PUT, 0, LIN_ABSENT),
		hop(1, 11, A_LIVE, 0, 0), hop(1, 11, A_PUT, 0, LIN_ABSENT),
	};
	assert_int_equal(hcheck(weak, N_OF(weak), init), 1);
	/* ...but not a success on a key that was absent throughout. */
	const lin_op never[] = {
		hop(0, 1, A_PUT, 0, LIN_ABSENT), hop(2, 3, A_LIVE, 0, 0),
		hop(2, 3, A_PUT, 0, LIN_ABSENT),
	};
	assert_int_equal(hcheck(never, N_OF(never), init), 0);
	/* A delete that finds nothing while the key is surely live. */
	const lin_op miss[] = {
		hop(0, 1, A_PUT, 0, 2), hop(2, 3, A_READ, 0, LIN_ABSENT),
	};
	assert_int_equal(hcheck(miss, N_OF(miss), init), 0);
}

static void test_checker_requires_batches_atomic(void **state)
{
	(void)state;
	/* One thread sees the batch's k0 and then the old k1. */
	const lin_op half[] = {
		hbatch(0, 100, 0, 1, 1, 2), hop(10, 20, A_READ, 0, 1),
		hop(30, 40, A_READ, 1, LIN_ABSENT),
	};
	assert_int_equal(hcheck(half, N_OF(half), NULL), 0);
	/* Old k1 first, then the new k0: the batch fits between. */
	const lin_op whole[] = {
		hbatch(0, 100, 0, 1, 1, 2), hop(10, 20, A_READ, 1, LIN_ABSENT),
		hop(30, 40, A_READ, 0, 1),
	};
	assert_int_equal(hcheck(whole, N_OF(whole), NULL), 1);
	/* The first of two puts to one key in a batch is never visible. */
	const lin_op mid[] = {
		hbatch(0, 100, 0, 1, 0, 2), hop(10, 20, A_READ, 0, 1),
	};
	assert_int_equal(hcheck(mid, N_OF(mid), NULL), 0);
	const lin_op last[] = {
		hbatch(0, 100, 0, 1, 0, 2), hop(10, 20, A_READ, 0, 2),
		hop(110, 120, A_READ, 0, 2),
	};
	assert_int_equal(hcheck(last, N_OF(last), NULL), 1);
}

/* A fold = one read per key, each spanning the fold. */
static void test_checker_folds_see_values_possible_during_the_scan(void **state)
{
	(void)state;
	uint64_t init[LIN_MAXKEYS] = { 1, 5 };
	/* Fold [0, 100] sees k0's old value although a put of k0 completed
	 * inside it, and k1's new value: each held during the scan. */
	const lin_op mixed[] = {
		hop(10, 20, A_PUT, 0, 2), hop(30, 40, A_PUT, 1, 6),
		hop(0, 100, A_READ, 0, 1), hop(0, 100, A_READ, 1, 6),
	};
	assert_int_equal(hcheck(mixed, N_OF(mixed), init), 1);
	/* A value written after the fold returned. */
	const lin_op future[] = {
		hop(0, 100, A_READ, 0, 2), hop(110, 120, A_PUT, 0, 2),
	};
	assert_int_equal(hcheck(future, N_OF(future), init), 0);
	/* A value overwritten before the fold was called. */
	const lin_op past[] = {
		hop(0, 5, A_PUT, 1, 6), hop(10, 100, A_READ, 1, 5),
	};
	assert_int_equal(hcheck(past, N_OF(past), init), 0);
	/* A key live throughout the fold reported missing. */
	const lin_op missing[] = {
		hop(10, 20, A_PUT, 0, 2), hop(0, 100, A_READ, 0, LIN_ABSENT),
	};
	assert_int_equal(hcheck(missing, N_OF(missing), init), 0);
}

/* ---- against brute force, on small random histories ---- */

typedef struct brute {
	const lin_op *ops;
	size_t n;
	unsigned used;
} brute;

/* Depth-first over every order that respects real time. */
static int brute_dfs(brute *b, const lstate *s, size_t placed)
{
	if (placed == b->n)
		return 1;
	for (size_t i = 0; i < b->n; i++) {
		int minimal = !(b->used >> i & 1);
		lstate next;

		for (size_t j = 0; j < b->n && minimal; j++)
			if (j != i && !(b->used >> j & 1) &&
			    b->ops[j].ret < b->ops[i].call)
				minimal = 0;
		if (!minimal || !lin_step(s, &b->ops[i], &next))
			continue;
		b->used |= 1u << i;
		int ok = brute_dfs(b, &next, placed + 1);
		b->used &= ~(1u << i);
		if (ok)
			return 1;
	}
	return 0;
}

static lin_act random_act(uint64_t *rng)
{
	unsigned r = (unsigned)(tu_rand(rng) % 10);
	lin_act a = { .key = (uint8_t)(tu_rand(rng) % 2),
		      .v = tu_rand(rng) % 4 };

	a.kind = r < 4 ? A_PUT : r < 8 ? A_READ : r < 9 ? A_DEL : A_LIVE;
	return a;
}

static void random_history(uint64_t *rng, lin_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		lin_op *o = &ops[i];

		o->call = tu_rand(rng) % 20;
		o->ret = o->call + tu_rand(rng) % 10;
		o->nact = tu_rand(rng) % 5 == 0 ? 2 : 1;
		for (unsigned a = 0; a < o->nact; a++)
			o->act[a] = random_act(rng);
	}
}

static void test_checker_agrees_with_brute_force(void **state)
{
	uint64_t rng = 0x5eed1234u, yes = 0, no = 0;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		lin_op ops[7];
		size_t n = 1 + tu_rand(&rng) % 7;
		uint64_t init[LIN_MAXKEYS] = { tu_rand(&rng) % 3,
					       tu_rand(&rng) % 3 };
		lstate s0 = { { init[0], init[1] } };
		lin_stats st = { 0 };

		random_history(&rng, ops, n);
		brute b = { ops, n, 0 };
		int want = brute_dfs(&b, &s0, 0);
		int got = lin_check(ops, n, 2, init, &st, NULL);
		if (got != want)
			fail_msg("round %d: checker says %d, brute force %d",
				 round, got, want);
		want ? yes++ : no++;
	}
	print_message("brute force: 20000 random histories of 1-7 ops agree "
		      "(%" PRIu64 " linearizable, %" PRIu64 " not)\n", yes, no);
	assert_true(yes > 1000 && no > 1000);
}

/* A long generated history that is linearizable by construction: ops run
 * one after another at points p, each with an interval around p. */
static void test_checker_handles_long_histories(void **state)
{
	enum { N = 20000, K = 5 };
	lin_op *ops = calloc(N, sizeof *ops);
	uint64_t rng = 42, cur[K] = { 0 }, zero[K] = { 0 }, next_v = 1;
	lin_stats st = { 0 };

	(void)state;
	assert_non_null(ops);
	for (size_t i = 0; i < N; i++) {
		uint64_t p = 1000 + i * 10;
		unsigned k = (unsigned)(tu_rand(&rng) % K);
		int put = tu_rand(&rng) % 3 == 0;

		ops[i] = hop(p - tu_rand(&rng) % 40, p + tu_rand(&rng) % 40,
			     put ? A_PUT : A_READ, k, put ? next_v : cur[k]);
		if (put)
			cur[k] = next_v++;
	}
	assert_int_equal(lin_check(ops, N, K, zero, &st, NULL), 1);
	/* One read of a value never written: found, without running out
	 * of search budget. */
	ops[N / 2].act[0] = (lin_act){ A_READ, ops[N / 2].act[0].key, LIN_BAD };
	assert_int_equal(lin_check(ops, N, K, zero, &st, NULL), 0);
	print_message("long histories: 2 x %d ops, %" PRIu64 " search steps, %"
		      PRIu64 " memo entries\n", N, st.steps, st.memo);
	free(ops);
}

/* ==== the workload ==== */

#define NKEYS 5
#define NTHREADS 4
#define VMAX 8192
#define RUN_HISTORIES 20     /* histories between reopens */

typedef struct run_cfg {
	const char *name;
	uint32_t sync_mode, sync_every;
	uint64_t max_file_size;
	uint32_t flags;          /* besides KV_CREATE */
	int compactor;           /* kv_compact in a loop, every other history */
} run_cfg;

static const run_cfg cfgs[] = {
	/* Big segments: records sit in the write buffer, which also
	 * flushes mid-segment. */
	{ "none", KV_SYNC_NONE, 0, 1u << 20, KV_NO_AUTO_COMPACT, 0 },
	{ "none, small segments, kv_compact", KV_SYNC_NONE, 0, 8u << 10,
	  KV_NO_AUTO_COMPACT, 1 },
	{ "write, kv_compact", KV_SYNC_WRITE, 0, 16u << 10,
	  KV_NO_AUTO_COMPACT, 1 },
	{ "every 4, zlib, kv_compact", KV_SYNC_EVERY, 4, 64u << 10,
	  KV_NO_AUTO_COMPACT | KV_COMPRESS, 1 },
	{ "interval 5 ms, background compaction", KV_SYNC_INTERVAL, 5,
	  8u << 10, 0, 0 },
	{ "none, zlib, background compaction and kv_compact", KV_SYNC_NONE,
	  0, 4u << 10, KV_COMPRESS, 1 },
	{ "always, kv_compact", KV_SYNC_ALWAYS, 0, 64u << 10,
	  KV_NO_AUTO_COMPACT, 1 },
};

typedef struct shared {
	kv_t *db;
	unsigned hot;            /* keys in play this history: 1..NKEYS */
	unsigned ops;            /* operations per thread */
	int fixed;               /* values of one length (ID_FIXED) */
	int strict_delete;
	pthread_barrier_t go;
	atomic_int done;         /* the workers have finished */
	atomic_long compactions;
	int compact_rc;          /* kv_compact's first failure */
} shared;

typedef struct worker {
	shared *sh;
	unsigned t;
	uint64_t rng;
	uint64_t seq;            /* values this thread wrote, all histories */
	lin_op *ops;             /* ops * NKEYS: a fold emits one per key */
	size_t n;
	size_t calls;            /* API calls made */
	int rc;                  /* first unexpected return code */
	char what[96];
	kv_batch *batch;
	char val[VMAX], got[VMAX], scratch[VMAX];
} worker;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t key_of(char *out, unsigned k)
{
	return (size_t)snprintf(out, 16, "lin:k%u", k);
}

#define FIXED_LEN 100

/*
 * The value of write id to key k: "lin:k<k>=<id>;" then filler whose
 * length and bytes follow from (k, id). Most lengths vary and every 50th
 * value is large, so records cross pages and buffer edges; but half the
 * histories write values of one length (ID_FIXED), so that a read of a
 * stale record cannot be caught by the library's own length check
 * against the index, only by the checker.
 */
static size_t value_of(char *out, unsigned k, uint64_t id)
{
	uint64_t mix = (id ^ k) * 0x9e3779b97f4a7c15u;
	size_t fill = id % 50 == 0 ? 2000 + mix % 3000 : (mix >> 20) % 200;
	size_t n = (size_t)snprintf(out, VMAX, "lin:k%u=%" PRIu64 ";", k, id);

	if (id & ID_FIXED)
		fill = FIXED_LEN - n;

	for (size_t i = 0; i < fill; i++)
		out[n + i] = (char)('a' + (mix >> (i % 48)) % 4);
	return n + fill;
}

/* The write id of a value read from key k, or LIN_BAD if no write could
 * have produced it. scratch holds VMAX bytes. */
static uint64_t value_id(unsigned k, const void *val, size_t len,
			 char *scratch)
{
	char head[16];
	const char *p = val;
	size_t hn = (size_t)snprintf(head, sizeof head, "lin:k%u=", k), i;
	uint64_t id = 0;

	if (len < hn + 2 || memcmp(p, head, hn))
		return LIN_BAD;
	for (i = hn; i < len && i < hn + 19 && p[i] >= '0' && p[i] <= '9'; i++)
		id = id * 10 + (uint64_t)(p[i] - '0');
	if (i == hn || i >= len || p[i] != ';' || id == LIN_ABSENT)
		return LIN_BAD;
	if (value_of(scratch, k, id) != len || memcmp(scratch, val, len))
		return LIN_BAD;
	return id;
}

static void fail_op(worker *w, const char *call, int rc)
{
	if (w->rc)
		return;
	w->rc = rc ? rc : KV_EINVAL;
	snprintf(w->what, sizeof w->what, "thread %u: %s: %s: %s", w->t, call,
		 kv_strerror(rc), rc ? kv_errmsg() : "bad callback data");
}

static lin_op *emit(worker *w, uint8_t what, uint64_t call, uint64_t ret)
{
	lin_op *o = &w->ops[w->n++];

	*o = (lin_op){ .call = call, .ret = ret, .thread = (uint16_t)w->t,
		       .what = what };
	return o;
}

static void add_act(lin_op *o, int kind, unsigned k, uint64_t v)
{
	o->act[o->nact++] = (lin_act){ (uint8_t)kind, (uint8_t)k, v };
}

static uint64_t new_id(worker *w)
{
	return ((uint64_t)w->t + 1) << 40 | (w->sh->fixed ? ID_FIXED : 0) |
	       ++w->seq;
}

static void do_put(worker *w, unsigned k)
{
	char key[16];
	size_t klen = key_of(key, k);
	uint64_t id = new_id(w);
	size_t len = value_of(w->val, k, id);

	uint64_t c = now_ns();
	int rc = kv_put(w->sh->db, key, klen, w->val, len);
	uint64_t r = now_ns();
	if (rc)
		return fail_op(w, "kv_put", rc);
	add_act(emit(w, W_PUT, c, r), A_PUT, k, id);
}

static void do_delete(worker *w, unsigned k)
{
	char key[16];
	size_t klen = key_of(key, k);

	uint64_t c = now_ns();
	int rc = kv_delete(w->sh->db, key, klen);
	uint64_t r = now_ns();
	if (rc == KV_ENOTFOUND) {
		add_act(emit(w, W_DEL, c, r), A_READ, k, LIN_ABSENT);
	} else if (rc) {
		fail_op(w, "kv_delete", rc);
	} else if (w->sh->strict_delete) {
		add_act(emit(w, W_DEL, c, r), A_DEL, k, 0);
	} else {
		add_act(emit(w, W_DEL, c, r), A_LIVE, k, 0);
		add_act(emit(w, W_DEL, c, r), A_PUT, k, LIN_ABSENT);
	}
}

/* Two ops, on two keys or (sometimes, and always with one hot key) twice
 * on one key; each a put (3 in 4) or a delete. */
static void do_batch(worker *w)
{
	unsigned hot = w->sh->hot, k[2];
	uint64_t v[2];
	char key[16];

	k[0] = (unsigned)(tu_rand(&w->rng) % hot);
	k[1] = hot > 1 && tu_rand(&w->rng) % 4 ?
		(k[0] + 1 + (unsigned)(tu_rand(&w->rng) % (hot - 1))) % hot : k[0];
	kv_batch_clear(w->batch);
	for (int i = 0; i < 2; i++) {
		size_t klen = key_of(key, k[i]);
		int rc;

		if (tu_rand(&w->rng) % 4 == 0) {
			v[i] = LIN_ABSENT;
			rc = kv_batch_delete(w->batch, key, klen);
		} else {
			v[i] = new_id(w);
			size_t len = value_of(w->val, k[i], v[i]);
			rc = kv_batch_put(w->batch, key, klen, w->val, len);
		}
		if (rc)
			return fail_op(w, "kv_batch_put", rc);
	}
	uint64_t c = now_ns();
	int rc = kv_write(w->sh->db, w->batch);
	uint64_t r = now_ns();
	if (rc)
		return fail_op(w, "kv_write", rc);
	lin_op *o = emit(w, W_BATCH, c, r);
	add_act(o, A_PUT, k[0], v[0]);
	add_act(o, A_PUT, k[1], v[1]);
}

typedef struct fold_ctx {
	worker *w;
	uint64_t seen[NKEYS];
	unsigned got;            /* bit k: key k delivered */
} fold_ctx;

static int on_pair(void *ctx, const void *key, size_t klen, const void *val,
		   size_t vlen)
{
	fold_ctx *f = ctx;
	const char *p = key;

	if (klen != 6 || memcmp(p, "lin:k", 5) || p[5] < '0' ||
	    p[5] >= '0' + NKEYS) {
		snprintf(f->w->what, sizeof f->w->what, "thread %u: a fold "
			 "delivered a key never written (%zu bytes)", f->w->t,
			 klen);
		return 1;
	}
	unsigned k = (unsigned)(p[5] - '0');
	if (f->got >> k & 1) {
		snprintf(f->w->what, sizeof f->w->what, "thread %u: a fold "
			 "delivered lin:k%u twice", f->w->t, k);
		return 1;
	}
	f->got |= 1u << k;
	f->seen[k] = value_id(k, val, vlen, f->w->scratch);
	return 0;
}

static void do_fold(worker *w, int scan)
{
	fold_ctx f = { .w = w };

	uint64_t c = now_ns();
	int rc = scan ? kv_scan(w->sh->db, NULL, 0, NULL, 0, "lin:", 4, 0,
				on_pair, &f)
		      : kv_foreach(w->sh->db, on_pair, &f);
	uint64_t r = now_ns();
	if (rc == 1) {
		w->rc = KV_EINVAL; /* on_pair said what */
		return;
	}
	if (rc)
		return fail_op(w, scan ? "kv_scan" : "kv_foreach", rc);
	for (unsigned k = 0; k < NKEYS; k++)
		add_act(emit(w, scan ? W_SCAN : W_FOREACH, c, r), A_READ, k,
			f.seen[k]);
}

typedef struct view_ctx {
	unsigned k;
	uint64_t id;
	char *scratch;
} view_ctx;

static int on_view(void *ctx, const void *val, size_t vlen)
{
	view_ctx *v = ctx;

	v->id = value_id(v->k, val, vlen, v->scratch);
	return 0;
}

/* A read through one of the four read calls. */
static void do_read(worker *w, unsigned k, unsigned how)
{
	static const uint8_t whats[] = { W_GET, W_GET_INTO, W_GET_VIEW,
					 W_EXISTS };
	kv_t *db = w->sh->db;
	char key[16];
	size_t klen = key_of(key, k), vlen = 0;
	view_ctx v = { k, LIN_ABSENT, w->scratch };
	void *got = NULL;
	int rc;

	uint64_t c = now_ns();
	switch (how) {
	case 0:
		rc = kv_get(db, key, klen, &got, &vlen);
		break;
	case 1:
		rc = kv_get_into(db, key, klen, w->got, sizeof w->got, &vlen);
		break;
	case 2:
		rc = kv_get_view(db, key, klen, on_view, &v);
		break;
	default:
		rc = kv_exists(db, key, klen);
		break;
	}
	uint64_t r = now_ns();
	if (rc && rc != KV_ENOTFOUND)
		return fail_op(w, what_name[whats[how]], rc);
	lin_op *o = emit(w, whats[how], c, r);
	if (how == 3)
		add_act(o, rc ? A_READ : A_LIVE, k, LIN_ABSENT);
	else if (rc)
		add_act(o, A_READ, k, LIN_ABSENT);
	else
		add_act(o, A_READ, k, how == 2 ? v.id :
			value_id(k, how ? w->got : got, vlen, w->scratch));
	kv_free(got);
}

static void one_op(worker *w)
{
	unsigned r = (unsigned)(tu_rand(&w->rng) % 100);
	unsigned k = (unsigned)(tu_rand(&w->rng) % w->sh->hot);

	/* Now and then give the other threads the core, so that ops
	 * interleave more finely than the scheduler's time slice. */
	if (r % 8 == 0)
		sched_yield();
	w->calls++;
	if (r < 30)
		do_put(w, k);
	else if (r < 42)
		do_delete(w, k);
	else if (r < 52)
		do_batch(w);
	else if (r < 58)
		do_fold(w, r & 1);
	else
		do_read(w, k, r % 4);
}

static void *work(void *arg)
{
	worker *w = arg;

	pthread_barrier_wait(&w->sh->go);
	for (unsigned i = 0; i < w->sh->ops && !w->rc; i++)
		one_op(w);
	return NULL;
}

static void *compactor(void *arg)
{
	shared *sh = arg;
	struct timespec pause = { 0, 100000 };

	while (!atomic_load(&sh->done)) {
		int rc = kv_compact(sh->db, NULL);
		if (rc) {
			sh->compact_rc = rc;
			break;
		}
		atomic_fetch_add(&sh->compactions, 1);
		nanosleep(&pause, NULL);
	}
	return NULL;
}

/* ---- driving it ---- */

typedef struct totals {
	uint64_t histories, calls, compactions;
	uint64_t overlapped;     /* calls overlapping another thread's call */
	double run_s, check_s;
	double cfg_s[16];        /* wall time per run_cfg */
	lin_stats st;
	int strict_delete;
} totals;

static unsigned env_uint(const char *name, unsigned dflt)
{
	const char *s = getenv(name);

	return s && *s ? (unsigned)strtoul(s, NULL, 0) : dflt;
}

static double secs(uint64_t ns)
{
	return (double)ns / 1e9;
}

static int iv_cmp(const void *a, const void *b)
{
	const lin_op *x = a, *y = b;

	return x->call < y->call ? -1 : x->call > y->call;
}

/* How many calls overlapped a call of another thread: a figure for how
 * concurrent the histories really were. A fold or a delete emits several
 * ops with one interval; count it once. */
static uint64_t count_overlapping(const lin_op *ops, size_t n)
{
	lin_op *iv = malloc((n + 1) * sizeof *iv);
	size_t m = 0;
	uint64_t count = 0;

	assert_non_null(iv);
	for (size_t i = 0; i < n; i++)
		if (m == 0 || ops[i].call != iv[m - 1].call ||
		    ops[i].thread != iv[m - 1].thread)
			iv[m++] = ops[i];
	qsort(iv, m, sizeof *iv, iv_cmp);
	/* a: the earlier call that returned last; b: the same among the
	 * other threads than a's. */
	const lin_op none = { 0 };
	const lin_op *a = &none, *b = &none;
	for (size_t i = 0; i < m; i++) {
		const lin_op *o = &iv[i], *prev = a->thread != o->thread ? a : b;
		int hit = prev != &none && prev->ret >= o->call;

		for (size_t j = i + 1; j < m && !hit && iv[j].call <= o->ret; j++)
			hit = iv[j].thread != o->thread;
		count += (uint64_t)hit;
		if (o->ret > a->ret || a == &none) {
			if (o->thread != a->thread)
				b = a;
			a = o;
		} else if (o->thread != a->thread && (b == &none || o->ret > b->ret)) {
			b = o;
		}
	}
	free(iv);
	return count;
}

/* Reads every key single-threaded after the workers are done: these
 * are part of the history too, and the next history starts from them. */
static void final_reads(kv_t *db, lin_op *ops, size_t *n, uint64_t *fin)
{
	char key[16], scratch[VMAX];

	for (unsigned k = 0; k < NKEYS; k++) {
		size_t klen = key_of(key, k), vlen;
		void *v;

		uint64_t c = now_ns();
		int rc = kv_get(db, key, klen, &v, &vlen);
		uint64_t r = now_ns();
		if (rc && rc != KV_ENOTFOUND)
			fail_msg("final kv_get: %s: %s", kv_strerror(rc),
				 kv_errmsg());
		fin[k] = rc ? LIN_ABSENT : value_id(k, v, vlen, scratch);
		kv_free(v);
		ops[(*n)++] = (lin_op){ .call = c, .ret = r, .thread = NTHREADS,
					.what = W_FINAL, .nact = 1,
					.act = { { A_READ, (uint8_t)k, fin[k] } } };
	}
}

/* Runs one history from state cur (updated to its end) and checks it. */
static void one_history(kv_t *db, worker *ws, lin_op *all, uint64_t seed,
			int compact, uint64_t *cur, totals *tot)
{
	shared sh = { .db = db, .ops = env_uint("KV_LIN_OPS", 200) / NTHREADS,
		      .strict_delete = tot->strict_delete };
	pthread_t th[NTHREADS], ct;
	uint64_t init[NKEYS];
	size_t n = 0;

	sh.hot = 1 + (unsigned)(seed % NKEYS);
	sh.fixed = seed / 2 % 2;
	memcpy(init, cur, sizeof init);
	pthread_barrier_init(&sh.go, NULL, NTHREADS);
	uint64_t t0 = now_ns();
	if (compact)
		assert_int_equal(pthread_create(&ct, NULL, compactor, &sh), 0);
	for (unsigned t = 0; t < NTHREADS; t++) {
		ws[t].sh = &sh;
		ws[t].n = 0;
		ws[t].rng ^= seed * 0x9e3779b97f4a7c15u + t;
		assert_int_equal(pthread_create(&th[t], NULL, work, &ws[t]), 0);
	}
	for (unsigned t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
	atomic_store(&sh.done, 1);
	if (compact)
		pthread_join(ct, NULL);
	pthread_barrier_destroy(&sh.go);
	for (unsigned t = 0; t < NTHREADS; t++) {
		if (ws[t].rc)
			fail_msg("history %" PRIu64 ": %s", tot->histories,
				 ws[t].what);
		memcpy(all + n, ws[t].ops, ws[t].n * sizeof *all);
		n += ws[t].n;
		tot->calls += ws[t].calls;
		ws[t].calls = 0;
	}
	if (sh.compact_rc)
		fail_msg("kv_compact: %s", kv_strerror(sh.compact_rc));
	tot->compactions += (uint64_t)atomic_load(&sh.compactions);
	tot->overlapped += count_overlapping(all, n);
	final_reads(db, all, &n, cur);
	uint64_t t1 = now_ns();
	int rc = lin_check(all, n, NKEYS, init, &tot->st, stderr);
	tot->run_s += secs(t1 - t0);
	tot->check_s += secs(now_ns() - t1);
	if (rc != 1)
		fail_msg("history %" PRIu64 " (seed %" PRIu64 ", %u hot keys, %s"
			 "delete model): %s", tot->histories, seed, sh.hot,
			 tot->strict_delete ? "strict " : "weak ",
			 rc ? "search budget or memory ran out" :
			 "not linearizable (history above)");
	tot->histories++;
}

static kv_t *open_run(const char *dir, const run_cfg *c)
{
	kv_options o;

	kv_options_init(&o);
	o.flags = KV_CREATE | c->flags;
	o.sync_mode = c->sync_mode;
	o.sync_every = c->sync_every;
	o.max_file_size = c->max_file_size;
	o.compress_min = 64;
	return tu_open(dir, &o);
}

/* After a clean close every key must hold its last value. */
static void check_reopened(kv_t *db, const uint64_t *cur)
{
	char key[16], scratch[VMAX];

	for (unsigned k = 0; k < NKEYS; k++) {
		size_t klen = key_of(key, k), vlen;
		void *v;
		int rc = kv_get(db, key, klen, &v, &vlen);

		if (rc != (cur[k] == LIN_ABSENT ? KV_ENOTFOUND : KV_OK))
			fail_msg("after reopen lin:k%u: %s", k, kv_strerror(rc));
		if (rc == 0)
			assert_true(value_id(k, v, vlen, scratch) == cur[k]);
		kv_free(v);
	}
}

/* Fewer histories by default where each op costs several times more;
 * 140 = each run_cfg once. */
static unsigned default_histories(void)
{
#if defined(__SANITIZE_THREAD__)
	return 140;
#elif defined(__SANITIZE_ADDRESS__)
	return 300;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
	return 140;
#elif __has_feature(address_sanitizer)
	return 300;
#else
	return 400;
#endif
#else
	return 400;
#endif
}

static void test_concurrent_histories_are_linearizable(void **state)
{
	unsigned want = env_uint("KV_LIN_HISTORIES", default_histories());
	uint64_t seed = env_uint("KV_LIN_SEED", 20261121), cur[NKEYS] = { 0 };
	unsigned ops = env_uint("KV_LIN_OPS", 200) / NTHREADS;
	size_t cap = (size_t)ops * NKEYS + 8;
	worker *ws = calloc(NTHREADS, sizeof *ws);
	lin_op *all = calloc(NTHREADS * cap + NKEYS, sizeof *all);
	totals tot = { .strict_delete = (int)env_uint("KV_LIN_STRICT_DELETE", 1) };
	char *dir = tu_mkdir();
	kv_t *db = NULL;

	(void)state;
	assert_non_null(ws);
	assert_non_null(all);
	for (unsigned t = 0; t < NTHREADS; t++) {
		ws[t].t = t;
		ws[t].rng = seed + t;
		assert_non_null(ws[t].ops = calloc(cap, sizeof *ws[t].ops));
		TU_OK(kv_batch_new(&ws[t].batch));
	}
	uint64_t t0 = now_ns();
	for (unsigned h = 0; h < want; h++) {
		const run_cfg *c = &cfgs[h / RUN_HISTORIES % N_OF(cfgs)];

		if (h % RUN_HISTORIES == 0) {
			if (db)
				TU_OK(kv_close(db));
			db = open_run(dir, c);
			check_reopened(db, cur);
		}
		uint64_t t1 = now_ns();
		one_history(db, ws, all, seed + h, c->compactor && h % 2, cur,
			    &tot);
		tot.cfg_s[c - cfgs] += secs(now_ns() - t1);
	}
	for (size_t i = 0; getenv("KV_TEST_VERBOSE") && i < N_OF(cfgs); i++)
		print_message("  %5.1f s  %s\n", tot.cfg_s[i], cfgs[i].name);
	TU_OK(kv_close(db));
	db = open_run(dir, &cfgs[0]);
	check_reopened(db, cur);
	TU_OK(kv_close(db));
	print_message("linearize: %" PRIu64 " histories, %" PRIu64 " calls "
		      "(%" PRIu64 " overlapping another thread's; %" PRIu64
		      " ops checked, %" PRIu64 " objects, longest %"
		      PRIu64 " ops), %" PRIu64 " kv_compact calls, %s delete "
		      "model; %" PRIu64 " search steps, %" PRIu64 " memo entries;"
		      " %.1f s (threads %.1f s, checker %.1f s)\n",
		      tot.histories, tot.calls, tot.overlapped, tot.st.ops, tot.st.parts,
		      tot.st.longest, tot.compactions,
		      tot.strict_delete ? "strict" : "weak", tot.st.steps,
		      tot.st.memo, secs(now_ns() - t0), tot.run_s, tot.check_s);
	for (unsigned t = 0; t < NTHREADS; t++) {
		free(ws[t].ops);
		kv_batch_free(ws[t].batch);
	}
	free(ws);
	free(all);
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checker_accepts_legal_histories),
		cmocka_unit_test(test_checker_rejects_stale_read_after_completed_write),
		cmocka_unit_test(test_checker_rejects_value_never_written),
		cmocka_unit_test(test_checker_rejects_read_going_back_in_time),
		cmocka_unit_test(test_checker_models_deletes),
		cmocka_unit_test(test_checker_requires_batches_atomic),
		cmocka_unit_test(test_checker_folds_see_values_possible_during_the_scan),
		cmocka_unit_test(test_checker_agrees_with_brute_force),
		cmocka_unit_test(test_checker_handles_long_histories),
		cmocka_unit_test(test_concurrent_histories_are_linearizable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
