# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Opening the kernel
------------------

:func:`open_program` turns a path (``/proc/kcore`` or any vmcore drgn can
read) plus optional debug info into a :class:`drgn.Program`, with one-line
:class:`~kcoretool.errors.KcoreToolError`\\ s for everything a user can fix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from typing import Iterable, List, Optional, Sequence

import drgn

from kcoretool.errors import AccessError, CoreFormatError, DebugInfoError
from kcoretool.debuginfo.kallsyms import use_kallsyms
from kcoretool.debuginfo.plan import DebugInfoPlan, debug_info_candidates, install_hint, plan_debuginfo
from kcoretool.source.vmcoreinfo import VmcoreInfo

__all__ = ("LIVE", "debug_info_candidates", "debuginfo_of", "install_hint", "open_program", "vmcoreinfo_of")

LIVE = "/proc/kcore"


def vmcoreinfo_of(prog: drgn.Program) -> Optional[VmcoreInfo]:
    """The VMCOREINFO drgn found for ``prog`` (its ``VMCOREINFO`` object:
    the ELF note, a kdump sub-header, or /sys/kernel/vmcoreinfo live);
    parsed once per program, None if there is none."""
    if "kcoretool_vmcoreinfo" not in prog.cache:
        try:
            info: Optional[VmcoreInfo] = VmcoreInfo(prog["VMCOREINFO"].string_())
        except (KeyError, LookupError, drgn.FaultError, ValueError):
            info = None
        prog.cache["kcoretool_vmcoreinfo"] = info
    return prog.cache["kcoretool_vmcoreinfo"]


def _release(prog: drgn.Program) -> str:
    try:
        return prog["UTS_RELEASE"].string_().decode()
    except (KeyError, LookupError, drgn.FaultError):
        pass
    info = vmcoreinfo_of(prog)
    return (info.osrelease if info is not None else None) or "unknown"


@contextlib.contextmanager
def _quiet_drgn():
    """drgn logs "missing debugging symbols" warnings; the library never prints."""
    logger = logging.getLogger("drgn")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


def _has_vmalloc_types(prog: drgn.Program) -> bool:
    try:
        prog.type("struct vmap_area")
        return True
    except LookupError:
        return False


def debuginfo_of(prog: drgn.Program) -> Optional[DebugInfoPlan]:
    """The plan :func:`open_program` carried out for ``prog`` (None if it did not open it)."""
    return prog.cache.get("kcoretool_debuginfo")


def open_program(
    core_path: Optional[str] = None,
    vmlinux: Optional[str] = None,
    *,
    debuginfo: str = "auto",
    extra_debug_paths: Sequence[str] = (),
    modules: bool = True,
    search: bool = True,
) -> drgn.Program:
    """
    Open the running kernel (``core_path`` None or ``/proc/kcore``) or a
    vmcore, and give it types and symbols (see
    :func:`kcoretool.debuginfo.plan.plan_debuginfo`): ``debuginfo="auto"``
    uses DWARF from ``vmlinux`` or the standard places when there is one,
    else the kernel's BTF and kallsyms; ``"dwarf"`` and ``"btf"`` force one.
    Module symbols come from the modules' in-memory kallsyms.

    :raises AccessError: the core is missing or not readable.
    :raises CoreFormatError: not a Linux kernel core drgn can read.
    :raises DebugInfoError: no usable debug info; the message says what to
        install.
    """
    path = core_path or LIVE
    prog = drgn.Program()
    try:
        if path == LIVE:
            prog.set_kernel()
        else:
            prog.set_core_dump(path)
    except FileNotFoundError:
        raise AccessError(f"{path}: no such file") from None
    except PermissionError:
        hint = " (run as root; lockdown also blocks it)" if path == LIVE else ""
        raise AccessError(f"{path}: permission denied{hint}") from None
    except (ValueError, drgn.FaultError, OSError) as e:
        raise CoreFormatError(f"{path}: cannot read as a core: {e}") from None
    if not prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL:
        raise CoreFormatError(f"{path}: not a Linux kernel core (no VMCOREINFO)")

    release = _release(prog)
    if vmlinux is not None and not os.path.exists(vmlinux):
        raise AccessError(f"--vmlinux {vmlinux}: no such file; give the kernel's vmlinux with debug info")
    live = bool(prog.flags & drgn.ProgramFlags.IS_LIVE)
    plan = plan_debuginfo(debuginfo, None if release == "unknown" else release, vmlinux, live,
                          vmcoreinfo_of(prog))
    if plan.kind == "btf":
        plan = _use_btf(prog, plan, live)
    else:
        plan = _use_dwarf(prog, plan, release, vmlinux, [*plan.dwarf_paths, *extra_debug_paths], search, live)
    prog.cache["kcoretool_debuginfo"] = plan
    # Callers read as the kernel prints them (%pS), under DWARF as under BTF.
    use_kallsyms(prog)
    if modules:
        with _quiet_drgn():
            _load_module_info(prog, plan.dwarf_paths if plan.kind == "dwarf" else ())
    return prog


def _use_btf(prog: drgn.Program, plan: DebugInfoPlan, live: bool) -> DebugInfoPlan:
    from kcoretool.debuginfo.btfkernel import load_btf_kernel
    from kcoretool.kernel.globals import GLOBALS

    if plan.source is None:
        raise DebugInfoError("--debuginfo btf: this kernel has no BTF kcoretool can reach "
                             "(live: /sys/kernel/btf/vmlinux; vmcore: kallsyms in VMCOREINFO, Linux 6.0+)")
    loaded = load_btf_kernel(prog, live, GLOBALS)
    prog.cache["kcoretool_btf"] = loaded
    return dataclasses.replace(plan, source=loaded.btf_source)


def _use_dwarf(prog: drgn.Program, plan: DebugInfoPlan, release: str, vmlinux: Optional[str],
               tried: List[str], search: bool, live: bool) -> DebugInfoPlan:
    with _quiet_drgn():
        if tried:
            try:
                prog.load_debug_info(tried, main=True)
            except drgn.MissingDebugInfoError:
                pass
        if _has_vmalloc_types(prog):
            return plan
        if plan.btf_fallback:
            # auto: the vmlinux found does not match this kernel; BTF is there.
            return _use_btf(prog, dataclasses.replace(
                plan, kind="btf", source=plan.btf_fallback, dwarf_paths=(),
                reason=f"{tried[0]} does not match Linux {release}"), live)
        if search:
            try:
                prog.load_debug_info(main=True)
            except drgn.MissingDebugInfoError:
                pass
    if not _has_vmalloc_types(prog):
        if vmlinux is not None:
            raise DebugInfoError(
                f"{vmlinux}: does not match Linux {release} or has no DWARF; "
                + install_hint(release)
            )
        what = "no debug info" if plan.mode == "dwarf" else "no debug info and no BTF"
        raise DebugInfoError(f"{what} for Linux {release}; " + install_hint(release))
    return dataclasses.replace(plan, source=plan.source or "drgn's debug info search")


def _load_module_info(prog: drgn.Program, paths: Iterable[str]) -> None:
    """Best effort: module DWARF, else kallsyms for module symbols."""
    try:
        prog.load_debug_info(list(paths), default=True)
    except drgn.MissingDebugInfoError:
        pass
    except (ValueError, LookupError, drgn.FaultError):
        pass
    try:
        from drgn.helpers.linux.kallsyms import load_module_kallsyms

        finder = load_module_kallsyms(prog)
        prog.register_symbol_finder("kcoretool_module_kallsyms", finder, enable_index=-1)
    except Exception:  # noqa: BLE001 -- optional; old kernels lack the symbols
        pass
