# SPDX-License-Identifier: LGPL-2.1-or-later
"""
x86-64 address-space facts
--------------------------

The kernel virtual addresses fixed by the architecture
(``arch/x86/include/asm/page_64_types.h``, ``pgtable_64_types.h``), not by
KASLR, which moves regions *within* these bounds.  The one home of every
such constant; every layer may import it.
"""

from __future__ import annotations

__all__ = (
    "KERNEL_HALF",
    "KERNEL_IMAGE_SIZE_MIN",
    "MODULES_END",
    "START_KERNEL_MAP",
    "VMALLOC_SIZE_TB_L4",
    "VMALLOC_SIZE_TB_L5",
    "VMALLOC_START_L4",
    "VMEMMAP_START_L4",
    "VSYSCALL_ADDR",
)

#: __START_KERNEL_map: the top 2 GiB map the kernel image, then the modules.
START_KERNEL_MAP = 0xFFFF_FFFF_8000_0000
#: MODULES_END: the module range ends here (the fixmap follows).
MODULES_END = 0xFFFF_FFFF_FF00_0000
#: The smaller of the two KERNEL_IMAGE_SIZEs (512 MiB without KASLR, 1 GiB
#: with): MODULES_VADDR = __START_KERNEL_map + KERNEL_IMAGE_SIZE.
KERNEL_IMAGE_SIZE_MIN = 512 << 20
#: VSYSCALL_ADDR: the legacy vsyscall page, a fixed user ABI address.
VSYSCALL_ADDR = 0xFFFF_FFFF_FF60_0000
#: VMEMMAP_START with 4-level paging and no KASLR (__VMEMMAP_BASE_L4): the
#: struct page array when the kernel has no vmemmap_base to read.
VMEMMAP_START_L4 = 0xFFFF_EA00_0000_0000
#: VMALLOC_START with 4-level paging and no KASLR (__VMALLOC_BASE_L4).
VMALLOC_START_L4 = 0xFFFF_C900_0000_0000
#: VMALLOC_SIZE_TB_L4 / _L5: the vmalloc range's size in TiB.
VMALLOC_SIZE_TB_L4 = 32
VMALLOC_SIZE_TB_L5 = 12800
#: Lowest kernel pointer a walk accepts.  With 5-level paging the kernel half
#: starts at 0xff00000000000000; with 4-level it starts higher, at
#: 0xffff800000000000, so this bound holds for both.
KERNEL_HALF = 0xFF00_0000_0000_0000
