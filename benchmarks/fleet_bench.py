"""
``kcoretool fleet scan`` over a fleet of >= 200 dumps (issue 26).

    python benchmarks/fleet_bench.py [--dumps 200] [--workdir DIR] [--keep]

The fleet, under a temporary directory:

* the leak series of every lab kernel (``python -m tests.lab leak-series``:
  one boot per kernel dumped with the test module holding 0, 512, 2048 and
  8192 leaked areas, as compressed kdump and makedumpfile ELF, plus QEMU's
  raw ELF at the first point), then the same boot crashed (sysrq-c) and
  dumped in its panic (all three formats); built first if missing (about
  5 min a kernel; kept under ``~/.cache/kcoretool/lab/fleet/``);
* every dump the lab's last test run saved (``runs/<kernel>-*/``
  ``{snapshot,grown,audit-planted}/``: QEMU's ELF, makedumpfile's ELF and
  kdump), by hard link (a symbolic link across filesystems), from the runs
  whose guest is not running;
* the committed demo kdump, and copies of it at several points of a
  growing leak (the test module's pages x2, x4, x8, x16, rewritten in the
  dump's pages by tests/fleetgen.py);
* damaged copies: cut at 10/40/70%, the header's block size overwritten,
  the dump bitmap zeroed, random bytes over page data;
* then hard links and symbolic links of all of those under distinct names
  until there are ``--dumps`` (a link is a distinct dump to kcoretool: its
  own path).

Then the same fleet is scanned (the CLI, in a subprocess, into a new
file each time): once to fill the page cache, then ``--rounds`` times on
the local pool with 1 and 2 workers and on Dask with a local cluster of 2
worker processes (every other round in the reverse order); printed per
scan: dumps/s, the seconds spent inside the workers, the peak RSS of a
worker; then from each engine's best scan the speed-up from 1 to 2
workers and the Dask overhead against the local pool with 2, whether
every engine wrote the same rows, and what ``fleet report`` names.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Tuple

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fleetgen import DEMO, damaged_copy, leaking_copy  # noqa: E402

LAB = pathlib.Path(os.environ.get("KCORETOOL_LAB_CACHE", pathlib.Path.home() / ".cache/kcoretool/lab")) / "runs"
VOLATILE = ("elapsed_s", "worker", "worker_maxrss_kib", "attempts")


def series_dumps() -> List[str]:
    """The lab's leak series, built first where missing."""
    from tests.lab.__main__ import LEAK_POINTS, leak_series_dir
    from tests.lab.__main__ import main as lab_main
    from tests.lab.config import KERNELS

    points = [f"leak-{n:05d}" for n in LEAK_POINTS] + ["panic"]
    missing = [k for k in KERNELS if not all((leak_series_dir(k) / p / "done").exists() for p in points)]
    if missing and lab_main(["leak-series", *missing]) != 0:
        sys.exit(f"the lab's leak series of {', '.join(missing)} could not be built")
    out = []
    for k in KERNELS:
        for point in points:
            for name in ("vmcore.elf", "vmcore-filtered.elf", "vmcore.kdump"):
                p = leak_series_dir(k) / point / name
                if p.is_file():
                    out.append(str(p))
    return out


def lab_dumps() -> List[str]:
    out = []
    for run in sorted(LAB.glob("*-*")):
        if (run / "qmp.sock").exists():
            continue  # a guest is running there now: its dumps may be half-written
        for point in ("snapshot", "grown", "audit-planted"):
            for name in ("vmcore.elf", "vmcore-filtered.elf", "vmcore.kdump"):
                p = run / point / name
                if p.is_file():
                    out.append(str(p))
    return out


def corrupt(src: str, dst: str, seed: int) -> None:
    """A copy with 64 runs of random bytes over its second half (page data)."""
    shutil.copyfile(src, dst)
    rnd = random.Random(seed)
    size = os.path.getsize(dst)
    with open(dst, "r+b") as f:
        for _ in range(64):
            f.seek(rnd.randrange(size // 2, size - 4096))
            f.write(rnd.randbytes(rnd.randrange(8, 4096)))


def build(work: pathlib.Path, n: int) -> Dict[str, List[str]]:
    d = work / "fleet"
    d.mkdir(parents=True)
    kinds: Dict[str, List[str]] = collections.defaultdict(list)
    for kind, found in (("series", series_dumps()), ("lab", lab_dumps())):
        for i, p in enumerate(found):
            pp = pathlib.Path(p)
            link = d / f"{kind}-{i:02d}-{pp.parent.parent.name}-{pp.parent.name}-{pp.name}"
            try:
                os.link(p, link)  # a hard link: the lab removes a run's dumps when its next run starts
            except OSError:
                link.symlink_to(p)
            kinds[kind].append(str(link))
    for i, src in enumerate(p for p in kinds["series"] if p.endswith("leak-00512-vmcore.kdump")):
        p = d / f"damaged-real-cut{i}.kdump"  # a real dump cut short, as a full disk leaves it
        with open(src, "rb") as s, open(p, "wb") as t:
            t.write(s.read(os.path.getsize(src) * 4 // 10))
        kinds["damaged"].append(str(p))
    demo = d / "demo-6.12.kdump"
    shutil.copyfile(DEMO, demo)
    kinds["demo"].append(str(demo))
    for f in (2, 4, 8, 16):
        p = d / f"leak-x{f:02d}.kdump"
        leaking_copy(str(p), f)
        kinds["leak"].append(str(p))
    for how in ("cut", "header", "bitmap"):
        p = d / f"damaged-{how}.kdump"
        damaged_copy(str(p), how)
        kinds["damaged"].append(str(p))
    for pct in (10, 70):
        p = d / f"damaged-cut{pct}.kdump"
        with open(DEMO, "rb") as s, open(p, "wb") as t:
            t.write(s.read(os.path.getsize(DEMO) * pct // 100))
        kinds["damaged"].append(str(p))
    for seed in range(3):
        p = d / f"damaged-random{seed}.kdump"
        corrupt(DEMO, str(p), seed)
        kinds["damaged"].append(str(p))
    base = [p for k in ("series", "lab", "demo", "leak", "damaged") for p in kinds[k]]
    i = 0
    while sum(len(v) for v in kinds.values()) < n:
        src = base[i % len(base)]
        real = os.path.realpath(src)
        if i % 2 == 0 and not os.path.islink(src):
            p = d / f"hardlink-{i:03d}-{os.path.basename(src)}"
            os.link(real, p)
        else:
            p = d / f"symlink-{i:03d}-{os.path.basename(src)}"
            p.symlink_to(real)
        kinds["link"].append(str(p))
        i += 1
    return kinds


def run(work: pathlib.Path, name: str, args: List[str]) -> Tuple[float, List[Dict[str, Any]], str]:
    out = work / f"{name}.jsonl"
    out.unlink(missing_ok=True)  # a new scan each time, not a resumed one
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "kcoretool", "fleet", "scan", str(work / "fleet"), "-o", str(out),
                        "-q", *args], capture_output=True, text=True, cwd=ROOT)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"{name}: exit {r.returncode}: {r.stderr[-2000:]}")
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    return dt, rows, r.stderr.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dumps", type=int, default=200)
    ap.add_argument("--workdir", help="where the fleet is built (default: a new temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the fleet and the output files")
    ap.add_argument("--rounds", type=int, default=3, help="timed scans per engine; the best counts (default 3)")
    a = ap.parse_args()
    work = pathlib.Path(a.workdir or tempfile.mkdtemp(prefix="kcoretool-fleet-bench-"))
    try:
        t0 = time.monotonic()
        kinds = build(work, a.dumps)
        total = sum(len(v) for v in kinds.values())
        print(f"fleet of {total} dumps built in {time.monotonic() - t0:.1f} s under {work}: "
              + ", ".join(f"{len(v)} {k}" for k, v in kinds.items()))
        print(f"load when starting: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
        # The fleet is ~13 GB on disk: a first pass reads it into the page
        # cache, so no engine is timed on a cold disk and the next on a warm one.
        dt, _rows, _ = run(work, "warm-up", ["-j", "2"])
        print(f"warm-up  (-j 2, the page cache filled) {dt:7.1f} s")
        engines = (("local-1", ["-j", "1"]), ("local-2", ["-j", "2"]), ("dask-2", ["--dask", "local:2"]))
        results: Dict[str, Tuple[float, List[Dict[str, Any]]]] = {}
        for rnd in range(a.rounds):
            # every other round in the reverse order: no engine always runs first
            for name, args in (engines if rnd % 2 == 0 else engines[::-1]):
                load0 = os.getloadavg()[0]
                dt, rows, summary = run(work, name, args)
                if name not in results or dt < results[name][0]:
                    results[name] = (dt, rows)
                status = collections.Counter(r["status"] for r in rows)
                peak = max(r.get("worker_maxrss_kib", 0) for r in rows)
                busy = sum(r.get("elapsed_s", 0) for r in rows)
                print(f"{name:8s} round {rnd + 1}: {len(rows)} rows in {dt:7.1f} s = {len(rows) / dt:5.2f} dumps/s "
                      f"(in the workers {busy:6.1f} s); peak worker RSS {peak / 1024:.0f} MiB; {dict(status)}; "
                      f"load {load0:.2f} -> {os.getloadavg()[0]:.2f}")
        print(f"best of {a.rounds} round(s): " + ", ".join(f"{n} {results[n][0]:.1f} s" for n, _ in engines))
        d1, d2, dd = results["local-1"][0], results["local-2"][0], results["dask-2"][0]
        print(f"speed-up 1 -> 2 local workers: {d1 / d2:.2f}x (target >= 1.7x)")
        print(f"Dask (local:2, cluster start included) against the local pool with 2: {(dd / d2 - 1) * 100:+.1f}% "
              "(target within 10%)")
        strip = lambda rows: sorted(json.dumps({k: v for k, v in r.items() if k not in VOLATILE}, sort_keys=True)
                                     for r in rows)
        same = strip(results["local-1"][1]) == strip(results["local-2"][1]) == strip(results["dask-2"][1])
        print(f"the same rows from every engine: {same}")
        ok = [r for r in results["local-2"][1] if r["status"] == "ok"]
        by_format = collections.Counter((r["format"], r["release"]) for r in ok)
        print("readable, by format and release: " + ", ".join(f"{f} {rel}: {n}" for (f, rel), n in
                                                              sorted(by_format.items())))
        per = collections.defaultdict(list)
        for r in ok:
            per[r["format"]].append(r["elapsed_s"])
        print("seconds per dump (local-2), by format: " + ", ".join(
            f"{f} median {sorted(v)[len(v) // 2]:.2f} max {max(v):.2f}" for f, v in sorted(per.items())))
        rep = subprocess.run([sys.executable, "-m", "kcoretool", "fleet", "report", str(work / "local-2.jsonl"),
                              "--json"], capture_output=True, text=True, cwd=ROOT)
        if rep.returncode != 0:
            sys.exit(f"fleet report: exit {rep.returncode}: {rep.stderr[-2000:]}")
        outliers = json.loads(rep.stdout)["outliers"]
        named = collections.Counter((o["release"], o["name"]) for o in outliers)
        print(f"fleet report: {len(outliers)} outliers; by release and caller/kind: "
              + ", ".join(f"{rel} {name}: {n}" for (rel, name), n in sorted(named.items())))
        if not same:
            sys.exit(1)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
