/* engine_leveldb.c - LevelDB through leveldb/c.h, default options (snappy,
 * 8 MiB cache, no bloom filter); sync = true write options for fillsync;
 * CompactRange over every key for compact. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <leveldb/c.h>

#include "engine.h"

struct h {
	leveldb_t *db;
	leveldb_options_t *opt;
	leveldb_writeoptions_t *wo;
	leveldb_readoptions_t *ro;
};

static void *e_open(const char *dir, const eng_opts *o)
{
	struct h *h = calloc(1, sizeof *h);
	char *err = NULL;

	if (!h)
		return NULL;
	h->opt = leveldb_options_create();
	leveldb_options_set_create_if_missing(h->opt, 1);
	h->wo = leveldb_writeoptions_create();
	leveldb_writeoptions_set_sync(h->wo, (unsigned char)o->sync);
	h->ro = leveldb_readoptions_create();
	h->db = leveldb_open(h->opt, dir, &err);
	if (err) {
		fprintf(stderr, "leveldb: open %s: %s\n", dir, err);
		leveldb_free(err);
		free(h);
		return NULL;
	}
	return h;
}

static int e_close(void *hp)
{
	struct h *h = hp;

	leveldb_close(h->db);
	leveldb_options_destroy(h->opt);
	leveldb_writeoptions_destroy(h->wo);
	leveldb_readoptions_destroy(h->ro);
	free(h);
	return 0;
}

static int fail(char *err)
{
	fprintf(stderr, "leveldb: %s\n", err);
	leveldb_free(err);
	return ENG_ERR;
}

static int e_put(void *hp, const void *k, size_t kl, const void *v, size_t vl)
{
	struct h *h = hp;
	char *err = NULL;

	leveldb_put(h->db, h->wo, k, kl, v, vl, &err);
	return err ? fail(err) : 0;
}

static int e_get(void *hp, const void *k, size_t kl, const void *ex, size_t el)
{
	struct h *h = hp;
	char *err = NULL, *v;
	size_t vl;
	int ret;

	v = leveldb_get(h->db, h->ro, k, kl, &vl, &err);
	if (err)
		return fail(err);
	if (!v)
		return ENG_NOTFOUND;
	ret = vl == el && !memcmp(v, ex, el) ? ENG_OK : ENG_MISMATCH;
	leveldb_free(v);
	return ret;
}

static int e_del(void *hp, const void *k, size_t kl)
{
	struct h *h = hp;
	char *err = NULL;

	leveldb_delete(h->db, h->wo, k, kl, &err);
	return err ? fail(err) : 0;
}

static int e_scan(void *hp, const void *start, size_t sl, int n,
		  eng_pair_fn fn, void *ctx)
{
	struct h *h = hp;
	leveldb_iterator_t *it = leveldb_create_iterator(h->db, h->ro);
	int i = 0;

	for (leveldb_iter_seek(it, start, sl);
	     i < n && leveldb_iter_valid(it); i++, leveldb_iter_next(it)) {
		size_t kl, vl;
		const char *k = leveldb_iter_key(it, &kl);
		const char *v = leveldb_iter_value(it, &vl);

		fn(ctx, k, kl, v, vl);
	}
	leveldb_iter_destroy(it);
	return i;
}

static int e_compact(void *hp, int64_t *bytes_read)
{
	struct h *h = hp;

	*bytes_read = -1;
	leveldb_compact_range(h->db, NULL, 0, NULL, 0);
	return 0;
}

static const char *e_version(void)
{
	static char buf[32];

	snprintf(buf, sizeof buf, "%d.%d", leveldb_major_version(),
		 leveldb_minor_version());
	return buf;
}

const engine eng_leveldb = {
	.name = "leveldb",
	.durability = "fill: sync=false (log record written with write() per "
		      "put); fillsync: sync=true",
	.open = e_open, .close = e_close, .put = e_put, .get = e_get,
	.del = e_del, .scan = e_scan, .mt_get = 1, .mt_put = 1,
	.compact = e_compact, .version = e_version,
};
