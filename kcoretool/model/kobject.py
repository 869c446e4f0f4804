# SPDX-License-Identifier: LGPL-2.1-or-later
"""
A record's kernel struct as a drgn Object
-----------------------------------------

Every model record that mirrors a kernel struct (an area, a vm_struct, a
vmap block, a task, a VMA, a BPF program or pack) has ``object(prog=None)``:
``(struct T *)address`` in ``prog``, or in drgn's default program (the drgn
CLI sets it; a script, :func:`drgn.set_default_prog`) -- the way drgn's
own helpers default ``prog``.
"""

from __future__ import annotations

from typing import Any, Optional

from kcoretool.errors import ArgumentError

__all__ = ("kernel_object",)


def kernel_object(prog: Any, type_name: str, address: Optional[int], what: str) -> Any:
    """``(type_name)address`` in ``prog`` (None: drgn's default program).

    :raises ArgumentError: no address (a synthetic or snapshot-only record),
        no program, or a program without the kernel's types."""
    import drgn

    if address is None:
        raise ArgumentError(f"this {what} has no struct address (a synthetic or snapshot-only entry)")
    if prog is None:
        try:
            prog = drgn.get_default_prog()
        except drgn.NoDefaultProgramError:
            raise ArgumentError(f"{what}.object(): pass prog (the drgn.Program this model came from), "
                                "or set drgn's default program (drgn.set_default_prog)") from None
    if not isinstance(prog, drgn.Program):
        raise ArgumentError(f"prog={type(prog).__name__}: {what}.object() takes a drgn.Program")
    try:
        t = prog.type(type_name)
    except LookupError:
        raise ArgumentError(f"prog has no type {type_name!r}: pass the drgn.Program of the kernel this "
                            f"{what} came from (kcoretool.from_program(prog) or Kernel.prog)") from None
    return drgn.Object(prog, t, address)
