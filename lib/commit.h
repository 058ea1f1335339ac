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
} kv__op;

/* Appends the ops as one atomic run of records (a batch when n > 1). */
int kv__commit(kv_t *db, const kv__op *ops, size_t n);

/* Compresses a value for a put when the store asks for it: on return
 * op->val/vlen/flags describe what to store and *owned must be freed. */
int kv__prepare_value(kv_t *db, kv__op *op, void **owned);

#endif
