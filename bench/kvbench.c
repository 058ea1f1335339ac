/*
 * kvbench.c - libkv against its peers, in the manner of LevelDB's db_bench.
 *
 *   kvbench [--num N] [--runs R] [--engines a,b,...] [--workloads a,b,...]
 *           [--reads N] [--writes N] [--sync-num N] [--threads T]
 *           [--sync-threads T]
 *           [--value-size B] [--compact-rate P] [--dir DIR]
 *
 * Every engine sees the same keys (16 decimal digits of an index, so byte
 * order is index order) and values (--value-size bytes, 100 by default,
 * taken from a pool whose every value-sized stretch is random bytes then a
 * copy of them, db_bench's "half compressible"), from fixed seeds. Every
 * read is checked against the value written.
 *
 * One run of one engine is several chains, each in a forked child on a
 * fresh directory (so that peak RSS is that engine's alone and a crash
 * costs one cell):
 *   main      fillrandom (N keys), readrandom, readmissing, readrandom
 *             with T threads (--reads gets each), scan100 (N/100 scans, at
 *             most 10,000), ycsb-a, ycsb-b (--reads ops each), overwrite
 *             (--writes random puts of present keys), reopen (close and
 *             open timed apart), deleterandom (--writes present keys,
 *             each once); --reads and --writes default to N;
 *   sync      fillsync: --sync-num durable puts from one thread;
 *   sync-mt   fillsync-mt: the same puts from --sync-threads threads, each
 *             on its own range of keys, into one store;
 *   crash     fillseq and reopen-crash: a grandchild puts N keys in key
 *             order (fillseq, timed) and kills itself with SIGKILL after
 *             the last put returned; the chain times the open of what it
 *             left and checks a sample;
 *   compact   fill N, overwrite every key twice, then a paced writer
 *             thread alone, then the same writer during a full compaction.
 * Runs interleave engines (A B C A B C ...) and each figure printed is the
 * median over the runs. Latency is taken per operation with
 * CLOCK_MONOTONIC (one clock read per operation).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

#define KEY_LEN 16
#define MIN_POOL (1u << 20)
#define MAX_VALUE (1u << 20)
#define SCAN_LEN 100
#define MAX_ENGINES 16
#define MAX_RUNS 15
#define MAX_THREADS 64
#define SAMPLE 1000        /* keys read back after a reopen */
#define BASE_MS 1000       /* compact: the writer alone, before compaction */

/* ---- workloads ---- */

enum wl {
	W_FILLSEQ, /* measured in the crash chain, whose fill it is */
	W_FILLRANDOM, W_READRANDOM, W_READMISSING, W_READRANDOM_MT, W_SCAN,
	W_YCSB_A, W_YCSB_B, W_OVERWRITE, W_REOPEN, W_DELETERANDOM,
	/* each of these has a chain of its own */
	W_FILLSYNC, W_FILLSYNC_MT, W_REOPEN_CRASH, W_COMPACT, W_COUNT
};

static const char *const wl_name[W_COUNT] = {
	"fillseq", "fillrandom", "readrandom", "readmissing", "readrandom-mt",
	"scan100", "ycsb-a", "ycsb-b", "overwrite", "reopen", "deleterandom",
	"fillsync", "fillsync-mt", "reopen-crash", "compact",
};

/* Chains, each a child process on a directory of its own. */
enum kind { K_MAIN, K_SYNC, K_SYNC_MT, K_CRASH, K_COMPACT, K_COUNT };

static const char *const kind_name[K_COUNT] = {
	"main", "sync", "sync-mt", "crash", "compact",
};

/* What one workload measured in one run. */
struct res {
	int done;           /* 1 when measured */
	double ops_s;       /* compact: bytes of input per second */
	double p50_us, p99_us; /* compact: the writer's, during compaction */
	double ms;          /* reopen, reopen-crash: open; compact: its time */
};

/* Everything one run of one engine measured. A chain's child starts from
 * a copy of this (fork), adds its figures and sends the whole back. */
struct chain_res {
	struct res w[W_COUNT];
	double disk_bytes;  /* allocated bytes in the directory after fill */
	double anon_per_key;/* RssAnon growth over fillrandom, per key */
	double peak_rss_mb; /* main chain, from wait4, set by the parent */
	double close_ms;    /* reopen: the clean close before the open */
	/* reopen-crash: keys read back intact, of those sampled; 1 when the
	 * open itself failed */
	double crash_intact, crash_sampled;
	int crash_open_failed;
	/* compact */
	double cmp_in_bytes, cmp_out_bytes;
	double cmp_read_bytes;  /* as the engine counts it; -1: it does not */
	double base_p50_us, base_p99_us; /* the writer without compaction */
	double writer_ops_base, writer_ops_during;
	double wall_s[K_COUNT]; /* wall time of each chain, set by the parent */
	int ok;
};

/* ---- configuration ---- */

static uint64_t num = 1000000, reads, writes, sync_num = 20000;
static uint64_t compact_rate = 10000;
static int runs = 3, threads = 2, sync_threads = 4;
static size_t val_len = 100, pool_len;
static const char *base_dir;
static int want[W_COUNT];
static const engine *engines[MAX_ENGINES];
static int n_engines;
static unsigned char *pool;

static const engine *const all_engines[] = {
#ifdef HAVE_LIBKV
	&eng_libkv,
#endif
#ifdef HAVE_LMDB
	&eng_lmdb,
#endif
#ifdef HAVE_LEVELDB
	&eng_leveldb,
#endif
#ifdef HAVE_ROCKSDB
	&eng_rocksdb,
#endif
#ifdef HAVE_SQLITE
	&eng_sqlite,
#endif
#ifdef HAVE_KYOTO
	&eng_kyoto,
#endif
#ifdef HAVE_GDBM
	&eng_gdbm,
#endif
#ifdef HAVE_TKRZW
	&eng_tkrzw,
#endif
	NULL
};

/* ---- keys, values, randomness ---- */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t *s, uint64_t n)
{
	return splitmix(s) % n;
}

static void make_key(char *k, uint64_t i)
{
	for (int j = KEY_LEN - 1; j >= 0; j--, i /= 10)
		k[j] = (char)('0' + i % 10);
}

static const unsigned char *value_of(uint64_t i)
{
	uint64_t s = i * 0x2545f4914f6cdd1dull;

	return pool + splitmix(&s) % (pool_len - val_len);
}

/* Every value-sized stretch of the pool is random bytes and their copy;
 * the pool holds at least 64 values so that values differ. */
static void make_pool(void)
{
	uint64_t s = 301;
	size_t half = val_len / 2;

	pool_len = val_len * 64 > MIN_POOL ? val_len * 64 : MIN_POOL;
	pool = malloc(pool_len);
	if (!pool)
		exit(1);
	for (size_t off = 0; off < pool_len; off += val_len) {
		size_t n = pool_len - off;

		for (size_t j = 0; j < half && j < n; j++)
			pool[off + j] = (unsigned char)splitmix(&s);
		for (size_t j = half; j < val_len && j < n; j++)
			pool[off + j] = half ? pool[off + j - half] :
				(unsigned char)splitmix(&s);
	}
}

/* 0, 1, ..., n-1: fillseq's order, which is also the keys' byte order. */
static uint32_t *sequence(uint64_t n)
{
	uint32_t *p = malloc((n ? n : 1) * sizeof *p);

	if (!p)
		exit(1);
	for (uint64_t i = 0; i < n; i++)
		p[i] = (uint32_t)i;
	return p;
}

/* A permutation of 0..n-1 from a fixed seed. */
static uint32_t *permutation(uint64_t n, uint64_t seed)
{
	uint32_t *p = sequence(n);

	for (uint64_t i = n; i > 1; i--) {
		uint64_t j = below(&seed, i);
		uint32_t t = p[i - 1];

		p[i - 1] = p[j];
		p[j] = t;
	}
	return p;
}

/* ---- timing ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull),
			       (long)(ns % 1000000000ull) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Latencies are kept in ns as uint32 (4.3 s at most), saturated. */
static uint32_t lat_of(uint64_t ns)
{
	return ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

/* Fills r from n per-op latencies (ns, sorted here) over wall ns. */
static void summarise(struct res *r, uint32_t *lat, uint64_t n, uint64_t wall)
{
	r->done = 1;
	if (!n)
		return;
	qsort(lat, n, sizeof *lat, cmp_u32);
	r->ops_s = wall ? (double)n * 1e9 / (double)wall : 0;
	r->p50_us = lat[n / 2] / 1e3;
	r->p99_us = lat[n * 99 / 100] / 1e3;
}

/* ---- the chains ---- */

struct ctx {
	const engine *e;
	void *h;
	uint32_t *lat;
	char dir[4096];
};

static _Noreturn void fail(const struct ctx *c, const char *what, uint64_t i)
{
	fprintf(stderr, "kvbench: %s: %s failed at op %llu\n", c->e->name,
		what, (unsigned long long)i);
	_exit(2);
}

static void do_put(const struct ctx *c, uint64_t idx, const char *what,
		   uint64_t i)
{
	char k[KEY_LEN];

	make_key(k, idx);
	if (c->e->put(c->h, k, KEY_LEN, value_of(idx), val_len))
		fail(c, what, i);
}

static void do_get(const struct ctx *c, uint64_t idx, int expect,
		   const char *what, uint64_t i)
{
	char k[KEY_LEN];

	make_key(k, idx);
	if (c->e->get(c->h, k, KEY_LEN, value_of(idx), val_len) != expect)
		fail(c, what, i);
}

static void open_store(struct ctx *c, int sync, uint64_t n_keys)
{
	eng_opts o = { sync, n_keys, 0 };

	c->h = c->e->open(c->dir, &o);
	if (!c->h)
		fail(c, "open", 0);
}

static void close_store(struct ctx *c)
{
	if (c->e->close(c->h))
		fail(c, "close", 0);
	c->h = NULL;
}

/* Puts keys perm[0..n-1] (or random keys with replacement if !perm),
 * each one's latency into c->lat; returns the wall ns of all n. */
static uint64_t put_timed(struct ctx *c, const uint32_t *perm, uint64_t n,
			  uint64_t seed, const char *what)
{
	uint64_t t0 = now_ns(), start = t0;

	for (uint64_t i = 0; i < n; i++) {
		do_put(c, perm ? perm[i] : below(&seed, num), what, i);
		uint64_t t1 = now_ns();
		c->lat[i] = lat_of(t1 - t0);
		t0 = t1;
	}
	return t0 - start;
}

static void w_fill(struct ctx *c, struct res *r, const uint32_t *perm,
		   uint64_t n, uint64_t seed, const char *what)
{
	summarise(r, c->lat, n, put_timed(c, perm, n, seed, what));
}

/* Puts every key once, in the order of a permutation; not timed. */
static void fill_all(struct ctx *c, uint64_t seed, const char *what)
{
	uint32_t *perm = permutation(num, seed);

	for (uint64_t i = 0; i < num; i++)
		do_put(c, perm[i], what, i);
	free(perm);
}

/* Reads n random keys; missing: keys from num..2num-1, none present. */
static void w_read(struct ctx *c, struct res *r, uint32_t *lat, uint64_t n,
		   uint64_t seed, int missing)
{
	uint64_t t0 = now_ns(), start = t0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t idx = below(&seed, num) + (missing ? num : 0);

		do_get(c, idx, missing ? ENG_NOTFOUND : ENG_OK,
		       missing ? "readmissing" : "readrandom", i);
		uint64_t t1 = now_ns();
		lat[i] = lat_of(t1 - t0);
		t0 = t1;
	}
	if (r)
		summarise(r, lat, n, t0 - start);
}

/* Reads min(SAMPLE, num) random keys, each expected with its value, and
 * returns how many came back intact (a miss or wrong bytes is counted,
 * not fatal: after a crash that is the figure). */
static uint64_t sample_intact(const struct ctx *c, uint64_t *sampled)
{
	uint64_t seed = 6, n = num < SAMPLE ? num : SAMPLE, ok = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t idx = below(&seed, num);
		char k[KEY_LEN];

		make_key(k, idx);
		ok += c->e->get(c->h, k, KEY_LEN, value_of(idx), val_len) ==
			ENG_OK;
	}
	*sampled = n;
	return ok;
}

struct reader {
	struct ctx *c;
	uint32_t *lat;
	uint64_t n, seed;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;

	w_read(rd->c, NULL, rd->lat, rd->n, rd->seed, 0);
	if (rd->c->e->thread_end)
		rd->c->e->thread_end(rd->c->h);
	return NULL;
}

/* T threads share `reads` random gets; ops/s is the aggregate. */
static void w_read_mt(struct ctx *c, struct res *r)
{
	pthread_t tid[MAX_THREADS];
	struct reader rd[MAX_THREADS];
	uint64_t per = reads / (uint64_t)threads, t0;

	t0 = now_ns();
	for (int t = 0; t < threads; t++) {
		rd[t] = (struct reader){ c, c->lat + per * (uint64_t)t, per,
					 1000 + (uint64_t)t };
		if (pthread_create(&tid[t], NULL, reader_main, &rd[t]))
			fail(c, "pthread_create", 0);
	}
	for (int t = 0; t < threads; t++)
		pthread_join(tid[t], NULL);
	summarise(r, c->lat, per * (uint64_t)threads, now_ns() - t0);
}

struct scan_check {
	uint64_t next;
	int bad;
};

static void scan_pair(void *arg, const void *k, size_t kl, const void *v,
		      size_t vl)
{
	struct scan_check *s = arg;
	char want_k[KEY_LEN];

	make_key(want_k, s->next);
	if (kl != KEY_LEN || memcmp(k, want_k, KEY_LEN) || vl != val_len ||
	    memcmp(v, value_of(s->next), val_len))
		s->bad = 1;
	s->next++;
}

/* n scans of 100 pairs from random keys, each pair checked for order
 * and value. */
static void w_scan(struct ctx *c, struct res *r, uint64_t n)
{
	uint64_t seed = 77, t0 = now_ns(), start = t0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t idx = below(&seed, num);
		struct scan_check s = { idx, 0 };
		uint64_t want_n = num - idx < SCAN_LEN ? num - idx : SCAN_LEN;
		char k[KEY_LEN];

		make_key(k, idx);
		if (c->e->scan(c->h, k, KEY_LEN, SCAN_LEN, scan_pair, &s) !=
		    (int)want_n || s.bad)
			fail(c, "scan100", i);
		uint64_t t1 = now_ns();
		c->lat[i] = lat_of(t1 - t0);
		t0 = t1;
	}
	summarise(r, c->lat, n, t0 - start);
}

/* YCSB-style mix over the loaded keys: read_pct reads, the rest updates. */
static void w_ycsb(struct ctx *c, struct res *r, int read_pct, uint64_t seed)
{
	uint64_t t0 = now_ns(), start = t0;

	for (uint64_t i = 0; i < reads; i++) {
		uint64_t idx = below(&seed, num);

		if ((int)below(&seed, 100) < read_pct)
			do_get(c, idx, ENG_OK, "ycsb read", i);
		else
			do_put(c, idx, "ycsb update", i);
		uint64_t t1 = now_ns();
		c->lat[i] = lat_of(t1 - t0);
		t0 = t1;
	}
	summarise(r, c->lat, reads, t0 - start);
}

/* Deletes keys perm[0..n-1], each present. */
static void w_delete(struct ctx *c, struct res *r, const uint32_t *perm,
		     uint64_t n)
{
	uint64_t t0 = now_ns(), start = t0;

	for (uint64_t i = 0; i < n; i++) {
		char k[KEY_LEN];

		make_key(k, perm[i]);
		if (c->e->del(c->h, k, KEY_LEN))
			fail(c, "deleterandom", i);
		uint64_t t1 = now_ns();
		c->lat[i] = lat_of(t1 - t0);
		t0 = t1;
	}
	summarise(r, c->lat, n, t0 - start);
}

/* Close and open timed apart: the close pays for whatever the engine
 * defers (flushes, hint files, background work), the open is what a
 * restarted process waits for. A sample of reads then proves the data
 * came back; after a clean close every key must. */
static void w_reopen(struct ctx *c, struct chain_res *cr)
{
	uint64_t t0 = now_ns(), t1, sampled;

	close_store(c);
	t1 = now_ns();
	open_store(c, 0, num);
	cr->w[W_REOPEN].ms = (double)(now_ns() - t1) / 1e6;
	cr->w[W_REOPEN].done = 1;
	cr->close_ms = (double)(t1 - t0) / 1e6;
	if (sample_intact(c, &sampled) != sampled)
		fail(c, "read after reopen", 0);
}

static double disk_sum;

static int add_file(const char *p, const struct stat *st, int flag,
		    struct FTW *f)
{
	(void)p, (void)f;
	if (flag == FTW_F)
		disk_sum += (double)st->st_blocks * 512;
	return 0;
}

static double disk_bytes(const char *dir)
{
	disk_sum = 0;
	nftw(dir, add_file, 16, FTW_PHYS);
	return disk_sum;
}

static double rss_anon(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	double kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "RssAnon: %lf", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

static int needs_data(void)
{
	for (int w = W_FILLRANDOM; w < W_FILLSYNC; w++)
		if (want[w])
			return 1;
	return 0;
}

static void chain_main(struct ctx *c, struct chain_res *cr)
{
	uint32_t *perm = permutation(num, 42);
	double anon0 = rss_anon();

	open_store(c, 0, num);
	w_fill(c, &cr->w[W_FILLRANDOM], perm, num, 0, "fillrandom");
	cr->disk_bytes = disk_bytes(c->dir);
	cr->anon_per_key = (rss_anon() - anon0) / (double)num;
	if (want[W_READRANDOM])
		w_read(c, &cr->w[W_READRANDOM], c->lat, reads, 1, 0);
	if (want[W_READMISSING])
		w_read(c, &cr->w[W_READMISSING], c->lat, reads, 2, 1);
	if (want[W_READRANDOM_MT] && c->e->mt_get)
		w_read_mt(c, &cr->w[W_READRANDOM_MT]);
	/* Scans follow num, not reads: the first scan of libkv builds its
	 * ordered index, which would dominate a few hundred scans. */
	if (want[W_SCAN] && c->e->scan)
		w_scan(c, &cr->w[W_SCAN], num / 100 < 10000 ?
		       (num / 100 ? num / 100 : 1) : 10000);
	if (want[W_YCSB_A])
		w_ycsb(c, &cr->w[W_YCSB_A], 50, 3);
	if (want[W_YCSB_B])
		w_ycsb(c, &cr->w[W_YCSB_B], 95, 4);
	if (want[W_OVERWRITE])
		w_fill(c, &cr->w[W_OVERWRITE], NULL, writes, 5, "overwrite");
	if (want[W_REOPEN])
		w_reopen(c, cr);
	if (want[W_DELETERANDOM]) {
		free(perm);
		perm = permutation(num, 43);
		w_delete(c, &cr->w[W_DELETERANDOM], perm, writes);
	}
	close_store(c);
	free(perm);
}

static void chain_sync(struct ctx *c, struct chain_res *cr)
{
	uint32_t *perm = permutation(sync_num, 44);

	open_store(c, 1, sync_num);
	w_fill(c, &cr->w[W_FILLSYNC], perm, sync_num, 0, "fillsync");
	close_store(c);
	free(perm);
}

/* fillsync-mt: thread t puts keys t*per .. (t+1)*per-1 (shuffled), so the
 * threads' key ranges are disjoint; each put durable before it returns. */
struct sync_writer {
	struct ctx *c;
	const uint32_t *perm;
	uint32_t *lat;
	uint64_t base, n;
};

static void *sync_writer_main(void *arg)
{
	struct sync_writer *w = arg;
	uint64_t t0 = now_ns();

	for (uint64_t i = 0; i < w->n; i++) {
		do_put(w->c, w->base + w->perm[i], "fillsync-mt", i);
		uint64_t t1 = now_ns();
		w->lat[i] = lat_of(t1 - t0);
		t0 = t1;
	}
	if (w->c->e->thread_end)
		w->c->e->thread_end(w->c->h);
	return NULL;
}

static void chain_sync_mt(struct ctx *c, struct chain_res *cr)
{
	pthread_t tid[MAX_THREADS];
	struct sync_writer sw[MAX_THREADS];
	uint64_t per = sync_num / (uint64_t)sync_threads, t0;
	uint32_t *perm = permutation(per, 47);

	open_store(c, 1, sync_num);
	t0 = now_ns();
	for (int t = 0; t < sync_threads; t++) {
		sw[t] = (struct sync_writer){ c, perm, c->lat + per * (uint64_t)t,
					      per * (uint64_t)t, per };
		if (pthread_create(&tid[t], NULL, sync_writer_main, &sw[t]))
			fail(c, "pthread_create", 0);
	}
	for (int t = 0; t < sync_threads; t++)
		pthread_join(tid[t], NULL);
	summarise(&cr->w[W_FILLSYNC_MT], c->lat, per * (uint64_t)sync_threads,
		  now_ns() - t0);
	close_store(c);
	free(perm);
}

/* reopen-crash: the writer is a grandchild, so that its death by SIGKILL
 * is a real process crash (no atexit, no destructors, no close), right
 * after its last put returned. This process then opens what it left.
 * The writer's fill is fillseq, timed: the crash needs N keys written
 * anyway, and a fill of its own would cost the slowest peers a minute a
 * run. The writer leaves its latencies and wall time in shared memory
 * and dies at once; this process sorts them (sorting first would give a
 * background thread of the engine 0.1 s more before the crash). */
static void chain_crash(struct ctx *c, struct chain_res *cr)
{
	size_t len = sizeof(uint64_t) + num * sizeof *c->lat;
	uint64_t *wall = mmap(NULL, len, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t t0, sampled;
	int status;
	pid_t pid;

	if (wall == MAP_FAILED)
		fail(c, "mmap", 0);
	memset(wall, 0xff, len); /* its page faults not in the writer's time */
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		fail(c, "fork", 0);
	if (pid == 0) {
		uint32_t *order = sequence(num);

		c->lat = (uint32_t *)(wall + 1);
		open_store(c, 0, num);
		*wall = put_timed(c, order, num, 0, "fillseq");
		kill(getpid(), SIGKILL);
		_exit(3);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail(c, "crash writer", 0);
	summarise(&cr->w[W_FILLSEQ], (uint32_t *)(wall + 1), num, *wall);
	munmap(wall, len);
	eng_opts o = { 0, num, 0 };
	t0 = now_ns();
	c->h = c->e->open(c->dir, &o);
	cr->w[W_REOPEN_CRASH].ms = (double)(now_ns() - t0) / 1e6;
	cr->w[W_REOPEN_CRASH].done = 1;
	cr->crash_sampled = (double)(num < SAMPLE ? num : SAMPLE);
	if (!c->h) {
		cr->crash_open_failed = 1;
		return;
	}
	cr->crash_intact = (double)sample_intact(c, &sampled);
	close_store(c);
}

/* compact's writer: one put every 1/compact_rate s on a fixed schedule
 * (a service's steady load, not a saturating loop), each timed alone, until
 * told to stop. A writer that falls behind skips ahead instead of
 * bursting to catch up. */
struct paced_writer {
	const struct ctx *c;
	atomic_int stop;
	uint64_t seed, n, cap;
	uint32_t *lat;
};

static void *paced_writer_main(void *arg)
{
	struct paced_writer *w = arg;
	uint64_t step = 1000000000ull / compact_rate, next = now_ns();

	while (!atomic_load(&w->stop)) {
		uint64_t t0 = now_ns();

		next += step;
		if (t0 < next)
			sleep_until(next);
		else if (t0 - next > step)
			next = t0;
		if (w->n == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 65536;
			w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
			if (!w->lat)
				fail(w->c, "malloc", w->n);
		}
		t0 = now_ns();
		do_put(w->c, below(&w->seed, num), "compact writer", w->n);
		w->lat[w->n++] = lat_of(now_ns() - t0);
	}
	if (w->c->e->thread_end)
		w->c->e->thread_end(w->c->h);
	return NULL;
}

static void writer_start(const struct ctx *c, struct paced_writer *w,
			 pthread_t *tid, uint64_t seed)
{
	memset(w, 0, sizeof *w);
	w->c = c;
	w->seed = seed;
	atomic_init(&w->stop, 0);
	if (pthread_create(tid, NULL, paced_writer_main, w))
		fail(c, "pthread_create", 0);
}

/* Stops the writer; r gets its p50/p99 (ops_s is left to the caller). */
static void writer_stop(struct paced_writer *w, pthread_t tid, double *p50,
			double *p99, double *ops)
{
	struct res r = { 0 };

	atomic_store(&w->stop, 1);
	pthread_join(tid, NULL);
	summarise(&r, w->lat, w->n, 1);
	*p50 = w->n ? r.p50_us : -1;
	*p99 = w->n ? r.p99_us : -1;
	*ops = (double)w->n;
	free(w->lat);
}

/* compact: an overwrite-heavy store (every key written three times), the
 * paced writer during one full compaction, then the same writer alone for
 * BASE_MS. The baseline comes after, not before: right after the
 * overwrites an LSM engine is still compacting in the background, and
 * after a full compaction nothing is. The figure is input bytes (the
 * directory's allocated bytes just before) per second of compaction. */
static void chain_compact(struct ctx *c, struct chain_res *cr)
{
	struct res *r = &cr->w[W_COMPACT];
	struct paced_writer w;
	eng_opts o = { 0, num, 1 };
	pthread_t tid;
	uint64_t t0, t1, sampled;
	int64_t rd;

	c->h = c->e->open(c->dir, &o);
	if (!c->h)
		fail(c, "open", 0);
	fill_all(c, 42, "compact fill");
	fill_all(c, 45, "compact overwrite 1");
	fill_all(c, 46, "compact overwrite 2");
	cr->cmp_in_bytes = disk_bytes(c->dir);
	writer_start(c, &w, &tid, 49);
	t0 = now_ns();
	if (c->e->compact(c->h, &rd))
		fail(c, "compact", 0);
	t1 = now_ns();
	cr->cmp_read_bytes = (double)rd;
	writer_stop(&w, tid, &r->p50_us, &r->p99_us, &cr->writer_ops_during);
	cr->cmp_out_bytes = disk_bytes(c->dir);
	writer_start(c, &w, &tid, 48);
	sleep_until(now_ns() + BASE_MS * 1000000ull);
	writer_stop(&w, tid, &cr->base_p50_us, &cr->base_p99_us,
		    &cr->writer_ops_base);
	r->done = 1;
	r->ms = (double)(t1 - t0) / 1e6;
	r->ops_s = t1 > t0 ? cr->cmp_in_bytes * 1e9 / (double)(t1 - t0) : 0;
	if (sample_intact(c, &sampled) != sampled)
		fail(c, "read after compact", 0);
	close_store(c);
}

/* ---- processes and directories ---- */

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	return remove(p);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void run_chain(struct ctx *c, enum kind k, struct chain_res *cr)
{
	switch (k) {
	case K_MAIN: chain_main(c, cr); break;
	case K_SYNC: chain_sync(c, cr); break;
	case K_SYNC_MT: chain_sync_mt(c, cr); break;
	case K_CRASH: chain_crash(c, cr); break;
	default: chain_compact(c, cr); break;
	}
}

/* Runs one chain of engine e in a child; 0 when it completed, and then
 * *cr holds the child's figures added to those it had. */
static int run_child(const engine *e, enum kind k, int run,
		     struct chain_res *cr)
{
	static struct chain_res got_cr;
	struct ctx c = { .e = e };
	uint64_t t0 = now_ns();
	int fd[2], status;
	struct rusage ru;
	pid_t pid;
	ssize_t got;

	snprintf(c.dir, sizeof c.dir, "%s/%s-%s-%d", base_dir, e->name,
		 kind_name[k], run);
	if (mkdir(c.dir, 0755) || pipe(fd)) {
		perror(c.dir);
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		uint64_t n = num > reads ? num : reads;

		close(fd[0]);
		size_t lat_bytes = (n > sync_num ? n : sync_num) * sizeof *c.lat;
		c.lat = malloc(lat_bytes);
		if (!c.lat)
			_exit(1);
		/* Touched now, so that the RssAnon growth over fillrandom is
		 * the engine's alone: filled in as the puts were timed, this
		 * array added 4.0 B/key to every engine's figure until run O.
		 * Not zeros: the compiler turns malloc and memset 0 into
		 * calloc, whose fresh pages stay untouched. */
		memset(c.lat, 0xff, lat_bytes);
		run_chain(&c, k, cr);
		if (write(fd[1], cr, sizeof *cr) != (ssize_t)sizeof *cr)
			_exit(1);
		_exit(0);
	}
	close(fd[1]);
	got = read(fd[0], &got_cr, sizeof got_cr);
	close(fd[0]);
	while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
		;
	rm_rf(c.dir);
	if (got != (ssize_t)sizeof got_cr || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "kvbench: %s run %d: %s chain failed\n",
			e->name, run + 1, kind_name[k]);
		return -1;
	}
	*cr = got_cr;
	cr->ok = 1;
	cr->wall_s[k] = (double)(now_ns() - t0) / 1e9;
	if (k == K_MAIN)
		cr->peak_rss_mb = (double)ru.ru_maxrss / 1024;
	return 0;
}

/* Whether chain k applies to engine e with the workloads asked for. */
static int chain_wanted(const engine *e, enum kind k)
{
	switch (k) {
	case K_MAIN: return needs_data();
	case K_SYNC: return want[W_FILLSYNC];
	case K_SYNC_MT: return want[W_FILLSYNC_MT] && e->mt_put;
	case K_CRASH: return want[W_REOPEN_CRASH] || want[W_FILLSEQ];
	default: return want[W_COMPACT] && e->compact && e->mt_put;
	}
}

/* ---- reporting ---- */

static struct chain_res results[MAX_ENGINES][MAX_RUNS];

/* Median over the runs of one figure; -1 when no run measured it. */
static double median(int e, double (*get)(const struct chain_res *, int),
		     int w)
{
	double v[MAX_RUNS];
	int n = 0;

	for (int r = 0; r < runs; r++) {
		double x = results[e][r].ok ? get(&results[e][r], w) : -1;

		if (x >= 0)
			v[n++] = x;
	}
	if (!n)
		return -1;
	qsort(v, (size_t)n, sizeof v[0], cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double g_ops(const struct chain_res *c, int w)
{
	return c->w[w].done ? c->w[w].ops_s : -1;
}

static double g_p50(const struct chain_res *c, int w)
{
	return c->w[w].done ? c->w[w].p50_us : -1;
}

static double g_p99(const struct chain_res *c, int w)
{
	return c->w[w].done ? c->w[w].p99_us : -1;
}

static double g_ms(const struct chain_res *c, int w)
{
	return c->w[w].done ? c->w[w].ms : -1;
}

static double g_close(const struct chain_res *c, int w)
{
	(void)w;
	return c->w[W_REOPEN].done ? c->close_ms : -1;
}

static double g_crash_ms(const struct chain_res *c, int w)
{
	(void)w;
	return c->w[W_REOPEN_CRASH].done && !c->crash_open_failed ?
		c->w[W_REOPEN_CRASH].ms : -1;
}

static double g_crash_intact(const struct chain_res *c, int w)
{
	(void)w;
	return c->w[W_REOPEN_CRASH].done ? c->crash_intact : -1;
}

static double g_mt_gain(const struct chain_res *c, int w)
{
	(void)w;
	return c->w[W_FILLSYNC].done && c->w[W_FILLSYNC_MT].done &&
		c->w[W_FILLSYNC].ops_s > 0 ?
		c->w[W_FILLSYNC_MT].ops_s / c->w[W_FILLSYNC].ops_s : -1;
}

static double g_cmp_in(const struct chain_res *c, int w)
{
	(void)w;
	return c->w[W_COMPACT].done ? c->cmp_in_bytes : -1;
}

static double g_cmp_out(const struct chain_res *c, int w)
{
	(void)w;
	return c->w[W_COMPACT].done ? c->cmp_out_bytes : -1;
}

static double g_cmp_read(const struct chain_res *c, int w)
{
	(void)w;
	return c->w[W_COMPACT].done ? c->cmp_read_bytes : -1;
}

/* Compaction rate and time; -1 (n/a) when it read nothing by the
 * engine's own count, where a rate would be a division by ~0. */
static double g_cmp(const struct chain_res *c, int w)
{
	if (!c->w[W_COMPACT].done || c->cmp_read_bytes == 0)
		return -1;
	return w ? c->w[W_COMPACT].ms : c->w[W_COMPACT].ops_s;
}

static double g_cmp_read_rate(const struct chain_res *c, int w)
{
	(void)w;
	return c->w[W_COMPACT].done && c->cmp_read_bytes >= 0 &&
		c->w[W_COMPACT].ms > 0 ?
		c->cmp_read_bytes / c->w[W_COMPACT].ms * 1e3 : -1;
}

static double g_base_p50(const struct chain_res *c, int w)
{
	(void)w;
	return c->w[W_COMPACT].done ? c->base_p50_us : -1;
}

static double g_base_p99(const struct chain_res *c, int w)
{
	(void)w;
	return c->w[W_COMPACT].done ? c->base_p99_us : -1;
}

static double g_p99_gain(const struct chain_res *c, int w)
{
	(void)w;
	return c->w[W_COMPACT].done && c->base_p99_us > 0 &&
		c->w[W_COMPACT].p99_us >= 0 ?
		c->w[W_COMPACT].p99_us / c->base_p99_us : -1;
}

static double g_disk(const struct chain_res *c, int w)
{
	(void)w;
	return c->w[W_FILLRANDOM].done ? c->disk_bytes : -1;
}

static double g_anon(const struct chain_res *c, int w)
{
	(void)w;
	return c->w[W_FILLRANDOM].done ? c->anon_per_key : -1;
}

static double g_rss(const struct chain_res *c, int w)
{
	(void)w;
	return c->peak_rss_mb > 0 ? c->peak_rss_mb : -1;
}

/* w is a chain kind here; K_COUNT: all of the engine's chains. */
static double g_wall(const struct chain_res *c, int k)
{
	double sum = 0;

	if (k < K_COUNT)
		return c->wall_s[k] > 0 ? c->wall_s[k] : -1;
	for (int i = 0; i < K_COUNT; i++)
		sum += c->wall_s[i];
	return sum > 0 ? sum : -1;
}

/* Engine e's compaction read nothing in some run, by its own count. */
static int compact_noop(int e)
{
	for (int r = 0; r < runs; r++) {
		const struct chain_res *c = &results[e][r];

		if (c->ok && c->w[W_COMPACT].done && c->cmp_read_bytes == 0)
			return 1;
	}
	return 0;
}

/* Engine e lost acknowledged writes in some run's crash. */
static int lost_in_crash(int e)
{
	for (int r = 0; r < runs; r++) {
		const struct chain_res *c = &results[e][r];

		if (c->ok && c->w[W_REOPEN_CRASH].done &&
		    (c->crash_open_failed || c->crash_intact < c->crash_sampled))
			return 1;
	}
	return 0;
}

static void header(const char *first, const char *last)
{
	printf("| %s |", first);
	for (int e = 0; e < n_engines; e++)
		printf(" %s |", engines[e]->name);
	printf("%s\n|---|", last);
	for (int e = 0; e < n_engines; e++)
		printf("---:|");
	printf("%s\n", *last ? "---|---:|" : "");
}

/* One row; lower_better picks the best peer by the smallest figure. The
 * ratio is libkv's figure over the best peer's (for "lower is better"
 * figures, the best peer's over libkv's, so > 1 always means libkv wins).
 * An engine for which `marked` is true gets " (<mark>)" after its figure
 * and is not a candidate for best. */
static void row_ex(const char *label,
		   double (*get)(const struct chain_res *, int), int w,
		   double scale, const char *fmt, int lower_better,
		   int (*marked)(int), const char *mark)
{
	int kv = -1, best = -1;
	double v[MAX_ENGINES];

	printf("| %s |", label);
	for (int e = 0; e < n_engines; e++) {
		int m = marked && marked(e);

		v[e] = median(e, get, w);
		if (v[e] >= 0)
			v[e] /= scale;
		if (v[e] < 0)
			printf(" n/a%s%s%s |", m ? " (" : "", m ? mark : "",
			       m ? ")" : "");
		else if (m)
			printf(" %.1f (%s) |", v[e], mark);
		else
			/* Small throughputs (fillsync) keep a decimal. */
			printf(v[e] < 100 && !lower_better &&
			       !strcmp(fmt, " %.0f |") ? " %.1f |" : fmt, v[e]);
		if (!strcmp(engines[e]->name, "libkv")) {
			kv = e;
			continue;
		}
		if (!m && v[e] >= 0 && (best < 0 || (lower_better ?
			v[e] < v[best] : v[e] > v[best])))
			best = e;
	}
	if (best < 0) {
		printf(" n/a | n/a |\n");
		return;
	}
	printf(" %s |", engines[best]->name);
	if (kv < 0 || v[kv] < 0 || (lower_better ? v[kv] : v[best]) <= 0)
		printf(" n/a |\n");
	else
		printf(" %.3gx |\n", lower_better ? v[best] / v[kv] :
		       v[kv] / v[best]);
}

static void row(const char *label, double (*get)(const struct chain_res *, int),
		int w, double scale, const char *fmt, int lower_better)
{
	row_ex(label, get, w, scale, fmt, lower_better, NULL, NULL);
}

/* Workloads with a throughput and latencies of their own. */
static int per_op(int w)
{
	return w != W_REOPEN && w != W_REOPEN_CRASH && w != W_COMPACT;
}

static void report_ops(void)
{
	printf("\n### Throughput, k ops/s (median of %d)\n\n", runs);
	header("workload", " best peer | libkv / best |");
	for (int w = 0; w < W_COUNT; w++)
		if (want[w] && per_op(w))
			row(wl_name[w], g_ops, w, 1e3, " %.0f |", 0);
	if (want[W_FILLSYNC] && want[W_FILLSYNC_MT]) {
		char label[64];

		snprintf(label, sizeof label, "fillsync-mt (%d threads) / own "
			 "fillsync, x", sync_threads);
		row(label, g_mt_gain, 0, 1, " %.2f |", 0);
	}
	printf("\n### Latency p50 / p99, us (median of %d)\n\n", runs);
	header("workload", "");
	for (int w = 0; w < W_COUNT; w++) {
		if (!want[w] || !per_op(w))
			continue;
		printf("| %s |", wl_name[w]);
		for (int e = 0; e < n_engines; e++) {
			double a = median(e, g_p50, w), b = median(e, g_p99, w);

			if (a < 0)
				printf(" n/a |");
			else
				printf(" %.2f / %.2f |", a, b);
		}
		printf("\n");
	}
}

static void report_open(void)
{
	printf("\n### Space, close and open (median of %d)\n\n", runs);
	header("figure", " best peer | libkv vs best |");
	if (needs_data()) {
		row("disk after fillrandom, MB", g_disk, 0, 1e6, " %.1f |", 1);
		row("RssAnon growth over fillrandom, B/key", g_anon, 0, 1,
		    " %.1f |", 1);
		row("peak RSS of the main chain, MB", g_rss, 0, 1, " %.0f |", 1);
	}
	if (want[W_REOPEN]) {
		row("close, ms (after the main chain's writes)", g_close, 0, 1,
		    " %.1f |", 1);
		row("reopen after clean close, ms (open only)", g_ms, W_REOPEN,
		    1, " %.1f |", 1);
	}
	if (want[W_REOPEN_CRASH]) {
		char label[96];

		row_ex("reopen after a crash, ms", g_crash_ms, 0, 1, " %.1f |",
		       1, lost_in_crash, "lost");
		snprintf(label, sizeof label, "crash: keys intact of %d "
			 "sampled", (int)(num < SAMPLE ? num : SAMPLE));
		row_ex(label, g_crash_intact, 0, 1, " %.0f |", 0,
		       lost_in_crash, "lost");
		for (int e = 0; e < n_engines; e++)
			for (int r = 0; r < runs; r++)
				if (results[e][r].crash_open_failed)
					printf("\n%s run %d: open after the "
					       "crash failed", engines[e]->name,
					       r + 1);
	}
	printf("\n\"libkv vs best\" > 1: libkv ahead (best / libkv for "
	       "times, sizes; libkv / best for counts). \"(lost)\": the "
	       "engine's default mode lost acknowledged puts to kill -9 in "
	       "some run; not a candidate for best.\n");
}

static void report_compact(void)
{
	printf("\n### compact: fill, 2 overwrites of every key, then a full "
	       "compaction beside a writer at %llu puts/s (median of %d)\n\n",
	       (unsigned long long)compact_rate, runs);
	header("figure", " best peer | libkv vs best |");
	row("disk before compaction (input), MB", g_cmp_in, 0, 1e6, " %.1f |",
	    1);
	row("compaction read, by the engine's own count, MB", g_cmp_read, 0,
	    1e6, " %.1f |", 1);
	row_ex("compaction, MB/s of input", g_cmp, 0, 1e6, " %.1f |", 0,
	       compact_noop, "no-op");
	row("compaction, MB/s read by the engine's own count", g_cmp_read_rate,
	    0, 1e6, " %.1f |", 0);
	row_ex("compaction time, s", g_cmp, 1, 1e3, " %.2f |", 1,
	       compact_noop, "no-op");
	row("disk after compaction, MB", g_cmp_out, 0, 1e6, " %.1f |", 1);
	row("writer put p50 without compaction, us", g_base_p50, 0, 1,
	    " %.2f |", 1);
	row("writer put p50 during compaction, us", g_p50, W_COMPACT, 1,
	    " %.2f |", 1);
	row("writer put p99 without compaction, us", g_base_p99, 0, 1,
	    " %.2f |", 1);
	row("writer put p99 during compaction, us", g_p99, W_COMPACT, 1,
	    " %.2f |", 1);
	row("writer p99 during / without, x", g_p99_gain, 0, 1, " %.2f |", 1);
	printf("\nlibkv runs this chain with KV_NO_AUTO_COMPACT, so that "
	       "kv_compact has the whole backlog; the LSM engines compact in "
	       "the background as always. \"(no-op)\": by the engine's own "
	       "count the compaction read nothing (libkv never compacts its "
	       "active segment, which holds up to 64 MiB by default); not a candidate "
	       "for best. \"without\" is the same writer for %d ms right "
	       "after the compaction. A writer figure is n/a when the "
	       "compaction ended before its first put.\n", BASE_MS);
}

static void report_wall(void)
{
	static const char *const label[K_COUNT] = {
		"main chain", "fillsync chain", "fillsync-mt chain",
		"fillseq + reopen-crash chain", "compact chain",
	};

	printf("\n### Wall time of each chain, s (median of %d)\n\n", runs);
	header("chain", " best peer | libkv vs best |");
	for (int k = 0; k < K_COUNT; k++)
		for (int e = 0; e < n_engines; e++)
			if (chain_wanted(engines[e], (enum kind)k)) {
				row(label[k], g_wall, k, 1, " %.1f |", 1);
				break;
			}
	row("all chains of the engine", g_wall, K_COUNT, 1, " %.1f |", 1);
}

/* The targets for the figures this program adds. */
static void report_targets(void)
{
	int kv = -1;

	for (int e = 0; e < n_engines; e++)
		if (!strcmp(engines[e]->name, "libkv"))
			kv = e;
	if (kv < 0)
		return;
	printf("\n### libkv against the targets of these workloads\n\n");
	if (want[W_FILLSYNC] && want[W_FILLSYNC_MT]) {
		double g = median(kv, g_mt_gain, 0);

		printf("- fillsync-mt / own fillsync: %.2fx (target >= 3x): "
		       "%s\n", g, g >= 3 ? "met" : "missed");
	}
	if (want[W_REOPEN_CRASH]) {
		double m = median(kv, g_crash_ms, 0);

		printf("- reopen after a crash: %.1f ms at N = %llu (target "
		       "<= 150 ms at 1M): %s\n", m, (unsigned long long)num,
		       num < 1000000 ? "not judged below N = 1M" :
		       m >= 0 && m <= 150 ? "met" : "missed");
	}
	if (want[W_COMPACT]) {
		double g = median(kv, g_p99_gain, 0);

		if (g < 0)
			printf("- writer p99 during / without compaction: n/a "
			       "(no put ran during the compaction)\n");
		else
			printf("- writer p99 during / without compaction: "
			       "%.2fx (target <= 2x): %s\n", g, g <= 2 ?
			       "met" : "missed");
	}
}

static void report(void)
{
	report_ops();
	report_open();
	if (want[W_COMPACT])
		report_compact();
	report_wall();
	report_targets();
}

/* ---- command line ---- */

static _Noreturn void usage(void)
{
	fprintf(stderr, "usage: kvbench [--num N] [--runs R] [--reads N] "
		"[--writes N] [--sync-num N] [--threads T]\n"
		"               [--sync-threads T] [--value-size B] "
		"[--compact-rate P]\n"
		"               [--engines a,b] [--workloads a,b] [--dir DIR]\n"
		"engines:");
	for (int i = 0; all_engines[i]; i++)
		fprintf(stderr, " %s", all_engines[i]->name);
	fprintf(stderr, "\nworkloads:");
	for (int w = 0; w < W_COUNT; w++)
		fprintf(stderr, " %s", wl_name[w]);
	fprintf(stderr, "\n");
	exit(2);
}

static void pick_engines(char *list)
{
	for (char *s = strtok(list, ","); s; s = strtok(NULL, ",")) {
		int found = 0;

		for (int i = 0; all_engines[i]; i++)
			if (!strcmp(all_engines[i]->name, s) &&
			    n_engines < MAX_ENGINES) {
				engines[n_engines++] = all_engines[i];
				found = 1;
			}
		if (!found)
			fprintf(stderr, "kvbench: engine %s: not built here "
				"(its Debian package was missing at build "
				"time); skipped\n", s);
	}
}

static void pick_workloads(char *list)
{
	for (char *s = strtok(list, ","); s; s = strtok(NULL, ",")) {
		int found = 0;

		for (int w = 0; w < W_COUNT; w++)
			if (!strcmp(wl_name[w], s))
				want[w] = found = 1;
		if (!found)
			usage();
	}
}

static uint64_t num_arg(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (*end || !v)
		usage();
	return v;
}

static void parse(int argc, char **argv)
{
	char *eng = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--num"))
			num = num_arg(v);
		else if (!strcmp(a, "--reads"))
			reads = num_arg(v);
		else if (!strcmp(a, "--writes"))
			writes = num_arg(v);
		else if (!strcmp(a, "--sync-num"))
			sync_num = num_arg(v);
		else if (!strcmp(a, "--runs"))
			runs = (int)num_arg(v);
		else if (!strcmp(a, "--threads"))
			threads = (int)num_arg(v);
		else if (!strcmp(a, "--sync-threads"))
			sync_threads = (int)num_arg(v);
		else if (!strcmp(a, "--value-size"))
			val_len = (size_t)num_arg(v);
		else if (!strcmp(a, "--compact-rate"))
			compact_rate = num_arg(v);
		else if (!strcmp(a, "--engines"))
			eng = argv[i];
		else if (!strcmp(a, "--workloads"))
			pick_workloads(argv[i]);
		else if (!strcmp(a, "--dir"))
			base_dir = v;
		else
			usage();
	}
	if (runs > MAX_RUNS || threads > MAX_THREADS ||
	    sync_threads > MAX_THREADS || num > UINT32_MAX ||
	    val_len > MAX_VALUE || compact_rate > 1000000000ull)
		usage();
	if (!reads)
		reads = num;
	if (!writes)
		writes = num;
	if (writes > num)
		usage();
	if (eng)
		pick_engines(eng);
	else
		for (int i = 0; all_engines[i] && n_engines < MAX_ENGINES; i++)
			engines[n_engines++] = all_engines[i];
	for (int w = 0, any = 0; w <= W_COUNT; w++) {
		if (w == W_COUNT) {
			if (!any)
				for (int x = 0; x < W_COUNT; x++)
					want[x] = 1;
		} else {
			any |= want[w];
		}
	}
	want[W_FILLRANDOM] |= needs_data();
}

static void progress(int run, const engine *e, const struct chain_res *cr)
{
	fprintf(stderr, "run %d %-8s", run + 1, e->name);
	for (int w = 0; w < W_COUNT; w++) {
		const struct res *r = &cr->w[w];

		if (!r->done)
			continue;
		if (w == W_REOPEN)
			fprintf(stderr, " close %.1fms reopen %.1fms",
				cr->close_ms, r->ms);
		else if (w == W_REOPEN_CRASH && cr->crash_open_failed)
			fprintf(stderr, " reopen-crash: open failed");
		else if (w == W_REOPEN_CRASH)
			fprintf(stderr, " reopen-crash %.1fms (%.0f/%.0f keys)",
				r->ms, cr->crash_intact, cr->crash_sampled);
		else if (w == W_COMPACT && cr->cmp_read_bytes == 0)
			fprintf(stderr, " compact: no-op (read nothing)");
		else if (w == W_COMPACT)
			fprintf(stderr, " compact %.0fMB/s writer p99 %.0fus "
				"(%.0fus without)", r->ops_s / 1e6, r->p99_us,
				cr->base_p99_us);
		else
			fprintf(stderr, " %s %.*fk", wl_name[w],
				r->ops_s < 1e5 ? 1 : 0, r->ops_s / 1e3);
	}
	fprintf(stderr, " (");
	for (int k = 0; k < K_COUNT; k++)
		if (cr->wall_s[k] > 0)
			fprintf(stderr, "%s%s %.1fs", k ? " " : "",
				kind_name[k], cr->wall_s[k]);
	fprintf(stderr, ")\n");
}

int main(int argc, char **argv)
{
	char tmpl[] = "/tmp/kvbench.XXXXXX";
	uint64_t t0 = now_ns();
	int own_dir = 0;

	parse(argc, argv);
	if (!base_dir) {
		base_dir = mkdtemp(tmpl);
		own_dir = 1;
		if (!base_dir) {
			perror("kvbench: mkdtemp");
			return 1;
		}
	}
	make_pool();
	printf("kvbench: num %llu, reads %llu, writes %llu, fillsync %llu (%d "
	       "threads for fillsync-mt), threads %d, runs %d, keys %d B, "
	       "values %zu B (half compressible), dir %s\n",
	       (unsigned long long)num, (unsigned long long)reads,
	       (unsigned long long)writes,
	       (unsigned long long)sync_num, sync_threads, threads, runs,
	       KEY_LEN, val_len, base_dir);
	for (int e = 0; e < n_engines; e++)
		printf("  %-8s %-8s %s\n", engines[e]->name,
		       engines[e]->version ? engines[e]->version() : "",
		       engines[e]->durability);
	for (int r = 0; r < runs; r++)
		for (int e = 0; e < n_engines; e++) {
			struct chain_res *cr = &results[e][r];

			for (int k = 0; k < K_COUNT; k++)
				if (chain_wanted(engines[e], (enum kind)k))
					run_child(engines[e], (enum kind)k, r,
						  cr);
			progress(r, engines[e], cr);
		}
	report();
	printf("\nkvbench: %.0f s in all\n", (double)(now_ns() - t0) / 1e9);
	if (own_dir)
		rm_rf(base_dir);
	return 0;
}
