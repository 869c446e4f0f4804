"""
Errors
------

Every problem kcoretool reports to a user is a :class:`KcoreToolError`
whose message is one line: what went wrong, where, and how to fix it.
Messages speak the API's words (``vmlinux=``, ``Kernel.tasks()``); the
CLI prints that line in its own (``--vmlinux``) and exits 1.
"""

from __future__ import annotations

import errno
import sys
from typing import Optional

__all__ = (
    "AccessError",
    "AddressError",
    "ArgumentError",
    "KernelDataError",
    "CoreFormatError",
    "LayoutError",
    "DebugInfoError",
    "KcoreToolError",
    "UNEXPECTED",
    "one_line",
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
    the message names the parameter as the API spells it."""


class KernelDataError(KcoreToolError):
    """Kernel data could not be read or makes no sense -- drgn's
    ``FaultError`` over a page the core lacks, a value out of range, a
    structure that loops: a damaged or incomplete core. The original
    exception is ``__cause__``."""


class LayoutError(KcoreToolError):
    """The kernel's structures differ from every layout kcoretool knows --
    a kernel too new (or too old, or built oddly), not a damaged dump.
    ``what`` names the struct, member or value; ``release`` the kernel."""

    def __init__(self, what: str, release: Optional[str] = None, layout: str = "") -> None:
        self.what = what
        self.release = release
        self.layout = layout
        super().__init__(self._text())

    def _text(self) -> str:
        kind = f"{self.layout} layout" if self.layout else "layout"
        return (f"kcoretool does not know this kernel's {kind} ({self.release or 'release unknown'}): "
                f"{self.what} -- please report (the traceback shows where)")

    def for_release(self, release: Optional[str]) -> LayoutError:
        """The same error naming ``release`` (the API knows it; the walk did not)."""
        if self.release is None and release:
            self.release = release
            self.args = (self._text(),)
        return self


def _where(e: BaseException) -> str:
    """The innermost kcoretool function the exception passed through."""
    tb = e.__traceback__
    where = ""
    while tb is not None:
        mod = tb.tb_frame.f_globals.get("__name__", "")
        if mod.startswith("kcoretool."):
            where = f"{mod}.{tb.tb_frame.f_code.co_name}"
        tb = tb.tb_next
    return where


def translate(e: BaseException, release: Optional[str] = None) -> Optional[KcoreToolError]:
    """The :class:`KcoreToolError` for an exception raised below kcoretool:
    a damaged dump (drgn's ``FaultError`` names the address it could not
    read; ``RecursionError``: structures that loop), or a layout kcoretool
    does not know (``OverflowError``: a value kcoretool's walks cannot use,
    which damaged values never reach -- every walk bounds-checks what it
    reads -- so it names the walk, not the dump); None for anything else."""
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
        where = _where(e)
        return LayoutError(f"a value out of range ({e})" + (f" in {where}" if where else ""), release)
    if isinstance(e, RecursionError):
        return KernelDataError("kernel structures loop or nest too deep: the core is damaged")
    if type(e) is Exception and drgn is not None:
        # drgn's plain Exception for a VMCOREINFO it cannot parse, for one.
        return KernelDataError(f"drgn cannot interpret the core: {e}")
    return None


#: what a message starts with when kcoretool did not expect the error at all
UNEXPECTED = "unexpected error"


def one_line(e: BaseException, where_hint: str = "the traceback shows where") -> str:
    """The message for ``e``, one line, without the ``kcoretool:`` prefix;
    ``where_hint`` ends the line of an error kcoretool did not expect (the
    CLI says ``--debug shows where``)."""
    if isinstance(e, KcoreToolError):
        text = str(e)
    elif isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        if e.errno == errno.ENOSPC:
            text = f"{where}no space left on device; the output is incomplete"
        elif e.errno == errno.EBADF:
            text = "an output stream is closed"
        else:
            text = f"{where}{e.strerror or e}"
    else:
        known = translate(e)
        if known is not None:
            text = str(known)
        elif isinstance(e, MemoryError):
            text = f"out of memory: the input asks for more than this machine has (a damaged core?); {where_hint}"
        elif type(e) is Exception:
            text = f"drgn cannot interpret the core: {e}"
        else:
            text = f"{UNEXPECTED} {type(e).__name__}: {e} -- a kcoretool bug or a damaged core; {where_hint}"
    return " ".join(text.split()) or type(e).__name__
