# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Symbols the way the kernel prints them
--------------------------------------

kallsyms is what ``%pS`` (and so ``/proc/vmallocinfo``) uses: every symbol
runs to the next one, padding included, and compiler suffixes such as
``.constprop.0`` stay. kcoretool symbolizes from kallsyms whenever the
kernel has it -- with or without a vmlinux -- so ``caller`` reads the same
as the kernel's own output and the same under DWARF and BTF.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from array import array
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import drgn

from kcoretool.errors import CoreFormatError
from kcoretool.source.vmcoreinfo import VmcoreInfo
from kcoretool.x86_64 import START_KERNEL_MAP

__all__ = ("KALLSYMS_FINDER", "KallsymsLocations", "KallsymsTable", "kallsyms_locations", "kallsyms_table",
           "load_kallsyms", "use_kallsyms")

KALLSYMS_FINDER = "kcoretool-kallsyms"


def _vmcoreinfo(prog: drgn.Program) -> Optional[VmcoreInfo]:
    try:
        return VmcoreInfo(prog["VMCOREINFO"].string_())
    except (KeyError, LookupError, drgn.FaultError, ValueError):
        return None


@dataclasses.dataclass(frozen=True)
class KallsymsLocations:
    """Where the kallsyms tables are, and how that was learned."""

    #: table name (``kallsyms_names`` ...) -> address
    tables: Dict[str, int]
    #: found in the image by structure (pre-v6.0), not named by VMCOREINFO
    found_in_image: bool


def kallsyms_locations(prog: drgn.Program) -> KallsymsLocations:
    """
    Where the core kernel's kallsyms tables are (once per program): the
    ``SYMBOL()`` lines of VMCOREINFO (5fd8fea935a1, v6.0), or before v6.0 the
    tables found in the image by their own structure
    (:func:`~kcoretool.debuginfo.kallsyms_find.find_kallsyms_tables`), from
    ``_stext`` = ``__START_KERNEL_map`` + 16 MiB + ``KERNELOFFSET``.

    :raises LookupError: neither works (the message says why).
    """
    cached = prog.cache.get("kcoretool_kallsyms_locations")
    if isinstance(cached, LookupError):
        raise cached
    if cached is not None:
        return cached
    try:
        locs = _locations(prog)
    except LookupError as e:
        prog.cache["kcoretool_kallsyms_locations"] = e
        raise
    prog.cache["kcoretool_kallsyms_locations"] = locs
    return locs


def _locations(prog: drgn.Program) -> KallsymsLocations:
    from kcoretool.debuginfo.kallsyms_find import find_kallsyms_tables

    info = _vmcoreinfo(prog)
    if info is None:
        raise LookupError("the core has no VMCOREINFO")
    named = {n: info.symbol(n) for n in (*_TABLES, "kallsyms_relative_base")}
    # v6.15+ has no kallsyms_relative_base: the offsets are PC-relative.
    if all(named[n] for n in _TABLES):
        return KallsymsLocations({n: a for n, a in named.items() if a is not None}, False)
    stext = info.symbol("_stext")
    if stext is None:
        offset = info.kernel_offset
        if offset is None:
            raise LookupError("VMCOREINFO has neither the kallsyms tables nor KERNELOFFSET")
        stext = START_KERNEL_MAP + _PHYSICAL_START + offset
    return KallsymsLocations({**find_kallsyms_tables(prog.read, stext), "_stext": stext}, True)


def kallsyms_table(prog: drgn.Program) -> Optional[KallsymsTable]:
    """The core kernel's kallsyms, searched in place (built once per
    program: symbolizing callers and re-encoding the offsets for drgn share
    it), or None when they cannot be found (:func:`kallsyms_locations`)."""
    if "kcoretool_kallsyms_table" not in prog.cache:
        table = None
        try:
            found = kallsyms_locations(prog)
            table = KallsymsTable(prog.read, found.tables, long_names=not found.found_in_image)
        except (LookupError, ValueError, drgn.FaultError, CoreFormatError):
            table = None
        prog.cache["kcoretool_kallsyms_table"] = table
    return prog.cache["kcoretool_kallsyms_table"]


#: CONFIG_PHYSICAL_START on x86-64 (16 MiB): where _stext is without KASLR
_PHYSICAL_START = 0x1000000


def load_kallsyms(prog: drgn.Program) -> Tuple[drgn.SymbolIndex, str]:
    """
    The core kernel's kallsyms and where they came from: ``/proc/kallsyms``
    when live as root, else the in-memory tables (:func:`kallsyms_locations`).

    :raises LookupError, ValueError, OSError, drgn.FaultError: not available.
    """
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

    live_root = bool(prog.flags & drgn.ProgramFlags.IS_LIVE) and os.geteuid() == 0
    if live_root:
        return load_vmlinux_kallsyms(prog), "/proc/kallsyms"
    found = kallsyms_locations(prog)
    if not found.found_in_image and "kallsyms_relative_base" in found.tables:
        return load_vmlinux_kallsyms(prog), "kernel memory"
    # drgn decodes tables at the addresses it is given (its own loader only
    # takes them from VMCOREINFO); _stext tells it how offsets are encoded.
    from _drgn import _linux_helper_load_builtin_kallsyms  # type: ignore[import-not-found]

    t = dict(found.tables)
    if "kallsyms_relative_base" not in t:
        t.update(_relative_offsets(prog))
    stext = t.get("_stext") or _symbol_stext(prog)
    index = _linux_helper_load_builtin_kallsyms(
        prog, t["kallsyms_names"], t["kallsyms_token_table"], t["kallsyms_token_index"],
        t["kallsyms_num_syms"], t["kallsyms_offsets"], t["kallsyms_relative_base"], 0, stext)
    return index, "kernel memory (tables found in the image)" if found.found_in_image else "kernel memory"


#: where kcoretool puts the tables it rewrites for drgn's kallsyms loader: a
#: non-canonical address, which no kernel pointer is
_REWRITTEN_AT = 0x0000_C000_0000_0000


def _relative_offsets(prog: drgn.Program) -> Dict[str, int]:
    """v6.15+ stores kallsyms offsets PC-relative (each from its own slot;
    no ``kallsyms_relative_base``), which drgn's loader cannot decode: give
    it the same addresses as unsigned offsets from one base, in a memory
    segment of their own."""
    table = kallsyms_table(prog)
    if table is None:
        raise LookupError("the kallsyms tables VMCOREINFO names cannot be read")
    addrs = [table.address(i) for i in range(table.num)]
    base = min(addrs)
    if max(addrs) - base >= 1 << 32:
        raise ValueError("kallsyms addresses span 4 GiB or more")
    blob = struct.pack("<Q", base) + bytes(8) + array("I", [a - base for a in addrs]).tobytes()

    def read(address: int, count: int, offset: int, physical: bool) -> bytes:
        return blob[offset:offset + count]

    prog.add_memory_segment(_REWRITTEN_AT, len(blob), read, False)
    return {"kallsyms_relative_base": _REWRITTEN_AT, "kallsyms_offsets": _REWRITTEN_AT + 16}


def _symbol_stext(prog: drgn.Program) -> int:
    info = _vmcoreinfo(prog)
    stext = info.symbol("_stext") if info is not None else None
    if stext is None:
        raise LookupError("VMCOREINFO has no SYMBOL(_stext)")
    return stext


def use_kallsyms(prog: drgn.Program) -> Optional[drgn.SymbolIndex]:
    """Put kallsyms first among ``prog``'s symbol finders; None if the kernel has none we can read."""
    if KALLSYMS_FINDER in prog.registered_symbol_finders():
        return prog.cache.get("kcoretool_kallsyms")
    try:
        index, source = load_kallsyms(prog)
    except (ValueError, drgn.FaultError) as e:
        # there, but unreadable or nonsense: a damaged core, not a missing table
        prog.cache["kcoretool_kallsyms_damage"] = (
            f"cannot read kernel memory at {e.address:#x} ({e.message})" if isinstance(e, drgn.FaultError)
            else str(e))
        return None
    except (LookupError, OSError):
        return None
    prog.register_symbol_finder(KALLSYMS_FINDER, index, enable_index=0)
    prog.cache["kcoretool_kallsyms"] = index
    prog.cache["kcoretool_kallsyms_source"] = source
    return index


class KallsymsTable:
    """
    The core kernel's kallsyms tables, read where the kernel keeps them and
    searched the way ``kallsyms_lookup_size_offset()`` (kernel/kallsyms.c)
    searches them: a binary search over the sorted addresses, and only the
    names asked for decoded.  Opening it costs two reads (the offsets and
    the compressed names) and one pass over the names' length bytes; a
    lookup is a few dozen Python operations -- where loading every symbol
    (``load_vmlinux_kallsyms()``) decodes ~200,000 names.
    """

    def __init__(self, read: Callable[[int, int], bytes], sym: Mapping[str, int],
                 long_names: Optional[bool] = None) -> None:
        """
        :param read: reads kernel virtual memory.
        :param sym: the tables' addresses (:func:`kallsyms_locations`).
        :param long_names: name lengths over 127 take two bytes (73bbb94466fd,
            "kallsyms: support "big" kernel symbols", v6.1); default: when
            the tables came from VMCOREINFO (v6.0+, and no v6.0 kernel has a
            name that long); pass False for tables found in a pre-v6.0 image.
        :raises LookupError: a table is missing.
        """
        missing = [n for n in _TABLES if n not in sym]
        if missing:
            raise LookupError(f"no address for {missing[0]}")
        self._long = True if long_names is None else long_names
        self._read = read
        self.num = int.from_bytes(read(sym["kallsyms_num_syms"], 4), "little")
        if not 0 < self.num <= 1 << 24:
            raise ValueError(f"kallsyms_num_syms is {self.num}")
        offsets = array("i")
        offsets.frombytes(read(sym["kallsyms_offsets"], 4 * self.num))
        self._offsets = offsets
        # v6.15+: no kallsyms_relative_base; each offset is relative to its
        # own slot in kallsyms_offsets (PC-relative, as x86 code addresses).
        self._pcrel: Optional[int] = None if "kallsyms_relative_base" in sym else sym["kallsyms_offsets"]
        self._base = (int.from_bytes(read(sym["kallsyms_relative_base"], 8), "little")
                      if self._pcrel is None else 0)
        # CONFIG_KALLSYMS_ABSOLUTE_PERCPU (x86-64 SMP before v6.15): per-CPU
        # symbols are stored as absolute values and the rest as negative
        # offsets from relative_base - 1; without it every offset is an
        # unsigned distance from relative_base, below 2 GiB.
        self._absolute_percpu = self._pcrel is None and min(offsets) < 0
        self._names_addr: int = sym["kallsyms_names"]
        self._token_table: int = sym["kallsyms_token_table"]
        self._token_index: int = sym["kallsyms_token_index"]
        self._names: Optional[bytes] = None
        self._markers: List[int] = []
        self._tokens: Optional[List[str]] = None

    def address(self, i: int) -> int:
        """``kallsyms_sym_address(i)``."""
        off = self._offsets[i]
        if self._pcrel is not None:
            return (self._pcrel + 4 * i + off) & 0xFFFF_FFFF_FFFF_FFFF
        if not self._absolute_percpu:
            return self._base + (off & 0xFFFFFFFF)
        return off if off >= 0 else self._base - 1 - off

    def _position(self, addr: int) -> int:
        """``get_symbol_pos()``: the last symbol at or below ``addr``, moved
        back to the first of its aliases."""
        low, high = 0, self.num
        while high - low > 1:
            mid = (low + high) // 2
            if self.address(mid) <= addr:
                low = mid
            else:
                high = mid
        while low and self.address(low - 1) == self.address(low):
            low -= 1
        return low

    def lookup(self, addr: int) -> Optional[Tuple[str, int, int]]:
        """``(name, start, size)`` of the symbol ``%pS`` names for ``addr``,
        or None when ``addr`` is outside the core kernel's symbols (a module
        or BPF address, say: the kernel looks those up elsewhere)."""
        if not self.address(0) <= addr < self.address(self.num - 1):
            return None
        i = self._position(addr)
        start = self.address(i)
        if start > addr or start < START_KERNEL_MAP:
            return None  # below the image's first symbol, or a per-CPU offset
        end = next((a for a in (self.address(j) for j in range(i + 1, self.num)) if a > start), start)
        return self.name(i), start, end - start

    def names(self) -> Iterator[Tuple[str, str]]:
        """``(type letter, name)`` of every symbol, in table order."""
        names = self._load_names()
        tokens = self._load_tokens()
        long = self._long
        pos = 0
        for _ in range(self.num):
            n = names[pos]
            if n & 0x80 and long:
                n, pos = (n & 0x7F) | (names[pos + 1] << 7), pos + 2
            else:
                pos += 1
            text = "".join([tokens[b] for b in names[pos:pos + n]])
            pos += n
            yield text[:1], text[1:]

    def name(self, i: int) -> str:
        """Decode entry ``i`` of ``kallsyms_names`` (its type letter dropped)."""
        names = self._load_names()
        pos = self._markers[i >> 8]
        long = self._long
        for _ in range(i & 0xFF):
            n = names[pos]
            pos += ((n & 0x7F) | (names[pos + 1] << 7)) + 2 if n & 0x80 and long else n + 1
        n = names[pos]
        if n & 0x80 and long:  # v6.1+: lengths over 127 take two bytes
            n, pos = (n & 0x7F) | (names[pos + 1] << 7), pos + 2
        else:
            pos += 1
        tokens = self._load_tokens()
        return "".join(tokens[b] for b in names[pos:pos + n])[1:]

    def _load_names(self) -> bytes:
        """The compressed names, read in pieces up to the last entry, and the
        offset of every 256th entry (what ``kallsyms_markers`` holds)."""
        if self._names is None:
            # scripts/kallsyms.c lays the names out before the token table
            # (markers, and from v6.2 seqs_of_names, in between): one read.
            span = self._token_table - self._names_addr
            if not 0 < span <= 64 << 20:
                raise ValueError(f"kallsyms_names is {span:#x} bytes before kallsyms_token_table")
            names = self._read(self._names_addr, span)
            markers = self._markers
            pos = 0
            long = self._long
            try:
                for i in range(self.num):
                    if not i & 0xFF:
                        markers.append(pos)
                    n = names[pos]
                    pos += ((n & 0x7F) | (names[pos + 1] << 7)) + 2 if n & 0x80 and long else n + 1
            except IndexError:
                raise ValueError("kallsyms_names runs into kallsyms_token_table") from None
            self._names = names
        return self._names

    def _load_tokens(self) -> List[str]:
        if self._tokens is None:
            index = array("H")
            index.frombytes(self._read(self._token_index, 512))
            table = self._read(self._token_table, max(index) + 256)
            self._tokens = [table[o:table.index(b"\0", o)].decode("ascii", "replace") for o in index]
        return self._tokens


_TABLES = ("kallsyms_num_syms", "kallsyms_offsets", "kallsyms_names",
           "kallsyms_token_table", "kallsyms_token_index")
