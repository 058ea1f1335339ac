/* engine_sqlite.c - SQLite: a WITHOUT ROWID table, WAL, prepared statements,
 * one autocommit statement per operation, locking_mode=EXCLUSIVE (the
 * store has one connection, as every engine here has one process; this
 * spares each transaction its file locks and the shared WAL index:
 * +13-22% puts/s at 300,000 keys, 2 pairs). synchronous=NORMAL for fill*
 * (no fsync per commit in WAL mode), synchronous=FULL for fillsync. The
 * connection is used from one thread only, so mt_get and mt_put are 0 and
 * there is no compact (VACUUM would need the writer thread that compact
 * runs beside it to have a connection of its own). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "engine.h"

struct h {
	sqlite3 *db;
	sqlite3_stmt *put, *get, *del, *scan;
};

static int prep(struct h *h, const char *sql, sqlite3_stmt **st)
{
	return sqlite3_prepare_v2(h->db, sql, -1, st, NULL);
}

static void *e_open(const char *dir, const eng_opts *o)
{
	struct h *h = calloc(1, sizeof *h);
	char path[4096];
	int rc;

	if (!h)
		return NULL;
	snprintf(path, sizeof path, "%s/db.sqlite", dir);
	rc = sqlite3_open(path, &h->db);
	if (!rc)
		rc = sqlite3_exec(h->db, "PRAGMA locking_mode=EXCLUSIVE", 0, 0, 0);
	if (!rc)
		rc = sqlite3_exec(h->db, "PRAGMA journal_mode=WAL", 0, 0, 0);
	if (!rc)
		rc = sqlite3_exec(h->db, o->sync ? "PRAGMA synchronous=FULL" :
				  "PRAGMA synchronous=NORMAL", 0, 0, 0);
	if (!rc)
		rc = sqlite3_exec(h->db, "CREATE TABLE IF NOT EXISTS kv"
				  "(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID",
				  0, 0, 0);
	if (!rc)
		rc = prep(h, "INSERT OR REPLACE INTO kv VALUES(?,?)", &h->put);
	if (!rc)
		rc = prep(h, "SELECT v FROM kv WHERE k=?", &h->get);
	if (!rc)
		rc = prep(h, "DELETE FROM kv WHERE k=?", &h->del);
	if (!rc)
		rc = prep(h, "SELECT k, v FROM kv WHERE k>=? ORDER BY k LIMIT ?",
			  &h->scan);
	if (rc) {
		fprintf(stderr, "sqlite: open %s: %s\n", path,
			sqlite3_errmsg(h->db));
		sqlite3_close(h->db);
		free(h);
		return NULL;
	}
	return h;
}

static int e_close(void *hp)
{
	struct h *h = hp;

	sqlite3_finalize(h->put);
	sqlite3_finalize(h->get);
	sqlite3_finalize(h->del);
	sqlite3_finalize(h->scan);
	sqlite3_close(h->db);
	free(h);
	return 0;
}

static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ENG_ERR;
}

static int e_put(void *hp, const void *k, size_t kl, const void *v, size_t vl)
{
	struct h *h = hp;

	sqlite3_bind_blob(h->put, 1, k, (int)kl, SQLITE_STATIC);
	sqlite3_bind_blob(h->put, 2, v, (int)vl, SQLITE_STATIC);
	return step_done(h->put);
}

static int e_get(void *hp, const void *k, size_t kl, const void *ex, size_t el)
{
	struct h *h = hp;
	int rc, ret;

	sqlite3_bind_blob(h->get, 1, k, (int)kl, SQLITE_STATIC);
	rc = sqlite3_step(h->get);
	if (rc == SQLITE_ROW) {
		const void *v = sqlite3_column_blob(h->get, 0);
		size_t vl = (size_t)sqlite3_column_bytes(h->get, 0);

		ret = vl == el && !memcmp(v, ex, el) ? ENG_OK : ENG_MISMATCH;
	} else {
		ret = rc == SQLITE_DONE ? ENG_NOTFOUND : ENG_ERR;
	}
	sqlite3_reset(h->get);
	return ret;
}

static int e_del(void *hp, const void *k, size_t kl)
{
	struct h *h = hp;

	sqlite3_bind_blob(h->del, 1, k, (int)kl, SQLITE_STATIC);
	return step_done(h->del);
}

static int e_scan(void *hp, const void *start, size_t sl, int n,
		  eng_pair_fn fn, void *ctx)
{
	struct h *h = hp;
	int i = 0, rc;

	sqlite3_bind_blob(h->scan, 1, start, (int)sl, SQLITE_STATIC);
	sqlite3_bind_int(h->scan, 2, n);
	while ((rc = sqlite3_step(h->scan)) == SQLITE_ROW) {
		fn(ctx, sqlite3_column_blob(h->scan, 0),
		   (size_t)sqlite3_column_bytes(h->scan, 0),
		   sqlite3_column_blob(h->scan, 1),
		   (size_t)sqlite3_column_bytes(h->scan, 1));
		i++;
	}
	sqlite3_reset(h->scan);
	return rc == SQLITE_DONE ? i : ENG_ERR;
}

static const char *e_version(void)
{
	return sqlite3_libversion();
}

const engine eng_sqlite = {
	.name = "sqlite",
	.durability = "WAL, locking_mode=EXCLUSIVE; fill: synchronous=NORMAL "
		      "(no fsync per commit); "
		      "fillsync: synchronous=FULL",
	.open = e_open, .close = e_close, .put = e_put, .get = e_get,
	.del = e_del, .scan = e_scan, .mt_get = 0, .version = e_version,
};
