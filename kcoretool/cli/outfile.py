"""
Output files that are whole or absent
-------------------------------------

``read -o``, ``vmalloc dump -o`` and ``vmalloc extract`` write to a
temporary name in the target directory and rename it into place only when
everything was written: an interrupted or failed run never leaves a file
that looks complete.  ``-`` is standard output; an existing device or FIFO
(``/dev/null``, ``/dev/full``) is written in place, never replaced.

Ctrl-C raises where the program is -- also on the first line of an
``__exit__``, before it can clean up -- so every temporary file and every
unfinished directory is also listed here, and the CLI's interrupt path
calls :func:`discard_unfinished`.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from types import TracebackType
from typing import BinaryIO, List, Literal, Optional, Set, Type

from kcoretool.errors import KcoreToolError

__all__ = ("OutputDir", "OutputFile", "discard_unfinished", "output_error")

#: Temporary files not yet renamed into place or removed.
_temporaries: Set[str] = set()
#: Output directories whose run has not finished.
_unfinished_dirs: List[OutputDir] = []


def discard_unfinished() -> None:
    """Remove every temporary file and every file of every unfinished
    output directory (and the directory, if it was made for the run):
    what the ``__exit__`` methods do, for when an interrupt skipped them."""
    for tmp in list(_temporaries):
        try:
            os.unlink(tmp)
        except OSError:
            pass
        _temporaries.discard(tmp)
    while _unfinished_dirs:
        _unfinished_dirs.pop()._remove()


def output_error(path: str, e: OSError) -> KcoreToolError:
    """An output failure as one line: what, where, what to do."""
    if e.errno == errno.ENOENT:
        parent = os.path.dirname(path) or "."
        return KcoreToolError(f"{path}: cannot create it: directory {parent} does not exist")
    if e.errno == errno.EISDIR:
        return KcoreToolError(f"{path}: is a directory; give a file name")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return KcoreToolError(f"{path}: cannot write: {os.strerror(e.errno)}")
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return KcoreToolError(f"{path}: no space left on device; nothing was kept")
    if e.errno == errno.ENOTDIR:
        return KcoreToolError(f"{path}: a part of the path is not a directory")
    return KcoreToolError(f"{path}: cannot write: {e.strerror or e}")


class OutputFile:
    """``with OutputFile(path) as f: f.write(...)``: the file appears under
    ``path`` only if the block finishes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tmp: Optional[str] = None
        self.f: Optional[BinaryIO] = None

    def __enter__(self) -> BinaryIO:
        path = self.path
        if path == "-":
            self.f = sys.stdout.buffer
            return self.f
        try:
            st: Optional[os.stat_result] = os.stat(path)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise output_error(path, e) from None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise KcoreToolError(f"{path}: is a directory; give a file name")
        try:
            if st is not None and not stat.S_ISREG(st.st_mode):
                self.f = open(path, "wb")  # a device or FIFO: never replaced
            else:
                head, tail = os.path.split(path)
                self.tmp = os.path.join(head, f".{tail}.kcoretool-{os.getpid()}.part")
                _temporaries.add(self.tmp)  # listed before it exists
                self.f = open(self.tmp, "wb")
        except OSError as e:
            self._discard()
            raise output_error(path, e) from None
        except BaseException:
            # Ctrl-C after open() made the file but before the with block
            # began: __exit__ will not run, so the temporary goes here.
            self._discard()
            raise
        return self.f

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> Literal[False]:
        f, self.f = self.f, None
        if f is None:
            return False
        try:
            if f is sys.stdout.buffer:
                if exc_type is None:
                    f.flush()
                return False
            try:
                f.close()
            except OSError as e:
                if exc_type is None:
                    self._discard()
                    raise output_error(self.path, e) from None
            if exc_type is not None:
                self._discard()
                if isinstance(exc, OSError) and exc.errno not in (errno.EPIPE,):
                    raise output_error(self.path, exc) from None
                return False
            if self.tmp is not None:
                try:
                    os.replace(self.tmp, self.path)
                except OSError as e:
                    self._discard()
                    raise output_error(self.path, e) from None
                _temporaries.discard(self.tmp)
                self.tmp = None
        except BaseException:
            self._discard()
            raise
        return False

    def _discard(self) -> None:
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            _temporaries.discard(self.tmp)
            self.tmp = None


class OutputDir:
    """A directory of output files, kept only when the run completes: on
    failure every file it wrote (and the directory, if it made it) is
    removed again."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.created = False
        self.written: List[str] = []

    def __enter__(self) -> OutputDir:
        path = self.path
        if os.path.lexists(path) and not os.path.isdir(path):
            raise KcoreToolError(f"{path}: exists and is not a directory; give a directory for the files")
        _unfinished_dirs.append(self)
        try:
            if not os.path.isdir(path):
                try:
                    os.makedirs(path)
                except OSError as e:
                    raise output_error(path, e) from None
                self.created = True
            if not os.access(path, os.W_OK | os.X_OK):
                raise KcoreToolError(f"{path}: cannot write into it: permission denied")
        except BaseException:
            self._remove()
            raise
        return self

    def file(self, name: str) -> _DirFile:
        return _DirFile(self, name)

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> Literal[False]:
        if exc_type is not None:
            self._remove()
        elif self in _unfinished_dirs:
            _unfinished_dirs.remove(self)
        return False

    def _remove(self) -> None:
        """Remove the files written so far, and the directory if this run
        made it."""
        if self in _unfinished_dirs:
            _unfinished_dirs.remove(self)
        # with the temporary of a file whose __exit__ an interrupt skipped
        for p in [t for t in _temporaries if os.path.dirname(t) == self.path]:
            _temporaries.discard(p)
            self.written.append(p)
        for p in self.written:
            try:
                os.unlink(p)
            except OSError:
                pass
        self.written = []
        if self.created:
            try:
                os.rmdir(self.path)
            except OSError:
                pass


class _DirFile(OutputFile):
    def __init__(self, d: OutputDir, name: str) -> None:
        super().__init__(os.path.join(d.path, name))
        self.dir = d

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> Literal[False]:
        ok = exc_type is None
        # Listed before the rename: an interrupt between the two still
        # finds the file to remove.
        if ok:
            self.dir.written.append(self.path)
        return super().__exit__(exc_type, exc, tb)
