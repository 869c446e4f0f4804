# SPDX-License-Identifier: LGPL-2.1-or-later
"""
A scan: the dumps not yet in the fleet file, through an engine, appended
--------------------------------------------------------------------------

:func:`scan_fleet` expands the inputs, opens the fleet file (locked; a torn
last line repaired), leaves out every dump it already has a row for (same
path, size and mtime), and has an engine scan the rest, appending each row
as its dump finishes.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from kcoretool.errors import ArgumentError
from kcoretool.fleet.engines import parse_dask_address, require_dask, run_dask, run_local
from kcoretool.fleet.inputs import expand_inputs
from kcoretool.fleet.log import open_fleet_log
from kcoretool.fleet.row import DumpTask

__all__ = ("ScanSummary", "scan_fleet")


@dataclasses.dataclass
class ScanSummary:
    """What a scan did."""

    #: dumps the inputs named
    found: int = 0
    #: of those, already in the fleet file
    skipped: int = 0
    #: rows written, by status
    ok: int = 0
    error: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    #: the fleet file was opened (a scan that stopped before has nothing to sum up)
    started: bool = False
    #: inputs that named nothing, a torn line repaired, dumps that vanished
    notes: List[str] = dataclasses.field(default_factory=list)

    @property
    def written(self) -> int:
        return self.ok + self.error + self.failed


def scan_fleet(inputs: Sequence[str], output: str, *, jobs: int = 1, dask: Optional[str] = None,
               retries: int = 2, debuginfo_dir: Optional[str] = None,
               on_row: Optional[Callable[[Dict[str, Any]], None]] = None,
               summary: Optional[ScanSummary] = None) -> ScanSummary:
    """Scan every dump ``inputs`` name that ``output`` has no row for.

    :param jobs: local worker processes (without ``dask``).
    :param dask: ``tcp://HOST:PORT`` or ``local:N``: a Dask cluster instead.
    :param retries: how many more times a dump whose worker died is tried.
    :param debuginfo_dir: where a vmlinux per release is looked for.
    :param on_row: called with each row once it is written.
    :param summary: filled in as the scan goes (what was done survives a
        Ctrl-C, which propagates).
    """
    t0 = time.monotonic()
    s = summary if summary is not None else ScanSummary()
    if retries < 0:
        raise ArgumentError(f"retries={retries}: give 0 or more")
    if dask is not None:
        parse_dask_address(dask)  # a bad address, or no Dask, before anything is opened
        require_dask()
    if debuginfo_dir is not None and not os.path.isdir(debuginfo_dir):
        raise ArgumentError(f"debuginfo_dir {debuginfo_dir}: not a directory")
    paths, notes = expand_inputs(inputs)
    s.notes += notes
    log = open_fleet_log(output)
    s.started = True
    try:
        s.notes += log.notes
        out_st = os.fstat(log.fd)
        tasks: List[DumpTask] = []
        for p in paths:
            try:
                st = os.stat(p)
            except OSError as e:
                s.notes.append(f"{p}: {e.strerror}; left out")
                continue
            if (st.st_dev, st.st_ino) == (out_st.st_dev, out_st.st_ino):
                continue  # the fleet file itself, in a scanned directory
            t = DumpTask(p, st.st_size, st.st_mtime_ns, debuginfo_dir)
            s.found += 1
            if t.key in log.done:
                s.skipped += 1
            else:
                tasks.append(t)

        def write(row: Dict[str, Any]) -> None:
            log.append(row)
            setattr(s, row["status"], getattr(s, row["status"]) + 1)
            if on_row is not None:
                on_row(row)

        if tasks:
            if dask is not None:
                run_dask(tasks, write, dask, retries)
            else:
                run_local(tasks, write, jobs, retries)
    finally:
        log.close()
        s.elapsed_s = round(time.monotonic() - t0, 3)
    return s
