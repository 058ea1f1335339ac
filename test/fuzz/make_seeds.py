#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (test/fuzz/corpus/*).

The files follow kv-format(5) byte for byte, written here independently of
the library, so the seeds also pin the format: segment 1 is a log segment,
segment 2 a compacted one with its hint file.
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = b"KVSEG\r\n\x1a"


def file_header(seq, kind=1, flags=0):
    h = MAGIC + struct.pack("<IIQI", 1, kind, seq, flags)
    return h + struct.pack("<I", zlib.crc32(h))


def record(key, val, lsn, rtype=1, flags=0, batch_left=0, expire=0):
    body = struct.pack("<BBHIIQQ", rtype, flags, len(key), len(val),
                       batch_left, lsn, expire) + key + val
    return struct.pack("<I", zlib.crc32(body)) + body


def compressed(raw):
    return struct.pack("<I", len(raw)) + zlib.compress(raw, 1)


def hint(seq, entries, seg_size):
    out = file_header(seq, kind=2)
    for (key, vlen, lsn, rtype, flags, off, expire) in entries:
        body = struct.pack("<BBHIIQQQ", rtype, flags, len(key), vlen, 0, off,
                           lsn, expire) + key
        out += struct.pack("<I", zlib.crc32(body)) + body
    out += b"KVHINT\0\0" + struct.pack("<QQI", len(entries), seg_size, 0)
    return out + struct.pack("<I", zlib.crc32(out))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    z = compressed(b"a" * 600)
    write("record", "put", record(b"k", b"hello", 1))
    write("record", "tombstone", record(b"k", b"", 2, rtype=2))
    write("record", "zlib", record(b"big", z, 3, flags=1))
    write("record", "ttl", record(b"t", b"v", 4, expire=1 << 50))

    log = file_header(1)
    log += record(b"k", b"hello", 1)
    log += record(b"a", b"1", 2, batch_left=2)
    log += record(b"b", b"2", 3, batch_left=1)
    log += record(b"k", b"", 4, rtype=2)
    log += record(b"t", b"v", 5, expire=1 << 50)

    comp = file_header(2, flags=1)
    entries, off = [], 32
    for key, val, lsn, rtype, flags in ((b"old", b"x", 1, 1, 0),
                                        (b"big", z, 6, 1, 1),
                                        (b"gone", b"", 7, 2, 0)):
        entries.append((key, len(val), lsn, rtype, flags, off, 0))
        rec = record(key, val, lsn, rtype=rtype, flags=flags)
        comp += rec
        off += len(rec)
    h = hint(2, entries, len(comp))
    write("hint", "three", h)
    write("store", "log-only", log)
    write("store", "log-compacted-hint", log + b"\n--\n" + comp + b"\n--\n" + h)
    write("store", "torn-tail", log[:-7])


if __name__ == "__main__":
    main()
