/* le.h - little-endian loads and stores for the on-disk formats. */
#ifndef KV_LE_H
#define KV_LE_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline void kv__put16(uint8_t *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static inline void kv__put32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static inline void kv__put64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }
static inline uint16_t kv__get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static inline uint32_t kv__get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static inline uint64_t kv__get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }

/* LEB128 varints: 7 bits a byte, low bits first, the high bit set on
 * every byte but the last; at most KV__VARINT_MAX bytes for 64 bits. */
#define KV__VARINT_MAX 10u

static inline uint8_t *kv__put_varint(uint8_t *p, uint64_t v)
{
	for (; v >= 0x80; v >>= 7)
		*p++ = (uint8_t)(v | 0x80);
	*p++ = (uint8_t)v;
	return p;
}

/* Reads a varint from p, not past end: the byte after it, or NULL when it
 * runs past end or past 64 bits. */
static inline const uint8_t *kv__get_varint(const uint8_t *p,
					    const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;

	for (unsigned shift = 0; p < end && shift < 64; shift += 7) {
		uint8_t b = *p++;

		if (shift == 63 && b > 1)
			return NULL;
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return p;
		}
	}
	return NULL;
}

#endif
