"""In the guest: read a process that mmaps and munmaps tagged regions in a
loop, and count pages attributed to the wrong VMA (python -m
tests.lab.in_guest.task_churn SECONDS DEBUGINFO [VMLINUX]; prints JSON).

tests/lab/in_guest/maps.py --churn maps 1-8 tagged pages plus a PROT_NONE
guard page (so neighbouring regions never merge), every word tagged with
the region's generation and the page's index in it.  A data page read at
``va`` inside a VMA starting at ``A`` must carry index ``(va - A) / 4096``
and the same generation as every other data page of that VMA."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import kcoretool
from kcoretool.errors import KcoreToolError

PAGE = 4096


def main() -> None:
    seconds, mode = float(sys.argv[1]), sys.argv[2]
    vmlinux = sys.argv[3] if len(sys.argv) > 3 else None
    out_path = "/tmp/kct-churn.json"
    try:
        os.unlink(out_path)
    except FileNotFoundError:
        pass
    proc = subprocess.Popen([sys.executable, "-m", "tests.lab.in_guest.maps", out_path, "--churn",
                             str(seconds + 60)], stdin=subprocess.DEVNULL, start_new_session=True)
    k = kcoretool.open_kernel(None, vmlinux if mode == "dwarf" else None, debuginfo=mode)
    while not os.path.exists(out_path):
        time.sleep(0.1)
    with open(out_path) as f:
        info = json.load(f)
    pid, magic = info["pid"], info["tag_magic"]
    stats = {"rounds": 0, "vmas": 0, "data_pages": 0, "wrong_vma": 0, "wrong_examples": [], "states": {},
             "retries": 0, "errors": []}
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            stats["rounds"] += 1
            try:
                vl = k.vmas(pid)
                reader = k.user_reader(pid)
            except KcoreToolError as e:
                stats["errors"].append(str(e))
                continue
            for v in vl.vmas:
                if v.file or v.perms != "rw-p" or v.size > 8 * PAGE:
                    continue
                stats["vmas"] += 1
                buf = io.BytesIO()
                rep = reader.read(v.start, v.size, buf)
                data = buf.getvalue()
                stats["retries"] += rep.retries
                gens: dict = {}  # VMA the reader attributed pages to -> generations seen
                for run in rep.runs:
                    stats["states"][run.state] = stats["states"].get(run.state, 0) + run.size // PAGE
                    if run.state != "data":
                        continue
                    for va in range(run.vaddr, run.vaddr + run.size, PAGE):
                        word = int.from_bytes(data[va - v.start:va - v.start + 8], "little")
                        if word >> 48 != magic:
                            continue  # not a churn region (the interpreter's own memory)
                        stats["data_pages"] += 1
                        tag_page = (word >> 12) & 0xFFFFFFF
                        gens.setdefault(run.area, set()).add(tag_page >> 4)
                        if tag_page & 0xF != (va - run.area) // PAGE:
                            stats["wrong_vma"] += 1
                            if len(stats["wrong_examples"]) < 5:
                                stats["wrong_examples"].append({"va": va, "listed_vma": v.start,
                                                                "run_vma": run.area, "tag": hex(word)})
                for area, g in gens.items():
                    if len(g) > 1:
                        stats["wrong_vma"] += 1
                        if len(stats["wrong_examples"]) < 5:
                            stats["wrong_examples"].append({"vma": area, "generations": sorted(g)})
    finally:
        proc.kill()
        proc.wait()
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
