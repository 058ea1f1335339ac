/*
 * io.h - the only place libkv makes file-system calls.
 *
 * Every call goes through kv__io, a table of function pointers, so tests can
 * fail the Nth fsync or make a write short (SQLite's aSyscall[], LevelDB's
 * Env). The helpers below retry EINTR and short transfers; they return 0 or
 * -1 with errno set, and never log: callers add the file name.
 */
#ifndef KV_IO_H
#define KV_IO_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct kv__io_ops {
	int (*open)(const char *path, int flags, mode_t mode);
	int (*close)(int fd);
	ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
	ssize_t (*pwritev)(int fd, const struct iovec *iov, int cnt, off_t off);
	int (*fsync)(int fd);
	int (*fdatasync)(int fd);
	int (*rename)(const char *from, const char *to);
	int (*unlink)(const char *path);
	int (*ftruncate)(int fd, off_t len);
	void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd,
		      off_t off);
	int (*munmap)(void *addr, size_t len);
	int (*fstat_size)(int fd, uint64_t *size);
	/* Allocates [off, off + len), extending the file with zeros. */
	int (*fallocate)(int fd, off_t off, off_t len);
	/* Starts write-back of [off, off + len) and returns; advice only,
	 * it makes nothing durable (sync_file_range, SYNC_FILE_RANGE_WRITE). */
	int (*writeback)(int fd, off_t off, off_t len);
	/* 1: appends may copy into a writable map of preallocated space
	 * instead of calling pwritev. Tests that watch or fail writes
	 * through pwritev set it to 0. */
	int map_appends;
} kv__io_ops;

/* The table in force; tests may replace entries and restore them. */
extern kv__io_ops kv__io;
/* The real system calls, for restoring. */
extern const kv__io_ops kv__io_default;

/*
 * Kill points (RELIABILITY-PLAN T5, RocksDB's TEST_KILL_RANDOM): each step
 * of a durable sequence (rollover, compaction, recovery) is named, e.g.
 * KV__KILLPOINT("compact.obs_durable"). A test installs a hook that ends
 * the process at the nth hit of one point, then checks what a reopen
 * recovers (test/test_killpoints.c lists every point). NULL in production,
 * so a point costs one well-predicted branch beside a system call.
 */
extern void (*kv__killpoint_hook)(const char *name);
#define KV__KILLPOINT(name) do {               \
	if (kv__killpoint_hook)                 \
		kv__killpoint_hook(name);       \
} while (0)

int kv__io_pread_all(int fd, void *buf, size_t n, uint64_t off);
/* Writes every byte of iov at off, continuing after short writes. */
int kv__io_pwritev_all(int fd, struct iovec *iov, int cnt, uint64_t off);
/* fsync and fdatasync, again after EINTR (an interrupted sync may not
 * have flushed; it is not a write-back error, which is never retried). */
int kv__io_fsync(int fd);
int kv__io_fdatasync(int fd);
/* fsync of a directory, so renames and new names in it are durable. */
int kv__io_fsync_dir(const char *dir);
/* A file written in steps under "<path>.tmp", then made durable and
 * renamed to path (as kv__io_write_file does at once), or removed. It
 * lets a hint of a large segment go to disk as it is built, instead of
 * whole from memory (a 64 MiB segment of small records has a 25 MB hint;
 * a compaction held one per output). fd < 0: closed. */
typedef struct kv__io_stream {
	int fd;
	uint64_t off;
	char tmp[PATH_MAX + 8];
} kv__io_stream;
int kv__io_stream_open(kv__io_stream *w, const char *path, unsigned mode);
int kv__io_stream_write(kv__io_stream *w, const void *data, size_t len);
/* kv__io_stream_write with the signature of a hint's sink (hint.h). */
int kv__io_stream_sink(void *w, const uint8_t *data, size_t len);
/* fsync, close, rename; on failure the temporary file is removed. */
int kv__io_stream_commit(kv__io_stream *w, const char *path);
/* Closes and removes the temporary file; nothing once committed. */
void kv__io_stream_abort(kv__io_stream *w);
/* Writes a whole small file as "<path>.tmp", fsyncs it and renames it to
 * path (the caller fsyncs the directory). On failure nothing is left. */
int kv__io_write_file(const char *path, const void *data, size_t len,
		      unsigned mode);
/* Maps a whole file of at most max bytes read-only (nothing for an empty
 * one); for files that are replaced by rename and never truncated in
 * place, such as hint files, so the map cannot fault. */
int kv__io_map_file(const char *path, uint64_t max, const uint8_t **data,
		    size_t *len);
void kv__io_unmap_file(const uint8_t *data, size_t len);
/* Reads the last n bytes of a file (a trailer) without mapping or reading
 * the rest: 0, or -1 when it cannot, or the file is shorter than n. */
int kv__io_read_end(const char *path, void *buf, size_t n);
/* Reads a whole file of at most max bytes into a malloc'd buffer. */
int kv__io_read_file(const char *path, uint64_t max, uint8_t **data,
		     size_t *len);

#endif
