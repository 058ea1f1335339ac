/* stats.c - kv_stats and kv_stats_segments. */
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "commit.h"
#include "db.h"
#include "error.h"
#include "record.h"

/* Calls fn for every key whose value has expired: they stay in the keydir
 * until overwritten or compacted, and their bytes count as dead. Costs
 * one header read per TTL key; called with klock held. */
static void each_expired(kv_t *db, void (*fn)(void *ctx, uint32_t slot,
					      uint64_t size), void *ctx)
{
	uint64_t now = kv__now(db);

	for (uint32_t id = 0; id < db->kd.nids; id++) {
		const kv__kent *e = kv__kd_ent(&db->kd, id);
		uint8_t h[KV__REC_HDR];
		kv__rec r;

		if (!kv__kd_live(&db->kd, id) || !(kv__kent_flags(e) & KV__KF_TTL))
			continue;
		kv__seg *s = db->segs[KV__LOC_SLOT(e->loc)];
		if (kv__seg_read(s, KV__LOC_OFF(e->loc), h, sizeof h) ||
		    kv__rec_decode(h, &r) || r.expire_ms > now)
			continue;
		fn(ctx, KV__LOC_SLOT(e->loc),
		   kv__rec_size(kv__kent_klen(e), kv__kent_vlen(e)));
	}
}

static void expire_total(void *ctx, uint32_t slot, uint64_t size)
{
	struct kv_stats *st = ctx;

	(void)slot;
	st->live_keys--;
	st->live_bytes -= size;
	st->dead_bytes += size;
}

KV_API int kv_stats(kv_t *db, struct kv_stats *out)
{
	if (!db || !out || out->size != sizeof *out)
		return kv__fail(KV_EINVAL, "kv_stats: NULL argument or "
				"out->size is not sizeof(struct kv_stats)");
	memset(out, 0, sizeof *out);
	out->size = sizeof *out;
	out->sync_mode = db->opts.sync_mode;
	/* wlock too: segment sizes and the LSN move under it. */
	pthread_mutex_lock(&db->wlock);
	int rc = kv__settle_wl(db);
	if (rc) {
		pthread_mutex_unlock(&db->wlock);
		return rc;
	}
	kv__klock_rd(&db->klock);
	for (uint32_t i = 0; i < db->nslots; i++) {
		kv__seg *s = db->segs[i];
		if (!s)
			continue;
		out->segments++;
		out->disk_bytes += s->size;
		out->live_bytes += s->live_bytes;
		out->dead_bytes += s->dead_bytes;
	}
	out->live_keys = kv__kd_count(&db->kd);
	out->keydir_bytes = kv__kd_bytes(&db->kd) + db->order.bytes;
	each_expired(db, expire_total, out);
	kv__klock_unlock(&db->klock);
	out->last_lsn = db->next_lsn - 1;
	pthread_mutex_unlock(&db->wlock);
	out->recovered_truncated_bytes = db->truncated_bytes;
	out->recovered_skipped_bytes = db->skipped_bytes;
	out->recovered_skipped_records = db->skipped_records;
	out->recovered_keys_at_risk = db->keys_at_risk;
	out->compressed_values = atomic_load(&db->compressed_values);
	out->compression_saved_bytes = atomic_load(&db->compress_saved);
	out->recovered_hint_segments = db->hint_segments;
	out->recovered_hint_rejected = db->hint_rejected;
	out->repl_hook_calls = atomic_load(&db->repl.calls);
	out->repl_hook_errors = atomic_load(&db->repl.errors);
	pthread_mutex_lock(&db->compact.mu);
	out->compactions = db->compact.runs;
	out->compaction_freed_bytes = db->compact.freed;
	pthread_mutex_unlock(&db->compact.mu);
	return 0;
}

/* Per-segment figures, indexed by slot while they are collected. */
struct by_slot {
	kv_segment_stats *all;
	uint32_t *index;      /* slot -> position in all */
};

static void expire_segment(void *ctx, uint32_t slot, uint64_t size)
{
	struct by_slot *b = ctx;
	kv_segment_stats *s = &b->all[b->index[slot]];

	s->live_bytes -= size;
	s->dead_bytes += size;
}

static int by_seq(const void *a, const void *b)
{
	const kv_segment_stats *x = a, *y = b;

	return (x->seq > y->seq) - (x->seq < y->seq);
}

KV_API int kv_stats_segments(kv_t *db, kv_segment_stats *arr, size_t cap,
			     size_t *n)
{
	kv_segment_stats *all;
	size_t k = 0;

	if (!db || !n || (!arr && cap))
		return kv__fail(KV_EINVAL, "kv_stats_segments: NULL argument");
	pthread_mutex_lock(&db->wlock);
	int rc = kv__settle_wl(db);
	if (rc) {
		pthread_mutex_unlock(&db->wlock);
		return rc;
	}
	kv__klock_rd(&db->klock);
	all = calloc(db->nsegs ? db->nsegs : 1, sizeof *all);
	uint32_t *index = calloc(db->nslots ? db->nslots : 1, sizeof *index);
	for (uint32_t i = 0; all && index && i < db->nslots; i++) {
		kv__seg *s = db->segs[i];
		if (!s)
			continue;
		index[i] = (uint32_t)k;
		all[k++] = (kv_segment_stats){
			.seq = s->seq, .bytes = s->size,
			.live_bytes = s->live_bytes,
			.dead_bytes = s->dead_bytes,
			.active = s == db->active,
			.flags = ((s->flags & KV__SEG_F_COMPACTED) ?
				  KV_SEGMENT_COMPACTED : 0) |
				 (s->has_hint ? KV_SEGMENT_HINT : 0),
		};
	}
	if (all && index)
		each_expired(db, expire_segment,
			     &(struct by_slot){ .all = all, .index = index });
	kv__klock_unlock(&db->klock);
	pthread_mutex_unlock(&db->wlock);
	free(index);
	if (!all || !index) {
		free(all);
		return kv__fail(KV_ENOMEM, "out of memory for segment figures");
	}
	qsort(all, k, sizeof *all, by_seq);
	*n = k;
	if (arr && cap)
		memcpy(arr, all, (cap < k ? cap : k) * sizeof *all);
	free(all);
	return 0;
}
