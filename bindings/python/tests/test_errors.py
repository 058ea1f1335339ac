"""Error codes, messages, and exceptions raised inside callbacks."""

import os
import pickle
import sys
import threading
import unittest
from unittest import mock

import libkv
from libkv import _store

from .support import StoreTestCase


class TestCodes(StoreTestCase):

    def test_error_is_an_oserror_with_code_name_and_detail(self):
        with self.assertRaises(OSError) as cm:
            libkv.open(self.store, "w")
        e = cm.exception
        self.assertIsInstance(e, libkv.error)
        self.assertNotIsInstance(e, KeyError)
        self.assertEqual(e.code, -10)
        self.assertEqual(e.name, "KV_ENOENT")
        self.assertEqual(e.strerror, "no store at that path")
        self.assertIn(self.store, e.detail)       # from kv_errmsg()
        self.assertIn("KV_ENOENT", str(e))
        self.assertIn(self.store, str(e))

    def test_error_pickles(self):
        try:
            libkv.open(self.store, "w")
        except libkv.error as e:
            e2 = pickle.loads(pickle.dumps(e))
            self.assertEqual((e2.code, e2.name, e2.detail, str(e2)),
                             (e.code, e.name, e.detail, str(e)))

    def test_second_writer_is_locked(self):
        db = self.open()
        e = self.assertKvError(-6, libkv.open, self.store, "c")
        self.assertEqual(e.code, libkv.KV_ELOCKED)
        self.assertKvError(libkv.KV_ELOCKED, libkv.open, self.store, "w")
        db.close()
        libkv.open(self.store, "w").close()

    def test_put_on_read_only(self):
        libkv.open(self.store, "c").close()
        db = self.open(flag="r")
        self.assertKvError(libkv.KV_EREADONLY, db.put, b"k", b"v")
        self.assertKvError(libkv.KV_EREADONLY, db.put, b"k", b"v", ttl=5)
        self.assertEqual(libkv.KV_EREADONLY, -7)

    def test_too_big_and_invalid(self):
        db = self.open(max_value_size=100)
        self.assertKvError(libkv.KV_ETOOBIG, db.put, b"k", b"x" * 101)
        db[b"k"] = b"x" * 100
        self.assertKvError(libkv.KV_ETOOBIG, db.__setitem__,
                           b"x" * (libkv.KV_MAX_KEY + 1), b"v")
        db[b"x" * libkv.KV_MAX_KEY] = b"v"
        self.assertEqual(db[b"x" * libkv.KV_MAX_KEY], b"v")
        self.assertKvError(libkv.KV_EINVAL, db.__setitem__, b"", b"v")
        # The store's limit is checked when the batch is written.
        with self.assertRaises(libkv.error) as cm:
            with db.batch() as b:
                b[b"a"] = b"ok"
                b[b"big"] = b"x" * 101
        self.assertEqual(cm.exception.code, libkv.KV_ETOOBIG)
        self.assertNotIn(b"a", db)  # nothing of the batch applied
        self.assertEqual(len(db), 2)

    def test_ttl_arguments(self):
        db = self.open()
        for bad in (0, -1, 2 ** 64):
            with self.assertRaises(ValueError):
                db.put(b"k", b"v", ttl=bad)
        for bad in (1.5, "10", True):
            with self.assertRaises(TypeError):
                db.put(b"k", b"v", ttl=bad)
        self.assertNotIn(b"k", db)

    def test_scan_arguments(self):
        db = self.open()
        with self.assertRaises(TypeError):
            db.scan(start=1)
        with self.assertRaises(ValueError):
            db.scan(limit=-1)
        with self.assertRaises(TypeError):
            db.scan(limit=1.0)
        with self.assertRaises(ValueError):
            db.scan(page_size=0)

    def test_corrupt_store_fails_to_open(self):
        with libkv.open(self.store, "c", max_file_size=256) as db:
            for i in range(40):
                db[b"k%02d" % i] = b"v" * 40
        segs = sorted(f for f in os.listdir(self.store)
                      if f.endswith(".seg"))
        self.assertGreater(len(segs), 2)
        with open(os.path.join(self.store, segs[0]), "r+b") as f:
            f.seek(64)
            b = f.read(1)
            f.seek(64)
            f.write(bytes([b[0] ^ 0xFF]))
        # close() left a hint file beside each sealed segment, and open
        # loads those without reading records: the damage is found by the
        # read of the damaged record, which names the file.
        with libkv.open(self.store, "w") as db:
            e = self.assertKvError(libkv.KV_ECORRUPT, db.__getitem__,
                                   b"k00")
            self.assertIn(segs[0], e.detail)
            self.assertEqual(db[b"k39"], b"v" * 40)
        # Without its hint, open reads the segment and refuses it.
        os.remove(os.path.join(self.store, segs[0][:-4] + ".hint"))
        e = self.assertKvError(libkv.KV_ECORRUPT, libkv.open, self.store,
                               "w")
        self.assertIn(segs[0], e.detail)


class TestCallbackExceptions(StoreTestCase):
    """An exception raised by Python code the library calls back never
    crosses C: the call is stopped and the exception raised when it
    returns."""

    def fill(self, db, n=300):
        for i in range(n):
            db[b"k%04d" % i] = b"v%d" % i

    def test_internal_scan_callback_failure(self):
        db = self.open()
        self.fill(db)
        calls = [0]
        real = _store._string_at

        def flaky(ptr, n):
            calls[0] += 1
            if calls[0] == 100:
                raise MemoryError("injected")
            return real(ptr, n)

        with mock.patch.object(_store, "_string_at", flaky):
            with self.assertRaises(MemoryError):
                list(db.items())
            calls[0] = 0
            with self.assertRaises(MemoryError):
                list(db.scan(page_size=7))
        # The store is unharmed and usable.
        self.assertEqual(len(list(db.items())), 300)

    def test_internal_foreach_callback_failure(self):
        db = self.open(ordered=False)
        self.fill(db, 50)

        def boom(ptr, n):
            raise KeyboardInterrupt

        with mock.patch.object(_store, "_string_at", boom):
            with self.assertRaises(KeyboardInterrupt):
                list(db)
        self.assertEqual(len(list(db)), 50)

    def test_verify_progress_exception(self):
        db = self.open()
        self.fill(db)

        class Stop(Exception):
            pass

        def progress(done, total):
            raise Stop(done, total)

        with self.assertRaises(Stop) as cm:
            db.verify(progress=progress)
        self.assertIsInstance(cm.exception.args[1], int)
        # A true result stops it too, with KV_ECANCELED.
        self.assertKvError(libkv.KV_ECANCELED, db.verify,
                           progress=lambda d, t: True)
        self.assertEqual(db.verify(progress=lambda d, t: None)["bad_ranges"],
                         0)

    def test_compaction_progress_exception(self):
        seen = []
        fail = [True]

        def progress(done, total):
            seen.append((done, total))
            if fail[0]:
                raise ValueError("stop the compaction")
            return False

        db = self.open(max_file_size=512, auto_compact=False,
                       progress=progress)
        for i in range(200):
            db[b"k%d" % (i % 10)] = b"x" * 50
        before = db.stats()["disk_bytes"]
        with self.assertRaises(ValueError):
            db.compact()
        self.assertTrue(seen)
        self.assertEqual(db.stats()["disk_bytes"], before)  # changed nothing
        fail[0] = False
        out = db.compact()
        self.assertGreater(out["bytes_freed"], 0)
        self.assertEqual(len(db), 10)

    def test_clock_exception(self):
        broken = [True]

        def clock():
            if broken[0]:
                raise RuntimeError("clock is broken")
            return 1_000_000

        # The clock is read at open: the open fails and leaves no lock.
        with self.assertRaises(RuntimeError):
            libkv.open(self.store, "c", clock=clock)
        broken[0] = False
        db = self.open(clock=clock)
        broken[0] = True
        with self.assertRaises(RuntimeError):
            db.put(b"k", b"v", ttl=60_000)
        broken[0] = False
        db.put(b"k", b"v", ttl=60_000)
        self.assertEqual(db.expiry(b"k"), 1_060_000)

    def test_clock_wrong_type(self):
        now = [1_000_000]
        db = self.open(clock=lambda: now[0])
        now[0] = 1.5
        with self.assertRaises(TypeError):
            db.put(b"k", b"v", ttl=60_000)
        now[0] = -1
        with self.assertRaises(ValueError):
            db.put(b"k", b"v", ttl=60_000)

    def test_log_exception_at_open(self):
        # A torn tail makes the open log a message; the log callback
        # raising makes the open raise, and the store is left closed.
        with libkv.open(self.store, "c") as db:
            db[b"a"] = b"1"
        seg = sorted(f for f in os.listdir(self.store)
                     if f.endswith(".seg"))[-1]
        with open(os.path.join(self.store, seg), "ab") as f:
            f.write(b"\x01\x02\x03")
        msgs = []

        def log(level, msg):
            msgs.append((level, msg))
            raise LookupError(msg)

        with self.assertRaises(LookupError):
            libkv.open(self.store, "c", log=log)
        self.assertTrue(msgs)
        self.assertIsInstance(msgs[0][1], str)
        # Not left locked; and a well-behaved log sees the same thing.
        msgs.clear()
        with libkv.open(self.store, "c", log=lambda l, m: msgs.append(m)):
            pass

    def test_close_from_inside_a_callback_is_refused(self):
        holder = {}

        def progress(done, total):
            holder["db"].close()

        db = self.open(max_file_size=256, auto_compact=False,
                       progress=progress)
        holder["db"] = db
        for i in range(100):
            db[b"k%d" % (i % 5)] = b"x" * 40
        e = self.assertKvError(libkv.KV_EBUSY, db.compact)
        self.assertIn("callback", str(e))
        self.assertFalse(db.closed)
        self.assertEqual(len(db), 5)

    def test_background_callback_exception_is_reported(self):
        reported = []
        hook = sys.unraisablehook
        sys.unraisablehook = lambda u: reported.append(u.exc_value)
        self.addCleanup(setattr, sys, "unraisablehook", hook)
        compacted = threading.Event()

        def progress(done, total):
            if threading.current_thread() is not threading.main_thread():
                compacted.set()
                raise OSError("from the background thread")

        db = self.open(max_file_size=256, compact_dead_pct=1,
                       progress=progress)
        for i in range(200):
            db[b"k%d" % (i % 5)] = b"x" * 40
        if not compacted.wait(5):
            self.skipTest("no background compaction within 5 s")
        db.close()
        self.assertTrue(any(isinstance(e, OSError) for e in reported))


class TestLoading(unittest.TestCase):

    def run_python(self, env_value):
        import subprocess
        env = dict(os.environ)
        if env_value is None:
            env.pop("LIBKV_LIBRARY", None)
        else:
            env["LIBKV_LIBRARY"] = env_value
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        return subprocess.run(
            [sys.executable, "-c", "import libkv; print(libkv.library_path)"],
            cwd=here, env=env, capture_output=True, text=True, timeout=60)

    def test_bad_env_path_names_what_was_tried(self):
        r = self.run_python("/nonexistent/libkv.so")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("/nonexistent/libkv.so", r.stderr)
        self.assertIn("LIBKV_LIBRARY", r.stderr)

    def test_env_path_is_used(self):
        path = libkv._ffi.lib._name
        r = self.run_python(path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("LIBKV_LIBRARY=" + path, r.stdout)

    def test_in_tree_build_without_env(self):
        root = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.dirname(os.path.abspath(libkv.__file__)))))
        if not os.path.exists(os.path.join(root, "build", "libkv.so")):
            self.skipTest("no in-tree build")
        r = self.run_python(None)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("in-tree build", r.stdout)
