# SPDX-License-Identifier: LGPL-2.1-or-later
"""
BTF: the kernel's own type information
--------------------------------------

A parser for the BPF Type Format (kernel ``Documentation/bpf/btf.rst``), the
type section kernels built with ``CONFIG_DEBUG_INFO_BTF`` carry in
``/sys/kernel/btf/vmlinux`` and in their image (``__start_BTF``). Every kind
is decoded, split BTF (modules) included. No drgn here: this is bytes in,
frozen dataclasses out; :mod:`kcoretool.debuginfo.btf_types` turns them into
drgn types.

A vmlinux blob holds ~130k types, so :func:`parse_btf` makes one indexing
pass (each record's offset, names to ids) and decodes records on demand.
Everything is bounds-checked: a damaged blob raises :class:`BtfError` with
one line naming the blob, the type or offset, and what is wrong.
"""

from __future__ import annotations

import dataclasses
import struct
from array import array
from typing import Dict, Iterator, List, Optional, Tuple, Union

from kcoretool.errors import CoreFormatError

__all__ = (
    "KIND_NAMES",
    "Btf",
    "BtfArray",
    "BtfDatasec",
    "BtfDeclTag",
    "BtfEnum",
    "BtfEnum64",
    "BtfError",
    "BtfFloat",
    "BtfFunc",
    "BtfFuncProto",
    "BtfFwd",
    "BtfInt",
    "BtfMember",
    "BtfParam",
    "BtfPtr",
    "BtfQual",
    "BtfStruct",
    "BtfType",
    "BtfTypeTag",
    "BtfTypedef",
    "BtfVar",
    "BtfVarSecinfo",
    "BtfVoid",
    "parse_btf",
)

MAGIC = 0xEB9F
_HEADER = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")

# Kinds (include/uapi/linux/btf.h).
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DATASEC = 9, 10, 11, 12, 13, 14, 15
FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = 16, 17, 18, 19
KIND_NAMES = {
    INT: "INT", PTR: "PTR", ARRAY: "ARRAY", STRUCT: "STRUCT", UNION: "UNION", ENUM: "ENUM",
    FWD: "FWD", TYPEDEF: "TYPEDEF", VOLATILE: "VOLATILE", CONST: "CONST", RESTRICT: "RESTRICT",
    FUNC: "FUNC", FUNC_PROTO: "FUNC_PROTO", VAR: "VAR", DATASEC: "DATASEC", FLOAT: "FLOAT",
    DECL_TAG: "DECL_TAG", TYPE_TAG: "TYPE_TAG", ENUM64: "ENUM64",
}
# Bytes after the 12-byte common header: fixed, and per vlen item.
_EXTRA_FIXED = {INT: 4, ARRAY: 12, VAR: 4, DECL_TAG: 4}
_EXTRA_PER_VLEN = {STRUCT: 12, UNION: 12, ENUM: 8, FUNC_PROTO: 8, DATASEC: 12, ENUM64: 12}
# Kinds whose third word is a type id (the others hold a size or nothing).
_REFERS = frozenset({PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DECL_TAG, TYPE_TAG})
# Chains through these are followed by resolve(): bounded, loops reported.
_TRANSPARENT = frozenset({TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG})
MAX_CHAIN = 64

INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4


class BtfError(CoreFormatError):
    """A BTF blob kcoretool cannot use: truncated, inconsistent or unsupported."""


# ---------------------------------------------------------------- the model


@dataclasses.dataclass(frozen=True)
class BtfVoid:
    id: int = 0
    name: Optional[str] = None
    kind: str = "VOID"


@dataclasses.dataclass(frozen=True)
class BtfInt:
    id: int
    name: str
    size: int
    signed: bool
    char: bool
    bool: bool
    bit_offset: int
    bits: int
    kind: str = "INT"


@dataclasses.dataclass(frozen=True)
class BtfPtr:
    id: int
    type: int
    name: Optional[str] = None
    kind: str = "PTR"


@dataclasses.dataclass(frozen=True)
class BtfArray:
    id: int
    type: int
    index_type: int
    nelems: int
    name: Optional[str] = None
    kind: str = "ARRAY"


@dataclasses.dataclass(frozen=True)
class BtfMember:
    name: Optional[str]
    type: int
    bit_offset: int
    #: 0 for an ordinary member.
    bitfield_size: int


@dataclasses.dataclass(frozen=True)
class BtfStruct:
    """STRUCT or UNION (``kind`` says which)."""

    id: int
    name: Optional[str]
    size: int
    members: Tuple[BtfMember, ...]
    kind: str = "STRUCT"


@dataclasses.dataclass(frozen=True)
class BtfEnum:
    id: int
    name: Optional[str]
    size: int
    signed: bool
    values: Tuple[Tuple[str, int], ...]
    kind: str = "ENUM"


@dataclasses.dataclass(frozen=True)
class BtfEnum64:
    id: int
    name: Optional[str]
    size: int
    signed: bool
    values: Tuple[Tuple[str, int], ...]
    kind: str = "ENUM64"


@dataclasses.dataclass(frozen=True)
class BtfFwd:
    id: int
    name: str
    union: bool
    kind: str = "FWD"


@dataclasses.dataclass(frozen=True)
class BtfTypedef:
    id: int
    name: str
    type: int
    kind: str = "TYPEDEF"


@dataclasses.dataclass(frozen=True)
class BtfQual:
    """VOLATILE, CONST or RESTRICT (``kind`` says which)."""

    id: int
    type: int
    kind: str
    name: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class BtfFunc:
    id: int
    name: str
    type: int
    #: 0 static, 1 global, 2 extern.
    linkage: int
    kind: str = "FUNC"


@dataclasses.dataclass(frozen=True)
class BtfParam:
    name: Optional[str]
    type: int


@dataclasses.dataclass(frozen=True)
class BtfFuncProto:
    id: int
    return_type: int
    params: Tuple[BtfParam, ...]
    variadic: bool
    name: Optional[str] = None
    kind: str = "FUNC_PROTO"


@dataclasses.dataclass(frozen=True)
class BtfVar:
    id: int
    name: str
    type: int
    #: 0 static, 1 global-allocated, 2 extern.
    linkage: int
    kind: str = "VAR"


@dataclasses.dataclass(frozen=True)
class BtfVarSecinfo:
    type: int
    offset: int
    size: int


@dataclasses.dataclass(frozen=True)
class BtfDatasec:
    id: int
    name: str
    size: int
    vars: Tuple[BtfVarSecinfo, ...]
    kind: str = "DATASEC"


@dataclasses.dataclass(frozen=True)
class BtfFloat:
    id: int
    name: str
    size: int
    kind: str = "FLOAT"


@dataclasses.dataclass(frozen=True)
class BtfDeclTag:
    id: int
    name: str
    type: int
    #: -1: the tag is on the type or variable itself, else member/param index.
    component_idx: int
    kind: str = "DECL_TAG"


@dataclasses.dataclass(frozen=True)
class BtfTypeTag:
    id: int
    name: str
    type: int
    kind: str = "TYPE_TAG"


BtfType = Union[BtfVoid, BtfInt, BtfPtr, BtfArray, BtfStruct, BtfEnum, BtfEnum64, BtfFwd, BtfTypedef,
                BtfQual, BtfFunc, BtfFuncProto, BtfVar, BtfDatasec, BtfFloat, BtfDeclTag, BtfTypeTag]


# ---------------------------------------------------------------- the blob


class Btf:
    """One parsed BTF blob; split BTF (a module's) sees its base's types too."""

    def __init__(self, name: str, data: bytes, types: memoryview, strings: bytes,
                 base: Optional["Btf"], offsets: array, kinds: bytearray, by_name: Dict[str, List[int]]) -> None:
        self.name = name
        self.data = data
        self.base = base
        self._types = types
        self._strings = strings
        self._offsets = offsets
        self._kinds = kinds
        self._by_name = by_name
        self.start_id = base.end_id if base else 1
        self.end_id = self.start_id + len(offsets)
        self._str_base = base.str_end if base else 0
        self.str_end = self._str_base + len(strings)
        self._cache: Dict[int, BtfType] = {}

    def __len__(self) -> int:
        """Types in this blob (not counting void or the base's)."""
        return len(self._offsets)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start_id, self.end_id))

    def __repr__(self) -> str:
        return f"<Btf {self.name}: ids {self.start_id}..{self.end_id - 1}>"

    # -- strings and kinds

    def string(self, off: int, where: str = "") -> str:
        if off < self._str_base:
            if self.base is None:
                raise self._error(f"{where}string offset {off:#x} is out of range")
            return self.base.string(off, where)
        rel = off - self._str_base
        if rel >= len(self._strings):
            raise self._error(f"{where}string offset {off:#x} is beyond the string section "
                              f"({self.str_end:#x} bytes)")
        end = self._strings.find(b"\0", rel)
        if end < 0:
            raise self._error(f"{where}string at {off:#x} is not NUL-terminated")
        return self._strings[rel:end].decode("utf-8", "replace")

    def kind_of(self, type_id: int) -> int:
        """The raw kind number (0 for void)."""
        if type_id == 0:
            return 0
        if type_id < self.start_id and self.base is not None:
            return self.base.kind_of(type_id)
        self._check_id(type_id)
        return self._kinds[type_id - self.start_id]

    def _check_id(self, type_id: int, where: str = "") -> None:
        if not 0 <= type_id < self.end_id:
            raise self._error(f"{where}type id {type_id} is beyond the last type {self.end_id - 1}")

    def _error(self, msg: str) -> BtfError:
        return BtfError(f"{self.name} BTF: {msg}")

    # -- lookups

    def ids_by_name(self, name: str) -> List[int]:
        """Every type (any kind) with this name, base blob first."""
        mine = self._by_name.get(name, [])
        return (self.base.ids_by_name(name) + mine) if self.base else list(mine)

    def name_of(self, type_id: int) -> Optional[str]:
        return self.type(type_id).name

    def type(self, type_id: int) -> BtfType:
        """The decoded type ``type_id`` (0 is void)."""
        if type_id == 0:
            return BtfVoid()
        if type_id < self.start_id and self.base is not None:
            return self.base.type(type_id)
        t = self._cache.get(type_id)
        if t is None:
            self._check_id(type_id)
            t = self._cache[type_id] = self._decode(type_id)
        return t

    def resolve(self, type_id: int) -> int:
        """Follow typedefs, qualifiers and type tags (bounded)."""
        seen = type_id
        for _ in range(MAX_CHAIN):
            if self.kind_of(type_id) not in _TRANSPARENT:
                return type_id
            type_id = self.type(type_id).type  # type: ignore[union-attr]
        raise self._error(f"type {seen}: more than {MAX_CHAIN} typedefs/qualifiers in a row (a loop?)")

    def size_of(self, type_id: int) -> int:
        """Byte size of a sized type (after resolve())."""
        count, orig = 1, type_id
        # Arrays of arrays are walked in a loop, not by recursion: a damaged
        # blob can make an array its own element.
        for _ in range(MAX_CHAIN):
            t = self.type(self.resolve(type_id))
            if isinstance(t, BtfArray):
                count *= t.nelems
                type_id = t.type
                continue
            if isinstance(t, (BtfInt, BtfStruct, BtfEnum, BtfEnum64, BtfFloat, BtfDatasec)):
                return count * t.size
            if isinstance(t, BtfPtr):
                return count * 8
            raise self._error(f"type {type_id} ({t.kind}) has no size")
        raise self._error(f"type {orig}: arrays nested more than {MAX_CHAIN} deep (a loop?)")

    def find(self, name: str, *kinds: str) -> List[BtfType]:
        """Types named ``name`` of the given kinds ("STRUCT", "FUNC", ...)."""
        want = {k for k in kinds}
        return [t for t in (self.type(i) for i in self.ids_by_name(name)) if not want or t.kind in want]

    def var(self, name: str) -> Optional[BtfVar]:
        found = self.find(name, "VAR")
        return found[0] if found else None  # type: ignore[return-value]

    def func(self, name: str) -> Optional[BtfFunc]:
        found = self.find(name, "FUNC")
        return found[0] if found else None  # type: ignore[return-value]

    def ids_of_kind(self, *kinds: str) -> Iterator[int]:
        """Every id of these kinds, base first."""
        nums = {k for k, v in KIND_NAMES.items() if v in kinds}
        if self.base is not None:
            yield from self.base.ids_of_kind(*kinds)
        for i, k in enumerate(self._kinds):
            if k in nums:
                yield self.start_id + i

    # -- decoding

    def _decode(self, tid: int) -> BtfType:
        off = self._offsets[tid - self.start_id]
        buf = self._types
        name_off, info, size_or_type = _TYPE.unpack_from(buf, off)
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        where = f"type {tid} ({KIND_NAMES[kind]}) at offset {off:#x}: "
        name = self.string(name_off, where) if name_off else None
        p = off + 12
        if kind in _REFERS:
            self._check_id(size_or_type, where)

        def ref(t: int, what: str) -> int:
            if not 0 <= t < self.end_id:
                raise self._error(f"{where}{what} refers to type {t}, beyond the last type {self.end_id - 1}")
            return t

        def sname(o: int) -> Optional[str]:
            return self.string(o, where) if o else None

        if kind == INT:
            (word,) = struct.unpack_from("<I", buf, p)
            enc, bit_off, bits = (word >> 24) & 0xF, (word >> 16) & 0xFF, word & 0xFF
            if size_or_type not in (1, 2, 4, 8, 16):
                raise self._error(f"{where}integer size {size_or_type} is not 1, 2, 4, 8 or 16")
            if bits > 128 or bits + bit_off > size_or_type * 8:
                raise self._error(f"{where}{bits} bits at bit {bit_off} do not fit {size_or_type} bytes")
            return BtfInt(tid, name or "", size_or_type, bool(enc & INT_SIGNED), bool(enc & INT_CHAR),
                          bool(enc & INT_BOOL), bit_off, bits)
        if kind == PTR:
            return BtfPtr(tid, size_or_type, name)
        if kind == ARRAY:
            t, idx, n = struct.unpack_from("<III", buf, p)
            return BtfArray(tid, ref(t, "the element"), ref(idx, "the index"), n, name)
        if kind in (STRUCT, UNION):
            members = []
            for i in range(vlen):
                m_name, m_type, m_off = struct.unpack_from("<III", buf, p + 12 * i)
                bsize, boff = (m_off >> 24, m_off & 0xFFFFFF) if kflag else (0, m_off)
                members.append(BtfMember(sname(m_name), ref(m_type, f"member {i}"), boff, bsize))
            return BtfStruct(tid, name, size_or_type, tuple(members), KIND_NAMES[kind])
        if kind in (ENUM, ENUM64) and size_or_type not in (1, 2, 4, 8):
            raise self._error(f"{where}enum size {size_or_type} is not 1, 2, 4 or 8")
        if kind == ENUM:
            fmt = "<Ii" if kflag else "<II"
            vals = tuple((self.string(n, where), v) for n, v in
                         (struct.unpack_from(fmt, buf, p + 8 * i) for i in range(vlen)))
            return BtfEnum(tid, name, size_or_type, kflag, vals)
        if kind == ENUM64:
            vals = []
            for i in range(vlen):
                n, lo, hi = struct.unpack_from("<III", buf, p + 12 * i)
                v = (hi << 32) | lo
                if kflag and v >= 1 << 63:
                    v -= 1 << 64
                vals.append((self.string(n, where), v))
            return BtfEnum64(tid, name, size_or_type, kflag, tuple(vals))
        if kind == FWD:
            return BtfFwd(tid, name or "", kflag)
        if kind == TYPEDEF:
            return BtfTypedef(tid, name or "", size_or_type)
        if kind in (VOLATILE, CONST, RESTRICT):
            return BtfQual(tid, size_or_type, KIND_NAMES[kind], name)
        if kind == FUNC:
            if self.kind_of(size_or_type) != FUNC_PROTO:
                raise self._error(f"{where}refers to type {size_or_type}, which is not a FUNC_PROTO")
            return BtfFunc(tid, name or "", size_or_type, vlen)
        if kind == FUNC_PROTO:
            params = [struct.unpack_from("<II", buf, p + 8 * i) for i in range(vlen)]
            variadic = bool(params) and params[-1] == (0, 0)
            if variadic:
                params.pop()
            return BtfFuncProto(tid, size_or_type,
                                tuple(BtfParam(sname(n), ref(t, f"parameter {i}")) for i, (n, t) in enumerate(params)),
                                variadic, name)
        if kind == VAR:
            (linkage,) = struct.unpack_from("<I", buf, p)
            return BtfVar(tid, name or "", size_or_type, linkage)
        if kind == DATASEC:
            secs = tuple(BtfVarSecinfo(ref(t, f"variable {i}"), o, s) for i, (t, o, s) in
                         enumerate(struct.unpack_from("<III", buf, p + 12 * i) for i in range(vlen)))
            return BtfDatasec(tid, name or "", size_or_type, secs)
        if kind == FLOAT:
            if size_or_type not in (2, 4, 8, 12, 16):
                raise self._error(f"{where}float size {size_or_type} is not 2, 4, 8, 12 or 16")
            return BtfFloat(tid, name or "", size_or_type)
        if kind == DECL_TAG:
            (idx,) = struct.unpack_from("<i", buf, p)
            return BtfDeclTag(tid, name or "", size_or_type, idx)
        if kind == TYPE_TAG:
            return BtfTypeTag(tid, name or "", size_or_type)
        raise self._error(f"{where}kind {kind} is not handled")  # unreachable: the index pass checked


def _index(name: str, types: memoryview, strings: bytes, str_base: int,
           base: Optional[Btf]) -> Tuple[array, bytearray, Dict[str, List[int]]]:
    """One pass over the type section: record offsets, kinds and names."""
    offsets = array("I")
    kinds = bytearray()
    by_name: Dict[str, List[int]] = {}
    # Names in bulk: most name offsets start a string in the section.
    names: Dict[int, str] = {}
    pos = 0
    for s in strings.split(b"\0"):
        names[str_base + pos] = s.decode("utf-8", "replace")
        pos += len(s) + 1
    first = base.end_id if base else 1
    unpack = _TYPE.unpack_from
    fixed, per_vlen = _EXTRA_FIXED, _EXTRA_PER_VLEN
    n = len(types)
    off = 0
    tid = first
    while off < n:
        if off + 12 > n:
            raise BtfError(f"{name} BTF: type {tid} at offset {off:#x}: truncated (12-byte header "
                           f"past the end of the type section, {n:#x} bytes)")
        name_off, info, _ = unpack(types, off)
        kind = (info >> 24) & 0x1F
        if not INT <= kind <= ENUM64:
            raise BtfError(f"{name} BTF: type {tid} at offset {off:#x}: unknown kind {kind}")
        end = off + 12 + fixed.get(kind, 0) + per_vlen.get(kind, 0) * (info & 0xFFFF)
        if end > n:
            raise BtfError(f"{name} BTF: type {tid} ({KIND_NAMES[kind]}) at offset {off:#x}: truncated "
                           f"(needs {end - off} bytes, the type section ends at {n:#x})")
        offsets.append(off)
        kinds.append(kind)
        if name_off:
            s = names.get(name_off)
            if s is None:
                s = _string_at(name, strings, str_base, base, name_off, tid, kind, off)
            lst = by_name.get(s)
            if lst is None:
                by_name[s] = [tid]
            else:
                lst.append(tid)
        off = end
        tid += 1
    return offsets, kinds, by_name


def _string_at(name: str, strings: bytes, str_base: int, base: Optional[Btf], off: int,
               tid: int, kind: int, toff: int) -> str:
    where = f"type {tid} ({KIND_NAMES[kind]}) at offset {toff:#x}: "
    if off < str_base and base is not None:
        return base.string(off, where)
    rel = off - str_base
    if not 0 <= rel < len(strings):
        raise BtfError(f"{name} BTF: {where}string offset {off:#x} is beyond the string section "
                       f"({str_base + len(strings):#x} bytes)")
    end = strings.find(b"\0", rel)
    if end < 0:
        raise BtfError(f"{name} BTF: {where}string at {off:#x} is not NUL-terminated")
    return strings[rel:end].decode("utf-8", "replace")


def parse_btf(data: Union[bytes, bytearray, memoryview], *, base: Optional[Btf] = None,
              name: str = "vmlinux") -> Btf:
    """
    Parse a BTF blob. ``base``: the vmlinux BTF a module's split BTF builds on.

    :raises BtfError: not BTF, or damaged; the message names the blob.
    """
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise BtfError(f"{name} BTF: {len(data)} bytes, shorter than the 24-byte header")
    magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(data)
    if magic == 0x9FEB:
        raise BtfError(f"{name} BTF: big-endian BTF is not supported")
    if magic != MAGIC:
        raise BtfError(f"{name} BTF: bad magic {magic:#06x} (expected 0xeb9f); not BTF")
    if version != 1:
        raise BtfError(f"{name} BTF: version {version} is not supported (only 1)")
    if not _HEADER.size <= hdr_len <= len(data):
        raise BtfError(f"{name} BTF: header length {hdr_len} is outside 24..{len(data)}")
    body = len(data) - hdr_len
    for what, o, ln in (("type", type_off, type_len), ("string", str_off, str_len)):
        if o + ln > body:
            raise BtfError(f"{name} BTF: {what} section [{o:#x}, {o + ln:#x}) is outside the "
                           f"{body:#x} bytes after the header")
        if o % 4 and what == "type":
            raise BtfError(f"{name} BTF: type section offset {o:#x} is not 4-byte aligned")
    if type_off < str_off + str_len and str_off < type_off + type_len:
        raise BtfError(f"{name} BTF: the type and string sections overlap")
    if base is None and str_len and data[hdr_len + str_off] != 0:
        raise BtfError(f"{name} BTF: the string section does not start with an empty string")
    if str_len and data[hdr_len + str_off + str_len - 1] != 0:
        raise BtfError(f"{name} BTF: the string section does not end with a NUL")
    types = memoryview(data)[hdr_len + type_off:hdr_len + type_off + type_len]
    strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
    str_base = base.str_end if base else 0
    offsets, kinds, by_name = _index(name, types, strings, str_base, base)
    return Btf(name, data, types, strings, base, offsets, kinds, by_name)
