/*
 * mutant.c - a follower that skips the CRC check, for the mutation check
 * of test 5 (run.py --mutant): kvrepl is built with
 * -Dkv_repl_apply=mutant_repl_apply, and this function rewrites every
 * record's CRC to match its bytes before calling the real kv_repl_apply,
 * so damaged records go in as if sound. Test 5 must then fail.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <kv.h>

int mutant_repl_apply(kv_t *db, const void *bytes, size_t len);

static uint32_t get_le(const uint8_t *p, int n)
{
	uint32_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int mutant_repl_apply(kv_t *db, const void *bytes, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	size_t off = 0;

	memcpy(p, bytes, len);
	/* Record layout (kv-format(5)): crc u32, type, flags, klen u16,
	 * vlen u32, ..., 32-byte header, key, value. */
	while (off + 32 <= len) {
		size_t n = 32 + get_le(p + off + 6, 2) + get_le(p + off + 8, 4);
		if (n > len - off)
			break;
		uint32_t c = (uint32_t)crc32(0L, p + off + 4, (uInt)(n - 4));
		for (int i = 0; i < 4; i++)
			p[off + (size_t)i] = (uint8_t)(c >> (8 * i));
		off += n;
	}
	int rc = kv_repl_apply(db, p, len);
	free(p);
	return rc;
}
