/*
 * batch_transfer.c - atomic batches: move money between two account keys
 * and append an audit-log entry in one kv_write, synced to disk before it
 * returns (KV_SYNC_ALWAYS). A batch whose entry is refused when it is added
 * is never written; after a reopen the total is what it was.
 * Usage: batch_transfer DIR (DIR is created).
 * Build against an installed libkv:
 *   cc batch_transfer.c $(pkg-config --cflags --libs libkv)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kv.h>

static void check(int rc, const char *what)
{
	if (rc != KV_OK) {
		fprintf(stderr, "batch_transfer: %s: %s (%s)\n", what,
			kv_strerror(rc), kv_errmsg());
		exit(1);
	}
}

static void expect(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "batch_transfer: expected %s\n", what);
		exit(1);
	}
}

/* Balances are stored as decimal text, in cents. */
static long balance(kv_t *db, const char *acct)
{
	char buf[32];
	size_t n;

	check(kv_get_into(db, acct, strlen(acct), buf, sizeof buf - 1, &n),
	      acct);
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

static void put_balance(kv_batch *b, const char *acct, long cents)
{
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%ld", cents);

	check(kv_batch_put(b, acct, strlen(acct), buf, (size_t)n),
	      "kv_batch_put");
}

/*
 * Moves cents from one account to another: two balance puts and one audit
 * entry, all or nothing, even across a crash. The read-then-write is not
 * isolated from other writers (libkv has no transactions or
 * compare-and-swap); a program with several writers serialises transfers
 * with its own lock. This one has a single thread.
 */
static void transfer(kv_t *db, kv_batch *b, unsigned id, const char *from,
		     const char *to, long cents)
{
	char key[32], note[96];
	long a = balance(db, from), c = balance(db, to);
	int kn = snprintf(key, sizeof key, "audit:%06u", id);
	int nn = snprintf(note, sizeof note, "%s -> %s %ld", from, to, cents);

	expect(a >= cents, "enough funds");
	kv_batch_clear(b);
	put_balance(b, from, a - cents);
	put_balance(b, to, c + cents);
	check(kv_batch_put(b, key, (size_t)kn, note, (size_t)nn),
	      "kv_batch_put");
	check(kv_write(db, b), "kv_write");
	printf("transfer %u: %s (batch of %zu, synced)\n", id, note,
	       kv_batch_count(b));
}

static int count_pair(void *ctx, const void *key, size_t klen,
		      const void *val, size_t vlen)
{
	printf("  %.*s: %.*s\n", (int)klen, (const char *)key, (int)vlen,
	       (const char *)val);
	++*(unsigned *)ctx;
	return 0;
}

int main(int argc, char **argv)
{
	kv_options opts;
	kv_t *db;
	kv_batch *b;
	struct kv_stats st = { .size = sizeof st };
	uint64_t lsn;
	unsigned audits = 0;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	kv_options_init(&opts);
	opts.flags = KV_CREATE;
	/* Each kv_write is on disk (fdatasync) before it returns. */
	opts.sync_mode = KV_SYNC_ALWAYS;
	check(kv_open(argv[1], &opts, &db), "kv_open");
	check(kv_batch_new(&b), "kv_batch_new");

	/* Opening balances, in cents: 1000.00 in all. */
	put_balance(b, "acct:alice", 75000);
	put_balance(b, "acct:bob", 25000);
	check(kv_write(db, b), "kv_write");
	printf("opened %s; alice 75000, bob 25000\n", argv[1]);

	transfer(db, b, 1, "acct:alice", "acct:bob", 12050);
	transfer(db, b, 2, "acct:bob", "acct:alice", 999);

	/* A transfer with a bad entry: each kv_batch_put is checked when it
	 * is added, so the mistake (an empty audit key) shows up before
	 * anything reaches the store. The program then drops the batch
	 * instead of writing half a transfer. */
	check(kv_stats(db, &st), "kv_stats");
	lsn = st.last_lsn;
	kv_batch_clear(b);
	put_balance(b, "acct:alice", balance(db, "acct:alice") - 5000);
	put_balance(b, "acct:bob", balance(db, "acct:bob") + 5000);
	rc = kv_batch_put(b, "", 0, "alice -> bob 5000", 17);
	printf("transfer 3: kv_batch_put of the audit entry -> %s; "
	       "batch has %zu entries, dropped\n", kv_strerror(rc),
	       kv_batch_count(b));
	expect(rc == KV_EINVAL, "KV_EINVAL for an empty key");
	expect(kv_batch_count(b) == 2, "the bad entry not to be added");
	kv_batch_clear(b);
	check(kv_stats(db, &st), "kv_stats");
	expect(st.last_lsn == lsn, "no record written");

	kv_batch_free(b);
	check(kv_close(db), "kv_close");

	/* Reopen: both transfers are there, the refused one is not, and no
	 * money was made or lost. */
	opts.flags = 0;
	check(kv_open(argv[1], &opts, &db), "kv_open (reopen)");
	printf("reopened: alice %ld, bob %ld, total %ld\n",
	       balance(db, "acct:alice"), balance(db, "acct:bob"),
	       balance(db, "acct:alice") + balance(db, "acct:bob"));
	expect(balance(db, "acct:alice") == 75000 - 12050 + 999,
	       "alice's balance after two transfers");
	expect(balance(db, "acct:alice") + balance(db, "acct:bob") == 100000,
	       "the total to be conserved");
	printf("audit log:\n");
	check(kv_scan(db, NULL, 0, NULL, 0, "audit:", 6, 0, count_pair,
		      &audits), "kv_scan");
	expect(audits == 2, "one audit entry per transfer");
	check(kv_close(db), "kv_close");
	return 0;
}
