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

import os
from array import array
from typing import Callable, List, Optional, Tuple

import drgn

from kcoretool.source.vmcoreinfo import VmcoreInfo
from kcoretool.x86_64 import START_KERNEL_MAP

__all__ = ("KALLSYMS_FINDER", "KallsymsTable", "load_kallsyms", "use_kallsyms")

KALLSYMS_FINDER = "kcoretool-kallsyms"


def load_kallsyms(prog: drgn.Program) -> Tuple[drgn.SymbolIndex, str]:
    """
    The core kernel's kallsyms and where they came from: ``/proc/kallsyms``
    when live as root, else the in-memory tables VMCOREINFO points at
    (5fd8fea935a1, "vmcoreinfo: include kallsyms symbols", v6.0).

    :raises LookupError, ValueError, OSError, drgn.FaultError: not available.
    """
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

    index = load_vmlinux_kallsyms(prog)
    live_root = bool(prog.flags & drgn.ProgramFlags.IS_LIVE) and os.geteuid() == 0
    return index, "/proc/kallsyms" if live_root else "kernel memory"


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

    def __init__(self, read: Callable[[int, int], bytes], info: VmcoreInfo) -> None:
        """
        :param read: reads kernel virtual memory.
        :param info: VMCOREINFO with the kallsyms SYMBOL()s (v6.0+).
        :raises LookupError: VMCOREINFO lacks them.
        """
        sym = {name: info.symbol(name) for name in _TABLES}
        missing = [n for n, a in sym.items() if a is None]
        if missing:
            raise LookupError(f"VMCOREINFO has no SYMBOL({missing[0]})")
        self._read = read
        self.num = int.from_bytes(read(sym["kallsyms_num_syms"], 4), "little")  # type: ignore[arg-type]
        if not 0 < self.num <= 1 << 24:
            raise ValueError(f"kallsyms_num_syms is {self.num}")
        self._base = int.from_bytes(read(sym["kallsyms_relative_base"], 8), "little")  # type: ignore[arg-type]
        offsets = array("i")
        offsets.frombytes(read(sym["kallsyms_offsets"], 4 * self.num))  # type: ignore[arg-type]
        self._offsets = offsets
        # CONFIG_KALLSYMS_ABSOLUTE_PERCPU (x86-64 SMP before v6.15): per-CPU
        # symbols are stored as absolute values and the rest as negative
        # offsets from relative_base - 1; without it every offset is an
        # unsigned distance from relative_base, below 2 GiB.
        self._absolute_percpu = min(offsets) < 0
        self._names_addr: int = sym["kallsyms_names"]  # type: ignore[assignment]
        self._token_table: int = sym["kallsyms_token_table"]  # type: ignore[assignment]
        self._token_index: int = sym["kallsyms_token_index"]  # type: ignore[assignment]
        self._names: Optional[bytes] = None
        self._markers: List[int] = []
        self._tokens: Optional[List[str]] = None

    def address(self, i: int) -> int:
        """``kallsyms_sym_address(i)``."""
        off = self._offsets[i]
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

    def name(self, i: int) -> str:
        """Decode entry ``i`` of ``kallsyms_names`` (its type letter dropped)."""
        names = self._load_names()
        pos = self._markers[i >> 8]
        for _ in range(i & 0xFF):
            n = names[pos]
            pos += ((n & 0x7F) | (names[pos + 1] << 7)) + 2 if n & 0x80 else n + 1
        n = names[pos]
        if n & 0x80:  # v6.1+: lengths over 127 take two bytes
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
            try:
                for i in range(self.num):
                    if not i & 0xFF:
                        markers.append(pos)
                    n = names[pos]
                    pos += ((n & 0x7F) | (names[pos + 1] << 7)) + 2 if n & 0x80 else n + 1
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


_TABLES = ("kallsyms_num_syms", "kallsyms_relative_base", "kallsyms_offsets", "kallsyms_names",
           "kallsyms_token_table", "kallsyms_token_index")
