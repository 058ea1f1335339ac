/* crc.c - CRC-32 (zlib's) through ISA-L, which picks the CPU's fastest
 * implementation at run time. */
#include <isa-l/crc.h>

#include "crc.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/*
 * ISA-L's AVX-512 CRC (crc32_gzip_refl_by16_10) returns with the upper
 * halves of the vector registers dirty: it ends without vzeroupper. Until
 * something clears them, every SSE instruction the compiler emitted for
 * this library and its caller (-O2 on x86-64 is SSE2) runs in a slow
 * mixed state. Measured on the bench machine: building 1M hint entries
 * took 144 ns each after a CRC, 7.4 ns with vzeroupper after it, and 7.6
 * ns with everything compiled -mavx2 (no SSE encodings left to pay).
 * vzeroupper needs AVX; a CPU without it never gets an AVX CRC from ISA-L.
 * __builtin_cpu_supports reads a bit that libgcc set at load time.
 */
uint32_t kv__crc32(uint32_t crc, const void *p, size_t n)
{
	uint32_t r = crc32_gzip_refl(crc, (const unsigned char *)p,
				     (uint64_t)n);

	if (__builtin_cpu_supports("avx"))
		__asm__ __volatile__("vzeroupper" ::: "memory");
	return r;
}
#else
uint32_t kv__crc32(uint32_t crc, const void *p, size_t n)
{
	return crc32_gzip_refl(crc, (const unsigned char *)p, (uint64_t)n);
}
#endif
