/*
 * test_kill9.c - kill -9 at random moments (RELIABILITY-PLAN T4).
 *
 * A child runs 4 writer threads on a KV_SYNC_ALWAYS store with small
 * segments and background compaction, plus explicit kv_compact calls:
 * puts, deletes, batches and TTL puts, each thread on its own keys. Before
 * an operation a thread reports what it is about to write; after the
 * store acknowledges it, it reports that. The parent SIGKILLs the child
 * at a random moment (often mid-compaction), reopens the store without
 * salvage, and checks every key: it must hold its last acknowledged value,
 * or the value of an operation that was in flight. The same store carries
 * on to the next round. Rounds: KV_KILL_ROUNDS (default 50; `make
 * torture` runs 1,000).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define THREADS 4
#define KEYS_PER_THREAD 64
#define NKEYS (THREADS * KEYS_PER_THREAD)
#define MAXB 6                 /* keys in one batch */

/* One pipe message, well under PIPE_BUF, so writes are atomic. */
typedef struct msg {
	uint32_t ack;          /* 0: about to write; 1: acknowledged */
	uint32_t n;
	uint32_t key[MAXB];
	uint64_t ver[MAXB];    /* 0: a delete */
} msg;

/* The parent's view of each key. */
typedef struct keystate {
	uint64_t acked;        /* version, 0 = absent */
	uint64_t flight[2];    /* versions that may have landed (or 0) */
	int nflight;
} keystate;

static keystate model[NKEYS];
static int pipe_w;
static const char *store;
static uint64_t base;          /* versions this round start above this */

static void key_name(uint32_t k, char *out)
{
	snprintf(out, 16, "key%04u", k);
}

/* The value of version v of key k: checkable, never ambiguous. */
static int value_of(uint32_t k, uint64_t v, char *out)
{
	return snprintf(out, 64, "k%u:v%llu:%s", k, (unsigned long long)v,
			v % 3 ? "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" : "y");
}

static void report(const msg *m)
{
	if (write(pipe_w, m, sizeof *m) != sizeof *m)
		_exit(9);
}

static int one_op(kv_t *db, int t, uint64_t *seed, uint64_t *ver, msg *m)
{
	char key[16], val[64];
	unsigned what = (unsigned)(tu_rand(seed) % 10);
	kv_batch *b;
	int rc;

	uint32_t start = (uint32_t)(tu_rand(seed) % KEYS_PER_THREAD);

	/* A batch takes consecutive keys of this thread: all distinct. */
	m->n = what < 7 ? 1 : 2 + (uint32_t)(tu_rand(seed) % (MAXB - 1));
	for (uint32_t i = 0; i < m->n; i++) {
		m->key[i] = (uint32_t)t * KEYS_PER_THREAD +
			    (start + i) % KEYS_PER_THREAD;
		m->ver[i] = (what == 5 || (m->n > 1 && tu_rand(seed) % 5 == 0))
			    ? 0 : ++*ver;
	}
	m->ack = 0;
	report(m);
	if (m->n == 1) {
		key_name(m->key[0], key);
		if (m->ver[0] == 0) {
			rc = kv_delete(db, key, strlen(key));
			rc = rc == KV_ENOTFOUND ? 0 : rc;
		} else if (what == 6) {
			rc = kv_put_ttl(db, key, strlen(key), val,
					(size_t)value_of(m->key[0], m->ver[0], val),
					3600000);
		} else {
			rc = kv_put(db, key, strlen(key), val,
				    (size_t)value_of(m->key[0], m->ver[0], val));
		}
	} else {
		if (kv_batch_new(&b))
			_exit(7);
		for (uint32_t i = 0; i < m->n; i++) {
			key_name(m->key[i], key);
			if (m->ver[i] == 0)
				rc = kv_batch_delete(b, key, strlen(key));
			else
				rc = kv_batch_put(b, key, strlen(key), val,
						  (size_t)value_of(m->key[i],
								   m->ver[i], val));
			if (rc)
				_exit(8);
		}
		rc = kv_write(db, b);
		kv_batch_free(b);
	}
	return rc;
}

static kv_t *child_db;

static void *writer(void *arg)
{
	int t = (int)(intptr_t)arg;
	uint64_t seed = base * 7919 + (uint64_t)t + 1, ver = base + (uint64_t)t * 100000000u;
	msg m;

	for (int n = 0;; n++) {
		memset(&m, 0, sizeof m);
		if (one_op(child_db, t, &seed, &ver, &m))
			_exit(10);
		m.ack = 1;
		report(&m);
		if (t == 0 && n % 150 == 149 && kv_compact(child_db, NULL))
			_exit(11);
	}
	return NULL;
}

static void child(void)
{
	kv_options o;
	pthread_t th[THREADS];

	kv_options_init(&o);
	o.flags = KV_CREATE;           /* background compaction on */
	o.sync_mode = KV_SYNC_ALWAYS;
	o.max_file_size = 64 << 10;
	o.compact_dead_pct = 20;
	/* Partial compactions, so tombstones must often be kept for records
	 * in segments left out: the rule a crash would expose. */
	o.compact_max_bytes = 160 << 10;
	if (kv_open(store, &o, &child_db))
		_exit(12);
	for (int t = 0; t < THREADS; t++)
		pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t);
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	_exit(0);
}

static void apply_msg(const msg *m)
{
	for (uint32_t i = 0; i < m->n; i++) {
		keystate *k = &model[m->key[i]];
		if (!m->ack) {
			k->flight[0] = m->ver[i];
			k->nflight = 1;
		} else {
			k->acked = m->ver[i];
			k->nflight = 0;
		}
	}
}

/* Every key holds its acknowledged value or an in-flight one; the model
 * then takes what the store holds, for the next round. */
static void check_store(int round)
{
	kv_options o;
	kv_t *db;
	char key[16], want[64], got[64];
	size_t n;

	tu_options(&o);
	o.flags = KV_NO_AUTO_COMPACT;
	db = tu_open(store, &o);
	for (uint32_t k = 0; k < NKEYS; k++) {
		keystate *s = &model[k];
		int rc;
		uint64_t found = 0;

		key_name(k, key);
		rc = kv_get_into(db, key, strlen(key), got, sizeof got, &n);
		if (rc == KV_OK) {
			unsigned kk;
			unsigned long long vv;
			got[n] = 0;
			if (sscanf(got, "k%u:v%llu:", &kk, &vv) != 2 || kk != k)
				fail_msg("round %d: %s holds a foreign value", round, key);
			found = vv;
			value_of(k, found, want);
			if (strcmp(want, got) != 0)
				fail_msg("round %d: %s holds a wrong value", round, key);
		} else if (rc != KV_ENOTFOUND) {
			fail_msg("round %d: get %s: %s", round, key, kv_errmsg());
		}
		int ok = found == s->acked || (s->nflight && found == s->flight[0]);
		if (!ok)
			fail_msg("round %d: %s holds version %llu; acknowledged %llu",
				 round, key, (unsigned long long)found,
				 (unsigned long long)s->acked);
		s->acked = found;
		s->nflight = 0;
	}
	kv_close(db);
}

static void one_round(int round, uint64_t *seed)
{
	int fds[2];
	msg m;
	pid_t pid;
	long want = 20 + (long)(tu_rand(seed) % 1500), got = 0;

	assert_int_equal(pipe(fds), 0);
	base = (uint64_t)(round + 1) * 1000000000000ull;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		pipe_w = fds[1];
		child();
	}
	close(fds[1]);
	while (got < want && read(fds[0], &m, sizeof m) == sizeof m) {
		apply_msg(&m);
		got++;
	}
	kill(pid, SIGKILL);
	int status;
	waitpid(pid, &status, 0);
	if (!WIFSIGNALED(status))
		fail_msg("round %d: the child exited by itself (%d)", round,
			 WEXITSTATUS(status));
	/* What the child wrote before it died is still in the pipe. */
	while (read(fds[0], &m, sizeof m) == sizeof m)
		apply_msg(&m);
	close(fds[0]);
	check_store(round);
}

static void test_kill_9_at_random_moments(void **state)
{
	char *dir = tu_mkdir(), path[4200];
	const char *env = getenv("KV_KILL_ROUNDS");
	int rounds = env ? atoi(env) : 50;
	uint64_t seed = 2026;

	(void)state;
	snprintf(path, sizeof path, "%s/store", dir);
	store = path;
	for (int r = 0; r < rounds; r++)
		one_round(r, &seed);
	print_message("kill -9: %d rounds, every acknowledged write present\n",
		      rounds);
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_9_at_random_moments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
