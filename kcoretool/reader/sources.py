"""
Physical memory for the reader
------------------------------

The reader needs two things from the target: physical reads that say when a
page is missing, and the kernel's page-table root.  A vmcore's physical
segments, /proc/kcore's direct-map RAM segments and a drgn Program all
provide them; the functions here adapt each one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from kcoretool.errors import AddressError
from kcoretool.reader.pagetable import PageTableWalker, kernel_page_table_root
from kcoretool.reader.report import PageRun, ReadReport
from kcoretool.source.core import Core
from kcoretool.source.vmcoreinfo import VmcoreInfo

if TYPE_CHECKING:
    import drgn

__all__ = ("core_phys_reader", "needs_pagetables", "program_phys_reader", "read_segments", "walker_from_vmcoreinfo")


def needs_pagetables(core: Core, addr: int) -> bool:
    """Whether reading ``addr`` must walk the page tables (``read --via
    auto``): /proc/kcore's vmalloc and modules segments are the kernel's
    vread -- right for vmalloc memory only in part (see ``vmalloc check``)
    -- and a vmcore holds no vmalloc addresses at all; anything else the
    core holds as plain memory is read from its segments."""
    seg = core.find_segment(addr)
    if seg is None:
        return True
    # A saved copy of kcore holds what the kernel returned; nothing else to ask.
    return seg.kind in ("vmalloc", "modules") and core.is_live


def read_segments(core: Core, addr: int, size: int, sink: Any, chunk: int = 1 << 20) -> ReadReport:
    """``read --via elf`` as a :class:`ReadReport`: the core's own segments,
    bytes the dump left out as ``excluded``, bytes past a truncated dump's
    end as ``truncated`` (both zero-filled)."""
    report = ReadReport(addr, size, "elf")
    for lo in range(addr, addr + size, chunk):
        n = min(chunk, addr + size - lo)
        res = core.read_ex(lo, n, False)
        sink.write(res.data)
        gaps = sorted([(a, m, "excluded") for a, m in res.zero_filled]
                      + [(a, m, "truncated") for a, m in res.truncated])
        pos = lo
        for a, m, state in gaps:
            if a > pos:
                report.add(PageRun(pos, a - pos, "data"))
            report.add(PageRun(a, m, state))
            pos = a + m
        if pos < lo + n:
            report.add(PageRun(pos, lo + n - pos, "data"))
    return report


def core_phys_reader(core: Core) -> Callable[[int, int], bytes]:
    """Physical reads from a :class:`kcoretool.source.Core`.  Bytes a dump
    left out -- past p_filesz, or in no segment -- raise AddressError: the
    reader reports them as excluded rather than as zero data."""
    read_dumped = core.read_dumped

    def read_phys(addr: int, size: int) -> bytes:
        return read_dumped(addr, size, True)

    return read_phys


def program_phys_reader(prog: drgn.Program, truncated_at: Optional[Callable[[int, int], Optional[int]]] = None
                        ) -> Callable[[int, int], bytes]:
    """Physical reads through a drgn Program (e.g. one a drgn session opened).
    ``truncated_at(addr, size)``: for a cut kdump file, the first address
    whose page lies past its end -- never handed to libkdumpfile."""
    import drgn

    def read_phys(addr: int, size: int) -> bytes:
        if truncated_at is not None:
            cut = truncated_at(addr, size)
            if cut is not None:
                raise AddressError(f"physical {cut:#x} lies past the end of the truncated dump", cut,
                                   state="truncated")
        try:
            return prog.read(addr, size, True)
        except drgn.FaultError as e:
            raise AddressError(f"physical {e.address:#x} is not readable: {e}", e.address) from None

    return read_phys


def walker_from_vmcoreinfo(vmcoreinfo: VmcoreInfo, read_phys: Callable[[int, int], bytes]) -> PageTableWalker:
    root, levels, sme_mask = kernel_page_table_root(vmcoreinfo)
    return PageTableWalker(read_phys, root, levels=levels, sme_mask=sme_mask)
