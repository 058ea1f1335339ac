/*
 * zpool.h - working memory for ISA-L's deflate and inflate, kept for reuse.
 *
 * ISA-L's stateless calls work in memory their caller provides: about 166
 * KB to deflate (the stream and its level-1 buffer) and 85 KB to inflate.
 * malloc'd and freed for each value, it made a 512-byte value's deflate
 * take 6.2-18.6 us (by the level buffer's size; 18.6 with the 84 KB one
 * used here) against 4.7 with the memory kept. A few blocks of each
 * kind are kept process-wide instead, so the memory held is bounded by
 * KV__ZPOOL_MAX blocks a kind, whatever the number of threads and
 * handles, and a thread between calls holds none.
 */
#ifndef KV_ZPOOL_H
#define KV_ZPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <isa-l/igzip_lib.h>

#define KV__ZPOOL_MAX 4

typedef struct kv__zdeflate {
	struct isal_zstream z;
	/* ISAL_DEF_LVL1_SMALL: a 64 KiB value deflated in 104 us with it,
	 * 157 with the minimum, and no faster with the default 276 KB. */
	uint8_t level_buf[ISAL_DEF_LVL1_SMALL];
} kv__zdeflate;

/* A block for one call, from the pool or malloc; NULL when out of memory.
 * Its contents are whatever the last user left: initialise it. */
kv__zdeflate *kv__zpool_deflater(void);
struct inflate_state *kv__zpool_inflater(void);
/* Hands a block back (NULL is ignored): kept if the pool has room. */
void kv__zpool_put_deflater(kv__zdeflate *d);
void kv__zpool_put_inflater(struct inflate_state *s);

#endif
