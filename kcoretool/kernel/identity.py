# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Which boot, and when
--------------------

What tells two states of "the same" kernel apart: the boot id the kernel
keeps for ``/proc/sys/kernel/random/boot_id`` and its wall clock.  Both are
read from the kernel's memory so a vmcore answers as the live kernel did.
Nothing here raises for a missing symbol: the answer is then ``None`` and a
reason.
"""

from __future__ import annotations

from typing import Optional, Tuple

import drgn

__all__ = ("BOOT_ID_PATH", "boot_id", "format_uuid", "ktime_get_real_seconds")

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
UUID_SIZE = 16


def format_uuid(b: bytes) -> str:
    """``%pU`` (big-endian byte order), as proc_do_uuid() prints it."""
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _is_live(prog: drgn.Program) -> bool:
    return bool(prog.flags & drgn.ProgramFlags.IS_LIVE)


def sysctl_bootid(prog: drgn.Program) -> Tuple[Optional[str], str]:
    """
    drivers/char/random.c's ``static u8 sysctl_bootid[16]`` (a ``char[16]``
    before 5.18; same bytes).  proc_do_uuid() fills it on the first read of
    boot_id and only then: generate_random_uuid() sets the variant bits, so
    byte 8 is never 0 once generated.  A zero byte 8 means nothing read
    boot_id on that boot (no systemd, for one) and the id does not exist.
    """
    try:
        addr = prog.symbol("sysctl_bootid").address
    except LookupError:
        return None, "unknown: the kernel has no sysctl_bootid symbol (no CONFIG_SYSCTL or no kallsyms data symbols)"
    try:
        raw = prog.read(addr, UUID_SIZE)
    except drgn.FaultError:
        return None, "unknown: sysctl_bootid is not in the dump"
    if raw[8] == 0:
        return None, "unknown: never generated on that boot (nothing read /proc/sys/kernel/random/boot_id)"
    return format_uuid(raw), "sysctl_bootid in kernel memory"


def boot_id(prog: drgn.Program) -> Tuple[Optional[str], str]:
    """``(uuid or None, where it came from or why it is unknown)``.  Live:
    the proc file (reading it generates the id, as systemd's first read
    does); otherwise the kernel's memory."""
    if _is_live(prog):
        try:
            with open(BOOT_ID_PATH) as f:
                return f.read().strip(), BOOT_ID_PATH
        except OSError:
            pass
    return sysctl_bootid(prog)


def _timekeeper_offset(prog: drgn.Program) -> int:
    """Where the core timekeeper sits in ``tk_core``: ``struct tk_data``'s
    member from 6.13; before, tk_core's type is an anonymous struct only
    DWARF names, so the offset follows the C layout that struct shares with
    tk_data -- the sequence counter first, rounded up to the timekeeper's
    8-byte alignment."""
    try:
        return drgn.offsetof(prog.type("struct tk_data"), "timekeeper")
    except LookupError:
        seq = prog.type("seqcount_raw_spinlock_t")
        return (drgn.sizeof(seq) + 7) // 8 * 8


def ktime_get_real_seconds(prog: drgn.Program) -> Optional[int]:
    """
    The wall clock when the memory was saved: the core timekeeper's
    ``xtime_sec`` (kernel/time/timekeeping.c; ktime_get_real_seconds()
    returns it).  The core timekeeper is in ``tk_core`` (static), or in
    element 0 of ``timekeeper_data[]`` once auxiliary clocks came (6.17).
    Read by symbol and offsets, so DWARF and BTF take the same path.
    """
    for name in ("tk_core", "timekeeper_data"):
        try:
            addr = prog.symbol(name).address
            tk = prog.type("struct timekeeper")
            off = _timekeeper_offset(prog) + drgn.offsetof(tk, "xtime_sec")
            return int(prog.read_u64(addr + off))
        except (LookupError, drgn.FaultError, ValueError, TypeError):
            continue
    return None
