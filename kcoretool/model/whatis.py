# SPDX-License-Identifier: LGPL-2.1-or-later
"""
What is this address?
---------------------

:func:`whatis` classifies a kernel virtual address: a vmalloc area (and the
vmap block piece inside it), a module, a task stack, a direct-map page or
kernel text/data. It combines the vmalloc model with drgn's own
``identify_address_all`` for task stacks and slab objects.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import drgn

from kcoretool.model.vmalloc import VmallocModel

__all__ = ("whatis",)


def whatis(prog: drgn.Program, addr: int, model: Optional[VmallocModel] = None) -> Dict[str, Any]:
    """
    Describe ``addr``. Returns ``{"address", "what": [...]}`` where each
    entry has a ``kind`` ("vmalloc", "vmap_block piece", "module",
    "task stack", "slab object", "direct map", "kernel symbol", ...) and
    details. An empty ``what`` means nothing recognised it.
    """
    what: List[Dict[str, Any]] = []
    if model is not None:
        a = model.find(addr)
        if a is not None:
            entry: Dict[str, Any] = {
                "kind": "vmalloc",
                "area_kind": a.kind,
                "start": a.start,
                "end": a.end,
                "offset": addr - a.start,
                "caller": a.caller_symbol,
                "lazy": a.lazy,
            }
            if a.vm is not None:
                entry["in_guard_page"] = a.in_guard_page(addr, model.page_size)
            what.append(entry)
            hit = model.find_piece(addr)
            if hit is not None:
                b, piece = hit
                what.append({
                    "kind": "vmap_block piece" if piece else "vmap_block unused page",
                    "block": b.address,
                    "cpu": b.cpu,
                    "piece": list(piece) if piece else None,
                    "page_in_block": (addr - b.start) // model.page_size,
                    "used_source": b.used_source,
                })
    try:
        m = prog.module(addr)
        if isinstance(m, drgn.RelocatableModule):
            what.append({"kind": "module", "name": m.name})
    except (LookupError, ValueError, AttributeError):
        pass
    try:
        from drgn.helpers.common.memory import identify_address_all

        for ident in identify_address_all(prog, addr):
            text = str(ident)
            head = text.split(":", 1)[0]
            if head == "vmap" and any(w["kind"] == "vmalloc" for w in what):
                continue
            what.append({"kind": head, "description": text})
    except (LookupError, drgn.FaultError, ValueError, NotImplementedError):
        pass
    if not any(w["kind"] in ("vmalloc", "module") for w in what):
        try:
            from drgn.helpers.linux.mm import in_direct_map, virt_to_phys

            if in_direct_map(prog, addr):
                what.append({
                    "kind": "direct map",
                    "phys": virt_to_phys(prog, addr).value_(),
                })
        except (LookupError, drgn.FaultError, ValueError, NotImplementedError):
            pass
    return {"address": addr, "what": what}
