//! The hand-written declarations of src/ffi.rs against the C library:
//! sizes the library checks at run time, and (when a C compiler and the
//! in-tree kv.h are there) every size, alignment, field offset and constant
//! as a C compiler sees them.

mod common;

use std::mem::{align_of, offset_of, size_of};
use std::process::Command;

use libkv::ffi;

#[test]
fn options_size_matches_kv_options_init() {
    // kv_options_init sets `size` = sizeof(kv_options) as the library was
    // compiled; a different Rust layout would show here.
    // SAFETY: all-zero is a valid kv_options; kv_options_init writes only
    // within sizeof(kv_options) of the C side, which this test then checks
    // is the Rust size (a larger C struct would have been a write past the
    // end, which the size check below reports).
    let mut o: ffi::kv_options = unsafe { std::mem::zeroed() };
    unsafe { ffi::kv_options_init(&mut o) };
    assert_eq!(o.size as usize, size_of::<ffi::kv_options>());
    assert_eq!(o.flags, 0);
    assert!(o.log.is_none() && o.clock.is_none() && o.progress.is_none());
    // And the safe builder passes the same size through.
    assert_eq!(libkv::Options::new().to_raw().size as usize, size_of::<ffi::kv_options>());
}

#[test]
fn stats_size_is_accepted_and_wrong_size_refused() {
    let dir = common::TempDir::new("layout");
    let db = libkv::Db::open(dir.store(), &common::opts()).unwrap();
    // kv_stats refuses any size but its own sizeof(struct kv_stats).
    let mut s = ffi::kv_stats { size: size_of::<ffi::kv_stats>() as u32, ..Default::default() };
    // SAFETY: open handle, s valid for writes.
    assert_eq!(unsafe { ffi::kv_stats(db.as_raw(), &mut s) }, ffi::KV_OK);
    s.size -= 8;
    assert_eq!(unsafe { ffi::kv_stats(db.as_raw(), &mut s) }, ffi::KV_EINVAL);
    assert!(db.stats().is_ok());
}

#[test]
fn version_matches_header() {
    let (major, minor, _patch) = libkv::version();
    assert_eq!((major, minor), (ffi::KV_VERSION_MAJOR, ffi::KV_VERSION_MINOR));
}

/// (C type, Rust size, Rust align, [(field, Rust offset)])
type Layout = (&'static str, usize, usize, Vec<(&'static str, usize)>);

macro_rules! layouts {
    ($( $cty:literal => $rty:ty { $($f:ident),* $(,)? } )*) => {
        vec![ $( ($cty, size_of::<$rty>(), align_of::<$rty>(),
                  vec![ $( (stringify!($f), offset_of!($rty, $f)) ),* ]) ),* ]
    };
}

fn rust_layouts() -> Vec<Layout> {
    layouts! {
        "kv_options" => ffi::kv_options {
            size, flags, sync_mode, sync_every, max_file_size, max_value_size,
            compress_min, file_mode, log, log_ctx, clock, clock_ctx,
            compact_dead_pct, compact_store_pct, compact_dead_bytes,
            compact_min_size, compact_max_bytes, progress, progress_ctx, repl, expected_keys,
        }
        "struct kv_stats" => ffi::kv_stats {
            size, sync_mode, live_keys, live_bytes, dead_bytes, segments,
            disk_bytes, keydir_bytes, last_lsn, recovered_truncated_bytes,
            recovered_skipped_bytes, recovered_skipped_records,
            compressed_values, compression_saved_bytes,
            recovered_hint_segments, recovered_hint_rejected, compactions,
            compaction_freed_bytes, recovered_keys_at_risk, repl_hook_calls,
            repl_hook_errors, reserved,
        }
        "struct kv_repl_hooks" => ffi::kv_repl_hooks {
            size, flags, commit, seal, ctx, reserved,
        }
        "kv_segment_stats" => ffi::kv_segment_stats {
            seq, bytes, live_bytes, dead_bytes, active, flags,
        }
        "kv_compact_stats" => ffi::kv_compact_stats {
            segments_in, segments_out, bytes_read, bytes_written, bytes_freed, reserved,
        }
        "kv_verify_stats" => ffi::kv_verify_stats {
            segments, records, bytes, bad_ranges, bad_bytes, reserved,
        }
    }
}

fn rust_constants() -> Vec<(&'static str, i64)> {
    macro_rules! c {
        ($($n:ident),* $(,)?) => { vec![ $( (stringify!($n), ffi::$n as i64) ),* ] };
    }
    c![
        KV_VERSION_MAJOR, KV_VERSION_MINOR, KV_VERSION_PATCH,
        KV_OK, KV_ENOTFOUND, KV_EINVAL, KV_ENOMEM, KV_EIO, KV_ECORRUPT, KV_ELOCKED,
        KV_EREADONLY, KV_ETOOBIG, KV_EEXIST, KV_ENOENT, KV_EVERSION, KV_ERANGE,
        KV_EBUSY, KV_ENOTSUP, KV_ECANCELED, KV_EGAP, KV_ESNAPSHOT, KV_EHOOK,
        KV_CREATE, KV_RDONLY, KV_EXCL, KV_SALVAGE, KV_COMPRESS, KV_UNORDERED,
        KV_NO_AUTO_COMPACT, KV_REPLICA, KV_HOOK_STRICT,
        KV_SYNC_WRITE, KV_SYNC_NONE, KV_SYNC_EVERY, KV_SYNC_INTERVAL, KV_SYNC_ALWAYS,
        KV_MAX_KEY, KV_MAX_VALUE, KV_LOG_ERROR, KV_LOG_WARN, KV_LOG_INFO,
        KV_SEGMENT_COMPACTED, KV_SEGMENT_HINT,
    ]
}

#[test]
fn layout_matches_c_compiler() {
    let include = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../include");
    if !include.join("kv.h").exists() {
        eprintln!("layout_matches_c_compiler: no in-tree include/kv.h; skipped");
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());

    let layouts = rust_layouts();
    let constants = rust_constants();
    let mut src = String::from("#include <stdio.h>\n#include <stddef.h>\n#include \"kv.h\"\nint main(void)\n{\n");
    let mut want = String::new();
    for (cty, size, align, fields) in &layouts {
        src += &format!("\tprintf(\"{cty} size %zu align %zu\\n\", sizeof({cty}), _Alignof({cty}));\n");
        want += &format!("{cty} size {size} align {align}\n");
        for (f, off) in fields {
            src += &format!("\tprintf(\"{cty}.{f} %zu\\n\", offsetof({cty}, {f}));\n");
            want += &format!("{cty}.{f} {off}\n");
        }
    }
    for (name, value) in &constants {
        src += &format!("\tprintf(\"{name} %lld\\n\", (long long){name});\n");
        want += &format!("{name} {value}\n");
    }
    src += "\treturn 0;\n}\n";

    let dir = common::TempDir::new("layout-cc");
    let c_file = dir.path().join("layout.c");
    let exe = dir.path().join("layout");
    std::fs::write(&c_file, src).unwrap();
    let built = Command::new(&cc)
        .arg("-std=c11")
        .arg("-I")
        .arg(&include)
        .arg(&c_file)
        .arg("-o")
        .arg(&exe)
        .status();
    match built {
        Ok(st) if st.success() => {}
        Ok(st) => panic!("{cc} failed on the layout probe: {st}"),
        Err(e) => {
            eprintln!("layout_matches_c_compiler: cannot run {cc} ({e}); skipped");
            return;
        }
    }
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    let got = String::from_utf8(out.stdout).unwrap();
    for (g, w) in got.lines().zip(want.lines()) {
        assert_eq!(g, w, "C says `{g}`, ffi.rs says `{w}`");
    }
    assert_eq!(got.lines().count(), want.lines().count());
}
