/*
 * kv.h - libkv, an embeddable log-structured hash table (Bitcask family).
 *
 * This header is the manual in brief; the man pages (kv(3) and one page per
 * function) say the same at length.
 *
 * MODEL
 *   A store is a directory. Every write is appended as a CRC-checked record
 *   to the newest ("active") segment file; full segments are sealed and never
 *   modified again. An in-memory hash index (the keydir) maps each live key
 *   to its newest record, so a read is one lookup plus one read of a record.
 *   Every record carries a 64-bit sequence number (LSN); on open the record
 *   with the highest LSN wins for each key, whatever file it is in.
 *
 * HANDLES AND OWNERSHIP
 *   kv_open() returns a kv_t handle, released by kv_close(). Memory that the
 *   library returns (kv_get) is released with kv_free(). Pointers handed to a
 *   callback (kv_get_view, kv_foreach, kv_scan) are valid only during that
 *   call. On failure every function that has an out-pointer sets it to NULL
 *   (or leaves sizes at 0) and changes nothing in the store.
 *
 * THREADS
 *   A kv_t may be shared by any number of threads. Readers run in parallel
 *   and never wait for disk I/O done by a writer (except in KV_SYNC_NONE, see
 *   kv(3)); writers are serialised only for the append to the log. Callbacks
 *   run without internal locks held, so they may call back into the store
 *   (the replication hooks may read it, not write it: kv_repl_apply(3)).
 *   One process at a time may open a directory for writing; read-only
 *   handles may coexist with it and see the data as of their open.
 *
 * DURABILITY (kv_options.sync_mode)
 *   KV_SYNC_NONE      buffered in the process; a process crash may lose
 *                     the buffer (up to 64 KiB of records).
 *   KV_SYNC_WRITE     default; each write reaches the kernel before the call
 *                     returns: a process crash loses nothing, power loss may.
 *   KV_SYNC_EVERY     as WRITE, plus fdatasync after every sync_every writes.
 *   KV_SYNC_INTERVAL  as WRITE, plus fdatasync at most every sync_every ms,
 *                     from a background thread.
 *   KV_SYNC_ALWAYS    durable before the call returns; concurrent writers
 *                     share one fdatasync (group commit).
 *
 * ERRORS
 *   Functions return 0 (KV_OK) or a negative KV_E* code. kv_strerror() names
 *   a code; kv_errmsg() gives the calling thread's last failure in detail
 *   (file, offset, errno), and also works after a failed kv_open().
 */
#ifndef KV_H
#define KV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KV_VERSION_MAJOR 0
#define KV_VERSION_MINOR 1
#define KV_VERSION_PATCH 0

#if defined(__GNUC__) && __GNUC__ >= 4
#define KV_API __attribute__((visibility("default")))
#else
#define KV_API
#endif

/* Opaque handles. */
typedef struct kv kv_t;
typedef struct kv_batch kv_batch;

/* Error codes: 0 or negative, stable across versions. */
enum {
	KV_OK = 0,
	KV_ENOTFOUND = -1,  /* no live value under the key */
	KV_EINVAL = -2,     /* bad argument; nothing was changed */
	KV_ENOMEM = -3,     /* out of memory */
	KV_EIO = -4,        /* I/O error; kv_errmsg() has file and errno */
	KV_ECORRUPT = -5,   /* a file failed a checksum or bound check */
	KV_ELOCKED = -6,    /* another handle has the store open for writing */
	KV_EREADONLY = -7,  /* write to a read-only handle */
	KV_ETOOBIG = -8,    /* key or value over its limit */
	KV_EEXIST = -9,     /* KV_EXCL and a store already exists */
	KV_ENOENT = -10,    /* no store there and KV_CREATE not given */
	KV_EVERSION = -11,  /* file written by an unknown format version */
	KV_ERANGE = -12,    /* kv_get_into: buffer too small */
	KV_EBUSY = -13,     /* call not allowed from inside this callback */
	KV_ENOTSUP = -14,   /* not available with this store's options */
	KV_ECANCELED = -15, /* the progress callback stopped a compaction */
	/* replication (kv_repl_apply(3)) */
	KV_EGAP = -16,      /* records missing before these; kv_errmsg()
			     * names the position expected */
	KV_ESNAPSHOT = -17, /* the records needed are gone: rebuild the
			     * replica from a snapshot */
	KV_EHOOK = -18      /* KV_HOOK_STRICT: the replication hook failed;
			     * the write is committed in this store */
};

/* kv_options.flags */
#define KV_CREATE    0x01u /* create the directory and store if missing */
#define KV_RDONLY    0x02u /* open for reading only; takes no lock */
#define KV_EXCL      0x04u /* with KV_CREATE: fail if a store exists */
#define KV_SALVAGE   0x08u /* open past corrupt records, skipping them */
#define KV_COMPRESS  0x10u /* compress values >= compress_min (zlib format) */
#define KV_UNORDERED 0x20u /* no ordered index: saves memory, no kv_scan */
#define KV_NO_AUTO_COMPACT 0x40u /* no background compaction thread */
#define KV_REPLICA   0x80u /* a follower: writes only via kv_repl_apply */

/* kv_options.sync_mode */
#define KV_SYNC_WRITE    0u /* the default */
#define KV_SYNC_NONE     1u
#define KV_SYNC_EVERY    2u
#define KV_SYNC_INTERVAL 3u
#define KV_SYNC_ALWAYS   4u

/* Limits. */
#define KV_MAX_KEY   65535u                 /* keys are 1..KV_MAX_KEY bytes */
#define KV_MAX_VALUE 4294967295u            /* ceiling for max_value_size */

/* Log levels given to kv_log_fn. */
#define KV_LOG_ERROR 0
#define KV_LOG_WARN  1
#define KV_LOG_INFO  2

typedef void (*kv_log_fn)(void *ctx, int level, const char *msg);
/* Compaction progress: bytes of input read so far and in all. Returning
 * non-zero stops the compaction, which then changes nothing. */
typedef int (*kv_progress_fn)(void *ctx, uint64_t done, uint64_t total);
/* Milliseconds since the Unix epoch, used for TTLs. */
typedef uint64_t (*kv_clock_fn)(void *ctx);

/*
 * Options. Fill with kv_options_init(), then change what you need; 0 means
 * "default" in every numeric field. `size` lets a newer library read an
 * older caller's struct: leave it as kv_options_init() set it.
 */
typedef struct kv_options {
	uint32_t size;            /* sizeof(kv_options) */
	uint32_t flags;           /* KV_CREATE | KV_RDONLY | ... */
	uint32_t sync_mode;       /* KV_SYNC_* */
	uint32_t sync_every;      /* EVERY: writes per sync; INTERVAL: ms */
	uint64_t max_file_size;   /* segment rollover size; 64 MiB */
	uint64_t max_value_size;  /* largest value accepted; 64 MiB */
	uint32_t compress_min;    /* KV_COMPRESS threshold; 512 bytes */
	uint32_t file_mode;       /* mode of new files (umask applies); 0600 */
	kv_log_fn log;            /* recovery and background messages */
	void *log_ctx;
	kv_clock_fn clock;        /* TTL clock; CLOCK_REALTIME */
	void *clock_ctx;
	/* Compaction (see kv_compact(3)); 0 means the default. */
	uint32_t compact_dead_pct;   /* segment dead share that triggers; 40 */
	uint32_t compact_store_pct;  /* store dead share that triggers; 50 */
	uint64_t compact_dead_bytes; /* segment dead bytes that trigger;
					64 MiB; UINT64_MAX: never */
	uint64_t compact_min_size;   /* sealed segments smaller than this are
					merged; max_file_size / 4 */
	uint64_t compact_max_bytes;  /* most input one compaction reads;
					1 GiB (always at least one segment) */
	kv_progress_fn progress;     /* compaction progress, or NULL */
	void *progress_ctx;
	/* Replication hooks (see "replication" below), or NULL; copied at
	 * open. */
	const struct kv_repl_hooks *repl;
	/* Keys to size the index for at open, so that filling the store up
	 * to that many never grows it (each growth rehashes every key). Its
	 * table and filter are allocated at open, 11-21 bytes per expected
	 * key. 0: grow as keys arrive. */
	uint64_t expected_keys;
} kv_options;

/* Whole-store figures; a struct tag only, as with stat(2)'s struct stat,
 * because kv_stats is the function that fills it. */
struct kv_stats {
	uint32_t size;             /* set by the caller: sizeof(kv_stats) */
	uint32_t sync_mode;
	uint64_t live_keys;        /* keys with a live (unexpired) value */
	uint64_t live_bytes;       /* record bytes of those values */
	uint64_t dead_bytes;       /* overwritten, deleted, expired, tombstones */
	uint64_t segments;         /* segment files */
	uint64_t disk_bytes;       /* their data bytes (without the space
				    * allocated ahead of the newest one) */
	uint64_t keydir_bytes;     /* heap held by the index, incl. key bytes */
	uint64_t last_lsn;         /* sequence number of the newest record */
	uint64_t recovered_truncated_bytes; /* torn tail cut at open */
	uint64_t recovered_skipped_bytes;   /* skipped by KV_SALVAGE at open */
	uint64_t recovered_skipped_records;
	uint64_t compressed_values;         /* values written compressed */
	uint64_t compression_saved_bytes;   /* raw minus stored, for those */
	uint64_t recovered_hint_segments;   /* loaded from hint files at open */
	uint64_t recovered_hint_rejected;   /* hints refused: segment scanned */
	uint64_t compactions;               /* completed since open */
	uint64_t compaction_freed_bytes;    /* disk bytes they reclaimed */
	uint64_t recovered_keys_at_risk;    /* salvage: may have lost a newer
					     * record (a delete) to damage */
	uint64_t repl_hook_calls;           /* replication hook calls */
	uint64_t repl_hook_errors;          /* of which failed, or writes not
					     * handed over (store poisoned) */
	uint64_t reserved[1];
};

/* One segment's figures. */
typedef struct kv_segment_stats {
	uint64_t seq;              /* sequence number in the file name */
	uint64_t bytes;            /* file size */
	uint64_t live_bytes;
	uint64_t dead_bytes;
	uint32_t active;           /* 1 for the segment being appended to */
	uint32_t flags;            /* KV_SEGMENT_COMPACTED | KV_SEGMENT_HINT */
} kv_segment_stats;

#define KV_SEGMENT_COMPACTED 0x1u /* written by compaction */
#define KV_SEGMENT_HINT      0x2u /* has a hint file */

/* What one kv_compact() did. */
typedef struct kv_compact_stats {
	uint64_t segments_in;      /* sealed segments rewritten and deleted */
	uint64_t segments_out;     /* new segments written */
	uint64_t bytes_read;
	uint64_t bytes_written;    /* segments and hint files */
	uint64_t bytes_freed;      /* disk bytes deleted minus written */
	uint64_t reserved[3];
} kv_compact_stats;

/* Callbacks. Returning non-zero stops the call, which returns that value. */
typedef int (*kv_view_fn)(void *ctx, const void *val, size_t vlen);
typedef int (*kv_pair_fn)(void *ctx, const void *key, size_t klen,
			  const void *val, size_t vlen);

/* ---- library ---- */

/* "MAJOR.MINOR.PATCH"; any pointer may be NULL. */
KV_API const char *kv_version(int *major, int *minor, int *patch);
/* Static text for a KV_E* code; never NULL. */
KV_API const char *kv_strerror(int err);
/* The calling thread's last failure in detail; never NULL. */
KV_API const char *kv_errmsg(void);
/* Frees memory returned by libkv; NULL is a no-op. */
KV_API void kv_free(void *ptr);

/* ---- open and close ---- */

KV_API void kv_options_init(kv_options *opts);
/* opts may be NULL for defaults (which do not include KV_CREATE). */
KV_API int kv_open(const char *dir, const kv_options *opts, kv_t **out);
/* Flushes, syncs (except KV_SYNC_NONE: flush only), frees; NULL is a no-op. */
KV_API int kv_close(kv_t *db);
/*
 * Read-only handles (KV_RDONLY) only: picks up what the directory's writer
 * (another process, or another handle) has written since the open or the
 * last refresh: new records, new segments, compactions. Appends cost about
 * the new bytes; anything else (a compaction replaced a file this handle
 * reads) rebuilds the whole state as an open does, and swaps it in at
 * once. A write still in progress is left for the next call. Other threads
 * may read the handle meanwhile: they see the state before or after each
 * whole write, never part of a batch. KV_EINVAL for NULL or a writer's
 * handle (always current); KV_EBUSY if compactions kept changing the
 * directory during every rebuild tried (try again).
 */
KV_API int kv_refresh(kv_t *db);

/* ---- single-key operations ---- */

KV_API int kv_put(kv_t *db, const void *key, size_t klen,
		  const void *val, size_t vlen);
/* As kv_put; the key expires ttl_ms (> 0) milliseconds from now. */
KV_API int kv_put_ttl(kv_t *db, const void *key, size_t klen,
		      const void *val, size_t vlen, uint64_t ttl_ms);
/* *val is malloc'd (free with kv_free), NUL-terminated one past *vlen. */
KV_API int kv_get(kv_t *db, const void *key, size_t klen,
		  void **val, size_t *vlen);
/* Copies into buf; KV_ERANGE (and *vlen = size needed) when cap is short. */
KV_API int kv_get_into(kv_t *db, const void *key, size_t klen,
		       void *buf, size_t cap, size_t *vlen);
/* Calls fn with the stored bytes, without a copy where possible. */
KV_API int kv_get_view(kv_t *db, const void *key, size_t klen,
		       kv_view_fn fn, void *ctx);
/* KV_OK if a live value exists, else KV_ENOTFOUND. */
KV_API int kv_exists(kv_t *db, const void *key, size_t klen);
/* The key's expiry as Unix time in ms, or 0 if it never expires. */
KV_API int kv_expiry(kv_t *db, const void *key, size_t klen,
		     uint64_t *expire_ms);
/* KV_ENOTFOUND (and nothing written) if the key has no live value. Does
 * not read the value it removes, unless the key has an expiry. */
KV_API int kv_delete(kv_t *db, const void *key, size_t klen);

/* ---- atomic batches ---- */

KV_API int kv_batch_new(kv_batch **out);
KV_API int kv_batch_put(kv_batch *b, const void *key, size_t klen,
			const void *val, size_t vlen);
KV_API int kv_batch_put_ttl(kv_batch *b, const void *key, size_t klen,
			    const void *val, size_t vlen, uint64_t ttl_ms);
KV_API int kv_batch_delete(kv_batch *b, const void *key, size_t klen);
KV_API void kv_batch_clear(kv_batch *b);
KV_API size_t kv_batch_count(const kv_batch *b);
KV_API void kv_batch_free(kv_batch *b);
/* Applies the whole batch or none of it, even across a crash. */
KV_API int kv_write(kv_t *db, kv_batch *b);

/* ---- iteration ---- */

/* Every live pair, in no order. */
KV_API int kv_foreach(kv_t *db, kv_pair_fn fn, void *ctx);
/*
 * Live pairs in byte order of key, with start <= key < end (NULL start: from
 * the first key; NULL end: to the last), keys beginning with prefix (NULL:
 * any), at most limit pairs (0: no limit).
 */
KV_API int kv_scan(kv_t *db, const void *start, size_t slen,
		   const void *end, size_t elen,
		   const void *prefix, size_t plen, size_t limit,
		   kv_pair_fn fn, void *ctx);

/* ---- durability and figures ---- */

/* Makes every write so far durable (fdatasync of the active segment). */
KV_API int kv_sync(kv_t *db);
/* out->size must be set to sizeof(struct kv_stats) by the caller. */
KV_API int kv_stats(kv_t *db, struct kv_stats *out);
/* Fills up to cap entries, oldest first; *n is the number of segments. */
KV_API int kv_stats_segments(kv_t *db, kv_segment_stats *arr, size_t cap,
			     size_t *n);

/* What kv_verify() checked and found. */
typedef struct kv_verify_stats {
	uint64_t segments;         /* segment files read */
	uint64_t records;          /* sound records */
	uint64_t bytes;            /* bytes read, file headers included */
	uint64_t bad_ranges;       /* damaged places found */
	uint64_t bad_bytes;        /* bytes in them */
	uint64_t reserved[3];
} kv_verify_stats;

/*
 * Reads every record of every segment, live or dead, and checks its bounds
 * and CRC (open checks only the log, and reads check only what they read).
 * KV_ECORRUPT when anything is damaged: kv_errmsg() names the first file
 * and offset, and out counts every damaged place. progress (may be NULL)
 * sees bytes read so far and in all; non-zero from it stops with
 * KV_ECANCELED. Works on read-only handles. out may be NULL.
 */
KV_API int kv_verify(kv_t *db, kv_progress_fn progress, void *ctx,
		     kv_verify_stats *out);

/* ---- replication ---- */

/*
 * A primary hands every committed write to a hook, in commit order, as the
 * exact bytes of its records (kv-format(5)); a replica, opened with
 * KV_REPLICA, applies those bytes with kv_repl_apply() and keeps their
 * LSNs, so its position is the LSN of the last record it applied. A
 * replica that fell behind catches up with kv_repl_read(), or, when
 * compaction has removed what it needs, from a snapshot. kv_repl_apply(3)
 * has the model, when the hooks run under each sync mode, and threads.
 *
 * A frame is one or more whole runs of records (a put or a delete is one
 * record, a batch one run), back to back, exactly as in a segment.
 */

/* A frame: for the commit hook and kv_repl_read, the records with LSNs
 * first..last; for kv_repl_snapshot, first = 0 and last = the snapshot's
 * position. Non-zero from a hook is a failure (see KV_HOOK_STRICT); from
 * a reader's callback it stops the call, which returns that value. */
typedef int (*kv_repl_fn)(void *ctx, uint64_t first, uint64_t last,
			  const void *bytes, size_t len);
/* A log segment was sealed (fdatasynced, never written again): its
 * number and path. Compaction leaves the file alone until this returns. */
typedef int (*kv_seal_fn)(void *ctx, uint64_t seq, const char *path);

/* kv_options.repl points at one of these; set size to its sizeof. */
struct kv_repl_hooks {
	uint32_t size;             /* sizeof(struct kv_repl_hooks) */
	uint32_t flags;            /* KV_HOOK_STRICT */
	kv_repl_fn commit;         /* every committed write, or NULL */
	kv_seal_fn seal;           /* every sealed log segment, or NULL */
	void *ctx;                 /* passed to both */
	uint64_t reserved[2];      /* must be zero */
};

/* A failing hook fails the write with KV_EHOOK (it stays committed);
 * without this flag, failures are counted in kv_stats. */
#define KV_HOOK_STRICT 0x1u

/*
 * Replica: applies a frame as a hook or kv_repl_read delivered it. Every
 * CRC and bound is checked and nothing is applied unless the whole frame
 * is sound (KV_ECORRUPT). Records at or below the position are skipped as
 * duplicates; a frame that does not continue at position + 1 is refused
 * with KV_EGAP. Between kv_repl_snapshot_begin and _end, takes snapshot
 * frames instead.
 */
KV_API int kv_repl_apply(kv_t *db, const void *bytes, size_t len);
/* The LSN of the newest write this store holds that a replica may have:
 * a replica's last applied record, a primary's last acknowledged write.
 * Survives a reopen. KV_ESNAPSHOT during or after an interrupted
 * snapshot. */
KV_API int kv_repl_position(kv_t *db, uint64_t *position);
/*
 * Primary: calls fn with the records after LSN `from`, in LSN order, read
 * from the log segments, up to the position at the call's start; frames
 * hold whole runs and at most max_bytes (one run may be larger; 0: one
 * run per frame). KV_ESNAPSHOT if compaction has rewritten part of that
 * history, or `from` is ahead of this store.
 */
KV_API int kv_repl_read(kv_t *db, uint64_t from, size_t max_bytes,
			kv_repl_fn fn, void *ctx);
/*
 * Primary: calls fn with every live record as of one moment, in frames of
 * at most max_bytes, first = 0 and last = that moment's position, which
 * is also stored in *position. A replica that applies them between
 * kv_repl_snapshot_begin and kv_repl_snapshot_end(position), then the
 * stream after position, is up to date.
 */
KV_API int kv_repl_snapshot(kv_t *db, size_t max_bytes, kv_repl_fn fn,
			    void *ctx, uint64_t *position);
/* Primary: compaction keeps every log segment holding a record after LSN
 * lsn, so kv_repl_read can serve replicas at lsn or later; UINT64_MAX
 * (the default) keeps nothing for them. Not persistent. */
KV_API int kv_repl_retain(kv_t *db, uint64_t lsn);
/* Replica, empty (position 0): starts taking a snapshot; durable. */
KV_API int kv_repl_snapshot_begin(kv_t *db);
/* Makes the snapshot durable and sets the position to `position`. */
KV_API int kv_repl_snapshot_end(kv_t *db, uint64_t position);

/* ---- space reclamation ---- */

/*
 * Rewrites the live records of every sealed segment that has dead bytes
 * (or is small enough to merge), up to compact_max_bytes of input, into
 * new segments with hint files, then deletes the old ones. Runs now, in
 * the calling thread; readers and writers carry on meanwhile. out may be
 * NULL. The background thread (unless KV_NO_AUTO_COMPACT) does the same
 * when the compact_* thresholds are reached.
 */
KV_API int kv_compact(kv_t *db, kv_compact_stats *out);

/* ---- digests (replication) ---- */

/*
 * An order-independent digest of a set of live pairs: the sum modulo 2^128
 * of XXH3_128bits (seed 0) of klen as 4 bytes little-endian, the key, and
 * the value uncompressed, for each pair. Equal live sets give equal digests
 * whatever the history, file layout or compression; digests of disjoint
 * sets add up. The empty set's is all zeros. A struct tag only, because
 * kv_digest is the function (as struct kv_stats). See kv_digest(3).
 */
struct kv_digest {
	uint64_t lo, hi;           /* the 128-bit sum: hi * 2^64 + lo */
	uint64_t keys;             /* live pairs summed */
	uint64_t bytes;            /* their key + uncompressed value bytes */
	uint64_t first, last;      /* key-hash range covered, inclusive */
};

#define KV_DIGEST_MAX_BUCKETS 1048576u /* most buckets in one call */

/* Digest of every live pair, as of one moment (writers wait meanwhile). */
KV_API int kv_digest(kv_t *db, struct kv_digest *out);
/*
 * Splits the key-hash range [first, last] (key hash = XXH3_64bits of the
 * key, seed 0) into nbuckets (1..KV_DIGEST_MAX_BUCKETS, at most the range's
 * size) near-equal parts and fills out[0..nbuckets-1] with the digest and
 * bounds of each. Comparing two stores' buckets and splitting a differing
 * one again finds a differing key in O(log n) rounds.
 */
KV_API int kv_digest_buckets(kv_t *db, uint64_t first, uint64_t last,
			     unsigned nbuckets, struct kv_digest *out);
/* As kv_foreach, for the live pairs whose key hash is in [first, last]. */
KV_API int kv_digest_foreach(kv_t *db, uint64_t first, uint64_t last,
			     kv_pair_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* KV_H */
