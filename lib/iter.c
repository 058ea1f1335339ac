/*
 * iter.c - kv_foreach (keydir order) and kv_scan (key order).
 *
 * Both collect a small window of records under the shared keydir lock
 * (segments pinned, nothing copied), drop the lock, then check each record
 * and call back. The callback therefore runs with no lock held and may use
 * the store; the next window starts after the last key seen, so changes
 * made meanwhile never derail the walk.
 */
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "commit.h"
#include "db.h"
#include "error.h"
#include "read.h"

#define WINDOW 128

typedef struct window {
	kv__fetch f[WINDOW];
	size_t n;
} window;

/* Unpins every record of the window. */
static void release_all(window *w)
{
	kv__fetch_release_n(w->f, &w->n);
}

/* Checks each fetched record and calls fn; expired ones are skipped and
 * do not count against a limit. *delivered counts the calls made. */
static int deliver(kv_t *db, window *w, kv_pair_fn fn, void *ctx,
		   size_t *delivered)
{
	int rc = 0;

	for (size_t i = 0; i < w->n && rc == 0; i++) {
		int called;

		rc = kv__fetch_call(db, &w->f[i], fn, ctx, &called);
		if (rc == KV_ENOTFOUND && !called)
			rc = 0;
		*delivered += (size_t)called;
	}
	release_all(w);
	return rc;
}

/* Ids are stable while a key lives, so walking them in order sees every key
 * that lives throughout exactly once. */
static int fill_by_id(kv_t *db, window *w, uint32_t *next, int *more)
{
	int rc = kv__settle(db);

	if (rc)
		return rc;
	kv__klock_rd(&db->klock);
	for (; *next < db->kd.nids && w->n < WINDOW && rc == 0; (*next)++)
		if (kv__kd_live(&db->kd, *next))
			if ((rc = kv__fetch_locked(db, *next, &w->f[w->n])) == 0)
				w->n++;
	*more = *next < db->kd.nids;
	kv__klock_unlock(&db->klock);
	return rc;
}

KV_API int kv_foreach(kv_t *db, kv_pair_fn fn, void *ctx)
{
	window *w;
	uint32_t next = 0;
	size_t delivered = 0;
	int rc = 0, more = 0;

	if (!db || !fn)
		return kv__fail(KV_EINVAL, "kv_foreach: NULL argument");
	if (!(w = calloc(1, sizeof *w)))
		return kv__fail(KV_ENOMEM, "out of memory for iteration");
	do {
		rc = fill_by_id(db, w, &next, &more);
		if (rc == 0)
			rc = deliver(db, w, fn, ctx, &delivered);
		release_all(w);
	} while (rc == 0 && more);
	free(w);
	return rc;
}

/* ---- kv_scan ---- */

typedef struct bounds {
	const void *end;
	size_t elen;
	const void *prefix;
	size_t plen;
	size_t limit;        /* 0 = none */
	size_t seen;         /* pairs delivered */
	uint8_t *last;       /* the last key collected, to resume after */
	size_t last_len;
	int done;
} bounds;

/*
 * A live id with the first 16 bytes of its key, zero-padded, as two
 * big-endian words: sorting these compares integers in one array instead
 * of following each id into the keydir, where every comparison was a cache
 * miss. Equal words mean a tie only when both keys are longer than 16
 * bytes; otherwise the shorter key is a prefix of the other and goes first.
 */
typedef struct sort_key {
	uint64_t hi, lo;
	uint32_t id, klen;
} sort_key;

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int by_key(const void *pa, const void *pb, void *kd)
{
	const sort_key *a = pa, *b = pb;

	if (a->hi != b->hi)
		return a->hi < b->hi ? -1 : 1;
	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	if (a->klen > 16 && b->klen > 16)
		return kv__kd_cmp(kd, a->id, kv__kd_key(kd, b->id), b->klen);
	return (a->klen > b->klen) - (a->klen < b->klen);
}

/* The live ids of the keydir in key order, into a malloc'd array. */
static uint32_t *ids_by_key(const kv__keydir *kd, size_t *n)
{
	sort_key *v = malloc((kd->nids ? kd->nids : 1) * sizeof(*v));
	uint32_t *ids;
	size_t k = 0;

	if (!v)
		return NULL;
	for (uint32_t id = 0; id < kd->nids; id++) {
		uint8_t pad[16] = { 0 };
		uint32_t klen;

		if (!kv__kd_live(kd, id))
			continue;
		klen = kv__kent_klen(kv__kd_ent(kd, id));
		memcpy(pad, kv__kd_key(kd, id), klen < 16 ? klen : 16);
		v[k++] = (sort_key){ be64(pad), be64(pad + 8), id, klen };
	}
	qsort_r(v, k, sizeof(*v), by_key, (void *)kd);
	/* The ids, packed into the front of the same block. */
	ids = (uint32_t *)(void *)v;
	for (size_t i = 0; i < k; i++)
		ids[i] = v[i].id;
	*n = k;
	return ids;
}

/* Builds the ordered index on first use, with writers held off: O(n log n)
 * once, by sorting and loading the tree bottom up; afterwards every new
 * key pays O(log n). */
static int build_order(kv_t *db)
{
	uint32_t *ids = NULL;
	size_t n;
	int rc = 0;

	pthread_mutex_lock(&db->wlock);
	kv__klock_wr(&db->klock);
	if (!db->order_built) {
		if (!(ids = ids_by_key(&db->kd, &n)) ||
		    kv__order_load(&db->order, ids, n)) {
			kv__order_free(&db->order);
			rc = kv__fail(KV_ENOMEM,
				      "out of memory for the ordered index");
		} else {
			db->order_built = 1;
		}
	}
	kv__klock_unlock(&db->klock);
	pthread_mutex_unlock(&db->wlock);
	free(ids);
	return rc;
}

/* Whether the key of id is still inside the scan (and not past it). */
static int in_range(kv_t *db, bounds *b, uint32_t id)
{
	const kv__kent *e = kv__kd_ent(&db->kd, id);
	const uint8_t *k = kv__kd_key(&db->kd, id);
	size_t klen = kv__kent_klen(e);

	if (b->end && kv__kd_cmp(&db->kd, id, b->end, b->elen) >= 0)
		return 0;
	if (b->prefix && (klen < b->plen || memcmp(k, b->prefix, b->plen)))
		return 0; /* keys are in order: past the prefix, all are */
	return 1;
}

static int remember(bounds *b, const uint8_t *key, size_t klen)
{
	if (klen > b->last_len || !b->last) {
		/* Keys are 1..KV_MAX_KEY bytes: klen is never 0.
		 * NOLINTNEXTLINE(clang-analyzer-optin.portability.UnixAPI) */
		uint8_t *p = realloc(b->last, klen);
		if (!p)
			return kv__fail(KV_ENOMEM, "out of memory in a scan");
		b->last = p;
	}
	memcpy(b->last, key, klen);
	b->last_len = klen;
	return 0;
}

/*
 * Takes up to room ids from the cursor and warms what fetching them reads:
 * first every entry, then every record. The ids of a range are scattered
 * over the keydir and the log, so fetching them one by one waited for two
 * misses per key in turn; warmed in stages, a window's misses overlap.
 */
static size_t take_ids(kv_t *db, kv__order_cur *c, uint32_t *ids,
		       size_t room)
{
	size_t k = 0;

	while (k < room && kv__order_next(c, &ids[k]))
		__builtin_prefetch(kv__kd_ent(&db->kd, ids[k++]));
	for (size_t i = 0; i < k; i++)
		kv__fetch_warm(db, ids[i]);
	return k;
}

static int fill_by_key(kv_t *db, window *w, bounds *b, const void *start,
		       size_t slen)
{
	kv__order_cur c;
	uint32_t id, ids[WINDOW];
	int rc = kv__settle(db);

	if (rc)
		return rc;
	kv__klock_rd(&db->klock);
	if (!db->order_built) {
		kv__klock_unlock(&db->klock);
		return 1; /* not built yet, or dropped after ENOMEM: build */
	}
	if (b->last)
		kv__order_seek(&db->order, b->last, b->last_len, 1, &c);
	else
		kv__order_seek(&db->order, start, slen, 0, &c);
	size_t room = WINDOW;
	if (b->limit && b->limit - b->seen < room)
		room = b->limit - b->seen;
	size_t k = take_ids(db, &c, ids, room);
	while (w->n < room && rc == 0) {
		if (w->n == k || !in_range(db, b, id = ids[w->n])) {
			b->done = 1;
			break;
		}
		rc = kv__fetch_locked(db, id, &w->f[w->n]);
		if (rc == 0 &&
		    (rc = remember(b, kv__kd_key(&db->kd, id),
				   kv__kent_klen(kv__kd_ent(&db->kd, id)))) != 0)
			kv__fetch_release(&w->f[w->n]); /* not in the window */
		if (rc == 0)
			w->n++;
	}
	kv__klock_unlock(&db->klock);
	return rc;
}

static int scan_loop(kv_t *db, window *w, bounds *b, const void *start,
		     size_t slen, kv_pair_fn fn, void *ctx)
{
	int rc = 0;

	while (rc == 0 && !b->done) {
		rc = fill_by_key(db, w, b, start, slen);
		if (rc == 1) {
			release_all(w);
			rc = build_order(db);
			continue;
		}
		if (rc == 0)
			rc = deliver(db, w, fn, ctx, &b->seen);
		release_all(w);
		if (b->limit && b->seen >= b->limit)
			b->done = 1;
	}
	return rc;
}

KV_API int kv_scan(kv_t *db, const void *start, size_t slen,
		   const void *end, size_t elen, const void *prefix,
		   size_t plen, size_t limit, kv_pair_fn fn, void *ctx)
{
	bounds b = { .end = end, .elen = elen, .prefix = prefix,
		     .plen = plen, .limit = limit };
	window *w;
	int rc;

	if (!db || !fn || (!start && slen) || (!end && elen) ||
	    (!prefix && plen))
		return kv__fail(KV_EINVAL, "kv_scan: NULL argument");
	if (db->opts.flags & KV_UNORDERED)
		return kv__fail(KV_ENOTSUP, "kv_scan on a KV_UNORDERED store");
	/* A prefix is a range too: start there when it is further on. */
	if (prefix && (!start || memcmp(prefix, start, plen < slen ? plen : slen) > 0 ||
		       (slen < plen && !memcmp(prefix, start, slen)))) {
		start = prefix;
		slen = plen;
	}
	if (!(w = calloc(1, sizeof *w)))
		return kv__fail(KV_ENOMEM, "out of memory for a scan");
	rc = scan_loop(db, w, &b, start, slen, fn, ctx);
	free(w);
	free(b.last);
	return rc;
}
