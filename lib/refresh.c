/*
 * refresh.c - kv_refresh: a read-only handle catches up with the writer of
 * its directory (another process, or another handle of this one).
 *
 * Fast path: the directory holds the segments the handle has, some log
 * segments grown and maybe new log segments after them. Only the new
 * bytes are read (from the handle's end of each grown segment; a new
 * segment from its hint if it has one, else scanned) and indexed with
 * open's checks and batch rule (recover.c, kv__recover_follow). Every
 * record indexed so must be newer than all the handle has; a run cut short
 * at the end of the newest log segment is a write in progress, left as it
 * is (read-only) and picked up by the next refresh.
 *
 * Slow path: anything else (a segment gone: compaction replaced it; a new
 * compaction output; an obsolete list; records not newer than the index):
 * a fresh state is recovered as an open does, read-only, in a handle of
 * its own, and swapped into this one. A listed file can vanish before the
 * open reaches it (a compaction raced the listing), so the directory is
 * listed before and after; a change means try again, a few times.
 *
 * Locks: wlock for the whole call, so refreshes are one at a time and
 * kv_digest, kv_stats and kv_repl_read (which hold it) see one moment;
 * klock exclusive while the index and the segment table change: for each
 * run (a record or a whole batch) the fast path applies, for a hint, for
 * the slow path's swap. Readers in other threads wait that long, and see
 * the state before or after it, never part of a batch. Old segments stay mapped and open
 * until their last reader lets go (segment references), even when the
 * writer has unlinked them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lock.h"
#include "db.h"
#include "error.h"
#include "io.h"
#include "repl.h"

/* Rebuilds tried while a compaction keeps changing the directory; the
 * pauses between them double from 1 ms (about 1 s in all). */
#define REBUILD_TRIES 10

/* One segment the fast path reads: grown, or new. */
typedef struct step {
	kv__seg *s;
	uint64_t end;        /* the file's size when looked at */
	int fresh;           /* new: not yet in the segment table */
	int hint;            /* a hint file is listed for it */
} step;

typedef struct plan {
	kv__listing l;
	step *v;
	size_t n;
	uint64_t newest;     /* the newest log segment's number */
} plan;

static kv__seg *find_seg(const kv_t *db, uint64_t seq)
{
	for (uint32_t i = 0; i < db->nslots; i++)
		if (db->segs[i] && db->segs[i]->seq == seq)
			return db->segs[i];
	return NULL;
}

static void plan_free(plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->v[i].fresh)
			kv__seg_close(p->v[i].s);
	free(p->v);
	kv__listing_free(&p->l);
}

static int plan_add(plan *p, kv__seg *s, uint64_t end, int fresh)
{
	step *v = reallocarray(p->v, p->n + 1, sizeof *v);

	if (!v) {
		if (fresh)
			kv__seg_close(s);
		return kv__fail(KV_ENOMEM, "out of memory refreshing");
	}
	p->v = v;
	p->v[p->n++] = (step){ s, end, fresh,
			       kv__listed(p->l.hints, p->l.nhints, s->seq) };
	if (!(s->flags & KV__SEG_F_COMPACTED) && s->seq > p->newest)
		p->newest = s->seq;
	return 0;
}

/* The segments the handle has: each still listed, log segments grown or
 * not (compaction outputs never change). */
static int plan_known(kv_t *db, plan *p, uint64_t *top)
{
	for (uint32_t i = 0; i < db->nslots; i++) {
		kv__seg *s = db->segs[i];
		uint64_t size;

		if (!s)
			continue;
		if (!kv__listed(p->l.segs, p->l.nsegs, s->seq))
			return KV__STALE; /* a compaction removed it */
		if (s->seq > *top)
			*top = s->seq;
		if (s->flags & KV__SEG_F_COMPACTED)
			continue;
		if (s->seq > p->newest)
			p->newest = s->seq;
		if (kv__io.fstat_size(s->fd, &size))
			return kv__fail_sys("%s: fstat", s->name);
		if (size < s->size)
			return KV__STALE; /* records the index has are gone */
		if (size > s->size) {
			int rc = plan_add(p, s, size, 0);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Listed segments the handle does not have: new log segments only, after
 * all it has. */
static int plan_new(kv_t *db, plan *p, uint64_t top)
{
	for (size_t i = 0; i < p->l.nsegs; i++) {
		uint64_t seq = p->l.segs[i];
		kv__seg *s;
		int rc;

		if (find_seg(db, seq))
			continue;
		if (seq < top)
			return KV__STALE;
		if ((rc = kv__seg_open(db->dir, seq, 1, 0, &s)) != 0)
			return errno == ENOENT ? KV__STALE : rc;
		if (s->flags & KV__SEG_F_COMPACTED) {
			kv__seg_close(s);
			return KV__STALE; /* a compaction output */
		}
		if ((rc = plan_add(p, s, s->size, 1)) != 0)
			return rc;
	}
	return 0;
}

static int by_seq(const void *a, const void *b)
{
	const step *x = a, *y = b;

	return (x->s->seq > y->s->seq) - (x->s->seq < y->s->seq);
}

static int make_plan(kv_t *db, plan *p)
{
	uint64_t top = 0;
	int rc;

	memset(p, 0, sizeof *p);
	if ((rc = kv__list_dir(db, &p->l)) != 0)
		return rc;
	if (p->l.nobs)
		return KV__STALE; /* a compaction is deleting its inputs */
	if ((rc = plan_known(db, p, &top)) != 0 ||
	    (rc = plan_new(db, p, top)) != 0)
		return rc;
	if (p->n > 1)
		qsort(p->v, p->n, sizeof *p->v, by_seq);
	return 0;
}

/* A new segment: into the table, then from its hint when it is sealed
 * (not the newest), else scanned from its header on like a grown one.
 * Its `flushed` is kept at what is indexed, so nothing is read through
 * its mapping first. 1 when the hint did it. */
static int add_fresh(kv_t *db, step *st, int newest, int *rc)
{
	kv__seg *s = st->s;
	int done = 0;

	kv__klock_wr(&db->klock);
	if ((*rc = kv__db_add_seg_locked(db, s)) == 0) {
		st->fresh = 0; /* the table owns it now */
		done = st->hint && !newest &&
		       kv__recover_follow_hint(db, s, rc);
		if (!done) {
			s->size = KV__FILE_HDR;
			atomic_store(&s->flushed, KV__FILE_HDR);
		}
	}
	kv__klock_unlock(&db->klock);
	return done || *rc;
}

/* appended and the segment sizes move under wlock, which their readers
 * (kv_stats, kv_repl_read) hold. */
static int take_step(kv_t *db, step *st, int newest)
{
	kv__seg *s = st->s;
	int fresh = st->fresh, stopped = 0, rc = 0;
	uint64_t before = fresh ? 0 : s->size;

	if (!fresh || !add_fresh(db, st, newest, &rc))
		rc = kv__recover_follow(db, s, st->end, &stopped);
	if (!st->fresh) /* in the table */
		db->appended += s->size - before;
	/* Only the writer's current segment may hold a write in progress;
	 * a run cut short in an older one is for an open to judge. */
	if (rc == 0 && stopped && !newest)
		rc = KV__STALE;
	return rc;
}

static int fast_path(kv_t *db)
{
	plan p;
	int rc = make_plan(db, &p);

	for (size_t i = 0; rc == 0 && i < p.n; i++) {
		rc = take_step(db, &p.v[i], p.v[i].s->seq == p.newest);
		/* Failed mid-way, the index may hold part of a run: the next
		 * refresh rebuilds it whole. */
		if (rc && rc != KV__STALE)
			db->refresh_stale = 1;
	}
	if (rc == 0 && p.l.max_seq > db->max_seq)
		db->max_seq = p.l.max_seq;
	plan_free(&p);
	return rc;
}

/* ---- slow path ---- */

static int same_files(const kv__listing *a, const kv__listing *b)
{
	return a->nsegs == b->nsegs && a->nobs == b->nobs &&
	       (!a->nsegs || !memcmp(a->segs, b->segs, a->nsegs * 8)) &&
	       (!a->nobs || !memcmp(a->obs, b->obs, a->nobs * 8));
}

/* One try: *sh recovered from a directory whose segments and obsolete
 * lists were the same before and after (file numbers are never reused, so
 * each was there throughout and the open's own listing saw it: readdir
 * returns exactly once an entry that is neither added nor removed
 * meanwhile). KV__STALE when they changed; with any_success, only when
 * the open failed too (kv_open: an open that succeeded read every file
 * it listed, each a state a crash could leave, as open expects). */
static int build(kv_t *db, kv_t **sh, int any_success)
{
	kv__listing a, b;
	int rc = kv__list_dir(db, &a), rc2;

	*sh = NULL;
	if (rc) {
		kv__listing_free(&a);
		return rc;
	}
	rc = kv__shadow_open(db, sh);
	if (rc == 0 && any_success) {
		kv__listing_free(&a);
		return 0;
	}
	if ((rc2 = kv__list_dir(db, &b)) == 0 && !same_files(&a, &b))
		rc2 = KV__STALE;
	kv__listing_free(&a);
	kv__listing_free(&b);
	if (rc2 && *sh) {
		kv__shadow_free(*sh);
		*sh = NULL;
	}
	return rc2 ? rc2 : rc;
}

#define SWAP(a, b) do { __typeof__(a) t_ = (a); (a) = (b); (b) = t_; } while (0)

/* Under klock exclusive: no reader is inside the index or the segment
 * table, and readers already holding a record keep its segment (a
 * reference) until they let go. The old state goes to sh, to be freed. */
static void swap_in(kv_t *db, kv_t *sh)
{
	kv__klock_wr(&db->klock);
	SWAP(db->kd, sh->kd);
	SWAP(db->segs, sh->segs);
	SWAP(db->nslots, sh->nslots);
	SWAP(db->nsegs, sh->nsegs);
	/* The ordered index is a cache over ids that mean other keys now:
	 * the next kv_scan builds it again. */
	kv__order_free(&db->order);
	db->order_built = 0;
	db->max_seq = sh->max_seq;
	db->next_lsn = sh->next_lsn;
	db->appended = sh->appended;
	db->truncated_bytes = sh->truncated_bytes;
	db->skipped_bytes = sh->skipped_bytes;
	db->skipped_records = sh->skipped_records;
	db->risk_lsn = sh->risk_lsn;
	db->keys_at_risk = sh->keys_at_risk;
	db->hint_segments = sh->hint_segments;
	db->hint_rejected = sh->hint_rejected;
	atomic_store(&db->repl.base, atomic_load(&sh->repl.base));
	atomic_store(&db->repl.broken, atomic_load(&sh->repl.broken));
	atomic_store(&db->repl.ack, db->next_lsn - 1);
	db->refresh_stale = 0;
	kv__klock_unlock(&db->klock);
}

int kv__open_settled(kv_t *db, const char *who, int any_success,
		     kv_t **out)
{
	int rc = KV__STALE;

	for (int i = 0; i < REBUILD_TRIES && rc == KV__STALE; i++) {
		if (i) {
			struct timespec ts = { 0, 1000000L << (i - 1) };
			nanosleep(&ts, NULL);
		}
		rc = build(db, out, any_success);
	}
	if (rc == KV__STALE)
		return kv__fail(KV_EBUSY, "%s: %s: the directory changed "
				"during each of %d tries (a writer "
				"compacting?); try again", db->dir, who,
				REBUILD_TRIES);
	return rc;
}

static int rebuild(kv_t *db)
{
	kv_t *sh = NULL;
	int rc = kv__open_settled(db, "kv_refresh", 0, &sh);

	if (rc)
		return rc;
	swap_in(db, sh);
	kv__shadow_free(sh); /* the old state */
	return 0;
}

KV_API int kv_refresh(kv_t *db)
{
	int rc;

	if (!db)
		return kv__fail(KV_EINVAL, "kv_refresh: store handle is NULL");
	if (!db->rdonly)
		return kv__fail(KV_EINVAL, "%s: kv_refresh is for handles "
				"opened with KV_RDONLY; a writer's handle is "
				"always current", db->dir);
	pthread_mutex_lock(&db->wlock);
	rc = db->refresh_stale ? KV__STALE : fast_path(db);
	if (rc == 0)
		atomic_store(&db->repl.ack, db->next_lsn - 1);
	else if (rc == KV__STALE)
		rc = rebuild(db);
	pthread_mutex_unlock(&db->wlock);
	return rc;
}
