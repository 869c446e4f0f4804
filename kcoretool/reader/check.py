"""
Checking /proc/kcore against the page tables
--------------------------------------------

Reads each area twice -- through the kernel's own vread (the vmalloc and
modules segments of /proc/kcore) and through the page tables -- and explains
every page where they differ by the kernel defect it matches:

``vm_map_ram-zeros``
    Before 6.3, vread() skips every vmap area without a vm_struct, so all
    vm_map_ram memory -- large areas and block pieces -- reads as zeros.
    Fixed by "mm/vmalloc.c: allow vread() to read out vm_map_ram areas"
    (v6.3), which needed 869176a09606 ("mm/vmalloc.c: add flags to mark
    vm_map_ram area").
``stale-bounce-buffer``
    Before 6.4, read_kcore() copies its per-file bounce buffer to the user
    even when vread() found nothing to copy, so a hole can return the bytes
    of the page read before it on the same file descriptor.  Gone with the
    iterator conversion, Lorenzo Stoakes' series "convert read_kcore(),
    vread() to use iterators" (v6.4).
``block-run-start``
    From 6.3, vmap_ram_vread() (vmap_ram_vread_iter() from 6.4) copies each used run of a vmap block
    starting at the run's first page plus the offset into the *requested*
    page, without skipping runs that end before the requested address, so
    every page of a block read back is the block's first used page.
``unexplained``
    Anything else.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional

from kcoretool.model.area import Area
from kcoretool.reader.report import ZERO_STATES
from kcoretool.reader.vread import CHUNK, VmallocReader

__all__ = ("AreaCheck", "DEFECTS", "KcoreChecker", "Mismatch", "summarize")

DEFECTS = {
    "vm_map_ram-zeros": "vread() skips areas without a vm_struct (before 6.3): vm_map_ram memory reads as zeros",
    "stale-bounce-buffer": "read_kcore() returns its bounce buffer's stale bytes for a hole (before 6.4)",
    "block-run-start": "vmap_ram_vread(_iter)() copies from the block's first used run (6.3+): wrong page",
    "unexplained": "differs for no known reason",
}


@dataclass
class Mismatch:
    vaddr: int
    page: int  #: index of the page in its area
    pagetable_state: str
    defect: str

    def to_dict(self) -> Dict[str, object]:
        return {"vaddr": self.vaddr, "page": self.page, "pagetable_state": self.pagetable_state,
                "defect": self.defect}


@dataclass
class AreaCheck:
    start: int
    end: int
    kind: str
    pages: int
    mismatches: List[Mismatch] = field(default_factory=list)
    #: data pages that differed because they were being written while read
    changing: List[int] = field(default_factory=list)

    def by_defect(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for m in self.mismatches:
            out[m.defect] = out.get(m.defect, 0) + 1
        return out

    def to_dict(self) -> Dict[str, object]:
        return {"start": self.start, "end": self.end, "kind": self.kind, "pages": self.pages,
                "by_defect": self.by_defect(), "mismatches": [m.to_dict() for m in self.mismatches],
                "changing": self.changing}


class KcoreChecker:
    """Compares areas page by page.  ``kcore_read(addr, size)`` reads through
    /proc/kcore's vmalloc or modules segment on one file descriptor; the
    checker remembers the last page that descriptor returned, because the
    stale-buffer defect is per descriptor."""

    def __init__(self, reader: VmallocReader, kcore_read: Callable[[int, int], bytes]) -> None:
        self.reader = reader
        self._kcore_read = kcore_read
        self.last_page: Optional[bytes] = None
        #: the last page with data the descriptor returned, to prime it
        #: before reading a hole (see :meth:`check`)
        self._primer: Optional[int] = None

    def kcore(self, va: int, size: int) -> bytes:
        data = self._kcore_read(va, size)
        self.last_page = data[-self.reader.page_size:]
        return data

    def _in_flux(self, va: int, got: bytes, want: bytes) -> bool:
        """Live memory changes under the reader (a running task's stack, a
        buffer being filled): read the page again.  If the page tables now
        give other bytes, or kcore's answer matches the new ones, the page
        was being written, not misread."""
        again = _page_of(self.reader, va)
        return again != want or got == again or self.kcore(va, self.reader.page_size) == again

    def check(self, area: Area) -> AreaCheck:
        reader = self.reader
        ps = reader.page_size
        result = AreaCheck(area.start, area.end, area.kind, (area.end - area.start) // ps)
        block = reader.model.block_of(area) if area.kind == "vmap_block" else None
        first_used: Optional[bytes] = None
        if block is not None and block.used:
            first_used = _page_of(reader, area.start + block.used[0][0] * ps)
        for lo in range(area.start, area.end, CHUNK):
            n = min(CHUNK, area.end - lo)
            sink = io.BytesIO()
            report = reader.read(lo, n, sink)
            truth = sink.getvalue()
            for off in range(0, n, ps):
                va = lo + off
                want = truth[off : off + ps]
                state = report.state_at(va) or "hole"
                if state in ("hole", "lazy") and self._primer is not None and not any(self.last_page or b""):
                    # A stale buffer only shows after a page with data: read
                    # one first, so the defect is found wherever it exists.
                    self.kcore(self._primer, ps)
                prev = self.last_page
                got = self.kcore(va, ps)
                if state == "data" and any(got) and got == want:
                    self._primer = va
                if got != want and state == "data" and self._in_flux(va, got, want):
                    result.changing.append(va)
                    continue
                if got != want:
                    defect = _classify(area, state, got, prev, first_used)
                    result.mismatches.append(Mismatch(va, (va - area.start) // ps, state, defect))
        return result


def _page_of(reader: VmallocReader, va: int) -> bytes:
    sink = io.BytesIO()
    reader.read(va, reader.page_size, sink)
    return sink.getvalue()


def _classify(area: Area, state: str, got: bytes, prev: Optional[bytes], first_used: Optional[bytes]) -> str:
    zero = not any(got)
    if area.kind == "vmap_block" and first_used is not None and got == first_used:
        return "block-run-start"
    if zero and state == "data" and area.vm is None:
        return "vm_map_ram-zeros"
    if state in ZERO_STATES and not zero and prev is not None and got == prev:
        return "stale-bounce-buffer"
    return "unexplained"


def summarize(checks: Iterable[AreaCheck]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for c in checks:
        for k, v in c.by_defect().items():
            out[k] = out.get(k, 0) + v
    return out
