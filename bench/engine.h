/*
 * engine.h - what bench/kvbench asks of each engine it compares.
 *
 * One adapter file per engine (engine_<name>.c) fills a struct engine.
 * A handle is one open store in a directory that the driver created fresh
 * and removes afterwards. The driver generates every key and value and
 * checks every read: get() compares the stored bytes with the expected
 * value in whatever way is cheapest for that engine's API (a view, a
 * pinned slice, or the copy the API insists on).
 *
 * Durability: open() with sync = 0 gives the engine's default mode without
 * an fsync per write (meant to survive a process crash; reopen-crash checks
 * whether it does); sync = 1 makes every put durable before it returns.
 * Each adapter states its settings in `durability` so that the report can
 * print them.
 */
#ifndef KVBENCH_ENGINE_H
#define KVBENCH_ENGINE_H

#include <stddef.h>
#include <stdint.h>

/* get() results */
#define ENG_OK        0
#define ENG_NOTFOUND  1
#define ENG_MISMATCH  2 /* found, but not the expected bytes */
#define ENG_ERR      -1

typedef struct eng_opts {
	int sync;            /* 1: every put durable before it returns */
	uint64_t num_keys;   /* expected keys; hash engines size their
				bucket arrays, libkv its index */
	/* 1: compact() will be called; an engine that can leave all its
	 * compaction to that call does (libkv: KV_NO_AUTO_COMPACT), so that
	 * the call has the whole backlog to do. LSM engines keep compacting
	 * in the background: without it their writes would stall. */
	int manual_compact;
} eng_opts;

/* Called by scan() for each pair, in key order. */
typedef void (*eng_pair_fn)(void *ctx, const void *key, size_t klen,
			    const void *val, size_t vlen);

typedef struct engine {
	const char *name;
	const char *durability; /* "fill: ...; fillsync: ..." */
	/* Returns a handle or NULL (with a message on stderr). */
	void *(*open)(const char *dir, const eng_opts *o);
	int (*close)(void *h);
	int (*put)(void *h, const void *k, size_t kl, const void *v, size_t vl);
	int (*get)(void *h, const void *k, size_t kl, const void *expect,
		   size_t elen);
	int (*del)(void *h, const void *k, size_t kl);
	/* Optional (NULL when the engine has no ordered index): up to n pairs
	 * from the first key >= start; returns how many or ENG_ERR. */
	int (*scan)(void *h, const void *start, size_t sl, int n,
		    eng_pair_fn fn, void *ctx);
	/* Non-zero when get() may be called from several threads at once. */
	int mt_get;
	/* Non-zero when put() may be called from several threads at once
	 * (fillsync-mt, and the writer thread that runs during compact). */
	int mt_put;
	/* Optional (NULL: no such call): a full compaction of the store, in
	 * the calling thread, while other threads may go on writing.
	 * *bytes_read: input the engine says it read, or -1 if it does not
	 * say (the driver measures input as the directory's size before). */
	int (*compact)(void *h, int64_t *bytes_read);
	/* Optional: a reader thread is done (frees per-thread state). */
	void (*thread_end)(void *h);
	/* Library version string, or NULL. */
	const char *(*version)(void);
} engine;

extern const engine eng_libkv, eng_lmdb, eng_leveldb, eng_rocksdb,
	eng_sqlite, eng_kyoto, eng_gdbm, eng_tkrzw;

#endif /* KVBENCH_ENGINE_H */
