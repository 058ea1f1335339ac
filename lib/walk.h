/*
 * walk.h - reading a segment's records one by one, each checked: bounds
 * before anything is allocated, then the header, then the CRC. Shared by
 * open (recover.c), compaction (compact.c) and kv_verify (verify.c), so
 * every reader of whole segments applies the same checks.
 */
#ifndef KV_WALK_H
#define KV_WALK_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "segment.h"

/* A buffer for records that are not mapped; zero-initialise. */
typedef struct kv__walk {
	uint8_t *scratch;
	size_t scap;
	/* KV_EIO or KV_ENOMEM (kv_errmsg set) once bytes could not be
	 * read or buffered; stays set. Not damage: a caller that finds a
	 * record unsound must check this first, or a failed read of the
	 * log's last record would be cut as a torn write, or skipped by
	 * salvage. */
	int err;
} kv__walk;

/* The bytes [off, off + size) of s: in the map, or read into the walk's
 * buffer (valid until the next call). NULL on a read or memory failure,
 * with w->err set. */
const uint8_t *kv__walk_bytes(kv__walk *w, kv__seg *s, uint64_t off,
			      uint64_t size);
/* Checks the record at off, which must end by end: NULL when sound, with
 * *r decoded and *rec its bytes (rec may be NULL); else a phrase saying
 * what is wrong. */
const char *kv__walk_check(kv__walk *w, kv__seg *s, uint64_t off,
			   uint64_t end, kv__rec *r, const uint8_t **rec);
/* The first offset after off where a sound record starts, or end (also
 * when w->err is set meanwhile). */
uint64_t kv__walk_resync(kv__walk *w, kv__seg *s, uint64_t off,
			 uint64_t end);
void kv__walk_free(kv__walk *w);

#endif
