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

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional

import drgn

from kcoretool.kernel.program import load_symbols
from kcoretool.model.area import Area
from kcoretool.model.vmalloc import VmallocModel

__all__ = ("Identity", "WhatIs", "whatis")


@dataclass
class Identity:
    """One thing an address is part of: ``kind`` ("vmalloc", "vmap_block
    piece", "module", "bpf prog", "module region", "exec", "task stack",
    "slab object", "direct map", ...) and what is known about it
    (``fields``, the ``whatis --json`` keys)."""

    kind: str
    fields: Dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    @property
    def start(self) -> Optional[int]:
        """Where the thing starts, when it has an extent."""
        return self.fields.get("start")

    @property
    def offset(self) -> Optional[int]:
        """The address's offset into it."""
        return self.fields.get("offset")

    def describe(self, addr: int) -> str:
        """One line, as ``kcoretool whatis`` prints it."""
        w = self.fields
        k = self.kind
        if k == "vmalloc":
            return (f"{addr:#x}: {w['area_kind']} area {w['start']:#x}-{w['end']:#x} +{w['offset']:#x}"
                    + (f" caller {w['caller']}" if w["caller"] else "")
                    + (" (lazy)" if w["lazy"] else "")
                    + (" (guard page)" if w.get("in_guard_page") else ""))
        if k.startswith("vmap_block"):
            p = w["piece"]
            return (f"{addr:#x}: {k} of block {w['block']:#x} (cpu {w['cpu']}), page "
                    f"{w['page_in_block']}" + (f", piece {p[0]:#x}-{p[1]:#x}" if p else ""))
        if k == "module":
            return f"{addr:#x}: in module {w['name']}"
        if k == "bpf prog":
            return (f"{addr:#x}: bpf prog {w['name']} (tag {w['tag']}, id {w['id'] if w['id'] is not None else '-'})"
                    f" +{w['offset']:#x} of {w['size']:#x}")
        if k == "module region":
            return f"{addr:#x}: module {w['module']} {w['region']} +{w['offset']:#x}"
        if k == "exec":
            return f"{addr:#x}: {w['exec_kind']} {w['owner']} +{w['offset']:#x} of {w['size']:#x}"
        if k == "direct map":
            return f"{addr:#x}: direct map, phys {w['phys']:#x}"
        return f"{addr:#x}: {w.get('description', k)}"

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, **self.fields}


@dataclass
class WhatIs:
    """What :func:`whatis` found at ``address``, most specific first; empty
    when nothing recognised it."""

    address: int
    what: List[Identity] = field(default_factory=list)
    #: the vmap area holding the address (busy or lazy), if any
    area: Optional[Area] = None

    def __iter__(self) -> Iterator[Identity]:
        return iter(self.what)

    def __len__(self) -> int:
        return len(self.what)

    def kinds(self) -> List[str]:
        return [i.kind for i in self.what]

    def lines(self) -> List[str]:
        """What ``kcoretool whatis`` prints."""
        if not self.what:
            return [f"{self.address:#x}: unknown"]
        return [i.describe(self.address) for i in self.what]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_dict(self) -> Dict[str, Any]:
        """``whatis --json``."""
        return {"address": self.address, "what": [i.to_dict() for i in self.what]}


def whatis(prog: drgn.Program, addr: int, model: Optional[VmallocModel] = None,
           exec_model: Optional[Any] = None) -> WhatIs:
    """
    Describe ``addr``: every :class:`Identity` that holds it -- the vmap
    area and block piece (from ``model``), a BPF program or module region
    (from ``exec_model``), a module, and drgn's ``identify_address_all``
    (task stacks, slab objects, symbols), else the direct map.
    """
    area: Optional[Area] = None
    load_symbols(prog)  # any address: every symbol, modules' included
    what: List[Dict[str, Any]] = []
    if model is not None:
        a = area = model.find(addr)
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
    if exec_model is not None:
        what.extend(_exec_entries(exec_model, addr))
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
    return WhatIs(addr, [Identity(w.pop("kind"), w) for w in what], area)


def _exec_entries(exec_model: Any, addr: int) -> List[Dict[str, Any]]:
    """A BPF program, module region or other executable allocation
    (:class:`kcoretool.model.exec.ExecModel`) holding ``addr``."""
    r = exec_model.find(addr)
    if r is None:
        return []
    off = addr - r.start
    if r.kind == "bpf-prog":
        return [{"kind": "bpf prog", "name": r.owner, "symbol": r.symbol, "tag": r.tag, "id": r.id,
                 "prog_type": r.prog_type, "start": r.start, "offset": off, "size": r.size}]
    if r.kind.startswith("module-"):
        return [{"kind": "module region", "module": r.owner, "region": r.kind[len("module-"):],
                 "start": r.start, "offset": off, "size": r.size}]
    return [{"kind": "exec", "exec_kind": r.kind, "owner": r.owner, "start": r.start, "offset": off,
             "size": r.size, "container": r.container}]
