/* engine_lmdb.c - LMDB: one write transaction per put (MDB_WRITEMAP |
 * MDB_NOSYNC for fill*: commits write into the shared map, which survives
 * a process crash, 3.3-5.6x the puts/s of commits written with write() in
 * fillrandom, overwrite and deleterandom at 300,000 keys, 2 pairs; the
 * default fsync per commit for fillsync); reads reuse one read-only
 * transaction per thread, reset and renewed around each get.
 * Write transactions may begin in any thread (LMDB serialises them), so
 * mt_put is 1. No compact: LMDB reuses freed pages in place and its only
 * compaction (mdb_env_copy2 with MDB_CP_COMPACT) writes a copy elsewhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "engine.h"

struct h {
	MDB_env *env;
	MDB_dbi dbi;
};

static _Thread_local MDB_txn *rtxn;

static void *e_open(const char *dir, const eng_opts *o)
{
	struct h *h = calloc(1, sizeof *h);
	MDB_txn *txn;
	int rc;

	if (!h)
		return NULL;
	rc = mdb_env_create(&h->env);
	if (!rc)
		rc = mdb_env_set_mapsize(h->env, (size_t)64 << 30);
	if (!rc)
		rc = mdb_env_set_maxreaders(h->env, 64);
	if (!rc)
		rc = mdb_env_open(h->env, dir, o->sync ? 0 :
				  MDB_WRITEMAP | MDB_NOSYNC, 0644);
	if (!rc)
		rc = mdb_txn_begin(h->env, NULL, 0, &txn);
	if (!rc) {
		rc = mdb_dbi_open(txn, NULL, 0, &h->dbi);
		rc = rc ? rc : mdb_txn_commit(txn);
	}
	if (rc) {
		fprintf(stderr, "lmdb: open %s: %s\n", dir, mdb_strerror(rc));
		free(h);
		return NULL;
	}
	return h;
}

static void e_thread_end(void *hp)
{
	(void)hp;
	if (rtxn)
		mdb_txn_abort(rtxn);
	rtxn = NULL;
}

static int e_close(void *hp)
{
	struct h *h = hp;

	e_thread_end(h);
	mdb_env_close(h->env);
	free(h);
	return 0;
}

static int e_put(void *hp, const void *k, size_t kl, const void *v, size_t vl)
{
	struct h *h = hp;
	MDB_val key = { kl, (void *)k }, val = { vl, (void *)v };
	MDB_txn *txn;

	if (mdb_txn_begin(h->env, NULL, 0, &txn))
		return ENG_ERR;
	if (mdb_put(txn, h->dbi, &key, &val, 0)) {
		mdb_txn_abort(txn);
		return ENG_ERR;
	}
	return mdb_txn_commit(txn) ? ENG_ERR : 0;
}

static MDB_txn *reader(struct h *h)
{
	if (!rtxn) {
		if (mdb_txn_begin(h->env, NULL, MDB_RDONLY, &rtxn))
			return NULL;
	} else if (mdb_txn_renew(rtxn)) {
		return NULL;
	}
	return rtxn;
}

static int e_get(void *hp, const void *k, size_t kl, const void *ex, size_t el)
{
	struct h *h = hp;
	MDB_val key = { kl, (void *)k }, val;
	MDB_txn *txn = reader(h);
	int rc, ret;

	if (!txn)
		return ENG_ERR;
	rc = mdb_get(txn, h->dbi, &key, &val);
	if (rc == MDB_NOTFOUND)
		ret = ENG_NOTFOUND;
	else if (rc)
		ret = ENG_ERR;
	else
		ret = val.mv_size == el && !memcmp(val.mv_data, ex, el) ?
			ENG_OK : ENG_MISMATCH;
	mdb_txn_reset(txn);
	return ret;
}

static int e_del(void *hp, const void *k, size_t kl)
{
	struct h *h = hp;
	MDB_val key = { kl, (void *)k };
	MDB_txn *txn;
	int rc;

	if (mdb_txn_begin(h->env, NULL, 0, &txn))
		return ENG_ERR;
	rc = mdb_del(txn, h->dbi, &key, NULL);
	if (rc && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return ENG_ERR;
	}
	return mdb_txn_commit(txn) ? ENG_ERR : 0;
}

static int e_scan(void *hp, const void *start, size_t sl, int n,
		  eng_pair_fn fn, void *ctx)
{
	struct h *h = hp;
	MDB_val key = { sl, (void *)start }, val;
	MDB_txn *txn = reader(h);
	MDB_cursor *c;
	int i = 0, rc;

	if (!txn || mdb_cursor_open(txn, h->dbi, &c))
		return ENG_ERR;
	rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
	for (; !rc && i < n; i++) {
		fn(ctx, key.mv_data, key.mv_size, val.mv_data, val.mv_size);
		rc = mdb_cursor_get(c, &key, &val, MDB_NEXT);
	}
	mdb_cursor_close(c);
	mdb_txn_reset(txn);
	return i;
}

static const char *e_version(void)
{
	return mdb_version(NULL, NULL, NULL);
}

const engine eng_lmdb = {
	.name = "lmdb",
	.durability = "fill: MDB_WRITEMAP | MDB_NOSYNC (a commit per put, "
		      "into the shared map, no fsync); fillsync: default "
		      "(fsync per commit)",
	.open = e_open, .close = e_close, .put = e_put, .get = e_get,
	.del = e_del, .scan = e_scan, .mt_get = 1, .mt_put = 1,
	.thread_end = e_thread_end,
	.version = e_version,
};
