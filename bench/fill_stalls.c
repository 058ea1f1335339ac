/*
 * fill_stalls.c - where a fill's time goes: fills N new keys (16-byte
 * keys, 100-byte values, as kvbench's fillrandom) into a new store with
 * the default options, times every put, and prints the time spent in
 * puts of each latency band and the puts that took 1 ms or more, by
 * index. Usage: fill_stalls [--expected] [N] [DIR] (N defaults to
 * 1,000,000; DIR to a new directory under /tmp, removed at the end;
 * --expected opens with kv_options.expected_keys = N).
 *
 * The slow puts are the ones that grow something: the keydir's table
 * (at 80% load: 52,428, 104,857, ... 838,860 keys; none with
 * --expected), its 2 MiB entry
 * chunks (every 65,536 keys), a new 64 MiB segment (every 453,438 puts
 * of 148 bytes), an 8 MiB write-back step (every 56,680 puts). How long
 * they take depends on whether the memory they touch first was handed
 * back to the VM's host (NOTES.md, ninth session).
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

#define SLOW_NS 1000000u /* puts listed one by one */
#define MAX_SLOW 64

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64: the same keys every run. */
static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void die(int rc, const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", what, kv_strerror(rc), kv_errmsg());
	exit(1);
}

static const uint64_t band_top[] = { 500, 1000, 5000, 20000, 100000,
				     1000000, 10000000, UINT64_MAX };
static const char *const band_name[] = { "< 0.5 us", "< 1 us", "< 5 us",
					 "< 20 us", "< 100 us", "< 1 ms",
					 "< 10 ms", ">= 10 ms" };
#define NBANDS (sizeof band_top / sizeof band_top[0])

static void report(const uint64_t *lat, uint64_t n, uint64_t total)
{
	uint64_t ns[NBANDS] = { 0 }, ops[NBANDS] = { 0 };
	unsigned listed = 0;

	for (uint64_t i = 0; i < n; i++) {
		size_t b = 0;

		while (lat[i] >= band_top[b])
			b++;
		ns[b] += lat[i];
		ops[b]++;
	}
	printf("%llu puts in %.1f ms: %.0f k/s\n", (unsigned long long)n,
	       (double)total / 1e6, (double)n / ((double)total / 1e9) / 1e3);
	for (size_t b = 0; b < NBANDS; b++)
		printf("  %-8s %9llu puts %8.1f ms\n", band_name[b],
		       (unsigned long long)ops[b], (double)ns[b] / 1e6);
	for (uint64_t i = 0; i < n && listed < MAX_SLOW; i++)
		if (lat[i] >= SLOW_NS) {
			printf("  put %llu: %.1f ms\n", (unsigned long long)i,
			       (double)lat[i] / 1e6);
			listed++;
		}
}

int main(int argc, char **argv)
{
	int expected = argc > 1 && strcmp(argv[1], "--expected") == 0;

	argc -= expected;
	argv += expected;
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
	char tmpl[] = "/tmp/fill_stalls.XXXXXX";
	uint64_t seed = 88172645463325252u;
	char key[16], val[100];
	kv_options o;
	kv_t *db;
	int rc;

	if (n == 0) {
		fprintf(stderr, "usage: fill_stalls [--expected] [N > 0] "
			"[DIR]\n");
		return 2;
	}
	uint64_t *lat = calloc(n, sizeof *lat);
	const char *dir = argc > 2 ? argv[2] : mkdtemp(tmpl);
	if (!dir || !lat) {
		perror("fill_stalls");
		return 1;
	}
	kv_options_init(&o);
	o.flags |= KV_CREATE;
	if (expected)
		o.expected_keys = n;
	if ((rc = kv_open(dir, &o, &db)) != 0)
		die(rc, "kv_open");
	/* Half the value compressible, half not, as kvbench's. */
	for (size_t i = 0; i < sizeof val; i++)
		val[i] = i < sizeof val / 2 ? (char)('a' + i % 26)
					    : (char)next_rand(&seed);
	uint64_t start = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		uint64_t k = next_rand(&seed);

		memcpy(key, &k, 8);
		memcpy(key + 8, &i, 8);
		uint64_t t = now_ns();
		if ((rc = kv_put(db, key, sizeof key, val, sizeof val)) != 0)
			die(rc, "kv_put");
		lat[i] = now_ns() - t;
	}
	report(lat, n, now_ns() - start);
	if ((rc = kv_close(db)) != 0)
		die(rc, "kv_close");
	free(lat);
	if (argc <= 2)
		bench_remove_store(dir);
	return 0;
}
