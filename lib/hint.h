/*
 * hint.h - hint files: a compact index of one segment, read at open instead
 * of scanning the segment. Pure functions over memory (layout in format.h);
 * a hint that fails any check is simply not used: it costs time, never data.
 */
#ifndef KV_HINT_H
#define KV_HINT_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

/* Takes n bytes of a hint being built; 0, or -1 when they are lost. */
typedef int (*kv__hint_sink)(void *ctx, const uint8_t *p, size_t n);

typedef struct kv__hint_buf {
	uint8_t *data;
	size_t len, cap;
	uint64_t count;
	int failed;          /* an allocation or the sink failed: no hint */
	kv__hint_sink sink;  /* NULL: the whole hint stays in data */
	void *sink_ctx;
	uint64_t sunk;       /* bytes handed to the sink so far */
	uint32_t crc;        /* of those bytes */
	int mapped;          /* data is an anonymous map (kv__hint_map) */
	uint64_t next_off;   /* where the next entry's record must start */
	uint64_t lsn;        /* of the last entry: the next one is a step */
} kv__hint_buf;

/* Starts a hint for segment seq (writes the file header). */
void kv__hint_begin(kv__hint_buf *h, uint64_t seq);
/* As kv__hint_begin, with the hint kept in an anonymous map rather than
 * the heap, for a hint held whole for a long time (the writer's,
 * segment.h): freed, a map goes back to the system, where 9 MB of heap for
 * a 64 MiB segment's hint stayed in the process (kvbench: RssAnon after
 * fillrandom 58.8 -> 73.2 B/key; 60.4 with the map). */
void kv__hint_map(kv__hint_buf *h, uint64_t seq);
/* Hands the hint to sink in pieces as it grows, so that only the last
 * piece (at most KV__HINT_SPILL bytes) is held in memory; call after
 * kv__hint_begin. kv__hint_drain hands over the rest after finish. */
#define KV__HINT_SPILL (256u << 10)
void kv__hint_stream(kv__hint_buf *h, kv__hint_sink sink, void *ctx);
int kv__hint_drain(kv__hint_buf *h);
/* Bytes of the whole hint, streamed or not. */
uint64_t kv__hint_bytes(const kv__hint_buf *h);
/* Adds the record r with key, found at off in the segment. An entry does
 * not store its offset (each record follows the one before), so an off
 * that is not where the previous record ended fails the hint, as a type
 * or flags the entry's tag cannot hold do. */
void kv__hint_add(kv__hint_buf *h, const kv__rec *r, uint64_t off,
		  const void *key);
/* Appends the trailer; seg_size is the segment's size the hint covers.
 * Returns 0, or KV_ENOMEM when any step failed to allocate. */
int kv__hint_finish(kv__hint_buf *h, uint64_t seg_size);
void kv__hint_free(kv__hint_buf *h);

/* One decoded entry: the record's header fields and where its key is. */
typedef struct kv__hint_ent {
	kv__rec rec;         /* crc is not known from a hint: 0 */
	uint64_t off;
	const uint8_t *key;
} kv__hint_ent;

/* Checks a whole hint file image against its segment (sequence number and
 * size); NULL when sound, or a phrase saying what is wrong. */
const char *kv__hint_check(const uint8_t *img, size_t len, uint64_t seq,
			   uint64_t seg_size);
/* Where a walk of a hint's entries is: zeroed to start. */
typedef struct kv__hint_cur {
	size_t pos;          /* of the next entry; 0: the first */
	uint64_t off;        /* the next entry's record offset */
	uint64_t lsn;        /* the last entry's */
} kv__hint_cur;

/* Walks the entries of an image that kv__hint_check accepted: returns 1 and
 * fills e, 0 at the end, or -1 for an entry that runs past the entries or
 * cannot be decoded (the whole-file CRC that kv__hint_check verified
 * covers every entry, so there is no CRC of each). The caller still
 * checks each entry against the segment. */
int kv__hint_next(const uint8_t *img, size_t len, kv__hint_cur *c,
		  kv__hint_ent *e);
/* The entry count a trailer claims (of an image kv__hint_check accepted). */
uint64_t kv__hint_count(const uint8_t *img, size_t len);
/* The entry count a hint file's last KV__HINT_TRAILER bytes claim for a
 * segment of seg_size bytes, before the hint is checked, so a size hint
 * only (recovery makes the keydir's table once from it): 0 when they are
 * not a hint trailer, name another size, or claim more entries than
 * seg_size bytes of records can hold. */
uint64_t kv__hint_claimed(const uint8_t *trailer, uint64_t seg_size);

#endif
