/*
 * kvrepl.h - what the parts of kvrepl share: the configuration from the
 * command line, the clock, messages, and the stop flag set by SIGTERM and
 * SIGINT. kvrepl(1) is the manual.
 */
#ifndef KVREPL_H
#define KVREPL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <kv.h>

/* Exit statuses, as in kvrepl(1). */
enum { KR_EXIT_OK = 0, KR_EXIT_FAIL = 1, KR_EXIT_USAGE = 2 };

struct kr_config {
	const char *role;          /* "primary" or "follower" */
	const char *dir;
	const char *endpoint;      /* --bind or --connect */
	const char *name;          /* follower: shown in the primary's status */
	const char *trace;         /* follower: file of "time_ns position" */
	uint64_t heartbeat_ms;     /* heartbeats both ways */
	uint64_t timeout_ms;       /* peer gone after this much silence */
	uint64_t status_ms;        /* status line period; 0: none */
	uint64_t poll_ms;          /* primary: how often to look for writes */
	uint64_t max_frame;        /* primary: bytes per data message */
	uint64_t window;           /* primary: bytes in flight per follower */
	uint64_t max_message;      /* follower: largest message accepted */
	uint32_t sync_mode;        /* follower: KV_SYNC_* of the replica */
};

extern volatile sig_atomic_t kr_stop;

uint64_t kr_now_ms(void);        /* CLOCK_MONOTONIC */
uint64_t kr_realtime_ns(void);   /* CLOCK_REALTIME, for traces */
/* Waits up to ms for sock to have a message (a signal ends the wait
 * early); -1, said, when polling fails. */
int kr_wait_in(const struct kr_config *c, void *sock, long ms);

/* "kvrepl: ROLE: ..." on stderr. */
__attribute__((format(printf, 2, 3)))
void kr_say(const struct kr_config *c, const char *fmt, ...);
/* The same with the libkv error text and kv_errmsg() appended. */
int kr_fail_kv(const struct kr_config *c, const char *what, int rc);

int kr_primary(const struct kr_config *c);
int kr_follower(const struct kr_config *c);

#endif /* KVREPL_H */
