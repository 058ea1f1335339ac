/* engine_gdbm.c - GDBM with its defaults. For fillsync: GDBM_SYNC plus an
 * explicit gdbm_sync() after each store, because GDBM 1.23 with its
 * default mmap I/O issued 27 msync and 1 fsync for 1,000 stores under
 * GDBM_SYNC alone (strace), which is not a durable put. GDBM handles are
 * not thread-safe, so mt_get and mt_put are 0, and there is no compact:
 * gdbm_reorganize exists, but compact runs a writer thread beside the
 * compaction, which one GDBM handle cannot serve. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gdbm.h>

#include "engine.h"

static int sync_each;

static void *e_open(const char *dir, const eng_opts *o)
{
	char path[4096];
	GDBM_FILE db;

	snprintf(path, sizeof path, "%s/db.gdbm", dir);
	sync_each = o->sync;
	db = gdbm_open(path, 0, GDBM_WRCREAT | (o->sync ? GDBM_SYNC : 0),
		       0644, NULL);
	if (!db)
		fprintf(stderr, "gdbm: open %s: %s\n", path,
			gdbm_strerror(gdbm_errno));
	return db;
}

static int e_close(void *h)
{
	return gdbm_close(h) ? ENG_ERR : 0;
}

static int e_put(void *h, const void *k, size_t kl, const void *v, size_t vl)
{
	datum key = { (char *)k, (int)kl }, val = { (char *)v, (int)vl };

	if (gdbm_store(h, key, val, GDBM_REPLACE))
		return ENG_ERR;
	return sync_each && gdbm_sync(h) ? ENG_ERR : 0;
}

static int e_get(void *h, const void *k, size_t kl, const void *ex, size_t el)
{
	datum key = { (char *)k, (int)kl };
	datum v = gdbm_fetch(h, key);
	int ret;

	if (!v.dptr)
		return gdbm_errno == GDBM_ITEM_NOT_FOUND ? ENG_NOTFOUND :
			ENG_ERR;
	ret = (size_t)v.dsize == el && !memcmp(v.dptr, ex, el) ? ENG_OK :
		ENG_MISMATCH;
	free(v.dptr);
	return ret;
}

static int e_del(void *h, const void *k, size_t kl)
{
	datum key = { (char *)k, (int)kl };

	if (!gdbm_delete(h, key))
		return 0;
	return gdbm_errno == GDBM_ITEM_NOT_FOUND ? 0 : ENG_ERR;
}

static const char *e_version(void)
{
	static char buf[16];

	snprintf(buf, sizeof buf, "%d.%d.%d", gdbm_version_number[0],
		 gdbm_version_number[1], gdbm_version_number[2]);
	return buf;
}

const engine eng_gdbm = {
	.name = "gdbm",
	.durability = "fill: default (no fsync); fillsync: GDBM_SYNC + gdbm_sync() "
		      "after each store",
	.open = e_open, .close = e_close, .put = e_put, .get = e_get,
	.del = e_del, .mt_get = 0, .version = e_version,
};
