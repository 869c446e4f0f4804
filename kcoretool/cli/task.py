"""``kcoretool task list|vmas``, and the ``--pid`` forms of ``read`` and
``whatis``: processes, their VMAs and their memory, through the API."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, BinaryIO, Dict, Iterable, Optional, cast

import click

from kcoretool._outfile import OutputFile
from kcoretool.api import PAGE_STATES
from kcoretool.cli.options import example
from kcoretool.cli.output import emit_json, hx, record_cells, table
from kcoretool.cli.words import cli_words

__all__ = ("read_user", "task", "whatis_user")

if TYPE_CHECKING:
    from kcoretool.api import Kernel


def _kernel(ctx: click.Context) -> Kernel:
    return ctx.find_root().obj.kernel()


def _json(ctx: click.Context) -> bool:
    return bool(ctx.find_root().obj.json)


def _warn(lines: Iterable[str]) -> None:
    for w in lines:
        click.echo(f"kcoretool: warning: {w}", err=True)


@click.group("task", short_help="Tasks and their user memory: ps, VMAs, maps.",
             epilog=example("kcoretool -c vmcore task vmas 1 --format maps"))
def task() -> None:
    """Processes and their memory: list, VMAs (/proc/PID/maps)."""


@task.command("list", short_help="Every process, like ps.",
              epilog=example("kcoretool -c vmcore task list --user"))
@click.option("--threads", is_flag=True, help="One row per thread, not per process.")
@click.option("--user", "user_only", is_flag=True, help="Only tasks with user memory (no kernel threads).")
@click.pass_context
def task_list(ctx: click.Context, threads: bool, user_only: bool) -> None:
    """Every process (ps-like): PID, PPID, state, RSS, VM, COMM; kernel
    threads in [brackets]."""
    k = _kernel(ctx)
    tl = k.tasks(threads=threads)
    tasks = [t for t in tl.tasks if not user_only or t.mm is not None]
    if _json(ctx):
        emit_json({"layout": tl.layout, "tasks": [t.to_dict() for t in tasks], "warnings": tl.warnings})
        return
    cols = tl.columns(threads)
    rows = [record_cells(t, cols) for t in tasks]
    click.echo(table(rows, [c.header for _, c in cols], [c.align for _, c in cols]))
    click.echo(f"{len(rows)} {'thread' if threads else 'process'}{'es' if not threads and len(rows) != 1 else ''}"
               f"{'s' if threads and len(rows) != 1 else ''}; layout {tl.layout}")
    _warn(tl.warnings)


@task.command("vmas", short_help="A process's VMAs, or its /proc/PID/maps.",
              epilog=example("kcoretool -c vmcore task vmas 1 --format maps"))
@click.argument("pid", type=int)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "maps"]), default="table", show_default=True,
              help="maps: exactly the lines /proc/PID/maps prints.")
@click.pass_context
def task_vmas(ctx: click.Context, pid: int, fmt: str) -> None:
    """The VMAs of PID: range, perms, offset, dev, inode, name, flags and
    the per-VMA lock state (6.4+)."""
    k = _kernel(ctx)
    vl = k.vmas(pid)
    if fmt == "json" or (fmt == "table" and _json(ctx)):
        emit_json({"pid": vl.task.pid, "comm": vl.task.comm, "layout": vl.layout,
                   "mm": vl.task.mm.to_dict() if vl.task.mm else None,
                   "vmas": [v.to_dict() for v in vl.vmas], "warnings": vl.warnings})
        return
    if fmt == "maps":
        sys.stdout.write(vl.maps_text())
        sys.stdout.flush()
        _warn(vl.warnings)
        return
    cols = vl.columns(lock=k.task_layout().vma_lock != "none")
    click.echo(table([record_cells(v, cols) for v in vl.vmas], [c.header for _, c in cols]))
    mm = vl.task.mm
    line = f"pid {vl.task.pid} ({vl.task.comm}): {len(vl.vmas)} VMA(s); layout {vl.layout}"
    if mm is not None:
        line += (f"; map_count {mm.map_count}, total_vm {mm.total_vm} pages, rss file {mm.rss['file']} "
                 f"anon {mm.rss['anon']} shmem {mm.rss['shmem']} swapents {mm.rss['swapents']}")
        if mm.mm_lock_seq is not None:
            line += f", mm_lock_seq {mm.mm_lock_seq}"
    click.echo(line)
    _warn(vl.warnings)


#: The most ``read --pid`` shows as a hexdump or a map without -o (it says so when it stops there).
HEXDUMP_CAP = 1 << 26


def read_user(ctx: click.Context, pid: int, addr: int, size: int, output: Optional[str], show_map: bool) -> None:
    """``read --pid``: the task's memory through its page tables, with
    ``read``'s range rules; -o FILE as ``read -o`` writes it (atomic)."""
    from kcoretool.api import check_range
    from kcoretool.cli.output import HexdumpWriter, json_limit

    check_range(addr, size)
    if output is None and _json(ctx):
        json_limit(size)
    k = _kernel(ctx)
    data = None
    if output is not None:
        with OutputFile(output) as out:
            _, report = k.read_user(pid, addr, size, out)
    elif _json(ctx):
        data, report = k.read_user(pid, addr, size)
    else:
        # streamed like read's hexdump (a repeated line is one `*`), at most HEXDUMP_CAP bytes
        shown = min(size, HEXDUMP_CAP)
        if shown < size:
            click.echo(f"kcoretool: note: {'the map covers' if show_map else 'showing'} the first "
                       f"{shown >> 20} MiB ({addr:#x}-{addr + shown:#x}) of {size:#x} bytes; -o FILE writes "
                       "all of it", err=True)
        dump = HexdumpWriter(addr) if not show_map else None
        # the reader only calls write(): any sink does
        _, report = k.read_user(pid, addr, shown, cast(BinaryIO, dump if dump is not None else _Discard()))
        if dump is not None:
            dump.close()
    if _json(ctx):
        d = report.to_dict()
        d["pid"] = pid
        if data is not None:
            d["data"] = data.hex()
        emit_json(d)
        return
    if show_map:
        rows = [(hx(r.vaddr), hx(r.vaddr + r.size), r.size, r.state, hx(r.phys), hx(r.area), r.detail or "")
                for r in report.runs]
        click.echo(table(rows, ["start", "end", "bytes", "state", "phys", "vma", "detail"],
                         ("right", "right", "right", "left", "right", "right", "left")))
    for r in report.zero_runs():
        # a zero page is never shown as data without saying so
        pages = max(1, (r.size + 4095) // 4096)
        click.echo(f"kcoretool: note: {r.vaddr:#x}-{r.vaddr + r.size:#x} ({pages} page{'s' if pages != 1 else ''}) "
                   f"read as zeros: {r.state} -- {cli_words(PAGE_STATES[r.state])}", err=True)


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


def whatis_user(ctx: click.Context, pid: int, addr: int) -> None:
    """``whatis ADDR --pid PID``: the VMA and the page behind a user address."""
    k = _kernel(ctx)
    vl = k.vmas(pid)
    v = vl.find(addr)
    page: Optional[Dict[str, Any]] = None
    if v is not None:
        _, report = k.read_user(pid, addr & ~0xFFF, 4096)
        run = report.runs[0]
        page = {"state": run.state, "phys": None if run.phys is None else run.phys + (addr & 0xFFF),
                "detail": run.detail}
    res = {"address": addr, "pid": pid, "vma": v.to_dict() if v else None, "page": page}
    if _json(ctx):
        emit_json(res)
        return
    if v is None:
        click.echo(f"{addr:#x}: no VMA of pid {pid} covers it")
        return
    off = addr - v.start
    click.echo(f"{addr:#x}: pid {pid} VMA {v.start:#x}-{v.end:#x} {v.perms} +{off:#x}"
               + (f" {v.name}" if v.name else " (anonymous)")
               + (f" file offset {(v.pgoff << 12) + off:#x}" if v.file else "")
               + (f" lock {v.lock.describe()}" if v.lock.kind != "none" else ""))
    assert page is not None
    click.echo(f"{addr:#x}: page {page['state']}" + (f", phys {page['phys']:#x}" if page["phys"] is not None else "")
               + (f" ({page['detail']})" if page["detail"] else ""))
