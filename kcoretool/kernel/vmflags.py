# SPDX-License-Identifier: LGPL-2.1-or-later
"""
vmalloc flag bits
-----------------

``vm_struct.flags`` (``VM_*``, include/linux/vmalloc.h) and
``vmap_area.flags`` (``VM_LAZY_FREE`` <= 5.3, ``VMAP_RAM``/``VMAP_BLOCK``
6.3+, mm/vmalloc.c), and their names.  Which meaning a bit has on a given
kernel is the :class:`~kcoretool.kernel.layout.Layout`'s to say.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

__all__ = (
    "VM_ALLOC",
    "VM_DMA_COHERENT",
    "VM_FLAG_NAMES",
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

_flag_names_cache: Dict[Tuple[int, bool, bool], Tuple[str, ...]] = {}


def vm_flag_names(flags: int, allow_huge: bool = True, sparse: bool = True) -> Tuple[str, ...]:
    """Names of ``vm_struct.flags`` bits; unknown bits as hex."""
    key = (flags, allow_huge, sparse)
    names = _flag_names_cache.get(key)
    if names is not None:
        return names
    out: List[str] = []
    rest = flags
    for bit, name in VM_FLAG_NAMES:
        if flags & bit:
            if bit == 0x400 and not allow_huge:
                # 121e6f3258fe (v5.13) .. 559089e0a93d (v5.18): opt-out flag.
                name = "VM_NO_HUGE_VMAP"
            if bit == 0x1000 and not sparse:
                continue
            out.append(name)
            rest &= ~bit
    if rest:
        out.append(hex(rest))
    names = tuple(out)
    if len(_flag_names_cache) < 4096:
        _flag_names_cache[key] = names
    return names
