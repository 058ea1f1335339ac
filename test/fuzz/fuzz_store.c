/* fuzz_store.c - libFuzzer target: open and read a store directory whose
 * files are made from the input. The input is split at the first "\n--\n"
 * separators into a log segment, a compacted segment and its hint file;
 * each open mode (strict, salvage, read-only) must return cleanly, and
 * every read, iteration and verify must too. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void put_file(const char *name, const uint8_t *p, size_t n)
{
	char path[128];
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		abort();
	if (n && write(fd, p, n) != (ssize_t)n)
		abort();
	close(fd);
}

static void clear_dir(void)
{
	const char *names[] = { "0000000000000001.seg",
				"0000000000000002.seg",
				"0000000000000002.hint", "LOCK" };
	char path[128];

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
}

static int count(void *ctx, const void *k, size_t kl, const void *v,
		 size_t vl)
{
	(void)k; (void)kl; (void)v; (void)vl;
	++*(int *)ctx;
	return 0;
}

static void exercise(uint32_t flags)
{
	kv_options o;
	kv_t *db;
	int n = 0;
	void *v;
	size_t vl;

	kv_options_init(&o);
	o.flags = flags | KV_NO_AUTO_COMPACT;
	if (kv_open(dir, &o, &db) != KV_OK)
		return;
	kv_foreach(db, count, &n);
	kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 10, count, &n);
	if (kv_get(db, "k", 1, &v, &vl) == KV_OK)
		kv_free(v);
	kv_verify(db, NULL, NULL, NULL);
	kv_close(db);
}

/* Splits off the next part at "\n--\n". */
static size_t part(const uint8_t *p, size_t n)
{
	const uint8_t *s = memmem(p, n, "\n--\n", 4);

	return s ? (size_t)(s - p) : n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t a, b;

	if (!dir[0]) {
		snprintf(dir, sizeof dir, "/dev/shm/kvfuzz.%d", (int)getpid());
		mkdir(dir, 0700);
	}
	clear_dir();
	a = part(data, size);
	put_file("0000000000000001.seg", data, a);
	if (a + 4 <= size) {
		data += a + 4;
		size -= a + 4;
		b = part(data, size);
		put_file("0000000000000002.seg", data, b);
		if (b + 4 <= size)
			put_file("0000000000000002.hint", data + b + 4,
				 size - b - 4);
	}
	exercise(KV_RDONLY);
	exercise(KV_SALVAGE | KV_RDONLY);
	exercise(0);
	exercise(KV_SALVAGE);
	return 0;
}
