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

__all__ = ("Symbolizer",)


class Symbolizer:
    """
    ``%pS``-style names for caller addresses, cached per distinct address
    (``prog.symbol()`` costs about a millisecond per call on a real kernel).
    By default the size is the ELF symbol size; ``kallsyms_size=True``
    reproduces ``%pS`` exactly.
    """

    def __init__(self, prog: drgn.Program, kallsyms_size: bool = False) -> None:
        """
        :param kallsyms_size: print the size the way ``%pS`` does (distance
            to the next symbol, found by probing -- 1 to 3 more
            ``prog.symbol()`` calls per caller, about 1 ms each on a real
            kernel) instead of the ELF symbol size.
        """
        self.prog = prog
        self.kallsyms_size = kallsyms_size
        self._cache: Dict[int, Optional[str]] = {}
        self._sym: Dict[int, Optional[Tuple[str, int]]] = {}

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
        if addr:
            try:
                s = self.prog.symbol(addr)
            except (LookupError, ValueError, OverflowError):
                s = None
            if s is not None:
                off = addr - s.address
                sym = (s.name, off)
                size = self._kallsyms_size(s) if self.kallsyms_size else s.size
                text = f"{s.name}+{off:#x}/{size:#x}"
                mod = self._module_name(addr)
                if mod:
                    text += f" [{mod}]"
        self._cache[addr] = text
        self._sym[addr] = sym
        return text

    def _kallsyms_size(self, s: "drgn.Symbol") -> int:
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
