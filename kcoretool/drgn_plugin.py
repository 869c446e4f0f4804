# SPDX-License-Identifier: LGPL-2.1-or-later
"""
kcoretool as a drgn plugin
--------------------------

Declared as the ``kcoretool`` entry point of drgn's ``drgn.plugins`` group,
so installing kcoretool gives plain drgn two things:

- **a kernel without DWARF**: when drgn opens a Linux kernel (a vmcore or
  the running one) and finds no vmlinux debug info, the kernel's BTF gives
  it types and kallsyms gives it symbols and typed globals, through the
  finders :func:`kcoretool.debuginfo.btfkernel.register_plugin_finders`
  adds behind drgn's own -- loaded on first use, silent whenever the
  kernel has DWARF. ``drgn -c vmcore`` then runs ``for_each_task()``,
  ``for_each_vmap_area()``, ``prog["jiffies"]`` and names stack frames.
- **the ``kcoretool`` command** (drgn 0.3.0+, :mod:`drgn.commands`): any
  kcoretool command against the session's program, ``%kcoretool vmalloc
  list --caller 'bpf*'`` in the REPL or ``run_command(prog, "kcoretool
  vmalloc stats")`` in a script, with the CLI's output; a non-zero exit
  status raises :class:`drgn.commands.CommandExitStatusError`.

Turn it off with drgn's own switch: ``DRGN_DISABLE_PLUGINS=kcoretool``.
Importing this module is cheap: everything else loads on first use.
"""

from __future__ import annotations

from typing import Any, Sequence

import drgn

__all__ = ("drgn_prog_set",)


def drgn_prog_set(prog: drgn.Program) -> None:
    """drgn's hook, called once a program's target is set."""
    from kcoretool._drgn_required import require_drgn

    require_drgn()  # drgn logs it as the plugin's failure
    if not prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL or prog.cache.get("kcoretool_opening"):
        return  # not a kernel, or kcoretool opening it with its own finders
    from kcoretool.debuginfo.btfkernel import register_plugin_finders
    from kcoretool.kernel.globals import GLOBALS

    register_plugin_finders(prog, GLOBALS)


def _run(prog: drgn.Program, args: Sequence[str]) -> None:
    from drgn.commands import CommandExitStatusError

    from kcoretool.cli import run_in_program

    status = run_in_program(prog, list(args))
    if status:
        raise CommandExitStatusError(" ".join(["kcoretool", *args]), status)


try:
    from drgn.commands import custom_command, parse_shell_command
except ImportError:  # drgn before 0.3.0: no command framework
    pass
else:
    @custom_command(
        name="kcoretool",
        description="run a kcoretool command on this program",
        usage="**kcoretool** *command* [*options*]",
        long_description="Run any kcoretool command (vmalloc list, whatis, read, exec list, task "
        "vmas, ...) against the session's program, exactly as the kcoretool command line prints it. "
        "``kcoretool --help`` lists the commands.",
        parse=parse_shell_command,
    )
    def _cmd_kcoretool(prog: drgn.Program, name: str, args: Sequence[str], **kwargs: Any) -> None:
        _run(prog, args)
