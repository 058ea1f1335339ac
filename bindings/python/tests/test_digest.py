"""digest(), digest_buckets(), digest_items(): kv_digest(3) from Python."""

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import tempfile
import unittest

import libkv
from libkv import _ffi

from .support import FakeClock, StoreTestCase

HASH_MAX = (1 << 64) - 1


def final_items(n=300):
    return {b"key%04d" % i: (b"v%d" % i) * (1 + i % 50) for i in range(n)}


def _xxhash():
    """libxxhash through ctypes, for an independent digest, or None."""
    name = ctypes.util.find_library("xxhash")
    if not name:
        return None

    class XXH128(ctypes.Structure):
        _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]

    lib = ctypes.CDLL(name)
    lib.XXH3_128bits.restype = XXH128
    lib.XXH3_128bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.XXH3_64bits.restype = ctypes.c_uint64
    lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return lib


XXH = _xxhash()


def pair_hash(key, value):
    data = len(key).to_bytes(4, "little") + key + value
    h = XXH.XXH3_128bits(data, len(data))
    return (h.high64 << 64) | h.low64


class TestDigest(StoreTestCase):

    def test_same_pairs_same_digest_whatever_the_history(self):
        items = final_items()
        a = self.open(os.path.join(self.dir, "a"), compress=True,
                      compress_min=64, max_file_size=4096,
                      auto_compact=False)
        for k in reversed(list(items)):
            a[k] = b"old"
        a[b"gone"] = b"x"
        a.update(items)
        del a[b"gone"]
        a.compact()
        self.assertGreater(a.stats()["compressed_values"], 0)
        b = self.open(os.path.join(self.dir, "b"))
        b.update(items)
        da, db = a.digest(), b.digest()
        self.assertEqual(da, db)
        self.assertEqual(da.keys, len(items))
        self.assertEqual(da.bytes, sum(len(k) + len(v)
                                       for k, v in items.items()))
        self.assertEqual((da.first, da.last), (0, HASH_MAX))
        b[b"key0007"] = b"other"
        self.assertNotEqual(b.digest().value, da.value)

    @unittest.skipIf(XXH is None, "libxxhash not found by ctypes")
    def test_digest_is_the_documented_sum(self):
        items = final_items(50)
        items[b"big"] = bytes(range(256)) * 20   # over 1 KiB: streamed
        db = self.open()
        db.update(items)
        want = sum(pair_hash(k, v) for k, v in items.items()) % (1 << 128)
        self.assertEqual(db.digest().value, want)

    def test_empty_store(self):
        db = self.open()
        self.assertEqual(db.digest(), libkv._store.Digest(0, 0, 0, 0,
                                                          HASH_MAX))

    def test_expiry_changes_the_digest(self):
        clock = FakeClock()
        db = self.open(clock=clock)
        db.update(final_items(20))
        d0 = db.digest()
        db.put(b"key0003", db[b"key0003"], ttl=1000)
        self.assertEqual(db.digest(), d0)
        clock.advance(1000)
        self.assertEqual(db.digest().keys, 19)

    def test_buckets_add_up_and_tile(self):
        db = self.open()
        db.update(final_items())
        whole = db.digest()
        bk = db.digest_buckets(7)
        self.assertEqual(len(bk), 7)
        self.assertEqual(sum(d.value for d in bk) % (1 << 128), whole.value)
        self.assertEqual(sum(d.keys for d in bk), whole.keys)
        self.assertEqual(bk[0].first, 0)
        self.assertEqual(bk[-1].last, HASH_MAX)
        for x, y in zip(bk, bk[1:]):
            self.assertEqual(y.first, x.last + 1)
        for d in bk:
            got = db.digest_items(d.first, d.last)
            self.assertEqual(len(got), d.keys)
            if XXH is not None:
                for k, _ in got:
                    self.assertTrue(d.first <= XXH.XXH3_64bits(k, len(k))
                                    <= d.last)

    def test_drill_down_finds_the_differing_key(self):
        items = final_items(2000)
        a = self.open(os.path.join(self.dir, "a"))
        b = self.open(os.path.join(self.dir, "b"))
        a.update(items)
        b.update(items)
        b[b"key1234"] = b"changed"
        found = set()
        ranges, rounds = [(0, HASH_MAX)], 0
        while ranges:
            rounds += 1
            nxt = []
            for first, last in ranges:
                for x, y in zip(a.digest_buckets(16, first, last),
                                b.digest_buckets(16, first, last)):
                    if x == y:
                        continue
                    if x.keys <= 16 and y.keys <= 16:
                        ia = dict(a.digest_items(x.first, x.last))
                        ib = dict(b.digest_items(y.first, y.last))
                        found |= {k for k in ia.keys() | ib.keys()
                                  if ia.get(k) != ib.get(k)}
                    else:
                        nxt.append((x.first, x.last))
            ranges = nxt
        self.assertEqual(found, {b"key1234"})
        self.assertLessEqual(rounds, 3)

    def test_bad_arguments(self):
        db = self.open()
        with self.assertRaises(ValueError):
            db.digest_buckets(0)
        with self.assertRaises(ValueError):
            db.digest_buckets(_ffi.KV_DIGEST_MAX_BUCKETS + 1)
        with self.assertRaises(TypeError):
            db.digest_buckets(2.0)
        with self.assertRaises(ValueError):
            db.digest_items(-1)
        self.assertKvError(libkv.KV_EINVAL, db.digest_buckets, 1, 10, 9)
        self.assertKvError(libkv.KV_EINVAL, db.digest_buckets, 3, 5, 6)
        self.assertKvError(libkv.KV_EINVAL, db.digest_items, 10, 9)
        db.close()
        self.assertKvError(libkv.KV_EINVAL, db.digest)

    def test_digest_from_inside_a_callback_is_refused(self):
        # Callbacks (log, clock) may run with the write lock held, which
        # a digest takes: refused, as compact() is.
        seen = []
        armed = []

        def clock():
            if armed and not seen:
                seen.append(0)
                try:
                    db.digest()
                except libkv.error as e:
                    seen.append(e.code)
            return 1_700_000_000_000

        db = self.open(clock=clock)
        armed.append(1)
        db.put(b"k", b"v", ttl=10)
        self.assertEqual(seen, [0, libkv.KV_EBUSY])
        self.assertEqual(db.digest().keys, 1)


class TestDigestABI(unittest.TestCase):

    def test_struct_matches_the_c_compiler(self):
        cc = shutil.which("cc") or shutil.which("gcc")
        root = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.dirname(os.path.abspath(_ffi.__file__)))))
        include = os.path.join(root, "include")
        if not cc or not os.path.exists(os.path.join(include, "kv.h")):
            self.skipTest("no C compiler or no kv.h")
        cls = _ffi.kv_digest
        lines = ['printf("size %zu\\n", sizeof(struct kv_digest));',
                 'printf("max %u\\n", KV_DIGEST_MAX_BUCKETS);']
        for field, _ in cls._fields_:
            lines.append('printf("%s %%zu\\n", offsetof(struct kv_digest, '
                         '%s));' % (field, field))
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
        want = {"size": str(ctypes.sizeof(cls)),
                "max": str(_ffi.KV_DIGEST_MAX_BUCKETS)}
        for field, _ in cls._fields_:
            want[field] = str(getattr(cls, field).offset)
        self.assertEqual(dict(l.split(" ") for l in out.splitlines()), want)


if __name__ == "__main__":
    unittest.main()
