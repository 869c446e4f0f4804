# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Two vmalloc states compared
---------------------------

:func:`diff` compares two :class:`~kcoretool.model.snapshot.VmallocSnapshot`
(busy areas only: lazy and pooled areas are already freed).

Same boot: areas are matched by start address.  An area present at the same
start in both is the *same allocation* when its ``struct vmap_area``, its
``struct vm_struct`` and its caller are the same; it is then ``changed`` if
its end, kind, pages, vm flags, vm size or requested size differ (a
vrealloc(), VM_UNINITIALIZED cleared, pages still being filled), else
unchanged.  Anything else at the same start is a reused address and counts
as ``freed`` (A's area) and ``new`` (B's).

Different boots (boot id, release or KASLR offset differ where both are
known): addresses mean nothing across boots, so only the per-caller summary
is compared, by caller and kind.

The per-caller summary (:class:`CallerDelta`) counts areas, pages and bytes
(virtual size, guard page included, as vmallocinfo) per ``(caller, kind)``.
The caller is the function name of the ``%pS`` symbol and its module
(``kct_grow [kcoretool_test]``); areas without a vm_struct have caller ``-``.
"""

from __future__ import annotations

import fnmatch
import gc
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from kcoretool.model.area import Area, row_area
from kcoretool.model.snapshot import VmallocSnapshot, area_to_json
from kcoretool.model.vmalloc import VmallocModel

__all__ = (
    "AreaChange",
    "CallerDelta",
    "SnapshotInfo",
    "VmallocDiff",
    "caller_name",
    "caller_totals",
    "diff",
    "same_boot",
)

#: What ``changed`` compares for the same allocation.
COMPARED = ("end", "kind", "pages", "vm_flags", "vm_size", "requested_size")

Key = Tuple[str, str]


def caller_name(symbol: Optional[str], caller: Optional[int]) -> str:
    """``name [module]`` of a ``%pS`` symbol (offset and size dropped), the
    raw address when unsymbolised, ``-`` without a vm_struct."""
    if symbol:
        name, _, rest = symbol.partition("+")
        mod = rest.rfind(" [")
        return name + rest[mod:] if mod >= 0 else name
    if caller:
        return f"{caller:#x}"
    return "-"


def _caller_matches(glob: str, area: Area) -> bool:
    sym = area.vm.caller_symbol if area.vm is not None else None
    name = sym.split("+", 1)[0] if sym else ""
    return fnmatch.fnmatchcase(name, glob) or bool(sym and fnmatch.fnmatchcase(sym, glob))


def caller_totals(
    model: VmallocModel, kinds: Optional[Iterable[str]] = None, caller: Optional[str] = None
) -> Dict[Key, List[int]]:
    """``{(caller, kind): [areas, pages, bytes]}`` over the busy areas."""
    ps = model.page_size
    # First by the raw (symbol, address, kind) -- cheap to hash -- then by name.
    raw: Dict[Tuple[Optional[str], int, str], List[int]] = {}
    for (kind, addr, sym, nr, size), count in model.summary_counts(kinds or None, caller).items():
        if nr is not None:
            key, pages = (sym, addr, kind), nr
        else:
            key, pages = (None, 0, kind), size // ps
        t = raw.get(key)
        if t is None:
            raw[key] = [count, pages * count, size * count]
        else:
            t[0] += count
            t[1] += pages * count
            t[2] += size * count
    return _by_name(raw)


def _by_name(raw: Dict[Tuple[Optional[str], int, str], List[int]]) -> Dict[Key, List[int]]:
    out: Dict[Key, List[int]] = {}
    for (sym, addr, kind), v in raw.items():
        k = (caller_name(sym, addr), kind)
        t = out.get(k)
        if t is None:
            out[k] = v
        else:
            t[0] += v[0]
            t[1] += v[1]
            t[2] += v[2]
    return out


@dataclass(frozen=True)
class CallerDelta:
    """One caller's (and kind's) areas, pages and bytes before -> after."""

    caller: str
    kind: str
    areas_before: int
    areas_after: int
    pages_before: int
    pages_after: int
    bytes_before: int
    bytes_after: int

    @property
    def areas_delta(self) -> int:
        return self.areas_after - self.areas_before

    @property
    def pages_delta(self) -> int:
        return self.pages_after - self.pages_before

    @property
    def bytes_delta(self) -> int:
        return self.bytes_after - self.bytes_before

    def to_dict(self) -> Dict[str, Any]:
        return {
            "caller": self.caller, "kind": self.kind,
            "areas": {"before": self.areas_before, "after": self.areas_after, "delta": self.areas_delta},
            "pages": {"before": self.pages_before, "after": self.pages_after, "delta": self.pages_delta},
            "bytes": {"before": self.bytes_before, "after": self.bytes_after, "delta": self.bytes_delta},
        }


def growth_key(c: CallerDelta) -> Tuple[int, int, int, str, str]:
    """Most growth first: pages, then bytes, then areas; then by name."""
    return (-c.pages_delta, -c.bytes_delta, -c.areas_delta, c.caller, c.kind)


@dataclass(frozen=True)
class AreaChange:
    """The same allocation in both states, with the fields that differ."""

    before: Area
    after: Area
    fields: Tuple[str, ...]


@dataclass(frozen=True)
class SnapshotInfo:
    """Which kernel and when, for one side of a diff."""

    #: the snapshot file it was loaded from (None: taken from a core now)
    file: Optional[str]
    source: Optional[str]
    kind: Optional[str]
    release: Optional[str]
    boot_id: Optional[str]
    kaslr_offset: Optional[int]
    time: Optional[int]
    time_iso: Optional[str]
    areas: int
    pages: int
    bytes: int

    @classmethod
    def of(cls, s: VmallocSnapshot, totals: Optional[Dict[Key, List[int]]] = None) -> SnapshotInfo:
        """``totals``: :func:`caller_totals` of the whole model, if at hand."""
        t = caller_totals(s.model) if totals is None else totals
        return cls(s.file, s.source_path, s.source_kind, s.release, s.boot_id, s.kaslr_offset, s.time,
                   s.time_iso, s.model.nr_areas, sum(v[1] for v in t.values()),
                   sum(v[2] for v in t.values()))

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class VmallocDiff:
    """What :func:`diff` found: area lists (same boot only) and the
    per-caller summary, both after the filters."""

    a: SnapshotInfo
    b: SnapshotInfo
    #: areas are compared by address only when this is true
    same_boot: bool
    #: why same_boot is what it is (one sentence)
    boot_note: str
    freed: List[Area] = field(default_factory=list)
    new: List[Area] = field(default_factory=list)
    changed: List[AreaChange] = field(default_factory=list)
    #: areas the same in both (within the filters)
    unchanged: int = 0
    #: every (caller, kind) whose areas, pages or bytes changed, most growth first
    callers: List[CallerDelta] = field(default_factory=list)
    filters: Dict[str, Any] = field(default_factory=dict)
    page_size: int = 4096

    #: every selected area (kinds and caller filters), changed or not
    total: CallerDelta = CallerDelta("*", "*", 0, 0, 0, 0, 0, 0)

    def to_dict(self) -> Dict[str, Any]:
        ps = self.page_size
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "same_boot": self.same_boot,
            "compared_by": "address" if self.same_boot else "caller and kind",
            "boot_note": self.boot_note,
            "filters": self.filters,
            "freed": [area_to_json(x, ps) for x in self.freed] if self.same_boot else None,
            "new": [area_to_json(x, ps) for x in self.new] if self.same_boot else None,
            "changed": [{"before": area_to_json(c.before, ps), "after": area_to_json(c.after, ps),
                         "fields": list(c.fields)} for c in self.changed] if self.same_boot else None,
            "unchanged": self.unchanged if self.same_boot else None,
            "callers": [c.to_dict() for c in self.callers],
            "total": self.total.to_dict(),
        }


def same_boot(a: VmallocSnapshot, b: VmallocSnapshot) -> Tuple[bool, str]:
    """Whether ``a`` and ``b`` are the same boot, and why we think so:
    different if the boot id, release or KASLR offset differ where both
    sides know it; the same otherwise (saying what matched)."""
    differ: List[str] = []
    matched: List[str] = []
    if a.boot_id and b.boot_id:
        (matched if a.boot_id == b.boot_id else differ).append(
            f"boot id {a.boot_id}" if a.boot_id == b.boot_id else f"boot id {a.boot_id} vs {b.boot_id}")
    if a.release and b.release:
        (matched if a.release == b.release else differ).append(
            "release" if a.release == b.release else f"release {a.release} vs {b.release}")
    if a.kaslr_offset is not None and b.kaslr_offset is not None:
        (matched if a.kaslr_offset == b.kaslr_offset else differ).append(
            "KASLR offset" if a.kaslr_offset == b.kaslr_offset
            else f"KASLR offset {a.kaslr_offset:#x} vs {b.kaslr_offset:#x}")
    if differ:
        return False, f"different boots ({'; '.join(differ)}): compared by caller and kind only"
    if a.boot_id and b.boot_id:
        return True, f"same boot ({matched[0]})"
    if matched:
        return True, f"same boot as far as known ({' and '.join(matched)} match; boot id unknown)"
    return True, "same boot assumed (neither boot id, release nor KASLR offset known)"


def _fields_differ(x: Area, y: Area, ps: int) -> Tuple[str, ...]:
    out = []
    if x.end != y.end:
        out.append("end")
    if x.kind != y.kind:
        out.append("kind")
    if x.pages(ps) != y.pages(ps):
        out.append("pages")
    vx, vy = x.vm, y.vm
    if vx is not None and vy is not None:
        if vx.flags != vy.flags:
            out.append("vm_flags")
        if vx.size != vy.size:
            out.append("vm_size")
        if vx.requested_size != vy.requested_size:
            out.append("requested_size")
    return tuple(out)


def _same_allocation(x: Area, y: Area) -> bool:
    if x.vmap_area != y.vmap_area:
        return False
    vx, vy = x.vm, y.vm
    if vx is None or vy is None:
        return vx is None and vy is None
    return vx.address == vy.address and vx.caller == vy.caller


def diff(
    a: VmallocSnapshot,
    b: VmallocSnapshot,
    *,
    kinds: Optional[Iterable[str]] = None,
    caller: Optional[str] = None,
    min_delta: int = 0,
) -> VmallocDiff:
    """
    Compare two snapshots.  ``kinds`` and ``caller`` (a glob on the caller's
    function name or full symbol) select areas; ``min_delta`` keeps only the
    callers whose bytes changed by at least that much either way (and the
    areas of those callers).
    """
    # Many acyclic containers: the cyclic GC would rescan them for nothing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _diff(a, b, kinds, caller, min_delta)
    finally:
        if gc_was_enabled:
            gc.enable()


def _diff(
    a: VmallocSnapshot,
    b: VmallocSnapshot,
    kinds: Optional[Iterable[str]],
    caller: Optional[str],
    min_delta: int,
) -> VmallocDiff:
    ks = sorted(set(kinds)) if kinds else None
    same, note = same_boot(a, b)
    filtered = ks is not None or caller is not None
    ua, ub = caller_totals(a.model), caller_totals(b.model)
    ta = caller_totals(a.model, ks, caller) if filtered else ua
    tb = caller_totals(b.model, ks, caller) if filtered else ub
    zero = [0, 0, 0]
    callers = []
    for key in ta.keys() | tb.keys():
        ca, cb = ta.get(key, zero), tb.get(key, zero)
        if ca == cb:
            continue
        c = CallerDelta(key[0], key[1], ca[0], cb[0], ca[1], cb[1], ca[2], cb[2])
        if min_delta and abs(c.bytes_delta) < min_delta:
            continue
        callers.append(c)
    callers.sort(key=growth_key)
    sums = [0] * 6
    for i, t in ((0, ta), (1, tb)):
        for v in t.values():
            sums[i] += v[0]
            sums[2 + i] += v[1]
            sums[4 + i] += v[2]
    res = VmallocDiff(SnapshotInfo.of(a, ua), SnapshotInfo.of(b, ub), same, note, callers=callers,
                      filters={"kinds": ks, "caller": caller, "min_delta": min_delta},
                      page_size=b.model.page_size, total=CallerDelta("*", "*", *sums))
    if not same:
        return res
    kept = {(c.caller, c.kind) for c in callers}

    def listed(k: Key) -> bool:
        # --min-delta hides the areas of the callers it hides; without it
        # every area change is listed, even one that leaves the totals equal.
        return not min_delta or k in kept
    ps = b.model.page_size
    names: Dict[Optional[str], str] = {}

    def key_of(x: Area) -> Key:
        if x.vm is None:
            return ("-", x.kind)
        sym = x.vm.caller_symbol
        n = names.get(sym)
        if n is None:
            n = names[sym] = caller_name(sym, x.vm.caller)
        return (n, x.kind)

    def selected(x: Area) -> bool:
        if ks is not None and x.kind not in ks:
            return False
        return caller is None or _caller_matches(caller, x)

    table_a, table_b = a.model.area_table(), b.model.area_table()
    if not filtered and table_a is not None and table_b is not None:
        # Both read from snapshot files: compare rows (equal rows are equal
        # areas) and build Area objects only for the ones that differ.
        ra = dict(zip(table_a.column("start"), table_a.rows()))
        rb = dict(zip(table_b.column("start"), table_b.rows()))
        area = row_area
        by_a, by_b = {}, {}
        for start, row in rb.items():
            other = ra.get(start)
            if other == row:
                res.unchanged += 1
            else:
                by_b[start] = area(row)
                if other is not None:
                    by_a[start] = area(other)
        for start in ra.keys() - rb.keys():
            by_a[start] = area(ra[start])
    elif filtered:
        by_a = {x.start: x for x in a.model.areas if selected(x)}
        by_b = {x.start: x for x in b.model.areas if selected(x)}
    else:
        by_a = {x.start: x for x in a.model.areas}
        by_b = {x.start: x for x in b.model.areas}
    for start, y in by_b.items():
        x = by_a.get(start)
        if x == y:  # the common case: the same area in both
            res.unchanged += 1
            continue
        if x is None:
            if listed(key_of(y)):
                res.new.append(y)
            continue
        if _same_allocation(x, y):
            changes = _fields_differ(x, y, ps)
            if not changes:
                res.unchanged += 1
            elif listed(key_of(x)) or listed(key_of(y)):
                res.changed.append(AreaChange(x, y, changes))
            continue
        if listed(key_of(x)):
            res.freed.append(x)
        if listed(key_of(y)):
            res.new.append(y)
    for start in by_a.keys() - by_b.keys():
        x = by_a[start]
        if listed(key_of(x)):
            res.freed.append(x)
    res.freed.sort(key=lambda z: z.start)
    res.new.sort(key=lambda z: z.start)
    res.changed.sort(key=lambda c: c.after.start)
    return res
