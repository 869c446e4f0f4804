#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
What ``kcoretool exec list`` costs (issue 12), against baselines measured in
the same run.

    python benchmarks/exec_bench.py [CORE ...] [--vmlinux V] [--debuginfo auto|dwarf|btf] [-n 5] [--progs 10000]

1. For each CORE (default ``fixtures/demo/demo-6.12.kdump``; the lab's
   vmcores are under ~/.cache/kcoretool/lab/runs/*/snapshot/): the median,
   over N fresh processes, of opening the kernel (the baseline) and of
   opening it and running ``exec list`` (the vmalloc model it places each
   allocation in, the exec model, the table). Goal: ``exec list`` adds at
   most 0.2 s.
2. A synthetic kernel with ``--progs`` BPF programs (tests/synth/execmem.py):
   ``exec list`` and ``exec list --json`` end to end, against a bare drgn
   loop over ``bpf_kallsyms`` reading each program's name and tag (the
   baseline). Goal: under 2 s for 10,000 programs.
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

_ONE = """
import io, json, sys, time
from contextlib import redirect_stdout
t0 = time.perf_counter()
from kcoretool.cli import cli
from kcoretool.api import Kernel
from kcoretool.kernel import open_program
core, vmlinux, mode, what = sys.argv[1:5]
prog = open_program(core, vmlinux or None, debuginfo=mode)
t1 = time.perf_counter()
if what == "list":
    from click.testing import CliRunner
    import kcoretool.kernel as kp
    kp.open_program = lambda *a, **k: prog
    r = CliRunner().invoke(cli, ["-c", core, "--debuginfo", mode] + (["--vmlinux", vmlinux] if vmlinux else [])
                           + ["exec", "list"])
    assert r.exit_code == 0, r.output
t2 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t0]))
"""


def _one(core: str, vmlinux: str, mode: str, what: str) -> list:
    out = subprocess.run([sys.executable, "-c", _ONE, core, vmlinux, mode, what], capture_output=True,
                         text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), check=True).stdout
    return json.loads(out)


def bench_core(core: str, vmlinux: str, mode: str, n: int) -> None:
    # Interleaved, so the machine's load hits both alike; the baseline is the
    # open in the same processes.
    opens, totals = [], []
    for _ in range(n):
        opens.append(_one(core, vmlinux, mode, "open")[0])
        o, t = _one(core, vmlinux, mode, "list")
        opens.append(o)
        totals.append(t - o)
    open_only = statistics.median(opens)
    added = statistics.median(totals)
    total = open_only + added
    print(f"{core} ({mode}): open {open_only:.2f} s, open + exec list {total:.2f} s: "
          f"exec list adds {added:.3f} s (goal <= 0.2 s) {'OK' if added <= 0.2 else 'OVER'}")


def bench_synthetic(nprogs: int) -> None:
    sys.path.insert(0, REPO)
    from click.testing import CliRunner

    from kcoretool.api import Kernel
    from kcoretool.cli.exec import exec_
    from tests.synth.execmem import bulk
    from tests.test_exec import run

    k = bulk(nprogs)
    t0 = time.perf_counter()
    from drgn.helpers.linux.list import list_for_each_entry

    names = [(e.name.string_(), e.start.value_()) for e in
             list_for_each_entry("struct bpf_ksym", k.prog["bpf_kallsyms"].address_of_(), "lnode")]
    base = time.perf_counter() - t0
    assert len(names) == nprogs
    del CliRunner, Kernel, exec_
    for args, as_json in ((["exec", "list"], False), (["exec", "list"], True)):
        t0 = time.perf_counter()
        r = run(k, args, as_json=as_json)  # a fresh Kernel: vmalloc model + exec model + output
        dt = time.perf_counter() - t0
        assert r.exit_code == 0
        print(f"{nprogs} synthetic BPF programs: {' '.join(args)}{' --json' if as_json else ''} {dt:.2f} s "
              f"({dt / base:.1f}x a bare drgn loop over bpf_kallsyms, {base:.2f} s; goal < 2 s) "
              f"{'OK' if dt < 2 else 'OVER'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cores", nargs="*", default=[os.path.join(REPO, "fixtures/demo/demo-6.12.kdump")])
    ap.add_argument("--vmlinux", default="")
    ap.add_argument("--debuginfo", default="auto")
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--progs", type=int, default=10000)
    a = ap.parse_args()
    for core in a.cores:
        bench_core(core, a.vmlinux, a.debuginfo, a.n)
    bench_synthetic(a.progs)


if __name__ == "__main__":
    main()
