# SPDX-License-Identifier: LGPL-2.1-or-later
"""
VM_* flag bits
--------------

``vm_struct.flags`` (``VM_*``, include/linux/vmalloc.h),
``vmap_area.flags`` (``VM_LAZY_FREE`` <= 5.3, ``VMAP_RAM``/``VMAP_BLOCK``
6.3+, mm/vmalloc.c) and ``vm_area_struct.vm_flags`` (include/linux/mm.h),
and their names, by one function (:func:`vm_flag_names`) over either
table.  Which meaning a vmalloc bit has on a given kernel is the
:class:`~kcoretool.kernel.layout.Layout`'s to say.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

__all__ = (
    "VM_ALLOC",
    "VM_DMA_COHERENT",
    "VM_FLAG_NAMES",
    "VMA_FLAG_NAMES",
    "VM_IOREMAP",
    "VM_LAZY_FREE",
    "VM_LAZY_FREEING",
    "VM_MAP",
    "VM_NO_GUARD",
    "VM_SPARSE",
    "VM_UNINITIALIZED",
    "VM_USERMAP",
    "VM_VM_AREA",
    "VMAP_BLOCK",
    "VMAP_FLAGS_MASK",
    "VMAP_RAM",
    "vm_flag_names",
    "vm_struct_flag_names",
)

# include/linux/vmalloc.h; stable since v5.x except where noted
VM_IOREMAP = 0x1
VM_ALLOC = 0x2
VM_MAP = 0x4
VM_USERMAP = 0x8
VM_DMA_COHERENT = 0x10
VM_UNINITIALIZED = 0x20
VM_NO_GUARD = 0x40
VM_SPARSE = 0x1000

VM_FLAG_NAMES = (
    (0x1, "VM_IOREMAP"),
    (0x2, "VM_ALLOC"),
    (0x4, "VM_MAP"),
    (0x8, "VM_USERMAP"),
    (0x10, "VM_DMA_COHERENT"),
    (0x20, "VM_UNINITIALIZED"),
    (0x40, "VM_NO_GUARD"),
    (0x80, "VM_KASAN"),
    (0x100, "VM_FLUSH_RESET_PERMS"),
    (0x200, "VM_MAP_PUT_PAGES"),
    (0x400, "VM_ALLOW_HUGE_VMAP"),
    (0x800, "VM_DEFER_KMEMLEAK"),
    (0x1000, "VM_SPARSE"),
)

# <= 5.3 vmap_area.flags (db64fe02258f)
VM_LAZY_FREE = 0x1
VM_LAZY_FREEING = 0x2
VM_VM_AREA = 0x4
# 6.3+ vmap_area.flags (869176a09606)
VMAP_RAM = 0x1
VMAP_BLOCK = 0x2
VMAP_FLAGS_MASK = 0x3

# include/linux/mm.h: vm_area_struct.vm_flags (same bits 5.10 .. 7.x; pkey bits 32-35)
VM_READ, VM_WRITE, VM_EXEC, VM_SHARED = 0x1, 0x2, 0x4, 0x8
VM_MAYSHARE = 0x80
VMA_FLAG_NAMES = (
    (0x1, "READ"), (0x2, "WRITE"), (0x4, "EXEC"), (0x8, "SHARED"), (0x10, "MAYREAD"),
    (0x20, "MAYWRITE"), (0x40, "MAYEXEC"), (0x80, "MAYSHARE"), (0x100, "GROWSDOWN"),
    (0x200, "UFFD_MISSING"), (0x400, "PFNMAP"), (0x1000, "UFFD_WP"), (0x2000, "LOCKED"),
    (0x4000, "IO"), (0x8000, "SEQ_READ"), (0x10000, "RAND_READ"), (0x20000, "DONTCOPY"),
    (0x40000, "DONTEXPAND"), (0x80000, "LOCKONFAULT"), (0x100000, "ACCOUNT"),
    (0x200000, "NORESERVE"), (0x400000, "HUGETLB"), (0x800000, "SYNC"), (0x1000000, "PAT"),
    (0x2000000, "WIPEONFORK"), (0x4000000, "DONTDUMP"), (0x8000000, "SOFTDIRTY"),
    (0x10000000, "MIXEDMAP"), (0x20000000, "HUGEPAGE"), (0x40000000, "NOHUGEPAGE"),
    (0x80000000, "MERGEABLE"),
)

FlagTable = Tuple[Tuple[int, str], ...]
_struct_tables: Dict[Tuple[bool, bool], FlagTable] = {}
_flag_names_cache: Dict[Tuple[int, FlagTable], Tuple[str, ...]] = {}


def vm_struct_flag_names(allow_huge: bool = True, sparse: bool = True) -> FlagTable:
    """The ``vm_struct.flags`` names of a kernel: 0x400 is VM_NO_HUGE_VMAP
    from 121e6f3258fe (v5.13) to 559089e0a93d (v5.18), an opt-out flag;
    VM_SPARSE (0x1000) only where the kernel has it."""
    table = _struct_tables.get((allow_huge, sparse))
    if table is None:
        table = _struct_tables[(allow_huge, sparse)] = tuple(
            (bit, "VM_NO_HUGE_VMAP" if bit == 0x400 and not allow_huge else name)
            for bit, name in VM_FLAG_NAMES if sparse or bit != 0x1000)
    return table


def vm_flag_names(flags: int, table: FlagTable = VM_FLAG_NAMES) -> Tuple[str, ...]:
    """Names of the bits of ``flags`` that ``table`` names -- ``vm_struct.flags``
    by default (:func:`vm_struct_flag_names` for a kernel's variant),
    :data:`VMA_FLAG_NAMES` for a VMA's -- and the other bits as one hex
    number."""
    key = (flags, table)
    names = _flag_names_cache.get(key)
    if names is not None:
        return names
    out: List[str] = []
    rest = flags
    for bit, name in table:
        if flags & bit:
            out.append(name)
            rest &= ~bit
    if rest:
        out.append(hex(rest))
    names = tuple(out)
    if len(_flag_names_cache) < 4096:
        _flag_names_cache[key] = names
    return names
