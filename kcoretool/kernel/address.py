# SPDX-License-Identifier: LGPL-2.1-or-later
"""
What drgn says an address is
----------------------------

The kernel's side of ``whatis``: the module an address is in, drgn's
``identify_address_all`` (task stacks, slab objects, symbols) and the direct
map, as plain dicts; :func:`kcoretool.model.identify.whatis` adds the
vmalloc and exec models' answers.
"""

from __future__ import annotations

from typing import Any, Dict, List

import drgn

from kcoretool.kernel.program import load_symbols

__all__ = ("kernel_identities",)


def kernel_identities(prog: drgn.Program, addr: int, in_vmalloc_area: bool) -> List[Dict[str, Any]]:
    """What ``addr`` is by drgn: ``{"kind": ..., ...}`` for a module, each
    of ``identify_address_all``'s answers (its ``vmap`` one left out when
    ``in_vmalloc_area``: the vmalloc model says more), else the direct map
    (not for an address in a vmalloc area or module)."""
    load_symbols(prog)  # any address: every symbol, modules' included
    what: List[Dict[str, Any]] = []
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
            if head == "vmap" and in_vmalloc_area:
                continue
            what.append({"kind": head, "description": text})
    except (LookupError, drgn.FaultError, ValueError, NotImplementedError):
        pass
    if not in_vmalloc_area and not any(w["kind"] == "module" for w in what):
        try:
            from drgn.helpers.linux.mm import in_direct_map, virt_to_phys

            if in_direct_map(prog, addr):
                what.append({"kind": "direct map", "phys": virt_to_phys(prog, addr).value_()})
        except (LookupError, drgn.FaultError, ValueError, NotImplementedError):
            pass
    return what
