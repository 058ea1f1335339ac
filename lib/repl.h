/*
 * repl.h - replication inside the library: the queue that hands committed
 * writes to the hooks in commit order, the replica's state file, and what
 * the write path, compaction and recovery need from them.
 *
 * The hook queue. Each commit that has something to deliver (its records,
 * or the segment its rollover sealed) is queued under wlock, so the queue
 * is in commit (LSN) order. After its sync point the writer marks its
 * entry ready and waits until it is delivered; whoever finds the head
 * ready and nobody delivering runs the hooks for the head onwards, up to
 * its own entry, with no lock held, then wakes the others. So hooks are
 * called one at a time, in commit order, never before the write is as
 * durable as the sync mode makes it, and a writer returns only after its
 * own hooks ran (so KV_HOOK_STRICT can fail it). Entries live on their
 * writers' stacks: a writer cannot return while its entry is queued.
 */
#ifndef KV_REPL_H
#define KV_REPL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "db.h"

typedef struct kv__hookq {
	struct kv__hookq *next;
	uint64_t first, last;      /* LSNs to deliver; first 0: none */
	uint64_t sealed;           /* segment sealed by this commit, or 0 */
	const struct iovec *iov;   /* the records' bytes, in iovecs */
	int cnt;
	size_t bytes;
	int ready;                 /* past its sync point */
	int failed;                /* the write failed: deliver no records */
	int done;
	int rc;                    /* non-zero: a hook failed */
} kv__hookq;

/* Checks opts->repl (kv_open, before anything is made). */
int kv__repl_check(const kv_options *opts);
/* Makes the locks and copies the hooks from db->opts. */
void kv__repl_init(kv_t *db);
void kv__repl_destroy(kv_t *db);
/* Whether any hook is set (then commits queue). */
static inline int kv__repl_hooked(const kv_t *db)
{
	return db->repl.hooks.commit || db->repl.hooks.seal;
}
/* With wlock held: queues e, which holds first/last/sealed/iov. */
void kv__hook_enqueue(kv_t *db, kv__hookq *e);
/* Without locks: e is past its sync point (or failed); returns once its
 * hooks ran, with non-zero if one of them failed. */
int kv__hook_deliver(kv_t *db, kv__hookq *e, int failed);
/* Whether the calling thread is inside one of db's hooks: a write from
 * there would wait for its own turn, behind the hook that made it. */
int kv__hook_busy(const kv_t *db);
/* Compaction leaves segments numbered >= this alone: their seal hook has
 * not returned yet. UINT64_MAX when none is pending. */
uint64_t kv__repl_seal_hold(kv_t *db);
/* With wlock held, hold from kv__repl_seal_hold: whether compaction must
 * leave s alone, for a seal hook still running or for kv_repl_retain. */
int kv__repl_keeps(kv_t *db, const kv__seg *s, uint64_t hold);
/* Notes that every LSN up to lsn passed its sync point. */
void kv__repl_ack(kv_t *db, uint64_t lsn);
/* Recovery: reads the replica state file "REPL", if any, into
 * db->repl.base / broken. */
int kv__repl_load(kv_t *db);

#endif
