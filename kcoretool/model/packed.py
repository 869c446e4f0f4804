# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Areas as rows
-------------

:class:`AreaTable` holds areas as flat rows (:data:`~kcoretool.model.area.AREA_ROW_FIELDS`)
rather than objects; :class:`PackedAreaTable` keeps each row as one
fixed-size binary record (:data:`AREA_RECORD`).  The record is derived from
the declarations in :mod:`kcoretool.model.area`: every stored field in row
order with its declared :mod:`struct` code, then the presence bits (one per
field that may be None, one per bool).  Positions in a record are looked up
by name (:data:`RECORD_FIELDS`, :func:`record_struct`), never counted by hand.
"""

from __future__ import annotations

import operator
import struct
import sys
from array import array
from collections import Counter
from itertools import islice, starmap
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from kcoretool.model.area import AREA_ROW_FIELDS, FIELDS, KINDS, ROW_AT, Area, row_area

__all__ = (
    "AREA_RECORD",
    "BIT",
    "KIND_CODE",
    "RECORD_FIELDS",
    "AreaTable",
    "PackedAreaTable",
    "PackedRows",
    "record_struct",
    "summary_counts",
)

#: The row fields a packed record stores, in record order, then "bits".
_STORED = tuple(f for f in FIELDS if f.col.code not in ("", "bit"))
RECORD_FIELDS = tuple(f.name for f in _STORED) + ("bits",)
_RECORD_AT = {name: i for i, name in enumerate(RECORD_FIELDS)}


def _bits() -> Dict[str, int]:
    """The presence bit of each field that may be None (the first VmStruct
    field's bit: the area has a vm_struct), and the bit of each bool."""
    named = []
    first_vm = True
    for f in FIELDS:
        if f.col.code == "bit" or (f.col.code and f.optional) or (f.vm and first_vm):
            named.append(f.name)
        if f.vm:
            first_vm = False
    return {name: 1 << i for i, name in enumerate(named)}


#: ``{field name: its bit in a record's "bits"}``
BIT = _bits()
_VM_FIELD = next(f.name for f in FIELDS if f.vm)
HAS_VM = BIT[_VM_FIELD]
_BITS_CODE = "B" if len(BIT) <= 8 else "H" if len(BIT) <= 16 else "Q"
_CODES = tuple("B" if f.col.code == "kind" else f.col.code for f in _STORED) + (_BITS_CODE,)
#: One area's record: the stored fields (:data:`RECORD_FIELDS`), packed.
#: Every number the raw readers give fits: they decode unsigned.
AREA_RECORD = struct.Struct("<" + "".join(_CODES))
#: A record's kind: its index in :data:`KINDS`.
KIND_CODE = {k: i for i, k in enumerate(KINDS)}


def _offset(name: str) -> int:
    """Byte offset of a field in a record."""
    return struct.calcsize("<" + "".join(_CODES[:_RECORD_AT[name]]))


def record_struct(*names: str) -> struct.Struct:
    """A Struct that reads only these fields (given in record order) of a
    record, skipping the rest: summaries without decoding every field."""
    at = [_RECORD_AT[n] for n in names]
    if at != sorted(at):
        raise ValueError(f"{names}: not in record order {RECORD_FIELDS}")
    fmt = "<"
    pos = 0
    for i in at:
        off = _offset(RECORD_FIELDS[i])
        if off > pos:
            fmt += f"{off - pos}x"
        fmt += _CODES[i]
        pos = off + struct.calcsize("<" + _CODES[i])
    if AREA_RECORD.size > pos:
        fmt += f"{AREA_RECORD.size - pos}x"
    return struct.Struct(fmt)


_SUMMARY = record_struct("start", "end", "kind", "nr_pages", "caller", "bits")
_NODE = record_struct("node")
_BITS_AT = _offset("bits")
_KIND_AT = _offset("kind")
_U64_AT = {n: _offset(n) for n in ("start", "end", "vmap_area")}
# Extras after a record when it is decoded: None (a field this record does
# not have), then each bool (from its bit), the kind's name, then each
# looked-up field.
_BOOLS = tuple(f.name for f in FIELDS if f.col.code == "bit")
_LOOKUPS = tuple(f for f in FIELDS if not f.col.code)
_NONE_AT = len(RECORD_FIELDS)
_KIND_NAME_AT = _NONE_AT + 1 + len(_BOOLS)


def _row_getter(bits: int) -> Any:
    """The itemgetter that turns (record + extras) into a row, for records
    with these ``bits``."""
    at = []
    for f in FIELDS:
        if f.vm and not bits & HAS_VM:
            at.append(_NONE_AT)
        elif f.col.code == "bit":
            at.append(_NONE_AT + 1 + _BOOLS.index(f.name))
        elif f.col.code == "kind":
            at.append(_KIND_NAME_AT)
        elif not f.col.code:
            at.append(_KIND_NAME_AT + 1 + _LOOKUPS.index(f))
        elif f.name in BIT and f.name != _VM_FIELD and not bits & BIT[f.name]:
            at.append(_NONE_AT)
        else:
            at.append(_RECORD_AT[f.name])
    return operator.itemgetter(*at)


def summary_counts(rows: Iterable[Tuple[Any, ...]]) -> Dict[Tuple[Any, ...], int]:
    """``{(kind, caller, symbol, nr_pages, size): rows}`` in the order each
    first appears (caller, symbol and nr_pages None without a vm_struct)."""
    kind, vm, caller, sym, nr = (ROW_AT[n] for n in ("kind", _VM_FIELD, "caller", "caller_symbol", "nr_pages"))
    return dict(Counter((r[kind], r[caller], r[sym], r[nr], r[1] - r[0]) if r[vm] is not None
                        else (r[kind], None, None, None, r[1] - r[0]) for r in rows))


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
        """:param columns: one sequence per field of :data:`~kcoretool.model.area.AREA_ROW_FIELDS`,
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
        return summary_counts(self.rows())

    def areas(self) -> List[Area]:
        return list(map(row_area, self.rows()))


class PackedAreaTable(AreaTable):
    """
    An :class:`AreaTable` kept as one fixed-size binary record per area
    (:data:`AREA_RECORD`, 127 bytes, against about 420 for an :class:`Area`
    and its VmStruct, their numbers and list slots), with each looked-up
    field (the flag names per vm flags value, the caller symbol per caller)
    kept once per value.
    What :func:`kcoretool.model.from_program` builds: a million areas take
    121 MiB until something asks for their objects.  Records are kept in
    the order they were added (the kernel's walk order); :meth:`sort`
    orders the rows by start through an index, without moving records.
    """

    __slots__ = ("_buf", "_lookups", "_walk", "_walked", "_by_node", "_shapes", "index")

    def __init__(self, names: Dict[int, Tuple[str, ...]], symbols: Dict[int, Optional[str]]) -> None:
        """:param names: the flag names of each vm flags value the records use.
        :param symbols: the symbol of each caller the records use."""
        self._buf = bytearray()
        self._n = 0
        # one {key: value} per looked-up field, in _LOOKUPS order
        self._lookups: Tuple[Dict[Any, Any], ...] = (names, symbols)
        assert [f.name for f in _LOOKUPS] == ["flag_names", "caller_symbol"]
        #: the record each row was added as, after :meth:`sort` (None: the same)
        self._walk: Optional[Sequence[int]] = None
        self._walked = 0
        self._by_node = False
        #: (starts, ends) columns once the builder has them (the model's
        #: lookup index; None: made on first use)
        self.index: Optional[Tuple[Sequence[int], Sequence[int]]] = None
        # (bits, kind) -> (row getter, (None, bools, kind name))
        self._shapes: Dict[Tuple[int, int], Tuple[Any, Tuple[Any, ...]]] = {}

    @property
    def names(self) -> Dict[int, Tuple[str, ...]]:
        """The flag names of each vm flags value."""
        return self._lookups[0]

    @property
    def symbols(self) -> Dict[int, Optional[str]]:
        """The symbol of each caller."""
        return self._lookups[1]

    def record_of(self, r: Tuple[Any, ...]) -> Tuple[Any, ...]:
        """The record of one row (:data:`~kcoretool.model.area.AREA_ROW_FIELDS`);
        its looked-up fields go into the table's lookups."""
        has_vm = r[_ROW_VM] is not None
        bits = HAS_VM if has_vm else 0
        for at, bit, is_bool in _ROW_BITS:
            v = r[at]
            if v if is_bool else v is not None:
                bits |= bit
        if has_vm:
            for f, lookup in zip(_LOOKUPS, self._lookups):
                lookup[r[ROW_AT[f.col.lookup]]] = r[ROW_AT[f.name]]
        out: List[Any] = []
        for f in _STORED:
            v = r[ROW_AT[f.name]]
            if f.col.code == "kind":
                # a kind kcoretool does not make (a hand-built Area) stays a
                # string: the JSON writer takes it, extend() would not
                v = KIND_CODE.get(v, v)
            elif v is None or (f.vm and not has_vm):
                v = 0
            out.append(v)
        out.append(bits)
        return tuple(out)

    def records(self) -> Iterator[Tuple[Any, ...]]:
        """The records (:data:`AREA_RECORD` fields), in row order."""
        return AREA_RECORD.iter_unpack(self._buf)

    def extend(self, records: Iterable[Tuple[Any, ...]]) -> None:
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
        assert _BITS_CODE == "B"
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
        starts = self._u64_column(_U64_AT["start"])
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
            nodes = [t[0] for t in _NODE.iter_unpack(self._buf)]
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
        if field in _U64_AT:
            return self._u64_column(_U64_AT[field])
        i = ROW_AT[field]
        return [r[i] for r in self.rows()]

    def low_bits_clear(self, mask: int) -> bool:
        """Whether every start and end has none of ``mask``'s bits (below
        2**16: a page-size mask), by strided byte slices."""
        size = AREA_RECORD.size
        for k in range(2):
            m = mask >> 8 * k & 0xFF
            if m:
                hit = bytes(1 if b & m else 0 for b in range(256))
                for at in (_U64_AT["start"], _U64_AT["end"]):
                    if 1 in self._buf[at + k::size].translate(hit):
                        return False
        return mask < 1 << 16

    def has_kind(self, kind: str) -> bool:
        code = KIND_CODE.get(kind)
        # the kind byte of every record, by a strided slice
        return code is not None and code in self._buf[_KIND_AT::AREA_RECORD.size]

    def summary_counts(self) -> Dict[Tuple[Any, ...], int]:
        counts: Dict[Tuple[Any, ...], int] = Counter(
            (kind, bits & HAS_VM, caller, nr, end - start)
            for start, end, kind, nr, caller, bits in _SUMMARY.iter_unpack(self._buf))
        symbols = self.symbols
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

    def decode_record(self, record: Tuple[Any, ...]) -> Tuple[Any, ...]:
        """The row of one record (:data:`AREA_RECORD` fields)."""
        return next(self._decode([record]))

    def rows(self) -> Iterator[Tuple[Any, ...]]:
        return PackedRows(self)

    def _shape(self, key: Tuple[int, int]) -> Tuple[Any, Tuple[Any, ...]]:
        bits, kind = key
        bools = tuple(bool(bits & BIT[name]) for name in _BOOLS)
        # (a kind kcoretool does not make, in rows written as JSON, stays a string)
        name = KINDS[kind] if type(kind) is int else kind
        shape = self._shapes[key] = (_row_getter(bits), (None,) + bools + (name,))
        return shape

    def _decode(self, records: Iterable[Tuple[Any, ...]]) -> Iterator[Tuple[Any, ...]]:
        shapes = self._shapes
        gets = [(lookup.get, _RECORD_AT[f.col.lookup]) for f, lookup in zip(_LOOKUPS, self._lookups)]
        (names, names_at), (symbols, symbols_at) = gets
        bits_at, kind_at = _RECORD_AT["bits"], _RECORD_AT["kind"]
        for raw in records:
            key = (raw[bits_at], raw[kind_at])
            shape = shapes.get(key)
            if shape is None:
                shape = self._shape(key)
            yield shape[0](raw + shape[1] + (names(raw[names_at]), symbols(raw[symbols_at])))


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


_ROW_VM = ROW_AT[_VM_FIELD]
# (row index, bit, whether a bool) of each bit but the vm_struct's
_ROW_BITS = tuple((ROW_AT[name], bit, name in _BOOLS) for name, bit in BIT.items() if name != _VM_FIELD)
