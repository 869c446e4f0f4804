# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Where the kernel's types and symbols come from
----------------------------------------------

:func:`plan_debuginfo` decides, from files on disk and the core's VMCOREINFO
alone (no drgn, so ``info`` stays fast), whether kcoretool will use DWARF
from a vmlinux or the kernel's own BTF plus kallsyms, and says why.
:func:`kcoretool.kernel.open_program` carries the plan out.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional, Tuple

from kcoretool.errors import DebugInfoError
from kcoretool.source.vmcoreinfo import VmcoreInfo

__all__ = (
    "BTF_SYSFS",
    "DEBUGINFO_MODES",
    "DebugInfoPlan",
    "debug_info_candidates",
    "install_hint",
    "plan_debuginfo",
)

DEBUGINFO_MODES = ("auto", "dwarf", "btf")
BTF_SYSFS = "/sys/kernel/btf/vmlinux"

# What drgn's load_vmlinux_kallsyms() needs from VMCOREINFO: 5fd8fea935a1
# ("vmcoreinfo: include kallsyms symbols", v6.0) added them.
_KALLSYMS_SYMBOLS = ("kallsyms_names", "kallsyms_token_table", "kallsyms_token_index", "kallsyms_num_syms")


def debug_info_candidates(release: str) -> List[str]:
    """The standard places a vmlinux with DWARF for ``release`` lives, in order."""
    return [
        f"/usr/lib/debug/boot/vmlinux-{release}",
        f"/boot/vmlinux-{release}",
        f"/lib/modules/{release}/build/vmlinux",
        f"/usr/lib/debug/lib/modules/{release}/vmlinux",
    ]


def install_hint(release: str) -> str:
    """What to install to get debug info, as one sentence."""
    return (
        f"install linux-image-{release}-dbg (Debian/Ubuntu) or "
        f"kernel-debuginfo-{release} (Fedora/RHEL), or pass vmlinux="
    )


@dataclasses.dataclass(frozen=True)
class DebugInfoPlan:
    """Which type and symbol source kcoretool uses, and why."""

    #: what the user asked for: ``auto``, ``dwarf`` or ``btf``.
    mode: str
    #: ``dwarf`` or ``btf``.
    kind: str
    #: where from: a vmlinux path, ``/sys/kernel/btf/vmlinux`` or
    #: ``kernel memory``; None for DWARF left to drgn's own search.
    source: Optional[str]
    #: one phrase, e.g. "no vmlinux for 6.12.117+deb12-amd64 in the standard places".
    reason: str
    #: vmlinux files to try, in order (DWARF only).
    dwarf_paths: Tuple[str, ...] = ()
    #: for ``auto`` with DWARF files: where BTF is, if they do not match.
    btf_fallback: Optional[str] = None

    def describe(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return f"{self.kind.upper()}{where} ({self.reason})"

    def to_dict(self) -> Dict[str, Optional[str]]:
        return {"mode": self.mode, "kind": self.kind, "source": self.source, "reason": self.reason}


def btf_available(live: bool, vmcoreinfo: Optional[VmcoreInfo]) -> Optional[str]:
    """Where the kernel's BTF can be read from, or None."""
    if live and os.path.exists(BTF_SYSFS):
        return BTF_SYSFS
    if vmcoreinfo is not None and all(vmcoreinfo.symbol(s) is not None for s in _KALLSYMS_SYMBOLS):
        return "kernel memory"
    # Before v6.0 the kallsyms tables are found in the image by their
    # structure (kallsyms_find.py), from _stext: KERNELOFFSET locates it.
    if vmcoreinfo is not None and (vmcoreinfo.kernel_offset is not None or vmcoreinfo.symbol("_stext")):
        return "kernel memory"
    return None


def vmlinux_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot give DWARF, judged from its headers alone, or None
    (whether it matches the kernel is known only once drgn loads it)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return "no such file"
    except IsADirectoryError:
        return "is a directory"
    except OSError as e:
        return f"cannot read it ({e.strerror or e})"
    with f:
        if f.read(4) != b"\x7fELF":
            return "not an ELF file"
        try:
            from elftools.elf.elffile import ELFFile

            names = {sec.name for sec in ELFFile(f).iter_sections()}
        except Exception:
            return "a damaged ELF file"
    if ".debug_info" not in names:
        return "an ELF file without .debug_info (stripped; the -dbg/-debuginfo package has it)"
    return None


def plan_debuginfo(
    mode: str,
    release: Optional[str],
    vmlinux: Optional[str],
    live: bool,
    vmcoreinfo: Optional[VmcoreInfo],
) -> DebugInfoPlan:
    """
    ``auto``: ``vmlinux``, else the first standard place that exists (DWARF),
    else the kernel's BTF, else drgn's own DWARF search. ``dwarf`` and ``btf``
    force one source; failing to find it is the caller's error to raise.
    """
    if mode not in DEBUGINFO_MODES:
        raise DebugInfoError(f"debuginfo {mode!r}: unknown; use {', '.join(DEBUGINFO_MODES)}")
    rel = release or "unknown"
    paths: List[str] = []
    if vmlinux is not None and mode != "btf":
        problem = vmlinux_problem(vmlinux)
        if problem:
            # Asked for by name: never silently replaced by BTF.
            raise DebugInfoError(f"vmlinux={str(vmlinux)!r}: {problem}; give the vmlinux with debug info "
                                 f"for Linux {rel}")
        paths.append(vmlinux)
    paths.extend(p for p in (debug_info_candidates(release) if release else []) if os.path.exists(p))
    btf = btf_available(live, vmcoreinfo)
    if mode == "btf":
        return DebugInfoPlan(mode, "btf", btf, "debuginfo='btf'" if btf else "debuginfo='btf', but no BTF found")
    if mode == "dwarf" or paths:
        if vmlinux is not None:
            reason = "vmlinux="
        elif paths:
            reason = "vmlinux found" + (" (debuginfo='dwarf')" if mode == "dwarf" else "")
        else:
            reason = "debuginfo='dwarf'; drgn's own search"
        return DebugInfoPlan(mode, "dwarf", paths[0] if paths else None, reason, tuple(paths),
                             btf_fallback=btf if mode == "auto" and vmlinux is None else None)
    if btf is not None:
        return DebugInfoPlan(mode, "btf", btf, f"no vmlinux with DWARF for {rel} in the standard places")
    return DebugInfoPlan(mode, "dwarf", None, f"no vmlinux for {rel} and no BTF; drgn's own search")
