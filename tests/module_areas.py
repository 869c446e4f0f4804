"""What the lab's test module (tests/kmod) makes, and how its areas must read
back: shared by the lab tests and the demo fixture's test (a real 6.12
guest's dump with the module loaded), so neither imports the other."""

from __future__ import annotations

import struct

PAGE = 4096

#: The test module's area kinds -> kcoretool's area kinds.
KIND = {
    "vmalloc": "vmalloc",
    "vmalloc_huge": "vmalloc",
    "vmap": "vmap",
    "ioremap": "ioremap",
    "vm_map_ram_large": "vm_map_ram",
}


def page_tag(tag: int) -> bytes:
    return b"".join(struct.pack("<Q", tag | w * 8) for w in range(512))


def expected_state(area: dict, page: dict) -> str:
    """What each test-module page must read as."""
    if area["kind"] == "lazy_freed":
        return "lazy"
    if area["kind"] == "ioremap":
        return "ioremap"
    if area.get("state") == "freed":
        return "block-dirty"
    return "data"


def check_area_pages(area: dict, data: bytes, report) -> list:
    problems = []
    for p in area["pages"]:
        i = p["index"]
        page = data[i * PAGE:(i + 1) * PAGE]
        state = report.state_at(area["addr"] + i * PAGE)
        want = expected_state(area, p)
        if state != want:
            problems.append((area["name"], i, f"state {state}, want {want}"))
        elif want == "data" and page != page_tag(p["tag"]):
            problems.append((area["name"], i, "wrong bytes"))
        elif want != "data" and any(page):
            problems.append((area["name"], i, "zero state but non-zero bytes"))
    return problems
