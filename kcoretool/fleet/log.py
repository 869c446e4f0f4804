# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The fleet file: append-only JSON Lines
--------------------------------------

One row per dump, one line per row, written by one process -- the scan's
parent, never a worker -- that holds an exclusive ``flock`` on the file for
the whole scan, each row by a single ``write`` of the whole line, newline
included, on an ``O_APPEND`` descriptor, then ``fsync``.  So the file is
always a run of complete lines and at most one torn line at its end: the
last row of a writer killed (or a machine that lost power) mid-write.

Resuming (:func:`open_fleet_log`) reads every line under the lock:

* a complete line (ending in a newline) must be a row -- a JSON object
  with ``schema`` :data:`~kcoretool.fleet.row.SCHEMA` and a path, size and
  mtime -- or the scan stops with one line naming the file and line number:
  it is not a fleet file, or someone edited it; nothing is rewritten;
* what follows the last newline is the torn line.  When it is a whole row
  (only its newline was lost) the newline is appended and the row kept;
  otherwise it is cut off (``ftruncate`` to just after the last newline,
  never before it) and its dump scanned again.  A tail longer than any
  row kcoretool writes is not a torn row: refused, not cut.

Nothing here ever replaces the file: a new one is created 0600 (rows name
the paths of crash dumps), an existing one keeps its mode and owner; a
FIFO, device, socket or directory is refused.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple

from kcoretool._interrupts import deferred_sigint
from kcoretool._outfile import file_type, output_error
from kcoretool.errors import KcoreToolError
from kcoretool.fleet.row import SCHEMA, Key, row_key

__all__ = ("MAX_ROW", "FleetLog", "open_fleet_log", "read_rows")

#: no row kcoretool writes is longer (a dump with ~50,000 distinct callers)
MAX_ROW = 16 << 20


class FleetError(KcoreToolError):
    pass


def check_row(obj: Any) -> Optional[str]:
    """Why ``obj`` is not a fleet row, or None."""
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}, not an object"
    if obj.get("schema") != SCHEMA:
        return f"schema {obj.get('schema')!r}, not {SCHEMA!r}"
    if not isinstance(obj.get("path"), str):
        return "no path"
    for k in ("size", "mtime_ns"):
        v = obj.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            return f"{k} {v!r} is not a byte count" if k == "size" else f"{k} {v!r} is not a time"
    if obj.get("status") not in ("ok", "error", "failed"):
        return f"status {obj.get('status')!r}"
    return None


def _parse(line: bytes) -> Tuple[Optional[Dict[str, Any]], str]:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        return None, f"not JSON ({' '.join(str(e).split())[:80]})"
    why = check_row(obj)
    return (obj, "") if why is None else (None, why)


#: how to get past a file that is not a fleet file: scanning, reporting
SCAN_REMEDY = "give another output="
REPORT_REMEDY = "give a file scan_fleet() wrote"


def _lines(f: IO[bytes], path: str, remedy: str) -> Iterator[Tuple[int, int, bytes]]:
    """``(line number, offset, line)`` of every line, the last one possibly
    without its newline; a line longer than :data:`MAX_ROW` is refused."""
    n, off = 0, 0
    while True:
        line = f.readline(MAX_ROW + 1)
        if not line:
            return
        n += 1
        if len(line) > MAX_ROW:
            raise FleetError(f"{path}: line {n} is longer than {MAX_ROW >> 20} MiB: not a kcoretool fleet file; "
                             f"{remedy}")
        yield n, off, line
        off += len(line)


class _Read:
    """A fleet file read once: its complete rows, where they end, its torn
    last line -- what both the report and a resumed scan need."""

    def __init__(self, f: IO[bytes], path: str, remedy: str) -> None:
        #: every complete row, in file order
        self.rows: List[Dict[str, Any]] = []
        #: the offset just after the last newline
        self.end = 0
        #: ``(line number, bytes)`` of what follows the last newline, if anything
        self.tail: Optional[Tuple[int, bytes]] = None
        for n, off, line in _lines(f, path, remedy):
            if not line.endswith(b"\n"):
                self.tail = (n, line)
                break
            self.end = off + len(line)
            if not line.strip():
                continue
            row, why = _parse(line)
            if row is None:
                raise FleetError(f"{path}: line {n}: not a kcoretool fleet row ({why}); it is not a fleet file or "
                                 f"was edited: fix that line or {remedy}")
            self.rows.append(row)

    def by_dump(self) -> Dict[Key, Dict[str, Any]]:
        """The last row of each dump (path, size, mtime)."""
        return {row_key(row): row for row in self.rows}


def read_rows(path: str, warnings: Optional[List[str]] = None) -> List[Dict[str, Any]]:
    """Every row of a fleet file, the last of each dump (path, size, mtime)
    when one appears more than once."""
    try:
        # O_NONBLOCK: a FIFO is refused, not waited on
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise FleetError(f"{path}: cannot read it: {e.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise FleetError(f"{path}: is {file_type(mode)}, not a fleet file")
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as f:
        read = _Read(f, path, REPORT_REMEDY)
    if read.tail is not None and warnings is not None:
        n, line = read.tail
        warnings.append(f"{path}: line {n} is torn ({len(line)} bytes, no newline: a scan killed while writing it); "
                        "left out")
    return list(read.by_dump().values())


class FleetLog:
    """The fleet file open for appending, locked, its rows read."""

    def __init__(self, path: str, fd: int, done: Dict[Key, Dict[str, Any]], notes: List[str]) -> None:
        self.path = path
        self.fd = fd
        #: the rows already in the file, by dump
        self.done = done
        #: what resuming repaired, one line each
        self.notes = notes
        self.written = 0

    def append(self, row: Dict[str, Any]) -> None:
        """Write one row: a single write of the whole line (a Ctrl-C is
        held back until it is written and synced)."""
        data = (json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n").encode()
        with deferred_sigint():
            view = memoryview(data)
            try:
                while view:
                    n = os.write(self.fd, view)
                    view = view[n:]
                os.fsync(self.fd)
            except OSError as e:
                raise output_error(self.path, e) from None
        self.done[row_key(row)] = row
        self.written += 1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # the lock goes with it
            self.fd = -1


def open_fleet_log(path: str) -> FleetLog:
    """Open (or create, 0600) the fleet file for appending, take its lock,
    read its rows and repair a torn last line (see the module's text).

    :raises KcoreToolError: not a regular file, locked by another scan, a
        line that is not a row."""
    try:
        # O_NONBLOCK: a FIFO or a device is refused, not waited on
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    except OSError as e:
        raise output_error(path, e) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FleetError(f"{path}: is {file_type(st.st_mode)}; fleet scan appends rows to a regular file "
                             "and reads them back to resume")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise FleetError(f"{path}: another fleet scan is writing it; wait for it to finish "
                                 f"or {SCAN_REMEDY}") from None
            raise output_error(path, e) from None
        os.set_blocking(fd, True)
        done, notes = _resume(path, fd)
        return FleetLog(path, fd, done, notes)
    except BaseException:
        os.close(fd)
        raise


def _resume(path: str, fd: int) -> Tuple[Dict[Key, Dict[str, Any]], List[str]]:
    with os.fdopen(os.dup(fd), "rb") as f:
        f.seek(0)
        read = _Read(f, path, SCAN_REMEDY)
    done = read.by_dump()
    notes: List[str] = []
    if read.tail is not None:
        n, line = read.tail
        row, _why = _parse(line)
        with deferred_sigint():
            try:
                if row is not None:
                    os.write(fd, b"\n")
                    done[row_key(row)] = row
                    notes.append(f"{path}: line {n} had lost its newline; added it (the row is whole)")
                else:
                    os.ftruncate(fd, read.end)
                    notes.append(f"{path}: line {n} was torn ({len(line)} bytes without a newline: a scan killed "
                                 "while writing it); cut it off, its dump is scanned again")
                os.fsync(fd)
            except OSError as e:
                raise output_error(path, e) from None
    return done, notes
