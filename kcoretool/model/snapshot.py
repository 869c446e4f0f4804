# SPDX-License-Identifier: LGPL-2.1-or-later
"""
vmalloc snapshots
-----------------

A :class:`VmallocSnapshot` is one kernel's whole vmalloc model plus what
says *which* kernel and *when*: release, boot id, KASLR offset, the time.
It is saved as JSON (:meth:`VmallocSnapshot.save`, written atomically) and
read back into the same model objects (:func:`load_snapshot`).

The file format, version 2 (``"format": "kcoretool-vmalloc-snapshot"``)::

    {"format": "kcoretool-vmalloc-snapshot", "format_version": 2,
     "kcoretool_version": "0.1.0",
     "release": "6.12.117+deb12-amd64",       null when the kernel does not say
     "boot_id": "3b0c...-...", "boot_id_source": "...",   null + why when unknown
     "kaslr_offset": 297795584,                null when unknown
     "time": 1764642000, "time_iso": "2026-12-02T02:20:00Z", "time_source": "...",
     "source": {"path": "/proc/kcore", "kind": "kcore", "live": true},
     "page_size": 4096, "layout": {...Layout fields...},
     "vmalloc_start": ..., "vmalloc_end": ..., "modules_start": ..., "modules_end": ...,
     "numa": false, "lazy_nr": 14, "lazy_max_pages": 16384,
     "walk_order": null | [index, ...]   the kernel's walk order when it is not
                                 areas' order: indices into areas + lazy + pooled
     "areas":  AREAS,            busy areas by start address
     "lazy":   AREAS,            freed, not yet purged
     "pooled": AREAS,            6.9+: purged, kept for reuse
     "blocks": [BLOCK, ...],     as `vmalloc blocks --json`
     "holes":  null | [{"start", "end", "size"}, ...],
     "exec_owners": {"0xSTART": OWNER, ...}   each exec area's owner, as the
                                 OWNER column of `vmalloc list` (optional)
     "warnings": ["..."],
     "totals": {...}}            as `vmalloc stats --json` (derived; ignored on load)

AREAS is a table by columns, one line per column (a 100,000-area snapshot
is ~8 MiB instead of 44 and loads ~10 times faster than one object per
area)::

    {"count": N, "columns": {"start": COLUMN, "size": COLUMN, ...}}

with exactly these columns (the fields of :class:`Area` and
:class:`VmStruct`), each of N values: ``start``, ``size`` (end - start),
``kind``, ``lazy``, ``va_flags``, ``node``, ``flags_node_id``,
``vmap_block``, ``vmap_area``, and of the vm_struct (all null for an area
without one) ``vm_struct`` (its address), ``vm_addr``, ``vm_size``,
``vm_flags``, ``flag_names`` (a list of names), ``nr_pages``,
``page_order``, ``phys_addr`` (0 for none), ``caller``, ``caller_symbol``,
``requested_size``, ``pages_array``.  A COLUMN is one of

* SEQ: the values themselves;
* ``{"delta": SEQ}``: each value is the sum of the non-null numbers of SEQ
  up to it (a null stays null) -- addresses as small numbers;
* ``{"table": [v, ...], "index": SEQ}``: each value is ``table[i]`` for
  the i of SEQ (a null index is null) -- strings and lists written once;

and a SEQ is ``[v, ...]`` or, for values in long runs, ``{"runs": [[v,
n], ...]}``: v n times, run after run.

:func:`iter_area_dicts` turns a section back into the AREA dicts of
version 1, which is still read: there AREAS is a list of AREA, the area
schema ``vmalloc list --json`` prints (:meth:`Area.to_dict`: start, end,
size, kind, pages, caller, caller_symbol, flags, vm_flags, va_flags,
phys_addr, page_order, requested_size, lazy, node, flags_node_id,
vmap_area, vm_struct, vmap_block) plus ``vm_addr``, ``vm_size`` and
``pages_array`` (null without a vm_struct).  All numbers are JSON integers;
addresses are unsigned.  A reader accepts any ``format_version`` up to its
own and refuses newer ones.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import json
import operator
import os
import re
import stat
import time
from dataclasses import dataclass
from itertools import accumulate, compress, islice
from typing import IO, Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from kcoretool.errors import KcoreToolError
from kcoretool.model.area import FIELDS, Area, FreeHole, VmapBlock, area_row, row_area
from kcoretool.model.packed import AreaTable
from kcoretool.model.vmalloc import VmallocModel

__all__ = (
    "FORMAT",
    "FORMAT_VERSION",
    "VmallocSnapshot",
    "area_from_json",
    "area_to_json",
    "is_snapshot_file",
    "iter_area_dicts",
    "load_snapshot",
)

FORMAT = "kcoretool-vmalloc-snapshot"
FORMAT_VERSION = 2

#: Version 2's area columns, one per field of the area's row
#: (:data:`kcoretool.model.area.FIELDS`), each with how it is written;
#: ``end`` is kept as ``size`` (end - start).
COLUMNS: Tuple[Tuple[str, str], ...] = tuple(("size" if f.name == "end" else f.name, f.col.snapshot)
                                             for f in FIELDS)
_NO_VALUE = object()

# -- what a snapshot file may hold -------------------------------------------------

#: The largest snapshot file read (about 4 million areas); anything bigger
#: is refused before it is read.
MAX_FILE_BYTES = 256 << 20
#: The most rows the three area sections hold together, whatever the file's
#: size; a file also holds at most one row per byte of it (a column in runs
#: is short, but the vmap_area and vm_struct addresses never come in runs).
MAX_ROWS = 1 << 22
#: Page sizes a snapshot may give: powers of two in this range.
PAGE_SIZES = (4096, 1 << 20)
#: The longest string in a snapshot.
MAX_TEXT = 1 << 16
_U64 = 1 << 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NONE = type(None)


def _describe(v: Any) -> str:
    """A JSON value as a message names it (never the whole of a string)."""
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if type(v) is int:
        text = str(v) if -(1 << 80) < v < 1 << 80 else f"a {len(str(abs(v)))}-digit number"
        return text
    if type(v) is float:
        return f"{v!r} (not an integer)"
    if type(v) is str:
        return "a string"
    if type(v) in (list, tuple):
        return "a list"
    if type(v) is dict:
        return "an object"
    return type(v).__name__


def _only(values: Iterable[Any], types: Tuple[type, ...], what: str) -> None:
    """Every value is exactly of one of ``types`` (not a subclass: a bool
    is no integer)."""
    seen = set(map(type, values))
    if not seen.issubset(types):
        bad = next(v for v in values if type(v) not in types)
        raise TypeError(f"{what} is {_describe(bad)}")


def _text_ok(v: str, what: str) -> None:
    if len(v) > MAX_TEXT:
        raise ValueError(f"{what} is a string of {len(v)} characters (at most {MAX_TEXT})")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid UTF-8 (a lone surrogate)") from None
    if _CONTROL.search(v):
        raise ValueError(f"{what} holds a control character")


def _range_text(lo: int, hi: int) -> str:
    name = {_U64: "2^64", 1 << 32: "2^32", 1 << 63: "2^63"}
    hi_text = f"{name[hi]}-1" if hi in name else str(hi - 1)
    lo_text = "-2^63" if lo == -(1 << 63) else str(lo)
    return f"an integer from {lo_text} to {hi_text}"


def _int(v: Any, what: str, lo: int = 0, hi: int = _U64, null: str = "") -> int:
    if type(v) is not int or not lo <= v < hi:
        raise ValueError(f"{what} is {_describe(v)}, not {null}{_range_text(lo, hi)}")
    return int(v)


def _opt_int(v: Any, what: str, lo: int = 0, hi: int = _U64) -> Optional[int]:
    return None if v is None else _int(v, what, lo, hi, "null or ")


def _text(v: Any, what: str, null: str = "") -> str:
    if type(v) is not str:
        raise ValueError(f"{what} is {_describe(v)}, not {null}a string")
    _text_ok(v, what)
    return str(v)


def _opt_text(v: Any, what: str) -> Optional[str]:
    return None if v is None else _text(v, what, "null or ")


def _bool(v: Any, what: str) -> bool:
    if type(v) is not bool:
        raise ValueError(f"{what} is {_describe(v)}, not true or false")
    return bool(v)


def _list(v: Any, what: str, null: bool = False, limit: int = MAX_ROWS) -> Optional[List[Any]]:
    if v is None and null:
        return None
    if type(v) is not list:
        raise ValueError(f"{what} is {_describe(v)}, not {'null or ' if null else ''}a list")
    if len(v) > limit:
        raise ValueError(f"{what} has {len(v)} entries (at most {limit})")
    return list(v)


def _dict(v: Any, what: str) -> Dict[str, Any]:
    if type(v) is not dict:
        raise ValueError(f"{what} is {_describe(v)}, not an object")
    return dict(v)


def _int_column(col: Sequence[Any], name: str, lo: int = 0, hi: int = _U64, null: bool = False) -> None:
    _only(col, (int, _NONE) if null else (int,), name)
    vals = [v for v in col if v is not None] if null else col
    if vals and (min(vals) < lo or max(vals) >= hi):
        bad = next(v for v in vals if not lo <= v < hi)
        raise ValueError(f"{name} is {_describe(bad)}, not {_range_text(lo, hi)}")


def _text_column(col: Sequence[Any], name: str, null: bool = False) -> None:
    _only(col, (str, _NONE) if null else (str,), name)
    for v in set(col):
        if v is not None:
            _text_ok(v, name)


_BOUNDS = {"u64": (0, _U64), "u32": (0, 1 << 32), "u8": (0, 256), "order": (0, 64)}
_CHECK_OF_CODE = {"Q": "u64", "I": "u32", "B": "u8", "bit": "bool", "kind": "text"}


def _row_rules() -> Tuple[Tuple[str, str, bool], ...]:
    """How each area row field is checked, after start and end: (name in
    the file, kind, nullable); VmStruct fields are all null exactly when
    the first one (``vm_struct``) is."""
    out = []
    first_vm = True
    for f in FIELDS[2:]:
        out.append((f.name, f.col.check or _CHECK_OF_CODE[f.col.code], f.optional or (f.vm and first_vm)))
        first_vm = first_vm and not f.vm
    return tuple(out)


_ROW_RULES = _row_rules()
_VM_AT = next(i for i, f in enumerate(FIELDS) if f.vm)


def _check_rows(cols: List[List[Any]], busy: bool) -> None:
    """Every value of a section's columns (start, end, then
    :data:`_ROW_RULES`) of the right type and range; flag name lists made
    tuples; a busy section's areas in address order, none overlapping."""
    starts, ends = cols[0], cols[1]
    if not all(map(operator.lt, starts, ends)):
        i = next(i for i, (s, e) in enumerate(zip(starts, ends)) if not s < e)
        raise ValueError(f"area {i} ends ({_describe(ends[i])}) before it starts ({_describe(starts[i])})")
    if ends and max(ends) > _U64:
        i = next(i for i, e in enumerate(ends) if e > _U64)
        raise ValueError(f"area {i} at {starts[i]:#x} runs past the top of the 64-bit address space")
    if busy and not all(map(operator.le, ends, islice(starts, 1, None))):
        i = next(i for i in range(1, len(starts)) if starts[i] < ends[i - 1])
        what = ("the same start as the area before it" if starts[i] == starts[i - 1] else
                "an area before it overlaps it" if starts[i] > starts[i - 1] else "out of address order")
        raise ValueError(f"area {i} at {starts[i]:#x}: {what} ({starts[i - 1]:#x}-{ends[i - 1]:#x})")
    has_vm = [v is not None for v in cols[_VM_AT]]
    no_vm = [not v for v in has_vm]
    every_vm = all(has_vm)
    for j, (name, kind, null) in enumerate(_ROW_RULES, start=2):
        col = cols[j]
        if j > _VM_AT:  # a VmStruct field
            if not every_vm:
                if any(v is not None for v in compress(col, no_vm)):
                    raise ValueError(f"{name} has a value in an area without a vm_struct")
                col = list(compress(col, has_vm))
        if kind == "text":
            _text_column(col, name, null)
        elif kind == "bool":
            _only(col, (bool,), name)
        elif kind == "names":
            _only(col, (list, tuple), name)
            names = [tuple(v) if type(v) is list else v for v in cols[j]]
            cols[j] = names
            for t in {id(v): v for v in names if v is not None}.values():
                _text_column(t, "a flag name")
        else:
            lo, hi = _BOUNDS[kind]
            _int_column(col, name, lo, hi, null)
    addrs, sizes = list(compress(cols[_AT["vm_addr"]], has_vm)), list(compress(cols[_AT["vm_size"]], has_vm))
    if addrs and max(map(operator.add, addrs, sizes)) > _U64:
        raise ValueError("a vm_struct (vm_addr + vm_size) runs past the top of the 64-bit address space")


def _check_layout(d: Any) -> Any:
    d = _dict(d, "layout")
    for k, v in d.items():
        _text_ok(k, "a layout field's name")
        if k == "evidence":
            for e in _list(v, "layout evidence", limit=4096) or ():
                for f in ("feature", "value", "evidence", "commit"):
                    _text(_dict(e, "layout evidence")[f], f"layout evidence {f}")
        elif type(v) is str:
            _text_ok(v, f"layout {k}")
        elif v is not None and type(v) is not bool:
            _int(v, f"layout {k}")
    return d


def _check_block(d: Any) -> VmapBlock:
    d = _dict(d, "a block")
    start, end = _int(d["start"], "start"), _int(d["end"], "end")
    if start >= end:
        raise ValueError(f"a block ends ({end:#x}) before it starts ({start:#x})")
    used = _list(d["used"], "used", null=True, limit=1 << 16)
    pairs: Optional[Tuple[Tuple[int, int], ...]] = None
    if used is not None:
        out = []
        for u in used:
            u = _list(u, "a used range", limit=2)
            if u is None or len(u) != 2:
                raise ValueError("a used range is not [first, last]")
            a, b = _int(u[0], "a used range", hi=1 << 32), _int(u[1], "a used range", hi=1 << 32)
            out.append((a, b))
        pairs = tuple(out)
    small = {f: _int(d[f], f, hi=1 << 32) for f in ("free", "dirty", "dirty_min", "dirty_max", "bits")}
    notes = tuple(_text(n, "a note") for n in _list(d["notes"], "notes", limit=1 << 16) or ())
    return VmapBlock(
        start, end, _int(d["address"], "address"), _opt_int(d["cpu"], "cpu", hi=1 << 32),
        _opt_text(d["cpu_source"], "cpu_source"), small["free"], small["dirty"], small["dirty_min"],
        small["dirty_max"], small["bits"], pairs, _text(d["used_source"], "used_source"), notes,
    )


def _check_hole(d: Any) -> FreeHole:
    d = _dict(d, "a hole")
    start, end = _int(d["start"], "start"), _int(d["end"], "end", hi=_U64 + 1)
    if start >= end:
        raise ValueError(f"a hole ends ({end:#x}) before it starts ({start:#x})")
    return FreeHole(start, end)


def _check_owners(d: Any) -> Dict[int, str]:
    if d is None:
        return {}
    d = _dict(d, "exec_owners")
    if len(d) > MAX_ROWS:
        raise ValueError(f"exec_owners has {len(d)} entries")
    out = {}
    for k, v in d.items():
        if not re.fullmatch(r"0x[0-9a-f]{1,16}", k):
            raise ValueError("an exec_owners key is not an address (0x...)")
        out[int(k, 16)] = (_text(v, "an owner"))
    return out



def area_to_json(a: Area, page_size: int = 4096) -> Dict[str, Any]:
    """One area: the shared schema (:meth:`Area.to_dict`, the ``vmalloc list
    --json`` row) plus the fields not in it that a round trip needs (named
    as the row names them)."""
    d = a.to_dict(page_size)
    r = area_row(a)
    for i in _NOT_IN_JSON:
        d[FIELDS[i].name] = r[i]
    return d


_NOT_IN_JSON = tuple(i for i, f in enumerate(FIELDS) if f.json_key is None)


def area_from_json(d: Dict[str, Any]) -> Area:
    """The :class:`Area` of an :func:`area_to_json` dict."""
    r = [d[k] for k in _V1_FIELDS]
    if r[_VM_AT] is None:
        r[_VM_AT:] = [None] * (len(r) - _VM_AT)
    else:
        r[_AT["flag_names"]] = tuple(r[_AT["flag_names"]])
        r[_AT["phys_addr"]] = r[_AT["phys_addr"]] or 0
    return row_area(tuple(r))


def _seq(values: List[Any]) -> Any:
    """``values`` as a SEQ: ``{"runs": [[v, n], ...]}`` when they come in
    runs of 4 or more on average, else the list itself."""
    runs: List[List[Any]] = []
    limit = len(values) // 4
    prev: Any = _NO_VALUE
    for v in values:
        if v == prev and type(v) is type(prev):
            runs[-1][1] += 1
        else:
            if len(runs) >= limit:
                return values
            runs.append([v, 1])
            prev = v
    return {"runs": runs} if values else values


def _unseq(x: Any, n: int) -> List[Any]:
    """A SEQ of ``n`` values; the runs' counts are checked before anything
    is expanded."""
    if isinstance(x, list):
        if len(x) != n:
            raise ValueError(f"a column has {len(x)} values, not {n}")
        return x
    if not isinstance(x, dict) or set(x) != {"runs"} or not isinstance(x["runs"], list):
        raise TypeError("a sequence is neither a list nor {\"runs\": [...]}")
    runs = x["runs"]
    total = 0
    for run in runs:
        if type(run) is not list or len(run) != 2:
            raise TypeError(f"a run is {_describe(run)}, not [value, count]")
        count = run[1]
        if type(count) is not int or count < 0:
            raise ValueError(f"a run of {_describe(count)}")
        total += count
        if total > n:
            break
    if total != n:
        raise ValueError(f"a column has {'more than ' if total > n else ''}{total} values, not {n}")
    out: List[Any] = []
    for v, count in runs:
        out += [v] * count
    return out


def _encode_column(values: Sequence[Any], how: str) -> Any:
    if how == "delta":
        out: List[Optional[int]] = []
        append = out.append
        prev = 0
        for v in values:
            if v is None:
                append(None)
            else:
                append(v - prev)
                prev = v
        return {"delta": _seq(out)}
    if how == "table":
        table: List[Any] = []
        where: Dict[Any, int] = {}
        index: List[Optional[int]] = []
        for v in values:
            if v is None:
                index.append(None)
                continue
            i = where.get(v)
            if i is None:
                i = where[v] = len(table)
                table.append(list(v) if isinstance(v, tuple) else v)
            index.append(i)
        return {"table": table, "index": _seq(index)}
    return _seq(list(values))


def _decode_column(col: Any, n: int) -> List[Any]:
    if isinstance(col, list) or (isinstance(col, dict) and "runs" in col):
        out = _unseq(col, n)
    elif isinstance(col, dict) and "delta" in col:
        if set(col) != {"delta"}:
            raise TypeError("a delta column has other fields")
        d = _unseq(col["delta"], n)
        _only(d, (int, type(None)), "a delta")
        if None not in d:
            out = list(accumulate(d))
        else:
            sums = accumulate([0 if v is None else v for v in d])
            out = [None if v is None else t for v, t in zip(d, sums)]
    elif isinstance(col, dict):
        if set(col) != {"table", "index"}:
            raise TypeError("a column is neither a list nor {\"delta\": ...} nor {\"table\": ..., \"index\": ...}")
        table, index = col["table"], _unseq(col["index"], n)
        if not isinstance(table, list):
            raise TypeError("a table column's table is not a list")
        _only(index, (int, type(None)), "a table index")
        if index and max((i for i in index if i is not None), default=-1) >= len(table):
            raise ValueError("a table index past the table's end")
        table = [tuple(v) if isinstance(v, list) else v for v in table]
        if None not in index:
            if index and min(index) < 0:
                raise ValueError("negative table index")
            out = list(map(table.__getitem__, index))
        else:
            # a null index is -1: the None put at the table's end
            filled = [-1 if i is None else i for i in index]
            if min(filled) < -1 or filled.count(-1) != index.count(None):
                raise ValueError("negative table index")
            out = list(map((table + [None]).__getitem__, filled))
    else:
        raise TypeError(f"a column is a {type(col).__name__}")
    if len(out) != n:
        raise ValueError(f"a column has {len(out)} values, not {n}")
    return out


def _rows_ok(rows: Sequence[Tuple[Any, ...]], busy: bool) -> Optional[str]:
    """Why these area rows would not load back (:func:`_check_rows`), or None."""
    cols: List[List[Any]] = [list(c) for c in zip(*rows)] if rows else [[] for _ in COLUMNS]
    try:
        _int_column(cols[0], "start")
        _int_column(cols[1], "end", 1, _U64 + 1)
        _check_rows(cols, busy)
    except (TypeError, ValueError) as e:
        return str(e)
    return None


def _left_out(sections: Dict[str, List[Tuple[Any, ...]]]) -> List[str]:
    """Drop the area rows a snapshot cannot hold (a damaged dump's bad
    ranges, overlaps, values out of range); a warning for each."""
    notes: List[str] = []
    for name, rows in sections.items():
        busy = name == "areas"
        if _rows_ok(rows, busy) is None:
            continue  # all well, found without a step per area
        kept: List[Tuple[Any, ...]] = []
        for r in rows:
            why = _rows_ok([r], False) or (_rows_ok([kept[-1], r], True) if busy and kept else None)
            if why is None:
                kept.append(r)
            else:
                va = r[_AT["vmap_area"]]
                notes.append(f"snapshot: {name}: vmap_area {va:#x} ({r[0]:#x}-{r[1]:#x}) left out: {why}"
                             if type(va) is int and type(r[0]) is int and type(r[1]) is int
                             else f"snapshot: {name}: an area left out: {why}")
        sections[name] = kept
    return notes


def _drop_bad(items: List[Dict[str, Any]], check: Any, what: str) -> List[str]:
    notes = []
    for d in list(items):
        try:
            check(d)
        except (TypeError, ValueError, KeyError) as e:
            items.remove(d)
            notes.append(f"snapshot: a {what} left out: {e}")
    return notes


def _write_areas(f: IO[str], rows: Sequence[Tuple[Any, ...]], dumps: Any) -> None:
    cols: List[Sequence[Any]] = list(zip(*rows)) if rows else [()] * len(COLUMNS)
    cols[1] = [e - s for s, e in zip(cols[0], cols[1])]
    f.write('{"count":%d,"columns":{' % len(rows))
    f.write(",".join(
        f"\n{json.dumps(name)}:{dumps(_encode_column(col, how))}" for (name, how), col in zip(COLUMNS, cols)))
    f.write("\n}}")


def _read_table(d: Any, max_rows: int = MAX_ROWS, busy: bool = False) -> AreaTable:
    """A version-2 AREAS section, every value checked (:func:`_check_rows`);
    its count is checked against ``max_rows`` before a column is expanded."""
    d = _dict(d, "the section")
    n = d["count"]
    if type(n) is not int or n < 0:
        raise ValueError(f"count is {_describe(n)}, not a number of areas")
    if n > max_rows:
        raise ValueError(f"count {n} is more areas than the file can hold (at most {max_rows})")
    columns = _dict(d["columns"], "columns")
    cols = []
    for name, _how in COLUMNS:
        col = columns[name]
        try:
            cols.append(_decode_column(col, n))
        except (TypeError, ValueError) as e:
            raise type(e)(f"{name}: {e}") from None
    _int_column(cols[0], "start")
    _int_column(cols[1], "size", 1, _U64)
    cols[1] = list(map(operator.add, cols[0], cols[1]))
    _check_rows(cols, busy)
    return AreaTable(cols)


#: Version 1's AREA fields, in row order: the area JSON's keys, and the
#: field names of what is not in it.
_V1_FIELDS = tuple(f.json_key or f.name for f in FIELDS)
_AT = {f.name: i for i, f in enumerate(FIELDS)}


def _read_v1(section: Any, max_rows: int, busy: bool = False) -> List[Area]:
    """A version-1 AREAS list, checked as version 2's columns are."""
    rows = _list(section, "the section", limit=max_rows) or []
    get = operator.itemgetter(*_V1_FIELDS)
    cols = [list(c) for c in zip(*(get(_dict(r, "an area")) for r in rows))] or [[] for _ in _V1_FIELDS]
    phys, vms = _AT["phys_addr"], cols[_VM_AT]
    cols[phys] = [0 if v is None and vm is not None else v for v, vm in zip(cols[phys], vms)]  # phys or 0
    if None in vms:
        # an area without a vm_struct has "pages" (its size in pages) and
        # "flags" ([]) all the same, and nulls for the rest
        no_vm = [vm is None for vm in vms]
        for j in range(_VM_AT + 1, len(cols)):
            vals = list(compress(cols[j], no_vm))
            if j == _AT["flag_names"]:
                if any(v != [] or type(v) is not list for v in vals):
                    raise ValueError("flags is not [] in an area without a vm_struct")
            elif j == _AT["nr_pages"]:
                _int_column(vals, "pages")
            elif any(v is not None for v in vals):
                raise ValueError(f"{_V1_FIELDS[j]} has a value in an area without a vm_struct")
            cols[j] = [None if vm is None else v for v, vm in zip(cols[j], vms)]
    _int_column(cols[0], "start")
    _int_column(cols[1], "end", 1, _U64 + 1)
    _check_rows(cols, busy)
    return AreaTable(cols).areas()


def iter_area_dicts(section: Any, page_size: int = 4096,
                    owners: Optional[Dict[str, str]] = None) -> Iterator[Dict[str, Any]]:
    """The AREA dicts (:func:`area_to_json`) of one ``areas``, ``lazy`` or
    ``pooled`` section of a parsed snapshot file, version 1 or 2; with the
    file's ``exec_owners``, each exec area gets its ``owner`` as in
    ``vmalloc list --json``."""
    if isinstance(section, list):
        rows: Iterator[Dict[str, Any]] = iter(section)
    else:
        rows = (area_to_json(row_area(r), page_size) for r in _read_table(section).rows())
    for d in rows:
        yield {**d, "owner": owners.get(f"{d['start']:#x}")} if owners else d


def _block_from_json(d: Dict[str, Any]) -> VmapBlock:
    used = d["used"]
    return VmapBlock(
        d["start"], d["end"], d["address"], d["cpu"], d["cpu_source"], d["free"], d["dirty"],
        d["dirty_min"], d["dirty_max"], d["bits"],
        tuple((int(a), int(b)) for a, b in used) if used is not None else None,
        d["used_source"], tuple(d["notes"]),
    )


def _layout_from_json(d: Any) -> Any:
    """The :class:`~kcoretool.kernel.layout.Layout` back (the label, the
    evidence and every decided field)."""
    from kcoretool.kernel.layout import Layout

    if not isinstance(d, dict):
        return d
    fields = {f.name for f in dataclasses.fields(Layout)}
    kw = {k: v for k, v in d.items() if k in fields and k != "evidence"}
    ev = tuple((e["feature"], e["value"], e["evidence"], e["commit"]) for e in d.get("evidence", ()))
    try:
        return Layout(**kw, evidence=ev)
    except TypeError:  # a field this version does not know of: keep the dict
        return d


@dataclass
class VmallocSnapshot:
    """A vmalloc model with the facts that place it in time."""

    model: VmallocModel
    release: Optional[str]
    #: /proc/sys/kernel/random/boot_id of that boot, or None (see boot_id_source)
    boot_id: Optional[str]
    boot_id_source: str
    kaslr_offset: Optional[int]
    #: seconds since the epoch: the clock at the snapshot (live), the crash
    #: time, or the kernel's own clock in the dump; None if unknown
    time: Optional[int]
    time_source: str
    #: the core (or snapshot file) it was taken from
    source_path: Optional[str]
    #: "kcore", "elf-vmcore", "kdump", ... or None
    source_kind: Optional[str]
    live: bool
    #: the file it was loaded from (not saved in it)
    file: Optional[str] = dataclasses.field(default=None, compare=False)
    #: who owns each exec area, by its start (``vmalloc list``'s OWNER
    #: column: the module, ``bpf_prog_pack: N progs``, ...); saved as
    #: ``"exec_owners": {"START": OWNER}`` (absent before kcoretool 0.1.0's
    #: exec support: then empty)
    owners: Dict[int, str] = dataclasses.field(default_factory=dict)

    @property
    def time_iso(self) -> Optional[str]:
        if self.time is None:
            return None
        try:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time))
        except (OverflowError, ValueError, OSError):
            return None  # no calendar holds it; "time" has the number

    # -- JSON ------------------------------------------------------------------

    def header(self) -> Dict[str, Any]:
        """Everything but the model: which kernel, which boot, when."""
        from kcoretool import __version__

        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kcoretool_version": __version__,
            "release": self.release,
            "boot_id": self.boot_id,
            "boot_id_source": self.boot_id_source,
            "kaslr_offset": self.kaslr_offset,
            "time": self.time,
            "time_iso": self.time_iso,
            "time_source": self.time_source,
            "source": {"path": self.source_path, "kind": self.source_kind, "live": self.live},
        }

    def _model_fields(self) -> Dict[str, Any]:
        m = self.model
        layout = m.layout.to_dict() if hasattr(m.layout, "to_dict") else m.layout
        order = m.walk_index()
        return {
            "page_size": m.page_size,
            "layout": layout,
            "vmalloc_start": m.vmalloc_start,
            "vmalloc_end": m.vmalloc_end,
            "modules_start": m.modules_start,
            "modules_end": m.modules_end,
            "numa": m.numa,
            "lazy_nr": m.lazy_nr,
            "lazy_max_pages": m.lazy_max_pages,
            "walk_order": order,
        }

    def write(self, f: IO[str]) -> None:
        """The JSON text (format version 2), one column of areas per line."""
        m = self.model
        ps = m.page_size
        head = {**self.header(), **self._model_fields()}
        dumps = json.JSONEncoder(separators=(",", ":")).encode
        sections = {"areas": list(m.rows()), "lazy": [area_row(a) for a in m.lazy],
                    "pooled": [area_row(a) for a in m.pooled]}
        # What a damaged dump gave that a snapshot cannot hold is left out, and said.
        left_out = _left_out(sections)
        blocks = [b.to_dict(ps) for b in m.blocks]
        holes = None if m.holes is None else [h.to_dict() for h in m.holes]
        left_out += _drop_bad(blocks, _check_block, "block")
        if holes is not None:
            left_out += _drop_bad(holes, _check_hole, "hole")
        if left_out:
            head["walk_order"] = None
        f.write("{\n")
        for k, v in head.items():
            f.write(f"{json.dumps(k)}:{dumps(v)},\n")
        for name, section in sections.items():
            f.write(f'"{name}":')
            _write_areas(f, section, dumps)
            f.write(",\n")
        f.write('"blocks":[' + ",".join("\n" + dumps(b) for b in blocks) + "\n],\n")
        f.write('"holes":' + dumps(holes) + ",\n")
        f.write('"exec_owners":' + dumps({f"{k:#x}": v for k, v in sorted(self.owners.items())}) + ",\n")
        f.write('"warnings":' + dumps(list(m.warnings) + left_out) + ",\n")
        f.write('"totals":' + dumps(m.stats()) + "\n}\n")

    def save(self, path: str) -> None:
        """Write the snapshot to ``path`` atomically: a temporary file in the
        same directory, flushed to disk, then renamed over ``path`` (with
        the mode and owner of the file it replaces; a new one is 0600); a
        device or FIFO is written in place, never replaced."""
        from kcoretool._outfile import OutputFile

        with OutputFile(path) as raw:
            f = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
            try:
                self.write(f)
                f.flush()
            finally:
                f.detach()
            if stat.S_ISREG(os.fstat(raw.fileno()).st_mode):
                os.fsync(raw.fileno())

    @classmethod
    def from_dict(cls, d: Dict[str, Any], path: Optional[str] = None, max_rows: int = MAX_ROWS) -> VmallocSnapshot:
        """The snapshot a parsed file holds, every field checked (types,
        ranges, areas in order and not overlapping) before anything is
        built; ``max_rows`` bounds the areas of the three sections together
        before a column is expanded."""
        where = path or "snapshot"
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise KcoreToolError(f"{where}: not a kcoretool vmalloc snapshot (no \"format\": \"{FORMAT}\")")
        ver = d.get("format_version")
        if type(ver) is not int or ver < 1 or ver > FORMAT_VERSION:
            raise KcoreToolError(f"{where}: snapshot format version {_describe(ver)}; this kcoretool reads "
                                 f"1 to {FORMAT_VERSION} (upgrade kcoretool)")
        max_rows = min(max_rows, MAX_ROWS)
        section = "header"
        try:
            areas: Optional[List[Area]] = None
            table: Optional[AreaTable] = None
            if ver == 1:
                section = "areas"
                areas = _read_v1(d["areas"], max_rows, busy=True)
                section = "lazy"
                lazy = _read_v1(d["lazy"], max_rows - len(areas))
                section = "pooled"
                pooled = _read_v1(d["pooled"], max_rows - len(areas) - len(lazy))
                nr = len(areas)
            else:
                section = "areas"
                table = _read_table(d["areas"], max_rows, busy=True)
                section = "lazy"
                lazy = _read_table(d["lazy"], max_rows - len(table)).areas()
                section = "pooled"
                pooled = _read_table(d["pooled"], max_rows - len(table) - len(lazy)).areas()
                nr = len(table)
            section = "walk_order"
            total = nr + len(lazy) + len(pooled)
            order = _list(d.get("walk_order"), "walk_order", null=True, limit=total)
            if order is not None:
                _int_column(order, "an index", 0, max(total, 1))
                if len(set(order)) != len(order):
                    raise ValueError("an area appears twice")
            section = "blocks"
            blocks = [_check_block(x) for x in _list(d["blocks"], "blocks") or ()]
            section = "holes"
            holes = _list(d["holes"], "holes", null=True)
            holes = None if holes is None else [_check_hole(h) for h in holes]
            section = "header"
            ps = _int(d["page_size"], "page_size")
            if ps & (ps - 1) or not PAGE_SIZES[0] <= ps <= PAGE_SIZES[1]:
                raise ValueError(f"page_size {ps} is not a page size (a power of two from {PAGE_SIZES[0]} "
                                 f"to {PAGE_SIZES[1]})")
            release = _opt_text(d["release"], "release")
            src = _dict(d["source"], "source")
            warnings = [(_text(w, "a warning")) for w in _list(d["warnings"], "warnings", limit=1 << 20) or ()]
            model = VmallocModel(
                layout=_layout_from_json(_check_layout(d["layout"])), release=release, page_size=ps,
                vmalloc_start=_int(d["vmalloc_start"], "vmalloc_start"),
                vmalloc_end=_int(d["vmalloc_end"], "vmalloc_end", hi=_U64 + 1),
                modules_start=_int(d["modules_start"], "modules_start"),
                modules_end=_int(d["modules_end"], "modules_end", hi=_U64 + 1),
                areas=areas, walk_order=None, lazy=lazy,
                pooled=pooled, blocks=blocks, holes=holes, lazy_nr=_opt_int(d["lazy_nr"], "lazy_nr"),
                lazy_max_pages=_opt_int(d["lazy_max_pages"], "lazy_max_pages"), warnings=warnings,
                numa=_bool(d["numa"], "numa"), area_table=table, walk_index=order,
            )
            snap = cls(
                model=model, release=release, boot_id=_opt_text(d["boot_id"], "boot_id"),
                boot_id_source=(_text(d["boot_id_source"], "boot_id_source")),
                kaslr_offset=_opt_int(d["kaslr_offset"], "kaslr_offset"),
                time=_opt_int(d["time"], "time", -(1 << 63), 1 << 63),
                time_source=(_text(d["time_source"], "time_source")),
                source_path=_opt_text(src["path"], "source path"),
                source_kind=_opt_text(src["kind"], "source kind"),
                live=_bool(src["live"], "source live"),
            )
            section = "exec_owners"
            snap.owners = _check_owners(d.get("exec_owners"))
            return snap
        except KeyError as e:
            raise KcoreToolError(f"{where}: damaged snapshot: no field {_field_name(e.args[0])} in {section}"
                                 ) from None
        except (TypeError, ValueError, IndexError, AttributeError) as e:
            raise KcoreToolError(f"{where}: damaged snapshot: bad value in {section} ({e})") from None

    def to_dict(self) -> Dict[str, Any]:
        import io

        buf = io.StringIO()
        self.write(buf)
        return json.loads(buf.getvalue())

    def __repr__(self) -> str:
        return (f"<VmallocSnapshot {self.release} boot {self.boot_id or '?'} at {self.time_iso or '?'}"
                f" areas={self.model.nr_areas}>")


def _field_name(key: Any) -> str:
    """A missing field's name as a message gives it (a hostile key is
    any JSON value)."""
    if type(key) is str and len(key) <= 64:
        try:
            _text_ok(key, "a field name")
            return repr(key)
        except ValueError:
            pass
    return "(an odd name)"


def is_snapshot_file(path: str) -> bool:
    """Whether ``path`` is meant as a snapshot rather than a core (ELF,
    kdump): named ``*.json``, or a regular file of JSON text (a ``{``
    first).  Never blocks: a FIFO or device is no snapshot file."""
    if path.endswith(".json"):
        return True
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        head = os.read(fd, 64)
    except OSError:
        return False
    finally:
        os.close(fd)
    return head.lstrip()[:1] == b"{"


def _read_file(path: str) -> bytes:
    """The bytes of a snapshot file, checked to be a regular file of at
    most :data:`MAX_FILE_BYTES` before anything is read (a FIFO, a device
    or a link to one is refused at once, never waited on or read forever)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise KcoreToolError(f"cannot read snapshot {path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            from kcoretool._outfile import file_type

            raise KcoreToolError(f"{path}: not a regular file ({file_type(st.st_mode)}); give a snapshot file "
                                 "written by `vmalloc snapshot`")
        if st.st_size > MAX_FILE_BYTES:
            raise KcoreToolError(f"{path}: {st.st_size} bytes is too big for a snapshot file (at most "
                                 f"{MAX_FILE_BYTES >> 20} MiB, about {MAX_ROWS // 1000000} million areas)")
        chunks = []
        left = MAX_FILE_BYTES + 1
        while left > 0:
            b = os.read(fd, min(left, 1 << 24))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        if left <= 0:
            raise KcoreToolError(f"{path}: grew past {MAX_FILE_BYTES >> 20} MiB while being read; too big for "
                                 "a snapshot file")
        return b"".join(chunks)
    except OSError as e:
        raise KcoreToolError(f"cannot read snapshot {path}: {e.strerror or e}") from None
    finally:
        os.close(fd)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_snapshot(path: str) -> VmallocSnapshot:
    """Read a snapshot file written by :meth:`VmallocSnapshot.save`: a
    regular file of at most :data:`MAX_FILE_BYTES`, UTF-8 JSON, every field
    checked (:meth:`VmallocSnapshot.from_dict`); at most one area per byte
    of the file."""
    data = _read_file(path)
    size = len(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise KcoreToolError(f"{path}: not a kcoretool vmalloc snapshot (not UTF-8 text: byte "
                             f"{data[e.start]:#04x} at offset {e.start})") from None
    del data
    # Hundreds of thousands of acyclic containers: the cyclic GC would
    # rescan them over and over for nothing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            d = json.loads(text, parse_constant=_no_constant)
        except RecursionError:
            raise KcoreToolError(f"{path}: damaged snapshot: JSON nested too deep (no snapshot nests more "
                                 "than a few levels)") from None
        except ValueError as e:
            raise KcoreToolError(f"{path}: not a kcoretool vmalloc snapshot (not JSON: {e})") from None
        del text
        snap = VmallocSnapshot.from_dict(d, path, max_rows=size)
    except MemoryError:
        raise KcoreToolError(f"{path}: out of memory loading a {size}-byte snapshot; more memory, or a smaller "
                             "snapshot") from None
    finally:
        if gc_was_enabled:
            gc.enable()
    snap.file = path
    return snap
