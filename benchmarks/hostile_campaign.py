"""
A seeded campaign of hostile inputs against the CLI.

    python benchmarks/hostile_campaign.py [--cases 10000] [--seed 14] [--jobs 2] [--timeout 30]

Generates damaged cores from the ELF fixtures and the demo kdump
(truncations at structural boundaries and at random points, header and
sub-header fields set to boundary values, random byte runs in headers,
notes, bitmaps and page descriptors, VMCOREINFO edits) and hostile
arguments (addresses past 2^64, reversed ranges, bad alignments, output
files that cannot be written), runs one kcoretool command on each, and
prints counts:

    tracebacks      a Python traceback on stderr (no --debug is ever given)
    unexpected      the catch-all "unexpected error" line (a bug made quiet)
    signal deaths   the case's process died by a signal (SIGBUS, SIGSEGV, ...)
    timeouts        ran past --timeout seconds
    wrong exit 0    exit 0 where the case must fail (cut kdump headers, bad
                    arguments, unwritable outputs)

The parent imports kcoretool, click and drgn once and forks one child per
case, which runs the CLI in-process: start-up costs nothing, and a signal
in libkdumpfile still kills only the child, where waitpid() sees it.
Exit status 1 if any count is non-zero.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import random
import shutil
import struct
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also when loaded by path (tests)
import campaign

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIX = ROOT / "fixtures"
DEMO = FIX / "demo" / "demo-6.12.kdump"
TOP = (1 << 64) - 1

# (field name, offset, struct format) of the headers a mutation may target.
_HDR_FIELDS = [("header_version", 8, "<i"), ("status", 420, "<i"), ("block_size", 424, "<i"),
               ("sub_hdr_size", 428, "<i"), ("bitmap_blocks", 432, "<I"), ("max_mapnr", 436, "<I"),
               ("nr_cpus", 460, "<i"), ("ts_sec", 400, "<q")]
_SUB_NAMES = ["phys_base", "dump_level", "split", "start_pfn", "end_pfn", "offset_vmcoreinfo",
              "size_vmcoreinfo", "offset_note", "size_note", "offset_eraseinfo", "size_eraseinfo",
              "start_pfn_64", "end_pfn_64", "max_mapnr_64"]
_SUB_FMT = "<QiiQQQQQQQQQQQ"
_BOUNDARY = [0, 1, 2, 3, 0x7F, 0x80, 0xFF, 0x1000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32,
             (1 << 63) - 1, 1 << 63, TOP]


def _sub_fields() -> List[Tuple[str, int, str]]:
    out, off = [], 0
    for name, ch in zip(_SUB_NAMES, _SUB_FMT[1:]):
        size = struct.calcsize("<" + ch)
        out.append((name, 4096 + off, "<" + ch))
        off += size
    return out


def _put(blob, off: int, fmt: str, value: int) -> None:
    size = struct.calcsize(fmt)
    blob[off:off + size] = (value % (1 << (8 * size))).to_bytes(size, "little")


class Demo:
    """The demo kdump's structure, for targeted damage."""

    def __init__(self) -> None:
        from kcoretool.source.kdumpcheck import DESC, check_kdump

        self.blob = DEMO.read_bytes()
        with open(DEMO, "rb") as f:
            lay = check_kdump(str(DEMO), f, len(self.blob))
        bs = lay.block_size
        self.bitmap = ((1 + lay.sub_hdr_size) * bs, lay.desc_offset)
        self.descs = (lay.desc_offset, lay.desc_offset + lay.dumped_pages * DESC.size)
        sub = lay.sub or ()
        self.vmcoreinfo = (sub[5], sub[5] + sub[6])
        self.note = (sub[7], sub[7] + sub[8])
        self.boundaries = sorted({0, 8, 464, bs, bs + 104, self.note[0], self.note[1], self.vmcoreinfo[0],
                                  self.vmcoreinfo[1], self.bitmap[0], self.bitmap[1], self.descs[0],
                                  self.descs[1], len(self.blob)})


def _vmcoreinfo_edit(demo: Demo, blob: Patched, rng: random.Random) -> str:
    lo, hi = demo.vmcoreinfo
    text = bytes(blob[lo:hi])
    lines = text.split(b"\n")
    choice = rng.randrange(5)
    if choice == 0:
        new, what = text.replace(b"SYMBOL(_stext)=", b"SYMBOL(_stext)=0\nX="), "SYMBOL(_stext)=0"
    elif choice == 1:
        bad = rng.choice([b"0", b"3", b"99999999999999999999"])
        new, what = text.replace(b"PAGESIZE=4096", b"PAGESIZE=" + bad), "PAGESIZE"
    elif choice == 2:
        new, what = text + b"CRASHTIME=99999999999999999\n", "CRASHTIME too big"
    elif choice == 3:
        i = rng.randrange(len(lines))
        lines[i] = bytes(rng.randrange(32, 127) for _ in range(len(lines[i])))
        new, what = b"\n".join(lines), f"garbage line {i}"
    else:
        i = rng.randrange(len(lines))
        key = lines[i].split(b"=")[0]
        lines[i] = key + b"=" + rng.choice([b"", b"-1", b"0x", b"ffffffffffffffffffff", b"\xff\xfe"])
        new, what = b"\n".join(lines), f"value of {key[:30]!r}"
    new = new[:hi - lo].ljust(hi - lo, b"\n")
    blob[lo:hi] = new
    return "vmcoreinfo " + what


class Patched:
    """The demo's bytes with the writes a case made recorded, so a worker
    can patch its own copy of the 23 MB file in place (and undo it)."""

    def __init__(self, blob: bytes) -> None:
        self.base = blob
        self.patches: List[Tuple[int, bytes]] = []

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key):
        data = bytearray(self.base[key])
        if isinstance(key, slice):
            lo = key.start or 0
            for off, b in self.patches:
                for k, x in enumerate(b):
                    if lo <= off + k < lo + len(data):
                        data[off + k - lo] = x
            return bytes(data)
        raise TypeError("slices only")

    def __setitem__(self, key, value) -> None:
        assert isinstance(key, slice)
        self.patches.append((key.start, bytes(value)))


def kdump_case(demo: Demo, rng: random.Random) -> Tuple[object, str, bool]:
    """(("demo", patches, cut), description, must it fail at open?)"""
    blob = Patched(demo.blob)
    out = _kdump_case(demo, rng, blob)
    cut, what, must = out
    return ("demo", blob.patches, cut), what, must


def _kdump_case(demo: Demo, rng: random.Random, blob: Patched) -> Tuple[Optional[int], str, bool]:
    kind = rng.randrange(8)
    if kind == 0:
        b = rng.choice(demo.boundaries)
        cut = max(0, min(len(blob) - 1, b + rng.choice([-1, 0, 1, -24, 24])))
        return cut, f"cut at {cut} (boundary {b})", cut < demo.descs[1]
    if kind == 1:
        cut = rng.randrange(len(blob))
        return cut, f"cut at {cut}", cut < demo.descs[1]
    if kind == 2:
        name, off, fmt = rng.choice(_HDR_FIELDS)
        v = rng.choice(_BOUNDARY + [len(blob), len(blob) + 1])
        _put(blob, off, fmt, v)
        return None, f"header {name}={v:#x}", False
    if kind == 3:
        name, off, fmt = rng.choice(_sub_fields())
        v = rng.choice(_BOUNDARY + [len(blob), len(blob) + 1, len(blob) - 1])
        _put(blob, off, fmt, v)
        return None, f"sub-header {name}={v:#x}", False
    if kind == 4:
        lo, hi = rng.choice([demo.bitmap, demo.descs, demo.note, (0, 4096 + 104)])
        n = rng.randrange(1, 64)
        at = rng.randrange(lo, max(lo + 1, hi - n))
        blob[at:at + n] = bytes(rng.randrange(256) for _ in range(n))
        return None, f"{n} random bytes at {at:#x}", False
    if kind == 5:
        # one page descriptor's size or offset
        i = rng.randrange((demo.descs[1] - demo.descs[0]) // 24)
        at = demo.descs[0] + 24 * i
        if rng.randrange(2):
            _put(blob, at + 8, "<I", rng.choice([0, 1, 4097, 0x7FFFFFFF, 0xFFFFFFFF]))
            what = "size"
        else:
            _put(blob, at, "<q", rng.choice([0, -1, len(blob), len(blob) - 1, 1 << 62, (1 << 63) - 1]))
            what = "offset"
        return None, f"page descriptor {i} {what}", False
    if kind == 6:
        return None, _vmcoreinfo_edit(demo, blob, rng), False
    # a cut inside the page data (still opens; pages past the end are `truncated`)
    cut = rng.randrange(demo.descs[1], len(blob))
    return cut, f"cut in page data at {cut}", False


def elf_case(path: pathlib.Path, rng: random.Random) -> Tuple[bytes, str, bool]:
    blob = bytearray(path.read_bytes())
    kind = rng.randrange(3) if len(blob) >= 64 else 0
    if kind == 0:
        cut = rng.randrange(len(blob) + 1)
        return bytes(blob[:cut]), f"{path.name} cut at {cut}", cut < 64
    if kind == 1:
        n = rng.randrange(1, 17)
        for _ in range(n):
            blob[rng.randrange(min(len(blob), 8192))] = rng.randrange(256)
        return bytes(blob), f"{path.name} {n} random bytes in the headers", False
    # a program-header or ELF-header field set to a boundary value
    phoff = struct.unpack_from("<Q", blob, 32)[0]
    phnum = struct.unpack_from("<H", blob, 56)[0]
    fields = [(0x20, "<Q"), (0x38, "<H"), (0x36, "<H"), (0x10, "<H")]
    for j in range(min(phnum, 8)):
        base = phoff + 56 * j
        fields += [(base + o, "<Q") for o in (8, 16, 24, 32, 40)] + [(base, "<I")]
    off, fmt = rng.choice(fields)
    if off + struct.calcsize(fmt) <= len(blob):
        _put(blob, off, fmt, rng.choice(_BOUNDARY))
    return bytes(blob), f"{path.name} field at {off:#x}", False


# Commands: ELF-layer ones are cheap; the drgn ones (model, BTF) cost ~2 s on
# the demo, so they are a small share.
def elf_command(rng: random.Random, core: str, out_dir: str) -> Tuple[List[str], bool]:
    c = rng.randrange(40)
    if c <= 5:
        return [["info"], ["segments"], ["notes"], ["vmcoreinfo"], ["--json", "info"], ["--json", "segments"]][c], False
    if c == 6:
        where = rng.choice(["0xffffffff9b000000", "0xffff9c2a40001000", "0"])
        return ["read", where, str(rng.choice([16, 4096, 70000]))], False
    if c == 7:
        return ["read", "--physical", hex(rng.choice([0x1000, 0x100000, 0x10bff0])), "64"], False
    if c == 8:
        return ["read", "--physical", "0x1000", "32", "-o", os.path.join(out_dir, "r.bin")], False
    if c == 9:
        return ["read", "--via", "elf", hex(rng.choice([0, TOP - 15, 1 << 63])), "16"], False
    if c < 39:
        return ["vmcoreinfo", "OSRELEASE", "PAGESIZE"], False
    return rng.choice([["vmalloc", "list"], ["whatis", "0xffffffff9b000000"]]), False


def kdump_command(rng: random.Random, out_dir: str, heavy: bool) -> List[str]:
    if heavy:
        return rng.choice([
            ["vmalloc", "list"], ["vmalloc", "stats"], ["whatis", "0xff4222ae40d05010"],
            ["read", "--map", "0xff4222ae40d00000", "0xa000"], ["vmalloc", "blocks"],
            ["vmalloc", "free"], ["read", "0xff4222ae40555000", "0x2000"],
        ])
    return rng.choice([["info"], ["segments"], ["vmcoreinfo"], ["--json", "info"], ["notes"],
                       ["read", "--physical", hex(rng.choice([0x1000, 0x2000000, 0x3703000, 0xfff000])), "64"]])


def argument_case(rng: random.Random, out_dir: str) -> Tuple[List[str], str]:
    """Hostile arguments on good cores; each must fail (exit != 0)."""
    elf = str(FIX / "vmcore-6.1.core")
    cases = [
        ["-c", elf, "read", "0x10000000000000000", "16"],
        ["-c", elf, "read", hex(TOP - 15), "0x20"],
        ["-c", elf, "read", "--physical", "0x10000000000000000"],
        ["-c", elf, "read", "--physical", "0x1000", "16", "-o", os.path.join(out_dir, "missing", "f")],
        ["-c", elf, "read", "--physical", "0x1000", "16", "-o", out_dir],
        ["-c", elf, "read", "--physical", "0x1000", "16", "-o", "/dev/full"],
        ["-c", elf, "read", "nosuchsymbol+0x10"],
        ["-c", elf, "read", "0xzz"],
        ["-c", str(pathlib.Path(out_dir) / "fifo"), "info"],
        ["-c", "/dev/zero", "info"],
        ["-c", str(FIX / "kdump-header-only.core"), "vmalloc", "list"],
        ["-c", str(FIX / "hostile" / "vmcoreinfo-garbage.core"), "vmalloc", "list"],
        ["-c", elf, "vmalloc", "free", "--fits", "4K", "--align", rng.choice(["0", "3", "12K"])],
    ]
    i = rng.randrange(len(cases))
    return cases[i], f"argument case {i}"


# -- running ---

_PATCHED: Dict[int, List[Tuple[int, bytes]]] = {}


def _prepare(work: str, plan, pristine: List[bool], j: int) -> None:
    """Put the case's core at work/core: small files are written whole; the
    23 MB demo is copied once per slot and patched in place."""
    core = os.path.join(work, "core")
    if plan is None:
        return
    if plan[0] == "bytes":
        with open(core, "wb") as f:
            f.write(plan[1])
        pristine[j] = False
        return
    _, patches, cut = plan
    if not pristine[j]:
        shutil.copyfile(DEMO, core)
        pristine[j] = True
    fd = os.open(core, os.O_WRONLY)
    try:
        for off, data in patches:
            os.pwrite(fd, data, off)
    finally:
        os.close(fd)
    _PATCHED[j] = patches
    if cut is not None:
        os.truncate(core, cut)
        pristine[j] = False


def _undo(work: str, demo_blob: bytes, pristine: List[bool], j: int) -> None:
    patches = _PATCHED.pop(j, [])
    if not pristine[j] or not patches:
        return
    fd = os.open(os.path.join(work, "core"), os.O_WRONLY)
    try:
        for off, data in patches:
            os.pwrite(fd, demo_blob[off:off + len(data)], off)
    finally:
        os.close(fd)


def generate(n: int, seed: int, work: str):
    """Yield (argv, description, must_fail, file bytes or None) for case i."""
    rng = random.Random(seed)
    demo = Demo()
    elfs = sorted(p for p in FIX.glob("*.core") if p.read_bytes()[:4] == b"\x7fELF")
    elfs += sorted((FIX / "hostile").glob("*.core"))
    core = os.path.join(work, "core")
    for i in range(n):
        r = rng.random()
        if r < 0.45:
            blob, what, must = kdump_case(demo, rng)
            heavy = rng.random() < 0.04
            argv = ["-c", core] + kdump_command(rng, work, heavy)
        elif r < 0.95:
            blob, what, must = elf_case(rng.choice(elfs), rng)
            cmd, _ = elf_command(rng, core, work)
            argv = ["-c", core] + cmd
        else:
            argv, what = argument_case(rng, work)
            blob, must = None, True
        yield i, argv, what, must, (blob if blob is None or isinstance(blob, tuple) else ("bytes", blob))


def _warm_up() -> None:
    """Each kind of command once in this process (see campaign.quietly)."""
    elf = str(FIX / "vmcore-6.1.core")
    runs = [["-c", elf, c] for c in ("info", "segments", "notes", "vmcoreinfo")]
    runs += [["-c", elf, "read", "--physical", "0x1000", "16"], ["-c", elf, "--json", "info"],
             ["-c", str(DEMO), "info"], ["-c", str(DEMO), "read", "--physical", "0x1000", "16"],
             ["-c", str(DEMO), "whatis", "0xff4222ae40d05010"]]
    campaign.quietly(runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--show", type=int, default=5, help="failures of each kind to print")
    args = ap.parse_args()

    # Everything a child may need, imported once here.
    import click
    import drgn  # noqa: F401

    import kcoretool.api
    import kcoretool.cli
    import kcoretool.kernel

    for name in ("info", "read", "vmalloc", "whatis"):
        kcoretool.cli.cli.get_command(click.Context(kcoretool.cli.cli), name)
    from kcoretool import _outfile  # noqa: F401
    from kcoretool.cli import failures, readcmds  # noqa: F401

    _warm_up()

    keys = ("tracebacks", "unexpected", "signal deaths", "timeouts", "wrong exit 0", "multi-line errors")
    tally = campaign.Tally(keys, args.show)
    t_start = time.monotonic()
    # Up to --jobs cases at once: each worker slot has its own directory.
    tmp = "/dev/shm" if os.path.isdir("/dev/shm") else None
    slots = [tempfile.mkdtemp(prefix=f"kcoretool-campaign-{j}-", dir=tmp) for j in range(args.jobs)]
    pristine = [False] * args.jobs  # slot j's core is the untouched demo
    demo_blob = DEMO.read_bytes()
    for s in slots:
        os.mkfifo(os.path.join(s, "fifo"))
    cases = generate(args.cases, args.seed, slots[0])  # lazily: the cases' cores are big

    def make(i: int, j: int) -> campaign.Start:
        k, argv, what, must, blob = next(cases)
        assert k == i
        work = slots[j]
        argv = [a.replace(slots[0], work) for a in argv]
        for leftover in os.listdir(work):
            p = os.path.join(work, leftover)
            if leftover not in ("fifo", "core"):
                shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
        _prepare(work, blob, pristine, j)
        return campaign.Start(argv, (what, must))

    def done(i: int, j: int, start: campaign.Start, out: campaign.Outcome) -> None:
        _undo(slots[j], demo_blob, pristine, j)
        what, must = start.payload
        tally.case(out)
        label = f"#{i} {what}: kcoretool {' '.join(start.argv)}"
        if out.how == "signal":
            tally.flag("signal deaths", f"{label} -> signal {out.code}")
        elif out.how == "timeout":
            tally.flag("timeouts", f"{label} -> past {args.timeout:.0f} s")
        else:
            if "Traceback" in out.err:
                tally.flag("tracebacks", f"{label}\n{out.err.strip()[-600:]}")
            elif failures.UNEXPECTED in out.err:
                tally.flag("unexpected", f"{label} -> {out.err.strip()[-300:]}")
            if out.code == 0 and must:
                tally.flag("wrong exit 0", f"{label} -> exit 0")
            if len([ln for ln in out.err.splitlines() if ln.startswith("kcoretool: ") and
                    "note:" not in ln and "warning:" not in ln]) > 1:
                tally.flag("multi-line errors", f"{label} -> {out.err.strip()[-300:]}")
        if tally.counts["cases"] % 1000 == 0:
            print(f"... {tally.counts['cases']} cases, {time.monotonic() - t_start:.0f} s", file=sys.stderr, flush=True)

    try:
        campaign.run(slots, range(args.cases), make, done, args.timeout)
    finally:
        for s in slots:
            shutil.rmtree(s, ignore_errors=True)
    elapsed = time.monotonic() - t_start
    print(f"hostile campaign: seed {args.seed}, {tally.counts['cases']} cases in {elapsed:.0f} s "
          f"({args.jobs} jobs; slowest case {tally.slowest:.1f} s)")
    return tally.report()


if __name__ == "__main__":
    sys.exit(main())
