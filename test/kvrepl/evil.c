/*
 * evil.c - T15 evil peer for kvrepl: a fake primary that sends one
 * follower a good stream interleaved with damaged messages.
 *
 *   kvrepl_evil --bind ENDPOINT --dir SRC --records N --messages M
 *               [--seed S] [--bad-pct P] [--frame-bytes B] [--snapshot]
 *
 * It writes N records to a new store SRC (puts of new keys, 3-record
 * batches, deletes of earlier keys: every key written once, so a damaged
 * record applied by mistake could never be overwritten by a good one and
 * would show in the digest), takes the store's history as frames of whole
 * runs (kv_repl_read, up to B bytes each, default 512), and serves them
 * the way a kvrepl primary does (proto.h), except that about P% (default
 * 60) of the M messages it sends
 * are damaged: bit flips with and without a fixed-up envelope CRC,
 * truncations, wrong length fields, garbage, wrong magic, version, type
 * or session, records spliced from other frames, gaps (a later frame),
 * replays (an earlier frame), extra message parts, empty messages.
 * It follows the follower's announces as a primary would (HELLO: resume
 * after that position). After M messages it sends only good frames until
 * the follower acknowledges the last position, then prints
 *   sent=M good=G damaged=D kinds=k0,k1,... digest=HEX position=P
 * and exits 0; the follower's digest must then be the same.
 * With --snapshot it sends a snapshot instead, stopping half-way the
 * first time (snapshot_mode below).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zmq.h>

#include <kv.h>

#include "proto.h"

#define NKINDS 14

static const char *const kind_names[NKINDS] = {
	"flip-fixed", "flip-raw", "cut-fixed", "cut-raw", "length",
	"garbage", "header", "replay", "gap", "wrong-first-last", "splice",
	"session", "multipart", "empty",
};

struct frame {
	uint64_t first, last;
	uint8_t *bytes;
	size_t len;
};

struct evil {
	void *sock;
	uint8_t id[256];
	size_t idlen;
	int have_peer;
	uint32_t session;
	uint64_t acked;
	struct frame *fr;
	size_t nfr, cap, cursor;
	uint64_t final;
	uint64_t rng;
	uint64_t sent, good, damaged, kinds[NKINDS], hellos;
	uint64_t last_hb;
	size_t frame_bytes;
	struct frame *snap;        /* --snapshot: the source's snapshot */
	size_t nsnap, snapcap;
	uint64_t snap_pos;
};

static void die(const char *what)
{
	fprintf(stderr, "kvrepl_evil: %s: %s\n", what, kv_errmsg());
	exit(1);
}

static uint64_t rnd(struct evil *e)
{
	uint64_t x = (e->rng += 0x9e3779b97f4a7c15ull);

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the source store and its history ---- */

static int collect(void *ctx, uint64_t first, uint64_t last,
		   const void *bytes, size_t len)
{
	struct evil *e = ctx;

	if (e->nfr == e->cap) {
		e->cap = e->cap ? 2 * e->cap : 1024;
		e->fr = realloc(e->fr, e->cap * sizeof *e->fr);
	}
	struct frame *f = &e->fr[e->nfr++];
	f->first = first;
	f->last = last;
	f->len = len;
	f->bytes = malloc(len);
	memcpy(f->bytes, bytes, len);
	return 0;
}

static int collect_snap(void *ctx, uint64_t first, uint64_t last,
			const void *bytes, size_t len)
{
	struct evil *e = ctx;

	if (e->nsnap == e->snapcap) {
		e->snapcap = e->snapcap ? 2 * e->snapcap : 1024;
		e->snap = realloc(e->snap, e->snapcap * sizeof *e->snap);
	}
	struct frame *f = &e->snap[e->nsnap++];
	*f = (struct frame){ first, last, malloc(len), len };
	memcpy(f->bytes, bytes, len);
	return 0;
}

static void fill(struct evil *e, const char *dir, uint64_t records)
{
	kv_options o;
	kv_t *db;
	kv_batch *b;
	char key[32], val[128];
	uint64_t nkeys = 0;

	kv_options_init(&o);
	o.flags = KV_CREATE | KV_EXCL | KV_NO_AUTO_COMPACT;
	if (kv_open(dir, &o, &db) || kv_batch_new(&b))
		die("open source");
	for (uint64_t n = 0; n < records;) {
		uint64_t r = rnd(e);
		kv_batch_clear(b);
		int puts = r % 10 == 0 ? 3 : 1;
		if (r % 10 == 1 && nkeys > 10) {
			snprintf(key, sizeof key, "k%08" PRIu64, r % nkeys);
			kv_batch_delete(b, key, strlen(key));
			puts = 0;
		}
		for (int k = 0; k < puts; k++) {
			size_t vlen = 1 + rnd(e) % sizeof val;
			for (size_t i = 0; i < vlen; i++)
				val[i] = (char)rnd(e);
			snprintf(key, sizeof key, "k%08" PRIu64, nkeys++);
			kv_batch_put(b, key, strlen(key), val, vlen);
		}
		int rc = kv_write(db, b);
		if (rc != 0 && rc != KV_ENOTFOUND)
			die("write source");
		n += kv_batch_count(b);
	}
	if (kv_repl_read(db, 0, e->frame_bytes, collect, e) ||
	    kv_repl_position(db, &e->final) ||
	    kv_repl_snapshot(db, e->frame_bytes, collect_snap, e, &e->snap_pos))
		die("read source");
	kv_batch_free(b);
	kv_close(db);
}

/* ---- sending ---- */

static void send_raw(struct evil *e, const void *p, size_t n, int parts)
{
	zmq_send(e->sock, e->id, e->idlen, ZMQ_SNDMORE);
	if (parts > 1)
		zmq_send(e->sock, p, n, ZMQ_SNDMORE);
	zmq_send(e->sock, p, n, 0);
	e->sent++;
}

/* A DATA message for frame f, stamped with session s: header + body. */
static uint8_t *data_msg(const struct frame *f, uint32_t s, size_t *n)
{
	uint8_t b[16];
	uint8_t *m = malloc(KR_HDR + 16 + f->len);

	kr_put64(b, f->first);
	kr_put64(b + 8, f->last);
	memcpy(m + KR_HDR, b, 16);
	memcpy(m + KR_HDR + 16, f->bytes, f->len);
	kr_header(m, KR_DATA, s, b, 16, f->bytes, f->len);
	*n = KR_HDR + 16 + f->len;
	return m;
}

/* Recomputes the envelope over a message whose body was changed. */
static void fix(uint8_t *m, size_t n)
{
	kr_header(m, m[3], kr_get32(m + 4), m + KR_HDR, n - KR_HDR, NULL, 0);
}

static void send_good(struct evil *e)
{
	size_t n;
	uint8_t *m = data_msg(&e->fr[e->cursor++], e->session, &n);

	send_raw(e, m, n, 1);
	free(m);
	e->good++;
}

/* One damaged message of kind k built from the current frame. */
static void send_bad(struct evil *e, unsigned k)
{
	size_t cur = e->cursor < e->nfr ? e->cursor : e->nfr - 1, n;
	uint8_t *m = data_msg(&e->fr[cur], e->session, &n);
	uint8_t junk[300];
	size_t body = KR_HDR + 16;

	switch (k) {
	case 0:         /* flip in the records, envelope fixed up */
		m[body + rnd(e) % (n - body)] ^= (uint8_t)(1u << rnd(e) % 8);
		fix(m, n);
		break;
	case 1:         /* flip anywhere, envelope left */
		m[rnd(e) % n] ^= (uint8_t)(1u << rnd(e) % 8);
		break;
	case 2:         /* records cut, envelope fixed up */
		n = body + 1 + rnd(e) % (n - body - 1);
		kr_put32(m + 8, (uint32_t)(n - KR_HDR));
		fix(m, n);
		break;
	case 3:         /* message cut */
		n = rnd(e) % n;
		break;
	case 4: {       /* length field wrong, CRC computed over it */
		kr_put32(m + 8, (uint32_t)(n - KR_HDR) + 1 +
				(uint32_t)(rnd(e) % 64));
		uLong c = crc32(0L, m, 12);
		c = crc32_z(c, m + KR_HDR, n - KR_HDR);
		kr_put32(m + 12, (uint32_t)c);
		break;
	}
	case 5:         /* garbage */
		n = rnd(e) % sizeof junk;
		for (size_t i = 0; i < n; i++)
			junk[i] = (uint8_t)rnd(e);
		if (n >= 2 && rnd(e) % 2)
			junk[0] = 'K', junk[1] = 'R';
		send_raw(e, junk, n, 1);
		free(m);
		return;
	case 6:         /* magic, version or type wrong */
		m[rnd(e) % 4] ^= (uint8_t)(1 + rnd(e) % 255);
		if (rnd(e) % 2)
			fix(m, n);
		break;
	case 7:         /* replay of an earlier frame */
		free(m);
		m = data_msg(&e->fr[rnd(e) % (cur + 1)], e->session, &n);
		break;
	case 8:         /* gap: a later frame */
		free(m);
		m = data_msg(&e->fr[(cur + 1 + rnd(e) % 5) % e->nfr],
			     e->session, &n);
		break;
	case 9:         /* first/last fields lie (records intact) */
		kr_put64(m + KR_HDR, rnd(e));
		kr_put64(m + KR_HDR + 8, rnd(e));
		fix(m, n);
		break;
	case 10: {      /* another frame's records spliced in */
		const struct frame *o = &e->fr[rnd(e) % e->nfr];
		m = realloc(m, n + o->len);
		size_t at = body + rnd(e) % (n - body + 1);
		memmove(m + at + o->len, m + at, n - at);
		memcpy(m + at, o->bytes, o->len);
		n += o->len;
		kr_put32(m + 8, (uint32_t)(n - KR_HDR));
		fix(m, n);
		break;
	}
	case 11:        /* another session's frame */
		kr_put32(m + 4, e->session ^ (1u + (uint32_t)(rnd(e) % 7)));
		fix(m, n);
		break;
	case 12:        /* extra message part */
		send_raw(e, m, n, 2);
		free(m);
		return;
	default:        /* empty */
		n = 0;
		break;
	}
	send_raw(e, m, n, 1);
	free(m);
}

static void heartbeat(struct evil *e)
{
	uint8_t b[24];

	kr_put64(b, e->final);
	kr_put64(b + 8, e->acked);
	kr_put64(b + 16, 0);
	kr_send(e->sock, e->id, e->idlen, KR_HEARTBEAT, e->session, b, 24,
		NULL, 0, 0);
	e->last_hb = now_ms();
}

/* ---- receiving ---- */

/* The first frame holding LSN pos + 1 (the follower skips the rest). */
static size_t frame_after(const struct evil *e, uint64_t pos)
{
	size_t lo = 0, hi = e->nfr;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (e->fr[mid].last <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Takes what arrived within ms; returns the number of messages. */
static int receive(struct evil *e, long ms)
{
	zmq_pollitem_t it = { e->sock, 0, ZMQ_POLLIN, 0 };
	int got = 0;

	if (zmq_poll(&it, 1, ms) <= 0)
		return 0;
	for (;;) {
		uint8_t id[256], buf[256];
		int idn = zmq_recv(e->sock, id, sizeof id, ZMQ_DONTWAIT);
		if (idn < 0)
			return got;
		int n = zmq_recv(e->sock, buf, sizeof buf, 0);
		struct kr_msg m;
		if (n < 0 || kr_parse(buf, (size_t)n, &m) != 0)
			continue;
		got++;
		if (m.type == KR_HELLO) {
			memcpy(e->id, id, (size_t)idn);
			e->idlen = (size_t)idn;
			e->have_peer = 1;
			e->session = m.session;
			e->acked = kr_get64(m.body);
			e->cursor = frame_after(e, e->acked);
			e->hellos++;
		} else if (m.type == KR_ACK && m.session == e->session) {
			e->acked = kr_get64(m.body);
		}
	}
}

static uint64_t arg(int argc, char **argv, const char *name, uint64_t d)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return strtoull(argv[i + 1], NULL, 10);
	return d;
}

static const char *sarg(int argc, char **argv, const char *name)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return argv[i + 1];
	return NULL;
}

/* One step: a damaged message (while the budget lasts), else the next
 * good frame; then a wait for the follower's answer, except sometimes,
 * so that messages also arrive back to back. */
static void step(struct evil *e, uint64_t budget, unsigned bad_pct)
{
	int damaged = 0;

	if (e->sent < budget &&
	    (rnd(e) % 100 < bad_pct || e->cursor >= e->nfr)) {
		unsigned k = (unsigned)(rnd(e) % NKINDS);
		send_bad(e, k);
		e->kinds[k]++;
		/* Damage to the current frame stands for that frame hit in
		 * transit: a primary would go on with the next one, and only
		 * the follower's announce brings the stream back. Garbage,
		 * replays and gaps are extra messages. */
		if (k != 5 && k != 7 && k != 8 && e->cursor < e->nfr)
			e->cursor++;
		e->damaged++;
		damaged = 1;
	} else if (e->cursor < e->nfr) {
		send_good(e);
	}
	if (now_ms() - e->last_hb >= 100)
		heartbeat(e);
	receive(e, rnd(e) % 4 == 0 ? 0 : damaged ? 5 : 50);
}

/* ---- --snapshot: a primary that stops half-way through a snapshot ---- */

static void send_snap_part(struct evil *e, size_t from, size_t to)
{
	uint8_t b[8];

	for (size_t i = from; i < to; i++) {
		kr_put64(b, e->snap_pos);
		kr_send(e->sock, e->id, e->idlen, KR_SNAP, e->session, b, 8,
			e->snap[i].bytes, e->snap[i].len, 0);
		e->sent++;
	}
}

/*
 * The first follower to announce gets SNAP-BEGIN and half the snapshot,
 * then only heartbeats: "stalled" is printed, and the follower must give
 * the snapshot up (its --timeout without data, or a kill -9 and restart)
 * and announce position 0 again. That announce gets the whole snapshot,
 * then nothing more is needed: the snapshot's position is the source's.
 */
static int snapshot_mode(struct evil *e)
{
	uint8_t b[8];
	uint32_t first;

	while (!e->have_peer)
		receive(e, 100);
	first = e->session;
	kr_send(e->sock, e->id, e->idlen, KR_SNAP_BEGIN, e->session, NULL, 0,
		NULL, 0, 0);
	send_snap_part(e, 0, e->nsnap / 2);
	printf("stalled after %zu of %zu snapshot frames\n", e->nsnap / 2,
	       e->nsnap);
	fflush(stdout);
	for (uint64_t t0 = now_ms(); e->session == first;) {
		if (now_ms() - t0 > 60000)
			return fprintf(stderr,
				       "kvrepl_evil: no new announce\n"), 1;
		if (now_ms() - e->last_hb >= 100)
			heartbeat(e);
		receive(e, 20);
	}
	if (e->acked != 0)
		return fprintf(stderr, "kvrepl_evil: re-announced at %" PRIu64
			       ", not 0\n", e->acked), 1;
	kr_send(e->sock, e->id, e->idlen, KR_SNAP_BEGIN, e->session, NULL, 0,
		NULL, 0, 0);
	send_snap_part(e, 0, e->nsnap);
	kr_put64(b, e->snap_pos);
	kr_send(e->sock, e->id, e->idlen, KR_SNAP_END, e->session, b, 8, NULL,
		0, 0);
	for (uint64_t t0 = now_ms(); e->acked != e->final;) {
		if (now_ms() - t0 > 60000)
			return fprintf(stderr, "kvrepl_evil: follower stuck "
				       "at %" PRIu64 "\n", e->acked), 1;
		if (now_ms() - e->last_hb >= 100)
			heartbeat(e);
		receive(e, 20);
	}
	printf("sent=%" PRIu64 " good=%zu damaged=0 hellos=%" PRIu64
	       " position=%" PRIu64 " frames=%zu kinds=snapshot\n", e->sent,
	       e->nsnap, e->hellos, e->final, e->nsnap);
	return 0;
}

int main(int argc, char **argv)
{
	struct evil e = { .rng = arg(argc, argv, "--seed", 1) };
	const char *ep = sarg(argc, argv, "--bind"), *dir = sarg(argc, argv,
								"--dir");
	uint64_t budget = arg(argc, argv, "--messages", 1000);
	unsigned bad = (unsigned)arg(argc, argv, "--bad-pct", 60);
	char last[256];
	size_t n = sizeof last;
	int one = 1;

	if (!ep || !dir) {
		fprintf(stderr, "usage: kvrepl_evil --bind EP --dir SRC "
			"[--records N] [--messages M] [--seed S] "
			"[--bad-pct P] [--frame-bytes B] [--snapshot]\n");
		return 2;
	}
	e.frame_bytes = (size_t)arg(argc, argv, "--frame-bytes", 512);
	fill(&e, dir, arg(argc, argv, "--records", 2000));
	void *ctx = zmq_ctx_new();
	e.sock = zmq_socket(ctx, ZMQ_ROUTER);
	zmq_setsockopt(e.sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
	if (zmq_bind(e.sock, ep) != 0) {
		fprintf(stderr, "kvrepl_evil: bind: %s\n", zmq_strerror(errno));
		return 1;
	}
	zmq_getsockopt(e.sock, ZMQ_LAST_ENDPOINT, last, &n);
	printf("listening on %s\n", last);
	fflush(stdout);
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--snapshot") == 0) {
			int rc = snapshot_mode(&e);
			zmq_close(e.sock);
			zmq_ctx_term(ctx);
			return rc;
		}
	while (!e.have_peer)
		receive(&e, 100);
	uint64_t idle = now_ms();
	while (e.sent < budget || e.acked < e.final) {
		uint64_t before = e.acked;
		step(&e, budget, bad);
		if (e.acked != before)
			idle = now_ms();
		if (now_ms() - idle > 60000) {
			fprintf(stderr, "kvrepl_evil: no progress for 60 s at "
				"position %" PRIu64 " of %" PRIu64 "\n",
				e.acked, e.final);
			return 1;
		}
	}
	printf("sent=%" PRIu64 " good=%" PRIu64 " damaged=%" PRIu64
	       " hellos=%" PRIu64 " position=%" PRIu64 " frames=%zu kinds=",
	       e.sent, e.good, e.damaged, e.hellos, e.final, e.nfr);
	for (int k = 0; k < NKINDS; k++)
		printf("%s%s:%" PRIu64, k ? "," : "", kind_names[k],
		       e.kinds[k]);
	printf("\n");
	zmq_close(e.sock);
	zmq_ctx_term(ctx);
	for (size_t i = 0; i < e.nfr; i++)
		free(e.fr[i].bytes);
	free(e.fr);
	return 0;
}
