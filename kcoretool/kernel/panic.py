# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Whether the kernel was panicking, and why
-----------------------------------------

``panic()`` (kernel/panic.c) claims ``panic_cpu`` -- an ``atomic_t`` that
holds ``PANIC_CPU_INVALID`` (-1) until a CPU panics -- before it prints
``Kernel panic - not syncing: <reason>`` and starts the crash kernel; a
dump saved by kdump after a panic has it set, a dump of a running kernel
(QEMU's ``dump-guest-memory``, makedumpfile on /proc/kcore) does not.
Read by symbol, so BTF and DWARF take the same path.  The reason is in
the printk ring buffer, which drgn's helper reads through the log's
global variables: typed by the vmlinux's DWARF, or with BTF by
kcoretool's own table (kernel/globals.py: ``prb``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple

if TYPE_CHECKING:
    import drgn

__all__ = ("PANIC_PREFIX", "panic_state")

PANIC_PREFIX = "Kernel panic - not syncing: "


def panic_state(prog: drgn.Program) -> Tuple[Optional[bool], Optional[str]]:
    """``(panicking, reason)``: None where the dump cannot say (no
    ``panic_cpu`` symbol, its page missing; no readable log)."""
    import drgn

    try:
        raw = prog.read_u32(prog.symbol("panic_cpu").address)
    except (LookupError, drgn.FaultError):
        return None, None
    if raw == 0xFFFFFFFF:  # PANIC_CPU_INVALID
        return False, None
    return True, _reason(prog)


def _reason(prog: drgn.Program) -> Optional[str]:
    try:
        from drgn.helpers.linux.printk import get_printk_records

        records = get_printk_records(prog)
    except Exception:  # no log types (BTF), a damaged ring: the reason is unknown, not an error
        return None
    for rec in reversed(records):
        text = rec.text.decode("utf-8", "replace")
        if text.startswith(PANIC_PREFIX):
            return text[len(PANIC_PREFIX):].strip() or None
    return None
