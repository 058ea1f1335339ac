/* engine_rocksdb.c - RocksDB through rocksdb/c.h, default options;
 * reads with rocksdb_get_pinned (no copy); sync = true for fillsync;
 * CompactRange over every key for compact. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "engine.h"

struct h {
	rocksdb_t *db;
	rocksdb_options_t *opt;
	rocksdb_writeoptions_t *wo;
	rocksdb_readoptions_t *ro;
};

static void *e_open(const char *dir, const eng_opts *o)
{
	struct h *h = calloc(1, sizeof *h);
	char *err = NULL;

	if (!h)
		return NULL;
	h->opt = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(h->opt, 1);
	h->wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(h->wo, (unsigned char)o->sync);
	h->ro = rocksdb_readoptions_create();
	h->db = rocksdb_open(h->opt, dir, &err);
	if (err) {
		fprintf(stderr, "rocksdb: open %s: %s\n", dir, err);
		rocksdb_free(err);
		free(h);
		return NULL;
	}
	return h;
}

static int e_close(void *hp)
{
	struct h *h = hp;

	rocksdb_close(h->db);
	rocksdb_options_destroy(h->opt);
	rocksdb_writeoptions_destroy(h->wo);
	rocksdb_readoptions_destroy(h->ro);
	free(h);
	return 0;
}

static int fail(char *err)
{
	fprintf(stderr, "rocksdb: %s\n", err);
	rocksdb_free(err);
	return ENG_ERR;
}

static int e_put(void *hp, const void *k, size_t kl, const void *v, size_t vl)
{
	struct h *h = hp;
	char *err = NULL;

	rocksdb_put(h->db, h->wo, k, kl, v, vl, &err);
	return err ? fail(err) : 0;
}

static int e_get(void *hp, const void *k, size_t kl, const void *ex, size_t el)
{
	struct h *h = hp;
	char *err = NULL;
	rocksdb_pinnableslice_t *p;
	const char *v;
	size_t vl;
	int ret;

	p = rocksdb_get_pinned(h->db, h->ro, k, kl, &err);
	if (err)
		return fail(err);
	if (!p)
		return ENG_NOTFOUND;
	v = rocksdb_pinnableslice_value(p, &vl);
	if (!v)
		ret = ENG_NOTFOUND;
	else
		ret = vl == el && !memcmp(v, ex, el) ? ENG_OK : ENG_MISMATCH;
	rocksdb_pinnableslice_destroy(p);
	return ret;
}

static int e_del(void *hp, const void *k, size_t kl)
{
	struct h *h = hp;
	char *err = NULL;

	rocksdb_delete(h->db, h->wo, k, kl, &err);
	return err ? fail(err) : 0;
}

static int e_scan(void *hp, const void *start, size_t sl, int n,
		  eng_pair_fn fn, void *ctx)
{
	struct h *h = hp;
	rocksdb_iterator_t *it = rocksdb_create_iterator(h->db, h->ro);
	int i = 0;

	for (rocksdb_iter_seek(it, start, sl);
	     i < n && rocksdb_iter_valid(it); i++, rocksdb_iter_next(it)) {
		size_t kl, vl;
		const char *k = rocksdb_iter_key(it, &kl);
		const char *v = rocksdb_iter_value(it, &vl);

		fn(ctx, k, kl, v, vl);
	}
	rocksdb_iter_destroy(it);
	return i;
}

static int e_compact(void *hp, int64_t *bytes_read)
{
	struct h *h = hp;

	*bytes_read = -1;
	rocksdb_compact_range(h->db, NULL, 0, NULL, 0);
	return 0;
}

/* rocksdb/c.h has no version call and rocksdb/version.h is C++; bench.mk
 * passes what pkg-config says. */
static const char *e_version(void)
{
#ifdef KVB_ROCKSDB_VERSION
	return KVB_ROCKSDB_VERSION;
#else
	return NULL;
#endif
}

const engine eng_rocksdb = {
	.name = "rocksdb",
	.durability = "fill: sync=false (WAL record written with write() per "
		      "put); fillsync: sync=true",
	.open = e_open, .close = e_close, .put = e_put, .get = e_get,
	.del = e_del, .scan = e_scan, .mt_get = 1, .mt_put = 1,
	.compact = e_compact, .version = e_version,
};
