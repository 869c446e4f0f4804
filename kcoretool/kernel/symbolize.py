# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Caller names
------------

:class:`Symbolizer` names a caller address the way ``%pS`` does
(``name+0xoff/0xsize [module]``), once per distinct address.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import drgn

from kcoretool.debuginfo.kallsyms import KallsymsTable
from kcoretool.errors import CoreFormatError
from kcoretool.kernel.program import load_module_symbols, vmcoreinfo_of

__all__ = ("Symbolizer", "kallsyms_table")


def kallsyms_table(prog: drgn.Program) -> Optional[KallsymsTable]:
    """The core kernel's kallsyms, searched in place (built once per
    program), or None when VMCOREINFO does not point at them (before v6.0)."""
    if "kcoretool_kallsyms_table" not in prog.cache:
        info = vmcoreinfo_of(prog)
        table = None
        if info is not None:
            try:
                table = KallsymsTable(prog.read, info)
            except (LookupError, ValueError, drgn.FaultError, CoreFormatError):
                table = None
        prog.cache["kcoretool_kallsyms_table"] = table
    return prog.cache["kcoretool_kallsyms_table"]


class Symbolizer:
    """
    ``%pS``-style names for caller addresses, once per distinct address.
    Core-kernel addresses are looked up in the kernel's own kallsyms tables
    the way ``%pS`` looks them up (:class:`KallsymsTable`: only the names
    asked for are decoded), so the text is the kernel's exactly, with DWARF
    or without.  Other addresses (modules) go through ``prog.symbol()``,
    whose module symbols are loaded on the first such caller.
    """

    def __init__(self, prog: drgn.Program, kallsyms_size: bool = False) -> None:
        """
        :param kallsyms_size: for addresses outside the core kernel, print
            the size the way ``%pS`` does (distance to the next symbol, found
            by probing -- 1 to 3 more ``prog.symbol()`` calls) instead of the
            symbol's own size.
        """
        self.prog = prog
        self.kallsyms_size = kallsyms_size
        self._cache: Dict[int, Optional[str]] = {}
        self._sym: Dict[int, Optional[Tuple[str, int]]] = {}
        self._table = kallsyms_table(prog)

    def symbol(self, addr: int) -> Optional[Tuple[str, int]]:
        """``(name, offset)`` or None."""
        r = self._sym.get(addr, ())
        if r != ():
            return r  # type: ignore[return-value]
        self.__call__(addr)
        return self._sym.get(addr)

    def __call__(self, addr: int) -> Optional[str]:
        try:
            return self._cache[addr]
        except KeyError:
            pass
        text = None
        sym = None
        hit = self._table.lookup(addr) if addr and self._table is not None else None
        if hit is not None:
            name, start, size = hit
            sym = (name, addr - start)
            text = f"{name}+{addr - start:#x}/{size:#x}"
        elif addr:
            sym, text = self._elsewhere(addr)
        self._cache[addr] = text
        self._sym[addr] = sym
        return text

    def _elsewhere(self, addr: int) -> Tuple[Optional[Tuple[str, int]], Optional[str]]:
        """A module's (or, with no kallsyms table, any) address, through drgn."""
        load_module_symbols(self.prog)
        try:
            s = self.prog.symbol(addr)
        except (LookupError, ValueError, OverflowError):
            return None, None
        off = addr - s.address
        size = self._kallsyms_size(s) if self.kallsyms_size else s.size
        text = f"{s.name}+{off:#x}/{size:#x}"
        mod = self._module_name(addr)
        if mod:
            text += f" [{mod}]"
        return (s.name, off), text

    def _kallsyms_size(self, s: drgn.Symbol) -> int:
        """
        The size ``%pS`` prints: kallsyms has no sizes and reports the
        distance to the next symbol (alignment padding included), where the
        ELF symbol table has the exact size. Probe just past the end for the
        next symbol; fall back to the ELF size.
        """
        end = s.address + s.size
        # Functions are 16-byte aligned: start where the next one most
        # likely begins, so the first probe usually hits.
        probe = (end + 15) & ~15
        # prog.symbol() reuses the index the caller lookup already built
        # (the first prog.symbols() call would build a second one).
        for _ in range(17):
            try:
                x = self.prog.symbol(probe)
            except (LookupError, ValueError, OverflowError):
                x = None
            if x is not None and x.address > s.address:
                return x.address - s.address
            probe = (probe | 15) + 1
            if probe - end > 256:
                break
        return s.size

    def _module_name(self, addr: int) -> Optional[str]:
        try:
            m = self.prog.module(addr)
        except (LookupError, ValueError, AttributeError):
            return None
        if isinstance(m, drgn.RelocatableModule):
            return m.name
        return None
