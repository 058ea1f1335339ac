/*
 * test_repl_hint.c - kv_repl_read started from where a caller's last call
 * stopped (the handle remembers the last positions served, so a follower
 * that reads on from its position no longer walks its log segment from
 * the start: found by kvrepl's figures, where a write's delay to a
 * follower grew with the size of the active segment, 282 ms p50 at 44,000
 * records/s). The history served must be the same, byte for byte, as a
 * single read from the start, whatever the callers' number (more than the
 * handle keeps), positions and frame sizes, across segment rollovers and
 * compactions.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define NREADERS 12     /* more than the 8 positions a handle keeps */

typedef struct stream {
	uint8_t *b;
	size_t len, cap;
	uint64_t pos;       /* last LSN received */
	int bad;            /* a frame did not continue at pos + 1 */
} stream;

static int take(void *ctx, uint64_t first, uint64_t last, const void *bytes,
		size_t len)
{
	stream *s = ctx;

	if (first != s->pos + 1 || last < first)
		s->bad = 1;
	s->pos = last;
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2;
		s->b = realloc(s->b, s->cap);
	}
	memcpy(s->b + s->len, bytes, len);
	s->len += len;
	return 0;
}

/* A frame callback that stops after n frames, as a sender whose window
 * is full does. */
typedef struct limited {
	stream *s;
	int left;
} limited;

static int take_some(void *ctx, uint64_t first, uint64_t last,
		     const void *bytes, size_t len)
{
	limited *l = ctx;

	if (l->left-- <= 0)
		return 1;
	return take(l->s, first, last, bytes, len);
}

static void write_some(kv_t *db, kv_batch *b, uint64_t *rng, int n)
{
	char key[32], val[200];

	for (int i = 0; i < n; i++) {
		uint64_t r = tu_rand(rng);
		snprintf(key, sizeof key, "k%04u", (unsigned)(r % 500));
		size_t vlen = 1 + (size_t)(r >> 20) % sizeof val;
		memset(val, 'a' + (int)(r % 26), vlen);
		if (r % 10 == 0) {
			kv_batch_clear(b);
			for (int k = 0; k < 3; k++) {
				key[1] = (char)('a' + k);
				TU_OK(kv_batch_put(b, key, strlen(key), val,
						   vlen));
			}
			TU_OK(kv_write(db, b));
		} else if (r % 10 == 1) {
			int rc = kv_delete(db, key, strlen(key));
			assert_true(rc == KV_OK || rc == KV_ENOTFOUND);
		} else {
			TU_OK(kv_put(db, key, strlen(key), val, vlen));
		}
	}
}

/* Readers that each read on from their own position, in frames of their
 * own size, some stopping early, while writes go on: each ends with the
 * bytes of one read of the whole history. */
static void run(uint64_t seed, uint64_t file_size, int compact)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_batch *b;
	stream rd[NREADERS], all;
	uint64_t rng = seed;

	tu_options(&o);
	o.max_file_size = file_size;
	kv_t *db = tu_open(dir, &o);
	TU_OK(kv_batch_new(&b));
	memset(rd, 0, sizeof rd);
	for (int round = 0; round < 200; round++) {
		write_some(db, b, &rng, 1 + (int)(tu_rand(&rng) % 40));
		for (int i = 0; i < NREADERS; i++) {
			if (tu_rand(&rng) % 3 == 0)
				continue;       /* this one falls behind */
			size_t max = (size_t)(tu_rand(&rng) % 3000);
			limited l = { &rd[i], 1 + (int)(tu_rand(&rng) % 4) };
			int rc = kv_repl_read(db, rd[i].pos, max, take_some,
					      &l);
			assert_true(rc == 0 || rc == 1);
			assert_false(rd[i].bad);
		}
	}
	/* Everybody reads to the end; one fresh reader reads it all. */
	uint64_t end;
	TU_OK(kv_repl_position(db, &end));
	memset(&all, 0, sizeof all);
	TU_OK(kv_repl_read(db, 0, 0, take, &all));
	assert_int_equal(all.pos, end);
	for (int i = 0; i < NREADERS; i++) {
		TU_OK(kv_repl_read(db, rd[i].pos, 4096, take, &rd[i]));
		assert_false(rd[i].bad);
		assert_int_equal(rd[i].pos, end);
		assert_int_equal(rd[i].len, all.len);
		assert_memory_equal(rd[i].b, all.b, all.len);
	}
	if (compact) {
		/* Compaction rewrites the sealed log segments: the positions
		 * kept point into files that are gone; readers behind get
		 * KV_ESNAPSHOT, those at the end go on exactly. */
		stream behind = { 0 };
		TU_OK(kv_compact(db, NULL));
		assert_int_equal(kv_repl_read(db, 0, 100, take, &behind),
				 KV_ESNAPSHOT);
		write_some(db, b, &rng, 50);
		TU_OK(kv_repl_position(db, &end));
		for (int i = 0; i < NREADERS; i++) {
			size_t before = rd[i].len;
			TU_OK(kv_repl_read(db, rd[i].pos, 700, take, &rd[i]));
			assert_false(rd[i].bad);
			assert_int_equal(rd[i].pos, end);
			assert_int_equal(rd[i].len - before,
					 rd[0].len - all.len);
			assert_memory_equal(rd[i].b + before, rd[0].b + all.len,
					    rd[i].len - before);
		}
		free(behind.b);
	}
	for (int i = 0; i < NREADERS; i++)
		free(rd[i].b);
	free(all.b);
	kv_batch_free(b);
	TU_OK(kv_close(db));
	tu_rmdir(dir);
}

static void test_readers_in_one_segment(void **state)
{
	(void)state;
	run(1, 0, 0);
}

static void test_readers_across_rollovers(void **state)
{
	(void)state;
	run(2, 16384, 0);
}

static void test_readers_after_a_compaction(void **state)
{
	(void)state;
	run(3, 16384, 1);
}

/* A read-only handle follows a writer with kv_refresh, which may
 * rebuild its segment table (a compaction): the positions kept must
 * still serve the exact history. */
static void test_readers_of_a_refreshed_handle(void **state)
{
	char *dir = tu_mkdir();
	kv_options o, ro;
	kv_batch *b;
	stream rd[3], all;
	uint64_t rng = 4, end;

	(void)state;
	tu_options(&o);
	o.max_file_size = 16384;
	kv_t *db = tu_open(dir, &o);
	TU_OK(kv_batch_new(&b));
	write_some(db, b, &rng, 10);
	kv_options_init(&ro);
	ro.flags = KV_RDONLY;
	kv_t *view = tu_open(dir, &ro);
	memset(rd, 0, sizeof rd);
	memset(&all, 0, sizeof all);
	for (int round = 0; round < 100; round++) {
		write_some(db, b, &rng, 1 + (int)(tu_rand(&rng) % 30));
		if (round == 50) {
			TU_OK(kv_repl_read(db, 0, 0, take, &all));
			TU_OK(kv_compact(db, NULL));
		}
		TU_OK(kv_refresh(view));
		for (int i = 0; i < 3; i++) {
			size_t max = (size_t)(tu_rand(&rng) % 2000);
			TU_OK(kv_repl_read(view, rd[i].pos, max, take, &rd[i]));
			assert_false(rd[i].bad);
		}
	}
	TU_OK(kv_repl_position(view, &end));
	assert_true(all.len > 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rd[i].pos, end);
		assert_int_equal(rd[i].len, rd[0].len);
		assert_memory_equal(rd[i].b, rd[0].b, rd[0].len);
		assert_memory_equal(rd[i].b, all.b, all.len);
	}
	for (int i = 0; i < 3; i++)
		free(rd[i].b);
	free(all.b);
	kv_batch_free(b);
	TU_OK(kv_close(view));
	TU_OK(kv_close(db));
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_readers_in_one_segment),
		cmocka_unit_test(test_readers_across_rollovers),
		cmocka_unit_test(test_readers_after_a_compaction),
		cmocka_unit_test(test_readers_of_a_refreshed_handle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
