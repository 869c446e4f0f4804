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
import signal
import sys
from typing import TYPE_CHECKING, Any, List, NoReturn, Optional

import click

from kcoretool import __version__
from kcoretool._outfile import discard_unfinished
from kcoretool.api import DEBUGINFO_MODES, Kernel, debug_info_candidates
from kcoretool.cli.failures import Interrupted
from kcoretool.cli.options import IN_PROGRAM, SourceOption
from kcoretool.errors import KcoreToolError

if TYPE_CHECKING:
    from kcoretool.api import Core

__all__ = ("Options", "main", "run_in_program")

# name -> (module, attribute): loaded only when used or listed.
_LAZY_COMMANDS = {
    "info": ("kcoretool.cli.elfcmds", "info"),
    "segments": ("kcoretool.cli.elfcmds", "segments"),
    "notes": ("kcoretool.cli.elfcmds", "notes"),
    "vmcoreinfo": ("kcoretool.cli.elfcmds", "vmcoreinfo"),
    "read": ("kcoretool.cli.readcmds", "read"),
    "vmalloc": ("kcoretool.cli.vmalloc", "vmalloc"),
    "whatis": ("kcoretool.cli.vmalloc", "whatis"),
    "exec": ("kcoretool.cli.exec", "exec_"),
    "task": ("kcoretool.cli.task", "task"),
    "fleet": ("kcoretool.cli.fleet", "fleet"),
}


class Options:
    """What the global options say; opens the core once, on first use."""

    def __init__(self, core_path: str, vmlinux: Optional[str], json: bool, debug: bool,
                 debuginfo: str = "auto", preset: Optional[Kernel] = None) -> None:
        #: a kernel the caller already has (the drgn command's program)
        self.preset = preset
        self.core_path = core_path
        self.vmlinux = vmlinux
        self.debuginfo = debuginfo
        self.json = json
        self.debug = debug
        self._core: Optional[Core] = None
        self._kernel: Optional[Kernel] = None
        #: the model's walk warnings were printed (once per process)
        self.warned = False

    def kernel(self) -> Kernel:
        """The kernel behind the core, through drgn with DWARF or BTF."""
        if self.preset is not None:
            return self.preset
        if self._kernel is None:
            from kcoretool.api import open_kernel

            core = self.core()
            incomplete = getattr(core, "incomplete", None)
            if incomplete:
                # Kernel structures in the missing pages are missing from every
                # answer: say so before any of them.
                click.echo(f"kcoretool: warning: the dump is incomplete: {incomplete}; kernel structures "
                           "in those pages are missing from what follows", err=True)
            self._kernel = open_kernel(self.core_path, self.vmlinux, debuginfo=self.debuginfo, core=core)
        return self._kernel

    def core(self) -> Core:
        """The core file alone (no drgn): what the ELF commands read."""
        if self.preset is not None and self.preset.core is not None:
            return self.preset.core
        if self._core is None:
            from kcoretool.api import open_core

            path = self.core_path
            if self.preset is not None and not self.preset.live:
                # the session's dump, as drgn opened it (drgn 0.1.0+)
                dumped = getattr(self.preset.prog, "core_dump_path", None)
                if dumped is None:
                    raise KcoreToolError("this command reads the dump file itself, and this drgn program "
                                         "does not say which file it opened (Program.core_dump_path)")
                path = dumped
            self._core = open_core(path)
        return self._core

    def close(self) -> None:
        if self._core is not None:
            self._core.close()
            self._core = None


#: The top-level help's closing example: inside drgn the session's program
#: is the core, so it shows neither -c nor where options may go.
_EPILOG = ("\b\nExample: kcoretool -c /var/crash/vmcore vmalloc list --kind vmalloc\n"
           "The options above may also follow the command: kcoretool vmalloc list --json -c vmcore")
_EPILOG_IN_PROGRAM = "\b\nExample: %kcoretool vmalloc list --kind vmalloc (the session's dump and types)"


class _LazyGroup(click.Group):
    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.epilog = _EPILOG_IN_PROGRAM if IN_PROGRAM.get() else _EPILOG
        super().format_epilog(ctx, formatter)

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
                from kcoretool.cli import readcmds, vmalloc_time

                for sub in (readcmds.dump, readcmds.extract, readcmds.check,
                            vmalloc_time.snapshot, vmalloc_time.diff, vmalloc_time.top):
                    cmd.add_command(sub)
            if cmd is not None and name != "fleet":  # fleet takes many dumps, not -c
                from kcoretool.cli.options import add_global_options

                add_global_options(cmd)
            return cmd
        return super().get_command(ctx, name)


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=_EPILOG,
)
@click.option(
    "-c",
    "--core",
    "core_path",
    cls=SourceOption,
    default="/proc/kcore",
    envvar="KCORETOOL_CORE",
    show_default=True,
    show_envvar=True,
    metavar="PATH",
    help="/proc/kcore, an ELF vmcore or a kdump-compressed file.",
)
@click.option(
    "--vmlinux",
    cls=SourceOption,
    metavar="PATH",
    help="Kernel debug info: a vmlinux with DWARF. Without it kcoretool looks in "
    + ", ".join(debug_info_candidates("RELEASE"))
    + ", else uses the kernel's BTF (see --debuginfo).",
)
@click.option(
    "--debuginfo",
    cls=SourceOption,
    type=click.Choice(DEBUGINFO_MODES),
    default="auto",
    envvar="KCORETOOL_DEBUGINFO",
    show_default=True,
    show_envvar=True,
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
    preset = ctx.obj if isinstance(ctx.obj, Kernel) else None
    opts = Options(core_path, vmlinux, as_json, debug, debuginfo, preset)
    ctx.obj = opts
    ctx.call_on_close(opts.close)


def run_in_program(prog: Any, argv: List[str]) -> int:
    """
    Run one kcoretool command line against a drgn Program (the drgn
    ``kcoretool`` command): the CLI's output, every failure as one
    ``kcoretool: ...`` line on stderr (:func:`~kcoretool.cli.failures.end_command`,
    as the console command), and its exit status returned rather than
    exiting (``--debug`` re-raises).
    """
    from kcoretool.api import from_program
    from kcoretool.cli.failures import end_command

    chosen = _source_options(argv)
    if chosen:
        click.echo(f"kcoretool: {chosen}: inside drgn, kcoretool reads the session's program -- its dump "
                   "and its types; open another dump in another drgn session", err=True)
        return 2
    token = IN_PROGRAM.set(True)
    try:
        kernel = from_program(prog)
        if kernel.live:
            kernel.forget()  # each command reads the running kernel anew
        rv = cli.main(args=argv, prog_name="kcoretool", standalone_mode=False, obj=kernel)
    except (Exception, KeyboardInterrupt) as e:
        return end_command(e, "--debug" in argv)
    finally:
        IN_PROGRAM.reset(token)
    return rv if isinstance(rv, int) else 0


def _source_options(argv: List[str]) -> Optional[str]:
    """The first option in ``argv`` that would pick another core or debug
    info (``-c``, ``--core``, ``--vmlinux``, ``--debuginfo``), or None."""
    for arg in argv:
        if arg == "--":
            break
        name = arg.split("=", 1)[0]
        if name in ("--core", "--vmlinux", "--debuginfo") or arg == "-c" or (
                arg.startswith("-c") and not arg.startswith("--")):
            return name if name.startswith("--") else "-c"
    return None


def main(args: Optional[List[str]] = None, prog_name: str = "kcoretool") -> None:
    """The console entry point: every failure ends as one line and an exit
    status (1 error, 2 usage, 130 interrupted); ``--debug`` re-raises."""
    argv = sys.argv[1:] if args is None else args
    debug = "--debug" in argv
    try:
        status = _run(argv, prog_name, debug)
    except (KeyboardInterrupt, Interrupted):
        # A second Ctrl-C while the first is being handled: still one line.
        _fail("interrupted", 130)
    finally:
        # The run is over: a Ctrl-C during interpreter shutdown, where
        # Python puts back the default action, would kill the process.
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:
            pass
    sys.exit(status)


#: set by the first Ctrl-C: Python prints and ignores what a signal handler
#: raises inside an at-fork hook or a finalizer, so the raise alone can be lost
_interrupted: List[bool] = []


def _interrupt(signum: int, frame: object) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # one Ctrl-C is enough; cleanup must finish
    _interrupted.append(True)
    raise Interrupted()


def _fail(message: str, status: int) -> NoReturn:
    # An interrupt can skip an output file's __exit__: its temporary goes here.
    discard_unfinished()
    try:
        click.echo(f"kcoretool: {message}", err=True)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    _quiet_stdout()
    if status == 130:
        # No interpreter shutdown: a second Ctrl-C there prints "Exception
        # ignored" and can end with status 0.
        os._exit(status)
    sys.exit(status)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush of a
    broken or full stream cannot print "Exception ignored" or change the
    exit status."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def _run(argv: List[str], prog_name: str, debug: bool) -> int:
    from kcoretool.cli.failures import INTERRUPTED, end_command, stdout_usable

    if not stdout_usable():
        _fail("standard output is closed; redirect it instead (e.g. >/dev/null)", 1)
    # Ctrl-C as our own exception: click turns KeyboardInterrupt into a
    # blank line and Abort; `finally` blocks (temporary files) still run.
    try:
        signal.signal(signal.SIGINT, _interrupt)
    except ValueError:
        pass  # not the main thread (an embedding caller): keep its handler
    try:
        rv = cli.main(args=argv, prog_name=prog_name, standalone_mode=False)
        sys.stdout.flush()  # a full disk or closed pipe shows here, not at exit
    except (Exception, KeyboardInterrupt, Interrupted) as e:
        status = end_command(e, debug)
        if not isinstance(e, (click.exceptions.Exit, click.ClickException)):
            _quiet_stdout()  # the command failed midway: its output stops here
        if status == INTERRUPTED:
            # No interpreter shutdown: a second Ctrl-C there prints "Exception
            # ignored" and can end with status 0.
            os._exit(status)
        return status
    if _interrupted:
        _fail("interrupted", INTERRUPTED)  # a Ctrl-C whose exception was swallowed never ends as success
    return rv if isinstance(rv, int) else 0
