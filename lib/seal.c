/*
 * seal.c - hint files for sealed log segments.
 *
 * Compaction writes a hint beside each of its outputs. A log segment sealed
 * by rollover gets its hint here, afterwards: from the background thread
 * after each seal, and at kv_close for any still without one (stores opened
 * with KV_NO_AUTO_COMPACT). The next open then reads hints for every sealed
 * segment and scans only the log's tail, after a crash as after a clean
 * close. A sealed segment never changes, and open checks a hint against
 * its segment's number and size before using it; a hint that cannot be
 * built or written only means a scan at open, so failures here are logged,
 * never returned.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "lock.h"
#include "db.h"
#include "hint.h"
#include "io.h"
#include "walk.h"

/* A sealed segment without a hint, with a reference taken; or NULL. */
static kv__seg *next_unhinted(kv_t *db)
{
	kv__seg *found = NULL;

	/* wlock: db->active changes under it (rollover). */
	pthread_mutex_lock(&db->wlock);
	kv__klock_rd(&db->klock);
	for (uint32_t i = 0; i < db->nslots && !found; i++) {
		kv__seg *s = db->segs[i];

		if (s && s != db->active && !s->has_hint && !s->hint_tried) {
			atomic_fetch_add(&s->refs, 1);
			found = s;
		}
	}
	kv__klock_unlock(&db->klock);
	pthread_mutex_unlock(&db->wlock);
	return found;
}

/* Walks every record of s into h; NULL, or why no hint can be built. A
 * damaged record is left for open to find and report. */
static const char *build(kv__seg *s, kv__hint_buf *h)
{
	kv__walk w = {0};
	const char *why = NULL;

	for (uint64_t off = KV__FILE_HDR; off < s->size && !why;) {
		const uint8_t *rec;
		kv__rec r;

		why = kv__walk_check(&w, s, off, s->size, &r, &rec);
		if (w.err)
			why = "segment unreadable";
		if (!why) {
			kv__hint_add(h, &r, off, rec + KV__REC_HDR);
			off += kv__rec_size(r.klen, r.vlen);
		}
	}
	kv__walk_free(&w);
	if (!why && kv__hint_finish(h, s->size))
		why = "out of memory";
	return why;
}

static void hint_one(kv_t *db, kv__seg *s)
{
	char path[PATH_MAX];
	const char *name = kv__seg_path(path, db->dir, s->seq, KV__HINT_SUFFIX);
	kv__hint_buf h;
	kv__io_stream w;
	const char *why = NULL;

	/* The entries the writer kept as it appended (commit.c, hint_run),
	 * when they cover the whole segment; else the segment is read back.
	 * Either way the hint is written as it is finished or built: held
	 * whole, a 64 MiB segment's hint was 25-34 MB of heap (56-byte
	 * entries then) while the writer went on. */
	kv__hint_buf *wh = s->wh;
	int kept = wh && !wh->failed && wh->next_off == s->size;

	s->wh = NULL; /* sealed: the writer is done with it */
	if (kept) {
		h = *wh; /* takes its entries */
	} else {
		if (wh)
			kv__hint_free(wh);
		kv__hint_begin(&h, s->seq);
	}
	free(wh);
	if (kv__io_stream_open(&w, path, db->opts.file_mode))
		why = "cannot write it";
	else
		kv__hint_stream(&h, kv__io_stream_sink, &w);
	if (!why && !kept)
		why = build(s, &h);
	else if (!why && kv__hint_finish(&h, s->size))
		why = "out of memory";
	if (!why && (kv__hint_drain(&h) || kv__io_stream_commit(&w, path)))
		why = "cannot write it";
	if (why)
		kv__io_stream_abort(&w);
	kv__hint_free(&h);
	/* Under klock, because kv_stats_segments reads the flags under it. */
	kv__klock_wr(&db->klock);
	s->hint_tried = 1;
	s->has_hint = !why;
	kv__klock_unlock(&db->klock);
	if (why)
		kv__log(db, KV_LOG_WARN, "%s: no hint for %s: %s", name,
			s->name, why);
}

void kv__seal_hints(kv_t *db)
{
	kv__seg *s;

	if (db->rdonly)
		return;
	/* No compaction may remove a segment while its hint is written, or
	 * the hint would outlive it (open deletes such orphans, but why
	 * leave one). */
	pthread_mutex_lock(&db->compact.run);
	while (!atomic_load(&db->poisoned) && (s = next_unhinted(db))) {
		hint_one(db, s);
		kv__seg_unref(s);
	}
	pthread_mutex_unlock(&db->compact.run);
}
