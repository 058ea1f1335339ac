//! A model-based random test (fixed seed, ~10^4 operations with reopens and
//! compactions) and a multi-threaded test sharing one `Arc<Db>`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{Excluded, Included, Unbounded};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Rng, TempDir};
use libkv::{Batch, Db, Expiry, Options, SyncMode};

/// key -> (value, written with a TTL)
type Model = BTreeMap<Vec<u8>, (Vec<u8>, bool)>;

const TTL: Duration = Duration::from_secs(3600); // never reached in the test

fn open(dir: &TempDir, round: u32) -> Db {
    // Vary the options from one reopen to the next.
    let sync = [SyncMode::Write, SyncMode::None, SyncMode::Every(16), SyncMode::Always][round as usize % 4];
    let mut o = Options::new()
        .create(true)
        .sync(sync)
        .max_file_size(32 * 1024)
        .auto_compact(round % 3 == 2);
    if round % 2 == 1 {
        o = o.compress(32);
    }
    Db::open(dir.store(), &o).unwrap_or_else(|e| panic!("open round {round}: {e}"))
}

fn check_all(db: &Db, m: &Model, when: &str) {
    let got: Vec<(Vec<u8>, Vec<u8>)> = db.iter().page_size(37).map(|r| r.unwrap()).collect();
    let want: Vec<(Vec<u8>, Vec<u8>)> = m.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect();
    assert_eq!(got.len(), want.len(), "{when}: number of keys");
    assert!(got == want, "{when}: contents differ");
    assert_eq!(db.stats().unwrap().live_keys, m.len() as u64, "{when}: live_keys");
    let mut n = 0;
    db.for_each(|k, v| {
        assert_eq!(m.get(k).map(|e| e.0.as_slice()), Some(v), "{when}: for_each pair");
        n += 1;
    })
    .unwrap();
    assert_eq!(n, m.len(), "{when}: for_each count");
}

#[test]
fn random_operations_against_model() {
    let dir = TempDir::new("model");
    let mut rng = Rng::new(0x1234_5678_9abc_def1);
    // 300 keys: random bytes (0x00 and 0xff included), many sharing a
    // prefix, some a prefix of another.
    let mut pool = BTreeSet::new();
    while pool.len() < 300 {
        let mut k = match rng.below(3) {
            0 => b"p:".to_vec(),
            1 => vec![0x00],
            _ => Vec::new(),
        };
        let n = 1 + rng.below(12) as usize;
        k.extend(rng.bytes(n));
        if rng.below(10) == 0 {
            let extra = rng.bytes(2);
            pool.insert([k.as_slice(), &extra].concat());
        }
        pool.insert(k);
    }
    let pool: Vec<Vec<u8>> = pool.into_iter().collect();
    let value = |rng: &mut Rng| -> Vec<u8> {
        let n = match rng.below(10) {
            0 => 0,
            1 => 2000 + rng.below(3000) as usize,
            _ => rng.below(200) as usize,
        };
        if rng.below(2) == 0 {
            rng.bytes(n)
        } else {
            vec![b'z'; n] // compressible
        }
    };

    let mut m = Model::new();
    let mut round = 0;
    let mut db = open(&dir, round);
    let (mut reopens, mut compactions, mut freed) = (0, 0, 0);
    for op in 1..=10_000u32 {
        let k = pool[rng.below(pool.len() as u64) as usize].clone();
        match rng.below(100) {
            0..=29 => {
                let v = value(&mut rng);
                db.put(&k, &v).unwrap();
                m.insert(k, (v, false));
            }
            30..=34 => {
                let v = value(&mut rng);
                db.put_ttl(&k, &v, TTL).unwrap();
                m.insert(k, (v, true));
            }
            35..=49 => {
                assert_eq!(db.delete(&k).unwrap(), m.remove(&k).is_some(), "op {op}: delete");
            }
            50..=69 => {
                assert_eq!(db.get(&k).unwrap(), m.get(&k).map(|e| e.0.clone()), "op {op}: get");
            }
            70..=74 => {
                assert_eq!(db.exists(&k).unwrap(), m.contains_key(&k), "op {op}: exists");
                let mut buf = [0u8; 64];
                let want = m.get(&k).map(|e| e.0.len());
                let got = db.get_into(&k, &mut buf).unwrap();
                assert_eq!(got, want, "op {op}: get_into length");
                if let Some(n) = got.filter(|&n| n <= buf.len()) {
                    assert_eq!(&buf[..n], m[&k].0.as_slice());
                }
            }
            75..=78 => {
                let got = db.expiry(&k).unwrap();
                match m.get(&k) {
                    None => assert_eq!(got, None, "op {op}: expiry of absent key"),
                    Some((_, false)) => assert_eq!(got, Some(Expiry::Never), "op {op}"),
                    Some((_, true)) => assert!(matches!(got, Some(Expiry::At(_))), "op {op}: {got:?}"),
                }
            }
            79..=89 => {
                let mut b = Batch::new();
                let mut staged = m.clone();
                for _ in 0..1 + rng.below(8) {
                    let k = pool[rng.below(pool.len() as u64) as usize].clone();
                    match rng.below(4) {
                        0 => {
                            b.delete(&k).unwrap();
                            staged.remove(&k);
                        }
                        1 => {
                            let v = value(&mut rng);
                            b.put_ttl(&k, &v, TTL).unwrap();
                            staged.insert(k, (v, true));
                        }
                        _ => {
                            let v = value(&mut rng);
                            b.put(&k, &v).unwrap();
                            staged.insert(k, (v, false));
                        }
                    }
                }
                db.write(&b).unwrap();
                m = staged;
            }
            _ => {
                let bound = |rng: &mut Rng| {
                    let k = pool[rng.below(pool.len() as u64) as usize].clone();
                    match rng.below(3) {
                        0 => Unbounded,
                        1 => Included(k),
                        _ => Excluded(k),
                    }
                };
                let (lo, hi) = (bound(&mut rng), bound(&mut rng));
                let limit = rng.below(40) as usize;
                let prefix: &[u8] = [&b""[..], b"p:", b"\0"][rng.below(3) as usize];
                // BTreeMap::range panics on an inverted range; the answer
                // there is empty.
                let inverted = match (&lo, &hi) {
                    (Excluded(a), Excluded(b)) => a >= b,
                    (Included(a) | Excluded(a), Included(b) | Excluded(b)) => a > b,
                    _ => false,
                };
                let mut want: Vec<(Vec<u8>, Vec<u8>)> = if inverted {
                    Vec::new()
                } else {
                    m.range((lo.clone(), hi.clone()))
                        .filter(|(k, _)| k.starts_with(prefix))
                        .map(|(k, (v, _))| (k.clone(), v.clone()))
                        .collect()
                };
                let mut scan = db.scan((lo, hi)).prefix(prefix).page_size(1 + rng.below(16) as usize);
                if limit > 0 {
                    want.truncate(limit);
                    scan = scan.limit(limit);
                }
                let got: Vec<_> = scan.map(|r| r.unwrap()).collect();
                assert_eq!(got, want, "op {op}: scan");
            }
        }

        if op % 1000 == 0 {
            db.close().unwrap();
            round += 1;
            reopens += 1;
            db = open(&dir, round);
            check_all(&db, &m, &format!("after reopen {round} (op {op})"));
        }
        if op % 1500 == 750 {
            let c = db.compact().unwrap();
            compactions += 1;
            freed += c.bytes_freed;
            let v = db.verify().unwrap();
            assert_eq!(v.bad_ranges, 0);
            check_all(&db, &m, &format!("after compaction (op {op})"));
        }
    }
    assert_eq!(reopens, 10);
    assert!(compactions >= 6);
    assert!(freed > 0, "compaction reclaimed nothing in 10^4 random writes");
    db.close().unwrap();
    let db = Db::open(dir.store(), &Options::new().read_only(true)).unwrap();
    check_all(&db, &m, "final read-only open");
}

/// The value stored under a key: a function of the key alone, so a reader
/// can check whatever it sees.
fn value_of(key: &[u8]) -> Vec<u8> {
    let h = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let len = (h % 300) as usize;
    (0..len).map(|i| (h >> (i % 8 * 8)) as u8 ^ i as u8).collect()
}

#[test]
fn threads_share_one_db() {
    const WRITERS: u32 = 4;
    const READERS: u32 = 3;
    const PER_WRITER: u32 = 1500;

    let dir = TempDir::new("threads");
    let o = Options::new().create(true).max_file_size(64 * 1024).auto_compact(true);
    let db = Arc::new(Db::open(dir.store(), &o).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));

    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                // What this writer has had acknowledged: the final state of
                // its own keys.
                let mut mine = BTreeMap::new();
                let key = |i: u32| format!("w{t}:{i:05}").into_bytes();
                let mut i = 0;
                while i < PER_WRITER {
                    if i % 10 == 0 {
                        let mut b = Batch::new();
                        for j in i..i + 5 {
                            b.put(key(j), value_of(&key(j))).unwrap();
                        }
                        db.write(&b).unwrap();
                        for j in i..i + 5 {
                            mine.insert(key(j), value_of(&key(j)));
                        }
                        i += 5;
                    } else {
                        db.put(key(i), value_of(&key(i))).unwrap();
                        mine.insert(key(i), value_of(&key(i)));
                        i += 1;
                    }
                    if i % 7 == 0 {
                        let gone = key(i - 3);
                        assert!(db.delete(&gone).unwrap());
                        mine.remove(&gone);
                    }
                }
                mine
            })
        })
        .collect();

    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (db, done, reads) = (Arc::clone(&db), Arc::clone(&done), Arc::clone(&reads));
            std::thread::spawn(move || {
                let mut rng = Rng::new(99 + u64::from(r));
                while !done.load(Ordering::Acquire) {
                    let t = rng.below(u64::from(WRITERS));
                    let key = format!("w{t}:{:05}", rng.below(u64::from(PER_WRITER))).into_bytes();
                    if let Some(v) = db.get(&key).unwrap() {
                        assert_eq!(v, value_of(&key), "torn or wrong value");
                    }
                    // A short scan of one writer's keys: ordered, and every
                    // value whole.
                    let mut last: Option<Vec<u8>> = None;
                    for pair in db.scan((Included(key.clone()), Unbounded)).prefix(format!("w{t}:")).limit(50).page_size(16) {
                        let (k, v) = pair.unwrap();
                        assert_eq!(v, value_of(&k));
                        assert!(last.as_ref().map_or(true, |l| *l < k));
                        last = Some(k);
                    }
                    if r == 0 && rng.below(50) == 0 {
                        db.stats().unwrap();
                        db.compact().unwrap();
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let mut expected = BTreeMap::new();
    for w in writers {
        expected.extend(w.join().expect("writer panicked"));
    }
    done.store(true, Ordering::Release);
    for r in readers {
        r.join().expect("reader panicked");
    }
    assert!(reads.load(Ordering::Relaxed) > 0);

    let check = |db: &Db, when: &str| {
        for (k, v) in &expected {
            assert_eq!(db.get(k).unwrap().as_ref(), Some(v), "{when}: {:?}", String::from_utf8_lossy(k));
        }
        assert_eq!(db.stats().unwrap().live_keys, expected.len() as u64, "{when}");
        assert_eq!(db.iter().count(), expected.len(), "{when}");
    };
    check(&db, "after the threads");
    let db = Arc::try_unwrap(db).expect("all clones dropped");
    db.close().unwrap();
    let db = Db::open(dir.store(), &Options::new()).unwrap();
    check(&db, "after reopen");
    db.verify().unwrap();
}
