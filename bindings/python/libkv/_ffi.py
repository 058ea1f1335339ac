"""ctypes declarations for libkv (include/kv.h).

Every function used by the binding is declared here with its argtypes and
restype, and every public struct is mirrored field by field, in the order
of kv.h.  Nothing here is public API; use the ``libkv`` package.

The shared library is found, in this order:

1. the path in the environment variable ``LIBKV_LIBRARY``, if it is set
   (and then nothing else is tried: an explicit choice should not be
   replaced silently by another copy of the library);
2. the in-tree build, ``<repo>/build/libkv.so``, relative to this file;
3. the system loader: ``ctypes.util.find_library('kv')``, then
   ``libkv.so.0``.
"""

import ctypes
import ctypes.util
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_int,
                    c_size_t, c_uint, c_uint32, c_uint64, c_void_p)
from pathlib import Path

# ---- constants (kv.h) ----

KV_OK = 0
KV_ENOTFOUND = -1
KV_EINVAL = -2
KV_ENOMEM = -3
KV_EIO = -4
KV_ECORRUPT = -5
KV_ELOCKED = -6
KV_EREADONLY = -7
KV_ETOOBIG = -8
KV_EEXIST = -9
KV_ENOENT = -10
KV_EVERSION = -11
KV_ERANGE = -12
KV_EBUSY = -13
KV_ENOTSUP = -14
KV_ECANCELED = -15
KV_EGAP = -16
KV_ESNAPSHOT = -17
KV_EHOOK = -18

ERROR_NAMES = {
    KV_OK: "KV_OK", KV_ENOTFOUND: "KV_ENOTFOUND", KV_EINVAL: "KV_EINVAL",
    KV_ENOMEM: "KV_ENOMEM", KV_EIO: "KV_EIO", KV_ECORRUPT: "KV_ECORRUPT",
    KV_ELOCKED: "KV_ELOCKED", KV_EREADONLY: "KV_EREADONLY",
    KV_ETOOBIG: "KV_ETOOBIG", KV_EEXIST: "KV_EEXIST",
    KV_ENOENT: "KV_ENOENT", KV_EVERSION: "KV_EVERSION",
    KV_ERANGE: "KV_ERANGE", KV_EBUSY: "KV_EBUSY",
    KV_ENOTSUP: "KV_ENOTSUP", KV_ECANCELED: "KV_ECANCELED",
    KV_EGAP: "KV_EGAP", KV_ESNAPSHOT: "KV_ESNAPSHOT", KV_EHOOK: "KV_EHOOK",
}

KV_CREATE = 0x01
KV_RDONLY = 0x02
KV_EXCL = 0x04
KV_SALVAGE = 0x08
KV_COMPRESS = 0x10
KV_UNORDERED = 0x20
KV_NO_AUTO_COMPACT = 0x40
KV_REPLICA = 0x80

KV_SYNC_WRITE = 0
KV_SYNC_NONE = 1
KV_SYNC_EVERY = 2
KV_SYNC_INTERVAL = 3
KV_SYNC_ALWAYS = 4

KV_MAX_KEY = 65535
KV_MAX_VALUE = 4294967295

KV_LOG_ERROR = 0
KV_LOG_WARN = 1
KV_LOG_INFO = 2

KV_SEGMENT_COMPACTED = 0x1
KV_SEGMENT_HINT = 0x2

# ---- callback types ----

# typedef void (*kv_log_fn)(void *ctx, int level, const char *msg);
kv_log_fn = CFUNCTYPE(None, c_void_p, c_int, c_char_p)
# typedef int (*kv_progress_fn)(void *ctx, uint64_t done, uint64_t total);
kv_progress_fn = CFUNCTYPE(c_int, c_void_p, c_uint64, c_uint64)
# typedef uint64_t (*kv_clock_fn)(void *ctx);
kv_clock_fn = CFUNCTYPE(c_uint64, c_void_p)
# typedef int (*kv_view_fn)(void *ctx, const void *val, size_t vlen);
kv_view_fn = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)
# typedef int (*kv_pair_fn)(void *ctx, const void *key, size_t klen,
#                           const void *val, size_t vlen);
kv_pair_fn = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t, c_void_p,
                       c_size_t)

# ---- structs ----


class kv_options(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("sync_mode", c_uint32),
        ("sync_every", c_uint32),
        ("max_file_size", c_uint64),
        ("max_value_size", c_uint64),
        ("compress_min", c_uint32),
        ("file_mode", c_uint32),
        ("log", kv_log_fn),
        ("log_ctx", c_void_p),
        ("clock", kv_clock_fn),
        ("clock_ctx", c_void_p),
        ("compact_dead_pct", c_uint32),
        ("compact_store_pct", c_uint32),
        ("compact_dead_bytes", c_uint64),
        ("compact_min_size", c_uint64),
        ("compact_max_bytes", c_uint64),
        ("progress", kv_progress_fn),
        ("progress_ctx", c_void_p),
        ("repl", c_void_p),  # const struct kv_repl_hooks *; unused here
        ("expected_keys", c_uint64),
    ]


class kv_stats(Structure):
    """struct kv_stats (a struct tag only in C)."""
    _fields_ = [
        ("size", c_uint32),
        ("sync_mode", c_uint32),
        ("live_keys", c_uint64),
        ("live_bytes", c_uint64),
        ("dead_bytes", c_uint64),
        ("segments", c_uint64),
        ("disk_bytes", c_uint64),
        ("keydir_bytes", c_uint64),
        ("last_lsn", c_uint64),
        ("recovered_truncated_bytes", c_uint64),
        ("recovered_skipped_bytes", c_uint64),
        ("recovered_skipped_records", c_uint64),
        ("compressed_values", c_uint64),
        ("compression_saved_bytes", c_uint64),
        ("recovered_hint_segments", c_uint64),
        ("recovered_hint_rejected", c_uint64),
        ("compactions", c_uint64),
        ("compaction_freed_bytes", c_uint64),
        ("recovered_keys_at_risk", c_uint64),
        ("repl_hook_calls", c_uint64),
        ("repl_hook_errors", c_uint64),
        ("reserved", c_uint64 * 1),
    ]


class kv_segment_stats(Structure):
    _fields_ = [
        ("seq", c_uint64),
        ("bytes", c_uint64),
        ("live_bytes", c_uint64),
        ("dead_bytes", c_uint64),
        ("active", c_uint32),
        ("flags", c_uint32),
    ]


class kv_compact_stats(Structure):
    _fields_ = [
        ("segments_in", c_uint64),
        ("segments_out", c_uint64),
        ("bytes_read", c_uint64),
        ("bytes_written", c_uint64),
        ("bytes_freed", c_uint64),
        ("reserved", c_uint64 * 3),
    ]


class kv_verify_stats(Structure):
    _fields_ = [
        ("segments", c_uint64),
        ("records", c_uint64),
        ("bytes", c_uint64),
        ("bad_ranges", c_uint64),
        ("bad_bytes", c_uint64),
        ("reserved", c_uint64 * 3),
    ]


class kv_digest(Structure):
    """struct kv_digest (a struct tag only in C)."""
    _fields_ = [
        ("lo", c_uint64),
        ("hi", c_uint64),
        ("keys", c_uint64),
        ("bytes", c_uint64),
        ("first", c_uint64),
        ("last", c_uint64),
    ]


KV_DIGEST_MAX_BUCKETS = 1048576


class kv_t(Structure):
    """Opaque store handle; only ever used through a pointer."""


class kv_batch(Structure):
    """Opaque batch; only ever used through a pointer."""


kv_t_p = POINTER(kv_t)
kv_batch_p = POINTER(kv_batch)

# ---- loading ----


def _candidates():
    """(description, argument for ctypes.CDLL) in the order to try."""
    env = os.environ.get("LIBKV_LIBRARY")
    if env:
        return [("LIBKV_LIBRARY=%s" % env, env)], True
    out = []
    # bindings/python/libkv/_ffi.py: the repository root is 3 levels up.
    # Only a tree that has include/kv.h counts, so that an installed copy
    # of the package never picks up some unrelated build/libkv.so.
    parents = Path(__file__).resolve().parents
    root = parents[3] if len(parents) > 3 else None
    if root is not None and (root / "include" / "kv.h").is_file():
        tree = root / "build" / "libkv.so"
        out.append(("in-tree build %s" % tree, str(tree)))
    found = ctypes.util.find_library("kv")
    if found:
        out.append(("find_library('kv') -> %s" % found, found))
    else:
        out.append(("find_library('kv') (found nothing)", None))
    out.append(("system loader 'libkv.so.0'", "libkv.so.0"))
    return out, False


def _load():
    tried = []
    candidates, explicit = _candidates()
    for what, arg in candidates:
        if arg is None:
            tried.append(what)
            continue
        if not explicit and arg.startswith("/") and not os.path.exists(arg):
            tried.append("%s: no such file" % what)
            continue
        try:
            return ctypes.CDLL(arg), what
        except OSError as e:
            tried.append("%s: %s" % (what, e))
    hint = ("unset LIBKV_LIBRARY or point it at a built libkv.so"
            if explicit else
            "build it with `make all`, install it, or set LIBKV_LIBRARY "
            "to the path of libkv.so")
    raise ImportError("libkv: cannot load the C library; tried:\n  "
                      + "\n  ".join(tried) + "\n(" + hint + ")")


lib, LOADED_FROM = _load()


def _declare(name, restype, argtypes, required=True):
    try:
        fn = getattr(lib, name)
    except AttributeError:
        if required:
            raise ImportError("libkv: %s (%s) lacks the symbol %s; it is "
                              "too old for this binding"
                              % (getattr(lib, "_name", "?"), LOADED_FROM,
                                 name)) from None
        return None
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


_p = c_void_p
_sz = c_size_t

kv_version = _declare("kv_version", c_char_p,
                      [POINTER(c_int), POINTER(c_int), POINTER(c_int)])
kv_strerror = _declare("kv_strerror", c_char_p, [c_int])
kv_errmsg = _declare("kv_errmsg", c_char_p, [])
kv_free = _declare("kv_free", None, [c_void_p])

kv_options_init = _declare("kv_options_init", None, [POINTER(kv_options)])
kv_open = _declare("kv_open", c_int,
                   [c_char_p, POINTER(kv_options), POINTER(kv_t_p)])
kv_close = _declare("kv_close", c_int, [kv_t_p])

kv_put = _declare("kv_put", c_int, [kv_t_p, _p, _sz, _p, _sz])
kv_put_ttl = _declare("kv_put_ttl", c_int,
                      [kv_t_p, _p, _sz, _p, _sz, c_uint64])
kv_get = _declare("kv_get", c_int,
                  [kv_t_p, _p, _sz, POINTER(c_void_p), POINTER(c_size_t)])
kv_exists = _declare("kv_exists", c_int, [kv_t_p, _p, _sz])
kv_delete = _declare("kv_delete", c_int, [kv_t_p, _p, _sz])
# Newer entry points: None when the loaded library predates them.
kv_expiry = _declare("kv_expiry", c_int,
                     [kv_t_p, _p, _sz, POINTER(c_uint64)], required=False)

kv_batch_new = _declare("kv_batch_new", c_int, [POINTER(kv_batch_p)])
kv_batch_put = _declare("kv_batch_put", c_int,
                        [kv_batch_p, _p, _sz, _p, _sz])
kv_batch_put_ttl = _declare("kv_batch_put_ttl", c_int,
                            [kv_batch_p, _p, _sz, _p, _sz, c_uint64])
kv_batch_delete = _declare("kv_batch_delete", c_int, [kv_batch_p, _p, _sz])
kv_batch_clear = _declare("kv_batch_clear", None, [kv_batch_p])
kv_batch_count = _declare("kv_batch_count", c_size_t, [kv_batch_p])
kv_batch_free = _declare("kv_batch_free", None, [kv_batch_p])
kv_write = _declare("kv_write", c_int, [kv_t_p, kv_batch_p])

kv_foreach = _declare("kv_foreach", c_int, [kv_t_p, kv_pair_fn, c_void_p])
kv_scan = _declare("kv_scan", c_int,
                   [kv_t_p, _p, _sz, _p, _sz, _p, _sz, _sz, kv_pair_fn,
                    c_void_p])

kv_sync = _declare("kv_sync", c_int, [kv_t_p])
kv_stats_fn = _declare("kv_stats", c_int, [kv_t_p, POINTER(kv_stats)])
kv_stats_segments = _declare("kv_stats_segments", c_int,
                             [kv_t_p, POINTER(kv_segment_stats), c_size_t,
                              POINTER(c_size_t)])
kv_compact = _declare("kv_compact", c_int,
                      [kv_t_p, POINTER(kv_compact_stats)])
kv_verify = _declare("kv_verify", c_int,
                     [kv_t_p, kv_progress_fn, c_void_p,
                      POINTER(kv_verify_stats)], required=False)

kv_refresh = _declare("kv_refresh", c_int, [kv_t_p], required=False)

kv_digest_fn = _declare("kv_digest", c_int, [kv_t_p, POINTER(kv_digest)],
                        required=False)
kv_digest_buckets = _declare("kv_digest_buckets", c_int,
                             [kv_t_p, c_uint64, c_uint64, c_uint,
                              POINTER(kv_digest)], required=False)
kv_digest_foreach = _declare("kv_digest_foreach", c_int,
                             [kv_t_p, c_uint64, c_uint64, kv_pair_fn,
                              c_void_p], required=False)


def version():
    major, minor, patch = c_int(), c_int(), c_int()
    text = kv_version(ctypes.byref(major), ctypes.byref(minor),
                      ctypes.byref(patch))
    return text.decode("ascii"), (major.value, minor.value, patch.value)


VERSION, VERSION_INFO = version()
if VERSION_INFO[0] != 0:
    raise ImportError("libkv: %s is version %s; this binding speaks the "
                      "0.x ABI (libkv.so.0)" % (LOADED_FROM, VERSION))
