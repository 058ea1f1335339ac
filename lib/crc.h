/*
 * crc.h - the one CRC of the file formats: CRC-32 as zlib's crc32()
 * computes it (IEEE polynomial, reflected), so files written before this
 * file existed stay readable. ISA-L computes the same function with
 * carry-less multiply: 7.5 ns for a 128-byte record against zlib's 107 ns
 * on the bench machine (NOTES.md), and zlib's was a fifth of a get.
 */
#ifndef KV_CRC_H
#define KV_CRC_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to begin) over n bytes at p, chained like zlib's crc32. */
uint32_t kv__crc32(uint32_t crc, const void *p, size_t n);

#endif
