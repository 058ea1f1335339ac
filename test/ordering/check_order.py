#!/usr/bin/env python3
"""check_order.py - durable-ordering invariants of libkv, read off strace (T3).

Runs test/ordering/workload (built by `make ordering-check`) phase by phase
under `strace -f`, tearing the log's tail between phases 1 and 2 so that
the next open truncates it, and checks the system calls in the trace:

  I1  a new file (created under a .tmp name) is fsynced after its last
      write and before its rename;
  I2  a renamed file's directory is fsynced after the rename before the
      file backs an acknowledged write ("ACK" written to stdout by the
      workload after each call the library acknowledged; the file must
      also be fsynced after its last write) and before the compaction
      that wrote it publishes its obsolete list (renames the .obs in);
  I3  the unlinks of a compaction's inputs are followed by a directory
      fsync before the obsolete list naming them is removed;
  I4  the obsolete list is durable (fsynced, renamed, directory fsynced)
      before any segment or hint it names is unlinked, and no segment
      is unlinked that no list names (except a failed compaction's own
      outputs, which no list may name any more).

A file is "covered" when I1 was checked at its rename and I2 or I4 at a
later use of it (an acknowledged write into it, the publication of its
compaction, the unlink of inputs it lists). Target: every created file.

Usage:
  check_order.py WORKLOAD            run the phases, check, print figures
  check_order.py --traces T1 T2 ...  check existing traces (one per run,
                                     in order; store dir given by --dir)
Exit status 0 when every invariant held and every created file was
covered; 1 otherwise; 0 with a message when strace is not installed.
"""

import argparse
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile

SYSCALLS = ("openat,open,creat,write,pwrite64,pwritev,pwritev2,fsync,"
            "fdatasync,rename,renameat,renameat2,unlink,unlinkat,"
            "ftruncate,close")
SEG, HINT, OBS, TMP = ".seg", ".hint", ".obs", ".tmp"


# ---- reading strace output ----

def unescape(s):
    """The bytes of a C string literal as strace prints it (-xx)."""
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode("latin1")
            i += 1
            continue
        n = s[i + 1]
        if n == "x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        elif n in "01234567":
            j = i + 1
            while j < len(s) and j < i + 4 and s[j] in "01234567":
                j += 1
            out.append(int(s[i + 1:j], 8))
            i = j
        else:
            out += {"n": b"\n", "t": b"\t", "r": b"\r", "v": b"\v",
                    "f": b"\f", "\\": b"\\", '"': b'"'}.get(n, n.encode())
            i += 2
    return bytes(out)


def split_args(s):
    """Top-level comma-separated arguments, strings and brackets kept."""
    args, depth, cur, i = [], 0, [], 0
    while i < len(s):
        c = s[i]
        if c == '"':
            j = i + 1
            while s[j] != '"':
                j += 2 if s[j] == "\\" else 1
            cur.append(s[i:j + 1])
            i = j + 1
            continue
        if c in "[{(":
            depth += 1
        elif c in "]})":
            depth -= 1
        if c == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if cur:
        args.append("".join(cur).strip())
    return args


def close_paren(s):
    """Index of the parenthesis that closes the call's argument list."""
    depth, i = 0, 0
    while i < len(s):
        c = s[i]
        if c == '"':
            i += 1
            while s[i] != '"':
                i += 2 if s[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError("unbalanced call: " + s[:80])


LINE = re.compile(r"^(\d+)\s+(.*)$")
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")


def calls(path):
    """Yields (name, args, ret) per finished call, joining the parts of
    calls that other threads interrupted (<unfinished ...>)."""
    pending = {}
    with open(path, encoding="latin1") as f:
        for raw in f:
            m = LINE.match(raw.rstrip("\n"))
            if not m:
                continue
            pid, text = m.groups()
            if text.startswith("+++") or text.startswith("---"):
                continue
            if text.endswith("<unfinished ...>"):
                pending[pid] = text[:-len("<unfinished ...>")].rstrip()
                continue
            r = RESUMED.match(text)
            if r:
                text = pending.pop(pid, r.group(1) + "(") + r.group(2)
            name = text[:text.index("(")]
            end = close_paren(text)
            ret = text[end + 1:].split("=", 1)
            if len(ret) < 2:
                continue
            rv = ret[1].strip().split()[0]
            ret = int(rv) if re.match(r"^-?\d+$", rv) else -1
            yield name, split_args(text[len(name) + 1:end]), ret


def path_arg(a):
    return unescape(a[1:-1]).decode("latin1")


def write_bytes(name, args):
    """The data of a write, pwrite64 or pwritev, and its file offset."""
    if name == "write":
        return unescape(args[1][1:-1]), None
    if name == "pwrite64":
        return unescape(args[1][1:-1]), int(args[3])
    data = b"".join(unescape(m) for m in
                    re.findall(r'iov_base="((?:[^"\\]|\\.)*)"', args[1]))
    return data, int(args[3])


# ---- the model of the store directory ----

class File:
    count = 0

    def __init__(self, name, created):
        File.count += 1
        self.id = File.count
        self.name = name
        self.created = created          # made by O_CREAT in a trace
        self.dirty = False              # written or cut since its fsync
        self.synced = not created
        self.name_durable = not created
        self.renamed = False
        self.data = bytearray()         # kept for obsolete lists
        self.checks = set()
        self.phase = None


def seq_of(name):
    m = re.match(r"^([0-9a-f]{16})\.", name)
    return int(m.group(1), 16) if m else None


class Checker:
    def __init__(self, store):
        self.store = os.path.abspath(store)
        self.names = {}         # name -> File
        self.fds = {}           # fd -> File, or "dir"
        self.pending = []       # directory ops since the last dir fsync
        self.written = []       # files written since the last ACK
        self.since_obs = []     # .seg/.hint renamed since the last list
        self.created = []
        self.seen = set()           # names (less .tmp) seen so far
        self.dropped_lists = []     # lists removed in this phase
        self.violations = []
        self.notes = {}
        self.figures = dict(acks=0, renames=0, dir_fsyncs=0, lists=0,
                            unlinks=0, unsynced_unlinks=0, input_unlinks=0,
                            undone=0, truncates=0)
        self.phase = 0
        self.pos = ""

    def bad(self, what):
        self.violations.append("%s: %s" % (self.pos, what))

    def note(self, what):
        self.notes[what] = self.notes.get(what, 0) + 1

    def name_in_store(self, path):
        d, base = os.path.split(os.path.abspath(path))
        return base if d == self.store else None

    # -- events --

    def open(self, path, flags, fd):
        if fd < 0:
            return
        if os.path.abspath(path) == self.store:
            self.fds[fd] = "dir"
            return
        name = self.name_in_store(path)
        if name is None or name == "LOCK":
            return
        f = self.names.get(name)
        final = name[:-len(TMP)] if name.endswith(TMP) else name
        if f is None:
            f = File(name, "O_CREAT" in flags)
            f.phase = self.phase
            self.names[name] = f
            if f.created:
                self.created.append(f)
                self.pending.append(("create", f))
                if final in self.seen:
                    self.note("name reused: %s (an earlier file of that "
                              "name was removed before a reopen)" % final)
            self.seen.add(final)
        elif "O_TRUNC" in flags:
            f.dirty = True
            f.data = bytearray()
        self.fds[fd] = f

    def write(self, fd, data, off, ret):
        if fd == 1 and data.startswith(b"ACK"):
            self.ack(data.decode("latin1").strip())
            return
        f = self.fds.get(fd)
        if not isinstance(f, File) or ret <= 0:
            return
        f.dirty = True
        if f.name.endswith(OBS + TMP):
            end = off + ret
            if len(f.data) < end:
                f.data.extend(b"\0" * (end - len(f.data)))
            f.data[off:end] = data[:ret]
        if f not in self.written:
            self.written.append(f)

    def fsync(self, fd):
        f = self.fds.get(fd)
        if f == "dir":
            self.figures["dir_fsyncs"] += 1
            for kind, g in self.pending:
                if kind in ("create", "rename"):
                    g.name_durable = True
            self.pending = []
        elif isinstance(f, File):
            f.dirty = False
            f.synced = True

    def truncate(self, fd):
        f = self.fds.get(fd)
        if isinstance(f, File):
            f.dirty = True
            self.figures["truncates"] += 1
            if f not in self.written:
                self.written.append(f)

    def rename(self, src, dst):
        a, b = self.name_in_store(src), self.name_in_store(dst)
        f = self.names.pop(a, None)
        if f is None or b is None:
            return
        self.figures["renames"] += 1
        # I1: a new file's bytes are on disk before its name is.
        if f.created and a.endswith(TMP):
            if f.dirty or not f.synced:
                self.bad("I1: %s renamed to %s before its data was "
                         "fsynced" % (a, b))
            f.checks.add("I1")
        f.name, f.renamed, f.name_durable = b, True, False
        self.names[b] = f
        self.pending.append(("rename", f))
        if b.endswith(OBS):
            self.publish(f)
        elif b.endswith(SEG) or b.endswith(HINT):
            self.since_obs.append(f)

    def publish(self, obs):
        """I2: a compaction's outputs are durable before its list is."""
        self.figures["lists"] += 1
        for f in self.since_obs:
            if self.names.get(f.name) is not f:
                continue
            if not f.name_durable:
                self.bad("I2: %s published (list %s renamed in) before "
                         "the directory fsync of its rename" %
                         (f.name, obs.name))
            f.checks.add("I2")
        self.since_obs = []

    def lists_naming(self, seq):
        """Obsolete lists present now that name segment seq."""
        out = []
        for f in self.names.values():
            if f.name.endswith(OBS) and len(f.data) >= 48:
                (n,) = struct.unpack_from("<Q", f.data, 32)
                seqs = struct.unpack_from("<%dQ" % n, f.data, 40) \
                    if len(f.data) >= 40 + 8 * n else ()
                if seq in seqs:
                    out.append(f)
        return out

    def unlink(self, path, ret):
        name = self.name_in_store(path)
        if name is None or ret != 0:
            return
        f = self.names.pop(name, None)
        if f is None:
            return
        self.figures["unlinks"] += 1
        self.pending.append(("unlink", f))
        if name.endswith(TMP):
            self.note("unlink of a leftover .tmp file (a crash may bring "
                      "it back; the next open removes it again)")
            return
        if name.endswith(OBS):
            self.remove_list(f)
            return
        seq = seq_of(name)
        lists = self.lists_naming(seq)
        if lists:
            # I4: the list is durable before any input it names goes;
            # I2: so are the outputs that replace the input.
            self.figures["input_unlinks"] += 1
            for kind, g in self.pending:
                if kind == "rename" and not g.name.endswith(OBS):
                    self.bad("I2: input %s unlinked before the directory "
                             "fsync of the rename of %s" % (name, g.name))
            for o in lists:
                if o.dirty or not o.synced or not o.name_durable:
                    self.bad("I4: %s unlinked before the obsolete list %s "
                             "was durable" % (name, o.name))
                o.checks.add("I4")
            return
        if name.endswith(HINT) and (
                "%016x%s" % (seq, SEG)) not in self.names:
            self.note("unlink of a hint whose segment is gone (orphan)")
            return
        if f.created and f.phase == self.phase and f.renamed:
            self.undo(name)
            return
        self.bad("I4: %s unlinked, but no obsolete list names it" % name)

    def undo(self, name):
        """I4 for a failed compaction: its outputs go only once no list
        can survive to delete the inputs at the next open."""
        self.figures["undone"] += 1
        for kind, g in self.pending:
            if kind == "unlink" and g.name.endswith(OBS):
                self.bad("I4: output %s unlinked before the removal of "
                         "list %s was made durable" % (name, g.name))
        for g in self.names.values():
            if g.name.endswith(OBS):
                self.bad("I4: output %s unlinked while list %s remains" %
                         (name, g.name))
        for g in self.dropped_lists:
            g.checks.add("I4")
        self.note("unlink of a failed compaction's own output")

    def remove_list(self, obs):
        """I3: the inputs' unlinks are durable before their list goes."""
        n = struct.unpack_from("<Q", obs.data, 32)[0] \
            if len(obs.data) >= 40 else 0
        seqs = set(struct.unpack_from("<%dQ" % n, obs.data, 40)) \
            if len(obs.data) >= 40 + 8 * n else set()
        for kind, g in self.pending[:-1]:
            if kind == "unlink" and seq_of(g.name) in seqs and \
                    not g.name.endswith(TMP):
                self.bad("I3: list %s removed before the unlink of %s "
                         "was made durable by a directory fsync" %
                         (obs.name, g.name))
        self.dropped_lists.append(obs)
        self.note("unlink of an obsolete list (no directory fsync needed: "
                  "a list can come back only until the next directory "
                  "fsync, before which no new name is durable, so it names "
                  "only files whose unlinks I3 saw made durable)")

    def ack(self, what):
        """I2: what an acknowledged write went to is durable, name too."""
        self.figures["acks"] += 1
        for f in self.written:
            if self.names.get(f.name) is not f:
                continue
            if f.dirty:
                self.bad("I2: %s acknowledged before %s was fsynced" %
                         (what, f.name))
            if not f.name_durable:
                self.bad("I2: %s acknowledged while the name %s was not "
                         "durable (no directory fsync since its rename)"
                         % (what, f.name))
            f.checks.add("I2")
        self.written = []

    # -- driving --

    def run_trace(self, path):
        self.phase += 1
        self.fds = {}
        self.written = []
        self.dropped_lists = []
        for i, (name, args, ret) in enumerate(calls(path)):
            self.pos = "%s:%d %s" % (os.path.basename(path), i + 1, name)
            if name in ("openat", "open", "creat"):
                a = args[1:] if name == "openat" else args
                flags = a[1] if name != "creat" else "O_CREAT"
                self.open(path_arg(a[0]), flags, ret)
            elif name in ("write", "pwrite64", "pwritev", "pwritev2"):
                data, off = write_bytes(name, args)
                self.write(int(args[0]), data, off, ret)
            elif name in ("fsync", "fdatasync") and ret == 0:
                self.fsync(int(args[0]))
            elif name == "ftruncate" and ret == 0:
                self.truncate(int(args[0]))
            elif name == "rename" and ret == 0:
                self.rename(path_arg(args[0]), path_arg(args[1]))
            elif name in ("renameat", "renameat2") and ret == 0:
                self.rename(path_arg(args[1]), path_arg(args[3]))
            elif name == "unlink":
                self.unlink(path_arg(args[0]), ret)
            elif name == "unlinkat":
                self.unlink(path_arg(args[1]), ret)
            elif name == "close":
                self.fds.pop(int(args[0]), None)
        self.unsynced_at_exit()

    def unsynced_at_exit(self):
        """Unlinks no directory fsync followed before the process ended:
        counted, and each kind named (the checks above say which kinds
        must never be among them)."""
        for kind, g in self.pending:
            if kind != "unlink":
                continue
            self.figures["unsynced_unlinks"] += 1
            suffix = g.name.rsplit(".", 1)[-1]
            why = ""
            if self.lists_naming(seq_of(g.name)):
                why = " (a list naming it remains: the next open deletes " \
                      "it again)"
            self.note("unlink of a .%s file with no directory fsync "
                      "after it before exit%s" % (suffix, why))
        self.pending = [p for p in self.pending if p[0] != "unlink"]

    def report(self):
        covered = [f for f in self.created
                   if "I1" in f.checks and (f.checks & {"I2", "I4"})]
        total = len(self.created)
        pct = 100.0 * len(covered) / total if total else 0.0
        fig = self.figures
        print("ordering: %d created files, %d covered (%.1f%%); %d "
              "acknowledged writes, %d renames, %d directory fsyncs, %d "
              "obsolete lists, %d unlinks (%d of compaction inputs, %d of "
              "failed outputs; %d with no directory fsync after them), %d "
              "truncations checked" % (
                  total, len(covered), pct, fig["acks"], fig["renames"],
                  fig["dir_fsyncs"], fig["lists"], fig["unlinks"],
                  fig["input_unlinks"], fig["undone"],
                  fig["unsynced_unlinks"], fig["truncates"]))
        for what, n in sorted(self.notes.items()):
            print("  note: %d x %s" % (n, what))
        for f in self.created:
            if f not in covered:
                print("  not covered: %s (checks: %s)" %
                      (f.name, ",".join(sorted(f.checks)) or "none"))
        for v in self.violations[:20]:
            print("  VIOLATION " + v)
        if len(self.violations) > 20:
            print("  ... %d violations in all" % len(self.violations))
        return not self.violations and total and len(covered) == total


# ---- running the workload ----

def tear_tail(store, rng):
    """Appends garbage to the log's tail (the newest segment compaction
    did not write): what a power cut mid-append leaves."""
    segs = sorted(n for n in os.listdir(store) if n.endswith(SEG))
    for n in reversed(segs):
        with open(os.path.join(store, n), "rb") as f:
            flags = struct.unpack_from("<I", f.read(32), 24)[0]
        if not flags & 1:
            with open(os.path.join(store, n), "ab") as f:
                f.write(bytes(rng.randrange(256)
                              for _ in range(rng.randrange(1, 700))))
            return n
    sys.exit("check_order: no log tail to tear")


def run(workload, work):
    store = os.path.join(work, "store")
    rng = random.Random(7)
    traces = []
    for phase in (1, 2, 3):
        if phase == 2:
            tear_tail(store, rng)
        trace = os.path.join(work, "trace.%d" % phase)
        cmd = ["strace", "-f", "-qq", "-xx", "-s", "65536", "-o", trace,
               "-e", "trace=" + SYSCALLS, workload, store, str(phase)]
        # LeakSanitizer cannot run under ptrace: in an ASan build, skip it.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, env=env)
        if p.returncode != 0:
            sys.exit("check_order: workload phase %d failed (%d)" %
                     (phase, p.returncode))
        traces.append(trace)
    return store, traces


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", nargs="?")
    ap.add_argument("--traces", nargs="+")
    ap.add_argument("--dir", help="store directory of --traces")
    ap.add_argument("--keep", action="store_true",
                    help="keep the store and traces")
    o = ap.parse_args()
    if o.traces:
        c = Checker(o.dir)
        for t in o.traces:
            c.run_trace(t)
        return 0 if c.report() else 1
    if not o.workload:
        ap.error("a workload program or --traces")
    if shutil.which("strace") is None:
        print("ordering-check: skipped: strace is not installed "
              "(apt-get install strace)")
        return 0
    work = tempfile.mkdtemp(prefix="kvorder.")
    try:
        store, traces = run(os.path.abspath(o.workload), work)
        c = Checker(store)
        for t in traces:
            c.run_trace(t)
        ok = c.report()
    finally:
        if o.keep:
            print("ordering-check: kept " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
