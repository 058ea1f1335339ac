/*
 * test_corrupt.c - corrupt files at scale (RELIABILITY-PLAN T9).
 *
 * Each store is built by a seeded random workload (puts, TTL puts,
 * deletes, batches, compactions, reopens) over 50 keys with small
 * segments, then captured as an image of its files: after a clean close
 * (every sealed segment has a hint) or while still open (a crash image:
 * sealed log segments without hints). Each case applies one random damage
 * to a copy of the image and opens it three ways: strict, KV_SALVAGE and
 * (one case in four) KV_RDONLY.
 *
 * The expectations come from the files, not from the library: the test
 * parses every segment itself (kv-format(5)) to know which record of
 * which key lies where, compares the damaged file with the original byte
 * by byte, and from that decides per record whether it must be applied,
 * must be lost, may be lost, or is applied from a hint but damaged (a read
 * must then fail KV_ECORRUPT). Per key the allowed outcomes follow: the
 * newest record that surely survives, or any newer one that may; a value
 * that is not exactly one of those is a failure, and bytes never written
 * for the key are reported as foreign. The parse is checked against the
 * workload's own model of every value written before any damage.
 *
 * Decided here, and checked as such:
 * - Strict open (and KV_RDONLY) succeeds, or fails KV_ECORRUPT with a file
 *   of the store and an offset in kv_errmsg(); never another error. Damage
 *   to a hint file, or a LOCK file removed or full of junk (libkv's LOCK
 *   is an empty file under flock, so its content means nothing), must not
 *   stop it and must not change a single value.
 * - KV_SALVAGE always opens, whatever the one damage was: a segment with a
 *   bad header is set aside, an empty newest segment (which libkv never
 *   makes: segments are created under a temporary name) likewise.
 * - A sealed log segment without a hint, cut exactly at a record boundary,
 *   cannot be told from a shorter segment: strict opens and those records
 *   are gone. Counted, not failed. With a hint, strict must refuse.
 * - Salvage may drop a sound run (batch or single record) right after
 *   damage in a log segment, and must never apply the sound end of a
 *   damaged batch (counted as "batches applied in part": a failure).
 * - kv_verify fails exactly when, within the sizes the open handle uses,
 *   some segment is not a clean run of sound records.
 * - A read over a damaged record loaded from a hint fails KV_ECORRUPT; but
 *   see KNOWN DEFECT below for a sound record of the same size there.
 *
 * Environment: KV_CORRUPT_CASES (default 5000), KV_CORRUPT_PER_STORE
 * (damages per built store, default 6), KV_CORRUPT_SEED, KV_CORRUPT_ONLY
 * (run one case: its store is rebuilt from the same seed),
 * KV_CORRUPT_KEEP=<dir> (with ONLY: leave the damaged files there),
 * KV_CORRUPT_VERBOSE=1 (outcomes per kind and file), KV_CORRUPT_TRACE=1
 * (name each case before running it), KV_CORRUPT_DEBUG=1 (records of a
 * key that read wrong), KV_CORRUPT_STRICT=1 (fail on the known defect).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

#define NKEYS 50
#define HDR 32u            /* file header and record header, both */
#define MAX_OUT 64         /* allowed outcomes per key */

static int env_flag(const char *name);

/* ---- small buffers and the image of a store directory ---- */

typedef struct buf {
	uint8_t *p;
	size_t n;
} buf;

typedef struct file {
	char name[256];
	buf b;
} file;

typedef struct image {
	file *f;
	int n, cap;
} image;

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	assert_non_null(p);
	return p;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const file *)a)->name, ((const file *)b)->name);
}

static buf slurp(const char *path)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	buf b;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	b.n = (size_t)st.st_size;
	b.p = xmalloc(b.n);
	assert_int_equal(pread(fd, b.p, b.n, 0), (ssize_t)b.n);
	close(fd);
	return b;
}

/* Every regular file of dir, sorted by name. */
static void read_image(const char *dir, image *img)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[4096];

	memset(img, 0, sizeof *img);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (de->d_name[0] == '.' || stat(path, &st) || !S_ISREG(st.st_mode))
			continue;
		if (img->n == img->cap) {
			img->cap = img->cap ? img->cap * 2 : 32;
			img->f = realloc(img->f, (size_t)img->cap * sizeof *img->f);
			assert_non_null(img->f);
		}
		file *f = &img->f[img->n++];
		snprintf(f->name, sizeof f->name, "%s", de->d_name);
		f->b = slurp(path);
	}
	closedir(d);
	qsort(img->f, (size_t)img->n, sizeof *img->f, by_name);
}

static void free_image(image *img)
{
	for (int i = 0; i < img->n; i++)
		free(img->f[i].b.p);
	free(img->f);
	memset(img, 0, sizeof *img);
}

static void empty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[4096];

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		assert_int_equal(unlink(path), 0);
	}
	closedir(d);
}

static void spill(const char *dir, const char *name, const buf *b)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b->p, b->n), (ssize_t)b->n);
	close(fd);
}

/* ---- the record format, read independently of lib/ ---- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

typedef struct hdr {
	uint32_t crc;
	uint8_t type, flags;
	uint16_t klen;
	uint32_t vlen, batch_left;
	uint64_t lsn, expire;
} hdr;

/* Whether a sound record starts at off: the checks kv-format(5) names
 * (type, flags, key length, tombstone without value, LSN, bounds, CRC). */
static int sound_at(const uint8_t *b, uint64_t n, uint64_t off, hdr *h)
{
	if (off > n || n - off < HDR)
		return 0;
	const uint8_t *p = b + off;
	h->crc = le32(p);
	h->type = p[4];
	h->flags = p[5];
	h->klen = (uint16_t)(p[6] | p[7] << 8);
	h->vlen = le32(p + 8);
	h->batch_left = le32(p + 12);
	h->lsn = le64(p + 16);
	h->expire = le64(p + 24);
	if ((h->type != 1 && h->type != 2) || (h->flags & ~1u) || !h->klen ||
	    (h->type == 2 && (h->vlen || h->flags)) || !h->lsn)
		return 0;
	uint64_t size = HDR + (uint64_t)h->klen + h->vlen;
	if (size > n - off)
		return 0;
	return (uint32_t)crc32(0, p + 4, (uInt)(size - 4)) == h->crc;
}

static uint64_t rec_size(const hdr *h)
{
	return HDR + (uint64_t)h->klen + h->vlen;
}

/* A record, or a whole batch when it starts one (batch_left counting down
 * with consecutive LSNs): the unit open applies or refuses. */
static int run_at_bad(const uint8_t *b, uint64_t n, uint64_t off,
		      uint64_t *end, int *nrec, uint64_t *bad)
{
	hdr h, prev;

	*bad = off;
	if (!sound_at(b, n, off, &h))
		return 0;
	*nrec = 1;
	off += rec_size(&h);
	while (h.batch_left) {
		prev = h;
		*bad = off;
		if (!sound_at(b, n, off, &h) || h.batch_left != prev.batch_left - 1 ||
		    h.lsn != prev.lsn + 1)
			return 0;
		off += rec_size(&h);
		(*nrec)++;
	}
	*end = off;
	return 1;
}

static int run_at(const uint8_t *b, uint64_t n, uint64_t off, uint64_t *end,
		  int *nrec)
{
	uint64_t bad;

	return run_at_bad(b, n, off, end, nrec, &bad);
}

/*
 * The torn-write rule for the log's tail (NOTES, recover.c): a bad run at
 * off is a torn write, cut by an open, when no sound run follows it, or
 * when a 512-byte sector lies between that reads as zeros from the bad
 * record (or the start of its sector, if later) to the sector's end: a
 * crash leaves unwritten sectors as zeros. Else it is damage, which
 * strict refuses.
 */
static int torn_write(const uint8_t *b, uint64_t n, uint64_t off, uint64_t bad)
{
	uint64_t next = n, end;
	int nrec;

	for (uint64_t p = off + 1; p + HDR <= n; p++)
		if (run_at(b, n, p, &end, &nrec)) {
			next = p;
			break;
		}
	if (next == n)
		return 1;
	for (uint64_t p = bad & ~UINT64_C(511); p + 512 <= next; p += 512) {
		uint64_t at = p < bad ? bad : p;
		int zero = 1;
		for (uint64_t i = at; zero && i < p + 512; i++)
			zero = b[i] == 0;
		if (zero)
			return 1;
	}
	return 0;
}

/* Whether [HDR, n) is a clean sequence of sound records (no batch rule:
 * what kv_verify checks); counts them. */
static int clean_records(const uint8_t *b, uint64_t n, uint64_t *count)
{
	hdr h;
	uint64_t off = HDR;

	*count = 0;
	while (off < n) {
		if (!sound_at(b, n, off, &h))
			return 0;
		off += rec_size(&h);
		(*count)++;
	}
	return 1;
}

static int parse_seq(const char *name, const char *suffix, uint64_t *seq)
{
	size_t n = strlen(name), sl = strlen(suffix);
	char *end;

	if (n != 16 + sl || strcmp(name + 16, suffix))
		return 0;
	*seq = strtoull(name, &end, 16);
	return end == name + 16;
}

/* ---- the workload and its model ---- */

typedef struct val {
	uint8_t *p;
	size_t n;
} val;

typedef struct keymodel {
	val *hist;            /* every value ever written, in order */
	int nhist, chist;
	int present;          /* final state */
	int cur;              /* index in hist */
	uint64_t expire;
} keymodel;

enum { MODE_PLAIN, MODE_COMPRESS, MODE_UNIFORM, NMODES };
static const char *mode_name[] = { "plain", "compress", "uniform" };

/* One record of the image, as parsed. */
typedef struct rec {
	int file;             /* index in the image */
	uint64_t off, size;
	uint8_t type;
	uint64_t lsn, expire;
	int key;
	int run;              /* index of the first record of its run */
	uint8_t *v;           /* plain value (inflated) */
	size_t vn;
} rec;

typedef struct seginfo {
	int file;             /* index in the image */
	uint64_t seq;
	int compacted, hinted, tail;
	int first, nrec;      /* its records in store.r */
} seginfo;

typedef struct store {
	int mode;
	int crash;            /* image taken while open */
	char key[NKEYS][16];
	size_t klen[NKEYS];
	keymodel km[NKEYS];
	uint64_t now;         /* the fake clock during every check */
	image img;
	rec *r;
	int nr, cr;
	seginfo *seg;
	int nseg;
	int *bykey[NKEYS];    /* record indices, newest LSN first */
	int nbykey[NKEYS];
	int nhints;           /* hint files of non-tail segments */
	uint64_t max_seq;
	kv_options o;
} store;

static void model_write(keymodel *k, const uint8_t *p, size_t n,
			uint64_t expire)
{
	if (k->nhist == k->chist) {
		k->chist = k->chist ? 2 * k->chist : 8;
		k->hist = realloc(k->hist, (size_t)k->chist * sizeof *k->hist);
		assert_non_null(k->hist);
	}
	val *v = &k->hist[k->nhist];
	v->p = xmalloc(n);
	memcpy(v->p, p, n);
	v->n = n;
	k->cur = k->nhist++;
	k->present = 1;
	k->expire = expire;
}

static int model_live(const keymodel *k, uint64_t now)
{
	return k->present && (!k->expire || k->expire > now);
}

/* A value that names its key and version, so foreign bytes show. */
static size_t make_value(const store *s, uint64_t *rng, int key, int ver,
			 uint8_t *out)
{
	size_t n;
	int len;
	char pre[32];

	if (s->mode == MODE_UNIFORM)
		n = 24;
	else if (tu_rand(rng) % 16 == 0)
		n = tu_rand(rng) % 4; /* tiny, even empty */
	else
		n = tu_rand(rng) % 240;
	/* Filler from its own generator: a regular pattern would let bytes
	 * of one value match another's at some shift. */
	uint64_t fill = (uint64_t)ver * 1000003u + (uint64_t)key * 7919u + 1;
	len = snprintf(pre, sizeof pre, "K%d.V%d;", key, ver);
	for (size_t j = 0; j < n; j++) {
		if (j < (size_t)len)
			out[j] = (uint8_t)pre[j];
		else if (s->mode == MODE_COMPRESS)
			out[j] = (uint8_t)('a' + (ver + (int)j / 16) % 3);
		else
			out[j] = (uint8_t)(tu_rand(&fill) >> 56);
	}
	return n;
}

static void set_keys(store *s)
{
	for (int i = 0; i < NKEYS; i++) {
		if (s->mode == MODE_UNIFORM)
			snprintf(s->key[i], sizeof s->key[i], "key%05d", i);
		else
			snprintf(s->key[i], sizeof s->key[i], "k%02d%.*s", i,
				 i % 7, "-------");
		s->klen[i] = strlen(s->key[i]);
	}
}

static void do_put(store *s, kv_t *db, uint64_t *rng, int ver)
{
	uint8_t v[256];
	int k = (int)(tu_rand(rng) % NKEYS);
	size_t n = make_value(s, rng, k, ver, v);
	int ttl = tu_rand(rng) % 6 == 0;
	uint64_t ms = 1 + tu_rand(rng) % 4000;

	if (ttl)
		TU_OK(kv_put_ttl(db, s->key[k], s->klen[k], v, n, ms));
	else
		TU_OK(kv_put(db, s->key[k], s->klen[k], v, n));
	model_write(&s->km[k], v, n, ttl ? tu_clock_ms + ms : 0);
}

static void do_delete(store *s, kv_t *db, uint64_t *rng)
{
	int k = (int)(tu_rand(rng) % NKEYS);
	int live = model_live(&s->km[k], tu_clock_ms);
	int rc = kv_delete(db, s->key[k], s->klen[k]);

	if (rc != (live ? KV_OK : KV_ENOTFOUND))
		fail_msg("build: delete %s: %s (model: %s)", s->key[k],
			 kv_strerror(rc), live ? "live" : "absent");
	s->km[k].present = 0;
}

static void do_batch(store *s, kv_t *db, uint64_t *rng, int *ver)
{
	kv_batch *b;
	int used[NKEYS] = { 0 }, n = 2 + (int)(tu_rand(rng) % 5);
	struct { int k, del; uint8_t v[256]; size_t n; uint64_t exp; } op[6];

	TU_OK(kv_batch_new(&b));
	for (int i = 0; i < n; i++) {
		int k;
		do
			k = (int)(tu_rand(rng) % NKEYS);
		while (used[k]);
		used[k] = 1;
		op[i].k = k;
		op[i].del = s->mode != MODE_UNIFORM && tu_rand(rng) % 4 == 0;
		op[i].exp = 0;
		if (op[i].del) {
			TU_OK(kv_batch_delete(b, s->key[k], s->klen[k]));
			continue;
		}
		op[i].n = make_value(s, rng, k, (*ver)++, op[i].v);
		if (tu_rand(rng) % 6 == 0) {
			uint64_t ms = 1 + tu_rand(rng) % 4000;
			op[i].exp = tu_clock_ms + ms;
			TU_OK(kv_batch_put_ttl(b, s->key[k], s->klen[k], op[i].v,
					       op[i].n, ms));
		} else {
			TU_OK(kv_batch_put(b, s->key[k], s->klen[k], op[i].v,
					   op[i].n));
		}
	}
	TU_OK(kv_write(db, b));
	kv_batch_free(b);
	for (int i = 0; i < n; i++) {
		if (op[i].del)
			s->km[op[i].k].present = 0;
		else
			model_write(&s->km[op[i].k], op[i].v, op[i].n, op[i].exp);
	}
}

/* ---- parsing the image ---- */

static int key_index(const store *s, const uint8_t *k, size_t n)
{
	for (int i = 0; i < NKEYS; i++)
		if (s->klen[i] == n && !memcmp(s->key[i], k, n))
			return i;
	return -1;
}

static void value_of(const uint8_t *p, const hdr *h, uint8_t **v, size_t *vn)
{
	const uint8_t *stored = p + HDR + h->klen;

	if (!(h->flags & 1)) {
		*v = xmalloc(h->vlen);
		memcpy(*v, stored, h->vlen);
		*vn = h->vlen;
		return;
	}
	assert_true(h->vlen > 4);
	uLongf raw = le32(stored);
	*v = xmalloc(raw);
	assert_int_equal(uncompress(*v, &raw, stored + 4, h->vlen - 4), Z_OK);
	*vn = raw;
}

/* qsort has no context argument. */
static const store *sort_store;

static int by_lsn_desc(const void *a, const void *b)
{
	uint64_t x = sort_store->r[*(const int *)a].lsn;
	uint64_t y = sort_store->r[*(const int *)b].lsn;

	return (x < y) - (x > y);
}

static void add_rec(store *s, const rec *r)
{
	if (s->nr == s->cr) {
		s->cr = s->cr ? 2 * s->cr : 256;
		s->r = realloc(s->r, (size_t)s->cr * sizeof *s->r);
		assert_non_null(s->r);
	}
	s->r[s->nr++] = *r;
}

/* Whether [off, n) of b is zeros: preallocated space (segment flag 0x2)
 * that an image taken from an open store holds past the last record. */
static int zeros_from(const uint8_t *b, uint64_t n, uint64_t off)
{
	while (off < n && b[off] == 0)
		off++;
	return off == n;
}

/* Parses the segments of the image: every record must be sound. */
static void parse_image(store *s)
{
	s->seg = xmalloc((size_t)s->img.n * sizeof *s->seg);
	s->nseg = 0;
	s->max_seq = 0;
	for (int i = 0; i < s->img.n; i++) {
		const file *f = &s->img.f[i];
		uint64_t seq;
		if (parse_seq(f->name, ".hint", &seq) && seq > s->max_seq)
			s->max_seq = seq;
		if (!parse_seq(f->name, ".seg", &seq))
			continue;
		if (seq > s->max_seq)
			s->max_seq = seq;
		seginfo *g = &s->seg[s->nseg];
		memset(g, 0, sizeof *g);
		g->file = i;
		g->seq = seq;
		assert_true(f->b.n >= HDR);
		g->compacted = le32(f->b.p + 24) & 1;
		g->first = s->nr;
		for (uint64_t off = HDR; off < f->b.n;) {
			uint64_t end;
			int n, first = s->nr;
			if (!run_at(f->b.p, f->b.n, off, &end, &n) &&
			    (le32(f->b.p + 24) & 2) && zeros_from(f->b.p, f->b.n,
								  off))
				break;
			if (!run_at(f->b.p, f->b.n, off, &end, &n))
				fail_msg("build: %s: unsound record at %" PRIu64,
					 f->name, off);
			for (int k = 0; k < n; k++) {
				hdr h;
				rec r = { .file = i, .off = off,
					  .run = first };
				sound_at(f->b.p, f->b.n, off, &h);
				r.size = rec_size(&h);
				r.type = h.type;
				r.lsn = h.lsn;
				r.expire = h.expire;
				r.key = key_index(s, f->b.p + off + HDR, h.klen);
				assert_true(r.key >= 0);
				value_of(f->b.p + off, &h, &r.v, &r.vn);
				add_rec(s, &r);
				off += r.size;
			}
		}
		g->nrec = s->nr - g->first;
		s->nseg++;
	}
	/* The log's tail: the newest segment compaction did not write. */
	for (int i = s->nseg - 1; i >= 0; i--)
		if (!s->seg[i].compacted) {
			s->seg[i].tail = 1;
			break;
		}
	s->nhints = 0;
	for (int i = 0; i < s->nseg; i++) {
		char name[48];
		snprintf(name, sizeof name, "%016" PRIx64 ".hint", s->seg[i].seq);
		for (int j = 0; j < s->img.n; j++)
			if (!strcmp(s->img.f[j].name, name))
				s->seg[i].hinted = 1;
		s->nhints += s->seg[i].hinted && !s->seg[i].tail;
	}
	for (int k = 0; k < NKEYS; k++) {
		s->bykey[k] = xmalloc((size_t)s->nr * sizeof(int));
		s->nbykey[k] = 0;
	}
	for (int i = 0; i < s->nr; i++)
		s->bykey[s->r[i].key][s->nbykey[s->r[i].key]++] = i;
	sort_store = s;
	for (int k = 0; k < NKEYS; k++)
		qsort(s->bykey[k], (size_t)s->nbykey[k], sizeof(int), by_lsn_desc);
}

static int rec_dead(const store *s, const rec *r)
{
	return r->type == 2 || (r->expire && r->expire <= s->now);
}

/* The image must say what the model says, before any damage. */
static void check_parse_against_model(const store *s)
{
	for (int k = 0; k < NKEYS; k++) {
		const keymodel *m = &s->km[k];
		const rec *w = s->nbykey[k] ? &s->r[s->bykey[k][0]] : NULL;
		int live = w && !rec_dead(s, w);
		if (live != model_live(m, s->now))
			fail_msg("build: %s: files say %s, model says %s",
				 s->key[k], live ? "live" : "absent",
				 model_live(m, s->now) ? "live" : "absent");
		if (live && (w->vn != m->hist[m->cur].n ||
			     memcmp(w->v, m->hist[m->cur].p, w->vn)))
			fail_msg("build: %s: files and model disagree on the value",
				 s->key[k]);
	}
}

static void free_store(store *s)
{
	for (int k = 0; k < NKEYS; k++) {
		for (int i = 0; i < s->km[k].nhist; i++)
			free(s->km[k].hist[i].p);
		free(s->km[k].hist);
		free(s->bykey[k]);
	}
	for (int i = 0; i < s->nr; i++)
		free(s->r[i].v);
	free(s->r);
	free(s->seg);
	free_image(&s->img);
	memset(s, 0, sizeof *s);
}

/* Builds a store in dir from the seed and captures its image. */
static void build_store(store *s, const char *dir, uint64_t seed)
{
	uint64_t rng = seed * 2 + 1;
	static const uint64_t sizes[] = { 512, 1024, 2048, 4096 };
	kv_t *db;
	int ver = 0;

	memset(s, 0, sizeof *s);
	for (int i = 0; i < 4; i++)
		tu_rand(&rng);
	s->mode = (int)(tu_rand(&rng) % NMODES);
	s->crash = tu_rand(&rng) % 3 == 0;
	set_keys(s);
	tu_clock_ms = 1000000;
	tu_options(&s->o);
	s->o.max_file_size = sizes[tu_rand(&rng) % 4];
	if (s->mode == MODE_UNIFORM && s->o.max_file_size < 2048)
		s->o.max_file_size = 2048; /* room for two whole blocks */
	if (s->mode == MODE_COMPRESS) {
		s->o.flags |= KV_COMPRESS;
		s->o.compress_min = 32;
	}
	db = tu_open(dir, &s->o);
	int nops = 150 + (int)(tu_rand(&rng) % 250);
	for (int op = 0; op < nops; op++) {
		unsigned r = (unsigned)(tu_rand(&rng) % 100);
		tu_clock_ms += tu_rand(&rng) % 20;
		if (r < 62 || (r < 75 && s->mode == MODE_UNIFORM))
			do_put(s, db, &rng, ver++);
		else if (r < 75)
			do_delete(s, db, &rng);
		else if (r < 90)
			do_batch(s, db, &rng, &ver);
		else if (r < 93)
			TU_OK(kv_compact(db, NULL));
		else if (r < 95) {
			TU_OK(kv_close(db));
			db = tu_open(dir, &s->o);
		}
	}
	tu_clock_ms += tu_rand(&rng) % 1000;
	s->now = tu_clock_ms;
	if (s->crash)
		read_image(dir, &s->img);
	TU_OK(kv_close(db));
	if (!s->crash)
		read_image(dir, &s->img);
	parse_image(s);
	check_parse_against_model(s);
}

/* ---- damage ---- */

enum kind { K_BITFLIP, K_ZERO512, K_ZERO4K, K_SWAP512, K_TRUNCATE, K_APPEND,
	    K_EMPTY_NEWEST, K_LOCK_GONE, K_LOCK_JUNK, K_HINT_FLIP,
	    K_HINT_TRUNC, K_HINT_DELETE, NKINDS };
static const char *kind_name[] = {
	"bit flips", "zeroed 512 B", "zeroed 4 KiB", "swapped 512 B blocks",
	"truncation", "garbage appended", "empty newest segment",
	"LOCK removed", "LOCK junk", "hint bit flips", "hint truncated",
	"hint deleted" };

/* Where the damage went. */
enum target { T_TAIL, T_SEALED_HINT, T_SEALED_NOHINT, T_COMPACTED, T_HINT,
	      T_LOCK, T_NEW, NTARGETS };
static const char *target_name[] = { "log tail", "sealed+hint",
	"sealed, no hint", "compacted", "hint file", "LOCK", "new file" };

typedef struct dmg {
	enum kind kind;
	int file;             /* index in the image, or -1 (a new file) */
	int seg;              /* index in store.seg, or -1 */
	int deleted;
	buf b;                /* the file's new bytes (owned) */
	char newname[48];     /* K_EMPTY_NEWEST */
	uint8_t *chg;         /* per byte of the original: changed or gone */
	int hdr_bad;          /* the file header changed, or cut short */
	int noop;
	char what[160];
} dmg;

static enum target target_of(const store *s, const dmg *d)
{
	if (d->file < 0)
		return T_NEW;
	if (d->seg < 0)
		return strcmp(s->img.f[d->file].name, "LOCK") ? T_HINT : T_LOCK;
	const seginfo *g = &s->seg[d->seg];
	if (g->tail)
		return T_TAIL;
	if (g->compacted)
		return T_COMPACTED;
	return g->hinted ? T_SEALED_HINT : T_SEALED_NOHINT;
}

static int seg_of_file(const store *s, int fi)
{
	for (int i = 0; i < s->nseg; i++)
		if (s->seg[i].file == fi)
			return i;
	return -1;
}

static int is_hint(const store *s, int fi)
{
	uint64_t seq;

	return parse_seq(s->img.f[fi].name, ".hint", &seq);
}

/* A random file for the generic kinds: a segment (the tail one time in
 * four) or, one time in four, a hint file. min is the least size. */
static int pick_file(const store *s, uint64_t *rng, size_t min)
{
	int cand[512], n = 0;
	int want_hint = tu_rand(rng) % 4 == 0 && s->nhints > 0;
	int want_tail = !want_hint && tu_rand(rng) % 4 == 0;

	for (int i = 0; i < s->img.n && n < 512; i++) {
		int seg = seg_of_file(s, i);
		if (s->img.f[i].b.n < min)
			continue;
		if (want_hint ? is_hint(s, i) :
		    want_tail ? seg >= 0 && s->seg[seg].tail : seg >= 0)
			cand[n++] = i;
	}
	if (n == 0)
		for (int i = 0; i < s->img.n && n < 512; i++)
			if (s->img.f[i].b.n >= min && strcmp(s->img.f[i].name, "LOCK"))
				cand[n++] = i;
	return n ? cand[tu_rand(rng) % (uint64_t)n] : -1;
}

static int pick_hint(const store *s, uint64_t *rng)
{
	int cand[512], n = 0;

	for (int i = 0; i < s->img.n && n < 512; i++)
		if (is_hint(s, i))
			cand[n++] = i;
	return n ? cand[tu_rand(rng) % (uint64_t)n] : -1;
}

static void copy_target(const store *s, dmg *d)
{
	const buf *o = &s->img.f[d->file].b;

	d->b.n = o->n;
	d->b.p = xmalloc(o->n + 4096 + 1024);
	memcpy(d->b.p, o->p, o->n);
}

static void flip_bits(dmg *d, uint64_t *rng)
{
	int bits = 1 + (int)(tu_rand(rng) % 8);
	int near = tu_rand(rng) % 2;
	uint64_t base = tu_rand(rng) % d->b.n;

	for (int i = 0; i < bits; i++) {
		uint64_t at = near ? base + tu_rand(rng) % 64 : tu_rand(rng) % d->b.n;
		if (at >= d->b.n)
			at = d->b.n - 1;
		d->b.p[at] ^= (uint8_t)(1u << (tu_rand(rng) % 8));
	}
	snprintf(d->what, sizeof d->what, "%d bits %s", bits,
		 near ? "within 64 bytes" : "anywhere in the file");
}

static void zero_range(dmg *d, uint64_t *rng, uint64_t len)
{
	uint64_t at = tu_rand(rng) % d->b.n;

	if (tu_rand(rng) % 2)
		at &= ~(len - 1); /* as a disk loses a sector or a page */
	uint64_t end = at + len < d->b.n ? at + len : d->b.n;
	memset(d->b.p + at, 0, end - at);
	snprintf(d->what, sizeof d->what, "zeroed [%" PRIu64 ", %" PRIu64 ")",
		 at, end);
}

static void swap_blocks(dmg *d, uint64_t *rng)
{
	uint64_t a, b, n = d->b.n;
	uint8_t tmp[512];

	if (tu_rand(rng) % 4) {
		uint64_t nb = n / 512;
		a = tu_rand(rng) % nb;
		do
			b = tu_rand(rng) % nb;
		while (b == a);
		a *= 512;
		b *= 512;
	} else {
		do {
			a = tu_rand(rng) % (n - 511);
			b = tu_rand(rng) % (n - 511);
		} while ((a > b ? a - b : b - a) < 512);
	}
	memcpy(tmp, d->b.p + a, 512);
	memmove(d->b.p + a, d->b.p + b, 512);
	memcpy(d->b.p + b, tmp, 512);
	snprintf(d->what, sizeof d->what, "swapped [%" PRIu64 ", +512) and [%"
		 PRIu64 ", +512)", a, b);
}

static void append_junk(dmg *d, uint64_t *rng)
{
	uint64_t len = 1 + tu_rand(rng) % 600;
	int zeros = tu_rand(rng) % 4 == 0;

	for (uint64_t i = 0; i < len; i++)
		d->b.p[d->b.n + i] = zeros ? 0 : (uint8_t)tu_rand(rng);
	snprintf(d->what, sizeof d->what, "%" PRIu64 " %s bytes appended at %zu",
		 len, zeros ? "zero" : "random", d->b.n);
	d->b.n += len;
}

/* Draws and applies one damage; 0 when this store has no file for it. */
static int make_damage(const store *s, uint64_t *rng, enum kind k, dmg *d)
{
	memset(d, 0, sizeof *d);
	d->kind = k;
	d->seg = -1;
	switch (k) {
	case K_EMPTY_NEWEST:
		d->file = -1;
		snprintf(d->newname, sizeof d->newname, "%016" PRIx64 ".seg",
			 s->max_seq + 1);
		snprintf(d->what, sizeof d->what, "empty %s", d->newname);
		return 1;
	case K_LOCK_GONE:
	case K_LOCK_JUNK:
		d->file = -1;
		for (int i = 0; i < s->img.n; i++)
			if (!strcmp(s->img.f[i].name, "LOCK"))
				d->file = i;
		if (d->file < 0)
			return 0;
		if (k == K_LOCK_GONE) {
			d->deleted = 1;
			snprintf(d->what, sizeof d->what, "LOCK removed");
			return 1;
		}
		d->b.n = 1 + tu_rand(rng) % 4096;
		d->b.p = xmalloc(d->b.n);
		for (size_t i = 0; i < d->b.n; i++)
			d->b.p[i] = (uint8_t)tu_rand(rng);
		snprintf(d->what, sizeof d->what, "LOCK of %zu junk bytes", d->b.n);
		return 1;
	case K_HINT_FLIP:
	case K_HINT_TRUNC:
	case K_HINT_DELETE:
		if ((d->file = pick_hint(s, rng)) < 0)
			return 0;
		break;
	case K_SWAP512:
		if ((d->file = pick_file(s, rng, 1024)) < 0)
			return 0;
		break;
	default:
		if ((d->file = pick_file(s, rng, 1)) < 0)
			return 0;
		break;
	}
	d->seg = seg_of_file(s, d->file);
	if (k == K_HINT_DELETE) {
		d->deleted = 1;
		snprintf(d->what, sizeof d->what, "deleted");
		return 1;
	}
	copy_target(s, d);
	switch (k) {
	case K_BITFLIP:
	case K_HINT_FLIP:
		flip_bits(d, rng);
		break;
	case K_ZERO512:
		zero_range(d, rng, 512);
		break;
	case K_ZERO4K:
		zero_range(d, rng, 4096);
		break;
	case K_SWAP512:
		swap_blocks(d, rng);
		break;
	case K_TRUNCATE:
	case K_HINT_TRUNC:
		d->b.n = tu_rand(rng) % d->b.n;
		snprintf(d->what, sizeof d->what, "cut to %zu bytes", d->b.n);
		break;
	case K_APPEND:
		append_junk(d, rng);
		break;
	default:
		break;
	}
	/* What changed, byte by byte, against the original. */
	const buf *o = &s->img.f[d->file].b;
	d->chg = xmalloc(o->n);
	d->noop = d->b.n == o->n;
	for (size_t i = 0; i < o->n; i++) {
		d->chg[i] = i >= d->b.n || d->b.p[i] != o->p[i];
		if (d->chg[i]) {
			d->noop = 0;
			if (i < HDR)
				d->hdr_bad = 1;
		}
	}
	return 1;
}

static void free_dmg(dmg *d)
{
	free(d->b.p);
	free(d->chg);
}

static void write_image(const store *s, const dmg *d, const char *dir)
{
	empty_dir(dir);
	for (int i = 0; i < s->img.n; i++) {
		if (i != d->file)
			spill(dir, s->img.f[i].name, &s->img.f[i].b);
		else if (!d->deleted)
			spill(dir, s->img.f[i].name, &d->b);
	}
	if (d->newname[0]) {
		buf none = { NULL, 0 };
		spill(dir, d->newname, &none);
	}
}

/* ---- what each record may do ---- */

enum fate {
	F_KEEP,       /* applied, reads back */
	F_LOST,       /* not applied */
	F_MAYBE,      /* applied or not; when applied, reads back */
	F_CORRUPT     /* applied from a hint over damaged bytes: a read of it
		       * fails KV_ECORRUPT */
};

enum expect { E_OK, E_FAIL, E_EITHER };

typedef struct verdict {
	enum expect open;
	enum fate *fate;      /* per record */
	int silent_loss;      /* records lost without a trace (see below) */
} verdict;

static int rec_changed(const dmg *d, const rec *r)
{
	for (uint64_t i = r->off; i < r->off + r->size; i++)
		if (d->chg[i])
			return 1;
	return 0;
}

static int run_changed(const store *s, const dmg *d, int run)
{
	for (int i = run; i < s->nr && s->r[i].run == run; i++)
		if (rec_changed(d, &s->r[i]))
			return 1;
	return 0;
}

/* Whether run (a batch or a single record) starts right after damaged
 * bytes of a log segment: salvage cannot tell it from the rest of a batch
 * whose first records were damaged (the last record of a batch looks like
 * a single put), so it may skip it too (recover.c, skip()). Compaction
 * copies records as single ones, so not in its outputs. */
static int run_after_damage(const store *s, const dmg *d, int run)
{
	const rec *r = &s->r[run];
	int g = seg_of_file(s, r->file);

	if (g >= 0 && s->seg[g].compacted)
		return 0;
	for (int i = run - 1; i >= 0 && s->r[i].file == r->file; i--)
		if (rec_changed(d, &s->r[i]))
			return s->r[i].run != run;
		else if (s->r[i].run != s->r[run - 1].run)
			return 0; /* an intact run lies between */
	return 0;
}

/* The genuine record a sound record of the damaged file is: same LSN,
 * same bytes; -1 when it is none (then nothing can be predicted). */
static int genuine(const store *s, const dmg *d, uint64_t off, const hdr *h)
{
	for (int i = 0; i < s->nr; i++) {
		const rec *r = &s->r[i];
		if (r->lsn != h->lsn)
			continue;
		const buf *o = &s->img.f[r->file].b;
		return r->size == rec_size(h) &&
		       !memcmp(o->p + r->off, d->b.p + off, r->size) ? i : -1;
	}
	return -1;
}

/* Marks the genuine records found sound at any offset of the damaged
 * file: a salvage scan resynchronises byte by byte and may find a record
 * that moved (swapped blocks), or one rebuilt by chance. */
static void find_present(const store *s, const dmg *d, uint8_t *present)
{
	hdr h;

	for (uint64_t off = HDR; off + HDR <= d->b.n; off++)
		if (sound_at(d->b.p, d->b.n, off, &h)) {
			int g = genuine(s, d, off, &h);
			if (g >= 0)
				present[g] = 1;
		}
}

/* Parses the damaged segment as a scan would: the records of its sound
 * runs up to the first unsound one are marked in `seen`; returns 1 when
 * the whole file was sound, 0 when it stopped, -1 on an alien record. */
static int scan_damaged(const store *s, const dmg *d, uint8_t *seen,
			int *torn)
{
	uint64_t off = HDR, end, bad;
	int n;

	while (off < d->b.n) {
		if (!run_at_bad(d->b.p, d->b.n, off, &end, &n, &bad)) {
			*torn = torn_write(d->b.p, d->b.n, off, bad);
			return 0;
		}
		for (int k = 0; k < n; k++) {
			hdr h;
			sound_at(d->b.p, d->b.n, off, &h);
			int g = genuine(s, d, off, &h);
			if (g < 0)
				return -1;
			seen[g] = 1;
			off += rec_size(&h);
		}
	}
	return 1;
}

/*
 * The fate of every record of the damaged segment under one kind of open.
 * Records of other files are kept. The rules, from recover.c's contract:
 * - a damaged file header: strict fails; salvage sets the file aside;
 * - strict, a sealed segment whose hint still matches its size: loaded
 *   from the hint, changed records read KV_ECORRUPT;
 * - otherwise the segment is scanned. A sound file yields exactly its
 *   records. Else, up to the first unsound run all is applied; past it,
 *   strict keeps nothing more if the tail's damage is a torn write (cut),
 *   and fails on other damage; salvage skips damage and may cut the tail.
 */
static void judge(const store *s, const dmg *d, int salvage, verdict *v)
{
	uint8_t *seen = calloc((size_t)s->nr + 1, 1);
	uint8_t *present = calloc((size_t)s->nr + 1, 1);

	v->open = E_OK;
	v->silent_loss = 0;
	for (int i = 0; i < s->nr; i++)
		v->fate[i] = F_KEEP;
	if (d->kind == K_EMPTY_NEWEST) {
		/* Never made by libkv (segments are created under a temporary
		 * name): strict may refuse it, salvage sets it aside. */
		v->open = salvage ? E_OK : E_EITHER;
		goto out;
	}
	if (d->seg < 0 || d->noop)
		goto out;
	const seginfo *g = &s->seg[d->seg];
	const buf *o = &s->img.f[d->file].b;
	int from = g->first, to = g->first + g->nrec;
	if (d->hdr_bad) {
		v->open = salvage ? E_OK : E_FAIL;
		for (int i = from; i < to; i++)
			v->fate[i] = F_LOST;
		goto out;
	}
	if (!salvage && g->hinted && !g->tail && d->b.n == o->n) {
		for (int i = from; i < to; i++)
			if (rec_changed(d, &s->r[i]))
				v->fate[i] = F_CORRUPT;
		goto out;
	}
	int torn = 0, clean = scan_damaged(s, d, seen, &torn);
	if (clean < 0) { /* a sound record that was never written */
		v->open = E_EITHER;
		for (int i = from; i < to; i++)
			v->fate[i] = F_MAYBE;
		goto out;
	}
	if (clean) {
		for (int i = from; i < to; i++)
			if (!seen[i]) {
				v->fate[i] = F_LOST;
				v->silent_loss += !g->tail;
			}
		/* A sealed segment cut at a record boundary: without a hint
		 * nothing tells; with one, its size does, and strict refuses. */
		if (v->silent_loss && g->hinted && !salvage)
			v->open = E_FAIL;
		goto out;
	}
	if (!salvage && !g->tail) {
		v->open = E_FAIL;
		goto out;
	}
	if (!salvage)
		v->open = torn ? E_OK : E_FAIL;
	else
		find_present(s, d, present);
	/* Past the sound prefix. */
	for (int i = from; i < to; i++) {
		const rec *r = &s->r[i];
		if (seen[i])
			continue;
		if (!salvage)
			v->fate[i] = F_LOST;
		else if (rec_changed(d, r))
			v->fate[i] = present[i] ? F_MAYBE : F_LOST;
		else if (g->tail || run_changed(s, d, r->run) ||
			 run_after_damage(s, d, r->run))
			v->fate[i] = F_MAYBE;
	}
out:
	free(seen);
	free(present);
}

/* ---- the allowed outcomes of a key, and the checks ---- */

typedef struct outs {
	int notfound, corrupt;
	int corrupt_rec;      /* the damaged record a read must refuse */
	int rec[MAX_OUT];
	int n;
} outs;

static void allowed(const store *s, const verdict *v, int k, outs *a)
{
	memset(a, 0, sizeof *a);
	for (int j = 0; j < s->nbykey[k]; j++) {
		int i = s->bykey[k][j];
		const rec *r = &s->r[i];
		enum fate f = v->fate[i];
		if (f == F_LOST)
			continue;
		if (f == F_CORRUPT) {
			if (rec_dead(s, r))
				a->notfound = 1;
			else
				a->corrupt = 1;
			a->corrupt_rec = i;
			return;
		}
		if (rec_dead(s, r))
			a->notfound = 1;
		else if (a->n < MAX_OUT)
			a->rec[a->n++] = i;
		if (f == F_KEEP)
			return;
	}
	a->notfound = 1;
}

/* Figures over the whole run. */
static struct tally {
	int cases[NKINDS][NTARGETS];
	int skipped[NKINDS];
	int noop;
	int strict_ok[NKINDS], strict_corrupt[NKINDS];
	int rdonly_ok, rdonly_corrupt;
	int salvage_ok;
	uint64_t salv_keys, salv_exact, salv_older, salv_absent, salv_corrupt;
	uint64_t salv_skipped_records;
	uint64_t strict_exact, strict_older, strict_absent, strict_corrupt_keys;
	int silent_loss_cases;
	int foreign_known, stale_known, foreign_cases;
	uint64_t risk_reported, risk_changed;
	int risk_unreported;
	int partial_batch;
	int failed_cases, fails;
	int stores;
} T;

static char case_desc[1024];
static int case_failed;

static void bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void bad(const char *fmt, ...)
{
	va_list ap;

	T.fails++;
	if (!case_failed)
		T.failed_cases++;
	/* The first few checks of the first 50 failing cases. */
	if (case_failed++ >= 3 || T.failed_cases > 50)
		return;
	fprintf(stderr, "FAIL %s: ", case_desc);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Whether kv_errmsg() names a file of the store and an offset. */
static int names_file_and_offset(const store *s, const dmg *d)
{
	const char *m = kv_errmsg();

	if (!strstr(m, "offset"))
		return 0;
	if (d->newname[0] && strstr(m, d->newname))
		return 1;
	for (int i = 0; i < s->img.n; i++)
		if (strcmp(s->img.f[i].name, "LOCK") && strstr(m, s->img.f[i].name))
			return 1;
	return 0;
}

static int value_is(const rec *r, const void *p, size_t n)
{
	return r->vn == n && (n == 0 || !memcmp(r->v, p, n));
}

static int ever_written(const store *s, int k, const void *p, size_t n)
{
	const keymodel *m = &s->km[k];

	for (int i = 0; i < m->nhist; i++)
		if (m->hist[i].n == n && (n == 0 || !memcmp(m->hist[i].p, p, n)))
			return 1;
	return 0;
}

/* What a get saw, per key: rc and, for KV_OK, the record it matched. */
typedef struct seen_key {
	int rc;
	int rec;
	void *v;
	size_t n;
} seen_key;

static void debug_key(const store *s, const verdict *v, int k)
{
	static const char *fn[] = { "keep", "lost", "maybe", "corrupt" };

	for (int j = 0; j < s->nbykey[k]; j++) {
		const rec *r = &s->r[s->bykey[k][j]];
		fprintf(stderr, "  %s lsn %" PRIu64 " %s off %" PRIu64 " size %"
			PRIu64 " type %d run %d: %s \"%.10s\"\n", s->key[k], r->lsn,
			s->img.f[r->file].name, r->off, r->size, r->type,
			r->run, fn[v->fate[s->bykey[k][j]]], (const char *)r->v);
	}
}

static const char *open_name[] = { "strict", "salvage", "read-only" };

/*
 * Found here: kv__fetch_check compared a record's type, lengths and CRC
 * with the index but not its key, so a sound record of another key with
 * the same lengths at a hinted offset (blocks swapped or misdirected by
 * the disk) was returned as this key's value. Reads now compare the key.
 * An older record of the same key there still reads: the index holds no
 * LSN, and kv_verify finds every record sound. That case is counted and
 * reported, not failed; KV_CORRUPT_STRICT=1 fails on it.
 */
static int foreign_record_at(const store *s, const dmg *d, const rec *r,
			     int *same_key)
{
	hdr h;

	if (!d->b.p || !sound_at(d->b.p, d->b.n, r->off, &h) || h.type != 1 ||
	    rec_size(&h) != r->size || h.klen != s->klen[r->key])
		return 0;
	*same_key = !memcmp(d->b.p + r->off + HDR, s->key[r->key], h.klen);
	return 1;
}

static void check_gets(const store *s, const dmg *d, kv_t *db,
		       const verdict *v, int how, seen_key *got, int *foreign)
{
	for (int k = 0; k < NKEYS; k++) {
		outs a;
		void *p = NULL;
		size_t n = 0;
		int rc = kv_get(db, s->key[k], s->klen[k], &p, &n);
		int ex = kv_exists(db, s->key[k], s->klen[k]);

		allowed(s, v, k, &a);
		got[k] = (seen_key){ rc, -1, p, n };
		int same;
		/* Reads compare the record's key with the index's since
		 * this test found they did not: only an older record of
		 * the same key, sound, at a hinted offset, still reads (the
		 * index holds no LSN to tell). */
		if (a.corrupt && rc != KV_ECORRUPT && !env_flag("KV_CORRUPT_STRICT") &&
		    foreign_record_at(s, d, &s->r[a.corrupt_rec], &same) && same) {
			T.stale_known++;
			*foreign = 1;
			continue;
		}
		if (ex != rc)
			bad("%s: %s: kv_exists %s but kv_get %s", open_name[how],
			    s->key[k], kv_strerror(ex), kv_strerror(rc));
		if (rc == KV_OK) {
			for (int i = 0; i < a.n && got[k].rec < 0; i++)
				if (value_is(&s->r[a.rec[i]], p, n))
					got[k].rec = a.rec[i];
			if (got[k].rec < 0 && env_flag("KV_CORRUPT_DEBUG"))
				debug_key(s, v, k);
			if (got[k].rec < 0)
				bad("%s: %s: got %zu bytes \"%.12s\" that %s",
				    open_name[how], s->key[k], n,
				    n ? (const char *)p : "",
				    ever_written(s, k, p, n) ?
				    "are not a value this damage allows" :
				    "were never written for this key (foreign)");
		} else if (rc == KV_ENOTFOUND) {
			if (!a.notfound)
				bad("%s: %s: KV_ENOTFOUND, but it must read", open_name[how],
				    s->key[k]);
		} else if (rc == KV_ECORRUPT) {
			if (!a.corrupt)
				bad("%s: %s: KV_ECORRUPT (%s) but its record is sound",
				    open_name[how], s->key[k], kv_errmsg());
			else if (!names_file_and_offset(s, d))
				bad("%s: %s: KV_ECORRUPT without file and offset: %s",
				    open_name[how], s->key[k], kv_errmsg());
		} else {
			bad("%s: %s: kv_get: %s: %s", open_name[how], s->key[k],
			    kv_strerror(rc), kv_errmsg());
		}
	}
	/* A key never written is absent whatever happened. */
	void *p = NULL;
	size_t n;
	if (kv_get(db, "never", 5, &p, &n) != KV_ENOTFOUND)
		bad("%s: a key never written reads", open_name[how]);
	kv_free(p);
}

/* kv_foreach and kv_scan deliver what kv_get saw: each pair at most once,
 * never a value the get did not return; all of them when KV_OK. */
typedef struct walk {
	const store *s;
	const seen_key *got;
	int delivered[NKEYS];
	int ndeliv;
	int ordered;
	char last[16];
	size_t lastn;
	int how;
	const char *fn;
} walk;

static int on_pair(void *ctx, const void *key, size_t klen, const void *v,
		   size_t vn)
{
	walk *w = ctx;
	int k = key_index(w->s, key, klen);

	if (k < 0) {
		bad("%s: %s delivered a key never written", open_name[w->how], w->fn);
		return 0;
	}
	if (w->delivered[k]++)
		bad("%s: %s delivered %s twice", open_name[w->how], w->fn,
		    w->s->key[k]);
	w->ndeliv++;
	const seen_key *g = &w->got[k];
	if (g->rc != KV_OK || g->n != vn || (vn && memcmp(g->v, v, vn)))
		bad("%s: %s delivered %s with a value kv_get did not give (%s)",
		    open_name[w->how], w->fn, w->s->key[k],
		    ever_written(w->s, k, v, vn) ? "an old one" : "foreign");
	if (w->ordered) {
		size_t m = klen < w->lastn ? klen : w->lastn;
		int c = memcmp(w->last, key, m);
		if (w->lastn && (c > 0 || (c == 0 && w->lastn >= klen)))
			bad("%s: kv_scan out of order at %s", open_name[w->how],
			    w->s->key[k]);
		memcpy(w->last, key, klen);
		w->lastn = klen;
	}
	return 0;
}

static void check_walks(const store *s, kv_t *db, int how,
			const seen_key *got)
{
	int nok = 0, ncorrupt = 0;

	for (int k = 0; k < NKEYS; k++) {
		nok += got[k].rc == KV_OK;
		ncorrupt += got[k].rc == KV_ECORRUPT;
	}
	for (int scan = 0; scan < 2; scan++) {
		walk w = { .s = s, .got = got, .ordered = scan, .how = how,
			   .fn = scan ? "kv_scan" : "kv_foreach" };
		int rc = scan ? kv_scan(db, NULL, 0, NULL, 0, NULL, 0, 0, on_pair, &w)
			      : kv_foreach(db, on_pair, &w);
		if (rc == KV_OK && w.ndeliv != nok)
			bad("%s: %s delivered %d pairs, kv_get read %d",
			    open_name[how], w.fn, w.ndeliv, nok);
		else if (rc == KV_ECORRUPT && !ncorrupt)
			bad("%s: %s: KV_ECORRUPT though every get was sound: %s",
			    open_name[how], w.fn, kv_errmsg());
		else if (rc != KV_OK && rc != KV_ECORRUPT)
			bad("%s: %s: %s: %s", open_name[how], w.fn,
			    kv_strerror(rc), kv_errmsg());
	}
}

/* kv_verify finds damage exactly when some segment, as far as the store
 * reads it, is not a clean run of sound records. */
static void check_verify(const store *s, const dmg *d, kv_t *db, int how,
			 const char *dir)
{
	kv_segment_stats st[512];
	size_t n;
	kv_verify_stats vs;
	uint64_t records = 0, bytes = 0;
	int damaged = 0;
	char path[4096];

	TU_OK(kv_stats_segments(db, st, 512, &n));
	assert_true(n <= 512);
	for (size_t i = 0; i < n; i++) {
		uint64_t c;
		snprintf(path, sizeof path, "%s/%016" PRIx64 ".seg", dir, st[i].seq);
		buf b = slurp(path);
		if (b.n < st[i].bytes)
			bad("%s: segment %" PRIx64 " is shorter than the store thinks",
			    open_name[how], st[i].seq);
		else if (clean_records(b.p, st[i].bytes, &c))
			records += c;
		else
			damaged = 1;
		bytes += st[i].bytes;
		free(b.p);
	}
	int rc = kv_verify(db, NULL, NULL, &vs);
	if (damaged && (rc != KV_ECORRUPT || vs.bad_ranges == 0))
		bad("%s: kv_verify: %s with %" PRIu64 " bad ranges, but damage "
		    "remains", open_name[how], kv_strerror(rc), vs.bad_ranges);
	else if (damaged && !names_file_and_offset(s, d))
		bad("%s: kv_verify: no file and offset: %s", open_name[how],
		    kv_errmsg());
	else if (!damaged && (rc != KV_OK || vs.bad_ranges ||
			      vs.records != records || vs.bytes != bytes))
		bad("%s: kv_verify: %s, %" PRIu64 " bad ranges, %" PRIu64
		    " records of %" PRIu64 ", %" PRIu64 " bytes of %" PRIu64
		    " (expected a sound store)", open_name[how], kv_strerror(rc),
		    vs.bad_ranges, vs.records, records, vs.bytes, bytes);
}

static void free_got(seen_key *got)
{
	for (int k = 0; k < NKEYS; k++)
		kv_free(got[k].v);
}

/* Tallies what the keys of a successful open read. */
static void count_keys(const store *s, const seen_key *got, int salvage)
{
	for (int k = 0; k < NKEYS; k++) {
		const rec *w = s->nbykey[k] ? &s->r[s->bykey[k][0]] : NULL;
		int live = w && !rec_dead(s, w);
		uint64_t *exact = salvage ? &T.salv_exact : &T.strict_exact;
		uint64_t *older = salvage ? &T.salv_older : &T.strict_older;
		uint64_t *absent = salvage ? &T.salv_absent : &T.strict_absent;
		uint64_t *corrupt = salvage ? &T.salv_corrupt : &T.strict_corrupt_keys;

		if (salvage)
			T.salv_keys++;
		if (got[k].rc == KV_ECORRUPT)
			(*corrupt)++;
		else if (got[k].rc == KV_OK && live && got[k].rec == s->bykey[k][0])
			(*exact)++;
		else if (got[k].rc == KV_ENOTFOUND && !live)
			(*exact)++;
		else if (got[k].rc == KV_OK)
			(*older)++;
		else
			(*absent)++;
	}
}

/* Salvage applied the sound end of a batch whose start was damaged. */
/* Whether another record of the same key holds the same value bytes: a
 * read of that value then does not show which record was applied. */
static int value_ambiguous(const store *s, int j)
{
	const rec *r = &s->r[j];

	for (int i = 0; i < s->nr; i++)
		if (i != j && s->r[i].key == r->key && s->r[i].type == r->type &&
		    s->r[i].vn == r->vn && !memcmp(s->r[i].v, r->v, r->vn))
			return 1;
	return 0;
}

static int partial_batch(const store *s, const dmg *d, const verdict *v,
			 const seen_key *got)
{
	if (d->seg < 0 || d->noop || d->hdr_bad)
		return 0;
	for (int i = 0; i < s->nr; i++) {
		const rec *r = &s->r[i];
		if (r->file != d->file || r->run != i || i + 1 >= s->nr ||
		    s->r[i + 1].run != i)
			continue; /* not the start of a batch of this file */
		int lost = 0, applied = 0;
		for (int j = i; j < s->nr && s->r[j].run == i; j++) {
			lost |= v->fate[j] == F_LOST;
			/* Only a value read back shows the record applied:
			 * absence also matches an expired TTL put. */
			applied |= v->fate[j] == F_MAYBE && !rec_changed(d, &s->r[j]) &&
				   got[s->r[j].key].rec == j &&
				   got[s->r[j].key].rc == KV_OK &&
				   !value_ambiguous(s, j);
		}
		if (lost && applied && env_flag("KV_CORRUPT_DEBUG")) {
			fprintf(stderr, "partial batch at %s offset %" PRIu64 ": %s\n",
				s->img.f[r->file].name, r->off, case_desc);
			for (int j = i; j < s->nr && s->r[j].run == i; j++)
				fprintf(stderr, "   off %" PRIu64 " lsn %" PRIu64
					" %s fate %d changed %d read %d rc %d\n",
					s->r[j].off, s->r[j].lsn,
					s->key[s->r[j].key], v->fate[j],
					rec_changed(d, &s->r[j]),
					got[s->r[j].key].rec == j,
					got[s->r[j].key].rc);
		}
		if (lost && applied)
			return 1;
	}
	return 0;
}

/* Salvage names the keys it may have got wrong: outside the log's tail
 * (where a torn write is cut, as any open does) every record salvage lost
 * was skipped or set aside, so each key it still knows (one of its records
 * survived) that reads other than before the damage must be among
 * kv_stats.recovered_keys_at_risk. Records lost to a cut at a record
 * boundary leave nothing to skip: only a hint tells (so salvage must count
 * them then); without one they are counted apart. */
static void check_at_risk(const store *s, const dmg *d, kv_t *db,
			  const verdict *v, const seen_key *got)
{
	struct kv_stats st = { .size = sizeof st };
	uint64_t changed = 0;

	if (d->seg < 0 || d->noop || s->seg[d->seg].tail)
		return;
	for (int k = 0; k < NKEYS; k++) {
		const rec *w = s->nbykey[k] ? &s->r[s->bykey[k][0]] : NULL;
		int live = w && !rec_dead(s, w), known = got[k].rc == KV_OK;
		/* A key whose every record was lost is unknown to the store,
		 * which cannot name it. */
		for (int j = 0; j < s->nbykey[k]; j++)
			known |= v->fate[s->bykey[k][j]] == F_KEEP;
		if (known && (live ? got[k].rc != KV_OK ||
				     got[k].rec != s->bykey[k][0]
				   : got[k].rc != KV_ENOTFOUND))
			changed++;
	}
	TU_OK(kv_stats(db, &st));
	T.risk_reported += st.recovered_keys_at_risk;
	T.risk_changed += changed;
	if (v->silent_loss && !s->seg[d->seg].hinted) {
		T.risk_unreported += changed > st.recovered_keys_at_risk;
		if (changed > st.recovered_keys_at_risk && env_flag("KV_CORRUPT_DEBUG"))
			fprintf(stderr, "unreported risk: %s\n", case_desc);
		return;
	}
	if (changed > st.recovered_keys_at_risk)
		bad("salvage: %" PRIu64 " keys read other than before the damage, "
		    "but kv_stats counts %" PRIu64 " keys at risk", changed,
		    st.recovered_keys_at_risk);
}

/* One open of the damaged image, and every check on it. */
static void try_open(const store *s, const dmg *d, const char *dir, int how,
		     int tally)
{
	verdict v;
	kv_options o = s->o;
	kv_t *db = NULL;
	seen_key got[NKEYS];

	v.fate = xmalloc((size_t)s->nr * sizeof *v.fate + 1);
	judge(s, d, how == 1, &v);
	o.flags = KV_NO_AUTO_COMPACT | (s->o.flags & KV_COMPRESS);
	if (how == 1)
		o.flags |= KV_SALVAGE;
	if (how == 2)
		o.flags = KV_RDONLY;
	tu_clock_ms = s->now;
	int rc = kv_open(dir, &o, &db);
	if (rc != KV_OK && rc != KV_ECORRUPT) {
		bad("%s open: %s: %s", open_name[how], kv_strerror(rc), kv_errmsg());
	} else if (rc == KV_ECORRUPT && v.open == E_OK) {
		bad("%s open: KV_ECORRUPT but it must open: %s", open_name[how],
		    kv_errmsg());
	} else if (rc == KV_OK && v.open == E_FAIL) {
		bad("%s open succeeded but the damage must be reported",
		    open_name[how]);
	} else if (rc == KV_ECORRUPT && !names_file_and_offset(s, d)) {
		bad("%s open: KV_ECORRUPT without a file and offset: %s",
		    open_name[how], kv_errmsg());
	}
	if (!tally)
		;
	else if (how == 0)
		rc == KV_OK ? T.strict_ok[d->kind]++ : T.strict_corrupt[d->kind]++;
	else if (how == 2)
		rc == KV_OK ? T.rdonly_ok++ : T.rdonly_corrupt++;
	else if (rc == KV_OK)
		T.salvage_ok++;
	if (rc == KV_OK) {
		int foreign = 0;
		check_gets(s, d, db, &v, how, got, &foreign);
		/* Iteration delivers the known defect's other key twice. */
		if (foreign)
			T.foreign_cases += tally;
		else
			check_walks(s, db, how, got);
		check_verify(s, d, db, how, dir);
		if (tally && how != 2)
			count_keys(s, got, how == 1);
		if (tally && how == 0 && v.silent_loss)
			T.silent_loss_cases++;
		if (how == 1)
			check_at_risk(s, d, db, &v, got);
		if (tally && how == 1) {
			struct kv_stats st = { .size = sizeof st };
			TU_OK(kv_stats(db, &st));
			T.salv_skipped_records += st.recovered_skipped_records;
			if (partial_batch(s, d, &v, got)) {
				T.partial_batch++;
				bad("salvage applied part of a batch");
			}
		}
		free_got(got);
		rc = kv_close(db);
		if (rc != KV_OK)
			bad("%s: kv_close: %s: %s", open_name[how], kv_strerror(rc),
			    kv_errmsg());
	}
	free(v.fate);
}

static int env_flag(const char *name)
{
	const char *e = getenv(name);

	return e && *e && strcmp(e, "0");
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *e = getenv(name);

	return e && *e ? strtoull(e, NULL, 0) : def;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
	uint64_t x = a * UINT64_C(0x9e3779b97f4a7c15) ^ (b + UINT64_C(0x632be59bd9b4e019));

	x ^= x >> 31;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	return (x ^ (x >> 29)) | 1; /* xorshift must not start at 0 */
}

static enum kind draw_kind(uint64_t *rng)
{
	/* Damage to segments is most of the cases; the file-level kinds
	 * have fewer outcomes to explore. */
	static const int w[NKINDS] = { 16, 8, 6, 8, 10, 6, 3, 2, 2, 4, 4, 3 };
	int total = 0, x;

	for (int i = 0; i < NKINDS; i++)
		total += w[i];
	x = (int)(tu_rand(rng) % (uint64_t)total);
	for (int i = 0; i < NKINDS; i++)
		if ((x -= w[i]) < 0)
			return (enum kind)i;
	return K_BITFLIP;
}

/* The undamaged store reads exactly as the model says. */
static void check_pristine(const store *s, const char *dir)
{
	dmg none;
	kv_t *db;
	struct kv_stats st = { .size = sizeof st };

	memset(&none, 0, sizeof none);
	none.file = -1;
	none.seg = -1;
	none.noop = 1;
	write_image(s, &none, dir);
	snprintf(case_desc, sizeof case_desc, "pristine store");
	/* Every sealed segment with a hint is loaded from it (a close writes
	 * the missing ones, hence this open first). */
	kv_options o = s->o;
	o.flags = KV_NO_AUTO_COMPACT;
	db = tu_open(dir, &o);
	TU_OK(kv_stats(db, &st));
	if (st.recovered_hint_segments != (uint64_t)s->nhints ||
	    st.recovered_hint_rejected)
		bad("pristine: %" PRIu64 " hints loaded, %" PRIu64 " refused; "
		    "%d expected", st.recovered_hint_segments,
		    st.recovered_hint_rejected, s->nhints);
	kv_close(db);
	write_image(s, &none, dir);
	try_open(s, &none, dir, 0, 0);
}

static void run_case(const store *s, uint64_t seed, uint64_t c,
		     const char *dir)
{
	uint64_t rng = mix(seed, c);
	enum kind k = draw_kind(&rng);
	dmg d;

	/* A store too small for two blocks, or without hints: another kind. */
	while (!make_damage(s, &rng, k, &d)) {
		T.skipped[k]++;
		free_dmg(&d);
		k = draw_kind(&rng);
	}
	enum target t = target_of(s, &d);
	T.cases[k][t]++;
	T.noop += d.noop;
	case_failed = 0;
	snprintf(case_desc, sizeof case_desc,
		 "case %" PRIu64 " (KV_CORRUPT_SEED=%" PRIu64 " KV_CORRUPT_ONLY=%"
		 PRIu64 "): %s store%s, %s in %s (%s): %s", c, seed, c,
		 mode_name[s->mode], s->crash ? " (crash image)" : "", kind_name[k],
		 d.file >= 0 ? s->img.f[d.file].name : d.newname, target_name[t],
		 d.what);
	if (env_flag("KV_CORRUPT_TRACE"))
		fprintf(stderr, "%s\n", case_desc);
	if (getenv("KV_CORRUPT_KEEP")) {
		/* For a look at one case's files: KV_CORRUPT_KEEP=<dir>. */
		mkdir(getenv("KV_CORRUPT_KEEP"), 0700);
		write_image(s, &d, getenv("KV_CORRUPT_KEEP"));
	}
	write_image(s, &d, dir);
	try_open(s, &d, dir, 0, 1);
	write_image(s, &d, dir);
	try_open(s, &d, dir, 1, 1);
	if (c % 4 == 0) {
		write_image(s, &d, dir);
		try_open(s, &d, dir, 2, 1);
	}
	free_dmg(&d);
}

static void report(uint64_t ncases, double secs)
{
	int verbose = env_flag("KV_CORRUPT_VERBOSE");
	int total = 0;

	printf("corrupt: %" PRIu64 " cases over %d stores in %.1f s\n", ncases,
	       T.stores, secs);
	for (int k = 0; k < NKINDS; k++) {
		int n = 0;
		for (int t = 0; t < NTARGETS; t++)
			n += T.cases[k][t];
		total += n;
		printf("  %-22s %6d cases: strict ok %6d, KV_ECORRUPT %6d",
		       kind_name[k], n, T.strict_ok[k], T.strict_corrupt[k]);
		if (T.skipped[k])
			printf(" (%d more drawn for a store without such a file)",
			       T.skipped[k]);
		printf("\n");
		if (!verbose)
			continue;
		for (int t = 0; t < NTARGETS; t++)
			if (T.cases[k][t])
				printf("      %-18s %6d\n", target_name[t], T.cases[k][t]);
	}
	printf("  no-op damage (bytes unchanged): %d; read-only opens: %d ok, "
	       "%d KV_ECORRUPT\n", T.noop, T.rdonly_ok, T.rdonly_corrupt);
	printf("  strict opens that succeeded, keys: %" PRIu64 " as last written, "
	       "%" PRIu64 " older value (torn tail), %" PRIu64 " absent (torn "
	       "tail), %" PRIu64 " KV_ECORRUPT\n", T.strict_exact,
	       T.strict_older, T.strict_absent, T.strict_corrupt_keys);
	printf("  salvage: %d of %d opens succeeded; %" PRIu64 " keys: %" PRIu64
	       " as last written, %" PRIu64 " older value, %" PRIu64 " absent, %"
	       PRIu64 " KV_ECORRUPT; %" PRIu64 " damaged ranges skipped\n",
	       T.salvage_ok, total, T.salv_keys, T.salv_exact, T.salv_older,
	       T.salv_absent, T.salv_corrupt, T.salv_skipped_records);
	printf("  sealed segments cut at a record boundary without a hint "
	       "(undetectable, strict ok): %d; batches salvage applied in part: "
	       "%d\n", T.silent_loss_cases, T.partial_batch);
	printf("  salvage outside the log tail: %" PRIu64 " keys read other than "
	       "before the damage (and still known), %" PRIu64 " counted at risk; "
	       "%d opens (segments without a hint) lost "
	       "records to a cut at a record boundary and counted none\n",
	       T.risk_changed, T.risk_reported, T.risk_unreported);
	if (T.foreign_known || T.stale_known)
		printf("  KNOWN DEFECT (reads trust the record at a hinted offset): "
		       "in %d opens, %d reads returned another key's record, %d an "
		       "older record of the same key\n", T.foreign_cases,
		       T.foreign_known, T.stale_known);
	printf("  failed cases: %d (%d failed checks)\n", T.failed_cases, T.fails);
}

static void test_random_damage(void **state)
{
	uint64_t ncases = env_u64("KV_CORRUPT_CASES", 5000);
	uint64_t per = env_u64("KV_CORRUPT_PER_STORE", 6);
	uint64_t seed = env_u64("KV_CORRUPT_SEED", 20261121);
	const char *only = getenv("KV_CORRUPT_ONLY");
	char *root = tu_mkdir();
	char build[4096], work[4096];
	struct timespec t0, t1;
	store s;
	int have = 0;
	uint64_t have_group = 0;

	(void)state;
	if (per == 0)
		per = 1;
	snprintf(build, sizeof build, "%s/build", root);
	snprintf(work, sizeof work, "%s/work", root);
	assert_int_equal(mkdir(work, 0700), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t first = only ? strtoull(only, NULL, 0) : 0;
	uint64_t last = only ? first + 1 : ncases;
	for (uint64_t c = first; c < last; c++) {
		uint64_t group = c / per;
		if (!have || group != have_group) {
			if (have)
				free_store(&s);
			mkdir(build, 0700);
			empty_dir(build);
			build_store(&s, build, mix(seed, ~group));
			have = 1;
			have_group = group;
			T.stores++;
			case_failed = 0;
			check_pristine(&s, work);
		}
		run_case(&s, seed, c, work);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (have)
		free_store(&s);
	report(last - first, (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	tu_rmdir(root);
	assert_int_equal(T.fails, 0);
}

/* Twelve records of 235 B (keys s00..s11, 200-byte values whose first
 * byte is 'a' + i) over 600-byte segments: two per segment, at offsets 32
 * and 267; five sealed segments with hints and the active one. */
static void make_sealed(const char *dir, kv_options *o)
{
	char key[8], v[200];
	kv_t *db;

	tu_options(o);
	o->max_file_size = 600;
	db = tu_open(dir, o);
	memset(v, 'v', sizeof v);
	for (int i = 0; i < 12; i++) {
		snprintf(key, sizeof key, "s%02d", i);
		v[0] = (char)('a' + i);
		TU_OK(kv_put(db, key, 3, v, sizeof v));
	}
	TU_OK(kv_close(db));
	o->flags = KV_NO_AUTO_COMPACT;
}

/* Found by the random run (seed 20261121, cases 1177, 4257, 7341, 8932):
 * a hinted sealed segment cut at a record boundary scans clean, so open
 * refused the hint for its size and went on without the cut records. The
 * hint's size proves the cut: strict open now reports it, and salvage
 * counts the keys at risk. */
static void test_cut_at_a_record_boundary_of_a_hinted_segment(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db = NULL;
	char v[200];
	size_t n;

	(void)state;
	make_sealed(dir, &o);
	tu_truncate(tu_seg_path(dir, 2), 32 + 235); /* s03 is gone */
	assert_int_equal(kv_open(dir, &o, &db), KV_ECORRUPT);
	assert_null(db);
	assert_non_null(strstr(kv_errmsg(), "0000000000000002.seg"));
	assert_non_null(strstr(kv_errmsg(), "offset 267"));
	o.flags = KV_RDONLY;
	assert_int_equal(kv_open(dir, &o, &db), KV_ECORRUPT);
	/* Salvage opens; every other key reads, and the three written
	 * before the lost record (s00..s02) are named at risk: it could have
	 * overwritten or deleted them (seed 1, case 3483 found salvage
	 * counting none). */
	o.flags = KV_SALVAGE | KV_NO_AUTO_COMPACT;
	db = tu_open(dir, &o);
	struct kv_stats st = { .size = sizeof st };
	TU_OK(kv_stats(db, &st));
	assert_int_equal(st.recovered_keys_at_risk, 3);
	tu_expect_missing(db, "s03");
	TU_OK(kv_get_into(db, "s02", 3, v, sizeof v, &n));
	assert_int_equal(v[0], 'c');
	TU_OK(kv_get_into(db, "s04", 3, v, sizeof v, &n));
	assert_int_equal(v[0], 'e');
	kv_close(db);
	tu_rmdir(dir);
}

/* A sound record of another key with the same lengths at a hinted offset
 * (a misdirected write) must not be returned as this key's value:
 * lib/read.c compares the record's key with the index's. */
static void test_record_of_another_key_at_a_hinted_offset(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	uint8_t img[235];
	char v[200];
	size_t n;
	int fd;

	(void)state;
	make_sealed(dir, &o);
	/* s02's record, from segment 2, lands over s00's in segment 1. */
	fd = open(tu_seg_path(dir, 2), O_RDONLY);
	assert_int_equal(pread(fd, img, sizeof img, 32), (ssize_t)sizeof img);
	close(fd);
	fd = open(tu_seg_path(dir, 1), O_WRONLY);
	assert_int_equal(pwrite(fd, img, sizeof img, 32), (ssize_t)sizeof img);
	close(fd);
	db = tu_open(dir, &o);
	assert_int_equal(kv_get_into(db, "s00", 3, v, sizeof v, &n), KV_ECORRUPT);
	assert_non_null(strstr(kv_errmsg(), "0000000000000001.seg"));
	kv_close(db);
	tu_rmdir(dir);
}

/* Pokes the first byte of needle in the segments 1..9 of dir. */
static void poke_found(const char *dir, const char *needle)
{
	for (uint64_t seq = 1; seq < 10; seq++) {
		uint8_t img[4096];
		int fd = open(tu_seg_path(dir, seq), O_RDONLY);
		ssize_t got = fd < 0 ? -1 : pread(fd, img, sizeof img, 0);

		if (fd >= 0)
			close(fd);
		const uint8_t *at = got > 0 ? memmem(img, (size_t)got, needle,
						     strlen(needle))
					    : NULL;
		if (at) {
			tu_poke(tu_seg_path(dir, seq), (uint64_t)(at - img),
				'#');
			return;
		}
	}
	fail_msg("%s not found in any segment", needle);
}

/* kv_delete takes liveness from the index and does not read the value it
 * removes, so a key whose record is damaged can still be deleted, for
 * good. A key with an expiry is read to learn whether it has expired: a
 * damaged one is reported, naming the file, and nothing is written. */
static void test_delete_of_a_key_whose_record_is_damaged(void **state)
{
	char *dir = tu_mkdir();
	kv_options o;
	kv_t *db;
	char v[200];
	size_t n;

	(void)state;
	make_sealed(dir, &o);
	tu_poke(tu_seg_path(dir, 1), 32 + 32 + 3 + 100, 'X'); /* s00's value */
	db = tu_open(dir, &o);
	assert_int_equal(kv_get_into(db, "s00", 3, v, sizeof v, &n),
			 KV_ECORRUPT);
	TU_OK(kv_delete(db, "s00", 3));
	tu_expect_missing(db, "s00");
	assert_int_equal(kv_delete(db, "s00", 3), KV_ENOTFOUND);
	TU_OK(kv_put_ttl(db, "t1", 2, "ttl-value", 9, 3600 * 1000));
	/* Seal t1's segment, so that the damage is read through its hint
	 * rather than cut from the tail as a torn write at open. */
	memset(v, 'w', sizeof v);
	TU_OK(kv_put(db, "s20", 3, v, sizeof v));
	TU_OK(kv_put(db, "s21", 3, v, sizeof v));
	TU_OK(kv_put(db, "s22", 3, v, sizeof v));
	TU_OK(kv_close(db));

	poke_found(dir, "ttl-value");
	db = tu_open(dir, &o);
	assert_int_equal(kv_delete(db, "t1", 2), KV_ECORRUPT);
	assert_non_null(strstr(kv_errmsg(), ".seg"));
	assert_int_equal(kv_get_into(db, "t1", 2, v, sizeof v, &n),
			 KV_ECORRUPT);
	TU_OK(kv_close(db));
	db = tu_open(dir, &o); /* the tombstone of s00 held */
	tu_expect_missing(db, "s00");
	TU_OK(kv_get_into(db, "s01", 3, v, sizeof v, &n));
	assert_int_equal(v[0], 'b');
	kv_close(db);
	tu_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_damage),
		cmocka_unit_test(test_cut_at_a_record_boundary_of_a_hinted_segment),
		cmocka_unit_test(test_record_of_another_key_at_a_hinted_offset),
		cmocka_unit_test(test_delete_of_a_key_whose_record_is_damaged),
	};

	tu_tmpdir_in_memory();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
