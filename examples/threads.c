/*
 * threads.c - one kv_t shared by 4 reader threads and 1 writer thread.
 * The writer rewrites 64 keys over and over (deleting one per round); the
 * readers check that every value they read is whole and well-formed, and
 * never older than one they read before. Small segments make rollover and
 * background compaction happen while they run.
 * Usage: threads DIR (DIR is created).
 * Build against an installed libkv:
 *   cc threads.c $(pkg-config --cflags --libs libkv) -pthread
 *
 * Thread model (kv(3)): a kv_t needs no locking by the caller. Reads run in
 * parallel and hold an internal lock only for the in-memory lookup, never
 * while a writer does disk I/O; writers are serialised only for the append.
 * kv_errmsg() is per thread. Only kv_close() must not race with other calls
 * on the handle, so it comes after every thread is joined.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kv.h>

#define NKEYS    64
#define ROUNDS   100   /* writer: ROUNDS x (1 delete + NKEYS puts) */
#define NREADERS 4
#define READS    20000 /* per reader */
#define FILL     24

static kv_t *db;
static atomic_int failed;

static void check(int rc, const char *what)
{
	if (rc != KV_OK) {
		fprintf(stderr, "threads: %s: %s (%s)\n", what,
			kv_strerror(rc), kv_errmsg());
		exit(1);
	}
}

static void die(const char *what)
{
	fprintf(stderr, "threads: %s\n", what);
	exit(1);
}

/* Value of key k at version v: "key:07|000042|" then FILL copies of one
 * letter that depends on v, so a torn or mixed-up value cannot pass. */
static size_t make_value(char *buf, unsigned k, unsigned v)
{
	int n = snprintf(buf, 32, "key:%02u|%06u|", k, v);

	memset(buf + n, 'a' + (int)(v % 26), FILL);
	return (size_t)n + FILL;
}

/* Returns the version in val, or -1 if val is not a value of key k. */
static long parse_value(const char *val, size_t vlen, unsigned k)
{
	char want[64];
	unsigned v = 0;

	if (vlen != 14 + FILL)
		return -1;
	for (int i = 7; i < 13; i++)
		v = v * 10 + (unsigned)(val[i] - '0');
	return make_value(want, k, v) == vlen && memcmp(want, val, vlen) == 0
	       ? (long)v : -1;
}

struct reader {
	int id;
	unsigned found, missing;
	long last[NKEYS]; /* newest version seen of each key */
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	char key[8], buf[64];
	size_t vlen;

	for (unsigned i = 0; i < READS && !atomic_load(&failed); i++) {
		unsigned k = (i * 7 + (unsigned)r->id * 13) % NKEYS;
		int rc;
		long v;

		snprintf(key, sizeof key, "key:%02u", k);
		rc = kv_get_into(db, key, 6, buf, sizeof buf, &vlen);
		if (rc == KV_ENOTFOUND) { /* deleted by the writer just now */
			r->missing++;
			continue;
		}
		v = rc == KV_OK ? parse_value(buf, vlen, k) : -1;
		if (v < r->last[k]) { /* an error, or a bad or older value */
			fprintf(stderr, "threads: reader %d: %s: %s\n", r->id,
				key, rc == KV_OK ? "bad value" : kv_errmsg());
			atomic_store(&failed, 1);
			break;
		}
		r->last[k] = v;
		r->found++;
	}
	return NULL;
}

static void *writer_main(void *arg)
{
	char key[8], val[64];

	(void)arg;
	for (unsigned v = 1; v <= ROUNDS && !atomic_load(&failed); v++) {
		snprintf(key, sizeof key, "key:%02u", v % NKEYS);
		check(kv_delete(db, key, 6), "kv_delete");
		for (unsigned k = 0; k < NKEYS; k++) {
			snprintf(key, sizeof key, "key:%02u", k);
			check(kv_put(db, key, 6, val, make_value(val, k, v)),
			      "kv_put");
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	kv_options opts;
	pthread_t w, rt[NREADERS];
	static struct reader rd[NREADERS];
	struct kv_stats st = { .size = sizeof st };
	struct timespec t0, t1;
	char key[8], val[64];
	size_t vlen;
	unsigned found = 0, missing = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	kv_options_init(&opts);
	opts.flags = KV_CREATE;
	opts.max_file_size = 64 * 1024; /* roll over every ~860 writes */
	check(kv_open(argv[1], &opts, &db), "kv_open");
	for (unsigned k = 0; k < NKEYS; k++) {
		snprintf(key, sizeof key, "key:%02u", k);
		check(kv_put(db, key, 6, val, make_value(val, k, 0)), "kv_put");
	}
	printf("opened %s, %d keys at version 0\n", argv[1], NKEYS);

	timespec_get(&t0, TIME_UTC);
	if (pthread_create(&w, NULL, writer_main, NULL) != 0)
		die("pthread_create failed");
	for (int i = 0; i < NREADERS; i++) {
		rd[i].id = i;
		if (pthread_create(&rt[i], NULL, reader_main, &rd[i]) != 0)
			die("pthread_create failed");
	}
	pthread_join(w, NULL);
	for (int i = 0; i < NREADERS; i++) {
		pthread_join(rt[i], NULL);
		printf("reader %d: %u values checked, %u not found (deleted)\n",
		       i, rd[i].found, rd[i].missing);
		found += rd[i].found;
		missing += rd[i].missing;
	}
	timespec_get(&t1, TIME_UTC);
	if (atomic_load(&failed))
		return 1;
	printf("writer: %d puts, %d deletes; %u reads in all, %.0f ms\n",
	       ROUNDS * NKEYS, ROUNDS, found + missing,
	       (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);

	/* Final state: every key at the writer's last version. */
	for (unsigned k = 0; k < NKEYS; k++) {
		snprintf(key, sizeof key, "key:%02u", k);
		check(kv_get_into(db, key, 6, val, sizeof val, &vlen), key);
		if (parse_value(val, vlen, k) != ROUNDS)
			die("a key not at the writer's last version");
	}
	check(kv_stats(db, &st), "kv_stats");
	printf("final: %d keys at version %d, %llu live; %llu segments, "
	       "%llu compactions\n", NKEYS, ROUNDS,
	       (unsigned long long)st.live_keys,
	       (unsigned long long)st.segments,
	       (unsigned long long)st.compactions);
	if (st.live_keys != NKEYS)
		die("live_keys to be the number of keys");
	check(kv_close(db), "kv_close");
	return 0;
}
