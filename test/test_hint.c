/* test_hint.c - the hint file codec: round trip, and every kind of damage
 * refused (a bad hint must cost a scan, never a wrong index). */
#include <stdlib.h>
#include <string.h>

#include "hint.h"
#include "le.h"
#include "testutil.h"

/* A hint for a segment of three records: put "a", tombstone "bb", put
 * "ccc" with a TTL; returns the segment size it covers. */
static uint64_t build(kv__hint_buf *h)
{
	kv__rec r[3] = {
		{ .type = KV__REC_PUT, .klen = 1, .vlen = 10, .lsn = 7 },
		{ .type = KV__REC_DEL, .klen = 2, .lsn = 9 },
		{ .type = KV__REC_PUT, .flags = KV__RF_ZLIB, .klen = 3,
		  .vlen = 300, .lsn = 12, .expire_ms = 123456789 },
	};
	const char *keys[3] = { "a", "bb", "ccc" };
	uint64_t off = KV__FILE_HDR;

	kv__hint_begin(h, 5);
	for (int i = 0; i < 3; i++) {
		kv__hint_add(h, &r[i], off, keys[i]);
		off += kv__rec_size(r[i].klen, r[i].vlen);
	}
	assert_int_equal(kv__hint_finish(h, off), 0);
	return off;
}

/* What recovery reads from a trailer to size the keydir before any hint
 * is checked: the count, only for the segment size the trailer names and
 * only as many entries as that many bytes of records can hold. */
static void test_claimed_count_is_believed_only_within_reason(void **state)
{
	kv__hint_buf h;
	uint64_t size = build(&h);
	uint8_t t[KV__HINT_TRAILER];

	(void)state;
	memcpy(t, h.data + h.len - sizeof t, sizeof t);
	assert_int_equal(kv__hint_claimed(t, size), 3);
	assert_int_equal(kv__hint_claimed(t, size + 1), 0);
	kv__put64(t + 8, size / KV__REC_HDR);
	assert_int_equal(kv__hint_claimed(t, size), size / KV__REC_HDR);
	kv__put64(t + 8, size / KV__REC_HDR + 1);
	assert_int_equal(kv__hint_claimed(t, size), 0);
	kv__put64(t + 8, 3);
	t[0] ^= 1;
	assert_int_equal(kv__hint_claimed(t, size), 0);
	kv__hint_free(&h);
}

static void test_round_trip(void **state)
{
	kv__hint_buf h;
	uint64_t size = build(&h);
	kv__hint_ent e;
	kv__hint_cur c = {0};

	(void)state;
	assert_null(kv__hint_check(h.data, h.len, 5, size));
	assert_int_equal(kv__hint_count(h.data, h.len), 3);
	assert_int_equal(kv__hint_next(h.data, h.len, &c, &e), 1);
	assert_int_equal(e.rec.type, KV__REC_PUT);
	assert_int_equal(e.off, 32);
	assert_memory_equal(e.key, "a", 1);
	assert_int_equal(kv__hint_next(h.data, h.len, &c, &e), 1);
	assert_int_equal(e.rec.type, KV__REC_DEL);
	assert_int_equal(e.rec.lsn, 9);
	assert_int_equal(e.off, 32 + 43);
	assert_int_equal(kv__hint_next(h.data, h.len, &c, &e), 1);
	assert_int_equal(e.rec.flags, KV__RF_ZLIB);
	assert_int_equal(e.rec.vlen, 300);
	assert_int_equal(e.rec.expire_ms, 123456789);
	assert_memory_equal(e.key, "ccc", 3);
	assert_int_equal(kv__hint_next(h.data, h.len, &c, &e), 0);
	assert_int_equal(e.off, 32 + 43 + 34);
	assert_int_equal(kv__hint_next(h.data, h.len, &c, &e), 0);
	/* Entry layout and trailer sizes, as kv-format(5) gives them: tag,
	 * varints of klen, vlen (300: 2 bytes), the LSN step (7, 2, 3:
	 * zigzag 14, 4, 6) and expire_ms (27 bits: 4 bytes), then the key. */
	assert_int_equal(h.len, 32 + (4 + 1) + (4 + 2) + (9 + 3) + 32);
	kv__hint_free(&h);
}

/* Extremes survive the varints: the largest lengths, LSNs that fall
 * (compaction outputs hold records of any age) and rise by 2^62, an
 * expiry of 2^63 - 1. */
static void test_extremes_round_trip(void **state)
{
	kv__rec r[4] = {
		{ .type = KV__REC_PUT, .klen = UINT16_MAX, .vlen = UINT32_MAX,
		  .lsn = UINT64_C(1) << 62 },
		{ .type = KV__REC_PUT, .klen = 1, .vlen = 0, .lsn = 1,
		  .expire_ms = INT64_MAX },
		{ .type = KV__REC_DEL, .klen = 2,
		  .lsn = (UINT64_C(1) << 62) + 1 },
		{ .type = KV__REC_PUT, .klen = 1, .vlen = 128, .lsn = 2 },
	};
	static uint8_t key[UINT16_MAX];
	uint64_t off = KV__FILE_HDR;
	kv__hint_buf h;
	kv__hint_ent e;
	kv__hint_cur c = {0};

	(void)state;
	memset(key, 'x', sizeof key);
	kv__hint_begin(&h, 3);
	for (int i = 0; i < 4; i++) {
		kv__hint_add(&h, &r[i], off, key);
		off += kv__rec_size(r[i].klen, r[i].vlen);
	}
	assert_int_equal(kv__hint_finish(&h, off), 0);
	assert_null(kv__hint_check(h.data, h.len, 3, off));
	off = KV__FILE_HDR;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(kv__hint_next(h.data, h.len, &c, &e), 1);
		assert_int_equal(e.off, off);
		assert_int_equal(e.rec.type, r[i].type);
		assert_int_equal(e.rec.klen, r[i].klen);
		assert_int_equal(e.rec.vlen, r[i].vlen);
		assert_true(e.rec.lsn == r[i].lsn);
		assert_true(e.rec.expire_ms == r[i].expire_ms);
		off += kv__rec_size(r[i].klen, r[i].vlen);
	}
	assert_int_equal(kv__hint_next(h.data, h.len, &c, &e), 0);
	kv__hint_free(&h);
}

/* What an entry cannot say fails the hint instead of being written
 * wrong: a record that does not start where the one before ended, a type
 * or flags wider than the tag's bits. */
static void test_what_an_entry_cannot_hold_fails_the_hint(void **state)
{
	kv__rec ok = { .type = KV__REC_PUT, .klen = 1, .vlen = 1, .lsn = 1 };
	kv__rec bad[2] = { ok, ok };
	kv__hint_buf h;

	(void)state;
	bad[0].type = 4;
	bad[1].flags = 0x10;
	for (int i = 0; i < 2; i++) {
		kv__hint_begin(&h, 1);
		kv__hint_add(&h, &bad[i], KV__FILE_HDR, "k");
		assert_int_equal(h.failed, 1);
		assert_int_equal(kv__hint_finish(&h, 100), KV_ENOMEM);
		kv__hint_free(&h);
	}
	kv__hint_begin(&h, 1);
	kv__hint_add(&h, &ok, KV__FILE_HDR, "k");
	assert_int_equal(h.failed, 0);
	kv__hint_add(&h, &ok, KV__FILE_HDR + kv__rec_size(1, 1) + 1, "k");
	assert_int_equal(h.failed, 1);
	kv__hint_free(&h);
}

static void test_every_flipped_bit_is_refused(void **state)
{
	kv__hint_buf h;
	uint64_t size = build(&h);

	(void)state;
	for (size_t i = 0; i < h.len * 8; i++) {
		h.data[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_non_null(kv__hint_check(h.data, h.len, 5, size));
		h.data[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	assert_null(kv__hint_check(h.data, h.len, 5, size));
	kv__hint_free(&h);
}

static void test_wrong_segment_or_size_or_length(void **state)
{
	kv__hint_buf h;
	uint64_t size = build(&h);

	(void)state;
	assert_non_null(kv__hint_check(h.data, h.len, 6, size)); /* seq */
	assert_non_null(kv__hint_check(h.data, h.len, 5, size + 1));
	assert_non_null(kv__hint_check(h.data, h.len, 5, size - 1));
	for (size_t len = 0; len < h.len; len++)
		assert_non_null(kv__hint_check(h.data, len, 5, size));
	kv__hint_free(&h);
}

/* An entry that cannot be decoded stops the walk with -1, never reads
 * past the entries: a tag with its unused bit, a varint that runs into
 * the trailer, a key length past the end. (Open never gets here with
 * such bytes: the file's CRC refuses them first.) */
static void test_undecodable_entries(void **state)
{
	kv__hint_buf h;
	kv__hint_ent e;
	kv__hint_cur c = {0};

	(void)state;
	build(&h);
	h.data[32] |= 0x80; /* tag of the first entry */
	assert_int_equal(kv__hint_next(h.data, h.len, &c, &e), -1);
	h.data[32] &= 0x7f;
	memset(h.data + 32 + 5, 0xff, h.len - 32 - 5 - 32); /* varints run on */
	c = (kv__hint_cur){0};
	assert_int_equal(kv__hint_next(h.data, h.len, &c, &e), 1);
	assert_int_equal(kv__hint_next(h.data, h.len, &c, &e), -1);
	kv__hint_free(&h);
}

/* A claimed key length past the end stops the walk, never reads past. */
static void test_lying_key_length(void **state)
{
	kv__hint_buf h;
	kv__hint_ent e;
	kv__hint_cur c = {0};

	(void)state;
	build(&h);
	h.data[32 + 1] = 0xff; /* klen 16383: a 2-byte varint over vlen */
	h.data[32 + 2] = 0x7f;
	assert_int_equal(kv__hint_next(h.data, h.len, &c, &e), -1);
	kv__hint_free(&h);
}

/* A sink that collects what it is handed, and can refuse from a point. */
struct collect {
	uint8_t *data;
	size_t len;
	size_t calls, fail_at;  /* fail_at: 1-based call to refuse; 0 never */
};

static int collect_sink(void *ctx, const uint8_t *p, size_t n)
{
	struct collect *c = ctx;

	if (++c->calls == c->fail_at)
		return -1;
	c->data = realloc(c->data, c->len + n);
	assert_non_null(c->data);
	memcpy(c->data + c->len, p, n);
	c->len += n;
	return 0;
}

/* Enough entries to spill several times: 60,000 of 16-byte keys (about
 * 1.2 MB). */
static uint64_t build_big(kv__hint_buf *h, struct collect *c)
{
	uint64_t off = KV__FILE_HDR;

	kv__hint_begin(h, 9);
	if (c)
		kv__hint_stream(h, collect_sink, c);
	for (uint32_t i = 0; i < 60000; i++) {
		char key[16];
		kv__rec r = { .type = KV__REC_PUT, .klen = 16,
			      .vlen = 100 + i % 7, .lsn = 1 + i };

		memset(key, 'k', sizeof key);
		memcpy(key, &i, sizeof i);
		kv__hint_add(h, &r, off, key);
		off += kv__rec_size(r.klen, r.vlen);
	}
	if (kv__hint_finish(h, off) == 0 && c)
		kv__hint_drain(h);
	return off;
}

/* A streamed hint is the same file as one built whole, though at most
 * KV__HINT_SPILL bytes (and one entry) were ever held; a sink that fails
 * fails the hint, so no partial hint is taken for a whole one. */
static void test_streamed_hint_is_the_same_file(void **state)
{
	kv__hint_buf whole, streamed;
	struct collect c = { 0 };
	uint64_t size = build_big(&whole, NULL);

	(void)state;
	assert_int_equal(build_big(&streamed, &c), size);
	assert_int_equal(streamed.failed, 0);
	assert_true(c.calls >= 4);
	assert_true(streamed.cap <= 2 * KV__HINT_SPILL);
	assert_int_equal(kv__hint_bytes(&streamed), whole.len);
	assert_int_equal(c.len, whole.len);
	assert_memory_equal(c.data, whole.data, whole.len);
	assert_null(kv__hint_check(c.data, c.len, 9, size));
	assert_int_equal(kv__hint_count(c.data, c.len), 60000);
	kv__hint_free(&streamed);
	free(c.data);

	for (size_t at = 1; at <= 5; at++) {
		struct collect f = { .fail_at = at };

		build_big(&streamed, &f);
		assert_int_equal(streamed.failed, 1);
		assert_int_equal(kv__hint_drain(&streamed), -1);
		kv__hint_free(&streamed);
		free(f.data);
	}
	kv__hint_free(&whole);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_claimed_count_is_believed_only_within_reason),
		cmocka_unit_test(test_streamed_hint_is_the_same_file),
		cmocka_unit_test(test_every_flipped_bit_is_refused),
		cmocka_unit_test(test_wrong_segment_or_size_or_length),
		cmocka_unit_test(test_extremes_round_trip),
		cmocka_unit_test(test_what_an_entry_cannot_hold_fails_the_hint),
		cmocka_unit_test(test_undecodable_entries),
		cmocka_unit_test(test_lying_key_length),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
