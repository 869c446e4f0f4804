"""
x86_64 page tables
------------------

A user-space mirror of the kernel's ``vmalloc_to_page()`` walk
(:linux:`mm/vmalloc.c`): PGD -> (P4D with 5-level paging) -> PUD -> PMD ->
PTE, stopping at 1 GiB (PUD) and 2 MiB (PMD) leaves.  Every table page is
read by physical address through a callback, so the same walker serves a
vmcore (physical PT_LOADs) and the live kernel (the direct-map RAM segments
of /proc/kcore).  Page-table pages are cached, so translating a large area
reads each table page once; call :meth:`PageTableWalker.invalidate` before
re-checking a live kernel.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from kcoretool.errors import KcoreToolError
from kcoretool.source.vmcoreinfo import VmcoreInfo
from kcoretool.x86_64 import START_KERNEL_MAP

__all__ = ("ExecRun", "PageTableWalker", "Translation", "kernel_page_table_root")

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
_PRESENT = 1 << 0
_RW = 1 << 1
_PSE = 1 << 7  # a leaf at PUD or PMD level
_NX = 1 << 63
# Physical address bits 12..51 (__PHYSICAL_MASK_SHIFT = 52); above are NX,
# protection keys and software bits.
_PHYS_MASK = ((1 << 52) - 1) & ~(PAGE_SIZE - 1)
_ENTRIES = struct.Struct("<512Q")


@dataclass(frozen=True)
class Translation:
    vaddr: int
    phys: int
    #: Bytes mapped by the leaf entry: 4 KiB, 2 MiB or 1 GiB.
    page_size: int


@dataclass(frozen=True)
class ExecRun:
    """Executable kernel memory: ``[start, end)`` mapped by present leaves
    that no level marks NX, all of one writability and leaf size."""

    start: int
    end: int
    #: writable too (RW at every level: CR0.WP makes it binding for the kernel)
    writable: bool
    #: bytes mapped by each leaf: 4 KiB, 2 MiB or 1 GiB
    page_size: int

    @property
    def size(self) -> int:
        return self.end - self.start


def kernel_page_table_root(vmcoreinfo: VmcoreInfo) -> Tuple[int, int, int]:
    """(physical address of init_top_pgt, paging levels, SME mask) from
    VMCOREINFO -- x86_64's arch_crash_save_vmcoreinfo() exports
    SYMBOL(init_top_pgt), NUMBER(phys_base), NUMBER(pgtable_l5_enabled) and
    NUMBER(sme_mask)."""
    sym = vmcoreinfo.symbol("init_top_pgt") or vmcoreinfo.symbol("swapper_pg_dir")
    phys_base = vmcoreinfo.number("phys_base")
    if sym is None or phys_base is None:
        raise KcoreToolError(
            f"{vmcoreinfo.where}: VMCOREINFO lacks SYMBOL(init_top_pgt) or NUMBER(phys_base); "
            "cannot walk the kernel page tables"
        )
    levels = 5 if vmcoreinfo.number("pgtable_l5_enabled") == 1 else 4
    sme_mask = vmcoreinfo.number("sme_mask") or 0
    # __pa_symbol(): kernel-image addresses are offset by phys_base.
    return (sym - START_KERNEL_MAP + phys_base) & ((1 << 64) - 1), levels, sme_mask


class PageTableWalker:
    """Translate kernel virtual addresses with the kernel's own page tables.

    ``read_phys(addr, size) -> bytes`` reads physical memory and raises the
    project's error when it cannot.
    """

    def __init__(
        self,
        read_phys: Callable[[int, int], bytes],
        root: int,
        levels: int = 4,
        sme_mask: int = 0,
        cache_pages: int = 4096,
    ) -> None:
        if levels not in (4, 5):
            raise ValueError("x86_64 has 4- or 5-level paging")
        self._read_phys = read_phys
        self.root = root
        self.levels = levels
        self._mask = _PHYS_MASK & ~sme_mask
        self.sme_mask = sme_mask
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_pages = cache_pages
        # Decoded PTE tables by 2 MiB region (vaddr >> 21): the fast path
        # for runs of 4 KiB pages, one dict lookup per page.
        self._ptes: Dict[int, Tuple[int, ...]] = {}
        # (shift, may be a leaf) for each level below the root table.
        self._shifts = ([48] if levels == 5 else []) + [39, 30, 21, 12]

    def invalidate(self) -> None:
        self._cache.clear()
        self._ptes.clear()

    def _table(self, phys: int) -> bytes:
        page = self._cache.get(phys)
        if page is None:
            page = self._read_phys(phys, PAGE_SIZE)
            self._cache[phys] = page
            if len(self._cache) > self._cache_pages:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(phys)
        return page

    def entry_chain(self, vaddr: int) -> Iterator[Tuple[int, int]]:
        """(shift, entry) for each level visited, like crash's ``vtop``."""
        table = self.root
        for shift in self._shifts:
            idx = (vaddr >> shift) & 511
            raw = self._table(table)
            entry = int.from_bytes(raw[idx * 8 : idx * 8 + 8], "little")
            yield shift, entry
            if not entry & _PRESENT:
                return
            if shift in (30, 21) and entry & _PSE:
                return
            table = entry & self._mask
            if shift == 21 and self._cache_pages:
                region = vaddr >> 21
                if region not in self._ptes:
                    if len(self._ptes) >= self._cache_pages:
                        self._ptes.clear()
                    self._ptes[region] = _ENTRIES.unpack(self._table(table))

    def lookup(self, vaddr: int) -> Tuple[Optional[Translation], int]:
        """(translation or None, span): span is the size of the naturally
        aligned region the deciding entry covers -- a non-present PMD says
        2 MiB are unmapped at once."""
        for shift, entry in self.entry_chain(vaddr):
            if not entry & _PRESENT:
                return None, 1 << shift
            if shift == 12 or (shift in (30, 21) and entry & _PSE):
                size = 1 << shift
                base = entry & self._mask & ~(size - 1)
                return Translation(vaddr, base | (vaddr & (size - 1)), size), size
        return None, PAGE_SIZE  # unreachable: the PTE level always decides

    def translate(self, vaddr: int) -> Optional[Translation]:
        """The physical address ``vaddr`` maps to, or None if not mapped."""
        return self.lookup(vaddr)[0]

    def runs(self, vaddr: int, size: int) -> Iterator[Tuple[int, Optional[int], int]]:
        """Split [vaddr, vaddr+size) into (vaddr, phys or None, length) runs
        that are physically contiguous (or unmapped throughout)."""
        end = vaddr + size
        pos = vaddr
        run_v: Optional[int] = None
        run_p: Optional[int] = None
        run_len = 0
        mask = self._mask
        ptes_by_region = self._ptes
        while pos < end:
            ptes = ptes_by_region.get(pos >> 21)
            if ptes is not None:
                # Fast path: a decoded PTE table covers this 2 MiB region;
                # walk its 4 KiB entries in one tight loop.
                region_end = ((pos >> 21) + 1) << 21
                if region_end > end:
                    region_end = end
                while pos < region_end:
                    entry = ptes[(pos >> 12) & 511]
                    nxt = (pos | 0xFFF) + 1
                    if nxt > region_end:
                        nxt = region_end
                    n = nxt - pos
                    if entry & _PRESENT:
                        phys = (entry & mask) | (pos & 0xFFF)
                        if run_p is not None and run_v is not None and run_p + run_len == phys:
                            run_len += n
                        else:
                            if run_v is not None:
                                yield run_v, run_p, run_len
                            run_v, run_p, run_len = pos, phys, n
                    elif run_v is not None and run_p is None:
                        run_len += n
                    else:
                        if run_v is not None:
                            yield run_v, run_p, run_len
                        run_v, run_p, run_len = pos, None, n
                    pos = nxt
                continue
            t, span = self.lookup(pos)
            n = min(end, (pos & ~(span - 1)) + span) - pos
            leaf = t.phys if t is not None else None
            if run_v is not None and (
                (leaf is None and run_p is None)
                or (leaf is not None and run_p is not None and run_p + run_len == leaf)
            ):
                run_len += n
            else:
                if run_v is not None:
                    yield run_v, run_p, run_len
                run_v, run_p, run_len = pos, leaf, n
            pos += n
        if run_v is not None:
            yield run_v, run_p, run_len

    def executable_runs(self) -> List[ExecRun]:
        """Every executable run of the kernel half (PGD entries 256..511).

        Level by level, one read of each table page, non-present and NX
        entries skipped where they stand (an NX PMD hides its 512 PTEs);
        the effective rights are those of x86: NX if any level says NX,
        writable only if every level says RW.  Adjacent runs of the same
        rights and leaf size are merged."""
        top = 57 if self.levels == 5 else 48
        base = (-1 << (top - 1)) & ((1 << 64) - 1)  # sign-extended kernel half
        shifts = self._shifts
        mask = self._mask
        leaves: List[Tuple[int, int, bool]] = []
        # (table phys, level index, va of its entry 0, writable so far)
        level: List[Tuple[int, int, int, bool]] = [(self.root, 0, base, True)]
        first = True
        while level:
            nxt: List[Tuple[int, int, int, bool]] = []
            for table, li, va0, w_ok in level:
                shift = shifts[li]
                ents = _ENTRIES.unpack(self._table(table))
                lo = 256 if first else 0
                for i in range(lo, 512):
                    e = ents[i]
                    if not e & _PRESENT or e & _NX:
                        continue
                    va = va0 | (i << shift)
                    w = w_ok and bool(e & _RW)
                    if shift == 12 or (shift in (30, 21) and e & _PSE):
                        leaves.append((va, 1 << shift, w))
                    elif shift > 12:
                        nxt.append((e & mask, li + 1, va, w))
            first = False
            level = nxt
        leaves.sort()
        out: List[ExecRun] = []
        for va, size, w in leaves:
            last = out[-1] if out else None
            if last is not None and last.end == va and last.writable == w and last.page_size == size:
                out[-1] = ExecRun(last.start, va + size, w, size)
            else:
                out.append(ExecRun(va, va + size, w, size))
        return out
