/* hint.c - encode and check hint files (layout in format.h). */
#include <stdlib.h>
#include <string.h>

#include "crc.h"
#include "hint.h"
#include "kv.h"
#include "le.h"

/* Hands what is held to the sink, keeping the running CRC of it. */
static void spill(kv__hint_buf *h)
{
	if (!h->sink || h->len == 0 || h->failed)
		return;
	h->crc = kv__crc32(h->crc, h->data, h->len);
	if (h->sink(h->sink_ctx, h->data, h->len))
		h->failed = 1;
	h->sunk += h->len;
	h->len = 0;
}

static uint8_t *room(kv__hint_buf *h, size_t n)
{
	if (h->sink && h->len + n > KV__HINT_SPILL)
		spill(h);
	if (h->failed)
		return NULL;
	if (h->len + n > h->cap) {
		size_t cap = h->cap ? h->cap : 4096;
		while (cap < h->len + n)
			cap *= 2;
		uint8_t *d = realloc(h->data, cap);
		if (!d) {
			h->failed = 1;
			return NULL;
		}
		h->data = d;
		h->cap = cap;
	}
	uint8_t *p = h->data + h->len;
	h->len += n;
	return p;
}

/* The same 32-byte header as a segment, with kind KV__KIND_HINT. */
static void file_header(uint8_t *p, uint64_t seq)
{
	memset(p, 0, KV__FILE_HDR);
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): binary magic */
	memcpy(p, KV__SEG_MAGIC, 8);
	kv__put32(p + 8, KV__FORMAT_VERSION);
	kv__put32(p + 12, KV__KIND_HINT);
	kv__put64(p + 16, seq);
	kv__put32(p + 28, kv__crc32(0, p, 28));
}

void kv__hint_begin(kv__hint_buf *h, uint64_t seq)
{
	memset(h, 0, sizeof *h);
	uint8_t *p = room(h, KV__FILE_HDR);
	if (p)
		file_header(p, seq);
}

void kv__hint_add(kv__hint_buf *h, const kv__rec *r, uint64_t off,
		  const void *key)
{
	uint8_t *p = room(h, KV__HINT_ENT + (size_t)r->klen);

	if (!p)
		return;
	p[4] = r->type;
	p[5] = r->flags;
	kv__put16(p + 6, r->klen);
	kv__put32(p + 8, r->vlen);
	kv__put32(p + 12, 0);
	kv__put64(p + 16, off);
	kv__put64(p + 24, r->lsn);
	kv__put64(p + 32, r->expire_ms);
	memcpy(p + KV__HINT_ENT, key, r->klen);
	kv__put32(p, kv__crc32(0, p + 4, KV__HINT_ENT - 4 + r->klen));
	h->count++;
}

int kv__hint_finish(kv__hint_buf *h, uint64_t seg_size)
{
	uint8_t *p = room(h, KV__HINT_TRAILER);

	if (!p)
		return KV_ENOMEM;
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): binary magic */
	memcpy(p, KV__HINT_MAGIC, 8);
	kv__put64(p + 8, h->count);
	kv__put64(p + 16, seg_size);
	kv__put32(p + 24, 0);
	/* The trailer is never split from what precedes it in data: room
	 * spills before taking n bytes, not after. */
	kv__put32(p + 28, kv__crc32(h->crc, h->data, h->len - 4));
	return 0;
}

void kv__hint_stream(kv__hint_buf *h, kv__hint_sink sink, void *ctx)
{
	h->sink = sink;
	h->sink_ctx = ctx;
}

int kv__hint_drain(kv__hint_buf *h)
{
	spill(h);
	return h->failed ? -1 : 0;
}

uint64_t kv__hint_bytes(const kv__hint_buf *h)
{
	return h->sunk + h->len;
}

void kv__hint_free(kv__hint_buf *h)
{
	free(h->data);
	memset(h, 0, sizeof *h);
}

const char *kv__hint_check(const uint8_t *img, size_t len, uint64_t seq,
			   uint64_t seg_size)
{
	const uint8_t *t;

	if (len < KV__FILE_HDR + KV__HINT_TRAILER)
		return "hint file too short";
	if (memcmp(img, KV__SEG_MAGIC, 8) || kv__get32(img + 8) !=
	    KV__FORMAT_VERSION || kv__get32(img + 12) != KV__KIND_HINT ||
	    kv__get64(img + 16) != seq ||
	    kv__get32(img + 28) != kv__crc32(0, img, 28))
		return "bad hint file header";
	t = img + len - KV__HINT_TRAILER;
	if (memcmp(t, KV__HINT_MAGIC, 8))
		return "no hint trailer";
	if (kv__get32(t + 28) != kv__crc32(0, img, len - 4))
		return "hint file checksum mismatch";
	if (kv__get64(t + 16) != seg_size)
		return "hint does not cover the segment";
	return NULL;
}

uint64_t kv__hint_count(const uint8_t *img, size_t len)
{
	return kv__get64(img + len - KV__HINT_TRAILER + 8);
}

int kv__hint_next(const uint8_t *img, size_t len, size_t *pos,
		  kv__hint_ent *e, int check_crc)
{
	size_t end = len - KV__HINT_TRAILER;
	size_t at = *pos ? *pos : KV__FILE_HDR;
	const uint8_t *p = img + at;

	if (at + KV__HINT_ENT > end)
		return 0;
	memset(e, 0, sizeof *e);
	e->rec.type = p[4];
	e->rec.flags = p[5];
	e->rec.klen = kv__get16(p + 6);
	e->rec.vlen = kv__get32(p + 8);
	e->off = kv__get64(p + 16);
	e->rec.lsn = kv__get64(p + 24);
	e->rec.expire_ms = kv__get64(p + 32);
	e->key = p + KV__HINT_ENT;
	if (at + KV__HINT_ENT + e->rec.klen > end)
		return -1;
	if (check_crc && kv__get32(p) != kv__crc32(0, p + 4,
					KV__HINT_ENT - 4 + e->rec.klen))
		return -1;
	*pos = at + KV__HINT_ENT + e->rec.klen;
	return 1;
}
