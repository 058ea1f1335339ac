/* writeback.c - the thread that starts write-back ahead of the seal and
 * faults in the pages the writer is about to fill. */
#include "writeback.h"

#include "io.h"

/* A fault request that waited may begin behind the writer by now: a
 * newer one took its start (queue). The pages the writer has passed are
 * in use already, or were dropped from the page table for write-back
 * (kv__seg_finished); faulting those back in would make their write-back
 * write-protect mapped pages, which this thread exists to avoid (found
 * by test_writeback with the thread made to lag). So it begins where the
 * writer is now. */
static void prefault_ahead(kv__seg *s, uint64_t from, uint64_t to)
{
	uint64_t at = atomic_load_explicit(&s->flushed, memory_order_acquire);

	if (at > from)
		from = at;
	if (from < to)
		kv__seg_prefault(s, from, to);
}

/* Takes the waiting request q (under w->mu, which it drops while the
 * request runs). */
static void serve(kv__wb *w, kv__wbreq *q, int fault)
{
	kv__wbreq r = *q;

	q->seg = NULL;
	pthread_mutex_unlock(&w->mu);
	if (fault)
		prefault_ahead(r.seg, r.from, r.to);
	else /* advice: a failure here is the next fsync's to report */
		(void)kv__io.writeback(r.seg->fd, (off_t)r.from,
				       (off_t)(r.to - r.from));
	kv__seg_unref(r.seg);
	pthread_mutex_lock(&w->mu);
}

static void *wb_main(void *arg)
{
	kv__wb *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->back.seg && !w->fault.seg && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->fault.seg) /* first: the writer is heading there */
			serve(w, &w->fault, 1);
		else if (w->back.seg)
			serve(w, &w->back, 0);
		else
			break;
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

/* Queues [from, to) of s as q, of which one waits at most: a newer one of
 * the same segment takes the waiting one's start (it covers it), and of
 * another segment replaces it (that one was sealed: its fdatasync wrote
 * it, and no one writes into it any more). Returns the segment whose
 * reference the caller drops, after w->mu. */
static kv__seg *queue(kv__wb *w, kv__wbreq *q, kv__seg *s, uint64_t from,
		      uint64_t to)
{
	kv__seg *drop = NULL;

	if (q->seg == s) {
		from = q->from;
	} else {
		drop = q->seg;
		atomic_fetch_add(&s->refs, 1);
	}
	*q = (kv__wbreq){ s, from, to };
	pthread_cond_signal(&w->cv);
	return drop;
}

void kv__wb_prefault(kv_t *db, kv__seg *s, uint64_t from, uint64_t to)
{
	kv__wb *w = &db->wb;
	kv__seg *drop = NULL;

	pthread_mutex_lock(&w->mu);
	int on = running(w);
	if (on)
		drop = queue(w, &w->fault, s, from, to);
	pthread_mutex_unlock(&w->mu);
	if (!on)
		kv__seg_prefault(s, from, to); /* as before the thread */
	kv__seg_unref(drop);
}

void kv__wb_start(kv_t *db, kv__seg *s, uint64_t off, uint64_t len)
{
	kv__wb *w = &db->wb;
	kv__seg *drop = NULL;

	pthread_mutex_lock(&w->mu);
	if (running(w))
		drop = queue(w, &w->back, s, off, off + len);
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
