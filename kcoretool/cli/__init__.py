"""
The ``kcoretool`` command
-------------------------

A thin click layer over the library.  Global options go in ``ctx.obj``
(:class:`Options`); every command asks it for the core.  Errors the library
raises on purpose (:class:`~kcoretool.errors.KcoreToolError`) become one
line on stderr and exit status 1; ``--debug`` shows the traceback.

Commands that only need the ELF layer never import drgn, so they start
fast; the drgn-backed commands are imported when they are invoked.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import TYPE_CHECKING, List, Optional

import click

from kcoretool import __version__
from kcoretool.errors import KcoreToolError

if TYPE_CHECKING:
    from kcoretool.api import Core, Kernel

__all__ = ("Options", "main")

# name -> (module, attribute): loaded only when used or listed.
_LAZY_COMMANDS = {
    "info": ("kcoretool.cli.elfcmds", "info"),
    "segments": ("kcoretool.cli.elfcmds", "segments"),
    "notes": ("kcoretool.cli.elfcmds", "notes"),
    "vmcoreinfo": ("kcoretool.cli.elfcmds", "vmcoreinfo"),
    "read": ("kcoretool.cli.readcmds", "read"),
    "vmalloc": ("kcoretool.cli.vmalloc", "vmalloc"),
    "whatis": ("kcoretool.cli.vmalloc", "whatis"),
    "task": ("kcoretool.cli.task", "task"),
}


class Options:
    """What the global options say; opens the core once, on first use."""

    def __init__(self, core_path: str, vmlinux: Optional[str], json: bool, debug: bool,
                 debuginfo: str = "auto") -> None:
        self.core_path = core_path
        self.vmlinux = vmlinux
        self.debuginfo = debuginfo
        self.json = json
        self.debug = debug
        self._core: Optional["Core"] = None
        self._kernel: Optional["Kernel"] = None
        #: the model's walk warnings were printed (once per process)
        self.warned = False

    def kernel(self) -> "Kernel":
        """The kernel behind the core, through drgn with DWARF or BTF."""
        if self._kernel is None:
            from kcoretool.api import open_kernel

            self._kernel = open_kernel(self.core_path, self.vmlinux, debuginfo=self.debuginfo,
                                       core=self.core())
        return self._kernel

    def core(self) -> "Core":
        """The core file alone (no drgn): what the ELF commands read."""
        if self._core is None:
            from kcoretool.api import open_core

            self._core = open_core(self.core_path)
        return self._core

    def close(self) -> None:
        if self._core is not None:
            self._core.close()
            self._core = None


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> List[str]:
        names = set(super().list_commands(ctx))
        for name, (module, _) in _LAZY_COMMANDS.items():
            if importlib.util.find_spec(module) is not None:
                names.add(name)
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        if name in _LAZY_COMMANDS:
            module, attr = _LAZY_COMMANDS[name]
            try:
                mod = importlib.import_module(module)
            except ModuleNotFoundError as e:
                if e.name == module:
                    return None
                raise
            cmd = getattr(mod, attr, None)
            if name == "vmalloc" and cmd is not None:
                # The reading subcommands live with the reader's faces.
                from kcoretool.cli import readcmds

                for sub in (readcmds.dump, readcmds.extract, readcmds.check):
                    cmd.add_command(sub)
            return cmd
        return super().get_command(ctx, name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--core",
    "core_path",
    default="/proc/kcore",
    envvar="KCORETOOL_CORE",
    show_default=True,
    metavar="PATH",
    help="/proc/kcore, an ELF vmcore or a kdump-compressed file (env KCORETOOL_CORE).",
)
@click.option("--vmlinux", metavar="PATH", help="Kernel debug info (vmlinux with DWARF).")
@click.option(
    "--debuginfo",
    type=click.Choice(["auto", "dwarf", "btf"]),
    default="auto",
    envvar="KCORETOOL_DEBUGINFO",
    show_default=True,
    help="Types and symbols from a vmlinux (dwarf), from the kernel's own BTF and kallsyms (btf), "
    "or dwarf when a vmlinux is found, else btf (auto).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, "-V", "--version", prog_name="kcoretool")
@click.pass_context
def cli(ctx: click.Context, core_path: str, vmlinux: Optional[str], debuginfo: str, as_json: bool,
        debug: bool) -> None:
    """Inspect and read Linux kernel memory: /proc/kcore (live, as root)
    or a saved vmcore."""
    opts = Options(core_path, vmlinux, as_json, debug, debuginfo)
    ctx.obj = opts
    ctx.call_on_close(opts.close)


def main(args: Optional[List[str]] = None, prog_name: str = "kcoretool") -> None:
    debug = "--debug" in (sys.argv[1:] if args is None else args)
    try:
        rv = cli.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("kcoretool: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KcoreToolError as e:
        if debug:
            raise
        click.echo(f"kcoretool: {e}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        # `kcoretool read ... | head`: stop quietly, like cat.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("kcoretool: interrupted", err=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)
