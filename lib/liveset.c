/* liveset.c - the live records of compaction's inputs (liveset.h). */
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "format.h"
#include "liveset.h"

/* One bit per window of the file: a record is at least a header and a
 * one-byte key, so two records never start in one window. */
#define WINDOW_SHIFT 5
#define WINDOW_MASK ((1u << WINDOW_SHIFT) - 1)
_Static_assert(KV__REC_HDR >= (1u << WINDOW_SHIFT),
	       "a record must be longer than a window");

static uint64_t bit_of(uint64_t off)
{
	return off >> WINDOW_SHIFT;
}

static uint32_t rank_of(const kv__liveset *ls, uint64_t bit)
{
	uint64_t w = bit / 64, below = (UINT64_C(1) << (bit % 64)) - 1;

	return ls->before[w] + (uint32_t)__builtin_popcountll(ls->bits[w] &
							    below);
}

static int alloc_set(kv__liveset *ls, uint64_t size)
{
	ls->nwords = bit_of(size) / 64 + 1;
	ls->bits = calloc(ls->nwords, sizeof *ls->bits);
	ls->before = malloc(ls->nwords * sizeof *ls->before);
	return ls->bits && ls->before ? 0 : KV_ENOMEM;
}

/* Counts set bits into `before` and sizes ids and low for them. */
static int rank_set(kv__liveset *ls)
{
	uint32_t n = 0;

	for (uint64_t w = 0; w < ls->nwords; w++) {
		ls->before[w] = n;
		n += (uint32_t)__builtin_popcountll(ls->bits[w]);
	}
	ls->ids = malloc((n ? n : 1) * sizeof *ls->ids);
	ls->low = malloc(n ? n : 1);
	if (!ls->ids || !ls->low)
		return KV_ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		ls->ids[i] = UINT32_MAX;
	memset(ls->low, 0xff, n); /* matches no offset in a window */
	return 0;
}

int kv__live_build(kv__liveset *sets, size_t nsets, const uint64_t *sizes,
		   const kv__livepair *p, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < nsets && rc == 0; i++)
		rc = alloc_set(&sets[i], sizes[i]);
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint64_t b = bit_of(p[i].off);

		if (b / 64 < sets[p[i].in].nwords)
			sets[p[i].in].bits[b / 64] |= UINT64_C(1) << (b % 64);
	}
	for (size_t i = 0; i < nsets && rc == 0; i++)
		rc = rank_set(&sets[i]);
	for (size_t i = 0; i < n && rc == 0; i++) {
		kv__liveset *ls = &sets[p[i].in];
		uint64_t b = bit_of(p[i].off);

		if (b / 64 < ls->nwords) {
			uint32_t r = rank_of(ls, b);

			ls->ids[r] = p[i].id;
			ls->low[r] = (uint8_t)(p[i].off & WINDOW_MASK);
		}
	}
	if (rc)
		kv__live_free(sets, nsets);
	return rc;
}

uint32_t kv__live_id(const kv__liveset *ls, uint64_t off)
{
	uint64_t b = bit_of(off);

	if (b / 64 >= ls->nwords ||
	    !(ls->bits[b / 64] & (UINT64_C(1) << (b % 64))))
		return UINT32_MAX;
	uint32_t r = rank_of(ls, b);

	return ls->low[r] == (off & WINDOW_MASK) ? ls->ids[r] : UINT32_MAX;
}

void kv__live_free(kv__liveset *sets, size_t nsets)
{
	for (size_t i = 0; i < nsets; i++) {
		free(sets[i].bits);
		free(sets[i].before);
		free(sets[i].ids);
		free(sets[i].low);
		sets[i] = (kv__liveset){ 0 };
	}
}
