/*
 * test_liveset.c - compaction's live sets (liveset.h), against a model.
 *
 * Records of random lengths (from the 33-byte minimum up) are laid out in
 * a few segments; a random subset of them gets an entry id, the pairs go
 * in shuffled; then every record start and every byte between answers as
 * the model says: the id at a referenced record's offset, UINT32_MAX at an
 * unreferenced one and anywhere no record starts.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "liveset.h"

#define NSEGS 3
#define MIN_REC (KV__REC_HDR + 1)

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

typedef struct seg_model {
	uint64_t size;
	uint32_t *id_at;        /* by byte offset: the id, or UINT32_MAX */
} seg_model;

/* Lays records out from the file header to about `bytes`, each
 * referenced with probability pct; appends the referenced ones' pairs. */
static void lay_out(seg_model *m, uint32_t in, uint64_t bytes, int pct,
		    kv__livepair *pairs, size_t *n, uint64_t *seed,
		    uint32_t *next_id)
{
	uint64_t off = KV__FILE_HDR;

	m->id_at = malloc(bytes * sizeof *m->id_at);
	assert_non_null(m->id_at);
	for (uint64_t i = 0; i < bytes; i++)
		m->id_at[i] = UINT32_MAX;
	for (;;) {
		/* Mostly short records, so that many share a 64-bit word. */
		uint64_t len = MIN_REC + next(seed) % (next(seed) % 4 ? 8 : 300);

		if (off + len > bytes)
			break;
		if ((int)(next(seed) % 100) < pct) {
			m->id_at[off] = (*next_id)++;
			pairs[(*n)++] = (kv__livepair){ off, in, m->id_at[off] };
		}
		off += len;
	}
	m->size = off;
}

static void shuffle(kv__livepair *p, size_t n, uint64_t *seed)
{
	for (size_t i = n; i > 1; i--) {
		size_t k = next(seed) % i;
		kv__livepair t = p[i - 1];

		p[i - 1] = p[k];
		p[k] = t;
	}
}

static void check_against_model(int pct, uint64_t seed)
{
	static const uint64_t bytes[NSEGS] = { 20000, 64, 70000 };
	seg_model m[NSEGS];
	uint64_t sizes[NSEGS];
	kv__liveset sets[NSEGS] = { { 0 } };
	kv__livepair *pairs = malloc(200000 * sizeof *pairs);
	size_t n = 0;
	uint32_t id = 7;

	assert_non_null(pairs);
	for (uint32_t i = 0; i < NSEGS; i++) {
		lay_out(&m[i], i, bytes[i], pct, pairs, &n, &seed, &id);
		sizes[i] = m[i].size;
	}
	shuffle(pairs, n, &seed);
	assert_int_equal(kv__live_build(sets, NSEGS, sizes, pairs, n), 0);
	for (uint32_t i = 0; i < NSEGS; i++) {
		for (uint64_t off = 0; off < m[i].size; off++)
			assert_int_equal(kv__live_id(&sets[i], off),
					 m[i].id_at[off]);
		/* Past the end (a segment's size is where no record is). */
		assert_int_equal(kv__live_id(&sets[i], m[i].size + 4096),
				 UINT32_MAX);
		free(m[i].id_at);
	}
	kv__live_free(sets, NSEGS);
	for (uint32_t i = 0; i < NSEGS; i++)
		assert_null(sets[i].bits);
	free(pairs);
}

static void test_ids_by_offset_match_model_some_live(void **state)
{
	(void)state;
	check_against_model(50, 0x9e3779b97f4a7c15u);
	check_against_model(5, 12345);
}

static void test_ids_by_offset_match_model_all_or_none_live(void **state)
{
	(void)state;
	check_against_model(100, 777);
	check_against_model(0, 4242);
}

/* Records back to back at the minimum length land in consecutive
 * 32-byte windows, across 64-bit words, and keep their own ids. */
static void test_minimum_length_records_in_adjacent_windows(void **state)
{
	enum { N = 300 };
	kv__livepair p[N];
	kv__liveset ls = { 0 };
	uint64_t size = KV__FILE_HDR + (uint64_t)N * MIN_REC;

	(void)state;
	for (uint32_t i = 0; i < N; i++)
		p[i] = (kv__livepair){ KV__FILE_HDR + (uint64_t)i * MIN_REC, 0,
				       N - i };
	assert_int_equal(kv__live_build(&ls, 1, &size, p, N), 0);
	for (uint32_t i = 0; i < N; i++) {
		uint64_t off = KV__FILE_HDR + (uint64_t)i * MIN_REC;

		assert_int_equal(kv__live_id(&ls, off), N - i);
		assert_int_equal(kv__live_id(&ls, off + 1), UINT32_MAX);
	}
	kv__live_free(&ls, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_by_offset_match_model_some_live),
		cmocka_unit_test(test_ids_by_offset_match_model_all_or_none_live),
		cmocka_unit_test(test_minimum_length_records_in_adjacent_windows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
