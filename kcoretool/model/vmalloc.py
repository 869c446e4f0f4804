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
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from kcoretool.errors import ArgumentError
from kcoretool.kernel.vmflags import VM_NO_GUARD

__all__ = (
    "Area",
    "AreaTable",
    "FreeHole",
    "KINDS",
    "VmStruct",
    "VmallocModel",
    "VmapBlock",
    "check_kinds",
    "iter_areas_json",
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
    """``(type_name)address`` in ``prog``: a model object's kernel struct."""
    import drgn

    if address is None:
        raise ArgumentError(f"this {what} has no struct address (a synthetic or snapshot-only entry)")
    return drgn.Object(prog, type_name, address)


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

    def object(self, prog: Any) -> Any:
        """The ``struct vm_struct *`` in ``prog`` (a :class:`drgn.Object`)::

            >>> area.vm.object(prog).nr_pages
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

    def object(self, prog: Any) -> Any:
        """The ``struct vmap_area *`` in ``prog`` (a :class:`drgn.Object`),
        for drgn's helpers and members kcoretool does not model::

            >>> hex(area.object(prog).va_start)
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
    ``[a.to_dict(page_size) for a in areas]``).  Rows are built from
    templates with per-caller, per-flags and per-kind caches: a dict and a
    ``json.dumps`` per row is 3x slower and needs the whole array in memory.
    With ``owners`` (area start -> who owns an executable area,
    :meth:`kcoretool.model.exec.ExecModel.area_owners`) each row also has
    ``"owner"`` (null where none).
    """
    # Each row is the dynamic numbers around two cached fragments: one per
    # (kind, pages, caller, vm flags, va flags), one per (page order,
    # requested size, lazy, node, node id) -- few distinct in practice; a
    # cache that grows past _CACHE_MAX stops growing (rows are then built
    # in full).
    mid_cache: Dict[Tuple[Any, ...], str] = {}
    tail_cache: Dict[Tuple[Any, ...], str] = {}
    novm_cache: Dict[Tuple[Any, ...], str] = {}

    def n(v: Optional[int]) -> str:
        return "null" if v is None else str(v)

    buf: List[str] = []
    append = buf.append
    first = True
    # busy areas mostly touch (one's end is the next one's start): the end's
    # decimal text is kept for the next start
    prev_end: Optional[int] = None
    end_s = ""
    yield "["
    for a in areas:
        vm = a.vm
        start = a.start
        end = a.end
        block = a.block
        start_s = end_s if start == prev_end else str(start)
        end_s = str(end)
        prev_end = end
        if vm is not None:
            key: Tuple[Any, ...] = (a.kind, vm.nr_pages, vm.caller, vm.flags, a.flags)
            mid = mid_cache.get(key)
            if mid is None:
                mid = (
                    ',"kind":%s,"pages":%d,"caller":%d,"caller_symbol":%s,"flags":%s,"vm_flags":%d,'
                    '"va_flags":%s,"phys_addr":'
                ) % (json.dumps(a.kind), vm.nr_pages, vm.caller, json.dumps(vm.caller_symbol),
                     json.dumps(list(vm.flag_names)), vm.flags, n(a.flags))
                if len(mid_cache) < _CACHE_MAX:
                    mid_cache[key] = mid
            key = (vm.page_order, vm.requested_size, a.lazy, a.node, a.flags_node_id)
            tail = tail_cache.get(key)
            if tail is None:
                tail = ',"page_order":%s,"requested_size":%s,"lazy":%s,"node":%s,"flags_node_id":%s,"vmap_area":' % (
                    n(vm.page_order), n(vm.requested_size), "true" if a.lazy else "false", n(a.node),
                    n(a.flags_node_id))
                if len(tail_cache) < _CACHE_MAX:
                    tail_cache[key] = tail
            row = '{"start":%s,"end":%s,"size":%d%s%s%s%d,"vm_struct":%d,"vmap_block":%s}' % (
                start_s, end_s, end - start, mid, vm.phys_addr or "null", tail, a.address, vm.address,
                "null" if block is None else block)
        else:
            key = (a.kind, a.flags, a.lazy, a.node, a.flags_node_id)
            mid = novm_cache.get(key)
            if mid is None:
                mid = (
                    ',"kind":%s,"pages":%%d,"caller":null,"caller_symbol":null,"flags":[],"vm_flags":null,'
                    '"va_flags":%s,"phys_addr":null,"page_order":null,"requested_size":null,"lazy":%s,'
                    '"node":%s,"flags_node_id":%s,"vmap_area":'
                ) % (json.dumps(a.kind), n(a.flags), "true" if a.lazy else "false", n(a.node),
                     n(a.flags_node_id))
                if len(novm_cache) < _CACHE_MAX:
                    novm_cache[key] = mid
            row = '{"start":%s,"end":%s,"size":%d%s%d,"vm_struct":null,"vmap_block":%s}' % (
                start_s, end_s, end - start, mid % ((end - start) // page_size), a.address,
                "null" if block is None else block)
        if owners is not None:
            o = owners.get(start)
            row = row[:-1] + ',"owner":' + ("null" if o is None else json.dumps(o)) + "}"
        append(row)
        if len(buf) >= chunk:
            # rows are "\n,"-separated, and a chunk after the first starts with ","
            yield ("" if first else ",") + "\n,".join(buf)
            first = False
            buf = []
            append = buf.append
    if buf:
        yield ("" if first else ",") + "\n,".join(buf)
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

    def object(self, prog: Any) -> Any:
        """The ``struct vmap_block *`` in ``prog`` (a :class:`drgn.Object`)."""
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


class AreaTable:
    """
    Areas by column (:data:`AREA_ROW_FIELDS`), for a model read back from
    a snapshot.  Its rows are plain tuples: two rows are equal exactly when
    the two :class:`Area` they stand for are, so a diff can compare rows and
    build objects only for what differs.  :meth:`areas` builds the objects.
    Rows are made on demand and not kept: a few long lists of numbers cost
    the cyclic GC little, a tuple per area a full pass over all of them.
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
        self._starts: Optional[List[int]] = None
        self._blocks_by_start = {b.start: b for b in blocks}
        self._blocks_by_addr = {b.address: b for b in blocks}

    @property
    def areas(self) -> List[Area]:
        if self._areas is None:
            assert self._table is not None
            self._areas = self._table.areas()
            self._table = None
        return self._areas

    @areas.setter
    def areas(self, value: List[Area]) -> None:
        self._areas, self._table, self._starts = value, None, None

    @property
    def walk_order(self) -> List[Area]:
        if self._walk_order is None:
            if self._walk_index is None:
                self._walk_order = self.areas
            else:
                every = self.areas + self.lazy + self.pooled
                self._walk_order = [every[i] for i in self._walk_index]
                self._walk_index = None
        return self._walk_order

    @walk_order.setter
    def walk_order(self, value: List[Area]) -> None:
        self._walk_order, self._walk_index = value, None

    def walk_index(self) -> Optional[List[int]]:
        """The walk order as indices into ``areas + lazy + pooled``, or None
        when it is ``areas``' own order."""
        if self._walk_order is None:
            return self._walk_index
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

    # -- lookups -----------------------------------------------------------

    def _start_index(self) -> List[int]:
        if self._starts is None:
            self._starts = [a.start for a in self.areas]
        return self._starts

    def find(self, addr: int, include_lazy: bool = True) -> Optional[Area]:
        """The area containing ``addr`` (busy first, then lazy and pooled)."""
        starts = self._start_index()
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and self.areas[i].start <= addr < self.areas[i].end:
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
        ks = check_kinds(kinds, KINDS)
        src: Iterable[Area] = self.areas
        if include_lazy or (ks and ("lazy" in ks or "pooled" in ks)):
            src = sorted(list(self.areas) + self.lazy + self.pooled)
        for a in src:
            if ks is not None and a.kind not in ks:
                continue
            if a.end - a.start < min_size:
                continue
            if lo is not None and a.end <= lo:
                continue
            if hi is not None and a.start >= hi:
                continue
            if caller is not None:
                sym = a.vm.caller_symbol if a.vm is not None else None
                name = sym.split("+", 1)[0] if sym else ""
                if not (fnmatch.fnmatchcase(name, caller) or (sym and fnmatch.fnmatchcase(sym, caller))):
                    continue
            yield a

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
        taken = sorted((a.start, a.end) for a in list(self.areas) + self.lazy + self.pooled)
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

    def stats(self) -> Dict[str, Any]:
        """Totals by kind and caller, lazy pages vs threshold, range usage."""
        ps = self.page_size
        # [count, size, pages] by (kind, a key that gives the caller's name:
        # the symbol, the caller's address, or None without a vm_struct), so
        # that one lookup serves both totals and each name is made once
        groups: Dict[Tuple[str, Any], List[int]] = {}
        get = groups.get
        used_vmalloc = 0
        used_modules = 0
        vs, ve, ms, me = self.vmalloc_start, self.vmalloc_end, self.modules_start, self.modules_end
        for a in self.areas:
            start = a.start
            size = a.end - start
            vm = a.vm
            if vm is not None:
                pages = vm.nr_pages
                key: Tuple[str, Any] = (a.kind, vm.caller_symbol or vm.caller)
            else:
                pages = size // ps
                key = (a.kind, None)
            g = get(key)
            if g is None:
                groups[key] = [1, size, pages]
            else:
                g[0] += 1
                g[1] += size
                g[2] += pages
            if vs <= start < ve:
                used_vmalloc += size
            elif ms <= start < me:
                used_modules += size
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
            "areas": len(self.areas),
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
            f" areas={len(self.areas)} lazy={len(self.lazy)} blocks={len(self.blocks)}"
            f" warnings={len(self.warnings)}>"
        )

