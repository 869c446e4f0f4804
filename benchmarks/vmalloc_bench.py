# SPDX-License-Identifier: LGPL-2.1-or-later
r"""
vmalloc model benchmark on synthetic kernels of 10k / 100k / 1M areas.

For each size, in a fresh subprocess (so peak RSS is per size):

* ``raw``: the reference loop the issue names -- drgn's ``for_each_vmap_area``
  reading start, end, vm, vm.addr/size/flags/nr_pages/phys_addr/caller
  through drgn Objects, symbolising each distinct caller once;
* ``list-json``: ``from_program`` + the JSON ``vmalloc list`` produces;
* ``list+stats``: ``from_program`` + JSON list + ``stats()``;
* peak RSS of the list+stats run: the process's high-water mark is reset
  (``/proc/self/clear_refs``) once the image is built, so the transient
  memory of building it does not count, and read from ``VmHWM`` at the end.
  It includes what stays resident before the run (the interpreter, drgn and
  -- with ``--image memory`` -- the synthetic image), reported apart as
  ``rss_before_run_mib``; ``peak_tool_mib`` is the rest.

``--image memory`` keeps the synthetic image in a bytearray in the process
(drgn reads it through a Python callback); ``--image core`` writes it to a
temporary ELF core file and frees it, and drgn reads the file itself -- as
it reads a vmcore, whose bytes are in the page cache, not in the process.
``both`` (the default) runs each size both ways.

Building the synthetic image is excluded from the timings (it plays the
role of loading debug info). Usage::

    python benchmarks/vmalloc_bench.py [--sizes 10000,100000,1000000] [--layout 6.12] [--image both]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def raw_loop(prog) -> int:
    from drgn.helpers.linux.mm import for_each_vmap_area

    cache = {}
    rows = []
    for va in for_each_vmap_area(prog):
        start = va.va_start.value_()
        end = va.va_end.value_()
        vm = va.vm
        if vm:
            caller = vm.caller.value_()
            sym = cache.get(caller)
            if sym is None and caller not in cache:
                try:
                    s = prog.symbol(caller)
                    sym = f"{s.name}+{caller - s.address:#x}/{s.size:#x}"
                except LookupError:
                    sym = None
                cache[caller] = sym
            rows.append((start, end, vm.addr.value_(), vm.size.value_(), vm.flags.value_(),
                         vm.nr_pages.value_(), vm.phys_addr.value_(), sym))
        else:
            rows.append((start, end, None, None, None, None, None, None))
    return len(rows)


def hwm_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def one(n: int, layout: str, skip_raw: bool, image: str = "memory") -> dict:
    from kcoretool.model import from_program
    from kcoretool.model.area_json import iter_rows_json
    from tests.synth.bulk import build_bulk

    core = None
    if image == "core":
        fd, core = tempfile.mkstemp(suffix=".core")
        os.close(fd)
    t = time.perf_counter()
    k = build_bulk(n, layout, core=core)
    build_s = time.perf_counter() - t
    if core is not None:
        os.unlink(core)  # drgn holds it open
    prog = k.prog
    gc.collect()
    rss0 = rss_mib()
    out = {"n": n, "layout": layout, "image": image, "build_s": round(build_s, 2),
           "build_peak_rss_mib": round(hwm_mib()), "rss_before_run_mib": round(rss0)}
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM: the peak from here on is the run's

    if not skip_raw:
        t = time.perf_counter()
        got = raw_loop(prog)
        out["raw_s"] = round(time.perf_counter() - t, 3)
        assert got == n, got
        gc.collect()

    cpu0 = time.process_time()
    t = time.perf_counter()
    m = from_program(prog)
    out["model_s"] = round(time.perf_counter() - t, 3)
    nbytes = 0
    with open(os.devnull, "w") as sink:  # what `vmalloc list --json > file` does
        for chunk in iter_rows_json(m.select_rows(), m.page_size):
            sink.write(chunk)
            nbytes += len(chunk)
    out["list_json_s"] = round(time.perf_counter() - t, 3)
    assert m.nr_areas == n, (m.nr_areas, m.warnings[:3])
    t = time.perf_counter()
    st = m.stats()
    out["stats_s"] = round(time.perf_counter() - t, 3)
    out["list_plus_stats_s"] = round(out["list_json_s"] + out["stats_s"], 3)
    out["list_plus_stats_cpu_s"] = round(time.process_time() - cpu0, 3)
    out["json_mib"] = round(nbytes / 2**20, 1)
    out["rss_model_mib"] = round(rss_mib() - rss0)
    out["peak_rss_mib"] = round(hwm_mib())
    out["peak_tool_mib"] = out["peak_rss_mib"] - out["rss_before_run_mib"]
    if "raw_s" in out:
        out["ratio_list_json_vs_raw"] = round(out["list_json_s"] / out["raw_s"], 2)
    assert st["areas"] == n
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--layout", default="6.12")
    ap.add_argument("--skip-raw-above", type=int, default=10**9,
                    help="skip the (slow) raw drgn loop above this many areas")
    ap.add_argument("--image", choices=("memory", "core", "both"), default="both")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.layout, a.one > a.skip_raw_above, a.image)))
        return
    print(f"load average {os.getloadavg()[0]:.1f}")
    images = ("memory", "core") if a.image == "both" else (a.image,)
    for n in (int(x) for x in a.sizes.split(",")):
        for image in images:
            r = subprocess.run(
                [sys.executable, __file__, "--one", str(n), "--layout", a.layout,
                 "--skip-raw-above", str(a.skip_raw_above), "--image", image],
                capture_output=True, text=True,
            )
            if r.returncode:
                print(f"{n}: failed\n{r.stderr}", file=sys.stderr)
                continue
            res = json.loads(r.stdout.strip().splitlines()[-1])
            print(
                f"{n:>8} areas, image in {image}: raw drgn loop {res.get('raw_s', 'skipped')} s | "
                f"list --json {res['list_json_s']} s"
                + (f" ({res['ratio_list_json_vs_raw']}x raw)" if "ratio_list_json_vs_raw" in res else "")
                + f" | list+stats {res['list_plus_stats_s']} s ({res['list_plus_stats_cpu_s']} s CPU)"
                + f" | peak RSS {res['peak_rss_mib']} MiB = {res['rss_before_run_mib']} before the run"
                f" + {res['peak_tool_mib']} (image build {res['build_s']} s)"
            )
            print("   ", json.dumps(res))


if __name__ == "__main__":
    main()
