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
from typing import Iterator, List, Optional, Sequence

import drgn

from kcoretool._drgn_required import require_drgn
from kcoretool._interrupts import deferred_sigint
from kcoretool.debuginfo.kallsyms import use_kallsyms
from kcoretool.debuginfo.plan import (
    DebugInfoPlan,
    btf_available,
    debug_info_candidates,
    install_hint,
    plan_debuginfo,
)
from kcoretool.errors import AccessError, CoreFormatError, DebugInfoError
from kcoretool.source.vmcoreinfo import VmcoreInfo

__all__ = (
    "kernel_release",
    "LIVE",
    "adopt_program",
    "debug_info_candidates",
    "debuginfo_of",
    "install_hint",
    "load_symbols",
    "open_program",
    "vmcoreinfo_of",
)

LIVE = "/proc/kcore"

require_drgn()  # one line naming the version, before a missing helper's traceback


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


def kernel_release(prog: drgn.Program) -> str:
    """The kernel's release (``UTS_RELEASE``, else VMCOREINFO's OSRELEASE), or ``"unknown"``."""
    return _release(prog)


def _release(prog: drgn.Program) -> str:
    try:
        return prog["UTS_RELEASE"].string_().decode()
    except (KeyError, LookupError, drgn.FaultError):
        pass
    info = vmcoreinfo_of(prog)
    return (info.osrelease if info is not None else None) or "unknown"


@contextlib.contextmanager
def _quiet_drgn() -> Iterator[None]:
    """drgn logs "missing debugging symbols" warnings; the library never prints."""
    logger = logging.getLogger("drgn")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


#: drgn's own plugins that add commands to its CLI: nothing for a program
#: kcoretool opens, and importing them costs ~0.3 s CPU (other plugins, such
#: as debug info finders, still load; kcoretool's own stays out of programs
#: open_program() opens -- see ``kcoretool_opening`` -- and costs ~15 ms).
_COMMAND_PLUGINS = ("builtin_commands", "crash_commands")


@contextlib.contextmanager
def _without_command_plugins() -> Iterator[None]:
    old = os.environ.get("DRGN_DISABLE_PLUGINS")
    if old != "*":
        os.environ["DRGN_DISABLE_PLUGINS"] = ",".join(filter(None, [old, *_COMMAND_PLUGINS]))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("DRGN_DISABLE_PLUGINS", None)
        else:
            os.environ["DRGN_DISABLE_PLUGINS"] = old


def _has_types(prog: drgn.Program, *names: str) -> bool:
    """Whether ``prog`` has any of these types (someone gave it the kernel's)."""
    for name in names:
        try:
            prog.type(name)
            return True
        except LookupError:
            pass
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
    Module symbols (``modules=True``) are loaded on first need
    (:func:`load_symbols`); callers are named from the kernel's own
    kallsyms (:mod:`kcoretool.kernel.symbolize`).

    :raises AccessError: the core is missing or not readable.
    :raises CoreFormatError: not a Linux kernel core drgn can read.
    :raises DebugInfoError: no usable debug info; the message says what to
        install.
    """
    path = core_path or LIVE
    try:
        # drgn runs plugin hooks in both calls and ignores what they raise
        with deferred_sigint():
            prog = drgn.Program()
            # kcoretool's drgn plugin (loaded when drgn's plugins are) stays
            # out: this function decides the program's debug info itself.
            prog.cache["kcoretool_opening"] = True
            with _without_command_plugins():
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
        raise AccessError(f"vmlinux={str(vmlinux)!r}: no such file; give the kernel's vmlinux with debug info")
    live = bool(prog.flags & drgn.ProgramFlags.IS_LIVE)
    plan = plan_debuginfo(debuginfo, None if release == "unknown" else release, vmlinux, live,
                          vmcoreinfo_of(prog))
    if plan.kind == "btf":
        plan = _use_btf(prog, plan, live)
    else:
        plan = _use_dwarf(prog, plan, release, vmlinux, [*plan.dwarf_paths, *extra_debug_paths], search, live)
    prog.cache["kcoretool_debuginfo"] = plan
    # Loaded on first need (load_symbols()); callers need none of it.
    prog.cache["kcoretool_modules"] = "wanted" if modules else "none"
    return prog


logger = logging.getLogger("kcoretool")


def adopt_program(prog: drgn.Program) -> DebugInfoPlan:
    """
    Make a :class:`drgn.Program` someone else opened (a drgn session, a
    script) fit for kcoretool, and return what it uses for types: the
    program's own (DWARF, or BTF the kcoretool drgn plugin gave it) when
    it has the vmalloc types, else the kernel's BTF and kallsyms loaded
    into it now, exactly as :func:`open_program` does without a vmlinux.
    Said in a ``kcoretool`` log record, never printed.

    :raises CoreFormatError: the program is not a Linux kernel.
    :raises DebugInfoError: no kernel types and no BTF to load; the
        message says how to get either.
    """
    plan = debuginfo_of(prog)
    if plan is not None:
        return plan
    live = bool(prog.flags & drgn.ProgramFlags.IS_LIVE)
    release = _release(prog)
    if _has_types(prog, "struct vmap_area", "struct task_struct"):
        from kcoretool.debuginfo.btfkernel import plugin_btf

        loaded = plugin_btf(prog)
        plan = (DebugInfoPlan("auto", "dwarf", None, "the drgn program's own types") if loaded is None else
                DebugInfoPlan("auto", "btf", loaded.btf_source, "loaded by kcoretool's drgn plugin"))
    elif not prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL:
        raise CoreFormatError("this drgn Program is not a Linux kernel (set_kernel() or set_core_dump() "
                              "of a vmcore first)")
    else:
        source = btf_available(live, vmcoreinfo_of(prog))
        why = ""
        btf_plan: Optional[DebugInfoPlan] = None
        if source is not None:
            try:
                btf_plan = _use_btf(prog, DebugInfoPlan("auto", "btf", source, "the drgn program had no kernel types"),
                                    live)
            except DebugInfoError as e:
                why = f" ({getattr(e, 'reason', e)})"
        if btf_plan is None:
            raise DebugInfoError(
                f"this drgn Program has no types for Linux {release} and the kernel has no BTF kcoretool can "
                f"reach{why}; load its DWARF first (prog.load_debug_info(main=True), or drgn -s VMLINUX); "
                + install_hint(release))
        plan = btf_plan
        logger.info("kcoretool: loaded Linux %s's BTF (%s) and kallsyms into the drgn program", release,
                    plan.source)
    prog.cache["kcoretool_debuginfo"] = plan
    prog.cache.setdefault("kcoretool_modules", "wanted")
    return plan


def load_symbols(prog: drgn.Program) -> None:
    """
    Every symbol drgn can have, for commands that look up arbitrary
    addresses or names (``whatis``, ``SYMBOL+OFF``): kallsyms first among
    the symbol finders, so names read as the kernel prints them under DWARF
    as under BTF, and modules' DWARF where found, else their kallsyms.
    """
    state = prog.cache.get("kcoretool_modules")
    if state != "wanted":
        return
    prog.cache["kcoretool_modules"] = "all"
    use_kallsyms(prog)
    plan = debuginfo_of(prog)
    with _quiet_drgn():
        try:
            prog.load_debug_info(list(plan.dwarf_paths) if plan is not None and plan.kind == "dwarf" else [],
                                 default=True)
        except (drgn.MissingDebugInfoError, ValueError, LookupError, drgn.FaultError):
            pass
        _register_module_kallsyms(prog)


def _use_btf(prog: drgn.Program, plan: DebugInfoPlan, live: bool) -> DebugInfoPlan:
    from kcoretool.debuginfo.btfkernel import load_btf_kernel
    from kcoretool.kernel.globals import GLOBALS

    if plan.source is None:
        raise DebugInfoError("debuginfo='btf': this kernel has no BTF kcoretool can reach "
                             "(live: /sys/kernel/btf/vmlinux; vmcore: __start_BTF found through the kernel's "
                             "kallsyms, which needs VMCOREINFO's KERNELOFFSET)")
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
        if _has_types(prog, "struct vmap_area"):
            return plan
        if plan.btf_fallback:
            # auto: the vmlinux found does not match this kernel; BTF is there.
            return _use_btf(prog, dataclasses.replace(
                plan, kind="btf", source=plan.btf_fallback, dwarf_paths=(),
                reason=f"{tried[0]} does not match Linux {release}"), live)
        if search and vmlinux is None:  # an explicit vmlinux is not swapped for another
            try:
                prog.load_debug_info(main=True)
            except drgn.MissingDebugInfoError:
                pass
    if not _has_types(prog, "struct vmap_area"):
        if vmlinux is not None:
            raise DebugInfoError(
                f"vmlinux={str(vmlinux)!r}: its DWARF is not for this kernel (Linux {release}: build ID or "
                "release differ, or its vmap types are missing); " + install_hint(release)
            )
        what = "no debug info" if plan.mode == "dwarf" else "no debug info and no BTF"
        raise DebugInfoError(f"{what} for Linux {release}; " + install_hint(release))
    return dataclasses.replace(plan, source=plan.source or "drgn's debug info search")


def _register_module_kallsyms(prog: drgn.Program) -> None:
    """Best effort: modules' in-memory symbol tables as a symbol finder."""
    try:
        from drgn.helpers.linux.kallsyms import load_module_kallsyms

        finder = load_module_kallsyms(prog)
        prog.register_symbol_finder("kcoretool_module_kallsyms", finder, enable_index=-1)
    except Exception:
        pass
