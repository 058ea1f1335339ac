/* commit.c - append, publish, sync. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "commit.h"
#include "read.h"
#include "error.h"
#include "hint.h"
#include "record.h"
#include "repl.h"
#include "writeback.h"

/* Ops of a commit whose table slots are prefetched before the append. */
#define KV__PREFETCH_OPS 16

int kv__prepare_value(kv_t *db, kv__op *op, void **owned)
{
	void *z;
	size_t zlen;
	int rc;

	*owned = NULL;
	if (!(db->opts.flags & KV_COMPRESS) || op->vlen < db->opts.compress_min)
		return 0;
	rc = kv__rec_compress(op->val, op->vlen, &z, &zlen);
	if (rc == KV_ENOMEM)
		return kv__fail(rc, "out of memory compressing a value");
	if (rc == 1)
		return 0; /* incompressible: store it as it is */
	atomic_fetch_add(&db->compressed_values, 1);
	atomic_fetch_add(&db->compress_saved, op->vlen - zlen);
	op->val = z;
	op->vlen = (uint32_t)zlen;
	op->flags = KV__RF_ZLIB;
	*owned = z;
	return 0;
}

uint32_t kv__commit_flags(const kv_t *db)
{
	return db->opts.sync_mode == KV_SYNC_NONE ? 0 : KV__SEG_F_PREALLOC;
}

int kv__commit_ready(kv_t *db, kv__seg *s)
{
	/* A segment that already has records (the log's tail, reopened)
	 * gets none: its entries would not start at the first record. */
	if (s->size == KV__FILE_HDR && (s->wh = calloc(1, sizeof *s->wh)))
		kv__hint_map(s->wh, s->seq);
	if (db->opts.sync_mode == KV_SYNC_NONE)
		return kv__seg_set_buffer(s, KV__NONE_BUFFER);
	/* Only in a segment whose header says so, or a crash would leave
	 * zeros that the next open takes for a torn write. */
	if (s->flags & KV__SEG_F_PREALLOC) {
		s->prealloc = KV__PREALLOC;
		s->prefault = db->opts.sync_mode != KV_SYNC_ALWAYS;
	}
	return 0;
}

/* Seals the active segment (flush, trim, fdatasync) and starts the next
 * one. */
static int roll(kv_t *db)
{
	kv__seg *old = db->active, *s;
	int rc;

	KV__KILLPOINT("roll.begin");
	/* Queued puts point into the active segment, and must be in the
	 * keydir before it is sealed and so open to compaction (pubq.h). */
	if ((rc = kv__settle_wl(db)) != 0 || (rc = kv__seg_flush(old)) != 0)
		return rc;
	/* Trimmed before the next segment exists: only the log's tail may
	 * end in preallocated zeros, which recovery cuts quietly. */
	if (kv__seg_trim(old) || kv__seg_sync(old))
		return kv__poison(db);
	KV__KILLPOINT("roll.sealed");
	/* A number is used up even if the create fails: a half-made file
	 * of that name may be left for the next open to remove. */
	rc = kv__seg_create(db->dir, ++db->max_seq, kv__commit_flags(db),
			    db->opts.file_mode, db->opts.max_file_size, 0, &s);
	KV__KILLPOINT("roll.created");
	if (rc == 0)
		rc = kv__commit_ready(db, s);
	if (rc == 0)
		rc = kv__db_add_seg(db, s);
	if (rc) {
		/* Left in place, the new empty segment would pass for the
		 * log's tail at the next open while writes go on in the old
		 * one, and a torn append there would then read as damage
		 * (test_alloc). If it cannot be removed durably, say so. */
		if (s && (kv__seg_unlink(db->dir, s->seq, 0) ||
			  kv__io_fsync_dir(db->dir)))
			atomic_store(&db->poisoned, 1);
		kv__seg_close(s);
		return rc;
	}
	db->active = s;
	db->repl.sealed = old->seq; /* for the seal hook, after wlock */
	/* Everything before the new segment is durable now. */
	pthread_mutex_lock(&db->sync.mu);
	db->sync.synced = db->appended;
	pthread_mutex_unlock(&db->sync.mu);
	KV__KILLPOINT("roll.done");
	kv__compact_kick(db);
	return 0;
}

/* A run never spans segments, so a batch is whole in one file. */
static int make_room(kv_t *db, uint64_t bytes)
{
	kv__seg *a = db->active;

	if (a->size > KV__FILE_HDR && a->size + bytes > db->opts.max_file_size)
		return roll(db);
	if (a->size + bytes > KV__MAX_SEG_OFF)
		return kv__fail(KV_ETOOBIG, "record does not fit a segment");
	return 0;
}

/* The ordered index is a cache of the keydir's order: on allocation
 * failure drop it, and the next kv_scan rebuilds it. */
static void order_drop(kv_t *db)
{
	kv__order_free(&db->order);
	db->order_built = 0;
}

/* A put of (key, klen, hash) at loc into the keydir. KV_ENOMEM changes
 * nothing, so that a queued put can be tried again. */
static int publish_put(kv_t *db, const void *key, size_t klen, uint64_t h,
		       uint64_t loc, uint32_t vlen, uint32_t flags)
{
	uint32_t id = kv__kd_find(&db->kd, key, klen, h);
	kv__seg *s = db->segs[KV__LOC_SLOT(loc)];

	if (id != UINT32_MAX) {
		kv__db_retire(db, kv__kd_ent(&db->kd, id));
		kv__kd_update(&db->kd, id, loc, vlen, flags);
	} else if (kv__kd_insert(&db->kd, key, klen, h, loc, vlen, flags,
				 &id)) {
		return KV_ENOMEM;
	} else if (db->order_built &&
		   kv__order_insert(&db->order, id, key, klen)) {
		order_drop(db);
	}
	s->live_bytes += kv__rec_size((uint32_t)klen, vlen);
	return 0;
}

/* The keydir entry flags of a put. */
static uint32_t put_flags(const kv__op *op)
{
	return op->expire_ms ? KV__KF_TTL : 0;
}

static int publish_op(kv_t *db, const kv__op *op, uint64_t loc)
{
	return publish_put(db, op->key, op->klen, kv__kd_hash(op->key, op->klen),
			   loc, op->vlen, put_flags(op));
}

static void publish_del(kv_t *db, const kv__op *op, uint64_t loc)
{
	uint64_t h = kv__kd_hash(op->key, op->klen);
	uint32_t id = kv__kd_find(&db->kd, op->key, op->klen, h);

	kv__seg *s = db->segs[KV__LOC_SLOT(loc)];

	s->dead_bytes += kv__rec_size(op->klen, 0);
	s->tomb_bytes += kv__rec_size(op->klen, 0);
	if (id == UINT32_MAX)
		return;
	kv__db_retire(db, kv__kd_ent(&db->kd, id));
	kv__db_forget(db, id, op->key, op->klen, h);
}

/* With wlock and klock (exclusive) held: the queued puts into the keydir,
 * oldest first, their lookups' cache misses overlapped. On KV_ENOMEM the
 * ones not taken stay queued, in order. */
static int publish_queued(kv_t *db)
{
	kv__pubq *q = &db->pubq;
	uint32_t n = atomic_load_explicit(&q->n, memory_order_relaxed), i;
	int rc = 0;

	kv__kd_warm(&db->kd, q->hash, n);
	for (i = 0; i < n && rc == 0; i++) {
		const kv__kent *e = &q->ent[i];

		rc = publish_put(db, e->k.bytes, kv__kent_klen(e), q->hash[i],
				 e->loc, kv__kent_vlen(e), kv__kent_flags(e));
	}
	if (rc) {
		i--; /* the one that failed stays */
		memmove(q->ent, q->ent + i, (n - i) * sizeof *q->ent);
		memmove(q->hash, q->hash + i, (n - i) * sizeof *q->hash);
	}
	atomic_store_explicit(&q->n, n - i, memory_order_relaxed);
	return rc;
}

/* Queues a single put of a short key (pubq.h), publishing the queue when
 * it is full; anything else is published now, after the queue. */
static int publish_locked(kv_t *db, const kv__op *ops, size_t n,
			  uint32_t slot, uint64_t off)
{
	kv__pubq *q = &db->pubq;
	uint32_t qn = atomic_load_explicit(&q->n, memory_order_relaxed);
	int rc = 0;

	if (n == 1 && ops->type == KV__REC_PUT && kv__pubq_fits(ops->klen) &&
	    qn < KV__PUBQ_LEN) {
		kv__kent *e = &q->ent[qn];

		e->loc = KV__LOC(slot, off);
		e->key = kv__kent_pack(ops->vlen, ops->klen, put_flags(ops));
		memcpy(e->k.bytes, ops->key, ops->klen);
		q->hash[qn] = kv__kd_hash(ops->key, ops->klen);
		atomic_store_explicit(&q->n, qn + 1, memory_order_relaxed);
		return qn + 1 == KV__PUBQ_LEN ? publish_queued(db) : 0;
	}
	if (qn && (rc = publish_queued(db)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		uint64_t loc = KV__LOC(slot, off);

		if (ops[i].type == KV__REC_PUT)
			rc |= publish_op(db, &ops[i], loc);
		else
			publish_del(db, &ops[i], loc);
		off += kv__rec_size(ops[i].klen, ops[i].vlen);
	}
	return rc;
}

static int publish(kv_t *db, const kv__op *ops, size_t n, uint32_t slot,
		   uint64_t off)
{
	kv__klock_wr(&db->klock);
	int rc = publish_locked(db, ops, n, slot, off);
	kv__klock_unlock(&db->klock);
	if (rc == 0)
		return 0;
	/* The records are in the log but not in the index: reads would miss
	 * them until reopen, so stop writes now rather than drift further. */
	atomic_store(&db->poisoned, 1);
	return kv__fail(KV_ENOMEM, "out of memory updating the index; the "
			"write is in the log; reopen the store");
}

int kv__settle_wl(kv_t *db)
{
	if (!atomic_load_explicit(&db->pubq.n, memory_order_relaxed))
		return 0;
	kv__klock_wr(&db->klock);
	int rc = publish_queued(db);
	kv__klock_unlock(&db->klock);
	if (rc)
		return kv__fail(KV_ENOMEM, "out of memory updating the index");
	return 0;
}

int kv__settle(kv_t *db)
{
	if (!atomic_load_explicit(&db->pubq.n, memory_order_relaxed))
		return 0;
	pthread_mutex_lock(&db->wlock);
	int rc = kv__settle_wl(db);
	pthread_mutex_unlock(&db->wlock);
	return rc;
}

/* Which position, if any, this write must wait to be durable. */
static uint64_t sync_target(kv_t *db)
{
	switch (db->opts.sync_mode) {
	case KV_SYNC_ALWAYS:
		return db->appended;
	case KV_SYNC_EVERY:
		if (++db->sync.since < db->opts.sync_every)
			return 0;
		db->sync.since = 0;
		return db->appended;
	default:
		return 0;
	}
}

/* With wlock held, which every change of a key's liveness takes: KV_OK
 * when the key has a live value now, and it keeps it until we publish. */
static int still_live(kv_t *db, const kv__op *op)
{
	return kv__live_key(db, op->key, op->klen);
}

/* One commit: the ops, how their records are written, and what follows
 * the append (sync, hooks). */
typedef struct commit {
	const kv__op *ops;
	size_t n;
	int kind;               /* KV__COMMIT_* */
	const uint8_t *raw;     /* replication: the records as they are */
	uint64_t bytes;
	uint8_t *hdrs;          /* local: n encoded headers */
	struct iovec *iov;
	int cnt;
	uint64_t first, last;   /* LSNs written */
	uint64_t wait;          /* position to make durable, or 0 */
	kv__hookq hq;
	int queued;
} commit;

/* Where the run's LSNs come from: a local write takes the next ones, a
 * replicated run brings its own (a stream run exactly the next ones, as
 * checked before the append; snapshot records any). Then the segment's
 * LSN range, which compaction's tombstone floor relies on. */
static void take_lsns(kv_t *db, commit *c)
{
	kv__seg *a = db->active;

	c->first = db->next_lsn;
	c->last = db->next_lsn + c->n - 1;
	if (c->kind == KV__COMMIT_SNAPSHOT) {
		c->first = c->last = c->ops[0].lsn;
		for (size_t i = 1; i < c->n; i++) {
			if (c->ops[i].lsn < c->first)
				c->first = c->ops[i].lsn;
			if (c->ops[i].lsn > c->last)
				c->last = c->ops[i].lsn;
		}
	}
	if (!a->min_lsn || c->first < a->min_lsn)
		a->min_lsn = c->first;
	if (c->last > a->max_lsn)
		a->max_lsn = c->last;
	if (c->last >= db->next_lsn)
		db->next_lsn = c->last + 1;
}

static int write_run(kv_t *db, commit *c)
{
	int broken = 0, rc;

	rc = kv__seg_append(db->active, c->iov, c->cnt, (size_t)c->bytes,
			    &broken);
	if (rc && broken)
		atomic_store(&db->poisoned, 1);
	uint64_t off, len, from, to;
	if (rc == 0 && kv__seg_finished(db->active, &off, &len))
		kv__wb_start(db, db->active, off, len);
	if (rc == 0 && kv__seg_to_prefault(db->active, &from, &to))
		kv__wb_prefault(db, db->active, from, to);
	return rc;
}

/* Refusals that depend on the store's state, checked under wlock. */
static int refuse(kv_t *db, const commit *c)
{
	if (atomic_load(&db->poisoned))
		return kv__fail(KV_EIO, "store refuses writes after an earlier "
				"failure; reopen it");
	if (c->kind == KV__COMMIT_LOCAL && db->repl.replica)
		return kv__fail(KV_EREADONLY, "%s: opened as a replica: it "
				"takes writes only from kv_repl_apply", db->dir);
	if (c->kind == KV__COMMIT_STREAM && c->ops[0].lsn != db->next_lsn)
		return kv__fail(KV_EGAP, "replica expects LSN %" PRIu64
				", not %" PRIu64, db->next_lsn, c->ops[0].lsn);
	if (c->n == 1 && c->ops[0].if_live)
		return still_live(db, c->ops);
	return 0;
}

/* Queues what the hooks must see of this commit: its records once they
 * are written (snapshot records excepted), and the segment its rollover
 * sealed even if the write then failed. */
static void queue_hooks(kv_t *db, commit *c, int written)
{
	int records = written && c->kind != KV__COMMIT_SNAPSHOT &&
		      db->repl.hooks.commit;

	uint64_t sealed = db->repl.hooks.seal ? db->repl.sealed : 0;

	if (!records && !sealed)
		return;
	c->hq = (kv__hookq){ .sealed = sealed, .iov = c->iov, .cnt = c->cnt,
			     .bytes = (size_t)c->bytes };
	if (records) {
		c->hq.first = c->first;
		c->hq.last = c->last;
	}
	kv__hook_enqueue(db, &c->hq);
	c->queued = 1;
}

/* Where a write becomes part of the position a replica may have (and
 * kv_repl_position reports): in ALWAYS after the fdatasync (run_commit),
 * in the other modes once the kernel has it. NONE buffers in the process,
 * so there kv_repl_read flushes first and moves the position itself; but
 * a replica's position is what it applied, buffered or not (a crash that
 * loses the buffer reopens it at a lower position). */
static int acks_at_append(const kv_t *db, const commit *c)
{
	switch (db->opts.sync_mode) {
	case KV_SYNC_ALWAYS:
		return 0;
	case KV_SYNC_NONE:
		return c->kind == KV__COMMIT_STREAM;
	default:
		return 1;
	}
}

/* Starts loading the filter blocks and table slots publish will search,
 * so that their cache misses overlap the append (and each other) instead
 * of following it. Only their addresses are read: the table and filter
 * move only under wlock, which we hold; their contents may change under
 * klock, which we do not. The filter block too: kvbench fillrandom, 10
 * alternating pairs, mean 2,439 against 2,391 k/s, 7 of 10 faster. */
static void prefetch_slots(kv_t *db, const commit *c)
{
	for (size_t i = 0; i < c->n && i < KV__PREFETCH_OPS; i++)
		kv__kd_prefetch_find(&db->kd,
				     kv__kd_hash(c->ops[i].key, c->ops[i].klen));
}

/* The record of op i of c, before its LSNs are taken (take_lsns): a local
 * commit takes the next ones, a replicated one brings its own. */
static kv__rec rec_of(const kv_t *db, const commit *c, size_t i)
{
	const kv__op *op = &c->ops[i];

	return (kv__rec){
		.type = op->type,
		.flags = op->flags,
		.klen = (uint16_t)op->klen,
		.vlen = op->vlen,
		.batch_left = (uint32_t)(c->n - 1 - i),
		.lsn = c->kind == KV__COMMIT_LOCAL ? db->next_lsn + i : op->lsn,
		.expire_ms = op->expire_ms,
	};
}

/* Encodes a local commit's ops into headers and iovecs: header, key,
 * value each. */
static void encode(const kv_t *db, commit *c)
{
	c->cnt = 0;
	for (size_t i = 0; i < c->n; i++) {
		const kv__op *op = &c->ops[i];
		kv__rec r = rec_of(db, c, i);
		uint8_t *h = c->hdrs + i * KV__REC_HDR;

		kv__rec_encode(&r, h, op->key, op->val);
		c->iov[c->cnt++] = (struct iovec){ h, KV__REC_HDR };
		c->iov[c->cnt++] = (struct iovec){ (void *)op->key, op->klen };
		if (op->vlen)
			c->iov[c->cnt++] = (struct iovec){ (void *)op->val,
							   op->vlen };
	}
}

/* Adds the run just appended at off to the active segment's hint entries
 * (segment.h, wh): about 7 ns a record, against reading the whole
 * segment back and checking every record after the seal (40 ms for 64
 * MiB), which a kill -9 soon after the seal could cut short, leaving the
 * next open to read the segment instead (kvbench reopen-crash). The
 * records are the ones just encoded, sound by construction. */
static void hint_run(kv_t *db, const commit *c, uint64_t off)
{
	kv__hint_buf *h = db->active->wh;

	for (size_t i = 0; h && !h->failed && i < c->n; i++) {
		kv__rec r = rec_of(db, c, i);

		kv__hint_add(h, &r, off, c->ops[i].key);
		off += kv__rec_size(r.klen, r.vlen);
	}
}

static int append_locked(kv_t *db, commit *c)
{
	int rc;

	prefetch_slots(db, c);
	/* Encoded before refuse, so that the misses just prefetched overlap
	 * the encoding and CRC instead of stalling a delete's liveness
	 * check at once: deleterandom after a reopen 1,592-1,732 k/s against
	 * 1,557-1,638, fillrandom 2,530-2,624 against 2,004-2,581 (5
	 * alternating pairs, the new one faster in each). */
	if (c->raw) {
		c->iov[0] = (struct iovec){ (void *)c->raw, (size_t)c->bytes };
		c->cnt = 1;
	} else {
		encode(db, c);
	}
	if ((rc = refuse(db, c)) != 0)
		return rc;
	db->repl.sealed = 0;
	rc = make_room(db, c->bytes);
	uint64_t off = db->active->size;
	if (rc == 0)
		rc = write_run(db, c);
	if (rc == 0)
		hint_run(db, c, off);
	else if (db->active->wh)
		db->active->wh->failed = 1; /* what was written is unknown */
	if (rc == 0) {
		take_lsns(db, c);
		db->appended += c->bytes;
	}
	if (rc == 0 && c->kind != KV__COMMIT_SNAPSHOT) {
		c->wait = sync_target(db);
		if (acks_at_append(db, c))
			kv__repl_ack(db, c->last);
	}
	if (kv__repl_hooked(db))
		queue_hooks(db, c, rc == 0);
	if (rc)
		return rc;
	return publish(db, c->ops, c->n, db->active->slot, off);
}

static int run_commit(kv_t *db, commit *c)
{
	int rc;

	if (kv__hook_busy(db))
		return kv__fail(KV_EBUSY, "a write from inside this store's "
				"replication hook would wait for itself");
	for (size_t i = 0; i < c->n; i++)
		c->bytes += kv__rec_size(c->ops[i].klen, c->ops[i].vlen);
	pthread_mutex_lock(&db->wlock);
	rc = append_locked(db, c);
	pthread_mutex_unlock(&db->wlock);
	if (rc == 0 && c->wait && (rc = kv__sync_to(db, c->wait)) == 0)
		kv__repl_ack(db, c->last);
	if (c->queued) {
		int h = kv__hook_deliver(db, &c->hq, rc != 0);
		if (h && rc == 0 && (db->repl.hooks.flags & KV_HOOK_STRICT))
			rc = kv__fail(KV_EHOOK, "the replication hook failed "
				      "(%d); the write is committed in this "
				      "store", h);
	}
	return rc;
}

int kv__commit(kv_t *db, const kv__op *ops, size_t n)
{
	uint8_t hdr1[KV__REC_HDR];
	struct iovec iov1[3];
	commit c = { .ops = ops, .n = n, .kind = KV__COMMIT_LOCAL,
		     .hdrs = hdr1, .iov = iov1 };
	int rc;

	if (n > 1) {
		c.hdrs = reallocarray(NULL, n, KV__REC_HDR);
		c.iov = reallocarray(NULL, n, 3 * sizeof *c.iov);
		if (!c.hdrs || !c.iov) {
			rc = kv__fail(KV_ENOMEM, "out of memory for a batch");
			goto out;
		}
	}
	rc = run_commit(db, &c);
out:
	if (n > 1) {
		free(c.hdrs);
		free(c.iov);
	}
	return rc;
}

int kv__commit_raw(kv_t *db, const kv__op *ops, size_t n,
		   const uint8_t *raw, int kind)
{
	struct iovec iov;
	commit c = { .ops = ops, .n = n, .kind = kind, .raw = raw,
		     .iov = &iov };

	return run_commit(db, &c);
}
