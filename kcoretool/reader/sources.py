"""
Physical memory for the reader
------------------------------

The reader needs two things from the target: physical reads that say when a
page is missing, and the kernel's page-table root.  A vmcore's physical
segments, /proc/kcore's direct-map RAM segments and a drgn Program all
provide them; the functions here adapt each one.
"""

from __future__ import annotations

from typing import Callable

from kcoretool.errors import AddressError
from kcoretool.reader.pagetable import PageTableWalker, kernel_page_table_root
from kcoretool.source.vmcoreinfo import VmcoreInfo

__all__ = ("core_phys_reader", "program_phys_reader", "walker_from_vmcoreinfo")


def core_phys_reader(core) -> Callable[[int, int], bytes]:
    """Physical reads from a :class:`kcoretool.source.Core`.  Bytes a dump
    left out -- past p_filesz, or in no segment -- raise AddressError: the
    reader reports them as excluded rather than as zero data."""

    find, read_file = core.find_segment, core._read_file

    def read_phys(addr: int, size: int) -> bytes:
        seg = find(addr, True)
        if seg is not None and addr + size <= seg.paddr + seg.filesz:
            # The common case: wholly inside one segment's file bytes.
            return read_file(seg.offset + addr - seg.paddr, size, addr, True)
        res = core.read_ex(addr, size, physical=True)
        if res.zero_filled:
            a, _ = res.zero_filled[0]
            raise AddressError(f"{core.path}: physical {a:#x} is not in the dump", a)
        return res.data

    return read_phys


def program_phys_reader(prog) -> Callable[[int, int], bytes]:
    """Physical reads through a drgn Program (e.g. one a drgn session opened)."""
    import drgn

    def read_phys(addr: int, size: int) -> bytes:
        try:
            return prog.read(addr, size, True)
        except drgn.FaultError as e:
            raise AddressError(f"physical {e.address:#x} is not readable: {e}", e.address) from None

    return read_phys


def walker_from_vmcoreinfo(vmcoreinfo: VmcoreInfo, read_phys: Callable[[int, int], bytes]) -> PageTableWalker:
    root, levels, sme_mask = kernel_page_table_root(vmcoreinfo)
    return PageTableWalker(read_phys, root, levels=levels, sme_mask=sme_mask)
