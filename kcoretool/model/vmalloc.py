# SPDX-License-Identifier: LGPL-2.1-or-later
"""
vmalloc model
-------------

:class:`VmallocModel`: the vmalloc state of one kernel -- its areas
(:mod:`kcoretool.model.area`), held as rows (:mod:`kcoretool.model.packed`)
until something asks for objects -- with its lookups, selections, free
space and totals.  Built by :func:`kcoretool.model.build.from_program`,
compared by :func:`kcoretool.model.diff.diff`.
"""

from __future__ import annotations

import bisect
import fnmatch
import json
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from kcoretool._args import as_address, as_count
from kcoretool.model.area import KINDS, ROW_AT, Area, FreeHole, VmapBlock, area_row, check_kinds, row_area
from kcoretool.model.packed import AreaTable, summary_counts

__all__ = ("VmallocModel",)

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

    kind_at, sym_at = ROW_AT["kind"], ROW_AT["caller_symbol"]

    def keep(r: Tuple[Any, ...]) -> bool:
        start, end = r[0], r[1]
        if ks is not None and r[kind_at] not in ks:
            return False
        if end - start < min_size:
            return False
        if lo is not None and end <= lo:
            return False
        if hi is not None and start >= hi:
            return False
        if caller is not None:
            sym = r[sym_at]
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
        """The busy areas as rows (:data:`~kcoretool.model.area.AREA_ROW_FIELDS`), sorted by start,
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
                    return row_area(r)
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
        if area.vmap_block is not None:
            return self._blocks_by_addr.get(area.vmap_block)
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
            return map(row_area, self.select_rows(kinds, caller, min_size, lo, hi))
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
        """:meth:`select` as rows: a listing of a
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
        return summary_counts(self.rows() if keep is None else filter(keep, self.rows()))

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

