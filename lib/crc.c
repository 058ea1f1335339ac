/* crc.c - CRC-32 (zlib's) through ISA-L, which picks the CPU's fastest
 * implementation at run time. */
#include <isa-l/crc.h>

#include "crc.h"

uint32_t kv__crc32(uint32_t crc, const void *p, size_t n)
{
	return crc32_gzip_refl(crc, (const unsigned char *)p, (uint64_t)n);
}
