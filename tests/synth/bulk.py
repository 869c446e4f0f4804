# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Large synthetic kernels for benchmarks: ``n`` busy areas written straight
into the image with precompiled packers (no per-area spec objects), on the
6.9+ ``vmap_nodes`` layout (or any other layout from
:data:`tests.synth.layouts.LAYOUTS`).
"""

from __future__ import annotations

import struct
from typing import List, Optional

from tests.synth.layouts import (
    MODULES_VADDR,
    PAGE,
    VM_ALLOC,
    VM_IOREMAP,
    VM_MAP,
    VMALLOC_START,
    Scene,
    SynthKernel,
)

KINDS_CYCLE = (VM_ALLOC, VM_ALLOC, VM_ALLOC, VM_MAP, VM_IOREMAP, None)


def build_bulk(n: int, layout: str = "6.12", callers: int = 200, core: Optional[str] = None) -> SynthKernel:
    """A kernel with ``n`` busy areas (mostly vmalloc; some vmap, ioremap,
    vm_map_ram; every 50th in the module range) and ``callers`` distinct
    callers.  With ``core``, the image is written there as an ELF core file
    that the program reads (:meth:`Image.attach_core`) and is not kept in
    the process."""
    k = SynthKernel(layout, Scene(areas=[], nodes=2 if layout in ("6.9", "6.12", "latest") else 1),
                    attach=core is None)
    img, f = k.img, k.f
    caller_addrs = [k.caller(f"caller_fn_{i}") for i in range(callers)]
    va_sz, vm_sz = img.sizeof("vmap_area"), img.sizeof("vm_struct")
    o = lambda t, m: img.offsetof(t, m)
    lst, rb = o("vmap_area", "list"), o("vmap_area", "rb_node")
    va_start, va_end, va_vm = o("vmap_area", "va_start"), o("vmap_area", "va_end"), o("vmap_area", "vm")
    va_flags = o("vmap_area", "flags") if f.va_flags != "none" else None
    vm_off = {m: o("vm_struct", m) for m in ("addr", "size", "flags", "nr_pages", "phys_addr", "caller")}
    # Reserve the whole block at once so alloc() does not grow per area.
    stride_va = (va_sz + 63) // 64 * 64
    stride_vm = (vm_sz + 63) // 64 * 64
    base_va = img.alloc(stride_va * n, 64)
    base_vm = img.alloc(stride_vm * n, 64)
    mem = img.mem
    from tests.synth.image import BASE

    q = struct.Struct("<Q").pack_into
    i32 = struct.Struct("<I").pack_into
    starts: List[int] = []
    addrs: List[int] = []
    pos = VMALLOC_START
    mpos = MODULES_VADDR
    for i in range(n):
        kind = KINDS_CYCLE[i % len(KINDS_CYCLE)]
        pages = 1 + (i % 4)
        size = (pages + 1) * PAGE
        if i % 50 == 49 and mpos + size < 0xFFFFFFFFFF000000:
            start = mpos
            mpos += size
            kind = VM_ALLOC
        else:
            start = pos
            pos += size
        va = base_va + i * stride_va
        vo = va - BASE
        q(mem, vo + va_start, start)
        q(mem, vo + va_end, start + size)
        if kind is None:
            if va_flags is not None:
                q(mem, vo + va_flags, 0x1)  # VMAP_RAM
        else:
            vm = base_vm + i * stride_vm
            mo = vm - BASE
            q(mem, mo + vm_off["addr"], start)
            q(mem, mo + vm_off["size"], size)
            q(mem, mo + vm_off["flags"], kind)
            i32(mem, mo + vm_off["nr_pages"], pages if kind != VM_IOREMAP else 0)
            q(mem, mo + vm_off["phys_addr"], 0xFE000000 + i * PAGE if kind == VM_IOREMAP else 0)
            q(mem, mo + vm_off["caller"], caller_addrs[i % callers])
            q(mem, vo + va_vm, vm)
        starts.append(start)
        addrs.append(va)
    order = sorted(range(n), key=starts.__getitem__)
    if f.nodes:
        nn = k.scene.nodes
        zone = 16 * PAGE if nn > 1 else 1
        per: List[List[int]] = [[] for _ in range(nn)]
        for i in order:
            per[(starts[i] // zone) % nn].append(addrs[i])
        vn_sz = img.sizeof("vmap_node")
        o_busy, o_head = o("vmap_node", "busy"), o("rb_list", "head")
        for j in range(nn):
            vn = k.vmap_nodes + j * vn_sz
            k._link(vn + o_busy + o_head, [a + lst for a in per[j]])
            k._rbtree(vn + o_busy, [a + rb for a in per[j]])
    else:
        nodes = [addrs[i] for i in order]
        k._link(img.globals["vmap_area_list"][1], [a + lst for a in nodes])
        k._rbtree(img.globals["vmap_area_root"][1], [a + rb for a in nodes])
    k.bulk_n = n
    if core is not None:
        img.attach_core(core)
    return k
