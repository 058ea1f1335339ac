/*
 * record.h - encoding and checking one record (layout in format.h).
 * Pure functions over memory: no files, no locks. Fuzz here.
 */
#ifndef KV_RECORD_H
#define KV_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"

typedef struct kv__rec {
	uint32_t crc;
	uint8_t type;
	uint8_t flags;
	uint16_t klen;
	uint32_t vlen;       /* stored bytes */
	uint32_t batch_left;
	uint64_t lsn;
	uint64_t expire_ms;
} kv__rec;

static inline uint64_t kv__rec_size(uint32_t klen, uint32_t vlen)
{
	return KV__REC_HDR + (uint64_t)klen + vlen;
}

/* Writes the header of r, with the CRC over it plus key and value. */
void kv__rec_encode(kv__rec *r, uint8_t hdr[KV__REC_HDR], const void *key,
		    const void *val);
/* Parses a header and checks every field that can be checked without the
 * body; returns NULL, or a phrase saying what is wrong. */
const char *kv__rec_decode(const uint8_t hdr[KV__REC_HDR], kv__rec *r);
/* 1 when the CRC in hdr matches the bytes of the whole record at rec. */
int kv__rec_crc_ok(const kv__rec *r, const uint8_t *rec);
/* Incremental form, for a record not in one buffer: crc of header bytes
 * 4..31, then update with key and value. */
uint32_t kv__rec_crc_begin(const uint8_t hdr[KV__REC_HDR]);
uint32_t kv__rec_crc_update(uint32_t crc, const void *p, size_t n);

/* Compresses val into a malloc'd buffer in the stored layout (u32 raw
 * length + zlib stream). Returns 0 and sets *out, or 1 when compression
 * would not make it shorter (nothing allocated), or KV_ENOMEM. */
int kv__rec_compress(const void *val, size_t vlen, void **out, size_t *olen);
/* Inflates a stored value into a malloc'd buffer of *olen bytes plus a NUL.
 * KV_ECORRUPT for a lying length or a bad stream, KV_ENOMEM. */
int kv__rec_uncompress(const void *stored, size_t slen, void **out,
		       size_t *olen);
/* The raw length a compressed value claims, after bounding it. */
int kv__rec_raw_len(const void *stored, size_t slen, size_t *raw);

#endif
