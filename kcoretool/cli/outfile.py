"""
Output files that are whole or absent
-------------------------------------

``read -o``, ``vmalloc dump -o`` and ``vmalloc extract`` write to a
temporary name in the target directory and rename it into place only when
everything was written: an interrupted or failed run never leaves a file
that looks complete.  ``-`` is standard output; an existing device or FIFO
(``/dev/null``, ``/dev/full``) is written in place, never replaced.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from types import TracebackType
from typing import BinaryIO, List, Literal, Optional, Type

from kcoretool.errors import KcoreToolError

__all__ = ("OutputDir", "OutputFile", "output_error")


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
        if not os.path.isdir(path):
            try:
                os.makedirs(path)
            except OSError as e:
                raise output_error(path, e) from None
            self.created = True
        if not os.access(path, os.W_OK | os.X_OK):
            raise KcoreToolError(f"{path}: cannot write into it: permission denied")
        return self

    def file(self, name: str) -> _DirFile:
        return _DirFile(self, name)

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> Literal[False]:
        if exc_type is None:
            return False
        for p in self.written:
            try:
                os.unlink(p)
            except OSError:
                pass
        if self.created:
            try:
                os.rmdir(self.path)
            except OSError:
                pass
        return False


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
