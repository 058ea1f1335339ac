/*
 * follower.c - kvrepl follower: keeps a replica (KV_REPLICA) up to date
 * from a primary.
 *
 * It announces its position (HELLO, with a new session number), applies
 * the frames that come back with kv_repl_apply, and acknowledges its
 * position after each burst and with every heartbeat. Anything refused
 * (a damaged frame, a gap, a message of the wrong kind for the state it
 * is in) makes it announce its position again, under a new session, so
 * that everything still in flight from before is dropped unread and the
 * primary resumes right after the last record applied. Messages that fail
 * the envelope's checks (proto.h) are counted and dropped.
 *
 * Socket: one DEALER, connected: asynchronous both ways (data in, acks
 * out, no lock-step as with REQ), and ZeroMQ reconnects it by itself
 * after either side restarts; the follower notices a restart by the
 * silence (no heartbeat for --timeout) or by the primary's WHO, and
 * announces again.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "kvrepl.h"
#include "proto.h"

enum fstate { F_WAIT, F_STREAM, F_SNAP };

static const char *const state_names[] = { "wait", "stream", "snapshot" };

struct follower {
	const struct kr_config *c;
	void *zctx, *sock;
	kv_t *db;
	FILE *trace;
	uint64_t pos;
	uint32_t session;
	enum fstate state;
	int snap_own;      /* the store holds only a snapshot in progress */
	int connected;     /* heard from the primary within --timeout */
	int ack_due;
	uint64_t primary_pos, lag_bytes;
	uint64_t last_rx, last_data, last_hello, last_ack, next_status;
	uint64_t applied, applied_bytes, snapshots, rejected, refused, stale,
		 announces, disconnects;
	uint64_t rejects[KR_NREJECTS];
};

/* ---- the store ---- */

static void log_fn(void *ctx, int level, const char *msg)
{
	if (level <= KV_LOG_WARN)
		kr_say(ctx, "libkv: %s", msg);
}

static int open_store(struct follower *f)
{
	kv_options o;

	kv_options_init(&o);
	o.flags = KV_CREATE | KV_REPLICA;
	o.sync_mode = f->c->sync_mode;
	o.log = log_fn;
	o.log_ctx = (void *)f->c;
	int rc = kv_open(f->c->dir, &o, &f->db);
	if (rc == 0)
		rc = kv_repl_position(f->db, &f->pos);
	return rc;
}

/* Removes a store directory that holds nothing but a snapshot this
 * program was taking (no history of anybody's is lost). */
static int remove_store(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    unlinkat(dirfd(d), e->d_name, 0) != 0)
			rc = -1;
	closedir(d);
	return rc == 0 ? rmdir(dir) : -1;
}

/* Keeps a store that had content, out of the way: DIR.stale-TIME[-N]. */
static int move_aside(const struct kr_config *c)
{
	char to[4096], stamp[32];
	time_t t = time(NULL);
	struct tm tm;

	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", gmtime_r(&t, &tm));
	for (int i = 0; i < 100; i++) {
		int n = i ? snprintf(to, sizeof to, "%s.stale-%s-%d", c->dir,
				     stamp, i)
			  : snprintf(to, sizeof to, "%s.stale-%s", c->dir,
				     stamp);
		if (n < 0 || (size_t)n >= sizeof to)
			break;
		if (access(to, F_OK) == 0)
			continue;
		if (rename(c->dir, to) != 0)
			break;
		kr_say(c, "moved the old replica aside to %s", to);
		return 0;
	}
	kr_say(c, "cannot move %s aside: %s", c->dir, strerror(errno));
	return -1;
}

/* Starts again from an empty replica: the old one is removed if it was
 * only a snapshot in progress, else kept aside. */
static int discard(struct follower *f, const char *why)
{
	kr_say(f->c, "%s: starting from an empty replica", why);
	int rc = kv_close(f->db);
	f->db = NULL;
	if (rc != 0)
		kr_fail_kv(f->c, "close", rc);
	if ((!f->snap_own || remove_store(f->c->dir) != 0) &&
	    move_aside(f->c) != 0)
		return -1;
	f->snap_own = 0;
	f->state = F_WAIT;
	if ((rc = open_store(f)) != 0)
		return kr_fail_kv(f->c, "open", rc);
	return 0;
}

/* ---- sending ---- */

static void send_ack(struct follower *f, uint64_t now)
{
	uint8_t b[8];

	kr_put64(b, f->pos);
	kr_send(f->sock, NULL, 0, KR_ACK, f->session, b, 8, NULL, 0,
		ZMQ_DONTWAIT);
	f->last_ack = now;
	f->ack_due = 0;
}

/* Tells the primary where to resume, under a new session. A snapshot in
 * progress cannot be resumed: it is thrown away first. */
static int announce(struct follower *f, uint64_t now)
{
	uint8_t b[8 + KR_NAME_MAX];
	size_t n = f->c->name ? strlen(f->c->name) : 0;

	if (f->state == F_SNAP && discard(f, "snapshot interrupted"))
		return -1;
	if (n > KR_NAME_MAX)
		n = KR_NAME_MAX;
	if (++f->session == 0)
		f->session = 1;
	f->state = F_WAIT;
	kr_put64(b, f->pos);
	if (n)
		memcpy(b + 8, f->c->name, n);
	kr_send(f->sock, NULL, 0, KR_HELLO, f->session, b, 8 + n, NULL, 0,
		ZMQ_DONTWAIT);
	f->last_hello = f->last_data = now;
	f->announces++;
	return 0;
}

/* ---- applying ---- */

/* A frame the replica refused: said for the first few and then at powers
 * of two, counted always; the stream resumes after the position. */
static int refuse(struct follower *f, const char *what, int rc, uint64_t now)
{
	f->refused++;
	if (f->refused <= 8 || (f->refused & (f->refused - 1)) == 0)
		kr_say(f->c, "%s refused (%s: %s), %" PRIu64 " so far; "
		       "resuming after position %" PRIu64, what,
		       kv_strerror(rc), rc ? kv_errmsg() : "unexpected here",
		       f->refused, f->pos);
	return announce(f, now);
}

/* Errors that say the frame was bad, not the store. */
static int frame_error(int rc)
{
	return rc == KV_ECORRUPT || rc == KV_EGAP || rc == KV_ETOOBIG ||
	       rc == KV_EINVAL;
}

static int apply_data(struct follower *f, const struct kr_msg *m,
		      uint64_t now)
{
	uint64_t old = f->pos;

	if (f->state == F_SNAP)
		return refuse(f, "data frame during a snapshot", 0, now);
	int rc = kv_repl_apply(f->db, m->body + 16, m->len - 16);
	if (rc == 0)
		rc = kv_repl_position(f->db, &f->pos);
	if (frame_error(rc))
		return refuse(f, "data frame", rc, now);
	if (rc != 0)
		return kr_fail_kv(f->c, "apply", rc);
	f->state = F_STREAM;
	f->last_data = now;
	f->applied += f->pos - old;
	f->applied_bytes += m->len - 16;
	f->ack_due = 1;
	if (f->trace && f->pos != old)
		fprintf(f->trace, "%" PRIu64 " %" PRIu64 "\n", kr_realtime_ns(),
			f->pos);
	return 0;
}

static int snap_begin(struct follower *f, uint64_t now)
{
	struct kv_stats st = { .size = sizeof st };

	if (f->state == F_SNAP)
		return refuse(f, "second snapshot start", 0, now);
	int rc = kv_stats(f->db, &st);
	if (rc == 0 && (f->pos != 0 || st.live_keys || st.last_lsn) &&
	    discard(f, "a snapshot is coming and the replica is not empty"))
		return -1;
	if (rc == 0)
		rc = kv_repl_snapshot_begin(f->db);
	if (rc != 0)
		return kr_fail_kv(f->c, "snapshot begin", rc);
	kr_say(f->c, "taking a snapshot");
	f->state = F_SNAP;
	f->snap_own = 1;
	f->last_data = now;
	return 0;
}

static int snap_frame(struct follower *f, const struct kr_msg *m,
		      uint64_t now)
{
	if (f->state != F_SNAP)
		return refuse(f, "snapshot frame out of a snapshot", 0, now);
	int rc = kv_repl_apply(f->db, m->body + 8, m->len - 8);
	if (frame_error(rc))
		return refuse(f, "snapshot frame", rc, now);
	if (rc != 0)
		return kr_fail_kv(f->c, "apply", rc);
	f->last_data = now;
	f->applied_bytes += m->len - 8;
	return 0;
}

static int snap_end(struct follower *f, const struct kr_msg *m, uint64_t now)
{
	if (f->state != F_SNAP)
		return refuse(f, "snapshot end out of a snapshot", 0, now);
	int rc = kv_repl_snapshot_end(f->db, kr_get64(m->body));
	if (rc == 0)
		rc = kv_repl_position(f->db, &f->pos);
	if (rc != 0)
		return kr_fail_kv(f->c, "snapshot end", rc);
	f->state = F_STREAM;
	f->snap_own = 0;
	f->snapshots++;
	f->ack_due = 1;
	kr_say(f->c, "snapshot taken: position %" PRIu64, f->pos);
	return 0;
}

/* ---- receiving ---- */

static int handle(struct follower *f, const void *buf, size_t n,
		  uint64_t now)
{
	struct kr_msg m;
	int why = kr_parse(buf, n, &m);

	if (why) {
		f->rejected++;
		f->rejects[why - 1]++;
		return 0;
	}
	f->last_rx = now;
	if (!f->connected) {
		f->connected = 1;
		kr_say(f->c, "primary is there");
	}
	switch (m.type) {
	case KR_HEARTBEAT:
		f->primary_pos = kr_get64(m.body);
		f->lag_bytes = kr_get64(m.body + 16);
		/* The primary does not know this session: the HELLO was
		 * lost (or it restarted); say it again. */
		if (m.session != f->session)
			return now - f->last_hello >= f->c->heartbeat_ms ?
			       announce(f, now) : 0;
		/* It knows the session: a follower with nothing to catch up
		 * on gets no data, and is streaming all the same. */
		if (f->state == F_WAIT && f->primary_pos <= f->pos)
			f->state = F_STREAM;
		return 0;
	case KR_WHO:
		if (now - f->last_hello >= f->c->heartbeat_ms / 2)
			return announce(f, now);
		return 0;
	case KR_HELLO:
	case KR_ACK:
		f->rejected++;
		f->rejects[KR_R_TYPE]++;
		return 0;
	default:
		break;
	}
	if (m.session != f->session) {
		f->stale++;     /* sent before the last announce */
		return 0;
	}
	switch (m.type) {
	case KR_DATA: return apply_data(f, &m, now);
	case KR_SNAP_BEGIN: return snap_begin(f, now);
	case KR_SNAP: return snap_frame(f, &m, now);
	default: return snap_end(f, &m, now);
	}
}

static int receive(struct follower *f, uint64_t now)
{
	for (int k = 0; k < 4096; k++) {
		zmq_msg_t msg;
		int rc = 0;

		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, f->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&msg);
			break;
		}
		if (zmq_msg_more(&msg)) {       /* not ours: drain it */
			f->rejected++;
			f->rejects[KR_R_BODY]++;
			while (zmq_msg_more(&msg) &&
			       zmq_msg_recv(&msg, f->sock, 0) >= 0)
				;
		} else {
			rc = handle(f, zmq_msg_data(&msg), zmq_msg_size(&msg),
				    now);
		}
		zmq_msg_close(&msg);
		if (rc != 0)
			return rc;
	}
	if (f->ack_due)
		send_ack(f, now);
	return 0;
}

/* ---- time ---- */

static void status(struct follower *f)
{
	uint64_t lag = f->primary_pos > f->pos ? f->primary_pos - f->pos : 0;

	printf("kvrepl: follower position=%" PRIu64 " primary=%" PRIu64
	       " lag_records=%" PRIu64 " lag_bytes=%" PRIu64 " state=%s"
	       " connected=%d applied=%" PRIu64 " applied_bytes=%" PRIu64
	       " snapshots=%" PRIu64 " rejected=%" PRIu64 " refused=%" PRIu64
	       " stale=%" PRIu64 " announces=%" PRIu64 "\n", f->pos,
	       f->primary_pos, lag, f->lag_bytes, state_names[f->state],
	       f->connected, f->applied, f->applied_bytes, f->snapshots,
	       f->rejected, f->refused, f->stale, f->announces);
	fflush(stdout);
	if (f->trace)
		fflush(f->trace);
}

static int tick(struct follower *f, uint64_t now)
{
	const struct kr_config *c = f->c;

	if (f->connected && now - f->last_rx > c->timeout_ms) {
		f->connected = 0;
		f->disconnects++;
		kr_say(c, "no word from the primary for %" PRIu64 " ms",
		       now - f->last_rx);
		if (announce(f, now))
			return -1;
	}
	/* Keep announcing while the primary is away, while an announce
	 * went unanswered, or when the stream stalls behind the primary's
	 * position (a lost frame). */
	if (now - f->last_hello >= c->heartbeat_ms &&
	    (!f->connected ||
	     (f->state != F_STREAM && now - f->last_data > c->timeout_ms) ||
	     (f->state == F_STREAM && f->primary_pos > f->pos &&
	      now - f->last_data > c->timeout_ms)) &&
	    announce(f, now))
		return -1;
	if (now - f->last_ack >= c->heartbeat_ms)
		send_ack(f, now);
	if (c->status_ms && now >= f->next_status) {
		status(f);
		f->next_status = now + c->status_ms;
	}
	return 0;
}

static long wait_ms(const struct follower *f, uint64_t now)
{
	uint64_t next = f->last_ack + f->c->heartbeat_ms;

	if (f->c->status_ms && f->next_status < next)
		next = f->next_status;
	return next > now ? (long)(next - now) : 0;
}

/* ---- setup ---- */

static int setup(struct follower *f)
{
	int one = 1, zero = 0, ivl = 100, ivl_max = 1000;
	int64_t maxmsg = (int64_t)f->c->max_message;

	if (!(f->zctx = zmq_ctx_new()) ||
	    !(f->sock = zmq_socket(f->zctx, ZMQ_DEALER))) {
		kr_say(f->c, "zmq: %s", zmq_strerror(errno));
		return -1;
	}
	/* Queue nothing for a primary that is not connected: an old HELLO
	 * delivered late would only start a stream nobody wants. */
	zmq_setsockopt(f->sock, ZMQ_IMMEDIATE, &one, sizeof one);
	zmq_setsockopt(f->sock, ZMQ_LINGER, &zero, sizeof zero);
	zmq_setsockopt(f->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
	zmq_setsockopt(f->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
	zmq_setsockopt(f->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max,
		       sizeof ivl_max);
	if (zmq_connect(f->sock, f->c->endpoint) != 0) {
		kr_say(f->c, "connect %s: %s", f->c->endpoint,
		       zmq_strerror(errno));
		return -1;
	}
	return 0;
}

static int start(struct follower *f)
{
	int rc = open_store(f);

	if (rc == KV_ESNAPSHOT) {
		/* Marked as taking a snapshot (kv_repl_snapshot_begin(3)):
		 * what it holds is part of a snapshot, nothing more. */
		f->snap_own = 1;
		if (discard(f, "the last snapshot was interrupted"))
			return -1;
		rc = 0;
	}
	if (rc != 0)
		return kr_fail_kv(f->c, "open", rc);
	if (f->c->trace && !(f->trace = fopen(f->c->trace, "a"))) {
		kr_say(f->c, "%s: %s", f->c->trace, strerror(errno));
		return -1;
	}
	kr_say(f->c, "replica at position %" PRIu64, f->pos);
	f->session = (uint32_t)(kr_realtime_ns() ^ (uint64_t)getpid() << 16);
	return setup(f);
}

int kr_follower(const struct kr_config *c)
{
	struct follower f = { .c = c };
	int code = KR_EXIT_FAIL;

	if (start(&f) == 0) {
		code = KR_EXIT_OK;
		announce(&f, kr_now_ms());
		while (!kr_stop) {
			if (kr_wait_in(c, f.sock, wait_ms(&f, kr_now_ms()))) {
				code = KR_EXIT_FAIL;
				break;
			}
			uint64_t now = kr_now_ms();
			if (receive(&f, now) || tick(&f, now)) {
				code = KR_EXIT_FAIL;
				break;
			}
		}
		if (c->status_ms)
			status(&f);
	}
	if (f.trace && fclose(f.trace) != 0)
		code = KR_EXIT_FAIL;
	if (f.sock)
		zmq_close(f.sock);
	if (f.zctx)
		zmq_ctx_term(f.zctx);
	if (f.db && kv_close(f.db) != 0)
		code = kr_fail_kv(c, "close", KV_EIO);
	return code;
}
