# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Whole-process ``kcoretool vmalloc list --json`` against a plain drgn script.

The baseline, measured in the same run, is what a drgn user would write:
open the core, load the vmlinux's DWARF, walk ``for_each_vmap_area()`` and
name each distinct caller once with ``prog.symbol()``, print JSON.  For each
dump format and debug-info mode the benchmark runs both as fresh processes,
alternating, and prints the median wall time and CPU time (user + sys) and
their ratios -- CPU time is the fair one on a busy machine.  (Plain drgn
cannot read BTF, so the ``btf`` rows compare kcoretool without a vmlinux to
drgn with one.)

    # the lab's dumps: DIR holds vmcore.elf, vmcore-filtered.elf, vmcore.kdump
    python benchmarks/list_vs_drgn.py dumps DIR VMLINUX [--runs 5]
    # live, inside a lab guest (root, /proc/kcore):
    python -m tests.lab boot 6.12 -- $(which python3) benchmarks/list_vs_drgn.py live VMLINUX
    # the synthetic 1,000,000-area figures (list + stats, peak RSS):
    python benchmarks/list_vs_drgn.py synthetic
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DRGN_SCRIPT = r"""
import json, sys
import drgn
from drgn.helpers.linux.mm import for_each_vmap_area

core, vmlinux = sys.argv[1], sys.argv[2]
prog = drgn.Program()
if core == "/proc/kcore":
    prog.set_kernel()
else:
    prog.set_core_dump(core)
prog.load_debug_info([vmlinux], main=True)
names = {}
rows = []
for va in for_each_vmap_area(prog):
    vm = va.vm
    caller = vm.caller.value_() if vm else 0
    if caller and caller not in names:
        try:
            s = prog.symbol(caller)
            names[caller] = f"{s.name}+{caller - s.address:#x}/{s.size:#x}"
        except LookupError:
            names[caller] = None
    rows.append({"start": va.va_start.value_(), "end": va.va_end.value_(),
                 "caller": names.get(caller), "flags": vm.flags.value_() if vm else None,
                 "pages": vm.nr_pages.value_() if vm else None})
json.dump(rows, sys.stdout)
"""

FORMATS = (("ELF", "vmcore.elf"), ("makedumpfile ELF", "vmcore-filtered.elf"), ("kdump", "vmcore.kdump"))


def timed(argv: List[str]) -> Tuple[float, float]:
    """(wall, CPU) seconds of one child process, its output discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def compare(core: str, vmlinux: str, runs: int) -> Dict[str, Dict[str, float]]:
    drgn_argv = [sys.executable, "-c", DRGN_SCRIPT, core, vmlinux]
    ours = {
        "dwarf": [sys.executable, "-m", "kcoretool", "-c", core, "--vmlinux", vmlinux, "--debuginfo", "dwarf",
                  "vmalloc", "list", "--json"],
        "btf": [sys.executable, "-m", "kcoretool", "-c", core, "--debuginfo", "btf", "vmalloc", "list", "--json"],
    }
    samples: Dict[str, List[Tuple[float, float]]] = {"drgn": [], "dwarf": [], "btf": []}
    for _ in range(runs):  # alternate, so drift on a busy machine hits all alike
        samples["drgn"].append(timed(drgn_argv))
        for mode, argv in ours.items():
            samples[mode].append(timed(argv))
    out = {}
    for name, s in samples.items():
        out[name] = {"wall": statistics.median(w for w, _ in s), "cpu": statistics.median(c for _, c in s)}
    return out


def report(label: str, r: Dict[str, Dict[str, float]]) -> None:
    base = r["drgn"]
    print(f"{label}: plain drgn script {base['wall']:.2f} s wall, {base['cpu']:.2f} s CPU")
    for mode in ("dwarf", "btf"):
        m = r[mode]
        print(f"  kcoretool vmalloc list --json, {mode:5}: {m['wall']:.2f} s wall ({m['wall'] / base['wall']:.2f}x), "
              f"{m['cpu']:.2f} s CPU ({m['cpu'] / base['cpu']:.2f}x)")


def synthetic() -> None:
    r = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "vmalloc_bench.py"),
                        "--sizes", "1000000", "--skip-raw-above", "1"], capture_output=True, text=True, check=True)
    print(r.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("dumps")
    d.add_argument("dir")
    d.add_argument("vmlinux")
    d.add_argument("--runs", type=int, default=5)
    live = sub.add_parser("live")
    live.add_argument("vmlinux")
    live.add_argument("--runs", type=int, default=3)
    sub.add_parser("synthetic")
    a = ap.parse_args()
    if a.what == "synthetic":
        synthetic()
        return
    results = {}
    if a.what == "live":
        results["live /proc/kcore"] = compare("/proc/kcore", a.vmlinux, a.runs)
    else:
        for label, name in FORMATS:
            path = os.path.join(a.dir, name)
            if os.path.exists(path):
                results[label] = compare(path, a.vmlinux, a.runs)
    for label, r in results.items():
        report(label, r)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
