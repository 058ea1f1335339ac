/*
 * writeback.h - the kernel's write-back of the active segment, started
 * ahead of the seal from a background thread.
 *
 * Sealing a full segment fdatasyncs it. With appends copied into a shared
 * map and nothing synced before (KV_SYNC_WRITE), that fdatasync wrote all
 * 64 MiB at once, 50-55 ms inside one put (a fifth of kvbench's
 * fillrandom). So each finished 8 MiB stretch of the active segment (1
 * MiB in its last 8 MiB, segment.c wb_step) is handed to a thread that
 * starts its write-back (sync_file_range, SYNC_FILE_RANGE_WRITE), and the
 * seal's fdatasync finds little left: 1.3-1.5 ms for a 64 MiB segment.
 *
 * The writer first drops its own page-table entries for the stretch
 * (kv__seg_finished): write-back must write-protect every mapped dirty
 * page, and with the writer's entries present each page cost a TLB
 * shoot-down interrupting the writer's CPU, which made fillrandom 35%
 * slower instead of faster. Without them the pages are only in the page
 * cache, where readers fault them back in.
 *
 * The same thread faults in, ahead of the writer, the pages it is about
 * to fill (kv__wb_prefault): ~2 us a page on ext4 here, which the writer
 * paid itself before, 15% of its time in kvbench's fillrandom.
 *
 * Durability is not changed by any of this: write-back started here
 * promises nothing, the seal and every sync mode still fdatasync, and a
 * write-back error is kept by the kernel for that next fsync to report.
 */
#ifndef KV_WRITEBACK_H
#define KV_WRITEBACK_H

#include <stdint.h>

#include "db.h"

/* Queues write-back of [off, off + len) of s (the writer, under wlock).
 * Starts the thread the first time; if it cannot, does nothing. */
void kv__wb_start(kv_t *db, kv__seg *s, uint64_t off, uint64_t len);
/* Queues faulting in [from, to) of s's map (kv__seg_prefault), which the
 * thread does before any write-back: the writer is about to fill those
 * pages. Without the thread, does it now. */
void kv__wb_prefault(kv_t *db, kv__seg *s, uint64_t from, uint64_t to);
/* Finishes the queued work and joins the thread (kv_close). */
void kv__wb_stop(kv_t *db);

#endif
