"""Shared helpers of the libkv binding tests."""

import os
import tempfile
import unittest

import libkv


class FakeClock:
    """A TTL clock the test moves by hand (ms since the epoch)."""

    def __init__(self, now=1_700_000_000_000):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, ms):
        self.now += ms


class StoreTestCase(unittest.TestCase):
    """Each test gets a fresh temporary directory, removed afterwards;
    stores opened through self.open() are closed at the end."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="libkv-py-")
        self.addCleanup(self._tmp.cleanup)
        self.dir = self._tmp.name
        self.store = os.path.join(self.dir, "store")

    def open(self, path=None, flag="c", mode=0o666, **options):
        db = libkv.open(self.store if path is None else path, flag, mode,
                        **options)
        self.addCleanup(db.close)
        return db

    def assertKvError(self, code, fn, *args, **kwargs):
        with self.assertRaises(libkv.error) as cm:
            fn(*args, **kwargs)
        self.assertEqual(cm.exception.code, code, str(cm.exception))
        return cm.exception
