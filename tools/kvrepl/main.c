/*
 * main.c - kvrepl's command line: `kvrepl primary` serves a store's log
 * over ZeroMQ, `kvrepl follower` keeps a replica of it (primary.c,
 * follower.c; the wire format is in proto.h). kvrepl(1) is the manual.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "kvrepl.h"

volatile sig_atomic_t kr_stop;

uint64_t kr_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int kr_wait_in(const struct kr_config *c, void *sock, long ms)
{
	zmq_pollitem_t it = { sock, 0, ZMQ_POLLIN, 0 };

	if (zmq_poll(&it, 1, ms) < 0 && errno != EINTR) {
		kr_say(c, "zmq_poll: %s", zmq_strerror(errno));
		return -1;
	}
	return 0;
}

uint64_t kr_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void kr_say(const struct kr_config *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "kvrepl: %s: ", c->role);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int kr_fail_kv(const struct kr_config *c, const char *what, int rc)
{
	kr_say(c, "%s: %s: %s", what, kv_strerror(rc), kv_errmsg());
	return KR_EXIT_FAIL;
}

static void on_signal(int sig)
{
	(void)sig;
	kr_stop = 1;
}

/* SIGTERM and SIGINT end the loop (zmq_poll returns EINTR: no
 * SA_RESTART), and the store is closed on the way out. */
static void catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* ---- options ---- */

enum {
	O_DIR = 0x100, O_BIND, O_CONNECT, O_NAME, O_HEARTBEAT, O_TIMEOUT,
	O_STATUS, O_POLL, O_MAXFRAME, O_WINDOW, O_MAXMSG, O_SYNC, O_TRACE
};

#define PRIMARY 1
#define FOLLOWER 2

static const struct opt {
	struct option lo;
	int roles;
} opts[] = {
	{ { "dir", required_argument, NULL, O_DIR }, PRIMARY | FOLLOWER },
	{ { "bind", required_argument, NULL, O_BIND }, PRIMARY },
	{ { "connect", required_argument, NULL, O_CONNECT }, FOLLOWER },
	{ { "name", required_argument, NULL, O_NAME }, FOLLOWER },
	{ { "heartbeat", required_argument, NULL, O_HEARTBEAT },
	  PRIMARY | FOLLOWER },
	{ { "timeout", required_argument, NULL, O_TIMEOUT },
	  PRIMARY | FOLLOWER },
	{ { "status-interval", required_argument, NULL, O_STATUS },
	  PRIMARY | FOLLOWER },
	{ { "poll", required_argument, NULL, O_POLL }, PRIMARY },
	{ { "max-frame", required_argument, NULL, O_MAXFRAME }, PRIMARY },
	{ { "window", required_argument, NULL, O_WINDOW }, PRIMARY },
	{ { "max-message", required_argument, NULL, O_MAXMSG }, FOLLOWER },
	{ { "sync", required_argument, NULL, O_SYNC }, FOLLOWER },
	{ { "trace", required_argument, NULL, O_TRACE }, FOLLOWER },
	{ { "help", no_argument, NULL, 'h' }, PRIMARY | FOLLOWER },
};

#define NOPTS (sizeof opts / sizeof opts[0])

static const char usage_text[] =
	"usage: kvrepl primary --dir DIR --bind ENDPOINT [OPTIONS]\n"
	"       kvrepl follower --dir DIR --connect ENDPOINT [OPTIONS]\n"
	"       kvrepl --help | --version\n";

static const char help_text[] =
	"\nReplicate a libkv store over ZeroMQ.\n\n"
	"both:\n"
	"      --dir DIR             the store (primary: read-only)\n"
	"      --heartbeat MS        heartbeat period (default 500)\n"
	"      --timeout MS          peer gone after this silence (3000)\n"
	"      --status-interval MS  status line period, 0: none (1000)\n"
	"primary:\n"
	"      --bind ENDPOINT       e.g. tcp://127.0.0.1:5555 or tcp://*:*\n"
	"      --poll MS             look for new writes this often (20)\n"
	"      --max-frame BYTES     bytes per data message (262144)\n"
	"      --window BYTES        unacknowledged bytes per follower"
	" (8388608)\n"
	"follower:\n"
	"      --connect ENDPOINT    the primary's endpoint\n"
	"      --name NAME           shown in the primary's status\n"
	"      --max-message BYTES   largest message taken (268435456)\n"
	"      --sync always|write   the replica's sync mode (write)\n"
	"      --trace FILE          append \"time_ns position\" per frame\n"
	"  -h, --help                show this help\n\nSee kvrepl(1).\n";

static int num(const char *opt, const char *s, uint64_t min, uint64_t *out)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min) {
		fprintf(stderr, "kvrepl: %s: want a number >= %" PRIu64
			", not '%s'\n", opt, min, s);
		return -1;
	}
	*out = v;
	return 0;
}

static int set_opt(struct kr_config *c, int val, char *arg)
{
	switch (val) {
	case O_DIR: c->dir = arg; return 0;
	case O_BIND:
	case O_CONNECT: c->endpoint = arg; return 0;
	case O_NAME: c->name = arg; return 0;
	case O_TRACE: c->trace = arg; return 0;
	case O_HEARTBEAT: return num("--heartbeat", arg, 1, &c->heartbeat_ms);
	case O_TIMEOUT: return num("--timeout", arg, 1, &c->timeout_ms);
	case O_STATUS: return num("--status-interval", arg, 0, &c->status_ms);
	case O_POLL: return num("--poll", arg, 1, &c->poll_ms);
	case O_MAXFRAME: return num("--max-frame", arg, 1, &c->max_frame);
	case O_WINDOW: return num("--window", arg, 1, &c->window);
	case O_MAXMSG: return num("--max-message", arg, 1024, &c->max_message);
	case O_SYNC:
		if (strcmp(arg, "always") == 0)
			c->sync_mode = KV_SYNC_ALWAYS;
		else if (strcmp(arg, "write") == 0)
			c->sync_mode = KV_SYNC_WRITE;
		else {
			fprintf(stderr, "kvrepl: --sync: 'always' or 'write', "
				"not '%s'\n", arg);
			return -1;
		}
		return 0;
	default:
		return -1;
	}
}

static void defaults(struct kr_config *c)
{
	c->heartbeat_ms = 500;
	c->timeout_ms = 3000;
	c->status_ms = 1000;
	c->poll_ms = 20;
	c->max_frame = 256u << 10;
	c->window = 8u << 20;
	c->max_message = 256u << 20;
	c->sync_mode = KV_SYNC_WRITE;
}

/* argv[0] is the role. Returns -1 when the role should run, else the
 * exit status. getopt_long sees only the role's options. */
static int parse(int role, int argc, char **argv, struct kr_config *c)
{
	struct option lo[NOPTS + 1];
	size_t n = 0;
	int val, help = 0;

	for (size_t i = 0; i < NOPTS; i++)
		if (opts[i].roles & role)
			lo[n++] = opts[i].lo;
	memset(&lo[n], 0, sizeof lo[n]);
	while ((val = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (val == 'h')
			help = 1;
		else if (set_opt(c, val, optarg) != 0)
			return KR_EXIT_USAGE;
	}
	if (help) {
		fputs(usage_text, stdout);
		fputs(help_text, stdout);
		return KR_EXIT_OK;
	}
	if (optind < argc || !c->dir || !c->endpoint) {
		fprintf(stderr, "kvrepl: %s: %s\n", c->role, optind < argc ?
			"unexpected arguments" : role == PRIMARY ?
			"--dir and --bind are required" :
			"--dir and --connect are required");
		fputs(usage_text, stderr);
		return KR_EXIT_USAGE;
	}
	if (c->heartbeat_ms >= c->timeout_ms) {
		fprintf(stderr,
			"kvrepl: --timeout must be above --heartbeat\n");
		return KR_EXIT_USAGE;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct kr_config c;
	int role, rc;

	memset(&c, 0, sizeof c);
	defaults(&c);
	if (argc >= 2 &&
	    (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage_text, stdout);
		fputs(help_text, stdout);
		return KR_EXIT_OK;
	}
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("kvrepl (libkv) %s\n", kv_version(NULL, NULL, NULL));
		return KR_EXIT_OK;
	}
	if (argc < 2 || (strcmp(argv[1], "primary") &&
			 strcmp(argv[1], "follower"))) {
		fputs(usage_text, stderr);
		return KR_EXIT_USAGE;
	}
	role = argv[1][0] == 'p' ? PRIMARY : FOLLOWER;
	c.role = argv[1];
	if ((rc = parse(role, argc - 1, argv + 1, &c)) >= 0)
		return rc;
	setvbuf(stdout, NULL, _IOLBF, 0);
	catch_signals();
	return role == PRIMARY ? kr_primary(&c) : kr_follower(&c);
}
