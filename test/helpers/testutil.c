/* testutil.c - temp dirs, fake clock, fault-injecting io, small asserts. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include "io.h"
#include "testutil.h"

uint64_t tu_clock_ms = 1000000;

uint64_t tu_clock(void *ctx)
{
	(void)ctx;
	return tu_clock_ms;
}

char *tu_mkdir(void)
{
	const char *base = getenv("TMPDIR");
	char *p;

	if (!base || !*base)
		base = "/tmp";
	tu_fault_clear(); /* a failed test must not leave faults armed */
	assert_true(asprintf(&p, "%s/kvtest.XXXXXX", base) > 0);
	assert_non_null(mkdtemp(p));
	return p;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void tu_rmdir(char *dir)
{
	if (!dir)
		return;
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

const char *tu_path(const char *dir, const char *name)
{
	static char buf[PATH_MAX];

	snprintf(buf, sizeof buf, "%s/%s", dir, name);
	return buf;
}

const char *tu_seg_path(const char *dir, uint64_t seq)
{
	char name[64];

	snprintf(name, sizeof name, "%016" PRIx64 ".seg", seq);
	return tu_path(dir, name);
}

uint64_t tu_file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

void tu_truncate(const char *path, uint64_t len)
{
	assert_int_equal(truncate(path, (off_t)len), 0);
}

uint64_t tu_disk_bytes(kv_t *db)
{
	struct kv_stats st = { .size = sizeof st };

	assert_int_equal(kv_stats(db, &st), KV_OK);
	return st.disk_bytes;
}

uint8_t tu_peek(const char *path, uint64_t off)
{
	int fd = open(path, O_RDONLY);
	uint8_t b = 0;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	close(fd);
	return b;
}

void tu_poke(const char *path, uint64_t off, uint8_t byte)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &byte, 1, (off_t)off), 1);
	close(fd);
}

void tu_copy_dir(const char *from, const char *to)
{
	DIR *d = opendir(from);
	struct dirent *de;
	char src[PATH_MAX], dst[PATH_MAX];
	static char buf[1 << 16];

	assert_non_null(d);
	mkdir(to, 0755);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(src, sizeof src, "%s/%s", from, de->d_name);
		snprintf(dst, sizeof dst, "%s/%s", to, de->d_name);
		int in = open(src, O_RDONLY), out;
		assert_true(in >= 0);
		out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		assert_true(out >= 0);
		ssize_t n;
		while ((n = read(in, buf, sizeof buf)) > 0)
			assert_int_equal(write(out, buf, (size_t)n), n);
		close(in);
		close(out);
	}
	closedir(d);
}

void tu_options(kv_options *o)
{
	kv_options_init(o);
	/* No background compaction unless a test asks for it: tests that
	 * count segments or poke at files need the store to stay still. */
	o->flags = KV_CREATE | KV_NO_AUTO_COMPACT;
	o->clock = tu_clock;
}

kv_t *tu_open(const char *dir, const kv_options *o)
{
	kv_t *db = NULL;
	int rc = kv_open(dir, o, &db);

	if (rc)
		fail_msg("kv_open(%s): %s: %s", dir, kv_strerror(rc),
			 kv_errmsg());
	return db;
}

int tu_count_pair(void *ctx, const void *k, size_t kl, const void *v,
		  size_t vl)
{
	(void)k; (void)kl; (void)v; (void)vl;
	++*(int *)ctx;
	return 0;
}

int tu_put(kv_t *db, const char *key, const char *val)
{
	return kv_put(db, key, strlen(key), val, strlen(val));
}

void tu_expect(kv_t *db, const char *key, const char *val)
{
	void *v = NULL;
	size_t n = 0;
	int rc = kv_get(db, key, strlen(key), &v, &n);

	if (rc)
		fail_msg("get %s: %s: %s", key, kv_strerror(rc), kv_errmsg());
	assert_int_equal(n, strlen(val));
	assert_memory_equal(v, val, n);
	kv_free(v);
}

void tu_expect_missing(kv_t *db, const char *key)
{
	void *v = NULL;
	size_t n = 0;

	assert_int_equal(kv_get(db, key, strlen(key), &v, &n), KV_ENOTFOUND);
	assert_null(v);
	assert_int_equal(kv_exists(db, key, strlen(key)), KV_ENOTFOUND);
}

int tu_on_progress(void *ctx, uint64_t done, uint64_t total)
{
	tu_prog *p = ctx;

	assert_true(done >= p->last && done <= total);
	p->last = done;
	p->total = total;
	return ++p->calls == p->stop_at;
}

void tu_tmpdir_in_memory(void)
{
	const char *t = getenv("TMPDIR");

	if ((!t || !*t) && access("/dev/shm", W_OK | X_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
}

uint64_t tu_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

/* ---- fault injection ---- */

static struct fault {
	unsigned calls;
	unsigned after;
	int err;
	int armed;
	int persistent;
	int short_write;
} faults[TU_NKINDS];

/* The store's background threads make system calls too. */
static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static void (*fault_hook)(void *);
static void *fault_hook_ctx;

/* Whether this call of kind k must fail; counts the call either way. */
static int trip(enum tu_fault_kind k)
{
	struct fault *f = &faults[k];
	int fire = 0, err = 0;

	pthread_mutex_lock(&fault_mu);
	f->calls++;
	if (f->armed && f->after > 0) {
		f->after--;
	} else if (f->armed) {
		if (!f->persistent)
			f->armed = 0;
		fire = 1;
		err = f->err;
	}
	void (*hook)(void *) = fire ? fault_hook : NULL;
	void *hctx = fault_hook_ctx;
	if (fire)
		fault_hook = NULL;
	pthread_mutex_unlock(&fault_mu);
	if (hook)
		hook(hctx);
	if (fire)
		errno = err;
	return fire;
}

void tu_fault_hook(void (*fn)(void *ctx), void *ctx)
{
	pthread_mutex_lock(&fault_mu);
	fault_hook = fn;
	fault_hook_ctx = ctx;
	pthread_mutex_unlock(&fault_mu);
}

static int f_open(const char *p, int fl, mode_t m)
{
	return trip(TU_OPEN) ? -1 : kv__io_default.open(p, fl, m);
}

static ssize_t f_pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	pthread_mutex_lock(&fault_mu);
	int shortw = faults[TU_PWRITE].short_write;
	pthread_mutex_unlock(&fault_mu);

	if (!trip(TU_PWRITE))
		return kv__io_default.pwritev(fd, iov, cnt, off);
	if (!shortw || iov[0].iov_len < 2)
		return -1;
	/* A short write: half of the first buffer lands now, and the call
	 * that would write the rest fails with the error. */
	pthread_mutex_lock(&fault_mu);
	faults[TU_PWRITE].short_write = 0;
	faults[TU_PWRITE].armed = 1;
	pthread_mutex_unlock(&fault_mu);
	struct iovec half = { iov[0].iov_base, iov[0].iov_len / 2 };
	return kv__io_default.pwritev(fd, &half, 1, off);
}

static ssize_t f_pread(int fd, void *buf, size_t n, off_t off)
{
	return trip(TU_PREAD) ? -1 : kv__io_default.pread(fd, buf, n, off);
}

static int f_fsync(int fd)
{
	struct stat st;
	/* Both kinds count a directory's fsync; either may fail it. */
	int dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
	int fail = dir && trip(TU_FSYNC_DIR);

	fail |= trip(TU_FSYNC);
	return fail ? -1 : kv__io_default.fsync(fd);
}

static int f_fdatasync(int fd)
{
	return trip(TU_FDATASYNC) ? -1 : kv__io_default.fdatasync(fd);
}

static int f_rename(const char *a, const char *b)
{
	return trip(TU_RENAME) ? -1 : kv__io_default.rename(a, b);
}

static int f_unlink(const char *path)
{
	return trip(TU_UNLINK) ? -1 : kv__io_default.unlink(path);
}

static int f_ftruncate(int fd, off_t len)
{
	return trip(TU_FTRUNCATE) ? -1 : kv__io_default.ftruncate(fd, len);
}

static void *f_mmap(void *a, size_t len, int prot, int fl, int fd, off_t off)
{
	return trip(TU_MMAP) ? MAP_FAILED
			     : kv__io_default.mmap(a, len, prot, fl, fd, off);
}

static int f_fallocate(int fd, off_t off, off_t len)
{
	return trip(TU_FALLOCATE) ? -1
				  : kv__io_default.fallocate(fd, off, len);
}

static void install(void)
{
	kv__io.map_appends = 0;
	kv__io.fallocate = f_fallocate;
	kv__io.open = f_open;
	kv__io.pread = f_pread;
	kv__io.pwritev = f_pwritev;
	kv__io.fsync = f_fsync;
	kv__io.fdatasync = f_fdatasync;
	kv__io.rename = f_rename;
	kv__io.ftruncate = f_ftruncate;
	kv__io.unlink = f_unlink;
	kv__io.mmap = f_mmap;
}

void tu_fault(enum tu_fault_kind kind, unsigned after, int err,
	      int persistent)
{
	install();
	pthread_mutex_lock(&fault_mu);
	faults[kind] = (struct fault){ .calls = faults[kind].calls,
				       .after = after, .err = err,
				       .armed = 1, .persistent = persistent };
	pthread_mutex_unlock(&fault_mu);
}

void tu_fault_short_write(unsigned after, int err)
{
	tu_fault(TU_PWRITE, after, err, 0);
	pthread_mutex_lock(&fault_mu);
	faults[TU_PWRITE].short_write = 1;
	pthread_mutex_unlock(&fault_mu);
}

/* Call only with no store open that has a background thread. */
void tu_fault_clear(void)
{
	pthread_mutex_lock(&fault_mu);
	memset(faults, 0, sizeof faults);
	fault_hook = NULL;
	pthread_mutex_unlock(&fault_mu);
	kv__io = kv__io_default;
}

unsigned tu_calls(enum tu_fault_kind kind)
{
	pthread_mutex_lock(&fault_mu);
	unsigned n = faults[kind].calls;
	pthread_mutex_unlock(&fault_mu);
	return n;
}
