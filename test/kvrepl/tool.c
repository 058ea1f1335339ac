/*
 * tool.c - helpers for the kvrepl tests (run.py) and bench/repl_bench.sh.
 *
 *   write DIR --seed S --ops N [--keys K] [--rate OPS/S] [--segment-size B]
 *         [--compact] [--trace FILE]
 *       The writer: applies ops 0..N-1 of the deterministic workload of
 *       seed S, resuming after the op recorded in the store (key "~op"),
 *       so a writer killed with -9 and started again continues the same
 *       history. Each op is one atomic batch: its mutation (a put, a
 *       delete, or three puts) and "~op" = its number. --compact runs
 *       kv_compact at the end. --trace appends "time_ns lsn" per op.
 *   replay DIR --seed S --upto I
 *       Applies ops 0..I of the same workload to a new store in DIR and
 *       prints its digest: the content the writer's store had right after
 *       op I was acknowledged.
 *   digest DIR
 *       Read-only open; prints "digest=HEX keys=N position=P lsn=L op=I"
 *       (lsn: the newest record's; op: the last op applied, -1 none).
 *   canread DIR POS
 *       Exit 0 if the log still holds every record after POS
 *       (kv_repl_read succeeds), 3 if it answers KV_ESNAPSHOT.
 *   latency WRITER_TRACE FOLLOWER_TRACE
 *       For each write, the time until the follower's position reached
 *       its LSN: prints count, p50, p99 and max in microseconds.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <kv.h>

static void die(const char *what, int rc)
{
	fprintf(stderr, "kvrepl_tool: %s: %s: %s\n", what, kv_strerror(rc),
		kv_errmsg());
	exit(1);
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the workload ---- */

struct work {
	uint64_t seed, ops, keys;
};

static void add_put(kv_batch *b, uint64_t r, const struct work *w)
{
	char key[32], val[256];
	size_t vlen = 16 + (size_t)((r >> 24) % 200);
	uint64_t s = r;

	snprintf(key, sizeof key, "key%06" PRIu64, (r >> 8) % w->keys);
	for (size_t i = 0; i < vlen; i++) {
		if (i % 8 == 0)
			s = mix(s);
		val[i] = (char)('a' + (s >> (i % 8 * 8)) % 26);
	}
	if (kv_batch_put(b, key, strlen(key), val, vlen) != 0)
		die("batch put", -2);
}

/* Op i as a batch: 70% a put, 20% a delete, 10% three puts; then ~op. */
static void make_op(kv_batch *b, uint64_t i, const struct work *w)
{
	uint64_t r = mix(w->seed * 0x100000001b3ull + i);
	char key[32], num[32];

	kv_batch_clear(b);
	if (r % 10 < 7) {
		add_put(b, r, w);
	} else if (r % 10 < 9) {
		snprintf(key, sizeof key, "key%06" PRIu64, (r >> 8) % w->keys);
		kv_batch_delete(b, key, strlen(key));
	} else {
		for (int k = 0; k < 3; k++)
			add_put(b, mix(r + (uint64_t)k), w);
	}
	snprintf(num, sizeof num, "%" PRIu64, i);
	kv_batch_put(b, "~op", 3, num, strlen(num));
}

/* The last op applied to db (from "~op"), or -1 for none. */
static int64_t last_op(kv_t *db)
{
	char buf[32];
	size_t n = sizeof buf - 1;
	int rc = kv_get_into(db, "~op", 3, buf, sizeof buf - 1, &n);

	if (rc == KV_ENOTFOUND)
		return -1;
	if (rc != 0)
		die("get ~op", rc);
	buf[n] = '\0';
	return strtoll(buf, NULL, 10);
}

static void pace(uint64_t start_ns, uint64_t done, uint64_t rate)
{
	if (!rate)
		return;
	uint64_t due = start_ns + done * 1000000000ull / rate;
	struct timespec ts = { (time_t)(due / 1000000000ull),
			       (long)(due % 1000000000ull) };
	clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL);
}

static int cmd_write(const char *dir, const struct work *w, uint64_t rate,
		     uint64_t segsize, int compact, const char *trace)
{
	kv_options o;
	kv_t *db;
	kv_batch *b;
	FILE *tf = NULL;
	int rc;

	kv_options_init(&o);
	o.flags = KV_CREATE | KV_NO_AUTO_COMPACT;
	o.max_file_size = segsize;
	if ((rc = kv_open(dir, &o, &db)) != 0)
		die("open", rc);
	if (kv_batch_new(&b) != 0)
		die("batch", KV_ENOMEM);
	if (trace && !(tf = fopen(trace, "a")))
		die(trace, KV_EIO);
	uint64_t first = (uint64_t)(last_op(db) + 1), t0 = realtime_ns();
	for (uint64_t i = first; i < w->ops; i++) {
		pace(t0, i - first, rate);
		make_op(b, i, w);
		if ((rc = kv_write(db, b)) != 0)
			die("write", rc);
		if (tf) {
			uint64_t pos;
			kv_repl_position(db, &pos);
			fprintf(tf, "%" PRIu64 " %" PRIu64 "\n", realtime_ns(),
				pos);
		}
	}
	if (compact) {
		kv_compact_stats cs;
		if ((rc = kv_compact(db, &cs)) != 0)
			die("compact", rc);
		printf("compacted segments_in=%" PRIu64 " segments_out=%" PRIu64
		       "\n", cs.segments_in, cs.segments_out);
	}
	uint64_t pos;
	kv_repl_position(db, &pos);
	printf("op=%" PRId64 " position=%" PRIu64 "\n", last_op(db), pos);
	kv_batch_free(b);
	if (tf)
		fclose(tf);
	if ((rc = kv_close(db)) != 0)
		die("close", rc);
	return 0;
}

/* ---- digests ---- */

static void print_digest(kv_t *db)
{
	struct kv_digest d;
	struct kv_stats st = { .size = sizeof st };
	uint64_t pos = 0;
	int rc = kv_digest(db, &d);

	if (rc == 0)
		rc = kv_stats(db, &st);
	if (rc != 0)
		die("digest", rc);
	kv_repl_position(db, &pos);
	printf("digest=%016" PRIx64 "%016" PRIx64 " keys=%" PRIu64
	       " position=%" PRIu64 " lsn=%" PRIu64 " op=%" PRId64 "\n", d.hi,
	       d.lo, d.keys, pos, st.last_lsn, last_op(db));
}

/* Read-only open of a store another process may be compacting: an open
 * that lists a segment just deleted fails, and is tried again. */
static kv_t *open_ro(const char *dir)
{
	kv_options o;
	kv_t *db = NULL;
	int rc = KV_EIO;

	kv_options_init(&o);
	o.flags = KV_RDONLY;
	for (int i = 0; i < 100; i++) {
		if ((rc = kv_open(dir, &o, &db)) == 0)
			return db;
		if (rc != KV_EIO && rc != KV_ECORRUPT)
			break;
		usleep(10000);
	}
	die("open", rc);
	return NULL;
}

static int cmd_replay(const char *dir, const struct work *w, int64_t upto)
{
	kv_options o;
	kv_t *db;
	kv_batch *b;
	int rc;

	kv_options_init(&o);
	o.flags = KV_CREATE | KV_EXCL | KV_NO_AUTO_COMPACT;
	o.sync_mode = KV_SYNC_NONE;
	if ((rc = kv_open(dir, &o, &db)) != 0)
		die("open", rc);
	if (kv_batch_new(&b) != 0)
		die("batch", KV_ENOMEM);
	for (int64_t i = 0; i <= upto; i++) {
		make_op(b, (uint64_t)i, w);
		if ((rc = kv_write(db, b)) != 0)
			die("write", rc);
	}
	print_digest(db);
	kv_batch_free(b);
	return kv_close(db) == 0 ? 0 : 1;
}

static int count_frame(void *ctx, uint64_t first, uint64_t last,
		       const void *bytes, size_t len)
{
	(void)first, (void)last, (void)bytes, (void)len;
	++*(uint64_t *)ctx;
	return 0;
}

static int cmd_canread(const char *dir, uint64_t from)
{
	kv_t *db = open_ro(dir);
	uint64_t frames = 0;
	int rc = kv_repl_read(db, from, 1 << 20, count_frame, &frames);

	kv_close(db);
	if (rc == KV_ESNAPSHOT)
		return 3;
	if (rc != 0)
		die("repl_read", rc);
	printf("frames=%" PRIu64 "\n", frames);
	return 0;
}

/* ---- latency from two traces ---- */

struct point {
	uint64_t t, pos;
};

static struct point *load(const char *path, size_t *n)
{
	FILE *f = fopen(path, "r");
	struct point *v = NULL, p;
	size_t cap = 0;

	*n = 0;
	if (!f)
		die(path, KV_EIO);
	while (fscanf(f, "%" SCNu64 " %" SCNu64, &p.t, &p.pos) == 2) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 4096;
			v = realloc(v, cap * sizeof *v);
		}
		v[(*n)++] = p;
	}
	fclose(f);
	return v;
}

static int by_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static int cmd_latency(const char *wpath, const char *fpath)
{
	size_t nw, nf, j = 0, k = 0;
	struct point *w = load(wpath, &nw), *f = load(fpath, &nf);
	uint64_t *lat = calloc(nw ? nw : 1, sizeof *lat);

	for (size_t i = 0; i < nw; i++) {
		while (j < nf && f[j].pos < w[i].pos)
			j++;
		if (j == nf)
			break;
		lat[k++] = f[j].t > w[i].t ? (f[j].t - w[i].t) / 1000 : 0;
	}
	qsort(lat, k, sizeof *lat, by_u64);
	if (!k) {
		printf("count=0\n");
		return 1;
	}
	printf("count=%zu p50_us=%" PRIu64 " p99_us=%" PRIu64 " max_us=%"
	       PRIu64 "\n", k, lat[k / 2], lat[k * 99 / 100], lat[k - 1]);
	return 0;
}

/* ---- command line ---- */

static uint64_t arg_num(int argc, char **argv, const char *name,
			uint64_t dflt)
{
	for (int i = 0; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return strtoull(argv[i + 1], NULL, 10);
	return dflt;
}

static const char *arg_str(int argc, char **argv, const char *name)
{
	for (int i = 0; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return NULL;
}

static int has_flag(int argc, char **argv, const char *name)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: kvrepl_tool "
			"write|replay|digest|canread|"
			"latency ARGS (see tool.c)\n");
		return 2;
	}
	struct work w = {
		.seed = arg_num(argc, argv, "--seed", 1),
		.ops = arg_num(argc, argv, "--ops", 1000),
		.keys = arg_num(argc, argv, "--keys", 2000),
	};
	const char *cmd = argv[1], *dir = argv[2];

	if (strcmp(cmd, "write") == 0)
		return cmd_write(dir, &w, arg_num(argc, argv, "--rate", 0),
				 arg_num(argc, argv, "--segment-size", 0),
				 has_flag(argc, argv, "--compact"),
				 arg_str(argc, argv, "--trace"));
	if (strcmp(cmd, "replay") == 0)
		return cmd_replay(dir, &w,
				  (int64_t)arg_num(argc, argv, "--upto", 0));
	if (strcmp(cmd, "digest") == 0) {
		kv_t *db = open_ro(dir);
		print_digest(db);
		return kv_close(db) == 0 ? 0 : 1;
	}
	if (strcmp(cmd, "canread") == 0 && argc >= 4)
		return cmd_canread(dir, strtoull(argv[3], NULL, 10));
	if (strcmp(cmd, "latency") == 0 && argc >= 4)
		return cmd_latency(argv[2], argv[3]);
	fprintf(stderr, "kvrepl_tool: unknown command %s\n", cmd);
	return 2;
}
