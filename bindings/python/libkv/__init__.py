"""libkv: Python binding of libkv, an embeddable log-structured key-value
store (Bitcask family), through ctypes.

The interface follows the dbm modules, so shelve can use it::

    import libkv, shelve

    with libkv.open("/tmp/app.kv", "c") as db:     # a directory
        db[b"user:1"] = b"ann"
        db.put("session", "x", ttl=60_000)        # expires in 60 s
        with db.batch() as b:                     # atomic
            b["a"] = "1"
            del b["user:1"]
        for key, value in db.scan(prefix=b"user:"):
            ...

    with shelve.Shelf(libkv.open("/tmp/objs.kv")) as sh:
        sh["config"] = {"retries": 3}

open(path, flag='c', mode=0o666, **options) returns a Store.

flag    'r' read-only, 'w' read-write (the store must exist), 'c' create if
        missing, 'n' create if missing, and empty an existing store: every
        key is deleted in one atomic batch while the write lock is held
        (libkv never deletes files under a store; compaction reclaims the
        space).
mode    mode of the new files, & 0o777, less the umask.

Options (keyword only; an unknown keyword raises TypeError; None means
the library default):

    sync_mode          'write' (default), 'none', 'every', 'interval',
                       'always'; see kv(3)
    sync_every         writes per sync ('every') or ms ('interval')
    max_file_size      segment size at which a new segment starts
    max_value_size     largest value accepted
    compress           compress values >= compress_min bytes (zlib format)
    compress_min
    ordered            False: no ordered index (KV_UNORDERED); scan() then
                       fails, and iteration runs over kv_foreach, unordered
    auto_compact       False: no background compaction (KV_NO_AUTO_COMPACT)
    salvage            open past corrupt records (KV_SALVAGE)
    compact_dead_pct, compact_store_pct, compact_dead_bytes,
    compact_min_size, compact_max_bytes
                       background compaction thresholds; see kv_compact(3)
    expected_keys      keys to size the index for at open (no growth up to
                       that many); see kv_open(3)
    log                log(level, message): recovery and background messages
    clock              clock() -> int: ms since the epoch, the TTL clock
    progress           progress(done, total) -> true to stop a compaction

Errors: a missing key raises KeyError; every other failure raises
libkv.error (an OSError) with .code (KV_E* number), .name ("KV_ENOENT"),
.strerror and .detail (kv_errmsg).  Using a closed store raises libkv.error
with code KV_EINVAL.

Threads: a Store may be shared by any number of threads; the C library
does its own locking and ctypes releases the GIL during every C call, so
reads run in parallel.  close() waits for calls running in other threads.
Callbacks (log, clock, progress) may be called from the library's own
background threads; an exception raised there has no caller and goes to
sys.unraisablehook, while one raised in the calling thread stops the call
and is raised again when it returns.
"""

from . import _ffi
from ._ffi import (KV_EBUSY, KV_ECANCELED, KV_ECORRUPT, KV_EEXIST,
                   KV_EGAP, KV_EHOOK, KV_EINVAL, KV_EIO, KV_ELOCKED,
                   KV_ENOENT, KV_ENOMEM, KV_ENOTFOUND, KV_ENOTSUP, KV_ERANGE,
                   KV_EREADONLY, KV_ESNAPSHOT, KV_ETOOBIG, KV_EVERSION,
                   KV_MAX_KEY, KV_MAX_VALUE, KV_OK)
from ._store import (OPTIONS, PAGE_SIZE, SYNC_MODES, Batch, Store, error,
                     open)

__version__ = "0.1.0"

#: Version of the loaded C library, as text and as (major, minor, patch).
library_version = _ffi.VERSION
library_version_info = _ffi.VERSION_INFO
#: Where the C library was loaded from.
library_path = _ffi.LOADED_FROM

__all__ = [
    "open", "Store", "Batch", "error", "OPTIONS", "PAGE_SIZE", "SYNC_MODES",
    "library_version", "library_version_info", "library_path",
    "KV_OK", "KV_ENOTFOUND", "KV_EINVAL", "KV_ENOMEM", "KV_EIO",
    "KV_ECORRUPT", "KV_ELOCKED", "KV_EREADONLY", "KV_ETOOBIG", "KV_EEXIST",
    "KV_ENOENT", "KV_EVERSION", "KV_ERANGE", "KV_EBUSY", "KV_ENOTSUP",
    "KV_ECANCELED", "KV_EGAP", "KV_ESNAPSHOT", "KV_EHOOK", "KV_MAX_KEY",
    "KV_MAX_VALUE",
]
