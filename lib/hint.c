/* hint.c - encode and check hint files (layout in format.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

static uint8_t *grow_map(kv__hint_buf *h, size_t cap)
{
	void *d;

	if (h->data)
		d = mremap(h->data, h->cap, cap, MREMAP_MAYMOVE);
	else /* fd -1: what Linux and POSIX ask of an anonymous map */
		d = mmap(NULL, cap, PROT_READ | PROT_WRITE,
			 /* cppcheck-suppress invalidFunctionArg */
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return d == MAP_FAILED ? NULL : d;
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
		uint8_t *d = h->mapped ? grow_map(h, cap) : realloc(h->data, cap);
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

static void start(kv__hint_buf *h, uint64_t seq, int mapped)
{
	memset(h, 0, sizeof *h);
	h->mapped = mapped;
	h->next_off = KV__FILE_HDR;
	uint8_t *p = room(h, KV__FILE_HDR);
	if (p)
		file_header(p, seq);
}

void kv__hint_begin(kv__hint_buf *h, uint64_t seq)
{
	start(h, seq, 0);
}

void kv__hint_map(kv__hint_buf *h, uint64_t seq)
{
	start(h, seq, 1);
}

/* Most bytes of an entry besides its key: the tag, then varints of klen
 * (16 bits), vlen (32), the LSN step and expire_ms (64 each). */
#define ENT_MAX (1u + 3u + 5u + 2u * KV__VARINT_MAX)

/* LSN steps are signed (a compaction output holds records of any age) and
 * mostly +1: zigzag keeps a small step of either sign in one byte. */
static uint64_t zigzag(uint64_t step)
{
	return (step << 1) ^ (uint64_t)-(int64_t)(step >> 63);
}

static uint64_t unzigzag(uint64_t z)
{
	return (z >> 1) ^ (uint64_t)-(int64_t)(z & 1);
}

void kv__hint_add(kv__hint_buf *h, const kv__rec *r, uint64_t off,
		  const void *key)
{
	if (off != h->next_off || r->type > KV__HINT_TYPE_MASK ||
	    r->flags > (KV__HINT_FLAGS_MASK >> KV__HINT_FLAGS_SHIFT)) {
		h->failed = 1;
		return;
	}
	uint8_t *p = room(h, ENT_MAX + (size_t)r->klen), *q = p;

	if (!p)
		return;
	*q++ = (uint8_t)(r->type | (uint32_t)r->flags << KV__HINT_FLAGS_SHIFT |
			 (r->expire_ms ? KV__HINT_EXPIRES : 0));
	q = kv__put_varint(q, r->klen);
	q = kv__put_varint(q, r->vlen);
	q = kv__put_varint(q, zigzag(r->lsn - h->lsn));
	if (r->expire_ms)
		q = kv__put_varint(q, r->expire_ms);
	memcpy(q, key, r->klen);
	q += r->klen;
	h->len -= ENT_MAX + (size_t)r->klen - (size_t)(q - p);
	h->next_off = off + kv__rec_size(r->klen, r->vlen);
	h->lsn = r->lsn;
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
	if (h->mapped && h->data)
		munmap(h->data, h->cap);
	else
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

uint64_t kv__hint_claimed(const uint8_t *trailer, uint64_t seg_size)
{
	if (memcmp(trailer, KV__HINT_MAGIC, 8) != 0 ||
	    kv__get64(trailer + 16) != seg_size)
		return 0;
	uint64_t n = kv__get64(trailer + 8);
	return n <= seg_size / KV__REC_HDR ? n : 0; /* a record is longer */
}

int kv__hint_next(const uint8_t *img, size_t len, kv__hint_cur *c,
		  kv__hint_ent *e)
{
	const uint8_t *end = img + len - KV__HINT_TRAILER;
	const uint8_t *p = img + (c->pos ? c->pos : KV__FILE_HDR);
	uint64_t klen, vlen, step, expire = 0;

	if (!c->pos)
		c->off = KV__FILE_HDR;
	if (p >= end)
		return 0;
	uint8_t tag = *p++;
	if (!(p = kv__get_varint(p, end, &klen)) || klen > UINT16_MAX ||
	    !(p = kv__get_varint(p, end, &vlen)) || vlen > UINT32_MAX ||
	    !(p = kv__get_varint(p, end, &step)) ||
	    ((tag & KV__HINT_EXPIRES) && !(p = kv__get_varint(p, end, &expire)))
	    || klen > (size_t)(end - p) || (tag & KV__HINT_TAG_UNUSED))
		return -1;
	memset(e, 0, sizeof *e);
	e->rec.type = tag & KV__HINT_TYPE_MASK;
	e->rec.flags = (uint8_t)((tag & KV__HINT_FLAGS_MASK) >>
				 KV__HINT_FLAGS_SHIFT);
	e->rec.klen = (uint16_t)klen;
	e->rec.vlen = (uint32_t)vlen;
	e->rec.lsn = c->lsn + unzigzag(step);
	e->rec.expire_ms = expire;
	e->off = c->off;
	e->key = p;
	c->lsn = e->rec.lsn;
	c->off += kv__rec_size(e->rec.klen, e->rec.vlen);
	c->pos = (size_t)(p + klen - img);
	return 1;
}
