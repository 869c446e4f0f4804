"""
The one place exceptions become the user's one line
---------------------------------------------------

The library raises :class:`~kcoretool.errors.KcoreToolError` for what it
expects.  Damaged input still reaches code that raises something else --
drgn's ``FaultError`` from a page-table walk over a damaged dump, an
``OverflowError`` from a header field too big for a C type, an
``OSError`` from an output file.  :func:`one_line` turns each into the
same kind of line, so no traceback reaches a user without ``--debug``.
"""

from __future__ import annotations

import errno
import os

from kcoretool.errors import KcoreToolError, translate

__all__ = ("one_line", "UNEXPECTED")

#: what a message starts with when kcoretool did not expect the error at all
UNEXPECTED = "unexpected error"


def one_line(e: BaseException) -> str:
    """The message for ``e``, one line, without the ``kcoretool:`` prefix."""
    if isinstance(e, KcoreToolError):
        text = str(e)
    elif isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        if e.errno == errno.ENOSPC:
            text = f"{where}no space left on device; the output is incomplete"
        elif e.errno == errno.EBADF:
            text = "an output stream is closed"
        else:
            text = f"{where}{e.strerror or e}"
    else:
        known = translate(e)
        if known is not None:
            text = str(known)
        elif isinstance(e, MemoryError):
            text = "out of memory: the input asks for more than this machine has (a damaged core?); --debug shows where"
        elif type(e) is Exception:
            text = f"drgn cannot interpret the core: {e}"
        else:
            text = (f"{UNEXPECTED} {type(e).__name__}: {e} -- a kcoretool bug or a damaged core; "
                    "--debug shows where")
    return " ".join(text.split()) or type(e).__name__


def stdout_usable() -> bool:
    """False when the process was started with standard output closed."""
    import io
    import sys

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
