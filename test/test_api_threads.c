/*
 * test_api_threads.c - one kv_t shared by reader and writer threads.
 *
 * Writers own disjoint key ranges and write values that encode (key,
 * version) completely: the value's length and every byte follow from the
 * pair, so a reader can tell a value that was really written for that key
 * from a torn or foreign one. Before writing version v
 * a writer publishes v in `issued`, so a reader that sees version v also
 * checks v <= issued (never a value from the future) and that its own
 * successive reads of a key never go back in version.
 *
 * A set of "stable" keys is written before the threads start and never
 * touched again: every full kv_foreach and every scan of their prefix
 * must see each of them exactly once, whatever the writers do meanwhile.
 *
 * The same run is made in each sync mode (INTERVAL with compression on);
 * two smaller cases race the first kv_scan of a handle (which builds the
 * ordered index) and walk kv_foreach while new keys grow the id space,
 * both places where unlocked reads once raced with writers (TSan).
 *
 * cmocka's assertions must not run off the main thread (they longjmp), so
 * threads count failures and keep the first message; the main thread
 * asserts after joining.
 */
#include "testutil.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WRITERS 4
#define MAX_READERS 4
#define KEYS_PER_WRITER 400
#define NSTABLE 300
#define KLEN 8          /* "w1:00042", "s:000042" */
#define VMAX 8192

typedef struct shared {
	kv_t *db;
	int nwriters;
	int ops_per_writer;
	size_t nkeys;                 /* nwriters * KEYS_PER_WRITER */
	_Atomic unsigned *issued;     /* newest version handed out per key */
	atomic_int writers_done;
	atomic_int failures;
	atomic_long reads_checked;    /* values read and verified */
	pthread_mutex_t msg_mu;
	char msg[512];
} shared;

typedef struct writer {
	shared *sh;
	int w;
	uint64_t seed;
	unsigned version[KEYS_PER_WRITER]; /* final version per own key */
	uint8_t live[KEYS_PER_WRITER];     /* final state per own key */
	long acked;                        /* write calls that returned 0 */
} writer;

typedef struct reader {
	shared *sh;
	uint64_t seed;
	unsigned *last_seen;  /* per key: highest version this reader saw */
	long ops;
} reader;

static void report(shared *sh, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void report(shared *sh, const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(&sh->failures, 1) != 0)
		return;
	pthread_mutex_lock(&sh->msg_mu);
	va_start(ap, fmt);
	vsnprintf(sh->msg, sizeof sh->msg, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&sh->msg_mu);
}

/* ---- keys and values ---- */

static void key_of(char out[KLEN + 1], size_t g)
{
	snprintf(out, KLEN + 1, "w%u:%05u", (unsigned)(g / KEYS_PER_WRITER),
		 (unsigned)(g % KEYS_PER_WRITER));
}

static void stable_key(char out[KLEN + 1], size_t i)
{
	snprintf(out, KLEN + 1, "s:%06u", (unsigned)(i % 1000000));
}

/* The value of key g at version v: a header naming both, then filler
 * whose length and bytes follow from (g, v). Every 40th version is large,
 * so records cross pages and the NONE buffer's edge. */
static size_t value_of(char *out, size_t g, unsigned v)
{
	uint64_t mix = (uint64_t)g * 0x9e3779b97f4a7c15u ^ (uint64_t)v * 0xbf58476d1ce4e5b9u;
	size_t fill = v % 40 == 0 ? 3000 + g % 2000 : (size_t)(mix % 300);
	char key[KLEN + 1];

	key_of(key, g);
	int n = snprintf(out, VMAX, "K=%s;V=%u;", key, v);
	for (size_t i = 0; i < fill; i++)
		out[(size_t)n + i] = (char)('a' + (mix >> (i % 50)) % 26);
	return (size_t)n + fill;
}

/* Checks that (val, vlen) is a value written for key g; gives its
 * version in *v. */
static int valid_value(size_t g, const void *val, size_t vlen, unsigned *v)
{
	char want[VMAX], key[KLEN + 1], head[32];
	const char *p = val;

	key_of(key, g);
	int hn = snprintf(head, sizeof head, "K=%s;V=", key);
	if (vlen < (size_t)hn + 2 || memcmp(p, head, (size_t)hn))
		return 0;
	unsigned ver = 0;
	size_t i = (size_t)hn;
	while (i < vlen && i < (size_t)hn + 10 && p[i] >= '0' && p[i] <= '9')
		ver = ver * 10 + (unsigned)(p[i++] - '0');
	if (i == (size_t)hn || i >= vlen || p[i] != ';')
		return 0;
	size_t wl = value_of(want, g, ver);
	if (wl != vlen || memcmp(want, val, vlen))
		return 0;
	*v = ver;
	return 1;
}

/* Reader-side checks of one observed value of key g. */
static void observe(reader *r, size_t g, const void *val, size_t vlen,
		    const char *how)
{
	shared *sh = r->sh;
	unsigned v;

	if (!valid_value(g, val, vlen, &v)) {
		report(sh, "%s: key %zu: a value of %zu bytes that was never "
		       "written for it: %.40s", how, g, vlen,
		       (const char *)val);
		return;
	}
	/* Loaded after the read: a writer publishes v before writing it. */
	unsigned issued = atomic_load(&sh->issued[g]);
	if (v > issued)
		report(sh, "%s: key %zu: version %u read, only %u issued", how,
		       g, v, issued);
	if (v < r->last_seen[g])
		report(sh, "%s: key %zu: version %u read after %u", how, g, v,
		       r->last_seen[g]);
	r->last_seen[g] = v;
	atomic_fetch_add(&sh->reads_checked, 1);
}

/* ---- writers ---- */

static unsigned next_version(writer *wr, size_t local)
{
	size_t g = (size_t)wr->w * KEYS_PER_WRITER + local;
	unsigned v = ++wr->version[local];

	atomic_store(&wr->sh->issued[g], v);
	return v;
}

static void *writer_main(void *arg)
{
	writer *wr = arg;
	shared *sh = wr->sh;
	uint64_t s = wr->seed;
	char key[KLEN + 1];
	char *val = malloc(VMAX);
	kv_batch *b = NULL;

	if (!val || kv_batch_new(&b)) {
		report(sh, "writer %d: out of memory", wr->w);
		goto out;
	}
	for (int op = 0; op < sh->ops_per_writer; op++) {
		size_t local = tu_rand(&s) % KEYS_PER_WRITER;
		size_t g = (size_t)wr->w * KEYS_PER_WRITER + local;
		unsigned r = (unsigned)(tu_rand(&s) % 100);
		int rc;

		key_of(key, g);
		if (r < 55) {
			size_t n = value_of(val, g, next_version(wr, local));
			if ((rc = kv_put(sh->db, key, KLEN, val, n)) != 0) {
				report(sh, "put: %s", kv_strerror(rc));
				break;
			}
			wr->live[local] = 1;
			wr->acked++;
		} else if (r < 75) {
			int want = wr->live[local] ? 0 : KV_ENOTFOUND;
			if (wr->live[local])
				next_version(wr, local);
			if ((rc = kv_delete(sh->db, key, KLEN)) != want) {
				report(sh, "delete of %s: %s, expected %s",
				       key, kv_strerror(rc),
				       kv_strerror(want));
				break;
			}
			wr->acked += rc == 0;
			wr->live[local] = 0;
		} else {
			/* A batch of 1..8 puts and deletes of own keys; a
			 * key twice in it ends as its last op says. */
			size_t nops = 1 + tu_rand(&s) % 8;
			kv_batch_clear(b);
			for (size_t i = 0; i < nops; i++) {
				size_t l = tu_rand(&s) % KEYS_PER_WRITER;
				size_t gg = (size_t)wr->w * KEYS_PER_WRITER + l;
				char k2[KLEN + 1];

				key_of(k2, gg);
				unsigned v = next_version(wr, l);
				if (tu_rand(&s) % 4 == 0) {
					rc = kv_batch_delete(b, k2, KLEN);
					wr->live[l] = 0;
				} else {
					size_t n = value_of(val, gg, v);
					rc = kv_batch_put(b, k2, KLEN, val, n);
					wr->live[l] = 1;
				}
				if (rc)
					report(sh, "batch add: %s",
					       kv_strerror(rc));
			}
			if ((rc = kv_write(sh->db, b)) != 0) {
				report(sh, "kv_write: %s", kv_strerror(rc));
				break;
			}
			wr->acked++;
		}
	}
out:
	kv_batch_free(b);
	free(val);
	atomic_fetch_add(&sh->writers_done, 1);
	return NULL;
}

/* ---- readers ---- */

typedef struct scan_ctx {
	reader *r;
	char prev[KLEN + 1];
	int have_prev;
	const char *start, *end, *prefix;
	size_t n;
	int stable_seen[NSTABLE];
} scan_ctx;

static int key_index(const char *k, size_t klen, size_t *g)
{
	unsigned w, i;
	char buf[KLEN + 1];

	if (klen != KLEN)
		return 0;
	memcpy(buf, k, KLEN);
	buf[KLEN] = 0;
	if (sscanf(buf, "w%1u:%5u", &w, &i) != 2 || i >= KEYS_PER_WRITER)
		return 0;
	*g = (size_t)w * KEYS_PER_WRITER + i;
	return 1;
}

/* Stable keys hold "stable-<i>" forever. */
static int stable_ok(const char *k, size_t klen, const void *val,
		     size_t vlen, size_t *idx)
{
	char buf[KLEN + 1], want[32];
	unsigned i;

	if (klen != KLEN)
		return 0;
	memcpy(buf, k, KLEN);
	buf[KLEN] = 0;
	if (sscanf(buf, "s:%6u", &i) != 1 || i >= NSTABLE)
		return 0;
	int n = snprintf(want, sizeof want, "stable-%u", i);
	*idx = i;
	return vlen == (size_t)n && !memcmp(val, want, vlen);
}

static int scan_cb(void *ctx, const void *key, size_t klen, const void *val,
		   size_t vlen)
{
	scan_ctx *c = ctx;
	shared *sh = c->r->sh;
	const char *k = key;
	size_t g, si;

	if (klen != KLEN) {
		report(sh, "scan: key of %zu bytes", klen);
		return 1;
	}
	if (c->have_prev && memcmp(c->prev, k, KLEN) >= 0) {
		report(sh, "scan: %.8s after %.8s", k, c->prev);
		return 1;
	}
	if ((c->start && memcmp(k, c->start, KLEN) < 0) ||
	    (c->end && memcmp(k, c->end, KLEN) >= 0) ||
	    (c->prefix && memcmp(k, c->prefix, strlen(c->prefix)))) {
		report(sh, "scan: %.8s outside the range asked", k);
		return 1;
	}
	memcpy(c->prev, k, KLEN);
	c->have_prev = 1;
	c->n++;
	if (key_index(k, klen, &g)) {
		observe(c->r, g, val, vlen, "kv_scan/foreach");
	} else if (stable_ok(k, klen, val, vlen, &si)) {
		c->stable_seen[si]++;
	} else {
		report(sh, "scan: unknown key or bad value: %.8s", k);
		return 1;
	}
	return 0;
}

static int foreach_cb(void *ctx, const void *key, size_t klen,
		      const void *val, size_t vlen)
{
	scan_ctx *c = ctx;
	size_t g, si;

	if (key_index(key, klen, &g)) {
		observe(c->r, g, val, vlen, "kv_foreach");
	} else if (stable_ok(key, klen, val, vlen, &si)) {
		c->stable_seen[si]++;
	} else {
		report(c->r->sh, "foreach: unknown key or bad value");
		return 1;
	}
	return 0;
}

static void check_stable(shared *sh, const scan_ctx *c, const char *how)
{
	for (size_t i = 0; i < NSTABLE; i++)
		if (c->stable_seen[i] != 1) {
			report(sh, "%s: stable key %zu seen %d times", how, i,
			       c->stable_seen[i]);
			return;
		}
}

static void reader_op(reader *r, uint64_t *s)
{
	shared *sh = r->sh;
	size_t g = tu_rand(s) % sh->nkeys;
	unsigned op = (unsigned)(tu_rand(s) % 1000);
	char key[KLEN + 1];
	int rc;

	key_of(key, g);
	if (op < 400) {
		void *val = NULL;
		size_t vlen = 0;

		rc = kv_get(sh->db, key, KLEN, &val, &vlen);
		if (rc == 0) {
			observe(r, g, val, vlen, "kv_get");
			if (((char *)val)[vlen] != 0)
				report(sh, "kv_get: value not NUL-ended");
		} else if (rc != KV_ENOTFOUND) {
			report(sh, "kv_get: %s", kv_strerror(rc));
		}
		kv_free(val);
	} else if (op < 650) {
		static const size_t caps[] = { 8, 64, 320, VMAX };
		char buf[VMAX];
		size_t cap = caps[tu_rand(s) % 4], vlen = 0;

		rc = kv_get_into(sh->db, key, KLEN, buf, cap, &vlen);
		if (rc == 0)
			observe(r, g, buf, vlen, "kv_get_into");
		else if (rc == KV_ERANGE && vlen <= cap)
			report(sh, "kv_get_into: KV_ERANGE with %zu <= %zu",
			       vlen, cap);
		else if (rc != 0 && rc != KV_ERANGE && rc != KV_ENOTFOUND)
			report(sh, "kv_get_into: %s", kv_strerror(rc));
	} else if (op < 800) {
		rc = kv_exists(sh->db, key, KLEN);
		if (rc != 0 && rc != KV_ENOTFOUND)
			report(sh, "kv_exists: %s", kv_strerror(rc));
	} else if (op < 996) {
		/* A range within one writer's keys, or its whole prefix. */
		scan_ctx *c = calloc(1, sizeof *c);
		char start[KLEN + 1], end[KLEN + 1], prefix[4];
		size_t span = 1 + tu_rand(s) % 40;
		size_t limit = tu_rand(s) % 3 ? tu_rand(s) % 60 : 0;

		if (!c) {
			report(sh, "out of memory");
			return;
		}
		c->r = r;
		key_of(start, g);
		if (tu_rand(s) % 4) {
			size_t last = g - g % KEYS_PER_WRITER +
				      KEYS_PER_WRITER - 1;
			key_of(end, g + span < last ? g + span : last);
			c->start = start;
			c->end = end;
			rc = kv_scan(sh->db, start, KLEN, end, KLEN, NULL, 0,
				     limit, scan_cb, c);
		} else {
			memcpy(prefix, start, 3);
			prefix[3] = 0;
			c->prefix = prefix;
			rc = kv_scan(sh->db, NULL, 0, NULL, 0, prefix, 3,
				     limit, scan_cb, c);
		}
		if (rc != 0 && atomic_load(&sh->failures) == 0)
			report(sh, "kv_scan: %s", kv_strerror(rc));
		if (limit && c->n > limit)
			report(sh, "kv_scan: %zu pairs, limit %zu", c->n,
			       limit);
		free(c);
	} else {
		/* Whole-store walks: the stable keys are each seen once. */
		scan_ctx *c = calloc(1, sizeof *c);

		if (!c) {
			report(sh, "out of memory");
			return;
		}
		c->r = r;
		if (op < 998) {
			rc = kv_foreach(sh->db, foreach_cb, c);
			if (rc == 0)
				check_stable(sh, c, "kv_foreach");
		} else {
			c->prefix = "s:";
			rc = kv_scan(sh->db, NULL, 0, NULL, 0, "s:", 2, 0,
				     scan_cb, c);
			if (rc == 0)
				check_stable(sh, c, "kv_scan of s:");
		}
		if (rc != 0)
			report(sh, "walk: %s", kv_strerror(rc));
		free(c);
	}
}

static void *reader_main(void *arg)
{
	reader *r = arg;
	uint64_t s = r->seed;

	/* Run while any writer runs, and at least a few hundred ops so
	 * every kind of read overlaps the writes. */
	while (atomic_load(&r->sh->writers_done) < r->sh->nwriters ||
	       r->ops < 300) {
		reader_op(r, &s);
		r->ops++;
		if (atomic_load(&r->sh->failures))
			break;
	}
	return NULL;
}

/* ---- the run ---- */

/* After the threads: every key as its writer left it, through kv_get and
 * a full scan. */
static void check_final(kv_t *db, shared *sh, writer *wrs)
{
	char key[KLEN + 1], want[VMAX];
	size_t live = 0;

	for (size_t g = 0; g < sh->nkeys; g++) {
		writer *wr = &wrs[g / KEYS_PER_WRITER];
		size_t local = g % KEYS_PER_WRITER;
		void *val = NULL;
		size_t vlen = 0;

		key_of(key, g);
		int rc = kv_get(db, key, KLEN, &val, &vlen);
		if (!wr->live[local]) {
			if (rc != KV_ENOTFOUND)
				fail_msg("%s: deleted, but kv_get gives %s",
					 key, kv_strerror(rc));
			continue;
		}
		if (rc != 0)
			fail_msg("%s: kv_get: %s", key, kv_strerror(rc));
		size_t wl = value_of(want, g, wr->version[local]);
		if (vlen != wl || memcmp(val, want, wl))
			fail_msg("%s: holds %.30s, expected version %u", key,
				 (char *)val, wr->version[local]);
		kv_free(val);
		live++;
	}
	reader r = { .sh = sh };
	r.last_seen = calloc(sh->nkeys, sizeof *r.last_seen);
	scan_ctx *c = calloc(1, sizeof *c);
	assert_non_null(r.last_seen);
	assert_non_null(c);
	c->r = &r;
	assert_int_equal(kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 0, scan_cb,
				 c), 0);
	assert_int_equal(atomic_load(&sh->failures), 0);
	assert_int_equal(c->n, live + NSTABLE);
	for (size_t i = 0; i < NSTABLE; i++)
		assert_int_equal(c->stable_seen[i], 1);
	free(c);
	free(r.last_seen);
}

static void run(uint32_t sync_mode, uint32_t sync_every, uint32_t flags,
		int nwriters, int nreaders, int ops_per_writer)
{
	char *dir = tu_mkdir();
	kv_options o;
	shared sh = { 0 };
	writer *wrs = calloc((size_t)nwriters, sizeof *wrs);
	reader rds[MAX_READERS] = { 0 };
	pthread_t wt[MAX_WRITERS], rt[MAX_READERS];
	char key[KLEN + 1], val[32];

	assert_non_null(wrs);
	assert_true(nwriters <= MAX_WRITERS && nreaders <= MAX_READERS);
	tu_options(&o);
	o.sync_mode = sync_mode;
	o.sync_every = sync_every;
	o.flags |= flags;
	o.max_file_size = 64 << 10; /* rollover during the run */
	/* Count fdatasync calls through the fault layer, with a fault that
	 * never fires, to show how much group commit shares. */
	tu_fault_clear();
	if (sync_mode == KV_SYNC_ALWAYS)
		tu_fault(TU_FDATASYNC, UINT_MAX, EIO, 0);
	sh.db = tu_open(dir, &o);
	sh.nwriters = nwriters;
	sh.ops_per_writer = ops_per_writer;
	sh.nkeys = (size_t)nwriters * KEYS_PER_WRITER;
	sh.issued = calloc(sh.nkeys, sizeof *sh.issued);
	assert_non_null(sh.issued);
	for (size_t g = 0; g < sh.nkeys; g++)
		atomic_init(&sh.issued[g], 0);
	atomic_init(&sh.writers_done, 0);
	atomic_init(&sh.failures, 0);
	atomic_init(&sh.reads_checked, 0);
	pthread_mutex_init(&sh.msg_mu, NULL);
	for (size_t i = 0; i < NSTABLE; i++) {
		stable_key(key, i);
		snprintf(val, sizeof val, "stable-%u", (unsigned)i);
		assert_int_equal(kv_put(sh.db, key, KLEN, val, strlen(val)),
				 0);
	}

	for (int i = 0; i < nreaders; i++) {
		rds[i].sh = &sh;
		rds[i].seed = 1000 + (uint64_t)i;
		rds[i].last_seen = calloc(sh.nkeys, sizeof(unsigned));
		assert_non_null(rds[i].last_seen);
		assert_int_equal(pthread_create(&rt[i], NULL, reader_main,
						&rds[i]), 0);
	}
	for (int i = 0; i < nwriters; i++) {
		wrs[i].sh = &sh;
		wrs[i].w = i;
		wrs[i].seed = 77 + (uint64_t)i;
		assert_int_equal(pthread_create(&wt[i], NULL, writer_main,
						&wrs[i]), 0);
	}
	for (int i = 0; i < nwriters; i++)
		pthread_join(wt[i], NULL);
	long reads = 0;
	for (int i = 0; i < nreaders; i++) {
		pthread_join(rt[i], NULL);
		reads += rds[i].ops;
		free(rds[i].last_seen);
	}
	if (atomic_load(&sh.failures))
		fail_msg("%d failure(s) in threads; first: %s",
			 atomic_load(&sh.failures), sh.msg);
	/* The readers did check values while the writers ran. */
	assert_true(nreaders == 0 || atomic_load(&sh.reads_checked) > 0);
	long acked = 0;
	for (int i = 0; i < nwriters; i++)
		acked += wrs[i].acked;
	print_message("sync mode %u: %d writers x %d ops, %ld reader ops, "
		      "%ld values checked\n", sync_mode, nwriters,
		      ops_per_writer, reads, atomic_load(&sh.reads_checked));
	if (sync_mode == KV_SYNC_ALWAYS)
		print_message("group commit: %u fdatasync calls for %ld "
			      "acknowledged writes\n",
			      tu_calls(TU_FDATASYNC), acked);

	check_final(sh.db, &sh, wrs);
	struct kv_stats st = { .size = sizeof st };
	assert_int_equal(kv_stats(sh.db, &st), 0);
	assert_true(st.segments > 2); /* the run did roll segments */
	if (flags & KV_COMPRESS)
		assert_true(st.compressed_values > 0);
	assert_int_equal(kv_close(sh.db), 0);
	tu_fault_clear();

	/* Every acknowledged write is there after close and reopen. */
	sh.db = tu_open(dir, &o);
	check_final(sh.db, &sh, wrs);
	assert_int_equal(kv_close(sh.db), 0);

	pthread_mutex_destroy(&sh.msg_mu);
	free(sh.issued);
	free(wrs);
	tu_rmdir(dir);
}

/* Op counts: enough for thousands of rollovers, group commits and
 * buffer flushes to interleave with reads, small enough for TSan. */
static void test_threads_readers_see_only_written_values(void **state)
{
	(void)state;
	run(KV_SYNC_WRITE, 0, 0, 2, 4, 8000);
}

static void test_threads_group_commit_sync_always(void **state)
{
	(void)state;
	/* Each write waits for an fdatasync shared by concurrent writers. */
	run(KV_SYNC_ALWAYS, 0, 0, 4, 2, 1500);
}

static void test_threads_sync_none_buffered_reads(void **state)
{
	(void)state;
	/* Recent records sit in the process buffer: readers copy them from
	 * there while writers append and flush. */
	run(KV_SYNC_NONE, 0, 0, 2, 4, 8000);
}

static void test_threads_sync_interval_compressed_values(void **state)
{
	(void)state;
	/* With compression on, so readers also inflate concurrently (the
	 * large values, over the 512-byte default threshold). */
	run(KV_SYNC_INTERVAL, 5, KV_COMPRESS, 2, 4, 8000);
}

/* ---- the first scans, racing to build the ordered index ---- */

typedef struct racer {
	kv_t *db;
	pthread_barrier_t *go;
	size_t want;
	int bad;
} racer;

static int count_ordered(void *ctx, const void *key, size_t klen,
			 const void *val, size_t vlen)
{
	size_t *n = ctx;
	char k[KLEN + 1], v[32];

	/* Keys come in order and each holds its own value. */
	snprintf(k, sizeof k, "s:%06u", (unsigned)(*n % 1000000));
	snprintf(v, sizeof v, "stable-%u", (unsigned)*n);
	if (klen != KLEN || memcmp(key, k, KLEN) || vlen != strlen(v) ||
	    memcmp(val, v, vlen))
		return -1000;
	(*n)++;
	return 0;
}

static void *racer_main(void *arg)
{
	racer *r = arg;
	size_t n = 0;

	pthread_barrier_wait(r->go);
	if (kv_scan(r->db, NULL, 0, NULL, 0, NULL, 0, 0, count_ordered, &n) ||
	    n != r->want)
		r->bad = 1;
	return NULL;
}

static void test_threads_first_scans_race_to_build_the_index(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_options o;
	char key[KLEN + 1], val[32];

	tu_options(&o);
	kv_t *db = tu_open(dir, &o);
	for (size_t i = 0; i < 3000; i++) {
		stable_key(key, i);
		snprintf(val, sizeof val, "stable-%u", (unsigned)i);
		assert_int_equal(kv_put(db, key, KLEN, val, strlen(val)), 0);
	}
	assert_int_equal(kv_close(db), 0);
	/* Each reopen starts without the index; four threads released at
	 * once all make the first kv_scan of the handle. */
	for (int round = 0; round < 8; round++) {
		pthread_barrier_t go;
		racer rs[4];
		pthread_t t[4];

		db = tu_open(dir, &o);
		pthread_barrier_init(&go, NULL, 4);
		for (int i = 0; i < 4; i++) {
			rs[i] = (racer){ .db = db, .go = &go, .want = 3000 };
			assert_int_equal(pthread_create(&t[i], NULL, racer_main,
							&rs[i]), 0);
		}
		for (int i = 0; i < 4; i++) {
			pthread_join(t[i], NULL);
			assert_int_equal(rs[i].bad, 0);
		}
		pthread_barrier_destroy(&go);
		assert_int_equal(kv_close(db), 0);
	}
	tu_rmdir(dir);
}

/* ---- kv_foreach while new keys keep arriving ---- */

typedef struct grower {
	kv_t *db;
	atomic_int *stop;
	int bad;
	long walks;
} grower;

static int foreach_stable(void *ctx, const void *key, size_t klen,
			  const void *val, size_t vlen)
{
	int *seen = ctx;
	char buf[KLEN + 1], want[32];
	unsigned i;

	if (klen != KLEN)
		return -1;
	memcpy(buf, key, KLEN);
	buf[KLEN] = 0;
	if (buf[0] == 'n') {
		/* A new key: "n" + 7 digits, value "new-" + the digits. */
		snprintf(want, sizeof want, "new-%s", buf + 1);
		return vlen == strlen(want) && !memcmp(val, want, vlen) ? 0 : -2;
	}
	if (sscanf(buf, "s:%6u", &i) != 1 || i >= NSTABLE)
		return -3;
	snprintf(want, sizeof want, "stable-%u", i);
	if (vlen != strlen(want) || memcmp(val, want, vlen))
		return -4;
	seen[i]++;
	return 0;
}

static void *walker_main(void *arg)
{
	grower *g = arg;

	do {
		int seen[NSTABLE] = { 0 };

		if (kv_foreach(g->db, foreach_stable, seen))
			g->bad = 1;
		for (size_t i = 0; i < NSTABLE; i++)
			if (seen[i] != 1)
				g->bad = 1;
		g->walks++;
	} while (!atomic_load(g->stop) && !g->bad);
	return NULL;
}

static void test_threads_foreach_while_new_keys_are_inserted(void **state)
{
	(void)state;
	char *dir = tu_mkdir();
	kv_options o;
	char key[KLEN + 1], val[32];
	atomic_int stop;
	grower gs[2];
	pthread_t t[2];

	/* Every insert of a new key grows the id space that kv_foreach
	 * walks; the stable keys must still be seen exactly once. */
	atomic_init(&stop, 0);
	tu_options(&o);
	o.max_file_size = 64 << 10;
	kv_t *db = tu_open(dir, &o);
	for (size_t i = 0; i < NSTABLE; i++) {
		stable_key(key, i);
		snprintf(val, sizeof val, "stable-%u", (unsigned)i);
		assert_int_equal(kv_put(db, key, KLEN, val, strlen(val)), 0);
	}
	for (int i = 0; i < 2; i++) {
		gs[i] = (grower){ .db = db, .stop = &stop };
		assert_int_equal(pthread_create(&t[i], NULL, walker_main,
						&gs[i]), 0);
	}
	for (unsigned i = 0; i < 6000; i++) {
		snprintf(key, sizeof key, "n%07u", i);
		snprintf(val, sizeof val, "new-%07u", i);
		assert_int_equal(kv_put(db, key, KLEN, val, strlen(val)), 0);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(gs[i].bad, 0);
		assert_true(gs[i].walks > 0);
	}
	assert_int_equal(kv_close(db), 0);
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_readers_see_only_written_values),
		cmocka_unit_test(test_threads_group_commit_sync_always),
		cmocka_unit_test(test_threads_sync_none_buffered_reads),
		cmocka_unit_test(test_threads_sync_interval_compressed_values),
		cmocka_unit_test(test_threads_first_scans_race_to_build_the_index),
		cmocka_unit_test(test_threads_foreach_while_new_keys_are_inserted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
