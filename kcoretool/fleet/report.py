# SPDX-License-Identifier: LGPL-2.1-or-later
"""
What a fleet says
-----------------

:func:`fleet_report` reads the rows of a fleet file into three views:

* per release: how many dumps, how many unreadable, the median vmalloc and
  exec pages, tasks and largest RSS;
* per caller across the fleet: in how many dumps, pages in all, the median
  and the largest (and where);
* outliers: a dump whose pages for a caller (vmalloc) or an exec kind are
  at least ``factor`` times the median of the dumps of its release
  (a dump without that caller counts as 0 pages) and at least
  ``min_pages`` above it -- the leaking boots.  A release needs
  ``MIN_DUMPS`` readable dumps for a median to mean something.

:func:`write_parquet` writes the same rows as one long table (one line per
dump and metric) for DuckDB, pandas or Spark; it needs pyarrow (the
``fleet`` extra).
"""

from __future__ import annotations

import statistics
from typing import Any, Dict, Iterable, List, Optional, Tuple

from kcoretool.errors import KcoreToolError

__all__ = ("MIN_DUMPS", "PARQUET_COLUMNS", "fleet_report", "long_rows", "write_parquet")

#: readable dumps a release needs before its medians name outliers
MIN_DUMPS = 3


def _ok(rows: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [r for r in rows if r.get("status") == "ok"]


def _pages(row: Dict[str, Any], what: str) -> Dict[str, int]:
    """``{name: pages}`` of a row's callers (``what="caller"``) or exec kinds."""
    table = row.get("vmalloc", {}).get("callers", {}) if what == "caller" else row.get("exec", {})
    return {name: v[1] for name, v in table.items()}


def _total(row: Dict[str, Any], what: str) -> int:
    table = row.get("vmalloc", {}).get("by_kind", {}) if what == "vmalloc" else row.get("exec", {})
    return sum(v[1] for v in table.values())


def _median(values: List[int]) -> Optional[float]:
    return float(statistics.median(values)) if values else None


def fleet_report(rows: List[Dict[str, Any]], factor: float = 4.0, min_pages: int = 256,
                 top: int = 20) -> Dict[str, Any]:
    """The report as plain data (what ``fleet report --json`` prints)."""
    if factor <= 1:
        raise KcoreToolError(f"factor {factor}: an outlier is more than 1x the median; give more than 1")
    by_release: Dict[str, List[Dict[str, Any]]] = {}
    for r in rows:
        by_release.setdefault(r.get("release") or "(unreadable)", []).append(r)
    releases = []
    outliers = []
    for release in sorted(by_release):
        group = by_release[release]
        ok = _ok(group)
        rss = [r["tasks"]["max_rss_pages"] for r in ok if r.get("tasks", {}).get("max_rss_pages") is not None]
        releases.append({
            "release": release, "dumps": len(group), "ok": len(ok),
            "error": sum(r.get("status") == "error" for r in group),
            "failed": sum(r.get("status") == "failed" for r in group),
            "median_vmalloc_pages": _median([_total(r, "vmalloc") for r in ok]),
            "median_exec_pages": _median([_total(r, "exec") for r in ok]),
            "median_tasks": _median([r.get("tasks", {}).get("count", 0) for r in ok]),
            "max_rss_pages": max(rss, default=None),
            # dumps whose exec audit flagged something (rows of scans before the audit: not counted)
            "audit_flagged": sum(bool(r.get("exec_audit", {}).get("flags")) for r in ok),
        })
        if len(ok) >= MIN_DUMPS:
            outliers += _outliers(release, ok, factor, min_pages)
    # biggest factor first; "new" (no median) before all
    outliers.sort(key=lambda o: (-(o["factor"] if o["factor"] is not None else float("inf")), o["release"],
                                 o["name"], o["path"]))
    return {
        "dumps": len(rows),
        "releases": releases,
        "callers": _callers(_ok(rows), top),
        "outliers": outliers,
        "unreadable": [{"path": r["path"], "status": r["status"], "error": r.get("error")}
                       for r in rows if r.get("status") != "ok"],
        "audit_flagged": [{"path": r["path"], "release": r.get("release"), "flags": r["exec_audit"]["flags"],
                           "reasons": r["exec_audit"].get("reasons", {})}
                          for r in _ok(rows) if r.get("exec_audit", {}).get("flags")],
        "factor": factor,
        "min_pages": min_pages,
    }


def _outliers(release: str, ok: List[Dict[str, Any]], factor: float, min_pages: int) -> List[Dict[str, Any]]:
    out = []
    for what in ("caller", "exec"):
        tables = [_pages(r, what) for r in ok]
        names = sorted({n for t in tables for n in t})
        for name in names:
            values = [t.get(name, 0) for t in tables]
            med = _median(values) or 0.0
            for r, pages in zip(ok, values):
                if pages - med >= min_pages and pages >= factor * med:
                    out.append({
                        "release": release, "kind": what, "name": name, "path": r["path"],
                        "boot_id": r.get("boot_id"), "pages": pages, "median": med,
                        # None: the release's median dump has none of it
                        "factor": round(pages / med, 1) if med else None,
                    })
    return out


def _callers(ok: List[Dict[str, Any]], top: int) -> List[Dict[str, Any]]:
    seen: Dict[str, List[Tuple[int, str]]] = {}
    for r in ok:
        for name, pages in _pages(r, "caller").items():
            seen.setdefault(name, []).append((pages, r["path"]))
    out: List[Dict[str, Any]] = []
    for name, values in seen.items():
        counts = [p for p, _ in values]
        biggest = max(values)
        out.append({"caller": name, "dumps": len(values), "pages": sum(counts),
                    "median_pages": _median(counts + [0] * (len(ok) - len(values))),
                    "max_pages": biggest[0], "max_path": biggest[1]})
    out.sort(key=lambda c: (-c["pages"], c["caller"]))
    return out[:top] if top else out


#: the parquet table's columns: one line per dump and metric
PARQUET_COLUMNS = ("path", "size", "mtime_ns", "status", "error", "format", "release", "boot_id", "crash_time",
                   "debuginfo", "elapsed_s", "metric", "name", "count", "pages", "bytes")


def long_rows(rows: Iterable[Dict[str, Any]]) -> Iterable[Tuple[Any, ...]]:
    """Each row as lines of :data:`PARQUET_COLUMNS`: ``metric`` is
    ``vmalloc_kind``, ``caller``, ``exec_kind``, ``audit_reason`` (an
    ``exec audit`` flag's reason, how many in ``count``) or ``summary`` (``name``:
    tasks, max_rss_pages, lazy_pages, largest_hole, ...: the value in
    ``count``); a dump that could not be read is one line with ``metric``
    ``dump``."""
    for r in rows:
        head = tuple(r.get(k) for k in PARQUET_COLUMNS[:11])
        if r.get("status") != "ok":
            yield head + ("dump", None, None, None, None)
            continue
        vm = r.get("vmalloc", {})
        for metric, table in (("vmalloc_kind", vm.get("by_kind", {})), ("caller", vm.get("callers", {})),
                              ("exec_kind", r.get("exec", {}))):
            for name, (count, pages, nbytes) in table.items():
                yield head + (metric, name, count, pages, nbytes)
        for reason, count in r.get("exec_audit", {}).get("reasons", {}).items():
            yield head + ("audit_reason", reason, count, None, None)
        summary: Dict[str, Optional[int]] = {k: vm.get(k) for k in (
            "areas", "lazy_pages", "lazy_max_pages", "largest_hole", "holes", "blocks", "block_dirty_pages")}
        tasks = r.get("tasks", {})
        summary["tasks"] = tasks.get("count")
        summary["audit_flags"] = r.get("exec_audit", {}).get("flags")
        summary["max_rss_pages"] = tasks.get("max_rss_pages")
        for name, value in summary.items():
            yield head + ("summary", name, value, None, None)


def write_parquet(rows: List[Dict[str, Any]], out: Any) -> None:
    """The rows as one parquet table (:func:`long_rows`) to ``out`` (a
    binary file object).  :raises KcoreToolError: pyarrow is missing."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        from kcoretool.fleet.engines import DASK_MISSING

        raise KcoreToolError(f"parquet output {DASK_MISSING}") from None
    types = [pa.string(), pa.uint64(), pa.int64(), pa.string(), pa.string(), pa.string(), pa.string(), pa.string(),
             pa.int64(), pa.string(), pa.float64(), pa.string(), pa.string(), pa.int64(), pa.int64(), pa.int64()]
    columns: List[List[Any]] = [[] for _ in PARQUET_COLUMNS]
    for line in long_rows(rows):
        for col, v in zip(columns, line):
            col.append(v)
    schema = pa.schema(list(zip(PARQUET_COLUMNS, types)))
    table = pa.table({name: pa.array(col, type=t) for name, col, t in zip(PARQUET_COLUMNS, columns, types)},
                     schema=schema)
    pq.write_table(table, out)
