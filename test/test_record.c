/*
 * test_record.c - the pure record functions of record.h: header encoding,
 * the checks decode makes, the CRC, and value compression.
 *
 * Everything here is memory in, memory out, so each case compares exact
 * bytes and exact return codes.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "crc.h"
#include "format.h"
#include "record.h"

/* Encodes r over key/val into buf (header + key + value) and returns it. */
static uint8_t *build(kv__rec *r, const void *key, const void *val,
		      size_t extra)
{
	size_t n = (size_t)kv__rec_size(r->klen, r->vlen);
	uint8_t *buf = calloc(1, n + extra);

	assert_non_null(buf);
	kv__rec_encode(r, buf, key, val);
	memcpy(buf + KV__REC_HDR, key, r->klen);
	if (r->vlen)
		memcpy(buf + KV__REC_HDR + r->klen, val, r->vlen);
	return buf;
}

static void fill_pattern(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed | 1;

	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)tu_rand(&s);
}

/* ---- round trip ---- */

struct rt_case {
	uint8_t type, flags;
	uint16_t klen;
	uint32_t vlen, batch_left;
	uint64_t lsn, expire_ms;
};

static void test_encode_decode_round_trip_for_extreme_fields(void **state)
{
	(void)state;
	/* Each row pins one extreme: the shortest and longest key, an empty
	 * and a large value, the largest lsn, expiry and batch count, the
	 * compression flag and a tombstone. */
	static const struct rt_case cases[] = {
		{ KV__REC_PUT, 0, 1, 0, 0, 1, 0 },
		{ KV__REC_PUT, 0, 65535, 0, 0, 2, 0 },
		{ KV__REC_PUT, 0, 65535, 1, 0, 3, 0 },
		{ KV__REC_PUT, 0, 1, (3u << 20) + 7, 0, 4, 0 },
		{ KV__REC_PUT, 0, 17, 100, 0, UINT64_MAX, UINT64_MAX },
		{ KV__REC_PUT, 0, 2, 3, UINT32_MAX, 5, 1 },
		{ KV__REC_PUT, 0, 9, 9, 1, UINT64_C(0x8000000000000000),
		  UINT64_C(0x7fffffffffffffff) },
		{ KV__REC_PUT, KV__RF_ZLIB, 4, 40, 0, 6, 1700000000000u },
		{ KV__REC_PUT, KV__RF_ZLIB, 65535, (1u << 20), 7, 7, 0 },
		{ KV__REC_DEL, 0, 1, 0, 0, 8, 0 },
		{ KV__REC_DEL, 0, 65535, 0, 3, UINT64_MAX, 0 },
		{ KV__REC_DEL, 0, 5, 0, UINT32_MAX, 9, UINT64_MAX },
	};
	uint8_t *key = malloc(65535), *val = malloc((3u << 20) + 7);

	assert_non_null(key);
	assert_non_null(val);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct rt_case *c = &cases[i];
		kv__rec r = { .type = c->type, .flags = c->flags,
			      .klen = c->klen, .vlen = c->vlen,
			      .batch_left = c->batch_left, .lsn = c->lsn,
			      .expire_ms = c->expire_ms }, d;

		fill_pattern(key, c->klen, i * 2 + 1);
		fill_pattern(val, c->vlen, i * 2 + 2);
		uint8_t *buf = build(&r, key, val, 0);

		memset(&d, 0xa5, sizeof d);
		const char *why = kv__rec_decode(buf, &d);
		if (why)
			fail_msg("case %zu: decode refused: %s", i, why);
		assert_int_equal(d.crc, r.crc);
		assert_int_equal(d.type, c->type);
		assert_int_equal(d.flags, c->flags);
		assert_int_equal(d.klen, c->klen);
		assert_int_equal(d.vlen, c->vlen);
		assert_int_equal(d.batch_left, c->batch_left);
		assert_true(d.lsn == c->lsn);
		assert_true(d.expire_ms == c->expire_ms);
		assert_true(kv__rec_crc_ok(&d, buf));

		/* The incremental form gives the same CRC as the one-shot. */
		uint32_t crc = kv__rec_crc_begin(buf);
		crc = kv__rec_crc_update(crc, key, c->klen);
		crc = kv__rec_crc_update(crc, val, c->vlen);
		assert_int_equal(crc, r.crc);
		free(buf);
	}
	free(key);
	free(val);
}

static void test_encode_decode_round_trip_random_fields(void **state)
{
	(void)state;
	uint64_t s = 0x5eed0001;
	uint8_t key[300], val[700];

	/* Random field values, as a cheap fuzz of the header packing. */
	for (int i = 0; i < 20000; i++) {
		kv__rec r = {
			.type = (tu_rand(&s) & 1) ? KV__REC_PUT : KV__REC_DEL,
			.klen = (uint16_t)(1 + tu_rand(&s) % sizeof key),
			.batch_left = (uint32_t)tu_rand(&s),
			.lsn = tu_rand(&s) | 1,
			.expire_ms = (tu_rand(&s) & 1) ? tu_rand(&s) : 0,
		}, d;

		if (r.type == KV__REC_PUT) {
			r.flags = (uint8_t)(tu_rand(&s) & KV__RF_ZLIB);
			r.vlen = (uint32_t)(tu_rand(&s) % (sizeof val + 1));
		}
		fill_pattern(key, r.klen, tu_rand(&s));
		fill_pattern(val, r.vlen, tu_rand(&s));
		uint8_t *buf = build(&r, key, val, 0);

		assert_null(kv__rec_decode(buf, &d));
		assert_memory_equal(&d, &r, sizeof r);
		assert_true(kv__rec_crc_ok(&d, buf));
		free(buf);
	}
}

/* ---- known answer ---- */

static void test_known_answer_header_bytes_pin_the_format(void **state)
{
	(void)state;
	/*
	 * These bytes ARE the on-disk format (format.h, kv-format(5)): crc32
	 * little-endian, type, flags, klen, vlen, batch_left, lsn, expire_ms,
	 * all little-endian. They were computed independently (Python's
	 * struct + zlib.crc32), not by this library. If this test fails, the
	 * format changed: existing stores would be misread, so bump
	 * KV__FORMAT_VERSION instead of editing these bytes.
	 */
	static const uint8_t put_hdr[KV__REC_HDR] = {
		0x17, 0x2b, 0x54, 0x26, 0x01, 0x00, 0x03, 0x00,
		0x05, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
		0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
	};
	static const uint8_t del_hdr[KV__REC_HDR] = {
		0xbc, 0x1f, 0x11, 0xfe, 0x02, 0x00, 0x01, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	uint8_t hdr[KV__REC_HDR];
	kv__rec put = { .type = KV__REC_PUT, .klen = 3, .vlen = 5,
			.batch_left = 2, .lsn = UINT64_C(0x0102030405060708),
			.expire_ms = UINT64_C(0x1122334455667788) };
	kv__rec del = { .type = KV__REC_DEL, .klen = 1, .lsn = 1 };

	assert_int_equal(KV__REC_HDR, 32);
	assert_int_equal(KV__REC_PUT, 1);
	assert_int_equal(KV__REC_DEL, 2);
	assert_int_equal(KV__RF_ZLIB, 1);
	memset(hdr, 0xee, sizeof hdr);
	kv__rec_encode(&put, hdr, "key", "value");
	assert_memory_equal(hdr, put_hdr, KV__REC_HDR);
	assert_int_equal(put.crc, 0x26542b17u);
	memset(hdr, 0xee, sizeof hdr);
	kv__rec_encode(&del, hdr, "k", NULL);
	assert_memory_equal(hdr, del_hdr, KV__REC_HDR);
	assert_int_equal(del.crc, 0xfe111fbcu);
}

/* ---- CRC coverage ---- */

/* crc32 of n zero bytes appended to a stream whose crc is crc. */
static uint32_t crc_extend_zeros(uint32_t crc, uint64_t n)
{
	/* pow[k] = crc32 of 2^k zero bytes, built by doubling. */
	uLong pow = crc32(0, (const Bytef *)"\0", 1);
	uLong z = crc32(0, Z_NULL, 0);
	uint64_t done = 0;

	for (int k = 0; n >> k; k++) {
		if ((n >> k) & 1) {
			z = crc32_combine(z, pow, (z_off_t)(UINT64_C(1) << k));
			done += UINT64_C(1) << k;
		}
		pow = crc32_combine(pow, pow, (z_off_t)(UINT64_C(1) << k));
	}
	assert_true(done == n);
	return (uint32_t)crc32_combine(crc, z, (z_off_t)n);
}

/* The files' CRC is zlib's crc32 whatever computes it (ISA-L since the
 * bench issue): every length 0..4,100 at every alignment 0..7, in one call
 * and chained at a random split, must give zlib's answer, or stores
 * written before the change would read as corrupt. */
static void test_crc_is_zlibs_crc32_at_every_length_and_split(void **state)
{
	static uint8_t buf[4100 + 8];
	uint64_t rs = 42;
	(void)state;
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)tu_rand(&rs);
	for (size_t n = 0; n <= 4100; n++) {
		size_t align = n % 8, cut = (size_t)(tu_rand(&rs) % (n + 1));
		const uint8_t *p = buf + align;
		uint32_t z = (uint32_t)crc32_z(0, p, n);
		assert_int_equal(kv__crc32(0, p, n), z);
		assert_int_equal(kv__crc32(kv__crc32(0, p, cut), p + cut, n - cut),
				 z);
	}
	assert_int_equal(kv__crc32(0, "123456789", 9), 0xCBF43926u);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>

/* XINUSE (XGETBV with ECX = 1): which vector state is not in its initial
 * state. Bit 2: upper halves of ymm0-15; bit 6: upper halves of zmm0-15. */
static uint64_t xinuse(void)
{
	uint32_t lo, hi;

	__asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(1));
	return (uint64_t)hi << 32 | lo;
}
#endif

/* A CRC leaves the vector registers' upper halves clean. ISA-L's AVX-512
 * CRC left them dirty, and every SSE instruction after it ran in a mixed
 * state: building a hint entry took 144 ns instead of 7.4 (NOTES.md).
 * Checked through XINUSE where the CPU reports it, else skipped. */
static void test_crc_leaves_vector_upper_halves_clean(void **state)
{
	(void)state;
#if defined(__x86_64__) && defined(__GNUC__)
	static uint8_t buf[4096];
	unsigned a, b, c, d;

	if (!__get_cpuid_count(0xd, 1, &a, &b, &c, &d) || !(a & 0x4) ||
	    !__builtin_cpu_supports("avx")) {
		skip();
		return;
	}
	for (size_t n = 1; n <= sizeof buf; n *= 4) {
		uint32_t crc = kv__crc32(0, buf, n);
		uint64_t in_use = xinuse();

		if (in_use & 0x44)
			fail_msg("after a CRC of %zu bytes (%08x), XINUSE is "
				 "%#llx: upper vector state left dirty", n,
				 crc, (unsigned long long)in_use);
	}
#else
	skip();
#endif
}

static void test_crc_detects_every_single_bit_flip(void **state)
{
	(void)state;
	/* A small record, followed by 1 MiB + 64 KiB of zeros so that a flip
	 * that enlarges klen or vlen still has bytes to check the CRC over,
	 * as it would in the middle of a segment. */
	const size_t tail = (1u << 20) + 65536;
	kv__rec r = { .type = KV__REC_PUT, .klen = 2, .vlen = 5,
		      .lsn = 77, .expire_ms = 123456 };
	uint8_t *buf = build(&r, "k1", "v-abc", tail);
	size_t len = (size_t)kv__rec_size(r.klen, r.vlen);
	size_t avail = len + tail;
	int by_decode = 0, by_crc = 0;

	assert_null(kv__rec_decode(buf, &(kv__rec){ 0 }));
	for (size_t bit = 0; bit < len * 8; bit++) {
		kv__rec d;

		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (kv__rec_decode(buf, &d) != NULL) {
			by_decode++;
		} else {
			uint64_t need = kv__rec_size(d.klen, d.vlen);
			uint64_t have = need < len ? need : len;
			/* The CRC a reader computes over `need` bytes: the
			 * record's own, then the zeros that follow it. */
			uint32_t c = kv__rec_crc_begin(buf);
			c = kv__rec_crc_update(c, buf + KV__REC_HDR,
					       (size_t)have - KV__REC_HDR);
			c = crc_extend_zeros(c, need - have);
			if (c == d.crc)
				fail_msg("flip of bit %zu (byte %zu) not "
					 "detected", bit, bit / 8);
			if (need <= avail) {
				/* The library agrees, and so does the helper
				 * with the real bytes. */
				assert_false(kv__rec_crc_ok(&d, buf));
				assert_int_equal(c, kv__rec_crc_update(
					kv__rec_crc_begin(buf),
					buf + KV__REC_HDR,
					(size_t)need - KV__REC_HDR));
			}
			by_crc++;
		}
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	/* The unflipped record is still accepted: the loop restored it. */
	kv__rec d;
	assert_null(kv__rec_decode(buf, &d));
	assert_true(kv__rec_crc_ok(&d, buf));
	/* Type and flags bits are caught by decode; most others by the CRC. */
	assert_int_equal(by_decode + by_crc, (int)(len * 8));
	assert_true(by_decode > 0 && by_crc > 0);
	free(buf);
}

static void test_crc_detects_any_changed_key_or_value_byte(void **state)
{
	(void)state;
	uint8_t key[40], val[200];
	uint64_t s = 99;

	fill_pattern(key, sizeof key, 1);
	fill_pattern(val, sizeof val, 2);
	kv__rec r = { .type = KV__REC_PUT, .klen = sizeof key,
		      .vlen = sizeof val, .lsn = 5 };
	uint8_t *buf = build(&r, key, val, 0);
	size_t len = (size_t)kv__rec_size(r.klen, r.vlen);

	/* Every body byte replaced by a different value must fail the CRC
	 * (single-byte errors are within CRC-32's guaranteed burst length). */
	for (size_t i = KV__REC_HDR; i < len; i++) {
		uint8_t old = buf[i];
		uint8_t nv = (uint8_t)(old + 1 + tu_rand(&s) % 255);

		buf[i] = nv;
		assert_false(kv__rec_crc_ok(&r, buf));
		buf[i] = old;
	}
	assert_true(kv__rec_crc_ok(&r, buf));
	free(buf);
}

/* ---- decode refusals ---- */

/* A valid header to break one field of at a time. */
static void good_header(uint8_t hdr[KV__REC_HDR])
{
	kv__rec r = { .type = KV__REC_PUT, .klen = 3, .vlen = 4, .lsn = 10 };

	kv__rec_encode(&r, hdr, "abc", "defg");
}

static void expect_refused(const uint8_t hdr[KV__REC_HDR], const char *what)
{
	kv__rec d;
	const char *why = kv__rec_decode(hdr, &d);

	if (!why)
		fail_msg("decode accepted a header with %s", what);
	assert_true(strlen(why) > 0);
}

static void test_decode_rejects_invalid_fields(void **state)
{
	(void)state;
	uint8_t hdr[KV__REC_HDR];
	kv__rec d;

	good_header(hdr);
	assert_null(kv__rec_decode(hdr, &d));

	/* Unknown type: every value but PUT and DEL. */
	for (unsigned t = 0; t < 256; t++) {
		if (t == KV__REC_PUT || t == KV__REC_DEL)
			continue;
		good_header(hdr);
		hdr[4] = (uint8_t)t;
		expect_refused(hdr, "an unknown type");
	}
	/* Unknown flags: every bit outside KV__RF_KNOWN. */
	for (unsigned f = 1; f < 256; f++) {
		if (!(f & ~KV__RF_KNOWN))
			continue;
		good_header(hdr);
		hdr[5] = (uint8_t)f;
		expect_refused(hdr, "unknown flags");
	}
	/* klen 0. */
	good_header(hdr);
	hdr[6] = hdr[7] = 0;
	expect_refused(hdr, "an empty key");
	/* A tombstone carrying a value, of any length. */
	static const uint32_t vlens[] = { 1, 2, 255, 65536, UINT32_MAX };
	for (size_t i = 0; i < sizeof vlens / sizeof vlens[0]; i++) {
		good_header(hdr);
		hdr[4] = KV__REC_DEL;
		hdr[8] = (uint8_t)vlens[i];
		hdr[9] = (uint8_t)(vlens[i] >> 8);
		hdr[10] = (uint8_t)(vlens[i] >> 16);
		hdr[11] = (uint8_t)(vlens[i] >> 24);
		expect_refused(hdr, "a tombstone with a value");
	}
	/* A tombstone marked compressed has no value to inflate. */
	good_header(hdr);
	hdr[4] = KV__REC_DEL;
	memset(hdr + 8, 0, 4);
	hdr[5] = KV__RF_ZLIB;
	expect_refused(hdr, "a compressed tombstone");
	/* lsn 0. */
	good_header(hdr);
	memset(hdr + 16, 0, 8);
	expect_refused(hdr, "lsn 0");

	/* The edges that are valid stay valid. */
	good_header(hdr);
	hdr[4] = KV__REC_DEL;
	memset(hdr + 8, 0, 4);
	assert_null(kv__rec_decode(hdr, &d));
	assert_int_equal(d.type, KV__REC_DEL);
	good_header(hdr);
	hdr[5] = KV__RF_ZLIB;
	assert_null(kv__rec_decode(hdr, &d));
	good_header(hdr);
	memset(hdr + 16, 0, 8);
	hdr[16] = 1;
	assert_null(kv__rec_decode(hdr, &d));
	assert_true(d.lsn == 1);
	good_header(hdr);
	hdr[6] = hdr[7] = 0xff;
	assert_null(kv__rec_decode(hdr, &d));
	assert_int_equal(d.klen, 65535);
}

/* ---- compression ---- */

static void test_compress_round_trip_stores_compressible_data_smaller(
	void **state)
{
	(void)state;
	static const size_t sizes[] = { 64, 512, 4096, 100000, 5u << 20 };

	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t n = sizes[i];
		uint8_t *raw = malloc(n);
		void *z = (void *)1, *back = NULL;
		size_t zlen = 0, blen = 0;

		assert_non_null(raw);
		/* Text-like: a few words repeated with a counter. */
		for (size_t j = 0; j < n; j++)
			raw[j] = (uint8_t)("the quick brown fox "[j % 20] +
					   (j / 4096 % 3));
		assert_int_equal(kv__rec_compress(raw, n, &z, &zlen), 0);
		assert_non_null(z);
		assert_true(zlen < n);
		assert_true(zlen > 4);
		/* Stored layout: u32 raw length, little-endian, then zlib. */
		const uint8_t *zp = z;
		uint32_t claimed = (uint32_t)zp[0] | (uint32_t)zp[1] << 8 |
				   (uint32_t)zp[2] << 16 |
				   (uint32_t)zp[3] << 24;
		assert_int_equal(claimed, n);
		size_t rl = 0;
		assert_int_equal(kv__rec_raw_len(z, zlen, &rl), 0);
		assert_int_equal(rl, n);

		assert_int_equal(kv__rec_uncompress(z, zlen, &back, &blen), 0);
		assert_non_null(back);
		assert_int_equal(blen, n);
		assert_memory_equal(back, raw, n);
		assert_int_equal(((uint8_t *)back)[n], 0);
		free(back);
		free(z);
		free(raw);
	}
}

static void test_compress_returns_1_for_incompressible_and_tiny_values(
	void **state)
{
	(void)state;
	uint8_t rnd[8192], same[64];

	fill_pattern(rnd, sizeof rnd, 1234);
	memset(same, 'a', sizeof same);
	static const size_t rsizes[] = { 5, 16, 100, 1000, 8192 };
	for (size_t i = 0; i < sizeof rsizes / sizeof rsizes[0]; i++) {
		void *z = (void *)1;
		size_t zlen = 12345;

		assert_int_equal(kv__rec_compress(rnd, rsizes[i], &z, &zlen),
				 1);
		assert_null(z); /* nothing allocated */
	}
	/* Tiny values: even all-equal bytes cannot beat the 4-byte length
	 * plus zlib's own header and trailer. */
	for (size_t n = 0; n <= 12; n++) {
		void *z = (void *)1;
		size_t zlen = 0;

		assert_int_equal(kv__rec_compress(same, n, &z, &zlen), 1);
		assert_null(z);
	}
}

/* A valid compressed value of n text bytes; the caller frees both. */
static void make_compressed(size_t n, uint8_t **raw, void **z, size_t *zlen)
{
	*raw = malloc(n);
	assert_non_null(*raw);
	for (size_t j = 0; j < n; j++)
		(*raw)[j] = (uint8_t)("lorem ipsum dolor "[j % 18]);
	assert_int_equal(kv__rec_compress(*raw, n, z, zlen), 0);
}

static void put_len(void *p, uint32_t v)
{
	uint8_t *b = p;

	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
}

static void test_raw_len_refuses_lengths_beyond_zlib_ratio(void **state)
{
	(void)state;
	uint8_t st[64] = { 0 };
	size_t raw;

	/* slen 64: a stream of 60 bytes inflates to at most 60 * 1032. */
	put_len(st, 60u * KV__ZLIB_MAX_RATIO);
	raw = 0;
	assert_int_equal(kv__rec_raw_len(st, sizeof st, &raw), 0);
	assert_int_equal(raw, 60u * KV__ZLIB_MAX_RATIO);
	put_len(st, 60u * KV__ZLIB_MAX_RATIO + 1);
	assert_int_equal(kv__rec_raw_len(st, sizeof st, &raw), KV_ECORRUPT);
	put_len(st, 1);
	assert_int_equal(kv__rec_raw_len(st, sizeof st, &raw), 0);
	assert_int_equal(raw, 1);
	/* Zero raw bytes is never stored compressed. */
	put_len(st, 0);
	assert_int_equal(kv__rec_raw_len(st, sizeof st, &raw), KV_ECORRUPT);
	/* A lying 4 GiB length is refused by the bound, before any
	 * allocation could be sized from it. */
	put_len(st, UINT32_MAX);
	assert_int_equal(kv__rec_raw_len(st, sizeof st, &raw), KV_ECORRUPT);
	/* Too short to hold a length and any stream at all. */
	put_len(st, 1);
	for (size_t slen = 0; slen < 5; slen++)
		assert_int_equal(kv__rec_raw_len(st, slen, &raw),
				 KV_ECORRUPT);
	/* The bound scales with the stored length, at every size. */
	for (size_t slen = 5; slen < 4096; slen += 37) {
		put_len(st, (uint32_t)((slen - 4) * KV__ZLIB_MAX_RATIO));
		assert_int_equal(kv__rec_raw_len(st, slen, &raw), 0);
		assert_int_equal(raw, (slen - 4) * KV__ZLIB_MAX_RATIO);
		put_len(st, (uint32_t)((slen - 4) * KV__ZLIB_MAX_RATIO + 1));
		assert_int_equal(kv__rec_raw_len(st, slen, &raw),
				 KV_ECORRUPT);
	}
}

static void test_uncompress_rejects_lying_length_and_garbled_stream(
	void **state)
{
	(void)state;
	uint8_t *raw;
	void *z, *out;
	size_t zlen, olen;
	const size_t n = 20000;

	make_compressed(n, &raw, &z, &zlen);
	uint8_t *zb = z;

	/* A 4 GiB claim: refused as corrupt, nothing returned. */
	put_len(zb, UINT32_MAX);
	out = (void *)1;
	olen = 777;
	assert_int_equal(kv__rec_uncompress(z, zlen, &out, &olen),
			 KV_ECORRUPT);
	assert_null(out);

	/* A raw length off by one either way does not match the stream. */
	const int64_t deltas[] = { -1, 1, -(int64_t)n / 2, 1000 };
	for (size_t i = 0; i < sizeof deltas / sizeof deltas[0]; i++) {
		put_len(zb, (uint32_t)((int64_t)n + deltas[i]));
		out = (void *)1;
		assert_int_equal(kv__rec_uncompress(z, zlen, &out, &olen),
				 KV_ECORRUPT);
		assert_null(out);
	}
	put_len(zb, (uint32_t)n);
	assert_int_equal(kv__rec_uncompress(z, zlen, &out, &olen), 0);
	assert_int_equal(olen, n);
	assert_memory_equal(out, raw, n);
	free(out);

	/* Garbled streams, each byte of the zlib stream changed in turn.
	 * Whatever the position, the caller never gets wrong bytes: either
	 * KV_ECORRUPT, or (a bit zlib ignores, such as padding after the final
	 * block) exactly the original value. */
	uint64_t s = 4242;
	size_t caught = 0;
	for (size_t i = 4; i < zlen; i++) {
		uint8_t old = zb[i];

		zb[i] = (uint8_t)(old ^ (1 + tu_rand(&s) % 255));
		out = (void *)1;
		int rc = kv__rec_uncompress(z, zlen, &out, &olen);
		if (rc == 0) {
			assert_int_equal(olen, n);
			assert_memory_equal(out, raw, n);
			free(out);
		} else {
			assert_int_equal(rc, KV_ECORRUPT);
			assert_null(out);
			caught++;
		}
		zb[i] = old;
	}
	assert_true(caught >= (zlen - 4) * 9 / 10);
	/* Where detection is certain: the compression method byte and every
	 * byte of the adler32 trailer. */
	size_t certain[] = { 4, zlen - 4, zlen - 3, zlen - 2, zlen - 1 };
	for (size_t i = 0; i < sizeof certain / sizeof certain[0]; i++) {
		for (unsigned x = 1; x < 256; x++) {
			zb[certain[i]] ^= (uint8_t)x;
			out = (void *)1;
			assert_int_equal(kv__rec_uncompress(z, zlen, &out,
							    &olen), KV_ECORRUPT);
			assert_null(out);
			zb[certain[i]] ^= (uint8_t)x;
		}
	}
	/* A truncated stream. */
	for (size_t cut = 5; cut < zlen; cut += 1 + cut / 3) {
		out = (void *)1;
		put_len(zb, (uint32_t)n);
		int rc = kv__rec_uncompress(z, cut, &out, &olen);
		assert_int_equal(rc, KV_ECORRUPT);
		assert_null(out);
	}
	/* Pure garbage after a plausible length. */
	uint8_t junk[300];
	fill_pattern(junk, sizeof junk, 5);
	put_len(junk, 1000);
	out = (void *)1;
	assert_int_equal(kv__rec_uncompress(junk, sizeof junk, &out, &olen),
			 KV_ECORRUPT);
	assert_null(out);
	free(z);
	free(raw);
}

/* Values of each kind the benchmarks and users store: text, half random
 * (random bytes and their copy, as kvbench's), and runs of one byte. */
static void fill_kind(uint8_t *p, size_t n, int kind, uint64_t seed)
{
	uint64_t s = seed | 1;

	for (size_t i = 0; i < n; i++) {
		if (kind == 0)
			p[i] = (uint8_t)("a value of text; "[i % 17] +
					 (i / 1000 % 5));
		else if (kind == 1)
			p[i] = i % 64 < 32 ? (uint8_t)tu_rand(&s) : p[i - 32];
		else
			p[i] = (uint8_t)(i / 300);
	}
}

/* The stored stream is zlib's format both ways: zlib inflates what this
 * library writes (older libkv reads a new store), and this library
 * inflates what zlib's compress2 wrote (the streams of older libkv, which
 * used it, at level 1, and any level a tool may have used). */
static void test_compressed_values_are_zlib_streams_both_ways(void **state)
{
	(void)state;
	static const size_t sizes[] = { 13, 64, 100, 512, 4096, 65536,
					1u << 20 };

	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		for (int kind = 0; kind < 3; kind++) {
			size_t n = sizes[i];
			uint8_t *raw = malloc(n), *back = malloc(n);
			void *z = NULL, *out = NULL;
			size_t zlen = 0, olen = 0;

			assert_non_null(raw);
			assert_non_null(back);
			fill_kind(raw, n, kind, n + (size_t)kind);
			int rc = kv__rec_compress(raw, n, &z, &zlen);
			assert_true(rc == 0 || rc == 1);
			if (rc == 0) {
				uLongf got = (uLongf)n;

				assert_true(zlen < n);
				assert_int_equal(uncompress(back, &got,
						 (const uint8_t *)z + 4,
						 (uLong)(zlen - 4)), Z_OK);
				assert_int_equal(got, n);
				assert_memory_equal(back, raw, n);
				free(z);
			} else {
				assert_true(n < 100); /* only tiny ones */
			}
			for (int level = 1; level <= 9; level += 8) {
				uLongf cap = compressBound((uLong)n);
				uint8_t *zs = malloc(4 + (size_t)cap);

				assert_non_null(zs);
				assert_int_equal(compress2(zs + 4, &cap, raw,
							   (uLong)n, level),
						 Z_OK);
				put_len(zs, (uint32_t)n);
				assert_int_equal(kv__rec_uncompress(zs,
						 4 + (size_t)cap, &out, &olen),
						 0);
				assert_int_equal(olen, n);
				assert_memory_equal(out, raw, n);
				free(out);
				free(zs);
			}
			free(back);
			free(raw);
		}
	}
}

/* Threads compressing and inflating at once share the kept working
 * memory (zpool.c): each must get a block no other thread is using, or
 * values come back wrong. More threads than the pool keeps, so blocks are
 * also made and freed while others are in use. */
#define ZT_THREADS 8
#define ZT_ROUNDS 300

static void *zthread(void *arg)
{
	size_t t = (size_t)(uintptr_t)arg;
	uint8_t raw[3000];
	long bad = 0;

	for (size_t r = 0; r < ZT_ROUNDS; r++) {
		size_t n = 200 + (t * 131 + r * 17) % 2800;
		void *z, *out;
		size_t zlen, olen;

		fill_kind(raw, n, (int)((t + r) % 3), t * 1000 + r);
		if (kv__rec_compress(raw, n, &z, &zlen) != 0) {
			bad++;
			continue;
		}
		if (kv__rec_uncompress(z, zlen, &out, &olen) != 0 ||
		    olen != n || memcmp(out, raw, n) != 0)
			bad++;
		else
			free(out);
		free(z);
	}
	return (void *)(uintptr_t)bad;
}

static void test_compression_from_many_threads_at_once(void **state)
{
	(void)state;
	pthread_t th[ZT_THREADS];

	for (size_t t = 0; t < ZT_THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, zthread,
						(void *)(uintptr_t)t), 0);
	for (size_t t = 0; t < ZT_THREADS; t++) {
		void *bad;

		assert_int_equal(pthread_join(th[t], &bad), 0);
		assert_int_equal((uintptr_t)bad, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_decode_round_trip_for_extreme_fields),
		cmocka_unit_test(test_encode_decode_round_trip_random_fields),
		cmocka_unit_test(test_known_answer_header_bytes_pin_the_format),
		cmocka_unit_test(test_crc_is_zlibs_crc32_at_every_length_and_split),
		cmocka_unit_test(test_crc_leaves_vector_upper_halves_clean),
		cmocka_unit_test(test_crc_detects_every_single_bit_flip),
		cmocka_unit_test(test_crc_detects_any_changed_key_or_value_byte),
		cmocka_unit_test(test_decode_rejects_invalid_fields),
		cmocka_unit_test(test_compress_round_trip_stores_compressible_data_smaller),
		cmocka_unit_test(test_compress_returns_1_for_incompressible_and_tiny_values),
		cmocka_unit_test(test_raw_len_refuses_lengths_beyond_zlib_ratio),
		cmocka_unit_test(test_uncompress_rejects_lying_length_and_garbled_stream),
		cmocka_unit_test(test_compressed_values_are_zlib_streams_both_ways),
		cmocka_unit_test(test_compression_from_many_threads_at_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
