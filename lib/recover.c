/*
 * recover.c - rebuild the keydir from the segment files at open.
 *
 * Every segment is scanned in sequence order; per key the record with the
 * highest LSN wins, so the order of files does not matter (compaction may
 * write old records into new files). Tombstones and expired records stay in
 * the keydir as DEAD entries until all files are read, because an older
 * record of the same key may still turn up in a later file.
 *
 * A bad record at the tail of the log (the newest segment not written by
 * compaction) is a torn write from a crash: cut away and reported. A bad
 * record anywhere else fails the open with KV_ECORRUPT naming file and
 * offset, unless KV_SALVAGE is given.
 *
 * Before any of that, obsolete lists left by a compaction that crashed
 * are carried out (or, read-only, their segments ignored), and segments
 * with a sound hint file are loaded from it instead of being scanned.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "commit.h"
#include "db.h"
#include "error.h"
#include "hint.h"
#include "io.h"
#include "le.h"
#include "record.h"
#include "repl.h"
#include "walk.h"

/* Records applied per group, each group's filter blocks and table slots
 * prefetched first: both are cache misses, and in a group they overlap.
 * The filter too (its 1 MB at 1M keys does not stay in a 1 MB L2 beside
 * the table): 92% of bloom_may_have's samples were its first load, and
 * it was 30% of a reopen's. Opens of a crashed 1M-key store on memory
 * the host still backs, 8 alternating pairs: median 84 against 131 ms;
 * kvbench reopen-crash, 10 pairs: 7 faster, by 3-8 ms when neither
 * met fresh memory (72-77 against 77-81 ms). */
#define APPLY_GROUP 16

/* A scanned record waiting in its group; key points into the map. */
typedef struct pending_rec {
	uint64_t off;
	kv__rec r;
	const uint8_t *key;
	uint64_t h;
} pending_rec;

typedef struct rstate {
	uint64_t *lsns;      /* per keydir id: LSN of its newest record */
	uint32_t nlsns;
	kv__walk walk;       /* a record's bytes when it is not mapped */
	uint64_t max_lsn;
	uint64_t now;
	int follow;          /* kv_refresh: records newer than all indexed */
	pending_rec q[APPLY_GROUP]; /* scan: mapped records not yet applied */
	int nq;
	uint8_t *copy;       /* a read-only tail scanned from a copy */
	uint64_t reread;     /* offset last read again (read_again), or 0 */
} rstate;

typedef struct run {
	kv__rec rec;         /* the first record */
	uint64_t bytes;      /* of the record, or of the whole batch */
	uint32_t nrecs;
	uint64_t bad;        /* when unsound: offset of the failing record */
} run;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* What the directory holds, by kind of file (db.h). */
typedef kv__listing listing;

static void listing_free(listing *l)
{
	free(l->segs);
	free(l->hints);
	free(l->obs);
}

static int push(uint64_t **v, size_t *n, size_t *cap, uint64_t seq)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		uint64_t *nv = reallocarray(*v, c, sizeof *nv);
		if (!nv)
			return kv__fail(KV_ENOMEM, "out of memory listing files");
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = seq;
	return 0;
}

/* Files left by a create that crashed before its rename. */
static void remove_tmp(kv_t *db, const char *name, listing *l)
{
	char path[PATH_MAX], base[KV__NAME_MAX];
	size_t n = strlen(name);
	uint64_t seq;

	if (n < 5 || n >= sizeof base + 4 || strcmp(name + n - 4, ".tmp"))
		return;
	memcpy(base, name, n - 4);
	base[n - 4] = 0;
	if (kv__seg_parse_name(base, KV__SEG_SUFFIX, &seq) ||
	    kv__seg_parse_name(base, KV__HINT_SUFFIX, &seq) ||
	    kv__seg_parse_name(base, KV__OBS_SUFFIX, &seq)) {
		if (seq > l->max_seq)
			l->max_seq = seq;
		if (db->rdonly)
			return;
		snprintf(path, sizeof path, "%s/%s", db->dir, name);
		if (kv__io.unlink(path) == 0)
			KV__KILLPOINT("recover.tmp_removed");
	}
}

static int sort_one(const char *name, listing *l)
{
	uint64_t seq;
	int rc = 0;

	if (kv__seg_parse_name(name, KV__SEG_SUFFIX, &seq))
		rc = push(&l->segs, &l->nsegs, &l->csegs, seq);
	else if (kv__seg_parse_name(name, KV__HINT_SUFFIX, &seq))
		rc = push(&l->hints, &l->nhints, &l->chints, seq);
	else if (kv__seg_parse_name(name, KV__OBS_SUFFIX, &seq))
		rc = push(&l->obs, &l->nobs, &l->cobs, seq);
	else
		return 0;
	if (seq > l->max_seq)
		l->max_seq = seq;
	return rc;
}

static int list_dir(kv_t *db, listing *l)
{
	DIR *d = opendir(db->dir);
	struct dirent *de;
	int rc = 0;

	memset(l, 0, sizeof *l);
	if (!d)
		return kv__fail_sys("%s: cannot list directory", db->dir);
	while (rc == 0 && (de = readdir(d)) != NULL) {
		remove_tmp(db, de->d_name, l);
		rc = sort_one(de->d_name, l);
	}
	closedir(d);
	if (l->nsegs)
		qsort(l->segs, l->nsegs, sizeof *l->segs, cmp_u64);
	if (l->nhints)
		qsort(l->hints, l->nhints, sizeof *l->hints, cmp_u64);
	return rc;
}

static int listed(const uint64_t *v, size_t n, uint64_t seq)
{
	return n && bsearch(&seq, v, n, sizeof *v, cmp_u64) != NULL;
}

int kv__list_dir(kv_t *db, kv__listing *l)
{
	return list_dir(db, l);
}

void kv__listing_free(kv__listing *l)
{
	listing_free(l);
}

int kv__listed(const uint64_t *v, size_t n, uint64_t seq)
{
	return listed(v, n, seq);
}

/* ---- obsolete lists ---- */

/* Reads "<seq>.obs" into *out (malloc'd seqs); KV_ECORRUPT if unsound:
 * it was written durably before any deletion, so damage is real. */
static int read_obs(kv_t *db, uint64_t seq, uint64_t **out, size_t *n)
{
	char path[PATH_MAX];
	const char *name = kv__seg_path(path, db->dir, seq, KV__OBS_SUFFIX);
	uint8_t *b;
	size_t len;

	if (kv__io_read_file(path, UINT64_C(1) << 30, &b, &len))
		return kv__fail_sys("%s: read", path);
	uint64_t count = len >= KV__FILE_HDR + 12 ?
			 kv__get64(b + KV__FILE_HDR) : 0;
	if (len < KV__FILE_HDR + 12 || memcmp(b, KV__SEG_MAGIC, 8) ||
	    kv__get32(b + 12) != KV__KIND_OBSOLETE ||
	    count != (len - KV__FILE_HDR - 12) / 8 ||
	    len != KV__FILE_HDR + 12 + count * 8 ||
	    kv__get32(b + len - 4) != kv__rec_crc_update(0, b, len - 4)) {
		free(b);
		return kv__fail(KV_ECORRUPT, "%s: offset 0: bad obsolete list",
				name);
	}
	*out = reallocarray(NULL, count ? count : 1, sizeof **out);
	for (size_t i = 0; *out && i < count; i++)
		(*out)[i] = kv__get64(b + KV__FILE_HDR + 8 + 8 * i);
	*n = (size_t)count;
	free(b);
	return *out ? 0 : kv__fail(KV_ENOMEM, "out of memory");
}

/* Drops seq from the listing (the segment is obsolete). */
static void forget(listing *l, uint64_t seq)
{
	for (size_t i = 0; i < l->nsegs; i++)
		if (l->segs[i] == seq) {
			memmove(l->segs + i, l->segs + i + 1,
				(l->nsegs - i - 1) * sizeof *l->segs);
			l->nsegs--;
			return;
		}
}

/* Removes the list once the deletions it names are durable. */
static int remove_obs(kv_t *db, uint64_t seq)
{
	char path[PATH_MAX];
	const char *name = kv__seg_path(path, db->dir, seq, KV__OBS_SUFFIX);

	if (kv__io_fsync_dir(db->dir))
		return kv__fail_sys("%s: finishing a compaction", path);
	KV__KILLPOINT("recover.obs_inputs_gone");
	if (kv__io.unlink(path))
		return kv__fail_sys("%s: finishing a compaction", path);
	KV__KILLPOINT("recover.obs_removed");
	kv__log(db, KV_LOG_INFO, "%s: finished an interrupted compaction",
		name);
	return 0;
}

/* Finishes the deletions a compaction had made durable; a read-only
 * handle deletes nothing and just leaves those segments out. */
static int carry_out_obsolete(kv_t *db, listing *l)
{
	for (size_t i = 0; i < l->nobs; i++) {
		uint64_t *v = NULL;
		size_t n = 0;
		int rc = read_obs(db, l->obs[i], &v, &n);

		if (rc)
			return rc;
		KV__KILLPOINT("recover.obs_read");
		for (size_t k = 0; k < n; k++) {
			forget(l, v[k]);
			if (!db->rdonly && kv__seg_unlink(db->dir, v[k], 0)) {
				free(v);
				return KV_EIO;
			}
			if (!db->rdonly)
				KV__KILLPOINT("recover.obs_input_unlinked");
		}
		free(v);
		if (!db->rdonly && (rc = remove_obs(db, l->obs[i])) != 0)
			return rc;
	}
	return 0;
}

static const char *check_one(rstate *st, kv__seg *s, uint64_t off,
			     uint64_t end, kv__rec *r)
{
	return kv__walk_check(&st->walk, s, off, end, r, NULL);
}

/* Checks a record, or a whole batch when the record starts one: a batch
 * counts only if every record of it is present and sound. */
static const char *check_run(rstate *st, kv__seg *s, uint64_t off,
			     uint64_t end, run *out)
{
	const char *why = check_one(st, s, off, end, &out->rec);
	kv__rec prev = out->rec, r;
	uint64_t at = off + kv__rec_size(prev.klen, prev.vlen);

	out->bad = off;
	if (why)
		return why;
	out->nrecs = 1;
	while (prev.batch_left > 0) {
		out->bad = at;
		if (check_one(st, s, at, end, &r) != NULL)
			return "batch cut short";
		if (r.batch_left != prev.batch_left - 1 || r.lsn != prev.lsn + 1)
			return "broken batch sequence";
		at += kv__rec_size(r.klen, r.vlen);
		out->nrecs++;
		prev = r;
	}
	out->bytes = at - off;
	return NULL;
}

static int grow_lsns(rstate *st, uint32_t id)
{
	if (id < st->nlsns)
		return 0;
	uint32_t n = st->nlsns ? st->nlsns : 1024;
	while (n <= id)
		n *= 2;
	uint64_t *v = reallocarray(st->lsns, n, sizeof *v);
	if (!v)
		return KV_ENOMEM;
	st->lsns = v;
	st->nlsns = n;
	return 0;
}

/* kv_refresh indexes only records newer than every one it indexed (the
 * callers check: kv__recover_follow, hint_rises), so each is its key's
 * newest: no LSN array is needed, and a dead one drops its key at once,
 * since no older record of it can follow. The ordered index, if built,
 * follows as with a commit (a cache: dropped on ENOMEM). */
static int apply_newest(kv_t *db, kv__seg *s, uint64_t off, const kv__rec *r,
			const uint8_t *key, uint64_t h, uint32_t id,
			uint32_t flags)
{
	uint64_t size = kv__rec_size(r->klen, r->vlen);
	kv__kent *e = id != UINT32_MAX ? kv__kd_ent(&db->kd, id) : NULL;

	if (e)
		kv__db_retire(db, e);
	if (flags & KV__KF_DEAD) {
		s->dead_bytes += size;
		if (e)
			kv__db_forget(db, id, key, r->klen, h);
		return 0;
	}
	s->live_bytes += size;
	if (e) {
		kv__kd_update(&db->kd, id, KV__LOC(s->slot, off), r->vlen,
			      flags);
		return 0;
	}
	if (kv__kd_insert(&db->kd, key, r->klen, h, KV__LOC(s->slot, off),
			  r->vlen, flags, &id))
		return kv__fail(KV_ENOMEM, "out of memory refreshing the index");
	if (db->order_built && kv__order_insert(&db->order, id, key, r->klen)) {
		kv__order_free(&db->order);
		db->order_built = 0;
	}
	return 0;
}

static int apply_hashed(kv_t *db, rstate *st, kv__seg *s, uint64_t off,
			const kv__rec *r, const uint8_t *key, uint64_t h)
{
	uint64_t size = kv__rec_size(r->klen, r->vlen);
	uint32_t id = kv__kd_find(&db->kd, key, r->klen, h);
	int dead = r->type == KV__REC_DEL ||
		   (r->expire_ms && r->expire_ms <= st->now);
	uint32_t flags = dead ? KV__KF_DEAD : r->expire_ms ? KV__KF_TTL : 0;

	if (r->lsn > st->max_lsn)
		st->max_lsn = r->lsn;
	if (!s->min_lsn || r->lsn < s->min_lsn)
		s->min_lsn = r->lsn;
	if (r->lsn > s->max_lsn)
		s->max_lsn = r->lsn;
	if (r->type == KV__REC_DEL)
		s->tomb_bytes += size;
	if (st->follow)
		return apply_newest(db, s, off, r, key, h, id, flags);
	if (id != UINT32_MAX && r->lsn <= st->lsns[id]) {
		s->dead_bytes += size; /* an older copy: superseded */
		return 0;
	}
	if (id != UINT32_MAX) {
		kv__db_retire(db, kv__kd_ent(&db->kd, id));
		kv__kd_update(&db->kd, id, KV__LOC(s->slot, off), r->vlen,
			      flags);
	} else if (kv__kd_insert(&db->kd, key, r->klen, h,
				 KV__LOC(s->slot, off), r->vlen, flags, &id) ||
		   grow_lsns(st, id)) {
		return kv__fail(KV_ENOMEM, "out of memory rebuilding the index");
	}
	st->lsns[id] = r->lsn;
	if (dead)
		s->dead_bytes += size;
	else
		s->live_bytes += size;
	return 0;
}

static int apply(kv_t *db, rstate *st, kv__seg *s, uint64_t off,
		 const kv__rec *r, const uint8_t *key)
{
	return apply_hashed(db, st, s, off, r, key, kv__kd_hash(key, r->klen));
}

static int apply_run(kv_t *db, rstate *st, kv__seg *s, uint64_t off,
		     const run *rn)
{
	for (uint32_t i = 0; i < rn->nrecs; i++) {
		uint8_t h[KV__REC_HDR];
		kv__rec r;
		const uint8_t *p;

		/* With nothing mapped this is a read, which can fail: then
		 * h holds nothing to decode. */
		int rc = kv__seg_read(s, off, h, sizeof h);
		if (rc)
			return rc;
		kv__rec_decode(h, &r);
		p = kv__walk_bytes(&st->walk, s, off,
				   KV__REC_HDR + (uint64_t)r.klen);
		if (!p)
			return st->walk.err;
		if ((rc = apply(db, st, s, off, &r, p + KV__REC_HDR)) != 0)
			return rc;
		off += kv__rec_size(r.klen, r.vlen);
	}
	return 0;
}

/* Applies the scanned records waiting in their group, in order. */
static int flush_group(kv_t *db, rstate *st, kv__seg *s)
{
	int rc = 0;

	for (int i = 0; i < st->nq && rc == 0; i++)
		rc = apply_hashed(db, st, s, st->q[i].off, &st->q[i].r,
				  st->q[i].key, st->q[i].h);
	st->nq = 0;
	return rc;
}

/* As apply_run, for open's scan: a run that is mapped whole joins the
 * group (its slots prefetched now, applied APPLY_GROUP records at a
 * time, as hint entries are); another is applied at once, after the
 * group. Reopening a 1M-key store killed after its second seal (a
 * sealed segment and the tail scanned, 552,000 records): 140-163 ms
 * against 166-211 ms one record at a time (8 alternating opens). */
static int queue_run(kv_t *db, rstate *st, kv__seg *s, uint64_t off,
		     const run *rn)
{
	const uint8_t *p = kv__seg_ptr(s, off, (size_t)rn->bytes);
	int rc;

	if (!p) {
		if ((rc = flush_group(db, st, s)) != 0)
			return rc;
		return apply_run(db, st, s, off, rn);
	}
	for (uint32_t i = 0; i < rn->nrecs; i++) {
		pending_rec *q = &st->q[st->nq++];

		kv__rec_decode(p, &q->r);
		uint64_t size = kv__rec_size(q->r.klen, q->r.vlen);
		q->off = off;
		q->key = p + KV__REC_HDR;
		q->h = kv__kd_hash(q->key, q->r.klen);
		kv__kd_prefetch_find(&db->kd, q->h);
		if (st->nq == APPLY_GROUP && (rc = flush_group(db, st, s)))
			return rc;
		p += size;
		off += size;
	}
	return 0;
}

/* The first offset after off where a sound record or batch starts. */
static uint64_t resync(rstate *st, kv__seg *s, uint64_t off, uint64_t end)
{
	run rn;

	for (uint64_t p = off + 1; p + KV__REC_HDR <= end && !st->walk.err; p++)
		if (!check_run(st, s, p, end, &rn))
			return p;
	return end;
}

/* A torn tail in the newest segment: cut it (writers) or ignore it. */
static int cut_tail(kv_t *db, kv__seg *s, uint64_t off, const char *why)
{
	uint64_t lost = s->size - off;

	db->truncated_bytes += lost;
	kv__log(db, KV_LOG_WARN, "%s: torn tail at offset %" PRIu64 " (%s): "
		"%" PRIu64 " bytes %s", s->name, off, why, lost,
		db->rdonly ? "ignored" : "truncated");
	if (db->rdonly) {
		s->size = off;
		atomic_store(&s->flushed, off);
		return 0;
	}
	KV__KILLPOINT("recover.tail_found");
	int rc = kv__seg_truncate(s, off);
	if (rc == 0)
		KV__KILLPOINT("recover.tail_cut");
	return rc;
}

/* Whether [from, to) holds a hole a crash leaves: a 512-byte sector, aligned
 * as the disk writes it, that was never written reads as zeros. That is a
 * whole sector of zeros, or the end of the sector `from` lies in: an
 * append that began mid-sector shares it with older bytes, so if that
 * sector was lost while later ones landed, the appended part of it reads
 * as zeros up to the sector's end (found by test_powerloss_compact: a
 * torn batch made a strict open fail). A hole like that before sound
 * records is a torn write; other bad bytes followed by sound records are
 * damage. */
static int zero_sector(rstate *st, kv__seg *s, uint64_t from, uint64_t to)
{
	for (uint64_t p = from & ~UINT64_C(511); p + 512 <= to; p += 512) {
		uint64_t at = p < from ? from : p, n = p + 512 - at;
		const uint8_t *b = kv__walk_bytes(&st->walk, s, at, n);
		int zero = b != NULL;

		for (uint64_t i = 0; zero && i < n; i++)
			zero = b[i] == 0;
		if (zero)
			return 1;
	}
	return 0;
}

/* Skips a damaged range (KV_SALVAGE), counting it; returns where the next
 * sound record or batch starts. */
/* Salvage skips the damage [off, next). The run found after it may be the
 * rest of a batch whose first records were damaged: nothing in a record
 * tells a batch's head from its middle, and its last record looks like a
 * single put. So in a log segment that run is skipped too, and a batch is
 * never applied in part; the sound run lost counts at risk like the
 * damage. (Trusting the damaged records' own headers to tell was tried:
 * a flipped bit in batch_left fooled it, test_corrupt case 2441.)
 * Compaction copies records as single ones: nothing to skip there. */
static uint64_t skip(kv_t *db, rstate *st, kv__seg *s, uint64_t off,
		     uint64_t next, const char *why)
{
	run rn;

	if (!(s->flags & KV__SEG_F_COMPACTED) && next < s->size &&
	    !check_run(st, s, next, s->size, &rn))
		next += rn.bytes;
	/* What was lost here (a tombstone, a newer value) is older than the
	 * next sound record of this log segment; in a compacted segment, or
	 * with nothing sound after it, it could be any age. */
	uint64_t bound = UINT64_MAX;
	if (!(s->flags & KV__SEG_F_COMPACTED) && next >= s->size)
		s->lost_end = 1, bound = 0; /* bounded by the next log segment */
	else if (!(s->flags & KV__SEG_F_COMPACTED) &&
		 !check_run(st, s, next, s->size, &rn))
		bound = rn.rec.lsn;
	if (bound > db->risk_lsn)
		db->risk_lsn = bound;
	kv__log(db, KV_LOG_WARN, "%s: salvage skipped %" PRIu64
		" bytes at offset %" PRIu64 " (%s)", s->name, next - off, off,
		why);
	db->skipped_bytes += next - off;
	db->skipped_records++;
	/* Dead, so a compaction rewrites the segment without it. */
	s->dead_bytes += next - off;
	return next;
}

/* A read-only handle's tail may be taking an append from another process
 * while it is read, and its copy (scan_unmapped) is not taken in an
 * instant: pread copies a page at a time and may pause between, so the
 * copy can hold a record and not the one before it (refresh-torture saw
 * it once in about 160 runs). So before bad bytes with sound records
 * after them are called damage, they are read from the file once more:
 * the writer stored them before the records already seen, and x86 shows
 * its stores in the order made (arm64 would also need them ordered by
 * release). Returns 1 when the scan should check off again. */
static int read_again(rstate *st, kv__seg *s, uint64_t off, uint64_t next)
{
	if (st->reread == off)
		return 0;
	st->reread = off;
	/* Without a copy each record is read with pread anyway. */
	return !st->copy || kv__io_pread_all(s->fd, st->copy + off,
					     (size_t)(next - off), off) == 0;
}

/* A bad record in the log's tail: a torn write if nothing sound follows
 * or a zero hole lies before what does (cut it); damage otherwise, which
 * only KV_SALVAGE may skip. Returns 1 when the scan is over. */
static int tail_damage(kv_t *db, rstate *st, kv__seg *s, uint64_t *off,
		       const run *rn, const char *why, int *rc)
{
	uint64_t next = resync(st, s, *off, s->size);
	int hole = next < s->size && zero_sector(st, s, rn->bad, next);

	if (st->walk.err) { /* could not read: not a torn write */
		*rc = st->walk.err;
		return 1;
	}
	if (next == s->size || hole) {
		*rc = cut_tail(db, s, *off, why);
		return 1;
	}
	if (db->rdonly && read_again(st, s, *off, next))
		return 0;
	if (!(db->opts.flags & KV_SALVAGE)) {
		*rc = kv__fail(KV_ECORRUPT, "%s: bad record at offset %" PRIu64
			       ": %s; sound records follow at offset %" PRIu64
			       ", so this is damage, not a torn write",
			       s->name, *off, why, next);
		return 1;
	}
	*off = skip(db, st, s, *off, next, why);
	if (st->walk.err) { /* reading the run after it failed */
		*rc = st->walk.err;
		return 1;
	}
	return 0;
}

/* Whether [off, end) of the log's tail reads as zeros: space that appends
 * allocated ahead (kv__commit_ready) and never used. Read with pread, not
 * through the map: a writer in another process trims this space when it
 * seals the segment, and a mapped page past the new end would raise
 * SIGBUS; a short read is that trim, and counts as zeros. */
static int unused_tail(const kv__seg *s, uint64_t off, uint64_t end)
{
	uint8_t b[16384];

	while (off < end) {
		size_t want = end - off < sizeof b ? (size_t)(end - off)
						   : sizeof b;
		ssize_t got = kv__io.pread(s->fd, b, want, (off_t)off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got == 0;
		for (ssize_t i = 0; i < got; i++)
			if (b[i])
				return 0;
		off += (uint64_t)got;
	}
	return 1;
}

/* Drops the tail's unused preallocated space: no data was there, so
 * nothing is reported (a writer cuts it, a reader stops before it). */
static int cut_unused(kv_t *db, kv__seg *s, uint64_t off)
{
	if (db->rdonly) {
		s->size = off;
		atomic_store(&s->flushed, off);
		return 0;
	}
	return kv__seg_truncate(s, off);
}

static int scan(kv_t *db, rstate *st, kv__seg *s, int tail)
{
	uint64_t off = KV__FILE_HDR;
	const char *why;
	run rn;
	int rc = 0;

	while (off < s->size) {
		if ((why = check_run(st, s, off, s->size, &rn)) == NULL) {
			if ((rc = queue_run(db, st, s, off, &rn)) != 0)
				return rc;
			off += rn.bytes;
			continue;
		}
		/* Before anything that may cut the file under the map. */
		if ((rc = flush_group(db, st, s)) != 0)
			return rc;
		if (st->walk.err) {
			return st->walk.err; /* an I/O error, not damage */
		} else if (tail && (s->flags & KV__SEG_F_PREALLOC) &&
			   unused_tail(s, off, s->size)) {
			return cut_unused(db, s, off);
		} else if (tail) {
			if (tail_damage(db, st, s, &off, &rn, why, &rc))
				return rc;
		} else if (!(db->opts.flags & KV_SALVAGE)) {
			return kv__fail(KV_ECORRUPT, "%s: bad record at offset "
					"%" PRIu64 ": %s", s->name, off, why);
		} else {
			uint64_t next = resync(st, s, off, s->size);
			if (st->walk.err)
				return st->walk.err;
			off = skip(db, st, s, off, next, why);
			if (st->walk.err)
				return st->walk.err;
		}
	}
	return flush_group(db, st, s);
}

/* Logs a key readably: printable bytes as they are, others as \\xNN. */
static void log_key(kv_t *db, const uint8_t *key, size_t klen)
{
	char out[4 * 32 + 4];
	size_t n = 0;

	for (size_t i = 0; i < klen && i < 32; i++)
		n += (size_t)snprintf(out + n, sizeof out - n,
				      key[i] >= 0x20 && key[i] < 0x7f &&
				      key[i] != '\\' ? "%c" : "\\x%02x",
				      key[i]);
	if (klen > 32)
		snprintf(out + n, sizeof out - n, "...");
	kv__log(db, KV_LOG_WARN, "salvage: key at risk: %s", out);
}

/* After salvage skipped damage: a key whose newest surviving record is
 * older than something lost may have been deleted or overwritten by it
 * (a lost tombstone resurrects the key). Counts them for kv_stats and
 * logs the first few. Deleted keys count too: the lost record may have
 * put them back. */
static void count_at_risk(kv_t *db, const rstate *st)
{
	/* Records lost at the end of a log segment are older than the first
	 * record of the next log segment, if there is one. */
	for (uint32_t i = 0; i < db->nslots; i++) {
		kv__seg *s = db->segs[i];
		uint64_t bound = UINT64_MAX;

		if (!s || !s->lost_end)
			continue;
		for (uint32_t j = 0; j < db->nslots; j++) {
			kv__seg *n = db->segs[j];
			if (n && n->seq > s->seq && n->min_lsn &&
			    !(n->flags & KV__SEG_F_COMPACTED) && n->min_lsn < bound)
				bound = n->min_lsn;
		}
		if (bound > db->risk_lsn)
			db->risk_lsn = bound;
	}
	for (uint32_t id = 0; db->risk_lsn && id < db->kd.nids; id++) {
		/* Each id open inserts gets its slot in st->lsns at once
		 * (apply: insert, then grow_lsns), so a live id has one.
		 * NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
		if (!kv__kd_live(&db->kd, id) || st->lsns[id] >= db->risk_lsn)
			continue;
		if (db->keys_at_risk++ < 8)
			log_key(db, kv__kd_key(&db->kd, id),
				kv__kent_klen(kv__kd_ent(&db->kd, id)));
	}
	if (db->keys_at_risk)
		kv__log(db, KV_LOG_WARN, "salvage: %" PRIu64 " keys at risk: "
			"their newest surviving record is older than damage "
			"that was skipped", db->keys_at_risk);
}

/* Drops the DEAD entries once every file has been read. */
static void purge(kv_t *db)
{
	for (uint32_t id = 0; id < db->kd.nids; id++) {
		kv__kent *e = kv__kd_ent(&db->kd, id);

		if (!kv__kd_live(&db->kd, id) || !(kv__kent_flags(e) & KV__KF_DEAD))
			continue;
		kv__kd_remove(&db->kd, id,
			      kv__kd_hash(kv__kd_key(&db->kd, id),
					  kv__kent_klen(e)));
	}
}

/* ---- hint files ---- */

/* Checks every entry against the segment before any is applied, so a bad
 * hint is refused whole and the segment scanned instead. */
static const char *check_entries(const uint8_t *img, size_t len,
				 const kv__seg *s)
{
	uint64_t expect = KV__FILE_HDR, n = 0;
	kv__hint_cur c = {0};
	kv__hint_ent e;
	int more;

	while ((more = kv__hint_next(img, len, &c, &e)) == 1) {
		n++;
		const kv__rec *r = &e.rec;
		if (e.off != expect || r->klen == 0 || r->lsn == 0 ||
		    (r->type != KV__REC_PUT && r->type != KV__REC_DEL) ||
		    (r->flags & ~KV__RF_KNOWN) ||
		    (r->type == KV__REC_DEL && r->vlen))
			return "hint entry does not describe a record";
		expect += kv__rec_size(r->klen, r->vlen);
	}
	if (more < 0)
		return "hint entry out of bounds or undecodable";
	if (n != kv__hint_count(img, len))
		return "hint entry count mismatch";
	return expect == s->size ? NULL : "hint does not cover the segment";
}

/* Applies the entries of a checked hint in groups, first hashing a whole
 * group and prefetching each key's filter block and table slot: in a big
 * table both are cache misses, and this overlaps them instead of taking
 * them one after another. */
static int apply_hint(kv_t *db, rstate *st, kv__seg *s, const uint8_t *img,
		      size_t len)
{
	kv__hint_ent e[APPLY_GROUP];
	uint64_t h[APPLY_GROUP];
	kv__hint_cur c = {0};
	int n, rc = 0;

	do {
		for (n = 0; n < APPLY_GROUP &&
			    kv__hint_next(img, len, &c, &e[n]) == 1; n++) {
			h[n] = kv__kd_hash(e[n].key, e[n].rec.klen);
			kv__kd_prefetch_find(&db->kd, h[n]);
		}
		for (int i = 0; i < n && rc == 0; i++)
			rc = apply_hashed(db, st, s, e[i].off, &e[i].rec,
					  e[i].key, h[i]);
	} while (rc == 0 && n == APPLY_GROUP);
	return rc;
}

/* A sealed segment never shrinks, so a sound hint that covers more bytes
 * than its segment holds proves the segment lost its end: a scan would
 * notice nothing when the cut fell on a record boundary, and the records
 * the hint lists would be gone without a word (found by test_corrupt).
 * Returns the size the hint covers then, else 0. The hint is mapped again,
 * with room for one of a full-size segment, since s->size is the cut
 * size. */
static uint64_t hint_says_longer(kv_t *db, const kv__seg *s, const char *path)
{
	const uint8_t *img;
	size_t len;
	uint64_t claim = 0;

	if (kv__io_map_file(path, 2 * (s->size + db->opts.max_file_size) + 64,
			    &img, &len))
		return 0;
	if (len >= KV__FILE_HDR + KV__HINT_TRAILER)
		claim = kv__get64(img + len - KV__HINT_TRAILER + 16);
	int cut = claim > s->size && !kv__hint_check(img, len, s->seq, claim);
	kv__io_unmap_file(img, len);
	return cut ? claim : 0;
}

/* Strict: such a cut fails the open (*rc = KV_ECORRUPT). */
static int cut_short(kv_t *db, const kv__seg *s, const char *path, int *rc)
{
	uint64_t claim = hint_says_longer(db, s, path);

	if (claim)
		*rc = kv__fail(KV_ECORRUPT, "%s: offset %" PRIu64 ": file ends "
			       "here, but its hint covers %" PRIu64 " bytes: "
			       "records were cut off", s->name, s->size, claim);
	return claim != 0;
}

/* Salvage reads no hints, but one that proves its segment was cut tells
 * what a scan cannot see: records lost with no damage left to skip. Their
 * keys are at risk as after a skip at the segment's end. */
static void note_cut(kv_t *db, kv__seg *s)
{
	char path[PATH_MAX];
	const char *name = kv__seg_path(path, db->dir, s->seq,
					 KV__HINT_SUFFIX);
	uint64_t claim = hint_says_longer(db, s, path);
	if (!claim)
		return;
	kv__log(db, KV_LOG_WARN, "%s: ends at %" PRIu64 " but %s covers %"
		PRIu64 " bytes: salvage lost the records cut off", s->name,
		s->size, name, claim);
	if (s->flags & KV__SEG_F_COMPACTED)
		db->risk_lsn = UINT64_MAX; /* they could be of any age */
	else
		s->lost_end = 1;
}

/* kv_refresh: NULL when the hint's LSNs rise from above `after` (a log
 * segment written after everything indexed); else the scan that follows
 * a refusal finds out what it is. */
static const char *hint_rises(const uint8_t *img, size_t len, uint64_t after)
{
	kv__hint_cur c = {0};
	kv__hint_ent e;

	while (kv__hint_next(img, len, &c, &e) == 1) {
		if (e.rec.lsn <= after)
			return "hint entries older than the records indexed";
		after = e.rec.lsn;
	}
	return NULL;
}

/* Loads s from its hint file: 1 when done, 0 to scan instead. */
static int load_hint(kv_t *db, rstate *st, kv__seg *s, int *rc)
{
	char path[PATH_MAX];
	const char *name = kv__seg_path(path, db->dir, s->seq,
					 KV__HINT_SUFFIX);
	const uint8_t *img;
	size_t len;
	const char *why;

	/* A hint is never larger than 2 x its segment plus its framing. */
	if (kv__io_map_file(path, 2 * s->size + 64, &img, &len)) {
		why = "unreadable";
		goto reject;
	}
	why = kv__hint_check(img, len, s->seq, s->size);
	if (!why)
		why = check_entries(img, len, s);
	if (!why && st->follow)
		why = hint_rises(img, len, st->max_lsn);
	if (why) {
		kv__io_unmap_file(img, len);
		goto reject;
	}
	uint64_t n = kv__hint_count(img, len);
	if (n && (kv__kd_reserve(&db->kd, kv__kd_count(&db->kd) + n) ||
		  (!st->follow && grow_lsns(st, (uint32_t)(db->kd.nids + n)))))
		*rc = kv__fail(KV_ENOMEM, "out of memory rebuilding the index");
	if (*rc == 0)
		*rc = apply_hint(db, st, s, img, len);
	kv__io_unmap_file(img, len);
	s->has_hint = 1;
	db->hint_segments++;
	return 1;
reject:
	if (cut_short(db, s, path, rc))
		return 1;
	db->hint_rejected++;
	kv__log(db, KV_LOG_WARN, "%s: %s; scanning %s instead", name, why,
		s->name);
	return 0;
}

/* ---- the open sequence ---- */

/* A segment whose header is damaged cannot be read at all: salvage leaves
 * it out, and a writer renames it to "<name>.damaged" so that later opens
 * without KV_SALVAGE work again, while its bytes stay for inspection. */
static void set_aside(kv_t *db, uint64_t seq)
{
	char from[PATH_MAX], to[PATH_MAX + 16];

	kv__log(db, KV_LOG_WARN, "salvage skipped a file: %s", kv_errmsg());
	db->skipped_records++;
	db->risk_lsn = UINT64_MAX;
	if (db->rdonly)
		return;
	const char *name = kv__seg_path(from, db->dir, seq, KV__SEG_SUFFIX);
	snprintf(to, sizeof to, "%s.damaged", from);
	if (kv__io.rename(from, to) || kv__io_fsync_dir(db->dir))
		kv__log(db, KV_LOG_ERROR, "%s: could not set it aside", from);
	else
		kv__log(db, KV_LOG_WARN, "%s: set aside as %s.damaged", name,
			name);
}

/* Opens and lists every segment; a salvage open skips unreadable ones. */
static int open_all(kv_t *db, const listing *l, kv__seg **tail)
{
	*tail = NULL;
	for (size_t i = 0; i < l->nsegs; i++) {
		kv__seg *s;
		int rc = kv__seg_open(db->dir, l->segs[i], db->rdonly, 0, &s);

		if (rc == KV_ECORRUPT && (db->opts.flags & KV_SALVAGE)) {
			set_aside(db, l->segs[i]);
			continue;
		}
		if (rc)
			return rc;
		if ((rc = kv__db_add_seg(db, s)) != 0) {
			kv__seg_close(s);
			return rc;
		}
		/* The log's tail is the newest segment compaction did not
		 * write: the only one a crash can leave torn. */
		if (!(s->flags & KV__SEG_F_COMPACTED))
			*tail = s;
	}
	return 0;
}

/* A read-only handle scans the log's tail from a copy read with pread,
 * not through its mapping: a writer in another process may cut back the
 * bytes of a failed append meanwhile, and touching a mapped page past the
 * new end of the file raises SIGBUS, where pread just comes back short.
 * The copy (one pread) is as fast to scan as the mapping. A short read
 * means the file was cut back while read: read it again at its new size
 * (the scan then ends there). Without memory for the copy, or if the file
 * keeps changing, each record is read with pread (kv__seg_ptr maps
 * nothing past `flushed`), about twice as slow. After the scan `flushed`
 * is the end of the sound records, which no writer cuts (kv_refresh goes
 * on from there). */
#define COPY_TRIES 10

static uint8_t *copy_tail(kv__seg *s)
{
	uint8_t *copy = s->size <= SIZE_MAX ? malloc((size_t)s->size) : NULL;
	uint64_t size;

	for (int i = 0; copy && i < COPY_TRIES; i++) {
		if (kv__io.fstat_size(s->fd, &size))
			break;
		if (size < s->size)
			s->size = size;
		if (kv__io_pread_all(s->fd, copy, (size_t)s->size, 0) == 0)
			return copy;
		if (errno != ENODATA)
			break;
	}
	free(copy);
	return NULL;
}

static int scan_unmapped(kv_t *db, rstate *st, kv__seg *s)
{
	uint8_t *map = s->map, *copy = copy_tail(s);
	size_t map_len = s->map_len;

	if (copy) {
		s->map = copy;
		s->map_len = (size_t)s->size;
	} else {
		atomic_store(&s->flushed, KV__FILE_HDR);
	}
	st->copy = copy;
	int rc = scan(db, st, s, 1);
	st->copy = NULL;
	s->map = map;
	s->map_len = map_len;
	free(copy);
	atomic_store(&s->flushed, s->size);
	return rc;
}

/* Whether s is loaded from its hint file, if that proves sound: a sealed
 * segment with one. Salvage reads every record: a hint would hide damage
 * in the segment it describes. */
static int has_hint(const listing *l, const kv__seg *s, const kv__seg *tail)
{
	return s != tail && listed(l->hints, l->nhints, s->seq);
}

static int hinted(const kv_t *db, const listing *l, const kv__seg *s,
		  const kv__seg *tail)
{
	return has_hint(l, s, tail) && !(db->opts.flags & KV_SALVAGE);
}

/* The keydir's table made once, at the size the hints' trailers add up
 * to: loaded hint by hint, it grew at each, and growing it into 16 MB
 * for the second 453,438 entries of a 1M-key store took 10.4 ms of a
 * 92 ms reopen after a crash (21-53 ms where the VM's host had taken the
 * new memory back), and touched the 8 MB table before it as well. The
 * counts are unchecked here (load_hint checks each hint), so this is a
 * size only, and an error leaves the growth to load_hint. Hints of
 * segments that hold the same keys add up to more than the keys: the
 * table is then bigger than growth would have made it, by up to the
 * overwrites since the last compaction. */
static void reserve_for_hints(kv_t *db, const listing *l, const kv__seg *tail)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < db->nslots; i++) {
		kv__seg *s = db->segs[i];
		char path[PATH_MAX];
		uint8_t t[KV__HINT_TRAILER];

		if (!s || !hinted(db, l, s, tail))
			continue;
		kv__seg_path(path, db->dir, s->seq, KV__HINT_SUFFIX);
		if (kv__io_read_end(path, t, sizeof t) == 0)
			n += kv__hint_claimed(t, s->size);
	}
	(void)kv__kd_reserve(&db->kd, n);
}

static int load_all(kv_t *db, rstate *st, const listing *l, kv__seg *tail)
{
	int rc = 0;

	reserve_for_hints(db, l, tail);
	for (uint32_t i = 0; i < db->nslots && rc == 0; i++) {
		kv__seg *s = db->segs[i];

		if (!s)
			continue;
		if (hinted(db, l, s, tail) && load_hint(db, st, s, &rc))
			continue;
		if (has_hint(l, s, tail) && (db->opts.flags & KV_SALVAGE))
			note_cut(db, s);
		if (rc == 0 && db->rdonly && s == tail)
			rc = scan_unmapped(db, st, s);
		else if (rc == 0)
			rc = scan(db, st, s, s == tail);
	}
	return rc;
}

/* Hints whose segment is gone (a crash between the two unlinks). */
static void remove_orphan_hints(kv_t *db, const listing *l)
{
	for (size_t i = 0; !db->rdonly && i < l->nhints; i++) {
		char path[PATH_MAX];

		if (listed(l->segs, l->nsegs, l->hints[i]))
			continue;
		kv__seg_path(path, db->dir, l->hints[i], KV__HINT_SUFFIX);
		kv__io.unlink(path);
	}
}

/* The writer appends to the log's tail, or to a new segment. */
static int make_active(kv_t *db, kv__seg *tail)
{
	kv__seg *s;
	int rc;

	if (db->rdonly)
		return 0;
	if (tail) {
		kv__seg_map_active(tail, db->opts.max_file_size);
		db->active = tail;
		return 0;
	}
	rc = kv__seg_create(db->dir, ++db->max_seq, kv__commit_flags(db),
			    db->opts.file_mode, db->opts.max_file_size, 0, &s);
	if (rc == 0 && (rc = kv__db_add_seg(db, s)) != 0)
		kv__seg_close(s);
	if (rc == 0)
		db->active = s;
	return rc;
}

int kv__recover(kv_t *db)
{
	rstate st = { .now = kv__now(db) };
	listing l;
	kv__seg *tail = NULL;
	int rc = list_dir(db, &l);

	db->max_seq = l.max_seq;
	if (rc == 0)
		rc = kv__repl_load(db);
	if (rc == 0)
		rc = carry_out_obsolete(db, &l);
	if (rc == 0)
		rc = open_all(db, &l, &tail);
	if (rc == 0)
		rc = load_all(db, &st, &l, tail);
	if (rc == 0) {
		count_at_risk(db, &st);
		purge(db);
		remove_orphan_hints(db, &l);
		/* A replica's position (kv_repl_position) is its highest
		 * LSN, since records keep the primary's; or, if higher, the
		 * position of the snapshot it was built from. */
		db->next_lsn = (st.max_lsn > db->repl.base ? st.max_lsn :
				db->repl.base) + 1;
		rc = make_active(db, tail);
	}
	listing_free(&l);
	free(st.lsns);
	kv__walk_free(&st.walk);
	return rc;
}

/* ---- kv_refresh (refresh.c) ---- */

/* With wlock held; klock is taken (exclusive) for each run applied, so
 * readers of the handle wait for one run at a time and see each whole.
 * The bytes past s->size are read with pread (as scan_unmapped does, for
 * the same reason: `flushed` stays at the end of what is indexed, so
 * kv__seg_ptr never maps them), and checked, then applied, run by run
 * with open's own checks and batch rule. A run that is incomplete or
 * unsound is a write in progress: stop there, cut nothing; a pread that
 * comes back short (the writer cut back a failed append meanwhile) is the
 * same. */
int kv__recover_follow(kv_t *db, kv__seg *s, uint64_t end, int *stopped)
{
	rstate st = { .now = kv__now(db), .follow = 1,
		      .max_lsn = db->next_lsn - 1 };
	uint64_t off = s->size;
	run rn;
	int rc = 0;

	*stopped = 0;
	while (rc == 0 && off < end) {
		if (check_run(&st, s, off, end, &rn) != NULL) {
			*stopped = 1;
			if (st.walk.err && !(st.walk.err == KV_EIO &&
					     errno == ENODATA))
				rc = st.walk.err;
			break;
		}
		if (rn.rec.lsn <= st.max_lsn) {
			rc = KV__STALE; /* not newer than the index */
			break;
		}
		kv__klock_wr(&db->klock);
		if ((rc = apply_run(db, &st, s, off, &rn)) == 0) {
			off += rn.bytes;
			s->size = off;
			atomic_store(&s->flushed, off);
		}
		kv__klock_unlock(&db->klock);
	}
	if (st.max_lsn >= db->next_lsn)
		db->next_lsn = st.max_lsn + 1;
	kv__walk_free(&st.walk);
	return rc;
}

int kv__recover_follow_hint(kv_t *db, kv__seg *s, int *rc)
{
	rstate st = { .now = kv__now(db), .follow = 1,
		      .max_lsn = db->next_lsn - 1 };

	*rc = 0;
	int done = load_hint(db, &st, s, rc);
	if (st.max_lsn >= db->next_lsn)
		db->next_lsn = st.max_lsn + 1;
	return done;
}
