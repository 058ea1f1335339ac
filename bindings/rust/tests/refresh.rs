//! Db::refresh (kv_refresh(3)): a read-only handle follows its writer.

mod common;

use libkv::{Db, ErrorKind, Options};

fn reader(dir: &common::TempDir) -> Db {
    Db::open(dir.store(), &Options::new().read_only(true)).unwrap()
}

#[test]
fn reader_sees_writes_after_refresh_only() {
    let d = common::TempDir::new("rf-append");
    let w = Db::open(d.store(), &common::opts().max_file_size(4096)).unwrap();
    w.put(b"a", b"1").unwrap();
    w.put(b"b", b"2").unwrap();
    let r = reader(&d);
    w.put(b"a", b"1b").unwrap();
    w.delete(b"b").unwrap();
    for i in 0..200 {
        w.put(format!("k{i:03}"), format!("v{i}")).unwrap();
    }
    assert_eq!(r.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(r.get(b"k000").unwrap(), None);
    r.refresh().unwrap();
    assert_eq!(r.get(b"a").unwrap().as_deref(), Some(&b"1b"[..]));
    assert_eq!(r.get(b"b").unwrap(), None);
    assert_eq!(r.get(b"k199").unwrap().as_deref(), Some(&b"v199"[..]));
    assert_eq!(r.digest().unwrap(), w.digest().unwrap());
}

#[test]
fn refresh_after_compaction_deleted_the_files() {
    let d = common::TempDir::new("rf-compact");
    let w = Db::open(d.store(), &common::opts().max_file_size(4096)).unwrap();
    for v in 0..3 {
        for i in 0..200 {
            w.put(format!("k{i:03}"), format!("v{v}")).unwrap();
        }
    }
    let r = reader(&d);
    w.compact().unwrap();
    w.put(b"new", b"x").unwrap();
    r.refresh().unwrap();
    assert_eq!(r.digest().unwrap(), w.digest().unwrap());
    assert_eq!(r.get(b"k007").unwrap().as_deref(), Some(&b"v2"[..]));
    assert_eq!(r.stats().unwrap().segments, w.stats().unwrap().segments);
}

#[test]
fn refresh_of_a_writer_is_refused() {
    let d = common::TempDir::new("rf-writer");
    let w = Db::open(d.store(), &common::opts()).unwrap();
    w.put(b"a", b"1").unwrap();
    let e = w.refresh().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("KV_RDONLY"), "{e}");
    assert_eq!(w.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
}
