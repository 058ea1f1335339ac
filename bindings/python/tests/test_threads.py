"""One Store shared by threads; close() waits for calls in flight."""

import threading

import libkv

from .support import StoreTestCase


class TestThreads(StoreTestCase):

    def test_readers_and_writers_share_a_store(self):
        db = self.open(max_file_size=8192, compact_dead_pct=20)
        n_writers, n_keys, rounds = 4, 100, 30
        errors = []
        stop = threading.Event()

        def writer(w):
            try:
                for r in range(rounds):
                    with db.batch() as b:
                        for i in range(n_keys):
                            b[b"w%d:%03d" % (w, i)] = b"%d" % r
                    for i in range(0, n_keys, 7):
                        db.put(b"w%d:%03d" % (w, i), b"%d" % r)
            except BaseException as e:
                errors.append(e)

        def reader():
            try:
                while not stop.is_set():
                    for w in range(n_writers):
                        vals = [v for _, v in db.scan(prefix=b"w%d:" % w,
                                                      page_size=17)]
                        # Pages are read at different times, so a scan
                        # is no snapshot; but every value is a whole one.
                        if not all(0 <= int(v) < rounds for v in vals):
                            raise AssertionError(vals)
                    len(db)
                    db.get(b"w0:000")
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(w,))
                   for w in range(n_writers)]
        readers = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads + readers:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        for t in readers:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(db), n_writers * n_keys)
        for w in range(n_writers):
            for i in range(n_keys):
                self.assertEqual(db[b"w%d:%03d" % (w, i)],
                                 b"%d" % (rounds - 1))

    def test_close_waits_for_calls_in_flight(self):
        db = libkv.open(self.store, "c", auto_compact=False)
        for i in range(2000):
            db[b"k%05d" % i] = b"v" * 100
        started = threading.Event()
        results = []

        def slow_reader():
            started.set()
            try:
                while True:
                    results.append(sum(1 for _ in db.items()))
            except libkv.error as e:
                results.append(e.code)

        t = threading.Thread(target=slow_reader)
        t.start()
        started.wait()
        db.close()
        t.join()
        self.assertEqual(results[-1], libkv.KV_EINVAL)  # closed
        self.assertTrue(all(r == 2000 for r in results[:-1]), results[:5])
        with libkv.open(self.store, "w") as db:
            self.assertEqual(len(db), 2000)
