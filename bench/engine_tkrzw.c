/* engine_tkrzw.c - tkrzw HashDBM through tkrzw_langc.h, default file class
 * and update mode, num_buckets = 2 x the expected keys; for fillsync,
 * tkrzw_dbm_synchronize(hard = true) after every put (tkrzw has no
 * per-write sync flag); tkrzw_dbm_rebuild with default parameters for
 * compact. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tkrzw_langc.h>

#include "engine.h"

struct h {
	TkrzwDBM *db;
	int sync;
};

static void *e_open(const char *dir, const eng_opts *o)
{
	struct h *h = calloc(1, sizeof *h);
	char path[4096], params[256];

	if (!h)
		return NULL;
	snprintf(path, sizeof path, "%s/db.tkh", dir);
	snprintf(params, sizeof params,
		 "dbm=HashDBM,num_buckets=%llu",
		 (unsigned long long)(o->num_keys * 2));
	h->db = tkrzw_dbm_open(path, true, params);
	h->sync = o->sync;
	if (!h->db) {
		fprintf(stderr, "tkrzw: open %s: %s\n", path,
			tkrzw_get_last_status_message());
		free(h);
		return NULL;
	}
	return h;
}

static int e_close(void *hp)
{
	struct h *h = hp;
	bool ok = tkrzw_dbm_close(h->db);

	free(h);
	return ok ? 0 : ENG_ERR;
}

static int e_put(void *hp, const void *k, size_t kl, const void *v, size_t vl)
{
	struct h *h = hp;

	if (!tkrzw_dbm_set(h->db, k, (int32_t)kl, v, (int32_t)vl, true))
		return ENG_ERR;
	if (h->sync && !tkrzw_dbm_synchronize(h->db, true, NULL, NULL, ""))
		return ENG_ERR;
	return 0;
}

static int e_get(void *hp, const void *k, size_t kl, const void *ex, size_t el)
{
	struct h *h = hp;
	int32_t vl;
	char *v = tkrzw_dbm_get(h->db, k, (int32_t)kl, &vl);
	int ret;

	if (!v)
		return tkrzw_get_last_status_code() ==
			TKRZW_STATUS_NOT_FOUND_ERROR ? ENG_NOTFOUND : ENG_ERR;
	ret = (size_t)vl == el && !memcmp(v, ex, el) ? ENG_OK : ENG_MISMATCH;
	free(v);
	return ret;
}

static int e_del(void *hp, const void *k, size_t kl)
{
	struct h *h = hp;

	if (tkrzw_dbm_remove(h->db, k, (int32_t)kl))
		return 0;
	return tkrzw_get_last_status_code() == TKRZW_STATUS_NOT_FOUND_ERROR ?
		0 : ENG_ERR;
}

static int e_compact(void *hp, int64_t *bytes_read)
{
	struct h *h = hp;

	*bytes_read = -1;
	if (tkrzw_dbm_rebuild(h->db, ""))
		return 0;
	fprintf(stderr, "tkrzw: rebuild: %s\n",
		tkrzw_get_last_status_message());
	return ENG_ERR;
}

static const char *e_version(void)
{
	return TKRZW_PACKAGE_VERSION;
}

const engine eng_tkrzw = {
	.name = "tkrzw",
	.durability = "HashDBM; fill: default (no fsync); fillsync: "
		      "synchronize(hard) after each put",
	.open = e_open, .close = e_close, .put = e_put, .get = e_get,
	.del = e_del, .mt_get = 1, .mt_put = 1, .compact = e_compact,
	.version = e_version,
};
