/*
 * commit.h - the one write path: puts, deletes and batches become records
 * appended to the active segment, then are published in the keydir, then
 * made as durable as the sync mode asks.
 */
#ifndef KV_COMMIT_H
#define KV_COMMIT_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"

/* KV_SYNC_NONE buffer: the most a process crash may lose. */
#define KV__NONE_BUFFER (64u << 10)
/* Except in KV_SYNC_NONE: how far appends allocate the file ahead. */
#define KV__PREALLOC (1u << 20)

typedef struct kv__op {
	uint8_t type;        /* KV__REC_PUT or KV__REC_DEL */
	uint8_t flags;       /* KV__RF_ZLIB when val is compressed */
	uint32_t klen;
	uint32_t vlen;       /* stored bytes */
	uint64_t expire_ms;  /* 0 = never */
	const void *key;
	const void *val;
	/* A delete that must find the key live when it commits (kv_delete's
	 * KV_ENOTFOUND), checked under the write lock so that of two racing
	 * deletes only one succeeds. */
	int if_live;
	uint64_t lsn;        /* replication: the record's own LSN */
} kv__op;

/* Appends the ops as one atomic run of records (a batch when n > 1). */
int kv__commit(kv_t *db, const kv__op *ops, size_t n);

/* Publishes the queued puts (pubq.h) before a walk over the keydir, so
 * that it sees every put that returned before the call. Takes wlock and
 * klock. KV_ENOMEM if the keydir cannot take them: they stay queued, gets
 * still find them, and the next call tries again. */
int kv__settle(kv_t *db);
/* The same, for a caller that holds wlock. */
int kv__settle_wl(kv_t *db);

/* Replication (kv_repl_apply): records that carry their LSNs, written as
 * the verified bytes at raw that ops describe (their sizes add up). STREAM: one or more
 * whole runs, consecutive LSNs from ops[0].lsn, which must be the next
 * LSN (else KV_EGAP); synced and handed to the hooks like a local write.
 * SNAPSHOT: single records with any LSNs; neither synced (the snapshot's
 * end syncs) nor handed to the commit hook. */
enum { KV__COMMIT_LOCAL, KV__COMMIT_STREAM, KV__COMMIT_SNAPSHOT };
int kv__commit_raw(kv_t *db, const kv__op *ops, size_t n,
		   const uint8_t *raw, int kind);

/* Compresses a value for a put when the store asks for it: on return
 * op->val/vlen/flags describe what to store and *owned must be freed. */
int kv__prepare_value(kv_t *db, kv__op *op, void **owned);

/* Readies s to be the active segment for the sync mode: the KV_SYNC_NONE
 * buffer, or preallocation (and appends copied into the map). */
int kv__commit_ready(kv_t *db, kv__seg *s);
/* Header flags for a new active segment: KV__SEG_F_PREALLOC in the modes
 * that preallocate (all but KV_SYNC_NONE). */
uint32_t kv__commit_flags(const kv_t *db);

#endif
