# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Task-memory benchmark on synthetic kernels (issue 13).

* ``task vmas`` of a process with 100,000 VMAs (6.12 layout, a maple tree
  of height 6): kcoretool's model + every /proc/PID/maps line, against
  drgn's own ``for_each_vma()`` reading vm_start/vm_end/vm_flags/vm_file of
  each VMA through drgn Objects -- target: under 2 s;
* ``task list`` of 10,000 processes: kcoretool's task list (with each
  process's mm), against a drgn ``list_for_each_entry`` over
  ``init_task.tasks`` reading pid/comm/mm -- target: under 1 s.

Building the synthetic image is excluded (it plays the part of loading
debug info).  Usage: ``python benchmarks/task_bench.py [--vmas N] [--tasks N]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def best(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def vma_kernel(n: int):
    from tests.synth.tasks import TaskKernel, TaskSpec, VmaSpec

    k = TaskKernel("6.12")
    vmas = []
    for i in range(n):
        start = 0x10000000 + i * 0x3000
        path = "/usr/lib/libbench.so" if i % 4 == 0 else None
        vmas.append(VmaSpec(start, start + 0x1000, pgoff=i if path else 0, path=path, ino=77))
    k.add_task(TaskSpec(100, "bench", vmas, start_brk=0x1000, brk=0x1000, start_stack=0x7FFC00000000))
    return k


def task_kernel(n: int):
    from tests.synth.tasks import TaskKernel, TaskSpec, VmaSpec

    k = TaskKernel("6.12")
    for i in range(n):
        vmas = [VmaSpec(0x400000, 0x401000)] if i % 2 else None
        k.add_task(TaskSpec(100 + i, f"task{i}", vmas, ppid=1))
    return k


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmas", type=int, default=100_000)
    ap.add_argument("--tasks", type=int, default=10_000)
    args = ap.parse_args()

    from drgn.helpers.linux.list import list_for_each_entry
    from drgn.helpers.linux.mm import for_each_vma

    from kcoretool.api import from_program

    t0 = time.perf_counter()
    k = vma_kernel(args.vmas)
    build = time.perf_counter() - t0
    prog = k.prog

    def drgn_vmas() -> int:
        import drgn

        mm_obj = drgn.Object(prog, "struct mm_struct *", k.mms[100])
        n = 0
        for v in for_each_vma(mm_obj):
            (v.vm_start.value_(), v.vm_end.value_(), v.vm_flags.value_(), v.vm_file.value_())
            n += 1
        assert n == args.vmas, n
        return n

    def ours_vmas() -> int:
        K = from_program(prog)
        vl = K.vmas(100)
        text = vl.maps_text()
        assert len(vl.vmas) == args.vmas and text.count("\n") == args.vmas
        return len(vl.vmas)

    base = best(drgn_vmas)
    ours = best(ours_vmas)
    print(f"task vmas, {args.vmas} VMAs (image built in {build:.1f}s): kcoretool {ours:.2f}s "
          f"(target < 2 s: {'ok' if ours < 2 else 'MISSED'}), drgn for_each_vma {base:.2f}s, "
          f"ratio {ours / base:.2f}x")

    t0 = time.perf_counter()
    k2 = task_kernel(args.tasks)
    build = time.perf_counter() - t0
    prog2 = k2.prog

    def drgn_tasks() -> int:
        init = prog2["init_task"]
        n = 0
        for t in list_for_each_entry("struct task_struct", init.tasks.address_of_(), "tasks"):
            (t.pid.value_(), t.comm.string_(), t.mm.value_())
            n += 1
        assert n == args.tasks, n
        return n

    def ours_tasks() -> int:
        tl = from_program(prog2).tasks()
        assert len(tl.tasks) == args.tasks
        return len(tl.tasks)

    base = best(drgn_tasks)
    ours = best(ours_tasks)
    print(f"task list, {args.tasks} tasks (image built in {build:.1f}s): kcoretool {ours:.2f}s "
          f"(target < 1 s: {'ok' if ours < 1 else 'MISSED'}), drgn list walk {base:.2f}s, "
          f"ratio {ours / base:.2f}x")


if __name__ == "__main__":
    main()
