/* read.c - fetch, check and decode one record. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "error.h"
#include "read.h"

/* A sound record of another key at the entry's offset (a misdirected or
 * swapped block; its CRC is fine) must not be returned as this key's
 * value. Compared here, under klock, while the arena copy of the key
 * cannot move; kv__fetch_check reports it (found by test_corrupt). */
static int same_key(const uint8_t *key, kv__fetch *f)
{
	f->other_key = memcmp(f->rec + KV__REC_HDR, key, f->klen) != 0;
	return 0;
}

/* Fills f for entry e, with the record's place in the map if it is
 * mapped; no pin, no copy. */
static void locate(kv_t *db, const kv__kent *e, kv__fetch *f)
{
	memset(f, 0, sizeof *f);
	f->seg = db->segs[KV__LOC_SLOT(e->loc)];
	f->off = KV__LOC_OFF(e->loc);
	f->klen = kv__kent_klen(e);
	f->vlen = kv__kent_vlen(e);
	f->flags = kv__kent_flags(e);
	f->rec = kv__seg_ptr(f->seg, f->off, kv__rec_size(f->klen, f->vlen));
}

/* Under klock: the newest entry of the key, and its key bytes in *kb; a
 * queued put's (pubq.h) before the keydir's. NULL when neither has it. */
static const kv__kent *find(kv_t *db, const void *key, size_t klen,
			    uint64_t h, const uint8_t **kb)
{
	const kv__kent *e = kv__pubq_find(&db->pubq, key, klen, h);

	if (e) {
		*kb = e->k.bytes;
		return e;
	}
	uint32_t id = kv__kd_find(&db->kd, key, klen, h);
	if (id == UINT32_MAX)
		return NULL;
	*kb = kv__kd_key(&db->kd, id);
	return kv__kd_ent(&db->kd, id);
}

/* The record's address as locate() finds it, without filling a kv__fetch
 * for each of a window's ids: with locate(), 100-key scans of 1M keys ran
 * p50 16.3-21.9 us against 16.6-21.2 (medians of 4 pairs 19.7 and 16.8). */
void kv__fetch_warm(kv_t *db, uint32_t id)
{
	const kv__kent *e = kv__kd_ent(&db->kd, id);
	kv__seg *s = db->segs[KV__LOC_SLOT(e->loc)];
	size_t size = kv__rec_size(kv__kent_klen(e), kv__kent_vlen(e));
	const uint8_t *rec = kv__seg_ptr(s, KV__LOC_OFF(e->loc), size);

	if (!rec)
		return;
	/* A small record whole; of a big one, the lines the check starts on. */
	const uint8_t *end = rec + (size < 256 ? size : 256);
	for (const uint8_t *p = rec; p < end; p += 64)
		__builtin_prefetch(p);
	__builtin_prefetch(end - 1);
}

/* kv__fetch_locked for an entry e whose key bytes are at kb. */
static int fetch_ent(kv_t *db, const kv__kent *e, const uint8_t *kb,
		     kv__fetch *f)
{
	locate(db, e, f);
	atomic_fetch_add(&f->seg->refs, 1);
	if (f->rec)
		return same_key(kb, f);
	/* Not mapped (or still in the KV_SYNC_NONE buffer): copy it. */
	size_t size = kv__rec_size(f->klen, f->vlen);
	if (!(f->own = malloc(size))) {
		kv__fetch_release(f);
		return kv__fail(KV_ENOMEM, "out of memory reading a record");
	}
	int rc = kv__seg_read(f->seg, f->off, f->own, size);
	if (rc) {
		kv__fetch_release(f);
		return rc;
	}
	f->rec = f->own;
	return same_key(kb, f);
}

int kv__fetch_locked(kv_t *db, uint32_t id, kv__fetch *f)
{
	return fetch_ent(db, kv__kd_ent(&db->kd, id), kv__kd_key(&db->kd, id),
			 f);
}

/* Checks a fetched record and calls fn with its plain value. */
static int call_value(kv_t *db, kv__fetch *f, kv_view_fn fn, void *ctx)
{
	const uint8_t *val;
	size_t vlen;
	void *tmp = NULL;
	int rc = kv__fetch_check(db, f);

	if (rc == 0 && (rc = kv__fetch_value(f, &val, &vlen, &tmp)) == 0)
		rc = fn(ctx, val, vlen);
	free(tmp);
	return rc;
}

/* Whether a located record may be checked and copied under klock: mapped,
 * small and stored plain, so that a writer waiting for the lock waits for
 * a copy of at most COPY_LOCKED_MAX bytes, never for an inflate. */
#define COPY_LOCKED_MAX 4096u

static int copy_locked(const kv__fetch *f)
{
	kv__rec r;

	return f->rec && kv__rec_size(f->klen, f->vlen) <= COPY_LOCKED_MAX &&
	       kv__rec_decode(f->rec, &r) == NULL && !(r.flags & KV__RF_ZLIB);
}

int kv__fetch_copy(kv_t *db, const void *key, size_t klen, kv_view_fn fn,
		   void *ctx)
{
	uint64_t h = kv__kd_hash(key, klen);
	kv__fetch f;
	int rc;

	const uint8_t *kb;

	unsigned lk = kv__klock_rd_get(&db->klock);
	const kv__kent *e = find(db, key, klen, h, &kb);
	if (!e) {
		kv__klock_rd_done(&db->klock, lk);
		return KV_ENOTFOUND;
	}
	locate(db, e, &f);
	if (copy_locked(&f)) {
		same_key(kb, &f);
		rc = call_value(db, &f, fn, ctx);
		kv__klock_rd_done(&db->klock, lk);
		return rc;
	}
	rc = fetch_ent(db, e, kb, &f);
	kv__klock_rd_done(&db->klock, lk);
	if (rc == 0) {
		rc = call_value(db, &f, fn, ctx);
		kv__fetch_release(&f);
	}
	return rc;
}

int kv__fetch_key(kv_t *db, const void *key, size_t klen, kv__fetch *f)
{
	uint64_t h = kv__kd_hash(key, klen);
	int rc;

	const uint8_t *kb;

	unsigned lk = kv__klock_rd_get(&db->klock);
	const kv__kent *e = find(db, key, klen, h, &kb);
	if (!e) {
		kv__klock_rd_done(&db->klock, lk);
		memset(f, 0, sizeof *f);
		return KV_ENOTFOUND;
	}
	rc = fetch_ent(db, e, kb, f);
	kv__klock_rd_done(&db->klock, lk);
	return rc;
}

int kv__live_key(kv_t *db, const void *key, size_t klen)
{
	uint64_t h = kv__kd_hash(key, klen);
	kv__fetch f;
	int rc;

	const uint8_t *kb;

	kv__klock_rd(&db->klock);
	const kv__kent *e = find(db, key, klen, h, &kb);
	if (!e || !(kv__kent_flags(e) & KV__KF_TTL)) {
		kv__klock_unlock(&db->klock);
		return e ? KV_OK : KV_ENOTFOUND;
	}
	rc = fetch_ent(db, e, kb, &f);
	kv__klock_unlock(&db->klock);
	if (rc == 0) {
		rc = kv__fetch_check(db, &f);
		kv__fetch_release(&f);
	}
	return rc;
}

static int corrupt(const kv__fetch *f, const char *why)
{
	return kv__fail(KV_ECORRUPT, "%s: bad record at offset %" PRIu64
			": %s", f->seg->name, f->off, why);
}

int kv__fetch_check(kv_t *db, kv__fetch *f)
{
	kv__rec *r = &f->hdr;
	const char *why = kv__rec_decode(f->rec, r);

	if (why)
		return corrupt(f, why);
	if (r->type != KV__REC_PUT || r->klen != f->klen ||
	    r->vlen != f->vlen || f->other_key)
		return corrupt(f, "record does not match the index");
	if (!kv__rec_crc_ok(r, f->rec))
		return corrupt(f, "checksum mismatch");
	/* Only entries flagged TTL pay for reading the clock. */
	if ((f->flags & KV__KF_TTL) && r->expire_ms <= kv__now(db))
		return KV_ENOTFOUND;
	return 0;
}

const uint8_t *kv__fetch_key_bytes(const kv__fetch *f)
{
	return f->rec + KV__REC_HDR;
}

int kv__fetch_value(kv__fetch *f, const uint8_t **val, size_t *vlen,
		    void **tmp)
{
	const uint8_t *stored = f->rec + KV__REC_HDR + f->klen;

	*tmp = NULL;
	if (!(f->hdr.flags & KV__RF_ZLIB)) {
		*val = stored;
		*vlen = f->vlen;
		return 0;
	}
	int rc = kv__rec_uncompress(stored, f->vlen, tmp, vlen);
	if (rc == KV_ENOMEM)
		return kv__fail(rc, "out of memory inflating a value");
	if (rc)
		return corrupt(f, "compressed value does not inflate");
	*val = *tmp;
	return 0;
}

int kv__fetch_call(kv_t *db, kv__fetch *f, kv_pair_fn fn, void *ctx,
		   int *called)
{
	const uint8_t *val;
	size_t vlen;
	void *tmp = NULL;
	int rc = kv__fetch_check(db, f);

	*called = 0;
	if (rc == 0 && (rc = kv__fetch_value(f, &val, &vlen, &tmp)) == 0) {
		rc = fn(ctx, kv__fetch_key_bytes(f), f->klen, val, vlen);
		*called = 1;
	}
	free(tmp);
	return rc;
}

void kv__fetch_release_n(kv__fetch *f, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		kv__fetch_release(&f[i]);
	*n = 0;
}

void kv__fetch_release(kv__fetch *f)
{
	kv__seg_unref(f->seg);
	free(f->own);
	f->own = NULL;
	f->seg = NULL;
}
