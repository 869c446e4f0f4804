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


def judge_live_pages(areas: list) -> list:
    """Problems in tests/lab/in_guest/read.py's report of a live read of every
    test-module area: each page in the state expected_state() gives, data
    pages with their own tag, zero-state pages zero."""
    problems = []
    for area in areas:
        view = None
        if area["kind"] == "lazy_freed":
            # The lazy area may be purged at any time and its start reused by
            # a new area -- busy, or itself freed and lazy (seen on 6.12: a
            # 4-page vmalloc area, busy in one run, lazy in the next).
            # /proc/vmallocinfo just before and just after the read says what
            # starts there; judge only what the kernel held still.
            before, after = area["kernel_view"]
            if before != after:
                continue
            view = before
            ours = view is not None and view[0] == "unpurged" and area["size"] <= view[2] - view[1] <= area["size"] + PAGE
            if view is not None and not ours:
                kind, _start, end = view
                for p in area["pages"]:
                    va = area["addr"] + p["index"] * PAGE
                    if va >= end:
                        continue  # past the new area: a hole or yet another area
                    ok = ("lazy",) if kind == "unpurged" else ("data", "unmapped", "guard")
                    if p["state"] not in ok or (p["state"] != "data" and not p["zero"]):
                        problems.append((area["name"], p["index"], p["state"], p["own_tag"], view))
                continue
        for p in area["pages"]:
            want = expected_state(area, p)
            if area["kind"] == "lazy_freed" and view is None and (
                    p["state"] in ("hole", "lazy") or p["area"] not in (None, area["addr"])):
                continue  # purged: a hole, or inside a new allocation that starts elsewhere
            if p["state"] != want or (want == "data" and not p["own_tag"]) or (want != "data" and not p["zero"]):
                problems.append((area["name"], p["index"], p["state"], p["own_tag"]))
    return problems
