# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The area JSON, streamed
-----------------------

``vmalloc list --json``: a JSON array of :meth:`~kcoretool.model.area.Area.to_dict`
objects written as text chunks, one object per line, straight from packed
records (:mod:`kcoretool.model.packed`).  The writer is derived from the
area's declaration (:data:`~kcoretool.model.area.JSON_FIELDS`): each row is
a cached template, filled with the few fields that differ in nearly every
area (the declared ``per_row`` ones: addresses).
"""

from __future__ import annotations

import json
import operator
from itertools import islice
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from kcoretool.model.area import FIELDS, JSON_FIELDS, ROW_AT, Area, area_row, json_value
from kcoretool.model.packed import RECORD_FIELDS, PackedAreaTable, PackedRows

__all__ = ("iter_areas_json", "iter_rows_json")

_CACHE_MAX = 1 << 16
_AT = {name: i for i, name in enumerate(RECORD_FIELDS)}
# The per-row fields a template leaves as {2}, {3}, ... ({0} is the size,
# {1} the size in pages for an area without a vm_struct).
_PER_ROW = tuple(f for f in JSON_FIELDS if f is not None and f.col.per_row)
_DYNAMIC = operator.itemgetter(*(_AT[f.name] for f in _PER_ROW))
# What a template depends on: every other stored field in the JSON, the bits
# and the kind.
_KEY = operator.itemgetter(*sorted({_AT[f.name] for f in JSON_FIELDS
                                    if f is not None and not f.col.per_row and f.name in _AT}
                                   | {_AT["bits"], _AT["kind"]}))
# (in the order of the table's lookups: names, symbols)
_LOOKED_UP = tuple(_AT[f.col.lookup] for f in FIELDS if not f.col.code)


def iter_areas_json(areas: Iterable[Area], page_size: int = 4096, chunk: int = 4096,
                    owners: Optional[Dict[int, str]] = None) -> Iterator[str]:
    """
    A JSON array of :meth:`Area.to_dict` objects, streamed as text chunks,
    one object per line (``json.loads`` of the joined chunks equals
    ``[a.to_dict(page_size) for a in areas]``).  With ``owners`` (area
    start -> who owns an executable area,
    :meth:`kcoretool.model.exec.ExecModel.area_owners`) each row also has
    ``"owner"`` (null where none).  :func:`iter_rows_json` does the same
    from rows (:meth:`~kcoretool.model.vmalloc.VmallocModel.select_rows`).
    """
    return iter_rows_json(map(area_row, areas), page_size, chunk, owners)


def iter_rows_json(rows: Iterable[Tuple[Any, ...]], page_size: int = 4096, chunk: int = 4096,
                   owners: Optional[Dict[int, str]] = None) -> Iterator[str]:
    """:func:`iter_areas_json` of rows.  The rows of a
    :class:`~kcoretool.model.packed.PackedAreaTable` are written from its
    records, never built."""
    if isinstance(rows, PackedRows):
        table = rows.table
        return _iter_records_json(table.records(), table, page_size, chunk, owners, False)
    # other rows become records as they are written (record_of fills the
    # lookups before the writer looks them up); nothing is packed.  Two
    # rows of one caller may have two symbols (areas of two times).
    scratch = PackedAreaTable({}, {})
    return _iter_records_json(map(scratch.record_of, rows), scratch, page_size, chunk, owners, True)


def _template(row: Tuple[Any, ...], page_size: int) -> str:
    """A row's JSON text with its per-row fields as ``{n}`` (str.format)."""
    has_vm = row[_AT_VM] is not None
    parts = []
    for f in JSON_FIELDS:
        if f is None:
            text = "{0}"
            key = "size"
        else:
            key = f.json_key or ""
            if f.name == "nr_pages" and not has_vm:
                text = "{1}"
            else:
                v = json_value(f, row, page_size)
                if f.col.per_row and v is not None:
                    text = "{%d}" % (2 + _PER_ROW.index(f))
                else:
                    text = json.dumps(v).replace("{", "{{").replace("}", "}}")
        parts.append(json.dumps(key) + ":" + text)
    return "{{" + ",".join(parts) + "}}"


def _iter_records_json(records: Iterable[Tuple[Any, ...]], table: PackedAreaTable, page_size: int,
                       chunk: int, owners: Optional[Dict[int, str]], vary: bool) -> Iterator[str]:
    """The one writer of the area JSON.  A row is a cached template (one per
    distinct kind, flags, pages, caller, ...: few in practice; a cache that
    grows past _CACHE_MAX stops growing) filled with its addresses.  A dict
    and a ``json.dumps`` per row is 3x slower and needs the whole array in
    memory."""
    cache: Dict[Tuple[Any, ...], str] = {}
    lookups: List[Tuple[Any, int]] = list(zip((table.names.get, table.symbols.get), _LOOKED_UP))
    decode = table.decode_record
    first = True
    yield "["
    it = iter(records)
    start_at, end_at = _AT["start"], _AT["end"]
    while True:
        buf: List[str] = []
        append = buf.append
        for rec in islice(it, chunk):
            key = _KEY(rec)
            if vary:
                key += tuple(get(rec[at]) for get, at in lookups)
            t = cache.get(key)
            if t is None:
                t = _template(decode(rec), page_size)
                if len(cache) < _CACHE_MAX:
                    cache[key] = t
            size = rec[end_at] - rec[start_at]
            row = t.format(size, size // page_size, *_DYNAMIC(rec))
            if owners is not None:
                o = owners.get(rec[start_at])
                row = row[:-1] + ',"owner":' + ("null" if o is None else json.dumps(o)) + "}"
            append(row)
        if not buf:
            break
        # rows are "\n,"-separated, and a chunk after the first starts with ","
        yield ("" if first else ",") + "\n,".join(buf)
        first = False
    yield "]"


_AT_VM = ROW_AT[next(f.name for f in FIELDS if f.vm)]  # in a row: None exactly without a vm_struct
