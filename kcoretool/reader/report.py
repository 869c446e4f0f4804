"""
Read reports
------------

What every page of a read turned out to be.  A reader never hands back a
zero-filled page without a state saying why it is zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional

from kcoretool.errors import AddressError, ArgumentError

__all__ = ("PAGE_STATES", "PageRun", "ReadReport", "ZERO_STATES", "check_range")

#: Page states, with what the bytes in the sink are.
PAGE_STATES = {
    "data": "read from the physical page the page tables map",
    "unmapped": "zeros: inside an area, but the page tables map nothing here",
    "guard": "zeros: the guard page at the end of a vm_struct area",
    "hole": "zeros: no vmap area covers this address",
    "lazy": "zeros: the area was freed and awaits a lazy purge",
    "block-unused": "zeros: a vmap block page never handed out",
    "block-dirty": "zeros: a vmap block page freed again (TLB flush pending)",
    "ioremap": "zeros: device memory, not read (force_io=True reads it)",
    "sparse": "zeros: a VM_SPARSE page that is not present",
    "sparse-skipped": "zeros: a VM_SPARSE area, not read (sparse=True reads its present pages)",
    "uninitialised": "zeros: a VM_UNINITIALIZED area still being set up",
    "excluded": "zeros: the page was not saved in the dump (makedumpfile filtering)",
    "truncated": "zeros: the dump file was cut short before this page's data",
    "raced": "zeros: the area was freed or remapped while being read",
    "unreadable": "zeros: the physical page could not be read",
    "kcore": "as /proc/kcore's own vread returned it (no provenance)",
    # user memory (read --pid)
    "zero-page": "zeros: the shared zero page (an anonymous page read but never written)",
    "not-present": "zeros: the page tables map nothing here (never faulted in)",
    "swapped": "zeros: the page is in swap (the run's detail names the swap type and offset)",
    "file-not-cached": "zeros: a file page neither mapped nor in the page cache (only in the file)",
    "no-vma": "zeros: no VMA of the task covers this address",
}
ZERO_STATES = frozenset(s for s in PAGE_STATES if s not in ("data", "kcore"))


@dataclass
class PageRun:
    """Consecutive pages in one state (data runs are physically contiguous)."""

    vaddr: int
    size: int
    state: str
    #: physical address of the first byte, for data runs
    phys: Optional[int] = None
    #: start of the vmap area (or, for user reads, the VMA) the run belongs to
    area: Optional[int] = None
    #: what else is known (user reads: "swap type 0 offset 0x12", "page cache")
    detail: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        d = {"vaddr": self.vaddr, "size": self.size, "state": self.state,
             "phys": self.phys, "area": self.area}
        if self.detail is not None:
            d["detail"] = self.detail
        return d


@dataclass
class ReadReport:
    addr: int
    size: int
    via: str
    runs: List[PageRun] = field(default_factory=list)
    #: revalidation failures that led to a re-read (live only)
    retries: int = 0

    def add(self, run: PageRun) -> None:
        """Append, merging with the previous run when it continues it."""
        if self.runs:
            last = self.runs[-1]
            if (
                last.state == run.state
                and last.area == run.area
                and last.detail == run.detail
                and last.vaddr + last.size == run.vaddr
                and (last.phys is None) == (run.phys is None)
                and (run.phys is None or (last.phys is not None and last.phys + last.size == run.phys))
            ):
                last.size += run.size
                return
        self.runs.append(run)

    def bytes_by_state(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for r in self.runs:
            out[r.state] = out.get(r.state, 0) + r.size
        return out

    def pages_by_state(self, page_size: int = 4096) -> Dict[str, int]:
        """Pages touched per state (a partial page counts once)."""
        out: Dict[str, int] = {}
        for r in self.runs:
            first = r.vaddr // page_size
            last = (r.vaddr + r.size - 1) // page_size
            out[r.state] = out.get(r.state, 0) + last - first + 1
        return out

    def run_at(self, addr: int) -> Optional[PageRun]:
        """The run holding ``addr``, or None outside the read."""
        for r in self.runs:
            if r.vaddr <= addr < r.vaddr + r.size:
                return r
        return None

    def state_at(self, addr: int) -> Optional[str]:
        run = self.run_at(addr)
        return run.state if run is not None else None

    def zero_runs(self) -> Iterator[PageRun]:
        return (r for r in self.runs if r.state in ZERO_STATES)

    def to_dict(self) -> Dict[str, Any]:
        return {"addr": self.addr, "size": self.size, "via": self.via, "retries": self.retries,
                "bytes_by_state": self.bytes_by_state(), "runs": [r.to_dict() for r in self.runs]}


def check_range(addr: int, size: int) -> None:
    """Refuse a read of ``size`` bytes at ``addr`` that is not one: a
    negative size, an address outside 64 bits, a range past 2^64 (every
    address loop is bounded by the top of the address space)."""
    if size < 0:
        raise ArgumentError(f"size {size}: a read needs a length of 0 or more bytes")
    if not 0 <= addr < 1 << 64:
        # the caller's mistake, not an address the core lacks
        raise ArgumentError(f"{addr:#x} is not a 64-bit address")
    if addr + size > 1 << 64:
        raise AddressError(f"{addr:#x}+{size:#x} runs past the top of the 64-bit address space "
                           f"({(1 << 64) - 1:#x}); shorten the length", addr)
