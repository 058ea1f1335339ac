/*
 * test_killpoints.c - kill points (RELIABILITY-PLAN T5; RocksDB's whitebox
 * crash test).
 *
 * The library names each step of its durable sequences with
 * KV__KILLPOINT("..."): rollover and seal, segment creation, hint and
 * obsolete-list writes, every step of a compaction, and what recovery does
 * to finish an interrupted compaction or cut a torn tail. A forked child
 * runs a fixed workload under KV_SYNC_ALWAYS (puts, deletes, TTL puts,
 * batches, rollovers of 4 KiB segments, compactions, and reopens that have
 * something to recover), reports each operation before it starts and once
 * it is acknowledged, and dies by SIGKILL at the nth hit of one chosen
 * point. The parent then opens the store strictly, runs kv_verify, and
 * checks every key: the last acknowledged version, or all or none of the
 * batch that was in flight; no deleted key back, no value from nowhere;
 * a second reopen sees the same.
 *
 * 1. A dry run counts the hits of every point and fails if a point of the
 *    table below is never reached, or an unknown one is (a point renamed,
 *    removed or added shows up here).
 * 2. Sweep: every point at its 1st to 5th hit, each on a fresh store.
 * 3. Random: the least-killed point at a random hit, with a random
 *    workload, in chains of 4 on one store: the parent checks a copy, so
 *    the next child's open recovers the crash itself, and may be killed
 *    doing it. KV_KILLPT_ROUNDS cases (default 60; `make torture` more),
 *    KV_KILLPT_SEED, KV_KILLPT_VERBOSE=1 prints hits and kills per point.
 *
 * A process kill leaves the page cache intact, so fsync does not matter
 * here (T2 covers power loss): the child makes it a no-op, for speed.
 *
 * How the crash states are made to recover: before each reopen a
 * grandchild either runs a compaction and dies at a step of it (leaving an
 * obsolete list, half-unlinked inputs or temporary files), then garbage is
 * appended to the log's tail (a torn write), or it dies halfway through
 * writing a batch. The grandchild's own hits are not counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"
#include "testutil.h"

/* Every kill point the workload must reach. */
static const char *const points[] = {
	"roll.begin", "roll.sealed", "roll.created", "roll.done",
	"seg.tmp_created", "seg.header_written", "seg.tmp_synced",
	"seg.renamed", "seg.dir_synced", "seg.hint_unlinked", "seg.truncated",
	"compact.copied", "compact.out_tmp_created",
	"compact.out_header_written", "compact.out_tmp_synced",
	"compact.out_renamed", "file.tmp_synced", "file.renamed",
	"compact.hint_written", "compact.outputs_durable",
	"compact.outputs_listed", "compact.obs_durable",
	"compact.switch_step", "compact.inputs_dropped",
	"compact.input_unlinked", "compact.inputs_gone", "compact.obs_removed",
	"recover.tmp_removed", "recover.obs_read",
	"recover.obs_input_unlinked", "recover.obs_inputs_gone",
	"recover.obs_removed", "recover.tail_found", "recover.tail_cut",
};
#define NPOINTS (sizeof points / sizeof points[0])

#define NKEYS 64
#define MAXB 6                 /* keys in one batch */
#define NTORN 3                /* keys of the batch a grandchild tears */
#define CYCLES 10              /* reopens with something to recover */
#define OPS 60                 /* ops per cycle before the compaction */
#define SWEEP_N 5
#define CHAIN 4                /* random cases on one store */
#define TARGET_KILLS 50        /* per point, in a long run */
#define SEED 20261121u

enum { M_BEGIN, M_ACK, M_KILLED, M_COUNT, M_UNKNOWN, M_ERROR };

/* One pipe message, well under PIPE_BUF, so each write is atomic. */
typedef struct msg {
	uint32_t kind;
	uint32_t n;            /* BEGIN, ACK: keys; KILLED, COUNT: point */
	uint32_t key[MAXB];
	uint64_t ver[MAXB];    /* 0: a delete */
	uint64_t hits;         /* KILLED: which hit; COUNT: how many */
	char text[120];        /* UNKNOWN: point name; ERROR: what failed */
} msg;

/* What the child is told to do. */
typedef struct plan {
	int point;             /* kill at this point (index), -1: never */
	uint64_t nth;          /* ...at its nth hit */
	uint64_t seed;         /* workload */
	uint64_t base;         /* versions start above this */
} plan;

/* ---- the child ---- */

static struct {
	int wfd;
	plan p;
	uint64_t hits[NPOINTS];
	const char *stage;     /* grandchild: die at this point... */
	uint64_t stage_nth, stage_hits; /* ...at this hit */
	const char *unknown[8];
	int nunknown;
} ch;

static void send_msg(const msg *m)
{
	if (ch.stage)
		return; /* a grandchild reports nothing */
	if (write(ch.wfd, m, sizeof *m) != (ssize_t)sizeof *m)
		_exit(90);
}

static void die(const char *what, int rc)
{
	msg m = { .kind = M_ERROR };

	snprintf(m.text, sizeof m.text, "%s: %s: %s", what, kv_strerror(rc),
		 kv_errmsg());
	send_msg(&m);
	_exit(3);
}

static int point_index(const char *name)
{
	for (size_t i = 0; i < NPOINTS; i++)
		if (strcmp(points[i], name) == 0)
			return (int)i;
	return -1;
}

static void note_unknown(const char *name)
{
	msg m = { .kind = M_UNKNOWN };

	for (int i = 0; i < ch.nunknown; i++)
		if (ch.unknown[i] == name || strcmp(ch.unknown[i], name) == 0)
			return;
	if (ch.nunknown < 8)
		ch.unknown[ch.nunknown++] = name;
	snprintf(m.text, sizeof m.text, "%s", name);
	send_msg(&m);
}

static void on_point(const char *name)
{
	if (ch.stage) {
		if (strcmp(name, ch.stage) == 0 && ++ch.stage_hits == ch.stage_nth)
			_exit(0);
		return;
	}
	int i = point_index(name);
	if (i < 0) {
		note_unknown(name);
		return;
	}
	ch.hits[i]++;
	if (i == ch.p.point && ch.hits[i] == ch.p.nth) {
		msg m = { .kind = M_KILLED, .n = (uint32_t)i, .hits = ch.hits[i] };
		send_msg(&m);
		raise(SIGKILL);
	}
}

static int no_sync(int fd)
{
	(void)fd;
	return 0;
}

/* The value of version v of key k: checkable, and of varied sizes so
 * that segments fill at different records. */
static size_t value_of(uint32_t k, uint64_t v, char *out)
{
	int n = snprintf(out, 256, "k%u:v%" PRIu64 ":", k, v);
	size_t len = 20 + (size_t)((k * 131u + v * 7u) % 180u);

	for (size_t i = (size_t)n; i < len; i++)
		out[i] = (char)('a' + (v + i) % 26);
	return len;
}

static void key_name(uint32_t k, char *out)
{
	snprintf(out, 16, "key%04u", k);
}

static kv_t *open_store(const char *dir)
{
	kv_options o;
	kv_t *db;
	int rc;

	tu_options(&o);
	o.sync_mode = KV_SYNC_ALWAYS;
	o.max_file_size = 4096;
	/* Partial compactions, so tombstones must often be kept for records
	 * in segments left out: the rule a crash would expose. */
	o.compact_max_bytes = 24 << 10;
	if ((rc = kv_open(dir, &o, &db)) != 0)
		die("kv_open", rc);
	return db;
}

static int write_batch(kv_t *db, const msg *m)
{
	char key[16], val[256];
	kv_batch *b;
	int rc = kv_batch_new(&b);

	for (uint32_t i = 0; rc == 0 && i < m->n; i++) {
		key_name(m->key[i], key);
		rc = m->ver[i] ? kv_batch_put(b, key, strlen(key), val,
					      value_of(m->key[i], m->ver[i], val))
			       : kv_batch_delete(b, key, strlen(key));
	}
	if (rc == 0)
		rc = kv_write(db, b);
	kv_batch_free(b);
	return rc;
}

static int write_one(kv_t *db, const msg *m, unsigned what)
{
	char key[16], val[256];
	size_t n;
	int rc;

	key_name(m->key[0], key);
	if (m->ver[0] == 0) {
		rc = kv_delete(db, key, strlen(key));
		return rc == KV_ENOTFOUND ? 0 : rc;
	}
	n = value_of(m->key[0], m->ver[0], val);
	if (what == 14) /* never expires under the fake clock */
		return kv_put_ttl(db, key, strlen(key), val, n, 3600000);
	return kv_put(db, key, strlen(key), val, n);
}

/* One put, delete, TTL put or batch, reported before and after; with
 * deletes set, half the single ops are deletes. */
static void one_op(kv_t *db, uint64_t *seed, uint64_t *ver, int deletes)
{
	msg m = { .kind = M_BEGIN };
	unsigned what = (unsigned)(tu_rand(seed) % 20);
	uint32_t start = (uint32_t)(tu_rand(seed) % NKEYS);
	int rc;

	/* A batch takes consecutive keys: all distinct. */
	m.n = what < 15 ? 1 : 2 + (uint32_t)(tu_rand(seed) % (MAXB - 1));
	if (deletes && m.n == 1 && what < 14)
		what = tu_rand(seed) % 2 ? 11 : 0;
	for (uint32_t i = 0; i < m.n; i++) {
		int del = m.n == 1 ? what >= 11 && what <= 13
				   : tu_rand(seed) % 4 == 0;
		m.key[i] = (start + i) % NKEYS;
		m.ver[i] = del ? 0 : ++*ver;
	}
	send_msg(&m);
	rc = m.n == 1 ? write_one(db, &m, what) : write_batch(db, &m);
	if (rc)
		die("write", rc);
	m.kind = M_ACK;
	send_msg(&m);
}

static uint64_t active_seq(kv_t *db)
{
	kv_segment_stats s[256];
	size_t n;
	int rc = kv_stats_segments(db, s, 256, &n);

	if (rc)
		die("kv_stats_segments", rc);
	for (size_t i = 0; i < n && i < 256; i++)
		if (s[i].active)
			return s[i].seq;
	die("no active segment", KV_EIO);
	return 0;
}

/* A torn write at the end of the log: bytes that are no record. */
static void tear_tail(const char *dir, uint64_t seq, uint64_t *seed)
{
	uint8_t junk[64];
	size_t n = 1 + (size_t)(tu_rand(seed) % sizeof junk);
	int fd = open(tu_seg_path(dir, seq), O_WRONLY | O_APPEND);

	for (size_t i = 0; i < n; i++)
		junk[i] = (uint8_t)(tu_rand(seed) | 1);
	if (fd < 0 || write(fd, junk, n) != (ssize_t)n)
		die("tear_tail", KV_EIO);
	close(fd);
}

/* Writes the first half of what it is given, then the process dies. */
static ssize_t torn_pwritev(int fd, const struct iovec *iov, int cnt,
			    off_t off)
{
	struct iovec v[64];
	size_t total = 0, half;
	int k = 0;

	for (int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	half = total / 2;
	for (int i = 0; i < cnt && i < 64 && half > 0; i++, k++) {
		v[k] = iov[i];
		if (v[k].iov_len > half)
			v[k].iov_len = half;
		half -= v[k].iov_len;
	}
	if (kv__io_default.pwritev(fd, v, k, off) < 0)
		_exit(4);
	_exit(0);
}

/* What a grandchild does to the closed store before the next reopen. */
static const struct { const char *point; uint64_t nth; } stages[CYCLES] = {
	{ "compact.obs_durable", 1 },
	{ NULL, 0 },                      /* a batch torn halfway */
	{ "compact.input_unlinked", 1 },
	{ "compact.copied", 1 },          /* outputs still *.tmp */
	{ "compact.inputs_gone", 1 },
	{ "file.tmp_synced", 1 },         /* the first hint as *.tmp */
	{ "compact.switch_step", 1 },
	{ "seg.hint_unlinked", 1 },       /* the first input half gone */
	{ "compact.out_tmp_synced", 2 },  /* one output in, one *.tmp */
	{ "file.tmp_synced", 2 },         /* a hint, or the list, as *.tmp */
};

static void grandchild(const char *dir, int cycle)
{
	kv_t *db;

	ch.stage = stages[cycle].point ? stages[cycle].point : "-";
	ch.stage_nth = stages[cycle].nth;
	db = open_store(dir);
	if (stages[cycle].point) {
		kv_compact(db, NULL);
	} else {
		char key[16], val[32];
		kv_batch *b;

		if (kv_batch_new(&b))
			_exit(5);
		for (uint32_t i = 0; i < NTORN; i++) {
			snprintf(key, sizeof key, "torn%u", i);
			snprintf(val, sizeof val, "never acknowledged %u", i);
			kv_batch_put(b, key, strlen(key), val, strlen(val));
		}
		kv__io.pwritev = torn_pwritev;
		kv__io.map_appends = 0;
		kv_write(db, b);
	}
	_exit(0);
}

static void stage(const char *dir, int cycle, uint64_t tail, uint64_t *seed)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		die("fork", KV_EIO);
	if (pid == 0)
		grandchild(dir, cycle);
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid", KV_EIO);
	if (stages[cycle].point)
		tear_tail(dir, tail, seed);
}

static void send_counts(void)
{
	for (uint32_t i = 0; i < NPOINTS; i++) {
		msg m = { .kind = M_COUNT, .n = i, .hits = ch.hits[i] };
		send_msg(&m);
	}
}

static void compact(kv_t *db)
{
	int rc = kv_compact(db, NULL);

	if (rc)
		die("kv_compact", rc);
}

static void child_main(const char *dir, const plan *p, int wfd)
{
	uint64_t seed = p->seed, ver = p->base;
	kv_t *db;
	int rc;

	ch.wfd = wfd;
	ch.p = *p;
	kv__io.fsync = no_sync;
	kv__io.fdatasync = no_sync;
	kv__killpoint_hook = on_point;
	db = open_store(dir);
	for (int c = 0; c < CYCLES; c++) {
		for (int i = 0; i < OPS; i++)
			one_op(db, &seed, &ver, 0);
		compact(db);
		/* Tombstones land in a segment numbered below the outputs that
		 * hold the records they delete; the next compaction takes both
		 * and drops those tombstones: the case where deleting the
		 * inputs in order, without the obsolete list, would bring the
		 * records back. */
		for (int i = 0; i < OPS / 2; i++)
			one_op(db, &seed, &ver, 1);
		compact(db);
		for (int i = 0; i < OPS / 4; i++)
			one_op(db, &seed, &ver, 0);
		uint64_t tail = active_seq(db);
		if ((rc = kv_close(db)) != 0)
			die("kv_close", rc);
		stage(dir, c, tail, &seed);
		db = open_store(dir);
	}
	if ((rc = kv_close(db)) != 0)
		die("kv_close", rc);
	send_counts();
	_exit(0);
}

/* ---- the parent ---- */

/* What the parent knows of the store. */
typedef struct model {
	uint64_t acked[NKEYS]; /* version, 0 = absent */
	msg pending;           /* in flight when the child died */
	int has_pending;
} model;

typedef struct outcome {
	int killed;            /* point index, or -1 */
	uint64_t hit;
	uint64_t hits[NPOINTS];
	char unknown[8][120];
	int nunknown;
	char error[120];
} outcome;

static int read_msg(int fd, msg *m)
{
	size_t got = 0;

	while (got < sizeof *m) {
		ssize_t r = read(fd, (char *)m + got, sizeof *m - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		got += (size_t)r;
	}
	return 1;
}

static void take(model *md, outcome *o, const msg *m)
{
	switch (m->kind) {
	case M_BEGIN:
		md->pending = *m;
		md->has_pending = 1;
		break;
	case M_ACK:
		for (uint32_t i = 0; i < m->n; i++)
			md->acked[m->key[i]] = m->ver[i];
		md->has_pending = 0;
		break;
	case M_KILLED:
		o->killed = (int)m->n;
		o->hit = m->hits;
		break;
	case M_COUNT:
		o->hits[m->n] = m->hits;
		break;
	case M_UNKNOWN:
		if (o->nunknown < 8)
			memcpy(o->unknown[o->nunknown++], m->text, sizeof m->text);
		break;
	default:
		memcpy(o->error, m->text, sizeof m->text);
	}
}

/* Runs the child to its kill (or its end), folding its reports into md. */
static void run_child(const char *dir, const plan *p, model *md, outcome *o,
		      const char *label)
{
	int fds[2], status;
	msg m;
	pid_t pid;

	memset(o, 0, sizeof *o);
	o->killed = -1;
	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		child_main(dir, p, fds[1]);
	}
	close(fds[1]);
	while (read_msg(fds[0], &m))
		take(md, o, &m);
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (o->error[0])
		fail_msg("%s: child failed: %s", label, o->error);
	if (o->killed >= 0 && !(WIFSIGNALED(status) &&
				WTERMSIG(status) == SIGKILL))
		fail_msg("%s: child reported its kill but did not die", label);
	if (o->killed < 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		fail_msg("%s: child ended with status 0x%x", label, status);
}

/* Reads every key: its version (0 = absent), checking the value. */
static void read_all(kv_t *db, uint64_t found[NKEYS], const char *label)
{
	char key[16], got[256], want[256];
	size_t n;

	for (uint32_t k = 0; k < NKEYS; k++) {
		unsigned kk;
		uint64_t v;
		int rc;

		key_name(k, key);
		found[k] = 0;
		rc = kv_get_into(db, key, strlen(key), got, sizeof got - 1, &n);
		if (rc == KV_ENOTFOUND)
			continue;
		if (rc)
			fail_msg("%s: get %s: %s", label, key, kv_errmsg());
		got[n] = 0;
		if (sscanf(got, "k%u:v%" SCNu64 ":", &kk, &v) != 2 || kk != k)
			fail_msg("%s: %s holds a foreign value", label, key);
		if (value_of(k, v, want) != n || memcmp(want, got, n) != 0)
			fail_msg("%s: %s holds a wrong value", label, key);
		found[k] = v;
	}
}

static int count_pair(void *ctx, const void *key, size_t klen,
		      const void *val, size_t vlen)
{
	(void)key;
	(void)klen;
	(void)val;
	(void)vlen;
	++*(uint64_t *)ctx;
	return 0;
}

/* The in-flight op landed whole or not at all; every other key holds its
 * last acknowledged version. */
static void check_model(const model *md, const uint64_t found[NKEYS],
			const char *label)
{
	int flight[NKEYS] = { 0 }, all_new = 1, all_old = 1;
	const msg *p = &md->pending;

	for (uint32_t i = 0; md->has_pending && i < p->n; i++) {
		uint64_t f = found[p->key[i]];

		flight[p->key[i]] = 1;
		if (f != p->ver[i] && f != md->acked[p->key[i]])
			fail_msg("%s: key%04u holds version %" PRIu64 ", neither "
				 "acknowledged (%" PRIu64 ") nor in flight (%"
				 PRIu64 ")", label, p->key[i], f,
				 md->acked[p->key[i]], p->ver[i]);
		all_new &= f == p->ver[i];
		all_old &= f == md->acked[p->key[i]];
	}
	if (!all_new && !all_old)
		fail_msg("%s: the batch in flight landed in part", label);
	for (uint32_t k = 0; k < NKEYS; k++)
		if (!flight[k] && found[k] != md->acked[k])
			fail_msg("%s: key%04u holds version %" PRIu64 "; last "
				 "acknowledged %" PRIu64 "%s", label, k, found[k],
				 md->acked[k], md->acked[k] ? "" : " (absent)");
}

static kv_t *open_strict(const char *dir, const char *label)
{
	kv_options o;
	kv_t *db = NULL;
	int rc;

	tu_options(&o); /* no KV_SALVAGE: damage would fail the open */
	if ((rc = kv_open(dir, &o, &db)) != 0)
		fail_msg("%s: open: %s: %s", label, kv_strerror(rc), kv_errmsg());
	return db;
}

/* Opens strictly, verifies every record, checks the model, reopens and
 * checks again; the model then takes what the store holds. */
static void check_store(const char *dir, model *md, const char *label)
{
	uint64_t found[NKEYS], again[NKEYS], live = 0, want = 0;
	kv_t *db = open_strict(dir, label);
	int rc;

	if ((rc = kv_verify(db, NULL, NULL, NULL)) != 0)
		fail_msg("%s: kv_verify: %s", label, kv_errmsg());
	read_all(db, found, label);
	check_model(md, found, label);
	for (uint32_t k = 0; k < NKEYS; k++)
		want += found[k] != 0;
	for (unsigned i = 0; i < NTORN; i++) {
		char key[16];
		snprintf(key, sizeof key, "torn%u", i);
		if (kv_exists(db, key, strlen(key)) != KV_ENOTFOUND)
			fail_msg("%s: %s of a batch torn halfway is present",
				 label, key);
	}
	/* And nothing else. */
	TU_OK(kv_foreach(db, count_pair, &live));
	if (live != want)
		fail_msg("%s: %" PRIu64 " live keys, expected %" PRIu64, label,
			 live, want);
	TU_OK(kv_close(db));
	db = open_strict(dir, label);
	read_all(db, again, label);
	TU_OK(kv_close(db));
	if (memcmp(found, again, sizeof found) != 0)
		fail_msg("%s: a second reopen sees other values", label);
	memcpy(md->acked, found, sizeof found);
	md->has_pending = 0;
}

/* ---- the runs ---- */

static uint64_t dry_hits[NPOINTS];
static int dry_done;
static uint64_t sweep_kills[NPOINTS], random_kills[NPOINTS];

static int verbose(void)
{
	const char *v = getenv("KV_KILLPT_VERBOSE");
	return v && *v && *v != '0';
}

/* A new empty store directory "<root>/store". */
static char *fresh_store(char **root)
{
	char *dir;

	*root = tu_mkdir();
	assert_true(asprintf(&dir, "%s/store", *root) > 0);
	return dir;
}

static void dry_run(void)
{
	char *root, *dir = fresh_store(&root);
	plan p = { .point = -1, .seed = SEED, .base = 1000000000 };
	model md = { 0 };
	outcome o;

	if (dry_done)
		goto out;
	run_child(dir, &p, &md, &o, "dry run");
	check_store(dir, &md, "dry run");
	for (int i = 0; i < o.nunknown; i++)
		fail_msg("kill point \"%s\" is not in the test's table", o.unknown[i]);
	for (size_t i = 0; i < NPOINTS; i++)
		if (o.hits[i] == 0)
			fail_msg("kill point \"%s\" is never reached", points[i]);
	memcpy(dry_hits, o.hits, sizeof dry_hits);
	dry_done = 1;
out:
	free(dir);
	tu_rmdir(root);
}

static void test_every_point_is_reached(void **state)
{
	uint64_t total = 0, least = UINT64_MAX;
	size_t at = 0;

	(void)state;
	dry_run();
	for (size_t i = 0; i < NPOINTS; i++) {
		total += dry_hits[i];
		if (dry_hits[i] < least) {
			least = dry_hits[i];
			at = i;
		}
	}
	print_message("kill points: %zu points, %" PRIu64 " hits in one run "
		      "(fewest: %s, %" PRIu64 ")\n", NPOINTS, total, points[at],
		      least);
}

static void test_kill_at_each_point_nth_hit(void **state)
{
	unsigned cases = 0;

	(void)state;
	dry_run();
	for (size_t i = 0; i < NPOINTS; i++) {
		for (uint64_t n = 1; n <= SWEEP_N && n <= dry_hits[i]; n++) {
			char *root, *dir = fresh_store(&root), label[96];
			plan p = { .point = (int)i, .nth = n, .seed = SEED,
				   .base = 1000000000 };
			model md = { 0 };
			outcome o;

			snprintf(label, sizeof label, "%s hit %" PRIu64,
				 points[i], n);
			run_child(dir, &p, &md, &o, label);
			if (o.killed != (int)i || o.hit != n)
				fail_msg("%s: not reached (the dry run reached "
					 "it %" PRIu64 " times)", label, dry_hits[i]);
			check_store(dir, &md, label);
			sweep_kills[i]++;
			cases++;
			free(dir);
			tu_rmdir(root);
		}
	}
	print_message("kill points: sweep of %u kills (hits 1 to %d of each "
		      "point), every acknowledged op present\n", cases, SWEEP_N);
}

/* Hits and kills per point; the plan's target for a long run (enough
 * rounds for it) is every point killed at least TARGET_KILLS times. */
static void report_kills(unsigned rounds)
{
	uint64_t least = UINT64_MAX;
	size_t at = 0;

	for (size_t i = 0; i < NPOINTS; i++) {
		uint64_t total = sweep_kills[i] + random_kills[i];

		if (verbose())
			print_message("  %-28s hits per run %5" PRIu64 "   kills: "
				      "sweep %" PRIu64 ", random %4" PRIu64
				      ", total %4" PRIu64 "\n", points[i],
				      dry_hits[i], sweep_kills[i],
				      random_kills[i], total);
		if (total < least) {
			least = total;
			at = i;
		}
	}
	print_message("kill points: fewest kills at one point: %" PRIu64
		      " (%s)\n", least, points[at]);
	if (rounds >= TARGET_KILLS * NPOINTS && least < TARGET_KILLS)
		fail_msg("%s killed only %" PRIu64 " times in %u rounds",
			 points[at], least, rounds);
}

/* The point killed least so far, ties broken at random. */
static size_t least_killed(uint64_t *rng)
{
	size_t start = (size_t)(tu_rand(rng) % NPOINTS), best = start;

	for (size_t k = 0; k < NPOINTS; k++) {
		size_t i = (start + k) % NPOINTS;
		if (random_kills[i] < random_kills[best])
			best = i;
	}
	return best;
}

static unsigned env_unsigned(const char *name, unsigned dflt)
{
	const char *v = getenv(name);
	return v && *v ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

static void test_kill_at_random_hits(void **state)
{
	unsigned rounds = env_unsigned("KV_KILLPT_ROUNDS", 60), kills = 0;
	uint64_t rng = (uint64_t)env_unsigned("KV_KILLPT_SEED", 7) * 2654435761u + 1;
	char *root = NULL, *dir = NULL, copy[4200], label[160];
	model md;

	(void)state;
	dry_run();
	for (unsigned r = 0; r < rounds; r++) {
		if (r % CHAIN == 0) {
			free(dir);
			tu_rmdir(root);
			dir = fresh_store(&root);
			snprintf(copy, sizeof copy, "%s/copy", root);
			memset(&md, 0, sizeof md);
		}
		size_t i = least_killed(&rng);
		plan p = { .point = (int)i, .nth = 1 + tu_rand(&rng) % dry_hits[i],
			   .seed = tu_rand(&rng), .base = (r + 1) * 1000000000ull };
		outcome o;

		snprintf(label, sizeof label, "round %u (KV_KILLPT_SEED chain "
			 "from round %u): %s hit %" PRIu64 ", workload seed %"
			 PRIu64, r, r - r % CHAIN, points[i], p.nth, p.seed);
		run_child(dir, &p, &md, &o, label);
		if (o.killed >= 0) {
			random_kills[o.killed]++;
			kills++;
		}
		/* The next child recovers the crash itself: check a copy. */
		tu_rmdir(strdup(copy));
		tu_copy_dir(dir, copy);
		check_store(copy, &md, label);
	}
	free(dir);
	tu_rmdir(root);
	print_message("kill points: %u random cases (chains of %d), %u kills, "
		      "every acknowledged op present\n", rounds, CHAIN, kills);
	report_kills(rounds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_point_is_reached),
		cmocka_unit_test(test_kill_at_each_point_nth_hit),
		cmocka_unit_test(test_kill_at_random_hits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
