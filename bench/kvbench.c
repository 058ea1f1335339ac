/*
 * kvbench.c - libkv against its peers, in the manner of LevelDB's db_bench.
 *
 *   kvbench [--num N] [--runs R] [--engines a,b,...] [--workloads a,b,...]
 *           [--reads N] [--sync-num N] [--threads T] [--dir DIR]
 *
 * Every engine sees the same keys (16 decimal digits of an index, so byte
 * order is index order) and values (100 bytes, the first half random and
 * the second a copy of it, db_bench's "half compressible"), from fixed
 * seeds. Every read is checked against the value written.
 *
 * One run of one engine is a chain on a fresh directory, in a forked child
 * (so that peak RSS is that engine's alone and a crash costs one cell):
 * fillrandom, readrandom, readmissing, readrandom with T threads, scan100,
 * ycsb-a, ycsb-b, overwrite, reopen, deleterandom; then fillsync in its
 * own child and directory. Runs interleave engines (A B C A B C ...) and
 * each figure printed is the median over the runs. Latency is taken per
 * operation with CLOCK_MONOTONIC (one clock read per operation).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

#define KEY_LEN 16
#define VAL_LEN 100
#define POOL_LEN (1u << 20)
#define SCAN_LEN 100
#define MAX_ENGINES 16
#define MAX_RUNS 15

/* ---- workloads ---- */

enum wl {
	W_FILLRANDOM, W_READRANDOM, W_READMISSING, W_READRANDOM_MT, W_SCAN,
	W_YCSB_A, W_YCSB_B, W_OVERWRITE, W_REOPEN, W_DELETERANDOM,
	W_FILLSYNC, W_COUNT
};

static const char *const wl_name[W_COUNT] = {
	"fillrandom", "readrandom", "readmissing", "readrandom-mt", "scan100",
	"ycsb-a", "ycsb-b", "overwrite", "reopen", "deleterandom", "fillsync",
};

/* What one workload measured in one run. */
struct res {
	int done;           /* 1 when measured */
	double ops_s;
	double p50_us, p99_us;
	double ms;          /* reopen: wall time */
};

/* What one chain (child process) sends back. */
struct chain_res {
	struct res w[W_COUNT];
	double disk_bytes;  /* allocated bytes in the directory after fill */
	double anon_per_key;/* RssAnon growth over fillrandom, per key */
	double peak_rss_mb; /* from wait4, filled in by the parent */
	int ok;
};

/* ---- configuration ---- */

static uint64_t num = 1000000, reads, sync_num = 20000;
static int runs = 3, threads = 2;
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

	return pool + splitmix(&s) % (POOL_LEN - VAL_LEN);
}

/* Every 100-byte stretch of the pool is 50 random bytes and their copy. */
static void make_pool(void)
{
	uint64_t s = 301;

	pool = malloc(POOL_LEN);
	if (!pool)
		exit(1);
	for (size_t off = 0; off < POOL_LEN; off += VAL_LEN) {
		size_t half = VAL_LEN / 2, n = POOL_LEN - off;

		for (size_t j = 0; j < half && j < n; j++)
			pool[off + j] = (unsigned char)splitmix(&s);
		for (size_t j = half; j < VAL_LEN && j < n; j++)
			pool[off + j] = pool[off + j - half];
	}
}

/* A permutation of 0..n-1 from a fixed seed. */
static uint32_t *permutation(uint64_t n, uint64_t seed)
{
	uint32_t *p = malloc(n * sizeof *p);

	if (!p)
		exit(1);
	for (uint64_t i = 0; i < n; i++)
		p[i] = (uint32_t)i;
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

/* Fills r from n per-op latencies (ns, sorted here) over wall ns. */
static void summarise(struct res *r, uint32_t *lat, uint64_t n, uint64_t wall)
{
	qsort(lat, n, sizeof *lat, cmp_u32);
	r->done = 1;
	r->ops_s = wall ? (double)n * 1e9 / (double)wall : 0;
	r->p50_us = lat[n / 2] / 1e3;
	r->p99_us = lat[n * 99 / 100] / 1e3;
}

/* ---- the chain ---- */

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

static void do_put(struct ctx *c, uint64_t idx, const char *what, uint64_t i)
{
	char k[KEY_LEN];

	make_key(k, idx);
	if (c->e->put(c->h, k, KEY_LEN, value_of(idx), VAL_LEN))
		fail(c, what, i);
}

static void do_get(const struct ctx *c, uint64_t idx, int expect,
		   const char *what, uint64_t i)
{
	char k[KEY_LEN];

	make_key(k, idx);
	if (c->e->get(c->h, k, KEY_LEN, value_of(idx), VAL_LEN) != expect)
		fail(c, what, i);
}

/* Puts keys perm[0..n-1] (or random keys with replacement if !perm). */
static void w_fill(struct ctx *c, struct res *r, const uint32_t *perm,
		   uint64_t n, uint64_t seed, const char *what)
{
	uint64_t t0 = now_ns(), start = t0;

	for (uint64_t i = 0; i < n; i++) {
		do_put(c, perm ? perm[i] : below(&seed, num), what, i);
		uint64_t t1 = now_ns();
		c->lat[i] = (uint32_t)(t1 - t0);
		t0 = t1;
	}
	summarise(r, c->lat, n, t0 - start);
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
		lat[i] = (uint32_t)(t1 - t0);
		t0 = t1;
	}
	if (r)
		summarise(r, lat, n, t0 - start);
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
	pthread_t tid[64];
	struct reader rd[64];
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
	if (kl != KEY_LEN || memcmp(k, want_k, KEY_LEN) || vl != VAL_LEN ||
	    memcmp(v, value_of(s->next), VAL_LEN))
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
		c->lat[i] = (uint32_t)(t1 - t0);
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
		c->lat[i] = (uint32_t)(t1 - t0);
		t0 = t1;
	}
	summarise(r, c->lat, reads, t0 - start);
}

static void w_delete(struct ctx *c, struct res *r, const uint32_t *perm)
{
	uint64_t t0 = now_ns(), start = t0;

	for (uint64_t i = 0; i < num; i++) {
		char k[KEY_LEN];

		make_key(k, perm[i]);
		if (c->e->del(c->h, k, KEY_LEN))
			fail(c, "deleterandom", i);
		uint64_t t1 = now_ns();
		c->lat[i] = (uint32_t)(t1 - t0);
		t0 = t1;
	}
	summarise(r, c->lat, num, t0 - start);
}

static void w_reopen(struct ctx *c, struct res *r)
{
	eng_opts o = { 0, num };
	uint64_t t0 = now_ns();

	if (c->e->close(c->h))
		fail(c, "close", 0);
	c->h = c->e->open(c->dir, &o);
	if (!c->h)
		fail(c, "reopen", 0);
	r->done = 1;
	r->ms = (double)(now_ns() - t0) / 1e6;
	/* One read proves the store is there. */
	do_get(c, 0, ENG_OK, "read after reopen", 0);
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

static void chain(struct ctx *c, struct chain_res *cr)
{
	eng_opts o = { 0, num };
	uint32_t *perm = permutation(num, 42);
	double anon0 = rss_anon();

	c->h = c->e->open(c->dir, &o);
	if (!c->h)
		fail(c, "open", 0);
	w_fill(c, &cr->w[W_FILLRANDOM], perm, num, 0, "fillrandom");
	cr->disk_bytes = disk_bytes(c->dir);
	cr->anon_per_key = (rss_anon() - anon0) / (double)num;
	if (want[W_READRANDOM])
		w_read(c, &cr->w[W_READRANDOM], c->lat, reads, 1, 0);
	if (want[W_READMISSING])
		w_read(c, &cr->w[W_READMISSING], c->lat, reads, 2, 1);
	if (want[W_READRANDOM_MT] && c->e->mt_get)
		w_read_mt(c, &cr->w[W_READRANDOM_MT]);
	if (want[W_SCAN] && c->e->scan)
		w_scan(c, &cr->w[W_SCAN], reads / 100 < 10000 ?
		       (reads / 100 ? reads / 100 : 1) : 10000);
	if (want[W_YCSB_A])
		w_ycsb(c, &cr->w[W_YCSB_A], 50, 3);
	if (want[W_YCSB_B])
		w_ycsb(c, &cr->w[W_YCSB_B], 95, 4);
	if (want[W_OVERWRITE])
		w_fill(c, &cr->w[W_OVERWRITE], NULL, num, 5, "overwrite");
	if (want[W_REOPEN])
		w_reopen(c, &cr->w[W_REOPEN]);
	if (want[W_DELETERANDOM]) {
		free(perm);
		perm = permutation(num, 43);
		w_delete(c, &cr->w[W_DELETERANDOM], perm);
	}
	if (c->e->close(c->h))
		fail(c, "close", 0);
	free(perm);
}

static void chain_sync(struct ctx *c, struct chain_res *cr)
{
	eng_opts o = { 1, sync_num };
	uint32_t *perm = permutation(sync_num, 44);

	c->h = c->e->open(c->dir, &o);
	if (!c->h)
		fail(c, "open", 0);
	w_fill(c, &cr->w[W_FILLSYNC], perm, sync_num, 0, "fillsync");
	if (c->e->close(c->h))
		fail(c, "close", 0);
	free(perm);
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

/* Runs one chain of engine e in a child; 0 when it completed. */
static int run_child(const engine *e, int sync, int run, struct chain_res *cr)
{
	struct ctx c = { .e = e };
	int fd[2], status;
	struct rusage ru;
	pid_t pid;
	ssize_t got;

	memset(cr, 0, sizeof *cr);
	snprintf(c.dir, sizeof c.dir, "%s/%s-%s-%d", base_dir, e->name,
		 sync ? "sync" : "main", run);
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
		c.lat = malloc((n > sync_num ? n : sync_num) * sizeof *c.lat);
		if (!c.lat)
			_exit(1);
		if (sync)
			chain_sync(&c, cr);
		else
			chain(&c, cr);
		cr->ok = 1;
		if (write(fd[1], cr, sizeof *cr) != (ssize_t)sizeof *cr)
			_exit(1);
		_exit(0);
	}
	close(fd[1]);
	got = read(fd[0], cr, sizeof *cr);
	close(fd[0]);
	while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
		;
	rm_rf(c.dir);
	if (got != (ssize_t)sizeof *cr || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		memset(cr, 0, sizeof *cr);
		fprintf(stderr, "kvbench: %s run %d failed\n", e->name, run + 1);
		return -1;
	}
	cr->peak_rss_mb = (double)ru.ru_maxrss / 1024;
	return 0;
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

static void print_cell(double v, const char *fmt)
{
	if (v < 0)
		printf(" n/a |");
	else
		printf(fmt, v);
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
 * figures, the best peer's over libkv's, so > 1 always means libkv wins). */
static void row(const char *label, double (*get)(const struct chain_res *, int),
		int w, double scale, const char *fmt, int lower_better)
{
	int kv = -1, best = -1;
	double v[MAX_ENGINES];

	printf("| %s |", label);
	for (int e = 0; e < n_engines; e++) {
		v[e] = median(e, get, w);
		if (v[e] >= 0)
			v[e] /= scale;
		/* Small throughputs (fillsync) keep a decimal. */
		print_cell(v[e], v[e] >= 0 && v[e] < 100 && !lower_better ?
			   " %.1f |" : fmt);
		if (!strcmp(engines[e]->name, "libkv")) {
			kv = e;
			continue;
		}
		if (v[e] >= 0 && (best < 0 || (lower_better ? v[e] < v[best] :
						 v[e] > v[best])))
			best = e;
	}
	if (best < 0) {
		printf(" n/a | n/a |\n");
		return;
	}
	printf(" %s |", engines[best]->name);
	if (kv < 0 || v[kv] <= 0)
		printf(" n/a |\n");
	else
		printf(" %.3gx |\n", lower_better ? v[best] / v[kv] :
		       v[kv] / v[best]);
}

static void report(void)
{
	printf("\n### Throughput, k ops/s (median of %d)\n\n", runs);
	header("workload", " best peer | libkv / best |");
	for (int w = 0; w < W_COUNT; w++)
		if (want[w] && w != W_REOPEN)
			row(wl_name[w], g_ops, w, 1e3, " %.0f |", 0);
	printf("\n### Latency p50 / p99, us (median of %d)\n\n", runs);
	header("workload", "");
	for (int w = 0; w < W_COUNT; w++) {
		if (!want[w] || w == W_REOPEN)
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
	printf("\n### Space and open (median of %d)\n\n", runs);
	header("figure", " best peer | best / libkv |");
	if (needs_data()) {
		row("disk after fillrandom, MB", g_disk, 0, 1e6, " %.1f |", 1);
		row("RssAnon growth over fillrandom, B/key", g_anon, 0, 1,
		    " %.1f |", 1);
		row("peak RSS of the chain, MB", g_rss, 0, 1, " %.0f |", 1);
	}
	if (want[W_REOPEN])
		row("reopen after clean close, ms", g_ms, W_REOPEN, 1,
		    " %.1f |", 1);
}

/* ---- command line ---- */

static _Noreturn void usage(void)
{
	fprintf(stderr, "usage: kvbench [--num N] [--runs R] [--reads N] "
		"[--sync-num N] [--threads T]\n"
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
		else if (!strcmp(a, "--sync-num"))
			sync_num = num_arg(v);
		else if (!strcmp(a, "--runs"))
			runs = (int)num_arg(v);
		else if (!strcmp(a, "--threads"))
			threads = (int)num_arg(v);
		else if (!strcmp(a, "--engines"))
			eng = argv[i];
		else if (!strcmp(a, "--workloads"))
			pick_workloads(argv[i]);
		else if (!strcmp(a, "--dir"))
			base_dir = v;
		else
			usage();
	}
	if (runs > MAX_RUNS || threads > 64 || num > UINT32_MAX)
		usage();
	if (!reads)
		reads = num;
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
	for (int w = 0; w < W_COUNT; w++)
		if (cr->w[w].done && w != W_REOPEN)
			fprintf(stderr, " %s %.0fk", wl_name[w],
				cr->w[w].ops_s / 1e3);
		else if (cr->w[w].done)
			fprintf(stderr, " reopen %.1fms", cr->w[w].ms);
	fprintf(stderr, "\n");
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
	printf("kvbench: num %llu, reads %llu, fillsync %llu, threads %d, "
	       "runs %d, keys %d B, values %d B (half compressible), dir %s\n",
	       (unsigned long long)num, (unsigned long long)reads,
	       (unsigned long long)sync_num, threads, runs, KEY_LEN, VAL_LEN,
	       base_dir);
	for (int e = 0; e < n_engines; e++)
		printf("  %-8s %-8s %s\n", engines[e]->name,
		       engines[e]->version ? engines[e]->version() : "",
		       engines[e]->durability);
	for (int r = 0; r < runs; r++)
		for (int e = 0; e < n_engines; e++) {
			struct chain_res *cr = &results[e][r], s;

			if (needs_data() && run_child(engines[e], 0, r, cr))
				continue;
			if (want[W_FILLSYNC] && !run_child(engines[e], 1, r, &s)) {
				cr->w[W_FILLSYNC] = s.w[W_FILLSYNC];
				cr->ok = 1;
			}
			progress(r, engines[e], cr);
		}
	report();
	printf("\nkvbench: %.0f s in all\n", (double)(now_ns() - t0) / 1e9);
	if (own_dir)
		rm_rf(base_dir);
	return 0;
}
