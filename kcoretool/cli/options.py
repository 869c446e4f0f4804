"""
Options every command takes
---------------------------

The global options (``-c``, ``--json``, ``--vmlinux``, ``--debuginfo``,
``--debug``) go before the command, as in ``kcoretool -c vmcore vmalloc list``,
or after it, as users of other tools type them:
``kcoretool vmalloc list --json -c vmcore``.  :func:`add_global_options`
gives every leaf command their after-the-command spelling; given there, a
value overrides the one before the command.
"""

from __future__ import annotations

import contextlib
import sys
from contextvars import ContextVar
from typing import Any, Callable, ContextManager, Iterable, Iterator, Optional, TypeVar

import click

__all__ = ("IN_PROGRAM", "PROGRESS_BYTES", "ProgressSink", "SourceOption", "add_global_options",
           "byte_progress", "example", "item_progress")

#: True while a command runs against a drgn session's program (``%kcoretool``):
#: the program decides the core and the debug info.
IN_PROGRAM: ContextVar[bool] = ContextVar("kcoretool_in_program", default=False)


class SourceOption(click.Option):
    """An option that picks the core or the debug info (``-c``,
    ``--vmlinux``, ``--debuginfo``): not offered in help inside drgn."""

    @property
    def hidden(self) -> bool:
        return self._hidden or IN_PROGRAM.get()

    @hidden.setter
    def hidden(self, value: bool) -> None:
        self._hidden = value

#: Reads at least this big show a progress bar (on a terminal).
PROGRESS_BYTES = 4 << 20


def _setter(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def set_global(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        obj = ctx.find_root().obj
        if obj is not None and value not in (None, False):
            setattr(obj, attr, value)

    return set_global


def _global_options() -> Iterator[click.Option]:
    yield SourceOption(["-c", "--core", "core_path"], metavar="PATH", expose_value=False,
                       callback=_setter("core_path"), help="The core, as before the command.")
    yield click.Option(["--json", "json"], is_flag=True, expose_value=False, callback=_setter("json"),
                       help="Machine-readable output, as before the command.")
    yield SourceOption(["--vmlinux"], metavar="PATH", expose_value=False, callback=_setter("vmlinux"),
                       hidden=True)
    yield SourceOption(["--debuginfo"], type=click.Choice(["auto", "dwarf", "btf"]), expose_value=False,
                       callback=_setter("debuginfo"), hidden=True)
    yield click.Option(["--debug"], is_flag=True, expose_value=False, callback=_setter("debug"), hidden=True)


def add_global_options(cmd: click.Command) -> click.Command:
    """Give ``cmd`` (and, for a group, every command in it) the global
    options, except those whose spelling it already uses."""
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            add_global_options(sub)
        return cmd
    taken = {o for p in cmd.params for o in getattr(p, "opts", [])}
    for opt in _global_options():
        if not taken.intersection(opt.opts):
            cmd.params.append(opt)
    return cmd


def check_kind_option(kinds: Iterable[str], known: Iterable[str]) -> None:
    """``--kind`` values, checked by the library's own rule and message
    (:func:`kcoretool.api.check_kinds`), as a usage error of the option."""
    from kcoretool.api import check_kinds
    from kcoretool.errors import ArgumentError

    try:
        check_kinds(list(kinds), known)
    except ArgumentError as e:
        raise click.BadParameter(str(e), param_hint="--kind") from None


def example(command_line: str) -> str:
    """A command's help epilog: one example, kept on its own line."""
    return "\b\nExample: " + command_line


T = TypeVar("T")


def _show_progress() -> bool:
    return sys.stderr.isatty()


def item_progress(items: Iterable[T], label: str) -> ContextManager[Iterable[T]]:
    """``with item_progress(areas, "extracting") as bar: for a in bar: ...``:
    click's progress bar on stderr when it is a terminal, else the items."""
    if not _show_progress():
        return contextlib.nullcontext(items)
    return click.progressbar(items, label=label, file=sys.stderr, show_pos=True)


class _NoBar:
    def update(self, n: int) -> None:
        pass


def byte_progress(size: int, label: str) -> ContextManager[Any]:
    """A bar counting ``size`` bytes (``bar.update(n)``) for reads of at least
    :data:`PROGRESS_BYTES` when stderr is a terminal; otherwise a no-op."""
    if size < PROGRESS_BYTES or not _show_progress():
        return contextlib.nullcontext(_NoBar())
    return click.progressbar(length=size, label=label, file=sys.stderr)


class ProgressSink:
    """A sink that counts what it writes on a progress bar."""

    def __init__(self, out: Any, bar: Any) -> None:
        self.out, self.bar = out, bar

    def write(self, data: bytes) -> Optional[int]:
        n: Optional[int] = self.out.write(data)
        self.bar.update(len(data))
        return n
