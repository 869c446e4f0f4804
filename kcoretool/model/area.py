# SPDX-License-Identifier: LGPL-2.1-or-later
"""
vmalloc records
---------------

The records of the vmalloc model: :class:`Area` (a ``struct vmap_area``),
:class:`VmStruct`, :class:`VmapBlock` and :class:`FreeHole`, plain typed
dataclasses detached from drgn, comparable (``==`` and ordering by start).

:class:`Area` and :class:`VmStruct` are declared once, here: each field's
annotation carries a :class:`Col` that says how the field is stored and
shown.  Everything else is derived from these two declarations
(:data:`FIELDS`): the slots, the flat row (:data:`AREA_ROW_FIELDS`,
:func:`area_row`, :func:`row_area`), the packed record
(:mod:`kcoretool.model.packed`), the area JSON (:func:`row_dict`,
:mod:`kcoretool.model.area_json`), the snapshot columns
(:mod:`kcoretool.model.snapshot`); the CLI takes fields by name
(:func:`row_getter`).  Adding a field is one annotation.

Classes use ``__slots__`` made from their annotations (Python 3.9 has no
``dataclass(slots=True)``) so a million areas stay small.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import (
    Annotated,
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    NamedTuple,
    Optional,
    Set,
    Tuple,
    get_args,
    get_type_hints,
)

from kcoretool.errors import ArgumentError
from kcoretool.kernel.vmflags import VM_NO_GUARD

__all__ = (
    "AREA_ROW_FIELDS",
    "FIELDS",
    "JSON_FIELDS",
    "JSON_ORDER",
    "KINDS",
    "Area",
    "Col",
    "FreeHole",
    "ROW_AT",
    "RowField",
    "VmStruct",
    "VmapBlock",
    "area_row",
    "check_kinds",
    "row_area",
    "row_dict",
    "row_getter",
    "json_value",
)

#: Every area kind, in the order reports list them.
KINDS = (
    "vmalloc",
    "vmap",
    "ioremap",
    "user-mapped",
    "dma-coherent",
    "sparse",
    "exec",
    "uninitialised",
    "vm_map_ram",
    "vmap_block",
    "lazy",
    "pooled",
    "other",
)


def check_kinds(kinds: Optional[Iterable[str]], known: Iterable[str]) -> Optional[Set[str]]:
    """``kinds`` as a set (None: every kind), each checked against ``known``
    with the message the CLI's ``--kind`` gives."""
    if kinds is None:
        return None
    if isinstance(kinds, str):
        raise ArgumentError(f"kinds={kinds!r}: give a list of kinds, e.g. [{kinds!r}]")
    ks = set(kinds)
    names = tuple(known)
    for k in sorted(ks):
        if k not in names:
            raise ArgumentError(f"unknown kind {k!r}; one of {', '.join(names)}")
    return ks or None


class Col(NamedTuple):
    """How one field of :class:`Area` or :class:`VmStruct` is stored and
    shown (its annotation's metadata).  Whether it may be None comes from
    its type (``Optional[...]``)."""

    #: its :mod:`struct` code in a packed record; "kind" for an index into
    #: :data:`KINDS` (a byte), "bit" for a bool kept in the presence bits,
    #: "" for a field not stored but looked up (flag names, caller symbol)
    code: str = "Q"
    #: how its snapshot column is written: "plain", "delta" or "table"
    snapshot: str = "plain"
    #: what a snapshot value must be, when not said by ``code``: "order"
    #: (0-63), "text", "names" (a list of strings)
    check: str = ""
    #: its key in the area JSON; "" for the field's name, None for none
    json: Optional[str] = ""
    #: (VmStruct fields) its JSON text in an area without a vm_struct
    novm: str = "null"
    #: different in nearly every area (an address): the JSON writer keeps it
    #: out of the text it caches
    per_row: bool = False
    #: an address: shown in hex by ``repr``
    hex: bool = False
    #: (a field not stored but looked up) the row field it is looked up by
    lookup: str = ""
    #: (VmStruct fields) its name in the area's flat row, JSON and snapshot
    #: where the bare attribute would be ambiguous next to the area's own
    #: fields (``flags`` -> ``vm_flags``)
    row: str = ""


def _repr(self: Any) -> str:
    """``Class(field=value, ...)`` with addresses in hex."""
    cols = _COLS[type(self)]
    parts = []
    for name in self.__slots__:
        v = getattr(self, name)
        col = cols.get(name)
        parts.append(f"{name}={v:#x}" if col is not None and col.hex and type(v) is int else f"{name}={v!r}")
    return f"{type(self).__name__}({', '.join(parts)})"


def _object(prog: Any, type_name: str, address: Optional[int], what: str) -> Any:
    """``(type_name)address`` in ``prog``: a model object's kernel struct."""
    from kcoretool.model.kobject import kernel_object

    return kernel_object(prog, type_name, address, what)


_ADDR = Col(hex=True, per_row=True)


@dataclass(eq=True, order=False, repr=False)
class VmStruct:
    """A ``struct vm_struct``."""

    #: address of the struct vm_struct itself
    address: Annotated[int, Col(snapshot="delta", row="vm_struct", hex=True, per_row=True)]
    addr: Annotated[int, Col(snapshot="delta", json=None, row="vm_addr", hex=True, per_row=True)]
    #: includes the guard page unless VM_NO_GUARD
    size: Annotated[int, Col(json=None, row="vm_size")]
    flags: Annotated[int, Col(row="vm_flags")]
    flag_names: Annotated[Tuple[str, ...], Col(code="", snapshot="table", check="names", json="flags", novm="[]",
                                               lookup="vm_flags")]
    #: mapped pages; an area's JSON ``pages`` (the size in pages without a vm_struct)
    nr_pages: Annotated[int, Col(json="pages")]
    #: log2 of the mapping's page size in pages (9 = 2 MiB); None if the
    #: kernel has no vm_struct.page_order
    page_order: Annotated[Optional[int], Col(check="order")]
    #: ioremap physical address (0 if none; null in the area JSON)
    phys_addr: Annotated[int, Col(snapshot="delta", hex=True)]
    caller: Annotated[int, Col(snapshot="table", hex=True)]
    #: "symbol+0xoff/0xsize [module]" like %pS, or None
    caller_symbol: Annotated[Optional[str], Col(code="", snapshot="table", check="text", lookup="caller")]
    requested_size: Annotated[Optional[int], Col()]
    #: the struct page ** array (see kcoretool.model.vm_page_physaddrs)
    pages_array: Annotated[int, Col(snapshot="delta", json=None, hex=True, per_row=True)]

    __slots__ = tuple(__annotations__)
    __repr__ = _repr

    def guard_size(self, page_size: int) -> int:
        """The trailing guard page's size: ``get_vm_area_size()`` leaves it
        out, and it is never mapped -- unless VM_NO_GUARD."""
        return 0 if self.flags & VM_NO_GUARD else page_size

    def data_end(self, page_size: int) -> int:
        """End of the part that can hold data (the guard page excluded)."""
        return self.addr + max(0, self.size - self.guard_size(page_size))

    def object(self, prog: Any = None) -> Any:
        """The ``struct vm_struct *`` in ``prog`` (a :class:`drgn.Object`;
        default: drgn's default program)::

            >>> area.vm.object().nr_pages
            (unsigned int)3
        """
        return _object(prog, "struct vm_struct *", self.address, "vm_struct")

    def to_dict(self) -> Dict[str, Any]:
        """Every field by its name (``vmalloc show --json``'s ``vm``)."""
        d = {s: getattr(self, s) for s in self.__slots__}
        d["flag_names"] = list(self.flag_names)
        return d


@dataclass(eq=True, order=True, repr=False)
class Area:
    """A ``struct vmap_area``: busy, lazy (freed, not yet purged) or pooled."""

    start: Annotated[int, Col(snapshot="delta", hex=True, per_row=True)]
    #: (a snapshot keeps the size, end - start)
    end: Annotated[int, Col(hex=True, per_row=True)]
    #: one of :data:`KINDS`
    kind: Annotated[str, Col(code="kind", snapshot="table", check="text")]
    #: freed but not yet purged (in the lazy/purge lists or, <= 5.3, flagged)
    lazy: Annotated[bool, Col(code="bit")]
    #: raw vmap_area.flags (None if this kernel has none)
    va_flags: Annotated[Optional[int], Col()]
    #: 6.9+: index of the vmap_node whose tree holds the area
    node: Annotated[Optional[int], Col(code="I")]
    #: 6.9+: vmap node id encoded in flags bits 8-15 (pool origin), if any
    flags_node_id: Annotated[Optional[int], Col(code="B")]
    #: its vm_struct: the fields of :class:`VmStruct` follow the area's own
    #: in the flat row
    vm: Optional[VmStruct]
    #: address of the struct vmap_block if this area is a vmap block
    vmap_block: Annotated[Optional[int], Col(snapshot="delta", hex=True, per_row=True)]
    #: address of the struct vmap_area itself
    vmap_area: Annotated[int, Col(snapshot="delta", hex=True, per_row=True)]

    __slots__ = tuple(__annotations__)
    __repr__ = _repr

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def caller_symbol(self) -> Optional[str]:
        return self.vm.caller_symbol if self.vm is not None else None

    def data_span(self, page_size: int) -> Tuple[int, int]:
        """``(start, end)`` of the part that can hold data: a vm_struct area
        without its guard page, otherwise the whole area."""
        vm = self.vm
        if vm is None:
            return self.start, self.end
        return vm.addr, vm.data_end(page_size)

    def in_guard_page(self, addr: int, page_size: int) -> bool:
        vm = self.vm
        return vm is not None and vm.guard_size(page_size) > 0 and vm.data_end(page_size) <= addr < self.end

    def pages(self, page_size: int = 4096) -> int:
        """Mapped pages: ``nr_pages`` for vm areas, else the VA's page count."""
        if self.vm is not None:
            return self.vm.nr_pages
        return self.size // page_size

    def object(self, prog: Any = None) -> Any:
        """The ``struct vmap_area *`` in ``prog`` (a :class:`drgn.Object`;
        default: drgn's default program), for drgn's helpers and members
        kcoretool does not model::

            >>> hex(area.object().va_start)
            '0xffffc90000101000'
        """
        return _object(prog, "struct vmap_area *", self.vmap_area, "vmap area")

    def to_dict(self, page_size: int = 4096) -> Dict[str, Any]:
        """The area's one JSON schema (:data:`JSON_ORDER`): ``vmalloc list
        --json`` prints a list of these (:func:`kcoretool.model.area_json.iter_areas_json`,
        the same bytes as ``json.dumps`` of this), ``vmalloc show --json``
        this plus details."""
        return row_dict(area_row(self), page_size)


@dataclass(eq=True, order=True, repr=False)
class VmapBlock:
    """A ``struct vmap_block``: a per-CPU area carved into vm_map_ram pieces."""

    start: Annotated[int, _ADDR]
    end: Annotated[int, _ADDR]
    address: Annotated[int, _ADDR]
    cpu: Optional[int]
    #: "vmap_block.cpu" (6.10+), "free list" (the vbq->free it sits on) or None
    cpu_source: Optional[str]
    #: pages never handed out (at the end of the block)
    free: int
    #: pages handed out and freed again, TLB flush pending
    dirty: int
    dirty_min: int
    dirty_max: int
    #: pages in the block (VMAP_BBMAP_BITS)
    bits: int
    #: used page ranges [first, last) in pages from start; None if unknown
    used: Optional[Tuple[Tuple[int, int], ...]]
    #: "used_map" (6.3+), "page_tables", "derived" (free/dirty counters) or
    #: "unknown"
    used_source: str
    notes: Tuple[str, ...]

    __slots__ = tuple(__annotations__)
    __repr__ = _repr

    @property
    def size(self) -> int:
        return self.end - self.start

    def pieces(self, page_size: int = 4096) -> List[Tuple[int, int]]:
        """
        ``(start, end)`` address ranges of the live vm_map_ram pieces, as the
        allocator handed them out: ``vb_alloc()`` rounds every request up to
        ``1 << get_order(size)`` pages (a 3-page vm_map_ram takes 4; only 3
        are mapped). Adjacent pieces are indistinguishable in every kernel
        record and come back merged.
        """
        if self.used is None:
            return []
        return [(self.start + a * page_size, self.start + b * page_size) for a, b in self.used]

    def used_pages(self) -> Optional[int]:
        if self.used is None:
            return None
        return sum(b - a for a, b in self.used)

    def object(self, prog: Any = None) -> Any:
        """The ``struct vmap_block *`` in ``prog`` (a :class:`drgn.Object`;
        default: drgn's default program)."""
        return _object(prog, "struct vmap_block *", self.address, "vmap block")

    def to_dict(self, page_size: int = 4096) -> Dict[str, Any]:
        d = {s: getattr(self, s) for s in self.__slots__}
        d["used"] = [list(r) for r in self.used] if self.used is not None else None
        d["pieces"] = [list(p) for p in self.pieces(page_size)]
        d["notes"] = list(self.notes)
        return d


@dataclass(eq=True, order=True, repr=False)
class FreeHole:
    """A free range of kernel virtual address space (from the free list)."""

    start: Annotated[int, _ADDR]
    end: Annotated[int, _ADDR]

    __slots__ = tuple(__annotations__)
    __repr__ = _repr

    @property
    def size(self) -> int:
        return self.end - self.start

    def to_dict(self) -> Dict[str, Any]:
        return {"start": self.start, "end": self.end, "size": self.end - self.start}


def _cols(cls: type) -> Dict[str, Col]:
    hints = get_type_hints(cls, vars(sys.modules[__name__]), include_extras=True)
    out = {}
    for name, hint in hints.items():
        meta = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Col)]
        if meta:
            out[name] = meta[0]
    return out


def _optional(cls: type, name: str) -> bool:
    hint = get_type_hints(cls, vars(sys.modules[__name__]))[name]
    return type(None) in get_args(hint)


_COLS: Dict[type, Dict[str, Col]] = {c: _cols(c) for c in (Area, VmStruct, VmapBlock, FreeHole)}


class RowField(NamedTuple):
    """One field of the flat area row, derived from the declarations."""

    #: its one name: in the row, the JSON (unless ``col.json`` says), the
    #: snapshot's columns and the CLI
    name: str
    #: the attribute it is: of the :class:`Area`, or of its :class:`VmStruct`
    attr: str
    vm: bool
    #: may be None (for a VmStruct field: besides being None with the vm_struct)
    optional: bool
    col: Col

    @property
    def json_key(self) -> Optional[str]:
        return self.name if self.col.json == "" else self.col.json


def _fields() -> Tuple[RowField, ...]:
    out = []
    for cls, vm in ((Area, False), (VmStruct, True)):
        cols = _COLS[cls]
        for attr in cls.__slots__:
            col = cols.get(attr)
            if col is not None:
                out.append(RowField(col.row or attr, attr, vm, _optional(cls, attr), col))
    return tuple(out)


#: The flat area row: the :class:`Area`'s own fields, then its
#: :class:`VmStruct`'s (all None for an area without one).
FIELDS = _fields()
#: The fields of one row, in order.
AREA_ROW_FIELDS = tuple(f.name for f in FIELDS)
#: Where each field is in a row.
ROW_AT = {f.name: i for i, f in enumerate(FIELDS)}
_AREA_ATTRS = tuple(f.attr for f in FIELDS if not f.vm)
_VM_ATTRS = tuple(f.attr for f in FIELDS if f.vm)
_VM_AT = ROW_AT[FIELDS[len(_AREA_ATTRS)].name]  # the first VmStruct field: None exactly without one
_NO_VM: Tuple[None, ...] = (None,) * len(_VM_ATTRS)
assert len(set(AREA_ROW_FIELDS)) == len(AREA_ROW_FIELDS), "two row fields of one name"


def row_getter(*names: str) -> Callable[[Tuple[Any, ...]], Any]:
    """A function giving these fields of a row, by name (one value, or a
    tuple of them for several names)."""
    from operator import itemgetter

    return itemgetter(*(ROW_AT[n] for n in names))


def area_row(a: Area) -> Tuple[Any, ...]:
    """``a`` as a flat row (:data:`AREA_ROW_FIELDS`)."""
    vm = a.vm
    head = tuple(getattr(a, n) for n in _AREA_ATTRS)
    if vm is None:
        return head + _NO_VM
    return head + tuple(getattr(vm, n) for n in _VM_ATTRS)


_VM_SLOT = Area.__slots__.index("vm")
assert _AREA_ATTRS == Area.__slots__[:_VM_SLOT] + Area.__slots__[_VM_SLOT + 1:]


def row_area(r: Tuple[Any, ...]) -> Area:
    """The :class:`Area` of one row."""
    vm = VmStruct(*r[_VM_AT:]) if r[_VM_AT] is not None else None
    return Area(*r[:_VM_SLOT], vm, *r[_VM_SLOT:_VM_AT])  # type: ignore[call-arg]


#: The area JSON's keys in the order they are written: fields declared
#: later (not in this tuple) follow in declaration order.  ``size`` is end -
#: start.
JSON_ORDER = (
    "start", "end", "size", "kind", "pages", "caller", "caller_symbol", "flags", "vm_flags", "va_flags",
    "phys_addr", "page_order", "requested_size", "lazy", "node", "flags_node_id", "vmap_area", "vm_struct",
    "vmap_block",
)


def _json_fields() -> Tuple[Optional[RowField], ...]:
    """The JSON's fields in order (None: ``size``)."""
    by_key = {f.json_key: f for f in FIELDS if f.json_key is not None}
    keys = list(JSON_ORDER) + [k for k in by_key if k not in JSON_ORDER]
    return tuple(None if k == "size" else by_key[k] for k in keys)


JSON_FIELDS = _json_fields()


def json_value(f: RowField, r: Tuple[Any, ...], page_size: int) -> Any:
    """Field ``f``'s value in the area JSON of row ``r``."""
    if f.vm and r[_VM_AT] is None:
        if f.col.novm == "[]":
            return []
        if f.name == "nr_pages":
            return (r[1] - r[0]) // page_size
        return None
    v = r[ROW_AT[f.name]]
    if f.name == "phys_addr":
        return v or None
    if type(v) is tuple:
        return list(v)
    return v


def row_dict(r: Tuple[Any, ...], page_size: int = 4096) -> Dict[str, Any]:
    """The area JSON object of one row (:meth:`Area.to_dict`)."""
    return {("size" if f is None else f.json_key or ""): (r[1] - r[0] if f is None else json_value(f, r, page_size))
            for f in JSON_FIELDS}
