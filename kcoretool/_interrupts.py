# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Ctrl-C that is not lost
-----------------------

drgn calls its plugins' hooks (kcoretool's and any other installed) when a
Program is made and when its target is set, and prints and ignores any
exception they raise: a Ctrl-C that lands there -- a KeyboardInterrupt, or
the CLI's own interrupt exception -- would be lost, with a traceback on
stderr.  :func:`deferred_sigint` holds SIGINT back in this thread until
drgn returns, so it is raised in kcoretool's code instead.  Only in this
thread: once drgn has loaded DWARF, its OpenMP workers can take a Ctrl-C
for the process, and Python then runs the handler in the main thread at
once -- the window is back, which kcoretool's own opens, done before any
DWARF is loaded, do not meet.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

__all__ = ("deferred_sigint",)


@contextmanager
def deferred_sigint() -> Iterator[None]:
    """SIGINT blocked in this thread for the block, then delivered."""
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    except (AttributeError, OSError, ValueError):
        yield  # no POSIX signal masks here
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
