/*
 * proto.h - kvrepl's wire format: one ZeroMQ message per protocol message,
 * a 16-byte header, then a body whose layout depends on the type.
 *
 *   0  'K' 'R'          magic
 *   2  version          KR_VERSION
 *   3  type             enum kr_type
 *   4  session   u32le  the follower's current session (see below)
 *   8  length    u32le  body bytes; must equal the message size - 16
 *  12  crc       u32le  CRC-32 (zlib) of header bytes 0..11 and the body
 *
 * A message that is short, has another magic or version, a length that
 * disagrees with its size, a bad CRC, an unknown type or a body of the
 * wrong size for its type is rejected whole (and counted); nothing in it
 * is used. The CRC is only a first filter: a frame's records carry their
 * own CRCs, which kv_repl_apply checks again before applying anything.
 *
 * A session is a number the follower picks each time it announces its
 * position (HELLO); the primary stamps every message for that follower
 * with it, and the follower drops stream messages of any other session:
 * what was in flight before a re-announce can never be applied after it.
 * kvrepl(1) describes the exchange.
 */
#ifndef KVREPL_PROTO_H
#define KVREPL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define KR_VERSION 1
#define KR_HDR 16
#define KR_NAME_MAX 64          /* longest follower name in a HELLO */

enum kr_type {
	KR_HELLO = 1,      /* F->P  u64 position, then the name (0..64 B) */
	KR_ACK = 2,        /* F->P  u64 position applied; also a heartbeat */
	KR_DATA = 3,       /* P->F  u64 first, u64 last, frame bytes */
	KR_SNAP_BEGIN = 4, /* P->F  (empty) a snapshot follows */
	KR_SNAP = 5,       /* P->F  u64 snapshot position, frame bytes */
	KR_SNAP_END = 6,   /* P->F  u64 snapshot position */
	KR_HEARTBEAT = 7,  /* P->F  u64 position, u64 acked, u64 lag bytes */
	KR_WHO = 8,        /* P->F  (empty) unknown peer: announce again */
	KR_NTYPES
};

struct kr_msg {
	unsigned type;
	uint32_t session;
	const uint8_t *body;
	size_t len;
};

/* Why kr_parse refused a message, for counters and messages. */
enum kr_reject {
	KR_R_SHORT, KR_R_MAGIC, KR_R_VERSION, KR_R_LENGTH, KR_R_CRC,
	KR_R_TYPE, KR_R_BODY, KR_NREJECTS
};

extern const char *const kr_reject_names[KR_NREJECTS];
extern const char *const kr_type_names[KR_NTYPES];

/* 0 and *m filled, or the reason (enum kr_reject) + 1. */
int kr_parse(const void *buf, size_t n, struct kr_msg *m);

/* Writes the 16-byte header for a body made of two parts. */
void kr_header(uint8_t hdr[KR_HDR], unsigned type, uint32_t session,
	       const void *b1, size_t n1, const void *b2, size_t n2);

/*
 * Sends one message, optionally preceded by a routing id frame (ROUTER).
 * The body is b1 then b2 (either may be empty). zmq flags as zmq_send
 * (ZMQ_DONTWAIT). Returns 0 or -1 with errno (EAGAIN, EHOSTUNREACH...).
 */
int kr_send(void *sock, const void *id, size_t idlen, unsigned type,
	    uint32_t session, const void *b1, size_t n1, const void *b2,
	    size_t n2, int flags);

/* Little-endian fields. */
static inline uint64_t kr_get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline void kr_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint32_t kr_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline void kr_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

#endif /* KVREPL_PROTO_H */
