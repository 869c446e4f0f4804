"""
A seeded campaign of hostile snapshot files and output targets (issue 22).

    python benchmarks/snapshot_campaign.py [--cases 5000] [--seed 22] [--jobs 2] [--timeout 30]

Inputs: snapshot files of the demo kdump (made once, in the parent) with
every field mutated in type, range and encoding (bools, floats, NaN,
strings, lists and objects where numbers belong, numbers past 2^64, lone
surrogates and control characters in strings), run counts that lie, areas
that overlap or end before they start, nesting past any parser's depth,
truncations, bytes that are not UTF-8, another kernel's or boot's files,
and files that are not files (a FIFO, /dev/zero, a link to it, a 300 MiB
sparse file), each given to ``vmalloc diff``.

Outputs: every -o writer (``read``, ``read --pid``, ``vmalloc dump``, ``exec
dump``, ``vmalloc snapshot``, ``vmalloc extract``) onto new files,
existing files of modes 0600/0640/0444 and other owners, /dev/null,
/dev/full, FIFOs with and without a reader, links (to files, to devices,
to nothing), sockets, directories, read-only directories, a full
filesystem (a small tmpfs, as root), and Ctrl-C at several points.

The parent imports kcoretool and drgn once and forks one child per case;
the child sets RLIMIT_AS, runs ``kcoretool.cli.main`` in-process with its
output in files, and the parent waits with a timeout and checks: no
traceback, no death by a signal, no hang, no exit 0 where an error was
due (nor an error where the case must work), one line per error naming
the input, and for outputs the file's type, bytes, mode and owner.
Exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pathlib
import random
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import campaign  # benchmarks/campaign.py: the harness shared with hostile_campaign.py

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEMO = str(ROOT / "fixtures" / "demo" / "demo-6.12.kdump")
TOP = (1 << 64) - 1
OWNER = (4242, 4343)  # another user and group (root only)

# Values a field may be given, by what they are.
HOSTILE = [None, True, False, 0, -1, 1, 3, 4095, 4096, 8192, -4096, 1 << 32, (1 << 63) - 1, 1 << 63, TOP, 1 << 64,
           1 << 100, -(1 << 64), 1.5, 0.0, 4096.0, float("nan"), float("inf"), float("-inf"), "", "abc", "4096",
           "\ud800", "caf\udce9", "\x1b[2J", "a\nb", "x" * 70000, [], [1], [[1, 2]], {}, {"a": 1},
           {"runs": [[0, 1]]}]
U64_FIELDS = ("kaslr_offset", "vmalloc_start", "modules_start", "lazy_nr", "lazy_max_pages")
NULLABLE = ("release", "boot_id", "kaslr_offset", "time", "lazy_nr", "lazy_max_pages", "holes", "walk_order",
            "exec_owners")
TEXT_FIELDS = ("release", "boot_id", "boot_id_source", "time_source")


def _good_text(v: Any) -> bool:
    if type(v) is not str or len(v) > 1 << 16:
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(ord(c) < 32 or ord(c) == 127 for c in v)


def header_valid(field: str, v: Any) -> Optional[bool]:
    """Whether a header field may hold v (None: not decided here)."""
    if v is None:
        return field in NULLABLE
    if field in U64_FIELDS:
        return type(v) is int and 0 <= v < 1 << 64
    if field in ("vmalloc_end", "modules_end"):
        return type(v) is int and 0 <= v <= 1 << 64
    if field == "time":
        return type(v) is int and -(1 << 63) <= v < 1 << 63
    if field == "page_size":
        return type(v) is int and 4096 <= v <= 1 << 20 and not v & (v - 1)
    if field in TEXT_FIELDS:
        return _good_text(v)
    if field == "numa":
        return type(v) is bool
    if field == "format_version":
        return type(v) is int and v in (1, 2) if v != 1 else None  # 1: the columns are read as version 1's list
    if field in ("blocks", "warnings"):
        return v == [] or None
    if field in ("holes", "walk_order"):
        return None if v in ([], [1]) else False
    if field == "exec_owners":
        return v == {} or None
    return None


# -- the cases ----------------------------------------------------------------------------------------

class Case:
    """One command line, what to set up before it, and what to check after."""

    def __init__(self, kind: str, what: str, argv: List[str], *, status: Optional[int] = None,
                 fragment: Optional[str] = None, must_fail: bool = False,
                 setup: Optional[Callable[[str], None]] = None,
                 check: Optional[Callable[[str, int, str], List[str]]] = None, sigint_after: float = 0.0,
                 drgn: bool = False) -> None:
        self.kind, self.what, self.argv = kind, what, argv
        self.status, self.fragment, self.must_fail = status, fragment, must_fail
        self.setup, self.check, self.sigint_after, self.drgn = setup, check, sigint_after, drgn


def _dump(d: Any) -> bytes:
    return json.dumps(d, separators=(",", ":")).encode("utf-8", "surrogatepass")


def _set_path(d: Dict[str, Any], path: Tuple[Any, ...], value: Any) -> None:
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


V1_FIELDS = ("start", "end", "kind", "lazy", "va_flags", "node", "flags_node_id", "vmap_block", "vmap_area",
             "vm_struct", "vm_addr", "vm_size", "vm_flags", "flags", "pages", "page_order", "phys_addr", "caller",
             "caller_symbol", "requested_size", "pages_array")


def v1_case(rng: random.Random, seeds: Dict[str, Any], work: str) -> Case:
    """Format version 1 (one object per area), still read: an area's field,
    an area that is no object, the list cut or cut short."""
    good = seeds["path"]
    d = json.loads(seeds["v1_text"])
    section = rng.choice(["areas", "areas", "lazy"])
    status: Optional[int] = None
    how = rng.randrange(4)
    if how == 0:
        i = rng.randrange(len(d[section]))
        field = rng.choice(V1_FIELDS)
        v = rng.choice(HOSTILE)
        d[section][i][field] = v
        what = f"v1 {section}[{i}].{field} = {str(v)[:40]!r}"
        no_vm = d[section][i]["vm_struct"] is None
        if type(v) in (float, dict) or (type(v) is list and field != "flags"):
            status = 1
        if no_vm and field not in ("start", "end", "kind", "lazy", "va_flags", "node", "flags_node_id",
                                   "vmap_block", "vmap_area", "pages") and v is not None:
            status = 1  # an area without a vm_struct has nulls there
    elif how == 1:
        i = rng.randrange(len(d[section]))
        del d[section][i][rng.choice(V1_FIELDS)]
        what, status = f"v1 {section}[{i}] lacks a field", 1
    elif how == 2:
        i = rng.randrange(len(d[section]))
        d[section][i] = rng.choice([None, 1, "area", [], 1.5])
        what, status = f"v1 {section}[{i}] is no object", 1
    else:
        d[section] = d[section][: rng.randrange(len(d[section]) + 1)]
        d["walk_order"] = None  # its indices went with the areas
        what, status = f"v1 {section} cut to {len(d[section])} areas", 0
    data = _dump(d)
    target = os.path.join(work, "in.json")
    argv = ["vmalloc", "diff", target, good] if rng.random() < 0.5 else ["vmalloc", "diff", good, target]
    case = Case("snapshot", what, argv, status=status, fragment=f"kcoretool: {target}: " if status == 1 else None,
                must_fail=status == 1)
    case.setup = lambda w, data=data: pathlib.Path(w, "in.json").write_bytes(data)
    return case


def snapshot_case(rng: random.Random, seeds: Dict[str, Any], work: str) -> Case:
    """A hostile snapshot file at work/in.json, diffed against the good one."""
    if rng.random() < 0.12:
        return v1_case(rng, seeds, work)
    base_text: bytes = seeds["text"]
    target = os.path.join(work, "in.json")
    good = seeds["path"]
    r = rng.random()
    status, fragment = None, None
    data: Optional[bytes] = None
    d = json.loads(base_text)
    if r < 0.22:  # a header field
        field = rng.choice(["format_version", "release", "boot_id", "boot_id_source", "kaslr_offset", "time",
                            "time_source", "page_size", "vmalloc_start", "vmalloc_end", "modules_start",
                            "modules_end", "numa", "lazy_nr", "lazy_max_pages", "walk_order", "blocks", "holes",
                            "exec_owners", "warnings", "source", "layout", "areas", "lazy", "pooled"])
        v = rng.choice(HOSTILE)
        d[field] = v
        ok = header_valid(field, v)
        if ok is not None:
            status = 0 if ok else 1
        what = f"{field} = {str(v)[:40]!r}"
    elif r < 0.30:  # a nested field of the header
        path, choices = rng.choice([
            (("source", "path"), HOSTILE), (("source", "kind"), HOSTILE), (("source", "live"), HOSTILE),
            (("layout", "busy"), HOSTILE), (("layout", "evidence"), HOSTILE),
            (("blocks", 0, "start"), HOSTILE), (("blocks", 0, "used"), HOSTILE), (("blocks", 0, "bits"), HOSTILE),
            (("blocks", 0, "notes"), HOSTILE), (("holes", 0, "start"), HOSTILE), (("holes", 0, "end"), HOSTILE),
            (("holes", 1), HOSTILE), (("blocks", 0), HOSTILE), (("walk_order", 0), HOSTILE),
        ])
        v = rng.choice(choices)
        if path[0] == "walk_order" and d.get("walk_order") is None:
            d["walk_order"] = list(range(d["areas"]["count"]))
        _set_path(d, path, v)
        what = f"{'.'.join(map(str, path))} = {str(v)[:40]!r}"
        if path == ("source", "live"):
            status = 0 if type(v) is bool else 1
        elif path in (("source", "path"), ("source", "kind")):
            status = 0 if v is None or _good_text(v) else 1
    elif r < 0.62:  # an area column
        section = rng.choice(["areas", "areas", "lazy"])
        cols = d[section]["columns"]
        name = rng.choice(list(cols))
        col = cols[name]
        how = rng.randrange(9)
        if how == 0:
            cols[name] = rng.choice(HOSTILE)
            what = f"{section}.{name} = {str(cols[name])[:40]!r}"
            if cols[name] is None or type(cols[name]) in (bool, int, float, str):
                status = 1
        elif how == 1:
            del cols[name]
            what, status, fragment = f"{section}.{name} missing", 1, f"no field '{name}' in {section}"
        elif how == 2:  # one value of the column
            seq = col
            if isinstance(seq, dict):
                seq = seq.get("delta", seq.get("index", seq))
            if isinstance(seq, dict):
                seq = seq["runs"]
            if not seq:
                return snapshot_case(rng, seeds, work)
            i = rng.randrange(len(seq))
            v = rng.choice(HOSTILE)
            seq[i] = [v, seq[i][1]] if isinstance(col, dict) and "runs" in col else v
            what = f"{section}.{name}[{i}] = {str(v)[:40]!r}"
            if type(v) in (float, str, list, dict) and name not in ("kind", "caller_symbol", "flag_names"):
                status = 1
        elif how == 3:  # runs whose counts lie
            n = d[section]["count"]
            lie = rng.choice([n + 1, n - 1, 10 ** 6, 10 ** 9, -1, 0, True, 2.5, "7"])
            cols[name] = {"runs": [[0, lie]]} if n or lie else {"runs": [[0, lie]]}
            what, status = f"{section}.{name} runs of {lie!r} (count {n})", 1 if lie != n else None
        elif how == 4:  # the section's count
            lie = rng.choice([-1, 1.5, True, None, "5", 10 ** 6, 10 ** 12, d[section]["count"] + 1])
            d[section]["count"] = lie
            what, status = f"{section}.count = {lie!r}", 1
        elif how == 5:  # a run-length bomb: every column one run of 10^6 rows
            n = rng.choice([10 ** 6, 10 ** 7, 2 ** 22, 2 ** 40])
            d[section] = {"count": n, "columns": {c: {"runs": [[0 if c != "kind" else "vmalloc", n]]}
                                                   for c in cols}}
            d[section]["columns"]["size"] = {"runs": [[4096, n]]}
            d[section]["columns"]["start"] = {"delta": {"runs": [[8192, n]]}}
            d[section]["columns"]["lazy"] = {"runs": [[False, n]]}
            what, status = f"{section}: a run-length bomb of {n} rows", 1
        elif how == 6 and section == "areas":  # order and overlap
            starts = cols["start"]["delta"]
            sizes = cols["size"]
            if len(starts) < 3 or not isinstance(sizes, list):
                return snapshot_case(rng, seeds, work)
            i = rng.randrange(1, len(starts) - 1)
            kind = rng.choice(["duplicate", "overlap", "reversed", "empty", "past 2^64", "negative"])
            if kind == "duplicate":
                starts[i] = 0
            elif kind == "overlap":
                starts[i] = max(1, sizes[i - 1] // 2)
            elif kind == "reversed":
                starts[i] = -4096
            elif kind == "empty":
                sizes[i] = 0
            elif kind == "past 2^64":
                sizes[-1] = 1 << 64
            else:
                sizes[i] = -8192
            what, status = f"areas: {kind} at row {i}", 1
        elif how == 7:  # a table index out of range or of the wrong type
            if not (isinstance(col, dict) and "table" in col and isinstance(col["index"], list) and col["index"]):
                return snapshot_case(rng, seeds, work)
            v = rng.choice([len(col["table"]), -2, True, 1.0, "0", 10 ** 30])
            col["index"][rng.randrange(len(col["index"]))] = v
            what, status = f"{section}.{name} index {v!r}", 1
        else:  # strings where the kernel's names go
            sym = rng.choice(["\ud800", "a\udcff", "\x1b]0;pwned\x07", "x" * 70000, "ok\u00e9\U0001F600", "",
                              ["list"], {"o": 1}, 5])
            cols["caller_symbol"] = {"table": [sym], "index": {"runs": [[0, d[section]["count"]]]}} \
                if d[section]["count"] else cols["caller_symbol"]
            what = f"{section} caller_symbol {str(sym)[:20]!r}"
            ok = sym == "" or sym == "ok\u00e9\U0001F600"
            status = None if not d[section]["count"] else (None if ok else 1)
    elif r < 0.70:  # another kernel or boot: only the summary compares, and it works
        field = rng.choice(["release", "boot_id", "kaslr_offset", "time"])
        d[field] = {"release": "5.10.0-99-amd64", "boot_id": "01234567-89ab-cdef-0123-456789abcdef",
                    "kaslr_offset": 0x2a000000, "time": 1}[field]
        what, status = f"another {field}", 0
    elif r < 0.78:  # cut short
        cut = rng.randrange(len(base_text) - 2)
        data = base_text[:cut]
        what, status = f"cut at {cut} of {len(base_text)}", 1
    elif r < 0.84:  # not UTF-8
        at = rng.randrange(len(base_text))
        bad = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"])
        data = base_text[:at] + bad + base_text[at:]
        if rng.random() < 0.15:
            data = base_text.decode().encode("utf-16")
        what, status, fragment = f"not UTF-8 at {at}", 1, "not UTF-8 text"
    elif r < 0.88:  # nesting
        depth = rng.choice([100, 2000, 100000, 1000000])
        field = rng.choice(["release", "layout", "warnings", "holes", "blocks"])
        data = base_text.replace(f'"{field}":'.encode(), f'"{field}":'.encode() + b"[" * depth, 1)
        data = data.replace(b"\n", b"]" * depth + b"\n", 0)
        what, status = f"{field} nested {depth} deep", 1
        if depth >= 2000:
            fragment = "nested too deep" if depth > 5000 else None
    elif r < 0.95:  # random bytes
        b = bytearray(base_text)
        for _ in range(rng.randrange(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        data = bytes(b)
        what = "random bytes"
    else:  # a second copy as A, the damaged one as B
        d["format_version"] = rng.choice([0, 3, "2", 2.0, None, True])
        what, status, fragment = f"format_version {d['format_version']!r}", 1, None
    if data is None:
        data = _dump(d)
    swap = rng.random() < 0.3
    argv = ["vmalloc", "diff"] + ([good, target] if swap else [target, good])
    argv += rng.choice([[], [], ["--summary"], ["--min-delta", "4K"]])
    if rng.random() < 0.2:
        argv = ["--json"] + argv
    if status == 1 and not fragment:
        fragment = f"kcoretool: {target}: "
    case = Case("snapshot", what, argv, status=status, fragment=fragment, must_fail=status == 1)
    case.setup = lambda w, data=data: pathlib.Path(w, "in.json").write_bytes(data)
    return case


def odd_input_case(rng: random.Random, seeds: Dict[str, Any], work: str) -> Case:
    """Inputs that are not snapshot files, or not files at all: refused at once."""
    good = seeds["path"]
    kind = rng.choice(["fifo.json", "fifo", "zero", "link-zero.json", "dir.json", "missing.json", "big.json",
                       "empty.json", "devnull.json"])
    path = os.path.join(work, kind)
    frag = {"fifo.json": "not a regular file (a FIFO)", "fifo": "not a regular file (a FIFO)",
            "zero": "not a regular file (a character device)",
            "link-zero.json": "not a regular file (a character device)",
            "dir.json": "not a regular file (a directory)", "missing.json": "no such file",
            "big.json": "too big for a snapshot file", "empty.json": "not JSON",
            "devnull.json": "not a regular file (a character device)"}[kind]

    def setup(w: str) -> None:
        p = os.path.join(w, kind)
        if kind.startswith("fifo"):
            os.mkfifo(p)
        elif kind == "link-zero.json":
            os.symlink("/dev/zero", p)
        elif kind == "devnull.json":
            os.symlink("/dev/null", p)
        elif kind == "dir.json":
            os.mkdir(p)
        elif kind == "big.json":
            with open(p, "wb") as f:
                f.truncate(300 << 20)
        elif kind == "empty.json":
            open(p, "wb").close()

    if kind == "zero":
        path = "/dev/zero"
    argv = ["vmalloc", "diff", path, good] if rng.random() < 0.5 else ["vmalloc", "diff", good, path]
    return Case("odd input", kind, argv, status=1, fragment=f"kcoretool: {path}: ", must_fail=True, setup=setup,
                check=lambda w, st, err: [] if frag in err else [f"expected {frag!r}"])


def argument_case(rng: random.Random, seeds: Dict[str, Any], work: str) -> Case:
    """Arguments of the newer surfaces: each one line and status 2 (usage) or 1."""
    good = seeds["path"]
    cases = [
        (["vmalloc", "top", "-d", "nan"], 2, "Invalid value for --delay: nan"),
        (["vmalloc", "top", "-d", "inf"], 2, "Invalid value for --delay: inf"),
        (["vmalloc", "top", "-d", "-1"], 2, "Invalid value for --delay"),
        (["vmalloc", "top", "-d", "1e300"], 2, "Invalid value for --delay"),
        (["vmalloc", "diff", good, good, "--min-delta", "abc"], 2,
         "Invalid value for --min-delta: 'abc' is not a size"),
        (["vmalloc", "diff", good, good, "--min-delta", ""], 2, "Invalid value for --min-delta: '' is not a size"),
        (["vmalloc", "diff", good, good, "--min-delta", "-4K"], 2, "Invalid value for --min-delta"),
        (["-c", DEMO, "read", "--pid", "1", hex(TOP), "2"], 1,
         "kcoretool: 0xffffffffffffffff+0x2 runs past the top of the 64-bit address space"),
        (["-c", DEMO, "read", "--pid", "1", "0xfffffffffffff000", "0x2000"], 1,
         "kcoretool: 0xfffffffffffff000+0x2000 runs past the top of the 64-bit address space"),
        (["-c", DEMO, "read", "--pid", "1", "0x10000000000000000", "16"], 1, "beyond the 64-bit address space"),
        (["-c", DEMO, "read", "--pid", "1", "0x1000", "abc"], 2, "Invalid value for LENGTH: 'abc' is not a size"),
        (["-c", DEMO, "--json", "read", "--pid", "1", "0x1000", "32M"], 1, "--json carries at most 16 MiB"),
        (["-c", DEMO, "vmalloc", "top"], 1, "is a saved core"),
    ]
    argv, status, frag = cases[rng.randrange(len(cases))]
    return Case("argument", " ".join(argv[-4:]), argv, status=status, fragment=frag, must_fail=True,
                drgn=argv[-1] == "top")


# -- output targets -------------------------------------------------------------------------------------

def _fill(fs: str, leave: int) -> None:
    """Fill the filesystem ``fs`` but for about ``leave`` bytes."""
    st = os.statvfs(fs)
    room = st.f_bavail * st.f_frsize - leave
    fd = os.open(os.path.join(fs, "filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while room > 0:
            room -= os.write(fd, b"\0" * min(room, 1 << 16))
    except OSError:
        pass
    finally:
        os.close(fd)


def _mode(p: str) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def _no_temporaries(d: str) -> List[str]:
    left = [n for n in os.listdir(d) if ".part" in n or ".tmp" in n or n.startswith(".kcoretool-")]
    return [f"temporaries left: {left}"] if left else []


def output_case(rng: random.Random, seeds: Dict[str, Any], work: str, root: bool, heavy: bool,
                full_fs: Optional[str]) -> Case:
    if heavy:
        writer = rng.choice(["snapshot", "exec", "vdump", "pid", "extract"])
    else:
        writer = "read"
    expect = seeds["read_bytes"]
    if writer == "read":
        argv_of = lambda t: ["-c", DEMO, "read", "--physical", "0x1000", "64", "-o", t]
    elif writer == "snapshot":
        argv_of = lambda t: ["-c", DEMO, "vmalloc", "snapshot", "-o", t]
    elif writer == "exec":
        argv_of = lambda t: ["-c", DEMO, "exec", "dump", "netfs", "-o", t]
    elif writer == "vdump":
        argv_of = lambda t: ["-c", DEMO, "vmalloc", "dump", seeds["area"], "-o", t]
    elif writer == "pid":
        argv_of = lambda t: ["-c", DEMO, "read", "--pid", "2", "0x400000", "64", "-o", t]
    else:
        argv_of = lambda t: ["-c", DEMO, "vmalloc", "extract", "--kind", "vm_map_ram", "-o", t]
    fails = writer == "pid"  # pid 2 is a kernel thread: no user memory
    kinds = ["new", "0600", "0640", "0444", "other-owner", "devnull", "devfull", "fifo-noreader", "fifo-reader",
             "link-file", "link-devnull", "link-dangling", "socket", "directory", "missing-dir", "readonly-dir",
             "stdout-link"]
    if writer == "extract":
        kinds = ["new-dir", "rerun", "file-in-the-way", "fifo-in-dir"] + (["rerun-full"] if full_fs else [])
    elif full_fs:
        kinds.append("full-fs")
    kind = rng.choice(kinds)
    sigint = rng.choice([0.0] * 4 + [0.002, 0.02, 0.2, 0.6]) if kind in ("new", "0640", "rerun", "new-dir") else 0.0
    old = b"old contents\n"
    status: Optional[int] = None if sigint else (1 if fails else 0)
    fragment: Optional[str] = None
    reader: List[int] = []

    def setup(w: str) -> None:
        os.makedirs(os.path.join(w, "out"), exist_ok=True)
        t = os.path.join(w, "out", "t.bin")
        if kind in ("0600", "0640", "0444", "other-owner"):
            pathlib.Path(t).write_bytes(old)
            os.chmod(t, {"0600": 0o600, "0640": 0o640, "0444": 0o444, "other-owner": 0o640}[kind])
            if kind == "other-owner" and root:
                os.chown(t, *OWNER)
        elif kind.startswith("fifo") and kind != "fifo-in-dir":
            os.mkfifo(t)
            if kind == "fifo-reader":
                fd = os.open(t, os.O_RDONLY | os.O_NONBLOCK)
                fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ: the whole output fits while nobody reads
                reader.append(fd)
        elif kind == "link-file":
            pathlib.Path(w, "out", "real.bin").write_bytes(old)
            os.chmod(os.path.join(w, "out", "real.bin"), 0o640)
            os.symlink("real.bin", t)
        elif kind == "link-devnull":
            os.symlink("/dev/null", t)
        elif kind == "link-dangling":
            os.symlink("nowhere.bin", t)
        elif kind == "socket":
            s = socket.socket(socket.AF_UNIX)
            s.bind(t)
            s.close()
        elif kind == "directory":
            os.mkdir(t)
        elif kind == "readonly-dir":
            os.chmod(os.path.join(w, "out"), 0o500)
        elif kind == "full-fs":
            _fill(full_fs or "", 8192)
        elif kind in ("rerun", "rerun-full"):
            base = full_fs if kind == "rerun-full" else os.path.join(w, "out")
            d = os.path.join(base, "x")
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(seeds["extract_dir"], d)
            if kind == "rerun-full":
                _fill(full_fs or "", 16384)  # the new run cannot fit beside the old
        elif kind == "file-in-the-way":
            pathlib.Path(w, "out", "x").write_bytes(old)
        elif kind == "fifo-in-dir":
            os.makedirs(os.path.join(w, "out", "x"), exist_ok=True)
            os.mkfifo(os.path.join(w, "out", "x", "manifest.json"))

    def where(w: str) -> str:
        t = os.path.join(w, "out", "t.bin")
        if kind in ("devnull",):
            return "/dev/null"
        if kind == "devfull":
            return "/dev/full"
        if kind == "stdout-link":
            return "/dev/stdout"
        if kind == "missing-dir":
            return os.path.join(w, "out", "nodir", "t.bin")
        if kind == "full-fs":
            return os.path.join(full_fs or "", "t.bin")
        if kind in ("new-dir", "rerun", "file-in-the-way", "fifo-in-dir"):
            return os.path.join(w, "out", "x")
        if kind == "rerun-full":
            return os.path.join(full_fs or "", "x")
        return t

    def check(w: str, st: int, err: str) -> List[str]:
        bad: List[str] = []
        t = where(w)
        out = os.path.join(w, "out")
        for fd in reader:
            try:
                got = b""
                while True:
                    b = os.read(fd, 1 << 16)
                    if not b:
                        break
                    got += b
            except BlockingIOError:
                pass
            os.close(fd)
            if st == 0 and writer == "read" and got != expect:
                bad.append(f"the FIFO's reader got {got[:16]!r}")
        reader.clear()
        if os.path.isdir(out):
            os.chmod(out, 0o755)
            bad += _no_temporaries(out)
        if st == 130:
            if kind in ("new", "new-dir") and os.path.lexists(t):
                bad.append("an interrupted run left its output")
            if kind == "0640" and pathlib.Path(t).read_bytes() != old:
                bad.append("an interrupted run changed the old file")
            if kind == "rerun" and sorted(os.listdir(t)) != sorted(os.listdir(seeds["extract_dir"])):
                bad.append("an interrupted rerun changed the earlier run")
            return bad
        if kind in ("devnull", "devfull", "link-devnull"):
            for dev in ("/dev/null", "/dev/full"):
                if not stat.S_ISCHR(os.stat(dev).st_mode):
                    bad.append(f"{dev} was replaced")
            if kind == "link-devnull" and not os.path.islink(t):
                bad.append("the link to /dev/null was replaced")
        if st != 0:
            if kind in ("0600", "0640", "0444", "other-owner") and pathlib.Path(t).read_bytes() != old:
                bad.append("a failed run changed the old file")
            if kind == "new" and os.path.lexists(t):
                bad.append("a failed run left a file")
            return bad
        if kind in ("new", "0600", "0640", "0444", "other-owner", "link-file", "full-fs"):
            real = os.path.join(out, "real.bin") if kind == "link-file" else t
            want = {"new": 0o600, "0600": 0o600, "0640": 0o640, "0444": 0o444, "other-owner": 0o640,
                    "link-file": 0o640, "full-fs": 0o600}[kind]
            if _mode(real) != want:
                bad.append(f"mode {_mode(real):o}, not {want:o}")
            if kind == "other-owner" and root and (os.stat(t).st_uid, os.stat(t).st_gid) != OWNER:
                bad.append("the owner was not kept")
            if kind == "link-file" and not os.path.islink(t):
                bad.append("the link was replaced by a file")
            if writer == "read" and pathlib.Path(real).read_bytes() != expect:
                bad.append("wrong bytes")
            if writer == "snapshot" and not pathlib.Path(real).read_bytes().startswith(b"{\n\"format\""):
                bad.append("not a snapshot")
        if kind in ("rerun", "new-dir") and writer == "extract":
            man = json.loads(pathlib.Path(t, "manifest.json").read_text())
            missing = [a["file"] for a in man["areas"] if not os.path.exists(os.path.join(t, a["file"]))]
            if missing:
                bad.append(f"the manifest lists missing files: {missing[:2]}")
        return bad

    def check_full(w: str, st: int, err: str) -> List[str]:
        bad = check(w, st, err)
        if kind == "rerun-full" and full_fs:
            d = os.path.join(full_fs, "x")
            if st != 0:
                if sorted(os.listdir(d)) != sorted(os.listdir(seeds["extract_dir"])):
                    bad.append("a failed rerun on a full disk changed the earlier run's files")
            bad += _no_temporaries(d)
            shutil.rmtree(d, ignore_errors=True)
        if full_fs and kind in ("full-fs", "rerun-full"):
            for n in os.listdir(full_fs):
                p = os.path.join(full_fs, n)
                shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
        return bad

    refusals = {"fifo-noreader": "a FIFO with no reader; start the reader first",
                "link-dangling": "a symbolic link to nothing", "socket": "is a socket; give a file name",
                "directory": "is a directory; give a file name", "missing-dir": "does not exist",
                "devfull": "no space left on device", "full-fs": "no space left on device",
                "file-in-the-way": "exists and is not a directory",
                "fifo-in-dir": "exists and is a FIFO", "rerun-full": "no space left on device"}
    if kind in refusals and not fails and not sigint:
        status, fragment = 1, refusals[kind]
        if kind == "full-fs" and writer == "read":
            status, fragment = 0, None  # 64 bytes fit in the 8 KiB left
        if kind == "fifo-in-dir" and writer != "extract":
            status, fragment = 0, None
    if kind == "stdout-link":
        status = None if fails else 0
    if fails and not sigint:
        fragment = None if kind in refusals else "is a kernel thread: it has no user memory"
    if kind == "readonly-dir" and not root and not fails:
        status, fragment = 1, "cannot write"
    case = Case("output", f"{writer} -o {kind}" + (f" Ctrl-C at {sigint}s" if sigint else ""), [], status=status,
                fragment=fragment, must_fail=status == 1, setup=setup, check=check_full, sigint_after=sigint,
                drgn=writer != "read")
    case.argv_of = lambda w: argv_of(where(w))  # type: ignore[attr-defined]
    return case


# -- running --------------------------------------------------------------------------------------------

def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 1 << 30


def _judge(case: Case, how: str, code: int, err: str, work: str) -> List[Tuple[str, str]]:
    out: List[Tuple[str, str]] = []
    if how == "signal":
        return [("signal deaths", f"signal {code}")]
    if how == "timeout":
        return [("timeouts", "past the timeout")]
    if "Traceback" in err:
        out.append(("tracebacks", err.strip()[-500:]))
    if "unexpected error" in err:
        out.append(("unexpected", err.strip()[-300:]))
    errors = [ln for ln in err.splitlines() if not ln.startswith(("kcoretool: warning:", "kcoretool: note:"))]
    if code == 2:  # click's usage error: its usage lines, then one "Error:" line
        errors = [ln for ln in errors if ln.startswith("Error:")]
    if code != 0 and code != 130 and len(errors) != 1:
        out.append(("not one line", err.strip()[-300:]))
    if code == 0 and case.must_fail:
        out.append(("wrong exit 0", err.strip()[-200:]))
    elif case.status is not None and code != case.status and not (code == 130 and case.sigint_after):
        out.append(("wrong status", f"{code}, not {case.status}: {err.strip()[-300:]}"))
    if case.fragment and code not in (0, 130) and case.fragment not in err:
        out.append(("wrong message", f"no {case.fragment!r} in {err.strip()[-300:]}"))
    if code == 130 and err.strip().splitlines()[-1:] != ["kcoretool: interrupted"]:
        out.append(("not one line", err.strip()[-300:]))
    if case.check is not None:
        out += [("wrong files", p) for p in case.check(work, code, err)]
    return out


def make_seeds(tmp: str) -> Dict[str, Any]:
    """The good snapshot, the bytes read --physical gives, an earlier
    extract run.  The drgn-backed ones run in a child: a parent holding a
    kernel's types and model makes every fork dearer."""
    from kcoretool.api import open_core

    seeds: Dict[str, Any] = {}
    path = os.path.join(tmp, "good.json")
    pid = os.fork()
    if pid == 0:
        try:
            campaign.quietly([["-c", DEMO, "vmalloc", "snapshot", "-o", path],
                      ["-c", DEMO, "vmalloc", "extract", "--kind", "vm_map_ram", "-o", os.path.join(tmp, "x")]])
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    # the cheap paths every child takes, warmed here
    campaign.quietly([["vmalloc", "diff", path, path], ["-c", DEMO, "read", "--physical", "0x1000", "16"]], check=True)
    seeds["path"] = path
    seeds["text"] = pathlib.Path(path).read_bytes()
    seeds["dict"] = json.loads(seeds["text"])
    # the same state as format version 1 wrote it: one object per area
    from kcoretool.model.snapshot import iter_area_dicts

    v1 = dict(seeds["dict"], format_version=1)
    for sec in ("areas", "lazy", "pooled"):
        v1[sec] = list(iter_area_dicts(seeds["dict"][sec], seeds["dict"]["page_size"]))
    seeds["v1_text"] = _dump(v1)
    v1_path = os.path.join(tmp, "v1.json")
    pathlib.Path(v1_path).write_bytes(seeds["v1_text"])
    campaign.quietly([["vmalloc", "diff", v1_path, path]])  # a valid seed: it loads
    seeds["extract_dir"] = os.path.join(tmp, "x")
    with open_core(DEMO) as core:
        seeds["read_bytes"] = core.read_ex(0x1000, 64, True).data
    cols = seeds["dict"]["areas"]["columns"]
    kinds = cols["kind"]["table"]
    starts = list(__import__("itertools").accumulate(cols["start"]["delta"]))
    idx = cols["kind"]["index"]
    seeds["area"] = hex(next(s for s, i in zip(starts, idx) if kinds[i] == "vmalloc"))
    return seeds


def _mount_small_tmpfs(tmp: str) -> Tuple[Optional[str], str]:
    if os.geteuid() != 0:
        return None, "not root: no small tmpfs to fill (the full-filesystem cases are skipped)"
    mnt = os.path.join(tmp, "full")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mnt], capture_output=True, text=True)
    if r.returncode != 0:
        return None, f"mount failed ({r.stderr.strip()}): the full-filesystem cases are skipped"
    return mnt, "a 512 KiB tmpfs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--heavy", type=int, default=36, help="cases of the drgn-backed writers (about 1 s each)")
    ap.add_argument("--show", type=int, default=5)
    args = ap.parse_args()

    import click
    import drgn  # noqa: F401

    import kcoretool.api
    import kcoretool.cli

    for name in ("read", "vmalloc", "exec", "task"):
        kcoretool.cli.cli.get_command(click.Context(kcoretool.cli.cli), name)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    tmp = tempfile.mkdtemp(prefix="kcoretool-snapcampaign-", dir=shm)
    full_fs, full_note = _mount_small_tmpfs(tmp)
    t_start = time.monotonic()
    keys = ("tracebacks", "unexpected", "signal deaths", "timeouts", "wrong exit 0", "wrong status",
            "wrong message", "not one line", "wrong files")
    tally = campaign.Tally(keys, args.show)
    try:
        seeds = make_seeds(tmp)
        as_limit = _vm_size() + (1 << 30)
        rng = random.Random(args.seed)
        root = os.geteuid() == 0
        heavy_at = set(rng.sample(range(args.cases), min(args.heavy, args.cases)))
        slots = [os.path.join(tmp, f"slot{j}") for j in range(args.jobs)]
        for s in slots:
            os.mkdir(s)
        running: Dict[int, Case] = {}

        def new_case(i: int, work: str) -> Case:
            if i in heavy_at:
                return output_case(rng, seeds, work, root, True, full_fs)
            r = rng.random()
            if r < 0.84:
                return snapshot_case(rng, seeds, work)
            if r < 0.87:
                return odd_input_case(rng, seeds, work)
            if r < 0.90:
                return argument_case(rng, seeds, work)
            return output_case(rng, seeds, work, root, False, full_fs)

        def make(i: int, j: int) -> campaign.Start:
            work = slots[j]
            shutil.rmtree(work)
            os.mkdir(work)
            case = new_case(i, work)
            # full-filesystem cases share the one tmpfs: one at a time
            if full_fs and any(full_fs in a for a in getattr(case, "argv_of", lambda w: [])(work)) and \
                    any(c.what.endswith(("full-fs", "rerun-full")) for c in running.values()):
                case = snapshot_case(rng, seeds, work)
            argv = case.argv_of(work) if hasattr(case, "argv_of") else case.argv
            if case.setup is not None:
                case.setup(work)
            running[j] = case
            return campaign.Start(argv, case, as_limit=as_limit, sigint_after=case.sigint_after)

        def done(i: int, j: int, start: campaign.Start, out: campaign.Outcome) -> None:
            case = running.pop(j)
            tally.case(out, case.kind)
            for key, text in _judge(case, out.how, out.code, out.err, slots[j]):
                tally.flag(key, f"#{i} {case.kind}: {case.what}: kcoretool {' '.join(start.argv)}\n    {text}")

        campaign.run(slots, range(args.cases), make, done, args.timeout)
    finally:
        if full_fs:
            subprocess.run(["umount", full_fs])
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - t_start
    print(f"snapshot and output campaign: seed {args.seed}, {tally.counts['cases']} cases in {elapsed:.0f} s "
          f"({args.jobs} jobs; slowest case {tally.slowest:.1f} s); full filesystem: {full_note}")
    print("kinds: " + ", ".join(f"{k} {tally.counts[k]}" for k in ("snapshot", "odd input", "argument", "output")))
    return tally.report()


if __name__ == "__main__":
    sys.exit(main())
