"""stats(), compact(), verify(), and the ctypes mirror of kv.h."""

import ctypes
import os
import shutil
import subprocess
import unittest

import libkv
from libkv import _ffi

from .support import StoreTestCase

HEADER = 32  # record header bytes, kv-format(5)


def record_bytes(items):
    return sum(HEADER + len(k) + len(v) for k, v in items)


class TestStats(StoreTestCase):

    def test_fresh_store(self):
        db = self.open()
        st = db.stats()
        self.assertEqual(st["live_keys"], 0)
        self.assertEqual(st["live_bytes"], 0)
        self.assertEqual(st["sync_mode"], "write")
        self.assertGreaterEqual(st["segments"], 1)
        self.assertEqual(len(st["segment_stats"]), st["segments"])
        self.assertTrue(st["segment_stats"][-1]["active"])
        for name in ("size", "reserved"):
            self.assertNotIn(name, st)

    def test_figures_follow_writes(self):
        db = self.open(auto_compact=False)
        items = {b"k%03d" % i: b"v" * i for i in range(100)}
        db.update(items)
        st = db.stats()
        self.assertEqual(st["live_keys"], 100)
        self.assertEqual(st["live_bytes"], record_bytes(items.items()))
        self.assertEqual(st["dead_bytes"], 0)
        self.assertEqual(st["last_lsn"], 100)
        segs = st["segment_stats"]
        self.assertEqual(st["disk_bytes"], sum(s["bytes"] for s in segs))
        self.assertEqual(st["live_bytes"],
                         sum(s["live_bytes"] for s in segs))
        del db[b"k000"]
        db[b"k001"] = b"new"
        st = db.stats()
        self.assertEqual(st["live_keys"], 99)
        self.assertEqual(st["last_lsn"], 102)
        # The old k000 and k001 records, and the tombstone, are dead.
        self.assertEqual(st["dead_bytes"],
                         HEADER + 4 + 0 + HEADER + 4 + 1 + HEADER + 4)

    def test_compact_frees_bytes_after_overwrites(self):
        db = self.open(max_file_size=4096, auto_compact=False)
        for rnd in range(20):
            for i in range(50):
                db[b"key%02d" % i] = b"%02d" % rnd * 20
        before = db.stats()
        self.assertGreater(before["segments"], 5)
        self.assertGreater(before["dead_bytes"], before["live_bytes"])
        out = db.compact()
        self.assertEqual(set(out), {"segments_in", "segments_out",
                                    "bytes_read", "bytes_written",
                                    "bytes_freed"})
        self.assertGreater(out["segments_in"], 0)
        self.assertGreater(out["segments_out"], 0)
        self.assertGreater(out["bytes_read"], out["bytes_written"])
        self.assertGreater(out["bytes_freed"], 0)
        after = db.stats()
        self.assertEqual(after["compactions"], 1)
        self.assertEqual(after["compaction_freed_bytes"], out["bytes_freed"])
        self.assertLess(after["disk_bytes"], before["disk_bytes"])
        self.assertEqual(after["live_keys"], 50)
        self.assertEqual(after["live_bytes"], before["live_bytes"])
        self.assertTrue(any(s["compacted"] and s["hint"]
                            for s in after["segment_stats"]))
        self.assertEqual(dict(db.items()),
                         {b"key%02d" % i: b"19" * 20 for i in range(50)})
        # Nothing left to do.
        self.assertEqual(db.compact()["segments_in"], 0)
        db.close()
        with libkv.open(self.store, "r") as db:
            st = db.stats()
            self.assertGreater(st["recovered_hint_segments"], 0)
            self.assertEqual(len(db), 50)

    def test_compression_figures(self):
        db = self.open(compress=True, compress_min=100)
        db[b"big"] = b"a" * 10_000
        db[b"small"] = b"a" * 50
        st = db.stats()
        self.assertEqual(st["compressed_values"], 1)
        self.assertGreater(st["compression_saved_bytes"], 9_000)
        self.assertEqual(db[b"big"], b"a" * 10_000)

    def test_torn_tail_is_counted(self):
        # Garbage after the last record is a torn write, counted; zeros
        # are space the store allocated ahead of its appends, not counted.
        for tail, counted in ((b"\xff" * 10, 10), (b"\x00" * 10, 0)):
            with libkv.open(self.store, "c") as db:
                db[b"a"] = b"1"
            seg = sorted(f for f in os.listdir(self.store)
                         if f.endswith(".seg"))[-1]
            with open(os.path.join(self.store, seg), "ab") as f:
                f.write(tail)
            with libkv.open(self.store, "c") as db:
                self.assertEqual(db.stats()["recovered_truncated_bytes"],
                                 counted)
                self.assertEqual(db[b"a"], b"1")


class TestVerify(StoreTestCase):

    def test_sound_store(self):
        db = self.open(max_file_size=1024, auto_compact=False)
        for i in range(200):
            db[b"k%d" % (i % 40)] = b"x" * 30
        seen = []
        out = db.verify(progress=lambda d, t: seen.append((d, t)))
        self.assertEqual(set(out), {"segments", "records", "bytes",
                                    "bad_ranges", "bad_bytes"})
        self.assertEqual(out["bad_ranges"], 0)
        self.assertEqual(out["bad_bytes"], 0)
        self.assertEqual(out["records"], 200)
        self.assertEqual(out["segments"], db.stats()["segments"])
        self.assertEqual(out["bytes"], db.stats()["disk_bytes"])
        self.assertTrue(seen)
        self.assertEqual(seen[-1][0], seen[-1][1])

    def test_read_only_handle(self):
        libkv.open(self.store, "c").close()
        with libkv.open(self.store, "r") as db:
            self.assertEqual(db.verify()["bad_ranges"], 0)

    def test_damage_is_reported_with_figures(self):
        with libkv.open(self.store, "c", max_file_size=512) as db:
            for i in range(60):
                db[b"k%02d" % i] = b"v" * 40
        segs = sorted(f for f in os.listdir(self.store)
                      if f.endswith(".seg"))
        with open(os.path.join(self.store, segs[1]), "r+b") as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 0x55]))
        with libkv.open(self.store, "r", salvage=True) as db:
            st = db.stats()
            self.assertGreater(st["recovered_skipped_records"], 0)
            with self.assertRaises(libkv.error) as cm:
                db.verify()
            e = cm.exception
            self.assertEqual(e.code, libkv.KV_ECORRUPT)
            self.assertIn(segs[1], e.detail)
            self.assertGreaterEqual(e.stats["bad_ranges"], 1)
            self.assertGreater(e.stats["bad_bytes"], 0)


class TestABI(unittest.TestCase):
    """The ctypes structs must match kv.h exactly."""

    SIZES = {"kv_options": 136, "kv_stats": 168, "kv_segment_stats": 40,
             "kv_compact_stats": 64, "kv_verify_stats": 64}

    def test_options_size_is_what_kv_options_init_sets(self):
        opts = _ffi.kv_options()
        _ffi.kv_options_init(ctypes.byref(opts))
        self.assertEqual(opts.size, ctypes.sizeof(_ffi.kv_options))
        self.assertEqual(opts.flags, 0)
        self.assertEqual(opts.expected_keys, 0)

    def test_stats_size_is_checked_by_the_library(self):
        with _TempStore() as db:
            st = _ffi.kv_stats()
            st.size = ctypes.sizeof(st)
            self.assertEqual(db._h.call(_ffi.kv_stats_fn, ctypes.byref(st)),
                             0)
            st.size = ctypes.sizeof(st) - 8
            self.assertEqual(db._h.call(_ffi.kv_stats_fn, ctypes.byref(st)),
                             libkv.KV_EINVAL)

    def test_sizes_on_lp64(self):
        if ctypes.sizeof(ctypes.c_void_p) != 8:
            self.skipTest("sizes written for LP64")
        for name, size in self.SIZES.items():
            self.assertEqual(ctypes.sizeof(getattr(_ffi, name)), size, name)

    def test_offsets_against_the_c_compiler(self):
        cc = shutil.which("cc") or shutil.which("gcc")
        root = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.dirname(os.path.abspath(_ffi.__file__)))))
        include = os.path.join(root, "include")
        if not cc or not os.path.exists(os.path.join(include, "kv.h")):
            self.skipTest("no C compiler or no kv.h")
        import tempfile
        lines = []
        structs = {"kv_options": "kv_options", "kv_stats": "struct kv_stats",
                   "kv_segment_stats": "kv_segment_stats",
                   "kv_compact_stats": "kv_compact_stats",
                   "kv_verify_stats": "kv_verify_stats"}
        for py, c in structs.items():
            lines.append('printf("%s %%zu\\n", sizeof(%s));' % (py, c))
            for field, _ in getattr(_ffi, py)._fields_:
                lines.append('printf("%s.%s %%zu %%zu\\n", offsetof(%s, %s),'
                             ' sizeof(((%s *)0)->%s));'
                             % (py, field, c, field, c, field))
        src = ("#include <stddef.h>\n#include <stdio.h>\n#include <kv.h>\n"
               "int main(void) {\n" + "\n".join(lines) + "\nreturn 0;\n}\n")
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "abi.c"), "w") as f:
                f.write(src)
            exe = os.path.join(d, "abi")
            subprocess.run([cc, "-std=c11", "-I", include, "-o", exe,
                            os.path.join(d, "abi.c")], check=True,
                           capture_output=True)
            out = subprocess.run([exe], check=True, capture_output=True,
                                 text=True).stdout
        want = {}
        for py in structs:
            cls = getattr(_ffi, py)
            want[py] = str(ctypes.sizeof(cls))
            for field, _ in cls._fields_:
                d = getattr(cls, field)
                want["%s.%s" % (py, field)] = "%d %d" % (d.offset, d.size)
        got = dict(line.split(" ", 1) for line in out.splitlines())
        self.assertEqual(got, want)


class _TempStore:
    def __enter__(self):
        import tempfile
        self.tmp = tempfile.TemporaryDirectory()
        self.db = libkv.open(os.path.join(self.tmp.name, "s"), "c")
        return self.db

    def __exit__(self, *exc):
        self.db.close()
        self.tmp.cleanup()
