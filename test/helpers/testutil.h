/*
 * testutil.h - what every libkv test needs: cmocka, a fresh directory,
 * a fake clock, and fault injection through the io table.
 */
#ifndef KV_TESTUTIL_H
#define KV_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "kv.h"

/* Asserts that a call returns KV_OK, showing kv_errmsg() when not. */
#define TU_OK(e) do { \
	int tu_rc_ = (e); \
	if (tu_rc_ != KV_OK) \
		fail_msg("%s: %s: %s", #e, kv_strerror(tu_rc_), kv_errmsg()); \
} while (0)

/* A new empty directory under $TMPDIR (or /tmp); removed by tu_rmdir. */
char *tu_mkdir(void);
/* Removes a directory tree and frees the path. */
void tu_rmdir(char *dir);
/* "<dir>/<name>" in a static buffer (one at a time). */
const char *tu_path(const char *dir, const char *name);
/* Path of segment number seq in dir. */
const char *tu_seg_path(const char *dir, uint64_t seq);
uint64_t tu_file_size(const char *path);
/* kv_stats' disk_bytes: the segments' data, without the space an open
 * store preallocated past its last record. */
uint64_t tu_disk_bytes(kv_t *db);
void tu_truncate(const char *path, uint64_t len);
/* Reads/writes one byte of a file at off. */
uint8_t tu_peek(const char *path, uint64_t off);
void tu_poke(const char *path, uint64_t off, uint8_t byte);
/* Copies a whole store directory (files only). */
void tu_copy_dir(const char *from, const char *to);

/* Options with KV_CREATE | KV_NO_AUTO_COMPACT and the fake clock. */
void tu_options(kv_options *o);
/* Opens, asserting success. */
kv_t *tu_open(const char *dir, const kv_options *o);

/* The fake clock behind tu_options: starts at 1,000,000 ms. */
extern uint64_t tu_clock_ms;
uint64_t tu_clock(void *ctx);

/* Asserts that key holds exactly val (NUL-terminated string). */
void tu_expect(kv_t *db, const char *key, const char *val);
/* Asserts that key has no live value. */
void tu_expect_missing(kv_t *db, const char *key);
int tu_put(kv_t *db, const char *key, const char *val);
/* A kv_pair_fn that counts the pairs it is called with into *(int *)ctx. */
int tu_count_pair(void *ctx, const void *k, size_t kl, const void *v,
		  size_t vl);

/* Fault injection: the next-but-`after` call of the given kind fails
 * with err (after = 0: the very next one); persistent keeps failing.
 * TU_FSYNC counts every fsync, of files and of directories alike;
 * TU_FSYNC_DIR counts (and fails) only those of directories. */
enum tu_fault_kind { TU_OPEN, TU_PWRITE, TU_FSYNC, TU_FDATASYNC, TU_RENAME,
		     TU_FTRUNCATE, TU_MMAP, TU_UNLINK, TU_PREAD, TU_FSYNC_DIR,
		     TU_FALLOCATE, TU_NKINDS };
/* Arms a fault; while any is armed (until tu_fault_clear), appends go
 * through pwritev, not the writable map, so TU_PWRITE sees every write. */
void tu_fault(enum tu_fault_kind kind, unsigned after, int err,
	      int persistent);
/* A pwrite that writes only half, then fails with err (short write). */
void tu_fault_short_write(unsigned after, int err);
/* Called (once) at the moment an armed fault fires, before the failing
 * call returns: a test copies the store there to get the files a crash at
 * that step would leave. NULL to remove. */
void tu_fault_hook(void (*fn)(void *ctx), void *ctx);
/* Restores the real system calls and clears all faults. */
void tu_fault_clear(void);
/* Calls of each kind seen since the last clear. */
unsigned tu_calls(enum tu_fault_kind kind);

/* A progress recorder for kv_compact / kv_verify: checks that figures
 * never go back or pass total, counts calls, and asks to stop at call
 * number stop_at (0: never). */
typedef struct tu_prog {
	int calls;
	uint64_t last, total;
	int stop_at;
} tu_prog;
int tu_on_progress(void *ctx, uint64_t done, uint64_t total);

/* Fault tests simulate the disk's failures and need no real disk: when
 * TMPDIR is unset, puts their directories in /dev/shm (if writable), where
 * an fsync costs nothing. Call first thing in main(). */
void tu_tmpdir_in_memory(void);

/* Deterministic PRNG for tests (xorshift64*). */
uint64_t tu_rand(uint64_t *state);

#endif
