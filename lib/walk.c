/* walk.c - checked, record-by-record reading of a segment. */
#include <stdlib.h>

#include "error.h"
#include "walk.h"

const uint8_t *kv__walk_bytes(kv__walk *w, kv__seg *s, uint64_t off,
			      uint64_t size)
{
	const uint8_t *p = kv__seg_ptr(s, off, (size_t)size);

	if (p)
		return p;
	if (size > w->scap) {
		uint8_t *b = realloc(w->scratch, (size_t)size);
		if (!b) {
			w->err = kv__fail(KV_ENOMEM, "%s: out of memory "
					  "reading a record", s->name);
			return NULL;
		}
		w->scratch = b;
		w->scap = (size_t)size;
	}
	int rc = kv__seg_read(s, off, w->scratch, (size_t)size);
	if (rc) {
		w->err = rc;
		return NULL;
	}
	return w->scratch;
}

const char *kv__walk_check(kv__walk *w, kv__seg *s, uint64_t off,
			   uint64_t end, kv__rec *r, const uint8_t **rec)
{
	uint8_t h[KV__REC_HDR];
	const char *why;
	const uint8_t *p;

	if (end - off < KV__REC_HDR)
		return "truncated record header";
	int rc = kv__seg_read(s, off, h, sizeof h);
	if (rc) {
		w->err = rc;
		return "unreadable record header";
	}
	if ((why = kv__rec_decode(h, r)) != NULL)
		return why;
	/* The length fields are bounded by the file before any buffer of
	 * that size is made, so a lying length never allocates. */
	if (kv__rec_size(r->klen, r->vlen) > end - off)
		return "record runs past the end of the file";
	p = kv__walk_bytes(w, s, off, kv__rec_size(r->klen, r->vlen));
	if (!p)
		return "unreadable record";
	if (!kv__rec_crc_ok(r, p))
		return "checksum mismatch";
	if (rec)
		*rec = p;
	return NULL;
}

uint64_t kv__walk_resync(kv__walk *w, kv__seg *s, uint64_t off,
			 uint64_t end)
{
	kv__rec r;

	for (uint64_t p = off + 1; p + KV__REC_HDR <= end && !w->err; p++)
		if (!kv__walk_check(w, s, p, end, &r, NULL))
			return p;
	return end;
}

void kv__walk_free(kv__walk *w)
{
	free(w->scratch);
	w->scratch = NULL;
	w->scap = 0;
}
