/*
 * reopen_compact.c - the figures of the compaction issue, on one store:
 * open time for N keys from a scan of every segment, with hints for sealed
 * log segments, and from compaction outputs' hint files,
 * and compaction throughput. Usage: reopen_compact [N] [DIR]
 * (N defaults to 1,000,000; DIR to a new directory under /tmp).
 * Keys 16 bytes, values 100 bytes; half the keys overwritten once so that
 * compaction has dead bytes to reclaim. Each open is timed 3 times and
 * the median printed. The peer-engine benchmark is bench/'s own issue.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>

#include <kv.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(int rc, const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", what, kv_strerror(rc), kv_errmsg());
	exit(1);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Deletes every hint file in dir, so the next open scans every segment
 * (kv_close writes hints for sealed segments again). */
static void drop_hints(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];

	while (d && (e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		if (n > 5 && !strcmp(e->d_name + n - 5, ".hint")) {
			snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
			unlink(path);
		}
	}
	if (d)
		closedir(d);
}

/* Median of 3 opens (and closes) of dir, in milliseconds; with no_hints,
 * every hint file is deleted before each open. */
static double open_ms(const char *dir, const kv_options *o,
		      uint64_t *hinted, int no_hints)
{
	double t[3];

	for (int i = 0; i < 3; i++) {
		kv_t *db;
		if (no_hints)
			drop_hints(dir);
		struct kv_stats st = { .size = sizeof st };
		double t0 = now_s();
		int rc = kv_open(dir, o, &db);
		if (rc)
			die(rc, "open");
		t[i] = (now_s() - t0) * 1000;
		kv_stats(db, &st);
		*hinted = st.recovered_hint_segments;
		kv_close(db);
	}
	qsort(t, 3, sizeof t[0], cmp_d);
	return t[1];
}

static void fill(kv_t *db, long n, int pass)
{
	char key[32], val[100];

	memset(val, 'v', sizeof val);
	for (long i = 0; i < n; i++) {
		if (pass && i % 2)
			continue;
		snprintf(key, sizeof key, "key%013ld", i);
		val[0] = (char)('a' + pass);
		int rc = kv_put(db, key, 16, val, sizeof val);
		if (rc)
			die(rc, "put");
	}
}

static int count_pair(void *ctx, const void *k, size_t kl, const void *v,
		      size_t vl)
{
	(void)k; (void)kl; (void)v; (void)vl;
	++*(int *)ctx;
	return 0;
}

/* kv_scan of 100 keys from random starts: the first scan builds the
 * ordered index (timed apart), then the median of 1,001 scans. */
static void scan_figures(const char *dir, const kv_options *o, long n)
{
	static double t[1001];
	char key[32];
	kv_t *db;
	int got = 0, rc = kv_open(dir, o, &db);

	if (rc)
		die(rc, "open");
	double t0 = now_s();
	if ((rc = kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 1, count_pair, &got)))
		die(rc, "scan");
	printf("first kv_scan (builds the ordered index of %ld keys): %.0f ms\n",
	       n, (now_s() - t0) * 1000);
	srand(1);
	for (int i = 0; i < 1001; i++) {
		snprintf(key, sizeof key, "key%013ld", (long)rand() % n);
		got = 0;
		t0 = now_s();
		rc = kv_scan(db, key, 16, NULL, 0, NULL, 0, 100, count_pair, &got);
		t[i] = (now_s() - t0) * 1e6;
		if (rc || got == 0)
			die(rc, "scan");
	}
	qsort(t, 1001, sizeof t[0], cmp_d);
	printf("kv_scan of 100 keys: median %.1f us, 99th percentile %.1f us\n",
	       t[500], t[990]);
	kv_close(db);
}

/* Deletes of keys j * 7919 % n for j in [from, to) (distinct: 7919 is a
 * prime that divides no n used here); their rate in k/s. */
static double delete_rate(kv_t *db, long n, long from, long to)
{
	char key[32];
	double t0 = now_s();

	for (long j = from; j < to; j++) {
		snprintf(key, sizeof key, "key%013ld", j * 7919 % n);
		int rc = kv_delete(db, key, 16);
		if (rc)
			die(rc, "delete");
	}
	return (double)(to - from) / (now_s() - t0) / 1e3;
}

/* kv_delete without the ordered index and then with it (built by a
 * kv_scan), a tenth of the keys each: with it, each delete also removes
 * its key from the tree. Last: the store loses those keys. */
static void delete_figures(const char *dir, const kv_options *o, long n)
{
	kv_t *db;
	int got = 0, rc = kv_open(dir, o, &db);

	if (rc)
		die(rc, "open");
	double plain = delete_rate(db, n, 0, n / 10);
	if ((rc = kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 1, count_pair, &got)))
		die(rc, "scan");
	double ordered = delete_rate(db, n, n / 10, n / 5);
	printf("kv_delete of %ld keys: %.0f k/s; with the ordered index built: "
	       "%.0f k/s\n", n / 10, plain, ordered);
	kv_close(db);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	char tmpl[] = "/tmp/kvbench.XXXXXX";
	const char *dir = argc > 2 ? argv[2] : mkdtemp(tmpl);
	kv_options o;
	kv_t *db;
	kv_compact_stats cs;
	uint64_t hinted;
	int rc;

	kv_options_init(&o);
	o.flags = KV_CREATE | KV_NO_AUTO_COMPACT;
	o.max_file_size = 64 << 20;
	if ((rc = kv_open(dir, &o, &db)) != 0)
		die(rc, "create");
	fill(db, n, 0);
	fill(db, n, 1);
	kv_close(db);
	o.flags = KV_NO_AUTO_COMPACT;
	printf("keys %ld, values 100 B, segments of 64 MiB, dir %s\n", n, dir);
	printf("open, scanning every segment (hint files deleted): %.1f ms "
	       "(median of 3)\n", open_ms(dir, &o, &hinted, 1));
	double ms = open_ms(dir, &o, &hinted, 0);
	printf("open, hints for the sealed log segments (%llu), tail scanned: "
	       "%.1f ms (median of 3)\n", (unsigned long long)hinted, ms);

	if ((rc = kv_open(dir, &o, &db)) != 0)
		die(rc, "open");
	double t0 = now_s();
	if ((rc = kv_compact(db, &cs)) != 0)
		die(rc, "compact");
	double dt = now_s() - t0;
	double rd = (double)cs.bytes_read / 1e6, wr = (double)cs.bytes_written / 1e6;
	printf("compaction: %llu segments -> %llu, read %.1f MB, wrote %.1f MB"
	       " in %.2f s: %.0f MB/s read, %.0f MB/s written\n",
	       (unsigned long long)cs.segments_in,
	       (unsigned long long)cs.segments_out, rd, wr, dt, rd / dt,
	       wr / dt);
	kv_close(db);
	ms = open_ms(dir, &o, &hinted, 0);
	printf("open, from hint files (%llu segments hinted): %.1f ms "
	       "(median of 3)\n", (unsigned long long)hinted, ms);
	scan_figures(dir, &o, n);
	delete_figures(dir, &o, n);
	return 0;
}
