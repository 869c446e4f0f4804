#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
What ``kcoretool exec audit`` costs (issue 24), against baselines measured
in the same run.

    python benchmarks/exec_audit_bench.py CORE --vmlinux V [--debuginfo dwarf|btf] [-n 3]

CORE is a lab dump (``~/.cache/kcoretool/lab/runs/*/snapshot/vmcore.kdump``
of a 1 GiB guest).  For each of N fresh processes it measures, whole
process (interpreter start, debug info, everything), the median of:

- ``kcoretool exec audit``: the page-table census, the exec model, the flags;
- ``kcoretool exec list``: the exec model alone;
- a plain drgn loop over the same page tables: the kernel half of
  ``init_top_pgt`` walked entry by entry with ``prog.read_u64()``, the way a
  drgn script would, collecting the same executable leaves.

Goal: the audit under 2 s whole process with DWARF.  Wall and CPU time are
both printed; on this shared 2-core machine wall time stretches with the
load, so the goal is judged by CPU time when they differ.
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

# The same walk as PageTableWalker.executable_runs(), one drgn read per entry.
_DRGN_LOOP = """
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import drgn
core, vmlinux = sys.argv[1:3]
prog = drgn.Program()
prog.set_core_dump(core)
prog.load_debug_info([vmlinux], main=True) if vmlinux else prog.load_default_debug_info()
# both defined in assembly (head_64.S): symbols without DWARF objects
# (phys_base wraps below zero when the kernel sits below its link address)
root = (prog.symbol("init_top_pgt").address - 0xffffffff80000000
        + prog.read_u64(prog.symbol("phys_base").address)) & ((1 << 64) - 1)
try:
    l5 = bool(prog["__pgtable_l5_enabled"].value_())
except KeyError:
    l5 = False
shifts = ([48] if l5 else []) + [39, 30, 21, 12]
leaves = 0
t1 = time.perf_counter()
def walk(table, li, first):
    global leaves
    shift = shifts[li]
    for i in range(256 if first else 0, 512):
        e = prog.read_u64(table + 8 * i, True)
        if not e & 1 or e & (1 << 63):
            continue
        if shift == 12 or (shift in (30, 21) and e & 0x80):
            leaves += 1
        else:
            walk(e & 0x000ffffffffff000, li + 1, False)
walk(root, 0, True)
print(json.dumps([time.perf_counter() - t1, time.process_time() - c0, leaves]))
"""


_KCT_WALK = """
import json, sys, time
import kcoretool
core, vmlinux, mode = sys.argv[1:4]
k = kcoretool.open_kernel(core, vmlinux=vmlinux or None, debuginfo=mode)
w = k.walker()
t1 = time.perf_counter()
runs = w.executable_runs()
print(json.dumps([time.perf_counter() - t1, len(runs)]))
"""


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(argv: list) -> tuple:
    """(wall, cpu of the child) of one whole process."""
    t0 = time.perf_counter()
    r0 = os.times()
    cp = subprocess.run(argv, capture_output=True, text=True, env=_env(), cwd=REPO)
    wall = time.perf_counter() - t0
    r1 = os.times()
    if cp.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(argv[:6])}...: exit {cp.returncode}: {cp.stderr[-500:]}")
    return wall, (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system), cp.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("core")
    ap.add_argument("--vmlinux")
    ap.add_argument("--debuginfo", default="dwarf")
    ap.add_argument("-n", type=int, default=3)
    a = ap.parse_args()
    kct = [sys.executable, "-m", "kcoretool", "-c", a.core, "--debuginfo", a.debuginfo] + \
        (["--vmlinux", a.vmlinux] if a.vmlinux else [])
    rows = []
    for name, argv in (("exec audit", kct + ["exec", "audit"]), ("exec list", kct + ["exec", "list"]),
                       ("drgn loop over the page tables", [sys.executable, "-c", _DRGN_LOOP, a.core,
                                                           a.vmlinux or ""])):
        _run(argv)  # warm the page cache and the byte-code
        runs = [_run(argv) for _ in range(a.n)]
        rows.append((name, statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
                     runs[-1][2]))
    print(f"{a.core} ({a.debuginfo}), median of {a.n} whole processes:")
    for name, wall, cpu, _out in rows:
        print(f"  {name:32s} wall {wall:6.2f} s   cpu {cpu:6.2f} s")
    loop = json.loads(rows[2][3])
    walk = json.loads(_run([sys.executable, "-c", _KCT_WALK, a.core, a.vmlinux or "", a.debuginfo])[2])
    print(f"  walks alone, after loading the debug info: the drgn loop {loop[0]:.3f} s ({loop[2]} executable "
          f"leaves), kcoretool's executable_runs() {walk[0]:.3f} s ({walk[1]} leaf runs)")
    audit_cpu = rows[0][2]
    print(f"goal: exec audit under 2 s with DWARF: {'met' if audit_cpu < 2 else 'NOT met'} "
          f"(cpu {audit_cpu:.2f} s, wall {rows[0][1]:.2f} s)")


if __name__ == "__main__":
    main()
