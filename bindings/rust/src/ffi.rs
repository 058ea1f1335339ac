//! Raw declarations of `include/kv.h`, written by hand (no bindgen).
//!
//! Every item mirrors the header exactly: names, field order, types. Keep
//! the two in step; `tests/layout.rs` compares sizes and offsets with what
//! a C compiler says (when one is installed) and with what the library
//! itself checks at run time (`kv_options_init`, `kv_stats`).
//!
//! Nothing here is safe to call without reading the matching man page; the
//! safe API is in the crate root.

#![allow(non_camel_case_types, missing_docs)] // kv.h and the man pages document them

use std::ffi::{c_char, c_int, c_uint, c_void};

pub const KV_VERSION_MAJOR: c_int = 0;
pub const KV_VERSION_MINOR: c_int = 1;
pub const KV_VERSION_PATCH: c_int = 0;

/// Opaque store handle (`kv_t`).
#[repr(C)]
pub struct kv_t {
    _opaque: [u8; 0],
    // Neither Send, Sync nor Unpin: the safe wrappers decide.
    _marker: core::marker::PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}

/// Opaque batch (`kv_batch`).
#[repr(C)]
pub struct kv_batch {
    _opaque: [u8; 0],
    _marker: core::marker::PhantomData<(*mut u8, core::marker::PhantomPinned)>,
}

// Error codes.
pub const KV_OK: c_int = 0;
pub const KV_ENOTFOUND: c_int = -1;
pub const KV_EINVAL: c_int = -2;
pub const KV_ENOMEM: c_int = -3;
pub const KV_EIO: c_int = -4;
pub const KV_ECORRUPT: c_int = -5;
pub const KV_ELOCKED: c_int = -6;
pub const KV_EREADONLY: c_int = -7;
pub const KV_ETOOBIG: c_int = -8;
pub const KV_EEXIST: c_int = -9;
pub const KV_ENOENT: c_int = -10;
pub const KV_EVERSION: c_int = -11;
pub const KV_ERANGE: c_int = -12;
pub const KV_EBUSY: c_int = -13;
pub const KV_ENOTSUP: c_int = -14;
pub const KV_ECANCELED: c_int = -15;
pub const KV_EGAP: c_int = -16;
pub const KV_ESNAPSHOT: c_int = -17;
pub const KV_EHOOK: c_int = -18;

// kv_options.flags
pub const KV_CREATE: u32 = 0x01;
pub const KV_RDONLY: u32 = 0x02;
pub const KV_EXCL: u32 = 0x04;
pub const KV_SALVAGE: u32 = 0x08;
pub const KV_COMPRESS: u32 = 0x10;
pub const KV_UNORDERED: u32 = 0x20;
pub const KV_NO_AUTO_COMPACT: u32 = 0x40;
pub const KV_REPLICA: u32 = 0x80;

// kv_options.sync_mode
pub const KV_SYNC_WRITE: u32 = 0;
pub const KV_SYNC_NONE: u32 = 1;
pub const KV_SYNC_EVERY: u32 = 2;
pub const KV_SYNC_INTERVAL: u32 = 3;
pub const KV_SYNC_ALWAYS: u32 = 4;

// Limits.
pub const KV_MAX_KEY: u32 = 65535;
pub const KV_MAX_VALUE: u32 = 4294967295;

// Log levels given to kv_log_fn.
pub const KV_LOG_ERROR: c_int = 0;
pub const KV_LOG_WARN: c_int = 1;
pub const KV_LOG_INFO: c_int = 2;

// kv_segment_stats.flags
pub const KV_SEGMENT_COMPACTED: u32 = 0x1;
pub const KV_SEGMENT_HINT: u32 = 0x2;

pub type kv_log_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, level: c_int, msg: *const c_char)>;
pub type kv_progress_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, done: u64, total: u64) -> c_int>;
pub type kv_clock_fn = Option<unsafe extern "C" fn(ctx: *mut c_void) -> u64>;
pub type kv_view_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, val: *const c_void, vlen: usize) -> c_int>;
pub type kv_pair_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        key: *const c_void,
        klen: usize,
        val: *const c_void,
        vlen: usize,
    ) -> c_int,
>;

// ---- replication (see kv_repl_apply(3)) ----

pub type kv_repl_fn = Option<
    unsafe extern "C" fn(ctx: *mut c_void, first: u64, last: u64, bytes: *const c_void, len: usize) -> c_int,
>;
pub type kv_seal_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, seq: u64, path: *const c_char) -> c_int>;

/// `struct kv_repl_hooks`; `size` must be `size_of::<kv_repl_hooks>()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kv_repl_hooks {
    pub size: u32,
    pub flags: u32,
    pub commit: kv_repl_fn,
    pub seal: kv_seal_fn,
    pub ctx: *mut c_void,
    pub reserved: [u64; 2],
}

pub const KV_HOOK_STRICT: u32 = 0x1;

/// `kv_options`: fill with [`kv_options_init`], then change fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kv_options {
    pub size: u32,
    pub flags: u32,
    pub sync_mode: u32,
    pub sync_every: u32,
    pub max_file_size: u64,
    pub max_value_size: u64,
    pub compress_min: u32,
    pub file_mode: u32,
    pub log: kv_log_fn,
    pub log_ctx: *mut c_void,
    pub clock: kv_clock_fn,
    pub clock_ctx: *mut c_void,
    pub compact_dead_pct: u32,
    pub compact_store_pct: u32,
    pub compact_dead_bytes: u64,
    pub compact_min_size: u64,
    pub compact_max_bytes: u64,
    pub progress: kv_progress_fn,
    pub progress_ctx: *mut c_void,
    /// Replication hooks, or NULL (the safe API sets none).
    pub repl: *const kv_repl_hooks,
    /// Keys to size the index for at open (0: grow as keys arrive).
    pub expected_keys: u64,
}

/// `struct kv_stats`; `size` must be set to `size_of::<kv_stats>()`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct kv_stats {
    pub size: u32,
    pub sync_mode: u32,
    pub live_keys: u64,
    pub live_bytes: u64,
    pub dead_bytes: u64,
    pub segments: u64,
    pub disk_bytes: u64,
    pub keydir_bytes: u64,
    pub last_lsn: u64,
    pub recovered_truncated_bytes: u64,
    pub recovered_skipped_bytes: u64,
    pub recovered_skipped_records: u64,
    pub compressed_values: u64,
    pub compression_saved_bytes: u64,
    pub recovered_hint_segments: u64,
    pub recovered_hint_rejected: u64,
    pub compactions: u64,
    pub compaction_freed_bytes: u64,
    pub recovered_keys_at_risk: u64,
    pub repl_hook_calls: u64,
    pub repl_hook_errors: u64,
    pub reserved: [u64; 1],
}

/// `kv_segment_stats`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct kv_segment_stats {
    pub seq: u64,
    pub bytes: u64,
    pub live_bytes: u64,
    pub dead_bytes: u64,
    pub active: u32,
    pub flags: u32,
}

/// `kv_compact_stats`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct kv_compact_stats {
    pub segments_in: u64,
    pub segments_out: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub bytes_freed: u64,
    pub reserved: [u64; 3],
}

/// `kv_verify_stats`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct kv_verify_stats {
    pub segments: u64,
    pub records: u64,
    pub bytes: u64,
    pub bad_ranges: u64,
    pub bad_bytes: u64,
    pub reserved: [u64; 3],
}

/// `struct kv_digest` (a struct tag only in C): see kv_digest(3).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct kv_digest {
    pub lo: u64,
    pub hi: u64,
    pub keys: u64,
    pub bytes: u64,
    pub first: u64,
    pub last: u64,
}

/// Most buckets in one `kv_digest_buckets` call.
pub const KV_DIGEST_MAX_BUCKETS: u32 = 1048576;

extern "C" {
    // ---- library ----
    pub fn kv_version(major: *mut c_int, minor: *mut c_int, patch: *mut c_int) -> *const c_char;
    pub fn kv_strerror(err: c_int) -> *const c_char;
    pub fn kv_errmsg() -> *const c_char;
    pub fn kv_free(ptr: *mut c_void);

    // ---- open and close ----
    pub fn kv_options_init(opts: *mut kv_options);
    pub fn kv_open(dir: *const c_char, opts: *const kv_options, out: *mut *mut kv_t) -> c_int;
    pub fn kv_close(db: *mut kv_t) -> c_int;

    // ---- single-key operations ----
    pub fn kv_put(db: *mut kv_t, key: *const c_void, klen: usize, val: *const c_void, vlen: usize) -> c_int;
    pub fn kv_put_ttl(
        db: *mut kv_t,
        key: *const c_void,
        klen: usize,
        val: *const c_void,
        vlen: usize,
        ttl_ms: u64,
    ) -> c_int;
    pub fn kv_get(db: *mut kv_t, key: *const c_void, klen: usize, val: *mut *mut c_void, vlen: *mut usize) -> c_int;
    pub fn kv_get_into(
        db: *mut kv_t,
        key: *const c_void,
        klen: usize,
        buf: *mut c_void,
        cap: usize,
        vlen: *mut usize,
    ) -> c_int;
    pub fn kv_get_view(db: *mut kv_t, key: *const c_void, klen: usize, f: kv_view_fn, ctx: *mut c_void) -> c_int;
    pub fn kv_exists(db: *mut kv_t, key: *const c_void, klen: usize) -> c_int;
    pub fn kv_expiry(db: *mut kv_t, key: *const c_void, klen: usize, expire_ms: *mut u64) -> c_int;
    pub fn kv_delete(db: *mut kv_t, key: *const c_void, klen: usize) -> c_int;

    // ---- atomic batches ----
    pub fn kv_batch_new(out: *mut *mut kv_batch) -> c_int;
    pub fn kv_batch_put(b: *mut kv_batch, key: *const c_void, klen: usize, val: *const c_void, vlen: usize) -> c_int;
    pub fn kv_batch_put_ttl(
        b: *mut kv_batch,
        key: *const c_void,
        klen: usize,
        val: *const c_void,
        vlen: usize,
        ttl_ms: u64,
    ) -> c_int;
    pub fn kv_batch_delete(b: *mut kv_batch, key: *const c_void, klen: usize) -> c_int;
    pub fn kv_batch_clear(b: *mut kv_batch);
    pub fn kv_batch_count(b: *const kv_batch) -> usize;
    pub fn kv_batch_free(b: *mut kv_batch);
    pub fn kv_write(db: *mut kv_t, b: *mut kv_batch) -> c_int;

    // ---- iteration ----
    pub fn kv_foreach(db: *mut kv_t, f: kv_pair_fn, ctx: *mut c_void) -> c_int;
    pub fn kv_scan(
        db: *mut kv_t,
        start: *const c_void,
        slen: usize,
        end: *const c_void,
        elen: usize,
        prefix: *const c_void,
        plen: usize,
        limit: usize,
        f: kv_pair_fn,
        ctx: *mut c_void,
    ) -> c_int;

    // ---- durability and figures ----
    pub fn kv_sync(db: *mut kv_t) -> c_int;
    pub fn kv_refresh(db: *mut kv_t) -> c_int;
    pub fn kv_stats(db: *mut kv_t, out: *mut kv_stats) -> c_int;
    pub fn kv_stats_segments(db: *mut kv_t, arr: *mut kv_segment_stats, cap: usize, n: *mut usize) -> c_int;
    pub fn kv_verify(db: *mut kv_t, progress: kv_progress_fn, ctx: *mut c_void, out: *mut kv_verify_stats) -> c_int;

    // ---- replication ----
    pub fn kv_repl_apply(db: *mut kv_t, bytes: *const c_void, len: usize) -> c_int;
    pub fn kv_repl_position(db: *mut kv_t, position: *mut u64) -> c_int;
    pub fn kv_repl_read(db: *mut kv_t, from: u64, max_bytes: usize, f: kv_repl_fn, ctx: *mut c_void) -> c_int;
    pub fn kv_repl_retain(db: *mut kv_t, lsn: u64) -> c_int;
    pub fn kv_repl_snapshot(
        db: *mut kv_t,
        max_bytes: usize,
        f: kv_repl_fn,
        ctx: *mut c_void,
        position: *mut u64,
    ) -> c_int;
    pub fn kv_repl_snapshot_begin(db: *mut kv_t) -> c_int;
    pub fn kv_repl_snapshot_end(db: *mut kv_t, position: u64) -> c_int;

    // ---- space reclamation ----
    pub fn kv_compact(db: *mut kv_t, out: *mut kv_compact_stats) -> c_int;

    // ---- digests (replication) ----
    pub fn kv_digest(db: *mut kv_t, out: *mut kv_digest) -> c_int;
    pub fn kv_digest_buckets(db: *mut kv_t, first: u64, last: u64, nbuckets: c_uint, out: *mut kv_digest) -> c_int;
    pub fn kv_digest_foreach(db: *mut kv_t, first: u64, last: u64, f: kv_pair_fn, ctx: *mut c_void) -> c_int;
}
