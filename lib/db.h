/*
 * db.h - struct kv, shared by the modules that implement the API.
 *
 * Locks, always taken in this order, never the reverse:
 *   wlock        writers: LSN assignment, append, rollover. Held across the
 *                append's write() but never across an fsync of ALWAYS mode.
 *   klock        rwlock over the keydir, the ordered index and the segment
 *                table. Readers hold it shared for lookup + copy; writers
 *                take it exclusively only to publish a finished append.
 *   seg buf_lock KV_SYNC_NONE buffer of the active segment.
 *   sync.mu      group-commit state (taken with no other lock held, except
 *                by a writer under wlock that bumps `synced` after a seal).
 *   compact.mu   the compaction thread's wake-up state (leaf lock).
 *   wb.mu        the write-back thread's request (leaf lock, taken under
 *                wlock by the writer that queues one).
 *   repl.mu      the replication hook queue (leaf lock: taken under wlock
 *                to queue a commit, and by compaction choosing segments).
 * repl.apply serialises kv_repl_apply and the snapshot calls of a replica;
 * it is taken before wlock. Hooks run with none of these held.
 * compact.run serialises compactions; it is taken before wlock and klock,
 * and a compaction holds wlock only to choose segments and number files,
 * klock only for short switch steps, never across file I/O.
 * Because only writers change the keydir, and they hold wlock (so does a
 * reader that publishes the queued puts, kv__settle), a writer may read
 * the keydir under wlock alone.
 */
#ifndef KV_DB_H
#define KV_DB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "keydir.h"
#include "lock.h"
#include "kv.h"
#include "order.h"
#include "pubq.h"
#include "segment.h"

typedef struct kv__sync {
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* a sync finished */
	pthread_cond_t tick;    /* wakes the interval thread to stop */
	int busy;              /* a leader is inside fdatasync */
	int waiting;           /* writers waiting for the leader's sync */
	int woken;             /* how many its last broadcast woke */
	uint64_t synced;       /* store-wide append position made durable */
	uint32_t since;        /* KV_SYNC_EVERY: writes since the last sync */
	pthread_t thread;      /* KV_SYNC_INTERVAL */
	int thread_on;
	int stop;
} kv__sync;

struct kv__hookq;

/* Replication (repl.c): the hooks and their queue, and a replica's state. */
typedef struct kv__repl {
	struct kv_repl_hooks hooks; /* a copy; commit and seal NULL if unset */
	pthread_mutex_t mu;          /* the queue and seal_hold */
	pthread_cond_t cv;           /* a queued commit was delivered */
	struct kv__hookq *head, *tail; /* commits waiting, in commit order */
	int delivering;              /* a thread is running hooks */
	uint64_t seal_hold;          /* oldest queued sealed segment, or MAX:
				      * compaction leaves seq >= this alone */
	uint8_t *buf;                /* the deliverer's copy of a frame */
	size_t cap;
	_Atomic uint64_t calls, errors; /* for kv_stats */
	_Atomic uint64_t ack;        /* newest LSN past its sync point */
	_Atomic uint64_t retain;     /* kv_repl_retain; UINT64_MAX: none */
	uint64_t sealed;             /* set by a rollover, under wlock */
	int replica;                 /* opened with KV_REPLICA */
	pthread_mutex_t apply;       /* one kv_repl_apply at a time */
	_Atomic uint64_t base;       /* position of the snapshot applied */
	_Atomic int snap;            /* between snapshot begin and end */
	_Atomic int broken;          /* a snapshot was interrupted */
	/* kv_repl_read: where recent calls stopped (log segment, offset,
	 * next LSN), so that a follower's next call starts there instead of
	 * walking the segment from its start; under wlock. */
	struct kv__repl_hint {
		uint64_t seq, off, lsn;
	} hints[8];
} kv__repl;

typedef struct kv__compact {
	pthread_mutex_t run;   /* one compaction at a time */
	pthread_mutex_t mu;    /* the fields below */
	pthread_cond_t cv;
	pthread_t thread;
	int thread_on;
	_Atomic int stop;      /* kv_close: stop the thread, abort a run */
	int kick;              /* a segment was sealed: look now */
	uint64_t runs;         /* completed compactions */
	uint64_t freed;        /* disk bytes they reclaimed */
} kv__compact;

/* One waiting request of the write-back thread (writeback.c): [from, to)
 * of seg, with a reference; seg NULL: none. */
typedef struct kv__wbreq {
	kv__seg *seg;
	uint64_t from, to;
} kv__wbreq;

/* writeback.c: the write-back thread and what waits for it. */
typedef struct kv__wb {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int thread_on;
	int stop;
	kv__wbreq fault;       /* pages to fault in (served first) */
	kv__wbreq back;        /* write-back to start */
} kv__wb;

struct kv {
	char *dir;
	kv_options opts;
	int rdonly;
	int lock_fd;

	pthread_mutex_t wlock;
	kv__klock klock;

	kv__keydir kd;
	kv__pubq pubq;           /* puts not in kd yet (pubq.h) */
	kv__order order;
	int order_built;         /* built lazily by the first kv_scan */

	kv__seg **segs;          /* indexed by slot; NULL = free slot */
	uint32_t nslots;
	uint32_t nsegs;
	kv__seg *active;
	uint64_t max_seq;        /* highest file number used (under wlock) */

	uint64_t next_lsn;
	uint64_t appended;       /* store-wide bytes appended (positions) */
	kv__sync sync;
	kv__compact compact;
	kv__wb wb;
	kv__repl repl;
	_Atomic int poisoned;    /* a failed fsync: writes fail until reopen */

	/* recovery and compression figures for kv_stats */
	uint64_t truncated_bytes;
	uint64_t skipped_bytes;
	uint64_t skipped_records;
	uint64_t risk_lsn;       /* salvage: records older than this may have
				  * lost a newer one (0: nothing skipped) */
	uint64_t keys_at_risk;
	uint64_t hint_segments;
	uint64_t hint_rejected;
	_Atomic uint64_t compressed_values;
	_Atomic uint64_t compress_saved;
	int refresh_stale;       /* kv_refresh: the next one rebuilds all */
};

/* A caller's progress callback for a long call (compaction, verify). */
typedef struct kv__progress {
	kv_progress_fn fn;     /* NULL: report nothing */
	void *ctx;
	uint64_t total;
	uint64_t told;         /* the last figure reported */
} kv__progress;

/* Reports done if it moved by 1 MiB since the last report, or reached
 * total; 0, or KV_ECANCELED ("<what> canceled") when the callback asks to
 * stop. Call it once more at the end: a repeat of the last figure is not
 * reported twice. */
int kv__report(kv__progress *p, uint64_t done, const char *what);

/* Milliseconds from the store's clock. */
uint64_t kv__now(const kv_t *db);
/* Sends a message to opts.log, if set. */
void kv__log(const kv_t *db, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* kv_refresh's slow path (kv.c): a fresh handle on db's directory,
 * opened read-only as db was; refresh.c swaps its state into db. */
int kv__shadow_open(const kv_t *db, kv_t **out);
void kv__shadow_free(kv_t *shadow);
/* refresh.c: kv__shadow_open, from a directory whose segments and
 * obsolete lists stayed the same throughout, trying again while they
 * change (a writer's compaction removes files an open has listed); after
 * 10 tries KV_EBUSY, whose message names the call who. any_success: an
 * open that succeeds is taken even if they changed (kv_open; a writer
 * adding segments would otherwise keep it trying). */
int kv__open_settled(kv_t *db, const char *who, int any_success,
		     kv_t **out);

/* segment table (kv.c) */
int kv__db_add_seg(kv_t *db, kv__seg *s);
/* As kv__db_add_seg, with klock already held exclusively. */
int kv__db_add_seg_locked(kv_t *db, kv__seg *s);
/* With klock held exclusively (or at open): moves the record that entry e
 * points at from its segment's live bytes to its dead bytes. A DEAD entry
 * (a tombstone, during open) was counted dead already. */
void kv__db_retire(kv_t *db, const kv__kent *e);
/* With klock held exclusively: drops entry id, whose key is (key, klen)
 * and hash h, from the keydir and the ordered index. */
void kv__db_forget(kv_t *db, uint32_t id, const void *key, size_t klen,
		   uint64_t h);

/* compact.c */
int kv__compact_start(kv_t *db);
void kv__compact_stop(kv_t *db);
/* Wakes the background thread (a segment was sealed). */
void kv__compact_kick(kv_t *db);

/* recover.c */
int kv__recover(kv_t *db);

/* What a directory holds, by kind of file: sorted file numbers. */
typedef struct kv__listing {
	uint64_t *segs, *hints, *obs;
	size_t nsegs, nhints, nobs;
	size_t csegs, chints, cobs;
	uint64_t max_seq;    /* over every numbered name, tmp files too */
} kv__listing;
int kv__list_dir(kv_t *db, kv__listing *l);
void kv__listing_free(kv__listing *l);
/* Whether seq is in the sorted v[0..n). */
int kv__listed(const uint64_t *v, size_t n, uint64_t seq);

/* kv_refresh (refresh.c), with wlock held. Returned when what is on disk
 * is not records newer than all the handle indexed: the caller rebuilds
 * the whole state instead. */
#define KV__STALE 1
/* Indexes the records of s from s->size up to end, each run whole (under
 * klock, taken for each), each newer than everything indexed (else
 * KV__STALE); moves s->size and `flushed` past each run applied. A run
 * incomplete or unsound stops it with *stopped set and nothing cut (a
 * write in progress). */
int kv__recover_follow(kv_t *db, kv__seg *s, uint64_t end, int *stopped);
/* With klock held too: indexes a new segment of size s->size from its
 * hint: 1 when done (*rc the outcome), 0 when it has none or it was
 * refused (scan instead). */
int kv__recover_follow_hint(kv_t *db, kv__seg *s, int *rc);

/* seal.c: writes hint files for sealed log segments that have none. */
void kv__seal_hints(kv_t *db);

/* sync.c (its locks are made and destroyed with the handle, in kv.c) */
int kv__sync_init(kv_t *db);
void kv__sync_stop(kv_t *db);
/* Makes the store durable up to position pos (group commit). */
int kv__sync_to(kv_t *db, uint64_t pos);
/* Marks the store poisoned after a failed fsync; returns KV_EIO. */
int kv__poison(kv_t *db);
/* The CLOCK_REALTIME time ms from now, for pthread_cond_timedwait. */
void kv__deadline(struct timespec *ts, unsigned ms);

#endif
