"""The Pythonic layer over _ffi: Store, Batch, error and open()."""

import collections.abc
import datetime
import os
import sys
import threading
import time
import types
import weakref
from ctypes import byref, c_size_t, c_uint64, c_void_p, sizeof, string_at

from . import _ffi
from ._ffi import (KV_EBUSY, KV_ECORRUPT, KV_EINVAL, KV_ENOTFOUND,
                   KV_ENOTSUP, KV_MAX_KEY)

__all__ = ["error", "open", "Store", "Batch"]

# Pairs fetched per kv_scan call by the lazy iterators.
PAGE_SIZE = 512

# Key hashes (XXH3_64 of the key) run from 0 to this; see kv_digest(3).
_HASH_MAX = (1 << 64) - 1

SYNC_MODES = {
    "write": _ffi.KV_SYNC_WRITE,
    "none": _ffi.KV_SYNC_NONE,
    "every": _ffi.KV_SYNC_EVERY,
    "interval": _ffi.KV_SYNC_INTERVAL,
    "always": _ffi.KV_SYNC_ALWAYS,
}
_SYNC_NAMES = {v: k for k, v in SYNC_MODES.items()}

_FLAGS = {
    "r": _ffi.KV_RDONLY,
    "w": 0,
    "c": _ffi.KV_CREATE,
    "n": _ffi.KV_CREATE,
}

# Numeric options: name -> width in bits of the kv_options field.
_UINT_OPTIONS = {
    "sync_every": 32,
    "max_file_size": 64,
    "max_value_size": 64,
    "compress_min": 32,
    "compact_dead_pct": 32,
    "compact_store_pct": 32,
    "compact_dead_bytes": 64,
    "compact_min_size": 64,
    "compact_max_bytes": 64,
    "expected_keys": 64,
}
# Boolean options: name -> (flag bit, value that sets the bit).
_BOOL_OPTIONS = {
    "compress": (_ffi.KV_COMPRESS, True),
    "salvage": (_ffi.KV_SALVAGE, True),
    "ordered": (_ffi.KV_UNORDERED, False),
    "auto_compact": (_ffi.KV_NO_AUTO_COMPACT, False),
}
_CALLBACK_OPTIONS = ("log", "clock", "progress")
OPTIONS = (("sync_mode",) + tuple(_UINT_OPTIONS) + tuple(_BOOL_OPTIONS)
           + _CALLBACK_OPTIONS)


# ---- errors ----


class error(OSError):
    """A libkv failure other than a missing key.

    Attributes: ``code`` (the negative KV_E* number), ``name`` (such as
    ``"KV_ENOENT"``), ``strerror`` (kv_strerror's text) and ``detail``
    (kv_errmsg's text for the failing call: file, offset, errno), and
    ``stats`` where a call has figures to report despite failing
    (verify() on a damaged store).
    """

    def __init__(self, message, code=None, detail=None):
        super().__init__(message)
        self.code = code
        self.name = _ffi.ERROR_NAMES.get(code) if code is not None else None
        self.strerror = (_ffi.kv_strerror(code).decode("utf-8", "replace")
                         if code is not None else None)
        self.detail = detail
        self.stats = None

    def __reduce__(self):
        return (type(self), (self.args[0], self.code, self.detail),
                self.__dict__)


def _error(rc, what):
    """The error for return code rc of the call described by what.

    Must be called in the thread that made the failing call, before any
    other libkv call there: kv_errmsg() is per thread."""
    detail = _ffi.kv_errmsg().decode("utf-8", "replace")
    if detail == "no error":
        detail = None
    name = _ffi.ERROR_NAMES.get(rc, "code %d" % rc)
    text = _ffi.kv_strerror(rc).decode("utf-8", "replace")
    msg = "%s: %s [%s]" % (what, text, name)
    if detail and detail != text:
        msg += ": " + detail
    return error(msg, rc, detail)


def _closed_error():
    return error("libkv store is closed", KV_EINVAL)


# ---- argument conversion (never an implicit one) ----


def _bytes(obj, what):
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, str):
        return obj.encode("utf-8")
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    raise TypeError("libkv %ss must be bytes or str, not %s"
                    % (what, type(obj).__name__))


def _key(k):
    return _bytes(k, "key")


def _value(v):
    return _bytes(v, "value")


def _string_at(ptr, n):
    """n bytes at ptr; ptr may be NULL when n is 0."""
    return string_at(ptr, n) if n else b""


def _findable(k):
    """Whether key bytes k could be stored at all (1..KV_MAX_KEY)."""
    return 0 < len(k) <= KV_MAX_KEY


def _ttl_ms(ttl):
    if isinstance(ttl, datetime.timedelta):
        ms = ttl // datetime.timedelta(milliseconds=1)
    elif isinstance(ttl, int) and not isinstance(ttl, bool):
        ms = ttl
    else:
        raise TypeError("ttl must be an int of milliseconds or a timedelta, "
                        "not %s" % type(ttl).__name__)
    if not 0 < ms < 2 ** 64:
        raise ValueError("ttl must be at least 1 ms (and under 2**64 ms), "
                         "got %r" % (ttl,))
    return ms


def _uint(name, value, bits):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("option %s must be an int, not %s"
                        % (name, type(value).__name__))
    if not 0 <= value < 2 ** bits:
        raise ValueError("option %s must be in 0..%d, got %d"
                         % (name, 2 ** bits - 1, value))
    return value


def _int_arg(name, value, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("%s must be an int, not %s"
                        % (name, type(value).__name__))
    if not lo <= value <= hi:
        raise ValueError("%s must be in %d..%d, got %d"
                         % (name, lo, hi, value))
    return value


def _report(exc, what):
    """Reports an exception that has no caller to go to (a callback run
    by one of the library's background threads)."""
    try:
        sys.unraisablehook(types.SimpleNamespace(
            exc_type=type(exc), exc_value=exc,
            exc_traceback=exc.__traceback__,
            err_msg="Exception ignored in libkv %s callback" % what,
            object=None))
    except BaseException:
        pass


# ---- the handle and its guard ----


class _Handle:
    """The kv_t pointer plus what it takes to use it from many threads.

    kv_close() must not race with any other call on the handle, so every
    call is counted in and out, and close() waits for the count to drop to
    zero after refusing new calls.  Exceptions raised by Python code that
    the library calls back (in the calling thread) are kept here and raised
    again once the C call has returned: they never cross C.
    """

    __slots__ = ("ptr", "keep", "cv", "busy", "closed", "finished", "tls",
                 "__weakref__")

    def __init__(self):
        self.ptr = None
        self.keep = ()          # ctypes callbacks that must outlive ptr
        self.cv = threading.Condition(threading.Lock())
        self.busy = 0
        self.closed = False
        self.finished = threading.Event()   # set once kv_close returned
        self.tls = threading.local()

    def check_open(self):
        if self.closed:
            raise _closed_error()

    def call(self, fn, *args, cleanup=None):
        """fn(ptr, *args) with the handle held open; returns fn's int."""
        with self.cv:
            if self.closed:
                raise _closed_error()
            self.busy += 1
        try:
            return self.run(fn, self.ptr, *args, cleanup=cleanup)
        finally:
            with self.cv:
                self.busy -= 1
                if self.busy == 0 and self.closed:
                    self.cv.notify_all()

    def run(self, fn, *args, cleanup=None):
        """fn(*args), then raises what a callback raised meanwhile, after
        calling cleanup(rc) to release what fn may have returned."""
        tls = self.tls
        depth = getattr(tls, "depth", 0)
        saved = getattr(tls, "exc", None)
        tls.depth, tls.exc = depth + 1, None
        try:
            rc = fn(*args)
        finally:
            exc = tls.exc
            tls.depth, tls.exc = depth, saved
        if exc is not None:
            try:
                if cleanup is not None:
                    cleanup(rc)
                raise exc
            finally:
                exc = None
        return rc

    def caught(self, exc, what):
        """Called by a callback wrapper that caught exc."""
        tls = self.tls
        if getattr(tls, "depth", 0):
            if tls.exc is None:
                tls.exc = exc
        else:
            _report(exc, what)

    def in_callback(self):
        return getattr(self.tls, "callback", 0) > 0

    def close(self):
        """Closes the C handle once no call is running; idempotent.
        Returns kv_close's code (0 when already closed)."""
        inside = getattr(self.tls, "depth", 0) or self.in_callback()
        with self.cv:
            if self.closed:
                wait = not inside
            else:
                if inside:
                    raise error("close() called from inside a libkv "
                                "callback of the same store", KV_EBUSY)
                wait = None
                self.closed = True
                while self.busy:
                    self.cv.wait()
                ptr, self.ptr = self.ptr, None
        if wait is not None:
            if wait:    # closed by another thread: return once it is done
                self.finished.wait()
            return 0
        try:
            # run(): an exception from the log callback during the close
            # is raised once the handle is gone.
            return self.run(_ffi.kv_close, ptr) if ptr else 0
        finally:
            self.finished.set()


def _finalize(handle):
    """weakref finalizer of a Store that was not closed: closes quietly.
    A collection can run in a thread that is inside one of this store's
    callbacks, where kv_close() would wait for itself: hand it off."""
    if handle.in_callback():
        threading.Thread(target=handle.close, daemon=True).start()
    else:
        try:
            handle.close()
        except Exception as e:
            _report(e, "close (finalizer)")


def _guarded(handle, what, fn, on_error):
    """A wrapper of fn fit to be called by C: an exception fn raises is
    caught (and raised again by _Handle.run once the C call returns, or
    reported if a background thread ran fn), and on_error() is returned
    to C instead."""
    def wrapper(*args):
        tls = handle.tls
        tls.callback = getattr(tls, "callback", 0) + 1
        try:
            return fn(*args)
        except BaseException as e:
            handle.caught(e, what)
            return on_error()
        finally:
            tls.callback -= 1
    return wrapper


def _wrap_callbacks(handle, opts, options):
    """Sets opts.log/clock/progress from Python callables; returns the
    ctypes objects that must stay referenced while the handle is open."""
    keep = []

    def guarded(what, fn, on_error):
        return _guarded(handle, what, fn, on_error)

    log = options.get("log")
    if log is not None:
        if not callable(log):
            raise TypeError("option log must be callable")

        def on_log(ctx, level, msg):
            log(level, msg.decode("utf-8", "replace") if msg else "")
        cb = _ffi.kv_log_fn(guarded("log", on_log, lambda: None))
        opts.log = cb
        keep.append(cb)

    clock = options.get("clock")
    if clock is not None:
        if not callable(clock):
            raise TypeError("option clock must be callable")

        def on_clock(ctx):
            now = clock()
            if not isinstance(now, int) or isinstance(now, bool):
                raise TypeError("the clock must return an int of ms, not %s"
                                % type(now).__name__)
            return _uint("clock() result", now, 64)
        cb = _ffi.kv_clock_fn(guarded("clock", on_clock,
                                      lambda: time.time_ns() // 1000000))
        opts.clock = cb
        keep.append(cb)

    progress = options.get("progress")
    if progress is not None:
        if not callable(progress):
            raise TypeError("option progress must be callable")
        cb = _progress_fn(handle, progress)
        opts.progress = cb
        keep.append(cb)
    return tuple(keep)


def _progress_fn(handle, progress):
    def on_progress(ctx, done, total):
        return 1 if progress(done, total) else 0
    return _ffi.kv_progress_fn(_guarded(handle, "progress", on_progress,
                                        lambda: 1))


# ---- the store ----


class Store(collections.abc.MutableMapping):
    """An open libkv store: a mapping of bytes keys to bytes values.

    Keys and values may be given as bytes, bytearray, memoryview or str
    (encoded as UTF-8); values come back as bytes.  A handle may be shared
    by any number of threads (ctypes releases the GIL during every C
    call); close() waits for calls running in other threads to finish.
    """

    def __init__(self, path, flag="c", mode=0o666, **options):
        if not isinstance(flag, str) or flag not in _FLAGS:
            raise ValueError("flag must be one of 'r', 'w', 'c' or 'n', "
                             "not %r" % (flag,))
        if not isinstance(mode, int) or isinstance(mode, bool):
            raise TypeError("mode must be an int, not %s"
                            % type(mode).__name__)
        path = os.fspath(path)
        bpath = os.fsencode(path)
        if b"\0" in bpath:
            raise ValueError("embedded null byte in path")
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise TypeError("open() got an unexpected keyword argument %r"
                            % unknown[0])

        opts = _ffi.kv_options()
        _ffi.kv_options_init(byref(opts))
        opts.flags = _FLAGS[flag]
        opts.file_mode = mode & 0o777
        sync_mode = options.get("sync_mode")
        if sync_mode is not None:
            if sync_mode not in SYNC_MODES:
                raise ValueError("sync_mode must be one of %s, not %r"
                                 % (", ".join(map(repr, SYNC_MODES)),
                                    sync_mode))
            opts.sync_mode = SYNC_MODES[sync_mode]
        for name, bits in _UINT_OPTIONS.items():
            if options.get(name) is not None:
                setattr(opts, name, _uint(name, options[name], bits))
        for name, (bit, sets) in _BOOL_OPTIONS.items():
            if options.get(name) is not None and bool(options[name]) == sets:
                opts.flags |= bit

        handle = _Handle()
        handle.keep = _wrap_callbacks(handle, opts, options)
        ptr = _ffi.kv_t_p()
        # A callback (log, clock) that raised during a successful open
        # must not leave the store open and locked.
        rc = handle.run(_ffi.kv_open, bpath, byref(opts), byref(ptr),
                        cleanup=lambda rc: _ffi.kv_close(ptr) if ptr else 0)
        if rc != 0:
            raise _error(rc, "kv_open(%r)" % (path,))
        handle.ptr = ptr
        self._h = handle
        self._finalizer = weakref.finalize(self, _finalize, handle)
        self.path = path
        self.flag = flag
        self.readonly = flag == "r"
        self.ordered = not opts.flags & _ffi.KV_UNORDERED
        if flag == "n":
            try:
                self.clear()
            except BaseException:
                self.close()
                raise

    # -- lifetime --

    def close(self):
        """Flushes, syncs (except in sync_mode 'none') and closes the store.
        Idempotent.  Waits for calls running in other threads."""
        h = getattr(self, "_h", None)
        if h is None:
            return
        rc = h.close()   # may refuse (KV_EBUSY): the finalizer stays
        self._finalizer.detach()
        if rc != 0:
            raise _error(rc, "kv_close")

    @property
    def closed(self):
        return self._h.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<libkv.Store %r flag=%r%s>" % (
            self.path, self.flag, " closed" if self.closed else "")

    def _check(self, rc, what):
        if rc != 0:
            raise _error(rc, what)

    # -- mapping --

    def __getitem__(self, key):
        k = _key(key)
        v = self._get(k)
        if v is None:
            raise KeyError(key)
        return v

    def _get(self, k):
        if not _findable(k):
            self._h.check_open()  # still fails on a closed store
            return None
        val, vlen = c_void_p(), c_size_t()
        rc = self._h.call(_ffi.kv_get, k, len(k), byref(val), byref(vlen),
                          cleanup=lambda rc: _ffi.kv_free(val))
        if rc == KV_ENOTFOUND:
            return None
        self._check(rc, "kv_get")
        try:
            return _string_at(val.value, vlen.value)
        finally:
            _ffi.kv_free(val)

    def get(self, key, default=None):
        v = self._get(_key(key))
        return default if v is None else v

    def setdefault(self, key, default=b""):
        v = self._get(_key(key))
        if v is None:
            self[key] = default
            return _value(default)
        return v

    def __setitem__(self, key, value):
        self.put(key, value)

    def put(self, key, value, ttl=None):
        """Stores value under key; with ttl (ms, or a timedelta) the key
        expires that long from now."""
        k, v = _key(key), _value(value)
        if ttl is None:
            rc = self._h.call(_ffi.kv_put, k, len(k), v, len(v))
            self._check(rc, "kv_put")
        else:
            ms = _ttl_ms(ttl)
            rc = self._h.call(_ffi.kv_put_ttl, k, len(k), v, len(v), ms)
            self._check(rc, "kv_put_ttl")

    def __delitem__(self, key):
        k = _key(key)
        if not _findable(k):
            self._h.check_open()
            raise KeyError(key)
        rc = self._h.call(_ffi.kv_delete, k, len(k))
        if rc == KV_ENOTFOUND:
            raise KeyError(key)
        self._check(rc, "kv_delete")

    def __contains__(self, key):
        k = _key(key)
        if not _findable(k):
            self._h.check_open()
            return False
        rc = self._h.call(_ffi.kv_exists, k, len(k))
        if rc == KV_ENOTFOUND:
            return False
        self._check(rc, "kv_exists")
        return True

    def __len__(self):
        return self._stats().live_keys

    def __iter__(self):
        if self.ordered:
            return (k for k, _ in self._scan(None, None, None, None,
                                             PAGE_SIZE, True))
        return iter([k for k, _ in self._foreach(True)])

    def keys(self):
        """A view of the keys, iterated in key order (in no order when the
        store was opened with ordered=False)."""
        return collections.abc.KeysView(self)

    def items(self):
        """A view of (key, value) pairs, in the order of keys()."""
        return _ItemsView(self)

    def values(self):
        """A view of the values, in the order of keys()."""
        return _ValuesView(self)

    def clear(self):
        """Deletes every key, in one atomic batch."""
        keys = [k for k, _ in self._foreach(True)]
        if not keys:
            self._h.check_open()
            return
        with self.batch() as b:
            for k in keys:
                b.delete(k)

    # -- expiry --

    def expiry(self, key):
        """The key's expiry as Unix time in ms, or None if it never
        expires.  KeyError if the key has no live value."""
        if _ffi.kv_expiry is None:
            raise error("kv_expiry: the loaded libkv (%s) lacks it"
                        % _ffi.LOADED_FROM, KV_ENOTSUP)
        k = _key(key)
        if not _findable(k):
            self._h.check_open()
            raise KeyError(key)
        out = c_uint64()
        rc = self._h.call(_ffi.kv_expiry, k, len(k), byref(out))
        if rc == KV_ENOTFOUND:
            raise KeyError(key)
        self._check(rc, "kv_expiry")
        return out.value or None

    # -- batches --

    def batch(self):
        """A new empty Batch for this store; see Batch."""
        self._h.check_open()
        return Batch(self)

    # -- iteration --

    def scan(self, start=None, end=None, prefix=None, limit=None, *,
             page_size=PAGE_SIZE):
        """Lazily yields (key, value) pairs in key order with
        start <= key < end, keys beginning with prefix, at most limit
        pairs.  Fetches page_size pairs per C call; a key live for the
        whole scan is seen exactly once.  Fails with KV_ENOTSUP on a store
        opened with ordered=False."""
        s = None if start is None else _key(start)
        e = None if end is None else _key(end)
        p = None if prefix is None else _key(prefix)
        if limit is not None:
            if not isinstance(limit, int) or isinstance(limit, bool):
                raise TypeError("limit must be an int or None")
            if limit < 0:
                raise ValueError("limit must be >= 0")
        if (not isinstance(page_size, int) or isinstance(page_size, bool)
                or page_size < 1):
            raise ValueError("page_size must be a positive int")
        if not self.ordered:
            raise error("scan on a store opened with ordered=False",
                        KV_ENOTSUP)
        if self.closed:
            raise _closed_error()
        return self._scan(s, e, p, limit, page_size, False)

    def _scan(self, start, end, prefix, limit, page_size, keys_only):
        page = []
        h = self._h

        def collect(ctx, key, klen, val, vlen):
            page.append((_string_at(key, klen), None if keys_only else
                         _string_at(val, vlen)))
            return 0

        fn = _ffi.kv_pair_fn(_guarded(h, "scan", collect, lambda: 1))
        remaining = limit
        e_len = 0 if end is None else len(end)
        p_len = 0 if prefix is None else len(prefix)
        while remaining is None or remaining > 0:
            want = page_size if remaining is None else min(page_size,
                                                           remaining)
            del page[:]
            rc = h.call(_ffi.kv_scan, start, 0 if start is None else
                        len(start), end, e_len, prefix, p_len, want, fn,
                        None)
            self._check(rc, "kv_scan")
            got = list(page)
            del page[:]
            yield from got
            if len(got) < want:
                return
            if remaining is not None:
                remaining -= len(got)
            # The least key after the last one seen.
            start = got[-1][0] + b"\0"

    def _foreach(self, keys_only):
        """Every live pair, in no order, as a list (kv_foreach cannot be
        paused, so this is eager)."""
        out = []
        h = self._h

        def collect(ctx, key, klen, val, vlen):
            out.append((_string_at(key, klen), None if keys_only else
                        _string_at(val, vlen)))
            return 0

        fn = _ffi.kv_pair_fn(_guarded(h, "foreach", collect, lambda: 1))
        rc = h.call(_ffi.kv_foreach, fn, None)
        self._check(rc, "kv_foreach")
        return out

    def _pairs(self):
        if self.ordered:
            return self._scan(None, None, None, None, PAGE_SIZE, False)
        return iter(self._foreach(False))

    # -- durability and figures --

    def sync(self):
        """Makes every write so far durable (kv_sync)."""
        self._check(self._h.call(_ffi.kv_sync), "kv_sync")

    def refresh(self):
        """Brings a read-only store (flag 'r') up to date with what its
        writer, another process or store object, wrote since the open or
        the last refresh (kv_refresh): appends cost about the new bytes,
        a compaction in the writer a full reload.  Raises error with code
        KV_EINVAL on a writable store (always current), KV_EBUSY when
        compactions kept changing the files (call again)."""
        if _ffi.kv_refresh is None:
            raise error("kv_refresh: the loaded libkv (%s) lacks it"
                        % _ffi.LOADED_FROM, KV_ENOTSUP)
        self._check(self._h.call(_ffi.kv_refresh), "kv_refresh")

    def _stats(self):
        st = _ffi.kv_stats()
        st.size = sizeof(st)
        self._check(self._h.call(_ffi.kv_stats_fn, byref(st)), "kv_stats")
        return st

    def stats(self):
        """Figures for the store (the fields of struct kv_stats, with
        sync_mode as its name) and, under "segment_stats", a list of one
        dict per segment file, oldest first."""
        st = self._stats()
        out = {name: getattr(st, name) for name, _ in st._fields_
               if name not in ("size", "reserved")}
        out["sync_mode"] = _SYNC_NAMES.get(st.sync_mode, st.sync_mode)
        out["segment_stats"] = self.segment_stats()
        return out

    def segment_stats(self):
        """One dict per segment file (kv_stats_segments), oldest first."""
        while True:
            n = c_size_t()
            self._check(self._h.call(_ffi.kv_stats_segments, None, 0,
                                     byref(n)), "kv_stats_segments")
            cap = n.value + 4  # room for segments added meanwhile
            arr = (_ffi.kv_segment_stats * cap)()
            self._check(self._h.call(_ffi.kv_stats_segments, arr, cap,
                                     byref(n)), "kv_stats_segments")
            if n.value <= cap:
                break
        return [{
            "seq": s.seq, "bytes": s.bytes, "live_bytes": s.live_bytes,
            "dead_bytes": s.dead_bytes, "active": bool(s.active),
            "flags": s.flags,
            "compacted": bool(s.flags & _ffi.KV_SEGMENT_COMPACTED),
            "hint": bool(s.flags & _ffi.KV_SEGMENT_HINT),
        } for s in arr[:n.value]]

    def compact(self):
        """Compacts now (kv_compact); returns the kv_compact_stats figures
        as a dict."""
        if self._h.in_callback():
            raise error("compact() called from inside a libkv callback",
                        KV_EBUSY)
        cs = _ffi.kv_compact_stats()
        rc = self._h.call(_ffi.kv_compact, byref(cs))
        self._check(rc, "kv_compact")
        return _struct_dict(cs)

    def verify(self, progress=None):
        """Reads and checks every record of every segment (kv_verify).
        Returns the kv_verify_stats figures as a dict; raises error with
        code KV_ECORRUPT (and the figures in .stats) if anything is
        damaged.  progress(done, total), if given, sees the bytes read so
        far and in all; a true result stops with KV_ECANCELED, and an
        exception it raises stops the check and is raised here."""
        if _ffi.kv_verify is None:
            raise error("kv_verify: the loaded libkv (%s) lacks it"
                        % _ffi.LOADED_FROM, KV_ENOTSUP)
        vs = _ffi.kv_verify_stats()
        h = self._h
        if progress is None:
            fn = _ffi.kv_progress_fn()
        else:
            if not callable(progress):
                raise TypeError("progress must be callable")
            fn = _progress_fn(h, progress)
        rc = h.call(_ffi.kv_verify, fn, None, byref(vs))
        if rc != 0:
            err = _error(rc, "kv_verify")
            if rc == KV_ECORRUPT:
                err.stats = _struct_dict(vs)
            raise err
        return _struct_dict(vs)

    # -- digests (kv_digest(3)) --

    def _digest_fn(self, fn, what):
        if fn is None:
            raise error("%s: the loaded libkv (%s) lacks it"
                        % (what, _ffi.LOADED_FROM), KV_ENOTSUP)
        # The digest holds the store's write lock; a callback may run with
        # it held (log), so refuse rather than risk waiting on ourselves.
        if self._h.in_callback():
            raise error("%s called from inside a libkv callback" % what,
                        KV_EBUSY)

    def digest(self):
        """Digest of every live pair, of one moment of the store
        (kv_digest): a Digest whose .value is the 128-bit sum of
        XXH3_128(le32(len(key)) + key + value) over the pairs.  Two stores
        with the same live pairs have equal digests."""
        self._digest_fn(_ffi.kv_digest_fn, "kv_digest")
        d = _ffi.kv_digest()
        self._check(self._h.call(_ffi.kv_digest_fn, byref(d)), "kv_digest")
        return _digest(d)

    def digest_buckets(self, nbuckets, first=0, last=_HASH_MAX):
        """The key-hash range [first, last] (key hash: XXH3_64 of the key)
        cut into nbuckets parts, as a list of one Digest per part with its
        bounds (kv_digest_buckets).  Compare with another store's list and
        split a differing bucket again, or list it with digest_items()."""
        self._digest_fn(_ffi.kv_digest_buckets, "kv_digest_buckets")
        n = _int_arg("nbuckets", nbuckets, 1, _ffi.KV_DIGEST_MAX_BUCKETS)
        first = _int_arg("first", first, 0, _HASH_MAX)
        last = _int_arg("last", last, 0, _HASH_MAX)
        arr = (_ffi.kv_digest * n)()
        rc = self._h.call(_ffi.kv_digest_buckets, first, last, n, arr)
        self._check(rc, "kv_digest_buckets")
        return [_digest(d) for d in arr]

    def digest_items(self, first=0, last=_HASH_MAX):
        """The live (key, value) pairs whose key hash is in [first, last],
        in no order, as a list (kv_digest_foreach)."""
        if _ffi.kv_digest_foreach is None:
            raise error("kv_digest_foreach: the loaded libkv (%s) lacks it"
                        % _ffi.LOADED_FROM, KV_ENOTSUP)
        first = _int_arg("first", first, 0, _HASH_MAX)
        last = _int_arg("last", last, 0, _HASH_MAX)
        out = []
        h = self._h

        def collect(ctx, key, klen, val, vlen):
            out.append((_string_at(key, klen), _string_at(val, vlen)))
            return 0

        fn = _ffi.kv_pair_fn(_guarded(h, "digest_items", collect,
                                      lambda: 1))
        rc = h.call(_ffi.kv_digest_foreach, first, last, fn, None)
        self._check(rc, "kv_digest_foreach")
        return out


#: One digest: value (the 128-bit sum), keys, bytes, and the key-hash
#: range [first, last] it covers.  Equal tuples mean equal live pairs.
Digest = collections.namedtuple("Digest", "value keys bytes first last")


def _digest(d):
    return Digest((d.hi << 64) | d.lo, d.keys, d.bytes, d.first, d.last)


def _struct_dict(s):
    return {name: getattr(s, name) for name, _ in s._fields_
            if name != "reserved"}


class _ItemsView(collections.abc.ItemsView):
    def __iter__(self):
        return self._mapping._pairs()


class _ValuesView(collections.abc.ValuesView):
    def __iter__(self):
        return (v for _, v in self._mapping._pairs())


# ---- batches ----


class Batch:
    """Puts and deletes applied to the store all together or not at all.

    As a context manager, the batch is written with kv_write() when the
    block ends normally and discarded when it raises::

        with db.batch() as b:
            b[b"new"] = value
            del b[b"old"]          # no KeyError: a delete of a missing
            b.put(b"tmp", v, ttl=1000)   # key is a harmless tombstone

    Outside a with block, call commit() (which writes, then empties the
    batch for reuse) and close().  A batch has a lock of its own, so it may
    be shared between threads.
    """

    def __init__(self, store):
        self._store = store
        ptr = _ffi.kv_batch_p()
        rc = _ffi.kv_batch_new(byref(ptr))
        if rc != 0:
            raise _error(rc, "kv_batch_new")
        self._ptr = ptr
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _ffi.kv_batch_free, ptr)

    def _p(self):
        if self._ptr is None:
            raise error("libkv batch is closed", KV_EINVAL)
        return self._ptr

    def put(self, key, value, ttl=None):
        k, v = _key(key), _value(value)
        with self._lock:
            if ttl is None:
                rc = _ffi.kv_batch_put(self._p(), k, len(k), v, len(v))
            else:
                rc = _ffi.kv_batch_put_ttl(self._p(), k, len(k), v, len(v),
                                           _ttl_ms(ttl))
            if rc != 0:
                raise _error(rc, "kv_batch_put")

    __setitem__ = put

    def delete(self, key):
        k = _key(key)
        with self._lock:
            rc = _ffi.kv_batch_delete(self._p(), k, len(k))
            if rc != 0:
                raise _error(rc, "kv_batch_delete")

    __delitem__ = delete

    def __len__(self):
        with self._lock:
            return _ffi.kv_batch_count(self._p())

    def clear(self):
        with self._lock:
            _ffi.kv_batch_clear(self._p())

    def commit(self):
        """Applies every operation atomically (kv_write), then empties
        the batch."""
        with self._lock:
            ptr = self._p()
            rc = self._store._h.call(_ffi.kv_write, ptr)
            if rc != 0:
                raise _error(rc, "kv_write")
            _ffi.kv_batch_clear(ptr)

    def close(self):
        """Frees the batch, discarding what was not committed."""
        with self._lock:
            if self._ptr is not None:
                self._finalizer()
                self._ptr = None

    discard = close

    def __enter__(self):
        self._p()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.commit()
        finally:
            self.close()


def open(file, flag="c", mode=0o666, **options):
    """Opens the libkv store in directory file and returns a Store.

    flag: 'r' read-only (KV_RDONLY: takes no lock, sees the data as of the
    open), 'w' read-write, the store must exist, 'c' read-write, created if
    missing, 'n' read-write, created if missing and emptied if not (every
    key deleted in one atomic batch, holding the write lock; files are not
    removed, compaction reclaims them).  mode & 0o777 is the mode of new
    files (less the umask).  See the package documentation for options.
    """
    return Store(file, flag, mode, **options)
