/*
 * proto.c - building, sending and checking kvrepl messages (proto.h).
 */
#include <errno.h>
#include <string.h>
#include <zlib.h>
#include <zmq.h>

#include "proto.h"

const char *const kr_reject_names[KR_NREJECTS] = {
	"short", "magic", "version", "length", "crc", "type", "body",
};

const char *const kr_type_names[KR_NTYPES] = {
	"?", "hello", "ack", "data", "snap-begin", "snap", "snap-end",
	"heartbeat", "who",
};

static uint32_t crc_parts(const uint8_t *hdr, const void *b1, size_t n1,
			  const void *b2, size_t n2)
{
	uLong c = crc32(0L, Z_NULL, 0);

	c = crc32_z(c, hdr, 12);
	if (n1)
		c = crc32_z(c, b1, n1);
	if (n2)
		c = crc32_z(c, b2, n2);
	return (uint32_t)c;
}

void kr_header(uint8_t hdr[KR_HDR], unsigned type, uint32_t session,
	       const void *b1, size_t n1, const void *b2, size_t n2)
{
	hdr[0] = 'K';
	hdr[1] = 'R';
	hdr[2] = KR_VERSION;
	hdr[3] = (uint8_t)type;
	kr_put32(hdr + 4, session);
	kr_put32(hdr + 8, (uint32_t)(n1 + n2));
	kr_put32(hdr + 12, crc_parts(hdr, b1, n1, b2, n2));
}

/* The body sizes each type allows: [min, max]. */
static int body_ok(unsigned type, size_t len)
{
	switch (type) {
	case KR_HELLO: return len >= 8 && len <= 8 + KR_NAME_MAX;
	case KR_ACK: return len == 8;
	case KR_DATA: return len > 16;
	case KR_SNAP_BEGIN: return len == 0;
	case KR_SNAP: return len > 8;
	case KR_SNAP_END: return len == 8;
	case KR_HEARTBEAT: return len == 24;
	case KR_WHO: return len == 0;
	default: return 0;
	}
}

int kr_parse(const void *buf, size_t n, struct kr_msg *m)
{
	const uint8_t *p = buf;

	if (n < KR_HDR)
		return KR_R_SHORT + 1;
	if (p[0] != 'K' || p[1] != 'R')
		return KR_R_MAGIC + 1;
	if (p[2] != KR_VERSION)
		return KR_R_VERSION + 1;
	if (kr_get32(p + 8) != n - KR_HDR)
		return KR_R_LENGTH + 1;
	if (kr_get32(p + 12) != crc_parts(p, p + KR_HDR, n - KR_HDR, NULL, 0))
		return KR_R_CRC + 1;
	if (p[3] == 0 || p[3] >= KR_NTYPES)
		return KR_R_TYPE + 1;
	if (!body_ok(p[3], n - KR_HDR))
		return KR_R_BODY + 1;
	m->type = p[3];
	m->session = kr_get32(p + 4);
	m->body = p + KR_HDR;
	m->len = n - KR_HDR;
	return 0;
}

int kr_send(void *sock, const void *id, size_t idlen, unsigned type,
	    uint32_t session, const void *b1, size_t n1, const void *b2,
	    size_t n2, int flags)
{
	zmq_msg_t msg;

	if (n1 + n2 > UINT32_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	if (zmq_msg_init_size(&msg, KR_HDR + n1 + n2) != 0)
		return -1;
	uint8_t *p = zmq_msg_data(&msg);
	if (n1)
		memcpy(p + KR_HDR, b1, n1);
	if (n2)
		memcpy(p + KR_HDR + n1, b2, n2);
	kr_header(p, type, session, b1, n1, b2, n2);
	/* A ROUTER routes on the id frame: with ZMQ_ROUTER_MANDATORY this is
	 * where an unknown peer (EHOSTUNREACH) or a full queue (EAGAIN)
	 * shows; the body frame then always goes. */
	if (id && zmq_send(sock, id, idlen, flags | ZMQ_SNDMORE) < 0) {
		zmq_msg_close(&msg);
		return -1;
	}
	if (zmq_msg_send(&msg, sock, flags) < 0) {
		int e = errno;
		zmq_msg_close(&msg);
		errno = e;
		return -1;
	}
	return 0;
}
