/*
 * compact.c - reclaim dead bytes: choose sealed segments, copy their live
 * records into new segments (with hint files), switch the keydir, delete.
 *
 * The order of durable steps is what makes a crash at any point safe:
 *   1. outputs written as *.tmp, fsynced, renamed, hints beside them, the
 *      directory fsynced: a crash now leaves duplicates (same LSNs), which
 *      recovery resolves;
 *   2. an obsolete list naming the input segments, durable: from here on
 *      recovery deletes the inputs before it reads anything, so an old
 *      record can never outlive the tombstone that killed it when only
 *      some inputs were unlinked;
 *   3. the keydir switch, per key only if the entry still points at the
 *      old record (a concurrent overwrite or delete wins), in short steps;
 *   4. inputs unlinked, directory fsynced, the list removed.
 * Tombstones (and expired records, which act as tombstones) are dropped
 * only when no segment outside the inputs can hold an older record: its
 * lowest LSN (the floor) is above theirs.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lock.h"
#include "db.h"
#include "error.h"
#include "hint.h"
#include "io.h"
#include "le.h"
#include "liveset.h"
#include "record.h"
#include "repl.h"
#include "walk.h"

#define OUT_BUFFER (1u << 20)   /* output write buffer */
/* Lock holds short enough that a writer spinning for klock (lock.h)
 * rarely runs out of spin: with 256 and 64, kvbench compact's paced
 * writer slept on klock about 30 times in 5,300 puts (perf sched) and
 * its p99 was 12-16 us against 3-5 without; with 64 and 16, 5-6 us
 * (4 alternating runs each), compaction 800-815 MB/s against 810-836. */
#define SWITCH_STEP 64          /* keys switched per exclusive lock hold */
#define CHECK_BATCH 16          /* records checked per shared lock hold */
#define SCAN_STEP 128           /* keydir entries scanned per shared hold */
/* Live sets (scan_live) when the keydir has at most one entry per this
 * many input bytes: a scan reads entries in order, some ns each, where a
 * lookup per record is a cache miss or two, so a store with 8 times more
 * keys than the inputs can hold records (32 bytes each at least) still
 * scans; far bigger ones look the inputs' records up instead. */
#define SCAN_PER_ENTRY 4
#define IDLE_MS 1000            /* background thread: look this often */
#define BACKOFF_MS 30000        /* ...and this long after a failure */
#define NO_OUT UINT32_MAX

typedef struct move {
	uint64_t old_loc;
	uint32_t out;           /* output index, or NO_OUT: key to remove */
	uint32_t size;          /* record bytes (a copy keeps the size) */
	uint64_t off;           /* offset in that output */
	uint32_t id;            /* keydir id of the key when it was copied */
} move;

/* An output's hint, written to "<seq>.hint.tmp" as it is built and
 * renamed once its segment is published: held whole in memory until
 * then, every output's hint stayed in the heap, 56 bytes per 148-byte
 * record (38% of the output's size). */
typedef struct out_hint {
	kv__hint_buf b;
	kv__io_stream w;
} out_hint;

typedef struct job {
	kv_t *db;
	int force;
	kv__seg **in;
	size_t nin;
	uint64_t floor;         /* lowest LSN outside the inputs */
	uint64_t now;
	uint64_t done;
	uint64_t unread;        /* input bytes deleted without a read */
	kv__progress prog;      /* prog.total: input bytes */
	kv__seg **out;
	out_hint **hint;        /* one per output */
	size_t nout, capout;
	int published;          /* outputs renamed into place */
	int listed;             /* outputs in the segment table */
	uint64_t obs_seq;       /* the obsolete list, once written */
	move *moves;
	size_t nmoves, capmoves;
	kv__walk walk;
	int skipped;            /* KV_SALVAGE skipped damage in an input */
	kv__liveset *live;      /* per input, or NULL: look records up */
	kv_compact_stats st;
} job;

/* ---- choosing ---- */

static uint64_t reclaimable(const kv__seg *s)
{
	/* Tombstones a compaction already chose to keep are not garbage
	 * until the records they shadow are gone: counting them would make
	 * the same segment compact over and over. */
	if (s->flags & KV__SEG_F_COMPACTED)
		return s->dead_bytes - s->tomb_bytes;
	return s->dead_bytes;
}

static int triggered(const kv_t *db, const kv__seg *s)
{
	uint64_t r = reclaimable(s), data = s->size - KV__FILE_HDR;

	return r > 0 && (r * 100 >= (uint64_t)db->opts.compact_dead_pct * data ||
			 r >= db->opts.compact_dead_bytes);
}

static int by_seq(const void *a, const void *b)
{
	const kv__seg *x = *(kv__seg *const *)a, *y = *(kv__seg *const *)b;

	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Whether store-wide dead bytes pass compact_store_pct, and how many
 * sealed segments are small enough to merge. */
static void survey(const kv_t *db, kv__seg **c, size_t n, int *store,
		   size_t *nsmall)
{
	uint64_t dead = 0, data = 0;

	*nsmall = 0;
	for (size_t i = 0; i < n; i++) {
		dead += reclaimable(c[i]);
		data += c[i]->size - KV__FILE_HDR;
		*nsmall += c[i]->size < db->opts.compact_min_size;
	}
	*store = dead > 0 && dead * 100 >= (uint64_t)db->opts.compact_store_pct * data;
}

static int wanted(const job *j, const kv__seg *s, int store, size_t nsmall)
{
	int small = s->size < j->db->opts.compact_min_size && nsmall >= 2;

	if (j->force || store)
		return reclaimable(s) > 0 || small;
	return triggered(j->db, s) || small;
}

/* Picks the inputs and the floor; called with wlock and klock held. */
static int choose_locked(job *j)
{
	kv_t *db = j->db;
	kv__seg **c = calloc(db->nsegs ? db->nsegs : 1, sizeof *c);
	size_t n = 0, nsmall;
	uint64_t sum = 0;
	int store;

	if (!c)
		return kv__fail(KV_ENOMEM, "out of memory choosing segments");
	/* Replication keeps some (repl.h): a segment whose seal hook still
	 * runs, and log that kv_repl_retain asked for. */
	uint64_t hold = kv__repl_seal_hold(db);
	for (uint32_t i = 0; i < db->nslots; i++)
		if (db->segs[i] && db->segs[i] != db->active &&
		    !kv__repl_keeps(db, db->segs[i], hold))
			c[n++] = db->segs[i];
	qsort(c, n, sizeof *c, by_seq);
	survey(db, c, n, &store, &nsmall);
	j->in = c;
	for (size_t i = 0; i < n; i++) {
		if (!wanted(j, c[i], store, nsmall))
			continue;
		if (j->nin && sum + c[i]->size > db->opts.compact_max_bytes)
			break;
		sum += c[i]->size;
		c[j->nin++] = c[i]; /* compacts in place: nin <= i */
	}
	j->prog = (kv__progress){ .fn = db->opts.progress,
				  .ctx = db->opts.progress_ctx, .total = sum };
	return 0;
}

/* The lowest LSN held by any segment that is not an input. */
static uint64_t floor_locked(const job *j)
{
	uint64_t f = UINT64_MAX;

	for (uint32_t i = 0; i < j->db->nslots; i++) {
		kv__seg *s = j->db->segs[i];
		int input = 0;

		for (size_t k = 0; s && k < j->nin; k++)
			input |= j->in[k] == s;
		if (s && !input && s->min_lsn && s->min_lsn < f)
			f = s->min_lsn;
	}
	/* Never above the newest record: with every other segment empty
	 * (a rollover whose first append failed), a full compaction would
	 * drop the newest tombstone, and the store's position (its highest
	 * LSN, which replicas follow) would go back at the next open. */
	return f < j->db->next_lsn - 1 ? f : j->db->next_lsn - 1;
}

static int choose(job *j)
{
	kv_t *db = j->db;
	int rc;

	pthread_mutex_lock(&db->wlock);
	kv__klock_rd(&db->klock);
	rc = choose_locked(j);
	if (rc == 0)
		j->floor = floor_locked(j);
	kv__klock_unlock(&db->klock);
	pthread_mutex_unlock(&db->wlock);
	return rc;
}

/* ---- writing outputs ---- */

static uint64_t next_seq(kv_t *db)
{
	pthread_mutex_lock(&db->wlock);
	uint64_t seq = ++db->max_seq;
	pthread_mutex_unlock(&db->wlock);
	return seq;
}

static int grow(void **v, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap * 2 : 16;
	void *p = reallocarray(*v, n, elem);
	if (!p)
		return kv__fail(KV_ENOMEM, "out of memory in compaction");
	*v = p;
	*cap = n;
	return 0;
}

/* Starts the hint of output s; a hint that cannot be written is only
 * marked failed: the segment is then scanned at open. */
static out_hint *hint_start(job *j, const kv__seg *s)
{
	char path[PATH_MAX];
	out_hint *oh = malloc(sizeof *oh);

	if (!oh)
		return NULL;
	kv__hint_begin(&oh->b, s->seq);
	kv__seg_path(path, j->db->dir, s->seq, KV__HINT_SUFFIX);
	if (kv__io_stream_open(&oh->w, path, j->db->opts.file_mode))
		oh->b.failed = 1;
	else
		kv__hint_stream(&oh->b, kv__io_stream_sink, &oh->w);
	return oh;
}

/* Completes the newest output's hint but for its rename. */
static void hint_end(job *j)
{
	out_hint *oh = j->nout ? j->hint[j->nout - 1] : NULL;

	if (oh && (kv__hint_finish(&oh->b, j->out[j->nout - 1]->size) ||
		   kv__hint_drain(&oh->b)))
		oh->b.failed = 1; /* no hint: it will be scanned */
}

static void hint_drop(out_hint *oh)
{
	if (!oh)
		return;
	kv__io_stream_abort(&oh->w); /* nothing once renamed */
	kv__hint_free(&oh->b);
	free(oh);
}

/* Ends the current output's hint and opens a new output. */
static int new_output(job *j)
{
	kv__seg *s;
	size_t cap = j->capout;
	int rc;

	hint_end(j);
	if ((rc = grow((void **)&j->out, &cap, j->nout + 1, sizeof *j->out)) ||
	    (rc = grow((void **)&j->hint, &j->capout, j->nout + 1,
		       sizeof *j->hint)))
		return rc;
	rc = kv__seg_create_tmp(j->db->dir, next_seq(j->db),
				KV__SEG_F_COMPACTED, j->db->opts.file_mode, &s);
	if (rc == 0 && (rc = kv__seg_set_buffer(s, OUT_BUFFER)) != 0)
		kv__seg_close(s);
	if (rc)
		return rc;
	out_hint *oh = hint_start(j, s);
	if (!oh) {
		kv__seg_unlink(j->db->dir, s->seq, 1);
		kv__seg_close(s);
		return kv__fail(KV_ENOMEM, "out of memory in compaction");
	}
	j->out[j->nout] = s;
	j->hint[j->nout] = oh;
	j->nout++;
	j->st.bytes_written += KV__FILE_HDR;
	return 0;
}

/* Appends a copy of record r (key, val) to the outputs. */
static int emit(job *j, kv__rec r, const uint8_t *key, const uint8_t *val,
		uint32_t *out, uint64_t *off)
{
	uint64_t size = kv__rec_size(r.klen, r.vlen);
	kv__seg *s = j->nout ? j->out[j->nout - 1] : NULL;
	uint8_t hdr[KV__REC_HDR];
	int broken = 0, rc;

	if (!s || (s->size > KV__FILE_HDR &&
		   s->size + size > j->db->opts.max_file_size)) {
		if ((rc = new_output(j)) != 0)
			return rc;
		s = j->out[j->nout - 1];
	}
	r.batch_left = 0; /* a copied record stands alone */
	kv__rec_encode(&r, hdr, key, val);
	struct iovec iov[3] = { { hdr, KV__REC_HDR }, { (void *)key, r.klen },
				{ (void *)val, r.vlen } };
	*off = s->size;
	if ((rc = kv__seg_append(s, iov, r.vlen ? 3 : 2, size, &broken)) != 0)
		return rc;
	kv__hint_add(&j->hint[j->nout - 1]->b, &r, *off, key);
	if (!s->min_lsn || r.lsn < s->min_lsn)
		s->min_lsn = r.lsn;
	if (r.lsn > s->max_lsn)
		s->max_lsn = r.lsn;
	/* Dead until the switch finds the key still on the old record:
	 * so the figures add up to the file sizes at every moment. */
	s->dead_bytes += size;
	if (r.type == KV__REC_DEL)
		s->tomb_bytes += size;
	*out = (uint32_t)(j->nout - 1);
	j->st.bytes_written += size;
	return 0;
}

static int add_move(job *j, uint32_t id, uint64_t old_loc, uint32_t out,
		    uint64_t off, uint64_t size)
{
	int rc = grow((void **)&j->moves, &j->capmoves, j->nmoves + 1,
		      sizeof *j->moves);

	if (rc == 0)
		j->moves[j->nmoves++] = (move){ old_loc, out, (uint32_t)size,
						off, id };
	return rc;
}

/* ---- reading inputs ---- */

/* A record read from an input, waiting for its liveness check. */
typedef struct pending {
	uint64_t off;
	kv__rec r;
	const uint8_t *rec;     /* in the segment's map: valid all along */
	uint32_t id;            /* keydir id if its entry points here */
	int present;            /* the key is in the keydir at all */
	int settled;            /* id and present known without a lookup */
} pending;

static int expired(const job *j, const kv__rec *r)
{
	return r->expire_ms && r->expire_ms <= j->now;
}

/* Settles p from the input's live set where that is all copy_put and
 * copy_del need: a put's liveness, unless it expired (then whether its
 * key is present elsewhere matters too); a tombstone only below the
 * floor, which drops it whatever the keydir says. */
static int settle(const job *j, const kv__liveset *ls, pending *p)
{
	if (!ls)
		return 0;
	if (p->r.type != KV__REC_PUT) {
		p->id = UINT32_MAX;
		p->present = 0; /* either way: copy_del drops it by the floor */
		return j->floor > p->r.lsn;
	}
	p->id = kv__live_id(ls, p->off);
	p->present = p->id != UINT32_MAX;
	return p->present || !expired(j, &p->r);
}

/* Looks the unsettled pending keys up under one shared hold of klock. One
 * hold per record made the writer and this thread hand the lock back and
 * forth (it prefers writers): a context switch per put on 2 cores, and
 * overwrites fell from ~400 k/s to ~40 k/s while a compaction ran. */
static void check_live(kv_t *db, const kv__seg *s, pending *p, size_t n)
{
	uint64_t h[CHECK_BATCH];
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (!p[i].settled)
			h[k++] = kv__kd_hash(p[i].rec + KV__REC_HDR,
					     p[i].r.klen);
	if (k == 0)
		return;
	kv__klock_rd(&db->klock);
	kv__kd_warm(&db->kd, h, k); /* the table may move: under klock */
	for (size_t i = 0, hi = 0; i < n; i++) {
		if (p[i].settled)
			continue;
		uint32_t id = kv__kd_find(&db->kd, p[i].rec + KV__REC_HDR,
					  p[i].r.klen, h[hi++]);
		uint64_t loc = KV__LOC(s->slot, p[i].off);

		p[i].present = id != UINT32_MAX;
		p[i].id = id != UINT32_MAX &&
			  kv__kd_ent(&db->kd, id)->loc == loc ? id : UINT32_MAX;
	}
	kv__klock_unlock(&db->klock);
}

/* A tombstone of record r, with r's LSN. */
static kv__rec tombstone_of(const kv__rec *r)
{
	return (kv__rec){ .type = KV__REC_DEL, .klen = r->klen,
			  .lsn = r->lsn };
}

static int copy_put(job *j, kv__seg *s, const pending *p)
{
	const kv__rec *r = &p->r;
	const uint8_t *key = p->rec + KV__REC_HDR;
	uint64_t loc = KV__LOC(s->slot, p->off), noff = 0;
	uint32_t out = NO_OUT, id = p->id;
	int present = p->present, live = id != UINT32_MAX, rc;
	int gone = expired(j, r);

	/* Dropping an expired record could bring back an older value of its
	 * key from another segment: leave a tombstone then. That holds too
	 * when open already dropped the key from the index, because of this
	 * very record; a key that is absent for another reason has a newer
	 * tombstone or expired record, so one more tombstone does no harm. */
	if (gone && (live || !present)) {
		if (j->floor <= r->lsn &&
		    (rc = emit(j, tombstone_of(r), key, NULL, &out, &noff)))
			return rc;
		return live ? add_move(j, id, loc, NO_OUT, 0, 0) : 0;
	}
	if (!live)
		return 0; /* overwritten or deleted: dead */
	if ((rc = emit(j, *r, key, key + r->klen, &out, &noff)) != 0)
		return rc;
	return add_move(j, id, loc, out, noff, kv__rec_size(r->klen, r->vlen));
}

static int copy_del(job *j, const pending *p)
{
	uint64_t noff;
	uint32_t out;

	/* A live key has a newer record, which shadows older ones itself;
	 * otherwise keep the tombstone while older records may remain. */
	if (p->present || j->floor > p->r.lsn)
		return 0;
	return emit(j, p->r, p->rec + KV__REC_HDR, NULL, &out, &noff);
}

static int progress(job *j)
{
	kv_t *db = j->db;

	if (atomic_load(&db->compact.stop))
		return kv__fail(KV_ECANCELED, "compaction stopped by kv_close");
	return kv__report(&j->prog, j->done, "compaction");
}

/* A damaged range in an input: in a KV_SALVAGE store it is skipped (the
 * rest of the segment is copied and the damage leaves with the file);
 * otherwise the compaction stops before it changes anything. */
static int damaged(job *j, kv__seg *s, uint64_t *off, const char *why)
{
	if (!(j->db->opts.flags & KV_SALVAGE))
		return kv__fail(KV_ECORRUPT, "%s: bad record at offset %" PRIu64
				" during compaction: %s", s->name, *off, why);
	uint64_t next = kv__walk_resync(&j->walk, s, *off, s->size);
	if (j->walk.err)
		return j->walk.err; /* unreadable is not damaged */
	kv__log(j->db, KV_LOG_WARN, "%s: compaction skipped %" PRIu64
		" damaged bytes at offset %" PRIu64 " (%s)", s->name,
		next - *off, *off, why);
	j->done += next - *off;
	*off = next;
	j->skipped = 1;
	return 0;
}

/* Settles the liveness of n pending records of input `in` together, then
 * copies what must survive of them. */
static int copy_pending(job *j, size_t in, pending *p, size_t n)
{
	const kv__liveset *ls = j->live ? &j->live[in] : NULL;
	kv__seg *s = j->in[in];

	for (size_t i = 0; i < n; i++)
		p[i].settled = settle(j, ls, &p[i]);
	check_live(j->db, s, p, n);
	for (size_t i = 0; i < n; i++) {
		int rc = p[i].r.type == KV__REC_PUT ? copy_put(j, s, &p[i])
						    : copy_del(j, &p[i]);

		j->done += kv__rec_size(p[i].r.klen, p[i].r.vlen);
		if (rc || (rc = progress(j)) != 0)
			return rc;
	}
	return 0;
}

/* Copies what must survive of one input segment, CHECK_BATCH records at a
 * time. Its records were checked at open, but are checked again:
 * compaction never copies bad bytes into a file with a fresh checksum. A
 * record the walk had to read into its buffer (the segment is not mapped)
 * goes alone, as the next read reuses the buffer. */
static int copy_segment(job *j, size_t in)
{
	kv__seg *s = j->in[in];
	pending p[CHECK_BATCH];
	size_t n = 0;
	int rc = 0;

	j->done += KV__FILE_HDR; /* totals count whole files */
	for (uint64_t off = KV__FILE_HDR; rc == 0 && off < s->size;) {
		const char *why = kv__walk_check(&j->walk, s, off, s->size,
						 &p[n].r, &p[n].rec);

		if (why && j->walk.err)
			return j->walk.err; /* an I/O error, not damage */
		if (why) {
			if ((rc = copy_pending(j, in, p, n)) == 0)
				rc = damaged(j, s, &off, why);
			n = 0;
			continue;
		}
		uint64_t size = kv__rec_size(p[n].r.klen, p[n].r.vlen);
		int mapped = kv__seg_ptr(s, off, (size_t)size) == p[n].rec;

		p[n++].off = off;
		off += size;
		if (n == CHECK_BATCH || !mapped || off >= s->size) {
			rc = copy_pending(j, in, p, n);
			n = 0;
		}
	}
	return rc;
}

/* Room for more pairs, grown outside klock. 0 when memory ran out. */
static int more_pairs(kv__livepair **p, size_t *cap)
{
	size_t ncap = *cap ? *cap * 2 : 4096;
	kv__livepair *np = reallocarray(*p, ncap, sizeof *np);

	if (!np)
		return 0;
	*p = np;
	*cap = ncap;
	return 1;
}

/* The inputs' live sets (liveset.h) from the pairs found, or none (every
 * record is then looked up, as without them). */
static void build_live(job *j, const kv__livepair *pairs, size_t n)
{
	uint64_t *sizes = calloc(j->nin, sizeof *sizes);

	j->live = calloc(j->nin, sizeof *j->live);
	for (size_t i = 0; sizes && i < j->nin; i++)
		sizes[i] = j->in[i]->size;
	if (!sizes || !j->live ||
	    kv__live_build(j->live, j->nin, sizes, pairs, n)) {
		free(j->live);
		j->live = NULL;
	}
	free(sizes);
}

/* Called between one klock hold of compaction and the next, so that a
 * writer spinning for the lock (lock.h) gets in: taken back at once, the
 * lock is free only between an unlock and the next take, the writer
 * rarely catches it and sleeps, and a woken writer waits 40-80 us for its
 * vCPU. kvbench compact, writer p99: between scan_live's holds 61-77 us
 * without the gap, 6-7 us with it (sixth session); between switch_keys'
 * steps on the EPYC machine 75-114 us without, 7-85 us (median 16) with
 * it (eleventh session, 6 alternating pairs). */
#define GAP_PAUSES 64
static void gap_for_writers(void)
{
	for (int k = 0; k < GAP_PAUSES; k++)
		kv__cpu_relax();
}

/*
 * One scan of the keydir's entries, in short shared holds of klock, finds
 * every entry that points into an input: the inputs' live sets, and the
 * inputs that hold nothing to keep, which can go unread. Those are the
 * ones no entry points into, and which no segment outside the inputs
 * predates (j->floor > their newest LSN), so none of their tombstones or
 * expired records shadows anything (copy_put, copy_del). An
 * overwrite-heavy store's old segments are such: kvbench's compact chain
 * read 335 MB, two thirds of them whole segments of overwritten records.
 *
 * Short holds are enough because entries only leave the inputs while the
 * scan runs: writes go to the active segment, and only compaction (this
 * thread) moves an entry into a sealed segment. So a record the scan
 * finds unreferenced stays so; one it finds referenced may lose its key
 * before the switch, which checks again (switch_one).
 */
static void scan_live(job *j, uint8_t *unread)
{
	kv_t *db = j->db;
	uint32_t *input, nslots; /* by segment slot: input index + 1, or 0 */
	kv__livepair *pairs = NULL;
	size_t n = 0, cap = 0, cands = 0;
	int ok;

	kv__klock_rd(&db->klock);
	nslots = db->nslots; /* new segments take higher slots */
	input = calloc(nslots, sizeof *input);
	ok = input && db->kd.nids <= j->prog.total / SCAN_PER_ENTRY;
	for (size_t i = 0; i < j->nin; i++) {
		const kv__seg *s = j->in[i];

		unread[i] = input && j->floor > s->max_lsn &&
			    s->live_bytes == 0;
		cands += unread[i];
		if (input)
			input[s->slot] = (uint32_t)i + 1;
	}
	kv__klock_unlock(&db->klock);
	if (ok)
		ok = more_pairs(&pairs, &cap);
	if (!ok && cands == 0) {
		free(input);
		return; /* every input read, every record looked up */
	}
	for (uint32_t id = 0, end = 1; id < end;) {
		kv__klock_rd(&db->klock);
		end = db->kd.nids - id > SCAN_STEP ? id + SCAN_STEP
						   : db->kd.nids;
		for (; id < end && !(ok && n == cap); id++) {
			if (!kv__kd_live(&db->kd, id))
				continue;
			uint64_t loc = kv__kd_ent(&db->kd, id)->loc;
			uint32_t sl = KV__LOC_SLOT(loc), in;

			if (sl >= nslots || (in = input[sl]) == 0)
				continue;
			unread[in - 1] = 0;
			if (ok)
				pairs[n++] = (kv__livepair){ KV__LOC_OFF(loc),
							     in - 1, id };
		}
		end = db->kd.nids;
		kv__klock_unlock(&db->klock);
		if (ok && n == cap)
			ok = more_pairs(&pairs, &cap);
		if (id < end)
			gap_for_writers();
	}
	if (ok)
		build_live(j, pairs, n);
	free(pairs);
	free(input);
}

/* Copies what must survive of input i, or passes over it unread. */
static int take_input(job *j, size_t i, const uint8_t *unread)
{
	kv__seg *s = j->in[i];

	if (!unread[i])
		return copy_segment(j, i);
	j->done += s->size;
	j->unread += s->size;
	return progress(j);
}

/* ---- making outputs durable and visible ---- */

static void write_hint(job *j, size_t i)
{
	char path[PATH_MAX];
	out_hint *oh = j->hint[i];

	kv__seg_path(path, j->db->dir, j->out[i]->seq, KV__HINT_SUFFIX);
	/* A hint only saves time at open: if it cannot be written, the
	 * segment is scanned instead, so this is not an error. */
	if (oh->b.failed) {
		kv__io_stream_abort(&oh->w);
		return;
	}
	if (kv__io_stream_commit(&oh->w, path)) {
		kv__log(j->db, KV_LOG_WARN, "%s: hint not written", path);
		return;
	}
	KV__KILLPOINT("compact.hint_written");
	j->out[i]->has_hint = 1;
	j->st.bytes_written += kv__hint_bytes(&oh->b);
}

static int publish_outputs(job *j)
{
	int rc;

	hint_end(j);
	for (size_t i = 0; i < j->nout; i++) {
		if ((rc = kv__seg_publish(j->out[i], j->db->dir)) != 0)
			return rc;
		j->published = (int)i + 1;
		write_hint(j, i);
	}
	if (j->nout && kv__io_fsync_dir(j->db->dir))
		return kv__fail_sys("%s: fsync of directory", j->db->dir);
	KV__KILLPOINT("compact.outputs_durable");
	return 0;
}

static int list_outputs(job *j)
{
	int rc = 0;

	kv__klock_wr(&j->db->klock);
	for (size_t i = 0; i < j->nout && rc == 0; i++)
		if ((rc = kv__db_add_seg_locked(j->db, j->out[i])) == 0)
			j->listed = (int)i + 1;
	kv__klock_unlock(&j->db->klock);
	return rc;
}

/* Writes "<seq>.obs": the inputs, to be deleted even after a crash. */
static int write_obsolete(job *j)
{
	char path[PATH_MAX];
	size_t len = KV__FILE_HDR + 8 + 8 * j->nin + 4;
	uint8_t *b = calloc(1, len);
	uint64_t seq = next_seq(j->db);
	int rc = 0;

	if (!b)
		return kv__fail(KV_ENOMEM, "out of memory in compaction");
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): binary magic */
	memcpy(b, KV__SEG_MAGIC, 8);
	kv__put32(b + 8, KV__FORMAT_VERSION);
	kv__put32(b + 12, KV__KIND_OBSOLETE);
	kv__put64(b + 16, seq);
	kv__put32(b + 28, (uint32_t)kv__rec_crc_update(0, b, 28));
	kv__put64(b + KV__FILE_HDR, j->nin);
	for (size_t i = 0; i < j->nin; i++)
		kv__put64(b + KV__FILE_HDR + 8 + 8 * i, j->in[i]->seq);
	kv__put32(b + len - 4, kv__rec_crc_update(0, b, len - 4));
	kv__seg_path(path, j->db->dir, seq, KV__OBS_SUFFIX);
	if (kv__io_write_file(path, b, len, j->db->opts.file_mode))
		rc = kv__fail_sys("%s: write", path);
	else if ((j->obs_seq = seq) && kv__io_fsync_dir(j->db->dir))
		rc = kv__fail_sys("%s: fsync of directory", j->db->dir);
	else
		KV__KILLPOINT("compact.obs_durable");
	free(b);
	return rc;
}

/* ---- the switch ---- */

/* Found by id, not by key: reading the key back from an input could fail
 * (no map, an I/O error), and an entry left on an input would dangle once
 * the inputs are dropped. Ids are stable while a key lives, and a record's
 * location belongs to one key, so "id live and still at old_loc" means
 * this very key is untouched since it was copied. */
static void switch_one(job *j, const move *m)
{
	kv_t *db = j->db;
	kv__kent *e = kv__kd_live(&db->kd, m->id) ? kv__kd_ent(&db->kd, m->id)
						   : NULL;
	kv__seg *out = m->out == NO_OUT ? NULL : j->out[m->out];

	if (!e || e->loc != m->old_loc)
		return; /* a newer write won: the copy stays dead */
	kv__db_retire(db, e); /* from its input segment's live figures */
	if (!out) { /* expired: gone from the index as from the disk */
		const uint8_t *key = kv__kd_key(&db->kd, m->id);
		size_t klen = kv__kent_klen(e);
		kv__db_forget(db, m->id, key, klen, kv__kd_hash(key, klen));
		return;
	}
	e->loc = KV__LOC(out->slot, m->off);
	out->dead_bytes -= m->size;
	out->live_bytes += m->size;
}

/* Switches the keydir in short exclusive steps, so readers and writers
 * interleave with a long switch. */
static void switch_keys(job *j)
{
	kv_t *db = j->db;

	for (size_t i = 0; i < j->nmoves;) {
		size_t end = j->nmoves - i > SWITCH_STEP ? i + SWITCH_STEP
							 : j->nmoves;

		kv__klock_wr(&db->klock);
		/* Each move's entry is a cache miss: overlapped, not in turn
		 * (switch_one checks the id again). */
		for (size_t k = i; k < end; k++)
			if (j->moves[k].id < db->kd.nids)
				__builtin_prefetch(kv__kd_ent(&db->kd,
							      j->moves[k].id));
		for (; i < end; i++)
			switch_one(j, &j->moves[i]);
		kv__klock_unlock(&db->klock);
		KV__KILLPOINT("compact.switch_step");
		if (i < j->nmoves)
			gap_for_writers();
	}
}

static int is_input(const job *j, uint32_t slot)
{
	for (size_t i = 0; i < j->nin; i++)
		if (j->in[i]->slot == slot)
			return 1;
	return 0;
}

/* After a salvage skip, keys whose record was in the damaged range still
 * point into an input: their value is lost, so drop them rather than
 * leave them pointing at a deleted file. Called with klock held. */
static void drop_lost_keys(job *j)
{
	kv_t *db = j->db;
	uint64_t lost = 0;

	for (uint32_t id = 0; id < db->kd.nids; id++) {
		kv__kent *e = kv__kd_ent(&db->kd, id);
		if (!kv__kd_live(&db->kd, id) || !is_input(j, KV__LOC_SLOT(e->loc)))
			continue;
		const uint8_t *key = kv__kd_key(&db->kd, id);
		size_t klen = kv__kent_klen(e);
		kv__db_forget(db, id, key, klen, kv__kd_hash(key, klen));
		lost++;
	}
	if (lost)
		kv__log(db, KV_LOG_ERROR, "salvage: %" PRIu64 " keys lost "
			"with damaged records", lost);
}

static void drop_inputs(job *j)
{
	kv_t *db = j->db;

	kv__klock_wr(&db->klock);
	if (j->skipped)
		drop_lost_keys(j);
	for (size_t i = 0; i < j->nin; i++) {
		db->segs[j->in[i]->slot] = NULL;
		db->nsegs--;
	}
	kv__klock_unlock(&db->klock);
	KV__KILLPOINT("compact.inputs_dropped");
	int left = 0;
	for (size_t i = 0; i < j->nin; i++) {
		if (kv__seg_unlink(db->dir, j->in[i]->seq, 0)) {
			kv__log(db, KV_LOG_WARN, "%s", kv_errmsg());
			left = 1;
			continue;
		}
		KV__KILLPOINT("compact.input_unlinked");
		j->st.bytes_freed += j->in[i]->size;
	}
	/* An input left behind could hold a record whose tombstone was
	 * dropped: keep the list, and the next open deletes it. */
	if (!left && kv__io_fsync_dir(db->dir) == 0) {
		char path[PATH_MAX];
		KV__KILLPOINT("compact.inputs_gone");
		kv__seg_path(path, db->dir, j->obs_seq, KV__OBS_SUFFIX);
		if (kv__io.unlink(path) == 0)
			KV__KILLPOINT("compact.obs_removed");
	}
	/* The table's references; readers still holding one finish first. */
	for (size_t i = 0; i < j->nin; i++)
		kv__seg_unref(j->in[i]);
}

/* ---- the run ---- */

/* Removes the obsolete list of a compaction that failed; 0 when it is
 * surely gone, so the outputs may go too. */
static int unlist(job *j)
{
	char path[PATH_MAX];

	if (!j->obs_seq)
		return 0;
	kv__seg_path(path, j->db->dir, j->obs_seq, KV__OBS_SUFFIX);
	if (kv__io.unlink(path) && errno != ENOENT)
		return -1;
	return kv__io_fsync_dir(j->db->dir);
}

/* Undoes a compaction that failed before its switch. If its obsolete list
 * may survive, the outputs stay on disk too: the list would delete the
 * inputs at the next open, and the outputs then hold their records. */
static void abandon(job *j)
{
	kv_t *db = j->db;
	int keep = unlist(j) != 0;

	if (j->listed) {
		kv__klock_wr(&db->klock);
		for (int i = 0; i < j->listed; i++) {
			db->segs[j->out[i]->slot] = NULL;
			db->nsegs--;
		}
		kv__klock_unlock(&db->klock);
	}
	for (size_t i = 0; i < j->nout; i++) {
		if (!keep)
			kv__seg_unlink(db->dir, j->out[i]->seq,
				       (int)i >= j->published);
		kv__seg_unref(j->out[i]);
	}
	if (j->published && !keep)
		kv__io_fsync_dir(db->dir);
}

static int run(job *j)
{
	int rc = choose(j);

	if (rc || j->nin == 0)
		return rc;
	j->now = kv__now(j->db);
	uint8_t *unread = calloc(j->nin, 1);
	if (!unread)
		return kv__fail(KV_ENOMEM, "out of memory in compaction");
	scan_live(j, unread);
	for (size_t i = 0; i < j->nin && rc == 0; i++)
		rc = take_input(j, i, unread);
	free(unread);
	if (j->live)
		kv__live_free(j->live, j->nin);
	free(j->live);
	j->live = NULL;
	if (rc == 0)
		rc = progress(j); /* the last report says done == total */
	if (rc == 0) {
		KV__KILLPOINT("compact.copied");
		rc = publish_outputs(j);
	}
	if (rc == 0)
		rc = list_outputs(j);
	if (rc == 0) {
		KV__KILLPOINT("compact.outputs_listed");
		rc = write_obsolete(j);
	}
	if (rc) {
		abandon(j);
		return rc;
	}
	switch_keys(j);
	drop_inputs(j);
	j->st.segments_in = j->nin;
	j->st.segments_out = j->nout;
	return 0;
}

static void finish(job *j, kv_compact_stats *out)
{
	kv_t *db = j->db;
	uint64_t written = j->st.bytes_written;

	for (size_t i = 0; i < j->nout; i++)
		hint_drop(j->hint[i]);
	j->st.bytes_read = j->done - j->unread;
	j->st.bytes_freed = j->st.bytes_freed > written ?
			    j->st.bytes_freed - written : 0;
	if (j->st.segments_in) {
		pthread_mutex_lock(&db->compact.mu);
		db->compact.runs++;
		db->compact.freed += j->st.bytes_freed;
		pthread_mutex_unlock(&db->compact.mu);
	}
	if (out)
		*out = j->st;
	free(j->in);
	free(j->out);
	free(j->hint);
	free(j->moves);
	kv__walk_free(&j->walk);
}

static int compact(kv_t *db, int force, kv_compact_stats *out)
{
	job j = { .db = db, .force = force };
	int rc;

	if (atomic_load(&db->poisoned))
		return kv__fail(KV_EIO, "store refuses writes after an earlier "
				"failure; reopen it");
	pthread_mutex_lock(&db->compact.run);
	rc = run(&j);
	pthread_mutex_unlock(&db->compact.run);
	finish(&j, out);
	return rc;
}

KV_API int kv_compact(kv_t *db, kv_compact_stats *out)
{
	if (out)
		memset(out, 0, sizeof *out);
	if (!db)
		return kv__fail(KV_EINVAL, "store handle is NULL");
	if (db->rdonly)
		return kv__fail(KV_EREADONLY, "%s: opened read-only", db->dir);
	return compact(db, 1, out);
}

/* ---- the background thread ---- */

static void wait_ms(kv__compact *c, unsigned ms)
{
	struct timespec ts;

	kv__deadline(&ts, ms);
	while (!c->kick && !atomic_load(&c->stop) &&
	       pthread_cond_timedwait(&c->cv, &c->mu, &ts) == 0)
		;
}

static void *compact_main(void *arg)
{
	kv_t *db = arg;
	kv__compact *c = &db->compact;
	unsigned pause = IDLE_MS;

	pthread_mutex_lock(&c->mu);
	while (!atomic_load(&c->stop)) {
		wait_ms(c, pause);
		c->kick = 0;
		if (atomic_load(&c->stop))
			break;
		pthread_mutex_unlock(&c->mu);
		kv__seal_hints(db);
		int rc = compact(db, 0, NULL);
		if (rc && rc != KV_ECANCELED)
			kv__log(db, KV_LOG_ERROR, "background compaction: %s",
				kv_errmsg());
		pause = rc ? BACKOFF_MS : IDLE_MS;
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int kv__compact_start(kv_t *db)
{
	int err = pthread_create(&db->compact.thread, NULL, compact_main, db);

	if (err)
		return kv__fail(KV_ENOMEM, "cannot start the compaction thread");
	db->compact.thread_on = 1;
	return 0;
}

void kv__compact_stop(kv_t *db)
{
	kv__compact *c = &db->compact;

	if (!c->thread_on)
		return;
	pthread_mutex_lock(&c->mu);
	atomic_store(&c->stop, 1);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	c->thread_on = 0;
}

void kv__compact_kick(kv_t *db)
{
	kv__compact *c = &db->compact;

	if (!c->thread_on)
		return;
	pthread_mutex_lock(&c->mu);
	c->kick = 1;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}
