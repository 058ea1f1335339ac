/* segment.c - segment files on disk. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crc.h"
#include "error.h"
#include "io.h"
#include "le.h"
#include "segment.h"
#include "hint.h"

void kv__seg_name(char out[KV__NAME_MAX], uint64_t seq, const char *suffix)
{
	snprintf(out, KV__NAME_MAX, "%016" PRIx64 "%s", seq, suffix);
}

const char *kv__seg_path(char *out, const char *dir, uint64_t seq,
			 const char *suffix)
{
	int n = snprintf(out, PATH_MAX, "%s/", dir);

	kv__seg_name(out + n, seq, suffix);
	return out + n;
}

int kv__seg_parse_name(const char *name, const char *suffix, uint64_t *seq)
{
	uint64_t v = 0;

	for (int i = 0; i < KV__SEQ_DIGITS; i++) {
		char c = name[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return 0;
		v = v << 4 | d;
	}
	if (strcmp(name + KV__SEQ_DIGITS, suffix) != 0 || v == 0)
		return 0;
	*seq = v;
	return 1;
}

static void path_of(char *out, size_t cap, const char *dir, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

/* A step of making a segment: named for the sequence it belongs to, a
 * compaction output or the log (rollover, or the first segment at open). */
#define SEG_KILLPOINT(s, step) KV__KILLPOINT(                       \
	((s)->flags & KV__SEG_F_COMPACTED) ? "compact.out_" step : "seg." step)

static void encode_header(uint8_t h[KV__FILE_HDR], uint64_t seq,
			  uint32_t flags)
{
	memset(h, 0, KV__FILE_HDR);
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): binary magic */
	memcpy(h, KV__SEG_MAGIC, 8);
	kv__put32(h + 8, KV__FORMAT_VERSION);
	kv__put32(h + 12, KV__KIND_SEGMENT);
	kv__put64(h + 16, seq);
	kv__put32(h + 24, flags);
	kv__put32(h + 28, kv__crc32(0, h, 28));
}

/* Checks a file header; returns 0 or the error, with the message set. */
static int check_header(const uint8_t h[KV__FILE_HDR], const char *name,
			uint64_t seq)
{
	uint32_t version = kv__get32(h + 8);

	if (memcmp(h, KV__SEG_MAGIC, 8) != 0)
		return kv__fail(KV_ECORRUPT, "%s: offset 0: bad magic", name);
	if (kv__get32(h + 28) != kv__crc32(0, h, 28))
		return kv__fail(KV_ECORRUPT,
				"%s: offset 0: header checksum mismatch", name);
	if (version != KV__FORMAT_VERSION ||
	    (kv__get32(h + 24) & ~KV__SEG_F_KNOWN))
		return kv__fail(KV_EVERSION,
				"%s: format version %" PRIu32 " flags 0x%" PRIx32
				", this library reads version %u", name, version,
				kv__get32(h + 24), KV__FORMAT_VERSION);
	if (kv__get32(h + 12) != KV__KIND_SEGMENT || kv__get64(h + 16) != seq)
		return kv__fail(KV_ECORRUPT,
				"%s: offset 0: header names another file", name);
	return 0;
}

static kv__seg *seg_new(uint64_t seq, size_t buf_cap)
{
	kv__seg *s = calloc(1, sizeof *s);

	if (!s)
		return NULL;
	if (buf_cap && !(s->buf = malloc(buf_cap))) {
		free(s);
		return NULL;
	}
	s->buf_cap = buf_cap;
	s->seq = seq;
	s->fd = -1;
	s->refs = 1;
	pthread_mutex_init(&s->buf_lock, NULL);
	kv__seg_name(s->name, seq, KV__SEG_SUFFIX);
	return s;
}

/* Mapping is an optimisation: on failure reads fall back to pread, and
 * appends to write(). The active segment's map is writable (appends copy
 * into it, see prealloc), the others' read-only. */
static void map_file(kv__seg *s, uint64_t len, int prot)
{
	if (len == 0 || len > SIZE_MAX)
		return;
	void *m = kv__io.mmap(NULL, (size_t)len, prot, MAP_SHARED, s->fd, 0);
	if (m == MAP_FAILED)
		return;
	s->map = m;
	s->map_len = (size_t)len;
	s->map_prot = prot;
}

void kv__seg_map_active(kv__seg *s, uint64_t len)
{
	if (s->map)
		kv__io.munmap(s->map, s->map_len);
	s->map = NULL;
	s->map_len = 0;
	map_file(s, len > s->size ? len : s->size, PROT_READ | PROT_WRITE);
}

void kv__seg_close(kv__seg *s)
{
	if (!s)
		return;
	if (s->map)
		kv__io.munmap(s->map, s->map_len);
	if (s->fd >= 0)
		kv__io.close(s->fd);
	pthread_mutex_destroy(&s->buf_lock);
	free(s->buf);
	if (s->wh)
		kv__hint_free(s->wh);
	free(s->wh);
	free(s);
}

static void tmp_path(char *out, size_t cap, const char *dir,
		     const char *name)
{
	snprintf(out, cap, "%s/%s.tmp", dir, name);
}

/* Creates the file under its temporary name and writes the header. */
static int create_tmp(kv__seg *s, const char *dir, unsigned mode,
		      uint32_t flags)
{
	char tmp[PATH_MAX + 8];
	uint8_t h[KV__FILE_HDR];
	struct iovec iov = { h, sizeof h };

	tmp_path(tmp, sizeof tmp, dir, s->name);
	encode_header(h, s->seq, flags);
	s->flags = flags;
	s->fd = kv__io.open(tmp, O_RDWR | O_CREAT | O_TRUNC, (mode_t)mode);
	if (s->fd < 0)
		return kv__fail_sys("%s: create", tmp);
	SEG_KILLPOINT(s, "tmp_created");
	if (kv__io_pwritev_all(s->fd, &iov, 1, 0) == 0) {
		s->size = KV__FILE_HDR;
		s->flushed = KV__FILE_HDR;
		SEG_KILLPOINT(s, "header_written");
		return 0;
	}
	int rc = kv__fail_sys("%s: write of new segment", tmp);
	kv__io.unlink(tmp);
	return rc;
}

/* Syncs the temporary file and renames it into place: a crash leaves
 * either no segment or a whole one. */
static int rename_in(kv__seg *s, const char *dir)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];

	path_of(path, sizeof path, dir, s->name);
	tmp_path(tmp, sizeof tmp, dir, s->name);
	if (kv__io_fsync(s->fd) == 0) {
		SEG_KILLPOINT(s, "tmp_synced");
		if (kv__io.rename(tmp, path) == 0) {
			SEG_KILLPOINT(s, "renamed");
			return 0;
		}
	}
	int rc = kv__fail_sys("%s: write of new segment", tmp);
	kv__io.unlink(tmp);
	return rc;
}

/* Header, fsync, rename, fsync of the directory. */
static int create_file(kv__seg *s, const char *dir, unsigned mode,
		       uint32_t flags)
{
	int rc = create_tmp(s, dir, mode, flags);

	if (rc == 0)
		rc = rename_in(s, dir);
	if (rc == 0 && kv__io_fsync_dir(dir)) {
		rc = kv__fail_sys("%s: fsync of directory", dir);
		/* The writer goes on appending to the segment before this one.
		 * Left here, this newer empty one would pass for the log's
		 * tail at the next open, and a torn append in the real tail
		 * would then be refused as damage. */
		char path[PATH_MAX];
		path_of(path, sizeof path, dir, s->name);
		kv__io.unlink(path);
	}
	if (rc == 0)
		KV__KILLPOINT("seg.dir_synced");
	return rc;
}

int kv__seg_create(const char *dir, uint64_t seq, uint32_t flags,
		   unsigned mode, uint64_t map_len, size_t buf_cap,
		   kv__seg **out)
{
	kv__seg *s = seg_new(seq, buf_cap);
	int rc;

	*out = NULL;
	if (!s)
		return kv__fail(KV_ENOMEM, "out of memory creating a segment");
	if ((rc = create_file(s, dir, mode, flags)) != 0) {
		kv__seg_close(s);
		return rc;
	}
	map_file(s, map_len, PROT_READ | PROT_WRITE);
	*out = s;
	return 0;
}

int kv__seg_create_tmp(const char *dir, uint64_t seq, uint32_t flags,
		       unsigned mode, kv__seg **out)
{
	kv__seg *s = seg_new(seq, 0);
	int rc;

	*out = NULL;
	if (!s)
		return kv__fail(KV_ENOMEM, "out of memory creating a segment");
	if ((rc = create_tmp(s, dir, mode, flags)) != 0) {
		kv__seg_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

int kv__seg_publish(kv__seg *s, const char *dir)
{
	int rc = kv__seg_flush(s);

	if (rc == 0)
		rc = rename_in(s, dir);
	if (rc == 0)
		map_file(s, s->size, PROT_READ);
	return rc;
}

int kv__seg_unlink(const char *dir, uint64_t seq, int tmp)
{
	char name[KV__NAME_MAX], path[PATH_MAX + 8];
	const char *suffix[] = { KV__HINT_SUFFIX, KV__SEG_SUFFIX };
	int rc = 0;

	/* The hint first: a hint without its segment is ignored, while a
	 * segment without its hint is merely scanned. */
	for (int i = 0; i < 2; i++) {
		kv__seg_name(name, seq, suffix[i]);
		snprintf(path, sizeof path, "%s/%s%s", dir, name,
			 tmp ? ".tmp" : "");
		if (kv__io.unlink(path) != 0 && errno != ENOENT)
			rc = kv__fail_sys("%s: unlink", path);
		if (i == 0)
			KV__KILLPOINT("seg.hint_unlinked");
	}
	return rc;
}

void kv__seg_unref(kv__seg *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1)
		kv__seg_close(s);
}

int kv__seg_open(const char *dir, uint64_t seq, int rdonly, uint64_t map_len,
		 kv__seg **out)
{
	char path[PATH_MAX];
	uint8_t h[KV__FILE_HDR];
	uint64_t size;
	kv__seg *s = seg_new(seq, 0);
	int rc;

	*out = NULL;
	if (!s)
		return kv__fail(KV_ENOMEM, "out of memory opening a segment");
	path_of(path, sizeof path, dir, s->name);
	/* O_NOFOLLOW: a symbolic link where a segment should be is refused
	 * (ELOOP), never followed out of the store. */
	s->fd = kv__io.open(path, (rdonly ? O_RDONLY : O_RDWR) | O_NOFOLLOW, 0);
	if (s->fd < 0 || kv__io.fstat_size(s->fd, &size)) {
		rc = kv__fail_sys("%s: open", path);
		goto fail;
	}
	if (size < KV__FILE_HDR) {
		rc = kv__fail(KV_ECORRUPT, "%s: offset 0: file of %" PRIu64
			      " bytes is shorter than its header", s->name,
			      size);
		goto fail;
	}
	if (kv__io_pread_all(s->fd, h, sizeof h, 0)) {
		rc = kv__fail_sys("%s: read of header", path);
		goto fail;
	}
	if ((rc = check_header(h, s->name, seq)) != 0)
		goto fail;
	s->flags = kv__get32(h + 24);
	s->size = size;
	s->flushed = size;
	map_file(s, map_len > size ? map_len : size, PROT_READ);
	*out = s;
	return 0;
fail:
	kv__seg_close(s);
	return rc;
}

const uint8_t *kv__seg_ptr(kv__seg *s, uint64_t off, size_t n)
{
	uint64_t flushed = atomic_load_explicit(&s->flushed,
						memory_order_acquire);

	if (!s->map || off + n > s->map_len || off + n > flushed)
		return NULL;
	return s->map + off;
}

/* Copies a record that may still be in the KV_SYNC_NONE buffer. */
static int read_buffered(kv__seg *s, uint64_t off, void *dst, size_t n)
{
	int done = 0;

	pthread_mutex_lock(&s->buf_lock);
	uint64_t flushed = atomic_load(&s->flushed);
	if (off >= flushed && off + n <= flushed + s->buf_len) {
		memcpy(dst, s->buf + (off - flushed), n);
		done = 1;
	}
	pthread_mutex_unlock(&s->buf_lock);
	return done;
}

int kv__seg_read(kv__seg *s, uint64_t off, void *dst, size_t n)
{
	const uint8_t *p = kv__seg_ptr(s, off, n);

	if (p) {
		memcpy(dst, p, n);
		return 0;
	}
	if (s->buf && read_buffered(s, off, dst, n))
		return 0;
	if (kv__io_pread_all(s->fd, dst, n, off))
		return kv__fail_sys("%s: read of %zu bytes at offset %" PRIu64,
				    s->name, n, off);
	return 0;
}

/* Writes at `at`; on failure cuts the file back to `at` so that no torn
 * record is left in front of the next append. */
static int write_at(kv__seg *s, struct iovec *iov, int cnt, uint64_t at,
		    int *broken)
{
	if (kv__io_pwritev_all(s->fd, iov, cnt, at) == 0)
		return 0;
	int rc = kv__fail_sys("%s: write at offset %" PRIu64, s->name, at);
	int saved = errno;
	if (kv__io.ftruncate(s->fd, (off_t)at) != 0)
		*broken = 1;
	s->alloc_end = 0; /* preallocated space went with the cut */
	errno = saved;
	return rc;
}

int kv__seg_flush(kv__seg *s)
{
	int broken = 0, rc = 0;

	pthread_mutex_lock(&s->buf_lock);
	if (s->buf_len) {
		struct iovec iov = { s->buf, s->buf_len };
		uint64_t at = atomic_load(&s->flushed);

		rc = write_at(s, &iov, 1, at, &broken);
		if (rc == 0) {
			atomic_store_explicit(&s->flushed, at + s->buf_len,
					      memory_order_release);
			s->buf_len = 0;
		}
	}
	pthread_mutex_unlock(&s->buf_lock);
	return rc;
}

static void buffer_copy(kv__seg *s, const struct iovec *iov, int cnt)
{
	pthread_mutex_lock(&s->buf_lock);
	for (int i = 0; i < cnt; i++) {
		memcpy(s->buf + s->buf_len, iov[i].iov_base, iov[i].iov_len);
		s->buf_len += iov[i].iov_len;
	}
	pthread_mutex_unlock(&s->buf_lock);
}

/* Faulting the pages of the map in writable before the puts that fill
 * them means they take no page fault: beside a compaction's writeback a
 * put's first write into a fresh page of the map took 10-20 us (ext4's
 * page_mkwrite), which made the writer's p99 (kvbench compact: p99 11-21
 * us during a compaction against 6-8 us without, and 4-9 / 3-4 us with
 * this, 6 runs). The pages become dirty zeros, written back like any
 * other. It costs ~2 us a page (the page cache allocates and zeroes each
 * for the unwritten extent: 15% of fillrandom's writer), so the writer
 * hands it to the write-back thread (writeback.h), a stretch ahead of
 * where it writes. Advice only: an old kernel's EINVAL changes nothing,
 * and a range the writer reached first, or that the seal cut off or made
 * read-only, is simply not populated (the call then fails harmlessly). */
void kv__seg_prefault(kv__seg *s, uint64_t from, uint64_t to)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t start = from - from % pg;

	madvise(s->map + start, (size_t)(to - start), MADV_POPULATE_WRITE);
}

int kv__seg_to_prefault(kv__seg *s, uint64_t *from, uint64_t *to)
{
	if (!s->prefault || !s->map || s->pf_from >= s->alloc_end ||
	    s->alloc_end > s->map_len)
		return 0;
	*from = s->pf_from;
	*to = s->alloc_end;
	s->pf_from = s->alloc_end;
	return 1;
}

/* Allocates the file ahead of an append of n bytes; 1 when the bytes
 * [size, size + n) are allocated. Two gains: an fdatasync after writing
 * inside the file's size need not journal a size change (on ext4 here
 * 133-150 us against 195-200 us for 128-byte appends), and an append can
 * be a copy into the writable map, ~80 ns against ~320 ns for pwrite of
 * 128 B, which still survives a process crash (the page cache has it),
 * and cannot raise SIGBUS for want of space (the blocks exist). Only an
 * optimisation: on failure (ENOSPC, a file system without fallocate) the
 * append is a write() that grows the file, as before. The allocation
 * stays inside the mapping of the active segment. */
static int prealloc(kv__seg *s, size_t n)
{
	uint64_t need = s->size + n;
	uint64_t to = need + (s->prefault ? 2u : 1u) * (uint64_t)s->prealloc;

	if (!s->prealloc)
		return 0;
	/* Where pages are faulted in ahead, the next stretch is allocated
	 * while a whole one is still ahead of the writer, so that the
	 * thread populating it has that long to do so. */
	if (need + (s->prefault ? s->prealloc : 0) <= s->alloc_end)
		return 1;
	if (s->map_len && to > s->map_len)
		to = need > s->map_len ? need : s->map_len;
	uint64_t from = s->alloc_end > s->size ? s->alloc_end : s->size;
	if (to <= from || kv__io.fallocate(s->fd, (off_t)from,
					     (off_t)(to - from)) != 0)
		return need <= s->alloc_end;
	if (s->pf_from < from)
		s->pf_from = from;
	s->alloc_end = to;
	return 1;
}

/* Copies n bytes forward in steps of COPY_STEP, each ordered after the
 * one before (a compiler barrier; the CPU retires stores in program order,
 * and a killed process's retired stores all reach the page cache). A
 * process killed mid-copy so leaves a prefix plus part of one step, never
 * a whole record (KV__REC_HDR + 1 bytes at least) after a missing byte:
 * recovery then finds a torn tail, not sound records after damage. A
 * plain memcpy may store a buffer's end before its start; that is how
 * kvrepl's kill -9 test found a follower that would not reopen. */
#define COPY_STEP 32u
_Static_assert(COPY_STEP <= KV__REC_HDR, "a step must not hold a record");

static uint8_t *copy_in_order(uint8_t *dst, const uint8_t *src, size_t n)
{
	for (; n >= COPY_STEP; dst += COPY_STEP, src += COPY_STEP,
	       n -= COPY_STEP) {
		memcpy(dst, src, COPY_STEP);
		atomic_signal_fence(memory_order_seq_cst);
	}
	memcpy(dst, src, n);
	atomic_signal_fence(memory_order_seq_cst);
	return dst + n;
}

/*
 * Starts taking the cache lines the next append will store to, with
 * intent to write, while the rest of this put runs. The page cache's
 * lines are not in this core's cache (the write-back thread faulted the
 * pages in), so a record's stores waited in the store buffer, and the
 * next locked instruction (wlock, klock) waited for them. kvbench
 * fillrandom, 5 alternating pairs: 2,536-2,628 k/s without, 2,624-2,770
 * with; 6 lines from 128 B ahead instead: no better (4 pairs). A
 * prefetch past the map's end is a hint and cannot fault.
 */
static void prefetch_next(const uint8_t *p)
{
	for (size_t i = 0; i < 256; i += 64) { /* four lines */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
		/* PREFETCHW: x86-64 without -mprfchw would emit a read
		 * prefetch; older CPUs run it as a NOP. */
		__asm__ __volatile__("prefetchw %0" : : "m"(p[i]));
#else
		__builtin_prefetch(p + i, 1);
#endif
	}
}

/* Appends into allocated space by copying into the writable map; 0 when
 * it cannot (no map, or writes must go through kv__io for a test). */
static int map_append(kv__seg *s, const struct iovec *iov, int cnt, size_t n)
{
	if (!kv__io.map_appends || !s->map || (s->map_prot & PROT_WRITE) == 0 ||
	    s->size + n > s->map_len)
		return 0;
	uint8_t *p = s->map + s->size;
	for (int i = 0; i < cnt; i++)
		p = copy_in_order(p, iov[i].iov_base, iov[i].iov_len);
	prefetch_next(p);
	return 1;
}

int kv__seg_append(kv__seg *s, struct iovec *iov, int cnt, size_t n,
		   int *broken)
{
	int rc;

	if (s->buf && s->buf_len + n > s->buf_cap && (rc = kv__seg_flush(s)))
		return rc;
	if (s->buf && n <= s->buf_cap) {
		buffer_copy(s, iov, cnt);
	} else {
		int room = prealloc(s, n);
		if (!(room && map_append(s, iov, cnt, n)) &&
		    (rc = write_at(s, iov, cnt, s->size, broken)) != 0)
			return rc;
		atomic_store_explicit(&s->flushed, s->size + n,
				      memory_order_release);
	}
	s->size += n;
	return 0;
}

/* The seal's fsync, on the writer's path, writes what write-back has not
 * started: up to a whole step (7 ms for 8 MiB here). Near the end of the
 * map, where a full segment is sealed, smaller steps leave it little. */
static uint64_t wb_step(const kv__seg *s)
{
	return s->size + KV__WB_STEP >= s->map_len ? KV__WB_TAIL_STEP
						    : KV__WB_STEP;
}

int kv__seg_finished(kv__seg *s, uint64_t *off, uint64_t *len)
{
	uint64_t end = s->size - s->size % wb_step(s);
	uint64_t mapped = end < s->map_len ? end : s->map_len;

	if (!s->prefault || !s->map || end <= s->wb_done)
		return 0;
	/* Every page below end is whole: appends only add bytes past size.
	 * MADV_DONTNEED on a shared file map keeps the data (the page cache
	 * has it, dirty); readers fault it back in. Past the map (appends
	 * that went through pwritev) nothing is mapped to drop. */
	if (mapped > s->wb_done)
		madvise(s->map + s->wb_done, (size_t)(mapped - s->wb_done),
			MADV_DONTNEED);
	*off = s->wb_done;
	*len = end - s->wb_done;
	s->wb_done = end;
	return 1;
}

int kv__seg_set_buffer(kv__seg *s, size_t cap)
{
	if (!(s->buf = malloc(cap)))
		return kv__fail(KV_ENOMEM, "out of memory for the write buffer");
	s->buf_cap = cap;
	return 0;
}

int kv__seg_sync(kv__seg *s)
{
	if (kv__io_fdatasync(s->fd))
		return kv__fail_sys("%s: fdatasync", s->name);
	return 0;
}

int kv__seg_truncate(kv__seg *s, uint64_t len)
{
	int bad = kv__io.ftruncate(s->fd, (off_t)len);

	if (!bad)
		KV__KILLPOINT("seg.truncated");
	if (bad || kv__io_fsync(s->fd))
		return kv__fail_sys("%s: truncate to %" PRIu64 " bytes",
				    s->name, len);
	s->size = len;
	s->alloc_end = 0;
	atomic_store(&s->flushed, len);
	return 0;
}

int kv__seg_trim(kv__seg *s)
{
	/* Sealed: nothing may write through the map any more. */
	if (s->map && (s->map_prot & PROT_WRITE) &&
	    mprotect(s->map, s->map_len, PROT_READ) == 0)
		s->map_prot = PROT_READ;
	return s->alloc_end > s->size ? kv__seg_truncate(s, s->size) : 0;
}
