//! Ordered scans against a BTreeMap model: ranges with every kind of bound,
//! prefixes, limits, and paging across many pages.

mod common;

use std::collections::BTreeMap;
use std::ops::Bound::{self, Excluded, Included, Unbounded};

use common::{opts, Rng, TempDir};
use libkv::{Db, Scan};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn collect(scan: Scan<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    scan.map(|r| r.expect("scan")).collect()
}

fn model_range(m: &Model, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
    // BTreeMap::range panics on an inverted range; an empty answer is right.
    let inverted = match (lo, hi) {
        (Included(a), Included(b)) => a > b,
        (Included(a), Excluded(b)) | (Excluded(a), Included(b)) => a > b,
        (Excluded(a), Excluded(b)) => a >= b,
        _ => false,
    };
    if inverted {
        return Vec::new();
    }
    m.range::<[u8], _>((lo, hi)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A store and its model with awkward keys: prefixes of each other, 0x00
/// and 0xff bytes, many under a few prefixes.
fn fixture(dir: &TempDir) -> (Db, Model) {
    let db = Db::open(dir.store(), &opts()).unwrap();
    let mut m = Model::new();
    let put = |m: &mut Model, k: Vec<u8>, v: Vec<u8>| {
        db.put(&k, &v).unwrap();
        m.insert(k, v);
    };
    for k in [&b"a"[..], b"ab", b"ab\0", b"ab\0\0", b"abc", b"ab\xff", b"b", b"\0", b"\xff", b"\xff\xff"] {
        put(&mut m, k.to_vec(), [b"v:", k].concat());
    }
    for i in 0..700u32 {
        put(&mut m, format!("user:{i:05}").into_bytes(), i.to_le_bytes().to_vec());
    }
    for i in 0..300u32 {
        put(&mut m, format!("item:{i:05}").into_bytes(), vec![b'x'; (i % 17) as usize]);
    }
    // Some deleted keys, which scans must skip.
    for i in (0..700u32).step_by(7) {
        let k = format!("user:{i:05}").into_bytes();
        assert!(db.delete(&k).unwrap());
        m.remove(&k);
    }
    (db, m)
}

#[test]
fn full_scan_prefix_and_limit() {
    let dir = TempDir::new("scan-basic");
    let (db, m) = fixture(&dir);
    let all: Vec<_> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(collect(db.iter()), all);
    assert_eq!(collect(db.scan(..)), all);

    for prefix in [&b"user:"[..], b"user:001", b"item:", b"ab", b"ab\0", b"\xff", b"zzz", b""] {
        let want: Vec<_> = all.iter().filter(|(k, _)| k.starts_with(prefix)).cloned().collect();
        assert_eq!(collect(db.scan_prefix(prefix)), want, "prefix {prefix:?}");
        for limit in [0, 1, 2, 255, 256, 257, 10_000] {
            let got = collect(db.scan_prefix(prefix).limit(limit));
            assert_eq!(got, want[..limit.min(want.len())], "prefix {prefix:?} limit {limit}");
        }
    }
    // Prefix and range together.
    let got = collect(db.scan(&b"user:00100"[..]..&b"user:00200"[..]).prefix("user:001"));
    let want: Vec<_> = all
        .iter()
        .filter(|(k, _)| k.starts_with(b"user:001") && k.as_slice() >= b"user:00100" && k.as_slice() < b"user:00200")
        .cloned()
        .collect();
    assert_eq!(got, want);
    assert!(!want.is_empty());
}

#[test]
fn ranges_with_every_kind_of_bound() {
    let dir = TempDir::new("scan-range");
    let (db, m) = fixture(&dir);
    let points: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\0".to_vec(),
        b"a".to_vec(),
        b"ab".to_vec(),
        b"ab\0".to_vec(),
        b"ab\0\0".to_vec(),
        b"abc".to_vec(),
        b"b".to_vec(),
        b"item:00150".to_vec(),
        b"user:".to_vec(),
        b"user:00007".to_vec(), // deleted
        b"user:00350".to_vec(),
        b"user:00699".to_vec(),
        b"\xff".to_vec(),
        b"\xff\xff\xff".to_vec(),
    ];
    let bounds = |p: &[u8]| -> Vec<Bound<Vec<u8>>> { vec![Included(p.to_vec()), Excluded(p.to_vec())] };
    let mut checked = 0;
    for lo in points.iter().flat_map(|p| bounds(p)).chain([Unbounded]) {
        for hi in points.iter().flat_map(|p| bounds(p)).chain([Unbounded]) {
            let want = model_range(&m, lo.as_ref().map(|v| v.as_slice()), hi.as_ref().map(|v| v.as_slice()));
            let got = collect(db.scan((lo.clone(), hi.clone())));
            assert_eq!(got, want, "range {lo:?} .. {hi:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 31 * 31);
    // The std range types.
    let r = |v: &[u8]| v.to_vec();
    assert_eq!(collect(db.scan(b"ab"..b"b\0")), model_range(&m, Included(b"ab"), Excluded(b"b\0")));
    assert_eq!(collect(db.scan(r(b"ab")..=r(b"b"))), model_range(&m, Included(b"ab"), Included(b"b")));
    assert_eq!(collect(db.scan("user:00600"..)), model_range(&m, Included(b"user:00600"), Unbounded));
    assert_eq!(collect(db.scan(..="a")), model_range(&m, Unbounded, Included(b"a")));
    assert_eq!(collect(db.scan("b".."a")), vec![]);
}

#[test]
fn paging_across_many_pages() {
    let dir = TempDir::new("scan-pages");
    let (db, m) = fixture(&dir);
    let all: Vec<_> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert!(all.len() > 3 * libkv::DEFAULT_PAGE_SIZE);
    for page in [1, 2, 3, 7, 64, 99, 255, 256, 257, 5000] {
        assert_eq!(collect(db.iter().page_size(page)), all, "page size {page}");
        let want: Vec<_> = all.iter().filter(|(k, _)| k.starts_with(b"user:")).take(333).cloned().collect();
        assert_eq!(collect(db.scan_prefix("user:").page_size(page).limit(333)), want, "page size {page}");
    }

    // A key live for the whole scan is seen exactly once even while other
    // keys are written and deleted between pages.
    let mut seen = Vec::new();
    let mut i = 0u32;
    for pair in db.iter().page_size(10) {
        let (k, _) = pair.unwrap();
        if k.starts_with(b"user:") {
            // Churn: new keys interleaved, and later keys deleted/re-put.
            db.put(format!("user:{:05}~{i}", i % 700), "new").unwrap();
            i += 1;
        }
        seen.push(k);
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "strictly increasing, no repeats");
    for k in m.keys() {
        assert!(seen.binary_search(k).is_ok(), "missed {k:?}");
    }
}

#[test]
fn random_ranges_against_model() {
    let dir = TempDir::new("scan-random");
    let db = Db::open(dir.store(), &opts()).unwrap();
    let mut m = Model::new();
    let mut rng = Rng::new(0x5eed_5ca7);
    // Short keys over a 4-letter alphabet with 0x00 and 0xff: lots of
    // shared prefixes and prefix-of relations.
    let alphabet = [0x00u8, b'a', b'b', 0xff];
    let key = |rng: &mut Rng| -> Vec<u8> {
        let len = 1 + rng.below(4) as usize;
        (0..len).map(|_| alphabet[rng.below(4) as usize]).collect()
    };
    for _ in 0..400 {
        let k = key(&mut rng);
        if rng.below(5) == 0 {
            db.delete(&k).unwrap();
            m.remove(&k);
        } else {
            let n = rng.below(20) as usize;
            let v = rng.bytes(n);
            db.put(&k, &v).unwrap();
            m.insert(k, v);
        }
    }
    for _ in 0..400 {
        let bound = |rng: &mut Rng| match rng.below(3) {
            0 => Unbounded,
            1 => Included(key(rng)),
            _ => Excluded(key(rng)),
        };
        let (lo, hi) = (bound(&mut rng), bound(&mut rng));
        let limit = rng.below(12) as usize;
        let page = 1 + rng.below(5) as usize;
        let prefix = if rng.below(3) == 0 { key(&mut rng)[..1].to_vec() } else { Vec::new() };
        let mut want: Vec<_> = model_range(&m, lo.as_ref().map(|v| v.as_slice()), hi.as_ref().map(|v| v.as_slice()))
            .into_iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .collect();
        let mut scan = db.scan((lo.clone(), hi.clone())).prefix(&prefix).page_size(page);
        if limit > 0 {
            want.truncate(limit);
            scan = scan.limit(limit);
        }
        assert_eq!(collect(scan), want, "{lo:?}..{hi:?} prefix {prefix:?} limit {limit} page {page}");
    }
}
