/*
 * quickstart.c - the libkv tour: open, put, get, delete, batch, scan,
 * stats, close, reopen. Usage: quickstart DIR (DIR is created).
 * Build against an installed libkv: cc quickstart.c $(pkg-config --cflags --libs libkv)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kv.h>

static int check(int rc, const char *what)
{
	if (rc != KV_OK) {
		fprintf(stderr, "%s: %s (%s)\n", what, kv_strerror(rc),
			kv_errmsg());
		exit(1);
	}
	return rc;
}

static int print_pair(void *ctx, const void *key, size_t klen,
		      const void *val, size_t vlen)
{
	(void)ctx;
	printf("  %.*s = %.*s\n", (int)klen, (const char *)key, (int)vlen,
	       (const char *)val);
	return 0;
}

int main(int argc, char **argv)
{
	kv_options opts;
	kv_t *db;
	kv_batch *b;
	char *val;
	size_t vlen;
	struct kv_stats st = { .size = sizeof st };

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	kv_options_init(&opts);
	opts.flags = KV_CREATE;
	check(kv_open(argv[1], &opts, &db), "open");
	printf("opened %s with libkv %s\n", argv[1], kv_version(NULL, NULL, NULL));

	check(kv_put(db, "fruit:apple", 11, "red", 3), "put");
	check(kv_put(db, "fruit:banana", 12, "yellow", 6), "put");
	check(kv_put(db, "veg:kale", 8, "green", 5), "put");
	check(kv_get(db, "fruit:apple", 11, (void **)&val, &vlen), "get");
	printf("get fruit:apple -> %s (%zu bytes)\n", val, vlen);
	kv_free(val);

	check(kv_delete(db, "veg:kale", 8), "delete");
	printf("after delete, get veg:kale -> %s\n",
	       kv_strerror(kv_get(db, "veg:kale", 8, (void **)&val, &vlen)));

	check(kv_batch_new(&b), "batch");
	check(kv_batch_put(b, "fruit:cherry", 12, "dark red", 8), "batch put");
	check(kv_batch_put(b, "fruit:date", 10, "brown", 5), "batch put");
	check(kv_batch_delete(b, "fruit:banana", 12), "batch delete");
	check(kv_write(db, b), "write");
	kv_batch_free(b);
	printf("batch of 3 written atomically\n");

	printf("scan of prefix \"fruit:\" in key order:\n");
	check(kv_scan(db, NULL, 0, NULL, 0, "fruit:", 6, 0, print_pair, NULL),
	      "scan");

	check(kv_stats(db, &st), "stats");
	printf("stats: %llu live keys, %llu live bytes, %llu dead bytes, "
	       "%llu segment(s)\n", (unsigned long long)st.live_keys,
	       (unsigned long long)st.live_bytes,
	       (unsigned long long)st.dead_bytes,
	       (unsigned long long)st.segments);
	check(kv_close(db), "close");

	opts.flags = 0;
	check(kv_open(argv[1], &opts, &db), "reopen");
	check(kv_get(db, "fruit:cherry", 12, (void **)&val, &vlen), "get");
	printf("after reopen, get fruit:cherry -> %s\n", val);
	kv_free(val);
	check(kv_close(db), "close");
	return 0;
}
