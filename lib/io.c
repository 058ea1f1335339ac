/* io.c - system calls behind a replaceable table; EINTR and short I/O. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

static int sys_open(const char *path, int flags, mode_t mode)
{
	/* O_CLOEXEC always: an embedding program's fork+exec must not inherit
	 * (and keep alive) a store's descriptors or its lock. */
	return open(path, flags | O_CLOEXEC, mode);
}

static int sys_fallocate(int fd, off_t off, off_t len)
{
	return fallocate(fd, 0, off, len);
}

static int sys_writeback(int fd, off_t off, off_t len)
{
	return sync_file_range(fd, off, len, SYNC_FILE_RANGE_WRITE);
}

static int sys_fstat_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return -1;
	*size = (uint64_t)st.st_size;
	return 0;
}

/* The real calls, written once for both tables. */
#define KV__IO_SYSTEM {                  \
	.open = sys_open,                \
	.close = close,                  \
	.pread = pread,                  \
	.pwritev = pwritev,              \
	.fsync = fsync,                  \
	.fdatasync = fdatasync,          \
	.rename = rename,                \
	.unlink = unlink,                \
	.ftruncate = ftruncate,          \
	.mmap = mmap,                    \
	.munmap = munmap,                \
	.fstat_size = sys_fstat_size,    \
	.fallocate = sys_fallocate,      \
	.writeback = sys_writeback,      \
	.map_appends = 1,                \
}

const kv__io_ops kv__io_default = KV__IO_SYSTEM;
kv__io_ops kv__io = KV__IO_SYSTEM;
void (*kv__killpoint_hook)(const char *name);

int kv__io_pread_all(int fd, void *buf, size_t n, uint64_t off)
{
	char *p = buf;

	while (n > 0) {
		ssize_t r = kv__io.pread(fd, p, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = ENODATA; /* the file is shorter than expected */
			return -1;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Drops the first `done` bytes from iov, for resuming a short write. */
static int advance(struct iovec **iov, int *cnt, size_t done)
{
	while (*cnt > 0 && done >= (*iov)->iov_len) {
		done -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	if (*cnt > 0) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + done;
		(*iov)->iov_len -= done;
	}
	return *cnt;
}

int kv__io_pwritev_all(int fd, struct iovec *iov, int cnt, uint64_t off)
{
	while (cnt > 0) {
		int n = cnt > IOV_MAX ? IOV_MAX : cnt;
		ssize_t w = kv__io.pwritev(fd, iov, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (w == 0) {
			errno = ENOSPC; /* no progress: treat as a full disk */
			return -1;
		}
		off += (uint64_t)w;
		advance(&iov, &cnt, (size_t)w);
	}
	return 0;
}

int kv__io_fsync(int fd)
{
	int rc;

	while ((rc = kv__io.fsync(fd)) != 0 && errno == EINTR)
		;
	return rc;
}

int kv__io_fdatasync(int fd)
{
	int rc;

	while ((rc = kv__io.fdatasync(fd)) != 0 && errno == EINTR)
		;
	return rc;
}

int kv__io_fsync_dir(const char *dir)
{
	int fd = kv__io.open(dir, O_RDONLY | O_DIRECTORY, 0);
	int rc, saved;

	if (fd < 0)
		return -1;
	rc = kv__io_fsync(fd);
	saved = errno;
	kv__io.close(fd);
	errno = saved;
	return rc;
}

int kv__io_stream_open(kv__io_stream *w, const char *path, unsigned mode)
{
	w->off = 0;
	snprintf(w->tmp, sizeof w->tmp, "%s.tmp", path);
	w->fd = kv__io.open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC,
			    (mode_t)mode);
	return w->fd < 0 ? -1 : 0;
}

int kv__io_stream_write(kv__io_stream *w, const void *data, size_t len)
{
	struct iovec iov = { (void *)data, len };

	if (w->fd < 0 || kv__io_pwritev_all(w->fd, &iov, 1, w->off))
		return -1;
	/* Started now, the write-back of each piece leaves little for the
	 * commit's fsync: a 64 MiB segment's 25 MB hint was synced in one
	 * go, 20 ms after the walk that built it. Advice only. */
	(void)kv__io.writeback(w->fd, (off_t)w->off, (off_t)len);
	w->off += len;
	return 0;
}

int kv__io_stream_sink(void *w, const uint8_t *data, size_t len)
{
	return kv__io_stream_write(w, data, len);
}

int kv__io_stream_commit(kv__io_stream *w, const char *path)
{
	int saved;

	if (w->fd < 0 || kv__io_fsync(w->fd)) {
		saved = errno;
		kv__io_stream_abort(w);
		errno = saved;
		return -1;
	}
	kv__io.close(w->fd);
	w->fd = -1;
	KV__KILLPOINT("file.tmp_synced");
	if (kv__io.rename(w->tmp, path)) {
		saved = errno;
		kv__io.unlink(w->tmp);
		errno = saved;
		return -1;
	}
	KV__KILLPOINT("file.renamed");
	return 0;
}

void kv__io_stream_abort(kv__io_stream *w)
{
	int saved = errno;

	if (w->fd >= 0) {
		kv__io.close(w->fd);
		w->fd = -1;
		kv__io.unlink(w->tmp);
	}
	errno = saved;
}

int kv__io_write_file(const char *path, const void *data, size_t len,
		      unsigned mode)
{
	kv__io_stream w;

	if (kv__io_stream_open(&w, path, mode))
		return -1;
	if (kv__io_stream_write(&w, data, len)) {
		kv__io_stream_abort(&w);
		return -1;
	}
	return kv__io_stream_commit(&w, path);
}

/* Opens path for reading and gets its size, refusing files over max
 * (EFBIG): -1 with errno set, or the descriptor. */
static int open_bounded(const char *path, uint64_t max, uint64_t *size)
{
	int fd = kv__io.open(path, O_RDONLY, 0);

	if (fd < 0)
		return -1;
	if (kv__io.fstat_size(fd, size) == 0 && *size <= max &&
	    *size <= SIZE_MAX)
		return fd;
	int saved = *size > max || *size > SIZE_MAX ? EFBIG : errno;
	kv__io.close(fd);
	errno = saved;
	return -1;
}

int kv__io_read_end(const char *path, void *buf, size_t n)
{
	uint64_t size = 0;
	int fd = open_bounded(path, UINT64_MAX, &size);

	if (fd < 0)
		return -1;
	int rc = size >= n ? kv__io_pread_all(fd, buf, n, size - n) : -1;
	kv__io.close(fd);
	return rc ? -1 : 0;
}

int kv__io_read_file(const char *path, uint64_t max, uint8_t **data,
		     size_t *len)
{
	uint64_t size = 0;
	int fd = open_bounded(path, max, &size);
	uint8_t *buf = NULL;

	*data = NULL;
	*len = 0;
	if (fd < 0)
		return -1;
	if ((buf = malloc(size ? (size_t)size : 1)) != NULL &&
	    kv__io_pread_all(fd, buf, (size_t)size, 0) == 0) {
		kv__io.close(fd);
		*data = buf;
		*len = (size_t)size;
		return 0;
	}
	int saved = errno;
	free(buf);
	kv__io.close(fd);
	errno = saved;
	return -1;
}

int kv__io_map_file(const char *path, uint64_t max, const uint8_t **data,
		    size_t *len)
{
	uint64_t size = 0;
	int fd = open_bounded(path, max, &size);
	void *map = MAP_FAILED;

	*data = NULL;
	*len = 0;
	if (fd < 0)
		return -1;
	if (size == 0 ||
	    (map = kv__io.mmap(NULL, (size_t)size, PROT_READ,
			       MAP_PRIVATE | MAP_POPULATE, fd, 0)) != MAP_FAILED) {
		kv__io.close(fd);
		*data = size ? map : NULL;
		*len = (size_t)size;
		return 0;
	}
	int saved = errno;
	kv__io.close(fd);
	errno = saved;
	return -1;
}

void kv__io_unmap_file(const uint8_t *data, size_t len)
{
	if (len)
		kv__io.munmap((void *)(uintptr_t)data, len);
}
