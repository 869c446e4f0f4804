# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Caller names
------------

:class:`Symbolizer` names a caller address the way ``%pS`` does
(``name+0xoff/0xsize [module]``), once per distinct address.
"""

from __future__ import annotations

import bisect
from typing import Dict, List, Optional, Tuple

import drgn

from kcoretool.debuginfo.kallsyms import kallsyms_table

__all__ = ("Symbolizer",)


class Symbolizer:
    """
    ``%pS``-style names for caller addresses, once per distinct address.
    Core-kernel addresses are looked up in the kernel's own kallsyms tables
    the way ``%pS`` looks them up (:class:`KallsymsTable`: only the names
    asked for are decoded), so the text is the kernel's exactly, with DWARF
    or without.  A module's address is named from that module's own symbol
    table, read at its first caller.
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
        self._modules: Dict[int, Tuple[drgn.SymbolIndex, str]] = {}
        self._bpf: Optional[List[Tuple[int, int, str]]] = None

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
        """A module's address: that module's own symbol table (its kallsyms,
        read on its first caller), or -- with no kallsyms table for the core
        kernel -- whatever symbols ``prog`` has."""
        found = self._module_symbol(addr)
        bpf = self._bpf_symbol(addr) if found is None else None
        if bpf is not None:
            # __bpf_address_lookup(): the ksym's name, size end - start, no module
            name, start, end = bpf
            return (name, addr - start), f"{name}+{addr - start:#x}/{end - start:#x}"
        if found is not None:
            index, module = found
            syms = index(self.prog, None, addr, True)
        else:
            index, module = None, None
            try:
                syms = [self.prog.symbol(addr)]
            except (LookupError, ValueError, OverflowError):
                syms = []
        if not syms:
            return None, None
        s = syms[0]
        off = addr - s.address
        size = self._kallsyms_size(s, index) if self.kallsyms_size else s.size
        text = f"{s.name}+{off:#x}/{size:#x}" + (f" [{module}]" if module else "")
        return (s.name, off), text

    def _bpf_symbol(self, addr: int) -> Optional[Tuple[str, int, int]]:
        """``(name, start, end)`` of the BPF ksym (JIT'd program, trampoline,
        dispatcher) holding ``addr``, as ``%pS`` finds it after the modules."""
        if self._bpf is None:
            from kcoretool.kernel.execmem import ExecReader
            from kcoretool.kernel.walk import WalkLog

            try:
                syms = ExecReader(self.prog).bpf_symbols(WalkLog())
            except (LookupError, ValueError, drgn.FaultError):
                syms = []
            self._bpf = sorted((s.start, s.end, s.name) for s in syms if s.ksym and s.end > s.start)
        i = bisect.bisect_right(self._bpf, (addr, 1 << 64, "")) - 1
        if i >= 0 and self._bpf[i][0] <= addr < self._bpf[i][1]:
            start, end, name = self._bpf[i]
            return name, start, end
        return None

    def _module_symbol(self, addr: int) -> Optional[Tuple[drgn.SymbolIndex, str]]:
        """``(symbol index of the module holding addr, its name)``."""
        from drgn.helpers.linux.kallsyms import module_kallsyms
        from drgn.helpers.linux.module import address_to_module

        try:
            mod = address_to_module(self.prog, addr)
            if not mod:
                return None
            key = mod.value_()
            if key not in self._modules:
                self._modules[key] = (drgn.SymbolIndex(module_kallsyms(mod)), mod.name.string_().decode())
        except (LookupError, ValueError, drgn.FaultError):
            return None
        return self._modules[key]

    def _kallsyms_size(self, s: drgn.Symbol, index: Optional[drgn.SymbolIndex]) -> int:
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
                if index is not None:
                    found = index(self.prog, None, probe, True)
                    x = found[0] if found else None
                else:
                    x = self.prog.symbol(probe)
            except (LookupError, ValueError, OverflowError):
                x = None
            if x is not None and x.address > s.address:
                return x.address - s.address
            probe = (probe | 15) + 1
            if probe - end > 256:
                break
        return s.size
