/*
 * kvctl.c - the command-line tool of libkv: read and write keys, scan,
 * show figures, compact, verify, repair, and dump and load a portable text
 * form (after LMDB's mdb_stat, mdb_dump and mdb_load). It uses kv.h only,
 * like any other program; kvctl(1) is its manual.
 */
#include <bsd/libutil.h>
#include <bsd/stdlib.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <kv.h>

/* Exit statuses, as in kvctl(1). */
enum { KVCTL_OK = 0, KVCTL_FAIL = 1, KVCTL_USAGE = 2 };

/* The dump format's first line names it and its version: a reader that
 * sees another version refuses the file rather than guess. */
#define DUMP_MAGIC "kvctl-dump"
#define DUMP_HEADER DUMP_MAGIC " 1"

/* load commits at most this many pairs, or this many bytes of keys and
 * values, per kv_write: big enough to amortise the commit, small enough
 * that memory stays bounded whatever the dump holds. */
#define LOAD_BATCH_PAIRS 1000
#define LOAD_BATCH_BYTES (16u << 20)

/* Options, by index into options[]; OPT() makes a command's mask. */
enum {
	O_HELP, O_NEWLINE, O_ESCAPED, O_CREATE, O_KEYS, O_BYTES, O_TTL,
	O_SEGSIZE, O_PREFIX, O_START, O_END, O_LIMIT, O_BATCH, O_EXPECTED,
	O_COUNT
};

#define OPT(o) (1u << (o))

struct cmd;

/* What the command line said. One struct serves every command; each
 * command accepts only its own options (struct cmd.opts). */
struct args {
	const struct cmd *cmd;
	char **pos;             /* positional arguments, DIR first */
	int npos;
	int help, newline, escaped, create, keys_only, bytes;
	uint64_t ttl_ms, segment_size, limit, batch, expected_keys;
	char *prefix, *start, *end;
};

struct cmd {
	const char *name;
	int (*run)(struct args *a);
	unsigned opts;          /* OPT() bits of the options it accepts */
	int min_pos, max_pos;   /* positional arguments, DIR included */
	const char *synopsis;   /* what follows "kvctl NAME" */
	const char *summary;
	const char *help;       /* one line per option */
};

/* A key or value as bytes: from argv, a dump line or the store. */
struct bytes {
	char *p;
	size_t n;
};

/* ---- messages ---- */

/* Every message reads "kvctl: COMMAND: what happened". */
__attribute__((format(printf, 2, 3)))
static void say(const struct args *a, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "kvctl: %s: ", a->cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Reports a libkv failure. kv_errmsg() adds the file, offset or errno;
 * a missing key has no more to say than kv_strerror(). */
static int fail_kv(const struct args *a, const char *what, int rc)
{
	if (rc == KV_ENOTFOUND)
		say(a, "%s: %s", what, kv_strerror(rc));
	else
		say(a, "%s: %s: %s", what, kv_strerror(rc), kv_errmsg());
	return KVCTL_FAIL;
}

/* ---- the escaped form (kvctl(1), "ESCAPED FORM") ---- */

/* Bytes shown as themselves; everything else is escaped. A space is
 * kept inside a field but escaped at either end, where editors and
 * shell `read` tend to drop it. */
static int is_plain(unsigned c, int edge)
{
	return (c > ' ' && c < 0x7f && c != '\\') || (c == ' ' && !edge);
}

static void put_byte(FILE *f, unsigned c, int edge)
{
	static const char hex[] = "0123456789abcdef";

	if (is_plain(c, edge)) {
		putc((int)c, f);
		return;
	}
	putc('\\', f);
	switch (c) {
	case '\\': putc('\\', f); break;
	case '\t': putc('t', f); break;
	case '\n': putc('n', f); break;
	case '\r': putc('r', f); break;
	default:
		putc('x', f);
		putc(hex[c >> 4], f);
		putc(hex[c & 15], f);
	}
}

static void put_escaped(FILE *f, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		put_byte(f, s[i], i == 0 || i + 1 == n);
}

static int hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes the escape that starts at s[*i] (a backslash); advances *i to
 * its last character. */
static int decode_escape(const char *s, size_t n, size_t *i, char *out,
			 const char **why)
{
	int hi, lo;

	if (*i + 1 >= n) {
		*why = "backslash at the end of a field";
		return -1;
	}
	switch (s[++*i]) {
	case '\\': *out = '\\'; return 0;
	case 't': *out = '\t'; return 0;
	case 'n': *out = '\n'; return 0;
	case 'r': *out = '\r'; return 0;
	case 'x': break;
	default:
		*why = "unknown escape (want \\\\, \\t, \\n, \\r or \\xHH)";
		return -1;
	}
	if (*i + 2 >= n || (hi = hex_digit(s[*i + 1])) < 0 ||
	    (lo = hex_digit(s[*i + 2])) < 0) {
		*why = "\\x not followed by two hexadecimal digits";
		return -1;
	}
	*i += 2;
	*out = (char)(hi << 4 | lo);
	return 0;
}

/* Decodes b in place (the decoded form is never longer). A raw CR is
 * refused: it is what a CRLF conversion leaves behind, and keeping it
 * would change values without a word. */
static int unescape(struct bytes *b, const char **why)
{
	size_t o = 0;

	for (size_t i = 0; i < b->n; i++) {
		char c = b->p[i];
		if (c == '\r') {
			*why = "raw carriage return (CRLF line ends?)";
			return -1;
		}
		if (c == '\\' && decode_escape(b->p, b->n, &i, &c, why))
			return -1;
		b->p[o++] = c;
	}
	b->n = o;
	return 0;
}

/* As fail_kv, naming the key in the escaped form: a raw key could hold
 * terminal control bytes. */
static int fail_key(const struct args *a, const struct bytes *key, int rc)
{
	fprintf(stderr, "kvctl: %s: ", a->cmd->name);
	put_escaped(stderr, key->p, key->n);
	if (rc == KV_ENOTFOUND)
		fprintf(stderr, ": %s\n", kv_strerror(rc));
	else
		fprintf(stderr, ": %s: %s\n", kv_strerror(rc), kv_errmsg());
	return KVCTL_FAIL;
}

/* A KEY, VALUE or scan bound from the command line: raw bytes, or the
 * escaped form with --escaped (the only way to give a NUL byte). */
static int arg_bytes(const struct args *a, const char *what, char *s,
		     struct bytes *out)
{
	const char *why;

	out->p = s;
	out->n = strlen(s);
	if (a->escaped && unescape(out, &why)) {
		say(a, "%s: %s", what, why);
		return -1;
	}
	return 0;
}

static int arg_key(const struct args *a, char *s, struct bytes *key)
{
	if (arg_bytes(a, "KEY", s, key))
		return -1;
	if (key->n == 0) {
		say(a, "KEY must not be empty");
		return -1;
	}
	return 0;
}

/* ---- numbers, sizes, time ---- */

static int parse_num(const struct args *a, const char *opt, const char *s,
		     long long min, uint64_t *out)
{
	const char *err;
	long long v = strtonum(s, min, LLONG_MAX, &err);

	if (err) {
		say(a, "%s %s: %s", opt, s, err);
		return -1;
	}
	*out = (uint64_t)v;
	return 0;
}

/* Bytes as "5.7K" with humanize_number (at most 4 characters, as in
 * ls -h), or exactly with --bytes. */
static const char *fmt_size(const struct args *a, uint64_t n, char *buf,
			    size_t len)
{
	if (a->bytes || n > INT64_MAX ||
	    humanize_number(buf, len < 5 ? len : 5, (int64_t)n, "",
			    HN_AUTOSCALE, HN_B | HN_DECIMAL | HN_NOSPACE) < 0)
		snprintf(buf, len, "%" PRIu64, n);
	return buf;
}

/* Unix time in ms, the clock libkv's TTLs use by default. */
static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- progress bar (compact, verify, repair) ---- */

struct bar {
	const char *label;
	int shown;
	int pct;                /* last percentage drawn, or -1 */
};

static int draw_bar(void *ctx, uint64_t done, uint64_t total)
{
	struct bar *b = ctx;
	char cells[41];
	int pct = total && done < total ? (int)(done * 100 / total) : 100;
	int full = pct * 40 / 100;

	/* Called about every MiB; redraw only when the figure moves. */
	if (pct == b->pct)
		return 0;
	b->pct = pct;
	memset(cells, '#', (size_t)full);
	memset(cells + full, '.', (size_t)(40 - full));
	cells[40] = '\0';
	fprintf(stderr, "\r%-8s [%s] %3d%%", b->label, cells, pct);
	b->shown = 1;
	return 0;
}

/* Wipes the bar so that the next message starts on a clean line. */
static void end_bar(struct bar *b)
{
	if (b->shown)
		fprintf(stderr, "\r%*s\r", 60, "");
	b->shown = 0;
	b->pct = -1;
}

/* The bar only on a terminal: in a pipe or a log it would be noise. */
static kv_progress_fn bar_fn(void)
{
	return isatty(STDERR_FILENO) ? draw_bar : NULL;
}

/* ---- opening and closing ---- */

/* libkv's recovery warnings (a torn tail cut, damage skipped, a hint
 * refused) name files and offsets that no figure gives. */
static void print_log(void *ctx, int level, const char *msg)
{
	const struct args *a = ctx;

	if (level <= KV_LOG_WARN)
		say(a, "libkv: %s", msg);
}

static void init_opts(struct args *a, uint32_t flags, kv_options *o)
{
	kv_options_init(o);
	o->flags = flags;
	o->log = print_log;
	o->log_ctx = a;
	if (flags & KV_RDONLY)
		return;
	/* A short-lived tool must not start background work, and should
	 * take any value the format can hold, so that load can restore what
	 * an application with a raised max_value_size wrote. */
	o->flags |= KV_NO_AUTO_COMPACT;
	o->max_value_size = KV_MAX_VALUE;
	o->max_file_size = a->segment_size;
	o->expected_keys = a->expected_keys;
}

/* Says why kv_open failed; returns -1. */
static int fail_open(const struct args *a, const kv_options *o, int rc)
{
	/* For a missing store kv_errmsg() would only repeat the path and
	 * suggest KV_CREATE. */
	if (rc != KV_ENOENT)
		fail_kv(a, a->pos[0], rc);
	else if (a->cmd->opts & OPT(O_CREATE))
		say(a, "%s: %s (--create makes one)", a->pos[0], kv_strerror(rc));
	else
		say(a, "%s: %s", a->pos[0], kv_strerror(rc));
	if (rc == KV_ECORRUPT && !(o->flags & KV_SALVAGE))
		say(a, "kvctl verify shows all the damage; kvctl repair"
		    " salvages the rest");
	return -1;
}

static int open_store(const struct args *a, const kv_options *o, kv_t **db)
{
	int rc = kv_open(a->pos[0], o, db);

	return rc == KV_OK ? 0 : fail_open(a, o, rc);
}

/* kv_close of a writer syncs, so its failure is a lost write. */
static int close_store(const struct args *a, kv_t *db, int status)
{
	int rc = kv_close(db);

	if (rc != KV_OK && status == KVCTL_OK)
		return fail_kv(a, "close", rc);
	return status;
}

/* Flushes stdout and turns a write error (a full disk, a closed pipe)
 * into a failure instead of a silent short output. */
static int finish_output(const struct args *a, FILE *f, const char *name)
{
	if (fflush(f) == 0 && !ferror(f))
		return KVCTL_OK;
	say(a, "%s: %s", name, strerror(errno ? errno : EIO));
	return KVCTL_FAIL;
}

/* ---- get, put, del ---- */

static int cmd_get(struct args *a)
{
	struct bytes key;
	kv_options o;
	kv_t *db;
	void *val;
	size_t vlen;
	int rc;

	if (arg_key(a, a->pos[1], &key))
		return KVCTL_USAGE;
	init_opts(a, KV_RDONLY, &o);
	if (open_store(a, &o, &db))
		return KVCTL_FAIL;
	/* Report before kv_close, which may set kv_errmsg() itself. */
	if ((rc = kv_get(db, key.p, key.n, &val, &vlen)) != KV_OK) {
		fail_key(a, &key, rc);
		kv_close(db);
		return KVCTL_FAIL;
	}
	kv_close(db);
	fwrite(val, 1, vlen, stdout);
	if (a->newline)
		putchar('\n');
	kv_free(val);
	return finish_output(a, stdout, "stdout");
}

/* Reads all of f, binary safe. KV_MAX_VALUE bounds what is worth
 * reading: libkv would refuse anything longer. */
static int read_all(FILE *f, struct bytes *out)
{
	size_t cap = 1 << 16, got;
	char *buf = malloc(cap), *p;

	out->n = 0;
	while (buf && (got = fread(buf + out->n, 1, cap - out->n, f)) > 0) {
		out->n += got;
		if (out->n < cap)
			continue;
		if (cap > KV_MAX_VALUE || !(p = realloc(buf, cap * 2))) {
			errno = cap > KV_MAX_VALUE ? EFBIG : ENOMEM;
			break;
		}
		buf = p;
		cap *= 2;
	}
	out->p = buf;
	if (buf && !ferror(f) && feof(f))
		return 0;
	free(buf);
	return -1;
}

static int put_value(struct args *a, struct bytes *val)
{
	if (a->npos > 2)
		return arg_bytes(a, "VALUE", a->pos[2], val) ? KVCTL_USAGE : 0;
	if (read_all(stdin, val) == 0)
		return 0;
	say(a, "stdin: %s", strerror(errno));
	return KVCTL_FAIL;
}

static int cmd_put(struct args *a)
{
	struct bytes key, val = { NULL, 0 };
	kv_options o;
	kv_t *db;
	int rc;

	if (arg_key(a, a->pos[1], &key))
		return KVCTL_USAGE;
	if ((rc = put_value(a, &val)) != 0)
		return rc;
	init_opts(a, a->create ? KV_CREATE : 0, &o);
	if (open_store(a, &o, &db))
		rc = KVCTL_FAIL;
	else if ((rc = a->ttl_ms
		  ? kv_put_ttl(db, key.p, key.n, val.p, val.n, a->ttl_ms)
		  : kv_put(db, key.p, key.n, val.p, val.n)) != KV_OK)
		rc = close_store(a, db, fail_kv(a, "put", rc));
	else
		rc = close_store(a, db, KVCTL_OK);
	if (a->npos == 2)
		free(val.p);
	return rc;
}

static int cmd_del(struct args *a)
{
	struct bytes key;
	kv_options o;
	kv_t *db;
	int rc;

	if (arg_key(a, a->pos[1], &key))
		return KVCTL_USAGE;
	init_opts(a, 0, &o);
	if (open_store(a, &o, &db))
		return KVCTL_FAIL;
	rc = kv_delete(db, key.p, key.n);
	if (rc != KV_OK)
		return close_store(a, db, fail_key(a, &key, rc));
	return close_store(a, db, KVCTL_OK);
}

/* ---- scan ---- */

static int print_pair(void *ctx, const void *key, size_t klen,
		      const void *val, size_t vlen)
{
	const struct args *a = ctx;

	put_escaped(stdout, key, klen);
	if (!a->keys_only) {
		putchar('\t');
		put_escaped(stdout, val, vlen);
	}
	putchar('\n');
	/* A positive value stops kv_scan and is told apart from KV_E*. */
	return ferror(stdout) ? 1 : 0;
}

/* An optional scan bound; absent stays { NULL, 0 }, which kv_scan reads
 * as "no bound". */
static int scan_bound(const struct args *a, const char *opt, char *s,
		      struct bytes *b)
{
	b->p = NULL;
	b->n = 0;
	return s ? arg_bytes(a, opt, s, b) : 0;
}

static int cmd_scan(struct args *a)
{
	struct bytes pre, lo, hi;
	kv_options o;
	kv_t *db;
	int rc;

	if (scan_bound(a, "--prefix", a->prefix, &pre) ||
	    scan_bound(a, "--start", a->start, &lo) ||
	    scan_bound(a, "--end", a->end, &hi))
		return KVCTL_USAGE;
	init_opts(a, KV_RDONLY, &o);
	if (open_store(a, &o, &db))
		return KVCTL_FAIL;
	rc = kv_scan(db, lo.p, lo.n, hi.p, hi.n, pre.p, pre.n,
		     (size_t)(a->limit < SIZE_MAX ? a->limit : SIZE_MAX),
		     print_pair, a);
	if (rc < 0)
		fail_kv(a, "scan", rc);
	kv_close(db);
	return rc < 0 ? KVCTL_FAIL : finish_output(a, stdout, "stdout");
}

/* ---- stats ---- */

/* The kv_stats figures shown, under their field names so that kv_stats(3)
 * explains each; the per-handle ones (sync mode, compactions since open)
 * say nothing about the store and are left out. */
static const struct stat_field {
	const char *name;
	size_t off;
	int is_size;
} stat_fields[] = {
#define F(name, is_size) { #name, offsetof(struct kv_stats, name), is_size }
	F(live_keys, 0), F(live_bytes, 1), F(dead_bytes, 1), F(segments, 0),
	F(disk_bytes, 1), F(keydir_bytes, 1), F(last_lsn, 0),
	F(compressed_values, 0), F(compression_saved_bytes, 1),
	F(recovered_hint_segments, 0), F(recovered_hint_rejected, 0),
	F(recovered_truncated_bytes, 1), F(recovered_skipped_records, 0),
	F(recovered_skipped_bytes, 1),
#undef F
};

static void print_stats(const struct args *a, const struct kv_stats *st)
{
	char buf[32];

	for (size_t i = 0; i < sizeof stat_fields / sizeof stat_fields[0]; i++) {
		const struct stat_field *f = &stat_fields[i];
		uint64_t v;

		memcpy(&v, (const char *)st + f->off, sizeof v);
		if (f->is_size)
			fmt_size(a, v, buf, sizeof buf);
		else
			snprintf(buf, sizeof buf, "%" PRIu64, v);
		printf("%-26s %s\n", f->name, buf);
	}
}

static void print_segment(const struct args *a, const kv_segment_stats *s)
{
	char b1[32], b2[32], b3[32];

	/* No "active": stats opens read-only, and such a handle appends to
	 * no segment. */
	printf("%016" PRIx64 " %12s %12s %12s  %s%s\n", s->seq,
	       fmt_size(a, s->bytes, b1, sizeof b1),
	       fmt_size(a, s->live_bytes, b2, sizeof b2),
	       fmt_size(a, s->dead_bytes, b3, sizeof b3),
	       s->flags & KV_SEGMENT_COMPACTED ? "compacted " : "",
	       s->flags & KV_SEGMENT_HINT ? "hint" : "");
}

/* The figures of every segment, in *arr (free it); *n of them. */
static int list_segments(const struct args *a, kv_t *db,
			 kv_segment_stats **arr, size_t *n)
{
	size_t cap;
	int rc;

	*arr = NULL;
	if ((rc = kv_stats_segments(db, NULL, 0, n)) != KV_OK)
		return fail_kv(a, "segments", rc);
	cap = *n ? *n : 1;
	if (!(*arr = calloc(cap, sizeof **arr)))
		return fail_kv(a, "segments", KV_ENOMEM);
	if ((rc = kv_stats_segments(db, *arr, cap, n)) != KV_OK)
		return fail_kv(a, "segments", rc);
	if (*n > cap)           /* a compaction added some meanwhile */
		*n = cap;
	return KVCTL_OK;
}

static int print_segments(const struct args *a, kv_t *db)
{
	kv_segment_stats *arr;
	size_t n;
	int rc = list_segments(a, db, &arr, &n);

	if (rc == KVCTL_OK) {
		printf("\n%-16s %12s %12s %12s  %s\n", "segment", "size",
		       "live", "dead", "flags");
		for (size_t i = 0; i < n; i++)
			print_segment(a, &arr[i]);
	}
	free(arr);
	return rc;
}

static int cmd_stats(struct args *a)
{
	struct kv_stats st = { .size = sizeof st };
	kv_options o;
	kv_t *db;
	int rc;

	init_opts(a, KV_RDONLY, &o);
	if (open_store(a, &o, &db))
		return KVCTL_FAIL;
	if ((rc = kv_stats(db, &st)) != KV_OK) {
		fail_kv(a, "stats", rc);
		kv_close(db);
		return KVCTL_FAIL;
	}
	print_stats(a, &st);
	rc = print_segments(a, db);
	kv_close(db);
	return rc ? rc : finish_output(a, stdout, "stdout");
}

/* ---- compact, verify, repair ---- */

/* kv_compact reads at most compact_max_bytes per call, so call it again
 * until a pass frees nothing. It ends: each pass that goes on shrank the
 * store, and nothing else writes to it while we hold the write lock. */
static int compact_all(kv_t *db, kv_compact_stats *sum)
{
	kv_compact_stats cs;
	int rc;

	memset(sum, 0, sizeof *sum);
	do {
		rc = kv_compact(db, &cs);
		sum->segments_in += cs.segments_in;
		sum->segments_out += cs.segments_out;
		sum->bytes_read += cs.bytes_read;
		sum->bytes_written += cs.bytes_written;
		sum->bytes_freed += cs.bytes_freed;
	} while (rc == KV_OK && cs.segments_in && cs.bytes_freed);
	return rc;
}

static void print_compact(const struct args *a, const kv_compact_stats *cs)
{
	char r[32], w[32], f[32];

	printf("%s: %" PRIu64 " segments rewritten into %" PRIu64
	       "; read %s, written %s, freed %s\n", a->cmd->name,
	       cs->segments_in, cs->segments_out,
	       fmt_size(a, cs->bytes_read, r, sizeof r),
	       fmt_size(a, cs->bytes_written, w, sizeof w),
	       fmt_size(a, cs->bytes_freed, f, sizeof f));
}

static int cmd_compact(struct args *a)
{
	struct bar bar = { "compact", 0, -1 };
	kv_compact_stats cs;
	kv_options o;
	kv_t *db;
	int rc;

	init_opts(a, 0, &o);
	o.progress = bar_fn();
	o.progress_ctx = &bar;
	if (open_store(a, &o, &db))
		return KVCTL_FAIL;
	rc = compact_all(db, &cs);
	end_bar(&bar);
	if (rc != KV_OK)
		return close_store(a, db, fail_kv(a, "compaction", rc));
	print_compact(a, &cs);
	return close_store(a, db, KVCTL_OK);
}

/* Runs kv_verify with the bar. */
static int verify_store(kv_t *db, kv_verify_stats *vs)
{
	struct bar bar = { "verify", 0, -1 };
	int rc = kv_verify(db, bar_fn(), &bar, vs);

	end_bar(&bar);
	return rc;
}

static void say_damage(const struct args *a, const kv_verify_stats *vs)
{
	char buf[32];

	say(a, "%" PRIu64 " damaged place%s (%s) in %" PRIu64 " segments; %"
	    PRIu64 " sound records", vs->bad_ranges,
	    vs->bad_ranges == 1 ? "" : "s",
	    fmt_size(a, vs->bad_bytes, buf, sizeof buf), vs->segments,
	    vs->records);
}

/* Says what kv_verify found: figures on stdout when sound, the first
 * damage and the counts on stderr when not. */
static int run_verify(const struct args *a, kv_t *db)
{
	kv_verify_stats vs = { 0 };
	char buf[32];
	int rc = verify_store(db, &vs);

	if (rc != KV_OK) {
		fail_kv(a, rc == KV_ECORRUPT ? a->pos[0] : "verify", rc);
		if (rc == KV_ECORRUPT)
			say_damage(a, &vs);
		return KVCTL_FAIL;
	}
	printf("%s: sound: %" PRIu64 " segments, %" PRIu64
	       " records, %s read\n", a->cmd->name, vs.segments, vs.records,
	       fmt_size(a, vs.bytes, buf, sizeof buf));
	return KVCTL_OK;
}

/* A torn tail is what a crash leaves, not damage: kv_verify does not
 * count it, and the next read-write open cuts it. Worth a word, still. */
static void note_torn_tail(const struct args *a, kv_t *db)
{
	struct kv_stats st = { .size = sizeof st };
	char buf[32];

	if (kv_stats(db, &st) == KV_OK && st.recovered_truncated_bytes)
		printf("%s: note: the log ends in a torn tail of %s, which the"
		       " next read-write open cuts\n", a->cmd->name,
		       fmt_size(a, st.recovered_truncated_bytes, buf,
				sizeof buf));
}

/* The strict open failed on damage, which names only the first place:
 * open again with KV_SALVAGE so that kv_verify counts them all. A file
 * the salvage open had to leave out whole is not counted; its libkv:
 * warning above names it. */
static int verify_salvaged(struct args *a, kv_options *o)
{
	kv_verify_stats vs = { 0 };
	kv_t *db;
	int rc;

	fail_kv(a, a->pos[0], KV_ECORRUPT);
	o->flags |= KV_SALVAGE;
	if (open_store(a, o, &db))
		return KVCTL_FAIL;
	rc = verify_store(db, &vs);
	kv_close(db);
	if (rc == KV_ECORRUPT)
		say_damage(a, &vs);
	else if (rc == KV_OK)
		say(a, "the rest is sound: %" PRIu64 " records in %" PRIu64
		    " segments", vs.records, vs.segments);
	else
		fail_kv(a, "verify", rc);
	return KVCTL_FAIL;
}

/* Sound means that the store opens without KV_SALVAGE and that kv_verify
 * finds every record of every segment sound. */
static int cmd_verify(struct args *a)
{
	kv_options o;
	kv_t *db;
	int rc;

	init_opts(a, KV_RDONLY, &o);
	rc = kv_open(a->pos[0], &o, &db);
	if (rc == KV_ECORRUPT)
		return verify_salvaged(a, &o);
	if (rc != KV_OK) {
		fail_open(a, &o, rc);
		return KVCTL_FAIL;
	}
	rc = run_verify(a, db);
	if (rc == KVCTL_OK)
		note_torn_tail(a, db);
	kv_close(db);
	return rc == KVCTL_OK ? finish_output(a, stdout, "stdout") : rc;
}

static int report_salvage(const struct args *a, kv_t *db)
{
	struct kv_stats st = { .size = sizeof st };
	char b1[32], b2[32];
	int rc = kv_stats(db, &st);

	if (rc != KV_OK)
		return fail_kv(a, "stats", rc);
	printf("%s: open skipped %" PRIu64 " damaged records (%s) and cut"
	       " a torn tail of %s; %" PRIu64 " live keys\n", a->cmd->name,
	       st.recovered_skipped_records,
	       fmt_size(a, st.recovered_skipped_bytes, b1, sizeof b1),
	       fmt_size(a, st.recovered_truncated_bytes, b2, sizeof b2),
	       st.live_keys);
	return KVCTL_OK;
}

/* Salvage leaves out what it cannot read at all, such as a segment whose
 * file header is damaged, and kv_verify does not read what was left out:
 * only a strict open shows that the store is whole again. */
static int check_strict_open(struct args *a)
{
	kv_options o;
	kv_t *db;
	int rc;

	init_opts(a, KV_RDONLY, &o);
	if ((rc = kv_open(a->pos[0], &o, &db)) == KV_OK)
		return close_store(a, db, KVCTL_OK);
	fail_kv(a, "open without salvage", rc);
	say(a, "see \"Repairing a store\" in kv_open(3) for what is left");
	return KVCTL_FAIL;
}

/* KV_SALVAGE opens past the damage, reading every record (hint files
 * too would hide it); compaction then rewrites the damaged segments
 * without their bad ranges, and kv_verify says whether that was enough. */
static int cmd_repair(struct args *a)
{
	struct bar bar = { "repair", 0, -1 };
	kv_compact_stats cs;
	kv_options o;
	kv_t *db;
	int rc;

	init_opts(a, KV_SALVAGE, &o);
	o.progress = bar_fn();
	o.progress_ctx = &bar;
	/* Every damaged segment in one pass: compact_all stops at a pass that
	 * frees nothing, which rewriting a segment plus its hint can be. */
	o.compact_max_bytes = UINT64_MAX;
	if (open_store(a, &o, &db))
		return KVCTL_FAIL;
	if ((rc = report_salvage(a, db)) != KVCTL_OK)
		return close_store(a, db, rc);
	rc = compact_all(db, &cs);
	end_bar(&bar);
	if (rc != KV_OK)
		return close_store(a, db, fail_kv(a, "compaction", rc));
	print_compact(a, &cs);
	rc = close_store(a, db, run_verify(a, db));
	if (rc == KVCTL_OK)
		rc = check_strict_open(a);
	return rc == KVCTL_OK ? finish_output(a, stdout, "stdout") : rc;
}

/* ---- dump ---- */

struct dumper {
	kv_t *db;
	FILE *f;
	uint64_t pairs;
	int rc;                 /* KV_E* from kv_expiry, if that stopped it */
};

static int dump_pair(void *ctx, const void *key, size_t klen,
		     const void *val, size_t vlen)
{
	struct dumper *d = ctx;
	uint64_t expire_ms;
	int rc = kv_expiry(d->db, key, klen, &expire_ms);

	if (rc == KV_ENOTFOUND)         /* expired since kv_scan saw it */
		return 0;
	if (rc != KV_OK) {
		d->rc = rc;
		return 1;
	}
	put_escaped(d->f, key, klen);
	putc('\t', d->f);
	put_escaped(d->f, val, vlen);
	if (expire_ms)
		fprintf(d->f, "\t%" PRIu64, expire_ms);
	putc('\n', d->f);
	d->pairs++;
	return ferror(d->f) ? 1 : 0;
}

/* The end line goes out only after a complete scan, so a dump cut short
 * (a full disk, a failed store) never loads as if it were whole. */
static int dump_store(const struct args *a, kv_t *db, FILE *f,
		      const char *name)
{
	struct dumper d = { db, f, 0, KV_OK };
	int rc;

	fputs(DUMP_HEADER "\n", f);
	rc = kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 0, dump_pair, &d);
	if (rc < 0 || d.rc != KV_OK)
		return fail_kv(a, "scan", rc < 0 ? rc : d.rc);
	if (rc == 0)
		fprintf(f, "end %" PRIu64 "\n", d.pairs);
	return finish_output(a, f, name);
}

static int is_stdio(const struct args *a)
{
	return a->npos < 2 || strcmp(a->pos[1], "-") == 0;
}

static int cmd_dump(struct args *a)
{
	const char *name = is_stdio(a) ? "stdout" : a->pos[1];
	kv_options o;
	kv_t *db;
	FILE *f = stdout;
	int rc;

	init_opts(a, KV_RDONLY, &o);
	if (open_store(a, &o, &db))
		return KVCTL_FAIL;
	if (!is_stdio(a) && !(f = fopen(name, "w"))) {
		say(a, "%s: %s", name, strerror(errno));
		kv_close(db);
		return KVCTL_FAIL;
	}
	rc = dump_store(a, db, f, name);
	kv_close(db);
	if (f != stdout && fclose(f) != 0 && rc == KVCTL_OK) {
		say(a, "%s: %s", name, strerror(errno));
		rc = KVCTL_FAIL;
	}
	return rc;
}

/* ---- load ---- */

struct loader {
	const struct args *a;
	kv_t *db;
	kv_batch *b;
	size_t batch_bytes, batch_max, batch_pairs;
	uint64_t line;          /* number of the line being read */
	uint64_t pairs;         /* pair lines read */
	uint64_t written;       /* pairs committed */
	uint64_t expired;       /* pairs skipped as already expired */
	uint64_t now;           /* the clock libkv sees; see load_clock */
	int ended;              /* the end line has been read */
};

/* libkv turns a TTL back into an expiry with its clock at kv_write. This
 * clock holds still while a batch is built and written, so that expiry is
 * exactly the dumped one, not a millisecond or two later. */
static uint64_t load_clock(void *ctx)
{
	const struct loader *ld = ctx;

	return ld->now;
}

static const char *check_header(const char *s)
{
	size_t n = sizeof DUMP_MAGIC - 1;

	if (strcmp(s, DUMP_HEADER) == 0)
		return NULL;
	if (strncmp(s, DUMP_MAGIC " ", n + 1) == 0)
		return "unsupported dump version (this kvctl reads \""
		       DUMP_HEADER "\")";
	return "not a kvctl dump (no \"" DUMP_HEADER "\" line)";
}

/* Reads line 1 before the store is opened, so that a file that is not a
 * dump at all creates no store. */
static int read_header(const struct args *a, FILE *in, const char *name)
{
	char *buf = NULL;
	size_t cap = 0;
	ssize_t len = getline(&buf, &cap, in);
	const char *why = "empty input";

	if (len > 0 && buf[len - 1] == '\n') {
		buf[len - 1] = '\0';
		why = check_header(buf);
	} else if (len > 0) {
		why = "no newline at the end (truncated?)";
	}
	free(buf);
	if (!why)
		return 0;
	if (ferror(in))
		say(a, "%s: %s", name, strerror(errno));
	else
		say(a, "%s:1: %s", name, why);
	return -1;
}

/* Strictly digits: strtonum alone would also take signs and spaces. */
static int parse_count(const char *s, long long min, uint64_t *out)
{
	const char *err;
	long long v;

	if (*s == '\0' || strspn(s, "0123456789") != strlen(s))
		return -1;
	v = strtonum(s, min, LLONG_MAX, &err);
	if (err)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

static int load_end(struct loader *ld, const char *s, const char **why)
{
	uint64_t n;

	if (strncmp(s, "end ", 4) != 0 || parse_count(s + 4, 0, &n)) {
		*why = "neither a pair (no tab) nor \"end N\"";
		return -1;
	}
	if (n != ld->pairs) {
		*why = "end line count differs from the pairs read";
		return -1;
	}
	ld->ended = 1;
	return 0;
}

static int flush_batch(struct loader *ld)
{
	int rc = kv_write(ld->db, ld->b);

	if (rc != KV_OK)
		return fail_kv(ld->a, "write", rc);
	ld->written += kv_batch_count(ld->b);
	kv_batch_clear(ld->b);
	ld->batch_bytes = 0;
	return 0;
}

/* Splits a pair line at its tabs into KEY, VALUE and EXPIRY (NULL when
 * absent); the fields are decoded in place. */
static int split_pair(char *s, struct bytes *key, struct bytes *val,
		      char **expiry, const char **why)
{
	char *t1 = strchr(s, '\t'), *t2;

	*key = (struct bytes){ s, (size_t)(t1 - s) };
	val->p = t1 + 1;
	*expiry = NULL;
	if ((t2 = strchr(val->p, '\t')) != NULL) {
		*t2 = '\0';
		*expiry = t2 + 1;
		if (strchr(*expiry, '\t')) {
			*why = "more than three fields";
			return -1;
		}
	}
	val->n = strlen(val->p);
	if (unescape(key, why) || unescape(val, why))
		return -1;
	if (key->n == 0) {
		*why = "empty key";
		return -1;
	}
	return 0;
}

/* Adds a pair to the batch, or counts it as skipped if it has already
 * expired; the TTL is what is left of the dumped expiry now. */
static int add_pair(struct loader *ld, const struct bytes *key,
		    const struct bytes *val, uint64_t expire_ms)
{
	int rc;

	if (kv_batch_count(ld->b) == 0)
		ld->now = now_ms();
	if (expire_ms && expire_ms <= ld->now) {
		ld->expired++;
		return 0;
	}
	rc = expire_ms
		? kv_batch_put_ttl(ld->b, key->p, key->n, val->p, val->n,
				   expire_ms - ld->now)
		: kv_batch_put(ld->b, key->p, key->n, val->p, val->n);
	if (rc != KV_OK)
		return fail_kv(ld->a, "batch", rc);
	ld->batch_bytes += key->n + val->n;
	if (kv_batch_count(ld->b) >= ld->batch_pairs ||
	    ld->batch_bytes >= ld->batch_max)
		return flush_batch(ld);
	return 0;
}

/* Returns -1 for a malformed line (why set), 1 for a failure already
 * reported, 0 when the line was taken. */
static int load_pair(struct loader *ld, char *s, const char **why)
{
	struct bytes key, val;
	uint64_t expire_ms = 0;
	char *expiry;

	if (split_pair(s, &key, &val, &expiry, why))
		return -1;
	if (expiry && parse_count(expiry, 1, &expire_ms)) {
		*why = "expiry is not a positive decimal number";
		return -1;
	}
	ld->pairs++;
	return add_pair(ld, &key, &val, expire_ms) ? 1 : 0;
}

static int load_line(struct loader *ld, char *s, size_t n, const char **why)
{
	if (memchr(s, '\0', n)) {
		*why = "raw NUL byte (write it as \\x00)";
		return -1;
	}
	if (ld->ended) {
		*why = "text after the end line";
		return -1;
	}
	return strchr(s, '\t') ? load_pair(ld, s, why) : load_end(ld, s, why);
}

/* A malformed line stops the load: the batch it was part of is dropped,
 * so the store holds the whole batches before it and nothing after. */
static int load_bad(struct loader *ld, const char *name, const char *why)
{
	say(ld->a, "%s:%" PRIu64 ": %s; %" PRIu64 " pairs were written before"
	    " it", name, ld->line, why, ld->written);
	return KVCTL_FAIL;
}

static int load_lines(struct loader *ld, FILE *in, const char *name)
{
	char *buf = NULL;
	size_t cap = 0;
	ssize_t len;
	const char *why = NULL;
	int rc = 0;

	while (rc == 0 && (len = getline(&buf, &cap, in)) > 0) {
		ld->line++;
		if (buf[len - 1] != '\n') {
			why = "no newline at the end (truncated?)";
			rc = -1;
			break;
		}
		buf[len - 1] = '\0';
		rc = load_line(ld, buf, (size_t)len - 1, &why);
	}
	free(buf);
	if (rc < 0)
		return load_bad(ld, name, why);
	if (rc > 0)
		return KVCTL_FAIL;
	if (ferror(in)) {
		say(ld->a, "%s: %s", name, strerror(errno));
		return KVCTL_FAIL;
	}
	return KVCTL_OK;
}

static int load_stream(struct loader *ld, FILE *in, const char *name)
{
	int rc = load_lines(ld, in, name);

	if (rc != KVCTL_OK)
		return rc;
	if (!ld->ended) {
		ld->line++;
		return load_bad(ld, name, "no end line (truncated?)");
	}
	if (kv_batch_count(ld->b) && flush_batch(ld))
		return KVCTL_FAIL;
	printf("load: %" PRIu64 " pairs written, %" PRIu64
	       " already expired and skipped\n", ld->written, ld->expired);
	return finish_output(ld->a, stdout, "stdout");
}

static int load_into(struct args *a, FILE *in, const char *name)
{
	struct loader ld = { .a = a, .batch_max = LOAD_BATCH_BYTES,
			     .batch_pairs = LOAD_BATCH_PAIRS, .line = 1 };
	kv_options o;
	int rc;

	/* With small segments, batches no bigger than one keep the sizes
	 * near what was asked: a batch never spans segments. */
	if (a->segment_size && a->segment_size < ld.batch_max)
		ld.batch_max = (size_t)a->segment_size;
	if (a->batch && a->batch < ld.batch_pairs)
		ld.batch_pairs = (size_t)a->batch;
	init_opts(a, KV_CREATE, &o);
	ld.now = now_ms();
	o.clock = load_clock;
	o.clock_ctx = &ld;
	if ((rc = kv_batch_new(&ld.b)) != KV_OK)
		return fail_kv(a, "batch", rc);
	if (open_store(a, &o, &ld.db)) {
		kv_batch_free(ld.b);
		return KVCTL_FAIL;
	}
	rc = load_stream(&ld, in, name);
	kv_batch_free(ld.b);
	return close_store(a, ld.db, rc);
}

static int cmd_load(struct args *a)
{
	const char *name = is_stdio(a) ? "stdin" : a->pos[1];
	FILE *in = stdin;
	int rc;

	/* Open the input first: a typo in FILE must not create a store. */
	if (!is_stdio(a) && !(in = fopen(name, "r"))) {
		say(a, "%s: %s", name, strerror(errno));
		return KVCTL_FAIL;
	}
	rc = read_header(a, in, name) ? KVCTL_FAIL : load_into(a, in, name);
	if (in != stdin)
		fclose(in);
	return rc;
}

/* ---- command line ---- */

/* getopt_long value of an option that has no short form. */
#define LONG_ONLY(o) (0x100 + (o))

/* Flags have a short form; options that take a value have only a long
 * one, which keeps command lines readable in scripts. */
static const struct option options[O_COUNT] = {
	[O_HELP] = { "help", no_argument, NULL, 'h' },
	[O_NEWLINE] = { "newline", no_argument, NULL, 'n' },
	[O_ESCAPED] = { "escaped", no_argument, NULL, 'e' },
	[O_CREATE] = { "create", no_argument, NULL, 'c' },
	[O_KEYS] = { "keys-only", no_argument, NULL, 'k' },
	[O_BYTES] = { "bytes", no_argument, NULL, 'b' },
	[O_TTL] = { "ttl", required_argument, NULL, LONG_ONLY(O_TTL) },
	[O_SEGSIZE] = { "segment-size", required_argument, NULL,
			LONG_ONLY(O_SEGSIZE) },
	[O_PREFIX] = { "prefix", required_argument, NULL, LONG_ONLY(O_PREFIX) },
	[O_START] = { "start", required_argument, NULL, LONG_ONLY(O_START) },
	[O_END] = { "end", required_argument, NULL, LONG_ONLY(O_END) },
	[O_LIMIT] = { "limit", required_argument, NULL, LONG_ONLY(O_LIMIT) },
	[O_BATCH] = { "batch", required_argument, NULL, LONG_ONLY(O_BATCH) },
	[O_EXPECTED] = { "expected-keys", required_argument, NULL,
			 LONG_ONLY(O_EXPECTED) },
};

#define H_ESCKEY  "  -e, --escaped       KEY is in the escaped form\n"
#define H_SEGSIZE "      --segment-size BYTES\n" \
	"                      segment rollover size for this run (64 MiB)\n"
#define H_BYTES   "  -b, --bytes         exact byte counts, not 12K\n"

static const struct cmd commands[] = {
	{ "get", cmd_get, OPT(O_NEWLINE) | OPT(O_ESCAPED), 2, 2,
	  "[-en] DIR KEY", "print the value of KEY, raw",
	  "  -n, --newline       add a newline after the value\n" H_ESCKEY },
	{ "put", cmd_put, OPT(O_CREATE) | OPT(O_ESCAPED) | OPT(O_TTL) |
	  OPT(O_SEGSIZE), 2, 3,
	  "[-ce] [--ttl MS] [--segment-size BYTES] DIR KEY [VALUE]",
	  "store VALUE, or all of standard input, under KEY",
	  "  -c, --create        create the store if it does not exist\n"
	  "      --ttl MS        the key expires MS milliseconds from now\n"
	  "  -e, --escaped       KEY and VALUE are in the escaped form\n"
	  H_SEGSIZE },
	{ "del", cmd_del, OPT(O_ESCAPED) | OPT(O_SEGSIZE), 2, 2,
	  "[-e] [--segment-size BYTES] DIR KEY", "delete KEY",
	  H_ESCKEY H_SEGSIZE },
	{ "scan", cmd_scan, OPT(O_ESCAPED) | OPT(O_KEYS) | OPT(O_PREFIX) |
	  OPT(O_START) | OPT(O_END) | OPT(O_LIMIT), 1, 1,
	  "[-ek] [--prefix P] [--start S] [--end E] [--limit N] DIR",
	  "list pairs in key order, one per line, escaped",
	  "      --prefix P      keys that begin with P\n"
	  "      --start S       keys >= S\n"
	  "      --end E         keys < E\n"
	  "      --limit N       at most N pairs (0: no limit)\n"
	  "  -k, --keys-only     keys only, no values\n"
	  "  -e, --escaped       P, S and E are in the escaped form\n" },
	{ "stats", cmd_stats, OPT(O_BYTES), 1, 1, "[-b] DIR",
	  "show the store's figures and each segment's", H_BYTES },
	{ "compact", cmd_compact, OPT(O_BYTES) | OPT(O_SEGSIZE), 1, 1,
	  "[-b] [--segment-size BYTES] DIR",
	  "reclaim the space of dead records now", H_BYTES H_SEGSIZE },
	{ "verify", cmd_verify, OPT(O_BYTES), 1, 1, "[-b] DIR",
	  "check every record of every segment", H_BYTES },
	{ "dump", cmd_dump, 0, 1, 2, "DIR [FILE]",
	  "write every live pair in the portable text format", "" },
	{ "load", cmd_load, OPT(O_SEGSIZE) | OPT(O_BATCH) | OPT(O_EXPECTED), 1,
	  2, "[--batch N] [--expected-keys N] [--segment-size BYTES] DIR [FILE]",
	  "write the pairs of a dump, creating the store if missing",
	  "      --batch N       at most N pairs per atomic batch"
	  " (default 1000)\n"
	  "      --expected-keys N\n"
	  "                      size the index for N keys at the open\n"
	  H_SEGSIZE },
	{ "repair", cmd_repair, OPT(O_BYTES) | OPT(O_SEGSIZE), 1, 1,
	  "[-b] [--segment-size BYTES] DIR",
	  "salvage a damaged store, rewrite it, and verify it",
	  H_BYTES H_SEGSIZE },
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
	fputs("usage: kvctl COMMAND [OPTIONS] DIR [ARGS]\n"
	      "       kvctl COMMAND --help\n"
	      "       kvctl --help | --version\n\ncommands:\n", f);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name,
			commands[i].summary);
	fputs("\nSee kvctl(1).\n", f);
}

static void cmd_usage(FILE *f, const struct cmd *c)
{
	fprintf(f, "usage: kvctl %s %s\n", c->name, c->synopsis);
}

static void cmd_help(const struct cmd *c)
{
	cmd_usage(stdout, c);
	printf("\n%c%s.\n\n%s  -h, --help          show this help\n",
	       c->summary[0] - 'a' + 'A', c->summary + 1, c->help);
}

static const struct cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* getopt_long sees only the command's own options, so it rejects the
 * others itself and abbreviations cannot match an option of another
 * command. */
static void build_options(unsigned mask, struct option *lo, char *so)
{
	size_t nl = 0, ns = 0;

	for (int i = 0; i < O_COUNT; i++) {
		if (!(mask & OPT(i)))
			continue;
		lo[nl++] = options[i];
		if (options[i].val < 0x100)
			so[ns++] = (char)options[i].val;
	}
	memset(&lo[nl], 0, sizeof lo[nl]);
	so[ns] = '\0';
}

static int set_opt(struct args *a, int val, char *arg)
{
	switch (val) {
	case 'h': a->help = 1; return 0;
	case 'n': a->newline = 1; return 0;
	case 'e': a->escaped = 1; return 0;
	case 'c': a->create = 1; return 0;
	case 'k': a->keys_only = 1; return 0;
	case 'b': a->bytes = 1; return 0;
	case LONG_ONLY(O_PREFIX): a->prefix = arg; return 0;
	case LONG_ONLY(O_START): a->start = arg; return 0;
	case LONG_ONLY(O_END): a->end = arg; return 0;
	case LONG_ONLY(O_TTL):
		return parse_num(a, "--ttl", arg, 1, &a->ttl_ms);
	case LONG_ONLY(O_SEGSIZE):
		return parse_num(a, "--segment-size", arg, 1, &a->segment_size);
	case LONG_ONLY(O_BATCH):
		return parse_num(a, "--batch", arg, 1, &a->batch);
	case LONG_ONLY(O_EXPECTED):
		return parse_num(a, "--expected-keys", arg, 1,
				 &a->expected_keys);
	case LONG_ONLY(O_LIMIT):
		return parse_num(a, "--limit", arg, 0, &a->limit);
	default:
		return -1;      /* '?': getopt_long has said why */
	}
}

/* argv[0] is the command name. Returns -1 when the command should run,
 * else the exit status (help shown, or a usage error reported). */
static int parse_args(const struct cmd *c, int argc, char **argv,
		      struct args *a)
{
	struct option lo[O_COUNT + 1];
	char so[O_COUNT + 1], prog[32];
	int val;

	memset(a, 0, sizeof *a);
	a->cmd = c;
	build_options(c->opts | OPT(O_HELP), lo, so);
	/* getopt_long prefixes its messages with argv[0]. */
	snprintf(prog, sizeof prog, "kvctl: %s", c->name);
	argv[0] = prog;
	while ((val = getopt_long(argc, argv, so, lo, NULL)) != -1)
		if (set_opt(a, val, optarg) != 0) {
			cmd_usage(stderr, c);
			return KVCTL_USAGE;
		}
	if (a->help) {
		cmd_help(c);
		return KVCTL_OK;
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	if (a->npos < c->min_pos || a->npos > c->max_pos) {
		say(a, a->npos < c->min_pos ? "missing arguments"
					    : "too many arguments");
		cmd_usage(stderr, c);
		return KVCTL_USAGE;
	}
	return -1;
}

int main(int argc, char **argv)
{
	const struct cmd *c;
	struct args a;
	int rc;

	if (argc < 2) {
		usage(stderr);
		return KVCTL_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return KVCTL_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("kvctl (libkv) %s\n", kv_version(NULL, NULL, NULL));
		return KVCTL_OK;
	}
	if (!(c = find_cmd(argv[1]))) {
		fprintf(stderr, "kvctl: unknown %s '%s'\n",
			argv[1][0] == '-' ? "option" : "command", argv[1]);
		usage(stderr);
		return KVCTL_USAGE;
	}
	if ((rc = parse_args(c, argc - 1, argv + 1, &a)) >= 0)
		return rc;
	return c->run(&a);
}
