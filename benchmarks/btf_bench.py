#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
What BTF costs at start-up, against baselines measured in the same run.

    python benchmarks/btf_bench.py [CORE] [--vmlinux VMLINUX] [-n 5]
    python benchmarks/btf_bench.py --host-live [-n 5]

CORE defaults to /proc/kcore (as root; e.g. in the lab guest:
``python -m tests.lab boot 6.12 -- $(which python3) benchmarks/btf_bench.py``);
on a fresh checkout try ``fixtures/demo/demo-6.12.kdump``. Each figure is
the median of N fresh processes:

- ``info``: the ELF-only command (no drgn), the floor of any start-up;
- ``open, no debug info``: drgn opening the core plus kallsyms, which every
  mode does -- the baseline BTF adds to;
- ``open --debuginfo btf``: the above plus reading and indexing the BTF;
- ``vmalloc stats`` end to end with BTF (and with DWARF when --vmlinux is
  given).

The goal (issue #6): BTF adds at most 1 s to start-up on a live system --
``open --debuginfo btf`` minus ``open, no debug info``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

_OPEN = """
import json, sys, time
t0 = time.perf_counter()
import drgn
from kcoretool.debuginfo.kallsyms import use_kallsyms
from kcoretool.kernel.program import open_program
core, mode = sys.argv[1], sys.argv[2]
if mode == "none":
    prog = drgn.Program()
    prog.set_kernel() if core == "/proc/kcore" else prog.set_core_dump(core)
    use_kallsyms(prog)
else:
    prog = open_program(core, debuginfo=mode, modules=False)
    prog.type("struct vmap_area")
print(json.dumps(time.perf_counter() - t0))
"""


# The live BTF work, natively on this machine's running kernel: the lab's
# live figure is taken under TCG (~50x slower than native), and a host
# without /proc/kcore still has /proc/kallsyms and /sys/kernel/btf/vmlinux.
_HOST = """
import json, sys, time
t0 = time.perf_counter()
import drgn
from drgn.helpers.linux.kallsyms import _load_proc_kallsyms  # what load_vmlinux_kallsyms() uses live
prog = drgn.Program(drgn.host_platform)
prog.register_symbol_finder("kallsyms", _load_proc_kallsyms(), enable_index=0)
if sys.argv[1] == "btf":
    from kcoretool.debuginfo.btf_types import BtfTypes
    from kcoretool.debuginfo.btf import parse_btf
    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        btf = parse_btf(f.read())
    BtfTypes(prog, [btf]).register(prog)
    for name in ("struct vmap_area", "struct vm_struct", "struct vmap_block", "struct page"):
        for m in prog.type(name).members:
            m.type
print(json.dumps(time.perf_counter() - t0))
"""


def host_live(n: int) -> None:
    vals = {}
    for mode in ("none", "btf"):
        runs = []
        for _ in range(n):
            cp = subprocess.run([sys.executable, "-c", _HOST, mode], capture_output=True, text=True, cwd=REPO)
            if cp.returncode != 0:
                raise SystemExit(f"host ({mode}): {cp.stderr.strip()[-500:]}")
            runs.append(json.loads(cp.stdout))
        vals[mode] = statistics.median(runs)
    size = os.path.getsize("/sys/kernel/btf/vmlinux")
    print(f"this machine's kernel {os.uname().release} ({size >> 10} KiB of BTF): median of {n} processes")
    print(f"  drgn + /proc/kallsyms                          {vals['none']:6.3f} s")
    print(f"  + /sys/kernel/btf/vmlinux parsed, 4 structs    {vals['btf']:6.3f} s")
    added = vals["btf"] - vals["none"]
    print(f"BTF adds {added:.3f} s on a live system (goal <= 1 s): {'ok' if added <= 1.0 else 'OVER'}")
    print(f"ratio: {vals['btf'] / vals['none']:.2f}")


def _median_run(argv, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        cp = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
        if cp.returncode != 0:
            raise SystemExit(f"{' '.join(argv)}: rc {cp.returncode}: {cp.stderr.strip()[-500:]}")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _median_inner(core: str, mode: str, n: int) -> float:
    vals = []
    for _ in range(n):
        cp = subprocess.run([sys.executable, "-c", _OPEN, core, mode], capture_output=True, text=True, cwd=REPO)
        if cp.returncode != 0:
            raise SystemExit(f"open ({mode}): {cp.stderr.strip()[-500:]}")
        vals.append(json.loads(cp.stdout))
    return statistics.median(vals)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("core", nargs="?", default="/proc/kcore")
    ap.add_argument("--vmlinux")
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--host-live", action="store_true",
                    help="measure the live BTF work on this machine's running kernel (no /proc/kcore needed)")
    a = ap.parse_args()
    if a.host_live:
        host_live(a.n)
        return
    kt = [sys.executable, "-m", "kcoretool", "-c", a.core]

    info = _median_run(kt + ["info"], a.n)
    base = _median_inner(a.core, "none", a.n)
    btf = _median_inner(a.core, "btf", a.n)
    stats_btf = _median_run(kt + ["--debuginfo", "btf", "vmalloc", "stats"], a.n)
    rows = [
        ("info (ELF only, whole process)", info),
        ("open, no debug info (drgn + kallsyms)", base),
        ("open --debuginfo btf", btf),
        ("vmalloc stats --debuginfo btf (whole process)", stats_btf),
    ]
    if a.vmlinux:
        stats_dwarf = _median_run(kt + ["--vmlinux", a.vmlinux, "--debuginfo", "dwarf", "vmalloc", "stats"], a.n)
        rows.append(("vmalloc stats --debuginfo dwarf (whole process)", stats_dwarf))
    width = max(len(r[0]) for r in rows)
    print(f"{a.core}: median of {a.n} processes")
    for name, t in rows:
        print(f"  {name:<{width}}  {t:6.3f} s")
    added = btf - base
    print(f"BTF adds {added:.3f} s to opening the kernel (goal <= 1 s): {'ok' if added <= 1.0 else 'OVER'}")
    print(f"ratio open btf / open without debug info: {btf / base:.2f}")
    if a.vmlinux:
        print(f"ratio vmalloc stats btf / dwarf: {stats_btf / rows[-1][1]:.2f}")


if __name__ == "__main__":
    main()
