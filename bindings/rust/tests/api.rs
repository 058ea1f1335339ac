//! The safe API, call by call: open errors, single keys, binary keys and
//! limits, TTLs, batches, callbacks and panics, figures.

mod common;

use std::ops::ControlFlow;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, SystemTime};

use common::{opts, TempDir};
use libkv::{Batch, Db, ErrorKind, Expiry, Options, SyncMode};

#[test]
fn open_missing_store_is_enoent() {
    let dir = TempDir::new("enoent");
    let err = Db::open(dir.store(), &Options::new()).unwrap_err();
    assert_eq!(err.code, -10);
    assert_eq!(err.kind(), ErrorKind::NoStore);
    assert_eq!(err.description(), libkv::strerror(-10));
    // Display has the static name, the detail and the code.
    let shown = err.to_string();
    assert!(shown.contains("(-10)"), "{shown}");
    assert!(!dir.store().exists(), "a failed open must not create the store");
    // Read-only open of a missing store fails the same way.
    let err = Db::open(dir.store(), &Options::new().read_only(true)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoStore);
}

#[test]
fn open_create_exclusive_and_bad_options() {
    let dir = TempDir::new("create");
    let db = Db::open(dir.store(), &opts().exclusive(true)).unwrap();
    assert_eq!(db.path(), dir.store().as_path());
    db.close().unwrap();
    let err = Db::open(dir.store(), &opts().exclusive(true)).unwrap_err();
    assert_eq!((err.code, err.kind()), (-9, ErrorKind::Exists));
    // Without create, an existing store opens.
    Db::open(dir.store(), &Options::new()).unwrap().close().unwrap();

    for bad in [
        Options::new().read_only(true).create(true),
        Options::new().exclusive(true),
        opts().compact_dead_pct(101),
        opts().max_value_size(libkv::MAX_VALUE + 1),
        opts().file_mode(0o10000),
        opts().expected_keys(u64::MAX),
    ] {
        let err = Db::open(dir.store(), &bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}: {err}");
        assert!(!err.message.is_empty(), "kv_errmsg detail expected for {bad:?}");
    }
    // expected_keys sizes the index at open: a table of 8-byte slots for
    // 100,000 keys is at least 1 MB, where a store opened without it holds
    // a few KB.
    let db = Db::open(dir.store(), &opts().expected_keys(100_000)).unwrap();
    assert!(db.stats().unwrap().keydir_bytes >= 1_000_000);
    db.close().unwrap();
    let db = Db::open(dir.store(), &opts()).unwrap();
    assert!(db.stats().unwrap().keydir_bytes < 1_000_000);
    db.close().unwrap();
    let err = Db::open(dir.path().join("a\0b"), &opts()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message.contains("NUL"), "{err}");
}

#[test]
fn second_writer_is_locked_readers_are_not() {
    let dir = TempDir::new("locked");
    let db = Db::open(dir.store(), &opts()).unwrap();
    db.put("k", "v1").unwrap();
    let err = Db::open(dir.store(), &opts()).unwrap_err();
    assert_eq!((err.code, err.kind()), (-6, ErrorKind::Locked));

    // A read-only handle coexists and sees the data as of its open.
    let ro = Db::open(dir.store(), &Options::new().read_only(true)).unwrap();
    assert_eq!(ro.get("k").unwrap().as_deref(), Some(&b"v1"[..]));
    db.put("k", "v2").unwrap();
    assert_eq!(ro.get("k").unwrap().as_deref(), Some(&b"v1"[..]));
    for err in [
        ro.put("k", "x").unwrap_err(),
        ro.put_ttl("k", "x", Duration::from_secs(1)).unwrap_err(),
        ro.delete("k").unwrap_err(),
        ro.write(&{
            let mut b = Batch::new();
            b.put("k", "x").unwrap();
            b
        })
        .unwrap_err(),
        ro.compact().unwrap_err(),
    ] {
        assert_eq!((err.code, err.kind()), (-7, ErrorKind::ReadOnly), "{err}");
    }
    assert!(ro.verify().is_ok());
    ro.close().unwrap();

    // Once the writer is gone, a new writer may open.
    drop(db);
    let db = Db::open(dir.store(), &opts()).unwrap();
    assert_eq!(db.get("k").unwrap().as_deref(), Some(&b"v2"[..]));
}

#[test]
fn put_get_delete_exists_across_reopen() {
    let dir = TempDir::new("basic");
    let db = Db::open(dir.store(), &opts()).unwrap();
    assert_eq!(db.get("missing").unwrap(), None);
    assert!(!db.exists("missing").unwrap());
    assert!(!db.delete("missing").unwrap(), "delete of an absent key is false");

    db.put("alpha", "1").unwrap();
    db.put(String::from("beta"), vec![2u8; 1000]).unwrap();
    db.put("empty", "").unwrap();
    db.put("gone", "x").unwrap();
    assert!(db.delete("gone").unwrap());
    assert!(!db.delete("gone").unwrap());
    db.put("alpha", "one").unwrap(); // overwrite

    let check = |db: &Db| {
        assert_eq!(db.get("alpha").unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(db.get("beta").unwrap(), Some(vec![2u8; 1000]));
        assert_eq!(db.get("empty").unwrap(), Some(Vec::new()));
        assert!(db.exists("empty").unwrap());
        assert_eq!(db.get("gone").unwrap(), None);
        assert!(!db.exists("gone").unwrap());
        assert_eq!(db.get_with("beta", |v| v.len()).unwrap(), Some(1000));
        assert_eq!(db.get_with("gone", |v| v.len()).unwrap(), None);
    };
    check(&db);
    db.close().unwrap();
    let db = Db::open(dir.store(), &Options::new()).unwrap();
    check(&db);
    assert_eq!(db.stats().unwrap().live_keys, 3);
}

#[test]
fn get_into_reports_size_needed() {
    let dir = TempDir::new("into");
    let db = Db::open(dir.store(), &opts()).unwrap();
    db.put("k", "hello world").unwrap();
    let mut buf = [0xAAu8; 64];
    assert_eq!(db.get_into("k", &mut buf).unwrap(), Some(11));
    assert_eq!(&buf[..11], b"hello world");
    let mut small = [0xAAu8; 4];
    assert_eq!(db.get_into("k", &mut small).unwrap(), Some(11));
    assert_eq!(small, [0xAA; 4], "buffer untouched when too small");
    assert_eq!(db.get_into("k", &mut []).unwrap(), Some(11));
    assert_eq!(db.get_into("nope", &mut buf).unwrap(), None);
}

#[test]
fn binary_keys_and_limits() {
    let dir = TempDir::new("binary");
    let db = Db::open(dir.store(), &opts().max_value_size(4096)).unwrap();
    let keys: Vec<Vec<u8>> = vec![
        vec![0x00],
        vec![0xff],
        vec![0x00, 0x00],
        vec![0xff, 0x00, 0xff],
        b"a\0b".to_vec(),
        (0..=255u8).collect(),
        vec![0x5a; libkv::MAX_KEY],
    ];
    for (i, k) in keys.iter().enumerate() {
        db.put(k, [i as u8, 0, 0xff]).unwrap();
    }
    // Too long a key, an empty key, too big a value.
    let err = db.put(vec![1u8; libkv::MAX_KEY + 1], "v").unwrap_err();
    assert_eq!((err.code, err.kind()), (-8, ErrorKind::TooBig));
    assert_eq!(db.get(vec![1u8; libkv::MAX_KEY + 1]).unwrap_err().kind(), ErrorKind::TooBig);
    assert_eq!(db.put("", "v").unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(db.get("").unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(db.put("big", vec![0u8; 4097]).unwrap_err().kind(), ErrorKind::TooBig);
    db.put("big", vec![7u8; 4096]).unwrap();

    db.close().unwrap();
    let db = Db::open(dir.store(), &Options::new()).unwrap();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(db.get(k).unwrap(), Some(vec![i as u8, 0, 0xff]), "key #{i}");
    }
    // In key order, byte-wise: a key that is a prefix of another comes first.
    let mut sorted = keys.clone();
    sorted.push(b"big".to_vec());
    sorted.sort();
    let scanned: Vec<Vec<u8>> = db.iter().map(|r| r.unwrap().0).collect();
    assert_eq!(scanned, sorted);
}

#[test]
fn ttl_and_expiry() {
    let dir = TempDir::new("ttl");
    let db = Db::open(dir.store(), &opts()).unwrap();
    let before = SystemTime::now();
    db.put_ttl("hour", "v", Duration::from_secs(3600)).unwrap();
    db.put("plain", "v").unwrap();
    db.put_ttl("short", "v", Duration::from_millis(40)).unwrap();
    db.put_ttl("sub-ms", "v", Duration::from_micros(10)).unwrap(); // rounds up to 1 ms

    match db.expiry("hour").unwrap() {
        Some(e @ Expiry::At(t)) => {
            let lo = before + Duration::from_secs(3600) - Duration::from_millis(1);
            let hi = SystemTime::now() + Duration::from_secs(3600) + Duration::from_millis(1);
            assert!(t >= lo && t <= hi, "{t:?} not in [{lo:?}, {hi:?}]");
            assert!(e.unix_ms().unwrap() > 1_600_000_000_000);
        }
        other => panic!("expected an expiry, got {other:?}"),
    }
    assert_eq!(db.expiry("plain").unwrap(), Some(Expiry::Never));
    assert_eq!(Expiry::Never.unix_ms(), None);
    assert_eq!(db.expiry("missing").unwrap(), None);
    for bad in [Duration::ZERO, Duration::MAX] {
        assert_eq!(db.put_ttl("bad", "v", bad).unwrap_err().kind(), ErrorKind::InvalidArgument, "{bad:?}");
    }
    assert!(!db.exists("bad").unwrap());

    std::thread::sleep(Duration::from_millis(120));
    for k in ["short", "sub-ms"] {
        assert_eq!(db.get(k).unwrap(), None, "{k} should have expired");
        assert!(!db.exists(k).unwrap());
        assert_eq!(db.expiry(k).unwrap(), None);
        assert!(!db.delete(k).unwrap());
    }
    assert!(db.get("hour").unwrap().is_some());

    // A plain put replaces the value together with its expiry.
    db.put("hour", "w").unwrap();
    assert_eq!(db.expiry("hour").unwrap(), Some(Expiry::Never));
    db.put_ttl("hour", "x", Duration::from_secs(60)).unwrap();

    let st = db.stats().unwrap();
    assert_eq!(st.live_keys, 2, "{st:?}");
    assert!(st.dead_bytes > 0);

    // Expiry survives a reopen.
    let at = db.expiry("hour").unwrap();
    db.close().unwrap();
    let db = Db::open(dir.store(), &Options::new()).unwrap();
    assert_eq!(db.expiry("hour").unwrap(), at);
    assert_eq!(db.get("short").unwrap(), None);
}

#[test]
fn batch_is_atomic() {
    let dir = TempDir::new("batch");
    let db = Db::open(dir.store(), &opts().max_value_size(100)).unwrap();
    db.put("old", "o").unwrap();

    let mut b = Batch::new();
    assert!(b.is_empty());
    b.put("a", "1").unwrap();
    b.put("b", "2").unwrap();
    b.put_ttl("t", "3", Duration::from_secs(600)).unwrap();
    b.delete("old").unwrap();
    b.delete("never-was").unwrap(); // a harmless tombstone
    assert_eq!(b.len(), 5);
    // Refused operations are not added.
    assert_eq!(b.put("", "x").unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(b.put_ttl("k", "x", Duration::ZERO).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(b.delete(vec![0u8; libkv::MAX_KEY + 1]).unwrap_err().kind(), ErrorKind::TooBig);
    assert_eq!(b.len(), 5);
    assert!(format!("{b:?}").contains('5'));

    db.write(&b).unwrap();
    assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get("b").unwrap().as_deref(), Some(&b"2"[..]));
    assert!(matches!(db.expiry("t").unwrap(), Some(Expiry::At(_))));
    assert_eq!(db.get("old").unwrap(), None);
    assert_eq!(b.len(), 5, "kv_write does not consume the batch");

    // All or nothing: a value over this store's max_value_size fails the
    // whole batch at write time.
    b.clear();
    assert!(b.is_empty());
    b.put("c", "3").unwrap();
    b.delete("a").unwrap();
    b.put("huge", vec![0u8; 101]).unwrap(); // under KV_MAX_VALUE: accepted here
    let lsn = db.stats().unwrap().last_lsn;
    let err = db.write(&b).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooBig);
    assert_eq!(db.get("c").unwrap(), None);
    assert!(db.exists("a").unwrap());
    assert_eq!(db.stats().unwrap().last_lsn, lsn, "nothing written");

    // An empty batch is a no-op.
    db.write(&Batch::default()).unwrap();

    // Batches move between threads (Send).
    let mut b = Batch::new();
    b.put("from-thread", "yes").unwrap();
    let b = std::thread::spawn(move || b).join().unwrap();
    db.write(&b).unwrap();
    db.close().unwrap();
    let db = Db::open(dir.store(), &Options::new()).unwrap();
    assert_eq!(db.get("from-thread").unwrap().as_deref(), Some(&b"yes"[..]));
    assert_eq!(db.get("b").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(db.get("old").unwrap(), None);
}

#[test]
fn for_each_visits_stops_and_reenters() {
    let dir = TempDir::new("foreach");
    let db = Db::open(dir.store(), &opts()).unwrap();
    for i in 0..100u32 {
        db.put(i.to_be_bytes(), i.to_le_bytes()).unwrap();
    }
    let mut seen = Vec::new();
    db.for_each(|k, v| {
        let k = u32::from_be_bytes(k.try_into().unwrap());
        assert_eq!(v, k.to_le_bytes());
        seen.push(k);
    })
    .unwrap();
    seen.sort();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());

    let mut n = 0;
    let r = db
        .try_for_each(|k, _| {
            n += 1;
            if n == 10 {
                ControlFlow::Break(k.to_vec())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(n, 10);
    assert_eq!(r.map(|k| k.len()), Some(4));
    assert_eq!(db.try_for_each(|_, _| ControlFlow::<()>::Continue(())).unwrap(), None);

    // The closure may call back into the store: delete the odd keys.
    db.for_each(|k, _| {
        if k[3] % 2 == 1 {
            assert!(db.delete(k).unwrap());
        }
    })
    .unwrap();
    assert_eq!(db.stats().unwrap().live_keys, 50);

    // Scan::visit: no copy, in order, with a limit.
    let mut keys = Vec::new();
    let r = db
        .iter()
        .limit(5)
        .visit(|k, _| {
            keys.push(k[3]);
            ControlFlow::<()>::Continue(())
        })
        .unwrap();
    assert_eq!((r, keys), (None, vec![0, 2, 4, 6, 8]));
    let r = db.scan_prefix([0, 0, 0]).visit(|k, _| if k[3] == 40 { ControlFlow::Break(k[3]) } else { ControlFlow::Continue(()) });
    assert_eq!(r.unwrap(), Some(40));
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[test]
fn panic_in_callback_is_resumed_after_the_c_call() {
    let dir = TempDir::new("panic");
    let db = Db::open(dir.store(), &opts()).unwrap();
    for i in 0..50u8 {
        db.put([i], [i]).unwrap();
    }
    // (The panics below print their message through the default hook;
    // libtest captures it.)
    let mut calls = 0;
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        db.for_each(|_, _| {
            calls += 1;
            if calls == 3 {
                panic!("boom in for_each");
            }
        })
    }));
    assert_eq!(panic_text(r.unwrap_err()), "boom in for_each");
    assert_eq!(calls, 3, "the iteration stopped at the panic");

    let r = panic::catch_unwind(AssertUnwindSafe(|| db.get_with([7u8], |_| -> usize { panic!("boom in get_with") })));
    assert_eq!(panic_text(r.unwrap_err()), "boom in get_with");

    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        db.iter().visit(|k, _| -> ControlFlow<()> {
            if k == [9] {
                panic!("boom in visit {}", k[0])
            }
            ControlFlow::Continue(())
        })
    }));
    assert_eq!(panic_text(r.unwrap_err()), "boom in visit 9");

    // The handle is intact and usable; nothing is locked.
    db.put("after", "panic").unwrap();
    let mut n = 0;
    db.for_each(|_, _| n += 1).unwrap();
    assert_eq!(n, 51);
    assert_eq!(db.iter().count(), 51);
    db.close().unwrap();
}

#[test]
fn stats_segments_compact_verify() {
    let dir = TempDir::new("figures");
    let o = opts().max_file_size(16 * 1024).sync(SyncMode::None);
    let db = Db::open(dir.store(), &o).unwrap();
    let st = db.stats().unwrap();
    assert_eq!((st.live_keys, st.live_bytes, st.dead_bytes), (0, 0, 0));

    // 200 keys written 5 times each: 4 of 5 records dead.
    for round in 0..5u8 {
        for i in 0..200u32 {
            db.put(format!("key{i:04}"), vec![round; 100]).unwrap();
        }
    }
    for i in 0..50u32 {
        assert!(db.delete(format!("key{i:04}")).unwrap());
    }
    let st = db.stats().unwrap();
    assert_eq!(st.live_keys, 150);
    assert!(st.live_bytes >= 150 * 100, "{st:?}");
    assert!(st.dead_bytes > st.live_bytes, "{st:?}");
    assert_eq!(st.sync_mode, libkv::ffi::KV_SYNC_NONE);
    assert!(st.last_lsn >= 1050);
    assert!(st.keydir_bytes > 0);
    let segs = db.segments().unwrap();
    assert!(segs.len() > 3, "{} segments", segs.len());
    assert_eq!(segs.len() as u64, st.segments);
    assert_eq!(segs.iter().filter(|s| s.active).count(), 1);
    assert_eq!(segs.iter().map(|s| s.bytes).sum::<u64>(), st.disk_bytes);
    assert!(segs.windows(2).all(|w| w[0].seq < w[1].seq), "oldest first");

    let v = db.verify().unwrap();
    assert_eq!(v.segments, st.segments);
    assert!(v.records >= 1050, "{v:?}");
    assert_eq!((v.bad_ranges, v.bad_bytes), (0, 0));
    assert!(v.bytes > 0 && v.bytes <= st.disk_bytes);

    let c = db.compact().unwrap();
    assert!(c.segments_in > 0 && c.segments_out > 0, "{c:?}");
    assert!(c.bytes_read > c.bytes_written, "{c:?}");
    assert!(c.bytes_freed > 0, "{c:?}");
    let after = db.stats().unwrap();
    assert_eq!(after.live_keys, 150);
    assert_eq!(after.compactions, 1);
    assert_eq!(after.compaction_freed_bytes, c.bytes_freed);
    assert!(after.disk_bytes < st.disk_bytes, "{after:?}");
    assert!(db.segments().unwrap().iter().any(|s| s.compacted() && s.has_hint()));
    db.verify().unwrap();
    db.close().unwrap();

    let db = Db::open(dir.store(), &Options::new()).unwrap();
    let st = db.stats().unwrap();
    assert_eq!(st.live_keys, 150);
    assert!(st.recovered_hint_segments > 0, "{st:?}");
    for i in 0..200u32 {
        let want = if i < 50 { None } else { Some(vec![4u8; 100]) };
        assert_eq!(db.get(format!("key{i:04}")).unwrap(), want);
    }
}

#[test]
fn compression_and_sync_modes() {
    let dir = TempDir::new("compress");
    for (i, mode) in [
        SyncMode::None,
        SyncMode::Write,
        SyncMode::Every(3),
        SyncMode::Interval(5),
        SyncMode::Always,
    ]
    .into_iter()
    .enumerate()
    {
        let db = Db::open(dir.store(), &opts().sync(mode).compress(64)).unwrap();
        db.put(format!("text{i}"), "abcd".repeat(100)).unwrap();
        db.put(format!("tiny{i}"), "abcd").unwrap();
        db.sync().unwrap();
        assert_eq!(db.get(format!("text{i}")).unwrap(), Some("abcd".repeat(100).into_bytes()));
        let st = db.stats().unwrap();
        assert!(st.compressed_values >= 1, "{mode:?}: {st:?}");
        assert!(st.compression_saved_bytes > 0);
        db.close().unwrap();
    }
    let db = Db::open(dir.store(), &Options::new().read_only(true)).unwrap();
    assert_eq!(db.iter().count(), 10);
}

#[test]
fn verify_finds_damage() {
    let dir = TempDir::new("damage");
    let o = opts().max_file_size(8 * 1024);
    let db = Db::open(dir.store(), &o).unwrap();
    for i in 0..200u32 {
        db.put(format!("key{i:04}"), vec![b'v'; 200]).unwrap();
    }
    let oldest = db.segments().unwrap()[0];
    assert!(!oldest.active);
    db.close().unwrap();

    // Flip one value byte in the middle of the oldest (sealed) segment.
    let seg = dir.store().join(format!("{:016x}.seg", oldest.seq));
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&seg, bytes).unwrap();

    // close() wrote a hint file for each sealed segment, and open loads
    // those without reading records; without it, open reads the segment
    // and refuses the damage.
    std::fs::remove_file(seg.with_extension("hint")).unwrap();
    let err = Db::open(dir.store(), &Options::new()).unwrap_err();
    assert_eq!((err.code, err.kind()), (-5, ErrorKind::Corrupt));
    assert!(err.message.contains(".seg"), "detail names the file: {err}");

    let db = Db::open(dir.store(), &Options::new().read_only(true).salvage(true)).unwrap();
    let st = db.stats().unwrap();
    assert!(st.recovered_skipped_records >= 1, "{st:?}");
    let err = db.verify().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    let (v, r) = db.verify_report();
    assert!(r.is_err());
    assert!(v.bad_ranges >= 1 && v.bad_bytes > 0, "{v:?}");
    assert!(v.records >= 199, "{v:?}");
}

#[test]
fn unordered_store_cannot_scan() {
    let dir = TempDir::new("unordered");
    let db = Db::open(dir.store(), &opts().ordered(false)).unwrap();
    db.put("a", "1").unwrap();
    let got: Vec<_> = db.iter().collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].as_ref().unwrap_err().kind(), ErrorKind::NotSupported);
    // for_each needs no order.
    let mut n = 0;
    db.for_each(|_, _| n += 1).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn error_plumbing() {
    let e = libkv::Error { code: -4, message: "0000000000000001.seg: write: No space left on device".into() };
    assert_eq!(e.kind(), ErrorKind::Io);
    assert_eq!(e.to_string(), "input/output error: 0000000000000001.seg: write: No space left on device (-4)");
    let io: std::io::Error = e.into();
    assert!(io.to_string().contains("No space"));
    let e = libkv::Error { code: -99, message: String::new() };
    assert_eq!(e.kind(), ErrorKind::Other);
    assert_eq!(e.to_string(), "unknown error (-99)");
    for code in -15..=-1 {
        assert_ne!(ErrorKind::from_code(code), ErrorKind::Other, "{code}");
        assert_ne!(libkv::strerror(code), "unknown error");
    }
    fn is_error<E: std::error::Error + Send + Sync + 'static>() {}
    is_error::<libkv::Error>();
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Db>();
    fn send<T: Send>() {}
    send::<Batch>();
}
