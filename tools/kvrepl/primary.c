/*
 * primary.c - kvrepl primary: serves the log of a store that another
 * process writes to every follower that connects.
 *
 * The store is opened read-only (no lock: the application keeps writing)
 * and brought up to date with kv_refresh every --poll ms. Each follower
 * announces its position (HELLO); the primary then streams kv_repl_read
 * frames from there, at most --window bytes ahead of what the follower
 * acknowledged, or, when the log no longer holds what it needs
 * (KV_ESNAPSHOT), sends a snapshot and streams on from its position.
 *
 * Sockets: one ROUTER, so that each follower is addressed on its own
 * (its own position, window and session) through one bound endpoint;
 * with ZMQ_ROUTER_MANDATORY a send to a follower whose queue is full
 * fails with EAGAIN instead of being dropped silently, and the stream to
 * that follower simply resumes later from what was queued. (PUB/SUB would
 * drop silently and has no way back from followers; REQ/REP would force
 * one message in flight.)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "kvrepl.h"
#include "proto.h"

#define ID_MAX 256              /* ZeroMQ routing ids are at most 255 B */

/* Frames sent and not yet acknowledged: for the window and lag_bytes. */
struct sent_frame {
	uint64_t last, bytes;
};

struct peer {
	uint8_t id[ID_MAX];
	size_t idlen;
	char name[KR_NAME_MAX + 1];
	uint32_t session;
	uint64_t acked;            /* the follower's applied position */
	uint64_t sent;             /* streamed up to here */
	uint64_t last_rx, last_hb; /* ms */
	struct sent_frame *q;      /* in flight, oldest first from qhead */
	size_t qhead, qn, qcap;
	uint64_t qbytes;
	uint64_t snapshots;
	int gone;                  /* a send found it unreachable */
};

struct primary {
	const struct kr_config *c;
	void *zctx, *sock;
	kv_t *db;
	uint64_t pos;              /* the view's position */
	struct peer **peers;
	size_t npeers;
	uint64_t frames, bytes, snapshots, refreshes, rejected;
	uint64_t next_poll, next_status;
	int failing;               /* the last refresh failed (said once) */
};

/* Return values of the send callbacks that stop kv_repl_read. */
enum { STOP_WINDOW = 1, STOP_GONE = 2 };

/* ---- the view of the store ---- */

static void quiet_log(void *ctx, int level, const char *msg)
{
	/* A read-only open of a store being written sees torn tails and
	 * such all the time: only errors are worth a line. */
	if (level == KV_LOG_ERROR)
		kr_say(ctx, "libkv: %s", msg);
}

/* Opens the store read-only; an open that races a compaction in the
 * writer can fail (it listed a segment the compaction then deleted), so
 * it is tried a few times. */
static int open_view(struct primary *p)
{
	kv_options o;
	int rc = KV_EIO;

	kv_options_init(&o);
	o.flags = KV_RDONLY;
	o.log = quiet_log;
	o.log_ctx = (void *)p->c;
	for (int i = 0; i < 50; i++) {
		rc = kv_open(p->c->dir, &o, &p->db);
		if (rc != KV_EIO && rc != KV_ECORRUPT)
			break;
		usleep(2000);
	}
	if (rc == 0)
		rc = kv_repl_position(p->db, &p->pos);
	return rc == 0 ? 0 : kr_fail_kv(p->c, "open (read-only)", rc);
}

/* Picks up the writer's appends, new segments and compactions. On a
 * failure the last view is served meanwhile (said once). */
static void refresh(struct primary *p)
{
	int rc = kv_refresh(p->db);

	if (rc == 0)
		rc = kv_repl_position(p->db, &p->pos);
	if (rc != 0) {
		if (!p->failing)
			kr_fail_kv(p->c, "refresh; serving the last view "
				   "meanwhile", rc);
		p->failing = 1;
		return;
	}
	if (p->failing)
		kr_say(p->c, "refresh works again");
	p->failing = 0;
	p->refreshes++;
}

/* ---- followers ---- */

static struct peer *find_peer(struct primary *p, const void *id, size_t n)
{
	for (size_t i = 0; i < p->npeers; i++)
		if (p->peers[i]->idlen == n &&
		    memcmp(p->peers[i]->id, id, n) == 0)
			return p->peers[i];
	return NULL;
}

static struct peer *add_peer(struct primary *p, const void *id, size_t n)
{
	struct peer **v = realloc(p->peers, (p->npeers + 1) * sizeof *v);
	struct peer *f = calloc(1, sizeof *f);

	if (v)
		p->peers = v;
	if (!v || !f || n > ID_MAX) {
		free(f);
		return NULL;
	}
	memcpy(f->id, id, n);
	f->idlen = n;
	p->peers[p->npeers++] = f;
	return f;
}

static void drop_peer(struct primary *p, size_t i, const char *why)
{
	struct peer *f = p->peers[i];

	kr_say(p->c, "follower %s: %s; dropped at position %" PRIu64,
	       f->name, why, f->acked);
	free(f->q);
	free(f);
	p->peers[i] = p->peers[--p->npeers];
}

static void clear_sent(struct peer *f)
{
	f->qhead = f->qn = 0;
	f->qbytes = 0;
}

static int push_sent(struct peer *f, uint64_t last, uint64_t bytes)
{
	if (f->qhead > 0 && f->qn == f->qcap) {
		memmove(f->q, f->q + f->qhead,
			(f->qn - f->qhead) * sizeof *f->q);
		f->qn -= f->qhead;
		f->qhead = 0;
	}
	if (f->qn == f->qcap) {
		size_t cap = f->qcap ? 2 * f->qcap : 64;
		struct sent_frame *q = realloc(f->q, cap * sizeof *q);
		if (!q)
			return -1;
		f->q = q;
		f->qcap = cap;
	}
	f->q[f->qn++] = (struct sent_frame){ last, bytes };
	f->qbytes += bytes;
	return 0;
}

static void acked(struct peer *f, uint64_t pos)
{
	if (pos > f->acked)
		f->acked = pos;
	while (f->qhead < f->qn && f->q[f->qhead].last <= f->acked)
		f->qbytes -= f->q[f->qhead++].bytes;
	if (f->qhead == f->qn)
		f->qhead = f->qn = 0;
	if (f->sent < f->acked)
		f->sent = f->acked;
}

static void hello(struct primary *p, struct peer *f, const struct kr_msg *m)
{
	size_t n = m->len - 8;

	memcpy(f->name, m->body + 8, n);
	f->name[n] = '\0';
	for (size_t i = 0; i < n; i++)     /* printable in status lines */
		if (f->name[i] <= ' ' || f->name[i] > '~')
			f->name[i] = '_';
	if (!n)
		snprintf(f->name, sizeof f->name, "%p", (void *)f);
	f->session = m->session;
	f->acked = f->sent = kr_get64(m->body);
	clear_sent(f);
	kr_say(p->c, "follower %s: announced position %" PRIu64
	       " (session %" PRIu32 ")", f->name, f->acked, f->session);
}

/* ---- sending ---- */

struct send_ctx {
	struct primary *p;
	struct peer *f;
};

static int send_to(struct primary *p, struct peer *f, unsigned type,
		   const void *b1, size_t n1, const void *b2, size_t n2,
		   int flags)
{
	if (kr_send(p->sock, f->id, f->idlen, type, f->session, b1, n1, b2,
		    n2, flags) == 0)
		return 0;
	if (errno != EAGAIN)
		f->gone = 1;
	return -1;
}

static int send_data(void *ctx, uint64_t first, uint64_t last,
		     const void *bytes, size_t len)
{
	struct send_ctx *s = ctx;
	uint8_t b[16];

	kr_put64(b, first);
	kr_put64(b + 8, last);
	if (send_to(s->p, s->f, KR_DATA, b, 16, bytes, len, ZMQ_DONTWAIT))
		return s->f->gone ? STOP_GONE : STOP_WINDOW;
	s->f->sent = last;
	s->p->frames++;
	s->p->bytes += len;
	if (push_sent(s->f, last, len) != 0)
		return KV_ENOMEM;
	return s->f->qbytes >= s->p->c->window ? STOP_WINDOW : 0;
}

/* Snapshot frames go with blocking sends (ZMQ_SNDTIMEO = --timeout): the
 * whole snapshot must arrive, and a follower that stops reading for that
 * long is dropped. */
static int send_snap(void *ctx, uint64_t first, uint64_t last,
		     const void *bytes, size_t len)
{
	struct send_ctx *s = ctx;
	uint8_t b[8];

	(void)first;
	kr_put64(b, last);
	if (send_to(s->p, s->f, KR_SNAP, b, 8, bytes, len, 0)) {
		s->f->gone = 1;
		return STOP_GONE;
	}
	s->p->bytes += len;
	return 0;
}

static void send_snapshot(struct primary *p, struct peer *f)
{
	struct send_ctx s = { p, f };
	uint64_t pos = 0;
	uint8_t b[8];

	kr_say(p->c, "follower %s: position %" PRIu64 " is no longer in the "
	       "log: sending a snapshot", f->name, f->sent);
	if (send_to(p, f, KR_SNAP_BEGIN, NULL, 0, NULL, 0, 0)) {
		f->gone = 1;
		return;
	}
	int rc = kv_repl_snapshot(p->db, p->c->max_frame, send_snap, &s, &pos);
	if (rc != 0) {
		if (rc != STOP_GONE)
			kr_fail_kv(p->c, "snapshot", rc);
		f->gone = 1;    /* it re-announces and gets another one */
		return;
	}
	kr_put64(b, pos);
	if (send_to(p, f, KR_SNAP_END, b, 8, NULL, 0, 0)) {
		f->gone = 1;
		return;
	}
	f->sent = pos;
	clear_sent(f);
	f->snapshots++;
	p->snapshots++;
	kr_say(p->c, "follower %s: snapshot at position %" PRIu64 " sent",
	       f->name, pos);
}

/* Streams what the follower has not been sent yet, within its window. */
static void serve(struct primary *p, struct peer *f)
{
	struct send_ctx s = { p, f };

	if (f->sent > p->pos) {
		/* Ahead of this view: look again before deciding that the
		 * follower holds writes the store lost. */
		refresh(p);
		if (f->sent > p->pos) {
			send_snapshot(p, f);
			return;
		}
	}
	if (f->sent == p->pos || f->qbytes >= p->c->window)
		return;
	int rc = kv_repl_read(p->db, f->sent, p->c->max_frame, send_data, &s);
	if (rc == 0 || rc == STOP_WINDOW || rc == STOP_GONE)
		return;
	/* KV_EINVAL: a position inside a batch, which no replica of this
	 * store can hold; rebuild it too. */
	if (rc == KV_ESNAPSHOT || rc == KV_EINVAL) {
		send_snapshot(p, f);
		return;
	}
	kr_fail_kv(p->c, "read the log", rc);
	f->gone = 1;    /* it announces again after --timeout */
}

static void heartbeat(struct primary *p, struct peer *f, uint64_t now)
{
	uint8_t b[24];

	if (now - f->last_hb < p->c->heartbeat_ms)
		return;
	kr_put64(b, p->pos);
	kr_put64(b + 8, f->acked);
	kr_put64(b + 16, f->qbytes);
	send_to(p, f, KR_HEARTBEAT, b, 24, NULL, 0, ZMQ_DONTWAIT);
	f->last_hb = now;
}

/* ---- receiving ---- */

static void handle(struct primary *p, const void *id, size_t idlen,
		   const void *buf, size_t n, uint64_t now)
{
	struct kr_msg m;
	struct peer *f = find_peer(p, id, idlen);

	if (kr_parse(buf, n, &m) != 0 ||
	    (m.type != KR_HELLO && m.type != KR_ACK)) {
		p->rejected++;
		return;
	}
	if (m.type == KR_HELLO) {
		if (!f && !(f = add_peer(p, id, idlen)))
			return;
		hello(p, f, &m);
	} else if (!f) {
		/* An ack from a follower this process does not know (it
		 * restarted, or dropped the follower): ask it to announce. */
		kr_send(p->sock, id, idlen, KR_WHO, m.session, NULL, 0, NULL,
			0, ZMQ_DONTWAIT);
		return;
	} else if (m.session == f->session) {
		acked(f, kr_get64(m.body));
	}
	f->last_rx = now;
}

/* One message: a routing id frame and one body frame. */
static void receive(struct primary *p, uint64_t now)
{
	for (int k = 0; k < 4096; k++) {
		zmq_msg_t id, body;
		int more = 0;

		zmq_msg_init(&id);
		zmq_msg_init(&body);
		if (zmq_msg_recv(&id, p->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&id);
			zmq_msg_close(&body);
			return;
		}
		if (zmq_msg_more(&id) && zmq_msg_recv(&body, p->sock, 0) >= 0)
			more = zmq_msg_more(&body);
		if (more) {    /* extra frames: not ours; drain them */
			p->rejected++;
			while (more && zmq_msg_recv(&body, p->sock, 0) >= 0)
				more = zmq_msg_more(&body);
		} else {
			handle(p, zmq_msg_data(&id), zmq_msg_size(&id),
			       zmq_msg_data(&body), zmq_msg_size(&body), now);
		}
		zmq_msg_close(&id);
		zmq_msg_close(&body);
	}
}

/* ---- status ---- */

static void status(struct primary *p)
{
	printf("kvrepl: primary position=%" PRIu64 " followers=%zu frames=%"
	       PRIu64 " bytes=%" PRIu64 " snapshots=%" PRIu64 " rejected=%"
	       PRIu64 " refreshes=%" PRIu64 "\n", p->pos, p->npeers, p->frames,
	       p->bytes, p->snapshots, p->rejected, p->refreshes);
	for (size_t i = 0; i < p->npeers; i++) {
		struct peer *f = p->peers[i];
		printf("kvrepl: primary follower=%s acked=%" PRIu64
		       " lag_records=%" PRIu64 " lag_bytes=%" PRIu64
		       " snapshots=%" PRIu64 "\n", f->name, f->acked,
		       p->pos > f->acked ? p->pos - f->acked : 0, f->qbytes,
		       f->snapshots);
	}
	fflush(stdout);
}

/* ---- the loop ---- */

static int setup(struct primary *p)
{
	int one = 1, zero = 0, tmo = (int)p->c->timeout_ms, small = 4096;
	char ep[256];
	size_t n = sizeof ep;

	if (!(p->zctx = zmq_ctx_new()) ||
	    !(p->sock = zmq_socket(p->zctx, ZMQ_ROUTER))) {
		kr_say(p->c, "zmq: %s", zmq_strerror(errno));
		return -1;
	}
	int64_t maxmsg = small;    /* followers send only small messages */
	zmq_setsockopt(p->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
	zmq_setsockopt(p->sock, ZMQ_LINGER, &zero, sizeof zero);
	zmq_setsockopt(p->sock, ZMQ_SNDTIMEO, &tmo, sizeof tmo);
	zmq_setsockopt(p->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
	if (zmq_bind(p->sock, p->c->endpoint) != 0) {
		kr_say(p->c, "bind %s: %s", p->c->endpoint,
		       zmq_strerror(errno));
		return -1;
	}
	/* With a wildcard port, this says which one was taken. */
	if (zmq_getsockopt(p->sock, ZMQ_LAST_ENDPOINT, ep, &n) == 0) {
		printf("kvrepl: primary listening on %s\n", ep);
		fflush(stdout);
	}
	return 0;
}

static void tick(struct primary *p, uint64_t now)
{
	if (now >= p->next_poll) {
		refresh(p);
		p->next_poll = now + p->c->poll_ms;
	}
	for (size_t i = 0; i < p->npeers;) {
		struct peer *f = p->peers[i];
		if (!f->gone)
			serve(p, f);
		if (!f->gone)
			heartbeat(p, f, now);
		if (f->gone)
			drop_peer(p, i, "unreachable");
		else if (now - f->last_rx > p->c->timeout_ms)
			drop_peer(p, i, "silent past the timeout");
		else
			i++;
	}
	if (p->c->status_ms && now >= p->next_status) {
		status(p);
		p->next_status = now + p->c->status_ms;
	}
}

static long wait_ms(const struct primary *p, uint64_t now)
{
	uint64_t next = p->next_poll;

	if (p->c->heartbeat_ms < next - now)
		next = now + p->c->heartbeat_ms;
	if (p->c->status_ms && p->next_status < next)
		next = p->next_status;
	return next > now ? (long)(next - now) : 0;
}

int kr_primary(const struct kr_config *c)
{
	struct primary p = { .c = c };
	int status_code = KR_EXIT_FAIL;

	if (open_view(&p) == 0 && setup(&p) == 0) {
		status_code = KR_EXIT_OK;
		while (!kr_stop) {
			if (kr_wait_in(c, p.sock, wait_ms(&p, kr_now_ms()))) {
				status_code = KR_EXIT_FAIL;
				break;
			}
			uint64_t now = kr_now_ms();
			receive(&p, now);
			tick(&p, now);
		}
	}
	if (c->status_ms && p.sock)
		status(&p);
	while (p.npeers)
		drop_peer(&p, p.npeers - 1, "primary stopping");
	free(p.peers);
	if (p.sock)
		zmq_close(p.sock);
	if (p.zctx)
		zmq_ctx_term(p.zctx);
	if (kv_close(p.db) != 0 && status_code == KR_EXIT_OK)
		status_code = kr_fail_kv(c, "close", KV_EIO);
	return status_code;
}
