"""refresh(): a read-only store follows its writer (kv_refresh(3))."""

import libkv

from .support import StoreTestCase


class TestRefresh(StoreTestCase):

    def test_reader_sees_writes_after_refresh_only(self):
        w = self.open(max_file_size=4096, auto_compact=False)
        w[b"a"] = b"1"
        w[b"b"] = b"2"
        r = self.open(flag="r")
        w[b"a"] = b"1b"
        del w[b"b"]
        w.update({b"k%03d" % i: b"v%d" % i for i in range(200)})
        self.assertEqual(r[b"a"], b"1")
        self.assertNotIn(b"k000", r)
        r.refresh()
        self.assertEqual(r[b"a"], b"1b")
        self.assertNotIn(b"b", r)
        self.assertEqual(r[b"k199"], b"v199")
        self.assertEqual(r.digest(), w.digest())

    def test_refresh_after_compaction_deleted_the_files(self):
        w = self.open(max_file_size=4096, auto_compact=False)
        for v in range(3):
            w.update({b"k%03d" % i: b"v%d" % v for i in range(200)})
        r = self.open(flag="r")
        w.compact()
        w[b"new"] = b"x"
        r.refresh()
        self.assertEqual(r.digest(), w.digest())
        self.assertEqual(r[b"k007"], b"v2")
        self.assertEqual(r.stats()["segments"], w.stats()["segments"])

    def test_refresh_of_a_writable_store_is_refused(self):
        w = self.open()
        w[b"a"] = b"1"
        e = self.assertKvError(libkv.KV_EINVAL, w.refresh)
        self.assertIn("KV_RDONLY", str(e))
        self.assertEqual(w[b"a"], b"1")
