# SPDX-License-Identifier: LGPL-2.1-or-later
"""
BTF as drgn types
-----------------

:class:`BtfTypes` answers drgn's type-finder calls from parsed BTF
(:mod:`kcoretool.debuginfo.btf`), so code written against DWARF --
``prog.type("struct vmap_area")``, member offsets, bitfields, typedefs,
function prototypes -- runs unchanged. Types are converted on demand and
cached by id; struct members are lazy, so asking for one struct does not
convert the kernel.

Where BTF says less than DWARF: an array of 0 elements becomes an
incomplete array (the kernel's flexible arrays; BTF cannot tell ``x[0]``
from ``x[]``); pahole writes a multi-dimensional array as one dimension
(``int nr_pages[4][2][5]`` is ``int [40]``: same bytes, flat indexing); an
enum's compatible type is the plain integer of its size and signedness; and
TYPE_TAGs are transparent. The lab compares the structures kcoretool reads
against the DWARF on both kernels (tests/lab/test_btf.py).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import drgn

from kcoretool.debuginfo.btf import (
    Btf,
    BtfArray,
    BtfEnum,
    BtfEnum64,
    BtfError,
    BtfFloat,
    BtfFunc,
    BtfFuncProto,
    BtfFwd,
    BtfInt,
    BtfMember,
    BtfPtr,
    BtfQual,
    BtfStruct,
    BtfTypedef,
    BtfTypeTag,
    BtfVoid,
)

__all__ = ("BtfTypes",)

# drgn kinds -> the BTF kinds that can answer them.
_WANT = {
    drgn.TypeKind.STRUCT: ("STRUCT", "FWD"),
    drgn.TypeKind.UNION: ("UNION", "FWD"),
    drgn.TypeKind.ENUM: ("ENUM", "ENUM64", "FWD"),
    drgn.TypeKind.TYPEDEF: ("TYPEDEF",),
    drgn.TypeKind.INT: ("INT",),
    drgn.TypeKind.BOOL: ("INT",),
    drgn.TypeKind.FLOAT: ("FLOAT",),
}
# Kinds a module can add; base types all come from vmlinux.
_MODULE_KINDS = drgn.TypeKindSet({drgn.TypeKind.STRUCT, drgn.TypeKind.UNION, drgn.TypeKind.ENUM,
                                  drgn.TypeKind.TYPEDEF})
_QUALIFIERS = {"CONST": drgn.Qualifiers.CONST, "VOLATILE": drgn.Qualifiers.VOLATILE,
               "RESTRICT": drgn.Qualifiers.RESTRICT}
_INT_NAMES = {(1, True): "signed char", (1, False): "unsigned char", (2, True): "short",
              (2, False): "unsigned short", (4, True): "int", (4, False): "unsigned int",
              (8, True): "long", (8, False): "unsigned long"}


def _owner(btf: Btf, type_id: int) -> Btf:
    """The blob that defines ``type_id``: a module's split BTF refers to
    vmlinux types by their vmlinux ids, and each is converted once."""
    while btf.base is not None and type_id < btf.start_id:
        btf = btf.base
    return btf


class BtfTypes:
    """drgn types for one or more BTF blobs (vmlinux first, then modules)."""

    FINDER = "kcoretool-btf"

    def __init__(self, prog: drgn.Program, btfs: List[Btf],
                 more: Optional[Callable[[], List[Btf]]] = None) -> None:
        """
        :param more: called once, on the first name no blob has, for module
            BTF to search too (loading it only when needed).
        """
        self.prog = prog
        self.btfs = list(btfs)
        self._more = more
        self._types: Dict[Tuple[int, int], drgn.Type] = {}
        self._enumerators: Dict[str, Tuple[Btf, int, int]] = {}
        self._enum_indexed = 0

    def register(self, prog: drgn.Program) -> None:
        """Add this finder ahead of drgn's (empty, without DWARF) ones."""
        prog.register_type_finder(self.FINDER, self._find, enable_index=0)

    # -- drgn's callback

    def _find(self, prog: drgn.Program, kinds: drgn.TypeKindSet, name: str,
              filename: Optional[str]) -> Optional[drgn.Type]:
        for kind in kinds:
            t = self._lookup(self.btfs, kind, name)
            if t is not None:
                return t
        if not kinds & _MODULE_KINDS:
            return None  # drgn probing spellings of base types ("long unsigned int")
        # Only now read module BTF (once): vmlinux did not have the name.
        extra = self._load_more()
        for kind in kinds:
            t = self._lookup(extra, kind, name)
            if t is not None:
                return t
        return None

    def _load_more(self) -> List[Btf]:
        if self._more is None:
            return []
        more, self._more = self._more, None
        extra = more()
        self.btfs.extend(extra)
        return extra

    def _lookup(self, btfs: List[Btf], kind: drgn.TypeKind, name: str) -> Optional[drgn.Type]:
        want = _WANT.get(kind)
        if want is None:
            return None
        fwd = None
        for btf in btfs:
            for t in btf.find(name, *want):
                if isinstance(t, BtfFwd):
                    if (kind == drgn.TypeKind.UNION) == t.union and kind != drgn.TypeKind.ENUM:
                        fwd = fwd or (btf, t.id)
                    continue
                if isinstance(t, BtfInt) and t.bool != (kind == drgn.TypeKind.BOOL):
                    continue
                return self.type_by_id(btf, t.id)
        return self.type_by_id(*fwd) if fwd else None

    # -- conversion

    def type_by_id(self, btf: Btf, type_id: int) -> drgn.Type:
        btf = _owner(btf, type_id)
        key = (id(btf), type_id)
        t = self._types.get(key)
        if t is None:
            t = self._types[key] = self._convert_checked(btf, type_id, 0)
        return t

    def _convert_checked(self, btf: Btf, type_id: int, depth: int) -> drgn.Type:
        try:
            return self._convert(btf, type_id, depth)
        except (ValueError, TypeError) as e:
            # drgn refuses what a damaged blob describes (a 2^27-bit
            # integer, a bit field of a struct): one line, not a traceback.
            raise BtfError(f"{btf.name} BTF: type {type_id}: {e}") from None

    def _convert(self, btf: Btf, type_id: int, depth: int) -> drgn.Type:
        prog = self.prog
        if depth > 64:
            raise drgn.MissingDebugInfoError(f"{btf.name} BTF: type {type_id}: chain too deep")
        t = btf.type(type_id)
        if isinstance(t, BtfVoid):
            return prog.void_type()
        if isinstance(t, BtfInt):
            if t.bool:
                return prog.bool_type(t.name, t.size)
            return prog.int_type(t.name, t.size, t.signed)
        if isinstance(t, BtfFloat):
            return prog.float_type(t.name, t.size)
        if isinstance(t, BtfPtr):
            return prog.pointer_type(self._ref(btf, t.type, depth))
        if isinstance(t, BtfArray):
            elem = self._ref(btf, t.type, depth)
            if elem.kind in (drgn.TypeKind.VOID, drgn.TypeKind.FUNCTION):
                # C has no such arrays; drgn would fail later, where a
                # struct member's type is first looked at
                raise BtfError(f"{btf.name} BTF: type {type_id}: an array of {elem.kind.name.lower()}")
            return prog.array_type(elem, t.nelems) if t.nelems else prog.array_type(elem)
        if isinstance(t, BtfTypedef):
            return prog.typedef_type(t.name, self._ref(btf, t.type, depth))
        if isinstance(t, BtfQual):
            inner = self._ref(btf, t.type, depth)
            return inner.qualified(inner.qualifiers | _QUALIFIERS[t.kind])
        if isinstance(t, BtfTypeTag):
            return self._ref(btf, t.type, depth)
        if isinstance(t, BtfStruct):
            members = [self._member(btf, m) for m in t.members]
            make = prog.struct_type if t.kind == "STRUCT" else prog.union_type
            return make(t.name, t.size, members)
        if isinstance(t, BtfFwd):
            return (prog.union_type if t.union else prog.struct_type)(t.name)
        if isinstance(t, (BtfEnum, BtfEnum64)):
            compat = prog.int_type(_INT_NAMES.get((t.size, t.signed), "long"), t.size, t.signed)
            return prog.enum_type(t.name, compat, [drgn.TypeEnumerator(n, v) for n, v in t.values])
        if isinstance(t, BtfFuncProto):
            ret = self._ref(btf, t.return_type, depth)
            params = [drgn.TypeParameter(self._lazy(btf, p.type), p.name) for p in t.params]
            return prog.function_type(ret, params, t.variadic)
        if isinstance(t, BtfFunc):
            return self._ref(btf, t.type, depth)
        raise drgn.MissingDebugInfoError(f"{btf.name} BTF: type {type_id} ({t.kind}) is not a C type")

    def _ref(self, btf: Btf, type_id: int, depth: int) -> drgn.Type:
        btf = _owner(btf, type_id)
        key = (id(btf), type_id)
        t = self._types.get(key)
        if t is None:
            t = self._types[key] = self._convert_checked(btf, type_id, depth + 1)
        return t

    def _lazy(self, btf: Btf, type_id: int) -> Callable[[], drgn.Type]:
        return lambda: self.type_by_id(btf, type_id)

    def _member(self, btf: Btf, m: BtfMember) -> drgn.TypeMember:
        if m.bitfield_size:
            size = m.bitfield_size
            def bit_field() -> drgn.Object:
                try:
                    return drgn.Object(self.prog, self.type_by_id(btf, m.type), bit_field_size=size)
                except (ValueError, TypeError) as e:  # "cannot get size of void type"
                    raise BtfError(f"{btf.name} BTF: member {m.name} (type {m.type}): {e}") from None
            return drgn.TypeMember(bit_field, m.name, m.bit_offset)
        return drgn.TypeMember(self._lazy(btf, m.type), m.name, m.bit_offset)

    # -- for the object finder

    def variable_type(self, name: str) -> Optional[drgn.Type]:
        """The type of a variable BTF describes (per-CPU variables, on most kernels)."""
        for btf in self.btfs:
            v = btf.var(name)
            if v is not None:
                return self.type_by_id(btf, v.type)
        return None

    def function_type(self, name: str) -> Optional[drgn.Type]:
        """The prototype (with parameter names) of a function BTF describes."""
        for btf in self.btfs:
            f = btf.func(name)
            if f is not None:
                return self.type_by_id(btf, f.type)
        return None

    def enumerator(self, name: str, modules: bool = False) -> Optional[Tuple[drgn.Type, int]]:
        """
        ``(enum type, value)`` for an enumerator constant such as ``N_ONLINE``.

        :param modules: read module BTF if vmlinux has no such enumerator
            (for ``prog.constant()``; not for ``prog[name]``, which asks for
            constants first and would read every module's BTF for a missing
            variable).
        """
        found = self._enumerator(name)
        if found is None and modules and self._more is not None:
            # Not in vmlinux: perhaps a module's enum, so read module BTF.
            self._load_more()
            found = self._enumerator(name)
        if found is None:
            return None
        btf, tid, value = found
        return self.type_by_id(btf, tid), value

    def _enumerator(self, name: str) -> Optional[Tuple[Btf, int, int]]:
        # Indexed per blob, including module blobs a type lookup loaded since.
        for btf in self.btfs[self._enum_indexed:]:
            for tid in btf.ids_of_kind("ENUM", "ENUM64"):
                t = btf.type(tid)
                for n, v in t.values:  # type: ignore[union-attr]
                    self._enumerators.setdefault(n, (btf, tid, v))
        self._enum_indexed = len(self.btfs)
        return self._enumerators.get(name)
