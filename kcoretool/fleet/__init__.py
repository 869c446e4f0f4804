# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Many dumps at once (``kcoretool fleet``)
----------------------------------------

Fingerprint hundreds of vmcores into one append-only JSON Lines file, one
row per dump, on a local process pool or a Dask cluster, then compare them
(docs/fleet.md)::

    >>> from kcoretool.fleet import scan_fleet, read_rows, fleet_report
    >>> scan_fleet(["/var/crash"], "fleet.jsonl", jobs=2)
    >>> fleet_report(read_rows("fleet.jsonl"))["outliers"]

The per-dump function is :func:`scan_dump`; the engines only schedule it.
Nothing here imports Dask or pyarrow until an engine or a parquet file
asks for them (the ``fleet`` extra).
"""

from __future__ import annotations

from kcoretool.fleet.engines import DASK_MISSING, run_dask, run_local
from kcoretool.fleet.inputs import expand_inputs
from kcoretool.fleet.log import FleetLog, open_fleet_log, read_rows
from kcoretool.fleet.report import PARQUET_COLUMNS, fleet_report, long_rows, write_parquet
from kcoretool.fleet.row import SCHEMA, DumpTask, dump_task, failed_row, row_key, scan_dump
from kcoretool.fleet.scan import ScanSummary, scan_fleet

__all__ = (
    "DASK_MISSING",
    "PARQUET_COLUMNS",
    "SCHEMA",
    "DumpTask",
    "FleetLog",
    "ScanSummary",
    "dump_task",
    "expand_inputs",
    "failed_row",
    "fleet_report",
    "long_rows",
    "open_fleet_log",
    "read_rows",
    "row_key",
    "run_dask",
    "run_local",
    "scan_dump",
    "scan_fleet",
    "write_parquet",
)
