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
import json
import operator
import os
import time
from dataclasses import dataclass
from itertools import accumulate
from typing import IO, Any, Dict, Iterator, List, Optional, Sequence, Tuple

from kcoretool.errors import KcoreToolError
from kcoretool.model.vmalloc import Area, AreaTable, FreeHole, VmallocModel, VmapBlock, VmStruct, area_row

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

#: Version 2's area columns, in :data:`kcoretool.model.vmalloc.AREA_ROW_FIELDS`
#: order (``size`` stands for ``end``), each with how it is written.
COLUMNS: Tuple[Tuple[str, str], ...] = (
    ("start", "delta"), ("size", "plain"), ("kind", "table"), ("lazy", "plain"),
    ("va_flags", "plain"), ("node", "plain"), ("flags_node_id", "plain"),
    ("vmap_block", "delta"), ("vmap_area", "delta"), ("vm_struct", "delta"), ("vm_addr", "delta"),
    ("vm_size", "plain"), ("vm_flags", "plain"), ("flag_names", "table"), ("nr_pages", "plain"),
    ("page_order", "plain"), ("phys_addr", "delta"), ("caller", "table"), ("caller_symbol", "table"),
    ("requested_size", "plain"), ("pages_array", "delta"),
)
_NO_VALUE = object()


def area_to_json(a: Area, page_size: int = 4096) -> Dict[str, Any]:
    """One area: the shared schema (:meth:`Area.to_dict`, the ``vmalloc list
    --json`` row) plus the vm_struct fields a round trip needs."""
    d = a.to_dict(page_size)
    vm = a.vm
    if vm is not None:
        d["vm_addr"], d["vm_size"], d["pages_array"] = vm.addr, vm.size, vm.pages_array
    else:
        d["vm_addr"] = d["vm_size"] = d["pages_array"] = None
    return d


_AREA_GET = operator.itemgetter(
    "start", "end", "kind", "lazy", "va_flags", "node", "flags_node_id", "vmap_block", "vmap_area", "vm_struct")
_VM_GET = operator.itemgetter(
    "vm_addr", "vm_size", "vm_flags", "flags", "pages", "page_order", "phys_addr", "caller", "caller_symbol",
    "requested_size", "pages_array")


def area_from_json(d: Dict[str, Any]) -> Area:
    start, end, kind, lazy, va_flags, node, node_id, block, va, vm_addr = _AREA_GET(d)
    vm = None
    if vm_addr is not None:
        addr, size, flags, names, pages, order, phys, caller, sym, req, arr = _VM_GET(d)
        vm = VmStruct(vm_addr, addr, size, flags, tuple(names), pages, order, phys or 0, caller, sym, req, arr)
    return Area(start, end, kind, lazy, va_flags, node, node_id, vm, block, va)


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


def _unseq(x: Any) -> List[Any]:
    if isinstance(x, list):
        return x
    if not isinstance(x, dict) or not isinstance(x.get("runs"), list):
        raise TypeError("a sequence is neither a list nor {\"runs\": [...]}")
    out: List[Any] = []
    for v, count in x["runs"]:
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"a run of {count!r}")
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
        out = _unseq(col)
    elif isinstance(col, dict) and "delta" in col:
        d = _unseq(col["delta"])
        if None not in d:
            out = list(accumulate(d))
        else:
            sums = accumulate([0 if v is None else v for v in d])
            out = [None if v is None else t for v, t in zip(d, sums)]
    elif isinstance(col, dict):
        table, index = col["table"], _unseq(col["index"])
        if not isinstance(table, list):
            raise TypeError("a table column's table is not a list")
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


def _write_areas(f: IO[str], rows: Sequence[Tuple[Any, ...]], dumps: Any) -> None:
    cols: List[Sequence[Any]] = list(zip(*rows)) if rows else [()] * len(COLUMNS)
    cols[1] = [e - s for s, e in zip(cols[0], cols[1])]
    f.write('{"count":%d,"columns":{' % len(rows))
    f.write(",".join(
        f"\n{json.dumps(name)}:{dumps(_encode_column(col, how))}" for (name, how), col in zip(COLUMNS, cols)))
    f.write("\n}}")


def _read_table(d: Any) -> AreaTable:
    """A version-2 AREAS section."""
    n = d["count"]
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"count {n!r}")
    columns = d["columns"]
    cols = [_decode_column(columns[name], n) for name, _how in COLUMNS]
    cols[1] = list(map(operator.add, cols[0], cols[1]))
    return AreaTable(cols)


def iter_area_dicts(section: Any, page_size: int = 4096,
                    owners: Optional[Dict[str, str]] = None) -> Iterator[Dict[str, Any]]:
    """The AREA dicts (:func:`area_to_json`) of one ``areas``, ``lazy`` or
    ``pooled`` section of a parsed snapshot file, version 1 or 2; with the
    file's ``exec_owners``, each exec area gets its ``owner`` as in
    ``vmalloc list --json``."""
    if isinstance(section, list):
        rows: Iterator[Dict[str, Any]] = iter(section)
    else:
        rows = (area_to_json(AreaTable.area(r), page_size) for r in _read_table(section).rows())
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
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time))

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
        f.write("{\n")
        for k, v in head.items():
            f.write(f"{json.dumps(k)}:{dumps(v)},\n")
        rows = list(m.rows())
        for name, section in (("areas", rows), ("lazy", [area_row(a) for a in m.lazy]),
                              ("pooled", [area_row(a) for a in m.pooled])):
            f.write(f'"{name}":')
            _write_areas(f, section, dumps)
            f.write(",\n")
        f.write('"blocks":[' + ",".join("\n" + dumps(b.to_dict(ps)) for b in m.blocks) + "\n],\n")
        holes = None if m.holes is None else [h.to_dict() for h in m.holes]
        f.write('"holes":' + dumps(holes) + ",\n")
        f.write('"exec_owners":' + dumps({f"{k:#x}": v for k, v in sorted(self.owners.items())}) + ",\n")
        f.write('"warnings":' + dumps(list(m.warnings)) + ",\n")
        f.write('"totals":' + dumps(m.stats()) + "\n}\n")

    def save(self, path: str) -> None:
        """Write the snapshot to ``path`` atomically: a temporary file in the
        same directory, flushed to disk, then renamed over ``path``."""
        d = os.path.dirname(os.path.abspath(path))
        tmp = os.path.join(d, f".{os.path.basename(path)}.tmp{os.getpid()}")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                self.write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise KcoreToolError(f"cannot write snapshot {path}: {e.strerror or e}") from e

    @classmethod
    def from_dict(cls, d: Dict[str, Any], path: Optional[str] = None) -> VmallocSnapshot:
        where = path or "snapshot"
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise KcoreToolError(f"{where}: not a kcoretool vmalloc snapshot (no \"format\": \"{FORMAT}\")")
        ver = d.get("format_version")
        if not isinstance(ver, int) or ver < 1 or ver > FORMAT_VERSION:
            raise KcoreToolError(f"{where}: snapshot format version {ver!r}; this kcoretool reads "
                                 f"1 to {FORMAT_VERSION} (upgrade kcoretool)")
        section = "header"
        try:
            areas: Optional[List[Area]] = None
            table: Optional[AreaTable] = None
            if ver == 1:
                section = "areas"
                areas = [area_from_json(x) for x in d["areas"]]
                section = "lazy"
                lazy = [area_from_json(x) for x in d["lazy"]]
                section = "pooled"
                pooled = [area_from_json(x) for x in d["pooled"]]
                nr = len(areas)
            else:
                section = "areas"
                table = _read_table(d["areas"])
                section = "lazy"
                lazy = _read_table(d["lazy"]).areas()
                section = "pooled"
                pooled = _read_table(d["pooled"]).areas()
                nr = len(table)
            section = "walk_order"
            order = d.get("walk_order")
            if order is not None:
                if not isinstance(order, list):
                    raise TypeError("walk_order is not a list")
                if order and (min(order) < 0 or max(order) >= nr + len(lazy) + len(pooled)):
                    raise ValueError("an index out of range")
            section = "blocks"
            blocks = [_block_from_json(x) for x in d["blocks"]]
            section = "holes"
            holes = None if d["holes"] is None else [FreeHole(h["start"], h["end"]) for h in d["holes"]]
            section = "header"
            model = VmallocModel(
                layout=_layout_from_json(d["layout"]), release=d["release"], page_size=d["page_size"],
                vmalloc_start=d["vmalloc_start"], vmalloc_end=d["vmalloc_end"],
                modules_start=d["modules_start"], modules_end=d["modules_end"],
                areas=areas, walk_order=None, lazy=lazy,
                pooled=pooled, blocks=blocks, holes=holes, lazy_nr=d["lazy_nr"],
                lazy_max_pages=d["lazy_max_pages"], warnings=list(d["warnings"]), numa=d["numa"],
                area_table=table, walk_index=order,
            )
            section = "exec_owners"
            owners = {int(k, 16): str(v) for k, v in (d.get("exec_owners") or {}).items()}
            src = d["source"]
            return cls(
                model=model, release=d["release"], boot_id=d["boot_id"],
                boot_id_source=d["boot_id_source"], kaslr_offset=d["kaslr_offset"], time=d["time"],
                time_source=d["time_source"], source_path=src["path"], source_kind=src["kind"],
                live=bool(src["live"]), owners=owners,
            )
        except KeyError as e:
            raise KcoreToolError(f"{where}: damaged snapshot: no field {e.args[0]!r} in {section}") from None
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


def is_snapshot_file(path: str) -> bool:
    """Whether ``path`` is meant as a snapshot rather than a core (ELF,
    kdump): named ``*.json``, or JSON text (a ``{`` first)."""
    if path.endswith(".json"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return head.lstrip()[:1] == b"{"


def load_snapshot(path: str) -> VmallocSnapshot:
    """Read a snapshot file written by :meth:`VmallocSnapshot.save`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise KcoreToolError(f"cannot read snapshot {path}: {e.strerror or e}") from e
    # Hundreds of thousands of acyclic containers: the cyclic GC would
    # rescan them over and over for nothing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            d = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise KcoreToolError(f"{path}: not a kcoretool vmalloc snapshot (not JSON: {e})") from None
        snap = VmallocSnapshot.from_dict(d, path)
    finally:
        if gc_was_enabled:
            gc.enable()
    snap.file = path
    return snap
