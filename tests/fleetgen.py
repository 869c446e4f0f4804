"""
A fleet from the committed demo dump, for tests and the benchmark.

``leaking_copy(src, dst, factor)`` writes a copy of a kdump-compressed
file whose ``kct_make_vmalloc_huge`` areas (the test module's) hold
``factor`` times their pages: each vm_struct's ``nr_pages`` is rewritten
in kernel memory.  The page holding it gets a new, uncompressed copy
appended to the file and its ``page_desc`` (makedumpfile's
``diskdump_mod.h``: offset, size, flags 0 = not compressed, page_flags)
pointed at it -- every other byte of the dump stays as makedumpfile wrote
it, so drgn (libkdumpfile) and kcoretool read it as any other kdump.
``damaged_copy`` makes the unreadable members of a fleet: cut short, or
with a header overwritten.
"""

from __future__ import annotations

import os
import shutil
import struct
from typing import Dict, List, Tuple

DEMO = os.path.join(os.path.dirname(__file__), "..", "fixtures", "demo", "demo-6.12.kdump")
LEAKING_CALLER = "kct_make_vmalloc_huge"

_HDR = struct.Struct("<8si390s6xqqIiiIIIIIIi")
_DESC = struct.Struct("<qIIQ")


def _layout(path: str) -> Tuple[int, int, bytes, int]:
    """``(block_size, max_mapnr, dumped bitmap, first descriptor offset)``."""
    with open(path, "rb") as f:
        h = _HDR.unpack(f.read(_HDR.size))
        block, sub_blocks, bitmap_blocks, max_mapnr = h[6], h[7], h[8], h[9]
        bitmap_off = (1 + sub_blocks) * block
        half = bitmap_blocks * block // 2
        f.seek(bitmap_off + half)
        bitmap = f.read(half)
    return block, max_mapnr, bitmap, bitmap_off + 2 * half


def _desc_index(bitmap: bytes, pfn: int) -> int:
    full, bit = divmod(pfn, 8)
    assert bitmap[full] >> bit & 1, f"pfn {pfn:#x} is not in the dump"
    return sum(bin(b).count("1") for b in bitmap[:full]) + bin(bitmap[full] & ((1 << bit) - 1)).count("1")


def patch_phys(src: str, dst: str, edits: Dict[int, bytes]) -> None:
    """Copy ``src`` to ``dst`` with the bytes at each physical address in
    ``edits`` replaced (a page may take several edits)."""
    import drgn

    prog = drgn.Program()
    prog.set_core_dump(src)
    block, _max, bitmap, desc_off = _layout(src)
    pages: Dict[int, bytearray] = {}
    for phys, data in edits.items():
        pfn, off = divmod(phys, block)
        assert off + len(data) <= block
        page = pages.setdefault(pfn, bytearray(prog.read(pfn * block, block, True)))
        page[off:off + len(data)] = data
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        for pfn, page in sorted(pages.items()):
            at = f.seek(0, 2)
            f.write(page)
            i = _desc_index(bitmap, pfn)
            f.seek(desc_off + i * _DESC.size)
            _o, _s, _fl, page_flags = _DESC.unpack(f.read(_DESC.size))
            f.seek(desc_off + i * _DESC.size)
            f.write(_DESC.pack(at, block, 0, page_flags))


def leak_edits(src: str, factor: int, caller: str = LEAKING_CALLER) -> Tuple[Dict[int, bytes], int]:
    """``(edits, pages)``: the edits that multiply ``caller``'s pages by
    ``factor``, and its pages after them."""
    import kcoretool

    k = kcoretool.open_kernel(src)
    model = k.vmalloc()
    walker = k.walker()
    edits: Dict[int, bytes] = {}
    pages = 0
    for area in model.areas:
        vm = area.vm
        if vm is not None and (vm.caller_symbol or "").startswith(caller + "+"):
            t = walker.translate(vm.object(k.prog).nr_pages.address_)
            assert t is not None
            edits[t.phys] = struct.pack("<I", vm.nr_pages * factor)
            pages += vm.nr_pages * factor
    assert edits, f"no {caller} areas in {src}"
    return edits, pages


def leaking_copy(dst: str, factor: int, src: str = DEMO) -> int:
    """A copy of ``src`` whose test-module areas hold ``factor`` times the
    pages; returns the caller's pages in the copy."""
    edits, pages = leak_edits(src, factor)
    patch_phys(src, dst, edits)
    return pages


def damaged_copy(dst: str, how: str, src: str = DEMO) -> None:
    """``how``: ``"cut"`` (the first 40% of the file), ``"header"`` (the
    header's block size overwritten) or ``"bitmap"`` (the dump bitmap
    zeroed: a dump with no pages)."""
    if how == "cut":
        with open(src, "rb") as f, open(dst, "wb") as g:
            g.write(f.read(os.path.getsize(src) * 2 // 5))
        return
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        if how == "header":
            f.seek(_HDR.size - 40)  # block_size .. in struct disk_dump_header's tail
            f.write(b"\xff" * 8)
        elif how == "bitmap":
            block, _max, bitmap, desc_off = _layout(src)
            f.seek(desc_off - len(bitmap))
            f.write(bytes(len(bitmap)))
        else:
            raise ValueError(how)


def mixed_fleet(directory: str, normal: int = 4, leaking: Tuple[int, ...] = (6, 12)) -> Dict[str, List[str]]:
    """``normal`` boots (hard links to one copy of the demo, next to
    ``directory``, under distinct names: the same content, distinct dumps),
    leaking boots (one per factor) and two damaged dumps, in ``directory``."""
    os.makedirs(directory, exist_ok=True)
    out: Dict[str, List[str]] = {"normal": [], "leaking": [], "damaged": []}
    base = os.path.abspath(directory) + ".base.kdump"
    shutil.copyfile(DEMO, base)
    for i in range(normal):
        p = os.path.join(directory, f"boot-{i}.kdump")
        os.link(base, p)
        out["normal"].append(p)
    for f in leaking:
        p = os.path.join(directory, f"leak-x{f}.kdump")
        leaking_copy(p, f)
        out["leaking"].append(p)
    for how in ("cut", "header"):
        p = os.path.join(directory, f"damaged-{how}.kdump")
        damaged_copy(p, how)
        out["damaged"].append(p)
    return out
