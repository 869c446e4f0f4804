"""
The one place exceptions become the user's one line
---------------------------------------------------

The library raises :class:`~kcoretool.errors.KcoreToolError` for what it
expects.  Damaged input still reaches code that raises something else --
drgn's ``FaultError`` from a page-table walk over a damaged dump, an
``OverflowError`` from a header field too big for a C type, an
``OSError`` from an output file.  :func:`one_line` turns each into the
same kind of line (:func:`kcoretool.errors.one_line`: ``fleet scan`` writes
it into a row), in the CLI's words (:func:`kcoretool.cli.words.cli_words`),
so no traceback reaches a user without ``--debug``; :func:`end_command`
is how a command that failed ends, for the console command and for
drgn's ``%kcoretool`` alike.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Optional, Tuple

import click

from kcoretool import errors
from kcoretool._outfile import discard_unfinished
from kcoretool.cli.words import cli_words
from kcoretool.errors import UNEXPECTED

__all__ = ("Interrupted", "UNEXPECTED", "end_command", "failure", "one_line")

#: the exit status of an interrupted command (128 + SIGINT)
INTERRUPTED = 130


class Interrupted(BaseException):
    """SIGINT, raised where the program is (not an Exception: nothing catches it by accident)."""


def _closed_pipe(e: BaseException) -> bool:
    return isinstance(e, BrokenPipeError) or (isinstance(e, OSError) and e.errno == errno.EPIPE)


def failure(e: BaseException) -> Tuple[Optional[str], int]:
    """The one line (without the ``kcoretool:`` prefix) and the exit status
    for an exception that ended a command; no line for click's own
    (they show themselves) and for a reader that closed the pipe
    (``kcoretool read ... | head`` stops quietly, like cat)."""
    if isinstance(e, click.exceptions.Exit):
        return None, e.exit_code
    if isinstance(e, click.ClickException):
        return None, e.exit_code
    if isinstance(e, (click.exceptions.Abort, KeyboardInterrupt, Interrupted)):
        return "interrupted", INTERRUPTED
    if _closed_pipe(e):
        return None, 1
    return one_line(e), 1


def end_command(e: BaseException, debug: bool) -> int:
    """End a command that raised ``e``: its line on stderr (a usage error
    as click words it), any unfinished output file removed, and the exit
    status returned.  With ``debug`` an error that is not click's or an
    interrupt is raised again, for its traceback."""
    if debug and isinstance(e, Exception) and not isinstance(
            e, (click.exceptions.Exit, click.ClickException, click.exceptions.Abort)):
        raise e
    # An interrupt can skip an output file's __exit__: its temporary goes here.
    discard_unfinished()
    message, status = failure(e)
    try:
        if isinstance(e, click.ClickException):
            e.show()
        elif message is not None:
            click.echo(f"kcoretool: {message}", err=True)
        sys.stderr.flush()  # before a caller's os._exit
    except (OSError, ValueError):
        pass  # stderr itself is gone: the status still says it
    return status


def one_line(e: BaseException) -> str:
    """The message for ``e``, one line, without the ``kcoretool:`` prefix,
    in the CLI's words (the library's line: :func:`kcoretool.errors.one_line`)."""
    text = errors.one_line(e, "--debug shows where")
    if isinstance(e, OSError):
        return text
    return " ".join(cli_words(text).split()) or type(e).__name__


def stdout_usable() -> bool:
    """False when the process was started with standard output closed."""
    import io

    if sys.stdout is None:
        return False
    try:
        fd = sys.stdout.fileno()
    except (io.UnsupportedOperation, AttributeError):
        return True  # a Python stream with no descriptor (an embedding, a test's capture)
    except ValueError:
        return False  # closed
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
