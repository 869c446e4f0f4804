# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Records declared once
---------------------

A model record -- a task, its mm, a VMA and its lock, an exec region --
declares how each of its fields is shown in one table of :class:`Field`
rows (``FIELDS``, in the JSON's order): its JSON key, whether the kernel
always has it, whether it is an address (hex in the repr), and the CLI
table column it fills.  :class:`Record` derives ``to_dict()`` and the
repr from that table; the CLI its column headers and cells
(:meth:`Record.columns`).  A field added to a record is one row here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Dict, List, NamedTuple, Optional, Tuple

__all__ = ("Column", "Field", "Record")


class Column(NamedTuple):
    """Where a field shows in the CLI's table of its records."""

    #: left to right
    position: int
    header: str
    #: how the CLI writes the value: "int", "text", "hex" (an address), "bytes"
    #: (a size, human-readable), "words" (a list, lowercase); None shows as "-"
    fmt: str = "text"
    align: str = "left"
    #: a column only some views show (e.g. "threads": ``task list --threads``)
    view: str = ""


class Field(NamedTuple):
    """One field of a record (a dataclass field or a property)."""

    name: str
    #: its JSON key; "" for ``name``, None for none
    json: Optional[str] = ""
    #: an address or a pointer: hex in the repr
    address: bool = False
    #: when the kernel has it: "" always, else what it needs (None without it)
    presence: str = ""
    #: its column in the CLI's table
    column: Optional[Column] = None
    #: a nested record's JSON: "whole" (with its derived keys), "fields" (its
    #: dataclass fields only), "spread" (a dict's keys into this record's)
    nested: str = "whole"


def _json(value: Any, nested: str) -> Any:
    if isinstance(value, Record):
        return value.to_dict(derived=nested == "whole")
    if isinstance(value, (dict, list, tuple)):
        return dataclasses.asdict(_Wrap(value))["v"]  # a deep copy, as asdict() makes
    return value


@dataclasses.dataclass
class _Wrap:
    v: Any


class Record:
    """The faces of a dataclass record, from its class's ``FIELDS``."""

    FIELDS: ClassVar[Tuple[Field, ...]] = ()

    def to_dict(self, derived: bool = True) -> Dict[str, Any]:
        """The record's JSON object; ``derived=False``: its dataclass fields only."""
        stored = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        d: Dict[str, Any] = {}
        for f in type(self).FIELDS:
            if f.json is None or (not derived and f.name not in stored):
                continue
            value = getattr(self, f.name)
            if f.nested == "spread":
                d.update(value)
            else:
                d[f.json or f.name] = _json(value, f.nested)
        return d

    @classmethod
    def columns(cls, view: str = "") -> List[Tuple[str, Column]]:
        """``(field name, column)`` of the CLI's table, left to right, for ``view``."""
        got = [(f.name, f.column) for f in cls.FIELDS if f.column is not None and f.column.view in ("", view)]
        return sorted(got, key=lambda nc: nc[1].position)

    def __repr__(self) -> str:
        hexed = {f.name for f in type(self).FIELDS if f.address}
        parts = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            parts.append(f"{f.name}={v:#x}" if f.name in hexed and isinstance(v, int) else f"{f.name}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"
