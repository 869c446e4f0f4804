"""Runs *inside* a lab guest while the test module's churn thread allocates,
tags and frees areas (python -m tests.lab.in_guest.churn VMLINUX SECONDS): extracts
every area through kcoretool's page-table reader over and over, and checks
that no page ever carries another area's tag.  Prints a JSON verdict."""

import json
import resource
import struct
import sys
import time

from kcoretool.api import open_kernel

MAGIC = 0x4B43
WORDS = struct.Struct("<512Q")


def page_tag(page: bytes):
    """(area id, page index) for a wholly consistent tagged page, "mixed"
    for a page that starts as a tagged page but does not carry the same tag
    throughout (torn between two areas), None for any other page (module
    code or a stack may hold a tag-like word; that is their content)."""
    words = WORDS.unpack(page)
    first = words[0]
    if first >> 48 != MAGIC or first & 0xFFF:
        return None
    base = first & ~0xFFF
    for i, w in enumerate(words):
        if w != base | i * 8:
            return "mixed"
    return (base >> 32) & 0xFFFF, (base >> 12) & 0xFFFFF


def check_area(area, data: bytes, report):
    """Foreign pages in one area read: a tagged page whose id or index does
    not fit the rest of the area."""
    bad = []
    seen_id = None
    for i in range(len(data) // 4096):
        t = page_tag(data[i * 4096:(i + 1) * 4096])
        if t is None:
            continue
        if t == "mixed":
            bad.append((area.start + i * 4096, "mixed tags in one page"))
            continue
        area_id, index = t
        if area.kind == "vmap_block":
            # Pieces of many ids: within a piece, index follows position.
            prev = page_tag(data[(i - 1) * 4096:i * 4096]) if i else None
            if index and not (isinstance(prev, tuple) and prev == (area_id, index - 1)):
                bad.append((area.start + i * 4096, f"piece page {index} of {area_id:#x} out of place"))
            continue
        if index != i or (seen_id is not None and area_id != seen_id):
            bad.append((area.start + i * 4096, f"tag {area_id:#x}/{index} at page {i}"))
        seen_id = area_id
    return bad


def main() -> None:
    vmlinux, seconds = sys.argv[1], float(sys.argv[2])
    k = open_kernel("/proc/kcore", vmlinux)
    deadline = time.monotonic() + seconds
    rounds = areas = pages = 0
    states: dict = {}
    bad = []
    retries = 0
    while time.monotonic() < deadline:
        model = k.vmalloc(refresh=True)
        for area in model.areas:
            if time.monotonic() >= deadline:
                break
            if area.kind in ("ioremap", "sparse", "uninitialised"):
                continue
            data, report = k.read(area.start, area.end - area.start)
            areas += 1
            pages += len(data) // 4096
            retries += report.retries
            for state, n in report.pages_by_state().items():
                states[state] = states.get(state, 0) + n
            bad += check_area(area, data, report)
        rounds += 1
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"round {rounds}: {areas} areas so far, max RSS {rss} MiB", file=sys.stderr, flush=True)
    json.dump({"rounds": rounds, "areas": areas, "pages": pages, "states": states, "retries": retries,
               "foreign": bad[:50], "foreign_count": len(bad)}, sys.stdout)


if __name__ == "__main__":
    main()
