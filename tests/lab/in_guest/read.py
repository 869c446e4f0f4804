"""Runs *inside* a lab guest (python -m tests.lab.in_guest.read VMLINUX): reads
every test-module area through kcoretool's page-table reader on the live
/proc/kcore and prints, per area, each page's state and whether it carries
its own tag.  The host-side test (tests/lab/test_reader.py) judges it."""

import json
import struct
import sys
from typing import Optional

from kcoretool.api import open_kernel
from tests.lab.vmallocinfo import parse

AREAS = "/sys/kernel/debug/kcoretool_test/areas.json"


def kernel_view(addr: int) -> Optional[list]:
    """What /proc/vmallocinfo says starts at ADDR: [kind, start, end] (kind
    "unpurged", "vm_struct" or "vm_map_ram"; end exclusive, a vm_struct's
    guard page included), or None."""
    with open("/proc/vmallocinfo") as f:
        for line in parse(f.read()):
            if line.start == addr:
                return [line.kind, line.start, line.end]
    return None


def main() -> None:
    vmlinux = sys.argv[1]
    with open(AREAS) as f:
        module = json.load(f)
    k = open_kernel("/proc/kcore", vmlinux)
    out = []
    for a in module["areas"]:
        if a.get("id", 0) >= 0x8000:  # churn areas come and go
            continue
        lazy = a["kind"] == "lazy_freed"
        before = kernel_view(a["addr"]) if lazy else None
        data, report = k.read(a["addr"], a["size"])
        after = kernel_view(a["addr"]) if lazy else None
        pages = []
        for p in a["pages"]:
            i = p["index"]
            page = data[i * 4096:(i + 1) * 4096]
            own = p["tag"] is not None and page == b"".join(
                struct.pack("<Q", p["tag"] | w * 8) for w in range(512))
            run = report.run_at(a["addr"] + i * 4096)
            pages.append({"index": i, "state": run.state if run else None, "own_tag": own,
                          "zero": not any(page), "area": run.area if run else None})
        out.append({"id": a["id"], "addr": a["addr"], "size": a["size"], "name": a["name"], "kind": a["kind"],
                    "state": a.get("state"),
                    "pages": pages, "retries": report.retries,
                    # the kernel's own view of a lazy area just before and just after the read
                    "kernel_view": [before, after]})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
