/*
 * repl_read.c - the primary's side of catch-up: kv_repl_read streams the
 * history after a position from the log segments, kv_repl_snapshot hands
 * out every live record as of one moment.
 *
 * The exact history is in the log segments (those not written by
 * compaction): each holds consecutive LSNs, in order, batches whole, and
 * each begins where the previous one ended. Compaction outputs hold old
 * LSNs too, but not the history: overwritten values and most tombstones
 * are dropped and batches are split into single records. So a range is
 * served from the log alone, and as soon as one LSN of it is missing
 * there (its segment was compacted away) the answer is KV_ESNAPSHOT.
 * Both calls take references on the segments they read, so a compaction
 * may delete the files meanwhile; and they call back with no lock held.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "commit.h"
#include "error.h"
#include "le.h"
#include "record.h"
#include "repl.h"
#include "walk.h"

/* The position a peer may have, with wlock held: in KV_SYNC_NONE the
 * buffer is handed to the kernel first (a crash of this process must not
 * lose what a peer got). */
static int bound_locked(kv_t *db, uint64_t *bound)
{
	int rc = 0;

	if (db->active && db->opts.sync_mode == KV_SYNC_NONE) {
		rc = kv__seg_flush(db->active);
		if (rc == 0)
			kv__repl_ack(db, db->next_lsn - 1);
	}
	*bound = atomic_load(&db->repl.ack);
	return rc;
}

/* ---- kv_repl_read ---- */

typedef struct logseg {
	kv__seg *s;
	uint64_t end;          /* its size when taken */
	uint64_t min, max;     /* its LSNs then */
} logseg;

static int by_seq(const void *a, const void *b)
{
	const logseg *x = a, *y = b;

	return (x->s->seq > y->s->seq) - (x->s->seq < y->s->seq);
}

/* The log segments that hold records, referenced, oldest first. */
static int take_log(kv_t *db, logseg **out, size_t *n, uint64_t *bound)
{
	pthread_mutex_lock(&db->wlock);
	int rc = bound_locked(db, bound);
	kv__klock_rd(&db->klock);
	logseg *v = calloc(db->nsegs ? db->nsegs : 1, sizeof *v);
	*n = 0;
	for (uint32_t i = 0; v && rc == 0 && i < db->nslots; i++) {
		kv__seg *s = db->segs[i];
		if (!s || (s->flags & KV__SEG_F_COMPACTED) || !s->min_lsn)
			continue;
		atomic_fetch_add(&s->refs, 1);
		v[(*n)++] = (logseg){ s, s->size, s->min_lsn, s->max_lsn };
	}
	kv__klock_unlock(&db->klock);
	pthread_mutex_unlock(&db->wlock);
	*out = v;
	if (!v)
		return kv__fail(KV_ENOMEM, "out of memory reading the log");
	qsort(v, *n, sizeof *v, by_seq);
	return rc;
}

/* Where the reader is: the next LSN wanted, the last to send, and a frame
 * being gathered (runs that lie back to back in one segment). */
typedef struct reader {
	kv_t *db;
	uint64_t expect, bound;
	size_t max_bytes;
	kv_repl_fn fn;
	void *ctx;
	kv__walk walk;
	kv__seg *fs;           /* the frame's segment, or NULL: empty */
	uint64_t foff, flen;   /* its bytes */
	uint64_t ffirst, flast;
	uint64_t hseq, hoff, hlsn; /* a hint: a run with LSN hlsn there */
	uint64_t dseq, doff, dlsn; /* after the last frame delivered */
} reader;

static int flush_frame(reader *rd)
{
	if (!rd->fs)
		return 0;
	kv__seg *s = rd->fs;
	const uint8_t *p = kv__walk_bytes(&rd->walk, s, rd->foff, rd->flen);
	rd->fs = NULL;
	if (!p)
		return rd->walk.err;
	int rc = rd->fn(rd->ctx, rd->ffirst, rd->flast, p, (size_t)rd->flen);
	if (rc == 0) {
		rd->dseq = s->seq;
		rd->doff = rd->foff + rd->flen;
		rd->dlsn = rd->flast + 1;
	}
	return rc;
}

static int add_run(reader *rd, kv__seg *s, uint64_t off, uint64_t len,
		   uint64_t first, uint64_t last)
{
	int rc;

	if (rd->fs && rd->flen + len > rd->max_bytes &&
	    (rc = flush_frame(rd)) != 0)
		return rc;
	if (!rd->fs) {
		rd->fs = s;
		rd->foff = off;
		rd->flen = 0;
		rd->ffirst = first;
	}
	rd->flen += len;
	rd->flast = last;
	return 0;
}

static int gone(const reader *rd, const char *why)
{
	return kv__fail(KV_ESNAPSHOT, "%s: LSN %" PRIu64 " is not in the log "
			"(%s); a replica at LSN %" PRIu64 " needs a snapshot",
			rd->db->dir, rd->expect, why, rd->expect - 1);
}

/* One run at off (a record, or a whole batch), each record checked: a
 * damaged record is never sent. Sets *len and its LSNs. */
static int read_run(reader *rd, kv__seg *s, uint64_t off, uint64_t end,
		    uint64_t *len, uint64_t *first, uint64_t *last)
{
	kv__rec r;
	uint64_t at = off;

	*first = *last = 0;
	do {
		const char *why = kv__walk_check(&rd->walk, s, at, end, &r,
						 NULL);
		if (why && rd->walk.err)
			return rd->walk.err;
		if (why)
			return kv__fail(KV_ECORRUPT, "%s: bad record at offset %"
					PRIu64 ": %s", s->name, at, why);
		if (at == off)
			*first = r.lsn;
		else if (r.lsn != *last + 1)
			return kv__fail(KV_ECORRUPT, "%s: offset %" PRIu64
					": broken batch sequence", s->name, at);
		*last = r.lsn;
		at += kv__rec_size(r.klen, r.vlen);
	} while (r.batch_left > 0);
	*len = at - off;
	return 0;
}

/* Where to start walking a segment: at the hint when a sound run with
 * the hinted LSN starts there (so no byte before it is read again), else
 * at the segment's start. */
static uint64_t start_at(reader *rd, const logseg *ls)
{
	uint64_t first = 0, last, len;

	if (ls->s->seq != rd->hseq || rd->hoff < KV__FILE_HDR ||
	    rd->hoff >= ls->end || rd->hlsn > rd->expect)
		return KV__FILE_HDR;
	if (read_run(rd, ls->s, rd->hoff, ls->end, &len, &first, &last) != 0 ||
	    first != rd->hlsn)
		return KV__FILE_HDR;
	return rd->hoff;
}

/* Sends the runs of one log segment that come after rd->expect. */
static int read_segment(reader *rd, const logseg *ls)
{
	uint64_t first = 0, last = 0, len = 0;
	int rc;

	for (uint64_t off = start_at(rd, ls);
	     off < ls->end && rd->expect <= rd->bound; off += len) {
		if ((rc = read_run(rd, ls->s, off, ls->end, &len, &first,
				   &last)) != 0)
			return rc;
		if (last < rd->expect)
			continue;
		if (first < rd->expect)
			return kv__fail(KV_EINVAL, "position %" PRIu64 " falls "
					"inside a batch (LSNs %" PRIu64 "..%"
					PRIu64 ")", rd->expect - 1, first, last);
		if (first != rd->expect)
			return gone(rd, "the log skips it");
		if ((rc = add_run(rd, ls->s, off, len, first, last)) != 0)
			return rc;
		rd->expect = last + 1;
	}
	return flush_frame(rd);
}

static int read_log(reader *rd, const logseg *v, size_t n)
{
	int rc;

	for (size_t i = 0; i < n && rd->expect <= rd->bound; i++) {
		if (v[i].max < rd->expect)
			continue;
		if (v[i].min > rd->expect)
			return gone(rd, "compaction removed it");
		if ((rc = read_segment(rd, &v[i])) != 0)
			return rc;
	}
	return rd->expect <= rd->bound ? gone(rd, "missing") : 0;
}

static int check_read(kv_t *db, uint64_t from)
{
	if (atomic_load(&db->repl.snap) || atomic_load(&db->repl.broken))
		return kv__fail(KV_ESNAPSHOT, "%s: this replica is taking a "
				"snapshot, or one was interrupted", db->dir);
	/* A store built from a snapshot has no history before it. */
	if (from < db->repl.base)
		return kv__fail(KV_ESNAPSHOT, "%s: begins with a snapshot at LSN "
				"%" PRIu64 "; a replica at LSN %" PRIu64 " needs "
				"a snapshot", db->dir, db->repl.base, from);
	return 0;
}

/* The hint nearest below rd->expect, if any. */
static void pick_hint(kv_t *db, reader *rd)
{
	pthread_mutex_lock(&db->wlock);
	for (size_t i = 0; i < 8; i++) {
		const struct kv__repl_hint *h = &db->repl.hints[i];
		if (h->lsn && h->lsn <= rd->expect && h->lsn > rd->hlsn) {
			rd->hseq = h->seq;
			rd->hoff = h->off;
			rd->hlsn = h->lsn;
		}
	}
	pthread_mutex_unlock(&db->wlock);
}

/* Remembers where this call stopped, in place of the hint this caller
 * left last time (a follower calls again from where it stopped), else of
 * the lowest one. */
static void keep_hint(kv_t *db, const reader *rd, uint64_t from)
{
	struct kv__repl_hint *v = db->repl.hints, *h = &v[0];

	if (!rd->dseq)
		return;
	pthread_mutex_lock(&db->wlock);
	for (size_t i = 0; i < 8; i++) {
		if (v[i].lsn == from + 1 || v[i].lsn == rd->dlsn) {
			h = &v[i];
			break;
		}
		if (v[i].lsn < h->lsn)
			h = &v[i];
	}
	*h = (struct kv__repl_hint){ rd->dseq, rd->doff, rd->dlsn };
	pthread_mutex_unlock(&db->wlock);
}

KV_API int kv_repl_read(kv_t *db, uint64_t from, size_t max_bytes,
			kv_repl_fn fn, void *ctx)
{
	reader rd = { .db = db, .expect = from + 1, .max_bytes = max_bytes,
		      .fn = fn, .ctx = ctx };
	logseg *v = NULL;
	size_t n = 0;
	int rc;

	if (!db || !fn)
		return kv__fail(KV_EINVAL, "kv_repl_read: NULL argument");
	if ((rc = check_read(db, from)) != 0)
		return rc;
	rc = take_log(db, &v, &n, &rd.bound);
	if (rc == 0 && from > rd.bound)
		rc = kv__fail(KV_ESNAPSHOT, "%s: a replica at LSN %" PRIu64 " is "
			      "ahead of this store (LSN %" PRIu64 "): it holds "
			      "writes this store does not have, and must be "
			      "rebuilt from a snapshot", db->dir, from, rd.bound);
	else if (rc == 0) {
		pick_hint(db, &rd);
		rc = read_log(&rd, v, n);
		keep_hint(db, &rd, from);
	}
	for (size_t i = 0; i < n; i++)
		kv__seg_unref(v[i].s);
	free(v);
	kv__walk_free(&rd.walk);
	return rc;
}

/* ---- kv_repl_snapshot ---- */

typedef struct snap {
	kv__seg **segs;        /* by slot, referenced, as of the moment */
	uint64_t *ends;        /* their sizes then */
	uint32_t nslots;
	uint64_t *locs;        /* of every live key's record */
	size_t n;
	uint64_t pos, appended;
} snap;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* With wlock and klock held: the keydir is exactly the records up to
 * next_lsn - 1 (writers publish under wlock, and the queued puts were
 * published just before: kv__settle_wl). */
static int take_locked(kv_t *db, snap *sn)
{
	sn->nslots = db->nslots;
	sn->segs = calloc(db->nslots ? db->nslots : 1, sizeof *sn->segs);
	sn->ends = calloc(db->nslots ? db->nslots : 1, sizeof *sn->ends);
	sn->locs = calloc(db->kd.nids ? db->kd.nids : 1, sizeof *sn->locs);
	if (!sn->segs || !sn->ends || !sn->locs)
		return kv__fail(KV_ENOMEM, "out of memory taking a snapshot");
	for (uint32_t i = 0; i < db->nslots; i++)
		if ((sn->segs[i] = db->segs[i]) != NULL) {
			atomic_fetch_add(&sn->segs[i]->refs, 1);
			sn->ends[i] = sn->segs[i]->size;
		}
	for (uint32_t id = 0; id < db->kd.nids; id++)
		if (kv__kd_live(&db->kd, id))
			sn->locs[sn->n++] = kv__kd_ent(&db->kd, id)->loc;
	sn->pos = db->next_lsn - 1;
	sn->appended = db->appended;
	return 0;
}

static int take_snapshot(kv_t *db, snap *sn)
{
	uint64_t bound;

	pthread_mutex_lock(&db->wlock);
	int rc = bound_locked(db, &bound);
	if (rc == 0)
		rc = kv__settle_wl(db);
	kv__klock_rd(&db->klock);
	if (rc == 0)
		rc = take_locked(db, sn);
	kv__klock_unlock(&db->klock);
	pthread_mutex_unlock(&db->wlock);
	/* ALWAYS acknowledges after the fdatasync: make the moment durable
	 * before any of it leaves. */
	if (rc == 0 && db->opts.sync_mode == KV_SYNC_ALWAYS &&
	    (rc = kv__sync_to(db, sn->appended)) == 0)
		kv__repl_ack(db, sn->pos);
	/* In segment order, so the files are read front to back. */
	if (rc == 0)
		qsort(sn->locs, sn->n, sizeof *sn->locs, cmp_u64);
	return rc;
}

/* A frame being gathered: copies of records, each re-encoded to stand
 * alone (batch_left 0), as compaction copies them. */
typedef struct sframe {
	uint8_t *b;
	size_t len, cap;
} sframe;

static int sframe_add(sframe *f, const kv__rec *r, const uint8_t *rec)
{
	size_t size = (size_t)kv__rec_size(r->klen, r->vlen);

	if (f->len + size > f->cap) {
		size_t c = f->cap ? f->cap : 4096;
		while (c < f->len + size)
			c *= 2;
		uint8_t *nb = realloc(f->b, c);
		if (!nb)
			return kv__fail(KV_ENOMEM, "out of memory in a snapshot");
		f->b = nb;
		f->cap = c;
	}
	kv__rec out = *r;
	out.batch_left = 0;
	const uint8_t *key = rec + KV__REC_HDR;
	kv__rec_encode(&out, f->b + f->len, key, key + r->klen);
	/* A record is at least KV__REC_HDR bytes, so f->b was allocated above.
	 * NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
	memcpy(f->b + f->len + KV__REC_HDR, key, size - KV__REC_HDR);
	f->len += size;
	return 0;
}

/* Adds the record at loc, checked, unless it expired meanwhile. */
static int add_record(snap *sn, kv__walk *w, sframe *f, uint64_t loc,
		      uint64_t now)
{
	kv__seg *s = sn->segs[KV__LOC_SLOT(loc)];
	uint64_t off = KV__LOC_OFF(loc);
	const uint8_t *rec;
	kv__rec r;
	const char *why = kv__walk_check(w, s, off, sn->ends[KV__LOC_SLOT(loc)],
					 &r, &rec);

	if (why && w->err)
		return w->err;
	if (why || r.type != KV__REC_PUT)
		return kv__fail(KV_ECORRUPT, "%s: bad record at offset %" PRIu64
				": %s", s->name, off, why ? why : "not a put");
	if (r.expire_ms && r.expire_ms <= now)
		return 0;
	return sframe_add(f, &r, rec);
}

static int send(snap *sn, sframe *f, kv_repl_fn fn, void *ctx)
{
	int rc = 0;

	if (f->len)
		rc = fn(ctx, 0, sn->pos, f->b, f->len);
	f->len = 0;
	return rc;
}

KV_API int kv_repl_snapshot(kv_t *db, size_t max_bytes, kv_repl_fn fn,
			    void *ctx, uint64_t *position)
{
	snap sn = {0};
	sframe f = {0};
	kv__walk w = {0};
	int rc;

	if (position)
		*position = 0;
	if (!db || !fn || !position)
		return kv__fail(KV_EINVAL, "kv_repl_snapshot: NULL argument");
	if ((rc = check_read(db, db->repl.base)) != 0)
		return rc;
	rc = take_snapshot(db, &sn);
	uint64_t now = kv__now(db);
	for (size_t i = 0; rc == 0 && i < sn.n; i++) {
		rc = add_record(&sn, &w, &f, sn.locs[i], now);
		if (rc == 0 && f.len >= max_bytes)
			rc = send(&sn, &f, fn, ctx);
	}
	if (rc == 0)
		rc = send(&sn, &f, fn, ctx);
	if (rc == 0)
		*position = sn.pos;
	for (uint32_t i = 0; sn.segs && i < sn.nslots; i++)
		kv__seg_unref(sn.segs[i]);
	free(sn.segs);
	free(sn.ends);
	free(sn.locs);
	free(f.b);
	kv__walk_free(&w);
	return rc;
}
