"""
Errors
------

Every problem kcoretool reports to a user is a :class:`KcoreToolError`
whose message is one line: what went wrong, where, and how to fix it.
The CLI prints that line and exits 1; ``--debug`` adds the traceback.
"""

from __future__ import annotations

from typing import Optional

__all__ = (
    "AccessError",
    "AddressError",
    "ArgumentError",
    "CoreFormatError",
    "DebugInfoError",
    "KcoreToolError",
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
