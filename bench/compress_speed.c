/*
 * compress_speed.c - what KV_COMPRESS costs and saves: for each value size
 * and kind, puts N values into a new store with and without KV_COMPRESS
 * (compress_min 64, so that 100-byte values are compressed too), reads
 * them all back with kv_get_into, checking every byte, and prints the
 * mean time of a put and of a get and the segment bytes per value.
 * Usage: compress_speed [N] [DIR] (N defaults to 20,000, and to N / 10
 * for 64 KiB values; DIR to a new directory under /tmp, removed after).
 *
 * Kinds: "text", words from a ten-word vocabulary; "half", random bytes
 * followed by their copy (kvbench's values, db_bench's "half
 * compressible"). A store of each size, kind and mode is made fresh.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <kv.h>

#include "store_dir.h"

#define SRC_BYTES (2u << 20)

static unsigned char src[SRC_BYTES];
static unsigned char got[1u << 17];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void make_src(int half)
{
	static const char *words[] = { "the ", "store ", "key ", "value ",
				       "segment ", "record ", "hash ",
				       "index ", "compaction ", "log " };
	uint64_t s = 301;
	size_t p = 0;

	if (half) {
		/* 256-byte blocks: 128 random bytes, then the same again. */
		for (; p < SRC_BYTES; p += 256) {
			for (size_t j = 0; j < 128; j++)
				src[p + j] = (unsigned char)splitmix(&s);
			memcpy(src + p + 128, src + p, 128);
		}
		return;
	}
	while (p < SRC_BYTES) {
		const char *w = words[splitmix(&s) % 10];
		size_t n = strlen(w);

		if (n > SRC_BYTES - p)
			n = SRC_BYTES - p;
		memcpy(src + p, w, n);
		p += n;
	}
}

/* Value i: a window of src, so values differ but share the kind. */
static const unsigned char *value(unsigned i, size_t vlen)
{
	return src + ((size_t)i * 7919u) % (SRC_BYTES - vlen);
}

/* One store: n values of vlen bytes; 0 when every value read back. */
static int one(const char *dir, size_t vlen, unsigned n, int compress,
	       double *put_us, double *get_us, double *bytes)
{
	kv_options o;
	kv_t *db;
	struct kv_stats st;
	uint64_t t;

	kv_options_init(&o);
	o.flags = KV_CREATE | KV_EXCL | (compress ? KV_COMPRESS : 0);
	o.compress_min = 64;
	if (kv_open(dir, &o, &db)) {
		fprintf(stderr, "open %s: %s\n", dir, kv_errmsg());
		return 1;
	}
	t = now_ns();
	for (unsigned i = 0; i < n; i++) {
		char k[17];

		snprintf(k, sizeof k, "%016u", i);
		if (kv_put(db, k, 16, value(i, vlen), vlen)) {
			fprintf(stderr, "put: %s\n", kv_errmsg());
			return 1;
		}
	}
	*put_us = (double)(now_ns() - t) / 1e3 / n;
	t = now_ns();
	for (unsigned i = 0; i < n; i++) {
		char k[17];
		size_t len;

		snprintf(k, sizeof k, "%016u", i);
		if (kv_get_into(db, k, 16, got, sizeof got, &len) ||
		    len != vlen || memcmp(got, value(i, vlen), vlen)) {
			fprintf(stderr, "get %u: wrong value\n", i);
			return 1;
		}
	}
	*get_us = (double)(now_ns() - t) / 1e3 / n;
	memset(&st, 0, sizeof st);
	st.size = sizeof st;
	kv_stats(db, &st);
	*bytes = (double)st.disk_bytes / n;
	kv_close(db);
	bench_remove_store(dir);
	return 0;
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 100, 512, 4096, 65536 };
	char tmpl[] = "/tmp/kvcompress.XXXXXX";
	unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 20000;
	const char *base = argc > 2 ? argv[2] : mkdtemp(tmpl);
	char dir[4096];

	if (!base || n == 0) {
		fprintf(stderr, "usage: compress_speed [N] [DIR]\n");
		return 2;
	}
	printf("| kind | value bytes | put us (off / on) | get us (off / on) "
	       "| bytes per value (off / on) |\n|---|---:|---:|---:|---:|\n");
	for (int half = 0; half < 2; half++) {
		make_src(half);
		for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
			unsigned cnt = sizes[i] > 8192 ? n / 10 + 1 : n;
			double p[2], g[2], b[2];

			for (int c = 0; c < 2; c++) {
				snprintf(dir, sizeof dir, "%s/s%d", base, c);
				if (one(dir, sizes[i], cnt, c, &p[c], &g[c],
					&b[c]))
					return 1;
			}
			printf("| %s | %zu | %.2f / %.2f | %.2f / %.2f | "
			       "%.0f / %.0f |\n", half ? "half" : "text",
			       sizes[i], p[0], p[1], g[0], g[1], b[0], b[1]);
		}
	}
	if (argc <= 2 && rmdir(base))
		fprintf(stderr, "could not remove %s\n", base);
	return 0;
}
