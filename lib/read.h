/*
 * read.h - the one read path: find a record, check it, hand out its value.
 *
 * A read holds the keydir lock (shared) only to find the entry and pin its
 * segment; the CRC check and the copy happen after the lock is dropped, so
 * writers publishing a put wait for lookups, not for long copies. The one
 * exception is kv__fetch_copy's: a mapped, plain record of at most 4 KiB
 * is checked and copied under the lock, which spares the pin.
 */
#ifndef KV_READ_H
#define KV_READ_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "record.h"

typedef struct kv__fetch {
	kv__seg *seg;          /* pinned until kv__fetch_release */
	uint64_t off;
	const uint8_t *rec;    /* the whole record: in the map, or `own` */
	uint8_t *own;
	uint32_t klen, vlen;   /* as the keydir has them */
	uint32_t flags;        /* keydir entry flags */
	int other_key;         /* the record holds another key than the entry */
	kv__rec hdr;           /* filled by kv__fetch_check */
} kv__fetch;

/* With klock held (shared): pins the segment of entry id and maps or
 * copies its record. */
int kv__fetch_locked(kv_t *db, uint32_t id, kv__fetch *f);
/* With klock held (shared): starts loading entry id's record into the
 * cache, when it is mapped. A walk that will fetch a run of ids warms them
 * all first, so that their misses overlap instead of following each other
 * (kv_scan). The entry itself should be warm or prefetched already. */
void kv__fetch_warm(kv_t *db, uint32_t id);
/* For the copying gets (kv_get, kv_get_into): finds key, checks its
 * record and calls fn with the plain value. A mapped, uncompressed record
 * of at most 4 KiB is handled under klock (shared) and needs no pin: two
 * readers' increments and decrements of one segment's reference count
 * passed its cache line between the cores on every get. fn must not call
 * into the store. */
int kv__fetch_copy(kv_t *db, const void *key, size_t klen, kv_view_fn fn,
		   void *ctx);
/* Finds key and fetches it, taking and dropping klock itself. */
int kv__fetch_key(kv_t *db, const void *key, size_t klen, kv__fetch *f);
/* KV_OK when key has a live value, from the index alone (the queued puts,
 * pubq.h, then the keydir), unless its entry
 * has an expiry, which only the record holds (then fetched and checked).
 * For kv_delete's check under wlock (commit.c, still_live): a delete does
 * not need the value it removes, and reading it cost a record miss and a
 * CRC per call (deleterandom). */
int kv__live_key(kv_t *db, const void *key, size_t klen);
/* Without locks: checks header, key and CRC against what the keydir said
 * (KV_ECORRUPT naming file and offset) and the expiry (KV_ENOTFOUND). */
int kv__fetch_check(kv_t *db, kv__fetch *f);
/* The value in plain form: the stored bytes, or inflated into *tmp. */
int kv__fetch_value(kv__fetch *f, const uint8_t **val, size_t *vlen,
		    void **tmp);
const uint8_t *kv__fetch_key_bytes(const kv__fetch *f);
/* Checks f and calls fn with its key and plain value (inflated into a
 * buffer freed on return), setting *called: fn's result, an error, or
 * KV_ENOTFOUND without a call for an expired record. Shared by the walks
 * over fetched records (iteration, digests). */
int kv__fetch_call(kv_t *db, kv__fetch *f, kv_pair_fn fn, void *ctx,
		   int *called);
void kv__fetch_release(kv__fetch *f);
/* Releases f[0..*n) and sets *n to 0 (a window of pinned records). */
void kv__fetch_release_n(kv__fetch *f, size_t *n);

#endif
