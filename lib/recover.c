/*
 * recover.c - rebuild the keydir from the segment files at open.
 *
 * Every segment is scanned in sequence order; per key the record with the
 * highest LSN wins, so the order of files does not matter (compaction may
 * write old records into new files). Tombstones and expired records stay in
 * the keydir as DEAD entries until all files are read, because an older
 * record of the same key may still turn up in a later file.
 *
 * A bad record at the tail of the newest segment is a torn write from a
 * crash: cut away and reported. A bad record anywhere else fails the open
 * with KV_ECORRUPT naming file and offset, unless KV_SALVAGE is given.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "error.h"
#include "io.h"
#include "record.h"

typedef struct rstate {
	uint64_t *lsns;      /* per keydir id: LSN of its newest record */
	uint32_t nlsns;
	uint8_t *scratch;    /* a record's bytes when it is not mapped */
	size_t scap;
	uint64_t max_lsn;
	uint64_t now;
} rstate;

typedef struct run {
	kv__rec rec;         /* the first record */
	uint64_t bytes;      /* of the record, or of the whole batch */
	uint32_t nrecs;
} run;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Removes files left by a create that crashed before its rename. */
static void remove_tmp(const char *dir, const char *name)
{
	char path[PATH_MAX];
	size_t n = strlen(name);

	if (n < 5 || strcmp(name + n - 4, ".tmp") != 0)
		return;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	kv__io.unlink(path);
}

/* The sorted sequence numbers of the segment files in the directory. */
static int list_segments(kv_t *db, uint64_t **out, size_t *n)
{
	DIR *d = opendir(db->dir);
	struct dirent *de;
	uint64_t *v = NULL, seq;
	size_t cap = 0;

	*n = 0;
	if (!d)
		return kv__fail_sys("%s: cannot list directory", db->dir);
	while ((de = readdir(d)) != NULL) {
		if (!db->rdonly)
			remove_tmp(db->dir, de->d_name);
		if (!kv__seg_parse_name(de->d_name, &seq))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			uint64_t *nv = reallocarray(v, cap, sizeof *v);
			if (!nv) {
				free(v);
				closedir(d);
				return kv__fail(KV_ENOMEM, "out of memory");
			}
			v = nv;
		}
		v[(*n)++] = seq;
	}
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof *v, cmp_u64);
	*out = v;
	return 0;
}

/* The bytes of a record, from the map or read into the scratch buffer. */
static const uint8_t *record_bytes(rstate *st, kv__seg *s, uint64_t off,
				   uint64_t size)
{
	const uint8_t *p = kv__seg_ptr(s, off, size);

	if (p)
		return p;
	if (size > st->scap) {
		uint8_t *b = realloc(st->scratch, size);
		if (!b)
			return NULL;
		st->scratch = b;
		st->scap = size;
	}
	return kv__seg_read(s, off, st->scratch, size) ? NULL : st->scratch;
}

/* Checks the record at off; its bounds come first, so a lying length
 * never causes an allocation or a read past the end. */
static const char *check_one(rstate *st, kv__seg *s, uint64_t off,
			     uint64_t end, kv__rec *r)
{
	uint8_t h[KV__REC_HDR];
	const char *why;
	const uint8_t *p;

	if (end - off < KV__REC_HDR)
		return "truncated record header";
	if (kv__seg_read(s, off, h, sizeof h))
		return "unreadable record header";
	if ((why = kv__rec_decode(h, r)) != NULL)
		return why;
	if (kv__rec_size(r->klen, r->vlen) > end - off)
		return "record runs past the end of the file";
	p = record_bytes(st, s, off, kv__rec_size(r->klen, r->vlen));
	if (!p)
		return "unreadable record";
	return kv__rec_crc_ok(r, p) ? NULL : "checksum mismatch";
}

/* Checks a record, or a whole batch when the record starts one: a batch
 * counts only if every record of it is present and sound. */
static const char *check_run(rstate *st, kv__seg *s, uint64_t off,
			     uint64_t end, run *out)
{
	const char *why = check_one(st, s, off, end, &out->rec);
	kv__rec prev = out->rec, r;
	uint64_t at = off + kv__rec_size(prev.klen, prev.vlen);

	if (why)
		return why;
	out->nrecs = 1;
	while (prev.batch_left > 0) {
		if ((why = check_one(st, s, at, end, &r)) != NULL)
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

/* Marks the record an entry points at as dead in its segment. */
static void retire(kv_t *db, const kv__kent *e)
{
	kv__seg *old = db->segs[KV__LOC_SLOT(e->loc)];
	uint64_t size = kv__rec_size(kv__kent_klen(e), e->vlen);

	if (kv__kent_flags(e) & KV__KF_DEAD)
		return; /* a tombstone's bytes were counted dead already */
	old->live_bytes -= size;
	old->dead_bytes += size;
}

static int apply(kv_t *db, rstate *st, kv__seg *s, uint64_t off,
		 const kv__rec *r, const uint8_t *key)
{
	uint64_t size = kv__rec_size(r->klen, r->vlen);
	uint64_t h = kv__kd_hash(key, r->klen);
	uint32_t id = kv__kd_find(&db->kd, key, r->klen, h);
	int dead = r->type == KV__REC_DEL ||
		   (r->expire_ms && r->expire_ms <= st->now);
	uint32_t flags = dead ? KV__KF_DEAD : r->expire_ms ? KV__KF_TTL : 0;

	if (r->lsn > st->max_lsn)
		st->max_lsn = r->lsn;
	if (id != UINT32_MAX && r->lsn <= st->lsns[id]) {
		s->dead_bytes += size; /* an older copy: superseded */
		return 0;
	}
	if (id != UINT32_MAX) {
		kv__kent *e = kv__kd_ent(&db->kd, id);
		retire(db, e);
		e->loc = KV__LOC(s->slot, off);
		e->vlen = r->vlen;
		kv__kd_set_flags(&db->kd, id, flags);
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

static int apply_run(kv_t *db, rstate *st, kv__seg *s, uint64_t off,
		     const run *rn)
{
	for (uint32_t i = 0; i < rn->nrecs; i++) {
		uint8_t h[KV__REC_HDR];
		kv__rec r;
		const uint8_t *p;

		kv__seg_read(s, off, h, sizeof h);
		kv__rec_decode(h, &r);
		p = record_bytes(st, s, off, KV__REC_HDR + (uint64_t)r.klen);
		if (!p)
			return kv__fail(KV_ENOMEM, "out of memory reading %s",
					s->name);
		int rc = apply(db, st, s, off, &r, p + KV__REC_HDR);
		if (rc)
			return rc;
		off += kv__rec_size(r.klen, r.vlen);
	}
	return 0;
}

/* The first offset after off where a sound record or batch starts. */
static uint64_t resync(rstate *st, kv__seg *s, uint64_t off, uint64_t end)
{
	run rn;

	for (uint64_t p = off + 1; p + KV__REC_HDR <= end; p++)
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
	return kv__seg_truncate(s, off);
}

static int scan(kv_t *db, rstate *st, kv__seg *s, int newest)
{
	uint64_t off = KV__FILE_HDR, end = s->size;
	const char *why;
	run rn;

	while (off < end) {
		if ((why = check_run(st, s, off, end, &rn)) == NULL) {
			int rc = apply_run(db, st, s, off, &rn);
			if (rc)
				return rc;
			off += rn.bytes;
			continue;
		}
		if (newest)
			return cut_tail(db, s, off, why);
		if (!(db->opts.flags & KV_SALVAGE))
			return kv__fail(KV_ECORRUPT, "%s: bad record at offset "
					"%" PRIu64 ": %s", s->name, off, why);
		uint64_t next = resync(st, s, off, end);
		kv__log(db, KV_LOG_WARN, "%s: salvage skipped %" PRIu64
			" bytes at offset %" PRIu64 " (%s)", s->name,
			next - off, off, why);
		db->skipped_bytes += next - off;
		db->skipped_records++;
		off = next;
	}
	return 0;
}

/* Drops the DEAD entries once every file has been read. */
static void purge(kv_t *db)
{
	for (uint32_t id = 0; id < db->kd.nids; id++) {
		kv__kent *e = kv__kd_ent(&db->kd, id);

		if (e->key == 0 || !(kv__kent_flags(e) & KV__KF_DEAD))
			continue;
		kv__kd_remove(&db->kd, id,
			      kv__kd_hash(kv__kd_key(&db->kd, id),
					  kv__kent_klen(e)));
	}
}

static int open_one(kv_t *db, rstate *st, uint64_t seq, int newest)
{
	uint64_t map = newest && !db->rdonly ? db->opts.max_file_size : 0;
	kv__seg *s;
	int rc = kv__seg_open(db->dir, seq, db->rdonly, map, &s);

	if (rc == KV_ECORRUPT && (db->opts.flags & KV_SALVAGE)) {
		kv__log(db, KV_LOG_WARN, "salvage skipped a file: %s",
			kv_errmsg());
		db->skipped_records++;
		return 0;
	}
	if (rc)
		return rc;
	if ((rc = kv__db_add_seg(db, s)) != 0) {
		kv__seg_close(s);
		return rc;
	}
	if ((rc = scan(db, st, s, newest)) != 0)
		return rc;
	if (newest && !db->rdonly)
		db->active = s;
	return 0;
}

int kv__recover(kv_t *db)
{
	rstate st = { .now = kv__now(db) };
	uint64_t *seqs = NULL;
	size_t n = 0;
	int rc = list_segments(db, &seqs, &n);

	if (rc)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = open_one(db, &st, seqs[i], i + 1 == n);
	if (rc == 0) {
		purge(db);
		db->next_lsn = st.max_lsn + 1;
		if (!db->active && !db->rdonly) {
			kv__seg *s;
			uint64_t seq = n ? seqs[n - 1] + 1 : 1;
			rc = kv__seg_create(db->dir, seq, db->opts.file_mode,
					    db->opts.max_file_size, 0, &s);
			if (rc == 0 && (rc = kv__db_add_seg(db, s)) != 0)
				kv__seg_close(s);
			if (rc == 0)
				db->active = s;
		}
	}
	free(seqs);
	free(st.lsns);
	free(st.scratch);
	return rc;
}
