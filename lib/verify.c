/* verify.c - kv_verify: every record of every segment, checked. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "db.h"
#include "error.h"
#include "walk.h"

typedef struct check {
	kv_t *db;
	kv__progress prog;
	kv__walk walk;
	kv_verify_stats st;
	char first[256];       /* the first damage found, for kv_errmsg */
} check;

typedef struct held {
	kv__seg *s;
	uint64_t size;         /* as it was under the locks */
} held;

static int by_seq(const void *a, const void *b)
{
	uint64_t x = ((const held *)a)->s->seq, y = ((const held *)b)->s->seq;

	return (x > y) - (x < y);
}

/* The segments as they are now, each held by a reference so that a
 * compaction running meanwhile cannot close one under us. Appends made
 * after this are not verified, and need not be. */
static held *snapshot(kv_t *db, size_t *n, uint64_t *total)
{
	held *v;

	pthread_mutex_lock(&db->wlock);
	kv__klock_rd(&db->klock);
	v = calloc(db->nsegs ? db->nsegs : 1, sizeof *v);
	*n = 0;
	*total = 0;
	for (uint32_t i = 0; v && i < db->nslots; i++) {
		kv__seg *s = db->segs[i];
		if (!s)
			continue;
		atomic_fetch_add(&s->refs, 1);
		v[(*n)++] = (held){ s, s->size };
		*total += s->size;
	}
	kv__klock_unlock(&db->klock);
	pthread_mutex_unlock(&db->wlock);
	if (v)
		qsort(v, *n, sizeof *v, by_seq);
	return v;
}

static void damage(check *c, const kv__seg *s, uint64_t off, uint64_t len,
		   const char *why)
{
	if (!c->st.bad_ranges)
		snprintf(c->first, sizeof c->first, "%s: bad record at offset "
			 "%" PRIu64 ": %s", s->name, off, why);
	c->st.bad_ranges++;
	c->st.bad_bytes += len;
}

static int check_segment(check *c, kv__seg *s, uint64_t size)
{
	int rc = 0;

	c->st.segments++;
	c->st.bytes += KV__FILE_HDR;
	for (uint64_t off = KV__FILE_HDR; off < size && rc == 0;) {
		kv__rec r;
		const char *why = kv__walk_check(&c->walk, s, off, size, &r,
						 NULL);
		uint64_t next = why ? kv__walk_resync(&c->walk, s, off, size)
				    : off + kv__rec_size(r.klen, r.vlen);

		if (c->walk.err)
			return c->walk.err; /* could not read: KV_EIO */
		if (why)
			damage(c, s, off, next - off, why);
		else
			c->st.records++;
		c->st.bytes += next - off;
		off = next;
		rc = kv__report(&c->prog, c->st.bytes, "verify");
	}
	return rc;
}

KV_API int kv_verify(kv_t *db, kv_progress_fn progress, void *ctx,
		     kv_verify_stats *out)
{
	check c = { .db = db, .prog = { .fn = progress, .ctx = ctx } };
	held *segs;
	size_t n;
	int rc = 0;

	if (out)
		memset(out, 0, sizeof *out);
	if (!db)
		return kv__fail(KV_EINVAL, "store handle is NULL");
	if (!(segs = snapshot(db, &n, &c.prog.total)))
		return kv__fail(KV_ENOMEM, "out of memory verifying");
	for (size_t i = 0; i < n; i++) {
		if (rc == 0)
			rc = check_segment(&c, segs[i].s, segs[i].size);
		kv__seg_unref(segs[i].s);
	}
	free(segs);
	kv__walk_free(&c.walk);
	/* The last report always says done == total. */
	if (rc == 0)
		rc = kv__report(&c.prog, c.st.bytes, "verify");
	if (out)
		*out = c.st;
	if (rc == 0 && c.st.bad_ranges)
		rc = kv__fail(KV_ECORRUPT, "%s (%" PRIu64 " damaged places, "
			      "%" PRIu64 " bytes)", c.first, c.st.bad_ranges,
			      c.st.bad_bytes);
	return rc;
}
