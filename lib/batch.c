/* batch.c - atomic batches: ops collected in memory, committed as one run. */
#include <bsd/stdlib.h>
#include <stdlib.h>
#include <string.h>

#include "commit.h"
#include "error.h"
#include "record.h"

/* Keys and values are copied into one growing byte buffer; ops refer to it
 * by offset, so growth may move it freely. */
typedef struct bop {
	uint8_t type;
	uint32_t klen;
	uint32_t vlen;
	uint64_t ttl_ms;
	size_t at;          /* key, then value, in bytes[] */
} bop;

struct kv_batch {
	bop *ops;
	size_t nops, cap;
	uint8_t *bytes;
	size_t used, bcap;
};

KV_API int kv_batch_new(kv_batch **out)
{
	if (!out)
		return kv__fail(KV_EINVAL, "kv_batch_new: out is NULL");
	*out = calloc(1, sizeof **out);
	return *out ? 0 : kv__fail(KV_ENOMEM, "out of memory for a batch");
}

KV_API void kv_batch_free(kv_batch *b)
{
	if (!b)
		return;
	free(b->ops);
	free(b->bytes);
	free(b);
}

KV_API void kv_batch_clear(kv_batch *b)
{
	if (b)
		b->nops = b->used = 0;
}

KV_API size_t kv_batch_count(const kv_batch *b)
{
	return b ? b->nops : 0;
}

static int grow(kv_batch *b, size_t more)
{
	if (b->nops == b->cap) {
		size_t n = b->cap ? b->cap * 2 : 16;
		bop *v = reallocarray(b->ops, n, sizeof *v);
		if (!v)
			return KV_ENOMEM;
		b->ops = v;
		b->cap = n;
	}
	if (b->used + more > b->bcap) {
		size_t n = b->bcap ? b->bcap : 4096;
		while (n < b->used + more)
			n *= 2;
		uint8_t *v = realloc(b->bytes, n);
		if (!v)
			return KV_ENOMEM;
		b->bytes = v;
		b->bcap = n;
	}
	return 0;
}

static int add(kv_batch *b, uint8_t type, const void *key, size_t klen,
	       const void *val, size_t vlen, uint64_t ttl_ms)
{
	if (!b)
		return kv__fail(KV_EINVAL, "batch is NULL");
	if (!key || klen == 0)
		return kv__fail(KV_EINVAL, "key is NULL or empty");
	if (klen > KV_MAX_KEY || vlen > KV_MAX_VALUE)
		return kv__fail(KV_ETOOBIG, "key or value over its limit");
	if (!val && vlen)
		return kv__fail(KV_EINVAL, "value is NULL but has a length");
	if (grow(b, klen + vlen))
		return kv__fail(KV_ENOMEM, "out of memory growing a batch");
	bop *op = &b->ops[b->nops++];
	*op = (bop){ .type = type, .klen = (uint32_t)klen,
		     .vlen = (uint32_t)vlen, .ttl_ms = ttl_ms, .at = b->used };
	memcpy(b->bytes + b->used, key, klen);
	if (vlen)
		memcpy(b->bytes + b->used + klen, val, vlen);
	b->used += klen + vlen;
	return 0;
}

KV_API int kv_batch_put(kv_batch *b, const void *key, size_t klen,
			const void *val, size_t vlen)
{
	return add(b, KV__REC_PUT, key, klen, val, vlen, 0);
}

KV_API int kv_batch_put_ttl(kv_batch *b, const void *key, size_t klen,
			    const void *val, size_t vlen, uint64_t ttl_ms)
{
	if (ttl_ms == 0 || ttl_ms > UINT64_MAX / 2)
		return kv__fail(KV_EINVAL, "ttl_ms must be between 1 and 2^63");
	return add(b, KV__REC_PUT, key, klen, val, vlen, ttl_ms);
}

KV_API int kv_batch_delete(kv_batch *b, const void *key, size_t klen)
{
	return add(b, KV__REC_DEL, key, klen, NULL, 0, 0);
}

/* Turns the batch into commit ops, compressing values as the store asks;
 * owned[i] is what must be freed afterwards. */
static int prepare(kv_t *db, const kv_batch *b, kv__op *ops, void **owned)
{
	uint64_t now = kv__now(db);

	for (size_t i = 0; i < b->nops; i++) {
		const bop *o = &b->ops[i];
		const uint8_t *k = b->bytes + o->at;

		owned[i] = NULL;
		if (o->vlen > db->opts.max_value_size)
			return kv__fail(KV_ETOOBIG, "batch value of %u bytes "
					"over max_value_size", o->vlen);
		ops[i] = (kv__op){ .type = o->type, .key = k, .klen = o->klen,
				   .val = k + o->klen, .vlen = o->vlen,
				   .expire_ms = o->ttl_ms ? now + o->ttl_ms : 0 };
		if (o->type == KV__REC_PUT) {
			int rc = kv__prepare_value(db, &ops[i], &owned[i]);
			if (rc)
				return rc;
		}
	}
	return 0;
}

KV_API int kv_write(kv_t *db, kv_batch *b)
{
	kv__op *ops;
	void **owned;
	int rc;

	if (!db || !b)
		return kv__fail(KV_EINVAL, "kv_write: NULL argument");
	if (db->rdonly)
		return kv__fail(KV_EREADONLY, "%s: opened read-only", db->dir);
	if (b->nops == 0)
		return 0;
	ops = reallocarray(NULL, b->nops, sizeof *ops);
	owned = calloc(b->nops, sizeof *owned);
	if (!ops || !owned)
		rc = kv__fail(KV_ENOMEM, "out of memory writing a batch");
	else if ((rc = prepare(db, b, ops, owned)) == 0)
		rc = kv__commit(db, ops, b->nops);
	for (size_t i = 0; owned && i < b->nops; i++)
		free(owned[i]);
	free(owned);
	free(ops);
	return rc;
}
