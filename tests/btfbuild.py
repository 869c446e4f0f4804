"""
A small BTF writer for tests: describe types in Python, get the bytes the
kernel's ``Documentation/bpf/btf.rst`` specifies (little-endian, version 1).

Every kind can be written, bitfields (kind_flag members) and signed enums
included, and split BTF (a module's blob on top of a base) too::

    b = BtfBuilder()
    i = b.int("int", 4, signed=True)
    s = b.struct("pair", 8, [("a", i, 0), ("b", i, 32)])
    blob = b.build()

Ids are handed out in order from 1 (or from the base's next id).
"""

from __future__ import annotations

import struct
from typing import Dict, List, Optional, Sequence, Tuple

from kcoretool.debuginfo.btf import (
    ARRAY, CONST, DATASEC, DECL_TAG, ENUM, ENUM64, FLOAT, FUNC, FUNC_PROTO, FWD, INT, PTR, RESTRICT,
    STRUCT, TYPE_TAG, TYPEDEF, UNION, VAR, VOLATILE,
)


class BtfBuilder:
    def __init__(self, base: Optional["BtfBuilder"] = None) -> None:
        self.base = base
        self.records: List[bytes] = []
        self.strings = bytearray() if base else bytearray(b"\0")
        self._str_index: Dict[str, int] = {}
        self.first_id = base.next_id if base else 1
        self.str_base = base.str_end if base else 0

    @property
    def next_id(self) -> int:
        return self.first_id + len(self.records)

    @property
    def str_end(self) -> int:
        return self.str_base + len(self.strings)

    def s(self, name: Optional[str]) -> int:
        """The offset of ``name`` in the string section (0 for no name)."""
        if not name:
            return 0
        if self.base is not None:
            found = self.base._lookup_str(name)
            if found is not None:
                return found
        off = self._str_index.get(name)
        if off is None:
            off = self._str_index[name] = self.str_base + len(self.strings)
            self.strings += name.encode() + b"\0"
        return off

    def _lookup_str(self, name: str) -> Optional[int]:
        if self.base is not None:
            found = self.base._lookup_str(name)
            if found is not None:
                return found
        return self._str_index.get(name)

    def raw(self, name_off: int, kind: int, vlen: int, size_or_type: int, extra: bytes = b"",
            kflag: bool = False) -> int:
        """Append one record as given (tests use it to write bad ones)."""
        info = (kflag << 31) | (kind << 24) | (vlen & 0xFFFF)
        self.records.append(struct.pack("<III", name_off, info, size_or_type) + extra)
        return self.next_id - 1

    # -- one method per kind

    def int(self, name: str, size: int, *, signed: bool = False, char: bool = False, bool_: bool = False,
            bits: Optional[int] = None, bit_offset: int = 0) -> int:
        enc = (1 if signed else 0) | (2 if char else 0) | (4 if bool_ else 0)
        word = (enc << 24) | (bit_offset << 16) | (size * 8 if bits is None else bits)
        return self.raw(self.s(name), INT, 0, size, struct.pack("<I", word))

    def ptr(self, target: int) -> int:
        return self.raw(0, PTR, 0, target)

    def array(self, elem: int, index: int, nelems: int) -> int:
        return self.raw(0, ARRAY, 0, 0, struct.pack("<III", elem, index, nelems))

    def struct(self, name: Optional[str], size: int, members: Sequence[Tuple], union: bool = False) -> int:
        """members: (name, type, bit_offset) or (name, type, bit_offset, bitfield_size)."""
        kflag = any(len(m) > 3 and m[3] for m in members)
        extra = b""
        for m in members:
            mname, mtype, boff = m[0], m[1], m[2]
            bsize = m[3] if len(m) > 3 else 0
            off = (bsize << 24) | boff if kflag else boff
            extra += struct.pack("<III", self.s(mname), mtype, off)
        return self.raw(self.s(name), UNION if union else STRUCT, len(members), size, extra, kflag)

    def union(self, name: Optional[str], size: int, members: Sequence[Tuple]) -> int:
        return self.struct(name, size, members, union=True)

    def enum(self, name: Optional[str], size: int, values: Sequence[Tuple[str, int]],
             signed: bool = False) -> int:
        extra = b"".join(struct.pack("<Ii" if signed else "<II", self.s(n), v) for n, v in values)
        return self.raw(self.s(name), ENUM, len(values), size, extra, signed)

    def enum64(self, name: Optional[str], size: int, values: Sequence[Tuple[str, int]],
               signed: bool = False) -> int:
        extra = b""
        for n, v in values:
            v &= (1 << 64) - 1
            extra += struct.pack("<III", self.s(n), v & 0xFFFFFFFF, v >> 32)
        return self.raw(self.s(name), ENUM64, len(values), size, extra, signed)

    def fwd(self, name: str, union: bool = False) -> int:
        return self.raw(self.s(name), FWD, 0, 0, kflag=union)

    def typedef(self, name: str, target: int) -> int:
        return self.raw(self.s(name), TYPEDEF, 0, target)

    def volatile(self, target: int) -> int:
        return self.raw(0, VOLATILE, 0, target)

    def const(self, target: int) -> int:
        return self.raw(0, CONST, 0, target)

    def restrict(self, target: int) -> int:
        return self.raw(0, RESTRICT, 0, target)

    def func_proto(self, ret: int, params: Sequence[Tuple[Optional[str], int]], variadic: bool = False) -> int:
        items = list(params) + ([(None, 0)] if variadic else [])
        extra = b"".join(struct.pack("<II", self.s(n), t) for n, t in items)
        return self.raw(0, FUNC_PROTO, len(items), ret, extra)

    def func(self, name: str, proto: int, linkage: int = 1) -> int:
        return self.raw(self.s(name), FUNC, linkage, proto)

    def var(self, name: str, type_: int, linkage: int = 1) -> int:
        return self.raw(self.s(name), VAR, 0, type_, struct.pack("<I", linkage))

    def datasec(self, name: str, size: int, vars_: Sequence[Tuple[int, int, int]]) -> int:
        extra = b"".join(struct.pack("<III", t, o, s) for t, o, s in vars_)
        return self.raw(self.s(name), DATASEC, len(vars_), size, extra)

    def float(self, name: str, size: int) -> int:
        return self.raw(self.s(name), FLOAT, 0, size)

    def decl_tag(self, name: str, target: int, component_idx: int = -1) -> int:
        return self.raw(self.s(name), DECL_TAG, 0, target, struct.pack("<i", component_idx))

    def type_tag(self, name: str, target: int) -> int:
        return self.raw(self.s(name), TYPE_TAG, 0, target)

    # -- the blob

    def build(self, *, magic: int = 0xEB9F, version: int = 1, hdr_len: int = 24) -> bytes:
        types = b"".join(self.records)
        strings = bytes(self.strings)
        header = struct.pack("<HBBIIIII", magic, version, 0, hdr_len, 0, len(types), len(types), len(strings))
        return header + b"\0" * (hdr_len - 24) + types + strings
