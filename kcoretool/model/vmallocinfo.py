# SPDX-License-Identifier: LGPL-2.1-or-later
"""
/proc/vmallocinfo
-----------------

:func:`vmallocinfo_lines` reproduces ``/proc/vmallocinfo`` of the same
kernel, line for line, from a :class:`VmallocModel`: same fields and the
same order rules per layout (``s_show()`` <= 6.8, ``vmalloc_info_show()``
6.9+, :linux:`mm/vmalloc.c`). Addresses print as ``%pK`` does for a
privileged reader (``kptr_restrict`` allowing them).
"""

from __future__ import annotations

from typing import Callable, Dict, Iterator, Optional

from kcoretool.kernel.vmflags import (
    VM_ALLOC,
    VM_DMA_COHERENT,
    VM_IOREMAP,
    VM_MAP,
    VM_SPARSE,
    VM_UNINITIALIZED,
    VM_USERMAP,
    VMAP_RAM,
)
from kcoretool.model.area import Area, VmStruct
from kcoretool.model.vmalloc import VmallocModel

__all__ = ("vmallocinfo_lines",)


def _vm_line(m: VmallocModel, v: VmStruct, sparse: bool,
             numa: Optional[Callable[[VmStruct], Dict[int, int]]],
             symbolize: Optional[Callable[[int], Optional[str]]]) -> str:
    parts = [f"0x{v.addr:016x}-0x{v.addr + v.size:016x} {v.size:7d}"]
    if v.caller:
        text = symbolize(v.caller) if symbolize is not None else v.caller_symbol
        parts.append(" " + (text or f"0x{v.caller:x}"))
    if v.nr_pages:
        parts.append(f" pages={v.nr_pages}")
    if v.phys_addr:
        parts.append(f" phys=0x{v.phys_addr:016x}")
    f = v.flags
    if f & VM_IOREMAP:
        parts.append(" ioremap")
    # e6f798225a31 (v6.9) added " sparse" between ioremap and vmalloc.
    if sparse and f & VM_SPARSE:
        parts.append(" sparse")
    if f & VM_ALLOC:
        parts.append(" vmalloc")
    if f & VM_MAP:
        parts.append(" vmap")
    if f & VM_USERMAP:
        parts.append(" user")
    if f & VM_DMA_COHERENT:
        parts.append(" dma-coherent")
    if m.vmalloc_start <= v.pages_array < m.vmalloc_end:
        parts.append(" vpages")
    if numa is not None and not f & VM_UNINITIALIZED:
        for nid, n in numa(v).items():
            if n:
                parts.append(f" N{nid}={n}")
    return "".join(parts)


def _ram_line(a: Area, what: str) -> str:
    return f"0x{a.start:016x}-0x{a.end:016x} {a.end - a.start:7d} {what}"


def vmallocinfo_lines(
    model: VmallocModel,
    numa: Optional[Callable[[VmStruct], Dict[int, int]]] = None,
    symbolize: Optional[Callable[[int], Optional[str]]] = None,
) -> Iterator[str]:
    """
    Yield the lines of ``/proc/vmallocinfo`` (without newlines).

    :param numa: per-vm_struct ``{node: pages}`` (see
        :func:`kcoretool.model.vm_numa_counts`); pass it for CONFIG_NUMA
        kernels to get the `` N0=...`` fields.
    :param symbolize: caller address -> ``%pS`` text. The model's
        ``caller_symbol`` carries the ELF symbol size; for the kernel's exact
        text pass ``kcoretool.kernel.Symbolizer(prog, kallsyms_size=True)``.
    """
    lay = model.layout
    sparse = lay.vm_sparse
    for a in model.walk_order:
        if lay.va_flags == "legacy":
            # <= 5.3 s_show(): entries without VM_VM_AREA print as
            # "unpurged vm_area" (VM_LAZY_FREE) or "vm_map_ram".
            if a.vm is None:
                yield _ram_line(a, "unpurged vm_area" if a.lazy else "vm_map_ram")
                continue
        elif a.vm is None:
            if lay.va_flags == "vmap_ram":
                # 869176a09606 (v6.3): only VMAP_RAM areas print.
                if (a.va_flags or 0) & VMAP_RAM:
                    yield _ram_line(a, "vm_map_ram")
            else:
                # <= 6.2: every busy area with vm == NULL prints.
                yield _ram_line(a, "vm_map_ram")
            continue
        if lay.vmallocinfo_skips_uninitialized and a.vm.flags & VM_UNINITIALIZED:
            continue
        yield _vm_line(model, a.vm, sparse, numa, symbolize)
    # show_purge_info(): <= 6.8 prints it from s_show() on the last busy
    # entry only (so not at all when the busy list is empty); 6.9+ always.
    if lay.va_flags == "legacy":
        return
    if lay.busy == "vmap_nodes" or model.walk_order:
        for a in model.lazy:
            yield _ram_line(a, "unpurged vm_area")
