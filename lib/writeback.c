/* writeback.c - the thread that starts write-back ahead of the seal. */
#include "writeback.h"

#include "io.h"

static void *wb_main(void *arg)
{
	kv__wb *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->seg && !w->pf_seg && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->pf_seg) { /* first: the writer is heading there */
			kv__seg *s = w->pf_seg;
			uint64_t from = w->pf_from, to = w->pf_to;
			w->pf_seg = NULL;
			pthread_mutex_unlock(&w->mu);
			kv__seg_prefault(s, from, to);
			kv__seg_unref(s);
			pthread_mutex_lock(&w->mu);
			continue;
		}
		if (!w->seg)
			break;
		kv__seg *s = w->seg;
		uint64_t off = w->off, len = w->len;
		w->seg = NULL;
		pthread_mutex_unlock(&w->mu);
		/* Advice: a failure here is the next fsync's to report. */
		(void)kv__io.writeback(s->fd, (off_t)off, (off_t)len);
		kv__seg_unref(s);
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Starts the thread the first time; 1 when it runs. Under w->mu. */
static int running(kv__wb *w)
{
	if (!w->thread_on && pthread_create(&w->thread, NULL, wb_main, w) == 0)
		w->thread_on = 1;
	return w->thread_on;
}

void kv__wb_prefault(kv_t *db, kv__seg *s, uint64_t from, uint64_t to)
{
	kv__wb *w = &db->wb;
	kv__seg *drop = NULL;

	pthread_mutex_lock(&w->mu);
	if (!running(w)) {
		pthread_mutex_unlock(&w->mu);
		kv__seg_prefault(s, from, to); /* as before the thread */
		return;
	}
	/* One request waits at most, as for write-back: a newer range of
	 * the same segment starts where the waiting one does. */
	if (w->pf_seg == s) {
		from = w->pf_from;
	} else {
		drop = w->pf_seg;
		atomic_fetch_add(&s->refs, 1);
	}
	w->pf_seg = s;
	w->pf_from = from;
	w->pf_to = to;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	kv__seg_unref(drop);
}

void kv__wb_start(kv_t *db, kv__seg *s, uint64_t off, uint64_t len)
{
	kv__wb *w = &db->wb;
	kv__seg *drop = NULL;

	pthread_mutex_lock(&w->mu);
	if (running(w)) {
		/* One request waits at most: a newer one of the same
		 * segment covers it, and of another segment replaces it
		 * (that one was sealed, so its fdatasync wrote it). */
		if (w->seg == s) {
			len += off - w->off;
			off = w->off;
		} else {
			drop = w->seg;
			atomic_fetch_add(&s->refs, 1);
		}
		w->seg = s;
		w->off = off;
		w->len = len;
		pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	kv__seg_unref(drop);
}

void kv__wb_stop(kv_t *db)
{
	kv__wb *w = &db->wb;

	if (!w->thread_on)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	w->thread_on = 0;
}
