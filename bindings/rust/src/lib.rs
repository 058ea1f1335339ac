//! Safe Rust binding of libkv, an embeddable log-structured (Bitcask-style)
//! key-value store written in C11.
//!
//! A store is a directory. [`Db::open`] opens (or, with
//! [`Options::create`], creates) one; keys are 1 to [`MAX_KEY`] bytes and
//! values 0 bytes or more, both arbitrary bytes (anything that is
//! `AsRef<[u8]>`).
//!
//! ```no_run
//! use libkv::{Db, Options, SyncMode, Batch};
//! use std::time::Duration;
//!
//! # fn main() -> libkv::Result<()> {
//! let db = Db::open("/tmp/example.kv", &Options::new().create(true).sync(SyncMode::Always))?;
//! db.put(b"user:42", b"alice")?;
//! assert_eq!(db.get(b"user:42")?.as_deref(), Some(&b"alice"[..]));
//! db.put_ttl("session:9", "token", Duration::from_secs(60))?;
//!
//! let mut batch = Batch::new();
//! batch.put("a", "1")?;
//! batch.delete("b")?;
//! db.write(&batch)?;                       // all or nothing
//!
//! for pair in db.scan_prefix("user:") {    // key order, paged
//!     let (key, value) = pair?;
//!     println!("{:?} = {:?}", key, value);
//! }
//! db.close()?;                             // or just drop it
//! # Ok(()) }
//! ```
//!
//! # Threads
//!
//! [`Db`] is `Send + Sync`: kv(3) says "A `kv_t` may be shared by any number
//! of threads", with reads in parallel and writers serialised only for the
//! append. Share it with `Arc<Db>`. The one call that must not race with any
//! other, `kv_close`, is only made by [`Db::close`] or `Drop`, which own the
//! handle, so no other call (nor any iterator, which borrows the `Db`) can
//! be running then. [`Batch`] is `Send` but not `Sync`: kv_batch_new(3) says
//! calls on one batch must not overlap.
//!
//! # Callbacks and panics
//!
//! Closures given to [`Db::for_each`], [`Db::try_for_each`],
//! [`Db::get_with`] and [`Scan::visit`] run inside a C call. A panic in one
//! never unwinds through C: it is caught with `catch_unwind`, the C call is
//! told to stop, and once it has returned the panic is resumed with
//! `resume_unwind`, so the caller sees an ordinary panic from the method.
//! Closures may call back into the same `Db` (the library runs callbacks
//! without internal locks held).
//!
//! # Errors
//!
//! Every failure is an [`Error`]: the library's negative code, its
//! [`ErrorKind`], and the detail from `kv_errmsg()` (file, offset, errno).
//! "Not found" is not an error: [`Db::get`] returns `Ok(None)`,
//! [`Db::delete`] `Ok(false)`, [`Db::exists`] `Ok(false)`.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod ffi;

use std::any::Any;
use std::collections::VecDeque;
use std::ffi::{c_int, c_void, CStr, CString};
use std::fmt;
use std::iter::FusedIterator;
use std::ops::{Bound, ControlFlow, RangeBounds};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest key, in bytes (`KV_MAX_KEY`).
pub const MAX_KEY: usize = ffi::KV_MAX_KEY as usize;
/// The ceiling for [`Options::max_value_size`] (`KV_MAX_VALUE`).
pub const MAX_VALUE: u64 = ffi::KV_MAX_VALUE as u64;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// What went wrong, one variant per `KV_E*` code (see kv(3), ERRORS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `KV_ENOTFOUND` (-1): no live value under the key. The safe API maps
    /// it to `Ok(None)`/`Ok(false)`, so it is rarely seen.
    NotFound,
    /// `KV_EINVAL` (-2): bad argument; nothing was changed.
    InvalidArgument,
    /// `KV_ENOMEM` (-3): out of memory.
    OutOfMemory,
    /// `KV_EIO` (-4): I/O error, or a write to a store poisoned by a failed
    /// sync; the message names the file and errno.
    Io,
    /// `KV_ECORRUPT` (-5): a file failed a checksum or bound check.
    Corrupt,
    /// `KV_ELOCKED` (-6): another handle has the store open for writing.
    Locked,
    /// `KV_EREADONLY` (-7): write to a read-only handle.
    ReadOnly,
    /// `KV_ETOOBIG` (-8): key or value over its limit.
    TooBig,
    /// `KV_EEXIST` (-9): exclusive create and a store already exists.
    Exists,
    /// `KV_ENOENT` (-10): no store there and create was not asked for.
    NoStore,
    /// `KV_EVERSION` (-11): a file written by an unknown format version.
    Version,
    /// `KV_ERANGE` (-12): buffer too small.
    Range,
    /// `KV_EBUSY` (-13): call not allowed here (reserved).
    Busy,
    /// `KV_ENOTSUP` (-14): not available with this store's options, e.g. a
    /// scan of a store opened with `ordered(false)`.
    NotSupported,
    /// `KV_ECANCELED` (-15): a progress callback stopped the operation.
    Canceled,
    /// `KV_EGAP` (-16): a replica was given records that do not follow its
    /// position; the message names the position expected.
    Gap,
    /// `KV_ESNAPSHOT` (-17): the records a replica needs are gone from the
    /// log; it must be rebuilt from a snapshot.
    SnapshotNeeded,
    /// `KV_EHOOK` (-18): the replication hook failed (strict hooks); the
    /// write is committed in the store.
    Hook,
    /// A code this binding does not know (a newer library).
    Other,
}

impl ErrorKind {
    /// The kind of a `KV_E*` code.
    pub fn from_code(code: i32) -> ErrorKind {
        match code {
            ffi::KV_ENOTFOUND => ErrorKind::NotFound,
            ffi::KV_EINVAL => ErrorKind::InvalidArgument,
            ffi::KV_ENOMEM => ErrorKind::OutOfMemory,
            ffi::KV_EIO => ErrorKind::Io,
            ffi::KV_ECORRUPT => ErrorKind::Corrupt,
            ffi::KV_ELOCKED => ErrorKind::Locked,
            ffi::KV_EREADONLY => ErrorKind::ReadOnly,
            ffi::KV_ETOOBIG => ErrorKind::TooBig,
            ffi::KV_EEXIST => ErrorKind::Exists,
            ffi::KV_ENOENT => ErrorKind::NoStore,
            ffi::KV_EVERSION => ErrorKind::Version,
            ffi::KV_ERANGE => ErrorKind::Range,
            ffi::KV_EBUSY => ErrorKind::Busy,
            ffi::KV_ENOTSUP => ErrorKind::NotSupported,
            ffi::KV_ECANCELED => ErrorKind::Canceled,
            ffi::KV_EGAP => ErrorKind::Gap,
            ffi::KV_ESNAPSHOT => ErrorKind::SnapshotNeeded,
            ffi::KV_EHOOK => ErrorKind::Hook,
            _ => ErrorKind::Other,
        }
    }
}

/// A libkv failure: the `KV_E*` code and the detail of `kv_errmsg()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The negative `KV_E*` code returned by the library.
    pub code: i32,
    /// The detail: `kv_errmsg()` right after the failing call (file, offset,
    /// errno where they apply), or the binding's own text for an argument
    /// it refused before calling C. Empty if the thread has had no detailed
    /// failure yet. A few failure paths of the library (mostly out of
    /// memory) record no detail, and then this is the detail of the
    /// thread's previous failure: trust [`Error::code`] first.
    pub message: String,
}

impl Error {
    /// The kind of [`Error::code`].
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::from_code(self.code)
    }

    /// `kv_strerror()` of the code: a short static name such as
    /// "key not found".
    pub fn description(&self) -> &'static str {
        strerror(self.code)
    }

    /// Builds the error for a failed call: must run on the thread that made
    /// the call, before any other libkv call, as `kv_errmsg()` is per thread
    /// and overwritten by the next failure.
    fn last(code: c_int) -> Error {
        // SAFETY: kv_errmsg() never returns NULL; the text is the calling
        // thread's and stays valid until its next libkv call. It is copied
        // at once.
        let detail = unsafe { CStr::from_ptr(ffi::kv_errmsg()) };
        let mut message = detail.to_string_lossy().into_owned();
        if message == "no error" {
            message.clear();
        }
        Error { code, message }
    }

    fn new(code: c_int, message: impl Into<String>) -> Error {
        Error { code, message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{} ({})", self.description(), self.code)
        } else {
            write!(f, "{}: {} ({})", self.description(), self.message, self.code)
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            ErrorKind::NotFound | ErrorKind::NoStore => K::NotFound,
            ErrorKind::InvalidArgument => K::InvalidInput,
            ErrorKind::OutOfMemory => K::OutOfMemory,
            ErrorKind::Corrupt => K::InvalidData,
            ErrorKind::Locked | ErrorKind::Busy => K::WouldBlock,
            ErrorKind::ReadOnly => K::PermissionDenied,
            ErrorKind::Exists => K::AlreadyExists,
            ErrorKind::NotSupported => K::Unsupported,
            _ => K::Other,
        };
        std::io::Error::new(kind, e)
    }
}

/// `kv_strerror()`: the static name of a `KV_E*` code.
pub fn strerror(code: i32) -> &'static str {
    // SAFETY: kv_strerror() returns a pointer to static, NUL-terminated,
    // ASCII text for every input (never NULL).
    let s = unsafe { CStr::from_ptr(ffi::kv_strerror(code)) };
    s.to_str().unwrap_or("unknown error")
}

/// The library's version, `(major, minor, patch)`, as `kv_version()`
/// reports it at run time.
pub fn version() -> (i32, i32, i32) {
    let (mut major, mut minor, mut patch) = (0, 0, 0);
    // SAFETY: the three pointers are valid for writes; the returned static
    // string is not needed.
    unsafe { ffi::kv_version(&mut major, &mut minor, &mut patch) };
    (major, minor, patch)
}

fn check(rc: c_int) -> Result<()> {
    if rc == ffi::KV_OK {
        Ok(())
    } else {
        Err(Error::last(rc))
    }
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// When written data reaches the kernel and the disk (kv(3), Durability).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SyncMode {
    /// `KV_SYNC_NONE`: buffered in the process (64 KiB); a process crash may
    /// lose the buffer.
    None,
    /// `KV_SYNC_WRITE`, the default: each write reaches the kernel before
    /// the call returns.
    #[default]
    Write,
    /// `KV_SYNC_EVERY`: as `Write`, plus an fdatasync every n writes
    /// (0: the library default, 1000).
    Every(u32),
    /// `KV_SYNC_INTERVAL`: as `Write`, plus an fdatasync every n
    /// milliseconds from a background thread (0: the default, 1000).
    Interval(u32),
    /// `KV_SYNC_ALWAYS`: durable before the call returns (group commit).
    Always,
}

impl SyncMode {
    fn raw(self) -> (u32, u32) {
        match self {
            SyncMode::None => (ffi::KV_SYNC_NONE, 0),
            SyncMode::Write => (ffi::KV_SYNC_WRITE, 0),
            SyncMode::Every(n) => (ffi::KV_SYNC_EVERY, n),
            SyncMode::Interval(ms) => (ffi::KV_SYNC_INTERVAL, ms),
            SyncMode::Always => (ffi::KV_SYNC_ALWAYS, 0),
        }
    }
}

/// How to open a store: a builder over `kv_options` (see kv_open(3)).
///
/// `Options::new()` (or `default()`) gives the library's defaults, which do
/// not create a missing store. Every numeric setting left at 0 means "the
/// library default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    flags: u32,
    sync: SyncMode,
    max_file_size: u64,
    max_value_size: u64,
    compress_min: u32,
    file_mode: u32,
    compact_dead_pct: u32,
    compact_store_pct: u32,
    compact_dead_bytes: u64,
    compact_min_size: u64,
    compact_max_bytes: u64,
    expected_keys: u64,
}

impl Options {
    /// The library defaults: open an existing store read-write.
    pub fn new() -> Options {
        Options::default()
    }

    fn flag(mut self, bit: u32, on: bool) -> Options {
        if on {
            self.flags |= bit;
        } else {
            self.flags &= !bit;
        }
        self
    }

    /// `KV_CREATE`: create the directory and store if missing.
    pub fn create(self, yes: bool) -> Options {
        self.flag(ffi::KV_CREATE, yes)
    }

    /// `KV_RDONLY`: open for reading only; takes no lock, sees the data as
    /// of the open, every write fails with [`ErrorKind::ReadOnly`].
    pub fn read_only(self, yes: bool) -> Options {
        self.flag(ffi::KV_RDONLY, yes)
    }

    /// `KV_EXCL`: with `create`, fail with [`ErrorKind::Exists`] if a store
    /// is already there.
    pub fn exclusive(self, yes: bool) -> Options {
        self.flag(ffi::KV_EXCL, yes)
    }

    /// `KV_SALVAGE`: open past corrupt records, skipping them.
    pub fn salvage(self, yes: bool) -> Options {
        self.flag(ffi::KV_SALVAGE, yes)
    }

    /// `KV_COMPRESS`: compress values of at least `min` bytes, in zlib's
    /// format, when that makes them shorter (`min` 0: the default, 512).
    pub fn compress(mut self, min: u32) -> Options {
        self.compress_min = min;
        self.flag(ffi::KV_COMPRESS, true)
    }

    /// Turns compression off again (the default).
    pub fn no_compress(mut self) -> Options {
        self.compress_min = 0;
        self.flag(ffi::KV_COMPRESS, false)
    }

    /// Keep the ordered index needed by scans (the default, `true`);
    /// `false` is `KV_UNORDERED`: about 5 bytes less per key, and scans fail
    /// with [`ErrorKind::NotSupported`].
    pub fn ordered(self, yes: bool) -> Options {
        self.flag(ffi::KV_UNORDERED, !yes)
    }

    /// Run the background compaction thread (the default, `true`); `false`
    /// is `KV_NO_AUTO_COMPACT`. [`Db::compact`] works either way.
    pub fn auto_compact(self, yes: bool) -> Options {
        self.flag(ffi::KV_NO_AUTO_COMPACT, !yes)
    }

    /// The sync mode; [`SyncMode::Write`] by default.
    pub fn sync(mut self, mode: SyncMode) -> Options {
        self.sync = mode;
        self
    }

    /// Segment rollover size in bytes (0: 64 MiB; under 1 TiB).
    pub fn max_file_size(mut self, bytes: u64) -> Options {
        self.max_file_size = bytes;
        self
    }

    /// The largest value accepted, in bytes (0: 64 MiB; at most
    /// [`MAX_VALUE`]).
    pub fn max_value_size(mut self, bytes: u64) -> Options {
        self.max_value_size = bytes;
        self
    }

    /// Mode of new files, less the umask (0: 0o644).
    pub fn file_mode(mut self, mode: u32) -> Options {
        self.file_mode = mode;
        self
    }

    /// Background compaction of a segment whose dead share reaches this
    /// percentage (0: 40; at most 100).
    pub fn compact_dead_pct(mut self, pct: u32) -> Options {
        self.compact_dead_pct = pct;
        self
    }

    /// Background compaction of every segment with dead bytes when the
    /// store's dead share reaches this percentage (0: 50; at most 100).
    pub fn compact_store_pct(mut self, pct: u32) -> Options {
        self.compact_store_pct = pct;
        self
    }

    /// Background compaction of a segment whose dead bytes reach this many
    /// (0: 64 MiB; `u64::MAX`: never).
    pub fn compact_dead_bytes(mut self, bytes: u64) -> Options {
        self.compact_dead_bytes = bytes;
        self
    }

    /// Sealed segments smaller than this are merged by any compaction
    /// (0: a quarter of `max_file_size`).
    pub fn compact_min_size(mut self, bytes: u64) -> Options {
        self.compact_min_size = bytes;
        self
    }

    /// The most input one compaction reads (0: 1 GiB; always at least one
    /// segment).
    pub fn compact_max_bytes(mut self, bytes: u64) -> Options {
        self.compact_max_bytes = bytes;
        self
    }

    /// Keys to size the index for at open, so that filling the store up to
    /// that many never grows it (0: grow as keys arrive; at most
    /// 3,435,973,836). Costs 11-21 bytes per expected key from the open on.
    pub fn expected_keys(mut self, keys: u64) -> Options {
        self.expected_keys = keys;
        self
    }

    /// The `kv_options` these settings describe.
    pub fn to_raw(&self) -> ffi::kv_options {
        // SAFETY: kv_options is plain data for which all-zero bytes are a
        // valid value (integers, nullable pointers, `Option<fn>` = None);
        // kv_options_init() then sets it exactly as C callers get it.
        let mut o: ffi::kv_options = unsafe { std::mem::zeroed() };
        unsafe { ffi::kv_options_init(&mut o) };
        let (sync_mode, sync_every) = self.sync.raw();
        o.flags = self.flags;
        o.sync_mode = sync_mode;
        o.sync_every = sync_every;
        o.max_file_size = self.max_file_size;
        o.max_value_size = self.max_value_size;
        o.compress_min = self.compress_min;
        o.file_mode = self.file_mode;
        o.compact_dead_pct = self.compact_dead_pct;
        o.compact_store_pct = self.compact_store_pct;
        o.compact_dead_bytes = self.compact_dead_bytes;
        o.compact_min_size = self.compact_min_size;
        o.compact_max_bytes = self.compact_max_bytes;
        o.expected_keys = self.expected_keys;
        o
    }
}

// ---------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------

/// Whole-store figures (`struct kv_stats`, see kv_stats(3)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The store's `KV_SYNC_*` mode (see [`ffi`]).
    pub sync_mode: u32,
    /// Keys with a live (unexpired) value.
    pub live_keys: u64,
    /// Record bytes of those values.
    pub live_bytes: u64,
    /// Record bytes overwritten, deleted, expired, and of tombstones.
    pub dead_bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Their total size.
    pub disk_bytes: u64,
    /// Heap held by the index, key bytes and ordered index included.
    pub keydir_bytes: u64,
    /// Sequence number of the newest record.
    pub last_lsn: u64,
    /// Torn tail cut at open.
    pub recovered_truncated_bytes: u64,
    /// Bytes skipped by salvage at open.
    pub recovered_skipped_bytes: u64,
    /// Records skipped by salvage at open.
    pub recovered_skipped_records: u64,
    /// Values written compressed.
    pub compressed_values: u64,
    /// Raw minus stored size, for those.
    pub compression_saved_bytes: u64,
    /// Segments loaded from hint files at open.
    pub recovered_hint_segments: u64,
    /// Hint files refused at open.
    pub recovered_hint_rejected: u64,
    /// Compactions completed since open.
    pub compactions: u64,
    /// Disk bytes they reclaimed.
    pub compaction_freed_bytes: u64,
    /// Salvage: keys whose newest surviving record is older than skipped damage.
    pub recovered_keys_at_risk: u64,
    /// Replication hook calls.
    pub repl_hook_calls: u64,
    /// Of which failed, or writes not handed over (store poisoned).
    pub repl_hook_errors: u64,
}

impl From<ffi::kv_stats> for Stats {
    fn from(s: ffi::kv_stats) -> Stats {
        Stats {
            sync_mode: s.sync_mode,
            live_keys: s.live_keys,
            live_bytes: s.live_bytes,
            dead_bytes: s.dead_bytes,
            segments: s.segments,
            disk_bytes: s.disk_bytes,
            keydir_bytes: s.keydir_bytes,
            last_lsn: s.last_lsn,
            recovered_truncated_bytes: s.recovered_truncated_bytes,
            recovered_skipped_bytes: s.recovered_skipped_bytes,
            recovered_skipped_records: s.recovered_skipped_records,
            compressed_values: s.compressed_values,
            compression_saved_bytes: s.compression_saved_bytes,
            recovered_hint_segments: s.recovered_hint_segments,
            recovered_hint_rejected: s.recovered_hint_rejected,
            compactions: s.compactions,
            compaction_freed_bytes: s.compaction_freed_bytes,
            recovered_keys_at_risk: s.recovered_keys_at_risk,
            repl_hook_calls: s.repl_hook_calls,
            repl_hook_errors: s.repl_hook_errors,
        }
    }
}

/// One segment file's figures (`kv_segment_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentStats {
    /// Sequence number in the file name.
    pub seq: u64,
    /// File size.
    pub bytes: u64,
    /// Record bytes of live values in the file.
    pub live_bytes: u64,
    /// Record bytes of dead records in the file.
    pub dead_bytes: u64,
    /// The segment being appended to.
    pub active: bool,
    /// `KV_SEGMENT_*` bits: see [`SegmentStats::compacted`] and
    /// [`SegmentStats::has_hint`].
    pub flags: u32,
}

impl SegmentStats {
    /// Written by compaction (`KV_SEGMENT_COMPACTED`).
    pub fn compacted(&self) -> bool {
        self.flags & ffi::KV_SEGMENT_COMPACTED != 0
    }

    /// Has a usable hint file (`KV_SEGMENT_HINT`).
    pub fn has_hint(&self) -> bool {
        self.flags & ffi::KV_SEGMENT_HINT != 0
    }
}

impl From<ffi::kv_segment_stats> for SegmentStats {
    fn from(s: ffi::kv_segment_stats) -> SegmentStats {
        SegmentStats {
            seq: s.seq,
            bytes: s.bytes,
            live_bytes: s.live_bytes,
            dead_bytes: s.dead_bytes,
            active: s.active != 0,
            flags: s.flags,
        }
    }
}

/// What one [`Db::compact`] did (`kv_compact_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactStats {
    /// Sealed segments rewritten and deleted.
    pub segments_in: u64,
    /// New segments written.
    pub segments_out: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes of segments and hint files written.
    pub bytes_written: u64,
    /// Disk bytes deleted minus written.
    pub bytes_freed: u64,
}

impl From<ffi::kv_compact_stats> for CompactStats {
    fn from(s: ffi::kv_compact_stats) -> CompactStats {
        CompactStats {
            segments_in: s.segments_in,
            segments_out: s.segments_out,
            bytes_read: s.bytes_read,
            bytes_written: s.bytes_written,
            bytes_freed: s.bytes_freed,
        }
    }
}

/// What [`Db::verify`] checked and found (`kv_verify_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyStats {
    /// Segment files read.
    pub segments: u64,
    /// Sound records.
    pub records: u64,
    /// Bytes read, file headers included.
    pub bytes: u64,
    /// Damaged places found.
    pub bad_ranges: u64,
    /// Bytes in them.
    pub bad_bytes: u64,
}

impl From<ffi::kv_verify_stats> for VerifyStats {
    fn from(s: ffi::kv_verify_stats) -> VerifyStats {
        VerifyStats {
            segments: s.segments,
            records: s.records,
            bytes: s.bytes,
            bad_ranges: s.bad_ranges,
            bad_bytes: s.bad_bytes,
        }
    }
}

/// A digest of a set of live pairs (kv_digest(3)): the sum modulo 2^128 of
/// XXH3-128 over `le32(key.len()) ++ key ++ value` for each pair. Two
/// stores holding the same live pairs have equal digests, whatever their
/// history, file layout or compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Digest {
    /// The 128-bit sum.
    pub value: u128,
    /// Live pairs summed.
    pub keys: u64,
    /// Their key and uncompressed value bytes.
    pub bytes: u64,
    /// First key hash (XXH3-64 of the key) of the range covered.
    pub first: u64,
    /// Last key hash of the range covered, inclusive.
    pub last: u64,
}

impl From<ffi::kv_digest> for Digest {
    fn from(d: ffi::kv_digest) -> Digest {
        Digest {
            value: (u128::from(d.hi) << 64) | u128::from(d.lo),
            keys: d.keys,
            bytes: d.bytes,
            first: d.first,
            last: d.last,
        }
    }
}

/// The most buckets one [`Db::digest_buckets`] call accepts.
pub const DIGEST_MAX_BUCKETS: u32 = ffi::KV_DIGEST_MAX_BUCKETS;

/// When a key's value expires ([`Db::expiry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expiry {
    /// The value was written without a time to live.
    Never,
    /// The value expires at this time (millisecond precision).
    At(SystemTime),
}

impl Expiry {
    /// The expiry as milliseconds since the Unix epoch, as the library keeps
    /// it; `None` for [`Expiry::Never`].
    pub fn unix_ms(&self) -> Option<u64> {
        match self {
            Expiry::Never => None,
            Expiry::At(t) => Some(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)),
        }
    }
}

// ---------------------------------------------------------------------------
// Callback plumbing: every closure runs behind catch_unwind
// ---------------------------------------------------------------------------

/// Returned to C to stop an iteration; positive, so never a `KV_E*` code.
const STOP: c_int = 1;

/// A byte slice from a pointer and a length given by the library, which may
/// pass NULL with length 0.
///
/// # Safety
/// `ptr` must be valid for reads of `len` bytes for `'a` when `len > 0`.
unsafe fn raw_bytes<'a>(ptr: *const c_void, len: usize) -> &'a [u8] {
    if len == 0 || ptr.is_null() {
        &[]
    } else {
        // SAFETY: as promised by the caller.
        unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }
    }
}

/// The state behind the `ctx` pointer of a pair callback.
struct PairCtx<'f> {
    f: &'f mut dyn FnMut(&[u8], &[u8]) -> bool,
    panic: Option<Box<dyn Any + Send + 'static>>,
    stopped: bool,
}

unsafe extern "C" fn pair_trampoline(
    ctx: *mut c_void,
    key: *const c_void,
    klen: usize,
    val: *const c_void,
    vlen: usize,
) -> c_int {
    // SAFETY: ctx is the `&mut PairCtx` that `call_pairs` passed to this
    // same C call, alive and not otherwise used until the call returns; the
    // library guarantees key/val for klen/vlen bytes during the callback.
    let ctx = unsafe { &mut *ctx.cast::<PairCtx<'_>>() };
    let (key, val) = unsafe { (raw_bytes(key, klen), raw_bytes(val, vlen)) };
    let f = &mut ctx.f;
    match panic::catch_unwind(AssertUnwindSafe(|| f(key, val))) {
        Ok(true) => 0,
        Ok(false) => {
            ctx.stopped = true;
            STOP
        }
        Err(payload) => {
            ctx.panic = Some(payload);
            STOP
        }
    }
}

/// Runs a C iteration (`call` gets the callback and its ctx) with `f` as
/// the callback. `Ok(true)`: every pair visited; `Ok(false)`: `f` stopped
/// it. A panic in `f` is resumed here, after the C call has returned.
fn call_pairs(
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    call: impl FnOnce(ffi::kv_pair_fn, *mut c_void) -> c_int,
) -> Result<bool> {
    let mut ctx = PairCtx { f, panic: None, stopped: false };
    let rc = call(Some(pair_trampoline), ptr::addr_of_mut!(ctx).cast());
    // Read the detail before anything else can run a libkv call.
    let result = if rc < 0 { Err(Error::last(rc)) } else { Ok(rc == 0 && !ctx.stopped) };
    if let Some(payload) = ctx.panic.take() {
        panic::resume_unwind(payload);
    }
    result
}

/// The closure behind a view callback.
type ViewFn<'f> = &'f mut dyn FnMut(&[u8]);

/// The state behind the `ctx` pointer of a view callback.
struct ViewCtx<'f> {
    f: Option<ViewFn<'f>>,
    panic: Option<Box<dyn Any + Send + 'static>>,
}

unsafe extern "C" fn view_trampoline(ctx: *mut c_void, val: *const c_void, vlen: usize) -> c_int {
    // SAFETY: as in pair_trampoline: ctx is the `&mut ViewCtx` of this call
    // and val is valid for vlen bytes during it.
    let ctx = unsafe { &mut *ctx.cast::<ViewCtx<'_>>() };
    let val = unsafe { raw_bytes(val, vlen) };
    let Some(f) = ctx.f.take() else { return 0 };
    match panic::catch_unwind(AssertUnwindSafe(|| f(val))) {
        Ok(()) => 0,
        Err(payload) => {
            ctx.panic = Some(payload);
            STOP
        }
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    // Round up so that a non-zero TTL under 1 ms stays non-zero; a zero TTL
    // goes through as 0 and the library refuses it (KV_EINVAL).
    let ms = ttl.as_millis() + u128::from(ttl.subsec_nanos() % 1_000_000 != 0);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// The key/value pointer and length of a byte slice.
fn raw(b: &[u8]) -> (*const c_void, usize) {
    (b.as_ptr().cast(), b.len())
}

// ---------------------------------------------------------------------------
// Db
// ---------------------------------------------------------------------------

/// Owns a `kv_t *`; closes it when dropped.
struct Handle(NonNull<ffi::kv_t>);

impl Handle {
    fn close(self) -> c_int {
        let raw = self.0.as_ptr();
        std::mem::forget(self);
        // SAFETY: raw came from a successful kv_open and is closed once:
        // `self` is consumed and its Drop suppressed.
        unsafe { ffi::kv_close(raw) }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: as in close(); Drop runs once. The error, if any, is lost:
        // call Db::close to see it.
        unsafe { ffi::kv_close(self.0.as_ptr()) };
    }
}

/// An open store: a `kv_t` handle. Closed by [`Db::close`] or on drop.
pub struct Db {
    handle: Handle,
    path: PathBuf,
}

// SAFETY: kv(3), "Threads": "A kv_t may be shared by any number of
// threads"; every function but kv_close may be called concurrently on one
// handle (each page's Threads section), and the handle has no thread
// affinity (kv_close(3): handles may be closed from any thread). kv_close is
// only reached through `Db::close(self)` or `Drop`, i.e. with no borrow of
// the Db left, so it cannot race with another call.
unsafe impl Send for Db {}
// SAFETY: see Send above.
unsafe impl Sync for Db {}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish_non_exhaustive()
    }
}

fn path_to_cstring(path: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::new(ffi::KV_EINVAL, format!("{}: path contains a NUL byte", path.display())))
}

impl Db {
    /// Opens (or creates, per `opts`) the store in the directory `path`
    /// (kv_open(3)).
    ///
    /// Fails with [`ErrorKind::NoStore`] when there is no store and
    /// `create` was not given, [`ErrorKind::Locked`] when another handle (in
    /// this process or another) has it open for writing,
    /// [`ErrorKind::Exists`] for `create` + `exclusive` on an existing store.
    pub fn open(path: impl AsRef<Path>, opts: &Options) -> Result<Db> {
        let path = path.as_ref();
        let cpath = path_to_cstring(path)?;
        let raw_opts = opts.to_raw();
        let mut out: *mut ffi::kv_t = ptr::null_mut();
        // SAFETY: cpath is NUL-terminated, raw_opts initialised by
        // kv_options_init, out valid for a write; the library keeps no
        // pointer to either argument after returning.
        let rc = unsafe { ffi::kv_open(cpath.as_ptr(), &raw_opts, &mut out) };
        check(rc)?;
        let handle = NonNull::new(out).map(Handle).ok_or_else(|| {
            Error::new(ffi::KV_EINVAL, "kv_open returned KV_OK without a handle")
        })?;
        Ok(Db { handle, path: path.to_path_buf() })
    }

    /// The directory this store was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw `kv_t *`, for calls this binding does not wrap. It stays
    /// owned by the `Db`: do not close it.
    pub fn as_raw(&self) -> *mut ffi::kv_t {
        self.handle.0.as_ptr()
    }

    /// Flushes, syncs (except in [`SyncMode::None`]) and frees the handle,
    /// reporting the error that `Drop` would have to ignore. The handle is
    /// freed even when this fails (kv_close(3)).
    pub fn close(self) -> Result<()> {
        let Db { handle, path: _ } = self;
        check(handle.close())
    }

    /// Stores `value` under `key`, replacing any value and expiry
    /// (kv_put(3)).
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let ((k, kl), (v, vl)) = (raw(key.as_ref()), raw(value.as_ref()));
        // SAFETY: the handle is open (owned by self); key and value are
        // valid for their lengths for the call and not kept.
        check(unsafe { ffi::kv_put(self.as_raw(), k, kl, v, vl) })
    }

    /// As [`Db::put`]; the value expires `ttl` from now, rounded up to
    /// whole milliseconds. A zero `ttl`, or one over 2^63 ms, is
    /// [`ErrorKind::InvalidArgument`].
    pub fn put_ttl(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>, ttl: Duration) -> Result<()> {
        let ((k, kl), (v, vl)) = (raw(key.as_ref()), raw(value.as_ref()));
        // SAFETY: as in put.
        check(unsafe { ffi::kv_put_ttl(self.as_raw(), k, kl, v, vl, ttl_ms(ttl)) })
    }

    /// The value under `key`, or `None` if it has no live value (never
    /// written, deleted or expired).
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        self.get_with(key, <[u8]>::to_vec)
    }

    /// Calls `f` with the stored bytes of the value under `key`, without a
    /// copy where the library can (kv_get_view(3)); `None` if the key has no
    /// live value. A panic in `f` is resumed after the C call returns.
    pub fn get_with<R>(&self, key: impl AsRef<[u8]>, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        let mut f = Some(f);
        let mut out: Option<R> = None;
        let mut call = |val: &[u8]| {
            if let Some(f) = f.take() {
                out = Some(f(val));
            }
        };
        let mut ctx = ViewCtx { f: Some(&mut call), panic: None };
        let (k, kl) = raw(key.as_ref());
        // SAFETY: the handle is open; the key is valid for the call; ctx
        // outlives the call and view_trampoline casts it back to ViewCtx.
        let rc = unsafe {
            ffi::kv_get_view(self.as_raw(), k, kl, Some(view_trampoline), ptr::addr_of_mut!(ctx).cast())
        };
        let result = match rc {
            ffi::KV_ENOTFOUND => Ok(false),
            rc if rc < 0 => Err(Error::last(rc)),
            _ => Ok(true),
        };
        if let Some(payload) = ctx.panic.take() {
            panic::resume_unwind(payload);
        }
        drop(ctx);
        match result {
            Ok(true) => Ok(out),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Copies the value under `key` into `buf` (kv_get_into(3)).
    ///
    /// `Ok(None)`: no live value. `Ok(Some(n))`: the value is `n` bytes;
    /// if `n <= buf.len()` it is in `buf[..n]`, otherwise `buf` is untouched
    /// and `n` is the size needed (the library's `KV_ERANGE`), as with
    /// `snprintf`.
    pub fn get_into(&self, key: impl AsRef<[u8]>, buf: &mut [u8]) -> Result<Option<usize>> {
        let (k, kl) = raw(key.as_ref());
        let mut n = 0usize;
        // SAFETY: the handle is open; buf is valid for writes of buf.len()
        // bytes and the library writes at most that many.
        let rc = unsafe { ffi::kv_get_into(self.as_raw(), k, kl, buf.as_mut_ptr().cast(), buf.len(), &mut n) };
        match rc {
            ffi::KV_OK | ffi::KV_ERANGE => Ok(Some(n)),
            ffi::KV_ENOTFOUND => Ok(None),
            rc => Err(Error::last(rc)),
        }
    }

    /// Whether `key` has a live value.
    pub fn exists(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let (k, kl) = raw(key.as_ref());
        // SAFETY: the handle is open; the key is valid for the call.
        match unsafe { ffi::kv_exists(self.as_raw(), k, kl) } {
            ffi::KV_OK => Ok(true),
            ffi::KV_ENOTFOUND => Ok(false),
            rc => Err(Error::last(rc)),
        }
    }

    /// When the value under `key` expires: `None` if the key has no live
    /// value, `Some(Expiry::Never)` if it was written without a TTL.
    pub fn expiry(&self, key: impl AsRef<[u8]>) -> Result<Option<Expiry>> {
        let (k, kl) = raw(key.as_ref());
        let mut ms = 0u64;
        // SAFETY: the handle is open; the key is valid; ms valid for a write.
        match unsafe { ffi::kv_expiry(self.as_raw(), k, kl, &mut ms) } {
            ffi::KV_OK if ms == 0 => Ok(Some(Expiry::Never)),
            ffi::KV_OK => Ok(Some(Expiry::At(UNIX_EPOCH + Duration::from_millis(ms)))),
            ffi::KV_ENOTFOUND => Ok(None),
            rc => Err(Error::last(rc)),
        }
    }

    /// Deletes `key`: `Ok(true)` if it had a live value, `Ok(false)` (and
    /// nothing written) if not.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let (k, kl) = raw(key.as_ref());
        // SAFETY: the handle is open; the key is valid for the call.
        match unsafe { ffi::kv_delete(self.as_raw(), k, kl) } {
            ffi::KV_OK => Ok(true),
            ffi::KV_ENOTFOUND => Ok(false),
            rc => Err(Error::last(rc)),
        }
    }

    /// Applies every operation of `batch`, or none, even across a crash
    /// (kv_write(3)). The batch is not consumed.
    pub fn write(&self, batch: &Batch) -> Result<()> {
        // SAFETY: both handles are live. kv_write must not overlap another
        // call on the same batch: Batch is !Sync and every call on it goes
        // through its owner's thread, so none can run during this one.
        check(unsafe { ffi::kv_write(self.as_raw(), batch.raw.as_ptr()) })
    }

    /// Calls `f` for every live pair, in no order (kv_foreach(3)).
    ///
    /// A panic in `f` stops the iteration and is resumed once the C call
    /// has returned: it surfaces as a panic from `for_each` (never as an
    /// `Err`).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        self.try_for_each(|k, v| {
            f(k, v);
            ControlFlow::<()>::Continue(())
        })
        .map(|_| ())
    }

    /// As [`Db::for_each`], and `f` may stop early with
    /// `ControlFlow::Break(b)`, which returns `Ok(Some(b))`; `Ok(None)` when
    /// every pair was visited.
    pub fn try_for_each<B>(&self, mut f: impl FnMut(&[u8], &[u8]) -> ControlFlow<B>) -> Result<Option<B>> {
        let mut broke = None;
        let mut g = |k: &[u8], v: &[u8]| match f(k, v) {
            ControlFlow::Continue(()) => true,
            ControlFlow::Break(b) => {
                broke = Some(b);
                false
            }
        };
        // SAFETY: the handle is open; the callback and ctx come from
        // call_pairs and stay valid for the call.
        call_pairs(&mut g, |cb, ctx| unsafe { ffi::kv_foreach(self.as_raw(), cb, ctx) })?;
        Ok(broke)
    }

    /// Live pairs with keys in `range`, in byte order of key, as an
    /// iterator that fetches pages through `kv_scan`. Any std range of keys
    /// works (`a..b`, `a..=b`, `a..`, `..b`, `..=b`, `..`, or a pair of
    /// [`Bound`]s), each end inclusive or exclusive. Refine with
    /// [`Scan::prefix`], [`Scan::limit`], [`Scan::page_size`].
    pub fn scan<R: KeyRange>(&self, range: R) -> Scan<'_> {
        let (lo, hi) = range.key_bounds();
        let mut s = Scan::new(self);
        s.start = match lo {
            Bound::Included(k) => Some(k.to_vec()),
            // The least key above k is k + [0].
            Bound::Excluded(k) => Some(successor(k)),
            Bound::Unbounded => None,
        };
        s.end = match hi {
            Bound::Included(k) => Some(successor(k)),
            Bound::Excluded(k) => Some(k.to_vec()),
            Bound::Unbounded => None,
        };
        s
    }

    /// Live pairs whose key begins with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Scan<'_> {
        Scan::new(self).prefix(prefix)
    }

    /// Every live pair, in key order.
    pub fn iter(&self) -> Scan<'_> {
        Scan::new(self)
    }

    /// Makes every write so far durable (kv_sync(3)).
    pub fn sync(&self) -> Result<()> {
        // SAFETY: the handle is open.
        check(unsafe { ffi::kv_sync(self.as_raw()) })
    }

    /// Brings a read-only handle ([`Options::read_only`]) up to date with
    /// what the directory's writer (another process or handle) wrote since
    /// the open or the last refresh (kv_refresh(3)). Appends cost about the
    /// new bytes; a compaction in the writer means a full reload, swapped
    /// in at once, so other threads reading meanwhile see one state or the
    /// other. [`ErrorKind::InvalidArgument`] on a writer's handle (always
    /// current); [`ErrorKind::Busy`] when compactions kept changing the
    /// files (call again).
    pub fn refresh(&self) -> Result<()> {
        // SAFETY: the handle is open.
        check(unsafe { ffi::kv_refresh(self.as_raw()) })
    }

    /// Whole-store figures (kv_stats(3)).
    pub fn stats(&self) -> Result<Stats> {
        let mut s = ffi::kv_stats { size: std::mem::size_of::<ffi::kv_stats>() as u32, ..Default::default() };
        // SAFETY: the handle is open; s is a kv_stats with size set.
        check(unsafe { ffi::kv_stats(self.as_raw(), &mut s) })?;
        Ok(s.into())
    }

    /// Each segment file's figures, oldest first (kv_stats_segments(3)).
    pub fn segments(&self) -> Result<Vec<SegmentStats>> {
        let mut cap = 0usize;
        loop {
            let mut arr = vec![ffi::kv_segment_stats::default(); cap];
            let mut n = 0usize;
            // SAFETY: the handle is open; arr has room for cap entries (a
            // dangling but unused pointer when cap is 0, which the library
            // allows: it fills at most cap).
            let rc = unsafe { ffi::kv_stats_segments(self.as_raw(), arr.as_mut_ptr(), cap, &mut n) };
            check(rc)?;
            if n <= cap {
                arr.truncate(n);
                return Ok(arr.into_iter().map(SegmentStats::from).collect());
            }
            // Segments may come and go meanwhile: ask again with room to spare.
            cap = n + 4;
        }
    }

    /// Compacts now, in this thread (kv_compact(3)).
    pub fn compact(&self) -> Result<CompactStats> {
        let mut s = ffi::kv_compact_stats::default();
        // SAFETY: the handle is open; s is valid for a write.
        check(unsafe { ffi::kv_compact(self.as_raw(), &mut s) })?;
        Ok(s.into())
    }

    /// Reads and checks every record of every segment (kv_verify(3)).
    ///
    /// A store with damage is an `Err` of kind [`ErrorKind::Corrupt`] whose
    /// message names the first damaged place; [`Db::verify_report`] gives
    /// the counts in that case too.
    pub fn verify(&self) -> Result<VerifyStats> {
        let (stats, result) = self.verify_report();
        result.map(|()| stats)
    }

    /// As [`Db::verify`], but always returns the figures (which count every
    /// damaged place) beside the outcome.
    pub fn verify_report(&self) -> (VerifyStats, Result<()>) {
        let mut s = ffi::kv_verify_stats::default();
        // SAFETY: the handle is open; no progress callback; s valid for a
        // write.
        let rc = unsafe { ffi::kv_verify(self.as_raw(), None, ptr::null_mut(), &mut s) };
        (s.into(), check(rc))
    }

    /// A digest of every live pair, of one moment of the store
    /// (kv_digest(3)): writers on this handle wait meanwhile.
    pub fn digest(&self) -> Result<Digest> {
        let mut d = ffi::kv_digest::default();
        // SAFETY: the handle is open; d is valid for a write.
        check(unsafe { ffi::kv_digest(self.as_raw(), &mut d) })?;
        Ok(d.into())
    }

    /// The key-hash range `first..=last` cut into `nbuckets` (1 to
    /// [`DIGEST_MAX_BUCKETS`], at most the range's size) near-equal parts,
    /// one [`Digest`] each with its bounds (kv_digest_buckets(3)). Compare
    /// with another store's buckets, split a differing one again, and list
    /// a small one with [`Db::digest_for_each`]: a differing key is found in
    /// about log16(n) rounds with 16 buckets.
    pub fn digest_buckets(&self, first: u64, last: u64, nbuckets: u32) -> Result<Vec<Digest>> {
        if nbuckets == 0 || nbuckets > DIGEST_MAX_BUCKETS {
            return Err(Error::new(ffi::KV_EINVAL, "digest_buckets: nbuckets out of range"));
        }
        let mut arr = vec![ffi::kv_digest::default(); nbuckets as usize];
        // SAFETY: the handle is open; arr has room for nbuckets entries.
        check(unsafe { ffi::kv_digest_buckets(self.as_raw(), first, last, nbuckets, arr.as_mut_ptr()) })?;
        Ok(arr.into_iter().map(Digest::from).collect())
    }

    /// Calls `f` for every live pair whose key hash is in `first..=last`,
    /// in no order (kv_digest_foreach(3)); as [`Db::for_each`] otherwise.
    pub fn digest_for_each(&self, first: u64, last: u64, mut f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        let mut g = |k: &[u8], v: &[u8]| {
            f(k, v);
            true
        };
        // SAFETY: the handle is open; the callback and ctx come from
        // call_pairs and stay valid for the call.
        call_pairs(&mut g, |cb, ctx| unsafe { ffi::kv_digest_foreach(self.as_raw(), first, last, cb, ctx) })?;
        Ok(())
    }
}

/// A range of keys for [`Db::scan`]: the std range types and
/// `(Bound<K>, Bound<K>)`, over any `K: AsRef<[u8]>` (`&str`, `&[u8]`,
/// `&[u8; N]`, `Vec<u8>`, `String`...).
pub trait KeyRange {
    /// The two ends as byte strings.
    fn key_bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>);
}

fn as_bytes<K: AsRef<[u8]>>(b: Bound<&K>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_ref()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

macro_rules! key_range {
    ($($t:ident),*) => {$(
        impl<K: AsRef<[u8]>> KeyRange for std::ops::$t<K> {
            fn key_bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
                (as_bytes(self.start_bound()), as_bytes(self.end_bound()))
            }
        }
    )*};
}
key_range!(Range, RangeInclusive, RangeFrom, RangeTo, RangeToInclusive);

impl KeyRange for std::ops::RangeFull {
    fn key_bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (Bound::Unbounded, Bound::Unbounded)
    }
}

impl<K: AsRef<[u8]>> KeyRange for (Bound<K>, Bound<K>) {
    fn key_bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (as_bytes(self.0.as_ref()), as_bytes(self.1.as_ref()))
    }
}

/// The least byte string greater than `k` in byte order: `k` + `[0]`.
fn successor(k: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(k.len() + 1);
    v.extend_from_slice(k);
    v.push(0);
    v
}

// ---------------------------------------------------------------------------
// Scan
// ---------------------------------------------------------------------------

/// An ordered scan: an iterator of `Result<(key, value)>` that fetches
/// `page_size` pairs at a time with `kv_scan` and resumes after the last
/// key seen. A key that is live for the whole scan is seen exactly once;
/// keys written or deleted meanwhile may or may not be. After an `Err` the
/// iterator ends.
#[must_use = "a Scan does nothing until iterated"]
pub struct Scan<'db> {
    db: &'db Db,
    /// Inclusive lower bound of the next page.
    start: Option<Vec<u8>>,
    /// Exclusive upper bound.
    end: Option<Vec<u8>>,
    prefix: Option<Vec<u8>>,
    /// Pairs still allowed by `limit`; `None`: no limit.
    remaining: Option<usize>,
    page_size: usize,
    buf: VecDeque<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

impl fmt::Debug for Scan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scan")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("prefix", &self.prefix)
            .field("remaining", &self.remaining)
            .field("page_size", &self.page_size)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Pairs fetched per `kv_scan` call unless [`Scan::page_size`] says
/// otherwise.
pub const DEFAULT_PAGE_SIZE: usize = 256;

impl<'db> Scan<'db> {
    fn new(db: &'db Db) -> Scan<'db> {
        Scan {
            db,
            start: None,
            end: None,
            prefix: None,
            remaining: None,
            page_size: DEFAULT_PAGE_SIZE,
            buf: VecDeque::new(),
            done: false,
        }
    }

    /// Only keys that begin with `prefix` (combined with the range).
    pub fn prefix(mut self, prefix: impl AsRef<[u8]>) -> Scan<'db> {
        let p = prefix.as_ref();
        self.prefix = if p.is_empty() { None } else { Some(p.to_vec()) };
        self
    }

    /// At most `n` pairs in all.
    pub fn limit(mut self, n: usize) -> Scan<'db> {
        self.remaining = Some(n);
        self
    }

    /// Pairs fetched per `kv_scan` call (at least 1; default
    /// [`DEFAULT_PAGE_SIZE`]). Each page is copied out of the library, so
    /// the iterator holds no lock between pages.
    pub fn page_size(mut self, n: usize) -> Scan<'db> {
        self.page_size = n.max(1);
        self
    }

    /// Calls `f` for each pair still to come, with the library's own bytes
    /// (no copy), in one `kv_scan` call without paging; `f` may stop with
    /// `ControlFlow::Break(b)`, which returns `Ok(Some(b))`. A panic in `f`
    /// is resumed after the C call returns.
    pub fn visit<B>(mut self, mut f: impl FnMut(&[u8], &[u8]) -> ControlFlow<B>) -> Result<Option<B>> {
        // Pairs already fetched into the buffer come first.
        while let Some((k, v)) = self.buf.pop_front() {
            if let ControlFlow::Break(b) = f(&k, &v) {
                return Ok(Some(b));
            }
        }
        if self.done || self.remaining == Some(0) {
            return Ok(None);
        }
        let mut broke = None;
        let mut g = |k: &[u8], v: &[u8]| match f(k, v) {
            ControlFlow::Continue(()) => true,
            ControlFlow::Break(b) => {
                broke = Some(b);
                false
            }
        };
        self.call_scan(self.remaining.unwrap_or(0), &mut g)?;
        Ok(broke)
    }

    /// One kv_scan from `start` with the given limit (0: none).
    fn call_scan(&self, limit: usize, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<bool> {
        fn opt(b: &Option<Vec<u8>>) -> (*const c_void, usize) {
            b.as_deref().map_or((ptr::null(), 0), raw)
        }
        let (s, sl) = opt(&self.start);
        let (e, el) = opt(&self.end);
        let (p, pl) = opt(&self.prefix);
        let db = self.db.as_raw();
        // SAFETY: the handle is open (self borrows the Db); bounds and
        // prefix are NULL or valid for their lengths for the whole call;
        // the callback and ctx come from call_pairs.
        call_pairs(f, |cb, ctx| unsafe { ffi::kv_scan(db, s, sl, e, el, p, pl, limit, cb, ctx) })
    }

    fn fetch(&mut self) -> Result<()> {
        let want = self.remaining.map_or(self.page_size, |r| r.min(self.page_size));
        if want == 0 {
            self.done = true;
            return Ok(());
        }
        let mut page = Vec::with_capacity(want.min(1024));
        let mut push = |k: &[u8], v: &[u8]| {
            page.push((k.to_vec(), v.to_vec()));
            true
        };
        self.call_scan(want, &mut push)?;
        let got = page.len();
        if let Some(r) = self.remaining.as_mut() {
            *r -= got.min(*r);
        }
        match page.last() {
            Some((last, _)) if got >= want => self.start = Some(successor(last)),
            // A short page: the range is exhausted.
            _ => self.done = true,
        }
        self.buf.extend(page);
        Ok(())
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(pair) = self.buf.pop_front() {
                return Some(Ok(pair));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fetch() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

impl FusedIterator for Scan<'_> {}

// ---------------------------------------------------------------------------
// Batch
// ---------------------------------------------------------------------------

/// An atomic batch of puts and deletes (kv_batch_new(3)), applied with
/// [`Db::write`]. It belongs to no store and may be written again, changed
/// or cleared after a write.
///
/// `Send`, not `Sync`: one thread at a time uses it.
///
/// ```compile_fail
/// fn shared<T: Sync>() {}
/// shared::<libkv::Batch>();
/// ```
pub struct Batch {
    raw: NonNull<ffi::kv_batch>,
}

// SAFETY: a kv_batch is heap memory owned by this value with no tie to a
// thread (kv_batch_new(3): "Different batches may be used by different
// threads at once"). It is not Sync: "calls on one batch ... must not
// overlap", which `&mut self` on every mutation plus !Sync (from NonNull)
// guarantee.
unsafe impl Send for Batch {}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch").field("len", &self.len()).finish()
    }
}

impl Default for Batch {
    fn default() -> Batch {
        Batch::new()
    }
}

impl Batch {
    /// An empty batch.
    ///
    /// # Panics
    /// If the library cannot allocate it, like other Rust allocations; see
    /// [`Batch::try_new`].
    pub fn new() -> Batch {
        Batch::try_new().unwrap_or_else(|e| panic!("kv_batch_new: {e}"))
    }

    /// An empty batch, or [`ErrorKind::OutOfMemory`].
    pub fn try_new() -> Result<Batch> {
        let mut out: *mut ffi::kv_batch = ptr::null_mut();
        // SAFETY: out is valid for a write.
        check(unsafe { ffi::kv_batch_new(&mut out) })?;
        NonNull::new(out)
            .map(|raw| Batch { raw })
            .ok_or_else(|| Error::new(ffi::KV_ENOMEM, "kv_batch_new returned no batch"))
    }

    /// Adds a put (checked now, with the errors of [`Db::put`]; the store's
    /// own `max_value_size` is checked by [`Db::write`]).
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let ((k, kl), (v, vl)) = (raw(key.as_ref()), raw(value.as_ref()));
        // SAFETY: the batch is live and exclusively borrowed; key and value
        // are copied into it.
        check(unsafe { ffi::kv_batch_put(self.raw.as_ptr(), k, kl, v, vl) })
    }

    /// Adds a put whose value expires `ttl` after the [`Db::write`] that
    /// applies it.
    pub fn put_ttl(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>, ttl: Duration) -> Result<()> {
        let ((k, kl), (v, vl)) = (raw(key.as_ref()), raw(value.as_ref()));
        // SAFETY: as in put.
        check(unsafe { ffi::kv_batch_put_ttl(self.raw.as_ptr(), k, kl, v, vl, ttl_ms(ttl)) })
    }

    /// Adds a delete; deleting a key with no live value is not an error.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> Result<()> {
        let (k, kl) = raw(key.as_ref());
        // SAFETY: as in put.
        check(unsafe { ffi::kv_batch_delete(self.raw.as_ptr(), k, kl) })
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        // SAFETY: the batch is live; no call on it can overlap (!Sync).
        unsafe { ffi::kv_batch_count(self.raw.as_ptr()) }
    }

    /// No operations.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every operation, keeping the memory.
    pub fn clear(&mut self) {
        // SAFETY: the batch is live and exclusively borrowed.
        unsafe { ffi::kv_batch_clear(self.raw.as_ptr()) }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // SAFETY: the batch came from kv_batch_new and is freed once.
        unsafe { ffi::kv_batch_free(self.raw.as_ptr()) }
    }
}
