/*
 * session_store.c - web sessions / tokens with a time to live: create with
 * kv_put_ttl, look up, refresh (re-put with a new TTL), log out (kv_delete),
 * and watch sessions expire, with kv_expiry showing when. Expiry is shown
 * without sleeping: the store is given a fake clock that the program moves.
 * Usage: session_store DIR (DIR is created).
 * Build against an installed libkv:
 *   cc session_store.c $(pkg-config --cflags --libs libkv)
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kv.h>

#define MIN (60u * 1000u) /* one minute in ms */
#define T0 UINT64_C(1795255200000) /* 2026-11-21T10:00:00Z in Unix ms */

/* The fake clock. Atomic because libkv may also read the clock from its
 * background thread. Real programs keep the default clock (opts.clock =
 * NULL, CLOCK_REALTIME); replacing it is for tests and demos like this. */
static _Atomic uint64_t now_ms = T0;

static uint64_t fake_clock(void *ctx)
{
	(void)ctx;
	return atomic_load(&now_ms);
}

static void advance(unsigned minutes)
{
	atomic_fetch_add(&now_ms, (uint64_t)minutes * MIN);
	printf("-- clock is now T0+%llum\n",
	       (unsigned long long)((atomic_load(&now_ms) - T0) / MIN));
}

static void fail(const char *what, int rc)
{
	fprintf(stderr, "session_store: %s: %s (%s)\n", what,
		kv_strerror(rc), kv_errmsg());
	exit(1);
}

static void check(int rc, const char *what)
{
	if (rc != KV_OK)
		fail(what, rc);
}

static void expect(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "session_store: expected %s\n", what);
		exit(1);
	}
}

/* Login and refresh are the same write: the session with a fresh TTL. */
static void put_session(kv_t *db, const char *verb, const char *tok,
			const char *user, unsigned ttl_min)
{
	check(kv_put_ttl(db, tok, strlen(tok), user, strlen(user),
			 (uint64_t)ttl_min * MIN), "kv_put_ttl");
	printf("%-7s %s -> %s (ttl %um)\n", verb, tok, user, ttl_min);
}

/* Looks a session up and checks it against want_exp: its expected expiry,
 * or 0 if it should be gone (expired or logged out). */
static void lookup(kv_t *db, const char *tok, uint64_t want_exp)
{
	char buf[64];
	size_t vlen;
	uint64_t exp;
	int rc = kv_get_into(db, tok, strlen(tok), buf, sizeof buf - 1, &vlen);

	if (rc == KV_ENOTFOUND) {
		printf("lookup  %s -> no session\n", tok);
		expect(want_exp == 0, "a live session");
		/* An expired or deleted key has no expiry either. */
		expect(kv_expiry(db, tok, strlen(tok), &exp) == KV_ENOTFOUND,
		       "kv_expiry to find no session");
		return;
	}
	check(rc, "kv_get_into");
	buf[vlen] = '\0';
	check(kv_expiry(db, tok, strlen(tok), &exp), "kv_expiry");
	printf("lookup  %s -> %s, expires at T0+%llum\n", tok, buf,
	       (unsigned long long)((exp - T0) / MIN));
	expect(want_exp != 0, "the session to be gone");
	expect(exp == want_exp, "the expiry of the last kv_put_ttl");
}

int main(int argc, char **argv)
{
	kv_options opts;
	kv_t *db;
	uint64_t exp;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	kv_options_init(&opts);
	opts.flags = KV_CREATE;
	opts.clock = fake_clock;
	check(kv_open(argv[1], &opts, &db), "kv_open");
	printf("opened %s with a fake clock at T0 (2026-11-21T10:00Z)\n",
	       argv[1]);

	/* A key written with kv_put never expires: kv_expiry says 0. */
	check(kv_put(db, "cfg:session_ttl_min", 19, "30", 2), "kv_put");
	check(kv_expiry(db, "cfg:session_ttl_min", 19, &exp), "kv_expiry");
	printf("cfg:session_ttl_min has expiry %llu (never)\n",
	       (unsigned long long)exp);
	expect(exp == 0, "no expiry for a plain kv_put");

	put_session(db, "login", "sess:7f3a", "alice", 30);
	put_session(db, "login", "sess:91c2", "bob", 30);
	put_session(db, "login", "sess:c0de", "carol", 5); /* a short one-time token */
	lookup(db, "sess:7f3a", T0 + 30 * MIN);
	lookup(db, "sess:c0de", T0 + 5 * MIN);

	advance(20);
	lookup(db, "sess:c0de", 0); /* 5 minutes are up */
	/* Alice is active: sliding expiration, i.e. write the session again
	 * with a fresh TTL. The new record replaces value and expiry. */
	put_session(db, "refresh", "sess:7f3a", "alice", 30);
	lookup(db, "sess:7f3a", T0 + 50 * MIN);

	/* Bob logs out: the session is deleted at once, not left to expire.
	 * Deleting it again reports KV_ENOTFOUND and writes nothing. */
	check(kv_delete(db, "sess:91c2", 9), "kv_delete");
	printf("logout  sess:91c2\n");
	lookup(db, "sess:91c2", 0);
	expect(kv_delete(db, "sess:91c2", 9) == KV_ENOTFOUND,
	       "KV_ENOTFOUND from a second logout");

	/* The expiry is stored in the record as an absolute time, so it
	 * survives a reopen. */
	check(kv_close(db), "kv_close");
	opts.flags = 0;
	check(kv_open(argv[1], &opts, &db), "kv_open (reopen)");
	printf("reopened\n");

	advance(15); /* T0+35m: past alice's first expiry, not her refreshed */
	lookup(db, "sess:7f3a", T0 + 50 * MIN);
	advance(20); /* T0+55m */
	lookup(db, "sess:7f3a", 0);
	expect(kv_exists(db, "cfg:session_ttl_min", 19) == KV_OK,
	       "cfg:session_ttl_min to stay");
	printf("cfg:session_ttl_min is still there: keys without a TTL stay\n");
	check(kv_close(db), "kv_close");
	return 0;
}
