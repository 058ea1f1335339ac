//! Db::digest, Db::digest_buckets, Db::digest_for_each (kv_digest(3)).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::mem::{offset_of, size_of};

use libkv::{ffi, Db, Digest, ErrorKind};

fn items(n: usize) -> BTreeMap<Vec<u8>, Vec<u8>> {
    (0..n).map(|i| (format!("key{i:04}").into_bytes(), format!("v{i}").repeat(1 + i % 40).into_bytes())).collect()
}

#[test]
fn same_pairs_same_digest_whatever_the_history() {
    let (da, db_) = (common::TempDir::new("dg-a"), common::TempDir::new("dg-b"));
    let a = Db::open(da.store(), &common::opts().compress(64).max_file_size(4096)).unwrap();
    let b = Db::open(db_.store(), &common::opts()).unwrap();
    let it = items(300);
    for k in it.keys().rev() {
        a.put(k, b"old").unwrap();
    }
    a.put(b"gone", b"x").unwrap();
    for (k, v) in &it {
        a.put(k, v).unwrap();
        b.put(k, v).unwrap();
    }
    a.delete(b"gone").unwrap();
    a.compact().unwrap();
    let (x, y) = (a.digest().unwrap(), b.digest().unwrap());
    assert_eq!(x, y);
    assert_eq!(x.keys, 300);
    assert_eq!((x.first, x.last), (0, u64::MAX));
    b.put(b"key0007", b"other").unwrap();
    assert_ne!(b.digest().unwrap().value, x.value);
}

#[test]
fn empty_store_digest_is_zero() {
    let d = common::TempDir::new("dg-empty");
    let db = Db::open(d.store(), &common::opts()).unwrap();
    assert_eq!(db.digest().unwrap(), Digest { first: 0, last: u64::MAX, ..Default::default() });
}

#[test]
fn buckets_add_up_and_drill_down_finds_the_key() {
    let (da, db_) = (common::TempDir::new("dg-c"), common::TempDir::new("dg-d"));
    let a = Db::open(da.store(), &common::opts()).unwrap();
    let b = Db::open(db_.store(), &common::opts()).unwrap();
    for (k, v) in &items(2000) {
        a.put(k, v).unwrap();
        b.put(k, v).unwrap();
    }
    b.put(b"key1234", b"changed").unwrap();
    b.put(b"only-b", b"1").unwrap();

    let whole = a.digest().unwrap();
    let bk = a.digest_buckets(0, u64::MAX, 7).unwrap();
    assert_eq!(bk.iter().fold(0u128, |s, d| s.wrapping_add(d.value)), whole.value);
    assert_eq!(bk.iter().map(|d| d.keys).sum::<u64>(), whole.keys);
    for w in bk.windows(2) {
        assert_eq!(w[1].first, w[0].last + 1);
    }

    let mut found = BTreeSet::new();
    let mut ranges = vec![(0u64, u64::MAX)];
    let mut rounds = 0;
    while !ranges.is_empty() {
        rounds += 1;
        let mut next = Vec::new();
        for (first, last) in ranges {
            let (x, y) = (a.digest_buckets(first, last, 16).unwrap(), b.digest_buckets(first, last, 16).unwrap());
            for (p, q) in x.iter().zip(&y) {
                if p == q {
                    continue;
                }
                if p.keys > 16 || q.keys > 16 {
                    next.push((p.first, p.last));
                    continue;
                }
                let (mut ia, mut ib) = (BTreeMap::new(), BTreeMap::new());
                a.digest_for_each(p.first, p.last, |k, v| {
                    ia.insert(k.to_vec(), v.to_vec());
                })
                .unwrap();
                b.digest_for_each(q.first, q.last, |k, v| {
                    ib.insert(k.to_vec(), v.to_vec());
                })
                .unwrap();
                assert_eq!(ia.len() as u64, p.keys);
                for k in ia.keys().chain(ib.keys()) {
                    if ia.get(k) != ib.get(k) {
                        found.insert(k.clone());
                    }
                }
            }
        }
        ranges = next;
    }
    let want: BTreeSet<Vec<u8>> = [b"key1234".to_vec(), b"only-b".to_vec()].into();
    assert_eq!(found, want);
    assert!(rounds <= 3, "{rounds} rounds");
}

#[test]
fn bad_arguments_are_invalid() {
    let d = common::TempDir::new("dg-bad");
    let db = Db::open(d.store(), &common::opts()).unwrap();
    for (first, last, n) in [(0, u64::MAX, 0), (0, u64::MAX, libkv::DIGEST_MAX_BUCKETS + 1), (10, 9, 1), (5, 6, 3)] {
        let e = db.digest_buckets(first, last, n).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{first} {last} {n}");
    }
    let e = db.digest_for_each(2, 1, |_, _| {}).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn digest_struct_layout_is_fixed() {
    // kv.h: six uint64_t fields, in this order, used in arrays.
    assert_eq!(size_of::<ffi::kv_digest>(), 48);
    assert_eq!(
        [
            offset_of!(ffi::kv_digest, lo),
            offset_of!(ffi::kv_digest, hi),
            offset_of!(ffi::kv_digest, keys),
            offset_of!(ffi::kv_digest, bytes),
            offset_of!(ffi::kv_digest, first),
            offset_of!(ffi::kv_digest, last),
        ],
        [0, 8, 16, 24, 32, 40]
    );
}
