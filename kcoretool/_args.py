# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The API's arguments, as drgn's helpers take them
------------------------------------------------

An address, size or pid is anything with ``__index__`` -- a Python int or a
:class:`drgn.Object` of integer or pointer type (``va.va_start``,
``prog["init_task"].address_of_()``) -- and a task is a pid or a
``struct task_struct *``. Anything else is the caller's mistake:
:class:`~kcoretool.errors.ArgumentError`, naming the parameter, never a
message about the dump.
"""

from __future__ import annotations

import operator
from typing import Any

from kcoretool.errors import ArgumentError

__all__ = ("as_address", "as_count", "as_pid")


def _index(value: Any, param: str, what: str) -> int:
    if isinstance(value, bool):
        raise ArgumentError(f"{param}={value!r}: not {what}")
    try:
        return operator.index(value)
    except (TypeError, ValueError) as e:  # a drgn Object of a type with no integer value
        raise ArgumentError(f"{param}={value!r}: not {what} (an int, or a drgn Object of integer or "
                            f"pointer type){_why(e)}") from None


def _why(e: Exception) -> str:
    return f": {e}" if e.args and not str(e).startswith("'") else ""


def as_address(value: Any, param: str = "address") -> int:
    """``value`` as a 64-bit address."""
    n = _index(value, param, "an address")
    if not 0 <= n < 1 << 64:
        raise ArgumentError(f"{param}={n:#x}: not a 64-bit address")
    return n


def as_count(value: Any, param: str) -> int:
    """``value`` as a size or count of 0 or more."""
    n = _index(value, param, "a number of bytes")
    if n < 0:
        raise ArgumentError(f"{param}={n}: must be 0 or more")
    return n


def as_pid(value: Any, param: str = "pid") -> int:
    """A pid from an int-like or a ``struct task_struct *`` (or ``struct
    task_struct``) drgn Object."""
    t = getattr(value, "type_", None)
    if t is not None:
        import drgn

        ut = t.unqualified()
        target = ut.type.unqualified() if ut.kind == drgn.TypeKind.POINTER else ut
        if target.kind == drgn.TypeKind.STRUCT and target.tag == "task_struct":
            try:
                return int(value.pid.value_())
            except drgn.FaultError as e:
                raise ArgumentError(f"{param}: the task_struct at {e.address:#x} cannot be read") from None
    n = _index(value, param, "a pid or a struct task_struct *")
    if n < 0:
        raise ArgumentError(f"{param}={n}: not a pid")
    return n
