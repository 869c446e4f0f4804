"""Commands that read kernel memory through the page tables:
``vmalloc dump``, ``vmalloc extract``, ``vmalloc check``, and the page-table
path of ``read``."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from typing import BinaryIO, Dict, List, Optional

import click

from kcoretool.cli.outfile import OutputDir, OutputFile
from kcoretool.cli.output import emit_json, hx, parse_address, parse_size, table
from kcoretool.errors import AddressError, KcoreToolError
from kcoretool.reader.report import PAGE_STATES, ReadReport, ZERO_STATES

# Kinds `extract` reads unless --kind says otherwise: everything with data.
DEFAULT_EXTRACT_KINDS = ("vmalloc", "vmap", "exec", "user-mapped", "dma-coherent", "vm_map_ram", "vmap_block")
# Kinds `check` compares: what vread reads, plus lazy areas (holes to it).
CHECK_KINDS = ("vmalloc", "vmap", "exec", "user-mapped", "dma-coherent", "vm_map_ram", "vmap_block", "lazy")


def kernel_of(ctx: click.Context):
    return ctx.find_root().obj.kernel()


def kernel_address(ctx: click.Context, text: str) -> int:
    """ADDRESS with symbols from the kernel's symbol table."""
    k = kernel_of(ctx)

    def lookup(name: str) -> Optional[int]:
        try:
            return k.prog.symbol(name).address
        except LookupError:
            return None

    return parse_address(text, lookup)


def describe_zero_runs(report: ReadReport, physical_note: str = "") -> List[str]:
    """One line per zero-filled run: a zero page is never shown as data
    without saying so."""
    lines = []
    for r in report.zero_runs():
        pages = max(1, (r.size + 4095) // 4096)
        lines.append(f"kcoretool: note: {r.vaddr:#x}-{r.vaddr + r.size:#x} ({pages} page"
                     f"{'s' if pages != 1 else ''}) read as zeros: {r.state} -- {PAGE_STATES[r.state]}")
    return lines


def summarize_zero_runs(report: ReadReport, hint: str = " \u2014 `--map` lists the runs") -> List[str]:
    """One note for all zero-filled runs, by state: a 128 MiB read has
    hundreds of runs, and one line per run drowns the output."""
    zero = {s: n for s, n in report.pages_by_state().items() if s in ZERO_STATES}
    if not zero:
        return []
    parts = [f"{n} page{'s' if n != 1 else ''} {s}" if i == 0 else f"{n} {s}"
             for i, (s, n) in enumerate(zero.items())]
    return [f"kcoretool: note: zero-filled: {', '.join(parts)}{hint}"]


def map_table(report: ReadReport) -> str:
    rows = [(hx(r.vaddr), hx(r.vaddr + r.size), r.size, r.state, hx(r.phys), hx(r.area)) for r in report.runs]
    return table(rows, ["start", "end", "bytes", "state", "phys", "area"],
                 colalign=("right", "right", "right", "left", "right", "right"))


def summary_text(report: ReadReport) -> str:
    pages = report.pages_by_state()
    return ", ".join(f"{state} {n}" for state, n in pages.items()) + (
        f"; {report.retries} retr{'y' if report.retries == 1 else 'ies'}" if report.retries else "")


def read_via_reader(ctx: click.Context, addr: int, size: int, output: Optional[str], via: str,
                    show_map: bool, force_io: bool, sparse: bool) -> None:
    """`read` through the page tables (or the live kernel's vread)."""
    from kcoretool.cli.output import HexdumpWriter

    k = kernel_of(ctx)
    opts = ctx.find_root().obj
    if output is not None:
        with OutputFile(output) as out:
            _, report = k.read(addr, size, out, via=via, force_io=force_io, sparse=sparse)
        data = None
    elif opts.json:
        from kcoretool.cli.elfcmds import JSON_LIMIT

        if size > JSON_LIMIT:
            raise KcoreToolError(f"--json carries at most {JSON_LIMIT >> 20} MiB of data; "
                                 "write the bytes with -o FILE instead")
        data, report = k.read(addr, size, via=via, force_io=force_io, sparse=sparse)
    elif show_map:
        _, report = k.read(addr, size, _Discard(), via=via, force_io=force_io, sparse=sparse)
        data = None
    else:
        # Streamed: any length, repeated lines collapsed to `*`.
        dump = HexdumpWriter(addr)
        _, report = k.read(addr, size, dump, via=via, force_io=force_io, sparse=sparse)
        dump.close()
        data = None
    if opts.json:
        d = report.to_dict()
        if data is not None:
            d["data"] = data.hex()
        emit_json(d)
        return
    if show_map:
        click.echo(map_table(report))
    for line in describe_zero_runs(report) if show_map else summarize_zero_runs(report):
        click.echo(line, err=True)


def _area_for(ctx: click.Context, address: str):
    k = kernel_of(ctx)
    addr = kernel_address(ctx, address)
    area = k.vmalloc().find(addr)
    if area is None:
        raise AddressError(f"{addr:#x} is in no vmap area; `kcoretool vmalloc list` shows them", addr)
    return area


def data_span(area, page_size: int):
    """The part of an area that can hold data: a vm_struct area without its
    guard page (get_vm_area_size()), otherwise the whole area."""
    vm = area.vm
    if vm is None:
        return area.start, area.end
    guard = 0 if vm.flags & 0x40 else page_size  # VM_NO_GUARD
    return vm.addr, vm.addr + max(0, vm.size - guard)


@click.command("dump")
@click.argument("address")
@click.option("-o", "--output", metavar="FILE", required=True, help="Where to write the area ('-' for stdout).")
@click.option("--with-guard", is_flag=True, help="Include the trailing guard page (zeros).")
@click.option("--force-io", is_flag=True, help="Read ioremap areas (device memory) too.")
@click.option("--sparse", is_flag=True, help="Read the present pages of VM_SPARSE areas.")
@click.pass_context
def dump(ctx: click.Context, address: str, output: str, with_guard: bool, force_io: bool, sparse: bool) -> None:
    """Write the whole area containing ADDRESS to FILE, and say what each page was."""
    k = kernel_of(ctx)
    area = _area_for(ctx, address)
    ps = k.vmalloc().page_size
    lo, hi = (area.start, area.end) if with_guard else data_span(area, ps)
    with OutputFile(output) as out:
        _, report = k.read(lo, hi - lo, out, force_io=force_io, sparse=sparse)
    if ctx.find_root().obj.json:
        d = report.to_dict()
        d["area"] = area.to_dict()
        click.echo(json.dumps(d, indent=2), err=output == "-")
        return
    caller = area.vm.caller_symbol if area.vm is not None else None
    click.echo(f"kcoretool: {output}: {hi - lo} bytes of {area.kind} area {area.start:#x}-{area.end:#x}"
               f"{' (' + caller + ')' if caller else ''}: {summary_text(report)}", err=True)
    for line in summarize_zero_runs(report, hint=" \u2014 `read --map` lists the runs"):
        click.echo(line, err=True)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)[:80]


@click.command("extract")
@click.option("-o", "--output", "outdir", metavar="DIR", required=True, help="Directory for one file per area.")
@click.option("--kind", "kinds", multiple=True, metavar="KIND",
              help="Only these kinds (repeatable; default: " + ", ".join(DEFAULT_EXTRACT_KINDS) + ").")
@click.option("--caller", metavar="GLOB", help="Caller symbol glob, e.g. 'module_alloc*'.")
@click.option("--min-size", metavar="SIZE", help="Only areas at least this big.")
@click.option("--range", "addr_range", metavar="A-B", help="Only areas overlapping [A, B).")
@click.option("--force-io", is_flag=True, help="Read ioremap areas (device memory) too.")
@click.option("--sparse", is_flag=True, help="Read the present pages of VM_SPARSE areas.")
@click.pass_context
def extract(ctx: click.Context, outdir: str, kinds, caller, min_size, addr_range, force_io: bool,
            sparse: bool) -> None:
    """Write each selected area to DIR, with a manifest.json (area, kind,
    caller, sha256, what each page was)."""
    from kcoretool.model.vmalloc import KINDS

    for kind in kinds:
        if kind not in KINDS:
            raise click.BadParameter(f"unknown kind {kind!r}; one of {', '.join(KINDS)}", param_hint="--kind")
    k = kernel_of(ctx)
    model = k.vmalloc()
    lo = hi = None
    if addr_range:
        a, sep, b = addr_range.partition("-")
        if not sep:
            raise click.BadParameter("use A-B", param_hint="--range")
        lo, hi = kernel_address(ctx, a), kernel_address(ctx, b)
        if lo >= hi:
            raise click.BadParameter(f"{addr_range}: the range is empty or reversed; give A-B with A below B",
                                     param_hint="--range")
    selected = list(model.select(kinds=kinds or DEFAULT_EXTRACT_KINDS, caller=caller,
                                 min_size=parse_size(min_size) if min_size else 0, lo=lo, hi=hi))
    if "ioremap" in (kinds or ()) and not force_io:
        click.echo("kcoretool: note: ioremap areas are written as zeros without --force-io", err=True)
    reader = k.reader(force_io=force_io, sparse=sparse)
    manifest: List[Dict[str, object]] = []
    totals: Dict[str, int] = {}
    show_bar = sys.stderr.isatty() and not ctx.find_root().obj.json
    # Each file appears whole or not at all; manifest.json comes last and
    # lists only files already in place; a failed run removes them all.
    with OutputDir(outdir) as out_dir, click.progressbar(
            selected, label="extracting", file=sys.stderr, show_pos=True) if show_bar else _nullbar(selected) as bar:
        for area in bar:
            start, end = data_span(area, model.page_size)
            caller_sym = area.vm.caller_symbol if area.vm is not None else None
            name = f"{area.start:016x}-{area.kind}" + (f"-{_safe(caller_sym.split('+')[0])}" if caller_sym else "") + ".bin"
            digest = hashlib.sha256()
            with out_dir.file(name) as f:
                report = reader.read(start, end - start, _HashingSink(f, digest))
            pages = report.pages_by_state(model.page_size)
            for state, n in pages.items():
                totals[state] = totals.get(state, 0) + n
            manifest.append({
                "file": name, "start": area.start, "end": area.end, "read_start": start, "read_end": end,
                "kind": area.kind, "caller": caller_sym, "sha256": digest.hexdigest(),
                "pages": pages, "retries": report.retries,
                "zero_runs": [r.to_dict() for r in report.zero_runs()],
            })
        with out_dir.file("manifest.json") as mf:
            mf.write(json.dumps({"core": ctx.find_root().obj.core_path, "release": model.release,
                                 "areas": manifest, "pages": totals}, indent=1).encode())
    if ctx.find_root().obj.json:
        emit_json({"directory": outdir, "areas": len(manifest), "pages": totals})
    else:
        click.echo(f"{len(manifest)} area(s) written to {outdir}: "
                   + ", ".join(f"{s} {n}" for s, n in totals.items()) + " page(s)")


class _nullbar:
    def __init__(self, items):
        self.items = items

    def __enter__(self):
        return self.items

    def __exit__(self, *exc):
        return False


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


class _HashingSink:
    def __init__(self, f: BinaryIO, digest) -> None:
        self.f, self.digest = f, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.f.write(data)


@click.command("check")
@click.option("--kind", "kinds", multiple=True, metavar="KIND",
              help="Only these kinds (default: " + ", ".join(CHECK_KINDS) + ").")
@click.pass_context
def check(ctx: click.Context, kinds) -> None:
    """Live only: read every area through /proc/kcore and through the page
    tables, and name the kernel defect behind each page that differs.
    Exit status 3 when any page differs."""
    from kcoretool.reader.check import DEFECTS, KcoreChecker, summarize

    core = ctx.find_root().obj.core()
    if core.kind != "kcore" or not core.is_live:
        # Decided before any debug info is loaded: a vmcore has no vread to check.
        raise KcoreToolError(f"vmalloc check is live only: it compares /proc/kcore with the page tables "
                             f"of the running kernel, and {core.path} is a saved {core.kind}; "
                             "run it as root on the machine itself (-c /proc/kcore)")
    k = kernel_of(ctx)
    model = k.vmalloc()
    checker = KcoreChecker(k.reader(), lambda va, n: k.core.read(va, n))
    results = []
    for area in model.select(kinds=kinds or CHECK_KINDS):
        results.append(checker.check(area))
    bad = [r for r in results if r.mismatches]
    changing = sum(len(r.changing) for r in results)
    totals = summarize(results)
    if ctx.find_root().obj.json:
        emit_json({"areas": len(results), "mismatched_areas": len(bad), "by_defect": totals,
                   "changing_pages": changing, "defects": DEFECTS,
                   "results": [r.to_dict() for r in results if r.mismatches or r.changing]})
    else:
        rows = []
        for r in bad:
            pages = ",".join(str(m.page) for m in r.mismatches[:12]) + ("..." if len(r.mismatches) > 12 else "")
            defects = ", ".join(f"{d} {n}" for d, n in r.by_defect().items())
            rows.append((hx(r.start), hx(r.end), r.kind, len(r.mismatches), pages, defects))
        if rows:
            click.echo(table(rows, ["start", "end", "kind", "pages", "which", "defect"]))
            click.echo("")
            for d, n in totals.items():
                click.echo(f"{d}: {n} page(s) -- {DEFECTS[d]}")
        if changing:
            click.echo(f"{changing} page(s) changed while being read (live memory in use; not counted)")
        click.echo(f"{len(results)} area(s) checked, {len(bad)} with pages that differ")
    if bad:
        ctx.exit(3)
