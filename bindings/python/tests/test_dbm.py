"""The dbm conventions: flags, mapping protocol, shelve."""

import collections.abc
import os
import shelve
import stat

import libkv

from .support import StoreTestCase


class TestFlags(StoreTestCase):

    def test_c_creates_and_reopens(self):
        with libkv.open(self.store, "c") as db:
            db[b"k"] = b"v"
        self.assertTrue(os.path.isdir(self.store))
        with libkv.open(self.store, "c") as db:
            self.assertEqual(db[b"k"], b"v")

    def test_default_flag_is_c(self):
        with libkv.open(self.store) as db:
            db["k"] = "v"
        with libkv.open(self.store) as db:
            self.assertEqual(db["k"], b"v")

    def test_w_needs_an_existing_store(self):
        e = self.assertKvError(libkv.KV_ENOENT, libkv.open, self.store, "w")
        self.assertEqual(e.name, "KV_ENOENT")
        self.assertFalse(os.path.exists(self.store))
        libkv.open(self.store, "c").close()
        with libkv.open(self.store, "w") as db:
            db[b"a"] = b"1"
            self.assertEqual(db[b"a"], b"1")

    def test_r_reads_and_refuses_writes(self):
        with libkv.open(self.store, "c") as db:
            db[b"a"] = b"1"
        with libkv.open(self.store, "r") as db:
            self.assertTrue(db.readonly)
            self.assertEqual(db[b"a"], b"1")
            self.assertKvError(libkv.KV_EREADONLY, db.__setitem__, b"b",
                               b"2")
            self.assertKvError(libkv.KV_EREADONLY, db.__delitem__, b"a")
            self.assertKvError(libkv.KV_EREADONLY, db.compact)
            with self.assertRaises(libkv.error) as cm:
                with db.batch() as b:
                    b[b"c"] = b"3"
            self.assertEqual(cm.exception.code, libkv.KV_EREADONLY)
            self.assertEqual(dict(db.items()), {b"a": b"1"})

    def test_r_on_missing_store(self):
        self.assertKvError(libkv.KV_ENOENT, libkv.open, self.store, "r")

    def test_r_beside_a_writer(self):
        w = self.open()
        w[b"a"] = b"1"
        r = self.open(flag="r")
        w[b"b"] = b"2"
        self.assertEqual(dict(r.items()), {b"a": b"1"})  # as of its open
        self.assertEqual(len(w), 2)

    def test_n_empties_an_existing_store(self):
        with libkv.open(self.store, "c") as db:
            for i in range(100):
                db[b"k%d" % i] = b"v"
        with libkv.open(self.store, "n") as db:
            self.assertEqual(len(db), 0)
            self.assertEqual(list(db), [])
            db[b"new"] = b"x"
        with libkv.open(self.store, "r") as db:
            self.assertEqual(dict(db.items()), {b"new": b"x"})

    def test_n_creates(self):
        with libkv.open(self.store, "n") as db:
            self.assertEqual(len(db), 0)
        self.assertTrue(os.path.isdir(self.store))

    def test_n_refused_while_another_writer_holds_it(self):
        db = self.open()
        db[b"a"] = b"1"
        self.assertKvError(libkv.KV_ELOCKED, libkv.open, self.store, "n")
        self.assertEqual(db[b"a"], b"1")

    def test_bad_flag(self):
        for flag in ("x", "", "rw", None, 1):
            with self.assertRaises(ValueError):
                libkv.open(self.store, flag)
        self.assertFalse(os.path.exists(self.store))

    def test_mode_sets_file_mode(self):
        old = os.umask(0)
        try:
            with libkv.open(self.store, "c", 0o640) as db:
                db[b"a"] = b"1"
        finally:
            os.umask(old)
        segs = [f for f in os.listdir(self.store) if f.endswith(".seg")]
        self.assertTrue(segs)
        for f in segs:
            m = stat.S_IMODE(os.stat(os.path.join(self.store, f)).st_mode)
            self.assertEqual(m, 0o640)

    def test_mode_is_masked(self):
        with libkv.open(self.store, "c", 0o100644) as db:
            db[b"a"] = b"1"

    def test_path_like_and_bytes_path(self):
        import pathlib
        with libkv.open(pathlib.Path(self.store), "c") as db:
            db[b"a"] = b"1"
        with libkv.open(os.fsencode(self.store), "r") as db:
            self.assertEqual(db[b"a"], b"1")
        with self.assertRaises(ValueError):
            libkv.open(self.store + "\0x", "c")

    def test_unknown_option(self):
        with self.assertRaises(TypeError):
            libkv.open(self.store, "c", bogus=1)
        self.assertFalse(os.path.exists(self.store))

    def test_options_checked(self):
        for bad, exc in ((dict(sync_mode="fast"), ValueError),
                         (dict(sync_every=-1), ValueError),
                         (dict(sync_every=2 ** 32), ValueError),
                         (dict(max_file_size="1"), TypeError),
                         (dict(max_value_size=1.5), TypeError),
                         (dict(compress_min=True), TypeError),
                         (dict(log=42), TypeError)):
            with self.subTest(bad=bad):
                with self.assertRaises(exc):
                    libkv.open(self.store, "c", **bad)
        # Values the library itself refuses come back as libkv.error.
        self.assertKvError(libkv.KV_EINVAL, libkv.open, self.store, "c",
                           compact_dead_pct=101)
        self.assertKvError(libkv.KV_EINVAL, libkv.open, self.store, "c",
                           max_file_size=1 << 40)
        self.assertKvError(libkv.KV_EINVAL, libkv.open, self.store, "c",
                           expected_keys=1 << 40)

    def test_expected_keys_sizes_the_index(self):
        # A table of 8-byte slots for 100,000 keys is over 1 MB; the same
        # store holding the same key opened without expected_keys has a
        # table for a few keys (both hold one 2 MiB chunk of entries).
        with libkv.open(self.store, "c", expected_keys=100_000) as db:
            self.assertGreaterEqual(db.stats()["keydir_bytes"], 1_000_000)
            db[b"k"] = b"v"
            sized = db.stats()["keydir_bytes"]
        with libkv.open(self.store, "w") as db:
            self.assertGreaterEqual(sized - db.stats()["keydir_bytes"],
                                    1_000_000)
            self.assertEqual(db[b"k"], b"v")

    def test_every_option_accepted(self):
        logs = []
        with libkv.open(self.store, "c", sync_mode="every", sync_every=10,
                        max_file_size=1 << 20, max_value_size=1 << 16,
                        compress=True, compress_min=64, ordered=True,
                        auto_compact=False, salvage=False,
                        compact_dead_pct=30, compact_store_pct=40,
                        compact_dead_bytes=1 << 20, compact_min_size=1 << 10,
                        compact_max_bytes=1 << 30, expected_keys=1000,
                        log=lambda lvl, msg: logs.append(msg),
                        clock=lambda: 1_000_000,
                        progress=lambda d, t: False) as db:
            db[b"a"] = b"x" * 1000
            self.assertEqual(db[b"a"], b"x" * 1000)
            self.assertEqual(db.stats()["compressed_values"], 1)
        for mode in libkv.SYNC_MODES:
            with self.subTest(mode=mode):
                with libkv.open(self.store, "c", sync_mode=mode,
                                sync_every=5) as db:
                    db[mode] = mode
                    self.assertEqual(db.stats()["sync_mode"], mode)
                    db.sync()
        with libkv.open(self.store, "r") as db:
            self.assertEqual(len(db), 1 + len(libkv.SYNC_MODES))


class TestMapping(StoreTestCase):

    def test_is_a_mutable_mapping(self):
        db = self.open()
        self.assertIsInstance(db, collections.abc.MutableMapping)

    def test_missing_key_raises_key_error(self):
        db = self.open()
        with self.assertRaises(KeyError):
            db[b"nope"]
        with self.assertRaises(KeyError):
            del db[b"nope"]
        # Keys that can never be stored read as missing too.
        with self.assertRaises(KeyError):
            db[b""]
        with self.assertRaises(KeyError):
            db[b"x" * (libkv.KV_MAX_KEY + 1)]
        self.assertNotIn(b"", db)
        self.assertIsNone(db.get(b""))

    def test_str_and_bytes_keys(self):
        db = self.open()
        db["caf\u00e9"] = "cr\u00e8me"
        self.assertEqual(db["caf\u00e9".encode()], "cr\u00e8me".encode())
        self.assertEqual(db["caf\u00e9"], "cr\u00e8me".encode())
        db[bytearray(b"ba")] = memoryview(b"mv")
        self.assertEqual(db[b"ba"], b"mv")
        self.assertIsInstance(db[b"ba"], bytes)
        self.assertIn("ba", db)
        self.assertIn(b"ba", db)
        self.assertIn(bytearray(b"ba"), db)
        for bad in (1, None, 1.5, ("a",)):
            with self.assertRaises(TypeError):
                db[bad] = b"v"
            with self.assertRaises(TypeError):
                db[bad]
            with self.assertRaises(TypeError):
                bad in db
        with self.assertRaises(TypeError):
            db[b"k"] = 5

    def test_binary_and_empty_values(self):
        db = self.open()
        db[b"\x00\xff"] = b""
        db[b"\xff"] = bytes(range(256)) * 10
        self.assertEqual(db[b"\x00\xff"], b"")
        self.assertEqual(db[b"\xff"], bytes(range(256)) * 10)
        self.assertIn(b"\x00\xff", db)

    def test_len_iter_in(self):
        db = self.open()
        keys = [b"b", b"a", b"c\x00", b"c", b"\xff"]
        for i, k in enumerate(keys):
            db[k] = b"%d" % i
        self.assertEqual(len(db), 5)
        self.assertEqual(list(db), sorted(keys))
        self.assertEqual(list(db.keys()), sorted(keys))
        self.assertEqual(list(db.values()),
                         [b"%d" % keys.index(k) for k in sorted(keys)])
        self.assertEqual(list(db.items()),
                         [(k, b"%d" % keys.index(k)) for k in sorted(keys)])
        self.assertIn(b"c\x00", db.keys())
        self.assertIn((b"a", b"1"), db.items())
        self.assertEqual(len(db.keys()), 5)
        del db[b"a"]
        self.assertNotIn(b"a", db)
        self.assertEqual(len(db), 4)

    def test_get_setdefault_pop_update(self):
        db = self.open()
        self.assertIsNone(db.get(b"a"))
        self.assertEqual(db.get(b"a", b"d"), b"d")
        self.assertEqual(db.setdefault(b"a", b"1"), b"1")
        self.assertEqual(db.setdefault(b"a", b"2"), b"1")
        self.assertEqual(db.setdefault("e"), b"")
        self.assertEqual(db[b"e"], b"")
        db.update({b"x": b"1", "y": "2"}, z=b"3")
        self.assertEqual(db.pop(b"x"), b"1")
        self.assertEqual(db.pop(b"x", None), None)
        k, v = db.popitem()
        self.assertNotIn(k, db)
        self.assertEqual(len(db), 3)
        db.clear()
        self.assertEqual(len(db), 0)
        db.clear()  # empty: nothing to do

    def test_iteration_over_an_unordered_store(self):
        db = self.open(ordered=False)
        data = {b"k%03d" % i: b"v%d" % i for i in range(50)}
        db.update(data)
        self.assertFalse(db.ordered)
        self.assertEqual(sorted(db), sorted(data))
        self.assertEqual(dict(db.items()), data)
        self.assertEqual(sorted(db.values()), sorted(data.values()))
        e = self.assertKvError(libkv.KV_ENOTSUP, db.scan)
        self.assertEqual(e.name, "KV_ENOTSUP")

    def test_context_manager_closes(self):
        with libkv.open(self.store, "c") as db:
            db[b"a"] = b"1"
            self.assertFalse(db.closed)
        self.assertTrue(db.closed)
        # Closed, so the write lock is free again.
        with libkv.open(self.store, "w") as db2:
            self.assertEqual(db2[b"a"], b"1")

    def test_use_after_close(self):
        db = libkv.open(self.store, "c")
        db[b"a"] = b"1"
        it = iter(db.items())
        db.close()
        db.close()  # idempotent
        for fn, args in ((db.__getitem__, (b"a",)),
                         (db.__setitem__, (b"a", b"2")),
                         (db.__delitem__, (b"a",)),
                         (db.__contains__, (b"a",)),
                         (db.__contains__, (b"",)),
                         (db.__len__, ()), (db.get, (b"a",)),
                         (db.put, (b"a", b"1")), (db.sync, ()),
                         (db.stats, ()), (db.compact, ()),
                         (db.verify, ()), (db.expiry, (b"a",)),
                         (db.scan, ()), (db.clear, ()),
                         (list, (db,)), (list, (it,))):
            with self.subTest(fn=fn):
                with self.assertRaises(libkv.error) as cm:
                    fn(*args)
                self.assertEqual(cm.exception.code, libkv.KV_EINVAL)
        self.assertIn("closed", repr(db))

    def test_garbage_collected_store_is_closed(self):
        db = libkv.open(self.store, "c")
        db[b"a"] = b"1"
        del db
        import gc
        gc.collect()
        with libkv.open(self.store, "w") as db:  # no KV_ELOCKED
            self.assertEqual(db[b"a"], b"1")


class TestShelve(StoreTestCase):

    def test_shelf_round_trip_across_reopen(self):
        objs = {
            "config": {"retries": 3, "hosts": ["a", "b"]},
            "t\u00fcple": (1, 2.5, None, b"\x00\xff"),
            "set": {1, 2, 3},
        }
        with shelve.Shelf(libkv.open(self.store, "c")) as sh:
            for k, v in objs.items():
                sh[k] = v
            sh["gone"] = 1
            del sh["gone"]
        with shelve.Shelf(libkv.open(self.store, "r")) as sh:
            self.assertEqual(sorted(sh), sorted(objs))
            self.assertEqual(len(sh), 3)
            for k, v in objs.items():
                self.assertEqual(sh[k], v)
            self.assertIn("config", sh)
            self.assertNotIn("gone", sh)
            self.assertEqual(dict(sh.items()), objs)

    def test_writeback_shelf(self):
        with shelve.Shelf(libkv.open(self.store, "c"),
                          writeback=True) as sh:
            sh["list"] = []
            sh["list"].append(1)
            sh.sync()
            sh["list"].append(2)
        with shelve.Shelf(libkv.open(self.store, "r")) as sh:
            self.assertEqual(sh["list"], [1, 2])
