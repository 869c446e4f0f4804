# SPDX-License-Identifier: LGPL-2.1-or-later
"""
vmalloc model
-------------

Plain, typed dataclasses describing the vmalloc state of one kernel,
detached from drgn: JSON-serialisable (``to_dict``), comparable (``==`` and
ordering by start address) and diffable (:meth:`VmallocModel.diff`).
Built by :func:`kcoretool.model.from_program`.

Classes use hand-written ``__slots__`` (Python 3.9 has no
``dataclass(slots=True)``) so a million areas stay small.
"""

from __future__ import annotations

import bisect
import fnmatch
import json
import operator
import struct
import sys
from array import array
from collections import Counter
from dataclasses import dataclass
from itertools import islice, starmap
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from kcoretool._args import as_address, as_count
from kcoretool.errors import ArgumentError
from kcoretool.kernel.vmflags import VM_NO_GUARD

__all__ = (
    "AREA_ROW_FIELDS",
    "Area",
    "AreaTable",
    "FreeHole",
    "KINDS",
    "PackedAreaTable",
    "VmStruct",
    "VmallocModel",
    "VmapBlock",
    "area_row",
    "check_kinds",
    "iter_areas_json",
    "iter_rows_json",
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


def _object(prog: Any, type_name: str, address: Optional[int], what: str) -> Any:
    from kcoretool.model.kobject import kernel_object

    return kernel_object(prog, type_name, address, what)


@dataclass(eq=True, order=False)
class VmStruct:
    """A ``struct vm_struct``."""

    __slots__ = (
        "address", "addr", "size", "flags", "flag_names", "nr_pages",
        "page_order", "phys_addr", "caller", "caller_symbol", "requested_size",
        "pages_array",
    )
    #: address of the struct vm_struct itself
    address: int
    addr: int
    #: includes the guard page unless VM_NO_GUARD
    size: int
    flags: int
    flag_names: Tuple[str, ...]
    nr_pages: int
    #: log2 of the mapping's page size in pages (9 = 2 MiB); None if the
    #: kernel has no vm_struct.page_order
    page_order: Optional[int]
    #: ioremap physical address (0 if none)
    phys_addr: int
    caller: int
    #: "symbol+0xoff/0xsize [module]" like %pS, or None
    caller_symbol: Optional[str]
    requested_size: Optional[int]
    #: the struct page ** array (see kcoretool.model.vm_page_physaddrs)
    pages_array: int

    def guard_size(self, page_size: int) -> int:
        """The trailing guard page's size: ``get_vm_area_size()`` leaves it
        out, and it is never mapped -- unless VM_NO_GUARD."""
        return 0 if self.flags & VM_NO_GUARD else page_size

    def data_end(self, page_size: int) -> int:
        """End of the part that can hold data (the guard page excluded)."""
        return self.addr + max(0, self.size - self.guard_size(page_size))

    def object(self, prog: Any = None) -> Any:
        """The ``struct vm_struct *`` in ``prog`` (default: drgn's default program) (a :class:`drgn.Object`)::

            >>> area.vm.object().nr_pages
            (unsigned int)3
        """
        return _object(prog, "struct vm_struct *", self.address, "vm_struct")

    def to_dict(self) -> Dict[str, Any]:
        return {
            "address": self.address,
            "addr": self.addr,
            "size": self.size,
            "flags": self.flags,
            "flag_names": list(self.flag_names),
            "nr_pages": self.nr_pages,
            "page_order": self.page_order,
            "phys_addr": self.phys_addr,
            "caller": self.caller,
            "caller_symbol": self.caller_symbol,
            "requested_size": self.requested_size,
            "pages_array": self.pages_array,
        }


@dataclass(eq=True, order=True)
class Area:
    """A ``struct vmap_area``: busy, lazy (freed, not yet purged) or pooled."""

    __slots__ = (
        "start", "end", "kind", "lazy", "flags", "node", "flags_node_id",
        "vm", "block", "address",
    )
    start: int
    end: int
    #: one of :data:`KINDS`
    kind: str
    #: freed but not yet purged (in the lazy/purge lists or, <= 5.3, flagged)
    lazy: bool
    #: raw vmap_area.flags (None if this kernel has none)
    flags: Optional[int]
    #: 6.9+: index of the vmap_node whose tree holds the area
    node: Optional[int]
    #: 6.9+: vmap node id encoded in flags bits 8-15 (pool origin), if any
    flags_node_id: Optional[int]
    vm: Optional[VmStruct]
    #: address of the struct vmap_block if this area is a vmap block
    block: Optional[int]
    #: address of the struct vmap_area itself
    address: int

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
        """The ``struct vmap_area *`` in ``prog`` (default: drgn's default program) (a :class:`drgn.Object`),
        for drgn's helpers and members kcoretool does not model::

            >>> hex(area.object().va_start)
            '0xffffc90000101000'
        """
        return _object(prog, "struct vmap_area *", self.address, "vmap area")

    def to_dict(self, page_size: int = 4096) -> Dict[str, Any]:
        """The area's one JSON schema: ``vmalloc list --json`` prints a list
        of these (:func:`iter_areas_json`, the same bytes as ``json.dumps``
        of this), ``vmalloc show --json`` this plus details."""
        vm = self.vm
        size = self.end - self.start
        if vm is not None:
            return {
                "start": self.start, "end": self.end, "size": size, "kind": self.kind,
                "pages": vm.nr_pages, "caller": vm.caller, "caller_symbol": vm.caller_symbol,
                "flags": list(vm.flag_names), "vm_flags": vm.flags, "va_flags": self.flags,
                "phys_addr": vm.phys_addr or None, "page_order": vm.page_order,
                "requested_size": vm.requested_size, "lazy": self.lazy, "node": self.node,
                "flags_node_id": self.flags_node_id, "vmap_area": self.address,
                "vm_struct": vm.address, "vmap_block": self.block,
            }
        return {
            "start": self.start, "end": self.end, "size": size, "kind": self.kind,
            "pages": size // page_size, "caller": None, "caller_symbol": None,
            "flags": [], "vm_flags": None, "va_flags": self.flags, "phys_addr": None,
            "page_order": None, "requested_size": None, "lazy": self.lazy, "node": self.node,
            "flags_node_id": self.flags_node_id, "vmap_area": self.address,
            "vm_struct": None, "vmap_block": self.block,
        }


def iter_areas_json(areas: Iterable[Area], page_size: int = 4096, chunk: int = 4096,
                    owners: Optional[Dict[int, str]] = None) -> Iterator[str]:
    """
    A JSON array of :meth:`Area.to_dict` objects, streamed as text chunks,
    one object per line (``json.loads`` of the joined chunks equals
    ``[a.to_dict(page_size) for a in areas]``).  With ``owners`` (area
    start -> who owns an executable area,
    :meth:`kcoretool.model.exec.ExecModel.area_owners`) each row also has
    ``"owner"`` (null where none).  :func:`iter_rows_json` does the same
    from rows (:meth:`VmallocModel.select_rows`).
    """
    return iter_rows_json(map(area_row, areas), page_size, chunk, owners)


def iter_rows_json(rows: Iterable[Tuple[Any, ...]], page_size: int = 4096, chunk: int = 4096,
                   owners: Optional[Dict[int, str]] = None) -> Iterator[str]:
    """:func:`iter_areas_json` of :data:`AREA_ROW_FIELDS` rows.  The rows of
    a :class:`PackedAreaTable` are written from its records, never built."""
    if isinstance(rows, PackedRows):
        table = rows.table
        return _iter_records_json(table.records(), table.names, table.symbols, page_size, chunk, owners)
    # other rows become records as they are written (record_of fills the
    # names and symbols before the writer looks them up); nothing is packed
    scratch = PackedAreaTable({}, {})
    return _iter_records_json(map(scratch.record_of, rows), scratch.names, scratch.symbols, page_size, chunk,
                              owners)


def _iter_records_json(records: Iterable[Tuple[Any, ...]], names: Dict[int, Tuple[str, ...]],
                       symbols: Dict[int, Optional[str]], page_size: int, chunk: int,
                       owners: Optional[Dict[int, str]]) -> Iterator[str]:
    """The one writer of the area JSON schema.  Each row is the dynamic
    numbers around two cached fragments: one per (kind, pages, caller, vm
    flags, va flags), one per (page order, requested size, lazy, node, node
    id) -- few distinct in practice; a cache that grows past _CACHE_MAX
    stops growing (rows are then built in full).  A dict and a
    ``json.dumps`` per row is 3x slower and needs the whole array in
    memory."""
    def kind_name(kind: Any) -> str:
        return kind if isinstance(kind, str) else KINDS[kind]

    mid_cache: Dict[Tuple[Any, ...], str] = {}
    tail_cache: Dict[Tuple[Any, ...], str] = {}
    novm_cache: Dict[Tuple[Any, ...], str] = {}
    present = (HAS_FLAGS | HAS_NODE | HAS_NODE_ID | HAS_ORDER | HAS_REQ | IS_LAZY)

    def n(v: int, bit: int, bits: int) -> str:
        return str(v) if bits & bit else "null"

    first = True
    # busy areas mostly touch (one's end is the next one's start): the end's
    # decimal text is kept for the next start
    prev_end: Optional[int] = None
    end_s = ""
    yield "["
    it = iter(records)
    while True:
        buf: List[str] = []
        append = buf.append
        for (start, end, address, flags, block, vmp, _addr, _size, fl, phys, caller, req, _pages, nr, node,
             order, node_id, kind, bits) in islice(it, chunk):
            start_s = end_s if start == prev_end else str(start)
            end_s = str(end)
            prev_end = end
            if bits & HAS_VM:
                # the symbol too: areas of two times (a diff) can have one caller
                # address in two modules
                sym = symbols.get(caller)
                key: Tuple[Any, ...] = (kind, nr, caller, sym, fl, flags, bits & HAS_FLAGS)
                mid = mid_cache.get(key)
                if mid is None:
                    mid = (
                        ',"kind":%s,"pages":%d,"caller":%d,"caller_symbol":%s,"flags":%s,"vm_flags":%d,'
                        '"va_flags":%s,"phys_addr":'
                    ) % (json.dumps(kind_name(kind)), nr, caller, json.dumps(sym),
                         json.dumps(list(names.get(fl, ()))), fl, n(flags, HAS_FLAGS, bits))
                    if len(mid_cache) < _CACHE_MAX:
                        mid_cache[key] = mid
                key = (order, req, node, node_id, bits & present)
                tail = tail_cache.get(key)
                if tail is None:
                    tail = (',"page_order":%s,"requested_size":%s,"lazy":%s,"node":%s,"flags_node_id":%s,'
                            '"vmap_area":') % (
                        n(order, HAS_ORDER, bits), n(req, HAS_REQ, bits), "true" if bits & IS_LAZY else "false",
                        n(node, HAS_NODE, bits), n(node_id, HAS_NODE_ID, bits))
                    if len(tail_cache) < _CACHE_MAX:
                        tail_cache[key] = tail
                row = '{"start":%s,"end":%s,"size":%d%s%s%s%d,"vm_struct":%d,"vmap_block":%s}' % (
                    start_s, end_s, end - start, mid, phys or "null", tail, address, vmp,
                    block if bits & HAS_BLOCK else "null")
            else:
                key = (kind, flags, node, node_id, bits & present)
                mid = novm_cache.get(key)
                if mid is None:
                    mid = (
                        ',"kind":%s,"pages":%%d,"caller":null,"caller_symbol":null,"flags":[],"vm_flags":null,'
                        '"va_flags":%s,"phys_addr":null,"page_order":null,"requested_size":null,"lazy":%s,'
                        '"node":%s,"flags_node_id":%s,"vmap_area":'
                    ) % (json.dumps(kind_name(kind)), n(flags, HAS_FLAGS, bits), "true" if bits & IS_LAZY else "false",
                         n(node, HAS_NODE, bits), n(node_id, HAS_NODE_ID, bits))
                    if len(novm_cache) < _CACHE_MAX:
                        novm_cache[key] = mid
                row = '{"start":%s,"end":%s,"size":%d%s%d,"vm_struct":null,"vmap_block":%s}' % (
                    start_s, end_s, end - start, mid % ((end - start) // page_size), address,
                    block if bits & HAS_BLOCK else "null")
            if owners is not None:
                o = owners.get(start)
                row = row[:-1] + ',"owner":' + ("null" if o is None else json.dumps(o)) + "}"
            append(row)
        if not buf:
            break
        # rows are "\n,"-separated, and a chunk after the first starts with ","
        yield ("" if first else ",") + "\n,".join(buf)
        first = False
    yield "]"


_CACHE_MAX = 1 << 16


@dataclass(eq=True, order=True)
class VmapBlock:
    """A ``struct vmap_block``: a per-CPU area carved into vm_map_ram pieces."""

    __slots__ = (
        "start", "end", "address", "cpu", "cpu_source", "free", "dirty",
        "dirty_min", "dirty_max", "bits", "used", "used_source", "notes",
    )
    start: int
    end: int
    address: int
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
        """The ``struct vmap_block *`` in ``prog`` (default: drgn's default program) (a :class:`drgn.Object`)."""
        return _object(prog, "struct vmap_block *", self.address, "vmap block")

    def to_dict(self, page_size: int = 4096) -> Dict[str, Any]:
        d = {s: getattr(self, s) for s in self.__slots__}
        d["used"] = [list(r) for r in self.used] if self.used is not None else None
        d["pieces"] = [list(p) for p in self.pieces(page_size)]
        d["notes"] = list(self.notes)
        return d


@dataclass(eq=True, order=True)
class FreeHole:
    """A free range of kernel virtual address space (from the free list)."""

    __slots__ = ("start", "end")
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start

    def to_dict(self) -> Dict[str, Any]:
        return {"start": self.start, "end": self.end, "size": self.end - self.start}


#: The fields of one :class:`AreaTable` row, in order: the :class:`Area`
#: fields but ``vm``, then the 12 :class:`VmStruct` fields (all None for an
#: area without a vm_struct).
AREA_ROW_FIELDS = (
    "start", "end", "kind", "lazy", "flags", "node", "flags_node_id", "block", "address",
    "vm_address", "vm_addr", "vm_size", "vm_flags", "flag_names", "nr_pages", "page_order",
    "phys_addr", "caller", "caller_symbol", "requested_size", "pages_array",
)
_NO_VM: Tuple[None, ...] = (None,) * 12


def area_row(a: Area) -> Tuple[Any, ...]:
    """``a`` as an :class:`AreaTable` row (:data:`AREA_ROW_FIELDS`)."""
    vm = a.vm
    head = (a.start, a.end, a.kind, a.lazy, a.flags, a.node, a.flags_node_id, a.block, a.address)
    if vm is None:
        return head + _NO_VM
    return head + (vm.address, vm.addr, vm.size, vm.flags, vm.flag_names, vm.nr_pages, vm.page_order,
                   vm.phys_addr, vm.caller, vm.caller_symbol, vm.requested_size, vm.pages_array)


class AreaTable:
    """
    Areas as rows (:data:`AREA_ROW_FIELDS`) rather than objects: what a
    model built from a kernel (:class:`PackedAreaTable`) or read back from a
    snapshot holds until something asks for :class:`Area` objects.  Its
    rows are plain tuples: two rows are equal exactly when the two
    :class:`Area` they stand for are, so a diff can compare rows and build
    objects only for what differs, and a listing or a summary never builds
    them.  This one keeps a list per field; rows are made on demand and
    not kept: a few long lists of numbers cost the cyclic GC little, a
    tuple per area a full pass over all of them.
    """

    __slots__ = ("_columns", "_n")

    def __init__(self, columns: Sequence[Sequence[Any]]) -> None:
        """:param columns: one sequence per field of :data:`AREA_ROW_FIELDS`,
        all of the same length."""
        if len(columns) != len(AREA_ROW_FIELDS):
            raise ValueError(f"{len(columns)} columns, not {len(AREA_ROW_FIELDS)}")
        self._n = len(columns[0])
        if any(len(c) != self._n for c in columns):
            raise ValueError("columns of different lengths")
        self._columns = columns

    def __len__(self) -> int:
        return self._n

    def column(self, field: str) -> Sequence[Any]:
        """One field (:data:`AREA_ROW_FIELDS`) of every row."""
        return self._columns[AREA_ROW_FIELDS.index(field)]

    def rows(self) -> Iterator[Tuple[Any, ...]]:
        """The rows, in order (made as they are iterated)."""
        return zip(*self._columns)

    def row(self, i: int) -> Tuple[Any, ...]:
        """Row ``i``."""
        return tuple(c[i] for c in self._columns)

    def has_kind(self, kind: str) -> bool:
        """Whether any row is of ``kind``."""
        return kind in self.column("kind")

    def walk_index(self) -> Optional[List[int]]:
        """The kernel's walk order as row indices, or None for the rows' own."""
        return None

    def summary_counts(self) -> Dict[Tuple[Any, ...], int]:
        """``{(kind, caller, symbol, nr_pages, size): rows}`` in the order
        each first appears (caller, symbol and nr_pages None without a
        vm_struct): what totals by kind and caller are added up from."""
        return _summary_counts(self.rows())

    @staticmethod
    def area(r: Tuple[Any, ...]) -> Area:
        """The :class:`Area` of one row."""
        vm = VmStruct(*r[9:]) if r[9] is not None else None
        return Area(r[0], r[1], r[2], r[3], r[4], r[5], r[6], vm, r[7], r[8])

    def areas(self) -> List[Area]:
        out: List[Area] = []
        append = out.append
        for (start, end, kind, lazy, flags, node, node_id, block, address, vmp, addr, size, fl, names,
             nr, order, phys, caller, sym, req, arr) in self.rows():
            vm = (VmStruct(vmp, addr, size, fl, names, nr, order, phys, caller, sym, req, arr)
                  if vmp is not None else None)
            append(Area(start, end, kind, lazy, flags, node, node_id, vm, block, address))
        return out


# PackedAreaTable records: 14 u64 (start, end, vmap_area, va flags, block,
# vm_struct, vm addr, vm size, vm flags, phys_addr, caller, requested_size,
# pages array, nr_pages), u32 node, u64 page_order, u8 flags_node_id, kind
# (an index into KINDS) and which fields are not None (HAS_*).  Every
# number the raw readers give fits: they decode unsigned (nr_pages and
# page_order are 64 bits wide in case damaged type info says so), node is
# an index below 4096, flags_node_id a byte.
AREA_RECORD = struct.Struct("<14QIQ3B")
HAS_FLAGS, HAS_NODE, HAS_NODE_ID, HAS_BLOCK, HAS_VM, HAS_ORDER, HAS_REQ, IS_LAZY = (1 << i for i in range(8))
KIND_CODE = {k: i for i, k in enumerate(KINDS)}
# (start, end, caller, nr_pages, kind, bits) of a record, for summaries
_SUMMARY_FIELDS = struct.Struct("<QQ64xQ16xQ4x8x1xBB")
assert _SUMMARY_FIELDS.size == AREA_RECORD.size
_BITS_AT = AREA_RECORD.size - 1
_NODE_FIELD = struct.Struct(f"<112xI{AREA_RECORD.size - 116}x")
# Where each row field comes from in (record + (None, lazy, kind, flag
# names, caller symbol)): a record index, or the None slot when the record's
# bits say the field is absent.
_RAW_AT = {"start": 0, "end": 1, "address": 2, "flags": 3, "block": 4, "vm_address": 5, "vm_addr": 6,
           "vm_size": 7, "vm_flags": 8, "phys_addr": 9, "caller": 10, "requested_size": 11,
           "pages_array": 12, "nr_pages": 13, "node": 14, "page_order": 15, "flags_node_id": 16,
           "lazy": 20, "kind": 21, "flag_names": 22, "caller_symbol": 23}
_NONE_AT = 19
_PRESENT_IF = {"flags": HAS_FLAGS, "node": HAS_NODE, "flags_node_id": HAS_NODE_ID, "block": HAS_BLOCK,
               "page_order": HAS_ORDER, "requested_size": HAS_REQ}
_VM_FIELDS = frozenset(AREA_ROW_FIELDS[9:])


def _row_getter(bits: int) -> Any:
    """The itemgetter that turns (record + extras) into a row, for records
    with these ``bits``."""
    at = []
    for f in AREA_ROW_FIELDS:
        present = (not (f in _VM_FIELDS and not bits & HAS_VM)
                   and not (f in _PRESENT_IF and not bits & _PRESENT_IF[f]))
        at.append(_RAW_AT[f] if present else _NONE_AT)
    return operator.itemgetter(*at)


class PackedAreaTable(AreaTable):
    """
    An :class:`AreaTable` kept as one fixed-size binary record per area
    (:data:`AREA_RECORD`, 127 bytes, against about 420 for an :class:`Area`
    and its :class:`VmStruct`, their numbers and list slots), with the flag
    names per flags value and the caller symbol per caller kept once each.
    What :func:`kcoretool.model.from_program` builds: a million areas take
    121 MiB until something asks for their objects.  Records are kept in
    the order they were added (the kernel's walk order); :meth:`sort`
    orders the rows by start through an index, without moving records.
    """

    __slots__ = ("_buf", "_names", "_symbols", "_walk", "_walked", "_by_node", "_shapes", "index")

    def __init__(self, names: Dict[int, Tuple[str, ...]], symbols: Dict[int, Optional[str]]) -> None:
        """:param names: the flag names of each vm flags value the records use.
        :param symbols: the symbol of each caller the records use."""
        self._buf = bytearray()
        self._n = 0
        self._names = names
        self._symbols = symbols
        #: the record each row was added as, after :meth:`sort` (None: the same)
        self._walk: Optional[Sequence[int]] = None
        self._walked = 0
        self._by_node = False
        #: (starts, ends) columns once the builder has them (the model's
        #: lookup index; None: made on first use)
        self.index: Optional[Tuple[Sequence[int], Sequence[int]]] = None
        # (bits << 8 | kind) -> (row getter, (None, lazy, kind name))
        self._shapes: Dict[int, Tuple[Any, Tuple[Any, ...]]] = {}

    @property
    def names(self) -> Dict[int, Tuple[str, ...]]:
        """The flag names of each vm flags value."""
        return self._names

    @property
    def symbols(self) -> Dict[int, Optional[str]]:
        """The symbol of each caller."""
        return self._symbols

    def record_of(self, r: Tuple[Any, ...]) -> Tuple[int, ...]:
        """The record of one row (:data:`AREA_ROW_FIELDS`); its flag names
        and caller symbol go into the table's names and symbols."""
        (start, end, kind, lazy, flags, node, fnode, block, address, vmp, addr, size, fl, names,
         nr, order, phys, caller, sym, req, pages) = r
        bits = IS_LAZY if lazy else 0
        # (build.py's make_record sets the same bits inline: it is the hot path)
        present = [(flags, HAS_FLAGS), (node, HAS_NODE), (fnode, HAS_NODE_ID), (block, HAS_BLOCK)]
        if vmp is not None:
            bits |= HAS_VM
            self._names[fl] = names
            self._symbols[caller] = sym
            present += [(order, HAS_ORDER), (req, HAS_REQ)]
        else:
            vmp = addr = size = fl = phys = caller = req = pages = nr = order = 0
        for value, bit in present:
            if value is not None:
                bits |= bit
        flags, node, fnode, block, order, req = (v or 0 for v in (flags, node, fnode, block, order, req))
        # a kind kcoretool does not make (a hand-built Area) stays a string:
        # the JSON writer takes it, extend() would not
        return (start, end, address, flags, block, vmp, addr, size, fl, phys, caller, req, pages, nr, node,
                order, fnode, KIND_CODE.get(kind, kind), bits)

    def records(self) -> Iterator[Tuple[int, ...]]:
        """The records (:data:`AREA_RECORD` fields), in row order."""
        return AREA_RECORD.iter_unpack(self._buf)

    def extend(self, records: Iterable[Tuple[int, ...]]) -> None:
        """Add records (:data:`AREA_RECORD` field tuples), packed a chunk at
        a time."""
        pack = AREA_RECORD.pack
        it = iter(records)
        while True:
            chunk = b"".join(starmap(pack, islice(it, 4096)))
            if not chunk:
                break
            self._buf += chunk
            self._n += len(chunk) // AREA_RECORD.size

    def flagged(self, mask: int) -> List[int]:
        """Indices (in the order records were added) of the records with
        any of ``mask`` in their bits."""
        bits = self._buf[_BITS_AT::AREA_RECORD.size]
        hit = bytes(1 if b & mask else 0 for b in range(256))
        ones = bits.translate(hit)
        out = []
        i = ones.find(1)
        while i >= 0:
            out.append(i)
            i = ones.find(1, i + 1)
        return out

    def sort(self, keep: Optional[Sequence[int]] = None) -> None:
        """Order the rows by start (stable), keeping only the records at
        ``keep`` (indices in the order they were added) if given; the order
        they were added in stays the walk order (:meth:`walk_index`).
        Records move in place, cycle by cycle: no second copy of the table."""
        starts = self._u64_column(0)
        order = sorted(range(self._n) if keep is None else keep, key=starts.__getitem__)
        del starts
        size = AREA_RECORD.size
        n = len(order)
        if keep is not None:
            # some records go (<= 5.3's lazy areas): copy the rest, in order
            old = memoryview(self._buf)
            self._buf = bytearray(b"".join(old[i * size:(i + 1) * size] for i in order))
            old.release()
            self._walked, self._n = self._n, n
            self._walk = array("Q", order)
            return
        buf = memoryview(self._buf)
        # order[pos] = the record that goes to pos; follow each cycle with
        # one record held aside
        done = bytearray(n)
        for first in range(n):
            if done[first] or order[first] == first:
                continue
            held = bytes(buf[first * size:(first + 1) * size])
            pos = first
            while True:
                done[pos] = 1
                src = order[pos]
                if src == first:
                    buf[pos * size:(pos + 1) * size] = held
                    break
                buf[pos * size:(pos + 1) * size] = buf[src * size:(src + 1) * size]
                pos = src
        buf.release()
        self._walked = n
        self._walk = array("Q", order)

    def walked_by_node(self) -> None:
        """The rows are in address order and the kernel walked them node
        by node (6.9+): :meth:`walk_index` is worked out from their nodes."""
        self._by_node = True

    def walk_index(self) -> Optional[List[int]]:
        walk = self._walk
        if walk is None:
            if not self._by_node:
                return None
            # node by node, each node's areas in address order
            nodes = [t[0] for t in _NODE_FIELD.iter_unpack(self._buf)]
            counts = Counter(nodes)
            base: Dict[int, int] = {}
            at = 0
            for node in sorted(counts):
                base[node] = at
                at += counts[node]
            index = [0] * len(nodes)
            for pos, node in enumerate(nodes):
                index[base[node]] = pos
                base[node] += 1
            return index
        index = [-1] * self._walked  # -1: a record sort() left out
        for pos, i in enumerate(walk):
            index[i] = pos
        return index

    def _u64_column(self, at: int) -> array[int]:
        """The u64 at byte ``at`` of every record, by strided slices (no
        per-record work in Python)."""
        size = AREA_RECORD.size
        out = bytearray(8 * self._n)
        for k in range(8):
            out[k::8] = self._buf[at + k::size]
        col = array("Q")
        col.frombytes(bytes(out))
        if sys.byteorder != "little":
            col.byteswap()
        return col

    def column(self, field: str) -> Sequence[Any]:
        if field in ("start", "end", "address"):
            return self._u64_column({"start": 0, "end": 8, "address": 16}[field])
        i = AREA_ROW_FIELDS.index(field)
        return [r[i] for r in self.rows()]

    def low_bits_clear(self, mask: int) -> bool:
        """Whether every start and end has none of ``mask``'s bits (below
        2**16: a page-size mask), by strided byte slices."""
        size = AREA_RECORD.size
        for k in range(2):
            m = mask >> 8 * k & 0xFF
            if m:
                hit = bytes(1 if b & m else 0 for b in range(256))
                for at in (0, 8):  # start, end
                    if 1 in self._buf[at + k::size].translate(hit):
                        return False
        return mask < 1 << 16

    def has_kind(self, kind: str) -> bool:
        code = KIND_CODE.get(kind)
        # the kind byte of every record, by a strided slice
        return code is not None and code in self._buf[_BITS_AT - 1::AREA_RECORD.size]

    def summary_counts(self) -> Dict[Tuple[Any, ...], int]:
        counts: Dict[Tuple[Any, ...], int] = Counter(
            (kind, bits & HAS_VM, caller, nr, end - start)
            for start, end, caller, nr, kind, bits in _SUMMARY_FIELDS.iter_unpack(self._buf))
        symbols = self._symbols
        out: Dict[Tuple[Any, ...], int] = {}
        for (kind, has_vm, caller, nr, size), count in counts.items():
            key = ((KINDS[kind], caller, symbols.get(caller), nr, size) if has_vm
                   else (KINDS[kind], None, None, None, size))
            out[key] = out.get(key, 0) + count
        return out

    def row(self, i: int) -> Tuple[Any, ...]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError("row index out of range")
        return self.decode_record(AREA_RECORD.unpack_from(self._buf, i % n * AREA_RECORD.size))

    def decode_record(self, record: Tuple[int, ...]) -> Tuple[Any, ...]:
        """The row of one record (:data:`AREA_RECORD` fields)."""
        return next(self._decode([record]))

    def rows(self) -> Iterator[Tuple[Any, ...]]:
        return PackedRows(self)

    def _shape(self, key: int) -> Tuple[Any, Tuple[Any, ...]]:
        bits, kind = key >> 8, key & 0xFF
        shape = self._shapes[key] = (_row_getter(bits), (None, bool(bits & IS_LAZY), KINDS[kind]))
        return shape

    def _decode(self, records: Iterable[Tuple[int, ...]]) -> Iterator[Tuple[Any, ...]]:
        shapes = self._shapes
        names = self._names.get
        symbols = self._symbols.get
        for raw in records:
            key = raw[18] << 8 | raw[17]
            shape = shapes.get(key)
            if shape is None:
                shape = self._shape(key)
            yield shape[0](raw + shape[1] + (names(raw[8]), symbols(raw[10])))


class PackedRows(Iterator[Tuple[Any, ...]]):
    """The rows of a :class:`PackedAreaTable`, decoded as they are iterated;
    :func:`iter_rows_json` writes them from the records instead."""

    __slots__ = ("table", "_it")

    def __init__(self, table: PackedAreaTable) -> None:
        self.table = table
        self._it = table._decode(table.records())

    def __iter__(self) -> PackedRows:
        return self

    def __next__(self) -> Tuple[Any, ...]:
        return next(self._it)


def _summary_counts(rows: Iterable[Tuple[Any, ...]]) -> Dict[Tuple[Any, ...], int]:
    return dict(Counter((r[2], r[17], r[18], r[14], r[1] - r[0]) if r[9] is not None
                   else (r[2], None, None, None, r[1] - r[0]) for r in rows))


def _row_filter(
    kinds: Optional[Iterable[str]], caller: Optional[str], min_size: int, lo: Optional[int], hi: Optional[int]
) -> Any:
    """The test :meth:`VmallocModel.select` applies, on one row (None: no test)."""
    ks = check_kinds(kinds, KINDS)
    min_size = as_count(min_size, "min_size")
    lo = None if lo is None else as_address(lo, "lo")
    hi = None if hi is None else as_address(hi, "hi")
    if ks is None and caller is None and min_size <= 0 and lo is None and hi is None:
        return None

    def keep(r: Tuple[Any, ...]) -> bool:
        start, end = r[0], r[1]
        if ks is not None and r[2] not in ks:
            return False
        if end - start < min_size:
            return False
        if lo is not None and end <= lo:
            return False
        if hi is not None and start >= hi:
            return False
        if caller is not None:
            sym = r[18]
            name = sym.split("+", 1)[0] if sym else ""
            if not (fnmatch.fnmatchcase(name, caller) or (sym and fnmatch.fnmatchcase(sym, caller))):
                return False
        return True

    return keep


class VmallocModel:
    """
    A snapshot of the kernel's vmalloc state. ``areas`` are the busy areas
    sorted by start; ``walk_order`` is the same objects in the kernel's own
    order (node by node on 6.9+); ``lazy`` and ``pooled`` are not busy.

    A model loaded from a snapshot may hold its busy areas as an
    :class:`AreaTable` (``area_table``, with ``walk_index``: walk order as
    indices into ``areas + lazy + pooled``, None for ``areas``' own order);
    ``areas`` and ``walk_order`` are then built on first use.
    """

    def __init__(
        self,
        *,
        layout: Any,
        release: Optional[str],
        page_size: int,
        vmalloc_start: int,
        vmalloc_end: int,
        modules_start: int,
        modules_end: int,
        areas: Optional[List[Area]],
        walk_order: Optional[List[Area]],
        lazy: List[Area],
        pooled: List[Area],
        blocks: List[VmapBlock],
        holes: Optional[List[FreeHole]],
        lazy_nr: Optional[int],
        lazy_max_pages: Optional[int],
        warnings: List[str],
        numa: bool = False,
        area_table: Optional[AreaTable] = None,
        walk_index: Optional[List[int]] = None,
    ) -> None:
        if areas is None and area_table is None:
            raise ValueError("a VmallocModel needs areas or an area_table")
        self.layout = layout
        self.release = release
        self.page_size = page_size
        self.vmalloc_start = vmalloc_start
        self.vmalloc_end = vmalloc_end
        self.modules_start = modules_start
        self.modules_end = modules_end
        self._areas = areas
        self._walk_order = walk_order
        self._table = area_table if areas is None else None
        self._walk_index = walk_index
        self.lazy = lazy
        self.pooled = pooled
        self.blocks = blocks
        #: None when the kernel has no free list (< 5.2): use gaps()
        self.holes = holes
        self.lazy_nr = lazy_nr
        self.lazy_max_pages = lazy_max_pages
        self.warnings = warnings
        self.numa = numa
        self._starts: Optional[Sequence[int]] = None
        self._ends: Optional[Sequence[int]] = None  # while the areas are rows
        self._blocks_by_start = {b.start: b for b in blocks}
        self._blocks_by_addr = {b.address: b for b in blocks}

    @property
    def areas(self) -> List[Area]:
        """The busy areas, sorted by start.  A model built from a kernel or
        read from a snapshot holds them as rows (:meth:`area_table`) until
        this is first used; :meth:`select`, :meth:`find`, :meth:`stats` and
        :meth:`rows` do not need it."""
        if self._areas is None:
            assert self._table is not None
            if self._walk_order is None and self._walk_index is None:
                self._walk_index = self._table.walk_index()
            self._areas = self._table.areas()
            self._table = self._ends = None
        return self._areas

    @areas.setter
    def areas(self, value: List[Area]) -> None:
        self._areas, self._table, self._starts, self._ends = value, None, None, None

    @property
    def walk_order(self) -> List[Area]:
        if self._walk_order is None:
            index = self.walk_index()
            if index is None:
                self._walk_order = self.areas
            else:
                every = list(self.areas) + self.lazy + self.pooled
                self._walk_order = [every[i] for i in index]
                self._walk_index = None
        return self._walk_order

    @walk_order.setter
    def walk_order(self, value: List[Area]) -> None:
        self._walk_order, self._walk_index = value, None

    def walk_index(self) -> Optional[List[int]]:
        """The walk order as indices into ``areas + lazy + pooled``, or None
        when it is ``areas``' own order."""
        if self._walk_order is None:
            if self._walk_index is None and self._table is not None:
                return self._table.walk_index()
            return None if self._walk_index is None else list(self._walk_index)
        walk, areas = self._walk_order, self.areas
        if len(walk) == len(areas) and all(x is y for x, y in zip(walk, areas)):
            return None
        # <= 5.3 walks lazy areas in the busy list too
        index = {id(a): i for i, a in enumerate(areas + self.lazy + self.pooled)}
        return [index[id(a)] for a in walk]

    @property
    def nr_areas(self) -> int:
        """``len(self.areas)``, without building the areas."""
        return len(self._table) if self._table is not None else len(self.areas)

    def area_table(self) -> Optional[AreaTable]:
        """The :class:`AreaTable` of the busy areas while they have not been
        built as objects, else None."""
        return self._table

    def rows(self) -> Iterator[Tuple[Any, ...]]:
        """The busy areas as :data:`AREA_ROW_FIELDS` tuples, sorted by start,
        without building :class:`Area` objects when the model holds rows."""
        if self._table is not None:
            return self._table.rows()
        return map(area_row, self.areas)

    def has_kind(self, kind: str) -> bool:
        """Whether a busy area is of ``kind``."""
        if self._table is not None:
            return self._table.has_kind(kind)
        return any(a.kind == kind for a in self.areas)

    # -- lookups -----------------------------------------------------------

    def _start_index(self) -> Sequence[int]:
        if self._starts is None:
            index = getattr(self._table, "index", None)
            if index is not None:
                self._starts, self._ends = index
            elif self._table is not None:
                self._starts = self._table.column("start")
            else:
                self._starts = [a.start for a in self.areas]
        return self._starts

    def find(self, addr: int, include_lazy: bool = True) -> Optional[Area]:
        """The area containing ``addr`` (busy first, then lazy and pooled).
        While the model holds rows, each call builds a new :class:`Area`.

        :param addr: an int or a drgn Object of integer or pointer type.
        :raises ArgumentError: ``addr`` is not a 64-bit address."""
        if type(addr) is not int or not 0 <= addr < 1 << 64:
            addr = as_address(addr, "addr")
        starts = self._start_index()
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0:
            if self._table is not None:
                r = self._table.row(i)
                if r[0] <= addr < r[1]:
                    return AreaTable.area(r)
            elif self.areas[i].start <= addr < self.areas[i].end:
                return self.areas[i]
        if include_lazy:
            for a in self.lazy:
                if a.start <= addr < a.end:
                    return a
            for a in self.pooled:
                if a.start <= addr < a.end:
                    return a
        return None

    def block_of(self, area: Area) -> Optional[VmapBlock]:
        if area.block is not None:
            return self._blocks_by_addr.get(area.block)
        return self._blocks_by_start.get(area.start)

    def find_piece(self, addr: int) -> Optional[Tuple[VmapBlock, Optional[Tuple[int, int]]]]:
        """``(block, piece or None if addr is in an unused page)``."""
        a = self.find(addr, include_lazy=False)
        if a is None:
            return None
        b = self.block_of(a)
        if b is None:
            return None
        for p in b.pieces(self.page_size):
            if p[0] <= addr < p[1]:
                return b, p
        return b, None

    def select(
        self,
        kinds: Optional[Iterable[str]] = None,
        caller: Optional[str] = None,
        min_size: int = 0,
        lo: Optional[int] = None,
        hi: Optional[int] = None,
        include_lazy: bool = False,
    ) -> Iterator[Area]:
        """Filter areas: kinds (any of :data:`KINDS`), caller glob (symbol
        name), size, overlap [lo, hi).

        :raises ArgumentError: an unknown kind, or ``kinds`` given as one string.
        """
        if self._table is not None and not self._with_unbusy(kinds, include_lazy):
            # rows: each Area built as it is reached
            return map(AreaTable.area, self.select_rows(kinds, caller, min_size, lo, hi))
        keep = _row_filter(kinds, caller, min_size, lo, hi)
        return (a for a in self._selectable(kinds, include_lazy) if keep is None or keep(area_row(a)))

    def select_rows(
        self,
        kinds: Optional[Iterable[str]] = None,
        caller: Optional[str] = None,
        min_size: int = 0,
        lo: Optional[int] = None,
        hi: Optional[int] = None,
        include_lazy: bool = False,
    ) -> Iterator[Tuple[Any, ...]]:
        """:meth:`select` as :data:`AREA_ROW_FIELDS` tuples: a listing of a
        million areas never builds their objects (:func:`iter_rows_json`)."""
        keep = _row_filter(kinds, caller, min_size, lo, hi)
        if self._table is not None and not self._with_unbusy(kinds, include_lazy):
            rows = self._table.rows()
        else:
            rows = map(area_row, self._selectable(kinds, include_lazy))
        return rows if keep is None else filter(keep, rows)

    @staticmethod
    def _with_unbusy(kinds: Optional[Iterable[str]], include_lazy: bool) -> bool:
        ks = check_kinds(kinds, KINDS)
        return include_lazy or bool(ks and ("lazy" in ks or "pooled" in ks))

    def _selectable(self, kinds: Optional[Iterable[str]], include_lazy: bool) -> Iterable[Area]:
        if self._with_unbusy(kinds, include_lazy):
            return sorted(list(self.areas) + self.lazy + self.pooled)
        return self.areas

    # -- free space --------------------------------------------------------

    def vmalloc_holes(self) -> List[FreeHole]:
        """Holes inside [VMALLOC_START, VMALLOC_END), clipped."""
        return self.holes_in(self.vmalloc_start, self.vmalloc_end)

    def holes_in(self, lo: int, hi: int) -> List[FreeHole]:
        if self.holes is None:
            return self.gaps(lo, hi)
        out = []
        for h in self.holes:
            s, e = max(h.start, lo), min(h.end, hi)
            if s < e:
                out.append(FreeHole(s, e))
        return out

    def gaps(self, lo: int, hi: int) -> List[FreeHole]:
        """Gaps between busy, lazy and pooled areas (for kernels without a free list)."""
        taken = sorted([(r[0], r[1]) for r in self.rows()] + [(a.start, a.end) for a in self.lazy + self.pooled])
        out = []
        pos = lo
        for s, e in taken:
            if e <= pos:
                continue
            if s >= hi:
                break
            if s > pos:
                out.append(FreeHole(pos, s))
            pos = max(pos, e)
        if pos < hi:
            out.append(FreeHole(pos, hi))
        return out

    def hole_histogram(self, holes: Optional[List[FreeHole]] = None) -> Dict[int, int]:
        """``{2**k: number of holes with 2**k <= size < 2**(k+1)}``."""
        hist: Dict[int, int] = {}
        for h in holes if holes is not None else self.vmalloc_holes():
            k = 1 << (h.size.bit_length() - 1) if h.size else 0
            hist[k] = hist.get(k, 0) + 1
        return dict(sorted(hist.items()))

    def fits(
        self, size: int, align: int = 0, holes: Optional[List[FreeHole]] = None
    ) -> List[Tuple[FreeHole, int]]:
        """
        Holes where a request of ``size`` bytes (aligned to ``align``) fits,
        with the lowest fitting address in each -- the kernel's allocator
        picks the lowest fit. It does not add the guard page: pass
        ``size + PAGE_SIZE`` to model ``vmalloc(size)``.
        """
        align = max(align, self.page_size)
        out = []
        for h in holes if holes is not None else self.vmalloc_holes():
            a = (h.start + align - 1) // align * align
            if a + size <= h.end:
                out.append((h, a))
        return out

    # -- summaries ---------------------------------------------------------

    def summary_counts(
        self, kinds: Optional[Iterable[str]] = None, caller: Optional[str] = None
    ) -> Dict[Tuple[Any, ...], int]:
        """``{(kind, caller, symbol, nr_pages, size): number of busy areas}``
        in the order each first appears (caller, symbol and nr_pages None
        for an area without a vm_struct), over the areas :meth:`select`
        picks among the busy areas: what totals by kind and caller are
        added up from."""
        keep = _row_filter(kinds, caller, 0, None, None)
        if self._table is not None and keep is None:
            return self._table.summary_counts()
        return _summary_counts(self.rows() if keep is None else filter(keep, self.rows()))

    def _used(self, lo: int, hi: int) -> int:
        """Bytes of the busy areas that start in [lo, hi)."""
        if lo >= hi:
            return 0
        starts = self._start_index()
        i, j = bisect.bisect_left(starts, lo), bisect.bisect_left(starts, hi)
        if self._table is not None:
            if self._ends is None:
                self._ends = self._table.column("end")
            return sum(self._ends[i:j]) - sum(starts[i:j])
        return sum(a.end - a.start for a in self.areas[i:j])

    def stats(self) -> Dict[str, Any]:
        """Totals by kind and caller, lazy pages vs threshold, range usage."""
        ps = self.page_size
        # [count, size, pages] by (kind, a key that gives the caller's name:
        # the symbol, the caller's address, or None without a vm_struct), so
        # that one lookup serves both totals and each name is made once
        groups: Dict[Tuple[str, Any], List[int]] = {}
        get = groups.get
        nr_areas = 0
        for (kind, caller, sym, nr, size), count in self.summary_counts().items():
            nr_areas += count
            if nr is not None:
                pages = nr
                key: Tuple[str, Any] = (kind, sym or caller)
            else:
                pages = size // ps
                key = (kind, None)
            g = get(key)
            if g is None:
                groups[key] = [count, size * count, pages * count]
            else:
                g[0] += count
                g[1] += size * count
                g[2] += pages * count
        vs, ve, ms, me = self.vmalloc_start, self.vmalloc_end, self.modules_start, self.modules_end
        used_vmalloc = self._used(vs, ve)
        used_modules = self._used(ms, me) - (self._used(max(ms, vs), min(me, ve)) if ms < ve and vs < me else 0)
        # groups are in the order they first appear among the areas, and so
        # are the kinds and names they are added up into
        by_kind: Dict[str, Dict[str, int]] = {}
        by_caller: Dict[str, Dict[str, int]] = {}
        for (kind, ck), v in groups.items():
            if ck is None:
                name = f"({kind})"
            elif isinstance(ck, str):
                name = ck.split("+", 1)[0]
            else:
                name = hex(ck) if ck else "?"
            for d, k in ((by_kind, kind), (by_caller, name)):
                t = d.get(k)
                if t is None:
                    d[k] = {"count": v[0], "size": v[1], "pages": v[2]}
                else:
                    t["count"] += v[0]
                    t["size"] += v[1]
                    t["pages"] += v[2]
        lazy_pages = sum((a.end - a.start) // ps for a in self.lazy)
        holes = self.vmalloc_holes()
        largest = max((h.size for h in holes), default=0)
        return {
            "areas": nr_areas,
            "by_kind": dict(sorted(by_kind.items(), key=lambda kv: -kv[1]["size"])),
            "by_caller": dict(sorted(by_caller.items(), key=lambda kv: -kv[1]["size"])),
            "lazy": {
                "areas": len(self.lazy),
                "pages": lazy_pages,
                "vmap_lazy_nr": self.lazy_nr,
                "lazy_max_pages": self.lazy_max_pages,
            },
            "pooled": {"areas": len(self.pooled), "size": sum(a.size for a in self.pooled)},
            "vmalloc_range": {
                "start": self.vmalloc_start,
                "end": self.vmalloc_end,
                "size": self.vmalloc_end - self.vmalloc_start,
                "used": used_vmalloc,
                "free": sum(h.size for h in holes),
                "holes": len(holes),
                "largest_hole": largest,
            },
            "modules_range": {
                "start": self.modules_start,
                "end": self.modules_end,
                "used": used_modules,
            },
            "blocks": len(self.blocks),
            "warnings": len(self.warnings),
        }

    # -- serialisation -------------------------------------------------------

    def to_dict(self) -> Dict[str, Any]:
        layout = self.layout.to_dict() if hasattr(self.layout, "to_dict") else self.layout
        ps = self.page_size
        return {
            "release": self.release,
            "layout": layout,
            "page_size": ps,
            "vmalloc_start": self.vmalloc_start,
            "vmalloc_end": self.vmalloc_end,
            "modules_start": self.modules_start,
            "modules_end": self.modules_end,
            "areas": [a.to_dict(ps) for a in self.areas],
            "lazy": [a.to_dict(ps) for a in self.lazy],
            "pooled": [a.to_dict(ps) for a in self.pooled],
            "blocks": [b.to_dict(ps) for b in self.blocks],
            "holes": [h.to_dict() for h in self.holes] if self.holes is not None else None,
            "lazy_nr": self.lazy_nr,
            "lazy_max_pages": self.lazy_max_pages,
            "warnings": list(self.warnings),
        }

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)

    def diff(self, other: VmallocModel) -> Dict[str, List[Any]]:
        """
        What changed from ``self`` to ``other``, keyed by area start:
        ``added`` / ``removed`` areas and ``changed`` ``(old, new)`` pairs.
        """
        a = {x.start: x for x in self.areas}
        b = {x.start: x for x in other.areas}
        return {
            "added": [b[k] for k in sorted(b.keys() - a.keys())],
            "removed": [a[k] for k in sorted(a.keys() - b.keys())],
            "changed": [(a[k], b[k]) for k in sorted(a.keys() & b.keys()) if a[k] != b[k]],
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VmallocModel):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"<VmallocModel {self.layout.label if hasattr(self.layout, 'label') else ''}"
            f" areas={self.nr_areas} lazy={len(self.lazy)} blocks={len(self.blocks)}"
            f" warnings={len(self.warnings)}>"
        )

