"""Time to live, expiry(), and atomic batches."""

import datetime
import time

import libkv

from .support import FakeClock, StoreTestCase


class TestTTL(StoreTestCase):

    def test_ttl_and_expiry_with_a_fake_clock(self):
        clock = FakeClock()
        db = self.open(clock=clock)
        t0 = clock.now
        db.put(b"short", b"1", ttl=100)
        db.put(b"long", b"2", ttl=datetime.timedelta(seconds=10))
        db[b"forever"] = b"3"
        self.assertEqual(db.expiry(b"short"), t0 + 100)
        self.assertEqual(db.expiry(b"long"), t0 + 10_000)
        self.assertIsNone(db.expiry(b"forever"))
        with self.assertRaises(KeyError):
            db.expiry(b"missing")
        self.assertEqual(len(db), 3)

        clock.advance(99)
        self.assertEqual(db[b"short"], b"1")
        clock.advance(2)
        self.assertNotIn(b"short", db)
        with self.assertRaises(KeyError):
            db[b"short"]
        with self.assertRaises(KeyError):
            db.expiry(b"short")
        with self.assertRaises(KeyError):
            del db[b"short"]
        self.assertEqual(len(db), 2)
        self.assertEqual(list(db), [b"forever", b"long"])
        self.assertEqual(db.stats()["live_keys"], 2)

        # A plain write replaces the value and its expiry.
        db[b"long"] = b"again"
        self.assertIsNone(db.expiry(b"long"))
        clock.advance(20_000)
        self.assertEqual(db[b"long"], b"again")

    def test_expiry_survives_reopen(self):
        clock = FakeClock()
        with libkv.open(self.store, "c", clock=clock) as db:
            db.put(b"k", b"v", ttl=5_000)
            db.put(b"gone", b"v", ttl=10)
        clock.advance(100)
        with libkv.open(self.store, "r", clock=clock) as db:
            self.assertEqual(db.expiry(b"k"), clock.now - 100 + 5_000)
            self.assertNotIn(b"gone", db)
        clock.advance(5_000)
        with libkv.open(self.store, "c", clock=clock) as db:
            self.assertEqual(len(db), 0)

    def test_real_clock(self):
        db = self.open()
        before = time.time_ns() // 1_000_000
        db.put(b"k", b"v", ttl=3_600_000)
        after = time.time_ns() // 1_000_000
        exp = db.expiry(b"k")
        self.assertGreaterEqual(exp, before + 3_600_000)
        self.assertLessEqual(exp, after + 3_600_000)
        db.put(b"soon", b"v", ttl=1)
        time.sleep(0.01)
        self.assertNotIn(b"soon", db)


class TestBatch(StoreTestCase):

    def test_commit_on_normal_exit(self):
        clock = FakeClock()
        db = self.open(clock=clock)
        db[b"old"] = b"o"
        with db.batch() as b:
            b[b"a"] = b"1"
            b.put("b", "2")
            b.put(b"t", b"3", ttl=50)
            del b[b"old"]
            del b[b"never-existed"]   # a harmless tombstone
            self.assertEqual(len(b), 5)
            # Nothing is visible before the block ends.
            self.assertNotIn(b"a", db)
            self.assertIn(b"old", db)
        self.assertEqual(dict(db.items()), {b"a": b"1", b"b": b"2",
                                           b"t": b"3"})
        self.assertEqual(db.expiry(b"t"), clock.now + 50)
        clock.advance(60)
        self.assertNotIn(b"t", db)

    def test_discard_on_exception(self):
        db = self.open()
        db[b"keep"] = b"1"
        with self.assertRaises(ZeroDivisionError):
            with db.batch() as b:
                b[b"a"] = b"1"
                del b[b"keep"]
                1 / 0
        self.assertEqual(dict(db.items()), {b"keep": b"1"})
        with self.assertRaises(libkv.error):
            len(b)  # freed

    def test_atomic_across_reopen(self):
        with libkv.open(self.store, "c") as db:
            with db.batch() as b:
                for i in range(1000):
                    b[b"k%04d" % i] = b"v%d" % i
        with libkv.open(self.store, "r") as db:
            self.assertEqual(len(db), 1000)
            self.assertEqual(db[b"k0999"], b"v999")

    def test_last_write_in_a_batch_wins(self):
        db = self.open()
        with db.batch() as b:
            b[b"k"] = b"1"
            b[b"k"] = b"2"
            del b[b"x"]
            b[b"x"] = b"3"
        self.assertEqual(db[b"k"], b"2")
        self.assertEqual(db[b"x"], b"3")

    def test_manual_commit_and_reuse(self):
        db = self.open()
        b = db.batch()
        b[b"a"] = b"1"
        b.commit()
        self.assertEqual(len(b), 0)   # emptied for reuse
        self.assertEqual(db[b"a"], b"1")
        b[b"b"] = b"2"
        b.clear()
        b.commit()                    # empty: a no-op
        self.assertNotIn(b"b", db)
        b.close()
        b.close()
        with self.assertRaises(libkv.error):
            b[b"c"] = b"3"

    def test_bad_operations_are_refused_when_added(self):
        db = self.open()
        with db.batch() as b:
            with self.assertRaises(libkv.error) as cm:
                b[b""] = b"v"
            self.assertEqual(cm.exception.code, libkv.KV_EINVAL)
            with self.assertRaises(ValueError):
                b.put(b"k", b"v", ttl=0)
            with self.assertRaises(TypeError):
                b[1] = b"v"
            b[b"ok"] = b"v"
            self.assertEqual(len(b), 1)
        self.assertEqual(list(db), [b"ok"])

    def test_batch_on_a_closed_store(self):
        db = self.open()
        b = db.batch()
        b[b"a"] = b"1"
        db.close()
        with self.assertRaises(libkv.error) as cm:
            b.commit()
        self.assertEqual(cm.exception.code, libkv.KV_EINVAL)
        b.close()
