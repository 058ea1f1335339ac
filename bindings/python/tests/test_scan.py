"""scan(): ranges, prefixes, limits and paging against a sorted model."""

import random

import libkv

from .support import StoreTestCase


def model_scan(model, start=None, end=None, prefix=None, limit=None):
    out = []
    for k in sorted(model):
        if start is not None and k < start:
            continue
        if end is not None and k >= end:
            continue
        if prefix is not None and not k.startswith(prefix):
            continue
        out.append((k, model[k]))
    return out if limit is None else out[:limit]


class TestScan(StoreTestCase):

    def setUp(self):
        super().setUp()
        rnd = random.Random(7)
        self.model = {}
        alphabet = [b"\x00", b"\x01", b"a", b"b", b"\x7f", b"\xfe", b"\xff"]
        while len(self.model) < 1500:
            k = b"".join(rnd.choice(alphabet)
                         for _ in range(rnd.randint(1, 5)))
            self.model[k] = b"v" * rnd.randint(0, 3) + k
        self.db = self.open()
        with self.db.batch() as b:
            for k, v in self.model.items():
                b[k] = v

    def check(self, **kw):
        want = model_scan(self.model, **kw)
        for page_size in (1, 3, 64, libkv.PAGE_SIZE, 10_000):
            with self.subTest(page_size=page_size, **kw):
                self.assertEqual(list(self.db.scan(page_size=page_size,
                                                   **kw)), want)

    def test_everything_in_order(self):
        self.assertGreater(len(self.model), libkv.PAGE_SIZE * 2)
        self.check()
        self.assertEqual(list(self.db), sorted(self.model))
        self.assertEqual(list(self.db.items()),
                         model_scan(self.model))

    def test_binary_keys_order(self):
        keys = list(self.db)
        self.assertEqual(keys, sorted(keys))
        self.assertIn(b"\x00", self.model)
        self.assertEqual(keys[0][:1], b"\x00")
        self.assertEqual(keys[-1][:1], b"\xff")

    def test_prefixes(self):
        for prefix in (b"", b"\x00", b"\x00\x00", b"a", b"ab", b"\xff",
                       b"\xff\xff", b"\xff\xff\xff\xff\xff", b"zz",
                       b"\xfe\x00"):
            self.check(prefix=prefix)

    def test_ranges(self):
        bounds = [None, b"", b"\x00", b"\x00\x00\x00", b"a", b"a\x00",
                  b"b", b"\x7f\xff", b"\xff", b"\xff\xff\xff\xff\xff\xff"]
        for start in bounds:
            for end in bounds:
                self.check(start=start, end=end)

    def test_limits(self):
        for limit in (0, 1, 2, libkv.PAGE_SIZE - 1, libkv.PAGE_SIZE,
                      libkv.PAGE_SIZE + 1, 1499, 1500, 5000):
            self.check(limit=limit)
            self.check(prefix=b"a", limit=limit)
            self.check(start=b"\x01", end=b"\xfe", limit=limit)

    def test_mixed_random(self):
        rnd = random.Random(11)
        keys = sorted(self.model)
        for _ in range(150):
            kw = {}
            if rnd.random() < 0.5:
                kw["start"] = rnd.choice(keys)[:rnd.randint(0, 5)]
            if rnd.random() < 0.5:
                kw["end"] = rnd.choice(keys)[:rnd.randint(1, 5)]
            if rnd.random() < 0.4:
                kw["prefix"] = rnd.choice(keys)[:rnd.randint(0, 3)]
            if rnd.random() < 0.4:
                kw["limit"] = rnd.randint(0, 700)
            want = model_scan(self.model, **kw)
            got = list(self.db.scan(page_size=rnd.choice((1, 5, 100)), **kw))
            self.assertEqual(got, want, kw)

    def test_str_bounds(self):
        db = self.open(path=self.dir + "/s2")
        for k in ("user:1", "user:2", "user:10", "video:1"):
            db[k] = k
        self.assertEqual([k for k, _ in db.scan(prefix="user:")],
                         [b"user:1", b"user:10", b"user:2"])
        self.assertEqual([k for k, _ in db.scan(start="user:2", end="v")],
                         [b"user:2"])

    def test_lazy_and_writes_during_a_scan(self):
        it = self.db.scan(page_size=10)
        first = next(it)
        self.assertEqual(first, model_scan(self.model, limit=1)[0])
        # Keys live for the whole scan are seen exactly once, even when
        # the store changes between pages.
        keys_before = sorted(self.model)
        later = keys_before[-1]
        gone = keys_before[50]          # beyond the first page of 10
        del self.db[gone]
        self.db[b"\x00"] = b"changed"   # before the scan position
        self.db[later + b"\x00"] = b"new"  # after it: may be seen
        rest = [k for k, _ in it]
        keys = [first[0]] + rest
        self.assertEqual(len(keys), len(set(keys)))
        self.assertTrue(keys == sorted(keys))
        self.assertTrue(later in keys)
        self.assertFalse(gone in keys)
        self.assertEqual(set(keys) - {later + b"\x00"},
                         set(self.model) - {gone})

    def test_scan_after_close_of_the_store_mid_way(self):
        it = self.db.scan(page_size=10)
        next(it)
        self.db.close()
        with self.assertRaises(libkv.error):
            list(it)

    def test_long_keys_resume(self):
        # Paging resumes at last_key + b"\0", which is one byte longer
        # than KV_MAX_KEY for a key of the greatest length.
        db = self.open(path=self.dir + "/s3")
        big = [b"\xff" * libkv.KV_MAX_KEY, b"\xfe" * libkv.KV_MAX_KEY,
               b"\xff" * (libkv.KV_MAX_KEY - 1)]
        for k in big:
            db[k] = b"v"
        self.assertEqual([k for k, _ in db.scan(page_size=1)], sorted(big))
