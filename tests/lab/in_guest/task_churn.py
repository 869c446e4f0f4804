"""In the guest: read a process that mmaps and munmaps tagged regions in a
loop, and count pages attributed to the wrong VMA (python -m
tests.lab.in_guest.task_churn SECONDS DEBUGINFO [--passes N] [--stress]
[VMLINUX]; prints JSON).

tests/lab/in_guest/maps.py --churn maps 1-8 tagged pages between two
PROT_NONE guard pages (so no two regions' VMAs ever merge: every ``rw-p``
VMA of the churn is exactly one region), every word tagged with the
region's generation and the page's index in it.  A data page read at
``va`` inside a VMA starting at ``A`` must carry index ``(va - A) / 4096``
and the same generation as every other data page of that VMA in the same
read.  ``--stress`` runs maps.py --churn-stress (48 regions, no pause,
mremap moves and shrinks, MAP_FIXED replacements, MADV_DONTNEED refills)
and also reads windows of 8 pages either side of each VMA (gaps, guards and
neighbours in one read).

``--passes N`` runs N passes in one boot -- each with a fresh churn
process for SECONDS -- and reports each pass and the totals."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List

import kcoretool
from kcoretool.errors import KcoreToolError

PAGE = 4096


def _count(stats: Dict[str, Any], v: Any, run: Any, data: bytes, base: int, magic: int,
           gens: Dict[int, set]) -> None:
    for va in range(run.vaddr, run.vaddr + run.size, PAGE):
        word = int.from_bytes(data[va - base:va - base + 8], "little")
        if word >> 48 != magic:
            continue  # not a churn region (the interpreter's own memory), or a zero page
        stats["data_pages"] += 1
        tag_page = (word >> 12) & 0xFFFFFFF
        gens.setdefault(run.area, set()).add(tag_page >> 4)
        if tag_page & 0xF != (va - run.area) // PAGE:
            stats["wrong_vma"] += 1
            if len(stats["wrong_examples"]) < 5:
                stats["wrong_examples"].append({"va": va, "listed_vma": v.start, "run_vma": run.area,
                                                "tag": hex(word)})


def one_pass(k: Any, seconds: float, stress: bool) -> Dict[str, Any]:
    out_path = "/tmp/kct-churn.json"
    try:
        os.unlink(out_path)
    except FileNotFoundError:
        pass
    proc = subprocess.Popen([sys.executable, "-m", "tests.lab.in_guest.maps", out_path,
                             "--churn-stress" if stress else "--churn", str(seconds + 60)],
                            stdin=subprocess.DEVNULL, start_new_session=True)
    stats: Dict[str, Any] = {"rounds": 0, "vmas": 0, "reads": 0, "data_pages": 0, "wrong_vma": 0,
                             "wrong_examples": [], "states": {}, "retries": 0, "errors": [], "seconds": 0.0}
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(out_path):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the churn process did not start (exit {proc.poll()})")
            time.sleep(0.1)
        with open(out_path) as f:
            info = json.load(f)
        pid, magic = info["pid"], info["tag_magic"]
        reader = None
        t0 = time.monotonic()
        deadline = t0 + seconds
        while time.monotonic() < deadline:
            stats["rounds"] += 1
            try:
                vl = k.vmas(pid)
                if reader is None:
                    reader = k.user_reader(pid)  # live: every read looks its VMAs up afresh
            except KcoreToolError as e:
                stats["errors"].append(str(e))
                continue
            for v in vl.vmas:
                if v.file or v.perms != "rw-p" or v.size > 8 * PAGE:
                    continue
                stats["vmas"] += 1
                spans = [(v.start, v.size)]
                if stress:
                    spans.append((v.start - 8 * PAGE, v.size + 16 * PAGE))
                for lo, size in spans:
                    buf = io.BytesIO()
                    rep = reader.read(lo, size, buf)
                    data = buf.getvalue()
                    stats["reads"] += 1
                    stats["retries"] += rep.retries
                    gens: Dict[int, set] = {}  # VMA the reader attributed pages to -> generations seen
                    for run in rep.runs:
                        stats["states"][run.state] = stats["states"].get(run.state, 0) + run.size // PAGE
                        if run.state == "data":
                            _count(stats, v, run, data, lo, magic, gens)
                    for area, g in gens.items():
                        if len(g) > 1:
                            stats["wrong_vma"] += 1
                            if len(stats["wrong_examples"]) < 5:
                                stats["wrong_examples"].append({"vma": area, "generations": sorted(g)})
        stats["seconds"] = round(time.monotonic() - t0, 1)
    finally:
        proc.kill()
        proc.wait()
    stats["raced"] = stats["states"].get("raced", 0)
    return stats


def main() -> None:
    args = sys.argv[1:]
    passes, stress = 1, False
    if "--passes" in args:
        i = args.index("--passes")
        passes = int(args[i + 1])
        del args[i:i + 2]
    if "--stress" in args:
        args.remove("--stress")
        stress = True
    seconds, mode = float(args[0]), args[1]
    vmlinux = args[2] if len(args) > 2 else None
    k = kcoretool.open_kernel(None, vmlinux if mode == "dwarf" else None, debuginfo=mode)
    results: List[Dict[str, Any]] = [one_pass(k, seconds, stress) for _ in range(passes)]
    total: Dict[str, Any] = {"passes": passes, "stress": stress}
    for key in ("rounds", "vmas", "reads", "data_pages", "raced", "wrong_vma", "retries"):
        total[key] = sum(r[key] for r in results)
    total["passes_clean"] = sum(1 for r in results if r["wrong_vma"] == 0)
    # the first pass's figures at the top level, as before --passes existed
    print(json.dumps(dict(results[0], passes=results, total=total)))


if __name__ == "__main__":
    main()
