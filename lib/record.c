/* record.c - record headers, CRCs and value compression. */
#include <stdlib.h>
#include <string.h>

#include "crc.h"
#include "kv.h"
#include "le.h"
#include "record.h"
#include "zpool.h"


uint32_t kv__rec_crc_update(uint32_t crc, const void *p, size_t n)
{
	return kv__crc32(crc, p, n);
}

uint32_t kv__rec_crc_begin(const uint8_t hdr[KV__REC_HDR])
{
	return kv__rec_crc_update(0, hdr + 4,
				  KV__REC_HDR - 4);
}

void kv__rec_encode(kv__rec *r, uint8_t hdr[KV__REC_HDR], const void *key,
		    const void *val)
{
	uint32_t crc;

	hdr[4] = r->type;
	hdr[5] = r->flags;
	kv__put16(hdr + 6, r->klen);
	kv__put32(hdr + 8, r->vlen);
	kv__put32(hdr + 12, r->batch_left);
	kv__put64(hdr + 16, r->lsn);
	kv__put64(hdr + 24, r->expire_ms);
	crc = kv__rec_crc_begin(hdr);
	crc = kv__rec_crc_update(crc, key, r->klen);
	if (r->vlen)
		crc = kv__rec_crc_update(crc, val, r->vlen);
	r->crc = crc;
	kv__put32(hdr, crc);
}

const char *kv__rec_decode(const uint8_t hdr[KV__REC_HDR], kv__rec *r)
{
	r->crc = kv__get32(hdr);
	r->type = hdr[4];
	r->flags = hdr[5];
	r->klen = kv__get16(hdr + 6);
	r->vlen = kv__get32(hdr + 8);
	r->batch_left = kv__get32(hdr + 12);
	r->lsn = kv__get64(hdr + 16);
	r->expire_ms = kv__get64(hdr + 24);
	if (r->type != KV__REC_PUT && r->type != KV__REC_DEL)
		return "unknown record type";
	if (r->flags & ~KV__RF_KNOWN)
		return "unknown record flags";
	if (r->klen == 0)
		return "empty key";
	if (r->type == KV__REC_DEL && (r->vlen != 0 || r->flags != 0))
		return "tombstone with a value";
	if (r->lsn == 0)
		return "zero sequence number";
	return NULL;
}

/* The record is whole in memory, so one CRC call covers it: each call of
 * ISA-L's costs a few ns before its first byte, and every get checks a
 * CRC. kvbench readrandom, 6 alternating pairs: 1,268 against 1,230 k/s,
 * the slowest new run faster than the fastest old one. (Gathering a new
 * record's header, key and value into one buffer for one call when
 * encoding made fillrandom 9% slower in 8 pairs, though a microbenchmark
 * of the CRC alone had it 9 ns faster: not done.) */
int kv__rec_crc_ok(const kv__rec *r, const uint8_t *rec)
{
	return kv__rec_crc_update(0, rec + 4, KV__REC_HDR - 4 +
				  (size_t)r->klen + r->vlen) == r->crc;
}

/* Level 1 of ISA-L's igzip, in zlib's format (RFC 1950): values are
 * compressed on the write path, where speed matters more than the last few
 * per cent of ratio, and any zlib reads the stream, as older libkv did.
 * Against zlib's compress2 at level 1, on text: a 512-byte value 4.7 us
 * against 77, 4 KiB 11.9 against 93, 64 KiB 104 against 594; the streams
 * are 2-10% longer. Most of compress2's time on a small value was its
 * set-up: one zlib stream reused with deflateReset took 10 us for 512
 * bytes. */
int kv__rec_compress(const void *val, size_t vlen, void **out, size_t *olen)
{
	kv__zdeflate *d;
	uint8_t *buf;
	int rc;

	*out = NULL;
	if (vlen <= 5 || vlen > UINT32_MAX)
		return 1;
	/* A stream of more than vlen - 5 bytes would not make the stored
	 * value (4 + stream) shorter: deflate stops there, and overflows. */
	buf = malloc(vlen);
	d = kv__zpool_deflater();
	if (!buf || !d) {
		free(buf);
		kv__zpool_put_deflater(d);
		return KV_ENOMEM;
	}
	isal_deflate_stateless_init(&d->z);
	d->z.level = 1;
	d->z.level_buf = d->level_buf;
	d->z.level_buf_size = sizeof d->level_buf;
	d->z.gzip_flag = IGZIP_ZLIB;
	d->z.next_in = (uint8_t *)(uintptr_t)val;
	d->z.avail_in = (uint32_t)vlen;
	d->z.next_out = buf + 4;
	d->z.avail_out = (uint32_t)(vlen - 5);
	d->z.end_of_stream = 1;
	d->z.flush = NO_FLUSH;
	rc = isal_deflate_stateless(&d->z);
	size_t zlen = d->z.total_out;
	kv__zpool_put_deflater(d);
	if (rc != COMP_OK) {
		free(buf);
		return 1; /* STATELESS_OVERFLOW: it would not be shorter */
	}
	kv__put32(buf, (uint32_t)vlen);
	*out = buf;
	*olen = 4 + zlen;
	return 0;
}

int kv__rec_raw_len(const void *stored, size_t slen, size_t *raw)
{
	uint64_t n;

	if (slen < 5)
		return KV_ECORRUPT;
	n = kv__get32(stored);
	if (n == 0 || n > (uint64_t)(slen - 4) * KV__ZLIB_MAX_RATIO)
		return KV_ECORRUPT;
	*raw = (size_t)n;
	return 0;
}

/* ISA-L's inflate reads zlib's streams, this library's old ones too, and
 * checks their adler32. Against zlib's uncompress: 1.6 us against 1.9 for
 * 512 bytes, 58 against 115 for 64 KiB. */
int kv__rec_uncompress(const void *stored, size_t slen, void **out,
		       size_t *olen)
{
	size_t raw;
	struct inflate_state *s;
	uint8_t *buf;
	int rc = kv__rec_raw_len(stored, slen, &raw);

	*out = NULL;
	if (rc)
		return rc;
	buf = malloc(raw + 1);
	s = kv__zpool_inflater();
	if (!buf || !s) {
		free(buf);
		kv__zpool_put_inflater(s);
		return KV_ENOMEM;
	}
	isal_inflate_init(s);
	s->next_in = (uint8_t *)(uintptr_t)stored + 4;
	s->avail_in = (uint32_t)(slen - 4);
	s->next_out = buf;
	s->avail_out = (uint32_t)raw;
	s->crc_flag = ISAL_ZLIB;
	/* Whole and exactly raw bytes long: a stream that ends early, needs
	 * more room, or fails its check is corrupt. */
	rc = isal_inflate_stateless(s) == ISAL_DECOMP_OK &&
	     s->block_state == ISAL_BLOCK_FINISH && s->total_out == raw;
	kv__zpool_put_inflater(s);
	if (!rc) {
		free(buf);
		return KV_ECORRUPT;
	}
	buf[raw] = 0;
	*out = buf;
	*olen = raw;
	return 0;
}
