"""
Errors
------

Every problem kcoretool reports to a user is a :class:`KcoreToolError`
whose message is one line: what went wrong, where, and how to fix it.
The CLI prints that line and exits 1; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import sys
from typing import Optional

__all__ = (
    "AccessError",
    "AddressError",
    "ArgumentError",
    "KernelDataError",
    "CoreFormatError",
    "DebugInfoError",
    "KcoreToolError",
    "translate",
)


class KcoreToolError(Exception):
    """Base class of every error kcoretool raises on purpose."""


class CoreFormatError(KcoreToolError):
    """The file is not a core kcoretool can read, or it is damaged."""


class AccessError(KcoreToolError):
    """The core exists but cannot be opened (permissions, lockdown, missing)."""


class DebugInfoError(KcoreToolError):
    """No debug info (vmlinux with DWARF) matching the kernel was found."""


class AddressError(KcoreToolError):
    """An address (virtual or physical) that the core does not cover."""

    def __init__(self, message: str, address: Optional[int] = None, state: Optional[str] = None) -> None:
        super().__init__(message)
        self.address = address
        #: the page state a reader reports for it ("truncated"), if not the default
        self.state = state


class ArgumentError(KcoreToolError, ValueError):
    """An API call's argument is wrong (an unknown kind, a negative size);
    the message is the one the CLI gives for the same option."""


class KernelDataError(KcoreToolError):
    """Kernel data could not be read or makes no sense -- drgn's
    ``FaultError`` over a page the core lacks, a value out of range, a
    structure that loops: a damaged or incomplete core. The original
    exception is ``__cause__``."""


def translate(e: BaseException) -> Optional[KcoreToolError]:
    """The :class:`KcoreToolError` for an exception that damaged input
    raises below kcoretool (drgn's errors, ``OverflowError``,
    ``RecursionError``), or None for anything else."""
    drgn = sys.modules.get("drgn")  # never imported here: only its errors are recognised
    if drgn is not None:
        if isinstance(e, drgn.FaultError):
            return KernelDataError(f"cannot read kernel memory at {e.address:#x} ({e.message}): the core is "
                                   "damaged or lacks that page")
        if isinstance(e, drgn.MissingDebugInfoError):
            return DebugInfoError(f"missing debug info: {e}")
        if type(e).__module__ in ("_drgn", "drgn") or isinstance(e, getattr(drgn, "ObjectAbsentError", ())):
            return KernelDataError(f"drgn cannot interpret the core: {e}")
    if isinstance(e, OverflowError):
        return KernelDataError(f"a value in the core is out of range ({e}): the core is damaged")
    if isinstance(e, RecursionError):
        return KernelDataError("kernel structures loop or nest too deep: the core is damaged")
    if type(e) is Exception and drgn is not None:
        # drgn's plain Exception for a VMCOREINFO it cannot parse, for one.
        return KernelDataError(f"drgn cannot interpret the core: {e}")
    return None
