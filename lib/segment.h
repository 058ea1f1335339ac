/*
 * segment.h - one segment file: naming, create, open, read, append, seal.
 *
 * Reads come from a read-only shared mapping when the range lies inside it
 * (about 36 ns for a small record against 430 ns for pread), else pread.
 * The active segment is mapped at max_file_size up front, so appends never
 * remap; pages past the end of the file are never touched because readers
 * only follow keydir locations, which point at written records.
 *
 * In KV_SYNC_NONE the newest records sit in a process buffer; `flushed` is
 * how much of the file the kernel has, and readers take buf_lock to copy a
 * record that is still in the buffer.
 */
#ifndef KV_SEGMENT_H
#define KV_SEGMENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/uio.h>

#include "format.h"
#include "io.h" /* KV__KILLPOINT: rollover and seal are named steps */

#define KV__NAME_MAX 32

typedef struct kv__seg {
	uint64_t seq;
	uint32_t slot;             /* index in the store's segment table */
	int fd;
	uint8_t *map;              /* NULL when mapping failed: pread */
	size_t map_len;
	int map_prot;              /* PROT_WRITE: the active segment */
	uint64_t size;             /* bytes appended, buffered ones included */
	/* The active segment, except in KV_SYNC_NONE: appends allocate the
	 * file `prealloc` bytes ahead, up to alloc_end, and copy records
	 * into the writable map (segment.c, prealloc). The zeros past size
	 * are trimmed when the segment is sealed or the store closed; after
	 * a crash, recovery cuts them quietly. 0: no preallocation. */
	uint32_t prealloc;
	/* Have preallocated pages faulted in writable ahead of the writer,
	 * by the write-back thread (kv__seg_to_prefault); not in
	 * KV_SYNC_ALWAYS: each fdatasync cleans and write-protects the pages
	 * again, so it would only add the zeros to the next sync. */
	int prefault;
	uint64_t alloc_end;
	/* Where prefault is set: allocated pages not yet handed over to be
	 * faulted in ([pf_from, alloc_end); kv__seg_to_prefault). */
	uint64_t pf_from;
	/* A log segment written since open: the hint entries of its records,
	 * added as they are appended (commit.c), which the seal thread writes
	 * out instead of reading the sealed segment back (seal.c). NULL, or
	 * failed, when there is none; freed with the segment. */
	struct kv__hint_buf *wh;
	/* Write-back ahead (writeback.h), where prefault is set: finished
	 * stretches below wb_done were handed over. Not in KV_SYNC_ALWAYS,
	 * whose fdatasyncs write each put's pages, so none wait for the seal. */
	uint64_t wb_done;
	_Atomic uint64_t flushed;  /* bytes handed to the kernel */
	uint64_t live_bytes;       /* record bytes the keydir points at */
	uint64_t dead_bytes;       /* tombstones included */
	uint64_t tomb_bytes;       /* of which tombstones */
	uint64_t min_lsn, max_lsn; /* of its records; 0 when it has none */
	uint32_t flags;            /* KV__SEG_F_* from the header */
	int has_hint;
	int hint_tried;            /* seal.c built (or failed to build) one */
	int lost_end;              /* salvage skipped damage up to its end */
	/* One reference for the segment table, one per reader using the
	 * record outside klock; the last to drop it closes the file, so a
	 * segment compaction removed stays mapped until its readers finish. */
	_Atomic uint32_t refs;
	/* KV_SYNC_NONE only. */
	pthread_mutex_t buf_lock;
	uint8_t *buf;
	size_t buf_len, buf_cap;
	char name[KV__NAME_MAX];
} kv__seg;

/* "<16 hex digits><suffix>". */
void kv__seg_name(char out[KV__NAME_MAX], uint64_t seq, const char *suffix);
/* "<dir>/<16 hex digits><suffix>" into out (PATH_MAX bytes: kv_open
 * checked that the directory leaves room for any such name); returns the
 * name within it. */
const char *kv__seg_path(char *out, const char *dir, uint64_t seq,
			 const char *suffix);
/* Parses "<16 hex digits><suffix>"; 1 and *seq when name is one. */
int kv__seg_parse_name(const char *name, const char *suffix, uint64_t *seq);

/* Creates, durably, an empty segment (header only) named after seq. */
int kv__seg_create(const char *dir, uint64_t seq, uint32_t flags,
		   unsigned mode, uint64_t map_len, size_t buf_cap,
		   kv__seg **out);
/* Creates "<seq>.seg.tmp" with a header carrying flags, not yet synced or
 * visible: compaction fills it, then publishes it. */
int kv__seg_create_tmp(const char *dir, uint64_t seq, uint32_t flags,
		       unsigned mode, kv__seg **out);
/* Flushes, fsyncs and renames a tmp segment into place, then maps it.
 * The caller fsyncs the directory. */
int kv__seg_publish(kv__seg *s, const char *dir);
/* Deletes the file (and its hint) by name; ENOENT counts as done. */
int kv__seg_unlink(const char *dir, uint64_t seq, int tmp);
/* Drops one reference; the last one closes the segment. */
void kv__seg_unref(kv__seg *s);
/* Opens an existing segment and checks its header; KV_ECORRUPT or
 * KV_EVERSION name the file. map_len 0 maps the file's size. */
int kv__seg_open(const char *dir, uint64_t seq, int rdonly, uint64_t map_len,
		 kv__seg **out);
void kv__seg_close(kv__seg *s);
/* Maps the segment at len bytes (at least its size), so appends to the
 * active segment stay inside the mapping. */
void kv__seg_map_active(kv__seg *s, uint64_t len);

/* Copies n bytes at off into dst (from the buffer, the map or pread). */
int kv__seg_read(kv__seg *s, uint64_t off, void *dst, size_t n);
/* A pointer to n bytes at off inside the map, or NULL when they are not
 * mapped (or still buffered): then use kv__seg_read. */
const uint8_t *kv__seg_ptr(kv__seg *s, uint64_t off, size_t n);

/* Appends the iovecs (total n bytes) at s->size. On a failed write the
 * file is cut back so no partial record stays; if even that fails, returns
 * KV_EIO with *broken set: the caller must stop writing to this segment. */
int kv__seg_append(kv__seg *s, struct iovec *iov, int cnt, size_t n,
		   int *broken);
/* Write-back ahead: 1 when appends have finished another stretch of
 * KV__WB_STEP bytes (or more) since the last call, KV__WB_TAIL_STEP in
 * the map's last KV__WB_STEP; then [*off, *off + *len) is that stretch,
 * already unmapped from the writer's page table (writeback.h says why),
 * for kv__wb_start. */
#define KV__WB_STEP (8u << 20)
#define KV__WB_TAIL_STEP (1u << 20)
int kv__seg_finished(kv__seg *s, uint64_t *off, uint64_t *len);
/* After an append: 1 with the preallocated range [*from, *to) that should
 * now be faulted in writable (prefault), handed over once; else 0. */
int kv__seg_to_prefault(kv__seg *s, uint64_t *from, uint64_t *to);
/* Faults [from, to) of s's map in writable (MADV_POPULATE_WRITE), so the
 * appends that fill those pages take no page fault. Advice only. */
void kv__seg_prefault(kv__seg *s, uint64_t from, uint64_t to);
/* Hands buffered bytes to the kernel. */
int kv__seg_flush(kv__seg *s);
/* Gives the segment a KV_SYNC_NONE buffer of cap bytes. */
int kv__seg_set_buffer(kv__seg *s, size_t cap);
/* fdatasync of the segment. */
int kv__seg_sync(kv__seg *s);
/* Cuts the file to len bytes, durably (torn-tail repair at open). */
int kv__seg_truncate(kv__seg *s, uint64_t len);
/* Seals the map (read-only) and cuts preallocated zeros past the last
 * append, durably; 0 if none. */
int kv__seg_trim(kv__seg *s);

#endif
