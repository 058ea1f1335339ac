/*
 * format.h - every on-disk constant of libkv, in one place.
 * kv-format(5) explains each; change none of them without bumping
 * KV__FORMAT_VERSION, because old files must be refused, never misread.
 * All integers are little-endian.
 */
#ifndef KV_FORMAT_H
#define KV_FORMAT_H

#include <stdint.h>

#define KV__FORMAT_VERSION 1u

/*
 * Segment file "<16 hex digits>.seg": a 32-byte header, then records.
 *   0  magic[8]     "KVSEG\r\n\032" (the \r\n and ^Z catch text-mode damage)
 *   8  u32 version  KV__FORMAT_VERSION
 *  12  u32 kind     KV__KIND_SEGMENT (hint files reuse the header)
 *  16  u64 seq      must equal the number in the file name
 *  24  u32 flags    KV__SEG_F_*; unknown bits are refused
 *  28  u32 crc      zlib crc32 of bytes 0..27
 */
#define KV__SEG_MAGIC "KVSEG\r\n\032"
#define KV__FILE_HDR 32u
#define KV__KIND_SEGMENT 1u
#define KV__KIND_HINT 5u /* 2: the first hint layout, refused */
#define KV__SEG_SUFFIX ".seg"
#define KV__HINT_SUFFIX ".hint"
#define KV__SEQ_DIGITS 16
#define KV__LOCK_NAME "LOCK"
/* Written by compaction: complete when renamed into place, so it never
 * has a torn tail and never becomes the active segment. */
#define KV__SEG_F_COMPACTED 0x1u
/* Appends allocate the file ahead (all sync modes but NONE): the log's
 * tail may end in zeros that were never written, not a torn write. */
#define KV__SEG_F_PREALLOC 0x2u
#define KV__SEG_F_KNOWN (KV__SEG_F_COMPACTED | KV__SEG_F_PREALLOC)

/*
 * Record: a 32-byte header, the key, then the value.
 *   0  u32 crc        crc32 of bytes 4..end of value
 *   4  u8  type       KV__REC_PUT or KV__REC_DEL
 *   5  u8  flags      KV__RF_*
 *   6  u16 klen       1..65535
 *   8  u32 vlen       bytes of value as stored (0 for a tombstone)
 *  12  u32 batch_left records of the same atomic batch that follow this one
 *                     in the same segment (0 ends a batch; plain writes: 0)
 *  16  u64 lsn        store-wide sequence number, > 0, increasing
 *  24  u64 expire_ms  Unix time in ms after which the value is dead; 0 never
 * A compressed value (KV__RF_ZLIB) is a u32 raw length followed by a zlib
 * stream; it is stored only when shorter than the raw value.
 */
#define KV__REC_HDR 32u
#define KV__REC_PUT 1u
#define KV__REC_DEL 2u
#define KV__RF_ZLIB 0x01u
#define KV__RF_KNOWN KV__RF_ZLIB
/* zlib cannot expand more than 1032:1, so a claimed raw length above this
 * bound is corrupt and is refused before anything is allocated. */
#define KV__ZLIB_MAX_RATIO 1032u

/*
 * Hint file "<16 hex digits>.hint", beside the segment of the same number:
 * the 32-byte file header (kind KV__KIND_HINT), entries, then a trailer.
 * One entry per record of the segment, in file order. No offsets: the
 * first record is at KV__FILE_HDR and each starts where the one before
 * ends (a hint covers its segment exactly). Entry (varints as in le.h):
 *   u8      tag        bits 0-1 type, 2-5 flags (as the record), 6 set
 *                      when expire_ms follows, 7 zero
 *   varint  klen
 *   varint  vlen
 *   varint  lsn step   the lsn minus the previous entry's (0 before the
 *                      first), zigzag-coded: (s << 1) ^ (s >> 63)
 *   varint  expire_ms  only with tag bit 6
 *   klen bytes of key
 * Kind 2 was the first layout (40 fixed bytes per entry with its offset
 * and a CRC of its own; 56 bytes for a 16-byte key, 20 now): refused like
 * any hint that fails a check, so the segment is read instead and a new
 * hint written for it.
 * Trailer (32 bytes):
 *   0  magic[8]       "KVHINT\0\0"
 *   8  u64 count      entries
 *  16  u64 seg_size   size of the segment the entries cover, exactly
 *  24  u32 reserved   zero
 *  28  u32 crc        crc32 of the whole file before this field
 */
#define KV__HINT_TYPE_MASK 0x03u
#define KV__HINT_FLAGS_MASK 0x3cu
#define KV__HINT_FLAGS_SHIFT 2
#define KV__HINT_EXPIRES 0x40u
#define KV__HINT_TAG_UNUSED 0x80u
#define KV__HINT_TRAILER 32u
#define KV__HINT_MAGIC "KVHINT\0\0"

/*
 * Obsolete list "<16 hex digits>.obs": written by compaction, durably,
 * before it deletes the segments it replaced, and removed after. Open
 * finishes the deletions of any list it finds, so a crash halfway through
 * never leaves an old record without the tombstone that killed it.
 * The 32-byte file header (kind KV__KIND_OBSOLETE), then:
 *   0  u64 count, then count u64 sequence numbers, then u32 crc32 of all
 *      bytes before it.
 */
#define KV__KIND_OBSOLETE 3u
#define KV__OBS_SUFFIX ".obs"

/*
 * Replica state "REPL": written only by a replica taking a snapshot
 * (kv_repl_snapshot_begin/_end), replaced by rename, always durably.
 * The 32-byte file header (kind KV__KIND_REPL, seq 0, flags 0), then:
 *   0  u64 state     1: a snapshot is being applied (its records are not
 *                       all there); 2: a snapshot was applied
 *   8  u64 position  state 2: the snapshot's position, an LSN; the store's
 *                    position is the larger of this and its highest LSN
 *  16  u32 crc       crc32 of every byte before it, header included
 * Older libraries ignore the file (it has no segment name).
 */
#define KV__KIND_REPL 4u

#endif /* KV_FORMAT_H */
