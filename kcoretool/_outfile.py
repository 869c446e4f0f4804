"""
Output files that are whole or absent
-------------------------------------

Every ``-o`` writer (``read``, ``read --pid``, ``vmalloc dump``, ``exec
dump``, ``vmalloc snapshot``, the files of ``vmalloc extract``) goes
through :class:`OutputFile` or :class:`OutputDir`:

* an absent path, or a regular file, is written to a temporary name in the
  same directory and renamed into place only when everything was written:
  an interrupted or failed run never leaves a file that looks complete;
* a new file is created 0600 (it holds kernel memory); a file that is
  replaced keeps its permission bits (setuid and setgid dropped) and its
  owner and group -- when they cannot be kept, it is refused, not widened;
* a symbolic link to a regular file replaces that file (the link stays);
* anything else is never replaced: a character or block device
  (``/dev/null``, ``/dev/full``) or a link into ``/proc`` (``/dev/stdout``)
  is written in place, a FIFO in place once it has a reader (refused at
  once without one: no blocking open), a socket, a directory or a link to
  nothing is refused;
* ``-`` is standard output.

Ctrl-C raises where the program is -- also on the first line of an
``__exit__``, before it can clean up -- so every temporary file and every
unfinished directory is also listed here, and the CLI's interrupt path
calls :func:`discard_unfinished`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys
from types import TracebackType
from typing import BinaryIO, List, Literal, Optional, Set, Tuple, Type

from kcoretool.errors import KcoreToolError

__all__ = ("OutputDir", "OutputFile", "discard_unfinished", "file_type", "output_error")

#: Temporary files not yet renamed into place or removed.
_temporaries: Set[str] = set()
#: Output directories whose run has not finished.
_unfinished_dirs: List[OutputDir] = []
#: The permission bits a replaced file keeps.
_KEPT_MODE = 0o7777 & ~(stat.S_ISUID | stat.S_ISGID)


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


def file_type(mode: int) -> str:
    """What a file that is not a regular one is, for messages."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def _create(path: str) -> int:
    """A new file, 0600, that must not exist yet (never through a link)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)


def _proc_hop(path: str) -> Optional[str]:
    """Where the symbolic link ``path`` first leads into /proc
    (``/dev/stdout`` -> ``/proc/self/fd/1``), or None: its target is
    whatever a descriptor is, not a file to replace."""
    p = path
    for _ in range(40):
        try:
            target = os.readlink(p)
        except OSError:
            return None
        p = os.path.normpath(os.path.join(os.path.dirname(p), target))
        if p.startswith(("/proc/", "/dev/fd/")):
            return p
    return None


def _own_fd(path: str) -> Optional[int]:
    """N when ``path`` names this process's own descriptor N
    (``/dev/stdout``, ``/dev/fd/3``, ``/proc/self/fd/1``)."""
    hop = _proc_hop(path) if os.path.islink(path) else os.path.normpath(path)
    if hop is None:
        return None
    for prefix in ("/proc/self/fd/", f"/proc/{os.getpid()}/fd/", "/dev/fd/"):
        if hop.startswith(prefix) and hop[len(prefix):].isdigit():
            return int(hop[len(prefix):])
    return None


def _plan(path: str) -> Tuple[str, Optional[os.stat_result]]:
    """``(how, stat)``: how to write ``path`` -- ``"new"``, ``"replace"``
    (a regular file; its stat) or ``"in-place"`` (a device, a FIFO, a link
    into /proc; its stat) -- or a refusal."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "new", None
    except OSError as e:
        raise output_error(path, e) from None
    if stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise KcoreToolError(f"{path}: a symbolic link to nothing ({os.readlink(path)}); give a file "
                                 "name or the file it should name") from None
        except OSError as e:
            raise output_error(path, e) from None
        if stat.S_ISREG(st.st_mode) and _proc_hop(path) is not None:
            return "in-place", st
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return "replace", st
    if stat.S_ISDIR(mode):
        raise KcoreToolError(f"{path}: is a directory; give a file name")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        return "in-place", st
    raise KcoreToolError(f"{path}: is {file_type(mode)}; give a file name")


def _open_in_place(path: str, st: os.stat_result) -> BinaryIO:
    """A device, FIFO or /proc link, opened for writing without replacing
    it; a FIFO without a reader is refused rather than waited for; this
    process's own descriptor (``/dev/stdout``) is used as it is, so a
    ``>>`` redirection still appends."""
    own = _own_fd(path)
    if own is not None:
        try:
            return os.fdopen(os.dup(own), "wb")
        except OSError as e:
            raise output_error(path, e) from None
    flags = os.O_WRONLY | os.O_CLOEXEC | os.O_NONBLOCK
    if stat.S_ISREG(st.st_mode):
        flags |= os.O_TRUNC  # another process's descriptor onto a file: as > would
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ENXIO and stat.S_ISFIFO(st.st_mode):
            raise KcoreToolError(f"{path}: a FIFO with no reader; start the reader first") from None
        raise output_error(path, e) from None
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def _keep_owner_and_mode(fd: int, path: str, st: os.stat_result) -> None:
    """Give the temporary that replaces ``path`` the mode and owner of the
    file it replaces."""
    if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        try:
            os.fchown(fd, st.st_uid, st.st_gid)
        except PermissionError:
            raise KcoreToolError(f"{path}: cannot replace it keeping its owner (uid {st.st_uid}, gid "
                                 f"{st.st_gid}); remove it first or write elsewhere") from None
    os.fchmod(fd, stat.S_IMODE(st.st_mode) & _KEPT_MODE)


class OutputFile:
    """``with OutputFile(path) as f: f.write(...)``: the file appears under
    ``path`` only if the block finishes (see the module's rules)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tmp: Optional[str] = None
        self.f: Optional[BinaryIO] = None
        #: where the temporary is renamed to (the path, or a link's target)
        self.final = path

    def __enter__(self) -> BinaryIO:
        path = self.path
        if path == "-":
            self.f = sys.stdout.buffer
            return self.f
        how, st = self._plan()
        if how == "in-place":
            assert st is not None
            self.f = _open_in_place(path, st)
            return self.f
        if how == "replace" and not os.access(self.final, os.W_OK):
            raise KcoreToolError(f"{path}: cannot write: {os.strerror(errno.EACCES)}")
        head, tail = os.path.split(self.final)
        self.tmp = os.path.join(head, f".{tail}.kcoretool-{os.getpid()}.part")
        _temporaries.add(self.tmp)  # listed before it exists
        try:
            fd = _create(self.tmp)
            try:
                if st is not None:
                    _keep_owner_and_mode(fd, path, st)
                self.f = os.fdopen(fd, "wb")
            except BaseException:
                os.close(fd)
                raise
        except OSError as e:
            self._discard()
            raise output_error(path, e) from None
        except BaseException:
            # Ctrl-C after the file was made but before the with block
            # began: __exit__ will not run, so the temporary goes here.
            self._discard()
            raise
        return self.f

    def _plan(self) -> Tuple[str, Optional[os.stat_result]]:
        how, st = _plan(self.path)
        if how == "replace" and os.path.islink(self.path):
            # the link stays; the file it names is replaced
            real = os.path.realpath(self.path)
            try:
                rst = os.stat(real)
            except OSError as e:
                raise output_error(self.path, e) from None
            assert st is not None
            if (rst.st_dev, rst.st_ino) != (st.st_dev, st.st_ino):
                return "in-place", st
            self.final = real
        return how, st

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
            self._done()
        except BaseException:
            self._discard()
            raise
        return False

    def _done(self) -> None:
        """The file is complete: rename it into place."""
        if self.tmp is not None:
            try:
                os.replace(self.tmp, self.final)
            except OSError as e:
                self._discard()
                raise output_error(self.path, e) from None
            _temporaries.discard(self.tmp)
            self.tmp = None

    def _discard(self) -> None:
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            _temporaries.discard(self.tmp)
            self.tmp = None


class OutputDir:
    """A directory of output files, kept only when the run completes.
    Every file is written under a temporary name and all are renamed into
    place together at the end (``manifest.json`` last, an earlier
    ``manifest.json`` removed first): a failed or interrupted run -- a disk
    filling up part-way -- leaves an earlier run in the directory as it
    was, and removes every file it wrote (and the directory, if it made
    it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.created = False
        #: (temporary, final name) of each complete file, renamed at the end
        self.pending: List[Tuple[str, str]] = []
        #: files renamed into place by this run
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
            return False
        try:
            self._commit()
        except BaseException:
            self._remove()
            raise
        if self in _unfinished_dirs:
            _unfinished_dirs.remove(self)
        return False

    def _commit(self) -> None:
        names = {os.path.basename(final) for _, final in self.pending}
        if "manifest.json" in names:
            # never a manifest listing files of another run
            try:
                os.unlink(os.path.join(self.path, "manifest.json"))
            except FileNotFoundError:
                pass
            except OSError as e:
                raise output_error(os.path.join(self.path, "manifest.json"), e) from None
        while self.pending:
            tmp, final = self.pending[0]
            self.written.append(final)  # listed before the rename
            try:
                os.replace(tmp, final)
            except OSError as e:
                raise output_error(final, e) from None
            _temporaries.discard(tmp)
            self.pending.pop(0)

    def _remove(self) -> None:
        """Remove the files written so far, and the directory if this run
        made it."""
        if self in _unfinished_dirs:
            _unfinished_dirs.remove(self)
        # with the temporary of a file whose __exit__ an interrupt skipped
        for p in [t for t in _temporaries if os.path.dirname(t) == self.path]:
            _temporaries.discard(p)
            self.written.append(p)
        for p in self.written + [tmp for tmp, _ in self.pending]:
            try:
                os.unlink(p)
            except OSError:
                pass
        self.written, self.pending = [], []
        if self.created:
            try:
                os.rmdir(self.path)
            except OSError:
                pass


class _DirFile(OutputFile):
    """One file of an :class:`OutputDir`: complete at its ``with`` block's
    end, renamed into place with the others when the directory's run ends."""

    def __init__(self, d: OutputDir, name: str) -> None:
        super().__init__(os.path.join(d.path, name))
        self.dir = d

    def _plan(self) -> Tuple[str, Optional[os.stat_result]]:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return "new", None
        except OSError as e:
            raise output_error(self.path, e) from None
        if not stat.S_ISREG(st.st_mode):
            raise KcoreToolError(f"{self.path}: exists and is {file_type(st.st_mode)}; remove it or give "
                                 "another directory")
        return "replace", st

    def _done(self) -> None:
        if self.tmp is not None:
            self.dir.pending.append((self.tmp, self.final))  # still listed in _temporaries
            self.tmp = None
