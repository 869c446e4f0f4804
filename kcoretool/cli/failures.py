"""
The one place exceptions become the user's one line
---------------------------------------------------

The library raises :class:`~kcoretool.errors.KcoreToolError` for what it
expects.  Damaged input still reaches code that raises something else --
drgn's ``FaultError`` from a page-table walk over a damaged dump, an
``OverflowError`` from a header field too big for a C type, an
``OSError`` from an output file.  :func:`one_line` turns each into the
same kind of line, so no traceback reaches a user without ``--debug``
(it lives in :mod:`kcoretool.errors`: ``fleet scan`` writes it into a row).
"""

from __future__ import annotations

import os

from kcoretool.errors import UNEXPECTED, one_line

__all__ = ("one_line", "UNEXPECTED")


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
