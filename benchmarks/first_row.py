#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Time from spawning ``python -m kcoretool -c VMCORE --vmlinux VMLINUX vmalloc
list`` to the first table row on its stdout (pipe read line by line), median
of N runs; the same for ``--json`` (first line after the opening ``[``).

    python benchmarks/first_row.py VMCORE VMLINUX [-n 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def first_row(argv, is_row) -> tuple:
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    first = None
    assert p.stdout is not None
    for line in p.stdout:
        if first is None and is_row(line):
            first = time.perf_counter() - t0
    p.wait()
    total = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: rc {p.returncode}: {p.stderr.read().strip()}")
    return first, total


def table_row(line: str) -> bool:
    s = line.strip()
    return bool(s) and s.startswith("0x")


def json_row(line: str) -> bool:
    s = line.strip()
    return bool(s) and s not in ("[", "]")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vmcore")
    ap.add_argument("vmlinux")
    ap.add_argument("-n", type=int, default=5)
    a = ap.parse_args()
    base = [sys.executable, "-m", "kcoretool", "-c", a.vmcore, "--vmlinux", a.vmlinux]
    for name, pre, pred in (("table", [], table_row), ("json", ["--json"], json_row)):
        argv = base[:1] + base[1:] + pre + ["vmalloc", "list"]
        runs = [first_row(argv, pred) for _ in range(a.n)]
        firsts = [r[0] for r in runs if r[0] is not None]
        med = statistics.median(firsts) if firsts else float("nan")
        tot = statistics.median(r[1] for r in runs)
        print(f"{name:5s} first row median {med:.3f} s  (runs {', '.join(f'{x:.2f}' for x in firsts)});"
              f" total median {tot:.3f} s  [{a.vmcore}]", flush=True)


if __name__ == "__main__":
    main()
