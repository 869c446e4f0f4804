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
from typing import Optional, Tuple

import drgn

__all__ = ("KALLSYMS_FINDER", "load_kallsyms", "use_kallsyms")

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
    except (LookupError, ValueError, OSError, drgn.FaultError):
        return None
    prog.register_symbol_finder(KALLSYMS_FINDER, index, enable_index=0)
    prog.cache["kcoretool_kallsyms"] = index
    prog.cache["kcoretool_kallsyms_source"] = source
    return index
