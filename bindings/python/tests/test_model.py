"""Model-based random test (RELIABILITY-PLAN T11, Python binding).

Seeded random sequences of put, put with TTL, delete, get, batch (applied
or discarded), scan, clock steps, reopen, read-only peeks and compaction;
after every operation the store is compared with a dict: every pair, the
length, and the live/dead figures of stats().
"""

import os
import random

import libkv

from .support import FakeClock, StoreTestCase

HEADER = 32          # record header bytes, kv-format(5)
FILE_HEADER = 32     # segment file header bytes
OPS = 2500           # per configuration; 4 configurations: 10^4 ops


class Model:
    def __init__(self, clock):
        self.clock = clock
        self.data = {}     # key -> value
        self.exp = {}      # key -> expiry (ms) for keys put with a TTL

    def put(self, k, v, ttl=None):
        self.data[k] = v
        if ttl is None:
            self.exp.pop(k, None)
        else:
            self.exp[k] = self.clock.now + ttl

    def delete(self, k):
        self.data.pop(k, None)
        self.exp.pop(k, None)

    def advance(self, ms):
        self.clock.advance(ms)
        for k in [k for k, e in self.exp.items() if e <= self.clock.now]:
            self.delete(k)


class ModelRun:

    def __init__(self, test, seed, **options):
        self.t = test
        self.rnd = random.Random(seed)
        self.clock = FakeClock(1_000_000_000_000 + seed * 1000)
        self.options = dict(options, clock=self.clock)
        self.path = os.path.join(test.dir, "model-%d" % seed)
        self.m = Model(self.clock)
        self.compressed = bool(options.get("compress"))
        self.ordered = options.get("ordered", True)
        alphabet = [b"\x00", b"\x01", b"a", b"k", b"\xfe", b"\xff"]
        keys = set()
        while len(keys) < 60:
            keys.add(b"".join(self.rnd.choice(alphabet)
                              for _ in range(self.rnd.randint(1, 4))))
        self.keys = sorted(keys)
        self.db = libkv.open(self.path, "n", **self.options)
        test.addCleanup(lambda: self.db.close())
        # Background compaction makes the figures move between two calls:
        # with it, only what one kv_stats call returns is checked.
        self.background = options.get("auto_compact", True)
        self.compactions = self.freed = 0
        self.op_log = []

    # -- generators --

    def key(self):
        return self.rnd.choice(self.keys)

    def value(self):
        r = self.rnd.random()
        if r < 0.1:
            return b""
        if r < 0.15 and self.compressed:
            return bytes([self.rnd.randrange(4)]) * self.rnd.randint(1, 700)
        return self.rnd.randbytes(self.rnd.randint(1, 40))

    def ttl(self):
        # Clock steps are multiples of 10 and TTLs end in 5: no reading
        # ever falls exactly on an expiry time.
        return self.rnd.randrange(0, 300, 10) + 5

    # -- operations --

    def op_put(self):
        k, v = self.key(), self.value()
        self.db[k] = v
        self.m.put(k, v)

    def op_put_ttl(self):
        k, v, ttl = self.key(), self.value(), self.ttl()
        self.db.put(k, v, ttl=ttl)
        self.m.put(k, v, ttl)

    def op_delete(self):
        k = self.key()
        if k in self.m.data:
            del self.db[k]
            self.m.delete(k)
        else:
            with self.t.assertRaises(KeyError):
                del self.db[k]

    def op_get(self):
        k = self.key()
        self.t.assertEqual(self.db.get(k), self.m.data.get(k))
        self.t.assertEqual(k in self.db, k in self.m.data)
        if k in self.m.data:
            self.t.assertEqual(self.db.expiry(k), self.m.exp.get(k))
        else:
            with self.t.assertRaises(KeyError):
                self.db[k]

    def op_batch(self):
        ops = []
        for _ in range(self.rnd.randint(0, 12)):
            r = self.rnd.random()
            if r < 0.5:
                ops.append(("put", self.key(), self.value(), None))
            elif r < 0.7:
                ops.append(("put", self.key(), self.value(), self.ttl()))
            else:
                ops.append(("del", self.key(), None, None))
        discard = self.rnd.random() < 0.25

        class Discard(Exception):
            pass

        try:
            with self.db.batch() as b:
                for kind, k, v, ttl in ops:
                    if kind == "put":
                        b.put(k, v, ttl=ttl)
                    else:
                        del b[k]
                self.t.assertEqual(len(b), len(ops))
                if discard:
                    raise Discard
        except Discard:
            return
        for kind, k, v, ttl in ops:
            if kind == "put":
                self.m.put(k, v, ttl)
            else:
                self.m.delete(k)

    def op_scan(self):
        if not self.ordered:
            return
        kw = {}
        if self.rnd.random() < 0.5:
            kw["start"] = self.key()[:self.rnd.randint(0, 3)]
        if self.rnd.random() < 0.5:
            kw["end"] = self.key()[:self.rnd.randint(1, 3)]
        if self.rnd.random() < 0.3:
            kw["prefix"] = self.key()[:self.rnd.randint(0, 2)]
        if self.rnd.random() < 0.3:
            kw["limit"] = self.rnd.randint(0, 30)
        want = []
        for k in sorted(self.m.data):
            if ("start" in kw and k < kw["start"]) or \
               ("end" in kw and k >= kw["end"]) or \
               ("prefix" in kw and not k.startswith(kw["prefix"])):
                continue
            want.append((k, self.m.data[k]))
        if "limit" in kw:
            want = want[:kw["limit"]]
        got = list(self.db.scan(page_size=self.rnd.randint(1, 20), **kw))
        self.t.assertEqual(got, want, kw)

    def op_clock(self):
        self.m.advance(self.rnd.randrange(10, 200, 10))

    def op_reopen(self):
        self.db.close()
        if self.rnd.random() < 0.3:
            with libkv.open(self.path, "r", **self.options) as ro:
                self.compare(ro, figures=False)
        self.db = libkv.open(self.path, self.rnd.choice("wc"),
                             **self.options)
        self.compactions = self.freed = 0   # counted since the open

    def op_peek(self):
        # A read-only handle beside the writer sees the same data, once
        # it has reached the files (sync_mode "none" buffers it).
        self.db.sync()
        with libkv.open(self.path, "r", **self.options) as ro:
            self.compare(ro, figures=False)

    def op_compact(self):
        out = self.db.compact()
        if out["segments_in"]:
            self.t.assertGreater(out["segments_out"] + out["bytes_freed"], 0)
            self.compactions += 1
            self.freed += out["bytes_freed"]
        else:
            self.t.assertEqual(out, dict.fromkeys(out, 0))

    def op_pop(self):
        k = self.key()
        self.t.assertEqual(self.db.pop(k, None), self.m.data.get(k))
        self.m.delete(k)

    WEIGHTS = (("put", 30), ("put_ttl", 8), ("delete", 12), ("get", 15),
               ("batch", 8), ("scan", 6), ("clock", 6), ("reopen", 2),
               ("peek", 1), ("compact", 3), ("pop", 3))

    # -- checks --

    def compare(self, db, figures=True):
        want = sorted(self.m.data.items())
        if self.ordered:
            self.t.assertEqual(list(db.items()), want)
        else:
            self.t.assertEqual(sorted(db.items()), want)
        self.t.assertEqual(len(db), len(want))
        if not figures:
            return
        st = db.stats()
        self.t.assertEqual(st["live_keys"], len(want))
        if not self.compressed:
            self.t.assertEqual(st["live_bytes"], sum(
                HEADER + len(k) + len(v) for k, v in want))
        # One kv_stats call adds up at every moment, even while a
        # background compaction copies and switches.
        self.t.assertEqual(st["live_bytes"] + st["dead_bytes"]
                           + FILE_HEADER * st["segments"], st["disk_bytes"])
        if self.background:
            # The segment list and the counters come from other calls,
            # between which a background compaction may run.
            return
        segs = st["segment_stats"]
        self.t.assertEqual(st["segments"], len(segs))
        self.t.assertEqual(st["disk_bytes"], sum(s["bytes"] for s in segs))
        # Every record byte is either live or dead.
        self.t.assertEqual(st["live_bytes"] + st["dead_bytes"]
                           + FILE_HEADER * st["segments"], st["disk_bytes"])
        self.t.assertEqual(st["compactions"], self.compactions)
        self.t.assertEqual(st["compaction_freed_bytes"], self.freed)

    def run(self, nops):
        names = [n for n, _ in self.WEIGHTS]
        weights = [w for _, w in self.WEIGHTS]
        for i in range(nops):
            name = self.rnd.choices(names, weights)[0]
            self.op_log.append(name)
            try:
                getattr(self, "op_" + name)()
                self.compare(self.db)
            except BaseException as e:
                raise AssertionError("op %d (%s), last ops %s: %s"
                                     % (i, name, self.op_log[-8:], e)) from e
        self.db.close()
        with libkv.open(self.path, "r", **self.options) as db:
            self.compare(db, figures=False)
            self.t.assertEqual(db.verify()["bad_ranges"], 0)


class TestModel(StoreTestCase):

    def test_small_segments(self):
        ModelRun(self, 1, max_file_size=128, auto_compact=False).run(OPS)

    def test_one_record_per_segment_compressed(self):
        ModelRun(self, 2, max_file_size=1, compress=True, compress_min=16,
                 auto_compact=False).run(OPS)

    def test_unordered_unbuffered(self):
        ModelRun(self, 3, max_file_size=4096, ordered=False,
                 sync_mode="none", auto_compact=False).run(OPS)

    def test_background_compaction(self):
        ModelRun(self, 4, max_file_size=256, compact_dead_pct=10,
                 compact_min_size=256).run(OPS)
