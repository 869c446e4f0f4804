# SPDX-License-Identifier: LGPL-2.1-or-later
"""
``kcoretool fleet``
-------------------

``fleet scan`` and ``fleet report``: thin click commands over
:mod:`kcoretool.fleet`.  A scan interrupted by Ctrl-C keeps every row
already written and exits 130, as the CLI does for every command.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

import click

from kcoretool._outfile import OutputFile
from kcoretool.cli.options import example
from kcoretool.cli.output import emit_json, table
from kcoretool.cli.words import cli_words
from kcoretool.fleet import ScanSummary, fleet_report, read_rows, scan_fleet, write_parquet

__all__ = ("fleet",)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@click.group("fleet", short_help="Many dumps: fingerprint them, compare them.",
             epilog=example("kcoretool fleet scan /var/crash -o fleet.jsonl && kcoretool fleet report fleet.jsonl"))
def fleet() -> None:
    """Fingerprint many dumps into one JSON Lines file (one row per dump:
    vmalloc by kind and caller, exec memory, tasks, or the dump's error),
    on a local process pool or a Dask cluster, then report per release,
    per caller and the outliers.  See docs/fleet.md."""


@fleet.command("scan", short_help="One row per dump into a JSON Lines file; resumable.",
               epilog=example("kcoretool fleet scan /var/crash '/nfs/dumps/**/vmcore*' @more.txt -o fleet.jsonl -j 4"))
@click.argument("inputs", nargs=-1, required=True, metavar="PATH...")
@click.option("-o", "--output", required=True, metavar="FILE",
              help="The fleet file (JSON Lines): rows are appended; a re-run skips dumps already in it.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Local worker processes (default: one per CPU).")
@click.option("--dask", "dask", metavar="ADDRESS",
              help="Run on Dask: tcp://HOST:PORT (a running scheduler; workers must see the dumps at the same "
                   "paths) or local:N (N worker processes here). Needs kcoretool[fleet].")
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="How many more times a dump whose worker died is tried before it is recorded as failed.")
@click.option("--debuginfo-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="A vmlinux per release: DIR/vmlinux-RELEASE, DIR/RELEASE/vmlinux or an unpacked debug "
                   "package. Default: every dump's own BTF and kallsyms.")
@click.option("-q", "--quiet", is_flag=True, help="No line per dump on stderr.")
def scan(inputs: Tuple[str, ...], output: str, jobs: Optional[int], dask: Optional[str], retries: int,
         debuginfo_dir: Optional[str], quiet: bool) -> None:
    """Scan PATH... (dump files, directories, globs, @LISTFILE) into the
    fleet file: one row per dump, written as each finishes; a dump that
    cannot be read is a row with its one-line error."""
    if dask is not None and jobs is not None:
        raise click.UsageError("-j sets the local pool; with --dask the cluster's workers scan: give one")

    def progress(row: Dict[str, Any]) -> None:
        if quiet:
            return
        path = row["path"]
        what = str(row.get("release") if row["status"] == "ok" else cli_words(str(row.get("error"))))
        if what.startswith(path + ": "):
            what = what[len(path) + 2:]
        click.echo(f"kcoretool: {row['status']}: {path}: {what}", err=True)

    summary = ScanSummary()
    try:
        scan_fleet(list(inputs), output, jobs=jobs or _cpus(), dask=dask, retries=retries,
                   debuginfo_dir=debuginfo_dir, on_row=progress, summary=summary)
    finally:
        for note in summary.notes:
            click.echo(f"kcoretool: warning: {note}", err=True)
        if summary.started:
            click.echo(f"kcoretool: fleet scan: {summary.found} dump(s), {summary.skipped} already in {output}; "
                       f"wrote {summary.written} row(s): {summary.ok} ok, {summary.error} unreadable, "
                       f"{summary.failed} failed; {summary.elapsed_s:.1f} s", err=True)


def _num(v: Optional[float]) -> str:
    if v is None:
        return "-"
    return str(int(v)) if float(v).is_integer() else f"{v:.1f}"


@fleet.command("report", short_help="Per release, per caller, outliers.",
               epilog=example("kcoretool fleet report fleet.jsonl --factor 4 -o fleet.parquet"))
@click.argument("fleet_file", metavar="FLEET.jsonl")
@click.option("--factor", type=click.FloatRange(min=1, min_open=True), default=4.0, show_default=True,
              help="An outlier has at least this many times its release's median pages.")
@click.option("--min-pages", type=click.IntRange(min=0), default=256, show_default=True,
              help="... and at least this many pages above it.")
@click.option("--top", type=click.IntRange(min=0), default=20, show_default=True,
              help="Callers listed (0: all).")
@click.option("-o", "--output", metavar="FILE.parquet",
              help="Also write the rows as a parquet table (one line per dump and metric). "
                   "Needs kcoretool[fleet].")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.pass_context
def report(ctx: click.Context, fleet_file: str, factor: float, min_pages: int, top: int,
           output: Optional[str], as_json: bool) -> None:
    """Report on a fleet file: per release, per caller across the fleet,
    and the outliers (a caller's or exec kind's pages far above the median
    of the dumps of the same release), as tables or --json."""
    warnings: List[str] = []
    rows = read_rows(fleet_file, warnings)
    for w in warnings:
        click.echo(f"kcoretool: warning: {w}", err=True)
    rep = fleet_report(rows, factor=factor, min_pages=min_pages, top=top)
    if output is not None:
        with OutputFile(output) as f:
            write_parquet(rows, f)
    if as_json or getattr(ctx.find_root().obj, "json", False):
        emit_json(rep)
        return
    click.echo(f"{rep['dumps']} dump(s) in {fleet_file}\n")
    click.echo(table(([r["release"], str(r["dumps"]), str(r["ok"]), str(r["error"]), str(r["failed"]),
                       _num(r["median_vmalloc_pages"]), _num(r["median_exec_pages"]), _num(r["median_tasks"]),
                       _num(r["max_rss_pages"])] for r in rep["releases"]),
                     ["release", "dumps", "ok", "error", "failed", "vmalloc pages", "exec pages", "tasks",
                      "max rss pages"], colalign=("left",) + ("right",) * 8))
    click.echo("\nmedian: over the readable dumps of the release\n")
    click.echo(table(([c["caller"], str(c["dumps"]), str(c["pages"]), _num(c["median_pages"]), str(c["max_pages"]),
                       c["max_path"]] for c in rep["callers"]),
                     ["caller", "dumps", "pages", "median", "max", "max in"],
                     colalign=("left", "right", "right", "right", "right", "left")))
    click.echo("")
    if rep["outliers"]:
        click.echo(table(([o["release"], o["kind"], o["name"], str(o["pages"]), _num(o["median"]),
                           f"{o['factor']}x" if o["factor"] is not None else "new", o["path"]]
                          for o in rep["outliers"]),
                         ["release", "what", "name", "pages", "median", "factor", "dump"],
                         colalign=("left", "left", "left", "right", "right", "right", "left")))
    else:
        click.echo(f"no outliers (>= {factor}x and {min_pages} pages above a release's median; a release needs "
                   "3 readable dumps)")
    if rep["audit_flagged"]:
        click.echo("")
        click.echo(table(([a["release"] or "-", str(a["flags"]), ", ".join(f"{k} {v}" for k, v in a["reasons"].items()),
                           a["path"]] for a in rep["audit_flagged"]),
                         ["release", "audit flags", "reasons", "dump"], colalign=("left", "right", "left", "left")))
    if rep["unreadable"]:
        click.echo("")
        click.echo(table(([u["status"], u["path"], cli_words(u["error"] or "")] for u in rep["unreadable"]),
                         ["status", "dump", "error"]))
