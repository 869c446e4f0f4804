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
import logging
import os
from typing import Iterable, List, Optional, Sequence

import drgn

from kcoretool.errors import AccessError, CoreFormatError, DebugInfoError

__all__ = ("LIVE", "debug_info_candidates", "install_hint", "open_program")

LIVE = "/proc/kcore"


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
        f"kernel-debuginfo-{release} (Fedora/RHEL), or pass --vmlinux"
    )


def _release(prog: drgn.Program) -> str:
    try:
        return prog["UTS_RELEASE"].string_().decode()
    except (KeyError, LookupError, drgn.FaultError):
        pass
    try:
        for line in prog["VMCOREINFO"].string_().decode().splitlines():
            if line.startswith("OSRELEASE="):
                return line.split("=", 1)[1]
    except (KeyError, LookupError, drgn.FaultError):
        pass
    return "unknown"


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


def open_program(
    core_path: Optional[str] = None,
    vmlinux: Optional[str] = None,
    *,
    extra_debug_paths: Sequence[str] = (),
    modules: bool = True,
    search: bool = True,
) -> drgn.Program:
    """
    Open the running kernel (``core_path`` None or ``/proc/kcore``) or a
    vmcore, and load debug info: ``vmlinux`` if given, then the standard
    places for the core's release, then drgn's own search. Module debug info
    is loaded when available; otherwise module symbols come from kallsyms
    when the kernel exports it.

    :raises AccessError: the core is missing or not readable.
    :raises CoreFormatError: not a Linux kernel core drgn can read.
    :raises DebugInfoError: no matching vmlinux; the message says what to
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
    tried: List[str] = []
    if vmlinux is not None:
        if not os.path.exists(vmlinux):
            raise AccessError(f"--vmlinux {vmlinux}: no such file; give the kernel's vmlinux with debug info")
        tried.append(vmlinux)
    tried.extend(p for p in debug_info_candidates(release) if os.path.exists(p))
    tried.extend(extra_debug_paths)

    with _quiet_drgn():
        if tried:
            try:
                prog.load_debug_info(tried, main=True)
            except drgn.MissingDebugInfoError:
                pass
        if not _has_vmalloc_types(prog) and search:
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
        raise DebugInfoError(f"no debug info for Linux {release}; " + install_hint(release))

    if modules:
        with _quiet_drgn():
            _load_module_info(prog, tried)
    return prog


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
