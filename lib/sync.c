/* sync.c - fdatasync policy: group commit and the interval thread. */
#include <errno.h>
#include <sched.h>
#include <time.h>

#include "db.h"
#include "error.h"

int kv__poison(kv_t *db)
{
	/* After a failed fsync the kernel may have dropped the dirty pages and
	 * cleared the error, so a retry could "succeed" over lost data
	 * (PostgreSQL's fsyncgate). Refuse every write until reopen instead. */
	atomic_store(&db->poisoned, 1);
	kv__log(db, KV_LOG_ERROR, "fsync failed; the store refuses writes "
		"until it is reopened: %s", kv_errmsg());
	return KV_EIO;
}

/* The leader's part: sync the active segment up to what was appended when
 * it started. Earlier segments were synced when they were sealed. */
static int lead(kv_t *db, uint64_t *reached)
{
	int rc;

	pthread_mutex_lock(&db->wlock);
	*reached = db->appended;
	rc = db->active ? kv__seg_flush(db->active) : 0;
	kv__seg *s = db->active;
	pthread_mutex_unlock(&db->wlock);
	if (rc == 0 && s)
		rc = kv__seg_sync(s);
	return rc;
}

int kv__sync_to(kv_t *db, uint64_t pos)
{
	kv__sync *sy = &db->sync;
	int rc = 0;

	pthread_mutex_lock(&sy->mu);
	/* Whoever syncs covers every write appended before it started; the
	 * others wait for it and find their position covered. */
	while (sy->synced < pos && !atomic_load(&db->poisoned)) {
		if (sy->busy) {
			sy->waiting++;
			pthread_cond_wait(&sy->cv, &sy->mu);
			sy->waiting--;
			continue;
		}
		sy->busy = 1;
		int others = sy->woken;
		pthread_mutex_unlock(&sy->mu);
		/* Writers the last sync woke are about to append again: let
		 * them, so this sync covers their writes too instead of
		 * leaving them for the next one (4 writers on 2 cores). */
		for (int i = 0; i < others; i++)
			sched_yield();
		uint64_t reached;
		rc = lead(db, &reached);
		pthread_mutex_lock(&sy->mu);
		sy->busy = 0;
		if (rc == 0 && reached > sy->synced)
			sy->synced = reached;
		/* Poisoned before anyone wakes: a waiter must not lead a
		 * new sync that makes writes after the failed one durable
		 * and acknowledged while the failed one is reported lost
		 * (a replica would get a gap). */
		if (rc)
			atomic_store(&db->poisoned, 1);
		sy->woken = sy->waiting;
		pthread_cond_broadcast(&sy->cv);
		if (rc) {
			pthread_mutex_unlock(&sy->mu);
			return kv__poison(db);
		}
	}
	/* A write a successful sync covered is durable, even if a later sync
	 * failed before this thread woke: failing it would report a durable
	 * write as lost, and leave a gap in what the replication hook ships
	 * (test_failed_group_sync_ships_only_acknowledged failed so once in
	 * make torture, after leaders began yielding to the writers they
	 * woke, which makes such late wake-ups likelier). */
	int covered = sy->synced >= pos;
	pthread_mutex_unlock(&sy->mu);
	if (!covered)
		return kv__fail(KV_EIO, "store poisoned by an earlier failed "
				"fsync; reopen it");
	return 0;
}

void kv__deadline(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *interval_main(void *arg)
{
	kv_t *db = arg;
	kv__sync *sy = &db->sync;
	uint32_t ms = db->opts.sync_every;

	pthread_mutex_lock(&sy->mu);
	while (!sy->stop) {
		struct timespec ts;

		kv__deadline(&ts, ms);
		pthread_cond_timedwait(&sy->tick, &sy->mu, &ts);
		if (sy->stop)
			break;
		pthread_mutex_unlock(&sy->mu);
		pthread_mutex_lock(&db->wlock);
		uint64_t pos = db->appended;
		pthread_mutex_unlock(&db->wlock);
		kv__sync_to(db, pos);
		pthread_mutex_lock(&sy->mu);
	}
	pthread_mutex_unlock(&sy->mu);
	return NULL;
}

int kv__sync_init(kv_t *db)
{
	kv__sync *sy = &db->sync;

	sy->synced = db->appended;
	if (db->rdonly || db->opts.sync_mode != KV_SYNC_INTERVAL)
		return 0;
	if ((errno = pthread_create(&sy->thread, NULL, interval_main, db)))
		return kv__fail_sys("cannot start the sync thread");
	sy->thread_on = 1;
	return 0;
}

void kv__sync_stop(kv_t *db)
{
	kv__sync *sy = &db->sync;

	if (sy->thread_on) {
		pthread_mutex_lock(&sy->mu);
		sy->stop = 1;
		pthread_cond_broadcast(&sy->tick);
		pthread_mutex_unlock(&sy->mu);
		pthread_join(sy->thread, NULL);
		sy->thread_on = 0;
	}
}
