/*
 * repl.c - replication: the hook queue (see repl.h), and the replica side:
 * kv_repl_apply, kv_repl_position and the snapshot begin/end pair, with
 * the replica state file that makes a snapshot's progress durable.
 *
 * A replica's position is the LSN of its last applied record. Records keep
 * the primary's LSNs, so recovery finds the position as the highest LSN in
 * the log, like any store's; only a snapshot needs more: its records are
 * the live ones and the newest may be older than the snapshot's position
 * (the last writes may have been deletes), and a crash in the middle must
 * not pass for a replica that is up to date. Hence "REPL" (kv-format(5)):
 * written durably before the first snapshot record ("in progress") and
 * after the last one is durable ("applied at position P").
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commit.h"
#include "error.h"
#include "io.h"
#include "le.h"
#include "read.h"
#include "record.h"
#include "repl.h"

#define REPL_NAME "REPL"
#define REPL_SIZE (KV__FILE_HDR + 20u)
#define REPL_IN_PROGRESS 1u
#define REPL_APPLIED 2u
/* LSNs above this are refused from a peer: far beyond any real store, and
 * last + 1 can never wrap. */
#define MAX_LSN (UINT64_C(1) << 62)

/* ---- handle setup ---- */

int kv__repl_check(const kv_options *opts)
{
	const struct kv_repl_hooks *h = opts->repl;

	if (!h)
		return 0;
	if (h->size != sizeof *h)
		return kv__fail(KV_EINVAL, "kv_repl_hooks.size is %" PRIu32
				", expected %zu", h->size, sizeof *h);
	if ((h->flags & ~KV_HOOK_STRICT) || h->reserved[0] || h->reserved[1])
		return kv__fail(KV_EINVAL, "kv_repl_hooks: unknown flags or "
				"reserved fields not 0");
	/* The hook must never see a write that the store itself could
	 * lose in a process crash; NONE keeps writes in the process. */
	if (h->commit && opts->sync_mode == KV_SYNC_NONE)
		return kv__fail(KV_EINVAL, "a commit hook needs writes to reach "
				"the kernel: not with KV_SYNC_NONE");
	return 0;
}

void kv__repl_init(kv_t *db)
{
	kv__repl *r = &db->repl;

	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	pthread_mutex_init(&r->apply, NULL);
	r->seal_hold = UINT64_MAX;
	atomic_store(&r->retain, UINT64_MAX);
	r->replica = !!(db->opts.flags & KV_REPLICA);
	if (db->opts.repl)
		r->hooks = *db->opts.repl;
	db->opts.repl = NULL; /* the caller's struct need not outlive open */
}

void kv__repl_destroy(kv_t *db)
{
	kv__repl *r = &db->repl;

	free(r->buf);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->apply);
}

void kv__repl_ack(kv_t *db, uint64_t lsn)
{
	uint64_t cur = atomic_load(&db->repl.ack);

	while (cur < lsn && !atomic_compare_exchange_weak(&db->repl.ack, &cur,
							  lsn))
		;
}

/* ---- the hook queue ---- */

/* The stores whose hooks the calling thread is running, innermost first:
 * a hook may apply to another store, whose hook may apply to a third (a
 * chain of replicas in one process), and a write back to any store of
 * the chain would wait for itself. */
typedef struct hook_frame {
	const kv_t *db;
	const struct hook_frame *up;
} hook_frame;

static _Thread_local const hook_frame *in_hook;

int kv__hook_busy(const kv_t *db)
{
	for (const hook_frame *f = in_hook; f; f = f->up)
		if (f->db == db)
			return 1;
	return 0;
}

/* With repl.mu held: the oldest segment whose seal hook has not returned
 * is the first queued one (rollovers queue in order). */
static void update_hold(kv__repl *r)
{
	r->seal_hold = UINT64_MAX;
	for (kv__hookq *e = r->head; e; e = e->next)
		if (e->sealed) {
			r->seal_hold = e->sealed;
			return;
		}
}

uint64_t kv__repl_seal_hold(kv_t *db)
{
	pthread_mutex_lock(&db->repl.mu);
	uint64_t hold = db->repl.seal_hold;
	pthread_mutex_unlock(&db->repl.mu);
	return hold;
}

int kv__repl_keeps(kv_t *db, const kv__seg *s, uint64_t hold)
{
	/* A log segment is history kv_repl_read serves; a compaction output
	 * is not, so retention never keeps one. */
	return s->seq >= hold ||
	       (!(s->flags & KV__SEG_F_COMPACTED) &&
		s->max_lsn > atomic_load(&db->repl.retain));
}

KV_API int kv_repl_retain(kv_t *db, uint64_t lsn)
{
	if (!db)
		return kv__fail(KV_EINVAL, "kv_repl_retain: store handle is "
				"NULL");
	atomic_store(&db->repl.retain, lsn);
	return 0;
}

void kv__hook_enqueue(kv_t *db, kv__hookq *e)
{
	kv__repl *r = &db->repl;

	pthread_mutex_lock(&r->mu);
	e->next = NULL;
	if (r->tail)
		r->tail->next = e;
	else
		r->head = e;
	r->tail = e;
	if (e->sealed && r->seal_hold == UINT64_MAX)
		r->seal_hold = e->sealed;
	pthread_mutex_unlock(&r->mu);
}

/* The bytes of e's records in one buffer: as they are when the commit
 * wrote one iovec (replication), else copied into the deliverer's buffer
 * (only the deliverer uses it). NULL when out of memory. */
static const void *frame_of(kv__repl *r, const kv__hookq *e)
{
	if (e->cnt == 1)
		return e->iov[0].iov_base;
	if (e->bytes > r->cap) {
		uint8_t *b = realloc(r->buf, e->bytes);
		if (!b)
			return NULL;
		r->buf = b;
		r->cap = e->bytes;
	}
	size_t at = 0;
	for (int i = 0; i < e->cnt; i++) {
		memcpy(r->buf + at, e->iov[i].iov_base, e->iov[i].iov_len);
		at += e->iov[i].iov_len;
	}
	return r->buf;
}

static int seal_hook(kv_t *db, uint64_t seq)
{
	char path[PATH_MAX];

	kv__seg_path(path, db->dir, seq, KV__SEG_SUFFIX);
	return db->repl.hooks.seal(db->repl.hooks.ctx, seq, path);
}

/* Runs the hooks for e, with no lock held; non-zero if one failed. */
static int run_hooks(kv_t *db, const kv__hookq *e)
{
	kv__repl *r = &db->repl;
	hook_frame me = { db, in_hook };
	int bad = 0;

	in_hook = &me;
	if (e->sealed && r->hooks.seal) {
		atomic_fetch_add(&r->calls, 1);
		bad |= seal_hook(db, e->sealed) != 0;
	}
	if (e->first && !e->failed) {
		const void *b = frame_of(r, e);
		atomic_fetch_add(&r->calls, 1);
		bad |= !b || r->hooks.commit(r->hooks.ctx, e->first, e->last,
					     b, e->bytes) != 0;
	}
	in_hook = me.up;
	if (bad)
		atomic_fetch_add(&r->errors, 1);
	return bad;
}

int kv__hook_deliver(kv_t *db, kv__hookq *e, int failed)
{
	kv__repl *r = &db->repl;

	pthread_mutex_lock(&r->mu);
	e->ready = 1;
	e->failed = failed;
	while (!e->done) {
		/* e is queued until done, so head is never NULL here; the
		 * test says so to the analyzer too. */
		if (r->delivering || !r->head || !r->head->ready) {
			pthread_cond_wait(&r->cv, &r->mu);
			continue;
		}
		/* Deliver from the head up to our own entry; those after it
		 * belong to writers who will come for them. */
		r->delivering = 1;
		while (!e->done && r->head && r->head->ready) {
			kv__hookq *h = r->head;
			pthread_mutex_unlock(&r->mu);
			int rc = run_hooks(db, h);
			pthread_mutex_lock(&r->mu);
			r->head = h->next;
			if (!r->head)
				r->tail = NULL;
			update_hold(r);
			h->rc = rc;
			h->done = 1; /* its writer may return (and h vanish) */
		}
		r->delivering = 0;
		pthread_cond_broadcast(&r->cv);
	}
	int rc = e->rc;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* ---- the replica state file ---- */

static void repl_path(const kv_t *db, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", db->dir, REPL_NAME);
}

static int write_state(kv_t *db, uint64_t state, uint64_t pos)
{
	char path[PATH_MAX];
	uint8_t b[REPL_SIZE] = {0};

	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): binary magic */
	memcpy(b, KV__SEG_MAGIC, 8);
	kv__put32(b + 8, KV__FORMAT_VERSION);
	kv__put32(b + 12, KV__KIND_REPL);
	kv__put32(b + 28, kv__rec_crc_update(0, b, 28));
	kv__put64(b + KV__FILE_HDR, state);
	kv__put64(b + KV__FILE_HDR + 8, pos);
	kv__put32(b + KV__FILE_HDR + 16,
		  kv__rec_crc_update(0, b, KV__FILE_HDR + 16));
	repl_path(db, path, sizeof path);
	if (kv__io_write_file(path, b, sizeof b, db->opts.file_mode) ||
	    kv__io_fsync_dir(db->dir))
		return kv__fail_sys("%s: write", path);
	return 0;
}

static int bad_state(kv_t *db, const char *path)
{
	if (!(db->opts.flags & KV_SALVAGE))
		return kv__fail(KV_ECORRUPT, "%s: offset 0: bad replica state "
				"file", path);
	/* Salvage opens the data; as a replica it needs a new snapshot. */
	kv__log(db, KV_LOG_WARN, "%s: bad replica state file; the replica "
		"must be rebuilt from a snapshot", path);
	db->repl.broken = 1;
	return 0;
}

int kv__repl_load(kv_t *db)
{
	char path[PATH_MAX];
	uint8_t *b;
	size_t len;

	repl_path(db, path, sizeof path);
	if (kv__io_read_file(path, 4096, &b, &len))
		return errno == ENOENT ? 0 : kv__fail_sys("%s: read", path);
	uint64_t state = len == REPL_SIZE ? kv__get64(b + KV__FILE_HDR) : 0;
	int ok = len == REPL_SIZE && !memcmp(b, KV__SEG_MAGIC, 8) &&
		 kv__get32(b + 12) == KV__KIND_REPL &&
		 kv__get32(b + 28) == kv__rec_crc_update(0, b, 28) &&
		 kv__get32(b + KV__FILE_HDR + 16) ==
			 kv__rec_crc_update(0, b, KV__FILE_HDR + 16) &&
		 (state == REPL_IN_PROGRESS || state == REPL_APPLIED);
	if (ok && kv__get32(b + 8) != KV__FORMAT_VERSION) {
		free(b);
		return kv__fail(KV_EVERSION, "%s: unknown format version", path);
	}
	if (ok && state == REPL_APPLIED)
		db->repl.base = kv__get64(b + KV__FILE_HDR + 8);
	if (ok && state == REPL_IN_PROGRESS) {
		db->repl.broken = 1;
		kv__log(db, KV_LOG_WARN, "%s: a snapshot was interrupted; the "
			"replica must be rebuilt from a snapshot", path);
	}
	free(b);
	return ok ? 0 : bad_state(db, path);
}

/* ---- frames ---- */

/* A frame parsed and checked: one op per record, in order. */
typedef struct frame {
	kv__op *ops;
	size_t n, cap;
	const uint8_t *bytes;
	size_t len;
} frame;

static int frame_push(frame *f, const kv__op *op)
{
	if (f->n == f->cap) {
		size_t c = f->cap ? f->cap * 2 : 64;
		kv__op *v = reallocarray(f->ops, c, sizeof *v);
		if (!v)
			return kv__fail(KV_ENOMEM, "out of memory reading a frame");
		f->ops = v;
		f->cap = c;
	}
	f->ops[f->n++] = *op;
	return 0;
}

static const uint8_t *rec_start(const kv__op *op)
{
	return (const uint8_t *)op->key - KV__REC_HDR;
}

/* Checks one record at off: bounds before anything else, then header,
 * CRC, the store's limits. */
static int check_record(kv_t *db, const frame *f, size_t off, kv__rec *r)
{
	const uint8_t *p = f->bytes + off;
	const char *why;
	size_t raw;

	if (f->len - off < KV__REC_HDR)
		return kv__fail(KV_ECORRUPT, "frame cut short: %zu bytes at "
				"offset %zu, a record header has %u",
				f->len - off, off, KV__REC_HDR);
	if ((why = kv__rec_decode(p, r)) != NULL)
		return kv__fail(KV_ECORRUPT, "frame offset %zu: %s", off, why);
	if (kv__rec_size(r->klen, r->vlen) > f->len - off)
		return kv__fail(KV_ECORRUPT, "frame offset %zu: record runs "
				"past the frame's end (cut short)", off);
	if (!kv__rec_crc_ok(r, p))
		return kv__fail(KV_ECORRUPT, "frame offset %zu: checksum "
				"mismatch", off);
	if (r->lsn >= MAX_LSN)
		return kv__fail(KV_ECORRUPT, "frame offset %zu: LSN %" PRIu64
				" out of range", off, r->lsn);
	if (r->vlen > db->opts.max_value_size)
		return kv__fail(KV_ETOOBIG, "frame offset %zu: value of %" PRIu32
				" bytes over max_value_size", off, r->vlen);
	if ((r->flags & KV__RF_ZLIB) &&
	    kv__rec_raw_len(p + KV__REC_HDR + r->klen, r->vlen, &raw))
		return kv__fail(KV_ECORRUPT, "frame offset %zu: bad compressed "
				"value length", off);
	return 0;
}

/* How record r follows the previous one (prev, with `left` records of its
 * batch still to come). Stream frames hold consecutive LSNs; snapshot
 * frames hold single live records in any order. */
static int check_order(const kv__rec *r, const kv__rec *prev, uint32_t left,
		       int snap, size_t off, uint64_t expect)
{
	if (left && (r->batch_left != left - 1 || r->lsn != prev->lsn + 1))
		return kv__fail(KV_ECORRUPT, "frame offset %zu: broken batch "
				"sequence", off);
	if (snap && (r->batch_left || r->type != KV__REC_PUT))
		return kv__fail(KV_ECORRUPT, "frame offset %zu: a snapshot "
				"holds single live records only", off);
	if (snap || left || !prev)
		return 0;
	if (r->lsn <= prev->lsn)
		return kv__fail(KV_ECORRUPT, "frame offset %zu: LSN %" PRIu64
				" after %" PRIu64, off, r->lsn, prev->lsn);
	if (r->lsn != prev->lsn + 1)
		return kv__fail(KV_EGAP, "frame skips from LSN %" PRIu64 " to %"
				PRIu64 "; the replica expects LSN %" PRIu64,
				prev->lsn, r->lsn, expect);
	return 0;
}

/* Parses and checks a whole frame before anything is applied. */
static int parse(kv_t *db, frame *f, int snap, uint64_t expect)
{
	kv__rec r, prev;
	uint32_t left = 0;
	int rc;

	for (size_t off = 0; off < f->len;) {
		if ((rc = check_record(db, f, off, &r)) != 0 ||
		    (rc = check_order(&r, f->n ? &prev : NULL, left, snap, off,
				      expect)) != 0)
			return rc;
		const uint8_t *k = f->bytes + off + KV__REC_HDR;
		kv__op op = { .type = r.type, .flags = r.flags,
			      .klen = r.klen, .vlen = r.vlen,
			      .expire_ms = r.expire_ms, .key = k,
			      .val = k + r.klen, .lsn = r.lsn };
		if ((rc = frame_push(f, &op)) != 0)
			return rc;
		left = r.batch_left;
		prev = r;
		off += (size_t)kv__rec_size(r.klen, r.vlen);
	}
	if (left)
		return kv__fail(KV_ECORRUPT, "frame ends inside a batch (%" PRIu32
				" records missing): cut short", left);
	return 0;
}

static uint64_t next_lsn(kv_t *db)
{
	pthread_mutex_lock(&db->wlock);
	uint64_t n = db->next_lsn;
	pthread_mutex_unlock(&db->wlock);
	return n;
}

/* A stream frame holds consecutive LSNs: skip what the replica has, refuse
 * a gap, write the rest as it is. */
static int apply_stream(kv_t *db, frame *f, uint64_t expect)
{
	size_t i = 0;

	while (i < f->n && f->ops[i].lsn < expect)
		i++;
	if (i == f->n)
		return 0; /* all duplicates */
	if (f->ops[i].lsn > expect)
		return kv__fail(KV_EGAP, "replica is at LSN %" PRIu64 " and "
				"expects LSN %" PRIu64 "; the frame starts at "
				"LSN %" PRIu64, expect - 1, expect, f->ops[i].lsn);
	/* The record after the position must start a run: the replica's
	 * position never falls inside a batch. */
	if (i > 0 && kv__get32(rec_start(&f->ops[i - 1]) + 12) != 0)
		return kv__fail(KV_ECORRUPT, "a batch in the frame straddles "
				"the replica's position, LSN %" PRIu64,
				expect - 1);
	return kv__commit_raw(db, f->ops + i, f->n - i, rec_start(&f->ops[i]),
			      KV__COMMIT_STREAM);
}

/* The LSN of the record the replica holds for key, or 0. */
static uint64_t held_lsn(kv_t *db, const kv__op *op)
{
	kv__fetch fe;
	kv__rec r;
	uint64_t lsn = 0;

	if (kv__fetch_key(db, op->key, op->klen, &fe) != 0)
		return 0;
	if (!kv__rec_decode(fe.rec, &r))
		lsn = r.lsn;
	kv__fetch_release(&fe);
	return lsn;
}

/* Snapshot records come in any order, and again after a resend: each is
 * written unless the replica holds the key at that LSN or later. */
static int apply_snapshot(kv_t *db, frame *f)
{
	for (size_t i = 0; i < f->n; i++) {
		const kv__op *op = &f->ops[i];
		int rc;

		if (held_lsn(db, op) >= op->lsn)
			continue;
		if ((rc = kv__commit_raw(db, op, 1, rec_start(op),
					 KV__COMMIT_SNAPSHOT)) != 0)
			return rc;
	}
	return 0;
}

static int check_replica(kv_t *db, const char *fn)
{
	if (!db)
		return kv__fail(KV_EINVAL, "%s: store handle is NULL", fn);
	if (db->rdonly)
		return kv__fail(KV_EREADONLY, "%s: opened read-only", db->dir);
	if (!db->repl.replica)
		return kv__fail(KV_EINVAL, "%s: %s was not opened with "
				"KV_REPLICA", fn, db->dir);
	if (kv__hook_busy(db))
		return kv__fail(KV_EBUSY, "%s: called from inside this store's "
				"replication hook", fn);
	return 0;
}

static int interrupted(const kv_t *db)
{
	return kv__fail(KV_ESNAPSHOT, "%s: a snapshot was interrupted; remove "
			"the store and rebuild the replica from a new snapshot",
			db->dir);
}

KV_API int kv_repl_apply(kv_t *db, const void *bytes, size_t len)
{
	frame f = { .bytes = bytes, .len = len };
	int rc = check_replica(db, "kv_repl_apply");

	if (rc)
		return rc;
	if (!bytes && len)
		return kv__fail(KV_EINVAL, "kv_repl_apply: bytes is NULL");
	pthread_mutex_lock(&db->repl.apply);
	int snap = db->repl.snap;
	uint64_t expect = next_lsn(db);
	if (db->repl.broken && !snap)
		rc = interrupted(db);
	else if ((rc = parse(db, &f, snap, expect)) == 0 && f.n)
		rc = snap ? apply_snapshot(db, &f) : apply_stream(db, &f, expect);
	pthread_mutex_unlock(&db->repl.apply);
	free(f.ops);
	return rc;
}

KV_API int kv_repl_position(kv_t *db, uint64_t *position)
{
	if (position)
		*position = 0;
	if (!db || !position)
		return kv__fail(KV_EINVAL, "kv_repl_position: NULL argument");
	if (db->repl.snap)
		return kv__fail(KV_ESNAPSHOT, "%s: a snapshot is being applied",
				db->dir);
	if (db->repl.broken)
		return interrupted(db);
	*position = atomic_load(&db->repl.ack);
	return 0;
}

/* ---- snapshots ---- */

KV_API int kv_repl_snapshot_begin(kv_t *db)
{
	int rc = check_replica(db, "kv_repl_snapshot_begin");

	if (rc)
		return rc;
	pthread_mutex_lock(&db->repl.apply);
	uint64_t next = next_lsn(db);
	if (db->repl.snap)
		rc = kv__fail(KV_EINVAL, "%s: a snapshot is already being "
			      "applied", db->dir);
	else if (next != 1 || db->repl.base)
		rc = kv__fail(KV_EINVAL, "%s: holds records up to LSN %" PRIu64
			      "; a snapshot goes into an empty replica: "
			      "remove the store and create it again", db->dir,
			      next > db->repl.base ? next - 1 : db->repl.base);
	else if ((rc = write_state(db, REPL_IN_PROGRESS, 0)) == 0)
		db->repl.snap = 1;
	pthread_mutex_unlock(&db->repl.apply);
	return rc;
}

/* Every record applied so far, durable: the rolled segments were synced
 * when sealed, the active one is synced here. */
static int sync_all(kv_t *db)
{
	pthread_mutex_lock(&db->wlock);
	uint64_t pos = db->appended;
	pthread_mutex_unlock(&db->wlock);
	return kv__sync_to(db, pos);
}

KV_API int kv_repl_snapshot_end(kv_t *db, uint64_t position)
{
	int rc = check_replica(db, "kv_repl_snapshot_end");

	if (rc)
		return rc;
	pthread_mutex_lock(&db->repl.apply);
	uint64_t next = next_lsn(db);
	if (!db->repl.snap)
		rc = kv__fail(KV_EINVAL, "%s: no snapshot is being applied",
			      db->dir);
	else if (next - 1 > position || position >= MAX_LSN)
		rc = kv__fail(KV_EINVAL, "%s: the snapshot holds LSN %" PRIu64
			      ", past its position %" PRIu64, db->dir, next - 1,
			      position);
	else if ((rc = sync_all(db)) == 0 &&
		 (rc = write_state(db, REPL_APPLIED, position)) == 0) {
		pthread_mutex_lock(&db->wlock);
		db->next_lsn = position + 1;
		pthread_mutex_unlock(&db->wlock);
		db->repl.base = position;
		db->repl.snap = 0;
		db->repl.broken = 0;
		kv__repl_ack(db, position);
	}
	pthread_mutex_unlock(&db->repl.apply);
	return rc;
}
