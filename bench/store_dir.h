/*
 * store_dir.h - removing a store a bench program made: the files in the
 * directory, then the directory. For the standalone measurement programs
 * (fill_stalls, compress_speed); kvbench has its own recursive rm_rf.
 */
#ifndef KV_BENCH_STORE_DIR_H
#define KV_BENCH_STORE_DIR_H

#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

static inline void bench_remove_store(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];

	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) <
		    (int)sizeof path)
			unlink(path);
	}
	if (d)
		closedir(d);
	if (rmdir(dir) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

#endif
