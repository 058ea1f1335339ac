/*
 * test_repl.c - replication: the commit and seal hooks, replicas that apply
 * what the hook ships, catch-up from the log, snapshots.
 *
 * Followers live in the same process: the primary's commit hook calls the
 * follower's kv_repl_apply directly, and a "wire" between them can be cut
 * (frames dropped) to make a follower miss records. Two stores are equal
 * when kv_foreach gives the same pairs and kv_expiry the same expiries.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

/* KV_REPL_SCALE multiplies the random runs (make repl-torture). */
static int scale(void)
{
	const char *s = getenv("KV_REPL_SCALE");
	int n = s ? atoi(s) : 1;

	return n > 0 ? n : 1;
}

/* ---- comparing stores ---- */

typedef struct pair {
	char *k, *v;
	size_t kl, vl;
} pair;

typedef struct pairs {
	pair *p;
	size_t n, cap;
} pairs;

static int collect(void *ctx, const void *k, size_t kl, const void *v,
		   size_t vl)
{
	pairs *ps = ctx;

	if (ps->n == ps->cap) {
		ps->cap = ps->cap ? 2 * ps->cap : 64;
		ps->p = realloc(ps->p, ps->cap * sizeof *ps->p);
	}
	pair *p = &ps->p[ps->n++];
	p->k = malloc(kl + 1);
	p->v = malloc(vl + 1);
	memcpy(p->k, k, kl);
	memcpy(p->v, v, vl);
	p->kl = kl;
	p->vl = vl;
	return 0;
}

static int by_key(const void *a, const void *b)
{
	const pair *x = a, *y = b;
	size_t n = x->kl < y->kl ? x->kl : y->kl;
	int c = memcmp(x->k, y->k, n);

	return c ? c : (x->kl > y->kl) - (x->kl < y->kl);
}

static void dump(kv_t *db, pairs *ps)
{
	memset(ps, 0, sizeof *ps);
	TU_OK(kv_foreach(db, collect, ps));
	qsort(ps->p, ps->n, sizeof *ps->p, by_key);
}

static void pairs_free(pairs *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		free(ps->p[i].k);
		free(ps->p[i].v);
	}
	free(ps->p);
}

/* Every live pair and its expiry equal in both stores. */
static void assert_same(kv_t *a, kv_t *b)
{
	pairs x, y;

	dump(a, &x);
	dump(b, &y);
	assert_int_equal(x.n, y.n);
	for (size_t i = 0; i < x.n; i++) {
		uint64_t ea, eb;
		assert_int_equal(x.p[i].kl, y.p[i].kl);
		assert_memory_equal(x.p[i].k, y.p[i].k, x.p[i].kl);
		assert_int_equal(x.p[i].vl, y.p[i].vl);
		if (x.p[i].vl)
			assert_memory_equal(x.p[i].v, y.p[i].v, x.p[i].vl);
		TU_OK(kv_expiry(a, x.p[i].k, x.p[i].kl, &ea));
		TU_OK(kv_expiry(b, y.p[i].k, y.p[i].kl, &eb));
		assert_int_equal(ea, eb);
	}
	pairs_free(&x);
	pairs_free(&y);
}

static uint64_t position(kv_t *db)
{
	uint64_t pos;

	TU_OK(kv_repl_position(db, &pos));
	return pos;
}

/* ---- a primary wired to a follower ---- */

typedef struct wire {
	kv_t *to;             /* the follower, or NULL */
	int up;               /* 0: frames are dropped */
	uint64_t last;        /* LSN of the last frame seen */
	unsigned frames, misordered, refused;
	int refused_rc;
	size_t bytes;
	uint8_t *log;         /* every frame seen, back to back (if kept) */
	size_t log_len, log_cap;
	int keep;
	int fail;             /* return this from the hook */
} wire;

static int ship(void *ctx, uint64_t first, uint64_t last, const void *b,
		size_t len)
{
	wire *l = ctx;

	l->frames++;
	if (first != l->last + 1 || last < first)
		l->misordered++;
	l->last = last;
	l->bytes += len;
	if (l->keep) {
		if (l->log_len + len > l->log_cap) {
			l->log_cap = 2 * (l->log_len + len);
			l->log = realloc(l->log, l->log_cap);
		}
		memcpy(l->log + l->log_len, b, len);
		l->log_len += len;
	}
	if (l->fail)
		return l->fail;
	if (!l->up || !l->to)
		return 0;
	int rc = kv_repl_apply(l->to, b, len);
	if (rc) {
		l->refused++;
		l->refused_rc = rc;
	}
	return rc;
}

static struct kv_repl_hooks hooks_for(wire *l)
{
	struct kv_repl_hooks h = { .size = sizeof h, .commit = ship,
				   .ctx = l };
	return h;
}

static int apply_cb(void *ctx, uint64_t first, uint64_t last, const void *b,
		    size_t len)
{
	(void)first;
	(void)last;
	return kv_repl_apply(ctx, b, len);
}

/* Brings f up to p from the log; the result of kv_repl_read. */
static int catch_up(kv_t *p, kv_t *f, size_t max)
{
	return kv_repl_read(p, position(f), max, apply_cb, f);
}

static void replica_options(kv_options *o)
{
	tu_options(o);
	o->flags |= KV_REPLICA;
	o->max_file_size = 4096;
}

/* A new empty replica in a new directory, built from p's snapshot and
 * the stream after it. */
static kv_t *rebuild(kv_t *p, kv_t *f, char **fdir)
{
	kv_options o;
	uint64_t at;

	kv_close(f);
	tu_rmdir(*fdir);
	*fdir = tu_mkdir();
	replica_options(&o);
	f = tu_open(*fdir, &o);
	TU_OK(kv_repl_snapshot_begin(f));
	TU_OK(kv_repl_snapshot(p, 2048, apply_cb, f, &at));
	TU_OK(kv_repl_snapshot_end(f, at));
	assert_int_equal(position(f), at);
	TU_OK(kv_repl_read(p, at, 0, apply_cb, f));
	return f;
}

/* ---- a random workload ---- */

static void key_of(char *k, uint64_t *rng, unsigned nkeys)
{
	snprintf(k, 16, "k%u", (unsigned)(tu_rand(rng) % nkeys));
}

static size_t value_of(char *v, uint64_t *rng)
{
	size_t n = tu_rand(rng) % 300;

	if (tu_rand(rng) % 8 == 0)
		n = 1000 + tu_rand(rng) % 1000; /* compressible */
	for (size_t i = 0; i < n; i++)
		v[i] = (char)('a' + (n < 1000 ? tu_rand(rng) % 26 : i % 3));
	return n;
}

static void random_batch(kv_t *p, uint64_t *rng, unsigned nkeys)
{
	kv_batch *b;
	char k[16], v[2048];
	unsigned n = 1 + (unsigned)(tu_rand(rng) % 8);

	TU_OK(kv_batch_new(&b));
	for (unsigned i = 0; i < n; i++) {
		key_of(k, rng, nkeys);
		size_t vl = value_of(v, rng);
		switch (tu_rand(rng) % 3) {
		case 0:
			TU_OK(kv_batch_put(b, k, strlen(k), v, vl));
			break;
		case 1:
			TU_OK(kv_batch_delete(b, k, strlen(k)));
			break;
		default:
			TU_OK(kv_batch_put_ttl(b, k, strlen(k), v, vl,
					       1 + tu_rand(rng) % 5000));
		}
	}
	TU_OK(kv_write(p, b));
	kv_batch_free(b);
}

/* Whether step() may compact (tests of the log's history turn it off). */
static int steps_compact = 1;

/* One random step on the primary (and sometimes the follower). */
static void step(kv_t *p, kv_t *f, uint64_t *rng, unsigned nkeys)
{
	char k[16], v[2048];
	unsigned r = (unsigned)(tu_rand(rng) % 100);
	int rc;

	key_of(k, rng, nkeys);
	if (r < 40) {
		size_t vl = value_of(v, rng);
		TU_OK(kv_put(p, k, strlen(k), v, vl));
	} else if (r < 55) {
		rc = kv_delete(p, k, strlen(k));
		assert_true(rc == KV_OK || rc == KV_ENOTFOUND);
	} else if (r < 65) {
		size_t vl = value_of(v, rng);
		TU_OK(kv_put_ttl(p, k, strlen(k), v, vl,
				 1 + tu_rand(rng) % 5000));
	} else if (r < 80) {
		random_batch(p, rng, nkeys);
	} else if (r < 84) {
		tu_clock_ms += tu_rand(rng) % 3000;
	} else if (r < 87 && steps_compact) {
		TU_OK(kv_compact(p, NULL));
	} else if (r < 90 && f && steps_compact) {
		TU_OK(kv_compact(f, NULL));
	} else {
		size_t vl = value_of(v, rng);
		TU_OK(kv_put(p, k, strlen(k), v, vl));
	}
}

static void workload(kv_t *p, kv_t *f, uint64_t seed, int ops,
		     unsigned nkeys)
{
	uint64_t rng = seed;

	for (int i = 0; i < ops; i++)
		step(p, f, &rng, nkeys);
}

/* ---- tests ---- */

/* The hook sees each write once, in commit order, a batch as one frame,
 * and the bytes are exactly those in the segment. */
static void test_hook_ships_exact_log_in_commit_order(void **state)
{
	char *dir = tu_mkdir();
	wire l = { .keep = 1 };
	struct kv_repl_hooks h = hooks_for(&l);
	kv_options o;
	kv_batch *b;

	(void)state;
	tu_options(&o);
	o.flags |= KV_COMPRESS;
	o.repl = &h;
	kv_t *p = tu_open(dir, &o);
	assert_int_equal(tu_put(p, "a", "1"), KV_OK);
	assert_int_equal(l.frames, 1);
	assert_int_equal(l.last, 1);
	TU_OK(kv_put_ttl(p, "t", 1, "x", 1, 500));
	TU_OK(kv_delete(p, "a", 1));
	assert_int_equal(kv_delete(p, "a", 1), KV_ENOTFOUND); /* no frame */
	TU_OK(kv_batch_new(&b));
	TU_OK(kv_batch_put(b, "b", 1, "2", 1));
	TU_OK(kv_batch_delete(b, "t", 1));
	TU_OK(kv_batch_put(b, "c", 1, "3", 1));
	unsigned before = l.frames;
	TU_OK(kv_write(p, b));
	kv_batch_free(b);
	assert_int_equal(l.frames, before + 1); /* a batch is one frame */
	assert_int_equal(l.last, 6);
	char big[4000];
	memset(big, 'z', sizeof big);
	TU_OK(kv_put(p, "big", 3, big, sizeof big)); /* stored compressed */
	assert_int_equal(l.frames, 5);
	assert_int_equal(l.misordered, 0);
	TU_OK(kv_close(p));

	/* The frames, back to back, are the segment's records. */
	const char *seg = tu_seg_path(dir, 1);
	uint64_t size = tu_file_size(seg);
	assert_int_equal(size - 32, l.log_len);
	FILE *fp = fopen(seg, "rb");
	uint8_t *file = malloc(size);
	assert_int_equal(fread(file, 1, size, fp), size);
	fclose(fp);
	assert_memory_equal(file + 32, l.log, l.log_len);
	free(file);
	free(l.log);
	tu_rmdir(dir);
}

/* The main property: a follower fed by the hook, with compactions and
 * rollovers on both sides, TTLs and batches, ends equal, at the same
 * position, and stays so across a reopen of both. */
static struct {
	uint64_t frames, lsns, compactions, keys;
} converged;

static void converge(uint32_t sync_mode, uint64_t seed, int ops)
{
	char *pdir = tu_mkdir(), *fdir = tu_mkdir();
	wire l = { .up = 1 };
	struct kv_repl_hooks h = hooks_for(&l);
	kv_options po, fo;

	tu_options(&po);
	po.flags |= KV_COMPRESS;
	po.sync_mode = sync_mode;
	po.sync_every = 7;
	po.max_file_size = 4096;
	po.repl = &h;
	replica_options(&fo);
	fo.sync_mode = sync_mode;
	kv_t *p = tu_open(pdir, &po);
	kv_t *f = tu_open(fdir, &fo);
	l.to = f;
	workload(p, f, seed, ops, 40);
	assert_int_equal(l.refused, 0);
	assert_int_equal(l.misordered, 0);
	assert_int_equal(position(f), position(p));
	assert_same(p, f);

	struct kv_stats st = { .size = sizeof st }, fst = st;
	TU_OK(kv_stats(f, &fst));
	assert_true(fst.compactions > 0); /* the follower compacted too */
	TU_OK(kv_stats(p, &st));
	converged.frames += l.frames;
	converged.lsns += st.last_lsn;
	converged.compactions += st.compactions + fst.compactions;
	converged.keys += st.live_keys;
	assert_int_equal(st.repl_hook_calls, l.frames);
	assert_int_equal(st.repl_hook_errors, 0);
	assert_int_equal(st.last_lsn, position(p));

	TU_OK(kv_close(p));
	TU_OK(kv_close(f));
	l.to = NULL;
	p = tu_open(pdir, &po);
	f = tu_open(fdir, &fo);
	assert_int_equal(position(f), position(p));
	assert_same(p, f);
	kv_close(p);
	kv_close(f);
	tu_rmdir(pdir);
	tu_rmdir(fdir);
}

static void test_follower_converges_sync_write(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 8 * (uint64_t)scale(); seed++)
		converge(KV_SYNC_WRITE, seed, 3000);
	print_message("converged: %" PRIu64 " frames, %" PRIu64 " records, "
		      "%" PRIu64 " compactions on both sides, %" PRIu64
		      " live keys at the end\n", converged.frames,
		      converged.lsns, converged.compactions, converged.keys);
}

static void test_follower_converges_sync_always(void **state)
{
	(void)state;
	for (int i = 0; i < scale(); i++)
		converge(KV_SYNC_ALWAYS, 100 + (uint64_t)i, 3000);
}

static void test_follower_converges_sync_every(void **state)
{
	(void)state;
	for (int i = 0; i < scale(); i++)
		converge(KV_SYNC_EVERY, 200 + (uint64_t)i, 3000);
}

/* A replica takes writes only from kv_repl_apply, and only a replica
 * takes kv_repl_apply. */
static void test_replica_refuses_local_writes(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_batch *b;
	uint8_t byte = 0;

	(void)state;
	replica_options(&o);
	kv_t *f = tu_open(dir, &o);
	assert_int_equal(tu_put(f, "a", "1"), KV_EREADONLY);
	assert_int_equal(kv_put_ttl(f, "a", 1, "1", 1, 10), KV_EREADONLY);
	assert_int_equal(kv_delete(f, "a", 1), KV_EREADONLY);
	TU_OK(kv_batch_new(&b));
	TU_OK(kv_batch_put(b, "a", 1, "1", 1));
	assert_int_equal(kv_write(f, b), KV_EREADONLY);
	kv_batch_free(b);
	assert_int_equal(position(f), 0);
	TU_OK(kv_repl_apply(f, &byte, 0)); /* an empty frame: nothing */
	kv_close(f);

	tu_options(&o);
	kv_t *p = tu_open(dir, &o); /* opened without KV_REPLICA */
	assert_int_equal(kv_repl_apply(p, &byte, 1), KV_EINVAL);
	assert_int_equal(kv_repl_snapshot_begin(p), KV_EINVAL);
	kv_close(p);
	o.flags = KV_RDONLY | KV_REPLICA;
	p = tu_open(dir, &o);
	assert_int_equal(kv_repl_apply(p, &byte, 1), KV_EREADONLY);
	kv_close(p);
	tu_rmdir(dir);
}

/* Frames at or below the position are skipped; the data is unchanged. */
static void test_duplicates_are_ignored(void **state)
{
	char *pdir = tu_mkdir(), *fdir = tu_mkdir();
	wire l = { .keep = 1 };
	struct kv_repl_hooks h = hooks_for(&l);
	kv_options po, fo;

	(void)state;
	tu_options(&po);
	po.repl = &h;
	replica_options(&fo);
	kv_t *p = tu_open(pdir, &po);
	kv_t *f = tu_open(fdir, &fo);
	assert_int_equal(tu_put(p, "a", "1"), KV_OK);
	size_t first_len = l.log_len;
	assert_int_equal(tu_put(p, "a", "2"), KV_OK);
	TU_OK(kv_repl_apply(f, l.log, l.log_len));
	assert_int_equal(position(f), 2);
	tu_expect(f, "a", "2");
	/* Again, whole, and the older frame alone: nothing changes. */
	TU_OK(kv_repl_apply(f, l.log, l.log_len));
	TU_OK(kv_repl_apply(f, l.log, first_len));
	assert_int_equal(position(f), 2);
	tu_expect(f, "a", "2");
	/* A frame that starts with duplicates and goes on applies the rest. */
	assert_int_equal(tu_put(p, "a", "3"), KV_OK);
	TU_OK(kv_repl_apply(f, l.log, l.log_len));
	assert_int_equal(position(f), 3);
	tu_expect(f, "a", "3");
	struct kv_stats st = { .size = sizeof st };
	TU_OK(kv_stats(f, &st));
	assert_int_equal(st.last_lsn, 3);
	kv_close(p);
	kv_close(f);
	/* Each record was written once: the replica's log is the primary's. */
	assert_int_equal(tu_file_size(tu_seg_path(fdir, 1)),
			 tu_file_size(tu_seg_path(pdir, 1)));
	free(l.log);
	tu_rmdir(pdir);
	tu_rmdir(fdir);
}

/* A frame after a missing one is refused with KV_EGAP and the position
 * expected; once the missing frame arrives, the stream goes on. */
static void test_gap_is_refused_with_expected_position(void **state)
{
	char *pdir = tu_mkdir(), *fdir = tu_mkdir();
	wire l = { .keep = 1 };
	struct kv_repl_hooks h = hooks_for(&l);
	kv_options po, fo;
	kv_batch *b;

	(void)state;
	tu_options(&po);
	po.repl = &h;
	replica_options(&fo);
	kv_t *p = tu_open(pdir, &po);
	kv_t *f = tu_open(fdir, &fo);
	assert_int_equal(tu_put(p, "a", "1"), KV_OK);
	size_t one = l.log_len;
	TU_OK(kv_batch_new(&b));
	TU_OK(kv_batch_put(b, "b", 1, "2", 1));
	TU_OK(kv_batch_put(b, "c", 1, "3", 1));
	TU_OK(kv_write(p, b)); /* LSNs 2..3 */
	kv_batch_free(b);
	size_t two = l.log_len;
	assert_int_equal(tu_put(p, "d", "4"), KV_OK); /* LSN 4 */

	TU_OK(kv_repl_apply(f, l.log, one));
	assert_int_equal(kv_repl_apply(f, l.log + two, l.log_len - two),
			 KV_EGAP);
	assert_non_null(strstr(kv_errmsg(), "expects LSN 2"));
	assert_string_not_equal(kv_strerror(KV_EGAP), "unknown error");
	assert_int_equal(position(f), 1);
	tu_expect_missing(f, "d");
	/* The missing batch, then the refused frame. */
	TU_OK(kv_repl_apply(f, l.log + one, two - one));
	assert_int_equal(position(f), 3);
	TU_OK(kv_repl_apply(f, l.log + two, l.log_len - two));
	assert_int_equal(position(f), 4);
	assert_same(p, f);

	/* A frame that itself skips LSNs is refused whole. */
	assert_int_equal(tu_put(p, "e", "5"), KV_OK);
	size_t five = l.log_len;
	assert_int_equal(tu_put(p, "f", "6"), KV_OK);
	assert_int_equal(tu_put(p, "g", "7"), KV_OK);
	size_t six = five + (l.log_len - five) / 2;
	uint8_t *holey = malloc(l.log_len);
	memcpy(holey, l.log + two, l.log_len - two); /* LSN 4, 5, 6, 7 */
	size_t n = five - two;                        /* LSN 4 and 5 */
	memcpy(holey + n, l.log + six, l.log_len - six); /* then 7 */
	n += l.log_len - six;
	assert_int_equal(kv_repl_apply(f, holey, n), KV_EGAP);
	assert_non_null(strstr(kv_errmsg(), "expects LSN 5"));
	assert_int_equal(position(f), 4);
	tu_expect_missing(f, "e");
	free(holey);
	kv_close(p);
	kv_close(f);
	free(l.log);
	tu_rmdir(pdir);
	tu_rmdir(fdir);
}

/* A history where the replica's position falls inside a batch is not the
 * primary's: refused, not applied in part. */
static void test_batch_across_the_position_is_refused(void **state)
{
	char *adir = tu_mkdir(), *bdir = tu_mkdir(), *fdir = tu_mkdir();
	wire la = { .keep = 1 }, lb = { .keep = 1 };
	struct kv_repl_hooks ha = hooks_for(&la), hb = hooks_for(&lb);
	kv_options o, fo;
	kv_batch *b;

	(void)state;
	tu_options(&o);
	o.repl = &ha;
	kv_t *a = tu_open(adir, &o);
	o.repl = &hb;
	kv_t *pb = tu_open(bdir, &o);
	replica_options(&fo);
	kv_t *f = tu_open(fdir, &fo);
	assert_int_equal(tu_put(a, "x", "1"), KV_OK);
	assert_int_equal(tu_put(a, "y", "2"), KV_OK);
	TU_OK(kv_repl_apply(f, la.log, la.log_len)); /* at LSN 2 */
	assert_int_equal(tu_put(pb, "x", "1"), KV_OK);
	TU_OK(kv_batch_new(&b));
	TU_OK(kv_batch_put(b, "y", 1, "B", 1));
	TU_OK(kv_batch_put(b, "z", 1, "B", 1));
	TU_OK(kv_batch_put(b, "w", 1, "B", 1));
	TU_OK(kv_write(pb, b)); /* LSNs 2..4 */
	kv_batch_free(b);
	assert_int_equal(kv_repl_apply(f, lb.log, lb.log_len), KV_ECORRUPT);
	assert_non_null(strstr(kv_errmsg(), "straddles"));
	assert_int_equal(position(f), 2);
	tu_expect(f, "y", "2");
	tu_expect_missing(f, "z");
	kv_close(a);
	kv_close(pb);
	kv_close(f);
	free(la.log);
	free(lb.log);
	tu_rmdir(adir);
	tu_rmdir(bdir);
	tu_rmdir(fdir);
}

/* Snapshot of a store's pairs, to check that nothing changed. */
static void assert_unchanged(kv_t *f, const pairs *before, uint64_t pos)
{
	pairs now;

	assert_int_equal(position(f), pos);
	dump(f, &now);
	assert_int_equal(now.n, before->n);
	for (size_t i = 0; i < now.n; i++) {
		assert_int_equal(now.p[i].kl, before->p[i].kl);
		assert_memory_equal(now.p[i].k, before->p[i].k, now.p[i].kl);
		assert_int_equal(now.p[i].vl, before->p[i].vl);
		assert_memory_equal(now.p[i].v, before->p[i].v, now.p[i].vl);
	}
	pairs_free(&now);
}

/* Offsets where a run of records starts in a frame, and its end. */
static size_t run_starts(const uint8_t *b, size_t len, size_t *at, size_t cap)
{
	size_t n = 0, off = 0;
	int in_batch = 0;

	while (off < len) {
		uint32_t klen = (uint32_t)b[off + 6] | (uint32_t)b[off + 7] << 8;
		uint32_t vlen, left;
		memcpy(&vlen, b + off + 8, 4);
		memcpy(&left, b + off + 12, 4);
		if (!in_batch && n < cap)
			at[n++] = off;
		in_batch = left > 0;
		off += 32 + klen + vlen;
	}
	if (n < cap)
		at[n++] = len;
	return n;
}

/* Every flipped bit and every cut that does not fall between runs is
 * refused with KV_ECORRUPT and changes nothing; the stream then resumes
 * from the replica's position. */
static void test_damaged_frames_change_nothing(void **state)
{
	char *pdir = tu_mkdir(), *fdir = tu_mkdir();
	wire l = { .keep = 1 };
	struct kv_repl_hooks h = hooks_for(&l);
	kv_options po, fo;
	uint64_t rng = 77;
	unsigned flips = 0, cuts = 0;

	(void)state;
	tu_options(&po);
	po.flags |= KV_COMPRESS;
	po.repl = &h;
	replica_options(&fo);
	kv_t *p = tu_open(pdir, &po);
	kv_t *f = tu_open(fdir, &fo);
	l.to = f;
	l.up = 1;
	workload(p, NULL, 5, 30, 10); /* the replica has something */
	l.up = 0;
	size_t from = l.log_len;
	workload(p, NULL, 6, 12, 10); /* puts, deletes, TTLs, batches */
	uint8_t *frame = l.log + from, *bad = malloc(l.log_len - from);
	size_t len = l.log_len - from, at[64];
	size_t nruns = run_starts(frame, len, at, 64);
	uint64_t pos = position(f);
	pairs before;

	assert_true(nruns > 3);
	dump(f, &before);
	for (size_t i = 0; i < len; i++) {
		memcpy(bad, frame, len);
		bad[i] ^= (uint8_t)(1u << (tu_rand(&rng) % 8));
		assert_int_equal(kv_repl_apply(f, bad, len), KV_ECORRUPT);
		flips++;
	}
	assert_unchanged(f, &before, pos);
	for (size_t cut = 1; cut < len; cut++) {
		int boundary = 0;
		for (size_t r = 0; r < nruns; r++)
			boundary |= at[r] == cut;
		if (boundary)
			continue;
		assert_int_equal(kv_repl_apply(f, frame, cut), KV_ECORRUPT);
		cuts++;
	}
	assert_unchanged(f, &before, pos);
	pairs_free(&before);
	/* Cut between runs, a frame is shorter, not damaged: it applies. */
	TU_OK(kv_repl_apply(f, frame, at[2]));
	assert_true(position(f) > pos);
	/* And the rest comes from the primary's log. */
	TU_OK(catch_up(p, f, 100));
	assert_int_equal(position(f), position(p));
	assert_same(p, f);
	print_message("damaged frames: %u flipped, %u cut, all refused\n",
		      flips, cuts);
	free(bad);
	free(l.log);
	kv_close(p);
	kv_close(f);
	tu_rmdir(pdir);
	tu_rmdir(fdir);
}

/* A lying length is checked against the frame before anything is read
 * or allocated; a record beyond the replica's value limit is refused. */
static void test_frame_bounds_are_checked(void **state)
{
	char *pdir = tu_mkdir(), *fdir = tu_mkdir();
	wire l = { .keep = 1 };
	struct kv_repl_hooks h = hooks_for(&l);
	kv_options po, fo;
	char v[200];

	(void)state;
	tu_options(&po);
	po.repl = &h;
	replica_options(&fo);
	fo.max_value_size = 100;
	kv_t *p = tu_open(pdir, &po);
	kv_t *f = tu_open(fdir, &fo);
	memset(v, 'v', sizeof v);
	TU_OK(kv_put(p, "k", 1, v, sizeof v));
	assert_int_equal(kv_repl_apply(f, l.log, l.log_len), KV_ETOOBIG);
	assert_int_equal(position(f), 0);
	uint8_t hdr[32];
	memcpy(hdr, l.log, 32);
	hdr[11] = 0x7f; /* vlen ~2 GiB in a 32-byte frame */
	assert_int_equal(kv_repl_apply(f, hdr, sizeof hdr), KV_ECORRUPT);
	assert_int_equal(kv_repl_apply(f, NULL, 3), KV_EINVAL);
	assert_int_equal(kv_repl_apply(NULL, hdr, 3), KV_EINVAL);
	kv_close(p);
	kv_close(f);
	free(l.log);
	tu_rmdir(pdir);
	tu_rmdir(fdir);
}

/* The replica's position survives a reopen (it is the highest LSN in its
 * log) and the stream continues from there. */
static void test_replica_restart_keeps_position(void **state)
{
	char *pdir = tu_mkdir(), *fdir = tu_mkdir();
	wire l = { .up = 1 };
	struct kv_repl_hooks h = hooks_for(&l);
	kv_options po, fo;

	(void)state;
	tu_options(&po);
	po.max_file_size = 4096;
	po.repl = &h;
	replica_options(&fo);
	kv_t *p = tu_open(pdir, &po);
	kv_t *f = tu_open(fdir, &fo);
	l.to = f;
	workload(p, f, 21, 400, 30);
	assert_int_equal(tu_put(p, "last", "x"), KV_OK);
	assert_int_equal(kv_delete(p, "last", 4), KV_OK); /* ends on a delete */
	uint64_t pos = position(p);
	assert_int_equal(position(f), pos);
	TU_OK(kv_close(f));
	l.to = NULL;
	workload(p, NULL, 22, 50, 30); /* missed while down */
	f = tu_open(fdir, &fo);
	assert_int_equal(position(f), pos);
	l.to = f;
	assert_int_equal(tu_put(p, "next", "y"), KV_OK);
	assert_int_equal(l.refused, 1); /* a gap: it was down */
	assert_int_equal(l.refused_rc, KV_EGAP);
	TU_OK(catch_up(p, f, 4096));
	assert_int_equal(position(f), position(p));
	assert_same(p, f);
	kv_close(p);
	kv_close(f);
	tu_rmdir(pdir);
	tu_rmdir(fdir);
}

/* A follower that missed records catches up from the primary's log, over
 * several sealed segments, with any frame size. */
static void test_catch_up_from_the_log(void **state)
{
	size_t sizes[] = { 0, 1, 300, 1 << 20 };

	(void)state;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char *pdir = tu_mkdir(), *fdir = tu_mkdir();
		wire l = { .up = 1 };
		struct kv_repl_hooks h = hooks_for(&l);
		kv_options po, fo;

		tu_options(&po);
		po.max_file_size = 4096;
		po.repl = &h;
		replica_options(&fo);
		kv_t *p = tu_open(pdir, &po);
		kv_t *f = tu_open(fdir, &fo);
		l.to = f;
		workload(p, NULL, 31 + i, 100, 20);
		l.up = 0;
		/* Without compaction, so the history is all in the log. */
		steps_compact = 0;
		workload(p, NULL, 40 + i, 400, 20);
		steps_compact = 1;
		struct kv_stats st = { .size = sizeof st };
		TU_OK(kv_stats(p, &st));
		assert_true(st.segments > 5);
		assert_true(position(f) < position(p));
		TU_OK(catch_up(p, f, sizes[i]));
		assert_int_equal(position(f), position(p));
		assert_same(p, f);
		l.up = 1;
		workload(p, NULL, 50 + i, 50, 20);
		assert_int_equal(l.refused, 0);
		TU_OK(catch_up(p, f, sizes[i])); /* nothing left: no-op */
		assert_int_equal(position(f), position(p));
		assert_same(p, f);
		kv_close(p);
		kv_close(f);
		tu_rmdir(pdir);
		tu_rmdir(fdir);
	}
}

static int stop_after(void *ctx, uint64_t first, uint64_t last,
		      const void *b, size_t len)
{
	int *n = ctx;

	(void)first;
	(void)last;
	(void)b;
	(void)len;
	return --*n == 0 ? 42 : 0;
}

/* Positions past the primary, inside a batch, or in a compacted range
 * are answered with an error, not with wrong records. */
static void test_read_refuses_what_it_cannot_serve(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_batch *b;
	int n = 2;

	(void)state;
	tu_options(&o);
	o.max_file_size = 4096;
	kv_t *p = tu_open(dir, &o);
	TU_OK(kv_batch_new(&b));
	TU_OK(kv_batch_put(b, "a", 1, "1", 1));
	TU_OK(kv_batch_put(b, "b", 1, "2", 1));
	TU_OK(kv_write(p, b)); /* LSNs 1..2 */
	kv_batch_free(b);
	assert_int_equal(position(p), 2);
	assert_int_equal(kv_repl_read(p, 1, 0, stop_after, &n), KV_EINVAL);
	assert_non_null(strstr(kv_errmsg(), "inside a batch"));
	assert_int_equal(kv_repl_read(p, 9, 0, stop_after, &n), KV_ESNAPSHOT);
	assert_non_null(strstr(kv_errmsg(), "ahead"));
	TU_OK(kv_repl_read(p, 2, 0, stop_after, &n)); /* nothing after 2 */
	/* A callback's non-zero stops the read and is returned. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(tu_put(p, "c", "3"), KV_OK);
	n = 2;
	assert_int_equal(kv_repl_read(p, 0, 0, stop_after, &n), 42);
	kv_close(p);
	tu_rmdir(dir);
}

/* Compaction removed records the follower needs (overwritten values and
 * the tombstone of a deleted key): the log cannot serve the range, and a
 * snapshot into an empty replica plus the stream after it can. */
static void test_snapshot_when_compaction_removed_the_range(void **state)
{
	char *pdir = tu_mkdir(), *fdir = tu_mkdir();
	wire l = { .up = 1 };
	struct kv_repl_hooks h = hooks_for(&l);
	kv_options po, fo;
	char v[300];

	(void)state;
	memset(v, 'v', sizeof v);
	tu_options(&po);
	po.max_file_size = 4096;
	po.repl = &h;
	replica_options(&fo);
	kv_t *p = tu_open(pdir, &po);
	kv_t *f = tu_open(fdir, &fo);
	l.to = f;
	assert_int_equal(tu_put(p, "doomed", "1"), KV_OK);
	workload(p, NULL, 61, 100, 20);
	l.up = 0;
	TU_OK(kv_delete(p, "doomed", 6));
	for (int i = 0; i < 60; i++) /* overwrites, several segments */
		TU_OK(kv_put(p, "hot", 3, v, 10 + (size_t)i));
	kv_compact_stats cs;
	TU_OK(kv_compact(p, &cs));
	assert_true(cs.segments_in > 0);
	assert_int_equal(catch_up(p, f, 0), KV_ESNAPSHOT);
	assert_non_null(strstr(kv_errmsg(), "needs a snapshot"));
	assert_string_not_equal(kv_strerror(KV_ESNAPSHOT), "unknown error");
	tu_expect(f, "doomed", "1"); /* the follower is stale, and knows */

	/* Only an empty replica takes a snapshot. */
	assert_int_equal(kv_repl_snapshot_begin(f), KV_EINVAL);
	f = rebuild(p, f, &fdir);
	tu_expect_missing(f, "doomed");
	assert_int_equal(position(f), position(p));
	assert_same(p, f);
	/* The stream goes on after the snapshot, and survives a reopen. */
	l.to = f;
	l.up = 1;
	workload(p, f, 62, 200, 20);
	TU_OK(kv_delete(p, "hot", 3)); /* ends on a delete */
	assert_int_equal(l.refused, 0);
	assert_same(p, f);
	TU_OK(kv_close(f));
	f = tu_open(fdir, &fo);
	assert_int_equal(position(f), position(p));
	assert_same(p, f);
	kv_close(p);
	kv_close(f);
	tu_rmdir(pdir);
	tu_rmdir(fdir);
}

/* While a replica is away, kv_repl_retain keeps the log it will need
 * from compaction; without it, the same compactions leave a snapshot as
 * the only way back. */
static void overwrite_and_compact(kv_t *p, int rounds)
{
	char v[300];

	memset(v, 'r', sizeof v);
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < 40; i++)
			TU_OK(kv_put(p, i % 2 ? "hot" : "warm", 4 - (i % 2),
				     v, 50 + (size_t)i));
		TU_OK(kv_delete(p, "warm", 4));
		TU_OK(kv_compact(p, NULL));
	}
}

static void test_retain_keeps_the_log_for_a_replica(void **state)
{
	char *pdir = tu_mkdir(), *fdir = tu_mkdir();
	wire l = { .up = 1 };
	struct kv_repl_hooks h = hooks_for(&l);
	kv_options po, fo;
	kv_compact_stats cs;

	(void)state;
	tu_options(&po);
	po.max_file_size = 4096;
	po.repl = &h;
	replica_options(&fo);
	kv_t *p = tu_open(pdir, &po);
	kv_t *f = tu_open(fdir, &fo);
	l.to = f;
	workload(p, NULL, 81, 200, 20);
	l.up = 0;
	TU_OK(kv_repl_retain(p, position(f)));
	overwrite_and_compact(p, 5);
	TU_OK(kv_compact(p, &cs));
	TU_OK(catch_up(p, f, 0));
	assert_same(p, f);
	/* Released: the same compactions now remove what it needs. */
	TU_OK(kv_repl_retain(p, UINT64_MAX));
	overwrite_and_compact(p, 5);
	assert_int_equal(catch_up(p, f, 0), KV_ESNAPSHOT);
	assert_int_equal(kv_repl_retain(NULL, 0), KV_EINVAL);
	kv_close(p);
	kv_close(f);
	tu_rmdir(pdir);
	tu_rmdir(fdir);
}

/* The snapshot's position may be above every LSN it holds (the newest
 * writes were deletes): the replica keeps that position across a reopen,
 * and the stream continues after it. */
static void test_snapshot_position_survives_reopen(void **state)
{
	char *pdir = tu_mkdir(), *fdir = tu_mkdir();
	kv_options po, fo;
	uint64_t at;

	(void)state;
	tu_options(&po);
	replica_options(&fo);
	kv_t *p = tu_open(pdir, &po);
	assert_int_equal(tu_put(p, "a", "1"), KV_OK);
	assert_int_equal(tu_put(p, "b", "2"), KV_OK);
	TU_OK(kv_delete(p, "b", 1)); /* LSN 3; "a" (LSN 1) is all that lives */
	kv_t *f = tu_open(fdir, &fo);
	TU_OK(kv_repl_snapshot_begin(f));
	assert_int_equal(kv_repl_position(f, &at), KV_ESNAPSHOT);
	assert_int_equal(kv_repl_snapshot_begin(f), KV_EINVAL); /* twice */
	TU_OK(kv_repl_snapshot(p, 0, apply_cb, f, &at));
	assert_int_equal(at, 3);
	TU_OK(kv_repl_snapshot(p, 0, apply_cb, f, &at)); /* resent: no harm */
	assert_int_equal(kv_repl_snapshot_end(f, 0), KV_EINVAL); /* < LSN 1 */
	TU_OK(kv_repl_snapshot_end(f, at));
	assert_int_equal(kv_repl_snapshot_end(f, at), KV_EINVAL); /* twice */
	assert_int_equal(position(f), 3);
	tu_expect(f, "a", "1");
	TU_OK(kv_close(f));
	f = tu_open(fdir, &fo);
	assert_int_equal(position(f), 3);
	assert_int_equal(tu_put(p, "c", "3"), KV_OK);
	TU_OK(catch_up(p, f, 0));
	assert_int_equal(position(f), 4);
	assert_same(p, f);
	/* The replica can serve its own history after the snapshot only. */
	assert_int_equal(kv_repl_read(f, 2, 0, apply_cb, p), KV_ESNAPSHOT);
	TU_OK(kv_close(f));
	/* Promoted (opened without KV_REPLICA), it numbers on from there. */
	tu_options(&fo);
	f = tu_open(fdir, &fo);
	assert_int_equal(tu_put(f, "d", "4"), KV_OK);
	struct kv_stats st = { .size = sizeof st };
	TU_OK(kv_stats(f, &st));
	assert_int_equal(st.last_lsn, 5);
	kv_close(p);
	kv_close(f);
	tu_rmdir(pdir);
	tu_rmdir(fdir);
}

typedef struct partial {
	kv_t *f;
	int left;
} partial;

static int apply_some(void *ctx, uint64_t first, uint64_t last,
		      const void *b, size_t len)
{
	partial *pp = ctx;

	(void)first;
	(void)last;
	if (pp->left-- <= 0)
		return 1;
	return kv_repl_apply(pp->f, b, len);
}

/* A snapshot cut short by a crash leaves a replica that says so, instead
 * of one that passes for up to date. */
static void test_interrupted_snapshot_is_reported(void **state)
{
	char *pdir = tu_mkdir(), *fdir = tu_mkdir();
	kv_options po, fo;
	uint64_t at;

	(void)state;
	tu_options(&po);
	replica_options(&fo);
	kv_t *p = tu_open(pdir, &po);
	for (int i = 0; i < 10; i++) {
		char k[8];
		snprintf(k, sizeof k, "k%d", i);
		assert_int_equal(tu_put(p, k, "v"), KV_OK);
	}
	kv_t *f = tu_open(fdir, &fo);
	TU_OK(kv_repl_snapshot_begin(f));
	/* Two records arrive, then the replica goes down. */
	partial pp = { f, 2 };
	assert_int_equal(kv_repl_snapshot(p, 0, apply_some, &pp, &at), 1);
	assert_int_equal(at, 0); /* not completed: no position */
	TU_OK(kv_close(f)); /* no kv_repl_snapshot_end */
	f = tu_open(fdir, &fo);
	assert_int_equal(kv_repl_position(f, &at), KV_ESNAPSHOT);
	assert_non_null(strstr(kv_errmsg(), "interrupted"));
	assert_int_equal(kv_repl_apply(f, "x", 1), KV_ESNAPSHOT);
	assert_int_equal(kv_repl_read(f, 0, 0, apply_cb, p), KV_ESNAPSHOT);
	assert_int_equal(kv_repl_snapshot_begin(f), KV_EINVAL); /* not empty */
	kv_close(f);
	/* A snapshot interrupted before its first record leaves an empty
	 * replica, which may begin again. */
	char *edir = tu_mkdir();
	f = tu_open(edir, &fo);
	TU_OK(kv_repl_snapshot_begin(f));
	TU_OK(kv_close(f));
	f = tu_open(edir, &fo);
	assert_int_equal(kv_repl_position(f, &at), KV_ESNAPSHOT);
	TU_OK(kv_repl_snapshot_begin(f));
	TU_OK(kv_repl_snapshot(p, 64, apply_cb, f, &at));
	TU_OK(kv_repl_snapshot_end(f, at));
	assert_int_equal(position(f), position(p));
	assert_same(p, f);
	kv_close(f);
	kv_close(p);
	tu_rmdir(edir);
	tu_rmdir(pdir);
	tu_rmdir(fdir);
}

/* A failing hook is counted and the write succeeds; with KV_HOOK_STRICT
 * the write returns KV_EHOOK, and is committed all the same. */
static void test_hook_errors_counted_or_strict(void **state)
{
	char *dir = tu_mkdir();
	wire l = { .fail = -1 };
	struct kv_repl_hooks h = hooks_for(&l);
	struct kv_stats st = { .size = sizeof st };
	kv_options o;

	(void)state;
	tu_options(&o);
	o.repl = &h;
	kv_t *p = tu_open(dir, &o);
	assert_int_equal(tu_put(p, "a", "1"), KV_OK);
	assert_int_equal(tu_put(p, "b", "2"), KV_OK);
	TU_OK(kv_stats(p, &st));
	assert_int_equal(st.repl_hook_calls, 2);
	assert_int_equal(st.repl_hook_errors, 2);
	TU_OK(kv_close(p));
	h.flags = KV_HOOK_STRICT;
	p = tu_open(dir, &o);
	assert_int_equal(tu_put(p, "c", "3"), KV_EHOOK);
	assert_non_null(strstr(kv_errmsg(), "committed"));
	tu_expect(p, "c", "3");
	l.fail = 0;
	assert_int_equal(tu_put(p, "d", "4"), KV_OK);
	TU_OK(kv_stats(p, &st));
	assert_int_equal(st.repl_hook_calls, 2);
	assert_int_equal(st.repl_hook_errors, 1);
	kv_close(p);
	tu_rmdir(dir);
}

/* Inside a hook, the store may be read but not written or closed (a
 * write would wait for its turn behind the hook that made it). */
typedef struct reentry {
	kv_t *db;
	int put_rc, close_rc, get_rc, apply_rc;
	int calls;
} reentry;

static int reenter(void *ctx, uint64_t first, uint64_t last, const void *b,
		   size_t len)
{
	reentry *r = ctx;
	void *v;
	size_t n;

	(void)first;
	(void)last;
	(void)b;
	(void)len;
	if (r->calls++)
		return 0;
	r->put_rc = tu_put(r->db, "inner", "x");
	r->close_rc = kv_close(r->db);
	r->get_rc = kv_get(r->db, "outer", 5, &v, &n);
	if (r->get_rc == 0)
		kv_free(v);
	return 0;
}

static void test_hook_may_read_but_not_write(void **state)
{
	char *dir = tu_mkdir();
	reentry r = {0};
	struct kv_repl_hooks h = { .size = sizeof h, .commit = reenter,
				   .ctx = &r };
	kv_options o;

	(void)state;
	tu_options(&o);
	o.repl = &h;
	r.db = tu_open(dir, &o);
	assert_int_equal(tu_put(r.db, "outer", "y"), KV_OK);
	assert_int_equal(r.put_rc, KV_EBUSY);
	assert_int_equal(r.close_rc, KV_EBUSY);
	assert_int_equal(r.get_rc, KV_OK); /* the write is visible */
	tu_expect_missing(r.db, "inner");
	assert_int_equal(tu_put(r.db, "after", "z"), KV_OK);
	TU_OK(kv_close(r.db));
	tu_rmdir(dir);
}

/* Down a chain (primary -> replica, in one thread), a write back to the
 * primary from the replica's hook is refused too, not a deadlock. */
typedef struct back {
	wire l;
	kv_t *primary;
	int rc;
} back;

static int write_back(void *ctx, uint64_t first, uint64_t last,
		      const void *b, size_t len)
{
	back *k = ctx;

	(void)first;
	(void)last;
	(void)b;
	(void)len;
	k->rc = tu_put(k->primary, "loop", "x");
	return 0;
}

static int ship_back(void *ctx, uint64_t first, uint64_t last,
		     const void *b, size_t len)
{
	return ship(&((back *)ctx)->l, first, last, b, len);
}

static void test_write_back_up_a_chain_is_refused(void **state)
{
	char *pdir = tu_mkdir(), *fdir = tu_mkdir();
	back k = { .l = { .up = 1 }, .rc = 1 };
	struct kv_repl_hooks hp = { .size = sizeof hp, .commit = ship_back,
				    .ctx = &k };
	struct kv_repl_hooks hf = { .size = sizeof hf, .commit = write_back,
				    .ctx = &k };
	kv_options po, fo;

	(void)state;
	tu_options(&po);
	po.repl = &hp;
	replica_options(&fo);
	fo.repl = &hf;
	k.primary = tu_open(pdir, &po);
	k.l.to = tu_open(fdir, &fo);
	assert_int_equal(tu_put(k.primary, "a", "1"), KV_OK);
	assert_int_equal(k.rc, KV_EBUSY);
	assert_int_equal(k.l.refused, 0);
	tu_expect(k.l.to, "a", "1");
	tu_expect_missing(k.primary, "loop");
	kv_close(k.primary);
	kv_close(k.l.to);
	tu_rmdir(pdir);
	tu_rmdir(fdir);
}

/* The seal hook sees every sealed log segment, in order, with a path that
 * exists; compaction leaves the file alone until the hook returns. */
typedef struct seals {
	kv_t *db;
	uint64_t seq[64];
	int n, missing, compactions;
	unsigned commits_before[64];
	wire *l;
} seals;

static int on_seal(void *ctx, uint64_t seq, const char *path)
{
	seals *s = ctx;
	struct stat st;
	kv_compact_stats cs;

	/* A compaction here, which would take this segment if it could. */
	if (kv_compact(s->db, &cs) == 0 && cs.segments_in)
		s->compactions++;
	if (stat(path, &st) != 0)
		s->missing++;
	if (s->n < 64) {
		s->commits_before[s->n] = s->l->frames;
		s->seq[s->n++] = seq;
	}
	return 0;
}

static int on_commit(void *ctx, uint64_t first, uint64_t last,
		     const void *b, size_t len)
{
	seals *s = ctx;

	return ship(s->l, first, last, b, len);
}

static void test_seal_hook_sees_each_sealed_segment(void **state)
{
	char *dir = tu_mkdir();
	wire l = {0};
	seals s = { .l = &l };
	struct kv_repl_hooks h = { .size = sizeof h, .commit = on_commit,
				   .seal = on_seal, .ctx = &s };
	kv_options o;
	char v[500];

	(void)state;
	memset(v, 'v', sizeof v);
	tu_options(&o);
	o.max_file_size = 4096;
	o.repl = &h;
	s.db = tu_open(dir, &o);
	for (int i = 0; i < 60; i++) /* every key overwritten: dead bytes */
		TU_OK(kv_put(s.db, i % 2 ? "a" : "b", 1, v, sizeof v));
	assert_true(s.n >= 5);
	assert_int_equal(s.missing, 0);
	assert_true(s.compactions > 0); /* older segments did go */
	for (int i = 1; i < s.n; i++) {
		assert_true(s.seq[i] > s.seq[i - 1]);
		/* A seal comes before the write that filled the next one. */
		assert_true(s.commits_before[i] > s.commits_before[i - 1]);
	}
	assert_int_equal(l.misordered, 0);
	kv_close(s.db);
	tu_rmdir(dir);
}

/* Under KV_SYNC_ALWAYS the hook runs after the fdatasync that makes the
 * write durable, and a write whose fdatasync failed is never shipped. */
typedef struct timing {
	unsigned syncs_at_call;
	int calls;
} timing;

static int note_syncs(void *ctx, uint64_t first, uint64_t last,
		      const void *b, size_t len)
{
	timing *t = ctx;

	(void)first;
	(void)last;
	(void)b;
	(void)len;
	t->calls++;
	t->syncs_at_call = tu_calls(TU_FDATASYNC);
	return 0;
}

static void test_hook_runs_after_the_sync_the_mode_promises(void **state)
{
	char *dir = tu_mkdir();
	timing t = {0};
	struct kv_repl_hooks h = { .size = sizeof h, .commit = note_syncs,
				   .ctx = &t };
	kv_options o;

	(void)state;
	tu_options(&o);
	o.sync_mode = KV_SYNC_ALWAYS;
	o.repl = &h;
	kv_t *p = tu_open(dir, &o);
	tu_fault(TU_FDATASYNC, 1000000, EIO, 0); /* counts, never fires */
	unsigned before = tu_calls(TU_FDATASYNC);
	assert_int_equal(tu_put(p, "a", "1"), KV_OK);
	assert_int_equal(t.calls, 1);
	assert_true(t.syncs_at_call > before);
	tu_fault(TU_FDATASYNC, 0, EIO, 0);
	assert_int_equal(tu_put(p, "b", "2"), KV_EIO);
	assert_int_equal(t.calls, 1); /* not shipped */
	tu_fault_clear();
	kv_close(p);

	/* KV_SYNC_WRITE: after the write reached the kernel, no sync. */
	o.sync_mode = KV_SYNC_WRITE;
	p = tu_open(dir, &o);
	tu_fault(TU_FDATASYNC, 1000000, EIO, 0);
	before = tu_calls(TU_FDATASYNC);
	assert_int_equal(tu_put(p, "c", "3"), KV_OK);
	assert_int_equal(t.calls, 2);
	assert_int_equal(t.syncs_at_call, before);
	tu_fault_clear();
	kv_close(p);

	/* KV_SYNC_NONE keeps writes in the process: no commit hook there. */
	kv_t *bad = NULL;
	o.sync_mode = KV_SYNC_NONE;
	assert_int_equal(kv_open(dir, &o, &bad), KV_EINVAL);
	assert_null(bad);
	h.commit = NULL;
	h.seal = on_seal; /* a seal hook alone is fine */
	bad = tu_open(dir, &o);
	kv_close(bad);
	h.size = 8;
	o.sync_mode = KV_SYNC_WRITE;
	assert_int_equal(kv_open(dir, &o, &bad), KV_EINVAL);
	h.size = sizeof h;
	h.flags = 0x80;
	assert_int_equal(kv_open(dir, &o, &bad), KV_EINVAL);
	tu_rmdir(dir);
}

/* Writers in several threads: the hook still sees one frame at a time,
 * in LSN order with no gap, and the follower ends equal. */
typedef struct writer {
	kv_t *db;
	int id, ops;
} writer;

static void *write_some(void *arg)
{
	writer *w = arg;
	char k[32], v[64];

	for (int i = 0; i < w->ops; i++) {
		snprintf(k, sizeof k, "t%d-%d", w->id, i % 50);
		snprintf(v, sizeof v, "%d", i);
		if (i % 7 == 6) {
			kv_delete(w->db, k, strlen(k));
		} else if (i % 11 == 10) {
			kv_batch *b;
			kv_batch_new(&b);
			kv_batch_put(b, k, strlen(k), v, strlen(v));
			kv_batch_put(b, "shared", 6, v, strlen(v));
			kv_write(w->db, b);
			kv_batch_free(b);
		} else if (kv_put(w->db, k, strlen(k), v, strlen(v))) {
			return (void *)1;
		}
	}
	return NULL;
}

typedef struct hook_pair {
	wire *l;
	unsigned *sealed;
} hook_pair;

static int on_commit2(void *ctx, uint64_t first, uint64_t last,
		      const void *b, size_t len)
{
	return ship(((hook_pair *)ctx)->l, first, last, b, len);
}

typedef struct guarded {
	wire l;
	int inside, overlaps;
} guarded;

static int ship_guarded(void *ctx, uint64_t first, uint64_t last,
			const void *b, size_t len)
{
	guarded *g = ctx;

	if (__atomic_fetch_add(&g->inside, 1, __ATOMIC_SEQ_CST))
		g->overlaps++;
	int rc = ship(&g->l, first, last, b, len);
	__atomic_fetch_sub(&g->inside, 1, __ATOMIC_SEQ_CST);
	return rc;
}

static void concurrent(uint32_t mode)
{
	char *pdir = tu_mkdir(), *fdir = tu_mkdir();
	guarded g = { .l = { .up = 1 } };
	struct kv_repl_hooks h = { .size = sizeof h, .commit = ship_guarded,
				   .ctx = &g };
	kv_options po, fo;
	pthread_t th[4];
	writer w[4];

	tu_options(&po);
	po.sync_mode = mode;
	po.max_file_size = 8192;
	po.repl = &h;
	replica_options(&fo);
	kv_t *p = tu_open(pdir, &po);
	g.l.to = tu_open(fdir, &fo);
	for (int i = 0; i < 4; i++) {
		w[i] = (writer){ p, i, 300 };
		assert_int_equal(pthread_create(&th[i], NULL, write_some, &w[i]),
				 0);
	}
	for (int i = 0; i < 4; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		assert_null(ret);
	}
	assert_int_equal(g.overlaps, 0);
	assert_int_equal(g.l.misordered, 0);
	assert_int_equal(g.l.refused, 0);
	assert_int_equal(position(g.l.to), position(p));
	assert_same(p, g.l.to);
	kv_close(p);
	kv_close(g.l.to);
	tu_rmdir(pdir);
	tu_rmdir(fdir);
}

static void test_concurrent_writers_ship_in_order(void **state)
{
	(void)state;
	concurrent(KV_SYNC_WRITE);
	concurrent(KV_SYNC_ALWAYS); /* group commit */
}

/* Writers in threads, background compaction on both stores, a seal hook,
 * and a reader thread that keeps a second follower up to date through
 * kv_repl_read (rebuilding it from a snapshot when compaction was faster):
 * both followers end equal to the primary. */
typedef struct reader_arg {
	kv_t *p, *f;
	const char *base;        /* replicas go in base/r<n> */
	int stop;
	unsigned reads, snapshots, fails;
} reader_arg;

static int count_seal(void *ctx, uint64_t seq, const char *path)
{
	(void)seq;
	(void)path;
	__atomic_fetch_add(((hook_pair *)ctx)->sealed, 1, __ATOMIC_SEQ_CST);
	return 0;
}

/* A new replica in base/r<n>, from p's snapshot and the stream after it.
 * No tu_mkdir here: it resets the io table, which background threads
 * read. */
static kv_t *snapshot_into(kv_t *p, const char *base, unsigned n)
{
	char path[512];
	kv_options o;
	kv_t *f = NULL;
	uint64_t at;

	snprintf(path, sizeof path, "%s/r%u", base, n);
	replica_options(&o);
	o.flags &= ~KV_NO_AUTO_COMPACT;
	o.compact_dead_pct = 20;
	int rc = kv_open(path, &o, &f);
	if (rc == 0)
		rc = kv_repl_snapshot_begin(f);
	if (rc == 0)
		rc = kv_repl_snapshot(p, 4096, apply_cb, f, &at);
	if (rc == 0)
		rc = kv_repl_snapshot_end(f, at);
	/* The log after the snapshot may be compacted away already; the
	 * next round then takes another snapshot. */
	if (rc == 0 && (rc = kv_repl_read(p, at, 0, apply_cb, f)) ==
		       KV_ESNAPSHOT)
		rc = 0;
	if (rc) {
		print_message("snapshot into %s: %s: %s\n", path,
			      kv_strerror(rc), kv_errmsg());
		kv_close(f);
		return NULL;
	}
	return f;
}

static void *keep_up(void *arg)
{
	reader_arg *r = arg;

	while (!__atomic_load_n(&r->stop, __ATOMIC_SEQ_CST)) {
		uint64_t pos;
		int rc = kv_repl_position(r->f, &pos);
		if (rc == 0)
			rc = kv_repl_read(r->p, pos, 1024, apply_cb, r->f);
		if (rc == KV_ESNAPSHOT) {
			kv_close(r->f);
			r->f = snapshot_into(r->p, r->base, ++r->snapshots);
			if (!r->f)
				return (void *)1;
		} else if (rc) {
			r->fails++;
		}
		r->reads++;
	}
	return NULL;
}

static void test_catch_up_beside_writers_and_compaction(void **state)
{
	char *pdir = tu_mkdir(), *fdir = tu_mkdir(), *base = tu_mkdir();
	wire l = { .up = 1 };
	unsigned sealed = 0;
	hook_pair hp = { &l, &sealed };
	struct kv_repl_hooks h = { .size = sizeof h, .commit = on_commit2,
				   .seal = count_seal, .ctx = &hp };
	kv_options po, fo;
	pthread_t th[3], rt;
	writer w[3];
	reader_arg r = { .base = base };
	void *ret;

	(void)state;
	tu_options(&po);
	po.flags &= ~KV_NO_AUTO_COMPACT;
	po.max_file_size = 4096;
	po.compact_dead_pct = 20;
	po.repl = &h;
	replica_options(&fo);
	fo.flags &= ~KV_NO_AUTO_COMPACT;
	fo.compact_dead_pct = 20;
	kv_t *p = tu_open(pdir, &po);
	l.to = tu_open(fdir, &fo);
	r.p = p;
	r.f = snapshot_into(p, base, 0);
	assert_non_null(r.f);
	assert_int_equal(pthread_create(&rt, NULL, keep_up, &r), 0);
	for (int i = 0; i < 3; i++) {
		w[i] = (writer){ p, i, 1500 * scale() };
		assert_int_equal(pthread_create(&th[i], NULL, write_some, &w[i]),
				 0);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], &ret);
		assert_null(ret);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(rt, &ret);
	assert_null(ret);
	assert_int_equal(r.fails, 0);
	int rc = catch_up(p, r.f, 0);
	if (rc == KV_ESNAPSHOT) {
		kv_close(r.f);
		r.f = snapshot_into(p, base, ++r.snapshots);
		assert_non_null(r.f);
	} else {
		TU_OK(rc);
	}
	assert_int_equal(l.refused, 0);
	assert_int_equal(l.misordered, 0);
	assert_true(sealed > 0);
	assert_same(p, l.to);
	assert_same(p, r.f);
	print_message("beside writers: %u reads, %u snapshots, %u seals\n",
		      r.reads, r.snapshots, sealed);
	kv_close(p);
	kv_close(l.to);
	kv_close(r.f);
	tu_rmdir(pdir);
	tu_rmdir(fdir);
	tu_rmdir(base);
}

/* A failed group-commit fdatasync with writers in flight: nobody hangs,
 * and the hook got exactly the writes that returned KV_OK, which are a
 * prefix of the log, so the follower saw no gap. */
typedef struct counted {
	kv_t *db;
	int id;
	unsigned ok;
} counted;

static void *put_until_error(void *arg)
{
	counted *c = arg;
	char k[32];

	for (int i = 0; i < 200; i++) {
		snprintf(k, sizeof k, "c%d-%d", c->id, i);
		if (tu_put(c->db, k, "v") != KV_OK)
			break;
		c->ok++;
	}
	return NULL;
}

static void test_failed_group_sync_ships_only_acknowledged(void **state)
{
	char *pdir = tu_mkdir(), *fdir = tu_mkdir();
	wire l = { .up = 1 };
	struct kv_repl_hooks h = hooks_for(&l);
	kv_options po, fo;
	pthread_t th[4];
	counted c[4];
	unsigned ok = 0;

	(void)state;
	tu_options(&po);
	po.sync_mode = KV_SYNC_ALWAYS;
	po.repl = &h;
	replica_options(&fo);
	/* No rollover in the replica: each would fdatasync the sealed
	 * segment, and the 41st fdatasync of the process, which the fault
	 * fails, must be one of the primary's group syncs. */
	fo.max_file_size = 64 << 20;
	kv_t *p = tu_open(pdir, &po);
	l.to = tu_open(fdir, &fo);
	tu_fault(TU_FDATASYNC, 40, EIO, 0);
	for (int i = 0; i < 4; i++) {
		c[i] = (counted){ p, i, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, put_until_error,
						&c[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ok += c[i].ok;
	}
	tu_fault_clear();
	assert_true(ok < 800); /* the fault fired */
	assert_int_equal(l.frames, ok);
	assert_int_equal(l.refused, 0);
	assert_int_equal(l.misordered, 0);
	assert_int_equal(position(l.to), ok);
	kv_close(p);
	kv_close(l.to);
	tu_rmdir(pdir);
	tu_rmdir(fdir);
}

/* A replica's own hook ships what it applies: a chain of three stores. */
static void test_replicas_chain(void **state)
{
	char *d[3] = { tu_mkdir(), tu_mkdir(), tu_mkdir() };
	wire l1 = { .up = 1 }, l2 = { .up = 1 };
	struct kv_repl_hooks h1 = hooks_for(&l1), h2 = hooks_for(&l2);
	kv_options o[3];

	(void)state;
	tu_options(&o[0]);
	o[0].max_file_size = 4096;
	o[0].repl = &h1;
	replica_options(&o[1]);
	o[1].repl = &h2;
	replica_options(&o[2]);
	kv_t *p = tu_open(d[0], &o[0]);
	kv_t *a = tu_open(d[1], &o[1]);
	kv_t *b = tu_open(d[2], &o[2]);
	l1.to = a;
	l2.to = b;
	workload(p, b, 71, 600, 25);
	assert_int_equal(l1.refused + l2.refused, 0);
	assert_int_equal(position(b), position(p));
	assert_same(p, b);
	kv_close(p);
	kv_close(a);
	kv_close(b);
	for (int i = 0; i < 3; i++)
		tu_rmdir(d[i]);
}

/* A store's position must never go back, or a replica skips the next
 * writes as duplicates. It did (found here): a rollover whose append
 * failed left the active segment empty, so the tombstone floor of a full
 * compaction was "no segment outside the inputs", the newest record (a
 * tombstone, LSN 2) was dropped, and a reopen numbered from LSN 1 again.
 * The floor is now capped at the newest LSN (compact.c, floor_locked). */
static void test_position_never_goes_back(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	char v[2000];

	(void)state;
	memset(v, 'v', sizeof v);
	tu_options(&o);
	o.max_file_size = 4096;
	kv_t *db = tu_open(dir, &o);
	TU_OK(kv_put(db, "k", 1, v, sizeof v));
	TU_OK(kv_delete(db, "k", 1));
	uint64_t before = position(db);
	tu_fault(TU_PWRITE, 1, EIO, 0); /* the header of the new segment
					 * lands, the record after it not */
	assert_int_equal(kv_put(db, "x", 1, v, sizeof v), KV_EIO);
	tu_fault_clear();
	TU_OK(kv_compact(db, NULL));
	TU_OK(kv_close(db));
	db = tu_open(dir, &o);
	uint64_t after = position(db);
	kv_close(db);
	tu_rmdir(dir);
	assert_true(after >= before);
}

/* The new error codes have text. */
static void test_new_errors_have_text(void **state)
{
	(void)state;
	for (int e = KV_EGAP; e >= KV_EHOOK; e--)
		assert_string_not_equal(kv_strerror(e), "unknown error");
	assert_string_equal(kv_strerror(KV_EHOOK - 1), "unknown error");
}

/* The long random run: the hook wire goes down and up; on the way back
 * the follower catches up from the log, or, when compaction removed what
 * it needed, is rebuilt from a snapshot. */
static void test_random_outages_converge(void **state)
{
	char *pdir = tu_mkdir(), *fdir = tu_mkdir();
	wire l = { .up = 1 };
	struct kv_repl_hooks h = hooks_for(&l);
	kv_options po, fo;
	uint64_t rng = 0x5eed;
	unsigned outages = 0, by_log = 0, by_snapshot = 0;

	(void)state;
	tu_options(&po);
	po.flags |= KV_COMPRESS;
	po.max_file_size = 4096;
	po.repl = &h;
	replica_options(&fo);
	kv_t *p = tu_open(pdir, &po);
	kv_t *f = tu_open(fdir, &fo);
	l.to = f;
	steps_compact = 0;
	for (int round = 0; round < 120 * scale(); round++) {
		int ops = 20 + (int)(tu_rand(&rng) % 80);
		for (int i = 0; i < ops; i++)
			step(p, f, &rng, 30);
		/* Compactions in some rounds only, so that some outages
		 * can be served from the log and some cannot. */
		if (tu_rand(&rng) % 4 == 0)
			TU_OK(kv_compact(p, NULL));
		if (tu_rand(&rng) % 4 == 0)
			TU_OK(kv_compact(f, NULL));
		if (tu_rand(&rng) % 2) {
			l.up = !l.up;
			outages += !l.up;
		}
		if (!l.up || tu_rand(&rng) % 3)
			continue;
		int rc = catch_up(p, f, tu_rand(&rng) % 2 ? 0 : 512);
		if (rc == KV_ESNAPSHOT) {
			f = rebuild(p, f, &fdir);
			l.to = f;
			by_snapshot++;
		} else {
			TU_OK(rc);
			by_log++;
		}
		assert_int_equal(position(f), position(p));
		assert_same(p, f);
		l.refused = 0;
	}
	steps_compact = 1;
	l.up = 0;
	int rc = catch_up(p, f, 0);
	if (rc == KV_ESNAPSHOT) {
		f = rebuild(p, f, &fdir);
		by_snapshot++;
	} else {
		TU_OK(rc);
		by_log++;
	}
	assert_same(p, f);
	print_message("random outages: %u outages, %u caught up from the "
		      "log, %u rebuilt from snapshots\n", outages, by_log,
		      by_snapshot);
	assert_true(by_log > 0 && by_snapshot > 0);
	kv_close(p);
	kv_close(f);
	tu_rmdir(pdir);
	tu_rmdir(fdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hook_ships_exact_log_in_commit_order),
		cmocka_unit_test(test_follower_converges_sync_write),
		cmocka_unit_test(test_follower_converges_sync_always),
		cmocka_unit_test(test_follower_converges_sync_every),
		cmocka_unit_test(test_replica_refuses_local_writes),
		cmocka_unit_test(test_duplicates_are_ignored),
		cmocka_unit_test(test_gap_is_refused_with_expected_position),
		cmocka_unit_test(test_batch_across_the_position_is_refused),
		cmocka_unit_test(test_damaged_frames_change_nothing),
		cmocka_unit_test(test_frame_bounds_are_checked),
		cmocka_unit_test(test_replica_restart_keeps_position),
		cmocka_unit_test(test_catch_up_from_the_log),
		cmocka_unit_test(test_read_refuses_what_it_cannot_serve),
		cmocka_unit_test(test_snapshot_when_compaction_removed_the_range),
		cmocka_unit_test(test_retain_keeps_the_log_for_a_replica),
		cmocka_unit_test(test_snapshot_position_survives_reopen),
		cmocka_unit_test(test_interrupted_snapshot_is_reported),
		cmocka_unit_test(test_hook_errors_counted_or_strict),
		cmocka_unit_test(test_hook_may_read_but_not_write),
		cmocka_unit_test(test_write_back_up_a_chain_is_refused),
		cmocka_unit_test(test_seal_hook_sees_each_sealed_segment),
		cmocka_unit_test(test_hook_runs_after_the_sync_the_mode_promises),
		cmocka_unit_test(test_concurrent_writers_ship_in_order),
		cmocka_unit_test(test_catch_up_beside_writers_and_compaction),
		cmocka_unit_test(test_failed_group_sync_ships_only_acknowledged),
		cmocka_unit_test(test_replicas_chain),
		cmocka_unit_test(test_position_never_goes_back),
		cmocka_unit_test(test_new_errors_have_text),
		cmocka_unit_test(test_random_outages_converge),
	};

	tu_tmpdir_in_memory();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
