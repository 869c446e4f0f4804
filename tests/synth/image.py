# SPDX-License-Identifier: LGPL-2.1-or-later
"""
A synthetic kernel image for drgn: C-like struct types built with natural
x86_64 alignment, a bytearray "direct map" with a bump allocator, global
variables, and function symbols -- everything a drgn Program needs to run
kcoretool's (and drgn's own) vmalloc helpers without a real kernel.
"""

from __future__ import annotations

import bisect
import re
import struct
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import drgn
from drgn import (
    Architecture,
    Object,
    Platform,
    PlatformFlags,
    Program,
    Symbol,
    SymbolBinding,
    SymbolKind,
    TypeKind,
    TypeMember,
)

#: where the image's memory lives (x86_64 direct map, 4-level)
BASE = 0xFFFF888000000000

_SCALARS = {
    # name: (size, signed)
    "char": (1, True),
    "unsigned char": (1, False),
    "u8": (1, False),
    "int": (4, True),
    "unsigned int": (4, False),
    "long": (8, True),
    "unsigned long": (8, False),
    "unsigned long long": (8, False),
}

Member = Tuple[object, Optional[str]]  # (type spec or ("union", [...]), name)


class Image:
    """Types, memory and symbols of one synthetic kernel."""

    def __init__(self, size: int = 1 << 24, attach: bool = True) -> None:
        """:param attach: read the program's memory from ``mem`` (else the
        program has no memory until :meth:`attach_core`)."""
        self.prog = Program(
            Platform(
                Architecture.X86_64,
                PlatformFlags.IS_64_BIT | PlatformFlags.IS_LITTLE_ENDIAN,
            )
        )
        self.mem = bytearray(size)
        self.top = 0
        self.types: Dict[str, drgn.Type] = {}
        self.layouts: Dict[str, Tuple[int, int]] = {}  # struct -> (size, align)
        self.globals: Dict[str, Tuple[drgn.Type, int]] = {}
        self.symbols: List[Symbol] = []
        self._sym_by_name: Dict[str, Symbol] = {}
        self._sym_sorted: Optional[List[Symbol]] = None
        p = self.prog
        for name, (size, signed) in _SCALARS.items():
            self.types[name] = p.int_type(name, size, signed)
        self.types["bool"] = p.bool_type("_Bool", 1)
        self.types["void"] = p.void_type()
        mem = self.mem
        # A memoryview of mem, made on the first read after mem last grew
        # (a bytearray cannot grow while a view of it exists): its slices
        # spare a copy per read -- a synthetic kernel's memory reads cost
        # 0.45 us instead of 0.7.
        self._view: List[Optional[memoryview]] = [None]
        view = self._view

        def read(address: int, count: int, offset: int, physical: bool) -> Any:
            mv = view[0]
            if mv is None:
                mv = view[0] = memoryview(mem)
            b = mv[offset:offset + count]
            if len(b) < count:
                return bytes(b) + bytes(count - len(b))
            return b

        # The segment is larger than the buffer so the image can grow.
        if attach:
            p.add_memory_segment(BASE, 1 << 40, read)
        p.register_type_finder("synth", self._find_type, enable_index=0)
        p.register_object_finder("synth", self._find_object, enable_index=0)
        p.register_symbol_finder("synth", self._find_symbol, enable_index=0)

    def attach_core(self, path: str) -> None:
        """Write the image to ``path`` as an ELF core file (one PT_LOAD at
        BASE), make it the program's memory -- drgn reads it with pread, as it
        reads a vmcore, so the image is in the page cache, not in the
        process -- and free ``mem``.  Only for an Image made with
        ``attach=False``."""
        off = 4096
        eh = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
        eh += struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 64, 0, 0, 64, 56, 1, 64, 0, 0)  # ET_CORE, x86-64
        ph = struct.pack("<IIQQQQQQ", 1, 6, off, BASE, 0, self.top, self.top, 4096)  # PT_LOAD RW
        with open(path, "wb") as f:
            f.write(eh + ph)
            f.seek(off)
            view = memoryview(self.mem)
            for pos in range(0, self.top, 1 << 24):
                f.write(view[pos:min(pos + (1 << 24), self.top)])
            del view
        self.prog.set_core_dump(path)
        self.mem.clear()

    # -- types -------------------------------------------------------------

    def _find_type(self, prog, kinds, name, filename):
        for k in kinds:
            key = name
            if k == TypeKind.STRUCT:
                key = "struct " + name
            elif k == TypeKind.UNION:
                key = "union " + name
            elif k == TypeKind.ENUM:
                key = "enum " + name
            t = self.types.get(key)
            if t is not None and t.kind == k:
                return t
            if k == TypeKind.TYPEDEF and name in self.types:
                t = self.types[name]
                if t.kind == TypeKind.TYPEDEF:
                    return t
        return None

    def type(self, spec: str) -> drgn.Type:
        """Parse "struct x *", "unsigned long[4]", "void **" into a drgn Type."""
        m = re.fullmatch(r"\s*(.*?)\s*((?:\*\s*)*)(?:\[(\d+)\])?\s*", spec)
        assert m, spec
        base, stars, n = m.group(1), m.group(2).replace(" ", ""), m.group(3)
        if stars and base.startswith("struct ") and base not in self.types:
            tag = base[7:]
            t = self.prog.struct_type(tag)  # incomplete; fine behind a pointer
        else:
            t = self.types[base]
        for _ in stars:
            t = self.prog.pointer_type(t)
        if n is not None:
            t = self.prog.array_type(t, int(n))
        return t

    def _size_align(self, t: drgn.Type) -> Tuple[int, int]:
        t = t.unaliased()
        if t.kind == TypeKind.ARRAY:
            s, a = self._size_align(t.type)
            return s * t.length, a
        if t.kind in (TypeKind.STRUCT, TypeKind.UNION):
            key = ("struct " if t.kind == TypeKind.STRUCT else "union ") + (t.tag or "")
            if key in self.layouts:
                return self.layouts[key]
            return drgn.sizeof(t), 8
        s = drgn.sizeof(t)
        return s, s

    def _members(self, members: Sequence[Member], union: bool) -> Tuple[List[TypeMember], int, int]:
        out = []
        off = 0
        size = 0
        align = 1
        for spec, name in members:
            if isinstance(spec, tuple):  # anonymous union
                kind, sub = spec
                ms, s, a = self._members(sub, kind == "union")
                t = self.prog.union_type(None, s, ms)
                self.layouts["union "] = (s, a)
            elif isinstance(spec, str) and "*" in spec and "[" not in spec:
                # Pointers resolve lazily so structs can point at themselves
                # or at structs defined later.
                t = (lambda spec=spec: self.type(spec))  # type: ignore[assignment]
                s, a = 8, 8
            else:
                t = self.type(spec) if isinstance(spec, str) else spec
                s, a = self._size_align(t)
            if union:
                o = 0
            else:
                o = (off + a - 1) // a * a
                off = o + s
            out.append(TypeMember(t, name, o * 8))
            size = max(size, o + s)
            align = max(align, a)
        size = (size + align - 1) // align * align
        return out, size, align

    def struct(self, tag: str, members: Sequence[Member]) -> drgn.Type:
        ms, size, align = self._members(members, False)
        t = self.prog.struct_type(tag, size, ms)
        self.types["struct " + tag] = t
        self.layouts["struct " + tag] = (size, align)
        return t

    def typedef(self, name: str, spec: str) -> drgn.Type:
        t = self.prog.typedef_type(name, self.type(spec))
        self.types[name] = t
        return t

    def offsetof(self, tag: str, member: str) -> int:
        return drgn.offsetof(self.types["struct " + tag], member)

    def sizeof(self, tag: str) -> int:
        return drgn.sizeof(self.types["struct " + tag])

    # -- memory ------------------------------------------------------------

    def alloc(self, size: int, align: int = 8) -> int:
        self.top = (self.top + align - 1) // align * align
        addr = BASE + self.top
        self.top += size
        if self.top > len(self.mem):
            if self._view[0] is not None:
                self._view[0].release()
                self._view[0] = None
            # extend in place: the memory segment's callback holds this object
            self.mem.extend(bytes(max(self.top - len(self.mem), len(self.mem))))
        return addr

    def alloc_struct(self, tag: str) -> int:
        return self.alloc(self.sizeof(tag), 64)

    def w64(self, addr: int, value: int) -> None:
        struct.pack_into("<Q", self.mem, addr - BASE, value & 0xFFFFFFFFFFFFFFFF)

    def w32(self, addr: int, value: int) -> None:
        struct.pack_into("<I", self.mem, addr - BASE, value & 0xFFFFFFFF)

    def w8(self, addr: int, value: int) -> None:
        self.mem[addr - BASE] = value & 0xFF

    def wbytes(self, addr: int, data: bytes) -> None:
        self.mem[addr - BASE:addr - BASE + len(data)] = data

    def r64(self, addr: int) -> int:
        return struct.unpack_from("<Q", self.mem, addr - BASE)[0]

    def put(self, tag: str, at: int, /, **fields: int) -> None:
        """Write scalar/pointer fields of a struct; ``a__b`` means ``a.b``."""
        t = self.types["struct " + tag]
        for key, value in fields.items():
            path = key.replace("__", ".")
            off = drgn.offsetof(t, path)
            mt = t
            for part in path.split("."):
                mt = _member_type(mt, part)
            size = drgn.sizeof(mt)
            if size == 8:
                self.w64(at + off, value)
            elif size == 4:
                self.w32(at + off, value)
            elif size == 1:
                self.w8(at + off, value)
            else:
                self.wbytes(at + off, value.to_bytes(size, "little"))

    # -- globals and symbols -------------------------------------------------

    def global_var(self, name: str, spec: Union[str, drgn.Type], addr: Optional[int] = None) -> int:
        t = self.type(spec) if isinstance(spec, str) else spec
        if addr is None:
            addr = self.alloc(max(drgn.sizeof(t), 8), 64)
        self.globals[name] = (t, addr)
        self.symbol(name, addr, drgn.sizeof(t), SymbolKind.OBJECT)
        return addr

    def function(self, name: str, addr: int, size: int = 0x100) -> None:
        """A function: an ELF-style symbol and a DWARF-style object."""
        self.symbol(name, addr, size, SymbolKind.FUNC)
        ft = self.prog.function_type(self.types["void"], ())
        self.globals[name] = (ft, addr)

    def symbol(self, name: str, addr: int, size: int, kind: SymbolKind) -> None:
        s = Symbol(name, addr, size, SymbolBinding.GLOBAL, kind)
        self.symbols.append(s)
        self._sym_by_name[name] = s
        self._sym_sorted = None

    def _find_object(self, prog, name, flags, filename):
        g = self.globals.get(name)
        if g is None:
            return None
        return Object(prog, g[0], address=g[1])

    def _find_symbol(self, prog, name, address, one):
        if name is not None:
            s = self._sym_by_name.get(name)
            return [s] if s is not None else []
        if address is not None:
            if self._sym_sorted is None:
                self._sym_sorted = sorted(self.symbols, key=lambda s: s.address)
                self._sym_starts = [s.address for s in self._sym_sorted]
            i = bisect.bisect_right(self._sym_starts, address) - 1
            # The containing symbol starts at or before address; look at a
            # few candidates (zero-size and overlapping symbols).
            for s in self._sym_sorted[max(i - 8, 0):i + 1][::-1]:
                if s.address <= address < s.address + max(s.size, 1):
                    return [s]
            return []
        return list(self.symbols)


def _member_type(t: drgn.Type, name: str) -> drgn.Type:
    t = t.unaliased()
    if t.kind == TypeKind.ARRAY:
        return t.type
    return t.member(name).type
