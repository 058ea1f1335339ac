/* fuzz_frame.c - libFuzzer target: frames from a peer, untrusted. The
 * input is split at "\n--\n" into frames given in turn to kv_repl_apply
 * of an empty replica; a first part starting with "S" is applied as a
 * snapshot instead (begin, the frames, end at the highest LSN seen).
 * Whatever the bytes, nothing wrong may be applied: every record the
 * replica then holds passes kv_verify, and a reopen finds the same
 * position. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

/* Empties dir/store (files only: a store has no subdirectories). */
static void clear_dir(void)
{
	char path[128], file[400];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof path, "%s/store", dir);
	if (!(d = opendir(path)))
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(file, sizeof file, "%s/%s", path, de->d_name);
		unlink(file);
	}
	closedir(d);
}

static kv_t *open_replica(void)
{
	char path[128];
	kv_options o;
	kv_t *db;

	snprintf(path, sizeof path, "%s/store", dir);
	kv_options_init(&o);
	o.flags = KV_CREATE | KV_REPLICA | KV_NO_AUTO_COMPACT;
	o.max_file_size = 4096;
	if (kv_open(path, &o, &db) != KV_OK)
		abort();
	return db;
}

/* Splits off the next part at "\n--\n". */
static size_t part(const uint8_t *p, size_t n)
{
	const uint8_t *s = memmem(p, n, "\n--\n", 4);

	return s ? (size_t)(s - p) : n;
}

/* The highest LSN among the records a frame starts with, when they read
 * as records at all (for ending a snapshot). */
static uint64_t top_lsn(const uint8_t *p, size_t n, uint64_t top)
{
	while (n >= 32) {
		uint64_t lsn;
		uint32_t klen = (uint32_t)p[6] | (uint32_t)p[7] << 8, vlen;
		memcpy(&vlen, p + 8, 4);
		memcpy(&lsn, p + 16, 8);
		if (lsn > top && lsn < (UINT64_C(1) << 62))
			top = lsn;
		if ((uint64_t)klen + vlen + 32 > n)
			break;
		p += 32 + klen + vlen;
		n -= 32 + (size_t)klen + vlen;
	}
	return top;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t pos = 0, again = 0, top = 0;
	int snap = size > 0 && data[0] == 'S';

	if (!dir[0]) { /* in memory when possible: fsyncs cost nothing */
		snprintf(dir, sizeof dir, "%s/kvfuzz-frame.XXXXXX",
			 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (!mkdtemp(dir))
			abort();
	}
	clear_dir();
	kv_t *db = open_replica();
	if (snap) {
		data++, size--;
		if (kv_repl_snapshot_begin(db) != KV_OK)
			abort();
	}
	while (size > 0) {
		size_t n = part(data, size);
		kv_repl_apply(db, data, n);
		top = top_lsn(data, n, top);
		n = n + 4 <= size ? n + 4 : size;
		data += n;
		size -= n;
	}
	if (snap)
		kv_repl_snapshot_end(db, top);
	if (kv_verify(db, NULL, NULL, NULL) != KV_OK)
		abort(); /* a bad record was written */
	int have = kv_repl_position(db, &pos) == KV_OK;
	if (kv_close(db) != KV_OK)
		abort();
	db = open_replica();
	if (have && (kv_repl_position(db, &again) != KV_OK || again != pos))
		abort(); /* the position did not survive a reopen */
	kv_close(db);
	return 0;
}
